//! Cutting a file that arrives in chunks into stripes (the layout of [`crate::layout`]),
//! in buffers that are used again for later stripes.
//!
//! Each stripe is one buffer laid out as its parts will be: the [`DATA_PARTS`] data blocks
//! back to back (the file's bytes, zero padded in the last stripe), then the
//! [`crate::PARITY_PARTS`] parity blocks appended by [`ParityEncoder`]. The
//! chunks are copied in and released at once, so the transport reuses its receive buffers
//! too. Copying into memory that is already mapped costs less than keeping the chunks:
//! every chunk held would make the transport allocate fresh pages for the next one, and
//! faulting in and zeroing those pages (on a virtual machine also fetching them back from
//! the host) costs more than the copy.

use std::sync::{Arc, Mutex, PoisonError};

use bytes::Bytes;

use crate::erasure::ParityEncoder;
use crate::layout::last_block_len;
use crate::{DATA_PARTS, TOTAL_PARTS};

/// Stripe buffers kept for reuse while no stripe uses them, shared by the uploads of a
/// process; at most `kept_bytes` of them are kept.
#[derive(Debug)]
pub struct StripeBuffers {
    free: Mutex<Vec<Vec<u8>>>,
    kept_bytes: usize,
}

impl StripeBuffers {
    /// Returns a pool that keeps at most `kept_bytes` of idle buffers.
    pub fn new(kept_bytes: usize) -> Arc<Self> {
        Arc::new(Self { free: Mutex::new(Vec::new()), kept_bytes })
    }

    /// Returns an empty buffer with room for at least `capacity` bytes.
    fn take(&self, capacity: usize) -> Vec<u8> {
        let reused = self.free.lock().unwrap_or_else(PoisonError::into_inner).pop();
        let mut buffer = reused.unwrap_or_default();
        buffer.clear();
        buffer.reserve_exact(capacity);
        buffer
    }

    fn give_back(&self, buffer: Vec<u8>) {
        let mut free = self.free.lock().unwrap_or_else(PoisonError::into_inner);
        let idle_bytes: usize = free.iter().map(Vec::capacity).sum();
        if idle_bytes + buffer.capacity() <= self.kept_bytes {
            free.push(buffer);
        }
    }
}

/// A stripe read completely: its data blocks, the parity still to be appended.
#[derive(Debug)]
pub struct Stripe {
    /// Data blocks back to back, then (once encoded) parity blocks.
    buffer: StripeBuffer,
    block_len: usize,
    data_len: usize,
}

impl Stripe {
    /// Returns the length of each block.
    pub fn block_len(&self) -> usize {
        self.block_len
    }

    /// Returns the number of file bytes in the stripe, padding excluded.
    pub fn data_len(&self) -> usize {
        self.data_len
    }

    /// Returns the data blocks.
    pub fn data_blocks(&self) -> Vec<&[u8]> {
        self.buffer.bytes[..DATA_PARTS * self.block_len].chunks_exact(self.block_len).collect()
    }

    /// Appends the parity blocks and returns all [`TOTAL_PARTS`] blocks, sharing the
    /// stripe's buffer (which goes back to its pool when the last of them is dropped).
    pub fn with_parity(mut self, encoder: &mut ParityEncoder) -> crate::Result<Vec<Bytes>> {
        let block_len = self.block_len;
        encoder.append_parity(&mut self.buffer.bytes, block_len)?;
        let shared = Bytes::from_owner(self.buffer);
        Ok((0..TOTAL_PARTS).map(|index| shared.slice(index * block_len..(index + 1) * block_len)).collect())
    }
}

/// A buffer of [`StripeBuffers`], given back when dropped.
#[derive(Debug)]
struct StripeBuffer {
    bytes: Vec<u8>,
    pool: Arc<StripeBuffers>,
}

impl AsRef<[u8]> for StripeBuffer {
    fn as_ref(&self) -> &[u8] {
        &self.bytes
    }
}

impl Drop for StripeBuffer {
    fn drop(&mut self) {
        self.pool.give_back(std::mem::take(&mut self.bytes));
    }
}

/// Copies chunks into stripe buffers and hands out each stripe once it is complete.
#[derive(Debug)]
pub struct StripeCutter {
    block_size: usize,
    pool: Arc<StripeBuffers>,
    filling: Option<StripeBuffer>,
}

impl StripeCutter {
    /// Returns a cutter of stripes with blocks of `block_size` bytes (even, positive),
    /// taking its buffers from `pool`.
    pub fn new(block_size: u64, pool: Arc<StripeBuffers>) -> Self {
        debug_assert!(block_size > 0 && block_size.is_multiple_of(2), "block size must be even and positive");
        Self { block_size: block_size as usize, pool, filling: None }
    }

