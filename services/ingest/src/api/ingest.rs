//! `chatvault.ingest.v1.IngestService`.

use std::path::PathBuf;
use std::pin::Pin;

use chatvault_common::config::KafkaConfig;
use chatvault_proto::ingest::v1::ingest_service_server::IngestService;
use chatvault_proto::ingest::v1::{
    import_update, upload_export_request, ExportFileChunk, ImportExportRequest, ImportProgress, ImportUpdate, UploadExportRequest,
};
use futures::Stream;
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;
use tokio_util::sync::CancellationToken;
use tonic::{Request, Response, Status, Streaming};
use tracing::Instrument;

use crate::import::upload::{UnpackLimits, UploadedExport};
use crate::import::{locate_export, locate_server_export, run_import, ExportOrigin, ImportRequest};
use crate::Error;

/// Where uploads are kept while they import, and how large they may be.
#[derive(Debug, Clone)]
pub struct UploadSettings {
    /// `CHATVAULT_INGEST_UPLOAD_DIR`: each upload gets a private folder in it.
    pub folder: PathBuf,
    /// `CHATVAULT_INGEST_MAX_UPLOAD_BYTES`: most bytes one upload may send.
    pub max_bytes: u64,
    /// What an uploaded `.zip` may unpack to.
    pub unpack_limits: UnpackLimits,
}

/// Chunks queued between the gRPC stream and the thread writing them to disk.
const CHUNKS_IN_FLIGHT: usize = 8;

/// The ingest gRPC API.
#[derive(Debug, Clone)]
pub struct IngestApi {
    kafka: KafkaConfig,
    uploads: UploadSettings,
    attachments: crate::files::FileUploader,
    shutdown: CancellationToken,
}

impl IngestApi {
    pub fn new(kafka: KafkaConfig, uploads: UploadSettings, attachments: crate::files::FileUploader, shutdown: CancellationToken) -> Self {
        Self { kafka, uploads, attachments, shutdown }
    }
}

type UpdateStream = Pin<Box<dyn Stream<Item = Result<ImportUpdate, Status>> + Send>>;
type UpdateSender = mpsc::Sender<Result<ImportUpdate, Status>>;

fn progress_update(progress: ImportProgress) -> Result<ImportUpdate, Status> {
    Ok(ImportUpdate { update: Some(import_update::Update::Progress(progress)) })
}

/// Runs an import and reports its progress and outcome on `updates`. `upload` (the folder
/// the export was uploaded to) lives until the import ends.
async fn import_and_report(
    kafka: KafkaConfig,
    request: ImportRequest,
    cancel: CancellationToken,
    updates: UpdateSender,
    upload: Option<UploadedExport>,
) {
    let progress_sender = updates.clone();
    let outcome = run_import(&kafka, request, cancel, move |progress| {
        // Progress is best effort: a slow client misses updates, never blocks the import.
        let _ = progress_sender.try_send(progress_update(progress));
    })
    .await;
    // Removing an unpacked export walks its whole folder: not on an async worker.
    if let Some(upload) = upload {
        let _ = tokio::task::spawn_blocking(move || drop(upload)).await;
    }
    let last_update = match outcome {
        Ok(summary) => {
            let token = summary.consistency_token.as_ref().map(|token| token.value.as_str()).unwrap_or("");
            tracing::info!(messages = summary.messages, chats = summary.chats, token, "import committed");
            Ok(ImportUpdate { update: Some(import_update::Update::Summary(summary)) })
        }
        Err(error) => {
            tracing::warn!(error = %error, "import refused or failed; nothing was published");
            Err(Status::from(error))
        }
    };
    let _ = updates.send(last_update).await;
}

/// What the receiving side hands the writing thread.
enum UploadWrite {
    Chunk(ExportFileChunk),
    /// The stream ended cleanly: close the files and unpack. Without it the writer drops
    /// the upload (its folder is removed) when the channel closes.
    Finish,
}

