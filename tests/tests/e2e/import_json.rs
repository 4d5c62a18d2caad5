//! Importing single-chat JSON exports end to end: ingest → Kafka → storage → queries.

use std::io::Write;

use chatvault_proto::chat::v1::MessageKind;
use chatvault_proto::common::v1::ConsistencyToken;
use chatvault_proto::storage::v1::{GetMessagesRequest, ListChatsRequest};

use crate::helpers::{fixture, TestPlatform};

const SAMPLE_CHAT_ID: i64 = 1_234_567_890;

async fn stored_row_count(platform: &TestPlatform, chat_id: i64) -> i64 {
    let client = platform.database.client().await;
    client.query_one("SELECT count(*) FROM messages WHERE chat_id = $1", &[&chat_id]).await.expect("count query").get(0)
}

#[tokio::test]
async fn fixture_import_returns_every_message_intact() {
    let platform = TestPlatform::start().await;
    let summary = platform.import(&fixture("sample-export")).await.expect("the sample imports");
    assert_eq!((summary.chats, summary.messages, summary.service_messages), (1, 8, 2));
    assert_eq!(summary.chat_ids, vec![SAMPLE_CHAT_ID]);

    // The token makes the very next query see the whole import.
    let messages = platform.all_messages(SAMPLE_CHAT_ID, summary.consistency_token.as_ref()).await;
    let ids: Vec<i64> = messages.iter().map(|message| message.message_id).collect();
    assert_eq!(ids, vec![-999_999_950, 1, 2, 3, 5, 6, 7, 8], "every message, in id order");

    let create_group = &messages[0];
    assert_eq!(create_group.kind, MessageKind::Service as i32);
    assert_eq!(create_group.action.as_deref(), Some("create_group"));
    assert_eq!(create_group.actor_name.as_deref(), Some("Ann Lee"));

    let hello = &messages[1];
    assert_eq!(hello.from_name.as_deref(), Some("Ann Lee"));
    assert_eq!(hello.from_id.as_deref(), Some("user42"));
    assert_eq!(hello.date_unix, Some(1_795_331_730));
    assert_eq!(hello.text, "Hello, team! 👋");

    let formatted = &messages[2];
    assert_eq!(formatted.text, "Deploy сегодня — see the plan");
    assert_eq!(formatted.from_name.as_deref(), Some("Борис Петров"));
    assert_eq!(formatted.reply_to_message_id, Some(1));
    assert_eq!(formatted.edited_unix, Some(1_795_331_820));
    let bold = formatted.entities.iter().find(|entity| entity.kind == "bold").expect("bold entity kept");
    assert_eq!((bold.offset, bold.length), (7, 7), "entity offsets count Unicode scalar values");
    let link = formatted.entities.iter().find(|entity| entity.kind == "text_link").expect("link entity kept");
    assert!(link.extra_json.contains("https://example.com/plan"), "{}", link.extra_json);

    let photo = &messages[3];
    assert_eq!(photo.text, "Family 👨\u{200d}👩\u{200d}👧\u{200d}👦 and flags 🇺🇦🇯🇵, RTL שלום, tab\there");
    let media = photo.media.as_ref().expect("photo media");
    assert_eq!(media.kind, "photo");
    assert_eq!(media.path.as_deref(), Some("photos/photo_1@22-11-2026_10-18-45.jpg"));
    assert_eq!((media.width, media.height), (Some(1280), Some(960)));

    let deleted_author = &messages[4];
    assert_eq!(deleted_author.from_name, None, "a deleted account has no name");
    assert_eq!(deleted_author.from_id.as_deref(), Some("user44"));
    assert_eq!(deleted_author.text, "a control \u{0B} char", "Telegram's \\x0B escape is read as U+000B");
    let document = deleted_author.media.as_ref().expect("document media");
    assert_eq!(document.path, None);
    assert_eq!(document.file_name.as_deref(), Some("report.pdf"));
    assert_eq!(document.not_included_reason.as_deref(), Some("not_included"));

    let forwarded = &messages[6];
    assert_eq!(forwarded.text, "@ann line one\nline two cargo test");
    assert_eq!(forwarded.forwarded_from.as_deref(), Some("Tech News"));
    assert_eq!(forwarded.via_bot.as_deref(), Some("@gif"));

    assert_eq!(messages[7].kind, MessageKind::Unsupported as i32);
    assert_eq!(messages[7].date_unix, None);

    let chats = platform
        .storage
        .clone()
        .list_chats(ListChatsRequest { consistency_token: summary.consistency_token.clone() })
        .await
        .expect("ListChats")
        .into_inner()
        .chats;
    assert_eq!(chats.len(), 1);
    assert_eq!(chats[0].name.as_deref(), Some("Project Alpha"));
    assert_eq!(chats[0].chat_type, "private_supergroup");
    assert_eq!(chats[0].message_count, 8);
}

