-- ACME Renewal Information (RFC 9773): an operator's request for early renewal, and the order
-- whose certificate replaced this one.
ALTER TABLE certificates ADD COLUMN renew_by INTEGER;
ALTER TABLE certificates ADD COLUMN replaced_by TEXT REFERENCES orders (id);
CREATE INDEX certificates_by_account ON certificates (account_id);
