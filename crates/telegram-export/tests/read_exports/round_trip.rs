//! Round trips: each message's raw JSON against the whole parsed value and against mapping
//! it again, tdesktop escapes in raw JSON, and the synthetic generator.

use serde_json::Value;
use telegram_export::lexer::JsonLexer;
use telegram_export::{ExportEvent, Message, ParseOptions};

use crate::{fixture_bytes, message_with_id, messages_of, read_events, read_fixture};

#[test]
fn streamed_messages_match_mapping_their_raw_json_and_the_whole_value() {
    for fixture in ["single_chat_2025.json", "single_chat_2019.json", "account_export.json"] {
        let bytes = fixture_bytes(fixture);
        let mut lexer = JsonLexer::new(&bytes[..], fixture);
        let first_token = lexer.next_token().expect("a token");
        let whole = lexer.read_value(first_token).expect("fixture parses as one value");
        let mut expected_message_values: Vec<&Value> = Vec::new();
        let chats: Vec<&Value> = match whole.get("chats") {
            Some(chats) => {
                chats["list"].as_array().into_iter().flatten().chain(whole["left_chats"]["list"].as_array().into_iter().flatten()).collect()
            }
            None => vec![&whole],
        };
        for chat in chats {
            expected_message_values.extend(chat["messages"].as_array().into_iter().flatten());
        }

        let events = read_fixture(fixture, ParseOptions::default());
        let streamed = messages_of(&events);
        assert_eq!(streamed.len(), expected_message_values.len(), "{fixture}");
        for (message, expected_value) in streamed.iter().zip(expected_message_values) {
            let from_raw_json: Value = serde_json::from_str(&message.raw_json)
                .unwrap_or_else(|error| panic!("{fixture} message {}: raw_json is not json: {error}", message.id));
            assert_eq!(&from_raw_json, expected_value, "{fixture} message {}", message.id);
            let raw_keys: Vec<&String> = from_raw_json.as_object().expect("object").keys().collect();
            let expected_keys: Vec<&String> = expected_value.as_object().expect("object").keys().collect();
            assert_eq!(raw_keys, expected_keys, "key order of {fixture} message {}", message.id);

            let Value::Object(object) = from_raw_json else { panic!("messages are objects") };
            let mapped = Message::from_json_object(object, message.chat_id, &ParseOptions::default()).expect("the raw json maps again");
            assert_eq!(Message { raw_json: String::new(), ..mapped }, Message { raw_json: String::new(), ..(*message).clone() });
        }
    }
}

#[test]
fn raw_json_turns_tdesktop_escapes_into_standard_ones() {
    let events = read_fixture("single_chat_2025.json", ParseOptions::default());
    let message = message_with_id(&messages_of(&events), 3);
    assert!(message.raw_json.contains(r#""text":"1=412\u00012=97180\u000b and C:\\x41 path""#), "{}", message.raw_json);
    assert!(message.raw_json.starts_with(r#"{"id":3,"type":"message","date":"2026-11-22T10:15:40","#), "{}", message.raw_json);
}

#[test]
fn generated_exports_round_trip_through_the_reader() {
    let mut bytes = Vec::new();
    telegram_export::write_synthetic_export(&mut bytes, -5, 2500, 11).expect("in-memory write");
    let events = read_events(&bytes, ParseOptions::default()).expect("generated export parses");
    assert_eq!(messages_of(&events).len(), 2500);
    assert_eq!(events.last(), Some(&ExportEvent::ChatFinished { chat_id: -5, message_count: 2500 }));
}
