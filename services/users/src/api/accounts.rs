//! `chatvault.users.v1.AccountsService`: register (while registration is open), log in,
//! refresh, log out, change password, roles, the account listing for admins, restore from a
//! backup. Each command changes its rows and queues its events in one transaction (see
//! [`crate::accounts::outbox`]), then wakes the relay.

use chatvault_common::auth::{sign_access_token, AuthConfig, Claims, VerifiedCaller, ADMIN_ROLE, USER_ROLE};
use chatvault_proto::users::v1::accounts_service_server::AccountsService;
use chatvault_proto::users::v1::user_event::Event;
use chatvault_proto::users::v1::{
    Account, AccountLocked, AccountRegistered, ChangePasswordRequest, ListAccountsRequest, ListAccountsResponse, LoggedIn, LoggedOut, LoginFailed,
    LoginRequest, LogoutRequest, LogoutResponse, MeRequest, PasswordChanged, RefreshRequest, RefreshTokenReused, RegisterRequest,
    RegistrationStatusRequest, RegistrationStatusResponse, RestoreAccountsResponse, RestoredAccount, RoleChanged, SetRoleRequest, TokenPair,
};
use chrono::{DateTime, Utc};
use deadpool_postgres::Pool;
use tonic::{Request, Response, Status, Streaming};

use crate::accounts::outbox::{enqueue, OutboxRelay};
use crate::accounts::restore::{restore_accounts, AccountToRestore};
use crate::accounts::{self, AccountSettings};
use crate::Error;

const ACCOUNT_COLUMNS: &str = "account_id, username, email, role, created_at, password_hash, failed_logins, locked_until";
/// Serialises bootstrap-admin attempts (arbitrary constant).
const BOOTSTRAP_LOCK_KEY: i64 = 0x7573_6572_5f61_646d;

/// One `accounts` row.
#[derive(Debug)]
struct AccountRow {
    account_id: uuid::Uuid,
    username: String,
    email: String,
    role: String,
    created_at: DateTime<Utc>,
    password_hash: String,
    failed_logins: i32,
    locked_until: Option<DateTime<Utc>>,
}

impl AccountRow {
    fn from_row(row: &tokio_postgres::Row) -> Self {
        Self {
            account_id: row.get(0),
            username: row.get(1),
            email: row.get(2),
            role: row.get(3),
            created_at: row.get(4),
            password_hash: row.get(5),
            failed_logins: row.get(6),
            locked_until: row.get(7),
        }
    }

    fn to_proto(&self) -> Account {
        Account {
            account_id: self.account_id.to_string(),
            username: self.username.clone(),
            email: self.email.clone(),
            role: self.role.clone(),
            created_unix: self.created_at.timestamp(),
        }
    }
}

/// The accounts gRPC API.
#[derive(Debug, Clone)]
pub struct AccountsApi {
    pool: Pool,
    settings: AccountSettings,
    auth: AuthConfig,
    relay: OutboxRelay,
    /// Failed log-ins of names no account holds, answered like an account's.
    unknown_names: std::sync::Arc<accounts::unknown_names::UnknownNameFailures>,
}

/// How many unknown names the log-in failure counter remembers.
const UNKNOWN_NAMES_REMEMBERED: usize = 100_000;

impl AccountsApi {
    pub fn new(pool: Pool, settings: AccountSettings, auth: AuthConfig, relay: OutboxRelay) -> Self {
        let unknown_names = std::sync::Arc::new(accounts::unknown_names::UnknownNameFailures::new(UNKNOWN_NAMES_REMEMBERED));
        Self { pool, settings, auth, relay, unknown_names }
    }

    /// Creates the admin of `CHATVAULT_USERS_BOOTSTRAP_ADMIN` when no admin exists yet.
    pub async fn bootstrap_admin_from_config(&self) -> Result<(), Error> {
        let Some(admin) = self.settings.bootstrap_admin.clone() else { return Ok(()) };
        let request = RegisterRequest { username: admin.username, email: admin.email, password: admin.password.expose().to_owned() };
        match self.bootstrap_admin(request).await {
            Ok(account) => {
                tracing::info!(username = %account.username, "bootstrap admin created from configuration");
                Ok(())
            }
            Err(Error::FailedPrecondition(_)) => Ok(()),
            Err(error) => Err(error),
        }
    }

