//! The gRPC client of the storage nodes: one lazily connected channel per address, part
//! writers that stream blocks to a node in the background, and part readers.
//!
//! Nodes answer only the platform's own services. Every call carries a fresh short-lived
//! token of the `service` role, signed with the installation's `CHATVAULT_JWT_SECRET` by
//! the calling service ([`NodeCredential`], a tonic interceptor) and verified by the node's
//! [`chatvault_common::auth::AuthConfig::services_only_grpc_layer`]. Why a shared-secret
//! token rather than mutual TLS is explained in [`chatvault_common::auth`].

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use chatvault_common::auth::ServiceTokenIssuer;
use chatvault_proto::storagenode::v1::storage_node_service_client::StorageNodeServiceClient;
use chatvault_proto::storagenode::v1::{
    put_part_request, DeletePartRequest, GetPartRequest, GetPartResponse, NodeStatsRequest, NodeStatsResponse, PartCommit, PartHeader,
    PutPartRequest, PutPartResponse,
};
use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use tokio_stream::wrappers::ReceiverStream;
use tonic::service::interceptor::InterceptedService;
use tonic::transport::{Channel, Endpoint};

use crate::{Error, Result};

/// How long a node may take to accept a connection before it counts as down.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(2);
/// How long a stats call may take.
const STATS_TIMEOUT: Duration = Duration::from_secs(3);
/// Largest gRPC message accepted from a node (a block plus framing).
pub const MAX_MESSAGE_BYTES: usize = 16 << 20;

/// Adds the calling service's credential (`authorization: Bearer <service token>`) to every
/// request to a node.
#[derive(Clone, Debug)]
pub struct NodeCredential {
    issuer: ServiceTokenIssuer,
}

impl tonic::service::Interceptor for NodeCredential {
    fn call(&mut self, mut request: tonic::Request<()>) -> std::result::Result<tonic::Request<()>, tonic::Status> {
        request.metadata_mut().insert("authorization", self.issuer.authorization_metadata());
        Ok(request)
    }
}

/// A client of one storage node that sends the service credential.
pub type NodeClient = StorageNodeServiceClient<InterceptedService<Channel, NodeCredential>>;

/// Clients of every storage node by address, sharing one channel per node.
///
/// There is no `Default`: whoever builds one names the service the calls come from, so no
/// caller can forget the credential.
#[derive(Clone, Debug)]
pub struct NodeClients {
    channels: Arc<Mutex<HashMap<String, Channel>>>,
    credential: NodeCredential,
}

impl NodeClients {
    /// Returns clients whose calls carry tokens from `issuer`
    /// (`config.auth.service_token_issuer(SERVICE_NAME)`).
    pub fn new(issuer: ServiceTokenIssuer) -> Self {
        Self { channels: Arc::default(), credential: NodeCredential { issuer } }
    }

    /// Returns a client of the node at `address` (`host:port`).
    pub fn client(&self, address: &str) -> Result<NodeClient> {
        let mut channels = self.channels.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        let channel = match channels.get(address) {
            Some(channel) => channel.clone(),
            None => {
                let endpoint = Endpoint::from_shared(format!("http://{address}")).map_err(|_| Error::BadAddress(address.to_owned()))?;
                let channel = chatvault_common::grpc::bulk_transfer_endpoint(endpoint).connect_timeout(CONNECT_TIMEOUT).connect_lazy();
                channels.insert(address.to_owned(), channel.clone());
                channel
            }
        };
        Ok(StorageNodeServiceClient::with_interceptor(channel, self.credential.clone())
            .max_decoding_message_size(MAX_MESSAGE_BYTES)
            .max_encoding_message_size(MAX_MESSAGE_BYTES))
    }

    /// Returns the node's id and fill, or an error when it is unreachable.
    pub async fn stats(&self, address: &str) -> Result<NodeStatsResponse> {
        let mut client = self.client(address)?;
        match tokio::time::timeout(STATS_TIMEOUT, client.node_stats(NodeStatsRequest {})).await {
            Ok(Ok(response)) => Ok(response.into_inner()),
            Ok(Err(status)) => Err(Error::Node { node: address.to_owned(), status }),
            Err(_) => Err(Error::Node { node: address.to_owned(), status: tonic::Status::deadline_exceeded("no answer to NodeStats") }),
        }
    }

    /// Deletes a part; returns whether it existed.
    pub async fn delete_part(&self, address: &str, part_id: &str) -> Result<bool> {
        let mut client = self.client(address)?;
        let response = client
            .delete_part(DeletePartRequest { part_id: part_id.to_owned() })
            .await
            .map_err(|status| Error::Node { node: address.to_owned(), status })?;
        Ok(response.into_inner().existed)
    }

    /// Opens a stream of a part's bytes from block `first_block` on.
    pub async fn get_part(&self, address: &str, part_id: &str, expected_sha256: &str, first_block: u64) -> Result<tonic::Streaming<GetPartResponse>> {
        let mut client = self.client(address)?;
        let request = GetPartRequest { part_id: part_id.to_owned(), expected_sha256: expected_sha256.to_owned(), first_block };
        let response = client.get_part(request).await.map_err(|status| Error::Node { node: address.to_owned(), status })?;
        Ok(response.into_inner())
    }

    /// Starts writing part `part_id` to the node at `address`; blocks are sent through the
    /// returned writer.
    pub fn start_part_writer(&self, address: &str, part_id: &str, block_size: u64) -> Result<PartWriter> {
        let mut client = self.client(address)?;
        let (sender, receiver) = mpsc::channel::<PutPartRequest>(4);
        let header = PutPartRequest { message: Some(put_part_request::Message::Header(PartHeader { part_id: part_id.to_owned(), block_size })) };
        // The header is queued first; the channel is empty, so this cannot fail.
        let _ = sender.try_send(header);
        let node = address.to_owned();
        let task = tokio::spawn(async move {
            client.put_part(ReceiverStream::new(receiver)).await.map(tonic::Response::into_inner).map_err(|status| Error::Node { node, status })
        });
        Ok(PartWriter { address: address.to_owned(), sender, task })
    }
}

/// A part being written to one node.
#[derive(Debug)]
pub struct PartWriter {
    address: String,
    sender: mpsc::Sender<PutPartRequest>,
    task: JoinHandle<Result<PutPartResponse>>,
}

impl PartWriter {
    /// Sends the next bytes of the part; waits while the node is behind.
    pub async fn send(&mut self, chunk: Bytes) -> Result<()> {
        let message = PutPartRequest { message: Some(put_part_request::Message::Chunk(chunk)) };
        if self.sender.send(message).await.is_err() {
            // The call ended early: its result says why.
            return Err(self.finish_failed().await);
        }
        Ok(())
    }

    async fn finish_failed(&mut self) -> Error {
        match (&mut self.task).await {
            Ok(Err(error)) => error,
            Ok(Ok(_)) => Error::Other(format!("storage node {} ended the part early", self.address)),
            Err(error) => Error::Other(format!("part writer task: {error}")),
        }
    }

    /// Sends the expected size and hash and waits for the node to store the part.
    pub async fn commit(mut self, size: u64, sha256: String) -> Result<PutPartResponse> {
        let message = PutPartRequest { message: Some(put_part_request::Message::Commit(PartCommit { size, sha256 })) };
        if self.sender.send(message).await.is_err() {
            return Err(self.finish_failed().await);
        }
        drop(self.sender);
        match self.task.await {
            Ok(result) => result,
            Err(error) => Err(Error::Other(format!("part writer task: {error}"))),
        }
    }

    /// Abandons the part: the node discards what it received.
    pub fn abort(self) {
        self.task.abort();
    }
}
