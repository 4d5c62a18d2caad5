//! `chatvault dlq ls|replay`: the dead letters that projections write to `<topic>.dlq` when
//! they cannot apply a record (`chatvault_common::projection`): listed with why they failed,
//! and re-published to their original topic once the cause is fixed.
//!
//! A dead letter is the original record (key, value, envelope headers) plus the `dlq-*`
//! headers of `chatvault_common::envelope`. Both commands talk to Kafka directly, as
//! `topics tail` does, with the services' `CHATVAULT_KAFKA_BROKERS` and
//! `CHATVAULT_TOPIC_PREFIX`: they are operators' tools, guarded by access to the brokers
//! rather than by a chatvault role.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use anyhow::Context;
use chatvault_common::envelope::{
    DLQ_DETAIL, DLQ_ERROR, DLQ_FAILED_AT, DLQ_ORIGINAL_OFFSET, DLQ_ORIGINAL_PARTITION, DLQ_ORIGINAL_TOPIC, DLQ_PROJECTION, DLQ_REPLAYED_FROM,
    DLQ_SQLSTATE, EVENT_ID, EVENT_TYPE, IMPORT_COMMITTED, IMPORT_FIRST_OFFSET, IMPORT_ID,
};
use chatvault_common::topics::dead_letter_topic;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::error::KafkaError;
use rdkafka::message::{Header, Headers, Message, OwnedHeaders};
use rdkafka::producer::FutureRecord;
use rdkafka::{Offset, TopicPartitionList};
use serde_json::json;

use super::Endpoints;
use crate::error_code::{coded_error, invalid_argument, not_found};
use crate::output::outln;

/// The suffix of dead-letter topics (see `chatvault_common::topics::dead_letter_topic`).
const DEAD_LETTER_SUFFIX: &str = ".dlq";

/// Every header a projection adds to a dead letter starts with this; replay drops them.
const DEAD_LETTER_HEADER_PREFIX: &str = "dlq-";

/// How long a metadata or watermark request to Kafka may take.
const KAFKA_REQUEST_TIMEOUT: Duration = Duration::from_secs(10);

/// How long a read may go without any answer from Kafka before it gives up (UNAVAILABLE).
const KAFKA_SILENCE_LIMIT: Duration = Duration::from_secs(30);

#[derive(Debug, clap::Args)]
pub(crate) struct DlqArgs {
    #[command(subcommand)]
    command: DlqCommand,
}

#[derive(Debug, clap::Subcommand)]
enum DlqCommand {
    /// List the dead letters of every *.dlq topic (or of one topic): where each came from, which projection refused it, when and why.
    Ls {
        /// Only the dead letters of this topic, like chat.events (or its dead-letter topic, chat.events.dlq).
        #[arg(long)]
        topic: Option<String>,
    },
    /// Re-publish a topic's dead letters to their original topic, with their original key, value and headers.
    ///
    /// Each replayed record carries dlq-replayed-from = "<dlq topic>@<partition>:<offset>".
    /// The dead letters stay where they are (Kafka cannot delete single records): replaying
    /// them again publishes them again.
    Replay {
        /// The topic, like chat.events (or its dead-letter topic, chat.events.dlq).
        topic: String,
        /// Only the dead letter at this offset of the dead-letter topic.
        #[arg(long)]
        offset: Option<i64>,
        /// The dead-letter topic's partition of --offset; needed only when it has several.
        #[arg(long, requires = "offset")]
        partition: Option<i32>,
    },
}

pub(crate) async fn run(endpoints: &Endpoints, args: DlqArgs, json: bool) -> anyhow::Result<()> {
    match args.command {
        DlqCommand::Ls { topic } => list(endpoints, topic.as_deref(), json).await,
        DlqCommand::Replay { topic, offset, partition } => replay(endpoints, &topic, offset.map(|offset| (partition, offset)), json).await,
    }
}

/// One record of a dead-letter topic, as read from Kafka.
#[derive(Clone, Debug, PartialEq, Eq)]
struct DeadLetter {
    /// The dead-letter topic's full name (prefix included), like `chat.events.dlq`.
    dead_letter_topic: String,
    partition: i32,
    offset: i64,
    key: Option<Vec<u8>>,
    value: Option<Vec<u8>>,
    /// Every header in record order, values as bytes (envelope headers are text, but a
    /// replay must give back exactly what was there).
    headers: Vec<(String, Option<Vec<u8>>)>,
}

