//! gRPC handlers of the users service.

mod accounts;
mod users;

pub use accounts::AccountsApi;
pub use users::UsersApi;
