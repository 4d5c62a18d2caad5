//! The file-storage benchmark: upload and download of a 1 GiB file through the real
//! services, each as a ratio to `dd` sequential write and read of the same size on the same
//! disk in the same run (target ≥ 0.5), with the peak RSS of ingest, storage and the
//! largest storage node, and the SHA-256 throughput of the `sha2` crate (what file-store
//! hashes with) against `openssl speed -evp sha256`.
//!
//! Run from the release folder (`target/release/files`): the services are started from
//! the binaries beside this executable. It needs Kafka and PostgreSQL of the local stack.
//! Six `chatvault-storage-node` processes get their own data folders under one temporary
//! bench folder (where `dd` writes too, so both hit the same disk); `chatvault-ingest` and
//! `chatvault-storage` run as child processes on a fresh database and topic prefix. The
//! file is streamed from a repeating 8 MiB random buffer in 1 MiB chunks, so the client
//! never holds the whole file. Everything under the bench folder is removed at the end.

#[path = "../process.rs"]
mod process;

use std::collections::HashMap;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{bail, ensure, Context};
use bytes::Bytes;
use chatvault_common::test_support::{service_environment, spawn_service_process, unique_topic_prefix, ChildService, TestDb};
use chatvault_proto::ingest::v1::file_upload_service_client::FileUploadServiceClient;
use chatvault_proto::ingest::v1::{upload_file_request, UploadFileRequest, UploadFileResponse, UploadMetadata};
use chatvault_proto::storage::v1::files_service_client::FilesServiceClient;
use chatvault_proto::storage::v1::{download_file_response, DownloadFileRequest, ListNodesRequest, RegisterNodeRequest, StatFileRequest};
use futures::StreamExt;
use rand::RngCore;
use sha2::{Digest, Sha256};
use tonic::transport::Channel;

use crate::process::{mebibytes, peak_rss_bytes};

/// Size of the benchmarked file and of the `dd` runs.
const FILE_BYTES: u64 = 1 << 30;
/// Size of one UploadFile chunk message.
const CHUNK_BYTES: usize = 1 << 20;
/// The random buffer the file repeats.
const PATTERN_BYTES: usize = 8 << 20;
/// Storage nodes started; six place parts with fault tolerance 1.
const NODE_COUNT: usize = 6;
const EXPECTED_FAULT_TOLERANCE: u32 = 1;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let folder = std::env::temp_dir().join(format!("chatvault-bench-files-{}", std::process::id()));
    std::fs::create_dir_all(&folder).with_context(|| format!("creating {}", folder.display()))?;
    // The services are dropped (killed) inside `run`, before their data folders go.
    let outcome = run(&folder).await;
    let cleanup = std::fs::remove_dir_all(&folder).with_context(|| format!("removing {}", folder.display()));
    outcome?;
    cleanup
}

