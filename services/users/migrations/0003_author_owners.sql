-- Author statistics belong to the archive they were counted in: one owner's copy of a chat
-- (the account that imported it). Every key holds the owner, and names hold the chat too,
-- so an account sees the names, counts and messages of the archives it may see and nothing
-- of any other. Rows from before owners existed get the owner '', which only admins see.

ALTER TABLE author_messages ADD COLUMN owner text NOT NULL DEFAULT '';
ALTER TABLE author_messages ALTER COLUMN owner DROP DEFAULT;
ALTER TABLE author_messages DROP CONSTRAINT author_messages_pkey;
ALTER TABLE author_messages ADD PRIMARY KEY (owner, chat_id, message_id);

ALTER TABLE author_chat_counts ADD COLUMN owner text NOT NULL DEFAULT '';
ALTER TABLE author_chat_counts ALTER COLUMN owner DROP DEFAULT;
ALTER TABLE author_chat_counts DROP CONSTRAINT author_chat_counts_pkey;
-- Led by the author: AuthorStats reads one author across the archives a caller sees.
ALTER TABLE author_chat_counts ADD PRIMARY KEY (author_id, owner, chat_id);
DROP INDEX author_chat_counts_by_chat;
CREATE INDEX author_chat_counts_by_chat ON author_chat_counts (owner, chat_id, message_count DESC);
-- Resolving which archives of a chat id a caller sees starts from the chat id.
CREATE INDEX author_chat_counts_by_chat_id ON author_chat_counts (chat_id);

-- Names were kept per author only; they are now kept per archive (owner and chat), since a
-- name seen in one chat must not show through another. The old names are attributed to
-- every chat their author was counted in (all of them owned by '').
ALTER TABLE author_names ADD COLUMN owner text NOT NULL DEFAULT '';
ALTER TABLE author_names ALTER COLUMN owner DROP DEFAULT;
ALTER TABLE author_names ADD COLUMN chat_id bigint;
ALTER TABLE author_names DROP CONSTRAINT author_names_pkey;
INSERT INTO author_names (owner, chat_id, author_id, name, first_seen_at, last_seen_at)
SELECT counts.owner, counts.chat_id, names.author_id, names.name, names.first_seen_at, names.last_seen_at
FROM author_names names
JOIN author_chat_counts counts ON counts.author_id = names.author_id
WHERE names.chat_id IS NULL;
DELETE FROM author_names WHERE chat_id IS NULL;
ALTER TABLE author_names ALTER COLUMN chat_id SET NOT NULL;
ALTER TABLE author_names ADD PRIMARY KEY (owner, chat_id, author_id, name);
CREATE INDEX author_names_by_author ON author_names (author_id);

-- Who an archive is shared with besides its owner, projected from `chat.events` like the
-- counts (storage keeps its own copy; a service never reads another's database).
CREATE TABLE author_chat_grants (
    owner      text        NOT NULL,
    chat_id    bigint      NOT NULL,
    grantee    text        NOT NULL,
    granted_at timestamptz NOT NULL,
    PRIMARY KEY (owner, chat_id, grantee)
);
CREATE INDEX author_chat_grants_by_grantee ON author_chat_grants (grantee, owner, chat_id);
