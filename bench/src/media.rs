//! `chatvault-bench media [--media-bytes B]`: the end-to-end import of a Telegram Desktop
//! JSON export whose messages carry 20% media files (photos `.jpg`, voice messages `.ogg`,
//! documents `.pdf`; 1–5 MB of random bytes each, about `B` bytes in all, 2 GB by
//! default), through six storage nodes, the way an admin imports an export folder
//! (`chatvault import --server-path`): ingest stores every attachment on the nodes and
//! publishes the messages; the clock stops when storage has applied every message.
//!
//! Two figures from that one time: messages per second against PostgreSQL `COPY FROM` of the
//! same rows into an identical table, and media bytes per second against `dd` writing the
//! same number of bytes with `conv=fdatasync` in the nodes' folder. Ingest's peak memory on
//! this export is the performance table's "ingest peak RSS on a 2 GB export".
//!
//! Before any figure is reported the outcome is checked against the source: the summary
//! and storage hold every message, every media message links a file whose size and SHA-256
//! in storage's catalog are the source file's, and every file downloaded again hashes to the
//! source file's SHA-256.

use std::collections::HashMap;
use std::fs::File;
use std::io::{BufWriter, Read, Write};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use chatvault_bench::disk::{dd_write_seconds, folder_bytes};
use chatvault_bench::platform::{bench_folder, download, Platform, NODE_COUNT};
use chatvault_bench::process::mebibytes;
use chatvault_bench::results::{check_equal, record, thousands, Row, Target};
use rand::{RngCore, SeedableRng};
use sha2::{Digest, Sha256};

use crate::import::{copy_from_baseline, out_folder, INGEST_RSS_LIMIT_BYTES};

const CHAT_ID: i64 = 5_200_000_001;
/// One message in five carries a file: 20%.
const MESSAGES_PER_FILE: u64 = 5;
const SMALLEST_FILE: u64 = 1_000_000;
const LARGEST_FILE: u64 = 5_000_000;
/// The media total of the performance table's row (and of its "2 GB export").
pub(crate) const FULL_MEDIA_BYTES: u64 = 2_000_000_000;
const SEED: u64 = 20;

/// The kinds of media files, as Telegram Desktop exports them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum MediaKind {
    Photo,
    Voice,
    Document,
}

impl MediaKind {
    /// Half photos, a quarter voice messages, a quarter documents.
    fn of_file(index: u64) -> Self {
        match index % 4 {
            0 | 2 => MediaKind::Photo,
            1 => MediaKind::Document,
            _ => MediaKind::Voice,
        }
    }
}

/// One media file of the export and the message that carries it.
#[derive(Debug, Clone, PartialEq, Eq)]
struct MediaFile {
    message_id: u64,
    relative_path: String,
    size: u64,
    sha256: String,
}

/// A generated export: its `result.json`, its message count and its media files.
#[derive(Debug)]
struct MediaExport {
    result_json: PathBuf,
    messages: u64,
    files: Vec<MediaFile>,
}

impl MediaExport {
    fn media_bytes(&self) -> u64 {
        self.files.iter().map(|file| file.size).sum()
    }

    fn total_bytes(&self) -> u64 {
        self.media_bytes() + std::fs::metadata(&self.result_json).map(|metadata| metadata.len()).unwrap_or(0)
    }
}

