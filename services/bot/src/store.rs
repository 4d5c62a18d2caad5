//! The bot's database: links, one-time codes, Drive grants and folders, and the files
//! stored through the bot. Shared by the bot and its workers.

use chrono::{DateTime, Utc};
use deadpool_postgres::Pool;
use sha2::{Digest, Sha256};

use crate::BotError;

/// How long a link code and an OAuth authorization stay usable.
pub const CODE_LIFETIME: chrono::Duration = chrono::Duration::minutes(10);
/// Wrong link codes a Telegram account may send per hour.
pub const LINK_ATTEMPTS_PER_HOUR: i64 = 5;
/// Characters of a link code: 31^10 ≈ 2^49.5 codes, and one live code per account.
const CODE_LENGTH: usize = 10;
/// The alphabet of link codes: no 0/O, 1/I/L to misread.
const CODE_ALPHABET: &[u8] = b"ABCDEFGHJKMNPQRSTUVWXYZ23456789";

/// A Telegram account linked to a chatvault account.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Link {
    pub telegram_user_id: i64,
    pub telegram_username: String,
    pub chat_id: i64,
    pub account_id: String,
    pub username: String,
    pub linked_at: DateTime<Utc>,
    pub time_zone: String,
    /// `chatvault`, `drive` or `both`.
    pub store_target: String,
}

impl Link {
    /// Whether files go to chatvault's own storage.
    pub fn stores_in_chatvault(&self) -> bool {
        self.store_target != "drive"
    }

    /// Whether files go to Google Drive.
    pub fn stores_in_drive(&self) -> bool {
        self.store_target != "chatvault"
    }
}

/// Why a link was refused.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum LinkRefusal {
    /// This Telegram account is linked already (to the named chatvault account).
    TelegramLinked(String),
    /// The chatvault account is linked to another Telegram account.
    AccountLinked,
}

/// A person's Google Drive grant.
#[derive(Clone, Debug)]
pub struct Grant {
    pub sealed_refresh: Vec<u8>,
    pub needs_relink: bool,
}

/// An OAuth authorization in flight.
#[derive(Clone, Debug)]
pub struct PendingAuthorization {
    pub telegram_user_id: i64,
    pub account_id: String,
    pub sealed_verifier: Vec<u8>,
}

/// A file stored through the bot.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StoredFile {
    pub account_id: String,
    pub sha256: String,
    pub folder_date: String,
    pub kind: String,
    pub file_name: String,
    pub content_type: String,
    pub size: u64,
    /// The chatvault file id; empty when not stored in chatvault.
    pub file_id: String,
    /// The Drive file id; empty when not stored in Drive.
    pub drive_file_id: String,
}

/// One day of `/dates`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DaySummary {
    pub date: String,
    pub files: i64,
    pub bytes: i64,
}

/// Returns the hex SHA-256 of a secret (codes and OAuth states are kept only as this).
pub fn secret_hash(secret: &str) -> String {
    hex::encode(Sha256::digest(secret.as_bytes()))
}

const LINK_COLUMNS: &str = "telegram_user_id, telegram_username, chat_id, account_id, username, linked_at, time_zone, store_target";

fn link_of(row: &tokio_postgres::Row) -> Link {
    Link {
        telegram_user_id: row.get(0),
        telegram_username: row.get(1),
        chat_id: row.get(2),
        account_id: row.get(3),
        username: row.get(4),
        linked_at: row.get(5),
        time_zone: row.get(6),
        store_target: row.get(7),
    }
}

const FILE_COLUMNS: &str = "account_id, sha256, folder_date, kind, file_name, content_type, size, file_id, drive_file_id";

fn stored_file_of(row: &tokio_postgres::Row) -> StoredFile {
    StoredFile {
        account_id: row.get(0),
        sha256: row.get(1),
        folder_date: row.get(2),
        kind: row.get(3),
        file_name: row.get(4),
        content_type: row.get(5),
        size: u64::try_from(row.get::<_, i64>(6)).unwrap_or(0),
        file_id: row.get(7),
        drive_file_id: row.get(8),
    }
}

/// The bot's tables.
#[derive(Clone, Debug)]
pub struct Store {
    pool: Pool,
}

impl Store {
    pub fn new(pool: Pool) -> Self {
        Self { pool }
    }

    /// Returns the pool, for transactions that span a Drive call (folder creation).
    pub fn pool(&self) -> &Pool {
        &self.pool
    }

