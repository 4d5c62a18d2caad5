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
use chatvault_common::grpc::GrpcServices;
use chatvault_common::host::{Host, HostPlan};
use chatvault_common::topics::{CHAT_EVENTS, FILES_EVENTS, STORAGE_NODES, USERS_EVENTS};
use chatvault_proto::snapshot::v1::snapshot_service_server::SnapshotServiceServer;
use chatvault_proto::storage::v1::files_service_server::FilesServiceServer;
use chatvault_proto::storage::v1::storage_service_server::StorageServiceServer;
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
    Migration { id: "storage/0005_known_accounts", sql: include_str!("../migrations/0005_known_accounts.sql") },
];

/// A built storage service: schema migrated, listeners bound.
#[derive(Debug)]
pub struct App {
    host: Host,
}

impl App {
    /// Connects to the database, applies migrations, ensures topics and binds listeners.
    pub async fn build(config: ServiceConfig) -> Result<Self, Error> {
        let plan = HostPlan::with_database(SERVICE_NAME, MIGRATIONS);
        Ok(Self { host: Host::build(config, plan).await? })
    }

    pub fn grpc_addr(&self) -> SocketAddr {
        self.host.grpc_addr()
    }

    pub fn http_addr(&self) -> SocketAddr {
        self.host.http_addr()
    }

    /// Runs the projections and the file maintenance loops, and serves queries until
    /// `shutdown` is cancelled. Each projection finishes its batch in hand before the
    /// process exits.
    pub async fn run_until_stopped(self, shutdown: CancellationToken) -> Result<(), Error> {
        let mut host = self.host;
        let config = host.config().clone();
        let pool = host.pool()?;
        let applied = AppliedPositions::default();
        let chat_projection = host.projection(projection::ChatEventsProjection, &[CHAT_EVENTS], applied.clone())?;
        host.spawn_projection(chat_projection);
        let accounts_projection = host.projection(projection::AccountsProjection, &[USERS_EVENTS], applied.clone())?;
        host.spawn_projection(accounts_projection);
        let files_projection = host.projection(
            projection::FileEventsProjection { nodes_topic: config.kafka.topic(STORAGE_NODES) },
            &[FILES_EVENTS, STORAGE_NODES],
            applied.clone(),
        )?;
        host.spawn_projection(files_projection);
        // Downloads, repairs, moves and deletes of parts send a service token to the nodes.
        let node_clients = chatvault_file_store::node_client::NodeClients::new(config.auth.service_token_issuer(SERVICE_NAME));
        let file_catalog = files::FileCatalog::new(pool.clone(), &config.kafka, applied.clone(), config.consistency_wait, node_clients)?;
        let rebalance_interval = std::time::Duration::from_millis(config.setting("REBALANCE_INTERVAL_MS", 10_000u64)?);
        let purge_catalog = file_catalog.clone();
        host.spawn_loop("purge of deleted parts", move |stop| async move {
            files::background::purge_deleted_parts(purge_catalog, stop).await;
            Ok::<(), Error>(())
        });
        let rebalance_catalog = file_catalog.clone();
        host.spawn_loop("node rebalancer", move |stop| async move {
            files::background::rebalance_nodes(rebalance_catalog, rebalance_interval, stop).await;
            Ok::<(), Error>(())
        });
        let storage_api = api::StorageApi::new(pool.clone(), &config.kafka, applied, config.consistency_wait)?;
        let grpc = GrpcServices::new()
            .add_service(StorageServiceServer::new(storage_api))
            .add_service(FilesServiceServer::new(api::FilesApi::new(file_catalog.clone())))
            .add_service(SnapshotServiceServer::new(api::snapshot_exporter(pool, &config.kafka)));
        let share_passwords = files::share_password_guard::SharePasswordSettings::from_config(&config)?;
        let http_routes = files::rest::download_routes(file_catalog, share_passwords).layer(config.auth.http_layer());
        host.serve(grpc, http_routes, shutdown).await?;
        Ok(())
    }
}
