//! Publishing one event with the chatvault envelope and returning where it landed, for the
//! consistency token of the command that published it.

use std::time::Duration;

use chatvault_common::consistency::Positions;
use chatvault_common::envelope::Envelope;
use chatvault_common::http::EVENTS_PUBLISHED;
use rdkafka::producer::{FutureProducer, FutureRecord};

use crate::{Error, Result};

/// How long a publish may wait for Kafka.
const PUBLISH_TIMEOUT: Duration = Duration::from_secs(30);

/// Publishes `payload` (an encoded event) to `topic` under `key`; returns its position.
pub async fn publish_event(
    producer: &FutureProducer,
    topic: &str,
    key: &str,
    event_type: &str,
    producer_name: &str,
    payload: Vec<u8>,
) -> Result<Positions> {
    let traceparent = chatvault_common::telemetry::traceparent_of(&tracing::Span::current());
    let envelope = Envelope::new(event_type, producer_name, traceparent);
    let record = FutureRecord::to(topic).key(key).payload(&payload).headers(envelope.to_headers());
    let delivery = producer.send(record, PUBLISH_TIMEOUT).await.map_err(|(error, _)| Error::Kafka(error))?;
    EVENTS_PUBLISHED.with_label_values(&[topic, event_type]).inc();
    let mut positions = Positions::default();
    positions.record_written(topic, delivery.partition, delivery.offset);
    Ok(positions)
}
