//! `chatvault … | head -1`: when stdout's reader goes away, the CLI ends quietly with the
//! status of a process killed by SIGPIPE, without a panic or a backtrace.

use std::process::Stdio;
use std::time::Duration;

use chatvault_common::envelope::{CONTENT_TYPE, JSON_CONTENT_TYPE};
use rdkafka::message::{Header, OwnedHeaders};
use rdkafka::producer::FutureRecord;
use tokio::io::AsyncBufReadExt;

use crate::helpers::CliUnderTest;

/// Far more output than a pipe holds (64 KiB on Linux), so the CLI is still writing when
/// the reader goes away.
const RECORDS: usize = 4000;

#[tokio::test]
async fn a_reader_that_goes_away_ends_the_cli_quietly() {
    let cli = CliUnderTest::with_fresh_topics().await;
    let topic = cli.topic("audit.logs");
    let producer = cli.producer();
    let line = serde_json::json!({ "level": "INFO", "service": "ingest", "fields": { "message": "x".repeat(300) } }).to_string();
    let mut deliveries = Vec::with_capacity(RECORDS);
    for _ in 0..RECORDS {
        let headers = OwnedHeaders::new().insert(Header { key: CONTENT_TYPE, value: Some(JSON_CONTENT_TYPE) });
        let record = FutureRecord::<[u8], [u8]>::to(&topic).key(b"ingest".as_slice()).payload(line.as_bytes()).headers(headers);
        deliveries.push(producer.send_result(record).map_err(|(error, _)| error).expect("queue the record"));
    }
    for delivery in deliveries {
        delivery.await.expect("delivery report").map_err(|(error, _)| error).expect("delivered");
    }

    let limit = RECORDS.to_string();
    let mut child = cli
        .command(&["topics", "tail", "audit.logs", "--from-beginning", "--max", &limit, "--idle-timeout", "30"])
        .env("RUST_BACKTRACE", "1")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn chatvault");
    let mut stdout = tokio::io::BufReader::new(child.stdout.take().expect("stdout"));
    let mut first_line = String::new();
    stdout.read_line(&mut first_line).await.expect("read the first line");
    let first: serde_json::Value = serde_json::from_str(&first_line).expect("the first line is JSON");
    assert_eq!(first["topic"], topic.as_str());
    // `head -1` exits here.
    drop(stdout);

    let output = tokio::time::timeout(Duration::from_secs(90), child.wait_with_output()).await.expect("chatvault ends").expect("wait");
    assert_eq!(String::from_utf8_lossy(&output.stderr), "", "nothing on stderr: no panic, no backtrace");
    assert_eq!(output.status.code(), Some(141), "the status of a process ended by SIGPIPE");
}
