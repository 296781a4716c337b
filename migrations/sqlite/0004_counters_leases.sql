-- Counters that writers bump in their transactions (auth.generation), and leases that make one replica at a time
-- do a periodic job (trust renewal).

CREATE TABLE counters (
    name   TEXT PRIMARY KEY NOT NULL,
    value  INTEGER NOT NULL
) WITHOUT ROWID;

CREATE TABLE leases (
    name        TEXT PRIMARY KEY NOT NULL,
    holder      TEXT NOT NULL,
    expires_at  INTEGER NOT NULL
) WITHOUT ROWID;
