//! Message text: turns tdesktop's `text` / `text_entities` parts into one plain string plus
//! a list of formatted [`TextEntity`] spans.
//!
//! `text` is either a plain string or an array mixing strings (unformatted runs) and
//! `{"type", "text", ...}` objects; `text_entities` (newer exports) is an array of objects
//! only, with unformatted runs as `{"type": "plain"}` (format reference, section 2.6). Both
//! may end with an empty part; empty parts are harmless and dropped. Offsets and lengths
//! of entities count Unicode scalar values (`char`s) of the concatenated text.

use serde_json::{Map, Value};

use crate::message::{Warning, WarningKind};

/// The formatting of a [`TextEntity`], one per entity `type` string tdesktop writes.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum TextEntityKind {
    /// `bold`
    Bold,
    /// `italic`
    Italic,
    /// `underline`
    Underline,
    /// `strikethrough`
    Strikethrough,
    /// `code` (inline)
    Code,
    /// `pre` (a code block, see [`TextEntity::language`])
    Pre,
    /// `text_link` (see [`TextEntity::href`])
    TextLink,
    /// `link` (the text is the URL)
    Link,
    /// `mention` (`@name`)
    Mention,
    /// `mention_name` (see [`TextEntity::user_id`])
    MentionName,
    /// `hashtag`
    Hashtag,
    /// `cashtag`
    Cashtag,
    /// `bot_command`
    BotCommand,
    /// `email`
    Email,
    /// `phone`
    Phone,
    /// `bank_card`
    BankCard,
    /// `blockquote` (see [`TextEntity::collapsed`])
    Blockquote,
    /// `spoiler`
    Spoiler,
    /// `custom_emoji` (see [`TextEntity::document_id`])
    CustomEmoji,
    /// `unknown`: tdesktop's own name for entities it does not know.
    Unknown,
    /// A type string this crate does not know; kept verbatim.
    Other(String),
}

impl TextEntityKind {
    /// Returns the kind for a `type` string, or `None` for `plain` (not an entity).
    pub fn from_type_name(type_name: &str) -> Option<TextEntityKind> {
        let kind = match type_name {
            "plain" => return None,
            "bold" => TextEntityKind::Bold,
            "italic" => TextEntityKind::Italic,
            "underline" => TextEntityKind::Underline,
            "strikethrough" => TextEntityKind::Strikethrough,
            "code" => TextEntityKind::Code,
            "pre" => TextEntityKind::Pre,
            "text_link" => TextEntityKind::TextLink,
            "link" => TextEntityKind::Link,
            "mention" => TextEntityKind::Mention,
            "mention_name" => TextEntityKind::MentionName,
            "hashtag" => TextEntityKind::Hashtag,
            "cashtag" => TextEntityKind::Cashtag,
            "bot_command" => TextEntityKind::BotCommand,
            "email" => TextEntityKind::Email,
            "phone" => TextEntityKind::Phone,
            "bank_card" => TextEntityKind::BankCard,
            "blockquote" => TextEntityKind::Blockquote,
            "spoiler" => TextEntityKind::Spoiler,
            "custom_emoji" => TextEntityKind::CustomEmoji,
            "unknown" => TextEntityKind::Unknown,
            other => TextEntityKind::Other(other.to_owned()),
        };
        Some(kind)
    }

    /// Returns the `type` string as written in the export.
    pub fn as_str(&self) -> &str {
        match self {
            TextEntityKind::Bold => "bold",
            TextEntityKind::Italic => "italic",
            TextEntityKind::Underline => "underline",
            TextEntityKind::Strikethrough => "strikethrough",
            TextEntityKind::Code => "code",
            TextEntityKind::Pre => "pre",
            TextEntityKind::TextLink => "text_link",
            TextEntityKind::Link => "link",
            TextEntityKind::Mention => "mention",
            TextEntityKind::MentionName => "mention_name",
            TextEntityKind::Hashtag => "hashtag",
            TextEntityKind::Cashtag => "cashtag",
            TextEntityKind::BotCommand => "bot_command",
            TextEntityKind::Email => "email",
            TextEntityKind::Phone => "phone",
            TextEntityKind::BankCard => "bank_card",
            TextEntityKind::Blockquote => "blockquote",
            TextEntityKind::Spoiler => "spoiler",
            TextEntityKind::CustomEmoji => "custom_emoji",
            TextEntityKind::Unknown => "unknown",
            TextEntityKind::Other(type_name) => type_name,
        }
    }
}

