-- Access control: accounts (users and robots) and grants on repository-name patterns.
-- Secrets are stored only as Argon2id PHC strings. Every change bumps the `auth.generation` setting in the same
-- transaction, so that running servers reload their in-memory policy within a second.

CREATE TABLE accounts (
    name         TEXT PRIMARY KEY NOT NULL,
    kind         TEXT NOT NULL CHECK (kind IN ('user', 'robot')),
    secret_hash  TEXT NOT NULL,
    -- Unix seconds after which the account is refused; NULL: never.
    expires_at   INTEGER,
    created_at   INTEGER NOT NULL
) WITHOUT ROWID;

-- `account` is an account name, or `anonymous` for callers without credentials (no account row).
CREATE TABLE grants (
    account     TEXT NOT NULL,
    pattern     TEXT NOT NULL,
    -- Comma-separated: pull, push, delete, sign, admin.
    actions     TEXT NOT NULL,
    created_at  INTEGER NOT NULL,
    PRIMARY KEY (account, pattern)
) WITHOUT ROWID;
