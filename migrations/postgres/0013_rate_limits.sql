-- PostgreSQL form of migrations/sqlite/0013_rate_limits.sql: the same table, BIGINT, byte-order text.
-- Rate limit buckets shared by replicas (`[rate_limit] shared = true`): one row per bucket, its theoretical arrival
-- time in nanoseconds since the Unix epoch (the moment it is full again). A row whose time has passed is a full
-- bucket, and any replica may delete it.

CREATE TABLE rate_buckets (
    key  TEXT COLLATE "C" PRIMARY KEY NOT NULL,
    tat  BIGINT NOT NULL
);
