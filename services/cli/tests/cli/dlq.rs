//! `chatvault dlq ls|replay` against dead letters shaped as the projections write them.

use std::collections::HashMap;

use chatvault_common::envelope::{
    Envelope, DLQ_DETAIL, DLQ_ERROR, DLQ_FAILED_AT, DLQ_ORIGINAL_OFFSET, DLQ_ORIGINAL_PARTITION, DLQ_ORIGINAL_TOPIC, DLQ_PROJECTION,
    DLQ_REPLAYED_FROM, DLQ_SQLSTATE, EVENT_ID, EVENT_TYPE,
};
use rdkafka::message::{Header, Headers, OwnedHeaders};
use rdkafka::producer::FutureRecord;
use rdkafka::Message;

use crate::helpers::{header_text, json_error, CliUnderTest};

/// One dead letter as a test writes it, and what the CLI should report about it.
#[derive(Debug, Clone)]
struct DeadLetterFixture {
    key: String,
    value: Vec<u8>,
    envelope: Envelope,
    original_partition: i32,
    original_offset: i64,
    projection: &'static str,
    sqlstate: Option<&'static str>,
    reason: String,
    failed_at: String,
}

impl DeadLetterFixture {
    fn random(projection: &'static str, sqlstate: Option<&'static str>) -> Self {
        let chat_id = -1_000_000_000_000 - i64::from(rand_u16());
        let value: Vec<u8> = uuid::Uuid::new_v4().as_bytes().iter().chain(uuid::Uuid::new_v4().as_bytes()).copied().collect();
        Self {
            key: chat_id.to_string(),
            value,
            envelope: Envelope::new(
                "chatvault.chat.v1.MessagePosted",
                "ingest",
                Some("00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01".to_owned()),
            ),
            original_partition: i32::from(rand_u16() % 3),
            original_offset: i64::from(rand_u16()),
            projection,
            sqlstate,
            reason: format!("invalid byte sequence for encoding \"UTF8\": 0x00 ({})", uuid::Uuid::new_v4().simple()),
            failed_at: chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Micros, true),
        }
    }

    /// Returns the dead letter's headers: the envelope, then the `dlq-*` ones.
    fn headers(&self, original_topic: &str) -> OwnedHeaders {
        let original_partition = self.original_partition.to_string();
        let original_offset = self.original_offset.to_string();
        let mut headers = self
            .envelope
            .to_headers()
            .insert(Header { key: DLQ_ERROR, value: Some(self.reason.as_str()) })
            .insert(Header { key: DLQ_DETAIL, value: Some("the message text holds a NUL character") })
            .insert(Header { key: DLQ_PROJECTION, value: Some(self.projection) })
            .insert(Header { key: DLQ_ORIGINAL_TOPIC, value: Some(original_topic) })
            .insert(Header { key: DLQ_ORIGINAL_PARTITION, value: Some(original_partition.as_str()) })
            .insert(Header { key: DLQ_ORIGINAL_OFFSET, value: Some(original_offset.as_str()) })
            .insert(Header { key: DLQ_FAILED_AT, value: Some(self.failed_at.as_str()) });
        if let Some(sqlstate) = self.sqlstate {
            headers = headers.insert(Header { key: DLQ_SQLSTATE, value: Some(sqlstate) });
        }
        headers
    }
}

fn rand_u16() -> u16 {
    let bytes = uuid::Uuid::new_v4().into_bytes();
    u16::from_le_bytes([bytes[0], bytes[1]])
}

/// Writes `fixture` to the dead-letter topic of `base_topic`; returns its offset there.
async fn write_dead_letter(cli: &CliUnderTest, base_topic: &str, fixture: &DeadLetterFixture) -> i64 {
    let dead_letter_topic = cli.topic(&format!("{base_topic}.dlq"));
    let record = FutureRecord::<[u8], [u8]>::to(&dead_letter_topic)
        .key(fixture.key.as_bytes())
        .payload(&fixture.value)
        .headers(fixture.headers(&cli.topic(base_topic)));
    let (partition, offset) = cli.produce(&cli.producer(), record).await;
    assert_eq!(partition, 0, "dead-letter topics have one partition");
    offset
}

