//! The services of one benchmark run, as child processes started from the release folder
//! beside the benchmark's executable: a fresh database and Kafka topic prefix per platform,
//! `chatvault-ingest` and `chatvault-storage`, and, where files are stored, six
//! `chatvault-storage-node` processes with their data folders under one bench folder (where
//! `dd` writes its limits too, so both hit the same disk).
//!
//! The databases a run creates are dropped by [`drop_databases`] at its end, whether it
//! succeeded or not; the services are killed when their handles are dropped.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use bytes::Bytes;
use chatvault_common::test_support::{
    admin_database_url, binaries_folder, service_environment, spawn_service_process, unique_topic_prefix, ChildService, TestDb,
};
use chatvault_proto::common::v1::ConsistencyToken;
use chatvault_proto::ingest::v1::file_upload_service_client::FileUploadServiceClient;
use chatvault_proto::ingest::v1::{upload_file_request, UploadFileRequest, UploadFileResponse, UploadMetadata};
use chatvault_proto::storage::v1::files_service_client::FilesServiceClient;
use chatvault_proto::storage::v1::storage_service_client::StorageServiceClient;
use chatvault_proto::storage::v1::{download_file_response, DownloadFileRequest, ListChatsRequest, ListNodesRequest, RegisterNodeRequest};
use futures::StreamExt;
use sha2::{Digest, Sha256};
use tonic::transport::Channel;

use crate::process::peak_rss_bytes;

/// Storage nodes a platform with files starts; six place the 6 + 2 parts of a file with
/// fault tolerance 1 (two nodes hold two parts each).
pub const NODE_COUNT: usize = 6;
/// The fault tolerance uploads reach once every node takes parts.
pub const EXPECTED_FAULT_TOLERANCE: u32 = 1;
/// How long a query may wait for a projection (a large import takes minutes to project).
const CONSISTENCY_WAIT_MS: &str = "7200000";

/// Where the services of a run write their logs: `<temp>/chatvault-bench-logs/`.
pub fn logs_folder() -> PathBuf {
    let folder = std::env::temp_dir().join("chatvault-bench-logs");
    let _ = std::fs::create_dir_all(&folder);
    folder
}

/// The names of the databases this process created, for [`drop_databases`].
static CREATED_DATABASES: Mutex<Vec<String>> = Mutex::new(Vec::new());

/// Creates a fresh database (services migrate it when they start) and remembers it for
/// [`drop_databases`].
pub async fn fresh_database() -> TestDb {
    let database = TestDb::fresh().await;
    if let Ok(mut created) = CREATED_DATABASES.lock() {
        created.push(database.name.clone());
    }
    database
}

/// Drops every database [`fresh_database`] created (its services must be stopped; open
/// connections are ended by `WITH (FORCE)`).
pub async fn drop_databases() -> anyhow::Result<()> {
    let names: Vec<String> = CREATED_DATABASES.lock().map(|mut created| std::mem::take(&mut *created)).unwrap_or_default();
    if names.is_empty() {
        return Ok(());
    }
    let (client, connection) =
        tokio_postgres::connect(&admin_database_url(), tokio_postgres::NoTls).await.context("connecting to drop the databases")?;
    tokio::spawn(connection);
    for name in names {
        // The services are stopped by now; what may still be connected is an autovacuum
        // worker, which a plain DROP cancels (FORCE would need the right to terminate a
        // superuser's process, which the storage role lacks).
        client.batch_execute(&format!("DROP DATABASE IF EXISTS \"{name}\"")).await.with_context(|| format!("dropping database {name}"))?;
    }
    Ok(())
}

/// ingest and storage on a fresh database and topic prefix, with storage nodes when asked.
#[derive(Debug)]
pub struct Platform {
    pub database: TestDb,
    pub ingest: ChildService,
    pub storage: ChildService,
    pub nodes: Vec<ChildService>,
    /// The data folders of the nodes.
    pub node_folders: Vec<PathBuf>,
}

/// Peak resident memory of a platform's processes, in bytes.
#[derive(Debug, Clone, Copy, Default)]
pub struct PeakMemory {
    pub ingest: u64,
    pub storage: u64,
    /// The largest of the storage nodes.
    pub node: u64,
}

