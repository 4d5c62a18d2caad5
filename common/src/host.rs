//! The service host: what every chatvault service binary does besides its own work.
//!
//! [`Host::build`] opens the PostgreSQL pool and runs the migrations (for a service with a
//! database), creates the topics, and binds the gRPC and HTTP listeners, so tests can ask
//! for port 0 and read the bound addresses. The service then adds its own parts: its
//! projections ([`Host::projection`], [`Host::spawn_projection`]), its background loops
//! ([`Host::spawn_loop`]), its gRPC services ([`GrpcServices`]) and REST routes, and calls
//! [`Host::serve`], which runs everything until shutdown:
//!
//! - gRPC with health and reflection of the port's own services, behind the auth layer and
//!   the metrics layer; HTTP with the service's routes, `/metrics` and `/healthz`
//!   (readiness: 503 while a projection is stuck);
//! - projections, background loops and the password-change follower in one task set that
//!   shares one cancellation token;
//! - on SIGINT/SIGTERM (the caller's token) or when a projection fails for good, the token
//!   is cancelled: the servers stop taking calls and finish those in flight, every task
//!   gets a grace period (`CHATVAULT_SHUTDOWN_GRACE_SECONDS`, default 10) to finish its
//!   batch, and what is still running then is aborted. Each step is logged.
//!
//! Building also sets the process umask to 077, so every file a service writes (backups
//! holding password hashes, file parts, uploaded exports) is its own user's alone.
//!
//! The design follows tansu's broker (a `JoinSet` under a `CancellationToken` with a grace
//! period) and zero-to-production's `Application::build` (bind first, expose the ports).

use std::net::SocketAddr;
use std::time::Duration;

use deadpool_postgres::Pool;
use tokio::net::TcpListener;
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

use crate::config::ServiceConfig;
use crate::consistency::AppliedPositions;
use crate::db::Migration;
use crate::grpc::GrpcServices;
use crate::projection::{BatchSettings, Projection, ProjectionHealth, ProjectionRunner};
use crate::{Error, Result};

/// Who may call a host's gRPC port.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum GrpcAudience {
    /// People and services with a valid token (health, reflection, register and log-in
    /// need none).
    Everyone,
    /// The platform's own services only (storage nodes).
    ServicesOnly,
}

/// What a service needs from the host.
#[derive(Clone, Copy, Debug)]
pub struct HostPlan {
    /// Lowercase service name: `storage`, `users`, ...
    pub service_name: &'static str,
    /// The service's schema; `None` for a service without a database.
    pub migrations: Option<&'static [Migration]>,
    /// Who may call the gRPC port.
    pub audience: GrpcAudience,
    /// Whether the service uses Kafka (then the host creates the topics at start).
    pub uses_kafka: bool,
    /// HTTP/2 flow-control windows of the gRPC server in bytes (stream, connection) for a
    /// service that moves large messages (storage nodes); `None` keeps tonic's defaults.
    pub transfer_windows: Option<(u32, u32)>,
}

impl HostPlan {
    /// Returns the plan of a service with a database (`migrations`) and Kafka, callable by
    /// everyone with a token: most services.
    pub const fn with_database(service_name: &'static str, migrations: &'static [Migration]) -> Self {
        Self { service_name, migrations: Some(migrations), audience: GrpcAudience::Everyone, uses_kafka: true, transfer_windows: None }
    }

    /// Returns the plan of a service with Kafka and no database (ingest).
    pub const fn without_database(service_name: &'static str) -> Self {
        Self { service_name, migrations: None, audience: GrpcAudience::Everyone, uses_kafka: true, transfer_windows: None }
    }
}

/// The process umask every service runs with: no access for group and others.
pub const PRIVATE_FILES_UMASK: u32 = 0o077;

/// What a background task ended with.
type TaskOutcome = (String, Result<()>);

/// A service's listeners, pool and tasks; see the module documentation.
#[derive(Debug)]
pub struct Host {
    plan: HostPlan,
    config: ServiceConfig,
    pool: Option<Pool>,
    grpc_listener: TcpListener,
    http_listener: TcpListener,
    projection_health: ProjectionHealth,
    tasks: JoinSet<TaskOutcome>,
    /// Cancelled at shutdown; every task and server watches it.
    stop: CancellationToken,
}

