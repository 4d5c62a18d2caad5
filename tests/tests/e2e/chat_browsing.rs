//! Browsing a chat end to end (ingest → Kafka → storage → queries): pages forward from
//! `after_message_id` and backward from `before_message_id` give exactly what page-token
//! paging gives, with `has_older` / `has_newer` telling where more lie; search answers mark
//! their matches; messages are counted per UTC month; chat listings carry the newest
//! message's text and the import time.

use std::collections::BTreeMap;
use std::path::Path;

use chatvault_proto::common::v1::ConsistencyToken;
use chatvault_proto::storage::v1::{CountMessagesByMonthRequest, GetMessagesRequest, GetMessagesResponse, ListChatsRequest, StoredMessage};
use chrono::{DateTime, TimeZone, Utc};
use tonic::Code;

use crate::helpers::{fixture, TestPlatform};

const SAMPLE_CHAT_ID: i64 = 1_234_567_890;
/// The generated chat browsed here.
const WALK_CHAT_ID: i64 = 880_001;
/// Messages of the generated chat (its first has a migrated negative id, one has no date).
const WALK_MESSAGES: usize = 237;
const START: char = '\u{1}';
const STOP: char = '\u{2}';

/// A generated message of the walk chat.
struct Generated {
    id: i64,
    date: Option<DateTime<Utc>>,
    author: (&'static str, &'static str),
    text: String,
}

/// The messages of the generated chat: ids with gaps, dates across several months (two on
/// either side of a month's end in UTC), three authors, the word `deploy` in every tenth
/// message and in one holding U+0000, and a newest message longer than a chat preview.
fn generated_messages() -> Vec<Generated> {
    let authors = [("user1", "Ann"), ("user2", "Борис"), ("user3", "Cleo")];
    let start = Utc.with_ymd_and_hms(2025, 10, 20, 0, 0, 0).single().expect("valid date");
    (0..WALK_MESSAGES)
        .map(|index| {
            let step = i64::try_from(index).expect("small index");
            let id = if index == 0 { -999_999_000 } else { step * 3 + step % 2 };
            let date = match index {
                50 => None,
                100 => Utc.with_ymd_and_hms(2025, 11, 30, 23, 59, 59).single(),
                101 => Utc.with_ymd_and_hms(2025, 12, 1, 0, 0, 0).single(),
                _ => Some(start + chrono::Duration::hours(13 * step) + chrono::Duration::minutes(step)),
            };
            let text = if index == WALK_MESSAGES - 1 {
                format!("Последнее {}", "сообщение ".repeat(30))
            } else if index == 77 {
                "zebra\0quokka deploy".to_owned()
            } else if index == 50 {
                String::new()
            } else if index % 10 == 0 {
                format!("deploy step {id} сегодня")
            } else {
                format!("message {id} of the walk")
            };
            Generated { id, date, author: authors[index % authors.len()], text }
        })
        .collect()
}

/// Writes the generated chat as a Telegram export into `folder`; returns its path.
fn write_walk_export(folder: &Path) -> std::path::PathBuf {
    let messages: Vec<serde_json::Value> = generated_messages()
        .into_iter()
        .map(|message| match message.date {
            None => serde_json::json!({ "id": message.id, "type": "unsupported" }),
            Some(date) => serde_json::json!({
                "id": message.id,
                "type": "message",
                "date": date.format("%Y-%m-%dT%H:%M:%S").to_string(),
                "date_unixtime": date.timestamp().to_string(),
                "from": message.author.1,
                "from_id": message.author.0,
                "text": message.text,
                "text_entities": [{ "type": "plain", "text": message.text }],
            }),
        })
        .collect();
    let export = serde_json::json!({ "name": "Walk", "type": "private_group", "id": WALK_CHAT_ID, "messages": messages });
    let path = folder.join("result.json");
    std::fs::write(&path, serde_json::to_vec_pretty(&export).expect("JSON")).expect("write export");
    path
}

/// Imports the generated chat; returns the token that makes queries see it.
async fn import_walk_chat(platform: &TestPlatform) -> Option<ConsistencyToken> {
    let folder = tempfile::tempdir().expect("temp dir");
    let summary = platform.import(&write_walk_export(folder.path())).await.expect("the generated export imports");
    assert_eq!(summary.chat_ids, vec![WALK_CHAT_ID]);
    summary.consistency_token
}

