//! The file console against the real stack, authentication on: date folders with their
//! counts and bytes, renaming (validated, owners and admins only, another account's file
//! answered like a missing one), the share links of an account with their states and
//! revocation by link id, the public DescribeShareLink and OpenShareLink (one password guard
//! with the `/s/` HTTP route), the admin's account listing a page at a time, and closed
//! registration.

use std::time::Duration;

use chatvault_common::config::ServiceConfig;
use chatvault_proto::ingest::v1::{upload_file_request, RestoredFileIdentity, UploadFileRequest, UploadFileResponse, UploadMetadata};
use chatvault_proto::storage::v1::{
    download_file_response, CreateShareLinkRequest, CreateShareLinkResponse, DeleteFileRequest, DescribeShareLinkRequest, DownloadFileResponse,
    FileDate, FileInfo, ListFileDatesRequest, ListFilesRequest, ListShareLinksRequest, OpenShareLinkRequest, RegisterNodeRequest, RenameFileRequest,
    RevokeShareLinkRequest, ShareLinkInfo, StatFileRequest,
};
use chatvault_proto::users::v1::{ListAccountsRequest, RegisterRequest, RegistrationStatusRequest};
use sha2::Digest;
use tonic::{Code, Request, Status};

use crate::accounts::{authorized, minted_token, unique_name, AuthPlatform, ADMIN_PASSWORD, ADMIN_USERNAME};
use crate::files_support::{http_request, random_bytes, FilesPlatform, TestNode};
use crate::helpers::wait_until;

/// Ingest and storage with auth on (and `extra` variables), four nodes ingest already places
/// parts on, and an admin's token.
async fn file_platform(extra: &[(&str, &str)]) -> (FilesPlatform, Vec<TestNode>, String) {
    let mut environment = vec![("CHATVAULT_AUTH", "on")];
    environment.extend_from_slice(extra);
    let platform = FilesPlatform::start(&environment).await;
    let admin = minted_token("root", "admin");
    let mut nodes = Vec::new();
    for _ in 0..4 {
        let node = TestNode::start().await;
        let request = RegisterNodeRequest { address: node.address.to_string() };
        platform.files.clone().register_node(authorized(request, &admin)).await.expect("the admin registers a node");
        nodes.push(node);
    }
    let placing =
        wait_until(Duration::from_secs(30), || async { upload(&platform, &admin, "probe.bin", b"probe".to_vec(), None).await.is_ok() }).await;
    assert!(placing, "ingest places parts on the nodes");
    (platform, nodes, admin)
}

/// Uploads `bytes` as `name` with `token`; a restore (an admin's, keeping `restore`'s owner
/// and upload time) when `restore` is given.
async fn upload(
    platform: &FilesPlatform,
    token: &str,
    name: &str,
    bytes: Vec<u8>,
    restore: Option<RestoredFileIdentity>,
) -> Result<UploadFileResponse, Status> {
    let metadata = UploadMetadata { name: name.to_owned(), content_type: "application/pdf".to_owned(), restore, folder_date: String::new() };
    let mut messages = vec![UploadFileRequest { message: Some(upload_file_request::Message::Metadata(metadata)) }];
    let bytes = bytes::Bytes::from(bytes);
    for start in (0..bytes.len()).step_by(256 << 10) {
        let end = (start + (256 << 10)).min(bytes.len());
        messages.push(UploadFileRequest { message: Some(upload_file_request::Message::Chunk(bytes.slice(start..end))) });
    }
    platform.uploads.clone().upload_file(authorized(futures::stream::iter(messages), token)).await.map(tonic::Response::into_inner)
}

/// Restores `bytes` as a file of `owner` uploaded at `uploaded_at_unix_ms` (a past day).
async fn upload_on_day(platform: &FilesPlatform, admin: &str, owner: &str, uploaded_at_unix_ms: i64, bytes: Vec<u8>) -> UploadFileResponse {
    let identity = RestoredFileIdentity {
        file_id: uuid::Uuid::now_v7().to_string(),
        owner: owner.to_owned(),
        uploaded_at_unix_ms,
        sha256: hex::encode(sha2::Sha256::digest(&bytes)),
    };
    upload(platform, admin, "restored.bin", bytes, Some(identity)).await.expect("the admin restores a file of another day")
}

