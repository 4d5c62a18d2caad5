//! The projection runner: consumes topics `read_committed`, applies each batch of records
//! to PostgreSQL in one transaction that also stores every partition's next offset, and
//! seeks to the stored offsets when it assigns itself the partitions.
//!
//! Redelivery after a crash is therefore harmless: a batch is applied together with its
//! offsets or not at all, and a `kill -9` at any instant loses and duplicates nothing.
//!
//! A projection never stalls on one record. A record that cannot be decoded, or whose
//! application fails for a reason that lies in the record (PostgreSQL classes 22 "data
//! exception", 23 "integrity constraint violation", 54 "program limit exceeded", or an
//! error the projection raises itself), is isolated: the batch is re-applied in halves under
//! savepoints until the one record is found, that record goes to `<topic>.dlq` with the
//! error in its headers ([`crate::envelope::DLQ_ERROR`] and the other `dlq-*` headers), and
//! the offsets move past it in the same transaction as the rest of the batch. Faults of the
//! database or the connection (lost connection, serialization failure, shutdown, out of
//! resources, and every other class) are retried with backoff and never dead-lettered.
//! Dead letters are written before the transaction commits, so a crash in between can
//! write a dead letter twice but never lose one.
//!
//! [`Projection::apply`] may therefore run several times within one transaction, each time
//! with a different part of the batch: staging tables must be dropped at the end of each
//! call.
//!
//! Staged imports ([`crate::staged`]): a record carrying the [`IMPORT_ID`] header is skipped
//! where it arrives (its offset still moves on), so other events on its partition are never
//! held back by an import in progress. When the import's commit marker arrives (a record
//! with [`IMPORT_COMMITTED`]), the runner reads the partition again from the import's first
//! offset ([`IMPORT_FIRST_OFFSET`]) up to the marker and applies the import's records, in
//! their order and in batches, then the marker itself. Progress is stored in
//! `projection_replays` with each batch, and the partition's offset moves past the marker
//! only with the last one, so a restart in the middle resumes where it stopped. An import
//! that never commits is never applied.
//!
//! Applying early: so that an import is not applied only after it is published, the runner
//! starts applying the first import it sees while it is still being published, in one
//! PostgreSQL transaction of its own (a task with its own reader of the partition), which
//! stays open and invisible to every query until the marker arrives; the runner then hands
//! it the marker, and it commits the import's rows together with the partition's offset past
//! the marker. This is an optimisation only: when anything goes wrong with it (a restart in
//! the middle of the import, a record it cannot decode or apply, a lock it holds that a batch
//! needs, no record of the import for [`EARLY_IMPORT_IDLE`]), it is rolled back and the
//! import is applied from the topic at its marker as above. Batches take row locks with
//! `lock_timeout` while an early application is open, so they never wait on it for long.

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
use crate::envelope::{
    self, header_text, DLQ_DETAIL, DLQ_ERROR, DLQ_FAILED_AT, DLQ_ORIGINAL_OFFSET, DLQ_ORIGINAL_PARTITION, DLQ_ORIGINAL_TOPIC, DLQ_PROJECTION,
    DLQ_SQLSTATE, IMPORT_COMMITTED, IMPORT_FIRST_OFFSET, IMPORT_ID,
};
use crate::error::FailureReport;
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

