//! Telegram through `teloxide`: the bot client (its Bot API URL configurable, for a
//! self-hosted Bot API server), the files people send, and fetching their bytes.

use std::path::Path;

use chrono_tz::Tz;
use sha2::{Digest, Sha256};
use teloxide::net::Download;
use teloxide::prelude::*;
use teloxide::types::{FileId, Message};
use tokio::io::AsyncReadExt;

use crate::settings::BotSettings;

/// Returns the Bot API client of `settings`, or `None` when no token is configured.
pub fn bot_of(settings: &BotSettings) -> Option<Bot> {
    let token = settings.telegram_token.as_ref()?;
    let client = teloxide::net::default_reqwest_settings()
        // getUpdates long-polls for up to 30 s; downloads of large files take longer.
        .timeout(std::time::Duration::from_secs(600))
        .build()
        .ok()?;
    Some(Bot::with_client(token.expose(), client).set_api_url(settings.api_url.clone()))
}

/// A file in a message a person sent.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct IncomingFile {
    /// `document`, `photo`, `video`, `audio`, `voice` or `video_note`.
    pub kind: &'static str,
    pub file_id: String,
    pub unique_id: String,
    pub file_name: String,
    pub content_type: String,
    /// As Telegram announced it.
    pub size: u64,
}

/// Returns the file of `message`, if it carries one of the kinds the bot stores. Files
/// without a name (photos, voice messages, video notes) are named after their kind and
/// the moment they were sent, in the sender's time zone: `photo_2026-11-22_23-30-05.jpg`.
pub fn incoming_file(message: &Message, zone: Tz) -> Option<IncomingFile> {
    let stamp = message.date.with_timezone(&zone).format("%Y-%m-%d_%H-%M-%S").to_string();
    let named = |given: Option<&String>, kind: &str, extension: &str| given.cloned().unwrap_or_else(|| format!("{kind}_{stamp}.{extension}"));
    let (kind, meta, file_name, content_type) = if let Some(document) = message.document() {
        (
            "document",
            &document.file,
            named(document.file_name.as_ref(), "document", "bin"),
            mime_text(document.mime_type.as_ref(), "application/octet-stream"),
        )
    } else if let Some(sizes) = message.photo() {
        // The last size is the largest: the original as Telegram keeps it.
        let largest = sizes.last()?;
        ("photo", &largest.file, named(None, "photo", "jpg"), "image/jpeg".to_owned())
    } else if let Some(video) = message.video() {
        ("video", &video.file, named(video.file_name.as_ref(), "video", "mp4"), mime_text(video.mime_type.as_ref(), "video/mp4"))
    } else if let Some(audio) = message.audio() {
        ("audio", &audio.file, named(audio.file_name.as_ref(), "audio", "mp3"), mime_text(audio.mime_type.as_ref(), "audio/mpeg"))
    } else if let Some(voice) = message.voice() {
        ("voice", &voice.file, named(None, "voice", "ogg"), mime_text(voice.mime_type.as_ref(), "audio/ogg"))
    } else if let Some(note) = message.video_note() {
        ("video_note", &note.file, named(None, "video_note", "mp4"), "video/mp4".to_owned())
    } else {
        return None;
    };
    Some(IncomingFile { kind, file_id: meta.id.0.clone(), unique_id: meta.unique_id.0.clone(), file_name, content_type, size: u64::from(meta.size) })
}

/// Returns a MIME type as text, or `fallback` when Telegram gave none.
fn mime_text<T: ToString>(given: Option<&T>, fallback: &str) -> String {
    given.map_or_else(|| fallback.to_owned(), ToString::to_string)
}

/// Why a file's bytes could not be fetched.
#[derive(Debug, thiserror::Error)]
pub enum FetchError {
    /// Above what the Bot API lets a bot download.
    #[error("the file is larger than the Bot API lets a bot download")]
    TooBig,
    #[error("{0}")]
    Telegram(String),
}

