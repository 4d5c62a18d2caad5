-- Full-text search over message text. PostgreSQL's `russian` configuration stems Cyrillic
-- words with the Russian stemmer and ASCII words with the English one, so one index serves
-- Russian and English text alike.
CREATE INDEX messages_text_search ON messages USING gin (to_tsvector('russian', text));
-- Replies of a message, for reply threads.
CREATE INDEX messages_by_reply ON messages (chat_id, reply_to_message_id) WHERE reply_to_message_id IS NOT NULL;
-- Messages of an author.
CREATE INDEX messages_by_author ON messages (chat_id, from_id, message_id);
