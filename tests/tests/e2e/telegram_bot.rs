//! The Telegram bot and its storage workers against the real platform (users, storage,
//! ingest, audit, six storage nodes, Kafka, PostgreSQL, authentication on), with the bot
//! and the workers as child processes (so a worker can be killed with SIGKILL), and
//! Telegram's and Google's servers replaced by wire-level doubles on local ports
//! ([`crate::doubles`]) that record every request.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::time::Duration;

use base64::Engine;
use chatvault_common::test_support::{service_environment, spawn_service_process, unique_topic_prefix, wait_until, ChildService, TestDb};
use chatvault_proto::audit::v1::audit_service_client::AuditServiceClient;
use chatvault_proto::audit::v1::AuditQueryRequest;
use chatvault_proto::bot::v1::telegram_service_client::TelegramServiceClient;
use chatvault_proto::bot::v1::{CreateLinkCodeRequest, GetLinkRequest};
use chatvault_proto::storage::v1::files_service_client::FilesServiceClient;
use chatvault_proto::storage::v1::{download_file_response, DownloadFileRequest, FileInfo, ListFilesRequest};
use chatvault_proto::users::v1::accounts_service_client::AccountsServiceClient;
use chatvault_proto::users::v1::{LoginRequest, RegisterRequest};
use sha2::{Digest, Sha256};
use tokio_util::sync::CancellationToken;
use tonic::transport::Channel;

use crate::accounts::{authorized, ADMIN_PASSWORD, ADMIN_USERNAME};
use crate::doubles::google::{GoogleDouble, QuotaKind};
use crate::doubles::telegram::{FileKind, TelegramDouble, TelegramUser};
use crate::files_support::{random_bytes, TestNode};
use crate::helpers::connect;

const BOT_TOKEN: &str = "123456:test-bot-token";
const CLIENT_ID: &str = "chatvault-test.apps.googleusercontent.com";
const CLIENT_SECRET: &str = "test-client-secret";
const PASSWORD: &str = "Correct-horse-7";
/// How long a step of the bot may take before the test gives up on it.
const STEP: Duration = Duration::from_secs(90);

/// How a test wants the bot run.
#[derive(Clone, Copy, Debug, Default)]
struct BotOptions {
    workers: usize,
    webhook: bool,
    local_api: bool,
}

/// The platform with the bot, its workers and both doubles.
struct BotPlatform {
    _database: TestDb,
    telegram: TelegramDouble,
    google: GoogleDouble,
    accounts: AccountsServiceClient<Channel>,
    files: FilesServiceClient<Channel>,
    audit: AuditServiceClient<Channel>,
    admin: String,
    bot_grpc: SocketAddr,
    bot_http: SocketAddr,
    environment: HashMap<String, String>,
    _bot: ChildService,
    workers: Vec<(ChildService, SocketAddr)>,
    logs: tempfile::TempDir,
    _local_files: Option<tempfile::TempDir>,
    _nodes: Vec<TestNode>,
    shutdown: CancellationToken,
}

impl Drop for BotPlatform {
    fn drop(&mut self) {
        self.shutdown.cancel();
    }
}

/// A person on both sides: a chatvault account and a Telegram account.
#[derive(Clone, Debug)]
struct Person {
    username: String,
    access_token: String,
    telegram: TelegramUser,
}

fn free_address() -> SocketAddr {
    std::net::TcpListener::bind("127.0.0.1:0").expect("a free port").local_addr().expect("address")
}

fn sha256_hex(bytes: &[u8]) -> String {
    hex::encode(Sha256::digest(bytes))
}

/// Returns 23:30 UTC of yesterday (02:30 today in UTC+3, Europe/Moscow) as Unix seconds,
/// with yesterday's and today's date folders.
fn late_evening_utc() -> (i64, String, String) {
    let today = chrono::Utc::now().date_naive();
    let yesterday = today - chrono::Days::new(1);
    let moment = yesterday.and_hms_opt(23, 30, 0).expect("23:30").and_utc();
    (moment.timestamp(), yesterday.format("%Y-%m-%d").to_string(), today.format("%Y-%m-%d").to_string())
}

