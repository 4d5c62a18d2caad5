//! Backups end to end: a platform (ingest, storage, users, backup, six storage nodes) is
//! backed up with its files, then a second platform with nothing in it (its own database,
//! topics and nodes: what `task stack:reset` leaves) is restored from the backup and must
//! answer every query as the first did. Damaged backups restore nothing; a restore into a
//! platform that holds the data changes nothing; pyarrow and DuckDB read our Parquet and a
//! pyarrow-written file restores; a backup taken during an import matches its positions.

use std::collections::{BTreeMap, HashMap};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use chatvault_common::config::ServiceConfig;
use chatvault_common::test_support::{service_environment, unique_topic_prefix, TestDb};
use chatvault_proto::backup::v1::backup_service_client::BackupServiceClient;
use chatvault_proto::backup::v1::{
    create_backup_response, restore_backup_response, upload_backup_request, Backup, BackupFormat, CreateBackupRequest, ListBackupsRequest,
    RestoreBackupRequest, RestoreSummary, UploadBackupFile, UploadBackupRequest, VerifyBackupRequest,
};
use chatvault_proto::common::v1::ConsistencyToken;
use chatvault_proto::ingest::v1::file_upload_service_client::FileUploadServiceClient;
use chatvault_proto::ingest::v1::ingest_service_client::IngestServiceClient;
use chatvault_proto::ingest::v1::{upload_file_request, UploadFileRequest, UploadMetadata};
use chatvault_proto::storage::v1::files_service_client::FilesServiceClient;
use chatvault_proto::storage::v1::storage_service_client::StorageServiceClient;
use chatvault_proto::storage::v1::{
    download_file_response, DownloadFileRequest, GetMessagesRequest, ListChatsRequest, ListFilesRequest, RegisterNodeRequest, ShareChatRequest,
};
use chatvault_proto::users::v1::accounts_service_client::AccountsServiceClient;
use chatvault_proto::users::v1::users_service_client::UsersServiceClient;
use chatvault_proto::users::v1::{LoginRequest, RegisterRequest, TopAuthorsRequest};
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::{Message, Offset, TopicPartitionList};
use tokio_util::sync::CancellationToken;
use tonic::transport::Channel;
use tonic::Request;

use super::files_support::TestNode;
use super::helpers::{connect, fixture, import_with};

const OWNER: &str = "alice";
const SAMPLE_CHAT_ID: i64 = 1_234_567_890;
const OWNER_PASSWORD: &str = "correct-horse-42";

/// Adds the identity headers that services with CHATVAULT_AUTH=off trust.
fn as_user<T>(message: T, user: &str, admin: bool) -> Request<T> {
    let mut request = Request::new(message);
    request.metadata_mut().insert("x-chatvault-user", user.parse().expect("header"));
    let role = if admin { "admin" } else { "user" };
    request.metadata_mut().insert("x-chatvault-role", role.parse().expect("header"));
    request
}

pub(crate) fn admin<T>(message: T) -> Request<T> {
    as_user(message, "admin", true)
}

pub(crate) struct BackupPlatform {
    pub(crate) database: TestDb,
    topic_prefix: String,
    pub(crate) ingest: IngestServiceClient<Channel>,
    uploads: FileUploadServiceClient<Channel>,
    storage: StorageServiceClient<Channel>,
    files: FilesServiceClient<Channel>,
    users: UsersServiceClient<Channel>,
    accounts: AccountsServiceClient<Channel>,
    pub(crate) backup: BackupServiceClient<Channel>,
    _nodes: Vec<TestNode>,
    shutdown: CancellationToken,
}

impl Drop for BackupPlatform {
    fn drop(&mut self) {
        self.shutdown.cancel();
    }
}

