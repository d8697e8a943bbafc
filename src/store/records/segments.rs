//! A segmented render's parts: its segments and its join, and which worker
//! holds which (see `crate::pipeline::segments`).
//!
//! Any render worker on any machine may take any part, so who holds a part
//! is decided here, by one conditional update per claim: a part is taken
//! when it waits (a segment `pending`, the join `queued`), or when its holder
//! has been silent for longer than the orphan window (it died). The join is
//! queued by whoever finishes the last segment, through one conditional
//! update that only one caller can win, so a job is joined once.

use async_trait::async_trait;
use chrono::{DateTime, Utc};

use super::dialect::Dialect;
use super::{Records, StoreError, db_run, earlier, now, time_text};
use crate::domain::JobId;

/// The `part` of the join's row; segments are numbered from 0.
pub const JOIN_PART: i32 = -1;

/// Where a part is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PartState {
    /// Planned: a segment may be queued; the join waits for the segments.
    Pending,
    /// The join only: every segment is done and the join's task was queued.
    Queued,
    /// A worker holds it.
    Running,
    Done,
}

impl PartState {
    fn as_str(self) -> &'static str {
        match self {
            Self::Pending => "pending",
            Self::Queued => "queued",
            Self::Running => "running",
            Self::Done => "done",
        }
    }

    fn parse(s: &str) -> Result<Self, StoreError> {
        Ok(match s {
            "pending" => Self::Pending,
            "queued" => Self::Queued,
            "running" => Self::Running,
            "done" => Self::Done,
            other => return Err(StoreError::Corrupt(format!("render part state `{other}`"))),
        })
    }
}

/// One segment as planned: whole clips, whole frames.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PlannedSegment {
    pub first_clip: u32,
    pub clips: u32,
    pub start_frame: u64,
    pub frames: u64,
}

/// A part's row.
#[derive(Debug, Clone, PartialEq)]
pub struct RenderPartRecord {
    /// The segment's number, or [`JOIN_PART`].
    pub part: i32,
    pub segment: PlannedSegment,
    pub state: PartState,
    /// How many times a worker took it.
    pub attempts: u32,
    /// How long its ffmpeg ran, once done.
    pub render_seconds: f64,
}

/// What a claim of a part got.
#[derive(Debug, Clone, PartialEq)]
pub enum PartClaim {
    /// The part is this worker's now; its take number and row.
    Taken(RenderPartRecord),
    /// Another worker holds it and was heard from within the orphan window.
    Busy,
    /// Done already.
    Done,
    /// Not planned (a plan since replaced), or a join whose segments are not all done.
    Gone,
}

type PartRow = (i32, i32, i32, i64, i64, String, i32, f64);

const PART_COLUMNS: &str = "part, first_clip, clips, start_frame, frames, state, attempts, render_seconds";

fn part_record(row: PartRow) -> Result<RenderPartRecord, StoreError> {
    let (part, first_clip, clips, start_frame, frames, state, attempts, render_seconds) = row;
    Ok(RenderPartRecord {
        part,
        segment: PlannedSegment {
            first_clip: first_clip as u32,
            clips: clips as u32,
            start_frame: start_frame as u64,
            frames: frames as u64,
        },
        state: PartState::parse(&state)?,
        attempts: attempts as u32,
        render_seconds,
    })
}