impl<E> Applied<E> {
    /// Returns `event`, decoded from `record`, with where it came from.
    fn of(record: &OwnedMessage, event: E) -> Self {
        Self {
            topic: record.topic().to_owned(),
            partition: record.partition(),
            offset: record.offset(),
            key: record.key().and_then(|key| std::str::from_utf8(key).ok()).map(str::to_owned),
            traceparent: header_of(record, envelope::TRACEPARENT).map(str::to_owned),
            event,
        }
    }
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
    /// May be called several times in one transaction with consecutive parts of a batch
    /// (while a record that cannot be applied is isolated), so it must leave no staging
    /// table behind. An error that lies in a record ([`Error::Other`], [`Error::Decode`],
    /// PostgreSQL classes 22, 23 and 54) sends that record to the dead-letter topic; any
    /// other error is retried.
    fn apply(&self, transaction: &tokio_postgres::Transaction<'_>, batch: &[Applied<Self::Event>]) -> impl Future<Output = Result<()>> + Send;
}

/// What a batch's transaction records besides the rows the projection writes.
#[derive(Debug)]
enum Bookkeeping {
    /// The next offsets of the partitions the batch came from.
    Offsets(Positions),
    /// Progress through a committed import: `next_offset` is where reading goes on. With
    /// `marker_offset` the import is done: the partition's offset moves past the marker.
    Replay { topic: String, partition: i32, import_id: String, next_offset: i64, marker_offset: Option<i64> },
}

impl Bookkeeping {
    /// Returns the partition offsets the transaction stores.
    fn offsets(&self) -> Positions {
        match self {
            Bookkeeping::Offsets(positions) => positions.clone(),
            Bookkeeping::Replay { topic, partition, marker_offset: Some(marker_offset), .. } => {
                let mut positions = Positions::default();
                positions.record_written(topic, *partition, *marker_offset);
                positions
            }
            Bookkeeping::Replay { marker_offset: None, .. } => Positions::default(),
        }
    }
}

/// An early application ends, rolled back, after this long without a record of its import.
pub const EARLY_IMPORT_IDLE: Duration = Duration::from_secs(60);
/// How long a batch waits for a row lock while an early application is open; past it, the
/// early application is rolled back and the batch retried.
const LOCK_TIMEOUT_BESIDE_AN_EARLY_IMPORT: &str = "2s";

/// What the runner hands an early application when the import's marker arrives: the marker,
/// and where to say whether the import is committed.
type CommitRequest = (OwnedMessage, tokio::sync::oneshot::Sender<bool>);

/// An import being applied early (see the module documentation).
#[derive(Debug)]
struct EarlyImport {
    topic: String,
    partition: i32,
    import_id: String,
    /// The offset the early application began reading at: the import's first record there
    /// only if the marker says so.
    from_offset: i64,
    commit: Option<tokio::sync::oneshot::Sender<CommitRequest>>,
    stop: CancellationToken,
    task: tokio::task::JoinHandle<()>,
}

impl EarlyImport {
    fn is(&self, topic: &str, partition: i32, import_id: &str) -> bool {
        self.topic == topic && self.partition == partition && self.import_id == import_id
    }
}

/// How records are grouped into transactions.
#[derive(Clone, Copy, Debug)]
pub struct BatchSettings {
    /// At most this many records per transaction.
    pub max_records: usize,
    /// After the first record of a batch, wait at most this long for more.
    pub linger: Duration,
    /// Whether imports are applied early (see the module documentation).
    pub early_imports: bool,
}

impl Default for BatchSettings {
    fn default() -> Self {
        Self { max_records: 20_000, linger: Duration::from_millis(100), early_imports: true }
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
    health: ProjectionHealth,
    early: std::sync::Mutex<Option<EarlyImport>>,
    /// Imports whose early application failed: they are applied at their marker.
    given_up: std::sync::Mutex<std::collections::VecDeque<String>>,
}

impl<P: Projection> ProjectionRunner<P> {
    /// Returns a runner of `projection` over `topics` (full names, prefix included).
    pub fn new(projection: P, pool: Pool, kafka: KafkaConfig, topics: Vec<String>, applied: AppliedPositions) -> Self {
        applied.track_topics(&topics);
        Self {
            projection: Arc::new(projection),
            pool,
            kafka,
            topics,
            applied,
            settings: BatchSettings::default(),
            health: ProjectionHealth::default(),
            early: std::sync::Mutex::new(None),
            given_up: std::sync::Mutex::new(std::collections::VecDeque::new()),
        }
    }

    /// Returns the projection's name (offsets and metrics are stored under it).
    pub fn name(&self) -> &str {
        self.projection.name()
    }

    /// Reports this projection's state to `health` (served on `/healthz`).
    pub fn with_health(mut self, health: ProjectionHealth) -> Self {
        self.health = health;
        self
    }

    /// Replaces the batch settings.
    pub fn with_batch_settings(mut self, settings: BatchSettings) -> Self {
        self.settings = settings;
        self
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
            if !self.apply_records(batch, &dead_letter_producer, &shutdown).await? {
                break;
            }
        }
        tracing::info!(projection = %projection_name, "projection stopped");
        Ok(())
    }

    /// Applies records as they came from the topics: records of staged imports are skipped,
    /// and each import commit marker among them applies its import where it stands. Returns
    /// false when shutdown interrupted the application of an import (it resumes at the next
    /// start).
    async fn apply_records(
        &self,
        mut records: Vec<OwnedMessage>,
        dead_letter_producer: &FutureProducer,
        shutdown: &CancellationToken,
    ) -> Result<bool> {
        loop {
            let marker_at =
                records.iter().position(|record| record.headers().is_some_and(|headers| header_text(headers, IMPORT_COMMITTED).is_some()));
            let Some(marker_at) = marker_at else {
                self.apply_arrivals(records, dead_letter_producer, shutdown).await?;
                return Ok(true);
            };
            let after_marker = records.split_off(marker_at + 1);
            let marker = records.pop().ok_or_else(|| Error::Other("a commit marker vanished from its batch".to_owned()))?;
            if !records.is_empty() {
                self.apply_arrivals(records, dead_letter_producer, shutdown).await?;
            }
            if !self.apply_committed_import(marker, dead_letter_producer, shutdown).await? {
                return Ok(false);
            }
            if after_marker.is_empty() {
                return Ok(true);
            }
            records = after_marker;
        }
    }

