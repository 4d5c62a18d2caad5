//! Attachments: the media files an export folder holds are stored in file storage and
//! linked to their messages by file id.
//!
//! A reference is resolved inside the export folder only: `..`, absolute paths and symbolic
//! links that lead outside are refused and counted as warnings, as are files the export
//! names but does not hold. A file's id is derived from its owner and its SHA-256, so one
//! file referenced by many messages (stickers) is stored once, and importing the same export
//! again stores nothing twice.
//!
//! Since the id comes from the content alone, the parser thread only hashes a file (GB/s)
//! and goes on: the file is stored meanwhile by one of at most [`UPLOADS_IN_FLIGHT`]
//! concurrent uploads, and [`AttachmentStore::finish`] waits for all of them before the
//! import commits. A failed upload fails the import, as a failed parse does.

use std::collections::{HashMap, HashSet};
use std::io::Read;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use bytes::Bytes;
use sha2::{Digest, Sha256};

use super::upload::checked_relative_path;
use crate::files::{FileUploader, UploadRequest};
use crate::Error;

/// Why a referenced file was not stored.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AttachmentSkipped {
    /// The reference leaves the export folder (`..`, absolute, or a link out).
    PathRefused,
    /// The export names the file but does not hold it.
    Missing,
}

impl AttachmentSkipped {
    /// The warning kind counted in the import summary.
    pub fn warning_kind(self) -> &'static str {
        match self {
            AttachmentSkipped::PathRefused => "attachment_path_refused",
            AttachmentSkipped::Missing => "attachment_missing",
        }
    }
}

/// Attachments stored at once while the parser goes on: enough to keep every storage node
/// busy with the parts of several files, few enough to bound memory (each upload holds a
/// stripe of its file).
pub const UPLOADS_IN_FLIGHT: usize = 4;

/// Stores the attachments of one import; called from the parser thread.
pub struct AttachmentStore {
    uploader: FileUploader,
    owner: String,
    export_root: PathBuf,
    canonical_root: PathBuf,
    stored_by_path: HashMap<PathBuf, String>,
    /// File ids whose upload this import has started (two paths may hold the same bytes).
    scheduled: HashSet<String>,
    runtime: tokio::runtime::Handle,
    uploads: tokio::task::JoinSet<Result<bool, Error>>,
    upload_slots: Arc<tokio::sync::Semaphore>,
    /// Files stored by this import (not counting ones an earlier import stored).
    pub stored_count: u64,
    /// Distinct files linked to messages.
    pub linked_count: u64,
}

impl std::fmt::Debug for AttachmentStore {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        formatter.debug_struct("AttachmentStore").field("export_root", &self.export_root).field("owner", &self.owner).finish_non_exhaustive()
    }
}

impl Drop for AttachmentStore {
    /// An import that fails leaves its uploads running to their end rather than cut one off
    /// halfway: each stores a whole file of the owner (as one stored before the failure
    /// always was), never part of one.
    fn drop(&mut self) {
        self.uploads.detach_all();
    }
}

impl AttachmentStore {
    /// Prepares storing the files under `export_root` for `owner`.
    pub fn new(uploader: FileUploader, owner: String, export_root: &Path, runtime: tokio::runtime::Handle) -> Result<Self, Error> {
        let canonical_root = export_root.canonicalize()?;
        Ok(Self {
            uploader,
            owner,
            export_root: export_root.to_path_buf(),
            canonical_root,
            stored_by_path: HashMap::new(),
            scheduled: HashSet::new(),
            runtime,
            uploads: tokio::task::JoinSet::new(),
            upload_slots: Arc::new(tokio::sync::Semaphore::new(UPLOADS_IN_FLIGHT)),
            stored_count: 0,
            linked_count: 0,
        })
    }

    /// Returns the file id of the file `reference` names, and starts storing the file when
    /// this import has not yet. Blocks the calling (parser) thread while the file is hashed,
    /// and while [`UPLOADS_IN_FLIGHT`] uploads are running already. Errors: the first failed
    /// upload so far.
    pub fn file_id_of(&mut self, reference: &str, mime_type: Option<&str>) -> Result<Result<String, AttachmentSkipped>, Error> {
        let Some(canonical) = self.resolve(reference) else {
            return Ok(Err(AttachmentSkipped::PathRefused));
        };
        let canonical = match canonical {
            Ok(canonical) => canonical,
            Err(skipped) => return Ok(Err(skipped)),
        };
        if let Some(file_id) = self.stored_by_path.get(&canonical) {
            return Ok(Ok(file_id.clone()));
        }
        let file_id = attachment_file_id(&self.owner, &sha256_of_file(&canonical)?);
        if self.scheduled.insert(file_id.clone()) {
            self.reap_finished_uploads()?;
            let slot = self
                .runtime
                .block_on(Arc::clone(&self.upload_slots).acquire_owned())
                .map_err(|_| Error::Internal("the attachment upload slots were closed".to_owned()))?;
            let name = canonical.file_name().map(|name| name.to_string_lossy().into_owned()).unwrap_or_else(|| "attachment".to_owned());
            // Telegram gives no mime_type for photos: the type then comes from the name, so
            // photos are served as pictures, not as downloads.
            let content_type = match mime_type.filter(|mime| !mime.is_empty()) {
                Some(mime) => mime.to_owned(),
                None => mime_guess::from_path(&name).first_raw().unwrap_or_default().to_owned(),
            };
            let request = UploadRequest { owner: self.owner.clone(), name, content_type, folder_date: None };
            let uploader = self.uploader.clone();
            let upload_id = file_id.clone();
            let path = canonical.clone();
            // The upload runs outside the import task: it names the importer as the actor
            // of the attachment's FileStored again.
            let upload = chatvault_common::caller::act_as(self.owner.clone(), async move {
                let _slot = slot;
                if uploader.is_stored(&upload_id).await {
                    return Ok(false);
                }
                let body = file_chunks(&path)?;
                uploader.upload_as(upload_id, request, body).await?;
                Ok(true)
            });
            self.uploads.spawn_on(upload, &self.runtime);
        }
        self.linked_count += 1;
        self.stored_by_path.insert(canonical, file_id.clone());
        Ok(Ok(file_id))
    }