    pub async fn link_of_telegram(&self, telegram_user_id: i64) -> Result<Option<Link>, BotError> {
        let client = self.pool.get().await?;
        let row = client.query_opt(&format!("SELECT {LINK_COLUMNS} FROM telegram_links WHERE telegram_user_id = $1"), &[&telegram_user_id]).await?;
        Ok(row.as_ref().map(link_of))
    }

    pub async fn link_of_account(&self, account_id: &str) -> Result<Option<Link>, BotError> {
        let client = self.pool.get().await?;
        let row = client.query_opt(&format!("SELECT {LINK_COLUMNS} FROM telegram_links WHERE account_id = $1"), &[&account_id]).await?;
        Ok(row.as_ref().map(link_of))
    }

    /// Links a Telegram account to a chatvault account; refuses when either side is
    /// linked already (a Telegram account has at most one chatvault account and back).
    pub async fn create_link(
        &self,
        telegram_user_id: i64,
        telegram_username: &str,
        chat_id: i64,
        account_id: &str,
        username: &str,
    ) -> Result<Result<Link, LinkRefusal>, BotError> {
        let client = self.pool.get().await?;
        let inserted = client
            .query_opt(
                &format!(
                    "INSERT INTO telegram_links (telegram_user_id, telegram_username, chat_id, account_id, username) \
                     VALUES ($1, $2, $3, $4, $5) ON CONFLICT DO NOTHING RETURNING {LINK_COLUMNS}"
                ),
                &[&telegram_user_id, &telegram_username, &chat_id, &account_id, &username],
            )
            .await?;
        if let Some(row) = inserted {
            return Ok(Ok(link_of(&row)));
        }
        match self.link_of_telegram(telegram_user_id).await? {
            Some(existing) => Ok(Err(LinkRefusal::TelegramLinked(existing.username))),
            None => Ok(Err(LinkRefusal::AccountLinked)),
        }
    }

    /// Ends the link of a Telegram account; returns it.
    pub async fn unlink_telegram(&self, telegram_user_id: i64) -> Result<Option<Link>, BotError> {
        let client = self.pool.get().await?;
        let row = client
            .query_opt(&format!("DELETE FROM telegram_links WHERE telegram_user_id = $1 RETURNING {LINK_COLUMNS}"), &[&telegram_user_id])
            .await?;
        Ok(row.as_ref().map(link_of))
    }

    /// Ends the link of a chatvault account; returns it.
    pub async fn unlink_account(&self, account_id: &str) -> Result<Option<Link>, BotError> {
        let client = self.pool.get().await?;
        let row = client.query_opt(&format!("DELETE FROM telegram_links WHERE account_id = $1 RETURNING {LINK_COLUMNS}"), &[&account_id]).await?;
        Ok(row.as_ref().map(link_of))
    }

    pub async fn set_time_zone(&self, telegram_user_id: i64, time_zone: &str) -> Result<(), BotError> {
        let client = self.pool.get().await?;
        client.execute("UPDATE telegram_links SET time_zone = $2 WHERE telegram_user_id = $1", &[&telegram_user_id, &time_zone]).await?;
        Ok(())
    }

    pub async fn set_store_target(&self, account_id: &str, store_target: &str) -> Result<(), BotError> {
        let client = self.pool.get().await?;
        client.execute("UPDATE telegram_links SET store_target = $2 WHERE account_id = $1", &[&account_id, &store_target]).await?;
        Ok(())
    }

    /// Returns a new one-time link code for an account, valid for [`CODE_LIFETIME`].
    pub async fn create_link_code(&self, account_id: &str, username: &str) -> Result<(String, DateTime<Utc>), BotError> {
        let code: String = {
            use rand::Rng;
            let mut random = rand::rng();
            (0..CODE_LENGTH).map(|_| CODE_ALPHABET[random.random_range(0..CODE_ALPHABET.len())] as char).collect()
        };
        let expires_at = Utc::now() + CODE_LIFETIME;
        let client = self.pool.get().await?;
        // A new code replaces the account's earlier one: one live code per account.
        client.execute("DELETE FROM link_codes WHERE expires_at < now() OR account_id = $1", &[&account_id]).await?;
        client
            .execute(
                "INSERT INTO link_codes (code_sha256, account_id, username, expires_at) VALUES ($1, $2, $3, $4)",
                &[&secret_hash(&code), &account_id, &username, &expires_at],
            )
            .await?;
        Ok((code, expires_at))
    }

