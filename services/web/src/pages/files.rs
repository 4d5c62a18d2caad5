//! Files: date folders, upload with progress, download, rename, delete, share links, and
//! the public page of a share link.

use askama::Template;
use axum::body::Body;
use axum::extract::{Multipart, Path, Query, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Json, Redirect, Response};
use axum::Form;
use chatvault_proto::ingest::v1::{upload_file_request, UploadFileRequest, UploadMetadata};
use chatvault_proto::storage::v1::{
    download_file_response, CreateShareLinkRequest, DeleteFileRequest, DescribeShareLinkRequest, DownloadFileRequest, DownloadFileResponse, FileInfo,
    ListFileDatesRequest, ListFilesRequest, ListShareLinksRequest, OpenShareLinkRequest, RenameFileRequest, RevokeShareLinkRequest, StatFileRequest,
};
use futures::StreamExt;
use serde::Deserialize;
use tokio_stream::wrappers::ReceiverStream;

use super::auth::local_path;
use super::chats::date_time_text;
use super::layout::{render, Chrome};
use super::{enc, forward_field};
use crate::clients::Caller;
use crate::render::size_text;
use crate::session::{MaybeSigned, Signed};
use crate::thumbnails::MAX_SOURCE_BYTES;
use crate::{AppState, WebError};

/// The CSP of a file's bytes: nothing in it may run or load anything, even if a browser
/// were to render it.
const FILE_CSP: &str = "default-src 'none'; img-src 'self'; media-src 'self'; style-src 'unsafe-inline'; sandbox";
/// Content types shown in the browser (`/files/<id>/view`); everything else downloads.
const INLINE_TYPES: &[&str] = &[
    "image/jpeg",
    "image/png",
    "image/gif",
    "image/webp",
    "audio/ogg",
    "audio/mpeg",
    "audio/mp4",
    "audio/x-m4a",
    "audio/wav",
    "video/mp4",
    "video/webm",
    "video/quicktime",
    "application/pdf",
];
/// Bytes of an upload sent to ingest per message.
const UPLOAD_CHUNK_BYTES: usize = 256 * 1024;

#[derive(Debug)]
pub struct DateRow {
    pub date: String,
    pub href: String,
    pub file_count: u64,
    pub size: String,
    pub selected: bool,
}

#[derive(Debug)]
pub struct FileRow {
    pub file_id: String,
    pub name: String,
    pub size: String,
    pub bytes: u64,
    pub content_type: String,
    pub uploaded: String,
    pub sha256: String,
    pub fault_tolerance: u32,
}

fn file_row(info: &FileInfo) -> FileRow {
    FileRow {
        file_id: info.file_id.clone(),
        name: info.name.clone(),
        size: size_text(info.size),
        bytes: info.size,
        content_type: info.content_type.clone(),
        uploaded: date_time_text(Some(info.uploaded_at_unix_ms.div_euclid(1000))),
        sha256: info.sha256.clone(),
        fault_tolerance: info.fault_tolerance,
    }
}

#[derive(Template)]
#[template(path = "files.html")]
struct FilesPage {
    chrome: Chrome,
    dates: Vec<DateRow>,
    date: String,
    files: Vec<FileRow>,
}

#[derive(Debug, Default, Deserialize)]
pub struct DateQuery {
    #[serde(default)]
    date: String,
}

pub async fn list(State(state): State<AppState>, signed: Signed, Query(query): Query<DateQuery>) -> Result<Response, WebError> {
    let caller = &signed.caller;
    let mut files = state.clients.files();
    let dates = files.list_file_dates(caller.request(ListFileDatesRequest::default())).await?.into_inner().dates;
    let date = if query.date.is_empty() { dates.first().map(|date| date.date.clone()).unwrap_or_default() } else { query.date.clone() };
    let listed = if date.is_empty() {
        Vec::new()
    } else {
        files.list_files(caller.request(ListFilesRequest { date: date.clone(), ..Default::default() })).await?.into_inner().files
    };
    let dates = dates
        .into_iter()
        .map(|row| DateRow {
            href: format!("/files?date={}", row.date),
            selected: row.date == date,
            file_count: row.file_count,
            size: size_text(row.total_bytes),
            date: row.date,
        })
        .collect();
    render(&FilesPage { chrome: Chrome::of(&signed, "Files", "files"), dates, date, files: listed.iter().map(file_row).collect() })
}

