//! What the bot answers: commands and received files, through teloxide's dispatcher.
//!
//! The bot only receives and answers. A received file is answered at once ("received,
//! storing…") and published as `FileReceived` work on `bot.events`; a storage worker
//! stores it and edits that answer.

use std::sync::Arc;

use chatvault_proto::bot::v1::{
    bot_event, DriveLinked, DriveUnlinked, FileReceived, FileStoreFailed, PreferencesChanged, TelegramLinked, TelegramUnlinked,
};
use chatvault_proto::storage::v1::{download_file_response, CreateShareLinkRequest, DownloadFileRequest};
use chrono::Utc;
use chrono_tz::Tz;
use teloxide::prelude::*;
use teloxide::types::{CallbackQuery, InlineKeyboardButton, InlineKeyboardMarkup, InputFile, LinkPreviewOptions, Message};
use teloxide::utils::command::BotCommands;

use crate::clients::Clients;
use crate::dates::{folder_date, human_size, parse_day, parse_time_zone};
use crate::events::Events;
use crate::google::Google;
use crate::metrics::{BYTES_RECEIVED, FILES_RECEIVED, STORE_FAILURES, USES_BY_HOUR};
use crate::sealing::Sealer;
use crate::settings::BotSettings;
use crate::store::{Link, LinkRefusal, PendingAuthorization, Store, StoredFile};
use crate::telegram::{incoming_file, IncomingFile};
use crate::worker::too_big_text;
use crate::BotError;

/// How long a share link sent for a file too big to send back stays valid (7 days).
const SHARE_LINK_SECONDS: u64 = 7 * 24 * 3600;
/// How many days `/dates` lists.
const DATES_LISTED: i64 = 14;

/// The commands people send.
#[derive(BotCommands, Clone, Debug, PartialEq, Eq)]
#[command(rename_rule = "lowercase", description = "chatvault keeps the files you send me, in folders named by their date.")]
pub enum Command {
    #[command(description = "greet, or link this Telegram account: /start <code>")]
    Start(String),
    #[command(description = "link this Telegram account with a code from `chatvault telegram link`: /link <code>")]
    Link(String),
    #[command(description = "create a chatvault account and link it: /register <username> <email>")]
    Register(String),
    #[command(description = "end the link between this Telegram account and chatvault")]
    Unlink,
    #[command(description = "link Google Drive (/drive), or unlink it (/drive off)")]
    Drive(String),
    #[command(description = "where files go: /store chatvault, /store drive or /store both")]
    Store(String),
    #[command(description = "your time zone for date folders: /timezone Europe/Berlin")]
    Timezone(String),
    #[command(description = "send back the files of a day: /files 2026-11-22, /files today, /files yesterday")]
    Files(String),
    #[command(description = "recent days with files, their counts and sizes")]
    Dates,
    #[command(description = "this help")]
    Help,
}

/// What the handlers share.
#[derive(Clone, Debug)]
pub struct BotState {
    pub store: Store,
    pub settings: Arc<BotSettings>,
    pub clients: Clients,
    pub google: Option<Google>,
    pub sealer: Option<Sealer>,
    pub events: Events,
    /// The bot's own username (from `getMe`), for commands addressed `/files@name`.
    pub username: String,
}

/// Returns teloxide's handler tree: messages go to [`handle_message`], pressed buttons to
/// [`handle_callback`].
pub fn schema() -> teloxide::dispatching::UpdateHandler<BotError> {
    teloxide::dptree::entry()
        .branch(Update::filter_message().endpoint(handle_message))
        .branch(Update::filter_callback_query().endpoint(handle_callback))
}

/// Answers one message; a fault on chatvault's side (a database or service away) is logged
/// and the person still gets an answer.
pub async fn handle_message(bot: Bot, message: Message, state: Arc<BotState>) -> Result<(), BotError> {
    if let Err(error) = answer_message(bot.clone(), message.clone(), state).await {
        tracing::warn!(error = %error, "a message could not be answered");
        if message.chat.is_private() {
            reply(&bot, message.chat.id, "Something went wrong on chatvault's side; nothing was changed. Try again in a moment.").await?;
        }
    }
    Ok(())
}

