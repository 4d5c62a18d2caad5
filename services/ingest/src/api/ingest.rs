//! `chatvault.ingest.v1.IngestService`.

use std::path::PathBuf;
use std::pin::Pin;

use chatvault_common::config::KafkaConfig;
use chatvault_proto::ingest::v1::ingest_service_server::IngestService;
use chatvault_proto::ingest::v1::{
    import_update, upload_export_request, ImportExportRequest, ImportProgress, ImportUpdate, UploadExportRequest,
};
use futures::Stream;
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;
use tokio_util::sync::CancellationToken;
use tonic::{Request, Response, Status, Streaming};
use tracing::Instrument;

use crate::import::upload::UploadedExport;
use crate::import::{locate_export, run_import, ImportRequest};
use crate::Error;

/// Where uploads are kept while they import, and how large they may be.
#[derive(Debug, Clone)]
pub struct UploadSettings {
    pub folder: PathBuf,
    pub max_bytes: u64,
}

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
async fn import_and_report(kafka: KafkaConfig, request: ImportRequest, cancel: CancellationToken, updates: UpdateSender, upload: Option<UploadedExport>) {
    let progress_sender = updates.clone();
    let outcome = run_import(&kafka, request, cancel, move |progress| {
        // Progress is best effort: a slow client misses updates, never blocks the import.
        let _ = progress_sender.try_send(progress_update(progress));
    })
    .await;
    drop(upload);
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

/// Receives an uploaded export into a temporary folder, reporting bytes as they arrive.
async fn receive_upload(
    mut incoming: Streaming<UploadExportRequest>,
    settings: &UploadSettings,
    total_bytes: u64,
    updates: &UpdateSender,
) -> Result<UploadedExport, Error> {
    let mut upload = UploadedExport::create_in(&settings.folder, settings.max_bytes)?;
    let mut reported_at = std::time::Instant::now();
    while let Some(message) = incoming.message().await.map_err(|status| Error::InvalidArgument(format!("the upload stream broke: {}", status.message())))? {
        match message.item {
            Some(upload_export_request::Item::Chunk(chunk)) => upload.write_chunk(&chunk.relative_path, &chunk.data)?,
            Some(upload_export_request::Item::Header(_)) => return Err(Error::InvalidArgument("the header may come only once, first".to_owned())),
            None => {}
        }
        if reported_at.elapsed().as_millis() >= 250 {
            reported_at = std::time::Instant::now();
            let _ = updates.try_send(progress_update(ImportProgress { bytes_read: upload.bytes_received(), bytes_total: total_bytes, ..Default::default() }));
        }
    }
    upload.finish()
}

#[tonic::async_trait]
impl IngestService for IngestApi {
    type ImportExportStream = UpdateStream;
    type UploadExportStream = UpdateStream;

    async fn import_export(&self, request: Request<ImportExportRequest>) -> Result<Response<UpdateStream>, Status> {
        let owner = chatvault_common::caller::caller_of_metadata(request.metadata());
        let request = request.into_inner();
        if request.path.trim().is_empty() {
            return Err(Status::invalid_argument("path is required: the export folder or its result.json"));
        }
        let source = locate_export(&PathBuf::from(&request.path)).map_err(Status::from)?;
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
                let source = match locate_export(upload.root()) {
                    Ok(source) => source,
                    Err(_) => {
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
                };
                import_and_report(kafka, request, cancel, updates, Some(upload)).await;
            }
            .instrument(span),
        ));
        Ok(Response::new(Box::pin(ReceiverStream::new(receiver))))
    }
}
