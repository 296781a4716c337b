-- Notary v1 collections (`docker trust`, the `notary` CLI) beside the TUF 1.0 trust data of 0002: a collection is
-- named by its GUN (`host/repository`), keeps every version of every role in generations (deleting a collection
-- starts a new generation; old rows stay as history, never served), and has its own changefeed. The server-held
-- keys are sealed under the same key-encryption key as trust_keys' and survive a deletion, as notary-signer's do.

CREATE TABLE notary_collections (
    gun         TEXT PRIMARY KEY NOT NULL,
    generation  INTEGER NOT NULL
) WITHOUT ROWID;

CREATE TABLE notary_metadata (
    gun         TEXT NOT NULL,
    generation  INTEGER NOT NULL,
    role        TEXT NOT NULL,
    version     INTEGER NOT NULL,
    sha256      TEXT NOT NULL,
    content     BLOB NOT NULL,
    created_at  INTEGER NOT NULL,
    PRIMARY KEY (gun, generation, role, version)
) WITHOUT ROWID;

CREATE INDEX notary_metadata_by_hash ON notary_metadata (gun, generation, role, sha256);

CREATE TABLE notary_keys (
    gun             TEXT NOT NULL,
    role            TEXT NOT NULL CHECK (role IN ('timestamp', 'snapshot')),
    key_id          TEXT NOT NULL,
    public_key      TEXT NOT NULL,
    sealed_private  BLOB NOT NULL,
    created_at      INTEGER NOT NULL,
    PRIMARY KEY (gun, key_id)
) WITHOUT ROWID;

-- One row per new timestamp ('update') or deletion; ids come from the 'notary.changes' counter.
CREATE TABLE notary_changes (
    id          INTEGER PRIMARY KEY NOT NULL,
    gun         TEXT NOT NULL,
    version     INTEGER NOT NULL,
    sha256      TEXT NOT NULL,
    category    TEXT NOT NULL CHECK (category IN ('update', 'deletion')),
    created_at  INTEGER NOT NULL
);

CREATE INDEX notary_changes_by_gun ON notary_changes (gun, id);
