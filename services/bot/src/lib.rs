//! chatvault's Telegram bot and its storage workers.
//!
//! A person sends the bot files; each is kept in a folder named by the day it was sent (in
//! the person's time zone), in chatvault's own storage, in their Google Drive, or both, and
//! `/files 2026-11-22` brings a day back. Two services on the shared service host:
//! - `bot` ([`App`], one instance): receives updates from Telegram (long polling, or a
//!   webhook checked by its secret-token header), answers at once, publishes each received
//!   file as `FileReceived` work on `bot.events`, serves the OAuth callback and
//!   `chatvault.bot.v1.TelegramService` (link codes for the CLI and the web pages);
//! - `bot-worker` ([`WorkerApp`], any number): the consumer group that stores the files
//!   ([`worker`]), so a slow Drive never blocks the bot and several workers share the load.
//!
//! Both share the `bot` database (links, Drive grants sealed with AES-256-GCM, the folders
//! made in Drive, the files stored) and act for a person with short-lived user tokens of
//! that person ([`chatvault_common::auth::DelegatedTokenIssuer`]), so every other service
//! applies its own ownership rules and the audit trail names the person.

pub mod api;
pub mod clients;
pub mod dates;
pub mod error;
pub mod events;
pub mod google;
pub mod handlers;
pub mod http;
pub mod metrics;
pub mod sealing;
pub mod settings;
pub mod store;
pub mod telegram;
pub mod worker;

use std::net::SocketAddr;
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use chatvault_common::auth::DelegatedTokenIssuer;
use chatvault_common::config::{DefaultPorts, ServiceConfig};
use chatvault_common::db::Migration;
use chatvault_common::grpc::GrpcServices;
use chatvault_common::host::{Host, HostPlan};
use chatvault_proto::bot::v1::telegram_service_server::TelegramServiceServer;
use teloxide::dispatching::Dispatcher;
use teloxide::error_handlers::LoggingErrorHandler;
use teloxide::prelude::Requester;
use teloxide::update_listeners::webhooks;
use tokio_util::sync::CancellationToken;

pub use error::BotError;

pub const SERVICE_NAME: &str = "bot";
/// The storage workers' service name (`CHATVAULT_BOT_WORKER_*` for their ports and pool).
pub const WORKER_SERVICE_NAME: &str = "bot-worker";
/// gRPC 50057 (`TelegramService`), HTTP 8086 (OAuth callback, webhook, metrics).
pub const DEFAULT_PORTS: DefaultPorts = DefaultPorts { grpc: 50057, http: 8086 };
/// gRPC 50058 (health), HTTP 8087 (metrics); a second worker on one machine sets its own.
pub const WORKER_DEFAULT_PORTS: DefaultPorts = DefaultPorts { grpc: 50058, http: 8087 };

/// The schema shared by the bot and its workers.
pub const MIGRATIONS: &[Migration] = &[
    Migration { id: "bot/0001_bot", sql: include_str!("../migrations/0001_bot.sql") },
    Migration { id: "bot/0002_link_attempts", sql: include_str!("../migrations/0002_link_attempts.sql") },
    Migration { id: "bot/0003_link_confirmations", sql: include_str!("../migrations/0003_link_confirmations.sql") },
];

/// The path Telegram posts updates to in webhook mode.
pub const WEBHOOK_PATH: &str = "/telegram/webhook";

/// Installs rustls's process-wide crypto provider (aws-lc-rs) for the HTTPS clients of
/// Telegram and Google; call once at start, before any client is built. Calling again is
/// harmless.
pub fn install_crypto_provider() {
    let _ = rustls::crypto::aws_lc_rs::default_provider().install_default();
}

/// What both processes build from their configuration.
struct Shared {
    settings: Arc<settings::BotSettings>,
    store: store::Store,
    clients: clients::Clients,
    google: Option<google::Google>,
    sealer: Option<sealing::Sealer>,
}

impl Shared {
    fn build(host: &Host, settings: settings::BotSettings, service_name: &str) -> Result<Self, BotError> {
        let config = host.config();
        let google = match &settings.google {
            Some(google_settings) => Some(google::Google::new(google_settings, &settings.oauth_redirect_url())?),
            None => None,
        };
        let sealer = settings.token_key.as_ref().map(sealing::Sealer::new);
        let clients = clients::Clients::connect(&settings, DelegatedTokenIssuer::new(&config.auth), config.auth.service_token_issuer(service_name))?;
        Ok(Self { settings: Arc::new(settings), store: store::Store::new(host.pool()?), clients, google, sealer })
    }
}

/// The bot service, built: schema migrated, listeners bound.
#[derive(Debug)]
pub struct App {
    host: Host,
    settings: settings::BotSettings,
}

impl App {
    /// Connects to the database, applies the migrations, creates the topics and binds.
    pub async fn build(config: ServiceConfig, settings: settings::BotSettings) -> Result<Self, BotError> {
        Ok(Self { host: Host::build(config, HostPlan::with_database(SERVICE_NAME, MIGRATIONS)).await?, settings })
    }

    pub fn grpc_addr(&self) -> SocketAddr {
        self.host.grpc_addr()
    }

    pub fn http_addr(&self) -> SocketAddr {
        self.host.http_addr()
    }