async fn run(folder: &Path) -> anyhow::Result<()> {
    let sha_ni = cpu_has_sha_extensions();
    let sha2_rate = sha2_throughput();
    let openssl_rate = openssl_sha256_throughput();

    // The platform: fresh database and topics, six nodes, ingest and storage.
    let database = TestDb::fresh().await;
    let environment = service_environment(database.url.expose(), &unique_topic_prefix());
    let logs = std::env::temp_dir();
    let mut nodes = Vec::new();
    for index in 0..NODE_COUNT {
        let data_dir = folder.join(format!("node-{index}"));
        std::fs::create_dir_all(&data_dir).with_context(|| format!("creating {}", data_dir.display()))?;
        let node_environment = HashMap::from([
            ("CHATVAULT_NODE_ID".to_owned(), format!("bench-node-{index}")),
            ("CHATVAULT_NODE_DATA_DIR".to_owned(), data_dir.display().to_string()),
            ("CHATVAULT_STORAGE_NODE_HTTP_ADDR".to_owned(), "127.0.0.1:0".to_owned()),
        ]);
        let log = logs.join(format!("bench-files-node-{index}.log"));
        nodes.push(spawn_service_process("chatvault-storage-node", "STORAGE_NODE", node_environment, &log).await);
    }
    let storage = spawn_service_process("chatvault-storage", "STORAGE", environment.clone(), &logs.join("bench-files-storage.log")).await;
    let ingest = spawn_service_process("chatvault-ingest", "INGEST", environment, &logs.join("bench-files-ingest.log")).await;
    let mut files = FilesServiceClient::connect(format!("http://{}", storage.grpc_addr))
        .await
        .context("connecting to storage")?
        .max_decoding_message_size(64 << 20);
    let mut uploads = FileUploadServiceClient::connect(format!("http://{}", ingest.grpc_addr)).await.context("connecting to ingest")?;
    register_nodes(&mut files, &mut uploads, &nodes).await?;

    // Upload: 1 GiB in 1 MiB chunks, timed until ingest answers (every part stored, the
    // FileStored event published).
    let mut pattern = vec![0u8; PATTERN_BYTES];
    rand::rng().fill_bytes(&mut pattern);
    let pattern = Bytes::from(pattern);
    let started = Instant::now();
    let stored = upload(&mut uploads, "bench-1GiB.bin", file_chunks(pattern)).await.context("uploading 1 GiB")?;
    let upload_seconds = started.elapsed().as_secs_f64();
    ensure!(stored.size == FILE_BYTES, "ingest stored {} bytes, not {FILE_BYTES}", stored.size);

    // Download: wait (untimed) until storage lists the file, then time the stream; storage
    // checks the whole-file SHA-256 before the last chunk.
    let request = StatFileRequest { file_id: stored.file_id.clone(), consistency_token: stored.consistency_token.clone() };
    files.stat_file(request).await.context("waiting for storage to list the file")?;
    let download_cold = drop_page_cache();
    let started = Instant::now();
    let request = DownloadFileRequest { file_id: stored.file_id.clone(), consistency_token: None };
    let mut stream = files.download_file(request).await.context("starting DownloadFile")?.into_inner();
    let (mut received, mut info) = (0u64, None);
    while let Some(message) = stream.message().await.context("reading DownloadFile")? {
        match message.message {
            Some(download_file_response::Message::Info(file)) => info = Some(file),
            Some(download_file_response::Message::Chunk(chunk)) => received += chunk.len() as u64,
            None => {}
        }
    }
    let download_seconds = started.elapsed().as_secs_f64();
    let info = info.context("DownloadFile sent no info message")?;
    ensure!(received == FILE_BYTES && info.size == FILE_BYTES, "downloaded {received} bytes (info says {}), not {FILE_BYTES}", info.size);
    ensure!(info.sha256 == stored.sha256, "download reports SHA-256 {}, upload {}", info.sha256, stored.sha256);

    // Peak memory of the whole run, then the services stop before dd uses the disk.
    let ingest_peak = peak_rss_bytes(ingest.child.id()).unwrap_or(0);
    let storage_peak = peak_rss_bytes(storage.child.id()).unwrap_or(0);
    let node_peak = nodes.iter().filter_map(|node| peak_rss_bytes(node.child.id())).max().unwrap_or(0);
    drop(ingest);
    drop(storage);
    drop(nodes);
    drop(database);

    // The limits: dd of the same size into the same bench folder.
    let dd_file = folder.join("dd.bin");
    let dd_write_seconds = dd(&[
        "if=/dev/zero".to_owned(),
        format!("of={}", dd_file.display()),
        "bs=1M".to_owned(),
        "count=1024".to_owned(),
        "conv=fdatasync".to_owned(),
    ])?;
    let dd_read_cold = drop_page_cache();
    let dd_read_seconds = dd(&[format!("if={}", dd_file.display()), "of=/dev/null".to_owned(), "bs=1M".to_owned()])?;
    std::fs::remove_file(&dd_file).with_context(|| format!("removing {}", dd_file.display()))?;

    let megabytes = FILE_BYTES as f64 / 1e6;
    let (upload_rate, download_rate) = (megabytes / upload_seconds, megabytes / download_seconds);
    let (dd_write_rate, dd_read_rate) = (megabytes / dd_write_seconds, megabytes / dd_read_seconds);
    let cache = |cold: bool| if cold { "page cache dropped" } else { "from page cache: drop_caches refused" };
    println!("1 GiB file, {NODE_COUNT} storage nodes (fault tolerance {}), bench folder {}", stored.fault_tolerance, folder.display());
    println!();
    println!("{:<58} {:>14} {:>10}", "figure", "value", "ratio");
    println!("{:<58} {:>9.1} MB/s {:>10}", "dd sequential write, bs=1M conv=fdatasync (limit)", dd_write_rate, "");
    println!("{:<58} {:>9.1} MB/s {:>10.3}", "UploadFile, 1 MiB chunks, until ingest answers", upload_rate, upload_rate / dd_write_rate);
    println!("{:<58} {:>9.1} MB/s {:>10}", format!("dd sequential read, bs=1M (limit; {})", cache(dd_read_cold)), dd_read_rate, "");
    println!(
        "{:<58} {:>9.1} MB/s {:>10.3}",
        format!("DownloadFile, SHA-256 verified ({})", cache(download_cold)),
        download_rate,
        download_rate / dd_read_rate
    );
    match openssl_rate {
        Some(limit) => {
            println!("{:<58} {:>9.1} MB/s {:>10}", "openssl speed -evp sha256, 1 MiB blocks (limit)", limit, "");
            println!("{:<58} {:>9.1} MB/s {:>10.3}", "sha2 crate, 1 GiB in memory", sha2_rate, sha2_rate / limit);
        }
        None => println!("{:<58} {:>9.1} MB/s {:>10}", "sha2 crate, 1 GiB in memory (openssl unavailable)", sha2_rate, ""),
    }
    println!("{:<58} {:>14}", "CPU SHA extensions (sha_ni in /proc/cpuinfo)", if sha_ni { "yes" } else { "no" });
    println!("{:<58} {:>14}", "ingest peak RSS", mebibytes(ingest_peak));
    println!("{:<58} {:>14}", "storage peak RSS", mebibytes(storage_peak));
    println!("{:<58} {:>14}", "largest storage node peak RSS", mebibytes(node_peak));
    println!();
    let verdict = |ratio: f64| if ratio >= 0.5 { "met" } else { "not met" };
    println!("target: upload ÷ dd write ≥ 0.5 → {}", verdict(upload_rate / dd_write_rate));
    println!("target: download ÷ dd read ≥ 0.5 → {}", verdict(download_rate / dd_read_rate));
    Ok(())
}

