//! The audit trail against the real stack: every event of a scenario exactly once, who may
//! read what, and exactly once again after a `kill -9` of the audit service mid-stream.

use std::collections::HashMap;
use std::time::Duration;

use chatvault_common::config::ServiceConfig;
use chatvault_proto::audit::v1::audit_service_client::AuditServiceClient;
use chatvault_proto::audit::v1::{AuditQueryRequest, AuditRow};
use chatvault_proto::users::v1::{LogoutRequest, MeRequest};
use rdkafka::message::{Header, OwnedHeaders};
use rdkafka::producer::FutureRecord;
use tonic::transport::Channel;
use tonic::Code;

use crate::accounts::{authorized, AuthPlatform, ADMIN_PASSWORD, ADMIN_USERNAME};
use crate::helpers::{connect, spawn_service_process, wait_until};

/// Returns every row matching `request` (all pages).
async fn all_rows(audit: &AuditServiceClient<Channel>, request: AuditQueryRequest, token: &str) -> Result<Vec<AuditRow>, tonic::Status> {
    let mut rows = Vec::new();
    let mut page_token = String::new();
    loop {
        let page = audit
            .clone()
            .query(authorized(AuditQueryRequest { page_token: page_token.clone(), limit: 50, ..request.clone() }, token))
            .await?
            .into_inner();
        rows.extend(page.rows);
        if page.next_page_token.is_empty() {
            return Ok(rows);
        }
        page_token = page.next_page_token;
    }
}

fn count_by_type(rows: &[AuditRow]) -> HashMap<String, usize> {
    let mut counts = HashMap::new();
    for row in rows {
        *counts.entry(row.event_type.clone()).or_insert(0) += 1;
    }
    counts
}

#[tokio::test]
async fn audit_holds_every_account_event_once_and_users_see_only_their_own() {
    let platform = AuthPlatform::start().await;
    let audit = platform.start_audit().await;
    let username = format!("grace{}", &uuid::Uuid::new_v4().simple().to_string()[..8]);
    let password = "correct horse 46";
    platform.register(&username, password).await.expect("registers");
    assert_eq!(platform.login(&username, "wrong password 2").await.expect_err("wrong").code(), Code::Unauthenticated);
    let pair = platform.login(&username, password).await.expect("logs in");
    platform.accounts.clone().me(authorized(MeRequest {}, &pair.access_token)).await.expect("me");
    platform
        .accounts
        .clone()
        .logout(authorized(LogoutRequest { refresh_token: pair.refresh_token.clone() }, &pair.access_token))
        .await
        .expect("logout");
    let admin = platform.login(ADMIN_USERNAME, ADMIN_PASSWORD).await.expect("admin logs in");

    let expected: HashMap<String, usize> = [
        ("chatvault.users.v1.AccountRegistered", 1),
        ("chatvault.users.v1.LoginFailed", 1),
        ("chatvault.users.v1.LoggedIn", 1),
        ("chatvault.users.v1.LoggedOut", 1),
    ]
    .into_iter()
    .map(|(event_type, count)| (event_type.to_owned(), count))
    .collect();
    let by_actor = AuditQueryRequest { actor: username.clone(), ..Default::default() };
    let arrived = wait_until(Duration::from_secs(60), || async {
        let rows = all_rows(&audit, by_actor.clone(), &admin.access_token).await.unwrap_or_default();
        count_by_type(&rows) == expected
    })
    .await;
    let rows = all_rows(&audit, by_actor.clone(), &admin.access_token).await.expect("admin reads anyone's trail");
    assert!(arrived, "audit rows of {username}: {:?}", count_by_type(&rows));
    let account_id = pair.account.as_ref().expect("account").account_id.clone();
    for row in &rows {
        assert_eq!(row.service, "users");
        assert_eq!(row.key, account_id, "account events are keyed by account id");
        let event: serde_json::Value = serde_json::from_str(&row.event_json).expect("event is JSON");
        assert!(event.as_object().is_some_and(|object| !object.is_empty()), "decoded event: {event}");
    }
    let by_type = all_rows(
        &audit,
        AuditQueryRequest { event_type: "chatvault.users.v1.LoggedIn".to_owned(), actor: username.clone(), ..Default::default() },
        &admin.access_token,
    )
    .await
    .expect("filter by type");
    assert_eq!(by_type.len(), 1);
    let future = all_rows(
        &audit,
        AuditQueryRequest { actor: username.clone(), since_unix: Some(chrono::Utc::now().timestamp() + 3600), ..Default::default() },
        &admin.access_token,
    )
    .await
    .expect("filter by time");
    assert!(future.is_empty());

    // The user sees their own trail (without naming themselves) and nobody else's.
    let relogin = platform.login(&username, password).await.expect("logs in again");
    let own = all_rows(&audit, AuditQueryRequest::default(), &relogin.access_token).await.expect("own trail");
    assert!(own.len() >= 4 && own.iter().all(|row| row.actor == username), "own trail: {own:?}");
    let someone_else = all_rows(&audit, AuditQueryRequest { actor: ADMIN_USERNAME.to_owned(), ..Default::default() }, &relogin.access_token).await;
    assert_eq!(someone_else.expect_err("not an admin").code(), Code::PermissionDenied);
    let no_token = audit.clone().query(AuditQueryRequest::default()).await;
    assert_eq!(no_token.expect_err("no token").code(), Code::Unauthenticated);
}

