//! Projects `chat.events` into Telegram authors: who wrote each message, every name seen,
//! and message counts per chat, each kept per archive (owner and chat), and the grants that
//! let other accounts see an archive (`author_chat_grants`).
//!
//! Counts move only when a message is new or its author changed (a later export may
//! attribute it differently), so re-import and redelivery after a crash leave them exact.
//! Everything is set-based: one binary COPY into a staging table, then a few statements.

use std::collections::HashMap;

use chatvault_common::chat_access::GrantChanges;
use chatvault_common::projection::{Applied, Projection};
use chatvault_common::text::PgText;
use chatvault_proto::chat::v1::{chat_event, ChatEvent, MessageKind, MessagePosted};
use chrono::{DateTime, Utc};
use futures::pin_mut;
use prost::Message as _;
use rdkafka::message::{Message, OwnedMessage};
use tokio_postgres::binary_copy::BinaryCopyInWriter;
use tokio_postgres::types::Type;
use tokio_postgres::Transaction;

/// The authors projection of `chat.events`.
#[derive(Debug, Clone, Copy)]
pub struct AuthorsProjection;

/// Returns the author id of a message: its `from_id`, or `name:<display name>` for
/// exports that carry names only (HTML). Only regular messages have authors.
pub fn author_of(message: &MessagePosted) -> Option<String> {
    if message.kind != MessageKind::Regular as i32 {
        return None;
    }
    match (&message.from_id, &message.from_name) {
        (Some(from_id), _) if !from_id.is_empty() => Some(from_id.clone()),
        (_, Some(name)) if !name.trim().is_empty() => Some(format!("name:{}", name.trim())),
        _ => None,
    }
}

const CREATE_STAGING: &str = "
    CREATE TEMP TABLE staging_author_messages (
        owner text, chat_id bigint, message_id bigint, author_id text, author_name text, sent_at timestamptz
    ) ON COMMIT DROP";

const COPY_STAGING: &str = "COPY staging_author_messages (owner, chat_id, message_id, author_id, author_name, sent_at) FROM STDIN (FORMAT binary)";

/// Takes messages away from their former author, then merges: rows that are new, or whose
/// author changed, add to their author's count for the chat. Every key holds the owner, so
/// each archive of a chat counts on its own.
const MERGE_STAGING: &str = "
    UPDATE author_chat_counts counts
    SET message_count = counts.message_count - moved.messages
    FROM (
        SELECT stored.author_id, stored.owner, stored.chat_id, count(*) AS messages
        FROM staging_author_messages staged
        JOIN author_messages stored USING (owner, chat_id, message_id)
        WHERE stored.author_id <> staged.author_id
        GROUP BY stored.author_id, stored.owner, stored.chat_id
    ) moved
    WHERE counts.author_id = moved.author_id AND counts.owner = moved.owner AND counts.chat_id = moved.chat_id;

    WITH merged AS (
        INSERT INTO author_messages AS stored (owner, chat_id, message_id, author_id, sent_at)
        SELECT owner, chat_id, message_id, author_id, sent_at FROM staging_author_messages
        ON CONFLICT (owner, chat_id, message_id) DO UPDATE
        SET author_id = EXCLUDED.author_id, sent_at = EXCLUDED.sent_at
        WHERE stored.author_id <> EXCLUDED.author_id
        RETURNING author_id, owner, chat_id, sent_at
    )
    INSERT INTO author_chat_counts (author_id, owner, chat_id, message_count, first_message_at, last_message_at)
    SELECT author_id, owner, chat_id, count(*), min(sent_at), max(sent_at) FROM merged GROUP BY author_id, owner, chat_id
    ON CONFLICT (author_id, owner, chat_id) DO UPDATE SET
        message_count = author_chat_counts.message_count + EXCLUDED.message_count,
        first_message_at = LEAST(author_chat_counts.first_message_at, EXCLUDED.first_message_at),
        last_message_at = GREATEST(author_chat_counts.last_message_at, EXCLUDED.last_message_at);

    -- A transaction may apply several parts of a batch (the runner isolates a record that
    -- cannot be applied), so the staging table must not outlive this part.
    DROP TABLE staging_author_messages;