impl DeadLetter {
    fn from_message<M: Message>(message: &M) -> Self {
        let headers = message
            .headers()
            .map(|headers| headers.iter().map(|header| (header.key.to_owned(), header.value.map(<[u8]>::to_vec))).collect())
            .unwrap_or_default();
        Self {
            dead_letter_topic: message.topic().to_owned(),
            partition: message.partition(),
            offset: message.offset(),
            key: message.key().map(<[u8]>::to_vec),
            value: message.payload().map(<[u8]>::to_vec),
            headers,
        }
    }

    /// Returns the value of the last header named `key` as text, when present and UTF-8.
    fn header_text(&self, key: &str) -> Option<&str> {
        self.headers
            .iter()
            .rev()
            .find(|(name, _)| name == key)
            .and_then(|(_, value)| value.as_deref())
            .and_then(|value| std::str::from_utf8(value).ok())
    }

    /// Returns the topic the record was dead-lettered from: its `dlq-original-topic`
    /// header, else the dead-letter topic's name without `.dlq`.
    fn original_topic(&self) -> String {
        match self.header_text(DLQ_ORIGINAL_TOPIC) {
            Some(topic) if !topic.is_empty() => topic.to_owned(),
            _ => self.dead_letter_topic.strip_suffix(DEAD_LETTER_SUFFIX).unwrap_or(&self.dead_letter_topic).to_owned(),
        }
    }

    /// Returns where this dead letter sits, as `topic@partition:offset`.
    fn position(&self) -> String {
        format!("{}@{}:{}", self.dead_letter_topic, self.partition, self.offset)
    }

    /// Returns the headers of the replayed record: the original ones in their order, less
    /// every `dlq-*` header and the staged-import headers, plus `dlq-replayed-from` naming
    /// this dead letter. A record of a staged import was dead-lettered while its import was
    /// applied; replayed with its `import-id` it would be passed over as part of an import
    /// whose commit marker lies behind it, and never applied.
    fn replay_headers(&self) -> Vec<(String, Option<Vec<u8>>)> {
        let mut headers: Vec<(String, Option<Vec<u8>>)> = self
            .headers
            .iter()
            .filter(|(name, _)| {
                !name.starts_with(DEAD_LETTER_HEADER_PREFIX) && ![IMPORT_ID, IMPORT_COMMITTED, IMPORT_FIRST_OFFSET].contains(&name.as_str())
            })
            .cloned()
            .collect();
        headers.push((DLQ_REPLAYED_FROM.to_owned(), Some(self.position().into_bytes())));
        headers
    }

    /// Returns the row `dlq ls --json` prints for this dead letter. Partitions and offsets
    /// are numbers; a missing or malformed header is `null`.
    fn to_json_row(&self) -> serde_json::Value {
        json!({
            "dlq_topic": self.dead_letter_topic,
            "partition": self.partition,
            "offset": self.offset,
            "original_topic": self.original_topic(),
            "original_partition": self.header_text(DLQ_ORIGINAL_PARTITION).and_then(|text| text.parse::<i32>().ok()),
            "original_offset": self.header_text(DLQ_ORIGINAL_OFFSET).and_then(|text| text.parse::<i64>().ok()),
            "projection": self.header_text(DLQ_PROJECTION),
            "event_type": self.header_text(EVENT_TYPE),
            "event_id": self.header_text(EVENT_ID),
            "failed_at": self.header_text(DLQ_FAILED_AT),
            "sqlstate": self.header_text(DLQ_SQLSTATE),
            "reason": self.header_text(DLQ_ERROR),
            "detail": self.header_text(DLQ_DETAIL),
            "key": self.key.as_deref().map(|key| String::from_utf8_lossy(key).into_owned()),
        })
    }
}