impl Platform {
    /// Starts ingest and storage; with `node_root`, first [`NODE_COUNT`] storage nodes with
    /// data folders `node_root/node-<i>`, registered with storage and taking parts from
    /// ingest before this returns. `label` names the log files.
    pub async fn start(label: &str, node_root: Option<&Path>) -> anyhow::Result<Self> {
        let database = fresh_database().await;
        let mut environment = service_environment(database.url.expose(), &unique_topic_prefix());
        environment.insert("CHATVAULT_CONSISTENCY_WAIT_MS".to_owned(), CONSISTENCY_WAIT_MS.to_owned());
        let logs = logs_folder();
        let mut nodes = Vec::new();
        let mut node_folders = Vec::new();
        if let Some(node_root) = node_root {
            for index in 0..NODE_COUNT {
                let data_dir = node_root.join(format!("node-{index}"));
                std::fs::create_dir_all(&data_dir).with_context(|| format!("creating {}", data_dir.display()))?;
                let node_environment = HashMap::from([
                    ("CHATVAULT_NODE_ID".to_owned(), format!("bench-node-{index}")),
                    ("CHATVAULT_NODE_DATA_DIR".to_owned(), data_dir.display().to_string()),
                    ("CHATVAULT_STORAGE_NODE_HTTP_ADDR".to_owned(), "127.0.0.1:0".to_owned()),
                ]);
                let log = logs.join(format!("bench-{label}-node-{index}.log"));
                nodes.push(spawn_service_process("chatvault-storage-node", "STORAGE_NODE", node_environment, &log).await);
                node_folders.push(data_dir);
            }
        }
        let storage =
            spawn_service_process("chatvault-storage", "STORAGE", environment.clone(), &logs.join(format!("bench-{label}-storage.log"))).await;
        let ingest = spawn_service_process("chatvault-ingest", "INGEST", environment, &logs.join(format!("bench-{label}-ingest.log"))).await;
        let platform = Platform { database, ingest, storage, nodes, node_folders };
        if !platform.nodes.is_empty() {
            register_nodes(&mut platform.files().await?, &mut platform.uploads().await?, &platform.nodes).await?;
        }
        Ok(platform)
    }

    /// Stops (kills) the services and returns the database, which stays until
    /// [`drop_databases`].
    pub fn stop(self) -> TestDb {
        let Platform { database, ingest, storage, nodes, node_folders: _ } = self;
        drop(ingest);
        drop(storage);
        drop(nodes);
        database
    }

    /// A FilesService client of storage that takes download chunks of any size, connected
    /// as the CLI connects (`bulk_transfer_endpoint`).
    pub async fn files(&self) -> anyhow::Result<FilesServiceClient<Channel>> {
        Ok(FilesServiceClient::new(bulk_transfer_channel(self.storage.grpc_addr).await.context("connecting to storage")?)
            .max_decoding_message_size(64 << 20))
    }

    /// A FileUploadService client of ingest, connected as the CLI connects.
    pub async fn uploads(&self) -> anyhow::Result<FileUploadServiceClient<Channel>> {
        Ok(FileUploadServiceClient::new(bulk_transfer_channel(self.ingest.grpc_addr).await.context("connecting to ingest")?))
    }

    /// Peak memory of the processes so far.
    pub fn peak_memory(&self) -> PeakMemory {
        PeakMemory {
            ingest: peak_rss_bytes(self.ingest.child.id()).unwrap_or(0),
            storage: peak_rss_bytes(self.storage.child.id()).unwrap_or(0),
            node: self.nodes.iter().filter_map(|node| peak_rss_bytes(node.child.id())).max().unwrap_or(0),
        }
    }

    /// Imports the export at `path` as an admin would, with `chatvault import --server-path`
    /// (the export is read where it lies); returns the CLI's JSON summary once ingest has
    /// committed it.
    pub fn import_with_cli(&self, path: &Path, chat_id: i64) -> anyhow::Result<serde_json::Value> {
        // An empty configuration folder: no saved session of the user's own installation.
        let config_home = std::env::temp_dir().join(format!("chatvault-bench-cli-{}", std::process::id()));
        std::fs::create_dir_all(&config_home)?;
        let cli = Command::new(binaries_folder().join("chatvault"))
            .args(["import", "--json", "--server-path", "--chat-id", &chat_id.to_string()])
            .arg(path)
            .env("CHATVAULT_INGEST_URL", format!("http://{}", self.ingest.grpc_addr))
            .env("XDG_CONFIG_HOME", &config_home)
            .env_remove("CHATVAULT_TOKEN")
            .output()
            .context("running chatvault import");
        let _ = std::fs::remove_dir_all(&config_home);
        let cli = cli?;
        if !cli.status.success() {
            bail!("chatvault import failed: {}", String::from_utf8_lossy(&cli.stderr));
        }
        serde_json::from_slice(&cli.stdout).context("reading the import summary JSON")
    }

