//! SQL of the files catalog, share links and node registry.

pub(crate) const INSERT_FILES: &str = "
INSERT INTO files (file_id, owner, name, content_type, size, sha256, uploaded_at, upload_date, block_size,
                   data_parts, parity_parts, fault_tolerance)
SELECT * FROM unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::int8[], $6::text[], $7::timestamptz[],
                     $8::date[], $9::int8[], $10::int4[], $11::int4[], $12::int4[])
ON CONFLICT (file_id) DO NOTHING";

pub(crate) const INSERT_FILE_PARTS: &str = "
INSERT INTO file_parts (file_id, part_index, node_id, size, sha256)
SELECT * FROM unnest($1::text[], $2::int4[], $3::text[], $4::int8[], $5::text[])
ON CONFLICT (file_id, part_index) DO NOTHING";

pub(crate) const MARK_FILE_DELETED: &str = "UPDATE files SET deleted_at = $2 WHERE file_id = $1 AND deleted_at IS NULL";

pub(crate) const RENAME_FILE: &str = "UPDATE files SET name = $2 WHERE file_id = $1";

pub(crate) const MOVE_FILE_PART: &str = "UPDATE file_parts SET node_id = $4 WHERE file_id = $1 AND part_index = $2 AND node_id = $3";

pub(crate) const INSERT_SHARE_LINK: &str = "
INSERT INTO share_links (token_sha256, file_id, created_at, expires_at, password_hash, created_by)
VALUES ($1, $2, $3, $4, $5, $6)
ON CONFLICT (token_sha256) DO NOTHING";

pub(crate) const REVOKE_SHARE_LINK: &str = "UPDATE share_links SET revoked_at = $2 WHERE token_sha256 = $1 AND revoked_at IS NULL";

pub(crate) const UPSERT_STORAGE_NODE: &str = "
INSERT INTO storage_nodes (node_id, address, registered_at) VALUES ($1, $2, $3)
ON CONFLICT (node_id) DO UPDATE SET address = EXCLUDED.address";

/// Columns of a file for `FileInfo`, in this order.
pub(crate) const FILE_COLUMNS: &str = "file_id, name, content_type, size, sha256, upload_date, uploaded_at, fault_tolerance, owner, block_size";

pub(crate) fn live_file_by_id() -> String {
    format!("SELECT {FILE_COLUMNS} FROM files WHERE file_id = $1 AND deleted_at IS NULL")
}

pub(crate) fn live_files_of_owner_on_date() -> String {
    format!("SELECT {FILE_COLUMNS} FROM files WHERE owner = $1 AND upload_date = $2 AND deleted_at IS NULL ORDER BY uploaded_at, file_id")
}

/// An owner's date folders: each upload date with live files, its file count and bytes,
/// newest first (served by `files_owner_date`).
pub(crate) const FILE_DATES_OF_OWNER: &str = "
SELECT upload_date, count(*), COALESCE(sum(size), 0)::int8
FROM files WHERE owner = $1 AND deleted_at IS NULL
GROUP BY upload_date ORDER BY upload_date DESC";

/// The parts of a file with their node's address (NULL when the node is unknown).
pub(crate) const PARTS_OF_FILE: &str = "
SELECT p.part_index, p.node_id, n.address, p.size, p.sha256
FROM file_parts p LEFT JOIN storage_nodes n ON n.node_id = p.node_id
WHERE p.file_id = $1 ORDER BY p.part_index";

/// The live file a share link leads to (`FILE_COLUMNS`, then the link's password hash and
/// expiry), when the link is valid now.
pub(crate) fn file_of_valid_share_link() -> String {
    format!(
        "SELECT {FILE_COLUMNS}, l.password_hash, l.expires_at
         FROM files JOIN share_links l USING (file_id)
         WHERE l.token_sha256 = $1 AND l.revoked_at IS NULL AND l.expires_at > now() AND files.deleted_at IS NULL"
    )
}

/// The share links of live files, newest first, with their state now: those of the files
/// of owner $1 when $1 is not NULL, and only those of file $2 when $2 is not NULL.
pub(crate) const SHARE_LINKS: &str = "
SELECT l.token_sha256, l.file_id, f.name, l.created_at, l.expires_at, l.password_hash IS NOT NULL,
       CASE WHEN l.revoked_at IS NOT NULL THEN 'revoked' WHEN l.expires_at <= now() THEN 'expired' ELSE 'active' END
FROM share_links l JOIN files f ON f.file_id = l.file_id
WHERE f.deleted_at IS NULL AND ($1::text IS NULL OR f.owner = $1) AND ($2::text IS NULL OR l.file_id = $2)
ORDER BY l.created_at DESC, l.token_sha256";

pub(crate) const SHARE_LINK_FOR_REVOKE: &str = "
SELECT l.file_id, f.owner, l.created_by, l.revoked_at IS NOT NULL
FROM share_links l JOIN files f ON f.file_id = l.file_id WHERE l.token_sha256 = $1";

pub(crate) const DELETED_FILES_AWAITING_PURGE: &str =
    "SELECT file_id FROM files WHERE deleted_at IS NOT NULL AND parts_purged_at IS NULL ORDER BY deleted_at LIMIT 200";

pub(crate) const MARK_PARTS_PURGED: &str = "UPDATE files SET parts_purged_at = now() WHERE file_id = $1";

pub(crate) const LIST_STORAGE_NODES: &str = "
SELECT n.node_id, n.address, n.registered_at,
       COALESCE((SELECT sum(p.size) FROM file_parts p JOIN files f ON f.file_id = p.file_id
                 WHERE p.node_id = n.node_id AND f.parts_purged_at IS NULL), 0)::int8
FROM storage_nodes n ORDER BY n.registered_at, n.node_id";

pub(crate) const STORAGE_NODE_BY_ID: &str = "SELECT address FROM storage_nodes WHERE node_id = $1";

/// Bytes of live parts per node, for the rebalancer.
pub(crate) const CATALOG_BYTES_PER_NODE: &str = "
SELECT n.node_id, n.address,
       COALESCE((SELECT sum(p.size) FROM file_parts p JOIN files f ON f.file_id = p.file_id
                 WHERE p.node_id = n.node_id AND f.deleted_at IS NULL), 0)::int8
FROM storage_nodes n";

/// Parts on node $1 of live files with no part on node $2, at most $3 bytes each, the
/// largest first.
pub(crate) const MOVABLE_PARTS: &str = "
SELECT p.file_id, p.part_index, p.size, p.sha256, f.block_size
FROM file_parts p JOIN files f ON f.file_id = p.file_id
WHERE p.node_id = $1 AND f.deleted_at IS NULL AND p.size <= $3
  AND NOT EXISTS (SELECT 1 FROM file_parts other WHERE other.file_id = p.file_id AND other.node_id = $2)
ORDER BY p.size DESC LIMIT $4";
