//! The bot's one error type and the gRPC code of each variant (the mapping itself is
//! `chatvault_common::status`, shared by every service).

use chatvault_common::status::ServiceError;
use tonic::Code;

/// What can go wrong in the bot and its workers.
#[derive(Debug, thiserror::Error)]
pub enum BotError {
    #[error("configuration: {0}")]
    Config(String),
    #[error("{0}")]
    InvalidArgument(String),
    #[error("{0}")]
    NotFound(String),
    #[error("{0}")]
    FailedPrecondition(String),
    #[error(transparent)]
    Common(#[from] chatvault_common::Error),
    #[error("postgres: {}", chatvault_common::error::postgres_error_text(.0))]
    Postgres(#[from] tokio_postgres::Error),
    #[error("postgres pool: {0}")]
    Pool(#[from] deadpool_postgres::PoolError),
    #[error("kafka: {0}")]
    Kafka(#[from] rdkafka::error::KafkaError),
    #[error("io: {0}")]
    Io(#[from] std::io::Error),
    /// A call to another chatvault service failed.
    #[error("{}: {}", .0.code(), .0.message())]
    Status(#[from] tonic::Status),
    #[error("telegram: {0}")]
    Telegram(#[from] teloxide::RequestError),
    #[error("telegram download: {0}")]
    TelegramDownload(#[from] teloxide::DownloadError),
    #[error("internal: {0}")]
    Internal(String),
}

impl ServiceError for BotError {
    fn code(&self) -> Code {
        match self {
            BotError::InvalidArgument(_) => Code::InvalidArgument,
            BotError::NotFound(_) => Code::NotFound,
            BotError::FailedPrecondition(_) => Code::FailedPrecondition,
            BotError::Common(inner) => inner.code(),
            BotError::Pool(pool) => pool.code(),
            BotError::Postgres(postgres) => ServiceError::code(postgres),
            BotError::Status(status) => status.code(),
            BotError::Kafka(_) | BotError::Telegram(_) | BotError::TelegramDownload(_) => Code::Unavailable,
            BotError::Config(_) | BotError::Io(_) | BotError::Internal(_) => Code::Internal,
        }
    }
}

impl From<BotError> for tonic::Status {
    fn from(error: BotError) -> Self {
        chatvault_common::status::into_status(crate::SERVICE_NAME, error)
    }
}
