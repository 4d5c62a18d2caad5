//! Taking a backup: a consistent snapshot from every owning service written as CSV and/or
//! Parquet, optionally the stored files' bytes, then the manifest. The backup is built in a
//! hidden folder and renamed into place at the end, so a failed backup leaves nothing.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use arrow_array::cast::AsArray;
use arrow_array::RecordBatch;
use chatvault_proto::backup::v1::Progress;
use chatvault_proto::snapshot::v1::snapshot_service_client::SnapshotServiceClient;
use chatvault_proto::snapshot::v1::ExportSnapshotRequest;
use chatvault_proto::storage::v1::files_service_client::FilesServiceClient;
use chatvault_proto::storage::v1::{download_file_response, DownloadFileRequest};
use sha2::{Digest, Sha256};
use tokio::io::AsyncWriteExt;
use tokio::sync::mpsc;

use crate::manifest::{FileEntry, Manifest, Position, BLOBS_FOLDER, SCHEMA_VERSION};
use crate::snapshot_stream::{consume_snapshot, ConsumedSnapshot, TableSink};
use crate::table_files::{Formats, TableWriter};
use crate::{Context, Error};

/// What to back up.
#[derive(Clone, Debug)]
pub struct BackupOrder {
    pub formats: Formats,
    pub chat_ids: Vec<i64>,
    pub with_files: bool,
    /// `manual` or `scheduled`.
    pub origin: String,
}

impl TableSink for TableWriter {
    fn batch(&mut self, batch: &RecordBatch) -> Result<(), Error> {
        self.write(batch)
    }

    fn finish(self: Box<Self>) -> Result<Vec<FileEntry>, Error> {
        TableWriter::finish(*self)
    }
}

/// Returns a new backup id: its creation time, sortable, and a random suffix.
fn new_backup_id(now: chrono::DateTime<chrono::Utc>) -> String {
    let suffix = uuid::Uuid::new_v4().simple().to_string();
    format!("{}-{}", now.format("%Y%m%dT%H%M%SZ"), &suffix[..8])
}

/// Takes a backup; returns its manifest and folder once it is complete and in place.
pub async fn create_backup(context: &Context, order: BackupOrder, progress: Option<mpsc::Sender<Progress>>) -> Result<(Manifest, PathBuf), Error> {
    if !order.formats.csv && !order.formats.parquet {
        return Err(Error::InvalidArgument("choose a format: csv, parquet or both".to_owned()));
    }
    let now = chrono::Utc::now();
    let backup_id = new_backup_id(now);
    let root = &context.settings.folder;
    std::fs::create_dir_all(root)?;
    let partial = root.join(format!(".{backup_id}.partial"));
    std::fs::create_dir_all(&partial)?;
    let result = write_backup(context, &order, &backup_id, now, &partial, progress.as_ref()).await;
    match result {
        Ok(manifest) => {
            let folder = root.join(&backup_id);
            std::fs::rename(&partial, &folder)?;
            sync_folder(root);
            Ok((manifest, folder))
        }
        Err(error) => {
            let _ = std::fs::remove_dir_all(&partial);
            Err(error)
        }
    }
}

async fn write_backup(
    context: &Context,
    order: &BackupOrder,
    backup_id: &str,
    now: chrono::DateTime<chrono::Utc>,
    folder: &Path,
    progress: Option<&mpsc::Sender<Progress>>,
) -> Result<Manifest, Error> {
    let request = ExportSnapshotRequest { tables: Vec::new(), chat_ids: order.chat_ids.clone() };
    let storage = export_service(context, "storage", context.peers.storage.clone(), request.clone(), order.formats, backup_id, folder, progress);
    let users = export_service(context, "users", context.peers.users.clone(), request, order.formats, backup_id, folder, progress);
    let (storage, users) = tokio::try_join!(storage, users)?;
    let mut manifest = Manifest {
        backup_id: backup_id.to_owned(),
        schema_version: SCHEMA_VERSION.to_owned(),
        created_at: now.to_rfc3339_opts(chrono::SecondsFormat::Millis, true),
        created_at_unix_ms: now.timestamp_millis(),
        origin: order.origin.clone(),
        formats: order.formats.names(),
        chat_ids: order.chat_ids.clone(),
        with_files: order.with_files,
        positions: Vec::new(),
        tables: Vec::new(),
        files: Vec::new(),
    };
    for consumed in [storage, users] {
        manifest.positions.extend(consumed.positions);
        manifest.tables.extend(consumed.tables);
        manifest.files.extend(consumed.files);
    }
    manifest.tables.sort_by(|left, right| left.name.cmp(&right.name));
    if order.with_files {
        let blobs = copy_file_bytes(context, &manifest, folder, progress).await?;
        manifest.files.extend(blobs);
    }
    manifest.files.sort_by(|left, right| left.path.cmp(&right.path));
    manifest.write(folder)?;
    Ok(manifest)
}

