//! The remote copy of backups in an S3-compatible bucket (`CHATVAULT_BACKUP_S3_URL`).
//!
//! After a backup is complete on disk, `upload_backup` copies it to
//! `<prefix>/<backup id>/…` in the bucket: every file the manifest lists, then
//! `manifest.sha256`, then `manifest.json` last, so a remote backup without a manifest is an
//! interrupted upload and is ignored. A restore or verify of a backup id that the local
//! catalog lacks fetches it back with `download_backup`, checking every file's size and
//! SHA-256 as it streams, into a hidden folder renamed into place at the end.
//!
//! Memory stays bounded: files up to one part are sent in one PUT; larger files stream as a
//! multipart upload of `part_size` parts with at most `PARTS_IN_FLIGHT` parts in flight, and
//! at most `FILES_IN_FLIGHT` files move at once.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use bytes::Bytes;
use chatvault_common::config::{Secret, ServiceConfig};
use futures::{StreamExt, TryStreamExt};
use object_store::aws::AmazonS3Builder;
use object_store::path::Path as ObjectPath;
use object_store::{ObjectStore, ObjectStoreExt, PutPayload, RetryConfig, WriteMultipart};
use sha2::{Digest, Sha256};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::manifest::{relative_path, Manifest, MANIFEST_CHECKSUM_FILE, MANIFEST_FILE};
use crate::Error;

/// Size of a multipart upload's parts; S3 wants at least 5 MiB for all but the last.
pub const DEFAULT_PART_SIZE: usize = 8 << 20;
/// Parts of one file being uploaded at the same time.
const PARTS_IN_FLIGHT: usize = 2;
/// Files being uploaded or downloaded at the same time.
const FILES_IN_FLIGHT: usize = 3;
/// Size of the reads from local files.
const READ_CHUNK: usize = 1 << 20;

/// Where the remote copies go: read from `CHATVAULT_BACKUP_S3_*`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RemoteSettings {
    /// The bucket, from `s3://<bucket>/<prefix>`.
    pub bucket: String,
    /// The folder inside the bucket, without leading or trailing `/`; may be empty.
    pub prefix: String,
    /// `CHATVAULT_BACKUP_S3_ENDPOINT`: an S3-compatible server (MinIO, moto); `None` = AWS.
    pub endpoint: Option<String>,
    /// `CHATVAULT_BACKUP_S3_REGION`, default `us-east-1`.
    pub region: String,
    /// `CHATVAULT_BACKUP_S3_ACCESS_KEY_ID`; `None` = the standard `AWS_*` variables.
    pub access_key_id: Option<String>,
    /// `CHATVAULT_BACKUP_S3_SECRET_ACCESS_KEY`; `None` = the standard `AWS_*` variables.
    pub secret_access_key: Option<SecretText>,
    /// `CHATVAULT_BACKUP_S3_ALLOW_HTTP`: default true when the endpoint is `http://`.
    pub allow_http: bool,
    /// `CHATVAULT_BACKUP_S3_MAX_RETRIES`: retries of a failed request, default 10.
    pub max_retries: usize,
}

/// A secret that compares equal by value (for settings tests) and never prints.
#[derive(Clone, Debug)]
pub struct SecretText(pub Secret);

impl PartialEq for SecretText {
    fn eq(&self, other: &Self) -> bool {
        self.0.expose() == other.0.expose()
    }
}

impl Eq for SecretText {}

impl RemoteSettings {
    /// Reads the `S3_*` settings; returns `None` when `S3_URL` is empty (no remote copy).
    pub fn from_config(config: &ServiceConfig) -> Result<Option<Self>, Error> {
        let url: String = config.setting("S3_URL", String::new())?;
        if url.trim().is_empty() {
            return Ok(None);
        }
        let (bucket, prefix) = parse_bucket_url(url.trim())?;
        let endpoint: String = config.setting("S3_ENDPOINT", String::new())?;
        let endpoint = Some(endpoint.trim().trim_end_matches('/').to_owned()).filter(|endpoint| !endpoint.is_empty());
        let plain_http_endpoint = endpoint.as_deref().is_some_and(|endpoint| endpoint.starts_with("http://"));
        let access_key_id: String = config.setting("S3_ACCESS_KEY_ID", String::new())?;
        Ok(Some(Self {
            bucket,
            prefix,
            endpoint,
            region: config.setting("S3_REGION", "us-east-1".to_owned())?,
            access_key_id: Some(access_key_id).filter(|value| !value.is_empty()),
            secret_access_key: config.secret_setting("S3_SECRET_ACCESS_KEY").map(SecretText),
            allow_http: config.setting("S3_ALLOW_HTTP", plain_http_endpoint)?,
            max_retries: config.setting("S3_MAX_RETRIES", 10usize)?,
        }))
    }
}

