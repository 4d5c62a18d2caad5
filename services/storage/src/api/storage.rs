//! `chatvault.storage.v1.StorageService`: chats and messages, with read-your-writes through
//! consistency tokens, and the sharing of archives.
//!
//! Every query answers from the archives the caller sees ([`crate::chat_access`]). Sharing
//! is a command: it publishes `ChatShared` / `ChatShareRevoked` on `chat.events` (key: the
//! chat id, actor: the caller), which this service and users project into their own grants.

use chatvault_common::text::{self, PgText};
use std::time::Duration;

use chatvault_common::consistency::{AppliedPositions, Positions};
use chatvault_common::topics::CHAT_EVENTS;
use chatvault_proto::chat::v1::{chat_event, ChatEvent, ChatShareRevoked, ChatShared, Media, TextEntity};
use chatvault_proto::common::v1::ConsistencyToken;
use chatvault_proto::storage::v1::storage_service_server::StorageService;
use chatvault_proto::storage::v1::{
    Chat, CountMessagesByMonthRequest, CountMessagesByMonthResponse, GetMessagesRequest, GetMessagesResponse, GetThreadRequest, GetThreadResponse,
    ListChatsRequest, ListChatsResponse, MonthCount, RevokeChatShareRequest, RevokeChatShareResponse, ShareChatRequest, ShareChatResponse,
    StoredMessage,
};
use chrono::{DateTime, Utc};
use deadpool_postgres::Pool;
use prost::Message as _;
use rdkafka::producer::FutureProducer;
use serde_json::Value;
use tonic::{Request, Response, Status};

use crate::chat_access::{checked_grantee, choose_archive, Viewer};
use crate::db::sql;
use crate::Error;

/// The event type header of `ChatShared`.
const CHAT_SHARED_TYPE: &str = "chatvault.chat.v1.ChatShared";
/// The event type header of `ChatShareRevoked`.
const CHAT_SHARE_REVOKED_TYPE: &str = "chatvault.chat.v1.ChatShareRevoked";

const DEFAULT_PAGE_SIZE: u32 = 100;
const MAX_PAGE_SIZE: u32 = 1000;
/// How many characters of its newest message's text a chat's listing shows.
const LAST_MESSAGE_PREVIEW_CHARS: usize = 200;

/// The storage gRPC API.
#[derive(Clone)]
pub struct StorageApi {
    pool: Pool,
    applied: AppliedPositions,
    consistency_wait: Duration,
    /// Publishes the sharing commands' events.
    producer: FutureProducer,
    chat_topic: String,
}

impl std::fmt::Debug for StorageApi {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        formatter.debug_struct("StorageApi").field("chat_topic", &self.chat_topic).finish_non_exhaustive()
    }
}

/// What a sharing command changes.
enum GrantChange {
    Share,
    Revoke,
}

/// The fields `ShareChat` and `RevokeChatShare` have in common.
struct GrantRequest<'a> {
    chat_id: i64,
    requested_owner: Option<&'a str>,
    grantee: &'a str,
    consistency_token: Option<&'a ConsistencyToken>,
}

impl StorageApi {
    /// Returns the API; sharing commands publish to `kafka`'s `chat.events`.
    pub fn new(
        pool: Pool,
        kafka: &chatvault_common::config::KafkaConfig,
        applied: AppliedPositions,
        consistency_wait: Duration,
    ) -> Result<Self, Error> {
        let producer = chatvault_common::kafka::idempotent_producer(kafka, "chatvault-storage-chats")?;
        Ok(Self { pool, applied, consistency_wait, producer, chat_topic: kafka.topic(CHAT_EVENTS) })
    }

    /// Waits until the events behind `token` are applied, or fails with DEADLINE_EXCEEDED.
    async fn wait_for_token(&self, token: Option<&ConsistencyToken>) -> Result<(), Error> {
        let Some(token) = token else { return Ok(()) };
        let required = Positions::from_token(&token.value)?;
        self.applied.wait_for(&required, self.consistency_wait).await.map_err(|error| match error {
            chatvault_common::Error::Timeout(message) => Error::DeadlineExceeded(message),
            other => Error::Common(other),
        })
    }

