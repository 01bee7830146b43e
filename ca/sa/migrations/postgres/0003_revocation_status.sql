-- Revocation status publishing: each certificate's CRL shard, the CRLs as last signed, the
-- blocked keys (keyCompromise), and an epoch that every revocation bumps, so that a CRL updater
-- in another process notices revocations made by `cairn admin revoke`.
-- Keep in step with ../sqlite/0003_revocation_status.sql.

-- Certificates stored before shards existed carry no CRL distribution point; they go on shard 0.
ALTER TABLE certificates ADD COLUMN crl_shard BIGINT NOT NULL DEFAULT 0;
CREATE INDEX certificates_revoked ON certificates (issuer_id, not_after)
    WHERE revoked_at IS NOT NULL;

CREATE TABLE crls (
    issuer_id TEXT NOT NULL,
    shard BIGINT NOT NULL,
    number BIGINT NOT NULL,
    this_update BIGINT NOT NULL,
    next_update BIGINT NOT NULL,
    entries BIGINT NOT NULL,
    der BYTEA NOT NULL,
    PRIMARY KEY (issuer_id, shard)
);

CREATE TABLE blocked_keys (
    spki_sha256 TEXT PRIMARY KEY,
    -- RFC 7638 thumbprint of the same key as a JWK, to refuse it as an account key.
    jwk_thumbprint TEXT,
    blocked_at BIGINT NOT NULL,
    comment TEXT NOT NULL
);
CREATE INDEX blocked_keys_by_jwk ON blocked_keys (jwk_thumbprint);

CREATE TABLE revocation_epoch (
    id BIGINT PRIMARY KEY CHECK (id = 1),
    epoch BIGINT NOT NULL
);
INSERT INTO revocation_epoch (id, epoch) VALUES (1, 0);