    /// Applies records that are not commit markers: those of staged imports only move the
    /// offsets on.
    async fn apply_arrivals(&self, records: Vec<OwnedMessage>, dead_letter_producer: &FutureProducer, shutdown: &CancellationToken) -> Result<()> {
        let mut positions = Positions::default();
        for record in &records {
            positions.record_written(record.topic(), record.partition(), record.offset());
        }
        if let Some(first_staged) = records.iter().find(|record| header_of(*record, IMPORT_ID).is_some()) {
            self.consider_early_import(first_staged);
        }
        let applicable: Vec<OwnedMessage> = records.into_iter().filter(|record| header_of(record, IMPORT_ID).is_none()).collect();
        self.apply_batch(applicable, Bookkeeping::Offsets(positions), dead_letter_producer, shutdown).await
    }

    /// Applies the import whose commit marker is `marker`: reads its partition from the
    /// import's first offset (or where an interrupted application stopped) up to the marker,
    /// applies the import's records in batches, then the marker. Returns false when shutdown
    /// came first.
    async fn apply_committed_import(
        &self,
        marker: OwnedMessage,
        dead_letter_producer: &FutureProducer,
        shutdown: &CancellationToken,
    ) -> Result<bool> {
        let projection_name = self.projection.name();
        let (topic, partition, marker_offset) = (marker.topic().to_owned(), marker.partition(), marker.offset());
        let import_id = header_of(&marker, IMPORT_COMMITTED).unwrap_or_default().to_owned();
        let Some(first_offset) = header_of(&marker, IMPORT_FIRST_OFFSET).and_then(|text| text.parse::<i64>().ok()) else {
            tracing::warn!(projection = projection_name, %topic, partition, offset = marker_offset, import_id, "commit marker without a first offset; applied as a plain record");
            let mut positions = Positions::default();
            positions.record_written(&topic, partition, marker_offset);
            self.apply_batch(vec![marker], Bookkeeping::Offsets(positions), dead_letter_producer, shutdown).await?;
            return Ok(true);
        };
        let started = Instant::now();
        match self.commit_early_import(&marker, &import_id, first_offset, shutdown).await {
            Some(true) => {
                let mut positions = Positions::default();
                positions.record_written(&topic, partition, marker_offset);
                self.health.applied(projection_name);
                self.applied.advance(&positions);
                tracing::info!(projection = projection_name, %topic, partition, import_id, elapsed_ms = started.elapsed().as_millis() as u64, "committed import applied (applied early)");
                return Ok(true);
            }
            Some(false) => {}
            None => return Ok(false),
        }
        let resume_from = self.replay_resume_point(&topic, partition, &import_id).await?.unwrap_or(first_offset).max(first_offset);
        tracing::info!(projection = projection_name, %topic, partition, import_id, first_offset, resume_from, marker_offset, "applying a committed import");
        let progress = |next_offset: i64, finished: bool| Bookkeeping::Replay {
            topic: topic.clone(),
            partition,
            import_id: import_id.clone(),
            next_offset,
            marker_offset: finished.then_some(marker_offset),
        };
        let mut records: Vec<OwnedMessage> = Vec::new();
        let mut applied = 0usize;
        if resume_from < marker_offset {
            let reader = partition_reader(&self.kafka, &format!("chatvault-{projection_name}-import"), &topic, partition, resume_from)?;
            loop {
                let received = tokio::select! {
                    () = shutdown.cancelled() => return Ok(false),
                    received = reader.recv() => received,
                };
                let record = match received {
                    Ok(record) => record,
                    Err(error) => {
                        tracing::warn!(projection = projection_name, %error, "kafka receive failed while applying an import, retrying");
                        tokio::time::sleep(Duration::from_millis(500)).await;
                        continue;
                    }
                };
                if record.offset() >= marker_offset {
                    break;
                }
                let next_offset = record.offset() + 1;
                if header_of(&record, IMPORT_ID) == Some(import_id.as_str()) {
                    records.push(record.detach());
                }
                if next_offset >= marker_offset {
                    break;
                }
                if records.len() >= self.settings.max_records {
                    applied += records.len();
                    self.apply_batch(std::mem::take(&mut records), progress(next_offset, false), dead_letter_producer, shutdown).await?;
                }
            }
        }
        applied += records.len();
        records.push(marker);
        self.apply_batch(records, progress(marker_offset + 1, true), dead_letter_producer, shutdown).await?;
        tracing::info!(projection = projection_name, %topic, partition, import_id, records = applied, elapsed_ms = started.elapsed().as_millis() as u64, "committed import applied");
        Ok(true)
    }

