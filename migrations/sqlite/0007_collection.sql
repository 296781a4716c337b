-- Online garbage collection (ARCHITECTURE.md, "Collection while pushes run").
--
-- `version` columns are bumped by every write that makes a row needed (an upload or mount linking a blob, a
-- manifest PUT referencing a blob or a child manifest, a manifest PUT again). The collector removes a row only with
-- a statement that names the version it saw: a row that a push needed meanwhile has another version and stays.
-- `touched_at` is the last upload, mount, HEAD or reference of a blob in a repository: the grace period counts
-- from it. A blob whose bytes the collector is deleting is in state 'deleting' (a tombstone): nothing links it
-- until its row is gone.
ALTER TABLE blobs ADD COLUMN state TEXT NOT NULL DEFAULT 'live' CHECK (state IN ('live', 'deleting'));
ALTER TABLE blobs ADD COLUMN version INTEGER NOT NULL DEFAULT 0;
ALTER TABLE repository_blobs ADD COLUMN touched_at INTEGER NOT NULL DEFAULT 0;
ALTER TABLE repository_blobs ADD COLUMN version INTEGER NOT NULL DEFAULT 0;
ALTER TABLE manifests ADD COLUMN version INTEGER NOT NULL DEFAULT 0;
-- Rows from before this migration count as touched now: their grace period starts with the upgrade.
UPDATE repository_blobs SET touched_at = CAST(strftime('%s', 'now') AS INTEGER);

-- Which manifests reference a digest (is this blob or child manifest still needed?).
CREATE INDEX manifest_references_by_digest ON manifest_references (repository, digest);
-- Which repositories still see a blob (may its bytes go?).
CREATE INDEX repository_blobs_by_digest ON repository_blobs (digest);
-- Tombstones left by an interrupted collection.
CREATE INDEX blobs_deleting ON blobs (digest) WHERE state = 'deleting';
