//! The backup service's one error type and its mapping to gRPC status codes.

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

impl Error {
    /// Wraps the status another service answered with.
    pub fn remote(service: &'static str) -> impl FnOnce(tonic::Status) -> Self {
        move |status| Self::Remote { service, status }
    }
}

impl From<Error> for tonic::Status {
    fn from(error: Error) -> Self {
        match error {
            Error::InvalidArgument(message) => tonic::Status::invalid_argument(message),
            Error::NotFound(message) => tonic::Status::not_found(message),
            Error::PermissionDenied(message) => tonic::Status::permission_denied(message),
            Error::AlreadyExists(message) => tonic::Status::already_exists(message),
            damaged @ Error::Damaged(_) => tonic::Status::failed_precondition(damaged.to_string()),
            Error::Unavailable(message) => tonic::Status::unavailable(message),
            Error::Remote { service, status } => {
                tracing::warn!(service, code = ?status.code(), message = status.message(), "a call to another service failed");
                tonic::Status::new(status.code(), format!("{service}: {}", status.message()))
            }
            Error::Common(chatvault_common::Error::Unavailable(message)) => tonic::Status::unavailable(message),
            Error::Pool(cause) => {
                tracing::error!(error = ?cause, "database unavailable");
                tonic::Status::unavailable("the database is not reachable; try again later")
            }
            Error::Kafka(cause) => {
                tracing::error!(error = ?cause, "kafka failed");
                tonic::Status::unavailable(format!("kafka: {cause}"))
            }
            other => {
                tracing::error!(error = ?other, "internal error");
                tonic::Status::internal(format!("internal error: {other}"))
            }
        }
    }
}
