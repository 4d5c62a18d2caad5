//! Stored messages as the pages show them: text runs with their formatting, service
//! messages as sentences, media as pictures, players or links.
//!
//! Everything here produces plain data; the templates escape every string they print, so
//! text from an export (`<script>`, `<img onerror=…>`) is shown as the characters it is.
//! The one thing a template cannot check is a link's target: [`safe_href`] lets only
//! `http`, `https`, `mailto` and `tg` links through, so `javascript:` never becomes a link.

use chatvault_proto::chat::v1::{Media, MessageKind, TextEntity};
use chatvault_proto::storage::v1::StoredMessage;
use chrono::{DateTime, Utc};

/// A run of a message's text with its formatting.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Span {
    pub text: String,
    /// CSS classes: `b`, `i`, `u`, `s`, `code`, `pre`, `spoiler`, `mention`, `hit` (a
    /// search match), space-separated.
    pub classes: String,
    /// The link target, already checked by [`safe_href`].
    pub href: Option<String>,
}

/// A message's media, as the chat page shows it.
#[derive(Clone, Debug, Default)]
pub struct MediaView {
    /// `photo`, `sticker`, `voice_message`, `video_file`, … (Telegram's names).
    pub kind: String,
    /// What to call it: the file name, or the kind in words.
    pub label: String,
    /// The stored file, when the export had it.
    pub file_id: Option<String>,
    pub size_text: String,
    pub mime_type: String,
    /// Shown as a picture (photos, stickers in raster formats).
    pub is_picture: bool,
    /// Played inline: `audio` (voice, music) or `video`.
    pub player: &'static str,
    /// Why the file is absent (Telegram's note), when it is.
    pub missing: Option<String>,
    pub width: u32,
    pub height: u32,
    /// Lines describing a poll, location, venue or contact.
    pub details: Vec<String>,
    /// A map link for a location (OpenStreetMap).
    pub map_href: Option<String>,
}

/// A reply's target, as shown above the message.
#[derive(Clone, Debug)]
pub struct ReplyView {
    pub message_id: i64,
    /// `#m<id>` when the target is on the page, else the chat page around it.
    pub href: String,
    pub preview: String,
}

/// One message of a chat page.
#[derive(Clone, Debug)]
pub struct MessageView {
    pub id: i64,
    pub is_service: bool,
    /// `YYYY-MM-DD` (UTC), for the day separators; empty when the message has no date.
    pub day: String,
    /// The day in words: `Monday, 3 March 2025`.
    pub day_label: String,
    /// `HH:MM`.
    pub time: String,
    /// The full date and time, for the tooltip (ISO 8601, UTC).
    pub datetime: String,
    pub author: String,
    /// 0–7: the author's colour (a hash of their id), a CSS class.
    pub author_colour: u8,
    pub edited: Option<String>,
    pub forwarded_from: Option<String>,
    pub via_bot: Option<String>,
    pub reply: Option<ReplyView>,
    pub spans: Vec<Span>,
    /// A service message in words.
    pub sentence: Option<String>,
    pub media: Option<MediaView>,
    /// Whether a day separator goes before this message.
    pub new_day: bool,
    /// The message the page was opened at (highlighted).
    pub is_target: bool,
}

/// Only these schemes become links; anything else (`javascript:`, `data:`, `vbscript:`)
/// stays text.
const SAFE_SCHEMES: &[&str] = &["http://", "https://", "mailto:", "tg://"];

/// Returns `href` when it is a link the page may follow, else `None`. A bare domain
/// (Telegram's `url` entity holds what the person typed: `example.org/x`) gets `https://`.
pub fn safe_href(href: &str) -> Option<String> {
    let trimmed = href.trim();
    if trimmed.is_empty() || trimmed.chars().any(char::is_control) {
        return None;
    }
    let lower = trimmed.to_ascii_lowercase();
    if SAFE_SCHEMES.iter().any(|scheme| lower.starts_with(scheme)) {
        return Some(trimmed.to_owned());
    }
    // No scheme at all: a domain name first (`example.org/…`), never `something:`.
    let host = trimmed.split(['/', '?', '#']).next().unwrap_or_default();
    if !trimmed.contains(':') && host.contains('.') && host.chars().all(|c| c.is_alphanumeric() || c == '.' || c == '-') {
        return Some(format!("https://{trimmed}"));
    }
    None
}

