//! `chatvault.ingest.v1.FileUploadService`: the first message names the file, the rest
//! carry its bytes. Metadata with a `restore` identity (admins only) brings a backed-up
//! file back under its old id, owner and upload time.

use bytes::Bytes;
use chatvault_proto::common::v1::ConsistencyToken;
use chatvault_proto::ingest::v1::file_upload_service_server::FileUploadService;
use chatvault_proto::ingest::v1::{upload_file_request, UploadFileRequest, UploadFileResponse};
use futures::StreamExt;
use tonic::{Request, Response, Status, Streaming};

use crate::files::{FileUploader, RestoredIdentity, UploadRequest};
use crate::Error;

/// The upload gRPC API.
#[derive(Debug, Clone)]
pub struct FileUploadApi {
    uploader: FileUploader,
}

impl FileUploadApi {
    pub fn new(uploader: FileUploader) -> Self {
        Self { uploader }
    }
}

#[tonic::async_trait]
impl FileUploadService for FileUploadApi {
    async fn upload_file(&self, request: Request<Streaming<UploadFileRequest>>) -> Result<Response<UploadFileResponse>, Status> {
        let owner = chatvault_common::caller::caller_of_metadata(request.metadata());
        let caller_is_admin = chatvault_common::auth::require_admin(request.metadata(), "restoring a file");
        let mut messages = request.into_inner();
        let metadata = match messages.message().await? {
            Some(UploadFileRequest { message: Some(upload_file_request::Message::Metadata(metadata)) }) => metadata,
            Some(_) => return Err(Status::invalid_argument("the first UploadFile message must carry the metadata (the file name)")),
            None => return Err(Status::invalid_argument("the upload is empty: send the metadata, then the file's bytes")),
        };
        let restored = match metadata.restore {
            Some(identity) => {
                caller_is_admin?;
                Some(RestoredIdentity::parse(identity)?)
            }
            None => None,
        };
        let body = messages.map(|message| match message {
            Ok(UploadFileRequest { message: Some(upload_file_request::Message::Chunk(chunk)) }) => Ok::<Bytes, Error>(chunk),
            Ok(_) => Err(Error::InvalidArgument("after the metadata, every UploadFile message must be a chunk".to_owned())),
            Err(status) => Err(Error::InvalidArgument(format!("the upload broke off: {}", status.message()))),
        });
        let folder_date = crate::files::folder_date(&metadata.folder_date, chrono::Utc::now())?;
        let request = UploadRequest { owner, name: metadata.name, content_type: metadata.content_type, folder_date };
        let stored = match restored {
            Some(identity) => self.uploader.restore(identity, request, Box::pin(body)).await?,
            None => self.uploader.upload(request, Box::pin(body)).await?,
        };
        Ok(Response::new(UploadFileResponse {
            file_id: stored.file_id,
            size: stored.size,
            sha256: stored.sha256,
            upload_date: stored.upload_date,
            fault_tolerance: stored.fault_tolerance,
            consistency_token: Some(ConsistencyToken { value: stored.positions.to_token() }),
        }))
    }
}
