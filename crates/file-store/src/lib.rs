//! The file store's shared core: how a file is cut into stripes of 6 data blocks plus 2
//! Reed–Solomon parity blocks (`layout`, `stripes`, `erasure`), how parts are hashed (`hashing`),
//! which nodes receive the parts (`placement`), the registry of storage nodes followed from
//! `storage.nodes` (`directory`), and the gRPC client of a storage node (`node_client`).
//!
//! Ingest uses it to write parts, storage to read, repair and move them.

pub mod directory;
pub mod erasure;
pub mod events;
pub mod hashing;
pub mod layout;
pub mod node_client;
pub mod placement;
pub mod stripes;

/// Number of data parts of every file.
pub const DATA_PARTS: usize = 6;
/// Number of Reed–Solomon parity parts of every file.
pub const PARITY_PARTS: usize = 2;
/// Data and parity parts together.
pub const TOTAL_PARTS: usize = DATA_PARTS + PARITY_PARTS;

/// Returns the id of part `index` of `file_id` on its node.
pub fn part_id(file_id: &str, index: usize) -> String {
    format!("{file_id}.{index}")
}

/// Errors of the file-store core.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A node answered with an error or could not be reached.
    #[error("storage node {node}: {status}")]
    Node { node: String, status: tonic::Status },
    /// A node's address is not a valid URL.
    #[error("storage node address {0:?} is not valid")]
    BadAddress(String),
    /// Too few parts are readable to rebuild the data.
    #[error("{0}")]
    DataLoss(String),
    /// Reed–Solomon encoding or decoding failed.
    #[error("erasure coding: {0}")]
    Erasure(#[from] reed_solomon_simd::Error),
    #[error(transparent)]
    Common(#[from] chatvault_common::Error),
    #[error("kafka: {0}")]
    Kafka(#[from] rdkafka::error::KafkaError),
    #[error("{0}")]
    Other(String),
}

/// `Result` with this crate's error as the default.
pub type Result<T, E = Error> = std::result::Result<T, E>;
