//! Plumbing shared by every chatvault service: configuration, telemetry, the Kafka
//! producer and consumer with the event envelope, the PostgreSQL pool and migrations, the
//! projection runner, consistency tokens, and the gRPC/HTTP server scaffolding.

pub mod auth;
pub mod caller;
pub mod chat_access;
pub mod config;
pub mod consistency;
pub mod db;
pub mod envelope;
pub mod error;
pub mod grpc;
pub mod host;
pub mod http;
pub mod kafka;
pub mod log_shipping;
pub mod projection;
pub mod revocation;
pub mod shutdown;
pub mod snapshot;
pub mod staged;
pub mod status;
pub mod telemetry;
pub mod text;
pub mod topics;

#[cfg(feature = "test-support")]
pub mod test_support;

pub use error::{Error, Result};
