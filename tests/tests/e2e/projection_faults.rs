//! Projections against bad input and a failing database: text with control characters
//! comes back exactly from every query, a record no projection can apply goes to the
//! dead-letter topic while the records around it are applied, and a database that goes
//! away only delays a projection (and `/healthz` says so meanwhile).

use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::Path;
use std::time::Duration;

use chatvault_common::config::{KafkaConfig, ServiceConfig};
use chatvault_common::envelope::{self, Envelope};
use chatvault_common::test_support::{service_environment, unique_topic_prefix, wait_until, TestDb};
use chatvault_common::topics::{dead_letter_topic, CHAT_EVENTS};
use chatvault_proto::audit::v1::audit_service_client::AuditServiceClient;
use chatvault_proto::audit::v1::AuditQueryRequest;
use chatvault_proto::chat::v1::{chat_event, ChatEvent, ChatImported, MessageKind, MessagePosted};
use chatvault_proto::common::v1::ConsistencyToken;
use chatvault_proto::ingest::v1::ingest_service_client::IngestServiceClient;
use chatvault_proto::storage::v1::storage_service_client::StorageServiceClient;
use chatvault_proto::storage::v1::{GetMessagesRequest, ListChatsRequest, StoredMessage};
use chatvault_proto::users::v1::users_service_client::UsersServiceClient;
use chatvault_proto::users::v1::TopAuthorsRequest;
use prost::Message as _;
use rdkafka::consumer::{Consumer, StreamConsumer};
use rdkafka::message::Message;
use rdkafka::producer::{FutureProducer, FutureRecord};
use rdkafka::{ClientConfig, Offset, TopicPartitionList};
use tokio_util::sync::CancellationToken;
use tonic::transport::Channel;

use crate::helpers::{connect, import_with, init_test_logging};

/// Ingest, storage, users and audit in this process on one fresh database and topic prefix.
pub(crate) struct Platform {
    pub(crate) database: TestDb,
    pub(crate) kafka: KafkaConfig,
    pub(crate) ingest: IngestServiceClient<Channel>,
    pub(crate) storage: StorageServiceClient<Channel>,
    pub(crate) storage_addr: SocketAddr,
    pub(crate) storage_http: SocketAddr,
    pub(crate) users: UsersServiceClient<Channel>,
    pub(crate) audit: AuditServiceClient<Channel>,
    shutdown: CancellationToken,
}

impl Drop for Platform {
    fn drop(&mut self) {
        self.shutdown.cancel();
    }
}

impl Platform {
    pub(crate) async fn start(extra: &[(&str, &str)]) -> Self {
        init_test_logging();
        let database = TestDb::fresh().await;
        let mut environment = service_environment(database.url.expose(), &unique_topic_prefix());
        for (key, value) in extra {
            environment.insert((*key).to_owned(), (*value).to_owned());
        }
        let shutdown = CancellationToken::new();
        let config = |name: &str, ports| ServiceConfig::from_env_map(name, ports, &environment).expect("config");
        let kafka = config("storage", chatvault_storage::DEFAULT_PORTS).kafka;

        let ingest_app = chatvault_ingest::App::build(config("ingest", chatvault_ingest::DEFAULT_PORTS)).await.expect("ingest starts");
        let ingest_addr = ingest_app.grpc_addr();
        tokio::spawn(ingest_app.run_until_stopped(shutdown.clone()));
        let storage_app = chatvault_storage::App::build(config("storage", chatvault_storage::DEFAULT_PORTS)).await.expect("storage starts");
        let (storage_addr, storage_http) = (storage_app.grpc_addr(), storage_app.http_addr());
        tokio::spawn(storage_app.run_until_stopped(shutdown.clone()));
        let users_app = chatvault_users::App::build(config("users", chatvault_users::DEFAULT_PORTS)).await.expect("users starts");
        let users_addr = users_app.grpc_addr();
        tokio::spawn(users_app.run_until_stopped(shutdown.clone()));
        let audit_app = chatvault_audit::App::build(config("audit", chatvault_audit::DEFAULT_PORTS)).await.expect("audit starts");
        let audit_addr = audit_app.grpc_addr();
        tokio::spawn(audit_app.run_until_stopped(shutdown.clone()));

        Self {
            database,
            kafka,
            ingest: IngestServiceClient::new(connect(ingest_addr).await),
            storage: StorageServiceClient::new(connect(storage_addr).await),
            storage_addr,
            storage_http,
            users: UsersServiceClient::new(connect(users_addr).await),
            audit: AuditServiceClient::new(connect(audit_addr).await),
            shutdown,
        }
    }

