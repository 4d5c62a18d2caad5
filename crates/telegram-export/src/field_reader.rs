//! The fields of one message object that the typed mapping reads, and [`FieldReader`],
//! which hands them out with their expected types.
//!
//! The export reader parses a message object key by key straight into [`MessageFields`]:
//! known keys ([`MessageField`]) get their value built, all other keys (reactions, inline
//! buttons, service-action details, ...) are skipped without building anything; they stay
//! available in the message's raw JSON. Looking fields up by enum instead of hashing key
//! strings keeps the mapping cheap, which matters for exports of millions of messages.

use std::io::BufRead;

use serde_json::{Map, Value};

use crate::error::ExportError;
use crate::lexer::{JsonLexer, Token, TokenKind};
use crate::message::{Warning, WarningKind};
use crate::text::{TextEntityKind, TextPart};

macro_rules! message_fields {
    ($($variant:ident => $name:literal,)*) => {
        /// A message key the typed mapping reads.
        #[derive(Debug, Clone, Copy, PartialEq, Eq)]
        pub(crate) enum MessageField {
            $($variant,)*
        }

        impl MessageField {
            const ALL: &'static [MessageField] = &[$(MessageField::$variant,)*];

            /// Returns the field for a key of a message object, if the mapping reads it.
            pub(crate) fn from_key(key: &str) -> Option<MessageField> {
                match key {
                    $($name => Some(MessageField::$variant),)*
                    _ => None,
                }
            }

            /// Returns the key as written in the export.
            pub(crate) fn key(self) -> &'static str {
                match self {
                    $(MessageField::$variant => $name,)*
                }
            }
        }
    };
}

message_fields! {
    Id => "id",
    Type => "type",
    Date => "date",
    DateUnixtime => "date_unixtime",
    Edited => "edited",
    EditedUnixtime => "edited_unixtime",
    From => "from",
    FromId => "from_id",
    Actor => "actor",
    ActorId => "actor_id",
    Action => "action",
    Author => "author",
    ForwardedFrom => "forwarded_from",
    SavedFrom => "saved_from",
    ReplyToMessageId => "reply_to_message_id",
    ReplyToPeerId => "reply_to_peer_id",
    ViaBot => "via_bot",
    Text => "text",
    TextEntities => "text_entities",
    Photo => "photo",
    PhotoFileSize => "photo_file_size",
    File => "file",
    FileName => "file_name",
    FileSize => "file_size",
    Thumbnail => "thumbnail",
    MediaType => "media_type",
    StickerEmoji => "sticker_emoji",
    Performer => "performer",
    Title => "title",
    MimeType => "mime_type",
    DurationSeconds => "duration_seconds",
    Width => "width",
    Height => "height",
    MediaSpoiler => "media_spoiler",
    ContactInformation => "contact_information",
    ContactVcard => "contact_vcard",
    ContactVcardFileSize => "contact_vcard_file_size",
    LocationInformation => "location_information",
    LiveLocationPeriodSeconds => "live_location_period_seconds",
    PlaceName => "place_name",
    Address => "address",
    Poll => "poll",
    GameTitle => "game_title",
    InvoiceInformation => "invoice_information",
    GiveawayInformation => "giveaway_information",
    GiveawayResults => "giveaway_results",
    PaidStarsAmount => "paid_stars_amount",
    TodoList => "todo_list",
}

const FIELD_COUNT: usize = MessageField::ALL.len();
// Slots store indexes as u8.
const _: () = assert!(FIELD_COUNT < 255);

/// The known fields of one message object, plus how many keys it had in all.
#[derive(Debug)]
pub(crate) struct MessageFields {
    values: Vec<(MessageField, Value)>,
    /// For each field, its index in `values` plus one; zero when absent.
    slots: [u8; FIELD_COUNT],
    pub(crate) key_count: usize,
    /// `text_entities` when it is an array, read straight into parts (the common case).
    pub(crate) text_entities_parts: Option<Vec<TextPart>>,
}

impl Default for MessageFields {
    fn default() -> Self {
        MessageFields { values: Vec::with_capacity(16), slots: [0; FIELD_COUNT], key_count: 0, text_entities_parts: None }
    }
}

