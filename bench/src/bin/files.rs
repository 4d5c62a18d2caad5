//! The file-storage benchmark (`files [--bytes 1GiB] [--uploads 100] [--upload-bytes 1MiB]`),
//! each figure as a ratio to `dd` on the same disk in the same run:
//!
//! - upload of one 1 GiB file through ingest's FileUploadService, until ingest answers
//!   (every part durable on its node), against `dd` writing as many bytes with
//!   `conv=fdatasync`;
//! - download of that file with the page cache dropped (see `chatvault_bench::disk`),
//!   storage verifying the whole file's SHA-256 before the last byte, against `dd` reading a
//!   file of the same size with the page cache dropped;
//! - 100 distinct 1 MiB files uploaded at once, one connection each: files/s, p50 and p99
//!   latency, and bytes/s against `dd` writing 100 files of 1 MiB, each with
//!   `conv=fdatasync`, one after the other;
//!
//! and, for information, the SHA-256 throughput of the `sha2` crate (what file-store hashes
//! with) against `openssl speed -evp sha256`, and the peak RSS of ingest, storage and the
//! largest storage node.
//!
//! Every upload is checked: size and SHA-256 as ingest reports them, then downloaded again
//! (untimed) and hashed here; a difference fails the run.
//!
//! Run from the release folder (`target/release/files`): the services are started from the
//! binaries beside this executable, with six storage nodes whose data folders lie in one
//! temporary bench folder (where `dd` writes too). It needs Kafka and PostgreSQL of the local
//! stack. Files are streamed from a repeating 8 MiB random buffer in 1 MiB chunks, so the
//! client never holds the whole file. Everything under the bench folder is removed at the end.

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{ensure, Context};
use bytes::Bytes;
use chatvault_bench::args::{number_flag, reject_unknown};
use chatvault_bench::disk::{dd_read_seconds, dd_write_files_seconds, dd_write_seconds, drop_page_cache};
use chatvault_bench::platform::{bench_folder, download, drop_databases, hex, upload, Platform, EXPECTED_FAULT_TOLERANCE, NODE_COUNT};
use chatvault_bench::process::{mebibytes, percentile};
use chatvault_bench::results::{check_equal, record, Row, Target};
use chatvault_proto::storage::v1::StatFileRequest;
use rand::RngCore;
use sha2::{Digest, Sha256};

/// Size of one UploadFile chunk message.
const CHUNK_BYTES: usize = 1 << 20;
/// The random buffer the large file repeats.
const PATTERN_BYTES: usize = 8 << 20;
/// The sizes of the performance table's rows.
const FULL_FILE_BYTES: u64 = 1 << 30;
const FULL_UPLOADS: u64 = 100;
const FULL_UPLOAD_BYTES: u64 = 1 << 20;

#[derive(Debug, Clone, Copy)]
struct Settings {
    file_bytes: u64,
    uploads: u64,
    upload_bytes: u64,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let arguments: Vec<String> = std::env::args().skip(1).collect();
    if arguments.first().is_some_and(|argument| argument == "--help" || argument == "-h") {
        println!("files [--bytes 1GiB] [--uploads 100] [--upload-bytes 1MiB]");
        return Ok(());
    }
    reject_unknown(&arguments, &["--bytes", "--uploads", "--upload-bytes"])?;
    let settings = Settings {
        file_bytes: number_flag(&arguments, "--bytes")?.unwrap_or(FULL_FILE_BYTES),
        uploads: number_flag(&arguments, "--uploads")?.unwrap_or(FULL_UPLOADS),
        upload_bytes: number_flag(&arguments, "--upload-bytes")?.unwrap_or(FULL_UPLOAD_BYTES),
    };
    ensure!(settings.file_bytes > 0 && settings.uploads > 0 && settings.upload_bytes > 0, "sizes and counts must be at least 1");
    let folder = bench_folder("chatvault-bench-files")?;
    // The services are dropped (killed) inside `run`, before their data folders go.
    let outcome = run(&folder, settings).await;
    let cleanup = std::fs::remove_dir_all(&folder).with_context(|| format!("removing {}", folder.display()));
    let dropped = drop_databases().await;
    outcome?;
    cleanup?;
    dropped
}

