//! Helpers for tests against the real stack: a fresh database per test and unique topic
//! prefixes and group names, so no two tests share state.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use tokio_postgres::NoTls;

use crate::config::{KafkaConfig, Secret};

/// URL of a role that may create databases: `CHATVAULT_TEST_ADMIN_DATABASE_URL`, else the
/// local stack's `storage` role (CREATEDB) with the password `scripts/stack.sh up` generated
/// into `.state/secrets/postgres-storage`.
pub fn admin_database_url() -> String {
    if let Ok(url) = std::env::var("CHATVAULT_TEST_ADMIN_DATABASE_URL") {
        return url;
    }
    let password_file = Path::new(env!("CARGO_MANIFEST_DIR")).join("../.state/secrets/postgres-storage");
    let password = std::fs::read_to_string(&password_file)
        .unwrap_or_else(|error| panic!("{} cannot be read ({error}): run scripts/stack.sh up first", password_file.display()));
    format!("postgres://storage:{}@127.0.0.1:5432/storage", password.trim())
}

/// A database created for one test. It outlives the test (services may still hold
/// connections, and a failed test's rows are worth a look); `scripts/test.sh` drops the
/// ones of earlier runs before it runs the tests.
#[derive(Debug)]
pub struct TestDb {
    pub name: String,
    pub url: Secret,
}

impl TestDb {
    /// Creates `test_<uuid>`; migrations run when the service starts on it.
    pub async fn fresh() -> Self {
        let name = format!("test_{}", uuid::Uuid::new_v4().simple());
        let admin_url = admin_database_url();
        let (client, connection) = tokio_postgres::connect(&admin_url, NoTls).await.expect("connect as the admin role");
        tokio::spawn(connection);
        client.batch_execute(&format!("CREATE DATABASE {name}")).await.expect("create the test database");
        let mut config: tokio_postgres::Config = admin_url.parse().expect("admin url parses");
        config.dbname(&name);
        let url = format!(
            "postgres://{}:{}@{}:{}/{}",
            config.get_user().unwrap_or("storage"),
            std::str::from_utf8(config.get_password().unwrap_or(b"storage")).unwrap_or("storage"),
            "127.0.0.1",
            config.get_ports().first().copied().unwrap_or(5432),
            name
        );
        Self { name, url: Secret::new(url) }
    }

    /// Returns a client connected to this database.
    pub async fn client(&self) -> tokio_postgres::Client {
        let (client, connection) = tokio_postgres::connect(self.url.expose(), NoTls).await.expect("connect to the test database");
        tokio::spawn(connection);
        client
    }
}

/// This process's run: every topic prefix it hands out starts with `test.<run>.`.
static RUN: std::sync::LazyLock<String> = std::sync::LazyLock::new(|| uuid::Uuid::new_v4().simple().to_string()[..8].to_owned());
static SWEEP: std::sync::Once = std::sync::Once::new();

/// Returns a topic prefix no other test uses, like `test.3f2a9c01.77d0e4b2.`. The first call
/// of a process deletes the topics earlier runs left behind (see
/// [`delete_topics_of_earlier_runs`]).
pub fn unique_topic_prefix() -> String {
    SWEEP.call_once(delete_topics_of_earlier_runs);
    format!("test.{}.{}.", *RUN, &uuid::Uuid::new_v4().simple().to_string()[..8])
}

/// Most topics deleted per request.
const TOPICS_PER_DELETE: usize = 500;