    fn caller<T>(&self, request: &Request<T>) -> Result<VerifiedCaller, Error> {
        request.extensions().get::<VerifiedCaller>().cloned().ok_or_else(|| {
            Error::Unauthenticated(if self.auth.enabled {
                "missing bearer token; log in first".to_owned()
            } else {
                "accounts need CHATVAULT_AUTH=on".to_owned()
            })
        })
    }

    async fn load_account_for_update(
        transaction: &tokio_postgres::Transaction<'_>,
        condition: &str,
        value: &(dyn tokio_postgres::types::ToSql + Sync),
    ) -> Result<Option<AccountRow>, Error> {
        let sql = format!("SELECT {ACCOUNT_COLUMNS} FROM accounts WHERE {condition} FOR UPDATE");
        Ok(transaction.query_opt(&sql, &[value]).await?.as_ref().map(AccountRow::from_row))
    }

    /// Inserts a refresh token of `family_id` and signs an access token for `account`.
    async fn issue_token_pair(
        &self,
        transaction: &tokio_postgres::Transaction<'_>,
        account: &AccountRow,
        family_id: uuid::Uuid,
    ) -> Result<TokenPair, Error> {
        let now = Utc::now();
        let (refresh_token, refresh_hash) = accounts::new_refresh_token();
        let refresh_expires = now + chrono::Duration::from_std(self.settings.refresh_ttl).unwrap_or(chrono::Duration::days(30));
        transaction
            .execute(
                "INSERT INTO refresh_tokens (token_hash, account_id, family_id, expires_at) VALUES ($1, $2, $3, $4)",
                &[&refresh_hash, &account.account_id, &family_id, &refresh_expires],
            )
            .await?;
        let access_expires = now.timestamp() + i64::try_from(self.auth.access_ttl.as_secs()).unwrap_or(900);
        let claims = Claims {
            sub: account.account_id.to_string(),
            username: account.username.clone(),
            role: account.role.clone(),
            exp: access_expires,
            iat: now.timestamp(),
            jti: uuid::Uuid::now_v7().to_string(),
        };
        Ok(TokenPair {
            access_token: sign_access_token(&self.auth.jwt_secret, &claims),
            refresh_token,
            access_expires_unix: access_expires,
            refresh_expires_unix: refresh_expires.timestamp(),
            account: Some(account.to_proto()),
        })
    }

    /// Validates and inserts an account with `role`; queues AccountRegistered.
    async fn create_account(
        &self,
        transaction: &tokio_postgres::Transaction<'_>,
        request: RegisterRequest,
        role: &str,
        actor: &str,
    ) -> Result<AccountRow, Error> {
        let username = accounts::validate_username(&request.username)?;
        let email = accounts::validate_email(&request.email)?;
        accounts::check_password_policy(&request.password, &username, &email)?;
        let taken = transaction
            .query_opt(
                "SELECT lower(username) = lower($1) FROM accounts WHERE lower(username) = lower($1) OR lower(email) = lower($2) LIMIT 1",
                &[&username, &email],
            )
            .await?;
        if let Some(row) = taken {
            let username_taken: bool = row.get(0);
            return Err(Error::AlreadyExists(if username_taken {
                format!("the username {username} is taken")
            } else {
                "an account with this email exists".to_owned()
            }));
        }
        let password_hash = accounts::hash_password(request.password).await?;
        let account_id = uuid::Uuid::now_v7();
        let sql = format!(
            "INSERT INTO accounts (account_id, username, email, password_hash, role) VALUES ($1, $2, $3, $4, $5) RETURNING {ACCOUNT_COLUMNS}"
        );
        let row =
            transaction.query_one(&sql, &[&account_id, &username, &email, &password_hash, &role]).await.map_err(|error| match error.code() {
                Some(&tokio_postgres::error::SqlState::UNIQUE_VIOLATION) => Error::AlreadyExists("the username or email is taken".to_owned()),
                _ => Error::Postgres(error),
            })?;
        let account = AccountRow::from_row(&row);
        let event = Event::AccountRegistered(AccountRegistered {
            account_id: account.account_id.to_string(),
            username: account.username.clone(),
            email: account.email.clone(),
            role: account.role.clone(),
            registered_unix: account.created_at.timestamp(),
        });
        enqueue(transaction, account.account_id, actor, event).await?;
        Ok(account)
    }

