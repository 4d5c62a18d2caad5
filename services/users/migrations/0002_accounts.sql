-- Accounts, refresh tokens and the outbox of account events.
-- The users service is both writer and reader of accounts: a command changes these rows
-- and queues its events in `account_outbox` in one transaction; a relay publishes the
-- outbox to `users.events` after commit (with the event id and time fixed at command time,
-- so a republish after a crash is recognisable downstream).
CREATE TABLE accounts (
    account_id          uuid        PRIMARY KEY,
    username            text        NOT NULL,
    email               text        NOT NULL,
    password_hash       text        NOT NULL,
    role                text        NOT NULL DEFAULT 'user' CHECK (role IN ('user', 'admin')),
    created_at          timestamptz NOT NULL DEFAULT now(),
    password_changed_at timestamptz NOT NULL DEFAULT now(),
    failed_logins       integer     NOT NULL DEFAULT 0,
    locked_until        timestamptz
);
CREATE UNIQUE INDEX accounts_username_unique ON accounts (lower(username));
CREATE UNIQUE INDEX accounts_email_unique ON accounts (lower(email));

-- Refresh tokens are stored as SHA-256 hashes. One family per log-in; each use rotates the
-- token inside its family, and a rotated token presented again revokes the whole family.
CREATE TABLE refresh_tokens (
    token_hash  bytea       PRIMARY KEY,
    account_id  uuid        NOT NULL REFERENCES accounts (account_id),
    family_id   uuid        NOT NULL,
    issued_at   timestamptz NOT NULL DEFAULT now(),
    expires_at  timestamptz NOT NULL,
    rotated_at  timestamptz,
    revoked_at  timestamptz
);
CREATE INDEX refresh_tokens_by_account ON refresh_tokens (account_id);
CREATE INDEX refresh_tokens_by_family ON refresh_tokens (family_id);

CREATE TABLE account_outbox (
    outbox_id   bigserial   PRIMARY KEY,
    account_id  uuid        NOT NULL,
    event_id    uuid        NOT NULL,
    event_type  text        NOT NULL,
    occurred_at timestamptz NOT NULL,
    actor       text        NOT NULL,
    traceparent text,
    payload     bytea       NOT NULL
);