    async fn messages(&self, chat_id: i64, request: GetMessagesRequest) -> Vec<StoredMessage> {
        self.storage
            .clone()
            .get_messages(GetMessagesRequest { chat_id, limit: 1000, ..request })
            .await
            .expect("GetMessages succeeds")
            .into_inner()
            .messages
    }

    async fn message_ids(&self, chat_id: i64) -> Vec<i64> {
        match self.storage.clone().get_messages(GetMessagesRequest { chat_id, limit: 1000, ..Default::default() }).await {
            Ok(response) => response.into_inner().messages.iter().map(|message| message.message_id).collect(),
            Err(_) => Vec::new(),
        }
    }

    async fn healthz(&self) -> (u16, serde_json::Value) {
        http_get_json(self.storage_http, "/healthz").await
    }
}

/// A minimal HTTP/1.1 GET over a plain socket; returns the status and the JSON body.
async fn http_get_json(address: SocketAddr, path: &str) -> (u16, serde_json::Value) {
    let (status, body) = http_get(address, path).await;
    (status, serde_json::from_str(&body).unwrap_or(serde_json::Value::Null))
}

/// A minimal HTTP/1.1 GET over a plain socket; returns the status and the body.
pub(crate) async fn http_get(address: SocketAddr, path: &str) -> (u16, String) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut stream = tokio::net::TcpStream::connect(address).await.expect("connects");
    stream.write_all(format!("GET {path} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n").as_bytes()).await.expect("request written");
    let mut response = Vec::new();
    stream.read_to_end(&mut response).await.expect("response read");
    let response = String::from_utf8(response).expect("utf-8 response");
    let status: u16 = response.split(' ').nth(1).and_then(|code| code.parse().ok()).expect("status line");
    let body = response.split_once("\r\n\r\n").map(|(_, body)| body).unwrap_or_default();
    (status, body.to_owned())
}

/// Writes a single-chat export whose names and texts hold `\x00`, `\x01` and `\x1f`
/// escapes, as Telegram Desktop writes control characters (invalid JSON the importer repairs).
pub(crate) fn write_export_with_control_characters(folder: &Path, chat_id: i64) {
    let result = format!(
        r#"{{
 "name": "Ops\x00room\x01",
 "type": "private_group",
 "id": {chat_id},
 "messages": [
  {{
   "id": 1,
   "type": "message",
   "date": "2026-11-22T10:15:30",
   "date_unixtime": "1795331730",
   "from": "Ann\x00Lee",
   "from_id": "user42",
   "text": "before\x00quokka \x01 unit\x1fsep zebra",
   "text_entities": [{{"type": "plain", "text": "before\x00quokka \x01 unit\x1fsep zebra"}}]
  }},
  {{
   "id": 2,
   "type": "message",
   "date": "2026-11-22T10:16:30",
   "date_unixtime": "1795331790",
   "from": "Bo\x1f",
   "from_id": "user43",
   "text": "plain words",
   "text_entities": [{{"type": "plain", "text": "plain words"}}]
  }}
 ]
}}"#
    );
    std::fs::write(folder.join("result.json"), result).expect("export written");
}

