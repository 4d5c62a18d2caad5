//! `chatvault backup`: create, list, verify and restore backups (admin).

use std::io::IsTerminal;
use std::path::{Path, PathBuf};

use anyhow::Context;
use chatvault_proto::backup::v1::{
    create_backup_response, restore_backup_response, upload_backup_request, verify_backup_response, Backup, BackupFormat, CreateBackupRequest,
    ListBackupsRequest, Progress, RestoreBackupRequest, UploadBackupFile, UploadBackupRequest, VerifyBackupRequest,
};
use futures::StreamExt;
use indicatif::{ProgressBar, ProgressStyle};
use serde_json::json;

use super::Endpoints;
use crate::error_code::{coded_error, invalid_argument};
use crate::output::outln;

#[derive(Debug, clap::Args)]
pub(crate) struct BackupArgs {
    #[command(subcommand)]
    command: BackupCommand,
}

#[derive(Debug, clap::Subcommand)]
enum BackupCommand {
    /// Take a backup; prints its id and folder.
    Create {
        /// csv, parquet or both.
        #[arg(long, default_value = "parquet")]
        format: String,
        /// Only this chat (repeat for several); default every chat.
        #[arg(long = "chat", allow_negative_numbers = true)]
        chats: Vec<i64>,
        /// Also copy the stored files' bytes into the backup.
        #[arg(long)]
        with_files: bool,
    },
    /// List backups, newest first.
    Ls,
    /// Recompute every checksum and row count of a backup; exit 1 when anything is off.
    Verify { id: String },
    /// Restore a backup by id, or from a backup folder on this machine (it is uploaded).
    Restore {
        /// A backup id, or the path of a backup folder.
        source: String,
        /// Which copy to read when the backup has both: csv or parquet.
        #[arg(long)]
        format: Option<String>,
    },
}

pub(crate) async fn run(endpoints: &Endpoints, args: BackupArgs, json: bool) -> anyhow::Result<()> {
    match args.command {
        BackupCommand::Create { format, chats, with_files } => create(endpoints, &format, chats, with_files, json).await,
        BackupCommand::Ls => list(endpoints, json).await,
        BackupCommand::Verify { id } => verify(endpoints, id, json).await,
        BackupCommand::Restore { source, format } => restore(endpoints, source, format, json).await,
    }
}

fn format_of(name: &str) -> anyhow::Result<BackupFormat> {
    match name {
        "csv" => Ok(BackupFormat::Csv),
        "parquet" => Ok(BackupFormat::Parquet),
        "both" => Ok(BackupFormat::Both),
        other => Err(invalid_argument(format!("unknown format {other:?}: use csv, parquet or both"))),
    }
}

/// A progress display on a terminal (nothing with --json or when piped).
struct ProgressView {
    bar: Option<ProgressBar>,
}

impl ProgressView {
    fn new(json: bool) -> Self {
        let bar = (!json && std::io::stderr().is_terminal()).then(|| {
            let bar = ProgressBar::new(0);
            bar.set_style(
                ProgressStyle::with_template("{msg} [{bar:30}] {pos}/{len} {per_sec} {eta}").expect("valid template").progress_chars("=> "),
            );
            bar
        });
        Self { bar }
    }

    fn show(&self, progress: &Progress) {
        let Some(bar) = &self.bar else { return };
        bar.set_message(format!("{} {} ({})", progress.phase, progress.item, progress.unit));
        if progress.total > 0 {
            bar.set_length(progress.total);
        } else if progress.done > bar.length().unwrap_or(0) {
            bar.set_length(progress.done);
        }
        bar.set_position(progress.done);
    }

    fn finish(&self) {
        if let Some(bar) = &self.bar {
            bar.finish_and_clear();
        }
    }
}

