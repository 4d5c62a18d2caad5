//! `chatvault users …`, `login`, `logout`, `whoami`, `passwd`: accounts and the session.

use chatvault_proto::users::v1::{
    Account, ChangePasswordRequest, ListAccountsRequest, LoginRequest, LogoutRequest, MeRequest, RegisterRequest, RegistrationStatusRequest,
    SetRoleRequest, TokenPair,
};
use serde_json::json;

use super::session::{self, StoredTokens};
use super::Endpoints;
use crate::output::outln;

#[derive(Debug, clap::Args)]
pub(crate) struct UsersArgs {
    #[command(subcommand)]
    command: UsersCommand,
}

#[derive(Debug, clap::Subcommand)]
enum UsersCommand {
    /// Create an account (role `user`), while registration is open.
    Register(NewAccountArgs),
    /// List the accounts in username order (admin only).
    List {
        /// At most this many accounts (all pages are fetched until then); default: all.
        #[arg(short = 'n', long)]
        limit: Option<usize>,
    },
    /// Show whether anyone may register (CHATVAULT_USERS_REGISTRATION on the server).
    Registration,
    /// Set an account's role (admin only).
    Role {
        /// The account's username.
        username: String,
        /// `user` or `admin`.
        role: String,
    },
}

#[derive(Debug, clap::Args)]
struct NewAccountArgs {
    #[arg(long)]
    username: String,
    #[arg(long)]
    email: String,
    /// Prompted for when omitted.
    #[arg(long, env = "CHATVAULT_PASSWORD", hide_env_values = true)]
    password: Option<String>,
}

#[derive(Debug, clap::Args)]
pub(crate) struct LoginArgs {
    #[arg(long)]
    username: String,
    /// Prompted for when omitted.
    #[arg(long, env = "CHATVAULT_PASSWORD", hide_env_values = true)]
    password: Option<String>,
}

#[derive(Debug, clap::Args)]
pub(crate) struct PasswdArgs {
    /// Prompted for when omitted.
    #[arg(long)]
    current_password: Option<String>,
    /// Prompted for when omitted.
    #[arg(long)]
    new_password: Option<String>,
}

fn account_json(account: &Account) -> serde_json::Value {
    json!({ "account_id": account.account_id, "username": account.username, "email": account.email, "role": account.role, "created_unix": account.created_unix })
}

fn print_account(account: &Account, json: bool, verb: &str) {
    if json {
        crate::output::print_json(&account_json(account));
    } else {
        outln!("{verb} {} <{}> role={} id={}", account.username, account.email, account.role, account.account_id);
    }
}

fn store_pair(pair: &TokenPair, username: &str) -> anyhow::Result<std::path::PathBuf> {
    session::save_tokens(&StoredTokens {
        access_token: pair.access_token.clone(),
        refresh_token: pair.refresh_token.clone(),
        access_expires_unix: pair.access_expires_unix,
        refresh_expires_unix: pair.refresh_expires_unix,
        username: username.to_owned(),
    })
}

pub(crate) async fn run_users(endpoints: &Endpoints, args: UsersArgs, json: bool) -> anyhow::Result<()> {
    let mut accounts = endpoints.accounts().await?;
    match args.command {
        UsersCommand::Register(new) => {
            let password = session::password_or_prompt(new.password, "password")?;
            let request = RegisterRequest { username: new.username, email: new.email, password };
            let account = accounts.register(request).await?.into_inner();
            print_account(&account, json, "registered");
        }
        UsersCommand::Role { username, role } => {
            let account = accounts.set_role(SetRoleRequest { username, role }).await?.into_inner();
            print_account(&account, json, "role set:");
        }
        UsersCommand::List { limit } => list_accounts(&mut accounts, limit, json).await?,
        UsersCommand::Registration => {
            let open = accounts.registration_status(RegistrationStatusRequest {}).await?.into_inner().open;
            if json {
                crate::output::print_json(&json!({ "open": open }));
            } else if open {
                outln!("registration is open: anyone may create an account with `chatvault users register`");
            } else {
                outln!("registration is closed on this server");
            }
        }
    }
    Ok(())
}

/// The largest page the users service gives.
const ACCOUNTS_PAGE: usize = 1000;

