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

use chatvault_common::config::{DefaultPorts, ServiceConfig};
use chatvault_common::grpc::GrpcServices;
use chatvault_common::host::{GrpcAudience, Host, HostPlan};
use chatvault_proto::storagenode::v1::storage_node_service_server::StorageNodeServiceServer;
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
    host: Host,
}

impl App {
    /// Opens the data folder, settles the node id and binds the listeners.
    pub async fn build(config: NodeConfig) -> Result<Self, Error> {
        std::fs::create_dir_all(&config.data_dir)?;
        let node_id = settle_node_id(&config)?;
        let store = Arc::new(part_store::PartStore::open(&config.data_dir)?);
        let plan = HostPlan {
            service_name: SERVICE_NAME,
            migrations: None,
            audience: GrpcAudience::ServicesOnly,
            uses_kafka: false,
            // A part message is up to a few MiB: wide windows keep a stream from stalling
            // on flow control between two messages.
            transfer_windows: Some((4 << 20, 32 << 20)),
        };
        let host = Host::build(config.service, plan).await?;
        Ok(Self { node_id, store, host })
    }

    pub fn node_id(&self) -> &str {
        &self.node_id
    }

    pub fn grpc_addr(&self) -> SocketAddr {
        self.host.grpc_addr()
    }

    pub fn http_addr(&self) -> SocketAddr {
        self.host.http_addr()
    }

    /// Serves gRPC and HTTP until `shutdown` is cancelled.
    pub async fn run_until_stopped(self, shutdown: CancellationToken) -> Result<(), Error> {
        let node_api = api::StorageNodeApi::new(self.node_id.clone(), self.store);
        let max_message = chatvault_file_store::node_client::MAX_MESSAGE_BYTES;
        let grpc = GrpcServices::new()
            .add_service(StorageNodeServiceServer::new(node_api).max_decoding_message_size(max_message).max_encoding_message_size(max_message));
        self.host.serve(grpc, axum::Router::new(), shutdown).await?;
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
