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

/// A whole-file SHA-256 fed batch by batch and computed off the async threads: each batch
/// is hashed by a blocking task that runs while the caller goes on (encoding or fetching
/// and sending the next stripe); the next batch waits for it, as the hash is sequential.
/// No blocking thread is held between batches, so many transfers at once cannot take all
/// the blocking threads the work they wait for needs.
#[derive(Debug, Default)]
pub struct FileHashInBackground {
    running: Option<tokio::task::JoinHandle<FileHasher>>,
}

impl FileHashInBackground {
    /// Starts hashing `pieces`, the next bytes of the file in order, once the batch before
    /// them is hashed.
    pub async fn add(&mut self, pieces: Vec<bytes::Bytes>) -> crate::Result<()> {
        let mut hasher = self.settle().await?;
        self.running = Some(tokio::task::spawn_blocking(move || {
            for piece in &pieces {
                hasher.update(piece);
            }
            hasher
        }));
        Ok(())
    }

    /// Waits for the last batch; returns the hex digest.
    pub async fn finish_hex(mut self) -> crate::Result<String> {
        Ok(self.settle().await?.finish_hex())
    }

    async fn settle(&mut self) -> crate::Result<FileHasher> {
        match self.running.take() {
            Some(job) => job.await.map_err(|error| crate::Error::Other(format!("hashing task: {error}"))),
            None => Ok(FileHasher::default()),
        }
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

    #[tokio::test]
    async fn background_hashes_equal_the_hash_of_the_whole() {
        let mut background = FileHashInBackground::default();
        background.add(vec![bytes::Bytes::from_static(b"hello "), bytes::Bytes::from_static(b"wor")]).await.expect("hashes");
        background.add(vec![bytes::Bytes::from_static(b"ld")]).await.expect("hashes");
        assert_eq!(background.finish_hex().await.expect("finishes"), sha256_hex(b"hello world"));
        assert_eq!(FileHashInBackground::default().finish_hex().await.expect("finishes"), sha256_hex(b""));
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
