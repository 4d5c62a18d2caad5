//! Chats: the list, a chat page that reads like the chat, its authors, and search.

use askama::Template;
use axum::extract::{Path, Query, State};
use axum::response::{Html, IntoResponse, Response};
use chatvault_proto::storage::v1::{Chat, CountMessagesByMonthRequest, GetMessagesRequest, GetMessagesResponse, ListChatsRequest};
use chatvault_proto::users::v1::TopAuthorsRequest;
use chrono::{DateTime, NaiveDate, Utc};
use serde::Deserialize;

use super::enc;
use super::layout::{render, Chrome};
use crate::clients::Caller;
use crate::render::{message_views, MessageView};
use crate::session::Signed;
use crate::{AppState, WebError};

/// Messages per chat page.
pub const PAGE_SIZE: u32 = 50;
/// Around a message opened directly: this many before it (it included) and after it.
const AROUND_BEFORE: u32 = 30;
const AROUND_AFTER: u32 = 20;

/// A chat in the list.
#[derive(Debug)]
pub struct ChatRow {
    pub href: String,
    pub name: String,
    pub chat_type: String,
    pub message_count: u64,
    pub last_message: String,
    pub last_message_date: String,
    pub imported: String,
    pub owner: String,
    pub shared_with: String,
    pub is_own: bool,
}

#[derive(Template)]
#[template(path = "chats.html")]
struct ChatsPage {
    chrome: Chrome,
    chats: Vec<ChatRow>,
}

/// `YYYY-MM-DD HH:MM` (UTC) of Unix seconds.
pub fn date_time_text(unix: Option<i64>) -> String {
    unix.and_then(|seconds| DateTime::<Utc>::from_timestamp(seconds, 0)).map(|date| date.format("%Y-%m-%d %H:%M").to_string()).unwrap_or_default()
}

/// The chat page's path: `/chats/<id>?` and the owner when the archive is not the caller's.
pub fn chat_href(chat_id: i64, owner: Option<&str>) -> String {
    match owner {
        Some(owner) => format!("/chats/{chat_id}?owner={}", enc(owner)),
        None => format!("/chats/{chat_id}?"),
    }
}

fn owner_param<'a>(chat: &'a Chat, caller: &Caller) -> Option<&'a str> {
    (chat.owner != caller.username).then_some(chat.owner.as_str())
}

async fn chats_of(state: &AppState, caller: &Caller) -> Result<Vec<Chat>, WebError> {
    Ok(state.clients.storage().list_chats(caller.request(ListChatsRequest::default())).await?.into_inner().chats)
}

/// The name of the archive of `chat_id` (of `owner`, else the caller's or the only one
/// they see), as ListChats gives it; `Chat <id>` for a chat without a name.
async fn chat_name(state: &AppState, caller: &Caller, chat_id: i64, owner: Option<&str>) -> Result<String, WebError> {
    let chats = chats_of(state, caller).await?;
    Ok(chats
        .iter()
        .find(|chat| chat.chat_id == chat_id && owner.is_none_or(|owner| owner == chat.owner))
        .and_then(|chat| chat.name.clone())
        .unwrap_or_else(|| format!("Chat {chat_id}")))
}

pub async fn list(State(state): State<AppState>, signed: Signed) -> Result<Response, WebError> {
    let chats = chats_of(&state, &signed.caller).await?;
    let rows = chats
        .iter()
        .map(|chat| ChatRow {
            href: chat_href(chat.chat_id, owner_param(chat, &signed.caller)),
            name: chat.name.clone().unwrap_or_else(|| format!("Chat {}", chat.chat_id)),
            chat_type: chat.chat_type.replace('_', " "),
            message_count: chat.message_count,
            last_message: chat.last_message_text.clone(),
            last_message_date: date_time_text(chat.last_message_unix),
            imported: date_time_text(chat.imported_unix),
            owner: chat.owner.clone(),
            shared_with: chat.shared_with.join(", "),
            is_own: chat.owner == signed.caller.username,
        })
        .collect();
    render(&ChatsPage { chrome: Chrome::of(&signed, "Chats", "chats"), chats: rows })
}