    /// Returns the owners of the archives of `chat_id` the viewer sees.
    async fn visible_owners(&self, client: &deadpool_postgres::Object, viewer: &Viewer, chat_id: i64) -> Result<Vec<String>, Error> {
        let rows = client.query(sql::VISIBLE_CHAT_OWNERS, &[&viewer.is_admin, &PgText::from(viewer.username.as_str()), &chat_id]).await?;
        Ok(rows.iter().map(|row| text::text(row, 0)).collect())
    }

    /// Returns the owner of the archive of `chat_id` a query means (see
    /// [`choose_archive`]); NOT_FOUND when the viewer sees none.
    async fn archive_owner(
        &self,
        client: &deadpool_postgres::Object,
        viewer: &Viewer,
        chat_id: i64,
        requested_owner: Option<&str>,
    ) -> Result<String, Error> {
        let visible = self.visible_owners(client, viewer, chat_id).await?;
        choose_archive(chat_id, requested_owner, &visible, viewer)
    }

    async fn list_chats(&self, viewer: &Viewer, request: ListChatsRequest) -> Result<ListChatsResponse, Error> {
        self.wait_for_token(request.consistency_token.as_ref()).await?;
        let client = self.pool.get().await?;
        let rows = client.query(sql::LIST_CHATS, &[&viewer.is_admin, &PgText::from(viewer.username.as_str())]).await?;
        let chats = rows
            .iter()
            .map(|row| Chat {
                chat_id: row.get(0),
                name: text::optional_text(row, 1),
                chat_type: row.get(2),
                message_count: u64::try_from(row.get::<_, i64>(3)).unwrap_or(0),
                first_message_unix: row.get::<_, Option<DateTime<Utc>>>(4).map(|date| date.timestamp()),
                last_message_unix: row.get::<_, Option<DateTime<Utc>>>(5).map(|date| date.timestamp()),
                left: row.get(6),
                owner: text::text(row, 7),
                shared_with: row.get::<_, Vec<PgText>>(8).into_iter().map(PgText::into_string).collect(),
                last_message_text: text::optional_text(row, 9).map(|text| preview_of(&text)).unwrap_or_default(),
                imported_unix: row.get::<_, Option<DateTime<Utc>>>(10).map(|date| date.timestamp()),
            })
            .collect();
        Ok(ListChatsResponse { chats })
    }

