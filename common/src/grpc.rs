//! gRPC scaffolding: the set of services one port serves ([`GrpcServices`]), with health
//! and server reflection of exactly those services (so `grpcurl` needs no proto files and
//! lists only what the port answers), a clear UNIMPLEMENTED for any other service, a
//! metrics layer that counts every call, and serving on a bound listener until shutdown.

use std::convert::Infallible;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Instant;

use axum::http::{Request, Response};
use http_body::{Body as HttpBody, Frame, SizeHint};
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;
use tonic::server::NamedService;
use tonic::service::{Routes, RoutesBuilder};
use tonic::transport::server::TcpIncoming;

use crate::http::{GRPC_REQUESTS, GRPC_REQUEST_SECONDS};

/// Returns the reflection service advertising `service_names` (all chatvault APIs when
/// empty); every message type stays resolvable.
pub fn reflection_service_of(
    service_names: &[&str],
) -> tonic_reflection::server::v1::ServerReflectionServer<impl tonic_reflection::server::v1::ServerReflection> {
    let mut builder = tonic_reflection::server::Builder::configure()
        .register_encoded_file_descriptor_set(chatvault_proto::FILE_DESCRIPTOR_SET)
        .register_encoded_file_descriptor_set(tonic_health::pb::FILE_DESCRIPTOR_SET);
    if !service_names.is_empty() {
        for name in service_names {
            builder = builder.with_service_name(*name);
        }
        builder = builder.with_service_name("grpc.health.v1.Health");
    }
    builder.build_v1().expect("the compiled descriptor set is valid")
}

/// The services one gRPC port serves. [`GrpcServices::into_routes`] adds health (each
/// service SERVING), reflection of these services only, and an UNIMPLEMENTED answer that
/// names them for a call to any other service.
#[derive(Debug, Default)]
pub struct GrpcServices {
    routes: RoutesBuilder,
    names: Vec<&'static str>,
}

impl GrpcServices {
    /// Returns an empty set.
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds `service`.
    pub fn add_service<S>(mut self, service: S) -> Self
    where
        S: tower_service::Service<Request<tonic::body::Body>, Error = Infallible> + NamedService + Clone + Send + Sync + 'static,
        S::Response: axum::response::IntoResponse,
        S::Future: Send + 'static,
    {
        self.names.push(S::NAME);
        self.routes.add_service(service);
        self
    }

    /// Returns the full names of the services added, as `chatvault.storage.v1.StorageService`.
    pub fn names(&self) -> &[&'static str] {
        &self.names
    }

    /// Returns the routes: the services, health, reflection and the fallback.
    pub async fn into_routes(self) -> Routes {
        let (health_reporter, health_service) = tonic_health::server::health_reporter();
        for name in &self.names {
            health_reporter.set_service_status(*name, tonic_health::ServingStatus::Serving).await;
        }
        let mut routes = self.routes;
        routes.add_service(health_service);
        routes.add_service(reflection_service_of(&self.names));
        let mut routes = routes.routes();
        let served: Arc<str> = Arc::from(self.names.join(", "));
        let router = std::mem::take(routes.axum_router_mut());
        *routes.axum_router_mut() = router.fallback(move |request: axum::extract::Request| {
            let served = Arc::clone(&served);
            async move { unknown_service_response(request.uri().path(), &served) }
        });
        routes
    }
}

/// The answer to a call of a service this port does not serve: UNIMPLEMENTED with a
/// message a person can act on (grpcurl prints it), instead of an empty status.
fn unknown_service_response(path: &str, served: &str) -> axum::response::Response {
    let service = path.trim_start_matches('/').split('/').next().unwrap_or_default();
    tonic::Status::unimplemented(format!("this port does not serve {service}; it serves {served} (see the README for which service listens where)"))
        .into_http()
}

/// The largest HTTP/2 DATA frame a gRPC server or node client of the platform accepts.
///
/// HTTP/2 lets the receiver choose the frame size its peer may send, and the default is
/// 16 KiB. The h2 crate writes one DATA frame per `writev`, so at 16 KiB a 1 MiB file
/// block crosses a connection as 64 frames and 64 system calls (with the loopback receive
/// path running inside each of them); 1 MiB frames carry it in one or two. Memory stays
/// bounded by the flow-control windows, which limit the unread bytes whatever the framing.
pub const MAX_FRAME_BYTES: u32 = 1 << 20;

