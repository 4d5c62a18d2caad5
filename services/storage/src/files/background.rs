//! Background work on the nodes: purging the parts of deleted files, and rebalancing,
//! which moves parts from the most used node to the least used one (never onto a node
//! that already holds a part of the same file) until the fill is even. New nodes thereby
//! fill up while the platform runs, beyond the one part per file placement can give them.

use std::time::Duration;

use chatvault_common::consistency::Positions;
use chatvault_file_store::node_client::NodeClients;
use chatvault_file_store::part_id;
use chatvault_proto::files::v1::{file_event, FilePartMoved};
use tokio_util::sync::CancellationToken;

use super::catalog::FileCatalog;
use super::sql;
use crate::Error;

/// Deleted files are looked for at least this often (and at once after a delete).
const PURGE_INTERVAL: Duration = Duration::from_secs(5);
/// Rebalancing stops when the most used node holds at most this many percent more than
/// the least used one.
const BALANCED_PERCENT: u64 = 4;
/// Parts moved at once in one round.
const MOVES_PER_ROUND: i64 = 64;

/// Deletes the parts of deleted files from their nodes until `shutdown`; a node that is
/// down is tried again later.
pub async fn purge_deleted_parts(catalog: FileCatalog, shutdown: CancellationToken) {
    let wakeup = catalog.purge_wakeup();
    loop {
        tokio::select! {
            () = shutdown.cancelled() => return,
            () = wakeup.notified() => {}
            () = tokio::time::sleep(PURGE_INTERVAL) => {}
        }
        if let Err(error) = purge_once(&catalog).await {
            tracing::warn!(%error, "purging deleted parts failed; will retry");
        }
    }
}

async fn purge_once(catalog: &FileCatalog) -> Result<(), Error> {
    let client = catalog.pool().get().await?;
    let files: Vec<String> = client.query(sql::DELETED_FILES_AWAITING_PURGE, &[]).await?.iter().map(|row| row.get(0)).collect();
    for file_id in files {
        let parts = client.query(sql::PARTS_OF_FILE, &[&file_id]).await?;
        let deletes = parts.iter().map(|row| {
            let index: i32 = row.get(0);
            let address: Option<String> = row.get(2);
            let part = part_id(&file_id, index as usize);
            async move {
                match address {
                    Some(address) => catalog.clients().delete_part(&address, &part).await.map(|_| ()),
                    None => Err(chatvault_file_store::Error::Other(format!("the node of part {part} is unknown"))),
                }
            }
        });
        let outcomes = futures::future::join_all(deletes).await;
        match outcomes.into_iter().find_map(Result::err) {
            None => {
                client.execute(sql::MARK_PARTS_PURGED, &[&file_id]).await?;
                tracing::info!(%file_id, "parts of the deleted file purged");
            }
            Some(error) => tracing::warn!(%file_id, %error, "some parts of a deleted file could not be purged yet"),
        }
    }
    Ok(())
}

/// Moves parts between nodes every `interval` until the fill is even, until `shutdown`.
pub async fn rebalance_nodes(catalog: FileCatalog, interval: Duration, shutdown: CancellationToken) {
    // Nobody asked for these moves: their FilePartMoved events name the service itself.
    let actor = chatvault_common::caller::system_actor(crate::SERVICE_NAME);
    chatvault_common::caller::act_as(actor, rebalance_until_stopped(catalog, interval, shutdown)).await;
}

async fn rebalance_until_stopped(catalog: FileCatalog, interval: Duration, shutdown: CancellationToken) {
    loop {
        tokio::select! {
            () = shutdown.cancelled() => return,
            () = tokio::time::sleep(interval) => {}
        }
        loop {
            match rebalance_round(&catalog).await {
                Ok(0) => break,
                Ok(moved) => tracing::info!(moved, "parts moved to even the node fill"),
                Err(error) => {
                    tracing::warn!(%error, "rebalancing failed; will retry");
                    break;
                }
            }
            if shutdown.is_cancelled() {
                return;
            }
        }
    }
}

struct NodeFill {
    node_id: String,
    address: String,
    bytes: u64,
}

