//! File uploads: a file streams in (gRPC or REST), is cut into stripes of 6 data blocks,
//! each stripe gets 2 Reed–Solomon parity blocks, and part `i` (block `i` of every stripe)
//! streams to its node while the next stripe is read and the file hashed; memory stays at
//! a few stripes per upload whatever the file size. Once every part is committed, `FileStored` goes to
//! `files.events`. Any failure aborts the parts (nodes discard uncommitted writes) and
//! deletes those already committed, so a refused upload leaves nothing behind. A restore
//! (`restore`) stores a file from a backup under its old identity.

mod rest;
mod restore;
mod upload;

pub use rest::upload_routes;
pub use restore::RestoredIdentity;
pub use upload::{folder_date, FileUploader, StoredFile, UploadRequest, UploadSettings};