/// Returns `endpoint` set up for moving file bytes: `TCP_NODELAY`, [`MAX_FRAME_BYTES`]
/// frames, and flow-control windows of 4 MiB per stream and 32 MiB per connection, so a
/// stream is never held back by the default 64 KiB window while its peer is ready. Every
/// client that uploads or downloads files (node clients, the CLI) connects this way.
pub fn bulk_transfer_endpoint(endpoint: tonic::transport::Endpoint) -> tonic::transport::Endpoint {
    endpoint
        .tcp_nodelay(true)
        .initial_stream_window_size(Some(4 << 20))
        .initial_connection_window_size(Some(32 << 20))
        .max_frame_size(MAX_FRAME_BYTES)
}

/// Serves `routes` on `listener` behind `auth` (and the metrics layer, outermost) until
/// `shutdown` is cancelled; in-flight calls finish first. `transfer_windows` sets the
/// HTTP/2 stream and connection windows in bytes (`None`: tonic's defaults). Peers may send
/// frames of up to [`MAX_FRAME_BYTES`].
///
/// Accepted connections get `TCP_NODELAY`. Tonic applies its own `tcp_nodelay` only to
/// listeners it binds itself, and with Nagle's algorithm on, the small frames a receiver
/// answers with (WINDOW_UPDATE, the end of a response) wait for the peer's delayed ACK
/// (up to 40 ms) whenever earlier bytes are unacknowledged: a stream of file blocks then
/// stalls at every flow-control window.
pub async fn serve_routes(
    listener: TcpListener,
    routes: Routes,
    auth: crate::auth::AuthLayer,
    transfer_windows: Option<(u32, u32)>,
    shutdown: CancellationToken,
) -> Result<(), tonic::transport::Error> {
    let (stream_window, connection_window) = match transfer_windows {
        Some((stream, connection)) => (Some(stream), Some(connection)),
        None => (None, None),
    };
    tonic::transport::Server::builder()
        .initial_stream_window_size(stream_window)
        .initial_connection_window_size(connection_window)
        .max_frame_size(MAX_FRAME_BYTES)
        .layer(GrpcMetricsLayer)
        .layer(auth)
        .add_routes(routes)
        .serve_with_incoming_shutdown(TcpIncoming::from(listener).with_nodelay(Some(true)), shutdown.cancelled_owned())
        .await
}

/// Counts every gRPC call in `chatvault_grpc_requests_total{service,method,code}` and
/// times it in `chatvault_grpc_request_seconds{service,method}`, from the request to the
/// end of the response body (a streaming call is timed whole). The code is the
/// `grpc-status` of the response headers (trailers-only answers: errors) or trailers.
#[derive(Clone, Copy, Debug, Default)]
pub struct GrpcMetricsLayer;

impl<S> tower_layer::Layer<S> for GrpcMetricsLayer {
    type Service = GrpcMetrics<S>;

    fn layer(&self, inner: S) -> Self::Service {
        GrpcMetrics { inner }
    }
}

/// The service of [`GrpcMetricsLayer`].
#[derive(Clone, Debug)]
pub struct GrpcMetrics<S> {
    inner: S,
}

/// Returns the gRPC service and method of a request path `/package.Service/Method`.
fn service_and_method(path: &str) -> (String, String) {
    let mut parts = path.trim_start_matches('/').splitn(2, '/');
    let service = parts.next().unwrap_or_default();
    let method = parts.next().unwrap_or_default();
    (service.to_owned(), method.to_owned())
}

impl<S, RequestBody, ResponseBody> tower_service::Service<Request<RequestBody>> for GrpcMetrics<S>
where
    S: tower_service::Service<Request<RequestBody>, Response = Response<ResponseBody>>,
    S::Future: Send + 'static,
    S::Error: Send + 'static,
    ResponseBody: HttpBody + Send + 'static,
{
    type Response = Response<TimedBody<ResponseBody>>;
    type Error = S::Error;
    type Future = Pin<Box<dyn std::future::Future<Output = Result<Self::Response, Self::Error>> + Send>>;

    fn poll_ready(&mut self, context: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(context)
    }

    fn call(&mut self, request: Request<RequestBody>) -> Self::Future {
        let (service, method) = service_and_method(request.uri().path());
        let started = Instant::now();
        let response = self.inner.call(request);
        Box::pin(async move {
            let response = response.await?;
            let code_in_headers = response.headers().get("grpc-status").and_then(|value| value.to_str().ok()).map(str::to_owned);
            let mut call = CallRecord { service, method, started, code: code_in_headers, recorded: false };
            if call.code.is_some() {
                // A trailers-only answer (every error tonic returns before a body): done.
                call.record();
            }
            Ok(response.map(|body| TimedBody { inner: body, call }))
        })
    }
}

