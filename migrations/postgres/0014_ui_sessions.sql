-- PostgreSQL form of migrations/sqlite/0014_ui_sessions.sql: the same table, BIGINT, byte-order text.
-- Web interface sessions: one row per signed-in browser. The cookie holds a random 32-byte secret; only its SHA-256
-- is stored, so a read of this table signs no one in. Each session has its own CSRF token (random, sent in forms).
-- Signing out, or the account's removal, ends it; rows past `expires_at` are refused and swept. `credential` is the
-- SHA-256 of the account's password hash at sign-in: a new password (or a new account of the same name) ends it too.

CREATE TABLE ui_sessions (
    id_hash     TEXT COLLATE "C" PRIMARY KEY NOT NULL,
    account     TEXT NOT NULL,
    csrf        TEXT NOT NULL,
    credential  TEXT NOT NULL,
    created_at  BIGINT NOT NULL,
    expires_at  BIGINT NOT NULL
);

CREATE INDEX ui_sessions_by_expiry ON ui_sessions (expires_at);
