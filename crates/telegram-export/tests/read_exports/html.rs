//! The HTML reader against the JSON reader: the hand-written fixture pair in
//! `tests/fixtures/html_chat/` and the synthetic generators must give the same messages
//! (format reference, section 5), plus HTML-only details and structural errors.

use std::fs;
use std::path::{Path, PathBuf};

use telegram_export::{
    write_synthetic_export, write_synthetic_html_export, ExportError, ExportEvent, HtmlExportReader, HtmlPageReader, HtmlParseOptions,
    JsonExportReader, MediaKind, Message, MessageKind, NotIncludedReason, ParseOptions, TextEntityKind,
};

use crate::messages_of;

fn html_fixture_folder() -> PathBuf {
    [env!("CARGO_MANIFEST_DIR"), "tests", "fixtures", "html_chat"].iter().collect()
}

/// A fresh folder under the system temp folder, removed when dropped.
struct ScratchFolder(PathBuf);

impl ScratchFolder {
    fn new(purpose: &str) -> ScratchFolder {
        let nanos = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |elapsed| elapsed.as_nanos());
        let path = std::env::temp_dir().join(format!("telegram-export-{purpose}-{}-{nanos}", std::process::id()));
        fs::create_dir_all(&path).expect("create scratch folder");
        ScratchFolder(path)
    }
}

impl Drop for ScratchFolder {
    fn drop(&mut self) {
        let _ = fs::remove_dir_all(&self.0);
    }
}

fn read_html(folder: &Path, chat_id: Option<i64>) -> Result<Vec<ExportEvent>, ExportError> {
    HtmlExportReader::open(folder, chat_id, HtmlParseOptions::default())?.collect()
}

fn read_json_file(path: &Path) -> Vec<ExportEvent> {
    let bytes = fs::read(path).expect("read json");
    JsonExportReader::new(&bytes[..], "result.json", ParseOptions::default()).collect::<Result<_, _>>().expect("json parses")
}

/// The author as both formats can give it: `from` of regular messages, `actor` otherwise.
fn author(message: &Message) -> Option<&str> {
    message.from_name.as_deref().or(message.actor_name.as_deref())
}

/// Compares what section 5 of the format reference says both formats share.
fn assert_same_messages(json_messages: &[&Message], html_messages: &[&Message]) {
    let json_ids: Vec<i64> = json_messages.iter().map(|message| message.id).collect();
    let html_ids: Vec<i64> = html_messages.iter().map(|message| message.id).collect();
    assert_eq!(json_ids, html_ids);
    for (json, html) in json_messages.iter().zip(html_messages) {
        let id = json.id;
        assert_eq!(json.kind, html.kind, "kind of {id}");
        assert_eq!(author(json), author(html), "author of {id}");
        assert!(html.warnings.is_empty(), "{id}: {:?}", html.warnings);
        if json.kind != MessageKind::Regular {
            // HTML service blocks carry no date and their text is the English sentence
            // (JSON text is empty): compare what they share.
            assert_eq!(json.action, html.action, "action of {id}");
            continue;
        }
        assert_eq!(json.date_unix, html.date_unix, "date of {id}");
        assert_eq!(json.date_local, html.date_local, "local date of {id}");
        assert_eq!(json.text, html.text, "text of {id}");
        assert_eq!(json.reply_to_message_id, html.reply_to_message_id, "reply of {id}");
        assert_eq!((json.is_forwarded, &json.forwarded_from), (html.is_forwarded, &html.forwarded_from), "forward of {id}");
        assert_eq!(json.via_bot, html.via_bot, "via_bot of {id}");
        let entity_spans = |message: &Message| -> Vec<(TextEntityKind, usize, usize, String)> {
            message.entities.iter().map(|e| (e.kind.clone(), e.char_offset, e.char_length, e.text.clone())).collect()
        };
        assert_eq!(entity_spans(json), entity_spans(html), "entities of {id}");
        let media_summary =
            |message: &Message| message.media.as_ref().map(|media| (media.kind.clone(), media.path.clone(), media.not_included_reason.clone()));
        assert_eq!(media_summary(json), media_summary(html), "media of {id}");
    }
}

#[test]
fn html_fixture_matches_its_json_export_message_for_message() {
    let folder = html_fixture_folder();
    let json_events = read_json_file(&folder.join("result.json"));
    let html_events = read_html(&folder, Some(1_234_567_890)).expect("html parses");
    let json_messages = messages_of(&json_events);
    let html_messages = messages_of(&html_events);
    assert_eq!(html_messages.len(), 30);
    assert_same_messages(&json_messages, &html_messages);
    assert_eq!(
        html_events.first(),
        json_events
            .first()
            .map(|event| match event {
                ExportEvent::ChatStarted(header) =>
                    ExportEvent::ChatStarted(telegram_export::ChatHeader { chat_type: String::new(), ..header.clone() }),
                other => other.clone(),
            })
            .as_ref()
    );
    assert_eq!(html_events.last(), json_events.last());
}

