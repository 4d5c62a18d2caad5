//! Snapshot exports (`SnapshotService.ExportSnapshot` of storage and users) and account
//! restores (`AccountsService.RestoreAccounts`) against the real stack: every row and the
//! projections' positions from one snapshot, chat filters, refusals, and restoring accounts
//! into an empty database twice.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::time::Duration;

use chatvault_common::config::{KafkaConfig, ServiceConfig};
use chatvault_common::test_support::{service_environment, unique_topic_prefix, TestDb};
use chatvault_proto::ingest::v1::ingest_service_client::IngestServiceClient;
use chatvault_proto::snapshot::v1::export_snapshot_response::Message;
use chatvault_proto::snapshot::v1::snapshot_service_client::SnapshotServiceClient;
use chatvault_proto::snapshot::v1::{ExportSnapshotRequest, SnapshotHeader};
use chatvault_proto::storage::v1::storage_service_client::StorageServiceClient;
use chatvault_proto::storage::v1::ListChatsRequest;
use chatvault_proto::users::v1::accounts_service_client::AccountsServiceClient;
use chatvault_proto::users::v1::user_event::Event;
use chatvault_proto::users::v1::users_service_client::UsersServiceClient;
use chatvault_proto::users::v1::TopAuthorsRequest;
use chatvault_proto::users::v1::{LoginRequest, RegisterRequest, RestoreAccountsResponse, RestoredAccount, UserEvent};
use prost::Message as _;
use rdkafka::consumer::Consumer;
use rdkafka::Message as _;
use tokio_util::sync::CancellationToken;
use tonic::transport::Channel;
use tonic::{Code, Request};

use crate::accounts::authorized;
use crate::helpers::{connect, fixture, import_with, start_ingest, wait_until};

const SAMPLE_CHAT_ID: i64 = 1_234_567_890;
const STORAGE_PROJECTIONS: &[&str] = &["storage.chats", "storage.files"];
const PASSWORD: &str = "correct horse 42";

/// One table of an export: its rows decoded from binary COPY and the count its end reported.
#[derive(Debug, Default)]
struct ExportedTable {
    columns: Vec<String>,
    rows: Vec<Vec<Option<Vec<u8>>>>,
    reported_rows: Option<u64>,
    /// Sizes of the `TableData` messages that carried the table.
    data_message_sizes: Vec<usize>,
}

impl ExportedTable {
    fn column(&self, name: &str) -> usize {
        self.columns.iter().position(|column| column == name).unwrap_or_else(|| panic!("no column {name} in {:?}", self.columns))
    }

    fn int8_values(&self, name: &str) -> Vec<i64> {
        let index = self.column(name);
        self.rows.iter().map(|row| int8(row[index].as_deref().expect("not null"))).collect()
    }

    fn text_values(&self, name: &str) -> Vec<String> {
        let index = self.column(name);
        self.rows.iter().map(|row| text(row[index].as_deref().expect("not null"))).collect()
    }
}

/// A whole export as the client saw it.
#[derive(Debug)]
struct ExportedSnapshot {
    header: SnapshotHeader,
    tables: BTreeMap<String, ExportedTable>,
}

impl ExportedSnapshot {
    fn table(&self, name: &str) -> &ExportedTable {
        self.tables.get(name).unwrap_or_else(|| panic!("table {name} was not exported; got {:?}", self.tables.keys()))
    }
}

/// Runs ExportSnapshot to its end, checking the stream's order (header first, each
/// table's data before its one end) and that every table's rows match its reported count.
async fn export(channel: &Channel, tables: &[&str], chat_ids: &[i64]) -> Result<ExportedSnapshot, tonic::Status> {
    let request = ExportSnapshotRequest { tables: tables.iter().map(|table| table.to_string()).collect(), chat_ids: chat_ids.to_vec() };
    export_request(channel, Request::new(request)).await
}