/// Publishes an event after the change it records is made; a failure is logged, not
/// returned (the person is told what was done).
async fn publish_quietly(state: &BotState, actor: &str, key: &str, event: bot_event::Event) {
    if let Err(error) = state.events.publish(actor, key, event).await {
        tracing::warn!(error = %error, "publishing a bot event failed");
    }
}

async fn answer_message(bot: Bot, message: Message, state: Arc<BotState>) -> Result<(), BotError> {
    let Some(user) = message.from.clone() else { return Ok(()) };
    if !message.chat.is_private() {
        return Ok(());
    }
    let telegram_user_id = i64::try_from(user.id.0).unwrap_or(i64::MAX);
    let link = state.store.link_of_telegram(telegram_user_id).await?;
    let zone = link.as_ref().and_then(|link| parse_time_zone(&link.time_zone).ok()).unwrap_or(Tz::UTC);
    let hour = message.date.with_timezone(&zone).format("%H").to_string();
    let chat = message.chat.id;
    if let Some(text) = message.text() {
        USES_BY_HOUR.with_label_values(&[&hour, "command"]).inc();
        let answer = match Command::parse(text, &state.username) {
            Ok(command) => run_command(&bot, &message, &state, link, zone, command).await?,
            Err(_) if text.starts_with('/') => "I do not know that command. /help lists what I can do.".to_owned(),
            Err(_) => "Send me a document, photo, video, audio, voice message or video note and I keep it in a folder named by its date. /help lists the commands.".to_owned(),
        };
        if !answer.is_empty() {
            reply(&bot, chat, &answer).await?;
        }
        return Ok(());
    }
    let Some(file) = incoming_file(&message, zone) else {
        reply(&bot, chat, "I store documents, photos, videos, audio, voice messages and video notes. /help lists the commands.").await?;
        return Ok(());
    };
    USES_BY_HOUR.with_label_values(&[&hour, "file"]).inc();
    FILES_RECEIVED.with_label_values(&[file.kind]).inc();
    BYTES_RECEIVED.with_label_values(&[file.kind]).inc_by(file.size);
    let Some(link) = link else {
        reply(&bot, chat, NOT_LINKED).await?;
        return Ok(());
    };
    receive_file(&bot, &message, &state, &link, zone, file).await
}

const NOT_LINKED: &str = "This Telegram account is not linked to a chatvault account yet, so I cannot keep files for you. \
Get a code with `chatvault telegram link` (or on your chatvault page) and send /start <code>, or create an account with /register <username> <email>.";

async fn reply(bot: &Bot, chat: ChatId, text: &str) -> Result<Message, BotError> {
    Ok(bot.send_message(chat, text).link_preview_options(no_preview()).await?)
}

fn no_preview() -> LinkPreviewOptions {
    LinkPreviewOptions { is_disabled: true, url: None, prefer_small_media: false, prefer_large_media: false, show_above_text: false }
}

/// Answers a received file at once and hands it to the storage workers.
async fn receive_file(bot: &Bot, message: &Message, state: &BotState, link: &Link, zone: Tz, file: IncomingFile) -> Result<(), BotError> {
    let folder = folder_date(message.date, zone);
    if file.size > state.settings.download_limit {
        let text = format!("Could not store {}: {}", file.file_name, too_big_text(file.size, &state.settings));
        reply(bot, message.chat.id, &text).await?;
        STORE_FAILURES.with_label_values(&["too_big"]).inc();
        let event = bot_event::Event::FileStoreFailed(FileStoreFailed {
            work_id: format!("{}:{}", message.chat.id.0, message.id.0),
            account_id: link.account_id.clone(),
            username: link.username.clone(),
            file_name: file.file_name.clone(),
            reason: "too_big".to_owned(),
            message: text,
        });
        publish_quietly(state, &link.username, &file.unique_id, event).await;
        return Ok(());
    }
    let answer = reply(bot, message.chat.id, &format!("Received {} ({}), storing…", file.file_name, human_size(file.size))).await?;
    let work = FileReceived {
        work_id: format!("{}:{}", message.chat.id.0, message.id.0),
        account_id: link.account_id.clone(),
        username: link.username.clone(),
        telegram_user_id: link.telegram_user_id,
        chat_id: message.chat.id.0,
        reply_message_id: answer.id.0,
        kind: file.kind.to_owned(),
        telegram_file_id: file.file_id.clone(),
        telegram_file_unique_id: file.unique_id.clone(),
        file_name: file.file_name.clone(),
        content_type: file.content_type.clone(),
        size: file.size,
        folder_date: folder,
        time_zone: zone.name().to_owned(),
        store_target: link.store_target.clone(),
        sent_unix: message.date.timestamp(),
        received_unix_ms: Utc::now().timestamp_millis(),
    };
    if let Err(error) = state.events.publish(&link.username, &file.unique_id, bot_event::Event::FileReceived(work)).await {
        tracing::warn!(error = %error, "publishing FileReceived failed");
        bot.edit_message_text(message.chat.id, answer.id, format!("Could not queue {} for storing; send it again in a moment.", file.file_name))
            .await?;
    }
    Ok(())
}