";

/// Records every name seen in the batch, per archive: all copies of a message count here,
/// not only the last, so a rename between two imports that land in one batch keeps both
/// names.
const UPSERT_NAMES: &str = "
    INSERT INTO author_names (owner, chat_id, author_id, name, first_seen_at, last_seen_at)
    SELECT owner, chat_id, author_id, name, first_seen_at, last_seen_at
    FROM unnest($1::text[], $2::int8[], $3::text[], $4::text[], $5::timestamptz[], $6::timestamptz[])
        AS seen(owner, chat_id, author_id, name, first_seen_at, last_seen_at)
    ON CONFLICT (owner, chat_id, author_id, name) DO UPDATE SET
        first_seen_at = LEAST(author_names.first_seen_at, EXCLUDED.first_seen_at),
        last_seen_at = GREATEST(author_names.last_seen_at, EXCLUDED.last_seen_at)";

/// Records grants from `ChatShared` (the last event of each grant in a batch).
const UPSERT_GRANTS: &str = "
    INSERT INTO author_chat_grants (owner, chat_id, grantee, granted_at)
    SELECT * FROM unnest($1::text[], $2::int8[], $3::text[], $4::timestamptz[])
    ON CONFLICT (owner, chat_id, grantee) DO UPDATE SET granted_at = EXCLUDED.granted_at";

/// Drops grants from `ChatShareRevoked` (the last event of each grant in a batch).
const DELETE_GRANTS: &str = "
    DELETE FROM author_chat_grants grants
    USING unnest($1::text[], $2::int8[], $3::text[]) AS revoked(owner, chat_id, grantee)
    WHERE grants.owner = revoked.owner AND grants.chat_id = revoked.chat_id AND grants.grantee = revoked.grantee";

/// A name an author had in one archive: (owner, chat id, author id, name).
type NameInArchive<'a> = (&'a str, i64, String, String);
/// When a name was first and last seen.
type SeenBetween = (Option<DateTime<Utc>>, Option<DateTime<Utc>>);

impl Projection for AuthorsProjection {
    type Event = chat_event::Event;

    fn name(&self) -> &str {
        "users.authors"
    }

    fn decode(&self, record: &OwnedMessage) -> Result<Self::Event, String> {
        let payload = record.payload().ok_or_else(|| "record has no value".to_owned())?;
        let decoded = ChatEvent::decode(payload).map_err(|error| format!("not a chatvault.chat.v1.ChatEvent: {error}"))?;
        decoded.event.ok_or_else(|| "ChatEvent without an event".to_owned())
    }