/// The parts of segmented renders, as the render stage asks them of the record store.
#[async_trait]
pub trait RenderParts: Send + Sync + 'static {
    /// Records `segments` (and a join) as `job`'s plan, fingerprinted `plan`.
    /// A plan with the same fingerprint is kept, so a render that resumes
    /// keeps its finished segments: their take counts start again and the
    /// join waits again. Any other plan is replaced. Returns the parts,
    /// segments in order, then the join.
    async fn plan_render_parts(
        &self,
        job: &JobId,
        plan: &str,
        segments: &[PlannedSegment],
    ) -> Result<Vec<RenderPartRecord>, StoreError>;
    /// `job`'s parts, segments in order, then the join.
    async fn render_parts(&self, job: &JobId) -> Result<Vec<RenderPartRecord>, StoreError>;
    /// Takes `part` of `job` for `worker` when it waits, or when its holder
    /// was silent for `orphan_after` (counting one more take).
    async fn claim_render_part(
        &self,
        job: &JobId,
        part: i32,
        worker: &str,
        now: DateTime<Utc>,
        orphan_after: std::time::Duration,
    ) -> Result<PartClaim, StoreError>;
    /// Tells other workers that `worker` still works on `part` (or is still
    /// busy after finishing it); false once another worker holds it.
    async fn touch_render_part(&self, job: &JobId, part: i32, worker: &str) -> Result<bool, StoreError>;
    /// Records `part` done by `worker`; false if it was not its any more.
    async fn finish_render_part(
        &self,
        job: &JobId,
        part: i32,
        worker: &str,
        render_seconds: f64,
    ) -> Result<bool, StoreError>;
    /// Sets a done segment back to pending: its video is gone from the object
    /// store (deleted after a join, or swept), and a new join needs it.
    async fn redo_render_part(&self, job: &JobId, part: i32) -> Result<(), StoreError>;
    /// Marks the join queued when every segment is done and the join was not
    /// queued yet. True for exactly one caller: the one that must queue it.
    async fn queue_join_if_complete(&self, job: &JobId) -> Result<bool, StoreError>;
}

#[async_trait]
impl RenderParts for Records {
    async fn plan_render_parts(
        &self,
        job: &JobId,
        plan: &str,
        segments: &[PlannedSegment],
    ) -> Result<Vec<RenderPartRecord>, StoreError> {
        let at = now();
        db_run!(self, pool => {
            let mut tx = pool.write().await?;
            let kept: Option<String> =
                sqlx::query_scalar("SELECT plan FROM render_parts WHERE job_id = $1 AND part = $2")
                    .bind(job.as_str())
                    .bind(JOIN_PART)
                    .fetch_optional(&mut *tx)
                    .await?;
            if kept.as_deref() == Some(plan) {
                sqlx::query("UPDATE render_parts SET attempts = 0 WHERE job_id = $1 AND part >= 0 AND state <> 'done'")
                    .bind(job.as_str())
                    .execute(&mut *tx)
                    .await?;
                sqlx::query(
                    "UPDATE render_parts SET state = 'pending', attempts = 0, worker = NULL, touched_at = $1 \
                     WHERE job_id = $2 AND part = $3",
                )
                .bind(&at)
                .bind(job.as_str())
                .bind(JOIN_PART)
                .execute(&mut *tx)
                .await?;
            } else {
                sqlx::query("DELETE FROM render_parts WHERE job_id = $1").bind(job.as_str()).execute(&mut *tx).await?;
                let join = PlannedSegment {
                    first_clip: 0,
                    clips: segments.iter().map(|s| s.clips).sum(),
                    start_frame: 0,
                    frames: segments.iter().map(|s| s.frames).sum(),
                };
                let parts = segments.iter().enumerate().map(|(k, s)| (k as i32, s)).chain([(JOIN_PART, &join)]);
                for (part, s) in parts {
                    sqlx::query(
                        "INSERT INTO render_parts (job_id, part, plan, first_clip, clips, start_frame, frames, state, touched_at) \
                         VALUES ($1, $2, $3, $4, $5, $6, $7, 'pending', $8)",
                    )
                    .bind(job.as_str())
                    .bind(part)
                    .bind(plan)
                    .bind(s.first_clip as i32)
                    .bind(s.clips as i32)
                    .bind(s.start_frame as i64)
                    .bind(s.frames as i64)
                    .bind(&at)
                    .execute(&mut *tx)
                    .await?;
                }
            }
            tx.commit().await?;
        });
        self.render_parts(job).await
    }

    async fn render_parts(&self, job: &JobId) -> Result<Vec<RenderPartRecord>, StoreError> {
        let sql = format!(
            "SELECT {PART_COLUMNS} FROM render_parts WHERE job_id = $1 \
             ORDER BY CASE WHEN part < 0 THEN 1 ELSE 0 END, part"
        );
        let rows: Vec<PartRow> = db_run!(self, pool => {
            sqlx::query_as(sqlx::AssertSqlSafe(sql)).bind(job.as_str()).fetch_all(pool).await?
        });
        rows.into_iter().map(part_record).collect()
    }