fn backup_json(backup: &Backup) -> serde_json::Value {
    json!({
        "id": backup.id,
        "path": backup.path,
        "created_at_unix_ms": backup.created_at_unix_ms,
        "origin": backup.origin,
        "formats": backup.formats,
        "chat_ids": backup.chat_ids,
        "with_files": backup.with_files,
        "files_stored": backup.files_stored,
        "total_bytes": backup.total_bytes,
        "schema_version": backup.schema_version,
        "tables": backup.tables.iter().map(|table| json!({ "name": table.name, "rows": table.rows })).collect::<Vec<_>>(),
        "positions": backup.positions.iter().map(|position| json!({ "service": position.service, "topic": position.topic, "partition": position.partition, "next_offset": position.next_offset })).collect::<Vec<_>>(),
    })
}

fn print_backup(backup: &Backup) {
    outln!("backup {} ({}, {} bytes) in {}", backup.id, backup.formats.join("+"), backup.total_bytes, backup.path);
    for table in &backup.tables {
        outln!("  {:<20} {:>12} rows", table.name, table.rows);
    }
    if backup.with_files {
        outln!("  {:<20} {:>12} distinct files", "file bytes", backup.files_stored);
    }
}

async fn create(endpoints: &Endpoints, format: &str, chat_ids: Vec<i64>, with_files: bool, json: bool) -> anyhow::Result<()> {
    let request = CreateBackupRequest { format: format_of(format)? as i32, chat_ids, with_files };
    let mut stream = endpoints.backup().await?.create_backup(request).await?.into_inner();
    let view = ProgressView::new(json);
    let mut backup = None;
    while let Some(message) = stream.next().await {
        match message?.message {
            Some(create_backup_response::Message::Progress(progress)) => view.show(&progress),
            Some(create_backup_response::Message::Backup(done)) => backup = Some(done),
            None => {}
        }
    }
    view.finish();
    let backup = backup.context("the backup service ended without a result")?;
    if json {
        crate::output::print_json(&backup_json(&backup));
    } else {
        print_backup(&backup);
    }
    Ok(())
}

async fn list(endpoints: &Endpoints, json: bool) -> anyhow::Result<()> {
    let backups = endpoints.backup().await?.list_backups(ListBackupsRequest {}).await?.into_inner().backups;
    if json {
        crate::output::print_json(&serde_json::Value::Array(backups.iter().map(backup_json).collect()));
        return Ok(());
    }
    outln!("{:<26}  {:<20}  {:<10}  {:>12}  {:>10}  ORIGIN", "ID", "CREATED (UTC)", "FORMATS", "MESSAGES", "BYTES");
    for backup in backups {
        let created = crate::output::format_unix(backup.created_at_unix_ms / 1000);
        let messages = backup.tables.iter().find(|table| table.name == "messages").map_or(0, |table| table.rows);
        outln!(
            "{:<26}  {:<20}  {:<10}  {:>12}  {:>10}  {}",
            backup.id,
            created,
            backup.formats.join("+"),
            messages,
            backup.total_bytes,
            backup.origin
        );
    }
    Ok(())
}

async fn verify(endpoints: &Endpoints, backup_id: String, json: bool) -> anyhow::Result<()> {
    let mut stream = endpoints.backup().await?.verify_backup(VerifyBackupRequest { backup_id }).await?.into_inner();
    let view = ProgressView::new(json);
    let mut result = None;
    while let Some(message) = stream.next().await {
        match message?.message {
            Some(verify_backup_response::Message::Progress(progress)) => view.show(&progress),
            Some(verify_backup_response::Message::Result(done)) => result = Some(done),
            None => {}
        }
    }
    view.finish();
    let result = result.context("the backup service ended without a result")?;
    if json {
        crate::output::print_json(&json!({
            "id": result.backup_id, "ok": result.ok, "files_checked": result.files_checked,
            "rows_checked": result.rows_checked, "row_groups_read": result.row_groups_read, "problems": result.problems,
        }));
    } else {
        outln!(
            "backup {}: {} ({} files, {} rows, {} row groups read)",
            result.backup_id,
            if result.ok { "OK" } else { "DAMAGED" },
            result.files_checked,
            result.rows_checked,
            result.row_groups_read
        );
        for problem in &result.problems {
            outln!("  {problem}");
        }
    }
    if !result.ok {
        return Err(coded_error(tonic::Code::DataLoss, format!("backup {} failed verification", result.backup_id)));
    }
    Ok(())
}

