//! Parts on the local disk. A part file holds the part's bytes followed by a trailer: the
//! SHA-256 of each block, the part size, the block size and a magic number. Keeping the
//! block hashes in the same file makes a write one atomic rename (temporary file, fsync,
//! rename, fsync of the folder), and lets a read check every block before sending it.
//!
//! Layout: `<data dir>/parts/<xx>/<part id>` (xx = first byte of SHA-256(part id), so no
//! folder grows past a few thousand entries) and `<data dir>/tmp/` for writes in progress.
//!
//! A write starts the disk's work early: every [`WRITEBACK_WINDOW_BYTES`] appended, the
//! kernel is asked to write the new bytes back now (`posix_fadvise(DONTNEED)`, which starts
//! writeback of dirty pages without waiting and drops pages already written). Without it
//! every byte of a part waits in the page cache until the commit's fsync, so the disk sits
//! idle while a part streams in and the commit then pays for the whole part at once; with
//! it the commit's fsync finds at most two windows still dirty. It also keeps parts, which
//! are rarely read right after being written, from crowding the page cache.
//!
//! Reads bypass the page cache too where the file system allows (`O_DIRECT`, blocks whose
//! size is a multiple of [`DIRECT_IO_ALIGNMENT`]): the disk writes each block straight into
//! a reused, aligned buffer, instead of into freshly allocated cache pages that the node
//! then copies out of (on a virtual machine, first touching those fresh pages is what
//! costs: the copy took more CPU time than hashing the block).

use std::fs::{self, File};
use std::io::{Read, Seek, SeekFrom, Write};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use bytes::Bytes;
use chatvault_file_store::hashing::{part_hash_hex, sha256};
use sha2::{Digest, Sha256};

use crate::Error;

const TRAILER_MAGIC: &[u8; 8] = b"CVPART01";
/// Bytes appended between two requests to start writeback (see the module docs).
pub const WRITEBACK_WINDOW_BYTES: u64 = 8 << 20;
/// size (u64) + block size (u64) + magic.
const FOOTER_LEN: u64 = 24;
/// Read buffers a node keeps for reuse (see [`BlockBuffers`]).
const KEPT_BLOCK_BUFFERS: usize = 16;
/// Alignment of buffer addresses, file offsets and lengths for `O_DIRECT` reads (the
/// largest logical block size of common disks).
pub const DIRECT_IO_ALIGNMENT: usize = 4096;

/// What the trailer of a part says.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PartFooter {
    pub size: u64,
    pub block_size: u64,
    pub block_hashes: Vec<[u8; 32]>,
}

impl PartFooter {
    /// Returns the part hash (SHA-256 over the block hashes), hex.
    pub fn part_sha256(&self) -> String {
        part_hash_hex(&self.block_hashes)
    }
}

/// The parts of one node.
#[derive(Debug)]
pub struct PartStore {
    data_dir: PathBuf,
    parts_dir: PathBuf,
    temporary_dir: PathBuf,
    used_bytes: AtomicU64,
    part_count: AtomicU64,
    /// Serialises the rename and the accounting of commits and deletes.
    publish_lock: Mutex<()>,
    block_buffers: Arc<BlockBuffers>,
}

/// Buffers that blocks are read into, taken back for the next read once a block has been
/// sent. A fresh buffer for every block cost more than the read itself: each page was
/// faulted in and zeroed before the read could fill it, and the allocator returned the
/// pages to the system when the block was freed.
#[derive(Debug, Default)]
pub struct BlockBuffers {
    free: Mutex<Vec<Vec<u8>>>,
}

impl BlockBuffers {
    /// Returns a buffer, zero filled on first use, with room for a block of `block_size`
    /// bytes at an address aligned to [`DIRECT_IO_ALIGNMENT`], rounded up to it.
    fn take(&self, block_size: usize) -> Vec<u8> {
        let needed = block_size.next_multiple_of(DIRECT_IO_ALIGNMENT) + DIRECT_IO_ALIGNMENT;
        let reused = self.free.lock().unwrap_or_else(std::sync::PoisonError::into_inner).pop();
        let mut buffer = reused.unwrap_or_default();
        if buffer.len() < needed {
            buffer.resize(needed, 0);
        }
        buffer
    }

