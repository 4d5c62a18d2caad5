//! The gRPC code of every error the CLI reports, so scripts using `--json` can branch on
//! one stable string (`"code": "UNAVAILABLE"`) whether a service or the CLI raised it.
//!
//! A service's `tonic::Status` carries its own code. Errors raised in the CLI carry one as
//! a [`CodedError`] (a bad argument, a topic that does not exist), or take it from their
//! cause: a local file that cannot be read (NOT_FOUND, PERMISSION_DENIED), a service or
//! Kafka that cannot be reached (UNAVAILABLE). Anything else is UNKNOWN.

use rdkafka::error::KafkaError;
use rdkafka::types::RDKafkaErrorCode;
use tonic::Code;

/// An error raised in the CLI that states its own code.
#[derive(Debug, thiserror::Error)]
#[error("{message}")]
pub(crate) struct CodedError {
    code: Code,
    message: String,
}

/// Returns an error with `code` and `message`.
pub(crate) fn coded_error(code: Code, message: impl Into<String>) -> anyhow::Error {
    anyhow::Error::new(CodedError { code, message: message.into() })
}

/// Returns an INVALID_ARGUMENT error: the command line asks for something impossible.
pub(crate) fn invalid_argument(message: impl Into<String>) -> anyhow::Error {
    coded_error(Code::InvalidArgument, message)
}

/// Returns a NOT_FOUND error: a named thing (topic, record) does not exist.
pub(crate) fn not_found(message: impl Into<String>) -> anyhow::Error {
    coded_error(Code::NotFound, message)
}

/// Returns the code of `error`: that of the outermost cause that has one, else UNKNOWN.
pub(crate) fn code_of(error: &anyhow::Error) -> Code {
    error.chain().find_map(code_of_cause).unwrap_or(Code::Unknown)
}

fn code_of_cause(cause: &(dyn std::error::Error + 'static)) -> Option<Code> {
    if let Some(coded) = cause.downcast_ref::<CodedError>() {
        return Some(coded.code);
    }
    if let Some(status) = cause.downcast_ref::<tonic::Status>() {
        return Some(status.code());
    }
    // Channel::connect's error: the address does not answer (or is not a gRPC server).
    if cause.is::<tonic::transport::Error>() {
        return Some(Code::Unavailable);
    }
    // A setting of the platform's shared configuration (like a malformed broker list).
    if let Some(chatvault_common::Error::Config(_)) = cause.downcast_ref::<chatvault_common::Error>() {
        return Some(Code::InvalidArgument);
    }
    if let Some(kafka) = cause.downcast_ref::<KafkaError>() {
        return Some(code_of_kafka_error(kafka));
    }
    if let Some(io) = cause.downcast_ref::<std::io::Error>() {
        return code_of_io_error(io);
    }
    None
}

fn code_of_kafka_error(error: &KafkaError) -> Code {
    if let KafkaError::ClientConfig(..) | KafkaError::ClientCreation(_) = error {
        return Code::InvalidArgument;
    }
    match error.rdkafka_error_code() {
        Some(RDKafkaErrorCode::UnknownTopicOrPartition | RDKafkaErrorCode::UnknownTopic | RDKafkaErrorCode::UnknownPartition) => Code::NotFound,
        Some(
            RDKafkaErrorCode::TopicAuthorizationFailed
            | RDKafkaErrorCode::GroupAuthorizationFailed
            | RDKafkaErrorCode::ClusterAuthorizationFailed
            | RDKafkaErrorCode::SaslAuthenticationFailed
            | RDKafkaErrorCode::Authentication,
        ) => Code::PermissionDenied,
        Some(RDKafkaErrorCode::InvalidArgument) => Code::InvalidArgument,
        Some(
            RDKafkaErrorCode::BrokerTransportFailure
            | RDKafkaErrorCode::AllBrokersDown
            | RDKafkaErrorCode::Resolve
            | RDKafkaErrorCode::OperationTimedOut
            | RDKafkaErrorCode::RequestTimedOut
            | RDKafkaErrorCode::MessageTimedOut
            | RDKafkaErrorCode::NetworkException
            | RDKafkaErrorCode::BrokerNotAvailable
            | RDKafkaErrorCode::LeaderNotAvailable
            | RDKafkaErrorCode::NotLeaderForPartition,
        ) => Code::Unavailable,
        _ => Code::Unknown,
    }
}

fn code_of_io_error(error: &std::io::Error) -> Option<Code> {
    use std::io::ErrorKind;
    match error.kind() {
        ErrorKind::NotFound => Some(Code::NotFound),
        ErrorKind::PermissionDenied => Some(Code::PermissionDenied),
        ErrorKind::AlreadyExists => Some(Code::AlreadyExists),
        ErrorKind::InvalidInput | ErrorKind::InvalidData => Some(Code::InvalidArgument),
        ErrorKind::ConnectionRefused
        | ErrorKind::ConnectionReset
        | ErrorKind::ConnectionAborted
        | ErrorKind::NotConnected
        | ErrorKind::AddrNotAvailable
        | ErrorKind::TimedOut
        | ErrorKind::HostUnreachable
        | ErrorKind::NetworkUnreachable => Some(Code::Unavailable),
        ErrorKind::StorageFull | ErrorKind::QuotaExceeded | ErrorKind::FileTooLarge => Some(Code::ResourceExhausted),
        _ => None,
    }
}

/// Returns the canonical name of `code` (`INVALID_ARGUMENT`), as gRPC documents it and
/// grpcurl prints it.
pub(crate) fn grpc_code_name(code: Code) -> &'static str {
    match code {
        Code::Ok => "OK",
        Code::Cancelled => "CANCELLED",
        Code::Unknown => "UNKNOWN",
        Code::InvalidArgument => "INVALID_ARGUMENT",
        Code::DeadlineExceeded => "DEADLINE_EXCEEDED",
        Code::NotFound => "NOT_FOUND",
        Code::AlreadyExists => "ALREADY_EXISTS",
        Code::PermissionDenied => "PERMISSION_DENIED",
        Code::ResourceExhausted => "RESOURCE_EXHAUSTED",
        Code::FailedPrecondition => "FAILED_PRECONDITION",
        Code::Aborted => "ABORTED",
        Code::OutOfRange => "OUT_OF_RANGE",
        Code::Unimplemented => "UNIMPLEMENTED",
        Code::Internal => "INTERNAL",
        Code::Unavailable => "UNAVAILABLE",
        Code::DataLoss => "DATA_LOSS",
        Code::Unauthenticated => "UNAUTHENTICATED",
    }
}

