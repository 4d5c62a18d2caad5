//! The typed [`Message`], mapped from one message object of `result.json`.
//!
//! The export reader builds each message object as a `serde_json::Map` and hands it to
//! [`Message::from_json_object`]. Mapping never fails on content: unknown message types,
//! entity types or media types, and fields of an unexpected type, become [`Warning`]s, and
//! the whole object is kept as [`Message::raw_json`]. Only a missing or non-integer message
//! `id` is an error, because without it the message cannot be identified.
//! Field meanings follow the format reference, section 2.5.

use chrono::NaiveDateTime;
use serde_json::{Map, Value};

use crate::field_reader::{FieldReader, MessageField, MessageFields};
use crate::media::{take_media, Media};
use crate::peer_id::{normalize_peer_id_value, NormalizedPeerId};
use crate::text::{parse_text_parts, parse_text_value, text_value_equals, ParsedText, TextEntity, TextPart};

/// Settings for reading an export.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct ParseOptions {
    /// The UTC offset of the computer that made the export, in seconds east of UTC. Used only
    /// for exports older than June 2022, which have no `date_unixtime` and give `date` in
    /// that computer's local time.
    pub local_utc_offset_seconds: i32,
}

/// The type of a message.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum MessageKind {
    /// `"message"`: an ordinary message.
    Regular,
    /// `"service"`: a group event (joins, title changes, pins, calls, ...).
    Service,
    /// `"unsupported"`: a message the exporting app could not show; it has only an id.
    Unsupported,
    /// A `type` this crate does not know; kept verbatim.
    Other(String),
}

/// What a [`Warning`] is about.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum WarningKind {
    /// The message has no `type`; its kind was guessed from its fields.
    MissingMessageType,
    /// The message `type` is not one this crate knows.
    UnknownMessageType,
    /// A text part has an entity `type` this crate does not know.
    UnknownEntityType,
    /// A file has a `media_type` this crate does not know.
    UnknownMediaType,
    /// A field has a value of an unexpected type; it was ignored.
    UnexpectedFieldType,
    /// A date could not be read.
    InvalidDate,
    /// A peer id is neither a modern id nor a legacy number; it was kept as written.
    UnrecognizedPeerId,
    /// `text` and `text_entities` disagree; `text_entities` was used.
    TextMismatch,
    /// An HTML block has no author: not joined to a previous block, or joined at the
    /// start of a page.
    MissingAuthor,
}

impl WarningKind {
    /// Returns a stable snake_case name, for logs and metrics.
    pub fn as_str(self) -> &'static str {
        match self {
            WarningKind::MissingMessageType => "missing_message_type",
            WarningKind::UnknownMessageType => "unknown_message_type",
            WarningKind::UnknownEntityType => "unknown_entity_type",
            WarningKind::UnknownMediaType => "unknown_media_type",
            WarningKind::UnexpectedFieldType => "unexpected_field_type",
            WarningKind::InvalidDate => "invalid_date",
            WarningKind::UnrecognizedPeerId => "unrecognized_peer_id",
            WarningKind::TextMismatch => "text_mismatch",
            WarningKind::MissingAuthor => "missing_author",
        }
    }
}

/// Something odd about a message that did not stop it from being read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Warning {
    /// What the warning is about.
    pub kind: WarningKind,
    /// Details in words, naming the field and value.
    pub detail: String,
}

impl Warning {
    /// Creates a warning.
    pub fn new(kind: WarningKind, detail: impl Into<String>) -> Warning {
        Warning { kind, detail: detail.into() }
    }
}

/// Fails the mapping of a message object that has no usable `id`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("expected {expected}, found {found}")]
pub struct InvalidMessageError {
    /// What the message needs.
    pub expected: String,
    /// What it holds instead.
    pub found: String,
}

