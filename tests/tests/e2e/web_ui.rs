//! The web front door in a real browser: Debian's headless Chromium driven through
//! WebDriver (`chromedriver`), against the whole platform with authentication on (users,
//! storage, ingest, audit, backup, six storage nodes and the web service, on a fresh
//! database and fresh topics).
//!
//! One person registers, imports an export through the upload form, reads the chat, follows
//! a reply far back, searches and lands on the hit, uploads a file and downloads it
//! byte-equal, shares it behind a password and opens the link in a fresh browser, and finds
//! all of it in their history. Another person sees none of it, through the pages or by
//! forged URLs; the admin sees six nodes. Text from the export that looks like HTML or a
//! script stays text. Screenshots of the main pages at desktop and phone sizes go to
//! `artifacts/screenshots/` (gitignored; CI keeps it).

use std::net::{SocketAddr, TcpListener};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use chatvault_common::config::ServiceConfig;
use chatvault_common::test_support::{service_environment, unique_topic_prefix, TestDb};
use chatvault_proto::storage::v1::files_service_client::FilesServiceClient;
use chatvault_proto::storage::v1::ListNodesRequest;
use fantoccini::{Client, ClientBuilder, Locator};
use sha2::{Digest, Sha256};
use tokio_util::sync::CancellationToken;

use crate::accounts::{authorized, ADMIN_PASSWORD, ADMIN_USERNAME};
use crate::files_support::{random_bytes, TestNode};
use crate::helpers::{connect, wait_until};

const CHAT_ID: i64 = 7_400_000_001;
const CHAT_NAME: &str = "Expedition <b>planning</b>";
/// Messages 1..=FILLER_END are ordinary; the last ones reply far back and carry hostile text.
const MESSAGES: i64 = 130;
const HOSTILE_SCRIPT: &str = "<script>window.__xss = 1</script>";
const HOSTILE_IMG: &str = "<img src=x onerror=\"window.__xss = 2\">";
const SEARCH_WORD: &str = "zeppelin";
const SEARCH_HIT: i64 = 17;
const PASSWORD: &str = "Correct-horse-7";

/// The whole platform with the web service in front, on this test's own database and topics.
struct WebPlatform {
    _database: TestDb,
    audit: chatvault_proto::audit::v1::audit_service_client::AuditServiceClient<tonic::transport::Channel>,
    admin: String,
    web: SocketAddr,
    files: FilesServiceClient<tonic::transport::Channel>,
    _nodes: Vec<TestNode>,
    _backups: tempfile::TempDir,
    shutdown: CancellationToken,
}

impl Drop for WebPlatform {
    fn drop(&mut self) {
        self.shutdown.cancel();
    }
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0").expect("a free port").local_addr().expect("address").port()
}