#[cfg(test)]
mod tests {
    use anyhow::Context;

    use super::*;

    #[test]
    fn a_service_status_keeps_its_code_under_context() {
        let error = anyhow::Error::new(tonic::Status::permission_denied("admins only")).context("registering a node");
        assert_eq!(code_of(&error), Code::PermissionDenied);
    }

    #[test]
    fn codes_raised_in_the_cli_win_over_their_causes() {
        let error = invalid_argument("give either a file id or --date YYYY-MM-DD").context("files get");
        assert_eq!(code_of(&error), Code::InvalidArgument);
        assert_eq!(code_of(&not_found("topic chat.events.dlq does not exist")), Code::NotFound);
    }

    #[test]
    fn unreadable_local_files_are_not_found_or_permission_denied() {
        let missing = std::fs::metadata("/nonexistent/chatvault/export").context("cannot read /nonexistent/chatvault/export").expect_err("missing");
        assert_eq!(code_of(&missing), Code::NotFound);
        let denied = anyhow::Error::new(std::io::Error::from(std::io::ErrorKind::PermissionDenied)).context("opening report.pdf");
        assert_eq!(code_of(&denied), Code::PermissionDenied);
    }

    #[test]
    fn unreachable_kafka_is_unavailable_and_a_missing_topic_not_found() {
        let down = anyhow::Error::new(KafkaError::MetadataFetch(RDKafkaErrorCode::OperationTimedOut)).context("cannot reach Kafka at 127.0.0.1:1");
        assert_eq!(code_of(&down), Code::Unavailable);
        let missing = anyhow::Error::new(KafkaError::MetadataFetch(RDKafkaErrorCode::UnknownTopicOrPartition));
        assert_eq!(code_of(&missing), Code::NotFound);
    }

    #[test]
    fn a_refused_connection_is_unavailable_and_a_bare_message_unknown() {
        let refused = anyhow::Error::new(std::io::Error::from(std::io::ErrorKind::ConnectionRefused)).context("cannot reach http://127.0.0.1:1");
        assert_eq!(code_of(&refused), Code::Unavailable);
        assert_eq!(code_of(&anyhow::anyhow!("the import ended without a summary")), Code::Unknown);
    }

    #[test]
    fn code_names_are_the_grpc_canonical_ones() {
        assert_eq!(grpc_code_name(Code::InvalidArgument), "INVALID_ARGUMENT");
        assert_eq!(grpc_code_name(Code::Unavailable), "UNAVAILABLE");
        assert_eq!(grpc_code_name(Code::NotFound), "NOT_FOUND");
        assert_eq!(grpc_code_name(Code::Unauthenticated), "UNAUTHENTICATED");
    }
}