impl BotPlatform {
    async fn start(options: BotOptions) -> Self {
        crate::helpers::init_test_logging();
        let (database, topic_prefix) = (TestDb::fresh().await, unique_topic_prefix());
        let shutdown = CancellationToken::new();
        let logs = tempfile::tempdir().expect("log folder");
        let mut environment = service_environment(database.url.expose(), &topic_prefix);
        environment.insert("CHATVAULT_AUTH".to_owned(), "on".to_owned());
        environment.insert("CHATVAULT_USERS_BOOTSTRAP_ADMIN".to_owned(), format!("{ADMIN_USERNAME}:{ADMIN_PASSWORD}:root@example.org"));
        let core = crate::helpers::start_core_services(&environment, &shutdown).await;
        let (users_addr, storage_addr, ingest_addr, audit_addr) = (core.users, core.storage, core.ingest, core.audit);

        let accounts = AccountsServiceClient::new(connect(users_addr).await);
        let admin = accounts
            .clone()
            .login(LoginRequest { username: ADMIN_USERNAME.to_owned(), password: ADMIN_PASSWORD.to_owned() })
            .await
            .expect("the admin logs in")
            .into_inner()
            .access_token;
        let files = FilesServiceClient::new(connect(storage_addr).await).max_decoding_message_size(64 << 20);
        let nodes = crate::files_support::registered_nodes(6, &files, ingest_addr, &admin).await;

        let local_files = options.local_api.then(|| tempfile::tempdir().expect("Bot API server folder"));
        let telegram = match &local_files {
            Some(folder) => TelegramDouble::start_local(BOT_TOKEN, folder.path()).await,
            None => TelegramDouble::start(BOT_TOKEN).await,
        };
        let google = GoogleDouble::start(CLIENT_ID, CLIENT_SECRET).await;
        let bot_http = free_address();
        let token_key = base64::engine::general_purpose::STANDARD.encode(rand::random::<[u8; 32]>());
        for (key, value) in [
            ("CHATVAULT_BOT_DATABASE_URL", database.url.expose().to_owned()),
            ("CHATVAULT_BOT_WORKER_DATABASE_URL", database.url.expose().to_owned()),
            ("CHATVAULT_BOT_TOKEN", BOT_TOKEN.to_owned()),
            ("CHATVAULT_BOT_API_URL", telegram.base_url()),
            ("CHATVAULT_BOT_GOOGLE_CLIENT_ID", CLIENT_ID.to_owned()),
            ("CHATVAULT_BOT_GOOGLE_CLIENT_SECRET", CLIENT_SECRET.to_owned()),
            ("CHATVAULT_BOT_GOOGLE_AUTH_URL", format!("{}/o/oauth2/v2/auth", google.base_url())),
            ("CHATVAULT_BOT_GOOGLE_TOKEN_URL", format!("{}/token", google.base_url())),
            ("CHATVAULT_BOT_GOOGLE_REVOKE_URL", format!("{}/revoke", google.base_url())),
            ("CHATVAULT_BOT_GOOGLE_API_URL", google.base_url()),
            ("CHATVAULT_BOT_TOKEN_KEY", token_key),
            ("CHATVAULT_BOT_HTTP_ADDR", bot_http.to_string()),
            ("CHATVAULT_BOT_PUBLIC_URL", format!("http://{bot_http}")),
            ("CHATVAULT_BOT_USERS_URL", format!("http://{users_addr}")),
            ("CHATVAULT_BOT_INGEST_URL", format!("http://{ingest_addr}")),
            ("CHATVAULT_BOT_STORAGE_URL", format!("http://{storage_addr}")),
            ("CHATVAULT_BOT_DRIVE_BACKOFF_MS", "100".to_owned()),
            ("CHATVAULT_BOT_DRIVE_CHUNK_BYTES", "262144".to_owned()),
            ("CHATVAULT_BOT_WORKER_SESSION_TIMEOUT_MS", "6000".to_owned()),
        ] {
            environment.insert(key.to_owned(), value);
        }
        if options.webhook {
            environment.insert("CHATVAULT_BOT_WEBHOOK_URL".to_owned(), format!("http://{bot_http}/telegram/webhook"));
        }
        if let Some(folder) = &local_files {
            environment.insert("CHATVAULT_BOT_API_LOCAL".to_owned(), "1".to_owned());
            environment.insert("CHATVAULT_BOT_API_LOCAL_DIR".to_owned(), folder.path().display().to_string());
        }
        let bot = spawn_service_process("chatvault-bot", "BOT", environment.clone(), &logs.path().join("bot.log")).await;
        let bot_grpc = bot.grpc_addr;
        let mut platform = Self {
            _database: database,
            telegram,
            google,
            accounts,
            files,
            audit: AuditServiceClient::new(connect(audit_addr).await),
            admin,
            bot_grpc,
            bot_http,
            environment,
            _bot: bot,
            workers: Vec::new(),
            logs,
            _local_files: local_files,
            _nodes: nodes,
            shutdown,
        };
        for _ in 0..options.workers {
            platform.start_worker().await;
        }
        platform
    }

    /// Starts one more storage worker; returns its index.
    async fn start_worker(&mut self) -> usize {
        let index = self.workers.len();
        let http = free_address();
        let mut environment = self.environment.clone();
        environment.insert("CHATVAULT_BOT_WORKER_HTTP_ADDR".to_owned(), http.to_string());
        let log = self.logs.path().join(format!("worker-{index}.log"));
        let worker = spawn_service_process("chatvault-bot-worker", "BOT_WORKER", environment, &log).await;
        self.workers.push((worker, http));
        index
    }

    /// Kills worker `index` with SIGKILL: no goodbye to the consumer group.
    fn kill_worker(&mut self, index: usize) {
        let child = &mut self.workers[index].0.child;
        child.kill().expect("SIGKILL");
        child.wait().expect("reaped");
    }

    fn log(&self, name: &str) -> String {
        std::fs::read_to_string(self.logs.path().join(name)).unwrap_or_default()
    }

    async fn telegram_api(&self) -> TelegramServiceClient<Channel> {
        TelegramServiceClient::new(connect(self.bot_grpc).await)
    }

