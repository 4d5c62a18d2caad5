//! `chatvault audit`: the audit trail, filtered by actor, event type, time and trace id.

use chatvault_proto::audit::v1::AuditQueryRequest;
use serde_json::json;

use super::Endpoints;
use crate::error_code::invalid_argument;
use crate::output::outln;

#[derive(Debug, clap::Args)]
pub(crate) struct AuditArgs {
    /// Only rows of this actor (username).
    #[arg(long)]
    actor: Option<String>,
    /// Only this event type, like chatvault.users.v1.LoggedIn or log.INFO.
    #[arg(long = "type")]
    event_type: Option<String>,
    /// From this time on: RFC 3339 (2026-11-23T10:00:00Z), a date (2026-11-23) or Unix seconds.
    #[arg(long)]
    since: Option<String>,
    /// Before this time (same forms as --since).
    #[arg(long)]
    until: Option<String>,
    /// Only rows of this trace id (32 hex digits).
    #[arg(long)]
    trace: Option<String>,
    /// At most this many rows (all pages are fetched until then).
    #[arg(short = 'n', long, default_value_t = 100)]
    limit: usize,
}

fn parse_time(text: &str) -> anyhow::Result<i64> {
    if let Ok(seconds) = text.parse::<i64>() {
        return Ok(seconds);
    }
    if let Ok(time) = chrono::DateTime::parse_from_rfc3339(text) {
        return Ok(time.timestamp());
    }
    if let Ok(date) = chrono::NaiveDate::parse_from_str(text, "%Y-%m-%d") {
        return Ok(date.and_hms_opt(0, 0, 0).map(|time| time.and_utc().timestamp()).unwrap_or_default());
    }
    Err(invalid_argument(format!("{text:?} is not a time: use 2026-11-23T10:00:00Z, 2026-11-23 or Unix seconds")))
}

pub(crate) async fn run(endpoints: &Endpoints, args: AuditArgs, json: bool) -> anyhow::Result<()> {
    let mut audit = endpoints.audit().await?;
    let since_unix = args.since.as_deref().map(parse_time).transpose()?;
    let until_unix = args.until.as_deref().map(parse_time).transpose()?;
    let mut page_token = String::new();
    let mut rows = Vec::new();
    while rows.len() < args.limit {
        let request = AuditQueryRequest {
            actor: args.actor.clone().unwrap_or_default(),
            event_type: args.event_type.clone().unwrap_or_default(),
            since_unix,
            until_unix,
            trace_id: args.trace.clone().unwrap_or_default(),
            limit: u32::try_from((args.limit - rows.len()).min(1000)).unwrap_or(1000),
            page_token: page_token.clone(),
            event_types: Vec::new(),
        };
        let page = audit.query(request).await?.into_inner();
        rows.extend(page.rows);
        if page.next_page_token.is_empty() {
            break;
        }
        page_token = page.next_page_token;
    }
    rows.truncate(args.limit);
    if json {
        let values: Vec<_> = rows
            .iter()
            .map(|row| {
                let event: serde_json::Value = serde_json::from_str(&row.event_json).unwrap_or(serde_json::Value::String(row.event_json.clone()));
                json!({ "occurred_unix_micros": row.occurred_unix_micros, "service": row.service, "actor": row.actor, "event_type": row.event_type, "key": row.key, "trace_id": row.trace_id, "topic": row.topic, "event": event })
            })
            .collect();
        crate::output::print_json(&serde_json::Value::Array(values));
        return Ok(());
    }
    outln!("{:<26}  {:<8}  {:<12}  {:<40}  {:<32}  KEY", "TIME (UTC)", "SERVICE", "ACTOR", "TYPE", "TRACE");
    for row in rows {
        let time = chrono::DateTime::from_timestamp_micros(row.occurred_unix_micros)
            .map(|time| time.format("%Y-%m-%d %H:%M:%S%.6f").to_string())
            .unwrap_or_default();
        outln!("{:<26}  {:<8}  {:<12}  {:<40}  {:<32}  {}", time, row.service, row.actor, row.event_type, row.trace_id, row.key);
    }
    Ok(())
}
