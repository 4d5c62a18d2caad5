//! Receiving an export that the client streams over (`UploadExport`): files are written to a
//! private temporary folder as they arrive (memory stays bounded by one chunk), paths are
//! checked so nothing lands outside that folder, and a `.zip` is unpacked with the same
//! checks. The folder is removed when the import ends, and when the upload is refused.
//!
//! Everything here does blocking file IO: the gRPC handler runs it on a blocking thread
//! (`spawn_blocking`), never on an async worker.
//!
//! A `.zip` is the one input whose size on disk is not the size that was sent, so its
//! unpacking is bounded ([`UnpackLimits`]): the entry count is read from the archive's end
//! record before the central directory is parsed (its entries are held in memory), the sizes
//! the archive declares are checked before anything is written, and because those can lie,
//! the bytes actually written are counted while decompressing.

use std::fs::File;
use std::io::{Read, Seek, SeekFrom, Write};
use std::path::{Component, Path, PathBuf};

use crate::Error;

/// What an uploaded `.zip` may unpack to. An archive beyond any bound is refused with
/// RESOURCE_EXHAUSTED and nothing of it stays on disk.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct UnpackLimits {
    /// Most bytes all entries may unpack to together
    /// (`CHATVAULT_INGEST_MAX_UNPACKED_BYTES`, default 64 GiB, the largest upload).
    pub max_unpacked_bytes: u64,
    /// Most bytes an archive may unpack to per byte of archive
    /// (`CHATVAULT_INGEST_MAX_UNPACK_RATIO`, default 100). Media files are compressed already
    /// and JSON or HTML shrinks about tenfold, so real exports stay far below; a bomb of zeros
    /// deflates about a thousandfold. Archives may always unpack to [`MIN_UNPACK_ALLOWANCE`].
    pub max_unpack_ratio: u64,
    /// Most entries, files and folders (`CHATVAULT_INGEST_MAX_ZIP_ENTRIES`, default 200,000).
    pub max_entries: u64,
}

/// What any archive may unpack to whatever its ratio, so a small export that compresses
/// unusually well still imports: 64 MiB.
pub const MIN_UNPACK_ALLOWANCE: u64 = 64 << 20;

impl Default for UnpackLimits {
    fn default() -> Self {
        Self { max_unpacked_bytes: 64 << 30, max_unpack_ratio: 100, max_entries: 200_000 }
    }
}

impl UnpackLimits {
    /// Returns the most bytes an archive of `archive_bytes` bytes may unpack to: its size
    /// times the ratio, at least [`MIN_UNPACK_ALLOWANCE`], at most `max_unpacked_bytes`.
    pub fn allowance_for(&self, archive_bytes: u64) -> u64 {
        archive_bytes.saturating_mul(self.max_unpack_ratio).max(MIN_UNPACK_ALLOWANCE).min(self.max_unpacked_bytes)
    }
}

/// A folder holding one uploaded export; deleted when dropped.
#[derive(Debug)]
pub struct UploadedExport {
    folder: tempfile::TempDir,
    current_file: Option<(String, File)>,
    bytes_received: u64,
    max_bytes: u64,
    unpack_limits: UnpackLimits,
}

impl UploadedExport {
    /// Creates an empty upload folder under `parent`. The upload may hold `max_bytes` bytes
    /// as sent; a lone `.zip` in it may unpack to what `unpack_limits` allow.
    pub fn create_in(parent: &Path, max_bytes: u64, unpack_limits: UnpackLimits) -> Result<Self, Error> {
        std::fs::create_dir_all(parent)?;
        let folder = tempfile::Builder::new().prefix("upload-").tempdir_in(parent)?;
        Ok(Self { folder, current_file: None, bytes_received: 0, max_bytes, unpack_limits })
    }

    /// Returns the upload folder.
    pub fn root(&self) -> &Path {
        self.folder.path()
    }

    /// Returns the bytes written so far, as sent (before any unpacking).
    pub fn bytes_received(&self) -> u64 {
        self.bytes_received
    }