/// One message of a chat.
#[derive(Debug, Clone, PartialEq)]
pub struct Message {
    /// The id of the chat the message belongs to (the chat object's `id`).
    pub chat_id: i64,
    /// The message id within the chat; negative for history migrated from a basic group.
    pub id: i64,
    /// Regular, service or unsupported.
    pub kind: MessageKind,
    /// When the message was sent, in Unix seconds: `date_unixtime`, or `date` read with
    /// [`ParseOptions::local_utc_offset_seconds`] in old exports; `None` when there is no
    /// date (unsupported messages).
    pub date_unix: Option<i64>,
    /// The raw `date` string: wall-clock time of the exporting computer, without offset.
    pub date_local: Option<String>,
    /// When the message was last edited, in Unix seconds; `None` when never edited
    /// (including the `1970-01-01T..` placeholder of exports before v2.1.9).
    pub edited_unix: Option<i64>,
    /// The author's display name; `None` for deleted accounts and messages without author.
    pub from_name: Option<String>,
    /// The author's id, normalised to `"user123"` / `"channel123"` / `"chat123"`.
    pub from_id: Option<String>,
    /// The actor's display name (service messages).
    pub actor_name: Option<String>,
    /// The actor's id (service messages), normalised like [`Message::from_id`].
    pub actor_id: Option<String>,
    /// The service action, e.g. `pin_message`; unknown actions are kept as written.
    pub action: Option<String>,
    /// The post signature in channels (`author`).
    pub author_signature: Option<String>,
    /// Whether the message was forwarded (`forwarded_from` present, even if `null`).
    pub is_forwarded: bool,
    /// The original author's name of a forwarded message; `None` also when that peer has
    /// no name (see [`Message::is_forwarded`]).
    pub forwarded_from: Option<String>,
    /// Where a message in Saved Messages was saved from.
    pub saved_from: Option<String>,
    /// The id of the message this one replies to.
    pub reply_to_message_id: Option<i64>,
    /// The chat of the replied message when it is in another chat, e.g. `"channel123"`.
    pub reply_to_peer_id: Option<String>,
    /// The inline bot used to send the message, e.g. `"@gif"`.
    pub via_bot: Option<String>,
    /// The plain text: the concatenation of all text parts.
    pub text: String,
    /// The formatted parts of [`Message::text`], with offsets in `char`s.
    pub entities: Vec<TextEntity>,
    /// The attached media, if any (also the new photo of `edit_group_photo`).
    pub media: Option<Media>,
    /// The whole message object as compact JSON, so nothing in the export is ever lost.
    pub raw_json: String,
    /// Odd things found while mapping the message.
    pub warnings: Vec<Warning>,
}

/// Describes a JSON value's type in words, for error messages.
pub fn describe_json_value(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(number) if number.is_f64() => "a decimal number",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

/// Reads tdesktop's local date format `2026-11-22T10:15:30` as Unix seconds, given the
/// UTC offset of the exporting computer.
pub fn parse_local_date_to_unix(local_date: &str, local_utc_offset_seconds: i32) -> Option<i64> {
    let local = NaiveDateTime::parse_from_str(local_date.trim(), "%Y-%m-%dT%H:%M:%S").ok()?;
    Some(local.and_utc().timestamp() - i64::from(local_utc_offset_seconds))
}

/// Returns whether an `edited` date is the epoch placeholder that exports before v2.1.9
/// wrote for messages that were never edited (the epoch in local time, so either side of
/// midnight depending on the time zone).
fn is_epoch_placeholder(local_date: &str) -> bool {
    local_date.starts_with("1970-01-01T") || local_date.starts_with("1969-12-31T")
}

fn message_kind_from_type(type_value: Option<String>, fields: &MessageFields, warnings: &mut Vec<Warning>) -> MessageKind {
    match type_value.as_deref() {
        Some("message") => MessageKind::Regular,
        Some("service") => MessageKind::Service,
        Some("unsupported") => MessageKind::Unsupported,
        Some(other) => {
            warnings.push(Warning::new(WarningKind::UnknownMessageType, format!("unknown message type {other:?}")));
            MessageKind::Other(other.to_owned())
        }
        None => {
            let guessed_kind = if fields.contains(MessageField::Action) || fields.contains(MessageField::ActorId) {
                MessageKind::Service
            } else if fields.key_count <= 1 {
                MessageKind::Unsupported
            } else {
                MessageKind::Regular
            };
            warnings.push(Warning::new(WarningKind::MissingMessageType, format!("message has no \"type\", read as {guessed_kind:?}")));
            guessed_kind
        }
    }
}

impl FieldReader<'_> {
    fn take_peer_id(&mut self, field: MessageField) -> Option<String> {
        match normalize_peer_id_value(self.take(field)) {
            NormalizedPeerId::Absent => None,
            NormalizedPeerId::Normalized(peer_id) => Some(peer_id),
            NormalizedPeerId::Unrecognized(written) => {
                self.warnings
                    .push(Warning::new(WarningKind::UnrecognizedPeerId, format!("field {:?} holds {written}, which is not a peer id", field.key())));
                Some(written)
            }
        }
    }

    /// Reads a `*_unixtime` field, falling back to the local date next to it.
    fn read_unix_time(&mut self, unix_field: MessageField, local_date: Option<&str>, options: &ParseOptions) -> Option<i64> {
        if self.contains(unix_field) {
            if let Some(unix_seconds) = self.get_i64(unix_field) {
                return Some(unix_seconds);
            }
        }
        let local_date = local_date?;
        let parsed = parse_local_date_to_unix(local_date, options.local_utc_offset_seconds);
        if parsed.is_none() {
            self.warnings.push(Warning::new(WarningKind::InvalidDate, format!("cannot read the date {local_date:?}")));
        }
        parsed
    }

    fn take_text(&mut self) -> ParsedText {
        let text_value = self.take(MessageField::Text);
        let entities_parts = match self.fields.text_entities_parts.take() {
            Some(parts) => Some(parts),
            None => match self.take(MessageField::TextEntities) {
                Some(Value::Array(parts)) => Some(parts.into_iter().map(TextPart::from_value).collect()),
                None | Some(Value::Null) => None,
                Some(other) => {
                    self.warn_unexpected_type("text_entities", "an array", &other);
                    None
                }
            },
        };
        let Some(entities_parts) = entities_parts else {
            return parse_text_value(text_value.unwrap_or(Value::Null), "text", self.warnings);
        };
        let parsed = parse_text_parts(entities_parts, "text_entities", self.warnings);
        if let Some(text_value) = &text_value {
            if !text_value_equals(text_value, &parsed.text) {
                self.warnings
                    .push(Warning::new(WarningKind::TextMismatch, "\"text\" and \"text_entities\" hold different text; \"text_entities\" was used"));
            }
        }
        parsed
    }
}

