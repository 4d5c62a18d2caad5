//! The audit service: projects every domain topic and `audit.logs` into a time-partitioned
//! trail in its own database, drops partitions past the retention, and answers queries by
//! actor, event type, time range and trace id.

pub mod api;
pub mod error;
pub mod projection;

use std::net::SocketAddr;
use std::time::Duration;

use chatvault_common::config::{DefaultPorts, ServiceConfig};
use chatvault_common::consistency::AppliedPositions;
use chatvault_common::db::Migration;
use chatvault_common::grpc::GrpcServices;
use chatvault_common::host::{Host, HostPlan};
use chatvault_common::topics::ALL_TOPICS;
use chatvault_proto::audit::v1::audit_service_server::AuditServiceServer;
use tokio_util::sync::CancellationToken;

pub use error::Error;

pub const SERVICE_NAME: &str = "audit";
pub const DEFAULT_PORTS: DefaultPorts = DefaultPorts { grpc: 50054, http: 8084 };

/// The audit service's schema, applied at start-up.
pub const MIGRATIONS: &[Migration] = &[
    Migration { id: "audit/0001_audit", sql: include_str!("../migrations/0001_audit.sql") },
    Migration { id: "audit/0002_history", sql: include_str!("../migrations/0002_history.sql") },
];

/// A built audit service: schema migrated, listeners bound.
#[derive(Debug)]
pub struct App {
    host: Host,
}

impl App {
    /// Connects to the database, applies migrations, ensures topics and binds listeners.
    pub async fn build(config: ServiceConfig) -> Result<Self, Error> {
        let plan = HostPlan::with_database(SERVICE_NAME, MIGRATIONS);
        Ok(Self { host: Host::build(config, plan).await? })
    }

    pub fn grpc_addr(&self) -> SocketAddr {
        self.host.grpc_addr()
    }

    pub fn http_addr(&self) -> SocketAddr {
        self.host.http_addr()
    }

    /// Runs the audit projection and the retention loop, and serves queries until
    /// `shutdown` is cancelled.
    pub async fn run_until_stopped(self, shutdown: CancellationToken) -> Result<(), Error> {
        let mut host = self.host;
        let config = host.config();
        let retention_days: u32 = config.setting("RETENTION_DAYS", 365u32)?;
        let retention_interval = Duration::from_secs(config.setting("RETENTION_INTERVAL_SECONDS", 3600u64)?.max(1));
        let topic_prefix = config.kafka.topic_prefix.clone();
        let pool = host.pool()?;
        let topics: Vec<&str> = ALL_TOPICS.iter().map(|(base, _)| *base).collect();
        let audit_projection = host.projection(projection::AuditProjection::new(topic_prefix), &topics, AppliedPositions::default())?;
        host.spawn_projection(audit_projection);
        let retention_pool = pool.clone();
        host.spawn_loop("audit retention", move |stop| async move {
            loop {
                if let Err(error) = projection::drop_expired_partitions(&retention_pool, retention_days).await {
                    tracing::warn!(error = %error, "dropping expired audit partitions failed");
                }
                tokio::select! {
                    () = stop.cancelled() => return Ok::<(), Error>(()),
                    () = tokio::time::sleep(retention_interval) => {}
                }
            }
        });
        let grpc = GrpcServices::new().add_service(AuditServiceServer::new(api::AuditApi::new(pool)));
        host.serve(grpc, axum::Router::new(), shutdown).await?;
        Ok(())
    }
}
