//! Publishes encoded events inside one Kafka transaction, keeping a bounded number of
//! records in flight and the positions they land on (for the consistency token).

use std::time::Duration;

use chatvault_common::config::KafkaConfig;
use chatvault_common::consistency::Positions;
use chatvault_common::envelope::Envelope;
use chatvault_common::http::EVENTS_PUBLISHED;
use chatvault_common::kafka;
use futures::stream::FuturesUnordered;
use futures::StreamExt;
use rdkafka::error::KafkaError;
use rdkafka::producer::{DeliveryFuture, FutureProducer, FutureRecord, Producer};
use rdkafka::types::RDKafkaErrorCode;

use super::EncodedEvent;
use crate::Error;

/// Deliveries awaited at most at once; librdkafka's own queue is bounded too.
const MAX_IN_FLIGHT: usize = 50_000;
const TRANSACTION_CALL_TIMEOUT: Duration = Duration::from_secs(60);

pub(super) struct TransactionalPublisher {
    producer: FutureProducer,
    topic: String,
    traceparent: Option<String>,
    in_flight: FuturesUnordered<DeliveryFuture>,
    positions: Positions,
    published: u64,
}

impl TransactionalPublisher {
    /// Opens a producer with a transactional id of its own and begins the transaction.
    pub(super) async fn begin(kafka_config: &KafkaConfig, topic: &str, import_id: &str) -> Result<Self, Error> {
        let producer = kafka::transactional_producer(kafka_config, "chatvault-ingest", &format!("chatvault-ingest-{import_id}"))?;
        let starting = producer.clone();
        tokio::task::spawn_blocking(move || -> Result<(), KafkaError> {
            starting.init_transactions(TRANSACTION_CALL_TIMEOUT)?;
            starting.begin_transaction()
        })
        .await
        .map_err(|error| Error::Internal(format!("transaction start task: {error}")))?
        .map_err(|error| Error::Unavailable(format!("cannot start a Kafka transaction: {error}")))?;
        Ok(Self {
            producer,
            topic: topic.to_owned(),
            traceparent: chatvault_common::telemetry::traceparent_of(&tracing::Span::current()),
            in_flight: FuturesUnordered::new(),
            positions: Positions::default(),
            published: 0,
        })
    }

    pub(super) fn published(&self) -> u64 {
        self.published
    }

    /// Queues every record of `events`; waits for deliveries when too many are in flight.
    pub(super) async fn publish_all(&mut self, events: Vec<EncodedEvent>) -> Result<(), Error> {
        let topic = self.topic.clone();
        for event in events {
            let envelope = Envelope::new(event.event_type, "ingest", self.traceparent.clone());
            let mut record = FutureRecord::to(&topic)
                .key(&event.key)
                .payload(&event.payload)
                .headers(envelope.to_headers());
            loop {
                match self.producer.send_result(record) {
                    Ok(delivery) => {
                        self.in_flight.push(delivery);
                        break;
                    }
                    Err((KafkaError::MessageProduction(RDKafkaErrorCode::QueueFull), returned)) => {
                        record = returned;
                        if !self.reap_one_delivery().await? {
                            tokio::time::sleep(Duration::from_millis(2)).await;
                        }
                    }
                    Err((error, _)) => return Err(error.into()),
                }
            }
            EVENTS_PUBLISHED.with_label_values(&[&self.topic, event.event_type]).inc();
            self.published += 1;
            while self.in_flight.len() > MAX_IN_FLIGHT {
                self.reap_one_delivery().await?;
            }
        }
        Ok(())
    }

    /// Waits for one delivery report; returns false when none is in flight.
    async fn reap_one_delivery(&mut self) -> Result<bool, Error> {
        let Some(delivered) = self.in_flight.next().await else {
            return Ok(false);
        };
        match delivered {
            Ok(Ok(delivery)) => {
                self.positions.record_written(&self.topic, delivery.partition, delivery.offset);
                Ok(true)
            }
            Ok(Err((error, _))) => Err(error.into()),
            Err(_) => Err(Error::Internal("the producer dropped a delivery report".to_owned())),
        }
    }

    /// Waits for every delivery and commits; returns the positions written.
    pub(super) async fn commit(mut self) -> Result<Positions, Error> {
        while self.reap_one_delivery().await? {}
        let committing = self.producer.clone();
        let committed = tokio::task::spawn_blocking(move || committing.commit_transaction(TRANSACTION_CALL_TIMEOUT))
            .await
            .map_err(|error| Error::Internal(format!("transaction commit task: {error}")))?;
        if let Err(error) = committed {
            self.abort().await;
            return Err(Error::Unavailable(format!("committing the Kafka transaction failed: {error}")));
        }
        Ok(self.positions)
    }

    /// Aborts the transaction: nothing it wrote becomes visible to `read_committed` readers.
    pub(super) async fn abort(self) {
        let aborting = self.producer.clone();
        drop(self.in_flight);
        let aborted = tokio::task::spawn_blocking(move || aborting.abort_transaction(TRANSACTION_CALL_TIMEOUT)).await;
        match aborted {
            Ok(Ok(())) => tracing::info!("kafka transaction aborted"),
            Ok(Err(error)) => tracing::error!(%error, "aborting the kafka transaction failed; it will time out"),
            Err(error) => tracing::error!(%error, "abort task failed"),
        }
    }
}
