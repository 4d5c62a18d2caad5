//! Restoring accounts from a backup (`AccountsService.RestoreAccounts`): each account
//! comes back with its id, password hash, role and times, unless it is there already.
//!
//! The whole stream is checked before anything is written and then applied in one
//! transaction, so a malformed account leaves the database as it was. Each restored account
//! queues an `AccountRegistered` event through the outbox, exactly like a registration, so
//! `users.events` and the audit trail learn of it.

use chatvault_proto::users::v1::user_event::Event;
use chatvault_proto::users::v1::{AccountRegistered, RestoreAccountsResponse, RestoredAccount};
use chrono::{DateTime, Utc};
use deadpool_postgres::Pool;

use crate::accounts::outbox::enqueue;
use crate::Error;

/// An account of a restore request, checked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AccountToRestore {
    pub account_id: uuid::Uuid,
    pub username: String,
    pub email: String,
    pub password_hash: String,
    pub role: &'static str,
    pub created_at: DateTime<Utc>,
    pub password_changed_at: DateTime<Utc>,
}

impl AccountToRestore {
    /// Checks `account` from the backup; `now` stands in for times the backup lacks (0).
    /// INVALID_ARGUMENT names the account and what is wrong with it.
    pub fn parse(account: RestoredAccount, now: DateTime<Utc>) -> Result<Self, Error> {
        let describe = |why: String| Error::InvalidArgument(format!("account {:?} ({:?}): {why}", account.username, account.account_id));
        let account_id: uuid::Uuid = account.account_id.trim().parse().map_err(|_| describe("the account id is not a UUID".to_owned()))?;
        let role = crate::accounts::validate_role(&account.role).map_err(|error| describe(error.to_string()))?;
        if account.password_hash.trim().is_empty() {
            return Err(describe("the password hash is empty".to_owned()));
        }
        let username = account.username.trim().to_owned();
        let email = account.email.trim().to_owned();
        if username.is_empty() || email.is_empty() {
            return Err(describe("the username and email must not be empty".to_owned()));
        }
        let time = |name: &str, unix_ms: i64| match unix_ms {
            0 => Ok(now),
            unix_ms => DateTime::from_timestamp_millis(unix_ms).ok_or_else(|| describe(format!("{name} {unix_ms} is out of range"))),
        };
        let created_at = time("created_at_unix_ms", account.created_at_unix_ms)?;
        let password_changed_at = time("password_changed_at_unix_ms", account.password_changed_at_unix_ms)?;
        Ok(Self { account_id, username, email, password_hash: account.password_hash, role, created_at, password_changed_at })
    }
}

/// Inserts `accounts` that are not present yet, in one transaction, and queues an
/// `AccountRegistered` of each, caused by `actor`. An account whose id exists counts as
/// already present; one whose username or email belongs to another account is skipped and
/// listed in the conflicts.
pub async fn restore_accounts(pool: &Pool, accounts: Vec<AccountToRestore>, actor: &str) -> Result<RestoreAccountsResponse, Error> {
    let mut client = pool.get().await?;
    let transaction = client.transaction().await?;
    // Registrations and other restores wait while this one runs, so a name checked free
    // below stays free until commit (a unique violation would abort the whole transaction).
    transaction.batch_execute("LOCK TABLE accounts IN SHARE ROW EXCLUSIVE MODE").await?;
    let mut response = RestoreAccountsResponse::default();
    for account in accounts {
        let exists = transaction.query_opt("SELECT 1 FROM accounts WHERE account_id = $1", &[&account.account_id]).await?.is_some();
        if exists {
            response.already_present += 1;
            continue;
        }
        let holder = transaction
            .query_opt(
                "SELECT account_id, lower(username) = lower($1) FROM accounts
                 WHERE lower(username) = lower($1) OR lower(email) = lower($2) LIMIT 1",
                &[&account.username, &account.email],
            )
            .await?;
        if let Some(holder) = holder {
            let (holder_id, username_taken): (uuid::Uuid, bool) = (holder.get(0), holder.get(1));
            let what = if username_taken { "the username" } else { "the email" };
            response.conflicts.push(format!("{} ({}): {what} belongs to account {holder_id}", account.username, account.account_id));
            continue;
        }
        transaction
            .execute(
                "INSERT INTO accounts (account_id, username, email, password_hash, role, created_at, password_changed_at)
                 VALUES ($1, $2, $3, $4, $5, $6, $7)",
                &[
                    &account.account_id,
                    &account.username,
                    &account.email,
                    &account.password_hash,
                    &account.role,
                    &account.created_at,
                    &account.password_changed_at,
                ],
            )
            .await?;
        let registered = Event::AccountRegistered(AccountRegistered {
            account_id: account.account_id.to_string(),
            username: account.username.clone(),
            email: account.email.clone(),
            role: account.role.to_owned(),
            registered_unix: account.created_at.timestamp(),
        });
        enqueue(&transaction, account.account_id, actor, registered).await?;
        response.restored += 1;
    }
    transaction.commit().await?;
    Ok(response)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn restored_account() -> RestoredAccount {
        RestoredAccount {
            account_id: "0190f3c4-5b6a-7c8d-9e0f-112233445566".to_owned(),
            username: "ann".to_owned(),
            email: "ann@example.org".to_owned(),
            password_hash: "$argon2id$v=19$m=19456,t=2,p=1$c2FsdA$aGFzaA".to_owned(),
            role: "admin".to_owned(),
            created_at_unix_ms: 1_700_000_000_123,
            password_changed_at_unix_ms: 0,
        }
    }

    #[test]
    fn a_well_formed_account_parses_and_a_missing_time_becomes_now() {
        let now = Utc::now();
        let parsed = AccountToRestore::parse(restored_account(), now).unwrap();
        assert_eq!(parsed.role, "admin");
        assert_eq!(parsed.created_at.timestamp_millis(), 1_700_000_000_123);
        assert_eq!(parsed.password_changed_at, now);
    }

    #[test]
    fn malformed_ids_roles_and_hashes_are_refused_naming_the_account() {
        let cases = [
            RestoredAccount { account_id: "not-a-uuid".to_owned(), ..restored_account() },
            RestoredAccount { role: "root".to_owned(), ..restored_account() },
            RestoredAccount { password_hash: " ".to_owned(), ..restored_account() },
            RestoredAccount { username: String::new(), ..restored_account() },
        ];
        for case in cases {
            let error = AccountToRestore::parse(case.clone(), Utc::now()).expect_err("refused");
            assert!(matches!(&error, Error::InvalidArgument(message) if message.contains(&case.account_id)), "{error}");
        }
    }
}