async fn get_page(platform: &TestPlatform, request: GetMessagesRequest) -> GetMessagesResponse {
    platform.storage.clone().get_messages(request).await.expect("GetMessages succeeds").into_inner()
}

fn ids_of(messages: &[StoredMessage]) -> Vec<i64> {
    messages.iter().map(|message| message.message_id).collect()
}

/// A page read forward or backward, with what the answer said about its neighbours.
struct Walked {
    ids: Vec<i64>,
    messages: Vec<StoredMessage>,
    has_older: bool,
    has_newer: bool,
}

/// Reads the chat page by page from the oldest end with `after_message_id`, starting from
/// `i64::MIN`, until an answer says nothing newer is left.
async fn walk_forward(platform: &TestPlatform, template: &GetMessagesRequest) -> Vec<Walked> {
    let mut pages = Vec::new();
    let mut after = i64::MIN;
    loop {
        let page = get_page(platform, GetMessagesRequest { after_message_id: Some(after), ..template.clone() }).await;
        assert!(page.next_page_token.is_empty(), "id cursors answer without page tokens");
        let ids = ids_of(&page.messages);
        assert!(ids.windows(2).all(|pair| pair[0] < pair[1]), "a page comes in id order: {ids:?}");
        let has_newer = page.has_newer;
        after = *ids.last().expect("a page before the end holds messages");
        pages.push(Walked { ids, messages: page.messages, has_older: page.has_older, has_newer });
        if !has_newer {
            return pages;
        }
        assert!(pages.len() < 1000, "the walk ends");
    }
}

/// Reads the chat page by page from the newest end with `before_message_id`, starting from
/// `i64::MAX`, until an answer says nothing older is left; pages come newest first.
async fn walk_backward(platform: &TestPlatform, template: &GetMessagesRequest) -> Vec<Walked> {
    let mut pages = Vec::new();
    let mut before = i64::MAX;
    loop {
        let page = get_page(platform, GetMessagesRequest { before_message_id: Some(before), ..template.clone() }).await;
        assert!(page.next_page_token.is_empty(), "id cursors answer without page tokens");
        let ids = ids_of(&page.messages);
        assert!(ids.windows(2).all(|pair| pair[0] < pair[1]), "a backward page comes in id order too: {ids:?}");
        let has_older = page.has_older;
        before = *ids.first().expect("a page before the start holds messages");
        pages.push(Walked { ids, messages: page.messages, has_older, has_newer: page.has_newer });
        if !has_older {
            return pages;
        }
        assert!(pages.len() < 1000, "the walk ends");
    }
}

/// Checks a walk's pages: `limit` messages each but the last, together exactly `expected`,
/// and every page told correctly whether anything lies before and after it.
fn assert_walk(pages: &[Walked], limit: usize, expected: &[i64], what: &str) {
    let chronological: Vec<&Walked> =
        if pages.first().is_some_and(|page| !page.has_newer && page.has_older) { pages.iter().rev().collect() } else { pages.iter().collect() };
    let walked: Vec<i64> = chronological.iter().flat_map(|page| page.ids.iter().copied()).collect();
    assert_eq!(walked, expected, "{what}: the pages hold exactly the chat's messages in order");
    assert_eq!(pages.len(), expected.len().div_ceil(limit), "{what}: page count");
    for (position, page) in chronological.iter().enumerate() {
        let oldest = position == 0;
        let newest = position == chronological.len() - 1;
        assert_eq!((page.has_older, page.has_newer), (!oldest, !newest), "{what}: the flags of page {position} ({:?})", page.ids);
    }
    for page in &pages[..pages.len() - 1] {
        assert_eq!(page.ids.len(), limit, "{what}: every page but the last in the direction of travel is full");
    }
}

