//! Projects `files.events` into `files`, `file_parts` and `share_links`, and
//! `storage.nodes` into `storage_nodes`.
//!
//! New files of a batch are merged set-based (`unnest` arrays, one statement for files and
//! one for parts, `ON CONFLICT DO NOTHING` so redelivery is harmless); deletes, renames,
//! moves and share links are rare and applied one by one after them, in record order (a file's
//! events share its partition, so a delete never precedes its store).

use chatvault_common::projection::{Applied, Projection};
use chatvault_common::text::PgText;
use chatvault_proto::files::v1::{file_event, FileEvent, FileStored};
use chatvault_proto::storage::v1::{node_event, NodeEvent};
use chrono::{DateTime, NaiveDate, Utc};
use prost::Message as _;
use rdkafka::message::{Message, OwnedMessage};
use tokio_postgres::Transaction;

use crate::files::sql;

/// An event of either topic this projection reads.
#[derive(Debug)]
pub enum FileCatalogEvent {
    File(file_event::Event),
    Node(node_event::Event),
}

/// The projection of `files.events` and `storage.nodes`.
#[derive(Debug, Clone)]
pub struct FileEventsProjection {
    /// Full name of `storage.nodes` (with the topic prefix).
    pub nodes_topic: String,
}

impl Projection for FileEventsProjection {
    type Event = FileCatalogEvent;

    fn name(&self) -> &str {
        "storage.files"
    }

    fn decode(&self, record: &OwnedMessage) -> Result<Self::Event, String> {
        let payload = record.payload().ok_or_else(|| "record has no value".to_owned())?;
        if record.topic() == self.nodes_topic {
            let decoded = NodeEvent::decode(payload).map_err(|error| format!("not a chatvault.storage.v1.NodeEvent: {error}"))?;
            return decoded.event.map(FileCatalogEvent::Node).ok_or_else(|| "NodeEvent without an event".to_owned());
        }
        let decoded = FileEvent::decode(payload).map_err(|error| format!("not a chatvault.files.v1.FileEvent: {error}"))?;
        decoded.event.map(FileCatalogEvent::File).ok_or_else(|| "FileEvent without an event".to_owned())
    }

    #[tracing::instrument(skip_all, fields(records = batch.len()))]
    async fn apply(&self, transaction: &Transaction<'_>, batch: &[Applied<Self::Event>]) -> chatvault_common::Result<()> {
        let stored: Vec<&FileStored> = batch
            .iter()
            .filter_map(|applied| match &applied.event {
                FileCatalogEvent::File(file_event::Event::FileStored(stored)) => Some(stored),
                _ => None,
            })
            .collect();
        if !stored.is_empty() {
            insert_stored_files(transaction, &stored).await?;
        }
        for applied in batch {
            match &applied.event {
                FileCatalogEvent::File(file_event::Event::FileStored(_)) => {}
                FileCatalogEvent::File(file_event::Event::FileDeleted(deleted)) => {
                    let deleted_at = timestamp_of_millis(deleted.deleted_at_unix_ms);
                    transaction.execute(sql::MARK_FILE_DELETED, &[&deleted.file_id, &deleted_at]).await?;
                }
                FileCatalogEvent::File(file_event::Event::FileRenamed(renamed)) => {
                    transaction.execute(sql::RENAME_FILE, &[&renamed.file_id, &PgText::from(renamed.name.as_str())]).await?;
                }
                FileCatalogEvent::File(file_event::Event::FilePartMoved(moved)) => {
                    let index = moved.index as i32;
                    transaction.execute(sql::MOVE_FILE_PART, &[&moved.file_id, &index, &moved.from_node_id, &moved.to_node_id]).await?;
                }
                FileCatalogEvent::File(file_event::Event::ShareLinkCreated(link)) => {
                    let password_hash = (!link.password_hash.is_empty()).then_some(link.password_hash.as_str());
                    transaction
                        .execute(
                            sql::INSERT_SHARE_LINK,
                            &[
                                &link.token_sha256,
                                &link.file_id,
                                &timestamp_of_millis(link.created_at_unix_ms),
                                &timestamp_of_millis(link.expires_at_unix_ms),
                                &password_hash,
                                &link.created_by,
                            ],
                        )
                        .await?;
                }
                FileCatalogEvent::File(file_event::Event::ShareLinkRevoked(revoked)) => {
                    let revoked_at = timestamp_of_millis(revoked.revoked_at_unix_ms);
                    transaction.execute(sql::REVOKE_SHARE_LINK, &[&revoked.token_sha256, &revoked_at]).await?;
                }
                FileCatalogEvent::Node(node_event::Event::NodeRegistered(node)) => {
                    let registered_at = timestamp_of_millis(node.registered_at_unix_ms);
                    transaction.execute(sql::UPSERT_STORAGE_NODE, &[&node.node_id, &node.address, &registered_at]).await?;
                }
            }
        }
        Ok(())
    }
}