/// Which page of a chat to show (the query string of `/chats/<id>`); all absent: the newest.
#[derive(Clone, Debug, Default, Deserialize)]
pub struct ChatQuery {
    /// Whose archive, when it is not the caller's.
    pub owner: Option<String>,
    /// The page of messages just below this id.
    pub before: Option<i64>,
    /// The page of messages just above this id.
    pub after: Option<i64>,
    /// The messages around this one, which is highlighted.
    pub at: Option<i64>,
    /// `YYYY-MM-DD`: opens the chat at the first message of that day or later.
    pub date: Option<String>,
}

#[derive(Template)]
#[template(path = "chat.html")]
struct ChatPage {
    chrome: Chrome,
    chat_id: i64,
    name: String,
    owner: String,
    messages: Vec<MessageView>,
    older_href: String,
    newer_href: String,
    notice: String,
    date: String,
}

fn page_request(chat_id: i64, owner: Option<&str>, limit: u32) -> GetMessagesRequest {
    GetMessagesRequest { chat_id, limit, owner: owner.map(str::to_owned), ..Default::default() }
}

/// Reads the page the query asks for; returns (messages, has older, has newer, target).
async fn load_page(
    state: &AppState,
    caller: &Caller,
    chat_id: i64,
    query: &ChatQuery,
    notice: &mut String,
) -> Result<(GetMessagesResponse, Option<i64>), WebError> {
    let owner = query.owner.as_deref().filter(|owner| !owner.is_empty());
    let mut storage = state.clients.storage();
    let mut target = query.at;
    if let Some(date) = query.date.as_deref().filter(|date| !date.is_empty()) {
        let day = NaiveDate::parse_from_str(date, "%Y-%m-%d").map_err(|_| WebError::BadRequest(format!("{date:?} is not a date like 2024-03-01")))?;
        let since = day.and_hms_opt(0, 0, 0).map(|start| start.and_utc().timestamp());
        let first =
            storage.get_messages(caller.request(GetMessagesRequest { since_unix: since, ..page_request(chat_id, owner, 1) })).await?.into_inner();
        match first.messages.first() {
            Some(message) => target = Some(message.message_id),
            None => *notice = format!("No message on or after {date}; these are the newest."),
        }
    }
    if let Some(at) = target {
        let before = GetMessagesRequest { before_message_id: Some(at.saturating_add(1)), ..page_request(chat_id, owner, AROUND_BEFORE) };
        let after = GetMessagesRequest { after_message_id: Some(at), ..page_request(chat_id, owner, AROUND_AFTER) };
        let mut second = storage.clone();
        let (older, newer) = tokio::try_join!(storage.get_messages(caller.request(before)), second.get_messages(caller.request(after)))?;
        let (mut older, newer) = (older.into_inner(), newer.into_inner());
        if !older.messages.iter().any(|message| message.message_id == at) {
            *notice = format!("Message {at} is not in this chat; these are the messages around where it would be.");
        }
        older.messages.extend(newer.messages);
        older.has_newer = newer.has_newer;
        return Ok((older, Some(at)));
    }
    let request = match (query.after, query.before) {
        (Some(after), _) => GetMessagesRequest { after_message_id: Some(after), ..page_request(chat_id, owner, PAGE_SIZE) },
        (None, Some(before)) => GetMessagesRequest { before_message_id: Some(before), ..page_request(chat_id, owner, PAGE_SIZE) },
        (None, None) => GetMessagesRequest { before_message_id: Some(i64::MAX), ..page_request(chat_id, owner, PAGE_SIZE) },
    };
    Ok((storage.get_messages(caller.request(request)).await?.into_inner(), None))
}

pub async fn view(
    State(state): State<AppState>,
    signed: Signed,
    Path(chat_id): Path<i64>,
    Query(query): Query<ChatQuery>,
) -> Result<Response, WebError> {
    Ok(Html(chat_page(&state, &signed, chat_id, query).await?).into_response())
}