#[tokio::test]
async fn a_chat_walked_forward_and_backward_by_message_id_matches_page_token_paging() {
    let platform = TestPlatform::start().await;
    let token = import_walk_chat(&platform).await;
    let all = platform.all_messages(WALK_CHAT_ID, token.as_ref()).await;
    let all_ids = ids_of(&all);
    let generated_ids: Vec<i64> = generated_messages().iter().map(|message| message.id).collect();
    assert_eq!(all_ids, generated_ids, "page-token paging returns every message");

    let template = GetMessagesRequest { chat_id: WALK_CHAT_ID, limit: 25, consistency_token: token.clone(), ..Default::default() };
    assert_walk(&walk_forward(&platform, &template).await, 25, &all_ids, "forward");
    assert_walk(&walk_backward(&platform, &template).await, 25, &all_ids, "backward");

    // The first page without any cursor: nothing older, a next page token as always.
    let first = get_page(&platform, template.clone()).await;
    assert_eq!(ids_of(&first.messages), all_ids[..25]);
    assert_eq!((first.has_older, first.has_newer), (false, true));
    assert_eq!(first.next_page_token, format!("m{}", all_ids[24]));
    // Page-token paging tells its neighbours too.
    let second = get_page(&platform, GetMessagesRequest { page_token: first.next_page_token.clone(), ..template.clone() }).await;
    assert_eq!(ids_of(&second.messages), all_ids[25..50]);
    assert_eq!((second.has_older, second.has_newer), (true, true));

    // A cursor need not be a message: 5 falls between 4 and 6.
    assert!(all_ids.contains(&4) && all_ids.contains(&6) && !all_ids.contains(&5));
    let after_gap = get_page(&platform, GetMessagesRequest { after_message_id: Some(5), limit: 3, ..template.clone() }).await;
    assert_eq!(ids_of(&after_gap.messages), vec![6, 10, 12]);
    assert_eq!((after_gap.has_older, after_gap.has_newer), (true, true));
    let before_gap = get_page(&platform, GetMessagesRequest { before_message_id: Some(5), limit: 3, ..template.clone() }).await;
    assert_eq!(ids_of(&before_gap.messages), vec![-999_999_000, 4]);
    assert_eq!((before_gap.has_older, before_gap.has_newer), (false, true));

    // Empty pages beyond either end say what lies on the other side of their cursor.
    let (oldest, newest) = (all_ids[0], *all_ids.last().expect("messages"));
    for (after, before) in [(Some(newest), None), (Some(i64::MAX), None), (None, Some(oldest)), (None, Some(i64::MIN))] {
        let page = get_page(&platform, GetMessagesRequest { after_message_id: after, before_message_id: before, ..template.clone() }).await;
        assert!(page.messages.is_empty(), "after {after:?} before {before:?}");
        assert_eq!((page.has_older, page.has_newer), (after.is_some(), before.is_some()), "after {after:?} before {before:?}");
    }

    // Filters hold in both directions: one author's messages, seven at a time.
    let borys: Vec<i64> = all.iter().filter(|message| message.from_id.as_deref() == Some("user2")).map(|message| message.message_id).collect();
    assert!(borys.len() > 70);
    let by_author = GetMessagesRequest { author: Some("user2".into()), limit: 7, ..template.clone() };
    assert_walk(&walk_forward(&platform, &by_author).await, 7, &borys, "forward by author");
    assert_walk(&walk_backward(&platform, &by_author).await, 7, &borys, "backward by author");
    // From the middle: the author's messages just below a cursor that is another author's.
    let cursor = all.iter().find(|message| message.from_id.as_deref() == Some("user1") && message.message_id > borys[20]).expect("a cursor");
    let below = get_page(&platform, GetMessagesRequest { before_message_id: Some(cursor.message_id), ..by_author.clone() }).await;
    let older_than_cursor: Vec<i64> = borys.iter().copied().filter(|id| *id < cursor.message_id).collect();
    let expected_below = &older_than_cursor[older_than_cursor.len() - 7..];
    assert_eq!(ids_of(&below.messages), expected_below);
    assert_eq!((below.has_older, below.has_newer), (true, true));

    // Dates hold too: the messages of December 2025 (UTC), walked backward.
    let december_start = Utc.with_ymd_and_hms(2025, 12, 1, 0, 0, 0).single().expect("date").timestamp();
    let january_start = Utc.with_ymd_and_hms(2026, 1, 1, 0, 0, 0).single().expect("date").timestamp();
    let december: Vec<i64> = all
        .iter()
        .filter(|message| message.date_unix.is_some_and(|date| (december_start..january_start).contains(&date)))
        .map(|message| message.message_id)
        .collect();
    assert!(december.len() > 20);
    let in_december = GetMessagesRequest { since_unix: Some(december_start), until_unix: Some(january_start), limit: 10, ..template.clone() };
    assert_walk(&walk_backward(&platform, &in_december).await, 10, &december, "backward within dates");
}