async fn insert_stored_files(transaction: &Transaction<'_>, stored: &[&FileStored]) -> chatvault_common::Result<()> {
    let mut columns = StoredFileColumns::default();
    for file in stored {
        let layout = file.layout.unwrap_or_default();
        columns.file_ids.push(file.file_id.as_str());
        columns.owners.push(file.owner.as_str());
        columns.names.push(PgText::from(file.name.as_str()));
        columns.content_types.push(PgText::from(file.content_type.as_str()));
        columns.sizes.push(file.size as i64);
        columns.hashes.push(file.sha256.as_str());
        columns.uploaded_at.push(timestamp_of_millis(file.uploaded_at_unix_ms));
        columns.upload_dates.push(
            NaiveDate::parse_from_str(&file.upload_date, "%Y-%m-%d").unwrap_or_else(|_| timestamp_of_millis(file.uploaded_at_unix_ms).date_naive()),
        );
        columns.block_sizes.push(layout.block_size as i64);
        columns.data_parts.push(layout.data_parts as i32);
        columns.parity_parts.push(layout.parity_parts as i32);
        columns.fault_tolerances.push(file.fault_tolerance as i32);
        for part in &file.parts {
            columns.part_file_ids.push(file.file_id.as_str());
            columns.part_indexes.push(part.index as i32);
            columns.part_nodes.push(part.node_id.as_str());
            columns.part_sizes.push(part.size as i64);
            columns.part_hashes.push(part.sha256.as_str());
        }
    }
    transaction
        .execute(
            sql::INSERT_FILES,
            &[
                &columns.file_ids,
                &columns.owners,
                &columns.names,
                &columns.content_types,
                &columns.sizes,
                &columns.hashes,
                &columns.uploaded_at,
                &columns.upload_dates,
                &columns.block_sizes,
                &columns.data_parts,
                &columns.parity_parts,
                &columns.fault_tolerances,
            ],
        )
        .await?;
    transaction
        .execute(
            sql::INSERT_FILE_PARTS,
            &[&columns.part_file_ids, &columns.part_indexes, &columns.part_nodes, &columns.part_sizes, &columns.part_hashes],
        )
        .await?;
    Ok(())
}

#[derive(Default)]
struct StoredFileColumns<'a> {
    file_ids: Vec<&'a str>,
    owners: Vec<&'a str>,
    names: Vec<PgText<'a>>,
    content_types: Vec<PgText<'a>>,
    sizes: Vec<i64>,
    hashes: Vec<&'a str>,
    uploaded_at: Vec<DateTime<Utc>>,
    upload_dates: Vec<NaiveDate>,
    block_sizes: Vec<i64>,
    data_parts: Vec<i32>,
    parity_parts: Vec<i32>,
    fault_tolerances: Vec<i32>,
    part_file_ids: Vec<&'a str>,
    part_indexes: Vec<i32>,
    part_nodes: Vec<&'a str>,
    part_sizes: Vec<i64>,
    part_hashes: Vec<&'a str>,
}

fn timestamp_of_millis(millis: i64) -> DateTime<Utc> {
    DateTime::from_timestamp_millis(millis).unwrap_or_default()
}