    async fn register(&self, request: RegisterRequest) -> Result<Account, Error> {
        if !self.settings.registration.is_open() {
            tracing::info!(username = %request.username.trim(), "registration refused: registration is closed");
            return Err(Error::FailedPrecondition("registration is closed on this server".to_owned()));
        }
        let mut client = self.pool.get().await?;
        let transaction = client.transaction().await?;
        let actor = request.username.trim().to_owned();
        let account = self.create_account(&transaction, request, USER_ROLE, &actor).await?;
        transaction.commit().await?;
        self.relay.wake();
        tracing::info!(username = %account.username, account_id = %account.account_id, "account registered");
        Ok(account.to_proto())
    }

    /// Creates `request` as an admin when no admin exists; run only for the configured first
    /// admin (see [`AccountsApi::bootstrap_admin_from_config`]).
    async fn bootstrap_admin(&self, request: RegisterRequest) -> Result<Account, Error> {
        let mut client = self.pool.get().await?;
        let transaction = client.transaction().await?;
        transaction.execute("SELECT pg_advisory_xact_lock($1)", &[&BOOTSTRAP_LOCK_KEY]).await?;
        let admin_exists = transaction.query_opt("SELECT 1 FROM accounts WHERE role = 'admin' LIMIT 1", &[]).await?.is_some();
        if admin_exists {
            return Err(Error::FailedPrecondition("an admin exists already; ask an admin for the role".to_owned()));
        }
        let account = self.create_account(&transaction, request, ADMIN_ROLE, "bootstrap").await?;
        transaction.commit().await?;
        self.relay.wake();
        tracing::info!(username = %account.username, account_id = %account.account_id, "first admin created");
        Ok(account.to_proto())
    }

    async fn login(&self, request: LoginRequest, (client_address, user_agent): (String, String)) -> Result<TokenPair, Error> {
        let mut client = self.pool.get().await?;
        let transaction = client.transaction().await?;
        let username = request.username.trim().to_owned();
        let now = Utc::now();
        let Some(account) = Self::load_account_for_update(&transaction, "lower(username) = lower($1)", &username).await? else {
            // The same answers, work and delays as for a known account, so neither the
            // answer nor its timing reveals which names exist.
            if let Some(locked_until) = self.unknown_names.locked_until(&username, now) {
                tracing::info!(%username, "log-in refused: unknown username, locked");
                return Err(locked_account_error(locked_until));
            }
            let _ = accounts::verify_password(request.password, accounts::dummy_hash().await.to_owned()).await;
            let lockout = chrono::Duration::from_std(self.settings.lockout_duration).unwrap_or_default();
            let (failures, _) = self.unknown_names.record_failure(&username, now, self.settings.lockout_threshold, lockout);
            tracing::info!(%username, failures, "log-in refused: unknown username");
            tokio::time::sleep(self.settings.failure_delay(failures)).await;
            return Err(Error::Unauthenticated("wrong username or password".to_owned()));
        };
        if let Some(locked_until) = account.locked_until.filter(|until| *until > now) {
            tracing::info!(username = %account.username, %locked_until, "log-in refused: account locked");
            return Err(locked_account_error(locked_until));
        }
        let password_matches = accounts::verify_password(request.password, account.password_hash.clone()).await?;
        if !password_matches {
            let failures = u32::try_from(account.failed_logins).unwrap_or(0) + 1;
            let locks = failures >= self.settings.lockout_threshold;
            let lock_until = locks.then(|| now + chrono::Duration::from_std(self.settings.lockout_duration).unwrap_or_default());
            transaction
                .execute(
                    "UPDATE accounts SET failed_logins = $2, locked_until = $3 WHERE account_id = $1",
                    &[&account.account_id, &(if locks { 0 } else { failures as i32 }), &lock_until],
                )
                .await?;
            let failed = Event::LoginFailed(LoginFailed {
                account_id: account.account_id.to_string(),
                username: account.username.clone(),
                consecutive_failures: failures,
            });
            enqueue(&transaction, account.account_id, &account.username, failed).await?;
            if let Some(until) = lock_until {
                let locked = Event::AccountLocked(AccountLocked {
                    account_id: account.account_id.to_string(),
                    username: account.username.clone(),
                    locked_until_unix: until.timestamp(),
                });
                enqueue(&transaction, account.account_id, &account.username, locked).await?;
            }
            transaction.commit().await?;
            self.relay.wake();
            tracing::info!(username = %account.username, failures, locked = locks, "log-in refused: wrong password");
            tokio::time::sleep(self.settings.failure_delay(failures)).await;
            return Err(Error::Unauthenticated("wrong username or password".to_owned()));
        }
        transaction.execute("UPDATE accounts SET failed_logins = 0, locked_until = NULL WHERE account_id = $1", &[&account.account_id]).await?;
        let session_id = uuid::Uuid::now_v7();
        let pair = self.issue_token_pair(&transaction, &account, session_id).await?;
        let logged_in = Event::LoggedIn(LoggedIn {
            account_id: account.account_id.to_string(),
            username: account.username.clone(),
            session_id: session_id.to_string(),
            client_address,
            user_agent,
        });
        enqueue(&transaction, account.account_id, &account.username, logged_in).await?;
        transaction.commit().await?;
        self.relay.wake();
        tracing::info!(username = %account.username, %session_id, "logged in");
        Ok(pair)
    }