impl BackupPlatform {
    /// Starts every service against a fresh database and topics, with `nodes` storage
    /// nodes and backups kept in `backups`; `extra` adds environment variables.
    pub(crate) async fn start(nodes: usize, backups: &Path, extra: &[(&str, &str)]) -> Self {
        super::helpers::init_test_logging();
        let (database, topic_prefix) = (TestDb::fresh().await, unique_topic_prefix());
        let mut environment = service_environment(database.url.expose(), &topic_prefix);
        let shutdown = CancellationToken::new();
        let storage =
            chatvault_storage::App::build(ServiceConfig::from_env_map("storage", chatvault_storage::DEFAULT_PORTS, &environment).expect("config"))
                .await
                .expect("storage starts");
        let storage_addr = storage.grpc_addr();
        tokio::spawn(storage.run_until_stopped(shutdown.clone()));
        let ingest =
            chatvault_ingest::App::build(ServiceConfig::from_env_map("ingest", chatvault_ingest::DEFAULT_PORTS, &environment).expect("config"))
                .await
                .expect("ingest starts");
        let ingest_addr = ingest.grpc_addr();
        tokio::spawn(ingest.run_until_stopped(shutdown.clone()));
        let users = chatvault_users::App::build(ServiceConfig::from_env_map("users", chatvault_users::DEFAULT_PORTS, &environment).expect("config"))
            .await
            .expect("users starts");
        let users_addr = users.grpc_addr();
        tokio::spawn(users.run_until_stopped(shutdown.clone()));
        environment.insert("CHATVAULT_BACKUP_DIR".into(), backups.display().to_string());
        environment.insert("CHATVAULT_BACKUP_ROW_GROUP_ROWS".into(), "4".into());
        environment.insert("CHATVAULT_BACKUP_STORAGE_URL".into(), format!("http://{storage_addr}"));
        environment.insert("CHATVAULT_BACKUP_USERS_URL".into(), format!("http://{users_addr}"));
        environment.insert("CHATVAULT_BACKUP_INGEST_URL".into(), format!("http://{ingest_addr}"));
        environment.extend(extra.iter().map(|(key, value)| ((*key).to_owned(), (*value).to_owned())));
        let backup =
            chatvault_backup::App::build(ServiceConfig::from_env_map("backup", chatvault_backup::DEFAULT_PORTS, &environment).expect("config"))
                .await
                .expect("backup starts");
        let backup_addr: SocketAddr = backup.grpc_addr();
        tokio::spawn(backup.run_until_stopped(shutdown.clone()));
        let mut platform = Self {
            ingest: IngestServiceClient::new(connect(ingest_addr).await).max_decoding_message_size(64 << 20),
            uploads: FileUploadServiceClient::new(connect(ingest_addr).await),
            storage: StorageServiceClient::new(connect(storage_addr).await).max_decoding_message_size(64 << 20),
            files: FilesServiceClient::new(connect(storage_addr).await).max_decoding_message_size(64 << 20),
            users: UsersServiceClient::new(connect(users_addr).await),
            accounts: AccountsServiceClient::new(connect(users_addr).await),
            backup: BackupServiceClient::new(connect(backup_addr).await).max_decoding_message_size(64 << 20),
            _nodes: Vec::new(),
            database,
            topic_prefix,
            shutdown,
        };
        for _ in 0..nodes {
            let node = TestNode::start().await;
            platform
                .files
                .clone()
                .register_node(admin(RegisterNodeRequest { address: format!("http://{}", node.address) }))
                .await
                .expect("node registers");
            platform._nodes.push(node);
        }
        platform
    }

    async fn upload(&self, name: &str, bytes: &[u8]) -> String {
        let metadata = UploadFileRequest {
            message: Some(upload_file_request::Message::Metadata(UploadMetadata {
                name: name.into(),
                content_type: "application/octet-stream".into(),
                restore: None,
                folder_date: String::new(),
            })),
        };
        let mut messages = vec![metadata];
        messages.extend(
            bytes
                .chunks(100_000)
                .map(|chunk| UploadFileRequest { message: Some(upload_file_request::Message::Chunk(bytes::Bytes::copy_from_slice(chunk))) }),
        );
        let mut uploads = self.uploads.clone();
        let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
        loop {
            // Ingest learns of the nodes from storage.nodes; retry until it knows enough.
            match uploads.upload_file(as_user(futures::stream::iter(messages.clone()), OWNER, false)).await {
                Ok(response) => return response.into_inner().file_id,
                Err(status) if tokio::time::Instant::now() < deadline && status.code() == tonic::Code::Unavailable => {
                    tokio::time::sleep(Duration::from_millis(200)).await
                }
                Err(status) => panic!("upload failed: {status}"),
            }
        }
    }