    fn give_back(&self, buffer: Vec<u8>) {
        let mut free = self.free.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        if free.len() < KEPT_BLOCK_BUFFERS {
            free.push(buffer);
        }
    }
}

/// A block read into a buffer of [`BlockBuffers`] (at `range`), which gets the buffer back
/// when the last [`Bytes`] referring to it is dropped.
struct ReadBlock {
    buffer: Vec<u8>,
    range: std::ops::Range<usize>,
    buffers: Arc<BlockBuffers>,
}

impl AsRef<[u8]> for ReadBlock {
    fn as_ref(&self) -> &[u8] {
        &self.buffer[self.range.clone()]
    }
}

impl Drop for ReadBlock {
    fn drop(&mut self) {
        self.buffers.give_back(std::mem::take(&mut self.buffer));
    }
}

/// Opens `path` for reads that bypass the page cache, when the file system allows it.
#[cfg(target_os = "linux")]
fn open_direct(path: &Path) -> Option<File> {
    use std::os::unix::fs::OpenOptionsExt;
    let direct = rustix::fs::OFlags::DIRECT.bits() as i32;
    File::options().read(true).custom_flags(direct).open(path).ok()
}

#[cfg(not(target_os = "linux"))]
fn open_direct(_path: &Path) -> Option<File> {
    None
}

/// Returns whether `part_id` is a safe file name: letters, digits, '-', '_', '.'.
pub fn validate_part_id(part_id: &str) -> Result<(), Error> {
    let valid = !part_id.is_empty()
        && part_id.len() <= 200
        && !part_id.starts_with('.')
        && part_id.bytes().all(|byte| byte.is_ascii_alphanumeric() || matches!(byte, b'-' | b'_' | b'.'));
    if valid {
        Ok(())
    } else {
        Err(Error::InvalidArgument(format!("part id {part_id:?} is not valid (letters, digits, '-', '_', '.'; at most 200)")))
    }
}

impl PartStore {
    /// Opens (creating when missing) the store in `data_dir`, drops abandoned temporary
    /// files and counts the stored parts.
    pub fn open(data_dir: &Path) -> Result<Self, Error> {
        let parts_dir = data_dir.join("parts");
        let temporary_dir = data_dir.join("tmp");
        fs::create_dir_all(&parts_dir)?;
        if temporary_dir.exists() {
            fs::remove_dir_all(&temporary_dir)?;
        }
        fs::create_dir_all(&temporary_dir)?;
        let (mut used_bytes, mut part_count) = (0u64, 0u64);
        for shard in fs::read_dir(&parts_dir)? {
            let shard = shard?;
            if !shard.file_type()?.is_dir() {
                continue;
            }
            for part in fs::read_dir(shard.path())? {
                used_bytes += part?.metadata()?.len();
                part_count += 1;
            }
        }
        Ok(Self {
            data_dir: data_dir.to_path_buf(),
            parts_dir,
            temporary_dir,
            used_bytes: AtomicU64::new(used_bytes),
            part_count: AtomicU64::new(part_count),
            publish_lock: Mutex::new(()),
            block_buffers: Arc::default(),
        })
    }

    /// Returns the path of a part (which may not exist).
    pub fn part_path(&self, part_id: &str) -> PathBuf {
        let shard = hex::encode(&sha256(part_id.as_bytes())[..1]);
        self.parts_dir.join(shard).join(part_id)
    }

    /// Returns the bytes the stored parts take, trailers included.
    pub fn used_bytes(&self) -> u64 {
        self.used_bytes.load(Ordering::Relaxed)
    }

    /// Returns the number of stored parts.
    pub fn part_count(&self) -> u64 {
        self.part_count.load(Ordering::Relaxed)
    }

    /// Returns the bytes still free on the data folder's file system.
    pub fn free_bytes(&self) -> u64 {
        match rustix::fs::statvfs(&self.data_dir) {
            Ok(stats) => stats.f_bavail.saturating_mul(stats.f_frsize),
            Err(error) => {
                tracing::warn!(%error, "statvfs of the data folder failed");
                0
            }
        }
    }

