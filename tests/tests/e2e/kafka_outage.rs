//! With Kafka gone, the services keep answering queries and their log shipping drops lines
//! instead of blocking. The stack's broker is shared by every test, so this test starts a
//! private Kafka 4.4.0 broker of its own (the jars `scripts/stack.sh` resolved, KRaft mode,
//! free ports, a temporary data folder), runs storage, users and ingest as processes
//! against it, imports the sample, then kills the broker with SIGKILL.

use std::collections::HashMap;
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use chatvault_common::test_support::{unique_topic_prefix, TestDb};
use chatvault_proto::common::v1::ConsistencyToken;
use chatvault_proto::ingest::v1::ingest_service_client::IngestServiceClient;
use chatvault_proto::ingest::v1::{import_update, ImportExportRequest, ImportSummary};
use chatvault_proto::storage::v1::storage_service_client::StorageServiceClient;
use chatvault_proto::storage::v1::{GetMessagesRequest, ListChatsRequest};
use chatvault_proto::users::v1::accounts_service_client::AccountsServiceClient;
use chatvault_proto::users::v1::users_service_client::UsersServiceClient;
use chatvault_proto::users::v1::{AuthorStatsRequest, LoginRequest};
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::ClientConfig;
use tokio::process::{Child, Command};

use crate::accounts::{authorized, ADMIN_PASSWORD, ADMIN_USERNAME};
use crate::files_support::http_request;
use crate::helpers::{connect, fixture, spawn_service_process, wait_until};

const SAMPLE_CHAT_ID: i64 = 1_234_567_890;
/// The bound of every query while Kafka is away: generous, this checks they answer at all.
const QUERY_TIMEOUT: Duration = Duration::from_secs(10);

/// A single-node Kafka (broker and KRaft controller) of this test only, killed on drop.
struct PrivateKafka {
    process: Child,
    brokers: String,
    folder: tempfile::TempDir,
}

impl PrivateKafka {
    /// Formats a fresh data folder and starts the broker on free ports; returns once it
    /// answers metadata requests.
    async fn start() -> Self {
        let workspace = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
        let libs = workspace.join(".state/kafka/libs");
        assert!(libs.join("kafka_2.13-4.4.0.jar").exists(), "{} has no Kafka jars: run scripts/stack.sh up", libs.display());
        let classpath = format!("{}/*", libs.display());
        let log4j = format!("-Dlog4j2.configurationFile={}", workspace.join("scripts/kafka/log4j2.properties").display());
        let folder = tempfile::tempdir().expect("temp dir");
        let [broker_port, controller_port] = free_ports();
        let properties = folder.path().join("server.properties");
        std::fs::write(&properties, server_properties(broker_port, controller_port, &folder.path().join("data"))).expect("writes properties");

        let cluster_id = crate::accounts::base64_url_encode(uuid::Uuid::new_v4().as_bytes());
        let formatted = Command::new("java")
            .args([log4j.as_str(), "-cp", &classpath, "kafka.tools.StorageTool", "format", "--standalone", "-t", &cluster_id, "-c"])
            .arg(&properties)
            .output()
            .await
            .expect("java runs (Java 17+ is needed, as for scripts/stack.sh)");
        assert!(formatted.status.success(), "formatting the KRaft storage failed: {}", String::from_utf8_lossy(&formatted.stderr));

        let log = std::fs::File::create(folder.path().join("kafka.log")).expect("log file");
        let process = Command::new("java")
            .args(["-Xms128m", "-Xmx384m", "-XX:+UseG1GC", "-Djava.awt.headless=true", log4j.as_str(), "-cp", &classpath, "kafka.Kafka"])
            .arg(&properties)
            .stdin(Stdio::null())
            .stdout(log.try_clone().expect("log handle"))
            .stderr(log)
            .kill_on_drop(true)
            .spawn()
            .expect("the broker starts");
        let kafka = Self { process, brokers: format!("127.0.0.1:{broker_port}"), folder };
        let ready = wait_until(Duration::from_secs(60), || kafka.answers_metadata()).await;
        assert!(ready, "the private broker did not start; see {}", kafka.folder.path().join("kafka.log").display());
        kafka
    }

