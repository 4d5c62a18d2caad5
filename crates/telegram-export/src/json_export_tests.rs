//! Unit tests of the export reader's shape detection, events and structural errors, on
//! small inline documents. File-based fixtures live in the crate's `tests/` folder.

use std::io::BufReader;

use super::*;

fn read_all_events(input: &str) -> Result<Vec<ExportEvent>, ExportError> {
    JsonExportReader::new(input.as_bytes(), "result.json", ParseOptions::default()).collect()
}

fn read_error(input: &[u8]) -> ExportError {
    let reader = JsonExportReader::new(input, "result.json", ParseOptions::default());
    let results: Vec<Result<ExportEvent, ExportError>> = reader.collect();
    match results.into_iter().find_map(Result::err) {
        Some(error) => error,
        None => panic!("expected an error for {}", String::from_utf8_lossy(input)),
    }
}

fn message_ids(events: &[ExportEvent]) -> Vec<i64> {
    events
        .iter()
        .filter_map(|event| match event {
            ExportEvent::Message(message) => Some(message.id),
            _ => None,
        })
        .collect()
}

const SINGLE_CHAT: &str = r#"{
 "name": "Project Alpha",
 "type": "private_supergroup",
 "id": 1234567890,
 "messages": [
  {
   "id": 1,
   "type": "message",
   "date": "2026-11-22T10:15:30",
   "date_unixtime": "1795331730",
   "from": "Ann Lee",
   "from_id": "user42",
   "text": "hello",
   "text_entities": [
    {
     "type": "plain",
     "text": "hello"
    }
   ]
  },
  {
   "id": 2,
   "type": "unsupported"
  }
 ]
}
"#;

#[test]
fn reads_a_single_chat_export() {
    let events = read_all_events(SINGLE_CHAT).expect("valid export");
    assert_eq!(events.len(), 4);
    let ExportEvent::ChatStarted(header) = &events[0] else { panic!("chat started first: {events:?}") };
    assert_eq!(
        header,
        &ChatHeader {
            chat_id: 1_234_567_890,
            name: Some("Project Alpha".to_owned()),
            chat_type: "private_supergroup".to_owned(),
            left: false,
            index_in_export: 0,
        }
    );
    assert_eq!(message_ids(&events), [1, 2]);
    let ExportEvent::Message(first) = &events[1] else { panic!("a message") };
    assert_eq!(first.chat_id, 1_234_567_890);
    assert_eq!(first.text, "hello");
    assert_eq!(events[3], ExportEvent::ChatFinished { chat_id: 1_234_567_890, message_count: 2 });
}

#[test]
fn reads_the_same_events_with_any_buffer_size() {
    let expected = read_all_events(SINGLE_CHAT).expect("valid export");
    for capacity in [1, 2, 3, 7, 64] {
        let reader = BufReader::with_capacity(capacity, SINGLE_CHAT.as_bytes());
        let events: Vec<ExportEvent> =
            JsonExportReader::new(reader, "result.json", ParseOptions::default()).collect::<Result<_, _>>().expect("valid export");
        assert_eq!(events, expected, "capacity {capacity}");
    }
}

#[test]
fn counts_bytes_read_up_to_the_end() {
    let mut reader = JsonExportReader::new(SINGLE_CHAT.as_bytes(), "result.json", ParseOptions::default());
    assert_eq!(reader.bytes_read(), 0);
    while reader.next_event().expect("valid export").is_some() {}
    assert_eq!(reader.bytes_read(), SINGLE_CHAT.len() as u64);
}

#[test]
fn empty_messages_array_gives_an_empty_chat() {
    let events = read_all_events(r#"{"name": null, "type": "saved_messages", "id": 5, "messages": []}"#).expect("valid");
    assert_eq!(events.len(), 2);
    let ExportEvent::ChatStarted(header) = &events[0] else { panic!("chat started") };
    assert_eq!(header.name, None);
    assert_eq!(events[1], ExportEvent::ChatFinished { chat_id: 5, message_count: 0 });
}

#[test]
fn account_export_streams_chats_and_left_chats_and_skips_other_sections() {
    let input = r#"{
 "about": "text",
 "personal_information": {"user_id": 1, "first_name": "Ann"},
 "contacts": {"about": "x", "list": [{"user_id": 2, "first_name": "Bob", "extra": [[{}]]}]},
 "other_data": {"deep": {"deeper": [1, 2.5, null, true]}},
 "chats": {
  "about": "chats",
  "list": [
   {"name": "A", "type": "personal_chat", "id": 10, "messages": [{"id": 1, "type": "message", "text": "x"}]},
   {"type": "saved_messages", "id": 11, "messages": []},
   {"name": "C", "type": "bot_chat", "id": 12}
  ]
 },
 "left_chats": {"about": "left", "list": [{"name": "D", "type": "public_channel", "id": 13, "messages": [{"id": 7, "type": "message", "text": ""}]}]}
}"#;
    let mut reader = JsonExportReader::new(input.as_bytes(), "result.json", ParseOptions::default());
    let mut events = Vec::new();
    while let Some(event) = reader.next_event().expect("valid export") {
        events.push(event);
    }
    assert_eq!(reader.personal_information().and_then(|info| info.get("first_name")).and_then(Value::as_str), Some("Ann"));
    let headers: Vec<(i64, bool, u32, Option<String>)> = events
        .iter()
        .filter_map(|event| match event {
            ExportEvent::ChatStarted(header) => Some((header.chat_id, header.left, header.index_in_export, header.name.clone())),
            _ => None,
        })
        .collect();
    assert_eq!(
        headers,
        [(10, false, 0, Some("A".to_owned())), (11, false, 1, None), (12, false, 2, Some("C".to_owned())), (13, true, 3, Some("D".to_owned()))]
    );
    assert_eq!(message_ids(&events), [1, 7]);
    let finished: Vec<&ExportEvent> = events.iter().filter(|event| matches!(event, ExportEvent::ChatFinished { .. })).collect();
    assert_eq!(finished.len(), 4);
    assert_eq!(finished[2], &ExportEvent::ChatFinished { chat_id: 12, message_count: 0 });
}