/// The HTML of a chat page: the page of messages `query` asks for, read with the caller's
/// token, with the chat's name from ListChats (what `task bench` times against the
/// GetMessages call under it).
pub async fn chat_page(state: &AppState, signed: &Signed, chat_id: i64, query: ChatQuery) -> Result<String, WebError> {
    let owner = query.owner.clone().filter(|owner| !owner.is_empty());
    let base_href = chat_href(chat_id, owner.as_deref());
    let mut notice = String::new();
    let (page, target) = load_page(state, &signed.caller, chat_id, &query, &mut notice).await?;
    let name = chat_name(state, &signed.caller, chat_id, owner.as_deref()).await?;
    let older_href = match (page.has_older, page.messages.first()) {
        (true, Some(first)) => format!("{base_href}&before={}", first.message_id),
        _ => String::new(),
    };
    let newer_href = match (page.has_newer, page.messages.last()) {
        (true, Some(last)) => format!("{base_href}&after={}", last.message_id),
        _ => String::new(),
    };
    let messages = message_views(&page.messages, target, &base_href);
    let page = ChatPage {
        chrome: Chrome::of(signed, name.clone(), "chats"),
        chat_id,
        name,
        owner: owner.unwrap_or_default(),
        messages,
        older_href,
        newer_href,
        notice,
        date: query.date.unwrap_or_default(),
    };
    page.render().map_err(|error| WebError::Internal(format!("rendering a page failed: {error}")))
}

/// One bar of the messages-per-month chart, in the SVG's user units.
#[derive(Debug)]
pub struct Bar {
    pub x: u32,
    pub y: u32,
    pub height: u32,
    pub label: String,
    pub count: u64,
}

/// A year label under the chart.
#[derive(Debug)]
pub struct YearMark {
    pub x: u32,
    pub year: String,
}

#[derive(Debug)]
pub struct AuthorRow {
    pub name: String,
    pub author_id: String,
    pub count: u64,
    pub first: String,
    pub last: String,
    /// Share of the top author's count, 0–100, for the meter.
    pub share: u64,
}

#[derive(Template)]
#[template(path = "authors.html")]
struct AuthorsPage {
    chrome: Chrome,
    name: String,
    base_href: String,
    authors: Vec<AuthorRow>,
    bars: Vec<Bar>,
    years: Vec<YearMark>,
    chart_width: u32,
    busiest: String,
    total_months: usize,
}

/// The chart's drawing height and bar pitch.
pub const CHART_HEIGHT: u32 = 160;
const BAR_PITCH: u32 = 12;

/// Lays out one bar per month from the first to the last month with messages (months
/// without any get a zero bar, so time runs evenly); returns the bars and year marks.
pub fn chart_of(months: &[(String, u64)]) -> (Vec<Bar>, Vec<YearMark>) {
    let parse = |month: &str| -> Option<(i32, u32)> {
        let (year, number) = month.split_once('-')?;
        Some((year.parse().ok()?, number.parse().ok()?))
    };
    let (Some(first), Some(last)) = (months.first().and_then(|(month, _)| parse(month)), months.last().and_then(|(month, _)| parse(month))) else {
        return (Vec::new(), Vec::new());
    };
    let counts: std::collections::HashMap<&str, u64> = months.iter().map(|(month, count)| (month.as_str(), *count)).collect();
    let highest = months.iter().map(|(_, count)| *count).max().unwrap_or(1).max(1);
    let (mut bars, mut years) = (Vec::new(), Vec::new());
    let (mut year, mut month) = first;
    let mut index = 0u32;
    while (year, month) <= last && index < 1200 {
        let label = format!("{year:04}-{month:02}");
        let count = counts.get(label.as_str()).copied().unwrap_or(0);
        let height = u32::try_from(count * u64::from(CHART_HEIGHT) / highest).unwrap_or(CHART_HEIGHT).max(u32::from(count > 0));
        if month == 1 || index == 0 {
            years.push(YearMark { x: index * BAR_PITCH, year: year.to_string() });
        }
        bars.push(Bar { x: index * BAR_PITCH, y: CHART_HEIGHT - height, height, label, count });
        index += 1;
        (year, month) = if month == 12 { (year + 1, 1) } else { (year, month + 1) };
    }
    (bars, years)
}

