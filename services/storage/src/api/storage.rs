//! `chatvault.storage.v1.StorageService`: chats and messages, with read-your-writes through
//! consistency tokens.

use std::time::Duration;

use chatvault_common::consistency::{AppliedPositions, Positions};
use chatvault_proto::chat::v1::{Media, TextEntity};
use chatvault_proto::common::v1::ConsistencyToken;
use chatvault_proto::storage::v1::storage_service_server::StorageService;
use chatvault_proto::storage::v1::{
    Chat, GetMessagesRequest, GetMessagesResponse, GetThreadRequest, GetThreadResponse, ListChatsRequest, ListChatsResponse,
    StoredMessage,
};
use chrono::{DateTime, Utc};
use deadpool_postgres::Pool;
use serde_json::Value;
use tonic::{Request, Response, Status};

use crate::db::sql;
use crate::Error;

const DEFAULT_PAGE_SIZE: u32 = 100;
const MAX_PAGE_SIZE: u32 = 1000;

/// The storage gRPC API.
#[derive(Debug, Clone)]
pub struct StorageApi {
    pool: Pool,
    applied: AppliedPositions,
    consistency_wait: Duration,
}

impl StorageApi {
    pub fn new(pool: Pool, applied: AppliedPositions, consistency_wait: Duration) -> Self {
        Self { pool, applied, consistency_wait }
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

    async fn list_chats(&self, request: ListChatsRequest) -> Result<ListChatsResponse, Error> {
        self.wait_for_token(request.consistency_token.as_ref()).await?;
        let client = self.pool.get().await?;
        let rows = client.query(sql::LIST_CHATS, &[]).await?;
        let chats = rows
            .iter()
            .map(|row| Chat {
                chat_id: row.get(0),
                name: row.get(1),
                chat_type: row.get(2),
                message_count: u64::try_from(row.get::<_, i64>(3)).unwrap_or(0),
                first_message_unix: row.get::<_, Option<DateTime<Utc>>>(4).map(|date| date.timestamp()),
                last_message_unix: row.get::<_, Option<DateTime<Utc>>>(5).map(|date| date.timestamp()),
                left: row.get(6),
            })
            .collect();
        Ok(ListChatsResponse { chats })
    }

    async fn get_messages(&self, request: GetMessagesRequest) -> Result<GetMessagesResponse, Error> {
        let page_size = match request.limit {
            0 => DEFAULT_PAGE_SIZE,
            limit if limit > MAX_PAGE_SIZE => {
                return Err(Error::InvalidArgument(format!("limit {limit} is above the maximum of {MAX_PAGE_SIZE}")))
            }
            limit => limit,
        };
        let after_message_id = parse_page_token(&request.page_token)?;
        let since = unix_to_timestamp("since_unix", request.since_unix)?;
        let until = unix_to_timestamp("until_unix", request.until_unix)?;
        self.wait_for_token(request.consistency_token.as_ref()).await?;
        let client = self.pool.get().await?;
        if client.query_opt(sql::CHAT_EXISTS, &[&request.chat_id]).await?.is_none() {
            return Err(Error::NotFound(format!("no chat with id {} is archived", request.chat_id)));
        }
        // One row more than the page tells whether another page follows.
        let fetch = i64::from(page_size) + 1;
        let author = request.author.as_deref().map(str::trim).filter(|author| !author.is_empty());
        let text_query = request.text_query.as_deref().map(str::trim).filter(|query| !query.is_empty());
        let rows = client
            .query(sql::GET_MESSAGES, &[&request.chat_id, &after_message_id, &since, &until, &fetch, &author, &text_query])
            .await?;
        let has_more = rows.len() > page_size as usize;
        let messages: Vec<StoredMessage> = rows.iter().take(page_size as usize).map(stored_message_of_row).collect();
        let next_page_token = match (has_more, messages.last()) {
            (true, Some(last)) => format_page_token(last.message_id),
            _ => String::new(),
        };
        Ok(GetMessagesResponse { messages, next_page_token })
    }

    async fn get_thread(&self, request: GetThreadRequest) -> Result<GetThreadResponse, Error> {
        self.wait_for_token(request.consistency_token.as_ref()).await?;
        let client = self.pool.get().await?;
        let rows = client.query(sql::GET_THREAD, &[&request.chat_id, &request.message_id]).await?;
        if rows.is_empty() {
            return Err(Error::NotFound(format!("chat {} holds no message {}", request.chat_id, request.message_id)));
        }
        Ok(GetThreadResponse { messages: rows.iter().map(stored_message_of_row).collect() })
    }
}

fn stored_message_of_row(row: &tokio_postgres::Row) -> StoredMessage {
    StoredMessage {
        chat_id: row.get(0),
        message_id: row.get(1),
        kind: i32::from(row.get::<_, i16>(2)),
        date_unix: row.get::<_, Option<DateTime<Utc>>>(3).map(|date| date.timestamp()),
        edited_unix: row.get::<_, Option<DateTime<Utc>>>(4).map(|date| date.timestamp()),
        from_name: row.get(5),
        from_id: row.get(6),
        reply_to_message_id: row.get(7),
        text: row.get(8),
        entities: row.get::<_, Option<Value>>(9).map(|value| entities_of_json(&value)).unwrap_or_default(),
        media: row.get::<_, Option<Value>>(10).map(|value| media_of_json(&value)),
        action: row.get(11),
        actor_name: row.get(12),
        forwarded_from: row.get(13),
        via_bot: row.get(14),
    }
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

/// Page tokens are `m<last message id>`; the empty token starts before every message
/// (migrated histories have ids down to about -10^9).
fn parse_page_token(token: &str) -> Result<i64, Error> {
    if token.is_empty() {
        return Ok(i64::MIN);
    }
    token
        .strip_prefix('m')
        .and_then(|id| id.parse().ok())
        .ok_or_else(|| Error::InvalidArgument(format!("page_token {token:?} is not one this service returned")))
}

fn format_page_token(last_message_id: i64) -> String {
    format!("m{last_message_id}")
}

fn unix_to_timestamp(field: &str, seconds: Option<i64>) -> Result<Option<DateTime<Utc>>, Error> {
    seconds
        .map(|seconds| {
            DateTime::from_timestamp(seconds, 0)
                .ok_or_else(|| Error::InvalidArgument(format!("{field} {seconds} is not a valid Unix time")))
        })
        .transpose()
}

#[tonic::async_trait]
impl StorageService for StorageApi {
    #[tracing::instrument(skip_all)]
    async fn list_chats(&self, request: Request<ListChatsRequest>) -> Result<Response<ListChatsResponse>, Status> {
        Ok(Response::new(StorageApi::list_chats(self, request.into_inner()).await?))
    }

    #[tracing::instrument(skip_all, fields(chat_id = request.get_ref().chat_id))]
    async fn get_messages(&self, request: Request<GetMessagesRequest>) -> Result<Response<GetMessagesResponse>, Status> {
        Ok(Response::new(StorageApi::get_messages(self, request.into_inner()).await?))
    }

    #[tracing::instrument(skip_all, fields(chat_id = request.get_ref().chat_id, message_id = request.get_ref().message_id))]
    async fn get_thread(&self, request: Request<GetThreadRequest>) -> Result<Response<GetThreadResponse>, Status> {
        Ok(Response::new(StorageApi::get_thread(self, request.into_inner()).await?))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn page_tokens_round_trip_and_reject_foreign_text() {
        assert_eq!(parse_page_token("").expect("empty"), i64::MIN);
        assert_eq!(parse_page_token(&format_page_token(-999_999_950)).expect("negative id"), -999_999_950);
        assert!(parse_page_token("42").is_err());
        assert!(parse_page_token("mx").is_err());
    }
}
