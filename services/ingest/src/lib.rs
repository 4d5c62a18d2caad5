//! The ingest service: parses Telegram Desktop exports and publishes their chats and
//! messages to `chat.events` inside one Kafka transaction per import.

pub mod api;
pub mod error;
pub mod files;
pub mod import;

use std::net::SocketAddr;

use chatvault_common::config::{DefaultPorts, ServiceConfig};
use chatvault_proto::ingest::v1::file_upload_service_server::FileUploadServiceServer;
use chatvault_proto::ingest::v1::ingest_service_server::IngestServiceServer;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

pub use error::Error;

pub const SERVICE_NAME: &str = "ingest";
pub const DEFAULT_PORTS: DefaultPorts = DefaultPorts { grpc: 50051, http: 8081 };

/// A built ingest service: listeners bound, topics ensured, ready to serve.
#[derive(Debug)]
pub struct App {
    config: ServiceConfig,
    grpc_listener: TcpListener,
    http_listener: TcpListener,
}

impl App {
    /// Binds the listeners (port 0 picks a free port) and creates missing topics.
    pub async fn build(config: ServiceConfig) -> Result<Self, Error> {
        chatvault_common::topics::ensure_topics(&config.kafka).await?;
        let grpc_listener = TcpListener::bind(config.grpc_addr).await?;
        let http_listener = TcpListener::bind(config.http_addr).await?;
        Ok(Self { config, grpc_listener, http_listener })
    }

    /// Returns the bound gRPC address.
    pub fn grpc_addr(&self) -> SocketAddr {
        self.grpc_listener.local_addr().unwrap_or(self.config.grpc_addr)
    }

    /// Returns the bound HTTP address.
    pub fn http_addr(&self) -> SocketAddr {
        self.http_listener.local_addr().unwrap_or(self.config.http_addr)
    }

    /// Serves gRPC and HTTP until `shutdown` is cancelled.
    pub async fn run_until_stopped(self, shutdown: CancellationToken) -> Result<(), Error> {
        let (health_reporter, health_service) = tonic_health::server::health_reporter();
        health_reporter.set_serving::<IngestServiceServer<api::IngestApi>>().await;
        let uploads = api::UploadSettings {
            folder: self.config.setting("UPLOAD_DIR", std::env::temp_dir().join("chatvault-uploads"))?,
            max_bytes: self.config.setting("MAX_UPLOAD_BYTES", 64u64 << 30)?,
            unpack_limits: unpack_limits_of(&self.config)?,
        };
        // Every call to a node carries a service token signed with the installation's secret.
        let node_clients = chatvault_file_store::node_client::NodeClients::new(self.config.auth.service_token_issuer(SERVICE_NAME));
        let node_directory = chatvault_file_store::directory::NodeDirectory::new(node_clients);
        let uploader = files::FileUploader::new(node_directory.clone(), &self.config.kafka, files::UploadSettings::from_config(&self.config)?)?;
        let ingest_api = api::IngestApi::new(self.config.kafka.clone(), uploads, uploader.clone(), shutdown.clone());
        let directory_kafka = self.config.kafka.clone();
        let directory_shutdown = shutdown.clone();
        tokio::spawn(async move {
            if let Err(error) = node_directory.follow_topic(&directory_kafka, SERVICE_NAME, directory_shutdown).await {
                tracing::error!(%error, "following storage.nodes failed; uploads see no new nodes");
            }
        });
        chatvault_common::revocation::spawn_password_change_follower(&self.config.auth, &self.config.kafka, SERVICE_NAME, shutdown.clone());
        let grpc_router = chatvault_common::grpc::authenticated_server(&self.config.auth)
            .add_service(health_service)
            .add_service(chatvault_common::grpc::reflection_service())
            .add_service(IngestServiceServer::new(ingest_api))
            .add_service(FileUploadServiceServer::new(api::FileUploadApi::new(uploader.clone())));
        let http_router = chatvault_common::http::router_with_metrics(files::upload_routes(uploader).layer(self.config.auth.http_layer()));
        let grpc = chatvault_common::grpc::serve_grpc_authenticated(self.grpc_listener, grpc_router, shutdown.clone());
        let http = chatvault_common::http::serve_http(self.http_listener, http_router, shutdown.clone());
        let (grpc_result, http_result) = tokio::join!(grpc, http);
        grpc_result?;
        http_result?;
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
        return Err(Error::InvalidArgument(
            "CHATVAULT_INGEST_MAX_UNPACKED_BYTES, _MAX_UNPACK_RATIO and _MAX_ZIP_ENTRIES must be above 0".to_owned(),
        ));
    }
    Ok(limits)
}
