//! Projects `chat.events` into `chats`, `messages` and `chat_grants`.
//!
//! Every row belongs to one owner's archive of a chat: keys are (owner, chat id) and (owner,
//! chat id, message id), so two accounts importing the same chat never touch each other's
//! rows or counts. `ChatShared` / `ChatShareRevoked` add and remove grants; within a batch
//! the last event of each grant decides.
//!
//! A batch is written set-based. One query finds which of its messages are stored already;
//! the others (all of them, in a first import) are COPYed (binary) straight into `messages`,
//! PostgreSQL's bulk path, and counted in their chats. Messages stored already are COPYed
//! into a temporary staging table and merged with one `INSERT … SELECT … ON CONFLICT`
//! statement that returns which rows changed, so each chat's message count stays exact under
//! redelivery and re-import. A re-published message replaces the stored one only when its
//! content changed (an edit), so importing the same export twice changes nothing.

use std::collections::{HashMap, HashSet};

use chatvault_common::chat_access::GrantChanges;
use chatvault_common::projection::{Applied, Projection};
use chatvault_common::text::{self, PgText};
use chatvault_proto::chat::v1::{chat_event, ChatEvent, ChatImported, Media, MessagePosted, TextEntity};
use chrono::{DateTime, Utc};
use futures::pin_mut;
use prost::Message as _;
use rdkafka::message::{Message, OwnedMessage};
use serde_json::{json, Map, Value};
use tokio_postgres::binary_copy::BinaryCopyInWriter;
use tokio_postgres::types::{ToSql, Type};
use tokio_postgres::Transaction;

use crate::db::sql;

/// The projection of `chat.events`.
#[derive(Debug, Clone, Copy)]
pub struct ChatEventsProjection;

impl Projection for ChatEventsProjection {
    type Event = chat_event::Event;

    fn name(&self) -> &str {
        "storage.chats"
    }

    fn decode(&self, record: &OwnedMessage) -> Result<Self::Event, String> {
        let payload = record.payload().ok_or_else(|| "record has no value".to_owned())?;
        let decoded = ChatEvent::decode(payload).map_err(|error| format!("not a chatvault.chat.v1.ChatEvent: {error}"))?;
        decoded.event.ok_or_else(|| "ChatEvent without an event".to_owned())
    }

    async fn apply(&self, transaction: &Transaction<'_>, batch: &[Applied<Self::Event>]) -> chatvault_common::Result<()> {
        let mut chats: Vec<&ChatImported> = Vec::new();
        // The last copy of a message in the batch wins, as it would had the records come in
        // separate batches; the merge statement may touch each row only once.
        let mut latest_message_index: HashMap<(&str, i64, i64), usize> = HashMap::new();
        let mut messages: Vec<&MessagePosted> = Vec::new();
        let mut grants = GrantChanges::default();
        for applied in batch {
            match &applied.event {
                chat_event::Event::ChatImported(chat) => chats.push(chat),
                chat_event::Event::MessagePosted(message) => {
                    let key = (message.owner.as_str(), message.chat_id, message.message_id);
                    match latest_message_index.get(&key) {
                        Some(&index) => messages[index] = message,
                        None => {
                            latest_message_index.insert(key, messages.len());
                            messages.push(message);
                        }
                    }
                }
                chat_event::Event::ChatShared(shared) => grants.share(shared),
                chat_event::Event::ChatShareRevoked(revoked) => grants.revoke(revoked),
                // The runner has applied the import's records before its marker.
                chat_event::Event::ImportCommitted(_) => {}
            }
        }
        for chat in chats {
            let imported_at = DateTime::<Utc>::from_timestamp(chat.imported_at_unix, 0);
            transaction
                .execute(
                    sql::UPSERT_CHAT,
                    &[
                        &chat.chat_id,
                        &chat.name.as_deref().map(PgText::from),
                        &chat.chat_type,
                        &chat.left,
                        &chat.import_id,
                        &chat.source,
                        &imported_at,
                        &PgText::from(chat.owner.as_str()),
                    ],
                )
                .await?;
        }
        apply_grants(transaction, grants).await?;
        if messages.is_empty() {
            return Ok(());
        }
        let stored = stored_keys(transaction, &messages).await?;
        let (known, new): (Vec<&MessagePosted>, Vec<&MessagePosted>) =
            messages.into_iter().partition(|message| stored.contains(&(message.owner.clone(), message.chat_id, message.message_id)));
        if !new.is_empty() {
            add_new_messages(transaction, &new).await?;
        }
        if !known.is_empty() {
            transaction.batch_execute(sql::CREATE_MESSAGE_STAGING).await?;
            copy_messages(transaction, sql::COPY_MESSAGE_STAGING, &known).await?;
            transaction.batch_execute(sql::MERGE_MESSAGE_STAGING).await?;
        }
        Ok(())
    }
}