async fn run_command(bot: &Bot, message: &Message, state: &BotState, link: Option<Link>, zone: Tz, command: Command) -> Result<String, BotError> {
    let user = message.from.as_ref().ok_or_else(|| BotError::Internal("a command without a sender".to_owned()))?;
    let telegram_user_id = i64::try_from(user.id.0).unwrap_or(i64::MAX);
    match command {
        Command::Help => Ok(Command::descriptions().to_string()),
        Command::Start(code) | Command::Link(code) if !code.trim().is_empty() => {
            link_with_code(bot, state, message, telegram_user_id, link.as_ref(), code.trim()).await
        }
        Command::Start(_) => Ok(match &link {
            Some(link) => format!(
                "Hello {}! This Telegram account is linked to the chatvault account {}. Send me files and I keep them in folders named by their date; /files today sends today's back. /help lists everything.",
                user.first_name, link.username
            ),
            None => format!("Hello {}! I keep the files you send me in chatvault, in folders named by their date. {NOT_LINKED}", user.first_name),
        }),
        Command::Link(_) => Ok("Send /link <code> with the code `chatvault telegram link` gave you.".to_owned()),
        Command::Register(username) => register(state, message, telegram_user_id, link.as_ref(), username.trim()).await,
        Command::Unlink => {
            let Some(link) = state.store.unlink_telegram(telegram_user_id).await? else {
                return Ok("This Telegram account is not linked.".to_owned());
            };
            let event = TelegramUnlinked { account_id: link.account_id.clone(), username: link.username.clone(), telegram_user_id };
            publish_quietly(state, &link.username, &link.account_id, bot_event::Event::TelegramUnlinked(event)).await;
            Ok(format!("Unlinked from the chatvault account {}. Your stored files stay there.", link.username))
        }
        _ if link.is_none() => Ok(NOT_LINKED.to_owned()),
        Command::Drive(argument) => drive(state, link.as_ref(), telegram_user_id, argument.trim()).await,
        Command::Store(target) => store_target(state, link.as_ref(), target.trim()).await,
        Command::Timezone(name) => time_zone(state, link.as_ref(), telegram_user_id, name.trim()).await,
        Command::Files(day) => send_files(bot, message.chat.id, state, link.as_ref(), zone, day.trim()).await,
        Command::Dates => dates(state, link.as_ref()).await,
    }
}

async fn link_with_code(
    bot: &Bot,
    state: &BotState,
    message: &Message,
    telegram_user_id: i64,
    link: Option<&Link>,
    code: &str,
) -> Result<String, BotError> {
    if let Some(link) = link {
        return Ok(format!("This Telegram account is linked to {} already; send /unlink first to link another account.", link.username));
    }
    if !state.store.may_try_link_code(telegram_user_id).await? {
        return Ok(format!(
            "Too many wrong codes: wait an hour, then send a new code from `chatvault telegram link` (at most {} wrong codes an hour).",
            crate::store::LINK_ATTEMPTS_PER_HOUR
        ));
    }
    let Some((account_id, username)) = state.store.redeem_link_code(code).await? else {
        state.store.record_wrong_link_code(telegram_user_id).await?;
        return Ok("That code is not valid: it may have expired (codes last 10 minutes) or been used. Get a new one with `chatvault telegram link`."
            .to_owned());
    };
    // The link is made only when this Telegram account confirms the account it names: a
    // code someone else made, sent as a t.me deep link, never links a person unseen.
    let confirmation_id = state.store.save_link_confirmation(telegram_user_id, &account_id, &username).await?;
    let buttons = InlineKeyboardMarkup::new([[
        InlineKeyboardButton::callback(format!("Link to {username}"), format!("link:{confirmation_id}")),
        InlineKeyboardButton::callback("Cancel", format!("cancel:{confirmation_id}")),
    ]]);
    let text = format!(
        "Link this Telegram account to the chatvault account {username}? Files you send me will be stored in that account. \
         Confirm only if {username} is your own account."
    );
    bot.send_message(message.chat.id, text).reply_markup(buttons).await?;
    Ok(String::new())
}