    async fn get_messages(&self, viewer: &Viewer, request: GetMessagesRequest) -> Result<GetMessagesResponse, Error> {
        let page_size = match request.limit {
            0 => DEFAULT_PAGE_SIZE,
            limit if limit > MAX_PAGE_SIZE => return Err(Error::InvalidArgument(format!("limit {limit} is above the maximum of {MAX_PAGE_SIZE}"))),
            limit => limit,
        };
        let cursor = PageCursor::of_request(&request.page_token, request.after_message_id, request.before_message_id)?;
        let since = unix_to_timestamp("since_unix", request.since_unix)?;
        let until = unix_to_timestamp("until_unix", request.until_unix)?;
        self.wait_for_token(request.consistency_token.as_ref()).await?;
        let client = self.pool.get().await?;
        let owner = self.archive_owner(&client, viewer, request.chat_id, request.owner.as_deref()).await?;
        let owner_text = PgText::from(owner.as_str());
        let author = request.author.as_deref().map(str::trim).filter(|author| !author.is_empty()).map(PgText::from);
        let text_query = request.text_query.as_deref().map(str::trim).filter(|query| !query.is_empty()).map(PgText::from);
        let filters =
            MessageFilters { owner: &owner_text, chat_id: request.chat_id, since, until, author: author.as_ref(), text_query: text_query.as_ref() };
        // One row more than the page tells whether more follow in the direction of travel.
        let fetch = i64::from(page_size) + 1;
        let (statement, bound) = match cursor {
            PageCursor::PageToken(after) => (sql::MESSAGES_AFTER, after.unwrap_or(i64::MIN)),
            PageCursor::After(after) => (sql::MESSAGES_AFTER, after),
            PageCursor::Before(before) => (sql::MESSAGES_BEFORE, before),
        };
        let rows = client.query(statement, &filters.parameters_with(&bound, Some(&fetch))).await?;
        let more_in_direction = rows.len() > page_size as usize;
        let mut messages: Vec<StoredMessage> = rows.iter().take(page_size as usize).map(stored_message_of_row).collect();
        if matches!(cursor, PageCursor::Before(_)) {
            messages.reverse();
        }
        let page_ids = messages.first().zip(messages.last()).map(|(first, last)| (first.message_id, last.message_id));
        let other_side_exists = match cursor.other_direction_bound(page_ids) {
            OtherDirection::Known(exists) => exists,
            OtherDirection::AtOrBelow(bound) => {
                client.query_opt(sql::NEAREST_MESSAGE_AT_OR_BELOW, &filters.parameters_with(&bound, None)).await?.is_some()
            }
            OtherDirection::AtOrAbove(bound) => {
                client.query_opt(sql::NEAREST_MESSAGE_AT_OR_ABOVE, &filters.parameters_with(&bound, None)).await?.is_some()
            }
        };
        let (has_older, has_newer) =
            if cursor.is_backward() { (more_in_direction, other_side_exists) } else { (other_side_exists, more_in_direction) };
        // Page tokens go on as they always did; the id cursors need none.
        let next_page_token = match (cursor, more_in_direction, messages.last()) {
            (PageCursor::PageToken(_), true, Some(last)) => format_page_token(last.message_id),
            _ => String::new(),
        };
        Ok(GetMessagesResponse { messages, next_page_token, has_older, has_newer })
    }

    async fn count_messages_by_month(&self, viewer: &Viewer, request: CountMessagesByMonthRequest) -> Result<CountMessagesByMonthResponse, Error> {
        self.wait_for_token(request.consistency_token.as_ref()).await?;
        let client = self.pool.get().await?;
        let owner = self.archive_owner(&client, viewer, request.chat_id, request.owner.as_deref()).await?;
        let rows = client.query(sql::COUNT_MESSAGES_BY_MONTH, &[&PgText::from(owner.as_str()), &request.chat_id]).await?;
        let months = rows
            .iter()
            .map(|row| MonthCount { month: month_label(row.get(0), row.get(1)), message_count: u64::try_from(row.get::<_, i64>(2)).unwrap_or(0) })
            .collect();
        Ok(CountMessagesByMonthResponse { months })
    }

    async fn get_thread(&self, viewer: &Viewer, request: GetThreadRequest) -> Result<GetThreadResponse, Error> {
        self.wait_for_token(request.consistency_token.as_ref()).await?;
        let client = self.pool.get().await?;
        let owner = self.archive_owner(&client, viewer, request.chat_id, request.owner.as_deref()).await?;
        let rows = client.query(sql::GET_THREAD, &[&request.chat_id, &request.message_id, &PgText::from(owner.as_str())]).await?;
        if rows.is_empty() {
            return Err(Error::NotFound(format!("chat {} holds no message {}", request.chat_id, request.message_id)));
        }
        Ok(GetThreadResponse { messages: rows.iter().map(stored_message_of_row).collect() })
    }

