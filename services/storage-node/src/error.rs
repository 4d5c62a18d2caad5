//! The storage node's one error type and the gRPC code of each variant (the mapping itself is
//! `chatvault_common::status`, shared by every service).

use chatvault_common::status::ServiceError;
use tonic::Code;

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

impl ServiceError for Error {
    fn code(&self) -> Code {
        match self {
            Error::InvalidArgument(_) => Code::InvalidArgument,
            Error::NotFound(_) => Code::NotFound,
            Error::DataLoss(_) => Code::DataLoss,
            Error::ResourceExhausted(_) => Code::ResourceExhausted,
            Error::Io(cause) if cause.raw_os_error() == Some(28) => Code::ResourceExhausted,
            Error::Common(inner) => inner.code(),
            Error::Io(_) | Error::Transport(_) | Error::Internal(_) => Code::Internal,
        }
    }

    fn client_message(&self) -> Option<String> {
        match self {
            // ENOSPC: the caller (a service) places the part on another node.
            Error::Io(cause) if cause.raw_os_error() == Some(28) => Some("the storage node's disk is full".to_owned()),
            // Names the part and the block that failed its hash: meant for the calling service.
            Error::DataLoss(message) => Some(message.clone()),
            other => chatvault_common::status::default_client_message(other),
        }
    }
}

impl From<Error> for tonic::Status {
    fn from(error: Error) -> Self {
        chatvault_common::status::into_status(crate::SERVICE_NAME, error)
    }
}