/// One formatted span of a message's text.
#[derive(Debug, Clone, PartialEq)]
pub struct TextEntity {
    /// The formatting.
    pub kind: TextEntityKind,
    /// The formatted text itself.
    pub text: String,
    /// Where the span starts in the message text, in Unicode scalar values (`char`s).
    pub char_offset: usize,
    /// The span's length in Unicode scalar values (`char`s).
    pub char_length: usize,
    /// The link target of a `text_link`.
    pub href: Option<String>,
    /// The language of a `pre` block (may be empty).
    pub language: Option<String>,
    /// The mentioned user of a `mention_name`.
    pub user_id: Option<i64>,
    /// For `custom_emoji`: the sticker file path, `""` or `"(unavailable)"`.
    pub document_id: Option<String>,
    /// Whether a `blockquote` is collapsed (newest exports only).
    pub collapsed: Option<bool>,
    /// Any other keys of the part, kept verbatim.
    pub extra: Map<String, Value>,
}

/// The plain text of a message with its formatted spans.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct ParsedText {
    /// The concatenated text of all parts.
    pub text: String,
    /// The formatted parts, in text order.
    pub entities: Vec<TextEntity>,
}

/// Counts characters of a growing text incrementally, so plain runs are never counted
/// unless an entity follows them.
struct CharOffsetCounter {
    counted_bytes: usize,
    counted_chars: usize,
}

impl CharOffsetCounter {
    fn char_offset_of_end(&mut self, text: &str) -> usize {
        self.counted_chars += text.get(self.counted_bytes..).map_or(0, |tail| tail.chars().count());
        self.counted_bytes = text.len();
        self.counted_chars
    }
}

/// One part of a `text` or `text_entities` array, with `type` and `text` already taken
/// out of objects.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum TextPart {
    /// An unformatted run written as a bare string.
    Run(String),
    /// A `{"type", "text", ...}` object: `kind` is `None` for `plain`, `text` is `None`
    /// when missing or not a string, `extra` holds the other keys.
    Object { kind: Option<TextEntityKind>, text: Option<String>, extra: Map<String, Value> },
    /// Anything else; reported as a warning.
    Invalid(Value),
}

impl TextPart {
    /// Splits a part of a built `text` array.
    pub(crate) fn from_value(value: Value) -> TextPart {
        match value {
            Value::String(text) => TextPart::Run(text),
            Value::Object(mut extra) => {
                let kind = match extra.shift_remove("type") {
                    Some(Value::String(type_name)) => TextEntityKind::from_type_name(&type_name),
                    _ => TextEntityKind::from_type_name(""),
                };
                let text = match extra.shift_remove("text") {
                    Some(Value::String(text)) => Some(text),
                    _ => None,
                };
                TextPart::Object { kind, text, extra }
            }
            other => TextPart::Invalid(other),
        }
    }
}

fn entity_from_part(
    kind: TextEntityKind,
    mut extra: Map<String, Value>,
    part_text: String,
    char_offset: usize,
    field_name: &str,
    warnings: &mut Vec<Warning>,
) -> TextEntity {
    let mut take_string = |key: &str, extra: &mut Map<String, Value>| match extra.shift_remove(key) {
        None | Some(Value::Null) => None,
        Some(Value::String(text)) => Some(text),
        Some(other) => {
            warnings.push(Warning::new(WarningKind::UnexpectedFieldType, format!("entity key {key:?} in {field_name:?} is not a string: {other}")));
            None
        }
    };
    let href = take_string("href", &mut extra);
    let language = take_string("language", &mut extra);
    let document_id = take_string("document_id", &mut extra);
    let user_id = match extra.get("user_id") {
        Some(Value::Number(number)) => number.as_i64(),
        Some(Value::String(text)) => text.parse::<i64>().ok(),
        _ => None,
    };
    if user_id.is_some() {
        extra.shift_remove("user_id");
    }
    let collapsed = extra.get("collapsed").and_then(Value::as_bool);
    if collapsed.is_some() {
        extra.shift_remove("collapsed");
    }
    TextEntity { kind, char_length: part_text.chars().count(), text: part_text, char_offset, href, language, user_id, document_id, collapsed, extra }
}