/// Moves a batch of parts from the most to the least used reachable node; returns how
/// many moved (0 when balanced or nothing can move).
async fn rebalance_round(catalog: &FileCatalog) -> Result<usize, Error> {
    let client = catalog.pool().get().await?;
    let rows = client.query(sql::CATALOG_BYTES_PER_NODE, &[]).await?;
    let all: Vec<NodeFill> =
        rows.iter().map(|row| NodeFill { node_id: row.get(0), address: row.get(1), bytes: row.get::<_, i64>(2) as u64 }).collect();
    let reachable = futures::future::join_all(all.iter().map(|node| catalog.clients().stats(&node.address))).await;
    let mut nodes: Vec<NodeFill> =
        all.into_iter().zip(reachable).filter_map(|(node, stats)| stats.ok().filter(|stats| stats.node_id == node.node_id).map(|_| node)).collect();
    if nodes.len() < 2 {
        return Ok(0);
    }
    nodes.sort_by_key(|node| node.bytes);
    let (least, most) = (&nodes[0], &nodes[nodes.len() - 1]);
    let gap = most.bytes - least.bytes;
    if gap * 100 <= most.bytes * BALANCED_PERCENT {
        return Ok(0);
    }
    let half_gap = (gap / 2) as i64;
    let candidates = client.query(sql::MOVABLE_PARTS, &[&most.node_id, &least.node_id, &half_gap, &MOVES_PER_ROUND]).await?;
    let mut budget = gap / 2;
    let mut chosen = Vec::new();
    for row in &candidates {
        let size = row.get::<_, i64>(2) as u64;
        if size <= budget && size > 0 {
            budget -= size;
            chosen.push((row.get::<_, String>(0), row.get::<_, i32>(1), size, row.get::<_, String>(3), row.get::<_, i64>(4) as u64));
        }
    }
    if chosen.is_empty() {
        return Ok(0);
    }
    let copies = chosen.iter().map(|(file_id, index, size, sha256, block_size)| {
        let part = part_id(file_id, *index as usize);
        async move {
            copy_part(catalog.clients(), &most.address, &least.address, &part, *block_size, *size, sha256).await.map_err(|error| {
                tracing::warn!(part_id = %part, from = %most.node_id, to = %least.node_id, %error, "moving a part failed");
            })
        }
    });
    let copied = futures::future::join_all(copies).await;
    let mut positions = Positions::default();
    let mut moved = Vec::new();
    for ((file_id, index, _, _, _), outcome) in chosen.iter().zip(copied) {
        if outcome.is_err() {
            continue;
        }
        let event = file_event::Event::FilePartMoved(FilePartMoved {
            file_id: file_id.clone(),
            index: *index as u32,
            from_node_id: most.node_id.clone(),
            to_node_id: least.node_id.clone(),
        });
        let published = catalog.publish_without_waiting(file_id, "chatvault.files.v1.FilePartMoved", event).await?;
        for ((topic, partition), next) in published.0 {
            positions.record_written(&topic, partition, next - 1);
        }
        moved.push(part_id(file_id, *index as usize));
    }
    catalog.wait_for_applied(&positions).await?;
    // The catalog points at the new copies now; the old ones can go.
    let deletes = moved.iter().map(|part| catalog.clients().delete_part(&most.address, part));
    for outcome in futures::future::join_all(deletes).await {
        if let Err(error) = outcome {
            tracing::warn!(%error, "deleting the old copy of a moved part failed");
        }
    }
    Ok(moved.len())
}

/// Copies a part from one node to another, verified by its hash on both ends.
async fn copy_part(clients: &NodeClients, from: &str, to: &str, part: &str, block_size: u64, size: u64, sha256: &str) -> Result<(), Error> {
    let mut source = clients.get_part(from, part, sha256, 0).await.map_err(|error| Error::Unavailable(error.to_string()))?;
    let mut writer = clients.start_part_writer(to, part, block_size).map_err(|error| Error::Unavailable(error.to_string()))?;
    loop {
        match source.message().await {
            Ok(Some(message)) => writer.send(message.chunk).await.map_err(|error| Error::Unavailable(error.to_string()))?,
            Ok(None) => break,
            Err(status) => {
                writer.abort();
                return Err(Error::Unavailable(format!("reading part {part} from {from}: {status}")));
            }
        }
    }
    writer.commit(size, sha256.to_owned()).await.map_err(|error| Error::Unavailable(error.to_string()))?;
    Ok(())
}
