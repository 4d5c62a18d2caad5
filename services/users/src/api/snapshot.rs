//! `chatvault.snapshot.v1.SnapshotService` of users: Telegram authors and the accounts,
//! exported from one snapshot for backups (see [`chatvault_common::snapshot`]).

use chatvault_common::config::KafkaConfig;
use chatvault_common::snapshot::{ChatFilter, ExportColumn, ExportTable, SnapshotExporter};
use deadpool_postgres::Pool;

/// The projections whose Kafka positions a snapshot reports (`chat.events`). Accounts are
/// written by commands, not projected, so they have no position.
pub const SNAPSHOT_PROJECTIONS: &[&str] = &["users.authors"];

const AUTHOR_MESSAGE_COLUMNS: &[ExportColumn] = &[
    ExportColumn::new("owner", "text", false),
    ExportColumn::new("chat_id", "int8", false),
    ExportColumn::new("message_id", "int8", false),
    ExportColumn::new("author_id", "text", false),
    ExportColumn::new("sent_at", "timestamptz", true),
];

const AUTHOR_CHAT_COUNT_COLUMNS: &[ExportColumn] = &[
    ExportColumn::new("author_id", "text", false),
    ExportColumn::new("owner", "text", false),
    ExportColumn::new("chat_id", "int8", false),
    ExportColumn::new("message_count", "int8", false),
    ExportColumn::new("first_message_at", "timestamptz", true),
    ExportColumn::new("last_message_at", "timestamptz", true),
];

const AUTHOR_NAME_COLUMNS: &[ExportColumn] = &[
    ExportColumn::new("owner", "text", false),
    ExportColumn::new("chat_id", "int8", false),
    ExportColumn::new("author_id", "text", false),
    ExportColumn::new("name", "text", false),
    ExportColumn::new("first_seen_at", "timestamptz", true),
    ExportColumn::new("last_seen_at", "timestamptz", true),
];

/// What a restore needs of an account; never refresh tokens, lock-out counters or the
/// outbox.
const ACCOUNT_COLUMNS: &[ExportColumn] = &[
    ExportColumn::computed("account_id", "text", false, "account_id::text"),
    ExportColumn::new("username", "text", false),
    ExportColumn::new("email", "text", false),
    ExportColumn::new("password_hash", "text", false),
    ExportColumn::new("role", "text", false),
    ExportColumn::new("created_at", "timestamptz", false),
    ExportColumn::new("password_changed_at", "timestamptz", false),
];

/// The tables users exports, all of them by default. Every author row carries its
/// archive's owner and chat. Accounts ignore the chat filter. The grants users projects are
/// not exported: storage exports the same grants (`chat_grants`), and a restore re-publishes
/// them for both.
pub const SNAPSHOT_TABLES: &[ExportTable] = &[
    ExportTable {
        name: "author_messages",
        columns: AUTHOR_MESSAGE_COLUMNS,
        from: "author_messages",
        condition: None,
        chat_filter: ChatFilter::Column("chat_id"),
        exported_by_default: true,
    },
    ExportTable {
        name: "author_chat_counts",
        columns: AUTHOR_CHAT_COUNT_COLUMNS,
        from: "author_chat_counts",
        condition: None,
        chat_filter: ChatFilter::Column("chat_id"),
        exported_by_default: true,
    },
    ExportTable {
        name: "author_names",
        columns: AUTHOR_NAME_COLUMNS,
        from: "author_names",
        condition: None,
        chat_filter: ChatFilter::Column("chat_id"),
        exported_by_default: true,
    },
    ExportTable {
        name: "accounts",
        columns: ACCOUNT_COLUMNS,
        from: "accounts",
        condition: None,
        chat_filter: ChatFilter::Ignored,
        exported_by_default: true,
    },
];

/// The snapshot export of users's tables; served as `SnapshotService`.
pub fn exporter(pool: Pool, kafka: &KafkaConfig) -> SnapshotExporter {
    SnapshotExporter::new(pool, crate::SERVICE_NAME, kafka, SNAPSHOT_PROJECTIONS, SNAPSHOT_TABLES)
}
