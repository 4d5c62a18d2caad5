//! REST upload: `PUT /api/file` with a multipart form whose field `file` holds the file;
//! answers `{"id": "..."}`. The owner comes from the `x-chatvault-user` header.

use axum::extract::multipart::MultipartRejection;
use axum::extract::{DefaultBodyLimit, Multipart, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::put;
use axum::{Json, Router};
use serde_json::json;

use super::{FileUploader, UploadRequest};
use crate::Error;

/// The name of the multipart form field holding the file.
const FILE_FIELD: &str = "file";

/// Returns the upload routes.
pub fn upload_routes(uploader: FileUploader) -> Router {
    Router::new()
        .route("/api/file", put(put_file))
        // The uploader enforces its own maximum while streaming.
        .layer(DefaultBodyLimit::disable())
        .with_state(uploader)
}

async fn put_file(State(uploader): State<FileUploader>, headers: HeaderMap, multipart: Result<Multipart, MultipartRejection>) -> Response {
    let owner = chatvault_common::caller::caller_of_headers(&headers);
    let Ok(mut multipart) = multipart else {
        return error_response(&Error::InvalidArgument(format!("the body must be multipart/form-data with the file in the field `{FILE_FIELD}`")));
    };
    loop {
        let field = match multipart.next_field().await {
            Ok(Some(field)) => field,
            Ok(None) => return error_response(&Error::InvalidArgument(format!("the form has no field `{FILE_FIELD}`; nothing was stored"))),
            Err(error) => return error_response(&Error::InvalidArgument(format!("the multipart body is malformed: {error}"))),
        };
        if field.name() != Some(FILE_FIELD) {
            continue;
        }
        let request = UploadRequest {
            owner,
            name: field.file_name().unwrap_or(FILE_FIELD).to_owned(),
            content_type: field.content_type().unwrap_or_default().to_owned(),
            folder_date: None,
        };
        let body = futures::stream::unfold(field, |mut field| async move {
            match field.chunk().await {
                Ok(Some(chunk)) => Some((Ok(chunk), field)),
                Ok(None) => None,
                Err(error) => Some((Err(Error::InvalidArgument(format!("the upload broke off: {error}"))), field)),
            }
        });
        return match uploader.upload(request, Box::pin(body)).await {
            Ok(stored) => (
                StatusCode::CREATED,
                Json(json!({
                    "id": stored.file_id,
                    "size": stored.size,
                    "sha256": stored.sha256,
                    "upload_date": stored.upload_date,
                    "fault_tolerance": stored.fault_tolerance,
                    "consistency_token": stored.positions.to_token(),
                })),
            )
                .into_response(),
            Err(error) => error_response(&error),
        };
    }
}

fn error_response(error: &Error) -> Response {
    let status = match error {
        Error::InvalidArgument(_) => StatusCode::BAD_REQUEST,
        Error::ResourceExhausted(_) => StatusCode::PAYLOAD_TOO_LARGE,
        Error::Unavailable(_) | Error::Kafka(_) => StatusCode::SERVICE_UNAVAILABLE,
        _ => StatusCode::INTERNAL_SERVER_ERROR,
    };
    if status == StatusCode::INTERNAL_SERVER_ERROR {
        tracing::error!(error = ?error, "upload failed");
    }
    (status, Json(json!({ "error": error.to_string() }))).into_response()
}