    /// Registers `username`, logs in and links Telegram user `telegram_id` with a code.
    async fn linked_person(&self, username: &str, telegram_id: i64) -> Person {
        let request = RegisterRequest { username: username.to_owned(), email: format!("{username}@example.org"), password: PASSWORD.to_owned() };
        self.accounts.clone().register(request).await.expect("register");
        let login = LoginRequest { username: username.to_owned(), password: PASSWORD.to_owned() };
        let access_token = self.accounts.clone().login(login).await.expect("login").into_inner().access_token;
        let code =
            self.telegram_api().await.create_link_code(authorized(CreateLinkCodeRequest {}, &access_token)).await.expect("link code").into_inner();
        assert_eq!(code.code.len(), 10);
        assert_eq!(code.deep_link, format!("https://t.me/chatvault_test_bot?start={}", code.code));
        let telegram = TelegramUser::new(telegram_id, &format!("{username} tg"), Some(&format!("{username}_tg")));
        self.telegram.send_text(&telegram, &format!("/start {}", code.code), chrono::Utc::now().timestamp());
        // The link waits for a button naming the account.
        let question = format!("Link this Telegram account to the chatvault account {username}?");
        let asked = self.telegram.wait_for_message(telegram_id, |text| text.starts_with(&question), STEP).await.expect("a confirmation");
        let data =
            asked.reply_markup.as_ref().and_then(|markup| markup["inline_keyboard"][0][0]["callback_data"].as_str()).expect("a button").to_owned();
        assert!(data.starts_with("link:"), "{data}");
        // Another Telegram account pressing the same button links nothing.
        let forger = TelegramUser::new(telegram_id + 1_000_000, "Forger", None);
        self.telegram.press_button(&forger, asked.message_id, &data);
        let refused = self.telegram.wait_for_message(forger.id, |text| text.starts_with("This confirmation has expired or was used"), STEP).await;
        assert!(refused.is_some(), "a button pressed by someone else is refused");
        let link = self.telegram_api().await.get_link(authorized(GetLinkRequest {}, &access_token)).await.expect("GetLink").into_inner();
        assert!(!link.linked, "nothing was linked by the forged press");
        self.telegram.press_button(&telegram, asked.message_id, &data);
        let linked =
            self.telegram.wait_for_message(telegram_id, |text| text.contains(&format!("Linked to the chatvault account {username}")), STEP).await;
        assert!(linked.is_some(), "the bot confirms the link");
        let answered = self.telegram.requests().iter().filter(|request| request.is("answerCallbackQuery")).count();
        assert!(answered >= 2, "both presses were answered");
        Person { username: username.to_owned(), access_token, telegram }
    }

    /// Sends `/drive`, follows the consent link through Google's double to the callback,
    /// and waits for the bot's confirmation.
    async fn link_drive(&self, person: &Person) {
        self.telegram.send_text(&person.telegram, "/drive", chrono::Utc::now().timestamp());
        let answer =
            self.telegram.wait_for_message(person.telegram.id, |text| text.contains("/o/oauth2/v2/auth?"), STEP).await.expect("a consent link");
        let consent_url = answer.text.lines().find(|line| line.starts_with("http")).expect("the link's line").to_owned();
        let http = reqwest::Client::builder().redirect(reqwest::redirect::Policy::none()).build().expect("client");
        let consent = http.get(&consent_url).send().await.expect("consent page");
        assert_eq!(consent.status().as_u16(), 302, "the double consents and redirects");
        let callback = consent.headers().get("location").expect("a redirect").to_str().expect("ascii").to_owned();
        assert!(callback.starts_with(&format!("http://{}/oauth/google/callback?", self.bot_http)), "{callback}");
        let page = http.get(&callback).send().await.expect("callback");
        assert_eq!(page.status().as_u16(), 200);
        assert!(page.text().await.expect("page").contains("Google Drive is linked"));
        let confirmed = self.telegram.wait_for_message(person.telegram.id, |text| text.starts_with("Google Drive is linked"), STEP).await;
        assert!(confirmed.is_some(), "the bot confirms the Drive link in the chat");
    }

    /// Sends a file and waits for the bot's edited answer; returns that answer's text.
    async fn send_and_wait(&self, person: &Person, kind: FileKind, bytes: Vec<u8>, name: &str, mime: &str, date_unix: i64) -> String {
        let before = self.telegram.messages_to(person.telegram.id).len();
        self.telegram.send_file(&person.telegram, kind, bytes, name, mime, date_unix);
        let settled = |text: &str| text.starts_with("Stored in") || text.starts_with("Already stored") || text.starts_with("Could not store");
        let deadline = tokio::time::Instant::now() + STEP;
        loop {
            let messages = self.telegram.messages_to(person.telegram.id);
            if let Some(done) = messages.iter().skip(before).map(|message| message.current_text()).find(|text| settled(text)) {
                return done.to_owned();
            }
            assert!(tokio::time::Instant::now() < deadline, "no final answer for {name}; messages: {messages:?}");
            self.telegram.wait_for_message(person.telegram.id, settled, Duration::from_secs(5)).await;
        }
    }

    /// The person's chatvault files in one date folder.
    async fn chatvault_files(&self, person: &Person, date: &str) -> Vec<FileInfo> {
        let request = ListFilesRequest { date: date.to_owned(), consistency_token: None };
        self.files.clone().list_files(authorized(request, &person.access_token)).await.expect("ListFiles").into_inner().files
    }

