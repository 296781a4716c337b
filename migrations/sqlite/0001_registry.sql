-- Registry metadata: which repository sees which blob, manifests and tags.
-- Upload sessions live in the server process (see storage/src/upload.rs), not here.
-- Bytes live in the object store; manifests are small and are kept here whole.

CREATE TABLE repositories (
    name        TEXT PRIMARY KEY NOT NULL,
    created_at  INTEGER NOT NULL
) WITHOUT ROWID;

CREATE TABLE blobs (
    digest      TEXT PRIMARY KEY NOT NULL,
    size        INTEGER NOT NULL,
    created_at  INTEGER NOT NULL
) WITHOUT ROWID;

-- A blob is visible in a repository only through a row here.
CREATE TABLE repository_blobs (
    repository  TEXT NOT NULL REFERENCES repositories(name),
    digest      TEXT NOT NULL REFERENCES blobs(digest),
    PRIMARY KEY (repository, digest)
) WITHOUT ROWID;

CREATE TABLE manifests (
    repository     TEXT NOT NULL REFERENCES repositories(name),
    digest         TEXT NOT NULL,
    media_type     TEXT NOT NULL,
    artifact_type  TEXT,
    subject        TEXT,
    content        BLOB NOT NULL,
    created_at     INTEGER NOT NULL,
    PRIMARY KEY (repository, digest)
) WITHOUT ROWID;

CREATE INDEX manifests_by_subject ON manifests (repository, subject) WHERE subject IS NOT NULL;

-- What each manifest references: its config and layers (kind 'blob') and child manifests (kind 'manifest').
CREATE TABLE manifest_references (
    repository  TEXT NOT NULL,
    manifest    TEXT NOT NULL,
    digest      TEXT NOT NULL,
    kind        TEXT NOT NULL CHECK (kind IN ('blob', 'manifest')),
    PRIMARY KEY (repository, manifest, digest),
    FOREIGN KEY (repository, manifest) REFERENCES manifests(repository, digest) ON DELETE CASCADE
) WITHOUT ROWID;

CREATE TABLE tags (
    repository  TEXT NOT NULL,
    tag         TEXT NOT NULL,
    digest      TEXT NOT NULL,
    updated_at  INTEGER NOT NULL,
    PRIMARY KEY (repository, tag),
    FOREIGN KEY (repository, digest) REFERENCES manifests(repository, digest) ON DELETE CASCADE
) WITHOUT ROWID;
