//! Projects `chat.events` into `chats` and `messages`.
//!
//! A batch is written set-based: messages are COPYed (binary) into a temporary staging
//! table and merged with one `INSERT … SELECT … ON CONFLICT` statement that also returns
//! which rows were new, so each chat's message count stays exact under redelivery and
//! re-import. A re-published message replaces the stored one only when its content changed
//! (an edit), so importing the same export twice changes nothing.

use std::borrow::Cow;
use std::collections::HashMap;

use chatvault_common::projection::{Applied, Projection};
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
        let mut latest_message_index: HashMap<(i64, i64), usize> = HashMap::new();
        let mut messages: Vec<&MessagePosted> = Vec::new();
        for applied in batch {
            match &applied.event {
                chat_event::Event::ChatImported(chat) => chats.push(chat),
                chat_event::Event::MessagePosted(message) => {
                    match latest_message_index.get(&(message.chat_id, message.message_id)) {
                        Some(&index) => messages[index] = message,
                        None => {
                            latest_message_index.insert((message.chat_id, message.message_id), messages.len());
                            messages.push(message);
                        }
                    }
                }
            }
        }
        for chat in chats {
            let imported_at = DateTime::<Utc>::from_timestamp(chat.imported_at_unix, 0);
            transaction
                .execute(
                    sql::UPSERT_CHAT,
                    &[&chat.chat_id, &chat.name.as_deref().map(postgres_text), &chat.chat_type, &chat.left, &chat.import_id, &chat.source, &imported_at],
                )
                .await?;
        }
        if messages.is_empty() {
            return Ok(());
        }
        transaction.batch_execute(sql::CREATE_MESSAGE_STAGING).await?;
        let sink = transaction.copy_in(sql::COPY_MESSAGE_STAGING).await?;
        let writer = BinaryCopyInWriter::new(sink, MESSAGE_STAGING_TYPES);
        pin_mut!(writer);
        for message in &messages {
            let row = StagedMessage::of(message);
            writer.as_mut().write(&row.values()).await?;
        }
        writer.finish().await?;
        transaction.batch_execute(sql::MERGE_MESSAGE_STAGING).await?;
        Ok(())
    }
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
];

struct StagedMessage<'a> {
    chat_id: i64,
    message_id: i64,
    kind: i16,
    sent_at: Option<DateTime<Utc>>,
    edited_at: Option<DateTime<Utc>>,
    from_name: Option<Cow<'a, str>>,
    from_id: Option<&'a str>,
    author_signature: Option<Cow<'a, str>>,
    forwarded_from: Option<Cow<'a, str>>,
    saved_from: Option<Cow<'a, str>>,
    reply_to_message_id: Option<i64>,
    reply_to_peer_id: Option<&'a str>,
    via_bot: Option<&'a str>,
    action: Option<&'a str>,
    actor_name: Option<Cow<'a, str>>,
    actor_id: Option<&'a str>,
    text: Cow<'a, str>,
    entities: Option<Value>,
    media: Option<Value>,
    raw_json: Cow<'a, str>,
    import_id: &'a str,
}

impl<'a> StagedMessage<'a> {
    fn of(message: &'a MessagePosted) -> Self {
        Self {
            chat_id: message.chat_id,
            message_id: message.message_id,
            kind: i16::try_from(message.kind).unwrap_or(0),
            sent_at: message.date_unix.and_then(|seconds| DateTime::from_timestamp(seconds, 0)),
            edited_at: message.edited_unix.and_then(|seconds| DateTime::from_timestamp(seconds, 0)),
            from_name: message.from_name.as_deref().map(postgres_text),
            from_id: message.from_id.as_deref(),
            author_signature: message.author_signature.as_deref().map(postgres_text),
            forwarded_from: message.forwarded_from.as_deref().map(postgres_text),
            saved_from: message.saved_from.as_deref().map(postgres_text),
            reply_to_message_id: message.reply_to_message_id,
            reply_to_peer_id: message.reply_to_peer_id.as_deref(),
            via_bot: message.via_bot.as_deref(),
            action: message.action.as_deref(),
            actor_name: message.actor_name.as_deref().map(postgres_text),
            actor_id: message.actor_id.as_deref(),
            text: postgres_text(&message.text),
            entities: entities_json(&message.entities),
            media: message.media.as_ref().map(media_json),
            raw_json: postgres_text(&message.raw_json),
            import_id: &message.import_id,
        }
    }

    fn values(&self) -> [&(dyn ToSql + Sync); 21] {
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
        ]
    }
}

/// PostgreSQL text cannot hold U+0000 (an export may, through its `\x00` escapes); it is
/// stored as U+FFFD there, while `raw_json` keeps the exact text as a JSON escape.
pub(crate) fn postgres_text(text: &str) -> Cow<'_, str> {
    if text.contains('\0') {
        Cow::Owned(text.replace('\0', "\u{FFFD}"))
    } else {
        Cow::Borrowed(text)
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
    fn nul_characters_are_replaced_only_where_present() {
        assert!(matches!(postgres_text("plain"), Cow::Borrowed("plain")));
        assert_eq!(postgres_text("a\0b"), "a\u{FFFD}b");
    }

    #[test]
    fn entities_keep_their_extra_fields() {
        let entities = vec![TextEntity { kind: "text_link".into(), offset: 3, length: 4, extra_json: r#"{"href":"https://example.com"}"#.into() }];
        let value = entities_json(&entities).expect("one entity");
        assert_eq!(value[0]["extra"]["href"], "https://example.com");
        assert_eq!(value[0]["offset"], 3);
        assert!(entities_json(&[]).is_none());
    }
}