    async fn claim_render_part(
        &self,
        job: &JobId,
        part: i32,
        worker: &str,
        now: DateTime<Utc>,
        orphan_after: std::time::Duration,
    ) -> Result<PartClaim, StoreError> {
        let waiting = if part == JOIN_PART { PartState::Queued } else { PartState::Pending };
        let sql = format!(
            "UPDATE render_parts SET state = 'running', worker = $1, touched_at = $2, attempts = attempts + 1 \
             WHERE job_id = $3 AND part = $4 AND (state = $5 OR (state = 'running' AND touched_at <= $6)) \
             RETURNING {PART_COLUMNS}"
        );
        let taken: Option<PartRow> = db_run!(self, pool => {
            sqlx::query_as(sqlx::AssertSqlSafe(sql))
                .bind(worker)
                .bind(time_text(now))
                .bind(job.as_str())
                .bind(part)
                .bind(waiting.as_str())
                .bind(time_text(earlier(now, orphan_after)))
                .fetch_optional(pool)
                .await?
        });
        if let Some(row) = taken {
            return Ok(PartClaim::Taken(part_record(row)?));
        }
        let state: Option<String> = db_run!(self, pool => {
            sqlx::query_scalar("SELECT state FROM render_parts WHERE job_id = $1 AND part = $2")
                .bind(job.as_str())
                .bind(part)
                .fetch_optional(pool)
                .await?
        });
        Ok(match state.as_deref().map(PartState::parse).transpose()? {
            None | Some(PartState::Pending | PartState::Queued) => PartClaim::Gone,
            Some(PartState::Running) => PartClaim::Busy,
            Some(PartState::Done) => PartClaim::Done,
        })
    }

    async fn touch_render_part(&self, job: &JobId, part: i32, worker: &str) -> Result<bool, StoreError> {
        let n = db_run!(self, pool => {
            sqlx::query(
                "UPDATE render_parts SET touched_at = $1 \
                 WHERE job_id = $2 AND part = $3 AND worker = $4 AND state IN ('running', 'done')",
            )
            .bind(now())
            .bind(job.as_str())
            .bind(part)
            .bind(worker)
            .execute(pool)
            .await?
            .rows_affected()
        });
        Ok(n == 1)
    }

    async fn finish_render_part(
        &self,
        job: &JobId,
        part: i32,
        worker: &str,
        render_seconds: f64,
    ) -> Result<bool, StoreError> {
        let n = db_run!(self, pool => {
            sqlx::query(
                "UPDATE render_parts SET state = 'done', touched_at = $1, render_seconds = $2 \
                 WHERE job_id = $3 AND part = $4 AND worker = $5 AND state = 'running'",
            )
            .bind(now())
            .bind(render_seconds)
            .bind(job.as_str())
            .bind(part)
            .bind(worker)
            .execute(pool)
            .await?
            .rows_affected()
        });
        Ok(n == 1)
    }

    async fn redo_render_part(&self, job: &JobId, part: i32) -> Result<(), StoreError> {
        db_run!(self, pool => {
            sqlx::query(
                "UPDATE render_parts SET state = 'pending', worker = NULL, attempts = 0, touched_at = $1 \
                 WHERE job_id = $2 AND part = $3",
            )
            .bind(now())
            .bind(job.as_str())
            .bind(part)
            .execute(pool)
            .await?;
        });
        Ok(())
    }

    async fn queue_join_if_complete(&self, job: &JobId) -> Result<bool, StoreError> {
        // One statement: of two workers finishing the last segments at once,
        // the second's update finds the join queued already and changes nothing.
        let n = db_run!(self, pool => {
            sqlx::query(
                "UPDATE render_parts SET state = 'queued', touched_at = $1 \
                 WHERE job_id = $2 AND part = $3 AND state = 'pending' \
                 AND NOT EXISTS (SELECT 1 FROM render_parts s WHERE s.job_id = $2 AND s.part >= 0 AND s.state <> 'done')",
            )
            .bind(now())
            .bind(job.as_str())
            .bind(JOIN_PART)
            .execute(pool)
            .await?
            .rows_affected()
        });
        Ok(n == 1)
    }
}
