//! `docker-compose.kafka.yml` cannot run here (no Docker engine); this keeps it honest by
//! reading it: valid YAML, the same ports, Kafka 4.4 in KRaft mode with the single-broker
//! settings transactions need, PostgreSQL 15 with `db-init/` mounted, and Jaeger.

use serde_yaml::Value;

fn compose() -> Value {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../docker-compose.kafka.yml");
    let text = std::fs::read_to_string(&path).expect("docker-compose.kafka.yml exists");
    serde_yaml::from_str(&text).expect("docker-compose.kafka.yml is valid YAML")
}

fn service<'a>(compose: &'a Value, name: &str) -> &'a Value {
    compose["services"].get(name).unwrap_or_else(|| panic!("service {name} is defined"))
}

fn port_mappings(service: &Value) -> Vec<String> {
    service["ports"].as_sequence().map(|ports| ports.iter().filter_map(|port| port.as_str().map(str::to_owned)).collect()).unwrap_or_default()
}

fn environment_value<'a>(service: &'a Value, key: &str) -> Option<&'a str> {
    service["environment"].get(key).and_then(Value::as_str)
}

#[test]
fn kafka_is_4_4_in_kraft_mode_on_9092_with_single_broker_transaction_settings() {
    let compose = compose();
    let kafka = service(&compose, "kafka");
    assert!(kafka["image"].as_str().is_some_and(|image| image.starts_with("apache/kafka:4.4")), "{:?}", kafka["image"]);
    assert!(port_mappings(kafka).iter().any(|port| port.ends_with("9092:9092")), "{:?}", port_mappings(kafka));
    assert!(environment_value(kafka, "KAFKA_PROCESS_ROLES").is_some_and(|roles| roles.contains("broker") && roles.contains("controller")));
    for key in ["KAFKA_OFFSETS_TOPIC_REPLICATION_FACTOR", "KAFKA_TRANSACTION_STATE_LOG_REPLICATION_FACTOR", "KAFKA_TRANSACTION_STATE_LOG_MIN_ISR"] {
        assert_eq!(environment_value(kafka, key), Some("1"), "{key}");
    }
}

#[test]
fn postgres_15_mounts_db_init_on_5432_and_jaeger_takes_otlp() {
    let compose = compose();
    let postgres = service(&compose, "postgres");
    assert!(postgres["image"].as_str().is_some_and(|image| image.starts_with("postgres:15")));
    assert!(port_mappings(postgres).iter().any(|port| port.ends_with("5432:5432")));
    let volumes: Vec<&str> = postgres["volumes"].as_sequence().map(|volumes| volumes.iter().filter_map(Value::as_str).collect()).unwrap_or_default();
    assert!(volumes.iter().any(|volume| volume.starts_with("./db-init:/docker-entrypoint-initdb.d")), "{volumes:?}");
    let jaeger = service(&compose, "jaeger");
    assert!(port_mappings(jaeger).iter().any(|port| port.ends_with("4317:4317")), "{:?}", port_mappings(jaeger));
}
