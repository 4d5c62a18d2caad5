//! Restoring a file from a backup through ingest's `UploadFile` with a `restore` identity,
//! authentication on: the file keeps its id, owner and upload time and downloads byte for
//! byte; bytes that do not match the backup's hash are refused and leave no part behind;
//! only admins may restore.

use std::time::Duration;

use chatvault_proto::ingest::v1::{upload_file_request, RestoredFileIdentity, UploadFileRequest, UploadFileResponse, UploadMetadata};
use chatvault_proto::storage::v1::{download_file_response, DownloadFileRequest, FileInfo, ListFilesRequest, RegisterNodeRequest, StatFileRequest};
use tonic::Code;

use crate::accounts::{authorized, minted_token};
use crate::files_support::{random_bytes, FilesPlatform, TestNode};
use crate::helpers::wait_until;

/// Ingest and storage with auth on and `count` nodes (at least 4) that ingest already
/// places parts on: one part more than 2 per node (fault tolerance 1) needs 4 nodes.
async fn platform_with_nodes(count: usize, admin: &str) -> (FilesPlatform, Vec<TestNode>) {
    let platform = FilesPlatform::start(&[("CHATVAULT_AUTH", "on")]).await;
    let mut nodes = Vec::new();
    for _ in 0..count {
        let node = TestNode::start().await;
        let request = RegisterNodeRequest { address: node.address.to_string() };
        platform.files.clone().register_node(authorized(request, admin)).await.expect("the admin registers a node");
        nodes.push(node);
    }
    let placing = wait_until(Duration::from_secs(30), || async {
        upload(&platform, admin, "probe.bin", b"probe".to_vec(), None).await.is_ok_and(|stored| stored.fault_tolerance >= 1)
    })
    .await;
    assert!(placing, "ingest places parts on the nodes");
    (platform, nodes)
}

/// Uploads `bytes` with `token`, as a restore when `restore` is given.
async fn upload(
    platform: &FilesPlatform,
    token: &str,
    name: &str,
    bytes: Vec<u8>,
    restore: Option<RestoredFileIdentity>,
) -> Result<UploadFileResponse, tonic::Status> {
    let metadata = UploadMetadata { name: name.to_owned(), content_type: "application/x-test".to_owned(), restore, folder_date: String::new() };
    let mut messages = vec![UploadFileRequest { message: Some(upload_file_request::Message::Metadata(metadata)) }];
    let bytes = bytes::Bytes::from(bytes);
    for start in (0..bytes.len()).step_by(256 << 10) {
        let end = (start + (256 << 10)).min(bytes.len());
        messages.push(UploadFileRequest { message: Some(upload_file_request::Message::Chunk(bytes.slice(start..end))) });
    }
    platform.uploads.clone().upload_file(authorized(futures::stream::iter(messages), token)).await.map(tonic::Response::into_inner)
}

/// Downloads a file with `token`; returns its info and bytes.
async fn download(platform: &FilesPlatform, token: &str, file_id: &str) -> Result<(FileInfo, Vec<u8>), tonic::Status> {
    let request = DownloadFileRequest { file_id: file_id.to_owned(), consistency_token: None };
    let mut stream = platform.files.clone().download_file(authorized(request, token)).await?.into_inner();
    let (mut info, mut bytes) = (None, Vec::new());
    while let Some(message) = stream.message().await? {
        match message.message {
            Some(download_file_response::Message::Info(file)) => info = Some(file),
            Some(download_file_response::Message::Chunk(chunk)) => bytes.extend_from_slice(&chunk),
            None => {}
        }
    }
    Ok((info.ok_or_else(|| tonic::Status::internal("no info message"))?, bytes))
}

/// Returns the distinct part files of `file_id` the nodes hold (a part the rebalancer is
/// moving may sit on two nodes for a moment).
fn parts_on_nodes(nodes: &[TestNode], file_id: &str) -> usize {
    let names: std::collections::BTreeSet<String> = nodes
        .iter()
        .flat_map(|node| node.part_files())
        .filter_map(|path| path.file_name().map(|name| name.to_string_lossy().into_owned()))
        .filter(|name| name.contains(file_id))
        .collect();
    names.len()
}

/// 2021-03-04T05:06:07.089Z, a day that is not today.
const RESTORED_UPLOAD_MS: i64 = 1_614_834_367_089;

