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
///
/// Every secret a service reads (the signing secret, database URLs, the first admin's
/// password, S3 keys) is held in one, so no `{:?}` of a configuration prints it.
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
    /// Whether projections apply an import while it is still being published, in one open
    /// transaction committed at its marker (`CHATVAULT_<SERVICE>_PROJECTION_EARLY_IMPORTS`,
    /// default true); off, an import is applied from the topic once it commits.
    pub projection_early_imports: bool,
    /// Token verification (`CHATVAULT_AUTH`, `CHATVAULT_JWT_SECRET`, `CHATVAULT_JWT_ACCESS_TTL_SECONDS`).
    pub auth: crate::auth::AuthConfig,
    /// Every `CHATVAULT_<SERVICE>_<KEY>` variable by `<KEY>`, for settings only one service
    /// has (read them with [`ServiceConfig::setting`], secrets with
    /// [`ServiceConfig::secret_setting`]); its `Debug` hides secrets.
    pub service_settings: ServiceSettings,
}

/// The `CHATVAULT_<SERVICE>_<KEY>` variables of one service by `<KEY>`.
///
/// `Debug` prints `***` for keys that name a secret ([`is_secret_setting_name`]) and hides
/// the password of any URL, because configurations get logged and printed in errors.
#[derive(Clone, Default, PartialEq, Eq)]
pub struct ServiceSettings(HashMap<String, String>);

impl ServiceSettings {
    /// Returns the raw value of `key` (without the `CHATVAULT_<SERVICE>_` prefix).
    pub fn get(&self, key: &str) -> Option<&String> {
        self.0.get(key)
    }

    /// Returns whether `key` is set.
    pub fn contains_key(&self, key: &str) -> bool {
        self.0.contains_key(key)
    }

    /// Returns the keys that are set, in no particular order.
    pub fn keys(&self) -> impl Iterator<Item = &String> {
        self.0.keys()
    }
}

impl From<HashMap<String, String>> for ServiceSettings {
    fn from(settings: HashMap<String, String>) -> Self {
        Self(settings)
    }
}

impl FromIterator<(String, String)> for ServiceSettings {
    fn from_iter<I: IntoIterator<Item = (String, String)>>(pairs: I) -> Self {
        Self(pairs.into_iter().collect())
    }
}

impl fmt::Debug for ServiceSettings {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut keys: Vec<&String> = self.0.keys().collect();
        keys.sort();
        let mut map = formatter.debug_map();
        for key in keys {
            let value = &self.0[key];
            if is_secret_setting_name(key) {
                map.entry(key, &format_args!("***"));
            } else {
                map.entry(key, &redact_url_password(value));
            }
        }
        map.finish()
    }
}

/// Returns whether a setting's name marks its value as secret: it contains `SECRET`,
/// `PASSWORD`, `TOKEN`, `KEY`, `CREDENTIAL` or `DATABASE_URL`, or is `BOOTSTRAP_ADMIN`
/// (`username:password:email`). Case-insensitive.
pub fn is_secret_setting_name(name: &str) -> bool {
    let name = name.to_ascii_uppercase();
    ["SECRET", "PASSWORD", "TOKEN", "KEY", "CREDENTIAL", "DATABASE_URL", "BOOTSTRAP_ADMIN"].iter().any(|marker| name.contains(marker))
}