    async fn download(&self, file_id: &str) -> Vec<u8> {
        let mut stream = self
            .files
            .clone()
            .download_file(as_user(DownloadFileRequest { file_id: file_id.into(), consistency_token: None }, OWNER, false))
            .await
            .expect("download")
            .into_inner();
        let mut bytes = Vec::new();
        while let Some(message) = stream.message().await.expect("download stream") {
            if let Some(download_file_response::Message::Chunk(chunk)) = message.message {
                bytes.extend_from_slice(&chunk);
            }
        }
        bytes
    }

    pub(crate) async fn create_backup(&self, format: BackupFormat, with_files: bool) -> Backup {
        let request = CreateBackupRequest { format: format as i32, chat_ids: Vec::new(), with_files };
        let mut stream = self.backup.clone().create_backup(admin(request)).await.expect("create backup").into_inner();
        let mut backup = None;
        while let Some(message) = stream.message().await.expect("create backup stream") {
            if let Some(create_backup_response::Message::Backup(done)) = message.message {
                backup = Some(done);
            }
        }
        backup.expect("the backup is reported")
    }

    pub(crate) async fn restore(&self, backup_id: &str) -> Result<RestoreSummary, tonic::Status> {
        let mut stream =
            self.backup.clone().restore_backup(admin(RestoreBackupRequest { backup_id: backup_id.into(), format: 0 })).await?.into_inner();
        let mut summary = None;
        while let Some(message) = stream.message().await? {
            if let Some(restore_backup_response::Message::Summary(done)) = message.message {
                summary = Some(done);
            }
        }
        Ok(summary.expect("the restore is reported"))
    }

    /// Every answer the archive gives, gathered after `token` is applied.
    pub(crate) async fn answers(&self, token: Option<&str>) -> Answers {
        let token = token.map(|value| ConsistencyToken { value: value.to_owned() });
        let mut storage = self.storage.clone();
        let chats = storage.list_chats(ListChatsRequest { consistency_token: token.clone() }).await.expect("list chats").into_inner().chats;
        let mut answers = Answers { chats: format!("{chats:?}"), ..Answers::default() };
        for chat in &chats {
            let mut page_token = String::new();
            let mut messages = Vec::new();
            loop {
                let request = GetMessagesRequest {
                    chat_id: chat.chat_id,
                    owner: Some(chat.owner.clone()),
                    limit: 1000,
                    page_token: page_token.clone(),
                    consistency_token: token.clone(),
                    ..Default::default()
                };
                let page = storage.get_messages(request).await.expect("messages").into_inner();
                messages.extend(page.messages);
                if page.next_page_token.is_empty() {
                    break;
                }
                page_token = page.next_page_token;
            }
            // Full-text search for a word of the chat's first text message.
            let word = messages
                .iter()
                .flat_map(|message| message.text.split_whitespace())
                .find(|word| word.chars().count() >= 4 && word.chars().all(char::is_alphabetic));
            if let Some(word) = word {
                let request = GetMessagesRequest {
                    chat_id: chat.chat_id,
                    owner: Some(chat.owner.clone()),
                    limit: 1000,
                    text_query: Some(word.to_owned()),
                    consistency_token: token.clone(),
                    ..Default::default()
                };
                let found = storage.get_messages(request).await.expect("search").into_inner().messages;
                assert!(!found.is_empty(), "searching {word:?} finds the message it came from");
                answers.searches.insert(format!("{}:{word}", archive_key(chat)), format!("{found:?}"));
            }
            answers.message_count += messages.len();
            answers.messages.insert(archive_key(chat), format!("{messages:?}"));
            let authors = self
                .users
                .clone()
                .top_authors(TopAuthorsRequest {
                    chat_id: chat.chat_id,
                    limit: 1000,
                    consistency_token: token.clone(),
                    owner: Some(chat.owner.clone()),
                })
                .await
                .expect("top authors")
                .into_inner();
            answers.authors.insert(archive_key(chat), format!("{authors:?}"));
        }
        let today = chrono::Utc::now().format("%Y-%m-%d").to_string();
        let files = self
            .files
            .clone()
            .list_files(as_user(ListFilesRequest { date: today, consistency_token: None }, OWNER, false))
            .await
            .expect("list files")
            .into_inner()
            .files;
        answers.files = format!("{files:?}");
        for file in &files {
            answers.file_bytes.insert(file.file_id.clone(), self.download(&file.file_id).await);
        }
        answers
    }

