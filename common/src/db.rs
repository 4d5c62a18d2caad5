//! The PostgreSQL pool and schema migrations.
//!
//! Migrations are `(id, sql)` pairs compiled into each service. They run at start-up inside
//! one transaction under an advisory lock, so several instances starting at once apply each
//! migration exactly once.

use deadpool_postgres::{Manager, ManagerConfig, Pool, RecyclingMethod};
use tokio_postgres::NoTls;

use crate::config::Secret;
use crate::{Error, Result};

/// One schema change: a unique id (`service/NNNN_name`) and its SQL.
#[derive(Clone, Copy, Debug)]
pub struct Migration {
    pub id: &'static str,
    pub sql: &'static str,
}

/// The migrations every service with projections needs.
pub const COMMON_MIGRATIONS: &[Migration] = &[
    Migration { id: "common/0001_projection_offsets", sql: include_str!("sql/0001_projection_offsets.sql") },
    Migration { id: "common/0002_projection_replays", sql: include_str!("sql/0002_projection_replays.sql") },
];

/// Arbitrary constant key of the advisory lock that serialises migrations.
const MIGRATION_LOCK_KEY: i64 = 0x6368_6174_7661_756c;

/// Opens a pool of at most `max_size` connections to `database_url`.
pub fn connect_pool(database_url: &Secret, max_size: usize) -> Result<Pool> {
    let pg_config: tokio_postgres::Config = database_url.expose().parse().map_err(|error| Error::Config(format!("database url: {error}")))?;
    let manager = Manager::from_config(pg_config, NoTls, ManagerConfig { recycling_method: RecyclingMethod::Fast });
    Pool::builder(manager).max_size(max_size).build().map_err(|error| Error::Config(format!("database pool: {error}")))
}

/// Applies every migration of `COMMON_MIGRATIONS` and `service_migrations` not yet applied.
pub async fn migrate(pool: &Pool, service_migrations: &[Migration]) -> Result<()> {
    let mut client = pool.get().await?;
    let transaction = client.transaction().await?;
    transaction.execute("SELECT pg_advisory_xact_lock($1)", &[&MIGRATION_LOCK_KEY]).await?;
    transaction
        .batch_execute(
            "CREATE TABLE IF NOT EXISTS schema_migrations (
                id text PRIMARY KEY,
                applied_at timestamptz NOT NULL DEFAULT now()
            )",
        )
        .await?;
    for migration in COMMON_MIGRATIONS.iter().chain(service_migrations) {
        let already_applied = transaction.query_opt("SELECT 1 FROM schema_migrations WHERE id = $1", &[&migration.id]).await?.is_some();
        if already_applied {
            continue;
        }
        transaction.batch_execute(migration.sql).await?;
        transaction.execute("INSERT INTO schema_migrations (id) VALUES ($1)", &[&migration.id]).await?;
        tracing::info!(migration = migration.id, "migration applied");
    }
    transaction.commit().await?;
    Ok(())
}