/// Splits `s3://bucket/some/prefix` into the bucket and the prefix (`some/prefix`).
pub fn parse_bucket_url(url: &str) -> Result<(String, String), Error> {
    let invalid = || Error::InvalidArgument(format!("CHATVAULT_BACKUP_S3_URL={url:?}: use s3://<bucket>[/<prefix>]"));
    let rest = url.strip_prefix("s3://").ok_or_else(invalid)?;
    let (bucket, prefix) = rest.split_once('/').unwrap_or((rest, ""));
    if bucket.is_empty() || bucket.contains(['?', '#', ' ']) {
        return Err(invalid());
    }
    let prefix = prefix.trim_matches('/').to_owned();
    if !prefix.is_empty() && ObjectPath::parse(&prefix).is_err() {
        return Err(invalid());
    }
    Ok((bucket.to_owned(), prefix))
}

/// One file of a backup moving between the folder and the bucket.
#[derive(Debug)]
struct Transfer {
    local: PathBuf,
    key: ObjectPath,
    bytes: u64,
    sha256: String,
}

impl Transfer {
    fn expected(&self) -> Expected<'_> {
        Expected { bytes: self.bytes, sha256: &self.sha256 }
    }
}

/// A bucket holding backups under a prefix.
#[derive(Clone)]
pub struct RemoteStore {
    store: Arc<dyn ObjectStore>,
    bucket: String,
    prefix: String,
    part_size: usize,
}

impl std::fmt::Debug for RemoteStore {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        formatter
            .debug_struct("RemoteStore")
            .field("bucket", &self.bucket)
            .field("prefix", &self.prefix)
            .field("part_size", &self.part_size)
            .finish_non_exhaustive()
    }
}

/// The size and SHA-256 a file must have.
#[derive(Clone, Copy, Debug)]
struct Expected<'a> {
    bytes: u64,
    sha256: &'a str,
}

impl RemoteStore {
    /// Builds the S3 client; no request is made until a backup moves.
    pub fn from_settings(settings: &RemoteSettings) -> Result<Self, Error> {
        // from_env brings in the standard AWS_* variables (and instance credentials);
        // the CHATVAULT_BACKUP_S3_* settings override them.
        let mut builder = AmazonS3Builder::from_env()
            .with_bucket_name(&settings.bucket)
            .with_region(&settings.region)
            .with_allow_http(settings.allow_http)
            .with_retry(RetryConfig { max_retries: settings.max_retries, ..RetryConfig::default() });
        if let Some(endpoint) = &settings.endpoint {
            builder = builder.with_endpoint(endpoint);
        }
        if let Some(access_key_id) = &settings.access_key_id {
            builder = builder.with_access_key_id(access_key_id);
        }
        if let Some(secret_access_key) = &settings.secret_access_key {
            builder = builder.with_secret_access_key(secret_access_key.0.expose());
        }
        let store = builder.build().map_err(|error| Error::InvalidArgument(format!("s3 bucket {}: {error}", settings.bucket)))?;
        Ok(Self::new(Arc::new(store), &settings.bucket, &settings.prefix))
    }

    /// Wraps any object store (`bucket` only names it in messages).
    pub fn new(store: Arc<dyn ObjectStore>, bucket: &str, prefix: &str) -> Self {
        Self { store, bucket: bucket.to_owned(), prefix: prefix.trim_matches('/').to_owned(), part_size: DEFAULT_PART_SIZE }
    }

    /// Uses parts of `part_size` bytes (at least 5 MiB); files up to that size go in one PUT.
    pub fn with_part_size(mut self, part_size: usize) -> Self {
        self.part_size = part_size.max(5 << 20);
        self
    }

    pub fn bucket(&self) -> &str {
        &self.bucket
    }

    /// Returns `s3://<bucket>/<prefix>`, where the backups go.
    pub fn url(&self) -> String {
        match self.prefix.as_str() {
            "" => format!("s3://{}", self.bucket),
            prefix => format!("s3://{}/{prefix}", self.bucket),
        }
    }

