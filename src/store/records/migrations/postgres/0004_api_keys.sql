-- API keys (the PostgreSQL twin of src/store/records/migrations/sqlite/0004_api_keys.sql):
-- only each key's SHA-256 is kept, never the key itself (it is shown once, when
-- `clipforge keys create` makes it). A revoked key keeps its row, so listings
-- still show who it was and how much it was used.
CREATE TABLE api_keys (
    id           TEXT PRIMARY KEY NOT NULL,  -- the <id> in cfk_<id>_<secret>
    key_hash     TEXT NOT NULL UNIQUE,       -- lowercase hex SHA-256 of the whole key
    name         TEXT NOT NULL,
    scopes       TEXT NOT NULL,              -- comma-separated: jobs:read, jobs:write, accounts, admin
    created_at   TEXT NOT NULL,
    last_used_at TEXT,
    revoked_at   TEXT,
    requests     BIGINT NOT NULL DEFAULT 0   -- requests served with the key
);