    /// Appends `data` to `relative_path`, opening the file when the path changes.
    ///
    /// Errors: RESOURCE_EXHAUSTED past the upload's maximum size, INVALID_ARGUMENT for a path
    /// that leaves the folder or a file sent twice.
    pub fn write_chunk(&mut self, relative_path: &str, data: &[u8]) -> Result<(), Error> {
        self.bytes_received += data.len() as u64;
        if self.bytes_received > self.max_bytes {
            return Err(Error::ResourceExhausted(format!("the upload is larger than the configured maximum of {} bytes", self.max_bytes)));
        }
        let same_file = self.current_file.as_ref().is_some_and(|(path, _)| path == relative_path);
        if !same_file {
            let destination = self.root().join(checked_relative_path(relative_path)?);
            if let Some(parent) = destination.parent() {
                std::fs::create_dir_all(parent)?;
            }
            if destination.exists() {
                return Err(Error::InvalidArgument(format!("{relative_path} was sent twice")));
            }
            let file = File::create(&destination)?;
            self.current_file = Some((relative_path.to_owned(), file));
        }
        if let Some((_, file)) = self.current_file.as_mut() {
            file.write_all(data)?;
        }
        Ok(())
    }

    /// Closes the last file and unpacks a lone `.zip`; returns the export folder.
    ///
    /// Errors: INVALID_ARGUMENT for an empty upload or a broken archive, RESOURCE_EXHAUSTED
    /// for an archive beyond the [`UnpackLimits`]; the folder is removed with `self`.
    pub fn finish(mut self) -> Result<Self, Error> {
        if let Some((_, file)) = self.current_file.take() {
            file.sync_all()?;
        }
        let entries: Vec<PathBuf> = std::fs::read_dir(self.root())?.filter_map(|entry| entry.ok().map(|entry| entry.path())).collect();
        if entries.is_empty() {
            return Err(Error::InvalidArgument("the upload holds no files".to_owned()));
        }
        if let [only] = entries.as_slice() {
            if only.extension().is_some_and(|extension| extension.eq_ignore_ascii_case("zip")) {
                let archive_path = only.clone();
                unpack_zip(&archive_path, self.root(), &self.unpack_limits)?;
                std::fs::remove_file(&archive_path)?;
            }
        }
        Ok(self)
    }
}

/// Returns `relative_path` as a path that stays inside the upload folder, or an error
/// naming it: no absolute paths, no `..`, no empty names.
pub fn checked_relative_path(relative_path: &str) -> Result<PathBuf, Error> {
    let refused = |why: &str| Error::InvalidArgument(format!("refused path {relative_path:?}: {why}"));
    if relative_path.is_empty() {
        return Err(refused("empty"));
    }
    if relative_path.contains('\\') || relative_path.contains('\0') {
        return Err(refused("backslashes and NUL are not allowed; use / between folders"));
    }
    let path = Path::new(relative_path);
    let mut checked = PathBuf::new();
    for component in path.components() {
        match component {
            Component::Normal(part) => checked.push(part),
            Component::CurDir => {}
            Component::ParentDir => return Err(refused("it leaves the export folder (..)")),
            Component::RootDir | Component::Prefix(_) => return Err(refused("absolute paths are not allowed")),
        }
    }
    if checked.as_os_str().is_empty() {
        return Err(refused("it names no file"));
    }
    Ok(checked)
}

