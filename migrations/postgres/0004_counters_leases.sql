-- PostgreSQL form of migrations/sqlite/0004_counters_leases.sql: the same tables, BIGINT and BYTEA, byte-order text.
-- Counters that writers bump in their transactions (auth.generation), and leases that make one replica at a time
-- do a periodic job (trust renewal).

CREATE TABLE counters (
    name   TEXT COLLATE "C" PRIMARY KEY NOT NULL,
    value  BIGINT NOT NULL
);

CREATE TABLE leases (
    name        TEXT COLLATE "C" PRIMARY KEY NOT NULL,
    holder      TEXT COLLATE "C" NOT NULL,
    expires_at  BIGINT NOT NULL
);
