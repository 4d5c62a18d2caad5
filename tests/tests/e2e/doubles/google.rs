//! A wire-level double of Google's OAuth 2.0 endpoints and the Drive REST API v3.
//!
//! One server, configured in the bot as:
//! - authorization URL `{base}/o/oauth2/v2/auth` (PKCE with S256 required, scope exactly
//!   [`DRIVE_FILE_SCOPE`]; consent is simulated: it redirects at once),
//! - token URL `{base}/token` (`authorization_code` and `refresh_token` grants; client
//!   credentials by HTTP Basic, URL-encoded as RFC 6749 §2.3.1 says, or in the form),
//! - revocation URL `{base}/revoke`,
//! - Drive API base `{base}`: `{base}/drive/v3/files...` and `{base}/upload/drive/v3/files`.
//!
//! Drive answers honour `fields` like the real service: without it a file is
//! `kind,id,name,mimeType` and a list is `kind,incompleteSearch,nextPageToken,
//! files(kind,id,name,mimeType)`; ask for `parents`, `size`, `appProperties`,
//! `sha256Checksum`, `createdTime` explicitly. `size` is a decimal string.
//!
//! Each consent is a Google account of its own (`g-user-N`) unless
//! [`GoogleDouble::next_consent_user`] names one; files are visible only to their owner.
//! Every request is recorded ([`GoogleRequest`], with the status once answered), and knobs
//! inject the faults a client must survive: refused consent, expired tokens, quota errors,
//! interrupted and stalled uploads, slow folder creation.

// Request checks return the error answer itself (`Result<_, Response>`), as axum handlers do.
#![allow(clippy::result_large_err)]

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::fmt;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use axum::body::Bytes;
use axum::extract::{DefaultBodyLimit, Request, State};
use axum::http::{header, HeaderMap, Method, StatusCode};
use axum::response::{Html, IntoResponse, Response};
use axum::{Json, Router};
use base64::Engine as _;
use serde_json::{json, Map, Value};
use sha2::{Digest, Sha256};
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;

use super::{bump, encode_form, parse_form, percent_decode, random_hex, wait_for_change};

/// The only scope the double grants.
pub(crate) const DRIVE_FILE_SCOPE: &str = "https://www.googleapis.com/auth/drive.file";
/// Drive's folder MIME type.
pub(crate) const FOLDER_MIME: &str = "application/vnd.google-apps.folder";
/// Lifetime of an access token, in seconds, as the token endpoint states it.
pub(crate) const ACCESS_TOKEN_SECONDS: u64 = 3599;
/// The most bytes of key plus value one app property may have.
const APP_PROPERTY_BYTES: usize = 124;
const DEFAULT_FILE_FIELDS: &str = "kind,id,name,mimeType";
const DEFAULT_LIST_FIELDS: &str = "kind,incompleteSearch,nextPageToken,files(kind,id,name,mimeType)";

/// Which quota error [`GoogleDouble::quota_errors`] injects.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum QuotaKind {
    /// 403 `userRateLimitExceeded`.
    UserRateLimit,
    /// 429 `rateLimitExceeded`.
    TooManyRequests,
}

/// One request the double received.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct GoogleRequest {
    pub(crate) method: String,
    pub(crate) path: String,
    /// The raw query string, without `?`.
    pub(crate) query: String,
    pub(crate) authorization: Option<String>,
    pub(crate) content_range: Option<String>,
    pub(crate) body_len: usize,
    /// A JSON body, or a form body as an object of strings.
    pub(crate) form_or_json: Option<Value>,
    /// The HTTP status answered; `None` while the request is in flight (or stalled).
    pub(crate) status: Option<u16>,
}

impl GoogleRequest {
    /// A query parameter, decoded.
    pub(crate) fn query_param(&self, key: &str) -> Option<String> {
        parse_form(&self.query).into_iter().find(|(name, _)| name == key).map(|(_, value)| value)
    }
}

/// A Drive file or folder.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct DriveFile {
    pub(crate) id: String,
    pub(crate) name: String,
    pub(crate) mime_type: String,
    /// Parent folder ids (a user's root folder id stands for "My Drive").
    pub(crate) parents: Vec<String>,
    pub(crate) app_properties: BTreeMap<String, String>,
    /// Bytes of content; `None` for folders and metadata-only files.
    pub(crate) size: Option<u64>,
    /// Hex SHA-256 of the content, for files with content.
    pub(crate) sha256: Option<String>,
    /// The Google user id of the owner.
    pub(crate) owner: String,
    /// RFC 3339 creation time.
    pub(crate) created_time: String,
}

impl DriveFile {
    pub(crate) fn is_folder(&self) -> bool {
        self.mime_type == FOLDER_MIME
    }
}

/// One simulated consent: the code handed out and who consented.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Consent {
    pub(crate) code: String,
    pub(crate) google_user: String,
    pub(crate) redirect_uri: String,
    pub(crate) state: String,
    /// Every query parameter of the authorization request (e.g. `access_type`, `prompt`).
    pub(crate) params: BTreeMap<String, String>,
}

/// A resumable upload session's progress.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct UploadState {
    pub(crate) upload_id: String,
    pub(crate) owner: String,
    /// The `name` of the file's metadata.
    pub(crate) name: String,
    /// Bytes received and kept so far.
    pub(crate) received: u64,
    /// The total length, once declared (`X-Upload-Content-Length` or `Content-Range`).
    pub(crate) total: Option<u64>,
    /// The file created when the upload completed.
    pub(crate) file_id: Option<String>,
}

/// A running Google double; dropping it stops the server (and ends stalled requests).
#[derive(Debug)]
pub(crate) struct GoogleDouble {
    inner: Arc<Inner>,
}

impl Drop for GoogleDouble {
    fn drop(&mut self) {
        self.inner.shutdown.cancel();
    }
}

impl GoogleDouble {
    /// Starts the double on `127.0.0.1:0` for one OAuth client.
    pub(crate) async fn start(client_id: &str, client_secret: &str) -> Self {
        super::install_crypto_provider();
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind the Google double");
        let address = listener.local_addr().expect("the Google double's address");
        let (changes, _) = watch::channel(0);
        let inner = Arc::new(Inner {
            client_id: client_id.to_owned(),
            client_secret: client_secret.to_owned(),
            base_url: format!("http://{address}"),
            state: Mutex::new(GState::default()),
            changes,
            shutdown: CancellationToken::new(),
        });
        let app = Router::new().fallback(handle).layer(DefaultBodyLimit::disable()).with_state(inner.clone());
        let shutdown = inner.shutdown.clone();
        tokio::spawn(async move { axum::serve(listener, app).with_graceful_shutdown(shutdown.cancelled_owned()).await });
        Self { inner }
    }

    /// `http://127.0.0.1:PORT`.
    pub(crate) fn base_url(&self) -> String {
        self.inner.base_url.clone()
    }

    /// `{base}/o/oauth2/v2/auth`.
    pub(crate) fn auth_url(&self) -> String {
        format!("{}/o/oauth2/v2/auth", self.inner.base_url)
    }