    /// Returns whether the broker answers a metadata request.
    async fn answers_metadata(&self) -> bool {
        let brokers = self.brokers.clone();
        tokio::task::spawn_blocking(move || {
            let Ok(consumer) = ClientConfig::new().set("bootstrap.servers", &brokers).create::<BaseConsumer>() else { return false };
            consumer.fetch_metadata(None, Duration::from_secs(2)).is_ok_and(|metadata| !metadata.brokers().is_empty())
        })
        .await
        .unwrap_or(false)
    }

    /// Kills the broker with SIGKILL (no clean shutdown) and reaps it.
    async fn kill(&mut self) {
        self.process.kill().await.expect("kill -9 the broker");
    }
}

/// Returns two distinct free local ports (both bound while choosing).
fn free_ports() -> [u16; 2] {
    let first = TcpListener::bind("127.0.0.1:0").expect("bind");
    let second = TcpListener::bind("127.0.0.1:0").expect("bind");
    [first.local_addr().expect("addr").port(), second.local_addr().expect("addr").port()]
}

/// The broker settings of `scripts/stack.sh`, on other ports and another folder.
fn server_properties(broker_port: u16, controller_port: u16, data: &Path) -> String {
    format!(
        "process.roles=broker,controller
node.id=1
controller.quorum.bootstrap.servers=127.0.0.1:{controller_port}
listeners=PLAINTEXT://127.0.0.1:{broker_port},CONTROLLER://127.0.0.1:{controller_port}
advertised.listeners=PLAINTEXT://127.0.0.1:{broker_port}
controller.listener.names=CONTROLLER
inter.broker.listener.name=PLAINTEXT
listener.security.protocol.map=CONTROLLER:PLAINTEXT,PLAINTEXT:PLAINTEXT
log.dirs={}
num.partitions=3
default.replication.factor=1
min.insync.replicas=1
auto.create.topics.enable=false
offsets.topic.replication.factor=1
offsets.topic.num.partitions=3
transaction.state.log.replication.factor=1
transaction.state.log.min.isr=1
transaction.state.log.num.partitions=3
share.coordinator.state.topic.replication.factor=1
share.coordinator.state.topic.min.isr=1
group.initial.rebalance.delay.ms=0
",
        data.display()
    )
}

/// Returns the value of `chatvault_log_lines_dropped_total` on a service's `/metrics`.
async fn dropped_log_lines(http_addr: std::net::SocketAddr) -> f64 {
    let response = http_request(http_addr, "GET", "/metrics", &[], b"").await;
    String::from_utf8_lossy(&response.body)
        .lines()
        .find(|line| line.starts_with("chatvault_log_lines_dropped_total "))
        .and_then(|line| line.split_whitespace().nth(1))
        .and_then(|value| value.parse().ok())
        .unwrap_or(0.0)
}

/// Runs ImportExport with `token` to its end.
async fn import_sample(ingest: &mut IngestServiceClient<tonic::transport::Channel>, token: &str) -> ImportSummary {
    let request = ImportExportRequest { path: fixture("sample-export").display().to_string(), ..Default::default() };
    let mut updates = ingest.import_export(authorized(request, token)).await.expect("import starts").into_inner();
    let mut summary = None;
    while let Some(update) = updates.message().await.expect("import runs") {
        if let Some(import_update::Update::Summary(done)) = update.update {
            summary = Some(done);
        }
    }
    summary.expect("the import ends with a summary")
}

/// Returns `call`'s outcome, or panics when it takes longer than [`QUERY_TIMEOUT`].
async fn answered<T>(what: &str, call: impl std::future::Future<Output = Result<tonic::Response<T>, tonic::Status>>) -> T {
    match tokio::time::timeout(QUERY_TIMEOUT, call).await {
        Ok(Ok(response)) => response.into_inner(),
        Ok(Err(status)) => panic!("{what} failed with Kafka away: {status:?}"),
        Err(_) => panic!("{what} did not answer within {QUERY_TIMEOUT:?} with Kafka away"),
    }
}

