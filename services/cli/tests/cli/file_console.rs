//! The file console and account listing commands against stand-in storage and users
//! services on port 0: what each command asks (recorded requests) and what it prints, in
//! text and `--json`, including a share link's download written to disk and paging through
//! every account.

use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::{Arc, Mutex};

use chatvault_proto::storage::v1::files_service_server::{FilesService, FilesServiceServer};
use chatvault_proto::storage::v1::{
    download_file_response, CreateShareLinkRequest, CreateShareLinkResponse, DeleteFileRequest, DeleteFileResponse, DescribeShareLinkRequest,
    DescribeShareLinkResponse, DownloadFileRequest, DownloadFileResponse, FileDate, FileInfo, ListFileDatesRequest, ListFileDatesResponse,
    ListFilesRequest, ListFilesResponse, ListNodesRequest, ListNodesResponse, ListShareLinksRequest, ListShareLinksResponse, OpenShareLinkRequest,
    RegisterNodeRequest, RegisterNodeResponse, RenameFileRequest, RenameFileResponse, RevokeShareLinkRequest, RevokeShareLinkResponse, ShareLinkInfo,
    StatFileRequest,
};
use chatvault_proto::users::v1::accounts_service_server::{AccountsService, AccountsServiceServer};
use chatvault_proto::users::v1::{
    Account, ChangePasswordRequest, ListAccountsRequest, ListAccountsResponse, LoginRequest, LogoutRequest, LogoutResponse, MeRequest,
    RefreshRequest, RegisterRequest, RegistrationStatusRequest, RegistrationStatusResponse, RestoreAccountsResponse, RestoredAccount, SetRoleRequest,
    TokenPair,
};
use serde_json::json;
use tonic::{Request, Response, Status, Streaming};

use crate::helpers::{json_error, CliUnderTest};

/// The bytes the stand-in serves through a share link.
const SHARED_BYTES: &[u8] = b"the shared file's bytes, in two chunks";
const FILE_ID: &str = "0190f3a2-0000-7000-8000-000000000001";

/// Every request the stand-ins received, in order, as text.
#[derive(Debug, Clone, Default)]
struct Recorded(Arc<Mutex<Vec<String>>>);

impl Recorded {
    fn push(&self, request: String) {
        self.0.lock().expect("lock").push(request);
    }

    fn take(&self) -> Vec<String> {
        std::mem::take(&mut *self.0.lock().expect("lock"))
    }
}

#[derive(Debug, Clone)]
struct StandInFiles {
    recorded: Recorded,
}

type DownloadStream = Pin<Box<dyn futures::Stream<Item = Result<DownloadFileResponse, Status>> + Send>>;

fn not_here<T>() -> Result<T, Status> {
    Err(Status::unimplemented("not part of this stand-in"))
}

#[tonic::async_trait]
impl FilesService for StandInFiles {
    type DownloadFileStream = DownloadStream;
    type OpenShareLinkStream = DownloadStream;

    async fn download_file(&self, _: Request<DownloadFileRequest>) -> Result<Response<DownloadStream>, Status> {
        not_here()
    }
    async fn stat_file(&self, _: Request<StatFileRequest>) -> Result<Response<FileInfo>, Status> {
        not_here()
    }
    async fn list_files(&self, _: Request<ListFilesRequest>) -> Result<Response<ListFilesResponse>, Status> {
        not_here()
    }
    async fn delete_file(&self, _: Request<DeleteFileRequest>) -> Result<Response<DeleteFileResponse>, Status> {
        not_here()
    }
    async fn create_share_link(&self, _: Request<CreateShareLinkRequest>) -> Result<Response<CreateShareLinkResponse>, Status> {
        not_here()
    }
    async fn register_node(&self, _: Request<RegisterNodeRequest>) -> Result<Response<RegisterNodeResponse>, Status> {
        not_here()
    }
    async fn list_nodes(&self, _: Request<ListNodesRequest>) -> Result<Response<ListNodesResponse>, Status> {
        not_here()
    }

    async fn revoke_share_link(&self, request: Request<RevokeShareLinkRequest>) -> Result<Response<RevokeShareLinkResponse>, Status> {
        let request = request.into_inner();
        self.recorded.push(format!("revoke token={} link_id={}", request.token, request.link_id));
        Ok(Response::new(RevokeShareLinkResponse::default()))
    }