/// Returns the base name of `topic`'s dead-letter topic: `chat.events` and
/// `chat.events.dlq` both give `chat.events.dlq`.
fn dead_letter_topic_base(topic: &str) -> anyhow::Result<String> {
    let original = topic.strip_suffix(DEAD_LETTER_SUFFIX).unwrap_or(topic);
    if original.trim().is_empty() {
        return Err(invalid_argument(format!("{topic:?} names no topic: give one like chat.events")));
    }
    Ok(dead_letter_topic(original))
}

/// Which records of a dead-letter topic to read: all of them, or the one at a position.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Selection {
    All,
    /// The record at `offset`; `partition` may be left out when the topic has only one.
    One {
        partition: Option<i32>,
        offset: i64,
    },
}

async fn list(endpoints: &Endpoints, topic: Option<&str>, json: bool) -> anyhow::Result<()> {
    let dead_letter_topics = match topic {
        Some(topic) => vec![endpoints.topic(&dead_letter_topic_base(topic)?)],
        None => {
            let reader_config = endpoints.kafka_reader_config();
            let prefix = endpoints.topic_prefix.clone();
            tokio::task::spawn_blocking(move || dead_letter_topics_with_prefix(&reader_config, &prefix)).await??
        }
    };
    let reader_config = endpoints.kafka_reader_config();
    let dead_letters = tokio::task::spawn_blocking(move || read_dead_letters(&reader_config, &dead_letter_topics, Selection::All)).await??;
    if json {
        crate::output::print_json(&serde_json::Value::Array(dead_letters.iter().map(DeadLetter::to_json_row).collect()));
        return Ok(());
    }
    if dead_letters.is_empty() {
        outln!("no dead letters");
        return Ok(());
    }
    for line in dead_letter_table(&dead_letters) {
        outln!("{line}");
    }
    Ok(())
}

/// Returns the lines of `dlq ls`'s table: a header, then one row per dead letter, each
/// column as wide as its widest cell, missing values as `-`, the reason last and unpadded.
fn dead_letter_table(dead_letters: &[DeadLetter]) -> Vec<String> {
    const HEADER: [&str; 9] =
        ["DLQ TOPIC", "PART", "OFFSET", "ORIGINAL (TOPIC/PARTITION@OFFSET)", "PROJECTION", "EVENT TYPE", "FAILED AT", "SQLSTATE", "REASON"];
    const RIGHT_ALIGNED: [bool; 9] = [false, true, true, false, false, false, false, false, false];
    let mut rows: Vec<[String; 9]> = vec![HEADER.map(str::to_owned)];
    for dead_letter in dead_letters {
        let row = dead_letter.to_json_row();
        let text = |field: &str| match &row[field] {
            serde_json::Value::Null => "-".to_owned(),
            serde_json::Value::String(text) => text.clone(),
            other => other.to_string(),
        };
        rows.push([
            dead_letter.dead_letter_topic.clone(),
            dead_letter.partition.to_string(),
            dead_letter.offset.to_string(),
            format!("{}/{}@{}", text("original_topic"), text("original_partition"), text("original_offset")),
            text("projection"),
            text("event_type"),
            text("failed_at"),
            text("sqlstate"),
            text("reason"),
        ]);
    }
    let mut widths = [0usize; 9];
    for row in &rows {
        for (width, cell) in widths.iter_mut().zip(row) {
            *width = (*width).max(cell.chars().count());
        }
    }
    rows.iter()
        .map(|row| {
            let cells: Vec<String> = row
                .iter()
                .enumerate()
                .map(|(column, cell)| match column {
                    8 => cell.clone(),
                    _ if RIGHT_ALIGNED[column] => format!("{cell:>width$}", width = widths[column]),
                    _ => format!("{cell:<width$}", width = widths[column]),
                })
                .collect();
            cells.join("  ")
        })
        .collect()
}

/// Returns the full names of every dead-letter topic under `prefix`, sorted.
fn dead_letter_topics_with_prefix(reader_config: &rdkafka::ClientConfig, prefix: &str) -> anyhow::Result<Vec<String>> {
    let consumer: BaseConsumer = reader_config.create()?;
    let brokers = reader_config.get("bootstrap.servers").unwrap_or_default().to_owned();
    let metadata = consumer.fetch_metadata(None, KAFKA_REQUEST_TIMEOUT).with_context(|| format!("cannot reach Kafka at {brokers}"))?;
    let mut names: Vec<String> = metadata
        .topics()
        .iter()
        .map(|topic| topic.name())
        .filter(|name| name.starts_with(prefix) && name.ends_with(DEAD_LETTER_SUFFIX) && !name.starts_with("__"))
        .map(str::to_owned)
        .collect();
    names.sort();
    Ok(names)
}