    /// Starts applying the import of `record` early, unless an early application is running
    /// already or this import's failed before.
    fn consider_early_import(&self, record: &OwnedMessage) {
        let Some(import_id) = header_of(record, IMPORT_ID).filter(|_| self.settings.early_imports) else { return };
        let mut early = self.early.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        if early.as_ref().is_some_and(|running| !running.task.is_finished()) {
            return;
        }
        if self.given_up.lock().unwrap_or_else(std::sync::PoisonError::into_inner).iter().any(|given_up| given_up == import_id) {
            return;
        }
        let (commit, commit_requests) = tokio::sync::oneshot::channel();
        let stop = CancellationToken::new();
        let work = EarlyWork {
            projection: Arc::clone(&self.projection),
            pool: self.pool.clone(),
            kafka: self.kafka.clone(),
            topic: record.topic().to_owned(),
            partition: record.partition(),
            import_id: import_id.to_owned(),
            from_offset: record.offset(),
            max_records: self.settings.max_records,
            applied_records: 0,
            records_by_trace: RecordsByTrace::new(),
        };
        tracing::debug!(
            projection = self.projection.name(),
            topic = record.topic(),
            partition = record.partition(),
            import_id,
            "applying an import early"
        );
        let task = tokio::spawn(work.run(commit_requests, stop.clone()));
        *early = Some(EarlyImport {
            topic: record.topic().to_owned(),
            partition: record.partition(),
            import_id: import_id.to_owned(),
            from_offset: record.offset(),
            commit: Some(commit),
            stop,
            task,
        });
    }

    /// Rolls back the early application, if one is open (a batch needs a lock it holds, or
    /// it failed); its import will be applied at its marker.
    fn give_up_early_import(&self, why: &str) {
        let Some(early) = self.early.lock().unwrap_or_else(std::sync::PoisonError::into_inner).take() else { return };
        early.stop.cancel();
        let mut given_up = self.given_up.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        given_up.push_back(early.import_id.clone());
        if given_up.len() > 64 {
            given_up.pop_front();
        }
        tracing::info!(projection = self.projection.name(), import_id = %early.import_id, why, "early application rolled back; the import is applied at its marker");
    }

    fn early_import_open(&self) -> bool {
        self.early.lock().unwrap_or_else(std::sync::PoisonError::into_inner).as_ref().is_some_and(|early| !early.task.is_finished())
    }

    /// Hands the marker to the early application of its import, if there is one that began
    /// at the import's first record; returns whether it committed the import (`Some(false)`:
    /// apply it from the topic), or `None` on shutdown.
    async fn commit_early_import(&self, marker: &OwnedMessage, import_id: &str, first_offset: i64, shutdown: &CancellationToken) -> Option<bool> {
        let taken = {
            let mut early = self.early.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
            match early.as_ref() {
                Some(running) if running.is(marker.topic(), marker.partition(), import_id) => early.take(),
                _ => None,
            }
        };
        let Some(mut early) = taken else { return Some(false) };
        let commit = early.commit.take().filter(|_| early.from_offset == first_offset);
        let committed = match commit {
            None => Some(false),
            Some(commit) => {
                let (reply, replied) = tokio::sync::oneshot::channel();
                if commit.send((marker.clone(), reply)).is_err() {
                    Some(false)
                } else {
                    tokio::select! {
                        () = shutdown.cancelled() => None,
                        replied = replied => Some(replied.unwrap_or(false)),
                    }
                }
            }
        };
        if committed != Some(true) {
            early.stop.cancel();
        }
        committed
    }

    /// Returns where an interrupted application of `import_id` on the partition stopped.
    async fn replay_resume_point(&self, topic: &str, partition: i32, import_id: &str) -> Result<Option<i64>> {
        let client = self.pool.get().await?;
        let row = client
            .query_opt(
                "SELECT next_offset FROM projection_replays WHERE projection = $1 AND topic = $2 AND partition = $3 AND import_id = $4",
                &[&self.projection.name(), &topic, &partition, &import_id],
            )
            .await?;
        Ok(row.map(|row| row.get(0)))
    }

