//! `chatvault topics ls|tail`: lists topics and prints their records as JSON lines, each
//! value decoded as its `content-type` header says: JSON as it is, protobuf with the topic's
//! event message.

use std::collections::BTreeMap;
use std::time::Duration;

use anyhow::Context;
use chatvault_common::envelope::{CONTENT_TYPE, JSON_CONTENT_TYPE, PROTOBUF_CONTENT_TYPE};
use prost_reflect::{DescriptorPool, DynamicMessage, MessageDescriptor};
use rdkafka::consumer::{BaseConsumer, Consumer, StreamConsumer};
use rdkafka::message::{Headers, Message};
use rdkafka::{ClientConfig, Offset, TopicPartitionList};
use serde_json::json;

use super::Endpoints;
use crate::error_code::not_found;
use crate::output::outln;

#[derive(Debug, clap::Args)]
pub(crate) struct TopicsArgs {
    #[command(subcommand)]
    command: TopicsCommand,
}

#[derive(Debug, clap::Subcommand)]
enum TopicsCommand {
    /// List topics with their partitions and record counts.
    Ls,
    /// Print a topic's records as JSON lines: JSON values as they are, protobuf values decoded.
    Tail {
        /// The topic, like chat.events (the configured prefix is added).
        topic: String,
        /// Start at the oldest record instead of waiting for new ones.
        #[arg(long)]
        from_beginning: bool,
        /// Stop after this many records.
        #[arg(long)]
        max: Option<u64>,
        /// Stop after this many seconds without a new record.
        #[arg(long)]
        idle_timeout: Option<u64>,
    },
}

/// The protobuf message of each topic's record values.
const TOPIC_MESSAGES: &[(&str, &str)] = &[
    ("chat.events", "chatvault.chat.v1.ChatEvent"),
    ("files.events", "chatvault.files.v1.FileEvent"),
    ("storage.nodes", "chatvault.storage.v1.NodeEvent"),
    ("users.events", "chatvault.users.v1.UserEvent"),
];

pub(crate) async fn run(endpoints: &Endpoints, args: TopicsArgs, json: bool) -> anyhow::Result<()> {
    match args.command {
        TopicsCommand::Ls => list_topics(endpoints, json).await,
        TopicsCommand::Tail { topic, from_beginning, max, idle_timeout } => {
            tail_topic(endpoints, &topic, from_beginning, max, idle_timeout.map(Duration::from_secs)).await
        }
    }
}

async fn list_topics(endpoints: &Endpoints, json: bool) -> anyhow::Result<()> {
    let brokers = endpoints.kafka_brokers.clone();
    let prefix = endpoints.topic_prefix.clone();
    let rows = tokio::task::spawn_blocking(move || -> anyhow::Result<Vec<(String, usize, i64)>> {
        let consumer: BaseConsumer = ClientConfig::new().set("bootstrap.servers", &brokers).create()?;
        let metadata = consumer.fetch_metadata(None, Duration::from_secs(10)).with_context(|| format!("cannot reach Kafka at {brokers}"))?;
        let mut rows = Vec::new();
        for topic in metadata.topics() {
            if topic.name().starts_with("__") || !topic.name().starts_with(&prefix) {
                continue;
            }
            let mut records = 0i64;
            for partition in topic.partitions() {
                let (low, high) = consumer.fetch_watermarks(topic.name(), partition.id(), Duration::from_secs(10))?;
                records += high - low;
            }
            rows.push((topic.name().to_owned(), topic.partitions().len(), records));
        }
        rows.sort();
        Ok(rows)
    })
    .await??;
    if json {
        let values: Vec<_> =
            rows.iter().map(|(name, partitions, records)| json!({ "topic": name, "partitions": partitions, "offsets_span": records })).collect();
        crate::output::print_json(&serde_json::Value::Array(values));
    } else {
        outln!("{:<40} {:>10} {:>12}", "TOPIC", "PARTITIONS", "OFFSETS");
        for (name, partitions, records) in rows {
            outln!("{name:<40} {partitions:>10} {records:>12}");
        }
    }
    Ok(())
}