    /// `{base}/token`.
    pub(crate) fn token_url(&self) -> String {
        format!("{}/token", self.inner.base_url)
    }

    /// `{base}/revoke`.
    pub(crate) fn revoke_url(&self) -> String {
        format!("{}/revoke", self.inner.base_url)
    }

    /// The next consent redirects with `error=access_denied`.
    pub(crate) fn deny_next_consent(&self) {
        self.inner.lock().deny_next = true;
    }

    /// The next consent is given by the Google account `google_user` (e.g. the same
    /// account connecting again) instead of a new one.
    pub(crate) fn next_consent_user(&self, google_user: &str) {
        self.inner.lock().next_user = Some(google_user.to_owned());
    }

    /// Every refresh token issued so far stops working (`invalid_grant`).
    pub(crate) fn expire_refresh_tokens(&self) {
        self.inner.lock().grants.iter_mut().for_each(|grant| grant.refresh_expired = true);
    }

    /// Every access token issued so far stops working (Drive answers 401).
    pub(crate) fn expire_access_tokens(&self) {
        self.inner.lock().access.values_mut().for_each(|access| access.valid = false);
    }

    /// Folder creations wait `delay` before the folder exists and is answered, widening
    /// check-then-create races (simulated latency).
    pub(crate) fn folder_create_delay(&self, delay: Duration) {
        self.inner.lock().folder_delay = Some(delay);
    }

    /// The next upload PUT whose bytes cover `byte_offset` keeps the bytes before it and
    /// answers 503, as an interrupted upload does.
    pub(crate) fn fail_upload_at(&self, byte_offset: u64) {
        self.inner.lock().fail_at = Some(byte_offset);
    }

    /// The next upload PUT whose bytes cover `byte_offset` keeps the bytes before it and
    /// never answers (until the double is dropped).
    pub(crate) fn stall_upload_at(&self, byte_offset: u64) {
        self.inner.lock().stall_at = Some(byte_offset);
    }

    /// The next `count` Drive calls (list, create, get, upload start or PUT) answer a quota
    /// error of `kind`.
    pub(crate) fn quota_errors(&self, count: usize, kind: QuotaKind) {
        self.inner.lock().quota.extend(std::iter::repeat_n(kind, count));
    }

    /// Every request received so far, in order of arrival.
    pub(crate) fn requests(&self) -> Vec<GoogleRequest> {
        self.inner.lock().requests.clone()
    }

    /// Every simulated consent, in order.
    pub(crate) fn consents(&self) -> Vec<Consent> {
        self.inner.lock().consents.clone()
    }

    /// Every Drive file and folder of every user, in creation order.
    pub(crate) fn all_files(&self) -> Vec<DriveFile> {
        self.inner.lock().files.clone()
    }

    /// The folders named `name`, of every user, in creation order.
    pub(crate) fn folders_named(&self, name: &str) -> Vec<DriveFile> {
        self.inner.lock().files.iter().filter(|file| file.is_folder() && file.name == name).cloned().collect()
    }

    /// The files and folders whose parent is `parent_id`, in creation order.
    pub(crate) fn files_in(&self, parent_id: &str) -> Vec<DriveFile> {
        self.inner.lock().files.iter().filter(|file| file.parents.iter().any(|parent| parent == parent_id)).cloned().collect()
    }

    /// The root folder ("My Drive") id of a Google user, once they consented.
    pub(crate) fn root_folder_of(&self, google_user: &str) -> Option<String> {
        self.inner.lock().roots.get(google_user).cloned()
    }

    /// The content of a file.
    pub(crate) fn file_bytes(&self, file_id: &str) -> Option<Vec<u8>> {
        self.inner.lock().contents.get(file_id).cloned()
    }

    /// Every upload PUT as (upload id, `Content-Range` header or "" without one), in order.
    pub(crate) fn upload_puts(&self) -> Vec<(String, String)> {
        self.inner.lock().upload_puts.clone()
    }

    /// Every resumable upload session, in order of creation.
    pub(crate) fn uploads(&self) -> Vec<UploadState> {
        self.inner.lock().uploads.iter().map(Session::view).collect()
    }

    /// Waits until `predicate` holds for the requests recorded so far; false after `limit`.
    pub(crate) async fn wait_for(&self, predicate: impl Fn(&[GoogleRequest]) -> bool, limit: Duration) -> bool {
        wait_for_change(&self.inner.changes, limit, || predicate(&self.inner.lock().requests).then_some(())).await.is_some()
    }

    /// Waits until an upload session (`upload_id`, or any with `None`) has received at
    /// least `at_least` bytes; returns its state, `None` after `limit`.
    pub(crate) async fn wait_for_upload_bytes(&self, upload_id: Option<&str>, at_least: u64, limit: Duration) -> Option<UploadState> {
        wait_for_change(&self.inner.changes, limit, || {
            self.inner
                .lock()
                .uploads
                .iter()
                .find(|session| upload_id.is_none_or(|wanted| session.upload_id == wanted) && session.received() >= at_least)
                .map(Session::view)
        })
        .await
    }
}

#[derive(Debug)]
struct Inner {
    client_id: String,
    client_secret: String,
    base_url: String,
    state: Mutex<GState>,
    /// Bumped on every state change; waiters watch it.
    changes: watch::Sender<u64>,
    shutdown: CancellationToken,
}

impl Inner {
    fn lock(&self) -> MutexGuard<'_, GState> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

#[derive(Debug)]
struct AuthCode {
    challenge: String,
    redirect_uri: String,
    user: String,
    used: bool,
}

/// One consent's tokens: a refresh token and the access tokens minted from it.
#[derive(Debug)]
struct Grant {
    user: String,
    refresh_token: String,
    revoked: bool,
    refresh_expired: bool,
}

#[derive(Debug)]
struct Access {
    grant: usize,
    valid: bool,
}

/// What a new file will be, validated.
#[derive(Debug, Clone)]
struct NewFile {
    name: String,
    mime_type: Option<String>,
    parents: Vec<String>,
    app_properties: BTreeMap<String, String>,
}

struct Session {
    upload_id: String,
    owner: String,
    file: NewFile,
    upload_type: Option<String>,
    fields: Option<String>,
    total: Option<u64>,
    data: Vec<u8>,
    /// Bytes kept; equals `data.len()` until completion moves the data into the file.
    kept: u64,
    file_id: Option<String>,
}

impl Session {
    fn received(&self) -> u64 {
        self.kept
    }

    fn view(&self) -> UploadState {
        UploadState {
            upload_id: self.upload_id.clone(),
            owner: self.owner.clone(),
            name: self.file.name.clone(),
            received: self.kept,
            total: self.total,
            file_id: self.file_id.clone(),
        }
    }
}

impl fmt::Debug for Session {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        formatter
            .debug_struct("Session")
            .field("upload_id", &self.upload_id)
            .field("owner", &self.owner)
            .field("file", &self.file)
            .field("total", &self.total)
            .field("kept", &self.kept)
            .field("file_id", &self.file_id)
            .finish_non_exhaustive()
    }
}