#[tokio::test]
async fn importing_the_same_export_twice_changes_nothing() {
    let platform = TestPlatform::start().await;
    let first = platform.import(&fixture("sample-export/result.json")).await.expect("first import");
    let first_messages = platform.all_messages(SAMPLE_CHAT_ID, first.consistency_token.as_ref()).await;
    let second = platform.import(&fixture("sample-export/result.json")).await.expect("second import");
    let second_messages = platform.all_messages(SAMPLE_CHAT_ID, second.consistency_token.as_ref()).await;
    assert_eq!(first_messages, second_messages);
    assert_eq!(stored_row_count(&platform, SAMPLE_CHAT_ID).await, 8);
    let chats = platform
        .storage
        .clone()
        .list_chats(ListChatsRequest { consistency_token: second.consistency_token })
        .await
        .expect("ListChats")
        .into_inner()
        .chats;
    assert_eq!(chats[0].message_count, 8, "the count stays exact under re-import");
}

#[tokio::test]
async fn a_newer_overlapping_export_updates_edits_and_adds_new_messages() {
    let platform = TestPlatform::start().await;
    platform.import(&fixture("sample-export")).await.expect("first import");
    let original = std::fs::read_to_string(fixture("sample-export/result.json")).expect("fixture");
    let edited = original.replace(
        "\"text\": \"Hello, team! 👋\"",
        "\"edited\": \"2026-11-23T08:00:00\",\n   \"edited_unixtime\": \"1795420800\",\n   \"text\": \"Hello again, team!\"",
    );
    assert_ne!(edited, original, "the fixture holds the text to edit");
    let newer = edited.replacen(
        "\n ]\n}",
        ",\n  {\n   \"id\": 9,\n   \"type\": \"message\",\n   \"date\": \"2026-11-23T09:00:00\",\n   \"date_unixtime\": \"1795424400\",\n   \"from\": \"Ann Lee\",\n   \"from_id\": \"user42\",\n   \"text\": \"a new one\",\n   \"text_entities\": []\n  }\n ]\n}",
        1,
    );
    let folder = tempfile::tempdir().expect("temp dir");
    let newer_path = folder.path().join("result.json");
    std::fs::write(&newer_path, newer).expect("write newer export");
    let summary = platform.import(&newer_path).await.expect("newer import");
    let messages = platform.all_messages(SAMPLE_CHAT_ID, summary.consistency_token.as_ref()).await;
    assert_eq!(messages.len(), 9);
    let hello = messages.iter().find(|message| message.message_id == 1).expect("message 1");
    assert_eq!(hello.text, "Hello again, team!");
    assert_eq!(hello.edited_unix, Some(1_795_420_800));
    assert_eq!(stored_row_count(&platform, SAMPLE_CHAT_ID).await, 9);
}