    async fn list_file_dates(&self, _: Request<ListFileDatesRequest>) -> Result<Response<ListFileDatesResponse>, Status> {
        self.recorded.push("dates".to_owned());
        let dates = vec![
            FileDate { date: "2026-11-30".to_owned(), file_count: 3, total_bytes: 80_001 },
            FileDate { date: "2021-03-04".to_owned(), file_count: 1, total_bytes: 5 },
        ];
        Ok(Response::new(ListFileDatesResponse { dates }))
    }

    async fn rename_file(&self, request: Request<RenameFileRequest>) -> Result<Response<RenameFileResponse>, Status> {
        let request = request.into_inner();
        self.recorded.push(format!("rename {} to {}", request.file_id, request.name));
        if request.file_id != FILE_ID {
            return Err(Status::not_found(format!("no file with id {}", request.file_id)));
        }
        let file = FileInfo { file_id: request.file_id, name: request.name, size: 42, owner: "alice".to_owned(), ..Default::default() };
        Ok(Response::new(RenameFileResponse { file: Some(file), consistency_token: None }))
    }

    async fn list_share_links(&self, request: Request<ListShareLinksRequest>) -> Result<Response<ListShareLinksResponse>, Status> {
        let request = request.into_inner();
        self.recorded.push(format!("links of {:?}", request.file_id));
        let link = ShareLinkInfo {
            link_id: "ab".repeat(32),
            file_id: FILE_ID.to_owned(),
            file_name: "plans.pdf".to_owned(),
            created_at_unix_ms: 1_795_305_600_000,
            expires_at_unix_ms: 1_795_392_000_000,
            has_password: true,
            state: "expired".to_owned(),
        };
        Ok(Response::new(ListShareLinksResponse { links: vec![link] }))
    }

    async fn describe_share_link(&self, request: Request<DescribeShareLinkRequest>) -> Result<Response<DescribeShareLinkResponse>, Status> {
        self.recorded.push(format!("describe {}", request.into_inner().token));
        Ok(Response::new(DescribeShareLinkResponse { password_required: true, expires_at_unix_ms: 1_795_392_000_000, ..Default::default() }))
    }

    async fn open_share_link(&self, request: Request<OpenShareLinkRequest>) -> Result<Response<DownloadStream>, Status> {
        let request = request.into_inner();
        self.recorded.push(format!("open {} with {:?}", request.token, request.password));
        if request.password != "correct horse" {
            return Err(Status::unauthenticated("wrong password for this share link"));
        }
        let info = FileInfo { file_id: FILE_ID.to_owned(), name: "plans.pdf".to_owned(), size: SHARED_BYTES.len() as u64, ..Default::default() };
        let (first, second) = SHARED_BYTES.split_at(10);
        let messages = [
            download_file_response::Message::Info(info),
            download_file_response::Message::Chunk(first.to_vec().into()),
            download_file_response::Message::Chunk(second.to_vec().into()),
        ];
        let stream = futures::stream::iter(messages.into_iter().map(|message| Ok(DownloadFileResponse { message: Some(message) })));
        Ok(Response::new(Box::pin(stream)))
    }
}

/// Five accounts, served two per page whatever the request asks.
#[derive(Debug, Clone)]
struct StandInAccounts {
    recorded: Recorded,
}

fn account(username: &str) -> Account {
    Account {
        account_id: format!("id-{username}"),
        username: username.to_owned(),
        email: format!("{username}@example.org"),
        role: "user".to_owned(),
        created_unix: 1_795_305_600,
    }
}

#[tonic::async_trait]
impl AccountsService for StandInAccounts {
    async fn register(&self, _: Request<RegisterRequest>) -> Result<Response<Account>, Status> {
        Err(Status::failed_precondition("registration is closed on this server"))
    }
    async fn login(&self, _: Request<LoginRequest>) -> Result<Response<TokenPair>, Status> {
        not_here()
    }
    async fn refresh(&self, _: Request<RefreshRequest>) -> Result<Response<TokenPair>, Status> {
        not_here()
    }
    async fn logout(&self, _: Request<LogoutRequest>) -> Result<Response<LogoutResponse>, Status> {
        not_here()
    }
    async fn change_password(&self, _: Request<ChangePasswordRequest>) -> Result<Response<TokenPair>, Status> {
        not_here()
    }
    async fn me(&self, _: Request<MeRequest>) -> Result<Response<Account>, Status> {
        not_here()
    }
    async fn set_role(&self, _: Request<SetRoleRequest>) -> Result<Response<Account>, Status> {
        not_here()
    }
    async fn bootstrap_admin(&self, _: Request<RegisterRequest>) -> Result<Response<Account>, Status> {
        not_here()
    }
    async fn restore_accounts(&self, _: Request<Streaming<RestoredAccount>>) -> Result<Response<RestoreAccountsResponse>, Status> {
        not_here()
    }

