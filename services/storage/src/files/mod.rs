//! The files side of the storage service: the catalog (commands and queries), downloads
//! with parity rebuild and repair, share-link secrets and the bounds on their password
//! checks, the REST routes, and background purge and rebalancing on the storage nodes.

pub mod background;
pub mod catalog;
pub mod download;
pub mod rest;
pub mod share_link;
pub mod share_password_guard;
pub(crate) mod sql;

pub use catalog::FileCatalog;