    async fn count(&self, table: &str) -> i64 {
        let client = self.database.client().await;
        client.query_one(&format!("SELECT count(*) FROM {table}"), &[]).await.expect("count").get(0)
    }
}

/// Names one archive of a chat in the answers: `<owner>/<chat id>`.
fn archive_key(chat: &chatvault_proto::storage::v1::Chat) -> String {
    format!("{}/{}", chat.owner, chat.chat_id)
}

#[derive(Debug, Default, PartialEq, Eq)]
pub(crate) struct Answers {
    chats: String,
    pub(crate) message_count: usize,
    messages: BTreeMap<String, String>,
    searches: BTreeMap<String, String>,
    authors: BTreeMap<String, String>,
    files: String,
    file_bytes: BTreeMap<String, Vec<u8>>,
}

fn copy_folder(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).expect("create folder");
    for entry in std::fs::read_dir(from).expect("read folder").flatten() {
        let target = to.join(entry.file_name());
        if entry.file_type().expect("file type").is_dir() {
            copy_folder(&entry.path(), &target);
        } else {
            std::fs::copy(entry.path(), &target).expect("copy");
        }
    }
}

fn flip_byte(path: &Path, at: usize) -> u8 {
    let mut bytes = std::fs::read(path).expect("read");
    let index = at.min(bytes.len() - 1);
    let old = bytes[index];
    bytes[index] ^= 0x01;
    std::fs::write(path, bytes).expect("write");
    old
}

/// The Python with pyarrow and duckdb: CHATVAULT_PYTHON, else the one scripts/tools.sh
/// sets up in .state/python.
pub(crate) fn python() -> PathBuf {
    if let Ok(python) = std::env::var("CHATVAULT_PYTHON") {
        return PathBuf::from(python);
    }
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..").join(".state").join("python").join("bin").join("python")
}

fn interop_script() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("python").join("parquet_interop.py")
}

/// Uploads a backup folder through UploadBackup, file by file.
async fn upload_backup(client: &mut BackupServiceClient<Channel>, folder: &Path) -> Result<Backup, tonic::Status> {
    let mut messages = Vec::new();
    let mut pending = vec![folder.to_path_buf()];
    while let Some(current) = pending.pop() {
        for entry in std::fs::read_dir(&current).expect("read").flatten() {
            if entry.file_type().expect("type").is_dir() {
                pending.push(entry.path());
                continue;
            }
            let relative = entry.path().strip_prefix(folder).expect("inside").to_string_lossy().into_owned();
            let bytes = std::fs::read(entry.path()).expect("read");
            messages.push(UploadBackupRequest {
                message: Some(upload_backup_request::Message::File(UploadBackupFile { path: relative, size: bytes.len() as u64 })),
            });
            messages.extend(
                bytes
                    .chunks(1 << 20)
                    .map(|chunk| UploadBackupRequest { message: Some(upload_backup_request::Message::Chunk(bytes::Bytes::copy_from_slice(chunk))) }),
            );
        }
    }
    Ok(client.upload_backup(admin(futures::stream::iter(messages))).await?.into_inner().backup.expect("backup"))
}

