//! SQL of the storage service and the mapping of rows to API types.

pub mod sql;
