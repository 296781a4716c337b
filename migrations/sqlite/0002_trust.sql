-- Trust data: every version of every TUF role of every repository, kept for audit, and the service's own keys.
-- A repository's trust data lives in a generation; deleting it starts a new generation, so old rows stay as
-- history but are never served.

CREATE TABLE trust_repositories (
    repository  TEXT PRIMARY KEY NOT NULL,
    generation  INTEGER NOT NULL
) WITHOUT ROWID;

CREATE TABLE trust_metadata (
    repository  TEXT NOT NULL,
    generation  INTEGER NOT NULL,
    role        TEXT NOT NULL,
    version     INTEGER NOT NULL,
    content     BLOB NOT NULL,
    expires     INTEGER NOT NULL,
    created_at  INTEGER NOT NULL,
    PRIMARY KEY (repository, generation, role, version)
) WITHOUT ROWID;

-- Private halves are sealed (AEAD) under the key-encryption key; never stored in the clear.
CREATE TABLE trust_keys (
    repository      TEXT NOT NULL,
    generation      INTEGER NOT NULL,
    role            TEXT NOT NULL CHECK (role IN ('timestamp', 'snapshot')),
    key_id          TEXT NOT NULL,
    public_key      TEXT NOT NULL,
    sealed_private  BLOB NOT NULL,
    created_at      INTEGER NOT NULL,
    PRIMARY KEY (repository, generation, key_id)
) WITHOUT ROWID;

CREATE TABLE settings (
    name   TEXT PRIMARY KEY NOT NULL,
    value  BLOB NOT NULL
) WITHOUT ROWID;
