-- PostgreSQL form of migrations/sqlite/0002_trust.sql: the same tables, BIGINT and BYTEA, byte-order text.
-- Trust data: every version of every TUF role of every repository, kept for audit, and the service's own keys.
-- A repository's trust data lives in a generation; deleting it starts a new generation, so old rows stay as
-- history but are never served.

CREATE TABLE trust_repositories (
    repository  TEXT COLLATE "C" PRIMARY KEY NOT NULL,
    generation  BIGINT NOT NULL
);

CREATE TABLE trust_metadata (
    repository  TEXT COLLATE "C" NOT NULL,
    generation  BIGINT NOT NULL,
    role        TEXT COLLATE "C" NOT NULL,
    version     BIGINT NOT NULL,
    content     BYTEA NOT NULL,
    expires     BIGINT NOT NULL,
    created_at  BIGINT NOT NULL,
    PRIMARY KEY (repository, generation, role, version)
);

-- Private halves are sealed (AEAD) under the key-encryption key; never stored in the clear.
CREATE TABLE trust_keys (
    repository      TEXT COLLATE "C" NOT NULL,
    generation      BIGINT NOT NULL,
    role            TEXT COLLATE "C" NOT NULL CHECK (role IN ('timestamp', 'snapshot')),
    key_id          TEXT COLLATE "C" NOT NULL,
    public_key      TEXT COLLATE "C" NOT NULL,
    sealed_private  BYTEA NOT NULL,
    created_at      BIGINT NOT NULL,
    PRIMARY KEY (repository, generation, key_id)
);

CREATE TABLE settings (
    name   TEXT COLLATE "C" PRIMARY KEY NOT NULL,
    value  BYTEA NOT NULL
);
