//! "My history" (the person's own audit trail) and the admin pages: storage nodes,
//! backups with their progress, accounts and roles.

use askama::Template;
use axum::extract::{Path, Query, State};
use axum::http::HeaderMap;
use axum::response::{IntoResponse, Json, Redirect, Response};
use axum::Form;
use chatvault_proto::audit::v1::AuditQueryRequest;
use chatvault_proto::backup::v1::{
    create_backup_response, verify_backup_response, BackupFormat, CreateBackupRequest, ListBackupsRequest, Progress, VerifyBackupRequest,
};
use chatvault_proto::storage::v1::{ListNodesRequest, RegisterNodeRequest};
use chatvault_proto::users::v1::{ListAccountsRequest, MeRequest, SetRoleRequest};
use futures::StreamExt;
use serde::Deserialize;

use super::chats::date_time_text;
use super::import::wants_json;
use super::layout::{render, Chrome};
use crate::jobs::{Job, JobProgress, JobUpdate};
use crate::render::size_text;
use crate::session::Signed;
use crate::{AppState, WebError};

#[derive(Debug)]
pub struct HistoryRow {
    pub when: String,
    pub what: String,
    pub subject: String,
    pub service: String,
}

#[derive(Template)]
#[template(path = "history.html")]
struct HistoryPage {
    chrome: Chrome,
    rows: Vec<HistoryRow>,
    next_href: String,
}

#[derive(Debug, Default, Deserialize)]
pub struct PageQuery {
    #[serde(default)]
    page: String,
}

/// The event's name in words: `chatvault.storage.v1.FileStored` → `File stored`.
pub fn event_words(event_type: &str) -> String {
    let name = event_type.rsplit('.').next().unwrap_or(event_type);
    let mut words = String::new();
    for (index, character) in name.chars().enumerate() {
        if character.is_uppercase() && index > 0 {
            words.push(' ');
            words.extend(character.to_lowercase());
        } else {
            words.push(character);
        }
    }
    words
}

/// What the event was about: a file or chat name, an address, whatever the event names.
fn subject_of(event_json: &str, key: &str) -> String {
    let Ok(event) = serde_json::from_str::<serde_json::Value>(event_json) else {
        return key.to_owned();
    };
    // Events are `{ "<oneof case>": { fields } }`; the first matching field names it.
    let fields = event.as_object().and_then(|object| object.values().next()).cloned().unwrap_or(event);
    // The audit trail writes proto field names (`client_address`).
    if let Some(address) = fields.get("client_address").and_then(|address| address.as_str()).filter(|address| !address.is_empty()) {
        let agent = fields.get("user_agent").and_then(|agent| agent.as_str()).unwrap_or_default();
        return if agent.is_empty() { format!("from {address}") } else { format!("from {address} ({agent})") };
    }
    for field in ["name", "file_name", "address", "grantee", "username", "chat_id", "file_id"] {
        if let Some(value) = fields.get(field) {
            return value.as_str().map(str::to_owned).unwrap_or_else(|| value.to_string());
        }
    }
    key.to_owned()
}

/// The event types "My history" lists: what a person did (not the per-message records of
/// their imports, nor the rebalancer's part moves).
pub const HISTORY_EVENT_TYPES: &[&str] = &[
    "chatvault.chat.v1.ChatImported",
    "chatvault.chat.v1.ChatShared",
    "chatvault.chat.v1.ChatShareRevoked",
    "chatvault.files.v1.FileStored",
    "chatvault.files.v1.FileDeleted",
    "chatvault.files.v1.FileRenamed",
    "chatvault.files.v1.ShareLinkCreated",
    "chatvault.files.v1.ShareLinkRevoked",
    "chatvault.users.v1.AccountRegistered",
    "chatvault.users.v1.LoggedIn",
    "chatvault.users.v1.LoginFailed",
    "chatvault.users.v1.AccountLocked",
    "chatvault.users.v1.LoggedOut",
    "chatvault.users.v1.PasswordChanged",
    "chatvault.users.v1.RoleChanged",
    "chatvault.users.v1.RefreshTokenReused",
    "chatvault.bot.v1.TelegramLinked",
    "chatvault.bot.v1.TelegramUnlinked",
    "chatvault.bot.v1.DriveLinked",
    "chatvault.bot.v1.DriveUnlinked",
    "chatvault.bot.v1.PreferencesChanged",
    "chatvault.bot.v1.FileStored",
    "chatvault.bot.v1.FileStoreFailed",
];

/// `GET /history`: the signed-in person's own actions, newest first.
pub async fn history(State(state): State<AppState>, signed: Signed, Query(query): Query<PageQuery>) -> Result<Response, WebError> {
    let caller = &signed.caller;
    let request = AuditQueryRequest {
        actor: caller.username.clone(),
        limit: 100,
        page_token: query.page.clone(),
        event_types: HISTORY_EVENT_TYPES.iter().map(|event_type| (*event_type).to_owned()).collect(),
        ..Default::default()
    };
    let page = state.clients.audit().query(caller.request(request)).await?.into_inner();
    let rows = page
        .rows
        .iter()
        .map(|row| HistoryRow {
            when: date_time_text(Some(row.occurred_unix_micros.div_euclid(1_000_000))),
            what: event_words(&row.event_type),
            subject: subject_of(&row.event_json, &row.key),
            service: row.service.clone(),
        })
        .collect();
    let next_href = if page.next_page_token.is_empty() { String::new() } else { format!("/history?page={}", page.next_page_token) };
    render(&HistoryPage { chrome: Chrome::of(&signed, "My history", "history"), rows, next_href })
}