#[derive(Debug, Default)]
struct GState {
    requests: Vec<GoogleRequest>,
    deny_next: bool,
    next_user: Option<String>,
    users_created: u64,
    consents: Vec<Consent>,
    codes: HashMap<String, AuthCode>,
    grants: Vec<Grant>,
    access: HashMap<String, Access>,
    files: Vec<DriveFile>,
    contents: HashMap<String, Vec<u8>>,
    /// Google user -> root folder id.
    roots: HashMap<String, String>,
    uploads: Vec<Session>,
    upload_puts: Vec<(String, String)>,
    fail_at: Option<u64>,
    stall_at: Option<u64>,
    quota: VecDeque<QuotaKind>,
    folder_delay: Option<Duration>,
}

/// A request, read whole.
#[derive(Debug)]
struct Incoming {
    method: Method,
    path: String,
    query: Vec<(String, String)>,
    headers: HeaderMap,
    body: Bytes,
}

impl Incoming {
    fn param(&self, key: &str) -> Option<String> {
        self.query.iter().find(|(name, _)| name == key).map(|(_, value)| value.clone())
    }

    fn header(&self, name: &str) -> Option<String> {
        self.headers.get(name).and_then(|value| value.to_str().ok()).map(str::to_owned)
    }

    fn content_type(&self) -> String {
        self.header(header::CONTENT_TYPE.as_str()).unwrap_or_default().to_ascii_lowercase()
    }

    /// A form body as pairs.
    fn form(&self) -> Vec<(String, String)> {
        parse_form(&String::from_utf8_lossy(&self.body))
    }

    fn form_value(&self, key: &str) -> Option<String> {
        self.form().into_iter().find(|(name, _)| name == key).map(|(_, value)| value)
    }

    /// The body as recorded: JSON, or a form as an object of strings.
    fn form_or_json(&self) -> Option<Value> {
        let content_type = self.content_type();
        if content_type.starts_with("application/json") {
            serde_json::from_slice(&self.body).ok()
        } else if content_type.starts_with("application/x-www-form-urlencoded") {
            Some(Value::Object(self.form().into_iter().map(|(key, value)| (key, Value::String(value))).collect()))
        } else {
            None
        }
    }
}

/// Reads the request whole, records it, routes it, and records the answer's status.
async fn handle(State(inner): State<Arc<Inner>>, request: Request) -> Response {
    let (parts, body) = request.into_parts();
    let Ok(body) = axum::body::to_bytes(body, usize::MAX).await else {
        return StatusCode::BAD_REQUEST.into_response();
    };
    let raw_query = parts.uri.query().unwrap_or_default().to_owned();
    let incoming = Incoming { method: parts.method, path: parts.uri.path().to_owned(), query: parse_form(&raw_query), headers: parts.headers, body };
    let record = GoogleRequest {
        method: incoming.method.to_string(),
        path: incoming.path.clone(),
        query: raw_query,
        authorization: incoming.header(header::AUTHORIZATION.as_str()),
        content_range: incoming.header(header::CONTENT_RANGE.as_str()),
        body_len: incoming.body.len(),
        form_or_json: incoming.form_or_json(),
        status: None,
    };
    let index = {
        let mut state = inner.lock();
        state.requests.push(record);
        state.requests.len() - 1
    };
    bump(&inner.changes);
    let response = route(&inner, &incoming).await;
    if let Some(record) = inner.lock().requests.get_mut(index) {
        record.status = Some(response.status().as_u16());
    }
    bump(&inner.changes);
    response
}

async fn route(inner: &Arc<Inner>, request: &Incoming) -> Response {
    let path = request.path.as_str();
    match (&request.method, path) {
        (&Method::GET, "/o/oauth2/v2/auth") => authorize(inner, request),
        (&Method::POST, "/token") => token(inner, request),
        (&Method::POST, "/revoke") => revoke(inner, request),
        _ if path.starts_with("/drive/v3/files") || path.starts_with("/upload/drive/v3/files") => drive(inner, request).await,
        _ => drive_error(StatusCode::NOT_FOUND, "global", "notFound", "Not Found"),
    }
}

// ---- OAuth ----

/// The HTML error page the authorization endpoint shows (it never redirects on these).
fn auth_error_page(status: StatusCode, error: &str, detail: &str) -> Response {
    (
        status,
        Html(format!(
            "<html><body><h1>Access blocked: Authorization Error</h1><p>Error {}: {error}</p><p>{detail}</p></body></html>",
            status.as_u16()
        )),
    )
        .into_response()
}

fn oauth_error(status: StatusCode, error: &str, description: &str) -> Response {
    (status, Json(json!({"error": error, "error_description": description}))).into_response()
}

/// `GET /o/oauth2/v2/auth`: checks the request and simulates consent: 302 to
/// `redirect_uri?state=..&code=..&scope=..` (or `error=access_denied&state=..`).
fn authorize(inner: &Inner, request: &Incoming) -> Response {
    let param = |key: &str| request.param(key).filter(|value| !value.is_empty());
    if param("client_id").as_deref() != Some(inner.client_id.as_str()) {
        return auth_error_page(StatusCode::UNAUTHORIZED, "invalid_client", "The OAuth client was not found.");
    }
    let Some(redirect_uri) = param("redirect_uri") else {
        return auth_error_page(StatusCode::BAD_REQUEST, "invalid_request", "Missing required parameter: redirect_uri");
    };
    if param("response_type").as_deref() != Some("code") {
        return auth_error_page(StatusCode::BAD_REQUEST, "unsupported_response_type", "Only response_type=code is supported.");
    }
    let scope = param("scope").unwrap_or_default();
    if scope != DRIVE_FILE_SCOPE {
        return auth_error_page(StatusCode::BAD_REQUEST, "invalid_scope", &format!("Some requested scopes were invalid: {scope}"));
    }
    let Some(state) = param("state") else {
        return auth_error_page(StatusCode::BAD_REQUEST, "invalid_request", "Missing required parameter: state");
    };
    let Some(challenge) = param("code_challenge").filter(|_| param("code_challenge_method").as_deref() == Some("S256")) else {
        return auth_error_page(StatusCode::BAD_REQUEST, "invalid_request", "PKCE is required: code_challenge with code_challenge_method=S256.");
    };
    let separator = if redirect_uri.contains('?') { '&' } else { '?' };
    let mut guard = inner.lock();
    let location = if std::mem::take(&mut guard.deny_next) {
        format!("{redirect_uri}{separator}{}", encode_form(&[("error", "access_denied"), ("state", &state)]))
    } else {
        let user = match guard.next_user.take() {
            Some(user) => user,
            None => {
                guard.users_created += 1;
                format!("g-user-{}", guard.users_created)
            }
        };
        let root = format!("0A{}", &random_hex()[..17]);
        guard.roots.entry(user.clone()).or_insert(root);
        let code = format!("4/0A{}", random_hex());
        guard.codes.insert(code.clone(), AuthCode { challenge, redirect_uri: redirect_uri.clone(), user: user.clone(), used: false });
        guard.consents.push(Consent {
            code: code.clone(),
            google_user: user,
            redirect_uri: redirect_uri.clone(),
            state: state.clone(),
            params: request.query.iter().cloned().collect(),
        });
        format!("{redirect_uri}{separator}{}", encode_form(&[("state", &state), ("code", &code), ("scope", DRIVE_FILE_SCOPE)]))
    };
    drop(guard);
    bump(&inner.changes);
    (StatusCode::FOUND, [(header::LOCATION, location)]).into_response()
}