/// Streams one multipart field to ingest's UploadFile; returns the stored file.
async fn upload_field(
    state: &AppState,
    caller: &Caller,
    mut field: axum::extract::multipart::Field<'_>,
    name: String,
) -> Result<serde_json::Value, WebError> {
    let content_type = field.content_type().unwrap_or("application/octet-stream").to_owned();
    let (sender, receiver) = tokio::sync::mpsc::channel::<UploadFileRequest>(4);
    let metadata = UploadMetadata { name: name.clone(), content_type, restore: None, folder_date: String::new() };
    sender
        .send(UploadFileRequest { message: Some(upload_file_request::Message::Metadata(metadata)) })
        .await
        .map_err(|_| WebError::Internal("the upload stream closed".to_owned()))?;
    let call = {
        let mut uploads = state.clients.uploads();
        let request = caller.request(ReceiverStream::new(receiver));
        tokio::spawn(async move { uploads.upload_file(request).await })
    };
    if let Err(failure) = forward_field(&mut field, UPLOAD_CHUNK_BYTES, &sender, |piece| UploadFileRequest {
        message: Some(upload_file_request::Message::Chunk(piece)),
    })
    .await
    {
        // Ends the call before its stream ends, so the server discards the partial file.
        call.abort();
        return Err(failure);
    }
    drop(sender);
    let stored = call.await.map_err(|error| WebError::Internal(format!("the upload task failed: {error}")))??.into_inner();
    Ok(
        serde_json::json!({ "file_id": stored.file_id, "name": name, "size": stored.size, "sha256": stored.sha256, "upload_date": stored.upload_date }),
    )
}

/// `POST /files/upload`: every file field of the form is stored. Answers JSON to the page
/// script (`Accept: application/json`), else sends the browser to the day's folder.
pub async fn upload(State(state): State<AppState>, signed: Signed, headers: HeaderMap, multipart: Multipart) -> Response {
    let json = super::import::wants_json(&headers);
    match store_uploads(&state, &signed, multipart).await {
        Ok(stored) if json => Json(serde_json::json!({ "files": stored })).into_response(),
        Ok(stored) => {
            let date = stored.last().and_then(|file| file.get("upload_date")).and_then(|date| date.as_str()).unwrap_or_default();
            Redirect::to(&format!("/files?date={date}")).into_response()
        }
        Err(error) if json => super::import::json_error(error),
        Err(error) => error.into_response(),
    }
}

/// Stores every file field of the form; returns what was stored.
async fn store_uploads(state: &AppState, signed: &Signed, mut multipart: Multipart) -> Result<Vec<serde_json::Value>, WebError> {
    let mut stored = Vec::new();
    while let Some(field) =
        multipart.next_field().await.map_err(|error| WebError::BadRequest(format!("the upload is not a readable form: {error}")))?
    {
        let Some(name) = field.file_name().map(|name| name.rsplit(['/', '\\']).next().unwrap_or(name).to_owned()).filter(|name| !name.is_empty())
        else {
            continue;
        };
        stored.push(upload_field(state, &signed.caller, field, name).await?);
    }
    if stored.is_empty() {
        return Err(WebError::BadRequest("choose at least one file to upload".to_owned()));
    }
    Ok(stored)
}

#[derive(Debug)]
pub struct LinkRow {
    pub link_id: String,
    pub created: String,
    pub expires: String,
    pub has_password: bool,
    pub state: String,
}

#[derive(Template)]
#[template(path = "file.html")]
struct FilePage {
    chrome: Chrome,
    file: FileRow,
    date: String,
    links: Vec<LinkRow>,
    is_picture: bool,
    /// The link just created (shown once), with its expiry.
    new_link: String,
    new_link_expires: String,
}

async fn file_page(state: &AppState, signed: &Signed, file_id: &str, new_link: String, new_link_expires: String) -> Result<Response, WebError> {
    let caller = &signed.caller;
    let mut files = state.clients.files();
    let info = files.stat_file(caller.request(StatFileRequest { file_id: file_id.to_owned(), ..Default::default() })).await?.into_inner();
    let links =
        files.list_share_links(caller.request(ListShareLinksRequest { file_id: file_id.to_owned(), ..Default::default() })).await?.into_inner().links;
    let links = links
        .into_iter()
        .map(|link| LinkRow {
            created: date_time_text(Some(link.created_at_unix_ms.div_euclid(1000))),
            expires: date_time_text(Some(link.expires_at_unix_ms.div_euclid(1000))),
            has_password: link.has_password,
            state: link.state,
            link_id: link.link_id,
        })
        .collect();
    let page = FilePage {
        chrome: Chrome::of(signed, info.name.clone(), "files"),
        is_picture: matches!(info.content_type.as_str(), "image/jpeg" | "image/png" | "image/gif" | "image/webp"),
        date: info.upload_date.clone(),
        file: file_row(&info),
        links,
        new_link,
        new_link_expires,
    };
    render(&page)
}

