//! The storage node's one error type and its mapping to gRPC status codes.

/// What can go wrong on a storage node, named after what the caller can do about it.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("{0}")]
    InvalidArgument(String),
    #[error("{0}")]
    NotFound(String),
    /// Stored bytes do not match their hash: the part is corrupt.
    #[error("{0}")]
    DataLoss(String),
    /// The disk is full.
    #[error("{0}")]
    ResourceExhausted(String),
    #[error(transparent)]
    Common(#[from] chatvault_common::Error),
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
            Error::DataLoss(message) => {
                tracing::warn!(%message, "corrupt part");
                tonic::Status::data_loss(message)
            }
            Error::ResourceExhausted(message) => tonic::Status::resource_exhausted(message),
            Error::Io(cause) if cause.raw_os_error() == Some(28) => {
                tracing::error!(error = ?cause, "disk full");
                tonic::Status::resource_exhausted("the storage node's disk is full")
            }
            other => {
                tracing::error!(error = ?other, "internal error");
                tonic::Status::internal("internal error; see the storage node log")
            }
        }
    }
}
