-- TikTok: connected accounts, OAuth states, shared rate limits and inbox uploads.

-- A creator's TikTok account, connected through OAuth. The tokens are sealed
-- (encrypted) by the caller before they get here; this table never holds them
-- in clear. token_version grows whenever the tokens change, so a worker holding
-- an old copy can tell that another process refreshed them. The refresh lock
-- lets one process at a time refresh an account's tokens: TikTok rotates the
-- refresh token, so two racing refreshes would lose one of them.
CREATE TABLE accounts (
    id                 TEXT PRIMARY KEY NOT NULL,  -- ours: a UUIDv7 made at first connect
    open_id            TEXT NOT NULL UNIQUE,       -- TikTok's user id
    display_name       TEXT NOT NULL,
    avatar_url         TEXT,
    scopes             TEXT NOT NULL,              -- granted scopes, comma-separated
    status             TEXT NOT NULL,              -- connected, needs_reconnect, disconnected
    access_token       TEXT,                       -- sealed; the four token columns are NULL once disconnected
    refresh_token      TEXT,                       -- sealed
    access_expires_at  TEXT,
    refresh_expires_at TEXT,
    token_version      INTEGER NOT NULL DEFAULT 1,
    refresh_lock_owner TEXT,
    refresh_lock_until TEXT,
    created_at         TEXT NOT NULL,
    updated_at         TEXT NOT NULL
);

-- OAuth `state` values handed out with a consent link, stored as hashes.
-- Each is taken (deleted) once when TikTok redirects back.
CREATE TABLE oauth_states (
    state_hash TEXT PRIMARY KEY NOT NULL,
    expires_at TEXT NOT NULL
);

-- Sliding-window rate limits shared by every process: one row per granted hit.
-- Hits older than the window are deleted when the key is next asked for.
CREATE TABLE rate_hits (
    key TEXT NOT NULL,
    at  TEXT NOT NULL
);

CREATE INDEX rate_hits_by_key ON rate_hits (key, at);

-- A job's TikTok inbox upload, recorded (with TikTok's publish_id) before the
-- first byte is sent, so a retried publish resumes or checks it instead of
-- starting a second draft. One per job: a new upload replaces the old row.
-- account_id is not a foreign key: the history outlives an account's row.
CREATE TABLE tiktok_uploads (
    job_id     TEXT PRIMARY KEY NOT NULL REFERENCES jobs (id) ON DELETE CASCADE,
    account_id TEXT NOT NULL,
    publish_id TEXT NOT NULL,
    upload_url TEXT,                               -- sealed: it carries the upload token
    video_size INTEGER NOT NULL,
    chunk_size INTEGER NOT NULL,
    status     TEXT NOT NULL,                      -- initialised, uploaded, in_inbox, failed
    created_at TEXT NOT NULL,                      -- when this publish_id was first saved
    updated_at TEXT NOT NULL
);

-- When a waiting job tries again.
ALTER TABLE job_events ADD COLUMN retry_at TEXT;

-- The account a job publishes to (a copy of spec.account), so the waker need not parse specs.
ALTER TABLE jobs ADD COLUMN account TEXT;
UPDATE jobs SET account = json_extract(spec, '$.account');