    /// Starts writing a part into a temporary file.
    pub fn begin_write(&self, part_id: &str, block_size: u64) -> Result<PartWrite, Error> {
        validate_part_id(part_id)?;
        if block_size == 0 || block_size > chatvault_file_store::layout::MAX_BLOCK_SIZE {
            return Err(Error::InvalidArgument(format!(
                "block_size {block_size} must be between 1 and {}",
                chatvault_file_store::layout::MAX_BLOCK_SIZE
            )));
        }
        let temporary_path = self.temporary_dir.join(format!("{part_id}.{}.tmp", uuid::Uuid::new_v4().simple()));
        let file = File::create(&temporary_path)?;
        Ok(PartWrite {
            file: Some(file),
            temporary_path,
            part_id: part_id.to_owned(),
            block_size,
            current_block: Sha256::new(),
            current_block_len: 0,
            block_hashes: Vec::new(),
            size: 0,
            writeback_from: 0,
            dropped_until: 0,
        })
    }

    /// Reads the trailer of a stored part.
    pub fn stat(&self, part_id: &str) -> Result<PartFooter, Error> {
        validate_part_id(part_id)?;
        let mut file = self.open_existing(part_id)?;
        read_footer(&mut file, part_id)
    }

    fn open_existing(&self, part_id: &str) -> Result<File, Error> {
        File::open(self.part_path(part_id)).map_err(|error| match error.kind() {
            std::io::ErrorKind::NotFound => Error::NotFound(format!("part {part_id} is not on this node")),
            _ => Error::Io(error),
        })
    }

    /// Opens a part for reading from block `first_block`; when `expected_sha256` is not
    /// empty the stored block hashes must add up to it.
    pub fn open_read(&self, part_id: &str, expected_sha256: &str, first_block: u64) -> Result<PartRead, Error> {
        validate_part_id(part_id)?;
        let mut file = self.open_existing(part_id)?;
        let footer = read_footer(&mut file, part_id)?;
        if !expected_sha256.is_empty() && footer.part_sha256() != expected_sha256 {
            return Err(Error::DataLoss(format!("part {part_id} on this node does not have the expected hash")));
        }
        let aligned_blocks = footer.block_size.is_multiple_of(DIRECT_IO_ALIGNMENT as u64);
        let direct = aligned_blocks.then(|| open_direct(&self.part_path(part_id))).flatten();
        let (file, direct) = match direct {
            Some(direct_file) => (direct_file, true),
            None => {
                // Parts are read front to back: a wider readahead keeps the disk ahead.
                let start = first_block.saturating_mul(footer.block_size).min(footer.size);
                if let Err(error) = rustix::fs::fadvise(&file, start, None, rustix::fs::Advice::Sequential) {
                    tracing::debug!(%error, part_id, "sequential readahead advice was refused");
                }
                (file, false)
            }
        };
        Ok(PartRead { file, direct, part_id: part_id.to_owned(), footer, next_block: first_block, buffers: Arc::clone(&self.block_buffers) })
    }

    /// Deletes a part; returns whether it existed.
    pub fn delete(&self, part_id: &str) -> Result<bool, Error> {
        validate_part_id(part_id)?;
        let path = self.part_path(part_id);
        let _guard = self.publish_lock.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        let length = match fs::metadata(&path) {
            Ok(metadata) => metadata.len(),
            Err(error) if error.kind() == std::io::ErrorKind::NotFound => return Ok(false),
            Err(error) => return Err(error.into()),
        };
        fs::remove_file(&path)?;
        self.used_bytes.fetch_sub(length, Ordering::Relaxed);
        self.part_count.fetch_sub(1, Ordering::Relaxed);
        Ok(true)
    }

