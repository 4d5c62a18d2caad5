//! Google: OAuth 2.0 with the `oauth2` crate (authorization code flow with PKCE, the
//! `drive.file` scope only) and Drive's REST API v3 over `reqwest`.
//!
//! Drive calls used: `files.list` with `q` (folders by name and parent, a file by its
//! `sha256` app property), `files.create` (folders), resumable uploads
//! (`uploadType=resumable`: a session URI, then `PUT`s with `Content-Range`, and the status
//! query `Content-Range: bytes */<total>` that says how much Drive holds) and
//! `files.get?alt=media`. Source: <https://developers.google.com/drive/api/guides/manage-uploads>.
//!
//! Faults are sorted into what helps ([`DriveError`]): quota answers (`403
//! userRateLimitExceeded`/`rateLimitExceeded`, `429`) are retried with exponential backoff;
//! a refused grant (`invalid_grant`) asks the person to link Drive again; an interrupted
//! upload resumes from the last byte Drive confirmed, never from byte 0.

use std::collections::HashMap;
use std::path::Path;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use oauth2::basic::{BasicClient, BasicErrorResponseType};
use oauth2::{
    AuthUrl, AuthorizationCode, ClientId, ClientSecret, CsrfToken, EndpointNotSet, EndpointSet, PkceCodeChallenge, PkceCodeVerifier, RedirectUrl,
    RefreshToken, RequestTokenError, Scope, TokenResponse, TokenUrl,
};
use serde::Deserialize;
use tokio::io::{AsyncReadExt, AsyncSeekExt};

use crate::settings::{GoogleSettings, DRIVE_FILE_SCOPE};

/// The mime type of a Drive folder.
pub const FOLDER_MIME_TYPE: &str = "application/vnd.google-apps.folder";
/// The name of the one folder under which the date folders live.
pub const ROOT_FOLDER_NAME: &str = "chatvault";
/// The app property holding a file's SHA-256 (hex): how a stored copy is found again.
pub const SHA256_PROPERTY: &str = "sha256";

type OAuthClient = BasicClient<EndpointSet, EndpointNotSet, EndpointNotSet, EndpointNotSet, EndpointSet>;

/// What went wrong with Google, sorted by what helps.
#[derive(Debug, thiserror::Error)]
pub enum DriveError {
    /// Google refused the grant (expired or revoked): the person must link Drive again.
    #[error("Google refused the stored access (it expired or was revoked)")]
    Refused,
    /// A quota answer; retried with backoff.
    #[error("Google Drive's rate limit was hit ({0})")]
    Quota(String),
    /// The connection broke or Google answered 5xx; retried (an upload resumes).
    #[error("Google Drive did not answer ({0})")]
    Interrupted(String),
    /// The access token was not accepted (401); refreshed once and retried.
    #[error("Google Drive did not accept the access token")]
    Unauthorized,
    /// A resumable session Google no longer knows (404/410 to a session URI): a new one is
    /// started.
    #[error("the upload session expired")]
    SessionGone,
    /// A file or folder Drive no longer has (404 to any other call): a folder the person
    /// deleted is made again.
    #[error("a file or folder is no longer in the Drive")]
    NotFound,
    /// Anything else, in words.
    #[error("{0}")]
    Other(String),
}

impl DriveError {
    /// The reason label of the failure metric and the `FileStoreFailed` event.
    pub fn reason(&self) -> &'static str {
        match self {
            DriveError::Refused | DriveError::Unauthorized => "drive_auth",
            DriveError::Quota(_) => "drive_quota",
            _ => "drive",
        }
    }
}

/// How far a resumable upload is.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum UploadProgress {
    /// Drive holds this many bytes from the start.
    Received(u64),
    /// The upload is complete: the file's id.
    Done(String),
}

#[derive(Debug, Deserialize)]
struct FileList {
    #[serde(default)]
    files: Vec<DriveFile>,
}

#[derive(Debug, Deserialize)]
struct DriveFile {
    id: String,
}

#[derive(Debug, Deserialize)]
struct GoogleErrorBody {
    error: GoogleErrorDetail,
}

#[derive(Debug, Deserialize)]
struct GoogleErrorDetail {
    #[serde(default)]
    message: String,
    #[serde(default)]
    errors: Vec<GoogleErrorItem>,
}

#[derive(Debug, Deserialize)]
struct GoogleErrorItem {
    #[serde(default)]
    reason: String,
}

