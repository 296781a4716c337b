-- Upload sessions as shared state: any replica continues a session another started, and a session outlives the
-- process that started it. The bytes live in the object store (a multipart upload plus a tail object shorter than
-- one part) or, on a local store, in one file per session; this row says how far they go and what they hash to.

CREATE TABLE upload_sessions (
    id           TEXT PRIMARY KEY NOT NULL,
    repository   TEXT NOT NULL,
    started_at   INTEGER NOT NULL,
    touched_at   INTEGER NOT NULL,
    -- Bytes received; every one of them is in storage and in hash_state.
    size         INTEGER NOT NULL,
    -- The serialised SHA-256 state after `size` bytes.
    hash_state   BLOB NOT NULL,
    -- Multipart uploads only: the part size, the store's upload id, and the parts' ids (a JSON array), each
    -- exactly part_size bytes; the remaining bytes are in the object `tail_key`.
    part_size    INTEGER NOT NULL,
    multipart_id TEXT,
    parts        TEXT NOT NULL DEFAULT '',
    tail_key     TEXT,
    -- The writer lease: one request at a time writes into a session, on whichever replica.
    holder       TEXT,
    held_until   INTEGER NOT NULL DEFAULT 0
) WITHOUT ROWID;

CREATE INDEX upload_sessions_touched ON upload_sessions (touched_at);