    async fn refresh(&self, request: RefreshRequest) -> Result<TokenPair, Error> {
        let token_hash = accounts::refresh_token_hash(&request.refresh_token);
        let mut client = self.pool.get().await?;
        let transaction = client.transaction().await?;
        let Some(token) = transaction
            .query_opt(
                "SELECT account_id, family_id, expires_at, rotated_at IS NOT NULL, revoked_at IS NOT NULL
                 FROM refresh_tokens WHERE token_hash = $1 FOR UPDATE",
                &[&token_hash],
            )
            .await?
        else {
            return Err(Error::Unauthenticated("unknown refresh token; log in again".to_owned()));
        };
        let (account_id, family_id, expires_at, rotated, revoked): (uuid::Uuid, uuid::Uuid, DateTime<Utc>, bool, bool) =
            (token.get(0), token.get(1), token.get(2), token.get(3), token.get(4));
        if revoked {
            return Err(Error::Unauthenticated("refresh token revoked; log in again".to_owned()));
        }
        let Some(account) = Self::load_account_for_update(&transaction, "account_id = $1", &account_id).await? else {
            return Err(Error::Unauthenticated("the account no longer exists".to_owned()));
        };
        if rotated {
            // A used token presented again: someone else may hold a copy. Revoke the log-in.
            transaction.execute("UPDATE refresh_tokens SET revoked_at = now() WHERE family_id = $1 AND revoked_at IS NULL", &[&family_id]).await?;
            let reused = Event::RefreshTokenReused(RefreshTokenReused {
                account_id: account_id.to_string(),
                username: account.username.clone(),
                session_id: family_id.to_string(),
            });
            enqueue(&transaction, account_id, &account.username, reused).await?;
            transaction.commit().await?;
            self.relay.wake();
            tracing::warn!(username = %account.username, session_id = %family_id, "refresh token reused; session revoked");
            return Err(Error::Unauthenticated("refresh token already used; this log-in is revoked, log in again".to_owned()));
        }
        if expires_at <= Utc::now() {
            return Err(Error::Unauthenticated("refresh token expired; log in again".to_owned()));
        }
        transaction.execute("UPDATE refresh_tokens SET rotated_at = now() WHERE token_hash = $1", &[&token_hash]).await?;
        let pair = self.issue_token_pair(&transaction, &account, family_id).await?;
        transaction.commit().await?;
        Ok(pair)
    }