    async fn apply(&self, transaction: &Transaction<'_>, batch: &[Applied<Self::Event>]) -> chatvault_common::Result<()> {
        // The last copy of a message in the batch wins; the merge touches each row once.
        let mut latest: HashMap<(&str, i64, i64), (&MessagePosted, String)> = HashMap::new();
        let mut names_seen: HashMap<NameInArchive<'_>, SeenBetween> = HashMap::new();
        let mut grants = GrantChanges::default();
        for applied in batch {
            match &applied.event {
                chat_event::Event::MessagePosted(message) => {
                    if let Some(author) = author_of(message) {
                        if let Some(name) = message.from_name.as_deref().map(|name| name.trim().to_owned()) {
                            let sent_at = message.date_unix.and_then(|seconds| DateTime::from_timestamp(seconds, 0));
                            let seen =
                                names_seen.entry((message.owner.as_str(), message.chat_id, author.clone(), name)).or_insert((sent_at, sent_at));
                            seen.0 = earliest(seen.0, sent_at);
                            seen.1 = seen.1.max(sent_at);
                        }
                        latest.insert((message.owner.as_str(), message.chat_id, message.message_id), (message, author));
                    }
                }
                chat_event::Event::ChatShared(shared) => grants.share(shared),
                chat_event::Event::ChatShareRevoked(revoked) => grants.revoke(revoked),
                chat_event::Event::ChatImported(_) | chat_event::Event::ImportCommitted(_) => {}
            }
        }
        apply_grants(transaction, grants).await?;
        if latest.is_empty() {
            return Ok(());
        }
        transaction.batch_execute(CREATE_STAGING).await?;
        let sink = transaction.copy_in(COPY_STAGING).await?;
        let writer = BinaryCopyInWriter::new(sink, &[Type::TEXT, Type::INT8, Type::INT8, Type::TEXT, Type::TEXT, Type::TIMESTAMPTZ]);
        pin_mut!(writer);
        for (message, author_id) in latest.values() {
            // Ids and names go through the one lossless text representation (a name may
            // hold U+0000, and a name-only author id holds the name).
            let name = message.from_name.as_deref().map(str::trim).map(PgText::from);
            let sent_at: Option<DateTime<Utc>> = message.date_unix.and_then(|seconds| DateTime::from_timestamp(seconds, 0));
            writer
                .as_mut()
                .write(&[
                    &PgText::from(message.owner.as_str()),
                    &message.chat_id,
                    &message.message_id,
                    &PgText::from(author_id.as_str()),
                    &name,
                    &sent_at,
                ])
                .await?;
        }
        writer.finish().await?;
        transaction.batch_execute(MERGE_STAGING).await?;
        let mut owners = Vec::with_capacity(names_seen.len());
        let mut chat_ids = Vec::with_capacity(names_seen.len());
        let mut author_ids = Vec::with_capacity(names_seen.len());
        let mut names = Vec::with_capacity(names_seen.len());
        let mut first_seen = Vec::with_capacity(names_seen.len());
        let mut last_seen = Vec::with_capacity(names_seen.len());
        for ((owner, chat_id, author_id, name), (first, last)) in names_seen {
            owners.push(PgText::from(owner));
            chat_ids.push(chat_id);
            author_ids.push(PgText::from(author_id));
            names.push(PgText::from(name));
            first_seen.push(first);
            last_seen.push(last);
        }
        transaction.execute(UPSERT_NAMES, &[&owners, &chat_ids, &author_ids, &names, &first_seen, &last_seen]).await?;
        Ok(())
    }
}

/// Writes the batch's grant changes: one statement for shares, one for revokes.
async fn apply_grants(transaction: &Transaction<'_>, grants: GrantChanges<'_>) -> chatvault_common::Result<()> {
    let columns = grants.into_columns();
    if !columns.shared_owners.is_empty() {
        transaction.execute(UPSERT_GRANTS, &[&columns.shared_owners, &columns.shared_chats, &columns.shared_grantees, &columns.granted_at]).await?;
    }
    if !columns.revoked_owners.is_empty() {
        transaction.execute(DELETE_GRANTS, &[&columns.revoked_owners, &columns.revoked_chats, &columns.revoked_grantees]).await?;
    }
    Ok(())
}

/// Returns the earlier of two optional times; an absent time does not count as earlier.
fn earliest(first: Option<DateTime<Utc>>, second: Option<DateTime<Utc>>) -> Option<DateTime<Utc>> {
    match (first, second) {
        (Some(first), Some(second)) => Some(first.min(second)),
        (first, None) => first,
        (None, second) => second,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_absent_time_is_not_the_earliest() {
        let time = DateTime::from_timestamp(100, 0);
        assert_eq!(earliest(None, time), time);
        assert_eq!(earliest(time, None), time);
        assert_eq!(earliest(time, DateTime::from_timestamp(50, 0)), DateTime::from_timestamp(50, 0));
    }

    #[test]
    fn authors_are_ids_or_names_of_regular_messages_only() {
        let mut message =
            MessagePosted { kind: MessageKind::Regular as i32, from_id: Some("user42".into()), from_name: Some("Ann".into()), ..Default::default() };
        assert_eq!(author_of(&message).as_deref(), Some("user42"));
        message.from_id = None;
        assert_eq!(author_of(&message).as_deref(), Some("name:Ann"));
        message.from_name = None;
        assert_eq!(author_of(&message), None);
        let service = MessagePosted { kind: MessageKind::Service as i32, actor_id: Some("user1".into()), ..Default::default() };
        assert_eq!(author_of(&service), None);
    }
}