async fn list_accounts(
    accounts: &mut chatvault_proto::users::v1::accounts_service_client::AccountsServiceClient<super::AuthedChannel>,
    limit: Option<usize>,
    json: bool,
) -> anyhow::Result<()> {
    let limit = limit.unwrap_or(usize::MAX);
    let mut listed = Vec::new();
    let mut page_token = String::new();
    while listed.len() < limit {
        let page_size = (limit - listed.len()).min(ACCOUNTS_PAGE) as u32;
        let page = accounts.list_accounts(ListAccountsRequest { limit: page_size, page_token: page_token.clone() }).await?.into_inner();
        listed.extend(page.accounts);
        if page.next_page_token.is_empty() {
            break;
        }
        page_token = page.next_page_token;
    }
    listed.truncate(limit);
    if json {
        crate::output::print_json(&serde_json::Value::Array(listed.iter().map(account_json).collect()));
        return Ok(());
    }
    outln!("{:<32}  {:<5}  {:<19}  {:<36}  EMAIL", "USERNAME", "ROLE", "CREATED (UTC)", "ID");
    for account in listed {
        outln!(
            "{:<32}  {:<5}  {:<19}  {:<36}  {}",
            account.username,
            account.role,
            crate::output::format_unix(account.created_unix),
            account.account_id,
            account.email
        );
    }
    Ok(())
}

pub(crate) async fn run_login(endpoints: &Endpoints, args: LoginArgs, json: bool) -> anyhow::Result<()> {
    let password = session::password_or_prompt(args.password, "password")?;
    let mut accounts = endpoints.accounts().await?;
    let pair = accounts.login(LoginRequest { username: args.username.clone(), password }).await?.into_inner();
    let path = store_pair(&pair, &args.username)?;
    let account = pair.account.unwrap_or_default();
    if json {
        crate::output::print_json(
            &json!({ "account": account_json(&account), "tokens_file": path.display().to_string(), "access_expires_unix": pair.access_expires_unix }),
        );
    } else {
        outln!("logged in as {} (role {}); tokens in {}", account.username, account.role, path.display());
    }
    Ok(())
}

pub(crate) async fn run_logout(endpoints: &Endpoints, json: bool) -> anyhow::Result<()> {
    let revoked = match session::load_tokens() {
        Some(tokens) => {
            let mut accounts = endpoints.accounts().await?;
            let outcome = accounts.logout(LogoutRequest { refresh_token: tokens.refresh_token }).await;
            // An expired session is gone anyway; forget the tokens whatever the answer.
            outcome.is_ok()
        }
        None => false,
    };
    let forgotten = session::forget_tokens()?;
    if json {
        crate::output::print_json(&json!({ "revoked": revoked, "tokens_removed": forgotten }));
    } else if forgotten {
        outln!("logged out{}", if revoked { "" } else { " (the session had already ended)" });
    } else {
        outln!("not logged in");
    }
    Ok(())
}

pub(crate) async fn run_whoami(endpoints: &Endpoints, json: bool) -> anyhow::Result<()> {
    let account = endpoints.accounts().await?.me(MeRequest {}).await?.into_inner();
    if json {
        crate::output::print_json(&account_json(&account));
    } else {
        outln!("{} <{}> role={} id={}", account.username, account.email, account.role, account.account_id);
    }
    Ok(())
}

pub(crate) async fn run_passwd(endpoints: &Endpoints, args: PasswdArgs, json: bool) -> anyhow::Result<()> {
    let current_password = session::password_or_prompt(args.current_password, "current password")?;
    let new_password = match args.new_password {
        Some(password) => password,
        None => {
            let first = session::password_or_prompt(None, "new password")?;
            let again = session::password_or_prompt(None, "new password again")?;
            anyhow::ensure!(first == again, "the new passwords differ");
            first
        }
    };
    let mut accounts = endpoints.accounts().await?;
    let pair = accounts.change_password(ChangePasswordRequest { current_password, new_password }).await?.into_inner();
    let username = pair.account.as_ref().map(|account| account.username.clone()).unwrap_or_default();
    if std::env::var("CHATVAULT_TOKEN").is_err() {
        store_pair(&pair, &username)?;
    }
    if json {
        crate::output::print_json(&json!({ "changed": true, "username": username }));
    } else {
        outln!("password changed; every other session of {username} is logged out");
    }
    Ok(())
}