/// The client credentials of a token or revocation request: HTTP Basic (each part
/// URL-encoded) or `client_id` / `client_secret` form fields.
fn client_credentials(request: &Incoming) -> Option<(String, String)> {
    if let Some(basic) = request.header(header::AUTHORIZATION.as_str()).and_then(|value| value.strip_prefix("Basic ").map(str::to_owned)) {
        let decoded = base64::engine::general_purpose::STANDARD.decode(basic.trim()).ok()?;
        let decoded = String::from_utf8(decoded).ok()?;
        let (id, secret) = decoded.split_once(':')?;
        return Some((percent_decode(id, true), percent_decode(secret, true)));
    }
    Some((request.form_value("client_id")?, request.form_value("client_secret").unwrap_or_default()))
}

fn token_answer(access_token: &str, refresh_token: Option<&str>) -> Response {
    let mut answer = json!({"access_token": access_token, "expires_in": ACCESS_TOKEN_SECONDS, "scope": DRIVE_FILE_SCOPE, "token_type": "Bearer"});
    if let Some(refresh_token) = refresh_token {
        answer["refresh_token"] = json!(refresh_token);
    }
    ([(header::CACHE_CONTROL, "no-store")], Json(answer)).into_response()
}

/// `POST /token`: the `authorization_code` grant (PKCE checked) and the `refresh_token`
/// grant.
fn token(inner: &Inner, request: &Incoming) -> Response {
    match client_credentials(request) {
        Some((id, secret)) if id == inner.client_id && secret == inner.client_secret => {}
        _ => return oauth_error(StatusCode::UNAUTHORIZED, "invalid_client", "Unauthorized"),
    }
    let grant_type = request.form_value("grant_type").unwrap_or_default();
    let response = match grant_type.as_str() {
        "authorization_code" => exchange_code(&mut inner.lock(), request),
        "refresh_token" => refresh(&mut inner.lock(), request),
        other => oauth_error(StatusCode::BAD_REQUEST, "unsupported_grant_type", &format!("Invalid grant_type: {other}")),
    };
    bump(&inner.changes);
    response
}

fn new_access_token(state: &mut GState, grant: usize) -> String {
    let access_token = format!("ya29.a0{}{}", random_hex(), random_hex());
    state.access.insert(access_token.clone(), Access { grant, valid: true });
    access_token
}

fn exchange_code(state: &mut GState, request: &Incoming) -> Response {
    let code = request.form_value("code").unwrap_or_default();
    let Some(auth_code) = state.codes.get(&code).filter(|auth_code| !auth_code.used) else {
        return oauth_error(StatusCode::BAD_REQUEST, "invalid_grant", "Malformed auth code.");
    };
    if request.form_value("redirect_uri").as_deref() != Some(auth_code.redirect_uri.as_str()) {
        return oauth_error(StatusCode::BAD_REQUEST, "redirect_uri_mismatch", "Bad Request");
    }
    let Some(verifier) = request.form_value("code_verifier") else {
        return oauth_error(StatusCode::BAD_REQUEST, "invalid_grant", "Missing code verifier.");
    };
    let computed = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(Sha256::digest(verifier.as_bytes()));
    if computed != auth_code.challenge {
        return oauth_error(StatusCode::BAD_REQUEST, "invalid_grant", "Invalid code verifier.");
    }
    let user = auth_code.user.clone();
    if let Some(auth_code) = state.codes.get_mut(&code) {
        auth_code.used = true;
    }
    let refresh_token = format!("1//0{}{}", random_hex(), random_hex());
    state.grants.push(Grant { user, refresh_token: refresh_token.clone(), revoked: false, refresh_expired: false });
    let grant = state.grants.len() - 1;
    let access_token = new_access_token(state, grant);
    token_answer(&access_token, Some(&refresh_token))
}

fn refresh(state: &mut GState, request: &Incoming) -> Response {
    let refresh_token = request.form_value("refresh_token").unwrap_or_default();
    let grant = state.grants.iter().position(|grant| grant.refresh_token == refresh_token && !grant.revoked && !grant.refresh_expired);
    match grant {
        Some(grant) => token_answer(&new_access_token(state, grant), None),
        None => oauth_error(StatusCode::BAD_REQUEST, "invalid_grant", "Token has been expired or revoked."),
    }
}

/// `POST /revoke`: `token` (a refresh or access token, in the form or the query) ends
/// the whole grant: its refresh token and all its access tokens.
fn revoke(inner: &Inner, request: &Incoming) -> Response {
    let token = request.form_value("token").or_else(|| request.param("token")).unwrap_or_default();
    let mut state = inner.lock();
    let by_access = state.access.get(&token).map(|access| access.grant);
    let grant = by_access.or_else(|| state.grants.iter().position(|grant| grant.refresh_token == token));
    let response = match grant.and_then(|grant| state.grants.get_mut(grant)).filter(|grant| !grant.revoked) {
        Some(grant) => {
            grant.revoked = true;
            ([(header::CONTENT_TYPE, "application/json; charset=utf-8")], "{}").into_response()
        }
        None => oauth_error(StatusCode::BAD_REQUEST, "invalid_token", "Token expired or revoked"),
    };
    drop(state);
    bump(&inner.changes);
    response
}

// ---- Drive ----

fn drive_error(status: StatusCode, domain: &str, reason: &str, message: &str) -> Response {
    let error = json!({"error": {"code": status.as_u16(), "message": message, "errors": [{"domain": domain, "reason": reason, "message": message}]}});
    (status, Json(error)).into_response()
}

fn not_found(file_id: &str) -> Response {
    let message = format!("File not found: {file_id}.");
    let error = json!({"error": {"code": 404, "message": message, "errors": [{"message": message, "domain": "global", "reason": "notFound", "location": "fileId", "locationType": "parameter"}]}});
    (StatusCode::NOT_FOUND, Json(error)).into_response()
}

fn invalid(message: &str) -> Response {
    drive_error(StatusCode::BAD_REQUEST, "global", "invalid", message)
}

fn unauthenticated(missing: bool) -> Response {
    let error = if missing {
        json!({"error": {"code": 401, "message": "Request is missing required authentication credential. Expected OAuth 2 access token, login cookie or other valid authentication credential.", "errors": [{"message": "Login Required.", "domain": "global", "reason": "required", "location": "Authorization", "locationType": "header"}], "status": "UNAUTHENTICATED"}})
    } else {
        json!({"error": {"code": 401, "message": "Request had invalid authentication credentials.", "errors": [{"domain": "global", "reason": "authError", "message": "Invalid Credentials"}], "status": "UNAUTHENTICATED"}})
    };
    (StatusCode::UNAUTHORIZED, [(header::WWW_AUTHENTICATE, "Bearer realm=\"https://accounts.google.com/\", error=\"invalid_token\"")], Json(error))
        .into_response()
}