    /// Shares or unshares an archive: checks that the viewer sees it and may share it,
    /// publishes the event unless the grant is already as asked, and waits (bounded) until
    /// this service applied it, so the caller's next command sees it.
    async fn change_grant(
        &self,
        viewer: &Viewer,
        change: GrantChange,
        request: GrantRequest<'_>,
    ) -> Result<(String, String, Option<Positions>), Error> {
        let GrantRequest { chat_id, requested_owner, grantee, consistency_token } = request;
        self.wait_for_token(consistency_token).await?;
        let client = self.pool.get().await?;
        let owner = self.archive_owner(&client, viewer, chat_id, requested_owner).await?;
        if !viewer.may_share(&owner) {
            return Err(Error::PermissionDenied(format!("only the owner of chat {chat_id} ({owner}) or an admin may share it")));
        }
        let grantee = checked_grantee(grantee, &owner).map_err(Error::InvalidArgument)?;
        // Grants name the account as it registered (MALLORY shares with mallory); a share to a
        // name nobody holds would go to whoever registers it later.
        let grantee = match client.query_opt(sql::KNOWN_ACCOUNT, &[&PgText::from(grantee.as_str())]).await? {
            Some(row) => chatvault_common::text::text(&row, 0),
            None if matches!(change, GrantChange::Share) => {
                return Err(Error::NotFound(format!("no account is named {grantee}; a chat is shared with an existing account only")));
            }
            None => grantee,
        };
        let granted =
            client.query_opt(sql::GRANT_EXISTS, &[&PgText::from(owner.as_str()), &chat_id, &PgText::from(grantee.as_str())]).await?.is_some();
        drop(client);
        let now = Utc::now().timestamp();
        let (event_type, event) = match change {
            GrantChange::Share if granted => return Ok((owner, grantee, None)),
            GrantChange::Revoke if !granted => return Ok((owner, grantee, None)),
            GrantChange::Share => (
                CHAT_SHARED_TYPE,
                chat_event::Event::ChatShared(ChatShared {
                    chat_id,
                    owner: owner.clone(),
                    grantee: grantee.clone(),
                    actor: viewer.username.clone(),
                    shared_at_unix: now,
                }),
            ),
            GrantChange::Revoke => (
                CHAT_SHARE_REVOKED_TYPE,
                chat_event::Event::ChatShareRevoked(ChatShareRevoked {
                    chat_id,
                    owner: owner.clone(),
                    grantee: grantee.clone(),
                    actor: viewer.username.clone(),
                    revoked_at_unix: now,
                }),
            ),
        };
        let payload = ChatEvent { event: Some(event) }.encode_to_vec();
        // Keyed by the chat id like every event of the chat, so a grant keeps its order
        // with the imports of the chat.
        let positions = chatvault_file_store::events::publish_event(
            &self.producer,
            &self.chat_topic,
            &chat_id.to_string(),
            event_type,
            crate::SERVICE_NAME,
            payload,
        )
        .await
        .map_err(|error| Error::Unavailable(format!("the event log (Kafka) is not reachable: {error}")))?;
        tracing::info!(chat_id, %owner, %grantee, event_type, "chat grant changed");
        // The grant is published: a slow projection delays it but does not undo it.
        if let Err(error) = self.applied.wait_for(&positions, self.consistency_wait).await {
            tracing::warn!(%error, chat_id, "the chats projection did not apply the grant in time");
        }
        Ok((owner, grantee, Some(positions)))
    }

    async fn share_chat(&self, viewer: &Viewer, request: ShareChatRequest) -> Result<ShareChatResponse, Error> {
        let grant = GrantRequest {
            chat_id: request.chat_id,
            requested_owner: request.owner.as_deref(),
            grantee: &request.grantee,
            consistency_token: request.consistency_token.as_ref(),
        };
        let (owner, grantee, positions) = self.change_grant(viewer, GrantChange::Share, grant).await?;
        Ok(ShareChatResponse {
            chat_id: request.chat_id,
            owner,
            grantee,
            changed: positions.is_some(),
            consistency_token: positions.map(|positions| ConsistencyToken { value: positions.to_token() }),
        })
    }