async fn run(folder: &Path, settings: Settings) -> anyhow::Result<()> {
    let sha_ni = cpu_has_sha_extensions();
    let sha2_rate = sha2_throughput();
    let openssl_rate = openssl_sha256_throughput();

    let platform = Platform::start("files", Some(folder)).await?;
    let mut files = platform.files().await?;
    let mut uploads = platform.uploads().await?;

    // Upload: timed until ingest answers (every part stored, the FileStored event published).
    let mut pattern = vec![0u8; PATTERN_BYTES];
    rand::rng().fill_bytes(&mut pattern);
    let pattern = Bytes::from(pattern);
    let expected_sha256 = sha256_of_stream(file_chunks(pattern.clone(), settings.file_bytes)).await;
    let started = Instant::now();
    let stored = upload(&mut uploads, "bench-large.bin", file_chunks(pattern, settings.file_bytes)).await.context("uploading the large file")?;
    let upload_seconds = started.elapsed().as_secs_f64();
    check_equal("size ingest stored", stored.size, settings.file_bytes)?;
    check_equal("SHA-256 ingest stored", stored.sha256.as_str(), expected_sha256.as_str())?;
    check_equal("fault tolerance of the upload", stored.fault_tolerance, EXPECTED_FAULT_TOLERANCE)?;

    // Download: wait (untimed) until storage lists the file, drop the page cache, then time
    // the stream; storage checks the whole-file SHA-256 before the last chunk.
    let request = StatFileRequest { file_id: stored.file_id.clone(), consistency_token: stored.consistency_token.clone() };
    files.stat_file(request).await.context("waiting for storage to list the file")?;
    let download_cache = drop_page_cache(&[folder])?;
    let started = Instant::now();
    let downloaded = download(&mut files, &stored.file_id, None, false).await?;
    let download_seconds = started.elapsed().as_secs_f64();
    check_equal("bytes downloaded", downloaded.bytes, settings.file_bytes)?;
    check_equal("size storage announced", downloaded.announced_size, settings.file_bytes)?;
    check_equal("SHA-256 storage announced", downloaded.announced_sha256.as_str(), expected_sha256.as_str())?;
    // Once more, untimed, hashing the bytes here.
    let verified = download(&mut files, &stored.file_id, None, true).await?;
    check_equal("SHA-256 of the bytes downloaded", verified.received_sha256.as_deref(), Some(expected_sha256.as_str()))?;

    // Peak memory after the one large file, before the concurrent uploads raise it.
    let single_file_memory = platform.peak_memory();
    let concurrent = concurrent_uploads(&platform, settings.uploads, settings.upload_bytes).await?;

    // Peak memory of the whole run, then the services stop before dd uses the disk.
    let memory = platform.peak_memory();
    drop(files);
    drop(uploads);
    drop(platform.stop());

    // The limits: dd in the same bench folder, once the parts are gone.
    std::fs::remove_dir_all(folder).with_context(|| format!("removing {}", folder.display()))?;
    std::fs::create_dir_all(folder)?;
    let dd_file = folder.join("dd.bin");
    let dd_write = dd_write_seconds(&dd_file, settings.file_bytes)?;
    let dd_cache = drop_page_cache(&[&dd_file])?;
    let dd_read = dd_read_seconds(&dd_file)?;
    std::fs::remove_file(&dd_file).with_context(|| format!("removing {}", dd_file.display()))?;
    let dd_files = dd_write_files_seconds(&folder.join("dd-files"), settings.uploads as usize, settings.upload_bytes)?;

    let megabytes = settings.file_bytes as f64 / 1e6;
    let (upload_rate, download_rate) = (megabytes / upload_seconds, megabytes / download_seconds);
    let (dd_write_rate, dd_read_rate) = (megabytes / dd_write, megabytes / dd_read);
    let concurrent_megabytes = (settings.uploads * settings.upload_bytes) as f64 / 1e6;
    let (concurrent_rate, dd_files_rate) = (concurrent_megabytes / concurrent.wall_seconds, concurrent_megabytes / dd_files);
    let files_per_second = settings.uploads as f64 / concurrent.wall_seconds;
    let (p50, p99) = (percentile(&concurrent.latencies, 50.0), percentile(&concurrent.latencies, 99.0));
    let file_label = size_label(settings.file_bytes);
    let upload_label = size_label(settings.upload_bytes);

    println!("{file_label} file, {NODE_COUNT} storage nodes (fault tolerance {}), bench folder {}", stored.fault_tolerance, folder.display());
    println!("download: {}", download_cache.describe());
    println!("dd read:  {}", dd_cache.describe());
    println!();
    println!("{:<64} {:>14} {:>10}", "figure", "value", "ratio");
    println!("{:<64} {:>9.1} MB/s {:>10}", "dd sequential write, bs=1M conv=fdatasync (limit)", dd_write_rate, "");
    println!("{:<64} {:>9.1} MB/s {:>10.3}", "UploadFile, 1 MiB chunks, until ingest answers", upload_rate, upload_rate / dd_write_rate);
    println!("{:<64} {:>9.1} MB/s {:>10}", "dd sequential read, bs=1M, page cache dropped (limit)", dd_read_rate, "");
    println!("{:<64} {:>9.1} MB/s {:>10.3}", "DownloadFile, SHA-256 verified, page cache dropped", download_rate, download_rate / dd_read_rate);
    println!(
        "{:<64} {:>9.1} MB/s {:>10}",
        format!("dd write of {} files of {upload_label}, each conv=fdatasync (limit)", settings.uploads),
        dd_files_rate,
        ""
    );
    println!(
        "{:<64} {:>9.1} MB/s {:>10.3}",
        format!("{} concurrent UploadFile of {upload_label} each", settings.uploads),
        concurrent_rate,
        concurrent_rate / dd_files_rate
    );
    println!("{:<64} {:>11.1} /s", "  files per second", files_per_second);
    println!("{:<64} {:>11.1} ms", "  latency p50", p50.as_secs_f64() * 1e3);
    println!("{:<64} {:>11.1} ms", "  latency p99", p99.as_secs_f64() * 1e3);
    match openssl_rate {
        Some(limit) => {
            println!("{:<64} {:>9.1} MB/s {:>10}", "openssl speed -evp sha256, 1 MiB blocks (limit)", limit, "");
            println!("{:<64} {:>9.1} MB/s {:>10.3}", "sha2 crate, 1 GiB in memory", sha2_rate, sha2_rate / limit);
        }
        None => println!("{:<64} {:>9.1} MB/s {:>10}", "sha2 crate, 1 GiB in memory (openssl unavailable)", sha2_rate, ""),
    }
    println!("{:<64} {:>14}", "CPU SHA extensions (sha_ni in /proc/cpuinfo)", if sha_ni { "yes" } else { "no" });
    println!("{:<64} {:>14}", format!("ingest peak RSS, the {file_label} file"), mebibytes(single_file_memory.ingest));
    println!("{:<64} {:>14}", format!("ingest peak RSS, after the {} concurrent uploads", settings.uploads), mebibytes(memory.ingest));
    println!("{:<64} {:>14}", "storage peak RSS", mebibytes(memory.storage));
    println!("{:<64} {:>14}", "largest storage node peak RSS", mebibytes(memory.node));
    println!();
    let verdict = |ratio: f64| if ratio >= 0.5 { "met" } else { "not met" };
    println!("target: upload ÷ dd write ≥ 0.5 → {}", verdict(upload_rate / dd_write_rate));
    println!("target: download ÷ dd read ≥ 0.5 → {}", verdict(download_rate / dd_read_rate));
    println!("target: concurrent uploads ÷ dd write of as many files ≥ 0.5 → {}", verdict(concurrent_rate / dd_files_rate));

    let memory_note = format!(
        "peak RSS: ingest {} (after the concurrent uploads {}), storage {}, largest node {}",
        mebibytes(single_file_memory.ingest),
        mebibytes(memory.ingest),
        mebibytes(memory.storage),
        mebibytes(memory.node)
    );
    record(&Row {
        key: "upload".to_owned(),
        work: format!("file upload, {file_label}"),
        figure: upload_rate,
        unit: "MB/s".to_owned(),
        limit: dd_write_rate,
        limit_name: "dd write of the same size, bs=1M conv=fdatasync, nodes' folder".to_owned(),
        target: Target::RatioAtLeast(0.5),
        full_size: settings.file_bytes >= FULL_FILE_BYTES,
        notes: format!("{NODE_COUNT} nodes, 6 data + 2 parity parts, fault tolerance {}; {memory_note}", stored.fault_tolerance),
    })?;
    record(&Row {
        key: "download".to_owned(),
        work: if download_cache.cold() && dd_cache.cold() {
            format!("file download, {file_label}, page cache dropped, hash verified")
        } else {
            format!("file download, {file_label}, page cache NOT (known to be) dropped, hash verified")
        },
        figure: download_rate,
        unit: "MB/s".to_owned(),
        limit: dd_read_rate,
        limit_name: "dd read of a file of the same size, bs=1M, page cache dropped".to_owned(),
        target: Target::RatioAtLeast(0.5),
        full_size: settings.file_bytes >= FULL_FILE_BYTES,
        notes: format!("before the download: {}; before dd: {}", download_cache.describe(), dd_cache.describe()),
    })?;
    record(&Row {
        key: "concurrent-uploads".to_owned(),
        work: format!("{} concurrent uploads of {upload_label} files", settings.uploads),
        figure: concurrent_rate,
        unit: "MB/s".to_owned(),
        limit: dd_files_rate,
        limit_name: format!("dd write of {} files of {upload_label}, each conv=fdatasync", settings.uploads),
        target: Target::RatioAtLeast(0.5),
        full_size: settings.uploads >= FULL_UPLOADS && settings.upload_bytes >= FULL_UPLOAD_BYTES,
        notes: format!("{files_per_second:.1} files/s, latency p50 {:.1} ms, p99 {:.1} ms", p50.as_secs_f64() * 1e3, p99.as_secs_f64() * 1e3),
    })?;
    if let Some(limit) = openssl_rate {
        record(&Row {
            key: "sha256".to_owned(),
            work: format!("SHA-256 with the sha2 crate, 1 GiB in memory (sha_ni: {})", if sha_ni { "yes" } else { "no" }),
            figure: sha2_rate,
            unit: "MB/s".to_owned(),
            limit,
            limit_name: "openssl speed -evp sha256, 1 MiB blocks".to_owned(),
            target: Target::None,
            full_size: true,
            notes: String::new(),
        })?;
    }
    Ok(())
}