    /// Waits until storage has applied everything up to `token` (a query that waits for it).
    pub async fn wait_for_storage(&self, token: &str) -> anyhow::Result<()> {
        let mut storage = StorageServiceClient::connect(format!("http://{}", self.storage.grpc_addr)).await.context("connecting to storage")?;
        storage
            .list_chats(ListChatsRequest { consistency_token: Some(ConsistencyToken { value: token.to_owned() }) })
            .await
            .context("waiting for storage to apply the import")?;
        Ok(())
    }
}

/// Registers the nodes with storage, then waits until storage lists them all and ingest
/// places parts on them (a small probe upload reaches the expected fault tolerance).
pub async fn register_nodes(
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

/// Uploads `chunks` as `name` through ingest's FileUploadService (client streaming: the
/// metadata message, then the chunks); ingest answers once every part is stored.
pub async fn upload(
    uploads: &mut FileUploadServiceClient<Channel>,
    name: &str,
    chunks: impl futures::Stream<Item = Bytes> + Send + 'static,
) -> Result<UploadFileResponse, tonic::Status> {
    let metadata = UploadFileRequest {
        message: Some(upload_file_request::Message::Metadata(UploadMetadata {
            name: name.to_owned(),
            content_type: String::new(),
            restore: None,
            folder_date: String::new(),
        })),
    };
    let messages = futures::stream::once(async move { metadata })
        .chain(chunks.map(|chunk| UploadFileRequest { message: Some(upload_file_request::Message::Chunk(chunk)) }));
    uploads.upload_file(messages).await.map(tonic::Response::into_inner)
}

/// What a download delivered.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Downloaded {
    /// Bytes received.
    pub bytes: u64,
    /// Size and SHA-256 (hex) storage announced in its info message.
    pub announced_size: u64,
    pub announced_sha256: String,
    /// SHA-256 (hex) of the bytes received, when the caller asked for it.
    pub received_sha256: Option<String>,
}

/// Downloads `file_id` from storage (once it has applied `token`, when given); with `hash`,
/// hashes the received bytes too.
pub async fn download(
    files: &mut FilesServiceClient<Channel>,
    file_id: &str,
    token: Option<ConsistencyToken>,
    hash: bool,
) -> anyhow::Result<Downloaded> {
    let request = DownloadFileRequest { file_id: file_id.to_owned(), consistency_token: token };
    let mut stream = files.download_file(request).await.with_context(|| format!("starting DownloadFile of {file_id}"))?.into_inner();
    let mut hasher = hash.then(Sha256::new);
    let (mut bytes, mut info) = (0u64, None);
    while let Some(message) = stream.message().await.with_context(|| format!("reading DownloadFile of {file_id}"))? {
        match message.message {
            Some(download_file_response::Message::Info(file)) => info = Some(file),
            Some(download_file_response::Message::Chunk(chunk)) => {
                bytes += chunk.len() as u64;
                if let Some(hasher) = hasher.as_mut() {
                    hasher.update(&chunk);
                }
            }
            None => {}
        }
    }
    let info = info.with_context(|| format!("DownloadFile of {file_id} sent no info message"))?;
    Ok(Downloaded { bytes, announced_size: info.size, announced_sha256: info.sha256, received_sha256: hasher.map(|hasher| hex(&hasher.finalize())) })
}

/// Lowercase hex of `bytes`.
pub fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|byte| format!("{byte:02x}")).collect()
}

/// A folder of this run under the temporary folder, created empty: `<temp>/<name>-<pid>`.
pub fn bench_folder(name: &str) -> anyhow::Result<PathBuf> {
    let folder = std::env::temp_dir().join(format!("{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&folder);
    std::fs::create_dir_all(&folder).with_context(|| format!("creating {}", folder.display()))?;
    Ok(folder)
}

/// Connects to `address` with the settings every file client uses.
async fn bulk_transfer_channel(address: std::net::SocketAddr) -> Result<Channel, tonic::transport::Error> {
    let endpoint = tonic::transport::Endpoint::from_shared(format!("http://{address}"))?;
    chatvault_common::grpc::bulk_transfer_endpoint(endpoint).connect().await
}