#[test]
fn top_level_object_without_chats_gives_no_events() {
    assert!(read_all_events(r#"{"about": "x", "contacts": {"list": []}}"#).expect("valid").is_empty());
    assert!(read_all_events("{}").expect("valid").is_empty());
}

#[test]
fn messages_of_the_wrong_type_name_what_was_expected() {
    let error = read_error(br#"{"name": "A", "type": "personal_chat", "id": 1, "messages": "oops"}"#);
    assert_eq!(error.to_string(), "result.json: at byte 60 (line 1): expected an array for \"messages\", found a string");
}

#[test]
fn top_level_array_is_rejected() {
    let error = read_error(b"\n[1, 2]");
    assert_eq!(error.to_string(), "result.json: at byte 1 (line 2): expected an object at the top level, found an array");
}

#[test]
fn structural_type_errors_are_reported() {
    let cases: [(&[u8], &str); 8] = [
        (br#"{"id": "5", "messages": []}"#, "expected an integer for the chat \"id\", found a string"),
        (br#"{"id": 5.5, "messages": []}"#, "expected an integer for the chat \"id\", found a decimal number"),
        (br#"{"name": 5}"#, "expected a string or null for the chat \"name\", found a number"),
        (br#"{"id": 1, "messages": [1]}"#, "expected an object for a message in \"messages\", found a number"),
        (br#"{"id": 1, "messages": [{"type": "message"}]}"#, "expected an integer \"id\" in the message, found no \"id\""),
        (br#"{"chats": []}"#, "expected an object for \"chats\", found an array"),
        (br#"{"chats": {"list": {}}}"#, "expected an array for \"chats.list\", found an object"),
        (br#"{"left_chats": {"list": ["x"]}}"#, "expected an object for a chat in \"left_chats.list\", found a string"),
    ];
    for (input, expected_message) in cases {
        let error = read_error(input);
        assert!(matches!(error, ExportError::UnexpectedStructure { .. }), "{error}");
        assert!(error.to_string().ends_with(expected_message), "{error}");
    }
}

#[test]
fn chat_without_id_in_a_list_is_rejected() {
    let error = read_error(br#"{"chats": {"list": [{"name": "x"}]}}"#);
    assert!(error.to_string().contains("an \"id\" in every chat of \"chats.list\""), "{error}");
}

#[test]
fn messages_before_id_are_refused_without_buffering() {
    let error = read_error(br#"{"name": "A", "type": "personal_chat", "messages": [], "id": 1}"#);
    assert!(matches!(error, ExportError::UnsupportedLayout { byte_offset: 51, .. }), "{error}");
    assert!(error.to_string().contains("\"messages\" come before its \"id\""), "{error}");
}

#[test]
fn trailing_garbage_after_the_top_level_object_is_rejected() {
    let error = read_error(b"{\"id\": 1, \"messages\": []}\n}");
    assert_eq!(error.to_string(), "result.json: at byte 26 (line 2): expected the end of the file after the top-level object, found '}'");
    assert!(read_all_events("{\"id\": 1, \"messages\": []}\n \n").is_ok());
}

#[test]
fn truncated_input_names_the_end_offset() {
    let cut = &SINGLE_CHAT.as_bytes()[..300];
    let error = read_error(cut);
    assert!(matches!(error, ExportError::Truncated { byte_offset: 300, .. }), "{error}");
    assert!(error.to_string().starts_with("result.json: unexpected end of file at byte 300 (line"), "{error}");
    let error = read_error(b"");
    assert!(error.to_string().starts_with("result.json: unexpected end of file at byte 0 (line 1)"), "{error}");
}

#[test]
fn events_stop_after_an_error() {
    let mut reader = JsonExportReader::new(&br#"{"id": 1, "messages": [{"id": 1}, 5, {"id": 2}]}"#[..], "result.json", ParseOptions::default());
    assert!(matches!(reader.next_event(), Ok(Some(ExportEvent::ChatStarted(_)))));
    assert!(matches!(reader.next_event(), Ok(Some(ExportEvent::Message(_)))));
    assert!(reader.next_event().is_err());
    assert!(matches!(reader.next_event(), Ok(None)));
}