impl MessageFields {
    /// Empties the fields, keeping the allocation for the next message.
    pub(crate) fn clear(&mut self) {
        self.values.clear();
        self.slots = [0; FIELD_COUNT];
        self.key_count = 0;
        self.text_entities_parts = None;
    }

    /// Stores a field's value; a repeated key replaces the earlier value, as in serde_json.
    pub(crate) fn insert(&mut self, field: MessageField, value: Value) {
        let slot = &mut self.slots[field as usize];
        if *slot == 0 {
            self.values.push((field, value));
            // FIELD_COUNT is far below 255, so the index always fits.
            *slot = u8::try_from(self.values.len()).unwrap_or(u8::MAX);
        } else if let Some(entry) = self.values.get_mut(usize::from(*slot) - 1) {
            entry.1 = value;
        }
    }

    /// Collects the known fields of an already built message object.
    pub(crate) fn from_object(object: Map<String, Value>) -> MessageFields {
        let mut fields = MessageFields { key_count: object.len(), ..MessageFields::default() };
        for (key, value) in object {
            if let Some(field) = MessageField::from_key(&key) {
                fields.insert(field, value);
            }
        }
        fields
    }

    pub(crate) fn contains(&self, field: MessageField) -> bool {
        self.slots[field as usize] != 0
    }

    pub(crate) fn get(&self, field: MessageField) -> Option<&Value> {
        let slot = usize::from(self.slots[field as usize]);
        self.values.get(slot.checked_sub(1)?).map(|entry| &entry.1)
    }

    /// Moves a field's value out, leaving `null`; [`Self::contains`] stays true.
    pub(crate) fn take(&mut self, field: MessageField) -> Option<Value> {
        let slot = usize::from(self.slots[field as usize]);
        self.values.get_mut(slot.checked_sub(1)?).map(|entry| entry.1.take())
    }
}

/// Reads a `text_entities` array (its `[` already read) into parts, without building a
/// map for every part as a `Value` would.
fn read_text_parts<R: BufRead>(lexer: &mut JsonLexer<R>) -> Result<Vec<TextPart>, ExportError> {
    let mut parts = Vec::new();
    let mut is_first_element = true;
    while let Some(element_token) = lexer.next_array_element(is_first_element)? {
        is_first_element = false;
        let part = match element_token.kind {
            TokenKind::String => TextPart::Run(lexer.take_string_value()),
            TokenKind::ObjectStart => read_text_part_object(lexer)?,
            _ => TextPart::Invalid(lexer.read_value(element_token)?),
        };
        parts.push(part);
    }
    Ok(parts)
}

/// Reads one `{"type", "text", ...}` part whose `{` was already read.
fn read_text_part_object<R: BufRead>(lexer: &mut JsonLexer<R>) -> Result<TextPart, ExportError> {
    let mut type_name_kind = None;
    let mut text = None;
    let mut extra = Map::new();
    let mut is_first_key = true;
    while lexer.next_object_key(is_first_key)?.is_some() {
        is_first_key = false;
        let key_is_type = lexer.string_value() == "type";
        let key_is_text = lexer.string_value() == "text";
        let key = if key_is_type || key_is_text { String::new() } else { lexer.take_string_value() };
        let value_token = lexer.next_member_value()?;
        if key_is_type && value_token.kind == TokenKind::String {
            type_name_kind = Some(TextEntityKind::from_type_name(lexer.string_value()));
        } else if key_is_text && value_token.kind == TokenKind::String {
            text = Some(lexer.take_string_value());
        } else if key_is_type || key_is_text {
            // A type or text of the wrong type: dropped, the mapping reports the part.
            lexer.skip_value(value_token)?;
        } else {
            let value = lexer.read_value(value_token)?;
            extra.insert(key, value);
        }
    }
    let kind = type_name_kind.unwrap_or_else(|| TextEntityKind::from_type_name(""));
    Ok(TextPart::Object { kind, text, extra })
}