async fn dates(platform: &FilesPlatform, token: &str) -> Vec<(String, u64, u64)> {
    let dates: Vec<FileDate> =
        platform.files.clone().list_file_dates(authorized(ListFileDatesRequest::default(), token)).await.expect("ListFileDates").into_inner().dates;
    dates.into_iter().map(|date| (date.date, date.file_count, date.total_bytes)).collect()
}

async fn delete(platform: &FilesPlatform, token: &str, file_id: &str) {
    let request = DeleteFileRequest { file_id: file_id.to_owned(), consistency_token: None };
    platform.files.clone().delete_file(authorized(request, token)).await.expect("the owner deletes the file");
}

async fn stat(platform: &FilesPlatform, token: &str, file_id: &str) -> Result<FileInfo, Status> {
    let request = StatFileRequest { file_id: file_id.to_owned(), consistency_token: None };
    platform.files.clone().stat_file(authorized(request, token)).await.map(tonic::Response::into_inner)
}

async fn rename(platform: &FilesPlatform, token: &str, file_id: &str, name: &str) -> Result<FileInfo, Status> {
    let request = RenameFileRequest { file_id: file_id.to_owned(), name: name.to_owned(), consistency_token: None };
    let renamed = platform.files.clone().rename_file(authorized(request, token)).await?.into_inner();
    Ok(renamed.file.expect("the renamed file"))
}

async fn share(platform: &FilesPlatform, token: &str, file_id: &str, expires_in_seconds: u64, password: &str) -> CreateShareLinkResponse {
    let request = CreateShareLinkRequest { file_id: file_id.to_owned(), expires_in_seconds, password: password.to_owned(), consistency_token: None };
    platform.files.clone().create_share_link(authorized(request, token)).await.expect("the owner shares the file").into_inner()
}

async fn share_links(platform: &FilesPlatform, token: &str, file_id: &str) -> Result<Vec<ShareLinkInfo>, Status> {
    let request = ListShareLinksRequest { file_id: file_id.to_owned(), consistency_token: None };
    Ok(platform.files.clone().list_share_links(authorized(request, token)).await?.into_inner().links)
}

/// The hex SHA-256 of a share link's token: its link id.
fn link_id_of(token: &str) -> String {
    hex::encode(sha2::Sha256::digest(token.as_bytes()))
}

/// Opens a share link over gRPC without any account token; returns the info and the bytes.
async fn open_link(platform: &FilesPlatform, token: &str, password: &str) -> Result<(FileInfo, Vec<u8>), Status> {
    let request = OpenShareLinkRequest { token: token.to_owned(), password: password.to_owned() };
    let mut stream = platform.files.clone().open_share_link(request).await?.into_inner();
    let (mut info, mut bytes) = (None, Vec::new());
    while let Some(DownloadFileResponse { message }) = stream.message().await? {
        match message {
            Some(download_file_response::Message::Info(file)) => info = Some(file),
            Some(download_file_response::Message::Chunk(chunk)) => bytes.extend_from_slice(&chunk),
            None => {}
        }
    }
    Ok((info.ok_or_else(|| Status::internal("no info message"))?, bytes))
}

/// 2021-03-04T05:06:07.089Z and 2022-07-08T09:10:11.012Z: days that are not today.
const MARCH_2021_MS: i64 = 1_614_834_367_089;
const JULY_2022_MS: i64 = 1_657_271_411_012;