    async fn logout(&self, caller: VerifiedCaller, request: LogoutRequest) -> Result<LogoutResponse, Error> {
        let token_hash = accounts::refresh_token_hash(&request.refresh_token);
        let mut client = self.pool.get().await?;
        let transaction = client.transaction().await?;
        let family = transaction.query_opt("SELECT account_id, family_id FROM refresh_tokens WHERE token_hash = $1", &[&token_hash]).await?;
        let Some(family) = family.filter(|row| row.get::<_, uuid::Uuid>(0).to_string() == caller.account_id) else {
            return Err(Error::NotFound("no such refresh token of yours".to_owned()));
        };
        let (account_id, family_id): (uuid::Uuid, uuid::Uuid) = (family.get(0), family.get(1));
        transaction.execute("UPDATE refresh_tokens SET revoked_at = now() WHERE family_id = $1 AND revoked_at IS NULL", &[&family_id]).await?;
        let logged_out =
            Event::LoggedOut(LoggedOut { account_id: account_id.to_string(), username: caller.username.clone(), session_id: family_id.to_string() });
        enqueue(&transaction, account_id, &caller.username, logged_out).await?;
        transaction.commit().await?;
        self.relay.wake();
        tracing::info!(username = %caller.username, session_id = %family_id, "logged out");
        Ok(LogoutResponse {})
    }

    async fn change_password(&self, caller: VerifiedCaller, request: ChangePasswordRequest) -> Result<TokenPair, Error> {
        let account_id = parse_account_id(&caller)?;
        let mut client = self.pool.get().await?;
        let transaction = client.transaction().await?;
        let Some(account) = Self::load_account_for_update(&transaction, "account_id = $1", &account_id).await? else {
            return Err(Error::Unauthenticated("the account no longer exists".to_owned()));
        };
        if !accounts::verify_password(request.current_password, account.password_hash.clone()).await? {
            tokio::time::sleep(self.settings.failure_delay(1)).await;
            return Err(Error::Unauthenticated("the current password is wrong".to_owned()));
        }
        accounts::check_password_policy(&request.new_password, &account.username, &account.email)?;
        let new_hash = accounts::hash_password(request.new_password).await?;
        transaction
            .execute(
                "UPDATE accounts SET password_hash = $2, password_changed_at = now(), failed_logins = 0, locked_until = NULL WHERE account_id = $1",
                &[&account_id, &new_hash],
            )
            .await?;
        let revoked =
            transaction.execute("UPDATE refresh_tokens SET revoked_at = now() WHERE account_id = $1 AND revoked_at IS NULL", &[&account_id]).await?;
        let pair = self.issue_token_pair(&transaction, &account, uuid::Uuid::now_v7()).await?;
        let changed = Event::PasswordChanged(PasswordChanged {
            account_id: account_id.to_string(),
            username: account.username.clone(),
            sessions_revoked: u32::try_from(revoked).unwrap_or(u32::MAX),
        });
        enqueue(&transaction, account_id, &account.username, changed).await?;
        transaction.commit().await?;
        self.relay.wake();
        tracing::info!(username = %account.username, sessions_revoked = revoked, "password changed");
        Ok(pair)
    }

    async fn me(&self, caller: VerifiedCaller) -> Result<Account, Error> {
        let account_id = parse_account_id(&caller)?;
        let client = self.pool.get().await?;
        let sql = format!("SELECT {ACCOUNT_COLUMNS} FROM accounts WHERE account_id = $1");
        let row = client.query_opt(&sql, &[&account_id]).await?;
        row.as_ref().map(|row| AccountRow::from_row(row).to_proto()).ok_or_else(|| Error::Unauthenticated("the account no longer exists".to_owned()))
    }

    async fn set_role(&self, caller: VerifiedCaller, request: SetRoleRequest) -> Result<Account, Error> {
        let new_role = accounts::validate_role(&request.role)?;
        let caller_id = parse_account_id(&caller)?;
        let mut client = self.pool.get().await?;
        let transaction = client.transaction().await?;
        // The role is checked in the database, not only in the token: a demoted admin's
        // unexpired token must not keep this power.
        let caller_is_admin =
            transaction.query_opt("SELECT 1 FROM accounts WHERE account_id = $1 AND role = 'admin'", &[&caller_id]).await?.is_some();
        if !caller_is_admin {
            return Err(Error::PermissionDenied("changing roles needs the admin role".to_owned()));
        }
        let username = request.username.trim().to_owned();
        let Some(account) = Self::load_account_for_update(&transaction, "lower(username) = lower($1)", &username).await? else {
            return Err(Error::NotFound(format!("no account named {username}")));
        };
        if account.role == "admin" && new_role != "admin" {
            // Counted under the row locks of every admin, so two admins demoting each other
            // at once cannot both succeed.
            let admins = transaction.query("SELECT account_id FROM accounts WHERE role = 'admin' FOR UPDATE", &[]).await?.len();
            if admins <= 1 {
                return Err(Error::FailedPrecondition(format!("{} is the last admin; make another account admin first", account.username)));
            }
        }
        if account.role != new_role {
            transaction.execute("UPDATE accounts SET role = $2 WHERE account_id = $1", &[&account.account_id, &new_role]).await?;
            let changed = Event::RoleChanged(RoleChanged {
                account_id: account.account_id.to_string(),
                username: account.username.clone(),
                old_role: account.role.clone(),
                new_role: new_role.to_owned(),
                changed_by: caller.username.clone(),
            });
            enqueue(&transaction, account.account_id, &caller.username, changed).await?;
        }
        transaction.commit().await?;
        self.relay.wake();
        tracing::info!(username = %account.username, role = new_role, changed_by = %caller.username, "role set");
        Ok(Account { role: new_role.to_owned(), ..account.to_proto() })
    }

