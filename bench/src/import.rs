//! `chatvault-bench import [--format json|html] [--messages N]`: the end-to-end import of
//! a synthetic N-message export (JSON `result.json`, or HTML `messages*.html` pages), from
//! the start of `chatvault import --server-path` until a storage query with the import's
//! consistency token answers (every message queryable), against PostgreSQL `COPY FROM` of
//! the same rows into an identical table. Also the parser alone against plainly reading the
//! files, and the peak RSS of ingest and storage. Storage must hold exactly the export's
//! messages, or the run fails.

use std::fs::File;
use std::io::{BufReader, BufWriter, Read};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use chatvault_bench::platform::Platform;
use chatvault_bench::process::mebibytes;
use chatvault_bench::results::{check_equal, record, Row, Target};
use futures::SinkExt;
use telegram_export::{ExportEvent, HtmlExportReader, HtmlParseOptions, JsonExportReader, ParseOptions};

const CHAT_ID: i64 = 5_000_000_001;
/// The sizes of the performance table's import rows.
pub(crate) const FULL_JSON_MESSAGES: u64 = 1_000_000;
pub(crate) const FULL_HTML_MESSAGES: u64 = 200_000;
/// The peak memory ingest keeps below while importing, whatever the export's size.
pub(crate) const INGEST_RSS_LIMIT_BYTES: u64 = 128 << 20;

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

    // Also leaves the export in the page cache, as for every import row.
    let (read_seconds, parse_seconds) = parser_against_plain_read(format, &export_path, &export_files)?;
    let read_rate = export_bytes as f64 / 1e6 / read_seconds;
    let parse_rate = export_bytes as f64 / 1e6 / parse_seconds;

    let label = match format {
        ExportFormat::Json => "import-json",
        ExportFormat::Html => "import-html",
    };
    let platform = Platform::start(label, None).await?;
    let started = Instant::now();
    let summary = platform.import_with_cli(&export_path, CHAT_ID)?;
    let published_seconds = started.elapsed().as_secs_f64();
    // Ingest's work ends with the commit; its peak is taken before the long wait below.
    let ingest_peak = platform.peak_memory().ingest;
    let token = summary["consistency_token"].as_str().unwrap_or_default().to_owned();
    platform.wait_for_storage(&token).await?;
    let end_to_end_seconds = started.elapsed().as_secs_f64();
    let storage_peak = platform.peak_memory().storage;
    if format == ExportFormat::Json {
        crate::web::run(&platform, CHAT_ID, message_count, message_count >= FULL_JSON_MESSAGES).await?;
    }
    let database = platform.stop();

    check_equal("messages in the import summary", summary["messages"].as_u64(), Some(message_count))?;
    check_equal("chats in the import summary", summary["chats"].as_u64(), Some(1))?;
    let client = database.client().await;
    let stored: i64 = client.query_one("SELECT count(*) FROM messages", &[]).await?.get(0);
    check_equal("messages in storage", stored, message_count as i64)?;
    let copy_seconds = copy_from_baseline(&client).await?;

    let import_rate = message_count as f64 / end_to_end_seconds;
    let copy_rate = message_count as f64 / copy_seconds;
    println!();
    println!("{:<52} {:>14} {:>10}", "figure", "value", "ratio");
    println!("{:<52} {:>10.1} MB/s {:>10}", "plain read of the export's files (limit)", read_rate, "");
    println!("{:<52} {:>10.1} MB/s {:>10.3}", format!("parser alone ({format:?} reader)"), parse_rate, parse_rate / read_rate);
    println!("{:<52} {:>10.0} /s {:>12}", "PostgreSQL COPY FROM, same rows, same table (limit)", copy_rate, "");
    println!("{:<52} {:>10.0} /s {:>12.3}", "end-to-end import, CLI start → projection applied", import_rate, import_rate / copy_rate);
    println!("{:<52} {:>14.1} s", "  of which: CLI until the import committed", published_seconds);
    println!("{:<52} {:>14}", "ingest peak RSS (target ≤ 128 MiB)", mebibytes(ingest_peak));
    println!("{:<52} {:>14}", "storage peak RSS", mebibytes(storage_peak));
    println!();
    println!("target: end-to-end ÷ COPY ≥ 0.5 → {}", if import_rate / copy_rate >= 0.5 { "met" } else { "not met" });

    let (key, work, full_size) = match format {
        ExportFormat::Json => ("import-json", "end-to-end JSON import", message_count >= FULL_JSON_MESSAGES),
        ExportFormat::Html => ("import-html", "end-to-end HTML import", message_count >= FULL_HTML_MESSAGES),
    };
    let format_name = match format {
        ExportFormat::Json => "JSON",
        ExportFormat::Html => "HTML",
    };
    record(&Row {
        key: key.to_owned(),
        work: format!("{work}, {} messages", chatvault_bench::results::thousands(message_count)),
        figure: import_rate,
        unit: "messages/s".to_owned(),
        limit: copy_rate,
        limit_name: "PostgreSQL COPY FROM (binary), same rows, identical table".to_owned(),
        target: Target::RatioAtLeast(0.5),
        full_size,
        notes: format!(
            "export {:.1} MB; {:.1} s end to end, of which {:.1} s until ingest committed; storage peak RSS {}",
            export_bytes as f64 / 1e6,
            end_to_end_seconds,
            published_seconds,
            mebibytes(storage_peak)
        ),
    })?;
    record(&Row {
        key: format!("parser-{}", format_name.to_lowercase()),
        work: format!("{format_name} parser alone, {:.1} MB export", export_bytes as f64 / 1e6),
        figure: parse_rate,
        unit: "MB/s".to_owned(),
        limit: read_rate,
        limit_name: "plain read of the same files".to_owned(),
        target: Target::None,
        full_size,
        notes: String::new(),
    })?;
    record(&Row {
        key: format!("ingest-rss-{}", format_name.to_lowercase()),
        work: format!("ingest peak RSS, {format_name} import of {:.1} MB", export_bytes as f64 / 1e6),
        figure: ingest_peak as f64 / (1024.0 * 1024.0),
        unit: "MiB".to_owned(),
        limit: INGEST_RSS_LIMIT_BYTES as f64 / (1024.0 * 1024.0),
        limit_name: "ingest's memory budget".to_owned(),
        target: Target::AtMostLimit,
        full_size,
        notes: String::new(),
    })?;
    Ok(())
}

/// Returns the cached export of `message_count` messages (its `result.json`, or the folder
/// of its HTML pages), generating it once.
fn synthetic_export(format: ExportFormat, message_count: u64) -> anyhow::Result<PathBuf> {
    let out = out_folder();
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

/// The folder of cached exports and results: `bench/out/`.
pub(crate) fn out_folder() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("out")
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