#[tokio::test]
async fn a_wiped_platform_restored_from_a_backup_answers_as_before() {
    let backups = tempfile::tempdir().expect("temp dir");
    let source = BackupPlatform::start(6, backups.path(), &[]).await;
    source
        .accounts
        .clone()
        .register(RegisterRequest { username: OWNER.into(), email: "alice@example.com".into(), password: OWNER_PASSWORD.into() })
        .await
        .expect("register");
    // A chat is shared with an existing account only.
    source
        .accounts
        .clone()
        .register(RegisterRequest { username: "bob".into(), email: "bob@example.com".into(), password: OWNER_PASSWORD.into() })
        .await
        .expect("register");
    import_with(&mut source.ingest.clone(), &fixture("sample-export")).await.expect("import");
    // A second archive of the same chat, alice's, shared with bob: owners and grants must
    // come back from the backup too.
    let imported = import_as(&source.ingest, &fixture("sample-export"), OWNER).await;
    let share = ShareChatRequest { chat_id: SAMPLE_CHAT_ID, owner: None, grantee: "bob".into(), consistency_token: imported.consistency_token };
    let shared = source.storage.clone().share_chat(as_user(share, OWNER, false)).await.expect("alice shares her chat").into_inner();
    let payload: Vec<u8> = (0..3_000_000u32).map(|index| (index.wrapping_mul(2_654_435_761) >> 13) as u8).collect();
    let first = source.upload("archive.bin", &payload).await;
    let second = source.upload("copy-of-archive.bin", &payload).await;
    let small = source.upload("note.txt", b"a small note").await;
    let before = source.answers(Some(&shared.consistency_token.as_ref().map(|token| token.value.clone()).unwrap_or_default())).await;
    assert!(before.message_count > 0 && before.file_bytes.len() == 3, "the source holds messages and files");
    assert_eq!(
        before.messages.keys().collect::<Vec<_>>(),
        vec![&format!("{OWNER}/{SAMPLE_CHAT_ID}"), &format!("local/{SAMPLE_CHAT_ID}")],
        "two archives of the chat"
    );
    assert!(before.chats.contains("shared_with: [\"bob\"]"), "{}", before.chats);
    assert_eq!(before.file_bytes[&first], payload);
    assert_eq!(before.file_bytes[&second], payload);
    assert_eq!(before.file_bytes[&small], b"a small note");

    let backup = source.create_backup(BackupFormat::Both, true).await;
    let rows: HashMap<String, u64> = backup.tables.iter().map(|table| (table.name.clone(), table.rows)).collect();
    for table in ["chats", "messages", "chat_grants", "files", "file_parts", "accounts", "author_names", "author_chat_counts", "author_messages"] {
        let expected = match table {
            "files" => source.count("files WHERE deleted_at IS NULL").await,
            other => source.count(other).await,
        };
        assert_eq!(rows.get(table).copied(), Some(expected as u64), "rows of {table} in the backup equal the database");
    }
    assert_eq!(backup.files_stored, 2, "two distinct contents: the copy is stored once");
    let folder = PathBuf::from(&backup.path);
    assert!(folder.join("parquet/messages.parquet").is_file() && folder.join("csv/messages.csv").is_file());
    let listed = source.backup.clone().list_backups(admin(ListBackupsRequest {})).await.expect("list").into_inner().backups;
    assert_eq!(listed.iter().map(|listed| listed.id.as_str()).collect::<Vec<_>>(), vec![backup.id.as_str()]);
    let mut verify =
        source.backup.clone().verify_backup(admin(VerifyBackupRequest { backup_id: backup.id.clone() })).await.expect("verify").into_inner();
    let mut verified = None;
    while let Some(message) = verify.message().await.expect("verify stream") {
        if let Some(chatvault_proto::backup::v1::verify_backup_response::Message::Result(result)) = message.message {
            verified = Some(result);
        }
    }
    let verified = verified.expect("a verify result");
    assert!(verified.ok, "{:?}", verified.problems);
    assert!(verified.row_groups_read > 2, "several row groups were read");

    // Only admins restore.
    let refused = source
        .backup
        .clone()
        .restore_backup(as_user(RestoreBackupRequest { backup_id: backup.id.clone(), format: 0 }, OWNER, false))
        .await
        .expect_err("refused");
    assert_eq!(refused.code(), tonic::Code::PermissionDenied);

    // pyarrow and DuckDB read our Parquet with the right types; pyarrow rewrites the
    // messages table into a second backup folder.
    let rewritten = backups.path().join("pyarrow-rewritten");
    let output = std::process::Command::new(python())
        .arg(interop_script())
        .arg(&folder)
        .arg(&rewritten)
        .output()
        .expect("the Python of .state/python runs (scripts/tools.sh sets it up with pyarrow and duckdb)");
    assert!(output.status.success(), "interop script failed: {}", String::from_utf8_lossy(&output.stderr));
    let report: serde_json::Value = serde_json::from_slice(&output.stdout).expect("interop report");
    assert_eq!(report["tables"]["messages"]["rows"].as_u64(), rows.get("messages").copied());
    assert_eq!(report["tables"]["messages"]["duckdb_rows"].as_u64(), rows.get("messages").copied());
    assert_eq!(report["tables"]["messages"]["types"]["sent_at"], "timestamp[us, tz=+00:00]");
    assert_eq!(report["tables"]["messages"]["types"]["chat_id"], "int64");
    assert_eq!(report["tables"]["files"]["types"]["upload_date"], "date32[day]");
    assert_eq!(report["tables"]["chats"]["rows"].as_u64(), rows.get("chats").copied());

    // The wiped platform: a new database, new topics and new, empty storage nodes.
    drop(source);
    let target_backups = tempfile::tempdir().expect("temp dir");
    copy_folder(&folder, &target_backups.path().join(&backup.id));
    let target = BackupPlatform::start(6, target_backups.path(), &[]).await;
    let target_folder = target_backups.path().join(&backup.id);
    let listed = target.backup.clone().list_backups(admin(ListBackupsRequest {})).await.expect("list").into_inner().backups;
    assert_eq!(listed.len(), 1, "backups found on disk are catalogued at start");

    // A flipped byte anywhere refuses the restore and writes nothing.
    for damaged in ["parquet/messages.parquet", "csv/chats.csv", "manifest.json", &format!("files/{}", hex_sha256(&payload))] {
        let path = target_folder.join(damaged);
        let size = std::fs::metadata(&path).expect("exists").len() as usize;
        flip_byte(&path, size / 2);
        let status = target.restore(&backup.id).await.expect_err("a damaged backup is refused");
        assert_eq!(status.code(), tonic::Code::FailedPrecondition, "{damaged}: {status}");
        assert!(status.message().contains("damaged"), "{damaged}: {}", status.message());
        flip_byte(&path, size / 2);
    }
    for table in ["chats", "messages", "chat_grants", "files", "accounts", "author_messages"] {
        assert_eq!(target.count(table).await, 0, "nothing of {table} was restored from a damaged backup");
    }

    // The pyarrow-written backup restores into the empty platform.
    let uploaded = upload_backup(&mut target.backup.clone(), &rewritten).await.expect("upload");
    assert_ne!(uploaded.id, backup.id);
    let restored = target.restore(&uploaded.id).await.expect("restore");
    let by_table: HashMap<&str, (u64, u64)> =
        restored.tables.iter().map(|table| (table.name.as_str(), (table.restored, table.already_present))).collect();
    assert_eq!(by_table["messages"], (rows["messages"], 0));
    assert_eq!(by_table["chats"], (rows["chats"], 0));
    assert_eq!((rows["chats"], by_table["chat_grants"]), (2, (1, 0)), "both archives and alice's grant come back");
    assert_eq!(by_table["files"], (3, 0));
    assert_eq!(by_table["accounts"], (2, 0), "alice and bob");
    let after = target.answers(Some(&restored.consistency_token)).await;
    assert_eq!(after.chats, before.chats, "chats answer as before");
    assert_eq!(after.messages, before.messages, "messages answer as before");
    assert_eq!(after.searches, before.searches, "searches answer as before");
    assert_eq!(after.authors, before.authors, "authors answer as before");
    assert_eq!(after.files, before.files, "the files list answers as before");
    assert_eq!(after.file_bytes, before.file_bytes, "files download with the same bytes");
    let login = target.accounts.clone().login(LoginRequest { username: OWNER.into(), password: OWNER_PASSWORD.into() }).await;
    assert!(login.is_ok(), "the restored account logs in with its password: {login:?}");

    // Restoring the original backup (and again) changes nothing.
    for _ in 0..2 {
        let again = target.restore(&backup.id).await.expect("restore again");
        for table in &again.tables {
            assert_eq!(table.restored, 0, "{} restored nothing new", table.name);
        }
        let messages_present = again.tables.iter().find(|table| table.name == "messages").expect("messages").already_present;
        assert_eq!(messages_present, rows["messages"]);
    }
    assert_eq!(target.count("messages").await as u64, rows["messages"]);
    assert_eq!(target.count("files").await, 3);
    assert_eq!(target.answers(None).await, before);
}

