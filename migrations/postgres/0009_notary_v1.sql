-- PostgreSQL form of migrations/sqlite/0009_notary_v1.sql: the same tables, BIGINT and BYTEA, byte-order text.

CREATE TABLE notary_collections (
    gun         TEXT COLLATE "C" PRIMARY KEY NOT NULL,
    generation  BIGINT NOT NULL
);

CREATE TABLE notary_metadata (
    gun         TEXT COLLATE "C" NOT NULL,
    generation  BIGINT NOT NULL,
    role        TEXT COLLATE "C" NOT NULL,
    version     BIGINT NOT NULL,
    sha256      TEXT COLLATE "C" NOT NULL,
    content     BYTEA NOT NULL,
    created_at  BIGINT NOT NULL,
    PRIMARY KEY (gun, generation, role, version)
);

CREATE INDEX notary_metadata_by_hash ON notary_metadata (gun, generation, role, sha256);

CREATE TABLE notary_keys (
    gun             TEXT COLLATE "C" NOT NULL,
    role            TEXT COLLATE "C" NOT NULL CHECK (role IN ('timestamp', 'snapshot')),
    key_id          TEXT COLLATE "C" NOT NULL,
    public_key      TEXT COLLATE "C" NOT NULL,
    sealed_private  BYTEA NOT NULL,
    created_at      BIGINT NOT NULL,
    PRIMARY KEY (gun, key_id)
);

CREATE TABLE notary_changes (
    id          BIGINT PRIMARY KEY NOT NULL,
    gun         TEXT COLLATE "C" NOT NULL,
    version     BIGINT NOT NULL,
    sha256      TEXT COLLATE "C" NOT NULL,
    category    TEXT COLLATE "C" NOT NULL CHECK (category IN ('update', 'deletion')),
    created_at  BIGINT NOT NULL
);

CREATE INDEX notary_changes_by_gun ON notary_changes (gun, id);
