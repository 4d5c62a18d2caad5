//! Maps the [`HtmlBlock`]s of one page to [`Message`]s with the same meaning as the JSON
//! reader's (format reference, sections 3.4–3.6 and 5).
//!
//! - Date separators (service blocks with small negative ids) are not messages.
//! - A joined block inherits author and inline bot of the block before it on the page.
//! - Names are trimmed, a final ` via @bot` goes to [`Message::via_bot`], and tdesktop's
//!   `Deleted Account` stands for a peer without a name (`null` in JSON).
//! - Phone calls, regular blocks in HTML, become service messages with the action
//!   `phone_call` and the caller as actor, as in JSON.
//! - Service texts are kept as [`Message::text`]; `action` and actor are set only for the
//!   unambiguous English patterns tdesktop writes.
//! - Everything the block held is kept as a small JSON object in [`Message::raw_json`].

use chrono::NaiveDate;
use serde_json::{json, Map, Value};

use crate::html_media::media_of_block;
use crate::html_page::HtmlBlock;
use crate::message::{Message, MessageKind, Warning, WarningKind};
use crate::text::ParsedText;

/// Settings for reading an HTML export.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct HtmlParseOptions {
    /// The UTC offset of the computer that made the export, in seconds east of UTC. Used
    /// only for exports older than June 2022, whose date titles carry no `UTC+hh:mm`.
    pub local_utc_offset_seconds: i32,
}

/// Service blocks with an id in `-DATE_SEPARATOR_ID_LIMIT..0` are date separators (they
/// count down from -1 per chat, one per day); migrated messages have ids near -10^9.
const DATE_SEPARATOR_ID_LIMIT: i64 = 100_000_000;

/// The name tdesktop writes for a user without a name; `null` in JSON.
const DELETED_ACCOUNT: &str = "Deleted Account";

/// What a joined block inherits from the block before it.
#[derive(Debug, Clone, Default)]
struct PreviousRegularBlock {
    author: Option<String>,
    via_bot: Option<String>,
    forwarded_from: Option<String>,
}

/// Maps the blocks of one page, remembering the previous block for joined ones.
#[derive(Debug)]
pub(crate) struct BlockMapper {
    pub(crate) chat_id: i64,
    options: HtmlParseOptions,
    page_label: String,
    previous: Option<PreviousRegularBlock>,
}

/// Splits a trimmed `from_name` into the name and the `@bot` of a final ` via @bot`.
pub(crate) fn split_via_bot(name: &str) -> (&str, Option<&str>) {
    if let Some((before, bot)) = name.rsplit_once(" via @") {
        if !bot.is_empty() && !bot.contains(char::is_whitespace) {
            let via_start = before.len() + " via ".len();
            return (before.trim_end(), name.get(via_start..));
        }
    }
    (name, None)
}

fn name_or_deleted(name: &str) -> Option<String> {
    (name != DELETED_ACCOUNT).then(|| name.to_owned())
}

/// Reads a date title, `DD.MM.YYYY HH:MM:SS` optionally followed by ` UTC+hh:mm`, as Unix
/// seconds and tdesktop's JSON `date` form (`YYYY-MM-DDTHH:MM:SS`).
pub(crate) fn parse_date_title(title: &str, default_offset_seconds: i32) -> Option<(i64, String)> {
    let mut words = title.split_ascii_whitespace();
    let date = words.next()?;
    let time = words.next()?;
    let offset_seconds = match words.next() {
        None => i64::from(default_offset_seconds),
        Some(zone) => parse_utc_offset(zone)?,
    };
    let mut date_parts = date.split('.').map(str::parse::<u32>);
    let (day, month, year) = (date_parts.next()?.ok()?, date_parts.next()?.ok()?, date_parts.next()?.ok()?);
    let mut time_parts = time.split(':').map(str::parse::<u32>);
    let (hour, minute, second) = (time_parts.next()?.ok()?, time_parts.next()?.ok()?, time_parts.next().unwrap_or(Ok(0)).ok()?);
    let local = NaiveDate::from_ymd_opt(i32::try_from(year).ok()?, month, day)?.and_hms_opt(hour, minute, second)?;
    let unix_seconds = local.and_utc().timestamp() - offset_seconds;
    Some((unix_seconds, local.format("%Y-%m-%dT%H:%M:%S").to_string()))
}

