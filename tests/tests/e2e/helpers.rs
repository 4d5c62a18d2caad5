//! Starting the services against the real stack, in-process on port 0 or as child
//! processes (for `kill -9`), and small request helpers.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Once;
use std::time::{Duration, Instant};

use chatvault_common::config::{DefaultPorts, ServiceConfig};
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
fn init_test_logging() {
    TELEMETRY.call_once(|| {
        if std::env::var("TEST_LOG").is_ok_and(|value| value == "1") {
            let config = ServiceConfig::from_env_map("test", DefaultPorts { grpc: 0, http: 0 }, &HashMap::new()).expect("config");
            std::mem::forget(chatvault_common::telemetry::init_telemetry("tests", &config.telemetry).expect("telemetry"));
        }
    });
}

/// The environment of one service in one test: its own database and topic prefix.
pub(crate) fn service_environment(database_url: &str, topic_prefix: &str) -> HashMap<String, String> {
    let mut environment = HashMap::new();
    for service in ["INGEST", "STORAGE"] {
        environment.insert(format!("CHATVAULT_{service}_GRPC_ADDR"), "127.0.0.1:0".to_owned());
        environment.insert(format!("CHATVAULT_{service}_HTTP_ADDR"), "127.0.0.1:0".to_owned());
        environment.insert(format!("CHATVAULT_{service}_DATABASE_URL"), database_url.to_owned());
    }
    environment.insert("CHATVAULT_TOPIC_PREFIX".to_owned(), topic_prefix.to_owned());
    environment.insert("CHATVAULT_CONSISTENCY_WAIT_MS".to_owned(), "120000".to_owned());
    if let Ok(brokers) = std::env::var("CHATVAULT_KAFKA_BROKERS") {
        environment.insert("CHATVAULT_KAFKA_BROKERS".to_owned(), brokers);
    }
    environment
}

/// Ingest and storage running in this process against a fresh database and fresh topics.
pub(crate) struct TestPlatform {
    pub(crate) database: TestDb,
    pub(crate) ingest: IngestServiceClient<Channel>,
    pub(crate) storage: StorageServiceClient<Channel>,
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
        Self {
            database,
            ingest: IngestServiceClient::new(connect(ingest_addr).await),
            storage: StorageServiceClient::new(connect(storage_addr).await),
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
    Channel::from_shared(format!("http://{address}"))
        .expect("valid url")
        .connect()
        .await
        .expect("connects to the service")
}

/// Runs ImportExport to its end; returns the summary or the status it ended with.
pub(crate) async fn import_with(ingest: &mut IngestServiceClient<Channel>, path: &Path) -> Result<ImportSummary, tonic::Status> {
    let request = ImportExportRequest { path: path.display().to_string(), local_utc_offset_seconds: 0 };
    let mut updates = ingest.import_export(request).await?.into_inner();
    let mut summary = None;
    while let Some(update) = updates.message().await? {
        if let Some(import_update::Update::Summary(done)) = update.update {
            summary = Some(done);
        }
    }
    summary.ok_or_else(|| tonic::Status::internal("the import stream ended without a summary"))
}

/// The folder of the workspace's built binaries (where `cargo build --bins` put them).
pub(crate) fn binaries_folder() -> PathBuf {
    let test_binary = std::env::current_exe().expect("current exe");
    // target/<profile>/deps/e2e-<hash> → target/<profile>
    test_binary.parent().and_then(Path::parent).expect("target folder").to_path_buf()
}

/// A service running as a child process, killed when dropped.
pub(crate) struct ChildService {
    pub(crate) child: Child,
}

impl Drop for ChildService {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Starts `binary` with `environment` and a free gRPC port; waits until it accepts
/// connections.
pub(crate) async fn spawn_service_process(binary: &str, service: &str, mut environment: HashMap<String, String>, log_path: &Path) -> ChildService {
    let path = binaries_folder().join(binary);
    assert!(path.exists(), "{} is missing: build the binaries first (cargo build --bins)", path.display());
    let grpc_addr = free_local_address();
    environment.insert(format!("CHATVAULT_{service}_GRPC_ADDR"), grpc_addr.to_string());
    let log = std::fs::File::create(log_path).expect("log file");
    let child = Command::new(&path)
        .envs(environment)
        .stdout(Stdio::null())
        .stderr(log)
        .spawn()
        .expect("service process starts");
    let deadline = Instant::now() + Duration::from_secs(60);
    while tokio::net::TcpStream::connect(grpc_addr).await.is_err() {
        assert!(Instant::now() < deadline, "{binary} did not listen on {grpc_addr} within 60 s; see {}", log_path.display());
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    ChildService { child }
}

fn free_local_address() -> SocketAddr {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind port 0");
    listener.local_addr().expect("local addr")
}

/// Polls `condition` until it holds or `limit` passes; returns whether it held.
pub(crate) async fn wait_until<F, Fut>(limit: Duration, mut condition: F) -> bool
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let deadline = Instant::now() + limit;
    while Instant::now() < deadline {
        if condition().await {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    false
}

/// Path of a file under `fixtures/`.
pub(crate) fn fixture(relative: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..").join("fixtures").join(relative)
}
