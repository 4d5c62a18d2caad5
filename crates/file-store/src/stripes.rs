//! Cutting a file that arrives in chunks into stripes of [`DATA_PARTS`] blocks (the layout
//! of [`crate::layout`]). A block that lies inside one chunk is a slice of that chunk, not a
//! copy: with 1 MiB chunks and 1 MiB blocks no file byte is copied on its way to the parts.
//! Only blocks that straddle chunks, and the zero-padded blocks of the last stripe, are
//! assembled in a buffer of their own.

use std::collections::VecDeque;

use bytes::{Buf, Bytes, BytesMut};

use crate::layout::last_block_len;
use crate::DATA_PARTS;

/// One stripe: [`DATA_PARTS`] blocks of equal length.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Stripe {
    /// The data blocks, in part order; the last stripe's are zero padded.
    pub blocks: Vec<Bytes>,
    /// File bytes in the stripe, padding excluded.
    pub data_len: usize,
}

impl Stripe {
    /// Returns the length of each block.
    pub fn block_len(&self) -> usize {
        self.blocks.first().map_or(0, Bytes::len)
    }

    /// Returns the stripe's file bytes in order, padding excluded.
    pub fn data_pieces(&self) -> impl Iterator<Item = &[u8]> {
        let mut remaining = self.data_len;
        self.blocks.iter().map(move |block| {
            let taken = block.len().min(remaining);
            remaining -= taken;
            &block[..taken]
        })
    }
}

/// Collects chunks and hands out stripes as soon as they are complete.
#[derive(Debug)]
pub struct StripeCutter {
    block_size: usize,
    pending: VecDeque<Bytes>,
    pending_len: usize,
}

impl StripeCutter {
    /// Returns a cutter of stripes with blocks of `block_size` bytes (even, positive).
    pub fn new(block_size: u64) -> Self {
        debug_assert!(block_size > 0 && block_size.is_multiple_of(2), "block size must be even and positive");
        Self { block_size: block_size as usize, pending: VecDeque::new(), pending_len: 0 }
    }

    /// Adds the next chunk of the file.
    pub fn push(&mut self, chunk: Bytes) {
        if !chunk.is_empty() {
            self.pending_len += chunk.len();
            self.pending.push_back(chunk);
        }
    }

    /// Returns the next full stripe, once enough bytes have been pushed.
    pub fn next_full_stripe(&mut self) -> Option<Stripe> {
        let stripe_bytes = self.block_size * DATA_PARTS;
        if self.pending_len < stripe_bytes {
            return None;
        }
        let blocks = (0..DATA_PARTS).map(|_| self.take_block(self.block_size)).collect();
        Some(Stripe { blocks, data_len: stripe_bytes })
    }

    /// Returns the last, short stripe (blocks of [`last_block_len`], zero padded) when
    /// bytes remain after the full stripes.
    pub fn finish(mut self) -> Option<Stripe> {
        debug_assert!(self.pending_len < self.block_size * DATA_PARTS, "full stripes are taken before finishing");
        if self.pending_len == 0 {
            return None;
        }
        let data_len = self.pending_len;
        let block_len = last_block_len(data_len as u64) as usize;
        let blocks = (0..DATA_PARTS).map(|_| self.take_block(block_len)).collect();
        Some(Stripe { blocks, data_len })
    }

    /// Takes the next `length` bytes: a slice of the first chunk when it holds them all,
    /// else a copy, zero padded when fewer bytes are pending.
    fn take_block(&mut self, length: usize) -> Bytes {
        if let Some(front) = self.pending.front_mut() {
            if front.len() >= length {
                let block = front.split_to(length);
                if front.is_empty() {
                    self.pending.pop_front();
                }
                self.pending_len -= length;
                return block;
            }
        }
        let mut block = BytesMut::with_capacity(length);
        while block.len() < length {
            let Some(front) = self.pending.front_mut() else {
                block.resize(length, 0);
                break;
            };
            let taken = front.len().min(length - block.len());
            block.extend_from_slice(&front[..taken]);
            front.advance(taken);
            self.pending_len -= taken;
            if front.is_empty() {
                self.pending.pop_front();
            }
        }
        block.freeze()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cut(chunks: &[&'static [u8]], block_size: u64) -> Vec<Stripe> {
        let mut cutter = StripeCutter::new(block_size);
        let mut stripes = Vec::new();
        for chunk in chunks {
            cutter.push(Bytes::from_static(chunk));
            while let Some(stripe) = cutter.next_full_stripe() {
                stripes.push(stripe);
            }
        }
        stripes.extend(cutter.finish());
        stripes
    }

    fn block_texts(stripe: &Stripe) -> Vec<Vec<u8>> {
        stripe.blocks.iter().map(|block| block.to_vec()).collect()
    }

    #[test]
    fn last_stripes_are_zero_padded_and_full_ones_are_whole() {
        let stripes = cut(&[b"abc", b"", b"defg"], 2);
        assert_eq!(stripes.len(), 1);
        assert_eq!(
            block_texts(&stripes[0]),
            vec![b"ab".to_vec(), b"cd".to_vec(), b"ef".to_vec(), b"g\0".to_vec(), b"\0\0".to_vec(), b"\0\0".to_vec()]
        );
        assert_eq!(stripes[0].data_pieces().collect::<Vec<_>>().concat(), b"abcdefg");

        let stripes = cut(&[b"abcdefghijkl", b"mnopq"], 2);
        assert_eq!(stripes.len(), 2);
        assert_eq!(stripes[0].blocks[5].as_ref(), b"kl");
        assert_eq!(stripes[0].data_len, 12);
        assert_eq!(stripes[1].block_len(), 2);
        assert_eq!(stripes[1].data_pieces().collect::<Vec<_>>().concat(), b"mnopq");
    }

    #[test]
    fn the_stripes_hold_every_byte_in_order_whatever_the_chunking() {
        let file: Vec<u8> = (0..1000u32).map(|value| (value % 253) as u8).collect();
        let file: &'static [u8] = Box::leak(file.into_boxed_slice());
        for chunk_size in [1, 7, 24, 100, 999, 1000] {
            let chunks: Vec<&'static [u8]> = file.chunks(chunk_size).collect();
            let stripes = cut(&chunks, 8);
            let joined: Vec<u8> = stripes.iter().flat_map(|stripe| stripe.data_pieces().flatten().copied().collect::<Vec<_>>()).collect();
            assert_eq!(joined, file, "chunks of {chunk_size}");
            assert_eq!(stripes.len(), 1000usize.div_ceil(48), "chunks of {chunk_size}");
            assert!(stripes.iter().all(|stripe| stripe.blocks.iter().all(|block| block.len() == stripe.block_len())));
        }
    }

    #[test]
    fn blocks_inside_one_chunk_are_slices_of_it() {
        let chunk = Bytes::from(vec![7u8; 48]);
        let mut cutter = StripeCutter::new(8);
        cutter.push(chunk.clone());
        let stripe = cutter.next_full_stripe().expect("a full stripe");
        assert_eq!(stripe.blocks[3].as_ptr(), chunk[24..].as_ptr());
        assert!(cutter.finish().is_none());
    }
}
