//! Typed configuration from `CHATVAULT_…` environment variables.
//!
//! Every value has a default that works with the local stack (`scripts/stack.sh`).
//! Service-specific values are read as `CHATVAULT_<SERVICE>_<KEY>`; shared ones
//! (Kafka brokers, log format) as `CHATVAULT_<KEY>`. Resolution takes the environment as a
//! map so tests never touch the process environment.

use std::collections::HashMap;
use std::fmt;
use std::net::SocketAddr;
use std::time::Duration;

use crate::{Error, Result};

/// A secret string that never shows in `Debug` output or logs.
#[derive(Clone)]
pub struct Secret(String);

impl Secret {
    pub fn new(value: impl Into<String>) -> Self {
        Self(value.into())
    }
    /// Returns the secret value; call only where it is used.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        formatter.write_str("Secret(***)")
    }
}

/// How log lines are written.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LogFormat {
    Text,
    Json,
}

/// Settings every service shares.
#[derive(Clone, Debug)]
pub struct ServiceConfig {
    /// Lowercase service name: `ingest`, `storage`, ...
    pub service_name: String,
    /// Address of the gRPC server (`CHATVAULT_<SERVICE>_GRPC_ADDR`).
    pub grpc_addr: SocketAddr,
    /// Address of the HTTP server with `/metrics`, `/healthz` and REST routes
    /// (`CHATVAULT_<SERVICE>_HTTP_ADDR`).
    pub http_addr: SocketAddr,
    /// PostgreSQL URL of the service's own database (`CHATVAULT_<SERVICE>_DATABASE_URL`).
    pub database_url: Secret,
    /// Database pool size (`CHATVAULT_<SERVICE>_DATABASE_POOL_SIZE`).
    pub database_pool_size: usize,
    pub kafka: KafkaConfig,
    pub telemetry: TelemetryConfig,
    /// How long a query waits for a consistency token before giving up
    /// (`CHATVAULT_CONSISTENCY_WAIT_MS`).
    pub consistency_wait: Duration,
    /// At most this many records per projection transaction
    /// (`CHATVAULT_<SERVICE>_PROJECTION_BATCH_RECORDS`, default 20000).
    pub projection_batch_records: usize,
    /// Token verification (`CHATVAULT_AUTH`, `CHATVAULT_JWT_SECRET`, `CHATVAULT_JWT_ACCESS_TTL_SECONDS`).
    pub auth: crate::auth::AuthConfig,
    /// Every `CHATVAULT_<SERVICE>_<KEY>` variable by `<KEY>`, for settings only one service
    /// has (read them with [`ServiceConfig::setting`]).
    pub service_settings: HashMap<String, String>,
}

/// Kafka connection settings.
#[derive(Clone, Debug)]
pub struct KafkaConfig {
    /// `CHATVAULT_KAFKA_BROKERS`, default `127.0.0.1:9092`.
    pub brokers: String,
    /// Prefix for every topic name (`CHATVAULT_TOPIC_PREFIX`, default empty); tests use it
    /// to give each run its own topics.
    pub topic_prefix: String,
    /// Partitions of topics created at start-up (`CHATVAULT_TOPIC_PARTITIONS`, default 3).
    pub topic_partitions: i32,
    /// Replication factor of topics created at start-up (`CHATVAULT_TOPIC_REPLICATION`, default 1).
    pub topic_replication: i32,
}

/// Logging and tracing settings.
#[derive(Clone, Debug)]
pub struct TelemetryConfig {
    /// `CHATVAULT_LOG_FORMAT`: `text` (default) or `json`.
    pub log_format: LogFormat,
    /// `CHATVAULT_LOG` (falls back to `RUST_LOG`), an `EnvFilter` directive; default `info`.
    pub log_filter: String,
    /// `OTEL_EXPORTER_OTLP_ENDPOINT`; spans are exported over OTLP/gRPC when set.
    pub otlp_endpoint: Option<String>,
    /// Where INFO+ log lines are shipped (`audit.logs`); `CHATVAULT_LOG_SHIPPING=off`
    /// (or `on`, the default) switches it.
    pub log_shipping: Option<crate::log_shipping::LogShippingConfig>,
}

/// Default ports of one service on the local stack.
#[derive(Clone, Copy, Debug)]
pub struct DefaultPorts {
    pub grpc: u16,
    pub http: u16,
}

impl ServiceConfig {
    /// Reads the configuration of `service_name` from the process environment.
    pub fn from_process_env(service_name: &str, ports: DefaultPorts) -> Result<Self> {
        let environment: HashMap<String, String> = std::env::vars().collect();
        Self::from_env_map(service_name, ports, &environment)
    }