impl WebPlatform {
    async fn start() -> Self {
        crate::helpers::init_test_logging();
        let (database, topic_prefix) = (TestDb::fresh().await, unique_topic_prefix());
        let shutdown = CancellationToken::new();
        let backups = tempfile::tempdir().expect("backup folder");
        let mut environment = service_environment(database.url.expose(), &topic_prefix);
        environment.insert("CHATVAULT_AUTH".to_owned(), "on".to_owned());
        environment.insert("CHATVAULT_USERS_BOOTSTRAP_ADMIN".to_owned(), format!("{ADMIN_USERNAME}:{ADMIN_PASSWORD}:root@example.org"));
        environment.insert("CHATVAULT_WEB_DATABASE_URL".to_owned(), database.url.expose().to_owned());
        // Access tokens shorter than the web service's refresh margin: every page refreshes
        // the session's tokens, and the photo thumbnails of a page do so side by side, so the
        // whole test runs on rotated refresh tokens (a refresh token shown twice would end
        // the log-in).
        environment.insert("CHATVAULT_JWT_ACCESS_TTL_SECONDS".to_owned(), "30".to_owned());
        let core = crate::helpers::start_core_services(&environment, &shutdown).await;
        let (users_addr, storage_addr, ingest_addr, audit_addr) = (core.users, core.storage, core.ingest, core.audit);
        environment.insert("CHATVAULT_BACKUP_DIR".to_owned(), backups.path().display().to_string());
        environment.insert("CHATVAULT_BACKUP_STORAGE_URL".to_owned(), format!("http://{storage_addr}"));
        environment.insert("CHATVAULT_BACKUP_USERS_URL".to_owned(), format!("http://{users_addr}"));
        environment.insert("CHATVAULT_BACKUP_INGEST_URL".to_owned(), format!("http://{ingest_addr}"));
        let build = |service: &str| {
            ServiceConfig::from_env_map(service, chatvault_common::config::DefaultPorts { grpc: 0, http: 0 }, &environment).expect("config")
        };
        let backup = chatvault_backup::App::build(build("backup")).await.expect("backup starts");
        let backup_addr = backup.grpc_addr();
        tokio::spawn(backup.run_until_stopped(shutdown.clone()));

        // Six nodes, registered by the admin, and seen by ingest before any upload.
        let admin = admin_token(users_addr).await;
        let files = FilesServiceClient::new(connect(storage_addr).await).max_decoding_message_size(64 << 20);
        let nodes = crate::files_support::registered_nodes(6, &files, ingest_addr, &admin).await;

        let web_port = free_port();
        let mut web_environment = environment.clone();
        for (name, address) in
            [("USERS", users_addr), ("STORAGE", storage_addr), ("INGEST", ingest_addr), ("AUDIT", audit_addr), ("BACKUP", backup_addr)]
        {
            web_environment.insert(format!("CHATVAULT_WEB_{name}_URL"), format!("http://{address}"));
        }
        web_environment.insert("CHATVAULT_WEB_HTTP_ADDR".to_owned(), format!("127.0.0.1:{web_port}"));
        web_environment.insert("CHATVAULT_WEB_GRPC_ADDR".to_owned(), "127.0.0.1:0".to_owned());
        web_environment.insert("CHATVAULT_WEB_PUBLIC_URL".to_owned(), format!("http://127.0.0.1:{web_port}"));
        let config = ServiceConfig::from_env_map("web", chatvault_web::DEFAULT_PORTS, &web_environment).expect("web config");
        let web = chatvault_web::App::build(config).await.expect("web starts");
        let web_addr = web.http_addr();
        tokio::spawn(web.run_until_stopped(shutdown.clone()));
        let audit = chatvault_proto::audit::v1::audit_service_client::AuditServiceClient::new(connect(audit_addr).await);
        Self { _database: database, audit, admin, web: web_addr, files, _nodes: nodes, _backups: backups, shutdown }
    }

    fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.web)
    }
}

async fn admin_token(users: SocketAddr) -> String {
    let mut accounts = chatvault_proto::users::v1::accounts_service_client::AccountsServiceClient::new(connect(users).await);
    let request = chatvault_proto::users::v1::LoginRequest { username: ADMIN_USERNAME.to_owned(), password: ADMIN_PASSWORD.to_owned() };
    accounts.login(request).await.expect("the admin logs in").into_inner().access_token
}

/// `chromedriver` on a free port, stopped when dropped.
struct Driver {
    child: Child,
    url: String,
}

