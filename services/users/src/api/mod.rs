//! gRPC handlers of the users service.

mod users;

pub use users::UsersApi;