    async fn revoke_chat_share(&self, viewer: &Viewer, request: RevokeChatShareRequest) -> Result<RevokeChatShareResponse, Error> {
        let grant = GrantRequest {
            chat_id: request.chat_id,
            requested_owner: request.owner.as_deref(),
            grantee: &request.grantee,
            consistency_token: request.consistency_token.as_ref(),
        };
        let (owner, grantee, positions) = self.change_grant(viewer, GrantChange::Revoke, grant).await?;
        Ok(RevokeChatShareResponse {
            chat_id: request.chat_id,
            owner,
            grantee,
            changed: positions.is_some(),
            consistency_token: positions.map(|positions| ConsistencyToken { value: positions.to_token() }),
        })
    }
}

fn stored_message_of_row(row: &tokio_postgres::Row) -> StoredMessage {
    StoredMessage {
        chat_id: row.get(0),
        message_id: row.get(1),
        kind: i32::from(row.get::<_, i16>(2)),
        date_unix: row.get::<_, Option<DateTime<Utc>>>(3).map(|date| date.timestamp()),
        edited_unix: row.get::<_, Option<DateTime<Utc>>>(4).map(|date| date.timestamp()),
        from_name: text::optional_text(row, 5),
        from_id: row.get(6),
        reply_to_message_id: row.get(7),
        text: text::text(row, 8),
        entities: row.get::<_, Option<Value>>(9).map(|value| entities_of_json(&text::decode_json(value))).unwrap_or_default(),
        media: row.get::<_, Option<Value>>(10).map(|value| media_of_json(&text::decode_json(value))),
        action: row.get(11),
        actor_name: text::optional_text(row, 12),
        forwarded_from: text::optional_text(row, 13),
        via_bot: row.get(14),
        owner: text::text(row, 15),
        details_json: text::optional_text(row, 16).and_then(|raw| details_of_raw_json(&raw)),
        highlighted_text: text::optional_text(row, 17),
    }
}

/// The export fields that describe a poll, location, venue, contact or sticker, from the
/// message's own JSON (see telegram-export-format.md); `None` when it has none of them or
/// is not a JSON object (an HTML export's message).
fn details_of_raw_json(raw: &str) -> Option<String> {
    const DETAIL_FIELDS: &[&str] = &["poll", "location_information", "place_name", "address", "contact_information", "sticker_emoji"];
    let Ok(Value::Object(message)) = serde_json::from_str::<Value>(raw) else {
        return None;
    };
    let details: serde_json::Map<String, Value> =
        DETAIL_FIELDS.iter().filter_map(|field| message.get(*field).map(|value| ((*field).to_owned(), value.clone()))).collect();
    (!details.is_empty()).then(|| Value::Object(details).to_string())
}

fn entities_of_json(value: &Value) -> Vec<TextEntity> {
    value
        .as_array()
        .map(|entities| {
            entities
                .iter()
                .map(|entity| TextEntity {
                    kind: entity["kind"].as_str().unwrap_or_default().to_owned(),
                    offset: entity["offset"].as_u64().and_then(|offset| u32::try_from(offset).ok()).unwrap_or(0),
                    length: entity["length"].as_u64().and_then(|length| u32::try_from(length).ok()).unwrap_or(0),
                    extra_json: entity.get("extra").map(Value::to_string).unwrap_or_default(),
                })
                .collect()
        })
        .unwrap_or_default()
}

fn media_of_json(value: &Value) -> Media {
    let text = |key: &str| value[key].as_str().map(str::to_owned);
    let number = |key: &str| value[key].as_u64();
    let small_number = |key: &str| number(key).and_then(|number| u32::try_from(number).ok());
    Media {
        kind: text("kind").unwrap_or_default(),
        path: text("path"),
        not_included_reason: text("not_included_reason"),
        file_name: text("file_name"),
        file_size: number("file_size"),
        mime_type: text("mime_type"),
        width: small_number("width"),
        height: small_number("height"),
        duration_seconds: small_number("duration_seconds"),
        thumbnail_path: text("thumbnail_path"),
        file_id: text("file_id"),
    }
}

