//! Consistency tokens: the Kafka positions a command's events occupy, and the wait for a
//! projection to have applied them (read-your-writes).
//!
//! A token is text, `topic@partition:next_offset` joined by commas, where `next_offset` is
//! one past the last record the command wrote to that partition.

use std::collections::BTreeMap;
use std::time::Duration;

use tokio::sync::watch;

use crate::{Error, Result};

/// A partition of a topic.
pub type TopicPartition = (String, i32);

/// Positions, per partition, as "next offset to read".
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Positions(pub BTreeMap<TopicPartition, i64>);

impl Positions {
    /// Records that `offset` was written to `partition` of `topic`.
    pub fn record_written(&mut self, topic: &str, partition: i32, offset: i64) {
        let next = offset + 1;
        let entry = self.0.entry((topic.to_owned(), partition)).or_insert(next);
        *entry = (*entry).max(next);
    }

    /// Returns whether every position of `required` is reached by `self`.
    pub fn covers(&self, required: &Positions) -> bool {
        required.0.iter().all(|(partition, next)| self.0.get(partition).is_some_and(|applied| applied >= next))
    }

    /// Returns the token text of these positions.
    pub fn to_token(&self) -> String {
        self.0.iter().map(|((topic, partition), next)| format!("{topic}@{partition}:{next}")).collect::<Vec<_>>().join(",")
    }

    /// Parses token text; the empty string means "no positions".
    pub fn from_token(token: &str) -> Result<Self> {
        let mut positions = BTreeMap::new();
        for item in token.split(',').map(str::trim).filter(|item| !item.is_empty()) {
            let invalid = || Error::InvalidToken(format!("{item:?} is not topic@partition:offset"));
            let (topic, rest) = item.rsplit_once('@').ok_or_else(invalid)?;
            let (partition, next) = rest.split_once(':').ok_or_else(invalid)?;
            let partition: i32 = partition.parse().map_err(|_| invalid())?;
            let next: i64 = next.parse().map_err(|_| invalid())?;
            if topic.is_empty() || partition < 0 || next < 0 {
                return Err(invalid());
            }
            positions.insert((topic.to_owned(), partition), next);
        }
        Ok(Self(positions))
    }
}

/// What a projection has applied so far, shared between its runner and the query handlers.
#[derive(Clone, Debug)]
pub struct AppliedPositions {
    sender: watch::Sender<Positions>,
    /// The topics the projections sharing these positions read (full names).
    read_topics: std::sync::Arc<std::sync::RwLock<std::collections::BTreeSet<String>>>,
}

impl Default for AppliedPositions {
    fn default() -> Self {
        Self { sender: watch::Sender::new(Positions::default()), read_topics: Default::default() }
    }
}

impl AppliedPositions {
    /// Records that a projection sharing these positions reads `topics` (the runner does it
    /// when it is made, before any query can wait).
    pub fn track_topics(&self, topics: &[String]) {
        let mut read_topics = self.read_topics.write().unwrap_or_else(std::sync::PoisonError::into_inner);
        read_topics.extend(topics.iter().cloned());
    }

    /// Returns the part of `required` on topics the projections sharing these positions read
    /// (all of it while no topic is tracked).
    fn relevant_part(&self, required: &Positions) -> Positions {
        let read_topics = self.read_topics.read().unwrap_or_else(std::sync::PoisonError::into_inner);
        if read_topics.is_empty() {
            return required.clone();
        }
        Positions(required.0.iter().filter(|((topic, _), _)| read_topics.contains(topic)).map(|(key, next)| (key.clone(), *next)).collect())
    }

    /// Raises the applied positions after a batch commits.
    pub fn advance(&self, committed: &Positions) {
        self.sender.send_modify(|applied| {
            for (partition, next) in &committed.0 {
                let entry = applied.0.entry(partition.clone()).or_insert(*next);
                *entry = (*entry).max(*next);
            }
        });
    }

    /// Returns a copy of what is applied now.
    pub fn current(&self) -> Positions {
        self.sender.borrow().clone()
    }