/// Returns `value` with the password of a `scheme://user:password@host` URL replaced by
/// `***`; other values unchanged.
fn redact_url_password(value: &str) -> String {
    let Some((scheme, rest)) = value.split_once("://") else { return value.to_owned() };
    let authority_end = rest.find('/').unwrap_or(rest.len());
    let Some(at) = rest[..authority_end].rfind('@') else { return value.to_owned() };
    match rest[..at].split_once(':') {
        Some((user, _password)) => format!("{scheme}://{user}:***{}", &rest[at..]),
        None => value.to_owned(),
    }
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
    pub fn from_env_map(service_name: &str, ports: DefaultPorts, environment: &HashMap<String, String>) -> Result<Self> {
        let reader = EnvReader { environment, service_prefix: format!("CHATVAULT_{}_", service_name.to_uppercase().replace('-', "_")) };
        // No password: the roles' passwords are generated per installation (scripts/stack.sh),
        // and scripts/services.sh passes the full URL.
        let default_database_url = format!("postgres://{service_name}@127.0.0.1:5432/{service_name}");
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
            projection_early_imports: reader.parse_service("PROJECTION_EARLY_IMPORTS", true)?,
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

    /// Returns the service-specific secret `CHATVAULT_<SERVICE>_<key>` (`None` when unset or
    /// empty), wrapped so it never prints.
    pub fn secret_setting(&self, key: &str) -> Option<Secret> {
        self.service_settings.get(key).filter(|value| !value.trim().is_empty()).map(|value| Secret::new(value.clone()))
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
        let log_filter = reader.shared("LOG").or_else(|| reader.environment.get("RUST_LOG").cloned()).unwrap_or_else(|| "info".to_owned());
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

    /// `pairs` plus a signing secret services accept.
    fn environment_with_secret(pairs: &[(&str, &str)]) -> HashMap<String, String> {
        let mut environment: HashMap<String, String> = pairs.iter().map(|(key, value)| ((*key).to_owned(), (*value).to_owned())).collect();
        environment.insert("CHATVAULT_JWT_SECRET".to_owned(), format!("{}{}", uuid::Uuid::new_v4().simple(), uuid::Uuid::new_v4().simple()));
        environment
    }

    #[test]
    fn defaults_point_at_the_local_stack() {
        let config = ServiceConfig::from_env_map("storage", PORTS, &environment_with_secret(&[])).expect("defaults parse");
        assert_eq!(config.grpc_addr.to_string(), "127.0.0.1:50052");
        assert_eq!(config.http_addr.to_string(), "127.0.0.1:8082");
        assert_eq!(config.database_url.expose(), "postgres://storage@127.0.0.1:5432/storage");
        assert_eq!(config.kafka.brokers, "127.0.0.1:9092");
        assert_eq!(config.telemetry.log_format, LogFormat::Text);
    }

    #[test]
    fn service_and_shared_variables_override_defaults() {
        let environment = environment_with_secret(&[
            ("CHATVAULT_STORAGE_GRPC_ADDR", "0.0.0.0:7000"),
            ("CHATVAULT_KAFKA_BROKERS", "kafka:9092"),
            ("CHATVAULT_TOPIC_PREFIX", "t1."),
            ("CHATVAULT_LOG_FORMAT", "json"),
        ]);
        let config = ServiceConfig::from_env_map("storage", PORTS, &environment).expect("parses");
        assert_eq!(config.grpc_addr.to_string(), "0.0.0.0:7000");
        assert_eq!(config.kafka.brokers, "kafka:9092");
        assert_eq!(config.kafka.topic("chat.events"), "t1.chat.events");
        assert_eq!(config.telemetry.log_format, LogFormat::Json);
    }

    #[test]
    fn malformed_values_name_the_variable() {
        let environment = environment_with_secret(&[("CHATVAULT_STORAGE_HTTP_ADDR", "nope")]);
        let error = ServiceConfig::from_env_map("storage", PORTS, &environment).expect_err("must fail");
        assert!(error.to_string().contains("CHATVAULT_STORAGE_HTTP_ADDR"), "{error}");
    }

    #[test]
    fn service_specific_settings_parse_with_defaults() {
        let environment = environment_with_secret(&[("CHATVAULT_INGEST_MAX_UPLOAD_BYTES", "1024")]);
        let config = ServiceConfig::from_env_map("ingest", PORTS, &environment).expect("parses");
        assert_eq!(config.setting("MAX_UPLOAD_BYTES", 0u64).expect("number"), 1024);
        assert_eq!(config.setting("UPLOAD_DIR", "/tmp".to_owned()).expect("default"), "/tmp");
        let bad = environment_with_secret(&[("CHATVAULT_INGEST_MAX_UPLOAD_BYTES", "lots")]);
        let config = ServiceConfig::from_env_map("ingest", PORTS, &bad).expect("parses");
        assert!(config.setting("MAX_UPLOAD_BYTES", 0u64).is_err());
    }

    #[test]
    fn secrets_do_not_show_in_debug_output() {
        assert_eq!(format!("{:?}", Secret::new("hunter2")), "Secret(***)");
    }

    #[test]
    fn the_debug_of_a_config_shows_no_secret_setting() {
        let jwt_secret = format!("{}{}", uuid::Uuid::new_v4().simple(), uuid::Uuid::new_v4().simple());
        let secrets = [
            ("CHATVAULT_BACKUP_S3_SECRET_ACCESS_KEY", "s3-secret-f00d"),
            ("CHATVAULT_BACKUP_S3_ACCESS_KEY_ID", "s3-key-id-beef"),
            ("CHATVAULT_BACKUP_BOOTSTRAP_ADMIN", "root:admin-password-cafe:root@example.org"),
            ("CHATVAULT_BACKUP_UPSTREAM_TOKEN", "token-value-d00d"),
            ("CHATVAULT_BACKUP_SMTP_PASSWORD", "smtp-password-abba"),
            ("CHATVAULT_BACKUP_DATABASE_URL", "postgres://backup:database-password-1ee7@db:5432/backup"),
            ("CHATVAULT_BACKUP_STORAGE_URL", "http://svc:url-password-0b0e@storage:50052"),
            ("CHATVAULT_JWT_SECRET", jwt_secret.as_str()),
        ];
        let mut environment: HashMap<String, String> = secrets.iter().map(|(key, value)| ((*key).to_owned(), (*value).to_owned())).collect();
        environment.insert("CHATVAULT_BACKUP_SCHEDULE_KEEP".to_owned(), "7".to_owned());
        let config = ServiceConfig::from_env_map("backup", PORTS, &environment).expect("parses");
        let printed = format!("{config:?} {config:#?}");
        for secret in [
            "s3-secret-f00d",
            "s3-key-id-beef",
            "admin-password-cafe",
            "token-value-d00d",
            "smtp-password-abba",
            "database-password-1ee7",
            "url-password-0b0e",
            &jwt_secret,
        ] {
            assert!(!printed.contains(secret), "{secret} shows in {printed}");
        }
        assert!(printed.contains("SCHEDULE_KEEP") && printed.contains("\"7\""), "other settings still show: {printed}");
        assert!(printed.contains("http://svc:***@storage:50052"), "a URL keeps its host: {printed}");
        assert_eq!(config.secret_setting("S3_SECRET_ACCESS_KEY").expect("set").expose(), "s3-secret-f00d");
        assert!(config.secret_setting("S3_SESSION_TOKEN").is_none());
    }

    #[test]
    fn urls_lose_only_their_password() {
        assert_eq!(redact_url_password("postgres://u:p@h:5432/d"), "postgres://u:***@h:5432/d");
        assert_eq!(redact_url_password("http://h:50052"), "http://h:50052");
        assert_eq!(redact_url_password("http://user@h/x@y"), "http://user@h/x@y");
        assert_eq!(redact_url_password("plain"), "plain");
    }
}
