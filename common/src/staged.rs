//! Staged imports: publishing many events to one topic so that read models apply all of
//! them or none, without holding a Kafka transaction open while they are written.
//!
//! A long Kafka transaction is not an option for imports: `read_committed` consumers cannot
//! read past the first record of an open transaction (the partition's last stable offset),
//! so a three-minute import would hide every other account's events on its partitions for
//! three minutes, and a crashed one for the whole transaction timeout. Instead:
//!
//! 1. Every record is published at once, outside any transaction, by an idempotent
//!    producer (no duplicates, no reordering), carrying the [`IMPORT_ID`] header.
//!    Projections skip such records as they arrive (see [`crate::projection`]), so other
//!    events on the same partitions are applied meanwhile.
//! 2. Once every record is acknowledged, [`StagedPublisher::commit`] writes one commit
//!    marker to each partition the import wrote to, inside one short Kafka transaction
//!    (milliseconds; timeout [`MARKER_TRANSACTION_TIMEOUT`]), so the import commits on all of
//!    its partitions or on none. A marker carries [`IMPORT_COMMITTED`] and
//!    [`IMPORT_FIRST_OFFSET`]; a projection that reaches it reads the import's records back
//!    from that offset and applies them.
//! 3. An import that fails, is cancelled or dies (`kill -9`, a lost broker) never writes a
//!    marker: its records stay in the topic, and no read model ever applies them.
//!
//! Deliveries are tracked by the producer's delivery callback (no future per record); the
//! producer's queue is bounded, so memory stays flat however much is published.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use rdkafka::client::ClientContext;
use rdkafka::error::KafkaError;
use rdkafka::message::{DeliveryResult, Header, Message};
use rdkafka::producer::{BaseRecord, FutureRecord, Producer, ProducerContext, ThreadedProducer};
use rdkafka::types::RDKafkaErrorCode;
use tokio::sync::Notify;

use crate::config::KafkaConfig;
use crate::consistency::Positions;
use crate::envelope::{Envelope, IMPORT_COMMITTED, IMPORT_FIRST_OFFSET, IMPORT_ID};
use crate::http::EVENTS_PUBLISHED;
use crate::{Error, Result};

/// The transaction timeout of the commit markers' transaction: it lives for milliseconds,
/// and a publisher that dies inside it holds its partitions back for at most this long.
pub const MARKER_TRANSACTION_TIMEOUT: Duration = Duration::from_secs(10);
/// How long `commit` waits for outstanding deliveries and for the markers' transaction.
const COMMIT_WAIT: Duration = Duration::from_secs(120);

/// What the import wrote to one partition.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct PartitionShare {
    pub partition: i32,
    /// Offset of the import's first record on the partition.
    pub first_offset: i64,
    /// Records of the import on the partition.
    pub records: u64,
    /// The distinct record keys (as text) the import wrote to the partition.
    pub keys: BTreeSet<String>,
}

/// Deliveries seen by the producer's callback.
#[derive(Debug, Default)]
struct Deliveries {
    shares: BTreeMap<i32, PartitionShare>,
    delivered: u64,
    failure: Option<String>,
}

/// The producer context: records each delivery report and wakes a publisher waiting for
/// room in the producer's queue.
#[derive(Debug, Default)]
struct DeliveryTracker {
    deliveries: Mutex<Deliveries>,
    room: Notify,
}

impl ClientContext for DeliveryTracker {}

impl ProducerContext for DeliveryTracker {
    type DeliveryOpaque = ();

    fn delivery(&self, result: &DeliveryResult<'_>, _: ()) {
        let mut deliveries = self.deliveries.lock().unwrap_or_else(PoisonError::into_inner);
        match result {
            Ok(message) => {
                deliveries.delivered += 1;
                let share = deliveries.shares.entry(message.partition()).or_insert_with(|| PartitionShare {
                    partition: message.partition(),
                    first_offset: message.offset(),
                    ..PartitionShare::default()
                });
                share.first_offset = share.first_offset.min(message.offset());
                share.records += 1;
                if let Some(key) = message.key().and_then(|key| std::str::from_utf8(key).ok()) {
                    if !share.keys.contains(key) {
                        share.keys.insert(key.to_owned());
                    }
                }
            }
            Err((error, _)) => {
                deliveries.failure.get_or_insert_with(|| error.to_string());
            }
        }
        drop(deliveries);
        self.room.notify_waiters();
    }
}

/// One staged import on one topic.
pub struct StagedPublisher {
    producer: Arc<ThreadedProducer<DeliveryTracker>>,
    kafka: KafkaConfig,
    topic: String,
    import_id: String,
    producer_name: String,
    traceparent: Option<String>,
    published: u64,
}

