//! The backup service: backups to CSV and Parquet, and their restore.

use anyhow::Context;
use chatvault_backup::{App, DEFAULT_PORTS, SERVICE_NAME};
use chatvault_common::config::ServiceConfig;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let config = ServiceConfig::from_process_env(SERVICE_NAME, DEFAULT_PORTS).context("reading configuration")?;
    let _telemetry = chatvault_common::telemetry::init_telemetry(SERVICE_NAME, &config.telemetry)?;
    let shutdown = chatvault_common::shutdown::cancel_on_signal();
    let app = App::build(config).await.context("starting the backup service")?;
    tracing::info!(grpc = %app.grpc_addr(), http = %app.http_addr(), "backup ready");
    match app.run_until_stopped(shutdown).await {
        Ok(()) => {
            tracing::info!("backup stopped");
            Ok(())
        }
        Err(error) => {
            tracing::error!(error = ?error, "backup failed");
            Err(error.into())
        }
    }
}