/// Reads the `selection` of `dead_letter_topics` (full names; exactly one for
/// [`Selection::One`]) with one consumer, from the low watermark of each partition up to the
/// high watermark it had when the read began, then stops: records arriving meanwhile are
/// left for the next run. Returns them by topic, partition and offset. Blocking; run it off
/// the async threads.
fn read_dead_letters(reader_config: &rdkafka::ClientConfig, dead_letter_topics: &[String], selection: Selection) -> anyhow::Result<Vec<DeadLetter>> {
    let brokers = reader_config.get("bootstrap.servers").unwrap_or_default().to_owned();
    let unreachable = || format!("cannot reach Kafka at {brokers}");
    // A partition's end is reported when the read reaches it, so control records (markers
    // of transactions, never delivered) cannot keep the read waiting for an offset.
    let consumer: BaseConsumer = reader_config.clone().set("enable.partition.eof", "true").create()?;

    // The first offset past what to read, by topic and partition; a partition leaves the
    // map when its read is done.
    let mut end_offsets: BTreeMap<(String, i32), i64> = BTreeMap::new();
    let mut assignment = TopicPartitionList::new();
    for dead_letter_topic in dead_letter_topics {
        let metadata = consumer.fetch_metadata(Some(dead_letter_topic), KAFKA_REQUEST_TIMEOUT).with_context(unreachable)?;
        let partitions: Vec<i32> = metadata
            .topics()
            .iter()
            .filter(|topic| topic.name() == dead_letter_topic)
            .flat_map(|topic| topic.partitions().iter().map(|partition| partition.id()))
            .collect();
        if partitions.is_empty() {
            return Err(not_found(format!("topic {dead_letter_topic} does not exist (see `chatvault topics ls`)")));
        }
        for partition in partitions_to_read(dead_letter_topic, &partitions, selection)? {
            let (low_watermark, high_watermark) =
                consumer.fetch_watermarks(dead_letter_topic, partition, KAFKA_REQUEST_TIMEOUT).with_context(unreachable)?;
            let (start_offset, end_offset) = match selection {
                Selection::All => (low_watermark, high_watermark),
                Selection::One { offset, .. } if (low_watermark..high_watermark).contains(&offset) => (offset, offset + 1),
                Selection::One { offset, .. } => {
                    return Err(not_found(format!(
                        "no dead letter at {dead_letter_topic}@{partition}:{offset} (the partition holds offsets {low_watermark} to {})",
                        high_watermark - 1
                    )));
                }
            };
            if start_offset < end_offset {
                assignment.add_partition_offset(dead_letter_topic, partition, Offset::Offset(start_offset))?;
                end_offsets.insert((dead_letter_topic.clone(), partition), end_offset);
            }
        }
    }
    if end_offsets.is_empty() {
        return Ok(Vec::new());
    }
    consumer.assign(&assignment)?;

    let mut dead_letters = Vec::new();
    let mut last_answer = Instant::now();
    while !end_offsets.is_empty() {
        let Some(polled) = consumer.poll(Duration::from_millis(500)) else {
            if last_answer.elapsed() > KAFKA_SILENCE_LIMIT {
                let waiting: Vec<String> = end_offsets.keys().map(|(topic, partition)| format!("{topic}@{partition}")).collect();
                return Err(coded_error(
                    tonic::Code::Unavailable,
                    format!("no answer from Kafka at {brokers} for {}s while reading {}", KAFKA_SILENCE_LIMIT.as_secs(), waiting.join(", ")),
                ));
            }
            continue;
        };
        last_answer = Instant::now();
        match polled {
            Ok(message) => {
                let position = (message.topic().to_owned(), message.partition());
                let Some(&end_offset) = end_offsets.get(&position) else {
                    continue;
                };
                if message.offset() < end_offset {
                    dead_letters.push(DeadLetter::from_message(&message));
                }
                if message.offset() + 1 >= end_offset {
                    end_offsets.remove(&position);
                }
            }
            Err(KafkaError::PartitionEOF(partition)) => {
                // librdkafka names the partition only; with several topics, every topic's
                // partition of that number may be at its end, or not: look at the positions.
                let positions = consumer.position()?;
                end_offsets.retain(|(topic, assigned_partition), end_offset| {
                    let reached = positions
                        .find_partition(topic, *assigned_partition)
                        .and_then(|element| element.offset().to_raw())
                        .is_some_and(|next_offset| next_offset >= *end_offset);
                    !(*assigned_partition == partition && reached)
                });
            }
            Err(error) => return Err(anyhow::Error::new(error).context("reading dead letters")),
        }
    }
    if let Selection::One { offset, .. } = selection {
        // The offset may hold a transaction marker rather than a record.
        dead_letters.retain(|dead_letter| dead_letter.offset == offset);
        if dead_letters.is_empty() {
            return Err(not_found(format!("no dead letter at offset {offset} of {}", dead_letter_topics.join(", "))));
        }
    }
    dead_letters.sort_by(|left, right| {
        (&left.dead_letter_topic, left.partition, left.offset).cmp(&(&right.dead_letter_topic, right.partition, right.offset))
    });
    Ok(dead_letters)
}

