//! The users service: projects `chat.events` into Telegram authors with exact message
//! counts per chat, and answers author queries from its own database. It also owns the
//! accounts, and exports both for backups.

pub mod accounts;
pub mod api;
pub mod error;
pub mod projection;

use std::net::SocketAddr;

use chatvault_common::config::{DefaultPorts, ServiceConfig};
use chatvault_common::consistency::AppliedPositions;
use chatvault_common::db::Migration;
use chatvault_common::grpc::GrpcServices;
use chatvault_common::host::{Host, HostPlan};
use chatvault_common::topics::{CHAT_EVENTS, USERS_EVENTS};
use chatvault_proto::snapshot::v1::snapshot_service_server::SnapshotServiceServer;
use chatvault_proto::users::v1::accounts_service_server::AccountsServiceServer;
use chatvault_proto::users::v1::users_service_server::UsersServiceServer;
use tokio_util::sync::CancellationToken;

pub use error::Error;

pub const SERVICE_NAME: &str = "users";
pub const DEFAULT_PORTS: DefaultPorts = DefaultPorts { grpc: 50053, http: 8083 };

/// The users service's schema, applied at start-up.
pub const MIGRATIONS: &[Migration] = &[
    Migration { id: "users/0001_authors", sql: include_str!("../migrations/0001_authors.sql") },
    Migration { id: "users/0002_accounts", sql: include_str!("../migrations/0002_accounts.sql") },
    Migration { id: "users/0003_author_owners", sql: include_str!("../migrations/0003_author_owners.sql") },
];

/// A built users service: schema migrated, listeners bound.
#[derive(Debug)]
pub struct App {
    host: Host,
    account_settings: accounts::AccountSettings,
}

impl App {
    /// Reads the account settings (a malformed one stops the start here, before anything is
    /// connected), connects to the database, applies migrations, ensures topics and binds
    /// listeners.
    pub async fn build(config: ServiceConfig) -> Result<Self, Error> {
        let account_settings = accounts::AccountSettings::from_config(&config)?;
        let plan = HostPlan::with_database(SERVICE_NAME, MIGRATIONS);
        Ok(Self { host: Host::build(config, plan).await?, account_settings })
    }

    pub fn grpc_addr(&self) -> SocketAddr {
        self.host.grpc_addr()
    }

    pub fn http_addr(&self) -> SocketAddr {
        self.host.http_addr()
    }

    /// Runs the authors projection and the accounts outbox relay, and serves queries until
    /// `shutdown` is cancelled.
    pub async fn run_until_stopped(self, shutdown: CancellationToken) -> Result<(), Error> {
        let (mut host, account_settings) = (self.host, self.account_settings);
        let config = host.config().clone();
        let pool = host.pool()?;
        let applied = AppliedPositions::default();
        let authors_projection = host.projection(projection::AuthorsProjection, &[CHAT_EVENTS], applied.clone())?;
        host.spawn_projection(authors_projection);
        let outbox_producer = chatvault_common::kafka::idempotent_producer(&config.kafka, "chatvault-users-accounts")?;
        let outbox_relay = accounts::outbox::OutboxRelay::new(pool.clone(), outbox_producer, config.kafka.topic(USERS_EVENTS));
        let accounts_api = api::AccountsApi::new(pool.clone(), account_settings, config.auth.clone(), outbox_relay.clone());
        accounts_api.bootstrap_admin_from_config().await?;
        host.spawn_loop("accounts outbox relay", move |stop| async move {
            outbox_relay.run(stop).await;
            Ok::<(), Error>(())
        });
        let grpc = GrpcServices::new()
            .add_service(UsersServiceServer::new(api::UsersApi::new(pool.clone(), applied, config.consistency_wait)))
            .add_service(AccountsServiceServer::new(accounts_api))
            .add_service(SnapshotServiceServer::new(api::snapshot_exporter(pool, &config.kafka)));
        host.serve(grpc, axum::Router::new(), shutdown).await?;
        Ok(())
    }
}
