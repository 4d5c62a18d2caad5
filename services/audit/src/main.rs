//! The audit service: every event and every service log line, queryable.

use anyhow::Context;
use chatvault_audit::{App, DEFAULT_PORTS, SERVICE_NAME};
use chatvault_common::config::ServiceConfig;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let config = ServiceConfig::from_process_env(SERVICE_NAME, DEFAULT_PORTS).context("reading configuration")?;
    let _telemetry = chatvault_common::telemetry::init_telemetry(SERVICE_NAME, &config.telemetry)?;
    let shutdown = chatvault_common::shutdown::cancel_on_signal();
    let app = App::build(config).await.context("starting the audit service")?;
    tracing::info!(grpc = %app.grpc_addr(), http = %app.http_addr(), "audit ready");
    app.run_until_stopped(shutdown).await.inspect_err(|error| tracing::error!(error = ?error, "audit failed"))?;
    tracing::info!("audit stopped");
    Ok(())
}