impl Host {
    /// Connects to the database and migrates it (when the plan has migrations), creates
    /// the topics, and binds both listeners.
    pub async fn build(config: ServiceConfig, plan: HostPlan) -> Result<Self> {
        // What a service writes (backups with password hashes, file parts, uploaded exports)
        // is readable by the service's own user only: files 0600, folders 0700.
        rustix::process::umask(rustix::fs::Mode::from_raw_mode(PRIVATE_FILES_UMASK));
        let pool = match plan.migrations {
            Some(migrations) => {
                let pool = crate::db::connect_pool(&config.database_url, config.database_pool_size)?;
                crate::db::migrate(&pool, migrations).await?;
                Some(pool)
            }
            None => None,
        };
        if plan.uses_kafka {
            crate::topics::ensure_topics(&config.kafka).await?;
        }
        let grpc_listener = TcpListener::bind(config.grpc_addr).await?;
        let http_listener = TcpListener::bind(config.http_addr).await?;
        Ok(Self {
            plan,
            config,
            pool,
            grpc_listener,
            http_listener,
            projection_health: ProjectionHealth::default(),
            tasks: JoinSet::new(),
            stop: CancellationToken::new(),
        })
    }

    /// Returns the service's configuration.
    pub fn config(&self) -> &ServiceConfig {
        &self.config
    }

    /// Returns the service's database pool.
    ///
    /// Errors with [`Error::Config`] for a service built without migrations (no database).
    pub fn pool(&self) -> Result<Pool> {
        self.pool.clone().ok_or_else(|| Error::Config(format!("the {} service has no database", self.plan.service_name)))
    }

    /// Returns the bound gRPC address (the real port when 0 was asked for).
    pub fn grpc_addr(&self) -> SocketAddr {
        self.grpc_listener.local_addr().unwrap_or(self.config.grpc_addr)
    }

    /// Returns the bound HTTP address.
    pub fn http_addr(&self) -> SocketAddr {
        self.http_listener.local_addr().unwrap_or(self.config.http_addr)
    }

    /// Returns the token cancelled at shutdown, for work the service runs itself.
    pub fn stop_token(&self) -> CancellationToken {
        self.stop.clone()
    }

    /// Returns a runner of `projection` over `topics` (base names; the prefix is added) on
    /// this service's pool, with its batch size and health reporting.
    pub fn projection<P: Projection>(&self, projection: P, topics: &[&str], applied: AppliedPositions) -> Result<ProjectionRunner<P>> {
        let topics = topics.iter().map(|base| self.config.kafka.topic(base)).collect();
        Ok(ProjectionRunner::new(projection, self.pool()?, self.config.kafka.clone(), topics, applied)
            .with_batch_settings(BatchSettings {
                max_records: self.config.projection_batch_records.max(1),
                early_imports: self.config.projection_early_imports,
                ..BatchSettings::default()
            })
            .with_health(self.projection_health.clone()))
    }

    /// Runs `runner` in the task set. When it fails (it retries every fault of a record or
    /// the database itself, so only a fault of its own set-up ends it), the service shuts
    /// down: a service whose read model cannot advance must not go on answering as if it
    /// were current.
    pub fn spawn_projection<P: Projection>(&mut self, runner: ProjectionRunner<P>) {
        let stop = self.stop.clone();
        let name = format!("projection {}", runner.name());
        self.tasks.spawn(async move {
            let outcome = runner.run(stop.clone()).await;
            if let Err(error) = &outcome {
                tracing::error!(task = %name, error = %error, "projection failed; shutting the service down");
                stop.cancel();
            }
            (name, outcome)
        });
    }

    /// Runs the loop `work` (given the stop token, which it must watch) in the task set.
    /// An error it returns is logged; the service keeps serving.
    pub fn spawn_loop<F, Fut, E>(&mut self, name: &str, work: F)
    where
        F: FnOnce(CancellationToken) -> Fut,
        Fut: std::future::Future<Output = std::result::Result<(), E>> + Send + 'static,
        E: std::fmt::Display + Send + 'static,
    {
        let name = name.to_owned();
        let future = work(self.stop.clone());
        self.tasks.spawn(async move { (name, future.await.map_err(|error| Error::Other(error.to_string()))) });
    }

