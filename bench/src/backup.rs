//! `chatvault-bench backup [--messages N]`: backs up N messages as Parquet and as CSV and
//! restores them into an empty platform; each rate is printed as a ratio to a limit
//! measured in the same run on the same rows: PostgreSQL `COPY (SELECT …) TO STDOUT
//! (FORMAT csv)` for the exports, pyarrow writing the same rows to Parquet (zstd) for the
//! Parquet export, and `COPY FROM` for the restore.
//!
//! The rows are generated in storage's `messages` table with SQL (realistic widths: text,
//! entities and media JSON, the raw message JSON), so the benchmark spends its time on the
//! backup and not on an import.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Instant;

use anyhow::{bail, Context};
use chatvault_bench::platform::{bench_folder, fresh_database, logs_folder};
use chatvault_bench::results::{check_equal, record, thousands, Row, Target};
use chatvault_common::test_support::{service_environment, spawn_service_process, unique_topic_prefix, ChildService, TestDb};
use chatvault_proto::backup::v1::backup_service_client::BackupServiceClient;
use chatvault_proto::backup::v1::{create_backup_response, restore_backup_response, Backup, BackupFormat, CreateBackupRequest, RestoreBackupRequest};
use chatvault_proto::common::v1::ConsistencyToken;
use chatvault_proto::storage::v1::storage_service_client::StorageServiceClient;
use chatvault_proto::storage::v1::ListChatsRequest;
use tonic::transport::Channel;

const CHAT_ID: i64 = 5_100_000_001;

struct Platform {
    database: TestDb,
    storage: ChildService,
    _users: ChildService,
    _ingest: ChildService,
    backup: ChildService,
}

async fn start_platform(backups: &Path, label: &str) -> anyhow::Result<Platform> {
    let database = fresh_database().await;
    let mut environment = service_environment(database.url.expose(), &unique_topic_prefix());
    environment.insert("CHATVAULT_CONSISTENCY_WAIT_MS".to_owned(), "7200000".to_owned());
    let logs = logs_folder();
    let storage = spawn_service_process("chatvault-storage", "STORAGE", environment.clone(), &logs.join(format!("bench-{label}-storage.log"))).await;
    let users = spawn_service_process("chatvault-users", "USERS", environment.clone(), &logs.join(format!("bench-{label}-users.log"))).await;
    let ingest = spawn_service_process("chatvault-ingest", "INGEST", environment.clone(), &logs.join(format!("bench-{label}-ingest.log"))).await;
    environment.insert("CHATVAULT_BACKUP_DIR".to_owned(), backups.display().to_string());
    environment.insert("CHATVAULT_BACKUP_STORAGE_URL".to_owned(), format!("http://{}", storage.grpc_addr));
    environment.insert("CHATVAULT_BACKUP_USERS_URL".to_owned(), format!("http://{}", users.grpc_addr));
    environment.insert("CHATVAULT_BACKUP_INGEST_URL".to_owned(), format!("http://{}", ingest.grpc_addr));
    let backup = spawn_service_process("chatvault-backup", "BACKUP", environment, &logs.join(format!("bench-{label}-backup.log"))).await;
    Ok(Platform { database, storage, _users: users, _ingest: ingest, backup })
}

fn admin<T>(message: T) -> tonic::Request<T> {
    let mut request = tonic::Request::new(message);
    request.metadata_mut().insert("x-chatvault-role", tonic::metadata::MetadataValue::from_static("admin"));
    request
}

async fn backup_client(platform: &Platform) -> anyhow::Result<BackupServiceClient<Channel>> {
    Ok(BackupServiceClient::connect(format!("http://{}", platform.backup.grpc_addr)).await?)
}