/// Imports the export at `path` as `user` (an admin, as server paths need) with auth off.
async fn import_as(ingest: &IngestServiceClient<Channel>, path: &Path, user: &str) -> chatvault_proto::ingest::v1::ImportSummary {
    let request = chatvault_proto::ingest::v1::ImportExportRequest { path: path.display().to_string(), ..Default::default() };
    let mut updates = ingest.clone().import_export(as_user(request, user, true)).await.expect("import starts").into_inner();
    let mut summary = None;
    while let Some(update) = updates.message().await.expect("import updates") {
        if let Some(chatvault_proto::ingest::v1::import_update::Update::Summary(done)) = update.update {
            summary = Some(done);
        }
    }
    summary.expect("the import ends with a summary")
}

fn hex_sha256(bytes: &[u8]) -> String {
    use sha2::Digest;
    hex::encode(sha2::Sha256::digest(bytes))
}

/// Writes an export of one chat with `count` messages.
fn write_export(path: &Path, chat_id: i64, count: i64) {
    use std::io::Write;
    let mut file = std::io::BufWriter::new(std::fs::File::create(path).expect("create"));
    write!(file, "{{\"name\": \"Busy\", \"type\": \"personal_chat\", \"id\": {chat_id}, \"messages\": [").expect("write");
    for id in 1..=count {
        let separator = if id > 1 { "," } else { "" };
        write!(
            file,
            "{separator}{{\"id\": {id}, \"type\": \"message\", \"date\": \"2026-11-22T10:00:00\", \"date_unixtime\": \"{}\", \"from\": \"Bo\", \"from_id\": \"user{}\", \"text\": \"message number {id}\"}}",
            1_795_320_000 + id,
            id % 7
        )
        .expect("write");
    }
    write!(file, "]}}").expect("write");
}