async fn tail_topic(
    endpoints: &Endpoints,
    topic_base: &str,
    from_beginning: bool,
    max: Option<u64>,
    idle_timeout: Option<Duration>,
) -> anyhow::Result<()> {
    let topic = endpoints.topic(topic_base);
    let pool = DescriptorPool::decode(chatvault_proto::FILE_DESCRIPTOR_SET).context("loading the event descriptors")?;
    let base_for_lookup = topic_base.strip_suffix(".dlq").unwrap_or(topic_base);
    let descriptor = TOPIC_MESSAGES.iter().find(|(name, _)| *name == base_for_lookup).and_then(|(_, message)| pool.get_message_by_name(message));

    let consumer: StreamConsumer = endpoints.kafka_reader_config().create()?;
    let metadata_topic = topic.clone();
    let partitions: Vec<i32> = {
        let metadata = consumer
            .fetch_metadata(Some(&metadata_topic), Duration::from_secs(10))
            .with_context(|| format!("cannot reach Kafka at {}", endpoints.kafka_brokers))?;
        metadata.topics().iter().flat_map(|described| described.partitions().iter().map(|partition| partition.id())).collect()
    };
    if partitions.is_empty() {
        return Err(not_found(format!("topic {topic} does not exist (see `chatvault topics ls`)")));
    }
    let mut assignment = TopicPartitionList::new();
    for partition in partitions {
        let offset = if from_beginning { Offset::Beginning } else { Offset::End };
        assignment.add_partition_offset(&topic, partition, offset)?;
    }
    consumer.assign(&assignment)?;

    let mut printed = 0u64;
    while max.is_none_or(|max| printed < max) {
        let received = match idle_timeout {
            Some(limit) => match tokio::time::timeout(limit, consumer.recv()).await {
                Ok(received) => received,
                Err(_) => break,
            },
            None => consumer.recv().await,
        };
        let record = received?;
        let headers: BTreeMap<String, String> = record
            .headers()
            .map(|headers| {
                headers
                    .iter()
                    .map(|header| (header.key.to_owned(), header.value.map(|value| String::from_utf8_lossy(value).into_owned()).unwrap_or_default()))
                    .collect()
            })
            .unwrap_or_default();
        let value = value_as_json(record.payload(), headers.get(CONTENT_TYPE).map(String::as_str), descriptor.as_ref());
        crate::output::print_json(&json!({
            "topic": record.topic(),
            "partition": record.partition(),
            "offset": record.offset(),
            "key": record.key().map(|key| String::from_utf8_lossy(key).into_owned()),
            "headers": headers,
            "value": value,
        }));
        printed += 1;
    }
    Ok(())
}

/// Returns a record's value as JSON, decoded as its content type says: JSON values
/// (`application/json`, the log lines of `audit.logs`) as they are; protobuf values
/// (`application/x-protobuf`, or no content type) with `descriptor`, the topic's event
/// message; anything else as `{"bytes": <length>, "content_type": "<type>"}`. A value that
/// is not what its content type says becomes `{"undecodable": "<why>", "bytes": <length>}`.
fn value_as_json(payload: Option<&[u8]>, content_type: Option<&str>, descriptor: Option<&MessageDescriptor>) -> serde_json::Value {
    let Some(payload) = payload else {
        return serde_json::Value::Null;
    };
    let undecodable = |why: String| json!({ "undecodable": why, "bytes": payload.len() });
    // `application/json; charset=utf-8` is JSON too.
    let media_type = content_type.map(|content_type| content_type.split(';').next().unwrap_or_default().trim().to_ascii_lowercase());
    match media_type.as_deref() {
        Some(JSON_CONTENT_TYPE) => serde_json::from_slice(payload).unwrap_or_else(|error| undecodable(error.to_string())),
        None | Some(PROTOBUF_CONTENT_TYPE) => match descriptor {
            Some(descriptor) => match DynamicMessage::decode(descriptor.clone(), payload) {
                Ok(message) => serde_json::to_value(&message).unwrap_or_else(|error| undecodable(error.to_string())),
                Err(error) => undecodable(error.to_string()),
            },
            // Log lines shipped before their producer tagged them application/json say
            // protobuf but hold a JSON object; they stay in audit.logs until retention.
            None => serde_json::from_slice::<serde_json::Value>(payload)
                .ok()
                .filter(serde_json::Value::is_object)
                .unwrap_or_else(|| json!({ "bytes": payload.len() })),
        },
        Some(other) => json!({ "bytes": payload.len(), "content_type": other }),
    }
}

