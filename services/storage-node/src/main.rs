//! A storage node: keeps file parts on its local disk and serves them over gRPC.

use anyhow::Context;
use chatvault_storage_node::{App, NodeConfig, SERVICE_NAME};

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let config = NodeConfig::from_process_env().context("reading configuration")?;
    let _telemetry = chatvault_common::telemetry::init_telemetry(SERVICE_NAME, &config.service.telemetry)?;
    let shutdown = chatvault_common::shutdown::cancel_on_signal();
    let app = App::build(config).await.context("starting the storage node")?;
    tracing::info!(node_id = %app.node_id(), grpc = %app.grpc_addr(), http = %app.http_addr(), "storage node ready");
    match app.run_until_stopped(shutdown).await {
        Ok(()) => {
            tracing::info!("storage node stopped");
            Ok(())
        }
        Err(error) => {
            tracing::error!(error = ?error, "storage node failed");
            Err(error.into())
        }
    }
}