/// Returns the keys (owner, chat id, message id) of `messages` that are stored already.
async fn stored_keys(transaction: &Transaction<'_>, messages: &[&MessagePosted]) -> chatvault_common::Result<HashSet<(String, i64, i64)>> {
    let owners: Vec<PgText<'_>> = messages.iter().map(|message| PgText::from(message.owner.as_str())).collect();
    let chat_ids: Vec<i64> = messages.iter().map(|message| message.chat_id).collect();
    let message_ids: Vec<i64> = messages.iter().map(|message| message.message_id).collect();
    let rows = transaction.query(sql::STORED_MESSAGE_KEYS, &[&owners, &chat_ids, &message_ids]).await?;
    Ok(rows.iter().map(|row| (text::text(row, 0), row.get(1), row.get(2))).collect())
}

/// Messages a batch added to one archive: how many, the earliest and the latest send time.
type AddedToArchive = (i64, Option<DateTime<Utc>>, Option<DateTime<Utc>>);

/// Writes messages no archive holds yet straight into `messages` and counts them in their
/// chats. A concurrent writer of the same keys (none within one partition's order) makes the
/// COPY fail with a unique violation rather than store a message twice.
async fn add_new_messages(transaction: &Transaction<'_>, new: &[&MessagePosted]) -> chatvault_common::Result<()> {
    copy_messages(transaction, sql::COPY_NEW_MESSAGES, new).await?;
    let mut per_archive: HashMap<(&str, i64), AddedToArchive> = HashMap::new();
    for message in new {
        let sent_at = message.date_unix.and_then(|seconds| DateTime::from_timestamp(seconds, 0));
        let entry = per_archive.entry((message.owner.as_str(), message.chat_id)).or_insert((0, None, None));
        entry.0 += 1;
        entry.1 = match (entry.1, sent_at) {
            (Some(first), Some(at)) => Some(first.min(at)),
            (first, at) => first.or(at),
        };
        entry.2 = entry.2.max(sent_at);
    }
    let owners: Vec<PgText<'_>> = per_archive.keys().map(|(owner, _)| PgText::from(*owner)).collect();
    let chat_ids: Vec<i64> = per_archive.keys().map(|(_, chat_id)| *chat_id).collect();
    let counts: Vec<i64> = per_archive.values().map(|(count, _, _)| *count).collect();
    let firsts: Vec<Option<DateTime<Utc>>> = per_archive.values().map(|(_, first, _)| *first).collect();
    let lasts: Vec<Option<DateTime<Utc>>> = per_archive.values().map(|(_, _, last)| *last).collect();
    transaction.execute(sql::ENSURE_CHATS, &[&owners, &chat_ids]).await?;
    transaction.execute(sql::ADD_NEW_MESSAGE_COUNTS, &[&owners, &chat_ids, &counts, &firsts, &lasts]).await?;
    Ok(())
}

/// COPYs `messages` (binary) with `copy_statement` (into `messages` or the staging table).
async fn copy_messages(transaction: &Transaction<'_>, copy_statement: &str, messages: &[&MessagePosted]) -> chatvault_common::Result<()> {
    let sink = transaction.copy_in(copy_statement).await?;
    let writer = BinaryCopyInWriter::new(sink, MESSAGE_STAGING_TYPES);
    pin_mut!(writer);
    for message in messages {
        let row = StagedMessage::of(message);
        writer.as_mut().write(&row.values()).await?;
    }
    writer.finish().await?;
    Ok(())
}

/// Writes the batch's grants: one statement for shares, one for revokes.
async fn apply_grants(transaction: &Transaction<'_>, grants: GrantChanges<'_>) -> chatvault_common::Result<()> {
    let columns = grants.into_columns();
    if !columns.shared_owners.is_empty() {
        transaction
            .execute(
                sql::UPSERT_GRANTS,
                &[&columns.shared_owners, &columns.shared_chats, &columns.shared_grantees, &columns.granted_by, &columns.granted_at],
            )
            .await?;
    }
    if !columns.revoked_owners.is_empty() {
        transaction.execute(sql::DELETE_GRANTS, &[&columns.revoked_owners, &columns.revoked_chats, &columns.revoked_grantees]).await?;
    }
    Ok(())
}

/// Column types of `staging_messages`, in COPY order.
const MESSAGE_STAGING_TYPES: &[Type] = &[
    Type::INT8,
    Type::INT8,
    Type::INT2,
    Type::TIMESTAMPTZ,
    Type::TIMESTAMPTZ,
    Type::TEXT,
    Type::TEXT,
    Type::TEXT,
    Type::TEXT,
    Type::TEXT,
    Type::INT8,
    Type::TEXT,
    Type::TEXT,
    Type::TEXT,
    Type::TEXT,
    Type::TEXT,
    Type::TEXT,
    Type::JSONB,
    Type::JSONB,
    Type::TEXT,
    Type::TEXT,
    Type::TEXT,
];