/// Answers a pressed button: the confirmation of a link (`link:<id>`) or its cancellation
/// (`cancel:<id>`), valid only for the Telegram account the code was sent from.
pub async fn handle_callback(bot: Bot, query: CallbackQuery, state: Arc<BotState>) -> Result<(), BotError> {
    let telegram_user_id = i64::try_from(query.from.id.0).unwrap_or(i64::MAX);
    let data = query.data.clone().unwrap_or_default();
    let answer = match data.split_once(':') {
        Some(("link", id)) => match state.store.take_link_confirmation(id, telegram_user_id).await? {
            Some((account_id, username)) => {
                let telegram_username = query.from.username.clone().unwrap_or_default();
                finish_link(&state, &telegram_username, telegram_user_id, &account_id, &username, "code").await?
            }
            None => "This confirmation has expired or was used. Get a new code with `chatvault telegram link`.".to_owned(),
        },
        Some(("cancel", id)) => {
            state.store.take_link_confirmation(id, telegram_user_id).await?;
            "Not linked.".to_owned()
        }
        _ => "I do not know that button.".to_owned(),
    };
    bot.answer_callback_query(query.id.clone()).await?;
    // Replaces the question (and its buttons) with the outcome, or says it apart when the
    // question cannot be edited (a button pressed on a message this chat never had).
    let edited = match &query.message {
        Some(question) => bot.edit_message_text(question.chat().id, question.id(), answer.clone()).await.is_ok(),
        None => false,
    };
    if !edited {
        bot.send_message(ChatId(telegram_user_id), answer).await?;
    }
    Ok(())
}

/// Links the Telegram account (its private chat has the same id) to the chatvault account.
async fn finish_link(
    state: &BotState,
    telegram_username: &str,
    telegram_user_id: i64,
    account_id: &str,
    username: &str,
    how: &str,
) -> Result<String, BotError> {
    match state.store.create_link(telegram_user_id, telegram_username, telegram_user_id, account_id, username).await? {
        Ok(_) => {
            let event = TelegramLinked { account_id: account_id.to_owned(), username: username.to_owned(), telegram_user_id, how: how.to_owned() };
            publish_quietly(state, username, account_id, bot_event::Event::TelegramLinked(event)).await;
            Ok(format!(
                "Linked to the chatvault account {username}. Send me files and I keep them in folders named by their date (UTC until you set /timezone)."
            ))
        }
        Err(LinkRefusal::TelegramLinked(other)) => Ok(format!("This Telegram account is linked to {other} already; send /unlink first.")),
        Err(LinkRefusal::AccountLinked) => Ok(format!(
            "The chatvault account {username} is linked to another Telegram account; unlink it there first (/unlink or `chatvault telegram unlink`)."
        )),
    }
}

async fn register(state: &BotState, message: &Message, telegram_user_id: i64, link: Option<&Link>, arguments: &str) -> Result<String, BotError> {
    if let Some(link) = link {
        return Ok(format!("This Telegram account is linked to {} already.", link.username));
    }
    let mut words = arguments.split_whitespace();
    let (Some(username), Some(email), None) = (words.next(), words.next(), words.next()) else {
        return Ok("Send /register <username> <email> with the username you want and your e-mail address.".to_owned());
    };
    let password = generated_password();
    let request = chatvault_proto::users::v1::RegisterRequest { username: username.to_owned(), email: email.to_owned(), password: password.clone() };
    let account = match state.clients.accounts().register(state.clients.as_service(request)).await {
        Ok(account) => account.into_inner(),
        Err(status) => {
            return Ok(match status.code() {
                tonic::Code::AlreadyExists => format!("The username {username} is taken; try another."),
                tonic::Code::PermissionDenied | tonic::Code::FailedPrecondition => {
                    "Registration is closed on this chatvault installation. Ask its admin for an account, then link it with a code.".to_owned()
                }
                tonic::Code::InvalidArgument => format!("That username cannot be used: {}", status.message()),
                _ => "chatvault did not answer; try again in a moment.".to_owned(),
            })
        }
    };
    let telegram_username = message.from.as_ref().and_then(|user| user.username.clone()).unwrap_or_default();
    let linked = finish_link(state, &telegram_username, telegram_user_id, &account.account_id, &account.username, "registered").await?;
    Ok(format!(
        "Created the chatvault account {}. Its password is:\n{password}\nKeep it safe and change it after your first log-in (web page or `chatvault passwd`).\n{linked}",
        account.username
    ))
}