#[tokio::test]
async fn with_kafka_killed_queries_and_log_ins_are_answered_and_log_lines_dropped() {
    let mut kafka = PrivateKafka::start().await;
    let database = TestDb::fresh().await;
    let mut environment: HashMap<String, String> = crate::helpers::service_environment(database.url.expose(), &unique_topic_prefix());
    environment.insert("CHATVAULT_KAFKA_BROKERS".to_owned(), kafka.brokers.clone());
    environment.insert("CHATVAULT_AUTH".to_owned(), "on".to_owned());
    environment.insert("CHATVAULT_USERS_BOOTSTRAP_ADMIN".to_owned(), format!("{ADMIN_USERNAME}:{ADMIN_PASSWORD}:root@example.org"));
    let storage_http = TcpListener::bind("127.0.0.1:0").expect("bind").local_addr().expect("addr");
    environment.insert("CHATVAULT_STORAGE_HTTP_ADDR".to_owned(), storage_http.to_string());
    let log_of = |service: &str| -> PathBuf { kafka.folder.path().join(format!("{service}.log")) };
    let (storage_log, users_log, ingest_log) = (log_of("storage"), log_of("users"), log_of("ingest"));
    let (storage, users, ingest) = tokio::join!(
        spawn_service_process("chatvault-storage", "STORAGE", environment.clone(), &storage_log),
        spawn_service_process("chatvault-users", "USERS", environment.clone(), &users_log),
        spawn_service_process("chatvault-ingest", "INGEST", environment.clone(), &ingest_log),
    );
    let mut accounts = AccountsServiceClient::new(connect(users.grpc_addr).await);
    let mut authors = UsersServiceClient::new(connect(users.grpc_addr).await);
    let mut chats = StorageServiceClient::new(connect(storage.grpc_addr).await);
    let login = LoginRequest { username: ADMIN_USERNAME.to_owned(), password: ADMIN_PASSWORD.to_owned() };
    let token = accounts.login(login.clone()).await.expect("the admin logs in").into_inner().access_token;

    let summary = import_sample(&mut IngestServiceClient::new(connect(ingest.grpc_addr).await), &token).await;
    let consistency: Option<ConsistencyToken> = summary.consistency_token.clone();
    let messages_request = GetMessagesRequest { chat_id: SAMPLE_CHAT_ID, limit: 1000, consistency_token: consistency.clone(), ..Default::default() };
    let messages = chats.get_messages(authorized(messages_request.clone(), &token)).await.expect("storage applied the import").into_inner().messages;
    let stats_request = AuthorStatsRequest { author_id: "user42".to_owned(), consistency_token: consistency };
    let stats = authors.author_stats(authorized(stats_request.clone(), &token)).await.expect("users applied the import").into_inner();
    let chats_before = chats.list_chats(authorized(ListChatsRequest::default(), &token)).await.expect("ListChats").into_inner().chats;
    let dropped_before = dropped_log_lines(storage_http).await;

    kafka.kill().await;
    for round in 0..3 {
        let listed = answered("ListChats", chats.list_chats(authorized(ListChatsRequest::default(), &token))).await;
        assert_eq!(listed.chats, chats_before, "round {round}");
        let page = answered("GetMessages", chats.get_messages(authorized(messages_request.clone(), &token))).await;
        assert_eq!(page.messages, messages, "round {round}");
        let counted = answered("AuthorStats", authors.author_stats(authorized(stats_request.clone(), &token))).await;
        assert_eq!(counted, stats, "round {round}");
        let pair = answered("Login", accounts.login(login.clone())).await;
        assert!(!pair.access_token.is_empty(), "round {round}");
    }
    // Lines logged since the kill wait in the shipping producer until their delivery
    // times out (15 s), then count as dropped; meanwhile the service keeps answering.
    let dropped = wait_until(Duration::from_secs(40), || {
        let (mut chats, token) = (chats.clone(), token.clone());
        async move {
            answered("ListChats", chats.list_chats(authorized(ListChatsRequest::default(), &token))).await;
            dropped_log_lines(storage_http).await > dropped_before
        }
    })
    .await;
    assert!(dropped, "storage counts the log lines it could not ship (was {dropped_before})");
}
