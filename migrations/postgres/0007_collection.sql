-- PostgreSQL form of migrations/sqlite/0007_collection.sql.
ALTER TABLE blobs ADD COLUMN state TEXT COLLATE "C" NOT NULL DEFAULT 'live' CHECK (state IN ('live', 'deleting'));
ALTER TABLE blobs ADD COLUMN version BIGINT NOT NULL DEFAULT 0;
ALTER TABLE repository_blobs ADD COLUMN touched_at BIGINT NOT NULL DEFAULT 0;
ALTER TABLE repository_blobs ADD COLUMN version BIGINT NOT NULL DEFAULT 0;
ALTER TABLE manifests ADD COLUMN version BIGINT NOT NULL DEFAULT 0;
UPDATE repository_blobs SET touched_at = CAST(EXTRACT(EPOCH FROM now()) AS BIGINT);

CREATE INDEX manifest_references_by_digest ON manifest_references (repository, digest);
CREATE INDEX repository_blobs_by_digest ON repository_blobs (digest);
CREATE INDEX blobs_deleting ON blobs (digest) WHERE state = 'deleting';
