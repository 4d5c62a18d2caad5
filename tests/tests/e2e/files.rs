//! The file store end to end: byte-equal round trips over gRPC and REST, downloads with
//! stopped nodes and a corrupt part (rebuilt from parity and rewritten), date folders,
//! delete, share links, and bad input.

use std::time::Duration;

use chatvault_proto::storage::v1::{CreateShareLinkRequest, DeleteFileRequest, DownloadFileRequest, ListFilesRequest, RevokeShareLinkRequest};
use chatvault_proto::storagenode::v1::storage_node_service_client::StorageNodeServiceClient;
use chatvault_proto::storagenode::v1::GetPartRequest;
use tonic::Code;

use super::files_support::{http_request, multipart_body, random_bytes, FilesPlatform};
use super::helpers::{connect, wait_until};

const SIZES: &[usize] = &[0, 1, 5, 6, 7, (1 << 20) + 3, 100 << 20];

#[tokio::test]
async fn round_trips_are_byte_equal_over_grpc_and_rest() {
    let (platform, _nodes) = FilesPlatform::start_with_nodes(8, &[]).await;
    for &size in SIZES {
        let bytes = random_bytes(size);
        let stored = platform.upload_visible(&format!("grpc-{size}.bin"), bytes.clone()).await.expect("gRPC upload succeeds");
        assert_eq!(stored.size, size as u64);
        assert_eq!(stored.fault_tolerance, 2);
        let (info, downloaded) = platform.download(&stored.file_id).await.expect("gRPC download succeeds");
        assert_eq!(info.name, format!("grpc-{size}.bin"));
        assert!(downloaded == bytes, "gRPC round trip of {size} bytes differs");
        let over_rest = http_request(platform.storage_http, "GET", &format!("/api/file/{}", stored.file_id), &[], b"").await;
        assert_eq!(over_rest.status, 200);
        assert!(over_rest.body == bytes, "REST download of {size} bytes differs");
        assert!(over_rest.headers["content-disposition"].contains(&format!("grpc-{size}.bin")));

        let (body, content_type) = multipart_body("file", &format!("rest-{size}.bin"), &bytes);
        let put = http_request(platform.ingest_http, "PUT", "/api/file", &[("Content-Type", &content_type)], &body).await;
        assert_eq!(put.status, 201, "{}", String::from_utf8_lossy(&put.body));
        let answer: serde_json::Value = serde_json::from_slice(&put.body).expect("json answer");
        let rest_id = answer["id"].as_str().expect("id").to_owned();
        let token = answer["consistency_token"].as_str().expect("token").to_owned();
        let visible = chatvault_proto::storage::v1::StatFileRequest {
            file_id: rest_id.clone(),
            consistency_token: Some(chatvault_proto::common::v1::ConsistencyToken { value: token }),
        };
        platform.files.clone().stat_file(visible).await.expect("the REST upload becomes visible");
        let (info, downloaded) = platform.download(&rest_id).await.expect("download of the REST upload");
        assert_eq!(info.name, format!("rest-{size}.bin"));
        assert!(downloaded == bytes, "REST upload of {size} bytes differs");
    }
}

#[tokio::test]
async fn ranges_return_the_requested_bytes() {
    let (platform, _nodes) = FilesPlatform::start_with_nodes(8, &[]).await;
    let bytes = random_bytes((13 << 20) + 17);
    let stored = platform.upload_visible("ranges.bin", bytes.clone()).await.expect("upload");
    let path = format!("/api/file/{}", stored.file_id);
    for (range, start, end) in [
        ("bytes=0-9", 0usize, 10usize),
        ("bytes=6291450-6291460", 6_291_450, 6_291_461),
        ("bytes=-5", bytes.len() - 5, bytes.len()),
        ("bytes=7000000-", 7_000_000, bytes.len()),
    ] {
        let response = http_request(platform.storage_http, "GET", &path, &[("Range", range)], b"").await;
        assert_eq!(response.status, 206, "{range}");
        assert!(response.body == bytes[start..end], "{range} returned other bytes");
    }
    let unsatisfiable = http_request(platform.storage_http, "GET", &path, &[("Range", "bytes=999999999-")], b"").await;
    assert_eq!(unsatisfiable.status, 416);
}

#[tokio::test]
async fn downloads_succeed_with_two_nodes_stopped() {
    let (platform, nodes) = FilesPlatform::start_with_nodes(8, &[]).await;
    let bytes = random_bytes((7 << 20) + 11);
    let stored = platform.upload_visible("survivor.bin", bytes.clone()).await.expect("upload");
    let holding_data: Vec<&super::files_support::TestNode> = nodes
        .iter()
        .filter(|node| {
            node.part_files().iter().any(|path| {
                path.to_string_lossy().ends_with(&format!("{}.0", stored.file_id))
                    || path.to_string_lossy().ends_with(&format!("{}.3", stored.file_id))
            })
        })
        .collect();
    assert_eq!(holding_data.len(), 2, "parts 0 and 3 are on two distinct nodes");
    for node in &holding_data {
        node.stop();
    }
    let (_, downloaded) = platform.download(&stored.file_id).await.expect("download with two nodes down");
    assert!(downloaded == bytes, "rebuilt bytes differ");
}

