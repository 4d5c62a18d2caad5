//! With `--json`, every failure is one JSON object on stderr with a gRPC code name, whether
//! the CLI or a service raised it.

use crate::helpers::{json_error, CliUnderTest};

/// Returns an address on this machine where nothing listens.
fn closed_local_url() -> String {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind port 0");
    let address = listener.local_addr().expect("address");
    drop(listener);
    format!("http://{address}")
}

#[tokio::test]
async fn usage_errors_are_invalid_argument_with_the_usage_exit_status() {
    let cli = CliUnderTest::without_topics();
    let output = cli.run(&["messages", "not-a-chat-id", "--json"]).await;
    assert_eq!(output.status.code(), Some(2));
    assert!(output.stdout.is_empty());
    let error = json_error(&output);
    assert_eq!(error["code"], "INVALID_ARGUMENT");
    assert!(error["error"].as_str().is_some_and(|message| message.contains("not-a-chat-id")), "{error}");

    let unknown_flag = cli.run(&["--json", "chats", "--no-such-flag"]).await;
    assert_eq!(unknown_flag.status.code(), Some(2));
    assert_eq!(json_error(&unknown_flag)["code"], "INVALID_ARGUMENT");

    // Without --json, clap's own text stays.
    let text = cli.run(&["messages", "not-a-chat-id"]).await;
    assert_eq!(text.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&text.stderr).starts_with("error: invalid value 'not-a-chat-id'"));
}

#[tokio::test]
async fn arguments_the_cli_refuses_itself_are_invalid_argument() {
    let cli = CliUnderTest::without_topics();
    let output = cli.run(&["files", "get", "--json"]).await;
    assert_eq!(output.status.code(), Some(1));
    let error = json_error(&output);
    assert_eq!(error["code"], "INVALID_ARGUMENT");
    assert_eq!(error["error"], "give either a file id or --date YYYY-MM-DD");

    let bad_date = cli.run(&["messages", "-1001234567890", "--since", "22.11.2026", "--json"]).await;
    assert_eq!(bad_date.status.code(), Some(1));
    assert_eq!(json_error(&bad_date)["code"], "INVALID_ARGUMENT");
}

#[tokio::test]
async fn unreadable_local_files_are_not_found_before_any_connection() {
    let cli = CliUnderTest::without_topics();
    let missing = std::env::temp_dir().join(format!("chatvault-missing-{}", uuid::Uuid::new_v4().simple()));
    let missing_path = missing.to_string_lossy().into_owned();
    // The services' addresses lead nowhere: the path is checked first.
    let unreachable = closed_local_url();

    let import = cli.run(&["import", &missing_path, "--json", "--ingest-url", &unreachable]).await;
    assert_eq!(import.status.code(), Some(1));
    let error = json_error(&import);
    assert_eq!(error["code"], "NOT_FOUND");
    assert!(error["error"].as_str().is_some_and(|message| message.contains(&missing_path)), "{error}");

    let put = cli.run(&["files", "put", &missing_path, "--json", "--ingest-url", &unreachable]).await;
    assert_eq!(put.status.code(), Some(1));
    assert_eq!(json_error(&put)["code"], "NOT_FOUND");
}

#[tokio::test]
async fn a_service_that_cannot_be_reached_is_unavailable() {
    let cli = CliUnderTest::without_topics();
    let unreachable = closed_local_url();
    let output = cli.run(&["chats", "--json", "--storage-url", &unreachable]).await;
    assert_eq!(output.status.code(), Some(1));
    assert!(output.stdout.is_empty());
    let error = json_error(&output);
    assert_eq!(error["code"], "UNAVAILABLE");
    assert!(error["error"].as_str().is_some_and(|message| message.contains(&unreachable)), "{error}");

    // Text mode names the code too.
    let text = cli.run(&["chats", "--storage-url", &unreachable]).await;
    assert!(String::from_utf8_lossy(&text.stderr).starts_with("error (UNAVAILABLE): "));
}

#[tokio::test]
async fn a_topic_that_does_not_exist_is_not_found() {
    let cli = CliUnderTest::without_topics();
    let output = cli.run(&["topics", "tail", "no.such.topic", "--max", "1", "--json"]).await;
    assert_eq!(output.status.code(), Some(1));
    let error = json_error(&output);
    assert_eq!(error["code"], "NOT_FOUND");
    assert!(error["error"].as_str().is_some_and(|message| message.contains(&cli.topic("no.such.topic"))), "{error}");
}