/// Deletes every `test.…` topic on the broker that is not of this process's run. Test
/// processes run one at a time (`cargo test` runs its binaries in turn; `scripts/test.sh`
/// and `scripts/bench.sh` end stray ones first), so such topics are left over: without this
/// a developer's broker piles up thousands of partitions (17,312 partition folders were seen),
/// starts slowly and answers late enough for an import's records to time out. Best effort:
/// a failure is printed and the tests go on.
fn delete_topics_of_earlier_runs() {
    use rdkafka::admin::{AdminClient, AdminOptions};
    use rdkafka::client::DefaultClientContext;
    let brokers = std::env::var("CHATVAULT_KAFKA_BROKERS").unwrap_or_else(|_| "127.0.0.1:9092".to_owned());
    let sweep = move || -> Result<usize, rdkafka::error::KafkaError> {
        let admin: AdminClient<DefaultClientContext> = rdkafka::ClientConfig::new().set("bootstrap.servers", &brokers).create()?;
        let metadata = admin.inner().fetch_metadata(None, Duration::from_secs(10))?;
        let own = format!("test.{}.", *RUN);
        let stale: Vec<String> = metadata
            .topics()
            .iter()
            .map(|topic| topic.name().to_owned())
            .filter(|name| name.starts_with("test.") && !name.starts_with(&own))
            .collect();
        let options = AdminOptions::new().operation_timeout(Some(Duration::from_secs(60)));
        for batch in stale.chunks(TOPICS_PER_DELETE) {
            let names: Vec<&str> = batch.iter().map(String::as_str).collect();
            futures::executor::block_on(admin.delete_topics(&names, &options))?;
        }
        Ok(stale.len())
    };
    // Its own thread: the admin client's futures block, and callers may be on a runtime.
    match std::thread::spawn(sweep).join() {
        Ok(Ok(0)) => {}
        Ok(Ok(deleted)) => eprintln!("test support: deleted {deleted} topics of earlier test runs"),
        Ok(Err(error)) => eprintln!("test support: topics of earlier test runs were not deleted: {error}"),
        Err(_) => eprintln!("test support: deleting topics of earlier test runs panicked"),
    }
}

/// Returns Kafka settings for the local broker with a unique topic prefix.
pub fn unique_kafka_config() -> KafkaConfig {
    let mut environment: HashMap<String, String> = HashMap::new();
    if let Ok(brokers) = std::env::var("CHATVAULT_KAFKA_BROKERS") {
        environment.insert("CHATVAULT_KAFKA_BROKERS".to_owned(), brokers);
    }
    environment.insert("CHATVAULT_TOPIC_PREFIX".to_owned(), unique_topic_prefix());
    KafkaConfig::from_env_map(&environment).expect("kafka settings parse")
}

/// The JWT secret of services started by [`service_environment`]: random, made once per
/// test process (so no secret of a test run is ever public), the same for every service
/// and child process the run starts.
///
/// Use it where a `&str` or `String` goes: `Secret::new(TEST_JWT_SECRET)`,
/// `&*TEST_JWT_SECRET`, `TEST_JWT_SECRET.to_string()`.
pub const TEST_JWT_SECRET: TestJwtSecret = TestJwtSecret;

/// The type of [`TEST_JWT_SECRET`]: a handle on the process's random test secret.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TestJwtSecret;

impl TestJwtSecret {
    /// Returns the secret: 64 hex digits from two random (v4) UUIDs, 244 random bits.
    pub fn expose(self) -> &'static str {
        static SECRET: std::sync::OnceLock<String> = std::sync::OnceLock::new();
        SECRET.get_or_init(|| format!("{}{}", uuid::Uuid::new_v4().simple(), uuid::Uuid::new_v4().simple()))
    }
}

impl std::ops::Deref for TestJwtSecret {
    type Target = str;

    fn deref(&self) -> &str {
        self.expose()
    }
}

impl AsRef<str> for TestJwtSecret {
    fn as_ref(&self) -> &str {
        self.expose()
    }
}

impl std::fmt::Display for TestJwtSecret {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        formatter.write_str(self.expose())
    }
}

impl From<TestJwtSecret> for String {
    fn from(secret: TestJwtSecret) -> Self {
        secret.expose().to_owned()
    }
}

impl From<TestJwtSecret> for Secret {
    fn from(secret: TestJwtSecret) -> Self {
        Secret::new(secret)
    }
}