    /// Returns whether a Telegram account may try another link code: fewer than
    /// [`LINK_ATTEMPTS_PER_HOUR`] wrong ones in the last hour.
    pub async fn may_try_link_code(&self, telegram_user_id: i64) -> Result<bool, BotError> {
        let client = self.pool.get().await?;
        client.execute("DELETE FROM link_attempts WHERE attempted_at < now() - interval '1 hour'", &[]).await?;
        let row = client.query_one("SELECT count(*) FROM link_attempts WHERE telegram_user_id = $1", &[&telegram_user_id]).await?;
        Ok(row.get::<_, i64>(0) < LINK_ATTEMPTS_PER_HOUR)
    }

    /// Counts a wrong link code against a Telegram account.
    pub async fn record_wrong_link_code(&self, telegram_user_id: i64) -> Result<(), BotError> {
        let client = self.pool.get().await?;
        client.execute("INSERT INTO link_attempts (telegram_user_id) VALUES ($1)", &[&telegram_user_id]).await?;
        Ok(())
    }

    /// Uses up a link code; returns its account id and username when it is valid.
    pub async fn redeem_link_code(&self, code: &str) -> Result<Option<(String, String)>, BotError> {
        let normalized = code.trim().to_uppercase();
        let client = self.pool.get().await?;
        let row = client
            .query_opt(
                "DELETE FROM link_codes WHERE code_sha256 = $1 RETURNING account_id, username, expires_at > now()",
                &[&secret_hash(&normalized)],
            )
            .await?;
        Ok(row.filter(|row| row.get::<_, bool>(2)).map(|row| (row.get(0), row.get(1))))
    }

    /// Keeps a link waiting for its button (valid [`CODE_LIFETIME`]); returns its id.
    pub async fn save_link_confirmation(&self, telegram_user_id: i64, account_id: &str, username: &str) -> Result<String, BotError> {
        let confirmation_id = hex::encode(rand::random::<[u8; 12]>());
        let client = self.pool.get().await?;
        client.execute("DELETE FROM link_confirmations WHERE expires_at < now()", &[]).await?;
        client
            .execute(
                "INSERT INTO link_confirmations (confirmation_id, telegram_user_id, account_id, username, expires_at) VALUES ($1, $2, $3, $4, $5)",
                &[&confirmation_id, &telegram_user_id, &account_id, &username, &(Utc::now() + CODE_LIFETIME)],
            )
            .await?;
        Ok(confirmation_id)
    }

    /// Takes (uses up) a link waiting for its button, when the same Telegram account
    /// presses it in time; returns its account id and username.
    pub async fn take_link_confirmation(&self, confirmation_id: &str, telegram_user_id: i64) -> Result<Option<(String, String)>, BotError> {
        let client = self.pool.get().await?;
        let row = client
            .query_opt(
                "DELETE FROM link_confirmations WHERE confirmation_id = $1 AND telegram_user_id = $2 RETURNING account_id, username, expires_at > now()",
                &[&confirmation_id, &telegram_user_id],
            )
            .await?;
        Ok(row.filter(|row| row.get::<_, bool>(2)).map(|row| (row.get(0), row.get(1))))
    }

    /// Keeps an OAuth authorization in flight under the hash of its `state`.
    pub async fn save_authorization(&self, state: &str, pending: &PendingAuthorization) -> Result<(), BotError> {
        let client = self.pool.get().await?;
        client.execute("DELETE FROM oauth_states WHERE expires_at < now()", &[]).await?;
        client
            .execute(
                "INSERT INTO oauth_states (state_sha256, telegram_user_id, account_id, sealed_verifier, expires_at) VALUES ($1, $2, $3, $4, $5)",
                &[&secret_hash(state), &pending.telegram_user_id, &pending.account_id, &pending.sealed_verifier, &(Utc::now() + CODE_LIFETIME)],
            )
            .await?;
        Ok(())
    }

