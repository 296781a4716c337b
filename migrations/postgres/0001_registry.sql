-- PostgreSQL form of migrations/sqlite/0001_registry.sql: the same tables, BIGINT and BYTEA, byte-order text.
-- Registry metadata: which repository sees which blob, manifests and tags.
-- Upload sessions live in the server process (see storage/src/upload.rs), not here.
-- Bytes live in the object store; manifests are small and are kept here whole.

CREATE TABLE repositories (
    name        TEXT COLLATE "C" PRIMARY KEY NOT NULL,
    created_at  BIGINT NOT NULL
);

CREATE TABLE blobs (
    digest      TEXT COLLATE "C" PRIMARY KEY NOT NULL,
    size        BIGINT NOT NULL,
    created_at  BIGINT NOT NULL
);

-- A blob is visible in a repository only through a row here.
CREATE TABLE repository_blobs (
    repository  TEXT COLLATE "C" NOT NULL REFERENCES repositories(name),
    digest      TEXT COLLATE "C" NOT NULL REFERENCES blobs(digest),
    PRIMARY KEY (repository, digest)
);

CREATE TABLE manifests (
    repository     TEXT COLLATE "C" NOT NULL REFERENCES repositories(name),
    digest         TEXT COLLATE "C" NOT NULL,
    media_type     TEXT COLLATE "C" NOT NULL,
    artifact_type  TEXT COLLATE "C",
    subject        TEXT COLLATE "C",
    content        BYTEA NOT NULL,
    created_at     BIGINT NOT NULL,
    PRIMARY KEY (repository, digest)
);

CREATE INDEX manifests_by_subject ON manifests (repository, subject) WHERE subject IS NOT NULL;

-- What each manifest references: its config and layers (kind 'blob') and child manifests (kind 'manifest').
CREATE TABLE manifest_references (
    repository  TEXT COLLATE "C" NOT NULL,
    manifest    TEXT COLLATE "C" NOT NULL,
    digest      TEXT COLLATE "C" NOT NULL,
    kind        TEXT COLLATE "C" NOT NULL CHECK (kind IN ('blob', 'manifest')),
    PRIMARY KEY (repository, manifest, digest),
    FOREIGN KEY (repository, manifest) REFERENCES manifests(repository, digest) ON DELETE CASCADE
);

CREATE TABLE tags (
    repository  TEXT COLLATE "C" NOT NULL,
    tag         TEXT COLLATE "C" NOT NULL,
    digest      TEXT COLLATE "C" NOT NULL,
    updated_at  BIGINT NOT NULL,
    PRIMARY KEY (repository, tag),
    FOREIGN KEY (repository, digest) REFERENCES manifests(repository, digest) ON DELETE CASCADE
);