async fn export_request(channel: &Channel, request: Request<ExportSnapshotRequest>) -> Result<ExportedSnapshot, tonic::Status> {
    let mut client = SnapshotServiceClient::new(channel.clone()).max_decoding_message_size(64 << 20);
    let mut stream = client.export_snapshot(request).await?.into_inner();
    let mut header = None;
    let mut copy_bytes: BTreeMap<String, Vec<u8>> = BTreeMap::new();
    let mut tables: BTreeMap<String, ExportedTable> = BTreeMap::new();
    while let Some(response) = stream.message().await? {
        match response.message.expect("a message") {
            Message::Header(received) => {
                assert!(header.is_none(), "one header");
                for schema in &received.tables {
                    let table = ExportedTable { columns: schema.columns.iter().map(|column| column.name.clone()).collect(), ..Default::default() };
                    tables.insert(schema.name.clone(), table);
                }
                header = Some(received);
            }
            Message::Data(data) => {
                assert!(header.is_some(), "data after the header");
                let table = tables.get_mut(&data.table).unwrap_or_else(|| panic!("data of {} which the header does not list", data.table));
                assert!(table.reported_rows.is_none(), "data of {} after its end", data.table);
                table.data_message_sizes.push(data.copy_data.len());
                copy_bytes.entry(data.table).or_default().extend_from_slice(&data.copy_data);
            }
            Message::End(end) => {
                let table = tables.get_mut(&end.table).unwrap_or_else(|| panic!("end of {} which the header does not list", end.table));
                assert!(table.reported_rows.is_none(), "one end of {}", end.table);
                table.reported_rows = Some(end.rows);
            }
        }
    }
    for (name, table) in &mut tables {
        let bytes = copy_bytes.remove(name).unwrap_or_else(|| panic!("no data of {name}"));
        table.rows = decode_binary_copy(&bytes, table.columns.len());
        assert_eq!(Some(table.rows.len() as u64), table.reported_rows, "the end of {name} counts the rows sent");
    }
    Ok(ExportedSnapshot { header: header.expect("a header"), tables })
}

/// Decodes a whole binary COPY stream into rows of fields (`None` = NULL).
fn decode_binary_copy(bytes: &[u8], columns: usize) -> Vec<Vec<Option<Vec<u8>>>> {
    assert_eq!(&bytes[..11], b"PGCOPY\n\xff\r\n\0", "binary COPY signature");
    let extension_length = i32::from_be_bytes(bytes[15..19].try_into().unwrap()) as usize;
    let mut at = 19 + extension_length;
    let mut take = |count: usize| {
        let piece = &bytes[at..at + count];
        at += count;
        piece
    };
    let mut rows = Vec::new();
    loop {
        let fields = i16::from_be_bytes(take(2).try_into().unwrap());
        if fields == -1 {
            break;
        }
        assert_eq!(fields as usize, columns, "fields per tuple");
        let row = (0..fields)
            .map(|_| match i32::from_be_bytes(take(4).try_into().unwrap()) {
                -1 => None,
                length => Some(take(length as usize).to_vec()),
            })
            .collect();
        rows.push(row);
    }
    assert_eq!(at, bytes.len(), "nothing after the trailer");
    rows
}

fn int8(field: &[u8]) -> i64 {
    i64::from_be_bytes(field.try_into().expect("8 bytes"))
}

fn text(field: &[u8]) -> String {
    String::from_utf8(field.to_vec()).expect("UTF-8 text")
}

/// Binary `timestamptz`: microseconds since 2000-01-01 UTC, as Unix milliseconds.
fn timestamptz_unix_ms(field: &[u8]) -> i64 {
    const POSTGRES_EPOCH_UNIX_MS: i64 = 946_684_800_000;
    int8(field).div_euclid(1000) + POSTGRES_EPOCH_UNIX_MS
}

async fn count(client: &tokio_postgres::Client, sql: &str) -> u64 {
    client.query_one(sql, &[]).await.expect(sql).get::<_, i64>(0) as u64
}

fn with_role<T>(message: T, role: &str) -> Request<T> {
    let mut request = Request::new(message);
    request.metadata_mut().insert("x-chatvault-role", role.parse().expect("ascii"));
    request
}

/// Returns an access token for `username` with `role`, signed with the tests' secret.
fn token_with_role(username: &str, role: &str) -> String {
    crate::accounts::minted_token(username, role)
}

fn unique_name(prefix: &str) -> String {
    format!("{prefix}{}", &uuid::Uuid::new_v4().simple().to_string()[..8])
}

/// Users and storage (and, when asked, ingest) on a fresh database and topics whose prefix
/// the test knows.
struct SnapshotPlatform {
    database: TestDb,
    kafka: KafkaConfig,
    users: Channel,
    storage: Channel,
    ingest: Option<IngestServiceClient<Channel>>,
    shutdown: CancellationToken,
}

impl Drop for SnapshotPlatform {
    fn drop(&mut self) {
        self.shutdown.cancel();
    }
}