/// A new authorization for a person to open.
#[derive(Debug)]
pub struct Authorization {
    /// The consent page's URL.
    pub url: url::Url,
    /// The `state` it carries (binds the callback to the person).
    pub state: String,
    /// The PKCE verifier the code exchange needs.
    pub verifier: String,
}

/// Google's OAuth client, Drive calls, and each account's current access token.
#[derive(Clone, Debug)]
pub struct Google {
    oauth: OAuthClient,
    http: reqwest::Client,
    settings: GoogleSettings,
    access_tokens: Arc<Mutex<HashMap<String, (String, Instant)>>>,
}

impl Google {
    /// Returns the client of `settings`, redirecting to `redirect_url` after consent.
    pub fn new(settings: &GoogleSettings, redirect_url: &str) -> Result<Self, crate::BotError> {
        let config = |what: &str, error: &dyn std::fmt::Display| crate::BotError::Config(format!("Google {what}: {error}"));
        let oauth = BasicClient::new(ClientId::new(settings.client_id.clone()))
            .set_client_secret(ClientSecret::new(settings.client_secret.expose().to_owned()))
            .set_auth_uri(AuthUrl::new(settings.auth_url.clone()).map_err(|error| config("auth URL", &error))?)
            .set_token_uri(TokenUrl::new(settings.token_url.clone()).map_err(|error| config("token URL", &error))?)
            .set_redirect_uri(RedirectUrl::new(redirect_url.to_owned()).map_err(|error| config("redirect URL", &error))?);
        // OAuth endpoints must not be followed to redirects (RFC 6749 §10.12, oauth2's advice).
        let http = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .connect_timeout(Duration::from_secs(10))
            .timeout(Duration::from_secs(300))
            .build()
            .map_err(|error| config("HTTP client", &error))?;
        Ok(Self { oauth, http, settings: settings.clone(), access_tokens: Arc::default() })
    }

    /// Returns a new authorization: the consent URL with a PKCE challenge (S256), the
    /// `drive.file` scope and offline access (so Google gives a refresh token).
    pub fn authorization(&self) -> Authorization {
        let (challenge, verifier) = PkceCodeChallenge::new_random_sha256();
        let (url, state) = self
            .oauth
            .authorize_url(CsrfToken::new_random)
            .add_scope(Scope::new(DRIVE_FILE_SCOPE.to_owned()))
            .set_pkce_challenge(challenge)
            .add_extra_param("access_type", "offline")
            .add_extra_param("prompt", "consent")
            .url();
        Authorization { url, state: state.secret().clone(), verifier: verifier.secret().clone() }
    }

    /// Exchanges an authorization code (with its PKCE verifier) for a refresh token and
    /// the scope granted; the access token is kept for `account_id`.
    pub async fn exchange(&self, account_id: &str, code: &str, verifier: &str) -> Result<(String, String), DriveError> {
        let token = self
            .oauth
            .exchange_code(AuthorizationCode::new(code.to_owned()))
            .set_pkce_verifier(PkceCodeVerifier::new(verifier.to_owned()))
            .request_async(&self.http)
            .await
            .map_err(token_error)?;
        let refresh = token.refresh_token().ok_or_else(|| DriveError::Other("Google gave no refresh token".to_owned()))?;
        let scope = token.scopes().map(|scopes| scopes.iter().map(|scope| scope.to_string()).collect::<Vec<_>>().join(" "));
        self.keep_access_token(account_id, refresh.secret(), token.access_token().secret(), token.expires_in());
        Ok((refresh.secret().clone(), scope.unwrap_or_else(|| DRIVE_FILE_SCOPE.to_owned())))
    }

    /// Returns a current access token for `account_id`, refreshing with `refresh_token`
    /// when the kept one is missing or about to expire.
    pub async fn access_token(&self, account_id: &str, refresh_token: &str) -> Result<String, DriveError> {
        {
            let tokens = self.access_tokens.lock().unwrap_or_else(PoisonError::into_inner);
            if let Some((token, valid_until)) = tokens.get(&token_key(account_id, refresh_token)) {
                if *valid_until > Instant::now() {
                    return Ok(token.clone());
                }
            }
        }
        let token =
            self.oauth.exchange_refresh_token(&RefreshToken::new(refresh_token.to_owned())).request_async(&self.http).await.map_err(token_error)?;
        self.keep_access_token(account_id, refresh_token, token.access_token().secret(), token.expires_in());
        Ok(token.access_token().secret().clone())
    }