/// Returns which of `partitions` (of `dead_letter_topic`) `selection` reads.
fn partitions_to_read(dead_letter_topic: &str, partitions: &[i32], selection: Selection) -> anyhow::Result<Vec<i32>> {
    match selection {
        Selection::All => Ok(partitions.to_vec()),
        Selection::One { partition: Some(partition), .. } if partitions.contains(&partition) => Ok(vec![partition]),
        Selection::One { partition: Some(partition), .. } => {
            Err(not_found(format!("{dead_letter_topic} has no partition {partition} (it has {})", partitions.len())))
        }
        Selection::One { partition: None, .. } if partitions.len() == 1 => Ok(partitions.to_vec()),
        Selection::One { partition: None, .. } => {
            Err(invalid_argument(format!("{dead_letter_topic} has {} partitions: say which with --partition", partitions.len())))
        }
    }
}

/// Where one replayed record landed.
#[derive(Debug)]
struct ReplayedRecord {
    replayed_from: String,
    topic: String,
    partition: i32,
    offset: i64,
}

async fn replay(endpoints: &Endpoints, topic: &str, position: Option<(Option<i32>, i64)>, json: bool) -> anyhow::Result<()> {
    let dead_letter_topic = endpoints.topic(&dead_letter_topic_base(topic)?);
    let selection = match position {
        Some((partition, offset)) => Selection::One { partition, offset },
        None => Selection::All,
    };
    let reader_config = endpoints.kafka_reader_config();
    let topics_to_read = vec![dead_letter_topic.clone()];
    let dead_letters = tokio::task::spawn_blocking(move || read_dead_letters(&reader_config, &topics_to_read, selection)).await??;

    let producer = chatvault_common::kafka::idempotent_producer(&endpoints.kafka_config()?, "chatvault-cli-dlq-replay")?;
    let original_topics: Vec<String> = dead_letters.iter().map(DeadLetter::original_topic).collect();
    // Every record is queued, in dead-letter order, before any delivery is awaited; the
    // idempotent producer keeps that order within each partition through retries.
    let mut deliveries = Vec::with_capacity(dead_letters.len());
    let mut failure: Option<(String, KafkaError)> = None;
    for (dead_letter, original_topic) in dead_letters.iter().zip(&original_topics) {
        let mut headers = OwnedHeaders::new_with_capacity(dead_letter.headers.len() + 1);
        for (key, value) in dead_letter.replay_headers() {
            headers = headers.insert(Header { key: &key, value: value.as_deref() });
        }
        let mut record = FutureRecord::<[u8], [u8]>::to(original_topic).headers(headers);
        if let Some(key) = &dead_letter.key {
            record = record.key(key.as_slice());
        }
        if let Some(value) = &dead_letter.value {
            record = record.payload(value.as_slice());
        }
        match producer.send_result(record) {
            Ok(delivery) => deliveries.push((dead_letter, original_topic, delivery)),
            Err((error, _)) => {
                failure = Some((dead_letter.position(), error));
                break;
            }
        }
    }
    let mut replayed = Vec::with_capacity(deliveries.len());
    for (dead_letter, original_topic, delivery) in deliveries {
        match delivery.await {
            Ok(Ok(delivered)) => replayed.push(ReplayedRecord {
                replayed_from: dead_letter.position(),
                topic: original_topic.clone(),
                partition: delivered.partition,
                offset: delivered.offset,
            }),
            Ok(Err((error, _))) => {
                failure.get_or_insert((dead_letter.position(), error));
            }
            // The producer dropped the delivery report: it is shutting down.
            Err(_canceled) => {
                failure.get_or_insert((dead_letter.position(), KafkaError::Canceled));
            }
        }
    }
    if let Some((position, error)) = failure {
        let message = format!("replayed {} of {} dead letters of {dead_letter_topic}; {position} failed", replayed.len(), dead_letters.len());
        return Err(anyhow::Error::new(error).context(message));
    }

    if json {
        let records: Vec<_> = replayed
            .iter()
            .map(|record| json!({ "replayed_from": record.replayed_from, "topic": record.topic, "partition": record.partition, "offset": record.offset }))
            .collect();
        crate::output::print_json(&json!({ "dlq_topic": dead_letter_topic, "replayed": replayed.len(), "records": records }));
        return Ok(());
    }
    for record in &replayed {
        outln!("{} -> {}@{}:{}", record.replayed_from, record.topic, record.partition, record.offset);
    }
    outln!("replayed {} dead letter(s) of {dead_letter_topic}", replayed.len());
    Ok(())
}