impl SnapshotPlatform {
    async fn start(auth_on: bool, with_ingest: bool) -> Self {
        let (database, topic_prefix) = (TestDb::fresh().await, unique_topic_prefix());
        let shutdown = CancellationToken::new();
        let mut environment: HashMap<String, String> = service_environment(database.url.expose(), &topic_prefix);
        if auth_on {
            environment.insert("CHATVAULT_AUTH".to_owned(), "on".to_owned());
        }
        let ingest = if with_ingest {
            let address = start_ingest(database.url.expose(), &topic_prefix, shutdown.clone()).await;
            Some(IngestServiceClient::new(connect(address).await))
        } else {
            None
        };
        let users_config = ServiceConfig::from_env_map("users", chatvault_users::DEFAULT_PORTS, &environment).expect("users config");
        let users_app = chatvault_users::App::build(users_config).await.expect("users starts (is the stack up? scripts/stack.sh up)");
        let users_addr = users_app.grpc_addr();
        tokio::spawn(users_app.run_until_stopped(shutdown.clone()));
        let storage_config = ServiceConfig::from_env_map("storage", chatvault_storage::DEFAULT_PORTS, &environment).expect("storage config");
        let storage_app = chatvault_storage::App::build(storage_config).await.expect("storage starts");
        let storage_addr = storage_app.grpc_addr();
        tokio::spawn(storage_app.run_until_stopped(shutdown.clone()));
        let kafka = KafkaConfig::from_env_map(&environment).expect("kafka settings");
        Self { database, kafka, users: connect(users_addr).await, storage: connect(storage_addr).await, ingest, shutdown }
    }

    /// Imports a fixture and waits until storage and users have applied it.
    async fn import(&self, fixture_name: &str) {
        let mut ingest = self.ingest.clone().expect("started with ingest");
        let summary = import_with(&mut ingest, &fixture(fixture_name)).await.expect("imports");
        StorageServiceClient::new(self.storage.clone())
            .list_chats(ListChatsRequest { consistency_token: summary.consistency_token.clone() })
            .await
            .expect("storage applies the import");
        UsersServiceClient::new(self.users.clone())
            .top_authors(TopAuthorsRequest { chat_id: SAMPLE_CHAT_ID, limit: 1, consistency_token: summary.consistency_token, owner: None })
            .await
            .expect("users applies the import");
    }

    /// Returns `(topic without prefix, partition, next offset)` of `projections`, sorted.
    async fn projection_positions(&self, projections: &[&str]) -> Vec<(String, i32, i64)> {
        let client = self.database.client().await;
        let rows = client
            .query("SELECT topic, partition, next_offset FROM projection_offsets WHERE projection = ANY($1)", &[&projections])
            .await
            .expect("offsets");
        let mut positions: Vec<(String, i32, i64)> = rows
            .iter()
            .map(|row| {
                let topic: String = row.get(0);
                let base = topic.strip_prefix(self.kafka.topic_prefix.as_str()).expect("topics carry the prefix").to_owned();
                (base, row.get(1), row.get(2))
            })
            .collect();
        positions.sort();
        positions
    }

    fn accounts(&self) -> AccountsServiceClient<Channel> {
        AccountsServiceClient::new(self.users.clone())
    }

    async fn register(&self, username: &str) {
        let request = RegisterRequest { username: username.to_owned(), email: format!("{username}@example.org"), password: PASSWORD.to_owned() };
        self.accounts().register(request).await.expect("registers");
    }

    async fn restore(&self, accounts: Vec<RestoredAccount>) -> Result<RestoreAccountsResponse, tonic::Status> {
        self.accounts().restore_accounts(futures::stream::iter(accounts)).await.map(tonic::Response::into_inner)
    }

    /// The accounts as a restore carries them: id, names, hash, role, times in milliseconds.
    async fn account_rows(&self) -> Vec<(String, String, String, String, String, i64, i64)> {
        let client = self.database.client().await;
        let rows = client
            .query(
                "SELECT account_id::text, username, email, password_hash, role,
                        (extract(epoch FROM date_trunc('milliseconds', created_at)) * 1000)::int8,
                        (extract(epoch FROM date_trunc('milliseconds', password_changed_at)) * 1000)::int8
                 FROM accounts ORDER BY account_id",
                &[],
            )
            .await
            .expect("accounts");
        rows.iter().map(|row| (row.get(0), row.get(1), row.get(2), row.get(3), row.get(4), row.get(5), row.get(6))).collect()
    }

    /// Waits until the outbox relay has published every queued account event.
    async fn wait_for_empty_outbox(&self) {
        let client = self.database.client().await;
        let emptied = wait_until(Duration::from_secs(60), || {
            let client = &client;
            async move { count(client, "SELECT count(*) FROM account_outbox").await == 0 }
        })
        .await;
        assert!(emptied, "the outbox relay publishes the account events");
    }

