//! X.509 for the CA: key pairs, CSR parsing and checks, certificate and CA hierarchy building on x509-cert/der 0.8 and aws-lc-rs. No I/O.