struct CallRecord {
    service: String,
    method: String,
    started: Instant,
    code: Option<String>,
    recorded: bool,
}

impl CallRecord {
    fn record(&mut self) {
        if self.recorded {
            return;
        }
        self.recorded = true;
        let code = self.code.as_deref().map(code_name).unwrap_or("OK");
        GRPC_REQUESTS.with_label_values(&[&self.service, &self.method, code]).inc();
        GRPC_REQUEST_SECONDS.with_label_values(&[&self.service, &self.method]).observe(self.started.elapsed().as_secs_f64());
    }
}

impl Drop for CallRecord {
    fn drop(&mut self) {
        // A body dropped before its end (the client went away) still counts, as CANCELLED
        // unless a code was seen.
        if !self.recorded && self.code.is_none() {
            self.code = Some((tonic::Code::Cancelled as i32).to_string());
        }
        self.record();
    }
}

/// Returns the canonical name of a numeric `grpc-status` value.
fn code_name(value: &str) -> &'static str {
    match value.trim().parse::<i32>() {
        Ok(number) => canonical_code_name(tonic::Code::from_i32(number)),
        Err(_) => "UNKNOWN",
    }
}

/// Returns the canonical name of `code`, as `NOT_FOUND` (gRPC's status codes document).
pub fn canonical_code_name(code: tonic::Code) -> &'static str {
    match code {
        tonic::Code::Ok => "OK",
        tonic::Code::Cancelled => "CANCELLED",
        tonic::Code::Unknown => "UNKNOWN",
        tonic::Code::InvalidArgument => "INVALID_ARGUMENT",
        tonic::Code::DeadlineExceeded => "DEADLINE_EXCEEDED",
        tonic::Code::NotFound => "NOT_FOUND",
        tonic::Code::AlreadyExists => "ALREADY_EXISTS",
        tonic::Code::PermissionDenied => "PERMISSION_DENIED",
        tonic::Code::ResourceExhausted => "RESOURCE_EXHAUSTED",
        tonic::Code::FailedPrecondition => "FAILED_PRECONDITION",
        tonic::Code::Aborted => "ABORTED",
        tonic::Code::OutOfRange => "OUT_OF_RANGE",
        tonic::Code::Unimplemented => "UNIMPLEMENTED",
        tonic::Code::Internal => "INTERNAL",
        tonic::Code::Unavailable => "UNAVAILABLE",
        tonic::Code::DataLoss => "DATA_LOSS",
        tonic::Code::Unauthenticated => "UNAUTHENTICATED",
    }
}

pin_project_lite::pin_project! {
    /// A response body that records its call when the trailers pass or the body ends.
    pub struct TimedBody<B> {
        #[pin]
        inner: B,
        call: CallRecord,
    }
}

impl<B: HttpBody> HttpBody for TimedBody<B> {
    type Data = B::Data;
    type Error = B::Error;

    fn poll_frame(self: Pin<&mut Self>, context: &mut Context<'_>) -> Poll<Option<Result<Frame<Self::Data>, Self::Error>>> {
        let this = self.project();
        let polled = this.inner.poll_frame(context);
        match &polled {
            Poll::Ready(Some(Ok(frame))) => {
                if let Some(code) = frame.trailers_ref().and_then(|trailers| trailers.get("grpc-status")).and_then(|value| value.to_str().ok()) {
                    this.call.code = Some(code.to_owned());
                    this.call.record();
                }
            }
            Poll::Ready(Some(Err(_))) => {
                this.call.code.get_or_insert_with(|| (tonic::Code::Internal as i32).to_string());
                this.call.record();
            }
            Poll::Ready(None) => {
                this.call.code.get_or_insert_with(|| "0".to_owned());
                this.call.record();
            }
            Poll::Pending => {}
        }
        polled
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_split_into_service_and_method() {
        assert_eq!(
            service_and_method("/chatvault.storage.v1.StorageService/GetMessages"),
            ("chatvault.storage.v1.StorageService".to_owned(), "GetMessages".to_owned())
        );
        assert_eq!(service_and_method("/"), (String::new(), String::new()));
    }

    #[test]
    fn status_codes_have_their_canonical_names() {
        assert_eq!(code_name("0"), "OK");
        assert_eq!(code_name("5"), "NOT_FOUND");
        assert_eq!(code_name("16"), "UNAUTHENTICATED");
        assert_eq!(code_name("x"), "UNKNOWN");
    }
}
