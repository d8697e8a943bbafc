//! What really differs between SQLite and PostgreSQL, side by side. Bodies
//! written once (see [`super::db_run!`]) call these on their concrete pool.

use std::str::FromStr;

use sqlx::postgres::{PgPool, PgPoolOptions};
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePool, SqlitePoolOptions};
use sqlx::{Postgres, Sqlite, Transaction};

use super::StoreError;

/// Opens (creating when missing) the SQLite database at `url` and migrates it.
pub(super) async fn connect_sqlite(url: &str) -> Result<SqlitePool, StoreError> {
    let options = SqliteConnectOptions::from_str(url)?
        .create_if_missing(true)
        .journal_mode(SqliteJournalMode::Wal)
        .foreign_keys(true)
        // Deleted rows are overwritten, not left in free pages: a purged
        // job or a forgotten token leaves nothing in the file.
        .pragma("secure_delete", "on")
        .busy_timeout(std::time::Duration::from_secs(10));
    let pool = SqlitePoolOptions::new().max_connections(8).connect_with(options).await?;
    sqlx::migrate!("./src/store/records/migrations/sqlite").run(&pool).await?;
    Ok(pool)
}

/// Connects to the PostgreSQL database at `url` and migrates it.
pub(super) async fn connect_postgres(url: &str) -> Result<PgPool, StoreError> {
    let pool = PgPoolOptions::new()
        .max_connections(10)
        .acquire_timeout(std::time::Duration::from_secs(10))
        .connect(url)
        .await?;
    sqlx::migrate!("./src/store/records/migrations/postgres").run(&pool).await?;
    Ok(pool)
}

/// The engine-specific pieces of a body written once.
pub(super) trait Dialect {
    type Db: sqlx::Database;

    /// A transaction for a read-then-write.
    ///
    /// On SQLite it holds the write lock from its first statement on. A
    /// deferred transaction (`BEGIN`) that reads before it writes takes a
    /// read snapshot first; when another connection commits a write before it
    /// upgrades, SQLite answers `database is locked` at once, without waiting
    /// out the busy timeout, because waiting could not make the stale snapshot
    /// current. `BEGIN IMMEDIATE` waits (up to the busy timeout) for the lock
    /// instead, so concurrent writers run one after the other. On PostgreSQL
    /// it is a plain transaction; the rows it reads are locked explicitly
    /// (see [`Dialect::FOR_UPDATE`], [`Dialect::lock_key`]).
    async fn write(&self) -> Result<Transaction<'static, Self::Db>, sqlx::Error>;

    /// Appended to a `SELECT` of one row in [`Dialect::write`]: locks the row
    /// until the transaction ends. SQLite needs none: its write transaction
    /// already excludes every other writer.
    const FOR_UPDATE: &'static str;

    /// Appended to the inner `SELECT` of a claim (`UPDATE … WHERE id IN
    /// (SELECT … LIMIT n …)`) so that concurrent claimers take different rows.
    const SKIP_LOCKED: &'static str;

    /// The position of a substring (1-based, 0 when absent): `instr` / `strpos`.
    const POSITION: &'static str;

    /// A table function over a JSON array parameter (`PARAM`), one row per
    /// element in a column `value`: an element that is an array is read with
    /// `value ->> n`. How a batch passes many rows as one parameter.
    const JSON_ROWS: &'static str;

    /// Like [`Dialect::JSON_ROWS`] for an array of strings: `value` is each
    /// string as text.
    const JSON_TEXTS: &'static str;

    /// Serialises transactions on `key` (held until the transaction ends).
    async fn lock_key(tx: &mut Transaction<'static, Self::Db>, key: &str) -> Result<(), sqlx::Error>;

    /// After rows were deleted for good: leaves no older copy in the
    /// engine's own files where the engine allows. False when it could not
    /// finish now (the copies go at the engine's next chance).
    async fn forget_deleted(&self) -> Result<bool, sqlx::Error>;
}

impl Dialect for SqlitePool {
    type Db = Sqlite;
    const FOR_UPDATE: &'static str = "";
    const SKIP_LOCKED: &'static str = "";
    const POSITION: &'static str = "instr";
    const JSON_ROWS: &'static str = "json_each(PARAM)";
    const JSON_TEXTS: &'static str = "json_each(PARAM)";