/// A 20-character password from letters and digits (about 119 bits).
fn generated_password() -> String {
    use rand::distr::{Alphanumeric, SampleString};
    Alphanumeric.sample_string(&mut rand::rng(), 20)
}

async fn drive(state: &BotState, link: Option<&Link>, telegram_user_id: i64, argument: &str) -> Result<String, BotError> {
    let link = link.ok_or_else(|| BotError::Internal("drive without a link".to_owned()))?;
    let (Some(google), Some(sealer)) = (&state.google, &state.sealer) else {
        return Ok("Google Drive is not set up on this chatvault installation (its admin sets CHATVAULT_BOT_GOOGLE_CLIENT_ID).".to_owned());
    };
    match argument.to_lowercase().as_str() {
        "off" => {
            let Some(sealed) = state.store.delete_grant(&link.account_id).await? else {
                return Ok("Google Drive is not linked.".to_owned());
            };
            let revoked = match sealer.open(&link.account_id, &sealed) {
                Ok(refresh) => google.revoke(&link.account_id, &refresh).await.is_ok(),
                Err(_) => false,
            };
            if link.store_target != "chatvault" {
                state.store.set_store_target(&link.account_id, "chatvault").await?;
            }
            let event = DriveUnlinked { account_id: link.account_id.clone(), username: link.username.clone(), reason: "revoked".to_owned() };
            publish_quietly(state, &link.username, &link.account_id, bot_event::Event::DriveUnlinked(event)).await;
            Ok(if revoked {
                "Google Drive is unlinked and chatvault's access is revoked. Files now go to chatvault only; those in your Drive stay there."
                    .to_owned()
            } else {
                "Google Drive is unlinked (Google did not confirm the revocation; you can also remove chatvault at myaccount.google.com/permissions). Files now go to chatvault only.".to_owned()
            })
        }
        "" => {
            let authorization = google.authorization();
            let pending = PendingAuthorization {
                telegram_user_id,
                account_id: link.account_id.clone(),
                sealed_verifier: sealer.seal(&link.account_id, &authorization.verifier)?,
            };
            state.store.save_authorization(&authorization.state, &pending).await?;
            Ok(format!(
                "Open this link to let chatvault store files in your Google Drive (it can see only the files it creates). The link works once, for 10 minutes:\n{}",
                authorization.url
            ))
        }
        _ => Ok("Send /drive to link Google Drive, or /drive off to unlink it.".to_owned()),
    }
}

async fn store_target(state: &BotState, link: Option<&Link>, target: &str) -> Result<String, BotError> {
    let link = link.ok_or_else(|| BotError::Internal("store without a link".to_owned()))?;
    let target = target.to_lowercase();
    if !matches!(target.as_str(), "chatvault" | "drive" | "both") {
        return Ok(format!(
            "Files go to {} now. Send /store chatvault, /store drive or /store both to change it.",
            describe_target(&link.store_target)
        ));
    }
    if target != "chatvault" {
        let grant = state.store.grant(&link.account_id).await?;
        if grant.is_none_or(|grant| grant.needs_relink) {
            return Ok("Link Google Drive first: send /drive.".to_owned());
        }
    }
    state.store.set_store_target(&link.account_id, &target).await?;
    let event = PreferencesChanged {
        account_id: link.account_id.clone(),
        username: link.username.clone(),
        time_zone: link.time_zone.clone(),
        store_target: target.clone(),
    };
    publish_quietly(state, &link.username, &link.account_id, bot_event::Event::PreferencesChanged(event)).await;
    Ok(format!("Files now go to {}.", describe_target(&target)))
}

fn describe_target(target: &str) -> &'static str {
    match target {
        "drive" => "Google Drive",
        "both" => "chatvault and Google Drive",
        _ => "chatvault",
    }
}