pub async fn detail(State(state): State<AppState>, signed: Signed, Path(file_id): Path<String>) -> Result<Response, WebError> {
    file_page(&state, &signed, &file_id, String::new(), String::new()).await
}

/// `Content-Disposition` for `name` (RFC 6266 with the RFC 8187 `filename*` form; the plain
/// `filename` keeps ASCII only).
pub fn content_disposition(kind: &str, name: &str) -> String {
    let ascii: String = name.chars().map(|c| if c.is_ascii_graphic() && c != '"' && c != '\\' || c == ' ' { c } else { '_' }).collect();
    let encoded = percent_encoding::utf8_percent_encode(name, percent_encoding::NON_ALPHANUMERIC);
    format!("{kind}; filename=\"{ascii}\"; filename*=UTF-8''{encoded}")
}

/// Turns a DownloadFile-like stream into an HTTP answer: the first message (the info)
/// gives the headers, the chunks the body. `inline` shows safe types in the browser.
async fn file_response(mut stream: tonic::Streaming<DownloadFileResponse>, inline: bool) -> Result<Response, WebError> {
    let info = match stream.message().await? {
        Some(DownloadFileResponse { message: Some(download_file_response::Message::Info(info)) }) => info,
        _ => return Err(WebError::Internal("the download began without the file's details".to_owned())),
    };
    let show = inline && INLINE_TYPES.contains(&info.content_type.as_str());
    let content_type = if show { info.content_type.clone() } else { "application/octet-stream".to_owned() };
    let body = stream.filter_map(|message| async move {
        match message {
            Ok(DownloadFileResponse { message: Some(download_file_response::Message::Chunk(chunk)) }) => Some(Ok(chunk)),
            Ok(_) => None,
            Err(status) => Some(Err(std::io::Error::other(status.message().to_owned()))),
        }
    });
    let mut response = Response::new(Body::from_stream(body));
    let headers = response.headers_mut();
    let value = |text: String| HeaderValue::from_str(&text).unwrap_or(HeaderValue::from_static("application/octet-stream"));
    headers.insert(header::CONTENT_TYPE, value(content_type));
    headers.insert(header::CONTENT_LENGTH, HeaderValue::from(info.size));
    headers.insert(header::CONTENT_DISPOSITION, value(content_disposition(if show { "inline" } else { "attachment" }, &info.name)));
    headers.insert(header::CONTENT_SECURITY_POLICY, HeaderValue::from_static(FILE_CSP));
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("private, no-store"));
    if let Ok(etag) = HeaderValue::from_str(&format!("\"{}\"", info.sha256)) {
        headers.insert(header::ETAG, etag);
    }
    Ok(response)
}

async fn download_stream(state: &AppState, caller: &Caller, file_id: &str) -> Result<tonic::Streaming<DownloadFileResponse>, WebError> {
    Ok(state
        .clients
        .files()
        .download_file(caller.request(DownloadFileRequest { file_id: file_id.to_owned(), ..Default::default() }))
        .await?
        .into_inner())
}

pub async fn download(State(state): State<AppState>, signed: Signed, Path(file_id): Path<String>) -> Result<Response, WebError> {
    file_response(download_stream(&state, &signed.caller, &file_id).await?, false).await
}

pub async fn inline(State(state): State<AppState>, signed: Signed, Path(file_id): Path<String>) -> Result<Response, WebError> {
    file_response(download_stream(&state, &signed.caller, &file_id).await?, true).await
}

