//! `chatvault.users.v1.UsersService`: author statistics, over the archives the caller sees
//! ([`chatvault_common::chat_access`]): their own, those shared with them (as projected
//! into `author_chat_grants`), every archive for an admin.

use chatvault_common::text::{self, PgText};
use std::time::Duration;

use chatvault_common::chat_access::{ambiguity_message, choose_archive, ArchiveChoice, Viewer};
use chatvault_common::consistency::{AppliedPositions, Positions};
use chatvault_proto::common::v1::ConsistencyToken;
use chatvault_proto::users::v1::users_service_server::UsersService;
use chatvault_proto::users::v1::{AuthorCount, AuthorStatsRequest, AuthorStatsResponse, ChatCount, TopAuthorsRequest, TopAuthorsResponse};
use chrono::{DateTime, Utc};
use deadpool_postgres::Pool;
use tonic::{Request, Response, Status};

use crate::Error;

const DEFAULT_TOP: u32 = 10;
const MAX_TOP: u32 = 1000;

/// Whether the caller sees the archive of a row aliased `$alias` (with `owner` and
/// `chat_id`): every archive for an admin (`$1`), else the caller's (`$2`) own and those
/// shared with them.
macro_rules! visible_archive {
    ($alias:literal) => {
        concat!(
            "($1::bool OR ",
            $alias,
            ".owner = $2::text OR EXISTS (SELECT 1 FROM author_chat_grants grants WHERE grants.owner = ",
            $alias,
            ".owner AND grants.chat_id = ",
            $alias,
            ".chat_id AND grants.grantee = $2::text))"
        )
    };
}

/// One author's counts (`$3`) in every archive the caller sees.
const AUTHOR_CHATS: &str = concat!(
    "SELECT chat_id, message_count, first_message_at, last_message_at, owner
     FROM author_chat_counts counts WHERE author_id = $3 AND message_count > 0 AND ",
    visible_archive!("counts"),
    " ORDER BY message_count DESC, chat_id, owner"
);

/// The names of author `$3` seen in the archives the caller sees, the latest first.
const AUTHOR_NAMES: &str = concat!(
    "SELECT name FROM author_names names WHERE author_id = $3 AND ",
    visible_archive!("names"),
    " GROUP BY name ORDER BY max(last_seen_at) DESC NULLS LAST, name"
);

/// The owners of the archives of chat `$3` (with counted authors) the caller sees.
const VISIBLE_CHAT_OWNERS: &str = concat!(
    "SELECT DISTINCT owner FROM author_chat_counts counts WHERE chat_id = $3 AND message_count > 0 AND ",
    visible_archive!("counts"),
    " ORDER BY owner"
);

/// The authors of one archive (`$3` owner, `$1` chat), with the latest name each had in it.
const TOP_AUTHORS: &str = "
    SELECT counts.author_id, counts.message_count, counts.first_message_at, counts.last_message_at,
           (SELECT name FROM author_names names
            WHERE names.owner = counts.owner AND names.chat_id = counts.chat_id AND names.author_id = counts.author_id
            ORDER BY last_seen_at DESC NULLS LAST, name LIMIT 1)
    FROM author_chat_counts counts
    WHERE counts.owner = $3 AND counts.chat_id = $1 AND counts.message_count > 0
    ORDER BY counts.message_count DESC, counts.author_id
    LIMIT $2";

/// The users gRPC API.
#[derive(Debug, Clone)]
pub struct UsersApi {
    pool: Pool,
    applied: AppliedPositions,
    consistency_wait: Duration,
}

fn unix(date: Option<DateTime<Utc>>) -> Option<i64> {
    date.map(|date| date.timestamp())
}

impl UsersApi {
    pub fn new(pool: Pool, applied: AppliedPositions, consistency_wait: Duration) -> Self {
        Self { pool, applied, consistency_wait }
    }

    async fn wait_for_token(&self, token: Option<&ConsistencyToken>) -> Result<(), Error> {
        let Some(token) = token else { return Ok(()) };
        let required = Positions::from_token(&token.value)?;
        self.applied.wait_for(&required, self.consistency_wait).await.map_err(|error| match error {
            chatvault_common::Error::Timeout(message) => Error::DeadlineExceeded(message),
            other => Error::Common(other),
        })
    }