/// Page tokens are `m<last message id>`; the empty token (`None`) starts before every
/// message (migrated histories have ids down to about -10^9).
fn parse_page_token(token: &str) -> Result<Option<i64>, Error> {
    if token.is_empty() {
        return Ok(None);
    }
    token
        .strip_prefix('m')
        .and_then(|id| id.parse().ok())
        .map(Some)
        .ok_or_else(|| Error::InvalidArgument(format!("page_token {token:?} is not one this service returned")))
}

fn format_page_token(last_message_id: i64) -> String {
    format!("m{last_message_id}")
}

/// Where a page of messages starts and which way it reads.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum PageCursor {
    /// Forward from a page token's message (`None`: from the first message); the answer
    /// carries the next page token.
    PageToken(Option<i64>),
    /// Forward: the messages with ids just above this one.
    After(i64),
    /// Backward: the messages with ids just below this one.
    Before(i64),
}

/// How to learn whether messages lie on the side of a page it was not read towards.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum OtherDirection {
    /// Known without a query.
    Known(bool),
    /// Whether a message has an id of at most this.
    AtOrBelow(i64),
    /// Whether a message has an id of at least this.
    AtOrAbove(i64),
}

impl PageCursor {
    /// Reads the cursor of a request: at most one of a page token and the two id cursors.
    fn of_request(page_token: &str, after_message_id: Option<i64>, before_message_id: Option<i64>) -> Result<Self, Error> {
        match (page_token.is_empty(), after_message_id, before_message_id) {
            (_, Some(_), Some(_)) => {
                Err(Error::InvalidArgument("after_message_id and before_message_id exclude each other; send one of them".to_owned()))
            }
            (false, Some(_), None) | (false, None, Some(_)) => Err(Error::InvalidArgument(
                "page_token excludes after_message_id and before_message_id; send a page token or a message id".to_owned(),
            )),
            (_, Some(after), None) => Ok(PageCursor::After(after)),
            (_, None, Some(before)) => Ok(PageCursor::Before(before)),
            (_, None, None) => Ok(PageCursor::PageToken(parse_page_token(page_token)?)),
        }
    }

    fn is_backward(self) -> bool {
        matches!(self, PageCursor::Before(_))
    }

    /// What to ask about the side of the page opposite to the direction of travel: older
    /// messages than the page's first (`page_ids`: its first and last id) when reading
    /// forward, newer than its last when reading backward. An empty page is taken from its
    /// cursor: nothing matched beyond it, so the question is about the cursor itself.
    fn other_direction_bound(self, page_ids: Option<(i64, i64)>) -> OtherDirection {
        let first_id = page_ids.map(|(first, _)| first);
        let last_id = page_ids.map(|(_, last)| last);
        let bound = match self {
            // From the very first message nothing matching lies before the page.
            PageCursor::PageToken(None) => return OtherDirection::Known(false),
            PageCursor::PageToken(Some(after)) | PageCursor::After(after) => match first_id {
                Some(first) => first.checked_sub(1).map(OtherDirection::AtOrBelow),
                None => Some(OtherDirection::AtOrBelow(after)),
            },
            PageCursor::Before(before) => match last_id {
                Some(last) => last.checked_add(1).map(OtherDirection::AtOrAbove),
                None => Some(OtherDirection::AtOrAbove(before)),
            },
        };
        // A page starting at i64::MIN (or ending at i64::MAX) has nothing beyond it.
        bound.unwrap_or(OtherDirection::Known(false))
    }
}

/// The filters of a GetMessages request as the parameters `$1`..`$6` of the message
/// statements ([`sql::MESSAGES_AFTER`] and its siblings).
struct MessageFilters<'a> {
    owner: &'a PgText<'a>,
    chat_id: i64,
    since: Option<DateTime<Utc>>,
    until: Option<DateTime<Utc>>,
    author: Option<&'a PgText<'a>>,
    text_query: Option<&'a PgText<'a>>,
}

