//! REST downloads: `GET /api/file/{id}` for the owner (header `x-chatvault-user`) and
//! `GET` or `POST /s/{token}` for anyone holding a share link. Both honour `Range` and send
//! the original name and content type.
//!
//! A share link's password comes in the `X-Share-Password` header (the older
//! `x-chatvault-share-password` works too) or, with `POST`, as the form field `password`
//! (`application/x-www-form-urlencoded`). A `password` in the query string is refused with
//! 400 before the link is looked at: URLs end up in access logs, proxies and browser history.
//!
//! Share-link answers: 404 for every link that does not work now (unknown, expired, revoked,
//! file deleted: all alike), 401 for a missing or wrong password, 429 with `Retry-After` for
//! a link past its failed passwords per minute (even with the right one), and 503 with
//! `Retry-After` when every password check slot stayed busy (see `share_password_guard`).
//! The checks themselves are `share_link_access`'s, shared with the gRPC OpenShareLink.

use std::sync::Arc;

use axum::body::Body;
use axum::extract::rejection::FormRejection;
use axum::extract::{DefaultBodyLimit, Path, Query, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Form, Json, Router};
use futures::StreamExt;
use serde::Deserialize;
use serde_json::json;
use tokio_stream::wrappers::ReceiverStream;

use super::catalog::FileCatalog;
use super::download::{spawn_download, ByteRange, FileManifest};
use super::share_link_access::ShareLinkRefusal;
use super::share_password_guard::SharePasswordSettings;
use crate::Error;

/// The header that carries a share link's password.
pub const SHARE_PASSWORD_HEADER: &str = "x-share-password";
/// The header the first version of share links read; still accepted.
pub const LEGACY_SHARE_PASSWORD_HEADER: &str = "x-chatvault-share-password";
/// The largest body a share-link `POST` may have: a form with one password field.
const SHARE_FORM_MAX_BYTES: usize = 8 * 1024;
/// Where a share link's password goes, for the answers that ask for it.
const WHERE_THE_PASSWORD_GOES: &str =
    "send it in the X-Share-Password header, or as the form field password of a POST (application/x-www-form-urlencoded)";

/// What the download routes share.
#[derive(Clone, Debug)]
struct DownloadState {
    catalog: FileCatalog,
}

/// Returns the download routes; `share_passwords` bounds the password checks of share links
/// (configured on the catalog, so gRPC's OpenShareLink checks through the same guard).
pub fn download_routes(catalog: FileCatalog, share_passwords: SharePasswordSettings) -> Router {
    catalog.configure_share_passwords(share_passwords);
    let state = DownloadState { catalog };
    Router::new()
        .route("/api/file/{file_id}", get(get_file))
        .route("/s/{token}", get(get_shared_file).post(post_shared_file).layer(DefaultBodyLimit::max(SHARE_FORM_MAX_BYTES)))
        .with_state(state)
}

async fn get_file(State(state): State<DownloadState>, Path(file_id): Path<String>, headers: HeaderMap) -> Response {
    let owner = chatvault_common::caller::caller_of_headers(&headers);
    if let Err(error) = state.catalog.file_of_owner(&file_id, &owner).await {
        return error_response(error);
    }
    match state.catalog.manifest(&file_id).await {
        Ok(manifest) => file_response(&state.catalog, manifest, &headers),
        Err(error) => error_response(error),
    }
}

/// The query string of a share link: only read to refuse a password in it.
#[derive(Debug, Deserialize)]
struct ShareQuery {
    password: Option<String>,
}

/// The form a share-link `POST` sends.
#[derive(Debug, Deserialize)]
struct ShareForm {
    password: Option<String>,
}

async fn get_shared_file(
    State(state): State<DownloadState>,
    Path(token): Path<String>,
    Query(query): Query<ShareQuery>,
    headers: HeaderMap,
) -> Response {
    if query.password.is_some() {
        return password_in_url_response();
    }
    let password = password_of_headers(&headers);
    serve_shared_file(&state, &token, password, &headers).await
}

async fn post_shared_file(
    State(state): State<DownloadState>,
    Path(token): Path<String>,
    Query(query): Query<ShareQuery>,
    headers: HeaderMap,
    form: Result<Form<ShareForm>, FormRejection>,
) -> Response {
    if query.password.is_some() {
        return password_in_url_response();
    }
    let header_password = password_of_headers(&headers);
    let password = match form {
        Ok(Form(form)) => form.password.filter(|password| !password.is_empty()).or(header_password),
        // A bodiless POST with the header is fine; a body that is no form is a mistake.
        Err(_) if header_password.is_some() => header_password,
        Err(rejection) => {
            let message = format!("the body is not a form ({rejection}); {WHERE_THE_PASSWORD_GOES}");
            return json_error(StatusCode::BAD_REQUEST, &message);
        }
    };
    serve_shared_file(&state, &token, password, &headers).await
}

