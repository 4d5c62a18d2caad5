//! Accounts and authentication against the real stack: register, log in, refresh with
//! rotation and reuse detection, log out, change password, lock-out, bad tokens refused
//! by every service, and admin-only calls.

use chatvault_common::auth::{sign_access_token, Claims};
use chatvault_common::config::{Secret, ServiceConfig};
use chatvault_common::test_support::{service_environment, unique_topic_prefix, TestDb, TEST_JWT_SECRET};
use chatvault_proto::storage::v1::files_service_client::FilesServiceClient;
use chatvault_proto::storage::v1::storage_service_client::StorageServiceClient;
use chatvault_proto::storage::v1::{ListChatsRequest, RegisterNodeRequest};
use chatvault_proto::users::v1::accounts_service_client::AccountsServiceClient;
use chatvault_proto::users::v1::{
    ChangePasswordRequest, LoginRequest, LogoutRequest, MeRequest, RefreshRequest, RegisterRequest, SetRoleRequest, TokenPair,
};
use tokio_util::sync::CancellationToken;
use tonic::transport::Channel;
use tonic::{Code, Request};

use crate::helpers::connect;

pub(crate) const ADMIN_USERNAME: &str = "root";
pub(crate) const ADMIN_PASSWORD: &str = "Root-password-1";

/// Users and storage with authentication on, a bootstrap admin and a quick lock-out.
pub(crate) struct AuthPlatform {
    pub(crate) _database: TestDb,
    pub(crate) accounts: AccountsServiceClient<Channel>,
    /// The users service's author statistics.
    pub(crate) users: chatvault_proto::users::v1::users_service_client::UsersServiceClient<Channel>,
    pub(crate) storage: StorageServiceClient<Channel>,
    pub(crate) files: FilesServiceClient<Channel>,
    /// The services' environment (topic prefix, database, auth on), for more services.
    pub(crate) environment: std::collections::HashMap<String, String>,
    shutdown: CancellationToken,
}

impl Drop for AuthPlatform {
    fn drop(&mut self) {
        self.shutdown.cancel();
    }
}

impl AuthPlatform {
    pub(crate) async fn start() -> Self {
        Self::start_with(&[]).await
    }

    /// Starts like [`Self::start`] with `extra` variables for every service.
    pub(crate) async fn start_with(extra: &[(&str, &str)]) -> Self {
        let (database, topic_prefix) = (TestDb::fresh().await, unique_topic_prefix());
        let shutdown = CancellationToken::new();
        let mut environment = service_environment(database.url.expose(), &topic_prefix);
        environment.extend(extra.iter().map(|(key, value)| ((*key).to_owned(), (*value).to_owned())));
        environment.insert("CHATVAULT_AUTH".to_owned(), "on".to_owned());
        environment.insert("CHATVAULT_USERS_LOCKOUT_THRESHOLD".to_owned(), "3".to_owned());
        environment.insert("CHATVAULT_USERS_LOGIN_FAILURE_DELAY_MS".to_owned(), "10".to_owned());
        environment.insert("CHATVAULT_USERS_BOOTSTRAP_ADMIN".to_owned(), format!("{ADMIN_USERNAME}:{ADMIN_PASSWORD}:root@example.org"));
        let users_config = ServiceConfig::from_env_map("users", chatvault_users::DEFAULT_PORTS, &environment).expect("users config");
        let users_app = chatvault_users::App::build(users_config).await.expect("users starts");
        let users_addr = users_app.grpc_addr();
        tokio::spawn(users_app.run_until_stopped(shutdown.clone()));
        let storage_config = ServiceConfig::from_env_map("storage", chatvault_storage::DEFAULT_PORTS, &environment).expect("storage config");
        let storage_app = chatvault_storage::App::build(storage_config).await.expect("storage starts");
        let storage_addr = storage_app.grpc_addr();
        tokio::spawn(storage_app.run_until_stopped(shutdown.clone()));
        let storage_channel = connect(storage_addr).await;
        let users_channel = connect(users_addr).await;
        Self {
            _database: database,
            accounts: AccountsServiceClient::new(users_channel.clone()),
            users: chatvault_proto::users::v1::users_service_client::UsersServiceClient::new(users_channel),
            storage: StorageServiceClient::new(storage_channel.clone()),
            files: FilesServiceClient::new(storage_channel),
            environment,
            shutdown,
        }
    }

