//! The web service: chatvault's front door for people, in a browser.
//!
//! Server-rendered HTML pages (askama templates, escaped by default) with one small script
//! for what HTML alone cannot do (upload progress, drag and drop, copying a link, polling a
//! running backup). Every page calls the other services over gRPC with the signed-in
//! person's own access token, so each service's own rules decide what they see; the web
//! service adds no rule of its own about whose data is whose.
//!
//! Sessions live in the web service's database ([`session`]): the browser holds only a
//! random session id in an `HttpOnly`, `SameSite=Lax` cookie (`Secure` when
//! `CHATVAULT_WEB_PUBLIC_URL` is `https://…`). The access token is refreshed with the
//! refresh token under a row lock shortly before it expires, so a person never notices, and
//! two requests at once never present one refresh token twice (which the users service
//! answers by revoking the whole log-in). Every form and every script request carries a
//! CSRF token ([`csrf`]).

pub mod clients;
pub mod csrf;
pub mod error;
pub mod jobs;
pub mod pages;
pub mod render;
pub mod session;
pub mod settings;
pub mod thumbnails;

use std::net::SocketAddr;
use std::sync::Arc;

use chatvault_common::config::{DefaultPorts, ServiceConfig};
use chatvault_common::db::Migration;
use chatvault_common::grpc::GrpcServices;
use chatvault_common::host::{GrpcAudience, Host, HostPlan};
use tokio_util::sync::CancellationToken;

pub use error::WebError;

pub const SERVICE_NAME: &str = "web";
/// gRPC 50056 (health only), HTTP 8080: the port a browser opens.
pub const DEFAULT_PORTS: DefaultPorts = DefaultPorts { grpc: 50056, http: 8080 };

/// The web service's schema: sessions, import summaries and photo thumbnails.
pub const MIGRATIONS: &[Migration] = &[Migration { id: "web/0001_sessions", sql: include_str!("../migrations/0001_sessions.sql") }];

/// What every page handler gets.
#[derive(Clone, Debug)]
pub struct AppState {
    pub clients: clients::Clients,
    pub sessions: session::Sessions,
    pub settings: Arc<settings::WebSettings>,
    pub jobs: jobs::Jobs,
    pub thumbnails: thumbnails::Thumbnails,
}

/// A built web service: schema migrated, listeners bound.
#[derive(Debug)]
pub struct App {
    host: Host,
}

impl App {
    /// Connects to the database, applies the migrations and binds the listeners.
    pub async fn build(config: ServiceConfig) -> Result<Self, WebError> {
        let plan = HostPlan {
            service_name: SERVICE_NAME,
            migrations: Some(MIGRATIONS),
            audience: GrpcAudience::Everyone,
            uses_kafka: false,
            transfer_windows: None,
        };
        Ok(Self { host: Host::build(config, plan).await? })
    }

    pub fn grpc_addr(&self) -> SocketAddr {
        self.host.grpc_addr()
    }

    /// The address browsers connect to.
    pub fn http_addr(&self) -> SocketAddr {
        self.host.http_addr()
    }

    /// Serves the pages until `shutdown` is cancelled; expired sessions are swept hourly.
    pub async fn run_until_stopped(self, shutdown: CancellationToken) -> Result<(), WebError> {
        let mut host = self.host;
        let config = host.config();
        let settings = Arc::new(settings::WebSettings::from_config(config)?);
        let pool = host.pool()?;
        let clients = clients::Clients::connect(&settings, config.auth.service_token_issuer(SERVICE_NAME))?;
        let sessions = session::Sessions::new(pool.clone(), clients.clone(), settings.clone());
        let state =
            AppState { clients, sessions: sessions.clone(), settings, jobs: jobs::Jobs::default(), thumbnails: thumbnails::Thumbnails::new(pool) };
        host.spawn_loop("session sweep", move |stop| async move {
            loop {
                if let Err(error) = sessions.delete_expired().await {
                    tracing::warn!(error = %error, "deleting expired sessions failed");
                }
                tokio::select! {
                    () = stop.cancelled() => return Ok::<(), WebError>(()),
                    () = tokio::time::sleep(std::time::Duration::from_secs(3600)) => {}
                }
            }
        });
        host.serve(GrpcServices::new(), pages::router(state), shutdown).await?;
        Ok(())
    }
}