    /// Forgets the access tokens of `account_id` (Drive refused one, or the grant ended).
    pub fn forget_access_token(&self, account_id: &str) {
        let prefix = format!("{account_id}:");
        self.access_tokens.lock().unwrap_or_else(PoisonError::into_inner).retain(|key, _| !key.starts_with(&prefix));
    }

    /// Keeps an access token under its account and grant: a grant replaced by another
    /// (another Google account) never reuses the old one's token.
    fn keep_access_token(&self, account_id: &str, refresh_token: &str, token: &str, expires_in: Option<Duration>) {
        // A minute early, so a token never expires in the middle of a call.
        let lifetime = expires_in.unwrap_or(Duration::from_secs(3600)).saturating_sub(Duration::from_secs(60));
        self.access_tokens
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .insert(token_key(account_id, refresh_token), (token.to_owned(), Instant::now() + lifetime));
    }

    /// Returns whether the Drive file `file_id` is still there (not deleted, not trashed).
    pub async fn file_exists(&self, token: &str, file_id: &str) -> Result<bool, DriveError> {
        #[derive(Deserialize)]
        struct Trashed {
            #[serde(default)]
            trashed: bool,
        }
        let response = self
            .http
            .get(self.drive_url(&format!("/drive/v3/files/{file_id}")))
            .bearer_auth(token)
            .query(&[("fields", "id,trashed")])
            .send()
            .await
            .map_err(interrupted)?;
        match json_of::<Trashed>(response).await {
            Ok(file) => Ok(!file.trashed),
            Err(DriveError::NotFound) => Ok(false),
            Err(error) => Err(error),
        }
    }

    /// Revokes a refresh token at Google (RFC 7009 form POST, as Google documents it).
    ///
    /// The `oauth2` crate's revocation refuses any endpoint that is not `https://`; the
    /// call is one form field, so it is made here directly.
    pub async fn revoke(&self, account_id: &str, refresh_token: &str) -> Result<(), DriveError> {
        self.forget_access_token(account_id);
        let response = self.http.post(&self.settings.revoke_url).form(&[("token", refresh_token)]).send().await.map_err(interrupted)?;
        match response.status().as_u16() {
            200..=299 => Ok(()),
            // Already revoked or expired: nothing is left to revoke.
            400 => Ok(()),
            status => Err(DriveError::Other(format!("Google answered {status} to the revocation"))),
        }
    }

    fn drive_url(&self, path: &str) -> String {
        format!("{}{path}", self.settings.api_url)
    }

    /// Returns the id of the folder `name` under `parent` (`None`: the Drive's root).
    pub async fn find_folder(&self, token: &str, name: &str, parent: Option<&str>) -> Result<Option<String>, DriveError> {
        let query = format!(
            "name = '{}' and mimeType = '{FOLDER_MIME_TYPE}' and '{}' in parents and trashed = false",
            quoted(name),
            quoted(parent.unwrap_or("root"))
        );
        self.first_file(token, &query).await
    }

    /// Returns the id of the file whose `sha256` app property is `sha256` in `folder_id`.
    pub async fn find_file(&self, token: &str, folder_id: &str, sha256: &str) -> Result<Option<String>, DriveError> {
        let query = format!(
            "'{}' in parents and appProperties has {{ key='{SHA256_PROPERTY}' and value='{}' }} and trashed = false",
            quoted(folder_id),
            quoted(sha256)
        );
        self.first_file(token, &query).await
    }

    async fn first_file(&self, token: &str, query: &str) -> Result<Option<String>, DriveError> {
        let response = self
            .http
            .get(self.drive_url("/drive/v3/files"))
            .bearer_auth(token)
            .query(&[("q", query), ("fields", "files(id,name)"), ("spaces", "drive"), ("pageSize", "10")])
            .send()
            .await
            .map_err(interrupted)?;
        let list: FileList = json_of(response).await?;
        Ok(list.files.into_iter().next().map(|file| file.id))
    }

    /// Creates the folder `name` under `parent` (`None`: the Drive's root); returns its id.
    pub async fn create_folder(&self, token: &str, name: &str, parent: Option<&str>) -> Result<String, DriveError> {
        let mut metadata = serde_json::json!({ "name": name, "mimeType": FOLDER_MIME_TYPE });
        if let Some(parent) = parent {
            metadata["parents"] = serde_json::json!([parent]);
        }
        let response = self
            .http
            .post(self.drive_url("/drive/v3/files"))
            .bearer_auth(token)
            .query(&[("fields", "id")])
            .json(&metadata)
            .send()
            .await
            .map_err(interrupted)?;
        let file: DriveFile = json_of(response).await?;
        Ok(file.id)
    }