#[tokio::test]
async fn control_characters_come_back_exactly_from_every_query() {
    let platform = Platform::start(&[]).await;
    let export = tempfile::tempdir().expect("temp dir");
    let chat_id = 4_000_000_000 + i64::from(rand::random::<u16>());
    write_export_with_control_characters(export.path(), chat_id);
    let summary = import_with(&mut platform.ingest.clone(), export.path()).await.expect("the export imports");
    assert_eq!(summary.messages, 2);
    let token: Option<ConsistencyToken> = summary.consistency_token.clone();

    let expected_text = "before\u{0}quokka \u{1} unit\u{1f}sep zebra";
    let messages = platform.messages(chat_id, GetMessagesRequest { consistency_token: token.clone(), ..Default::default() }).await;
    assert_eq!(messages.len(), 2);
    assert_eq!(messages[0].text, expected_text);
    assert_eq!(messages[0].from_name.as_deref(), Some("Ann\u{0}Lee"));
    assert_eq!(messages[1].from_name.as_deref(), Some("Bo\u{1f}"));

    let chats = platform.storage.clone().list_chats(ListChatsRequest::default()).await.expect("ListChats").into_inner().chats;
    let chat = chats.iter().find(|chat| chat.chat_id == chat_id).expect("the chat is listed");
    assert_eq!(chat.name.as_deref(), Some("Ops\u{0}room\u{1}"));

    let found = platform.messages(chat_id, GetMessagesRequest { text_query: Some("zebra".to_owned()), ..Default::default() }).await;
    assert_eq!(found.iter().map(|message| message.text.as_str()).collect::<Vec<_>>(), vec![expected_text], "search finds it, exact");
    let after_nul = platform.messages(chat_id, GetMessagesRequest { text_query: Some("quokka".to_owned()), ..Default::default() }).await;
    assert_eq!(after_nul.iter().map(|message| message.message_id).collect::<Vec<_>>(), vec![1], "a word right after U+0000 is a word of its own");
    let by_author = platform.messages(chat_id, GetMessagesRequest { author: Some("Ann\u{0}Lee".to_owned()), ..Default::default() }).await;
    assert_eq!(by_author.iter().map(|message| message.message_id).collect::<Vec<_>>(), vec![1], "the author filter matches the exact name");

    let authors = platform
        .users
        .clone()
        .top_authors(TopAuthorsRequest { chat_id, limit: 10, consistency_token: token.clone(), ..Default::default() })
        .await
        .expect("TopAuthors")
        .into_inner()
        .authors;
    let mut names: Vec<Option<String>> = authors.iter().map(|author| author.name.clone()).collect();
    names.sort();
    assert_eq!(names, vec![Some("Ann\u{0}Lee".to_owned()), Some("Bo\u{1f}".to_owned())]);

    // Audit keeps the event, with the text exact inside its JSON.
    let audit = platform.audit.clone();
    let audited_text = std::cell::RefCell::new(None);
    let seen = wait_until(Duration::from_secs(60), || {
        let mut audit = audit.clone();
        let audited_text = &audited_text;
        async move {
            let Ok(response) =
                audit.query(AuditQueryRequest { event_type: "chatvault.chat.v1.MessagePosted".to_owned(), limit: 100, ..Default::default() }).await
            else {
                return false;
            };
            for row in response.into_inner().rows {
                let event: serde_json::Value = serde_json::from_str(&row.event_json).expect("event_json is JSON");
                if let Some(text) = event.pointer("/message_posted/text").and_then(serde_json::Value::as_str) {
                    if text.starts_with("before") {
                        *audited_text.borrow_mut() = Some(text.to_owned());
                        return true;
                    }
                }
            }
            false
        }
    })
    .await;
    assert!(seen, "audit records the message with a NUL in it");
    assert_eq!(audited_text.into_inner().as_deref(), Some(expected_text));
}

pub(crate) fn chat_record(event: chat_event::Event) -> Vec<u8> {
    ChatEvent { event: Some(event) }.encode_to_vec()
}

pub(crate) fn message(chat_id: i64, message_id: i64, date_unix: i64) -> chat_event::Event {
    chat_event::Event::MessagePosted(MessagePosted {
        chat_id,
        message_id,
        kind: MessageKind::Regular as i32,
        date_unix: Some(date_unix),
        from_name: Some("Dee".to_owned()),
        from_id: Some("user7".to_owned()),
        text: format!("message {message_id}"),
        raw_json: format!("{{\"id\":{message_id}}}"),
        import_id: "crafted".to_owned(),
        ..Default::default()
    })
}

/// Publishes `events` to chat.events under `chat_id`'s key, in order; returns their offsets.
async fn publish(producer: &FutureProducer, kafka: &KafkaConfig, chat_id: i64, events: Vec<chat_event::Event>) -> Vec<(i32, i64)> {
    let topic = kafka.topic(CHAT_EVENTS);
    let key = chat_id.to_string();
    let mut positions = Vec::new();
    for event in events {
        let headers = Envelope::new("chatvault.chat.v1.ChatEvent", "tests", None).to_headers();
        let payload = chat_record(event);
        let delivered =
            producer.send(FutureRecord::to(&topic).key(&key).payload(&payload).headers(headers), Duration::from_secs(30)).await.expect("published");
        positions.push((delivered.partition, delivered.offset));
    }
    positions
}

