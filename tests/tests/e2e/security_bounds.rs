//! Bounds found by attacking the running platform:
//! - a server path is for admins only, checked before the path is touched, and an error on a
//!   server path never describes the content of a file that is not an export;
//! - a zip bomb (10 GiB of zeros in about 10 MiB) and a zip with too many entries are refused
//!   with RESOURCE_EXHAUSTED, quickly, and leave nothing in the upload folder;
//! - a share link's password travels in a header or a POST form, never the URL, and a link
//!   answers 429 after too many wrong passwords, even to the right one.

use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use chatvault_common::config::ServiceConfig;
use chatvault_common::test_support::{service_environment, unique_topic_prefix};
use chatvault_proto::ingest::v1::ingest_service_client::IngestServiceClient;
use chatvault_proto::ingest::v1::{
    import_update, upload_export_request, ExportFileChunk, ImportExportRequest, ImportSummary, UploadExportHeader, UploadExportRequest,
};
use chatvault_proto::storage::v1::CreateShareLinkRequest;
use futures::StreamExt;
use tokio_util::sync::CancellationToken;
use tonic::transport::Channel;
use tonic::Code;

use crate::accounts::{authorized, unique_name, AuthPlatform, ADMIN_PASSWORD, ADMIN_USERNAME};
use crate::files_support::{http_request, random_bytes, FilesPlatform, HttpResponse};
use crate::helpers::{connect, fixture};

/// Runs ImportExport of `path` with `token` to its end.
async fn import_server_path(ingest: &IngestServiceClient<Channel>, path: &Path, token: &str) -> Result<ImportSummary, tonic::Status> {
    let request = ImportExportRequest { path: path.display().to_string(), ..Default::default() };
    let mut updates = ingest.clone().import_export(authorized(request, token)).await?.into_inner();
    finish_import(&mut updates).await
}

async fn finish_import(updates: &mut tonic::Streaming<chatvault_proto::ingest::v1::ImportUpdate>) -> Result<ImportSummary, tonic::Status> {
    let mut summary = None;
    while let Some(update) = updates.message().await? {
        if let Some(import_update::Update::Summary(done)) = update.update {
            summary = Some(done);
        }
    }
    summary.ok_or_else(|| tonic::Status::internal("the import stream ended without a summary"))
}

fn upload_header() -> UploadExportRequest {
    UploadExportRequest { item: Some(upload_export_request::Item::Header(UploadExportHeader::default())) }
}

fn upload_chunk(relative_path: &str, data: Vec<u8>) -> UploadExportRequest {
    UploadExportRequest { item: Some(upload_export_request::Item::Chunk(ExportFileChunk { relative_path: relative_path.to_owned(), data })) }
}

