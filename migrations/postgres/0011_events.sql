-- PostgreSQL form of migrations/sqlite/0011_events.sql.
-- The webhook outbox: one row per event and endpoint, written in the transaction of the change it reports. Ids
-- come from the 'events.seq' counter, bumped in that transaction, so an endpoint's rows are in commit order and a
-- deliverer sends them in id order. A delivered row is deleted; a failing one keeps its attempts and last error.

CREATE TABLE event_deliveries (
    id            BIGINT PRIMARY KEY NOT NULL,
    endpoint      TEXT COLLATE "C" NOT NULL,
    action        TEXT COLLATE "C" NOT NULL,
    repository    TEXT COLLATE "C" NOT NULL,
    payload       TEXT NOT NULL,
    created_at    BIGINT NOT NULL,
    attempts      BIGINT NOT NULL DEFAULT 0,
    next_attempt  BIGINT NOT NULL DEFAULT 0,
    last_error    TEXT
);

CREATE INDEX event_deliveries_by_endpoint ON event_deliveries (endpoint, id);