    /// Says in words what `required` still waits for after `limit`: how many events are
    /// not yet applied, on which topics, and what to do.
    fn still_pending(&self, required: &Positions, limit: Duration) -> String {
        let applied = self.current();
        let mut behind_by_topic: BTreeMap<&str, i64> = BTreeMap::new();
        for ((topic, partition), next) in &required.0 {
            let reached = applied.0.get(&(topic.clone(), *partition)).copied().unwrap_or(0);
            if reached < *next {
                *behind_by_topic.entry(topic.as_str()).or_insert(0) += next - reached;
            }
        }
        let behind: Vec<String> = behind_by_topic.iter().map(|(topic, events)| format!("{events} on {topic}")).collect();
        format!(
            "waited {:.0} s and the data is not there yet: this service still has to apply {} event(s) up to the ones the token names ({}); \
             it is busy with earlier events (a large import is applied in one piece once it commits). Nothing is lost: \
             query again with the same token in a while (token: {})",
            limit.as_secs_f64(),
            behind_by_topic.values().sum::<i64>(),
            behind.join(", "),
            required.to_token()
        )
    }

    /// Waits until `required` is applied, at most `limit`. An empty token returns at once.
    /// Positions on topics this service does not read are left out (an import's token may
    /// also name the attachments' `files.events`); a token naming only such topics is
    /// [`Error::InvalidToken`] at once, since it would never be applied here.
    pub async fn wait_for(&self, required: &Positions, limit: Duration) -> Result<()> {
        let relevant = self.relevant_part(required);
        if relevant.0.is_empty() && !required.0.is_empty() {
            return Err(Error::InvalidToken(format!(
                "{} names only topics this service does not read; pass it to a query of the service whose data it waits for",
                required.to_token()
            )));
        }
        let required = &relevant;
        let mut receiver = self.sender.subscribe();
        let waited = tokio::time::timeout(limit, receiver.wait_for(|applied| applied.covers(required))).await;
        match waited {
            Ok(Ok(_)) => Ok(()),
            Ok(Err(_)) => Err(Error::Other("projection stopped".to_owned())),
            Err(_) => Err(Error::Timeout(self.still_pending(required, limit))),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn token_round_trips_and_keeps_the_highest_offset() {
        let mut positions = Positions::default();
        positions.record_written("chat.events", 1, 41);
        positions.record_written("chat.events", 1, 40);
        positions.record_written("chat.events", 0, 7);
        let token = positions.to_token();
        assert_eq!(token, "chat.events@0:8,chat.events@1:42");
        assert_eq!(Positions::from_token(&token).expect("parses"), positions);
        assert_eq!(Positions::from_token("").expect("empty parses"), Positions::default());
    }

    #[test]
    fn malformed_tokens_are_rejected() {
        for bad in ["chat.events", "chat.events@x:1", "@0:1", "t@0:-4", "t@0"] {
            assert!(Positions::from_token(bad).is_err(), "{bad} must be rejected");
        }
    }

    #[tokio::test]
    async fn waiting_returns_once_applied_and_times_out_otherwise() {
        let applied = AppliedPositions::default();
        let required = Positions::from_token("t@0:10").expect("parses");
        let limit = Duration::from_millis(50);
        assert!(matches!(applied.wait_for(&required, limit).await, Err(Error::Timeout(_))));
        applied.advance(&Positions::from_token("t@0:4").expect("parses"));
        let Err(Error::Timeout(message)) = applied.wait_for(&required, limit).await else { panic!("still behind") };
        assert!(message.contains("still has to apply 6 event(s)") && message.contains("6 on t"), "{message}");
        assert!(message.contains("query again with the same token"), "{message}");
        applied.advance(&Positions::from_token("t@0:10").expect("parses"));
        applied.wait_for(&required, limit).await.expect("applied");
    }

    #[tokio::test]
    async fn a_token_for_a_topic_nobody_here_reads_is_refused_at_once() {
        let applied = AppliedPositions::default();
        applied.track_topics(&["chat.events".to_owned()]);
        let foreign = Positions::from_token("users.events@0:1").expect("parses");
        let refused = applied.wait_for(&foreign, Duration::from_secs(3600)).await.expect_err("never applied here");
        assert!(matches!(&refused, Error::InvalidToken(message) if message.contains("users.events")), "{refused}");
        // A token that also names a topic read here waits for that part only.
        applied.advance(&Positions::from_token("chat.events@0:5").expect("parses"));
        let mixed = Positions::from_token("chat.events@0:5,files.events@1:9").expect("parses");
        applied.wait_for(&mixed, Duration::from_millis(50)).await.expect("the chat.events part is applied");
    }
}
