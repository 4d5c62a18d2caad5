//! The projection runner: consumes topics `read_committed`, applies each batch of records
//! to PostgreSQL in one transaction that also stores every partition's next offset, and
//! seeks to the stored offsets when it assigns itself the partitions.
//!
//! Redelivery after a crash is therefore harmless: a batch is applied together with its
//! offsets or not at all, and a `kill -9` at any instant loses and duplicates nothing.
//! Records that cannot be decoded go to `<topic>.dlq` with the reason in a header.

use std::collections::BTreeMap;
use std::future::Future;
use std::sync::Arc;
use std::time::{Duration, Instant};

use deadpool_postgres::Pool;
use rdkafka::consumer::{Consumer, StreamConsumer};
use rdkafka::message::{Header, Headers, Message, OwnedHeaders, OwnedMessage};
use rdkafka::producer::{FutureProducer, FutureRecord};
use rdkafka::{Offset, TopicPartitionList};
use tokio_util::sync::CancellationToken;

use crate::config::KafkaConfig;
use crate::consistency::{AppliedPositions, Positions};
use crate::envelope::{self, DLQ_ERROR};
use crate::http::{PROJECTION_BATCH_SECONDS, PROJECTION_DEAD_LETTERS, PROJECTION_RECORDS};
use crate::telemetry::set_remote_parent;
use crate::topics::dead_letter_topic;
use crate::{kafka, Error, Result};

/// One decoded record handed to [`Projection::apply`].
#[derive(Debug)]
pub struct Applied<E> {
    pub topic: String,
    pub partition: i32,
    pub offset: i64,
    /// The record key as text, when it is UTF-8.
    pub key: Option<String>,
    pub traceparent: Option<String>,
    pub event: E,
}

/// A read model built from one or more topics.
pub trait Projection: Send + Sync + 'static {
    /// The decoded form of one record.
    type Event: Send + Sync + 'static;

    /// Returns the name under which offsets are stored and metrics are labelled.
    fn name(&self) -> &str;

    /// Decodes one record; an error sends the record to the dead-letter topic.
    fn decode(&self, record: &OwnedMessage) -> std::result::Result<Self::Event, String>;

    /// Applies a batch inside `transaction`; the runner stores the offsets and commits.
    fn apply(
        &self,
        transaction: &tokio_postgres::Transaction<'_>,
        batch: &[Applied<Self::Event>],
    ) -> impl Future<Output = Result<()>> + Send;
}

/// How records are grouped into transactions.
#[derive(Clone, Copy, Debug)]
pub struct BatchSettings {
    /// At most this many records per transaction.
    pub max_records: usize,
    /// After the first record of a batch, wait at most this long for more.
    pub linger: Duration,
}

impl Default for BatchSettings {
    fn default() -> Self {
        Self { max_records: 20_000, linger: Duration::from_millis(100) }
    }
}

/// Runs one projection until shutdown.
#[derive(Debug)]
pub struct ProjectionRunner<P: Projection> {
    projection: Arc<P>,
    pool: Pool,
    kafka: KafkaConfig,
    topics: Vec<String>,
    applied: AppliedPositions,
    settings: BatchSettings,
}

impl<P: Projection> ProjectionRunner<P> {
    /// Returns a runner of `projection` over `topics` (full names, prefix included).
    pub fn new(projection: P, pool: Pool, kafka: KafkaConfig, topics: Vec<String>, applied: AppliedPositions) -> Self {
        Self { projection: Arc::new(projection), pool, kafka, topics, applied, settings: BatchSettings::default() }
    }

    /// Replaces the batch settings.
    pub fn with_batch_settings(mut self, settings: BatchSettings) -> Self {
        self.settings = settings;
        self
    }

    /// Runs the projection on its own task. A projection that fails cancels `shutdown`: a
    /// service whose read model cannot advance must not go on answering as if it were
    /// current. Await the handle after shutdown to learn how it ended.
    pub fn spawn(self, shutdown: CancellationToken) -> tokio::task::JoinHandle<Result<()>> {
        tokio::spawn(async move {
            let outcome = self.run(shutdown.clone()).await;
            if let Err(error) = &outcome {
                tracing::error!(%error, "projection failed; shutting the service down");
                shutdown.cancel();
            }
            outcome
        })
    }

    /// Consumes and applies until `shutdown` is cancelled, then finishes the batch in hand.
    pub async fn run(self, shutdown: CancellationToken) -> Result<()> {
        let projection_name = self.projection.name().to_owned();
        let consumer = Arc::new(kafka::read_committed_consumer(&self.kafka, &format!("chatvault-{projection_name}"))?);
        let dead_letter_producer = kafka::idempotent_producer(&self.kafka, &format!("chatvault-{projection_name}-dlq"))?;
        let stored = self.load_stored_positions().await?;
        self.applied.advance(&stored);
        self.assign_from_stored_positions(&consumer, &stored).await?;
        tracing::info!(projection = %projection_name, topics = ?self.topics, resume_from = %stored.to_token(), "projection started");

        while let Some(batch) = self.next_batch(&consumer, &shutdown).await {
            self.apply_batch(batch, &dead_letter_producer, &shutdown).await?;
        }
        tracing::info!(projection = %projection_name, "projection stopped");
        Ok(())
    }