struct StagedMessage<'a> {
    chat_id: i64,
    message_id: i64,
    kind: i16,
    sent_at: Option<DateTime<Utc>>,
    edited_at: Option<DateTime<Utc>>,
    from_name: Option<PgText<'a>>,
    from_id: Option<&'a str>,
    author_signature: Option<PgText<'a>>,
    forwarded_from: Option<PgText<'a>>,
    saved_from: Option<PgText<'a>>,
    reply_to_message_id: Option<i64>,
    reply_to_peer_id: Option<&'a str>,
    via_bot: Option<&'a str>,
    action: Option<&'a str>,
    actor_name: Option<PgText<'a>>,
    actor_id: Option<&'a str>,
    text: PgText<'a>,
    entities: Option<Value>,
    media: Option<Value>,
    raw_json: PgText<'a>,
    import_id: &'a str,
    owner: PgText<'a>,
}

impl<'a> StagedMessage<'a> {
    fn of(message: &'a MessagePosted) -> Self {
        Self {
            chat_id: message.chat_id,
            message_id: message.message_id,
            kind: i16::try_from(message.kind).unwrap_or(0),
            sent_at: message.date_unix.and_then(|seconds| DateTime::from_timestamp(seconds, 0)),
            edited_at: message.edited_unix.and_then(|seconds| DateTime::from_timestamp(seconds, 0)),
            from_name: message.from_name.as_deref().map(PgText::from),
            from_id: message.from_id.as_deref(),
            author_signature: message.author_signature.as_deref().map(PgText::from),
            forwarded_from: message.forwarded_from.as_deref().map(PgText::from),
            saved_from: message.saved_from.as_deref().map(PgText::from),
            reply_to_message_id: message.reply_to_message_id,
            reply_to_peer_id: message.reply_to_peer_id.as_deref(),
            via_bot: message.via_bot.as_deref(),
            action: message.action.as_deref(),
            actor_name: message.actor_name.as_deref().map(PgText::from),
            actor_id: message.actor_id.as_deref(),
            text: PgText::from(message.text.as_str()),
            entities: entities_json(&message.entities).map(text::encode_json),
            media: message.media.as_ref().map(media_json).map(text::encode_json),
            raw_json: PgText::from(message.raw_json.as_str()),
            import_id: &message.import_id,
            owner: PgText::from(message.owner.as_str()),
        }
    }

    fn values(&self) -> [&(dyn ToSql + Sync); 22] {
        [
            &self.chat_id,
            &self.message_id,
            &self.kind,
            &self.sent_at,
            &self.edited_at,
            &self.from_name,
            &self.from_id,
            &self.author_signature,
            &self.forwarded_from,
            &self.saved_from,
            &self.reply_to_message_id,
            &self.reply_to_peer_id,
            &self.via_bot,
            &self.action,
            &self.actor_name,
            &self.actor_id,
            &self.text,
            &self.entities,
            &self.media,
            &self.raw_json,
            &self.import_id,
            &self.owner,
        ]
    }
}

fn entities_json(entities: &[TextEntity]) -> Option<Value> {
    if entities.is_empty() {
        return None;
    }
    Some(Value::Array(
        entities
            .iter()
            .map(|entity| {
                let mut object = Map::new();
                object.insert("kind".to_owned(), entity.kind.clone().into());
                object.insert("offset".to_owned(), entity.offset.into());
                object.insert("length".to_owned(), entity.length.into());
                if let Ok(Value::Object(extra)) = serde_json::from_str::<Value>(&entity.extra_json) {
                    object.insert("extra".to_owned(), Value::Object(extra));
                }
                Value::Object(object)
            })
            .collect(),
    ))
}

fn media_json(media: &Media) -> Value {
    json!({
        "kind": media.kind,
        "path": media.path,
        "not_included_reason": media.not_included_reason,
        "file_name": media.file_name,
        "file_size": media.file_size,
        "mime_type": media.mime_type,
        "width": media.width,
        "height": media.height,
        "duration_seconds": media.duration_seconds,
        "thumbnail_path": media.thumbnail_path,
        "file_id": media.file_id,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn entities_keep_their_extra_fields() {
        let entities = vec![TextEntity { kind: "text_link".into(), offset: 3, length: 4, extra_json: r#"{"href":"https://example.com"}"#.into() }];
        let value = entities_json(&entities).expect("one entity");
        assert_eq!(value[0]["extra"]["href"], "https://example.com");
        assert_eq!(value[0]["offset"], 3);
        assert!(entities_json(&[]).is_none());
    }
}
