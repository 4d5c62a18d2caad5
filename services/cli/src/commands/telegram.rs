//! `chatvault telegram`: link the logged-in account to a Telegram account through the bot.

use chatvault_proto::bot::v1::{CreateLinkCodeRequest, GetLinkRequest, UnlinkRequest};
use serde_json::json;

use super::Endpoints;
use crate::output::outln;

#[derive(Debug, clap::Args)]
pub(crate) struct TelegramArgs {
    #[command(subcommand)]
    command: TelegramCommand,
}

#[derive(Debug, clap::Subcommand)]
enum TelegramCommand {
    /// Get a one-time code (valid 10 minutes): send `/start <code>` to the bot from Telegram.
    Link,
    /// Show whether the account is linked, its time zone, where files go and Drive's state.
    Status,
    /// End the link (as /unlink in the bot); files already stored stay.
    Unlink,
}

pub(crate) async fn run(endpoints: &Endpoints, args: TelegramArgs, json: bool) -> anyhow::Result<()> {
    let mut client = endpoints.telegram().await?;
    match args.command {
        TelegramCommand::Link => {
            let code = client.create_link_code(CreateLinkCodeRequest {}).await?.into_inner();
            let expires = chrono::DateTime::from_timestamp(code.expires_at_unix, 0).map(|time| time.to_rfc3339()).unwrap_or_default();
            if json {
                crate::output::print_json(&json!({ "code": code.code, "expires_at": expires, "deep_link": code.deep_link }));
            } else {
                outln!("Send this to the chatvault bot in Telegram within 10 minutes:");
                outln!("  /start {}", code.code);
                if !code.deep_link.is_empty() {
                    outln!("or open {}", code.deep_link);
                }
            }
        }
        TelegramCommand::Status => {
            let link = client.get_link(GetLinkRequest {}).await?.into_inner();
            let linked_at = chrono::DateTime::from_timestamp(link.linked_at_unix, 0).map(|time| time.to_rfc3339()).unwrap_or_default();
            if json {
                crate::output::print_json(&json!({
                    "linked": link.linked,
                    "telegram_user_id": link.telegram_user_id,
                    "telegram_username": link.telegram_username,
                    "linked_at": if link.linked { linked_at.clone() } else { String::new() },
                    "time_zone": link.time_zone,
                    "store_target": link.store_target,
                    "drive_linked": link.drive_linked,
                    "drive_needs_relink": link.drive_needs_relink,
                }));
            } else if !link.linked {
                outln!("not linked: run `chatvault telegram link` and send the code to the bot");
            } else {
                let who = if link.telegram_username.is_empty() { link.telegram_user_id.to_string() } else { format!("@{}", link.telegram_username) };
                outln!("linked to Telegram {who} since {linked_at}");
                outln!("time zone: {}", link.time_zone);
                outln!("files go to: {}", link.store_target);
                let drive = match (link.drive_linked, link.drive_needs_relink) {
                    (false, _) => "not linked (send /drive to the bot)",
                    (true, true) => "refused by Google: send /drive to the bot again",
                    (true, false) => "linked",
                };
                outln!("Google Drive: {drive}");
            }
        }
        TelegramCommand::Unlink => {
            client.unlink(UnlinkRequest {}).await?;
            if json {
                crate::output::print_json(&json!({ "unlinked": true }));
            } else {
                outln!("unlinked from Telegram");
            }
        }
    }
    Ok(())
}
