//! One module per command.

pub(crate) mod accounts;
pub(crate) mod audit;
pub(crate) mod authors;
pub(crate) mod backup;
pub(crate) mod chats;
pub(crate) mod dlq;
pub(crate) mod files;
pub(crate) mod import;
pub(crate) mod messages;
pub(crate) mod nodes;
pub(crate) mod session;
pub(crate) mod telegram;
pub(crate) mod topics;

use std::collections::HashMap;

use anyhow::Context;
use chatvault_common::config::KafkaConfig;
use chatvault_proto::ingest::v1::ingest_service_client::IngestServiceClient;
use chatvault_proto::storage::v1::storage_service_client::StorageServiceClient;
use rdkafka::ClientConfig;
use tonic::service::interceptor::InterceptedService;
use tonic::transport::Channel;

/// A channel that attaches the session's bearer token to every call.
pub(crate) type AuthedChannel = InterceptedService<Channel, session::BearerInterceptor>;

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
    /// gRPC address of the audit service.
    #[arg(long, global = true, env = "CHATVAULT_AUDIT_URL", default_value = "http://127.0.0.1:50054")]
    pub(crate) audit_url: String,
    /// gRPC address of the backup service.
    #[arg(long, global = true, env = "CHATVAULT_BACKUP_URL", default_value = "http://127.0.0.1:50055")]
    pub(crate) backup_url: String,
    /// gRPC address of the Telegram bot service.
    #[arg(long, global = true, env = "CHATVAULT_BOT_URL", default_value = "http://127.0.0.1:50057")]
    pub(crate) bot_url: String,
    /// Kafka bootstrap servers (for `topics` and `dlq`).
    #[arg(long, global = true, env = "CHATVAULT_KAFKA_BROKERS", default_value = "127.0.0.1:9092")]
    pub(crate) kafka_brokers: String,
    /// Prefix of every topic name, as configured on the services.
    #[arg(long, global = true, env = "CHATVAULT_TOPIC_PREFIX", default_value = "")]
    pub(crate) topic_prefix: String,
}

/// Kafka, reached directly (`topics`, `dlq`) with the services' own settings.
impl Endpoints {
    /// Returns the full name of the topic `base_name` (like `chat.events`): the configured
    /// prefix, then the name.
    pub(crate) fn topic(&self, base_name: &str) -> String {
        format!("{}{}", self.topic_prefix, base_name)
    }

    /// Returns the Kafka settings of the services, parsed as they parse them from the
    /// brokers and topic prefix given here (`--kafka-brokers`, `--topic-prefix` or the same
    /// `CHATVAULT_*` variables); the settings the CLI has no use for, such as the partitions
    /// of new topics, keep their defaults.
    pub(crate) fn kafka_config(&self) -> anyhow::Result<KafkaConfig> {
        let environment = HashMap::from([
            ("CHATVAULT_KAFKA_BROKERS".to_owned(), self.kafka_brokers.clone()),
            ("CHATVAULT_TOPIC_PREFIX".to_owned(), self.topic_prefix.clone()),
        ]);
        KafkaConfig::from_env_map(&environment).context("reading the Kafka settings")
    }

    /// Returns the settings of a consumer that reads partitions it assigns itself: it joins
    /// no group and commits nothing (the group id, unique per run, is only a name librdkafka
    /// requires), and reads `read_committed` as the projections do, so records of aborted
    /// imports never show.
    pub(crate) fn kafka_reader_config(&self) -> ClientConfig {
        let mut config = ClientConfig::new();
        config
            .set("bootstrap.servers", &self.kafka_brokers)
            .set("group.id", format!("chatvault-cli-{}-{}", std::process::id(), chrono::Utc::now().timestamp_millis()))
            .set("enable.auto.commit", "false")
            .set("enable.auto.offset.store", "false")
            .set("isolation.level", "read_committed");
        config
    }
}

impl Endpoints {
    pub(crate) async fn ingest(&self) -> anyhow::Result<IngestServiceClient<AuthedChannel>> {
        let channel = connect(&self.ingest_url).await.context("connecting to the ingest service")?;
        Ok(IngestServiceClient::with_interceptor(channel, self.bearer().await).max_decoding_message_size(64 << 20))
    }

    pub(crate) async fn uploads(
        &self,
    ) -> anyhow::Result<chatvault_proto::ingest::v1::file_upload_service_client::FileUploadServiceClient<AuthedChannel>> {
        let channel = connect(&self.ingest_url).await.context("connecting to the ingest service")?;
        Ok(chatvault_proto::ingest::v1::file_upload_service_client::FileUploadServiceClient::with_interceptor(channel, self.bearer().await))
    }

    pub(crate) async fn files(&self) -> anyhow::Result<chatvault_proto::storage::v1::files_service_client::FilesServiceClient<AuthedChannel>> {
        let channel = connect(&self.storage_url).await.context("connecting to the storage service")?;
        Ok(chatvault_proto::storage::v1::files_service_client::FilesServiceClient::with_interceptor(channel, self.bearer().await)
            .max_decoding_message_size(64 << 20))
    }

