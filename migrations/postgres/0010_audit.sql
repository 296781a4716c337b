-- PostgreSQL form of migrations/sqlite/0010_audit.sql.
-- The audit log: one row per recorded change (push, delete, tag move, trust publish, key rotation, login, account
-- and grant change, collection and retention removal, admin action), written in the change's own transaction.
-- Ids come from the 'audit.seq' counter, bumped in that transaction, so they follow commit order.

CREATE TABLE audit (
    id          BIGINT PRIMARY KEY NOT NULL,
    at          BIGINT NOT NULL,
    action      TEXT COLLATE "C" NOT NULL,
    actor       TEXT COLLATE "C" NOT NULL,
    actor_kind  TEXT COLLATE "C" NOT NULL,
    address     TEXT COLLATE "C",
    repository  TEXT COLLATE "C",
    digest      TEXT COLLATE "C",
    tag         TEXT COLLATE "C",
    detail      TEXT
);

CREATE INDEX audit_by_time ON audit (at);
CREATE INDEX audit_by_repository ON audit (repository, id);
CREATE INDEX audit_by_actor ON audit (actor, id);
