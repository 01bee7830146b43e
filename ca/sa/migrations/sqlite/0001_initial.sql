-- Cairn storage schema, SQLite dialect. Keep in step with ../postgres/0001_initial.sql.
-- Times are unix microseconds (INTEGER); JSON columns are TEXT; booleans are 0/1.

CREATE TABLE eab_keys (
    key_id TEXT PRIMARY KEY NOT NULL,
    hmac_key BLOB NOT NULL,
    created_at INTEGER NOT NULL,
    bound_account TEXT UNIQUE REFERENCES accounts (id)
) STRICT;

CREATE TABLE accounts (
    id TEXT PRIMARY KEY NOT NULL,
    jwk TEXT NOT NULL,
    key_thumbprint TEXT NOT NULL UNIQUE,
    contact TEXT NOT NULL,
    status TEXT NOT NULL CHECK (status IN ('valid', 'deactivated', 'revoked')),
    created_at INTEGER NOT NULL,
    eab_key_id TEXT UNIQUE REFERENCES eab_keys (key_id),
    initial_ip TEXT
) STRICT;

CREATE INDEX accounts_by_ip ON accounts (initial_ip, created_at);

CREATE TABLE authzs (
    id TEXT PRIMARY KEY NOT NULL,
    account_id TEXT NOT NULL REFERENCES accounts (id),
    identifier_type TEXT NOT NULL,
    identifier_value TEXT NOT NULL,
    wildcard INTEGER NOT NULL CHECK (wildcard IN (0, 1)),
    status TEXT NOT NULL
        CHECK (status IN ('pending', 'valid', 'invalid', 'deactivated', 'expired', 'revoked')),
    expires INTEGER NOT NULL,
    created_at INTEGER NOT NULL
) STRICT;

CREATE INDEX authzs_reuse
    ON authzs (account_id, identifier_type, identifier_value, wildcard, status, expires);

CREATE TABLE challenges (
    id TEXT PRIMARY KEY NOT NULL,
    authz_id TEXT NOT NULL REFERENCES authzs (id) ON DELETE CASCADE,
    type TEXT NOT NULL,
    token TEXT NOT NULL,
    status TEXT NOT NULL CHECK (status IN ('pending', 'processing', 'valid', 'invalid')),
    validated INTEGER,
    error TEXT,
    validation_record TEXT NOT NULL,
    position INTEGER NOT NULL,
    UNIQUE (authz_id, position)
) STRICT;

CREATE TABLE orders (
    id TEXT PRIMARY KEY NOT NULL,
    account_id TEXT NOT NULL REFERENCES accounts (id),
    status TEXT NOT NULL
        CHECK (status IN ('pending', 'ready', 'processing', 'valid', 'invalid')),
    identifiers TEXT NOT NULL,
    identifiers_key TEXT NOT NULL,
    profile TEXT,
    expires INTEGER NOT NULL,
    not_before INTEGER,
    not_after INTEGER,
    error TEXT,
    certificate_serial TEXT UNIQUE,
    replaces TEXT,
    csr BLOB,
    created_at INTEGER NOT NULL
) STRICT;

CREATE INDEX orders_by_account ON orders (account_id, created_at DESC, id DESC);
CREATE INDEX orders_reuse ON orders (account_id, identifiers_key, status, expires);
CREATE INDEX orders_processing ON orders (created_at) WHERE status = 'processing';

CREATE TABLE order_authzs (
    order_id TEXT NOT NULL REFERENCES orders (id) ON DELETE CASCADE,
    authz_id TEXT NOT NULL REFERENCES authzs (id),
    position INTEGER NOT NULL,
    PRIMARY KEY (order_id, position)
) STRICT;

CREATE INDEX order_authzs_by_authz ON order_authzs (authz_id);

CREATE TABLE serials (
    serial TEXT PRIMARY KEY NOT NULL,
    account_id TEXT NOT NULL REFERENCES accounts (id),
    order_id TEXT NOT NULL REFERENCES orders (id),
    reserved_at INTEGER NOT NULL
) STRICT;

CREATE INDEX serials_by_order ON serials (order_id);

CREATE TABLE certificates (
    serial TEXT PRIMARY KEY NOT NULL,
    account_id TEXT NOT NULL REFERENCES accounts (id),
    order_id TEXT NOT NULL REFERENCES orders (id),
    der BLOB NOT NULL,
    issuer_id TEXT NOT NULL,
    identifiers TEXT NOT NULL,
    not_before INTEGER NOT NULL,
    not_after INTEGER NOT NULL,
    spki_sha256 TEXT NOT NULL,
    revoked_at INTEGER,
    revocation_reason INTEGER,
    CHECK ((revoked_at IS NULL) = (revocation_reason IS NULL))
) STRICT;

CREATE INDEX certificates_by_order ON certificates (order_id);
CREATE INDEX certificates_by_spki ON certificates (spki_sha256);

-- One row per DNS name in a certificate, labels reversed ("www.example.com" is stored as
-- "com.example.www") so that "example.com and everything under it" is one index range.
CREATE TABLE certificate_names (
    serial TEXT NOT NULL REFERENCES certificates (serial) ON DELETE CASCADE,
    reversed_name TEXT NOT NULL,
    not_before INTEGER NOT NULL,
    PRIMARY KEY (serial, reversed_name)
) STRICT;

CREATE INDEX certificate_names_by_name ON certificate_names (reversed_name, not_before);
