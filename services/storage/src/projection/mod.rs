//! Projections of the storage service, one module per consumed topic.

mod accounts;
mod chat_events;
mod file_events;

pub use accounts::AccountsProjection;
pub use chat_events::ChatEventsProjection;
pub use file_events::{FileCatalogEvent, FileEventsProjection};