/// Fills storage's tables with one chat of `count` generated messages.
async fn generate_rows(client: &tokio_postgres::Client, count: u64) -> anyhow::Result<()> {
    client
        .execute(
            "INSERT INTO chats (owner, chat_id, name, chat_type, message_count, first_message_at, last_message_at, last_import_id, source, imported_at)
             VALUES ('bench', $1, 'Benchmark chat', 'private_supergroup', $2::bigint, to_timestamp(1700000000), to_timestamp(1700000000 + $2::bigint), 'bench', 'generated', now())",
            &[&CHAT_ID, &(count as i64)],
        )
        .await?;
    client
        .batch_execute(&format!(
            "INSERT INTO messages (owner, chat_id, message_id, kind, sent_at, edited_at, from_name, from_id, reply_to_message_id, text, entities, media, raw_json, import_id)
             SELECT 'bench', {CHAT_ID}, n, 1, to_timestamp(1700000000 + n), CASE WHEN n % 10 = 0 THEN to_timestamp(1700000100 + n) END,
                    'Author ' || (n % 97), 'user' || (n % 97), CASE WHEN n % 5 = 0 THEN n - 1 END,
                    'Message number ' || n || ': съешь ещё этих мягких французских булок, да выпей чаю ' || md5(n::text),
                    CASE WHEN n % 3 = 0 THEN jsonb_build_array(jsonb_build_object('kind', 'bold', 'offset', 0, 'length', 7)) END,
                    CASE WHEN n % 20 = 0 THEN jsonb_build_object('kind', 'photo', 'path', 'photos/photo_' || n || '.jpg', 'width', 1280, 'height', 720) END,
                    json_build_object('id', n, 'type', 'message', 'date_unixtime', (1700000000 + n)::text, 'from', 'Author ' || (n % 97),
                                      'from_id', 'user' || (n % 97), 'text', 'Message number ' || n || ' ' || md5(n::text))::text,
                    'bench'
             FROM generate_series(1, {count}) AS n"
        ))
        .await?;
    client.batch_execute("ANALYZE messages").await?;
    Ok(())
}

async fn copy_to_csv_seconds(client: &tokio_postgres::Client) -> anyhow::Result<(f64, u64)> {
    let started = Instant::now();
    let out = client.copy_out("COPY (SELECT * FROM messages) TO STDOUT (FORMAT csv, HEADER)").await?;
    futures::pin_mut!(out);
    let mut bytes = 0u64;
    while let Some(chunk) = futures::StreamExt::next(&mut out).await {
        bytes += chunk?.len() as u64;
    }
    Ok((started.elapsed().as_secs_f64(), bytes))
}

async fn take_backup(client: &mut BackupServiceClient<Channel>, format: BackupFormat) -> anyhow::Result<(Backup, f64)> {
    let started = Instant::now();
    let mut stream =
        client.create_backup(admin(CreateBackupRequest { format: format as i32, chat_ids: Vec::new(), with_files: false })).await?.into_inner();
    let mut backup = None;
    while let Some(message) = stream.message().await? {
        if let Some(create_backup_response::Message::Backup(done)) = message.message {
            backup = Some(done);
        }
    }
    Ok((backup.context("no backup reported")?, started.elapsed().as_secs_f64()))
}

fn python() -> PathBuf {
    std::env::var("CHATVAULT_PYTHON")
        .map(PathBuf::from)
        .unwrap_or_else(|_| Path::new(env!("CARGO_MANIFEST_DIR")).join("..").join(".state").join("python").join("bin").join("python"))
}

/// Fails unless the Python of the benchmark imports pyarrow (`scripts/bench.sh` installs
/// it into `.state/python` first); returns its version.
fn pyarrow_version() -> anyhow::Result<String> {
    let python = python();
    let output = Command::new(&python).args(["-c", "import pyarrow; print(pyarrow.__version__)"]).output().with_context(|| {
        format!("running {} (scripts/bench.sh installs pyarrow into .state/python; CHATVAULT_PYTHON names another)", python.display())
    })?;
    if !output.status.success() {
        bail!(
            "{} cannot import pyarrow (scripts/bench.sh installs it into .state/python): {}",
            python.display(),
            String::from_utf8_lossy(&output.stderr)
        );
    }
    Ok(String::from_utf8_lossy(&output.stdout).trim().to_owned())
}

