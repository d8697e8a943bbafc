-- Batches (POST /v1/batches). A batch is found again by its idempotency key
-- (the Idempotency-Key header, or the SHA-256 of the body), so a re-sent batch
-- creates nothing new; batch_jobs says which job each accepted line became.
-- lines, accepted and rejected are the counts of the latest send.
CREATE TABLE batches (
    id              TEXT PRIMARY KEY NOT NULL,   -- a UUIDv7
    idempotency_key TEXT NOT NULL UNIQUE,
    created_at      TEXT NOT NULL,
    lines           INTEGER NOT NULL,
    accepted        INTEGER NOT NULL,
    rejected        INTEGER NOT NULL
);

-- A job can belong to several lines (two lines with one idempotency key) and
-- several batches; deleting a job or a batch deletes its rows here.
CREATE TABLE batch_jobs (
    batch_id TEXT NOT NULL REFERENCES batches (id) ON DELETE CASCADE,
    line     INTEGER NOT NULL,
    job_id   TEXT NOT NULL REFERENCES jobs (id) ON DELETE CASCADE,
    PRIMARY KEY (batch_id, line)
);

CREATE INDEX batch_jobs_by_job ON batch_jobs (job_id);
