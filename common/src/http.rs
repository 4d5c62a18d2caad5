//! The HTTP side of every service: Prometheus `/metrics`, `/healthz`, and whatever REST
//! routes the service merges in.

use std::sync::LazyLock;

use axum::http::StatusCode;
use axum::response::IntoResponse;
use axum::routing::get;
use axum::Router;
use prometheus::{Encoder, HistogramOpts, HistogramVec, IntCounterVec, Opts, TextEncoder};
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

/// Records applied by projections, by projection and topic.
pub static PROJECTION_RECORDS: LazyLock<IntCounterVec> = LazyLock::new(|| {
    register(IntCounterVec::new(
        Opts::new("chatvault_projection_records_total", "records applied by a projection"),
        &["projection", "topic"],
    ))
});

/// Records a projection could not decode and sent to the dead-letter topic.
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
    register(IntCounterVec::new(
        Opts::new("chatvault_events_published_total", "events published to Kafka"),
        &["topic", "event_type"],
    ))
});

/// gRPC requests handled, by method and status code.
pub static GRPC_REQUESTS: LazyLock<IntCounterVec> = LazyLock::new(|| {
    register(IntCounterVec::new(
        Opts::new("chatvault_grpc_requests_total", "gRPC requests handled"),
        &["method", "code"],
    ))
});

fn register<M: prometheus::core::Collector + Clone + 'static>(metric: Result<M, prometheus::Error>) -> M {
    // Metric names and labels are constants of this module: a failure is a programming error.
    let metric = metric.expect("metric definition is valid");
    prometheus::default_registry()
        .register(Box::new(metric.clone()))
        .expect("metric is registered once");
    metric
}

/// Returns `/metrics` and `/healthz`, merged with `service_routes`.
pub fn router_with_metrics(service_routes: Router) -> Router {
    service_routes.route("/metrics", get(metrics)).route("/healthz", get(|| async { "ok" }))
}

async fn metrics() -> impl IntoResponse {
    let encoder = TextEncoder::new();
    let mut buffer = Vec::new();
    match encoder.encode(&prometheus::gather(), &mut buffer) {
        Ok(()) => (StatusCode::OK, [("content-type", encoder.format_type().to_owned())], buffer).into_response(),
        Err(error) => (StatusCode::INTERNAL_SERVER_ERROR, error.to_string()).into_response(),
    }
}

/// Serves `router` on `listener` until `shutdown` is cancelled.
pub async fn serve_http(listener: TcpListener, router: Router, shutdown: CancellationToken) -> std::io::Result<()> {
    axum::serve(listener, router).with_graceful_shutdown(shutdown.cancelled_owned()).await
}