fn quota_error(kind: QuotaKind) -> Response {
    match kind {
        QuotaKind::UserRateLimit => {
            let error = json!({"error": {"code": 403, "message": "User Rate Limit Exceeded", "errors": [{"domain": "usageLimits", "reason": "userRateLimitExceeded", "message": "User Rate Limit Exceeded"}]}});
            (StatusCode::FORBIDDEN, Json(error)).into_response()
        }
        QuotaKind::TooManyRequests => {
            let error = json!({"error": {"code": 429, "message": "Rate Limit Exceeded", "errors": [{"domain": "usageLimits", "reason": "rateLimitExceeded"}]}});
            (StatusCode::TOO_MANY_REQUESTS, Json(error)).into_response()
        }
    }
}

/// The Google user of a valid `Authorization: Bearer` access token.
fn authenticate(state: &GState, request: &Incoming) -> Result<String, Response> {
    let Some(authorization) = request.header(header::AUTHORIZATION.as_str()) else {
        return Err(unauthenticated(true));
    };
    let token = authorization.strip_prefix("Bearer ").or_else(|| authorization.strip_prefix("bearer ")).unwrap_or_default().trim();
    state
        .access
        .get(token)
        .filter(|access| access.valid)
        .and_then(|access| state.grants.get(access.grant))
        .filter(|grant| !grant.revoked)
        .map(|grant| grant.user.clone())
        .ok_or_else(|| unauthenticated(false))
}

async fn drive(inner: &Arc<Inner>, request: &Incoming) -> Response {
    let path = request.path.as_str();
    let method = &request.method;
    if path == "/upload/drive/v3/files" && request.param("upload_id").is_some() && (*method == Method::PUT || *method == Method::POST) {
        if let Some(kind) = inner.lock().quota.pop_front() {
            return quota_error(kind);
        }
        return put_upload(inner, request).await;
    }
    let user = {
        let mut state = inner.lock();
        let user = authenticate(&state, request);
        match user {
            Ok(user) => match state.quota.pop_front() {
                Some(kind) => return quota_error(kind),
                None => user,
            },
            Err(response) => return response,
        }
    };
    let file_path = path.strip_prefix("/drive/v3/files/").filter(|id| !id.is_empty() && !id.contains('/'));
    match (method, path, file_path) {
        (&Method::GET, "/drive/v3/files", _) => list(inner, &user, request),
        (&Method::POST, "/drive/v3/files", _) => create(inner, &user, request).await,
        (&Method::POST, "/upload/drive/v3/files", _) => start_upload(inner, &user, request),
        (&Method::GET, _, Some(file_id)) => get(inner, &user, &percent_decode(file_id, false), request),
        (&Method::DELETE, _, Some(file_id)) => delete(inner, &user, &percent_decode(file_id, false)),
        _ => drive_error(StatusCode::NOT_FOUND, "global", "notFound", "Not Found"),
    }
}

/// A request's `fields` (or the default), parsed.
fn selection(request_fields: Option<&str>, default: &str) -> Result<fields::Selection, Response> {
    fields::parse(request_fields.unwrap_or(default)).map_err(|error| invalid(&format!("Invalid field selection {error}")))
}

fn json_answer(value: Value, selection: &fields::Selection) -> Response {
    Json(fields::select(&value, selection)).into_response()
}

/// A file as Drive's `File` resource (before `fields` selection).
fn file_json(file: &DriveFile) -> Value {
    let mut json = json!({
        "kind": "drive#file",
        "id": file.id,
        "name": file.name,
        "mimeType": file.mime_type,
        "parents": file.parents,
        "trashed": false,
        "createdTime": file.created_time,
        "modifiedTime": file.created_time,
    });
    if !file.app_properties.is_empty() {
        json["appProperties"] = json!(file.app_properties);
    }
    if let Some(size) = file.size {
        json["size"] = json!(size.to_string());
    }
    if let Some(sha256) = &file.sha256 {
        json["sha256Checksum"] = json!(sha256);
    }
    json
}

/// `GET /drive/v3/files`: the user's files matching `q`, `pageSize` (1..=1000, default
/// 100) at a time, `pageToken` continuing.
fn list(inner: &Inner, user: &str, request: &Incoming) -> Response {
    let clauses = match request.param("q").map(|q| query::parse(&q)).transpose() {
        Ok(clauses) => clauses.unwrap_or_default(),
        Err(error) => {
            let error = json!({"error": {"code": 400, "message": "Invalid Value", "errors": [{"domain": "global", "reason": "invalid", "message": format!("Invalid Value: {error}"), "locationType": "parameter", "location": "q"}]}});
            return (StatusCode::BAD_REQUEST, Json(error)).into_response();
        }
    };
    let selection = match selection(request.param("fields").as_deref(), DEFAULT_LIST_FIELDS) {
        Ok(selection) => selection,
        Err(response) => return response,
    };
    let page_size = request.param("pageSize").and_then(|size| size.parse::<usize>().ok()).unwrap_or(100).clamp(1, 1000);
    let skip = request.param("pageToken").and_then(|token| token.parse::<usize>().ok()).unwrap_or(0);
    let state = inner.lock();
    let root = state.roots.get(user).cloned().unwrap_or_default();
    let matching: Vec<&DriveFile> =
        state.files.iter().filter(|file| file.owner == user && clauses.iter().all(|clause| clause.matches(file, &root))).collect();
    let page: Vec<Value> = matching.iter().skip(skip).take(page_size).map(|file| file_json(file)).collect();
    let mut answer = json!({"kind": "drive#fileList", "incompleteSearch": false, "files": page});
    if matching.len() > skip + page_size {
        answer["nextPageToken"] = json!((skip + page_size).to_string());
    }
    json_answer(answer, &selection)
}

/// Reads JSON metadata from a body (empty: `{}`).
fn metadata_of(request: &Incoming) -> Result<Map<String, Value>, Response> {
    if request.body.is_empty() {
        return Ok(Map::new());
    }
    match serde_json::from_slice(&request.body) {
        Ok(Value::Object(metadata)) => Ok(metadata),
        _ => Err(drive_error(StatusCode::BAD_REQUEST, "global", "parseError", "Parse Error")),
    }
}

