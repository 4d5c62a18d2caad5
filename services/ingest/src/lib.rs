//! The ingest service: parses Telegram Desktop exports and publishes their chats and
//! messages to `chat.events` as staged imports (see `chatvault_common::staged`).

pub mod api;
pub mod error;
pub mod files;
pub mod import;

use std::net::SocketAddr;

use chatvault_common::config::{DefaultPorts, ServiceConfig};
use chatvault_common::grpc::GrpcServices;
use chatvault_common::host::{Host, HostPlan};
use chatvault_proto::ingest::v1::file_upload_service_server::FileUploadServiceServer;
use chatvault_proto::ingest::v1::ingest_service_server::IngestServiceServer;
use tokio_util::sync::CancellationToken;

pub use error::Error;

pub const SERVICE_NAME: &str = "ingest";
pub const DEFAULT_PORTS: DefaultPorts = DefaultPorts { grpc: 50051, http: 8081 };

/// A built ingest service: listeners bound, topics ensured, ready to serve.
#[derive(Debug)]
pub struct App {
    host: Host,
}

impl App {
    /// Binds the listeners (port 0 picks a free port) and creates missing topics.
    pub async fn build(config: ServiceConfig) -> Result<Self, Error> {
        let plan = HostPlan::without_database(SERVICE_NAME);
        Ok(Self { host: Host::build(config, plan).await? })
    }

    /// Returns the bound gRPC address.
    pub fn grpc_addr(&self) -> SocketAddr {
        self.host.grpc_addr()
    }

    /// Returns the bound HTTP address.
    pub fn http_addr(&self) -> SocketAddr {
        self.host.http_addr()
    }

    /// Serves gRPC and HTTP, and follows `storage.nodes`, until `shutdown` is cancelled.
    pub async fn run_until_stopped(self, shutdown: CancellationToken) -> Result<(), Error> {
        let mut host = self.host;
        let config = host.config().clone();
        let uploads = api::UploadSettings {
            folder: config.setting("UPLOAD_DIR", std::env::temp_dir().join("chatvault-uploads"))?,
            max_bytes: config.setting("MAX_UPLOAD_BYTES", 64u64 << 30)?,
            unpack_limits: unpack_limits_of(&config)?,
        };
        // Every call to a node carries a service token signed with the installation's secret.
        let node_clients = chatvault_file_store::node_client::NodeClients::new(config.auth.service_token_issuer(SERVICE_NAME));
        let node_directory = chatvault_file_store::directory::NodeDirectory::new(node_clients);
        let uploader = files::FileUploader::new(node_directory.clone(), &config.kafka, files::UploadSettings::from_config(&config)?)?;
        let ingest_api = api::IngestApi::new(config.kafka.clone(), uploads, uploader.clone(), host.stop_token());
        let directory_kafka = config.kafka.clone();
        host.spawn_loop("storage.nodes follower", move |stop| async move {
            node_directory.follow_topic(&directory_kafka, SERVICE_NAME, stop).await.inspect_err(|error| {
                tracing::error!(%error, "following storage.nodes failed; uploads see no new nodes");
            })
        });
        let grpc = GrpcServices::new()
            .add_service(IngestServiceServer::new(ingest_api))
            .add_service(FileUploadServiceServer::new(api::FileUploadApi::new(uploader.clone())));
        let http_routes = files::upload_routes(uploader).layer(config.auth.http_layer());
        host.serve(grpc, http_routes, shutdown).await?;
        Ok(())
    }
}

/// Reads the bounds on unpacking uploaded archives (`CHATVAULT_INGEST_MAX_UNPACKED_BYTES`,
/// `_MAX_UNPACK_RATIO`, `_MAX_ZIP_ENTRIES`); zero is refused, it would refuse every archive.
fn unpack_limits_of(config: &ServiceConfig) -> Result<import::upload::UnpackLimits, Error> {
    let defaults = import::upload::UnpackLimits::default();
    let limits = import::upload::UnpackLimits {
        max_unpacked_bytes: config.setting("MAX_UNPACKED_BYTES", defaults.max_unpacked_bytes)?,
        max_unpack_ratio: config.setting("MAX_UNPACK_RATIO", defaults.max_unpack_ratio)?,
        max_entries: config.setting("MAX_ZIP_ENTRIES", defaults.max_entries)?,
    };
    if limits.max_unpacked_bytes == 0 || limits.max_unpack_ratio == 0 || limits.max_entries == 0 {
        return Err(Error::InvalidArgument("CHATVAULT_INGEST_MAX_UNPACKED_BYTES, _MAX_UNPACK_RATIO and _MAX_ZIP_ENTRIES must be above 0".to_owned()));
    }
    Ok(limits)
}
