-- Chats and their messages, projected from `chat.events`.
CREATE TABLE chats (
    chat_id          bigint      PRIMARY KEY,
    name             text,
    chat_type        text        NOT NULL DEFAULT '',
    left_chat        boolean     NOT NULL DEFAULT false,
    message_count    bigint      NOT NULL DEFAULT 0,
    first_message_at timestamptz,
    last_message_at  timestamptz,
    last_import_id   text,
    source           text,
    imported_at      timestamptz
);

CREATE TABLE messages (
    chat_id             bigint      NOT NULL,
    message_id          bigint      NOT NULL,
    kind                smallint    NOT NULL,
    sent_at             timestamptz,
    edited_at           timestamptz,
    from_name           text,
    from_id             text,
    author_signature    text,
    forwarded_from      text,
    saved_from          text,
    reply_to_message_id bigint,
    reply_to_peer_id    text,
    via_bot             text,
    action              text,
    actor_name          text,
    actor_id            text,
    text                text        NOT NULL,
    entities            jsonb,
    media               jsonb,
    raw_json            text        NOT NULL,
    import_id           text        NOT NULL,
    PRIMARY KEY (chat_id, message_id)
);

CREATE INDEX messages_by_chat_and_date ON messages (chat_id, sent_at);