pub async fn authors(
    State(state): State<AppState>,
    signed: Signed,
    Path(chat_id): Path<i64>,
    Query(query): Query<ChatQuery>,
) -> Result<Response, WebError> {
    let owner = query.owner.clone().filter(|owner| !owner.is_empty());
    let caller = &signed.caller;
    let top = TopAuthorsRequest { chat_id, limit: 20, owner: owner.clone(), ..Default::default() };
    let months = CountMessagesByMonthRequest { chat_id, owner: owner.clone(), ..Default::default() };
    let (mut users, mut storage) = (state.clients.users(), state.clients.storage());
    let (top, months) = tokio::try_join!(users.top_authors(caller.request(top)), storage.count_messages_by_month(caller.request(months)))?;
    let months: Vec<(String, u64)> = months.into_inner().months.into_iter().map(|month| (month.month, month.message_count)).collect();
    let authors = top.into_inner().authors;
    let most = authors.first().map_or(1, |author| author.message_count.max(1));
    let rows = authors
        .into_iter()
        .map(|author| AuthorRow {
            name: author.name.clone().unwrap_or_else(|| author.author_id.clone()),
            share: author.message_count * 100 / most,
            author_id: author.author_id,
            count: author.message_count,
            first: date_time_text(author.first_message_unix),
            last: date_time_text(author.last_message_unix),
        })
        .collect();
    let busiest = months.iter().max_by_key(|(_, count)| *count).map(|(month, count)| format!("{month} ({count} messages)")).unwrap_or_default();
    let (bars, years) = chart_of(&months);
    let name = chat_name(&state, caller, chat_id, owner.as_deref()).await?;
    render(&AuthorsPage {
        chrome: Chrome::of(&signed, format!("Authors of {name}"), "chats"),
        name,
        base_href: chat_href(chat_id, owner.as_deref()),
        authors: rows,
        chart_width: (bars.len() as u32 * BAR_PITCH).max(BAR_PITCH),
        bars,
        years,
        busiest,
        total_months: months.len(),
    })
}

#[derive(Debug, Default, Deserialize)]
pub struct SearchQuery {
    #[serde(default)]
    q: String,
    /// One chat's id; every chat when absent or empty.
    #[serde(default)]
    chat: String,
    #[serde(default)]
    author: String,
    /// `YYYY-MM-DD`, inclusive.
    #[serde(default)]
    from: String,
    /// `YYYY-MM-DD`, inclusive.
    #[serde(default)]
    to: String,
    after: Option<i64>,
}

/// The hits of one chat.
#[derive(Debug)]
pub struct HitGroup {
    pub chat_name: String,
    pub chat_href: String,
    pub hits: Vec<MessageView>,
    /// The next page of hits in this chat, when there are more.
    pub more_href: String,
}

#[derive(Debug)]
pub struct ChatOption {
    pub value: String,
    pub name: String,
    pub selected: bool,
}

#[derive(Template)]
#[template(path = "search.html")]
struct SearchPage {
    chrome: Chrome,
    q: String,
    author: String,
    from: String,
    to: String,
    chats: Vec<ChatOption>,
    groups: Vec<HitGroup>,
    searched: bool,
    total_hits: usize,
}

/// Hits per chat when searching every chat, and per page within one chat.
const HITS_PER_CHAT: u32 = 10;
const HITS_PER_PAGE: u32 = 50;

fn day_bound(field: &str, value: &str, end_of_day: bool) -> Result<Option<i64>, WebError> {
    if value.is_empty() {
        return Ok(None);
    }
    let day =
        NaiveDate::parse_from_str(value, "%Y-%m-%d").map_err(|_| WebError::BadRequest(format!("{field} {value:?} is not a date like 2024-03-01")))?;
    let day = if end_of_day { day.succ_opt().unwrap_or(day) } else { day };
    Ok(day.and_hms_opt(0, 0, 0).map(|start| start.and_utc().timestamp()))
}

