-- Wrong link codes per Telegram account, so codes cannot be guessed by trying.
CREATE TABLE link_attempts (
    telegram_user_id BIGINT NOT NULL,
    attempted_at     TIMESTAMPTZ NOT NULL DEFAULT now()
);
CREATE INDEX link_attempts_by_user ON link_attempts (telegram_user_id, attempted_at);