/// `GET /files/<id>/thumbnail`: a JPEG at most 320 px on its longer side.
pub async fn thumbnail(State(state): State<AppState>, signed: Signed, Path(file_id): Path<String>) -> Result<Response, WebError> {
    let caller = &signed.caller;
    let info =
        state.clients.files().stat_file(caller.request(StatFileRequest { file_id: file_id.clone(), ..Default::default() })).await?.into_inner();
    let jpeg = |bytes: Vec<u8>| ([(header::CONTENT_TYPE, "image/jpeg"), (header::CACHE_CONTROL, "private, max-age=86400")], bytes).into_response();
    if let Some((_, bytes)) = state.thumbnails.cached(&info.sha256).await? {
        return Ok(jpeg(bytes));
    }
    if info.size > MAX_SOURCE_BYTES {
        return Err(WebError::BadRequest(format!("{} is too large for a thumbnail", info.name)));
    }
    let _slot = state.thumbnails.slot().await?;
    // Another request may have made it while this one waited for the slot.
    if let Some((_, bytes)) = state.thumbnails.cached(&info.sha256).await? {
        return Ok(jpeg(bytes));
    }
    let mut stream = download_stream(&state, caller, &file_id).await?;
    let mut source = Vec::with_capacity(usize::try_from(info.size).unwrap_or(0));
    while let Some(message) = stream.message().await? {
        if let Some(download_file_response::Message::Chunk(chunk)) = message.message {
            source.extend_from_slice(&chunk);
        }
    }
    Ok(jpeg(state.thumbnails.make(&info.sha256, source).await?))
}

#[derive(Debug, Deserialize)]
pub struct RenameForm {
    name: String,
}

pub async fn rename(
    State(state): State<AppState>,
    signed: Signed,
    Path(file_id): Path<String>,
    Form(form): Form<RenameForm>,
) -> Result<Response, WebError> {
    let request = RenameFileRequest { file_id: file_id.clone(), name: form.name.trim().to_owned(), ..Default::default() };
    state.clients.files().rename_file(signed.caller.request(request)).await?;
    Ok(Redirect::to(&format!("/files/{}", enc(&file_id))).into_response())
}

pub async fn delete(State(state): State<AppState>, signed: Signed, Path(file_id): Path<String>) -> Result<Response, WebError> {
    let caller = &signed.caller;
    let mut files = state.clients.files();
    let info = files.stat_file(caller.request(StatFileRequest { file_id: file_id.clone(), ..Default::default() })).await?.into_inner();
    let deleted = files.delete_file(caller.request(DeleteFileRequest { file_id, ..Default::default() })).await?.into_inner();
    // Waits until the deletion is applied, so the folder no longer lists the file.
    let _ =
        files.list_files(caller.request(ListFilesRequest { date: info.upload_date.clone(), consistency_token: deleted.consistency_token })).await?;
    Ok(Redirect::to(&format!("/files?date={}", info.upload_date)).into_response())
}

#[derive(Debug, Deserialize)]
pub struct ShareForm {
    /// Days until the link expires (1–366).
    expires_days: u64,
    #[serde(default)]
    password: String,
}

pub async fn create_share(
    State(state): State<AppState>,
    signed: Signed,
    Path(file_id): Path<String>,
    Form(form): Form<ShareForm>,
) -> Result<Response, WebError> {
    if !(1..=366).contains(&form.expires_days) {
        return Err(WebError::BadRequest("a link may last from 1 to 366 days".to_owned()));
    }
    let request = CreateShareLinkRequest {
        file_id: file_id.clone(),
        expires_in_seconds: form.expires_days * 86_400,
        password: form.password,
        ..Default::default()
    };
    let mut files = state.clients.files();
    let created = files.create_share_link(signed.caller.request(request)).await?.into_inner();
    // The list below shows the new link once its event is applied.
    let _ = files
        .list_share_links(signed.caller.request(ListShareLinksRequest { file_id: file_id.clone(), consistency_token: created.consistency_token }))
        .await?;
    let url = format!("{}/s/{}", state.settings.public_url, created.token);
    file_page(&state, &signed, &file_id, url, date_time_text(Some(created.expires_at_unix_ms.div_euclid(1000)))).await
}

#[derive(Debug, Deserialize)]
pub struct RevokeForm {
    #[serde(default)]
    back: String,
}

pub async fn revoke_share(
    State(state): State<AppState>,
    signed: Signed,
    Path(link_id): Path<String>,
    Form(form): Form<RevokeForm>,
) -> Result<Response, WebError> {
    let mut files = state.clients.files();
    let revoked = files.revoke_share_link(signed.caller.request(RevokeShareLinkRequest { link_id, ..Default::default() })).await?.into_inner();
    let _ = files
        .list_share_links(signed.caller.request(ListShareLinksRequest { consistency_token: revoked.consistency_token, ..Default::default() }))
        .await?;
    Ok(Redirect::to(&local_path(&form.back)).into_response())
}

