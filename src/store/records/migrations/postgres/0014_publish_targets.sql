-- Publish targets beyond TikTok: YouTube and Instagram accounts live in the
-- same table (tokens sealed the same way, the same refresh lock); `platform`
-- tells them apart and their open_id carries the platform as a prefix
-- (`youtube:UC…`, `instagram:1784…`), so the UNIQUE open_id stays unique.
ALTER TABLE accounts ADD COLUMN platform TEXT NOT NULL DEFAULT 'tiktok';
-- YouTube: the privacy status this account's uploads get (private, unlisted
-- or public); NULL means the youtube.privacy setting.
ALTER TABLE accounts ADD COLUMN video_privacy TEXT;

-- A job's upload to one YouTube or Instagram account, recorded before the
-- first byte is sent: YouTube's resumable session URI (sealed: whoever holds
-- it can upload), Instagram's container id. A redelivered publish resumes or
-- checks it and never starts a second. remote_id is the platform's id of the
-- finished video or reel.
CREATE TABLE target_uploads (
    job_id     TEXT NOT NULL REFERENCES jobs (id) ON DELETE CASCADE,
    platform   TEXT NOT NULL,                      -- youtube, instagram
    account_id TEXT NOT NULL,
    session    TEXT NOT NULL,                      -- sealed session URI, or the container id
    status     TEXT NOT NULL,                      -- started, uploaded, published, failed
    remote_id  TEXT,
    created_at TEXT NOT NULL,
    updated_at TEXT NOT NULL,
    PRIMARY KEY (job_id, platform)
);