#[tokio::test]
async fn date_folders_count_and_sum_the_callers_live_files_newest_day_first() {
    let (platform, _nodes, admin) = file_platform(&[]).await;
    let (alice, bob) = (minted_token("alice", "user"), minted_token("bob", "user"));
    let first = upload(&platform, &alice, "a.pdf", random_bytes(10_000), None).await.expect("upload");
    upload(&platform, &alice, "b.pdf", random_bytes(70_001), None).await.expect("upload");
    let gone = upload(&platform, &alice, "c.pdf", random_bytes(3_000), None).await.expect("upload");
    upload(&platform, &bob, "bob.pdf", random_bytes(4_321), None).await.expect("bob uploads");
    upload_on_day(&platform, &admin, "alice", MARCH_2021_MS, random_bytes(5_000)).await;
    upload_on_day(&platform, &admin, "alice", MARCH_2021_MS, random_bytes(6_000)).await;
    let deleted_day = upload_on_day(&platform, &admin, "alice", JULY_2022_MS, random_bytes(1_234)).await;
    delete(&platform, &alice, &gone.file_id).await;
    delete(&platform, &alice, &deleted_day.file_id).await;

    // Deleted files count nowhere: today keeps two files, the July 2022 folder is gone.
    let today = first.upload_date.clone();
    assert_eq!(dates(&platform, &alice).await, vec![(today.clone(), 2, 80_001), ("2021-03-04".to_owned(), 2, 11_000)]);
    assert_eq!(dates(&platform, &bob).await, vec![(today, 1, 4_321)], "each account sees only its own folders");
    let nobody = minted_token("carol", "user");
    assert_eq!(dates(&platform, &nobody).await, Vec::new());
    let anonymous = platform.files.clone().list_file_dates(ListFileDatesRequest::default()).await.expect_err("no token");
    assert_eq!(anonymous.code(), Code::Unauthenticated);
}

#[tokio::test]
async fn renames_are_checked_applied_and_only_for_the_owner_or_an_admin() {
    let (platform, _nodes, admin) = file_platform(&[]).await;
    let (alice, bob) = (minted_token("alice", "user"), minted_token("bob", "user"));
    let bytes = random_bytes(20_000);
    let stored = upload(&platform, &alice, "draft.pdf", bytes.clone(), None).await.expect("upload");

    let request = RenameFileRequest { file_id: stored.file_id.clone(), name: "  Отчёт 2026.pdf ".to_owned(), consistency_token: None };
    let renamed = platform.files.clone().rename_file(authorized(request, &alice)).await.expect("alice renames").into_inner();
    let file = renamed.file.expect("file");
    assert_eq!(
        (file.file_id.as_str(), file.name.as_str(), file.owner.as_str(), file.size),
        (stored.file_id.as_str(), "Отчёт 2026.pdf", "alice", 20_000)
    );
    assert!(renamed.consistency_token.is_some_and(|token| !token.value.is_empty()), "a rename returns a consistency token");
    assert_eq!(stat(&platform, &alice, &stored.file_id).await.expect("stat").name, "Отчёт 2026.pdf");
    let listed = platform
        .files
        .clone()
        .list_files(authorized(ListFilesRequest { date: stored.upload_date.clone(), consistency_token: None }, &alice))
        .await
        .expect("ListFiles")
        .into_inner()
        .files;
    assert_eq!(
        listed.iter().map(|file| (file.file_id.as_str(), file.name.as_str())).collect::<Vec<_>>(),
        vec![(stored.file_id.as_str(), "Отчёт 2026.pdf")]
    );

    for bad in ["", "   ", "a/b.pdf", "a\\b.pdf", "bell\u{7}.pdf", "line\nbreak", ".", &"n".repeat(256)] {
        let refused = rename(&platform, &alice, &stored.file_id, bad).await.expect_err("an invalid name");
        assert_eq!(refused.code(), Code::InvalidArgument, "{bad:?}: {refused:?}");
        assert!(refused.message().starts_with("the new name") || refused.message().contains("not a file name"), "{bad:?}: {}", refused.message());
    }
    assert_eq!(stat(&platform, &alice, &stored.file_id).await.expect("stat").name, "Отчёт 2026.pdf", "refused names change nothing");

    // Bob learns nothing: alice's file answers like an id nobody has.
    let foreign = rename(&platform, &bob, &stored.file_id, "mine.pdf").await.expect_err("bob renames alice's file");
    let missing_id = uuid::Uuid::now_v7().to_string();
    let missing = rename(&platform, &bob, &missing_id, "mine.pdf").await.expect_err("no such file");
    assert_eq!((foreign.code(), missing.code()), (Code::NotFound, Code::NotFound));
    assert_eq!(foreign.message().replace(&stored.file_id, "<id>"), missing.message().replace(&missing_id, "<id>"));

    // An admin renames anyone's file; it stays the owner's, bytes untouched.
    let by_admin = rename(&platform, &admin, &stored.file_id, "final.pdf").await.expect("the admin renames");
    assert_eq!((by_admin.name.as_str(), by_admin.owner.as_str()), ("final.pdf", "alice"));
    let request = chatvault_proto::storage::v1::DownloadFileRequest { file_id: stored.file_id.clone(), consistency_token: None };
    let mut stream = platform.files.clone().download_file(authorized(request, &alice)).await.expect("download").into_inner();
    let (mut info_name, mut downloaded) = (String::new(), Vec::new());
    while let Some(DownloadFileResponse { message }) = stream.message().await.expect("stream") {
        match message {
            Some(download_file_response::Message::Info(info)) => info_name = info.name,
            Some(download_file_response::Message::Chunk(chunk)) => downloaded.extend_from_slice(&chunk),
            None => {}
        }
    }
    assert_eq!(info_name, "final.pdf");
    assert!(downloaded == bytes, "renaming leaves the bytes alone");

    delete(&platform, &alice, &stored.file_id).await;
    let after_delete = rename(&platform, &alice, &stored.file_id, "again.pdf").await.expect_err("a deleted file");
    assert_eq!(after_delete.code(), Code::NotFound);
}