/// Unpacks the archive at `archive_path` into `destination` within `limits`.
fn unpack_zip(archive_path: &Path, destination: &Path, limits: &UnpackLimits) -> Result<(), Error> {
    let archive_name = archive_path.file_name().map(|name| name.to_string_lossy().into_owned()).unwrap_or_default();
    let invalid = |detail: String| Error::InvalidArgument(format!("{archive_name}: {detail}"));
    let too_many_entries = |count: u64| {
        tracing::warn!(archive = %archive_name, entries = count, limit = limits.max_entries, "zip refused: too many entries");
        Error::ResourceExhausted(format!(
            "{archive_name} holds {count} entries, more than the {} this server unpacks; nothing was kept",
            limits.max_entries
        ))
    };
    let mut archive_file = File::open(archive_path)?;
    let archive_bytes = archive_file.metadata()?.len();
    // The zip reader keeps every central directory entry in memory: refuse an archive
    // announcing too many before it parses them.
    if let Some(announced) = entries_announced_by_end_record(&mut archive_file, archive_bytes)? {
        if announced > limits.max_entries {
            return Err(too_many_entries(announced));
        }
    }
    archive_file.seek(SeekFrom::Start(0))?;
    let mut archive = zip::ZipArchive::new(archive_file).map_err(|error| invalid(format!("not a readable zip archive: {error}")))?;
    if archive.len() as u64 > limits.max_entries {
        return Err(too_many_entries(archive.len() as u64));
    }
    let allowance = limits.allowance_for(archive_bytes);
    let too_large = |at_least: u64| {
        tracing::warn!(archive = %archive_name, archive_bytes, unpacked_at_least = at_least, allowance, "zip refused: unpacks too large");
        Error::ResourceExhausted(format!(
            "{archive_name} unpacks to more than {}, the most this server unpacks from an archive of {}; nothing was kept",
            readable_bytes(allowance),
            readable_bytes(archive_bytes)
        ))
    };
    // An honest archive states its sizes: refuse it before writing anything.
    if let Some(declared) = archive.decompressed_size() {
        if declared > u128::from(allowance) {
            return Err(too_large(u64::try_from(declared).unwrap_or(u64::MAX)));
        }
    }
    let mut unpacked_bytes = 0u64;
    for index in 0..archive.len() {
        let mut entry = archive.by_index(index).map_err(|error| invalid(format!("entry {index}: {error}")))?;
        let name = entry.name().map_err(|error| invalid(format!("entry {index} has an unreadable name: {error}")))?.into_owned();
        let relative = checked_relative_path(name.trim_end_matches('/')).map_err(|error| invalid(error.to_string()))?;
        let target = destination.join(relative);
        if entry.is_dir() {
            std::fs::create_dir_all(&target)?;
            continue;
        }
        if entry.is_symlink() {
            return Err(invalid(format!("{name} is a symbolic link; links are refused")));
        }
        if let Some(parent) = target.parent() {
            std::fs::create_dir_all(parent)?;
        }
        let mut output = File::create(&target)?;
        // Declared sizes can lie: count what decompresses, and stop one byte past the
        // allowance so a bomb never writes more than that.
        let remaining = allowance - unpacked_bytes;
        let written =
            std::io::copy(&mut (&mut entry).take(remaining.saturating_add(1)), &mut output).map_err(|error| invalid(format!("{name}: {error}")))?;
        unpacked_bytes += written;
        if unpacked_bytes > allowance {
            return Err(too_large(unpacked_bytes));
        }
    }
    Ok(())
}

/// The signature of a zip's end of central directory record.
const END_RECORD_SIGNATURE: [u8; 4] = [0x50, 0x4b, 0x05, 0x06];
/// The signature of the zip64 end record locator, 20 bytes before the end record.
const ZIP64_LOCATOR_SIGNATURE: [u8; 4] = [0x50, 0x4b, 0x06, 0x07];
/// The signature of the zip64 end of central directory record.
const ZIP64_END_RECORD_SIGNATURE: [u8; 4] = [0x50, 0x4b, 0x06, 0x06];
/// The end record is 22 bytes plus a comment of at most 65,535 bytes.
const END_RECORD_SEARCH_BYTES: u64 = 22 + 65_535;

/// Returns the largest entry count that an end of central directory record in the last
/// 64 KiB of the archive announces (zip64 counts included), or `None` when there is none
/// (the zip reader then refuses the archive). Every candidate counts, so a fake record in
/// a comment cannot hide the real one.
fn entries_announced_by_end_record(archive: &mut File, archive_bytes: u64) -> Result<Option<u64>, Error> {
    let tail_start = archive_bytes.saturating_sub(END_RECORD_SEARCH_BYTES);
    archive.seek(SeekFrom::Start(tail_start))?;
    let mut tail = Vec::with_capacity((archive_bytes - tail_start) as usize);
    archive.read_to_end(&mut tail)?;
    let mut largest: Option<u64> = None;
    for record_at in (0..tail.len().saturating_sub(21)).rev().filter(|&at| tail[at..at + 4] == END_RECORD_SIGNATURE) {
        let record = &tail[record_at..record_at + 22];
        let on_this_disk = u64::from(u16::from_le_bytes([record[8], record[9]]));
        let total = u64::from(u16::from_le_bytes([record[10], record[11]]));
        let mut announced = on_this_disk.max(total);
        if total == 0xFFFF || on_this_disk == 0xFFFF {
            if let Some(zip64_total) = zip64_entries_announced(archive, tail_start + record_at as u64)? {
                announced = announced.max(zip64_total);
            }
        }
        largest = Some(largest.map_or(announced, |largest: u64| largest.max(announced)));
    }
    Ok(largest)
}