    pub(crate) async fn storage(&self) -> anyhow::Result<StorageServiceClient<AuthedChannel>> {
        let channel = connect(&self.storage_url).await.context("connecting to the storage service")?;
        Ok(StorageServiceClient::with_interceptor(channel, self.bearer().await).max_decoding_message_size(64 << 20))
    }
}

impl Endpoints {
    pub(crate) async fn users(&self) -> anyhow::Result<chatvault_proto::users::v1::users_service_client::UsersServiceClient<AuthedChannel>> {
        let channel = connect(&self.users_url).await.context("connecting to the users service")?;
        Ok(chatvault_proto::users::v1::users_service_client::UsersServiceClient::with_interceptor(channel, self.bearer().await))
    }
}

impl Endpoints {
    pub(crate) async fn accounts(&self) -> anyhow::Result<chatvault_proto::users::v1::accounts_service_client::AccountsServiceClient<AuthedChannel>> {
        let channel = connect(&self.users_url).await.context("connecting to the users service")?;
        Ok(chatvault_proto::users::v1::accounts_service_client::AccountsServiceClient::with_interceptor(channel, self.bearer().await))
    }

    pub(crate) async fn backup(&self) -> anyhow::Result<chatvault_proto::backup::v1::backup_service_client::BackupServiceClient<AuthedChannel>> {
        let channel = connect(&self.backup_url).await.context("connecting to the backup service")?;
        Ok(chatvault_proto::backup::v1::backup_service_client::BackupServiceClient::with_interceptor(channel, self.bearer().await)
            .max_encoding_message_size(16 << 20))
    }

    pub(crate) async fn telegram(&self) -> anyhow::Result<chatvault_proto::bot::v1::telegram_service_client::TelegramServiceClient<AuthedChannel>> {
        let channel = connect(&self.bot_url).await.context("connecting to the bot service")?;
        Ok(chatvault_proto::bot::v1::telegram_service_client::TelegramServiceClient::with_interceptor(channel, self.bearer().await))
    }

    pub(crate) async fn audit(&self) -> anyhow::Result<chatvault_proto::audit::v1::audit_service_client::AuditServiceClient<AuthedChannel>> {
        let channel = connect(&self.audit_url).await.context("connecting to the audit service")?;
        Ok(chatvault_proto::audit::v1::audit_service_client::AuditServiceClient::with_interceptor(channel, self.bearer().await))
    }

    /// Returns the interceptor carrying `CHATVAULT_TOKEN` or the stored access token,
    /// refreshing a stored one that is about to expire.
    pub(crate) async fn bearer(&self) -> session::BearerInterceptor {
        if let Some(token) = std::env::var("CHATVAULT_TOKEN").ok().filter(|token| !token.trim().is_empty()) {
            return session::BearerInterceptor::new(Some(token));
        }
        let Some(tokens) = session::load_tokens() else {
            return session::BearerInterceptor::default();
        };
        if tokens.access_expires_unix > chrono::Utc::now().timestamp() + 30 {
            return session::BearerInterceptor::new(Some(tokens.access_token));
        }
        match self.refresh_stored_tokens(&tokens).await {
            Ok(access_token) => session::BearerInterceptor::new(Some(access_token)),
            // The service answers UNAUTHENTICATED with a hint to log in again.
            Err(_) => session::BearerInterceptor::new(Some(tokens.access_token)),
        }
    }

    async fn refresh_stored_tokens(&self, tokens: &session::StoredTokens) -> anyhow::Result<String> {
        let channel = connect(&self.users_url).await?;
        let mut accounts = chatvault_proto::users::v1::accounts_service_client::AccountsServiceClient::new(channel);
        let pair = accounts.refresh(chatvault_proto::users::v1::RefreshRequest { refresh_token: tokens.refresh_token.clone() }).await?.into_inner();
        session::save_tokens(&session::StoredTokens {
            access_token: pair.access_token.clone(),
            refresh_token: pair.refresh_token,
            access_expires_unix: pair.access_expires_unix,
            refresh_expires_unix: pair.refresh_expires_unix,
            username: tokens.username.clone(),
        })?;
        Ok(pair.access_token)
    }
}

async fn connect(url: &str) -> anyhow::Result<Channel> {
    let endpoint = Channel::from_shared(url.to_owned()).with_context(|| format!("{url} is not a valid URL"))?;
    // Files move through the same channels: large frames and windows, no Nagle.
    chatvault_common::grpc::bulk_transfer_endpoint(endpoint)
        .connect_timeout(std::time::Duration::from_secs(5))
        .connect()
        .await
        .with_context(|| format!("cannot reach {url} (is the platform up? `task runAll`)"))
}