pub async fn search(State(state): State<AppState>, signed: Signed, Query(query): Query<SearchQuery>) -> Result<Response, WebError> {
    let caller = &signed.caller;
    let chats = chats_of(&state, caller).await?;
    let chat_value = |chat: &Chat| if chat.owner == caller.username { chat.chat_id.to_string() } else { format!("{}@{}", chat.chat_id, chat.owner) };
    let selected = query.chat.trim().to_owned();
    let options = chats
        .iter()
        .map(|chat| ChatOption {
            value: chat_value(chat),
            name: chat.name.clone().unwrap_or_else(|| format!("Chat {}", chat.chat_id)),
            selected: chat_value(chat) == selected,
        })
        .collect();
    let text = query.q.trim().to_owned();
    let author = query.author.trim().to_owned();
    let since = day_bound("from", query.from.trim(), false)?;
    let until = day_bound("to", query.to.trim(), true)?;
    let mut groups = Vec::new();
    let searched = !text.is_empty() || !author.is_empty();
    if searched {
        let scoped: Vec<&Chat> = chats.iter().filter(|chat| selected.is_empty() || chat_value(chat) == selected).collect();
        let limit = if selected.is_empty() { HITS_PER_CHAT } else { HITS_PER_PAGE };
        let requests = scoped.iter().map(|chat| {
            let request = GetMessagesRequest {
                chat_id: chat.chat_id,
                limit,
                owner: Some(chat.owner.clone()),
                text_query: (!text.is_empty()).then(|| text.clone()),
                author: (!author.is_empty()).then(|| author.clone()),
                since_unix: since,
                until_unix: until,
                after_message_id: if selected.is_empty() { None } else { query.after },
                ..Default::default()
            };
            let mut storage = state.clients.storage();
            let request = caller.request(request);
            async move { storage.get_messages(request).await.map(|page| page.into_inner()) }
        });
        let pages = futures::future::try_join_all(requests).await?;
        for (chat, page) in scoped.into_iter().zip(pages) {
            if page.messages.is_empty() {
                continue;
            }
            let href = chat_href(chat.chat_id, owner_param(chat, caller));
            let more_href = match (page.has_newer, page.messages.last()) {
                (true, Some(last)) => format!(
                    "/search?q={}&author={}&from={}&to={}&chat={}&after={}",
                    enc(&text),
                    enc(&author),
                    enc(query.from.trim()),
                    enc(query.to.trim()),
                    enc(&chat_value(chat)),
                    last.message_id
                ),
                _ => String::new(),
            };
            groups.push(HitGroup {
                chat_name: chat.name.clone().unwrap_or_else(|| format!("Chat {}", chat.chat_id)),
                hits: message_views(&page.messages, None, &href),
                chat_href: href,
                more_href,
            });
        }
    }
    let total_hits = groups.iter().map(|group| group.hits.len()).sum();
    render(&SearchPage {
        chrome: Chrome::of(&signed, if text.is_empty() { "Search".to_owned() } else { format!("Search: {text}") }, "search"),
        q: text,
        author,
        from: query.from,
        to: query.to,
        chats: options,
        groups,
        searched,
        total_hits,
    })
}

#[cfg(test)]
mod tests {
    use super::{chart_of, CHART_HEIGHT};

    #[test]
    fn the_chart_has_one_bar_per_month_with_gaps_as_zero_bars() {
        let (bars, years) = chart_of(&[("2023-11".to_owned(), 10), ("2024-02".to_owned(), 5)]);
        let summary: Vec<(&str, u64, u32)> = bars.iter().map(|bar| (bar.label.as_str(), bar.count, bar.height)).collect();
        assert_eq!(summary, vec![("2023-11", 10, CHART_HEIGHT), ("2023-12", 0, 0), ("2024-01", 0, 0), ("2024-02", 5, CHART_HEIGHT / 2)]);
        assert_eq!(years.iter().map(|mark| mark.year.as_str()).collect::<Vec<_>>(), vec!["2023", "2024"]);
        assert!(chart_of(&[]).0.is_empty());
    }
}
