//! gRPC handlers of the ingest service: they unwrap requests, call the import and convert
//! results.

mod ingest;

pub use ingest::IngestApi;