#[tokio::test]
async fn server_paths_are_for_admins_and_errors_never_describe_other_files() {
    let platform = AuthPlatform::start().await;
    let ingest = IngestServiceClient::new(platform.start_ingest().await);
    let username = unique_name("mallory");
    platform.register(&username, "correct horse 51").await.expect("registers");
    let user = platform.login(&username, "correct horse 51").await.expect("logs in");
    let admin = platform.login(ADMIN_USERNAME, ADMIN_PASSWORD).await.expect("admin logs in");

    // An ordinary account gets the same refusal for a secret, a missing path and a real
    // export: the path is never touched, so not even its existence shows.
    let mut refusals = Vec::new();
    for path in [PathBuf::from("/etc/passwd"), PathBuf::from("/no/such/folder"), fixture("sample-export")] {
        let refused = import_server_path(&ingest, &path, &user.access_token).await.expect_err("not an admin");
        assert_eq!(refused.code(), Code::PermissionDenied, "{}: {}", path.display(), refused.message());
        refusals.push(refused.message().to_owned());
    }
    assert!(refusals.iter().all(|message| *message == refusals[0]), "one answer for every path: {refusals:?}");
    assert!(refusals[0].contains("admin") && refusals[0].contains("upload"), "{}", refusals[0]);

    // An admin's server path that is not an export is named as such, with nothing of its
    // content: by its name (not even opened), by its first byte, and by the parser (a file
    // that opens like JSON and then is not).
    let by_name = import_server_path(&ingest, Path::new("/etc/passwd"), &admin.access_token).await.expect_err("not an export");
    assert_eq!(by_name.code(), Code::InvalidArgument);
    assert_eq!(by_name.message(), "/etc/passwd is not a Telegram export (no result.json or messages.html)");
    let scratch = tempfile::tempdir().expect("temp dir");
    for (name, content) in [("accounts.json", "root:x:0:0:root:/root:/bin/bash\n"), ("braced.json", "{root:x:0:0:root:/root:/bin/bash}\n")] {
        let disguised = scratch.path().join(name);
        std::fs::write(&disguised, content).expect("write");
        let refused = import_server_path(&ingest, &disguised, &admin.access_token).await.expect_err("not an export");
        assert_eq!(refused.code(), Code::InvalidArgument);
        assert!(refused.message().contains(&format!("{name} is not a Telegram export")), "{}", refused.message());
        for leak in ["byte", "line", "character", "'r'", "root:"] {
            assert!(!refused.message().contains(leak), "the error describes {name} ({leak}): {}", refused.message());
        }
    }

    // Admins still import server paths.
    let summary = import_server_path(&ingest, &fixture("sample-export"), &admin.access_token).await.expect("the admin imports");
    assert_eq!(summary.messages, 8);

    // The caller's own bytes keep the parser's detail, named relative to the upload.
    let requests = vec![upload_header(), upload_chunk("result.json", b"root:x:0:0".to_vec())];
    let mut updates =
        ingest.clone().upload_export(authorized(futures::stream::iter(requests), &user.access_token)).await.expect("upload starts").into_inner();
    let own_bytes = finish_import(&mut updates).await.expect_err("not JSON");
    assert_eq!(own_bytes.code(), Code::InvalidArgument);
    assert!(own_bytes.message().starts_with("result.json: at byte 0"), "detail, relative to the upload: {}", own_bytes.message());
}

/// Ingest alone, with auth off and its own upload folder.
struct IngestWithUploadFolder {
    ingest: IngestServiceClient<Channel>,
    upload_folder: tempfile::TempDir,
    shutdown: CancellationToken,
}

impl Drop for IngestWithUploadFolder {
    fn drop(&mut self) {
        self.shutdown.cancel();
    }
}

impl IngestWithUploadFolder {
    async fn start(extra: &[(&str, &str)]) -> Self {
        crate::helpers::init_test_logging();
        let upload_folder = tempfile::tempdir().expect("temp dir");
        // Uploads are refused or imported without the database; ingest has none of its own.
        let mut environment = service_environment("postgres://unused@127.0.0.1:5432/unused", &unique_topic_prefix());
        environment.insert("CHATVAULT_INGEST_UPLOAD_DIR".to_owned(), upload_folder.path().display().to_string());
        environment.extend(extra.iter().map(|(key, value)| ((*key).to_owned(), (*value).to_owned())));
        let config = ServiceConfig::from_env_map("ingest", chatvault_ingest::DEFAULT_PORTS, &environment).expect("ingest config");
        let app = chatvault_ingest::App::build(config).await.expect("ingest starts (is the stack up? scripts/stack.sh up)");
        let address = app.grpc_addr();
        let shutdown = CancellationToken::new();
        tokio::spawn(app.run_until_stopped(shutdown.clone()));
        Self { ingest: IngestServiceClient::new(connect(address).await), upload_folder, shutdown }
    }

    /// Uploads the file at `archive` as `name`, read from disk one MiB at a time.
    async fn upload_file(&self, archive: &Path, name: &str) -> Result<ImportSummary, tonic::Status> {
        let file = std::fs::File::open(archive).expect("open archive");
        let name = name.to_owned();
        let chunks = futures::stream::unfold(file, move |mut file| {
            let name = name.clone();
            async move {
                let mut buffer = vec![0u8; 1 << 20];
                let read = file.read(&mut buffer).expect("read archive");
                (read > 0).then(|| {
                    buffer.truncate(read);
                    (upload_chunk(&name, buffer), file)
                })
            }
        });
        let requests = futures::stream::iter([upload_header()]).chain(chunks);
        let mut updates = self.ingest.clone().upload_export(requests).await?.into_inner();
        finish_import(&mut updates).await
    }

    /// Returns what the upload folder holds (every upload gets a folder in it).
    fn upload_folder_entries(&self) -> Vec<PathBuf> {
        std::fs::read_dir(self.upload_folder.path()).expect("list upload folder").map(|entry| entry.expect("entry").path()).collect()
    }
}