    /// Starts a resumable upload of `total` bytes into `folder_id`; returns the session URI.
    pub async fn start_upload(
        &self,
        token: &str,
        folder_id: &str,
        name: &str,
        content_type: &str,
        sha256: &str,
        total: u64,
    ) -> Result<String, DriveError> {
        let metadata = serde_json::json!({
            "name": name,
            "parents": [folder_id],
            "mimeType": content_type,
            "appProperties": { SHA256_PROPERTY: sha256 },
        });
        let response = self
            .http
            .post(self.drive_url("/upload/drive/v3/files"))
            .bearer_auth(token)
            .query(&[("uploadType", "resumable"), ("fields", "id")])
            .header("X-Upload-Content-Type", content_type)
            .header("X-Upload-Content-Length", total.to_string())
            .json(&metadata)
            .send()
            .await
            .map_err(interrupted)?;
        let response = checked(response).await?;
        response
            .headers()
            .get(reqwest::header::LOCATION)
            .and_then(|value| value.to_str().ok())
            .map(str::to_owned)
            .ok_or_else(|| DriveError::Other("Google Drive started an upload without a session URI".to_owned()))
    }

    /// Asks Drive how much of a resumable upload it holds.
    pub async fn upload_status(&self, token: &str, session_uri: &str, total: u64) -> Result<UploadProgress, DriveError> {
        let response = self
            .http
            .put(session_uri)
            .bearer_auth(token)
            .header(reqwest::header::CONTENT_RANGE, format!("bytes */{total}"))
            .header(reqwest::header::CONTENT_LENGTH, "0")
            .send()
            .await
            .map_err(interrupted)?;
        progress_of(response).await
    }

    /// Sends the bytes of `path` from `offset` in chunks of `chunk` bytes until Drive holds
    /// all `total`; returns the file's id. Stops at the first fault, which the caller
    /// handles by asking [`Google::upload_status`] and calling again from there.
    pub async fn upload_from(
        &self,
        token: &str,
        session_uri: &str,
        path: &Path,
        mut offset: u64,
        total: u64,
        chunk: u64,
    ) -> Result<String, DriveError> {
        let mut file = tokio::fs::File::open(path).await.map_err(|error| DriveError::Other(format!("reading the received file: {error}")))?;
        loop {
            let length = chunk.min(total.saturating_sub(offset));
            let mut bytes = vec![0u8; usize::try_from(length).unwrap_or(0)];
            file.seek(std::io::SeekFrom::Start(offset)).await.map_err(|error| DriveError::Other(format!("reading the received file: {error}")))?;
            file.read_exact(&mut bytes).await.map_err(|error| DriveError::Other(format!("reading the received file: {error}")))?;
            let range = if total == 0 { "bytes */0".to_owned() } else { format!("bytes {offset}-{}/{total}", offset + length - 1) };
            let response = self
                .http
                .put(session_uri)
                .bearer_auth(token)
                .header(reqwest::header::CONTENT_RANGE, range)
                .body(bytes)
                .send()
                .await
                .map_err(interrupted)?;
            match progress_of(response).await? {
                UploadProgress::Done(id) => return Ok(id),
                UploadProgress::Received(received) if received > offset => offset = received,
                UploadProgress::Received(received) => {
                    return Err(DriveError::Interrupted(format!("Drive kept no byte of a chunk (holds {received} of {total})")))
                }
            }
        }
    }

    /// Returns the bytes of a Drive file.
    pub async fn download(&self, token: &str, file_id: &str) -> Result<bytes::Bytes, DriveError> {
        let response = self
            .http
            .get(self.drive_url(&format!("/drive/v3/files/{file_id}")))
            .bearer_auth(token)
            .query(&[("alt", "media")])
            .send()
            .await
            .map_err(interrupted)?;
        checked(response).await?.bytes().await.map_err(interrupted)
    }
}

/// The access-token cache key of an account's grant: `<account>:<first 16 hex digits of
/// the refresh token's SHA-256>`.
fn token_key(account_id: &str, refresh_token: &str) -> String {
    format!("{account_id}:{}", &crate::store::secret_hash(refresh_token)[..16])
}

/// Escapes a value for a Drive `q` string literal (backslash and single quote).
fn quoted(value: &str) -> String {
    value.replace('\\', "\\\\").replace('\'', "\\'")
}

fn interrupted(error: reqwest::Error) -> DriveError {
    DriveError::Interrupted(chatvault_common::error::error_chain_text(&error))
}

