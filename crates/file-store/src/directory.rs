//! The registry of storage nodes as seen by one process: it follows the compacted
//! `storage.nodes` topic from the beginning (in memory), and keeps each node's used bytes
//! from `NodeStats`, refreshed when older than a moment and raised locally as parts are
//! written, so placement stays even between refreshes. New nodes show up while uploads run;
//! an upload keeps the placement it started with.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use chatvault_common::config::KafkaConfig;
use chatvault_proto::storage::v1::{node_event, NodeEvent, NodeRegistered};
use prost::Message as _;
use rdkafka::consumer::{Consumer, StreamConsumer};
use rdkafka::{Message, Offset, TopicPartitionList};
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;

use crate::node_client::NodeClients;
use crate::placement::{place_parts, NodeLoad, Placement};
use crate::{Error, Result};

/// Stats older than this are fetched again before placing parts.
const STATS_FRESHNESS: Duration = Duration::from_millis(1000);
/// An unreachable node is asked again after this long.
const DOWN_NODE_RETRY: Duration = Duration::from_secs(3);

/// A registered node.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RegisteredNode {
    pub node_id: String,
    pub address: String,
    pub registered_at_unix_ms: i64,
}

#[derive(Debug, Default)]
struct NodeFill {
    reported_used_bytes: u64,
    /// Bytes placed on the node since its last stats refresh.
    placed_since_refresh: u64,
    /// Bytes sent in parts not yet committed.
    in_flight_bytes: u64,
    reachable: bool,
    refreshed_at: Option<Instant>,
}

/// The node registry and fill estimates; cheap to clone.
#[derive(Clone, Debug)]
pub struct NodeDirectory {
    nodes: watch::Sender<BTreeMap<String, RegisteredNode>>,
    fills: Arc<Mutex<HashMap<String, NodeFill>>>,
    clients: NodeClients,
}

impl NodeDirectory {
    /// Returns an empty directory using `clients` to reach the nodes.
    pub fn new(clients: NodeClients) -> Self {
        Self { nodes: watch::Sender::new(BTreeMap::new()), fills: Arc::default(), clients }
    }

    /// Returns the node clients.
    pub fn clients(&self) -> &NodeClients {
        &self.clients
    }

    /// Adds or updates a node.
    pub fn upsert(&self, registered: RegisteredNode) {
        self.nodes.send_modify(|nodes| {
            nodes.insert(registered.node_id.clone(), registered);
        });
    }

    /// Returns every registered node.
    pub fn nodes(&self) -> Vec<RegisteredNode> {
        self.nodes.borrow().values().cloned().collect()
    }

    /// Waits until at least `count` nodes are known, at most `limit`.
    pub async fn wait_for_node_count(&self, count: usize, limit: Duration) -> bool {
        let mut receiver = self.nodes.subscribe();
        tokio::time::timeout(limit, receiver.wait_for(|nodes| nodes.len() >= count)).await.is_ok_and(|result| result.is_ok())
    }

    /// Follows `storage.nodes` from its beginning until `shutdown` fires.
    pub async fn follow_topic(&self, kafka: &KafkaConfig, group_label: &str, shutdown: CancellationToken) -> Result<()> {
        let topic = kafka.topic(chatvault_common::topics::STORAGE_NODES);
        let group = format!("chatvault-{group_label}-nodes-{}", rand::random::<u32>());
        let consumer: StreamConsumer = chatvault_common::kafka::read_committed_consumer(kafka, &group)?;
        let mut assignment = TopicPartitionList::new();
        // `storage.nodes` is created with one partition (it is compacted and small).
        assignment.add_partition_offset(&topic, 0, Offset::Beginning)?;
        consumer.assign(&assignment)?;
        loop {
            let received = tokio::select! {
                () = shutdown.cancelled() => return Ok(()),
                received = consumer.recv() => received,
            };
            match received {
                Ok(record) => match record.payload().map(NodeEvent::decode) {
                    Some(Ok(NodeEvent { event: Some(node_event::Event::NodeRegistered(registered)) })) => {
                        tracing::info!(node_id = %registered.node_id, address = %registered.address, "storage node known");
                        self.upsert(registered_node_of(registered));
                    }
                    _ => tracing::warn!(offset = record.offset(), "undecodable record on storage.nodes skipped"),
                },
                Err(error) => {
                    tracing::warn!(%error, "reading storage.nodes failed, retrying");
                    tokio::time::sleep(Duration::from_millis(500)).await;
                }
            }
        }
    }

