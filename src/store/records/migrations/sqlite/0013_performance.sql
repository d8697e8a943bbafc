-- Content performance: the TikTok posts whose counts are collected, their
-- samples over time, and each account's totals (see src/performance/).

-- One row per job whose video reached TikTok. post_id stays NULL until TikTok
-- tells the public post's id (an inbox draft: only after the creator posts it
-- publicly); nothing is guessed. next_due_at is when the collector next asks
-- (status/fetch while post_id is NULL, video/query after); NULL once the
-- schedule has ended (then `ended` may say why). A collector claims a due row
-- by setting claimed_until, so two workers never ask about one post at once;
-- a claim that lapses (its worker died) makes the row due again.
-- account_id is not a foreign key: the history outlives an account's row.
CREATE TABLE performance_posts (
    job_id          TEXT PRIMARY KEY NOT NULL REFERENCES jobs (id) ON DELETE CASCADE,
    account_id      TEXT NOT NULL,
    publish_id      TEXT NOT NULL,
    post_id         TEXT,
    delivered_at    TEXT NOT NULL,
    posted_at       TEXT,                          -- the video's create_time once known
    last_checked_at TEXT,
    next_due_at     TEXT,
    claimed_until   TEXT,
    ended           TEXT
);

CREATE INDEX performance_posts_due ON performance_posts (next_due_at);
CREATE INDEX performance_posts_by_account ON performance_posts (account_id);

-- What video/query said about one post at one time. Written once, never changed.
CREATE TABLE performance_samples (
    id         INTEGER PRIMARY KEY AUTOINCREMENT,
    job_id     TEXT NOT NULL REFERENCES jobs (id) ON DELETE CASCADE,
    account_id TEXT NOT NULL,
    post_id    TEXT NOT NULL,
    sampled_at TEXT NOT NULL,
    views      INTEGER NOT NULL,
    likes      INTEGER NOT NULL,
    comments   INTEGER NOT NULL,
    shares     INTEGER NOT NULL
);

CREATE INDEX performance_samples_by_job ON performance_samples (job_id, id);

-- What user/info (user.info.stats) said about an account at one time.
CREATE TABLE account_stats (
    id         INTEGER PRIMARY KEY AUTOINCREMENT,
    account_id TEXT NOT NULL,
    sampled_at TEXT NOT NULL,
    followers  INTEGER NOT NULL,
    following  INTEGER NOT NULL,
    likes      INTEGER NOT NULL,
    videos     INTEGER NOT NULL
);

CREATE INDEX account_stats_by_account ON account_stats (account_id, id);

-- Per account: until when the collector leaves it alone after TikTok's 429,
-- and when its totals are next due (NULL: not until a post of it is known).
CREATE TABLE performance_accounts (
    account_id    TEXT PRIMARY KEY NOT NULL,
    backoff_until TEXT,
    stats_due_at  TEXT
);
