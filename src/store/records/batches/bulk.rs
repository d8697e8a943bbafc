//! A batch's many-row statements, one implementation per engine.

use std::collections::HashSet;

use sqlx::postgres::PgPool;
use sqlx::sqlite::SqlitePool;
use sqlx::{Postgres, Sqlite, Transaction};

use super::JobColumns;
use crate::store::records::dialect::Dialect;
use crate::store::records::json;

/// The many-row statements of a batch, per engine (see the module docs).
pub(super) trait BulkRows: Dialect {
    /// Inserts the jobs whose key is free; the ids inserted.
    async fn insert_jobs(
        &self,
        tx: &mut Transaction<'static, Self::Db>,
        cols: &JobColumns,
        at: &str,
    ) -> Result<HashSet<String>, sqlx::Error>;
    /// key → (id, spec_hash) of the jobs holding `keys`.
    async fn jobs_by_key(
        &self,
        tx: &mut Transaction<'static, Self::Db>,
        keys: &[String],
    ) -> Result<Vec<(String, (String, String))>, sqlx::Error>;
    async fn insert_queued_events(
        &self,
        tx: &mut Transaction<'static, Self::Db>,
        ids: &[String],
        at: &str,
    ) -> Result<(), sqlx::Error>;
    async fn insert_lines(
        &self,
        tx: &mut Transaction<'static, Self::Db>,
        batch: &str,
        lines: &[i64],
        jobs: &[String],
    ) -> Result<(), sqlx::Error>;
    async fn delete_jobs(&self, tx: &mut Transaction<'static, Self::Db>, ids: &[String]) -> Result<(), sqlx::Error>;
}

/// One JSON array parameter, read row by row with `json_each` (`WHERE true`
/// tells SQLite an ON CONFLICT is the upsert's, not a join's).
impl BulkRows for SqlitePool {
    async fn insert_jobs(
        &self,
        tx: &mut Transaction<'static, Sqlite>,
        cols: &JobColumns,
        at: &str,
    ) -> Result<HashSet<String>, sqlx::Error> {
        let rows: Vec<_> = (0..cols.ids.len())
            .map(|i| (&cols.ids[i], &cols.keys[i], &cols.specs[i], &cols.hashes[i], &cols.accounts[i]))
            .collect();
        let ids: Vec<String> = sqlx::query_scalar(
            "INSERT INTO jobs (id, idempotency_key, spec, spec_hash, account, created_at, updated_at) \
             SELECT value ->> 0, value ->> 1, value ->> 2, value ->> 3, value ->> 4, $2, $2 FROM json_each($1) \
             WHERE true ON CONFLICT (idempotency_key) DO NOTHING RETURNING id",
        )
        .bind(json(&rows))
        .bind(at)
        .fetch_all(&mut **tx)
        .await?;
        Ok(ids.into_iter().collect())
    }

    async fn jobs_by_key(
        &self,
        tx: &mut Transaction<'static, Sqlite>,
        keys: &[String],
    ) -> Result<Vec<(String, (String, String))>, sqlx::Error> {
        let rows: Vec<(String, String, String)> = sqlx::query_as(
            "SELECT idempotency_key, id, spec_hash FROM jobs WHERE idempotency_key IN (SELECT value FROM json_each($1))",
        )
        .bind(json(&keys))
        .fetch_all(&mut **tx)
        .await?;
        Ok(rows.into_iter().map(|(key, id, hash)| (key, (id, hash))).collect())
    }

    async fn insert_queued_events(
        &self,
        tx: &mut Transaction<'static, Sqlite>,
        ids: &[String],
        at: &str,
    ) -> Result<(), sqlx::Error> {
        sqlx::query("INSERT INTO job_events (job_id, state, at) SELECT value, 'queued', $2 FROM json_each($1)")
            .bind(json(&ids))
            .bind(at)
            .execute(&mut **tx)
            .await?;
        Ok(())
    }