/// Registers the nodes with storage, then waits until storage lists them all and ingest
/// places parts on them (a small probe upload reaches the expected fault tolerance).
async fn register_nodes(
    files: &mut FilesServiceClient<Channel>,
    uploads: &mut FileUploadServiceClient<Channel>,
    nodes: &[ChildService],
) -> anyhow::Result<()> {
    for node in nodes {
        let request = RegisterNodeRequest { address: node.grpc_addr.to_string() };
        files.register_node(request).await.with_context(|| format!("registering the node at {}", node.grpc_addr))?;
    }
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let listed = files.list_nodes(ListNodesRequest::default()).await.map(|nodes| nodes.into_inner().nodes.len()).unwrap_or(0);
        if listed >= nodes.len() {
            let probe = futures::stream::iter([Bytes::from_static(b"probe")]);
            if upload(uploads, "probe.bin", probe).await.is_ok_and(|stored| stored.fault_tolerance == EXPECTED_FAULT_TOLERANCE) {
                return Ok(());
            }
        }
        if Instant::now() > deadline {
            bail!("after 60 s storage lists {listed} of {} nodes or ingest does not place parts on them all", nodes.len());
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// The benchmarked file as 1 MiB chunks, produced lazily from slices of `pattern` (no copy).
fn file_chunks(pattern: Bytes) -> impl futures::Stream<Item = Bytes> + Send + 'static {
    let chunk_count = FILE_BYTES as usize / CHUNK_BYTES;
    futures::stream::iter((0..chunk_count).map(move |index| {
        let offset = (index * CHUNK_BYTES) % PATTERN_BYTES;
        pattern.slice(offset..offset + CHUNK_BYTES)
    }))
}

/// Uploads `chunks` as `name` (client streaming: the metadata message, then the chunks).
async fn upload(
    uploads: &mut FileUploadServiceClient<Channel>,
    name: &str,
    chunks: impl futures::Stream<Item = Bytes> + Send + 'static,
) -> Result<UploadFileResponse, tonic::Status> {
    let metadata = UploadFileRequest {
        message: Some(upload_file_request::Message::Metadata(UploadMetadata { name: name.to_owned(), content_type: String::new(), restore: None })),
    };
    let messages = futures::stream::once(async move { metadata })
        .chain(chunks.map(|chunk| UploadFileRequest { message: Some(upload_file_request::Message::Chunk(chunk)) }));
    uploads.upload_file(messages).await.map(tonic::Response::into_inner)
}

/// Runs `dd` with `arguments`; returns its wall-clock seconds.
fn dd(arguments: &[String]) -> anyhow::Result<f64> {
    let started = Instant::now();
    let output = Command::new("dd").args(arguments).stdout(Stdio::null()).output().context("running dd")?;
    let seconds = started.elapsed().as_secs_f64();
    if !output.status.success() {
        bail!("dd {} failed: {}", arguments.join(" "), String::from_utf8_lossy(&output.stderr));
    }
    Ok(seconds)
}

/// Syncs and asks the kernel to drop clean page cache; false when refused (containers
/// usually mount /proc/sys read-only), so the following read may come from memory.
fn drop_page_cache() -> bool {
    let synced = Command::new("sync").status().is_ok_and(|status| status.success());
    synced && std::fs::write("/proc/sys/vm/drop_caches", "3\n").is_ok()
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
    for _ in 0..FILE_BYTES as usize / PATTERN_BYTES {
        hasher.update(&buffer);
    }
    std::hint::black_box(hasher.finalize());
    FILE_BYTES as f64 / 1e6 / started.elapsed().as_secs_f64()
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