/// The environment of services in one test or benchmark run: port 0, its own database and
/// topic prefix, long consistency waits.
pub fn service_environment(database_url: &str, topic_prefix: &str) -> HashMap<String, String> {
    let mut environment = HashMap::new();
    for service in ["INGEST", "STORAGE", "USERS", "AUDIT", "BACKUP"] {
        environment.insert(format!("CHATVAULT_{service}_GRPC_ADDR"), "127.0.0.1:0".to_owned());
        environment.insert(format!("CHATVAULT_{service}_HTTP_ADDR"), "127.0.0.1:0".to_owned());
        environment.insert(format!("CHATVAULT_{service}_DATABASE_URL"), database_url.to_owned());
    }
    environment.insert("CHATVAULT_TOPIC_PREFIX".to_owned(), topic_prefix.to_owned());
    environment.insert("CHATVAULT_CONSISTENCY_WAIT_MS".to_owned(), "120000".to_owned());
    // Existing scenarios identify callers by the x-chatvault-user header; tests of
    // authentication set CHATVAULT_AUTH=on (see `TEST_JWT_SECRET`).
    environment.insert("CHATVAULT_AUTH".to_owned(), "off".to_owned());
    // CHATVAULT_AUTH=off is refused without it; the secret itself is strong and random.
    environment.insert("CHATVAULT_INSECURE_DEV".to_owned(), "1".to_owned());
    environment.insert("CHATVAULT_JWT_SECRET".to_owned(), TEST_JWT_SECRET.to_string());
    if let Ok(brokers) = std::env::var("CHATVAULT_KAFKA_BROKERS") {
        environment.insert("CHATVAULT_KAFKA_BROKERS".to_owned(), brokers);
    }
    environment
}

/// The environment of a storage node in a test: port 0, `data_dir`, this run's secret and
/// `CHATVAULT_AUTH=off` like [`service_environment`] (tests that check the nodes' service
/// credentials set it to `on`).
pub fn storage_node_environment(data_dir: &Path) -> HashMap<String, String> {
    HashMap::from([
        ("CHATVAULT_STORAGE_NODE_GRPC_ADDR".to_owned(), "127.0.0.1:0".to_owned()),
        ("CHATVAULT_STORAGE_NODE_HTTP_ADDR".to_owned(), "127.0.0.1:0".to_owned()),
        ("CHATVAULT_NODE_DATA_DIR".to_owned(), data_dir.display().to_string()),
        ("CHATVAULT_AUTH".to_owned(), "off".to_owned()),
        ("CHATVAULT_INSECURE_DEV".to_owned(), "1".to_owned()),
        ("CHATVAULT_JWT_SECRET".to_owned(), TEST_JWT_SECRET.to_string()),
    ])
}

/// The folder of the workspace's built binaries: beside the running executable, or one
/// level up for test binaries (`target/<profile>/deps/…`).
pub fn binaries_folder() -> PathBuf {
    let executable = std::env::current_exe().expect("current exe");
    let folder = executable.parent().expect("executable folder");
    if folder.file_name().is_some_and(|name| name == "deps") {
        folder.parent().expect("target profile folder").to_path_buf()
    } else {
        folder.to_path_buf()
    }
}

/// A service running as a child process, killed when dropped.
#[derive(Debug)]
pub struct ChildService {
    pub child: Child,
    pub grpc_addr: SocketAddr,
}

impl Drop for ChildService {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Starts `binary` (from [`binaries_folder`]) with `environment` and a free gRPC port; waits until it accepts
/// connections. Without a `CHATVAULT_JWT_SECRET` in `environment` the child gets
/// [`TEST_JWT_SECRET`], so it trusts the tokens of the run's other services.
pub async fn spawn_service_process(binary: &str, service: &str, mut environment: HashMap<String, String>, log_path: &Path) -> ChildService {
    let path = binaries_folder().join(binary);
    assert!(path.exists(), "{} is missing: build the binaries first (cargo build --bins)", path.display());
    let grpc_addr = free_local_address();
    environment.insert(format!("CHATVAULT_{service}_GRPC_ADDR"), grpc_addr.to_string());
    environment.entry("CHATVAULT_JWT_SECRET".to_owned()).or_insert_with(|| TEST_JWT_SECRET.to_string());
    let log = std::fs::File::create(log_path).expect("log file");
    let child = Command::new(&path).envs(environment).stdout(Stdio::null()).stderr(log).spawn().expect("service process starts");
    let deadline = Instant::now() + Duration::from_secs(60);
    while tokio::net::TcpStream::connect(grpc_addr).await.is_err() {
        assert!(Instant::now() < deadline, "{binary} did not listen on {grpc_addr} within 60 s; see {}", log_path.display());
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    ChildService { child, grpc_addr }
}

fn free_local_address() -> SocketAddr {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind port 0");
    listener.local_addr().expect("local addr")
}

/// Polls `condition` until it holds or `limit` passes; returns whether it held.
pub async fn wait_until<F, Fut>(limit: Duration, mut condition: F) -> bool
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
