//! Unit tests of mapping message objects to [`Message`].

use serde_json::json;

use super::*;
use crate::media::{MediaKind, NotIncludedReason};
use crate::text::TextEntityKind;

fn map_message(value: Value) -> Message {
    map_message_with(value, &ParseOptions::default())
}

fn map_message_with(value: Value, options: &ParseOptions) -> Message {
    let Value::Object(object) = value else { panic!("test input must be an object") };
    Message::from_json_object(object, 777, options).expect("a valid message")
}

#[test]
fn maps_a_modern_regular_message() {
    let message = map_message(json!({
        "id": 4711, "type": "message",
        "date": "2026-11-22T10:15:30", "date_unixtime": "1795331730",
        "edited": "2026-11-22T10:20:00", "edited_unixtime": "1795332000",
        "from": "Ann Lee", "from_id": "user42",
        "author": "Editor", "forwarded_from": "Some Channel", "saved_from": "Other chat",
        "reply_to_message_id": 4700, "reply_to_peer_id": "channel123", "via_bot": "@gif",
        "text": ["Deploy ", {"type": "bold", "text": "today"}, ""],
        "text_entities": [{"type": "plain", "text": "Deploy "}, {"type": "bold", "text": "today"}, {"type": "plain", "text": ""}]
    }));
    assert_eq!(message.chat_id, 777);
    assert_eq!(message.id, 4711);
    assert_eq!(message.kind, MessageKind::Regular);
    assert_eq!(message.date_unix, Some(1_795_331_730));
    assert_eq!(message.date_local.as_deref(), Some("2026-11-22T10:15:30"));
    assert_eq!(message.edited_unix, Some(1_795_332_000));
    assert_eq!(message.from_name.as_deref(), Some("Ann Lee"));
    assert_eq!(message.from_id.as_deref(), Some("user42"));
    assert_eq!(message.author_signature.as_deref(), Some("Editor"));
    assert!(message.is_forwarded);
    assert_eq!(message.forwarded_from.as_deref(), Some("Some Channel"));
    assert_eq!(message.saved_from.as_deref(), Some("Other chat"));
    assert_eq!(message.reply_to_message_id, Some(4700));
    assert_eq!(message.reply_to_peer_id.as_deref(), Some("channel123"));
    assert_eq!(message.via_bot.as_deref(), Some("@gif"));
    assert_eq!(message.text, "Deploy today");
    assert_eq!(message.entities.len(), 1);
    assert_eq!(message.entities[0].kind, TextEntityKind::Bold);
    assert_eq!((message.entities[0].char_offset, message.entities[0].char_length), (7, 5));
    assert!(message.media.is_none());
    assert!(message.warnings.is_empty(), "{:?}", message.warnings);
}

