//! Backups copied to an S3-compatible bucket, against moto's S3 server (a real S3 wire
//! protocol; `scripts/tools.sh` installs it into .state/python): a backup lands in the
//! bucket file by file with the manifest's sizes; a second, empty platform whose backup
//! folder is empty restores it by id from the bucket and answers as the first did; large
//! files go up in parts and a changed object is refused on the way back; an unreachable
//! bucket fails CreateBackup with UNAVAILABLE while the local backup stays complete.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use chatvault_backup::manifest::{FileEntry, Manifest, MANIFEST_CHECKSUM_FILE, MANIFEST_FILE, SCHEMA_VERSION};
use chatvault_backup::remote::{RemoteSettings, RemoteStore};
use chatvault_proto::backup::v1::{create_backup_response, BackupFormat, CreateBackupRequest, ListBackupsRequest, VerifyBackupRequest};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use super::backup::{admin, python, BackupPlatform};
use super::helpers::{fixture, import_with, wait_until};

const ACCESS_KEY_ID: &str = "chatvault-test";
const SECRET_ACCESS_KEY: &str = "chatvault-test-secret";

/// moto's S3 server on a free port, stopped when dropped.
struct MotoServer {
    child: Child,
    port: u16,
    _log: tempfile::NamedTempFile,
}

impl Drop for MotoServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl MotoServer {
    async fn start() -> Self {
        let port = free_port();
        let log = tempfile::NamedTempFile::new().expect("log file");
        let child = Command::new(python())
            .args(["-m", "moto.server", "-H", "127.0.0.1", "-p", &port.to_string()])
            .stdin(Stdio::null())
            .stdout(log.reopen().expect("log"))
            .stderr(log.reopen().expect("log"))
            .spawn()
            .expect("moto starts (scripts/tools.sh installs moto[server] into .state/python)");
        let mut server = Self { child, port, _log: log };
        let up = wait_until(Duration::from_secs(60), || async { http_request(port, "GET", "/", &[]).await.is_ok() }).await;
        if !up {
            let exited = server.child.try_wait().ok().flatten();
            let output = std::fs::read_to_string(server._log.path()).unwrap_or_default();
            panic!("moto did not answer on port {port} (exited: {exited:?}):\n{output}");
        }
        server
    }

