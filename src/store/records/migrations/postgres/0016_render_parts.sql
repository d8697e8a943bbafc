-- A segmented render's plan and who works on which part of it (issue 17,
-- part 3). One row per segment (part >= 0: its clips and frames) and one for
-- the join (part = -1). state: pending (planned; a segment may be queued),
-- queued (the join only: every segment is done and its task was queued),
-- running (held by worker, heard from at touched_at), done. A part is taken
-- when pending, queued, or running but silent for longer than the orphan
-- window; attempts counts the takes. plan is the fingerprint of what the
-- plan was made from: a render of changed inputs plans again.
CREATE TABLE render_parts (
    job_id         TEXT NOT NULL REFERENCES jobs (id) ON DELETE CASCADE,
    part           INTEGER NOT NULL,
    plan           TEXT NOT NULL,
    first_clip     INTEGER NOT NULL,
    clips          INTEGER NOT NULL,
    start_frame    BIGINT NOT NULL,
    frames         BIGINT NOT NULL,
    state          TEXT NOT NULL,
    attempts       INTEGER NOT NULL DEFAULT 0,
    worker         TEXT,
    touched_at     TEXT NOT NULL,
    render_seconds DOUBLE PRECISION NOT NULL DEFAULT 0,
    PRIMARY KEY (job_id, part)
);