#[tokio::test]
async fn cursors_exclude_each_other_and_the_page_token() {
    let platform = TestPlatform::start().await;
    let token = import_walk_chat(&platform).await;
    let template = GetMessagesRequest { chat_id: WALK_CHAT_ID, consistency_token: token, ..Default::default() };
    for (page_token, after, before) in [("", Some(1), Some(2)), ("m4", Some(1), None), ("m4", None, Some(2)), ("m4", Some(i64::MIN), Some(i64::MAX))]
    {
        let request = GetMessagesRequest { page_token: page_token.into(), after_message_id: after, before_message_id: before, ..template.clone() };
        let status = platform.storage.clone().get_messages(request).await.expect_err("two cursors are refused");
        assert_eq!(status.code(), Code::InvalidArgument, "{status:?}");
        assert!(status.message().contains("exclude"), "{}", status.message());
    }
}

#[tokio::test]
async fn search_answers_mark_every_match_in_the_exact_text() {
    let platform = TestPlatform::start().await;
    let sample = platform.import(&fixture("sample-export")).await.expect("the sample imports");
    let search = |chat_id: i64, query: &str, token: Option<ConsistencyToken>| GetMessagesRequest {
        chat_id,
        text_query: Some(query.to_owned()),
        consistency_token: token,
        ..Default::default()
    };

    // The sample: "Deploy сегодня — see the plan", found in English and in Russian.
    let english = get_page(&platform, search(SAMPLE_CHAT_ID, "deploy", sample.consistency_token.clone())).await;
    assert_eq!(ids_of(&english.messages), vec![2]);
    assert_eq!(english.messages[0].text, "Deploy сегодня — see the plan");
    assert_eq!(english.messages[0].highlighted_text.as_deref(), Some("\u{1}Deploy\u{2} сегодня — see the plan"));
    let russian = get_page(&platform, search(SAMPLE_CHAT_ID, "сегодня", None)).await;
    assert_eq!(russian.messages[0].highlighted_text.as_deref(), Some("Deploy \u{1}сегодня\u{2} — see the plan"));
    let phrase = get_page(&platform, search(SAMPLE_CHAT_ID, "\"line two\" cargo", None)).await;
    assert_eq!(ids_of(&phrase.messages), vec![7]);
    // ts_headline marks every word of the query wherever it occurs, inside the phrase or not.
    assert_eq!(phrase.messages[0].highlighted_text.as_deref(), Some("@ann \u{1}line\u{2} one\n\u{1}line\u{2} \u{1}two\u{2} \u{1}cargo\u{2} test"));
    let unfiltered = get_page(&platform, GetMessagesRequest { chat_id: SAMPLE_CHAT_ID, ..Default::default() }).await;
    assert!(unfiltered.messages.iter().all(|message| message.highlighted_text.is_none()), "no query, no highlights");

    // The generated chat: every match, text kept exactly (U+0000 included), paged backward.
    let token = import_walk_chat(&platform).await;
    let all = platform.all_messages(WALK_CHAT_ID, token.as_ref()).await;
    let matching: Vec<&StoredMessage> = all.iter().filter(|message| message.text.split([' ', '\0']).any(|word| word == "deploy")).collect();
    assert_eq!(matching.len(), 24, "every tenth message (but the undated one) and the one with U+0000");
    let template = GetMessagesRequest { limit: 4, ..search(WALK_CHAT_ID, "deploy", token) };
    let pages = walk_backward(&platform, &template).await;
    assert_walk(&pages, 4, &matching.iter().map(|message| message.message_id).collect::<Vec<_>>(), "search backward");
    let highlighted: Vec<&StoredMessage> = pages.iter().flat_map(|page| page.messages.iter()).collect();
    assert_eq!(highlighted.len(), matching.len());
    for message in &highlighted {
        let marked = message.highlighted_text.as_deref().expect("a search answer is highlighted");
        let unmarked: String = marked.chars().filter(|character| *character != START && *character != STOP).collect();
        assert_eq!(unmarked, message.text, "the highlight holds the text exactly");
        assert!(marked.contains("\u{1}deploy\u{2}"), "{marked:?}");
        assert_eq!(marked.matches(START).count(), marked.matches(STOP).count());
    }
    let with_nul = highlighted.iter().find(|message| message.text.contains('\0')).expect("the message with U+0000");
    assert_eq!(with_nul.highlighted_text.as_deref(), Some("zebra\0quokka \u{1}deploy\u{2}"));
    let step = highlighted.iter().find(|message| message.message_id == 30).expect("message 30");
    assert_eq!(step.highlighted_text.as_deref(), Some("\u{1}deploy\u{2} step 30 сегодня"));
}

