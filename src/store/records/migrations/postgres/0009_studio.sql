-- The studio's sign-ins (the PostgreSQL twin of ../sqlite/0009_studio.sql): a session is made from an API key pasted once into
-- the sign-in page and lives behind an HttpOnly cookie. Only the SHA-256 of the
-- cookie's token is kept. A session dies with its key (revoked or deleted),
-- at its expiry, or when signed out.
CREATE TABLE studio_sessions (
    token_hash TEXT PRIMARY KEY NOT NULL,   -- lowercase hex SHA-256 of the cookie's token
    key_id     TEXT NOT NULL REFERENCES api_keys (id) ON DELETE CASCADE,
    created_at TEXT NOT NULL,
    expires_at TEXT NOT NULL,
    revoked_at TEXT
);

CREATE INDEX studio_sessions_by_key ON studio_sessions (key_id);

-- Secrets every API process must share, made once by whichever process
-- needs one first (the key that signs reviewer links).
CREATE TABLE shared_secrets (
    name       TEXT PRIMARY KEY NOT NULL,
    value      TEXT NOT NULL,
    created_at TEXT NOT NULL
);
