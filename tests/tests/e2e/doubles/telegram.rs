//! A wire-level double of the Telegram Bot API server.
//!
//! A bot built on teloxide with `Bot::new(token).set_api_url(base_url)` talks to it exactly
//! as to `api.telegram.org`:
//! - methods: `POST {base}/bot{token}/{method}` (also `GET`), parameters as a JSON body,
//!   `multipart/form-data` (teloxide's `sendDocument`: text fields plus file parts, the
//!   `document` field being `attach://<part name>`), a form body or the query string. The
//!   method name is case-insensitive. Answers are `{"ok":true,"result":...}` or
//!   `{"ok":false,"error_code":N,"description":"..."}`; a wrong token gets 401 `Unauthorized`.
//! - downloads: `GET {base}/file/bot{token}/{file_path}` with a path that `getFile` gave.
//!
//! Simulated people queue updates ([`TelegramDouble::send_text`], [`TelegramDouble::send_file`],
//! ...); the bot receives them by `getUpdates` long polling, or, after `setWebhook`, by POSTs
//! to its webhook. Every request is recorded ([`TelegramDouble::requests`]) and what the bot
//! said is kept per chat ([`TelegramDouble::messages_to`], [`TelegramDouble::documents_to`]).
//!
//! Like the real server it validates `parse_mode` markup (`MarkdownV2`, `HTML`, `Markdown`)
//! and answers `can't parse entities` for malformed text, keeps the plain text (as Telegram
//! shows it) of what was sent, refuses an edit that changes nothing (`message is not
//! modified`), and refuses `getFile` above 20 MiB outside local mode.

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use axum::extract::{DefaultBodyLimit, FromRequest, Multipart, Request, State};
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::{Json, Router};
use base64::Engine as _;
use serde_json::{json, Map, Value};
use sha2::{Digest, Sha256};
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;

use super::{bump, parse_form, percent_decode, random_hex, unix_now, wait_for_change};

/// The bot's own user id, as `getMe` answers it.
pub(crate) const BOT_USER_ID: i64 = 1000;
/// The bot's username, as `getMe` answers it.
pub(crate) const BOT_USERNAME: &str = "chatvault_test_bot";
/// The bot's first name, as `getMe` answers it.
pub(crate) const BOT_FIRST_NAME: &str = "chatvault";
/// The largest file, in bytes, that `getFile` serves from the public server (20 MiB).
pub(crate) const PUBLIC_DOWNLOAD_LIMIT: u64 = 20 * 1024 * 1024;
/// The largest file, in bytes, that a bot may upload to the public server (50 MiB).
pub(crate) const PUBLIC_UPLOAD_LIMIT: u64 = 50 * 1024 * 1024;
/// The header that carries a webhook's secret token.
pub(crate) const SECRET_HEADER: &str = "X-Telegram-Bot-Api-Secret-Token";
/// The description of the 409 answered to `getUpdates` while a webhook is set.
pub(crate) const WEBHOOK_ACTIVE: &str =
    "Conflict: can't use getUpdates method while webhook is active; use deleteWebhook to delete the webhook first";
/// The description of the 409 answered to a waiting `getUpdates` when another one arrives.
pub(crate) const TERMINATED_BY_OTHER_POLL: &str = "Conflict: terminated by other getUpdates request; make sure that only one bot instance is running";
/// The description of the 400 answered to an edit that changes nothing.
pub(crate) const NOT_MODIFIED: &str = "Bad Request: message is not modified: specified new message content and reply markup are exactly the same as a current content and reply markup of the message";

/// The longest wait of a `getUpdates` long poll, in seconds.
const MAX_POLL_SECONDS: i64 = 30;
/// The longest text, in UTF-16 code units after markup, and the longest caption.
const MAX_TEXT_UNITS: usize = 4096;
const MAX_CAPTION_UNITS: usize = 1024;
/// The first update id handed out; real ids are large numbers too.
const FIRST_UPDATE_ID: i64 = 500_000_001;
/// Webhook retry backoff: first and longest wait between failed deliveries.
const FIRST_BACKOFF: Duration = Duration::from_millis(50);
const MAX_BACKOFF: Duration = Duration::from_secs(1);

/// A simulated Telegram user; their private chat with the bot has the same id.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct TelegramUser {
    pub(crate) id: i64,
    pub(crate) first_name: String,
    pub(crate) username: Option<String>,
}

impl TelegramUser {
    pub(crate) fn new(id: i64, first_name: &str, username: Option<&str>) -> Self {
        Self { id, first_name: first_name.to_owned(), username: username.map(str::to_owned) }
    }
}

/// The kind of a file message, naming the Message field that carries it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub(crate) enum FileKind {
    Document,
    Photo,
    Video,
    Audio,
    Voice,
    VideoNote,
}

impl FileKind {
    pub(crate) const ALL: [FileKind; 6] =
        [FileKind::Document, FileKind::Photo, FileKind::Video, FileKind::Audio, FileKind::Voice, FileKind::VideoNote];

    /// The Message field: `document`, `photo`, `video`, `audio`, `voice`, `video_note`.
    pub(crate) fn message_field(self) -> &'static str {
        match self {
            FileKind::Document => "document",
            FileKind::Photo => "photo",
            FileKind::Video => "video",
            FileKind::Audio => "audio",
            FileKind::Voice => "voice",
            FileKind::VideoNote => "video_note",
        }
    }

    /// The folder of `file_path`, as the real server names it.
    fn path_folder(self) -> &'static str {
        match self {
            FileKind::Document => "documents",
            FileKind::Photo => "photos",
            FileKind::Video => "videos",
            FileKind::Audio => "music",
            FileKind::Voice => "voice",
            FileKind::VideoNote => "video_notes",
        }
    }

    /// The extension of `file_path` when the file name has none.
    fn default_extension(self) -> &'static str {
        match self {
            FileKind::Document => "",
            FileKind::Photo => ".jpg",
            FileKind::Video | FileKind::VideoNote => ".mp4",
            FileKind::Audio => ".mp3",
            FileKind::Voice => ".oga",
        }
    }

    /// The leading characters of file ids of this kind (real ids start alike).
    fn id_prefix(self) -> &'static str {
        match self {
            FileKind::Document => "BQACAgIAAxkBAA",
            FileKind::Photo => "AgACAgIAAxkBAA",
            FileKind::Video => "BAACAgIAAxkBAA",
            FileKind::Audio => "CQACAgIAAxkBAA",
            FileKind::Voice => "AwACAgIAAxkBAA",
            FileKind::VideoNote => "DQACAgIAAxkBAA",
        }
    }
}

/// What a queued user message produced: the update and the message in the user's chat.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct QueuedUpdate {
    pub(crate) update_id: i64,
    pub(crate) message_id: i64,
}

/// A file a simulated user sent: `file_id` is new for every send, `file_unique_id` is the
/// same for the same bytes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct SentFile {
    pub(crate) file_id: String,
    pub(crate) file_unique_id: String,
    pub(crate) update_id: i64,
    pub(crate) message_id: i64,
}

/// One request the double received.
#[derive(Clone, PartialEq)]
pub(crate) struct TelegramRequest {
    /// The method as written in the URL (compare case-insensitively, or use [`Self::is`]);
    /// `download` for `GET /file/bot{token}/{path}`.
    pub(crate) method: String,
    /// The JSON body's object, or the multipart / form / query text fields as strings
    /// (so `chat_id` may be `777` or `"777"`: use [`Self::chat_id`]). A download has
    /// `{"file_path": ...}`.
    pub(crate) params: Value,
    /// The first uploaded file part: (file name, bytes).
    pub(crate) file: Option<(String, Vec<u8>)>,
    /// Whether the token in the URL was the bot's.
    pub(crate) authorized: bool,
}

impl TelegramRequest {
    /// Whether this is a call of `method` (case-insensitive).
    pub(crate) fn is(&self, method: &str) -> bool {
        self.method.eq_ignore_ascii_case(method)
    }

    /// `chat_id` as a number, whether it was sent as a JSON number or as text.
    pub(crate) fn chat_id(&self) -> Option<i64> {
        value_as_i64(self.params.get("chat_id")?)
    }
}

impl fmt::Debug for TelegramRequest {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        formatter
            .debug_struct("TelegramRequest")
            .field("method", &self.method)
            .field("params", &self.params)
            .field("file", &self.file.as_ref().map(|(name, bytes)| format!("{name} ({} bytes)", bytes.len())))
            .field("authorized", &self.authorized)
            .finish()
    }
}