#[cfg(test)]
mod tests {
    use chatvault_common::envelope::{CONTENT_TYPE, OCCURRED_AT, PRODUCER, PROTOBUF_CONTENT_TYPE, TRACEPARENT};

    use super::*;

    fn header(key: &str, value: &str) -> (String, Option<Vec<u8>>) {
        (key.to_owned(), Some(value.as_bytes().to_vec()))
    }

    fn dead_letter_of_a_message() -> DeadLetter {
        DeadLetter {
            dead_letter_topic: "test.a1.chat.events.dlq".to_owned(),
            partition: 0,
            offset: 7,
            key: Some(b"-1001234567890".to_vec()),
            value: Some(vec![0x12, 0x03, 0x08, 0x01, 0x00]),
            headers: vec![
                header(EVENT_TYPE, "chatvault.chat.v1.MessagePosted"),
                header(EVENT_ID, "0190a6e4-7b7e-7c8e-9d2a-3f1e2d4c5b6a"),
                header(OCCURRED_AT, "2026-11-22T10:00:00.000000Z"),
                header(PRODUCER, "ingest"),
                header(CONTENT_TYPE, PROTOBUF_CONTENT_TYPE),
                header(TRACEPARENT, "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"),
                header(IMPORT_ID, "0190a6e4-0000-7000-8000-000000000001"),
                header(DLQ_ERROR, "invalid byte sequence for encoding \"UTF8\": 0x00"),
                header(DLQ_SQLSTATE, "22021"),
                header(DLQ_DETAIL, "the text holds a NUL"),
                header(DLQ_PROJECTION, "storage-chat-events"),
                header(DLQ_ORIGINAL_TOPIC, "test.a1.chat.events"),
                header(DLQ_ORIGINAL_PARTITION, "2"),
                header(DLQ_ORIGINAL_OFFSET, "1234"),
                header(DLQ_FAILED_AT, "2026-11-22T10:00:01.000000Z"),
            ],
        }
    }

    #[test]
    fn a_topic_and_its_dead_letter_topic_name_the_same_dead_letter_topic() {
        assert_eq!(dead_letter_topic_base("chat.events").expect("topic"), "chat.events.dlq");
        assert_eq!(dead_letter_topic_base("chat.events.dlq").expect("dlq topic"), "chat.events.dlq");
        assert!(dead_letter_topic_base(".dlq").is_err());
        assert!(dead_letter_topic_base("").is_err());
    }

