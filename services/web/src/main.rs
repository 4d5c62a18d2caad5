//! The web service: chatvault in a browser.

use anyhow::Context;
use chatvault_common::config::ServiceConfig;
use chatvault_web::{App, DEFAULT_PORTS, SERVICE_NAME};

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let config = ServiceConfig::from_process_env(SERVICE_NAME, DEFAULT_PORTS).context("reading configuration")?;
    let _telemetry = chatvault_common::telemetry::init_telemetry(SERVICE_NAME, &config.telemetry)?;
    let shutdown = chatvault_common::shutdown::cancel_on_signal();
    let app = App::build(config).await.context("starting the web service")?;
    tracing::info!(grpc = %app.grpc_addr(), http = %app.http_addr(), "web ready: open http://{}/", app.http_addr());
    app.run_until_stopped(shutdown).await.inspect_err(|error| tracing::error!(error = ?error, "web failed"))?;
    tracing::info!("web stopped");
    Ok(())
}
