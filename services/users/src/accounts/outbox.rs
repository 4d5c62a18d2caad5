//! The outbox of account events: a command writes its rows and its events in one
//! PostgreSQL transaction ([`enqueue`]); after commit, [`OutboxRelay`] publishes them to
//! `users.events` in order and deletes what Kafka acknowledged.
//!
//! Why an outbox rather than "publish, then apply": the accounts table must answer the very
//! next log-in (uniqueness, password, lock-out counter) whether or not Kafka is reachable,
//! and an event must never announce a change the database refused. With the outbox, the
//! row and its event commit together; Kafka may only learn of it later. A crash between the
//! broker's acknowledgement and the delete republishes a record with the same `event-id`
//! and `occurred-at` headers, which the audit projection deduplicates.

use std::sync::Arc;
use std::time::Duration;

use chatvault_common::envelope::Envelope;
use chatvault_proto::users::v1::user_event::Event;
use chatvault_proto::users::v1::UserEvent;
use deadpool_postgres::Pool;
use prost::Message;
use rdkafka::message::Header;
use rdkafka::producer::{FutureProducer, FutureRecord};
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;

use crate::Error;

/// The header naming who caused an event (a username), read by the audit projection.
pub const ACTOR_HEADER: &str = "actor";

/// Returns the full event type of an account event, like `chatvault.users.v1.LoggedIn`.
pub fn event_type_of(event: &Event) -> &'static str {
    match event {
        Event::AccountRegistered(_) => "chatvault.users.v1.AccountRegistered",
        Event::LoggedIn(_) => "chatvault.users.v1.LoggedIn",
        Event::LoginFailed(_) => "chatvault.users.v1.LoginFailed",
        Event::AccountLocked(_) => "chatvault.users.v1.AccountLocked",
        Event::LoggedOut(_) => "chatvault.users.v1.LoggedOut",
        Event::PasswordChanged(_) => "chatvault.users.v1.PasswordChanged",
        Event::RoleChanged(_) => "chatvault.users.v1.RoleChanged",
        Event::RefreshTokenReused(_) => "chatvault.users.v1.RefreshTokenReused",
    }
}

/// Queues `event` of `account_id`, caused by `actor`, inside the command's transaction.
pub async fn enqueue(transaction: &tokio_postgres::Transaction<'_>, account_id: uuid::Uuid, actor: &str, event: Event) -> Result<(), Error> {
    let event_type = event_type_of(&event);
    let traceparent = chatvault_common::telemetry::traceparent_of(&tracing::Span::current());
    let payload = UserEvent { event: Some(event) }.encode_to_vec();
    transaction
        .execute(
            "INSERT INTO account_outbox (account_id, event_id, event_type, occurred_at, actor, traceparent, payload)
             VALUES ($1, $2, $3, now(), $4, $5, $6)",
            &[&account_id, &uuid::Uuid::now_v7(), &event_type, &actor, &traceparent, &payload],
        )
        .await?;
    Ok(())
}

/// Publishes the outbox to `users.events`, oldest first, from one task (so per-account
/// order holds).
#[derive(Clone)]
pub struct OutboxRelay {
    pool: Pool,
    producer: FutureProducer,
    topic: String,
    wake: Arc<Notify>,
}

impl std::fmt::Debug for OutboxRelay {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        formatter.debug_struct("OutboxRelay").field("topic", &self.topic).finish()
    }
}

impl OutboxRelay {
    /// Returns a relay to `topic` (full name).
    pub fn new(pool: Pool, producer: FutureProducer, topic: String) -> Self {
        Self { pool, producer, topic, wake: Arc::new(Notify::new()) }
    }

    /// Asks the relay to publish now (after a command committed).
    pub fn wake(&self) {
        self.wake.notify_one();
    }

    /// Publishes until `shutdown`, then makes one last attempt.
    pub async fn run(self, shutdown: CancellationToken) {
        loop {
            let stopping = tokio::select! {
                () = shutdown.cancelled() => true,
                () = self.wake.notified() => false,
                () = tokio::time::sleep(Duration::from_secs(1)) => false,
            };
            if let Err(error) = self.publish_pending().await {
                tracing::warn!(error = ?error, "publishing account events failed; retrying");
            }
            if stopping {
                break;
            }
        }
    }

    async fn publish_pending(&self) -> Result<(), Error> {
        let client = self.pool.get().await?;
        loop {
            let rows = client
                .query(
                    "SELECT outbox_id, account_id, event_id, event_type, occurred_at, actor, traceparent, payload
                     FROM account_outbox ORDER BY outbox_id LIMIT 500",
                    &[],
                )
                .await?;
            if rows.is_empty() {
                return Ok(());
            }
            let mut published: Vec<i64> = Vec::with_capacity(rows.len());
            for row in &rows {
                let account_id: uuid::Uuid = row.get(1);
                let event_type: String = row.get(3);
                let actor: String = row.get(5);
                let payload: Vec<u8> = row.get(7);
                let envelope = Envelope {
                    event_type: event_type.clone(),
                    event_id: row.get(2),
                    occurred_at: row.get(4),
                    producer: crate::SERVICE_NAME.to_owned(),
                    traceparent: row.get(6),
                };
                let headers = envelope.to_headers().insert(Header { key: ACTOR_HEADER, value: Some(actor.as_bytes()) });
                let key = account_id.to_string();
                let record = FutureRecord::to(&self.topic).key(&key).payload(&payload).headers(headers);
                if let Err((error, _)) = self.producer.send(record, Duration::from_secs(10)).await {
                    // Keep order: stop at the first failure and delete what went out.
                    tracing::warn!(%error, "kafka refused an account event; will retry");
                    break;
                }
                chatvault_common::http::EVENTS_PUBLISHED.with_label_values(&[&self.topic, &event_type]).inc();
                published.push(row.get(0));
            }
            let all_published = published.len() == rows.len();
            client.execute("DELETE FROM account_outbox WHERE outbox_id = ANY($1)", &[&published]).await?;
            if !all_published {
                return Ok(());
            }
        }
    }
}
