-- Browser sessions: the cookie holds a random id; only its SHA-256 is stored here, with the
-- person's tokens (the access token is short-lived; the refresh token rotates on use).
CREATE TABLE web_sessions (
    id_sha256          text        PRIMARY KEY,
    username           text        NOT NULL,
    role               text        NOT NULL,
    access_token       text        NOT NULL,
    access_expires_at  timestamptz NOT NULL,
    refresh_token      text        NOT NULL,
    refresh_expires_at timestamptz NOT NULL,
    -- The synchronizer token every form and script request of the session must carry.
    csrf_token         text        NOT NULL,
    created_at         timestamptz NOT NULL DEFAULT now(),
    last_seen_at       timestamptz NOT NULL DEFAULT now()
);

CREATE INDEX web_sessions_by_refresh_expiry ON web_sessions (refresh_expires_at);

-- The summary of an import made in the browser, shown on its own page after the upload.
CREATE TABLE web_import_results (
    import_id  text        PRIMARY KEY,
    username   text        NOT NULL,
    summary    jsonb       NOT NULL,
    created_at timestamptz NOT NULL DEFAULT now()
);

-- Thumbnails of photos, made once from the stored file (keyed by its content hash, so a
-- thumbnail is served only after the caller's StatFile of the file succeeded).
CREATE TABLE web_thumbnails (
    sha256       text        PRIMARY KEY,
    content_type text        NOT NULL,
    bytes        bytea       NOT NULL,
    created_at   timestamptz NOT NULL DEFAULT now()
);
