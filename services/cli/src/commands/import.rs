//! `chatvault import <path>`: imports an export and shows progress while it runs.

use std::io::IsTerminal;
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{bail, Context};
use chatvault_proto::ingest::v1::{
    import_update, upload_export_request, ExportFileChunk, ImportExportRequest, ImportSummary, UploadExportHeader, UploadExportRequest,
};
use indicatif::{ProgressBar, ProgressStyle};
use serde_json::json;

use super::Endpoints;
use crate::error_code::invalid_argument;
use crate::output::outln;

#[derive(Debug, clap::Args)]
pub(crate) struct ImportArgs {
    /// The export: its folder (uploaded whole, media included), a .zip of the folder, its
    /// result.json (sent alone, without media) or a messages.html page (its folder is sent).
    path: PathBuf,
    /// Import a path on the ingest server's own disk instead of uploading (for admins).
    #[arg(long)]
    server_path: bool,
    /// The chat id of a single-chat HTML export (HTML pages do not carry it), like
    /// -1001234567890; without it the id is derived from the chat's name.
    #[arg(long, allow_negative_numbers = true)]
    chat_id: Option<i64>,
    /// UTC offset of the computer that made an old export (before mid-2022), like +03:00 or -05:30.
    #[arg(long, default_value = "+00:00", value_parser = parse_utc_offset, allow_hyphen_values = true)]
    utc_offset: i32,
}

pub(crate) async fn run(endpoints: &Endpoints, args: ImportArgs, json: bool) -> anyhow::Result<()> {
    let absolute_path = std::path::absolute(&args.path).with_context(|| format!("resolving {}", args.path.display()))?;
    // The local export is listed before connecting: a wrong path is the caller's to fix
    // (NOT_FOUND), whether or not the platform is up.
    let files = if args.server_path { Vec::new() } else { files_to_upload(&absolute_path)? };
    let mut client = endpoints.ingest().await?;
    let progress_bar = (!json && std::io::stderr().is_terminal()).then(new_progress_bar);
    let mut updates = if args.server_path {
        let request =
            ImportExportRequest { path: absolute_path.display().to_string(), local_utc_offset_seconds: args.utc_offset, html_chat_id: args.chat_id };
        client.import_export(request).await?.into_inner()
    } else {
        let total_bytes = files.iter().map(|file| file.size).sum();
        if let Some(bar) = &progress_bar {
            bar.set_length(total_bytes);
            bar.set_message("uploading");
        }
        let header = UploadExportHeader { local_utc_offset_seconds: args.utc_offset, total_bytes, html_chat_id: args.chat_id };
        let requests = upload_requests(files, header, progress_bar.clone());
        client.upload_export(requests).await?.into_inner()
    };
    let mut summary: Option<ImportSummary> = None;
    while let Some(update) = updates.message().await? {
        match update.update {
            Some(import_update::Update::Progress(progress)) if progress.messages_published > 0 || args.server_path => {
                if let Some(bar) = &progress_bar {
                    bar.set_length(progress.bytes_total.max(progress.bytes_read));
                    bar.set_position(progress.bytes_read);
                    bar.set_message(format!("{} messages, {:.0}/s", progress.messages_published, progress.messages_per_second));
                }
            }
            Some(import_update::Update::Summary(done)) => summary = Some(done),
            Some(import_update::Update::Progress(_)) | None => {}
        }
    }
    if let Some(bar) = &progress_bar {
        bar.finish_and_clear();
    }
    let Some(summary) = summary else {
        bail!("the import ended without a summary");
    };
    print_summary(&summary, json);
    Ok(())
}

/// One file of an upload: where it is here and its path inside the export.
#[derive(Debug)]
struct FileToUpload {
    local_path: PathBuf,
    relative_path: String,
    size: u64,
}

/// Lists what to send: every file of a folder (media included), or the one file given.
fn files_to_upload(path: &Path) -> anyhow::Result<Vec<FileToUpload>> {
    let metadata = std::fs::metadata(path).with_context(|| format!("cannot read {}", path.display()))?;
    let is_html_page = path.file_name().and_then(|name| name.to_str()).is_some_and(|name| name.starts_with("messages") && name.ends_with(".html"));
    if metadata.is_file() && is_html_page {
        // An HTML export is its folder: every page, and the media the pages link to.
        if let Some(folder) = path.parent() {
            return files_to_upload(folder);
        }
    }
    if metadata.is_file() {
        let name = path.file_name().map(|name| name.to_string_lossy().into_owned()).unwrap_or_else(|| "result.json".to_owned());
        return Ok(vec![FileToUpload { local_path: path.to_path_buf(), relative_path: name, size: metadata.len() }]);
    }
    let mut files = Vec::new();
    for entry in walkdir::WalkDir::new(path).sort_by_file_name() {
        let entry = entry.with_context(|| format!("listing {}", path.display()))?;
        if !entry.file_type().is_file() {
            continue;
        }
        let relative = entry.path().strip_prefix(path).context("file outside the export folder")?;
        let relative_path = relative.components().map(|part| part.as_os_str().to_string_lossy().into_owned()).collect::<Vec<_>>().join("/");
        files.push(FileToUpload { local_path: entry.path().to_path_buf(), relative_path, size: entry.metadata()?.len() });
    }
    if files.is_empty() {
        return Err(invalid_argument(format!("{} holds no files", path.display())));
    }
    Ok(files)
}

