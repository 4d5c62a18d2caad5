//! The audit projection: every record of every domain topic and of `audit.logs` becomes one
//! row (time, service, actor, event type, key, trace id, the event as JSON). Protobuf values
//! are decoded with the descriptor set compiled into `chatvault-proto`; log lines are JSON
//! already. Rows land in daily partitions created on demand in the same transaction.

use chatvault_common::envelope::{self, header_text};
use chatvault_common::projection::{Applied, Projection};
use chatvault_common::text::PgText;
use chatvault_common::topics;
use chrono::{DateTime, Utc};
use prost_reflect::{DescriptorPool, DynamicMessage, SerializeOptions};
use rdkafka::message::{Message, OwnedMessage};

/// The header naming who caused an event, when the producer knows.
pub const ACTOR_HEADER: &str = "actor";

/// One audit row, decoded from a record.
#[derive(Debug, Clone)]
pub struct AuditRecord {
    pub occurred_at: DateTime<Utc>,
    pub event_id: uuid::Uuid,
    pub service: String,
    pub actor: String,
    pub event_type: String,
    pub trace_id: String,
    pub event: serde_json::Value,
}

/// Projects every topic into `audit_rows`.
#[derive(Debug)]
pub struct AuditProjection {
    pool: DescriptorPool,
    topic_prefix: String,
}

impl AuditProjection {
    pub fn new(topic_prefix: String) -> Self {
        let pool = DescriptorPool::decode(chatvault_proto::FILE_DESCRIPTOR_SET).expect("the compiled descriptor set is valid");
        Self { pool, topic_prefix }
    }

    /// Returns the protobuf message of a topic's record values (base name, no prefix).
    fn message_name(base_topic: &str) -> Option<&'static str> {
        match base_topic {
            topics::CHAT_EVENTS => Some("chatvault.chat.v1.ChatEvent"),
            topics::FILES_EVENTS => Some("chatvault.files.v1.FileEvent"),
            topics::USERS_EVENTS => Some("chatvault.users.v1.UserEvent"),
            topics::STORAGE_NODES => Some("chatvault.storage.v1.NodeEvent"),
            topics::BACKUP_EVENTS => Some("chatvault.backup.v1.BackupEvent"),
            topics::BOT_EVENTS => Some("chatvault.bot.v1.BotEvent"),
            _ => None,
        }
    }

    fn decode_value(&self, base_topic: &str, payload: &[u8]) -> Result<serde_json::Value, String> {
        if base_topic == topics::AUDIT_LOGS {
            return serde_json::from_slice(payload).map_err(|error| format!("log line is not JSON: {error}"));
        }
        let Some(descriptor) = Self::message_name(base_topic).and_then(|name| self.pool.get_message_by_name(name)) else {
            // A topic without a known schema: keep the size.
            return Ok(serde_json::json!({ "bytes": payload.len() }));
        };
        let message = DynamicMessage::decode(descriptor, payload).map_err(|error| format!("protobuf decode: {error}"))?;
        let options = SerializeOptions::new().use_proto_field_name(true).skip_default_fields(true);
        message.serialize_with_options(serde_json::value::Serializer, &options).map_err(|error| format!("to JSON: {error}"))
    }
}

/// Returns the first actor-like field of the event (one level inside its oneof).
fn actor_of_event(event: &serde_json::Value) -> Option<String> {
    const ACTOR_FIELDS: &[&str] = &["actor", "owner", "username", "uploaded_by", "changed_by", "created_by"];
    let objects = std::iter::once(event).chain(event.as_object().into_iter().flat_map(|object| object.values()));
    for object in objects {
        for field in ACTOR_FIELDS {
            if let Some(value) = object.get(*field).and_then(|value| value.as_str()).filter(|value| !value.is_empty()) {
                return Some(value.to_owned());
            }
        }
    }
    None
}

/// An event id for records that carry none: stable per (topic, partition, offset).
fn fallback_event_id(topic: &str, partition: i32, offset: i64) -> uuid::Uuid {
    let mut hash: u128 = 0x6c62_272e_07bb_0142_62b8_2175_6295_c58d;
    for byte in topic.bytes().chain(partition.to_be_bytes()).chain(offset.to_be_bytes()) {
        hash = (hash ^ u128::from(byte)).wrapping_mul(0x0000_0000_0100_0000_0000_0000_0000_013b);
    }
    uuid::Uuid::from_u128(hash)
}