fn token_error<E: std::error::Error + 'static>(error: RequestTokenError<E, oauth2::StandardErrorResponse<BasicErrorResponseType>>) -> DriveError {
    match error {
        RequestTokenError::ServerResponse(response) if *response.error() == BasicErrorResponseType::InvalidGrant => DriveError::Refused,
        RequestTokenError::ServerResponse(response) => DriveError::Other(format!("Google refused: {}", response.error())),
        RequestTokenError::Request(request) => DriveError::Interrupted(chatvault_common::error::error_chain_text(&request)),
        other => DriveError::Other(format!("Google's token answer: {other}")),
    }
}

/// Returns the response when it is a success, else the sorted fault.
async fn checked(response: reqwest::Response) -> Result<reqwest::Response, DriveError> {
    let status = response.status().as_u16();
    if (200..300).contains(&status) {
        return Ok(response);
    }
    let text = response.text().await.unwrap_or_default();
    Err(match fault_of(status, &text) {
        DriveError::SessionGone => DriveError::NotFound,
        other => other,
    })
}

/// Sorts an error answer of Drive.
pub fn fault_of(status: u16, body: &str) -> DriveError {
    let detail = serde_json::from_str::<GoogleErrorBody>(body).ok().map(|body| body.error);
    let reasons: Vec<&str> = detail.as_ref().map(|detail| detail.errors.iter().map(|item| item.reason.as_str()).collect()).unwrap_or_default();
    let message =
        detail.as_ref().map(|detail| detail.message.clone()).filter(|message| !message.is_empty()).unwrap_or_else(|| format!("HTTP {status}"));
    match status {
        401 => DriveError::Unauthorized,
        429 => DriveError::Quota(message),
        403 if reasons.iter().any(|reason| matches!(*reason, "userRateLimitExceeded" | "rateLimitExceeded")) => DriveError::Quota(message),
        403 if reasons.contains(&"storageQuotaExceeded") => DriveError::Other("your Google Drive is full".to_owned()),
        // To a session URI; `checked` makes it NotFound for every other call.
        404 | 410 => DriveError::SessionGone,
        500..=599 => DriveError::Interrupted(message),
        _ => DriveError::Other(format!("Google Drive answered {status}: {message}")),
    }
}

async fn json_of<T: serde::de::DeserializeOwned>(response: reqwest::Response) -> Result<T, DriveError> {
    checked(response).await?.json().await.map_err(|error| DriveError::Other(format!("Google Drive's answer did not parse: {error}")))
}

/// Reads a resumable upload's answer: 308 with `Range: bytes=0-<last>` (or none: nothing
/// yet), or 200/201 with the file.
async fn progress_of(response: reqwest::Response) -> Result<UploadProgress, DriveError> {
    if response.status().as_u16() == 308 {
        let received = response
            .headers()
            .get(reqwest::header::RANGE)
            .and_then(|value| value.to_str().ok())
            .and_then(|range| range.rsplit('-').next())
            .and_then(|last| last.trim().parse::<u64>().ok())
            .map_or(0, |last| last + 1);
        return Ok(UploadProgress::Received(received));
    }
    let status = response.status().as_u16();
    if !(200..300).contains(&status) {
        let text = response.text().await.unwrap_or_default();
        return Err(fault_of(status, &text));
    }
    let file: DriveFile = response.json().await.map_err(|error| DriveError::Other(format!("Google Drive's answer did not parse: {error}")))?;
    Ok(UploadProgress::Done(file.id))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn drive_answers_are_sorted_by_what_helps() {
        let user_rate =
            r#"{"error":{"code":403,"message":"User Rate Limit Exceeded","errors":[{"domain":"usageLimits","reason":"userRateLimitExceeded"}]}}"#;
        assert!(matches!(fault_of(403, user_rate), DriveError::Quota(message) if message == "User Rate Limit Exceeded"));
        assert!(matches!(fault_of(429, "{}"), DriveError::Quota(_)));
        let full =
            r#"{"error":{"code":403,"message":"The user's Drive storage quota has been exceeded.","errors":[{"reason":"storageQuotaExceeded"}]}}"#;
        assert!(matches!(fault_of(403, full), DriveError::Other(message) if message.contains("full")));
        assert!(matches!(fault_of(401, ""), DriveError::Unauthorized));
        assert!(matches!(fault_of(503, ""), DriveError::Interrupted(_)));
        assert!(matches!(fault_of(404, ""), DriveError::SessionGone));
        assert_eq!(quoted("it's a\\b"), "it\\'s a\\\\b");
    }
}