    /// Serves `grpc` and `http_routes` and runs the task set until `shutdown` is cancelled
    /// (or a projection fails), then stops as the module documentation says. Returns the
    /// first error of a server or a projection.
    pub async fn serve(mut self, grpc: GrpcServices, http_routes: axum::Router, shutdown: CancellationToken) -> Result<()> {
        let service = self.plan.service_name;
        let stuck_after = Duration::from_secs(self.config.setting("PROJECTION_STUCK_SECONDS", 60u64)?);
        let grace = Duration::from_secs(self.config.setting("SHUTDOWN_GRACE_SECONDS", 10u64)?);
        if self.plan.uses_kafka {
            if let Some(follower) = crate::revocation::follow_password_changes(&self.config.auth, &self.config.kafka, service, self.stop.clone()) {
                self.tasks.spawn(async move {
                    follower.await;
                    ("password-change follower".to_owned(), Ok(()))
                });
            }
        }
        let stop = self.stop.clone();
        let linked_shutdown = shutdown.clone();
        tokio::spawn(async move {
            tokio::select! {
                () = linked_shutdown.cancelled() => stop.cancel(),
                () = stop.cancelled() => {}
            }
        });

        let served_names = grpc.names().join(", ");
        let auth_layer = match self.plan.audience {
            GrpcAudience::Everyone => self.config.auth.grpc_layer(),
            GrpcAudience::ServicesOnly => self.config.auth.services_only_grpc_layer(),
        };
        let routes = grpc.into_routes().await;
        let http_router = crate::http::router_with_health(http_routes, self.projection_health.clone(), stuck_after);
        tracing::info!(service, grpc = %self.grpc_addr(), http = %self.http_addr(), grpc_services = %served_names, tasks = self.tasks.len(), "serving");
        let grpc_server = crate::grpc::serve_routes(self.grpc_listener, routes, auth_layer, self.plan.transfer_windows, self.stop.clone());
        let http_server = crate::http::serve_http(self.http_listener, http_router, self.stop.clone());
        let mut tasks = self.tasks;
        let mut first_error: Option<Error> = None;

        // Servers and tasks run side by side; a task that ends early is reaped as it ends.
        let servers = async { tokio::join!(grpc_server, http_server) };
        tokio::pin!(servers);
        let (grpc_result, http_result) = loop {
            tokio::select! {
                results = &mut servers => break results,
                Some(joined) = tasks.join_next(), if !tasks.is_empty() => note_task_end(service, joined, &mut first_error),
            }
        };
        tracing::info!(service, "servers stopped; waiting for background tasks");
        if let Err(error) = grpc_result {
            first_error.get_or_insert(Error::Unavailable(format!("grpc server: {error}")));
        }
        if let Err(error) = http_result {
            first_error.get_or_insert(Error::Io(error));
        }

        let deadline = tokio::time::Instant::now() + grace;
        while !tasks.is_empty() {
            match tokio::time::timeout_at(deadline, tasks.join_next()).await {
                Ok(Some(joined)) => note_task_end(service, joined, &mut first_error),
                Ok(None) => break,
                Err(_) => {
                    tracing::warn!(
                        service,
                        remaining = tasks.len(),
                        grace_seconds = grace.as_secs(),
                        "background tasks did not finish within the grace period; aborting them"
                    );
                    tasks.abort_all();
                    while let Some(joined) = tasks.join_next().await {
                        if let Ok((name, _)) = joined {
                            tracing::warn!(service, task = %name, "task ended at the abort");
                        }
                    }
                }
            }
        }
        tracing::info!(service, "stopped");
        match first_error {
            Some(error) => Err(error),
            None => Ok(()),
        }
    }
}

fn note_task_end(service: &str, joined: std::result::Result<TaskOutcome, tokio::task::JoinError>, first_error: &mut Option<Error>) {
    match joined {
        Ok((name, Ok(()))) => tracing::info!(service, task = %name, "task finished"),
        Ok((name, Err(error))) => {
            tracing::error!(service, task = %name, error = %error, "task failed");
            if name.starts_with("projection ") {
                first_error.get_or_insert(error);
            }
        }
        Err(join_error) if join_error.is_cancelled() => {}
        Err(join_error) => {
            tracing::error!(service, error = %join_error, "task panicked");
            first_error.get_or_insert(Error::Other(format!("a background task panicked: {join_error}")));
        }
    }
}
