//! The team's own media: one row per item, its file in the object store.

use async_trait::async_trait;
use chrono::{DateTime, Utc};

use super::{Records, StoreError, db_run, parse, parse_time, time_text};
use crate::domain::{MediaId, MediaKind};

/// One media item, as the store keeps it.
#[derive(Debug, Clone, PartialEq)]
pub struct MediaRecord {
    pub id: MediaId,
    pub kind: MediaKind,
    pub name: String,
    /// What the content is (sniffed, then confirmed by ffprobe), e.g. `image/png`.
    pub content_type: String,
    /// Where its file is: `media/<id>.<ext>`.
    pub object_key: String,
    pub bytes: u64,
    /// Clips and audio.
    pub duration_s: Option<f64>,
    /// Images and clips.
    pub width: Option<u32>,
    pub height: Option<u32>,
    /// `upload`, or the scheme, host and port it was fetched from (never its
    /// path or query, which may carry a signature).
    pub origin: String,
    pub created_at: DateTime<Utc>,
}

/// What the API and the pipeline ask of the store about media.
#[async_trait]
pub trait MediaStore: Send + Sync + 'static {
    /// Records an item whose file is already in the object store.
    async fn insert_media(&self, media: &MediaRecord) -> Result<(), StoreError>;
    async fn media(&self, id: &MediaId) -> Result<Option<MediaRecord>, StoreError>;
    /// The items among `ids` that exist, in one read (a job names up to 101).
    async fn media_among(&self, ids: &[MediaId]) -> Result<Vec<MediaRecord>, StoreError>;
    /// Up to `limit` items, newest first, created before the item `before` when given.
    async fn list_media(&self, limit: u32, before: Option<&MediaId>) -> Result<Vec<MediaRecord>, StoreError>;
    /// Removes an item's row; false when there was none.
    async fn delete_media(&self, id: &MediaId) -> Result<bool, StoreError>;
}

const COLUMNS: &str = "id, kind, name, content_type, object_key, bytes, duration_s, width, height, origin, created_at";

#[derive(Debug, sqlx::FromRow)]
struct MediaRow {
    id: String,
    kind: String,
    name: String,
    content_type: String,
    object_key: String,
    bytes: i64,
    duration_s: Option<f64>,
    width: Option<i64>,
    height: Option<i64>,
    origin: String,
    created_at: String,
}

impl MediaRow {
    fn into_record(self) -> Result<MediaRecord, StoreError> {
        Ok(MediaRecord {
            id: MediaId::parse(&self.id).ok_or_else(|| StoreError::Corrupt(format!("media id `{}`", self.id)))?,
            kind: parse(&self.kind)?,
            name: self.name,
            content_type: self.content_type,
            object_key: self.object_key,
            bytes: u64::try_from(self.bytes).unwrap_or(0),
            duration_s: self.duration_s,
            width: self.width.and_then(|w| u32::try_from(w).ok()),
            height: self.height.and_then(|h| u32::try_from(h).ok()),
            origin: self.origin,
            created_at: parse_time(&self.created_at)?,
        })
    }
}

#[async_trait]
impl MediaStore for Records {
    async fn insert_media(&self, m: &MediaRecord) -> Result<(), StoreError> {
        db_run!(self, pool => {
            sqlx::query(
                "INSERT INTO media (id, kind, name, content_type, object_key, bytes, duration_s, width, height, origin, \
                 created_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)",
            )
            .bind(m.id.as_str())
            .bind(m.kind.as_str())
            .bind(&m.name)
            .bind(&m.content_type)
            .bind(&m.object_key)
            .bind(i64::try_from(m.bytes).unwrap_or(i64::MAX))
            .bind(m.duration_s)
            .bind(m.width.map(i64::from))
            .bind(m.height.map(i64::from))
            .bind(&m.origin)
            .bind(time_text(m.created_at))
            .execute(pool)
            .await?;
        });
        Ok(())
    }

    async fn media(&self, id: &MediaId) -> Result<Option<MediaRecord>, StoreError> {
        let sql = format!("SELECT {COLUMNS} FROM media WHERE id = $1");
        let row: Option<MediaRow> = db_run!(self, pool => {
            sqlx::query_as(sqlx::AssertSqlSafe(sql)).bind(id.as_str()).fetch_optional(pool).await?
        });
        row.map(MediaRow::into_record).transpose()
    }

    async fn media_among(&self, ids: &[MediaId]) -> Result<Vec<MediaRecord>, StoreError> {
        if ids.is_empty() {
            return Ok(Vec::new());
        }
        let marks: Vec<String> = (1..=ids.len()).map(|n| format!("${n}")).collect();
        let sql = format!("SELECT {COLUMNS} FROM media WHERE id IN ({})", marks.join(", "));
        let rows: Vec<MediaRow> = db_run!(self, pool => {
            let mut q = sqlx::query_as(sqlx::AssertSqlSafe(sql.clone()));
            for id in ids {
                q = q.bind(id.as_str());
            }
            q.fetch_all(pool).await?
        });
        rows.into_iter().map(MediaRow::into_record).collect()
    }

    async fn list_media(&self, limit: u32, before: Option<&MediaId>) -> Result<Vec<MediaRecord>, StoreError> {
        // UUID v7 ids sort by creation time, so the id is the page cursor.
        let sql = format!("SELECT {COLUMNS} FROM media WHERE id < $1 ORDER BY id DESC LIMIT $2");
        let before = before.map_or("~", MediaId::as_str);
        let rows: Vec<MediaRow> = db_run!(self, pool => {
            sqlx::query_as(sqlx::AssertSqlSafe(sql)).bind(before).bind(i64::from(limit)).fetch_all(pool).await?
        });
        rows.into_iter().map(MediaRow::into_record).collect()
    }

    async fn delete_media(&self, id: &MediaId) -> Result<bool, StoreError> {
        let gone = db_run!(self, pool => {
            sqlx::query("DELETE FROM media WHERE id = $1").bind(id.as_str()).execute(pool).await?.rows_affected()
        });
        Ok(gone == 1)
    }
}