    async fn load_stored_positions(&self) -> Result<Positions> {
        let client = self.pool.get().await?;
        let rows =
            client.query("SELECT topic, partition, next_offset FROM projection_offsets WHERE projection = $1", &[&self.projection.name()]).await?;
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

    /// Decodes and applies `batch` in one transaction together with `bookkeeping`, retrying
    /// with backoff until it commits (or shutdown).
    async fn apply_batch(
        &self,
        batch: Vec<OwnedMessage>,
        bookkeeping: Bookkeeping,
        dead_letter_producer: &FutureProducer,
        shutdown: &CancellationToken,
    ) -> Result<()> {
        let started = Instant::now();
        let projection_name = self.projection.name();
        let mut decoded = Vec::with_capacity(batch.len());
        let mut records_by_trace = RecordsByTrace::new();
        for record in &batch {
            match self.projection.decode(record) {
                Ok(event) => {
                    count_trace(&mut records_by_trace, header_of(record, envelope::TRACEPARENT));
                    decoded.push(Applied::of(record, event));
                }
                Err(reason) => {
                    // The dead letter is written before the offsets move past the record, so a
                    // crash in between redelivers it rather than losing it.
                    let failure = FailureReport { sqlstate: None, message: format!("cannot decode: {reason}"), detail: None };
                    self.dead_letter(dead_letter_producer, record, &failure).await?;
                }
            }
        }

        let mut attempt: u32 = 0;
        let dead_lettered = loop {
            match self.apply_in_one_transaction(&batch, &decoded, &bookkeeping, dead_letter_producer).await {
                Ok(dead_lettered) => break dead_lettered,
                Err(error) => {
                    attempt += 1;
                    // The batch may need a row the early application holds: let it go.
                    self.give_up_early_import("a batch failed beside it");
                    let failure = FailureReport::of(&error);
                    self.health.failing(projection_name, &failure);
                    let backoff = Duration::from_millis(200 * u64::from(attempt.min(25)));
                    tracing::error!(
                        projection = projection_name,
                        error = %failure.message,
                        sqlstate = failure.sqlstate.as_deref().unwrap_or(""),
                        detail = failure.detail.as_deref().unwrap_or(""),
                        attempt,
                        "applying a batch failed, retrying"
                    );
                    tokio::select! {
                        () = shutdown.cancelled() => return Err(error),
                        () = tokio::time::sleep(backoff) => {}
                    }
                }
            }
        };
        self.health.applied(projection_name);
        let positions = bookkeeping.offsets();
        self.applied.advance(&positions);
        for (index, applied) in decoded.iter().enumerate() {
            if !dead_lettered.contains(&index) {
                PROJECTION_RECORDS.with_label_values(&[projection_name, &applied.topic]).inc();
            }
        }
        PROJECTION_BATCH_SECONDS.with_label_values(&[projection_name]).observe(started.elapsed().as_secs_f64());
        log_applied_traces(projection_name, &records_by_trace);
        tracing::debug!(projection = projection_name, records = batch.len(), positions = %positions.to_token(), elapsed_ms = started.elapsed().as_millis() as u64, "batch applied");
        Ok(())
    }

    /// Applies `decoded` and records `bookkeeping` in one transaction. Records that cannot be
    /// applied are isolated and dead-lettered (see the module documentation); returns their
    /// indexes in `decoded`. Any other error rolls everything back and is returned.
    async fn apply_in_one_transaction(
        &self,
        batch: &[OwnedMessage],
        decoded: &[Applied<P::Event>],
        bookkeeping: &Bookkeeping,
        dead_letter_producer: &FutureProducer,
    ) -> Result<Vec<usize>> {
        let mut client = self.pool.get().await?;
        let transaction = client.transaction().await?;
        if self.early_import_open() {
            transaction.batch_execute(&format!("SET LOCAL lock_timeout = '{LOCK_TIMEOUT_BESIDE_AN_EARLY_IMPORT}'")).await?;
        }
        let unappliable = if decoded.is_empty() { Vec::new() } else { self.apply_isolating(&transaction, decoded).await? };
        let mut dead_lettered = Vec::with_capacity(unappliable.len());
        for (index, error) in unappliable {
            let applied = &decoded[index];
            let record = batch
                .iter()
                .find(|record| record.topic() == applied.topic && record.partition() == applied.partition && record.offset() == applied.offset)
                .ok_or_else(|| Error::Other("an isolated record is missing from its batch".to_owned()))?;
            self.dead_letter(dead_letter_producer, record, &FailureReport::of(&error)).await?;
            dead_lettered.push(index);
        }
        if let Bookkeeping::Replay { topic, partition, import_id, next_offset, marker_offset } = bookkeeping {
            if marker_offset.is_some() {
                transaction
                    .execute(
                        "DELETE FROM projection_replays WHERE projection = $1 AND topic = $2 AND partition = $3 AND import_id = $4",
                        &[&self.projection.name(), topic, partition, import_id],
                    )
                    .await?;
            } else {
                transaction
                    .execute(
                        "INSERT INTO projection_replays (projection, topic, partition, import_id, next_offset, updated_at)
                         VALUES ($1, $2, $3, $4, $5, now())
                         ON CONFLICT (projection, topic, partition, import_id) DO UPDATE
                         SET next_offset = EXCLUDED.next_offset, updated_at = now()",
                        &[&self.projection.name(), topic, partition, import_id, next_offset],
                    )
                    .await?;
            }
        }
        store_offsets(&transaction, self.projection.name(), &bookkeeping.offsets()).await?;
        transaction.commit().await?;
        Ok(dead_lettered)
    }

    /// Applies `decoded` under a savepoint; when that fails for a reason that lies in a
    /// record, re-applies it in halves (in order, each under its own savepoint) until every
    /// record that cannot be applied is found alone. Returns those records' indexes with
    /// their errors; returns the error itself when it is not a record's fault.
    async fn apply_isolating(&self, transaction: &tokio_postgres::Transaction<'_>, decoded: &[Applied<P::Event>]) -> Result<Vec<(usize, Error)>> {
        let mut unappliable: Vec<(usize, Error)> = Vec::new();
        // A stack of ranges still to apply; the left half is pushed last so records are
        // applied in their order (a later record may depend on an earlier one).
        let mut pending: Vec<std::ops::Range<usize>> = Vec::with_capacity(32);
        pending.push(0..decoded.len());
        while let Some(range) = pending.pop() {
            transaction.batch_execute("SAVEPOINT chatvault_projection_part").await?;
            match self.projection.apply(transaction, &decoded[range.clone()]).await {
                Ok(()) => transaction.batch_execute("RELEASE SAVEPOINT chatvault_projection_part").await?,
                Err(error) => {
                    transaction.batch_execute("ROLLBACK TO SAVEPOINT chatvault_projection_part; RELEASE SAVEPOINT chatvault_projection_part").await?;
                    if !error.lies_in_a_record() {
                        return Err(error);
                    }
                    if range.len() == 1 {
                        unappliable.push((range.start, error));
                    } else {
                        let middle = range.start + range.len() / 2;
                        pending.push(middle..range.end);
                        pending.push(range.start..middle);
                    }
                }
            }
        }
        if decoded.len() > 1 && unappliable.len() == decoded.len() {
            // Every record failing on its own is the projection's or the schema's fault, not
            // the records': keep them and retry rather than dead-letter a whole batch.
            let (_, first_error) = unappliable.swap_remove(0);
            return Err(Error::Other(format!("every record of the batch failed: {first_error}")));
        }
        Ok(unappliable)
    }

    /// Sends `record` to its dead-letter topic with `failure` in its headers, counts and logs it.
    async fn dead_letter(&self, producer: &FutureProducer, record: &OwnedMessage, failure: &FailureReport) -> Result<()> {
        let projection_name = self.projection.name();
        send_to_dead_letter_topic(producer, projection_name, record, failure).await?;
        PROJECTION_DEAD_LETTERS.with_label_values(&[projection_name, record.topic()]).inc();
        tracing::warn!(
            projection = projection_name,
            topic = record.topic(),
            partition = record.partition(),
            offset = record.offset(),
            error = %failure.message,
            sqlstate = failure.sqlstate.as_deref().unwrap_or(""),
            detail = failure.detail.as_deref().unwrap_or(""),
            "record sent to the dead-letter topic"
        );
        Ok(())
    }
}

/// The early application of one import (see the module documentation): reads the import's
/// partition from `from_offset`, applies the import's records in one open transaction, and
/// commits it when the runner hands it the marker.
struct EarlyWork<P: Projection> {
    projection: Arc<P>,
    pool: Pool,
    kafka: KafkaConfig,
    topic: String,
    partition: i32,
    import_id: String,
    from_offset: i64,
    max_records: usize,
    /// Records applied so far (the marker's batch not counted).
    applied_records: u64,
    /// The traces of the records applied, logged once the import commits.
    records_by_trace: RecordsByTrace,
}

impl<P: Projection> EarlyWork<P> {
    async fn run(self, commit_requests: tokio::sync::oneshot::Receiver<CommitRequest>, stop: CancellationToken) {
        let name = self.projection.name().to_owned();
        match self.apply(commit_requests, stop).await {
            Ok(true) => {}
            Ok(false) => tracing::debug!(projection = %name, "early application stopped"),
            Err(error) => tracing::info!(projection = %name, %error, "early application failed; the import is applied at its marker"),
        }
    }

