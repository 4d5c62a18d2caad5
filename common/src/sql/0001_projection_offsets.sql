-- Next offset to read, per projection and partition, written in the same transaction as
-- the rows a batch produced: the projection's exactly-once effect rests on this table.
CREATE TABLE projection_offsets (
    projection  text        NOT NULL,
    topic       text        NOT NULL,
    partition   integer     NOT NULL,
    next_offset bigint      NOT NULL,
    updated_at  timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (projection, topic, partition)
);
