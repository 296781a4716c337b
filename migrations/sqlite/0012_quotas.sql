-- Storage quotas per repository pattern (README, "Quotas"; storage/src/meta/quota.rs).
--
-- `quotas`: one row per pattern (`team/**`, `team/*`, `team/app`), with its limit and its usage in bytes. Every
-- write that changes what a covered repository references updates the row in its own transaction, so the row's
-- lock serialises the quota's writers and the usage is exact.
-- `quota_members`: which content a quota counts, once each however many of its repositories reference it: `refs`
-- is how many blob links (`repository_blobs`) and manifests (`manifests`) of covered repositories name the digest,
-- `size` its bytes. A member goes when its last reference does.
-- `quota_state`: one row whose `generation` changes whenever a quota is added or removed. Every write that may
-- count reads it in its transaction (servers cache the compiled patterns by generation), and adding or removing a
-- quota bumps it in a transaction that waits for those writers (see `quota.rs`), so no write counts against a
-- stale set of quotas.

CREATE TABLE quotas (
    pattern      TEXT PRIMARY KEY NOT NULL,
    limit_bytes  INTEGER NOT NULL,
    usage_bytes  INTEGER NOT NULL DEFAULT 0,
    created_at   INTEGER NOT NULL
) WITHOUT ROWID;

CREATE TABLE quota_members (
    quota   TEXT NOT NULL REFERENCES quotas(pattern) ON DELETE CASCADE,
    digest  TEXT NOT NULL,
    size    INTEGER NOT NULL,
    refs    INTEGER NOT NULL,
    PRIMARY KEY (quota, digest)
) WITHOUT ROWID;

CREATE TABLE quota_state (
    id          INTEGER PRIMARY KEY NOT NULL CHECK (id = 1),
    generation  INTEGER NOT NULL
);

INSERT INTO quota_state (id, generation) VALUES (1, 0);
