//! gRPC handlers of the users service.

mod accounts;
mod snapshot;
mod users;

pub use accounts::AccountsApi;
pub use snapshot::{exporter as snapshot_exporter, SNAPSHOT_PROJECTIONS, SNAPSHOT_TABLES};
pub use users::UsersApi;
