//! The storage service's SQL statements.

/// Upserts a chat header from `ChatImported` (one owner's archive of the chat).
pub const UPSERT_CHAT: &str = "
    INSERT INTO chats (owner, chat_id, name, chat_type, left_chat, last_import_id, source, imported_at)
    VALUES ($8, $1, $2, $3, $4, $5, $6, $7)
    ON CONFLICT (owner, chat_id) DO UPDATE SET
        name = EXCLUDED.name,
        chat_type = EXCLUDED.chat_type,
        left_chat = EXCLUDED.left_chat,
        last_import_id = EXCLUDED.last_import_id,
        source = EXCLUDED.source,
        imported_at = EXCLUDED.imported_at";

/// A staging table for one batch. The merge drops it, since a transaction may apply several
/// parts of a batch (the projection runner isolates a record that cannot be applied), and
/// `ON COMMIT DROP` covers a transaction that ends before the merge.
pub const CREATE_MESSAGE_STAGING: &str = "
    CREATE TEMP TABLE staging_messages (LIKE messages INCLUDING DEFAULTS) ON COMMIT DROP";

/// The columns a message is COPYed with, in the order of `MESSAGE_STAGING_TYPES`.
macro_rules! copied_message_columns {
    () => {
        "(chat_id, message_id, kind, sent_at, edited_at, from_name, from_id, author_signature, forwarded_from, saved_from,
          reply_to_message_id, reply_to_peer_id, via_bot, action, actor_name, actor_id, text, entities, media, raw_json, import_id, owner)"
    };
}

/// Which messages of a batch (keys `$1` owners, `$2` chat ids, `$3` message ids) are stored
/// already.
pub const STORED_MESSAGE_KEYS: &str = "
    SELECT stored.owner, stored.chat_id, stored.message_id
    FROM unnest($1::text[], $2::int8[], $3::int8[]) AS batch(owner, chat_id, message_id)
    JOIN messages stored USING (owner, chat_id, message_id)";

/// Messages no archive holds yet go straight into `messages` (COPY's bulk path, as fast as
/// loading the table can be); only the others are merged through the staging table.
pub const COPY_NEW_MESSAGES: &str = concat!("COPY messages ", copied_message_columns!(), " FROM STDIN (FORMAT binary)");

/// Creates the chat rows of archives the batch added messages to (`$1` owners, `$2` chat ids).
pub const ENSURE_CHATS: &str = "
    INSERT INTO chats (owner, chat_id)
    SELECT owner, chat_id FROM unnest($1::text[], $2::int8[]) AS added(owner, chat_id)
    ON CONFLICT (owner, chat_id) DO NOTHING";

/// Counts the messages a batch added straight to `messages` (`$1` owners, `$2` chat ids,
/// `$3` counts, `$4` earliest and `$5` latest send times, one entry per archive).
pub const ADD_NEW_MESSAGE_COUNTS: &str = "
    UPDATE chats SET
        message_count = chats.message_count + added.messages,
        first_message_at = LEAST(chats.first_message_at, added.first_at),
        last_message_at = GREATEST(chats.last_message_at, added.last_at)
    FROM unnest($1::text[], $2::int8[], $3::int8[], $4::timestamptz[], $5::timestamptz[]) AS added(owner, chat_id, messages, first_at, last_at)
    WHERE chats.owner = added.owner AND chats.chat_id = added.chat_id";

pub const COPY_MESSAGE_STAGING: &str = concat!("COPY staging_messages ", copied_message_columns!(), " FROM STDIN (FORMAT binary)");

/// Merges the staged batch: new messages are inserted, changed ones (edits, a newer export)
/// replace the stored copy, identical ones are left alone. `xmax = 0` marks the rows that
/// were inserted rather than updated, so chat counts grow by new messages only. Every key
/// holds the owner: each archive of a chat is counted on its own.
pub const MERGE_MESSAGE_STAGING: &str = "
    INSERT INTO chats (owner, chat_id)
    SELECT DISTINCT owner, chat_id FROM staging_messages
    ON CONFLICT (owner, chat_id) DO NOTHING;

    WITH merged AS (
        INSERT INTO messages AS stored
        SELECT * FROM staging_messages
        ON CONFLICT (owner, chat_id, message_id) DO UPDATE SET
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
        RETURNING owner, chat_id, (xmax = 0) AS inserted, sent_at
    ), per_chat AS (
        SELECT owner, chat_id,
               count(*) FILTER (WHERE inserted) AS added,
               min(sent_at) AS first_at,
               max(sent_at) AS last_at
        FROM merged
        GROUP BY owner, chat_id
    )
    UPDATE chats SET
        message_count = chats.message_count + per_chat.added,
        first_message_at = LEAST(chats.first_message_at, per_chat.first_at),
        last_message_at = GREATEST(chats.last_message_at, per_chat.last_at)
    FROM per_chat
    WHERE chats.owner = per_chat.owner AND chats.chat_id = per_chat.chat_id;

    DROP TABLE staging_messages";

