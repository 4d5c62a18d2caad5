//! Kafka clients with chatvault's settings: idempotent and transactional producers, and
//! `read_committed` consumers that never commit offsets to Kafka (projections keep their
//! offsets in PostgreSQL).

use std::time::Duration;

use rdkafka::consumer::StreamConsumer;
use rdkafka::producer::{FutureProducer, FutureRecord};
use rdkafka::ClientConfig;

use crate::config::KafkaConfig;
use crate::consistency::Positions;
use crate::envelope::Envelope;
use crate::{Error, Result};

/// How long a publish may wait for Kafka.
const PUBLISH_TIMEOUT: Duration = Duration::from_secs(30);

/// Publishes `payload` (an encoded event) to `topic` under `key` with the chatvault
/// envelope (its `actor` is the caller the task acts for); returns where it landed, for the
/// consistency token of the command that published it.
///
/// Errors with [`Error::Kafka`] when Kafka does not take it within 30 s.
pub async fn publish_event(
    producer: &FutureProducer,
    topic: &str,
    key: &str,
    event_type: &str,
    producer_name: &str,
    payload: Vec<u8>,
) -> Result<Positions> {
    let traceparent = crate::telemetry::traceparent_of(&tracing::Span::current());
    let envelope = Envelope::new(event_type, producer_name, traceparent);
    let record = FutureRecord::to(topic).key(key).payload(&payload).headers(envelope.to_headers());
    let delivery = producer.send(record, PUBLISH_TIMEOUT).await.map_err(|(error, _)| Error::Kafka(error))?;
    crate::http::EVENTS_PUBLISHED.with_label_values(&[topic, event_type]).inc();
    let mut positions = Positions::default();
    positions.record_written(topic, delivery.partition, delivery.offset);
    Ok(positions)
}

/// librdkafka queues up to about a gigabyte by default; this bound keeps a producer's
/// memory flat whatever is published (the producer waits for room instead).
const PRODUCER_QUEUE_MAX_KBYTES: &str = "32768";

/// Returns an idempotent producer (`acks=all`) for events outside transactions.
pub fn idempotent_producer(kafka: &KafkaConfig, client_id: &str) -> Result<FutureProducer> {
    Ok(producer_config(kafka, client_id).create()?)
}

/// Returns a transactional producer; call `init_transactions` before use. Each concurrent
/// transaction needs its own `transactional_id`.
pub fn transactional_producer(kafka: &KafkaConfig, client_id: &str, transactional_id: &str) -> Result<FutureProducer> {
    let timeout_ms = crate::staged::MARKER_TRANSACTION_TIMEOUT.as_millis().to_string();
    Ok(producer_config(kafka, client_id)
        .set("transactional.id", transactional_id)
        // Transactions hold back `read_committed` readers of their partitions while open,
        // and for this long after their producer died: they must stay short.
        .set("transaction.timeout.ms", &timeout_ms)
        // librdkafka wants a message's delivery timeout within its transaction's.
        .set("message.timeout.ms", &timeout_ms)
        .create()?)
}

/// The settings every chatvault producer shares: idempotent, `acks=all`, a bounded queue.
pub fn producer_config(kafka: &KafkaConfig, client_id: &str) -> ClientConfig {
    let mut config = ClientConfig::new();
    config
        .set("bootstrap.servers", &kafka.brokers)
        .set("client.id", client_id)
        .set("enable.idempotence", "true")
        .set("acks", "all")
        .set("linger.ms", "20")
        .set("batch.size", "1000000")
        .set("compression.type", "lz4")
        .set("queue.buffering.max.kbytes", PRODUCER_QUEUE_MAX_KBYTES)
        .set("queue.buffering.max.messages", "100000")
        .set("message.timeout.ms", "300000");
    config
}

/// Returns a `read_committed` consumer that stores no offsets in Kafka.
pub fn read_committed_consumer(kafka: &KafkaConfig, group_id: &str) -> Result<StreamConsumer> {
    Ok(ClientConfig::new()
        .set("bootstrap.servers", &kafka.brokers)
        .set("group.id", group_id)
        .set("client.id", group_id)
        .set("isolation.level", "read_committed")
        .set("enable.auto.commit", "false")
        .set("enable.auto.offset.store", "false")
        .set("auto.offset.reset", "earliest")
        .set("enable.partition.eof", "false")
        .set("fetch.wait.max.ms", "50")
        .set("queued.max.messages.kbytes", "32768")
        .create()?)
}
