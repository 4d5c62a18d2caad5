//! The files side of the storage service: the catalog (commands and queries), downloads
//! with parity rebuild and repair, share-link secrets, the REST routes, and background
//! purge and rebalancing on the storage nodes.

pub mod background;
pub mod catalog;
pub mod download;
pub mod rest;
pub mod share_link;
pub(crate) mod sql;

pub use catalog::FileCatalog;