    /// Moves a complete, synced temporary file into place, replacing an older copy.
    fn publish(&self, temporary_path: &Path, part_id: &str, length: u64) -> Result<(), Error> {
        let final_path = self.part_path(part_id);
        let folder = final_path.parent().expect("part paths have a shard folder");
        fs::create_dir_all(folder)?;
        let _guard = self.publish_lock.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        let replaced_length = fs::metadata(&final_path).map(|metadata| metadata.len()).ok();
        fs::rename(temporary_path, &final_path)?;
        // The rename is durable only once the folder entry is on disk.
        File::open(folder)?.sync_all()?;
        match replaced_length {
            Some(old) => {
                self.used_bytes.fetch_sub(old, Ordering::Relaxed);
            }
            None => {
                self.part_count.fetch_add(1, Ordering::Relaxed);
            }
        }
        self.used_bytes.fetch_add(length, Ordering::Relaxed);
        Ok(())
    }
}

fn read_footer(file: &mut File, part_id: &str) -> Result<PartFooter, Error> {
    let corrupt = || Error::DataLoss(format!("part {part_id} has a damaged trailer"));
    let length = file.metadata()?.len();
    if length < FOOTER_LEN {
        return Err(corrupt());
    }
    let mut footer = [0u8; FOOTER_LEN as usize];
    file.seek(SeekFrom::Start(length - FOOTER_LEN))?;
    file.read_exact(&mut footer)?;
    if &footer[16..24] != TRAILER_MAGIC {
        return Err(corrupt());
    }
    let size = u64::from_le_bytes(footer[0..8].try_into().expect("8 bytes"));
    let block_size = u64::from_le_bytes(footer[8..16].try_into().expect("8 bytes"));
    if block_size == 0 {
        return Err(corrupt());
    }
    let block_count = size.div_ceil(block_size);
    if size.checked_add(block_count * 32).and_then(|total| total.checked_add(FOOTER_LEN)) != Some(length) {
        return Err(corrupt());
    }
    let mut hashes = vec![0u8; (block_count * 32) as usize];
    file.seek(SeekFrom::Start(size))?;
    file.read_exact(&mut hashes)?;
    let block_hashes = hashes.chunks_exact(32).map(|hash| hash.try_into().expect("32 bytes")).collect();
    Ok(PartFooter { size, block_size, block_hashes })
}

/// A part being written; dropped without [`PartWrite::commit`] it leaves nothing behind.
#[derive(Debug)]
pub struct PartWrite {
    file: Option<File>,
    temporary_path: PathBuf,
    part_id: String,
    block_size: u64,
    current_block: Sha256,
    current_block_len: u64,
    block_hashes: Vec<[u8; 32]>,
    size: u64,
    /// Bytes before this offset have been handed to writeback.
    writeback_from: u64,
    /// Bytes before this offset were handed to writeback one window ago or earlier, so
    /// they are clean by now and can leave the page cache.
    dropped_until: u64,
}

impl PartWrite {
    /// Appends bytes, hashing them block by block. Blocking IO.
    pub fn append(&mut self, mut chunk: &[u8]) -> Result<(), Error> {
        let file = self.file.as_mut().expect("file is open until commit");
        file.write_all(chunk)?;
        self.size += chunk.len() as u64;
        while !chunk.is_empty() {
            let room = (self.block_size - self.current_block_len) as usize;
            let taken = room.min(chunk.len());
            self.current_block.update(&chunk[..taken]);
            self.current_block_len += taken as u64;
            chunk = &chunk[taken..];
            if self.current_block_len == self.block_size {
                self.block_hashes.push(std::mem::take(&mut self.current_block).finalize().into());
                self.current_block_len = 0;
            }
        }
        if self.size - self.writeback_from >= WRITEBACK_WINDOW_BYTES {
            self.start_writeback();
        }
        Ok(())
    }

    /// Starts writeback of the bytes appended since the last call and drops the window
    /// before them from the page cache. Only a hint: the commit's fsync is what makes the
    /// part durable, so a refusal is logged and otherwise ignored.
    fn start_writeback(&mut self) {
        let file = self.file.as_ref().expect("file is open until commit");
        let length = std::num::NonZeroU64::new(self.size - self.dropped_until);
        if let Err(error) = rustix::fs::fadvise(file, self.dropped_until, length, rustix::fs::Advice::DontNeed) {
            tracing::debug!(%error, part_id = %self.part_id, "starting writeback early was refused");
        }
        self.dropped_until = self.writeback_from;
        self.writeback_from = self.size;
    }

