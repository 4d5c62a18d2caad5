//! Publishing many events to one topic inside one Kafka transaction, with a bounded number
//! of records in flight and the positions they land on (for the consistency token). Imports
//! and restores publish this way: all of it becomes visible at once, or none of it.

use std::time::Duration;

use futures::stream::FuturesUnordered;
use futures::StreamExt;
use rdkafka::error::KafkaError;
use rdkafka::producer::{DeliveryFuture, FutureProducer, FutureRecord, Producer};
use rdkafka::types::RDKafkaErrorCode;

use crate::config::KafkaConfig;
use crate::consistency::Positions;
use crate::envelope::Envelope;
use crate::http::EVENTS_PUBLISHED;
use crate::{Error, Result};

/// Deliveries awaited at most at once; librdkafka's own queue is bounded too.
const MAX_IN_FLIGHT: usize = 50_000;
const TRANSACTION_CALL_TIMEOUT: Duration = Duration::from_secs(60);

/// One open transaction on one topic.
pub struct TransactionalPublisher {
    producer: FutureProducer,
    topic: String,
    producer_name: String,
    traceparent: Option<String>,
    in_flight: FuturesUnordered<DeliveryFuture>,
    positions: Positions,
    published: u64,
}

impl std::fmt::Debug for TransactionalPublisher {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        formatter.debug_struct("TransactionalPublisher").field("topic", &self.topic).field("published", &self.published).finish()
    }
}

impl TransactionalPublisher {
    /// Opens a producer with its own `transactional_id` and begins the transaction. Events
    /// carry `producer_name` and the current span's trace (and the acting caller, see
    /// [`Envelope::to_headers`]). Kafka unreachable → [`Error::Unavailable`].
    pub async fn begin(kafka: &KafkaConfig, topic: &str, producer_name: &str, transactional_id: &str) -> Result<Self> {
        let producer = crate::kafka::transactional_producer(kafka, &format!("chatvault-{producer_name}"), transactional_id)?;
        let starting = producer.clone();
        tokio::task::spawn_blocking(move || -> std::result::Result<(), KafkaError> {
            starting.init_transactions(TRANSACTION_CALL_TIMEOUT)?;
            starting.begin_transaction()
        })
        .await
        .map_err(|error| Error::Other(format!("transaction start task: {error}")))?
        .map_err(|error| Error::Unavailable(format!("cannot start a Kafka transaction: {error}")))?;
        Ok(Self {
            producer,
            topic: topic.to_owned(),
            producer_name: producer_name.to_owned(),
            traceparent: crate::telemetry::traceparent_of(&tracing::Span::current()),
            in_flight: FuturesUnordered::new(),
            positions: Positions::default(),
            published: 0,
        })
    }

    /// Events queued so far.
    pub fn published(&self) -> u64 {
        self.published
    }

    /// Queues one event; waits for deliveries when too many are in flight.
    pub async fn publish(&mut self, key: &str, event_type: &str, payload: &[u8]) -> Result<()> {
        let headers = Envelope::new(event_type, self.producer_name.as_str(), self.traceparent.clone()).to_headers();
        let topic = self.topic.clone();
        let mut record = FutureRecord::to(&topic).key(key).payload(payload).headers(headers);
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
        EVENTS_PUBLISHED.with_label_values(&[&self.topic, event_type]).inc();
        self.published += 1;
        while self.in_flight.len() > MAX_IN_FLIGHT {
            self.reap_one_delivery().await?;
        }
        Ok(())
    }

    /// Waits for one delivery report; returns false when none is in flight.
    async fn reap_one_delivery(&mut self) -> Result<bool> {
        let Some(delivered) = self.in_flight.next().await else {
            return Ok(false);
        };
        match delivered {
            Ok(Ok(delivery)) => {
                self.positions.record_written(&self.topic, delivery.partition, delivery.offset);
                Ok(true)
            }
            Ok(Err((error, _))) => Err(error.into()),
            Err(_) => Err(Error::Other("the producer dropped a delivery report".to_owned())),
        }
    }

    /// Waits for every delivery and commits; returns the positions written. On failure the
    /// transaction is aborted.
    pub async fn commit(mut self) -> Result<Positions> {
        let delivered = async {
            while self.reap_one_delivery().await? {}
            Ok::<(), Error>(())
        }
        .await;
        if let Err(error) = delivered {
            self.abort().await;
            return Err(error);
        }
        let committing = self.producer.clone();
        let committed = tokio::task::spawn_blocking(move || committing.commit_transaction(TRANSACTION_CALL_TIMEOUT))
            .await
            .map_err(|error| Error::Other(format!("transaction commit task: {error}")))?;
        if let Err(error) = committed {
            self.abort().await;
            return Err(Error::Unavailable(format!("committing the Kafka transaction failed: {error}")));
        }
        Ok(self.positions)
    }

    /// Aborts the transaction: nothing it wrote becomes visible to `read_committed` readers.
    pub async fn abort(self) {
        let aborting = self.producer.clone();
        drop(self.in_flight);
        match tokio::task::spawn_blocking(move || aborting.abort_transaction(TRANSACTION_CALL_TIMEOUT)).await {
            Ok(Ok(())) => tracing::info!(topic = %self.topic, "kafka transaction aborted"),
            Ok(Err(error)) => tracing::error!(%error, "aborting the kafka transaction failed; it will time out"),
            Err(error) => tracing::error!(%error, "abort task failed"),
        }
    }
}
