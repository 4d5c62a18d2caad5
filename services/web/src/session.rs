//! Browser sessions, held by the web service in its database.
//!
//! The cookie `cv_session` carries 32 random bytes (hex); the table keeps only their SHA-256,
//! so a read of the table gives no cookie. A session holds the person's access and refresh
//! tokens. [`Sessions::current`] refreshes the access token when it has under a minute left,
//! holding the session's row lock (`SELECT … FOR UPDATE`) across the Refresh call: the
//! users service rotates refresh tokens and revokes a whole log-in when a rotated token is
//! shown again, so two requests (or two web instances) must never refresh one session at
//! once; the second one waits and then finds the fresh token.

use std::sync::Arc;

use axum::extract::FromRequestParts;
use axum::http::request::Parts;
use axum::http::HeaderMap;
use chatvault_proto::users::v1::{LogoutRequest, RefreshRequest, TokenPair};
use chrono::{DateTime, Duration, Utc};
use deadpool_postgres::Pool;
use rand::RngCore;
use sha2::{Digest, Sha256};

use crate::clients::{Caller, Clients};
use crate::settings::WebSettings;
use crate::{AppState, WebError};

/// The session cookie's name.
pub const SESSION_COOKIE: &str = "cv_session";
/// How long before its expiry an access token is refreshed.
const REFRESH_MARGIN: Duration = Duration::seconds(60);
/// How often `last_seen_at` is written at most.
const LAST_SEEN_GRANULARITY: Duration = Duration::minutes(5);

/// The session store.
#[derive(Clone, Debug)]
pub struct Sessions {
    pool: Pool,
    clients: Clients,
    settings: Arc<WebSettings>,
}

/// A signed-in person, as a page handler sees them.
#[derive(Clone, Debug)]
pub struct Signed {
    pub caller: Caller,
    /// The session's CSRF token, for the forms of the page.
    pub csrf: String,
}

struct Row {
    username: String,
    role: String,
    access_token: String,
    access_expires_at: DateTime<Utc>,
    refresh_expires_at: DateTime<Utc>,
    csrf_token: String,
    last_seen_at: DateTime<Utc>,
}

const SELECT_SESSION: &str = "
    SELECT username, role, access_token, access_expires_at, refresh_expires_at, csrf_token, last_seen_at
    FROM web_sessions WHERE id_sha256 = $1";

/// Returns 32 random bytes from a CSPRNG, hex.
pub fn random_token() -> String {
    // ThreadRng: ChaCha12 seeded and reseeded from the operating system.
    let mut bytes = [0u8; 32];
    rand::rng().fill_bytes(&mut bytes);
    hex::encode(bytes)
}

fn sha256_hex(value: &str) -> String {
    hex::encode(Sha256::digest(value.as_bytes()))
}

fn unix_to_time(seconds: i64) -> DateTime<Utc> {
    DateTime::from_timestamp(seconds, 0).unwrap_or_else(Utc::now)
}

impl Sessions {
    pub fn new(pool: Pool, clients: Clients, settings: Arc<WebSettings>) -> Self {
        Self { pool, clients, settings }
    }

    /// Starts a session for a fresh log-in; returns the cookie value.
    pub async fn create(&self, pair: &TokenPair) -> Result<String, WebError> {
        let account = pair.account.as_ref().ok_or_else(|| WebError::Internal("the log-in answer carried no account".to_owned()))?;
        let id = random_token();
        let client = self.pool.get().await?;
        client
            .execute(
                "INSERT INTO web_sessions (id_sha256, username, role, access_token, access_expires_at, refresh_token, refresh_expires_at, csrf_token)
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
                &[
                    &sha256_hex(&id),
                    &account.username,
                    &account.role,
                    &pair.access_token,
                    &unix_to_time(pair.access_expires_unix),
                    &pair.refresh_token,
                    &unix_to_time(pair.refresh_expires_unix),
                    &random_token(),
                ],
            )
            .await?;
        Ok(id)
    }

