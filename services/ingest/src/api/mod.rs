//! gRPC handlers of the ingest service: they unwrap requests, call the import and convert
//! results.

mod ingest;
mod upload;

pub use ingest::{IngestApi, UploadSettings};
pub use upload::FileUploadApi;
