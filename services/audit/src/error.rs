//! The audit service's one error type and its mapping to gRPC status codes.

/// What can go wrong in audit, named after what the caller can do about it.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("{0}")]
    InvalidArgument(String),
    #[error("{0}")]
    PermissionDenied(String),
    #[error(transparent)]
    Common(#[from] chatvault_common::Error),
    #[error("postgres: {0}")]
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

impl From<Error> for tonic::Status {
    fn from(error: Error) -> Self {
        match error {
            Error::InvalidArgument(message) => tonic::Status::invalid_argument(message),
            Error::PermissionDenied(message) => tonic::Status::permission_denied(message),
            Error::Pool(cause) => {
                tracing::error!(error = ?cause, "database unavailable");
                tonic::Status::unavailable("the database is not reachable; try again later")
            }
            other => {
                tracing::error!(error = ?other, "internal error");
                tonic::Status::internal("internal error; see the audit service log")
            }
        }
    }
}