#[tokio::test]
async fn imports_uploads_and_file_commands_name_the_logged_in_user_as_actor() {
    use chatvault_proto::ingest::v1::file_upload_service_client::FileUploadServiceClient;
    use chatvault_proto::ingest::v1::ingest_service_client::IngestServiceClient;
    use chatvault_proto::ingest::v1::{
        import_update, upload_export_request, upload_file_request, ExportFileChunk, UploadExportHeader, UploadExportRequest, UploadFileRequest,
        UploadMetadata,
    };
    use chatvault_proto::storage::v1::{CreateShareLinkRequest, DeleteFileRequest, RegisterNodeRequest, RevokeShareLinkRequest};

    let platform = AuthPlatform::start_with(&[("CHATVAULT_STORAGE_REBALANCE_INTERVAL_MS", "300")]).await;
    let audit = platform.start_audit().await;
    let ingest_channel = platform.start_ingest().await;
    let admin = platform.login(ADMIN_USERNAME, ADMIN_PASSWORD).await.expect("admin logs in");
    let username = crate::accounts::unique_name("judy");
    platform.register(&username, "correct horse 48").await.expect("registers");
    let user = platform.login(&username, "correct horse 48").await.expect("logs in");

    let mut nodes = Vec::new();
    for _ in 0..4 {
        let node = crate::files_support::TestNode::start().await;
        let request = RegisterNodeRequest { address: node.address.to_string() };
        platform.files.clone().register_node(authorized(request, &admin.access_token)).await.expect("the admin registers a node");
        nodes.push(node);
    }
    let upload = |token: String, name: &'static str| {
        let mut uploads = FileUploadServiceClient::new(ingest_channel.clone());
        async move {
            let metadata = UploadMetadata { name: name.to_owned(), content_type: String::new(), restore: None, folder_date: String::new() };
            let messages = vec![
                UploadFileRequest { message: Some(upload_file_request::Message::Metadata(metadata)) },
                UploadFileRequest {
                    message: Some(upload_file_request::Message::Chunk(bytes::Bytes::from(crate::files_support::random_bytes(20_000)))),
                },
            ];
            uploads.upload_file(authorized(futures::stream::iter(messages), &token)).await.map(tonic::Response::into_inner)
        }
    };
    let placing = wait_until(Duration::from_secs(30), || async { upload(admin.access_token.clone(), "probe.bin").await.is_ok() }).await;
    assert!(placing, "ingest knows the nodes");

    // The user uploads and imports the sample export (server paths are for admins), uploads a
    // file, shares it, revokes the link and deletes it.
    let sample = std::fs::read(crate::helpers::fixture("sample-export/result.json")).expect("sample");
    let export_upload = vec![
        UploadExportRequest { item: Some(upload_export_request::Item::Header(UploadExportHeader::default())) },
        UploadExportRequest {
            item: Some(upload_export_request::Item::Chunk(ExportFileChunk { relative_path: "result.json".to_owned(), data: sample })),
        },
    ];
    let mut updates = IngestServiceClient::new(ingest_channel.clone())
        .upload_export(authorized(futures::stream::iter(export_upload), &user.access_token))
        .await
        .expect("import starts")
        .into_inner();
    let mut summary = None;
    while let Some(update) = updates.message().await.expect("import runs") {
        if let Some(import_update::Update::Summary(done)) = update.update {
            summary = Some(done);
        }
    }
    let summary = summary.expect("the import ends with a summary");
    let stored = upload(user.access_token.clone(), "mine.bin").await.expect("the user uploads");
    let mut files = platform.files.clone();
    let link = CreateShareLinkRequest {
        file_id: stored.file_id.clone(),
        expires_in_seconds: 600,
        password: String::new(),
        consistency_token: stored.consistency_token.clone(),
    };
    let link = files.create_share_link(authorized(link, &user.access_token)).await.expect("share link").into_inner();
    files
        .revoke_share_link(authorized(RevokeShareLinkRequest { token: link.token, ..Default::default() }, &user.access_token))
        .await
        .expect("revoke");
    files
        .delete_file(authorized(DeleteFileRequest { file_id: stored.file_id.clone(), consistency_token: None }, &user.access_token))
        .await
        .expect("delete");

    // The import's events and its commit marker on each partition its token names.
    let chat_events = (summary.chats + summary.messages) as usize + commit_markers(&summary);
    let file_events = ["FileStored", "ShareLinkCreated", "ShareLinkRevoked", "FileDeleted"];
    let everything = AuditQueryRequest::default();
    let arrived = wait_until(Duration::from_secs(60), || async {
        let rows = all_rows(&audit, everything.clone(), &admin.access_token).await.unwrap_or_default();
        let imported = rows.iter().filter(|row| row.topic.ends_with("chat.events")).count();
        let of_file = rows.iter().filter(|row| row.topic.ends_with("files.events") && row.key == stored.file_id).count();
        imported == chat_events && of_file == file_events.len()
    })
    .await;
    let rows = all_rows(&audit, everything, &admin.access_token).await.expect("admin reads the trail");
    assert!(arrived, "audit rows: {:?}", count_by_type(&rows));
    for row in rows.iter().filter(|row| row.topic.ends_with("chat.events")) {
        assert_eq!((row.service.as_str(), row.actor.as_str()), ("ingest", username.as_str()), "{} of the import", row.event_type);
    }
    let mut file_rows: Vec<(String, String)> = rows
        .iter()
        .filter(|row| row.topic.ends_with("files.events") && row.key == stored.file_id)
        .map(|row| (row.event_type.trim_start_matches("chatvault.files.v1.").to_owned(), row.actor.clone()))
        .collect();
    file_rows.sort();
    let mut expected: Vec<(String, String)> = file_events.iter().map(|event| ((*event).to_owned(), username.clone())).collect();
    expected.sort();
    assert_eq!(file_rows, expected, "the upload and the file commands name the user");
    // The probes were the admin's uploads; nothing on files.events lacks its actor.
    assert!(rows.iter().any(|row| row.event_type == "chatvault.files.v1.FileStored" && row.actor == ADMIN_USERNAME));
    assert!(
        rows.iter().filter(|row| row.topic.ends_with("files.events")).all(|row| row.actor == username || row.actor == ADMIN_USERNAME),
        "files.events actors: {:?}",
        rows.iter().filter(|row| row.topic.ends_with("files.events")).map(|row| (&row.event_type, &row.actor)).collect::<Vec<_>>()
    );

    // Nobody asks for rebalancing: parts moved onto a new, empty node name storage itself.
    let empty_node = crate::files_support::TestNode::start().await;
    let request = RegisterNodeRequest { address: empty_node.address.to_string() };
    platform.files.clone().register_node(authorized(request, &admin.access_token)).await.expect("the admin registers a node");
    let moves = AuditQueryRequest { event_type: "chatvault.files.v1.FilePartMoved".to_owned(), ..Default::default() };
    let moved = wait_until(Duration::from_secs(60), || async {
        all_rows(&audit, moves.clone(), &admin.access_token).await.is_ok_and(|rows| !rows.is_empty())
    })
    .await;
    assert!(moved, "the rebalancer moves parts onto the new node");
    let moved_rows = all_rows(&audit, moves, &admin.access_token).await.expect("query");
    assert!(moved_rows.iter().all(|row| row.service == "storage" && row.actor == "system:storage"), "{moved_rows:?}");
}