/// Writes a zip of `entries` entries of `entry_bytes` zeros each to `path`. The zeros are
/// deflated once, streamed through a small buffer, then their compressed bytes are copied
/// as every further entry, so building 10 GiB takes a fraction of a second.
fn write_zip_bomb(path: &Path, entries: usize, entry_bytes: u64) -> u64 {
    let seed_path = path.with_extension("seed.zip");
    let options = zip::write::SimpleFileOptions::default().compression_method(zip::CompressionMethod::Deflated).large_file(entry_bytes >= 1 << 32);
    {
        let mut seed = zip::ZipWriter::new(std::fs::File::create(&seed_path).expect("create seed"));
        seed.start_file("zeros.bin", options).expect("seed entry");
        let zeros = vec![0u8; 1 << 20];
        let mut left = entry_bytes;
        while left > 0 {
            let step = left.min(zeros.len() as u64) as usize;
            seed.write_all(&zeros[..step]).expect("write zeros");
            left -= step as u64;
        }
        seed.finish().expect("finish seed");
    }
    let mut seed = zip::ZipArchive::new(std::fs::File::open(&seed_path).expect("open seed")).expect("read seed");
    let mut bomb = zip::ZipWriter::new(std::fs::File::create(path).expect("create bomb"));
    for index in 0..entries {
        let entry = seed.by_index_raw(0).expect("seed entry");
        bomb.raw_copy_file_rename(entry, format!("ChatExport_2026-11-22/zeros-{index:03}.bin")).expect("copy entry");
    }
    bomb.finish().expect("finish bomb");
    std::fs::remove_file(&seed_path).expect("remove seed");
    std::fs::metadata(path).expect("stat bomb").len()
}

#[tokio::test]
async fn zip_bombs_and_zips_with_too_many_entries_are_refused_and_leave_nothing() {
    let platform = IngestWithUploadFolder::start(&[("CHATVAULT_INGEST_MAX_ZIP_ENTRIES", "1000")]).await;
    let scratch = tempfile::tempdir().expect("temp dir");

    // 100 entries of 100 MiB of zeros: about 10 GiB from about 10 MiB.
    let bomb_path = scratch.path().join("ChatExport_2026-11-22.zip");
    let built = Instant::now();
    let bomb_bytes = write_zip_bomb(&bomb_path, 100, 100 << 20);
    eprintln!("zip bomb: {bomb_bytes} bytes unpacking to {} bytes, built in {:?}", 100u64 * (100 << 20), built.elapsed());
    assert!(bomb_bytes < 16 << 20, "the bomb is small: {bomb_bytes} bytes");
    let started = Instant::now();
    let refused = platform.upload_file(&bomb_path, "ChatExport_2026-11-22.zip").await.expect_err("the bomb is refused");
    let refused_after = started.elapsed();
    eprintln!("zip bomb refused after {refused_after:?}: {}", refused.message());
    assert_eq!(refused.code(), Code::ResourceExhausted, "{}", refused.message());
    assert!(refused.message().contains("unpacks to more than"), "{}", refused.message());
    assert!(refused_after < Duration::from_secs(30), "refused quickly, not after unpacking: {refused_after:?}");
    assert_eq!(platform.upload_folder_entries(), Vec::<PathBuf>::new(), "nothing of the bomb stays on disk");

    // Sizes in data descriptors (after the data) declare nothing up front: the bytes
    // written stop this one, at the default ratio's allowance of 64 MiB.
    let streamed_path = scratch.path().join("streamed.zip");
    {
        let options = zip::write::SimpleFileOptions::default().compression_method(zip::CompressionMethod::Deflated);
        let mut streamed = zip::ZipWriter::new_stream(std::fs::File::create(&streamed_path).expect("create"));
        streamed.start_file("ChatExport/zeros.bin", options).expect("entry");
        let zeros = vec![0u8; 1 << 20];
        for _ in 0..256 {
            streamed.write_all(&zeros).expect("write zeros");
        }
        streamed.finish().expect("finish");
    }
    let started = Instant::now();
    let refused = platform.upload_file(&streamed_path, "streamed.zip").await.expect_err("refused while unpacking");
    eprintln!("streamed zip bomb refused after {:?}: {}", started.elapsed(), refused.message());
    assert_eq!(refused.code(), Code::ResourceExhausted, "{}", refused.message());
    assert_eq!(platform.upload_folder_entries(), Vec::<PathBuf>::new(), "nothing of it stays on disk");

    // 1,001 empty entries against a limit of 1,000.
    let many_path = scratch.path().join("many.zip");
    {
        let options = zip::write::SimpleFileOptions::default().compression_method(zip::CompressionMethod::Stored);
        let mut many = zip::ZipWriter::new(std::fs::File::create(&many_path).expect("create"));
        for index in 0..1001 {
            many.start_file(format!("ChatExport/{index}.txt"), options).expect("entry");
        }
        many.finish().expect("finish");
    }
    let refused = platform.upload_file(&many_path, "many.zip").await.expect_err("too many entries");
    assert_eq!(refused.code(), Code::ResourceExhausted, "{}", refused.message());
    assert!(refused.message().contains("1001 entries"), "{}", refused.message());
    assert_eq!(platform.upload_folder_entries(), Vec::<PathBuf>::new(), "nothing of it stays on disk");

    // A real export zip still imports after all that, and its folder goes afterwards too.
    let export_path = scratch.path().join("export.zip");
    {
        let options = zip::write::SimpleFileOptions::default().compression_method(zip::CompressionMethod::Deflated);
        let mut export = zip::ZipWriter::new(std::fs::File::create(&export_path).expect("create"));
        export.start_file("ChatExport_2026-11-22/result.json", options).expect("entry");
        export.write_all(&std::fs::read(fixture("sample-export/result.json")).expect("sample")).expect("write");
        export.finish().expect("finish");
    }
    let summary = platform.upload_file(&export_path, "export.zip").await.expect("the export imports");
    assert_eq!(summary.messages, 8);
    assert_eq!(platform.upload_folder_entries(), Vec::<PathBuf>::new(), "the imported upload is removed");
}

