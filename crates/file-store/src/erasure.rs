//! Reed–Solomon 6+2 over one stripe (`reed-solomon-simd`): encoding the parity blocks, and
//! restoring missing data blocks from any 6 of the 8.

use reed_solomon_simd::{ReedSolomonDecoder, ReedSolomonEncoder};

use crate::{Error, Result, DATA_PARTS, PARITY_PARTS, TOTAL_PARTS};

/// Returns the parity blocks of `data_blocks` (6 blocks of equal, even, non-zero length).
pub fn encode_parity(data_blocks: &[&[u8]]) -> Result<Vec<Vec<u8>>> {
    debug_assert_eq!(data_blocks.len(), DATA_PARTS);
    let block_len = data_blocks[0].len();
    let mut encoder = ReedSolomonEncoder::new(DATA_PARTS, PARITY_PARTS, block_len)?;
    for block in data_blocks {
        encoder.add_original_shard(block)?;
    }
    let encoded = encoder.encode()?;
    Ok(encoded.recovery_iter().map(<[u8]>::to_vec).collect())
}

/// Encodes the parity of one stripe after another, reusing the encoder's working memory
/// (a new encoder allocates and faults in a fresh buffer of eight blocks for every stripe).
#[derive(Default)]
pub struct ParityEncoder {
    encoder: Option<ReedSolomonEncoder>,
}

impl std::fmt::Debug for ParityEncoder {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        formatter.debug_struct("ParityEncoder").finish_non_exhaustive()
    }
}

impl ParityEncoder {
    /// Appends to `stripe`, which holds the 6 data blocks of `block_len` bytes (even,
    /// non-zero) back to back, their 2 parity blocks.
    pub fn append_parity(&mut self, stripe: &mut Vec<u8>, block_len: usize) -> Result<()> {
        debug_assert_eq!(stripe.len(), DATA_PARTS * block_len);
        let encoder = match &mut self.encoder {
            Some(encoder) => {
                encoder.reset(DATA_PARTS, PARITY_PARTS, block_len)?;
                encoder
            }
            None => self.encoder.insert(ReedSolomonEncoder::new(DATA_PARTS, PARITY_PARTS, block_len)?),
        };
        for block in stripe.chunks_exact(block_len) {
            encoder.add_original_shard(block)?;
        }
        let encoded = encoder.encode()?;
        for parity_block in encoded.recovery_iter() {
            stripe.extend_from_slice(parity_block);
        }
        Ok(())
    }
}

/// Returns the 6 data blocks of a stripe from `blocks` (index = part index; `None` where
/// the part is missing or corrupt). At least 6 blocks must be present.
pub fn restore_data_blocks(blocks: &[Option<bytes::Bytes>]) -> Result<Vec<bytes::Bytes>> {
    debug_assert_eq!(blocks.len(), TOTAL_PARTS);
    let present = blocks.iter().filter(|block| block.is_some()).count();
    if present < DATA_PARTS {
        return Err(Error::DataLoss(format!("only {present} of {TOTAL_PARTS} parts are readable; {DATA_PARTS} are needed to rebuild the file")));
    }
    if blocks[..DATA_PARTS].iter().all(Option::is_some) {
        return Ok(blocks[..DATA_PARTS].iter().flatten().cloned().collect());
    }
    let block_len = blocks.iter().flatten().next().map(bytes::Bytes::len).unwrap_or(0);
    let mut decoder = ReedSolomonDecoder::new(DATA_PARTS, PARITY_PARTS, block_len)?;
    for (index, block) in blocks.iter().enumerate() {
        match (block, index < DATA_PARTS) {
            (Some(block), true) => decoder.add_original_shard(index, block)?,
            (Some(block), false) => decoder.add_recovery_shard(index - DATA_PARTS, block)?,
            (None, _) => {}
        }
    }
    let restored = decoder.decode()?;
    let mut data = Vec::with_capacity(DATA_PARTS);
    for (index, block) in blocks[..DATA_PARTS].iter().enumerate() {
        match block {
            Some(block) => data.push(block.clone()),
            None => {
                let rebuilt = restored.restored_original(index).ok_or_else(|| Error::DataLoss(format!("part {index} could not be rebuilt")))?;
                data.push(bytes::Bytes::copy_from_slice(rebuilt));
            }
        }
    }
    Ok(data)
}

#[cfg(test)]
mod tests {
    use super::*;
    use bytes::Bytes;

    #[test]
    fn any_two_lost_blocks_are_restored() {
        let data: Vec<Vec<u8>> = (0..DATA_PARTS).map(|part| (0..64).map(|byte| (part * 31 + byte) as u8).collect()).collect();
        let data_refs: Vec<&[u8]> = data.iter().map(Vec::as_slice).collect();
        let parity = encode_parity(&data_refs).expect("encodes");
        let all: Vec<Bytes> = data.iter().chain(parity.iter()).map(|block| Bytes::copy_from_slice(block)).collect();
        for first in 0..TOTAL_PARTS {
            for second in first..TOTAL_PARTS {
                let mut blocks: Vec<Option<Bytes>> = all.iter().cloned().map(Some).collect();
                blocks[first] = None;
                blocks[second] = None;
                let restored = restore_data_blocks(&blocks).expect("restores");
                assert_eq!(restored.iter().map(|block| block.to_vec()).collect::<Vec<_>>(), data);
            }
        }
        let mut reused = ParityEncoder::default();
        for length in [64, 32] {
            let mut stripe: Vec<u8> = data.iter().flat_map(|block| block[..length].to_vec()).collect();
            reused.append_parity(&mut stripe, length).expect("encodes");
            let shorter: Vec<&[u8]> = data.iter().map(|block| &block[..length]).collect();
            assert_eq!(stripe[DATA_PARTS * length..], encode_parity(&shorter).expect("encodes").concat(), "blocks of {length}");
        }
        let mut three_lost: Vec<Option<Bytes>> = all.iter().cloned().map(Some).collect();
        three_lost[0] = None;
        three_lost[1] = None;
        three_lost[7] = None;
        assert!(matches!(restore_data_blocks(&three_lost), Err(Error::DataLoss(_))));
    }
}
