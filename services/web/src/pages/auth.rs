//! Log-in, log-out and registration.

use askama::Template;
use std::net::SocketAddr;

use axum::extract::{ConnectInfo, Query, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Redirect, Response};
use axum::Form;
use chatvault_proto::users::v1::{LoginRequest, RegisterRequest, RegistrationStatusRequest};
use chrono::Duration;
use serde::Deserialize;

use super::layout::{render, Chrome};
use crate::csrf::ANONYMOUS_COOKIE;
use crate::session::{cookie_value, random_token, set_cookie, MaybeSigned, SESSION_COOKIE};
use crate::{AppState, WebError};

#[derive(Template)]
#[template(path = "login.html")]
struct LoginPage {
    chrome: Chrome,
    next: String,
    username: String,
    error: String,
    registration_open: bool,
}

#[derive(Template)]
#[template(path = "register.html")]
struct RegisterPage {
    chrome: Chrome,
    username: String,
    email: String,
    error: String,
    open: bool,
}

#[derive(Debug, Deserialize)]
pub struct NextQuery {
    #[serde(default)]
    next: String,
}

#[derive(Debug, Deserialize)]
pub struct LoginForm {
    username: String,
    password: String,
    #[serde(default)]
    next: String,
}

#[derive(Debug, Deserialize)]
pub struct RegisterForm {
    username: String,
    email: String,
    password: String,
}

/// Returns `next` when it is a path of this site (`/…`, not `//host` or `/\host`), else `/chats`.
pub fn local_path(next: &str) -> String {
    let is_local = next.starts_with('/') && !next.starts_with("//") && !next.starts_with("/\\") && !next.chars().any(char::is_control);
    if is_local {
        next.to_owned()
    } else {
        "/chats".to_owned()
    }
}

/// The anonymous CSRF token of the request, or a new one with the cookie that sets it.
pub(crate) fn anonymous_token(state: &AppState, headers: &HeaderMap) -> (String, Option<String>) {
    match cookie_value(headers, ANONYMOUS_COOKIE) {
        Some(token) if crate::csrf::is_token(&token) => (token, None),
        _ => {
            let token = random_token();
            let cookie = set_cookie(ANONYMOUS_COOKIE, &token, Some(Duration::days(1)), state.settings.secure_cookies());
            (token, Some(cookie))
        }
    }
}

fn with_cookie(response: Response, cookie: Option<String>) -> Response {
    match cookie {
        Some(cookie) => ([(header::SET_COOKIE, cookie)], response).into_response(),
        None => response,
    }
}

async fn registration_open(state: &AppState) -> bool {
    match state.clients.accounts().registration_status(RegistrationStatusRequest {}).await {
        Ok(status) => status.into_inner().open,
        Err(status) => {
            tracing::debug!(message = %status.message(), "registration status unknown; the link is hidden");
            false
        }
    }
}

pub async fn login_page(
    State(state): State<AppState>,
    MaybeSigned(signed): MaybeSigned,
    headers: HeaderMap,
    Query(query): Query<NextQuery>,
) -> Result<Response, WebError> {
    if signed.is_some() {
        return Ok(Redirect::to(&local_path(&query.next)).into_response());
    }
    let (csrf, cookie) = anonymous_token(&state, &headers);
    let page = LoginPage {
        chrome: Chrome::public("Log in", csrf),
        next: local_path(&query.next),
        username: String::new(),
        error: String::new(),
        registration_open: registration_open(&state).await,
    };
    Ok(with_cookie(render(&page)?, cookie))
}

/// The visitor's address and browser, for the log-in's record.
fn visitor(peer: SocketAddr, headers: &HeaderMap) -> (String, String) {
    let agent = headers.get(header::USER_AGENT).and_then(|value| value.to_str().ok()).unwrap_or_default();
    (peer.ip().to_string(), agent.to_owned())
}