    /// Checks size and hash, writes the trailer, syncs and moves the part into place.
    /// Returns the part hash. Blocking IO.
    pub fn commit(mut self, store: &PartStore, expected_size: u64, expected_sha256: &str) -> Result<String, Error> {
        if self.current_block_len > 0 {
            self.block_hashes.push(std::mem::take(&mut self.current_block).finalize().into());
            self.current_block_len = 0;
        }
        let part_sha256 = part_hash_hex(&self.block_hashes);
        if self.size != expected_size {
            return Err(Error::InvalidArgument(format!(
                "part {} has {} bytes, the commit says {expected_size}; nothing stored",
                self.part_id, self.size
            )));
        }
        if part_sha256 != expected_sha256 {
            return Err(Error::InvalidArgument(format!(
                "part {} does not match its SHA-256 (received {part_sha256}, expected {expected_sha256}); nothing stored",
                self.part_id
            )));
        }
        let mut file = self.file.take().expect("file is open until commit");
        for hash in &self.block_hashes {
            file.write_all(hash)?;
        }
        file.write_all(&self.size.to_le_bytes())?;
        file.write_all(&self.block_size.to_le_bytes())?;
        file.write_all(TRAILER_MAGIC)?;
        // A new file: fdatasync writes its bytes and the size needed to read them back; the
        // rename in `publish` is made durable by the folder's fsync.
        file.sync_data()?;
        let length = self.size + self.block_hashes.len() as u64 * 32 + FOOTER_LEN;
        drop(file);
        store.publish(&self.temporary_path, &self.part_id, length)?;
        Ok(part_sha256)
    }
}

impl Drop for PartWrite {
    fn drop(&mut self) {
        // After a successful commit the temporary file has been renamed away.
        let _ = fs::remove_file(&self.temporary_path);
    }
}

/// A part being read block by block, each block checked against its stored hash.
#[derive(Debug)]
pub struct PartRead {
    file: File,
    /// Whether `file` was opened with `O_DIRECT` (reads then cover whole aligned units).
    direct: bool,
    part_id: String,
    footer: PartFooter,
    next_block: u64,
    buffers: Arc<BlockBuffers>,
}

