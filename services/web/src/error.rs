//! How a failed page answers: a status a person understands, never a panic or a stack trace.

use axum::http::StatusCode;
use axum::response::{IntoResponse, Redirect, Response};
use tonic::Code;

use crate::pages::layout::error_page;

/// Errors of the web service.
#[derive(Debug, thiserror::Error)]
pub enum WebError {
    #[error("configuration: {0}")]
    Config(String),
    #[error(transparent)]
    Common(#[from] chatvault_common::Error),
    #[error("postgres: {0}")]
    Postgres(#[from] tokio_postgres::Error),
    #[error("postgres pool: {0}")]
    Pool(#[from] deadpool_postgres::PoolError),
    /// A call to another service failed; its status is shown when it is about the request.
    #[error("{}: {}", .0.code(), .0.message())]
    Status(#[from] tonic::Status),
    /// The request itself is wrong (a bad form field); the text is shown as it is.
    #[error("{0}")]
    BadRequest(String),
    #[error("{0}")]
    NotFound(String),
    /// The form or script request did not carry the session's CSRF token.
    #[error("this form has expired; reload the page and try again")]
    Csrf,
    /// No session (or it ended): pages send the browser to the log-in page.
    #[error("please log in")]
    LoggedOut { next: String },
    #[error("{0}")]
    Internal(String),
}

impl WebError {
    /// The HTTP status and the text a person sees.
    pub fn status_and_message(&self) -> (StatusCode, String) {
        match self {
            WebError::Status(status) => status_of_grpc(status),
            WebError::BadRequest(message) => (StatusCode::BAD_REQUEST, message.clone()),
            WebError::NotFound(message) => (StatusCode::NOT_FOUND, message.clone()),
            WebError::Csrf => (StatusCode::FORBIDDEN, self.to_string()),
            WebError::LoggedOut { .. } => (StatusCode::UNAUTHORIZED, self.to_string()),
            WebError::Postgres(_) | WebError::Pool(_) => {
                (StatusCode::SERVICE_UNAVAILABLE, "the web service's database is not answering; try again in a moment".to_owned())
            }
            WebError::Config(_) | WebError::Common(_) | WebError::Internal(_) => {
                (StatusCode::INTERNAL_SERVER_ERROR, "something went wrong on the server; it has been logged".to_owned())
            }
        }
    }
}

/// Maps another service's status to an HTTP status and a message: the services word their
/// statuses about the request for people, so those are shown; internal ones are not.
fn status_of_grpc(status: &tonic::Status) -> (StatusCode, String) {
    let shown = || status.message().to_owned();
    match status.code() {
        Code::InvalidArgument | Code::OutOfRange => (StatusCode::BAD_REQUEST, shown()),
        Code::FailedPrecondition | Code::AlreadyExists | Code::Aborted => (StatusCode::CONFLICT, shown()),
        Code::NotFound => (StatusCode::NOT_FOUND, shown()),
        Code::PermissionDenied => (StatusCode::FORBIDDEN, shown()),
        Code::Unauthenticated => (StatusCode::UNAUTHORIZED, shown()),
        Code::ResourceExhausted => (StatusCode::TOO_MANY_REQUESTS, shown()),
        Code::DeadlineExceeded => (StatusCode::GATEWAY_TIMEOUT, shown()),
        Code::Unavailable => (StatusCode::SERVICE_UNAVAILABLE, "a chatvault service is not answering right now; try again in a moment".to_owned()),
        _ => (StatusCode::BAD_GATEWAY, "a chatvault service failed to answer; it has been logged".to_owned()),
    }
}

impl IntoResponse for WebError {
    fn into_response(self) -> Response {
        if let WebError::LoggedOut { next } = &self {
            let target = format!("/login?next={}", percent_encoding::utf8_percent_encode(next, percent_encoding::NON_ALPHANUMERIC));
            return Redirect::to(&target).into_response();
        }
        if let WebError::Status(status) = &self {
            if status.code() == Code::Unauthenticated {
                // The services refused the session's token (a password change revoked it):
                // the browser forgets the session and logs in again; the row expires.
                tracing::info!(reason = %status.message(), "a service refused the session's token; back to the log-in page");
                let forget = crate::session::set_cookie(crate::session::SESSION_COOKIE, "", None, false);
                return ([(axum::http::header::SET_COOKIE, forget)], Redirect::to("/login")).into_response();
            }
        }
        let (status, message) = self.status_and_message();
        if status.is_server_error() {
            tracing::error!(error = %self, "page failed");
        } else {
            tracing::debug!(error = %self, "page refused");
        }
        (status, error_page(status, &message)).into_response()
    }
}

#[cfg(test)]
mod tests {
    use axum::http::StatusCode;

    use super::WebError;

    #[test]
    fn statuses_about_the_request_are_shown_and_internal_ones_are_not() {
        let refused = WebError::Status(tonic::Status::not_found("chat 7 does not exist"));
        assert_eq!(refused.status_and_message(), (StatusCode::NOT_FOUND, "chat 7 does not exist".to_owned()));
        let internal = WebError::Status(tonic::Status::internal("relation \"messages\" does not exist at /srv/db"));
        let (status, message) = internal.status_and_message();
        assert_eq!(status, StatusCode::BAD_GATEWAY);
        assert!(!message.contains("relation") && !message.contains("/srv"), "{message}");
    }
}
