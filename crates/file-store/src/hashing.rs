//! Part hashes: SHA-256 over the SHA-256 of each block of the part (one block per
//! stripe). A node checks every block on read against the block hashes it keeps, so a
//! corrupt block is caught before it is sent; hashing a list of block hashes instead of the
//! part's bytes a second time keeps each byte hashed once per side (the hot path of
//! uploads; sha2 uses the CPU's SHA extensions when present).

use sha2::{Digest, Sha256};

/// Returns the SHA-256 of `bytes`.
pub fn sha256(bytes: &[u8]) -> [u8; 32] {
    Sha256::digest(bytes).into()
}

/// Returns the hex SHA-256 of `bytes`.
pub fn sha256_hex(bytes: &[u8]) -> String {
    hex::encode(sha256(bytes))
}

/// Streaming SHA-256 of a whole file.
#[derive(Clone, Debug, Default)]
pub struct FileHasher(Sha256);

impl FileHasher {
    /// Adds `bytes` to the hash.
    pub fn update(&mut self, bytes: &[u8]) {
        self.0.update(bytes);
    }

    /// Returns the hex digest.
    pub fn finish_hex(self) -> String {
        hex::encode(self.0.finalize())
    }
}

/// Builds a part hash from its block hashes, in order.
#[derive(Clone, Debug, Default)]
pub struct PartHasher {
    block_hashes: Vec<[u8; 32]>,
}

impl PartHasher {
    /// Adds the hash of the next block.
    pub fn push_block_hash(&mut self, block_hash: [u8; 32]) {
        self.block_hashes.push(block_hash);
    }

    /// Hashes the next block and adds it.
    pub fn push_block(&mut self, block: &[u8]) {
        self.push_block_hash(sha256(block));
    }

    /// Returns the block hashes so far.
    pub fn block_hashes(&self) -> &[[u8; 32]] {
        &self.block_hashes
    }

    /// Returns the hex part hash.
    pub fn finish_hex(&self) -> String {
        part_hash_hex(&self.block_hashes)
    }
}

/// Returns the hex part hash of a list of block hashes.
pub fn part_hash_hex(block_hashes: &[[u8; 32]]) -> String {
    let mut outer = Sha256::new();
    for block_hash in block_hashes {
        outer.update(block_hash);
    }
    hex::encode(outer.finalize())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn empty_hashes_are_the_sha256_of_nothing() {
        assert_eq!(FileHasher::default().finish_hex(), "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
        assert_eq!(PartHasher::default().finish_hex(), sha256_hex(b""));
    }

    #[test]
    fn part_hash_depends_on_block_order() {
        let mut forward = PartHasher::default();
        forward.push_block(b"ab");
        forward.push_block(b"cd");
        let mut backward = PartHasher::default();
        backward.push_block(b"cd");
        backward.push_block(b"ab");
        assert_ne!(forward.finish_hex(), backward.finish_hex());
    }
}