    async fn load_stored_positions(&self) -> Result<Positions> {
        let client = self.pool.get().await?;
        let rows = client
            .query(
                "SELECT topic, partition, next_offset FROM projection_offsets WHERE projection = $1",
                &[&self.projection.name()],
            )
            .await?;
        let mut positions = Positions::default();
        for row in rows {
            let topic: String = row.get(0);
            if self.topics.contains(&topic) {
                positions.0.insert((topic, row.get(1)), row.get(2));
            }
        }
        Ok(positions)
    }

    /// Assigns every partition of every topic, each at its stored next offset (or the
    /// beginning when nothing is stored yet).
    async fn assign_from_stored_positions(&self, consumer: &Arc<StreamConsumer>, stored: &Positions) -> Result<()> {
        let mut assignment = TopicPartitionList::new();
        for topic in &self.topics {
            let partitions = partitions_of_topic(consumer, topic).await?;
            for partition in partitions {
                let offset = match stored.0.get(&(topic.clone(), partition)) {
                    Some(next) => Offset::Offset(*next),
                    None => Offset::Beginning,
                };
                assignment.add_partition_offset(topic, partition, offset)?;
            }
        }
        consumer.assign(&assignment)?;
        Ok(())
    }

    /// Waits for the first record, then gathers more until the batch is full or the linger
    /// time has passed. Returns `None` on shutdown.
    async fn next_batch(&self, consumer: &StreamConsumer, shutdown: &CancellationToken) -> Option<Vec<OwnedMessage>> {
        let first = loop {
            tokio::select! {
                () = shutdown.cancelled() => return None,
                received = consumer.recv() => match received {
                    Ok(message) => break message.detach(),
                    Err(error) => {
                        tracing::warn!(projection = self.projection.name(), %error, "kafka receive failed, retrying");
                        tokio::time::sleep(Duration::from_millis(500)).await;
                    }
                },
            }
        };
        let mut batch = vec![first];
        let deadline = tokio::time::Instant::now() + self.settings.linger;
        while batch.len() < self.settings.max_records {
            match tokio::time::timeout_at(deadline, consumer.recv()).await {
                Ok(Ok(message)) => batch.push(message.detach()),
                Ok(Err(error)) => {
                    tracing::warn!(projection = self.projection.name(), %error, "kafka receive failed");
                    break;
                }
                Err(_) => break,
            }
        }
        Some(batch)
    }

    async fn apply_batch(
        &self,
        batch: Vec<OwnedMessage>,
        dead_letter_producer: &FutureProducer,
        shutdown: &CancellationToken,
    ) -> Result<()> {
        let started = Instant::now();
        let projection_name = self.projection.name();
        let mut positions = Positions::default();
        let mut decoded = Vec::with_capacity(batch.len());
        let mut records_by_trace: BTreeMap<String, (String, usize)> = BTreeMap::new();
        for record in &batch {
            positions.record_written(record.topic(), record.partition(), record.offset());
            let traceparent = record.headers().and_then(|headers| envelope::header_text(headers, envelope::TRACEPARENT)).map(str::to_owned);
            match self.projection.decode(record) {
                Ok(event) => {
                    if let Some(traceparent) = &traceparent {
                        if let Some(trace_id) = envelope::trace_id_of(traceparent) {
                            records_by_trace.entry(trace_id.to_owned()).or_insert_with(|| (traceparent.clone(), 0)).1 += 1;
                        }
                    }
                    decoded.push(Applied {
                        topic: record.topic().to_owned(),
                        partition: record.partition(),
                        offset: record.offset(),
                        key: record.key().and_then(|key| std::str::from_utf8(key).ok()).map(str::to_owned),
                        traceparent,
                        event,
                    });
                }
                Err(reason) => {
                    // The dead letter is written before the offsets move past the record, so a
                    // crash in between redelivers it rather than losing it.
                    send_to_dead_letter_topic(dead_letter_producer, record, &reason).await?;
                    PROJECTION_DEAD_LETTERS.with_label_values(&[projection_name, record.topic()]).inc();
                    tracing::warn!(projection = projection_name, topic = record.topic(), partition = record.partition(), offset = record.offset(), %reason, "record sent to the dead-letter topic");
                }
            }
        }

        let mut attempt: u32 = 0;
        loop {
            match self.apply_in_one_transaction(&decoded, &positions).await {
                Ok(()) => break,
                Err(error) => {
                    attempt += 1;
                    let backoff = Duration::from_millis(200 * u64::from(attempt.min(25)));
                    tracing::error!(projection = projection_name, %error, attempt, "applying a batch failed, retrying");
                    tokio::select! {
                        () = shutdown.cancelled() => return Err(error),
                        () = tokio::time::sleep(backoff) => {}
                    }
                }
            }
        }
        self.applied.advance(&positions);
        for applied in &decoded {
            PROJECTION_RECORDS.with_label_values(&[projection_name, &applied.topic]).inc();
        }
        PROJECTION_BATCH_SECONDS.with_label_values(&[projection_name]).observe(started.elapsed().as_secs_f64());
        for (trace_id, (traceparent, count)) in &records_by_trace {
            let span = tracing::info_span!("projection.apply", projection = projection_name, trace_id = %trace_id);
            set_remote_parent(&span, traceparent);
            span.in_scope(|| tracing::info!(projection = projection_name, trace_id = %trace_id, records = count, "records applied"));
        }
        tracing::debug!(projection = projection_name, records = batch.len(), positions = %positions.to_token(), elapsed_ms = started.elapsed().as_millis() as u64, "batch applied");
        Ok(())
    }

