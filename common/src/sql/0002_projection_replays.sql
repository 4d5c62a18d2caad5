-- Where a projection stands in applying a committed staged import (see the projection
-- runner): the next offset to read on the import's partition, written in the same
-- transaction as the rows of each batch, so an interrupted application resumes there. The
-- row goes when the import is applied (with the partition's offset moving past the marker).
CREATE TABLE projection_replays (
    projection  text        NOT NULL,
    topic       text        NOT NULL,
    partition   integer     NOT NULL,
    import_id   text        NOT NULL,
    next_offset bigint      NOT NULL,
    updated_at  timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (projection, topic, partition, import_id)
);
