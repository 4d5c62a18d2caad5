//! Projections of the storage service, one module per consumed topic.

mod chat_events;
mod file_events;

pub use chat_events::ChatEventsProjection;
pub use file_events::{FileCatalogEvent, FileEventsProjection};