pub(crate) async fn run(media_bytes: u64) -> anyhow::Result<()> {
    let export = media_export(media_bytes)?;
    let (export_media_bytes, export_total_bytes) = (export.media_bytes(), export.total_bytes());
    println!(
        "export (JSON with media): {} messages, {} media files ({:.1} MB of media, 1–5 MB each), {:.2} GB in all ({})",
        export.messages,
        export.files.len(),
        export_media_bytes as f64 / 1e6,
        export_total_bytes as f64 / 1e9,
        export.result_json.display()
    );
    // As for every import row, the export is read from the page cache (warmed here).
    warm(&export)?;

    let node_root = bench_folder("chatvault-bench-media")?;
    let outcome = measure(&export, &node_root).await;
    let removed = std::fs::remove_dir_all(&node_root).with_context(|| format!("removing {}", node_root.display()));
    let measured = outcome?;
    removed?;

    let message_rate = export.messages as f64 / measured.end_to_end_seconds;
    let copy_rate = export.messages as f64 / measured.copy_seconds;
    let media_rate = export_media_bytes as f64 / 1e6 / measured.end_to_end_seconds;
    let dd_rate = export_media_bytes as f64 / 1e6 / measured.dd_seconds;
    let verdict = |met: bool| if met { "met" } else { "not met" };
    println!();
    println!("{:<60} {:>14} {:>10}", "figure", "value", "ratio");
    println!("{:<60} {:>10.0} /s {:>12}", "PostgreSQL COPY FROM, same rows, same table (limit)", copy_rate, "");
    println!("{:<60} {:>10.0} /s {:>12.3}", "import with media: messages, CLI start → projection applied", message_rate, message_rate / copy_rate);
    println!("{:<60} {:>9.1} MB/s {:>10}", "dd write of the media bytes, conv=fdatasync, nodes' folder (limit)", dd_rate, "");
    println!("{:<60} {:>9.1} MB/s {:>10.3}", "import with media: media bytes, same time", media_rate, media_rate / dd_rate);
    println!("{:<60} {:>14.1} s", "  end to end", measured.end_to_end_seconds);
    println!("{:<60} {:>14.1} s", "  of which: CLI until the import committed", measured.published_seconds);
    println!("{:<60} {:>14.1} MB", format!("  stored on the {NODE_COUNT} nodes (parity included)"), measured.stored_bytes as f64 / 1e6);
    println!(
        "{:<60} {:>14}",
        format!("ingest peak RSS ({:.2} GB export; target ≤ 128 MiB)", export_total_bytes as f64 / 1e9),
        mebibytes(measured.memory.ingest)
    );
    println!("{:<60} {:>14}", "storage peak RSS", mebibytes(measured.memory.storage));
    println!("{:<60} {:>14}", "largest storage node peak RSS", mebibytes(measured.memory.node));
    println!();
    println!("target: messages ÷ COPY ≥ 0.5 → {}", verdict(message_rate / copy_rate >= 0.5));
    println!("target: media bytes ÷ dd write ≥ 0.5 → {}", verdict(media_rate / dd_rate >= 0.5));
    println!("target: ingest peak RSS ≤ 128 MiB → {}", verdict(measured.memory.ingest <= INGEST_RSS_LIMIT_BYTES));

    let full_size = export_media_bytes >= FULL_MEDIA_BYTES;
    let work = format!(
        "{} messages, {} media files ({:.2} GB)",
        thousands(export.messages),
        thousands(export.files.len() as u64),
        export_media_bytes as f64 / 1e9
    );
    let timing = format!("{:.1} s end to end, of which {:.1} s until ingest committed", measured.end_to_end_seconds, measured.published_seconds);
    record(&Row {
        key: "import-media-messages".to_owned(),
        work: format!("JSON import with 20% media, messages: {work}"),
        figure: message_rate,
        unit: "messages/s".to_owned(),
        limit: copy_rate,
        limit_name: "PostgreSQL COPY FROM (binary), same rows, identical table".to_owned(),
        target: Target::RatioAtLeast(0.5),
        full_size,
        notes: timing.clone(),
    })?;
    record(&Row {
        key: "import-media-bytes".to_owned(),
        work: format!("JSON import with 20% media, media bytes: {work}"),
        figure: media_rate,
        unit: "MB/s".to_owned(),
        limit: dd_rate,
        limit_name: "dd write of the same bytes, bs=1M conv=fdatasync, nodes' folder".to_owned(),
        target: Target::RatioAtLeast(0.5),
        full_size,
        notes: format!("{timing}; {:.1} MB stored on {NODE_COUNT} nodes (6 data + 2 parity parts)", measured.stored_bytes as f64 / 1e6),
    })?;
    record(&Row {
        key: "ingest-rss".to_owned(),
        work: format!(
            "ingest peak RSS, {:.2} GB export ({} messages, {} media files)",
            export_total_bytes as f64 / 1e9,
            thousands(export.messages),
            export.files.len()
        ),
        figure: measured.memory.ingest as f64 / (1024.0 * 1024.0),
        unit: "MiB".to_owned(),
        limit: INGEST_RSS_LIMIT_BYTES as f64 / (1024.0 * 1024.0),
        limit_name: "ingest's memory budget".to_owned(),
        target: Target::AtMostLimit,
        full_size: export_total_bytes >= FULL_MEDIA_BYTES,
        notes: format!("storage {}, largest node {}", mebibytes(measured.memory.storage), mebibytes(measured.memory.node)),
    })?;
    Ok(())
}

