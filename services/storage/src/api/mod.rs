//! gRPC handlers of the storage service.

mod storage;

pub use storage::StorageApi;