    /// Returns whether the import was committed.
    async fn apply(mut self, mut commit_requests: tokio::sync::oneshot::Receiver<CommitRequest>, stop: CancellationToken) -> Result<bool> {
        let mut client = self.pool.get().await?;
        let transaction = client.transaction().await?;
        let reader =
            partition_reader(&self.kafka, &format!("chatvault-{}-early", self.projection.name()), &self.topic, self.partition, self.from_offset)?;
        let mut records: Vec<OwnedMessage> = Vec::new();
        let mut marker_offset: Option<i64> = None;
        let mut commit_request: Option<CommitRequest> = None;
        let mut last_record_at = Instant::now();
        loop {
            if let (Some(offset), true) = (marker_offset, commit_request.is_some()) {
                let Some((marker, reply)) = commit_request.take() else { return Ok(false) };
                if marker.offset() != offset {
                    return Ok(false);
                }
                records.push(marker);
                self.apply_records(&transaction, &records).await?;
                let applied_count = self.applied_records + records.len() as u64;
                let mut past_the_marker = Positions::default();
                past_the_marker.record_written(&self.topic, self.partition, offset);
                store_offsets(&transaction, self.projection.name(), &past_the_marker).await?;
                transaction.commit().await?;
                PROJECTION_RECORDS.with_label_values(&[self.projection.name(), &self.topic]).inc_by(applied_count);
                log_applied_traces(self.projection.name(), &self.records_by_trace);
                let _ = reply.send(true);
                return Ok(true);
            }
            tokio::select! {
                () = stop.cancelled() => return Ok(false),
                requested = &mut commit_requests, if commit_request.is_none() => match requested {
                    Ok(request) => commit_request = Some(request),
                    Err(_) => return Ok(false),
                },
                received = reader.recv(), if marker_offset.is_none() => {
                    let record = received?;
                    if header_of(&record, IMPORT_COMMITTED) == Some(self.import_id.as_str()) {
                        marker_offset = Some(record.offset());
                        self.applied_records += records.len() as u64;
                        self.apply_records(&transaction, &std::mem::take(&mut records)).await?;
                    } else if header_of(&record, IMPORT_ID) == Some(self.import_id.as_str()) {
                        last_record_at = Instant::now();
                        records.push(record.detach());
                        if records.len() >= self.max_records {
                            self.applied_records += records.len() as u64;
                            self.apply_records(&transaction, &std::mem::take(&mut records)).await?;
                        }
                    }
                },
                () = tokio::time::sleep(Duration::from_secs(1)) => {
                    if marker_offset.is_none() && last_record_at.elapsed() > EARLY_IMPORT_IDLE {
                        return Ok(false);
                    }
                }
            }
        }
    }