fn assert_row_describes(row: &serde_json::Value, cli: &CliUnderTest, base_topic: &str, offset: i64, fixture: &DeadLetterFixture) {
    assert_eq!(row["dlq_topic"], cli.topic(&format!("{base_topic}.dlq")).as_str(), "{row}");
    assert_eq!(row["partition"], 0, "{row}");
    assert_eq!(row["offset"], offset, "{row}");
    assert_eq!(row["original_topic"], cli.topic(base_topic).as_str(), "{row}");
    assert_eq!(row["original_partition"], fixture.original_partition, "{row}");
    assert_eq!(row["original_offset"], fixture.original_offset, "{row}");
    assert_eq!(row["projection"], fixture.projection, "{row}");
    assert_eq!(row["event_type"], "chatvault.chat.v1.MessagePosted", "{row}");
    assert_eq!(row["event_id"], fixture.envelope.event_id.to_string().as_str(), "{row}");
    assert_eq!(row["failed_at"], fixture.failed_at.as_str(), "{row}");
    match fixture.sqlstate {
        Some(sqlstate) => assert_eq!(row["sqlstate"], sqlstate, "{row}"),
        None => assert!(row["sqlstate"].is_null(), "{row}"),
    }
    assert_eq!(row["reason"], fixture.reason.as_str(), "{row}");
    assert_eq!(row["key"], fixture.key.as_str(), "{row}");
}

#[tokio::test]
async fn ls_lists_every_dead_letter_with_its_origin_and_failure_and_stops() {
    let cli = CliUnderTest::with_fresh_topics().await;
    let first = DeadLetterFixture::random("storage-chat-events", Some("22021"));
    let second = DeadLetterFixture::random("users-authors", None);
    let of_files = DeadLetterFixture::random("storage-file-events", Some("23505"));
    let first_offset = write_dead_letter(&cli, "chat.events", &first).await;
    let second_offset = write_dead_letter(&cli, "chat.events", &second).await;
    let files_offset = write_dead_letter(&cli, "files.events", &of_files).await;

    let every = cli.run_json(&["dlq", "ls", "--json"]).await;
    let rows = every.as_array().expect("an array of rows");
    assert_eq!(rows.len(), 3, "{every}");
    assert_row_describes(&rows[0], &cli, "chat.events", first_offset, &first);
    assert_row_describes(&rows[1], &cli, "chat.events", second_offset, &second);
    assert_row_describes(&rows[2], &cli, "files.events", files_offset, &of_files);

    for topic in ["chat.events", "chat.events.dlq"] {
        let of_chat_events = cli.run_json(&["dlq", "ls", "--topic", topic, "--json"]).await;
        let rows = of_chat_events.as_array().expect("rows");
        assert_eq!(rows.len(), 2, "--topic {topic}: {of_chat_events}");
        assert_row_describes(&rows[0], &cli, "chat.events", first_offset, &first);
        assert_row_describes(&rows[1], &cli, "chat.events", second_offset, &second);
    }

    // An empty dead-letter topic ends at once with no rows.
    assert_eq!(cli.run_json(&["dlq", "ls", "--topic", "users.events", "--json"]).await, serde_json::json!([]));

    let table = cli.run(&["dlq", "ls", "--topic", "chat.events"]).await;
    assert!(table.status.success());
    let text = String::from_utf8_lossy(&table.stdout);
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines.len(), 3, "a header and two rows:\n{text}");
    assert!(lines[0].starts_with("DLQ TOPIC") && lines[0].ends_with("REASON"), "{text}");
    assert!(lines[1].contains("storage-chat-events") && lines[1].contains("22021") && lines[1].ends_with(&first.reason), "{text}");
    let original = format!("{}/{}@{}", cli.topic("chat.events"), second.original_partition, second.original_offset);
    assert!(lines[2].contains(&original) && lines[2].contains("users-authors"), "{text}");
}

#[tokio::test]
async fn ls_of_a_topic_that_does_not_exist_is_not_found() {
    let cli = CliUnderTest::with_fresh_topics().await;
    let output = cli.run(&["dlq", "ls", "--topic", "no.such.events", "--json"]).await;
    assert_eq!(output.status.code(), Some(1));
    let error = json_error(&output);
    assert_eq!(error["code"], "NOT_FOUND");
    assert!(error["error"].as_str().is_some_and(|message| message.contains(&cli.topic("no.such.events.dlq"))), "{error}");
}

