-- Jobs, their append-only events and their manifest (the PostgreSQL twin of
-- src/store/records/migrations/sqlite/0001_jobs.sql). A job's current state is the state of its
-- latest event. Times are RFC 3339 text in UTC with microseconds, as in SQLite,
-- so both stores share one row mapping; that text sorts in time order.
CREATE TABLE jobs (
    id              TEXT PRIMARY KEY NOT NULL,
    idempotency_key TEXT UNIQUE,
    spec            TEXT NOT NULL,
    spec_hash       TEXT NOT NULL,
    manifest        TEXT NOT NULL DEFAULT '{}',
    progress_stage  TEXT,
    progress        BIGINT NOT NULL DEFAULT 0,
    created_at      TEXT NOT NULL,
    updated_at      TEXT NOT NULL
);

CREATE TABLE job_events (
    id      BIGSERIAL PRIMARY KEY,
    job_id  TEXT NOT NULL REFERENCES jobs (id) ON DELETE CASCADE,
    state   TEXT NOT NULL,
    stage   TEXT,
    attempt BIGINT,
    error   TEXT,
    note    TEXT,
    at      TEXT NOT NULL
);

CREATE INDEX job_events_by_job ON job_events (job_id, id);
