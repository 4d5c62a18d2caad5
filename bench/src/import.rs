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
use telegram_export::{ExportEvent, JsonExportReader, ParseOptions};

use crate::process::{mebibytes, peak_rss_bytes};

const CHAT_ID: i64 = 5_000_000_001;

pub(crate) async fn run(message_count: u64) -> anyhow::Result<()> {
    let export_path = synthetic_export(message_count)?;
    let export_bytes = std::fs::metadata(&export_path)?.len();
    println!("export: {} messages, {:.1} MB ({})", message_count, export_bytes as f64 / 1e6, export_path.display());

    let (read_seconds, parse_seconds) = parser_against_plain_read(&export_path)?;
    let read_rate = export_bytes as f64 / 1e6 / read_seconds;
    let parse_rate = export_bytes as f64 / 1e6 / parse_seconds;

    let database = TestDb::fresh().await;
    let topic_prefix = unique_topic_prefix();
    let environment = service_environment(database.url.expose(), &topic_prefix);
    let logs = std::env::temp_dir();
    let ingest = spawn_service_process("chatvault-ingest", "INGEST", environment.clone(), &logs.join("bench-ingest.log")).await;
    let storage = spawn_service_process("chatvault-storage", "STORAGE", environment, &logs.join("bench-storage.log")).await;

    let started = Instant::now();
    let cli = Command::new(binaries_folder().join("chatvault"))
        .args(["import", "--json"])
        .arg(&export_path)
        .env("CHATVAULT_INGEST_URL", format!("http://{}", ingest.grpc_addr))
        .output()
        .context("running chatvault import")?;
    if !cli.status.success() {
        bail!("chatvault import failed: {}", String::from_utf8_lossy(&cli.stderr));
    }
    let summary: serde_json::Value = serde_json::from_slice(&cli.stdout).context("import summary JSON")?;
    let published_seconds = started.elapsed().as_secs_f64();
    let token = summary["consistency_token"].as_str().unwrap_or_default().to_owned();
    let mut storage_client = StorageServiceClient::connect(format!("http://{}", storage.grpc_addr)).await?;
    storage_client
        .list_chats(ListChatsRequest { consistency_token: Some(ConsistencyToken { value: token }) })
        .await
        .context("waiting for the projection to apply the import")?;
    let end_to_end_seconds = started.elapsed().as_secs_f64();
    let ingest_peak = peak_rss_bytes(ingest.child.id()).unwrap_or(0);
    let storage_peak = peak_rss_bytes(storage.child.id()).unwrap_or(0);
    drop(ingest);
    drop(storage);

    let client = database.client().await;
    let stored: i64 = client.query_one("SELECT count(*) FROM messages", &[]).await?.get(0);
    if stored != message_count as i64 {
        bail!("storage holds {stored} messages, the export {message_count}");
    }
    let copy_seconds = copy_from_baseline(&client).await?;

    let import_rate = message_count as f64 / end_to_end_seconds;
    let copy_rate = message_count as f64 / copy_seconds;
    println!();
    println!("{:<52} {:>14} {:>10}", "figure", "value", "ratio");
    println!("{:<52} {:>10.1} MB/s {:>10}", "plain read of result.json (limit)", read_rate, "");
    println!("{:<52} {:>10.1} MB/s {:>10.3}", "parser alone (JsonExportReader)", parse_rate, parse_rate / read_rate);
    println!("{:<52} {:>10.0} /s {:>12}", "PostgreSQL COPY FROM, same rows, same table (limit)", copy_rate, "");
    println!("{:<52} {:>10.0} /s {:>12.3}", "end-to-end import, CLI start → projection applied", import_rate, import_rate / copy_rate);
    println!("{:<52} {:>14.1} s", "  of which: CLI until the transaction committed", published_seconds);
    println!("{:<52} {:>14}", "ingest peak RSS (target < 128 MiB)", mebibytes(ingest_peak));
    println!("{:<52} {:>14}", "storage peak RSS", mebibytes(storage_peak));
    println!();
    println!("target: end-to-end ÷ COPY ≥ 0.5 → {}", if import_rate / copy_rate >= 0.5 { "met" } else { "not met" });
    Ok(())
}

/// Returns the cached export of `message_count` messages, generating it once.
fn synthetic_export(message_count: u64) -> anyhow::Result<PathBuf> {
    let folder = Path::new(env!("CARGO_MANIFEST_DIR")).join("out").join(format!("export-{message_count}"));
    let path = folder.join("result.json");
    if !path.exists() {
        std::fs::create_dir_all(&folder)?;
        let partial = folder.join("result.json.partial");
        telegram_export::write_synthetic_export(BufWriter::new(File::create(&partial)?), CHAT_ID, message_count, 1)?;
        std::fs::rename(&partial, &path)?;
    }
    Ok(path)
}

/// Times reading the file plainly and parsing it with the export reader (best of two each).
fn parser_against_plain_read(path: &Path) -> anyhow::Result<(f64, f64)> {
    let mut best_read = f64::MAX;
    let mut best_parse = f64::MAX;
    for _ in 0..2 {
        let started = Instant::now();
        let mut file = BufReader::with_capacity(1 << 20, File::open(path)?);
        let mut buffer = vec![0u8; 1 << 20];
        while file.read(&mut buffer)? > 0 {}
        best_read = best_read.min(started.elapsed().as_secs_f64());

        let started = Instant::now();
        let mut reader = JsonExportReader::new(BufReader::with_capacity(1 << 20, File::open(path)?), path.display().to_string(), ParseOptions::default());
        let mut messages = 0u64;
        while let Some(event) = reader.next_event()? {
            if matches!(event, ExportEvent::Message(_)) {
                messages += 1;
            }
        }
        std::hint::black_box(messages);
        best_parse = best_parse.min(started.elapsed().as_secs_f64());
    }
    Ok((best_read, best_parse))
}

/// Copies the projected rows out, then times `COPY FROM` of exactly those rows into a
/// table identical to `messages` (same columns, primary key and indexes).
async fn copy_from_baseline(client: &tokio_postgres::Client) -> anyhow::Result<f64> {
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
