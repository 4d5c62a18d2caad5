//! The event envelope: the Kafka headers every chatvault record carries.
//!
//! `event-type`, `event-id` (UUIDv7), `occurred-at` (RFC 3339), `producer`, `traceparent`
//! (W3C trace context), `content-type`, and `actor` (who caused the event) when the
//! publishing task acts for a caller ([`crate::caller::act_as`]). The record value is the
//! protobuf encoding of the topic's event message.

use rdkafka::message::{Header, Headers, OwnedHeaders};

pub const EVENT_TYPE: &str = "event-type";
pub const EVENT_ID: &str = "event-id";
pub const OCCURRED_AT: &str = "occurred-at";
pub const PRODUCER: &str = "producer";
pub const TRACEPARENT: &str = "traceparent";
pub const CONTENT_TYPE: &str = "content-type";
/// Who caused the event: a username, or `system:<service>` for a service's own work.
pub const ACTOR: &str = "actor";
/// Set on dead-letter records: why the record could not be applied (one line a person reads).
pub const DLQ_ERROR: &str = "dlq-error";
/// Set on dead-letter records whose application failed in PostgreSQL: the SQLSTATE code
/// (five characters, as `22P05`; PostgreSQL manual, appendix A "Error Codes").
pub const DLQ_SQLSTATE: &str = "dlq-sqlstate";
/// Set on dead-letter records when PostgreSQL gave a DETAIL line.
pub const DLQ_DETAIL: &str = "dlq-detail";
/// Set on dead-letter records: the projection that could not apply the record.
pub const DLQ_PROJECTION: &str = "dlq-projection";
/// Set on dead-letter records: the topic, partition and offset the record came from.
pub const DLQ_ORIGINAL_TOPIC: &str = "dlq-original-topic";
pub const DLQ_ORIGINAL_PARTITION: &str = "dlq-original-partition";
pub const DLQ_ORIGINAL_OFFSET: &str = "dlq-original-offset";
/// Set on dead-letter records: when the record was dead-lettered (RFC 3339, UTC).
pub const DLQ_FAILED_AT: &str = "dlq-failed-at";
/// Set on records re-published by `chatvault dlq replay`: the dead-letter topic, partition
/// and offset they were replayed from, as `topic@partition:offset`.
pub const DLQ_REPLAYED_FROM: &str = "dlq-replayed-from";

/// Set on every record of a staged import ([`crate::staged::StagedPublisher`]): the import's
/// id. Projections skip such records as they arrive and apply them only when the import's
/// commit marker arrives, so an import that never commits is never applied.
pub const IMPORT_ID: &str = "import-id";
/// Set on an import's commit marker (one per partition the import wrote to): the import's id.
pub const IMPORT_COMMITTED: &str = "import-committed";
/// Set on an import's commit marker: the offset, in decimal, of the import's first record
/// on the marker's partition.
pub const IMPORT_FIRST_OFFSET: &str = "import-first-offset";

/// The content type of JSON record values (the log lines on `audit.logs`).
pub const JSON_CONTENT_TYPE: &str = "application/json";

/// The content type of protobuf record values.
pub const PROTOBUF_CONTENT_TYPE: &str = "application/x-protobuf";

/// The envelope of one event.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Envelope {
    /// The event kind, as `chatvault.chat.v1.MessagePosted`.
    pub event_type: String,
    pub event_id: uuid::Uuid,
    pub occurred_at: chrono::DateTime<chrono::Utc>,
    pub producer: String,
    pub traceparent: Option<String>,
}

impl Envelope {
    /// Returns a new envelope with a fresh UUIDv7 and the current time.
    pub fn new(event_type: impl Into<String>, producer: impl Into<String>, traceparent: Option<String>) -> Self {
        Self {
            event_type: event_type.into(),
            event_id: uuid::Uuid::now_v7(),
            occurred_at: chrono::Utc::now(),
            producer: producer.into(),
            traceparent,
        }
    }

    /// Returns the Kafka headers of this envelope, with `actor` when the current task acts
    /// for a caller (like `traceparent`, the actor comes from where the event is published).
    pub fn to_headers(&self) -> OwnedHeaders {
        let event_id = self.event_id.to_string();
        let occurred_at = self.occurred_at.to_rfc3339_opts(chrono::SecondsFormat::Micros, true);
        let mut headers = OwnedHeaders::new_with_capacity(7)
            .insert(Header { key: EVENT_TYPE, value: Some(self.event_type.as_bytes()) })
            .insert(Header { key: EVENT_ID, value: Some(event_id.as_bytes()) })
            .insert(Header { key: OCCURRED_AT, value: Some(occurred_at.as_bytes()) })
            .insert(Header { key: PRODUCER, value: Some(self.producer.as_bytes()) })
            .insert(Header { key: CONTENT_TYPE, value: Some(PROTOBUF_CONTENT_TYPE.as_bytes()) });
        if let Some(traceparent) = &self.traceparent {
            headers = headers.insert(Header { key: TRACEPARENT, value: Some(traceparent.as_bytes()) });
        }
        if let Some(actor) = crate::caller::acting_caller() {
            headers = headers.insert(Header { key: ACTOR, value: Some(actor.as_bytes()) });
        }
        headers
    }
}

/// Returns the value of header `key` as text, when present and UTF-8.
pub fn header_text<'a, H: Headers>(headers: &'a H, key: &str) -> Option<&'a str> {
    headers.iter().find(|header| header.key == key).and_then(|header| header.value).and_then(|value| std::str::from_utf8(value).ok())
}

/// Returns the trace id (32 hex digits) inside a W3C `traceparent`, when well formed.
pub fn trace_id_of(traceparent: &str) -> Option<&str> {
    let mut parts = traceparent.split('-');
    let _version = parts.next()?;
    let trace_id = parts.next()?;
    (trace_id.len() == 32 && trace_id.bytes().all(|byte| byte.is_ascii_hexdigit())).then_some(trace_id)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn headers_carry_every_envelope_field() {
        let envelope =
            Envelope::new("chatvault.chat.v1.MessagePosted", "ingest", Some("00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01".to_owned()));
        let headers = envelope.to_headers();
        assert_eq!(header_text(&headers, EVENT_TYPE), Some("chatvault.chat.v1.MessagePosted"));
        assert_eq!(header_text(&headers, EVENT_ID), Some(envelope.event_id.to_string().as_str()));
        assert_eq!(header_text(&headers, PRODUCER), Some("ingest"));
        assert_eq!(header_text(&headers, CONTENT_TYPE), Some(PROTOBUF_CONTENT_TYPE));
        assert!(header_text(&headers, OCCURRED_AT).is_some_and(|text| chrono::DateTime::parse_from_rfc3339(text).is_ok()));
        assert_eq!(envelope.event_id.get_version_num(), 7);
        assert_eq!(header_text(&headers, ACTOR), None, "no actor outside a request");
    }

    #[tokio::test]
    async fn headers_name_the_acting_caller() {
        let headers = crate::caller::act_as("alice".to_owned(), async { Envelope::new("t", "ingest", None).to_headers() }).await;
        assert_eq!(header_text(&headers, ACTOR), Some("alice"));
    }

    #[test]
    fn trace_id_is_taken_from_a_well_formed_traceparent_only() {
        assert_eq!(trace_id_of("00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"), Some("4bf92f3577b34da6a3ce929d0e0e4736"));
        assert_eq!(trace_id_of("garbage"), None);
    }
}
