//! `chatvault.ingest.v1.IngestService`.

use std::path::PathBuf;
use std::pin::Pin;

use chatvault_common::config::KafkaConfig;
use chatvault_proto::ingest::v1::ingest_service_server::IngestService;
use chatvault_proto::ingest::v1::{import_update, ImportExportRequest, ImportUpdate};
use futures::Stream;
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;
use tokio_util::sync::CancellationToken;
use tonic::{Request, Response, Status};
use tracing::Instrument;

use crate::import::{locate_json_export, run_json_import, ImportRequest};

/// The ingest gRPC API.
#[derive(Debug, Clone)]
pub struct IngestApi {
    kafka: KafkaConfig,
    shutdown: CancellationToken,
}

impl IngestApi {
    pub fn new(kafka: KafkaConfig, shutdown: CancellationToken) -> Self {
        Self { kafka, shutdown }
    }
}

type UpdateStream = Pin<Box<dyn Stream<Item = Result<ImportUpdate, Status>> + Send>>;

#[tonic::async_trait]
impl IngestService for IngestApi {
    type ImportExportStream = UpdateStream;

    async fn import_export(&self, request: Request<ImportExportRequest>) -> Result<Response<UpdateStream>, Status> {
        let request = request.into_inner();
        if request.path.trim().is_empty() {
            return Err(Status::invalid_argument("path is required: the export folder or its result.json"));
        }
        let export_path = locate_json_export(&PathBuf::from(&request.path)).map_err(Status::from)?;
        let import_id = uuid::Uuid::now_v7().to_string();
        let span = tracing::info_span!("import_export", import_id = %import_id, path = %export_path.display());
        let (updates, receiver) = mpsc::channel::<Result<ImportUpdate, Status>>(16);
        let import_request = ImportRequest {
            import_id,
            export_path,
            local_utc_offset_seconds: request.local_utc_offset_seconds,
        };
        let kafka = self.kafka.clone();
        let cancel = self.shutdown.child_token();
        tokio::spawn(
            async move {
                let progress_sender = updates.clone();
                let outcome = run_json_import(&kafka, import_request, cancel, move |progress| {
                    // Progress is best effort: a slow client misses updates, never blocks the import.
                    let _ = progress_sender.try_send(Ok(ImportUpdate { update: Some(import_update::Update::Progress(progress)) }));
                })
                .await;
                let last_update = match outcome {
                    Ok(summary) => {
                        tracing::info!(messages = summary.messages, chats = summary.chats, token = summary.consistency_token.as_ref().map(|token| token.value.as_str()).unwrap_or(""), "import committed");
                        Ok(ImportUpdate { update: Some(import_update::Update::Summary(summary)) })
                    }
                    Err(error) => {
                        tracing::warn!(error = %error, "import refused or failed; nothing was published");
                        Err(Status::from(error))
                    }
                };
                let _ = updates.send(last_update).await;
            }
            .instrument(span),
        );
        Ok(Response::new(Box::pin(ReceiverStream::new(receiver))))
    }
}
