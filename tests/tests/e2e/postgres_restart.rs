//! A PostgreSQL restart in the middle of a projection only delays it. The restart happens to
//! a private PostgreSQL cluster this test creates (initdb in a temporary folder, its own
//! port), so the shared one keeps serving every other test; storage runs against it while
//! 20,000 records are projected, the cluster is restarted mid-way, and the counts still
//! equal the source exactly.

use std::path::PathBuf;
use std::process::Command;
use std::time::Duration;

use chatvault_common::config::ServiceConfig;
use chatvault_common::envelope::Envelope;
use chatvault_common::test_support::{service_environment, unique_topic_prefix, wait_until};
use chatvault_common::topics::CHAT_EVENTS;
use chatvault_proto::storage::v1::storage_service_client::StorageServiceClient;
use chatvault_proto::storage::v1::ListChatsRequest;
use rdkafka::producer::FutureRecord;
use tokio_util::sync::CancellationToken;

use crate::helpers::connect;
use crate::projection_faults::{chat_record, message};

/// Returns the folder of PostgreSQL's server programs (Debian's layout, as stack.sh installs).
fn postgres_programs() -> PathBuf {
    let versions = std::fs::read_dir("/usr/lib/postgresql").expect("PostgreSQL is installed (scripts/stack.sh installs it)");
    let newest = versions.flatten().map(|entry| entry.path()).filter(|path| path.join("bin/pg_ctl").exists()).max().expect("a PostgreSQL version");
    newest.join("bin")
}

/// A PostgreSQL cluster of its own in a temporary folder, run as the `postgres` user
/// (PostgreSQL refuses to run as root); stopped when dropped.
struct PrivateCluster {
    folder: tempfile::TempDir,
    programs: PathBuf,
    port: u16,
}

impl PrivateCluster {
    fn create() -> Self {
        let folder = tempfile::tempdir().expect("cluster folder");
        let status = Command::new("chown").arg("-R").arg("postgres:postgres").arg(folder.path()).status().expect("chown");
        assert!(status.success(), "the cluster folder is given to the postgres user");
        let programs = postgres_programs();
        let port = std::net::TcpListener::bind("127.0.0.1:0").expect("free port").local_addr().expect("address").port();
        let cluster = Self { folder, programs, port };
        cluster.run("initdb", &["-D", &cluster.data(), "-A", "trust", "-U", "postgres", "--no-sync"]);
        cluster.pg_ctl("start");
        cluster
    }

    fn data(&self) -> String {
        self.folder.path().join("data").display().to_string()
    }

    fn run(&self, program: &str, arguments: &[&str]) {
        let output = Command::new("runuser")
            .args(["-u", "postgres", "--"])
            .arg(self.programs.join(program))
            .args(arguments)
            .output()
            .unwrap_or_else(|error| panic!("{program} runs: {error}"));
        assert!(output.status.success(), "{program} {arguments:?} failed: {}", String::from_utf8_lossy(&output.stderr));
    }

    /// Runs `pg_ctl <action>` and waits for it to finish (`-w`); `-m fast` ends sessions.
    fn pg_ctl(&self, action: &str) {
        let options = format!("-p {} -k {} -c listen_addresses=127.0.0.1 -c max_connections=50", self.port, self.folder.path().display());
        let log = self.folder.path().join("postgres.log").display().to_string();
        self.run("pg_ctl", &["-D", &self.data(), "-o", &options, "-l", &log, "-m", "fast", "-w", action]);
    }

    fn url(&self, database: &str) -> String {
        format!("postgres://postgres@127.0.0.1:{}/{database}", self.port)
    }
}

impl Drop for PrivateCluster {
    fn drop(&mut self) {
        let _ = Command::new("runuser")
            .args(["-u", "postgres", "--"])
            .arg(self.programs.join("pg_ctl"))
            .args(["-D", &self.data(), "-m", "immediate", "-w", "stop"])
            .output();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_postgres_restart_in_the_middle_of_a_projection_only_delays_it() {
    crate::helpers::init_test_logging();
    let cluster = PrivateCluster::create();
    let (admin, connection) = tokio_postgres::connect(&cluster.url("postgres"), tokio_postgres::NoTls).await.expect("connects");
    tokio::spawn(connection);
    admin.batch_execute("CREATE DATABASE chatvault_storage").await.expect("database created");
    let database_url = cluster.url("chatvault_storage");
    let mut environment = service_environment(&database_url, &unique_topic_prefix());
    // Small batches, so the projection is still running when the database restarts.
    environment.insert("CHATVAULT_STORAGE_PROJECTION_BATCH_RECORDS".to_owned(), "500".to_owned());
    let config = ServiceConfig::from_env_map("storage", chatvault_storage::DEFAULT_PORTS, &environment).expect("config");
    let kafka = config.kafka.clone();
    let shutdown = CancellationToken::new();
    let app = chatvault_storage::App::build(config).await.expect("storage starts on the private cluster");
    let storage_addr = app.grpc_addr();
    tokio::spawn(app.run_until_stopped(shutdown.clone()));
    let storage = StorageServiceClient::new(connect(storage_addr).await);

    const TOTAL: i64 = 20_000;
    let chat_id = 8_000_000_000 + i64::from(rand::random::<u16>());
    let producer = chatvault_common::kafka::idempotent_producer(&kafka, "tests-postgres-restart").expect("producer");
    let topic = kafka.topic(CHAT_EVENTS);
    let key = chat_id.to_string();
    let payloads: Vec<Vec<u8>> = (1..=TOTAL).map(|id| chat_record(message(chat_id, id, 1_795_331_730 + id))).collect();
    let deliveries = payloads.iter().map(|payload| {
        let headers = Envelope::new("chatvault.chat.v1.ChatEvent", "tests", None).to_headers();
        producer.send(FutureRecord::to(&topic).key(&key).payload(payload).headers(headers), Duration::from_secs(60))
    });
    for delivery in futures::future::join_all(deliveries).await {
        delivery.expect("published");
    }

    let count = || async {
        let (client, connection) = match tokio_postgres::connect(&database_url, tokio_postgres::NoTls).await {
            Ok(connected) => connected,
            Err(_) => return None,
        };
        tokio::spawn(connection);
        client.query_one("SELECT count(*) FROM messages", &[]).await.ok().map(|row| row.get::<_, i64>(0))
    };
    assert!(wait_until(Duration::from_secs(60), || async { count().await.is_some_and(|applied| applied > 0) }).await, "projection started");
    let applied_before_restart = count().await.expect("counted");
    cluster.pg_ctl("restart");
    assert!(applied_before_restart < TOTAL, "the restart came mid-projection ({applied_before_restart} of {TOTAL} applied)");

    assert!(
        wait_until(Duration::from_secs(120), || async { count().await == Some(TOTAL) }).await,
        "every record is applied after the restart; applied {:?}",
        count().await
    );
    let chats = storage.clone().list_chats(ListChatsRequest::default()).await.expect("storage answers after the restart").into_inner().chats;
    let chat = chats.iter().find(|chat| chat.chat_id == chat_id).expect("the chat is listed");
    assert_eq!(chat.message_count, TOTAL as u64, "nothing lost, nothing counted twice");
    shutdown.cancel();
}
