//! The ingest service's one error type and the gRPC code of each variant (the mapping itself is
//! `chatvault_common::status`, shared by every service).

use chatvault_common::status::ServiceError;
use tonic::Code;

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

impl ServiceError for Error {
    fn code(&self) -> Code {
        match self {
            Error::InvalidArgument(_) => Code::InvalidArgument,
            Error::NotFound(_) => Code::NotFound,
            Error::AlreadyExists(_) => Code::AlreadyExists,
            Error::DataLoss(_) => Code::DataLoss,
            Error::Unavailable(_) => Code::Unavailable,
            Error::ResourceExhausted(_) => Code::ResourceExhausted,
            Error::Cancelled => Code::Cancelled,
            Error::Kafka(_) => Code::Unavailable,
            Error::Common(inner) => inner.code(),
            Error::Io(_) | Error::Transport(_) | Error::Internal(_) => Code::Internal,
        }
    }

    fn client_message(&self) -> Option<String> {
        match self {
            // Written for the caller where raised: which dependency, which hash.
            Error::Unavailable(message) | Error::DataLoss(message) => Some(message.clone()),
            Error::Cancelled => Some("the import was cancelled; nothing was published".to_owned()),
            Error::Kafka(_) => Some("the event log (Kafka) is not reachable; nothing was published, try again later".to_owned()),
            other => chatvault_common::status::default_client_message(other),
        }
    }
}

impl From<Error> for tonic::Status {
    fn from(error: Error) -> Self {
        chatvault_common::status::into_status(crate::SERVICE_NAME, error)
    }
}
