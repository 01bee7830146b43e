//! The per-role configuration files of `deploy/config/` (issue 15) load with the real parsers
//! (`cairn::config::Config`, and `VaServeConfig` for `cairn va serve`), each role presents its
//! own certificate, and the files agree with each other: every peer URL reaches the port the
//! peer listens on, and each service allows the roles that call it. (Here rather than in
//! `cairn-deploy`, which does not depend on the `cairn` crate.)

#![allow(clippy::unwrap_used, clippy::expect_used)]

use cairn::config::Config;
use cairn::va_serve::VaServeConfig;
use std::net::SocketAddr;
use std::path::PathBuf;

fn file(name: &str) -> (PathBuf, String) {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../deploy/config")
        .join(name);
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    (path, text)
}

/// `deploy/config/<role>.toml`, parsed, after checking it presents `<role>`'s certificate.
fn role(role: &str) -> Config {
    let (path, text) = file(&format!("{role}.toml"));
    let cfg = Config::parse(&text).unwrap_or_else(|e| panic!("{}: {e:#}", path.display()));
    let tls = cfg.rpc.tls.clone().expect("[rpc.tls]");
    assert!(
        tls.cert.ends_with(format!("{role}.pem")) && tls.key.ends_with(format!("{role}.key.pem")),
        "{role}: {tls:?}"
    );
    cfg
}

/// The port of an `https://host:port` URL.
fn port(url: &str) -> u16 {
    url.rsplit(':').next().unwrap().parse().unwrap()
}

fn clients(list: &[String]) -> Vec<&str> {
    list.iter().map(String::as_str).collect()
}

#[test]
fn each_role_file_loads_and_the_files_agree() {
    let (sa, ca, ra, wfe, nonce) = (
        role("sa"),
        role("ca"),
        role("ra"),
        role("wfe"),
        role("nonce"),
    );
    let (va_path, va_text) = file("va.toml");
    let va: VaServeConfig =
        toml::from_str(&va_text).unwrap_or_else(|e| panic!("{}: {e}", va_path.display()));
    assert!(va.tls.cert.ends_with("va.pem"));
    assert!(va.va.remote.is_empty(), "a remote VA does not fan out");

    let listen = |addr: SocketAddr| addr.port();
    // The SA answers the RA and the issuer's public listener.
    assert_eq!(
        clients(&sa.services.sa.allowed_clients),
        ["ra.cairn.internal", "ca.cairn.internal"]
    );
    let sa_port = listen(sa.services.sa.listen);
    assert_eq!(
        port(&ca.peers.sa.as_ref().expect("ca: [peers] sa").url),
        sa_port
    );
    assert_eq!(
        port(&ra.peers.sa.as_ref().expect("ra: [peers] sa").url),
        sa_port
    );
    // The issuer answers the RA, and serves OCSP on its public listener.
    assert_eq!(
        clients(&ca.services.issuer.allowed_clients),
        ["ra.cairn.internal"]
    );
    assert!(ca.ocsp.enabled);
    let issuer = ra.peers.issuer.as_ref().expect("ra: [peers] issuer");
    assert_eq!(port(&issuer.url), listen(ca.services.issuer.listen));
    // The RA answers the WFEs, and corroborates with the remote VA.
    assert_eq!(
        clients(&ra.services.ra.allowed_clients),
        ["wfe.cairn.internal"]
    );
    assert_eq!(wfe.peers.ra.len(), 1);
    assert_eq!(port(&wfe.peers.ra[0].url), listen(ra.services.ra.listen));
    assert_eq!(ra.va.remote.len(), 1);
    assert_eq!(port(&ra.va.remote[0].rpc.url), listen(va.listen));
    assert_eq!(clients(&va.allowed_clients.0), ["ra.cairn.internal"]);
    // The WFEs redeem nonces at the nonce service, by its prefix.
    assert_eq!(
        clients(&nonce.nonce.allowed_clients),
        ["wfe.cairn.internal"]
    );
    let service = &wfe.wfe.nonce_services[..];
    assert_eq!(service.len(), 1);
    assert_eq!(
        Some(service[0].prefix.as_str()),
        nonce.nonce.prefix.as_ref().map(|p| p.as_str())
    );
    assert_eq!(port(&service[0].address), listen(nonce.nonce.listen));
}
