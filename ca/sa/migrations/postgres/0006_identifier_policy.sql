-- Identifier policy per account for a private PKI (cairn_core::AccountPolicy as JSON): the
-- names and address ranges an account may order, and which of them are pre-validated. An EAB
-- key's policy applies to the account bound with it unless the account has its own. NULL: no
-- policy (unrestricted). A valid authorization without challenges is a pre-validated one.
-- Keep in step with ../sqlite/0006_identifier_policy.sql.

ALTER TABLE eab_keys ADD COLUMN identifier_policy TEXT;
ALTER TABLE accounts ADD COLUMN identifier_policy TEXT;