/// A received file's bytes, in a private temporary file deleted when dropped.
#[derive(Debug)]
pub struct Fetched {
    pub path: tempfile::TempPath,
    pub size: u64,
    /// Hex SHA-256 of the bytes.
    pub sha256: String,
}

/// Fetches the bytes of `file_id` into a temporary file and hashes them: over HTTP from the
/// Bot API's file path, or, with a self-hosted server in local mode, from the absolute path
/// `getFile` names on this machine's disk.
pub async fn fetch(bot: &Bot, settings: &BotSettings, file_id: &str) -> Result<Fetched, FetchError> {
    // Errors are shown to the person: they never carry the bot's token (which Bot API
    // URLs and a local server's paths contain) or a path.
    let hidden = |text: String| match &settings.telegram_token {
        Some(token) => text.replace(token.expose(), "<token>"),
        None => text,
    };
    let file = bot.get_file(FileId(file_id.to_owned())).await.map_err(|error| match &error {
        teloxide::RequestError::Api(api) if api.to_string().to_lowercase().contains("too big") => FetchError::TooBig,
        other => FetchError::Telegram(hidden(other.to_string())),
    })?;
    let temporary = tempfile::NamedTempFile::new().map_err(|error| FetchError::Telegram(format!("creating a temporary file: {error}")))?;
    let path = temporary.into_temp_path();
    if let Some(folder) = settings.api_local_dir.as_deref().filter(|_| Path::new(&file.path).is_absolute()) {
        // Only a file inside the server's folder is read, whatever path the server names.
        let source = tokio::fs::canonicalize(&file.path)
            .await
            .map_err(|error| FetchError::Telegram(format!("the Bot API server's file cannot be opened here ({})", error.kind())))?;
        if !source.starts_with(folder) {
            tracing::warn!("the Bot API server named a file outside CHATVAULT_BOT_API_LOCAL_DIR; refused");
            return Err(FetchError::Telegram("the Bot API server named a file outside its folder".to_owned()));
        }
        tokio::fs::copy(&source, &path)
            .await
            .map_err(|error| FetchError::Telegram(format!("the Bot API server's file cannot be read here ({})", error.kind())))?;
    } else {
        let mut destination =
            tokio::fs::File::create(&path).await.map_err(|error| FetchError::Telegram(format!("writing a temporary file: {error}")))?;
        bot.download_file(&file.path, &mut destination).await.map_err(|error| FetchError::Telegram(hidden(error.to_string())))?;
        destination.sync_all().await.map_err(|error| FetchError::Telegram(format!("writing a temporary file: {error}")))?;
    }
    let (size, sha256) = hash_file(&path).await.map_err(|error| FetchError::Telegram(format!("reading the received file: {error}")))?;
    Ok(Fetched { path, size, sha256 })
}

/// Returns the size and hex SHA-256 of a file.
pub async fn hash_file(path: &Path) -> std::io::Result<(u64, String)> {
    let mut file = tokio::fs::File::open(path).await?;
    let mut hasher = Sha256::new();
    let mut buffer = vec![0u8; 1 << 20];
    let mut size = 0u64;
    loop {
        let read = file.read(&mut buffer).await?;
        if read == 0 {
            break;
        }
        hasher.update(&buffer[..read]);
        size += read as u64;
    }
    Ok((size, hex::encode(hasher.finalize())))
}

/// Edits the bot's answer `message_id` in `chat_id` to `text`; a failure is logged, not
/// returned (the file is stored either way).
pub async fn edit_answer(bot: &Bot, chat_id: i64, message_id: i32, text: &str) {
    let edited = bot.edit_message_text(ChatId(chat_id), teloxide::types::MessageId(message_id), text).await;
    if let Err(error) = edited {
        tracing::warn!(chat_id, message_id, error = %error, "editing the bot's answer failed");
    }
}