fn password_of_headers(headers: &HeaderMap) -> Option<String> {
    [SHARE_PASSWORD_HEADER, LEGACY_SHARE_PASSWORD_HEADER]
        .iter()
        .find_map(|name| headers.get(*name).and_then(|value| value.to_str().ok()))
        .filter(|password| !password.is_empty())
        .map(str::to_owned)
}

/// Answers a share-link download: checks that the link works, then its password (bounded
/// by the guard), then streams the file.
async fn serve_shared_file(state: &DownloadState, token: &str, password: Option<String>, headers: &HeaderMap) -> Response {
    match state.catalog.open_share_link(token, password.as_deref()).await {
        Ok(manifest) => file_response(&state.catalog, manifest, headers),
        Err(refusal) => share_link_refusal_response(refusal),
    }
}

/// Answers a refused share link: 404, 401 (saying where a password goes), 429 or 503 with
/// `Retry-After`, or the status of a failure.
fn share_link_refusal_response(refusal: ShareLinkRefusal) -> Response {
    let retry_after = refusal.retry_after_seconds();
    match refusal {
        ShareLinkRefusal::NotFound => unknown_share_link_response(),
        ShareLinkRefusal::PasswordMissing => json_error(StatusCode::UNAUTHORIZED, &format!("{refusal}: {WHERE_THE_PASSWORD_GOES}")),
        ShareLinkRefusal::PasswordWrong => json_error(StatusCode::UNAUTHORIZED, &refusal.to_string()),
        ShareLinkRefusal::TooManyFailures { .. } | ShareLinkRefusal::TooManyLinksGuessed => {
            retry_later(StatusCode::TOO_MANY_REQUESTS, retry_after.unwrap_or(1), &refusal.to_string())
        }
        ShareLinkRefusal::ChecksBusy => retry_later(StatusCode::SERVICE_UNAVAILABLE, retry_after.unwrap_or(1), &refusal.to_string()),
        ShareLinkRefusal::Failed(error) => error_response(error),
    }
}

fn unknown_share_link_response() -> Response {
    json_error(StatusCode::NOT_FOUND, &ShareLinkRefusal::NotFound.to_string())
}

fn password_in_url_response() -> Response {
    let message = format!("a share link's password does not belong in the URL, where logs and browser history keep it: {WHERE_THE_PASSWORD_GOES}");
    json_error(StatusCode::BAD_REQUEST, &message)
}

fn retry_later(status: StatusCode, seconds: u64, message: &str) -> Response {
    let mut response = json_error(status, message);
    response.headers_mut().insert(header::RETRY_AFTER, HeaderValue::from(seconds));
    response
}

fn json_error(status: StatusCode, message: &str) -> Response {
    (status, Json(json!({ "error": message }))).into_response()
}

fn file_response(catalog: &FileCatalog, manifest: FileManifest, headers: &HeaderMap) -> Response {
    let size = manifest.info.size;
    let range = match headers.get(header::RANGE).and_then(|value| value.to_str().ok()) {
        None => None,
        Some(text) => match parse_range(text, size) {
            Some(range) => Some(range),
            None => return (StatusCode::RANGE_NOT_SATISFIABLE, [(header::CONTENT_RANGE, format!("bytes */{size}"))]).into_response(),
        },
    };
    let mut response_headers = HeaderMap::new();
    let content_type = HeaderValue::from_str(&manifest.info.content_type).unwrap_or(HeaderValue::from_static("application/octet-stream"));
    response_headers.insert(header::CONTENT_TYPE, content_type);
    response_headers.insert(header::ACCEPT_RANGES, HeaderValue::from_static("bytes"));
    if let Ok(disposition) = HeaderValue::from_str(&content_disposition(&manifest.info.name)) {
        response_headers.insert(header::CONTENT_DISPOSITION, disposition);
    }
    if let Ok(etag) = HeaderValue::from_str(&format!("\"{}\"", manifest.info.sha256)) {
        response_headers.insert(header::ETAG, etag);
    }
    let (status, length) = match range {
        Some(range) => {
            let content_range = format!("bytes {}-{}/{size}", range.start, range.end - 1);
            response_headers.insert(header::CONTENT_RANGE, HeaderValue::from_str(&content_range).expect("ascii"));
            (StatusCode::PARTIAL_CONTENT, range.end - range.start)
        }
        None => (StatusCode::OK, size),
    };
    response_headers.insert(header::CONTENT_LENGTH, HeaderValue::from(length));
    let receiver = spawn_download(catalog.clients().clone(), Arc::new(manifest), range);
    let body = Body::from_stream(ReceiverStream::new(receiver).map(|chunk| chunk.map_err(|error| std::io::Error::other(error.to_string()))));
    (status, response_headers, body).into_response()
}