#[tokio::test]
async fn audit_keeps_every_record_exactly_once_across_a_kill_9() {
    let platform = AuthPlatform::start().await;
    let admin = platform.login(ADMIN_USERNAME, ADMIN_PASSWORD).await.expect("admin logs in");
    let mut environment = platform.environment.clone();
    environment.insert("CHATVAULT_AUDIT_PROJECTION_BATCH_RECORDS".to_owned(), "50".to_owned());
    environment.insert("CHATVAULT_AUDIT_HTTP_ADDR".to_owned(), "127.0.0.1:0".to_owned());
    let log_folder = tempfile::tempdir().expect("temp dir");
    let mut audit_process = spawn_service_process("chatvault-audit", "AUDIT", environment.clone(), &log_folder.path().join("audit-1.log")).await;

    // Records on audit.logs, produced while the audit service is killed and restarted.
    let total: usize = 3000;
    // The lines come from a "service" of this run only; log lines belong to `system:<service>`.
    let run_service = format!("test{}", uuid::Uuid::new_v4().simple());
    let run_marker = chatvault_common::log_shipping::system_actor(&run_service);
    let kafka = ServiceConfig::from_env_map("audit", chatvault_audit::DEFAULT_PORTS, &environment).expect("config").kafka;
    let topic = kafka.topic(chatvault_common::topics::AUDIT_LOGS);
    let producer = chatvault_common::kafka::idempotent_producer(&kafka, "audit-test").expect("producer");
    let produce = |range: std::ops::Range<usize>| {
        let (producer, topic, marker) = (producer.clone(), topic.clone(), run_service.clone());
        async move {
            let sends = range.map(|index| {
                let (producer, topic, marker) = (producer.clone(), topic.clone(), marker.clone());
                async move {
                    let envelope = chatvault_common::envelope::Envelope::new("log.INFO", marker.as_str(), None);
                    let actor = chatvault_common::log_shipping::system_actor(&marker);
                    let headers: OwnedHeaders = envelope.to_headers().insert(Header { key: "actor", value: Some(actor.as_bytes()) });
                    let payload = serde_json::json!({ "level": "INFO", "message": "line", "index": index }).to_string();
                    producer
                        .send(FutureRecord::to(&topic).key("test").payload(&payload).headers(headers), Duration::from_secs(30))
                        .await
                        .expect("record produced");
                }
            });
            futures::future::join_all(sends).await;
        }
    };
    produce(0..total / 2).await;
    let by_marker = AuditQueryRequest { actor: run_marker.clone(), limit: 1000, ..Default::default() };
    let database = platform_database_client(&environment).await;
    let count_rows = || async {
        database
            .query_one("SELECT count(*), count(DISTINCT event->>'index') FROM audit_rows WHERE actor = $1", &[&run_marker])
            .await
            .map(|row| (row.get::<_, i64>(0), row.get::<_, i64>(1)))
            .unwrap_or((0, 0))
    };
    assert!(wait_until(Duration::from_secs(60), || async { count_rows().await.0 > 0 }).await, "audit applied nothing");
    audit_process.child.kill().expect("kill -9 the audit service");
    audit_process.child.wait().expect("reaped");
    let applied_before_restart = count_rows().await.0;
    produce(total / 2..total).await;
    let _restarted = spawn_service_process("chatvault-audit", "AUDIT", environment.clone(), &log_folder.path().join("audit-2.log")).await;
    let complete = wait_until(Duration::from_secs(120), || async { count_rows().await.0 >= total as i64 }).await;
    let (rows, distinct) = count_rows().await;
    assert!(complete, "audit holds {rows} of {total} records (had {applied_before_restart} before the restart)");
    assert_eq!((rows, distinct), (total as i64, total as i64), "every record exactly once");
    // The query API agrees (admin, all pages).
    let audit = AuditServiceClient::new(connect(_restarted.grpc_addr).await);
    let queried = all_rows(&audit, by_marker, &admin.access_token).await.expect("query");
    assert_eq!(queried.len(), total);
}

