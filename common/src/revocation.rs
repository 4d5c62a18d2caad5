//! Access tokens stop working when their account's password changes.
//!
//! Access tokens are verified locally (no call to the users service per request), so a
//! password change cannot reach into them. Instead every service follows `users.events`
//! and keeps, per account id, the time of the last `PasswordChanged` (its `occurred-at`
//! header: the users service's transaction time, the same instant it stores as
//! `password_changed_at`). [`crate::auth`]'s layer refuses a token issued before that time.
//!
//! The issue instant of a token is the timestamp inside its `jti`, a UUIDv7 minted in the
//! same transaction as the change when it is the token `ChangePassword` returns; that gives
//! millisecond precision where `iat` has only seconds. A token whose `jti` carries no usable
//! time falls back to the end of its `iat` second (so tokens issued in the same second as
//! the change keep working rather than refusing the new one).
//!
//! Only the last access-token lifetime matters: an older change can only revoke tokens
//! that have expired anyway. So the follower starts that far back in the topic (by
//! timestamp, not from the beginning) and forgets changes older than that.

use std::collections::HashMap;
use std::sync::{Arc, PoisonError, RwLock};
use std::time::Duration;

use chatvault_proto::users::v1::{user_event, UserEvent};
use chrono::{DateTime, Utc};
use prost::Message as _;
use rdkafka::consumer::{Consumer, StreamConsumer};
use rdkafka::message::Message;
use rdkafka::{Offset, TopicPartitionList};
use tokio_util::sync::CancellationToken;

use crate::auth::{AuthConfig, Claims};
use crate::config::KafkaConfig;
use crate::envelope::{header_text, OCCURRED_AT};
use crate::topics::USERS_EVENTS;
use crate::{Error, Result};

/// Extra time kept beyond the access-token lifetime, for clock differences.
const LOOKBACK_MARGIN: Duration = Duration::from_secs(300);
/// How long one metadata or offset request to Kafka may take.
const KAFKA_REQUEST_TIMEOUT: Duration = Duration::from_secs(10);
/// The pause before trying Kafka again after a failure.
const RETRY_PAUSE: Duration = Duration::from_secs(1);

/// The last password change of each account, shared by every clone.
#[derive(Clone, Debug, Default)]
pub struct PasswordChanges {
    changed_at_ms: Arc<RwLock<HashMap<String, i64>>>,
}

impl PasswordChanges {
    /// Records that `account_id` changed its password at `changed_at`; keeps the latest.
    /// Forgets changes older than `forget_before` (tokens issued before them have expired).
    pub fn record(&self, account_id: &str, changed_at: DateTime<Utc>, forget_before: DateTime<Utc>) {
        let mut changes = self.changed_at_ms.write().unwrap_or_else(PoisonError::into_inner);
        let changed_at_ms = changed_at.timestamp_millis();
        let latest = changes.entry(account_id.to_owned()).or_insert(changed_at_ms);
        *latest = (*latest).max(changed_at_ms);
        let forget_before_ms = forget_before.timestamp_millis();
        changes.retain(|_, changed| *changed >= forget_before_ms);
    }

    /// Returns whether `claims` belong to a token issued before its account's last
    /// password change.
    pub fn revokes(&self, claims: &Claims) -> bool {
        let changes = self.changed_at_ms.read().unwrap_or_else(PoisonError::into_inner);
        changes.get(&claims.sub).is_some_and(|changed_at_ms| issued_at_millis(claims) < *changed_at_ms)
    }
}

/// Returns when the token of `claims` was issued, in Unix milliseconds: the time inside
/// its UUIDv7 `jti` when that agrees with `iat`, else the last millisecond of `iat`.
fn issued_at_millis(claims: &Claims) -> i64 {
    let end_of_iat_second = claims.iat.saturating_mul(1000).saturating_add(999);
    let Ok(jti) = uuid::Uuid::parse_str(&claims.jti) else { return end_of_iat_second };
    if jti.get_version_num() != 7 {
        return end_of_iat_second;
    }
    let Some((seconds, nanos)) = jti.get_timestamp().map(|timestamp| timestamp.to_unix()) else { return end_of_iat_second };
    let jti_millis = i64::try_from(seconds).unwrap_or(i64::MAX).saturating_mul(1000).saturating_add(i64::from(nanos / 1_000_000));
    // The users service takes `iat` just before it mints the `jti`: they are at most a
    // second boundary apart. Anything else is not a time to rely on.
    let jti_second = jti_millis.div_euclid(1000);
    if jti_second == claims.iat || jti_second == claims.iat + 1 {
        jti_millis
    } else {
        end_of_iat_second
    }
}