/// Parses one `bytes=` range against `size`; `None` when unsatisfiable or malformed.
fn parse_range(text: &str, size: u64) -> Option<ByteRange> {
    let spec = text.trim().strip_prefix("bytes=")?;
    if spec.contains(',') {
        return None;
    }
    let (first, last) = spec.split_once('-')?;
    let (start, end) = match (first.trim(), last.trim()) {
        ("", suffix) => {
            let suffix: u64 = suffix.parse().ok()?;
            (size.checked_sub(suffix.min(size))?, size)
        }
        (start, "") => (start.parse().ok()?, size),
        (start, last) => (start.parse().ok()?, last.parse::<u64>().ok()?.saturating_add(1).min(size)),
    };
    (start < end && start < size).then_some(ByteRange { start, end })
}

/// Returns `attachment` with an ASCII fallback and the UTF-8 name (RFC 6266).
fn content_disposition(name: &str) -> String {
    let ascii: String = name
        .chars()
        .map(|character| if character.is_ascii_graphic() && character != '"' && character != '\\' || character == ' ' { character } else { '_' })
        .collect();
    let encoded: String = name
        .bytes()
        .map(|byte| if byte.is_ascii_alphanumeric() || b"-._~".contains(&byte) { (byte as char).to_string() } else { format!("%{byte:02X}") })
        .collect();
    format!("attachment; filename=\"{ascii}\"; filename*=UTF-8''{encoded}")
}

/// Answers a failed download with the status and message of the one error mapping
/// (`chatvault_common::status`: the caller's input named, internal causes logged with an
/// incident id), as JSON `{"error": "...", "code": "NOT_FOUND"}`.
fn error_response(error: Error) -> Response {
    let status = chatvault_common::status::into_status(crate::SERVICE_NAME, error);
    let http_status = match status.code() {
        tonic::Code::InvalidArgument | tonic::Code::OutOfRange => StatusCode::BAD_REQUEST,
        tonic::Code::NotFound => StatusCode::NOT_FOUND,
        tonic::Code::PermissionDenied => StatusCode::FORBIDDEN,
        tonic::Code::Unauthenticated => StatusCode::UNAUTHORIZED,
        tonic::Code::ResourceExhausted => StatusCode::TOO_MANY_REQUESTS,
        tonic::Code::Unavailable => StatusCode::SERVICE_UNAVAILABLE,
        tonic::Code::DeadlineExceeded => StatusCode::GATEWAY_TIMEOUT,
        _ => StatusCode::INTERNAL_SERVER_ERROR,
    };
    (http_status, Json(json!({ "error": status.message(), "code": chatvault_common::grpc::canonical_code_name(status.code()) }))).into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ranges_are_clamped_and_bad_ones_refused() {
        assert_eq!(parse_range("bytes=0-9", 100), Some(ByteRange { start: 0, end: 10 }));
        assert_eq!(parse_range("bytes=90-", 100), Some(ByteRange { start: 90, end: 100 }));
        assert_eq!(parse_range("bytes=-10", 100), Some(ByteRange { start: 90, end: 100 }));
        assert_eq!(parse_range("bytes=50-500", 100), Some(ByteRange { start: 50, end: 100 }));
        assert_eq!(parse_range("bytes=100-", 100), None);
        assert_eq!(parse_range("bytes=0-1,4-5", 100), None);
        assert_eq!(parse_range("items=0-1", 100), None);
    }

    #[test]
    fn the_password_header_is_read_under_both_names() {
        let mut headers = HeaderMap::new();
        assert_eq!(password_of_headers(&headers), None);
        headers.insert(LEGACY_SHARE_PASSWORD_HEADER, HeaderValue::from_static("old"));
        assert_eq!(password_of_headers(&headers).as_deref(), Some("old"));
        headers.insert(SHARE_PASSWORD_HEADER, HeaderValue::from_static("new"));
        assert_eq!(password_of_headers(&headers).as_deref(), Some("new"), "the documented header wins");
    }

    #[test]
    fn names_keep_their_unicode_in_the_extended_parameter() {
        assert_eq!(content_disposition("a b.txt"), "attachment; filename=\"a b.txt\"; filename*=UTF-8''a%20b.txt");
        assert!(content_disposition("отчёт.pdf").contains("filename*=UTF-8''%D0%BE"));
    }
}