/// What one run measured.
#[derive(Debug)]
struct Measured {
    end_to_end_seconds: f64,
    published_seconds: f64,
    copy_seconds: f64,
    dd_seconds: f64,
    stored_bytes: u64,
    memory: chatvault_bench::platform::PeakMemory,
}

/// Imports `export` into a platform whose nodes keep their parts under `node_root`, checks
/// the outcome, then measures the limits (COPY FROM, dd) with the services stopped.
async fn measure(export: &MediaExport, node_root: &Path) -> anyhow::Result<Measured> {
    let platform = Platform::start("media", Some(node_root)).await?;
    let started = Instant::now();
    let summary = platform.import_with_cli(&export.result_json, CHAT_ID)?;
    let published_seconds = started.elapsed().as_secs_f64();
    let token = summary["consistency_token"].as_str().unwrap_or_default().to_owned();
    platform.wait_for_storage(&token).await?;
    let end_to_end_seconds = started.elapsed().as_secs_f64();
    let memory = platform.peak_memory();

    check_equal("messages in the import summary", summary["messages"].as_u64(), Some(export.messages))?;
    check_equal("attachments in the import summary", summary["attachments"].as_u64(), Some(export.files.len() as u64))?;
    check_equal("warnings in the import summary", summary["warnings"].as_object().map(|warnings| warnings.len()), Some(0))?;
    let client = platform.database.client().await;
    let stored: i64 = client.query_one("SELECT count(*) FROM messages", &[]).await?.get(0);
    check_equal("messages in storage", stored, export.messages as i64)?;
    check_stored_files(&platform, &client, export).await?;
    let stored_bytes = folder_bytes(node_root)?;

    drop(client);
    let database = platform.stop();
    let copy_seconds = copy_from_baseline(&database.client().await).await?;
    // The parts go before dd writes in the same folder.
    std::fs::remove_dir_all(node_root).with_context(|| format!("removing {}", node_root.display()))?;
    std::fs::create_dir_all(node_root)?;
    let dd_file = node_root.join("dd.bin");
    let dd_seconds = dd_write_seconds(&dd_file, export.media_bytes())?;
    std::fs::remove_file(&dd_file).with_context(|| format!("removing {}", dd_file.display()))?;
    Ok(Measured { end_to_end_seconds, published_seconds, copy_seconds, dd_seconds, stored_bytes, memory })
}