#[test]
fn raw_json_keeps_the_whole_object_in_order() {
    let original = json!({"id": 1, "type": "message", "date": "2026-01-01T00:00:00", "text": "a\u{b}b", "reactions": [{"type": "emoji", "count": 3, "emoji": "👍"}]});
    let message = map_message(original.clone());
    let reparsed: Value = serde_json::from_str(&message.raw_json).expect("raw_json is valid json");
    assert_eq!(reparsed, original);
    assert!(message.raw_json.starts_with(r#"{"id":1,"type":"message","date":"#), "{}", message.raw_json);
    assert!(message.raw_json.contains(r"a\u000bb"));
}

#[test]
fn maps_service_messages_with_actor_and_action() {
    let message = map_message(json!({
        "id": 10, "type": "service", "date": "2026-11-22T10:15:30", "date_unixtime": "1795331730",
        "actor": "Ann Lee", "actor_id": "user42", "action": "invite_members", "members": ["Bob", null],
        "text": "", "text_entities": []
    }));
    assert_eq!(message.kind, MessageKind::Service);
    assert_eq!(message.actor_name.as_deref(), Some("Ann Lee"));
    assert_eq!(message.actor_id.as_deref(), Some("user42"));
    assert_eq!(message.action.as_deref(), Some("invite_members"));
    assert_eq!(message.from_id, None);
    assert_eq!(message.text, "");
    assert!(message.warnings.is_empty());
    assert!(message.raw_json.contains(r#""members":["Bob",null]"#));
}

#[test]
fn unknown_actions_are_normal_and_group_photos_are_media() {
    let message = map_message(json!({
        "id": 11, "type": "service", "date_unixtime": "1", "actor": "Ann", "actor_id": "channel5",
        "action": "send_star_gift_2030", "text": ""
    }));
    assert_eq!(message.action.as_deref(), Some("send_star_gift_2030"));
    assert!(message.warnings.is_empty());

    let message = map_message(json!({
        "id": 12, "type": "service", "date_unixtime": "1", "actor": "Ann", "actor_id": "user1",
        "action": "edit_group_photo", "photo": "photos/photo_1@22-11-2026_10-15-30.jpg", "width": 640, "height": 640, "text": ""
    }));
    let media = message.media.expect("the new group photo");
    assert_eq!(media.kind, MediaKind::Photo);
    assert_eq!(media.width, Some(640));
}

#[test]
fn unsupported_messages_have_only_an_id() {
    let message = map_message(json!({"id": 5, "type": "unsupported"}));
    assert_eq!(message.kind, MessageKind::Unsupported);
    assert_eq!((message.date_unix, message.date_local.as_deref(), message.text.as_str()), (None, None, ""));
    assert!(message.warnings.is_empty());
}

#[test]
fn unknown_and_missing_types_are_kept_with_a_warning() {
    let message = map_message(json!({"id": 5, "type": "story_reply", "text": "x"}));
    assert_eq!(message.kind, MessageKind::Other("story_reply".to_owned()));
    assert_eq!(message.warnings[0].kind, WarningKind::UnknownMessageType);

    let message = map_message(json!({"id": 6, "action": "pin_message", "message_id": 5}));
    assert_eq!(message.kind, MessageKind::Service);
    assert_eq!(message.warnings[0].kind, WarningKind::MissingMessageType);
    let message = map_message(json!({"id": 7, "from": "A", "text": "x"}));
    assert_eq!(message.kind, MessageKind::Regular);
    let message = map_message(json!({"id": 8}));
    assert_eq!(message.kind, MessageKind::Unsupported);
}

#[test]
fn negative_migrated_ids_are_kept() {
    let message = map_message(json!({"id": -999_999_950, "type": "message", "date_unixtime": "5", "text": "old"}));
    assert_eq!(message.id, -999_999_950);
}

#[test]
fn deleted_accounts_have_no_name_but_an_id() {
    let message = map_message(json!({"id": 1, "type": "message", "from": null, "from_id": "user9", "forwarded_from": null, "text": ""}));
    assert_eq!(message.from_name, None);
    assert_eq!(message.from_id.as_deref(), Some("user9"));
    assert!(message.is_forwarded);
    assert_eq!(message.forwarded_from, None);
    assert!(message.warnings.is_empty());
}

#[test]
fn old_exports_use_local_dates_numeric_ids_and_an_epoch_edited_placeholder() {
    let options = ParseOptions { local_utc_offset_seconds: 3 * 3600 };
    let message = map_message_with(
        json!({
            "id": 3, "type": "message", "date": "2019-02-10T15:00:00", "edited": "1970-01-01T03:00:00",
            "from": "Ann", "from_id": 123_456, "text": ["see ", {"type": "link", "text": "https://t.me"}, ""]
        }),
        &options,
    );
    assert_eq!(message.date_unix, Some(1_549_810_800 - 3 * 3600));
    assert_eq!(message.edited_unix, None);
    assert_eq!(message.from_id.as_deref(), Some("user123456"));
    assert_eq!(message.text, "see https://t.me");
    assert_eq!(message.entities[0].kind, TextEntityKind::Link);
    assert!(message.warnings.is_empty(), "{:?}", message.warnings);

    let west = ParseOptions { local_utc_offset_seconds: -5 * 3600 };
    let message =
        map_message_with(json!({"id": 4, "type": "message", "date": "2019-02-10T15:00:00", "edited": "1969-12-31T19:00:00", "text": ""}), &west);
    assert_eq!(message.edited_unix, None);
    assert_eq!(message.date_unix, Some(1_549_810_800 + 5 * 3600));

    let message =
        map_message_with(json!({"id": 5, "type": "message", "date": "2019-02-10T15:00:00", "edited": "2019-02-10T15:30:00", "text": ""}), &options);
    assert_eq!(message.edited_unix, Some(1_549_812_600 - 3 * 3600));
}

#[test]
fn legacy_64_bit_peer_ids_are_decoded() {
    let message =
        map_message(json!({"id": 1, "type": "message", "from_id": 4_294_967_296_u64 + 42, "reply_to_peer_id": 8_589_934_592_u64 + 7, "text": ""}));
    assert_eq!(message.from_id.as_deref(), Some("user42"));
    assert_eq!(message.reply_to_peer_id.as_deref(), Some("channel7"));
    let message = map_message(json!({"id": 1, "type": "service", "actor_id": 17, "text": ""}));
    assert_eq!(message.actor_id.as_deref(), Some("user17"));
}

#[test]
fn odd_field_values_become_warnings_not_errors() {
    let message = map_message(json!({
        "id": 1, "type": "message", "date": "yesterday", "from": 5, "from_id": [1], "reply_to_message_id": "x", "text": {"a": 1}
    }));
    let kinds: Vec<WarningKind> = message.warnings.iter().map(|warning| warning.kind).collect();
    assert!(kinds.contains(&WarningKind::InvalidDate), "{kinds:?}");
    assert!(kinds.contains(&WarningKind::UnexpectedFieldType), "{kinds:?}");
    assert!(kinds.contains(&WarningKind::UnrecognizedPeerId), "{kinds:?}");
    assert_eq!(message.from_name, None);
    assert_eq!(message.reply_to_message_id, None);
    assert_eq!(message.date_unix, None);
}

#[test]
fn text_entities_win_over_a_disagreeing_text() {
    let message = map_message(
        json!({"id": 1, "type": "message", "text": "ab", "text_entities": [{"type": "plain", "text": "a"}, {"type": "italic", "text": "c"}]}),
    );
    assert_eq!(message.text, "ac");
    assert_eq!(message.warnings[0].kind, WarningKind::TextMismatch);
}

#[test]
fn emoji_zwj_rtl_and_line_separators_are_kept_exactly() {
    let original = "👨\u{200d}👩\u{200d}👧 שלום world مرحبا\u{2028}🇺🇦\u{200b}ᅠ e\u{301}";
    let message = map_message(json!({"id": 1, "type": "message", "text": original}));
    assert_eq!(message.text, original);
}

#[test]
fn media_placeholders_map_to_reasons() {
    let message = map_message(json!({
        "id": 1, "type": "message", "file": "(File exceeds maximum size. Change data exporting settings to download.)",
        "file_size": 99_000_000, "media_type": "video_file", "mime_type": "video/mp4", "duration_seconds": 12, "text": "caption"
    }));
    let media = message.media.expect("a video");
    assert_eq!(media.kind, MediaKind::VideoFile);
    assert_eq!(media.not_included_reason, Some(NotIncludedReason::ExceedsSizeLimit));
    assert_eq!(media.file_size, Some(99_000_000));
    assert_eq!(message.text, "caption");
}

#[test]
fn missing_or_non_integer_ids_are_errors() {
    let Value::Object(object) = json!({"type": "message"}) else { panic!("object") };
    let error = Message::from_json_object(object, 1, &ParseOptions::default()).expect_err("no id");
    assert_eq!(error.to_string(), "expected an integer \"id\" in the message, found no \"id\"");
    let Value::Object(object) = json!({"id": "5"}) else { panic!("object") };
    let error = Message::from_json_object(object, 1, &ParseOptions::default()).expect_err("string id");
    assert_eq!(error.found, "a string");
}

#[test]
fn local_dates_parse_with_the_configured_offset() {
    assert_eq!(parse_local_date_to_unix("1970-01-01T00:00:00", 0), Some(0));
    assert_eq!(parse_local_date_to_unix("1970-01-01T03:00:00", 3 * 3600), Some(0));
    assert_eq!(parse_local_date_to_unix("2026-13-01T00:00:00", 0), None);
    assert_eq!(parse_local_date_to_unix("", 0), None);
}