    async fn download(&self, person: &Person, file_id: &str) -> Vec<u8> {
        let request = DownloadFileRequest { file_id: file_id.to_owned(), consistency_token: None };
        let mut stream = self.files.clone().download_file(authorized(request, &person.access_token)).await.expect("download").into_inner();
        let mut bytes = Vec::new();
        while let Some(message) = stream.message().await.expect("chunk") {
            if let Some(download_file_response::Message::Chunk(chunk)) = message.message {
                bytes.extend_from_slice(&chunk);
            }
        }
        bytes
    }

    /// Waits until the person's date folder in chatvault holds `count` files.
    async fn wait_for_chatvault_files(&self, person: &Person, date: &str, count: usize) -> Vec<FileInfo> {
        let listed = wait_until(STEP, || async { self.chatvault_files(person, date).await.len() >= count }).await;
        assert!(listed, "chatvault lists {count} files in {date}");
        self.chatvault_files(person, date).await
    }

    /// The person's audit rows of the given event types.
    async fn audit_types(&self, person: &Person, event_types: &[&str]) -> Vec<String> {
        let request = AuditQueryRequest {
            actor: person.username.clone(),
            limit: 1000,
            event_types: event_types.iter().map(|kind| (*kind).to_owned()).collect(),
            ..AuditQueryRequest::default()
        };
        let rows = self.audit.clone().query(authorized(request, &self.admin)).await.expect("audit").into_inner().rows;
        rows.into_iter().map(|row| row.event_type).collect()
    }

    async fn metrics(&self, address: SocketAddr) -> String {
        reqwest::get(format!("http://{address}/metrics")).await.expect("metrics").text().await.expect("text")
    }
}

/// Returns the value of a counter line `name{labels} value` in a metrics text.
fn counter(metrics: &str, name_and_labels: &str) -> f64 {
    metrics
        .lines()
        .find(|line| line.starts_with(name_and_labels) && line[name_and_labels.len()..].starts_with(' '))
        .and_then(|line| line.rsplit(' ').next())
        .and_then(|value| value.parse().ok())
        .unwrap_or(0.0)
}