    /// Reads the configuration of `service_name` from `environment`.
    pub fn from_env_map(
        service_name: &str,
        ports: DefaultPorts,
        environment: &HashMap<String, String>,
    ) -> Result<Self> {
        let reader = EnvReader { environment, service_prefix: format!("CHATVAULT_{}_", service_name.to_uppercase().replace('-', "_")) };
        let default_database_url = format!("postgres://{service_name}:{service_name}@127.0.0.1:5432/{service_name}");
        Ok(Self {
            service_name: service_name.to_owned(),
            grpc_addr: reader.parse_service("GRPC_ADDR", SocketAddr::from(([127, 0, 0, 1], ports.grpc)))?,
            http_addr: reader.parse_service("HTTP_ADDR", SocketAddr::from(([127, 0, 0, 1], ports.http)))?,
            database_url: Secret::new(reader.service("DATABASE_URL").unwrap_or(default_database_url)),
            database_pool_size: reader.parse_service("DATABASE_POOL_SIZE", 8usize)?,
            kafka: KafkaConfig::from_reader(&reader)?,
            telemetry: TelemetryConfig::from_reader(&reader)?,
            consistency_wait: Duration::from_millis(reader.parse_shared("CONSISTENCY_WAIT_MS", 30_000u64)?),
            projection_batch_records: reader.parse_service("PROJECTION_BATCH_RECORDS", 20_000usize)?,
            auth: crate::auth::AuthConfig::from_env_map(environment)?,
            service_settings: environment
                .iter()
                .filter_map(|(name, value)| name.strip_prefix(&reader.service_prefix).map(|key| (key.to_owned(), value.clone())))
                .collect(),
        })
    }

    /// Parses the service-specific setting `CHATVAULT_<SERVICE>_<key>`, or returns `default`.
    pub fn setting<T: std::str::FromStr>(&self, key: &str, default: T) -> Result<T>
    where
        T::Err: fmt::Display,
    {
        let name = format!("CHATVAULT_{}_{key}", self.service_name.to_uppercase().replace('-', "_"));
        parse_value(&name, self.service_settings.get(key).filter(|value| !value.is_empty()).cloned(), default)
    }
}

impl KafkaConfig {
    /// Reads the Kafka settings from `environment`.
    pub fn from_env_map(environment: &HashMap<String, String>) -> Result<Self> {
        let reader = EnvReader { environment, service_prefix: String::new() };
        Self::from_reader(&reader)
    }

    fn from_reader(reader: &EnvReader<'_>) -> Result<Self> {
        Ok(Self {
            brokers: reader.shared("KAFKA_BROKERS").unwrap_or_else(|| "127.0.0.1:9092".to_owned()),
            topic_prefix: reader.shared("TOPIC_PREFIX").unwrap_or_default(),
            topic_partitions: reader.parse_shared("TOPIC_PARTITIONS", 3i32)?,
            topic_replication: reader.parse_shared("TOPIC_REPLICATION", 1i32)?,
        })
    }

    /// Returns the full name of a topic, with the configured prefix.
    pub fn topic(&self, base_name: &str) -> String {
        format!("{}{}", self.topic_prefix, base_name)
    }
}

impl TelemetryConfig {
    fn from_reader(reader: &EnvReader<'_>) -> Result<Self> {
        let log_format = match reader.shared("LOG_FORMAT").as_deref() {
            None | Some("text") => LogFormat::Text,
            Some("json") => LogFormat::Json,
            Some(other) => return Err(Error::Config(format!("CHATVAULT_LOG_FORMAT must be text or json, not {other:?}"))),
        };
        let log_filter = reader
            .shared("LOG")
            .or_else(|| reader.environment.get("RUST_LOG").cloned())
            .unwrap_or_else(|| "info".to_owned());
        let otlp_endpoint = reader.environment.get("OTEL_EXPORTER_OTLP_ENDPOINT").filter(|value| !value.is_empty()).cloned();
        let log_shipping = match reader.shared("LOG_SHIPPING").as_deref() {
            None | Some("on") | Some("true") | Some("1") => {
                let kafka = KafkaConfig::from_reader(reader)?;
                // A separate logging cluster may take the lines (`CHATVAULT_LOG_SHIPPING_BROKERS`).
                let brokers = reader.shared("LOG_SHIPPING_BROKERS").unwrap_or_else(|| kafka.brokers.clone());
                Some(crate::log_shipping::LogShippingConfig { topic: kafka.topic(crate::topics::AUDIT_LOGS), brokers })
            }
            Some("off") | Some("false") | Some("0") => None,
            Some(other) => return Err(Error::Config(format!("CHATVAULT_LOG_SHIPPING must be on or off, not {other:?}"))),
        };
        Ok(Self { log_format, log_filter, otlp_endpoint, log_shipping })
    }
}