    /// Decodes and applies `records` inside the open transaction; any failure ends the early
    /// application (the import is then applied, with dead letters where due, at its marker).
    async fn apply_records(&mut self, transaction: &tokio_postgres::Transaction<'_>, records: &[OwnedMessage]) -> Result<()> {
        if records.is_empty() {
            return Ok(());
        }
        let mut decoded = Vec::with_capacity(records.len());
        for record in records {
            let event = self.projection.decode(record).map_err(|reason| Error::Other(format!("cannot decode: {reason}")))?;
            count_trace(&mut self.records_by_trace, header_of(record, envelope::TRACEPARENT));
            decoded.push(Applied::of(record, event));
        }
        self.projection.apply(transaction, &decoded).await
    }
}

/// Stores `positions` as the projection's next offsets (never moving one back), inside the
/// transaction that applied the records before them.
async fn store_offsets(transaction: &tokio_postgres::Transaction<'_>, projection_name: &str, positions: &Positions) -> Result<()> {
    let topics: Vec<&str> = positions.0.keys().map(|(topic, _)| topic.as_str()).collect();
    let partitions: Vec<i32> = positions.0.keys().map(|(_, partition)| *partition).collect();
    let offsets: Vec<i64> = positions.0.values().copied().collect();
    transaction
        .execute(
            "INSERT INTO projection_offsets (projection, topic, partition, next_offset, updated_at)
             SELECT $1, topic, partition, next_offset, now()
             FROM unnest($2::text[], $3::int4[], $4::int8[]) AS batch(topic, partition, next_offset)
             ON CONFLICT (projection, topic, partition) DO UPDATE
             SET next_offset = GREATEST(projection_offsets.next_offset, EXCLUDED.next_offset),
                 updated_at = now()",
            &[&projection_name, &topics, &partitions, &offsets],
        )
        .await?;
    Ok(())
}

/// Returns a `read_committed` reader of one partition from `from_offset`, for reading an
/// import again apart from the runner's own consumer.
fn partition_reader(kafka: &KafkaConfig, client_id: &str, topic: &str, partition: i32, from_offset: i64) -> Result<StreamConsumer> {
    let reader = kafka::read_committed_consumer(kafka, client_id)?;
    let mut assignment = TopicPartitionList::new();
    assignment.add_partition_offset(topic, partition, Offset::Offset(from_offset))?;
    reader.assign(&assignment)?;
    Ok(reader)
}

/// Records applied per trace: trace id → (a `traceparent` of it, records).
type RecordsByTrace = BTreeMap<String, (String, usize)>;

/// Counts one applied record under the trace its `traceparent` names.
fn count_trace(records_by_trace: &mut RecordsByTrace, traceparent: Option<&str>) {
    if let Some(traceparent) = traceparent {
        if let Some(trace_id) = envelope::trace_id_of(traceparent) {
            records_by_trace.entry(trace_id.to_owned()).or_insert_with(|| (traceparent.to_owned(), 0)).1 += 1;
        }
    }
}

/// Logs one line per trace, in a span whose parent is the trace's producer, so a trace id
/// finds the projections that applied its records.
fn log_applied_traces(projection_name: &str, records_by_trace: &RecordsByTrace) {
    for (trace_id, (traceparent, count)) in records_by_trace {
        let span = tracing::info_span!("projection.apply", projection = projection_name, trace_id = %trace_id);
        set_remote_parent(&span, traceparent);
        span.in_scope(|| tracing::info!(projection = projection_name, trace_id = %trace_id, records = count, "records applied"));
    }
}

/// Returns the text of header `key` of `record`, when present and UTF-8.
fn header_of<'a, M: Message>(record: &'a M, key: &str) -> Option<&'a str> {
    record.headers().and_then(|headers| header_text(headers, key))
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

async fn send_to_dead_letter_topic(producer: &FutureProducer, projection_name: &str, record: &OwnedMessage, failure: &FailureReport) -> Result<()> {
    let dead_letter_topic = dead_letter_topic(record.topic());
    let mut headers = OwnedHeaders::new();
    if let Some(original) = record.headers() {
        // A record replayed from a dead-letter topic may carry dlq-* headers of an earlier
        // failure; only the newest failure is kept.
        for header in original.iter().filter(|header| !header.key.starts_with("dlq-")) {
            headers = headers.insert(Header { key: header.key, value: header.value });
        }
    }
    let partition = record.partition().to_string();
    let offset = record.offset().to_string();
    let failed_at = chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Millis, true);
    headers = headers
        .insert(Header { key: DLQ_ERROR, value: Some(failure.message.as_bytes()) })
        .insert(Header { key: DLQ_PROJECTION, value: Some(projection_name.as_bytes()) })
        .insert(Header { key: DLQ_ORIGINAL_TOPIC, value: Some(record.topic().as_bytes()) })
        .insert(Header { key: DLQ_ORIGINAL_PARTITION, value: Some(partition.as_bytes()) })
        .insert(Header { key: DLQ_ORIGINAL_OFFSET, value: Some(offset.as_bytes()) })
        .insert(Header { key: DLQ_FAILED_AT, value: Some(failed_at.as_bytes()) });
    if let Some(sqlstate) = &failure.sqlstate {
        headers = headers.insert(Header { key: DLQ_SQLSTATE, value: Some(sqlstate.as_bytes()) });
    }
    if let Some(detail) = &failure.detail {
        headers = headers.insert(Header { key: DLQ_DETAIL, value: Some(detail.as_bytes()) });
    }
    let mut dead_letter = FutureRecord::to(&dead_letter_topic).headers(headers);
    if let Some(key) = record.key() {
        dead_letter = dead_letter.key(key);
    }
    if let Some(payload) = record.payload() {
        dead_letter = dead_letter.payload(payload);
    }
    producer.send(dead_letter, Duration::from_secs(30)).await.map_err(|(error, _)| Error::Kafka(error))?;
    Ok(())
}

