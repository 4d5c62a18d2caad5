//! `chatvault messages <chat-id>`: shows a chat's messages, page after page.

use anyhow::Context;
use chatvault_proto::storage::v1::{GetMessagesRequest, GetThreadRequest, StoredMessage};
use serde_json::json;

use super::Endpoints;
use crate::error_code::invalid_argument;
use crate::output::{format_unix, outln};

#[derive(Debug, clap::Args)]
pub(crate) struct MessagesArgs {
    /// The chat id (see `chatvault chats`); supergroup and channel ids are negative, like -1001234567890.
    #[arg(allow_negative_numbers = true)]
    chat_id: i64,
    /// Show at most this many messages.
    #[arg(long, default_value_t = 100)]
    limit: u64,
    /// Only messages sent at or after this date (YYYY-MM-DD or RFC 3339).
    #[arg(long)]
    since: Option<String>,
    /// Only messages sent before this date (YYYY-MM-DD or RFC 3339).
    #[arg(long)]
    until: Option<String>,
    /// Only messages of this author: an id like user42, or a display name.
    #[arg(long)]
    author: Option<String>,
    /// Full-text search (Russian and English): words, "a phrase", -excluded, or OR between alternatives.
    #[arg(long)]
    search: Option<String>,
    /// Show the reply thread of this message instead of a page of messages.
    #[arg(long, conflicts_with_all = ["author", "search", "since", "until"])]
    thread: Option<i64>,
    /// Wait until the import that returned this consistency token is visible.
    #[arg(long)]
    after: Option<String>,
    /// Whose archive of the chat to read, when several are visible (your own, ones shared
    /// with you; admins see all): a username. Default: your own.
    #[arg(long)]
    owner: Option<String>,
}

pub(crate) async fn run(endpoints: &Endpoints, args: MessagesArgs, json: bool) -> anyhow::Result<()> {
    let since_unix = args.since.as_deref().map(parse_date).transpose().context("--since")?;
    let until_unix = args.until.as_deref().map(parse_date).transpose().context("--until")?;
    let mut client = endpoints.storage().await?;
    let mut page_token = String::new();
    let mut shown = 0u64;
    let consistency_token = args.after.map(|value| chatvault_proto::common::v1::ConsistencyToken { value });
    if let Some(message_id) = args.thread {
        let thread = client
            .get_thread(GetThreadRequest { chat_id: args.chat_id, message_id, consistency_token, owner: args.owner.clone() })
            .await?
            .into_inner();
        for message in thread.messages.iter().take(args.limit as usize) {
            print_message(message, json);
        }
        return Ok(());
    }
    while shown < args.limit {
        let page_size = (args.limit - shown).min(1000) as u32;
        let page = client
            .get_messages(GetMessagesRequest {
                chat_id: args.chat_id,
                limit: page_size,
                page_token: page_token.clone(),
                since_unix,
                until_unix,
                consistency_token: consistency_token.clone(),
                author: args.author.clone(),
                text_query: args.search.clone(),
                owner: args.owner.clone(),
                // Pages follow `page_token`; the keyset cursors serve readers that browse both ways.
                after_message_id: None,
                before_message_id: None,
            })
            .await?
            .into_inner();
        for message in &page.messages {
            shown += 1;
            print_message(message, json);
        }
        if page.next_page_token.is_empty() || page.messages.is_empty() {
            break;
        }
        page_token = page.next_page_token;
    }
    Ok(())
}

fn print_message(message: &StoredMessage, json: bool) {
    if json {
        crate::output::print_json(&json!({
            "chat_id": message.chat_id,
            "message_id": message.message_id,
            "kind": kind_name(message.kind),
            "date_unix": message.date_unix,
            "edited_unix": message.edited_unix,
            "from": message.from_name,
            "from_id": message.from_id,
            "reply_to_message_id": message.reply_to_message_id,
            "text": message.text,
            "action": message.action,
            "actor": message.actor_name,
            "media_kind": message.media.as_ref().map(|media| media.kind.clone()),
            "media_path": message.media.as_ref().and_then(|media| media.path.clone()),
            "file_id": message.media.as_ref().and_then(|media| media.file_id.clone()),
        }));
        return;
    }
    let date = message.date_unix.map(format_unix).unwrap_or_else(|| "(no date)".to_owned());
    let who = message.from_name.clone().or_else(|| message.actor_name.clone()).unwrap_or_else(|| {
        // Telegram writes a null name for deleted accounts; their id survives.
        if message.from_id.is_some() {
            "Deleted Account".to_owned()
        } else {
            "(unknown)".to_owned()
        }
    });
    let body = match (&message.action, &message.media) {
        (Some(action), _) => format!("[{action}] {}", message.text),
        (None, Some(media)) if message.text.is_empty() => format!("[{}]", media.kind),
        (None, Some(media)) => format!("[{}] {}", media.kind, message.text),
        (None, None) => message.text.clone(),
    };
    let reply = message.reply_to_message_id.map(|id| format!(" (reply to #{id})")).unwrap_or_default();
    outln!("#{} {date} {who}{reply}: {body}", message.message_id);
}

fn kind_name(kind: i32) -> &'static str {
    match chatvault_proto::chat::v1::MessageKind::try_from(kind) {
        Ok(chatvault_proto::chat::v1::MessageKind::Regular) => "message",
        Ok(chatvault_proto::chat::v1::MessageKind::Service) => "service",
        Ok(chatvault_proto::chat::v1::MessageKind::Unsupported) => "unsupported",
        _ => "unknown",
    }
}

/// Parses `YYYY-MM-DD` (midnight UTC) or an RFC 3339 date-time into Unix seconds.
fn parse_date(text: &str) -> anyhow::Result<i64> {
    if let Ok(date_time) = chrono::DateTime::parse_from_rfc3339(text) {
        return Ok(date_time.timestamp());
    }
    let date = chrono::NaiveDate::parse_from_str(text, "%Y-%m-%d")
        .map_err(|_| invalid_argument(format!("{text:?} is neither YYYY-MM-DD nor an RFC 3339 date-time")))?;
    Ok(date.and_hms_opt(0, 0, 0).map(|midnight| midnight.and_utc().timestamp()).unwrap_or_default())
}

#[cfg(test)]
mod tests {
    use super::parse_date;

    #[test]
    fn dates_parse_as_utc() {
        assert_eq!(parse_date("2026-11-22").expect("date"), 1_795_305_600);
        assert_eq!(parse_date("2026-11-22T03:00:00+03:00").expect("rfc3339"), 1_795_305_600);
        assert!(parse_date("22.11.2026").is_err());
    }
}
