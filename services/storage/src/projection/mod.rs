//! Projections of the storage service, one module per consumed topic.

mod chat_events;

pub use chat_events::ChatEventsProjection;
