-- The notification outbox: one row per job event and channel, written when the
-- pipeline records the event and sent later by publish-role processes, so an
-- outage of Telegram or a webhook receiver only delays messages.
-- UNIQUE (job_id, event, event_at, channel): enqueuing the same event again
-- (a retried step) adds nothing. event_at is the time of the job event being
-- announced, so a job that fails twice (retried in between) gets two messages.
-- status: pending (due at next_attempt_at), sending (claimed by a sender until
-- lease_until; an expired lease means the sender died and the row is due
-- again), sent, undeliverable (attempts spent or the target refused; see last_error).
CREATE TABLE notifications (
    id              TEXT PRIMARY KEY NOT NULL,   -- a UUIDv7, also the webhook event id
    job_id          TEXT NOT NULL REFERENCES jobs (id) ON DELETE CASCADE,
    event           TEXT NOT NULL,               -- queued, staged, in_inbox, failed, waiting, needs_reconnect
    event_at        TEXT NOT NULL,
    channel         TEXT NOT NULL,               -- telegram, webhook
    target          TEXT NOT NULL,               -- chat id or URL; never shown by the API
    payload         TEXT NOT NULL,               -- the event as JSON (the webhook body)
    status          TEXT NOT NULL,
    attempts        INTEGER NOT NULL DEFAULT 0,
    next_attempt_at TEXT NOT NULL,
    lease_until     TEXT,
    last_error      TEXT,
    created_at      TEXT NOT NULL,
    sent_at         TEXT,
    UNIQUE (job_id, event, event_at, channel)
);

CREATE INDEX notifications_due ON notifications (status, next_attempt_at);
