-- The backup catalog: one row per backup folder this service holds.
CREATE TABLE backups (
    backup_id   text        PRIMARY KEY,
    created_at  timestamptz NOT NULL,
    -- manual, scheduled or uploaded
    origin      text        NOT NULL,
    path        text        NOT NULL,
    total_bytes bigint      NOT NULL,
    manifest    jsonb       NOT NULL
);
CREATE INDEX backups_by_time ON backups (created_at DESC);
