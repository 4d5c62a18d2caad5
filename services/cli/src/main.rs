//! `chatvault`, the command-line client: every call of the platform, with progress bars on
//! long work in a terminal and `--json` output for scripts. Exits non-zero on failure.

mod commands;
mod error_code;
mod output;

use std::ffi::OsString;
use std::process::ExitCode;

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
    /// Import a Telegram Desktop export, JSON or HTML: its folder, a .zip of it, result.json or messages.html.
    ///
    /// Both formats of Telegram Desktop's exports are read, of one chat or of a whole account:
    /// machine-readable JSON (result.json) and HTML (messages.html, messages2.html, ...; an
    /// account export is the folder holding export_results.html and chats/).
    ///
    /// The export is uploaded to the ingest service, so the server needs no access to this disk:
    ///   - a folder is sent whole, media included (one holding both formats is read as JSON);
    ///   - a .zip of the export folder is sent as it is and unpacked by the server;
    ///   - result.json alone is sent without the media beside it;
    ///   - a messages*.html page sends its whole folder (every page and the media they link to).
    ///
    /// With --server-path, PATH is read on the ingest host's own disk instead: a folder,
    /// result.json or messages.html (not a .zip).
    #[command(verbatim_doc_comment)]
    Import(commands::import::ImportArgs),
    /// List archived chats with their owners; share and unshare your chats with other accounts.
    Chats(commands::chats::ChatsArgs),
    /// Show a chat's messages.
    Messages(commands::messages::MessagesArgs),
    /// Telegram authors and their message counts.
    Authors(commands::authors::AuthorsArgs),
    /// Store, list, download, rename, delete and share files; open share links.
    Files(commands::files::FilesArgs),
    /// Register storage nodes and show their fill.
    Nodes(commands::nodes::NodesArgs),
    /// Inspect Kafka topics.
    Topics(commands::topics::TopicsArgs),
    /// Accounts: register, list (admins), set roles, and whether registration is open.
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
    /// Link your Telegram account to the chatvault bot, see the link, or end it.
    Telegram(commands::telegram::TelegramArgs),
    /// Dead letters: records a projection could not apply; list and replay them (operators: talks to Kafka directly).
    Dlq(commands::dlq::DlqArgs),
}

#[tokio::main]
async fn main() -> ExitCode {
    let cli = match parse_command_line(std::env::args_os().collect()) {
        Ok(cli) => cli,
        Err(exit_code) => return exit_code,
    };
    let json = cli.json;
    output::set_errors_as_json(json);
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
        Command::Dlq(args) => commands::dlq::run(&cli.endpoints, args, json).await,
        Command::Telegram(args) => commands::telegram::run(&cli.endpoints, args, json).await,
    };
    match outcome {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            output::print_error(&error, json);
            ExitCode::FAILURE
        }
    }
}

/// Parses `arguments` (the program name first). A usage error with `--json` among the
/// arguments is printed as a JSON error with code INVALID_ARGUMENT, so scripts read every
/// failure the same way; otherwise clap prints its own help, version or usage error.
/// Returns the exit code on any of those (2 for usage errors, as clap does).
fn parse_command_line(arguments: Vec<OsString>) -> Result<Cli, ExitCode> {
    let asks_for_json = arguments.iter().skip(1).take_while(|argument| *argument != "--").any(|argument| argument == "--json");
    match Cli::try_parse_from(arguments) {
        Ok(cli) => Ok(cli),
        Err(error) if asks_for_json && error.use_stderr() => {
            output::print_error_message(&usage_error_message(&error), error_code::grpc_code_name(tonic::Code::InvalidArgument), true);
            Err(ExitCode::from(2))
        }
        Err(error) => error.exit(),
    }
}

/// Returns clap's one-line description of a usage error, without the `error: ` prefix and
/// the usage that follows it.
fn usage_error_message(error: &clap::Error) -> String {
    let rendered = error.render().to_string();
    let first_line = rendered.lines().next().unwrap_or_default();
    first_line.strip_prefix("error: ").unwrap_or(first_line).to_owned()
}

#[cfg(test)]
mod tests {
    use clap::CommandFactory;

    use super::*;

    fn parse(arguments: &[&str]) -> clap::ArgMatches {
        Cli::command().try_get_matches_from(arguments).unwrap_or_else(|error| panic!("{arguments:?} parses: {error}"))
    }

    #[test]
    fn negative_chat_ids_need_no_double_dash() {
        let matches = parse(&["chatvault", "messages", "-1001234567890", "--limit", "5"]);
        let messages = matches.subcommand_matches("messages").expect("messages");
        assert_eq!(messages.get_one::<i64>("chat_id"), Some(&-1_001_234_567_890));
        assert_eq!(messages.get_one::<u64>("limit"), Some(&5));

        let matches = parse(&["chatvault", "authors", "top", "-1001234567890", "-n", "3"]);
        let top = matches.subcommand_matches("authors").and_then(|authors| authors.subcommand_matches("top")).expect("authors top");
        assert_eq!(top.get_one::<i64>("chat_id"), Some(&-1_001_234_567_890));

        let matches = parse(&["chatvault", "import", "export/messages.html", "--chat-id", "-1001234567890", "--utc-offset", "-05:30"]);
        let import = matches.subcommand_matches("import").expect("import");
        assert_eq!(import.get_one::<i64>("chat_id"), Some(&-1_001_234_567_890));
        assert_eq!(import.get_one::<i32>("utc_offset"), Some(&-19_800));

        let matches = parse(&["chatvault", "backup", "create", "--chat", "-1001234567890", "--chat", "42"]);
        let create = matches.subcommand_matches("backup").and_then(|backup| backup.subcommand_matches("create")).expect("backup create");
        let chats: Vec<i64> = create.get_many::<i64>("chats").expect("chats").copied().collect();
        assert_eq!(chats, vec![-1_001_234_567_890, 42]);
    }

    #[test]
    fn flags_that_are_not_numbers_are_still_flags() {
        let error = Cli::command().try_get_matches_from(["chatvault", "messages", "-x"]).expect_err("-x is no chat id");
        assert_eq!(error.kind(), clap::error::ErrorKind::UnknownArgument);
    }

    #[test]
    fn import_help_names_both_formats_and_every_upload_form() {
        let mut command = Cli::command();
        let import = command.find_subcommand_mut("import").expect("import");
        let help = import.render_long_help().to_string();
        for expected in ["JSON", "HTML", "result.json", "messages.html", ".zip", "folder", "--server-path", "media"] {
            assert!(help.contains(expected), "import --help mentions {expected}:\n{help}");
        }
        let summary = Cli::command().render_help().to_string();
        assert!(summary.contains("JSON or HTML"), "chatvault --help says JSON or HTML:\n{summary}");
    }

    #[test]
    fn usage_errors_become_one_line() {
        let error = Cli::try_parse_from(["chatvault", "messages", "abc"]).expect_err("abc is no chat id");
        let message = usage_error_message(&error);
        assert!(message.contains("invalid value 'abc'"), "{message}");
        assert!(!message.contains('\n') && !message.starts_with("error"), "{message}");
    }
}
