//! gRPC scaffolding: server reflection (so `grpcurl` needs no proto files), health, and
//! serving on a bound listener until shutdown.

use tokio::net::TcpListener;
use tokio_stream::wrappers::TcpListenerStream;
use tokio_util::sync::CancellationToken;
use tonic::transport::server::Router;

/// Returns the reflection service describing every chatvault API.
pub fn reflection_service() -> tonic_reflection::server::v1::ServerReflectionServer<impl tonic_reflection::server::v1::ServerReflection> {
    tonic_reflection::server::Builder::configure()
        .register_encoded_file_descriptor_set(chatvault_proto::FILE_DESCRIPTOR_SET)
        .register_encoded_file_descriptor_set(tonic_health::pb::FILE_DESCRIPTOR_SET)
        .build_v1()
        .expect("the compiled descriptor set is valid")
}

/// Serves `router` on `listener` until `shutdown` is cancelled; in-flight calls finish first.
pub async fn serve_grpc(listener: TcpListener, router: Router, shutdown: CancellationToken) -> Result<(), tonic::transport::Error> {
    router
        .serve_with_incoming_shutdown(TcpListenerStream::new(listener), shutdown.cancelled_owned())
        .await
}

/// A gRPC router behind the token-checking [`crate::auth::AuthLayer`].
pub type AuthenticatedRouter = Router<tower_layer::Stack<crate::auth::AuthLayer, tower_layer::Identity>>;

/// Returns a server builder whose every service sits behind `auth`'s token check (health,
/// reflection, register and log-in excepted).
pub fn authenticated_server(auth: &crate::auth::AuthConfig) -> tonic::transport::Server<tower_layer::Stack<crate::auth::AuthLayer, tower_layer::Identity>> {
    tonic::transport::Server::builder().layer(auth.grpc_layer())
}

/// Serves an [`AuthenticatedRouter`] on `listener` until `shutdown` is cancelled.
pub async fn serve_grpc_authenticated(listener: TcpListener, router: AuthenticatedRouter, shutdown: CancellationToken) -> Result<(), tonic::transport::Error> {
    router
        .serve_with_incoming_shutdown(TcpListenerStream::new(listener), shutdown.cancelled_owned())
        .await
}