/// Receives an uploaded export into a temporary folder, reporting bytes as they arrive.
/// Files are written and a `.zip` unpacked on a blocking thread, fed through a short
/// queue, so disk work never stalls the async workers and memory stays a few chunks.
///
/// Errors: INVALID_ARGUMENT for a broken stream or a bad path, RESOURCE_EXHAUSTED for an
/// upload or archive beyond its limits; nothing stays on disk then.
async fn receive_upload(
    mut incoming: Streaming<UploadExportRequest>,
    settings: &UploadSettings,
    total_bytes: u64,
    updates: &UpdateSender,
) -> Result<UploadedExport, Error> {
    let (writes, mut write_receiver) = mpsc::channel::<UploadWrite>(CHUNKS_IN_FLIGHT);
    let (folder, max_bytes, unpack_limits) = (settings.folder.clone(), settings.max_bytes, settings.unpack_limits);
    // Returns `None` when the stream failed before `Finish`; the partial upload is dropped
    // (its folder removed) on this thread too.
    let writer = tokio::task::spawn_blocking(move || -> Result<Option<UploadedExport>, Error> {
        let mut upload = UploadedExport::create_in(&folder, max_bytes, unpack_limits)?;
        while let Some(write) = write_receiver.blocking_recv() {
            match write {
                UploadWrite::Chunk(chunk) => upload.write_chunk(&chunk.relative_path, &chunk.data)?,
                UploadWrite::Finish => return upload.finish().map(Some),
            }
        }
        Ok(None)
    });
    let received = forward_upload_chunks(&mut incoming, &writes, total_bytes, updates).await;
    if received.is_ok() {
        // A writer that already failed has dropped its receiver; its own error follows.
        let _ = writes.send(UploadWrite::Finish).await;
    }
    drop(writes);
    let written = writer.await.map_err(|error| Error::Internal(format!("upload writer thread: {error}")))?;
    // The writer's error explains a refused chunk better than the closed queue it left.
    match (received, written) {
        (_, Err(write_error)) => Err(write_error),
        (Err(receive_error), Ok(_)) => Err(receive_error),
        (Ok(()), Ok(Some(upload))) => Ok(upload),
        (Ok(()), Ok(None)) => Err(Error::Internal("the upload writer stopped before finishing".to_owned())),
    }
}

/// Hands the stream's chunks to the writer until the stream ends; stops early when the
/// writer has gone (it failed) and reports progress a few times a second.
async fn forward_upload_chunks(
    incoming: &mut Streaming<UploadExportRequest>,
    writes: &mpsc::Sender<UploadWrite>,
    total_bytes: u64,
    updates: &UpdateSender,
) -> Result<(), Error> {
    let mut bytes_received = 0u64;
    let mut reported_at = std::time::Instant::now();
    while let Some(message) =
        incoming.message().await.map_err(|status| Error::InvalidArgument(format!("the upload stream broke: {}", status.message())))?
    {
        match message.item {
            Some(upload_export_request::Item::Chunk(chunk)) => {
                bytes_received += chunk.data.len() as u64;
                if writes.send(UploadWrite::Chunk(chunk)).await.is_err() {
                    return Err(Error::Internal("the upload writer stopped".to_owned()));
                }
            }
            Some(upload_export_request::Item::Header(_)) => return Err(Error::InvalidArgument("the header may come only once, first".to_owned())),
            None => {}
        }
        if reported_at.elapsed().as_millis() >= 250 {
            reported_at = std::time::Instant::now();
            let _ = updates.try_send(progress_update(ImportProgress { bytes_read: bytes_received, bytes_total: total_bytes, ..Default::default() }));
        }
    }
    Ok(())
}

#[tonic::async_trait]
impl IngestService for IngestApi {
    type ImportExportStream = UpdateStream;
    type UploadExportStream = UpdateStream;

