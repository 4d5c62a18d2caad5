//! `chatvault.storagenode.v1.StorageNodeService`: thin handlers over the part store; disk
//! work runs on blocking threads.

use std::pin::Pin;
use std::sync::Arc;

use chatvault_proto::storagenode::v1::storage_node_service_server::StorageNodeService;
use chatvault_proto::storagenode::v1::{
    put_part_request, DeletePartRequest, DeletePartResponse, GetPartRequest, GetPartResponse, NodeStatsRequest, NodeStatsResponse, PutPartRequest,
    PutPartResponse, StatPartRequest, StatPartResponse,
};
use futures::{Stream, StreamExt};
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;
use tonic::{Request, Response, Status, Streaming};

use crate::part_store::{PartStore, PartWrite};
use crate::Error;

/// The storage node gRPC API.
#[derive(Debug, Clone)]
pub struct StorageNodeApi {
    node_id: String,
    store: Arc<PartStore>,
}

impl StorageNodeApi {
    pub fn new(node_id: String, store: Arc<PartStore>) -> Self {
        Self { node_id, store }
    }

    async fn put_part(&self, mut messages: Streaming<PutPartRequest>) -> Result<PutPartResponse, Error> {
        let header = match messages.message().await.map_err(|status| Error::InvalidArgument(status.message().to_owned()))? {
            Some(PutPartRequest { message: Some(put_part_request::Message::Header(header)) }) => header,
            _ => return Err(Error::InvalidArgument("the first PutPart message must be the header".to_owned())),
        };
        let store = Arc::clone(&self.store);
        let part_id = header.part_id.clone();
        let mut write: PartWrite = blocking(move || store.begin_write(&header.part_id, header.block_size)).await?;
        loop {
            let message = messages
                .message()
                .await
                .map_err(|status| Error::InvalidArgument(format!("the part stream of {part_id} broke off: {}; nothing stored", status.message())))?;
            match message.and_then(|request| request.message) {
                Some(put_part_request::Message::Chunk(chunk)) => {
                    write = blocking(move || write.append(&chunk).map(|()| write)).await?;
                }
                Some(put_part_request::Message::Commit(commit)) => {
                    let store = Arc::clone(&self.store);
                    let sha256 = blocking(move || write.commit(&store, commit.size, &commit.sha256)).await?;
                    tracing::debug!(part_id = %part_id, size = commit.size, "part stored");
                    return Ok(PutPartResponse { size: commit.size, sha256 });
                }
                Some(put_part_request::Message::Header(_)) => return Err(Error::InvalidArgument("a PutPart stream has one header".to_owned())),
                None => return Err(Error::InvalidArgument(format!("the part stream of {part_id} ended without a commit; nothing stored"))),
            }
        }
    }
}

async fn blocking<T: Send + 'static>(work: impl FnOnce() -> Result<T, Error> + Send + 'static) -> Result<T, Error> {
    tokio::task::spawn_blocking(work).await.map_err(|error| Error::Internal(format!("disk task: {error}")))?
}

type PartStream = Pin<Box<dyn Stream<Item = Result<GetPartResponse, Status>> + Send>>;

#[tonic::async_trait]
impl StorageNodeService for StorageNodeApi {
    #[tracing::instrument(skip_all)]
    async fn put_part(&self, request: Request<Streaming<PutPartRequest>>) -> Result<Response<PutPartResponse>, Status> {
        Ok(Response::new(StorageNodeApi::put_part(self, request.into_inner()).await?))
    }

    type GetPartStream = PartStream;

    #[tracing::instrument(skip_all, fields(part_id = %request.get_ref().part_id))]
    async fn get_part(&self, request: Request<GetPartRequest>) -> Result<Response<PartStream>, Status> {
        let request = request.into_inner();
        let store = Arc::clone(&self.store);
        let mut read = blocking(move || store.open_read(&request.part_id, &request.expected_sha256, request.first_block)).await?;
        let (sender, receiver) = mpsc::channel::<Result<GetPartResponse, Status>>(4);
        tokio::spawn(async move {
            loop {
                let outcome = tokio::task::spawn_blocking(move || {
                    let block = read.next_block();
                    (read, block)
                })
                .await;
                let (returned_read, block) = match outcome {
                    Ok(pair) => pair,
                    Err(error) => {
                        let _ = sender.send(Err(Status::internal(format!("disk task: {error}")))).await;
                        return;
                    }
                };
                read = returned_read;
                let message = match block {
                    Ok(Some(block)) => Ok(GetPartResponse { chunk: block }),
                    Ok(None) => return,
                    Err(error) => Err(Status::from(error)),
                };
                let failed = message.is_err();
                if sender.send(message).await.is_err() || failed {
                    return;
                }
            }
        });
        Ok(Response::new(ReceiverStream::new(receiver).boxed()))
    }

    async fn stat_part(&self, request: Request<StatPartRequest>) -> Result<Response<StatPartResponse>, Status> {
        let store = Arc::clone(&self.store);
        let part_id = request.into_inner().part_id;
        let footer = blocking(move || store.stat(&part_id)).await?;
        Ok(Response::new(StatPartResponse { size: footer.size, sha256: footer.part_sha256(), block_size: footer.block_size }))
    }

    #[tracing::instrument(skip_all, fields(part_id = %request.get_ref().part_id))]
    async fn delete_part(&self, request: Request<DeletePartRequest>) -> Result<Response<DeletePartResponse>, Status> {
        let store = Arc::clone(&self.store);
        let part_id = request.into_inner().part_id;
        let existed = blocking(move || store.delete(&part_id)).await?;
        Ok(Response::new(DeletePartResponse { existed }))
    }

    async fn node_stats(&self, _request: Request<NodeStatsRequest>) -> Result<Response<NodeStatsResponse>, Status> {
        let store = Arc::clone(&self.store);
        let free_bytes = blocking(move || Ok(store.free_bytes())).await?;
        Ok(Response::new(NodeStatsResponse {
            node_id: self.node_id.clone(),
            used_bytes: self.store.used_bytes(),
            free_bytes,
            part_count: self.store.part_count(),
        }))
    }
}