    /// Refreshes stale stats, then places the parts of a new file on the reachable nodes.
    pub async fn place_new_file(&self) -> Result<Placement> {
        let nodes = self.nodes();
        if nodes.is_empty() {
            return Err(Error::Other("no storage nodes are registered (`chatvault nodes add <address>`)".to_owned()));
        }
        let stale: Vec<&RegisteredNode> = {
            let fills = self.fills.lock().unwrap_or_else(PoisonError::into_inner);
            nodes
                .iter()
                .filter(|node| match fills.get(&node.node_id) {
                    None => true,
                    Some(fill) => {
                        let limit = if fill.reachable { STATS_FRESHNESS } else { DOWN_NODE_RETRY };
                        fill.refreshed_at.is_none_or(|at| at.elapsed() > limit)
                    }
                })
                .collect()
        };
        let refreshed = futures::future::join_all(stale.iter().map(|node| self.clients.stats(&node.address))).await;
        let mut fills = self.fills.lock().unwrap_or_else(PoisonError::into_inner);
        for (node, stats) in stale.iter().zip(refreshed) {
            let fill = fills.entry(node.node_id.clone()).or_default();
            fill.refreshed_at = Some(Instant::now());
            match stats {
                Ok(stats) if stats.node_id == node.node_id => {
                    fill.reachable = true;
                    fill.reported_used_bytes = stats.used_bytes;
                    fill.placed_since_refresh = fill.in_flight_bytes;
                }
                Ok(stats) => {
                    tracing::warn!(node_id = %node.node_id, answered_as = %stats.node_id, address = %node.address, "a different node answers at this address; not used");
                    fill.reachable = false;
                }
                Err(error) => {
                    tracing::warn!(node_id = %node.node_id, address = %node.address, %error, "storage node unreachable; not used for new parts");
                    fill.reachable = false;
                }
            }
        }
        let candidates: Vec<NodeLoad> = nodes
            .iter()
            .filter_map(|node| {
                let fill = fills.get(&node.node_id)?;
                fill.reachable.then(|| NodeLoad {
                    node_id: node.node_id.clone(),
                    address: node.address.clone(),
                    estimated_used_bytes: fill.reported_used_bytes + fill.placed_since_refresh,
                })
            })
            .collect();
        place_parts(&candidates, &mut rand::rng())
            .ok_or_else(|| Error::Other(format!("none of the {} registered storage nodes is reachable", nodes.len())))
    }

    /// Counts `bytes` sent to `node_id` in a part not yet committed.
    pub fn record_bytes_sent(&self, node_id: &str, bytes: u64) {
        let mut fills = self.fills.lock().unwrap_or_else(PoisonError::into_inner);
        let fill = fills.entry(node_id.to_owned()).or_default();
        fill.placed_since_refresh += bytes;
        fill.in_flight_bytes += bytes;
    }

    /// Marks a part of `bytes` on `node_id` as committed or abandoned.
    pub fn record_part_finished(&self, node_id: &str, bytes: u64, committed: bool) {
        let mut fills = self.fills.lock().unwrap_or_else(PoisonError::into_inner);
        let fill = fills.entry(node_id.to_owned()).or_default();
        fill.in_flight_bytes = fill.in_flight_bytes.saturating_sub(bytes);
        if !committed {
            fill.placed_since_refresh = fill.placed_since_refresh.saturating_sub(bytes);
        }
    }
}

/// Returns the directory entry of a `NodeRegistered` event.
pub fn registered_node_of(registered: NodeRegistered) -> RegisteredNode {
    RegisteredNode { node_id: registered.node_id, address: registered.address, registered_at_unix_ms: registered.registered_at_unix_ms }
}
