//! Starting the services against the real stack, in-process on port 0 or as child
//! processes (for `kill -9`), and small request helpers.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Once;

use chatvault_common::config::{DefaultPorts, ServiceConfig};
pub(crate) use chatvault_common::test_support::{service_environment, spawn_service_process, wait_until};
use chatvault_common::test_support::{unique_topic_prefix, TestDb};
use chatvault_proto::common::v1::ConsistencyToken;
use chatvault_proto::ingest::v1::ingest_service_client::IngestServiceClient;
use chatvault_proto::ingest::v1::{import_update, ImportExportRequest, ImportSummary};
use chatvault_proto::storage::v1::storage_service_client::StorageServiceClient;
use chatvault_proto::storage::v1::{GetMessagesRequest, StoredMessage};
use tokio_util::sync::CancellationToken;
use tonic::transport::Channel;

static TELEMETRY: Once = Once::new();

/// Installs log output when `TEST_LOG=1`; tests are quiet otherwise.
pub(crate) fn init_test_logging() {
    TELEMETRY.call_once(|| {
        if std::env::var("TEST_LOG").is_ok_and(|value| value == "1") {
            let quiet = HashMap::from([
                ("CHATVAULT_LOG_SHIPPING".to_owned(), "off".to_owned()),
                ("CHATVAULT_JWT_SECRET".to_owned(), chatvault_common::test_support::TEST_JWT_SECRET.to_string()),
            ]);
            let config = ServiceConfig::from_env_map("test", DefaultPorts { grpc: 0, http: 0 }, &quiet).expect("config");
            std::mem::forget(chatvault_common::telemetry::init_telemetry("tests", &config.telemetry).expect("telemetry"));
        }
    });
}

/// Ingest and storage running in this process against a fresh database and fresh topics.
pub(crate) struct TestPlatform {
    pub(crate) database: TestDb,
    pub(crate) ingest_addr: SocketAddr,
    pub(crate) storage_addr: SocketAddr,
    pub(crate) ingest: IngestServiceClient<Channel>,
    pub(crate) storage: StorageServiceClient<Channel>,
    pub(crate) users: chatvault_proto::users::v1::users_service_client::UsersServiceClient<Channel>,
    shutdown: CancellationToken,
}

impl Drop for TestPlatform {
    fn drop(&mut self) {
        self.shutdown.cancel();
    }
}

impl TestPlatform {
    /// Starts ingest and storage on port 0 and connects clients to them.
    pub(crate) async fn start() -> Self {
        let (database, topic_prefix) = (TestDb::fresh().await, unique_topic_prefix());
        let shutdown = CancellationToken::new();
        let ingest_addr = start_ingest(database.url.expose(), &topic_prefix, shutdown.clone()).await;
        let environment = service_environment(database.url.expose(), &topic_prefix);
        let storage_config = ServiceConfig::from_env_map("storage", chatvault_storage::DEFAULT_PORTS, &environment).expect("storage config");
        let storage_app = chatvault_storage::App::build(storage_config).await.expect("storage starts");
        let storage_addr = storage_app.grpc_addr();
        tokio::spawn(storage_app.run_until_stopped(shutdown.clone()));
        let users_config = ServiceConfig::from_env_map("users", chatvault_users::DEFAULT_PORTS, &environment).expect("users config");
        let users_app = chatvault_users::App::build(users_config).await.expect("users starts");
        let users_addr = users_app.grpc_addr();
        tokio::spawn(users_app.run_until_stopped(shutdown.clone()));
        Self {
            database,
            ingest_addr,
            storage_addr,
            ingest: IngestServiceClient::new(connect(ingest_addr).await),
            storage: StorageServiceClient::new(connect(storage_addr).await),
            users: chatvault_proto::users::v1::users_service_client::UsersServiceClient::new(connect(users_addr).await),
            shutdown,
        }
    }

    /// Imports the export at `path` and returns the summary, or the gRPC status.
    pub(crate) async fn import(&self, path: &Path) -> Result<ImportSummary, tonic::Status> {
        import_with(&mut self.ingest.clone(), path).await
    }