/// The archives a caller sees, as a condition on a row of `chats` (aliased `chats`): every
/// archive for an admin (`$1`), else the caller's (`$2`) own and those shared with them.
macro_rules! visible_chat {
    () => {
        "($1::bool OR chats.owner = $2::text OR EXISTS (
            SELECT 1 FROM chat_grants grants
            WHERE grants.owner = chats.owner AND grants.chat_id = chats.chat_id AND grants.grantee = $2::text))"
    };
}

/// The archives the caller (`$1` admin, `$2` username) sees, with their grantees for the
/// archives they may share (their own; every archive for an admin), the start of the text of
/// each archive's newest message (one backward step on the primary key per archive) and when
/// it was imported. 400 stored characters hold at least the 200 a preview shows, escapes
/// ([`chatvault_common::text`]) taking two.
pub const LIST_CHATS: &str = concat!(
    "SELECT chat_id, name, chat_type, message_count, first_message_at, last_message_at, left_chat, owner,
            CASE WHEN $1::bool OR chats.owner = $2::text THEN ARRAY(
                SELECT grantee FROM chat_grants grants
                WHERE grants.owner = chats.owner AND grants.chat_id = chats.chat_id ORDER BY grantee)
            ELSE ARRAY[]::text[] END,
            newest.text_start, imported_at
     FROM chats
     LEFT JOIN LATERAL (
         SELECT left(newest_message.text, 400) AS text_start FROM messages newest_message
         WHERE newest_message.owner = chats.owner AND newest_message.chat_id = chats.chat_id
         ORDER BY newest_message.message_id DESC
         LIMIT 1
     ) newest ON true
     WHERE ",
    visible_chat!(),
    "
     ORDER BY last_message_at DESC NULLS LAST, chat_id, owner"
);

/// The owners of the archives of chat `$3` the caller (`$1` admin, `$2` username) sees.
pub const VISIBLE_CHAT_OWNERS: &str = concat!("SELECT owner FROM chats WHERE chat_id = $3 AND ", visible_chat!(), " ORDER BY owner");

/// The columns of a message, in the order `stored_message_of_row` reads them; every
/// statement that uses them adds the highlighted text (or NULL) as the last column. The
/// export's own JSON comes along only for the media whose details live nowhere else
/// (polls, locations, venues, contacts, stickers).
macro_rules! message_columns {
    () => {
        "chat_id, message_id, kind, sent_at, edited_at, from_name, from_id,
           reply_to_message_id, text, entities, media, action, actor_name, forwarded_from, via_bot, owner,
           CASE WHEN media->>'kind' IN ('poll', 'location', 'live_location', 'venue', 'contact', 'sticker') THEN raw_json END"
    };
}

/// The messages of one archive (`$1` owner, `$2` chat) a page draws from: optionally within
/// dates (`$3` since, `$4` until), of an author (`$5`, id or name), matching a text search
/// (`$6`). Every statement adds a bound on `message_id` as `$7`, so each reads a range of the
/// primary key (owner, chat_id, message_id) from its cursor, never past skipped rows; only a
/// search for a rare word is planned through the text index instead, sorting its few matches.
macro_rules! message_filters {
    () => {
        "owner = $1 AND chat_id = $2
      AND ($3::timestamptz IS NULL OR sent_at >= $3)
      AND ($4::timestamptz IS NULL OR sent_at < $4)
      AND ($5::text IS NULL OR from_id = $5 OR from_name = $5)
      AND ($6::text IS NULL OR to_tsvector('russian', text) @@ websearch_to_tsquery('russian', $6))"
    };
}

/// The text of a message with every match of the search `$6` between U+0001 and U+0002
/// (NULL without a search). `HighlightAll` keeps the whole text, every character as stored.
macro_rules! highlighted_text {
    () => {
        "CASE WHEN $6::text IS NULL THEN NULL
              ELSE ts_headline('russian', text, websearch_to_tsquery('russian', $6), E'StartSel=\\x01, StopSel=\\x02, HighlightAll=true')
         END"
    };
}

/// The first `$8` messages with ids above `$7`, in id order (pages forward and by page token).
pub const MESSAGES_AFTER: &str = concat!(
    "SELECT ",
    message_columns!(),
    ", ",
    highlighted_text!(),
    "
    FROM messages
    WHERE ",
    message_filters!(),
    "
      AND message_id > $7
    ORDER BY message_id
    LIMIT $8"
);

/// The last `$8` messages with ids below `$7`, newest first (pages backward; the caller puts
/// them in id order).
pub const MESSAGES_BEFORE: &str = concat!(
    "SELECT ",
    message_columns!(),
    ", ",
    highlighted_text!(),
    "
    FROM messages
    WHERE ",
    message_filters!(),
    "
      AND message_id < $7
    ORDER BY message_id DESC
    LIMIT $8"
);

