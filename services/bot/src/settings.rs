//! The bot's settings, shared by the bot and its storage workers (`CHATVAULT_BOT_*`).

use std::collections::HashMap;
use std::time::Duration;

use chatvault_common::config::Secret;

use crate::BotError;

/// The public Bot API's limit on files a bot may download (`getFile`), in bytes.
pub const PUBLIC_DOWNLOAD_LIMIT: u64 = 20 * 1024 * 1024;
/// The public Bot API's limit on files a bot may send (`sendDocument`), in bytes.
pub const PUBLIC_UPLOAD_LIMIT: u64 = 50 * 1024 * 1024;
/// A self-hosted Bot API server's limit, both ways (2000 MB).
pub const LOCAL_SERVER_LIMIT: u64 = 2000 * 1024 * 1024;
/// The only Google scope the bot asks for: files it creates itself.
pub const DRIVE_FILE_SCOPE: &str = "https://www.googleapis.com/auth/drive.file";

/// Telegram, Google and the other services, as both processes see them.
#[derive(Clone, Debug)]
pub struct BotSettings {
    /// `CHATVAULT_BOT_TOKEN`: the token BotFather gave. `None`: the bot is off.
    pub telegram_token: Option<Secret>,
    /// `CHATVAULT_BOT_API_URL` (default `https://api.telegram.org`): the Bot API server.
    pub api_url: url::Url,
    /// `CHATVAULT_BOT_API_LOCAL` (`1`): the server is a self-hosted Bot API server in
    /// `--local` mode: `getFile` answers an absolute path on its disk, which this machine
    /// reads, and the size limits are [`LOCAL_SERVER_LIMIT`].
    pub api_local: bool,
    /// `CHATVAULT_BOT_API_LOCAL_DIR`, required in local mode: the Bot API server's working
    /// folder as this machine sees it. Only files inside it are read, whatever path the
    /// server names.
    pub api_local_dir: Option<std::path::PathBuf>,
    /// Largest file the bot accepts (`CHATVAULT_BOT_DOWNLOAD_LIMIT_BYTES`; default
    /// [`PUBLIC_DOWNLOAD_LIMIT`], or [`LOCAL_SERVER_LIMIT`] in local mode).
    pub download_limit: u64,
    /// Largest file sent back as a document (`CHATVAULT_BOT_UPLOAD_LIMIT_BYTES`; default
    /// [`PUBLIC_UPLOAD_LIMIT`], or [`LOCAL_SERVER_LIMIT`] in local mode); larger ones go as
    /// share links.
    pub upload_limit: u64,
    /// `CHATVAULT_BOT_WEBHOOK_URL`: the public HTTPS URL Telegram posts updates to
    /// (`…/telegram/webhook` on the bot's HTTP port). Unset: long polling.
    pub webhook_url: Option<url::Url>,
    /// `CHATVAULT_BOT_PUBLIC_URL` (default `http://127.0.0.1:8086`): where people's browsers
    /// reach the bot's HTTP port; Google redirects to `<it>/oauth/google/callback`.
    pub public_url: String,
    /// `CHATVAULT_BOT_SHARE_URL` (default `http://127.0.0.1:8080`): the web front door,
    /// whose `/s/<token>` pages open the share links of files too big to send back.
    pub share_url: String,
    /// Google's OAuth client and endpoints; `None` when `CHATVAULT_BOT_GOOGLE_CLIENT_ID`
    /// is unset (then `/drive` says Drive is not set up here).
    pub google: Option<GoogleSettings>,
    /// `CHATVAULT_BOT_TOKEN_KEY`: 32 bytes, base64: seals Google refresh tokens at rest.
    pub token_key: Option<[u8; 32]>,
    /// gRPC URLs of users, ingest and storage (`CHATVAULT_BOT_{USERS,INGEST,STORAGE}_URL`).
    pub users_url: String,
    pub ingest_url: String,
    pub storage_url: String,
    /// First wait after a Drive quota answer (`CHATVAULT_BOT_DRIVE_BACKOFF_MS`, default
    /// 1000); doubled each time, at most [`BotSettings::drive_attempts`] tries.
    pub drive_backoff: Duration,
    /// Tries of one Drive call before the person is told (`CHATVAULT_BOT_DRIVE_ATTEMPTS`, 6).
    pub drive_attempts: u32,
    /// Bytes per resumable-upload request (`CHATVAULT_BOT_DRIVE_CHUNK_BYTES`, default 8 MiB;
    /// a multiple of 256 KiB as Drive requires).
    pub drive_chunk: u64,
}

