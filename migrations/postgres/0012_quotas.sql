-- PostgreSQL form of migrations/sqlite/0012_quotas.sql.
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
    pattern      TEXT COLLATE "C" PRIMARY KEY NOT NULL,
    limit_bytes  BIGINT NOT NULL,
    usage_bytes  BIGINT NOT NULL DEFAULT 0,
    created_at   BIGINT NOT NULL
);

CREATE TABLE quota_members (
    quota   TEXT COLLATE "C" NOT NULL REFERENCES quotas(pattern) ON DELETE CASCADE,
    digest  TEXT COLLATE "C" NOT NULL,
    size    BIGINT NOT NULL,
    refs    BIGINT NOT NULL,
    PRIMARY KEY (quota, digest)
);

CREATE TABLE quota_state (
    id          BIGINT PRIMARY KEY NOT NULL CHECK (id = 1),
    generation  BIGINT NOT NULL
);

INSERT INTO quota_state (id, generation) VALUES (1, 0);