/// Returns `text` as a form value (`application/x-www-form-urlencoded`).
fn form_encoded(text: &str) -> String {
    text.bytes()
        .map(|byte| match byte {
            b' ' => "+".to_owned(),
            byte if byte.is_ascii_alphanumeric() || b"-._*".contains(&byte) => (byte as char).to_string(),
            byte => format!("%{byte:02X}"),
        })
        .collect()
}

async fn post_password(platform: &FilesPlatform, path: &str, password: &str) -> HttpResponse {
    let body = format!("password={}", form_encoded(password));
    http_request(platform.storage_http, "POST", path, &[("content-type", "application/x-www-form-urlencoded")], body.as_bytes()).await
}

async fn get_with_header(platform: &FilesPlatform, path: &str, password: &str) -> HttpResponse {
    http_request(platform.storage_http, "GET", path, &[("X-Share-Password", password)], b"").await
}

fn error_of(response: &HttpResponse) -> String {
    serde_json::from_slice::<serde_json::Value>(&response.body).ok().and_then(|body| body["error"].as_str().map(str::to_owned)).unwrap_or_default()
}

#[tokio::test]
async fn share_link_passwords_travel_outside_the_url_and_wrong_ones_are_limited_per_link() {
    let (platform, _nodes) = FilesPlatform::start_with_nodes(6, &[("CHATVAULT_STORAGE_SHARE_PASSWORD_FAILURES_PER_MINUTE", "3")]).await;
    let bytes = random_bytes(300_000);
    let stored = platform.upload_visible("shared.bin", bytes.clone()).await.expect("upload");
    let password = "correct horse & battery=staple+1";
    let create_link = || {
        let mut files = platform.files.clone();
        let request = CreateShareLinkRequest {
            file_id: stored.file_id.clone(),
            expires_in_seconds: 3600,
            password: password.to_owned(),
            consistency_token: None,
        };
        async move { files.create_share_link(request).await.expect("share link").into_inner() }
    };
    let link = create_link().await;

    let by_post = post_password(&platform, &link.path, password).await;
    assert_eq!(by_post.status, 200, "{}", error_of(&by_post));
    assert!(by_post.body == bytes, "POST downloads the exact bytes");
    let by_header = get_with_header(&platform, &link.path, password).await;
    assert_eq!(by_header.status, 200, "{}", error_of(&by_header));
    assert!(by_header.body == bytes, "the header downloads the exact bytes");
    let ranged = http_request(platform.storage_http, "GET", &link.path, &[("X-Share-Password", password), ("Range", "bytes=10-19")], b"").await;
    assert_eq!((ranged.status, ranged.body.as_slice()), (206, &bytes[10..20]));

    let without = http_request(platform.storage_http, "GET", &link.path, &[], b"").await;
    assert_eq!(without.status, 401);
    assert!(error_of(&without).contains("X-Share-Password"), "says where the password goes: {}", error_of(&without));
    let wrong = get_with_header(&platform, &link.path, "guess").await;
    assert_eq!(wrong.status, 401, "{}", error_of(&wrong));

    // The password in the URL is refused, right or wrong, on GET and POST alike.
    let in_query = format!("{}?password={}", link.path, form_encoded(password));
    let by_query = http_request(platform.storage_http, "GET", &in_query, &[], b"").await;
    assert_eq!(by_query.status, 400);
    assert!(error_of(&by_query).contains("X-Share-Password") && error_of(&by_query).contains("POST"), "{}", error_of(&by_query));
    let post_with_query = post_password(&platform, &in_query, password).await;
    assert_eq!(post_with_query.status, 400);

    // Three wrong passwords on another link: then it answers 429 even to the right one.
    let guessed = create_link().await;
    for guess in ["123456", "password", "qwerty"] {
        assert_eq!(post_password(&platform, &guessed.path, guess).await.status, 401, "{guess}");
    }
    let limited = get_with_header(&platform, &guessed.path, password).await;
    assert_eq!(limited.status, 429, "{}", error_of(&limited));
    let retry_after: u64 = limited.headers.get("retry-after").and_then(|value| value.parse().ok()).expect("Retry-After");
    assert!((1..=60).contains(&retry_after), "{retry_after}");
    assert_eq!(post_password(&platform, &guessed.path, password).await.status, 429);
    // Only that link: the first one (one wrong password so far) still opens.
    assert_eq!(get_with_header(&platform, &link.path, password).await.status, 200);

    let unknown = http_request(platform.storage_http, "GET", &format!("/s/{}", "A".repeat(43)), &[("X-Share-Password", password)], b"").await;
    assert_eq!(unknown.status, 404);
}