/// A Google OAuth 2.0 client (type "Web application") and Google's endpoints.
#[derive(Clone, Debug)]
pub struct GoogleSettings {
    /// `CHATVAULT_BOT_GOOGLE_CLIENT_ID` / `_CLIENT_SECRET`.
    pub client_id: String,
    pub client_secret: Secret,
    /// `CHATVAULT_BOT_GOOGLE_AUTH_URL` (default `https://accounts.google.com/o/oauth2/v2/auth`).
    pub auth_url: String,
    /// `CHATVAULT_BOT_GOOGLE_TOKEN_URL` (default `https://oauth2.googleapis.com/token`).
    pub token_url: String,
    /// `CHATVAULT_BOT_GOOGLE_REVOKE_URL` (default `https://oauth2.googleapis.com/revoke`).
    pub revoke_url: String,
    /// `CHATVAULT_BOT_GOOGLE_API_URL` (default `https://www.googleapis.com`): Drive's
    /// `/drive/v3` and `/upload/drive/v3` live under it.
    pub api_url: String,
}

/// A drive chunk must be a multiple of this (Drive API resumable uploads).
pub const DRIVE_CHUNK_UNIT: u64 = 256 * 1024;

impl BotSettings {
    /// Reads `CHATVAULT_BOT_*` from `environment`.
    ///
    /// Errors with [`BotError::Config`] naming the variable for a URL that does not parse, a
    /// token key that is not 32 bytes of base64, a Google client without a secret or token
    /// key, or a chunk size that is not a multiple of 256 KiB.
    pub fn from_env_map(environment: &HashMap<String, String>) -> Result<Self, BotError> {
        let get = |key: &str| environment.get(&format!("CHATVAULT_BOT_{key}")).map(|value| value.trim().to_owned()).filter(|value| !value.is_empty());
        let number = |key: &str, default: u64| -> Result<u64, BotError> {
            get(key)
                .map_or(Ok(default), |text| text.parse().map_err(|_| BotError::Config(format!("CHATVAULT_BOT_{key}={text:?} is not a whole number"))))
        };
        let url = |key: &str, default: &str| -> Result<url::Url, BotError> {
            let text = get(key).unwrap_or_else(|| default.to_owned());
            url::Url::parse(&text).map_err(|error| BotError::Config(format!("CHATVAULT_BOT_{key}={text:?} is not a URL: {error}")))
        };
        let api_local = matches!(get("API_LOCAL").as_deref(), Some("1" | "true" | "on"));
        let api_local_dir = match (api_local, get("API_LOCAL_DIR")) {
            (false, _) => None,
            (true, None) => {
                return Err(BotError::Config(
                    "CHATVAULT_BOT_API_LOCAL=1 needs CHATVAULT_BOT_API_LOCAL_DIR: the Bot API server's working folder (its --dir) as this machine sees it"
                        .to_owned(),
                ))
            }
            (true, Some(folder)) => Some(
                std::fs::canonicalize(&folder)
                    .map_err(|error| BotError::Config(format!("CHATVAULT_BOT_API_LOCAL_DIR={folder:?} cannot be opened: {error}")))?,
            ),
        };
        let (download_default, upload_default) =
            if api_local { (LOCAL_SERVER_LIMIT, LOCAL_SERVER_LIMIT) } else { (PUBLIC_DOWNLOAD_LIMIT, PUBLIC_UPLOAD_LIMIT) };
        let token_key = match get("TOKEN_KEY") {
            None => None,
            Some(text) => Some(parse_token_key(&text)?),
        };
        let google = match get("GOOGLE_CLIENT_ID") {
            None => None,
            Some(client_id) => {
                let client_secret = get("GOOGLE_CLIENT_SECRET").ok_or_else(|| {
                    BotError::Config("CHATVAULT_BOT_GOOGLE_CLIENT_ID is set but CHATVAULT_BOT_GOOGLE_CLIENT_SECRET is not".to_owned())
                })?;
                if token_key.is_none() {
                    return Err(BotError::Config(
                        "Google Drive needs CHATVAULT_BOT_TOKEN_KEY (32 random bytes, base64: `openssl rand -base64 32`) to seal refresh tokens at rest"
                            .to_owned(),
                    ));
                }
                Some(GoogleSettings {
                    client_id,
                    client_secret: Secret::new(client_secret),
                    auth_url: url("GOOGLE_AUTH_URL", "https://accounts.google.com/o/oauth2/v2/auth")?.to_string(),
                    token_url: url("GOOGLE_TOKEN_URL", "https://oauth2.googleapis.com/token")?.to_string(),
                    revoke_url: url("GOOGLE_REVOKE_URL", "https://oauth2.googleapis.com/revoke")?.to_string(),
                    api_url: url("GOOGLE_API_URL", "https://www.googleapis.com")?.as_str().trim_end_matches('/').to_owned(),
                })
            }
        };
        let drive_chunk = number("DRIVE_CHUNK_BYTES", 32 * DRIVE_CHUNK_UNIT)?;
        if drive_chunk == 0 || drive_chunk % DRIVE_CHUNK_UNIT != 0 {
            return Err(BotError::Config(format!("CHATVAULT_BOT_DRIVE_CHUNK_BYTES={drive_chunk} must be a positive multiple of 262144 (256 KiB)")));
        }
        let webhook_url = match get("WEBHOOK_URL") {
            None => None,
            Some(_) => Some(url("WEBHOOK_URL", "")?),
        };
        Ok(Self {
            telegram_token: get("TOKEN").map(Secret::new),
            api_url: url("API_URL", "https://api.telegram.org")?,
            api_local,
            api_local_dir,
            download_limit: number("DOWNLOAD_LIMIT_BYTES", download_default)?,
            upload_limit: number("UPLOAD_LIMIT_BYTES", upload_default)?,
            webhook_url,
            public_url: url("PUBLIC_URL", "http://127.0.0.1:8086")?.as_str().trim_end_matches('/').to_owned(),
            share_url: url("SHARE_URL", "http://127.0.0.1:8080")?.as_str().trim_end_matches('/').to_owned(),
            google,
            token_key,
            users_url: get("USERS_URL").unwrap_or_else(|| "http://127.0.0.1:50053".to_owned()),
            ingest_url: get("INGEST_URL").unwrap_or_else(|| "http://127.0.0.1:50051".to_owned()),
            storage_url: get("STORAGE_URL").unwrap_or_else(|| "http://127.0.0.1:50052".to_owned()),
            drive_backoff: Duration::from_millis(number("DRIVE_BACKOFF_MS", 1000)?),
            drive_attempts: u32::try_from(number("DRIVE_ATTEMPTS", 6)?.clamp(1, 20)).unwrap_or(6),
            drive_chunk,
        })
    }

