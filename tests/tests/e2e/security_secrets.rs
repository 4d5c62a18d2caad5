//! The installation's secrets against the real stack: a service refuses to start with a
//! missing, short or public signing secret; a token forged with the old public development
//! secret is refused by running services; storage nodes answer only the platform's own
//! services (ingest and storage still upload, download and delete through them); and
//! `BootstrapAdmin` no longer makes anyone an admin.

use std::collections::HashMap;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use chatvault_common::auth::{ADMIN_ROLE, DEVELOPMENT_JWT_SECRET, SERVICE_ROLE};
use chatvault_common::config::ServiceConfig;
use chatvault_common::test_support::{
    binaries_folder, service_environment, spawn_service_process, storage_node_environment, unique_topic_prefix, TestDb, TEST_JWT_SECRET,
};
use chatvault_proto::storage::v1::{DeleteFileRequest, ListChatsRequest, RegisterNodeRequest};
use chatvault_proto::storagenode::v1::storage_node_service_client::StorageNodeServiceClient;
use chatvault_proto::storagenode::v1::{
    put_part_request, DeletePartRequest, GetPartRequest, NodeStatsRequest, PartHeader, PutPartRequest, StatPartRequest,
};
use chatvault_proto::users::v1::accounts_service_client::AccountsServiceClient;
use chatvault_proto::users::v1::{MeRequest, RegisterRequest};
use tokio_util::sync::CancellationToken;
use tonic::transport::Channel;
use tonic::{Code, Request};

use crate::accounts::{authorized, minted_token, token_signed_with, unique_name, AuthPlatform, ADMIN_PASSWORD, ADMIN_USERNAME};
use crate::files_support::{random_bytes, FilesPlatform};
use crate::helpers::{connect, wait_until};

/// Returns a secret services accept that no other test uses.
fn another_strong_secret() -> String {
    format!("{}{}", uuid::Uuid::new_v4().simple(), uuid::Uuid::new_v4().simple())
}