/// Streams the header, then every file in 1 MiB chunks, read as the server takes them.
fn upload_requests(
    files: Vec<FileToUpload>,
    header: UploadExportHeader,
    progress_bar: Option<ProgressBar>,
) -> impl futures::Stream<Item = UploadExportRequest> {
    const CHUNK_BYTES: usize = 1 << 20;
    let (sender, receiver) = tokio::sync::mpsc::channel(4);
    tokio::spawn(async move {
        let header = UploadExportRequest { item: Some(upload_export_request::Item::Header(header)) };
        if sender.send(header).await.is_err() {
            return;
        }
        for file in files {
            let Ok(mut reader) = tokio::fs::File::open(&file.local_path).await else {
                // The server sees a short upload and refuses it with a clear error.
                return;
            };
            loop {
                let mut buffer = vec![0u8; CHUNK_BYTES];
                let read = match tokio::io::AsyncReadExt::read(&mut reader, &mut buffer).await {
                    Ok(0) | Err(_) => break,
                    Ok(read) => read,
                };
                buffer.truncate(read);
                if let Some(bar) = &progress_bar {
                    bar.inc(read as u64);
                }
                let chunk = ExportFileChunk { relative_path: file.relative_path.clone(), data: buffer };
                if sender.send(UploadExportRequest { item: Some(upload_export_request::Item::Chunk(chunk)) }).await.is_err() {
                    return;
                }
            }
        }
    });
    tokio_stream::wrappers::ReceiverStream::new(receiver)
}

fn new_progress_bar() -> ProgressBar {
    let bar = ProgressBar::new(0);
    bar.set_style(
        ProgressStyle::with_template("{spinner} [{elapsed_precise}] {wide_bar} {bytes}/{total_bytes} {bytes_per_sec} ETA {eta} {msg}")
            .unwrap_or_else(|_| ProgressStyle::default_bar()),
    );
    bar.enable_steady_tick(Duration::from_millis(120));
    bar
}

fn print_summary(summary: &ImportSummary, json: bool) {
    let token = summary.consistency_token.as_ref().map(|token| token.value.clone()).unwrap_or_default();
    if json {
        let warnings: serde_json::Map<String, serde_json::Value> =
            summary.warnings.iter().map(|warning| (warning.kind.clone(), warning.count.into())).collect();
        crate::output::print_json(&json!({
            "import_id": summary.import_id,
            "chats": summary.chats,
            "chat_ids": summary.chat_ids,
            "messages": summary.messages,
            "service_messages": summary.service_messages,
            "attachments": summary.attachments,
            "warnings": warnings,
            "bytes_read": summary.bytes_read,
            "seconds": summary.seconds,
            "consistency_token": token,
        }));
        return;
    }
    outln!(
        "imported {} chat(s), {} messages ({} service), {} attachment(s) in {:.1}s",
        summary.chats,
        summary.messages,
        summary.service_messages,
        summary.attachments,
        summary.seconds
    );
    for chat_id in &summary.chat_ids {
        outln!("  chat {chat_id}");
    }
    if summary.warnings.is_empty() {
        outln!("warnings: none");
    } else {
        for warning in &summary.warnings {
            outln!("warning {}: {}", warning.kind, warning.count);
        }
    }
    outln!("consistency token: {token}");
}

fn parse_utc_offset(text: &str) -> Result<i32, String> {
    let invalid = || format!("{text:?} is not a UTC offset like +03:00 or -05:30");
    let (sign, rest) = match text.as_bytes().first() {
        Some(b'+') => (1, &text[1..]),
        Some(b'-') => (-1, &text[1..]),
        _ => return Err(invalid()),
    };
    let (hours, minutes) = rest.split_once(':').ok_or_else(invalid)?;
    let hours: i32 = hours.parse().map_err(|_| invalid())?;
    let minutes: i32 = minutes.parse().map_err(|_| invalid())?;
    if hours > 14 || minutes > 59 {
        return Err(invalid());
    }
    Ok(sign * (hours * 3600 + minutes * 60))
}

#[cfg(test)]
mod tests {
    use super::parse_utc_offset;

    #[test]
    fn utc_offsets_parse_with_sign() {
        assert_eq!(parse_utc_offset("+03:00"), Ok(10_800));
        assert_eq!(parse_utc_offset("-05:30"), Ok(-19_800));
        assert!(parse_utc_offset("3").is_err());
        assert!(parse_utc_offset("+25:00").is_err());
    }
}