    /// Returns the ids of accounts announced by AccountRegistered on `users.events`, read
    /// from the start until `expected` have been seen or a deadline passes.
    async fn registered_account_ids(&self, expected: usize) -> Vec<String> {
        let group = format!("snapshot-export-test-{}", uuid::Uuid::new_v4().simple());
        let consumer = chatvault_common::kafka::read_committed_consumer(&self.kafka, &group).expect("consumer");
        consumer.subscribe(&[&self.kafka.topic(chatvault_common::topics::USERS_EVENTS)]).expect("subscribe");
        let mut ids = Vec::new();
        let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
        while ids.len() < expected {
            let Ok(received) = tokio::time::timeout_at(deadline, consumer.recv()).await else { break };
            let record = received.expect("kafka record");
            let event = UserEvent::decode(record.payload().unwrap_or_default()).expect("a user event");
            if let Some(Event::AccountRegistered(registered)) = event.event {
                ids.push(registered.account_id);
            }
        }
        ids
    }
}

/// Turns the exported `accounts` table into restore requests, the way a backup does.
fn restored_accounts(table: &ExportedTable) -> Vec<RestoredAccount> {
    let field = |row: &Vec<Option<Vec<u8>>>, name: &str| row[table.column(name)].clone().expect("not null");
    table
        .rows
        .iter()
        .map(|row| RestoredAccount {
            account_id: text(&field(row, "account_id")),
            username: text(&field(row, "username")),
            email: text(&field(row, "email")),
            password_hash: text(&field(row, "password_hash")),
            role: text(&field(row, "role")),
            created_at_unix_ms: timestamptz_unix_ms(&field(row, "created_at")),
            password_changed_at_unix_ms: timestamptz_unix_ms(&field(row, "password_changed_at")),
        })
        .collect()
}

/// Inserts `count` messages of about 400 bytes each into chat `chat_id`, straight into the
/// storage tables.
async fn insert_bulk_messages(client: &tokio_postgres::Client, chat_id: i64, count: i64) {
    client.execute("INSERT INTO chats (owner, chat_id, name) VALUES ('local', $1, 'bulk')", &[&chat_id]).await.expect("a chat");
    client
        .execute(
            "INSERT INTO messages (owner, chat_id, message_id, kind, sent_at, text, entities, raw_json, import_id)
             SELECT 'local', $1, n, 1, now(), repeat('й', 200), '[{\"type\": \"plain\"}]', '{}', 'bulk' FROM generate_series(1::int8, $2) AS n",
            &[&chat_id, &count],
        )
        .await
        .expect("bulk messages");
}

fn new_account(username: &str, email: &str) -> RestoredAccount {
    RestoredAccount {
        account_id: uuid::Uuid::now_v7().to_string(),
        username: username.to_owned(),
        email: email.to_owned(),
        password_hash: "$argon2id$v=19$m=19456,t=2,p=1$c2FsdHNhbHRzYWx0$aGFzaGhhc2hoYXNoaGFzaGhhc2hoYXNoaGFzaA".to_owned(),
        role: "user".to_owned(),
        created_at_unix_ms: 1_700_000_000_000,
        password_changed_at_unix_ms: 1_700_000_500_000,
    }
}

