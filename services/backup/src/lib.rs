//! The backup service: takes consistent snapshots of the archive from the services that own
//! its tables (storage, users) and writes them as CSV and Parquet with a checksummed
//! manifest; verifies them; restores them through the platform's own events; and takes
//! scheduled backups, keeping the newest few. Where `CHATVAULT_BACKUP_S3_URL` is set, each
//! backup is also copied to an S3-compatible bucket and fetched back from it on restore.

pub mod api;
pub mod catalog;
pub mod copy_binary;
pub mod create;
pub mod error;
pub mod manifest;
pub mod peers;
pub mod remote;
pub mod restore;
pub mod snapshot_stream;
pub mod table_files;
pub mod verify;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use chatvault_common::config::{DefaultPorts, KafkaConfig, ServiceConfig};
use chatvault_common::db::Migration;
use chatvault_common::grpc::GrpcServices;
use chatvault_common::host::{Host, HostPlan};
use chatvault_proto::backup::v1::backup_service_server::BackupServiceServer;
use deadpool_postgres::Pool;
use rdkafka::producer::FutureProducer;
use tokio_util::sync::CancellationToken;

pub use error::Error;

pub const SERVICE_NAME: &str = "backup";
pub const DEFAULT_PORTS: DefaultPorts = DefaultPorts { grpc: 50055, http: 8085 };

/// The backup service's schema, applied at start-up.
pub const MIGRATIONS: &[Migration] = &[
    Migration { id: "backup/0001_backups", sql: include_str!("../migrations/0001_backups.sql") },
    Migration { id: "backup/0002_remote", sql: include_str!("../migrations/0002_remote.sql") },
];

/// Where and how backups are written, and the schedule.
#[derive(Clone, Debug)]
pub struct BackupSettings {
    /// `CHATVAULT_BACKUP_DIR`, default `.state/backups`.
    pub folder: PathBuf,
    /// `CHATVAULT_BACKUP_ROW_GROUP_ROWS`: rows per Parquet row group, default 131072.
    pub row_group_rows: usize,
    /// `CHATVAULT_BACKUP_SCHEDULE_SECONDS`: interval of scheduled backups; 0 = none.
    pub schedule_interval: Option<Duration>,
    /// `CHATVAULT_BACKUP_SCHEDULE_KEEP`: scheduled backups kept, default 7.
    pub schedule_keep: usize,
    /// `CHATVAULT_BACKUP_SCHEDULE_FORMAT`: csv, parquet or both, default parquet.
    pub schedule_format: String,
    /// `CHATVAULT_BACKUP_SCHEDULE_WITH_FILES`: default false.
    pub schedule_with_files: bool,
    /// `CHATVAULT_BACKUP_S3_*`: the bucket backups are copied to; `None` = local only.
    pub remote: Option<remote::RemoteSettings>,
}

impl BackupSettings {
    pub fn from_config(config: &ServiceConfig) -> Result<Self, Error> {
        let interval: u64 = config.setting("SCHEDULE_SECONDS", 0u64)?;
        let format: String = config.setting("SCHEDULE_FORMAT", "parquet".to_owned())?;
        api::formats_of_name(&format)
            .map_err(|_| Error::InvalidArgument(format!("CHATVAULT_BACKUP_SCHEDULE_FORMAT={format:?}: use csv, parquet or both")))?;
        Ok(Self {
            folder: PathBuf::from(config.setting("DIR", ".state/backups".to_owned())?),
            row_group_rows: config.setting("ROW_GROUP_ROWS", 131_072usize)?.max(1),
            schedule_interval: (interval > 0).then(|| Duration::from_secs(interval)),
            schedule_keep: config.setting("SCHEDULE_KEEP", 7usize)?.max(1),
            schedule_format: format,
            schedule_with_files: config.setting("SCHEDULE_WITH_FILES", false)?,
            remote: remote::RemoteSettings::from_config(config)?,
        })
    }
}

/// What every backup operation needs.
#[derive(Clone)]
pub struct Context {
    pub settings: BackupSettings,
    pub peers: peers::Peers,
    pub pool: Pool,
    pub kafka: KafkaConfig,
    pub events: FutureProducer,
    /// The bucket backups are copied to, when one is configured.
    pub remote: Option<remote::RemoteStore>,
}

impl std::fmt::Debug for Context {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        formatter
            .debug_struct("Context")
            .field("settings", &self.settings)
            .field("peers", &self.peers)
            .field("remote", &self.remote)
            .finish_non_exhaustive()
    }
}

/// A built backup service: schema migrated, listeners bound.
#[derive(Debug)]
pub struct App {
    host: Host,
    context: Context,
}

impl App {
    /// Connects to the database, applies migrations, ensures topics, binds listeners and
    /// catalogues the backups found on disk.
    pub async fn build(config: ServiceConfig) -> Result<Self, Error> {
        let plan = HostPlan::with_database(SERVICE_NAME, MIGRATIONS);
        let host = Host::build(config, plan).await?;
        let config = host.config();
        let pool = host.pool()?;
        let settings = BackupSettings::from_config(config)?;
        std::fs::create_dir_all(&settings.folder)?;
        let discovered = catalog::discover(&pool, &settings.folder).await?;
        if discovered > 0 {
            tracing::info!(discovered, folder = %settings.folder.display(), "backups found on disk added to the catalog");
        }
        let remote = settings.remote.as_ref().map(remote::RemoteStore::from_settings).transpose()?;
        if let Some(remote) = &remote {
            tracing::info!(bucket = remote.bucket(), remote = %remote.url(), "backups are copied to an s3 bucket");
        }
        let context = Context {
            remote,
            peers: peers::Peers::from_config(config)?,
            events: chatvault_common::kafka::idempotent_producer(&config.kafka, "chatvault-backup")?,
            kafka: config.kafka.clone(),
            settings,
            pool,
        };
        Ok(Self { host, context })
    }

    pub fn grpc_addr(&self) -> SocketAddr {
        self.host.grpc_addr()
    }

    pub fn http_addr(&self) -> SocketAddr {
        self.host.http_addr()
    }

    /// Serves the API and runs scheduled backups until `shutdown` is cancelled.
    pub async fn run_until_stopped(self, shutdown: CancellationToken) -> Result<(), Error> {
        let mut host = self.host;
        if let Some(interval) = self.context.settings.schedule_interval {
            let context = self.context.clone();
            host.spawn_loop("scheduled backups", move |stop| async move {
                api::run_schedule(context, interval, stop).await;
                Ok::<(), Error>(())
            });
        }
        let grpc = GrpcServices::new().add_service(BackupServiceServer::new(api::BackupApi::new(self.context)).max_decoding_message_size(16 << 20));
        host.serve(grpc, axum::Router::new(), shutdown).await?;
        Ok(())
    }
}
