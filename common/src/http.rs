//! The HTTP side of every service: Prometheus `/metrics`, `/healthz`, and whatever REST
//! routes the service merges in.

use std::sync::LazyLock;
use std::time::Duration;

use axum::http::StatusCode;
use axum::response::IntoResponse;
use axum::routing::get;
use axum::Router;
use prometheus::{Encoder, HistogramOpts, HistogramVec, IntCounterVec, Opts, TextEncoder};
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

use crate::projection::ProjectionHealth;

/// Records applied by projections, by projection and topic.
pub static PROJECTION_RECORDS: LazyLock<IntCounterVec> = LazyLock::new(|| {
    register(IntCounterVec::new(Opts::new("chatvault_projection_records_total", "records applied by a projection"), &["projection", "topic"]))
});

/// Records a projection could not decode or apply and sent to the dead-letter topic.
pub static PROJECTION_DEAD_LETTERS: LazyLock<IntCounterVec> = LazyLock::new(|| {
    register(IntCounterVec::new(
        Opts::new("chatvault_projection_dead_letters_total", "records sent to a dead-letter topic"),
        &["projection", "topic"],
    ))
});

/// Time to apply one projection batch, by projection.
pub static PROJECTION_BATCH_SECONDS: LazyLock<HistogramVec> = LazyLock::new(|| {
    register(HistogramVec::new(
        HistogramOpts::new("chatvault_projection_batch_seconds", "time to apply one batch in one transaction"),
        &["projection"],
    ))
});

/// Events published, by topic and event type.
pub static EVENTS_PUBLISHED: LazyLock<IntCounterVec> = LazyLock::new(|| {
    register(IntCounterVec::new(Opts::new("chatvault_events_published_total", "events published to Kafka"), &["topic", "event_type"]))
});

/// gRPC calls handled, by gRPC service (`chatvault.storage.v1.StorageService`), method
/// and status code name (`OK`, `NOT_FOUND`, ...); counted by [`crate::grpc::GrpcMetricsLayer`].
pub static GRPC_REQUESTS: LazyLock<IntCounterVec> = LazyLock::new(|| {
    register(IntCounterVec::new(
        Opts::new("chatvault_grpc_requests_total", "gRPC calls handled, by service, method and status code"),
        &["service", "method", "code"],
    ))
});

/// Seconds from a gRPC call's request to the end of its response, by service and method.
pub static GRPC_REQUEST_SECONDS: LazyLock<HistogramVec> = LazyLock::new(|| {
    register(HistogramVec::new(
        HistogramOpts::new("chatvault_grpc_request_seconds", "time from a gRPC request to the end of its response")
            .buckets(vec![0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 300.0]),
        &["service", "method"],
    ))
});

/// Registers a metric in the default registry (served on `/metrics`) and returns it.
///
/// Panics when the definition is invalid or registered twice: metric definitions are
/// constants, so either is a programming error.
pub fn register<M: prometheus::core::Collector + Clone + 'static>(metric: Result<M, prometheus::Error>) -> M {
    // Metric names and labels are constants of this module: a failure is a programming error.
    let metric = metric.expect("metric definition is valid");
    prometheus::default_registry().register(Box::new(metric.clone())).expect("metric is registered once");
    metric
}

/// How long a projection may fail without a break before `/healthz` reports it stuck.
pub const DEFAULT_STUCK_AFTER: Duration = Duration::from_secs(60);

/// Returns `/metrics` and `/healthz`, merged with `service_routes`. `/healthz` answers 200
/// with `{"status":"ok","projections":{…}}` while every projection applies its records, and
/// 503 with `"status":"stuck"` and the names in `"stuck"` once one has failed for longer
/// than `stuck_after` without a break (its last error is in its entry).
pub fn router_with_health(service_routes: Router, health: ProjectionHealth, stuck_after: Duration) -> Router {
    service_routes.route("/metrics", get(metrics)).route(
        "/healthz",
        get(move || {
            let health = health.clone();
            async move {
                let stuck = health.stuck(stuck_after);
                let status = if stuck.is_empty() { StatusCode::OK } else { StatusCode::SERVICE_UNAVAILABLE };
                let body = serde_json::json!({
                    "status": if stuck.is_empty() { "ok" } else { "stuck" },
                    "stuck": stuck,
                    "projections": health.states(),
                });
                (status, axum::Json(body))
            }
        }),
    )
}

async fn metrics() -> impl IntoResponse {
    let encoder = TextEncoder::new();
    let mut buffer = Vec::new();
    match encoder.encode(&prometheus::gather(), &mut buffer) {
        Ok(()) => (StatusCode::OK, [("content-type", encoder.format_type().to_owned())], buffer).into_response(),
        Err(error) => (StatusCode::INTERNAL_SERVER_ERROR, error.to_string()).into_response(),
    }
}

/// Serves `router` on `listener` until `shutdown` is cancelled. Accepted connections get
/// `TCP_NODELAY`, as the gRPC servers' do: with Nagle's algorithm a small write (the end of
/// a response, a flow-control frame) waits for the peer's delayed ACK, up to 40 ms each.
pub async fn serve_http(listener: TcpListener, router: Router, shutdown: CancellationToken) -> std::io::Result<()> {
    use axum::serve::ListenerExt as _;
    let listener = listener.tap_io(|connection| {
        if let Err(error) = connection.set_nodelay(true) {
            tracing::debug!(%error, "TCP_NODELAY not set on an HTTP connection");
        }
    });
    // Handlers may read the peer's address (`ConnectInfo<SocketAddr>`): the web service
    // records where a log-in came from.
    axum::serve(listener, router.into_make_service_with_connect_info::<std::net::SocketAddr>())
        .with_graceful_shutdown(shutdown.cancelled_owned())
        .await
}