#[tokio::test]
async fn share_links_are_listed_with_their_states_and_revoked_by_id() {
    let (platform, _nodes, admin) = file_platform(&[]).await;
    let (alice, bob) = (minted_token("alice", "user"), minted_token("bob", "user"));
    let report = upload(&platform, &alice, "report.pdf", random_bytes(9_000), None).await.expect("upload");
    let photo = upload(&platform, &alice, "photo.pdf", random_bytes(8_000), None).await.expect("upload");
    let kept = share(&platform, &alice, &report.file_id, 3600, "").await;
    let short = share(&platform, &alice, &report.file_id, 1, "").await;
    let guarded = share(&platform, &alice, &photo.file_id, 3600, "correct horse").await;
    let (kept_id, short_id, guarded_id) = (link_id_of(&kept.token), link_id_of(&short.token), link_id_of(&guarded.token));

    // Revoked by its id from the listing; the token itself is never listed.
    let listed = share_links(&platform, &alice, "").await.expect("alice lists her links");
    assert!(listed.iter().any(|link| link.link_id == kept_id), "{listed:?}");
    let revoke = RevokeShareLinkRequest { link_id: kept_id.to_uppercase(), ..Default::default() };
    platform.files.clone().revoke_share_link(authorized(revoke, &alice)).await.expect("revoked by link id");

    let expired = wait_until(Duration::from_secs(15), || async {
        share_links(&platform, &alice, "").await.is_ok_and(|links| links.iter().any(|link| link.link_id == short_id && link.state == "expired"))
    })
    .await;
    assert!(expired, "the one-second link shows as expired");
    let listed = share_links(&platform, &alice, "").await.expect("alice lists her links");
    let summary: Vec<(&str, &str, &str, &str, bool)> = listed
        .iter()
        .map(|link| (link.link_id.as_str(), link.file_id.as_str(), link.file_name.as_str(), link.state.as_str(), link.has_password))
        .collect();
    assert_eq!(
        summary,
        vec![
            (guarded_id.as_str(), photo.file_id.as_str(), "photo.pdf", "active", true),
            (short_id.as_str(), report.file_id.as_str(), "report.pdf", "expired", false),
            (kept_id.as_str(), report.file_id.as_str(), "report.pdf", "revoked", false),
        ],
        "newest first"
    );
    assert_eq!(listed[0].expires_at_unix_ms, guarded.expires_at_unix_ms);
    assert!(listed.iter().all(|link| link.created_at_unix_ms < link.expires_at_unix_ms && link.link_id != kept.token));

    let of_report: Vec<String> =
        share_links(&platform, &alice, &report.file_id).await.expect("one file").into_iter().map(|link| link.link_id).collect();
    assert_eq!(of_report, vec![short_id.clone(), kept_id.clone()]);
    let of_report_for_admin: Vec<String> = share_links(&platform, &admin, &report.file_id)
        .await
        .expect("an admin lists any file's links")
        .into_iter()
        .map(|link| link.link_id)
        .collect();
    assert_eq!(of_report_for_admin, of_report);
    assert!(share_links(&platform, &admin, "").await.expect("the admin's own links").is_empty());
    assert!(share_links(&platform, &bob, "").await.expect("bob's own links").is_empty());
    assert_eq!(share_links(&platform, &bob, &report.file_id).await.expect_err("alice's file").code(), Code::NotFound);

    // Exactly one of token and link id; another account's link is not found.
    for (token, link_id) in [(String::new(), String::new()), (guarded.token.clone(), guarded_id.clone()), (String::new(), "not-hex".to_owned())] {
        let request = RevokeShareLinkRequest { token, link_id, consistency_token: None };
        let refused = platform.files.clone().revoke_share_link(authorized(request, &alice)).await.expect_err("refused");
        assert_eq!(refused.code(), Code::InvalidArgument, "{refused:?}");
    }
    let by_bob = RevokeShareLinkRequest { link_id: guarded_id.clone(), ..Default::default() };
    assert_eq!(platform.files.clone().revoke_share_link(authorized(by_bob, &bob)).await.expect_err("bob").code(), Code::NotFound);
    assert_eq!(share_links(&platform, &alice, &photo.file_id).await.expect("list")[0].state, "active", "bob's attempt changed nothing");

    // The links of a deleted file go with it.
    delete(&platform, &alice, &photo.file_id).await;
    let remaining: Vec<String> = share_links(&platform, &alice, "").await.expect("list").into_iter().map(|link| link.link_id).collect();
    assert_eq!(remaining, vec![short_id, kept_id]);
}