struct EnvReader<'a> {
    environment: &'a HashMap<String, String>,
    service_prefix: String,
}

impl EnvReader<'_> {
    fn service(&self, key: &str) -> Option<String> {
        self.environment.get(&format!("{}{key}", self.service_prefix)).filter(|value| !value.is_empty()).cloned()
    }

    fn shared(&self, key: &str) -> Option<String> {
        self.environment.get(&format!("CHATVAULT_{key}")).filter(|value| !value.is_empty()).cloned()
    }

    fn parse_service<T: std::str::FromStr>(&self, key: &str, default: T) -> Result<T>
    where
        T::Err: fmt::Display,
    {
        let name = format!("{}{key}", self.service_prefix);
        parse_value(&name, self.service(key), default)
    }

    fn parse_shared<T: std::str::FromStr>(&self, key: &str, default: T) -> Result<T>
    where
        T::Err: fmt::Display,
    {
        parse_value(&format!("CHATVAULT_{key}"), self.shared(key), default)
    }
}

fn parse_value<T: std::str::FromStr>(name: &str, raw: Option<String>, default: T) -> Result<T>
where
    T::Err: fmt::Display,
{
    match raw {
        None => Ok(default),
        Some(text) => text.parse().map_err(|error| Error::Config(format!("{name}={text:?}: {error}"))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const PORTS: DefaultPorts = DefaultPorts { grpc: 50052, http: 8082 };

    #[test]
    fn defaults_point_at_the_local_stack() {
        let config = ServiceConfig::from_env_map("storage", PORTS, &HashMap::new()).expect("defaults parse");
        assert_eq!(config.grpc_addr.to_string(), "127.0.0.1:50052");
        assert_eq!(config.http_addr.to_string(), "127.0.0.1:8082");
        assert_eq!(config.database_url.expose(), "postgres://storage:storage@127.0.0.1:5432/storage");
        assert_eq!(config.kafka.brokers, "127.0.0.1:9092");
        assert_eq!(config.telemetry.log_format, LogFormat::Text);
    }

    #[test]
    fn service_and_shared_variables_override_defaults() {
        let environment = HashMap::from([
            ("CHATVAULT_STORAGE_GRPC_ADDR".to_owned(), "0.0.0.0:7000".to_owned()),
            ("CHATVAULT_KAFKA_BROKERS".to_owned(), "kafka:9092".to_owned()),
            ("CHATVAULT_TOPIC_PREFIX".to_owned(), "t1.".to_owned()),
            ("CHATVAULT_LOG_FORMAT".to_owned(), "json".to_owned()),
        ]);
        let config = ServiceConfig::from_env_map("storage", PORTS, &environment).expect("parses");
        assert_eq!(config.grpc_addr.to_string(), "0.0.0.0:7000");
        assert_eq!(config.kafka.brokers, "kafka:9092");
        assert_eq!(config.kafka.topic("chat.events"), "t1.chat.events");
        assert_eq!(config.telemetry.log_format, LogFormat::Json);
    }

    #[test]
    fn malformed_values_name_the_variable() {
        let environment = HashMap::from([("CHATVAULT_STORAGE_HTTP_ADDR".to_owned(), "nope".to_owned())]);
        let error = ServiceConfig::from_env_map("storage", PORTS, &environment).expect_err("must fail");
        assert!(error.to_string().contains("CHATVAULT_STORAGE_HTTP_ADDR"), "{error}");
    }

    #[test]
    fn service_specific_settings_parse_with_defaults() {
        let environment = HashMap::from([("CHATVAULT_INGEST_MAX_UPLOAD_BYTES".to_owned(), "1024".to_owned())]);
        let config = ServiceConfig::from_env_map("ingest", PORTS, &environment).expect("parses");
        assert_eq!(config.setting("MAX_UPLOAD_BYTES", 0u64).expect("number"), 1024);
        assert_eq!(config.setting("UPLOAD_DIR", "/tmp".to_owned()).expect("default"), "/tmp");
        let bad = HashMap::from([("CHATVAULT_INGEST_MAX_UPLOAD_BYTES".to_owned(), "lots".to_owned())]);
        let config = ServiceConfig::from_env_map("ingest", PORTS, &bad).expect("parses");
        assert!(config.setting("MAX_UPLOAD_BYTES", 0u64).is_err());
    }

    #[test]
    fn secrets_do_not_show_in_debug_output() {
        assert_eq!(format!("{:?}", Secret::new("hunter2")), "Secret(***)");
    }
}