/// Returns the entry count of the zip64 end record that the locator before the end record at
/// `end_record_at` points to, when both are there.
fn zip64_entries_announced(archive: &mut File, end_record_at: u64) -> Result<Option<u64>, Error> {
    let Some(locator_at) = end_record_at.checked_sub(20) else { return Ok(None) };
    let mut locator = [0u8; 20];
    archive.seek(SeekFrom::Start(locator_at))?;
    if archive.read_exact(&mut locator).is_err() || locator[..4] != ZIP64_LOCATOR_SIGNATURE {
        return Ok(None);
    }
    let record_at = u64::from_le_bytes(locator[8..16].try_into().expect("8 bytes"));
    let mut record = [0u8; 40];
    archive.seek(SeekFrom::Start(record_at))?;
    if archive.read_exact(&mut record).is_err() || record[..4] != ZIP64_END_RECORD_SIGNATURE {
        return Ok(None);
    }
    let on_this_disk = u64::from_le_bytes(record[24..32].try_into().expect("8 bytes"));
    let total = u64::from_le_bytes(record[32..40].try_into().expect("8 bytes"));
    Ok(Some(on_this_disk.max(total)))
}

/// Returns `bytes` for people: `104857600 bytes (100.0 MiB)`.
fn readable_bytes(bytes: u64) -> String {
    const UNITS: [&str; 4] = ["KiB", "MiB", "GiB", "TiB"];
    let mut value = bytes as f64;
    let mut unit = None;
    for candidate in UNITS {
        if value < 1024.0 {
            break;
        }
        value /= 1024.0;
        unit = Some(candidate);
    }
    match unit {
        Some(unit) => format!("{bytes} bytes ({value:.1} {unit})"),
        None => format!("{bytes} bytes"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_that_escape_the_export_folder_are_refused() {
        for bad in ["../etc/passwd", "/etc/passwd", "photos/../../x", "", ".", "a\\b"] {
            assert!(checked_relative_path(bad).is_err(), "{bad:?} must be refused");
        }
        assert_eq!(checked_relative_path("photos/a b (1).jpg").expect("fine"), PathBuf::from("photos/a b (1).jpg"));
        assert_eq!(checked_relative_path("./result.json").expect("fine"), PathBuf::from("result.json"));
    }

    #[test]
    fn chunks_land_in_files_and_sizes_are_bounded() {
        let parent = tempfile::tempdir().expect("temp");
        let mut upload = UploadedExport::create_in(parent.path(), 10, UnpackLimits::default()).expect("create");
        upload.write_chunk("result.json", b"{}").expect("first chunk");
        upload.write_chunk("result.json", b"  ").expect("second chunk");
        assert_eq!(std::fs::read(upload.root().join("result.json")).expect("read"), b"{}  ");
        let over = upload.write_chunk("photos/p.jpg", b"0123456789").expect_err("over the maximum");
        assert!(matches!(over, Error::ResourceExhausted(_)), "{over:?}");
    }

    /// Writes a zip with `entries` of `entry_bytes` zeros each into `folder/name`. `streamed`
    /// writes it as a pipe would (sizes in data descriptors after the data, so the archive
    /// declares no total up front).
    fn zip_of_zeros(folder: &Path, name: &str, entries: usize, entry_bytes: usize, streamed: bool) -> PathBuf {
        let path = folder.join(name);
        let options = zip::write::SimpleFileOptions::default().compression_method(zip::CompressionMethod::Deflated);
        let zeros = vec![0u8; entry_bytes];
        let file = File::create(&path).expect("create zip");
        if streamed {
            let mut archive = zip::ZipWriter::new_stream(file);
            for index in 0..entries {
                archive.start_file(format!("export/zeros-{index}.bin"), options).expect("entry");
                archive.write_all(&zeros).expect("write");
            }
            archive.finish().expect("finish");
        } else {
            let mut archive = zip::ZipWriter::new(file);
            for index in 0..entries {
                archive.start_file(format!("export/zeros-{index}.bin"), options).expect("entry");
                archive.write_all(&zeros).expect("write");
            }
            archive.finish().expect("finish");
        }
        path
    }

    fn upload_holding(parent: &Path, archive: &Path, limits: UnpackLimits) -> UploadedExport {
        let mut upload = UploadedExport::create_in(parent, u64::MAX, limits).expect("create");
        upload.write_chunk("export.zip", &std::fs::read(archive).expect("read zip")).expect("write");
        upload
    }

    #[test]
    fn allowances_follow_the_ratio_between_a_floor_and_the_maximum() {
        let limits = UnpackLimits { max_unpacked_bytes: 1 << 30, max_unpack_ratio: 100, max_entries: 10 };
        assert_eq!(limits.allowance_for(1), MIN_UNPACK_ALLOWANCE, "small archives get the floor");
        assert_eq!(limits.allowance_for(1 << 20), 100 << 20);
        assert_eq!(limits.allowance_for(1 << 40), 1 << 30, "never beyond the maximum");
        let tiny = UnpackLimits { max_unpacked_bytes: 1000, ..limits };
        assert_eq!(tiny.allowance_for(1), 1000, "the maximum wins over the floor");
        assert_eq!(readable_bytes(104_857_600), "104857600 bytes (100.0 MiB)");
        assert_eq!(readable_bytes(512), "512 bytes");
    }

    #[test]
    fn a_zip_within_the_limits_unpacks() {
        let (scratch, parent) = (tempfile::tempdir().expect("temp"), tempfile::tempdir().expect("temp"));
        let archive = zip_of_zeros(scratch.path(), "ok.zip", 3, 1000, false);
        let limits = UnpackLimits { max_unpacked_bytes: 3000, max_unpack_ratio: 100, max_entries: 3 };
        let upload = upload_holding(parent.path(), &archive, limits).finish().expect("unpacks");
        assert_eq!(std::fs::read(upload.root().join("export/zeros-2.bin")).expect("read").len(), 1000);
        assert!(!upload.root().join("export.zip").exists(), "the archive is removed once unpacked");
    }

    #[test]
    fn a_zip_declaring_more_than_its_allowance_is_refused_and_leaves_nothing() {
        let (scratch, parent) = (tempfile::tempdir().expect("temp"), tempfile::tempdir().expect("temp"));
        let archive = zip_of_zeros(scratch.path(), "declared.zip", 2, 1000, false);
        let limits = UnpackLimits { max_unpacked_bytes: 1999, max_unpack_ratio: 100, max_entries: 10 };
        let refused = upload_holding(parent.path(), &archive, limits).finish().expect_err("too large");
        assert!(matches!(&refused, Error::ResourceExhausted(message) if message.contains("unpacks to more than 1999 bytes")), "{refused:?}");
        assert_eq!(std::fs::read_dir(parent.path()).expect("list").count(), 0, "the upload folder is gone");
    }

    #[test]
    fn a_zip_without_declared_sizes_is_stopped_by_the_bytes_written() {
        let (scratch, parent) = (tempfile::tempdir().expect("temp"), tempfile::tempdir().expect("temp"));
        let archive = zip_of_zeros(scratch.path(), "streamed.zip", 4, 100_000, true);
        let declared = zip::ZipArchive::new(File::open(&archive).expect("open")).expect("zip").decompressed_size();
        assert_eq!(declared, None, "sizes come after the data, so only counting can stop it");
        let limits = UnpackLimits { max_unpacked_bytes: 250_000, max_unpack_ratio: 100, max_entries: 10 };
        let upload = upload_holding(parent.path(), &archive, limits);
        let root = upload.root().to_path_buf();
        let refused = upload.finish().expect_err("too large");
        assert!(matches!(&refused, Error::ResourceExhausted(_)), "{refused:?}");
        assert!(!root.exists(), "the upload folder is gone");
    }

    #[test]
    fn a_zip_with_too_many_entries_is_refused_before_unpacking() {
        let (scratch, parent) = (tempfile::tempdir().expect("temp"), tempfile::tempdir().expect("temp"));
        let archive = zip_of_zeros(scratch.path(), "many.zip", 11, 1, false);
        let mut archive_file = File::open(&archive).expect("open");
        let archive_bytes = archive_file.metadata().expect("stat").len();
        assert_eq!(entries_announced_by_end_record(&mut archive_file, archive_bytes).expect("read"), Some(11));
        let limits = UnpackLimits { max_unpacked_bytes: 1 << 20, max_unpack_ratio: 100, max_entries: 10 };
        let refused = upload_holding(parent.path(), &archive, limits).finish().expect_err("too many");
        assert!(matches!(&refused, Error::ResourceExhausted(message) if message.contains("11 entries")), "{refused:?}");
        assert_eq!(std::fs::read_dir(parent.path()).expect("list").count(), 0, "the upload folder is gone");
    }
}