/// A text message the bot sent to a chat, with its edits.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct BotMessage {
    pub(crate) message_id: i64,
    /// The plain text as Telegram shows it (markup removed), as first sent.
    pub(crate) text: String,
    /// The plain text of each accepted `editMessageText`, in order.
    pub(crate) edits: Vec<String>,
    /// The current inline keyboard (`{"inline_keyboard": [[...]]}`), if any.
    pub(crate) reply_markup: Option<Value>,
    /// Links of the current version: `<a href>` / `[..](url)` targets, inline button URLs,
    /// then URLs written in the text, without repeats.
    pub(crate) links: Vec<String>,
    /// Unix seconds when it was sent.
    pub(crate) date: i64,
    /// Whether the bot deleted it.
    pub(crate) deleted: bool,
}

impl BotMessage {
    /// The last edit's text, or the original text.
    pub(crate) fn current_text(&self) -> &str {
        self.edits.last().unwrap_or(&self.text)
    }
}

/// One attempt to deliver an update to the webhook.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct WebhookDelivery {
    pub(crate) update_id: i64,
    /// The webhook's HTTP status, or `None` when it could not be reached.
    pub(crate) status: Option<u16>,
    /// Why the delivery failed, as `getWebhookInfo.last_error_message` says it.
    pub(crate) error: Option<String>,
}

/// A document the bot sent: (file name, bytes, plain caption).
pub(crate) type SentDocument = (String, Vec<u8>, Option<String>);

/// A running Telegram Bot API double; dropping it stops the server and webhook deliveries.
#[derive(Debug)]
pub(crate) struct TelegramDouble {
    inner: Arc<Inner>,
}

impl Drop for TelegramDouble {
    fn drop(&mut self) {
        self.inner.shutdown.cancel();
    }
}

impl TelegramDouble {
    /// Starts a double of the public server for the bot with `token` on `127.0.0.1:0`.
    pub(crate) async fn start(token: &str) -> Self {
        Self::launch(token, None).await
    }

    /// Starts a double of a local Bot API server (`--local`): `getFile` answers an absolute
    /// `file_path` of a file it wrote under `dir`, with no size limit, and uploads up to
    /// 2000 MB are accepted.
    pub(crate) async fn start_local(token: &str, dir: &Path) -> Self {
        let dir = std::path::absolute(dir).expect("an absolute path for the local-mode directory");
        tokio::fs::create_dir_all(&dir).await.expect("create the local-mode directory");
        Self::launch(token, Some(dir)).await
    }

    async fn launch(token: &str, local_dir: Option<PathBuf>) -> Self {
        super::install_crypto_provider();
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind the Telegram double");
        let address = listener.local_addr().expect("the Telegram double's address");
        let (changes, _) = watch::channel(0);
        let inner = Arc::new(Inner {
            token: token.to_owned(),
            base_url: format!("http://{address}"),
            local_dir,
            state: Mutex::new(TgState::default()),
            changes,
            shutdown: CancellationToken::new(),
        });
        let app = Router::new().fallback(handle).layer(DefaultBodyLimit::disable()).with_state(inner.clone());
        let shutdown = inner.shutdown.clone();
        tokio::spawn(async move { axum::serve(listener, app).with_graceful_shutdown(shutdown.cancelled_owned()).await });
        tokio::spawn(deliver_webhooks(inner.clone()));
        Self { inner }
    }

    /// `http://127.0.0.1:PORT`, for `Bot::set_api_url`.
    pub(crate) fn base_url(&self) -> String {
        self.inner.base_url.clone()
    }

    /// The bot token the double accepts.
    pub(crate) fn token(&self) -> String {
        self.inner.token.clone()
    }

    /// Makes the user's private chat known without a message (the bot may write to it).
    pub(crate) fn register_user(&self, user: &TelegramUser) {
        self.inner.lock().ensure_chat(user);
        bump(&self.inner.changes);
    }

    /// Queues an update with a private text message from `user`, sent at `date_unix`
    /// (Unix seconds). Text starting with `/` carries a `bot_command` entity over its first
    /// word.
    pub(crate) fn send_text(&self, user: &TelegramUser, text: &str, date_unix: i64) -> QueuedUpdate {
        let queued = {
            let mut state = self.inner.lock();
            state.ensure_chat(user);
            let message_id = state.next_message_id(user.id);
            let mut message = user_message_json(user, message_id, date_unix);
            message["text"] = json!(text);
            if text.starts_with('/') {
                let command = text.split(char::is_whitespace).next().unwrap_or(text);
                message["entities"] = json!([{"type": "bot_command", "offset": 0, "length": command.encode_utf16().count()}]);
            }
            QueuedUpdate { update_id: state.push_update("message", message), message_id }
        };
        bump(&self.inner.changes);
        queued
    }

    /// Queues an update with a private file message from `user`: `bytes` are registered
    /// under a new `file_id`, with a `file_unique_id` derived from their SHA-256. A photo is
    /// two `PhotoSize`s, the last (largest) carrying `bytes`. Photos, voice messages and
    /// video notes have no file name in the Bot API; `file_name` is then only used for the
    /// extension of `file_path`.
    pub(crate) fn send_file(&self, user: &TelegramUser, kind: FileKind, bytes: Vec<u8>, file_name: &str, mime: &str, date_unix: i64) -> SentFile {
        let unique_id = unique_id_of(&bytes);
        self.queue_file(user, kind, Content::Bytes(Arc::new(bytes)), unique_id, file_name, mime, date_unix)
    }

    /// Like [`Self::send_file`] for a file of `size` bytes whose content is
    /// [`generated_content`]`(file_name, size)`, made only when needed (a local-mode
    /// `getFile`, a download, [`Self::file_bytes`]). Outside local mode `getFile` answers
    /// `file is too big` when `size` is above 20 MiB.
    pub(crate) fn send_big_file(&self, user: &TelegramUser, kind: FileKind, size: u64, file_name: &str, mime: &str, date_unix: i64) -> SentFile {
        let unique_id = unique_id_of(format!("generated:{size}:{file_name}").as_bytes());
        self.queue_file(user, kind, Content::Generated { name: file_name.to_owned(), size }, unique_id, file_name, mime, date_unix)
    }

    #[allow(clippy::too_many_arguments, reason = "the public senders' arguments plus the content")]
    fn queue_file(
        &self,
        user: &TelegramUser,
        kind: FileKind,
        content: Content,
        unique_id: String,
        file_name: &str,
        mime: &str,
        date_unix: i64,
    ) -> SentFile {
        let sent = {
            let mut state = self.inner.lock();
            state.ensure_chat(user);
            let size = content.len();
            let file_id = state.new_file_id(kind);
            state.files.insert(
                file_id.clone(),
                StoredFile {
                    unique_id: unique_id.clone(),
                    kind,
                    size,
                    content,
                    file_name: Some(file_name.to_owned()),
                    mime: Some(mime.to_owned()),
                    path: None,
                },
            );
            let meta = json!({"file_id": file_id, "file_unique_id": unique_id, "file_size": size});
            let field = match kind {
                FileKind::Document => merged(meta, json!({"file_name": file_name, "mime_type": mime})),
                FileKind::Photo => {
                    let thumbnail = state.register_thumbnail(&unique_id);
                    json!([thumbnail, merged(meta, json!({"width": 1280, "height": 960}))])
                }
                FileKind::Video => merged(meta, json!({"width": 1280, "height": 720, "duration": 5, "file_name": file_name, "mime_type": mime})),
                FileKind::Audio => merged(meta, json!({"duration": 5, "file_name": file_name, "mime_type": mime, "title": file_name})),
                FileKind::Voice => merged(meta, json!({"duration": 3, "mime_type": mime})),
                FileKind::VideoNote => merged(meta, json!({"length": 240, "duration": 3})),
            };
            let message_id = state.next_message_id(user.id);
            let mut message = user_message_json(user, message_id, date_unix);
            message[kind.message_field()] = field;
            let update_id = state.push_update("message", message);
            SentFile { file_id, file_unique_id: unique_id, update_id, message_id }
        };
        bump(&self.inner.changes);
        sent
    }