/// pyarrow writing the rows of our Parquet file anew (zstd level 1 and 131,072-row groups,
/// as the backup writes): the rows it wrote and rows/s.
fn pyarrow_write_rate(parquet: &Path, out: &Path) -> anyhow::Result<(u64, f64)> {
    let script = r#"
import sys, time, pyarrow.parquet as pq
table = pq.read_table(sys.argv[1])
started = time.perf_counter()
pq.write_table(table, sys.argv[2], compression="zstd", compression_level=1, row_group_size=131072)
seconds = time.perf_counter() - started
print(pq.read_metadata(sys.argv[2]).num_rows, table.num_rows / seconds)
"#;
    let output = Command::new(python()).arg("-c").arg(script).arg(parquet).arg(out).output().context("running python with pyarrow")?;
    if !output.status.success() {
        bail!("pyarrow failed: {}", String::from_utf8_lossy(&output.stderr));
    }
    let stdout = String::from_utf8_lossy(&output.stdout);
    let mut fields = stdout.split_whitespace();
    let rows = fields.next().context("pyarrow printed nothing")?.parse()?;
    let rate = fields.next().context("pyarrow printed no rate")?.parse()?;
    Ok((rows, rate))
}

pub(crate) async fn run(message_count: u64) -> anyhow::Result<()> {
    println!("pyarrow {} ({})", pyarrow_version()?, python().display());
    let backups = bench_folder("chatvault-bench-backups")?;
    let outcome = measure(&backups, message_count).await;
    let removed = std::fs::remove_dir_all(&backups).with_context(|| format!("removing {}", backups.display()));
    outcome?;
    removed
}

