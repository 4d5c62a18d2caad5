//! Accounts: the rules of registration and log-in with no IO (validation, password policy,
//! lock-out arithmetic, token material, whether registration is open, the cursor of the
//! account listing), password hashing off the async threads, and the outbox relay that
//! publishes account events to `users.events`.

pub mod outbox;
pub mod restore;
pub mod unknown_names;

use std::time::Duration;

use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use argon2::Argon2;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use chatvault_common::config::{Secret, ServiceConfig};
use rand::RngCore;
use sha2::{Digest, Sha256};

use crate::Error;

/// Shortest password accepted.
pub const MIN_PASSWORD_CHARS: usize = 10;
/// Longest password accepted (Argon2 input stays bounded).
pub const MAX_PASSWORD_CHARS: usize = 256;

/// Account settings of the users service.
#[derive(Clone, Debug)]
pub struct AccountSettings {
    /// `CHATVAULT_USERS_LOCKOUT_THRESHOLD`: consecutive failures that lock an account (5).
    pub lockout_threshold: u32,
    /// `CHATVAULT_USERS_LOCKOUT_SECONDS`: how long a lock lasts (900).
    pub lockout_duration: Duration,
    /// `CHATVAULT_USERS_LOGIN_FAILURE_DELAY_MS`: per consecutive failure, the answer to a
    /// failed log-in is delayed by this much (capped at 10 steps); default 250.
    pub failure_delay_step: Duration,
    /// `CHATVAULT_USERS_REFRESH_TTL_SECONDS`: refresh token lifetime (30 days).
    pub refresh_ttl: Duration,
    /// `CHATVAULT_USERS_BOOTSTRAP_ADMIN`: `username:password:email` of the first admin,
    /// created at start-up when no admin exists. It is the only way to the first admin:
    /// `scripts/services.sh start` generates the password on an installation's first start.
    pub bootstrap_admin: Option<BootstrapAdmin>,
    /// `CHATVAULT_USERS_REGISTRATION`: whether anyone may register (`open`, the default) or
    /// nobody (`closed`).
    pub registration: RegistrationPolicy,
}

/// Whether Register accepts new accounts.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RegistrationPolicy {
    /// Anyone who reaches the service may create an account.
    Open,
    /// Register is refused; accounts come only from the bootstrap admin and restores.
    Closed,
}

impl RegistrationPolicy {
    pub fn is_open(self) -> bool {
        self == RegistrationPolicy::Open
    }
}

impl std::str::FromStr for RegistrationPolicy {
    type Err = String;

    /// Parses `open` or `closed` (any case, surrounding spaces ignored).
    fn from_str(text: &str) -> Result<Self, Self::Err> {
        match text.trim().to_ascii_lowercase().as_str() {
            "open" => Ok(RegistrationPolicy::Open),
            "closed" => Ok(RegistrationPolicy::Closed),
            _ => Err("registration must be `open` (anyone may register) or `closed` (nobody may)".to_owned()),
        }
    }
}

/// The first admin of an installation, from `CHATVAULT_USERS_BOOTSTRAP_ADMIN`; its
/// password never shows in `Debug`.
#[derive(Clone, Debug)]
pub struct BootstrapAdmin {
    pub username: String,
    pub password: Secret,
    pub email: String,
}

impl AccountSettings {
    /// Reads the settings from the service configuration.
    pub fn from_config(config: &ServiceConfig) -> Result<Self, Error> {
        let bootstrap_admin = match config.secret_setting("BOOTSTRAP_ADMIN") {
            None => None,
            Some(text) => Some(
                parse_bootstrap_admin(text.expose())
                    .ok_or_else(|| Error::InvalidArgument("CHATVAULT_USERS_BOOTSTRAP_ADMIN must be username:password:email".to_owned()))?,
            ),
        };
        Ok(Self {
            lockout_threshold: config.setting("LOCKOUT_THRESHOLD", 5u32)?.max(1),
            lockout_duration: Duration::from_secs(config.setting("LOCKOUT_SECONDS", 900u64)?),
            failure_delay_step: Duration::from_millis(config.setting("LOGIN_FAILURE_DELAY_MS", 250u64)?),
            refresh_ttl: Duration::from_secs(config.setting("REFRESH_TTL_SECONDS", 30 * 24 * 3600u64)?.max(60)),
            bootstrap_admin,
            registration: config.setting("REGISTRATION", RegistrationPolicy::Open)?,
        })
    }

