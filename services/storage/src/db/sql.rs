//! The storage service's SQL statements.

/// Upserts a chat header from `ChatImported`.
pub const UPSERT_CHAT: &str = "
    INSERT INTO chats (chat_id, name, chat_type, left_chat, last_import_id, source, imported_at)
    VALUES ($1, $2, $3, $4, $5, $6, $7)
    ON CONFLICT (chat_id) DO UPDATE SET
        name = EXCLUDED.name,
        chat_type = EXCLUDED.chat_type,
        left_chat = EXCLUDED.left_chat,
        last_import_id = EXCLUDED.last_import_id,
        source = EXCLUDED.source,
        imported_at = EXCLUDED.imported_at";

/// A staging table for one batch, gone at commit.
pub const CREATE_MESSAGE_STAGING: &str = "
    CREATE TEMP TABLE staging_messages (LIKE messages INCLUDING DEFAULTS) ON COMMIT DROP";

pub const COPY_MESSAGE_STAGING: &str = "
    COPY staging_messages (chat_id, message_id, kind, sent_at, edited_at, from_name, from_id,
        author_signature, forwarded_from, saved_from, reply_to_message_id, reply_to_peer_id,
        via_bot, action, actor_name, actor_id, text, entities, media, raw_json, import_id)
    FROM STDIN (FORMAT binary)";

/// Merges the staged batch: new messages are inserted, changed ones (edits, a newer export)
/// replace the stored copy, identical ones are left alone. `xmax = 0` marks the rows that
/// were inserted rather than updated, so chat counts grow by new messages only.
pub const MERGE_MESSAGE_STAGING: &str = "
    INSERT INTO chats (chat_id)
    SELECT DISTINCT chat_id FROM staging_messages
    ON CONFLICT (chat_id) DO NOTHING;

    WITH merged AS (
        INSERT INTO messages AS stored
        SELECT * FROM staging_messages
        ON CONFLICT (chat_id, message_id) DO UPDATE SET
            kind = EXCLUDED.kind,
            sent_at = EXCLUDED.sent_at,
            edited_at = EXCLUDED.edited_at,
            from_name = EXCLUDED.from_name,
            from_id = EXCLUDED.from_id,
            author_signature = EXCLUDED.author_signature,
            forwarded_from = EXCLUDED.forwarded_from,
            saved_from = EXCLUDED.saved_from,
            reply_to_message_id = EXCLUDED.reply_to_message_id,
            reply_to_peer_id = EXCLUDED.reply_to_peer_id,
            via_bot = EXCLUDED.via_bot,
            action = EXCLUDED.action,
            actor_name = EXCLUDED.actor_name,
            actor_id = EXCLUDED.actor_id,
            text = EXCLUDED.text,
            entities = EXCLUDED.entities,
            media = EXCLUDED.media,
            raw_json = EXCLUDED.raw_json,
            import_id = EXCLUDED.import_id
        WHERE stored.raw_json IS DISTINCT FROM EXCLUDED.raw_json
           OR stored.media IS DISTINCT FROM EXCLUDED.media
        RETURNING chat_id, (xmax = 0) AS inserted, sent_at
    ), per_chat AS (
        SELECT chat_id,
               count(*) FILTER (WHERE inserted) AS added,
               min(sent_at) AS first_at,
               max(sent_at) AS last_at
        FROM merged
        GROUP BY chat_id
    )
    UPDATE chats SET
        message_count = chats.message_count + per_chat.added,
        first_message_at = LEAST(chats.first_message_at, per_chat.first_at),
        last_message_at = GREATEST(chats.last_message_at, per_chat.last_at)
    FROM per_chat
    WHERE chats.chat_id = per_chat.chat_id";

pub const LIST_CHATS: &str = "
    SELECT chat_id, name, chat_type, message_count, first_message_at, last_message_at, left_chat
    FROM chats
    ORDER BY last_message_at DESC NULLS LAST, chat_id";

/// A page of a chat's messages in id order, after a cursor, optionally within dates.
pub const GET_MESSAGES: &str = "
    SELECT chat_id, message_id, kind, sent_at, edited_at, from_name, from_id,
           reply_to_message_id, text, entities, media, action, actor_name, forwarded_from, via_bot
    FROM messages
    WHERE chat_id = $1
      AND message_id > $2
      AND ($3::timestamptz IS NULL OR sent_at >= $3)
      AND ($4::timestamptz IS NULL OR sent_at < $4)
      AND ($6::text IS NULL OR from_id = $6 OR from_name = $6)
      AND ($7::text IS NULL OR to_tsvector('russian', text) @@ websearch_to_tsquery('russian', $7))
    ORDER BY message_id
    LIMIT $5";

/// The reply thread of a message: its ancestors up to the root, and all its descendants.
pub const GET_THREAD: &str = "
    WITH RECURSIVE ancestors AS (
        SELECT message_id, reply_to_message_id, 0 AS depth FROM messages WHERE chat_id = $1 AND message_id = $2
        UNION ALL
        SELECT parent.message_id, parent.reply_to_message_id, ancestors.depth + 1
        FROM messages parent JOIN ancestors ON parent.message_id = ancestors.reply_to_message_id
        WHERE parent.chat_id = $1 AND ancestors.depth < 10000
    ), descendants AS (
        SELECT message_id, 0 AS depth FROM messages WHERE chat_id = $1 AND message_id = $2
        UNION ALL
        SELECT child.message_id, descendants.depth + 1
        FROM messages child JOIN descendants ON child.reply_to_message_id = descendants.message_id
        WHERE child.chat_id = $1 AND descendants.depth < 10000
    )
    SELECT chat_id, message_id, kind, sent_at, edited_at, from_name, from_id,
           reply_to_message_id, text, entities, media, action, actor_name, forwarded_from, via_bot
    FROM messages
    WHERE chat_id = $1
      AND message_id IN (SELECT message_id FROM ancestors UNION SELECT message_id FROM descendants)
    ORDER BY message_id";

pub const CHAT_EXISTS: &str = "SELECT 1 FROM chats WHERE chat_id = $1";
