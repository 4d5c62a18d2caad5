//! The topics of chatvault, their settings, and their idempotent creation at start-up.

use std::time::Duration;

use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::types::RDKafkaErrorCode;
use rdkafka::ClientConfig;

use crate::config::KafkaConfig;
use crate::{Error, Result};

/// Chat headers and messages; key: chat id.
pub const CHAT_EVENTS: &str = "chat.events";
/// Stored and deleted files; key: file id.
pub const FILES_EVENTS: &str = "files.events";
/// Accounts and roles; key: account id.
pub const USERS_EVENTS: &str = "users.events";
/// Storage node registrations; compacted; key: node id.
pub const STORAGE_NODES: &str = "storage.nodes";
/// Log lines of every service at INFO and above; key: service name.
pub const AUDIT_LOGS: &str = "audit.logs";
/// Backups taken and restored; key: backup id.
pub const BACKUP_EVENTS: &str = "backup.events";

/// The Telegram bot's links and received and stored files; key: account id, or the
/// Telegram file's unique id for file events. The storage workers' consumer group reads
/// its `FileReceived` events as their work.
pub const BOT_EVENTS: &str = "bot.events";

/// Every domain topic with whether it is compacted.
pub const ALL_TOPICS: &[(&str, bool)] = &[
    (CHAT_EVENTS, false),
    (FILES_EVENTS, false),
    (USERS_EVENTS, false),
    (STORAGE_NODES, true),
    (AUDIT_LOGS, false),
    (BACKUP_EVENTS, false),
    (BOT_EVENTS, false),
];

/// Returns the dead-letter topic of `topic`.
pub fn dead_letter_topic(topic: &str) -> String {
    format!("{topic}.dlq")
}

/// Creates every chatvault topic and its dead-letter topic when missing. Safe to call from
/// every service at every start: existing topics are left as they are.
pub async fn ensure_topics(kafka: &KafkaConfig) -> Result<()> {
    let admin: AdminClient<DefaultClientContext> = ClientConfig::new().set("bootstrap.servers", &kafka.brokers).create()?;
    let mut names_and_settings: Vec<(String, bool, i32)> = Vec::new();
    for (base_name, compacted) in ALL_TOPICS {
        let partitions = if *compacted { 1 } else { kafka.topic_partitions };
        names_and_settings.push((kafka.topic(base_name), *compacted, partitions));
        names_and_settings.push((dead_letter_topic(&kafka.topic(base_name)), false, 1));
    }
    let new_topics: Vec<NewTopic<'_>> = names_and_settings
        .iter()
        .map(|(name, compacted, partitions)| {
            let topic = NewTopic::new(name, *partitions, TopicReplication::Fixed(kafka.topic_replication));
            if *compacted {
                topic.set("cleanup.policy", "compact")
            } else {
                topic
            }
        })
        .collect();
    let options = AdminOptions::new().operation_timeout(Some(Duration::from_secs(30)));
    let results = admin.create_topics(new_topics.iter(), &options).await?;
    for result in results {
        match result {
            Ok(name) => tracing::info!(topic = %name, "topic created"),
            Err((_, RDKafkaErrorCode::TopicAlreadyExists)) => {}
            Err((name, code)) => return Err(Error::Other(format!("creating topic {name}: {code}"))),
        }
    }
    Ok(())
}