    #[test]
    fn every_dead_letter_header_starts_with_the_dropped_prefix() {
        for key in
            [DLQ_ERROR, DLQ_SQLSTATE, DLQ_DETAIL, DLQ_PROJECTION, DLQ_ORIGINAL_TOPIC, DLQ_ORIGINAL_PARTITION, DLQ_ORIGINAL_OFFSET, DLQ_FAILED_AT]
        {
            assert!(key.starts_with(DEAD_LETTER_HEADER_PREFIX), "{key}");
        }
    }

    #[test]
    fn rows_carry_the_failure_and_the_origin() {
        let row = dead_letter_of_a_message().to_json_row();
        assert_eq!(row["dlq_topic"], "test.a1.chat.events.dlq");
        assert_eq!(row["partition"], 0);
        assert_eq!(row["offset"], 7);
        assert_eq!(row["original_topic"], "test.a1.chat.events");
        assert_eq!(row["original_partition"], 2);
        assert_eq!(row["original_offset"], 1234);
        assert_eq!(row["projection"], "storage-chat-events");
        assert_eq!(row["event_type"], "chatvault.chat.v1.MessagePosted");
        assert_eq!(row["failed_at"], "2026-11-22T10:00:01.000000Z");
        assert_eq!(row["sqlstate"], "22021");
        assert_eq!(row["reason"], "invalid byte sequence for encoding \"UTF8\": 0x00");
        assert_eq!(row["detail"], "the text holds a NUL");
        assert_eq!(row["key"], "-1001234567890");
    }

    #[test]
    fn a_dead_letter_without_origin_headers_goes_back_to_the_topic_it_is_named_after() {
        let mut dead_letter = dead_letter_of_a_message();
        dead_letter.headers.retain(|(key, _)| !key.starts_with(DEAD_LETTER_HEADER_PREFIX) || key == DLQ_ERROR);
        assert_eq!(dead_letter.original_topic(), "test.a1.chat.events");
        let row = dead_letter.to_json_row();
        assert_eq!(row["original_partition"], serde_json::Value::Null);
        assert_eq!(row["sqlstate"], serde_json::Value::Null);
        assert_eq!(row["reason"], "invalid byte sequence for encoding \"UTF8\": 0x00");
    }

    #[test]
    fn the_table_fits_its_widest_cells_and_ends_with_the_reason() {
        let first = dead_letter_of_a_message();
        let mut second = dead_letter_of_a_message();
        second.offset = 12_345;
        second.headers.retain(|(key, _)| key != DLQ_SQLSTATE);
        let lines = dead_letter_table(&[first, second]);
        assert_eq!(lines.len(), 3);
        assert!(lines[0].starts_with("DLQ TOPIC                PART  OFFSET  ORIGINAL (TOPIC/PARTITION@OFFSET)  PROJECTION "), "{}", lines[0]);
        assert!(
            lines[1].starts_with("test.a1.chat.events.dlq     0       7  test.a1.chat.events/2@1234         storage-chat-events"),
            "{}",
            lines[1]
        );
        assert!(lines[1].ends_with("  22021     invalid byte sequence for encoding \"UTF8\": 0x00"), "{}", lines[1]);
        assert!(
            lines[2].contains("   12345  ") && lines[2].ends_with("  -         invalid byte sequence for encoding \"UTF8\": 0x00"),
            "{}",
            lines[2]
        );
    }

    #[test]
    fn replay_keeps_the_envelope_drops_the_failure_and_the_import_and_names_its_source() {
        let dead_letter = dead_letter_of_a_message();
        let headers = dead_letter.replay_headers();
        let keys: Vec<&str> = headers.iter().map(|(key, _)| key.as_str()).collect();
        assert_eq!(keys, vec![EVENT_TYPE, EVENT_ID, OCCURRED_AT, PRODUCER, CONTENT_TYPE, TRACEPARENT, DLQ_REPLAYED_FROM]);
        assert_eq!(headers[..6], dead_letter.headers[..6]);
        assert_eq!(headers[6].1.as_deref(), Some("test.a1.chat.events.dlq@0:7".as_bytes()));
    }
}