#[tokio::test]
async fn months_are_counted_in_utc_and_chats_list_their_newest_text_and_import_time() {
    let platform = TestPlatform::start().await;
    let import_started = Utc::now().timestamp();
    let sample = platform.import(&fixture("sample-export")).await.expect("the sample imports");
    let token = import_walk_chat(&platform).await;
    let import_finished = Utc::now().timestamp();
    let mut storage = platform.storage.clone();

    for (chat_id, chat_token) in [(WALK_CHAT_ID, token.clone()), (SAMPLE_CHAT_ID, sample.consistency_token.clone())] {
        let all = platform.all_messages(chat_id, chat_token.as_ref()).await;
        let mut expected: BTreeMap<String, u64> = BTreeMap::new();
        for date in all.iter().filter_map(|message| message.date_unix) {
            let month = DateTime::from_timestamp(date, 0).expect("valid date").format("%Y-%m").to_string();
            *expected.entry(month).or_default() += 1;
        }
        let months = storage
            .count_messages_by_month(CountMessagesByMonthRequest { chat_id, owner: None, consistency_token: chat_token })
            .await
            .expect("CountMessagesByMonth")
            .into_inner()
            .months;
        let counted: Vec<(String, u64)> = months.into_iter().map(|month| (month.month, month.message_count)).collect();
        assert_eq!(counted, expected.into_iter().collect::<Vec<_>>(), "chat {chat_id}");
    }
    let sample_months = storage
        .count_messages_by_month(CountMessagesByMonthRequest { chat_id: SAMPLE_CHAT_ID, owner: None, consistency_token: None })
        .await
        .expect("CountMessagesByMonth")
        .into_inner()
        .months;
    assert_eq!(sample_months.len(), 1);
    assert_eq!((sample_months[0].month.as_str(), sample_months[0].message_count), ("2026-11", 7), "the undated message is left out");
    let walk_months = storage
        .count_messages_by_month(CountMessagesByMonthRequest { chat_id: WALK_CHAT_ID, owner: None, consistency_token: None })
        .await
        .expect("CountMessagesByMonth")
        .into_inner()
        .months;
    let month_names: Vec<&str> = walk_months.iter().map(|month| month.month.as_str()).collect();
    assert_eq!(month_names, vec!["2025-10", "2025-11", "2025-12", "2026-01", "2026-02"]);
    assert_eq!(walk_months.iter().map(|month| month.message_count).sum::<u64>(), WALK_MESSAGES as u64 - 1);

    // Months follow the same visibility as messages.
    let mut hidden = tonic::Request::new(CountMessagesByMonthRequest { chat_id: WALK_CHAT_ID, owner: None, consistency_token: None });
    // With auth off (as here) the headers are trusted, and a caller without a role is an admin.
    hidden.metadata_mut().insert("x-chatvault-user", "mallory".parse().expect("header"));
    hidden.metadata_mut().insert("x-chatvault-role", "user".parse().expect("header"));
    assert_eq!(storage.count_messages_by_month(hidden).await.expect_err("not mallory's").code(), Code::NotFound);
    let unknown = CountMessagesByMonthRequest { chat_id: 987_654_321, owner: None, consistency_token: None };
    assert_eq!(storage.count_messages_by_month(unknown).await.expect_err("no such chat").code(), Code::NotFound);

    let chats = storage.list_chats(ListChatsRequest { consistency_token: token.clone() }).await.expect("ListChats").into_inner().chats;
    let walk_all = platform.all_messages(WALK_CHAT_ID, token.as_ref()).await;
    let newest_text = &walk_all.last().expect("messages").text;
    assert!(newest_text.chars().count() > 200);
    let walk = chats.iter().find(|chat| chat.chat_id == WALK_CHAT_ID).expect("the walk chat is listed");
    assert_eq!(walk.last_message_text, newest_text.chars().take(200).collect::<String>(), "the newest text, cut to 200 characters");
    let sample_chat = chats.iter().find(|chat| chat.chat_id == SAMPLE_CHAT_ID).expect("the sample chat is listed");
    let sample_newest = platform.all_messages(SAMPLE_CHAT_ID, None).await.pop().expect("messages");
    assert_eq!((sample_newest.message_id, sample_newest.text.as_str()), (8, ""), "the sample's newest message has no text");
    assert_eq!(sample_chat.last_message_text, sample_newest.text);
    for chat in [walk, sample_chat] {
        let imported = chat.imported_unix.expect("an imported chat has an import time");
        assert!((import_started - 1..=import_finished + 1).contains(&imported), "imported at {imported}");
    }
}
