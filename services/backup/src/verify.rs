//! Checking a backup whole: the manifest against its checksum, every file's size and
//! SHA-256, every table's row count, every Parquet row group and CSV record read back.

use std::path::Path;

use chatvault_proto::backup::v1::{Progress, VerifyResult};
use tokio::sync::mpsc;

use crate::manifest::{file_checksum, relative_path, Manifest};
use crate::table_files::TableReader;
use crate::Error;

/// Verifies the backup in `folder`; every problem found is listed (nothing stops early).
pub fn verify_folder(folder: &Path, progress: Option<&mpsc::Sender<Progress>>) -> VerifyResult {
    let mut result = VerifyResult::default();
    let manifest = match Manifest::read(folder) {
        Ok(manifest) => manifest,
        Err(error) => {
            result.problems.push(problem(error));
            return result;
        }
    };
    result.backup_id = manifest.backup_id.clone();
    let total = manifest.files.len() as u64;
    for (index, file) in manifest.files.iter().enumerate() {
        if let Some(progress) = progress {
            let _ = progress.try_send(Progress { phase: "verify".into(), item: file.path.clone(), done: index as u64, total, unit: "files".into() });
        }
        if let Err(problem) = verify_file(folder, &manifest, file, &mut result) {
            result.problems.push(problem);
        }
        result.files_checked += 1;
    }
    for table in &manifest.tables {
        if !manifest.files.iter().any(|file| file.table.as_deref() == Some(table.name.as_str())) {
            result.problems.push(format!("table {} has no file", table.name));
        }
    }
    result.ok = result.problems.is_empty();
    result
}

fn verify_file(folder: &Path, manifest: &Manifest, file: &crate::manifest::FileEntry, result: &mut VerifyResult) -> Result<(), String> {
    let path = folder.join(relative_path(&file.path).map_err(problem)?);
    let (sha256, bytes) = file_checksum(&path).map_err(|error| format!("{}: {error}", file.path))?;
    if bytes != file.bytes {
        return Err(format!("{}: {bytes} bytes, the manifest says {}", file.path, file.bytes));
    }
    if sha256 != file.sha256 {
        return Err(format!("{}: SHA-256 {sha256}, the manifest says {}", file.path, file.sha256));
    }
    if file.kind == "blob" {
        return Ok(());
    }
    let table_name = file.table.as_deref().ok_or_else(|| format!("{}: names no table", file.path))?;
    let table = manifest.table(table_name).ok_or_else(|| format!("{}: table {table_name} is not in the manifest", file.path))?;
    let reader = TableReader::open(folder, file, &table.columns).map_err(problem)?;
    result.row_groups_read += reader.row_groups() as u64;
    let mut rows = 0u64;
    for batch in reader {
        rows += batch.map_err(problem)?.num_rows() as u64;
    }
    result.rows_checked += rows;
    let expected = file.rows.unwrap_or(table.rows);
    if rows != expected || rows != table.rows {
        return Err(format!("{}: {rows} rows, the manifest says {expected}", file.path));
    }
    Ok(())
}

/// The text of a problem, without the "damaged" prefix the whole result adds.
fn problem(error: Error) -> String {
    match error {
        Error::Damaged(message) => message,
        other => other.to_string(),
    }
}

/// Verifies and returns the manifest, or the problems as one `Damaged` error.
pub fn checked_manifest(folder: &Path) -> Result<Manifest, Error> {
    let result = verify_folder(folder, None);
    if !result.ok {
        return Err(Error::Damaged(result.problems.join("; ")));
    }
    Manifest::read(folder)
}