    /// Answers Telegram and serves the APIs until `shutdown` is cancelled. Without
    /// `CHATVAULT_BOT_TOKEN` only the APIs run (link codes can still be made).
    pub async fn run_until_stopped(self, shutdown: CancellationToken) -> Result<(), BotError> {
        let mut host = self.host;
        let shared = Shared::build(&host, self.settings, SERVICE_NAME)?;
        let events = events::Events::new(&host.config().kafka, SERVICE_NAME)?;
        let bot_username = Arc::new(OnceLock::new());
        let bot = telegram::bot_of(&shared.settings);
        let mut http_routes = axum::Router::new();
        if let Some(bot) = bot.clone() {
            let me = bot.get_me().await.map_err(|error| BotError::Config(format!("Telegram refused the bot token (getMe): {error}")))?;
            let username = me.username.clone().unwrap_or_default();
            tracing::info!(bot = %username, "Telegram bot identified");
            let _ = bot_username.set(username.clone());
            let state = Arc::new(handlers::BotState {
                store: shared.store.clone(),
                settings: shared.settings.clone(),
                clients: shared.clients.clone(),
                google: shared.google.clone(),
                sealer: shared.sealer.clone(),
                events: events.clone(),
                username,
            });
            http_routes = http_routes.merge(http::routes(http::CallbackState { state: state.clone(), bot: Some(bot.clone()) }));
            let mut dispatcher = Dispatcher::builder(bot.clone(), handlers::schema())
                .dependencies(teloxide::dptree::deps![state])
                .default_handler(|_| async {})
                .error_handler(LoggingErrorHandler::with_custom_text("a Telegram update could not be answered"))
                .build();
            let stopper = dispatcher.shutdown_token();
            match shared.settings.webhook_url.clone() {
                Some(url) => {
                    let secret: String = {
                        use rand::distr::{Alphanumeric, SampleString};
                        Alphanumeric.sample_string(&mut rand::rng(), 48)
                    };
                    let options = webhooks::Options::new(host.http_addr(), url).path(WEBHOOK_PATH.to_owned()).secret_token(secret);
                    let (listener, stop_future, router) = webhooks::axum_to_router(bot.clone(), options)
                        .await
                        .map_err(|error| BotError::Config(format!("Telegram refused the webhook (setWebhook): {error}")))?;
                    http_routes = http_routes.merge(router);
                    host.spawn_loop("telegram webhook", move |stop| async move {
                        tokio::spawn(stop_future);
                        tokio::select! {
                            () = dispatcher.dispatch_with_listener(listener, LoggingErrorHandler::with_custom_text("the webhook failed")) => {}
                            () = stop.cancelled() => if let Ok(done) = stopper.shutdown() { done.await },
                        }
                        Ok::<(), BotError>(())
                    });
                }
                None => {
                    host.spawn_loop("telegram long polling", move |stop| async move {
                        tokio::select! {
                            () = dispatcher.dispatch() => {}
                            () = stop.cancelled() => if let Ok(done) = stopper.shutdown() { done.await },
                        }
                        Ok::<(), BotError>(())
                    });
                }
            }
        } else {
            tracing::warn!("CHATVAULT_BOT_TOKEN is not set: the Telegram bot is off; the link API still answers");
        }
        let grpc = GrpcServices::new().add_service(TelegramServiceServer::new(api::TelegramApi::new(shared.store.clone(), events, bot_username)));
        host.serve(grpc, http_routes, shutdown).await?;
        Ok(())
    }
}

/// A storage worker, built.
#[derive(Debug)]
pub struct WorkerApp {
    host: Host,
    settings: settings::BotSettings,
}

impl WorkerApp {
    /// Connects to the bot's database (applying its migrations if the bot has not yet),
    /// creates the topics and binds.
    pub async fn build(config: ServiceConfig, settings: settings::BotSettings) -> Result<Self, BotError> {
        if settings.telegram_token.is_none() {
            return Err(BotError::Config("the storage worker needs CHATVAULT_BOT_TOKEN to fetch the files people send".to_owned()));
        }
        Ok(Self { host: Host::build(config, HostPlan::with_database(WORKER_SERVICE_NAME, MIGRATIONS)).await?, settings })
    }

    pub fn grpc_addr(&self) -> SocketAddr {
        self.host.grpc_addr()
    }

    pub fn http_addr(&self) -> SocketAddr {
        self.host.http_addr()
    }

    /// Stores received files until `shutdown` is cancelled.
    pub async fn run_until_stopped(self, shutdown: CancellationToken) -> Result<(), BotError> {
        let mut host = self.host;
        let session_timeout = Duration::from_millis(host.config().setting("SESSION_TIMEOUT_MS", 10_000u64)?.max(1000));
        let kafka = host.config().kafka.clone();
        let shared = Shared::build(&host, self.settings, WORKER_SERVICE_NAME)?;
        let bot = telegram::bot_of(&shared.settings).ok_or_else(|| BotError::Config("CHATVAULT_BOT_TOKEN is not set".to_owned()))?;
        let worker = worker::Worker {
            store: shared.store,
            bot,
            settings: shared.settings,
            clients: shared.clients,
            google: shared.google,
            sealer: shared.sealer,
            events: events::Events::new(&kafka, WORKER_SERVICE_NAME)?,
        };
        host.spawn_loop("storage worker", move |stop| async move {
            let outcome = worker.run(&kafka, session_timeout, stop.clone()).await;
            if outcome.is_err() {
                // A worker that cannot consume has nothing else to do.
                stop.cancel();
            }
            outcome
        });
        host.serve(GrpcServices::new(), axum::Router::new(), shutdown).await?;
        Ok(())
    }
}
