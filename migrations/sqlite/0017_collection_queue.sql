-- The collector's queue of candidates (ARCHITECTURE.md, "Content is verified before it is visible"): a run looks
-- only at these rows instead of scanning every link and blob.
--
-- A row (repository, digest) says that the link of `digest` in `repository` may have no manifest referencing it,
-- or, when that link is gone (or `repository` is ''), that the blob may have no link left. Written in the
-- transaction of each change that can make garbage: a new link (upload, mount, mirror), a manifest deleted (its
-- blob references), a blob unlinked. A manifest PUT removes the rows of the links it references. A run removes a
-- row only at the `seq` it saw: a change meanwhile bumps `seq`, so the row stays for the next run. The queue
-- decides only where a run looks; every removal still re-checks its row (0007_collection.sql).
CREATE TABLE gc_candidates (
    repository  TEXT NOT NULL,
    digest      TEXT NOT NULL,
    seq         INTEGER NOT NULL DEFAULT 0,
    PRIMARY KEY (repository, digest)
) WITHOUT ROWID;

-- Seeded with what a full scan finds, so that the first run after the upgrade misses nothing.
INSERT INTO gc_candidates (repository, digest)
    SELECT rb.repository, rb.digest FROM repository_blobs rb
    WHERE NOT EXISTS (SELECT 1 FROM manifest_references mr
                      WHERE mr.repository = rb.repository AND mr.digest = rb.digest);
INSERT INTO gc_candidates (repository, digest)
    SELECT '', b.digest FROM blobs b
    WHERE b.state = 'live' AND NOT EXISTS (SELECT 1 FROM repository_blobs rb WHERE rb.digest = b.digest);