impl<'a> MessageFilters<'a> {
    /// The parameters with the id bound `$7` and, for a page, its row count `$8`.
    fn parameters_with(&'a self, bound: &'a i64, fetch: Option<&'a i64>) -> Vec<&'a (dyn tokio_postgres::types::ToSql + Sync)> {
        let mut parameters: Vec<&'a (dyn tokio_postgres::types::ToSql + Sync)> =
            vec![self.owner, &self.chat_id, &self.since, &self.until, &self.author, &self.text_query, bound];
        if let Some(fetch) = fetch {
            parameters.push(fetch);
        }
        parameters
    }
}

/// The first [`LAST_MESSAGE_PREVIEW_CHARS`] characters of `text` (Unicode scalar values, so
/// never inside one).
fn preview_of(text: &str) -> String {
    match text.char_indices().nth(LAST_MESSAGE_PREVIEW_CHARS) {
        Some((end, _)) => text[..end].to_owned(),
        None => text.to_owned(),
    }
}

/// `YYYY-MM` of a calendar month.
fn month_label(year: i32, month: i32) -> String {
    format!("{year:04}-{month:02}")
}

fn unix_to_timestamp(field: &str, seconds: Option<i64>) -> Result<Option<DateTime<Utc>>, Error> {
    seconds
        .map(|seconds| {
            DateTime::from_timestamp(seconds, 0).ok_or_else(|| Error::InvalidArgument(format!("{field} {seconds} is not a valid Unix time")))
        })
        .transpose()
}

#[tonic::async_trait]
impl StorageService for StorageApi {
    #[tracing::instrument(skip_all)]
    async fn list_chats(&self, request: Request<ListChatsRequest>) -> Result<Response<ListChatsResponse>, Status> {
        let viewer = Viewer::of_metadata(request.metadata());
        Ok(Response::new(StorageApi::list_chats(self, &viewer, request.into_inner()).await?))
    }

    #[tracing::instrument(skip_all, fields(chat_id = request.get_ref().chat_id))]
    async fn get_messages(&self, request: Request<GetMessagesRequest>) -> Result<Response<GetMessagesResponse>, Status> {
        let viewer = Viewer::of_metadata(request.metadata());
        Ok(Response::new(StorageApi::get_messages(self, &viewer, request.into_inner()).await?))
    }

    #[tracing::instrument(skip_all, fields(chat_id = request.get_ref().chat_id))]
    async fn count_messages_by_month(&self, request: Request<CountMessagesByMonthRequest>) -> Result<Response<CountMessagesByMonthResponse>, Status> {
        let viewer = Viewer::of_metadata(request.metadata());
        Ok(Response::new(StorageApi::count_messages_by_month(self, &viewer, request.into_inner()).await?))
    }

    #[tracing::instrument(skip_all, fields(chat_id = request.get_ref().chat_id, message_id = request.get_ref().message_id))]
    async fn get_thread(&self, request: Request<GetThreadRequest>) -> Result<Response<GetThreadResponse>, Status> {
        let viewer = Viewer::of_metadata(request.metadata());
        Ok(Response::new(StorageApi::get_thread(self, &viewer, request.into_inner()).await?))
    }

    #[tracing::instrument(skip_all, fields(chat_id = request.get_ref().chat_id))]
    async fn share_chat(&self, request: Request<ShareChatRequest>) -> Result<Response<ShareChatResponse>, Status> {
        let viewer = Viewer::of_metadata(request.metadata());
        Ok(Response::new(StorageApi::share_chat(self, &viewer, request.into_inner()).await?))
    }

