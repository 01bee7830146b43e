//! ACME (RFC 8555) wire format: JWS verification, JWK thumbprints, request and response bodies, problem documents. No I/O.