fn entity_class(kind: &str) -> Option<&'static str> {
    Some(match kind {
        "bold" => "b",
        "italic" => "i",
        "underline" => "u",
        "strikethrough" => "s",
        "code" => "code",
        "pre" => "pre",
        "spoiler" => "spoiler",
        "mention" | "mention_name" | "hashtag" | "cashtag" | "bot_command" => "mention",
        "blockquote" => "quote",
        _ => return None,
    })
}

fn entity_href(entity: &TextEntity, covered_text: &str) -> Option<String> {
    match entity.kind.as_str() {
        "link" | "url" => safe_href(covered_text),
        "text_link" => serde_json::from_str::<serde_json::Value>(&entity.extra_json)
            .ok()
            .and_then(|extra| extra.get("href").and_then(|href| href.as_str()).and_then(safe_href)),
        "email" => safe_href(&format!("mailto:{covered_text}")),
        _ => None,
    }
}

/// Cuts `text` into runs at every entity boundary (offsets and lengths count Unicode
/// scalar values, as the export's do); each run gets the classes and link of the entities
/// covering it. Entities reaching past the text are cut at its end.
pub fn spans_of(text: &str, entities: &[TextEntity]) -> Vec<Span> {
    let chars: Vec<char> = text.chars().collect();
    let length = chars.len();
    let bounds = |entity: &TextEntity| {
        let start = (entity.offset as usize).min(length);
        (start, start.saturating_add(entity.length as usize).min(length))
    };
    let mut cuts: Vec<usize> = vec![0, length];
    for entity in entities {
        let (start, end) = bounds(entity);
        cuts.extend([start, end]);
    }
    cuts.sort_unstable();
    cuts.dedup();
    let mut spans = Vec::new();
    for window in cuts.windows(2) {
        let (from, to) = (window[0], window[1]);
        if from == to {
            continue;
        }
        let run: String = chars[from..to].iter().collect();
        let mut classes: Vec<&str> = Vec::new();
        let mut href = None;
        for entity in entities {
            let (start, end) = bounds(entity);
            if start <= from && to <= end {
                if let Some(class) = entity_class(&entity.kind) {
                    classes.push(class);
                }
                if href.is_none() {
                    let covered: String = chars[start..end].iter().collect();
                    href = entity_href(entity, &covered);
                }
            }
        }
        classes.dedup();
        spans.push(Span { text: run, classes: classes.join(" "), href });
    }
    spans
}

/// Cuts a `highlighted_text` (matches between U+0001 and U+0002) into runs; matches get
/// the class `hit`.
pub fn spans_of_highlight(highlighted: &str) -> Vec<Span> {
    let mut spans = Vec::new();
    let mut in_hit = false;
    let mut run = String::new();
    let mut flush = |run: &mut String, in_hit: bool| {
        if !run.is_empty() {
            spans.push(Span { text: std::mem::take(run), classes: if in_hit { "hit".to_owned() } else { String::new() }, href: None });
        }
    };
    for character in highlighted.chars() {
        match character {
            '\u{1}' => {
                flush(&mut run, in_hit);
                in_hit = true;
            }
            '\u{2}' => {
                flush(&mut run, in_hit);
                in_hit = false;
            }
            other => run.push(other),
        }
    }
    flush(&mut run, in_hit);
    spans
}