#[tokio::test]
async fn share_links_open_over_grpc_behind_the_same_checks_as_the_http_route() {
    let (platform, _nodes, _admin) = file_platform(&[("CHATVAULT_STORAGE_SHARE_PASSWORD_FAILURES_PER_MINUTE", "3")]).await;
    let alice = minted_token("alice", "user");
    let bytes = random_bytes(300_017);
    let stored = upload(&platform, &alice, "plans.pdf", bytes.clone(), None).await.expect("upload");
    let open = share(&platform, &alice, &stored.file_id, 3600, "").await;
    let guarded = share(&platform, &alice, &stored.file_id, 3600, "correct horse").await;
    let limited = share(&platform, &alice, &stored.file_id, 3600, "correct horse").await;
    let describe = |token: String| {
        let mut files = platform.files.clone();
        async move { files.describe_share_link(Request::new(DescribeShareLinkRequest { token })).await.map(tonic::Response::into_inner) }
    };

    // No account token anywhere below: the link's token is the credential.
    let shown = describe(open.token.clone()).await.expect("describe an open link");
    assert_eq!(
        (shown.password_required, shown.name.as_str(), shown.size, shown.content_type.as_str(), shown.expires_at_unix_ms),
        (false, "plans.pdf", 300_017, "application/pdf", open.expires_at_unix_ms)
    );
    let hidden = describe(guarded.token.clone()).await.expect("describe a guarded link");
    assert_eq!(
        (hidden.password_required, hidden.name.as_str(), hidden.size, hidden.content_type.as_str(), hidden.expires_at_unix_ms),
        (true, "", 0, "", guarded.expires_at_unix_ms),
        "nothing of the file shows before the password"
    );
    let (info, opened) = open_link(&platform, &open.token, "").await.expect("open a link without a password");
    assert_eq!((info.name.as_str(), info.size), ("plans.pdf", 300_017));
    assert!(opened == bytes, "the open link streams the uploaded bytes");

    let missing = open_link(&platform, &guarded.token, "").await.expect_err("no password");
    assert_eq!(missing.code(), Code::Unauthenticated);
    assert!(missing.message().contains("needs a password"), "{}", missing.message());
    let wrong = open_link(&platform, &guarded.token, "wrong horse").await.expect_err("wrong password");
    assert_eq!((wrong.code(), wrong.message()), (Code::Unauthenticated, "wrong password for this share link"));
    let (info, opened) = open_link(&platform, &guarded.token, "correct horse").await.expect("the right password");
    assert_eq!(info.file_id, stored.file_id);
    assert!(opened == bytes, "the guarded link streams the uploaded bytes");

    // One count of failures per link across both protocols: two wrong over gRPC and one over
    // HTTP use up the three, after which even the right password waits, on either.
    for _ in 0..2 {
        assert_eq!(open_link(&platform, &limited.token, "nope").await.expect_err("wrong").code(), Code::Unauthenticated);
    }
    let over_http = http_request(platform.storage_http, "GET", &limited.path, &[("X-Share-Password", "nope")], b"").await;
    assert_eq!(over_http.status, 401);
    let exhausted = open_link(&platform, &limited.token, "correct horse").await.expect_err("past the limit");
    assert_eq!(exhausted.code(), Code::ResourceExhausted, "{exhausted:?}");
    assert!(exhausted.message().contains("too many wrong passwords"), "{}", exhausted.message());
    let http_after = http_request(platform.storage_http, "GET", &limited.path, &[("X-Share-Password", "correct horse")], b"").await;
    assert_eq!(http_after.status, 429);

    // Unknown, revoked and deleted all answer NOT_FOUND with one message, to both calls.
    let unknown_token = "A".repeat(43);
    let unknown = describe(unknown_token.clone()).await.expect_err("unknown");
    let revoke = RevokeShareLinkRequest { token: open.token.clone(), ..Default::default() };
    platform.files.clone().revoke_share_link(authorized(revoke, &alice)).await.expect("revoke");
    let revoked = describe(open.token.clone()).await.expect_err("revoked");
    let revoked_open = open_link(&platform, &open.token, "").await.expect_err("revoked");
    delete(&platform, &alice, &stored.file_id).await;
    let deleted = describe(guarded.token.clone()).await.expect_err("file deleted");
    let deleted_open = open_link(&platform, &guarded.token, "correct horse").await.expect_err("file deleted");
    for refused in [&revoked, &revoked_open, &deleted, &deleted_open] {
        assert_eq!((refused.code(), refused.message()), (Code::NotFound, unknown.message()), "{refused:?}");
    }
    assert_eq!(unknown.code(), Code::NotFound);
}