    async fn write(&self) -> Result<Transaction<'static, Sqlite>, sqlx::Error> {
        self.begin_with("BEGIN IMMEDIATE").await
    }

    async fn lock_key(_tx: &mut Transaction<'static, Sqlite>, _key: &str) -> Result<(), sqlx::Error> {
        // The write transaction holds the database's one write lock already.
        Ok(())
    }

    async fn forget_deleted(&self) -> Result<bool, sqlx::Error> {
        // secure_delete zeroed the freed cells; the write-ahead log still holds
        // older copies of those pages until it is checkpointed and emptied.
        let (busy, _, _): (i64, i64, i64) = sqlx::query_as("PRAGMA wal_checkpoint(TRUNCATE)").fetch_one(self).await?;
        Ok(busy == 0)
    }
}

impl Dialect for PgPool {
    type Db = Postgres;
    const FOR_UPDATE: &'static str = " FOR UPDATE";
    const SKIP_LOCKED: &'static str = " FOR UPDATE SKIP LOCKED";
    const POSITION: &'static str = "strpos";
    // jsonb: the array is parsed once, not once more for every `->>` on
    // each of its rows (a 20,000-line batch's inserts took 0.84 s as json).
    const JSON_ROWS: &'static str = "jsonb_array_elements(CAST(PARAM AS JSONB)) AS t (value)";
    const JSON_TEXTS: &'static str = "jsonb_array_elements_text(CAST(PARAM AS JSONB)) AS t (value)";

    async fn write(&self) -> Result<Transaction<'static, Postgres>, sqlx::Error> {
        self.begin().await
    }

    async fn lock_key(tx: &mut Transaction<'static, Postgres>, key: &str) -> Result<(), sqlx::Error> {
        // Under READ COMMITTED two callers could both count room and both
        // insert; the advisory lock makes them count one after the other.
        sqlx::query("SELECT pg_advisory_xact_lock(hashtext($1))").bind(key).execute(&mut **tx).await?;
        Ok(())
    }

    async fn forget_deleted(&self) -> Result<bool, sqlx::Error> {
        // Dead row versions are reclaimed by (auto)vacuum.
        Ok(true)
    }
}

/// The dialect constants of a pool value (an associated const cannot be named
/// from a value inside a body written once).
pub(super) fn dialect_of<P: Dialect>(_pool: &P) -> DialectSql {
    DialectSql {
        for_update: P::FOR_UPDATE,
        skip_locked: P::SKIP_LOCKED,
        position: P::POSITION,
        json_rows: P::JSON_ROWS,
        json_texts: P::JSON_TEXTS,
    }
}

/// [`Dialect`]'s SQL fragments, as values.
#[derive(Debug, Clone, Copy)]
pub(super) struct DialectSql {
    pub for_update: &'static str,
    pub skip_locked: &'static str,
    pub position: &'static str,
    json_rows: &'static str,
    json_texts: &'static str,
}

impl DialectSql {
    /// [`Dialect::JSON_ROWS`] over the parameter `param` (`$1`, …).
    pub fn json_rows(&self, param: &str) -> String {
        self.json_rows.replace("PARAM", param)
    }

    /// [`Dialect::JSON_TEXTS`] over the parameter `param`.
    pub fn json_texts(&self, param: &str) -> String {
        self.json_texts.replace("PARAM", param)
    }
}

/// Shorthand for [`Dialect::lock_key`] on the pool's engine.
pub(super) async fn lock_key<P: Dialect>(
    _pool: &P,
    tx: &mut Transaction<'static, P::Db>,
    key: &str,
) -> Result<(), sqlx::Error> {
    P::lock_key(tx, key).await
}
