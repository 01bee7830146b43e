-- Leases on `processing` work, so that several CA instances can share one database and work a
-- crashed instance left behind is recovered: a challenge being validated and an order being
-- issued carry the instance holding them and when that lease ends. Another instance takes the
-- work over only once the lease has ended, by compare-and-swap on these columns. Rows left
-- `processing` before this migration have no lease and count as ended.
-- Keep in step with ../postgres/0005_processing_leases.sql.

ALTER TABLE challenges ADD COLUMN processing_owner TEXT;
ALTER TABLE challenges ADD COLUMN processing_until INTEGER;
CREATE INDEX challenges_processing ON challenges (processing_until) WHERE status = 'processing';

ALTER TABLE orders ADD COLUMN processing_owner TEXT;
ALTER TABLE orders ADD COLUMN processing_until INTEGER;
