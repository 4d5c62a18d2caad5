//! An import never holds back anyone else's: while a large import is being published,
//! another account's small import of another chat on the same partition becomes queryable
//! within the usual consistency wait; after ingest dies (`kill -9`) in the middle of the
//! large import, a new import on that partition does too, and the killed import shows
//! nothing, in storage and in users.

use std::io::BufWriter;
use std::path::Path;
use std::time::Duration;

use chatvault_common::test_support::{unique_topic_prefix, TestDb};
use chatvault_proto::common::v1::ConsistencyToken;
use chatvault_proto::ingest::v1::ingest_service_client::IngestServiceClient;
use chatvault_proto::ingest::v1::{import_update, ImportExportRequest, ImportSummary, ImportUpdate};
use chatvault_proto::storage::v1::storage_service_client::StorageServiceClient;
use chatvault_proto::storage::v1::GetMessagesRequest;
use tonic::transport::Channel;

use crate::accounts::{authorized, minted_token};
use crate::helpers::{connect, service_environment, spawn_service_process};

/// Large enough that publishing it takes far longer than a ten-message import.
const LARGE_MESSAGES: u64 = 400_000;
const LARGE_CHAT: i64 = 4_300_000_001;
const SMALL_MESSAGES: u64 = 10;

fn write_export(folder: &Path, name: &str, chat_id: i64, messages: u64) -> std::path::PathBuf {
    let path = folder.join(name);
    let file = std::fs::File::create(&path).expect("create export");
    telegram_export::write_synthetic_export(BufWriter::new(file), chat_id, messages, 3).expect("generate export");
    path
}

/// Starts a server-path import of `path` as the holder of `access_token`; returns its updates.
async fn start_import(ingest: &mut IngestServiceClient<Channel>, path: &Path, access_token: &str) -> tonic::Streaming<ImportUpdate> {
    let request = ImportExportRequest { path: path.display().to_string(), ..Default::default() };
    ingest.import_export(authorized(request, access_token)).await.expect("the import starts").into_inner()
}

/// Runs a server-path import of `path` to its end as the holder of `access_token`.
async fn import_as(ingest: &mut IngestServiceClient<Channel>, path: &Path, access_token: &str) -> ImportSummary {
    let mut updates = start_import(ingest, path, access_token).await;
    while let Some(update) = updates.message().await.expect("import update") {
        if let Some(import_update::Update::Summary(summary)) = update.update {
            return summary;
        }
    }
    panic!("the import of {} ended without a summary", path.display());
}

