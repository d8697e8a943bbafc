-- Jobs, their append-only events and their manifest.
-- A job's current state is the state of its latest event; nothing else stores it.
CREATE TABLE jobs (
    id              TEXT PRIMARY KEY NOT NULL,
    idempotency_key TEXT UNIQUE,
    spec            TEXT NOT NULL,               -- the JobRequest wire form, JSON
    spec_hash       TEXT NOT NULL,               -- tells a re-sent job from a different one under the same key
    manifest        TEXT NOT NULL DEFAULT '{}',  -- what each stage produced, JSON
    progress_stage  TEXT,
    progress        INTEGER NOT NULL DEFAULT 0,
    created_at      TEXT NOT NULL,
    updated_at      TEXT NOT NULL
);

CREATE TABLE job_events (
    id      INTEGER PRIMARY KEY AUTOINCREMENT,
    job_id  TEXT NOT NULL REFERENCES jobs (id) ON DELETE CASCADE,
    state   TEXT NOT NULL,
    stage   TEXT,
    attempt INTEGER,
    error   TEXT,                                -- JobError, JSON
    note    TEXT,
    at      TEXT NOT NULL
);

CREATE INDEX job_events_by_job ON job_events (job_id, id);
