-- Cairn storage schema, PostgreSQL dialect. Keep in step with ../sqlite/0001_initial.sql.
-- Times are unix microseconds (BIGINT); JSON columns are TEXT (stored and compared verbatim).

CREATE TABLE eab_keys (
    key_id TEXT PRIMARY KEY,
    hmac_key BYTEA NOT NULL,
    created_at BIGINT NOT NULL,
    bound_account TEXT UNIQUE
);

CREATE TABLE accounts (
    id TEXT PRIMARY KEY,
    jwk TEXT NOT NULL,
    key_thumbprint TEXT NOT NULL UNIQUE,
    contact TEXT NOT NULL,
    status TEXT NOT NULL CHECK (status IN ('valid', 'deactivated', 'revoked')),
    created_at BIGINT NOT NULL,
    eab_key_id TEXT UNIQUE REFERENCES eab_keys (key_id),
    initial_ip TEXT
);

ALTER TABLE eab_keys
    ADD CONSTRAINT eab_keys_bound_account_fkey FOREIGN KEY (bound_account) REFERENCES accounts (id);

CREATE INDEX accounts_by_ip ON accounts (initial_ip, created_at);

CREATE TABLE authzs (
    id TEXT PRIMARY KEY,
    account_id TEXT NOT NULL REFERENCES accounts (id),
    identifier_type TEXT NOT NULL,
    identifier_value TEXT NOT NULL,
    wildcard BOOLEAN NOT NULL,
    status TEXT NOT NULL
        CHECK (status IN ('pending', 'valid', 'invalid', 'deactivated', 'expired', 'revoked')),
    expires BIGINT NOT NULL,
    created_at BIGINT NOT NULL
);

CREATE INDEX authzs_reuse
    ON authzs (account_id, identifier_type, identifier_value, wildcard, status, expires);

CREATE TABLE challenges (
    id TEXT PRIMARY KEY,
    authz_id TEXT NOT NULL REFERENCES authzs (id) ON DELETE CASCADE,
    type TEXT NOT NULL,
    token TEXT NOT NULL,
    status TEXT NOT NULL CHECK (status IN ('pending', 'processing', 'valid', 'invalid')),
    validated BIGINT,
    error TEXT,
    validation_record TEXT NOT NULL,
    position BIGINT NOT NULL,
    UNIQUE (authz_id, position)
);

CREATE TABLE orders (
    id TEXT PRIMARY KEY,
    account_id TEXT NOT NULL REFERENCES accounts (id),
    status TEXT NOT NULL
        CHECK (status IN ('pending', 'ready', 'processing', 'valid', 'invalid')),
    identifiers TEXT NOT NULL,
    identifiers_key TEXT NOT NULL,
    profile TEXT,
    expires BIGINT NOT NULL,
    not_before BIGINT,
    not_after BIGINT,
    error TEXT,
    certificate_serial TEXT UNIQUE,
    replaces TEXT,
    csr BYTEA,
    created_at BIGINT NOT NULL
);

CREATE INDEX orders_by_account ON orders (account_id, created_at DESC, id DESC);
CREATE INDEX orders_reuse ON orders (account_id, identifiers_key, status, expires);
CREATE INDEX orders_processing ON orders (created_at) WHERE status = 'processing';

CREATE TABLE order_authzs (
    order_id TEXT NOT NULL REFERENCES orders (id) ON DELETE CASCADE,
    authz_id TEXT NOT NULL REFERENCES authzs (id),
    position BIGINT NOT NULL,
    PRIMARY KEY (order_id, position)
);

CREATE INDEX order_authzs_by_authz ON order_authzs (authz_id);

CREATE TABLE serials (
    serial TEXT PRIMARY KEY,
    account_id TEXT NOT NULL REFERENCES accounts (id),
    order_id TEXT NOT NULL REFERENCES orders (id),
    reserved_at BIGINT NOT NULL
);

CREATE INDEX serials_by_order ON serials (order_id);

CREATE TABLE certificates (
    serial TEXT PRIMARY KEY,
    account_id TEXT NOT NULL REFERENCES accounts (id),
    order_id TEXT NOT NULL REFERENCES orders (id),
    der BYTEA NOT NULL,
    issuer_id TEXT NOT NULL,
    identifiers TEXT NOT NULL,
    not_before BIGINT NOT NULL,
    not_after BIGINT NOT NULL,
    spki_sha256 TEXT NOT NULL,
    revoked_at BIGINT,
    revocation_reason BIGINT,
    CHECK ((revoked_at IS NULL) = (revocation_reason IS NULL))
);

CREATE INDEX certificates_by_order ON certificates (order_id);
CREATE INDEX certificates_by_spki ON certificates (spki_sha256);

-- One row per DNS name in a certificate, labels reversed ("www.example.com" is stored as
-- "com.example.www") so that "example.com and everything under it" is one index range.
-- Byte-wise collation so that the range ['com.example.', 'com.example/') means what it says.
CREATE TABLE certificate_names (
    serial TEXT NOT NULL REFERENCES certificates (serial) ON DELETE CASCADE,
    reversed_name TEXT COLLATE "C" NOT NULL,
    not_before BIGINT NOT NULL,
    PRIMARY KEY (serial, reversed_name)
);

CREATE INDEX certificate_names_by_name ON certificate_names (reversed_name, not_before);