async fn time_zone(state: &BotState, link: Option<&Link>, telegram_user_id: i64, name: &str) -> Result<String, BotError> {
    let link = link.ok_or_else(|| BotError::Internal("timezone without a link".to_owned()))?;
    if name.is_empty() {
        return Ok(format!("Your time zone is {}. Change it with /timezone Europe/Berlin (any IANA name).", link.time_zone));
    }
    let zone = match parse_time_zone(name) {
        Ok(zone) => zone,
        Err(message) => return Ok(message),
    };
    state.store.set_time_zone(telegram_user_id, zone.name()).await?;
    let event = PreferencesChanged {
        account_id: link.account_id.clone(),
        username: link.username.clone(),
        time_zone: zone.name().to_owned(),
        store_target: link.store_target.clone(),
    };
    publish_quietly(state, &link.username, &link.account_id, bot_event::Event::PreferencesChanged(event)).await;
    Ok(format!("Time zone set to {}; today is {} there.", zone.name(), folder_date(Utc::now(), zone)))
}

async fn dates(state: &BotState, link: Option<&Link>) -> Result<String, BotError> {
    let link = link.ok_or_else(|| BotError::Internal("dates without a link".to_owned()))?;
    let days = state.store.recent_days(&link.account_id, DATES_LISTED).await?;
    if days.is_empty() {
        return Ok("No files yet: send me one.".to_owned());
    }
    let lines: Vec<String> = days
        .iter()
        .map(|day| {
            let files = if day.files == 1 { "1 file".to_owned() } else { format!("{} files", day.files) };
            format!("{}: {files}, {}", day.date, human_size(u64::try_from(day.bytes).unwrap_or(0)))
        })
        .collect();
    Ok(format!("Recent days:\n{}", lines.join("\n")))
}

async fn send_files(bot: &Bot, chat: ChatId, state: &BotState, link: Option<&Link>, zone: Tz, day: &str) -> Result<String, BotError> {
    let link = link.ok_or_else(|| BotError::Internal("files without a link".to_owned()))?;
    let date = match parse_day(day, Utc::now(), zone) {
        Ok(date) => date,
        Err(message) => return Ok(message),
    };
    let files = state.store.files_of_day(&link.account_id, &date).await?;
    if files.is_empty() {
        return Ok(format!("No files in {date}."));
    }
    reply(bot, chat, &format!("{} in {date}:", if files.len() == 1 { "1 file".to_owned() } else { format!("{} files", files.len()) })).await?;
    let mut unsent = Vec::new();
    for file in &files {
        if let Err(error) = send_one_file(bot, chat, state, link, file).await {
            tracing::warn!(error = %error, file = %file.file_name, "sending a file back failed");
            unsent.push(file.file_name.clone());
        }
    }
    Ok(if unsent.is_empty() { String::new() } else { format!("Could not send {}; try again in a moment.", unsent.join(", ")) })
}

/// Sends one stored file back: as a document within the Bot API's upload limit, else as a
/// share link (chatvault) or a Drive link.
async fn send_one_file(bot: &Bot, chat: ChatId, state: &BotState, link: &Link, file: &StoredFile) -> Result<(), BotError> {
    let caption = format!("{} ({})", file.file_name, human_size(file.size));
    if file.size > state.settings.upload_limit {
        let text = if !file.file_id.is_empty() {
            let request = CreateShareLinkRequest {
                file_id: file.file_id.clone(),
                expires_in_seconds: SHARE_LINK_SECONDS,
                password: String::new(),
                consistency_token: None,
            };
            let created =
                state.clients.files().create_share_link(state.clients.as_person(&link.account_id, &link.username, request)).await?.into_inner();
            format!(
                "{caption} is larger than the {} a bot may send; download it here (for 7 days): {}{}",
                human_size(state.settings.upload_limit),
                state.settings.share_url,
                created.path
            )
        } else {
            format!("{caption} is in your Google Drive: https://drive.google.com/file/d/{}/view", file.drive_file_id)
        };
        reply(bot, chat, &text).await?;
        return Ok(());
    }
    let bytes = if !file.file_id.is_empty() {
        download_from_chatvault(state, link, &file.file_id).await?
    } else {
        download_from_drive(state, link, file).await?
    };
    bot.send_document(chat, InputFile::memory(bytes).file_name(file.file_name.clone())).caption(caption).await?;
    Ok(())
}

