//! REST downloads: `GET /api/file/{id}` for the owner (header `x-chatvault-user`) and
//! `GET /s/{token}` for anyone holding a share link (password as `?password=` or the
//! `x-chatvault-share-password` header). Both honour `Range` and send the original name
//! and content type. Every way a share link can fail answers the same 404.

use std::sync::Arc;

use axum::body::Body;
use axum::extract::{Path, Query, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use futures::StreamExt;
use serde::Deserialize;
use serde_json::json;
use tokio_stream::wrappers::ReceiverStream;

use super::catalog::FileCatalog;
use super::download::{spawn_download, ByteRange, FileManifest};
use crate::Error;

/// The header that may carry a share link's password.
pub const SHARE_PASSWORD_HEADER: &str = "x-chatvault-share-password";

/// Returns the download routes.
pub fn download_routes(catalog: FileCatalog) -> Router {
    Router::new().route("/api/file/{file_id}", get(get_file)).route("/s/{token}", get(get_shared_file)).with_state(catalog)
}

async fn get_file(State(catalog): State<FileCatalog>, Path(file_id): Path<String>, headers: HeaderMap) -> Response {
    let owner = chatvault_common::caller::caller_of_headers(&headers);
    if let Err(error) = catalog.file_of_owner(&file_id, &owner).await {
        return error_response(&error);
    }
    match catalog.manifest(&file_id).await {
        Ok(manifest) => file_response(&catalog, manifest, &headers),
        Err(error) => error_response(&error),
    }
}

#[derive(Debug, Deserialize)]
struct ShareQuery {
    password: Option<String>,
}

async fn get_shared_file(
    State(catalog): State<FileCatalog>,
    Path(token): Path<String>,
    Query(query): Query<ShareQuery>,
    headers: HeaderMap,
) -> Response {
    let header_password = headers.get(SHARE_PASSWORD_HEADER).and_then(|value| value.to_str().ok()).map(str::to_owned);
    let password = query.password.or(header_password);
    match catalog.manifest_of_share_link(&token, password.as_deref()).await {
        Ok(Some(manifest)) => file_response(&catalog, manifest, &headers),
        Ok(None) => (StatusCode::NOT_FOUND, Json(json!({ "error": "no such share link, or it expired, was revoked or needs another password" })))
            .into_response(),
        Err(error) => error_response(&error),
    }
}

fn file_response(catalog: &FileCatalog, manifest: FileManifest, headers: &HeaderMap) -> Response {
    let size = manifest.info.size;
    let range = match headers.get(header::RANGE).and_then(|value| value.to_str().ok()) {
        None => None,
        Some(text) => match parse_range(text, size) {
            Some(range) => Some(range),
            None => {
                return (StatusCode::RANGE_NOT_SATISFIABLE, [(header::CONTENT_RANGE, format!("bytes */{size}"))]).into_response()
            }
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
    let ascii: String = name.chars().map(|character| if character.is_ascii_graphic() && character != '"' && character != '\\' || character == ' ' { character } else { '_' }).collect();
    let encoded: String = name
        .bytes()
        .map(|byte| if byte.is_ascii_alphanumeric() || b"-._~".contains(&byte) { (byte as char).to_string() } else { format!("%{byte:02X}") })
        .collect();
    format!("attachment; filename=\"{ascii}\"; filename*=UTF-8''{encoded}")
}

fn error_response(error: &Error) -> Response {
    let status = match error {
        Error::InvalidArgument(_) => StatusCode::BAD_REQUEST,
        Error::NotFound(_) => StatusCode::NOT_FOUND,
        Error::Unavailable(_) | Error::Pool(_) => StatusCode::SERVICE_UNAVAILABLE,
        Error::DeadlineExceeded(_) => StatusCode::GATEWAY_TIMEOUT,
        _ => StatusCode::INTERNAL_SERVER_ERROR,
    };
    let message = if status == StatusCode::INTERNAL_SERVER_ERROR {
        tracing::error!(error = ?error, "download failed");
        "internal error; see the storage service log".to_owned()
    } else {
        error.to_string()
    };
    (status, Json(json!({ "error": message }))).into_response()
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
    fn names_keep_their_unicode_in_the_extended_parameter() {
        assert_eq!(content_disposition("a b.txt"), "attachment; filename=\"a b.txt\"; filename*=UTF-8''a%20b.txt");
        assert!(content_disposition("отчёт.pdf").contains("filename*=UTF-8''%D0%BE"));
    }
}