    #[tracing::instrument(skip_all, fields(chat_id = request.get_ref().chat_id))]
    async fn revoke_chat_share(&self, request: Request<RevokeChatShareRequest>) -> Result<Response<RevokeChatShareResponse>, Status> {
        let viewer = Viewer::of_metadata(request.metadata());
        Ok(Response::new(StorageApi::revoke_chat_share(self, &viewer, request.into_inner()).await?))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn page_tokens_round_trip_and_reject_foreign_text() {
        assert_eq!(parse_page_token("").expect("empty"), None);
        assert_eq!(parse_page_token(&format_page_token(-999_999_950)).expect("negative id"), Some(-999_999_950));
        assert!(parse_page_token("42").is_err());
        assert!(parse_page_token("mx").is_err());
    }

    #[test]
    fn a_request_names_at_most_one_cursor() {
        assert_eq!(PageCursor::of_request("", None, None).expect("none"), PageCursor::PageToken(None));
        assert_eq!(PageCursor::of_request("m7", None, None).expect("token"), PageCursor::PageToken(Some(7)));
        assert_eq!(PageCursor::of_request("", Some(-3), None).expect("after"), PageCursor::After(-3));
        assert_eq!(PageCursor::of_request("", None, Some(i64::MIN)).expect("before"), PageCursor::Before(i64::MIN));
        for (token, after, before) in [("", Some(1), Some(2)), ("m7", Some(1), None), ("m7", None, Some(2)), ("m7", Some(1), Some(2))] {
            let error = PageCursor::of_request(token, after, before).expect_err("two cursors");
            assert!(matches!(&error, Error::InvalidArgument(message) if message.contains("exclude")), "{error:?}");
        }
        assert!(matches!(PageCursor::of_request("oops", None, None), Err(Error::InvalidArgument(_))));
    }

    #[test]
    fn the_side_a_page_was_not_read_towards_is_asked_about_from_its_edge_or_its_cursor() {
        // Forward: what is older than the first message; nothing before the very first page.
        assert_eq!(PageCursor::PageToken(None).other_direction_bound(Some((1, 9))), OtherDirection::Known(false));
        assert_eq!(PageCursor::PageToken(None).other_direction_bound(None), OtherDirection::Known(false));
        assert_eq!(PageCursor::PageToken(Some(4)).other_direction_bound(Some((5, 9))), OtherDirection::AtOrBelow(4));
        assert_eq!(PageCursor::After(10).other_direction_bound(Some((12, 20))), OtherDirection::AtOrBelow(11));
        assert_eq!(PageCursor::After(10).other_direction_bound(None), OtherDirection::AtOrBelow(10));
        // Backward: what is newer than the last message.
        assert_eq!(PageCursor::Before(10).other_direction_bound(Some((3, 8))), OtherDirection::AtOrAbove(9));
        assert_eq!(PageCursor::Before(10).other_direction_bound(None), OtherDirection::AtOrAbove(10));
        // The ends of the id range need no query and do not overflow.
        assert_eq!(PageCursor::After(i64::MIN).other_direction_bound(Some((i64::MIN, 0))), OtherDirection::Known(false));
        assert_eq!(PageCursor::Before(i64::MAX).other_direction_bound(Some((0, i64::MAX))), OtherDirection::Known(false));
        assert_eq!(PageCursor::Before(i64::MIN).other_direction_bound(None), OtherDirection::AtOrAbove(i64::MIN));
        assert_eq!(PageCursor::After(i64::MAX).other_direction_bound(None), OtherDirection::AtOrBelow(i64::MAX));
        assert!(PageCursor::Before(0).is_backward() && !PageCursor::After(0).is_backward());
    }

    #[test]
    fn previews_keep_at_most_200_characters_and_cut_between_them() {
        assert_eq!(preview_of(""), "");
        assert_eq!(preview_of("short"), "short");
        let exactly = "ж".repeat(200);
        assert_eq!(preview_of(&exactly), exactly);
        let long = format!("{}👋 and more", "я".repeat(199));
        let preview = preview_of(&long);
        assert_eq!(preview.chars().count(), 200);
        assert!(preview.ends_with('👋'));
        assert_eq!(preview_of(&"\0".repeat(300)).chars().count(), 200);
    }

    #[test]
    fn months_are_labelled_year_dash_month() {
        assert_eq!(month_label(2026, 11), "2026-11");
        assert_eq!(month_label(2027, 1), "2027-01");
        assert_eq!(month_label(999, 3), "0999-03");
    }
}