async fn restore(endpoints: &Endpoints, source: String, format: Option<String>, json: bool) -> anyhow::Result<()> {
    let format = match format.as_deref() {
        None => BackupFormat::Unspecified,
        Some("csv") => BackupFormat::Csv,
        Some("parquet") => BackupFormat::Parquet,
        Some(other) => return Err(invalid_argument(format!("unknown format {other:?}: use csv or parquet"))),
    };
    let mut client = endpoints.backup().await?;
    let folder = Path::new(&source);
    let backup_id = if folder.join("manifest.json").is_file() {
        let uploaded = client.upload_backup(upload_stream(folder.to_path_buf(), json).await?).await?.into_inner();
        uploaded.backup.context("the backup service did not name the uploaded backup")?.id
    } else {
        source
    };
    let mut stream = client.restore_backup(RestoreBackupRequest { backup_id, format: format as i32 }).await?.into_inner();
    let view = ProgressView::new(json);
    let mut summary = None;
    while let Some(message) = stream.next().await {
        match message?.message {
            Some(restore_backup_response::Message::Progress(progress)) => view.show(&progress),
            Some(restore_backup_response::Message::Summary(done)) => summary = Some(done),
            None => {}
        }
    }
    view.finish();
    let summary = summary.context("the backup service ended without a result")?;
    if json {
        crate::output::print_json(&json!({
            "id": summary.backup_id,
            "consistency_token": summary.consistency_token,
            "tables": summary.tables.iter().map(|table| json!({ "name": table.name, "restored": table.restored, "already_present": table.already_present })).collect::<Vec<_>>(),
        }));
    } else {
        outln!("restored backup {}", summary.backup_id);
        for table in &summary.tables {
            outln!("  {:<12} {:>12} restored {:>12} already present", table.name, table.restored, table.already_present);
        }
    }
    Ok(())
}

/// Every regular file under `folder`, relative paths with `/`.
fn backup_files(folder: &Path) -> anyhow::Result<Vec<(String, PathBuf, u64)>> {
    let mut files = Vec::new();
    let mut pending = vec![folder.to_path_buf()];
    while let Some(current) = pending.pop() {
        for entry in std::fs::read_dir(&current).with_context(|| format!("reading {}", current.display()))? {
            let entry = entry?;
            let kind = entry.file_type()?;
            if kind.is_dir() {
                pending.push(entry.path());
            } else if kind.is_file() {
                let relative = entry
                    .path()
                    .strip_prefix(folder)?
                    .components()
                    .map(|part| part.as_os_str().to_string_lossy().into_owned())
                    .collect::<Vec<_>>()
                    .join("/");
                files.push((relative, entry.path(), entry.metadata()?.len()));
            }
        }
    }
    files.sort();
    Ok(files)
}

/// Streams the backup folder: each file named, then its bytes.
async fn upload_stream(folder: PathBuf, json: bool) -> anyhow::Result<impl futures::Stream<Item = UploadBackupRequest>> {
    let files = backup_files(&folder)?;
    let total: u64 = files.iter().map(|(_, _, size)| size).sum();
    let view = ProgressView::new(json);
    let (sender, receiver) = tokio::sync::mpsc::channel(8);
    tokio::spawn(async move {
        let mut sent = 0u64;
        for (relative, path, size) in files {
            let header =
                UploadBackupRequest { message: Some(upload_backup_request::Message::File(UploadBackupFile { path: relative.clone(), size })) };
            if sender.send(header).await.is_err() {
                return;
            }
            let Ok(file) = tokio::fs::File::open(&path).await else {
                return;
            };
            let mut chunks = tokio_util::io::ReaderStream::with_capacity(file, 1 << 20);
            while let Some(Ok(chunk)) = chunks.next().await {
                sent += chunk.len() as u64;
                view.show(&Progress { phase: "upload".into(), item: relative.clone(), done: sent, total, unit: "bytes".into() });
                if sender.send(UploadBackupRequest { message: Some(upload_backup_request::Message::Chunk(chunk)) }).await.is_err() {
                    return;
                }
            }
        }
        view.finish();
    });
    Ok(tokio_stream::wrappers::ReceiverStream::new(receiver))
}
