//! `chatvault topics tail` decodes each record as its content-type header says: the JSON
//! log lines that log shipping sends to `audit.logs`, and protobuf events.

use chatvault_common::envelope::Envelope;
use chatvault_common::log_shipping::{self, LogShippingConfig};
use chatvault_proto::chat::v1::{chat_event, ChatEvent, ChatImported};
use prost::Message as _;
use rdkafka::producer::FutureRecord;
use tracing_subscriber::layer::SubscriberExt;

use crate::helpers::CliUnderTest;

#[tokio::test]
async fn log_lines_shipped_to_audit_logs_are_printed_as_json() {
    let cli = CliUnderTest::with_fresh_topics().await;
    let marker = format!("cli tail test {}", uuid::Uuid::new_v4().simple());
    let shipping = LogShippingConfig { brokers: cli.kafka.brokers.clone(), topic: cli.topic("audit.logs") };
    let subscriber = tracing_subscriber::registry().with(log_shipping::layer("ingest", Some(&shipping)));
    tracing::subscriber::with_default(subscriber, || {
        tracing::info!(imported_messages = 42_u64, "{marker}");
    });
    // The subscriber is gone: the shipping thread flushes the line and ends.

    let output = cli.run(&["topics", "tail", "audit.logs", "--from-beginning", "--max", "1", "--idle-timeout", "60"]).await;
    assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
    let stdout = String::from_utf8_lossy(&output.stdout);
    let lines: Vec<&str> = stdout.lines().collect();
    assert_eq!(lines.len(), 1, "{stdout}");
    let record: serde_json::Value = serde_json::from_str(lines[0]).expect("one JSON line");
    assert_eq!(record["topic"], cli.topic("audit.logs").as_str());
    assert_eq!(record["key"], "ingest");
    assert_eq!(record["headers"]["content-type"], "application/json");
    assert_eq!(record["headers"]["event-type"], "log.INFO");
    assert_eq!(record["value"]["service"], "ingest");
    assert_eq!(record["value"]["level"], "INFO");
    assert_eq!(record["value"]["fields"]["message"], marker.as_str());
    assert_eq!(record["value"]["fields"]["imported_messages"], 42);
}

#[tokio::test]
async fn protobuf_events_are_still_decoded() {
    let cli = CliUnderTest::with_fresh_topics().await;
    let topic = cli.topic("chat.events");
    let import_id = uuid::Uuid::new_v4().to_string();
    let event = ChatEvent {
        event: Some(chat_event::Event::ChatImported(ChatImported {
            chat_id: -1_001_234_567_890,
            name: Some("Release team".to_owned()),
            chat_type: "private_supergroup".to_owned(),
            import_id: import_id.clone(),
            ..Default::default()
        })),
    };
    let value = event.encode_to_vec();
    let headers = Envelope::new("chatvault.chat.v1.ChatImported", "ingest", None).to_headers();
    let record = FutureRecord::<[u8], [u8]>::to(&topic).key(b"-1001234567890".as_slice()).payload(&value).headers(headers);
    cli.produce(&cli.producer(), record).await;

    let output = cli.run(&["topics", "tail", "chat.events", "--from-beginning", "--max", "1", "--idle-timeout", "60"]).await;
    assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
    let record: serde_json::Value = serde_json::from_slice(&output.stdout).expect("one JSON line");
    assert_eq!(record["headers"]["content-type"], "application/x-protobuf");
    assert_eq!(record["value"]["chatImported"]["chatId"], "-1001234567890");
    assert_eq!(record["value"]["chatImported"]["name"], "Release team");
    assert_eq!(record["value"]["chatImported"]["importId"], import_id.as_str());
}
