-- Mirror mode: what a mirror last learned from its upstreams. `key` is `tag:<tag>` (content: the digest the
-- upstream's tag named) or `tuf:<path>` (content: a trust metadata file exactly as the upstream served it).
-- `fetched_at` is when the upstream last confirmed it: a tag or an unversioned trust file is asked again once it is
-- older than the mirror's freshness time.
CREATE TABLE mirror_cache (
    repository  TEXT NOT NULL,
    key         TEXT NOT NULL,
    content     BLOB NOT NULL,
    fetched_at  INTEGER NOT NULL,
    PRIMARY KEY (repository, key)
) WITHOUT ROWID;