    /// Returns how long to hold back the answer to the `failures`-th consecutive failure.
    pub fn failure_delay(&self, failures: u32) -> Duration {
        self.failure_delay_step * failures.min(10)
    }
}

/// Splits `username:password:email`; the password may itself contain colons.
fn parse_bootstrap_admin(text: &str) -> Option<BootstrapAdmin> {
    let (username, rest) = text.trim().split_once(':')?;
    let (password, email) = rest.rsplit_once(':')?;
    (!username.is_empty() && !password.is_empty() && !email.is_empty()).then(|| BootstrapAdmin {
        username: username.to_owned(),
        password: Secret::new(password),
        email: email.to_owned(),
    })
}

/// Returns the username when it is 3–32 characters of letters, digits, `_`, `.` or `-`.
pub fn validate_username(username: &str) -> Result<String, Error> {
    let username = username.trim();
    let valid_chars = username.chars().all(|character| character.is_ascii_alphanumeric() || "_.-".contains(character));
    if !(3..=32).contains(&username.len()) || !valid_chars {
        return Err(Error::InvalidArgument("username must be 3 to 32 characters of letters, digits, '_', '.' or '-'".to_owned()));
    }
    Ok(username.to_owned())
}

/// Returns the email when it looks like `local@domain` (no whitespace).
pub fn validate_email(email: &str) -> Result<String, Error> {
    let email = email.trim();
    let well_formed = email.len() <= 254
        && email.split_once('@').is_some_and(|(local, domain)| {
            // `localhost` domains are fine: local installs use them for the first admin.
            !local.is_empty() && !domain.is_empty() && !domain.starts_with('.') && !domain.ends_with('.') && !domain.contains('@')
        })
        && !email.chars().any(char::is_whitespace);
    if !well_formed {
        return Err(Error::InvalidArgument("email must look like name@example.org".to_owned()));
    }
    Ok(email.to_owned())
}

/// Applies the minimum password policy: 10 to 256 characters, at least two kinds of
/// character (letters, digits, others), and not the username or email.
pub fn check_password_policy(password: &str, username: &str, email: &str) -> Result<(), Error> {
    let length = password.chars().count();
    if !(MIN_PASSWORD_CHARS..=MAX_PASSWORD_CHARS).contains(&length) {
        return Err(Error::InvalidArgument(format!("password must be {MIN_PASSWORD_CHARS} to {MAX_PASSWORD_CHARS} characters")));
    }
    let has_letter = password.chars().any(char::is_alphabetic);
    let has_digit = password.chars().any(|character| character.is_ascii_digit());
    let has_other = password.chars().any(|character| !character.is_alphanumeric());
    if [has_letter, has_digit, has_other].iter().filter(|present| **present).count() < 2 {
        return Err(Error::InvalidArgument("password must mix at least two of letters, digits and symbols".to_owned()));
    }
    if password.eq_ignore_ascii_case(username) || password.eq_ignore_ascii_case(email) {
        return Err(Error::InvalidArgument("password must differ from the username and email".to_owned()));
    }
    Ok(())
}

/// Hashes `password` with Argon2id (default parameters) on a blocking thread.
pub async fn hash_password(password: String) -> Result<String, Error> {
    tokio::task::spawn_blocking(move || {
        let mut salt_bytes = [0u8; 16];
        rand::rng().fill_bytes(&mut salt_bytes);
        let salt = SaltString::encode_b64(&salt_bytes).map_err(|error| Error::Internal(format!("salt: {error}")))?;
        Argon2::default()
            .hash_password(password.as_bytes(), &salt)
            .map(|hash| hash.to_string())
            .map_err(|error| Error::Internal(format!("argon2 hash: {error}")))
    })
    .await
    .map_err(|error| Error::Internal(format!("hashing task: {error}")))?
}

