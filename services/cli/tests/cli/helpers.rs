//! Running the built `chatvault` binary against the local Kafka with a topic prefix of its
//! own, and producing and consuming records there.

use std::path::PathBuf;
use std::process::{Output, Stdio};
use std::time::Duration;

use chatvault_common::config::KafkaConfig;
use rdkafka::consumer::{Consumer, StreamConsumer};
use rdkafka::message::OwnedMessage;
use rdkafka::producer::{FutureProducer, FutureRecord};
use rdkafka::{Message, Offset, TopicPartitionList};

/// How long one run of the binary may take before the test fails.
const RUN_LIMIT: Duration = Duration::from_secs(90);

/// The `chatvault` binary with its own topic prefix (topics created) and an empty config
/// folder, so no stored log-in of the machine leaks in.
#[derive(Debug)]
pub(crate) struct CliUnderTest {
    pub(crate) kafka: KafkaConfig,
    config_home: PathBuf,
}

impl CliUnderTest {
    /// Returns a CLI whose topic prefix no other test uses, with every chatvault topic and
    /// dead-letter topic created under it.
    pub(crate) async fn with_fresh_topics() -> Self {
        let kafka = chatvault_common::test_support::unique_kafka_config();
        chatvault_common::topics::ensure_topics(&kafka).await.expect("create the test topics (is Kafka up? bash scripts/stack.sh up)");
        Self::with_kafka(kafka)
    }

    /// Returns a CLI whose topic prefix no other test uses; no topics are created.
    pub(crate) fn without_topics() -> Self {
        Self::with_kafka(chatvault_common::test_support::unique_kafka_config())
    }

    fn with_kafka(kafka: KafkaConfig) -> Self {
        let config_home = std::env::temp_dir().join(format!("chatvault-cli-test-{}", uuid::Uuid::new_v4().simple()));
        Self { kafka, config_home }
    }

    /// Returns the full name of the topic `base_name`.
    pub(crate) fn topic(&self, base_name: &str) -> String {
        self.kafka.topic(base_name)
    }

    /// Returns the command `chatvault <arguments>` with this test's environment.
    pub(crate) fn command(&self, arguments: &[&str]) -> tokio::process::Command {
        let mut command = tokio::process::Command::new(env!("CARGO_BIN_EXE_chatvault"));
        command
            .args(arguments)
            .env("CHATVAULT_KAFKA_BROKERS", &self.kafka.brokers)
            .env("CHATVAULT_TOPIC_PREFIX", &self.kafka.topic_prefix)
            .env("XDG_CONFIG_HOME", &self.config_home)
            .env_remove("CHATVAULT_TOKEN")
            .stdin(Stdio::null())
            .kill_on_drop(true);
        command
    }

    /// Runs `chatvault <arguments>` to its end and returns its status and output.
    pub(crate) async fn run(&self, arguments: &[&str]) -> Output {
        let output = self.command(arguments).output();
        tokio::time::timeout(RUN_LIMIT, output)
            .await
            .unwrap_or_else(|_| panic!("chatvault {arguments:?} ended within {RUN_LIMIT:?}"))
            .expect("run chatvault")
    }

    /// Runs `chatvault <arguments>`, expects success and returns stdout parsed as one JSON value.
    pub(crate) async fn run_json(&self, arguments: &[&str]) -> serde_json::Value {
        let output = self.run(arguments).await;
        assert!(output.status.success(), "chatvault {arguments:?} failed: {}", String::from_utf8_lossy(&output.stderr));
        serde_json::from_slice(&output.stdout)
            .unwrap_or_else(|error| panic!("stdout of {arguments:?} is JSON ({error}): {}", String::from_utf8_lossy(&output.stdout)))
    }

    /// Returns an idempotent producer to this test's Kafka.
    pub(crate) fn producer(&self) -> FutureProducer {
        chatvault_common::kafka::idempotent_producer(&self.kafka, "chatvault-cli-test").expect("producer")
    }

    /// Produces `record` and waits for its delivery; returns its partition and offset.
    pub(crate) async fn produce(&self, producer: &FutureProducer, record: FutureRecord<'_, [u8], [u8]>) -> (i32, i64) {
        let delivery = producer.send(record, Duration::from_secs(30)).await.unwrap_or_else(|(error, _)| panic!("produce: {error}"));
        (delivery.partition, delivery.offset)
    }

    /// Reads `topic` (a full name) from the beginning until it has returned `count`
    /// records, waiting at most 60 s; returns them in the order read.
    pub(crate) async fn consume(&self, topic: &str, count: usize) -> Vec<OwnedMessage> {
        let group = format!("chatvault-cli-test-{}", uuid::Uuid::new_v4().simple());
        let consumer: StreamConsumer = chatvault_common::kafka::read_committed_consumer(&self.kafka, &group).expect("consumer");
        let metadata = consumer.fetch_metadata(Some(topic), Duration::from_secs(10)).expect("metadata");
        let mut assignment = TopicPartitionList::new();
        for partition in metadata.topics().iter().flat_map(|described| described.partitions()) {
            assignment.add_partition_offset(topic, partition.id(), Offset::Beginning).expect("assignment");
        }
        consumer.assign(&assignment).expect("assign");
        let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
        let mut records = Vec::new();
        while records.len() < count {
            let received = tokio::time::timeout_at(deadline, consumer.recv())
                .await
                .unwrap_or_else(|_| panic!("{topic} returned {} of {count} records within 60 s", records.len()));
            records.push(received.expect("record").detach());
        }
        records
    }
}

impl Drop for CliUnderTest {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.config_home);
    }
}

/// Returns the value of header `key` of `record` as text.
pub(crate) fn header_text<'a>(record: &'a OwnedMessage, key: &str) -> Option<&'a str> {
    record.headers().and_then(|headers| chatvault_common::envelope::header_text(headers, key))
}

/// Parses `stderr` of a `--json` run as the one JSON error object it must be.
pub(crate) fn json_error(output: &Output) -> serde_json::Value {
    let stderr = String::from_utf8_lossy(&output.stderr);
    serde_json::from_str(stderr.trim()).unwrap_or_else(|error| panic!("stderr is one JSON object ({error}): {stderr}"))
}