#[tokio::test]
async fn a_restored_file_keeps_its_identity_and_downloads_byte_identical() {
    let (admin, alice) = (minted_token("root", "admin"), minted_token("alice", "user"));
    let (platform, nodes) = platform_with_nodes(4, &admin).await;
    let bytes = random_bytes((2 << 20) + 13);
    // The hash a backup records is the one ingest reports for the bytes.
    let original = upload(&platform, &alice, "original.bin", bytes.clone(), None).await.expect("alice uploads");

    let identity = RestoredFileIdentity {
        file_id: uuid::Uuid::now_v7().to_string(),
        owner: "alice".to_owned(),
        uploaded_at_unix_ms: RESTORED_UPLOAD_MS,
        sha256: original.sha256.to_uppercase(),
    };
    let restored = upload(&platform, &admin, "report.pdf", bytes.clone(), Some(identity.clone())).await.expect("the admin restores");
    assert_eq!(restored.file_id, identity.file_id);
    assert_eq!(restored.upload_date, "2021-03-04");
    assert_eq!(restored.sha256, original.sha256);
    assert_eq!(restored.size, bytes.len() as u64);
    assert_eq!(parts_on_nodes(&nodes, &identity.file_id), 8, "every data and parity part is stored");

    let stat = StatFileRequest { file_id: identity.file_id.clone(), consistency_token: restored.consistency_token.clone() };
    let info = platform.files.clone().stat_file(authorized(stat, &alice)).await.expect("the owner sees the restored file").into_inner();
    assert_eq!(
        (info.owner.as_str(), info.uploaded_at_unix_ms, info.upload_date.as_str(), info.name.as_str()),
        ("alice", RESTORED_UPLOAD_MS, "2021-03-04", "report.pdf")
    );
    let (downloaded_info, downloaded) = download(&platform, &alice, &identity.file_id).await.expect("alice downloads");
    assert_eq!(downloaded_info.file_id, identity.file_id);
    assert!(downloaded == bytes, "the restored file differs from the original bytes");
    let listed = platform
        .files
        .clone()
        .list_files(authorized(ListFilesRequest { date: "2021-03-04".to_owned(), consistency_token: None }, &alice))
        .await
        .expect("ListFiles")
        .into_inner()
        .files;
    assert_eq!(listed.iter().map(|file| file.file_id.as_str()).collect::<Vec<_>>(), vec![identity.file_id.as_str()], "listed under its old date");

    // Its parts are on the nodes now: restoring the id again would overwrite a live file.
    let again = upload(&platform, &admin, "report.pdf", bytes, Some(identity.clone())).await.expect_err("restored twice");
    assert_eq!(again.code(), Code::AlreadyExists, "{again:?}");
    assert_eq!(parts_on_nodes(&nodes, &identity.file_id), 8, "the refused restore left the live parts alone");
}

#[tokio::test]
async fn bytes_that_do_not_match_the_backup_hash_are_refused_and_leave_no_parts() {
    let admin = minted_token("root", "admin");
    let (platform, nodes) = platform_with_nodes(4, &admin).await;
    let expected = upload(&platform, &admin, "expected.bin", random_bytes(50_000), None).await.expect("upload");
    let identity = RestoredFileIdentity {
        file_id: uuid::Uuid::now_v7().to_string(),
        owner: "bob".to_owned(),
        uploaded_at_unix_ms: RESTORED_UPLOAD_MS,
        sha256: expected.sha256,
    };
    let corrupt = random_bytes((1 << 20) + 5);
    let refused = upload(&platform, &admin, "corrupt.bin", corrupt, Some(identity.clone())).await.expect_err("the hash differs");
    assert_eq!(refused.code(), Code::DataLoss, "{refused:?}");
    assert!(refused.message().contains("hash") && refused.message().contains("nothing was stored"), "{}", refused.message());

    let settled = wait_until(Duration::from_secs(10), || async {
        parts_on_nodes(&nodes, &identity.file_id) == 0
            && nodes.iter().all(|node| std::fs::read_dir(node.data_dir.path().join("tmp")).map(|entries| entries.count() == 0).unwrap_or(true))
    })
    .await;
    assert!(settled, "a refused restore leaves no parts and no temporary files on the nodes");
    let stat = StatFileRequest { file_id: identity.file_id.clone(), consistency_token: None };
    let unknown = platform.files.clone().stat_file(authorized(stat, &admin)).await.expect_err("nothing was published");
    assert_eq!(unknown.code(), Code::NotFound);
}

#[tokio::test]
async fn only_admins_restore_and_the_identity_is_checked() {
    let (admin, alice) = (minted_token("root", "admin"), minted_token("alice", "user"));
    let (platform, nodes) = platform_with_nodes(4, &admin).await;
    let identity = RestoredFileIdentity {
        file_id: uuid::Uuid::now_v7().to_string(),
        owner: "alice".to_owned(),
        uploaded_at_unix_ms: RESTORED_UPLOAD_MS,
        sha256: "0".repeat(64),
    };
    let denied = upload(&platform, &alice, "mine.bin", b"abc".to_vec(), Some(identity.clone())).await.expect_err("a user restores");
    assert_eq!(denied.code(), Code::PermissionDenied, "{denied:?}");
    assert!(denied.message().contains("restoring a file"), "{}", denied.message());

    let invalid = [
        RestoredFileIdentity { file_id: "../../etc/passwd".to_owned(), ..identity.clone() },
        RestoredFileIdentity { file_id: uuid::Uuid::new_v4().to_string(), ..identity.clone() },
        RestoredFileIdentity { owner: "  ".to_owned(), ..identity.clone() },
        RestoredFileIdentity { sha256: "abc".to_owned(), ..identity.clone() },
        RestoredFileIdentity { sha256: "g".repeat(64), ..identity.clone() },
    ];
    for bad in invalid {
        let refused = upload(&platform, &admin, "x.bin", b"abc".to_vec(), Some(bad.clone())).await.expect_err("invalid identity");
        assert_eq!(refused.code(), Code::InvalidArgument, "{bad:?}: {refused:?}");
    }
    assert_eq!(parts_on_nodes(&nodes, &identity.file_id), 0);
    // Without a restore identity a user's upload is an ordinary one.
    upload(&platform, &alice, "mine.bin", b"abc".to_vec(), None).await.expect("a user uploads");
}
