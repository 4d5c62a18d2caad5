-- The files catalog (projected from files.events), its parts, share links, and the
-- storage node registry (projected from storage.nodes).

CREATE TABLE files (
    file_id         text PRIMARY KEY,
    owner           text NOT NULL,
    name            text NOT NULL,
    content_type    text NOT NULL,
    size            bigint NOT NULL,
    sha256          text NOT NULL,
    uploaded_at     timestamptz NOT NULL,
    upload_date     date NOT NULL,
    block_size      bigint NOT NULL,
    data_parts      integer NOT NULL,
    parity_parts    integer NOT NULL,
    fault_tolerance integer NOT NULL,
    deleted_at      timestamptz,
    -- Set once every part of a deleted file is gone from its node.
    parts_purged_at timestamptz
);

-- The date folders: an owner's live files of one upload date.
CREATE INDEX files_owner_date ON files (owner, upload_date) WHERE deleted_at IS NULL;
CREATE INDEX files_awaiting_purge ON files (deleted_at) WHERE deleted_at IS NOT NULL AND parts_purged_at IS NULL;

CREATE TABLE file_parts (
    file_id    text NOT NULL REFERENCES files (file_id),
    part_index integer NOT NULL,
    node_id    text NOT NULL,
    size       bigint NOT NULL,
    sha256     text NOT NULL,
    PRIMARY KEY (file_id, part_index)
);

CREATE INDEX file_parts_node ON file_parts (node_id);

CREATE TABLE share_links (
    token_sha256  text PRIMARY KEY,
    file_id       text NOT NULL REFERENCES files (file_id),
    created_at    timestamptz NOT NULL,
    expires_at    timestamptz NOT NULL,
    -- Argon2 PHC string; NULL when the link has no password.
    password_hash text,
    created_by    text NOT NULL,
    revoked_at    timestamptz
);

CREATE TABLE storage_nodes (
    node_id       text PRIMARY KEY,
    address       text NOT NULL,
    registered_at timestamptz NOT NULL
);
