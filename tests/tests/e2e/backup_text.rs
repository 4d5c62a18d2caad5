//! Text with control characters (U+0000 included) through a backup and a restore: the CSV
//! and Parquet files hold it exactly, and a platform restored from either answers every
//! query exactly like the one that was backed up.

use chatvault_proto::backup::v1::{restore_backup_response, BackupFormat, RestoreBackupRequest};

use crate::backup::{admin, BackupPlatform};
use crate::helpers::import_with;
use crate::projection_faults::write_export_with_control_characters;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn control_characters_survive_backup_and_restore_in_both_formats() {
    let backups = tempfile::tempdir().expect("backup folder");
    let original = BackupPlatform::start(0, backups.path(), &[]).await;
    let export = tempfile::tempdir().expect("export folder");
    let chat_id = 7_000_000_000 + i64::from(rand::random::<u16>());
    write_export_with_control_characters(export.path(), chat_id);
    let summary = import_with(&mut original.ingest.clone(), export.path()).await.expect("the export imports");
    let token = summary.consistency_token.as_ref().map(|token| token.value.clone());
    let before = original.answers(token.as_deref()).await;
    assert_eq!(before.message_count, 2);

    let backup = original.create_backup(BackupFormat::Both, false).await;
    let folder = std::path::Path::new(&backup.path);
    {
        use std::os::unix::fs::PermissionsExt;
        // Backups hold every account's password hash: the service's user alone reads them.
        let mode = |path: &std::path::Path| std::fs::metadata(path).expect("exists").permissions().mode() & 0o777;
        assert_eq!(mode(folder), 0o700, "the backup folder");
        assert_eq!(mode(&folder.join("csv/accounts.csv")), 0o600, "accounts.csv");
        assert_eq!(mode(&folder.join("parquet/accounts.parquet")), 0o600, "accounts.parquet");
    }
    let csv = std::fs::read(folder.join("csv/messages.csv")).expect("messages.csv");
    let exact = "before\u{0}quokka \u{1} unit\u{1f}sep zebra".as_bytes();
    assert!(csv.windows(exact.len()).any(|window| window == exact), "the CSV holds the text exactly, U+0000 included");
    let stored_form = chatvault_common::text::encode("before\u{0}quokka").into_owned();
    assert!(!csv.windows(stored_form.len()).any(|window| window == stored_form.as_bytes()), "no stored form leaks into the CSV");

    for format in [BackupFormat::Parquet, BackupFormat::Csv] {
        let restored = BackupPlatform::start(0, backups.path(), &[]).await;
        let request = RestoreBackupRequest { backup_id: backup.id.clone(), format: format as i32 };
        let mut stream = restored.backup.clone().restore_backup(admin(request)).await.expect("restore starts").into_inner();
        let mut summary = None;
        while let Some(message) = stream.message().await.expect("restore stream") {
            if let Some(restore_backup_response::Message::Summary(done)) = message.message {
                summary = Some(done);
            }
        }
        let summary = summary.expect("the restore is reported");
        let after = restored.answers(Some(summary.consistency_token.as_str())).await;
        assert_eq!(after, before, "a platform restored from {format:?} answers exactly as the original");
    }
}
