-- PostgreSQL form of migrations/sqlite/0017_collection_queue.sql.
CREATE TABLE gc_candidates (
    repository  TEXT COLLATE "C" NOT NULL,
    digest      TEXT COLLATE "C" NOT NULL,
    seq         BIGINT NOT NULL DEFAULT 0,
    PRIMARY KEY (repository, digest)
);

INSERT INTO gc_candidates (repository, digest)
    SELECT rb.repository, rb.digest FROM repository_blobs rb
    WHERE NOT EXISTS (SELECT 1 FROM manifest_references mr
                      WHERE mr.repository = rb.repository AND mr.digest = rb.digest);
INSERT INTO gc_candidates (repository, digest)
    SELECT '', b.digest FROM blobs b
    WHERE b.state = 'live' AND NOT EXISTS (SELECT 1 FROM repository_blobs rb WHERE rb.digest = b.digest);
