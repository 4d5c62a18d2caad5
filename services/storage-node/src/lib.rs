//! A storage node: stores file parts on its local disk (`part_store`) and serves them over
//! gRPC (`api`): put, get, stat and delete of a part, and its used and free bytes. Writes
//! are atomic; every block is checked by SHA-256 on write and on read.
//!
//! A node answers only the platform's own services: every call but health and reflection
//! needs a token of the `service` role signed with the installation's
//! `CHATVAULT_JWT_SECRET` (minted per call by ingest and storage, see
//! `chatvault_file_store::node_client`). No token or a token signed with another secret is
//! UNAUTHENTICATED; a user's or admin's token is PERMISSION_DENIED, since nobody but the
//! services has business reading or deleting raw parts. The node therefore needs the same
//! `CHATVAULT_JWT_SECRET` as the services and refuses to start without a strong one.

pub mod api;
pub mod error;
pub mod part_store;

use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;

use chatvault_common::auth::AuthConfig;
use chatvault_common::config::{DefaultPorts, ServiceConfig};
use chatvault_proto::storagenode::v1::storage_node_service_server::StorageNodeServiceServer;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

pub use error::Error;

pub const SERVICE_NAME: &str = "storage-node";
pub const DEFAULT_PORTS: DefaultPorts = DefaultPorts { grpc: 50101, http: 8101 };

/// A storage node's configuration.
#[derive(Clone, Debug)]
pub struct NodeConfig {
    /// Addresses, telemetry and the service credential check (`CHATVAULT_STORAGE_NODE_GRPC_ADDR`,
    /// `…_HTTP_ADDR`, `CHATVAULT_JWT_SECRET`, `CHATVAULT_AUTH`).
    pub service: ServiceConfig,
    /// `CHATVAULT_NODE_ID`; when unset, the id stored in the data folder, else a new UUID
    /// kept there.
    pub node_id: Option<String>,
    /// `CHATVAULT_NODE_DATA_DIR`, default `.state/nodes/default`.
    pub data_dir: PathBuf,
}

impl NodeConfig {
    /// Reads the configuration from the process environment.
    pub fn from_process_env() -> Result<Self, Error> {
        Self::from_env_map(&std::env::vars().collect())
    }

    /// Reads the configuration from `environment`.
    pub fn from_env_map(environment: &HashMap<String, String>) -> Result<Self, Error> {
        let service = ServiceConfig::from_env_map(SERVICE_NAME, DEFAULT_PORTS, environment)?;
        let node_id = environment.get("CHATVAULT_NODE_ID").filter(|value| !value.is_empty()).cloned();
        let data_dir = environment
            .get("CHATVAULT_NODE_DATA_DIR")
            .filter(|value| !value.is_empty())
            .map(PathBuf::from)
            .unwrap_or_else(|| PathBuf::from(".state/nodes/default"));
        Ok(Self { service, node_id, data_dir })
    }
}

/// A built storage node: data folder opened, listeners bound.
#[derive(Debug)]
pub struct App {
    node_id: String,
    store: Arc<part_store::PartStore>,
    auth: AuthConfig,
    grpc_listener: TcpListener,
    http_listener: TcpListener,
}

impl App {
    /// Opens the data folder, settles the node id and binds the listeners.
    pub async fn build(config: NodeConfig) -> Result<Self, Error> {
        std::fs::create_dir_all(&config.data_dir)?;
        let node_id = settle_node_id(&config)?;
        let store = Arc::new(part_store::PartStore::open(&config.data_dir)?);
        let grpc_listener = TcpListener::bind(config.service.grpc_addr).await?;
        let http_listener = TcpListener::bind(config.service.http_addr).await?;
        Ok(Self { node_id, store, auth: config.service.auth, grpc_listener, http_listener })
    }

    pub fn node_id(&self) -> &str {
        &self.node_id
    }

    pub fn grpc_addr(&self) -> SocketAddr {
        self.grpc_listener.local_addr().expect("bound listener has an address")
    }

    pub fn http_addr(&self) -> SocketAddr {
        self.http_listener.local_addr().expect("bound listener has an address")
    }

    /// Serves gRPC and HTTP until `shutdown` is cancelled.
    pub async fn run_until_stopped(self, shutdown: CancellationToken) -> Result<(), Error> {
        let (health_reporter, health_service) = tonic_health::server::health_reporter();
        health_reporter.set_serving::<StorageNodeServiceServer<api::StorageNodeApi>>().await;
        let node_api = api::StorageNodeApi::new(self.node_id.clone(), self.store);
        let max_message = chatvault_file_store::node_client::MAX_MESSAGE_BYTES;
        let grpc_router = tonic::transport::Server::builder()
            .initial_stream_window_size(Some(4 << 20))
            .initial_connection_window_size(Some(32 << 20))
            .layer(self.auth.services_only_grpc_layer())
            .add_service(health_service)
            .add_service(chatvault_common::grpc::reflection_service())
            .add_service(StorageNodeServiceServer::new(node_api).max_decoding_message_size(max_message).max_encoding_message_size(max_message));
        let http_router = chatvault_common::http::router_with_metrics(axum::Router::new());
        let grpc = grpc_router
            .serve_with_incoming_shutdown(tokio_stream::wrappers::TcpListenerStream::new(self.grpc_listener), shutdown.clone().cancelled_owned());
        let http = chatvault_common::http::serve_http(self.http_listener, http_router, shutdown.clone());
        let (grpc_result, http_result) = tokio::join!(grpc, http);
        grpc_result?;
        http_result?;
        Ok(())
    }
}

/// The configured id must match the one the data folder was created with.
fn settle_node_id(config: &NodeConfig) -> Result<String, Error> {
    let id_path = config.data_dir.join("node_id");
    let stored = std::fs::read_to_string(&id_path).ok().map(|text| text.trim().to_owned()).filter(|text| !text.is_empty());
    match (&config.node_id, stored) {
        (Some(configured), Some(stored)) if *configured != stored => Err(Error::InvalidArgument(format!(
            "CHATVAULT_NODE_ID={configured} but the data folder {} belongs to node {stored}",
            config.data_dir.display()
        ))),
        (_, Some(stored)) => Ok(stored),
        (configured, None) => {
            let node_id = configured.clone().unwrap_or_else(|| uuid::Uuid::new_v4().to_string());
            if !node_id.bytes().all(|byte| byte.is_ascii_alphanumeric() || matches!(byte, b'-' | b'_' | b'.')) {
                return Err(Error::InvalidArgument(format!("CHATVAULT_NODE_ID {node_id:?} may hold letters, digits, '-', '_', '.' only")));
            }
            std::fs::write(&id_path, &node_id)?;
            Ok(node_id)
        }
    }
}