    async fn apply_in_one_transaction(&self, decoded: &[Applied<P::Event>], positions: &Positions) -> Result<()> {
        let mut client = self.pool.get().await?;
        let transaction = client.transaction().await?;
        if !decoded.is_empty() {
            self.projection.apply(&transaction, decoded).await?;
        }
        let (topics, partitions, offsets): (Vec<&str>, Vec<i32>, Vec<i64>) = positions
            .0
            .iter()
            .map(|((topic, partition), next)| (topic.as_str(), *partition, *next))
            .fold((Vec::new(), Vec::new(), Vec::new()), |(mut topics, mut partitions, mut offsets), (topic, partition, next)| {
                topics.push(topic);
                partitions.push(partition);
                offsets.push(next);
                (topics, partitions, offsets)
            });
        transaction
            .execute(
                "INSERT INTO projection_offsets (projection, topic, partition, next_offset, updated_at)
                 SELECT $1, topic, partition, next_offset, now()
                 FROM unnest($2::text[], $3::int4[], $4::int8[]) AS batch(topic, partition, next_offset)
                 ON CONFLICT (projection, topic, partition) DO UPDATE
                 SET next_offset = GREATEST(projection_offsets.next_offset, EXCLUDED.next_offset),
                     updated_at = now()",
                &[&self.projection.name(), &topics, &partitions, &offsets],
            )
            .await?;
        transaction.commit().await?;
        Ok(())
    }
}

/// Returns the partitions of `topic`. A topic created a moment ago may not show in the
/// metadata yet, so this asks again for a while before giving up.
async fn partitions_of_topic(consumer: &Arc<StreamConsumer>, topic: &str) -> Result<Vec<i32>> {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let metadata_consumer = Arc::clone(consumer);
        let topic_name = topic.to_owned();
        let metadata = tokio::task::spawn_blocking(move || metadata_consumer.fetch_metadata(Some(&topic_name), Duration::from_secs(30)))
            .await
            .map_err(|error| Error::Other(format!("metadata task: {error}")))?;
        let partitions: Vec<i32> = match &metadata {
            Ok(metadata) => metadata
                .topics()
                .iter()
                .filter(|described| described.name() == topic && described.error().is_none())
                .flat_map(|described| described.partitions().iter().map(|partition| partition.id()))
                .collect(),
            Err(_) => Vec::new(),
        };
        if !partitions.is_empty() {
            return Ok(partitions);
        }
        if Instant::now() >= deadline {
            return Err(match metadata {
                Err(error) => Error::Kafka(error),
                Ok(_) => Error::Other(format!("topic {topic} has no partitions (does it exist?)")),
            });
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// Waits for a projection task started with [`ProjectionRunner::spawn`].
pub async fn join_projection(task: tokio::task::JoinHandle<Result<()>>) -> Result<()> {
    task.await.map_err(|error| Error::Other(format!("projection task: {error}")))?
}

async fn send_to_dead_letter_topic(producer: &FutureProducer, record: &OwnedMessage, reason: &str) -> Result<()> {
    let dead_letter_topic = dead_letter_topic(record.topic());
    let mut headers = OwnedHeaders::new();
    if let Some(original) = record.headers() {
        for header in original.iter() {
            headers = headers.insert(Header { key: header.key, value: header.value });
        }
    }
    headers = headers.insert(Header { key: DLQ_ERROR, value: Some(reason.as_bytes()) });
    let mut dead_letter = FutureRecord::to(&dead_letter_topic).headers(headers);
    if let Some(key) = record.key() {
        dead_letter = dead_letter.key(key);
    }
    if let Some(payload) = record.payload() {
        dead_letter = dead_letter.payload(payload);
    }
    producer
        .send(dead_letter, Duration::from_secs(30))
        .await
        .map_err(|(error, _)| Error::Kafka(error))?;
    Ok(())
}