/// Returns the work of following `users.events` into `auth`'s password changes until
/// `shutdown`, for the caller to run (the service host runs it in its task set); `None`
/// with auth off. Kafka being away only delays what the follower learns: tokens keep being
/// verified with what it knows.
pub fn follow_password_changes(
    auth: &AuthConfig,
    kafka: &KafkaConfig,
    service: &str,
    shutdown: CancellationToken,
) -> Option<impl std::future::Future<Output = ()> + Send + 'static> {
    if !auth.enabled {
        return None;
    }
    let follower = PasswordChangeFollower {
        changes: auth.password_changes.clone(),
        kafka: kafka.clone(),
        group: format!("chatvault-{service}-password-changes-{}", uuid::Uuid::new_v4().simple()),
        remembered_for: auth.access_ttl + LOOKBACK_MARGIN,
    };
    Some(async move { follower.run(shutdown).await })
}

/// Reads `PasswordChanged` events into [`PasswordChanges`].
struct PasswordChangeFollower {
    changes: PasswordChanges,
    kafka: KafkaConfig,
    group: String,
    remembered_for: Duration,
}

impl PasswordChangeFollower {
    async fn run(self, shutdown: CancellationToken) {
        let consumer = loop {
            let started = tokio::select! {
                () = shutdown.cancelled() => return,
                started = self.assigned_consumer() => started,
            };
            match started {
                Ok(consumer) => break consumer,
                Err(error) => {
                    tracing::warn!(%error, "cannot follow users.events yet; password changes are not applied to access tokens until it works");
                    tokio::select! {
                        () = shutdown.cancelled() => return,
                        () = tokio::time::sleep(RETRY_PAUSE) => {}
                    }
                }
            }
        };
        tracing::info!(group = %self.group, "following password changes on users.events");
        loop {
            let received = tokio::select! {
                () = shutdown.cancelled() => return,
                received = consumer.recv() => received,
            };
            match received {
                Ok(record) => self.apply(&record),
                Err(error) => {
                    tracing::debug!(%error, "reading users.events failed; retrying");
                    tokio::time::sleep(RETRY_PAUSE).await;
                }
            }
        }
    }

    /// Returns a consumer assigned every partition of `users.events` at the offsets of
    /// `remembered_for` ago.
    async fn assigned_consumer(&self) -> Result<Arc<StreamConsumer>> {
        let consumer = Arc::new(crate::kafka::read_committed_consumer(&self.kafka, &self.group)?);
        let topic = self.kafka.topic(USERS_EVENTS);
        let since = Utc::now() - chrono::Duration::from_std(self.remembered_for).unwrap_or(chrono::Duration::hours(1));
        let asking = Arc::clone(&consumer);
        let topic_name = topic.clone();
        let assignment = tokio::task::spawn_blocking(move || -> Result<TopicPartitionList> {
            let metadata = asking.fetch_metadata(Some(&topic_name), KAFKA_REQUEST_TIMEOUT)?;
            let mut by_time = TopicPartitionList::new();
            for described in metadata.topics().iter().filter(|described| described.name() == topic_name && described.error().is_none()) {
                for partition in described.partitions() {
                    by_time.add_partition_offset(&topic_name, partition.id(), Offset::Offset(since.timestamp_millis()))?;
                }
            }
            if by_time.count() == 0 {
                return Err(Error::Other(format!("topic {topic_name} has no partitions yet")));
            }
            // Partitions with nothing newer come back as `End`: reading starts at new records.
            Ok(asking.offsets_for_times(by_time, KAFKA_REQUEST_TIMEOUT)?)
        })
        .await
        .map_err(|error| Error::Other(format!("users.events offsets task: {error}")))??;
        consumer.assign(&assignment)?;
        Ok(consumer)
    }

