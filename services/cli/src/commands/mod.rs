//! One module per command.

pub(crate) mod authors;
pub(crate) mod chats;
pub(crate) mod files;
pub(crate) mod import;
pub(crate) mod messages;
pub(crate) mod nodes;
pub(crate) mod topics;

use anyhow::Context;
use chatvault_proto::ingest::v1::ingest_service_client::IngestServiceClient;
use chatvault_proto::storage::v1::storage_service_client::StorageServiceClient;
use tonic::transport::Channel;

/// Where the services are.
#[derive(Debug, clap::Args)]
pub(crate) struct Endpoints {
    /// gRPC address of the ingest service.
    #[arg(long, global = true, env = "CHATVAULT_INGEST_URL", default_value = "http://127.0.0.1:50051")]
    pub(crate) ingest_url: String,
    /// gRPC address of the storage service.
    #[arg(long, global = true, env = "CHATVAULT_STORAGE_URL", default_value = "http://127.0.0.1:50052")]
    pub(crate) storage_url: String,
    /// gRPC address of the users service.
    #[arg(long, global = true, env = "CHATVAULT_USERS_URL", default_value = "http://127.0.0.1:50053")]
    pub(crate) users_url: String,
    /// Kafka bootstrap servers (for `topics`).
    #[arg(long, global = true, env = "CHATVAULT_KAFKA_BROKERS", default_value = "127.0.0.1:9092")]
    pub(crate) kafka_brokers: String,
    /// Prefix of every topic name, as configured on the services.
    #[arg(long, global = true, env = "CHATVAULT_TOPIC_PREFIX", default_value = "")]
    pub(crate) topic_prefix: String,
}

impl Endpoints {
    pub(crate) async fn ingest(&self) -> anyhow::Result<IngestServiceClient<Channel>> {
        let channel = connect(&self.ingest_url).await.context("connecting to the ingest service")?;
        Ok(IngestServiceClient::new(channel).max_decoding_message_size(64 << 20))
    }

    pub(crate) async fn uploads(&self) -> anyhow::Result<chatvault_proto::ingest::v1::file_upload_service_client::FileUploadServiceClient<Channel>> {
        let channel = connect(&self.ingest_url).await.context("connecting to the ingest service")?;
        Ok(chatvault_proto::ingest::v1::file_upload_service_client::FileUploadServiceClient::new(channel))
    }

    pub(crate) async fn files(&self) -> anyhow::Result<chatvault_proto::storage::v1::files_service_client::FilesServiceClient<Channel>> {
        let channel = connect(&self.storage_url).await.context("connecting to the storage service")?;
        Ok(chatvault_proto::storage::v1::files_service_client::FilesServiceClient::new(channel).max_decoding_message_size(64 << 20))
    }

    pub(crate) async fn storage(&self) -> anyhow::Result<StorageServiceClient<Channel>> {
        let channel = connect(&self.storage_url).await.context("connecting to the storage service")?;
        Ok(StorageServiceClient::new(channel).max_decoding_message_size(64 << 20))
    }
}

impl Endpoints {
    pub(crate) async fn users(&self) -> anyhow::Result<chatvault_proto::users::v1::users_service_client::UsersServiceClient<Channel>> {
        let channel = connect(&self.users_url).await.context("connecting to the users service")?;
        Ok(chatvault_proto::users::v1::users_service_client::UsersServiceClient::new(channel))
    }
}

async fn connect(url: &str) -> anyhow::Result<Channel> {
    let endpoint = Channel::from_shared(url.to_owned()).with_context(|| format!("{url} is not a valid URL"))?;
    endpoint
        .connect_timeout(std::time::Duration::from_secs(5))
        .connect()
        .await
        .with_context(|| format!("cannot reach {url} (is the platform up? `task runAll`)"))
}
