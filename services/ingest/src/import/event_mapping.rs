//! Maps parsed export items to `chat.events` records (key, event type, protobuf bytes).

use chatvault_proto::chat::v1::{chat_event, ChatEvent, ChatImported, Media, MessageKind, MessagePosted, TextEntity};
use prost::Message as _;
use telegram_export::{ChatHeader, NotIncludedReason};

/// One event ready to publish.
#[derive(Debug, Clone)]
pub struct EncodedEvent {
    /// The record key: the chat id in decimal.
    pub key: String,
    /// The protobuf message name of the event, for the `event-type` header.
    pub event_type: &'static str,
    pub payload: Vec<u8>,
}

pub const CHAT_IMPORTED_TYPE: &str = "chatvault.chat.v1.ChatImported";
pub const MESSAGE_POSTED_TYPE: &str = "chatvault.chat.v1.MessagePosted";

/// Returns the `ChatImported` record of a chat header, for `owner`'s archive.
pub fn chat_imported_event(header: &ChatHeader, owner: &str, import_id: &str, source: &str, imported_at_unix: i64) -> EncodedEvent {
    let event = ChatEvent {
        event: Some(chat_event::Event::ChatImported(ChatImported {
            chat_id: header.chat_id,
            name: header.name.clone(),
            chat_type: header.chat_type.clone(),
            import_id: import_id.to_owned(),
            source: source.to_owned(),
            left: header.left,
            imported_at_unix,
            owner: owner.to_owned(),
        })),
    };
    EncodedEvent { key: header.chat_id.to_string(), event_type: CHAT_IMPORTED_TYPE, payload: event.encode_to_vec() }
}

/// Returns the `MessagePosted` record of a parsed message, for `owner`'s archive.
/// `file_id` names the stored attachment of the message's media, when there is one.
pub fn message_posted_event(message: telegram_export::Message, file_id: Option<String>, owner: &str, import_id: &str) -> EncodedEvent {
    let key = message.chat_id.to_string();
    let kind = match message.kind {
        telegram_export::MessageKind::Regular => MessageKind::Regular,
        telegram_export::MessageKind::Service => MessageKind::Service,
        telegram_export::MessageKind::Unsupported | telegram_export::MessageKind::Other(_) => MessageKind::Unsupported,
    };
    let entities = message.entities.into_iter().map(text_entity_of).collect();
    let media = message.media.map(|media| Media { file_id, ..media_of(media) });
    let event = ChatEvent {
        event: Some(chat_event::Event::MessagePosted(MessagePosted {
            chat_id: message.chat_id,
            message_id: message.id,
            kind: kind as i32,
            date_unix: message.date_unix,
            edited_unix: message.edited_unix,
            from_name: message.from_name,
            from_id: message.from_id,
            author_signature: message.author_signature,
            forwarded_from: message.forwarded_from,
            saved_from: message.saved_from,
            reply_to_message_id: message.reply_to_message_id,
            reply_to_peer_id: message.reply_to_peer_id,
            via_bot: message.via_bot,
            action: message.action,
            actor_name: message.actor_name,
            actor_id: message.actor_id,
            text: message.text,
            entities,
            media,
            raw_json: message.raw_json,
            import_id: import_id.to_owned(),
            owner: owner.to_owned(),
        })),
    };
    EncodedEvent { key, event_type: MESSAGE_POSTED_TYPE, payload: event.encode_to_vec() }
}

fn text_entity_of(entity: telegram_export::TextEntity) -> TextEntity {
    let mut extra = entity.extra;
    if let Some(href) = entity.href {
        extra.insert("href".to_owned(), href.into());
    }
    if let Some(language) = entity.language {
        extra.insert("language".to_owned(), language.into());
    }
    if let Some(user_id) = entity.user_id {
        extra.insert("user_id".to_owned(), user_id.into());
    }
    if let Some(document_id) = entity.document_id {
        extra.insert("document_id".to_owned(), document_id.into());
    }
    if let Some(collapsed) = entity.collapsed {
        extra.insert("collapsed".to_owned(), collapsed.into());
    }
    TextEntity {
        kind: entity.kind.as_str().to_owned(),
        offset: u32::try_from(entity.char_offset).unwrap_or(u32::MAX),
        length: u32::try_from(entity.char_length).unwrap_or(u32::MAX),
        extra_json: if extra.is_empty() { String::new() } else { serde_json::Value::Object(extra).to_string() },
    }
}

fn media_of(media: telegram_export::Media) -> Media {
    Media {
        kind: media.kind.as_str().to_owned(),
        path: media.path,
        not_included_reason: media.not_included_reason.map(|reason| reason_text(&reason)),
        file_name: media.file_name,
        file_size: media.file_size,
        mime_type: media.mime_type,
        width: media.width,
        height: media.height,
        duration_seconds: media.duration_seconds,
        thumbnail_path: media.thumbnail_path,
        file_id: None,
    }
}

fn reason_text(reason: &NotIncludedReason) -> String {
    match reason {
        NotIncludedReason::NotSelected => "not_included".to_owned(),
        NotIncludedReason::ExceedsSizeLimit => "exceeds_size_limit".to_owned(),
        NotIncludedReason::Unavailable => "unavailable".to_owned(),
        NotIncludedReason::Other(text) => text.clone(),
    }
}