/// What the concurrent uploads measured.
#[derive(Debug)]
struct Concurrent {
    wall_seconds: f64,
    latencies: Vec<Duration>,
}

/// Uploads `count` distinct random files of `bytes` each at once, one connection each
/// (connected before the clock starts); checks every answer, then downloads every file
/// again (untimed) and checks its hash.
async fn concurrent_uploads(platform: &Platform, count: u64, bytes: u64) -> anyhow::Result<Concurrent> {
    let mut contents = Vec::new();
    for _ in 0..count {
        let mut content = vec![0u8; bytes as usize];
        rand::rng().fill_bytes(&mut content);
        let sha256 = hex(&Sha256::digest(&content));
        contents.push((Bytes::from(content), sha256));
    }
    let mut clients = Vec::new();
    for _ in 0..count {
        clients.push(platform.uploads().await?);
    }
    let started = Instant::now();
    let mut tasks = Vec::new();
    for (index, (mut client, (content, _))) in clients.into_iter().zip(&contents).enumerate() {
        let chunks = bytes_chunks(content.clone());
        tasks.push(tokio::spawn(async move {
            let begun = Instant::now();
            let stored = upload(&mut client, &format!("concurrent-{index}.bin"), chunks).await;
            (begun.elapsed(), stored)
        }));
    }
    let mut answers = Vec::new();
    for task in tasks {
        answers.push(task.await.context("an upload task failed")?);
    }
    let wall_seconds = started.elapsed().as_secs_f64();

    let mut latencies = Vec::new();
    let mut stored_files = Vec::new();
    for (index, ((latency, stored), (_, sha256))) in answers.into_iter().zip(&contents).enumerate() {
        let stored = stored.with_context(|| format!("concurrent upload {index}"))?;
        check_equal(&format!("size of concurrent upload {index}"), stored.size, bytes)?;
        check_equal(&format!("SHA-256 of concurrent upload {index}"), &stored.sha256, sha256)?;
        latencies.push(latency);
        stored_files.push(stored);
    }
    let mut distinct: Vec<&str> = stored_files.iter().map(|stored| stored.file_id.as_str()).collect();
    distinct.sort_unstable();
    distinct.dedup();
    check_equal("distinct file ids of the concurrent uploads", distinct.len() as u64, count)?;
    let mut files = platform.files().await?;
    for (index, (stored, (_, sha256))) in stored_files.iter().zip(&contents).enumerate() {
        let downloaded = download(&mut files, &stored.file_id, stored.consistency_token.clone(), true).await?;
        check_equal(&format!("SHA-256 of concurrent upload {index} downloaded"), downloaded.received_sha256.as_deref(), Some(sha256.as_str()))?;
    }
    Ok(Concurrent { wall_seconds, latencies })
}