#[tokio::test]
async fn share_links_past_their_expiry_are_not_found_over_grpc() {
    let (platform, _nodes, _admin) = file_platform(&[]).await;
    let alice = minted_token("alice", "user");
    let stored = upload(&platform, &alice, "brief.pdf", random_bytes(1_000), None).await.expect("upload");
    let short = share(&platform, &alice, &stored.file_id, 1, "").await;
    let expired = wait_until(Duration::from_secs(15), || async {
        let request = DescribeShareLinkRequest { token: short.token.clone() };
        platform.files.clone().describe_share_link(request).await.is_err_and(|status| status.code() == Code::NotFound)
    })
    .await;
    assert!(expired, "the one-second link stops working");
    assert_eq!(open_link(&platform, &short.token, "").await.expect_err("expired").code(), Code::NotFound);
}

#[tokio::test]
async fn admins_list_every_account_a_page_at_a_time_in_username_order() {
    let platform = AuthPlatform::start().await;
    let open = platform.accounts.clone().registration_status(RegistrationStatusRequest {}).await.expect("public call").into_inner();
    assert!(open.open, "registration is open by default");
    let suffix = unique_name("");
    let mut usernames = vec![ADMIN_USERNAME.to_owned()];
    for prefix in ["Zed", "amy", "Bob", "carl", "Dora"] {
        let username = format!("{prefix}{suffix}");
        platform.register(&username, "correct horse 71").await.expect("registers");
        usernames.push(username);
    }
    usernames.sort_by_key(|username| username.to_lowercase());
    let admin = platform.login(ADMIN_USERNAME, ADMIN_PASSWORD).await.expect("admin logs in").access_token;

    let mut listed = Vec::new();
    let mut pages = 0;
    let mut page_token = String::new();
    loop {
        let request = ListAccountsRequest { limit: 2, page_token: page_token.clone() };
        let page = platform.accounts.clone().list_accounts(authorized(request, &admin)).await.expect("the admin lists accounts").into_inner();
        pages += 1;
        assert!(page.accounts.len() <= 2, "{page:?}");
        listed.extend(page.accounts);
        if page.next_page_token.is_empty() {
            break;
        }
        page_token = page.next_page_token;
        assert!(pages < 10, "the listing ends");
    }
    assert_eq!(pages, 3, "six accounts in pages of two");
    assert_eq!(listed.iter().map(|account| account.username.clone()).collect::<Vec<_>>(), usernames, "every account once, case-insensitive order");
    let zed = listed.iter().find(|account| account.username.starts_with("Zed")).expect("Zed");
    assert_eq!((zed.role.as_str(), zed.email.as_str()), ("user", format!("{}@example.org", zed.username).as_str()));
    assert!(!zed.account_id.is_empty() && zed.created_unix > 0);

    let whole = platform.accounts.clone().list_accounts(authorized(ListAccountsRequest::default(), &admin)).await.expect("default page").into_inner();
    assert_eq!((whole.accounts.len(), whole.next_page_token.as_str()), (6, ""));
    let bad_token = ListAccountsRequest { limit: 2, page_token: "not a token".to_owned() };
    assert_eq!(platform.accounts.clone().list_accounts(authorized(bad_token, &admin)).await.expect_err("bad").code(), Code::InvalidArgument);

    let user = platform.login(&usernames[1], "correct horse 71").await.expect("a user logs in").access_token;
    let denied = platform.accounts.clone().list_accounts(authorized(ListAccountsRequest::default(), &user)).await.expect_err("a user");
    assert_eq!(denied.code(), Code::PermissionDenied);
    assert!(denied.message().contains("admin"), "{}", denied.message());
    let anonymous = platform.accounts.clone().list_accounts(ListAccountsRequest::default()).await.expect_err("no token");
    assert_eq!(anonymous.code(), Code::Unauthenticated);
}