impl Projection for AuditProjection {
    type Event = AuditRecord;

    fn name(&self) -> &str {
        "audit"
    }

    fn decode(&self, record: &OwnedMessage) -> Result<AuditRecord, String> {
        let base_topic = record.topic().strip_prefix(self.topic_prefix.as_str()).unwrap_or(record.topic());
        let headers = record.headers();
        let header = |key: &str| headers.and_then(|headers| header_text(headers, key)).map(str::to_owned);
        let event = self.decode_value(base_topic, record.payload().unwrap_or_default())?;
        let occurred_at = header(envelope::OCCURRED_AT)
            .and_then(|text| DateTime::parse_from_rfc3339(&text).ok())
            .map(|time| time.with_timezone(&Utc))
            .or_else(|| record.timestamp().to_millis().and_then(DateTime::from_timestamp_millis))
            .unwrap_or_else(Utc::now);
        let event_id = header(envelope::EVENT_ID)
            .and_then(|text| text.parse().ok())
            .unwrap_or_else(|| fallback_event_id(record.topic(), record.partition(), record.offset()));
        let trace_id = header(envelope::TRACEPARENT)
            .and_then(|traceparent| envelope::trace_id_of(&traceparent).map(str::to_owned))
            .or_else(|| event.get("trace_id").and_then(|value| value.as_str()).map(str::to_owned))
            .unwrap_or_default();
        let actor = if base_topic == topics::AUDIT_LOGS {
            // A log line is the service's own: its fields (a username it mentions) never make
            // it an account's row, and neither does an actor header without `system:`.
            let service = header(envelope::PRODUCER).unwrap_or_default();
            header(ACTOR_HEADER)
                .filter(|actor| actor.starts_with("system:"))
                .unwrap_or_else(|| chatvault_common::log_shipping::system_actor(&service))
        } else {
            header(ACTOR_HEADER).or_else(|| actor_of_event(&event)).unwrap_or_default()
        };
        Ok(AuditRecord {
            occurred_at,
            event_id,
            service: header(envelope::PRODUCER).unwrap_or_default(),
            actor,
            event_type: header(envelope::EVENT_TYPE).unwrap_or_else(|| base_topic.to_owned()),
            trace_id,
            event,
        })
    }

    async fn apply(&self, transaction: &tokio_postgres::Transaction<'_>, batch: &[Applied<AuditRecord>]) -> chatvault_common::Result<()> {
        let mut days: Vec<chrono::NaiveDate> = batch.iter().map(|applied| applied.event.occurred_at.date_naive()).collect();
        days.sort_unstable();
        days.dedup();
        for day in days {
            ensure_partition(transaction, day).await?;
        }
        let mut occurred = Vec::with_capacity(batch.len());
        let mut event_ids = Vec::with_capacity(batch.len());
        let mut topics_column = Vec::with_capacity(batch.len());
        let mut partitions = Vec::with_capacity(batch.len());
        let mut offsets = Vec::with_capacity(batch.len());
        let mut services = Vec::with_capacity(batch.len());
        let mut actors = Vec::with_capacity(batch.len());
        let mut types = Vec::with_capacity(batch.len());
        let mut keys = Vec::with_capacity(batch.len());
        let mut traces = Vec::with_capacity(batch.len());
        let mut events = Vec::with_capacity(batch.len());
        for applied in batch {
            let record = &applied.event;
            occurred.push(record.occurred_at);
            event_ids.push(record.event_id);
            topics_column.push(applied.topic.as_str());
            partitions.push(applied.partition);
            offsets.push(applied.offset);
            // Every text (a key or event field may hold U+0000) goes through the one
            // lossless representation of chatvault_common::text.
            services.push(PgText::from(record.service.as_str()));
            actors.push(PgText::from(record.actor.as_str()));
            types.push(PgText::from(record.event_type.as_str()));
            keys.push(PgText::from(applied.key.as_deref().unwrap_or_default()));
            traces.push(PgText::from(record.trace_id.as_str()));
            events.push(chatvault_common::text::encode_json(record.event.clone()));
        }
        transaction
            .execute(
                "INSERT INTO audit_rows (occurred_at, event_id, topic, kafka_partition, kafka_offset, service, actor, event_type, record_key, trace_id, event)
                 SELECT * FROM unnest($1::timestamptz[], $2::uuid[], $3::text[], $4::int4[], $5::int8[], $6::text[], $7::text[], $8::text[], $9::text[], $10::text[], $11::jsonb[])
                 ON CONFLICT DO NOTHING",
                &[&occurred, &event_ids, &topics_column, &partitions, &offsets, &services, &actors, &types, &keys, &traces, &events],
            )
            .await?;
        Ok(())
    }
}

