-- Rate limit buckets shared by replicas (`[rate_limit] shared = true`): one row per bucket, its theoretical arrival
-- time in nanoseconds since the Unix epoch (the moment it is full again). A row whose time has passed is a full
-- bucket, and any replica may delete it.

CREATE TABLE rate_buckets (
    key  TEXT PRIMARY KEY NOT NULL,
    tat  INTEGER NOT NULL
) WITHOUT ROWID;
