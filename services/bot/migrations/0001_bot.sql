-- The Telegram bot and its storage workers share this database: one bounded context.

-- A Telegram account linked to a chatvault account (at most one each way).
CREATE TABLE telegram_links (
    telegram_user_id  BIGINT PRIMARY KEY,
    telegram_username TEXT NOT NULL DEFAULT '',
    chat_id           BIGINT NOT NULL,
    account_id        TEXT NOT NULL UNIQUE,
    username          TEXT NOT NULL,
    linked_at         TIMESTAMPTZ NOT NULL DEFAULT now(),
    -- IANA time zone of the person's date folders.
    time_zone         TEXT NOT NULL DEFAULT 'UTC',
    -- chatvault | drive | both
    store_target      TEXT NOT NULL DEFAULT 'chatvault' CHECK (store_target IN ('chatvault', 'drive', 'both'))
);

-- One-time link codes (only their SHA-256 is kept).
CREATE TABLE link_codes (
    code_sha256 TEXT PRIMARY KEY,
    account_id  TEXT NOT NULL,
    username    TEXT NOT NULL,
    expires_at  TIMESTAMPTZ NOT NULL
);

-- A person's Google Drive grant: the refresh token sealed with AES-256-GCM.
CREATE TABLE drive_grants (
    account_id      TEXT PRIMARY KEY,
    sealed_refresh  BYTEA NOT NULL,
    scope           TEXT NOT NULL,
    linked_at       TIMESTAMPTZ NOT NULL DEFAULT now(),
    -- Set when Google refused the grant (expired or revoked): the person must /drive again.
    needs_relink    BOOLEAN NOT NULL DEFAULT false
);

-- OAuth authorizations in flight: the state (hashed) binds the callback to the person.
CREATE TABLE oauth_states (
    state_sha256     TEXT PRIMARY KEY,
    telegram_user_id BIGINT NOT NULL,
    account_id       TEXT NOT NULL,
    sealed_verifier  BYTEA NOT NULL,
    expires_at       TIMESTAMPTZ NOT NULL
);

-- Drive folders made for a person: the `chatvault` root (name '') and one per date. The
-- row is locked while a worker looks the folder up or creates it, so two workers never
-- create the same folder twice.
CREATE TABLE drive_folders (
    account_id TEXT NOT NULL,
    name       TEXT NOT NULL,
    folder_id  TEXT,
    PRIMARY KEY (account_id, name)
);

-- Resumable Drive uploads begun: another worker resumes one where it stopped.
CREATE TABLE drive_uploads (
    account_id  TEXT NOT NULL,
    sha256      TEXT NOT NULL,
    folder_date TEXT NOT NULL,
    session_uri TEXT NOT NULL,
    total_bytes BIGINT NOT NULL,
    started_at  TIMESTAMPTZ NOT NULL DEFAULT now(),
    PRIMARY KEY (account_id, sha256, folder_date)
);

-- Files stored through the bot: what /files and /dates answer from, and the content-hash
-- check that stores the same bytes once per person.
CREATE TABLE stored_files (
    account_id    TEXT NOT NULL,
    sha256        TEXT NOT NULL,
    folder_date   TEXT NOT NULL,
    kind          TEXT NOT NULL,
    file_name     TEXT NOT NULL,
    content_type  TEXT NOT NULL,
    size          BIGINT NOT NULL,
    file_id       TEXT NOT NULL DEFAULT '',
    drive_file_id TEXT NOT NULL DEFAULT '',
    stored_at     TIMESTAMPTZ NOT NULL DEFAULT now(),
    PRIMARY KEY (account_id, sha256)
);
CREATE INDEX stored_files_by_date ON stored_files (account_id, folder_date);