#[tokio::test]
async fn storage_and_users_export_every_row_with_the_positions_of_their_snapshot() {
    let platform = SnapshotPlatform::start(false, true).await;
    platform.import("sample-export").await;

    let snapshot = export(&platform.storage, &[], &[]).await.expect("storage exports");
    assert_eq!(snapshot.header.service, "storage");
    let listed: Vec<&str> = snapshot.header.tables.iter().map(|table| table.name.as_str()).collect();
    assert_eq!(listed, vec!["chats", "messages", "chat_grants", "files", "file_parts"], "message_keys only when asked for");
    let taken_at = chrono::DateTime::from_timestamp_millis(snapshot.header.taken_at_unix_ms).expect("a time");
    assert!((chrono::Utc::now() - taken_at).num_seconds().abs() < 60);
    let messages_schema = snapshot.header.tables.iter().find(|table| table.name == "messages").expect("messages");
    let entities = messages_schema.columns.iter().find(|column| column.name == "entities").expect("entities column");
    assert_eq!((entities.pg_type.as_str(), entities.nullable), ("json", true));

    let database = platform.database.client().await;
    for (table, sql) in [
        ("chats", "SELECT count(*) FROM chats"),
        ("messages", "SELECT count(*) FROM messages"),
        ("chat_grants", "SELECT count(*) FROM chat_grants"),
        ("files", "SELECT count(*) FROM files WHERE deleted_at IS NULL"),
        ("file_parts", "SELECT count(*) FROM file_parts JOIN files USING (file_id) WHERE files.deleted_at IS NULL"),
    ] {
        assert_eq!(snapshot.table(table).rows.len() as u64, count(&database, sql).await, "rows of {table}");
    }
    assert_eq!(snapshot.table("chats").int8_values("chat_id"), vec![SAMPLE_CHAT_ID]);
    // Every archive row names its owner: the importing caller (`local` with auth off).
    assert_eq!(snapshot.table("chats").text_values("owner"), vec!["local".to_owned()]);
    assert!(snapshot.table("messages").text_values("owner").iter().all(|owner| owner == "local"));
    let stored_messages = count(&database, "SELECT count(*) FROM messages").await;
    assert!(stored_messages > 0);
    // JSON columns arrive as JSON text.
    let entities_index = snapshot.table("messages").column("entities");
    let some_entities = snapshot.table("messages").rows.iter().find_map(|row| row[entities_index].clone()).expect("a message with entities");
    serde_json::from_slice::<serde_json::Value>(&some_entities).expect("entities are JSON text");

    // Positions of storage's projections only (users shares this database), as base names.
    let mut reported: Vec<(String, i32, i64)> =
        snapshot.header.positions.iter().map(|position| (position.topic.clone(), position.partition, position.next_offset)).collect();
    reported.sort();
    assert_eq!(reported, platform.projection_positions(STORAGE_PROJECTIONS).await);
    assert!(reported.iter().any(|(topic, _, offset)| topic == "chat.events" && *offset > 0), "{reported:?}");

    // Asked by name, and twice, message_keys comes once with one row per message.
    let keys = export(&platform.storage, &["message_keys", "message_keys"], &[]).await.expect("exports message keys");
    assert_eq!(keys.tables.keys().collect::<Vec<_>>(), vec!["message_keys"]);
    assert_eq!(keys.table("message_keys").rows.len() as u64, stored_messages);

    let users = export(&platform.users, &[], &[]).await.expect("users exports");
    assert_eq!(users.header.service, "users");
    let listed: Vec<&str> = users.header.tables.iter().map(|table| table.name.as_str()).collect();
    assert_eq!(listed, vec!["author_messages", "author_chat_counts", "author_names", "accounts"]);
    for table in ["author_messages", "author_chat_counts", "author_names", "accounts"] {
        let stored = count(&database, &format!("SELECT count(*) FROM {table}")).await;
        assert_eq!(users.table(table).rows.len() as u64, stored, "rows of {table}");
    }
    assert!(!users.table("author_messages").rows.is_empty());
    let mut reported: Vec<(String, i32, i64)> =
        users.header.positions.iter().map(|position| (position.topic.clone(), position.partition, position.next_offset)).collect();
    reported.sort();
    assert_eq!(reported, platform.projection_positions(&["users.authors"]).await);
}

