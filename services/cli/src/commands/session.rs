//! The CLI's log-in session: tokens kept in `$XDG_CONFIG_HOME/chatvault/tokens.json`
//! (mode 0600), `CHATVAULT_TOKEN` overriding them, the interceptor that attaches
//! `authorization: Bearer …` to every call, and password prompts.

use std::io::{BufRead, Write};
use std::path::PathBuf;

use anyhow::Context;
use serde::{Deserialize, Serialize};
use tonic::metadata::MetadataValue;

/// What `chatvault login` stores.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct StoredTokens {
    pub(crate) access_token: String,
    pub(crate) refresh_token: String,
    pub(crate) access_expires_unix: i64,
    pub(crate) refresh_expires_unix: i64,
    pub(crate) username: String,
}

/// Returns the token file's path.
pub(crate) fn tokens_path() -> anyhow::Result<PathBuf> {
    let config_home = match std::env::var_os("XDG_CONFIG_HOME").filter(|value| !value.is_empty()) {
        Some(folder) => PathBuf::from(folder),
        None => PathBuf::from(std::env::var_os("HOME").context("neither XDG_CONFIG_HOME nor HOME is set")?).join(".config"),
    };
    Ok(config_home.join("chatvault").join("tokens.json"))
}

/// Returns the stored tokens, when logged in.
pub(crate) fn load_tokens() -> Option<StoredTokens> {
    let text = std::fs::read_to_string(tokens_path().ok()?).ok()?;
    serde_json::from_str(&text).ok()
}

/// Stores `tokens` readable by the owner only.
pub(crate) fn save_tokens(tokens: &StoredTokens) -> anyhow::Result<PathBuf> {
    use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
    let path = tokens_path()?;
    let folder = path.parent().context("token path has a folder")?;
    std::fs::create_dir_all(folder).with_context(|| format!("creating {}", folder.display()))?;
    let temporary = path.with_extension("json.tmp");
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(&temporary)
        .with_context(|| format!("writing {}", temporary.display()))?;
    // An existing file keeps its old mode on open; set it explicitly.
    file.set_permissions(std::fs::Permissions::from_mode(0o600))?;
    file.write_all(serde_json::to_string_pretty(tokens)?.as_bytes())?;
    file.sync_all()?;
    std::fs::rename(&temporary, &path).with_context(|| format!("replacing {}", path.display()))?;
    Ok(path)
}

/// Deletes the stored tokens; returns whether there were any.
pub(crate) fn forget_tokens() -> anyhow::Result<bool> {
    let path = tokens_path()?;
    match std::fs::remove_file(&path) {
        Ok(()) => Ok(true),
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => Ok(false),
        Err(error) => Err(error).with_context(|| format!("removing {}", path.display())),
    }
}

/// Attaches the bearer token (when there is one) to every request.
#[derive(Debug, Clone, Default)]
pub(crate) struct BearerInterceptor {
    header: Option<MetadataValue<tonic::metadata::Ascii>>,
}

impl BearerInterceptor {
    pub(crate) fn new(access_token: Option<String>) -> Self {
        Self { header: access_token.and_then(|token| format!("Bearer {}", token.trim()).parse().ok()) }
    }
}

impl tonic::service::Interceptor for BearerInterceptor {
    fn call(&mut self, mut request: tonic::Request<()>) -> Result<tonic::Request<()>, tonic::Status> {
        if let Some(header) = &self.header {
            request.metadata_mut().insert("authorization", header.clone());
        }
        Ok(request)
    }
}

/// Returns `given`, or asks for it on the terminal without echo.
pub(crate) fn password_or_prompt(given: Option<String>, prompt: &str) -> anyhow::Result<String> {
    if let Some(password) = given {
        return Ok(password);
    }
    let stdin = std::io::stdin();
    let terminal = std::io::IsTerminal::is_terminal(&stdin);
    eprint!("{prompt}: ");
    std::io::stderr().flush()?;
    if terminal {
        let _ = std::process::Command::new("stty").arg("-echo").stdin(std::process::Stdio::inherit()).status();
    }
    let mut line = String::new();
    let read = stdin.lock().read_line(&mut line);
    if terminal {
        let _ = std::process::Command::new("stty").arg("echo").stdin(std::process::Stdio::inherit()).status();
        eprintln!();
    }
    read.context("reading the password")?;
    let password = line.trim_end_matches(['\n', '\r']).to_owned();
    anyhow::ensure!(!password.is_empty(), "no password given");
    Ok(password)
}