    /// Starts the audit service in this process on the platform's topics; returns its client.
    pub(crate) async fn start_audit(&self) -> chatvault_proto::audit::v1::audit_service_client::AuditServiceClient<Channel> {
        let config = ServiceConfig::from_env_map("audit", chatvault_audit::DEFAULT_PORTS, &self.environment).expect("audit config");
        let app = chatvault_audit::App::build(config).await.expect("audit starts");
        let address = app.grpc_addr();
        tokio::spawn(app.run_until_stopped(self.shutdown.clone()));
        chatvault_proto::audit::v1::audit_service_client::AuditServiceClient::new(connect(address).await)
    }

    /// Starts the ingest service in this process on the platform's topics; returns a channel
    /// to it (imports and uploads).
    pub(crate) async fn start_ingest(&self) -> Channel {
        let config = ServiceConfig::from_env_map("ingest", chatvault_ingest::DEFAULT_PORTS, &self.environment).expect("ingest config");
        let app = chatvault_ingest::App::build(config).await.expect("ingest starts");
        let address = app.grpc_addr();
        tokio::spawn(app.run_until_stopped(self.shutdown.clone()));
        connect(address).await
    }

    pub(crate) async fn register(&self, username: &str, password: &str) -> Result<(), tonic::Status> {
        let request = RegisterRequest { username: username.to_owned(), email: format!("{username}@example.org"), password: password.to_owned() };
        self.accounts.clone().register(request).await.map(|_| ())
    }

    pub(crate) async fn login(&self, username: &str, password: &str) -> Result<TokenPair, tonic::Status> {
        let request = LoginRequest { username: username.to_owned(), password: password.to_owned() };
        self.accounts.clone().login(request).await.map(tonic::Response::into_inner)
    }
}

/// Returns `message` with the bearer token attached.
pub(crate) fn authorized<T>(message: T, access_token: &str) -> Request<T> {
    let mut request = Request::new(message);
    request.metadata_mut().insert("authorization", format!("Bearer {access_token}").parse().expect("ascii token"));
    request
}

pub(crate) fn unique_name(prefix: &str) -> String {
    format!("{prefix}{}", &uuid::Uuid::new_v4().simple().to_string()[..8])
}

#[tokio::test]
async fn register_login_refresh_logout_and_change_password() {
    let platform = AuthPlatform::start().await;
    let username = unique_name("alice");
    let password = "correct horse 42";
    platform.register(&username, password).await.expect("registers");
    assert_eq!(platform.register(&username, password).await.expect_err("duplicate").code(), Code::AlreadyExists);
    assert_eq!(platform.register(&unique_name("bob"), "short").await.expect_err("weak password").code(), Code::InvalidArgument);

    assert_eq!(platform.login(&username, "wrong password 1").await.expect_err("wrong password").code(), Code::Unauthenticated);
    assert_eq!(platform.login("nobody-here", password).await.expect_err("unknown user").code(), Code::Unauthenticated);
    let first = platform.login(&username, password).await.expect("logs in");
    let me = platform.accounts.clone().me(authorized(MeRequest {}, &first.access_token)).await.expect("me").into_inner();
    assert_eq!((me.username.as_str(), me.role.as_str()), (username.as_str(), "user"));
    assert_eq!(platform.accounts.clone().me(MeRequest {}).await.expect_err("no token").code(), Code::Unauthenticated);

    // Refresh rotates; the old token presented again revokes the whole log-in.
    let rotated =
        platform.accounts.clone().refresh(RefreshRequest { refresh_token: first.refresh_token.clone() }).await.expect("refresh").into_inner();
    assert_ne!(rotated.refresh_token, first.refresh_token);
    platform.accounts.clone().me(authorized(MeRequest {}, &rotated.access_token)).await.expect("new access token works");
    let reuse = platform.accounts.clone().refresh(RefreshRequest { refresh_token: first.refresh_token.clone() }).await;
    assert_eq!(reuse.expect_err("reuse refused").code(), Code::Unauthenticated);
    let after_reuse = platform.accounts.clone().refresh(RefreshRequest { refresh_token: rotated.refresh_token.clone() }).await;
    assert_eq!(after_reuse.expect_err("family revoked").code(), Code::Unauthenticated);

    // Logout revokes the refresh token.
    let second = platform.login(&username, password).await.expect("logs in again");
    platform
        .accounts
        .clone()
        .logout(authorized(LogoutRequest { refresh_token: second.refresh_token.clone() }, &second.access_token))
        .await
        .expect("logout");
    let after_logout = platform.accounts.clone().refresh(RefreshRequest { refresh_token: second.refresh_token.clone() }).await;
    assert_eq!(after_logout.expect_err("revoked").code(), Code::Unauthenticated);

    // Changing the password revokes every session.
    let session_a = platform.login(&username, password).await.expect("session a");
    let session_b = platform.login(&username, password).await.expect("session b");
    let new_password = "battery staple 77";
    let wrong_current = platform
        .accounts
        .clone()
        .change_password(authorized(
            ChangePasswordRequest { current_password: "not it 12345".to_owned(), new_password: new_password.to_owned() },
            &session_a.access_token,
        ))
        .await;
    assert_eq!(wrong_current.expect_err("wrong current password").code(), Code::Unauthenticated);
    let fresh = platform
        .accounts
        .clone()
        .change_password(authorized(
            ChangePasswordRequest { current_password: password.to_owned(), new_password: new_password.to_owned() },
            &session_a.access_token,
        ))
        .await
        .expect("password changed")
        .into_inner();
    for old in [&session_a.refresh_token, &session_b.refresh_token] {
        let outcome = platform.accounts.clone().refresh(RefreshRequest { refresh_token: old.clone() }).await;
        assert_eq!(outcome.expect_err("old sessions revoked").code(), Code::Unauthenticated);
    }
    platform.accounts.clone().refresh(RefreshRequest { refresh_token: fresh.refresh_token }).await.expect("the new session works");
    assert_eq!(platform.login(&username, password).await.expect_err("old password").code(), Code::Unauthenticated);
    platform.login(&username, new_password).await.expect("new password");
}