    async fn author_stats(&self, viewer: &Viewer, request: AuthorStatsRequest) -> Result<AuthorStatsResponse, Error> {
        let author_id = request.author_id.trim();
        if author_id.is_empty() {
            return Err(Error::InvalidArgument("author_id is required, like user42".to_owned()));
        }
        self.wait_for_token(request.consistency_token.as_ref()).await?;
        let client = self.pool.get().await?;
        let caller = PgText::from(viewer.username.as_str());
        let chat_rows = client.query(AUTHOR_CHATS, &[&viewer.is_admin, &caller, &PgText::from(author_id)]).await?;
        // An author only seen in archives the caller does not see is answered like one
        // nobody archived.
        if chat_rows.is_empty() {
            return Err(Error::NotFound(format!("no messages of author {author_id} are archived")));
        }
        let names =
            client.query(AUTHOR_NAMES, &[&viewer.is_admin, &caller, &PgText::from(author_id)]).await?.iter().map(|row| text::text(row, 0)).collect();
        let chats: Vec<ChatCount> = chat_rows
            .iter()
            .map(|row| ChatCount {
                chat_id: row.get(0),
                message_count: u64::try_from(row.get::<_, i64>(1)).unwrap_or(0),
                first_message_unix: unix(row.get(2)),
                last_message_unix: unix(row.get(3)),
                owner: text::text(row, 4),
            })
            .collect();
        Ok(AuthorStatsResponse {
            author_id: author_id.to_owned(),
            names,
            total_messages: chats.iter().map(|chat| chat.message_count).sum(),
            first_message_unix: chats.iter().filter_map(|chat| chat.first_message_unix).min(),
            last_message_unix: chats.iter().filter_map(|chat| chat.last_message_unix).max(),
            chats,
        })
    }

    async fn top_authors(&self, viewer: &Viewer, request: TopAuthorsRequest) -> Result<TopAuthorsResponse, Error> {
        let limit = match request.limit {
            0 => DEFAULT_TOP,
            limit if limit > MAX_TOP => return Err(Error::InvalidArgument(format!("limit {limit} is above the maximum of {MAX_TOP}"))),
            limit => limit,
        };
        self.wait_for_token(request.consistency_token.as_ref()).await?;
        let client = self.pool.get().await?;
        let visible_owners: Vec<String> = client
            .query(VISIBLE_CHAT_OWNERS, &[&viewer.is_admin, &PgText::from(viewer.username.as_str()), &request.chat_id])
            .await?
            .iter()
            .map(|row| text::text(row, 0))
            .collect();
        let owner = match choose_archive(request.owner.as_deref(), &visible_owners, viewer) {
            ArchiveChoice::Owner(owner) => owner,
            // A chat the caller does not see has no authors, like a chat nobody archived.
            ArchiveChoice::NotVisible => return Ok(TopAuthorsResponse { authors: Vec::new() }),
            ArchiveChoice::Ambiguous(owners) => return Err(Error::InvalidArgument(ambiguity_message(request.chat_id, &owners))),
        };
        let rows = client.query(TOP_AUTHORS, &[&request.chat_id, &i64::from(limit), &PgText::from(owner.as_str())]).await?;
        let authors = rows
            .iter()
            .map(|row| AuthorCount {
                author_id: text::text(row, 0),
                message_count: u64::try_from(row.get::<_, i64>(1)).unwrap_or(0),
                first_message_unix: unix(row.get(2)),
                last_message_unix: unix(row.get(3)),
                name: text::optional_text(row, 4),
            })
            .collect();
        Ok(TopAuthorsResponse { authors })
    }
}

#[tonic::async_trait]
impl UsersService for UsersApi {
    #[tracing::instrument(skip_all, fields(author_id = %request.get_ref().author_id))]
    async fn author_stats(&self, request: Request<AuthorStatsRequest>) -> Result<Response<AuthorStatsResponse>, Status> {
        let viewer = Viewer::of_metadata(request.metadata());
        Ok(Response::new(UsersApi::author_stats(self, &viewer, request.into_inner()).await?))
    }

    #[tracing::instrument(skip_all, fields(chat_id = request.get_ref().chat_id))]
    async fn top_authors(&self, request: Request<TopAuthorsRequest>) -> Result<Response<TopAuthorsResponse>, Status> {
        let viewer = Viewer::of_metadata(request.metadata());
        Ok(Response::new(UsersApi::top_authors(self, &viewer, request.into_inner()).await?))
    }
}
