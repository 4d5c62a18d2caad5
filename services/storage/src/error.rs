//! The storage service's one error type and its mapping to gRPC status codes.

/// What can go wrong in storage, named after what the caller can do about it.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("{0}")]
    InvalidArgument(String),
    #[error("{0}")]
    NotFound(String),
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
            Error::NotFound(message) => tonic::Status::not_found(message),
            Error::DeadlineExceeded(message) => tonic::Status::deadline_exceeded(message),
            Error::Unavailable(message) => tonic::Status::unavailable(message),
            Error::DataLoss(message) => {
                tracing::error!(%message, "data loss");
                tonic::Status::data_loss(message)
            }
            Error::Common(chatvault_common::Error::InvalidToken(message)) => {
                tonic::Status::invalid_argument(format!("invalid consistency token: {message}"))
            }
            Error::Pool(cause) => {
                tracing::error!(error = ?cause, "database unavailable");
                tonic::Status::unavailable("the database is not reachable; try again later")
            }
            other => {
                tracing::error!(error = ?other, "internal error");
                tonic::Status::internal("internal error; see the storage service log")
            }
        }
    }
}
