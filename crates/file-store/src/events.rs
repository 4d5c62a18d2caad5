//! Publishing one event with the chatvault envelope and returning where it landed, for the
//! consistency token of the command that published it.

use chatvault_common::consistency::Positions;
use rdkafka::producer::FutureProducer;

use crate::{Error, Result};

/// Publishes `payload` (an encoded event) to `topic` under `key`; returns its position
/// (see [`chatvault_common::kafka::publish_event`]).
pub async fn publish_event(
    producer: &FutureProducer,
    topic: &str,
    key: &str,
    event_type: &str,
    producer_name: &str,
    payload: Vec<u8>,
) -> Result<Positions> {
    chatvault_common::kafka::publish_event(producer, topic, key, event_type, producer_name, payload).await.map_err(|error| match error {
        chatvault_common::Error::Kafka(kafka) => Error::Kafka(kafka),
        other => Error::Common(other),
    })
}
