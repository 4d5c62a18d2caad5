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
use chatvault_common::projection::{BatchSettings, ProjectionRunner};
use chatvault_common::topics::ALL_TOPICS;
use chatvault_proto::audit::v1::audit_service_server::AuditServiceServer;
use deadpool_postgres::Pool;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

pub use error::Error;

pub const SERVICE_NAME: &str = "audit";
pub const DEFAULT_PORTS: DefaultPorts = DefaultPorts { grpc: 50054, http: 8084 };

/// The audit service's schema, applied at start-up.
pub const MIGRATIONS: &[Migration] = &[Migration { id: "audit/0001_audit", sql: include_str!("../migrations/0001_audit.sql") }];

/// A built audit service: schema migrated, listeners bound.
#[derive(Debug)]
pub struct App {
    config: ServiceConfig,
    pool: Pool,
    grpc_listener: TcpListener,
    http_listener: TcpListener,
}

impl App {
    /// Connects to the database, applies migrations, ensures topics and binds listeners.
    pub async fn build(config: ServiceConfig) -> Result<Self, Error> {
        let pool = chatvault_common::db::connect_pool(&config.database_url, config.database_pool_size)?;
        chatvault_common::db::migrate(&pool, MIGRATIONS).await?;
        chatvault_common::topics::ensure_topics(&config.kafka).await?;
        let grpc_listener = TcpListener::bind(config.grpc_addr).await?;
        let http_listener = TcpListener::bind(config.http_addr).await?;
        Ok(Self { config, pool, grpc_listener, http_listener })
    }

    pub fn grpc_addr(&self) -> SocketAddr {
        self.grpc_listener.local_addr().unwrap_or(self.config.grpc_addr)
    }

    pub fn http_addr(&self) -> SocketAddr {
        self.http_listener.local_addr().unwrap_or(self.config.http_addr)
    }

    /// Runs the audit projection and the retention task, and serves queries until
    /// `shutdown` is cancelled.
    pub async fn run_until_stopped(self, shutdown: CancellationToken) -> Result<(), Error> {
        let retention_days: u32 = self.config.setting("RETENTION_DAYS", 365u32)?;
        let retention_interval = Duration::from_secs(self.config.setting("RETENTION_INTERVAL_SECONDS", 3600u64)?.max(1));
        let topics: Vec<String> = ALL_TOPICS.iter().map(|(base, _)| self.config.kafka.topic(base)).collect();
        let audit_projection = ProjectionRunner::new(
            projection::AuditProjection::new(self.config.kafka.topic_prefix.clone()),
            self.pool.clone(),
            self.config.kafka.clone(),
            topics,
            AppliedPositions::default(),
        )
        .with_batch_settings(BatchSettings { max_records: self.config.projection_batch_records.max(1), ..BatchSettings::default() });
        let (health_reporter, health_service) = tonic_health::server::health_reporter();
        health_reporter.set_serving::<AuditServiceServer<api::AuditApi>>().await;
        chatvault_common::revocation::spawn_password_change_follower(&self.config.auth, &self.config.kafka, SERVICE_NAME, shutdown.clone());
        let grpc_router = chatvault_common::grpc::authenticated_server(&self.config.auth)
            .add_service(health_service)
            .add_service(chatvault_common::grpc::reflection_service())
            .add_service(AuditServiceServer::new(api::AuditApi::new(self.pool.clone())));
        let http_router = chatvault_common::http::router_with_metrics(axum::Router::new());

        let retention_pool = self.pool.clone();
        let retention_shutdown = shutdown.clone();
        tokio::spawn(async move {
            loop {
                if let Err(error) = projection::drop_expired_partitions(&retention_pool, retention_days).await {
                    tracing::warn!(error = ?error, "dropping expired audit partitions failed");
                }
                tokio::select! {
                    () = retention_shutdown.cancelled() => break,
                    () = tokio::time::sleep(retention_interval) => {}
                }
            }
        });
        let projection_task = audit_projection.spawn(shutdown.clone());
        let grpc = chatvault_common::grpc::serve_grpc_authenticated(self.grpc_listener, grpc_router, shutdown.clone());
        let http = chatvault_common::http::serve_http(self.http_listener, http_router, shutdown.clone());
        let (grpc_result, http_result) = tokio::join!(grpc, http);
        let projection_result = chatvault_common::projection::join_projection(projection_task).await;
        grpc_result?;
        http_result?;
        projection_result?;
        Ok(())
    }
}