#[tokio::test]
async fn a_backup_taken_during_an_import_matches_its_positions() {
    let backups = tempfile::tempdir().expect("temp dir");
    let platform = BackupPlatform::start(0, backups.path(), &[]).await;
    let sample = import_with(&mut platform.ingest.clone(), &fixture("sample-export")).await.expect("import");
    platform.storage.clone().list_chats(ListChatsRequest { consistency_token: sample.consistency_token.clone() }).await.expect("sample applied");
    let sample_messages = platform.count("messages").await as u64;
    let export = backups.path().join("busy.json");
    write_export(&export, 880_001, 60_000);
    let mut ingest = platform.ingest.clone();
    let import = tokio::spawn(async move { import_with(&mut ingest, &export).await });
    let mut taken = Vec::new();
    for _ in 0..3 {
        taken.push(platform.create_backup(BackupFormat::Parquet, false).await);
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
    let busy = import.await.expect("import task").expect("import");
    platform.storage.clone().list_chats(ListChatsRequest { consistency_token: busy.consistency_token.clone() }).await.expect("import applied");
    taken.push(platform.create_backup(BackupFormat::Parquet, false).await);

    let topic = format!("{}chat.events", platform.topic_prefix);
    for backup in &taken {
        // The messages in the backup are exactly the distinct messages of the committed
        // events before the positions storage reported for its snapshot.
        let positions: Vec<_> = backup.positions.iter().filter(|position| position.service == "storage" && position.topic == "chat.events").collect();
        let expected =
            distinct_messages_before(&topic, &positions.iter().map(|position| (position.partition, position.next_offset)).collect::<Vec<_>>());
        let rows = backup.tables.iter().find(|table| table.name == "messages").expect("messages").rows;
        assert_eq!(rows, expected, "backup {}: rows match the positions {:?}", backup.id, positions);
        let authors = backup.tables.iter().find(|table| table.name == "author_messages").expect("author_messages").rows;
        let user_positions: Vec<(i32, i64)> = backup
            .positions
            .iter()
            .filter(|position| position.service == "users" && position.topic == "chat.events")
            .map(|position| (position.partition, position.next_offset))
            .collect();
        let authored = distinct_messages_before(&topic, &user_positions);
        assert!(authors <= authored, "users' rows never run ahead of its positions");
    }
    let last = taken.last().expect("a backup");
    assert_eq!(last.tables.iter().find(|table| table.name == "messages").expect("messages").rows, sample_messages + 60_000);
}

/// Counts the distinct (chat, message) keys of the MessagePosted records that a read model
/// has applied once it stands at `positions`: records outside imports, and records of the
/// imports whose commit marker lies below the position (a staged import is applied where
/// its marker stands).
fn distinct_messages_before(topic: &str, positions: &[(i32, i64)]) -> u64 {
    use chatvault_common::envelope::{header_text, IMPORT_COMMITTED, IMPORT_ID};
    use prost::Message as _;
    let consumer: BaseConsumer = rdkafka::ClientConfig::new()
        .set("bootstrap.servers", std::env::var("CHATVAULT_KAFKA_BROKERS").unwrap_or_else(|_| "127.0.0.1:9092".into()))
        .set("group.id", format!("backup-test-{}", uuid::Uuid::now_v7()))
        .set("isolation.level", "read_committed")
        .set("enable.auto.commit", "false")
        .create()
        .expect("consumer");
    let mut keys = std::collections::HashSet::new();
    let mut staged: std::collections::HashMap<String, Vec<(i64, i64)>> = std::collections::HashMap::new();
    for (partition, next_offset) in positions {
        if *next_offset <= 0 {
            continue;
        }
        let mut assignment = TopicPartitionList::new();
        assignment.add_partition_offset(topic, *partition, Offset::Beginning).expect("assign");
        consumer.assign(&assignment).expect("assign");
        loop {
            // Nothing more to read: the rest up to the position are transaction markers.
            let Some(message) = consumer.poll(Duration::from_secs(5)) else { break };
            let message = message.expect("record");
            if message.offset() >= *next_offset {
                break;
            }
            let event = chatvault_proto::chat::v1::ChatEvent::decode(message.payload().unwrap_or_default()).expect("chat event");
            let import_id = message.headers().and_then(|headers| header_text(headers, IMPORT_ID)).map(str::to_owned);
            if let Some(committed) = message.headers().and_then(|headers| header_text(headers, IMPORT_COMMITTED)) {
                keys.extend(staged.remove(committed).unwrap_or_default());
            }
            if let Some(chatvault_proto::chat::v1::chat_event::Event::MessagePosted(posted)) = event.event {
                match import_id {
                    Some(import_id) => staged.entry(import_id).or_default().push((posted.chat_id, posted.message_id)),
                    None => {
                        keys.insert((posted.chat_id, posted.message_id));
                    }
                }
            }
            if message.offset() + 1 >= *next_offset {
                break;
            }
        }
    }
    keys.len() as u64
}

#[tokio::test]
async fn scheduled_backups_run_on_their_interval_and_keep_the_newest() {
    let backups = tempfile::tempdir().expect("temp dir");
    let schedule = [("CHATVAULT_BACKUP_SCHEDULE_SECONDS", "1"), ("CHATVAULT_BACKUP_SCHEDULE_KEEP", "2"), ("CHATVAULT_BACKUP_SCHEDULE_FORMAT", "csv")];
    let platform = BackupPlatform::start(0, backups.path(), &schedule).await;
    import_with(&mut platform.ingest.clone(), &fixture("sample-export")).await.expect("import");
    let mut seen = std::collections::BTreeSet::new();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(90);
    let listed = loop {
        let listed = platform.backup.clone().list_backups(admin(ListBackupsRequest {})).await.expect("list").into_inner().backups;
        seen.extend(listed.iter().map(|backup| backup.id.clone()));
        if seen.len() >= 4 && listed.len() == 2 {
            break listed;
        }
        assert!(tokio::time::Instant::now() < deadline, "scheduled backups seen: {seen:?}, listed now: {}", listed.len());
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    for backup in &listed {
        assert_eq!(backup.origin, "scheduled");
        assert_eq!(backup.formats, vec!["csv".to_owned()]);
    }
    // The two listed are among the newest seen (one more may have finished since the
    // listing), and the oldest folders are gone.
    let newest: Vec<&String> = seen.iter().rev().take(3).collect();
    let folders: std::collections::BTreeSet<String> = std::fs::read_dir(backups.path())
        .expect("read")
        .flatten()
        .map(|entry| entry.file_name().to_string_lossy().into_owned())
        .filter(|name| !name.starts_with('.'))
        .collect();
    assert!(listed.iter().all(|backup| newest.contains(&&backup.id)), "the newest are kept: {listed:?} of {seen:?}");
    let oldest = seen.iter().next().expect("one seen");
    assert!(!folders.contains(oldest), "the oldest scheduled backup's folder is deleted: {folders:?}");
    assert!(folders.len() <= 3, "at most the kept backups (and one just finished) are on disk: {folders:?}");
}
