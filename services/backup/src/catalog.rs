//! The catalog of backups in the service's database, and the conversion to the API's view.
//! A backup that is not on disk but is in the configured bucket is fetched into the backup
//! folder and catalogued when it is asked for by id (`folder_of_or_fetch`); ListBackups shows
//! only the catalog.

use std::path::{Path, PathBuf};

use chatvault_proto::backup::v1::{Backup, BackupTable, TablePosition};
use deadpool_postgres::Pool;

use crate::manifest::{Manifest, MANIFEST_FILE};
use crate::{Context, Error};

/// Records the backup in `folder`; a backup already in the catalog is left as it is.
pub async fn record(pool: &Pool, manifest: &Manifest, folder: &Path) -> Result<(), Error> {
    let client = pool.get().await?;
    let created_at = chrono::DateTime::from_timestamp_millis(manifest.created_at_unix_ms).unwrap_or_else(chrono::Utc::now);
    let manifest_json = serde_json::to_value(manifest).map_err(|error| Error::Internal(format!("manifest: {error}")))?;
    client
        .execute(
            "INSERT INTO backups (backup_id, created_at, origin, path, total_bytes, manifest) VALUES ($1, $2, $3, $4, $5, $6)
             ON CONFLICT (backup_id) DO NOTHING",
            &[&manifest.backup_id, &created_at, &manifest.origin, &folder.display().to_string(), &(manifest.total_bytes() as i64), &manifest_json],
        )
        .await?;
    Ok(())
}

/// Adds every backup folder under `root` that the catalog lacks (after the database was
/// wiped or restored, or folders were copied in); folders whose manifest does not check out
/// are skipped with a warning. Returns how many were added.
pub async fn discover(pool: &Pool, root: &Path) -> Result<usize, Error> {
    let mut added = 0;
    let known: std::collections::HashSet<String> =
        pool.get().await?.query("SELECT backup_id FROM backups", &[]).await?.iter().map(|row| row.get(0)).collect();
    for entry in std::fs::read_dir(root)?.flatten() {
        let folder = entry.path();
        let name = entry.file_name().to_string_lossy().into_owned();
        if name.starts_with('.') || !folder.join(crate::manifest::MANIFEST_FILE).is_file() {
            continue;
        }
        match Manifest::read(&folder) {
            Ok(manifest) if manifest.backup_id == name => {
                if !known.contains(&manifest.backup_id) {
                    record(pool, &manifest, &folder).await?;
                    added += 1;
                }
            }
            Ok(manifest) => {
                tracing::warn!(folder = %folder.display(), backup_id = %manifest.backup_id, "backup folder is not named after its id; skipped")
            }
            Err(error) => tracing::warn!(folder = %folder.display(), %error, "backup folder skipped"),
        }
    }
    Ok(added)
}

/// The folder of backup `backup_id`, or NOT_FOUND.
pub async fn folder_of(pool: &Pool, backup_id: &str) -> Result<PathBuf, Error> {
    let client = pool.get().await?;
    let row = client.query_opt("SELECT path FROM backups WHERE backup_id = $1", &[&backup_id]).await?;
    row.map(|row| PathBuf::from(row.get::<_, String>(0)))
        .ok_or_else(|| Error::NotFound(format!("no backup with id {backup_id:?}; `chatvault backup ls` lists them")))
}

/// Records where the backup's copy in the bucket is.
pub async fn set_remote_url(pool: &Pool, backup_id: &str, remote_url: &str) -> Result<(), Error> {
    pool.get().await?.execute("UPDATE backups SET remote_url = $2 WHERE backup_id = $1", &[&backup_id, &remote_url]).await?;
    Ok(())
}