impl PartRead {
    /// Returns the next verified block, or `None` at the end. Blocking IO.
    pub fn next_block(&mut self) -> Result<Option<Bytes>, Error> {
        let block_count = self.footer.block_hashes.len() as u64;
        if self.next_block >= block_count {
            return Ok(None);
        }
        let start = self.next_block * self.footer.block_size;
        let length = self.footer.block_size.min(self.footer.size - start) as usize;
        let mut buffer = self.buffers.take(self.footer.block_size as usize);
        let (offset, read_length) = if self.direct {
            // The block hashes and footer follow the last block, so reading whole aligned
            // units never needs bytes past the end of the file that the block needs.
            (buffer.as_ptr().align_offset(DIRECT_IO_ALIGNMENT), length.next_multiple_of(DIRECT_IO_ALIGNMENT))
        } else {
            (0, length)
        };
        let window = &mut buffer[offset..offset + read_length];
        let mut filled = 0;
        while filled < length {
            match self.file.read_at(&mut window[filled..], start + filled as u64) {
                Ok(0) => return Err(Error::DataLoss(format!("part {} ends inside block {}", self.part_id, self.next_block))),
                Ok(read) => filled += read,
                Err(error) if error.kind() == std::io::ErrorKind::Interrupted => {}
                Err(error) => return Err(error.into()),
            }
        }
        let block = ReadBlock { buffer, range: offset..offset + length, buffers: Arc::clone(&self.buffers) };
        if sha256(block.as_ref()) != self.footer.block_hashes[self.next_block as usize] {
            return Err(Error::DataLoss(format!("block {} of part {} is corrupt", self.next_block, self.part_id)));
        }
        self.next_block += 1;
        Ok(Some(Bytes::from_owner(block)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chatvault_file_store::hashing::PartHasher;

    fn expected_hash(bytes: &[u8], block_size: usize) -> String {
        let mut hasher = PartHasher::default();
        for block in bytes.chunks(block_size) {
            hasher.push_block(block);
        }
        hasher.finish_hex()
    }

    #[test]
    fn written_parts_read_back_and_count_as_used() {
        let folder = tempfile::tempdir().expect("temp dir");
        let store = PartStore::open(folder.path()).expect("opens");
        let bytes: Vec<u8> = (0..1000u32).map(|value| value as u8).collect();
        let mut write = store.begin_write("f.0", 64).expect("begins");
        write.append(&bytes[..100]).expect("appends");
        write.append(&bytes[100..]).expect("appends");
        write.commit(&store, 1000, &expected_hash(&bytes, 64)).expect("commits");
        let mut read = store.open_read("f.0", &expected_hash(&bytes, 64), 0).expect("opens");
        let mut back = Vec::new();
        while let Some(block) = read.next_block().expect("reads") {
            back.extend(block);
        }
        assert_eq!(back, bytes);
        assert_eq!(store.part_count(), 1);
        assert_eq!(store.used_bytes(), 1000 + 16 * 32 + FOOTER_LEN);
        let reopened = PartStore::open(folder.path()).expect("reopens");
        assert_eq!(reopened.used_bytes(), store.used_bytes());
        assert!(reopened.delete("f.0").expect("deletes"));
        assert_eq!(reopened.used_bytes(), 0);
    }

    #[test]
    fn parts_longer_than_the_writeback_window_read_back_whole() {
        let folder = tempfile::tempdir().expect("temp dir");
        let store = PartStore::open(folder.path()).expect("opens");
        let block_size = 1 << 20;
        let length = (2 * WRITEBACK_WINDOW_BYTES + 12_345) as usize;
        let bytes: Vec<u8> = (0..length).map(|index| (index % 251) as u8).collect();
        let mut write = store.begin_write("big.3", block_size as u64).expect("begins");
        for chunk in bytes.chunks(300_000) {
            write.append(chunk).expect("appends");
        }
        write.commit(&store, length as u64, &expected_hash(&bytes, block_size)).expect("commits");
        let mut read = store.open_read("big.3", &expected_hash(&bytes, block_size), 1).expect("opens at block 1");
        let mut back = Vec::new();
        while let Some(block) = read.next_block().expect("reads") {
            back.extend(block);
        }
        assert_eq!(back, &bytes[block_size..]);

        let path = store.part_path("big.3");
        let mut stored = fs::read(&path).expect("reads");
        stored[2 * block_size + 7] ^= 0xff;
        fs::write(&path, stored).expect("corrupts");
        let mut read = store.open_read("big.3", "", 2).expect("opens at block 2");
        assert!(matches!(read.next_block(), Err(Error::DataLoss(_))));
    }

    #[test]
    fn a_wrong_hash_stores_nothing_and_corruption_is_detected() {
        let folder = tempfile::tempdir().expect("temp dir");
        let store = PartStore::open(folder.path()).expect("opens");
        let mut write = store.begin_write("f.1", 4).expect("begins");
        write.append(b"abcdefgh").expect("appends");
        assert!(matches!(write.commit(&store, 8, "00"), Err(Error::InvalidArgument(_))));
        assert!(matches!(store.stat("f.1"), Err(Error::NotFound(_))));
        assert_eq!(fs::read_dir(folder.path().join("tmp")).expect("tmp").count(), 0);

        let mut write = store.begin_write("f.1", 4).expect("begins");
        write.append(b"abcdefgh").expect("appends");
        write.commit(&store, 8, &expected_hash(b"abcdefgh", 4)).expect("commits");
        let path = store.part_path("f.1");
        let mut stored = fs::read(&path).expect("reads");
        stored[5] ^= 0xff;
        fs::write(&path, stored).expect("corrupts");
        let mut read = store.open_read("f.1", "", 0).expect("opens");
        assert_eq!(read.next_block().expect("first block is intact"), Some(Bytes::from_static(b"abcd")));
        assert!(matches!(read.next_block(), Err(Error::DataLoss(_))));
        assert!(validate_part_id("../etc").is_err());
    }
}
