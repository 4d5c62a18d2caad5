//! gRPC handlers of the users service.

mod accounts;
mod snapshot;
mod users;

pub use accounts::AccountsApi;
pub use snapshot::{SnapshotApi, SNAPSHOT_PROJECTIONS, SNAPSHOT_TABLES};
pub use users::UsersApi;