    /// Takes (uses up) the authorization of `state` when it has not expired.
    pub async fn take_authorization(&self, state: &str) -> Result<Option<PendingAuthorization>, BotError> {
        let client = self.pool.get().await?;
        let row = client
            .query_opt(
                "DELETE FROM oauth_states WHERE state_sha256 = $1 RETURNING telegram_user_id, account_id, sealed_verifier, expires_at > now()",
                &[&secret_hash(state)],
            )
            .await?;
        Ok(row.filter(|row| row.get::<_, bool>(3)).map(|row| PendingAuthorization {
            telegram_user_id: row.get(0),
            account_id: row.get(1),
            sealed_verifier: row.get(2),
        }))
    }

    pub async fn save_grant(&self, account_id: &str, sealed_refresh: &[u8], scope: &str) -> Result<(), BotError> {
        let client = self.pool.get().await?;
        client
            .execute(
                "INSERT INTO drive_grants (account_id, sealed_refresh, scope) VALUES ($1, $2, $3) \
                 ON CONFLICT (account_id) DO UPDATE SET sealed_refresh = EXCLUDED.sealed_refresh, scope = EXCLUDED.scope, \
                 linked_at = now(), needs_relink = false",
                &[&account_id, &sealed_refresh, &scope],
            )
            .await?;
        Ok(())
    }

    pub async fn grant(&self, account_id: &str) -> Result<Option<Grant>, BotError> {
        let client = self.pool.get().await?;
        let row = client.query_opt("SELECT sealed_refresh, needs_relink FROM drive_grants WHERE account_id = $1", &[&account_id]).await?;
        Ok(row.map(|row| Grant { sealed_refresh: row.get(0), needs_relink: row.get(1) }))
    }

    /// Marks a grant Google refused: kept (so `/drive off` can still revoke it) but unused.
    pub async fn mark_grant_refused(&self, account_id: &str) -> Result<(), BotError> {
        let client = self.pool.get().await?;
        client.execute("UPDATE drive_grants SET needs_relink = true WHERE account_id = $1", &[&account_id]).await?;
        Ok(())
    }

    /// Deletes a grant and the folder ids found with it; returns the sealed refresh token.
    pub async fn delete_grant(&self, account_id: &str) -> Result<Option<Vec<u8>>, BotError> {
        let mut client = self.pool.get().await?;
        let transaction = client.transaction().await?;
        let row = transaction.query_opt("DELETE FROM drive_grants WHERE account_id = $1 RETURNING sealed_refresh", &[&account_id]).await?;
        transaction.execute("DELETE FROM drive_folders WHERE account_id = $1", &[&account_id]).await?;
        transaction.execute("DELETE FROM drive_uploads WHERE account_id = $1", &[&account_id]).await?;
        // Files in the unlinked Drive are no longer reached: sent again, they are stored
        // again (in the Drive linked next).
        transaction.execute("UPDATE stored_files SET drive_file_id = '' WHERE account_id = $1", &[&account_id]).await?;
        transaction.execute("DELETE FROM stored_files WHERE account_id = $1 AND file_id = '' AND drive_file_id = ''", &[&account_id]).await?;
        transaction.commit().await?;
        Ok(row.map(|row| row.get(0)))
    }

    /// Forgets the Drive folders found or made for an account (one was deleted in Drive).
    pub async fn forget_drive_folders(&self, account_id: &str) -> Result<(), BotError> {
        let client = self.pool.get().await?;
        client.execute("DELETE FROM drive_folders WHERE account_id = $1", &[&account_id]).await?;
        Ok(())
    }

    /// Writes a stored file's ids as they are now (an empty id: that copy is gone); a file
    /// with no copy left is forgotten.
    pub async fn replace_stored_ids(&self, file: &StoredFile) -> Result<(), BotError> {
        let client = self.pool.get().await?;
        if file.file_id.is_empty() && file.drive_file_id.is_empty() {
            client.execute("DELETE FROM stored_files WHERE account_id = $1 AND sha256 = $2", &[&file.account_id, &file.sha256]).await?;
        } else {
            client
                .execute(
                    "UPDATE stored_files SET file_id = $3, drive_file_id = $4 WHERE account_id = $1 AND sha256 = $2",
                    &[&file.account_id, &file.sha256, &file.file_id, &file.drive_file_id],
                )
                .await?;
        }
        Ok(())
    }

