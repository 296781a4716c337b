-- The webhook outbox: one row per event and endpoint, written in the transaction of the change it reports. Ids
-- come from the 'events.seq' counter, bumped in that transaction, so an endpoint's rows are in commit order and a
-- deliverer sends them in id order. A delivered row is deleted; a failing one keeps its attempts and last error.

CREATE TABLE event_deliveries (
    id            INTEGER PRIMARY KEY NOT NULL,
    endpoint      TEXT NOT NULL,
    action        TEXT NOT NULL,
    repository    TEXT NOT NULL,
    payload       TEXT NOT NULL,
    created_at    INTEGER NOT NULL,
    attempts      INTEGER NOT NULL DEFAULT 0,
    next_attempt  INTEGER NOT NULL DEFAULT 0,
    last_error    TEXT
);

CREATE INDEX event_deliveries_by_endpoint ON event_deliveries (endpoint, id);