/// Reads every record of `topic` from the beginning until `condition` holds for the set read.
async fn read_until(
    kafka: &KafkaConfig,
    topic: &str,
    condition: impl Fn(&[rdkafka::message::OwnedMessage]) -> bool,
) -> Vec<rdkafka::message::OwnedMessage> {
    let consumer: StreamConsumer = ClientConfig::new()
        .set("bootstrap.servers", &kafka.brokers)
        .set("group.id", format!("test-{}", uuid::Uuid::new_v4().simple()))
        .set("enable.auto.commit", "false")
        .create()
        .expect("consumer");
    let mut assignment = TopicPartitionList::new();
    assignment.add_partition_offset(topic, 0, Offset::Beginning).expect("partition");
    consumer.assign(&assignment).expect("assign");
    let mut records = Vec::new();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    while !condition(&records) {
        match tokio::time::timeout_at(deadline, consumer.recv()).await {
            Ok(Ok(record)) => records.push(record.detach()),
            Ok(Err(error)) => panic!("reading {topic}: {error}"),
            Err(_) => panic!("{topic} did not hold the expected records within 60 s; read {}", records.len()),
        }
    }
    records
}

fn header(record: &rdkafka::message::OwnedMessage, key: &str) -> Option<String> {
    record.headers().and_then(|headers| envelope::header_text(headers, key)).map(str::to_owned)
}

#[tokio::test]
async fn a_record_no_projection_can_apply_is_dead_lettered_and_the_rest_flows() {
    let platform = Platform::start(&[]).await;
    let producer = chatvault_common::kafka::idempotent_producer(&platform.kafka, "tests-poison").expect("producer");
    let chat_id = 5_000_000_000 + i64::from(rand::random::<u16>());
    let chat = chat_event::Event::ChatImported(ChatImported {
        chat_id,
        name: Some("poison".to_owned()),
        chat_type: "private_group".to_owned(),
        import_id: "crafted".to_owned(),
        ..Default::default()
    });
    // Year -7534: chrono holds it, PostgreSQL's timestamptz (4713 BC onwards) refuses it
    // with SQLSTATE 22008, in storage's messages and users' author counts alike.
    let before_postgres_time = -300_000_000_000;
    let positions = publish(
        &producer,
        &platform.kafka,
        chat_id,
        vec![chat, message(chat_id, 1, 1_795_331_730), message(chat_id, 2, before_postgres_time), message(chat_id, 3, 1_795_331_790)],
    )
    .await;
    let (poison_partition, poison_offset) = positions[2];

    assert!(
        wait_until(Duration::from_secs(60), || async { platform.message_ids(chat_id).await == vec![1, 3] }).await,
        "the records before and after the poison one are applied; got {:?}",
        platform.message_ids(chat_id).await
    );

    let dead_letter_topic = dead_letter_topic(&platform.kafka.topic(CHAT_EVENTS));
    let poison_offset_text = poison_offset.to_string();
    let dead_letters = read_until(&platform.kafka, &dead_letter_topic, |records| {
        let projections: Vec<String> = records
            .iter()
            .filter(|record| header(record, envelope::DLQ_ORIGINAL_OFFSET).as_deref() == Some(poison_offset_text.as_str()))
            .filter_map(|record| header(record, envelope::DLQ_PROJECTION))
            .collect();
        projections.contains(&"storage.chats".to_owned()) && projections.contains(&"users.authors".to_owned())
    })
    .await;
    let from_storage = dead_letters
        .iter()
        .find(|record| header(record, envelope::DLQ_PROJECTION).as_deref() == Some("storage.chats"))
        .expect("storage's dead letter");
    assert_eq!(from_storage.payload(), Some(chat_record(message(chat_id, 2, before_postgres_time)).as_slice()), "the value is the original record's");
    assert_eq!(from_storage.key(), Some(chat_id.to_string().as_bytes()));
    assert_eq!(header(from_storage, envelope::DLQ_SQLSTATE).as_deref(), Some("22008"));
    assert!(
        header(from_storage, envelope::DLQ_ERROR).is_some_and(|error| error.contains("out of range")),
        "{:?}",
        header(from_storage, envelope::DLQ_ERROR)
    );
    assert_eq!(header(from_storage, envelope::DLQ_ORIGINAL_TOPIC), Some(platform.kafka.topic(CHAT_EVENTS)));
    assert_eq!(header(from_storage, envelope::DLQ_ORIGINAL_PARTITION), Some(poison_partition.to_string()));
    assert_eq!(header(from_storage, envelope::EVENT_TYPE).as_deref(), Some("chatvault.chat.v1.ChatEvent"), "the envelope is kept");
    assert!(
        chatvault_common::http::PROJECTION_DEAD_LETTERS.with_label_values(&["storage.chats", &platform.kafka.topic(CHAT_EVENTS)]).get() >= 1,
        "dead letters are counted"
    );

    // Later records keep flowing, and the chat's count is exact.
    publish(&producer, &platform.kafka, chat_id, vec![message(chat_id, 4, 1_795_331_850)]).await;
    assert!(wait_until(Duration::from_secs(60), || async { platform.message_ids(chat_id).await == vec![1, 3, 4] }).await);
    let chats = platform.storage.clone().list_chats(ListChatsRequest::default()).await.expect("ListChats").into_inner().chats;
    assert_eq!(chats.iter().find(|chat| chat.chat_id == chat_id).map(|chat| chat.message_count), Some(3));
    let (status, health) = platform.healthz().await;
    assert_eq!(status, 200, "a dead-lettered record does not make the service unhealthy: {health}");
}