#[tokio::test]
async fn a_chat_filter_restricts_the_exported_rows() {
    let platform = SnapshotPlatform::start(false, true).await;
    platform.import("sample-export").await;
    platform.import("account-export").await;
    let database = platform.database.client().await;

    let everything = export(&platform.storage, &["chats", "messages"], &[]).await.expect("exports");
    let all_chats: BTreeSet<i64> = everything.table("chats").int8_values("chat_id").into_iter().collect();
    assert_eq!(all_chats, BTreeSet::from([42, 43, 777, 888, SAMPLE_CHAT_ID]));

    let chosen = [43, 888];
    let filtered = export(&platform.storage, &["chats", "messages", "message_keys", "files"], &chosen).await.expect("exports filtered");
    assert_eq!(filtered.table("chats").int8_values("chat_id").into_iter().collect::<BTreeSet<_>>(), BTreeSet::from(chosen));
    let stored = count(&database, "SELECT count(*) FROM messages WHERE chat_id IN (43, 888)").await;
    for table in ["messages", "message_keys"] {
        let chats: BTreeSet<i64> = filtered.table(table).int8_values("chat_id").into_iter().collect();
        assert_eq!(chats, BTreeSet::from(chosen), "{table} of the chosen chats only");
        assert_eq!(filtered.table(table).rows.len() as u64, stored, "every message of the chosen chats in {table}");
    }
    assert!((stored as usize) < everything.table("messages").rows.len());
    let none = export(&platform.storage, &["chats", "messages"], &[999_999]).await.expect("exports an unknown chat");
    assert!(none.table("chats").rows.is_empty() && none.table("messages").rows.is_empty());

    // Users: the authors of the chosen chat, and only their names. Ann (user42) wrote in the
    // old channel 888; Борис (user43) did not.
    let account = unique_name("kim");
    platform.register(&account).await;
    let authors_everywhere = export(&platform.users, &["author_names"], &[]).await.expect("exports authors");
    let authors_filtered = export(&platform.users, &[], &[888]).await.expect("exports authors of chat 888");
    assert!(!authors_filtered.table("author_messages").rows.is_empty());
    assert!(authors_filtered.table("author_messages").int8_values("chat_id").iter().all(|chat| *chat == 888));
    assert!(authors_filtered.table("author_chat_counts").int8_values("chat_id").iter().all(|chat| *chat == 888));
    let counted_authors: BTreeSet<String> = authors_filtered.table("author_chat_counts").text_values("author_id").into_iter().collect();
    let named_authors: BTreeSet<String> = authors_filtered.table("author_names").text_values("author_id").into_iter().collect();
    assert_eq!(counted_authors, BTreeSet::from(["user42".to_owned()]));
    assert_eq!(named_authors, counted_authors, "names of authors counted in chat 888 only");
    let all_named: BTreeSet<String> = authors_everywhere.table("author_names").text_values("author_id").into_iter().collect();
    assert!(all_named.contains("user43"), "{all_named:?}");
    assert_eq!(authors_filtered.table("accounts").text_values("username"), vec![account], "accounts ignore the chat filter");
}

#[tokio::test]
async fn an_unknown_table_is_refused_naming_the_known_ones() {
    let platform = SnapshotPlatform::start(false, false).await;
    let refused = export(&platform.storage, &["chats", "chat_secrets"], &[]).await.expect_err("unknown table");
    assert_eq!(refused.code(), Code::InvalidArgument, "{refused:?}");
    for name in ["chat_secrets", "chats", "messages", "files", "file_parts", "message_keys"] {
        assert!(refused.message().contains(name), "{:?} names {name}", refused.message());
    }
    let refused = export(&platform.users, &["refresh_tokens"], &[]).await.expect_err("unknown table");
    assert_eq!(refused.code(), Code::InvalidArgument);
    assert!(refused.message().contains("accounts"), "{:?}", refused.message());
}

#[tokio::test]
async fn exports_and_restores_need_the_admin_role() {
    // Auth off: the role header is trusted, and a caller without one is the local admin.
    let open = SnapshotPlatform::start(false, false).await;
    for channel in [&open.storage, &open.users] {
        let denied = export_request(channel, with_role(ExportSnapshotRequest::default(), "user")).await.expect_err("not an admin");
        assert_eq!(denied.code(), Code::PermissionDenied, "{denied:?}");
    }
    let denied = open.accounts().restore_accounts(with_role(futures::stream::iter(vec![new_account("eve", "eve@example.org")]), "user")).await;
    assert_eq!(denied.expect_err("not an admin").code(), Code::PermissionDenied);
    assert!(open.account_rows().await.is_empty());

    // Auth on: the role comes from the token.
    let guarded = SnapshotPlatform::start(true, false).await;
    let (user, admin) = (token_with_role("alice", "user"), token_with_role("root", "admin"));
    for channel in [&guarded.storage, &guarded.users] {
        let anonymous = export(channel, &[], &[]).await.expect_err("no token");
        assert_eq!(anonymous.code(), Code::Unauthenticated);
        let denied = export_request(channel, authorized(ExportSnapshotRequest::default(), &user)).await.expect_err("a user");
        assert_eq!(denied.code(), Code::PermissionDenied);
        export_request(channel, authorized(ExportSnapshotRequest::default(), &admin)).await.expect("the admin exports");
    }
    let accounts = || futures::stream::iter(vec![new_account(&unique_name("frank"), "frank@example.org")]);
    let denied = guarded.accounts().restore_accounts(authorized(accounts(), &user)).await;
    assert_eq!(denied.expect_err("a user").code(), Code::PermissionDenied);
    assert!(guarded.account_rows().await.is_empty());
    let restored = guarded.accounts().restore_accounts(authorized(accounts(), &admin)).await.expect("the admin restores").into_inner();
    assert_eq!(restored.restored, 1);
}