/// The folder of backup `backup_id`. When the catalog lacks it, or its folder is gone, and a
/// bucket is configured that holds it, the backup is first fetched from the bucket into
/// `<backup folder>/<backup id>` (checked file by file) and catalogued.
pub async fn folder_of_or_fetch(context: &Context, backup_id: &str) -> Result<PathBuf, Error> {
    let known = folder_of(&context.pool, backup_id).await;
    let Some(remote) = &context.remote else {
        return known;
    };
    let folder = match known {
        Ok(folder) if folder.join(MANIFEST_FILE).is_file() => return Ok(folder),
        // Catalogued, but the folder was removed: fetch it back to where it was.
        Ok(folder) => folder,
        Err(Error::NotFound(_)) => crate::remote::local_folder_for(&context.settings.folder, backup_id)?,
        Err(other) => return Err(other),
    };
    let (manifest, fetched) = if folder.join(MANIFEST_FILE).is_file() {
        // Copied in after start-up, so discover has not seen it.
        (Manifest::read(&folder)?, false)
    } else {
        if !remote.has_backup(backup_id).await? {
            return Err(Error::NotFound(format!("no backup with id {backup_id:?} here or in {}", remote.url())));
        }
        tracing::info!(backup_id, remote = %remote.url_of(backup_id), folder = %folder.display(), "fetching the backup from the bucket");
        (remote.download_backup(backup_id, &folder).await?, true)
    };
    if manifest.backup_id != backup_id {
        return Err(Error::Damaged(format!("{} holds backup {}", folder.display(), manifest.backup_id)));
    }
    record(&context.pool, &manifest, &folder).await?;
    if fetched {
        set_remote_url(&context.pool, backup_id, &remote.url_of(backup_id)).await?;
    }
    Ok(folder)
}

/// Every backup, newest first.
pub async fn list(pool: &Pool) -> Result<Vec<Backup>, Error> {
    let client = pool.get().await?;
    let rows = client.query("SELECT path, manifest FROM backups ORDER BY created_at DESC, backup_id DESC", &[]).await?;
    rows.iter()
        .map(|row| {
            let manifest: Manifest = serde_json::from_value(row.get(1)).map_err(|error| Error::Internal(format!("catalog manifest: {error}")))?;
            Ok(view(&manifest, Path::new(&row.get::<_, String>(0))))
        })
        .collect()
}

/// Scheduled backups beyond the newest `keep`, oldest last.
pub async fn scheduled_beyond(pool: &Pool, keep: usize) -> Result<Vec<(String, PathBuf)>, Error> {
    let client = pool.get().await?;
    let rows = client
        .query("SELECT backup_id, path FROM backups WHERE origin = 'scheduled' ORDER BY created_at DESC, backup_id DESC OFFSET $1", &[&(keep as i64)])
        .await?;
    Ok(rows.iter().map(|row| (row.get(0), PathBuf::from(row.get::<_, String>(1)))).collect())
}

pub async fn forget(pool: &Pool, backup_id: &str) -> Result<(), Error> {
    pool.get().await?.execute("DELETE FROM backups WHERE backup_id = $1", &[&backup_id]).await?;
    Ok(())
}

/// The API's view of a backup.
pub fn view(manifest: &Manifest, folder: &Path) -> Backup {
    Backup {
        id: manifest.backup_id.clone(),
        path: folder.display().to_string(),
        created_at_unix_ms: manifest.created_at_unix_ms,
        formats: manifest.formats.clone(),
        chat_ids: manifest.chat_ids.clone(),
        with_files: manifest.with_files,
        tables: manifest.tables.iter().map(|table| BackupTable { name: table.name.clone(), rows: table.rows }).collect(),
        files_stored: manifest.files.iter().filter(|file| file.kind == "blob").count() as u64,
        total_bytes: manifest.total_bytes(),
        positions: manifest
            .positions
            .iter()
            .map(|position| TablePosition {
                service: position.service.clone(),
                topic: position.topic.clone(),
                partition: position.partition,
                next_offset: position.next_offset,
            })
            .collect(),
        origin: manifest.origin.clone(),
        schema_version: manifest.schema_version.clone(),
    }
}