    /// Queues a `callback_query` update: `user` pressed an inline button carrying `data`
    /// under the bot's message `message_id` in their chat. Returns the callback query id
    /// (for `answerCallbackQuery`) and the update.
    pub(crate) fn press_button(&self, user: &TelegramUser, message_id: i64, data: &str) -> (String, QueuedUpdate) {
        let pressed = {
            let mut state = self.inner.lock();
            state.ensure_chat(user);
            state.callbacks += 1;
            let query_id = format!("{}{:06}", user.id, state.callbacks);
            // An unknown message is "inaccessible": date 0.
            let message = state
                .message_json
                .get(&(user.id, message_id))
                .cloned()
                .unwrap_or_else(|| json!({"message_id": message_id, "chat": chat_json(user), "date": 0}));
            let query = json!({"id": query_id, "from": user_json(user), "message": message, "chat_instance": format!("-{}", user.id), "data": data});
            (query_id, QueuedUpdate { update_id: state.push_update("callback_query", query), message_id })
        };
        bump(&self.inner.changes);
        pressed
    }

    /// Every request received so far, in order of arrival.
    pub(crate) fn requests(&self) -> Vec<TelegramRequest> {
        self.inner.lock().requests.clone()
    }

    /// The requests of one method (case-insensitive), in order.
    pub(crate) fn requests_named(&self, method: &str) -> Vec<TelegramRequest> {
        self.inner.lock().requests.iter().filter(|request| request.is(method)).cloned().collect()
    }

    /// The text messages the bot sent to `chat_id`, in order.
    pub(crate) fn messages_to(&self, chat_id: i64) -> Vec<BotMessage> {
        self.inner.lock().messages.get(&chat_id).cloned().unwrap_or_default()
    }

    /// The documents the bot sent to `chat_id`, in order: (file name, bytes, plain caption).
    pub(crate) fn documents_to(&self, chat_id: i64) -> Vec<SentDocument> {
        self.inner.lock().documents.get(&chat_id).cloned().unwrap_or_default()
    }

    /// Every attempt to deliver an update to a webhook, in order.
    pub(crate) fn webhook_deliveries(&self) -> Vec<WebhookDelivery> {
        self.inner.lock().deliveries.clone()
    }

    /// The webhook URL set now, if any.
    pub(crate) fn webhook_url(&self) -> Option<String> {
        self.inner.lock().webhook.as_ref().map(|webhook| webhook.url.clone())
    }

    /// How many queued updates the bot has not confirmed yet.
    pub(crate) fn pending_updates(&self) -> usize {
        self.inner.lock().queue.len()
    }

    /// The bytes registered under `file_id` (sent by a user or uploaded by the bot).
    pub(crate) fn file_bytes(&self, file_id: &str) -> Option<Vec<u8>> {
        let content = self.inner.lock().files.get(file_id).map(|file| file.content.clone())?;
        Some(content.materialize().as_ref().clone())
    }

    /// Waits until the bot has sent (or edited) a text message to `chat_id` whose current
    /// text matches, and returns the first such message; `None` after `limit`.
    pub(crate) async fn wait_for_message(&self, chat_id: i64, predicate: impl Fn(&str) -> bool, limit: Duration) -> Option<BotMessage> {
        wait_for_change(&self.inner.changes, limit, || {
            self.inner.lock().messages.get(&chat_id).and_then(|messages| messages.iter().find(|message| predicate(message.current_text())).cloned())
        })
        .await
    }

    /// Waits until the bot has sent at least `count` documents to `chat_id`; returns them
    /// all (fewer than `count` after `limit`).
    pub(crate) async fn wait_for_documents(&self, chat_id: i64, count: usize, limit: Duration) -> Vec<SentDocument> {
        let found =
            wait_for_change(&self.inner.changes, limit, || Some(self.documents_to(chat_id)).filter(|documents| documents.len() >= count)).await;
        found.unwrap_or_else(|| self.documents_to(chat_id))
    }

    /// Waits for the first request of `method` (case-insensitive), including one that
    /// already arrived; `None` after `limit`.
    pub(crate) async fn wait_for_request(&self, method: &str, limit: Duration) -> Option<TelegramRequest> {
        self.wait_for_requests(method, 1, limit).await.into_iter().next()
    }

    /// Waits until at least `count` requests of `method` arrived; returns them all (fewer
    /// than `count` after `limit`).
    pub(crate) async fn wait_for_requests(&self, method: &str, count: usize, limit: Duration) -> Vec<TelegramRequest> {
        let found =
            wait_for_change(&self.inner.changes, limit, || Some(self.requests_named(method)).filter(|requests| requests.len() >= count)).await;
        found.unwrap_or_else(|| self.requests_named(method))
    }

    /// Waits until at least `count` webhook delivery attempts were made; returns them all.
    pub(crate) async fn wait_for_deliveries(&self, count: usize, limit: Duration) -> Vec<WebhookDelivery> {
        let found =
            wait_for_change(&self.inner.changes, limit, || Some(self.webhook_deliveries()).filter(|deliveries| deliveries.len() >= count)).await;
        found.unwrap_or_else(|| self.webhook_deliveries())
    }
}

/// The content of the file [`TelegramDouble::send_big_file`] registers: `size`
/// pseudo-random bytes determined by `file_name` and `size`.
pub(crate) fn generated_content(file_name: &str, size: u64) -> Vec<u8> {
    let digest = Sha256::digest(format!("generated:{size}:{file_name}").as_bytes());
    let mut seed = [0u8; 8];
    seed.copy_from_slice(&digest[..8]);
    let mut word = u64::from_le_bytes(seed) | 1;
    let size = usize::try_from(size).expect("a size that fits in memory");
    let mut content = Vec::with_capacity(size + 8);
    while content.len() < size {
        word ^= word << 13;
        word ^= word >> 7;
        word ^= word << 17;
        content.extend_from_slice(&word.to_le_bytes());
    }
    content.truncate(size);
    content
}

/// A `file_unique_id` for content: `AgAD` and 16 base64url characters of its SHA-256.
fn unique_id_of(content: &[u8]) -> String {
    let encoded = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(Sha256::digest(content));
    format!("AgAD{}", &encoded[..16])
}

#[derive(Debug)]
struct Inner {
    token: String,
    base_url: String,
    local_dir: Option<PathBuf>,
    state: Mutex<TgState>,
    /// Bumped on every state change; waiters watch it.
    changes: watch::Sender<u64>,
    shutdown: CancellationToken,
}

impl Inner {
    fn lock(&self) -> MutexGuard<'_, TgState> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// A file's bytes: kept, or generated on demand.
#[derive(Clone)]
enum Content {
    Bytes(Arc<Vec<u8>>),
    Generated { name: String, size: u64 },
}

impl Content {
    fn len(&self) -> u64 {
        match self {
            Content::Bytes(bytes) => bytes.len() as u64,
            Content::Generated { size, .. } => *size,
        }
    }

    fn materialize(&self) -> Arc<Vec<u8>> {
        match self {
            Content::Bytes(bytes) => bytes.clone(),
            Content::Generated { name, size } => Arc::new(generated_content(name, *size)),
        }
    }
}

impl fmt::Debug for Content {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Content::Bytes(bytes) => write!(formatter, "Bytes({} bytes)", bytes.len()),
            Content::Generated { name, size } => write!(formatter, "Generated({name}, {size} bytes)"),
        }
    }
}

#[derive(Debug)]
struct StoredFile {
    unique_id: String,
    kind: FileKind,
    size: u64,
    content: Content,
    file_name: Option<String>,
    mime: Option<String>,
    /// Given by the first `getFile`.
    path: Option<String>,
}

#[derive(Debug)]
struct Chat {
    first_name: String,
    username: Option<String>,
    last_message_id: i64,
}

#[derive(Debug)]
struct Webhook {
    url: String,
    secret: Option<String>,
    max_connections: i64,
    last_error: Option<(i64, String)>,
}

/// An update to POST to the webhook.
#[derive(Debug)]
struct Delivery {
    url: String,
    secret: Option<String>,
    update_id: i64,
    update: Value,
}

#[derive(Debug, Default)]
struct TgState {
    updates_queued: i64,
    /// Unconfirmed updates, by ascending id.
    queue: VecDeque<(i64, Value)>,
    poll_generation: u64,
    webhook: Option<Webhook>,
    chats: HashMap<i64, Chat>,
    files: HashMap<String, StoredFile>,
    /// `file_path` -> `file_id`.
    paths: HashMap<String, String>,
    files_created: u64,
    paths_created: u64,
    callbacks: u64,
    requests: Vec<TelegramRequest>,
    messages: BTreeMap<i64, Vec<BotMessage>>,
    /// The JSON of the bot's messages by (chat, message id), for callback queries.
    message_json: HashMap<(i64, i64), Value>,
    documents: BTreeMap<i64, Vec<SentDocument>>,
    deliveries: Vec<WebhookDelivery>,
    commands: Value,
}

/// An API error answer: HTTP status and description.
#[derive(Debug, Clone, PartialEq, Eq)]
struct ApiError {
    status: StatusCode,
    description: String,
}

