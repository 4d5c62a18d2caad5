//! The import benchmark.

use std::fs::File;
use std::io::{BufReader, BufWriter, Read};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use chatvault_common::test_support::{binaries_folder, service_environment, spawn_service_process, unique_topic_prefix, TestDb};
use chatvault_proto::common::v1::ConsistencyToken;
use chatvault_proto::storage::v1::storage_service_client::StorageServiceClient;
use chatvault_proto::storage::v1::ListChatsRequest;
use futures::SinkExt;
use telegram_export::{ExportEvent, HtmlExportReader, HtmlParseOptions, JsonExportReader, ParseOptions};

use crate::process::{mebibytes, peak_rss_bytes};

const CHAT_ID: i64 = 5_000_000_001;

/// Which export format the benchmark generates and imports.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum ExportFormat {
    Json,
    Html,
}

pub(crate) async fn run(format: ExportFormat, message_count: u64) -> anyhow::Result<()> {
    let export_path = synthetic_export(format, message_count)?;
    let export_files = export_files(&export_path)?;
    let export_bytes: u64 = export_files.iter().map(|file| std::fs::metadata(file).map(|metadata| metadata.len()).unwrap_or(0)).sum();
    println!(
        "export ({format:?}): {} messages, {:.1} MB in {} file(s) ({})",
        message_count,
        export_bytes as f64 / 1e6,
        export_files.len(),
        export_path.display()
    );

    let (read_seconds, parse_seconds) = parser_against_plain_read(format, &export_path, &export_files)?;
    let read_rate = export_bytes as f64 / 1e6 / read_seconds;
    let parse_rate = export_bytes as f64 / 1e6 / parse_seconds;

    let database = TestDb::fresh().await;
    let topic_prefix = unique_topic_prefix();
    let mut environment = service_environment(database.url.expose(), &topic_prefix);
    // A large export takes minutes to project; the query below waits for all of it.
    environment.insert("CHATVAULT_CONSISTENCY_WAIT_MS".to_owned(), "7200000".to_owned());
    let logs = std::env::temp_dir();
    let ingest = spawn_service_process("chatvault-ingest", "INGEST", environment.clone(), &logs.join("bench-ingest.log")).await;
    let storage = spawn_service_process("chatvault-storage", "STORAGE", environment, &logs.join("bench-storage.log")).await;

    let started = Instant::now();
    // The server-path import: the export is read where it lies, as an admin would run it.
    let cli = Command::new(binaries_folder().join("chatvault"))
        .args(["import", "--json", "--server-path", "--chat-id", &CHAT_ID.to_string()])
        .arg(&export_path)
        .env("CHATVAULT_INGEST_URL", format!("http://{}", ingest.grpc_addr))
        .output()
        .context("running chatvault import")?;
    if !cli.status.success() {
        bail!("chatvault import failed: {}", String::from_utf8_lossy(&cli.stderr));
    }
    let summary: serde_json::Value = serde_json::from_slice(&cli.stdout).context("import summary JSON")?;
    let published_seconds = started.elapsed().as_secs_f64();
    // Ingest's work ends with the commit; its peak is taken before the long wait below.
    let ingest_peak = peak_rss_bytes(ingest.child.id()).unwrap_or(0);
    let token = summary["consistency_token"].as_str().unwrap_or_default().to_owned();
    let mut storage_client = StorageServiceClient::connect(format!("http://{}", storage.grpc_addr)).await?;
    storage_client
        .list_chats(ListChatsRequest { consistency_token: Some(ConsistencyToken { value: token }) })
        .await
        .context("waiting for the projection to apply the import")?;
    let end_to_end_seconds = started.elapsed().as_secs_f64();
    let storage_peak = peak_rss_bytes(storage.child.id()).unwrap_or(0);
    drop(ingest);
    drop(storage);

    let client = database.client().await;
    let stored: i64 = client.query_one("SELECT count(*) FROM messages", &[]).await?.get(0);
    if stored != summary["messages"].as_i64().unwrap_or(-1) {
        bail!("storage holds {stored} messages, the export {message_count}");
    }
    let copy_seconds = copy_from_baseline(&client).await?;

    let import_rate = message_count as f64 / end_to_end_seconds;
    let copy_rate = message_count as f64 / copy_seconds;
    println!();
    println!("{:<52} {:>14} {:>10}", "figure", "value", "ratio");
    println!("{:<52} {:>10.1} MB/s {:>10}", "plain read of the export's files (limit)", read_rate, "");
    println!("{:<52} {:>10.1} MB/s {:>10.3}", format!("parser alone ({format:?} reader)"), parse_rate, parse_rate / read_rate);
    println!("{:<52} {:>10.0} /s {:>12}", "PostgreSQL COPY FROM, same rows, same table (limit)", copy_rate, "");
    println!("{:<52} {:>10.0} /s {:>12.3}", "end-to-end import, CLI start → projection applied", import_rate, import_rate / copy_rate);
    println!("{:<52} {:>14.1} s", "  of which: CLI until the transaction committed", published_seconds);
    println!("{:<52} {:>14}", "ingest peak RSS (target < 128 MiB)", mebibytes(ingest_peak));
    println!("{:<52} {:>14}", "storage peak RSS", mebibytes(storage_peak));
    println!();
    println!("target: end-to-end ÷ COPY ≥ 0.5 → {}", if import_rate / copy_rate >= 0.5 { "met" } else { "not met" });
    Ok(())
}

