//! Publishing the bot's events on `bot.events`, each naming the person it concerns as its
//! actor (so the audit trail and "my history" show it as theirs).

use chatvault_common::config::KafkaConfig;
use chatvault_common::topics::BOT_EVENTS;
use chatvault_proto::bot::v1::{bot_event, BotEvent};
use prost::Message;
use rdkafka::producer::FutureProducer;

use crate::BotError;

/// The publisher of `bot.events`.
#[derive(Clone)]
pub struct Events {
    producer: FutureProducer,
    topic: String,
    producer_name: &'static str,
}

impl std::fmt::Debug for Events {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        formatter.debug_struct("Events").field("topic", &self.topic).finish_non_exhaustive()
    }
}

/// Returns the protobuf type name of an event (`chatvault.bot.v1.FileStored`).
fn event_type(event: &bot_event::Event) -> &'static str {
    match event {
        bot_event::Event::TelegramLinked(_) => "chatvault.bot.v1.TelegramLinked",
        bot_event::Event::TelegramUnlinked(_) => "chatvault.bot.v1.TelegramUnlinked",
        bot_event::Event::DriveLinked(_) => "chatvault.bot.v1.DriveLinked",
        bot_event::Event::DriveUnlinked(_) => "chatvault.bot.v1.DriveUnlinked",
        bot_event::Event::PreferencesChanged(_) => "chatvault.bot.v1.PreferencesChanged",
        bot_event::Event::FileReceived(_) => "chatvault.bot.v1.FileReceived",
        bot_event::Event::FileStored(_) => "chatvault.bot.v1.FileStored",
        bot_event::Event::FileStoreFailed(_) => "chatvault.bot.v1.FileStoreFailed",
    }
}

impl Events {
    /// Returns a publisher with an idempotent producer named `producer_name`.
    pub fn new(kafka: &KafkaConfig, producer_name: &'static str) -> Result<Self, BotError> {
        let producer = chatvault_common::kafka::idempotent_producer(kafka, &format!("chatvault-{producer_name}"))?;
        Ok(Self { producer, topic: kafka.topic(BOT_EVENTS), producer_name })
    }

    /// Publishes `event` under `key`, caused by the person `actor` (a username).
    pub async fn publish(&self, actor: &str, key: &str, event: bot_event::Event) -> Result<(), BotError> {
        let kind = event_type(&event);
        let payload = BotEvent { event: Some(event) }.encode_to_vec();
        chatvault_common::caller::act_as(
            actor.to_owned(),
            chatvault_common::kafka::publish_event(&self.producer, &self.topic, key, kind, self.producer_name, payload),
        )
        .await?;
        Ok(())
    }
}
