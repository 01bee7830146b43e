-- The management console (dap/console, issue 18): people, the accounts they share, sessions,
-- per-account API tokens, paired helpers, collector credentials (public keys only) and the
-- tasks each account made. Kept in step with ../sqlite.
-- Times are seconds since the epoch. Secrets are stored hashed (passwords: argon2id PHC
-- strings; session and API tokens: SHA-256) or sealed with the datastore key (helper tokens).
CREATE TABLE console_users (
    user_id TEXT PRIMARY KEY,
    email TEXT NOT NULL UNIQUE,
    password_hash TEXT NOT NULL,
    created_at BIGINT NOT NULL
);
CREATE TABLE console_accounts (
    account_id TEXT PRIMARY KEY,
    name TEXT NOT NULL,
    created_at BIGINT NOT NULL
);
CREATE TABLE console_memberships (
    account_id TEXT NOT NULL REFERENCES console_accounts (account_id),
    user_id TEXT NOT NULL REFERENCES console_users (user_id),
    created_at BIGINT NOT NULL,
    PRIMARY KEY (account_id, user_id)
);
CREATE INDEX console_memberships_by_user ON console_memberships (user_id);
CREATE TABLE console_sessions (
    session_hash BYTEA PRIMARY KEY,
    user_id TEXT NOT NULL REFERENCES console_users (user_id),
    csrf_token TEXT NOT NULL,
    expires_at BIGINT NOT NULL
);
CREATE INDEX console_sessions_by_expiry ON console_sessions (expires_at);
CREATE TABLE console_api_tokens (
    token_id TEXT PRIMARY KEY,
    account_id TEXT NOT NULL REFERENCES console_accounts (account_id),
    prefix TEXT NOT NULL UNIQUE,
    token_hash BYTEA NOT NULL,
    name TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    revoked_at BIGINT
);
CREATE INDEX console_api_tokens_by_account ON console_api_tokens (account_id);
CREATE TABLE console_helpers (
    helper_id TEXT PRIMARY KEY,
    account_id TEXT NOT NULL REFERENCES console_accounts (account_id),
    name TEXT NOT NULL,
    dap_url TEXT NOT NULL,
    control_token BYTEA NOT NULL,
    created_at BIGINT NOT NULL
);
CREATE INDEX console_helpers_by_account ON console_helpers (account_id);
CREATE TABLE console_collector_credentials (
    credential_id TEXT PRIMARY KEY,
    account_id TEXT NOT NULL REFERENCES console_accounts (account_id),
    name TEXT NOT NULL,
    hpke_config TEXT NOT NULL,
    generated_by TEXT NOT NULL,
    created_at BIGINT NOT NULL
);
CREATE INDEX console_collector_credentials_by_account ON console_collector_credentials (account_id);
CREATE TABLE console_tasks (
    task_id TEXT PRIMARY KEY,
    account_id TEXT NOT NULL REFERENCES console_accounts (account_id),
    name TEXT NOT NULL,
    metric TEXT NOT NULL,
    parameters TEXT NOT NULL,
    helper TEXT NOT NULL,
    credential_id TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    deleted_at BIGINT
);
CREATE INDEX console_tasks_by_account ON console_tasks (account_id);
