//! Every mapped field of the fixtures: single chats of 2025, 2019 and 2020, an empty chat
//! and a whole-account export.

use telegram_export::{ExportEvent, JsonExportReader, MediaKind, MessageKind, NotIncludedReason, ParseOptions, TextEntityKind, WarningKind};

use crate::{fixture_bytes, headers_of, message_with_id, messages_of, read_fixture};

#[test]
fn modern_single_chat_header_order_and_counts() {
    let events = read_fixture("single_chat_2025.json", ParseOptions::default());
    let headers = headers_of(&events);
    assert_eq!(headers.len(), 1);
    assert_eq!(headers[0].chat_id, 1_234_567_890);
    assert_eq!(headers[0].name.as_deref(), Some("Project Alpha 🚀"));
    assert_eq!(headers[0].chat_type, "private_supergroup");
    assert!(!headers[0].left);
    let messages = messages_of(&events);
    let ids: Vec<i64> = messages.iter().map(|message| message.id).collect();
    assert_eq!(ids[..4], [-999_999_951, -999_999_950, -999_999_949, 1]);
    assert_eq!(ids.len(), 27);
    assert!(matches!(events.last(), Some(ExportEvent::ChatFinished { chat_id: 1_234_567_890, message_count: 27 })));
    assert!(messages.iter().all(|message| message.chat_id == 1_234_567_890));
}

#[test]
fn modern_single_chat_regular_message_fields() {
    let events = read_fixture("single_chat_2025.json", ParseOptions::default());
    let messages = messages_of(&events);
    let edited = message_with_id(&messages, 2);
    assert_eq!(edited.kind, MessageKind::Regular);
    assert_eq!(edited.date_unix, Some(1_795_331_730));
    assert_eq!(edited.date_local.as_deref(), Some("2026-11-22T10:15:30"));
    assert_eq!(edited.edited_unix, Some(1_795_332_000));
    assert_eq!(edited.reply_to_message_id, Some(-999_999_950));
    assert_eq!(edited.text, "Deploy сегодня — see the plan");
    let entity_summary: Vec<(TextEntityKind, usize, usize)> =
        edited.entities.iter().map(|entity| (entity.kind.clone(), entity.char_offset, entity.char_length)).collect();
    assert_eq!(entity_summary, [(TextEntityKind::Bold, 7, 7), (TextEntityKind::TextLink, 21, 8)]);
    assert!(edited.warnings.is_empty());

    let channel_post = message_with_id(&messages, 14);
    assert_eq!(channel_post.from_id.as_deref(), Some("channel1234567890"));
    assert_eq!(channel_post.author_signature.as_deref(), Some("Ann Lee"));
    assert!(channel_post.is_forwarded);
    assert_eq!(channel_post.forwarded_from, None);
    assert_eq!(channel_post.via_bot.as_deref(), Some("@gif"));

    let cross_chat_reply = message_with_id(&messages, 15);
    assert_eq!((cross_chat_reply.reply_to_message_id, cross_chat_reply.reply_to_peer_id.as_deref()), (Some(55), Some("channel777")));
    assert_eq!(message_with_id(&messages, 24).saved_from.as_deref(), Some("Other Chat"));
    let deleted_author = message_with_id(&messages, 4);
    assert_eq!((deleted_author.from_name.as_deref(), deleted_author.from_id.as_deref()), (None, Some("user99")));
}

#[test]
fn tdesktop_escapes_and_unicode_text_are_decoded_exactly() {
    let events = read_fixture("single_chat_2025.json", ParseOptions::default());
    let messages = messages_of(&events);
    assert_eq!(message_with_id(&messages, 3).text, "1=412\u{1}2=97180\u{b} and C:\\x41 path");
    assert_eq!(message_with_id(&messages, 7).text, "👨\u{200d}👩\u{200d}👧 שלום world مرحبا 🇺🇦 e\u{301}");
    let escaped = message_with_id(&messages, 25);
    assert_eq!(escaped.text, "tab\there \"quoted\" back\\slash line\u{2028}sep\nnew");
    assert!(escaped.raw_json.contains("\"reactions\":[{\"type\":\"emoji\",\"count\":3,\"emoji\":\"👍\""), "{}", escaped.raw_json);
    assert!(escaped.raw_json.contains("\"inline_bot_buttons\""));
}

#[test]
fn service_messages_keep_actor_and_action_including_unknown_ones() {
    let events = read_fixture("single_chat_2025.json", ParseOptions::default());
    let messages = messages_of(&events);
    let expected = [
        (-999_999_951, "create_group", "user42"),
        (-999_999_949, "migrate_to_supergroup", "user42"),
        (1, "migrate_from_group", "channel1234567890"),
        (11, "pin_message", "user42"),
        (12, "send_star_gift_2030", "user43"),
        (13, "phone_call", "user42"),
    ];
    for (id, action, actor_id) in expected {
        let message = message_with_id(&messages, id);
        assert_eq!(message.kind, MessageKind::Service, "{id}");
        assert_eq!(message.action.as_deref(), Some(action), "{id}");
        assert_eq!(message.actor_id.as_deref(), Some(actor_id), "{id}");
        assert_eq!(message.from_id, None, "{id}");
        assert!(message.warnings.is_empty(), "{id}: {:?}", message.warnings);
    }
    assert!(message_with_id(&messages, -999_999_951).raw_json.contains("\"members\":[\"Ann Lee\",\"Борис Петров\",null]"));
    assert!(message_with_id(&messages, 12).raw_json.contains("\"mystery\":{\"nested\":[1,2]}"));
}

