//! Registration authority: ACME policy, orders, authorizations and issuance orchestration.