    /// Copies bytes from the front of `chunk` into the stripe being filled and advances
    /// `chunk` past them; returns the stripe once it is full. Call again while `chunk` is
    /// not empty.
    pub fn fill(&mut self, chunk: &mut &[u8]) -> Option<Stripe> {
        let stripe_bytes = self.block_size * DATA_PARTS;
        let filling =
            self.filling.get_or_insert_with(|| StripeBuffer { bytes: self.pool.take(self.block_size * TOTAL_PARTS), pool: Arc::clone(&self.pool) });
        let taken = (stripe_bytes - filling.bytes.len()).min(chunk.len());
        filling.bytes.extend_from_slice(&chunk[..taken]);
        *chunk = &chunk[taken..];
        if filling.bytes.len() < stripe_bytes {
            return None;
        }
        let buffer = self.filling.take().expect("filled above");
        Some(Stripe { buffer, block_len: self.block_size, data_len: stripe_bytes })
    }

    /// Returns the last, short stripe (blocks of [`last_block_len`], zero padded) when
    /// bytes remain after the full stripes.
    pub fn finish(mut self) -> Option<Stripe> {
        let mut buffer = self.filling.take().filter(|buffer| !buffer.bytes.is_empty())?;
        let data_len = buffer.bytes.len();
        let block_len = last_block_len(data_len as u64) as usize;
        buffer.bytes.resize(block_len * DATA_PARTS, 0);
        Some(Stripe { buffer, block_len, data_len })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cut(chunks: &[&[u8]], block_size: u64, pool: &Arc<StripeBuffers>) -> Vec<Stripe> {
        let mut cutter = StripeCutter::new(block_size, Arc::clone(pool));
        let mut stripes = Vec::new();
        for chunk in chunks {
            let mut rest = *chunk;
            while !rest.is_empty() {
                stripes.extend(cutter.fill(&mut rest));
            }
        }
        stripes.extend(cutter.finish());
        stripes
    }

    #[test]
    fn last_stripes_are_zero_padded_and_full_ones_are_whole() {
        let pool = StripeBuffers::new(1 << 20);
        let stripes = cut(&[b"abc", b"", b"defg"], 2, &pool);
        assert_eq!(stripes.len(), 1);
        assert_eq!(stripes[0].data_blocks(), vec![&b"ab"[..], b"cd", b"ef", b"g\0", b"\0\0", b"\0\0"]);
        assert_eq!(stripes[0].data_len(), 7);

        let stripes = cut(&[b"abcdefghijkl", b"mnopq"], 2, &pool);
        assert_eq!(stripes.len(), 2);
        assert_eq!(stripes[0].data_blocks()[5], b"kl");
        assert_eq!((stripes[0].data_len(), stripes[1].data_len(), stripes[1].block_len()), (12, 5, 2));
        assert_eq!(stripes[1].data_blocks().concat(), b"mnopq\0\0\0\0\0\0\0");
    }

    #[test]
    fn the_stripes_hold_every_byte_in_order_whatever_the_chunking() {
        let file: Vec<u8> = (0..1000u32).map(|value| (value % 253) as u8).collect();
        let pool = StripeBuffers::new(1 << 20);
        for chunk_size in [1, 7, 24, 100, 999, 1000] {
            let chunks: Vec<&[u8]> = file.chunks(chunk_size).collect();
            let stripes = cut(&chunks, 8, &pool);
            assert_eq!(stripes.len(), 1000usize.div_ceil(48), "chunks of {chunk_size}");
            let joined: Vec<u8> = stripes.iter().flat_map(|stripe| stripe.data_blocks().concat()[..stripe.data_len()].to_vec()).collect();
            assert_eq!(joined, file, "chunks of {chunk_size}");
        }
    }

    #[test]
    fn parity_follows_the_data_and_buffers_return_to_the_pool() {
        let pool = StripeBuffers::new(1 << 20);
        let mut stripes = cut(&[&[1u8; 62]], 8, &pool);
        assert_eq!(stripes.len(), 2);
        let last = stripes.pop().expect("a short last stripe");
        let expected_parity = crate::erasure::encode_parity(&last.data_blocks()).expect("encodes");
        let blocks = last.with_parity(&mut ParityEncoder::default()).expect("encodes");
        assert_eq!(blocks.len(), TOTAL_PARTS);
        assert_eq!(blocks[2].as_ref(), &[1, 1, 1, 1][..], "14 bytes in blocks of 4");
        assert_eq!(blocks[3].as_ref(), &[1, 1, 0, 0][..]);
        assert_eq!(blocks[4].as_ref(), &[0, 0, 0, 0][..]);
        assert_eq!(blocks[6..].concat(), expected_parity.concat());
        drop(stripes);
        assert_eq!(pool.free.lock().expect("pool").len(), 1, "the dropped full stripe's buffer is kept");
        drop(blocks);
        assert_eq!(pool.free.lock().expect("pool").len(), 2, "the last block dropped gives its buffer back");
        let small_pool = StripeBuffers::new(0);
        drop(cut(&[&[1u8; 62]], 8, &small_pool));
        assert!(small_pool.free.lock().expect("pool").is_empty(), "a pool keeps no more than its bytes");
    }
}