#[tokio::test]
async fn a_corrupt_part_is_detected_rebuilt_and_rewritten() {
    let (platform, nodes) = FilesPlatform::start_with_nodes(8, &[]).await;
    let bytes = random_bytes((3 << 20) + 5);
    let stored = platform.upload_visible("corrupt.bin", bytes.clone()).await.expect("upload");
    let part_name = format!("{}.1", stored.file_id);
    let (node, path) = nodes
        .iter()
        .find_map(|node| node.part_files().into_iter().find(|path| path.to_string_lossy().ends_with(&part_name)).map(|path| (node, path)))
        .expect("part 1 is on a node");
    let mut on_disk = std::fs::read(&path).expect("reads the part");
    on_disk[1000] ^= 0x55;
    std::fs::write(&path, &on_disk).expect("corrupts the part");

    let node_client = StorageNodeServiceClient::new(connect(node.address).await);
    let read_part_fully = |mut client: StorageNodeServiceClient<tonic::transport::Channel>, part: String| async move {
        let mut stream = client.get_part(GetPartRequest { part_id: part, ..Default::default() }).await?.into_inner();
        while stream.message().await?.is_some() {}
        Ok::<(), tonic::Status>(())
    };
    let corrupt = read_part_fully(node_client.clone(), part_name.clone()).await.expect_err("the node detects the corruption");
    assert_eq!(corrupt.code(), Code::DataLoss);

    let (_, downloaded) = platform.download(&stored.file_id).await.expect("download rebuilds from parity");
    assert!(downloaded == bytes, "rebuilt bytes differ");
    let repaired = wait_until(Duration::from_secs(30), || {
        let client = node_client.clone();
        let part = part_name.clone();
        async move { read_part_fully(client, part).await.is_ok() }
    })
    .await;
    assert!(repaired, "the corrupt part is rewritten on its node");
}

#[tokio::test]
async fn date_folders_list_the_day_and_delete_frees_the_space() {
    let (platform, nodes) = FilesPlatform::start_with_nodes(6, &[]).await;
    let used_before: u64 = futures::future::join_all(nodes.iter().map(|node| node.used_bytes())).await.iter().sum();
    let first = platform.upload_visible("a.txt", random_bytes(3000)).await.expect("upload a");
    let second = platform.upload_visible("b.txt", random_bytes(5 << 20)).await.expect("upload b");
    let today = first.upload_date.clone();
    let listed = platform
        .files
        .clone()
        .list_files(ListFilesRequest { date: today.clone(), consistency_token: second.consistency_token.clone() })
        .await
        .expect("ListFiles")
        .into_inner()
        .files;
    let names: Vec<&str> = listed.iter().map(|file| file.name.as_str()).collect();
    assert_eq!(names, vec!["a.txt", "b.txt"]);
    let other_day =
        platform.files.clone().list_files(ListFilesRequest { date: "2001-01-01".to_owned(), ..Default::default() }).await.expect("ListFiles");
    assert!(other_day.into_inner().files.is_empty());

    let used_with_files: u64 = futures::future::join_all(nodes.iter().map(|node| node.used_bytes())).await.iter().sum();
    assert!(used_with_files > used_before + (5 << 20), "the parts take space");
    platform.files.clone().delete_file(DeleteFileRequest { file_id: second.file_id.clone(), ..Default::default() }).await.expect("delete");
    let gone = platform.download(&second.file_id).await.expect_err("deleted files are gone at once");
    assert_eq!(gone.code(), Code::NotFound);
    let listed_after =
        platform.files.clone().list_files(ListFilesRequest { date: today, ..Default::default() }).await.expect("ListFiles").into_inner().files;
    assert_eq!(listed_after.len(), 1);
    let freed = wait_until(Duration::from_secs(30), || async {
        let used: u64 = futures::future::join_all(nodes.iter().map(|node| node.used_bytes())).await.iter().sum();
        used + (5 << 20) < used_with_files
    })
    .await;
    assert!(freed, "the deleted file's parts are removed from the nodes");
    let part_files: usize =
        nodes.iter().map(|node| node.part_files().iter().filter(|path| path.to_string_lossy().contains(&second.file_id)).count()).sum();
    assert_eq!(part_files, 0);
}