pub async fn log_in(
    State(state): State<AppState>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    Form(form): Form<LoginForm>,
) -> Result<Response, WebError> {
    let (address, agent) = visitor(peer, &headers);
    let request =
        state.clients.visitor_request(LoginRequest { username: form.username.trim().to_owned(), password: form.password }, &address, &agent);
    match state.clients.accounts().login(request).await {
        Ok(pair) => {
            let pair = pair.into_inner();
            if let Some(old) = cookie_value(&headers, SESSION_COOKIE) {
                state.sessions.end(&old).await?;
            }
            let session = state.sessions.create(&pair).await?;
            let secure = state.settings.secure_cookies();
            let cookies = [
                set_cookie(SESSION_COOKIE, &session, Some(Duration::days(state.settings.session_idle_days)), secure),
                set_cookie(ANONYMOUS_COOKIE, "", None, secure),
            ];
            let mut response = Redirect::to(&local_path(&form.next)).into_response();
            for cookie in cookies {
                if let Ok(value) = cookie.parse() {
                    response.headers_mut().append(header::SET_COOKIE, value);
                }
            }
            Ok(response)
        }
        Err(status)
            if matches!(
                status.code(),
                tonic::Code::Unauthenticated | tonic::Code::InvalidArgument | tonic::Code::ResourceExhausted | tonic::Code::PermissionDenied
            ) =>
        {
            let (csrf, cookie) = anonymous_token(&state, &headers);
            let page = LoginPage {
                chrome: Chrome::public("Log in", csrf),
                next: local_path(&form.next),
                username: form.username,
                error: status.message().to_owned(),
                registration_open: registration_open(&state).await,
            };
            Ok(with_cookie((StatusCode::UNAUTHORIZED, render(&page)?).into_response(), cookie))
        }
        Err(status) => Err(WebError::Status(status)),
    }
}

pub async fn log_out(State(state): State<AppState>, headers: HeaderMap) -> Result<Response, WebError> {
    if let Some(session) = cookie_value(&headers, SESSION_COOKIE) {
        state.sessions.end(&session).await?;
    }
    let cookie = set_cookie(SESSION_COOKIE, "", None, state.settings.secure_cookies());
    Ok(([(header::SET_COOKIE, cookie)], Redirect::to("/login")).into_response())
}

pub async fn register_page(State(state): State<AppState>, MaybeSigned(signed): MaybeSigned, headers: HeaderMap) -> Result<Response, WebError> {
    if signed.is_some() {
        return Ok(Redirect::to("/chats").into_response());
    }
    let (csrf, cookie) = anonymous_token(&state, &headers);
    let page = RegisterPage {
        chrome: Chrome::public("Create an account", csrf),
        username: String::new(),
        email: String::new(),
        error: String::new(),
        open: registration_open(&state).await,
    };
    Ok(with_cookie(render(&page)?, cookie))
}

pub async fn register(
    State(state): State<AppState>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    Form(form): Form<RegisterForm>,
) -> Result<Response, WebError> {
    let request = RegisterRequest { username: form.username.trim().to_owned(), email: form.email.trim().to_owned(), password: form.password.clone() };
    match state.clients.accounts().register(request).await {
        Ok(_) => {
            // Signs the new account in at once.
            let (address, agent) = visitor(peer, &headers);
            let login = LoginRequest { username: form.username.trim().to_owned(), password: form.password };
            let pair = state.clients.accounts().login(state.clients.visitor_request(login, &address, &agent)).await?.into_inner();
            let session = state.sessions.create(&pair).await?;
            let cookie =
                set_cookie(SESSION_COOKIE, &session, Some(Duration::days(state.settings.session_idle_days)), state.settings.secure_cookies());
            Ok(([(header::SET_COOKIE, cookie)], Redirect::to("/import")).into_response())
        }
        Err(status) if status.code() != tonic::Code::Unavailable && status.code() != tonic::Code::Internal => {
            let (csrf, cookie) = anonymous_token(&state, &headers);
            let page = RegisterPage {
                chrome: Chrome::public("Create an account", csrf),
                username: form.username,
                email: form.email,
                error: status.message().to_owned(),
                open: true,
            };
            Ok(with_cookie((StatusCode::BAD_REQUEST, render(&page)?).into_response(), cookie))
        }
        Err(status) => Err(WebError::Status(status)),
    }
}

#[cfg(test)]
mod tests {
    use super::local_path;

    #[test]
    fn only_local_paths_are_followed_after_log_in() {
        assert_eq!(local_path("/chats/5?at=3"), "/chats/5?at=3");
        for foreign in ["https://evil.example", "//evil.example", "/\\evil.example", "", "javascript:alert(1)"] {
            assert_eq!(local_path(foreign), "/chats", "{foreign:?}");
        }
    }
}