/// A service message's action in words (Telegram's `action` names, see
/// telegram-export-format.md), with who did it.
pub fn sentence_of_action(action: &str, actor: &str, text: &str) -> String {
    let who = if actor.is_empty() { "Someone" } else { actor };
    let what = match action {
        "create_group" => "created the group".to_owned(),
        "create_channel" => "created the channel".to_owned(),
        "migrate_to_supergroup" | "migrate_from_group" => "upgraded the group to a supergroup".to_owned(),
        "invite_members" => "added members".to_owned(),
        "remove_members" => "removed members".to_owned(),
        "join_group_by_link" => "joined the group via an invite link".to_owned(),
        "join_group_by_request" => "was accepted into the group".to_owned(),
        "edit_group_title" => "changed the group name".to_owned(),
        "edit_group_photo" => "changed the group photo".to_owned(),
        "delete_group_photo" => "removed the group photo".to_owned(),
        "pin_message" => "pinned a message".to_owned(),
        "phone_call" => "made a call".to_owned(),
        "group_call" => "started a voice chat".to_owned(),
        "invite_to_group_call" => "invited members to the voice chat".to_owned(),
        "group_call_scheduled" => "scheduled a voice chat".to_owned(),
        "clear_history" => "cleared the history".to_owned(),
        "score_in_game" => "scored in a game".to_owned(),
        "set_messages_ttl" => "changed the auto-delete timer".to_owned(),
        "topic_created" => "created a topic".to_owned(),
        "topic_edit" => "edited a topic".to_owned(),
        "boost_apply" => "boosted the group".to_owned(),
        "custom_action" => String::new(),
        other => other.replace('_', " "),
    };
    let sentence = match (what.is_empty(), text.is_empty()) {
        (true, _) => text.to_owned(),
        (false, true) => format!("{who} {what}"),
        (false, false) => format!("{who} {what}: {text}"),
    };
    if sentence.is_empty() {
        format!("{who} did something")
    } else {
        sentence
    }
}

/// A byte count in words: `1.5 MB`.
pub fn size_text(bytes: u64) -> String {
    const UNITS: &[&str] = &["bytes", "KB", "MB", "GB", "TB"];
    let mut value = bytes as f64;
    let mut unit = 0;
    while value >= 1000.0 && unit + 1 < UNITS.len() {
        value /= 1000.0;
        unit += 1;
    }
    if unit == 0 {
        format!("{bytes} bytes")
    } else {
        format!("{value:.1} {}", UNITS[unit])
    }
}

fn media_label(kind: &str) -> &'static str {
    match kind {
        "photo" => "Photo",
        "sticker" => "Sticker",
        "animation" => "GIF",
        "video_file" => "Video",
        "video_message" => "Video message",
        "voice_message" => "Voice message",
        "audio_file" => "Audio",
        "contact" => "Contact",
        "location" | "live_location" => "Location",
        "venue" => "Venue",
        "poll" => "Poll",
        "game" => "Game",
        "invoice" => "Invoice",
        _ => "File",
    }
}

/// The lines and map link of a poll, location, venue or contact from `details_json`.
fn details_of(details_json: Option<&str>) -> (Vec<String>, Option<String>) {
    let Some(details) = details_json.and_then(|json| serde_json::from_str::<serde_json::Value>(json).ok()) else {
        return (Vec::new(), None);
    };
    let text = |value: &serde_json::Value| value.as_str().map(str::to_owned).unwrap_or_else(|| value.to_string());
    let mut lines = Vec::new();
    let mut map = None;
    if let Some(poll) = details.get("poll") {
        if let Some(question) = poll.get("question") {
            lines.push(text(question));
        }
        for answer in poll.get("answers").and_then(|answers| answers.as_array()).into_iter().flatten() {
            let votes = answer.get("voters").and_then(serde_json::Value::as_u64).unwrap_or(0);
            let chosen = if answer.get("chosen").and_then(serde_json::Value::as_bool).unwrap_or(false) { " ✓" } else { "" };
            lines.push(format!("• {} — {votes} vote{}{chosen}", answer.get("text").map(text).unwrap_or_default(), if votes == 1 { "" } else { "s" }));
        }
        if let Some(total) = poll.get("total_voters").and_then(serde_json::Value::as_u64) {
            lines.push(format!("{total} voter{} in all", if total == 1 { "" } else { "s" }));
        }
    }
    for key in ["place_name", "address"] {
        if let Some(value) = details.get(key) {
            lines.push(text(value));
        }
    }
    if let Some(location) = details.get("location_information") {
        let coordinate = |name: &str| location.get(name).and_then(serde_json::Value::as_f64);
        if let (Some(latitude), Some(longitude)) = (coordinate("latitude"), coordinate("longitude")) {
            lines.push(format!("{latitude:.5}, {longitude:.5}"));
            map = Some(format!("https://www.openstreetmap.org/?mlat={latitude}&mlon={longitude}#map=16/{latitude}/{longitude}"));
        }
    }
    if let Some(contact) = details.get("contact_information") {
        let name = ["first_name", "last_name"]
            .iter()
            .filter_map(|key| contact.get(*key).map(text))
            .filter(|part| !part.is_empty())
            .collect::<Vec<_>>()
            .join(" ");
        if !name.is_empty() {
            lines.push(name);
        }
        if let Some(phone) = contact.get("phone_number") {
            lines.push(text(phone));
        }
    }
    if let Some(emoji) = details.get("sticker_emoji") {
        lines.push(text(emoji));
    }
    (lines, map)
}

