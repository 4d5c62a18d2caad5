//! The file store under test: ingest and storage in-process with their own database and
//! topics, storage nodes in-process on port 0 with temporary data folders (each can be
//! stopped), and small gRPC and HTTP request helpers.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use chatvault_common::config::ServiceConfig;
use chatvault_common::test_support::{service_environment, unique_topic_prefix, TestDb};
use chatvault_proto::ingest::v1::file_upload_service_client::FileUploadServiceClient;
use chatvault_proto::ingest::v1::{upload_file_request, UploadFileRequest, UploadFileResponse, UploadMetadata};
use chatvault_proto::storage::v1::files_service_client::FilesServiceClient;
use chatvault_proto::storage::v1::{download_file_response, DownloadFileRequest, FileInfo, RegisterNodeRequest, StatFileRequest};
use chatvault_proto::storagenode::v1::storage_node_service_client::StorageNodeServiceClient;
use chatvault_proto::storagenode::v1::NodeStatsRequest;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio_util::sync::CancellationToken;
use tonic::transport::Channel;

use super::helpers::connect;

/// A storage node running in this process.
pub(crate) struct TestNode {
    pub(crate) _node_id: String,
    pub(crate) address: SocketAddr,
    pub(crate) data_dir: tempfile::TempDir,
    shutdown: CancellationToken,
}

impl TestNode {
    /// Starts a node on port 0 with a fresh data folder.
    pub(crate) async fn start() -> Self {
        let data_dir = tempfile::tempdir().expect("temp dir");
        let environment = chatvault_common::test_support::storage_node_environment(data_dir.path());
        let config = chatvault_storage_node::NodeConfig::from_env_map(&environment).expect("node config");
        let app = chatvault_storage_node::App::build(config).await.expect("node starts");
        let shutdown = CancellationToken::new();
        let (node_id, address) = (app.node_id().to_owned(), app.grpc_addr());
        tokio::spawn(app.run_until_stopped(shutdown.clone()));
        Self { _node_id: node_id, address, data_dir, shutdown }
    }

    /// Stops the node; its port refuses connections afterwards.
    pub(crate) fn stop(&self) {
        self.shutdown.cancel();
    }

    /// Returns the bytes the node reports as used.
    pub(crate) async fn used_bytes(&self) -> u64 {
        let mut client = StorageNodeServiceClient::new(connect(self.address).await);
        client.node_stats(NodeStatsRequest {}).await.expect("node stats").into_inner().used_bytes
    }

    /// Returns the paths of the part files on the node.
    pub(crate) fn part_files(&self) -> Vec<PathBuf> {
        let mut files = Vec::new();
        for shard in std::fs::read_dir(self.data_dir.path().join("parts")).expect("parts folder").flatten() {
            for part in std::fs::read_dir(shard.path()).expect("shard folder").flatten() {
                files.push(part.path());
            }
        }
        files
    }
}

impl Drop for TestNode {
    fn drop(&mut self) {
        self.shutdown.cancel();
    }
}

/// Ingest and storage in-process, with clients and their HTTP addresses.
pub(crate) struct FilesPlatform {
    pub(crate) _database: TestDb,
    pub(crate) uploads: FileUploadServiceClient<Channel>,
    pub(crate) files: FilesServiceClient<Channel>,
    pub(crate) ingest: chatvault_proto::ingest::v1::ingest_service_client::IngestServiceClient<Channel>,
    pub(crate) storage: chatvault_proto::storage::v1::storage_service_client::StorageServiceClient<Channel>,
    pub(crate) ingest_http: SocketAddr,
    pub(crate) storage_http: SocketAddr,
    shutdown: CancellationToken,
}

impl Drop for FilesPlatform {
    fn drop(&mut self) {
        self.shutdown.cancel();
    }
}

impl FilesPlatform {
    /// Starts ingest and storage with `extra` variables (e.g. a smaller maximum file size).
    pub(crate) async fn start(extra: &[(&str, &str)]) -> Self {
        let (database, topic_prefix) = (TestDb::fresh().await, unique_topic_prefix());
        let mut environment = service_environment(database.url.expose(), &topic_prefix);
        environment.insert("CHATVAULT_STORAGE_REBALANCE_INTERVAL_MS".to_owned(), "300".to_owned());
        for (key, value) in extra {
            environment.insert((*key).to_owned(), (*value).to_owned());
        }
        let shutdown = CancellationToken::new();
        let storage_config = ServiceConfig::from_env_map("storage", chatvault_storage::DEFAULT_PORTS, &environment).expect("storage config");
        let storage = chatvault_storage::App::build(storage_config).await.expect("storage starts");
        let (storage_grpc, storage_http) = (storage.grpc_addr(), storage.http_addr());
        tokio::spawn(storage.run_until_stopped(shutdown.clone()));
        let ingest_config = ServiceConfig::from_env_map("ingest", chatvault_ingest::DEFAULT_PORTS, &environment).expect("ingest config");
        let ingest = chatvault_ingest::App::build(ingest_config).await.expect("ingest starts");
        let (ingest_grpc, ingest_http) = (ingest.grpc_addr(), ingest.http_addr());
        tokio::spawn(ingest.run_until_stopped(shutdown.clone()));
        Self {
            _database: database,
            uploads: FileUploadServiceClient::new(connect(ingest_grpc).await),
            files: FilesServiceClient::new(connect(storage_grpc).await).max_decoding_message_size(64 << 20),
            ingest: chatvault_proto::ingest::v1::ingest_service_client::IngestServiceClient::new(connect(ingest_grpc).await),
            storage: chatvault_proto::storage::v1::storage_service_client::StorageServiceClient::new(connect(storage_grpc).await),
            ingest_http,
            storage_http,
            shutdown,
        }
    }