async fn platform_database_client(environment: &HashMap<String, String>) -> tokio_postgres::Client {
    let url = environment.get("CHATVAULT_AUDIT_DATABASE_URL").expect("audit database url");
    let (client, connection) = tokio_postgres::connect(url, tokio_postgres::NoTls).await.expect("connect");
    tokio::spawn(connection);
    client
}

#[tokio::test]
async fn the_trace_id_of_an_import_finds_its_events_and_the_log_lines_of_ingest_and_storage() {
    // Ingest and storage run as processes with their real telemetry (trace ids, log
    // shipping to this run's audit.logs); audit runs in this process.
    let (database, topic_prefix) = (chatvault_common::test_support::TestDb::fresh().await, chatvault_common::test_support::unique_topic_prefix());
    let environment = crate::helpers::service_environment(database.url.expose(), &topic_prefix);
    let folder = tempfile::tempdir().expect("temp dir");
    let ingest = spawn_service_process("chatvault-ingest", "INGEST", environment.clone(), &folder.path().join("ingest.log")).await;
    let _storage = spawn_service_process("chatvault-storage", "STORAGE", environment.clone(), &folder.path().join("storage.log")).await;
    let shutdown = tokio_util::sync::CancellationToken::new();
    let _stop = shutdown.clone().drop_guard();
    let config = ServiceConfig::from_env_map("audit", chatvault_audit::DEFAULT_PORTS, &environment).expect("audit config");
    let audit_app = chatvault_audit::App::build(config).await.expect("audit starts");
    let audit = AuditServiceClient::new(connect(audit_app.grpc_addr()).await);
    tokio::spawn(audit_app.run_until_stopped(shutdown.clone()));

    let mut ingest_client = chatvault_proto::ingest::v1::ingest_service_client::IngestServiceClient::new(connect(ingest.grpc_addr).await);
    let summary = crate::helpers::import_with(&mut ingest_client, &crate::helpers::fixture("sample-export")).await.expect("imports");
    // One ChatImported per chat and one MessagePosted per message (service messages included).
    let chat_events = summary.chats + summary.messages + commit_markers(&summary) as u64;

    // With auth off every caller is an admin; find the import's trace id on its events.
    let database_client = database.client().await;
    let trace_of_import = || async {
        database_client
            .query_opt("SELECT trace_id FROM audit_rows WHERE topic = $1 AND trace_id <> '' LIMIT 1", &[&format!("{topic_prefix}chat.events")])
            .await
            .ok()
            .flatten()
            .map(|row| row.get::<_, String>(0))
    };
    assert!(wait_until(Duration::from_secs(60), || async { trace_of_import().await.is_some() }).await, "no traced chat event in audit");
    let trace_id = trace_of_import().await.expect("trace id");
    let by_trace = AuditQueryRequest { trace_id: trace_id.clone(), ..Default::default() };
    let complete = wait_until(Duration::from_secs(60), || async {
        let rows = all_rows(&audit, by_trace.clone(), "").await.unwrap_or_default();
        let events = rows.iter().filter(|row| row.topic.ends_with("chat.events")).count() as u64;
        let ingest_lines = rows.iter().any(|row| row.topic.ends_with("audit.logs") && row.service == "ingest");
        let storage_lines = rows.iter().any(|row| row.topic.ends_with("audit.logs") && row.service == "storage");
        events >= chat_events && ingest_lines && storage_lines
    })
    .await;
    let rows = all_rows(&audit, by_trace, "").await.expect("query by trace");
    let summary_of = |topic: &str, service: &str| rows.iter().filter(|row| row.topic.ends_with(topic) && row.service == service).count();
    assert!(
        complete,
        "trace {trace_id}: {} chat events of {chat_events}, {} ingest log lines, {} storage log lines",
        summary_of("chat.events", "ingest"),
        summary_of("audit.logs", "ingest"),
        summary_of("audit.logs", "storage")
    );
    assert_eq!(summary_of("chat.events", "ingest") as u64, chat_events, "every event of the import, once");
    assert!(rows.iter().all(|row| row.trace_id == trace_id));
}