/// The view of a message's media.
pub fn media_view(media: &Media, details_json: Option<&str>) -> MediaView {
    let mime = media.mime_type.clone().unwrap_or_default();
    let raster = |mime: &str| matches!(mime, "image/jpeg" | "image/png" | "image/gif" | "image/webp");
    let is_picture = media.file_id.is_some() && (media.kind == "photo" || (media.kind == "sticker" && raster(&mime)));
    let player = match media.kind.as_str() {
        _ if media.file_id.is_none() => "",
        "voice_message" | "audio_file" => "audio",
        "video_file" | "video_message" | "animation" => "video",
        _ => "",
    };
    let (details, map_href) = details_of(details_json);
    MediaView {
        kind: media.kind.clone(),
        label: media.file_name.clone().filter(|name| !name.is_empty()).unwrap_or_else(|| media_label(&media.kind).to_owned()),
        file_id: media.file_id.clone(),
        size_text: media.file_size.map(size_text).unwrap_or_default(),
        mime_type: mime,
        is_picture,
        player,
        missing: if media.file_id.is_none() {
            media.not_included_reason.clone().or_else(|| media.path.as_ref().map(|_| "not stored".to_owned()))
        } else {
            None
        },
        width: media.width.unwrap_or(0),
        height: media.height.unwrap_or(0),
        details,
        map_href,
    }
}

/// A stable colour class (0–7) for an author id or name (FNV-1a).
pub fn colour_of(author: &str) -> u8 {
    let hash = author.bytes().fold(0x811c_9dc5u32, |hash, byte| (hash ^ u32::from(byte)).wrapping_mul(0x0100_0193));
    (hash % 8) as u8
}

fn date_of(unix: Option<i64>) -> Option<DateTime<Utc>> {
    unix.and_then(|seconds| DateTime::from_timestamp(seconds, 0))
}

/// Builds the views of a page of messages in id order; `target` is the message the page
/// was opened at; `chat_href` is the chat page's path (for replies off the page).
pub fn message_views(messages: &[StoredMessage], target: Option<i64>, chat_href: &str) -> Vec<MessageView> {
    let on_page: std::collections::HashMap<i64, &StoredMessage> = messages.iter().map(|message| (message.message_id, message)).collect();
    let mut previous_day = String::new();
    messages
        .iter()
        .map(|message| {
            let date = date_of(message.date_unix);
            let day = date.map(|date| date.format("%Y-%m-%d").to_string()).unwrap_or_default();
            let new_day = !day.is_empty() && day != previous_day;
            if !day.is_empty() {
                previous_day = day.clone();
            }
            let author = message.from_name.clone().or_else(|| message.from_id.clone()).unwrap_or_default();
            let is_service = message.kind == MessageKind::Service as i32;
            let reply = message.reply_to_message_id.map(|reply_id| {
                let (href, preview) = match on_page.get(&reply_id) {
                    Some(replied) => (format!("#m{reply_id}"), preview_of(replied)),
                    None => (format!("{chat_href}&at={reply_id}#m{reply_id}"), format!("message {reply_id}")),
                };
                ReplyView { message_id: reply_id, href, preview }
            });
            let spans = match &message.highlighted_text {
                Some(highlighted) => spans_of_highlight(highlighted),
                None => spans_of(&message.text, &message.entities),
            };
            MessageView {
                id: message.message_id,
                is_service,
                day_label: date.map(|date| date.format("%A, %-d %B %Y").to_string()).unwrap_or_default(),
                day,
                time: date.map(|date| date.format("%H:%M").to_string()).unwrap_or_default(),
                datetime: date.map(|date| date.to_rfc3339()).unwrap_or_default(),
                author_colour: colour_of(message.from_id.as_deref().unwrap_or(&author)),
                author,
                edited: date_of(message.edited_unix).map(|date| date.format("%Y-%m-%d %H:%M").to_string()),
                forwarded_from: message.forwarded_from.clone(),
                via_bot: message.via_bot.clone(),
                reply,
                sentence: if is_service {
                    Some(sentence_of_action(
                        message.action.as_deref().unwrap_or_default(),
                        message.actor_name.as_deref().unwrap_or_default(),
                        &message.text,
                    ))
                } else {
                    None
                },
                spans: if is_service { Vec::new() } else { spans },
                media: message.media.as_ref().map(|media| media_view(media, message.details_json.as_deref())),
                new_day,
                is_target: target == Some(message.message_id),
            }
        })
        .collect()
}