/// Writes an export of `chat_id` whose messages have ids `first_id..first_id + count`.
fn write_export(path: &std::path::Path, chat_id: i64, first_id: i64, count: i64) -> String {
    let mut text = format!("{{\n \"name\": \"Broken\",\n \"type\": \"personal_chat\",\n \"id\": {chat_id},\n \"messages\": [\n");
    for id in first_id..first_id + count {
        if id > first_id {
            text.push_str(",\n");
        }
        text.push_str(&format!(
            "  {{\n   \"id\": {id},\n   \"type\": \"message\",\n   \"date\": \"2026-11-22T10:00:00\",\n   \"date_unixtime\": \"{}\",\n   \"from\": \"Ann\",\n   \"from_id\": \"user1\",\n   \"text\": \"message {id}\"\n  }}",
            1_795_320_000 + id
        ));
    }
    text.push_str("\n ]\n}\n");
    let mut file = std::fs::File::create(path).expect("create export");
    file.write_all(text.as_bytes()).expect("write export");
    text
}

#[tokio::test]
async fn broken_exports_are_refused_and_publish_nothing() {
    let platform = TestPlatform::start().await;
    let chat_id = 777_001;
    let folder = tempfile::tempdir().expect("temp dir");

    // Truncated after many messages were already published inside the transaction.
    let full = write_export(&folder.path().join("full.json"), chat_id, 1, 5_000);
    let truncated_path = folder.path().join("truncated.json");
    let cut_at = full.len() - 500;
    std::fs::write(&truncated_path, &full.as_bytes()[..cut_at]).expect("write truncated");
    let status = platform.import(&truncated_path).await.expect_err("a truncated export is refused");
    assert_eq!(status.code(), tonic::Code::InvalidArgument);
    assert!(status.message().contains("truncated.json"), "names the file: {}", status.message());
    assert!(status.message().contains(&format!("byte {cut_at}")), "names the byte offset: {}", status.message());

    // The right keys with the wrong types.
    let wrong_type_path = folder.path().join("wrong-type.json");
    std::fs::write(&wrong_type_path, format!("{{\"name\": \"x\", \"type\": \"personal_chat\", \"id\": {chat_id}, \"messages\": \"oops\"}}"))
        .expect("write");
    let status = platform.import(&wrong_type_path).await.expect_err("a string for messages is refused");
    assert_eq!(status.code(), tonic::Code::InvalidArgument);
    assert!(status.message().contains("wrong-type.json") && status.message().contains("byte"), "{}", status.message());

    // Invalid UTF-8 inside a message.
    let mut invalid_utf8 = write_export(&folder.path().join("base.json"), chat_id, 1, 3).into_bytes();
    let position = invalid_utf8.windows(9).position(|window| window == b"message 2").expect("text present");
    invalid_utf8[position] = 0xFF;
    let invalid_utf8_path = folder.path().join("invalid-utf8.json");
    std::fs::write(&invalid_utf8_path, invalid_utf8).expect("write");
    let status = platform.import(&invalid_utf8_path).await.expect_err("invalid UTF-8 is refused");
    assert_eq!(status.code(), tonic::Code::InvalidArgument, "{}", status.message());

    // A good export of the same chat (same key, same partition) commits after the aborted
    // transactions; once it is visible, the aborted messages would be too, were they committed.
    let good_path = folder.path().join("good.json");
    write_export(&good_path, chat_id, 90_000, 1);
    let summary = platform.import(&good_path).await.expect("the good export imports");
    let messages = platform.all_messages(chat_id, summary.consistency_token.as_ref()).await;
    let ids: Vec<i64> = messages.iter().map(|message| message.message_id).collect();
    assert_eq!(ids, vec![90_000], "nothing of the refused exports is visible");
    assert_eq!(stored_row_count(&platform, chat_id).await, 1);
}

