//! The disk limits (`dd` writing and reading in the folder the storage nodes use) and the
//! page cache.
//!
//! Dropping the page cache: `sync`, then `3` into `/proc/sys/vm/drop_caches` (root only;
//! containers often mount `/proc/sys` read-only), and, whether that worked or not, every file
//! that the next read touches is evicted with `posix_fadvise(POSIX_FADV_DONTNEED)` through
//! `dd if=FILE iflag=nocache count=0`. `fincore` (util-linux) then tells how much of those
//! files is still resident, which the benchmarks print beside the figure.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Instant;

use anyhow::{bail, Context};

/// Runs `dd` with `arguments`; returns its wall-clock seconds.
pub fn dd(arguments: &[String]) -> anyhow::Result<f64> {
    let started = Instant::now();
    let output = Command::new("dd").args(arguments).stdout(Stdio::null()).output().context("running dd")?;
    let seconds = started.elapsed().as_secs_f64();
    if !output.status.success() {
        bail!("dd {} failed: {}", arguments.join(" "), String::from_utf8_lossy(&output.stderr));
    }
    Ok(seconds)
}

/// `dd` writing `bytes` zero bytes to `path` in 1 MiB blocks with `conv=fdatasync` (the
/// data is on the disk when dd ends); seconds.
pub fn dd_write_seconds(path: &Path, bytes: u64) -> anyhow::Result<f64> {
    dd(&[
        "if=/dev/zero".to_owned(),
        format!("of={}", path.display()),
        "bs=1M".to_owned(),
        format!("count={bytes}"),
        "iflag=count_bytes".to_owned(),
        "conv=fdatasync".to_owned(),
    ])
}

/// `dd` reading `path` in 1 MiB blocks; seconds.
pub fn dd_read_seconds(path: &Path) -> anyhow::Result<f64> {
    dd(&[format!("if={}", path.display()), "of=/dev/null".to_owned(), "bs=1M".to_owned()])
}

/// `dd` writing `count` files of `bytes` each into `folder`, one after the other, each with
/// `conv=fdatasync`; seconds for all of them. The files are removed afterwards.
pub fn dd_write_files_seconds(folder: &Path, count: usize, bytes: u64) -> anyhow::Result<f64> {
    std::fs::create_dir_all(folder).with_context(|| format!("creating {}", folder.display()))?;
    let started = Instant::now();
    for index in 0..count {
        dd_write_seconds(&folder.join(format!("dd-{index}.bin")), bytes)?;
    }
    let seconds = started.elapsed().as_secs_f64();
    std::fs::remove_dir_all(folder).with_context(|| format!("removing {}", folder.display()))?;
    Ok(seconds)
}

/// What dropping the page cache achieved for the files of the next read.
#[derive(Debug, Clone)]
pub struct CacheDrop {
    /// Whether the kernel accepted `3` in `/proc/sys/vm/drop_caches`.
    pub dropped_globally: bool,
    /// Files evicted with `posix_fadvise(DONTNEED)`, and their bytes.
    pub files: usize,
    pub bytes: u64,
    /// Bytes of those files still in the page cache afterwards, when `fincore` could tell.
    pub resident_bytes: Option<u64>,
}

impl CacheDrop {
    /// One line for the output, e.g. `page cache dropped (drop_caches) and 16 files evicted:
    /// 0.0 of 1365.3 MiB resident`.
    pub fn describe(&self) -> String {
        let how = if self.dropped_globally {
            "page cache dropped (/proc/sys/vm/drop_caches)".to_owned()
        } else {
            "drop_caches refused (not root or /proc/sys read-only); files evicted with posix_fadvise(DONTNEED) only".to_owned()
        };
        let resident = match self.resident_bytes {
            Some(resident) => format!("{:.1} of {:.1} MiB resident", mib(resident), mib(self.bytes)),
            None => format!("{:.1} MiB, residency unknown (no fincore)", mib(self.bytes)),
        };
        format!("{how}; {} file(s) evicted with dd iflag=nocache: {resident}", self.files)
    }

    /// True when the files are known to be out of the page cache (at most 1% resident).
    pub fn cold(&self) -> bool {
        self.resident_bytes.is_some_and(|resident| resident <= self.bytes / 100)
    }
}

