//! Importing a Telegram Desktop export from the browser: a folder or a `.zip`, streamed to
//! ingest's UploadExport as it arrives (the web service keeps none of it), then its summary.

use askama::Template;
use axum::extract::{Multipart, Path, State};
use axum::http::{header, HeaderMap};
use axum::response::{IntoResponse, Json, Redirect, Response};
use chatvault_proto::ingest::v1::{import_update, upload_export_request, ExportFileChunk, ImportSummary, UploadExportHeader, UploadExportRequest};
use tokio_stream::wrappers::ReceiverStream;

use super::forward_field;
use super::layout::{render, Chrome};
use crate::session::Signed;
use crate::{AppState, WebError};

/// Bytes per chunk sent to ingest.
const CHUNK_BYTES: usize = 256 * 1024;

#[derive(Template)]
#[template(path = "import.html")]
struct ImportPage {
    chrome: Chrome,
}

pub async fn page(signed: Signed) -> Result<Response, WebError> {
    render(&ImportPage { chrome: Chrome::of(&signed, "Import an export", "import") })
}

/// Whether the page script asked (it wants JSON answers, errors included).
pub fn wants_json(headers: &HeaderMap) -> bool {
    headers.get(header::ACCEPT).and_then(|value| value.to_str().ok()).is_some_and(|accept| accept.contains("application/json"))
}

/// An error as the page script reads it: `{"error": "…"}` with the HTTP status.
pub fn json_error(error: WebError) -> Response {
    if let WebError::LoggedOut { .. } = error {
        return (axum::http::StatusCode::UNAUTHORIZED, Json(serde_json::json!({ "error": "your session ended; log in again" }))).into_response();
    }
    let (status, message) = error.status_and_message();
    (status, Json(serde_json::json!({ "error": message }))).into_response()
}

/// The path of an uploaded file inside the export: the folder the person picked is cut off
/// (`ChatExport_2024-03-01/photos/a.jpg` → `photos/a.jpg`), as is any `\`.
fn relative_path(uploaded: &str, root: &mut Option<String>) -> String {
    let path = uploaded.replace('\\', "/");
    let path = path.trim_start_matches('/');
    if root.is_none() {
        *root = Some(match path.split_once('/') {
            Some((first, _)) => format!("{first}/"),
            None => String::new(),
        });
    }
    match root.as_deref() {
        Some(prefix) if !prefix.is_empty() => path.strip_prefix(prefix).unwrap_or(path).to_owned(),
        _ => path.to_owned(),
    }
}

async fn run_import(state: &AppState, signed: &Signed, headers: &HeaderMap, mut multipart: Multipart) -> Result<ImportSummary, WebError> {
    let total_bytes = headers.get(header::CONTENT_LENGTH).and_then(|value| value.to_str().ok()).and_then(|value| value.parse().ok()).unwrap_or(0);
    let (sender, receiver) = tokio::sync::mpsc::channel::<UploadExportRequest>(4);
    let mut receiver = Some(receiver);
    let mut call = None;
    let mut root = None;
    let mut files = 0usize;
    let mut utc_offset_seconds = 0i32;
    while let Some(mut field) =
        multipart.next_field().await.map_err(|error| WebError::BadRequest(format!("the upload is not a readable form: {error}")))?
    {
        if field.name() == Some("utc_offset_minutes") {
            let text = field.text().await.unwrap_or_default();
            utc_offset_seconds = text.trim().parse::<i32>().unwrap_or(0).clamp(-24 * 60, 24 * 60) * 60;
            continue;
        }
        let Some(uploaded) = field.file_name().map(str::to_owned).filter(|name| !name.is_empty()) else {
            continue;
        };
        // The first file starts the call: the header goes first, with the time zone field
        // the form puts before the files.
        if let Some(receiver) = receiver.take() {
            let header = UploadExportHeader { local_utc_offset_seconds: utc_offset_seconds, total_bytes, html_chat_id: None };
            let _ = sender.send(UploadExportRequest { item: Some(upload_export_request::Item::Header(header)) }).await;
            let mut ingest = state.clients.ingest();
            let request = signed.caller.request(ReceiverStream::new(receiver));
            call = Some(tokio::spawn(async move {
                let mut updates = ingest.upload_export(request).await?.into_inner();
                let mut summary = None;
                while let Some(update) = updates.message().await? {
                    if let Some(import_update::Update::Summary(done)) = update.update {
                        summary = Some(done);
                    }
                }
                summary.ok_or_else(|| tonic::Status::internal("the import ended without a summary"))
            }));
        }
        let relative_path = relative_path(&uploaded, &mut root);
        files += 1;
        let piece = |data: bytes::Bytes| UploadExportRequest {
            item: Some(upload_export_request::Item::Chunk(ExportFileChunk { relative_path: relative_path.clone(), data: data.into() })),
        };
        if let Err(failure) = forward_field(&mut field, CHUNK_BYTES, &sender, piece).await {
            // Ends the call before its stream ends, so ingest discards the partial upload.
            if let Some(call) = call {
                call.abort();
            }
            return Err(failure);
        }
    }
    drop(sender);
    let Some(call) = call.filter(|_| files > 0) else {
        return Err(WebError::BadRequest("choose the export folder (with result.json or messages.html) or its .zip".to_owned()));
    };
    Ok(call.await.map_err(|error| WebError::Internal(format!("the import task failed: {error}")))??)
}

