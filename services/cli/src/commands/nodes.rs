//! `chatvault nodes`: register storage nodes and show their fill and state.

use chatvault_proto::storage::v1::{ListNodesRequest, RegisterNodeRequest};
use serde_json::json;

use super::Endpoints;
use crate::output::outln;

#[derive(Debug, clap::Args)]
pub(crate) struct NodesArgs {
    #[command(subcommand)]
    command: NodesCommand,
}

#[derive(Debug, clap::Subcommand)]
enum NodesCommand {
    /// Register a storage node by its gRPC address (host:port); registering again is harmless.
    Add { address: String },
    /// List every registered node with its fill; unreachable nodes show as down.
    Ls,
}

pub(crate) async fn run(endpoints: &Endpoints, args: NodesArgs, json: bool) -> anyhow::Result<()> {
    let mut client = endpoints.files().await?;
    match args.command {
        NodesCommand::Add { address } => {
            let registered = client.register_node(RegisterNodeRequest { address }).await?.into_inner();
            if json {
                crate::output::print_json(
                    &json!({ "node_id": registered.node_id, "address": registered.address, "newly_registered": registered.newly_registered }),
                );
            } else if registered.newly_registered {
                outln!("node {} registered at {}", registered.node_id, registered.address);
            } else {
                outln!("node {} was already registered at {}", registered.node_id, registered.address);
            }
        }
        NodesCommand::Ls => {
            let nodes = client.list_nodes(ListNodesRequest::default()).await?.into_inner().nodes;
            if json {
                let rows: Vec<_> = nodes
                    .iter()
                    .map(|node| json!({ "node_id": node.node_id, "address": node.address, "state": node.state, "used_bytes": node.used_bytes, "free_bytes": node.free_bytes, "parts": node.part_count, "catalog_bytes": node.catalog_bytes }))
                    .collect();
                crate::output::print_json(&serde_json::Value::Array(rows));
                return Ok(());
            }
            if nodes.is_empty() {
                outln!("no storage nodes registered: `chatvault nodes add <host:port>`");
                return Ok(());
            }
            outln!("{:<38}  {:<21}  {:<5}  {:>14}  {:>14}  {:>8}  FILL", "NODE", "ADDRESS", "STATE", "USED", "FREE", "PARTS");
            for node in nodes {
                let fill = if node.state == "up" && node.used_bytes + node.free_bytes > 0 {
                    format!("{:.2}%", node.used_bytes as f64 * 100.0 / (node.used_bytes + node.free_bytes) as f64)
                } else {
                    format!("{} in catalog", node.catalog_bytes)
                };
                outln!(
                    "{:<38}  {:<21}  {:<5}  {:>14}  {:>14}  {:>8}  {fill}",
                    node.node_id,
                    node.address,
                    node.state,
                    node.used_bytes,
                    node.free_bytes,
                    node.part_count
                );
            }
        }
    }
    Ok(())
}