    /// Returns a page of accounts in username order (case-insensitive), for admins.
    async fn list_accounts(&self, caller: VerifiedCaller, request: ListAccountsRequest) -> Result<ListAccountsResponse, Error> {
        let caller_id = parse_account_id(&caller)?;
        let after = accounts::accounts_page_key(&request.page_token)?;
        let page_size = accounts::accounts_page_size(request.limit);
        let client = self.pool.get().await?;
        // As for SetRole: the role in the database, not the token's, decides.
        let caller_is_admin = client.query_opt("SELECT 1 FROM accounts WHERE account_id = $1 AND role = 'admin'", &[&caller_id]).await?.is_some();
        if !caller_is_admin {
            return Err(Error::PermissionDenied("listing accounts needs the admin role".to_owned()));
        }
        // One row more than the page tells whether another page follows.
        let sql = format!(
            "SELECT {ACCOUNT_COLUMNS}, lower(username) FROM accounts
             WHERE ($1::text IS NULL OR lower(username) > $1) ORDER BY lower(username) LIMIT $2"
        );
        let rows = client.query(&sql, &[&after, &(i64::from(page_size) + 1)]).await?;
        let more = rows.len() > page_size as usize;
        let page = &rows[..rows.len().min(page_size as usize)];
        let next_page_token = match page.last() {
            Some(last) if more => accounts::accounts_page_token(last.get::<_, &str>(8)),
            _ => String::new(),
        };
        Ok(ListAccountsResponse { accounts: page.iter().map(|row| AccountRow::from_row(row).to_proto()).collect(), next_page_token })
    }

    /// Reads the whole stream, checks every account, then restores them in one transaction.
    async fn restore_accounts(&self, actor: String, mut stream: Streaming<RestoredAccount>) -> Result<RestoreAccountsResponse, Error> {
        let now = Utc::now();
        let mut accounts = Vec::new();
        let read_error = |status: Status| Error::InvalidArgument(format!("reading the accounts: {}", status.message()));
        while let Some(account) = stream.message().await.map_err(read_error)? {
            accounts.push(AccountToRestore::parse(account, now)?);
        }
        let received = accounts.len();
        let response = restore_accounts(&self.pool, accounts, &actor).await?;
        self.relay.wake();
        tracing::info!(
            received,
            restored = response.restored,
            already_present = response.already_present,
            conflicts = response.conflicts.len(),
            %actor,
            "accounts restored"
        );
        Ok(response)
    }
}

fn parse_account_id(caller: &VerifiedCaller) -> Result<uuid::Uuid, Error> {
    caller.account_id.parse().map_err(|_| Error::Unauthenticated("the token names no account".to_owned()))
}

#[tonic::async_trait]
impl AccountsService for AccountsApi {
    #[tracing::instrument(skip_all, fields(username = %request.get_ref().username))]
    async fn register(&self, request: Request<RegisterRequest>) -> Result<Response<Account>, Status> {
        Ok(Response::new(AccountsApi::register(self, request.into_inner()).await?))
    }

    #[tracing::instrument(skip_all, fields(username = %request.get_ref().username))]
    async fn login(&self, request: Request<LoginRequest>) -> Result<Response<TokenPair>, Status> {
        let client = chatvault_common::auth::client_of_request(&request);
        Ok(Response::new(AccountsApi::login(self, request.into_inner(), client).await?))
    }