    fn endpoint(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// Creates a bucket with a fresh name; returns the name.
    async fn create_bucket(&self) -> String {
        let bucket = format!("chatvault-{}", &uuid::Uuid::new_v4().simple().to_string()[..12]);
        let status = http_request(self.port, "PUT", &format!("/{bucket}"), &[]).await.expect("create bucket");
        assert_eq!(status, 200, "moto creates bucket {bucket}");
        bucket
    }
}

impl MotoServer {
    /// Writes `body` under `key` with boto3 (which moto brings along), behind our client's back.
    fn put_object(&self, bucket: &str, key: &str, body: &str) {
        let script = "import sys, boto3\n\
            s3 = boto3.client('s3', endpoint_url=sys.argv[1], region_name='us-east-1', aws_access_key_id=sys.argv[2], aws_secret_access_key=sys.argv[3])\n\
            s3.put_object(Bucket=sys.argv[4], Key=sys.argv[5], Body=sys.argv[6].encode())\n";
        let output = Command::new(python())
            .args(["-c", script, &self.endpoint(), ACCESS_KEY_ID, SECRET_ACCESS_KEY, bucket, key, body])
            .output()
            .expect("python runs");
        assert!(output.status.success(), "boto3 put_object failed: {}", String::from_utf8_lossy(&output.stderr));
    }
}

fn free_port() -> u16 {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind port 0");
    listener.local_addr().expect("local addr").port()
}

/// One plain, unsigned HTTP/1.1 request (moto accepts those); returns the status code.
async fn http_request(port: u16, method: &str, path: &str, body: &[u8]) -> std::io::Result<u16> {
    let mut stream = tokio::net::TcpStream::connect(("127.0.0.1", port)).await?;
    let head = format!("{method} {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n", body.len());
    stream.write_all(head.as_bytes()).await?;
    stream.write_all(body).await?;
    let mut response = Vec::new();
    stream.read_to_end(&mut response).await?;
    let status_line = String::from_utf8_lossy(&response).lines().next().unwrap_or_default().to_owned();
    status_line
        .split_whitespace()
        .nth(1)
        .and_then(|code| code.parse().ok())
        .ok_or_else(|| std::io::Error::new(std::io::ErrorKind::InvalidData, format!("not an HTTP answer: {status_line:?}")))
}

/// The backup service's S3 settings for `bucket` at `endpoint`.
fn s3_environment(endpoint: &str, bucket: &str) -> Vec<(&'static str, String)> {
    vec![
        ("CHATVAULT_BACKUP_S3_URL", format!("s3://{bucket}/chatvault/backups")),
        ("CHATVAULT_BACKUP_S3_ENDPOINT", endpoint.to_owned()),
        ("CHATVAULT_BACKUP_S3_ACCESS_KEY_ID", ACCESS_KEY_ID.to_owned()),
        ("CHATVAULT_BACKUP_S3_SECRET_ACCESS_KEY", SECRET_ACCESS_KEY.to_owned()),
        ("CHATVAULT_BACKUP_S3_MAX_RETRIES", "1".to_owned()),
    ]
}

fn as_pairs<'a>(environment: &'a [(&'static str, String)]) -> Vec<(&'static str, &'a str)> {
    environment.iter().map(|(key, value)| (*key, value.as_str())).collect()
}

/// The bucket as the test sees it, through the same client the service uses.
fn remote_store(endpoint: &str, bucket: &str, prefix: &str) -> RemoteStore {
    let settings = RemoteSettings {
        bucket: bucket.to_owned(),
        prefix: prefix.to_owned(),
        endpoint: Some(endpoint.to_owned()),
        region: "us-east-1".into(),
        access_key_id: Some(ACCESS_KEY_ID.into()),
        secret_access_key: Some(chatvault_backup::remote::SecretText(chatvault_common::config::Secret::new(SECRET_ACCESS_KEY))),
        allow_http: true,
        max_retries: 1,
    };
    RemoteStore::from_settings(&settings).expect("s3 client")
}

async fn remote_url_in_catalog(platform: &BackupPlatform, backup_id: &str) -> Option<String> {
    let (client, connection) = tokio_postgres::connect(platform.database.url.expose(), tokio_postgres::NoTls).await.expect("connect");
    tokio::spawn(connection);
    client.query_one("SELECT remote_url FROM backups WHERE backup_id = $1", &[&backup_id]).await.expect("catalog row").get(0)
}

#[tokio::test]
async fn a_backup_in_the_bucket_restores_into_an_empty_platform_by_id() {
    let moto = MotoServer::start().await;
    let bucket = moto.create_bucket().await;
    let environment = s3_environment(&moto.endpoint(), &bucket);
    let backups = tempfile::tempdir().expect("temp dir");
    let source = BackupPlatform::start(0, backups.path(), &as_pairs(&environment)).await;
    let summary = import_with(&mut source.ingest.clone(), &fixture("sample-export")).await.expect("import");
    let token = summary.consistency_token.as_ref().map(|token| token.value.clone()).unwrap_or_default();
    let before = source.answers(Some(&token)).await;
    assert!(before.message_count > 0, "the source holds messages");

    let backup = source.create_backup(BackupFormat::Both, true).await;
    let folder = PathBuf::from(&backup.path);
    let manifest = Manifest::read(&folder).expect("the local backup is complete");

    // Every file of the manifest, and the manifest, is in the bucket with its size.
    let bucket_view = remote_store(&moto.endpoint(), &bucket, "chatvault/backups");
    let objects = bucket_view.list_backup_objects(&backup.id).await.expect("list the bucket");
    let mut expected: Vec<(String, u64)> = manifest.files.iter().map(|file| (file.path.clone(), file.bytes)).collect();
    for name in [MANIFEST_FILE, MANIFEST_CHECKSUM_FILE] {
        expected.push((name.to_owned(), std::fs::metadata(folder.join(name)).expect("manifest").len()));
    }
    expected.sort();
    assert_eq!(objects, expected, "the bucket holds exactly the backup's files with their sizes");
    assert!(manifest.files.iter().any(|file| file.kind == "parquet") && manifest.files.iter().any(|file| file.kind == "csv"));
    assert_eq!(bucket_view.list_backup_ids().await.expect("ids"), vec![backup.id.clone()]);
    assert_eq!(remote_url_in_catalog(&source, &backup.id).await, Some(format!("s3://{bucket}/chatvault/backups/{}/", backup.id)));

    // The local copy is gone and the platform with it; a new, empty one has only the bucket.
    std::fs::remove_dir_all(&folder).expect("remove the local backup");
    drop(source);
    let target_backups = tempfile::tempdir().expect("temp dir");
    let target = BackupPlatform::start(0, target_backups.path(), &as_pairs(&environment)).await;
    let listed = target.backup.clone().list_backups(admin(ListBackupsRequest {})).await.expect("list").into_inner().backups;
    assert!(listed.is_empty(), "ListBackups shows the catalog; bucket-only backups are fetched by id");
    let unknown = target.restore("20990101T000000Z-00000000").await.expect_err("no such backup");
    assert_eq!(unknown.code(), tonic::Code::NotFound, "{unknown}");

    let restored = target.restore(&backup.id).await.expect("restore from the bucket");
    let rows: std::collections::HashMap<&str, u64> = backup.tables.iter().map(|table| (table.name.as_str(), table.rows)).collect();
    for table in &restored.tables {
        assert_eq!((table.restored, table.already_present), (rows[table.name.as_str()], 0), "{} restored whole", table.name);
    }
    let after = target.answers(Some(&restored.consistency_token)).await;
    assert_eq!(after, before, "the restored platform answers as the first did");

    // The fetched backup is on disk, catalogued with its remote copy, and verifies.
    let fetched = target_backups.path().join(&backup.id);
    assert_eq!(Manifest::read(&fetched).expect("fetched manifest"), manifest);
    let listed = target.backup.clone().list_backups(admin(ListBackupsRequest {})).await.expect("list").into_inner().backups;
    assert_eq!(listed.iter().map(|listed| listed.id.as_str()).collect::<Vec<_>>(), vec![backup.id.as_str()]);
    assert_eq!(remote_url_in_catalog(&target, &backup.id).await, Some(format!("s3://{bucket}/chatvault/backups/{}/", backup.id)));
    let mut verify =
        target.backup.clone().verify_backup(admin(VerifyBackupRequest { backup_id: backup.id.clone() })).await.expect("verify").into_inner();
    let mut verified = None;
    while let Some(message) = verify.message().await.expect("verify stream") {
        if let Some(chatvault_proto::backup::v1::verify_backup_response::Message::Result(result)) = message.message {
            verified = Some(result);
        }
    }
    let verified = verified.expect("a verify result");
    assert!(verified.ok, "{:?}", verified.problems);
}

#[tokio::test]
async fn large_files_go_to_the_bucket_in_parts_and_a_changed_object_is_refused_on_the_way_back() {
    let moto = MotoServer::start().await;
    let bucket = moto.create_bucket().await;
    let store = remote_store(&moto.endpoint(), &bucket, "parts").with_part_size(5 << 20);
    let local = tempfile::tempdir().expect("temp dir");
    let backup_id = "20260101T000000Z-multipart";
    let folder = local.path().join(backup_id);
    std::fs::create_dir_all(folder.join("files")).expect("folder");
    let big: Vec<u8> = (0..(11u32 << 20) + 123).map(|index| (index.wrapping_mul(2_654_435_761) >> 9) as u8).collect();
    let small = b"a small file".to_vec();
    let mut files = Vec::new();
    for bytes in [&big, &small] {
        let sha256 = hex_sha256(bytes);
        std::fs::write(folder.join("files").join(&sha256), bytes).expect("write");
        files.push(FileEntry { path: format!("files/{sha256}"), kind: "blob".into(), table: None, rows: None, bytes: bytes.len() as u64, sha256 });
    }
    files.sort_by(|left, right| left.path.cmp(&right.path));
    let manifest = Manifest {
        backup_id: backup_id.into(),
        schema_version: SCHEMA_VERSION.into(),
        created_at: "2026-01-01T00:00:00.000Z".into(),
        created_at_unix_ms: 1_767_225_600_000,
        origin: "manual".into(),
        formats: vec!["parquet".into()],
        chat_ids: vec![],
        with_files: true,
        positions: vec![],
        tables: vec![],
        files,
    };
    manifest.write(&folder).expect("manifest");

    store.upload_backup(&folder, &manifest).await.expect("upload");
    let objects = store.list_backup_objects(backup_id).await.expect("list");
    assert!(objects.contains(&(format!("files/{}", hex_sha256(&big)), big.len() as u64)), "{objects:?}");

    let fetched = local.path().join("fetched").join(backup_id);
    assert_eq!(store.download_backup(backup_id, &fetched).await.expect("download"), manifest);
    assert_eq!(std::fs::read(fetched.join("files").join(hex_sha256(&big))).expect("read"), big);

    // Another body under the same key (same size): the download refuses it and leaves nothing.
    moto.put_object(&bucket, &format!("parts/{backup_id}/files/{}", hex_sha256(&small)), "A SMALL FILE");
    let again = local.path().join("again").join(backup_id);
    let error = store.download_backup(backup_id, &again).await.expect_err("refused");
    assert!(matches!(error, chatvault_backup::Error::Damaged(_)), "{error}");
    assert!(!again.exists());
}

#[tokio::test]
async fn an_unreachable_bucket_fails_create_backup_with_unavailable_and_keeps_the_local_backup() {
    let endpoint = format!("http://127.0.0.1:{}", free_port());
    let environment = s3_environment(&endpoint, "unreachable-bucket");
    let backups = tempfile::tempdir().expect("temp dir");
    let platform = BackupPlatform::start(0, backups.path(), &as_pairs(&environment)).await;
    import_with(&mut platform.ingest.clone(), &fixture("sample-export")).await.expect("import");

    let request = CreateBackupRequest { format: BackupFormat::Parquet as i32, chat_ids: Vec::new(), with_files: false };
    let mut stream = platform.backup.clone().create_backup(admin(request)).await.expect("create backup").into_inner();
    let status = loop {
        match stream.message().await {
            Ok(Some(message)) => {
                assert!(!matches!(message.message, Some(create_backup_response::Message::Backup(_))), "the backup is not reported done")
            }
            Ok(None) => panic!("the stream ended without an error"),
            Err(status) => break status,
        }
    };
    assert_eq!(status.code(), tonic::Code::Unavailable, "{status}");
    assert!(status.message().contains("unreachable-bucket"), "the message names the bucket: {}", status.message());

    let listed = platform.backup.clone().list_backups(admin(ListBackupsRequest {})).await.expect("list").into_inner().backups;
    assert_eq!(listed.len(), 1, "the local backup is catalogued");
    let folder = Path::new(&listed[0].path);
    assert!(folder.starts_with(backups.path()));
    let manifest = Manifest::read(folder).expect("the local backup is complete");
    assert_eq!(manifest.backup_id, listed[0].id);
    let verified = tokio::task::spawn_blocking({
        let folder = folder.to_path_buf();
        move || chatvault_backup::verify::verify_folder(&folder, None)
    })
    .await
    .expect("verify");
    assert!(verified.ok, "{:?}", verified.problems);
    assert_eq!(remote_url_in_catalog(&platform, &listed[0].id).await, None, "no remote copy is recorded");
}

fn hex_sha256(bytes: &[u8]) -> String {
    use sha2::Digest;
    hex::encode(sha2::Sha256::digest(bytes))
}
