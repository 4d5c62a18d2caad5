//! Projections of the users service, one module per consumed topic.

mod authors;

pub use authors::{author_of, AuthorsProjection};