/// One file of each kind, its name as the bot stores it, and its MIME type.
fn one_of_each_kind() -> Vec<(FileKind, Vec<u8>, &'static str, &'static str)> {
    vec![
        (FileKind::Document, random_bytes(300_000), "report.pdf", "application/pdf"),
        (FileKind::Photo, random_bytes(120_000), "", "image/jpeg"),
        (FileKind::Video, random_bytes(700_000), "clip.mp4", "video/mp4"),
        (FileKind::Audio, random_bytes(90_000), "song.mp3", "audio/mpeg"),
        (FileKind::Voice, random_bytes(40_000), "", "audio/ogg"),
        (FileKind::VideoNote, random_bytes(60_000), "", "video/mp4"),
    ]
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn every_kind_of_file_lands_in_the_date_folder_of_the_senders_day_in_chatvault_and_drive_and_comes_back() {
    let platform = BotPlatform::start(BotOptions { workers: 1, ..BotOptions::default() }).await;

    // A Telegram account nobody linked is told how to link, and nothing is stored.
    let stranger = TelegramUser::new(900_001, "Stranger", None);
    platform.telegram.send_file(&stranger, FileKind::Document, b"unlinked".to_vec(), "note.txt", "text/plain", chrono::Utc::now().timestamp());
    let refused = platform.telegram.wait_for_message(stranger.id, |text| text.contains("not linked to a chatvault account"), STEP).await;
    assert!(refused.is_some(), "an unlinked person is told how to link");
    // Codes cannot be guessed by trying: after five wrong ones a Telegram account waits.
    for attempt in 0..5 {
        platform.telegram.send_text(&stranger, &format!("/start WRONGCODE{attempt}"), chrono::Utc::now().timestamp());
        let refused_count = || {
            platform.telegram.messages_to(stranger.id).iter().filter(|message| message.current_text().starts_with("That code is not valid")).count()
        };
        assert!(wait_until(STEP, || async { refused_count() == attempt + 1 }).await, "wrong code {attempt} is refused");
    }
    platform.telegram.send_text(&stranger, "/start WRONGCODE5", chrono::Utc::now().timestamp());
    let limited = platform.telegram.wait_for_message(stranger.id, |text| text.starts_with("Too many wrong codes"), STEP).await;
    assert!(limited.is_some(), "the sixth try is refused before the code is looked at");

    let ann = platform.linked_person("ann", 700_001).await;
    // One Telegram account per chatvault account: a second code for ann is refused while linked.
    let again = platform.telegram_api().await.create_link_code(authorized(CreateLinkCodeRequest {}, &ann.access_token)).await;
    assert_eq!(again.expect_err("linked already").code(), tonic::Code::FailedPrecondition);

    platform.telegram.send_text(&ann.telegram, "/timezone Europe/Moscow", chrono::Utc::now().timestamp());
    assert!(platform.telegram.wait_for_message(ann.telegram.id, |text| text.starts_with("Time zone set to Europe/Moscow"), STEP).await.is_some());
    platform.link_drive(&ann).await;
    let link = platform.telegram_api().await.get_link(authorized(GetLinkRequest {}, &ann.access_token)).await.expect("GetLink").into_inner();
    assert!(link.linked && link.drive_linked && !link.drive_needs_relink);
    assert_eq!((link.time_zone.as_str(), link.store_target.as_str()), ("Europe/Moscow", "both"));

    // Sent at 23:30 UTC yesterday: 02:30 today in Moscow (UTC+3), so today's folder.
    let (sent_at, utc_day, moscow_day) = late_evening_utc();
    let files = one_of_each_kind();
    for (kind, bytes, name, mime) in &files {
        let answer = platform.send_and_wait(&ann, *kind, bytes.clone(), name, mime, sent_at).await;
        assert!(answer.starts_with(&format!("Stored in {moscow_day}: ")), "{answer}");
        assert!(answer.ends_with("(chatvault and Google Drive)"), "{answer}");
    }
    assert!(platform.chatvault_files(&ann, &utc_day).await.is_empty(), "nothing in the UTC day's folder");
    let stored = platform.wait_for_chatvault_files(&ann, &moscow_day, files.len()).await;
    assert_eq!(stored.len(), files.len());
    for (_, bytes, name, _) in &files {
        let file = stored.iter().find(|file| file.sha256 == sha256_hex(bytes)).unwrap_or_else(|| panic!("{name} is in chatvault"));
        assert_eq!(platform.download(&ann, &file.file_id).await, *bytes, "chatvault holds {name} byte for byte");
        if !name.is_empty() {
            assert_eq!(file.name, *name);
        }
    }
    // Drive: one `chatvault` folder, one folder of the day under it, every file in it.
    let roots = platform.google.folders_named("chatvault");
    assert_eq!(roots.len(), 1, "one chatvault folder");
    let days = platform.google.folders_named(&moscow_day);
    assert_eq!(days.len(), 1, "one folder of the day");
    assert_eq!(days[0].parents, vec![roots[0].id.clone()]);
    let in_drive = platform.google.files_in(&days[0].id);
    assert_eq!(in_drive.len(), files.len());
    for (_, bytes, name, _) in &files {
        let file =
            in_drive.iter().find(|file| file.app_properties.get("sha256") == Some(&sha256_hex(bytes))).unwrap_or_else(|| panic!("{name} in Drive"));
        assert_eq!(platform.google.file_bytes(&file.id).expect("bytes"), *bytes, "Drive holds {name} byte for byte");
    }
    // Every Drive call carried an access token, and the consent asked for drive.file only.
    let requests = platform.google.requests();
    assert!(requests
        .iter()
        .filter(|request| request.path.starts_with("/drive") || request.path.starts_with("/upload"))
        .all(|request| request.authorization.as_deref().is_some_and(|value| value.starts_with("Bearer "))));
    assert!(requests.iter().any(|request| request.path == "/o/oauth2/v2/auth" && request.query.contains("code_challenge_method=S256")));

    // The same bytes again: stored once.
    let (_, report, _, _) = &files[0];
    let answer =
        platform.send_and_wait(&ann, FileKind::Document, report.clone(), "report-copy.pdf", "application/pdf", chrono::Utc::now().timestamp()).await;
    assert!(answer.starts_with(&format!("Already stored in {moscow_day}: report.pdf")), "{answer}");
    assert_eq!(platform.chatvault_files(&ann, &moscow_day).await.len(), files.len());
    assert_eq!(platform.google.files_in(&days[0].id).len(), files.len());

    // Above the public Bot API's 20 MB: a clear answer, nothing stored.
    platform.telegram.send_big_file(
        &ann.telegram,
        FileKind::Document,
        25 * 1024 * 1024,
        "huge.iso",
        "application/octet-stream",
        chrono::Utc::now().timestamp(),
    );
    let too_big =
        platform.telegram.wait_for_message(ann.telegram.id, |text| text.starts_with("Could not store huge.iso"), STEP).await.expect("answer");
    assert!(too_big.current_text().contains("at most 21.0 MB"), "{}", too_big.current_text());
    assert!(too_big.current_text().contains("self-hosted Bot API server"));

    // /files brings the day back byte for byte; /dates counts it.
    platform.telegram.send_text(&ann.telegram, &format!("/files {moscow_day}"), chrono::Utc::now().timestamp());
    let documents = platform.telegram.wait_for_documents(ann.telegram.id, files.len(), STEP).await;
    assert_eq!(documents.len(), files.len());
    for (_, bytes, name, _) in &files {
        assert!(documents.iter().any(|(_, sent, _)| sent == bytes), "{name} comes back byte for byte");
    }
    platform.telegram.send_text(&ann.telegram, "/dates", chrono::Utc::now().timestamp());
    let total: usize = files.iter().map(|(_, bytes, _, _)| bytes.len()).sum();
    let dates = platform.telegram.wait_for_message(ann.telegram.id, |text| text.starts_with("Recent days:"), STEP).await.expect("/dates");
    assert!(
        dates.current_text().contains(&format!("{moscow_day}: {} files, {}", files.len(), chatvault_bot::dates::human_size(total as u64))),
        "{}",
        dates.current_text()
    );

    // The audit trail names ann for every step.
    let wanted = [
        "chatvault.bot.v1.TelegramLinked",
        "chatvault.bot.v1.PreferencesChanged",
        "chatvault.bot.v1.DriveLinked",
        "chatvault.bot.v1.FileReceived",
        "chatvault.bot.v1.FileStored",
        "chatvault.bot.v1.FileStoreFailed",
        "chatvault.files.v1.FileStored",
    ];
    let complete = wait_until(STEP, || async {
        let rows = platform.audit_types(&ann, &wanted).await;
        let count = |kind: &str| rows.iter().filter(|row| row.as_str() == kind).count();
        count(wanted[0]) == 1
            && count(wanted[2]) == 1
            && count(wanted[3]) == files.len() + 1
            && count(wanted[4]) == files.len() + 1
            && count(wanted[5]) == 1
            && count(wanted[6]) == files.len()
    })
    .await;
    assert!(complete, "the audit trail shows every step: {:?}", platform.audit_types(&ann, &wanted).await);

    // Metrics: received by kind, stored by target, failures by reason, uses by hour.
    let bot_metrics = platform.metrics(platform.bot_http).await;
    assert_eq!(counter(&bot_metrics, "chatvault_bot_files_received_total{kind=\"photo\"}"), 1.0);
    assert_eq!(
        counter(&bot_metrics, "chatvault_bot_files_received_total{kind=\"document\"}"),
        4.0,
        "the stranger's note, the report, its copy and the big one"
    );
    assert_eq!(counter(&bot_metrics, "chatvault_bot_store_failures_total{reason=\"too_big\"}"), 1.0);
    assert!(bot_metrics.contains("chatvault_bot_uses_total{hour=\"02\",use=\"file\"}"), "files sent at 02:30 Moscow time count at hour 02");
    let worker_metrics = platform.metrics(platform.workers[0].1).await;
    assert_eq!(counter(&worker_metrics, "chatvault_bot_files_stored_total{duplicate=\"false\",target=\"drive\"}"), files.len() as f64);
    assert_eq!(counter(&worker_metrics, "chatvault_bot_files_stored_total{duplicate=\"false\",target=\"chatvault\"}"), files.len() as f64);
    assert!(worker_metrics.contains("chatvault_bot_store_seconds_count{kind=\"voice\"} 1"));

    // A refresh token Google no longer accepts: the person is asked to /drive again, and the
    // chatvault copy is still made.
    platform.google.expire_refresh_tokens();
    platform.google.expire_access_tokens();
    let late = random_bytes(10_000);
    let answer = platform.send_and_wait(&ann, FileKind::Document, late, "late.txt", "text/plain", chrono::Utc::now().timestamp()).await;
    assert!(answer.starts_with("Stored in") && answer.contains("(chatvault)"), "{answer}");
    assert!(answer.contains("Send /drive to link it again"), "{answer}");
    let link = platform.telegram_api().await.get_link(authorized(GetLinkRequest {}, &ann.access_token)).await.expect("GetLink").into_inner();
    assert!(link.drive_needs_relink, "the grant is marked refused");
    assert!(platform.log("bot.log").find(CLIENT_SECRET).is_none() && platform.log("worker-0.log").find(CLIENT_SECRET).is_none());

    // /unlink ends the link; the files stay.
    platform.telegram.send_text(&ann.telegram, "/unlink", chrono::Utc::now().timestamp());
    assert!(platform
        .telegram
        .wait_for_message(ann.telegram.id, |text| text.starts_with("Unlinked from the chatvault account ann"), STEP)
        .await
        .is_some());
    let link = platform.telegram_api().await.get_link(authorized(GetLinkRequest {}, &ann.access_token)).await.expect("GetLink").into_inner();
    assert!(!link.linked);
    assert!(platform.chatvault_files(&ann, &moscow_day).await.len() >= files.len());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn two_workers_store_fifty_files_of_one_day_in_one_drive_folder_and_a_killed_worker_is_finished_by_another() {
    let mut platform = BotPlatform::start(BotOptions { workers: 2, ..BotOptions::default() }).await;
    let bob = platform.linked_person("bob", 700_002).await;
    platform.link_drive(&bob).await;
    // Folder creation is slow in this Drive: two workers reach a new day's folder together.
    platform.google.folder_create_delay(Duration::from_millis(300));
    let now = chrono::Utc::now();
    let today = now.format("%Y-%m-%d").to_string();
    let sent: Vec<Vec<u8>> = (0..50).map(|index| format!("file {index} ").into_bytes().into_iter().chain(random_bytes(2_000)).collect()).collect();
    for (index, bytes) in sent.iter().enumerate() {
        platform.telegram.send_file(
            &bob.telegram,
            FileKind::Document,
            bytes.clone(),
            &format!("file-{index:02}.bin"),
            "application/octet-stream",
            now.timestamp(),
        );
    }
    let all_stored = wait_until(Duration::from_secs(180), || async {
        platform
            .telegram
            .messages_to(bob.telegram.id)
            .iter()
            .filter(|message| message.current_text().starts_with(&format!("Stored in {today}")))
            .count()
            == sent.len()
    })
    .await;
    assert!(
        all_stored,
        "every file is stored: {:?}",
        platform.telegram.messages_to(bob.telegram.id).iter().map(|message| message.current_text()).collect::<Vec<_>>()
    );
    assert_eq!(platform.google.folders_named("chatvault").len(), 1, "one chatvault folder");
    let days = platform.google.folders_named(&today);
    assert_eq!(days.len(), 1, "one folder of the day although two workers stored at once");
    assert_eq!(platform.google.files_in(&days[0].id).len(), sent.len());
    assert_eq!(platform.wait_for_chatvault_files(&bob, &today, sent.len()).await.len(), sent.len());
    for (index, (_, metrics_address)) in platform.workers.iter().enumerate() {
        let metrics = platform.metrics(*metrics_address).await;
        assert!(counter(&metrics, "chatvault_bot_files_stored_total{duplicate=\"false\",target=\"drive\"}") > 0.0, "worker {index} took part");
    }
    // Both workers hold partitions now: a batch of another day makes both need that day's
    // new folder at the same moment.
    let (_, yesterday, _) = late_evening_utc();
    let yesterday_noon = chrono::NaiveDate::parse_from_str(&yesterday, "%Y-%m-%d").expect("date").and_hms_opt(12, 0, 0).expect("noon").and_utc();
    let before = platform.telegram.messages_to(bob.telegram.id).len();
    for index in 0..20 {
        let bytes: Vec<u8> = format!("yesterday {index} ").into_bytes().into_iter().chain(random_bytes(1_000)).collect();
        platform.telegram.send_file(
            &bob.telegram,
            FileKind::Document,
            bytes,
            &format!("old-{index:02}.bin"),
            "application/octet-stream",
            yesterday_noon.timestamp(),
        );
    }
    let all_stored = wait_until(Duration::from_secs(180), || async {
        platform
            .telegram
            .messages_to(bob.telegram.id)
            .iter()
            .skip(before)
            .filter(|message| message.current_text().starts_with(&format!("Stored in {yesterday}")))
            .count()
            == 20
    })
    .await;
    assert!(all_stored, "yesterday's files are stored");
    let yesterdays = platform.google.folders_named(&yesterday);
    assert_eq!(yesterdays.len(), 1, "one folder of yesterday although both workers needed it at once");
    assert_eq!(platform.google.files_in(&yesterdays[0].id).len(), 20);

    // One worker left; its upload stalls half-way and it is killed. A new worker takes the
    // partition over and resumes the Drive upload where it stopped.
    platform.kill_worker(1);
    platform.google.stall_upload_at(600_000);
    let big = random_bytes(1_000_000);
    platform.telegram.send_file(&bob.telegram, FileKind::Document, big.clone(), "stalled.bin", "application/octet-stream", now.timestamp());
    assert!(platform.google.wait_for_upload_bytes(None, 600_000, STEP).await.is_some(), "the upload reached the stall");
    platform.kill_worker(0);
    let chatvault_before = platform.chatvault_files(&bob, &today).await.len();
    platform.start_worker().await;
    let finished =
        platform.telegram.wait_for_message(bob.telegram.id, |text| text.starts_with(&format!("Stored in {today}: stalled.bin")), STEP).await;
    assert!(finished.is_some(), "the new worker finished the file");
    let in_drive: Vec<_> = platform.google.files_in(&days[0].id).into_iter().filter(|file| file.name == "stalled.bin").collect();
    assert_eq!(in_drive.len(), 1, "one Drive file");
    assert_eq!(platform.google.file_bytes(&in_drive[0].id).expect("bytes"), big);
    let puts = platform.google.upload_puts();
    let resumed = puts
        .iter()
        .filter_map(|(_, range)| range.strip_prefix("bytes "))
        .filter_map(|range| range.split('-').next())
        .filter_map(|start| start.parse::<u64>().ok());
    assert!(resumed.clone().any(|start| start == 600_000), "a PUT resumed at byte 600000: {puts:?}");
    let chatvault_after = platform.wait_for_chatvault_files(&bob, &today, chatvault_before).await;
    assert_eq!(chatvault_after.iter().filter(|file| file.name == "stalled.bin").count(), 1, "one chatvault file");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn drive_faults_are_retried_resumed_and_explained() {
    let platform = BotPlatform::start(BotOptions { workers: 1, ..BotOptions::default() }).await;
    let cleo = platform.linked_person("cleo", 700_003).await;
    platform.link_drive(&cleo).await;
    platform.telegram.send_text(&cleo.telegram, "/store drive", chrono::Utc::now().timestamp());
    assert!(platform.telegram.wait_for_message(cleo.telegram.id, |text| text == "Files now go to Google Drive.", STEP).await.is_some());
    let today = chrono::Utc::now().format("%Y-%m-%d").to_string();

    // Quota answers: 403 userRateLimitExceeded, then 429, then the call goes through.
    platform.google.quota_errors(1, QuotaKind::UserRateLimit);
    platform.google.quota_errors(1, QuotaKind::TooManyRequests);
    let first = random_bytes(50_000);
    let answer =
        platform.send_and_wait(&cleo, FileKind::Document, first, "quota.bin", "application/octet-stream", chrono::Utc::now().timestamp()).await;
    assert_eq!(answer, format!("Stored in {today}: quota.bin, 50.0 kB (Google Drive)"));
    let statuses: Vec<u16> = platform.google.requests().iter().filter_map(|request| request.status).collect();
    assert!(statuses.contains(&403) && statuses.contains(&429), "both quota answers were sent: {statuses:?}");
    let metrics = platform.metrics(platform.workers[0].1).await;
    assert!(counter(&metrics, "chatvault_bot_drive_retries_total{reason=\"drive_quota\"}") >= 2.0, "{metrics}");
    assert!(platform.chatvault_files(&cleo, &today).await.is_empty(), "Drive only");

    // An upload interrupted half-way resumes from the byte Drive confirmed.
    platform.google.fail_upload_at(400_000);
    let second = random_bytes(900_000);
    let answer = platform
        .send_and_wait(&cleo, FileKind::Document, second.clone(), "interrupted.bin", "application/octet-stream", chrono::Utc::now().timestamp())
        .await;
    assert!(answer.starts_with(&format!("Stored in {today}: interrupted.bin")), "{answer}");
    let day = platform.google.folders_named(&today);
    let stored = platform.google.files_in(&day[0].id).into_iter().find(|file| file.name == "interrupted.bin").expect("in Drive");
    assert_eq!(platform.google.file_bytes(&stored.id).expect("bytes"), second);
    let puts = platform.google.upload_puts();
    assert!(puts.iter().any(|(_, range)| range.starts_with("bytes 400000-")), "resumed at byte 400000: {puts:?}");
    assert!(puts.iter().any(|(_, range)| range.starts_with("bytes */")), "asked Drive how far it got: {puts:?}");

    // /drive off revokes at Google; files go to chatvault again.
    platform.telegram.send_text(&cleo.telegram, "/drive off", chrono::Utc::now().timestamp());
    assert!(platform
        .telegram
        .wait_for_message(cleo.telegram.id, |text| text.starts_with("Google Drive is unlinked and chatvault's access is revoked"), STEP)
        .await
        .is_some());
    assert!(platform.google.requests().iter().any(|request| request.path == "/revoke"));
    let third = random_bytes(5_000);
    let answer =
        platform.send_and_wait(&cleo, FileKind::Document, third, "after.bin", "application/octet-stream", chrono::Utc::now().timestamp()).await;
    assert!(answer.ends_with("(chatvault)"), "{answer}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn webhook_mode_checks_the_secret_token_and_local_mode_takes_large_files() {
    let platform = BotPlatform::start(BotOptions { workers: 1, webhook: true, local_api: true }).await;
    let set = platform.telegram.requests().into_iter().find(|request| request.method.eq_ignore_ascii_case("setWebhook")).expect("setWebhook");
    assert_eq!(set.params["url"], format!("http://{}/telegram/webhook", platform.bot_http));
    let secret = set.params["secret_token"].as_str().expect("a secret token").to_owned();
    assert!(secret.len() >= 32);
    // Without the secret header, an update is refused and not acted on.
    let forged = serde_json::json!({"update_id": 999, "message": {"message_id": 1, "date": 0, "chat": {"id": 5, "type": "private", "first_name": "x"}, "from": {"id": 5, "is_bot": false, "first_name": "x"}, "text": "/start"}});
    let refused = reqwest::Client::new().post(format!("http://{}/telegram/webhook", platform.bot_http)).json(&forged).send().await.expect("post");
    assert!(refused.status().is_client_error(), "{}", refused.status());
    assert!(platform.telegram.messages_to(5).is_empty());

    let dan = platform.linked_person("dan", 700_004).await;
    // 25 MB: above the public Bot API's 20 MB, fine for a local Bot API server.
    let large = random_bytes(25 * 1024 * 1024);
    let answer = platform.send_and_wait(&dan, FileKind::Video, large.clone(), "large.mp4", "video/mp4", chrono::Utc::now().timestamp()).await;
    let today = chrono::Utc::now().format("%Y-%m-%d").to_string();
    assert!(answer.starts_with(&format!("Stored in {today}: large.mp4, 26.2 MB")), "{answer}");
    let stored = platform.wait_for_chatvault_files(&dan, &today, 1).await;
    assert_eq!(stored[0].sha256, sha256_hex(&large));
    assert!(!platform.telegram.requests().iter().any(|request| request.method == "download"), "read from the server's disk");

    // A person without an account registers from the bot and can log in with the password.
    let eve = TelegramUser::new(700_005, "Eve", Some("eve_tg"));
    platform.telegram.send_text(&eve, "/register eve", chrono::Utc::now().timestamp());
    assert!(platform.telegram.wait_for_message(eve.id, |text| text.starts_with("Send /register <username> <email>"), STEP).await.is_some());
    platform.telegram.send_text(&eve, "/register eve eve@example.org", chrono::Utc::now().timestamp());
    let created = platform.telegram.wait_for_message(eve.id, |text| text.starts_with("Created the chatvault account eve"), STEP).await;
    let created = created.unwrap_or_else(|| panic!("eve's account is created: {:?}", platform.telegram.messages_to(eve.id)));
    let password = created.current_text().lines().nth(1).expect("the password line").trim().to_owned();
    let login = LoginRequest { username: "eve".to_owned(), password };
    assert!(platform.accounts.clone().login(login).await.is_ok(), "the generated password logs in");
    assert!(created.current_text().contains("Linked to the chatvault account eve"));
}
