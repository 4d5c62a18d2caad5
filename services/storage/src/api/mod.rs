//! gRPC handlers of the storage service.

mod files;
mod snapshot;
mod storage;

pub use files::FilesApi;
pub use snapshot::{exporter as snapshot_exporter, SNAPSHOT_PROJECTIONS, SNAPSHOT_TABLES};
pub use storage::StorageApi;