    async fn insert_lines(
        &self,
        tx: &mut Transaction<'static, Sqlite>,
        batch: &str,
        lines: &[i64],
        jobs: &[String],
    ) -> Result<(), sqlx::Error> {
        let pairs: Vec<_> = lines.iter().zip(jobs).collect();
        sqlx::query(
            "INSERT INTO batch_jobs (batch_id, line, job_id) SELECT $1, value ->> 0, value ->> 1 FROM json_each($2) \
             WHERE true ON CONFLICT (batch_id, line) DO UPDATE SET job_id = excluded.job_id",
        )
        .bind(batch)
        .bind(json(&pairs))
        .execute(&mut **tx)
        .await?;
        Ok(())
    }

    async fn delete_jobs(&self, tx: &mut Transaction<'static, Sqlite>, ids: &[String]) -> Result<(), sqlx::Error> {
        sqlx::query("DELETE FROM jobs WHERE id IN (SELECT value FROM json_each($1))")
            .bind(json(&ids))
            .execute(&mut **tx)
            .await?;
        Ok(())
    }
}

/// Typed arrays, one per column, read with `UNNEST`.
impl BulkRows for PgPool {
    async fn insert_jobs(
        &self,
        tx: &mut Transaction<'static, Postgres>,
        cols: &JobColumns,
        at: &str,
    ) -> Result<HashSet<String>, sqlx::Error> {
        let ids: Vec<String> = sqlx::query_scalar(
            "INSERT INTO jobs (id, idempotency_key, spec, spec_hash, account, created_at, updated_at) \
             SELECT id, key, spec, hash, account, $6, $6 \
             FROM UNNEST($1::text[], $2::text[], $3::text[], $4::text[], $5::text[]) AS t (id, key, spec, hash, account) \
             ON CONFLICT (idempotency_key) DO NOTHING RETURNING id",
        )
        .bind(&cols.ids)
        .bind(&cols.keys)
        .bind(&cols.specs)
        .bind(&cols.hashes)
        .bind(&cols.accounts)
        .bind(at)
        .fetch_all(&mut **tx)
        .await?;
        Ok(ids.into_iter().collect())
    }

    async fn jobs_by_key(
        &self,
        tx: &mut Transaction<'static, Postgres>,
        keys: &[String],
    ) -> Result<Vec<(String, (String, String))>, sqlx::Error> {
        let rows: Vec<(String, String, String)> =
            sqlx::query_as("SELECT idempotency_key, id, spec_hash FROM jobs WHERE idempotency_key = ANY($1)")
                .bind(keys)
                .fetch_all(&mut **tx)
                .await?;
        Ok(rows.into_iter().map(|(key, id, hash)| (key, (id, hash))).collect())
    }

    async fn insert_queued_events(
        &self,
        tx: &mut Transaction<'static, Postgres>,
        ids: &[String],
        at: &str,
    ) -> Result<(), sqlx::Error> {
        sqlx::query(
            "INSERT INTO job_events (job_id, state, at) SELECT id, 'queued', $2 FROM UNNEST($1::text[]) AS t (id)",
        )
        .bind(ids)
        .bind(at)
        .execute(&mut **tx)
        .await?;
        Ok(())
    }

    async fn insert_lines(
        &self,
        tx: &mut Transaction<'static, Postgres>,
        batch: &str,
        lines: &[i64],
        jobs: &[String],
    ) -> Result<(), sqlx::Error> {
        sqlx::query(
            "INSERT INTO batch_jobs (batch_id, line, job_id) SELECT $1, line, job FROM UNNEST($2::bigint[], $3::text[]) \
             AS t (line, job) ON CONFLICT (batch_id, line) DO UPDATE SET job_id = excluded.job_id",
        )
        .bind(batch)
        .bind(lines)
        .bind(jobs)
        .execute(&mut **tx)
        .await?;
        Ok(())
    }

    async fn delete_jobs(&self, tx: &mut Transaction<'static, Postgres>, ids: &[String]) -> Result<(), sqlx::Error> {
        sqlx::query("DELETE FROM jobs WHERE id = ANY($1)").bind(ids).execute(&mut **tx).await?;
        Ok(())
    }
}
