//! The ingest service: turns commands (import a Telegram export) into events on Kafka.

use anyhow::Context;
use chatvault_common::config::ServiceConfig;
use chatvault_ingest::{App, DEFAULT_PORTS, SERVICE_NAME};

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let config = ServiceConfig::from_process_env(SERVICE_NAME, DEFAULT_PORTS).context("reading configuration")?;
    let _telemetry = chatvault_common::telemetry::init_telemetry(SERVICE_NAME, &config.telemetry)?;
    let shutdown = chatvault_common::shutdown::cancel_on_signal();
    let app = App::build(config).await.context("starting the ingest service")?;
    tracing::info!(grpc = %app.grpc_addr(), http = %app.http_addr(), "ingest ready");
    match app.run_until_stopped(shutdown).await {
        Ok(()) => {
            tracing::info!("ingest stopped");
            Ok(())
        }
        Err(error) => {
            tracing::error!(error = ?error, "ingest failed");
            Err(error.into())
        }
    }
}
