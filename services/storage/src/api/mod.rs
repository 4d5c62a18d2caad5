//! gRPC handlers of the storage service.

mod files;
mod storage;

pub use storage::StorageApi;
pub use files::FilesApi;