/// Checks `password` against an Argon2 PHC string on a blocking thread.
pub async fn verify_password(password: String, phc_hash: String) -> Result<bool, Error> {
    tokio::task::spawn_blocking(move || {
        let parsed = PasswordHash::new(&phc_hash).map_err(|error| Error::Internal(format!("stored hash: {error}")))?;
        Ok(Argon2::default().verify_password(password.as_bytes(), &parsed).is_ok())
    })
    .await
    .map_err(|error| Error::Internal(format!("verify task: {error}")))?
}

/// A hash to verify against when the username is unknown, so that the answer takes as long
/// as for a known one.
pub async fn dummy_hash() -> &'static str {
    static DUMMY: tokio::sync::OnceCell<String> = tokio::sync::OnceCell::const_new();
    DUMMY.get_or_init(|| async { hash_password("not-a-real-password-1".to_owned()).await.unwrap_or_default() }).await
}

/// Returns a new refresh token (256 random bits, URL-safe) and the hash stored for it.
pub fn new_refresh_token() -> (String, Vec<u8>) {
    let mut bytes = [0u8; 32];
    rand::rng().fill_bytes(&mut bytes);
    let token = URL_SAFE_NO_PAD.encode(bytes);
    let hash = refresh_token_hash(&token);
    (token, hash)
}

/// Returns the stored form of a refresh token.
pub fn refresh_token_hash(token: &str) -> Vec<u8> {
    Sha256::digest(token.trim().as_bytes()).to_vec()
}

/// The page size of ListAccounts when the request gives none.
pub const DEFAULT_ACCOUNTS_PAGE: u32 = 100;
/// The largest page of ListAccounts.
pub const MAX_ACCOUNTS_PAGE: u32 = 1000;

/// Returns the page size of a ListAccounts request: the default for 0, at most the maximum.
pub fn accounts_page_size(requested: u32) -> u32 {
    if requested == 0 {
        DEFAULT_ACCOUNTS_PAGE
    } else {
        requested.min(MAX_ACCOUNTS_PAGE)
    }
}

/// Returns the page token that continues a listing after the account whose lower-cased
/// username is `last_key` (accounts are listed in that order, which the unique index on
/// `lower(username)` serves and makes exact).
pub fn accounts_page_token(last_key: &str) -> String {
    URL_SAFE_NO_PAD.encode(last_key.as_bytes())
}

/// Returns the key a page token continues after (`None` for the first page), or
/// INVALID_ARGUMENT for a token this service did not give.
pub fn accounts_page_key(page_token: &str) -> Result<Option<String>, Error> {
    let page_token = page_token.trim();
    if page_token.is_empty() {
        return Ok(None);
    }
    URL_SAFE_NO_PAD
        .decode(page_token)
        .ok()
        .and_then(|bytes| String::from_utf8(bytes).ok())
        .filter(|key| !key.is_empty() && key.len() <= 64)
        .map(Some)
        .ok_or_else(|| Error::InvalidArgument("page_token is not one a previous ListAccounts returned".to_owned()))
}

