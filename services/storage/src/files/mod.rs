//! The files side of the storage service: the catalog (commands and queries), the rules of
//! file names, downloads with parity rebuild and repair, share-link secrets, opening a share
//! link and the bounds on its password checks, the REST routes, and background purge and
//! rebalancing on the storage nodes.

pub mod background;
pub mod catalog;
pub mod download;
pub mod file_name;
pub mod rest;
pub mod share_link;
pub mod share_link_access;
pub mod share_password_guard;
pub(crate) mod sql;

pub use catalog::FileCatalog;