/// Reads the first page of `chat_id` as the holder of `access_token` once `token` is
/// applied (the service's usual wait); the status when it is not applied in time.
async fn messages_after(
    storage: &mut StorageServiceClient<Channel>,
    chat_id: i64,
    token: &str,
    access_token: &str,
) -> Result<Vec<i64>, tonic::Status> {
    let request =
        GetMessagesRequest { chat_id, limit: 1000, consistency_token: Some(ConsistencyToken { value: token.to_owned() }), ..Default::default() };
    let page = storage.get_messages(authorized(request, access_token)).await?.into_inner();
    Ok(page.messages.iter().map(|message| message.message_id).collect())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_import_in_progress_or_killed_holds_back_no_other_import() {
    let database = TestDb::fresh().await;
    let topic_prefix = unique_topic_prefix();
    let folder = tempfile::tempdir().expect("temp dir");
    let mut environment = service_environment(database.url.expose(), &topic_prefix);
    // One partition: every chat's events share it, as two chats' do when their ids hash alike.
    environment.insert("CHATVAULT_TOPIC_PARTITIONS".to_owned(), "1".to_owned());
    environment.insert("CHATVAULT_AUTH".to_owned(), "on".to_owned());
    // Server-path imports need the admin role; two accounts import.
    let (ann, bob) = (minted_token("ann", "admin"), minted_token("bob", "admin"));
    let storage_service = spawn_service_process("chatvault-storage", "STORAGE", environment.clone(), &folder.path().join("storage.log")).await;
    let _users_service = spawn_service_process("chatvault-users", "USERS", environment.clone(), &folder.path().join("users.log")).await;
    let mut ingest_service = spawn_service_process("chatvault-ingest", "INGEST", environment.clone(), &folder.path().join("ingest-1.log")).await;
    let mut storage = StorageServiceClient::new(connect(storage_service.grpc_addr).await);

    let large = write_export(folder.path(), "large.json", LARGE_CHAT, LARGE_MESSAGES);
    let mut ingest = IngestServiceClient::new(connect(ingest_service.grpc_addr).await);
    let mut large_updates = start_import(&mut ingest, &large, &ann).await;
    let mut published_before_others = 0;
    while published_before_others == 0 {
        match large_updates.message().await.expect("large import update").and_then(|update| update.update) {
            Some(import_update::Update::Progress(progress)) => published_before_others = progress.messages_published,
            Some(import_update::Update::Summary(_)) | None => panic!("the large import ended before any other import ran"),
        }
    }

    // Another account's small import of another chat, on the same partition, while the large
    // one is being published: queryable within the usual wait.
    let small_chat = 4_300_000_002;
    let small = write_export(folder.path(), "small.json", small_chat, SMALL_MESSAGES);
    let small_summary = import_as(&mut ingest, &small, &bob).await;
    let token = small_summary.consistency_token.as_ref().expect("token").value.clone();
    let small_ids = messages_after(&mut storage, small_chat, &token, &bob).await.expect("the small import is applied within the usual wait");
    assert_eq!(small_ids.len() as u64, SMALL_MESSAGES, "every message of the small import");

    // The large import is still being published: nothing has let the small one pass it but
    // the staging of imports.
    let still_running = tokio::time::timeout(Duration::from_millis(1), large_updates.message()).await;
    let large_finished = match still_running {
        Ok(Ok(Some(update))) => matches!(update.update, Some(import_update::Update::Summary(_))),
        Ok(Ok(None)) | Ok(Err(_)) => true,
        Err(_) => false,
    };
    assert!(!large_finished, "the large import ({LARGE_MESSAGES} messages) finished before the ten-message one was queryable");
    // Storage is applying the large import already, in a transaction of its own: none of
    // it is visible before the import commits.
    let client = database.client().await;
    let visible: i64 = client.query_one("SELECT count(*) FROM messages WHERE chat_id = $1", &[&LARGE_CHAT]).await.expect("count").get(0);
    assert_eq!(visible, 0, "an import in progress shows nothing");

    // Ingest dies in the middle of the large import.
    ingest_service.child.kill().expect("kill -9 ingest");
    ingest_service.child.wait().expect("reap ingest");
    drop(large_updates);
    let ingest_again = spawn_service_process("chatvault-ingest", "INGEST", environment.clone(), &folder.path().join("ingest-2.log")).await;
    let mut ingest = IngestServiceClient::new(connect(ingest_again.grpc_addr).await);
    let after_chat = 4_300_000_003;
    let after = write_export(folder.path(), "after.json", after_chat, SMALL_MESSAGES);
    let after_summary = import_as(&mut ingest, &after, &bob).await;
    let token = after_summary.consistency_token.as_ref().expect("token").value.clone();
    let after_ids = messages_after(&mut storage, after_chat, &token, &bob).await.expect("an import after the crash is applied within the usual wait");
    assert_eq!(after_ids.len() as u64, SMALL_MESSAGES);

    // The killed import shows nothing: its records sit in the topic before the ones just
    // applied, and no read model applied any of them.
    let refused = messages_after(&mut storage, LARGE_CHAT, &token, &ann).await.expect_err("the killed import's chat is not there");
    assert_eq!(refused.code(), tonic::Code::NotFound, "{refused:?}");
    let stored: i64 = client.query_one("SELECT count(*) FROM messages WHERE chat_id = $1", &[&LARGE_CHAT]).await.expect("count").get(0);
    let chats: i64 = client.query_one("SELECT count(*) FROM chats WHERE chat_id = $1", &[&LARGE_CHAT]).await.expect("count").get(0);
    assert_eq!((stored, chats), (0, 0), "storage holds nothing of the killed import");
    // Users applies the same partition: once it has applied the last import, it has passed
    // every record of the killed one.
    let authored = crate::helpers::wait_until(Duration::from_secs(60), || async {
        client
            .query_one("SELECT count(*) FROM author_messages WHERE chat_id = $1", &[&after_chat])
            .await
            .map(|row| row.get::<_, i64>(0) > 0)
            .unwrap_or(false)
    })
    .await;
    assert!(authored, "users applied the import after the crash");
    let authored_large: i64 =
        client.query_one("SELECT count(*) FROM author_messages WHERE chat_id = $1", &[&LARGE_CHAT]).await.expect("count").get(0);
    assert_eq!(authored_large, 0, "users holds nothing of the killed import");
}