impl GState {
    /// Validates metadata for a new file of `user`: parents exist and are the user's
    /// folders (`root` or none: the user's root), at most one parent, app properties within
    /// 124 bytes each.
    fn new_file(&self, user: &str, metadata: &Map<String, Value>) -> Result<NewFile, Response> {
        let root = self.roots.get(user).cloned().unwrap_or_default();
        let mut parents = Vec::new();
        for parent in metadata.get("parents").and_then(Value::as_array).into_iter().flatten() {
            let parent = parent.as_str().unwrap_or_default();
            if parent == "root" || parent == root {
                parents.push(root.clone());
            } else if self.files.iter().any(|file| file.id == parent && file.owner == user && file.is_folder()) {
                parents.push(parent.to_owned());
            } else {
                return Err(not_found(parent));
            }
        }
        if parents.len() > 1 {
            return Err(drive_error(StatusCode::FORBIDDEN, "global", "cannotAddParent", "Increasing the number of parents is not allowed."));
        }
        if parents.is_empty() {
            parents.push(root);
        }
        let mut app_properties = BTreeMap::new();
        for (key, value) in metadata.get("appProperties").and_then(Value::as_object).into_iter().flatten() {
            let Some(value) = value.as_str() else { continue };
            if key.len() + value.len() > APP_PROPERTY_BYTES {
                return Err(invalid(&format!("The limit for this property's key and value ({APP_PROPERTY_BYTES} bytes) was exceeded: {key}")));
            }
            app_properties.insert(key.clone(), value.to_owned());
        }
        Ok(NewFile {
            name: metadata.get("name").and_then(Value::as_str).unwrap_or("Untitled").to_owned(),
            mime_type: metadata.get("mimeType").and_then(Value::as_str).map(str::to_owned),
            parents,
            app_properties,
        })
    }

    /// Creates a file (never deduplicating) and returns it.
    fn insert_file(&mut self, owner: &str, new_file: NewFile, content: Option<(Vec<u8>, Option<String>)>) -> DriveFile {
        let upload_type = content.as_ref().and_then(|(_, upload_type)| upload_type.clone());
        let mime_type = new_file.mime_type.or(upload_type).unwrap_or_else(|| "application/octet-stream".to_owned());
        let id = format!("1{}", &random_hex()[..32]);
        let file = DriveFile {
            id: id.clone(),
            name: new_file.name,
            mime_type,
            parents: new_file.parents,
            app_properties: new_file.app_properties,
            size: content.as_ref().map(|(bytes, _)| bytes.len() as u64),
            sha256: content.as_ref().map(|(bytes, _)| hex::encode(Sha256::digest(bytes))),
            owner: owner.to_owned(),
            created_time: chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Millis, true),
        };
        if let Some((bytes, _)) = content {
            self.contents.insert(id, bytes);
        }
        self.files.push(file.clone());
        file
    }
}

/// `POST /drive/v3/files`: creates a metadata-only file or a folder; folders wait the
/// configured delay first.
async fn create(inner: &Arc<Inner>, user: &str, request: &Incoming) -> Response {
    let metadata = match metadata_of(request) {
        Ok(metadata) => metadata,
        Err(response) => return response,
    };
    let selection = match selection(request.param("fields").as_deref(), DEFAULT_FILE_FIELDS) {
        Ok(selection) => selection,
        Err(response) => return response,
    };
    let delay = inner.lock().folder_delay;
    if let Some(delay) = delay.filter(|_| metadata.get("mimeType").and_then(Value::as_str) == Some(FOLDER_MIME)) {
        // Simulated server latency, not synchronisation.
        tokio::time::sleep(delay).await;
    }
    let created = {
        let mut state = inner.lock();
        state.new_file(user, &metadata).map(|new_file| state.insert_file(user, new_file, None))
    };
    bump(&inner.changes);
    match created {
        Ok(file) => json_answer(file_json(&file), &selection),
        Err(response) => response,
    }
}

/// `GET /drive/v3/files/{id}`: metadata, or the bytes with `alt=media`.
fn get(inner: &Inner, user: &str, file_id: &str, request: &Incoming) -> Response {
    let state = inner.lock();
    let Some(file) = state.files.iter().find(|file| file.id == file_id && file.owner == user) else {
        return not_found(file_id);
    };
    if request.param("alt").as_deref() == Some("media") {
        return match state.contents.get(file_id) {
            Some(bytes) => ([(header::CONTENT_TYPE, file.mime_type.clone())], bytes.clone()).into_response(),
            None => drive_error(
                StatusCode::FORBIDDEN,
                "global",
                "fileNotDownloadable",
                "Only files with binary content can be downloaded. Use Export with Docs Editors files.",
            ),
        };
    }
    match selection(request.param("fields").as_deref(), DEFAULT_FILE_FIELDS) {
        Ok(selection) => json_answer(file_json(file), &selection),
        Err(response) => response,
    }
}

/// `DELETE /drive/v3/files/{id}`: removes the file at once (no trash): 204.
fn delete(inner: &Inner, user: &str, file_id: &str) -> Response {
    let mut state = inner.lock();
    let Some(position) = state.files.iter().position(|file| file.id == file_id && file.owner == user) else {
        return not_found(file_id);
    };
    state.files.remove(position);
    state.contents.remove(file_id);
    drop(state);
    bump(&inner.changes);
    StatusCode::NO_CONTENT.into_response()
}

/// `POST /upload/drive/v3/files?uploadType=resumable`: opens a session for the JSON
/// metadata; 200 with `Location` the session URI.
fn start_upload(inner: &Inner, user: &str, request: &Incoming) -> Response {
    if request.param("uploadType").as_deref() != Some("resumable") {
        return invalid("The double supports uploadType=resumable only.");
    }
    let metadata = match metadata_of(request) {
        Ok(metadata) => metadata,
        Err(response) => return response,
    };
    let total = match request.header("x-upload-content-length").map(|length| length.trim().parse::<u64>()) {
        None => None,
        Some(Ok(total)) => Some(total),
        Some(Err(_)) => return invalid("Invalid X-Upload-Content-Length."),
    };
    let mut state = inner.lock();
    let file = match state.new_file(user, &metadata) {
        Ok(file) => file,
        Err(response) => return response,
    };
    let upload_id = format!("AFiumC{}", random_hex());
    state.uploads.push(Session {
        upload_id: upload_id.clone(),
        owner: user.to_owned(),
        file,
        upload_type: request.header("x-upload-content-type"),
        fields: request.param("fields"),
        total,
        data: Vec::new(),
        kept: 0,
        file_id: None,
    });
    drop(state);
    bump(&inner.changes);
    let location = format!("{}/upload/drive/v3/files?uploadType=resumable&upload_id={upload_id}", inner.base_url);
    (StatusCode::OK, [(header::LOCATION, location)]).into_response()
}

/// What an upload PUT's `Content-Range` asks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum PutRange {
    /// `bytes */total`: how much was received?
    Query { total: Option<u64> },
    /// `bytes first-last/total` (total may be `*`), or no header: the whole file.
    Chunk { first: u64, total: Option<u64> },
}

fn parse_content_range(header: Option<&str>, body_len: usize) -> Result<PutRange, String> {
    let Some(header) = header else {
        return Ok(PutRange::Chunk { first: 0, total: Some(body_len as u64) });
    };
    let bad = || format!("Invalid Content-Range: {header}");
    let spec = header.trim().strip_prefix("bytes ").ok_or_else(bad)?;
    let (range, total) = spec.split_once('/').ok_or_else(bad)?;
    let total = if total.trim() == "*" { None } else { Some(total.trim().parse::<u64>().map_err(|_| bad())?) };
    if range.trim() == "*" {
        return if body_len == 0 { Ok(PutRange::Query { total }) } else { Err(bad()) };
    }
    let (first, last) = range.split_once('-').ok_or_else(bad)?;
    let first: u64 = first.trim().parse().map_err(|_| bad())?;
    let last: u64 = last.trim().parse().map_err(|_| bad())?;
    if last < first || last - first + 1 != body_len as u64 {
        return Err(format!("Content-Range {header} does not match the {body_len} bytes sent"));
    }
    Ok(PutRange::Chunk { first, total })
}