#[tokio::test]
async fn bad_requests_get_clear_statuses_and_the_service_keeps_serving() {
    let platform = TestPlatform::start().await;
    let missing = platform.import(std::path::Path::new("/nonexistent/export")).await.expect_err("missing path");
    assert_eq!(missing.code(), tonic::Code::NotFound);
    assert!(missing.message().contains("/nonexistent/export"), "{}", missing.message());

    let empty_folder = tempfile::tempdir().expect("temp dir");
    let no_export = platform.import(empty_folder.path()).await.expect_err("folder without result.json");
    assert_eq!(no_export.code(), tonic::Code::InvalidArgument);
    assert!(no_export.message().contains("result.json"), "{}", no_export.message());

    let mut storage = platform.storage.clone();
    let unknown_chat = storage.get_messages(GetMessagesRequest { chat_id: 42, ..Default::default() }).await.expect_err("unknown chat");
    assert_eq!(unknown_chat.code(), tonic::Code::NotFound);

    let bad_token = storage
        .list_chats(ListChatsRequest { consistency_token: Some(ConsistencyToken { value: "not a token".into() }) })
        .await
        .expect_err("malformed token");
    assert_eq!(bad_token.code(), tonic::Code::InvalidArgument);

    let summary = platform.import(&fixture("sample-export")).await.expect("the service still imports");
    let bad_page = storage
        .get_messages(GetMessagesRequest {
            chat_id: SAMPLE_CHAT_ID,
            page_token: "garbage".into(),
            consistency_token: summary.consistency_token.clone(),
            ..Default::default()
        })
        .await
        .expect_err("foreign page token");
    assert_eq!(bad_page.code(), tonic::Code::InvalidArgument);
    let too_big =
        storage.get_messages(GetMessagesRequest { chat_id: SAMPLE_CHAT_ID, limit: 100_000, ..Default::default() }).await.expect_err("page too large");
    assert_eq!(too_big.code(), tonic::Code::InvalidArgument);

    // Paging and date ranges.
    let first_page = storage
        .get_messages(GetMessagesRequest {
            chat_id: SAMPLE_CHAT_ID,
            limit: 3,
            consistency_token: summary.consistency_token.clone(),
            ..Default::default()
        })
        .await
        .expect("first page")
        .into_inner();
    assert_eq!(first_page.messages.iter().map(|message| message.message_id).collect::<Vec<_>>(), vec![-999_999_950, 1, 2]);
    let second_page = storage
        .get_messages(GetMessagesRequest { chat_id: SAMPLE_CHAT_ID, limit: 3, page_token: first_page.next_page_token, ..Default::default() })
        .await
        .expect("second page")
        .into_inner();
    assert_eq!(second_page.messages.iter().map(|message| message.message_id).collect::<Vec<_>>(), vec![3, 5, 6]);
    let in_range = storage
        .get_messages(GetMessagesRequest {
            chat_id: SAMPLE_CHAT_ID,
            since_unix: Some(1_795_331_762),
            until_unix: Some(1_795_334_400),
            ..Default::default()
        })
        .await
        .expect("date range")
        .into_inner();
    assert_eq!(in_range.messages.iter().map(|message| message.message_id).collect::<Vec<_>>(), vec![2, 3]);
}