#[tokio::test]
async fn with_the_log_kafka_away_a_service_keeps_answering_and_counts_dropped_lines() {
    let (database, topic_prefix) = (chatvault_common::test_support::TestDb::fresh().await, chatvault_common::test_support::unique_topic_prefix());
    let mut environment = crate::helpers::service_environment(database.url.expose(), &topic_prefix);
    // Nothing listens on port 1: every shipped line waits in the producer, then fails.
    environment.insert("CHATVAULT_LOG_SHIPPING_BROKERS".to_owned(), "127.0.0.1:1".to_owned());
    let http_addr = std::net::TcpListener::bind("127.0.0.1:0").expect("bind").local_addr().expect("addr");
    environment.insert("CHATVAULT_STORAGE_HTTP_ADDR".to_owned(), http_addr.to_string());
    let folder = tempfile::tempdir().expect("temp dir");
    let storage = spawn_service_process("chatvault-storage", "STORAGE", environment, &folder.path().join("storage.log")).await;
    let mut client = chatvault_proto::storage::v1::storage_service_client::StorageServiceClient::new(connect(storage.grpc_addr).await);
    for _ in 0..20 {
        client.list_chats(chatvault_proto::storage::v1::ListChatsRequest::default()).await.expect("queries are answered");
    }
    let dropped = || async {
        let response = crate::files_support::http_request(http_addr, "GET", "/metrics", &[], b"").await;
        let text = String::from_utf8_lossy(&response.body).to_string();
        text.lines()
            .find(|line| line.starts_with("chatvault_log_lines_dropped_total "))
            .and_then(|line| line.split_whitespace().nth(1))
            .and_then(|value| value.parse::<f64>().ok())
            .unwrap_or(0.0)
    };
    assert!(wait_until(Duration::from_secs(90), || async { dropped().await > 0.0 }).await, "dropped lines are counted in /metrics");
    client.list_chats(chatvault_proto::storage::v1::ListChatsRequest::default()).await.expect("still answering");
}