/// The outcome of an upload PUT.
#[derive(Debug)]
enum PutStep {
    Answer(Response),
    /// Keep the connection and never answer.
    Stall,
}

/// `308 Resume Incomplete` with `Range: bytes=0-<last>` (no `Range` when nothing arrived).
fn resume_incomplete(received: u64) -> Response {
    let mut response = StatusCode::PERMANENT_REDIRECT.into_response();
    if received > 0 {
        if let Ok(range) = format!("bytes=0-{}", received - 1).parse() {
            response.headers_mut().insert(header::RANGE, range);
        }
    }
    response
}

impl GState {
    /// Applies an upload PUT to session `upload_id`.
    fn put(&mut self, upload_id: &str, content_range: Option<&str>, body: &[u8]) -> PutStep {
        let Some(index) = self.uploads.iter().position(|session| session.upload_id == upload_id) else {
            return PutStep::Answer(drive_error(StatusCode::NOT_FOUND, "global", "notFound", "Upload session not found."));
        };
        if let Some(answer) = self.completed_answer(index) {
            return PutStep::Answer(answer);
        }
        let range = match parse_content_range(content_range, body.len()) {
            Ok(range) => range,
            Err(message) => return PutStep::Answer(invalid(&message)),
        };
        let (fail_at, stall_at) = (self.fail_at, self.stall_at);
        let session = &mut self.uploads[index];
        let stated_total = match range {
            PutRange::Query { total } | PutRange::Chunk { total, .. } => total,
        };
        if let Some(total) = stated_total {
            match session.total {
                Some(declared) if declared != total => {
                    return PutStep::Answer(invalid(&format!("Content-Range total {total} differs from the declared {declared}.")))
                }
                _ => session.total = Some(total),
            }
        }
        let PutRange::Chunk { first, .. } = range else {
            return match session.total {
                Some(total) if total == session.kept => self.complete(index),
                _ => PutStep::Answer(resume_incomplete(session.kept)),
            };
        };
        if first != session.kept {
            let message = format!(
                "Invalid request. According to the Content-Range header, the upload offset is {first} byte(s), which does not match the already uploaded size of {} byte(s).",
                session.kept
            );
            return PutStep::Answer(invalid(&message));
        }
        let end = first + body.len() as u64;
        if session.total.is_some_and(|total| end > total) {
            return PutStep::Answer(invalid("Invalid request. Too many bytes."));
        }
        let covers = |offset: Option<u64>| offset.filter(|offset| first <= *offset && *offset < end);
        if let Some(offset) = covers(fail_at) {
            session.data.extend_from_slice(&body[..usize::try_from(offset - first).unwrap_or(0)]);
            session.kept = offset;
            self.fail_at = None;
            return PutStep::Answer(drive_error(StatusCode::SERVICE_UNAVAILABLE, "global", "backendError", "Backend Error"));
        }
        if let Some(offset) = covers(stall_at) {
            session.data.extend_from_slice(&body[..usize::try_from(offset - first).unwrap_or(0)]);
            session.kept = offset;
            self.stall_at = None;
            return PutStep::Stall;
        }
        session.data.extend_from_slice(body);
        session.kept = end;
        match session.total {
            Some(total) if total == end => self.complete(index),
            _ => PutStep::Answer(resume_incomplete(end)),
        }
    }

    /// Creates the file of a finished session: 200 with its JSON (the session's `fields`).
    fn complete(&mut self, index: usize) -> PutStep {
        let session = &mut self.uploads[index];
        let data = std::mem::take(&mut session.data);
        let (owner, new_file, upload_type) = (session.owner.clone(), session.file.clone(), session.upload_type.clone());
        let file = self.insert_file(&owner, new_file, Some((data, upload_type)));
        self.uploads[index].file_id = Some(file.id);
        PutStep::Answer(self.completed_answer(index).unwrap_or_else(|| invalid("upload completed without a file")))
    }

    /// The answer to a PUT on a completed session: 200 and the file.
    fn completed_answer(&self, index: usize) -> Option<Response> {
        let session = self.uploads.get(index)?;
        let file = self.files.iter().find(|file| Some(&file.id) == session.file_id.as_ref())?;
        Some(match selection(session.fields.as_deref(), DEFAULT_FILE_FIELDS) {
            Ok(selection) => json_answer(file_json(file), &selection),
            Err(response) => response,
        })
    }
}

/// `PUT` on a session URI: a chunk (`Content-Range: bytes a-b/total`), a status query
/// (`bytes */total`, empty body), or the whole file (no `Content-Range`).
async fn put_upload(inner: &Arc<Inner>, request: &Incoming) -> Response {
    let upload_id = request.param("upload_id").unwrap_or_default();
    let content_range = request.header(header::CONTENT_RANGE.as_str());
    let step = {
        let mut state = inner.lock();
        state.upload_puts.push((upload_id.clone(), content_range.clone().unwrap_or_default()));
        if let Some(fields) = request.param("fields") {
            // `fields` on the session URI overrides the one given when the upload began.
            if let Some(session) = state.uploads.iter_mut().find(|session| session.upload_id == upload_id) {
                session.fields = Some(fields);
            }
        }
        state.put(&upload_id, content_range.as_deref(), &request.body)
    };
    bump(&inner.changes);
    match step {
        PutStep::Answer(response) => response,
        PutStep::Stall => {
            inner.shutdown.cancelled().await;
            StatusCode::SERVICE_UNAVAILABLE.into_response()
        }
    }
}

/// Drive's `q` language, the part the bot uses: clauses joined by `and`.
mod query {
    use super::DriveFile;

    /// One condition on a file.
    #[derive(Debug, Clone, PartialEq, Eq)]
    pub(super) enum Clause {
        Name { equal: bool, value: String },
        MimeType { equal: bool, value: String },
        InParents(String),
        Trashed(bool),
        AppProperty { key: String, value: String },
    }

    impl Clause {
        /// Whether `file` satisfies the clause; `root` is the user's root folder id, which
        /// `'root' in parents` means.
        pub(super) fn matches(&self, file: &DriveFile, root: &str) -> bool {
            match self {
                Clause::Name { equal, value } => (file.name == *value) == *equal,
                Clause::MimeType { equal, value } => (file.mime_type == *value) == *equal,
                Clause::InParents(parent) => {
                    let parent = if parent == "root" { root } else { parent.as_str() };
                    file.parents.iter().any(|id| id == parent)
                }
                Clause::Trashed(trashed) => !*trashed,
                Clause::AppProperty { key, value } => file.app_properties.get(key) == Some(value),
            }
        }
    }

    struct Lexer {
        chars: Vec<char>,
        at: usize,
    }

