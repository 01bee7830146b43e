//! Web front end: the ACME HTTP API.
