-- PostgreSQL form of migrations/sqlite/0003_accounts.sql: the same tables, BIGINT and BYTEA, byte-order text.
-- Access control: accounts (users and robots) and grants on repository-name patterns.
-- Secrets are stored only as Argon2id PHC strings. Every change bumps the `auth.generation` setting in the same
-- transaction, so that running servers reload their in-memory policy within a second.

CREATE TABLE accounts (
    name         TEXT COLLATE "C" PRIMARY KEY NOT NULL,
    kind         TEXT COLLATE "C" NOT NULL CHECK (kind IN ('user', 'robot')),
    secret_hash  TEXT COLLATE "C" NOT NULL,
    -- Unix seconds after which the account is refused; NULL: never.
    expires_at   BIGINT,
    created_at   BIGINT NOT NULL
);

-- `account` is an account name, or `anonymous` for callers without credentials (no account row).
CREATE TABLE grants (
    account     TEXT COLLATE "C" NOT NULL,
    pattern     TEXT COLLATE "C" NOT NULL,
    -- Comma-separated: pull, push, delete, sign, admin.
    actions     TEXT COLLATE "C" NOT NULL,
    created_at  BIGINT NOT NULL,
    PRIMARY KEY (account, pattern)
);
