-- Telegram authors, projected from `chat.events`.
-- Which author wrote each message: counts change only when a message is new or changes
-- author, so they stay exact under re-import and redelivery.
CREATE TABLE author_messages (
    chat_id    bigint      NOT NULL,
    message_id bigint      NOT NULL,
    author_id  text        NOT NULL,
    sent_at    timestamptz,
    PRIMARY KEY (chat_id, message_id)
);

CREATE TABLE author_chat_counts (
    author_id        text        NOT NULL,
    chat_id          bigint      NOT NULL,
    message_count    bigint      NOT NULL,
    first_message_at timestamptz,
    last_message_at  timestamptz,
    PRIMARY KEY (author_id, chat_id)
);
CREATE INDEX author_chat_counts_by_chat ON author_chat_counts (chat_id, message_count DESC);

-- Every name an author was seen with; the latest sighting names them in listings.
CREATE TABLE author_names (
    author_id     text        NOT NULL,
    name          text        NOT NULL,
    first_seen_at timestamptz,
    last_seen_at  timestamptz,
    PRIMARY KEY (author_id, name)
);
