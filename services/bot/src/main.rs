//! The Telegram bot service.

use anyhow::Context;
use chatvault_bot::settings::BotSettings;
use chatvault_bot::{App, DEFAULT_PORTS, SERVICE_NAME};
use chatvault_common::config::ServiceConfig;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    chatvault_bot::install_crypto_provider();
    let config = ServiceConfig::from_process_env(SERVICE_NAME, DEFAULT_PORTS).context("reading configuration")?;
    let settings = BotSettings::from_process_env().context("reading the bot's settings")?;
    let _telemetry = chatvault_common::telemetry::init_telemetry(SERVICE_NAME, &config.telemetry)?;
    let shutdown = chatvault_common::shutdown::cancel_on_signal();
    let app = App::build(config, settings).await.context("starting the bot service")?;
    tracing::info!(grpc = %app.grpc_addr(), http = %app.http_addr(), "bot ready");
    app.run_until_stopped(shutdown).await.inspect_err(|error| tracing::error!(error = ?error, "bot failed"))?;
    tracing::info!("bot stopped");
    Ok(())
}