#[test]
fn unsupported_unknown_and_untyped_messages_are_kept() {
    let events = read_fixture("single_chat_2025.json", ParseOptions::default());
    let messages = messages_of(&events);
    let unsupported = message_with_id(&messages, 5);
    assert_eq!((unsupported.kind.clone(), unsupported.date_unix), (MessageKind::Unsupported, None));
    assert_eq!(unsupported.raw_json, r#"{"id":5,"type":"unsupported"}"#);
    let story = message_with_id(&messages, 22);
    assert_eq!(story.kind, MessageKind::Other("story".to_owned()));
    assert_eq!(story.warnings[0].kind, WarningKind::UnknownMessageType);
    let untyped = message_with_id(&messages, 23);
    assert_eq!(untyped.kind, MessageKind::Regular);
    assert_eq!(untyped.warnings[0].kind, WarningKind::MissingMessageType);
    let unknown_entity = message_with_id(&messages, 21);
    assert_eq!(unknown_entity.text, "at noon");
    assert_eq!(unknown_entity.entities[0].kind, TextEntityKind::Other("date_time".to_owned()));
    assert_eq!(unknown_entity.warnings[0].kind, WarningKind::UnknownEntityType);
}

#[test]
fn entity_extras_are_mapped() {
    let events = read_fixture("single_chat_2025.json", ParseOptions::default());
    let message = message_with_id(&messages_of(&events), 20);
    assert_eq!(message.text, "Hi Анна 😆 secret\nquoted\nx = 1\n\u{200b}#release");
    let kinds: Vec<&str> = message.entities.iter().map(|entity| entity.kind.as_str()).collect();
    assert_eq!(kinds, ["mention_name", "custom_emoji", "spoiler", "blockquote", "pre", "text_link", "hashtag"]);
    assert_eq!(message.entities[0].user_id, Some(42));
    assert_eq!(message.entities[1].document_id.as_deref(), Some("stickers/sticker (62).webp"));
    assert_eq!(message.entities[3].collapsed, Some(true));
    assert_eq!(message.entities[4].language.as_deref(), Some(""));
    assert_eq!(message.entities[5].href.as_deref(), Some("https://t.me/x"));
    let chars: Vec<char> = message.text.chars().collect();
    for entity in &message.entities {
        let span: String = chars[entity.char_offset..entity.char_offset + entity.char_length].iter().collect();
        assert_eq!(span, entity.text);
    }
}

#[test]
fn media_paths_placeholders_and_details() {
    let events = read_fixture("single_chat_2025.json", ParseOptions::default());
    let messages = messages_of(&events);
    let media_of = |id: i64| message_with_id(&messages, id).media.clone().unwrap_or_else(|| panic!("media on {id}"));

    let photo = media_of(7);
    assert_eq!((photo.kind, photo.path.as_deref()), (MediaKind::Photo, Some("photos/photo_1@22-11-2026_10-16-10.jpg")));
    assert_eq!((photo.file_size, photo.width, photo.height), (Some(183_412), Some(1280), Some(960)));

    let sticker = media_of(8);
    assert_eq!((sticker.kind, sticker.path), (MediaKind::Sticker, None));
    assert_eq!(sticker.not_included_reason, Some(NotIncludedReason::NotSelected));
    assert_eq!(sticker.thumbnail_not_included_reason, Some(NotIncludedReason::NotSelected));
    assert_eq!(sticker.sticker_emoji.as_deref(), Some("😆"));

    let video = media_of(9);
    assert_eq!(video.kind, MediaKind::VideoFile);
    assert_eq!(video.not_included_reason, Some(NotIncludedReason::ExceedsSizeLimit));
    assert_eq!((video.duration_seconds, video.file_name.as_deref()), (Some(125), Some("clip.mp4")));
    assert_eq!(message_with_id(&messages, 9).text, "watch this");

    let voice = media_of(10);
    assert_eq!((voice.kind, voice.not_included_reason), (MediaKind::VoiceMessage, Some(NotIncludedReason::Unavailable)));

    let poll = media_of(16).poll.expect("poll details");
    assert_eq!(poll.question, "Where lunch?");
    let answers: Vec<(&str, Option<u64>, bool)> = poll.answers.iter().map(|a| (a.text.as_str(), a.voters, a.chosen)).collect();
    assert_eq!(answers, [("Пицца", Some(2), true), ("Sushi", Some(1), false)]);

    let contact = media_of(17);
    assert_eq!((contact.kind, contact.path.as_deref()), (MediaKind::Contact, Some("contacts/contact_1.vcard")));
    assert_eq!(contact.contact.and_then(|c| c.phone_number).as_deref(), Some("+1 555 0100"));
    assert_eq!(media_of(18).kind, MediaKind::Location);
    assert_eq!(media_of(19).address.as_deref(), Some("Hauptstraße 1"));
    assert!(message_with_id(&messages, 2).media.is_none());
}

#[test]
fn old_export_with_epoch_edited_numeric_ids_and_local_dates() {
    let options = ParseOptions { local_utc_offset_seconds: 3 * 3600 };
    let events = read_fixture("single_chat_2019.json", options);
    let messages = messages_of(&events);
    assert_eq!(messages.len(), 5);
    let first = messages[0];
    assert_eq!(first.date_unix, Some(1_549_810_800 - 3 * 3600));
    assert_eq!(first.edited_unix, None);
    assert_eq!(first.from_id.as_deref(), Some("user42"));
    let formatted = messages[1];
    assert_eq!(formatted.text, "see https://t.me/x and тут");
    let kinds: Vec<&TextEntityKind> = formatted.entities.iter().map(|entity| &entity.kind).collect();
    assert_eq!(kinds, [&TextEntityKind::Link, &TextEntityKind::Bold]);
    assert_eq!(messages[2].edited_unix, Some(1_549_811_100 - 3 * 3600));
    assert_eq!(messages[3].actor_id.as_deref(), Some("user42"));
    assert_eq!((messages[4].from_name.as_deref(), messages[4].from_id.as_deref()), (None, Some("user44")));
    assert!(messages.iter().all(|message| message.warnings.is_empty()));
    let default_offset = read_fixture("single_chat_2019.json", ParseOptions::default());
    assert_eq!(messages_of(&default_offset)[0].date_unix, Some(1_549_810_800));
}

#[test]
fn legacy_64_bit_peer_ids_are_decoded() {
    let events = read_fixture("single_chat_2020_peer_ids.json", ParseOptions::default());
    let messages = messages_of(&events);
    assert_eq!(messages[0].from_id.as_deref(), Some("user42"));
    assert_eq!(messages[1].from_id.as_deref(), Some("channel777"));
    assert_eq!(messages[1].reply_to_peer_id.as_deref(), Some("channel778"));
    assert_eq!(headers_of(&events)[0].chat_id, 8_589_934_592 + 999);
}

#[test]
fn empty_messages_array_and_missing_name() {
    let events = read_fixture("empty_messages.json", ParseOptions::default());
    assert_eq!(events.len(), 2);
    assert_eq!(headers_of(&events)[0].name, None);
    assert_eq!(headers_of(&events)[0].chat_type, "saved_messages");
    assert_eq!(events[1], ExportEvent::ChatFinished { chat_id: 42, message_count: 0 });
}

#[test]
fn account_export_reads_chats_then_left_chats_and_skips_sections() {
    let bytes = fixture_bytes("account_export.json");
    let mut reader = JsonExportReader::new(&bytes[..], "result.json", ParseOptions::default());
    let mut events = Vec::new();
    while let Some(event) = reader.next_event().expect("account export parses") {
        events.push(event);
    }
    assert_eq!(reader.bytes_read(), bytes.len() as u64);
    let personal = reader.personal_information().expect("personal information");
    assert_eq!(personal.get("username").and_then(|value| value.as_str()), Some("@ann_lee"));

    let headers: Vec<(i64, Option<&str>, &str, bool, u32)> = headers_of(&events)
        .into_iter()
        .map(|header| (header.chat_id, header.name.as_deref(), header.chat_type.as_str(), header.left, header.index_in_export))
        .collect();
    assert_eq!(
        headers,
        [
            (43, Some("Борис"), "personal_chat", false, 0),
            (42, None, "saved_messages", false, 1),
            (777, Some("HelperBot"), "bot_chat", false, 2),
            (888, Some("Old Channel"), "public_channel", true, 3),
        ]
    );
    let finished: Vec<(i64, u64)> = events
        .iter()
        .filter_map(|event| match event {
            ExportEvent::ChatFinished { chat_id, message_count } => Some((*chat_id, *message_count)),
            _ => None,
        })
        .collect();
    assert_eq!(finished, [(43, 2), (42, 1), (777, 0), (888, 1)]);
    let messages = messages_of(&events);
    assert_eq!(messages[0].chat_id, 43);
    let photo = messages[0].media.as_ref().expect("photo");
    assert_eq!(photo.path.as_deref(), Some("chats/chat_1/photos/photo_1@01-01-2024_11-00-00.jpg"));
    let saved = message_with_id(&messages, 10);
    assert_eq!((saved.chat_id, saved.saved_from.as_deref()), (42, Some("Борис")));
    assert_eq!(saved.media.as_ref().and_then(|media| media.path.as_deref()), Some("chats/chat_2/files/Q3 plan (1).pdf"));
    assert_eq!(message_with_id(&messages, 100).chat_id, 888);
}
