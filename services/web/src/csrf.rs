//! CSRF protection of every request that changes something.
//!
//! A signed-in session has a synchronizer token (stored with the session); before log-in,
//! the `cv_csrf` cookie holds one (the double-submit pattern, for the log-in, registration
//! and share-password forms). Every request other than GET/HEAD must carry the token: as
//! the form field `csrf` (URL-encoded forms), the `X-CSRF-Token` header (the page script),
//! or the `csrf` query parameter (multipart forms, whose bodies are streamed, not
//! buffered). A request whose `Origin` is another site is refused as well. Source: OWASP
//! Cross-Site Request Forgery Prevention Cheat Sheet (synchronizer token, double submit,
//! verifying the origin with standard headers).

use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::{header, Method};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use bytes::Bytes;

use crate::session::{cookie_value, Signed, SESSION_COOKIE};
use crate::{AppState, WebError};

/// The cookie that carries the token before log-in.
pub const ANONYMOUS_COOKIE: &str = "cv_csrf";
/// The header the page script sends the token in.
pub const HEADER: &str = "x-csrf-token";
/// The largest URL-encoded form read for its token (forms here hold a few fields).
const FORM_LIMIT_BYTES: usize = 64 * 1024;

/// Checks the CSRF token of every unsafe request; passes the rest through.
pub async fn protect(State(state): State<AppState>, request: Request, next: Next) -> Response {
    if matches!(*request.method(), Method::GET | Method::HEAD | Method::OPTIONS) {
        return next.run(request).await;
    }
    match check(&state, request).await {
        Ok(request) => next.run(request).await,
        Err(error) => error.into_response(),
    }
}

async fn check(state: &AppState, request: Request) -> Result<Request, WebError> {
    let headers = request.headers();
    if let Some(origin) = headers.get(header::ORIGIN).and_then(|value| value.to_str().ok()) {
        // Only the configured origin: the Host header is the requester's to choose (DNS
        // rebinding), so it proves nothing.
        if origin != state.settings.origin() {
            tracing::warn!(origin, "refused a request from another site");
            return Err(WebError::Csrf);
        }
    }
    let expected = match cookie_value(headers, SESSION_COOKIE) {
        Some(session) => match state.sessions.current(&session).await? {
            Some(signed) => {
                let token = signed.csrf.clone();
                let (mut parts, body) = request.into_parts();
                parts.extensions.insert::<Signed>(signed);
                return finish(Request::from_parts(parts, body), &token).await;
            }
            None => cookie_value(headers, ANONYMOUS_COOKIE),
        },
        None => cookie_value(headers, ANONYMOUS_COOKIE),
    };
    match expected.filter(|token| is_token(token)) {
        Some(token) => finish(request, &token).await,
        None => Err(WebError::Csrf),
    }
}

/// Looks for `expected` in the header, the query string or a URL-encoded body.
async fn finish(request: Request, expected: &str) -> Result<Request, WebError> {
    let presented_header = request.headers().get(HEADER).and_then(|value| value.to_str().ok()).map(str::to_owned);
    if presented_header.as_deref().is_some_and(|token| same(token, expected)) {
        return Ok(request);
    }
    if let Some(query) = request.uri().query() {
        if token_of_form(query.as_bytes()).is_some_and(|token| same(&token, expected)) {
            return Ok(request);
        }
    }
    let is_form = request
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|value| value.to_str().ok())
        .is_some_and(|content_type| content_type.starts_with("application/x-www-form-urlencoded"));
    if !is_form {
        return Err(WebError::Csrf);
    }
    let (parts, body) = request.into_parts();
    let bytes: Bytes = axum::body::to_bytes(body, FORM_LIMIT_BYTES)
        .await
        .map_err(|_| WebError::BadRequest(format!("a form may hold at most {FORM_LIMIT_BYTES} bytes")))?;
    if token_of_form(&bytes).is_some_and(|token| same(&token, expected)) {
        Ok(Request::from_parts(parts, Body::from(bytes)))
    } else {
        Err(WebError::Csrf)
    }
}

fn token_of_form(form: &[u8]) -> Option<String> {
    form_urlencoded::parse(form).find(|(key, _)| key == "csrf").map(|(_, value)| value.into_owned())
}

/// Whether `token` has the shape of the tokens this service makes: 64 hex digits (an
/// empty or chosen cookie value is not one).
pub fn is_token(token: &str) -> bool {
    token.len() == 64 && token.bytes().all(|byte| byte.is_ascii_hexdigit())
}

/// Compares two tokens in time independent of where they differ.
fn same(presented: &str, expected: &str) -> bool {
    let (presented, expected) = (presented.as_bytes(), expected.as_bytes());
    presented.len() == expected.len() && presented.iter().zip(expected).fold(0u8, |difference, (a, b)| difference | (a ^ b)) == 0
}

#[cfg(test)]
mod tests {
    use super::{is_token, same, token_of_form};

    #[test]
    fn the_token_is_read_from_a_form_and_compared_whole() {
        assert_eq!(token_of_form(b"name=a%20b&csrf=abc123").as_deref(), Some("abc123"));
        assert_eq!(token_of_form(b"name=x"), None);
        assert!(same("abc123", "abc123"));
        assert!(!same("abc12", "abc123"));
        assert!(!same("abc124", "abc123"));
        assert!(is_token(&crate::session::random_token()));
        assert!(!is_token("") && !is_token("c") && !is_token(&"z".repeat(64)));
    }
}