impl ApiError {
    fn bad(detail: &str) -> Self {
        Self { status: StatusCode::BAD_REQUEST, description: format!("Bad Request: {detail}") }
    }

    fn new(status: StatusCode, description: &str) -> Self {
        Self { status, description: description.to_owned() }
    }
}

type Outcome = Result<Value, ApiError>;

/// A file part of a multipart request.
#[derive(Clone)]
struct UploadedPart {
    name: String,
    file_name: String,
    content_type: Option<String>,
    bytes: Vec<u8>,
}

impl fmt::Debug for UploadedPart {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(formatter, "UploadedPart({}, {}, {} bytes)", self.name, self.file_name, self.bytes.len())
    }
}

/// A method call's parameters.
#[derive(Debug)]
struct Call {
    params: Map<String, Value>,
    files: Vec<UploadedPart>,
}

impl Call {
    fn int(&self, key: &str) -> Option<i64> {
        value_as_i64(self.params.get(key)?)
    }

    fn text(&self, key: &str) -> Option<String> {
        match self.params.get(key)? {
            Value::String(text) => Some(text.clone()),
            Value::Null => None,
            other => Some(other.to_string()),
        }
    }

    /// A JSON-valued parameter; multipart and form requests carry it as JSON text.
    fn json(&self, key: &str) -> Option<Value> {
        match self.params.get(key)? {
            Value::String(text) => serde_json::from_str(text).ok(),
            Value::Null => None,
            other => Some(other.clone()),
        }
    }

    fn flag(&self, key: &str) -> bool {
        matches!(self.params.get(key), Some(Value::Bool(true))) || self.text(key).is_some_and(|text| text == "true")
    }

    fn chat_id(&self) -> Result<i64, ApiError> {
        match self.params.get("chat_id") {
            None | Some(Value::Null) => Err(ApiError::bad("chat_id is empty")),
            Some(value) => value_as_i64(value).ok_or_else(|| ApiError::bad("chat not found")),
        }
    }
}

fn value_as_i64(value: &Value) -> Option<i64> {
    match value {
        Value::Number(number) => number.as_i64(),
        Value::String(text) => text.trim().parse().ok(),
        _ => None,
    }
}

/// Adds the fields of `extra` (an object) to `base` (an object).
fn merged(mut base: Value, extra: Value) -> Value {
    if let (Some(base_fields), Value::Object(extra_fields)) = (base.as_object_mut(), extra) {
        base_fields.extend(extra_fields);
    }
    base
}

fn bot_user_json() -> Value {
    json!({"id": BOT_USER_ID, "is_bot": true, "first_name": BOT_FIRST_NAME, "username": BOT_USERNAME})
}

fn user_json(user: &TelegramUser) -> Value {
    let mut json = json!({"id": user.id, "is_bot": false, "first_name": user.first_name, "language_code": "en"});
    if let Some(username) = &user.username {
        json["username"] = json!(username);
    }
    json
}

fn chat_json(user: &TelegramUser) -> Value {
    private_chat_json(user.id, &user.first_name, user.username.as_deref())
}

fn private_chat_json(chat_id: i64, first_name: &str, username: Option<&str>) -> Value {
    let mut json = json!({"id": chat_id, "type": "private", "first_name": first_name});
    if let Some(username) = username {
        json["username"] = json!(username);
    }
    json
}

/// A message from `user` in their private chat, without content fields.
fn user_message_json(user: &TelegramUser, message_id: i64, date_unix: i64) -> Value {
    json!({"message_id": message_id, "from": user_json(user), "chat": chat_json(user), "date": date_unix})
}

impl TgState {
    fn ensure_chat(&mut self, user: &TelegramUser) {
        let chat = self.chats.entry(user.id).or_insert_with(|| Chat { first_name: user.first_name.clone(), username: None, last_message_id: 0 });
        chat.first_name = user.first_name.clone();
        chat.username = user.username.clone();
    }

    fn next_message_id(&mut self, chat_id: i64) -> i64 {
        let chat = self.chats.entry(chat_id).or_insert_with(|| Chat { first_name: format!("user{chat_id}"), username: None, last_message_id: 0 });
        chat.last_message_id += 1;
        chat.last_message_id
    }

    fn chat_json(&self, chat_id: i64) -> Result<Value, ApiError> {
        let chat = self.chats.get(&chat_id).ok_or_else(|| ApiError::bad("chat not found"))?;
        Ok(private_chat_json(chat_id, &chat.first_name, chat.username.as_deref()))
    }

    /// Queues `{"update_id": N, <kind>: payload}` and returns N.
    fn push_update(&mut self, kind: &str, payload: Value) -> i64 {
        let update_id = FIRST_UPDATE_ID + self.updates_queued;
        self.updates_queued += 1;
        let mut update = json!({"update_id": update_id});
        update[kind] = payload;
        self.queue.push_back((update_id, update));
        update_id
    }

    /// Forgets the updates confirmed by `offset` (ids below it; a negative offset keeps
    /// only the last `-offset` updates).
    fn confirm(&mut self, offset: i64) {
        if offset < 0 {
            let keep = usize::try_from(offset.unsigned_abs()).unwrap_or(usize::MAX);
            while self.queue.len() > keep {
                self.queue.pop_front();
            }
        } else {
            while self.queue.front().is_some_and(|(update_id, _)| *update_id < offset) {
                self.queue.pop_front();
            }
        }
    }

    fn new_file_id(&mut self, kind: FileKind) -> String {
        self.files_created += 1;
        format!("{}{:06}{}", kind.id_prefix(), self.files_created, &random_hex()[..20])
    }

    /// Registers the small size of a photo and returns its `PhotoSize` JSON.
    fn register_thumbnail(&mut self, unique_id: &str) -> Value {
        let bytes = format!("thumbnail of {unique_id}").into_bytes();
        let thumbnail_unique_id = unique_id_of(&bytes);
        let file_id = self.new_file_id(FileKind::Photo);
        let size = bytes.len();
        self.files.insert(
            file_id.clone(),
            StoredFile {
                unique_id: thumbnail_unique_id.clone(),
                kind: FileKind::Photo,
                size: size as u64,
                content: Content::Bytes(Arc::new(bytes)),
                file_name: None,
                mime: Some("image/jpeg".to_owned()),
                path: None,
            },
        );
        json!({"file_id": file_id, "file_unique_id": thumbnail_unique_id, "file_size": size, "width": 90, "height": 67})
    }

    fn send_message(&mut self, call: &Call) -> Outcome {
        let chat_id = call.chat_id()?;
        let chat = self.chat_json(chat_id)?;
        let (text, links) = formatted(call.text("text").unwrap_or_default(), call.text("parse_mode"))?;
        check_text(&text)?;
        let reply_markup = inline_keyboard(call);
        let links = all_links(links, &text, reply_markup.as_ref());
        let message_id = self.next_message_id(chat_id);
        let date = unix_now();
        let message = bot_message_json(chat, message_id, date, &text, reply_markup.as_ref(), None);
        self.message_json.insert((chat_id, message_id), message.clone());
        self.messages.entry(chat_id).or_default().push(BotMessage { message_id, text, edits: Vec::new(), reply_markup, links, date, deleted: false });
        Ok(message)
    }

    fn edit_message_text(&mut self, call: &Call) -> Outcome {
        if call.text("inline_message_id").is_some() {
            return Err(ApiError::bad("message to edit not found"));
        }
        let chat_id = call.chat_id()?;
        let chat = self.chat_json(chat_id)?;
        let message_id = call.int("message_id").ok_or_else(|| ApiError::bad("message identifier is not specified"))?;
        let (text, links) = formatted(call.text("text").unwrap_or_default(), call.text("parse_mode"))?;
        check_text(&text)?;
        let reply_markup = inline_keyboard(call);
        let links = all_links(links, &text, reply_markup.as_ref());
        let message = self
            .messages
            .get_mut(&chat_id)
            .and_then(|messages| messages.iter_mut().find(|message| message.message_id == message_id && !message.deleted))
            .ok_or_else(|| ApiError::bad("message to edit not found"))?;
        if message.current_text() == text && message.reply_markup == reply_markup {
            return Err(ApiError::new(StatusCode::BAD_REQUEST, NOT_MODIFIED));
        }
        message.edits.push(text.clone());
        message.reply_markup = reply_markup.clone();
        message.links = links;
        let json = bot_message_json(chat, message_id, message.date, &text, reply_markup.as_ref(), Some(unix_now()));
        self.message_json.insert((chat_id, message_id), json.clone());
        Ok(json)
    }