#[tokio::test]
async fn a_flood_of_password_guesses_is_answered_503_instead_of_queued() {
    let settings = [
        ("CHATVAULT_STORAGE_SHARE_PASSWORD_FAILURES_PER_MINUTE", "1000"),
        ("CHATVAULT_STORAGE_SHARE_PASSWORD_CHECKS", "1"),
        ("CHATVAULT_STORAGE_SHARE_PASSWORD_WAIT_MS", "1"),
    ];
    let (platform, _nodes) = FilesPlatform::start_with_nodes(6, &settings).await;
    let stored = platform.upload_visible("flooded.bin", random_bytes(1000)).await.expect("upload");
    let request =
        CreateShareLinkRequest { file_id: stored.file_id.clone(), expires_in_seconds: 3600, password: "s3cret".to_owned(), consistency_token: None };
    let link = platform.files.clone().create_share_link(request).await.expect("share link").into_inner();

    // One Argon2 check at a time and a wait of one millisecond: of 40 guesses at once, the
    // ones that find the slot taken are told to come back instead of piling up.
    let started = Instant::now();
    let guesses = (0..40).map(|guess| {
        let path = link.path.clone();
        let address = platform.storage_http;
        async move {
            let guess = format!("guess-{guess}");
            http_request(address, "GET", &path, &[("X-Share-Password", guess.as_str())], b"").await
        }
    });
    let answers = futures::future::join_all(guesses).await;
    let busy: Vec<&HttpResponse> = answers.iter().filter(|answer| answer.status == 503).collect();
    eprintln!("40 parallel guesses answered in {:?}: {} busy (503), {} checked (401)", started.elapsed(), busy.len(), answers.len() - busy.len());
    assert!(answers.iter().all(|answer| answer.status == 401 || answer.status == 503), "{:?}", answers.iter().map(|a| a.status).collect::<Vec<_>>());
    assert!(!busy.is_empty(), "some guesses found the one check slot taken");
    assert!(busy.iter().all(|answer| answer.headers.get("retry-after").is_some_and(|value| value == "1")));
    assert_eq!(get_with_header(&platform, &link.path, "s3cret").await.status, 200, "the right password still opens the link");
}
