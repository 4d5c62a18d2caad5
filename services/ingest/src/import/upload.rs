//! Receiving an export that the client streams over (`UploadExport`): files are written to a
//! private temporary folder as they arrive (memory stays bounded by one chunk), paths are
//! checked so nothing lands outside that folder, and a `.zip` is unpacked with the same
//! checks. The folder is removed when the import ends.

use std::fs::File;
use std::io::Write;
use std::path::{Component, Path, PathBuf};

use crate::Error;

/// A folder holding one uploaded export; deleted when dropped.
#[derive(Debug)]
pub struct UploadedExport {
    folder: tempfile::TempDir,
    current_file: Option<(String, File)>,
    bytes_received: u64,
    max_bytes: u64,
}

impl UploadedExport {
    /// Creates an empty upload folder under `parent`.
    pub fn create_in(parent: &Path, max_bytes: u64) -> Result<Self, Error> {
        std::fs::create_dir_all(parent)?;
        let folder = tempfile::Builder::new().prefix("upload-").tempdir_in(parent)?;
        Ok(Self { folder, current_file: None, bytes_received: 0, max_bytes })
    }

    /// Returns the upload folder.
    pub fn root(&self) -> &Path {
        self.folder.path()
    }

    pub fn bytes_received(&self) -> u64 {
        self.bytes_received
    }

    /// Appends `data` to `relative_path`, opening the file when the path changes.
    pub fn write_chunk(&mut self, relative_path: &str, data: &[u8]) -> Result<(), Error> {
        self.bytes_received += data.len() as u64;
        if self.bytes_received > self.max_bytes {
            return Err(Error::InvalidArgument(format!(
                "the upload is larger than the configured maximum of {} bytes",
                self.max_bytes
            )));
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
                unpack_zip(&archive_path, self.root())?;
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

fn unpack_zip(archive_path: &Path, destination: &Path) -> Result<(), Error> {
    let archive_name = archive_path.file_name().map(|name| name.to_string_lossy().into_owned()).unwrap_or_default();
    let invalid = |detail: String| Error::InvalidArgument(format!("{archive_name}: {detail}"));
    let mut archive = zip::ZipArchive::new(File::open(archive_path)?).map_err(|error| invalid(format!("not a readable zip archive: {error}")))?;
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
        std::io::copy(&mut entry, &mut output).map_err(|error| invalid(format!("{name}: {error}")))?;
    }
    Ok(())
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
        let mut upload = UploadedExport::create_in(parent.path(), 10).expect("create");
        upload.write_chunk("result.json", b"{}").expect("first chunk");
        upload.write_chunk("result.json", b"  ").expect("second chunk");
        assert_eq!(std::fs::read(upload.root().join("result.json")).expect("read"), b"{}  ");
        assert!(upload.write_chunk("photos/p.jpg", b"0123456789").is_err(), "over the maximum");
    }
}
