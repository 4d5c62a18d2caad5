//! The backup service's one error type and the gRPC code of each variant (the mapping itself is
//! `chatvault_common::status`, shared by every service).

use chatvault_common::status::ServiceError;
use tonic::Code;

/// What can go wrong in backup, named after what the caller can do about it.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("{0}")]
    InvalidArgument(String),
    #[error("{0}")]
    NotFound(String),
    #[error("{0}")]
    PermissionDenied(String),
    #[error("{0}")]
    AlreadyExists(String),
    /// A backup's files do not match its manifest: nothing is restored from it.
    #[error("the backup is damaged: {0}")]
    Damaged(String),
    /// A service the backup needs (storage, users, ingest, Kafka) did not answer.
    #[error("{0}")]
    Unavailable(String),
    /// Another service answered a call with an error.
    #[error("{service}: {status}")]
    Remote { service: &'static str, status: tonic::Status },
    #[error(transparent)]
    Common(#[from] chatvault_common::Error),
    #[error("kafka: {0}")]
    Kafka(#[from] rdkafka::error::KafkaError),
    #[error("postgres: {}", chatvault_common::error::postgres_error_text(.0))]
    Postgres(#[from] tokio_postgres::Error),
    #[error("postgres pool: {0}")]
    Pool(#[from] deadpool_postgres::PoolError),
    #[error("io: {0}")]
    Io(#[from] std::io::Error),
    #[error("grpc transport: {0}")]
    Transport(#[from] tonic::transport::Error),
    #[error("internal: {0}")]
    Internal(String),
}

impl Error {
    /// Wraps the status another service answered with.
    pub fn remote(service: &'static str) -> impl FnOnce(tonic::Status) -> Self {
        move |status| Self::Remote { service, status }
    }
}

impl ServiceError for Error {
    fn code(&self) -> Code {
        match self {
            Error::InvalidArgument(_) => Code::InvalidArgument,
            Error::NotFound(_) => Code::NotFound,
            Error::PermissionDenied(_) => Code::PermissionDenied,
            Error::AlreadyExists(_) => Code::AlreadyExists,
            Error::Damaged(_) => Code::FailedPrecondition,
            Error::Unavailable(_) => Code::Unavailable,
            Error::Remote { status, .. } => status.code(),
            Error::Kafka(_) => Code::Unavailable,
            Error::Common(inner) => inner.code(),
            Error::Pool(pool) => pool.code(),
            Error::Postgres(postgres) => ServiceError::code(postgres),
            Error::Io(_) | Error::Transport(_) | Error::Internal(_) => Code::Internal,
        }
    }

    fn client_message(&self) -> Option<String> {
        match self {
            // Written for the caller where raised (which dependency did not answer).
            Error::Unavailable(message) => Some(message.clone()),
            // The other service already chose what its callers may read.
            Error::Remote { service, status } => Some(format!("{service}: {}", status.message())),
            other => chatvault_common::status::default_client_message(other),
        }
    }
}

impl From<Error> for tonic::Status {
    fn from(error: Error) -> Self {
        chatvault_common::status::into_status(crate::SERVICE_NAME, error)
    }
}