#[tokio::test]
async fn a_database_that_goes_away_only_delays_the_projection() {
    let platform = Platform::start(&[("CHATVAULT_STORAGE_PROJECTION_STUCK_SECONDS", "1")]).await;
    let producer = chatvault_common::kafka::idempotent_producer(&platform.kafka, "tests-outage").expect("producer");
    let chat_id = 6_000_000_000 + i64::from(rand::random::<u16>());
    publish(&producer, &platform.kafka, chat_id, vec![message(chat_id, 1, 1_795_331_730)]).await;
    assert!(wait_until(Duration::from_secs(60), || async { platform.message_ids(chat_id).await == vec![1] }).await);

    // The service's database refuses every connection, and the ones it holds are ended:
    // to storage it is a PostgreSQL that went down (the shared cluster keeps serving the
    // other tests).
    // A session on another database of the cluster: a database cannot refuse connections
    // to itself from inside.
    let (admin, connection) = tokio_postgres::connect(&chatvault_common::test_support::admin_database_url(), tokio_postgres::NoTls)
        .await
        .expect("connects as the admin role");
    tokio::spawn(connection);
    let database = &platform.database.name;
    admin.batch_execute(&format!("ALTER DATABASE {database} ALLOW_CONNECTIONS false")).await.expect("connections refused");
    admin
        .execute("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = $1 AND pid <> pg_backend_pid()", &[database])
        .await
        .expect("sessions ended");
    let more: Vec<chat_event::Event> = (2..=200).map(|id| message(chat_id, id, 1_795_331_730 + id)).collect();
    publish(&producer, &platform.kafka, chat_id, more).await;

    let last_health = std::cell::RefCell::new(serde_json::Value::Null);
    let reported_stuck = wait_until(Duration::from_secs(60), || {
        let last_health = &last_health;
        let platform = &platform;
        async move {
            let (status, health) = platform.healthz().await;
            *last_health.borrow_mut() = health;
            status == 503
        }
    })
    .await;
    let last_health = last_health.into_inner();
    assert!(reported_stuck, "/healthz reports the stuck projection: {last_health}");
    assert_eq!(last_health["stuck"], serde_json::json!(["storage.chats"]), "{last_health}");
    assert!(last_health["projections"]["storage.chats"]["last_error"].is_string(), "{last_health}");

    admin.batch_execute(&format!("ALTER DATABASE {database} ALLOW_CONNECTIONS true")).await.expect("connections allowed again");
    let expected: Vec<i64> = (1..=200).collect();
    assert!(
        wait_until(Duration::from_secs(90), || async { platform.message_ids(chat_id).await == expected }).await,
        "every record is applied once the database is back"
    );
    let counts: HashMap<i64, i64> = platform
        .database
        .client()
        .await
        .query("SELECT chat_id, message_count FROM chats WHERE chat_id = $1", &[&chat_id])
        .await
        .expect("count")
        .iter()
        .map(|row| (row.get(0), row.get(1)))
        .collect();
    assert_eq!(counts.get(&chat_id), Some(&200), "nothing lost, nothing counted twice");
    assert!(wait_until(Duration::from_secs(30), || async { platform.healthz().await.0 == 200 }).await, "healthy again");
}