#[allow(clippy::too_many_arguments)]
async fn export_service(
    context: &Context,
    service: &'static str,
    channel: tonic::transport::Channel,
    request: ExportSnapshotRequest,
    formats: Formats,
    backup_id: &str,
    folder: &Path,
    progress: Option<&mpsc::Sender<Progress>>,
) -> Result<ConsumedSnapshot, Error> {
    let mut client = SnapshotServiceClient::new(channel).max_decoding_message_size(64 << 20);
    let stream = client.export_snapshot(context.peers.request(request)).await.map_err(Error::remote(service))?.into_inner();
    let row_group_rows = context.settings.row_group_rows;
    let folder = folder.to_path_buf();
    let backup_id = backup_id.to_owned();
    let make_sink = move |table: &str, columns: &[crate::copy_binary::ColumnSpec], positions: &[Position]| -> Result<Box<dyn TableSink>, Error> {
        let metadata = vec![
            ("chatvault.backup_id".to_owned(), backup_id.clone()),
            ("chatvault.schema_version".to_owned(), SCHEMA_VERSION.to_owned()),
            ("chatvault.service".to_owned(), service.to_owned()),
            ("chatvault.table".to_owned(), table.to_owned()),
            ("chatvault.positions".to_owned(), serde_json::to_string(positions).unwrap_or_default()),
        ];
        let schema = crate::copy_binary::arrow_schema(columns);
        Ok(Box::new(TableWriter::create(&folder, table, schema, formats, row_group_rows, metadata)?))
    };
    consume_snapshot(service, stream, make_sink, progress).await
}

/// Copies the bytes of every file in the backup's `files` table into `files/<sha256>`,
/// once per distinct content.
async fn copy_file_bytes(
    context: &Context,
    manifest: &Manifest,
    folder: &Path,
    progress: Option<&mpsc::Sender<Progress>>,
) -> Result<Vec<FileEntry>, Error> {
    let files = stored_files(manifest, folder)?;
    let total: u64 = files.iter().map(|file| file.size).sum();
    let blobs = folder.join(BLOBS_FOLDER);
    std::fs::create_dir_all(&blobs)?;
    let mut client = FilesServiceClient::new(context.peers.storage.clone()).max_decoding_message_size(64 << 20);
    let mut written: BTreeSet<String> = BTreeSet::new();
    let mut entries = Vec::new();
    let mut done = 0u64;
    for file in files {
        if !written.insert(file.sha256.clone()) {
            done += file.size;
            continue;
        }
        let path = blobs.join(&file.sha256);
        let partial = blobs.join(format!("{}.partial", file.sha256));
        let mut output = tokio::fs::File::create(&partial).await?;
        let mut hasher = Sha256::new();
        let mut size = 0u64;
        let request = context.peers.request(DownloadFileRequest { file_id: file.file_id.clone(), consistency_token: None });
        let mut stream = client.download_file(request).await.map_err(Error::remote("storage"))?.into_inner();
        while let Some(message) = stream.message().await.map_err(Error::remote("storage"))? {
            if let Some(download_file_response::Message::Chunk(chunk)) = message.message {
                hasher.update(&chunk);
                size += chunk.len() as u64;
                output.write_all(&chunk).await?;
                if let Some(progress) = progress {
                    let _ = progress.try_send(Progress {
                        phase: "files".into(),
                        item: file.file_id.clone(),
                        done: done + size,
                        total,
                        unit: "bytes".into(),
                    });
                }
            }
        }
        output.sync_all().await?;
        drop(output);
        let sha256 = hex::encode(hasher.finalize());
        if sha256 != file.sha256 || size != file.size {
            return Err(Error::Internal(format!(
                "file {} downloaded as {size} bytes with SHA-256 {sha256}; the catalog says {} bytes, {}",
                file.file_id, file.size, file.sha256
            )));
        }
        tokio::fs::rename(&partial, &path).await?;
        done += size;
        entries.push(FileEntry { path: format!("{BLOBS_FOLDER}/{sha256}"), kind: "blob".into(), table: None, rows: None, bytes: size, sha256 });
    }
    Ok(entries)
}

/// A file of the backup's `files` table.
#[derive(Clone, Debug)]
pub struct StoredFile {
    pub file_id: String,
    pub sha256: String,
    pub size: u64,
}

/// Reads the `files` table of a backup (Parquet when there is one, else CSV).
pub fn stored_files(manifest: &Manifest, folder: &Path) -> Result<Vec<StoredFile>, Error> {
    let mut files = Vec::new();
    for batch in crate::restore::read_table(manifest, folder, "files", None)? {
        let batch = batch?;
        let ids = crate::restore::text_column(&batch, "file_id")?;
        let hashes = crate::restore::text_column(&batch, "sha256")?;
        let sizes = batch
            .column_by_name("size")
            .ok_or_else(|| Error::Damaged("files table has no size column".into()))?
            .as_primitive::<arrow_array::types::Int64Type>();
        for row in 0..batch.num_rows() {
            files.push(StoredFile { file_id: ids.value(row).to_owned(), sha256: hashes.value(row).to_owned(), size: sizes.value(row).max(0) as u64 });
        }
    }
    Ok(files)
}

/// Makes a rename inside `folder` durable.
fn sync_folder(folder: &Path) {
    if let Ok(handle) = std::fs::File::open(folder) {
        let _ = handle.sync_all();
    }
}
