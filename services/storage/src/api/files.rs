//! `chatvault.storage.v1.FilesService`: thin handlers over the file catalog. DownloadFile and
//! OpenShareLink stream through one function; DescribeShareLink and OpenShareLink are public
//! (the link's token is the credential) and check links as the `/s/` HTTP route does.

use std::pin::Pin;
use std::sync::Arc;

use chatvault_common::caller::caller_of_metadata;
use chatvault_common::consistency::Positions;
use chatvault_proto::common::v1::ConsistencyToken;
use chatvault_proto::storage::v1::files_service_server::FilesService;
use chatvault_proto::storage::v1::{
    download_file_response, CreateShareLinkRequest, CreateShareLinkResponse, DeleteFileRequest, DeleteFileResponse, DescribeShareLinkRequest,
    DescribeShareLinkResponse, DownloadFileRequest, DownloadFileResponse, FileInfo, ListFileDatesRequest, ListFileDatesResponse, ListFilesRequest,
    ListFilesResponse, ListNodesRequest, ListNodesResponse, ListShareLinksRequest, ListShareLinksResponse, OpenShareLinkRequest, RegisterNodeRequest,
    RegisterNodeResponse, RenameFileRequest, RenameFileResponse, RevokeShareLinkRequest, RevokeShareLinkResponse, StatFileRequest,
};
use futures::{Stream, StreamExt};
use tokio_stream::wrappers::ReceiverStream;
use tonic::{Request, Response, Status};

use crate::files::download::{spawn_download, FileManifest};
use crate::files::FileCatalog;

/// The files gRPC API.
#[derive(Debug, Clone)]
pub struct FilesApi {
    catalog: FileCatalog,
}

impl FilesApi {
    pub fn new(catalog: FileCatalog) -> Self {
        Self { catalog }
    }
}

fn token_of(token: Option<&ConsistencyToken>) -> Option<&str> {
    token.map(|token| token.value.as_str())
}

fn consistency_token(positions: &Positions) -> Option<ConsistencyToken> {
    Some(ConsistencyToken { value: positions.to_token() })
}

type DownloadStream = Pin<Box<dyn Stream<Item = Result<DownloadFileResponse, Status>> + Send>>;

/// Returns the stream of a download: the file's info, then its bytes (verified as
/// `spawn_download` says).
fn download_stream(catalog: &FileCatalog, manifest: FileManifest) -> DownloadStream {
    let info = DownloadFileResponse { message: Some(download_file_response::Message::Info(manifest.info.clone())) };
    let chunks = ReceiverStream::new(spawn_download(catalog.clients().clone(), Arc::new(manifest), None))
        .map(|chunk| chunk.map(|bytes| DownloadFileResponse { message: Some(download_file_response::Message::Chunk(bytes)) }).map_err(Status::from));
    futures::stream::once(async { Ok(info) }).chain(chunks).boxed()
}

#[tonic::async_trait]
impl FilesService for FilesApi {
    type DownloadFileStream = DownloadStream;
    type OpenShareLinkStream = DownloadStream;

    #[tracing::instrument(skip_all, fields(file_id = %request.get_ref().file_id))]
    async fn download_file(&self, request: Request<DownloadFileRequest>) -> Result<Response<DownloadStream>, Status> {
        let owner = caller_of_metadata(request.metadata());
        // Admins read every file: backups copy the bytes of all owners' files.
        let any_owner = chatvault_common::auth::is_admin_metadata(request.metadata());
        let request = request.into_inner();
        self.catalog.wait_for_token(token_of(request.consistency_token.as_ref())).await?;
        if !any_owner {
            self.catalog.file_of_owner(&request.file_id, &owner).await?;
        }
        let manifest = self.catalog.manifest(&request.file_id).await?;
        Ok(Response::new(download_stream(&self.catalog, manifest)))
    }

    async fn stat_file(&self, request: Request<StatFileRequest>) -> Result<Response<FileInfo>, Status> {
        let owner = caller_of_metadata(request.metadata());
        let request = request.into_inner();
        self.catalog.wait_for_token(token_of(request.consistency_token.as_ref())).await?;
        Ok(Response::new(self.catalog.file_of_owner(&request.file_id, &owner).await?))
    }

    async fn list_files(&self, request: Request<ListFilesRequest>) -> Result<Response<ListFilesResponse>, Status> {
        let owner = caller_of_metadata(request.metadata());
        let request = request.into_inner();
        self.catalog.wait_for_token(token_of(request.consistency_token.as_ref())).await?;
        Ok(Response::new(ListFilesResponse { files: self.catalog.list_files(&owner, &request.date).await? }))
    }

    #[tracing::instrument(skip_all, fields(file_id = %request.get_ref().file_id))]
    async fn delete_file(&self, request: Request<DeleteFileRequest>) -> Result<Response<DeleteFileResponse>, Status> {
        let owner = caller_of_metadata(request.metadata());
        let request = request.into_inner();
        self.catalog.wait_for_token(token_of(request.consistency_token.as_ref())).await?;
        let positions = self.catalog.delete_file(&owner, &request.file_id).await?;
        Ok(Response::new(DeleteFileResponse { consistency_token: consistency_token(&positions) }))
    }

