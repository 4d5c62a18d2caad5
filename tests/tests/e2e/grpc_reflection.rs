//! `grpcurl` works against every service with no proto files, through server reflection.

use std::process::Command;

use crate::helpers::TestPlatform;

/// Finds grpcurl on PATH or in Go's bin folder (where `scripts/tools.sh` installs it).
fn grpcurl() -> std::path::PathBuf {
    let go_bin = std::env::var("HOME").map(|home| std::path::Path::new(&home).join("go/bin/grpcurl")).ok();
    std::env::var_os("PATH")
        .iter()
        .flat_map(std::env::split_paths)
        .map(|folder| folder.join("grpcurl"))
        .chain(go_bin)
        .find(|candidate| candidate.is_file())
        .expect("grpcurl is installed (scripts/tools.sh installs it)")
}

pub(crate) fn run_grpcurl(arguments: &[&str]) -> String {
    let output = Command::new(grpcurl()).args(arguments).output().expect("grpcurl runs");
    assert!(output.status.success(), "grpcurl {arguments:?} failed: {}", String::from_utf8_lossy(&output.stderr));
    String::from_utf8(output.stdout).expect("utf-8 output")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn grpcurl_lists_and_calls_the_services_through_reflection() {
    let platform = TestPlatform::start().await;
    let ingest = platform.ingest_addr.to_string();
    let storage = platform.storage_addr.to_string();

    let ingest_services = run_grpcurl(&["-plaintext", &ingest, "list"]);
    assert!(ingest_services.contains("chatvault.ingest.v1.IngestService"), "{ingest_services}");
    assert!(ingest_services.contains("grpc.health.v1.Health"), "{ingest_services}");
    let storage_services = run_grpcurl(&["-plaintext", &storage, "list"]);
    assert!(storage_services.contains("chatvault.storage.v1.StorageService"), "{storage_services}");

    let health = run_grpcurl(&["-plaintext", "-d", r#"{"service": "chatvault.storage.v1.StorageService"}"#, &storage, "grpc.health.v1.Health/Check"]);
    assert!(health.contains("SERVING"), "{health}");

    let sample = crate::helpers::fixture("sample-export/result.json");
    let import_request = format!(r#"{{"path": "{}"}}"#, sample.display());
    let updates = run_grpcurl(&["-plaintext", "-d", &import_request, &ingest, "chatvault.ingest.v1.IngestService/ImportExport"]);
    let summary = serde_json::Deserializer::from_str(&updates)
        .into_iter::<serde_json::Value>()
        .filter_map(Result::ok)
        .find_map(|update| update.get("summary").cloned())
        .unwrap_or_else(|| panic!("the stream ends with a summary: {updates}"));
    assert_eq!(summary["messages"], "8", "{summary}");
    let token = summary["consistencyToken"]["value"].as_str().expect("a consistency token");

    let list_request = serde_json::json!({ "consistencyToken": { "value": token } }).to_string();
    let chats = run_grpcurl(&["-plaintext", "-d", &list_request, &storage, "chatvault.storage.v1.StorageService/ListChats"]);
    assert!(chats.contains("Project Alpha"), "{chats}");
    let messages_request = r#"{"chatId": "1234567890", "limit": 2}"#;
    let messages = run_grpcurl(&["-plaintext", "-d", messages_request, &storage, "chatvault.storage.v1.StorageService/GetMessages"]);
    assert!(messages.contains("Hello, team!"), "{messages}");
}