#[tokio::test]
async fn replay_republishes_the_original_records_and_names_their_dead_letters() {
    let cli = CliUnderTest::with_fresh_topics().await;
    let fixtures = [DeadLetterFixture::random("storage-chat-events", Some("22021")), DeadLetterFixture::random("users-authors", None)];
    let mut offsets = Vec::new();
    for fixture in &fixtures {
        offsets.push(write_dead_letter(&cli, "chat.events", fixture).await);
    }
    let dead_letter_topic = cli.topic("chat.events.dlq");

    let replayed = cli.run_json(&["dlq", "replay", "chat.events", "--json"]).await;
    assert_eq!(replayed["replayed"], 2, "{replayed}");
    assert_eq!(replayed["dlq_topic"], dead_letter_topic.as_str());
    assert_eq!(replayed["records"][0]["replayed_from"], format!("{dead_letter_topic}@0:{}", offsets[0]).as_str());
    assert_eq!(replayed["records"][0]["topic"], cli.topic("chat.events").as_str());

    let records = cli.consume(&cli.topic("chat.events"), 2).await;
    let by_key: HashMap<String, &rdkafka::message::OwnedMessage> =
        records.iter().map(|record| (String::from_utf8(record.key().expect("a key").to_vec()).expect("utf-8 key"), record)).collect();
    for (fixture, offset) in fixtures.iter().zip(&offsets) {
        let record = by_key.get(&fixture.key).unwrap_or_else(|| panic!("the record of key {} is back", fixture.key));
        assert_eq!(record.payload(), Some(fixture.value.as_slice()));
        let headers = record.headers().expect("headers");
        let original = fixture.envelope.to_headers();
        for header in original.iter() {
            assert_eq!(chatvault_common::envelope::header_text(headers, header.key).map(str::as_bytes), header.value, "header {}", header.key);
        }
        let dead_letter_headers: Vec<&str> = headers.iter().map(|header| header.key).filter(|key| key.starts_with("dlq-")).collect();
        assert_eq!(dead_letter_headers, vec![DLQ_REPLAYED_FROM], "the dlq-* headers are dropped");
        assert_eq!(header_text(record, DLQ_REPLAYED_FROM), Some(format!("{dead_letter_topic}@0:{offset}").as_str()));
        assert_eq!(header_text(record, EVENT_ID), Some(fixture.envelope.event_id.to_string().as_str()));
        assert_eq!(header_text(record, EVENT_TYPE), Some("chatvault.chat.v1.MessagePosted"));
    }

    // One dead letter by its offset, named by the dead-letter topic this time.
    let second_offset = offsets[1].to_string();
    let one = cli.run_json(&["dlq", "replay", "chat.events.dlq", "--offset", &second_offset, "--json"]).await;
    assert_eq!(one["replayed"], 1, "{one}");
    let records = cli.consume(&cli.topic("chat.events"), 3).await;
    let again: Vec<_> =
        records.iter().filter(|record| header_text(record, EVENT_ID) == Some(fixtures[1].envelope.event_id.to_string().as_str())).collect();
    assert_eq!(again.len(), 2, "the second dead letter was replayed twice in all");
    assert_eq!(records.iter().filter(|record| record.key() == Some(fixtures[0].key.as_bytes())).count(), 1);

    let text = cli.run(&["dlq", "replay", "chat.events", "--offset", &second_offset]).await;
    assert!(text.status.success());
    assert!(String::from_utf8_lossy(&text.stdout).ends_with(&format!("replayed 1 dead letter(s) of {dead_letter_topic}\n")));
}

#[tokio::test]
async fn replay_fails_with_not_found_for_an_offset_that_holds_no_dead_letter() {
    let cli = CliUnderTest::with_fresh_topics().await;
    let fixture = DeadLetterFixture::random("storage-chat-events", Some("22021"));
    let offset = write_dead_letter(&cli, "chat.events", &fixture).await;
    let past_the_end = (offset + 100).to_string();
    let output = cli.run(&["dlq", "replay", "chat.events", "--offset", &past_the_end, "--json"]).await;
    assert_eq!(output.status.code(), Some(1));
    assert!(output.stdout.is_empty());
    assert_eq!(json_error(&output)["code"], "NOT_FOUND");

    // Nothing went to the original topic; an empty dead-letter topic replays nothing.
    let nothing = cli.run_json(&["dlq", "replay", "users.events", "--json"]).await;
    assert_eq!(nothing["replayed"], 0);
    let watermarks = {
        use rdkafka::consumer::{BaseConsumer, Consumer};
        let consumer: BaseConsumer = rdkafka::ClientConfig::new().set("bootstrap.servers", &cli.kafka.brokers).create().expect("consumer");
        let metadata = consumer.fetch_metadata(Some(&cli.topic("chat.events")), std::time::Duration::from_secs(10)).expect("metadata");
        let partitions: Vec<i32> = metadata.topics().iter().flat_map(|topic| topic.partitions().iter().map(|partition| partition.id())).collect();
        partitions
            .iter()
            .map(|partition| {
                consumer.fetch_watermarks(&cli.topic("chat.events"), *partition, std::time::Duration::from_secs(10)).expect("watermarks")
            })
            .collect::<Vec<_>>()
    };
    assert!(watermarks.iter().all(|(low, high)| low == high), "chat.events stays empty: {watermarks:?}");
}
