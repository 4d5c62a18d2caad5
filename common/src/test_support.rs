//! Helpers for tests against the real stack: a fresh database per test and unique topic
//! prefixes and group names, so no two tests share state.

use std::collections::HashMap;

use tokio_postgres::NoTls;

use crate::config::{KafkaConfig, Secret};

/// URL of a role that may create databases (the local stack's `storage` role has CREATEDB).
pub fn admin_database_url() -> String {
    std::env::var("CHATVAULT_TEST_ADMIN_DATABASE_URL")
        .unwrap_or_else(|_| "postgres://storage:storage@127.0.0.1:5432/storage".to_owned())
}

/// A database created for one test and dropped when the test ends.
#[derive(Debug)]
pub struct TestDb {
    pub name: String,
    pub url: Secret,
}

impl TestDb {
    /// Creates `test_<uuid>`; migrations run when the service starts on it.
    pub async fn fresh() -> Self {
        let name = format!("test_{}", uuid::Uuid::new_v4().simple());
        let admin_url = admin_database_url();
        let (client, connection) = tokio_postgres::connect(&admin_url, NoTls).await.expect("connect as the admin role");
        tokio::spawn(connection);
        client.batch_execute(&format!("CREATE DATABASE {name}")).await.expect("create the test database");
        let mut config: tokio_postgres::Config = admin_url.parse().expect("admin url parses");
        config.dbname(&name);
        let url = format!(
            "postgres://{}:{}@{}:{}/{}",
            config.get_user().unwrap_or("storage"),
            std::str::from_utf8(config.get_password().unwrap_or(b"storage")).unwrap_or("storage"),
            "127.0.0.1",
            config.get_ports().first().copied().unwrap_or(5432),
            name
        );
        Self { name, url: Secret::new(url) }
    }

    /// Returns a client connected to this database.
    pub async fn client(&self) -> tokio_postgres::Client {
        let (client, connection) = tokio_postgres::connect(self.url.expose(), NoTls).await.expect("connect to the test database");
        tokio::spawn(connection);
        client
    }
}

/// Returns a topic prefix no other test uses, like `t3f2a….`.
pub fn unique_topic_prefix() -> String {
    format!("test.{}.", &uuid::Uuid::new_v4().simple().to_string()[..12])
}

/// Returns Kafka settings for the local broker with a unique topic prefix.
pub fn unique_kafka_config() -> KafkaConfig {
    let mut environment: HashMap<String, String> = HashMap::new();
    if let Ok(brokers) = std::env::var("CHATVAULT_KAFKA_BROKERS") {
        environment.insert("CHATVAULT_KAFKA_BROKERS".to_owned(), brokers);
    }
    environment.insert("CHATVAULT_TOPIC_PREFIX".to_owned(), unique_topic_prefix());
    KafkaConfig::from_env_map(&environment).expect("kafka settings parse")
}
