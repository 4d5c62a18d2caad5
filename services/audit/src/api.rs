//! `chatvault.audit.v1.AuditService`: the audit trail by actor, event type, time range and
//! trace id, newest first, cursor-paged. A user sees their own rows; an admin everyone's.

use chatvault_common::auth::is_admin_metadata;
use chatvault_common::caller::caller_of_metadata;
use chatvault_common::text::{self, PgText};
use chatvault_proto::audit::v1::audit_service_server::AuditService;
use chatvault_proto::audit::v1::{AuditQueryRequest, AuditQueryResponse, AuditRow};
use chrono::{DateTime, Utc};
use deadpool_postgres::Pool;
use tonic::{Request, Response, Status};

use crate::Error;

const DEFAULT_LIMIT: u32 = 100;
const MAX_LIMIT: u32 = 1000;

const QUERY: &str = "
    SELECT occurred_at, event_id, service, actor, event_type, record_key, trace_id, topic, event
    FROM audit_rows
    WHERE ($1::text IS NULL OR actor = $1)
      AND ($2::text IS NULL OR event_type = $2)
      AND ($3::timestamptz IS NULL OR occurred_at >= $3)
      AND ($4::timestamptz IS NULL OR occurred_at < $4)
      AND ($5::text IS NULL OR trace_id = $5)
      AND ($6::timestamptz IS NULL OR (occurred_at, event_id) < ($6, $7::uuid))
      AND (cardinality($9::text[]) = 0 OR event_type = ANY($9::text[]))
    ORDER BY occurred_at DESC, event_id DESC
    LIMIT $8";

/// The audit gRPC API.
#[derive(Debug, Clone)]
pub struct AuditApi {
    pool: Pool,
}

fn non_empty(text: &str) -> Option<String> {
    let trimmed = text.trim();
    (!trimmed.is_empty()).then(|| trimmed.to_owned())
}

/// Returns the time of `seconds` (Unix), refusing one outside what can be stored (a filter
/// that cannot be applied must not silently select everything).
fn time_of(field: &str, seconds: Option<i64>) -> Result<Option<DateTime<Utc>>, Error> {
    let Some(seconds) = seconds else { return Ok(None) };
    match DateTime::from_timestamp(seconds, 0) {
        Some(time) if (-210_000_000_000..=9_000_000_000_000).contains(&seconds) => Ok(Some(time)),
        _ => Err(Error::InvalidArgument(format!("{field} {seconds} is not a time chatvault can search (Unix seconds)"))),
    }
}

fn parse_page_token(token: &str) -> Result<(Option<DateTime<Utc>>, Option<uuid::Uuid>), Error> {
    if token.is_empty() {
        return Ok((None, None));
    }
    let invalid = || Error::InvalidArgument("page_token is not one this service returned".to_owned());
    let (micros, event_id) = token.split_once(':').ok_or_else(invalid)?;
    let time = micros.parse::<i64>().ok().and_then(DateTime::from_timestamp_micros).ok_or_else(invalid)?;
    Ok((Some(time), Some(event_id.parse().map_err(|_| invalid())?)))
}

impl AuditApi {
    pub fn new(pool: Pool) -> Self {
        Self { pool }
    }

    async fn query(&self, caller: String, caller_is_admin: bool, request: AuditQueryRequest) -> Result<AuditQueryResponse, Error> {
        let mut actor = non_empty(&request.actor);
        if !caller_is_admin {
            match &actor {
                Some(asked) if *asked != caller => {
                    return Err(Error::PermissionDenied("reading another account's audit trail needs the admin role".to_owned()))
                }
                _ => actor = Some(caller),
            }
        }
        let trace_id = non_empty(&request.trace_id).map(|trace| trace.to_ascii_lowercase());
        if trace_id.as_ref().is_some_and(|trace| trace.len() != 32 || !trace.bytes().all(|byte| byte.is_ascii_hexdigit())) {
            return Err(Error::InvalidArgument("trace_id must be 32 hex digits".to_owned()));
        }
        let since = time_of("since_unix", request.since_unix)?;
        let until = time_of("until_unix", request.until_unix)?;
        let limit = if request.limit == 0 { DEFAULT_LIMIT } else { request.limit.min(MAX_LIMIT) };
        let (after_time, after_id) = parse_page_token(&request.page_token)?;
        let client = self.pool.get().await?;
        let rows = client
            .query(
                QUERY,
                &[
                    &actor.as_ref().map(PgText::from),
                    &non_empty(&request.event_type).as_ref().map(PgText::from),
                    &since,
                    &until,
                    &trace_id,
                    &after_time,
                    &after_id,
                    &i64::from(limit),
                    &request.event_types.iter().map(|event_type| PgText::from(event_type.as_str())).collect::<Vec<_>>(),
                ],
            )
            .await?;
        let mut next_page_token = String::new();
        if rows.len() == limit as usize {
            if let Some(last) = rows.last() {
                let (time, event_id): (DateTime<Utc>, uuid::Uuid) = (last.get(0), last.get(1));
                next_page_token = format!("{}:{event_id}", time.timestamp_micros());
            }
        }
        let rows = rows
            .iter()
            .map(|row| AuditRow {
                occurred_unix_micros: row.get::<_, DateTime<Utc>>(0).timestamp_micros(),
                service: text::text(row, 2),
                actor: text::text(row, 3),
                event_type: text::text(row, 4),
                key: text::text(row, 5),
                trace_id: text::text(row, 6),
                topic: text::text(row, 7),
                event_json: text::decode_json(row.get::<_, serde_json::Value>(8)).to_string(),
            })
            .collect();
        Ok(AuditQueryResponse { rows, next_page_token })
    }
}

#[tonic::async_trait]
impl AuditService for AuditApi {
    #[tracing::instrument(skip_all, fields(actor = %request.get_ref().actor, trace_id = %request.get_ref().trace_id))]
    async fn query(&self, request: Request<AuditQueryRequest>) -> Result<Response<AuditQueryResponse>, Status> {
        let caller = caller_of_metadata(request.metadata());
        let caller_is_admin = is_admin_metadata(request.metadata());
        Ok(Response::new(AuditApi::query(self, caller, caller_is_admin, request.into_inner()).await?))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn times_out_of_range_are_refused_not_ignored() {
        assert_eq!(time_of("since_unix", None).expect("absent"), None);
        assert!(time_of("since_unix", Some(1_795_331_730)).expect("a time").is_some());
        for seconds in [10_i64.pow(13), i64::MAX, i64::MIN, -300_000_000_000] {
            let error = time_of("since_unix", Some(seconds)).expect_err("out of range");
            assert!(matches!(error, Error::InvalidArgument(_)), "{seconds}: {error}");
        }
    }
}