/// Returns the partition name of `day`.
pub fn partition_name(day: chrono::NaiveDate) -> String {
    format!("audit_rows_{}", day.format("%Y%m%d"))
}

async fn ensure_partition(transaction: &tokio_postgres::Transaction<'_>, day: chrono::NaiveDate) -> chatvault_common::Result<()> {
    let next = day.succ_opt().unwrap_or(day);
    let sql = format!(
        "CREATE TABLE IF NOT EXISTS {} PARTITION OF audit_rows FOR VALUES FROM ('{} 00:00:00+00') TO ('{} 00:00:00+00')",
        partition_name(day),
        day.format("%Y-%m-%d"),
        next.format("%Y-%m-%d")
    );
    transaction.batch_execute(&sql).await?;
    Ok(())
}

/// Drops the daily partitions older than `retention_days`; returns their names.
pub async fn drop_expired_partitions(pool: &deadpool_postgres::Pool, retention_days: u32) -> Result<Vec<String>, crate::Error> {
    let client = pool.get().await?;
    let cutoff = (Utc::now() - chrono::Duration::days(i64::from(retention_days))).date_naive();
    let rows = client
        .query(
            "SELECT child.relname FROM pg_inherits JOIN pg_class parent ON parent.oid = pg_inherits.inhparent
             JOIN pg_class child ON child.oid = pg_inherits.inhrelid WHERE parent.relname = 'audit_rows'",
            &[],
        )
        .await?;
    let mut dropped = Vec::new();
    for row in rows {
        let name: String = row.get(0);
        let Some(day) = name.strip_prefix("audit_rows_").and_then(|text| chrono::NaiveDate::parse_from_str(text, "%Y%m%d").ok()) else {
            continue;
        };
        // The partition holds [day, day + 1): it is wholly expired when day + 1 <= cutoff.
        if day.succ_opt().is_some_and(|end| end <= cutoff) {
            client.batch_execute(&format!("DROP TABLE IF EXISTS {name}")).await?;
            tracing::info!(partition = %name, retention_days, "audit partition dropped");
            dropped.push(name);
        }
    }
    Ok(dropped)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn log_lines_belong_to_their_service_never_to_an_account() {
        use rdkafka::message::{Header, OwnedHeaders, OwnedMessage, Timestamp};
        let projection = AuditProjection::new("p.".to_owned());
        let line = serde_json::json!({ "message": "account registered", "username": "alice" }).to_string();
        for actor_header in [None, Some("users"), Some("alice"), Some("system:users")] {
            let mut headers = OwnedHeaders::new().insert(Header { key: envelope::PRODUCER, value: Some("users") });
            if let Some(actor) = actor_header {
                headers = headers.insert(Header { key: ACTOR_HEADER, value: Some(actor) });
            }
            let record =
                OwnedMessage::new(Some(line.clone().into_bytes()), None, "p.audit.logs".to_owned(), Timestamp::NotAvailable, 0, 1, Some(headers));
            let decoded = projection.decode(&record).expect("a log line decodes");
            assert_eq!(decoded.actor, "system:users", "actor header {actor_header:?}");
        }
    }

    #[test]
    fn actors_are_found_inside_the_oneof() {
        let event = serde_json::json!({ "file_stored": { "owner": "alice", "file_id": "f1" } });
        assert_eq!(actor_of_event(&event).as_deref(), Some("alice"));
        assert_eq!(actor_of_event(&serde_json::json!({ "x": 1 })), None);
    }

    #[test]
    fn fallback_ids_are_stable_per_position() {
        assert_eq!(fallback_event_id("t", 1, 2), fallback_event_id("t", 1, 2));
        assert_ne!(fallback_event_id("t", 1, 2), fallback_event_id("t", 1, 3));
    }

    #[test]
    fn partitions_are_named_by_day() {
        let day = chrono::NaiveDate::from_ymd_opt(2026, 11, 23).expect("date");
        assert_eq!(partition_name(day), "audit_rows_20261123");
    }
}
