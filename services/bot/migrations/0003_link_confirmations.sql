-- A valid link code is confirmed with a button before the link is made, so that a code
-- someone else made (sent as a t.me deep link) never links a Telegram account unseen.
CREATE TABLE link_confirmations (
    confirmation_id  TEXT PRIMARY KEY,
    telegram_user_id BIGINT NOT NULL,
    account_id       TEXT NOT NULL,
    username         TEXT NOT NULL,
    expires_at       TIMESTAMPTZ NOT NULL
);
