-- Mirror mode: what a mirror last learned from its upstreams (see migrations/sqlite/0008_mirror.sql).
CREATE TABLE mirror_cache (
    repository  TEXT COLLATE "C" NOT NULL,
    key         TEXT COLLATE "C" NOT NULL,
    content     BYTEA NOT NULL,
    fetched_at  BIGINT NOT NULL,
    PRIMARY KEY (repository, key)
);