#[tokio::test]
async fn access_tokens_issued_before_a_password_change_are_refused_by_ingest_and_storage() {
    use chatvault_proto::ingest::v1::ingest_service_client::IngestServiceClient;
    use chatvault_proto::ingest::v1::ImportExportRequest;

    let platform = AuthPlatform::start().await;
    let ingest = IngestServiceClient::new(platform.start_ingest().await);
    let username = unique_name("ivan");
    let password = "correct horse 47";
    platform.register(&username, password).await.expect("registers");
    let before = platform.login(&username, password).await.expect("logs in");
    // An import without a path gets past authentication and is refused for the path.
    let ingest_code = |token: String| {
        let mut ingest = ingest.clone();
        async move {
            match ingest.import_export(authorized(ImportExportRequest::default(), &token)).await {
                Ok(_) => Code::Ok,
                Err(status) => status.code(),
            }
        }
    };
    let storage_outcome = |token: String| {
        let mut storage = platform.storage.clone();
        async move { storage.list_chats(authorized(ListChatsRequest::default(), &token)).await.map(|_| ()) }
    };
    assert_eq!(ingest_code(before.access_token.clone()).await, Code::InvalidArgument, "ingest accepts the token");
    storage_outcome(before.access_token.clone()).await.expect("storage accepts the token");

    let new_password = "battery staple 78";
    let changed = platform
        .accounts
        .clone()
        .change_password(authorized(
            ChangePasswordRequest { current_password: password.to_owned(), new_password: new_password.to_owned() },
            &before.access_token,
        ))
        .await
        .expect("password changed")
        .into_inner();
    // Each service learns of the change from users.events.
    let refused = crate::helpers::wait_until(std::time::Duration::from_secs(30), || async {
        let storage_refuses = storage_outcome(before.access_token.clone()).await.is_err_and(|status| status.code() == Code::Unauthenticated);
        storage_refuses && ingest_code(before.access_token.clone()).await == Code::Unauthenticated
    })
    .await;
    assert!(refused, "ingest and storage refuse the token issued before the change");
    let status = storage_outcome(before.access_token.clone()).await.expect_err("refused");
    assert!(status.message().contains("password change"), "{status:?}");

    let later = platform.login(&username, new_password).await.expect("logs in with the new password");
    for token in [&changed.access_token, &later.access_token] {
        assert_eq!(ingest_code(token.clone()).await, Code::InvalidArgument, "ingest accepts a token issued after the change");
        storage_outcome(token.clone()).await.expect("storage accepts a token issued after the change");
    }
}

