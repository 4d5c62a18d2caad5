//! `manifest.json`: what a backup holds (every file with its rows, size and SHA-256, the
//! tables' columns, the Kafka positions the snapshot reflects), and `manifest.sha256`,
//! the checksum of the manifest itself, so a changed byte anywhere in a backup is found.

use std::io::Read;
use std::path::{Component, Path, PathBuf};

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::copy_binary::ColumnSpec;
use crate::Error;

pub const MANIFEST_FILE: &str = "manifest.json";
pub const MANIFEST_CHECKSUM_FILE: &str = "manifest.sha256";
/// The version of the tables' layout; a restore refuses versions it does not know.
pub const SCHEMA_VERSION: &str = "1";
/// Where the stored files' bytes go, named by their SHA-256.
pub const BLOBS_FOLDER: &str = "files";

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Manifest {
    pub backup_id: String,
    pub schema_version: String,
    /// RFC 3339.
    pub created_at: String,
    pub created_at_unix_ms: i64,
    /// `manual`, `scheduled` or `uploaded`.
    pub origin: String,
    pub formats: Vec<String>,
    pub chat_ids: Vec<i64>,
    pub with_files: bool,
    pub positions: Vec<Position>,
    pub tables: Vec<TableEntry>,
    pub files: Vec<FileEntry>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Position {
    pub service: String,
    pub topic: String,
    pub partition: i32,
    pub next_offset: i64,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct TableEntry {
    pub name: String,
    /// The service that owns the table.
    pub service: String,
    pub rows: u64,
    pub columns: Vec<ColumnSpec>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct FileEntry {
    /// Relative to the backup folder, `/`-separated.
    pub path: String,
    /// `parquet`, `csv` or `blob`.
    pub kind: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub table: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rows: Option<u64>,
    pub bytes: u64,
    pub sha256: String,
}

impl Manifest {
    pub fn table(&self, name: &str) -> Option<&TableEntry> {
        self.tables.iter().find(|table| table.name == name)
    }

    /// The file holding `table` in `kind` (`parquet` or `csv`).
    pub fn table_file(&self, table: &str, kind: &str) -> Option<&FileEntry> {
        self.files.iter().find(|file| file.kind == kind && file.table.as_deref() == Some(table))
    }

    pub fn total_bytes(&self) -> u64 {
        self.files.iter().map(|file| file.bytes).sum()
    }

    /// Writes `manifest.json` and `manifest.sha256` into `folder`, durably.
    pub fn write(&self, folder: &Path) -> Result<(), Error> {
        let text = serde_json::to_vec_pretty(self).map_err(|error| Error::Internal(format!("manifest: {error}")))?;
        let checksum = format!("{}  {MANIFEST_FILE}\n", hex::encode(Sha256::digest(&text)));
        write_durably(&folder.join(MANIFEST_FILE), &text)?;
        write_durably(&folder.join(MANIFEST_CHECKSUM_FILE), checksum.as_bytes())?;
        Ok(())
    }

    /// Reads and checks the manifest of the backup in `folder`.
    pub fn read(folder: &Path) -> Result<Self, Error> {
        let text = std::fs::read(folder.join(MANIFEST_FILE)).map_err(|error| Error::Damaged(format!("{MANIFEST_FILE} cannot be read: {error}")))?;
        let recorded = std::fs::read_to_string(folder.join(MANIFEST_CHECKSUM_FILE))
            .map_err(|error| Error::Damaged(format!("{MANIFEST_CHECKSUM_FILE} cannot be read: {error}")))?;
        let recorded = recorded.split_whitespace().next().unwrap_or_default();
        let actual = hex::encode(Sha256::digest(&text));
        if recorded != actual {
            return Err(Error::Damaged(format!("{MANIFEST_FILE} does not match {MANIFEST_CHECKSUM_FILE} (SHA-256 {actual}, recorded {recorded})")));
        }
        let manifest: Self =
            serde_json::from_slice(&text).map_err(|error| Error::Damaged(format!("{MANIFEST_FILE} is not a chatvault manifest: {error}")))?;
        if manifest.schema_version != SCHEMA_VERSION {
            return Err(Error::Damaged(format!(
                "the backup has schema version {}; this chatvault reads version {SCHEMA_VERSION}",
                manifest.schema_version
            )));
        }
        for file in &manifest.files {
            relative_path(&file.path)?;
        }
        Ok(manifest)
    }
}

/// Checks that `path` stays inside the backup folder; returns it as a relative path.
pub fn relative_path(path: &str) -> Result<PathBuf, Error> {
    let candidate = Path::new(path);
    let safe = !path.is_empty() && !path.contains('\\') && candidate.components().all(|component| matches!(component, Component::Normal(_)));
    if safe {
        Ok(candidate.to_path_buf())
    } else {
        Err(Error::InvalidArgument(format!("{path:?} is not a path inside a backup folder")))
    }
}

/// Writes `bytes` to `path` through a temporary file, fsynced and renamed.
pub fn write_durably(path: &Path, bytes: &[u8]) -> Result<(), Error> {
    let temporary = path.with_extension("tmp");
    {
        let mut file = std::fs::File::create(&temporary)?;
        std::io::Write::write_all(&mut file, bytes)?;
        file.sync_all()?;
    }
    std::fs::rename(&temporary, path)?;
    Ok(())
}

/// The SHA-256 (hex) and size of the file at `path`.
pub fn file_checksum(path: &Path) -> std::io::Result<(String, u64)> {
    let mut file = std::fs::File::open(path)?;
    let mut hasher = Sha256::new();
    let mut buffer = vec![0u8; 1 << 20];
    let mut size = 0u64;
    loop {
        let read = file.read(&mut buffer)?;
        if read == 0 {
            break;
        }
        hasher.update(&buffer[..read]);
        size += read as u64;
    }
    Ok((hex::encode(hasher.finalize()), size))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn manifest() -> Manifest {
        Manifest {
            backup_id: "b1".into(),
            schema_version: SCHEMA_VERSION.into(),
            created_at: "2026-01-01T00:00:00Z".into(),
            created_at_unix_ms: 1,
            origin: "manual".into(),
            formats: vec!["parquet".into()],
            chat_ids: vec![],
            with_files: false,
            positions: vec![],
            tables: vec![],
            files: vec![FileEntry {
                path: "parquet/chats.parquet".into(),
                kind: "parquet".into(),
                table: Some("chats".into()),
                rows: Some(2),
                bytes: 10,
                sha256: "00".into(),
            }],
        }
    }

    #[test]
    fn a_written_manifest_reads_back_and_a_changed_byte_is_found() {
        let folder = tempfile::tempdir().expect("temp dir");
        manifest().write(folder.path()).expect("writes");
        assert_eq!(Manifest::read(folder.path()).expect("reads"), manifest());
        let path = folder.path().join(MANIFEST_FILE);
        let mut bytes = std::fs::read(&path).expect("read");
        let index = bytes.iter().position(|byte| *byte == b'2').expect("a digit");
        bytes[index] = b'3';
        std::fs::write(&path, bytes).expect("write");
        let error = Manifest::read(folder.path()).expect_err("refused");
        assert!(error.to_string().contains("does not match"), "{error}");
    }

    #[test]
    fn paths_leaving_the_folder_are_refused() {
        for path in ["../x", "/etc/passwd", "a/../../b", "a\\b", ""] {
            assert!(relative_path(path).is_err(), "{path}");
        }
        assert!(relative_path("parquet/messages.parquet").is_ok());
    }
}