#[tokio::test]
async fn partitions_older_than_the_retention_are_dropped_and_newer_ones_kept() {
    let platform = AuthPlatform::start().await;
    let audit = platform.start_audit().await;
    let admin = platform.login(ADMIN_USERNAME, ADMIN_PASSWORD).await.expect("admin logs in");
    let kafka = ServiceConfig::from_env_map("audit", chatvault_audit::DEFAULT_PORTS, &platform.environment).expect("config").kafka;
    let topic = kafka.topic(chatvault_common::topics::AUDIT_LOGS);
    let producer = chatvault_common::kafka::idempotent_producer(&kafka, "audit-retention-test").expect("producer");
    // Lines of a "service" of this test only: log lines belong to `system:<service>`.
    let service = format!("test{}", uuid::Uuid::new_v4().simple());
    let marker = chatvault_common::log_shipping::system_actor(&service);
    for days_ago in [40i64, 0] {
        let mut envelope = chatvault_common::envelope::Envelope::new("log.INFO", service.as_str(), None);
        envelope.occurred_at = chrono::Utc::now() - chrono::Duration::days(days_ago);
        let headers = envelope.to_headers().insert(Header { key: "actor", value: Some(marker.as_bytes()) });
        let payload = serde_json::json!({ "days_ago": days_ago }).to_string();
        producer.send(FutureRecord::to(&topic).key("test").payload(&payload).headers(headers), Duration::from_secs(30)).await.expect("produced");
    }
    let by_marker = AuditQueryRequest { actor: marker.clone(), ..Default::default() };
    let both = wait_until(Duration::from_secs(60), || async {
        all_rows(&audit, by_marker.clone(), &admin.access_token).await.is_ok_and(|rows| rows.len() == 2)
    })
    .await;
    assert!(both, "both rows are stored, each in its day's partition");

    let url = platform.environment.get("CHATVAULT_AUDIT_DATABASE_URL").expect("url").clone();
    let pool = chatvault_common::db::connect_pool(&chatvault_common::config::Secret::new(url), 2).expect("pool");
    let dropped = chatvault_audit::projection::drop_expired_partitions(&pool, 30).await.expect("retention runs");
    let old_day = (chrono::Utc::now() - chrono::Duration::days(40)).date_naive();
    assert!(dropped.contains(&chatvault_audit::projection::partition_name(old_day)), "dropped {dropped:?}");
    let rows = all_rows(&audit, by_marker, &admin.access_token).await.expect("query");
    assert_eq!(rows.len(), 1, "only the recent row is left");
    assert!(rows[0].event_json.contains("\"days_ago\": 0") || rows[0].event_json.contains("\"days_ago\":0"), "{}", rows[0].event_json);
}

/// Returns how many commit markers an import wrote: one per partition its token names.
fn commit_markers(summary: &chatvault_proto::ingest::v1::ImportSummary) -> usize {
    let token = summary.consistency_token.as_ref().map(|token| token.value.as_str()).unwrap_or_default();
    token.split(',').filter(|position| position.contains("chat.events@")).count()
}
