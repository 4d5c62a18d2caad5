//! End-to-end tests against the real stack (`scripts/stack.sh up`): a real Kafka broker and
//! a real PostgreSQL. Every test gets its own database, topics and consumer groups. All
//! modules build as one binary to keep link time down.

mod accounts;
mod attachments;
mod audit;
mod authors;
mod backup;
mod backup_s3;
mod backup_text;
mod chat_browsing;
mod compose_file;
mod deploy_chart;
mod doubles;
mod file_placement;
mod file_restore;
mod files;
mod files_console;
mod files_support;
mod grpc_reflection;
mod helpers;
mod import_crash_safety;
mod import_html;
mod import_isolation;
mod import_json;
mod kafka_outage;
mod ownership;
mod postgres_restart;
mod projection_faults;
mod security_bounds;
mod security_secrets;
mod service_host;
mod snapshot_export;
mod telegram_bot;
mod upload_export;
mod web_ui;