#[tokio::test]
async fn repeated_failed_logins_lock_the_account() {
    let platform = AuthPlatform::start().await;
    let username = unique_name("carol");
    let password = "correct horse 43";
    platform.register(&username, password).await.expect("registers");
    for _ in 0..3 {
        assert_eq!(platform.login(&username, "wrong password 9").await.expect_err("wrong").code(), Code::Unauthenticated);
    }
    let locked = platform.login(&username, password).await.expect_err("locked even with the right password");
    assert_eq!(locked.code(), Code::ResourceExhausted, "{locked:?}");
    // Another account is not affected.
    let other = unique_name("dave");
    platform.register(&other, password).await.expect("registers");
    platform.login(&other, password).await.expect("other account logs in");
}

#[tokio::test]
async fn log_ins_of_a_name_nobody_holds_are_answered_like_an_accounts() {
    let platform = AuthPlatform::start().await;
    let existing = unique_name("fay");
    platform.register(&existing, "correct horse 47").await.expect("registers");
    let unknown = unique_name("ghost");
    // The same refusals in the same order: three wrong passwords, then the lock, for a
    // registered name and for one nobody holds, so the answers cannot tell them apart.
    for name in [&existing, &unknown] {
        let mut answers = Vec::new();
        for _ in 0..4 {
            let refused = platform.login(name, "wrong password 9").await.expect_err("refused");
            answers.push((refused.code(), refused.message().split(" until ").next().unwrap_or_default().to_owned()));
        }
        assert_eq!(
            answers,
            vec![
                (Code::Unauthenticated, "wrong username or password".to_owned()),
                (Code::Unauthenticated, "wrong username or password".to_owned()),
                (Code::Unauthenticated, "wrong username or password".to_owned()),
                (Code::ResourceExhausted, "too many failed log-ins; the account is locked".to_owned()),
            ],
            "{name}"
        );
    }
}

#[tokio::test]
async fn tampered_expired_and_wrongly_signed_tokens_are_refused_by_every_service() {
    let platform = AuthPlatform::start().await;
    let username = unique_name("erin");
    let password = "correct horse 44";
    platform.register(&username, password).await.expect("registers");
    let pair = platform.login(&username, password).await.expect("logs in");

    let parts: Vec<&str> = pair.access_token.split('.').collect();
    let claims_json = String::from_utf8(base64_url_decode(parts[1])).expect("utf-8 claims");
    let elevated = claims_json.replace("\"role\":\"user\"", "\"role\":\"admin\"");
    assert_ne!(elevated, claims_json);
    let tampered = format!("{}.{}.{}", parts[0], base64_url_encode(elevated.as_bytes()), parts[2]);
    let now = chrono::Utc::now().timestamp();
    let claims = Claims {
        sub: pair.account.as_ref().expect("account").account_id.clone(),
        username: username.clone(),
        role: "admin".to_owned(),
        exp: now - 5,
        iat: now - 905,
        jti: "expired".to_owned(),
    };
    let expired = sign_access_token(&Secret::new(TEST_JWT_SECRET), &claims);
    let wrongly_signed = sign_access_token(&Secret::new("someone else's secret"), &Claims { exp: now + 600, ..claims.clone() });
    for (what, token) in
        [("tampered", tampered.as_str()), ("expired", expired.as_str()), ("wrongly signed", wrongly_signed.as_str()), ("garbage", "x.y.z")]
    {
        let me = platform.accounts.clone().me(authorized(MeRequest {}, token)).await;
        assert_eq!(me.expect_err(what).code(), Code::Unauthenticated, "users refuses a {what} token");
        let chats = platform.storage.clone().list_chats(authorized(ListChatsRequest::default(), token)).await;
        assert_eq!(chats.expect_err(what).code(), Code::Unauthenticated, "storage refuses a {what} token");
    }
    let no_token = platform.storage.clone().list_chats(ListChatsRequest::default()).await;
    assert_eq!(no_token.expect_err("no token").code(), Code::Unauthenticated);
    platform.storage.clone().list_chats(authorized(ListChatsRequest::default(), &pair.access_token)).await.expect("a valid token works");
}