    impl Lexer {
        fn skip_spaces(&mut self) {
            while self.chars.get(self.at).is_some_and(|c| c.is_whitespace()) {
                self.at += 1;
            }
        }

        fn peek(&mut self) -> Option<char> {
            self.skip_spaces();
            self.chars.get(self.at).copied()
        }

        fn done(&mut self) -> bool {
            self.peek().is_none()
        }

        /// A word of letters (an identifier or keyword).
        fn word(&mut self) -> Result<String, String> {
            self.skip_spaces();
            let start = self.at;
            while self.chars.get(self.at).is_some_and(|c| c.is_ascii_alphanumeric()) {
                self.at += 1;
            }
            if start == self.at {
                return Err(format!("expected a word at {start}"));
            }
            Ok(self.chars[start..self.at].iter().collect())
        }

        fn keyword(&mut self, expected: &str) -> Result<(), String> {
            let word = self.word()?;
            if word.eq_ignore_ascii_case(expected) {
                Ok(())
            } else {
                Err(format!("expected '{expected}', found '{word}'"))
            }
        }

        fn symbol(&mut self, expected: char) -> Result<(), String> {
            if self.peek() == Some(expected) {
                self.at += 1;
                Ok(())
            } else {
                Err(format!("expected '{expected}' at {}", self.at))
            }
        }

        /// `=` or `!=`: whether it is equality.
        fn operator(&mut self) -> Result<bool, String> {
            match self.peek() {
                Some('=') => {
                    self.at += 1;
                    Ok(true)
                }
                Some('!') => {
                    self.at += 1;
                    self.symbol('=')?;
                    Ok(false)
                }
                _ => Err(format!("unsupported operator at {}", self.at)),
            }
        }

        /// A single-quoted string; `\'` and `\\` are escapes.
        fn string(&mut self) -> Result<String, String> {
            self.symbol('\'')?;
            let mut value = String::new();
            loop {
                match self.chars.get(self.at).copied() {
                    None => return Err("unterminated string".to_owned()),
                    Some('\\') => {
                        let escaped = self.chars.get(self.at + 1).copied().ok_or("unterminated escape")?;
                        value.push(escaped);
                        self.at += 2;
                    }
                    Some('\'') => {
                        self.at += 1;
                        return Ok(value);
                    }
                    Some(other) => {
                        value.push(other);
                        self.at += 1;
                    }
                }
            }
        }

        fn clause(&mut self) -> Result<Clause, String> {
            if self.peek() == Some('\'') {
                let parent = self.string()?;
                self.keyword("in")?;
                self.keyword("parents")?;
                return Ok(Clause::InParents(parent));
            }
            let field = self.word()?;
            match field.as_str() {
                "name" => Ok(Clause::Name { equal: self.operator()?, value: self.string()? }),
                "mimeType" => Ok(Clause::MimeType { equal: self.operator()?, value: self.string()? }),
                "trashed" => {
                    let equal = self.operator()?;
                    let value = match self.word()?.as_str() {
                        "true" => true,
                        "false" => false,
                        other => return Err(format!("trashed needs true or false, not {other}")),
                    };
                    Ok(Clause::Trashed(value == equal))
                }
                "appProperties" => {
                    self.keyword("has")?;
                    self.symbol('{')?;
                    self.keyword("key")?;
                    self.symbol('=')?;
                    let key = self.string()?;
                    self.keyword("and")?;
                    self.keyword("value")?;
                    self.symbol('=')?;
                    let value = self.string()?;
                    self.symbol('}')?;
                    Ok(Clause::AppProperty { key, value })
                }
                other => Err(format!("unsupported field '{other}'")),
            }
        }
    }

    /// Parses `clause and clause and ...`; anything else is an error.
    pub(super) fn parse(q: &str) -> Result<Vec<Clause>, String> {
        let mut lexer = Lexer { chars: q.chars().collect(), at: 0 };
        let mut clauses = vec![lexer.clause()?];
        while !lexer.done() {
            lexer.keyword("and")?;
            clauses.push(lexer.clause()?);
        }
        Ok(clauses)
    }
}

/// Google's partial-response `fields` syntax: `a,b(c,d),e/f`, `*`.
mod fields {
    use std::collections::BTreeMap;

    use serde_json::{Map, Value};

    /// The fields to keep: all, or some, each with its own sub-selection.
    #[derive(Debug, Clone, PartialEq, Eq)]
    pub(super) enum Selection {
        All,
        Only(BTreeMap<String, Selection>),
    }

    fn list(chars: &[char], at: &mut usize) -> Result<Selection, String> {
        let mut fields = BTreeMap::new();
        let mut all = false;
        loop {
            while chars.get(*at).is_some_and(|c| c.is_whitespace()) {
                *at += 1;
            }
            if chars.get(*at) == Some(&'*') {
                *at += 1;
                all = true;
            } else {
                let start = *at;
                while chars.get(*at).is_some_and(|c| !matches!(c, ',' | '(' | ')')) {
                    *at += 1;
                }
                let name: String = chars[start..*at].iter().collect::<String>().trim().to_owned();
                if name.is_empty() {
                    return Err(format!("at {start}"));
                }
                let mut selection = Selection::All;
                if chars.get(*at) == Some(&'(') {
                    *at += 1;
                    selection = list(chars, at)?;
                    if chars.get(*at) != Some(&')') {
                        return Err(format!("unclosed '(' before {at}"));
                    }
                    *at += 1;
                }
                // `a/b/c` is `a(b(c))`.
                for part in name.rsplit('/').collect::<Vec<_>>() {
                    selection = Selection::Only(BTreeMap::from([(part.to_owned(), selection)]));
                }
                if let Selection::Only(outer) = selection {
                    for (key, value) in outer {
                        fields.insert(key, value);
                    }
                }
            }
            while chars.get(*at).is_some_and(|c| c.is_whitespace()) {
                *at += 1;
            }
            match chars.get(*at) {
                Some(',') => *at += 1,
                None | Some(')') => break,
                Some(other) => return Err(format!("unexpected '{other}' at {at}")),
            }
        }
        Ok(if all { Selection::All } else { Selection::Only(fields) })
    }

    pub(super) fn parse(text: &str) -> Result<Selection, String> {
        let chars: Vec<char> = text.chars().collect();
        let mut at = 0;
        let selection = list(&chars, &mut at)?;
        if at != chars.len() {
            return Err(format!("unexpected ')' at {at}"));
        }
        Ok(selection)
    }

    /// Keeps the selected fields of objects (and of each element of arrays).
    pub(super) fn select(value: &Value, selection: &Selection) -> Value {
        match (value, selection) {
            (_, Selection::All) => value.clone(),
            (Value::Array(items), _) => Value::Array(items.iter().map(|item| select(item, selection)).collect()),
            (Value::Object(fields), Selection::Only(wanted)) => {
                let kept: Map<String, Value> =
                    wanted.iter().filter_map(|(key, sub)| fields.get(key).map(|value| (key.clone(), select(value, sub)))).collect();
                Value::Object(kept)
            }
            _ => value.clone(),
        }
    }
}