    /// Returns the session of `cookie`, with an access token valid for at least a minute,
    /// or `None` when there is none (unknown, idle too long, refresh token expired or revoked).
    pub async fn current(&self, cookie: &str) -> Result<Option<Signed>, WebError> {
        let id_sha256 = sha256_hex(cookie);
        let client = self.pool.get().await?;
        let Some(row) = client.query_opt(SELECT_SESSION, &[&id_sha256]).await?.map(|row| row_of(&row)) else {
            return Ok(None);
        };
        let now = Utc::now();
        if row.refresh_expires_at <= now || row.last_seen_at + Duration::days(self.settings.session_idle_days) <= now {
            client.execute("DELETE FROM web_sessions WHERE id_sha256 = $1", &[&id_sha256]).await?;
            return Ok(None);
        }
        if now - row.last_seen_at > LAST_SEEN_GRANULARITY {
            client.execute("UPDATE web_sessions SET last_seen_at = now() WHERE id_sha256 = $1", &[&id_sha256]).await?;
        }
        let row = if row.access_expires_at - now < REFRESH_MARGIN {
            drop(client);
            match self.refresh(&id_sha256).await? {
                Some(row) => row,
                None => return Ok(None),
            }
        } else {
            row
        };
        Ok(Some(Signed { caller: Caller { username: row.username, role: row.role, access_token: row.access_token }, csrf: row.csrf_token }))
    }

    /// Refreshes the session's tokens under its row lock; `None` when the users service
    /// refused the refresh token (the session is then deleted).
    async fn refresh(&self, id_sha256: &str) -> Result<Option<Row>, WebError> {
        let mut client = self.pool.get().await?;
        let transaction = client.transaction().await?;
        let Some(locked) = transaction
            .query_opt(
                "SELECT username, role, access_token, access_expires_at, refresh_expires_at, csrf_token, last_seen_at, refresh_token
                 FROM web_sessions WHERE id_sha256 = $1 FOR UPDATE",
                &[&id_sha256],
            )
            .await?
        else {
            return Ok(None);
        };
        let row = row_of(&locked);
        if row.access_expires_at - Utc::now() >= REFRESH_MARGIN {
            // Another request refreshed it while this one waited for the lock.
            transaction.commit().await?;
            return Ok(Some(row));
        }
        let refresh_token: String = locked.get(7);
        match self.clients.accounts().refresh(RefreshRequest { refresh_token }).await {
            Ok(pair) => {
                let pair = pair.into_inner();
                let role = pair.account.as_ref().map_or(row.role.clone(), |account| account.role.clone());
                transaction
                    .execute(
                        "UPDATE web_sessions SET access_token = $2, access_expires_at = $3, refresh_token = $4, refresh_expires_at = $5, role = $6
                         WHERE id_sha256 = $1",
                        &[
                            &id_sha256,
                            &pair.access_token,
                            &unix_to_time(pair.access_expires_unix),
                            &pair.refresh_token,
                            &unix_to_time(pair.refresh_expires_unix),
                            &role,
                        ],
                    )
                    .await?;
                transaction.commit().await?;
                Ok(Some(Row {
                    role,
                    access_token: pair.access_token,
                    access_expires_at: unix_to_time(pair.access_expires_unix),
                    refresh_expires_at: unix_to_time(pair.refresh_expires_unix),
                    ..row
                }))
            }
            Err(status) if matches!(status.code(), tonic::Code::Unauthenticated | tonic::Code::PermissionDenied | tonic::Code::NotFound) => {
                tracing::info!(username = %row.username, reason = %status.message(), "session ended: its refresh token was refused");
                transaction.execute("DELETE FROM web_sessions WHERE id_sha256 = $1", &[&id_sha256]).await?;
                transaction.commit().await?;
                Ok(None)
            }
            Err(status) => Err(WebError::Status(status)),
        }
    }

    /// Ends the session of `cookie`: revokes its refresh token at the users service and
    /// deletes the row.
    pub async fn end(&self, cookie: &str) -> Result<(), WebError> {
        // Logout needs a valid access token: a session about to expire is refreshed first.
        let Some(signed) = self.current(cookie).await? else {
            return Ok(());
        };
        let id_sha256 = sha256_hex(cookie);
        let client = self.pool.get().await?;
        let deleted = client.query_opt("DELETE FROM web_sessions WHERE id_sha256 = $1 RETURNING refresh_token", &[&id_sha256]).await?;
        if let Some(row) = deleted {
            let refresh_token: String = row.get(0);
            if let Err(status) = self.clients.accounts().logout(signed.caller.request(LogoutRequest { refresh_token })).await {
                tracing::warn!(code = ?status.code(), message = %status.message(), "revoking the refresh token at log-out failed");
            }
        }
        Ok(())
    }