    async fn registration_status(&self, _: Request<RegistrationStatusRequest>) -> Result<Response<RegistrationStatusResponse>, Status> {
        Ok(Response::new(RegistrationStatusResponse { open: false }))
    }

    async fn list_accounts(&self, request: Request<ListAccountsRequest>) -> Result<Response<ListAccountsResponse>, Status> {
        let request = request.into_inner();
        self.recorded.push(format!("accounts limit={} after={:?}", request.limit, request.page_token));
        let (accounts, next) = match request.page_token.as_str() {
            "" => (vec![account("amy"), account("Bob")], "page-2"),
            "page-2" => (vec![account("carl"), account("Dora")], "page-3"),
            "page-3" => (vec![account("Zed")], ""),
            other => return Err(Status::invalid_argument(format!("unknown page token {other}"))),
        };
        Ok(Response::new(ListAccountsResponse { accounts, next_page_token: next.to_owned() }))
    }
}

/// Serves both stand-ins on one port 0 listener; returns its URL and what they record.
async fn stand_in_services() -> (String, Recorded) {
    let recorded = Recorded::default();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind port 0");
    let address: SocketAddr = listener.local_addr().expect("address");
    let router = tonic::transport::Server::builder()
        .add_service(FilesServiceServer::new(StandInFiles { recorded: recorded.clone() }))
        .add_service(AccountsServiceServer::new(StandInAccounts { recorded: recorded.clone() }));
    tokio::spawn(router.serve_with_incoming(tokio_stream::wrappers::TcpListenerStream::new(listener)));
    (format!("http://{address}"), recorded)
}

fn stdout_of(output: &std::process::Output) -> String {
    assert!(output.status.success(), "failed: {}", String::from_utf8_lossy(&output.stderr));
    String::from_utf8_lossy(&output.stdout).into_owned()
}

#[tokio::test]
async fn date_folders_renames_and_share_links_are_asked_for_and_printed() {
    let (url, recorded) = stand_in_services().await;
    let cli = CliUnderTest::without_topics();
    let storage = ["--storage-url", url.as_str(), "files"];

    let dates = cli.run_json(&with(&storage, &["dates", "--json"])).await;
    assert_eq!(
        dates,
        json!([{ "date": "2026-11-30", "file_count": 3, "total_bytes": 80_001 }, { "date": "2021-03-04", "file_count": 1, "total_bytes": 5 }])
    );
    let text = stdout_of(&cli.run(&with(&storage, &["dates"])).await);
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines.len(), 3, "{text}");
    assert!(lines[0].starts_with("DATE") && lines[1].starts_with("2026-11-30") && lines[1].trim_end().ends_with("80001"), "{text}");

    let renamed = cli.run_json(&with(&storage, &["rename", FILE_ID, "final plans.pdf", "--json"])).await;
    assert_eq!((renamed["id"].as_str(), renamed["name"].as_str(), renamed["size"].as_u64()), (Some(FILE_ID), Some("final plans.pdf"), Some(42)));
    let missing = cli.run(&with(&storage, &["rename", "no-such-id", "x.pdf", "--json"])).await;
    assert_eq!(missing.status.code(), Some(1));
    assert_eq!(json_error(&missing), json!({ "error": "no file with id no-such-id", "code": "NOT_FOUND" }));

    let links = cli.run_json(&with(&storage, &["shares", FILE_ID, "--json"])).await;
    assert_eq!(links[0]["link_id"], "ab".repeat(32));
    assert_eq!((links[0]["state"].as_str(), links[0]["has_password"].as_bool()), (Some("expired"), Some(true)));
    let text = stdout_of(&cli.run(&with(&storage, &["shares"])).await);
    assert!(text.contains(&"ab".repeat(32)) && text.contains("expired") && text.contains("plans.pdf"), "{text}");

    // A link id and a token (alone or in its link) name the link their own way.
    stdout_of(&cli.run(&with(&storage, &["unshare", &"AB".repeat(32)])).await);
    let token = "A".repeat(43);
    assert_eq!(cli.run_json(&with(&storage, &["unshare", &format!("http://127.0.0.1:8082/s/{token}"), "--json"])).await, json!({ "revoked": true }));
    assert_eq!(
        recorded.take(),
        vec![
            "dates".to_owned(),
            "dates".to_owned(),
            format!("rename {FILE_ID} to final plans.pdf"),
            "rename no-such-id to x.pdf".to_owned(),
            format!("links of {FILE_ID:?}"),
            "links of \"\"".to_owned(),
            format!("revoke token= link_id={}", "AB".repeat(32)),
            format!("revoke token={token} link_id="),
        ]
    );
}