    /// Counts the uploads that have finished; returns the first error among them.
    fn reap_finished_uploads(&mut self) -> Result<(), Error> {
        while let Some(finished) = self.uploads.try_join_next() {
            self.count_upload(finished)?;
        }
        Ok(())
    }

    fn count_upload(&mut self, finished: Result<Result<bool, Error>, tokio::task::JoinError>) -> Result<(), Error> {
        let stored = finished.map_err(|error| Error::Internal(format!("attachment upload task: {error}")))??;
        if stored {
            self.stored_count += 1;
        }
        Ok(())
    }

    /// Waits until every attachment this import started storing is stored; returns the
    /// first error. Call it before committing the import.
    pub fn finish(&mut self) -> Result<(), Error> {
        while let Some(finished) = self.runtime.block_on(self.uploads.join_next()) {
            if let Err(error) = self.count_upload(finished) {
                self.uploads.abort_all();
                return Err(error);
            }
        }
        Ok(())
    }

    /// Resolves `reference` inside the export folder: `None` when the text itself leaves
    /// it, `Err(Missing)` when no such file exists, `Err(PathRefused)` when a link leads out.
    fn resolve(&self, reference: &str) -> Option<Result<PathBuf, AttachmentSkipped>> {
        let relative = checked_relative_path(reference).ok()?;
        let candidate = self.export_root.join(relative);
        let canonical = match candidate.canonicalize() {
            Ok(canonical) => canonical,
            Err(_) => return Some(Err(AttachmentSkipped::Missing)),
        };
        if !canonical.starts_with(&self.canonical_root) {
            return Some(Err(AttachmentSkipped::PathRefused));
        }
        if !canonical.is_file() {
            return Some(Err(AttachmentSkipped::Missing));
        }
        Some(Ok(canonical))
    }
}

/// Returns the id of an attachment: a UUID (version 8) from SHA-256 of owner and content.
pub fn attachment_file_id(owner: &str, content_sha256: &[u8]) -> String {
    let mut hasher = Sha256::new();
    hasher.update(b"chatvault attachment\0");
    hasher.update(owner.as_bytes());
    hasher.update([0]);
    hasher.update(content_sha256);
    let digest = hasher.finalize();
    let mut bytes = [0u8; 16];
    bytes.copy_from_slice(&digest[..16]);
    uuid::Builder::from_custom_bytes(bytes).into_uuid().to_string()
}

fn sha256_of_file(path: &Path) -> Result<Vec<u8>, Error> {
    let mut file = std::fs::File::open(path)?;
    let mut hasher = Sha256::new();
    let mut buffer = vec![0u8; 1 << 20];
    loop {
        let read = file.read(&mut buffer)?;
        if read == 0 {
            return Ok(hasher.finalize().to_vec());
        }
        hasher.update(&buffer[..read]);
    }
}

/// The file's bytes as a stream of 1 MiB chunks, read as the upload takes them.
fn file_chunks(path: &Path) -> Result<impl futures::Stream<Item = Result<Bytes, Error>> + Send + Unpin, Error> {
    let file = std::fs::File::open(path)?;
    Ok(Box::pin(futures::stream::unfold(Some(file), |state| async move {
        let mut file = state?;
        let mut buffer = vec![0u8; 1 << 20];
        match file.read(&mut buffer) {
            Ok(0) => None,
            Ok(read) => {
                buffer.truncate(read);
                Some((Ok(Bytes::from(buffer)), Some(file)))
            }
            Err(error) => Some((Err(Error::Io(error)), None)),
        }
    })))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn attachment_ids_depend_on_owner_and_content_only() {
        let id = attachment_file_id("ann", &[1, 2, 3]);
        assert_eq!(id, attachment_file_id("ann", &[1, 2, 3]));
        assert_ne!(id, attachment_file_id("bob", &[1, 2, 3]));
        assert_ne!(id, attachment_file_id("ann", &[1, 2, 4]));
        assert_eq!(uuid::Uuid::parse_str(&id).expect("a uuid").get_version_num(), 8);
    }
}