#[derive(Template)]
#[template(path = "share.html")]
struct SharePage {
    chrome: Chrome,
    token: String,
    password_required: bool,
    name: String,
    size: String,
    expires: String,
    error: String,
}

/// The CSRF token of the share page's form: the session's for a signed-in visitor (the
/// check uses it then), else the anonymous cookie's.
fn share_csrf(state: &AppState, headers: &HeaderMap, signed: Option<&Signed>) -> (String, Option<String>) {
    if let Some(signed) = signed {
        return (signed.csrf.clone(), None);
    }
    super::auth::anonymous_token(state, headers)
}

async fn share_page(
    state: &AppState,
    headers: &HeaderMap,
    signed: Option<&Signed>,
    token: &str,
    error: String,
    status: StatusCode,
) -> Result<Response, WebError> {
    let described = state.clients.files().describe_share_link(DescribeShareLinkRequest { token: token.to_owned() }).await?.into_inner();
    let (csrf, cookie) = share_csrf(state, headers, signed);
    let page = SharePage {
        chrome: Chrome::public(if described.name.is_empty() { "Shared file".to_owned() } else { described.name.clone() }, csrf),
        token: token.to_owned(),
        password_required: described.password_required,
        size: if described.password_required { String::new() } else { size_text(described.size) },
        name: described.name,
        expires: date_time_text(Some(described.expires_at_unix_ms.div_euclid(1000))),
        error,
    };
    let mut response = (status, render(&page)?).into_response();
    if let Some(cookie) = cookie.and_then(|cookie| HeaderValue::from_str(&cookie).ok()) {
        response.headers_mut().append(header::SET_COOKIE, cookie);
    }
    Ok(response)
}

/// `GET /s/<token>`: the public page of a share link (no log-in).
pub async fn public_share(
    State(state): State<AppState>,
    MaybeSigned(signed): MaybeSigned,
    headers: HeaderMap,
    Path(token): Path<String>,
) -> Result<Response, WebError> {
    share_page(&state, &headers, signed.as_ref(), &token, String::new(), StatusCode::OK).await
}

#[derive(Debug, Deserialize)]
pub struct SharePasswordForm {
    #[serde(default)]
    password: String,
}

async fn open_share(state: &AppState, headers: &HeaderMap, signed: Option<&Signed>, token: &str, password: String) -> Result<Response, WebError> {
    match state.clients.files().open_share_link(OpenShareLinkRequest { token: token.to_owned(), password }).await {
        Ok(stream) => file_response(stream.into_inner(), false).await,
        Err(status) if matches!(status.code(), tonic::Code::Unauthenticated | tonic::Code::ResourceExhausted) => {
            let code = if status.code() == tonic::Code::Unauthenticated { StatusCode::UNAUTHORIZED } else { StatusCode::TOO_MANY_REQUESTS };
            share_page(state, headers, signed, token, status.message().to_owned(), code).await
        }
        Err(status) => Err(WebError::Status(status)),
    }
}

/// `POST /s/<token>` with the password: the file.
pub async fn public_share_download(
    State(state): State<AppState>,
    MaybeSigned(signed): MaybeSigned,
    headers: HeaderMap,
    Path(token): Path<String>,
    Form(form): Form<SharePasswordForm>,
) -> Result<Response, WebError> {
    open_share(&state, &headers, signed.as_ref(), &token, form.password).await
}

/// `GET /s/<token>/download`: the file of a link without a password.
pub async fn public_share_download_open(
    State(state): State<AppState>,
    MaybeSigned(signed): MaybeSigned,
    headers: HeaderMap,
    Path(token): Path<String>,
) -> Result<Response, WebError> {
    open_share(&state, &headers, signed.as_ref(), &token, String::new()).await
}

#[cfg(test)]
mod tests {
    use super::content_disposition;

    #[test]
    fn file_names_are_quoted_safely_in_content_disposition() {
        assert_eq!(content_disposition("attachment", "a.txt"), "attachment; filename=\"a.txt\"; filename*=UTF-8''a%2Etxt");
        let hostile = content_disposition("attachment", "x\"; y=\r\nz отчёт.pdf");
        assert!(!hostile.contains('\r') && !hostile.contains('\n'));
        assert!(hostile.starts_with("attachment; filename=\"x_; y=__z _____.pdf\""), "{hostile}");
    }
}
