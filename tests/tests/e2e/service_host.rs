//! What the shared service host gives every service: each gRPC port serves, reflects and
//! reports health for its own services only, a call to another service gets an answer
//! that says where it is served, and every call is counted in `/metrics`.

use chatvault_proto::ingest::v1::ingest_service_client::IngestServiceClient;
use chatvault_proto::ingest::v1::ImportExportRequest;
use chatvault_proto::storage::v1::ListChatsRequest;
use tonic::Code;

use crate::helpers::connect;
use crate::projection_faults::{http_get, Platform};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_port_serves_its_own_services_and_counts_every_call() {
    let platform = Platform::start(&[]).await;

    // The storage port does not pretend to serve ingest: the answer names what it serves.
    let mut ingest_on_storage_port = IngestServiceClient::new(connect(platform.storage_addr).await);
    let status = ingest_on_storage_port
        .import_export(ImportExportRequest { path: "/nonexistent".to_owned(), ..Default::default() })
        .await
        .expect_err("storage does not serve ingest");
    assert_eq!(status.code(), Code::Unimplemented);
    assert!(status.message().contains("chatvault.ingest.v1.IngestService"), "{}", status.message());
    assert!(status.message().contains("chatvault.storage.v1.StorageService"), "{}", status.message());

    // A value the database cannot take (U+0000 in an id) is the request's fault: a clear
    // INVALID_ARGUMENT, never an internal error or SQL.
    let mut files = chatvault_proto::storage::v1::files_service_client::FilesServiceClient::new(connect(platform.storage_addr).await);
    let refused = files
        .stat_file(chatvault_proto::storage::v1::StatFileRequest { file_id: "\u{0}".to_owned(), ..Default::default() })
        .await
        .expect_err("no such file");
    assert_eq!(refused.code(), Code::InvalidArgument, "{refused:?}");
    assert!(!refused.message().contains("postgres") && !refused.message().contains("SQLSTATE"), "{}", refused.message());

    // Reflection lists the port's own services (and health), nothing else.
    let listed = crate::grpc_reflection::run_grpcurl(&["-plaintext", &platform.storage_addr.to_string(), "list"]);
    let services: Vec<&str> = listed.lines().collect();
    assert!(services.contains(&"chatvault.storage.v1.StorageService"), "{listed}");
    assert!(services.contains(&"grpc.health.v1.Health"), "{listed}");
    assert!(!services.iter().any(|service| service.starts_with("chatvault.ingest.") || service.starts_with("chatvault.users.")), "{listed}");

    // Calls are counted by service, method and code.
    for _ in 0..3 {
        platform.storage.clone().list_chats(ListChatsRequest::default()).await.expect("ListChats");
    }
    let (status, metrics) = http_get(platform.storage_http, "/metrics").await;
    assert_eq!(status, 200);
    let counted = |method: &str, code: &str| -> u64 {
        let prefix = format!(r#"chatvault_grpc_requests_total{{code="{code}",method="{method}","#);
        metrics
            .lines()
            .filter(|line| line.starts_with(&prefix) && line.contains(r#"service="chatvault.storage.v1.StorageService""#))
            .filter_map(|line| line.rsplit(' ').next()?.parse::<u64>().ok())
            .sum()
    };
    assert!(counted("ListChats", "OK") >= 3, "{metrics}");
    let unimplemented = metrics.lines().any(|line| {
        line.starts_with("chatvault_grpc_requests_total")
            && line.contains(r#"service="chatvault.ingest.v1.IngestService""#)
            && line.contains(r#"code="UNIMPLEMENTED""#)
    });
    assert!(unimplemented, "the refused call is counted too: {metrics}");
    assert!(
        metrics.contains(r#"chatvault_grpc_request_seconds_count{method="ListChats",service="chatvault.storage.v1.StorageService"}"#),
        "{metrics}"
    );
}
