//! The crate's one error type.

/// Errors raised by the shared plumbing. Services wrap them in their own error enums.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A configuration value is missing or malformed.
    #[error("configuration: {0}")]
    Config(String),
    #[error("kafka: {0}")]
    Kafka(#[from] rdkafka::error::KafkaError),
    #[error("postgres: {0}")]
    Postgres(#[from] tokio_postgres::Error),
    #[error("postgres pool: {0}")]
    Pool(#[from] deadpool_postgres::PoolError),
    #[error("postgres pool setup: {0}")]
    CreatePool(#[from] deadpool_postgres::CreatePoolError),
    #[error("protobuf decode: {0}")]
    Decode(#[from] prost::DecodeError),
    #[error("io: {0}")]
    Io(#[from] std::io::Error),
    /// A consistency token could not be parsed.
    #[error("invalid consistency token: {0}")]
    InvalidToken(String),
    /// Kafka (or another dependency) is unreachable; retrying later may work.
    #[error("{0}")]
    Unavailable(String),
    /// A bounded wait ran out.
    #[error("timed out: {0}")]
    Timeout(String),
    #[error("{0}")]
    Other(String),
}

/// `Result` with this crate's error as the default.
pub type Result<T, E = Error> = std::result::Result<T, E>;