#[test]
fn synthetic_html_and_json_exports_agree_across_pages() {
    let scratch = ScratchFolder::new("synthetic-html");
    write_synthetic_export(fs::File::create(scratch.0.join("result.json")).expect("create"), 99, 2345, 11).expect("write json");
    write_synthetic_html_export(&scratch.0, 99, 2345, 11).expect("write html");
    assert!(scratch.0.join("messages3.html").exists());
    assert!(!scratch.0.join("messages4.html").exists());
    let json_events = read_json_file(&scratch.0.join("result.json"));
    let mut reader = HtmlExportReader::open(&scratch.0, Some(99), HtmlParseOptions::default()).expect("open");
    let mut html_events = Vec::new();
    while let Some(event) = reader.next_event().expect("html parses") {
        html_events.push(event);
    }
    assert_eq!(reader.bytes_read(), reader.bytes_total());
    let json_messages = messages_of(&json_events);
    let html_messages = messages_of(&html_events);
    assert_eq!(html_messages.len(), 2345);
    assert_same_messages(&json_messages, &html_messages);
    let joined_count = html_messages.iter().filter(|message| message.raw_json.contains("\"joined\":true")).count();
    let cross_page_replies = html_messages.iter().filter(|message| message.raw_json.contains("\"reply_href\":\"messages")).count();
    assert!(joined_count > 100 && cross_page_replies > 0, "{joined_count} {cross_page_replies}");
}

#[test]
fn html_details_joined_forwarded_deleted_via_bot_and_escapes() {
    let events = read_html(&html_fixture_folder(), None).expect("html parses");
    let ExportEvent::ChatStarted(header) = &events[0] else {
        panic!("first event is the chat header");
    };
    assert_eq!(header.name.as_deref(), Some("Project Alpha"));
    assert_eq!(header.chat_id, telegram_export::chat_id_from_name("Project Alpha"));
    let messages = messages_of(&events);
    let by_id = |id: i64| crate::message_with_id(&messages, id);

    // Joined block: inherits the author of the block before it.
    assert!(by_id(3).raw_json.contains("\"joined\":true"));
    assert_eq!(by_id(3).from_name.as_deref(), Some("Ann Lee"));
    assert_eq!(by_id(3).text, "Deploy today\nsee \"plan\"");
    assert_eq!(by_id(2).text, "Hello everyone 'quoted' & welcome");
    assert_eq!(by_id(4).text, "col1\tcol2");
    assert_eq!(by_id(29).text, "ctrl\u{0B}char");
    assert_eq!(by_id(21).text, "  leading and trailing spaces  ");
    assert_eq!(by_id(17).text, "Morning! Line1\nLine2\n");
    // `Dmitri  via @gif`: trailing space of an empty last name, then the bot.
    assert_eq!(by_id(6).from_name.as_deref(), Some("Dmitri"));
    assert_eq!(by_id(6).via_bot.as_deref(), Some("@gif"));
    assert_eq!(by_id(7).from_name, None, "Deleted Account has no name");
    let forwarded = by_id(8);
    assert_eq!(forwarded.from_name.as_deref(), Some("Carla 🌸"));
    assert_eq!(forwarded.forwarded_from.as_deref(), Some("Tech News 📰"));
    assert_eq!(by_id(20).reply_to_message_id, Some(4), "reply into the previous page");
    assert!(by_id(20).raw_json.contains("messages.html#go_to_message4"));
    let pin = by_id(9);
    assert_eq!(pin.kind, MessageKind::Service);
    assert_eq!(pin.text, "Carla 🌸 pinned this message");
    assert!(pin.raw_json.contains("\"message_id\":8"));
    assert_eq!(by_id(27).kind, MessageKind::Unsupported);

    let voice = by_id(11).media.as_ref().expect("voice");
    assert_eq!(voice.kind, MediaKind::VoiceMessage);
    assert_eq!(voice.duration_seconds, Some(7));
    assert_eq!(voice.not_included_reason, Some(NotIncludedReason::NotSelected));
    let file = by_id(12).media.as_ref().expect("file");
    assert_eq!(file.path.as_deref(), Some("files/Q3 plan (1).pdf"));
    assert_eq!(file.file_name.as_deref(), Some("Q3 plan.pdf"));
    let location = by_id(25).media.as_ref().expect("location");
    assert_eq!(location.location.map(|point| point.latitude), Some(55.75));
    let link = &by_id(10).entities[0];
    assert_eq!(link.href.as_deref(), Some("https://example.com/plan?q=1&x=%20"));
    let raw: serde_json::Value = serde_json::from_str(&by_id(10).raw_json).expect("raw json");
    assert_eq!(raw["html_id"], "message10");
    assert!(raw["text_html"].as_str().unwrap_or("").contains("<code>cargo test</code>"));
}