#[tokio::test]
async fn only_admins_register_nodes_and_change_roles() {
    let platform = AuthPlatform::start().await;
    let username = unique_name("frank");
    let password = "correct horse 45";
    platform.register(&username, password).await.expect("registers");
    let user = platform.login(&username, password).await.expect("logs in");

    let node = RegisterNodeRequest { address: "127.0.0.1:1".to_owned() };
    let denied = platform.files.clone().register_node(authorized(node.clone(), &user.access_token)).await;
    assert_eq!(denied.expect_err("non-admin").code(), Code::PermissionDenied);
    // A forged role header changes nothing: the layer replaces it with the token's.
    let mut forged = authorized(node.clone(), &user.access_token);
    forged.metadata_mut().insert("x-chatvault-role", "admin".parse().expect("ascii"));
    assert_eq!(platform.files.clone().register_node(forged).await.expect_err("forged").code(), Code::PermissionDenied);
    let set_role = SetRoleRequest { username: username.clone(), role: "admin".to_owned() };
    let self_promotion = platform.accounts.clone().set_role(authorized(set_role.clone(), &user.access_token)).await;
    assert_eq!(self_promotion.expect_err("non-admin").code(), Code::PermissionDenied);

    let bootstrap_again = platform
        .accounts
        .clone()
        .bootstrap_admin(RegisterRequest { username: unique_name("eve"), email: "eve@example.org".to_owned(), password: password.to_owned() })
        .await;
    assert_eq!(bootstrap_again.expect_err("an admin exists").code(), Code::FailedPrecondition);

    let admin = platform.login(ADMIN_USERNAME, ADMIN_PASSWORD).await.expect("the configured admin logs in");
    assert_eq!(admin.account.as_ref().expect("account").role, "admin");
    let promoted = platform.accounts.clone().set_role(authorized(set_role, &admin.access_token)).await.expect("admin sets roles");
    assert_eq!(promoted.into_inner().role, "admin");
    let as_admin = platform.login(&username, password).await.expect("logs in as admin");
    let outcome = platform.files.clone().register_node(authorized(node, &as_admin.access_token)).await;
    if let Err(status) = outcome {
        assert!(!matches!(status.code(), Code::PermissionDenied | Code::Unauthenticated), "an admin passes the role check: {status:?}");
    }
}

fn base64_url_decode(text: &str) -> Vec<u8> {
    let alphabet = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    let mut bits: u32 = 0;
    let mut bit_count = 0;
    let mut out = Vec::new();
    for byte in text.bytes() {
        let value = alphabet.iter().position(|candidate| *candidate == byte).expect("base64url") as u32;
        bits = (bits << 6) | value;
        bit_count += 6;
        if bit_count >= 8 {
            bit_count -= 8;
            out.push((bits >> bit_count) as u8);
            bits &= (1 << bit_count) - 1;
        }
    }
    out
}

pub(crate) fn base64_url_encode(bytes: &[u8]) -> String {
    let alphabet = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    let mut out = String::new();
    for chunk in bytes.chunks(3) {
        let block = (u32::from(chunk[0]) << 16) | (u32::from(*chunk.get(1).unwrap_or(&0)) << 8) | u32::from(*chunk.get(2).unwrap_or(&0));
        for index in 0..=chunk.len() {
            out.push(alphabet[((block >> (18 - 6 * index)) & 63) as usize] as char);
        }
    }
    out
}

/// Returns a token for `username` with `role`, signed like the users service signs them.
pub(crate) fn minted_token(username: &str, role: &str) -> String {
    token_signed_with(&TEST_JWT_SECRET, username, role)
}

/// Returns a token with `role` for `username`, valid for ten minutes, signed with `secret`.
pub(crate) fn token_signed_with(secret: &str, username: &str, role: &str) -> String {
    let now = chrono::Utc::now().timestamp();
    let claims = Claims {
        sub: uuid::Uuid::now_v7().to_string(),
        username: username.to_owned(),
        role: role.to_owned(),
        exp: now + 600,
        iat: now,
        jti: uuid::Uuid::now_v7().to_string(),
    };
    sign_access_token(&Secret::new(secret), &claims)
}

