//! `chatvault chats`: lists archived chats.

use chatvault_proto::storage::v1::ListChatsRequest;
use serde_json::json;

use super::Endpoints;
use crate::output::{format_unix, outln};

#[derive(Debug, clap::Args)]
pub(crate) struct ChatsArgs {
    /// Wait until the import that returned this consistency token is visible.
    #[arg(long)]
    after: Option<String>,
}

pub(crate) async fn run(endpoints: &Endpoints, args: ChatsArgs, json: bool) -> anyhow::Result<()> {
    let mut client = endpoints.storage().await?;
    let consistency_token = args
        .after
        .map(|value| chatvault_proto::common::v1::ConsistencyToken { value });
    let chats = client
        .list_chats(ListChatsRequest { consistency_token })
        .await?
        .into_inner()
        .chats;
    if json {
        let rows: Vec<_> = chats
            .iter()
            .map(|chat| {
                json!({
                    "chat_id": chat.chat_id,
                    "name": chat.name,
                    "type": chat.chat_type,
                    "messages": chat.message_count,
                    "first_message_unix": chat.first_message_unix,
                    "last_message_unix": chat.last_message_unix,
                    "left": chat.left,
                })
            })
            .collect();
        crate::output::print_json(&serde_json::Value::Array(rows));
        return Ok(());
    }
    if chats.is_empty() {
        outln!("no chats archived yet: `chatvault import <export>` adds one");
        return Ok(());
    }
    outln!(
        "{:>14}  {:>9}  {:<19}  {:<20}  NAME",
        "CHAT ID",
        "MESSAGES",
        "LAST MESSAGE (UTC)",
        "TYPE"
    );
    for chat in chats {
        outln!(
            "{:>14}  {:>9}  {:<19}  {:<20}  {}",
            chat.chat_id,
            chat.message_count,
            chat.last_message_unix.map(format_unix).unwrap_or_default(),
            chat.chat_type,
            chat.name.unwrap_or_else(|| "(no name)".to_owned())
        );
    }
    Ok(())
}
