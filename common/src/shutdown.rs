//! Turns SIGINT and SIGTERM into the cancellation of one token that every task watches.

use tokio_util::sync::CancellationToken;

/// Returns a token cancelled on the first SIGINT or SIGTERM.
pub fn cancel_on_signal() -> CancellationToken {
    let token = CancellationToken::new();
    let cancelled_by_signal = token.clone();
    tokio::spawn(async move {
        let interrupt = tokio::signal::ctrl_c();
        #[cfg(unix)]
        let terminate = async {
            match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
                Ok(mut signal) => {
                    signal.recv().await;
                }
                Err(error) => {
                    tracing::warn!(%error, "cannot listen for SIGTERM");
                    std::future::pending::<()>().await;
                }
            }
        };
        #[cfg(not(unix))]
        let terminate = std::future::pending::<()>();
        tokio::select! {
            _ = interrupt => tracing::info!("SIGINT received, shutting down"),
            () = terminate => tracing::info!("SIGTERM received, shutting down"),
        }
        cancelled_by_signal.cancel();
    });
    token
}