    /// Returns the resumable session begun for a file, with its total size.
    pub async fn upload_session(&self, account_id: &str, sha256: &str, folder_date: &str) -> Result<Option<(String, u64)>, BotError> {
        let client = self.pool.get().await?;
        let row = client
            .query_opt(
                "SELECT session_uri, total_bytes FROM drive_uploads WHERE account_id = $1 AND sha256 = $2 AND folder_date = $3",
                &[&account_id, &sha256, &folder_date],
            )
            .await?;
        Ok(row.map(|row| (row.get(0), u64::try_from(row.get::<_, i64>(1)).unwrap_or(0))))
    }

    pub async fn save_upload_session(
        &self,
        account_id: &str,
        sha256: &str,
        folder_date: &str,
        session_uri: &str,
        total: u64,
    ) -> Result<(), BotError> {
        let client = self.pool.get().await?;
        let total = i64::try_from(total).unwrap_or(i64::MAX);
        client
            .execute(
                "INSERT INTO drive_uploads (account_id, sha256, folder_date, session_uri, total_bytes) VALUES ($1, $2, $3, $4, $5) \
                 ON CONFLICT (account_id, sha256, folder_date) DO UPDATE SET session_uri = EXCLUDED.session_uri, \
                 total_bytes = EXCLUDED.total_bytes, started_at = now()",
                &[&account_id, &sha256, &folder_date, &session_uri, &total],
            )
            .await?;
        Ok(())
    }

    pub async fn delete_upload_session(&self, account_id: &str, sha256: &str, folder_date: &str) -> Result<(), BotError> {
        let client = self.pool.get().await?;
        client
            .execute("DELETE FROM drive_uploads WHERE account_id = $1 AND sha256 = $2 AND folder_date = $3", &[&account_id, &sha256, &folder_date])
            .await?;
        Ok(())
    }

    /// Returns the file with these bytes stored for the account, if any.
    pub async fn stored_file(&self, account_id: &str, sha256: &str) -> Result<Option<StoredFile>, BotError> {
        let client = self.pool.get().await?;
        let row = client
            .query_opt(&format!("SELECT {FILE_COLUMNS} FROM stored_files WHERE account_id = $1 AND sha256 = $2"), &[&account_id, &sha256])
            .await?;
        Ok(row.as_ref().map(stored_file_of))
    }

    /// Records a stored file, or the target it was stored in now (an empty id keeps the
    /// one recorded).
    pub async fn record_stored_file(&self, file: &StoredFile) -> Result<(), BotError> {
        let client = self.pool.get().await?;
        let size = i64::try_from(file.size).unwrap_or(i64::MAX);
        client
            .execute(
                &format!(
                    "INSERT INTO stored_files ({FILE_COLUMNS}) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9) \
                     ON CONFLICT (account_id, sha256) DO UPDATE SET \
                     file_id = CASE WHEN EXCLUDED.file_id = '' THEN stored_files.file_id ELSE EXCLUDED.file_id END, \
                     drive_file_id = CASE WHEN EXCLUDED.drive_file_id = '' THEN stored_files.drive_file_id ELSE EXCLUDED.drive_file_id END"
                ),
                &[
                    &file.account_id,
                    &file.sha256,
                    &file.folder_date,
                    &file.kind,
                    &file.file_name,
                    &file.content_type,
                    &size,
                    &file.file_id,
                    &file.drive_file_id,
                ],
            )
            .await?;
        Ok(())
    }

    /// Returns the files stored for the account in one date folder, oldest first.
    pub async fn files_of_day(&self, account_id: &str, folder_date: &str) -> Result<Vec<StoredFile>, BotError> {
        let client = self.pool.get().await?;
        let rows = client
            .query(
                &format!("SELECT {FILE_COLUMNS} FROM stored_files WHERE account_id = $1 AND folder_date = $2 ORDER BY stored_at, file_name"),
                &[&account_id, &folder_date],
            )
            .await?;
        Ok(rows.iter().map(stored_file_of).collect())
    }

    /// Returns the most recent `limit` days with files, newest first.
    pub async fn recent_days(&self, account_id: &str, limit: i64) -> Result<Vec<DaySummary>, BotError> {
        let client = self.pool.get().await?;
        let rows = client
            .query(
                "SELECT folder_date, count(*), COALESCE(sum(size), 0)::BIGINT FROM stored_files WHERE account_id = $1 \
                 GROUP BY folder_date ORDER BY folder_date DESC LIMIT $2",
                &[&account_id, &limit],
            )
            .await?;
        Ok(rows.iter().map(|row| DaySummary { date: row.get(0), files: row.get(1), bytes: row.get(2) }).collect())
    }
}