impl Drop for Driver {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Driver {
    async fn start() -> Self {
        let port = free_port();
        let child = Command::new("chromedriver")
            .arg(format!("--port={port}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("chromedriver runs (scripts/test.sh installs Debian's chromium and chromium-driver)");
        let url = format!("http://127.0.0.1:{port}");
        let status = format!("127.0.0.1:{port}");
        let up = wait_until(Duration::from_secs(30), || {
            let status = status.clone();
            async move { tokio::net::TcpStream::connect(status).await.is_ok() }
        })
        .await;
        assert!(up, "chromedriver listens on {url}");
        Self { child, url }
    }

    /// A new browser (its own profile: no cookies) downloading into `downloads`.
    async fn browser(&self, downloads: &Path) -> Client {
        let mut capabilities = serde_json::Map::new();
        capabilities.insert(
            "goog:chromeOptions".to_owned(),
            serde_json::json!({
                "binary": "/usr/bin/chromium",
                "args": ["--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--window-size=1280,900", "--lang=en-US"],
                "prefs": {
                    "download": { "default_directory": downloads.display().to_string(), "prompt_for_download": false, "directory_upgrade": true },
                    "download_restrictions": 0,
                    "safebrowsing": { "enabled": false }
                }
            }),
        );
        ClientBuilder::rustls().expect("tls").capabilities(capabilities).connect(&self.url).await.expect("a browser session starts")
    }
}

/// Writes the export: a photo, hostile text, a far reply, a poll, a location and a service
/// message, 130 messages over several days; returns the path of its `.zip`.
fn write_export_zip(folder: &Path) -> PathBuf {
    use std::io::Write as _;
    let photo = {
        let picture = image::RgbImage::from_fn(640, 480, |x, y| image::Rgb([(x % 256) as u8, (y % 256) as u8, 90]));
        let mut png = Vec::new();
        image::DynamicImage::ImageRgb8(picture).write_to(&mut std::io::Cursor::new(&mut png), image::ImageFormat::Png).expect("png");
        png
    };
    let mut messages = Vec::new();
    for id in 1..=MESSAGES {
        let date = 1_767_261_600 + id * 7_200; // from 2026-01-01, two hours apart
        let mut message = serde_json::json!({
            "id": id, "type": "message", "date": "2026-01-01T10:00:00", "date_unixtime": date.to_string(),
            "from": if id % 2 == 0 { "Ann Lee" } else { "Bob Stone" }, "from_id": if id % 2 == 0 { "user1" } else { "user2" },
            "text": format!("Message number {id} about the route"),
        });
        match id {
            1 => {
                message["text"] = serde_json::json!("The very first message, with the map photo");
                message["photo"] = serde_json::json!("photos/photo_1@01-01-2026_10-00-00.jpg");
                message["width"] = serde_json::json!(640);
                message["height"] = serde_json::json!(480);
            }
            SEARCH_HIT => message["text"] = serde_json::json!(format!("We could take a {SEARCH_WORD} over the pass")),
            120 => message["text"] = serde_json::json!(HOSTILE_SCRIPT),
            121 => message["text"] = serde_json::json!(HOSTILE_IMG),
            122 => {
                message["text"] = serde_json::json!([{ "type": "text_link", "text": "harmless looking link", "href": "javascript:window.__xss = 3" }])
            }
            123 => {
                message["text"] = serde_json::json!("");
                message["poll"] = serde_json::json!({ "question": "Which pass?", "closed": false, "total_voters": 3,
                    "answers": [{ "text": "North", "voters": 2, "chosen": true }, { "text": "South", "voters": 1, "chosen": false }] });
            }
            124 => {
                message["text"] = serde_json::json!("");
                message["location_information"] = serde_json::json!({ "latitude": 46.5547, "longitude": 8.5616 });
            }
            125 => {
                message = serde_json::json!({ "id": id, "type": "service", "date": "2026-01-11T10:00:00", "date_unixtime": date.to_string(),
                    "actor": "Ann Lee", "actor_id": "user1", "action": "pin_message", "message_id": 1, "text": "" });
            }
            MESSAGES => {
                message["text"] = serde_json::json!("Replying to the very first message, far back");
                message["reply_to_message_id"] = serde_json::json!(1);
            }
            _ => {}
        }
        messages.push(message);
    }
    let result = serde_json::json!({ "name": CHAT_NAME, "type": "private_group", "id": CHAT_ID, "messages": messages });
    let path = folder.join("ChatExport_2026-01-12.zip");
    let mut zip = zip::ZipWriter::new(std::fs::File::create(&path).expect("zip file"));
    let options = zip::write::SimpleFileOptions::default().compression_method(zip::CompressionMethod::Deflated);
    zip.start_file("result.json", options).expect("zip entry");
    zip.write_all(serde_json::to_string_pretty(&result).expect("json").as_bytes()).expect("write result.json");
    zip.start_file("photos/photo_1@01-01-2026_10-00-00.jpg", options).expect("zip entry");
    zip.write_all(&photo).expect("write photo");
    zip.finish().expect("zip finishes");
    path
}

async fn css(client: &Client, selector: &str) -> fantoccini::elements::Element {
    match client.wait().at_most(Duration::from_secs(30)).for_element(Locator::Css(selector)).await {
        Ok(element) => element,
        Err(error) => {
            let at = path_of(client).await;
            let text = match client.find(Locator::Css("body")).await {
                Ok(body) => body.text().await.unwrap_or_default(),
                Err(_) => String::new(),
            };
            panic!("{selector} appears: {error}; the page at {at} reads: {text}")
        }
    }
}

async fn path_of(client: &Client) -> String {
    let url = client.current_url().await.expect("url");
    match url.query() {
        Some(query) => format!("{}?{query}", url.path()),
        None => url.path().to_owned(),
    }
}

/// Waits until the page's path starts with `prefix` (a navigation the page script starts).
async fn wait_for_path(client: &Client, prefix: &str) -> String {
    let reached = wait_until(Duration::from_secs(120), || async { path_of(client).await.starts_with(prefix) }).await;
    let path = path_of(client).await;
    assert!(reached, "the browser reaches {prefix}… (it is at {path})");
    path
}

async fn log_in(client: &Client, platform: &WebPlatform, username: &str, password: &str) {
    client.goto(&platform.url("/login")).await.expect("login page");
    css(client, "#username").await.send_keys(username).await.expect("type username");
    css(client, "#password").await.send_keys(password).await.expect("type password");
    css(client, "#login-button").await.click().await.expect("log in");
    wait_for_path(client, "/chats").await;
}

async fn log_out(client: &Client) {
    css(client, "form.who button").await.click().await.expect("log out");
    wait_for_path(client, "/login").await;
}

/// Saves a screenshot of the current page at desktop and phone sizes.
async fn screenshots(client: &Client, name: &str) {
    let folder = Path::new(env!("CARGO_MANIFEST_DIR")).join("..").join("artifacts").join("screenshots");
    std::fs::create_dir_all(&folder).expect("screenshot folder");
    for (size, width, height) in [("desktop", 1280, 900), ("phone", 390, 844)] {
        client.set_window_size(width, height).await.expect("window size");
        let png = client.screenshot().await.expect("screenshot");
        assert!(png.starts_with(b"\x89PNG"), "a PNG screenshot");
        std::fs::write(folder.join(format!("{name}-{size}.png")), png).expect("save screenshot");
    }
    client.set_window_size(1280, 900).await.expect("window size");
}

/// The downloaded file named `name` in `folder`, once Chromium finished writing it.
async fn downloaded(folder: &Path, name: &str, size: usize) -> Vec<u8> {
    let path = folder.join(name);
    let complete = wait_until(Duration::from_secs(60), || {
        let path = path.clone();
        async move { std::fs::metadata(&path).is_ok_and(|metadata| metadata.len() == size as u64) }
    })
    .await;
    let present: Vec<String> = std::fs::read_dir(folder)
        .map(|entries| entries.filter_map(Result::ok).map(|entry| entry.file_name().to_string_lossy().into_owned()).collect())
        .unwrap_or_default();
    assert!(complete, "{} is downloaded ({size} bytes); the folder holds {present:?}", path.display());
    std::fs::read(path).expect("read the download")
}

async fn status_of(platform: &WebPlatform, cookie: &str, path: &str) -> (u16, String) {
    let response = crate::files_support::http_request(platform.web, "GET", path, &[("cookie", cookie)], b"").await;
    (response.status, String::from_utf8_lossy(&response.body).into_owned())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_person_uses_the_archive_in_a_browser_and_sees_only_their_own() {
    let platform = WebPlatform::start().await;
    let driver = Driver::start().await;
    let work = tempfile::tempdir().expect("work folder");
    let (ann_downloads, stranger_downloads) = (work.path().join("ann"), work.path().join("stranger"));
    std::fs::create_dir_all(&ann_downloads).expect("folder");
    std::fs::create_dir_all(&stranger_downloads).expect("folder");
    let export = write_export_zip(work.path());
    let ann = driver.browser(&ann_downloads).await;

    // Every answer forbids inline scripts.
    let login = crate::files_support::http_request(platform.web, "GET", "/login", &[], b"").await;
    let policy = login
        .headers
        .iter()
        .find(|(name, _)| name.eq_ignore_ascii_case("content-security-policy"))
        .map(|(_, value)| value.clone())
        .unwrap_or_default();
    assert!(policy.contains("script-src 'self'") && !policy.contains("unsafe-inline') ; script"), "CSP: {policy}");

    // Refusals read as pages: a path that does not parse, a body past the limit, a forged
    // pre-log-in CSRF token.
    let unknown = crate::files_support::http_request(platform.web, "GET", "/no/such/page", &[], b"").await;
    assert_eq!(unknown.status, 404);
    assert!(String::from_utf8_lossy(&unknown.body).contains("there is no such page"), "an error page, not an empty body");
    let big = vec![b'a'; 3 << 20];
    let too_large = crate::files_support::http_request(
        platform.web,
        "POST",
        "/login",
        &[
            ("content-type", "application/x-www-form-urlencoded"),
            ("cookie", &format!("cv_csrf={}", "a".repeat(64))),
            ("x-csrf-token", &"a".repeat(64)),
        ],
        &big,
    )
    .await;
    assert_eq!(too_large.status, 413, "a log-in form is not read past the body limit");
    let chosen = crate::files_support::http_request(
        platform.web,
        "POST",
        "/login",
        &[("content-type", "application/x-www-form-urlencoded"), ("cookie", "cv_csrf=")],
        b"csrf=&username=ann&password=x",
    )
    .await;
    assert_eq!(chosen.status, 403, "an empty token chosen by the requester is no token");

    // Registration through the form signs the new account in.
    ann.goto(&platform.url("/register")).await.expect("register page");
    screenshots(&ann, "register").await;
    let form = ann.form(Locator::Css("form[action='/register']")).await.expect("the form");
    form.set_by_name("username", "ann").await.expect("username");
    form.set_by_name("email", "ann@example.org").await.expect("email");
    form.set_by_name("password", "Ann-password-1").await.expect("password");
    form.submit().await.expect("register");
    wait_for_path(&ann, "/import").await;

    // The skip link is the first stop of the keyboard.
    let first_focus = ann.execute("document.body.focus(); return document.querySelector('a.skip').textContent", vec![]).await.expect("script");
    assert_eq!(first_focus, serde_json::json!("Skip to content"));

    // Import through the upload form: the summary counts every message of the export.
    screenshots(&ann, "import").await;
    css(&ann, "#import-zip").await.send_keys(&export.display().to_string()).await.expect("choose the zip");
    css(&ann, "#import-button").await.click().await.expect("import");
    let result_path = wait_for_path(&ann, "/imports/").await;
    let counted = css(&ann, "#summary-messages").await.text().await.expect("text");
    assert_eq!(counted.trim().parse::<i64>().expect("a count"), MESSAGES, "every message of the export");
    screenshots(&ann, "import-result").await;

    // The chat reads like a chat; its newest page ends with the far reply.
    css(&ann, "a.imported-chat").await.click().await.expect("open the chat");
    wait_for_path(&ann, &format!("/chats/{CHAT_ID}")).await;
    assert_eq!(css(&ann, "h1").await.text().await.expect("title"), CHAT_NAME, "the chat name is shown as text");
    let shown = ann.find_all(Locator::Css("article.msg")).await.expect("messages");
    assert_eq!(shown.len(), 50, "one page of messages");
    assert!(!ann.find_all(Locator::Css(".day")).await.expect("days").is_empty(), "day separators");
    let sentence = css(&ann, "#m125 .sentence").await.text().await.expect("sentence");
    assert!(sentence.starts_with("Ann Lee pinned a message"), "{sentence}");
    let poll = css(&ann, "#m123 .details").await.text().await.expect("poll");
    assert!(poll.contains("Which pass?") && poll.contains("North — 2 votes"), "{poll}");
    assert!(css(&ann, "#m124 a[href^='https://www.openstreetmap.org/']").await.is_displayed().await.expect("map link"));
    // Hostile text is text: no script ran, no javascript: link exists.
    assert_eq!(css(&ann, "#m120 .text").await.text().await.expect("text"), HOSTILE_SCRIPT);
    assert_eq!(css(&ann, "#m121 .text").await.text().await.expect("text"), HOSTILE_IMG);
    assert_eq!(css(&ann, "#m122 .text").await.text().await.expect("text"), "harmless looking link");
    let ran = ann
        .execute("return [typeof window.__xss, document.querySelectorAll('a[href^=\"javascript\"], #m121 img').length]", vec![])
        .await
        .expect("script");
    assert_eq!(ran, serde_json::json!(["undefined", 0]), "nothing from the export ran or became markup");
    screenshots(&ann, "chat").await;
    // The reply's target is 129 messages back: the link opens the chat around it.
    css(&ann, &format!("#m{MESSAGES} a.reply")).await.click().await.expect("follow the reply");
    let around = wait_for_path(&ann, &format!("/chats/{CHAT_ID}?&at=1")).await;
    assert!(css(&ann, "#m1.target").await.text().await.expect("target").contains("The very first message"), "{around}");
    let photo = css(&ann, "#m1 .media img").await;
    assert_eq!(photo.attr("loading").await.expect("attr").as_deref(), Some("lazy"));
    let loaded = wait_until(Duration::from_secs(30), || async {
        ann.execute("const img = document.querySelector('#m1 .media img'); return img.complete && img.naturalWidth", vec![])
            .await
            .is_ok_and(|width| width == serde_json::json!(320))
    })
    .await;
    assert!(loaded, "the photo's 320-pixel thumbnail loads");
    // Jump to a date.
    ann.goto(&platform.url(&format!("/chats/{CHAT_ID}"))).await.expect("chat");
    let jump = ann.form(Locator::Css("form.jump")).await.expect("jump form");
    ann.execute("document.getElementById('jump-date').value = '2026-01-05'", vec![]).await.expect("set the date");
    jump.submit().await.expect("jump");
    wait_for_path(&ann, &format!("/chats/{CHAT_ID}?date=2026-01-05")).await;
    let target_time = css(&ann, "article.msg.target time").await.attr("datetime").await.expect("attr").unwrap_or_default();
    assert!(target_time.starts_with("2026-01-05T00:00:00"), "the first message of the day is the target: {target_time}");
    // Authors with the chart.
    ann.goto(&platform.url(&format!("/chats/{CHAT_ID}/authors"))).await.expect("authors");
    let bars = ann.find_all(Locator::Css("svg.chart rect.bar")).await.expect("bars");
    assert_eq!(bars.len(), 1, "one month of messages");
    assert!(css(&ann, "table.authors").await.text().await.expect("table").contains("Ann Lee"));
    screenshots(&ann, "authors").await;

    // Search lands on the hit.
    ann.goto(&platform.url("/search")).await.expect("search");
    css(&ann, "#search-q").await.send_keys(SEARCH_WORD).await.expect("type");
    css(&ann, "#search-button").await.click().await.expect("search");
    let marked = css(&ann, ".hit-link mark").await.text().await.expect("mark");
    assert_eq!(marked.to_lowercase(), SEARCH_WORD);
    screenshots(&ann, "search").await;
    css(&ann, ".hit-link").await.click().await.expect("open the hit");
    wait_for_path(&ann, &format!("/chats/{CHAT_ID}?&at={SEARCH_HIT}")).await;
    assert!(css(&ann, &format!("#m{SEARCH_HIT}.target")).await.text().await.expect("hit").contains(SEARCH_WORD));

    // Upload a file, download it byte-equal.
    let upload = random_bytes(1_500_000);
    let upload_path = work.path().join("field notes.bin");
    std::fs::write(&upload_path, &upload).expect("write the upload");
    ann.goto(&platform.url("/files")).await.expect("files");
    css(&ann, "#upload-input").await.send_keys(&upload_path.display().to_string()).await.expect("choose");
    css(&ann, "#upload-button").await.click().await.expect("upload");
    wait_for_path(&ann, "/files?date=").await;
    screenshots(&ann, "files").await;
    let listed = ann
        .wait()
        .at_most(Duration::from_secs(60))
        .for_element(Locator::XPath("//a[@class='file-name' and text()='field notes.bin']"))
        .await
        .expect("the upload is listed");
    listed.click().await.expect("open the file");
    let file_path = wait_for_path(&ann, "/files/").await;
    let file_id = file_path.trim_start_matches("/files/").to_owned();
    css(&ann, "#download-link").await.click().await.expect("download");
    let bytes = downloaded(&ann_downloads, "field notes.bin", upload.len()).await;
    assert_eq!(Sha256::digest(&bytes), Sha256::digest(&upload), "the download equals the upload");

    // A password-protected share link, opened in a fresh browser.
    css(&ann, "#share-password").await.send_keys(PASSWORD).await.expect("password");
    css(&ann, "#share-button").await.click().await.expect("create the link");
    let share_url = css(&ann, "#share-url").await.prop("value").await.expect("prop").expect("the link");
    assert!(share_url.starts_with(&platform.url("/s/")), "{share_url}");
    screenshots(&ann, "file").await;
    let stranger = driver.browser(&stranger_downloads).await;
    stranger.goto(&share_url).await.expect("share page");
    assert!(stranger.find_all(Locator::Css("#shared-name")).await.expect("query").is_empty(), "the name stays hidden behind the password");
    css(&stranger, "#share-password").await.send_keys("wrong-password").await.expect("type");
    css(&stranger, "#share-download").await.click().await.expect("try");
    assert!(!css(&stranger, "#share-error").await.text().await.expect("error").is_empty(), "a wrong password is refused in words");
    screenshots(&stranger, "share").await;
    css(&stranger, "#share-password").await.send_keys(PASSWORD).await.expect("type");
    css(&stranger, "#share-download").await.click().await.expect("download");
    let shared = downloaded(&stranger_downloads, "field notes.bin", upload.len()).await;
    assert_eq!(Sha256::digest(&shared), Sha256::digest(&upload), "the shared download equals the upload");
    stranger.close().await.expect("close");

    // My history shows the import, the upload and the share.
    ann.goto(&platform.url("/history")).await.expect("history");
    let history = wait_until(Duration::from_secs(60), || async {
        ann.refresh().await.is_ok()
            && ann.find(Locator::Css("table.history")).await.is_ok_and(|_| true)
            && ann.source().await.is_ok_and(|html| {
                html.contains("File stored")
                    && html.contains("field notes.bin")
                    && html.contains("Share link created")
                    && html.contains("from 127.0.0.1 (")
            })
    })
    .await;
    let shown = ann.find(Locator::Css("main")).await.expect("main").text().await.unwrap_or_default();
    assert!(history, "the upload, the share and where ann logged in from are in ann's history: {shown}");
    assert!(!shown.contains("Message posted") && shown.contains("Chat imported"), "history lists the import once, not its messages: {shown}");
    screenshots(&ann, "history").await;
    let ann_cookie = session_cookie(&ann).await;
    let (status, body) = status_of(&platform, &ann_cookie, "/chats/99999999999999999999").await;
    assert_eq!(status, 400);
    assert!(body.starts_with("<!doctype html>") && body.contains("not valid here"), "an id that does not parse gets the error page: {body}");
    log_out(&ann).await;
    // Logging out revoked the refresh token at the users service (LoggedOut is ann's).
    let logged_out = wait_until(Duration::from_secs(60), || async {
        let request = chatvault_proto::audit::v1::AuditQueryRequest {
            actor: "ann".to_owned(),
            event_type: "chatvault.users.v1.LoggedOut".to_owned(),
            ..Default::default()
        };
        platform.audit.clone().query(authorized(request, &platform.admin)).await.is_ok_and(|page| page.into_inner().rows.len() == 1)
    })
    .await;
    assert!(logged_out, "the log-out revoked ann's refresh token");

    // Bob sees nothing of ann's, through the pages or by forging URLs.
    let bob = ann;
    bob.goto(&platform.url("/register")).await.expect("register");
    let form = bob.form(Locator::Css("form[action='/register']")).await.expect("the form");
    form.set_by_name("username", "bob").await.expect("username");
    form.set_by_name("email", "bob@example.org").await.expect("email");
    form.set_by_name("password", "Bob-password-1").await.expect("password");
    form.submit().await.expect("register");
    wait_for_path(&bob, "/import").await;
    bob.goto(&platform.url("/chats")).await.expect("chats");
    assert!(css(&bob, "main").await.text().await.expect("text").contains("No chats yet"));
    let bob_cookie = session_cookie(&bob).await;
    for forged in [
        format!("/chats/{CHAT_ID}"),
        format!("/chats/{CHAT_ID}?owner=ann"),
        format!("/chats/{CHAT_ID}/authors?owner=ann"),
        format!("/files/{file_id}"),
        format!("/files/{file_id}/download"),
        format!("/files/{file_id}/thumbnail"),
        result_path.clone(),
    ] {
        let (status, body) = status_of(&platform, &bob_cookie, &forged).await;
        assert_eq!(status, 404, "{forged} is not found for bob: {body}");
        assert!(!body.contains("field notes") && !body.contains("Expedition"), "{forged} reveals nothing");
    }
    let (status, _) = status_of(&platform, &bob_cookie, "/admin").await;
    assert_eq!(status, 403, "bob is no admin");
    let (_, history) = status_of(&platform, &bob_cookie, "/history").await;
    assert!(!history.contains("field notes") && !history.contains("Share link"), "bob's history holds none of ann's");
    let (_, search) = status_of(&platform, &bob_cookie, &format!("/search?q={SEARCH_WORD}")).await;
    assert!(search.contains("Nothing found"), "bob's search finds none of ann's messages");
    // Ann's session still works for her and only her.
    let (status, _) = status_of(&platform, &ann_cookie, "/files").await;
    assert_eq!(status, 303, "ann logged out: her old session cookie no longer opens pages");
    log_out(&bob).await;

    // The admin sees six nodes, up.
    log_in(&bob, &platform, ADMIN_USERNAME, ADMIN_PASSWORD).await;
    bob.goto(&platform.url("/admin")).await.expect("admin");
    let nodes = bob.find_all(Locator::Css("tr.node")).await.expect("nodes");
    assert_eq!(nodes.len(), 6, "six storage nodes");
    assert_eq!(bob.find_all(Locator::Css("tr.node td.up")).await.expect("up").len(), 6, "all up");
    let listed = platform.files.clone().list_nodes(ListNodesRequest::default()).await.map(|nodes| nodes.into_inner().nodes.len());
    assert!(listed.is_err(), "storage refuses an unauthenticated ListNodes: the page used the admin's own token");
    screenshots(&bob, "admin").await;
    // The last admin cannot give up the role.
    let own_role = bob.form(Locator::Css(&format!("form[action='/admin/accounts/{ADMIN_USERNAME}/role']"))).await.expect("the admin's role form");
    own_role.set_by_name("role", "user").await.expect("choose user");
    own_role.submit().await.expect("demote");
    let refusal = css(&bob, "#error-message").await.text().await.expect("message");
    assert!(refusal.contains("last admin"), "{refusal}");
    bob.goto(&platform.url("/admin")).await.expect("admin");
    // A backup made from the page, followed to its end, then verified.
    css(&bob, "#create-backup").await.click().await.expect("create a backup");
    wait_for_path(&bob, "/admin/jobs/").await;
    let finished = wait_until(Duration::from_secs(120), || async {
        bob.find(Locator::Css("#job-outcome")).await.is_ok_and(|_| true)
            && bob.source().await.is_ok_and(|html| html.contains("written:") || html.contains("class=\"error\""))
    })
    .await;
    let outcome = css(&bob, "#job-outcome").await.text().await.expect("outcome");
    assert!(finished && outcome.contains("written:"), "the backup finishes: {outcome}");
    bob.goto(&platform.url("/admin")).await.expect("admin");
    css(&bob, "table.backups form button").await.click().await.expect("verify the backup");
    wait_for_path(&bob, "/admin/jobs/").await;
    let verified = wait_until(Duration::from_secs(120), || async {
        bob.source().await.is_ok_and(|html| html.contains("is intact") || html.contains("has problems") || html.contains("class=\"error\""))
    })
    .await;
    let outcome = css(&bob, "#job-outcome").await.text().await.expect("outcome");
    assert!(verified && outcome.contains("is intact"), "the backup verifies: {outcome}");
    bob.close().await.expect("close");
}

/// The `cv_session` cookie of the browser's session.
async fn session_cookie(client: &Client) -> String {
    let cookie = client.get_named_cookie("cv_session").await.expect("the session cookie");
    assert_eq!(cookie.http_only(), Some(true), "the session cookie is HttpOnly");
    format!("cv_session={}", cookie.value())
}
