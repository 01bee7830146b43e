-- Precertificates are stored (in `certificates`, flagged) before any CT log sees them, so that
-- every serial a log may have seen is known to OCSP and CRLs and can be revoked, even if the
-- final certificate is never stored. The final certificate replaces its precertificate's row.
-- Keep in step with ../postgres/0004_precertificates.sql.

ALTER TABLE certificates ADD COLUMN precertificate INTEGER NOT NULL DEFAULT 0;
CREATE INDEX certificates_precertificates ON certificates (order_id) WHERE precertificate = 1;