#[tokio::test]
async fn users_list_download_and_delete_only_their_own_files() {
    use chatvault_proto::ingest::v1::{upload_file_request, UploadFileRequest, UploadMetadata};
    use chatvault_proto::storage::v1::{DeleteFileRequest, DownloadFileRequest, ListFilesRequest, StatFileRequest};

    let platform = crate::files_support::FilesPlatform::start(&[("CHATVAULT_AUTH", "on")]).await;
    let (alice, bob, admin) = (minted_token("alice", "user"), minted_token("bob", "user"), minted_token("root", "admin"));
    let mut nodes = Vec::new();
    for _ in 0..3 {
        let node = crate::files_support::TestNode::start().await;
        let request = RegisterNodeRequest { address: node.address.to_string() };
        let denied = platform.files.clone().register_node(authorized(request.clone(), &alice)).await;
        assert_eq!(denied.expect_err("a user cannot register nodes").code(), Code::PermissionDenied);
        platform.files.clone().register_node(authorized(request, &admin)).await.expect("the admin registers nodes");
        nodes.push(node);
    }
    let bytes = crate::files_support::random_bytes(100_000);
    let upload_as = |token: String, bytes: Vec<u8>| {
        let mut uploads = platform.uploads.clone();
        async move {
            let messages = vec![
                UploadFileRequest {
                    message: Some(upload_file_request::Message::Metadata(UploadMetadata {
                        name: "alice.bin".to_owned(),
                        content_type: String::new(),
                        restore: None,
                        folder_date: String::new(),
                    })),
                },
                UploadFileRequest { message: Some(upload_file_request::Message::Chunk(bytes::Bytes::from(bytes))) },
            ];
            uploads.upload_file(authorized(futures::stream::iter(messages), &token)).await.map(tonic::Response::into_inner)
        }
    };
    // Ingest learns the nodes from storage.nodes on its own.
    let uploaded =
        crate::helpers::wait_until(std::time::Duration::from_secs(30), || async { upload_as(alice.clone(), b"probe".to_vec()).await.is_ok() }).await;
    assert!(uploaded, "ingest accepts uploads once it knows the nodes");
    let stored = upload_as(alice.clone(), bytes.clone()).await.expect("alice uploads");
    let unauthenticated = platform.uploads.clone().upload_file(futures::stream::iter(Vec::<UploadFileRequest>::new())).await;
    assert_eq!(unauthenticated.expect_err("no token").code(), Code::Unauthenticated);
    platform
        .files
        .clone()
        .stat_file(authorized(StatFileRequest { file_id: stored.file_id.clone(), consistency_token: stored.consistency_token.clone() }, &alice))
        .await
        .expect("alice sees her file");

    let list = |token: String| {
        let mut files = platform.files.clone();
        let date = stored.upload_date.clone();
        async move { files.list_files(authorized(ListFilesRequest { date, consistency_token: None }, &token)).await.expect("list").into_inner().files }
    };
    assert!(list(alice.clone()).await.iter().any(|file| file.file_id == stored.file_id));
    assert!(list(bob.clone()).await.iter().all(|file| file.file_id != stored.file_id), "bob does not list alice's file");

    let download = |token: String| {
        let mut files = platform.files.clone();
        let file_id = stored.file_id.clone();
        async move {
            let mut stream = files.download_file(authorized(DownloadFileRequest { file_id, consistency_token: None }, &token)).await?.into_inner();
            let mut received = 0usize;
            while let Some(message) = stream.message().await? {
                if let Some(chatvault_proto::storage::v1::download_file_response::Message::Chunk(chunk)) = message.message {
                    received += chunk.len();
                }
            }
            Ok::<usize, tonic::Status>(received)
        }
    };
    assert!(download(bob.clone()).await.is_err(), "bob cannot download alice's file");
    let delete =
        platform.files.clone().delete_file(authorized(DeleteFileRequest { file_id: stored.file_id.clone(), consistency_token: None }, &bob)).await;
    assert!(delete.is_err(), "bob cannot delete alice's file");
    assert_eq!(download(alice.clone()).await.expect("alice downloads"), bytes.len(), "the file is intact");

    // REST: no token → 401, another user → refused, the owner → 200.
    let path = format!("/api/file/{}", stored.file_id);
    let anonymous = crate::files_support::http_request(platform.storage_http, "GET", &path, &[], b"").await;
    assert_eq!(anonymous.status, 401);
    let bob_header = format!("Bearer {bob}");
    let as_bob = crate::files_support::http_request(platform.storage_http, "GET", &path, &[("authorization", bob_header.as_str())], b"").await;
    assert!(as_bob.status == 404 || as_bob.status == 403, "bob gets {}", as_bob.status);
    let alice_header = format!("Bearer {alice}");
    let as_alice = crate::files_support::http_request(platform.storage_http, "GET", &path, &[("authorization", alice_header.as_str())], b"").await;
    assert_eq!((as_alice.status, as_alice.body.len()), (200, bytes.len()));
}
