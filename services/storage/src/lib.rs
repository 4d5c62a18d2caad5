//! The storage service: projects `chat.events` into its own PostgreSQL database and answers
//! queries about chats and messages, each archive visible to its owner, the accounts it is
//! shared with and admins ([`chat_access`]).

pub mod api;
pub mod chat_access;
pub mod db;
pub mod error;
pub mod files;
pub mod projection;

use std::net::SocketAddr;

use chatvault_common::config::{DefaultPorts, ServiceConfig};
use chatvault_common::consistency::AppliedPositions;
use chatvault_common::db::Migration;
use chatvault_common::projection::{BatchSettings, ProjectionRunner};
use chatvault_common::topics::{CHAT_EVENTS, FILES_EVENTS, STORAGE_NODES};
use chatvault_proto::snapshot::v1::snapshot_service_server::SnapshotServiceServer;
use chatvault_proto::storage::v1::files_service_server::FilesServiceServer;
use chatvault_proto::storage::v1::storage_service_server::StorageServiceServer;
use deadpool_postgres::Pool;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

pub use error::Error;

pub const SERVICE_NAME: &str = "storage";
pub const DEFAULT_PORTS: DefaultPorts = DefaultPorts { grpc: 50052, http: 8082 };

/// The storage service's schema, applied at start-up.
pub const MIGRATIONS: &[Migration] = &[
    Migration { id: "storage/0001_chats_and_messages", sql: include_str!("../migrations/0001_chats_and_messages.sql") },
    Migration { id: "storage/0002_files", sql: include_str!("../migrations/0002_files.sql") },
    Migration { id: "storage/0003_message_search", sql: include_str!("../migrations/0003_message_search.sql") },
    Migration { id: "storage/0004_chat_owners", sql: include_str!("../migrations/0004_chat_owners.sql") },
];

/// A built storage service: schema migrated, listeners bound.
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

    /// Runs the projection and serves queries until `shutdown` is cancelled. The projection
    /// finishes its batch in hand before the process exits.
    pub async fn run_until_stopped(self, shutdown: CancellationToken) -> Result<(), Error> {
        let applied = AppliedPositions::default();
        let chat_projection = ProjectionRunner::new(
            projection::ChatEventsProjection,
            self.pool.clone(),
            self.config.kafka.clone(),
            vec![self.config.kafka.topic(CHAT_EVENTS)],
            applied.clone(),
        )
        .with_batch_settings(BatchSettings {
            max_records: self.config.projection_batch_records.max(1),
            ..BatchSettings::default()
        });
        let files_projection = ProjectionRunner::new(
            projection::FileEventsProjection { nodes_topic: self.config.kafka.topic(STORAGE_NODES) },
            self.pool.clone(),
            self.config.kafka.clone(),
            vec![self.config.kafka.topic(FILES_EVENTS), self.config.kafka.topic(STORAGE_NODES)],
            applied.clone(),
        );
        // Downloads, repairs, moves and deletes of parts send a service token to the nodes.
        let node_clients = chatvault_file_store::node_client::NodeClients::new(self.config.auth.service_token_issuer(SERVICE_NAME));
        let file_catalog = files::FileCatalog::new(self.pool.clone(), &self.config.kafka, applied.clone(), self.config.consistency_wait, node_clients)?;
        let rebalance_interval = std::time::Duration::from_millis(self.config.setting("REBALANCE_INTERVAL_MS", 10_000u64)?);
        let (health_reporter, health_service) = tonic_health::server::health_reporter();
        health_reporter.set_serving::<StorageServiceServer<api::StorageApi>>().await;
        let storage_api = api::StorageApi::new(self.pool.clone(), &self.config.kafka, applied, self.config.consistency_wait)?;
        chatvault_common::revocation::spawn_password_change_follower(&self.config.auth, &self.config.kafka, SERVICE_NAME, shutdown.clone());
        let grpc_router = chatvault_common::grpc::authenticated_server(&self.config.auth)
            .add_service(health_service)
            .add_service(chatvault_common::grpc::reflection_service())
            .add_service(StorageServiceServer::new(storage_api))
            .add_service(FilesServiceServer::new(api::FilesApi::new(file_catalog.clone())))
            .add_service(SnapshotServiceServer::new(api::snapshot_exporter(self.pool.clone(), &self.config.kafka)));
        let http_router = chatvault_common::http::router_with_metrics(files::rest::download_routes(file_catalog.clone(), files::share_password_guard::SharePasswordSettings::from_config(&self.config)?).layer(self.config.auth.http_layer()));
        let files_projection_task = files_projection.spawn(shutdown.clone());
        tokio::spawn(files::background::purge_deleted_parts(file_catalog.clone(), shutdown.clone()));
        tokio::spawn(files::background::rebalance_nodes(file_catalog, rebalance_interval, shutdown.clone()));

        let projection_task = chat_projection.spawn(shutdown.clone());
        let grpc = chatvault_common::grpc::serve_grpc_authenticated(self.grpc_listener, grpc_router, shutdown.clone());
        let http = chatvault_common::http::serve_http(self.http_listener, http_router, shutdown.clone());
        let (grpc_result, http_result) = tokio::join!(grpc, http);
        let projection_result = chatvault_common::projection::join_projection(projection_task).await;
        let files_projection_result = chatvault_common::projection::join_projection(files_projection_task).await;
        grpc_result?;
        http_result?;
        projection_result?;
        files_projection_result?;
        Ok(())
    }
}