fn mib(bytes: u64) -> f64 {
    bytes as f64 / (1024.0 * 1024.0)
}

/// Syncs, drops the page cache when the kernel allows it, and evicts every file under
/// `roots` (files or folders, recursively) from it.
pub fn drop_page_cache(roots: &[&Path]) -> anyhow::Result<CacheDrop> {
    let synced = Command::new("sync").status().is_ok_and(|status| status.success());
    let dropped_globally = synced && std::fs::write("/proc/sys/vm/drop_caches", "3\n").is_ok();
    Ok(CacheDrop { dropped_globally, ..evict(roots)? })
}

/// Evicts every file under `roots` (files or folders, recursively) from the page cache,
/// leaving the rest of it alone.
pub fn evict(roots: &[&Path]) -> anyhow::Result<CacheDrop> {
    let mut files = Vec::new();
    for root in roots {
        list_files(root, &mut files)?;
    }
    let mut bytes = 0;
    for file in &files {
        bytes += std::fs::metadata(file).map(|metadata| metadata.len()).unwrap_or(0);
        dd(&[format!("if={}", file.display()), "iflag=nocache".to_owned(), "count=0".to_owned(), "status=none".to_owned()])?;
    }
    Ok(CacheDrop { dropped_globally: false, files: files.len(), bytes, resident_bytes: resident_bytes(&files) })
}

/// Appends every regular file under `root` (or `root` itself) to `files`.
pub fn list_files(root: &Path, files: &mut Vec<PathBuf>) -> anyhow::Result<()> {
    let metadata = std::fs::symlink_metadata(root).with_context(|| format!("reading {}", root.display()))?;
    if metadata.is_file() {
        files.push(root.to_path_buf());
    } else if metadata.is_dir() {
        let mut entries: Vec<PathBuf> = std::fs::read_dir(root)
            .with_context(|| format!("listing {}", root.display()))?
            .map(|entry| entry.map(|entry| entry.path()))
            .collect::<Result<_, _>>()?;
        entries.sort();
        for entry in entries {
            list_files(&entry, files)?;
        }
    }
    Ok(())
}

/// Sum of the resident bytes of `files` per `fincore`, when it runs.
fn resident_bytes(files: &[PathBuf]) -> Option<u64> {
    let mut total = 0;
    for batch in files.chunks(256) {
        let output = Command::new("fincore").args(["--bytes", "--noheadings", "--raw", "--output", "RES"]).args(batch).output().ok()?;
        if !output.status.success() {
            return None;
        }
        for line in String::from_utf8_lossy(&output.stdout).lines() {
            total += line.trim().parse::<u64>().ok()?;
        }
    }
    Some(total)
}

/// Total size of the regular files under `root`.
pub fn folder_bytes(root: &Path) -> anyhow::Result<u64> {
    let mut files = Vec::new();
    list_files(root, &mut files)?;
    Ok(files.iter().map(|file| std::fs::metadata(file).map(|metadata| metadata.len()).unwrap_or(0)).sum())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_written_file_is_evicted_and_reads_back() {
        let folder = std::env::temp_dir().join(format!("chatvault-bench-disk-test-{}", std::process::id()));
        std::fs::create_dir_all(&folder).unwrap();
        let file = folder.join("dd.bin");
        dd_write_seconds(&file, 3 * 1024 * 1024 + 5).unwrap();
        assert_eq!(std::fs::metadata(&file).unwrap().len(), 3 * 1024 * 1024 + 5);
        // Only this file: the tests leave the rest of the page cache alone.
        let dropped = evict(&[&folder]).unwrap();
        assert_eq!((dropped.files, dropped.bytes), (1, 3 * 1024 * 1024 + 5));
        if let Some(resident) = dropped.resident_bytes {
            assert_eq!(resident, 0, "{}", dropped.describe());
        }
        dd_read_seconds(&file).unwrap();
        dd_write_files_seconds(&folder.join("many"), 3, 4096).unwrap();
        assert!(!folder.join("many").exists());
        std::fs::remove_dir_all(&folder).unwrap();
    }
}