    /// Deletes sessions whose refresh token expired or that were idle too long.
    pub async fn delete_expired(&self) -> Result<u64, WebError> {
        let client = self.pool.get().await?;
        let idle = Utc::now() - Duration::days(self.settings.session_idle_days);
        Ok(client.execute("DELETE FROM web_sessions WHERE refresh_expires_at <= now() OR last_seen_at <= $1", &[&idle]).await?)
    }

    /// Keeps the summary of an import made in the browser for its result page.
    pub async fn keep_import_result(&self, username: &str, import_id: &str, summary: &serde_json::Value) -> Result<(), WebError> {
        let client = self.pool.get().await?;
        client
            .execute(
                "INSERT INTO web_import_results (import_id, username, summary) VALUES ($1, $2, $3)
                 ON CONFLICT (import_id) DO UPDATE SET summary = EXCLUDED.summary",
                &[&import_id, &username, summary],
            )
            .await?;
        Ok(())
    }

    /// Returns the summary of an import of `username`'s (another person's import is not found).
    pub async fn import_result(&self, username: &str, import_id: &str) -> Result<Option<serde_json::Value>, WebError> {
        let client = self.pool.get().await?;
        let row = client.query_opt("SELECT summary FROM web_import_results WHERE import_id = $1 AND username = $2", &[&import_id, &username]).await?;
        Ok(row.map(|row| row.get(0)))
    }
}

fn row_of(row: &tokio_postgres::Row) -> Row {
    Row {
        username: row.get(0),
        role: row.get(1),
        access_token: row.get(2),
        access_expires_at: row.get(3),
        refresh_expires_at: row.get(4),
        csrf_token: row.get(5),
        last_seen_at: row.get(6),
    }
}

/// Returns the value of cookie `name` from the request's `Cookie` headers.
pub fn cookie_value(headers: &HeaderMap, name: &str) -> Option<String> {
    headers
        .get_all(axum::http::header::COOKIE)
        .iter()
        .filter_map(|value| value.to_str().ok())
        .flat_map(cookie::Cookie::split_parse)
        .filter_map(Result::ok)
        .find(|cookie| cookie.name() == name)
        .map(|cookie| cookie.value().to_owned())
}

/// A `Set-Cookie` value: `HttpOnly`, `SameSite=Lax`, path `/`, `Secure` over TLS;
/// `max_age` `None` removes the cookie.
pub fn set_cookie(name: &str, value: &str, max_age: Option<Duration>, secure: bool) -> String {
    let mut cookie =
        cookie::Cookie::build((name.to_owned(), value.to_owned())).path("/").http_only(true).same_site(cookie::SameSite::Lax).secure(secure);
    cookie = match max_age {
        Some(age) => cookie.max_age(cookie::time::Duration::seconds(age.num_seconds())),
        None => cookie.max_age(cookie::time::Duration::ZERO),
    };
    cookie.build().to_string()
}

impl FromRequestParts<AppState> for Signed {
    type Rejection = WebError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, Self::Rejection> {
        let next = parts.uri.path_and_query().map_or("/".to_owned(), |path| path.as_str().to_owned());
        if let Some(signed) = parts.extensions.get::<Signed>() {
            return Ok(signed.clone());
        }
        let cookie = cookie_value(&parts.headers, SESSION_COOKIE).ok_or(WebError::LoggedOut { next: next.clone() })?;
        let signed = state.sessions.current(&cookie).await?.ok_or(WebError::LoggedOut { next })?;
        parts.extensions.insert(signed.clone());
        Ok(signed)
    }
}

/// The signed-in person when there is one (public pages show a log-in link otherwise).
#[derive(Clone, Debug)]
pub struct MaybeSigned(pub Option<Signed>);

impl FromRequestParts<AppState> for MaybeSigned {
    type Rejection = WebError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, Self::Rejection> {
        match Signed::from_request_parts(parts, state).await {
            Ok(signed) => Ok(Self(Some(signed))),
            Err(WebError::LoggedOut { .. }) => Ok(Self(None)),
            Err(error) => Err(error),
        }
    }
}
