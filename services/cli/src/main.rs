//! `chatvault`, the command-line client: every call of the platform, with progress bars on
//! long work in a terminal and `--json` output for scripts. Exits non-zero on failure.

mod commands;
mod output;

use clap::{Parser, Subcommand};

/// The chatvault command-line client.
#[derive(Debug, Parser)]
#[command(name = "chatvault", version, about = "Archive Telegram chats and files in chatvault")]
struct Cli {
    /// Print machine-readable JSON instead of text.
    #[arg(long, global = true)]
    json: bool,
    #[command(flatten)]
    endpoints: commands::Endpoints,
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Import a Telegram Desktop JSON export (its folder or result.json) readable by the ingest server.
    Import(commands::import::ImportArgs),
    /// List archived chats.
    Chats(commands::chats::ChatsArgs),
    /// Show a chat's messages.
    Messages(commands::messages::MessagesArgs),
    /// Telegram authors and their message counts.
    Authors(commands::authors::AuthorsArgs),
    /// Store, list, download, delete and share files.
    Files(commands::files::FilesArgs),
    /// Register storage nodes and show their fill.
    Nodes(commands::nodes::NodesArgs),
    /// Inspect Kafka topics.
    Topics(commands::topics::TopicsArgs),
    /// Accounts: register, set roles, create the first admin.
    Users(commands::accounts::UsersArgs),
    /// Log in; stores the tokens in the config folder (mode 0600).
    Login(commands::accounts::LoginArgs),
    /// Log out: revokes the refresh token and forgets the stored tokens.
    Logout,
    /// Show the logged-in account.
    Whoami,
    /// Change the password (logs out every other session).
    Passwd(commands::accounts::PasswdArgs),
    /// The audit trail: who did what, when, in which request.
    Audit(commands::audit::AuditArgs),
    /// Back up the archive as CSV or Parquet, list, verify and restore backups.
    Backup(commands::backup::BackupArgs),
}

#[tokio::main]
async fn main() -> std::process::ExitCode {
    let cli = Cli::parse();
    let json = cli.json;
    let outcome = match cli.command {
        Command::Import(args) => commands::import::run(&cli.endpoints, args, json).await,
        Command::Chats(args) => commands::chats::run(&cli.endpoints, args, json).await,
        Command::Messages(args) => commands::messages::run(&cli.endpoints, args, json).await,
        Command::Authors(args) => commands::authors::run(&cli.endpoints, args, json).await,
        Command::Files(args) => commands::files::run(&cli.endpoints, args, json).await,
        Command::Nodes(args) => commands::nodes::run(&cli.endpoints, args, json).await,
        Command::Topics(args) => commands::topics::run(&cli.endpoints, args, json).await,
        Command::Users(args) => commands::accounts::run_users(&cli.endpoints, args, json).await,
        Command::Login(args) => commands::accounts::run_login(&cli.endpoints, args, json).await,
        Command::Logout => commands::accounts::run_logout(&cli.endpoints, json).await,
        Command::Whoami => commands::accounts::run_whoami(&cli.endpoints, json).await,
        Command::Passwd(args) => commands::accounts::run_passwd(&cli.endpoints, args, json).await,
        Command::Audit(args) => commands::audit::run(&cli.endpoints, args, json).await,
        Command::Backup(args) => commands::backup::run(&cli.endpoints, args, json).await,
    };
    match outcome {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(error) => {
            output::print_error(&error, json);
            std::process::ExitCode::FAILURE
        }
    }
}