/// `POST /import`: streams the export to ingest and shows the summary.
pub async fn upload(State(state): State<AppState>, signed: Signed, headers: HeaderMap, multipart: Multipart) -> Response {
    let json = wants_json(&headers);
    let outcome = async {
        let summary = run_import(&state, &signed, &headers, multipart).await?;
        let value = serde_json::json!({
            "import_id": summary.import_id,
            "chats": summary.chats,
            "chat_ids": summary.chat_ids,
            "messages": summary.messages,
            "service_messages": summary.service_messages,
            "attachments": summary.attachments,
            "bytes_read": summary.bytes_read,
            "seconds": summary.seconds,
            "warnings": summary.warnings.iter().map(|warning| serde_json::json!({"kind": warning.kind, "count": warning.count})).collect::<Vec<_>>(),
        });
        state.sessions.keep_import_result(&signed.caller.username, &summary.import_id, &value).await?;
        Ok::<_, WebError>(format!("/imports/{}", summary.import_id))
    }
    .await;
    match (outcome, json) {
        (Ok(location), true) => Json(serde_json::json!({ "redirect": location })).into_response(),
        (Ok(location), false) => Redirect::to(&location).into_response(),
        (Err(error), true) => json_error(error),
        (Err(error), false) => error.into_response(),
    }
}

#[derive(Debug)]
pub struct WarningRow {
    pub kind: String,
    pub count: u64,
}

#[derive(Template)]
#[template(path = "import_result.html")]
struct ResultPage {
    chrome: Chrome,
    import_id: String,
    /// (name, link) of each chat of the import.
    chats: Vec<(String, String)>,
    messages: u64,
    service_messages: u64,
    attachments: u64,
    size: String,
    seconds: String,
    warnings: Vec<WarningRow>,
}

pub async fn result(State(state): State<AppState>, signed: Signed, Path(import_id): Path<String>) -> Result<Response, WebError> {
    let summary = state
        .sessions
        .import_result(&signed.caller.username, &import_id)
        .await?
        .ok_or_else(|| WebError::NotFound(format!("no import {import_id} of yours")))?;
    let number = |key: &str| summary.get(key).and_then(serde_json::Value::as_u64).unwrap_or(0);
    let caller = &signed.caller;
    let names: std::collections::HashMap<i64, String> = state
        .clients
        .storage()
        .list_chats(caller.request(chatvault_proto::storage::v1::ListChatsRequest::default()))
        .await?
        .into_inner()
        .chats
        .into_iter()
        .filter(|chat| chat.owner == caller.username)
        .filter_map(|chat| chat.name.map(|name| (chat.chat_id, name)))
        .collect();
    let chats = summary
        .get("chat_ids")
        .and_then(|ids| ids.as_array())
        .into_iter()
        .flatten()
        .filter_map(serde_json::Value::as_i64)
        .map(|chat_id| (names.get(&chat_id).cloned().unwrap_or_else(|| format!("Chat {chat_id}")), format!("/chats/{chat_id}?")))
        .collect();
    let warnings = summary
        .get("warnings")
        .and_then(|warnings| warnings.as_array())
        .into_iter()
        .flatten()
        .map(|warning| WarningRow {
            kind: warning.get("kind").and_then(|kind| kind.as_str()).unwrap_or_default().replace('_', " "),
            count: warning.get("count").and_then(serde_json::Value::as_u64).unwrap_or(0),
        })
        .collect();
    render(&ResultPage {
        chrome: Chrome::of(&signed, "Import finished", "import"),
        import_id,
        chats,
        messages: number("messages"),
        service_messages: number("service_messages"),
        attachments: number("attachments"),
        size: crate::render::size_text(number("bytes_read")),
        seconds: format!("{:.1}", summary.get("seconds").and_then(serde_json::Value::as_f64).unwrap_or(0.0)),
        warnings,
    })
}

#[cfg(test)]
mod tests {
    use super::relative_path;

    #[test]
    fn the_picked_folder_is_cut_from_every_path() {
        let mut root = None;
        assert_eq!(relative_path("ChatExport_2024/result.json", &mut root), "result.json");
        assert_eq!(relative_path("ChatExport_2024/photos/a.jpg", &mut root), "photos/a.jpg");
        let mut zip_root = None;
        assert_eq!(relative_path("export.zip", &mut zip_root), "export.zip");
    }
}