fn parse_utc_offset(zone: &str) -> Option<i64> {
    let signed = zone.strip_prefix("UTC")?;
    if signed.is_empty() {
        return Some(0);
    }
    let sign = match signed.as_bytes().first()? {
        b'+' => 1,
        b'-' => -1,
        _ => return None,
    };
    let (hours, minutes) = signed.get(1..)?.split_once(':').unwrap_or((signed.get(1..)?, "0"));
    let hours: i64 = hours.parse().ok()?;
    let minutes: i64 = minutes.parse().ok()?;
    (hours <= 18 && minutes < 60).then_some(sign * (hours * 3600 + minutes * 60))
}

/// Returns the message id of a link to a message: `#go_to_message12` or
/// `messages3.html#go_to_message12`.
pub(crate) fn message_id_of_link(href: &str) -> Option<i64> {
    href.rsplit_once("go_to_message")?.1.parse().ok()
}

/// The action and actor of a service text, where its pattern is unambiguous.
fn service_action_of_text(text: &str) -> (Option<&'static str>, Option<&str>) {
    const SUFFIX_ACTIONS: [(&str, &str); 7] = [
        (" converted this group to a supergroup", "migrate_to_supergroup"),
        (" joined group by request", "join_group_by_request"),
        (" changed group photo", "edit_group_photo"),
        (" removed group photo", "delete_group_photo"),
        (" took a screenshot", "take_screenshot"),
        (" joined Telegram", "joined_telegram"),
        (" pinned this message", "pin_message"),
    ];
    const INFIX_ACTIONS: [(&str, &str); 7] = [
        (" created group \u{ab}", "create_group"),
        (" changed group title to \u{ab}", "edit_group_title"),
        (" converted a basic group to this supergroup \u{ab}", "migrate_from_group"),
        (" joined group by link from ", "join_group_by_link"),
        (" pinned ", "pin_message"),
        (" invited ", "invite_members"),
        (" removed ", "remove_members"),
    ];
    if text == "History cleared" {
        return (Some("clear_history"), None);
    }
    if text.starts_with("Channel title changed to \u{ab}") {
        return (Some("edit_group_title"), None);
    }
    if text.starts_with("Channel \u{ab}") && text.ends_with("\u{bb} created") {
        return (Some("create_channel"), None);
    }
    for (suffix, action) in SUFFIX_ACTIONS {
        if let Some(actor) = text.strip_suffix(suffix) {
            return (Some(action), Some(actor));
        }
    }
    if text.ends_with(" to the voice chat") {
        return (None, None);
    }
    for (infix, action) in INFIX_ACTIONS {
        if let Some((actor, _)) = text.split_once(infix) {
            return (Some(action), Some(actor));
        }
    }
    (None, None)
}

fn trimmed(value: &Option<String>) -> Option<&str> {
    value.as_deref().map(str::trim)
}

impl BlockMapper {
    pub(crate) fn new(chat_id: i64, options: HtmlParseOptions, page_label: String) -> Self {
        BlockMapper { chat_id, options, page_label, previous: None }
    }

    /// Maps one block; returns `None` for date separators.
    pub(crate) fn map_block(&mut self, block: HtmlBlock) -> Option<Message> {
        if block.is_service {
            self.previous = None;
            if block.id < 0 && block.id > -DATE_SEPARATOR_ID_LIMIT {
                return None;
            }
            return Some(self.map_service_block(block));
        }
        Some(self.map_regular_block(block))
    }