    fn delete_message(&mut self, call: &Call) -> Outcome {
        if let (Ok(chat_id), Some(message_id)) = (call.chat_id(), call.int("message_id")) {
            if let Some(message) =
                self.messages.get_mut(&chat_id).and_then(|messages| messages.iter_mut().find(|message| message.message_id == message_id))
            {
                message.deleted = true;
            }
        }
        Ok(json!(true))
    }

    fn send_document(&mut self, call: &Call, local: bool) -> Outcome {
        let chat_id = call.chat_id()?;
        let chat = self.chat_json(chat_id)?;
        let caption = match call.text("caption") {
            Some(raw) => {
                let (caption, _) = formatted(raw, call.text("parse_mode"))?;
                if caption.encode_utf16().count() > MAX_CAPTION_UNITS {
                    return Err(ApiError::bad("message caption is too long"));
                }
                Some(caption).filter(|caption| !caption.is_empty())
            }
            None => None,
        };
        let (file_id, file_name, bytes, mime) = match self.document_source(call)? {
            DocumentSource::Known(file_id) => {
                let file = self.files.get(&file_id).ok_or_else(|| ApiError::bad("wrong file identifier/HTTP URL specified"))?;
                let name = file.file_name.clone().unwrap_or_else(|| "document".to_owned());
                let mime = file.mime.clone().unwrap_or_else(|| "application/octet-stream".to_owned());
                (file_id, name, file.content.materialize().as_ref().clone(), mime)
            }
            DocumentSource::Upload(part) => {
                let limit = if local { 2000 * 1000 * 1000 } else { PUBLIC_UPLOAD_LIMIT };
                if part.bytes.len() as u64 > limit {
                    return Err(ApiError::new(StatusCode::PAYLOAD_TOO_LARGE, "Request Entity Too Large"));
                }
                let name = if part.file_name.is_empty() { "document".to_owned() } else { part.file_name.clone() };
                let mime =
                    part.content_type.clone().filter(|mime| mime != "application/octet-stream").unwrap_or_else(|| guess_mime(&name).to_owned());
                let file_id = self.new_file_id(FileKind::Document);
                self.files.insert(
                    file_id.clone(),
                    StoredFile {
                        unique_id: unique_id_of(&part.bytes),
                        kind: FileKind::Document,
                        size: part.bytes.len() as u64,
                        content: Content::Bytes(Arc::new(part.bytes.clone())),
                        file_name: Some(name.clone()),
                        mime: Some(mime.clone()),
                        path: None,
                    },
                );
                (file_id, name, part.bytes, mime)
            }
        };
        let unique_id = self.files.get(&file_id).map(|file| file.unique_id.clone()).unwrap_or_default();
        let message_id = self.next_message_id(chat_id);
        let mut message = json!({
            "message_id": message_id,
            "from": bot_user_json(),
            "chat": chat,
            "date": unix_now(),
            "document": {"file_id": file_id, "file_unique_id": unique_id, "file_size": bytes.len(), "file_name": file_name, "mime_type": mime},
        });
        if let Some(caption) = &caption {
            message["caption"] = json!(caption);
        }
        self.message_json.insert((chat_id, message_id), message.clone());
        self.documents.entry(chat_id).or_default().push((file_name, bytes, caption));
        Ok(message)
    }

    /// Where `sendDocument`'s `document` comes from: a file part named `document`, the
    /// part an `attach://<name>` value names, or a known `file_id`.
    fn document_source(&self, call: &Call) -> Result<DocumentSource, ApiError> {
        if let Some(part) = call.files.iter().find(|part| part.name == "document") {
            return Ok(DocumentSource::Upload(part.clone()));
        }
        match call.text("document") {
            None => Err(ApiError::bad("there is no document in the request")),
            Some(value) => match value.strip_prefix("attach://") {
                Some(name) => call
                    .files
                    .iter()
                    .find(|part| part.name == name)
                    .map(|part| DocumentSource::Upload(part.clone()))
                    .ok_or_else(|| ApiError::bad("there is no document in the request")),
                None if self.files.contains_key(&value) => Ok(DocumentSource::Known(value)),
                None => Err(ApiError::bad("wrong file identifier/HTTP URL specified")),
            },
        }
    }

    /// Gives the file a `file_path` (on the first call) and returns the `File` JSON, plus
    /// the content to write there in local mode when the path is new.
    fn plan_get_file(&mut self, call: &Call, local_dir: Option<&Path>) -> Result<(Value, Option<(PathBuf, Content)>), ApiError> {
        let file_id = call.text("file_id").filter(|id| !id.is_empty()).ok_or_else(|| ApiError::bad("invalid file_id"))?;
        let number = self.paths_created + 1;
        let file = self.files.get_mut(&file_id).ok_or_else(|| ApiError::bad("invalid file_id"))?;
        if local_dir.is_none() && file.size > PUBLIC_DOWNLOAD_LIMIT {
            return Err(ApiError::bad("file is too big"));
        }
        let mut to_write = None;
        let path = match file.path.clone() {
            Some(path) => path,
            None => {
                let extension = file.file_name.as_deref().and_then(extension_of).unwrap_or_else(|| file.kind.default_extension().to_owned());
                let relative = format!("{}/file_{number}{extension}", file.kind.path_folder());
                let path = match local_dir {
                    Some(dir) => {
                        let absolute = dir.join(&relative);
                        to_write = Some((absolute.clone(), file.content.clone()));
                        absolute.to_string_lossy().into_owned()
                    }
                    None => relative,
                };
                file.path = Some(path.clone());
                path
            }
        };
        let answer = json!({"file_id": file_id, "file_unique_id": file.unique_id, "file_size": file.size, "file_path": path});
        if to_write.is_some() || !self.paths.contains_key(&path) {
            self.paths_created = number;
            self.paths.insert(path, file_id);
        }
        Ok((answer, to_write))
    }

    fn set_webhook(&mut self, call: &Call) -> Outcome {
        let url = call.text("url").unwrap_or_default();
        if url.is_empty() {
            return self.delete_webhook(call);
        }
        if !(url.starts_with("https://") || url.starts_with("http://")) {
            return Err(ApiError::bad("bad webhook: An HTTPS URL must be provided for webhook"));
        }
        let secret = call.text("secret_token").filter(|secret| !secret.is_empty());
        if let Some(secret) = &secret {
            if secret.len() > 256 || !secret.chars().all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-') {
                return Err(ApiError::bad("secret token contains unallowed characters"));
            }
        }
        if call.flag("drop_pending_updates") {
            self.queue.clear();
        }
        let max_connections = call.int("max_connections").unwrap_or(40);
        self.webhook = Some(Webhook { url, secret, max_connections, last_error: None });
        Ok(json!(true))
    }

    fn delete_webhook(&mut self, call: &Call) -> Outcome {
        if call.flag("drop_pending_updates") {
            self.queue.clear();
        }
        self.webhook = None;
        Ok(json!(true))
    }

    fn webhook_info(&self) -> Value {
        let mut info = json!({"url": "", "has_custom_certificate": false, "pending_update_count": self.queue.len()});
        if let Some(webhook) = &self.webhook {
            info["url"] = json!(webhook.url);
            info["max_connections"] = json!(webhook.max_connections);
            info["ip_address"] = json!("127.0.0.1");
            if let Some((date, message)) = &webhook.last_error {
                info["last_error_date"] = json!(date);
                info["last_error_message"] = json!(message);
            }
        }
        info
    }

    /// The first unconfirmed update, when a webhook is set.
    fn next_delivery(&self) -> Option<Delivery> {
        let webhook = self.webhook.as_ref()?;
        let (update_id, update) = self.queue.front()?;
        Some(Delivery { url: webhook.url.clone(), secret: webhook.secret.clone(), update_id: *update_id, update: update.clone() })
    }
}

#[derive(Debug)]
enum DocumentSource {
    Known(String),
    Upload(UploadedPart),
}

/// `.ext` of a file name, when it is short and alphanumeric.
fn extension_of(file_name: &str) -> Option<String> {
    let (_, extension) = file_name.rsplit_once('.')?;
    (!extension.is_empty() && extension.len() <= 8 && extension.chars().all(|c| c.is_ascii_alphanumeric()))
        .then(|| format!(".{}", extension.to_ascii_lowercase()))
}

