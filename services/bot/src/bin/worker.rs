//! A storage worker of the Telegram bot: run as many as the load needs.

use anyhow::Context;
use chatvault_bot::settings::BotSettings;
use chatvault_bot::{WorkerApp, WORKER_DEFAULT_PORTS, WORKER_SERVICE_NAME};
use chatvault_common::config::ServiceConfig;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    chatvault_bot::install_crypto_provider();
    let config = ServiceConfig::from_process_env(WORKER_SERVICE_NAME, WORKER_DEFAULT_PORTS).context("reading configuration")?;
    let settings = BotSettings::from_process_env().context("reading the bot's settings")?;
    let _telemetry = chatvault_common::telemetry::init_telemetry(WORKER_SERVICE_NAME, &config.telemetry)?;
    let shutdown = chatvault_common::shutdown::cancel_on_signal();
    let app = WorkerApp::build(config, settings).await.context("starting the storage worker")?;
    tracing::info!(grpc = %app.grpc_addr(), http = %app.http_addr(), "storage worker ready");
    app.run_until_stopped(shutdown).await.inspect_err(|error| tracing::error!(error = ?error, "storage worker failed"))?;
    tracing::info!("storage worker stopped");
    Ok(())
}