#[cfg(test)]
mod tests {
    use prost::Message as _;

    use super::*;

    fn chat_event_descriptor() -> MessageDescriptor {
        let pool = DescriptorPool::decode(chatvault_proto::FILE_DESCRIPTOR_SET).expect("descriptors");
        pool.get_message_by_name("chatvault.chat.v1.ChatEvent").expect("ChatEvent")
    }

    #[test]
    fn json_values_are_printed_as_json() {
        let line = br#"{"level":"INFO","service":"ingest","fields":{"message":"import done"}}"#;
        let value = value_as_json(Some(line), Some(JSON_CONTENT_TYPE), None);
        assert_eq!(value["service"], "ingest");
        assert_eq!(value["fields"]["message"], "import done");
        let with_charset = value_as_json(Some(b"[1,2]"), Some("Application/JSON; charset=utf-8"), None);
        assert_eq!(with_charset, json!([1, 2]));
    }

    #[test]
    fn protobuf_values_are_decoded_with_the_topic_message() {
        let event = chatvault_proto::chat::v1::ChatEvent {
            event: Some(chatvault_proto::chat::v1::chat_event::Event::ChatImported(chatvault_proto::chat::v1::ChatImported {
                chat_id: -1_001_234_567_890,
                chat_type: "private_supergroup".to_owned(),
                ..Default::default()
            })),
        };
        let descriptor = chat_event_descriptor();
        let value = value_as_json(Some(&event.encode_to_vec()), Some(PROTOBUF_CONTENT_TYPE), Some(&descriptor));
        assert_eq!(value["chatImported"]["chatType"], "private_supergroup");
        assert_eq!(value["chatImported"]["chatId"], "-1001234567890");
        let without_content_type = value_as_json(Some(&event.encode_to_vec()), None, Some(&descriptor));
        assert_eq!(without_content_type, value);
    }

    #[test]
    fn values_that_are_not_what_they_claim_are_marked_undecodable() {
        let value = value_as_json(Some(b"not json"), Some(JSON_CONTENT_TYPE), None);
        assert_eq!(value["bytes"], 8);
        assert!(value["undecodable"].is_string());
        let descriptor = chat_event_descriptor();
        let garbage = value_as_json(Some(&[0xff, 0xff, 0xff]), Some(PROTOBUF_CONTENT_TYPE), Some(&descriptor));
        assert!(garbage["undecodable"].is_string(), "{garbage}");
    }

    #[test]
    fn json_log_lines_tagged_protobuf_before_the_fix_still_read_as_json() {
        let value = value_as_json(Some(br#"{"level":"WARN"}"#), Some(PROTOBUF_CONTENT_TYPE), None);
        assert_eq!(value["level"], "WARN");
        assert_eq!(value_as_json(Some(b"\x08\x01"), Some(PROTOBUF_CONTENT_TYPE), None), json!({ "bytes": 2 }));
    }

    #[test]
    fn other_content_types_and_missing_values() {
        assert_eq!(value_as_json(Some(b"hello"), Some("text/plain"), None), json!({ "bytes": 5, "content_type": "text/plain" }));
        assert_eq!(value_as_json(None, Some(JSON_CONTENT_TYPE), None), serde_json::Value::Null);
    }
}
