-- PostgreSQL form of migrations/sqlite/0005_upload_sessions.sql: the same table, BIGINT and BYTEA, byte-order text.

CREATE TABLE upload_sessions (
    id           TEXT COLLATE "C" PRIMARY KEY NOT NULL,
    repository   TEXT COLLATE "C" NOT NULL,
    started_at   BIGINT NOT NULL,
    touched_at   BIGINT NOT NULL,
    size         BIGINT NOT NULL,
    hash_state   BYTEA NOT NULL,
    part_size    BIGINT NOT NULL,
    multipart_id TEXT COLLATE "C",
    parts        TEXT COLLATE "C" NOT NULL DEFAULT '',
    tail_key     TEXT COLLATE "C",
    holder       TEXT COLLATE "C",
    held_until   BIGINT NOT NULL DEFAULT 0
);

CREATE INDEX upload_sessions_touched ON upload_sessions (touched_at);