    fn apply(&self, record: &rdkafka::message::BorrowedMessage<'_>) {
        let Some(Ok(UserEvent { event: Some(user_event::Event::PasswordChanged(changed)) })) = record.payload().map(UserEvent::decode) else {
            return;
        };
        let changed_at = record
            .headers()
            .and_then(|headers| header_text(headers, OCCURRED_AT))
            .and_then(|text| DateTime::parse_from_rfc3339(text).ok())
            .map(|time| time.with_timezone(&Utc))
            .or_else(|| record.timestamp().to_millis().and_then(DateTime::from_timestamp_millis));
        let Some(changed_at) = changed_at else {
            tracing::warn!(offset = record.offset(), "PasswordChanged without a time skipped");
            return;
        };
        let forget_before = Utc::now() - chrono::Duration::from_std(self.remembered_for).unwrap_or(chrono::Duration::hours(1));
        self.changes.record(&changed.account_id, changed_at, forget_before);
        tracing::info!(account_id = %changed.account_id, %changed_at, "password changed; older access tokens of the account are refused");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn claims_issued_at(issued_at: DateTime<Utc>) -> Claims {
        let jti = uuid::Uuid::new_v7(uuid::Timestamp::from_unix(uuid::NoContext, issued_at.timestamp() as u64, issued_at.timestamp_subsec_nanos()));
        Claims {
            sub: "account-1".to_owned(),
            username: "alice".to_owned(),
            role: "user".to_owned(),
            exp: issued_at.timestamp() + 900,
            iat: issued_at.timestamp(),
            jti: jti.to_string(),
        }
    }

    #[test]
    fn tokens_issued_before_the_change_are_revoked_and_later_ones_not() {
        let changes = PasswordChanges::default();
        let changed_at = DateTime::from_timestamp_millis(1_700_000_000_500).expect("time");
        let long_ago = DateTime::from_timestamp(0, 0).expect("time");
        let before = claims_issued_at(changed_at - chrono::Duration::milliseconds(200));
        let after = claims_issued_at(changed_at + chrono::Duration::milliseconds(3));
        assert!(!changes.revokes(&before), "nothing is revoked before a change is known");
        changes.record("account-1", changed_at, long_ago);
        assert!(changes.revokes(&before), "a token from the same second but earlier is revoked");
        assert!(!changes.revokes(&after), "the token issued with the change works");
        let other_account = Claims { sub: "account-2".to_owned(), ..before.clone() };
        assert!(!changes.revokes(&other_account));
        // An older change arriving late does not undo the newer one.
        changes.record("account-1", changed_at - chrono::Duration::hours(1), long_ago);
        assert!(changes.revokes(&before));
    }

    #[test]
    fn without_a_time_in_the_jti_the_whole_iat_second_counts_as_after() {
        let changes = PasswordChanges::default();
        let changed_at = DateTime::from_timestamp_millis(1_700_000_000_500).expect("time");
        changes.record("account-1", changed_at, DateTime::from_timestamp(0, 0).expect("time"));
        let same_second = Claims { jti: "not-a-uuid".to_owned(), ..claims_issued_at(changed_at) };
        let second_before = Claims { jti: "not-a-uuid".to_owned(), ..claims_issued_at(changed_at - chrono::Duration::seconds(1)) };
        assert!(!changes.revokes(&same_second));
        assert!(changes.revokes(&second_before));
        let unrelated_jti = Claims { jti: uuid::Uuid::now_v7().to_string(), ..second_before.clone() };
        assert!(changes.revokes(&unrelated_jti), "a jti far from iat is not trusted as the issue time");
    }

    #[test]
    fn changes_older_than_the_token_lifetime_are_forgotten() {
        let changes = PasswordChanges::default();
        let old_change = DateTime::from_timestamp(1_000, 0).expect("time");
        changes.record("account-1", old_change, DateTime::from_timestamp(0, 0).expect("time"));
        changes.record("account-2", DateTime::from_timestamp(5_000, 0).expect("time"), DateTime::from_timestamp(2_000, 0).expect("time"));
        let token = claims_issued_at(DateTime::from_timestamp(500, 0).expect("time"));
        assert!(!changes.revokes(&token), "account-1's change was forgotten");
        assert_eq!(changes.changed_at_ms.read().expect("lock").len(), 1);
    }
}
