//! The ingest service's one error type and its mapping to gRPC status codes.

/// What can go wrong in ingest, named after what the caller can do about it.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The request or the export is wrong; the message says what and where.
    #[error("{0}")]
    InvalidArgument(String),
    #[error("{0}")]
    NotFound(String),
    /// The thing to create exists already (a restore of a file that is still stored).
    #[error("{0}")]
    AlreadyExists(String),
    /// The content is not what the caller said it is (a restore whose bytes do not
    /// match the backup's hash); nothing was stored.
    #[error("{0}")]
    DataLoss(String),
    /// A dependency (Kafka) is unreachable; retrying later may work.
    #[error("{0}")]
    Unavailable(String),
    /// The content is larger than the configured maximum.
    #[error("{0}")]
    ResourceExhausted(String),
    #[error("the import was cancelled")]
    Cancelled,
    #[error(transparent)]
    Common(#[from] chatvault_common::Error),
    #[error("kafka: {0}")]
    Kafka(#[from] rdkafka::error::KafkaError),
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
            Error::AlreadyExists(message) => tonic::Status::already_exists(message),
            Error::DataLoss(message) => tonic::Status::data_loss(message),
            Error::Unavailable(message) => tonic::Status::unavailable(message),
            Error::ResourceExhausted(message) => tonic::Status::resource_exhausted(message),
            Error::Cancelled => tonic::Status::cancelled("the import was cancelled; nothing was published"),
            Error::Kafka(cause) => {
                tracing::error!(error = ?cause, "kafka failure");
                tonic::Status::unavailable("the event log (Kafka) is not reachable; nothing was published, try again later")
            }
            other => {
                tracing::error!(error = ?other, "internal error");
                tonic::Status::internal("internal error; see the ingest service log")
            }
        }
    }
}