#[derive(Debug)]
pub struct NodeRow {
    pub node_id: String,
    pub address: String,
    pub up: bool,
    pub used: String,
    pub free: String,
    pub fill_percent: u64,
    pub part_count: u64,
}

#[derive(Debug)]
pub struct BackupRow {
    pub id: String,
    pub created: String,
    pub formats: String,
    pub size: String,
    pub rows: u64,
    pub files: u64,
}

#[derive(Debug)]
pub struct AccountRow {
    pub username: String,
    pub email: String,
    pub role: String,
    pub created: String,
}

#[derive(Template)]
#[template(path = "admin.html")]
struct AdminPage {
    chrome: Chrome,
    nodes: Vec<NodeRow>,
    nodes_up: usize,
    backups: Vec<BackupRow>,
    accounts: Vec<AccountRow>,
    accounts_next: String,
    jobs: Vec<Job>,
}

/// Refuses unless the caller is an admin now: the role the users service holds (a demoted
/// admin's session still carries the old role until its next refresh).
async fn require_admin(state: &AppState, signed: &Signed) -> Result<(), WebError> {
    let refused = || WebError::Status(tonic::Status::permission_denied("this page is for admins"));
    if !signed.caller.is_admin() {
        return Err(refused());
    }
    let account = state.clients.accounts().me(signed.caller.request(MeRequest {})).await?.into_inner();
    if account.role == chatvault_common::auth::ADMIN_ROLE {
        Ok(())
    } else {
        Err(refused())
    }
}

#[derive(Debug, Default, Deserialize)]
pub struct AdminQuery {
    #[serde(default)]
    accounts: String,
}

pub async fn overview(State(state): State<AppState>, signed: Signed, Query(query): Query<AdminQuery>) -> Result<Response, WebError> {
    require_admin(&state, &signed).await?;
    let caller = &signed.caller;
    let (mut files, mut backup, mut accounts) = (state.clients.files(), state.clients.backup(), state.clients.accounts());
    let (nodes, backups, accounts) = tokio::try_join!(
        files.list_nodes(caller.request(ListNodesRequest::default())),
        backup.list_backups(caller.request(ListBackupsRequest {})),
        accounts.list_accounts(caller.request(ListAccountsRequest { limit: 100, page_token: query.accounts.clone() })),
    )?;
    let nodes: Vec<NodeRow> = nodes
        .into_inner()
        .nodes
        .into_iter()
        .map(|node| {
            let capacity = node.used_bytes + node.free_bytes;
            NodeRow {
                up: node.state == "up",
                used: size_text(node.used_bytes),
                free: size_text(node.free_bytes),
                fill_percent: (node.used_bytes * 100).checked_div(capacity).unwrap_or(0),
                part_count: node.part_count,
                node_id: node.node_id,
                address: node.address,
            }
        })
        .collect();
    let backups = backups
        .into_inner()
        .backups
        .into_iter()
        .map(|backup| BackupRow {
            created: date_time_text(Some(backup.created_at_unix_ms.div_euclid(1000))),
            formats: backup.formats.join(", "),
            size: size_text(backup.total_bytes),
            rows: backup.tables.iter().map(|table| table.rows).sum(),
            files: backup.files_stored,
            id: backup.id,
        })
        .collect();
    let accounts = accounts.into_inner();
    let page = AdminPage {
        chrome: Chrome::of(&signed, "Admin", "admin"),
        nodes_up: nodes.iter().filter(|node| node.up).count(),
        nodes,
        backups,
        accounts_next: if accounts.next_page_token.is_empty() { String::new() } else { format!("/admin?accounts={}", accounts.next_page_token) },
        accounts: accounts
            .accounts
            .into_iter()
            .map(|account| AccountRow {
                created: date_time_text(Some(account.created_unix)),
                username: account.username,
                email: account.email,
                role: account.role,
            })
            .collect(),
        jobs: state.jobs.list(),
    };
    render(&page)
}

#[derive(Debug, Deserialize)]
pub struct NodeForm {
    address: String,
}

pub async fn add_node(State(state): State<AppState>, signed: Signed, Form(form): Form<NodeForm>) -> Result<Response, WebError> {
    require_admin(&state, &signed).await?;
    let registered = state
        .clients
        .files()
        .register_node(signed.caller.request(RegisterNodeRequest { address: form.address.trim().to_owned() }))
        .await?
        .into_inner();
    let _ = state.clients.files().list_nodes(signed.caller.request(ListNodesRequest { consistency_token: registered.consistency_token })).await?;
    Ok(Redirect::to("/admin#nodes").into_response())
}

