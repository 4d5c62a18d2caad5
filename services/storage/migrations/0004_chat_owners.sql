-- Archives belong to the account that imported them: a chat is keyed by (owner, chat_id)
-- and a message by (owner, chat_id, message_id), so two accounts importing the same chat
-- each get an archive of their own. Rows from before owners existed get the owner '', which
-- only admins see. Sharing an archive with another account is a grant, projected from
-- `chat.events` (ChatShared / ChatShareRevoked) like everything else here.

ALTER TABLE chats ADD COLUMN owner text NOT NULL DEFAULT '';
ALTER TABLE chats ALTER COLUMN owner DROP DEFAULT;
ALTER TABLE chats DROP CONSTRAINT chats_pkey;
ALTER TABLE chats ADD PRIMARY KEY (owner, chat_id);
-- Resolving which archives of a chat id a caller sees starts from the chat id.
CREATE INDEX chats_by_chat_id ON chats (chat_id);

ALTER TABLE messages ADD COLUMN owner text NOT NULL DEFAULT '';
ALTER TABLE messages ALTER COLUMN owner DROP DEFAULT;
ALTER TABLE messages DROP CONSTRAINT messages_pkey;
ALTER TABLE messages ADD PRIMARY KEY (owner, chat_id, message_id);

-- Every query reads one archive: (owner, chat_id) leads each index.
DROP INDEX messages_by_chat_and_date;
CREATE INDEX messages_by_chat_and_date ON messages (owner, chat_id, sent_at);
DROP INDEX messages_by_reply;
CREATE INDEX messages_by_reply ON messages (owner, chat_id, reply_to_message_id) WHERE reply_to_message_id IS NOT NULL;
DROP INDEX messages_by_author;
CREATE INDEX messages_by_author ON messages (owner, chat_id, from_id, message_id);

-- Who an archive is shared with besides its owner.
CREATE TABLE chat_grants (
    owner      text        NOT NULL,
    chat_id    bigint      NOT NULL,
    grantee    text        NOT NULL,
    granted_by text        NOT NULL,
    granted_at timestamptz NOT NULL,
    PRIMARY KEY (owner, chat_id, grantee)
);
-- What is shared with a caller.
CREATE INDEX chat_grants_by_grantee ON chat_grants (grantee, owner, chat_id);