async fn download_from_chatvault(state: &BotState, link: &Link, file_id: &str) -> Result<bytes::Bytes, BotError> {
    let request = DownloadFileRequest { file_id: file_id.to_owned(), consistency_token: None };
    let mut stream = state.clients.files().download_file(state.clients.as_person(&link.account_id, &link.username, request)).await?.into_inner();
    let mut bytes = Vec::new();
    while let Some(message) = stream.message().await? {
        if let Some(download_file_response::Message::Chunk(chunk)) = message.message {
            bytes.extend_from_slice(&chunk);
        }
    }
    Ok(bytes.into())
}

async fn download_from_drive(state: &BotState, link: &Link, file: &StoredFile) -> Result<bytes::Bytes, BotError> {
    let (Some(google), Some(sealer)) = (&state.google, &state.sealer) else {
        return Err(BotError::FailedPrecondition("Google Drive is not set up".to_owned()));
    };
    let grant = state.store.grant(&link.account_id).await?.ok_or_else(|| BotError::FailedPrecondition("Google Drive is not linked".to_owned()))?;
    let refresh = sealer.open(&link.account_id, &grant.sealed_refresh)?;
    let drive_error = |error: crate::google::DriveError| BotError::FailedPrecondition(error.to_string());
    let token = google.access_token(&link.account_id, &refresh).await.map_err(drive_error)?;
    google.download(&token, &file.drive_file_id).await.map_err(drive_error)
}

/// Completes a Drive link after Google's consent (the HTTP callback): stores the sealed
/// refresh token, sends files to both places from now on, and tells the person.
pub async fn finish_drive_link(bot: Option<&Bot>, state: &BotState, pending: &PendingAuthorization, code: &str) -> Result<(), String> {
    let (Some(google), Some(sealer)) = (&state.google, &state.sealer) else {
        return Err("Google Drive is not set up on this installation".to_owned());
    };
    let verifier = sealer.open(&pending.account_id, &pending.sealed_verifier).map_err(|_| "the authorization could not be read back".to_owned())?;
    let (refresh, scope) =
        google.exchange(&pending.account_id, code, &verifier).await.map_err(|error| format!("Google did not confirm the access: {error}"))?;
    if !scope.split_whitespace().any(|granted| granted == crate::settings::DRIVE_FILE_SCOPE) {
        // Google's consent screen lets a person untick the scope: without it nothing works.
        let _ = google.revoke(&pending.account_id, &refresh).await;
        return Err("the access to the files chatvault creates in Drive was not granted".to_owned());
    }
    let sealed = sealer.seal(&pending.account_id, &refresh).map_err(|error| error.to_string())?;
    let link = state.store.link_of_account(&pending.account_id).await.map_err(|error| error.to_string())?;
    let Some(link) = link.filter(|link| link.telegram_user_id == pending.telegram_user_id) else {
        return Err("this Telegram account is no longer linked to that chatvault account".to_owned());
    };
    state.store.save_grant(&link.account_id, &sealed, &scope).await.map_err(|error| error.to_string())?;
    if link.store_target == "chatvault" {
        state.store.set_store_target(&link.account_id, "both").await.map_err(|error| error.to_string())?;
    }
    let event = DriveLinked { account_id: link.account_id.clone(), username: link.username.clone(), scope };
    if let Err(error) = state.events.publish(&link.username, &link.account_id, bot_event::Event::DriveLinked(event)).await {
        tracing::warn!(error = %error, "publishing DriveLinked failed");
    }
    if let Some(bot) = bot {
        let text = "Google Drive is linked. Files you send now go to chatvault and to the chatvault folder of your Drive (/store changes that; /drive off unlinks).";
        if let Err(error) = reply(bot, ChatId(link.chat_id), text).await {
            tracing::warn!(error = %error, "telling the person about the Drive link failed");
        }
    }
    Ok(())
}

/// Tells the linked person of `pending` that the Drive link was declined.
pub async fn drive_link_declined(bot: Option<&Bot>, state: &BotState, pending: &PendingAuthorization) {
    let Ok(Some(link)) = state.store.link_of_account(&pending.account_id).await else { return };
    if let Some(bot) = bot {
        let _ = reply(bot, ChatId(link.chat_id), "Google Drive was not linked: the access was declined. Send /drive to try again.").await;
    }
}