/// Turns a `text` or `text_entities` value into plain text and entities. Odd parts (a
/// number, an object without text, an unknown type) become warnings, never errors.
pub(crate) fn parse_text_value(value: Value, field_name: &str, warnings: &mut Vec<Warning>) -> ParsedText {
    match value {
        Value::String(text) => ParsedText { text, entities: Vec::new() },
        Value::Null => ParsedText::default(),
        Value::Array(parts) => {
            let parts = parts.into_iter().map(TextPart::from_value).collect();
            parse_text_parts(parts, field_name, warnings)
        }
        other => {
            warnings.push(Warning::new(WarningKind::UnexpectedFieldType, format!("{field_name:?} is neither a string nor an array: {other}")));
            ParsedText::default()
        }
    }
}

/// Concatenates text parts into plain text and entities.
pub(crate) fn parse_text_parts(parts: Vec<TextPart>, field_name: &str, warnings: &mut Vec<Warning>) -> ParsedText {
    let mut parsed = ParsedText::default();
    let mut counter = CharOffsetCounter { counted_bytes: 0, counted_chars: 0 };
    for part in parts {
        let (kind, text, extra) = match part {
            TextPart::Run(text) => {
                parsed.text.push_str(&text);
                continue;
            }
            TextPart::Object { kind, text, extra } => (kind, text, extra),
            TextPart::Invalid(other) => {
                warnings.push(Warning::new(
                    WarningKind::UnexpectedFieldType,
                    format!("a part of {field_name:?} is neither a string nor an object: {other}"),
                ));
                continue;
            }
        };
        let part_text = text.unwrap_or_else(|| {
            warnings.push(Warning::new(WarningKind::UnexpectedFieldType, format!("a part of {field_name:?} has no string \"text\"")));
            String::new()
        });
        let Some(kind) = kind else {
            parsed.text.push_str(&part_text);
            continue;
        };
        if let TextEntityKind::Other(unknown_type) = &kind {
            warnings.push(Warning::new(WarningKind::UnknownEntityType, format!("unknown entity type {unknown_type:?} in {field_name:?}")));
        }
        let char_offset = counter.char_offset_of_end(&parsed.text);
        parsed.text.push_str(&part_text);
        parsed.entities.push(entity_from_part(kind, extra, part_text, char_offset, field_name, warnings));
    }
    parsed
}

/// Returns the plain text of a `text`-like value (string or parts array), dropping
/// formatting; used for poll questions and answers.
pub(crate) fn plain_text_of_value(value: Value, field_name: &str, warnings: &mut Vec<Warning>) -> String {
    parse_text_value(value, field_name, warnings).text
}