/// Returns the cached export of `message_count` messages (its `result.json`, or the folder
/// of its HTML pages), generating it once.
fn synthetic_export(format: ExportFormat, message_count: u64) -> anyhow::Result<PathBuf> {
    let out = Path::new(env!("CARGO_MANIFEST_DIR")).join("out");
    match format {
        ExportFormat::Json => {
            let folder = out.join(format!("export-{message_count}"));
            let path = folder.join("result.json");
            if !path.exists() {
                std::fs::create_dir_all(&folder)?;
                let partial = folder.join("result.json.partial");
                telegram_export::write_synthetic_export(BufWriter::new(File::create(&partial)?), CHAT_ID, message_count, 1)?;
                std::fs::rename(&partial, &path)?;
            }
            Ok(path)
        }
        ExportFormat::Html => {
            let folder = out.join(format!("html-export-{message_count}"));
            if !folder.join("complete").exists() {
                let _ = std::fs::remove_dir_all(&folder);
                telegram_export::write_synthetic_html_export(&folder, CHAT_ID, message_count, 1)?;
                File::create(folder.join("complete"))?;
            }
            Ok(folder)
        }
    }
}

/// Returns the files a reader reads: `result.json`, or every `messages*.html`.
fn export_files(export_path: &Path) -> anyhow::Result<Vec<PathBuf>> {
    if export_path.is_file() {
        return Ok(vec![export_path.to_path_buf()]);
    }
    let mut pages: Vec<PathBuf> = std::fs::read_dir(export_path)?
        .filter_map(|entry| entry.ok().map(|entry| entry.path()))
        .filter(|path| path.file_name().and_then(|name| name.to_str()).is_some_and(|name| name.starts_with("messages") && name.ends_with(".html")))
        .collect();
    pages.sort();
    Ok(pages)
}

/// Times reading the files plainly and parsing them with the export reader (best of two).
fn parser_against_plain_read(format: ExportFormat, export_path: &Path, files: &[PathBuf]) -> anyhow::Result<(f64, f64)> {
    let mut best_read = f64::MAX;
    let mut best_parse = f64::MAX;
    for _ in 0..2 {
        let started = Instant::now();
        let mut buffer = vec![0u8; 1 << 20];
        for path in files {
            let mut file = File::open(path)?;
            while file.read(&mut buffer)? > 0 {}
        }
        best_read = best_read.min(started.elapsed().as_secs_f64());

        let started = Instant::now();
        let mut messages = 0u64;
        match format {
            ExportFormat::Json => {
                let mut reader = JsonExportReader::new(
                    BufReader::with_capacity(1 << 20, File::open(export_path)?),
                    export_path.display().to_string(),
                    ParseOptions::default(),
                );
                while let Some(event) = reader.next_event()? {
                    messages += u64::from(matches!(event, ExportEvent::Message(_)));
                }
            }
            ExportFormat::Html => {
                let mut reader = HtmlExportReader::open(export_path, Some(CHAT_ID), HtmlParseOptions::default())?;
                while let Some(event) = reader.next_event()? {
                    messages += u64::from(matches!(event, ExportEvent::Message(_)));
                }
            }
        }
        std::hint::black_box(messages);
        best_parse = best_parse.min(started.elapsed().as_secs_f64());
    }
    Ok((best_read, best_parse))
}

/// Copies the projected rows out, then times `COPY FROM` of exactly those rows into a
/// table identical to `messages` (same columns, primary key and indexes).
pub(crate) async fn copy_from_baseline(client: &tokio_postgres::Client) -> anyhow::Result<f64> {
    let mut rows = Vec::new();
    let out = client.copy_out("COPY messages TO STDOUT (FORMAT binary)").await?;
    futures::pin_mut!(out);
    while let Some(chunk) = futures::StreamExt::next(&mut out).await {
        rows.extend_from_slice(&chunk?);
    }
    client.batch_execute("CREATE TABLE copy_baseline (LIKE messages INCLUDING ALL)").await?;
    let started = Instant::now();
    let sink = client.copy_in("COPY copy_baseline FROM STDIN (FORMAT binary)").await?;
    futures::pin_mut!(sink);
    for chunk in rows.chunks(1 << 20) {
        sink.send(bytes::Bytes::copy_from_slice(chunk)).await?;
    }
    sink.as_mut().finish().await?;
    let seconds = started.elapsed().as_secs_f64();
    tokio::time::sleep(Duration::from_millis(1)).await;
    Ok(seconds)
}
