//! `chatvault.snapshot.v1.SnapshotService` of storage: the chats, messages, their grants and
//! the files catalog, exported from one snapshot for backups (see
//! [`chatvault_common::snapshot`]). Chats and messages carry their archive's owner, so a
//! restore gives every archive back to its account.

use chatvault_common::config::KafkaConfig;
use chatvault_common::snapshot::{ChatFilter, ExportColumn, ExportTable, SnapshotExporter};
use deadpool_postgres::Pool;

/// The projections whose Kafka positions a snapshot reports (`chat.events`, `files.events`
/// and `storage.nodes`).
pub const SNAPSHOT_PROJECTIONS: &[&str] = &["storage.chats", "storage.files"];

const CHAT_COLUMNS: &[ExportColumn] = &[
    ExportColumn::new("owner", "text", false),
    ExportColumn::new("chat_id", "int8", false),
    ExportColumn::new("name", "text", true),
    ExportColumn::new("chat_type", "text", false),
    ExportColumn::new("left_chat", "bool", false),
    ExportColumn::new("message_count", "int8", false),
    ExportColumn::new("first_message_at", "timestamptz", true),
    ExportColumn::new("last_message_at", "timestamptz", true),
    ExportColumn::new("last_import_id", "text", true),
    ExportColumn::new("source", "text", true),
    ExportColumn::new("imported_at", "timestamptz", true),
];

const MESSAGE_COLUMNS: &[ExportColumn] = &[
    ExportColumn::new("owner", "text", false),
    ExportColumn::new("chat_id", "int8", false),
    ExportColumn::new("message_id", "int8", false),
    ExportColumn::new("kind", "int2", false),
    ExportColumn::new("sent_at", "timestamptz", true),
    ExportColumn::new("edited_at", "timestamptz", true),
    ExportColumn::new("from_name", "text", true),
    ExportColumn::new("from_id", "text", true),
    ExportColumn::new("author_signature", "text", true),
    ExportColumn::new("forwarded_from", "text", true),
    ExportColumn::new("saved_from", "text", true),
    ExportColumn::new("reply_to_message_id", "int8", true),
    ExportColumn::new("reply_to_peer_id", "text", true),
    ExportColumn::new("via_bot", "text", true),
    ExportColumn::new("action", "text", true),
    ExportColumn::new("actor_name", "text", true),
    ExportColumn::new("actor_id", "text", true),
    ExportColumn::new("text", "text", false),
    // jsonb's binary COPY form starts with a version byte; as text it is plain UTF-8 JSON.
    ExportColumn::computed("entities", "json", true, "entities::text"),
    ExportColumn::computed("media", "json", true, "media::text"),
    ExportColumn::new("raw_json", "text", false),
    ExportColumn::new("import_id", "text", false),
];

const MESSAGE_KEY_COLUMNS: &[ExportColumn] =
    &[ExportColumn::new("owner", "text", false), ExportColumn::new("chat_id", "int8", false), ExportColumn::new("message_id", "int8", false)];

const CHAT_GRANT_COLUMNS: &[ExportColumn] = &[
    ExportColumn::new("owner", "text", false),
    ExportColumn::new("chat_id", "int8", false),
    ExportColumn::new("grantee", "text", false),
    ExportColumn::new("granted_by", "text", false),
    ExportColumn::new("granted_at", "timestamptz", false),
];

/// Every column of `files` but the deletion bookkeeping: only live files are exported.
const FILE_COLUMNS: &[ExportColumn] = &[
    ExportColumn::new("file_id", "text", false),
    ExportColumn::new("owner", "text", false),
    ExportColumn::new("name", "text", false),
    ExportColumn::new("content_type", "text", false),
    ExportColumn::new("size", "int8", false),
    ExportColumn::new("sha256", "text", false),
    ExportColumn::new("uploaded_at", "timestamptz", false),
    ExportColumn::new("upload_date", "date", false),
    ExportColumn::new("block_size", "int8", false),
    ExportColumn::new("data_parts", "int4", false),
    ExportColumn::new("parity_parts", "int4", false),
    ExportColumn::new("fault_tolerance", "int4", false),
];

const FILE_PART_COLUMNS: &[ExportColumn] = &[
    ExportColumn::new("file_id", "text", false),
    ExportColumn::new("part_index", "int4", false),
    ExportColumn::new("node_id", "text", false),
    ExportColumn::new("size", "int8", false),
    ExportColumn::new("sha256", "text", false),
];

/// The tables storage exports. Files have no chat, so a chat filter leaves them whole;
/// `message_keys` (which messages exist, for a restore to compare against) is only sent
/// when asked for by name.
pub const SNAPSHOT_TABLES: &[ExportTable] = &[
    ExportTable {
        name: "chats",
        columns: CHAT_COLUMNS,
        from: "chats",
        condition: None,
        chat_filter: ChatFilter::Column("chat_id"),
        exported_by_default: true,
    },
    ExportTable {
        name: "messages",
        columns: MESSAGE_COLUMNS,
        from: "messages",
        condition: None,
        chat_filter: ChatFilter::Column("chat_id"),
        exported_by_default: true,
    },
    ExportTable {
        name: "chat_grants",
        columns: CHAT_GRANT_COLUMNS,
        from: "chat_grants",
        condition: None,
        chat_filter: ChatFilter::Column("chat_id"),
        exported_by_default: true,
    },
    ExportTable {
        name: "files",
        columns: FILE_COLUMNS,
        from: "files",
        condition: Some("deleted_at IS NULL"),
        chat_filter: ChatFilter::Ignored,
        exported_by_default: true,
    },
    ExportTable {
        name: "file_parts",
        columns: FILE_PART_COLUMNS,
        from: "file_parts",
        condition: Some("file_id IN (SELECT file_id FROM files WHERE deleted_at IS NULL)"),
        chat_filter: ChatFilter::Ignored,
        exported_by_default: true,
    },
    ExportTable {
        name: "message_keys",
        columns: MESSAGE_KEY_COLUMNS,
        from: "messages",
        condition: None,
        chat_filter: ChatFilter::Column("chat_id"),
        exported_by_default: false,
    },
];

/// The snapshot export of storage's tables; served as `SnapshotService`.
pub fn exporter(pool: Pool, kafka: &KafkaConfig) -> SnapshotExporter {
    SnapshotExporter::new(pool, crate::SERVICE_NAME, kafka, SNAPSHOT_PROJECTIONS, SNAPSHOT_TABLES)
}