#[tokio::test]
async fn restored_accounts_come_back_once_with_their_events() {
    let source = SnapshotPlatform::start(false, false).await;
    let usernames = [unique_name("ann"), unique_name("boris"), unique_name("carol")];
    for username in &usernames {
        source.register(username).await;
    }
    let source_database = source.database.client().await;
    source_database.execute("UPDATE accounts SET role = 'admin' WHERE username = $1", &[&usernames[2]]).await.expect("make an admin");

    let backup = export(&source.users, &["accounts"], &[]).await.expect("exports the accounts");
    let columns = &backup.table("accounts").columns;
    assert_eq!(columns, &["account_id", "username", "email", "password_hash", "role", "created_at", "password_changed_at"]);
    let accounts = restored_accounts(backup.table("accounts"));
    assert_eq!(accounts.len(), 3);

    let target = SnapshotPlatform::start(false, false).await;
    let first = target.restore(accounts.clone()).await.expect("restores");
    assert_eq!((first.restored, first.already_present, first.conflicts.len()), (3, 0, 0), "{first:?}");
    let restored_rows = target.account_rows().await;
    assert_eq!(restored_rows, source.account_rows().await, "ids, hashes, roles and times come back");
    let login = LoginRequest { username: usernames[0].clone(), password: PASSWORD.to_owned() };
    target.accounts().login(login).await.expect("the restored password hash logs in");

    // Each restored account is announced like a registration.
    let mut announced = target.registered_account_ids(3).await;
    announced.sort();
    let mut restored_ids: Vec<String> = accounts.iter().map(|account| account.account_id.clone()).collect();
    restored_ids.sort();
    assert_eq!(announced, restored_ids);

    target.wait_for_empty_outbox().await;
    let second = target.restore(accounts).await.expect("restores again");
    assert_eq!((second.restored, second.already_present, second.conflicts.len()), (0, 3, 0), "{second:?}");
    assert_eq!(target.account_rows().await, restored_rows, "nothing changes");
    let target_database = target.database.client().await;
    assert_eq!(count(&target_database, "SELECT count(*) FROM account_outbox").await, 0, "no events queued");
}

#[tokio::test]
async fn conflicting_accounts_are_listed_and_malformed_ones_write_nothing() {
    let platform = SnapshotPlatform::start(false, false).await;
    let existing = unique_name("dora");
    platform.register(&existing).await;
    let existing_id = platform.account_rows().await[0].0.clone();

    let same_username = new_account(&existing.to_uppercase(), "someone.else@example.org");
    let same_email = new_account(&unique_name("ed"), &format!("{existing}@example.org"));
    let fresh = new_account(&unique_name("fay"), "fay@example.org");
    let response = platform.restore(vec![same_username.clone(), same_email.clone(), fresh.clone()]).await.expect("restores");
    assert_eq!((response.restored, response.already_present), (1, 0));
    assert_eq!(response.conflicts.len(), 2, "{:?}", response.conflicts);
    assert!(response.conflicts[0].contains(&same_username.account_id) && response.conflicts[0].contains("username"), "{:?}", response.conflicts);
    assert!(response.conflicts[0].contains(&existing_id));
    assert!(response.conflicts[1].contains(&same_email.account_id) && response.conflicts[1].contains("email"), "{:?}", response.conflicts);
    let ids: BTreeSet<String> = platform.account_rows().await.into_iter().map(|row| row.0).collect();
    assert_eq!(ids, BTreeSet::from([existing_id.clone(), fresh.account_id.clone()]));

    // One malformed account refuses the whole stream.
    let valid = new_account(&unique_name("gus"), "gus@example.org");
    for malformed in [
        RestoredAccount { account_id: "not-a-uuid".to_owned(), ..new_account("hal", "hal@example.org") },
        RestoredAccount { role: "superuser".to_owned(), ..new_account("ida", "ida@example.org") },
        RestoredAccount { password_hash: String::new(), ..new_account("jon", "jon@example.org") },
    ] {
        let refused = platform.restore(vec![valid.clone(), malformed.clone()]).await.expect_err("malformed");
        assert_eq!(refused.code(), Code::InvalidArgument, "{refused:?}");
        assert!(refused.message().contains(&malformed.username), "{:?} names the account", refused.message());
    }
    let ids: BTreeSet<String> = platform.account_rows().await.into_iter().map(|row| row.0).collect();
    assert_eq!(ids, BTreeSet::from([existing_id, fresh.account_id]), "nothing of a refused stream is written");
}

