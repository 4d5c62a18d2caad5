//! `chatvault chats`: lists the archived chats the caller sees (their own, those shared with
//! them, every chat for an admin), and shares or unshares one of the caller's chats.

use chatvault_proto::common::v1::ConsistencyToken;
use chatvault_proto::storage::v1::{ListChatsRequest, RevokeChatShareRequest, ShareChatRequest};
use serde_json::json;

use super::Endpoints;
use crate::output::{format_unix, outln};

#[derive(Debug, clap::Args)]
pub(crate) struct ChatsArgs {
    #[command(subcommand)]
    command: Option<ChatsCommand>,
    /// Wait until the import (or share) that returned this consistency token is visible.
    #[arg(long, global = true)]
    after: Option<String>,
}

#[derive(Debug, clap::Subcommand)]
enum ChatsCommand {
    /// Share one of your chats with another account: it sees the chat's messages, authors
    /// and search hits until you unshare it.
    Share(ShareArgs),
    /// Take a share back: the account no longer sees the chat.
    Unshare(ShareArgs),
}

#[derive(Debug, clap::Args)]
struct ShareArgs {
    /// The chat id (see `chatvault chats`); negative ids (-1001234567890) need no `--`.
    #[arg(allow_negative_numbers = true)]
    chat_id: i64,
    /// The account (username) to share with.
    username: String,
    /// Whose archive of the chat (admins sharing another account's chat); default: your own.
    #[arg(long)]
    owner: Option<String>,
}

pub(crate) async fn run(endpoints: &Endpoints, args: ChatsArgs, json: bool) -> anyhow::Result<()> {
    let consistency_token = args.after.map(|value| ConsistencyToken { value });
    match args.command {
        None => list(endpoints, consistency_token, json).await,
        Some(ChatsCommand::Share(share)) => {
            let mut client = endpoints.storage().await?;
            let request = ShareChatRequest { chat_id: share.chat_id, owner: share.owner, grantee: share.username, consistency_token };
            let response = client.share_chat(request).await?.into_inner();
            let verb = if response.changed { "shared" } else { "already shared" };
            print_grant(verb, response.chat_id, &response.owner, &response.grantee, response.changed, response.consistency_token, json);
            Ok(())
        }
        Some(ChatsCommand::Unshare(share)) => {
            let mut client = endpoints.storage().await?;
            let request = RevokeChatShareRequest { chat_id: share.chat_id, owner: share.owner, grantee: share.username, consistency_token };
            let response = client.revoke_chat_share(request).await?.into_inner();
            let verb = if response.changed { "unshared" } else { "was not shared" };
            print_grant(verb, response.chat_id, &response.owner, &response.grantee, response.changed, response.consistency_token, json);
            Ok(())
        }
    }
}

fn print_grant(verb: &str, chat_id: i64, owner: &str, grantee: &str, changed: bool, token: Option<ConsistencyToken>, json: bool) {
    let token = token.map(|token| token.value);
    if json {
        crate::output::print_json(&json!({
            "chat_id": chat_id,
            "owner": owner,
            "grantee": grantee,
            "changed": changed,
            "consistency_token": token,
        }));
        return;
    }
    outln!("chat {chat_id} of {owner}: {verb} with {grantee}");
    if let Some(token) = token {
        outln!("consistency token: {token}");
    }
}

async fn list(endpoints: &Endpoints, consistency_token: Option<ConsistencyToken>, json: bool) -> anyhow::Result<()> {
    let mut client = endpoints.storage().await?;
    let chats = client.list_chats(ListChatsRequest { consistency_token }).await?.into_inner().chats;
    if json {
        let rows: Vec<_> = chats
            .iter()
            .map(|chat| {
                json!({
                    "chat_id": chat.chat_id,
                    "owner": chat.owner,
                    "name": chat.name,
                    "type": chat.chat_type,
                    "messages": chat.message_count,
                    "first_message_unix": chat.first_message_unix,
                    "last_message_unix": chat.last_message_unix,
                    "left": chat.left,
                    "shared_with": chat.shared_with,
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
    outln!("{:>14}  {:<16}  {:>9}  {:<19}  {:<20}  NAME", "CHAT ID", "OWNER", "MESSAGES", "LAST MESSAGE (UTC)", "TYPE");
    for chat in chats {
        let shared = if chat.shared_with.is_empty() { String::new() } else { format!("  (shared with {})", chat.shared_with.join(", ")) };
        outln!(
            "{:>14}  {:<16}  {:>9}  {:<19}  {:<20}  {}{shared}",
            chat.chat_id,
            if chat.owner.is_empty() { "(none)" } else { chat.owner.as_str() },
            chat.message_count,
            chat.last_message_unix.map(format_unix).unwrap_or_default(),
            chat.chat_type,
            chat.name.unwrap_or_else(|| "(no name)".to_owned())
        );
    }
    Ok(())
}