#[tokio::test]
async fn share_links_honour_expiry_password_and_revocation() {
    let (platform, _nodes) = FilesPlatform::start_with_nodes(6, &[]).await;
    let bytes = random_bytes(70_000);
    let stored = platform.upload_visible("shared.bin", bytes.clone()).await.expect("upload");
    let mut files = platform.files.clone();
    let link = |expires: u64, password: &str| CreateShareLinkRequest {
        file_id: stored.file_id.clone(),
        expires_in_seconds: expires,
        password: password.to_owned(),
        consistency_token: None,
    };
    let open = files.create_share_link(link(3600, "")).await.expect("link").into_inner();
    let fetched = http_request(platform.storage_http, "GET", &open.path, &[], b"").await;
    assert_eq!(fetched.status, 200);
    assert!(fetched.body == bytes);

    // Passwords travel in a header or a POST form (security_bounds.rs covers those).
    let guarded = files.create_share_link(link(3600, "s3cret")).await.expect("link").into_inner();
    let without = http_request(platform.storage_http, "GET", &guarded.path, &[], b"").await;
    let wrong = http_request(platform.storage_http, "GET", &guarded.path, &[("X-Share-Password", "nope")], b"").await;
    let right = http_request(platform.storage_http, "GET", &guarded.path, &[("X-Share-Password", "s3cret")], b"").await;
    let by_header = http_request(platform.storage_http, "GET", &guarded.path, &[("x-chatvault-share-password", "s3cret")], b"").await;
    assert_eq!((without.status, wrong.status, right.status, by_header.status), (401, 401, 200, 200));
    assert!(right.body == bytes);

    let short = files.create_share_link(link(1, "")).await.expect("link").into_inner();
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let expired = http_request(platform.storage_http, "GET", &short.path, &[], b"").await;

    files.revoke_share_link(RevokeShareLinkRequest { token: open.token.clone(), ..Default::default() }).await.expect("revoke");
    let revoked = http_request(platform.storage_http, "GET", &open.path, &[], b"").await;
    let unknown = http_request(platform.storage_http, "GET", &format!("/s/{}", "A".repeat(43)), &[], b"").await;
    assert_eq!((expired.status, revoked.status, unknown.status), (404, 404, 404));
    assert_eq!(expired.body, unknown.body, "an expired link answers like an unknown one");
    assert_eq!(revoked.body, unknown.body, "a revoked link answers like an unknown one");

    let foreign = files.create_share_link(link(0, "")).await.expect_err("zero expiry is refused");
    assert_eq!(foreign.code(), Code::InvalidArgument);
}

#[tokio::test]
async fn bad_input_gets_clear_errors_and_leaves_no_parts() {
    let (platform, nodes) = FilesPlatform::start_with_nodes(6, &[("CHATVAULT_INGEST_MAX_FILE_BYTES", "1048576")]).await;
    let parts_before: usize = nodes.iter().map(|node| node.part_files().len()).sum();

    let unknown = platform
        .files
        .clone()
        .download_file(DownloadFileRequest { file_id: uuid::Uuid::now_v7().to_string(), ..Default::default() })
        .await
        .expect_err("unknown id");
    assert_eq!(unknown.code(), Code::NotFound);

    let oversized = platform.upload("big.bin", random_bytes((1 << 20) + 1)).await.expect_err("too large");
    assert_eq!(oversized.code(), Code::ResourceExhausted);
    assert!(oversized.message().contains("maximum"), "{}", oversized.message());

    let empty_stream = platform
        .uploads
        .clone()
        .upload_file(futures::stream::iter(Vec::<chatvault_proto::ingest::v1::UploadFileRequest>::new()))
        .await
        .expect_err("empty upload");
    assert_eq!(empty_stream.code(), Code::InvalidArgument);
    let nameless = platform.upload("", b"abc".to_vec()).await.expect_err("no name");
    assert_eq!(nameless.code(), Code::InvalidArgument);

    let empty_body = http_request(platform.ingest_http, "PUT", "/api/file", &[], b"").await;
    assert_eq!(empty_body.status, 400, "{}", String::from_utf8_lossy(&empty_body.body));
    let (body, content_type) = multipart_body("attachment", "x.bin", b"hello");
    let missing_field = http_request(platform.ingest_http, "PUT", "/api/file", &[("Content-Type", &content_type)], &body).await;
    assert_eq!(missing_field.status, 400);
    assert!(String::from_utf8_lossy(&missing_field.body).contains("`file`"));
    let (body, content_type) = multipart_body("file", "big.bin", &random_bytes(3 << 20));
    let too_big = http_request(platform.ingest_http, "PUT", "/api/file", &[("Content-Type", &content_type)], &body).await;
    assert_eq!(too_big.status, 413);

    let settled = wait_until(Duration::from_secs(10), || async {
        nodes.iter().map(|node| node.part_files().len()).sum::<usize>() == parts_before
            && nodes.iter().all(|node| std::fs::read_dir(node.data_dir.path().join("tmp")).map(|entries| entries.count() == 0).unwrap_or(true))
    })
    .await;
    assert!(settled, "refused uploads leave no parts and no temporary files behind");
}