/// The large file as 1 MiB chunks (the last one shorter), produced lazily from slices of
/// `pattern` (no copy).
fn file_chunks(pattern: Bytes, file_bytes: u64) -> impl futures::Stream<Item = Bytes> + Send + 'static {
    let chunk_count = file_bytes.div_ceil(CHUNK_BYTES as u64);
    futures::stream::iter((0..chunk_count).map(move |index| {
        let start = index * CHUNK_BYTES as u64;
        let length = (file_bytes - start).min(CHUNK_BYTES as u64) as usize;
        let offset = (start % PATTERN_BYTES as u64) as usize;
        pattern.slice(offset..offset + length)
    }))
}

/// `content` as chunks of at most 1 MiB.
fn bytes_chunks(content: Bytes) -> impl futures::Stream<Item = Bytes> + Send + 'static {
    let chunk_count = content.len().div_ceil(CHUNK_BYTES);
    futures::stream::iter((0..chunk_count).map(move |index| content.slice(index * CHUNK_BYTES..((index + 1) * CHUNK_BYTES).min(content.len()))))
}

async fn sha256_of_stream(chunks: impl futures::Stream<Item = Bytes>) -> String {
    use futures::StreamExt;
    let mut hasher = Sha256::new();
    futures::pin_mut!(chunks);
    while let Some(chunk) = chunks.next().await {
        hasher.update(&chunk);
    }
    hex(&hasher.finalize())
}