impl Message {
    /// Maps one message object of an export. Fails only when the object has no integer
    /// `id`; everything odd beyond that becomes a [`Warning`].
    pub fn from_json_object(object: Map<String, Value>, chat_id: i64, options: &ParseOptions) -> Result<Message, InvalidMessageError> {
        // Serialising a Value cannot fail: its keys are strings.
        let raw_json = serde_json::to_string(&object).unwrap_or_default();
        let mut fields = MessageFields::from_object(object);
        Message::from_message_fields(&mut fields, raw_json, chat_id, options)
    }

    /// Maps the known fields of a message object, whose compact JSON text is `raw_json`
    /// (the export reader records it while parsing). Moves values out of `fields`.
    pub(crate) fn from_message_fields(
        fields: &mut MessageFields,
        raw_json: String,
        chat_id: i64,
        options: &ParseOptions,
    ) -> Result<Message, InvalidMessageError> {
        let id = match fields.get(MessageField::Id) {
            None => return Err(InvalidMessageError { expected: "an integer \"id\" in the message".to_owned(), found: "no \"id\"".to_owned() }),
            Some(id_value) => match id_value.as_i64() {
                Some(id) => id,
                None => {
                    return Err(InvalidMessageError {
                        expected: "an integer \"id\" in the message".to_owned(),
                        found: describe_json_value(id_value).to_owned(),
                    })
                }
            },
        };
        let mut warnings = Vec::new();
        let mut fields = FieldReader { fields, warnings: &mut warnings };

        let type_value = fields.take_string(MessageField::Type);
        let kind = message_kind_from_type(type_value, fields.fields, fields.warnings);
        let date_local = fields.take_string(MessageField::Date);
        let date_unix = fields.read_unix_time(MessageField::DateUnixtime, date_local.as_deref(), options);
        let edited_local = fields.take_string(MessageField::Edited).filter(|edited| !is_epoch_placeholder(edited));
        let edited_unix = match edited_local {
            Some(edited_local) => fields.read_unix_time(MessageField::EditedUnixtime, Some(&edited_local), options),
            None if fields.contains(MessageField::EditedUnixtime) => {
                fields.get_i64(MessageField::EditedUnixtime).filter(|unix_seconds| *unix_seconds != 0)
            }
            None => None,
        };
        let is_forwarded = fields.contains(MessageField::ForwardedFrom);
        let ParsedText { text, entities } = fields.take_text();

        let message = Message {
            chat_id,
            id,
            kind,
            date_unix,
            date_local,
            edited_unix,
            from_name: fields.take_string(MessageField::From),
            from_id: fields.take_peer_id(MessageField::FromId),
            actor_name: fields.take_string(MessageField::Actor),
            actor_id: fields.take_peer_id(MessageField::ActorId),
            action: fields.take_string(MessageField::Action),
            author_signature: fields.take_string(MessageField::Author),
            is_forwarded,
            forwarded_from: fields.take_string(MessageField::ForwardedFrom),
            saved_from: fields.take_string(MessageField::SavedFrom),
            reply_to_message_id: fields.get_i64(MessageField::ReplyToMessageId),
            reply_to_peer_id: fields.take_peer_id(MessageField::ReplyToPeerId),
            via_bot: fields.take_string(MessageField::ViaBot),
            text,
            entities,
            media: take_media(&mut fields),
            raw_json,
            warnings: Vec::new(),
        };
        Ok(Message { warnings, ..message })
    }
}

#[cfg(test)]
#[path = "message_tests.rs"]
mod tests;