/// Reads one message object from the lexer into `fields`, building only known fields;
/// `object_start` is the already read `{`.
pub(crate) fn read_message_fields<R: BufRead>(lexer: &mut JsonLexer<R>, object_start: Token, fields: &mut MessageFields) -> Result<(), ExportError> {
    debug_assert_eq!(object_start.kind, TokenKind::ObjectStart);
    fields.clear();
    let mut is_first_key = true;
    while lexer.next_object_key(is_first_key)?.is_some() {
        is_first_key = false;
        fields.key_count += 1;
        let field = MessageField::from_key(lexer.string_value());
        let value_token = lexer.next_member_value()?;
        match field {
            Some(MessageField::TextEntities) if value_token.kind == TokenKind::ArrayStart => {
                fields.text_entities_parts = Some(read_text_parts(lexer)?);
            }
            Some(field) => {
                let value = lexer.read_value(value_token)?;
                fields.insert(field, value);
            }
            None => lexer.skip_value(value_token)?,
        }
    }
    Ok(())
}

/// Hands out typed message fields, turning values of the wrong type into warnings.
pub(crate) struct FieldReader<'a> {
    pub(crate) fields: &'a mut MessageFields,
    pub(crate) warnings: &'a mut Vec<Warning>,
}

impl FieldReader<'_> {
    pub(crate) fn warn_unexpected_type(&mut self, key: &str, expected: &str, found: &Value) {
        self.warnings.push(Warning::new(WarningKind::UnexpectedFieldType, format!("field {key:?} should be {expected}, found {found}")));
    }

    pub(crate) fn contains(&self, field: MessageField) -> bool {
        self.fields.contains(field)
    }

    pub(crate) fn get(&self, field: MessageField) -> Option<&Value> {
        self.fields.get(field)
    }

    pub(crate) fn take(&mut self, field: MessageField) -> Option<Value> {
        self.fields.take(field)
    }

    /// Moves a string out; `null` and absence give `None`.
    pub(crate) fn take_string(&mut self, field: MessageField) -> Option<String> {
        match self.fields.take(field) {
            None | Some(Value::Null) => None,
            Some(Value::String(text)) => Some(text),
            Some(other) => {
                self.warn_unexpected_type(field.key(), "a string", &other);
                None
            }
        }
    }

    /// Reads an integer, also when written as a string of digits (tdesktop quotes
    /// `*_unixtime`).
    pub(crate) fn get_i64(&mut self, field: MessageField) -> Option<i64> {
        let value = self.fields.get(field)?;
        let parsed = match value {
            Value::Number(number) => number.as_i64(),
            Value::String(text) => text.trim().parse::<i64>().ok(),
            Value::Null => return None,
            _ => None,
        };
        if parsed.is_none() {
            let found = value.clone();
            self.warn_unexpected_type(field.key(), "an integer", &found);
        }
        parsed
    }

    pub(crate) fn get_u64(&mut self, field: MessageField) -> Option<u64> {
        let value = self.get_i64(field)?;
        u64::try_from(value).ok()
    }

    pub(crate) fn get_u32(&mut self, field: MessageField) -> Option<u32> {
        let value = self.get_i64(field)?;
        u32::try_from(value).ok()
    }

    pub(crate) fn get_bool(&self, field: MessageField) -> bool {
        matches!(self.fields.get(field), Some(Value::Bool(true)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn every_field_maps_back_from_its_key() {
        for &field in MessageField::ALL {
            assert_eq!(MessageField::from_key(field.key()), Some(field));
        }
        assert_eq!(MessageField::from_key("reactions"), None);
    }

    #[test]
    fn reads_known_fields_and_skips_the_rest() {
        let input = br#"{"id": 5, "reactions": [{"a": [1]}], "text": "x", "id": 6}"#;
        let mut lexer = JsonLexer::new(&input[..], "test.json");
        let start = lexer.next_token().expect("token");
        let mut fields = MessageFields::default();
        read_message_fields(&mut lexer, start, &mut fields).expect("valid object");
        assert_eq!(fields.key_count, 4);
        assert_eq!(fields.get(MessageField::Id), Some(&json!(6)));
        assert_eq!(fields.get(MessageField::Text), Some(&json!("x")));
        assert!(!fields.contains(MessageField::Poll));
        assert_eq!(fields.take(MessageField::Text), Some(json!("x")));
        assert!(fields.contains(MessageField::Text));
        assert_eq!(fields.get(MessageField::Text), Some(&Value::Null));
    }
}