    /// Returns every message of `chat_id` (all pages), after waiting for `token`.
    pub(crate) async fn all_messages(&self, chat_id: i64, token: Option<&ConsistencyToken>) -> Vec<StoredMessage> {
        let mut storage = self.storage.clone();
        let mut page_token = String::new();
        let mut messages = Vec::new();
        loop {
            let page = storage
                .get_messages(GetMessagesRequest {
                    chat_id,
                    limit: 1000,
                    page_token: page_token.clone(),
                    consistency_token: token.cloned(),
                    ..Default::default()
                })
                .await
                .expect("GetMessages succeeds")
                .into_inner();
            messages.extend(page.messages);
            if page.next_page_token.is_empty() {
                return messages;
            }
            page_token = page.next_page_token;
        }
    }
}

/// Starts an in-process ingest service; returns its gRPC address.
pub(crate) async fn start_ingest(database_url: &str, topic_prefix: &str, shutdown: CancellationToken) -> SocketAddr {
    init_test_logging();
    let environment = service_environment(database_url, topic_prefix);
    let config = ServiceConfig::from_env_map("ingest", chatvault_ingest::DEFAULT_PORTS, &environment).expect("ingest config");
    let app = chatvault_ingest::App::build(config).await.expect("ingest starts (is the stack up? scripts/stack.sh up)");
    let address = app.grpc_addr();
    tokio::spawn(app.run_until_stopped(shutdown));
    address
}

pub(crate) async fn connect(address: SocketAddr) -> Channel {
    Channel::from_shared(format!("http://{address}")).expect("valid url").connect().await.expect("connects to the service")
}

/// Runs ImportExport to its end; returns the summary or the status it ended with.
pub(crate) async fn import_with(ingest: &mut IngestServiceClient<Channel>, path: &Path) -> Result<ImportSummary, tonic::Status> {
    let request = ImportExportRequest { path: path.display().to_string(), ..Default::default() };
    let mut updates = ingest.import_export(request).await?.into_inner();
    let mut summary = None;
    while let Some(update) = updates.message().await? {
        if let Some(import_update::Update::Summary(done)) = update.update {
            summary = Some(done);
        }
    }
    summary.ok_or_else(|| tonic::Status::internal("the import stream ended without a summary"))
}

/// Path of a file under `fixtures/`.
pub(crate) fn fixture(relative: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..").join("fixtures").join(relative)
}

/// The gRPC addresses of [`start_core_services`]' services.
#[derive(Clone, Copy, Debug)]
pub(crate) struct CoreServices {
    pub(crate) users: SocketAddr,
    pub(crate) storage: SocketAddr,
    pub(crate) ingest: SocketAddr,
    pub(crate) audit: SocketAddr,
}

/// Starts users, storage, ingest and audit in this process on port 0 with `environment`,
/// each stopped by `shutdown`.
pub(crate) async fn start_core_services(environment: &HashMap<String, String>, shutdown: &CancellationToken) -> CoreServices {
    let build = |service: &str| ServiceConfig::from_env_map(service, DefaultPorts { grpc: 0, http: 0 }, environment).expect("config");
    let users = chatvault_users::App::build(build("users")).await.expect("users starts");
    let users_addr = users.grpc_addr();
    tokio::spawn(users.run_until_stopped(shutdown.clone()));
    let storage = chatvault_storage::App::build(build("storage")).await.expect("storage starts");
    let storage_addr = storage.grpc_addr();
    tokio::spawn(storage.run_until_stopped(shutdown.clone()));
    let ingest = chatvault_ingest::App::build(build("ingest")).await.expect("ingest starts");
    let ingest_addr = ingest.grpc_addr();
    tokio::spawn(ingest.run_until_stopped(shutdown.clone()));
    let audit = chatvault_audit::App::build(build("audit")).await.expect("audit starts");
    let audit_addr = audit.grpc_addr();
    tokio::spawn(audit.run_until_stopped(shutdown.clone()));
    CoreServices { users: users_addr, storage: storage_addr, ingest: ingest_addr, audit: audit_addr }
}