    fn base_raw_json(&self, block: &HtmlBlock) -> Map<String, Value> {
        let mut raw = Map::new();
        raw.insert("html_id".to_owned(), json!(format!("message{}", block.id)));
        raw.insert("page".to_owned(), json!(self.page_label));
        raw.insert("line".to_owned(), json!(block.line));
        raw
    }

    fn empty_message(&self, block: &HtmlBlock, kind: MessageKind) -> Message {
        Message {
            chat_id: self.chat_id,
            id: block.id,
            kind,
            date_unix: None,
            date_local: None,
            edited_unix: None,
            from_name: None,
            from_id: None,
            actor_name: None,
            actor_id: None,
            action: None,
            author_signature: None,
            is_forwarded: false,
            forwarded_from: None,
            saved_from: None,
            reply_to_message_id: None,
            reply_to_peer_id: None,
            via_bot: None,
            text: String::new(),
            entities: Vec::new(),
            media: None,
            raw_json: String::new(),
            warnings: Vec::new(),
        }
    }

    fn map_service_block(&mut self, mut block: HtmlBlock) -> Message {
        let mut raw = self.base_raw_json(&block);
        raw.insert("type".to_owned(), json!("service"));
        let (parsed_text, markup) = block.service_text.take().map(|builder| builder.finish()).unwrap_or_default();
        let body_text = parsed_text.text;
        raw.insert("text_html".to_owned(), json!(markup));
        if body_text.starts_with("This message is not supported by this version of") {
            let mut message = self.empty_message(&block, MessageKind::Unsupported);
            message.raw_json = Value::Object(raw).to_string();
            return message;
        }
        let mut message = self.empty_message(&block, MessageKind::Service);
        let (action, actor) = service_action_of_text(&body_text);
        message.action = action.map(str::to_owned);
        message.actor_name = actor.filter(|actor| *actor != "Deleted").map(str::to_owned);
        if let Some(pinned_id) = block.service_link_href.as_deref().and_then(message_id_of_link) {
            raw.insert("message_id".to_owned(), json!(pinned_id));
        }
        if let Some(photo_href) = block.service_photo_href.take() {
            message.media = Some(crate::html_media::photo_media(&photo_href));
            raw.insert("photo_href".to_owned(), json!(photo_href));
        }
        message.text = body_text;
        message.raw_json = Value::Object(raw).to_string();
        message
    }