#[test]
fn account_export_chat_folders_use_paths_from_the_export_root() {
    let scratch = ScratchFolder::new("account-html");
    let chat_folder = scratch.0.join("chats").join("chat_003");
    fs::create_dir_all(&chat_folder).expect("create chat folder");
    for page in ["messages.html", "messages2.html"] {
        let original = fs::read_to_string(html_fixture_folder().join(page)).expect("read page");
        let relinked = original
            .replace("href=\"photos/", "href=\"../../chats/chat_003/photos/")
            .replace("href=\"files/", "href=\"../../chats/chat_003/files/")
            .replace("href=\"stickers/", "href=\"../../chats/chat_003/stickers/")
            .replace("href=\"css/", "href=\"../../css/");
        fs::write(chat_folder.join(page), relinked).expect("write page");
    }
    let events = read_html(&chat_folder, Some(5)).expect("html parses");
    let ExportEvent::ChatStarted(header) = &events[0] else {
        panic!("first event is the chat header");
    };
    assert_eq!(header.index_in_export, 2);
    let messages = messages_of(&events);
    let photo = crate::message_with_id(&messages, 5).media.as_ref().expect("photo");
    assert_eq!(photo.path.as_deref(), Some("chats/chat_003/photos/photo_1@22-11-2026_10-06-00.jpg"));
}

fn read_page(bytes: &[u8]) -> Result<Vec<Message>, ExportError> {
    let mut reader = HtmlPageReader::new(bytes, "messages.html", 1, HtmlParseOptions::default());
    let mut messages = Vec::new();
    while let Some(message) = reader.next_message()? {
        messages.push(message);
    }
    Ok(messages)
}

#[test]
fn pages_that_are_not_exports_or_are_cut_fail_with_file_and_line() {
    let json = crate::fixture_bytes("single_chat_2025.json");
    let error = read_page(&json).expect_err("json is not an html page");
    assert!(matches!(error, ExportError::UnexpectedStructure { .. }), "{error}");
    assert_eq!((error.source_label(), error.line()), ("messages.html", Some(1)));
    let plain_html = b"<!DOCTYPE html>\n<html><body><p>hello</p></body></html>\n";
    let error = read_page(plain_html).expect_err("no div.history");
    assert!(error.to_string().contains("div.history"), "{error}");
    let invalid_utf8 = b"<!DOCTYPE html>\n<html>\n\xff</html>";
    let error = read_page(invalid_utf8).expect_err("invalid utf-8");
    assert!(matches!(error, ExportError::InvalidUtf8 { line: 3, .. }), "{error}");

    let page = fs::read(html_fixture_folder().join("messages2.html")).expect("read page");
    let whole = read_page(&page).expect("complete page");
    let end_of_history = page.len() - page.windows(6).rev().position(|w| w == b"</div>").unwrap_or(0);
    for cut in (0..end_of_history.saturating_sub(6)).step_by(97) {
        let error = read_page(&page[..cut]).expect_err("a cut page is an error");
        assert!(error.line().is_some(), "{error}");
    }
    assert_eq!(whole.len(), 11);
}

#[test]
fn a_missing_next_page_is_an_error() {
    let scratch = ScratchFolder::new("missing-page");
    fs::copy(html_fixture_folder().join("messages.html"), scratch.0.join("messages.html")).expect("copy page");
    let error = read_html(&scratch.0, Some(1)).expect_err("messages2.html is missing");
    assert!(error.to_string().contains("messages2.html"), "{error}");
}

#[test]
fn phone_calls_become_service_messages_like_in_json() {
    let page = "<!DOCTYPE html>\n<html>\n<body>\n<div class=\"history\">\n\
        <div class=\"message default clearfix\" id=\"message7\">\n<div class=\"body\">\n\
        <div class=\"pull_right date details\" title=\"01.06.2021 12:00:00\">\n12:00\n</div>\n\
        <div class=\"from_name\">\nAnn \n</div>\n<div class=\"media_wrap clearfix\">\n\
        <div class=\"media clearfix pull_left media_call success\">\n<div class=\"body\">\n\
        <div class=\"title bold\">\nBob\n</div>\n<div class=\"status details\">\nOutgoing (42 seconds)\n</div>\n\
        </div>\n</div>\n</div>\n</div>\n</div>\n</div>\n</body>\n</html>\n";
    let messages = read_page(page.as_bytes()).expect("parses");
    assert_eq!(messages.len(), 1);
    let call = &messages[0];
    assert_eq!(call.kind, MessageKind::Service);
    assert_eq!(call.action.as_deref(), Some("phone_call"));
    assert_eq!(call.actor_name.as_deref(), Some("Ann"));
    assert_eq!(call.date_unix, Some(1_622_548_800), "old titles use the configured offset");
}
