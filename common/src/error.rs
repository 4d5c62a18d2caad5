//! The crate's one error type.

/// Errors raised by the shared plumbing. Services wrap them in their own error enums.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A configuration value is missing or malformed.
    #[error("configuration: {0}")]
    Config(String),
    #[error("kafka: {0}")]
    Kafka(#[from] rdkafka::error::KafkaError),
    #[error("postgres: {}", postgres_error_text(.0))]
    Postgres(#[from] tokio_postgres::Error),
    #[error("postgres pool: {}", pool_error_text(.0))]
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

impl Error {
    /// Returns whether the error lies in the data being written rather than in the
    /// database, the connection or the service: PostgreSQL classes 22 (data exception), 23
    /// (integrity constraint violation) and 54 (program limit exceeded, such as an index row
    /// too large), a protobuf that does not decode, or an error a projection raises about a
    /// record ([`Error::Other`]). Retrying such an error cannot cure it; every other error
    /// (a lost connection, a serialization failure, a shutdown, an undefined table) may pass.
    /// SQLSTATE classes: PostgreSQL manual, appendix A "PostgreSQL Error Codes".
    pub fn lies_in_a_record(&self) -> bool {
        match self {
            Error::Postgres(error) => match error.code() {
                Some(code) => matches!(&code.code()[..2], "22" | "23" | "54"),
                None => false,
            },
            Error::Decode(_) | Error::Other(_) => true,
            _ => false,
        }
    }
}

/// An error as a person and a dead-letter header read it: PostgreSQL's SQLSTATE, message
/// and detail when the database raised it, otherwise the error's text with its causes.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FailureReport {
    /// Five-character SQLSTATE, as `22P05`.
    pub sqlstate: Option<String>,
    /// One line: the database's message, or the error with its cause chain.
    pub message: String,
    /// PostgreSQL's DETAIL line, when it gave one.
    pub detail: Option<String>,
}

impl FailureReport {
    /// Describes `error`.
    pub fn of(error: &Error) -> Self {
        if let Error::Postgres(postgres) = error {
            if let Some(database) = postgres.as_db_error() {
                return Self {
                    sqlstate: Some(database.code().code().to_owned()),
                    message: database.message().to_owned(),
                    detail: database.detail().map(str::to_owned),
                };
            }
        }
        Self { sqlstate: None, message: error_chain_text(error), detail: None }
    }
}

/// Returns a PostgreSQL error as text a log reader can act on: the server's severity,
/// message, SQLSTATE and detail, or the client-side cause (`db error` alone says nothing).
pub fn postgres_error_text(error: &tokio_postgres::Error) -> String {
    match error.as_db_error() {
        Some(database) => {
            let mut text = format!("{}: {} (SQLSTATE {})", database.severity(), database.message(), database.code().code());
            if let Some(detail) = database.detail() {
                text.push_str("; detail: ");
                text.push_str(detail);
            }
            text
        }
        None => error_chain_text(error),
    }
}

fn pool_error_text(error: &deadpool_postgres::PoolError) -> String {
    match error {
        deadpool_postgres::PoolError::Backend(postgres) => postgres_error_text(postgres),
        other => error_chain_text(other),
    }
}

/// Returns `error` followed by each of its causes, separated by `: `.
pub fn error_chain_text(error: &(dyn std::error::Error + 'static)) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        let cause_text = cause.to_string();
        if !text.ends_with(&cause_text) {
            text.push_str(": ");
            text.push_str(&cause_text);
        }
        source = cause.source();
    }
    text
}