    fn map_regular_block(&mut self, mut block: HtmlBlock) -> Message {
        let mut message = self.empty_message(&block, MessageKind::Regular);
        let mut raw = self.base_raw_json(&block);
        raw.insert("type".to_owned(), json!("message"));
        if block.is_joined {
            raw.insert("joined".to_owned(), json!(true));
        }
        let mut warnings = Vec::new();

        // Author and inline bot: from this block, or inherited when it is joined.
        let inherited = self.previous.clone();
        let (author, mut via_bot) = match (trimmed(&block.from_name), block.is_joined) {
            (Some(from_name), _) => {
                raw.insert("from".to_owned(), json!(block.from_name));
                let (name, via_bot) = split_via_bot(from_name);
                (name_or_deleted(name), via_bot.map(str::to_owned))
            }
            (None, true) if inherited.is_some() => {
                let inherited = inherited.clone().unwrap_or_default();
                (inherited.author, inherited.via_bot)
            }
            (None, _) => {
                warnings.push(Warning::new(WarningKind::MissingAuthor, "a block without from_name and without a previous block to join"));
                (None, None)
            }
        };

        if block.is_forwarded {
            message.is_forwarded = true;
            message.forwarded_from = match trimmed(&block.forwarded_from_name) {
                Some(original) => {
                    raw.insert("forwarded_from".to_owned(), json!(block.forwarded_from_name));
                    let (name, forwarded_via_bot) = split_via_bot(original);
                    via_bot = via_bot.or(forwarded_via_bot.map(str::to_owned));
                    name_or_deleted(name)
                }
                // A joined forward omits the original author: the same as the block before.
                None => inherited.and_then(|previous| previous.forwarded_from),
            };
            if let Some(title) = &block.forwarded_date_title {
                raw.insert("forwarded_date".to_owned(), json!(title));
            }
        }

        if let Some(title) = &block.title_date {
            raw.insert("title_date".to_owned(), json!(title));
            match parse_date_title(title, self.options.local_utc_offset_seconds) {
                Some((unix_seconds, local)) => {
                    message.date_unix = Some(unix_seconds);
                    message.date_local = Some(local);
                }
                None => warnings.push(Warning::new(WarningKind::InvalidDate, format!("cannot read the date title {title:?}"))),
            }
        }

        if let Some(reply_text) = trimmed(&block.reply_text) {
            raw.insert("reply_to".to_owned(), json!(reply_text));
        }
        if let Some(href) = &block.reply_href {
            raw.insert("reply_href".to_owned(), json!(href));
            message.reply_to_message_id = message_id_of_link(href);
        }

        self.previous =
            Some(PreviousRegularBlock { author: author.clone(), via_bot: via_bot.clone(), forwarded_from: message.forwarded_from.clone() });

        let (parsed_text, markup) = block.text.take().map(|builder| builder.finish()).unwrap_or_default();
        if !markup.is_empty() {
            raw.insert("text_html".to_owned(), json!(markup));
        }
        let ParsedText { text, entities } = parsed_text;
        message.text = text;
        message.entities = entities;
        message.author_signature = trimmed(&block.signature).map(str::to_owned);
        message.via_bot = via_bot;

        let media_block = block.media.take();
        let is_call = media_block.as_ref().is_some_and(|media| media.media_classes.iter().any(|class_name| class_name == "media_call"));
        if let Some(media_block) = &media_block {
            raw.insert("media".to_owned(), crate::html_media::media_raw_json(media_block));
        }
        if is_call {
            // tdesktop writes calls as regular blocks; JSON has them as service messages.
            message.kind = MessageKind::Service;
            message.action = Some("phone_call".to_owned());
            message.actor_name = author;
        } else {
            message.from_name = author;
            message.media = media_block.map(|media| media_of_block(media, &mut warnings));
        }
        message.warnings = warnings;
        message.raw_json = Value::Object(raw).to_string();
        message
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn date_titles_use_their_offset_or_the_configured_one() {
        let (unix_seconds, local) = parse_date_title("22.11.2026 10:15:30 UTC+03:00", 0).expect("valid");
        assert_eq!(unix_seconds, 1_795_331_730);
        assert_eq!(local, "2026-11-22T10:15:30");
        let (old_style, _) = parse_date_title("22.11.2026 10:15:30", 3 * 3600).expect("valid");
        assert_eq!(old_style, 1_795_331_730);
        let (negative, _) = parse_date_title("22.11.2026 02:15:30 UTC-05:00", 0).expect("valid");
        assert_eq!(negative, 1_795_331_730);
        assert_eq!(parse_date_title("31.02.2026 10:00:00", 0), None);
        assert_eq!(parse_date_title("yesterday", 0), None);
    }

    #[test]
    fn via_bot_suffix_is_split_off() {
        assert_eq!(split_via_bot("Ann Lee via @gif"), ("Ann Lee", Some("@gif")));
        assert_eq!(split_via_bot("Ann Lee"), ("Ann Lee", None));
        assert_eq!(split_via_bot("via @ x"), ("via @ x", None));
    }

    #[test]
    fn service_patterns_give_action_and_actor() {
        assert_eq!(service_action_of_text("Ann Lee pinned this message"), (Some("pin_message"), Some("Ann Lee")));
        assert_eq!(service_action_of_text("Bob invited Dmitri and Deleted Account"), (Some("invite_members"), Some("Bob")));
        assert_eq!(service_action_of_text("Bob invited Ann to the voice chat"), (None, None));
        assert_eq!(service_action_of_text("Something new happened"), (None, None));
        assert_eq!(message_id_of_link("messages3.html#go_to_message42"), Some(42));
    }
}
