//! The pages and their routes.

pub mod admin;
pub mod auth;
pub mod chats;
pub mod files;
pub mod import;
pub mod layout;
pub mod telegram;

use axum::extract::Request;
use axum::http::{header, HeaderValue};
use axum::middleware::Next;
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use axum::Router;

use crate::session::MaybeSigned;
use crate::AppState;

/// The Content-Security-Policy of every answer: scripts, styles and media from this
/// origin only, no inline script, no plugin, no framing, forms posted only here.
pub const CONTENT_SECURITY_POLICY: &str = "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; media-src 'self'; \
     connect-src 'self'; object-src 'none'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'";

/// Every page route, with the CSRF check and the security headers.
pub fn router(state: AppState) -> Router {
    Router::new()
        .route("/", get(home))
        .route("/static/{name}", get(layout::asset))
        .route("/login", get(auth::login_page).post(auth::log_in))
        .route("/logout", post(auth::log_out))
        .route("/register", get(auth::register_page).post(auth::register))
        .route("/chats", get(chats::list))
        .route("/chats/{chat_id}", get(chats::view))
        .route("/chats/{chat_id}/authors", get(chats::authors))
        .route("/search", get(chats::search))
        // The two streamed uploads have no body limit (ingest bounds what it takes); every
        // other route keeps axum's 2 MB default.
        .route("/import", get(import::page).post(import::upload).layer(axum::extract::DefaultBodyLimit::disable()))
        .route("/imports/{import_id}", get(import::result))
        .route("/files", get(files::list))
        .route("/files/upload", post(files::upload).layer(axum::extract::DefaultBodyLimit::disable()))
        .route("/files/{file_id}", get(files::detail))
        .route("/files/{file_id}/download", get(files::download))
        .route("/files/{file_id}/view", get(files::inline))
        .route("/files/{file_id}/thumbnail", get(files::thumbnail))
        .route("/files/{file_id}/rename", post(files::rename))
        .route("/files/{file_id}/delete", post(files::delete))
        .route("/files/{file_id}/share", post(files::create_share))
        .route("/shares/{link_id}/revoke", post(files::revoke_share))
        .route("/s/{token}", get(files::public_share).post(files::public_share_download))
        .route("/s/{token}/download", get(files::public_share_download_open))
        .route("/history", get(admin::history))
        .route("/telegram", get(telegram::show))
        .route("/telegram/code", post(telegram::create_code))
        .route("/telegram/unlink", post(telegram::unlink))
        .route("/admin", get(admin::overview))
        .route("/admin/nodes", post(admin::add_node))
        .route("/admin/backups", post(admin::create_backup))
        .route("/admin/backups/{backup_id}/verify", post(admin::verify_backup))
        .route("/admin/jobs/{job_id}", get(admin::job))
        .route("/admin/accounts/{username}/role", post(admin::set_role))
        .layer(axum::middleware::from_fn_with_state(state.clone(), crate::csrf::protect))
        .fallback(not_found)
        .layer(axum::middleware::from_fn(error_pages))
        .layer(axum::middleware::from_fn(security_headers))
        .with_state(state)
}

/// Streams a multipart field on to a gRPC call: reads it to its end and sends it in pieces of
/// `piece_bytes` (the last one shorter, possibly empty, so every field sends at least one),
/// each made into a message by `message`. An error reading the field is the upload's fault
/// (it broke off); a closed receiver (the call ended early) stops quietly, and the call's
/// own answer says why.
pub async fn forward_field<T>(
    field: &mut axum::extract::multipart::Field<'_>,
    piece_bytes: usize,
    sender: &tokio::sync::mpsc::Sender<T>,
    message: impl Fn(bytes::Bytes) -> T,
) -> Result<(), crate::WebError> {
    let mut pending = bytes::BytesMut::new();
    loop {
        match field.chunk().await {
            Ok(Some(chunk)) => {
                pending.extend_from_slice(&chunk);
                while pending.len() >= piece_bytes {
                    if sender.send(message(pending.split_to(piece_bytes).freeze())).await.is_err() {
                        return Ok(());
                    }
                }
            }
            Ok(None) => break,
            Err(error) => return Err(crate::WebError::BadRequest(format!("the upload broke off: {error}"))),
        }
    }
    let _ = sender.send(message(pending.freeze())).await;
    Ok(())
}

/// `value` percent-encoded for a query string or a path segment.
pub fn enc(value: &str) -> String {
    percent_encoding::utf8_percent_encode(value, percent_encoding::NON_ALPHANUMERIC).to_string()
}

async fn home(MaybeSigned(signed): MaybeSigned) -> Response {
    match signed {
        Some(_) => Redirect::to("/chats").into_response(),
        None => Redirect::to("/login").into_response(),
    }
}

async fn not_found() -> Response {
    crate::WebError::NotFound("there is no such page".to_owned()).into_response()
}

/// Turns axum's own refusals (a path or query that does not parse, a form with a missing
/// field, a body too large, a wrong method: plain text or an empty body) into the error
/// page with the same status and a sentence a person reads.
async fn error_pages(request: Request, next: Next) -> Response {
    let response = next.run(request).await;
    let status = response.status();
    let is_plain = response
        .headers()
        .get(header::CONTENT_TYPE)
        .is_none_or(|value| value.to_str().is_ok_and(|content_type| content_type.starts_with("text/plain")));
    if !(status.is_client_error() && is_plain) {
        return response;
    }
    let message = match status.as_u16() {
        400 | 422 => "the address or the form holds a value that is not valid here (a number, a date or a missing field)",
        405 => "this address does not take that kind of request",
        413 => "the request is too large",
        414 => "the address is too long",
        404 => "there is no such page",
        _ => "the request was refused",
    };
    (status, layout::error_page(status, message)).into_response()
}

/// Adds the security headers to every answer (file answers set their own, stricter CSP).
async fn security_headers(request: Request, next: Next) -> Response {
    let mut response = next.run(request).await;
    let headers = response.headers_mut();
    headers.entry(header::CONTENT_SECURITY_POLICY).or_insert(HeaderValue::from_static(CONTENT_SECURITY_POLICY));
    headers.insert(header::X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff"));
    headers.entry(header::REFERRER_POLICY).or_insert(HeaderValue::from_static("same-origin"));
    headers.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    headers.entry(header::CACHE_CONTROL).or_insert(HeaderValue::from_static("no-store"));
    response
}
