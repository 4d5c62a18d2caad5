//! A `kill -9` of the storage and users services while they project a large import loses
//! and duplicates nothing: batches and their offsets commit together.

use std::io::BufWriter;
use std::time::Duration;

use chatvault_common::test_support::{unique_topic_prefix, TestDb};
use tokio_util::sync::CancellationToken;

use crate::helpers::{connect, import_with, service_environment, spawn_service_process, start_ingest, wait_until};

const MESSAGES: u64 = 200_000;
const CHAT_ID: i64 = 4_200_000_001;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn storage_killed_mid_projection_ends_with_the_exact_count() {
    let database = TestDb::fresh().await;
    let topic_prefix = unique_topic_prefix();
    let shutdown = CancellationToken::new();
    let _stop_ingest = shutdown.clone().drop_guard();
    let ingest_addr = start_ingest(database.url.expose(), &topic_prefix, shutdown.clone()).await;

    let folder = tempfile::tempdir().expect("temp dir");
    let export_path = folder.path().join("result.json");
    let file = std::fs::File::create(&export_path).expect("create export");
    telegram_export::write_synthetic_export(BufWriter::new(file), CHAT_ID, MESSAGES, 7).expect("generate export");

    let mut storage_environment = service_environment(database.url.expose(), &topic_prefix);
    // Small batches make many transactions, so the kill lands between two of them.
    storage_environment.insert("CHATVAULT_STORAGE_PROJECTION_BATCH_RECORDS".to_owned(), "2000".to_owned());
    storage_environment.insert("CHATVAULT_USERS_PROJECTION_BATCH_RECORDS".to_owned(), "2000".to_owned());
    // Applied early, an import commits in one transaction; here it is applied from the topic
    // in batches, so the kill lands in the middle (import_isolation kills one applied early).
    storage_environment.insert("CHATVAULT_STORAGE_PROJECTION_EARLY_IMPORTS".to_owned(), "false".to_owned());
    storage_environment.insert("CHATVAULT_USERS_PROJECTION_EARLY_IMPORTS".to_owned(), "false".to_owned());
    let storage = spawn_service_process("chatvault-storage", "STORAGE", storage_environment.clone(), &folder.path().join("storage-1.log")).await;
    let users = spawn_service_process("chatvault-users", "USERS", storage_environment.clone(), &folder.path().join("users-1.log")).await;

    let mut ingest = chatvault_proto::ingest::v1::ingest_service_client::IngestServiceClient::new(connect(ingest_addr).await);
    let summary = import_with(&mut ingest, &export_path).await.expect("the import commits");
    assert_eq!(summary.messages, MESSAGES);

    let client = database.client().await;
    let stored_count = || async { client.query_one("SELECT count(*) FROM messages", &[]).await.map(|row| row.get::<_, i64>(0)).unwrap_or(0) };
    // Both services share the test database; users keeps one row per authored message.
    let authored_count =
        || async { client.query_one("SELECT count(*) FROM author_messages", &[]).await.map(|row| row.get::<_, i64>(0)).unwrap_or(0) };
    assert!(wait_until(Duration::from_secs(120), || async { stored_count().await > 0 }).await, "projection never started");
    let (mut storage, mut users) = (storage, users);
    storage.child.kill().expect("kill -9 storage");
    storage.child.wait().expect("reap storage");
    let count_at_kill = stored_count().await;
    assert!(count_at_kill > 0 && count_at_kill < MESSAGES as i64, "storage killed mid-projection, at {count_at_kill} of {MESSAGES}");
    assert!(wait_until(Duration::from_secs(120), || async { authored_count().await > 0 }).await, "users projection never started");
    users.child.kill().expect("kill -9 users");
    users.child.wait().expect("reap users");
    let authored_at_kill = authored_count().await;
    let expected_authored: i64 = summary.messages as i64 - summary.service_messages as i64;
    assert!(authored_at_kill < expected_authored, "users killed mid-projection, at {authored_at_kill} of {expected_authored}");
    drop((storage, users));

    let _storage_again =
        spawn_service_process("chatvault-storage", "STORAGE", storage_environment.clone(), &folder.path().join("storage-2.log")).await;
    let _users_again = spawn_service_process("chatvault-users", "USERS", storage_environment, &folder.path().join("users-2.log")).await;
    let all_applied = wait_until(Duration::from_secs(300), || async { stored_count().await == MESSAGES as i64 }).await;
    assert!(all_applied, "after restart the projection reached {} of {MESSAGES}", stored_count().await);
    let chat_count: i64 = client.query_one("SELECT message_count FROM chats WHERE chat_id = $1", &[&CHAT_ID]).await.expect("chat row").get(0);
    assert_eq!(chat_count, MESSAGES as i64, "the chat's count is exact: nothing counted twice after redelivery");

    let users_caught_up = wait_until(Duration::from_secs(300), || async { authored_count().await == expected_authored }).await;
    assert!(users_caught_up, "users reached {} of {expected_authored} authored messages", authored_count().await);
    let counted: i64 = client
        .query_one("SELECT sum(message_count)::bigint FROM author_chat_counts WHERE chat_id = $1", &[&CHAT_ID])
        .await
        .expect("author counts")
        .get(0);
    assert_eq!(counted, expected_authored, "author counts are exact after kill -9 and redelivery");
}