/// Checks that every media message links a file, that storage's catalog has each file with
/// the source's size and SHA-256, and that each downloads with the source's SHA-256.
async fn check_stored_files(platform: &Platform, client: &tokio_postgres::Client, export: &MediaExport) -> anyhow::Result<()> {
    let linked: Vec<(i64, String)> = client
        .query("SELECT message_id, media->>'file_id' FROM messages WHERE media->>'file_id' IS NOT NULL ORDER BY message_id", &[])
        .await?
        .iter()
        .map(|row| (row.get(0), row.get(1)))
        .collect();
    let expected_ids: Vec<i64> = export.files.iter().map(|file| file.message_id as i64).collect();
    check_equal("messages that link a stored file", linked.iter().map(|(message_id, _)| *message_id).collect::<Vec<_>>(), expected_ids)?;
    let file_ids: Vec<String> = linked.iter().map(|(_, file_id)| file_id.clone()).collect();
    // The files catalog is projected from files.events, beside the messages.
    let deadline = Instant::now() + Duration::from_secs(300);
    let catalog: HashMap<String, (i64, String)> = loop {
        let rows = client.query("SELECT file_id, size, sha256 FROM files WHERE file_id = ANY($1)", &[&file_ids]).await?;
        let catalog: HashMap<String, (i64, String)> = rows.iter().map(|row| (row.get(0), (row.get(1), row.get(2)))).collect();
        if file_ids.iter().all(|file_id| catalog.contains_key(file_id)) {
            break catalog;
        }
        if Instant::now() > deadline {
            bail!("after 300 s storage's catalog holds {} of the {} attached files", catalog.len(), file_ids.len());
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    let mut files = platform.files().await?;
    for (source, file_id) in export.files.iter().zip(&file_ids) {
        let (size, sha256) = &catalog[file_id];
        check_equal(&format!("size of {} in storage", source.relative_path), *size, source.size as i64)?;
        check_equal(&format!("SHA-256 of {} in storage", source.relative_path), sha256, &source.sha256)?;
        let downloaded = download(&mut files, file_id, None, true).await?;
        check_equal(&format!("bytes of {} downloaded", source.relative_path), downloaded.bytes, source.size)?;
        check_equal(&format!("SHA-256 of {} downloaded", source.relative_path), downloaded.received_sha256.as_deref(), Some(source.sha256.as_str()))?;
    }
    println!(
        "checked: {} messages, {} files linked, sizes and SHA-256 in storage and downloaded equal to the source",
        export.messages,
        file_ids.len()
    );
    Ok(())
}

/// Reads every file of the export once, so the import reads them from the page cache.
fn warm(export: &MediaExport) -> anyhow::Result<()> {
    let folder = export.result_json.parent().context("export folder")?;
    let mut buffer = vec![0u8; 1 << 20];
    let paths = std::iter::once(export.result_json.clone()).chain(export.files.iter().map(|file| folder.join(&file.relative_path)));
    for path in paths {
        let mut file = File::open(&path).with_context(|| format!("opening {}", path.display()))?;
        while file.read(&mut buffer)? > 0 {}
    }
    Ok(())
}

/// Returns the cached export with about `media_bytes` of media (`bench/out/media-export-<B>`),
/// generating it once: files of 1–5 MB until their total reaches `media_bytes`, five
/// messages per file.
fn media_export(media_bytes: u64) -> anyhow::Result<MediaExport> {
    let folder = out_folder().join(format!("media-export-{media_bytes}"));
    let manifest = folder.join("manifest.tsv");
    if let Ok(export) = read_manifest(&folder, &manifest) {
        return Ok(export);
    }
    let _ = std::fs::remove_dir_all(&folder);
    std::fs::create_dir_all(&folder).with_context(|| format!("creating {}", folder.display()))?;
    let started = Instant::now();
    let export = write_media_export(&folder, media_bytes)?;
    let mut lines = String::new();
    for file in &export.files {
        lines.push_str(&format!("{}\t{}\t{}\t{}\n", file.message_id, file.relative_path, file.size, file.sha256));
    }
    lines.push_str(&format!("messages\t{}\n", export.messages));
    std::fs::write(&manifest, lines).with_context(|| format!("writing {}", manifest.display()))?;
    println!("generated the export in {:.1} s", started.elapsed().as_secs_f64());
    Ok(export)
}

/// Reads a complete cached export back from its manifest (written last).
fn read_manifest(folder: &Path, manifest: &Path) -> anyhow::Result<MediaExport> {
    let text = std::fs::read_to_string(manifest)?;
    let mut files = Vec::new();
    let mut messages = None;
    for line in text.lines() {
        let fields: Vec<&str> = line.split('\t').collect();
        match fields.as_slice() {
            ["messages", count] => messages = Some(count.parse()?),
            [message_id, relative_path, size, sha256] => {
                let file = MediaFile {
                    message_id: message_id.parse()?,
                    relative_path: (*relative_path).to_owned(),
                    size: size.parse()?,
                    sha256: (*sha256).to_owned(),
                };
                if std::fs::metadata(folder.join(&file.relative_path))?.len() != file.size {
                    bail!("{} changed size", file.relative_path);
                }
                files.push(file);
            }
            _ => bail!("unexpected manifest line {line:?}"),
        }
    }
    Ok(MediaExport { result_json: folder.join("result.json"), messages: messages.context("manifest without message count")?, files })
}

/// Writes `result.json` and the media files into `folder` in Telegram Desktop's layout.
fn write_media_export(folder: &Path, media_bytes: u64) -> anyhow::Result<MediaExport> {
    let mut sizes = rand::rngs::StdRng::seed_from_u64(SEED);
    let mut file_sizes = Vec::new();
    let mut total = 0;
    while total < media_bytes.max(1) {
        let size = SMALLEST_FILE + sizes.next_u64() % (LARGEST_FILE - SMALLEST_FILE + 1);
        file_sizes.push(size);
        total += size;
    }
    let messages = file_sizes.len() as u64 * MESSAGES_PER_FILE;
    for subfolder in ["photos", "voice_messages", "files"] {
        std::fs::create_dir_all(folder.join(subfolder))?;
    }
    let partial = folder.join("result.json.partial");
    let mut json = BufWriter::with_capacity(1 << 20, File::create(&partial)?);
    write!(json, "{{\n \"name\": \"Benchmark chat with media — медиа\",\n \"type\": \"private_supergroup\",\n \"id\": {CHAT_ID},\n \"messages\": [")?;
    let mut files = Vec::new();
    let mut content = rand::rngs::StdRng::seed_from_u64(SEED + 1);
    for message_id in 1..=messages {
        let unix_seconds = 1_763_800_000 + message_id as i64 * 37;
        let media = if message_id % MESSAGES_PER_FILE == 3 {
            let index = message_id / MESSAGES_PER_FILE;
            let size = file_sizes[index as usize];
            let kind = MediaKind::of_file(index);
            let stamp = file_stamp(unix_seconds);
            let relative_path = match kind {
                MediaKind::Photo => format!("photos/photo_{}@{stamp}.jpg", index + 1),
                MediaKind::Voice => format!("voice_messages/audio_{}@{stamp}.ogg", index + 1),
                MediaKind::Document => format!("files/report_{}.pdf", index + 1),
            };
            let sha256 = write_random_file(&folder.join(&relative_path), size, &mut content)?;
            files.push(MediaFile { message_id, relative_path: relative_path.clone(), size, sha256 });
            Some((kind, relative_path, size))
        } else {
            None
        };
        json.write_all(if message_id == 1 { b"\n" } else { b",\n" })?;
        write_message(&mut json, message_id, unix_seconds, media.as_ref())?;
    }
    json.write_all(b"\n ]\n}\n")?;
    json.into_inner().map_err(|error| error.into_error())?.sync_all()?;
    let result_json = folder.join("result.json");
    std::fs::rename(&partial, &result_json)?;
    Ok(MediaExport { result_json, messages, files })
}

/// Writes `size` random bytes to `path`; returns their SHA-256 (hex).
fn write_random_file(path: &Path, size: u64, random: &mut rand::rngs::StdRng) -> anyhow::Result<String> {
    let mut file = BufWriter::new(File::create(path).with_context(|| format!("creating {}", path.display()))?);
    let mut hasher = Sha256::new();
    let mut buffer = vec![0u8; 1 << 20];
    let mut left = size;
    while left > 0 {
        let length = left.min(buffer.len() as u64) as usize;
        random.fill_bytes(&mut buffer[..length]);
        hasher.update(&buffer[..length]);
        file.write_all(&buffer[..length])?;
        left -= length as u64;
    }
    file.flush()?;
    Ok(chatvault_bench::platform::hex(&hasher.finalize()))
}

const AUTHORS: [(&str, u64); 4] = [("Ann Lee", 1001), ("Борис Петров", 1002), ("Carla 🌸", 1003), ("Dmitri", 1004)];
const TEXTS: [&str; 5] = [
    "Привет! Вот файлы со вчерашней встречи",
    "Deploy is done 🚀",
    "see the attached report, page 3",
    "ok",
    "Отчёт за третий квартал готов: выручка выросла на 12%, подробности в приложенном файле.",
];

/// One message in tdesktop's layout (one space of indentation per level, its field order).
fn write_message(out: &mut impl Write, message_id: u64, unix_seconds: i64, media: Option<&(MediaKind, String, u64)>) -> std::io::Result<()> {
    let (author, user_id) = AUTHORS[(message_id % AUTHORS.len() as u64) as usize];
    write!(
        out,
        "  {{\n   \"id\": {message_id},\n   \"type\": \"message\",\n   \"date\": \"{}\",\n   \"date_unixtime\": \"{unix_seconds}\",\n",
        iso_date(unix_seconds)
    )?;
    write!(out, "   \"from\": \"{author}\",\n   \"from_id\": \"user{user_id}\",\n")?;
    match media {
        Some((MediaKind::Photo, path, size)) => {
            write!(out, "   \"photo\": \"{path}\",\n   \"photo_file_size\": {size},\n   \"width\": 1280,\n   \"height\": 960,\n")?
        }
        Some((MediaKind::Voice, path, size)) => {
            let name = path.rsplit('/').next().unwrap_or(path);
            write!(
                out,
                "   \"file\": \"{path}\",\n   \"file_name\": \"{name}\",\n   \"file_size\": {size},\n   \"media_type\": \"voice_message\",\n   \"mime_type\": \"audio/ogg\",\n   \"duration_seconds\": {},\n",
                size / 4000
            )?
        }
        Some((MediaKind::Document, path, size)) => {
            let name = path.rsplit('/').next().unwrap_or(path);
            write!(
                out,
                "   \"file\": \"{path}\",\n   \"file_name\": \"{name}\",\n   \"file_size\": {size},\n   \"mime_type\": \"application/pdf\",\n"
            )?
        }
        None => {}
    }
    // A media message has a caption one time in two; other messages always have text.
    let text = if media.is_some() && message_id.is_multiple_of(2) { "" } else { TEXTS[(message_id % TEXTS.len() as u64) as usize] };
    if text.is_empty() {
        out.write_all(b"   \"text\": \"\",\n   \"text_entities\": []\n  }")
    } else {
        write!(
            out,
            "   \"text\": \"{text}\",\n   \"text_entities\": [\n    {{\n     \"type\": \"plain\",\n     \"text\": \"{text}\"\n    }}\n   ]\n  }}"
        )
    }
}

/// Returns `unix_seconds` (UTC) in chrono's `format` syntax.
fn utc_formatted(unix_seconds: i64, format: &str) -> String {
    chrono::DateTime::from_timestamp(unix_seconds, 0).unwrap_or_default().format(format).to_string()
}

/// `2025-11-22T10:15:30`
fn iso_date(unix_seconds: i64) -> String {
    utc_formatted(unix_seconds, "%Y-%m-%dT%H:%M:%S")
}

/// `22-11-2025_10-15-30`, as in media file names.
fn file_stamp(unix_seconds: i64) -> String {
    utc_formatted(unix_seconds, "%d-%m-%Y_%H-%M-%S")
}

#[cfg(test)]
mod tests {
    use super::*;
    use telegram_export::{ExportEvent, JsonExportReader, ParseOptions};

    #[test]
    fn dates_are_formatted_as_exports_write_them() {
        assert_eq!(iso_date(0), "1970-01-01T00:00:00");
        assert_eq!(iso_date(951_782_400), "2000-02-29T00:00:00");
        assert_eq!(iso_date(1_763_806_530), "2025-11-22T10:15:30");
        assert_eq!(file_stamp(1_763_806_530), "22-11-2025_10-15-30");
    }

    #[test]
    fn the_export_parses_with_every_file_referenced_once() {
        let folder = std::env::temp_dir().join(format!("chatvault-bench-media-test-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&folder);
        std::fs::create_dir_all(&folder).unwrap();
        let export = write_media_export(&folder, 6_000_000).unwrap();
        assert!(export.media_bytes() >= 6_000_000 && export.files.iter().all(|file| (SMALLEST_FILE..=LARGEST_FILE).contains(&file.size)));
        assert_eq!(export.messages, export.files.len() as u64 * MESSAGES_PER_FILE);
        let reader = File::open(&export.result_json).unwrap();
        let mut events = JsonExportReader::new(std::io::BufReader::new(reader), "result.json".to_owned(), ParseOptions::default());
        let (mut messages, mut with_media) = (0, Vec::new());
        while let Some(event) = events.next_event().unwrap() {
            if let ExportEvent::Message(message) = event {
                messages += 1;
                assert!(message.warnings.is_empty(), "{:?}", message.warnings);
                if let Some(path) = message.media.and_then(|media| media.path) {
                    with_media.push((message.id as u64, path));
                }
            }
        }
        assert_eq!(messages, export.messages);
        let expected: Vec<(u64, String)> = export.files.iter().map(|file| (file.message_id, file.relative_path.clone())).collect();
        assert_eq!(with_media, expected);
        for file in &export.files {
            let bytes = std::fs::read(folder.join(&file.relative_path)).unwrap();
            assert_eq!(chatvault_bench::platform::hex(&Sha256::digest(&bytes)), file.sha256);
        }
        std::fs::remove_dir_all(&folder).unwrap();
    }
}
