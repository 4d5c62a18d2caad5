//! The storage service's one error type and the gRPC code of each variant (the mapping itself is
//! `chatvault_common::status`, shared by every service).

use chatvault_common::status::ServiceError;
use tonic::Code;

/// What can go wrong in storage, named after what the caller can do about it.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("{0}")]
    InvalidArgument(String),
    #[error("{0}")]
    NotFound(String),
    /// The caller sees what they asked about but may not change it (sharing another
    /// account's chat).
    #[error("{0}")]
    PermissionDenied(String),
    /// A consistency token was not reached in time.
    #[error("{0}")]
    DeadlineExceeded(String),
    /// A storage node or Kafka is unreachable; retrying later may work.
    #[error("{0}")]
    Unavailable(String),
    /// Stored bytes are lost beyond what parity can rebuild, or fail their hash.
    #[error("{0}")]
    DataLoss(String),
    #[error(transparent)]
    Common(#[from] chatvault_common::Error),
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

impl ServiceError for Error {
    fn code(&self) -> Code {
        match self {
            Error::InvalidArgument(_) => Code::InvalidArgument,
            Error::NotFound(_) => Code::NotFound,
            Error::PermissionDenied(_) => Code::PermissionDenied,
            Error::DeadlineExceeded(_) => Code::DeadlineExceeded,
            Error::Unavailable(_) => Code::Unavailable,
            Error::DataLoss(_) => Code::DataLoss,
            Error::Common(inner) => inner.code(),
            Error::Pool(pool) => pool.code(),
            Error::Postgres(postgres) => ServiceError::code(postgres),
            Error::Io(_) | Error::Transport(_) | Error::Internal(_) => Code::Internal,
        }
    }

    fn client_message(&self) -> Option<String> {
        match self {
            // Written for the caller where raised: which file, which node is unreachable.
            Error::Unavailable(message) | Error::DataLoss(message) => Some(message.clone()),
            other => chatvault_common::status::default_client_message(other),
        }
    }
}

impl From<Error> for tonic::Status {
    fn from(error: Error) -> Self {
        chatvault_common::status::into_status(crate::SERVICE_NAME, error)
    }
}