#[tokio::test]
async fn a_share_link_opens_with_its_password_into_a_file() {
    let (url, recorded) = stand_in_services().await;
    let cli = CliUnderTest::without_topics();
    let folder = tempfile_folder();
    let token = "b".repeat(43);
    let link = format!("http://127.0.0.1:8082/s/{token}");

    let info = cli.run_json(&["--storage-url", &url, "files", "open", &link, "--info", "--json"]).await;
    assert_eq!((info["password_required"].as_bool(), info["name"].as_str()), (Some(true), Some("")));
    let wrong = cli.run(&["--storage-url", &url, "files", "open", &link, "--password", "nope", "-o", &folder, "--json"]).await;
    assert_eq!(json_error(&wrong)["code"], "UNAUTHENTICATED");
    let opened = cli.run_json(&["--storage-url", &url, "files", "open", &token, "--password", "correct horse", "-o", &folder, "--json"]).await;
    let written = std::path::Path::new(&folder).join("plans.pdf");
    assert_eq!(opened["path"], written.display().to_string());
    assert_eq!(std::fs::read(&written).expect("the download is on disk"), SHARED_BYTES);
    assert_eq!(
        recorded.take(),
        vec![
            format!("describe {token}"),
            format!("describe {token}"),
            format!("open {token} with \"nope\""),
            format!("describe {token}"),
            format!("open {token} with \"correct horse\""),
        ]
    );
    let _ = std::fs::remove_dir_all(&folder);
}

#[tokio::test]
async fn accounts_are_listed_across_pages_and_registration_is_shown() {
    let (url, recorded) = stand_in_services().await;
    let cli = CliUnderTest::without_topics();
    let listed = cli.run_json(&["--users-url", &url, "users", "list", "--json"]).await;
    let usernames: Vec<&str> = listed.as_array().expect("array").iter().filter_map(|account| account["username"].as_str()).collect();
    assert_eq!(usernames, vec!["amy", "Bob", "carl", "Dora", "Zed"]);
    assert_eq!(
        listed[0],
        json!({ "account_id": "id-amy", "username": "amy", "email": "amy@example.org", "role": "user", "created_unix": 1_795_305_600 })
    );
    assert_eq!(
        recorded.take(),
        vec!["accounts limit=1000 after=\"\"", "accounts limit=1000 after=\"page-2\"", "accounts limit=1000 after=\"page-3\""]
    );

    let first_three = cli.run_json(&["--users-url", &url, "users", "list", "-n", "3", "--json"]).await;
    assert_eq!(first_three.as_array().map(Vec::len), Some(3));
    assert_eq!(recorded.take(), vec!["accounts limit=3 after=\"\"", "accounts limit=1 after=\"page-2\""]);
    let text = stdout_of(&cli.run(&["--users-url", &url, "users", "list"]).await);
    assert!(text.starts_with("USERNAME") && text.lines().count() == 6 && text.contains("Dora@example.org"), "{text}");

    assert_eq!(cli.run_json(&["--users-url", &url, "users", "registration", "--json"]).await, json!({ "open": false }));
    let text = stdout_of(&cli.run(&["--users-url", &url, "users", "registration"]).await);
    assert_eq!(text.trim(), "registration is closed on this server");
}

/// Returns `prefix` followed by `rest`.
fn with<'a>(prefix: &[&'a str], rest: &[&'a str]) -> Vec<&'a str> {
    prefix.iter().chain(rest).copied().collect()
}

/// Returns a new empty folder under the temporary directory.
fn tempfile_folder() -> String {
    let folder = std::env::temp_dir().join(format!("chatvault-cli-open-{}", uuid::Uuid::new_v4().simple()));
    std::fs::create_dir_all(&folder).expect("create folder");
    folder.display().to_string()
}