fn job_progress(progress: Progress) -> JobProgress {
    JobProgress { phase: progress.phase, item: progress.item, done: progress.done, total: progress.total, unit: progress.unit }
}

#[derive(Debug, Deserialize)]
pub struct BackupForm {
    /// `csv`, `parquet` or `both`.
    #[serde(default)]
    format: String,
    #[serde(default)]
    with_files: Option<String>,
}

pub async fn create_backup(State(state): State<AppState>, signed: Signed, Form(form): Form<BackupForm>) -> Result<Response, WebError> {
    require_admin(&state, &signed).await?;
    let format = match form.format.as_str() {
        "csv" => BackupFormat::Csv,
        "parquet" => BackupFormat::Parquet,
        _ => BackupFormat::Both,
    };
    let request = CreateBackupRequest { format: format as i32, chat_ids: Vec::new(), with_files: form.with_files.is_some() };
    let stream = state.clients.backup().create_backup(signed.caller.request(request)).await?.into_inner();
    let updates = stream.map(|message| {
        message.map(|message| match message.message {
            Some(create_backup_response::Message::Progress(progress)) => JobUpdate::Progress(job_progress(progress)),
            Some(create_backup_response::Message::Backup(backup)) => {
                JobUpdate::Done(format!("backup {} written: {} in {} file(s)", backup.id, size_text(backup.total_bytes), backup.tables.len()))
            }
            None => JobUpdate::Progress(JobProgress::default()),
        })
    });
    let id = state.jobs.start("Creating a backup".to_owned(), signed.caller.username.clone(), updates);
    Ok(Redirect::to(&format!("/admin/jobs/{id}")).into_response())
}

pub async fn verify_backup(State(state): State<AppState>, signed: Signed, Path(backup_id): Path<String>) -> Result<Response, WebError> {
    require_admin(&state, &signed).await?;
    let stream =
        state.clients.backup().verify_backup(signed.caller.request(VerifyBackupRequest { backup_id: backup_id.clone() })).await?.into_inner();
    let updates = stream.map(|message| {
        message.map(|message| match message.message {
            Some(verify_backup_response::Message::Progress(progress)) => JobUpdate::Progress(job_progress(progress)),
            Some(verify_backup_response::Message::Result(result)) if result.ok => JobUpdate::Done(format!(
                "backup {} is intact: {} rows and {} files checked",
                result.backup_id, result.rows_checked, result.files_checked
            )),
            Some(verify_backup_response::Message::Result(result)) => {
                JobUpdate::Done(format!("backup {} has problems: {}", result.backup_id, result.problems.join("; ")))
            }
            None => JobUpdate::Progress(JobProgress::default()),
        })
    });
    let id = state.jobs.start(format!("Verifying backup {backup_id}"), signed.caller.username.clone(), updates);
    Ok(Redirect::to(&format!("/admin/jobs/{id}")).into_response())
}

#[derive(Template)]
#[template(path = "job.html")]
struct JobPage {
    chrome: Chrome,
    job: Job,
    percent: u64,
}

/// `GET /admin/jobs/<id>`: the operation's page (JSON for the page script, which polls it).
pub async fn job(State(state): State<AppState>, signed: Signed, headers: HeaderMap, Path(job_id): Path<String>) -> Result<Response, WebError> {
    require_admin(&state, &signed).await?;
    let job = state.jobs.get(&job_id).ok_or_else(|| WebError::NotFound(format!("no operation {job_id} on this web instance")))?;
    let percent = (job.progress.done.min(job.progress.total) * 100).checked_div(job.progress.total).unwrap_or(0);
    if wants_json(&headers) {
        return Ok(Json(serde_json::json!({ "job": job, "percent": percent })).into_response());
    }
    render(&JobPage { chrome: Chrome::of(&signed, job.title.clone(), "admin"), job, percent })
}

#[derive(Debug, Deserialize)]
pub struct RoleForm {
    role: String,
}

pub async fn set_role(
    State(state): State<AppState>,
    signed: Signed,
    Path(username): Path<String>,
    Form(form): Form<RoleForm>,
) -> Result<Response, WebError> {
    require_admin(&state, &signed).await?;
    state.clients.accounts().set_role(signed.caller.request(SetRoleRequest { username, role: form.role })).await?;
    Ok(Redirect::to("/admin#accounts").into_response())
}

#[cfg(test)]
mod tests {
    use super::{event_words, subject_of};

    #[test]
    fn events_read_as_words_with_their_subject() {
        assert_eq!(event_words("chatvault.files.v1.FileStored"), "File stored");
        assert_eq!(event_words("chatvault.users.v1.LoggedIn"), "Logged in");
        assert_eq!(subject_of(r#"{"file_stored":{"file_id":"f1","name":"a.pdf"}}"#, "f1"), "a.pdf");
        assert_eq!(subject_of("not json", "key7"), "key7");
        assert_eq!(
            subject_of(r#"{"logged_in":{"username":"ann","client_address":"127.0.0.1","user_agent":"Chrome"}}"#, "k"),
            "from 127.0.0.1 (Chrome)"
        );
    }
}
