//! `chatvault authors top|show`: Telegram authors and their message counts.

use chatvault_proto::common::v1::ConsistencyToken;
use chatvault_proto::users::v1::{AuthorStatsRequest, TopAuthorsRequest};
use serde_json::json;

use super::Endpoints;
use crate::output::{format_unix, outln};

#[derive(Debug, clap::Args)]
pub(crate) struct AuthorsArgs {
    #[command(subcommand)]
    command: AuthorsCommand,
}

#[derive(Debug, clap::Subcommand)]
enum AuthorsCommand {
    /// The chat's authors with the most messages.
    Top {
        /// The chat id; negative ids (-1001234567890) need no `--`.
        #[arg(allow_negative_numbers = true)]
        chat_id: i64,
        /// How many authors.
        #[arg(short = 'n', long, default_value_t = 10)]
        limit: u32,
        /// Wait until the import that returned this consistency token is counted.
        #[arg(long)]
        after: Option<String>,
        /// Whose archive of the chat to count, when several are visible: a username.
        /// Default: your own.
        #[arg(long)]
        owner: Option<String>,
    },
    /// One author: names seen, first and last message, counts per chat.
    Show {
        /// Like user42, or name:Ann Lee for authors known only by name.
        author_id: String,
        #[arg(long)]
        after: Option<String>,
    },
}

pub(crate) async fn run(endpoints: &Endpoints, args: AuthorsArgs, json: bool) -> anyhow::Result<()> {
    let mut client = endpoints.users().await?;
    match args.command {
        AuthorsCommand::Top { chat_id, limit, after, owner } => {
            let authors = client
                .top_authors(TopAuthorsRequest { chat_id, limit, consistency_token: after.map(|value| ConsistencyToken { value }), owner })
                .await?
                .into_inner()
                .authors;
            if json {
                let rows: Vec<_> = authors
                    .iter()
                    .map(|author| json!({ "author_id": author.author_id, "name": author.name, "messages": author.message_count, "first_message_unix": author.first_message_unix, "last_message_unix": author.last_message_unix }))
                    .collect();
                crate::output::print_json(&serde_json::Value::Array(rows));
                return Ok(());
            }
            outln!("{:>9}  {:<20}  {:<19}  NAME", "MESSAGES", "AUTHOR", "LAST MESSAGE (UTC)");
            for author in authors {
                outln!(
                    "{:>9}  {:<20}  {:<19}  {}",
                    author.message_count,
                    author.author_id,
                    author.last_message_unix.map(format_unix).unwrap_or_default(),
                    author.name.unwrap_or_else(|| "(no name: deleted account)".to_owned())
                );
            }
        }
        AuthorsCommand::Show { author_id, after } => {
            let stats = client
                .author_stats(AuthorStatsRequest { author_id, consistency_token: after.map(|value| ConsistencyToken { value }) })
                .await?
                .into_inner();
            if json {
                let chats: Vec<_> = stats.chats.iter().map(|chat| json!({ "chat_id": chat.chat_id, "messages": chat.message_count })).collect();
                crate::output::print_json(&json!({
                    "author_id": stats.author_id, "names": stats.names, "messages": stats.total_messages,
                    "first_message_unix": stats.first_message_unix, "last_message_unix": stats.last_message_unix, "chats": chats,
                }));
                return Ok(());
            }
            outln!("author {}: {} messages", stats.author_id, stats.total_messages);
            outln!("names: {}", if stats.names.is_empty() { "(none)".to_owned() } else { stats.names.join(", ") });
            if let (Some(first), Some(last)) = (stats.first_message_unix, stats.last_message_unix) {
                outln!("from {} to {} (UTC)", format_unix(first), format_unix(last));
            }
            for chat in stats.chats {
                outln!("  chat {:>14}: {} messages", chat.chat_id, chat.message_count);
            }
        }
    }
    Ok(())
}