impl std::fmt::Debug for StagedPublisher {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        formatter
            .debug_struct("StagedPublisher")
            .field("topic", &self.topic)
            .field("import_id", &self.import_id)
            .field("published", &self.published)
            .finish()
    }
}

impl StagedPublisher {
    /// Opens an idempotent producer for the import `import_id` on `topic`. Events carry
    /// `producer_name`, the current span's trace and the acting caller (see
    /// [`Envelope::to_headers`]).
    pub fn begin(kafka: &KafkaConfig, topic: &str, producer_name: &str, import_id: &str) -> Result<Self> {
        let producer: ThreadedProducer<DeliveryTracker> =
            crate::kafka::producer_config(kafka, &format!("chatvault-{producer_name}")).create_with_context(DeliveryTracker::default())?;
        Ok(Self {
            producer: Arc::new(producer),
            kafka: kafka.clone(),
            topic: topic.to_owned(),
            import_id: import_id.to_owned(),
            producer_name: producer_name.to_owned(),
            traceparent: crate::telemetry::traceparent_of(&tracing::Span::current()),
            published: 0,
        })
    }

    /// Events queued so far.
    pub fn published(&self) -> u64 {
        self.published
    }

    /// Events acknowledged by the brokers so far.
    pub fn delivered(&self) -> u64 {
        self.deliveries().delivered
    }

    fn deliveries(&self) -> std::sync::MutexGuard<'_, Deliveries> {
        self.producer.context().deliveries.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn failure(&self) -> Option<String> {
        self.deliveries().failure.clone()
    }

    /// Queues one event of the import; waits while the producer's queue is full. Fails once
    /// any earlier delivery has failed (Kafka unreachable for `message.timeout.ms`).
    pub async fn publish(&mut self, key: &str, event_type: &str, payload: &[u8]) -> Result<()> {
        if let Some(failure) = self.failure() {
            return Err(not_taken(&failure));
        }
        let headers = Envelope::new(event_type, self.producer_name.as_str(), self.traceparent.clone())
            .to_headers()
            .insert(Header { key: IMPORT_ID, value: Some(self.import_id.as_bytes()) });
        let mut record = BaseRecord::to(&self.topic).key(key).payload(payload).headers(headers);
        loop {
            match self.producer.send(record) {
                Ok(()) => break,
                Err((KafkaError::MessageProduction(RDKafkaErrorCode::QueueFull), returned)) => {
                    record = returned;
                    // A delivery report makes room; the timeout only guards a missed wake-up.
                    let room = self.producer.context().room.notified();
                    let _ = tokio::time::timeout(Duration::from_millis(50), room).await;
                    if let Some(failure) = self.failure() {
                        return Err(not_taken(&failure));
                    }
                }
                Err((error, _)) => return Err(error.into()),
            }
        }
        EVENTS_PUBLISHED.with_label_values(&[&self.topic, event_type]).inc();
        self.published += 1;
        Ok(())
    }