/// The nearest message of the filters with an id of at most `$7`: whether something is older
/// than a page. A keyset probe rather than `EXISTS`, whose ORDER BY and LIMIT PostgreSQL drops:
/// the planner may then read the table from its start (a sequential scan over most of a big
/// chat), where this always starts on the primary key at `$7`.
pub const NEAREST_MESSAGE_AT_OR_BELOW: &str =
    concat!("SELECT message_id FROM messages WHERE ", message_filters!(), " AND message_id <= $7 ORDER BY message_id DESC LIMIT 1");

/// The nearest message of the filters with an id of at least `$7`: whether something is newer
/// than a page.
pub const NEAREST_MESSAGE_AT_OR_ABOVE: &str =
    concat!("SELECT message_id FROM messages WHERE ", message_filters!(), " AND message_id >= $7 ORDER BY message_id LIMIT 1");

/// One archive's (`$1` owner, `$2` chat) dated messages per calendar month in UTC, oldest
/// month first: year, month, count; months without messages are left out. Each month is one
/// range of the date index (owner, chat_id, sent_at), counted without touching the rows
/// where the visibility map allows, and the months come in order without a sort of the
/// messages (grouping the rows by a computed month sorted a million of them on disk).
pub const COUNT_MESSAGES_BY_MONTH: &str = "
    WITH dates AS (
        SELECT (SELECT min(sent_at) FROM messages WHERE owner = $1 AND chat_id = $2) AS first_at,
               (SELECT max(sent_at) FROM messages WHERE owner = $1 AND chat_id = $2) AS last_at
    ), months AS (
        SELECT generate_series(
                   date_trunc('month', first_at AT TIME ZONE 'UTC'),
                   date_trunc('month', last_at AT TIME ZONE 'UTC'),
                   interval '1 month') AS month
        FROM dates
        WHERE first_at IS NOT NULL
    )
    SELECT EXTRACT(YEAR FROM month)::int4, EXTRACT(MONTH FROM month)::int4, counted.messages
    FROM months
    CROSS JOIN LATERAL (
        SELECT count(*) AS messages FROM messages
        WHERE owner = $1 AND chat_id = $2
          AND sent_at >= month AT TIME ZONE 'UTC' AND sent_at < (month + interval '1 month') AT TIME ZONE 'UTC'
    ) counted
    WHERE counted.messages > 0
    ORDER BY month";

/// The reply thread of a message in one archive (`$3` owner, `$1` chat): its ancestors up to
/// the root, and all its descendants.
pub const GET_THREAD: &str = concat!(
    "
    WITH RECURSIVE ancestors AS (
        SELECT message_id, reply_to_message_id, 0 AS depth FROM messages WHERE owner = $3 AND chat_id = $1 AND message_id = $2
        UNION ALL
        SELECT parent.message_id, parent.reply_to_message_id, ancestors.depth + 1
        FROM messages parent JOIN ancestors ON parent.message_id = ancestors.reply_to_message_id
        WHERE parent.owner = $3 AND parent.chat_id = $1 AND ancestors.depth < 10000
    ), descendants AS (
        SELECT message_id, 0 AS depth FROM messages WHERE owner = $3 AND chat_id = $1 AND message_id = $2
        UNION ALL
        SELECT child.message_id, descendants.depth + 1
        FROM messages child JOIN descendants ON child.reply_to_message_id = descendants.message_id
        WHERE child.owner = $3 AND child.chat_id = $1 AND descendants.depth < 10000
    )
    SELECT ",
    message_columns!(),
    ", NULL::text
    FROM messages
    WHERE owner = $3 AND chat_id = $1
      AND message_id IN (SELECT message_id FROM ancestors UNION SELECT message_id FROM descendants)
    ORDER BY message_id"
);

/// Whether archive (`$1` owner, `$2` chat) is shared with `$3`.
pub const GRANT_EXISTS: &str = "SELECT 1 FROM chat_grants WHERE owner = $1 AND chat_id = $2 AND grantee = $3";

/// Records grants from `ChatShared` (the last event of each grant in a batch).
pub const UPSERT_GRANTS: &str = "
    INSERT INTO chat_grants (owner, chat_id, grantee, granted_by, granted_at)
    SELECT * FROM unnest($1::text[], $2::int8[], $3::text[], $4::text[], $5::timestamptz[])
    ON CONFLICT (owner, chat_id, grantee) DO UPDATE SET
        granted_by = EXCLUDED.granted_by,
        granted_at = EXCLUDED.granted_at";

/// Drops grants from `ChatShareRevoked` (the last event of each grant in a batch).
pub const DELETE_GRANTS: &str = "
    DELETE FROM chat_grants grants
    USING unnest($1::text[], $2::int8[], $3::text[]) AS revoked(owner, chat_id, grantee)
    WHERE grants.owner = revoked.owner AND grants.chat_id = revoked.chat_id AND grants.grantee = revoked.grantee";

/// The username of the account named `$1`, compared without case as the users service
/// compares usernames (projected from `users.events`).
pub const KNOWN_ACCOUNT: &str = "SELECT username FROM known_accounts WHERE lower(username) = lower($1) ORDER BY username LIMIT 1";