    /// Starts the platform and `count` nodes, registered.
    pub(crate) async fn start_with_nodes(count: usize, extra: &[(&str, &str)]) -> (Self, Vec<TestNode>) {
        let platform = Self::start(extra).await;
        let mut nodes = Vec::new();
        for _ in 0..count {
            let node = TestNode::start().await;
            platform.register(&node).await;
            nodes.push(node);
        }
        platform.wait_for_ingest_to_see(count).await;
        (platform, nodes)
    }

    /// Registers a node with storage.
    pub(crate) async fn register(&self, node: &TestNode) {
        let request = RegisterNodeRequest { address: node.address.to_string() };
        self.files.clone().register_node(request).await.expect("RegisterNode succeeds");
    }

    /// Waits until ingest places parts on `count` nodes (it follows storage.nodes).
    pub(crate) async fn wait_for_ingest_to_see(&self, count: usize) {
        let files = self.files.clone();
        let listed = super::helpers::wait_until(Duration::from_secs(30), || {
            let mut files = files.clone();
            async move {
                files
                    .list_nodes(chatvault_proto::storage::v1::ListNodesRequest::default())
                    .await
                    .is_ok_and(|nodes| nodes.into_inner().nodes.len() >= count)
            }
        })
        .await;
        assert!(listed, "storage lists {count} nodes");
        // Ingest reads the same topic on its own; an upload proves it knows enough nodes.
        let seen = super::helpers::wait_until(Duration::from_secs(30), || {
            let mut uploads = self.uploads.clone();
            async move {
                upload_with(&mut uploads, "probe.bin", b"probe".to_vec(), "probe")
                    .await
                    .is_ok_and(|stored| stored.fault_tolerance == expected_fault_tolerance(count))
            }
        })
        .await;
        assert!(seen, "ingest places parts on {count} nodes");
    }

    /// Uploads `bytes` as `name` over gRPC for the `local` user.
    pub(crate) async fn upload(&self, name: &str, bytes: Vec<u8>) -> Result<UploadFileResponse, tonic::Status> {
        upload_with(&mut self.uploads.clone(), name, bytes, "local").await
    }

    /// Uploads like [`Self::upload`], then waits until storage lists the file.
    pub(crate) async fn upload_visible(&self, name: &str, bytes: Vec<u8>) -> Result<UploadFileResponse, tonic::Status> {
        let stored = self.upload(name, bytes).await?;
        let request = StatFileRequest { file_id: stored.file_id.clone(), consistency_token: stored.consistency_token.clone() };
        self.files.clone().stat_file(request).await?;
        Ok(stored)
    }

    /// Downloads a file over gRPC; returns its info and bytes, or the status.
    pub(crate) async fn download(&self, file_id: &str) -> Result<(FileInfo, Vec<u8>), tonic::Status> {
        let mut stream =
            self.files.clone().download_file(DownloadFileRequest { file_id: file_id.to_owned(), ..Default::default() }).await?.into_inner();
        let mut info = None;
        let mut bytes = Vec::new();
        while let Some(message) = stream.message().await? {
            match message.message {
                Some(download_file_response::Message::Info(file)) => info = Some(file),
                Some(download_file_response::Message::Chunk(chunk)) => bytes.extend_from_slice(&chunk),
                None => {}
            }
        }
        Ok((info.ok_or_else(|| tonic::Status::internal("no info message"))?, bytes))
    }
}

/// The fault tolerance placement reaches with `nodes` nodes.
pub(crate) fn expected_fault_tolerance(nodes: usize) -> u32 {
    match nodes {
        0..=2 => 0,
        3..=7 => 1,
        _ => 2,
    }
}

/// Uploads `bytes` in 256 KiB messages as `owner`.
pub(crate) async fn upload_with(
    uploads: &mut FileUploadServiceClient<Channel>,
    name: &str,
    bytes: Vec<u8>,
    owner: &str,
) -> Result<UploadFileResponse, tonic::Status> {
    let mut messages = vec![UploadFileRequest {
        message: Some(upload_file_request::Message::Metadata(UploadMetadata {
            name: name.to_owned(),
            content_type: String::new(),
            restore: None,
            folder_date: String::new(),
        })),
    }];
    let bytes = bytes::Bytes::from(bytes);
    let mut offset = 0;
    while offset < bytes.len() {
        let end = (offset + (256 << 10)).min(bytes.len());
        messages.push(UploadFileRequest { message: Some(upload_file_request::Message::Chunk(bytes.slice(offset..end))) });
        offset = end;
    }
    let mut request = tonic::Request::new(futures::stream::iter(messages));
    request.metadata_mut().insert("x-chatvault-user", owner.parse().expect("ascii owner"));
    uploads.upload_file(request).await.map(tonic::Response::into_inner)
}