    /// Returns `s3://<bucket>/<prefix>/<backup id>/`, where the backup's copy goes.
    pub fn url_of(&self, backup_id: &str) -> String {
        format!("{}/{backup_id}/", self.url())
    }

    fn folder_key(&self, backup_id: &str) -> Result<ObjectPath, Error> {
        let folder = match self.prefix.as_str() {
            "" => backup_id.to_owned(),
            prefix => format!("{prefix}/{backup_id}"),
        };
        ObjectPath::parse(&folder).map_err(|_| Error::InvalidArgument(format!("{backup_id:?} is not a backup id")))
    }

    fn key(&self, backup_id: &str, relative: &str) -> Result<ObjectPath, Error> {
        relative_path(relative)?;
        let folder = self.folder_key(backup_id)?;
        ObjectPath::parse(format!("{folder}/{relative}")).map_err(|_| Error::InvalidArgument(format!("{relative:?} cannot be stored in a bucket")))
    }

    fn unavailable(&self, doing: &str, key: &ObjectPath) -> impl FnOnce(object_store::Error) -> Error + '_ {
        let message = format!("s3 bucket {}: {doing} {key}", self.bucket);
        move |error| match error {
            object_store::Error::NotFound { .. } => Error::NotFound(format!("{message}: not found")),
            other => Error::Unavailable(format!("{message}: {other}")),
        }
    }

    /// The local path and the key of every file the manifest lists.
    fn transfers(&self, backup_id: &str, folder: &Path, manifest: &Manifest) -> Result<Vec<Transfer>, Error> {
        manifest
            .files
            .iter()
            .map(|file| {
                Ok(Transfer {
                    local: folder.join(relative_path(&file.path)?),
                    key: self.key(backup_id, &file.path)?,
                    bytes: file.bytes,
                    sha256: file.sha256.clone(),
                })
            })
            .collect()
    }

    /// Copies the complete backup in `folder` to the bucket; returns its remote URL. The
    /// manifest goes last; every file is checked against the manifest as it is read.
    #[tracing::instrument(skip_all, fields(backup_id = %manifest.backup_id, bucket = %self.bucket))]
    pub async fn upload_backup(&self, folder: &Path, manifest: &Manifest) -> Result<String, Error> {
        let started = std::time::Instant::now();
        let backup_id = manifest.backup_id.as_str();
        let transfers = self.transfers(backup_id, folder, manifest)?;
        futures::stream::iter(transfers)
            .map(|transfer| {
                let store = self.clone();
                async move { store.upload_file(&transfer.local, &transfer.key, Some(transfer.expected())).await }
            })
            .buffer_unordered(FILES_IN_FLIGHT)
            .try_collect::<()>()
            .await?;
        // The checksum before the manifest: a manifest.json in the bucket means the rest is there.
        for name in [MANIFEST_CHECKSUM_FILE, MANIFEST_FILE] {
            self.upload_file(&folder.join(name), &self.key(backup_id, name)?, None).await?;
        }
        tracing::info!(
            files = manifest.files.len(),
            bytes = manifest.total_bytes(),
            seconds = started.elapsed().as_secs_f64(),
            "backup copied to the bucket"
        );
        Ok(self.url_of(backup_id))
    }

    async fn upload_file(&self, local: &Path, key: &ObjectPath, expected: Option<Expected<'_>>) -> Result<(), Error> {
        let mut file = tokio::fs::File::open(local).await.map_err(|error| Error::Damaged(format!("{}: {error}", local.display())))?;
        let size = file.metadata().await?.len();
        if let Some(expected) = expected {
            if size != expected.bytes {
                return Err(Error::Damaged(format!("{}: {size} bytes, the manifest says {}", local.display(), expected.bytes)));
            }
        }
        let mut hasher = Sha256::new();
        if size <= self.part_size as u64 {
            let mut bytes = Vec::with_capacity(size as usize);
            file.read_to_end(&mut bytes).await?;
            hasher.update(&bytes);
            check_checksum(local, expected, bytes.len() as u64, hasher)?;
            self.store.put(key, PutPayload::from(bytes)).await.map_err(self.unavailable("writing", key))?;
            return Ok(());
        }
        let upload = self.store.put_multipart(key).await.map_err(self.unavailable("starting the upload of", key))?;
        let mut writer = WriteMultipart::new_with_chunk_size(upload, self.part_size);
        let streamed = self.stream_parts(&mut file, &mut writer, &mut hasher).await;
        let checked = streamed.and_then(|read| check_checksum(local, expected, read, hasher));
        if let Err(error) = checked {
            if let Err(abort_error) = writer.abort().await {
                tracing::warn!(%abort_error, %key, "aborting a multipart upload failed; the bucket may keep its parts until a lifecycle rule removes them");
            }
            return Err(error);
        }
        writer.finish().await.map_err(self.unavailable("completing the upload of", key))?;
        Ok(())
    }

    /// Reads `file` into `writer`, waiting while `PARTS_IN_FLIGHT` parts are being sent.
    async fn stream_parts(&self, file: &mut tokio::fs::File, writer: &mut WriteMultipart, hasher: &mut Sha256) -> Result<u64, Error> {
        let mut read_total = 0u64;
        loop {
            let mut buffer = vec![0u8; READ_CHUNK];
            let read = file.read(&mut buffer).await?;
            if read == 0 {
                return Ok(read_total);
            }
            buffer.truncate(read);
            hasher.update(&buffer);
            read_total += read as u64;
            writer
                .wait_for_capacity(PARTS_IN_FLIGHT)
                .await
                .map_err(|error| Error::Unavailable(format!("s3 bucket {}: uploading a part: {error}", self.bucket)))?;
            writer.put(Bytes::from(buffer));
        }
    }

    /// Returns whether the bucket holds a complete copy (one with a manifest) of `backup_id`.
    pub async fn has_backup(&self, backup_id: &str) -> Result<bool, Error> {
        let key = self.key(backup_id, MANIFEST_FILE)?;
        match self.store.head(&key).await {
            Ok(_) => Ok(true),
            Err(object_store::Error::NotFound { .. }) => Ok(false),
            Err(error) => Err(self.unavailable("reading", &key)(error)),
        }
    }

    /// Fetches backup `backup_id` from the bucket into `into_folder` (which must not exist
    /// yet): the manifest first, then every file it lists, each checked as it streams.
    #[tracing::instrument(skip_all, fields(backup_id, bucket = %self.bucket))]
    pub async fn download_backup(&self, backup_id: &str, into_folder: &Path) -> Result<Manifest, Error> {
        let parent = into_folder.parent().ok_or_else(|| Error::InvalidArgument(format!("{} has no parent folder", into_folder.display())))?;
        tokio::fs::create_dir_all(parent).await?;
        let partial = parent.join(format!(".{backup_id}.download-{}.partial", uuid::Uuid::new_v4().simple()));
        tokio::fs::create_dir_all(&partial).await?;
        let result = self.download_into(backup_id, &partial).await;
        let manifest = match result {
            Ok(manifest) => manifest,
            Err(error) => {
                let _ = tokio::fs::remove_dir_all(&partial).await;
                return Err(error);
            }
        };
        if let Err(error) = tokio::fs::rename(&partial, into_folder).await {
            let _ = tokio::fs::remove_dir_all(&partial).await;
            // Another restore of the same id may have fetched it first.
            if Manifest::read(into_folder).is_ok_and(|held| held == manifest) {
                return Ok(manifest);
            }
            return Err(error.into());
        }
        Ok(manifest)
    }

    async fn download_into(&self, backup_id: &str, folder: &Path) -> Result<Manifest, Error> {
        let started = std::time::Instant::now();
        for name in [MANIFEST_FILE, MANIFEST_CHECKSUM_FILE] {
            self.download_file(&self.key(backup_id, name)?, &folder.join(name), None).await?;
        }
        let manifest = Manifest::read(folder)?;
        if manifest.backup_id != backup_id {
            return Err(Error::Damaged(format!("{} holds backup {}", self.url_of(backup_id), manifest.backup_id)));
        }
        let transfers = self.transfers(backup_id, folder, &manifest)?;
        futures::stream::iter(transfers)
            .map(|transfer| {
                let store = self.clone();
                async move {
                    if let Some(parent) = transfer.local.parent() {
                        tokio::fs::create_dir_all(parent).await?;
                    }
                    store.download_file(&transfer.key, &transfer.local, Some(transfer.expected())).await
                }
            })
            .buffer_unordered(FILES_IN_FLIGHT)
            .try_collect::<()>()
            .await?;
        tracing::info!(
            files = manifest.files.len(),
            bytes = manifest.total_bytes(),
            seconds = started.elapsed().as_secs_f64(),
            "backup fetched from the bucket"
        );
        Ok(manifest)
    }

    async fn download_file(&self, key: &ObjectPath, local: &Path, expected: Option<Expected<'_>>) -> Result<(), Error> {
        let got = self.store.get(key).await.map_err(self.unavailable("reading", key))?;
        let mut stream = got.into_stream();
        let mut output = tokio::fs::File::create(local).await?;
        let mut hasher = Sha256::new();
        let mut written = 0u64;
        while let Some(chunk) = stream.next().await {
            let chunk = chunk.map_err(self.unavailable("reading", key))?;
            written += chunk.len() as u64;
            if let Some(expected) = expected {
                if written > expected.bytes {
                    return Err(Error::Damaged(format!("{key}: more than the {} bytes the manifest says", expected.bytes)));
                }
            }
            hasher.update(&chunk);
            output.write_all(&chunk).await?;
        }
        output.sync_all().await?;
        check_checksum(Path::new(key.as_ref()), expected, written, hasher)
    }

    /// Returns the ids of the complete backups (those with a manifest) in the bucket, sorted.
    pub async fn list_backup_ids(&self) -> Result<Vec<String>, Error> {
        let prefix = (!self.prefix.is_empty()).then(|| ObjectPath::from(self.prefix.as_str()));
        let listing = self
            .store
            .list_with_delimiter(prefix.as_ref())
            .await
            .map_err(|error| Error::Unavailable(format!("s3 bucket {}: listing: {error}", self.bucket)))?;
        let candidates: Vec<String> = listing.common_prefixes.iter().filter_map(|folder| folder.filename().map(str::to_owned)).collect();
        let mut complete: Vec<String> = futures::stream::iter(candidates)
            .map(|backup_id| {
                let store = self.clone();
                async move { store.has_backup(&backup_id).await.map(|has| has.then_some(backup_id)) }
            })
            .buffer_unordered(FILES_IN_FLIGHT)
            .try_filter_map(|found| async move { Ok(found) })
            .try_collect()
            .await?;
        complete.sort();
        Ok(complete)
    }

    /// Returns every object of backup `backup_id` in the bucket: its path inside the backup
    /// folder and its size, sorted by path.
    pub async fn list_backup_objects(&self, backup_id: &str) -> Result<Vec<(String, u64)>, Error> {
        let folder = self.folder_key(backup_id)?;
        let strip = format!("{folder}/");
        let mut objects: Vec<(String, u64)> = self
            .store
            .list(Some(&folder))
            .map_ok(|meta| (meta.location.as_ref().strip_prefix(&strip).unwrap_or(meta.location.as_ref()).to_owned(), meta.size))
            .try_collect()
            .await
            .map_err(|error| Error::Unavailable(format!("s3 bucket {}: listing {folder}: {error}", self.bucket)))?;
        objects.sort();
        Ok(objects)
    }
}