#[tokio::test]
async fn only_live_files_and_their_parts_are_exported() {
    let platform = SnapshotPlatform::start(false, false).await;
    let database = platform.database.client().await;
    database
        .batch_execute(
            "INSERT INTO files (file_id, owner, name, content_type, size, sha256, uploaded_at, upload_date, block_size,
                                data_parts, parity_parts, fault_tolerance, deleted_at)
             VALUES ('live', 'ann', 'plan.pdf', 'application/pdf', 10, 'aa', now(), '2026-11-22', 4, 3, 2, 1, NULL),
                    ('gone', 'ann', 'old.pdf', 'application/pdf', 10, 'bb', now(), '2026-11-21', 4, 3, 2, 1, now());
             INSERT INTO file_parts (file_id, part_index, node_id, size, sha256)
             VALUES ('live', 0, 'n1', 4, 'p0'), ('live', 1, 'n2', 4, 'p1'), ('gone', 0, 'n1', 4, 'p2');",
        )
        .await
        .expect("files");
    // Files have no chat: a chat filter leaves them whole.
    let snapshot = export(&platform.storage, &["files", "file_parts"], &[1]).await.expect("exports");
    assert_eq!(snapshot.table("files").text_values("file_id"), vec!["live"]);
    assert!(!snapshot.table("files").columns.iter().any(|column| column == "deleted_at" || column == "parts_purged_at"));
    let date_index = snapshot.table("files").column("upload_date");
    let days_since_2000 = i32::from_be_bytes(snapshot.table("files").rows[0][date_index].as_deref().expect("a date").try_into().expect("4 bytes"));
    assert_eq!(
        chrono::NaiveDate::from_ymd_opt(2000, 1, 1).expect("date") + chrono::Days::new(days_since_2000 as u64),
        chrono::NaiveDate::from_ymd_opt(2026, 11, 22).expect("date")
    );
    let mut parts = snapshot.table("file_parts").text_values("sha256");
    parts.sort();
    assert_eq!(parts, vec!["p0", "p1"]);
}

#[tokio::test]
async fn a_large_table_arrives_in_full_messages_with_an_exact_count() {
    let platform = SnapshotPlatform::start(false, false).await;
    let database = platform.database.client().await;
    insert_bulk_messages(&database, 5, 10_000).await;
    let snapshot = export(&platform.storage, &["messages", "chats", "message_keys"], &[]).await.expect("exports");
    let messages = snapshot.table("messages");
    assert_eq!(messages.rows.len(), 10_000);
    assert!(messages.data_message_sizes.len() > 4, "{:?}", messages.data_message_sizes);
    let (last, full) = messages.data_message_sizes.split_last().expect("messages");
    assert!(full.iter().all(|size| (256 * 1024..300 * 1024).contains(size)), "coalesced to about 256 KiB: {full:?}");
    assert!(*last > 0);
    assert_eq!(snapshot.table("message_keys").rows.len(), 10_000);
    assert_eq!(text(messages.rows[0][messages.column("entities")].as_deref().expect("entities")), r#"[{"type": "plain"}]"#);
}

#[tokio::test]
async fn an_abandoned_export_leaves_no_connection_behind() {
    let platform = SnapshotPlatform::start(false, false).await;
    let database = platform.database.client().await;
    insert_bulk_messages(&database, 5, 60_000).await;
    let snapshot_sessions = "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() AND pid <> pg_backend_pid()
         AND (state LIKE 'idle in transaction%' OR query LIKE 'COPY (SELECT%')";

    let mut client = SnapshotServiceClient::new(platform.storage.clone());
    let request = ExportSnapshotRequest { tables: vec!["messages".into(), "message_keys".into()], chat_ids: vec![] };
    let mut stream = client.export_snapshot(request).await.expect("starts").into_inner();
    stream.message().await.expect("the header").expect("a message");
    stream.message().await.expect("data").expect("a message");
    // The client reads no further: the export is held up by backpressure, snapshot open.
    assert!(count(&database, snapshot_sessions).await > 0, "the export is under way");
    drop(stream);
    drop(client);

    let released = wait_until(Duration::from_secs(30), || {
        let database = &database;
        async move { count(database, snapshot_sessions).await == 0 }
    })
    .await;
    assert!(released, "the snapshot transaction and the COPYs end with the client");
    // The pool hands out only clean connections: queries and a new export work.
    let mut storage = StorageServiceClient::new(platform.storage.clone());
    for _ in 0..12 {
        storage.list_chats(ListChatsRequest { consistency_token: None }).await.expect("ListChats works");
    }
    let again = export(&platform.storage, &["chats"], &[]).await.expect("exports again");
    assert_eq!(again.table("chats").int8_values("chat_id"), vec![5]);
}
