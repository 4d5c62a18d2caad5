//! The stripe layout: a file is read in stripes of [`DATA_PARTS`] blocks of `block_size`
//! bytes; the last stripe uses blocks of ceil(remaining / 6) bytes, rounded up to an even
//! count (Reed–Solomon needs even shards) and zero padded. Part `i` is block `i` of every
//! stripe, so the data parts differ in size by at most one padding byte pair and memory
//! needs one stripe, whatever the file size.

use crate::DATA_PARTS;

/// The default block size: 1 MiB per part per stripe (a 6 MiB stripe).
pub const DEFAULT_BLOCK_SIZE: u64 = 1 << 20;
/// The largest block size accepted (a block travels in one gRPC message).
pub const MAX_BLOCK_SIZE: u64 = 8 << 20;

/// The stripe layout of one file of `file_size` bytes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct StripeLayout {
    pub block_size: u64,
    pub file_size: u64,
}

impl StripeLayout {
    /// Returns the layout; `block_size` must be even and positive.
    pub fn new(block_size: u64, file_size: u64) -> Self {
        debug_assert!(block_size > 0 && block_size.is_multiple_of(2), "block size must be even and positive");
        Self { block_size, file_size }
    }

    /// Bytes of file data in one full stripe.
    pub fn full_stripe_bytes(&self) -> u64 {
        self.block_size * DATA_PARTS as u64
    }

    fn full_stripes(&self) -> u64 {
        self.file_size / self.full_stripe_bytes()
    }

    fn remainder(&self) -> u64 {
        self.file_size % self.full_stripe_bytes()
    }

    /// Returns how many stripes the file has (0 for an empty file).
    pub fn stripe_count(&self) -> u64 {
        self.full_stripes() + u64::from(self.remainder() > 0)
    }

    /// Returns the block length of stripe `stripe_index` (every part's share of it).
    pub fn block_len(&self, stripe_index: u64) -> u64 {
        if stripe_index < self.full_stripes() {
            self.block_size
        } else {
            last_block_len(self.remainder())
        }
    }

    /// Returns the file bytes in stripe `stripe_index` (without padding).
    pub fn stripe_data_len(&self, stripe_index: u64) -> u64 {
        if stripe_index < self.full_stripes() {
            self.full_stripe_bytes()
        } else {
            self.remainder()
        }
    }

    /// Returns the file offset at which stripe `stripe_index` starts.
    pub fn stripe_start(&self, stripe_index: u64) -> u64 {
        stripe_index * self.full_stripe_bytes()
    }

    /// Returns the stripe holding file byte `offset`.
    pub fn stripe_of_offset(&self, offset: u64) -> u64 {
        offset / self.full_stripe_bytes()
    }

    /// Returns the size of every part (data and parity parts have the same size).
    pub fn part_size(&self) -> u64 {
        self.full_stripes() * self.block_size + last_block_len(self.remainder())
    }
}

/// Returns the block length of a last stripe holding `remainder` bytes.
pub fn last_block_len(remainder: u64) -> u64 {
    if remainder == 0 {
        return 0;
    }
    let per_part = remainder.div_ceil(DATA_PARTS as u64);
    per_part + per_part % 2
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn small_files_have_one_short_stripe() {
        for (size, block) in [(0u64, 0u64), (1, 2), (5, 2), (6, 2), (7, 2), (12, 2), (13, 4)] {
            let layout = StripeLayout::new(DEFAULT_BLOCK_SIZE, size);
            assert_eq!(layout.stripe_count(), u64::from(size > 0), "size {size}");
            assert_eq!(layout.part_size(), block, "size {size}");
            assert!(layout.part_size() * DATA_PARTS as u64 >= size);
        }
    }

    #[test]
    fn large_files_have_full_stripes_and_a_short_last_one() {
        let layout = StripeLayout::new(1024, 6 * 1024 * 3 + 100);
        assert_eq!(layout.stripe_count(), 4);
        assert_eq!(layout.block_len(0), 1024);
        assert_eq!(layout.block_len(3), 18);
        assert_eq!(layout.stripe_data_len(3), 100);
        assert_eq!(layout.part_size(), 3 * 1024 + 18);
        assert_eq!(layout.stripe_of_offset(6 * 1024 + 5), 1);
        assert_eq!(layout.stripe_start(2), 2 * 6 * 1024);
    }

    #[test]
    fn parts_are_nearly_equal_in_size() {
        let size = (1 << 20) + 3;
        let layout = StripeLayout::new(DEFAULT_BLOCK_SIZE, size);
        let part = layout.part_size();
        assert!(part * 6 >= size && part * 6 - size < 12, "part {part}");
    }
}
