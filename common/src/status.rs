//! The one mapping from errors to gRPC status, shared by every service.
//!
//! Each service's error enum states only which [`tonic::Code`] each variant has
//! ([`ServiceError::code`]); [`into_status`] turns it into the status the caller gets.
//! Errors the caller can act on (a bad argument, a missing chat, a refused permission) keep
//! their text, which names the caller's own input. Every other error (a database, Kafka,
//! file system or programming fault) is logged with its whole cause chain and an incident
//! id, and the caller gets a short sentence with that id, never SQL, paths or another
//! account's data.

use tonic::Code;

use crate::error::error_chain_text;

/// An error a gRPC handler may return.
pub trait ServiceError: std::error::Error + 'static {
    /// Returns the gRPC code the caller gets.
    fn code(&self) -> Code;

    /// Returns the message for the caller, or `None` when the error's text is internal
    /// (then the caller gets a generic sentence and the log gets the cause chain). The
    /// default: the error's text for codes about the caller's request, `None` otherwise.
    fn client_message(&self) -> Option<String> {
        default_client_message(self)
    }
}

/// Returns whether errors of `code` are about the caller's request, so that their text is
/// meant for the caller.
pub fn code_is_about_the_request(code: Code) -> bool {
    matches!(
        code,
        Code::InvalidArgument
            | Code::NotFound
            | Code::AlreadyExists
            | Code::PermissionDenied
            | Code::Unauthenticated
            | Code::FailedPrecondition
            | Code::ResourceExhausted
            | Code::OutOfRange
            | Code::DeadlineExceeded
            | Code::Aborted
            | Code::Cancelled
    )
}

/// The default of [`ServiceError::client_message`].
pub fn default_client_message<E: ServiceError + ?Sized>(error: &E) -> Option<String> {
    code_is_about_the_request(error.code()).then(|| error.to_string())
}

/// Returns the status for `error` raised in `service`, logging internal causes.
///
/// A PostgreSQL data exception (SQLSTATE class 22: U+0000 in a parameter, a number or time
/// out of range) anywhere in the cause chain is the request's fault, not the service's: it
/// is INVALID_ARGUMENT with a sentence that names no SQL, whatever the service's error says.
pub fn into_status<E: ServiceError>(service: &str, error: E) -> tonic::Status {
    if let Some(sqlstate) = request_data_exception(&error) {
        tracing::debug!(service, sqlstate = %sqlstate, error = %error_chain_text(&error), "request refused by the database");
        return tonic::Status::invalid_argument(
            "a value in the request cannot be used here (for example U+0000 in an id or a name, or a number or time out of range)",
        );
    }
    let code = error.code();
    if let Some(message) = error.client_message() {
        if code == Code::DataLoss || code == Code::Unavailable {
            tracing::warn!(service, code = ?code, error = %error_chain_text(&error), "request failed");
        } else {
            tracing::debug!(service, code = ?code, error = %message, "request refused");
        }
        return tonic::Status::new(code, message);
    }
    let incident = uuid::Uuid::new_v4().simple().to_string()[..12].to_owned();
    tracing::error!(service, code = ?code, incident = %incident, error = %error_chain_text(&error), "request failed");
    let message = match code {
        Code::Unavailable => format!("{service} cannot reach a service it depends on; try again later (incident {incident})"),
        Code::DataLoss => format!("stored data could not be read back intact (incident {incident}); the {service} log has the cause"),
        _ => format!("internal error in {service} (incident {incident}); the {service} log has the cause"),
    };
    tonic::Status::new(code, message)
}

/// Returns the SQLSTATE of a PostgreSQL data exception (class 22) in `error`'s cause chain.
fn request_data_exception(error: &(dyn std::error::Error + 'static)) -> Option<String> {
    let mut current: Option<&(dyn std::error::Error + 'static)> = Some(error);
    while let Some(cause) = current {
        if let Some(postgres) = cause.downcast_ref::<tokio_postgres::Error>() {
            if let Some(code) = postgres.code().filter(|code| code.code().starts_with("22")) {
                return Some(code.code().to_owned());
            }
        }
        current = cause.source();
    }
    None
}

impl ServiceError for crate::Error {
    fn code(&self) -> Code {
        use crate::Error;
        match self {
            Error::Pool(_) | Error::CreatePool(_) | Error::Kafka(_) | Error::Unavailable(_) => Code::Unavailable,
            Error::Postgres(postgres) if postgres_is_unavailable(postgres) => Code::Unavailable,
            Error::Timeout(_) => Code::DeadlineExceeded,
            Error::InvalidToken(_) => Code::InvalidArgument,
            Error::Config(_) | Error::Postgres(_) | Error::Decode(_) | Error::Io(_) | Error::Other(_) => Code::Internal,
        }
    }
}

impl ServiceError for tokio_postgres::Error {
    /// UNAVAILABLE when the database is away ([`postgres_is_unavailable`]), else INTERNAL.
    fn code(&self) -> Code {
        if postgres_is_unavailable(self) {
            Code::Unavailable
        } else {
            Code::Internal
        }
    }
}

impl ServiceError for deadpool_postgres::PoolError {
    /// UNAVAILABLE: the pool could not hand out a working connection.
    fn code(&self) -> Code {
        Code::Unavailable
    }
}

/// Returns whether a PostgreSQL error means the database is unreachable or shutting down
/// (connection lost; SQLSTATE classes 08 "connection exception", 53 "insufficient
/// resources", 57 "operator intervention").
pub fn postgres_is_unavailable(error: &tokio_postgres::Error) -> bool {
    if error.is_closed() {
        return true;
    }
    match error.code() {
        Some(code) => matches!(&code.code()[..2], "08" | "53" | "57"),
        None => error.as_db_error().is_none(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, thiserror::Error)]
    enum ExampleError {
        #[error("chat 42 is not archived")]
        NotFound,
        #[error("io: /var/lib/chatvault/secret/path: permission denied")]
        Io,
        #[error("the bucket did not answer")]
        Unreachable,
    }

    impl ServiceError for ExampleError {
        fn code(&self) -> Code {
            match self {
                ExampleError::NotFound => Code::NotFound,
                ExampleError::Io => Code::Internal,
                ExampleError::Unreachable => Code::Unavailable,
            }
        }
    }

    #[test]
    fn errors_about_the_request_keep_their_text() {
        let status = into_status("storage", ExampleError::NotFound);
        assert_eq!(status.code(), Code::NotFound);
        assert_eq!(status.message(), "chat 42 is not archived");
    }

    #[test]
    fn internal_errors_never_reach_the_caller() {
        for error in [ExampleError::Io, ExampleError::Unreachable] {
            let code = error.code();
            let status = into_status("backup", error);
            assert_eq!(status.code(), code);
            assert!(!status.message().contains("/var/lib"), "{}", status.message());
            assert!(!status.message().contains("bucket"), "{}", status.message());
            assert!(status.message().contains("incident "), "{}", status.message());
        }
    }

    #[test]
    fn common_errors_have_the_code_a_caller_can_act_on() {
        assert_eq!(crate::Error::Timeout("x".into()).code(), Code::DeadlineExceeded);
        assert_eq!(crate::Error::InvalidToken("x".into()).code(), Code::InvalidArgument);
        assert_eq!(crate::Error::Unavailable("x".into()).code(), Code::Unavailable);
        assert_eq!(crate::Error::Other("x".into()).code(), Code::Internal);
    }
}