#[tokio::test]
async fn closed_registration_refuses_register_and_says_so() {
    let platform = AuthPlatform::start_with(&[("CHATVAULT_USERS_REGISTRATION", "closed")]).await;
    let status = platform.accounts.clone().registration_status(RegistrationStatusRequest {}).await.expect("public call").into_inner();
    assert!(!status.open);
    let username = unique_name("erin");
    let request = RegisterRequest { username: username.clone(), email: format!("{username}@example.org"), password: "correct horse 72".to_owned() };
    let refused = platform.accounts.clone().register(request).await.expect_err("registration is closed");
    assert_eq!((refused.code(), refused.message()), (Code::FailedPrecondition, "registration is closed on this server"));
    assert_eq!(platform.login(&username, "correct horse 72").await.expect_err("no account").code(), Code::Unauthenticated);
    // The first admin still comes from the configuration, and is the only account.
    let admin = platform.login(ADMIN_USERNAME, ADMIN_PASSWORD).await.expect("the bootstrap admin logs in").access_token;
    let accounts = platform.accounts.clone().list_accounts(authorized(ListAccountsRequest::default(), &admin)).await.expect("list").into_inner();
    assert_eq!(accounts.accounts.iter().map(|account| account.username.as_str()).collect::<Vec<_>>(), vec![ADMIN_USERNAME]);

    // A value that is neither open nor closed stops the service before it connects anything.
    let mut environment = platform.environment.clone();
    environment.insert("CHATVAULT_USERS_REGISTRATION".to_owned(), "invite-only".to_owned());
    let config = ServiceConfig::from_env_map("users", chatvault_users::DEFAULT_PORTS, &environment).expect("users config");
    let error = chatvault_users::App::build(config).await.expect_err("an unknown registration policy");
    let message = error.to_string();
    assert!(message.contains("CHATVAULT_USERS_REGISTRATION") && message.contains("invite-only") && message.contains("`closed`"), "{message}");
}