/// Returns `user` or `admin`, or an error for anything else.
pub fn validate_role(role: &str) -> Result<&'static str, Error> {
    match role.trim() {
        "user" => Ok(chatvault_common::auth::USER_ROLE),
        "admin" => Ok(chatvault_common::auth::ADMIN_ROLE),
        other => Err(Error::InvalidArgument(format!("role must be user or admin, not {other:?}"))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn usernames_and_emails_are_checked() {
        assert!(validate_username("ann_lee").is_ok());
        assert!(validate_username("a").is_err());
        assert!(validate_username("ann lee").is_err());
        assert!(validate_email("ann@example.org").is_ok());
        assert!(validate_email("ann@").is_err());
        assert!(validate_email("admin@localhost").is_ok());
        assert!(validate_email("ann example.org").is_err());
    }

    #[test]
    fn the_password_policy_wants_length_and_variety() {
        assert!(check_password_policy("correct horse 9", "ann", "ann@example.org").is_ok());
        assert!(check_password_policy("short1", "ann", "a@b.c").is_err());
        assert!(check_password_policy("onlyletterslong", "ann", "a@b.c").is_err());
        assert!(check_password_policy("ann@example.org", "ann", "ann@example.org").is_err());
    }

    #[test]
    fn bootstrap_admin_passwords_may_contain_colons_and_never_print() {
        let admin = parse_bootstrap_admin("root:pa:ss:word1:root@example.org").expect("parses");
        assert_eq!((admin.username.as_str(), admin.password.expose(), admin.email.as_str()), ("root", "pa:ss:word1", "root@example.org"));
        assert!(!format!("{admin:?}").contains("pa:ss:word1"), "{admin:?}");
        assert!(parse_bootstrap_admin("root:pw").is_none());
    }

    #[test]
    fn registration_is_open_or_closed_and_nothing_else() {
        assert_eq!("open".parse(), Ok(RegistrationPolicy::Open));
        assert_eq!(" Closed ".parse(), Ok(RegistrationPolicy::Closed));
        assert!(RegistrationPolicy::Open.is_open() && !RegistrationPolicy::Closed.is_open());
        let refused = "invite-only".parse::<RegistrationPolicy>().expect_err("unknown value");
        assert!(refused.contains("`open`") && refused.contains("`closed`"), "{refused}");
    }

    fn config_with(pairs: &[(&str, &str)]) -> Result<ServiceConfig, chatvault_common::Error> {
        let mut environment: std::collections::HashMap<String, String> =
            pairs.iter().map(|(key, value)| ((*key).to_owned(), (*value).to_owned())).collect();
        environment.insert("CHATVAULT_JWT_SECRET".to_owned(), "a".repeat(16) + &"b".repeat(16) + "users-settings-test");
        ServiceConfig::from_env_map("users", crate::DEFAULT_PORTS, &environment)
    }

    #[test]
    fn the_registration_setting_defaults_to_open_and_refuses_unknown_values_by_name() {
        let default = AccountSettings::from_config(&config_with(&[]).expect("config")).expect("settings");
        assert_eq!(default.registration, RegistrationPolicy::Open);
        let closed = config_with(&[("CHATVAULT_USERS_REGISTRATION", "closed")]).expect("config");
        assert_eq!(AccountSettings::from_config(&closed).expect("settings").registration, RegistrationPolicy::Closed);
        let unknown = config_with(&[("CHATVAULT_USERS_REGISTRATION", "sometimes")]).expect("config");
        let message = AccountSettings::from_config(&unknown).expect_err("refused at start-up").to_string();
        assert!(message.contains("CHATVAULT_USERS_REGISTRATION") && message.contains("sometimes") && message.contains("`closed`"), "{message}");
    }

    #[test]
    fn account_pages_have_a_default_and_a_maximum_size() {
        assert_eq!(accounts_page_size(0), DEFAULT_ACCOUNTS_PAGE);
        assert_eq!(accounts_page_size(7), 7);
        assert_eq!(accounts_page_size(50_000), MAX_ACCOUNTS_PAGE);
    }

    #[test]
    fn page_tokens_round_trip_and_foreign_ones_are_refused() {
        assert_eq!(accounts_page_key("").expect("first page"), None);
        let token = accounts_page_token("ann.lee");
        assert_eq!(accounts_page_key(&token).expect("round trip").as_deref(), Some("ann.lee"));
        for foreign in ["***", "%%%", &URL_SAFE_NO_PAD.encode([0xff, 0xfe]), &URL_SAFE_NO_PAD.encode("x".repeat(65))] {
            assert!(matches!(accounts_page_key(foreign), Err(Error::InvalidArgument(_))), "{foreign:?} is refused");
        }
    }

    #[test]
    fn refresh_tokens_are_random_and_hashed() {
        let (first, first_hash) = new_refresh_token();
        let (second, _) = new_refresh_token();
        assert_ne!(first, second);
        assert_eq!(refresh_token_hash(&first), first_hash);
    }
}