#[tokio::test]
async fn search_author_and_thread_queries_find_the_right_messages() {
    let platform = TestPlatform::start().await;
    let summary = platform.import(&fixture("sample-export")).await.expect("the sample imports");
    let mut storage = platform.storage.clone();
    let token = summary.consistency_token.clone();
    let ids_of = |messages: Vec<chatvault_proto::storage::v1::StoredMessage>| messages.iter().map(|message| message.message_id).collect::<Vec<_>>();
    let query = |author: Option<&str>, text_query: Option<&str>| GetMessagesRequest {
        chat_id: SAMPLE_CHAT_ID,
        author: author.map(str::to_owned),
        text_query: text_query.map(str::to_owned),
        consistency_token: token.clone(),
        ..Default::default()
    };

    // Russian and English words, each found through its stem, in one index.
    let russian = storage.get_messages(query(None, Some("сегодня"))).await.expect("search").into_inner().messages;
    assert_eq!(ids_of(russian), vec![2]);
    let english_stem = storage.get_messages(query(None, Some("deploying"))).await.expect("search").into_inner().messages;
    assert_eq!(ids_of(english_stem), vec![2]);
    let phrase = storage.get_messages(query(None, Some("\"line two\""))).await.expect("search").into_inner().messages;
    assert_eq!(ids_of(phrase), vec![7]);
    let nothing = storage.get_messages(query(None, Some("kubernetes"))).await.expect("search").into_inner().messages;
    assert!(nothing.is_empty());

    let by_id = storage.get_messages(query(Some("user43"), None)).await.expect("author").into_inner().messages;
    assert_eq!(ids_of(by_id), vec![2, 7]);
    let by_name = storage.get_messages(query(Some("Ann Lee"), None)).await.expect("author").into_inner().messages;
    assert_eq!(ids_of(by_name), vec![1, 3]);
    let both = storage.get_messages(query(Some("user42"), Some("flags"))).await.expect("both").into_inner().messages;
    assert_eq!(ids_of(both), vec![3]);

    let thread = storage
        .get_thread(chatvault_proto::storage::v1::GetThreadRequest {
            chat_id: SAMPLE_CHAT_ID,
            message_id: 1,
            consistency_token: token.clone(),
            owner: None,
        })
        .await
        .expect("thread")
        .into_inner()
        .messages;
    assert_eq!(ids_of(thread), vec![1, 2], "message 2 replies to 1");
    let from_reply = storage
        .get_thread(chatvault_proto::storage::v1::GetThreadRequest { chat_id: SAMPLE_CHAT_ID, message_id: 2, consistency_token: None, owner: None })
        .await
        .expect("thread")
        .into_inner()
        .messages;
    assert_eq!(ids_of(from_reply), vec![1, 2], "the thread includes the replied-to message");
    let missing = storage
        .get_thread(chatvault_proto::storage::v1::GetThreadRequest { chat_id: SAMPLE_CHAT_ID, message_id: 4, consistency_token: None, owner: None })
        .await
        .expect_err("no message 4");
    assert_eq!(missing.code(), tonic::Code::NotFound);
}

#[tokio::test]
async fn a_whole_account_export_imports_every_chat_including_left_and_empty_ones() {
    let platform = TestPlatform::start().await;
    let summary = platform.import(&fixture("account-export")).await.expect("the account export imports");
    assert_eq!(summary.chat_ids, vec![43, 42, 777, 888]);
    assert_eq!(summary.messages, 4);
    let chats = platform
        .storage
        .clone()
        .list_chats(ListChatsRequest { consistency_token: summary.consistency_token.clone() })
        .await
        .expect("ListChats")
        .into_inner()
        .chats;
    let mut listed: Vec<(i64, Option<String>, String, u64, bool)> =
        chats.iter().map(|chat| (chat.chat_id, chat.name.clone(), chat.chat_type.clone(), chat.message_count, chat.left)).collect();
    listed.sort();
    assert_eq!(
        listed,
        vec![
            (42, None, "saved_messages".to_owned(), 1, false),
            (43, Some("Борис".to_owned()), "personal_chat".to_owned(), 2, false),
            (777, Some("HelperBot".to_owned()), "bot_chat".to_owned(), 0, false),
            (888, Some("Old Channel".to_owned()), "public_channel".to_owned(), 1, true),
        ]
    );
    let saved = platform.all_messages(42, None).await;
    let media = saved[0].media.as_ref().expect("the saved file");
    assert_eq!(media.path.as_deref(), Some("chats/chat_2/files/Q3 plan (1).pdf"));
    assert_eq!(media.file_name.as_deref(), Some("Q3 plan.pdf"));

    let stats = platform
        .users
        .clone()
        .author_stats(chatvault_proto::users::v1::AuthorStatsRequest { author_id: "user42".into(), consistency_token: summary.consistency_token })
        .await
        .expect("AuthorStats")
        .into_inner();
    assert_eq!(stats.total_messages, 3, "one message in each of three chats");
    let mut chat_ids: Vec<i64> = stats.chats.iter().map(|chat| chat.chat_id).collect();
    chat_ids.sort();
    assert_eq!(chat_ids, vec![42, 43, 888]);
}