/// Returns whether the concatenated text of a `text` value equals `expected`, without
/// allocating.
pub(crate) fn text_value_equals(value: &Value, expected: &str) -> bool {
    let parts = match value {
        Value::String(text) => return text == expected,
        Value::Array(parts) => parts,
        _ => return expected.is_empty(),
    };
    let mut remaining = expected;
    for part in parts {
        let part_text = match part {
            Value::String(text) => text.as_str(),
            Value::Object(object) => object.get("text").and_then(Value::as_str).unwrap_or(""),
            _ => "",
        };
        match remaining.strip_prefix(part_text) {
            Some(rest) => remaining = rest,
            None => return false,
        }
    }
    remaining.is_empty()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn parse(value: Value) -> (ParsedText, Vec<Warning>) {
        let mut warnings = Vec::new();
        let parsed = parse_text_value(value, "text", &mut warnings);
        (parsed, warnings)
    }

    #[test]
    fn plain_string_has_no_entities() {
        let (parsed, warnings) = parse(json!("hello"));
        assert_eq!(parsed.text, "hello");
        assert!(parsed.entities.is_empty());
        assert!(warnings.is_empty());
    }

    #[test]
    fn text_array_with_trailing_empty_part_concatenates() {
        let (parsed, warnings) = parse(json!([
            "Deploy ",
            {"type": "bold", "text": "today"},
            " — see ",
            {"type": "text_link", "text": "the plan", "href": "https://example.com/plan"},
            ""
        ]));
        assert!(warnings.is_empty());
        assert_eq!(parsed.text, "Deploy today — see the plan");
        assert_eq!(parsed.entities.len(), 2);
        let bold = &parsed.entities[0];
        assert_eq!((bold.kind.clone(), bold.char_offset, bold.char_length), (TextEntityKind::Bold, 7, 5));
        let link = &parsed.entities[1];
        assert_eq!(link.kind, TextEntityKind::TextLink);
        assert_eq!((link.char_offset, link.char_length), (19, 8));
        assert_eq!(link.href.as_deref(), Some("https://example.com/plan"));
        let chars: Vec<char> = parsed.text.chars().collect();
        let linked: String = chars[link.char_offset..link.char_offset + link.char_length].iter().collect();
        assert_eq!(linked, "the plan");
    }

    #[test]
    fn text_entities_keep_extras_and_count_chars_not_bytes() {
        let (parsed, warnings) = parse(json!([
            {"type": "plain", "text": "👩\u{200d}💻 "},
            {"type": "mention_name", "text": "Анна", "user_id": 42},
            {"type": "plain", "text": " "},
            {"type": "pre", "text": "x", "language": ""},
            {"type": "custom_emoji", "text": "😆", "document_id": "chats/chat_004/stickers/sticker (62).webp"},
            {"type": "blockquote", "text": "q", "collapsed": true},
            {"type": "unknown", "text": "?"},
            {"type": "plain", "text": ""}
        ]));
        assert!(warnings.is_empty(), "{warnings:?}");
        assert_eq!(parsed.text, "👩\u{200d}💻 Анна x😆q?");
        let offsets: Vec<(usize, usize)> = parsed.entities.iter().map(|e| (e.char_offset, e.char_length)).collect();
        assert_eq!(offsets, [(4, 4), (9, 1), (10, 1), (11, 1), (12, 1)]);
        assert_eq!(parsed.entities[0].user_id, Some(42));
        assert_eq!(parsed.entities[1].language.as_deref(), Some(""));
        assert_eq!(parsed.entities[2].document_id.as_deref(), Some("chats/chat_004/stickers/sticker (62).webp"));
        assert_eq!(parsed.entities[3].collapsed, Some(true));
        assert_eq!(parsed.entities[4].kind, TextEntityKind::Unknown);
    }

    #[test]
    fn unknown_entity_types_are_kept_with_a_warning() {
        let (parsed, warnings) = parse(json!([{"type": "date_time", "text": "noon", "unix": 5}]));
        assert_eq!(parsed.entities[0].kind, TextEntityKind::Other("date_time".to_owned()));
        assert_eq!(parsed.entities[0].kind.as_str(), "date_time");
        assert_eq!(parsed.entities[0].extra.get("unix"), Some(&json!(5)));
        assert_eq!(warnings.len(), 1);
        assert_eq!(warnings[0].kind, WarningKind::UnknownEntityType);
    }

    #[test]
    fn odd_parts_become_warnings() {
        let (parsed, warnings) = parse(json!(["a", 5, {"type": "bold"}, "b"]));
        assert_eq!(parsed.text, "ab");
        assert_eq!(warnings.len(), 2);
        let (parsed, warnings) = parse(json!(17));
        assert_eq!(parsed.text, "");
        assert_eq!(warnings.len(), 1);
    }

    #[test]
    fn every_known_type_name_round_trips() {
        for name in [
            "bold",
            "italic",
            "underline",
            "strikethrough",
            "code",
            "pre",
            "text_link",
            "link",
            "mention",
            "mention_name",
            "hashtag",
            "cashtag",
            "bot_command",
            "email",
            "phone",
            "bank_card",
            "blockquote",
            "spoiler",
            "custom_emoji",
            "unknown",
        ] {
            let kind = TextEntityKind::from_type_name(name).expect("an entity kind");
            assert!(!matches!(kind, TextEntityKind::Other(_)), "{name}");
            assert_eq!(kind.as_str(), name);
        }
        assert_eq!(TextEntityKind::from_type_name("plain"), None);
    }

    #[test]
    fn compares_text_values_without_allocating() {
        assert!(text_value_equals(&json!("ab"), "ab"));
        assert!(text_value_equals(&json!(["a", {"type": "bold", "text": "b"}, ""]), "ab"));
        assert!(!text_value_equals(&json!(["a", {"type": "bold", "text": "c"}]), "ab"));
        assert!(!text_value_equals(&json!(["a"]), "ab"));
    }
}