/// Returns `length` pseudo-random bytes.
pub(crate) fn random_bytes(length: usize) -> Vec<u8> {
    let mut bytes = vec![0u8; length];
    rand::fill(&mut bytes[..]);
    bytes
}

/// A plain HTTP/1.1 response.
#[derive(Debug)]
pub(crate) struct HttpResponse {
    pub(crate) status: u16,
    pub(crate) headers: HashMap<String, String>,
    pub(crate) body: Vec<u8>,
}

/// Sends one HTTP/1.1 request (`Connection: close`) and reads the whole response.
pub(crate) async fn http_request(address: SocketAddr, method: &str, path: &str, headers: &[(&str, &str)], body: &[u8]) -> HttpResponse {
    let mut stream = tokio::net::TcpStream::connect(address).await.expect("connects");
    let mut head = format!("{method} {path} HTTP/1.1\r\nHost: {address}\r\nConnection: close\r\nContent-Length: {}\r\n", body.len());
    for (name, value) in headers {
        head.push_str(&format!("{name}: {value}\r\n"));
    }
    head.push_str("\r\n");
    stream.write_all(head.as_bytes()).await.expect("writes head");
    stream.write_all(body).await.expect("writes body");
    let mut raw = Vec::new();
    stream.read_to_end(&mut raw).await.expect("reads response");
    let split = raw.windows(4).position(|window| window == b"\r\n\r\n").expect("response has a head");
    let head = String::from_utf8_lossy(&raw[..split]).to_string();
    let mut lines = head.lines();
    let status = lines.next().and_then(|line| line.split(' ').nth(1)).and_then(|code| code.parse().ok()).expect("status line");
    let headers: HashMap<String, String> =
        lines.filter_map(|line| line.split_once(':').map(|(name, value)| (name.trim().to_lowercase(), value.trim().to_owned()))).collect();
    let mut body = raw[split + 4..].to_vec();
    if headers.get("transfer-encoding").is_some_and(|value| value == "chunked") {
        body = dechunk(&body);
    }
    HttpResponse { status, headers, body }
}

fn dechunk(mut raw: &[u8]) -> Vec<u8> {
    let mut body = Vec::new();
    loop {
        let line_end = raw.windows(2).position(|window| window == b"\r\n").expect("chunk size line");
        let size = usize::from_str_radix(String::from_utf8_lossy(&raw[..line_end]).trim(), 16).expect("hex chunk size");
        if size == 0 {
            return body;
        }
        body.extend_from_slice(&raw[line_end + 2..line_end + 2 + size]);
        raw = &raw[line_end + 2 + size + 2..];
    }
}

/// Returns a multipart/form-data body with one field and its content type header.
pub(crate) fn multipart_body(field: &str, file_name: &str, bytes: &[u8]) -> (Vec<u8>, String) {
    let boundary = format!("chatvault-{}", uuid::Uuid::new_v4().simple());
    let mut body = format!(
        "--{boundary}\r\nContent-Disposition: form-data; name=\"{field}\"; filename=\"{file_name}\"\r\nContent-Type: application/octet-stream\r\n\r\n"
    )
    .into_bytes();
    body.extend_from_slice(bytes);
    body.extend_from_slice(format!("\r\n--{boundary}--\r\n").as_bytes());
    (body, format!("multipart/form-data; boundary={boundary}"))
}

/// Starts `count` nodes, registers them with storage as the admin (`admin_token`), and
/// waits until ingest places a probe upload's parts on all of them.
pub(crate) async fn registered_nodes(count: usize, files: &FilesServiceClient<Channel>, ingest: SocketAddr, admin_token: &str) -> Vec<TestNode> {
    let mut nodes = Vec::new();
    for _ in 0..count {
        let node = TestNode::start().await;
        let request = crate::accounts::authorized(RegisterNodeRequest { address: node.address.to_string() }, admin_token);
        files.clone().register_node(request).await.expect("RegisterNode");
        nodes.push(node);
    }
    let uploads = FileUploadServiceClient::new(connect(ingest).await);
    let placed = super::helpers::wait_until(Duration::from_secs(30), || {
        let mut uploads = uploads.clone();
        async move {
            let messages = vec![
                UploadFileRequest {
                    message: Some(upload_file_request::Message::Metadata(UploadMetadata {
                        name: "probe.bin".to_owned(),
                        content_type: String::new(),
                        restore: None,
                        folder_date: String::new(),
                    })),
                },
                UploadFileRequest { message: Some(upload_file_request::Message::Chunk(b"probe".to_vec().into())) },
            ];
            uploads
                .upload_file(crate::accounts::authorized(futures::stream::iter(messages), admin_token))
                .await
                .is_ok_and(|stored| stored.into_inner().fault_tolerance == expected_fault_tolerance(count))
        }
    })
    .await;
    assert!(placed, "ingest places parts on {count} nodes");
    nodes
}