/// The MIME type Telegram would guess from a file name's extension.
fn guess_mime(file_name: &str) -> &'static str {
    match extension_of(file_name).as_deref() {
        Some(".pdf") => "application/pdf",
        Some(".zip") => "application/zip",
        Some(".txt") => "text/plain",
        Some(".json") => "application/json",
        Some(".html") => "text/html",
        Some(".csv") => "text/csv",
        Some(".jpg" | ".jpeg") => "image/jpeg",
        Some(".png") => "image/png",
        Some(".mp4") => "video/mp4",
        Some(".mp3") => "audio/mpeg",
        _ => "application/octet-stream",
    }
}

/// A bot message's JSON, as `sendMessage` / `editMessageText` answer it.
fn bot_message_json(chat: Value, message_id: i64, date: i64, text: &str, reply_markup: Option<&Value>, edit_date: Option<i64>) -> Value {
    let mut message = json!({"message_id": message_id, "from": bot_user_json(), "chat": chat, "date": date, "text": text});
    if let Some(markup) = reply_markup {
        message["reply_markup"] = markup.clone();
    }
    if let Some(edit_date) = edit_date {
        message["edit_date"] = json!(edit_date);
    }
    message
}

/// The `reply_markup` parameter when it is an inline keyboard (only those show in the
/// returned Message).
fn inline_keyboard(call: &Call) -> Option<Value> {
    call.json("reply_markup").filter(|markup| markup.get("inline_keyboard").is_some())
}

fn check_text(text: &str) -> Result<(), ApiError> {
    if text.trim().is_empty() {
        return Err(ApiError::bad("message text is empty"));
    }
    if text.encode_utf16().count() > MAX_TEXT_UNITS {
        return Err(ApiError::bad("message is too long"));
    }
    Ok(())
}

/// Markup links, inline button URLs, then URLs in the text, without repeats.
fn all_links(markup_links: Vec<String>, text: &str, reply_markup: Option<&Value>) -> Vec<String> {
    let mut links = markup_links;
    if let Some(rows) = reply_markup.and_then(|markup| markup["inline_keyboard"].as_array()) {
        for button in rows.iter().filter_map(Value::as_array).flatten() {
            if let Some(url) = button["url"].as_str().or_else(|| button["login_url"]["url"].as_str()) {
                links.push(url.to_owned());
            }
        }
    }
    for word in text.split(|c: char| c.is_whitespace() || c == '<' || c == '>' || c == '"') {
        if let Some(start) = word.find("https://").or_else(|| word.find("http://")) {
            links.push(word[start..].trim_end_matches(['.', ',', ')', ';', '!', '?']).to_owned());
        }
    }
    let mut unique = Vec::new();
    for link in links {
        if !unique.contains(&link) {
            unique.push(link);
        }
    }
    unique
}

/// Parses `text` per `parse_mode` into (plain text, link targets), or the API error.
fn formatted(text: String, parse_mode: Option<String>) -> Result<(String, Vec<String>), ApiError> {
    parse_formatted(&text, parse_mode.as_deref()).map_err(|detail| ApiError::bad(&detail))
}

/// Parses `text` as the Bot API would for `parse_mode` (`MarkdownV2`, `HTML`, `Markdown`,
/// none): the plain text and the link targets, or the description after `Bad Request: `.
pub(crate) fn parse_formatted(text: &str, parse_mode: Option<&str>) -> Result<(String, Vec<String>), String> {
    let parsed = match parse_mode.map(str::to_ascii_lowercase).as_deref() {
        None | Some("") => return Ok((text.to_owned(), Vec::new())),
        Some("markdownv2") => markup::markdown_v2(text),
        Some("html") => markup::html(text),
        Some("markdown") => markup::markdown(text),
        Some(_) => return Err("unsupported parse_mode".to_owned()),
    };
    parsed.map_err(|detail| format!("can't parse entities: {detail}"))
}

/// The Bot API's formatting options, checked as strictly as the server checks them.
mod markup {
    /// Characters that must be escaped outside entities in MarkdownV2.
    const RESERVED_V2: &str = "_*[]()~`>#+-=|{}.!";
    /// Tags the HTML mode knows.
    const HTML_TAGS: [&str; 16] =
        ["b", "strong", "i", "em", "u", "ins", "s", "strike", "del", "span", "tg-spoiler", "a", "code", "pre", "blockquote", "tg-emoji"];

    type Parsed = Result<(String, Vec<String>), String>;

    fn reserved(character: char) -> String {
        format!("Character '{character}' is reserved and must be escaped with the preceding '\\'")
    }

    fn unclosed(offset: usize) -> String {
        format!("Can't find end of the entity starting at byte offset {offset}")
    }

