-- The audit log: one row per recorded change (push, delete, tag move, trust publish, key rotation, login, account
-- and grant change, collection and retention removal, admin action), written in the change's own transaction.
-- Ids come from the table's own sequence (no row every writer locks): they order rows, but on PostgreSQL two
-- concurrent changes may commit in the other order. Time is `at`.

CREATE TABLE audit (
    id          INTEGER PRIMARY KEY AUTOINCREMENT,
    at          INTEGER NOT NULL,
    action      TEXT NOT NULL,
    actor       TEXT NOT NULL,
    actor_kind  TEXT NOT NULL,
    address     TEXT,
    repository  TEXT,
    digest      TEXT,
    tag         TEXT,
    detail      TEXT
);

CREATE INDEX audit_by_time ON audit (at);
CREATE INDEX audit_by_repository ON audit (repository, id);
CREATE INDEX audit_by_actor ON audit (actor, id);