/// `1 GiB`, `64 MiB`, `1 MiB`, or bytes.
fn size_label(bytes: u64) -> String {
    if bytes >= 1 << 30 && bytes.is_multiple_of(1 << 30) {
        format!("{} GiB", bytes >> 30)
    } else if bytes >= 1 << 20 && bytes.is_multiple_of(1 << 20) {
        format!("{} MiB", bytes >> 20)
    } else {
        format!("{bytes} bytes")
    }
}

/// Whether /proc/cpuinfo lists the `sha_ni` flag (x86 SHA extensions).
fn cpu_has_sha_extensions() -> bool {
    std::fs::read_to_string("/proc/cpuinfo").is_ok_and(|cpuinfo| cpuinfo.lines().any(|line| line.contains("sha_ni")))
}

/// Hashes 1 GiB in memory with the `sha2` crate (an 8 MiB buffer, repeatedly); MB/s.
fn sha2_throughput() -> f64 {
    let mut buffer = vec![0u8; PATTERN_BYTES];
    rand::rng().fill_bytes(&mut buffer);
    let started = Instant::now();
    let mut hasher = Sha256::new();
    for _ in 0..(1usize << 30) / PATTERN_BYTES {
        hasher.update(&buffer);
    }
    std::hint::black_box(hasher.finalize());
    (1u64 << 30) as f64 / 1e6 / started.elapsed().as_secs_f64()
}

/// `openssl speed -evp sha256` on 1 MiB blocks for 3 s, in MB/s, when openssl is installed.
/// Its figures are in thousands of bytes per second, the last field of the `sha256` line.
fn openssl_sha256_throughput() -> Option<f64> {
    let output =
        Command::new("openssl").args(["speed", "-evp", "sha256", "-bytes", "1048576", "-seconds", "3"]).stderr(Stdio::null()).output().ok()?;
    let stdout = String::from_utf8_lossy(&output.stdout);
    let line = stdout.lines().rev().find(|line| line.to_lowercase().starts_with("sha256"))?;
    let thousands: f64 = line.split_whitespace().last()?.trim_end_matches('k').parse().ok()?;
    Some(thousands * 1000.0 / 1e6)
}

#[cfg(test)]
mod tests {
    use super::*;
    use futures::StreamExt;

    #[tokio::test]
    async fn chunks_cover_the_file_exactly() {
        let pattern = Bytes::from((0..PATTERN_BYTES).map(|index| (index % 251) as u8).collect::<Vec<u8>>());
        for size in [1u64, CHUNK_BYTES as u64, CHUNK_BYTES as u64 + 1, PATTERN_BYTES as u64 * 2 + 5] {
            let chunks: Vec<Bytes> = file_chunks(pattern.clone(), size).collect().await;
            assert_eq!(chunks.iter().map(|chunk| chunk.len() as u64).sum::<u64>(), size);
            let joined: Vec<u8> = chunks.concat();
            assert!(joined.iter().enumerate().all(|(index, byte)| *byte == ((index % PATTERN_BYTES) % 251) as u8));
        }
        let content = Bytes::from(vec![7u8; CHUNK_BYTES * 2 + 3]);
        let chunks: Vec<Bytes> = bytes_chunks(content.clone()).collect().await;
        assert_eq!(chunks.len(), 3);
        assert_eq!(chunks.concat(), content.to_vec());
    }

    #[test]
    fn sizes_are_labelled() {
        assert_eq!(size_label(1 << 30), "1 GiB");
        assert_eq!(size_label(64 << 20), "64 MiB");
        assert_eq!(size_label(1000), "1000 bytes");
    }
}
