-- The audit trail: one row per record of every domain topic and of `audit.logs`,
-- partitioned by day of `occurred_at` so retention drops whole partitions.
-- The key (occurred_at, event_id) makes a redelivered or republished record (same event-id
-- and occurred-at headers) a no-op; projection offsets make redelivery rare in the first place.
CREATE TABLE audit_rows (
    occurred_at   timestamptz NOT NULL,
    event_id      uuid        NOT NULL,
    topic         text        NOT NULL,
    kafka_partition integer   NOT NULL,
    kafka_offset  bigint      NOT NULL,
    service       text        NOT NULL,
    actor         text        NOT NULL DEFAULT '',
    event_type    text        NOT NULL,
    record_key    text        NOT NULL DEFAULT '',
    trace_id      text        NOT NULL DEFAULT '',
    event         jsonb       NOT NULL,
    PRIMARY KEY (occurred_at, event_id)
) PARTITION BY RANGE (occurred_at);
CREATE INDEX audit_rows_by_actor ON audit_rows (actor, occurred_at DESC);
CREATE INDEX audit_rows_by_type ON audit_rows (event_type, occurred_at DESC);
CREATE INDEX audit_rows_by_trace ON audit_rows (trace_id) WHERE trace_id <> '';
