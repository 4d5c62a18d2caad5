//! gRPC handlers of the storage service.

mod files;
mod snapshot;
mod storage;

pub use storage::StorageApi;
pub use files::FilesApi;
pub use snapshot::{SnapshotApi, SNAPSHOT_PROJECTIONS, SNAPSHOT_TABLES};