#[tokio::test]
async fn a_service_refuses_to_start_with_a_missing_short_or_public_secret() {
    let binary = binaries_folder().join("chatvault-storage-node");
    assert!(binary.exists(), "{} is missing: build the binaries first (cargo build --bins)", binary.display());
    let refused = [
        ("missing", String::new()),
        ("short", "a".repeat(31)),
        ("the old development default", DEVELOPMENT_JWT_SECRET.to_owned()),
        ("the old test secret", "chatvault-test-secret".to_owned()),
    ];
    for (case, secret) in refused {
        let data_dir = tempfile::tempdir().expect("temp dir");
        let mut command = Command::new(&binary);
        command
            .envs(storage_node_environment(data_dir.path()))
            .env("CHATVAULT_JWT_SECRET", &secret)
            .env("CHATVAULT_AUTH", "on")
            .env("CHATVAULT_LOG_SHIPPING", "off")
            // Whatever the developer's shell holds, this case runs without the escape hatch.
            .env_remove("CHATVAULT_INSECURE_DEV")
            .stdout(Stdio::null())
            .stderr(Stdio::piped());
        let mut child = command.spawn().expect("the node binary runs");
        let deadline = Instant::now() + Duration::from_secs(30);
        let status = loop {
            if let Some(status) = child.try_wait().expect("wait for the node") {
                break status;
            }
            if Instant::now() > deadline {
                let _ = child.kill();
                panic!("{case}: the node kept running with a refused secret");
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        };
        let mut stderr = String::new();
        std::io::Read::read_to_string(&mut child.stderr.take().expect("piped stderr"), &mut stderr).expect("stderr");
        assert!(!status.success(), "{case}: the node exited successfully");
        assert!(stderr.contains("CHATVAULT_JWT_SECRET"), "{case}: the error names the variable: {stderr}");
        assert!(stderr.contains("openssl rand"), "{case}: the error says how to generate a secret: {stderr}");
        if !secret.is_empty() {
            assert!(!stderr.contains(&secret), "{case}: the error does not print the secret: {stderr}");
        }
    }

    // With the development flag the same public secret is let through, with a warning.
    let data_dir = tempfile::tempdir().expect("temp dir");
    let log_folder = tempfile::tempdir().expect("temp dir");
    let log_path = log_folder.path().join("insecure-node.log");
    let mut environment = storage_node_environment(data_dir.path());
    environment.insert("CHATVAULT_JWT_SECRET".to_owned(), DEVELOPMENT_JWT_SECRET.to_owned());
    environment.insert("CHATVAULT_INSECURE_DEV".to_owned(), "1".to_owned());
    environment.insert("CHATVAULT_AUTH".to_owned(), "on".to_owned());
    environment.insert("CHATVAULT_LOG_SHIPPING".to_owned(), "off".to_owned());
    let node = spawn_service_process("chatvault-storage-node", "STORAGE_NODE", environment, &log_path).await;
    let warned = wait_until(Duration::from_secs(30), || async {
        std::fs::read_to_string(&log_path).is_ok_and(|log| log.contains("INSECURE") && log.contains("CHATVAULT_INSECURE_DEV"))
    })
    .await;
    assert!(warned, "the node warns about the insecure secret: {}", std::fs::read_to_string(&log_path).unwrap_or_default());
    drop(node);
}

#[tokio::test]
async fn running_services_refuse_tokens_forged_with_the_old_development_secret() {
    let platform = AuthPlatform::start().await;
    let forged_admin = token_signed_with(DEVELOPMENT_JWT_SECRET, ADMIN_USERNAME, ADMIN_ROLE);
    let forged_test = token_signed_with("chatvault-test-secret", ADMIN_USERNAME, ADMIN_ROLE);
    for forged in [&forged_admin, &forged_test] {
        let chats = platform.storage.clone().list_chats(authorized(ListChatsRequest::default(), forged)).await;
        assert_eq!(chats.expect_err("storage refuses the forged token").code(), Code::Unauthenticated);
        let node = RegisterNodeRequest { address: "127.0.0.1:1".to_owned() };
        let registered = platform.files.clone().register_node(authorized(node, forged)).await;
        assert_eq!(registered.expect_err("an admin call with a forged token").code(), Code::Unauthenticated);
        let me = platform.accounts.clone().me(authorized(MeRequest {}, forged)).await;
        assert_eq!(me.expect_err("users refuses the forged token").code(), Code::Unauthenticated);
    }
    // The installation's own tokens still work.
    let admin = platform.login(ADMIN_USERNAME, ADMIN_PASSWORD).await.expect("the configured admin logs in");
    platform.storage.clone().list_chats(authorized(ListChatsRequest::default(), &admin.access_token)).await.expect("a real token works");
}

/// A storage node in this process with the service credential check on.
struct CheckingNode {
    address: std::net::SocketAddr,
    _data_dir: tempfile::TempDir,
    shutdown: CancellationToken,
}

impl Drop for CheckingNode {
    fn drop(&mut self) {
        self.shutdown.cancel();
    }
}

impl CheckingNode {
    /// Starts a node with `CHATVAULT_AUTH=on` that trusts `jwt_secret`.
    async fn start(jwt_secret: &str) -> Self {
        let data_dir = tempfile::tempdir().expect("temp dir");
        let mut environment = storage_node_environment(data_dir.path());
        environment.insert("CHATVAULT_AUTH".to_owned(), "on".to_owned());
        environment.insert("CHATVAULT_JWT_SECRET".to_owned(), jwt_secret.to_owned());
        let config = chatvault_storage_node::NodeConfig::from_env_map(&environment).expect("node config");
        let app = chatvault_storage_node::App::build(config).await.expect("node starts");
        let address = app.grpc_addr();
        let shutdown = CancellationToken::new();
        tokio::spawn(app.run_until_stopped(shutdown.clone()));
        Self { address, _data_dir: data_dir, shutdown }
    }

    async fn client(&self) -> StorageNodeServiceClient<Channel> {
        StorageNodeServiceClient::new(connect(self.address).await)
    }

    /// Returns the number of parts the node holds (asked with a valid service token).
    async fn part_count(&self) -> u64 {
        let bearer = token_signed_with(&TEST_JWT_SECRET, "service:test", SERVICE_ROLE);
        let stats = self.client().await.node_stats(authorized(NodeStatsRequest {}, &bearer)).await.expect("node stats");
        stats.into_inner().part_count
    }
}

/// Returns the codes of PutPart, GetPart, DeletePart, StatPart and NodeStats called with
/// `bearer` (no `authorization` header when `None`).
async fn node_answers(client: &StorageNodeServiceClient<Channel>, bearer: Option<&str>) -> Vec<(&'static str, Code)> {
    fn request<T>(message: T, bearer: Option<&str>) -> Request<T> {
        match bearer {
            Some(token) => authorized(message, token),
            None => Request::new(message),
        }
    }
    let code = |outcome: Result<Code, tonic::Status>| outcome.unwrap_or_else(|status| status.code());
    let header = PutPartRequest {
        message: Some(put_part_request::Message::Header(PartHeader { part_id: format!("{}.0", uuid::Uuid::now_v7()), block_size: 4096 })),
    };
    let put = client.clone().put_part(request(futures::stream::iter(vec![header]), bearer)).await.map(|_| Code::Ok);
    let missing_part = format!("{}.0", uuid::Uuid::now_v7());
    let get_request = GetPartRequest { part_id: missing_part.clone(), expected_sha256: String::new(), first_block: 0 };
    let get = client.clone().get_part(request(get_request, bearer)).await.map(|_| Code::Ok);
    let delete = client.clone().delete_part(request(DeletePartRequest { part_id: missing_part.clone() }, bearer)).await.map(|_| Code::Ok);
    let stat = client.clone().stat_part(request(StatPartRequest { part_id: missing_part }, bearer)).await.map(|_| Code::Ok);
    let stats = client.clone().node_stats(request(NodeStatsRequest {}, bearer)).await.map(|_| Code::Ok);
    vec![("PutPart", code(put)), ("GetPart", code(get)), ("DeletePart", code(delete)), ("StatPart", code(stat)), ("NodeStats", code(stats))]
}

#[tokio::test]
async fn storage_nodes_answer_only_the_platforms_own_services() {
    let node = CheckingNode::start(&TEST_JWT_SECRET).await;
    let client = node.client().await;
    let every_call = |answers: Vec<(&'static str, Code)>, expected: Code, caller: &str| {
        for (call, code) in answers {
            assert_eq!(code, expected, "{call} with {caller}");
        }
    };
    every_call(node_answers(&client, None).await, Code::Unauthenticated, "no credential");
    let user = minted_token(&unique_name("alice"), "user");
    every_call(node_answers(&client, Some(&user)).await, Code::PermissionDenied, "a user's token");
    let admin = minted_token(ADMIN_USERNAME, ADMIN_ROLE);
    every_call(node_answers(&client, Some(&admin)).await, Code::PermissionDenied, "an admin's token");
    let foreign = token_signed_with(&another_strong_secret(), "service:ingest", SERVICE_ROLE);
    every_call(node_answers(&client, Some(&foreign)).await, Code::Unauthenticated, "a service token of another secret");
    let forged = token_signed_with(DEVELOPMENT_JWT_SECRET, "service:ingest", SERVICE_ROLE);
    every_call(node_answers(&client, Some(&forged)).await, Code::Unauthenticated, "a service token of the old public secret");

    // A token of the installation's own services passes the check: the calls reach the
    // node and answer as usual (the part ids do not exist).
    let own = token_signed_with(&TEST_JWT_SECRET, "service:storage", SERVICE_ROLE);
    let answers: HashMap<&str, Code> = node_answers(&client, Some(&own)).await.into_iter().collect();
    assert_eq!(answers["NodeStats"], Code::Ok);
    assert_eq!(answers["DeletePart"], Code::Ok);
    assert_eq!(answers["StatPart"], Code::NotFound);
    for (call, code) in answers {
        assert!(!matches!(code, Code::Unauthenticated | Code::PermissionDenied), "{call} with a service token: {code:?}");
    }
}

#[tokio::test]
async fn ingest_and_storage_upload_download_and_delete_through_checking_nodes() {
    let platform = FilesPlatform::start(&[]).await;
    // Four nodes take two parts each, so placement reaches fault tolerance 1.
    let mut nodes = Vec::new();
    for _ in 0..4 {
        nodes.push(CheckingNode::start(&TEST_JWT_SECRET).await);
    }
    for node in &nodes {
        let request = RegisterNodeRequest { address: node.address.to_string() };
        platform.files.clone().register_node(request).await.expect("storage reaches the node with its service token");
    }
    platform.wait_for_ingest_to_see(nodes.len()).await;

    let bytes = random_bytes(700_000);
    let stored = platform.upload_visible("secret-plans.bin", bytes.clone()).await.expect("ingest writes parts to the nodes");
    let (info, downloaded) = platform.download(&stored.file_id).await.expect("storage reads parts from the nodes");
    assert_eq!(info.size, bytes.len() as u64);
    assert!(downloaded == bytes, "the downloaded bytes are the uploaded ones");

    let parts_before: u64 = futures::future::join_all(nodes.iter().map(CheckingNode::part_count)).await.into_iter().sum();
    let delete = DeleteFileRequest { file_id: stored.file_id.clone(), ..Default::default() };
    platform.files.clone().delete_file(delete).await.expect("deletes the file");
    let purged = wait_until(Duration::from_secs(60), || async {
        let parts: u64 = futures::future::join_all(nodes.iter().map(CheckingNode::part_count)).await.into_iter().sum();
        parts + PARTS_PER_FILE == parts_before
    })
    .await;
    assert!(purged, "storage deletes the file's parts on the nodes with its service token");

    // A node of another installation refuses storage's token, so it cannot be registered.
    let stranger = CheckingNode::start(&another_strong_secret()).await;
    let refused = platform.files.clone().register_node(RegisterNodeRequest { address: stranger.address.to_string() }).await;
    let status = refused.expect_err("a node trusting another secret refuses storage");
    assert_eq!(status.code(), Code::Unavailable, "{status:?}");
}

/// Parts of every file on the nodes: 6 data and 2 parity (`chatvault_file_store::TOTAL_PARTS`).
const PARTS_PER_FILE: u64 = 8;

#[tokio::test]
async fn bootstrap_admin_makes_nobody_an_admin() {
    let database = TestDb::fresh().await;
    let mut environment = service_environment(database.url.expose(), &unique_topic_prefix());
    environment.insert("CHATVAULT_AUTH".to_owned(), "on".to_owned());
    environment.remove("CHATVAULT_USERS_BOOTSTRAP_ADMIN");
    let shutdown = CancellationToken::new();
    let config = ServiceConfig::from_env_map("users", chatvault_users::DEFAULT_PORTS, &environment).expect("users config");
    let app = chatvault_users::App::build(config).await.expect("users starts");
    let address = app.grpc_addr();
    tokio::spawn(app.run_until_stopped(shutdown.clone()));
    let mut accounts = AccountsServiceClient::new(connect(address).await);

    let username = unique_name("eve");
    let password = "correct horse 45";
    let attempt = RegisterRequest { username: username.clone(), email: format!("{username}@example.org"), password: password.to_owned() };
    let anonymous = accounts.bootstrap_admin(attempt.clone()).await.expect_err("no admin exists, still refused");
    assert_eq!(anonymous.code(), Code::FailedPrecondition);
    assert!(anonymous.message().contains("CHATVAULT_USERS_BOOTSTRAP_ADMIN"), "{anonymous:?}");

    accounts.register(attempt.clone()).await.expect("registers as a user");
    let login = chatvault_proto::users::v1::LoginRequest { username: username.clone(), password: password.to_owned() };
    let session = accounts.login(login.clone()).await.expect("logs in").into_inner();
    let with_token = accounts.bootstrap_admin(authorized(attempt, &session.access_token)).await;
    assert_eq!(with_token.expect_err("a user cannot promote themselves").code(), Code::FailedPrecondition);
    let again = accounts.login(login).await.expect("logs in").into_inner();
    assert_eq!(again.account.expect("account").role, "user", "the caller is still a plain user");
    shutdown.cancel();
}

/// Runs `scripts/services.sh secrets` on the state folder `state`; returns what it printed.
fn generate_installation_secrets(state: &std::path::Path) -> String {
    let script = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../scripts/services.sh");
    let output = Command::new("bash")
        .arg(script)
        .arg("secrets")
        .env("CHATVAULT_STATE_DIR", state)
        .env_remove("CHATVAULT_JWT_SECRET")
        .env_remove("CHATVAULT_USERS_BOOTSTRAP_ADMIN")
        .output()
        .expect("services.sh runs");
    assert!(output.status.success(), "services.sh secrets failed: {}", String::from_utf8_lossy(&output.stderr));
    String::from_utf8_lossy(&output.stdout).into_owned()
}

#[tokio::test]
async fn a_fresh_install_has_a_random_secret_and_no_usable_default_admin_password() {
    use std::os::unix::fs::PermissionsExt;
    let (first, second) = (tempfile::tempdir().expect("state"), tempfile::tempdir().expect("state"));
    let printed = generate_installation_secrets(first.path());
    let secrets = first.path().join("secrets");
    let secret = std::fs::read_to_string(secrets.join("jwt-secret")).expect("secret written").trim().to_owned();
    let password = std::fs::read_to_string(secrets.join("admin-password")).expect("password written").trim().to_owned();
    assert!(secret.len() >= 32, "a strong secret: {} bytes", secret.len());
    assert!(secret != DEVELOPMENT_JWT_SECRET && secret != "chatvault-test-secret");
    assert!(password.len() >= 16 && password != "chatvault-admin-1", "a random password");
    assert!(printed.contains(&password), "the first start prints the password once");
    assert_eq!(std::fs::metadata(&secrets).expect("folder").permissions().mode() & 0o777, 0o700);
    for file in ["jwt-secret", "admin-password"] {
        assert_eq!(std::fs::metadata(secrets.join(file)).expect("file").permissions().mode() & 0o777, 0o600, "{file}");
    }
    let again = generate_installation_secrets(first.path());
    assert!(!again.contains(&password), "later starts never print it again");
    assert_eq!(std::fs::read_to_string(secrets.join("jwt-secret")).expect("kept").trim(), secret, "later starts reuse the secret");
    generate_installation_secrets(second.path());
    let other = std::fs::read_to_string(second.path().join("secrets/jwt-secret")).expect("secret").trim().to_owned();
    assert_ne!(other, secret, "every installation has its own secret");

    // Users started with what was generated: the first admin logs in with the generated
    // password only.
    let database = TestDb::fresh().await;
    let mut environment = service_environment(database.url.expose(), &unique_topic_prefix());
    environment.insert("CHATVAULT_AUTH".to_owned(), "on".to_owned());
    environment.remove("CHATVAULT_INSECURE_DEV");
    environment.insert("CHATVAULT_JWT_SECRET".to_owned(), secret.clone());
    environment.insert("CHATVAULT_USERS_BOOTSTRAP_ADMIN".to_owned(), format!("admin:{password}:admin@localhost"));
    let shutdown = CancellationToken::new();
    let config = ServiceConfig::from_env_map("users", chatvault_users::DEFAULT_PORTS, &environment).expect("users config");
    let app = chatvault_users::App::build(config).await.expect("users starts with the generated secret");
    let address = app.grpc_addr();
    tokio::spawn(app.run_until_stopped(shutdown.clone()));
    let mut accounts = AccountsServiceClient::new(connect(address).await);
    for guess in ["chatvault-admin-1", "admin", "password", ""] {
        let login = chatvault_proto::users::v1::LoginRequest { username: "admin".to_owned(), password: guess.to_owned() };
        assert!(accounts.login(login).await.is_err(), "the admin's password is not {guess:?}");
    }
    let login = chatvault_proto::users::v1::LoginRequest { username: "admin".to_owned(), password: password.clone() };
    let session = accounts.login(login).await.expect("the generated password logs in").into_inner();
    assert_eq!(session.account.expect("account").role, ADMIN_ROLE);
    shutdown.cancel();
}

#[tokio::test]
async fn the_database_roles_have_no_public_password() {
    // The roles' passwords are generated per installation by scripts/stack.sh; the old
    // role-named ones (storage:storage) no longer open anything.
    for role in ["storage", "users", "audit", "backup"] {
        let public = format!("postgres://{role}:{role}@127.0.0.1:5432/{role}");
        let refused = tokio_postgres::connect(&public, tokio_postgres::NoTls).await.err().map(|error| error.to_string());
        assert!(refused.is_some(), "{role} must not log in with its name as password");
    }
    let database = TestDb::fresh().await;
    let client = database.client().await;
    let one: i32 = client.query_one("SELECT 1", &[]).await.expect("the generated password works").get(0);
    assert_eq!(one, 1);
}