    /// Waits until every event is acknowledged, then commits the import: one marker per
    /// partition it wrote to, all in one short transaction. `marker` makes the marker's
    /// event (type and encoded value) from what the import wrote to that partition. Returns
    /// the markers' positions: a consistency token for them is honoured once every read model
    /// has applied the whole import. Errors: [`Error::Unavailable`] when Kafka did not
    /// acknowledge everything; nothing of the import is applied then.
    pub async fn commit(self, marker: impl Fn(&PartitionShare) -> (&'static str, Vec<u8>)) -> Result<Positions> {
        let flushing = Arc::clone(&self.producer);
        tokio::task::spawn_blocking(move || flushing.flush(COMMIT_WAIT))
            .await
            .map_err(|error| Error::Other(format!("flush task: {error}")))?
            .map_err(|error| Error::Unavailable(format!("Kafka did not acknowledge the import's events: {error}")))?;
        let shares: Vec<PartitionShare> = {
            let deliveries = self.deliveries();
            if let Some(failure) = &deliveries.failure {
                return Err(not_taken(failure));
            }
            if deliveries.delivered != self.published {
                return Err(Error::Unavailable(format!("Kafka acknowledged {} of the import's {} events", deliveries.delivered, self.published)));
            }
            deliveries.shares.values().cloned().collect()
        };
        let markers: Vec<(PartitionShare, &'static str, Vec<u8>)> = shares
            .into_iter()
            .map(|share| {
                let (event_type, payload) = marker(&share);
                (share, event_type, payload)
            })
            .collect();
        publish_markers(&self.kafka, &self.topic, &self.producer_name, &self.import_id, self.traceparent.clone(), markers).await
    }

    /// Gives the import up: events still queued are dropped, and since no marker is ever
    /// written, no read model applies any of them.
    pub fn abort(self) {
        self.producer.purge(rdkafka::producer::PurgeConfig::default().queue().inflight());
        tracing::info!(topic = %self.topic, import_id = %self.import_id, published = self.published, "staged import abandoned; it will never be applied");
    }
}

/// The error of an import a delivery of which failed (Kafka unreachable for
/// `message.timeout.ms`): nothing of it will be applied.
fn not_taken(failure: &str) -> Error {
    Error::Unavailable(format!("Kafka did not take the import's events: {failure}"))
}

/// Writes the commit markers in one transaction and returns their positions.
async fn publish_markers(
    kafka: &KafkaConfig,
    topic: &str,
    producer_name: &str,
    import_id: &str,
    traceparent: Option<String>,
    markers: Vec<(PartitionShare, &'static str, Vec<u8>)>,
) -> Result<Positions> {
    let transactional_id = format!("chatvault-{producer_name}-commit-{import_id}");
    let producer = crate::kafka::transactional_producer(kafka, &format!("chatvault-{producer_name}"), &transactional_id)?;
    let starting = producer.clone();
    tokio::task::spawn_blocking(move || -> std::result::Result<(), KafkaError> {
        starting.init_transactions(COMMIT_WAIT)?;
        starting.begin_transaction()
    })
    .await
    .map_err(|error| Error::Other(format!("transaction start task: {error}")))?
    .map_err(|error| Error::Unavailable(format!("cannot start the import's commit transaction: {error}")))?;
    let mut deliveries = Vec::with_capacity(markers.len());
    for (share, event_type, payload) in &markers {
        let first_offset = share.first_offset.to_string();
        let headers = Envelope::new(*event_type, producer_name, traceparent.clone())
            .to_headers()
            .insert(Header { key: IMPORT_COMMITTED, value: Some(import_id.as_bytes()) })
            .insert(Header { key: IMPORT_FIRST_OFFSET, value: Some(first_offset.as_bytes()) });
        let record = FutureRecord::to(topic).partition(share.partition).key(import_id).payload(payload).headers(headers);
        match producer.send_result(record) {
            Ok(delivery) => deliveries.push(delivery),
            Err((error, _)) => return Err(abort_markers(producer, error.to_string()).await),
        }
        EVENTS_PUBLISHED.with_label_values(&[topic, event_type]).inc();
    }
    let mut positions = Positions::default();
    for delivery in deliveries {
        match delivery.await {
            Ok(Ok(delivered)) => positions.record_written(topic, delivered.partition, delivered.offset),
            Ok(Err((error, _))) => return Err(abort_markers(producer, error.to_string()).await),
            Err(_) => return Err(abort_markers(producer, "the producer dropped a delivery report".to_owned()).await),
        }
    }
    let committing = producer.clone();
    let committed = tokio::task::spawn_blocking(move || committing.commit_transaction(COMMIT_WAIT))
        .await
        .map_err(|error| Error::Other(format!("transaction commit task: {error}")))?;
    if let Err(error) = committed {
        return Err(abort_markers(producer, error.to_string()).await);
    }
    Ok(positions)
}

/// Aborts the markers' transaction and returns the error the commit fails with.
async fn abort_markers(producer: rdkafka::producer::FutureProducer, cause: String) -> Error {
    let aborted = tokio::task::spawn_blocking(move || producer.abort_transaction(COMMIT_WAIT)).await;
    if !matches!(aborted, Ok(Ok(()))) {
        tracing::error!(?aborted, "aborting the import's commit transaction failed; it times out within seconds");
    }
    Error::Unavailable(format!("committing the import failed, nothing of it will be applied: {cause}"))
}

/// The event type of `chat.events` commit markers.
pub const IMPORT_COMMITTED_TYPE: &str = "chatvault.chat.v1.ImportCommitted";

/// Returns the marker maker for an import on `chat.events` (records keyed by chat id):
/// each partition's marker is an `ImportCommitted` naming the import's chats there.
pub fn chat_import_committed(import_id: &str, owner: &str) -> impl Fn(&PartitionShare) -> (&'static str, Vec<u8>) {
    use chatvault_proto::chat::v1::{chat_event, ChatEvent, ImportCommitted};
    use prost::Message as _;
    let (import_id, owner) = (import_id.to_owned(), owner.to_owned());
    let committed_at_unix = chrono::Utc::now().timestamp();
    move |share| {
        let event = ChatEvent {
            event: Some(chat_event::Event::ImportCommitted(ImportCommitted {
                import_id: import_id.clone(),
                owner: owner.clone(),
                chat_ids: share.keys.iter().filter_map(|key| key.parse().ok()).collect(),
                records: share.records,
                first_offset: share.first_offset,
                committed_at_unix,
            })),
        };
        (IMPORT_COMMITTED_TYPE, event.encode_to_vec())
    }
}