    /// Returns the process environment's settings.
    pub fn from_process_env() -> Result<Self, BotError> {
        Self::from_env_map(&std::env::vars().collect())
    }

    /// Where Google sends the person back after consent.
    pub fn oauth_redirect_url(&self) -> String {
        format!("{}/oauth/google/callback", self.public_url)
    }
}

fn parse_token_key(text: &str) -> Result<[u8; 32], BotError> {
    use base64::Engine;
    let bytes = base64::engine::general_purpose::STANDARD
        .decode(text)
        .map_err(|_| BotError::Config("CHATVAULT_BOT_TOKEN_KEY must be base64 (`openssl rand -base64 32`)".to_owned()))?;
    <[u8; 32]>::try_from(bytes.as_slice()).map_err(|_| BotError::Config(format!("CHATVAULT_BOT_TOKEN_KEY must hold 32 bytes, not {}", bytes.len())))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn settings(pairs: &[(&str, &str)]) -> Result<BotSettings, BotError> {
        BotSettings::from_env_map(&pairs.iter().map(|(key, value)| ((*key).to_owned(), (*value).to_owned())).collect())
    }

    #[test]
    fn local_mode_lifts_the_public_limits_and_google_needs_a_sealing_key() {
        let public = settings(&[]).expect("defaults");
        assert_eq!((public.download_limit, public.upload_limit), (PUBLIC_DOWNLOAD_LIMIT, PUBLIC_UPLOAD_LIMIT));
        assert!(public.google.is_none() && public.telegram_token.is_none() && public.webhook_url.is_none());
        let without_folder = settings(&[("CHATVAULT_BOT_API_LOCAL", "1")]);
        assert!(matches!(without_folder, Err(BotError::Config(message)) if message.contains("CHATVAULT_BOT_API_LOCAL_DIR")));
        let folder = std::env::temp_dir().display().to_string();
        let local = settings(&[("CHATVAULT_BOT_API_LOCAL", "1"), ("CHATVAULT_BOT_API_LOCAL_DIR", &folder)]).expect("local");
        assert_eq!(local.download_limit, LOCAL_SERVER_LIMIT);
        let without_key = settings(&[("CHATVAULT_BOT_GOOGLE_CLIENT_ID", "id"), ("CHATVAULT_BOT_GOOGLE_CLIENT_SECRET", "secret")]);
        assert!(matches!(without_key, Err(BotError::Config(message)) if message.contains("CHATVAULT_BOT_TOKEN_KEY")));
        let short_key = settings(&[("CHATVAULT_BOT_TOKEN_KEY", "c2hvcnQ=")]);
        assert!(matches!(short_key, Err(BotError::Config(message)) if message.contains("32 bytes")));
        let odd_chunk = settings(&[("CHATVAULT_BOT_DRIVE_CHUNK_BYTES", "1000")]);
        assert!(matches!(odd_chunk, Err(BotError::Config(message)) if message.contains("256 KiB")));
    }
}