    /// Imports an export from a path on the server. Admins only: the path may name any
    /// file the service can read. The role is checked before the path is touched, so a
    /// refused caller learns nothing about the server's files, not even whether one exists.
    async fn import_export(&self, request: Request<ImportExportRequest>) -> Result<Response<UpdateStream>, Status> {
        let owner = chatvault_common::caller::caller_of_metadata(request.metadata());
        let caller_is_admin = chatvault_common::auth::is_admin_metadata(request.metadata());
        let request = request.into_inner();
        if request.path.trim().is_empty() {
            return Err(Status::invalid_argument("path is required: the export folder or its result.json"));
        }
        if !caller_is_admin {
            tracing::info!(caller = %owner, "server path import refused: not an admin");
            return Err(Status::permission_denied(
                "importing a path on the server needs the admin role; upload the export instead (chatvault import without --server-path)",
            ));
        }
        let path = PathBuf::from(&request.path);
        let source = tokio::task::spawn_blocking(move || locate_server_export(&path))
            .await
            .map_err(|error| Status::from(Error::Internal(format!("locating the export: {error}"))))?
            .map_err(Status::from)?;
        let import_id = uuid::Uuid::now_v7().to_string();
        let span = tracing::info_span!("import_export", import_id = %import_id, path = %source.label());
        let (updates, receiver) = mpsc::channel(16);
        let import_request = ImportRequest {
            import_id,
            source,
            local_utc_offset_seconds: request.local_utc_offset_seconds,
            html_chat_id: request.html_chat_id,
            owner: owner.clone(),
            attachments: Some(self.attachments.clone()),
            origin: ExportOrigin::ServerPath,
        };
        // The import outlives this call in a task of its own: its events still name the
        // caller (the owner) as their actor.
        let import = import_and_report(self.kafka.clone(), import_request, self.shutdown.child_token(), updates, None).instrument(span);
        tokio::spawn(chatvault_common::caller::act_as(owner, import));
        Ok(Response::new(Box::pin(ReceiverStream::new(receiver))))
    }

    async fn upload_export(&self, request: Request<Streaming<UploadExportRequest>>) -> Result<Response<UpdateStream>, Status> {
        let owner = chatvault_common::caller::caller_of_metadata(request.metadata());
        let attachments = self.attachments.clone();
        let mut incoming = request.into_inner();
        let header = match incoming.message().await? {
            Some(UploadExportRequest { item: Some(upload_export_request::Item::Header(header)) }) => header,
            Some(_) => return Err(Status::invalid_argument("the first message of an upload must be its header")),
            None => return Err(Status::invalid_argument("the upload is empty")),
        };
        let import_id = uuid::Uuid::now_v7().to_string();
        let span = tracing::info_span!("upload_export", import_id = %import_id);
        let (updates, receiver) = mpsc::channel(16);
        let kafka = self.kafka.clone();
        let settings = self.uploads.clone();
        let cancel = self.shutdown.child_token();
        tokio::spawn(chatvault_common::caller::act_as(
            owner.clone(),
            async move {
                let upload = match receive_upload(incoming, &settings, header.total_bytes, &updates).await {
                    Ok(upload) => upload,
                    Err(error) => {
                        tracing::warn!(error = %error, "upload refused");
                        let _ = updates.send(Err(Status::from(error))).await;
                        return;
                    }
                };
                let upload_root = upload.root().to_path_buf();
                let located = tokio::task::spawn_blocking(move || locate_export(&upload_root)).await;
                let source = match located {
                    Ok(Ok(source)) => source,
                    Ok(Err(_)) | Err(_) => {
                        let error = Error::InvalidArgument(
                            "the upload holds no Telegram export: send the export folder (with result.json or messages.html), one of those files, or a .zip of the folder".to_owned(),
                        );
                        let _ = updates.send(Err(Status::from(error))).await;
                        return;
                    }
                };
                let request = ImportRequest {
                    import_id,
                    source,
                    local_utc_offset_seconds: header.local_utc_offset_seconds,
                    html_chat_id: header.html_chat_id,
                    owner,
                    attachments: Some(attachments),
                    origin: ExportOrigin::Upload { root: upload.root().to_path_buf() },
                };
                import_and_report(kafka, request, cancel, updates, Some(upload)).await;
            }
            .instrument(span),
        ));
        Ok(Response::new(Box::pin(ReceiverStream::new(receiver))))
    }
}
