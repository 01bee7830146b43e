-- Counters behind the public statistics page (/stats), kept up to date in the transaction that
-- issues or revokes a certificate, so the page reads a few thousand small rows and never scans
-- the certificates. Each counter is split over a few shards (a random one per transaction) so
-- concurrent issuances don't all wait for one row lock; readers sum the shards.
-- Rebuilt from the certificates by the SA's recompute job when `stats_state.recomputed_at` is
-- NULL (databases that had certificates before this migration).
-- Keep in step with ../sqlite/0007_stats.sql.

-- Certificates issued per UTC day of notBefore (unix day number).
CREATE TABLE stats_issuance_daily (
    day BIGINT NOT NULL,
    shard BIGINT NOT NULL,
    issued BIGINT NOT NULL,
    PRIMARY KEY (day, shard)
);

-- Per unix hour of notAfter: unrevoked certificates, and registered domains whose latest
-- certificate, expiring in that hour. "Active" is the sum over the hours not yet past.
CREATE TABLE stats_expiry_hourly (
    hour BIGINT NOT NULL,
    shard BIGINT NOT NULL,
    certificates BIGINT NOT NULL,
    domains BIGINT NOT NULL,
    PRIMARY KEY (hour, shard)
);

-- Each registered domain and the latest notAfter of a certificate naming it.
CREATE TABLE stats_domains (
    domain TEXT PRIMARY KEY NOT NULL,
    not_after BIGINT NOT NULL
);

CREATE TABLE stats_state (
    id BIGINT PRIMARY KEY NOT NULL CHECK (id = 1),
    recomputed_at BIGINT
);

-- A database without certificates needs no rebuild.
INSERT INTO stats_state (id, recomputed_at)
SELECT 1, CASE WHEN EXISTS (SELECT 1 FROM certificates) THEN NULL ELSE 0 END;