/// The state of every projection of a service, served on `/healthz`
/// ([`crate::http::router_with_health`]). Cloning shares the state.
#[derive(Clone, Debug, Default)]
pub struct ProjectionHealth {
    states: Arc<std::sync::Mutex<BTreeMap<String, ProjectionState>>>,
}

/// What `/healthz` reports of one projection.
#[derive(Clone, Debug, Default, serde::Serialize)]
pub struct ProjectionState {
    /// When the last batch was applied (RFC 3339), if any since start.
    pub last_applied_at: Option<chrono::DateTime<chrono::Utc>>,
    /// Since when every attempt to apply the batch in hand has failed; `None` when healthy.
    pub failing_since: Option<chrono::DateTime<chrono::Utc>>,
    /// Failed attempts in a row.
    pub failed_attempts: u32,
    /// The last failure, as [`FailureReport::message`] (SQLSTATE appended when known).
    pub last_error: Option<String>,
}

impl ProjectionHealth {
    fn with_state(&self, projection: &str, change: impl FnOnce(&mut ProjectionState)) {
        // A poisoned lock only means another thread panicked while reporting; the state is
        // plain data and still usable.
        let mut states = self.states.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        change(states.entry(projection.to_owned()).or_default());
    }

    fn applied(&self, projection: &str) {
        self.with_state(projection, |state| {
            state.last_applied_at = Some(chrono::Utc::now());
            state.failing_since = None;
            state.failed_attempts = 0;
        });
    }

    fn failing(&self, projection: &str, failure: &FailureReport) {
        self.with_state(projection, |state| {
            state.failing_since.get_or_insert_with(chrono::Utc::now);
            state.failed_attempts += 1;
            state.last_error = Some(match &failure.sqlstate {
                Some(sqlstate) => format!("{} (SQLSTATE {sqlstate})", failure.message),
                None => failure.message.clone(),
            });
        });
    }

    /// Returns every projection's state, by name.
    pub fn states(&self) -> BTreeMap<String, ProjectionState> {
        self.states.lock().unwrap_or_else(std::sync::PoisonError::into_inner).clone()
    }

    /// Returns the projections that have failed without a break for longer than `stuck_after`.
    pub fn stuck(&self, stuck_after: Duration) -> Vec<String> {
        let now = chrono::Utc::now();
        self.states()
            .into_iter()
            .filter(|(_, state)| state.failing_since.is_some_and(|since| (now - since).to_std().unwrap_or_default() > stuck_after))
            .map(|(name, _)| name)
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_projection_is_stuck_only_while_it_keeps_failing() {
        let health = ProjectionHealth::default();
        let failure = FailureReport { sqlstate: Some("57P01".to_owned()), message: "terminating connection".to_owned(), detail: None };
        health.failing("storage.chats", &failure);
        assert_eq!(health.stuck(Duration::ZERO), vec!["storage.chats".to_owned()]);
        assert!(health.stuck(Duration::from_secs(3600)).is_empty());
        let state = &health.states()["storage.chats"];
        assert_eq!(state.failed_attempts, 1);
        assert_eq!(state.last_error.as_deref(), Some("terminating connection (SQLSTATE 57P01)"));
        health.applied("storage.chats");
        assert!(health.stuck(Duration::ZERO).is_empty());
        assert_eq!(health.states()["storage.chats"].failed_attempts, 0);
    }
}