    /// Opens or closes a paired marker; closing one that is not the innermost is an error.
    fn toggle(open: &mut Vec<(&'static str, usize)>, marker: &'static str, offset: usize) -> Result<(), String> {
        if open.last().is_some_and(|(top, _)| *top == marker) {
            open.pop();
            return Ok(());
        }
        if let Some((_, start)) = open.iter().find(|(top, _)| *top == marker) {
            return Err(unclosed(*start));
        }
        open.push((marker, offset));
        Ok(())
    }

    /// A `code` or ```` ```pre``` ```` span starting at `start`: its text and how many
    /// characters it took. Inside, `\` escapes the next character when `escapes`.
    fn code_span(chars: &[(usize, char)], start: usize, escapes: bool) -> Result<(String, usize), String> {
        let fenced = chars.len() >= start + 3 && chars[start..start + 3].iter().all(|(_, c)| *c == '`');
        let width = if fenced { 3 } else { 1 };
        let mut index = start + width;
        let mut content = String::new();
        loop {
            let Some(&(_, character)) = chars.get(index) else {
                return Err(format!("Can't find end of {} entity at byte offset {}", if fenced { "Pre" } else { "Code" }, chars[start].0));
            };
            if escapes && character == '\\' {
                if let Some(&(_, escaped)) = chars.get(index + 1) {
                    content.push(escaped);
                    index += 2;
                    continue;
                }
            }
            if character == '`' {
                if !fenced {
                    index += 1;
                    break;
                }
                if chars.len() >= index + 3 && chars[index..index + 3].iter().all(|(_, c)| *c == '`') {
                    index += 3;
                    break;
                }
            }
            content.push(character);
            index += 1;
        }
        if fenced {
            // A first line without spaces names the language.
            if let Some((language, rest)) = content.split_once('\n') {
                if !language.contains(char::is_whitespace) {
                    content = rest.to_owned();
                }
            }
        }
        Ok((content, index - start))
    }

    /// The `(url)` after `]` at `index` (pointing at `(`): the URL and the index after `)`.
    fn link_target(chars: &[(usize, char)], index: usize, escapes: bool) -> Option<(String, usize)> {
        if chars.get(index).map(|(_, c)| *c) != Some('(') {
            return None;
        }
        let mut url = String::new();
        let mut at = index + 1;
        loop {
            let &(_, character) = chars.get(at)?;
            match character {
                '\\' if escapes => {
                    url.push(chars.get(at + 1)?.1);
                    at += 2;
                }
                ')' => return Some((url, at + 1)),
                other => {
                    url.push(other);
                    at += 1;
                }
            }
        }
    }

    pub(super) fn markdown_v2(text: &str) -> Parsed {
        let chars: Vec<(usize, char)> = text.char_indices().collect();
        let mut plain = String::new();
        let mut links = Vec::new();
        let mut open: Vec<(&'static str, usize)> = Vec::new();
        let mut index = 0;
        let mut line_start = true;
        while index < chars.len() {
            let (offset, character) = chars[index];
            let next = chars.get(index + 1).map(|(_, c)| *c);
            let at_line_start = line_start;
            line_start = character == '\n';
            match character {
                '\\' => match next {
                    Some(escaped) => {
                        plain.push(escaped);
                        index += 2;
                        continue;
                    }
                    None => return Err(reserved('\\')),
                },
                '`' => {
                    let (content, taken) = code_span(&chars, index, true)?;
                    plain.push_str(&content);
                    index += taken;
                    continue;
                }
                '*' => toggle(&mut open, "*", offset)?,
                '~' => toggle(&mut open, "~", offset)?,
                '_' if next == Some('_') => {
                    toggle(&mut open, "__", offset)?;
                    index += 2;
                    continue;
                }
                '_' => toggle(&mut open, "_", offset)?,
                '|' if next == Some('|') => {
                    toggle(&mut open, "||", offset)?;
                    index += 2;
                    continue;
                }
                '[' => open.push(("[", offset)),
                '!' if next == Some('[') => {}
                ']' if open.last().is_some_and(|(top, _)| *top == "[") => {
                    let Some((url, after)) = link_target(&chars, index + 1, true) else {
                        return Err(format!("Can't find end of a URL at byte offset {offset}"));
                    };
                    open.pop();
                    if !url.starts_with("tg://emoji") {
                        links.push(url);
                    }
                    index = after;
                    continue;
                }
                '>' if at_line_start => {}
                other if RESERVED_V2.contains(other) => return Err(reserved(other)),
                other => plain.push(other),
            }
            index += 1;
        }
        match open.first() {
            Some((_, offset)) => Err(unclosed(*offset)),
            None => Ok((plain, links)),
        }
    }

    pub(super) fn markdown(text: &str) -> Parsed {
        let chars: Vec<(usize, char)> = text.char_indices().collect();
        let mut plain = String::new();
        let mut links = Vec::new();
        let mut open: Option<(char, usize)> = None;
        let mut index = 0;
        while index < chars.len() {
            let (offset, character) = chars[index];
            let next = chars.get(index + 1).map(|(_, c)| *c);
            match character {
                '\\' if next.is_some_and(|c| "_*`[".contains(c)) => {
                    plain.push(next.unwrap_or_default());
                    index += 2;
                    continue;
                }
                '*' | '_' => match open {
                    Some((marker, _)) if marker == character => open = None,
                    None => open = Some((character, offset)),
                    Some(_) => plain.push(character),
                },
                '`' if open.is_none() => {
                    let (content, taken) = code_span(&chars, index, false)?;
                    plain.push_str(&content);
                    index += taken;
                    continue;
                }
                '[' if open.is_none() => {
                    let Some(close) = chars[index..].iter().position(|(_, c)| *c == ']').map(|position| index + position) else {
                        return Err(unclosed(offset));
                    };
                    let Some((url, after)) = link_target(&chars, close + 1, false) else {
                        return Err(unclosed(offset));
                    };
                    plain.extend(chars[index + 1..close].iter().map(|(_, c)| *c));
                    links.push(url);
                    index = after;
                    continue;
                }
                other => plain.push(other),
            }
            index += 1;
        }
        match open {
            Some((_, offset)) => Err(unclosed(offset)),
            None => Ok((plain, links)),
        }
    }

    /// Decodes the entity at the start of `tail` (which starts with `&`): the character and
    /// its length in bytes. Named entities: `lt`, `gt`, `amp`, `quot`; numeric ones.
    fn entity(tail: &str) -> Option<(char, usize)> {
        let end = tail.char_indices().take(12).find(|(_, c)| *c == ';')?.0;
        let name = &tail[1..end];
        let character = match name {
            "lt" => '<',
            "gt" => '>',
            "amp" => '&',
            "quot" => '"',
            _ => {
                let number = name.strip_prefix('#')?;
                let code = match number.strip_prefix(['x', 'X']) {
                    Some(hex) => u32::from_str_radix(hex, 16).ok()?,
                    None => number.parse().ok()?,
                };
                char::from_u32(code)?
            }
        };
        Some((character, end + 1))
    }

    fn decode_entities(text: &str) -> String {
        let mut decoded = String::new();
        let mut index = 0;
        while let Some(character) = text[index..].chars().next() {
            match (character == '&').then(|| entity(&text[index..])).flatten() {
                Some((entity, length)) => {
                    decoded.push(entity);
                    index += length;
                }
                None => {
                    decoded.push(character);
                    index += character.len_utf8();
                }
            }
        }
        decoded
    }

    /// The value of attribute `name` in a tag's attribute text.
    fn attribute(attributes: &str, name: &str) -> Option<String> {
        let start = attributes.find(&format!("{name}="))? + name.len() + 1;
        let value = &attributes[start..];
        let quote = value.chars().next()?;
        if quote == '"' || quote == '\'' {
            let end = value[1..].find(quote)?;
            Some(value[1..1 + end].to_owned())
        } else {
            value.split_whitespace().next().map(str::to_owned)
        }
    }

    pub(super) fn html(text: &str) -> Parsed {
        let mut plain = String::new();
        let mut links = Vec::new();
        let mut open: Vec<String> = Vec::new();
        let mut index = 0;
        while let Some(character) = text[index..].chars().next() {
            let tail = &text[index..];
            match character {
                '<' => {
                    let Some(end) = tail.find('>') else {
                        return Err(format!("Unclosed start tag at byte offset {index}"));
                    };
                    let inside = &tail[1..end];
                    if let Some(name) = inside.strip_prefix('/') {
                        let name = name.trim().to_ascii_lowercase();
                        match open.pop() {
                            None => return Err(format!("Unexpected end tag at byte offset {index}")),
                            Some(top) if top == name => {}
                            Some(top) => return Err(format!("Unmatched end tag at byte offset {index}, expected \"</{top}>\", found \"</{name}>\"")),
                        }
                    } else {
                        let name_end = inside.find(char::is_whitespace).unwrap_or(inside.len());
                        let name = inside[..name_end].to_ascii_lowercase();
                        if !HTML_TAGS.contains(&name.as_str()) {
                            return Err(format!("Unsupported start tag \"{name}\" at byte offset {index}"));
                        }
                        if name == "a" {
                            if let Some(href) = attribute(&inside[name_end..], "href") {
                                links.push(decode_entities(&href));
                            }
                        }
                        open.push(name);
                    }
                    index += end + 1;
                }
                '&' => match entity(tail) {
                    Some((decoded, length)) => {
                        plain.push(decoded);
                        index += length;
                    }
                    None => {
                        plain.push('&');
                        index += 1;
                    }
                },
                other => {
                    plain.push(other);
                    index += other.len_utf8();
                }
            }
        }
        match open.last() {
            Some(top) => Err(format!("Can't find end tag corresponding to start tag \"{top}\"")),
            None => Ok((plain, links)),
        }
    }
}

fn api_response(outcome: Outcome) -> Response {
    match outcome {
        Ok(result) => Json(json!({"ok": true, "result": result})).into_response(),
        Err(error) => api_error(error.status, &error.description),
    }
}

fn api_error(status: StatusCode, description: &str) -> Response {
    (status, Json(json!({"ok": false, "error_code": status.as_u16(), "description": description}))).into_response()
}

/// Routes `/bot{token}/{method}` and `/file/bot{token}/{path}`; anything else is 404.
async fn handle(State(inner): State<Arc<Inner>>, request: Request) -> Response {
    let segments: Vec<String> = request.uri().path().trim_start_matches('/').split('/').map(|segment| percent_decode(segment, false)).collect();
    match segments.as_slice() {
        [file, bot, path @ ..] if file == "file" && bot.starts_with("bot") && !path.is_empty() => download(&inner, &bot[3..], &path.join("/")).await,
        [bot, method] if bot.starts_with("bot") => api_call(&inner, &bot[3..], method, request).await,
        _ => api_error(StatusCode::NOT_FOUND, "Not Found"),
    }
}

async fn api_call(inner: &Arc<Inner>, token: &str, method: &str, request: Request) -> Response {
    let (params, files) = match read_params(request).await {
        Ok(read) => read,
        Err(description) => return api_error(StatusCode::BAD_REQUEST, &description),
    };
    let authorized = token == inner.token;
    let record = TelegramRequest {
        method: method.to_owned(),
        params: Value::Object(params.clone()),
        file: files.first().map(|part| (part.file_name.clone(), part.bytes.clone())),
        authorized,
    };
    let call = Call { params, files };
    let method = method.to_ascii_lowercase();
    let response = if !authorized {
        inner.lock().requests.push(record);
        api_error(StatusCode::UNAUTHORIZED, "Unauthorized")
    } else if method == "getupdates" {
        return get_updates(inner, record, &call).await;
    } else if method == "getfile" {
        return get_file(inner, record, &call).await;
    } else {
        let mut state = inner.lock();
        state.requests.push(record);
        api_response(dispatch(&mut state, &method, &call, inner.local_dir.is_some()))
    };
    bump(&inner.changes);
    response
}

/// The methods answered at once, under the state lock.
fn dispatch(state: &mut TgState, method: &str, call: &Call, local: bool) -> Outcome {
    match method {
        "getme" => Ok(merged(
            bot_user_json(),
            json!({"can_join_groups": true, "can_read_all_group_messages": false, "supports_inline_queries": false, "can_connect_to_business": false, "has_main_web_app": false}),
        )),
        "sendmessage" => state.send_message(call),
        "editmessagetext" => state.edit_message_text(call),
        "deletemessage" => state.delete_message(call),
        "senddocument" => state.send_document(call, local),
        "answercallbackquery" | "sendchataction" => Ok(json!(true)),
        "setmycommands" => {
            state.commands = call.json("commands").unwrap_or_else(|| json!([]));
            Ok(json!(true))
        }
        "deletemycommands" => {
            state.commands = json!([]);
            Ok(json!(true))
        }
        "getmycommands" => Ok(if state.commands.is_null() { json!([]) } else { state.commands.clone() }),
        "setwebhook" => state.set_webhook(call),
        "deletewebhook" => state.delete_webhook(call),
        "getwebhookinfo" => Ok(state.webhook_info()),
        _ => Err(ApiError::new(StatusCode::NOT_FOUND, "Not Found: method not found")),
    }
}

/// Reads a call's parameters from the query string and the body (JSON, multipart or
/// form); multipart file parts are returned apart.
async fn read_params(request: Request) -> Result<(Map<String, Value>, Vec<UploadedPart>), String> {
    let mut params = Map::new();
    for (key, value) in parse_form(request.uri().query().unwrap_or_default()) {
        params.insert(key, Value::String(value));
    }
    let content_type = request.headers().get(header::CONTENT_TYPE).and_then(|value| value.to_str().ok()).unwrap_or_default().to_ascii_lowercase();
    let mut files = Vec::new();
    if content_type.starts_with("multipart/form-data") {
        let mut multipart = <Multipart as FromRequest<()>>::from_request(request, &()).await.map_err(|error| format!("Bad Request: {error}"))?;
        while let Some(field) = multipart.next_field().await.map_err(|error| format!("Bad Request: {error}"))? {
            let name = field.name().unwrap_or_default().to_owned();
            let file_name = field.file_name().map(str::to_owned);
            let part_type = field.content_type().map(str::to_owned);
            let bytes = field.bytes().await.map_err(|error| format!("Bad Request: {error}"))?;
            match file_name {
                Some(file_name) => files.push(UploadedPart { name, file_name, content_type: part_type, bytes: bytes.to_vec() }),
                None => {
                    params.insert(name, Value::String(String::from_utf8_lossy(&bytes).into_owned()));
                }
            }
        }
        return Ok((params, files));
    }
    let body = axum::body::to_bytes(request.into_body(), usize::MAX).await.map_err(|error| format!("Bad Request: {error}"))?;
    if content_type.starts_with("application/json") && !body.is_empty() {
        match serde_json::from_slice(&body) {
            Ok(Value::Object(fields)) => params.extend(fields),
            _ => return Err("Bad Request: can't parse request JSON object".to_owned()),
        }
    } else if content_type.starts_with("application/x-www-form-urlencoded") {
        for (key, value) in parse_form(&String::from_utf8_lossy(&body)) {
            params.insert(key, Value::String(value));
        }
    }
    Ok((params, files))
}

/// `getUpdates`: confirms updates below `offset`, then answers the unconfirmed ones (at
/// most `limit`, 1..=100, default 100), waiting up to `timeout` seconds (at most 30) for
/// one. A newer poll ends a waiting one with 409; so does a webhook.
async fn get_updates(inner: &Arc<Inner>, record: TelegramRequest, call: &Call) -> Response {
    let limit = usize::try_from(call.int("limit").unwrap_or(100).clamp(1, 100)).unwrap_or(100);
    let timeout = call.int("timeout").unwrap_or(0).clamp(0, MAX_POLL_SECONDS);
    let deadline = tokio::time::Instant::now() + Duration::from_secs(timeout.unsigned_abs());
    let mut changes = inner.changes.subscribe();
    let generation = {
        let mut state = inner.lock();
        state.requests.push(record);
        if state.webhook.is_some() {
            drop(state);
            bump(&inner.changes);
            return api_error(StatusCode::CONFLICT, WEBHOOK_ACTIVE);
        }
        if let Some(offset) = call.int("offset") {
            state.confirm(offset);
        }
        state.poll_generation += 1;
        state.poll_generation
    };
    bump(&inner.changes);
    loop {
        {
            let state = inner.lock();
            if state.poll_generation != generation {
                return api_error(StatusCode::CONFLICT, TERMINATED_BY_OTHER_POLL);
            }
            if state.webhook.is_some() {
                return api_error(StatusCode::CONFLICT, WEBHOOK_ACTIVE);
            }
            let updates: Vec<Value> = state.queue.iter().take(limit).map(|(_, update)| update.clone()).collect();
            if !updates.is_empty() || tokio::time::Instant::now() >= deadline {
                return api_response(Ok(Value::Array(updates)));
            }
        }
        tokio::select! {
            changed = changes.changed() => {
                if changed.is_err() {
                    return api_response(Ok(json!([])));
                }
            }
            () = tokio::time::sleep_until(deadline) => {}
            () = inner.shutdown.cancelled() => return api_response(Ok(json!([]))),
        }
    }
}

/// `getFile`: gives a `file_path`; in local mode writes the file there first.
async fn get_file(inner: &Arc<Inner>, record: TelegramRequest, call: &Call) -> Response {
    let planned = inner.lock().plan_get_file(call, inner.local_dir.as_deref());
    let outcome = match planned {
        Ok((answer, Some((path, content)))) => write_local_file(&path, &content).await.map(|()| answer),
        Ok((answer, None)) => Ok(answer),
        Err(error) => Err(error),
    };
    inner.lock().requests.push(record);
    bump(&inner.changes);
    api_response(outcome)
}

async fn write_local_file(path: &Path, content: &Content) -> Result<(), ApiError> {
    let failed = |error: std::io::Error| ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, &format!("Internal Server Error: {error}"));
    if let Some(folder) = path.parent() {
        tokio::fs::create_dir_all(folder).await.map_err(failed)?;
    }
    tokio::fs::write(path, content.materialize().as_ref()).await.map_err(failed)
}

/// `GET /file/bot{token}/{file_path}`: the bytes of a file `getFile` gave that path.
async fn download(inner: &Arc<Inner>, token: &str, path: &str) -> Response {
    let authorized = token == inner.token;
    let content = {
        let mut state = inner.lock();
        state.requests.push(TelegramRequest { method: "download".to_owned(), params: json!({"file_path": path}), file: None, authorized });
        let file_id = state.paths.get(path).cloned();
        file_id.and_then(|file_id| state.files.get(&file_id).map(|file| file.content.clone()))
    };
    bump(&inner.changes);
    if !authorized {
        return api_error(StatusCode::UNAUTHORIZED, "Unauthorized");
    }
    match content {
        None => api_error(StatusCode::NOT_FOUND, "Not Found"),
        Some(content) => ([(header::CONTENT_TYPE, "application/octet-stream")], content.materialize().as_ref().clone()).into_response(),
    }
}

/// Delivers unconfirmed updates, oldest first, to the webhook while one is set; a non-2xx
/// answer or a connection failure is retried after a growing backoff. Ends at shutdown.
async fn deliver_webhooks(inner: Arc<Inner>) {
    let client = reqwest::Client::builder().timeout(Duration::from_secs(30)).build().expect("the webhook client");
    let mut changes = inner.changes.subscribe();
    let mut backoff = FIRST_BACKOFF;
    loop {
        let next = inner.lock().next_delivery();
        let Some(delivery) = next else {
            tokio::select! {
                changed = changes.changed() => if changed.is_err() { return },
                () = inner.shutdown.cancelled() => return,
            }
            continue;
        };
        let mut post = client.post(&delivery.url).json(&delivery.update);
        if let Some(secret) = &delivery.secret {
            post = post.header(SECRET_HEADER, secret);
        }
        let answer = tokio::select! {
            answer = post.send() => answer,
            () = inner.shutdown.cancelled() => return,
        };
        let (status, error) = match answer {
            Ok(response) if response.status().is_success() => (Some(response.status().as_u16()), None),
            Ok(response) => (Some(response.status().as_u16()), Some(format!("Wrong response from the webhook: {}", response.status()))),
            Err(error) => (None, Some(format!("Connection failed: {error}"))),
        };
        let delivered = error.is_none();
        {
            let mut state = inner.lock();
            state.deliveries.push(WebhookDelivery { update_id: delivery.update_id, status, error: error.clone() });
            if delivered {
                state.confirm(delivery.update_id + 1);
            } else if let (Some(webhook), Some(error)) = (state.webhook.as_mut(), error) {
                webhook.last_error = Some((unix_now(), error));
            }
        }
        bump(&inner.changes);
        if delivered {
            backoff = FIRST_BACKOFF;
        } else {
            tokio::select! {
                () = tokio::time::sleep(backoff) => {}
                () = inner.shutdown.cancelled() => return,
            }
            backoff = (backoff * 2).min(MAX_BACKOFF);
        }
    }
}
