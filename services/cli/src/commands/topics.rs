//! `chatvault topics ls|tail`: lists topics and prints their records as JSON lines, with
//! the protobuf values decoded.

use std::collections::BTreeMap;
use std::time::Duration;

use anyhow::{bail, Context};
use prost_reflect::{DescriptorPool, DynamicMessage};
use rdkafka::consumer::{BaseConsumer, Consumer, StreamConsumer};
use rdkafka::message::{Headers, Message};
use rdkafka::{ClientConfig, Offset, TopicPartitionList};
use serde_json::json;

use super::Endpoints;

#[derive(Debug, clap::Args)]
pub(crate) struct TopicsArgs {
    #[command(subcommand)]
    command: TopicsCommand,
}

#[derive(Debug, clap::Subcommand)]
enum TopicsCommand {
    /// List topics with their partitions and record counts.
    Ls,
    /// Print a topic's records as JSON lines, protobuf values decoded.
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
        let metadata = consumer
            .fetch_metadata(None, Duration::from_secs(10))
            .with_context(|| format!("cannot reach Kafka at {brokers}"))?;
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
        let values: Vec<_> = rows
            .iter()
            .map(|(name, partitions, records)| json!({ "topic": name, "partitions": partitions, "offsets_span": records }))
            .collect();
        crate::output::print_json(&serde_json::Value::Array(values));
    } else {
        println!("{:<40} {:>10} {:>12}", "TOPIC", "PARTITIONS", "OFFSETS");
        for (name, partitions, records) in rows {
            println!("{name:<40} {partitions:>10} {records:>12}");
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
    let topic = format!("{}{}", endpoints.topic_prefix, topic_base);
    let pool = DescriptorPool::decode(chatvault_proto::FILE_DESCRIPTOR_SET).context("loading the event descriptors")?;
    let base_for_lookup = topic_base.strip_suffix(".dlq").unwrap_or(topic_base);
    let descriptor = TOPIC_MESSAGES
        .iter()
        .find(|(name, _)| *name == base_for_lookup)
        .and_then(|(_, message)| pool.get_message_by_name(message));

    let consumer: StreamConsumer = ClientConfig::new()
        .set("bootstrap.servers", &endpoints.kafka_brokers)
        .set("group.id", format!("chatvault-cli-tail-{}", uuid_like_suffix()))
        .set("enable.auto.commit", "false")
        .set("isolation.level", "read_committed")
        .create()?;
    let metadata_topic = topic.clone();
    let partitions: Vec<i32> = {
        let metadata = consumer.fetch_metadata(Some(&metadata_topic), Duration::from_secs(10))?;
        metadata.topics().iter().flat_map(|described| described.partitions().iter().map(|partition| partition.id())).collect()
    };
    if partitions.is_empty() {
        bail!("topic {topic} does not exist (see `chatvault topics ls`)");
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
        let value = match (record.payload(), &descriptor) {
            (Some(payload), Some(descriptor)) => match DynamicMessage::decode(descriptor.clone(), payload) {
                Ok(message) => serde_json::to_value(&message)?,
                Err(error) => json!({ "undecodable": error.to_string(), "bytes": payload.len() }),
            },
            (Some(payload), None) => json!({ "bytes": payload.len() }),
            (None, _) => serde_json::Value::Null,
        };
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

fn uuid_like_suffix() -> String {
    format!("{}-{}", std::process::id(), chrono::Utc::now().timestamp_millis())
}