fn check_checksum(path: &Path, expected: Option<Expected<'_>>, bytes: u64, hasher: Sha256) -> Result<(), Error> {
    let Some(expected) = expected else {
        return Ok(());
    };
    let sha256 = hex::encode(hasher.finalize());
    if bytes != expected.bytes {
        return Err(Error::Damaged(format!("{}: {bytes} bytes, the manifest says {}", path.display(), expected.bytes)));
    }
    if sha256 != expected.sha256 {
        return Err(Error::Damaged(format!("{}: SHA-256 {sha256}, the manifest says {}", path.display(), expected.sha256)));
    }
    Ok(())
}

/// Where a backup fetched from the bucket goes: `<root>/<backup id>`, refusing ids that are
/// not a single folder name.
pub fn local_folder_for(root: &Path, backup_id: &str) -> Result<PathBuf, Error> {
    let relative = relative_path(backup_id)?;
    if relative.components().count() != 1 || backup_id.starts_with('.') {
        return Err(Error::InvalidArgument(format!("{backup_id:?} is not a backup id")));
    }
    Ok(root.join(relative))
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use chatvault_common::config::DefaultPorts;

    use super::*;

    fn config(pairs: &[(&str, &str)]) -> ServiceConfig {
        let mut environment: HashMap<String, String> = pairs.iter().map(|(key, value)| ((*key).to_owned(), (*value).to_owned())).collect();
        environment.insert("CHATVAULT_JWT_SECRET".to_owned(), format!("{}{}", uuid::Uuid::new_v4().simple(), uuid::Uuid::new_v4().simple()));
        ServiceConfig::from_env_map("backup", DefaultPorts { grpc: 1, http: 2 }, &environment).expect("config")
    }

    #[test]
    fn bucket_urls_split_into_bucket_and_prefix() {
        assert_eq!(parse_bucket_url("s3://vault").expect("ok"), ("vault".into(), String::new()));
        assert_eq!(parse_bucket_url("s3://vault/").expect("ok"), ("vault".into(), String::new()));
        assert_eq!(parse_bucket_url("s3://vault/team/backups/").expect("ok"), ("vault".into(), "team/backups".into()));
        for wrong in ["vault", "https://vault/x", "s3://", "s3:///prefix", "s3://vault/a//b", "s3://vault/../x"] {
            assert!(parse_bucket_url(wrong).is_err(), "{wrong}");
        }
    }

    #[test]
    fn no_url_means_no_remote_copy_and_http_endpoints_allow_http() {
        assert_eq!(RemoteSettings::from_config(&config(&[])).expect("ok"), None);
        let settings = RemoteSettings::from_config(&config(&[
            ("CHATVAULT_BACKUP_S3_URL", "s3://vault/nightly"),
            ("CHATVAULT_BACKUP_S3_ENDPOINT", "http://127.0.0.1:9000/"),
            ("CHATVAULT_BACKUP_S3_ACCESS_KEY_ID", "key-id"),
            ("CHATVAULT_BACKUP_S3_SECRET_ACCESS_KEY", "very-secret-value"),
        ]))
        .expect("ok")
        .expect("configured");
        assert_eq!((settings.bucket.as_str(), settings.prefix.as_str(), settings.region.as_str()), ("vault", "nightly", "us-east-1"));
        assert_eq!(settings.endpoint.as_deref(), Some("http://127.0.0.1:9000"));
        assert!(settings.allow_http);
        assert!(!format!("{settings:?}").contains("very-secret-value"), "the secret is redacted");
        assert_eq!(settings.secret_access_key.as_ref().map(|secret| secret.0.expose()), Some("very-secret-value"));
        let https = RemoteSettings::from_config(&config(&[
            ("CHATVAULT_BACKUP_S3_URL", "s3://vault"),
            ("CHATVAULT_BACKUP_S3_ENDPOINT", "https://minio.example"),
        ]))
        .expect("ok")
        .expect("configured");
        assert!(!https.allow_http);
    }

    #[test]
    fn keys_sit_under_the_prefix_and_the_backup_id() {
        let store = RemoteStore::new(Arc::new(object_store::memory::InMemory::new()), "vault", "/team/backups/");
        assert_eq!(
            store.key("20260101T000000Z-abcd", "parquet/chats.parquet").expect("ok").as_ref(),
            "team/backups/20260101T000000Z-abcd/parquet/chats.parquet"
        );
        assert_eq!(store.url_of("b1"), "s3://vault/team/backups/b1/");
        assert!(store.key("b1", "../x").is_err());
        assert!(local_folder_for(Path::new("/backups"), "a/b").is_err());
        assert!(local_folder_for(Path::new("/backups"), ".hidden").is_err());
        assert_eq!(local_folder_for(Path::new("/backups"), "b1").expect("ok"), Path::new("/backups/b1"));
    }

    /// Writes a backup folder with a small table file and a blob of `blob_size` bytes.
    fn write_backup_folder(folder: &Path, backup_id: &str, blob_size: usize) -> Manifest {
        use crate::manifest::FileEntry;
        let blob: Vec<u8> = (0..blob_size as u32).map(|index| (index.wrapping_mul(2_654_435_761) >> 11) as u8).collect();
        let blob_sha256 = hex::encode(Sha256::digest(&blob));
        let table = b"chat_id,title\n1,hello\n".to_vec();
        std::fs::create_dir_all(folder.join("csv")).expect("folder");
        std::fs::create_dir_all(folder.join("files")).expect("folder");
        std::fs::write(folder.join("csv/chats.csv"), &table).expect("write");
        std::fs::write(folder.join("files").join(&blob_sha256), &blob).expect("write");
        let manifest = Manifest {
            backup_id: backup_id.into(),
            schema_version: crate::manifest::SCHEMA_VERSION.into(),
            created_at: "2026-01-01T00:00:00Z".into(),
            created_at_unix_ms: 1,
            origin: "manual".into(),
            formats: vec!["csv".into()],
            chat_ids: vec![],
            with_files: true,
            positions: vec![],
            tables: vec![],
            files: vec![
                FileEntry {
                    path: "csv/chats.csv".into(),
                    kind: "csv".into(),
                    table: Some("chats".into()),
                    rows: Some(1),
                    bytes: table.len() as u64,
                    sha256: hex::encode(Sha256::digest(&table)),
                },
                FileEntry {
                    path: format!("files/{blob_sha256}"),
                    kind: "blob".into(),
                    table: None,
                    rows: None,
                    bytes: blob.len() as u64,
                    sha256: blob_sha256,
                },
            ],
        };
        manifest.write(folder).expect("manifest");
        manifest
    }

    #[tokio::test]
    async fn a_backup_with_a_multipart_file_round_trips_and_a_changed_object_is_refused() {
        let memory = Arc::new(object_store::memory::InMemory::new());
        let store = RemoteStore::new(memory.clone(), "vault", "nightly").with_part_size(5 << 20);
        let local = tempfile::tempdir().expect("temp dir");
        let manifest = write_backup_folder(&local.path().join("b1"), "b1", (12 << 20) + 7);
        assert_eq!(store.upload_backup(&local.path().join("b1"), &manifest).await.expect("upload"), "s3://vault/nightly/b1/");
        let objects = store.list_backup_objects("b1").await.expect("list");
        assert_eq!(objects.len(), 4, "{objects:?}");
        for file in &manifest.files {
            assert!(objects.contains(&(file.path.clone(), file.bytes)), "{} is in the bucket with its size", file.path);
        }
        assert_eq!(store.list_backup_ids().await.expect("ids"), vec!["b1".to_owned()]);

        let restored = tempfile::tempdir().expect("temp dir");
        let fetched = store.download_backup("b1", &restored.path().join("b1")).await.expect("download");
        assert_eq!(fetched, manifest);
        for file in &manifest.files {
            assert_eq!(
                std::fs::read(restored.path().join("b1").join(&file.path)).expect("read"),
                std::fs::read(local.path().join("b1").join(&file.path)).expect("read")
            );
        }

        let blob = &manifest.files[1];
        memory.put(&store.key("b1", &blob.path).expect("key"), PutPayload::from(vec![0u8; blob.bytes as usize])).await.expect("overwrite");
        let error = store.download_backup("b1", &restored.path().join("b1-again")).await.expect_err("refused");
        assert!(matches!(error, Error::Damaged(_)), "{error}");
        assert!(!restored.path().join("b1-again").exists(), "nothing is left of a refused download");
        assert_eq!(std::fs::read_dir(restored.path()).expect("read").count(), 1, "the partial folder is removed");
    }

    #[tokio::test]
    async fn a_backup_without_its_manifest_in_the_bucket_is_not_listed() {
        let memory = Arc::new(object_store::memory::InMemory::new());
        let store = RemoteStore::new(memory.clone(), "vault", "");
        let local = tempfile::tempdir().expect("temp dir");
        let manifest = write_backup_folder(&local.path().join("b2"), "b2", 10);
        store.upload_backup(&local.path().join("b2"), &manifest).await.expect("upload");
        memory.delete(&store.key("b2", MANIFEST_FILE).expect("key")).await.expect("delete");
        assert!(store.list_backup_ids().await.expect("ids").is_empty());
        assert!(!store.has_backup("b2").await.expect("head"));
        let error = store.download_backup("b2", &local.path().join("fetched")).await.expect_err("not there");
        assert!(matches!(error, Error::NotFound(_)), "{error}");
    }

    #[tokio::test]
    async fn a_local_file_that_no_longer_matches_the_manifest_is_not_uploaded() {
        let memory = Arc::new(object_store::memory::InMemory::new());
        let store = RemoteStore::new(memory, "vault", "");
        let local = tempfile::tempdir().expect("temp dir");
        let folder = local.path().join("b3");
        let manifest = write_backup_folder(&folder, "b3", 100);
        std::fs::write(folder.join("csv/chats.csv"), b"chat_id,title\n1,HELLO\n").expect("write");
        let error = store.upload_backup(&folder, &manifest).await.expect_err("refused");
        assert!(matches!(error, Error::Damaged(_)), "{error}");
        assert!(!store.has_backup("b3").await.expect("head"), "no manifest was uploaded");
    }
}