    #[tracing::instrument(skip_all, fields(file_id = %request.get_ref().file_id))]
    async fn create_share_link(&self, request: Request<CreateShareLinkRequest>) -> Result<Response<CreateShareLinkResponse>, Status> {
        let owner = caller_of_metadata(request.metadata());
        let request = request.into_inner();
        self.catalog.wait_for_token(token_of(request.consistency_token.as_ref())).await?;
        let created = self.catalog.create_share_link(&owner, &request.file_id, request.expires_in_seconds, &request.password).await?;
        Ok(Response::new(CreateShareLinkResponse {
            path: format!("/s/{}", created.token),
            token: created.token,
            expires_at_unix_ms: created.expires_at_unix_ms,
            consistency_token: consistency_token(&created.positions),
        }))
    }

    async fn revoke_share_link(&self, request: Request<RevokeShareLinkRequest>) -> Result<Response<RevokeShareLinkResponse>, Status> {
        let owner = caller_of_metadata(request.metadata());
        let request = request.into_inner();
        self.catalog.wait_for_token(token_of(request.consistency_token.as_ref())).await?;
        let positions = self.catalog.revoke_share_link(&owner, &request.token, &request.link_id).await?;
        Ok(Response::new(RevokeShareLinkResponse { consistency_token: consistency_token(&positions) }))
    }

    async fn list_file_dates(&self, request: Request<ListFileDatesRequest>) -> Result<Response<ListFileDatesResponse>, Status> {
        let owner = caller_of_metadata(request.metadata());
        self.catalog.wait_for_token(token_of(request.get_ref().consistency_token.as_ref())).await?;
        Ok(Response::new(ListFileDatesResponse { dates: self.catalog.list_file_dates(&owner).await? }))
    }

    #[tracing::instrument(skip_all, fields(file_id = %request.get_ref().file_id))]
    async fn rename_file(&self, request: Request<RenameFileRequest>) -> Result<Response<RenameFileResponse>, Status> {
        let caller = caller_of_metadata(request.metadata());
        let any_owner = chatvault_common::auth::is_admin_metadata(request.metadata());
        let request = request.into_inner();
        self.catalog.wait_for_token(token_of(request.consistency_token.as_ref())).await?;
        let (file, positions) = self.catalog.rename_file(&caller, any_owner, &request.file_id, &request.name).await?;
        Ok(Response::new(RenameFileResponse { file: Some(file), consistency_token: consistency_token(&positions) }))
    }

    async fn list_share_links(&self, request: Request<ListShareLinksRequest>) -> Result<Response<ListShareLinksResponse>, Status> {
        let caller = caller_of_metadata(request.metadata());
        let any_owner = chatvault_common::auth::is_admin_metadata(request.metadata());
        let request = request.into_inner();
        self.catalog.wait_for_token(token_of(request.consistency_token.as_ref())).await?;
        Ok(Response::new(ListShareLinksResponse { links: self.catalog.list_share_links(&caller, any_owner, &request.file_id).await? }))
    }

    async fn describe_share_link(&self, request: Request<DescribeShareLinkRequest>) -> Result<Response<DescribeShareLinkResponse>, Status> {
        let preview = self.catalog.describe_share_link(&request.get_ref().token).await?;
        let file = preview.file.unwrap_or_default();
        Ok(Response::new(DescribeShareLinkResponse {
            password_required: preview.password_required,
            expires_at_unix_ms: preview.expires_at_unix_ms,
            name: file.name,
            size: file.size,
            content_type: file.content_type,
        }))
    }

    async fn open_share_link(&self, request: Request<OpenShareLinkRequest>) -> Result<Response<DownloadStream>, Status> {
        let request = request.into_inner();
        let manifest = self.catalog.open_share_link(&request.token, Some(request.password.as_str())).await?;
        Ok(Response::new(download_stream(&self.catalog, manifest)))
    }

    #[tracing::instrument(skip_all, fields(address = %request.get_ref().address))]
    async fn register_node(&self, request: Request<RegisterNodeRequest>) -> Result<Response<RegisterNodeResponse>, Status> {
        chatvault_common::auth::require_admin(request.metadata(), "registering a storage node")?;
        let address = request.into_inner().address;
        let (node_id, newly_registered, positions) = self.catalog.register_node(&address).await?;
        Ok(Response::new(RegisterNodeResponse {
            node_id,
            address: address.trim().trim_start_matches("http://").trim_end_matches('/').to_owned(),
            newly_registered,
            consistency_token: consistency_token(&positions),
        }))
    }

    async fn list_nodes(&self, request: Request<ListNodesRequest>) -> Result<Response<ListNodesResponse>, Status> {
        // Node addresses and fill are the installation's layout, an operator's business.
        chatvault_common::auth::require_admin(request.metadata(), "listing the storage nodes")?;
        self.catalog.wait_for_token(token_of(request.get_ref().consistency_token.as_ref())).await?;
        Ok(Response::new(ListNodesResponse { nodes: self.catalog.list_nodes().await? }))
    }
}