async fn measure(backups: &Path, message_count: u64) -> anyhow::Result<()> {
    let source = start_platform(backups, "backup-source").await?;
    let client = source.database.client().await;
    let generating = Instant::now();
    generate_rows(&client, message_count).await?;
    println!("generated {message_count} messages in storage in {:.1} s", generating.elapsed().as_secs_f64());

    let (copy_seconds, csv_bytes) = copy_to_csv_seconds(&client).await?;
    let copy_rate = message_count as f64 / copy_seconds;
    let mut backup = backup_client(&source).await?;
    let (parquet_backup, parquet_seconds) = take_backup(&mut backup, BackupFormat::Parquet).await?;
    let (csv_backup, csv_seconds) = take_backup(&mut backup, BackupFormat::Csv).await?;
    for taken in [&parquet_backup, &csv_backup] {
        let rows = taken.tables.iter().find(|table| table.name == "messages").map_or(0, |table| table.rows);
        check_equal(&format!("messages in backup {}", taken.id), rows, message_count)?;
    }
    let parquet_rate = message_count as f64 / parquet_seconds;
    let csv_rate = message_count as f64 / csv_seconds;
    let parquet_file = Path::new(&parquet_backup.path).join("parquet/messages.parquet");
    let (pyarrow_rows, pyarrow_rate) = pyarrow_write_rate(&parquet_file, &backups.join("pyarrow-messages.parquet"))?;
    check_equal("rows pyarrow read from the backup's messages.parquet and wrote", pyarrow_rows, message_count)?;
    let parquet_bytes = std::fs::metadata(&parquet_file)?.len();

    // Restore into an empty platform that finds the backup in its folder.
    let target = start_platform(backups, "backup-target").await?;
    let mut restore = backup_client(&target).await?;
    let started = Instant::now();
    let mut stream = restore.restore_backup(admin(RestoreBackupRequest { backup_id: parquet_backup.id.clone(), format: 0 })).await?.into_inner();
    let mut token = String::new();
    while let Some(message) = stream.message().await? {
        if let Some(restore_backup_response::Message::Summary(summary)) = message.message {
            token = summary.consistency_token;
        }
    }
    let mut storage = StorageServiceClient::connect(format!("http://{}", target.storage.grpc_addr)).await?;
    storage.list_chats(ListChatsRequest { consistency_token: Some(ConsistencyToken { value: token }) }).await?;
    let restore_seconds = started.elapsed().as_secs_f64();
    let target_client = target.database.client().await;
    let restored: i64 = target_client.query_one("SELECT count(*) FROM messages", &[]).await?.get(0);
    check_equal("messages in the restored platform", restored, message_count as i64)?;
    // The services stop before the COPY FROM limit is measured.
    drop(target);
    drop(source);
    let copy_from_seconds = crate::import::copy_from_baseline(&client).await?;
    let restore_rate = message_count as f64 / restore_seconds;
    let copy_from_rate = message_count as f64 / copy_from_seconds;

    println!();
    println!("{:<56} {:>12} {:>8}", "figure", "rows/s", "ratio");
    println!("{:<56} {:>12.0} {:>8}", "COPY (SELECT * FROM messages) TO STDOUT csv (limit)", copy_rate, "");
    println!("{:<56} {:>12.0} {:>8.3}", "CSV backup (CreateBackup csv, all tables)", csv_rate, csv_rate / copy_rate);
    println!("{:<56} {:>12.0} {:>8.3}", "Parquet backup (CreateBackup parquet, zstd)", parquet_rate, parquet_rate / copy_rate);
    println!("{:<56} {:>12.0} {:>8}", "pyarrow write_table, same rows, zstd (limit)", pyarrow_rate, "");
    println!("{:<56} {:>12.0} {:>8.3}", "Parquet backup ÷ pyarrow", parquet_rate, parquet_rate / pyarrow_rate);
    println!("{:<56} {:>12.0} {:>8}", "COPY FROM (binary), same rows, same table (limit)", copy_from_rate, "");
    println!("{:<56} {:>12.0} {:>8.3}", "restore into an empty platform (until projected)", restore_rate, restore_rate / copy_from_rate);
    println!();
    println!(
        "sizes: COPY csv {:.1} MB, backup csv {:.1} MB, backup parquet {:.1} MB",
        csv_bytes as f64 / 1e6,
        csv_backup.total_bytes as f64 / 1e6,
        parquet_bytes as f64 / 1e6
    );
    let verdict = |met: bool| if met { "met" } else { "not met" };
    println!("target: CSV backup ÷ COPY TO csv ≥ 0.7 → {}", verdict(csv_rate / copy_rate >= 0.7));
    println!("target: Parquet backup ÷ pyarrow ≥ 0.5 → {}", verdict(parquet_rate / pyarrow_rate >= 0.5));

    let full_size = message_count >= crate::import::FULL_JSON_MESSAGES;
    let messages = thousands(message_count);
    record(&Row {
        key: "backup-csv".to_owned(),
        work: format!("CSV backup, {messages} messages"),
        figure: csv_rate,
        unit: "messages/s".to_owned(),
        limit: copy_rate,
        limit_name: "COPY (SELECT * FROM messages) TO STDOUT (FORMAT csv)".to_owned(),
        target: Target::RatioAtLeast(0.7),
        full_size,
        notes: format!("backup {:.1} MB of CSV (all tables), COPY {:.1} MB", csv_backup.total_bytes as f64 / 1e6, csv_bytes as f64 / 1e6),
    })?;
    record(&Row {
        key: "backup-parquet".to_owned(),
        work: format!("Parquet backup, {messages} messages"),
        figure: parquet_rate,
        unit: "messages/s".to_owned(),
        limit: pyarrow_rate,
        limit_name: "pyarrow write_table of the same rows, zstd level 1".to_owned(),
        target: Target::RatioAtLeast(0.5),
        full_size,
        notes: format!("messages.parquet {:.1} MB; against COPY TO csv: {:.3}", parquet_bytes as f64 / 1e6, parquet_rate / copy_rate),
    })?;
    record(&Row {
        key: "restore".to_owned(),
        work: format!("restore of the Parquet backup into an empty platform, {messages} messages"),
        figure: restore_rate,
        unit: "messages/s".to_owned(),
        limit: copy_from_rate,
        limit_name: "PostgreSQL COPY FROM (binary), same rows, identical table".to_owned(),
        target: Target::None,
        full_size,
        notes: String::new(),
    })?;
    Ok(())
}