    #[tracing::instrument(skip_all)]
    async fn refresh(&self, request: Request<RefreshRequest>) -> Result<Response<TokenPair>, Status> {
        Ok(Response::new(AccountsApi::refresh(self, request.into_inner()).await?))
    }

    #[tracing::instrument(skip_all)]
    async fn logout(&self, request: Request<LogoutRequest>) -> Result<Response<LogoutResponse>, Status> {
        let caller = self.caller(&request)?;
        Ok(Response::new(AccountsApi::logout(self, caller, request.into_inner()).await?))
    }

    #[tracing::instrument(skip_all)]
    async fn change_password(&self, request: Request<ChangePasswordRequest>) -> Result<Response<TokenPair>, Status> {
        let caller = self.caller(&request)?;
        Ok(Response::new(AccountsApi::change_password(self, caller, request.into_inner()).await?))
    }

    #[tracing::instrument(skip_all)]
    async fn me(&self, request: Request<MeRequest>) -> Result<Response<Account>, Status> {
        let caller = self.caller(&request)?;
        Ok(Response::new(AccountsApi::me(self, caller).await?))
    }

    #[tracing::instrument(skip_all, fields(username = %request.get_ref().username, role = %request.get_ref().role))]
    async fn set_role(&self, request: Request<SetRoleRequest>) -> Result<Response<Account>, Status> {
        let caller = self.caller(&request)?;
        Ok(Response::new(AccountsApi::set_role(self, caller, request.into_inner()).await?))
    }

    async fn registration_status(&self, _request: Request<RegistrationStatusRequest>) -> Result<Response<RegistrationStatusResponse>, Status> {
        Ok(Response::new(RegistrationStatusResponse { open: self.settings.registration.is_open() }))
    }

    #[tracing::instrument(skip_all, fields(limit = request.get_ref().limit))]
    async fn list_accounts(&self, request: Request<ListAccountsRequest>) -> Result<Response<ListAccountsResponse>, Status> {
        let caller = self.caller(&request)?;
        Ok(Response::new(AccountsApi::list_accounts(self, caller, request.into_inner()).await?))
    }

    #[tracing::instrument(skip_all)]
    async fn restore_accounts(&self, request: Request<Streaming<RestoredAccount>>) -> Result<Response<RestoreAccountsResponse>, Status> {
        chatvault_common::auth::require_admin(request.metadata(), "restoring accounts")?;
        let actor = chatvault_common::caller::caller_of_metadata(request.metadata());
        Ok(Response::new(AccountsApi::restore_accounts(self, actor, request.into_inner()).await?))
    }

    /// Refuses every call with FAILED_PRECONDITION.
    ///
    /// This call used to create the first admin for whoever called it first while no admin
    /// existed: on a fresh installation anyone who reached the port could make themselves
    /// admin. A one-time bootstrap token would have closed that, at the price of one more
    /// secret to hand over and a second way to the same result. Instead the first admin
    /// comes only from `CHATVAULT_USERS_BOOTSTRAP_ADMIN`, which `scripts/services.sh start`
    /// fills with a generated password on the first start; the method stays in the proto so
    /// an old client reads why rather than UNIMPLEMENTED.
    #[tracing::instrument(skip_all, fields(username = %request.get_ref().username))]
    async fn bootstrap_admin(&self, request: Request<RegisterRequest>) -> Result<Response<Account>, Status> {
        tracing::info!(username = %request.get_ref().username, "bootstrap admin call refused: the first admin comes from the configuration");
        Err(Error::FailedPrecondition(
            "BootstrapAdmin is retired: the first admin is created from CHATVAULT_USERS_BOOTSTRAP_ADMIN \
             (scripts/services.sh start generates its password into .state/secrets/admin-password); \
             an admin grants the role with `chatvault users role <username> admin`"
                .to_owned(),
        )
        .into())
    }
}

/// The refusal of a log-in while the name is locked (an account's or an unknown name's alike).
fn locked_account_error(locked_until: chrono::DateTime<Utc>) -> Error {
    Error::ResourceExhausted(format!("too many failed log-ins; the account is locked until {}", locked_until.format("%Y-%m-%d %H:%M:%S UTC")))
}