/// The first 80 characters of a message, for reply previews.
pub fn preview_of(message: &StoredMessage) -> String {
    let text: String = message.text.chars().take(80).collect();
    if text.is_empty() {
        message.media.as_ref().map(|media| media_label(&media.kind).to_owned()).unwrap_or_else(|| format!("message {}", message.message_id))
    } else if message.text.chars().count() > 80 {
        format!("{text}…")
    } else {
        text
    }
}

#[cfg(test)]
mod tests {
    use chatvault_proto::chat::v1::TextEntity;

    use super::*;

    fn entity(kind: &str, offset: u32, length: u32, extra_json: &str) -> TextEntity {
        TextEntity { kind: kind.to_owned(), offset, length, extra_json: extra_json.to_owned() }
    }

    #[test]
    fn only_safe_schemes_become_links() {
        assert_eq!(safe_href("https://example.org/a?b=1").as_deref(), Some("https://example.org/a?b=1"));
        assert_eq!(safe_href("example.org/path").as_deref(), Some("https://example.org/path"));
        assert_eq!(safe_href("mailto:ann@example.org").as_deref(), Some("mailto:ann@example.org"));
        for hostile in ["javascript:alert(1)", " JavaScript:alert(1)", "data:text/html,<script>", "vbscript:x", "java\tscript:alert(1)", ""] {
            assert_eq!(safe_href(hostile), None, "{hostile:?}");
        }
    }

    #[test]
    fn entities_cut_the_text_into_runs_by_unicode_scalar_offsets() {
        // "Привет 👋 bold link": offsets count scalar values, like the export's.
        let text = "Привет 👋 bold link";
        let spans = spans_of(text, &[entity("bold", 9, 4, ""), entity("text_link", 14, 4, r#"{"href":"javascript:alert(1)"}"#)]);
        let runs: Vec<(&str, &str, Option<&str>)> =
            spans.iter().map(|span| (span.text.as_str(), span.classes.as_str(), span.href.as_deref())).collect();
        assert_eq!(runs, vec![("Привет 👋 ", "", None), ("bold", "b", None), (" ", "", None), ("link", "", None)]);
        let linked = spans_of("see example.org", &[entity("url", 4, 11, "")]);
        assert_eq!(linked[1].href.as_deref(), Some("https://example.org"));
        // Entities past the end are cut, never a panic.
        assert_eq!(spans_of("ab", &[entity("bold", 1, 99, "")]).len(), 2);
    }

    #[test]
    fn highlights_become_hit_runs() {
        let spans = spans_of_highlight("the \u{1}quick\u{2} fox");
        assert_eq!(
            spans.iter().map(|span| (span.text.as_str(), span.classes.as_str())).collect::<Vec<_>>(),
            vec![("the ", ""), ("quick", "hit"), (" fox", "")]
        );
    }

    #[test]
    fn service_actions_read_as_sentences() {
        assert_eq!(sentence_of_action("pin_message", "Ann", ""), "Ann pinned a message");
        assert_eq!(sentence_of_action("edit_group_title", "Bob", "New name"), "Bob changed the group name: New name");
        assert_eq!(sentence_of_action("something_new", "", ""), "Someone something new");
    }

    #[test]
    fn polls_and_locations_are_described() {
        let (lines, map) = details_of(Some(
            r#"{"poll":{"question":"Lunch?","answers":[{"text":"Yes","voters":2,"chosen":true},{"text":"No","voters":1}],"total_voters":3},
                "location_information":{"latitude":59.9386,"longitude":30.3141}}"#,
        ));
        assert_eq!(lines, vec!["Lunch?", "• Yes — 2 votes ✓", "• No — 1 vote", "3 voters in all", "59.93860, 30.31410"]);
        assert!(map.expect("a map link").starts_with("https://www.openstreetmap.org/?mlat=59.9386"));
    }
}
