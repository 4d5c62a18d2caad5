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
use chatvault_common::projection::{BatchSettings, ProjectionRunner};
use chatvault_common::topics::{CHAT_EVENTS, USERS_EVENTS};
use chatvault_proto::snapshot::v1::snapshot_service_server::SnapshotServiceServer;
use chatvault_proto::users::v1::accounts_service_server::AccountsServiceServer;
use chatvault_proto::users::v1::users_service_server::UsersServiceServer;
use deadpool_postgres::Pool;
use tokio::net::TcpListener;
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
    config: ServiceConfig,
    pool: Pool,
    grpc_listener: TcpListener,
    http_listener: TcpListener,
}

impl App {
    /// Connects to the database, applies migrations, ensures topics and binds listeners.
    pub async fn build(config: ServiceConfig) -> Result<Self, Error> {
        let pool = chatvault_common::db::connect_pool(&config.database_url, config.database_pool_size)?;
        chatvault_common::db::migrate(&pool, MIGRATIONS).await?;
        chatvault_common::topics::ensure_topics(&config.kafka).await?;
        let grpc_listener = TcpListener::bind(config.grpc_addr).await?;
        let http_listener = TcpListener::bind(config.http_addr).await?;
        Ok(Self { config, pool, grpc_listener, http_listener })
    }

    pub fn grpc_addr(&self) -> SocketAddr {
        self.grpc_listener.local_addr().unwrap_or(self.config.grpc_addr)
    }

    pub fn http_addr(&self) -> SocketAddr {
        self.http_listener.local_addr().unwrap_or(self.config.http_addr)
    }

    /// Runs the authors projection and serves queries until `shutdown` is cancelled.
    pub async fn run_until_stopped(self, shutdown: CancellationToken) -> Result<(), Error> {
        let applied = AppliedPositions::default();
        let authors_projection = ProjectionRunner::new(
            projection::AuthorsProjection,
            self.pool.clone(),
            self.config.kafka.clone(),
            vec![self.config.kafka.topic(CHAT_EVENTS)],
            applied.clone(),
        )
        .with_batch_settings(BatchSettings { max_records: self.config.projection_batch_records.max(1), ..BatchSettings::default() });
        let (health_reporter, health_service) = tonic_health::server::health_reporter();
        health_reporter.set_serving::<UsersServiceServer<api::UsersApi>>().await;
        let account_settings = accounts::AccountSettings::from_config(&self.config)?;
        let outbox_producer = chatvault_common::kafka::idempotent_producer(&self.config.kafka, "chatvault-users-accounts")?;
        let outbox_relay = accounts::outbox::OutboxRelay::new(self.pool.clone(), outbox_producer, self.config.kafka.topic(USERS_EVENTS));
        let accounts_api = api::AccountsApi::new(self.pool.clone(), account_settings, self.config.auth.clone(), outbox_relay.clone());
        accounts_api.bootstrap_admin_from_config().await?;
        let relay_task = tokio::spawn(outbox_relay.run(shutdown.clone()));
        chatvault_common::revocation::spawn_password_change_follower(&self.config.auth, &self.config.kafka, SERVICE_NAME, shutdown.clone());
        let grpc_router = chatvault_common::grpc::authenticated_server(&self.config.auth)
            .add_service(health_service)
            .add_service(chatvault_common::grpc::reflection_service())
            .add_service(UsersServiceServer::new(api::UsersApi::new(self.pool.clone(), applied, self.config.consistency_wait)))
            .add_service(AccountsServiceServer::new(accounts_api))
            .add_service(SnapshotServiceServer::new(api::snapshot_exporter(self.pool.clone(), &self.config.kafka)));
        let http_router = chatvault_common::http::router_with_metrics(axum::Router::new());

        let projection_task = authors_projection.spawn(shutdown.clone());
        let grpc = chatvault_common::grpc::serve_grpc_authenticated(self.grpc_listener, grpc_router, shutdown.clone());
        let http = chatvault_common::http::serve_http(self.http_listener, http_router, shutdown.clone());
        let (grpc_result, http_result) = tokio::join!(grpc, http);
        let _ = relay_task.await;
        let projection_result = chatvault_common::projection::join_projection(projection_task).await;
        grpc_result?;
        http_result?;
        projection_result?;
        Ok(())
    }
}
