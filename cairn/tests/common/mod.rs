//! Test harness: the all-in-one CA on a temporary SQLite database, validating against an
//! in-process challenge test server, and helpers to drive it with instant-acme.
// Each test binary uses a different part of the harness; a failed unwrap here is a test failure.
#![allow(dead_code, unreachable_pub, clippy::unwrap_used, clippy::expect_used)]

use cairn::config::Config;
use cairn_challtestsrv::{ChallTestSrv, ChallTestSrvConfig, ChallTestSrvHandle};
use instant_acme::{
    Account, AuthorizationStatus, ChallengeType, Identifier, NewAccount, NewOrder, OrderStatus,
    RetryPolicy,
};
use std::time::Duration;

/// A running CA plus its challenge server.
pub struct TestCa {
    pub server: cairn::Server,
    pub chall: ChallTestSrvHandle,
    pub dir: tempfile::TempDir,
}

impl TestCa {
    pub async fn start() -> TestCa {
        Self::start_with(|_| {}).await
    }

    pub async fn start_with(tweak: impl FnOnce(&mut Config)) -> TestCa {
        let chall = ChallTestSrv::start(ChallTestSrvConfig::loopback_ephemeral())
            .await
            .expect("challenge test server starts");
        let dir = tempfile::tempdir().expect("tempdir");
        let mut cfg = Config::default();
        cfg.server.data_dir = dir.path().join("data");
        cfg.server.listen = "127.0.0.1:0".parse().unwrap();
        cfg.server.metrics_listen = "127.0.0.1:0".parse().unwrap();
        cfg.server.public_listen = "127.0.0.1:0".parse().unwrap();
        cfg.va.dns_server = chall.dns_addr();
        cfg.va.http01_port = chall.http01_addr().expect("http-01 responder").port();
        cfg.va.tlsalpn01_port = chall
            .tlsalpn01_addr()
            .expect("tls-alpn-01 responder")
            .port();
        cfg.va.timeout = "5s".into();
        // The challenge test server answers 127.0.0.1: a private-PKI set-up.
        cfg.va.allow_private_addresses = true;
        // Certificate Transparency makes every issuance wait for the local logs' sequencing;
        // tests/ct_issuance.rs (and tests that want it) turn it on.
        cfg.ct.enabled = false;
        // The DAP leader and helper are not needed by the CA tests; tests/dap_serve.rs turns
        // them on.
        cfg.dap.enabled = false;
        cfg.dap.leader_listen = "127.0.0.1:0".parse().unwrap();
        cfg.dap.helper_listen = "127.0.0.1:0".parse().unwrap();
        tweak(&mut cfg);
        let server = cairn::serve::start(cfg).await.expect("CA starts");
        TestCa { server, chall, dir }
    }

    pub fn directory(&self) -> &str {
        &self.server.directory_url
    }

    /// An HTTP client that trusts the ACME listener's TLS certificate.
    pub fn http(&self) -> reqwest::Client {
        let root = std::fs::read(&self.server.tls_root_path).unwrap();
        reqwest::Client::builder()
            .add_root_certificate(reqwest::Certificate::from_pem(&root).unwrap())
            .build()
            .unwrap()
    }

    /// POSTs a body that is no JWS to new-order: a client mistake (400).
    pub async fn malformed_new_order(&self, http: &reqwest::Client) {
        let url = self.directory().replace("/directory", "/acme/new-order");
        let resp = http
            .post(url)
            .header("content-type", "application/jose+json")
            .body("{}")
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), 400);
    }

    pub async fn account(&self) -> Account {
        account_at(self.directory(), &self.server.tls_root_path).await
    }

    /// Makes the challenge test server answer `typ` for every pending authorization of the
    /// order, tells the CA it is ready, and waits for the order to be ready.
    pub async fn authorize(
        &self,
        order: &mut instant_acme::Order,
        typ: ChallengeType,
    ) -> OrderStatus {
        authorize_with(&self.chall, order, typ).await
    }

    /// Full issuance: order, validate with `typ`, finalize with a fresh P-256 key, download.
    /// Returns the PEM chain and the certificate key.
    /// Orders naming an IP address use the `shortlived` profile (the only default profile that
    /// allows them, as at Let's Encrypt); others the default profile.
    pub async fn issue(
        &self,
        account: &Account,
        ids: &[Identifier],
        typ: ChallengeType,
    ) -> (String, rcgen::KeyPair) {
        let profile = ids
            .iter()
            .any(|i| matches!(i, Identifier::Ip(_)))
            .then_some("shortlived");
        self.issue_with_profile(account, ids, typ, profile).await
    }

    /// Full issuance with an explicit profile (`None`: the server's default).
    pub async fn issue_with_profile(
        &self,
        account: &Account,
        ids: &[Identifier],
        typ: ChallengeType,
        profile: Option<&str>,
    ) -> (String, rcgen::KeyPair) {
        issue_with(&self.chall, account, ids, typ, profile).await
    }
}

/// A new account at the ACME server of `directory`, whose HTTPS listener `tls_root` signs.
pub async fn account_at(directory: &str, tls_root: &std::path::Path) -> Account {
    let (account, _creds) = Account::builder_with_root(tls_root)
        .expect("client")
        .create(
            &NewAccount {
                contact: &["mailto:test@cairn-ca.net"],
                terms_of_service_agreed: true,
                only_return_existing: false,
            },
            directory.to_owned(),
            None,
        )
        .await
        .expect("account created");
    account
}

/// Makes `chall` answer `typ` for every pending authorization of the order, tells the CA it is
/// ready, and waits for the order to be ready.
pub async fn authorize_with(
    chall: &ChallTestSrvHandle,
    order: &mut instant_acme::Order,
    typ: ChallengeType,
) -> OrderStatus {
    let mut authzs = order.authorizations();
    while let Some(authz) = authzs.next().await {
        let mut authz = authz.expect("authorization");
        if authz.status != AuthorizationStatus::Pending {
            continue;
        }
        let ident = authz.identifier().identifier.clone();
        let mut ch = authz
            .challenge(typ.clone())
            .expect("challenge type offered");
        let key_auth = ch.key_authorization();
        match (&typ, &ident) {
            (ChallengeType::Http01, _) => chall.add_http01(&ch.token, key_auth.as_str()),
            (ChallengeType::Dns01, Identifier::Dns(name)) => {
                chall.set_txt(&format!("_acme-challenge.{name}."), &key_auth.dns_value())
            }
            (ChallengeType::TlsAlpn01, Identifier::Dns(name)) => {
                chall.add_tlsalpn01(name, key_auth.as_str())
            }
            (ChallengeType::TlsAlpn01, Identifier::Ip(ip)) => {
                chall.add_tlsalpn01(&ip.to_string(), key_auth.as_str())
            }
            other => panic!("unsupported combination {other:?}"),
        }
        ch.set_ready().await.expect("challenge ready");
    }
    order
        .poll_ready(&RetryPolicy::new().timeout(Duration::from_secs(20)))
        .await
        .expect("order polled")
}

/// Full issuance with validation answered by `chall`: order, validate with `typ`, finalize
/// with a fresh P-256 key, download. `profile: None`: the server's default.
pub async fn issue_with(
    chall: &ChallTestSrvHandle,
    account: &Account,
    ids: &[Identifier],
    typ: ChallengeType,
    profile: Option<&str>,
) -> (String, rcgen::KeyPair) {
    let key = rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).expect("key");
    issue_with_key(chall, account, ids, typ, profile, key).await
}

/// [`issue_with`] finalizing with a CSR of `key` (of any type the CA accepts).
pub async fn issue_with_key(
    chall: &ChallTestSrvHandle,
    account: &Account,
    ids: &[Identifier],
    typ: ChallengeType,
    profile: Option<&str>,
    key: rcgen::KeyPair,
) -> (String, rcgen::KeyPair) {
    let mut new_order = NewOrder::new(ids);
    if let Some(p) = profile {
        new_order = new_order.profile(p);
    }
    let mut order = account.new_order(&new_order).await.expect("new order");
    let status = authorize_with(chall, &mut order, typ).await;
    assert_eq!(
        status,
        OrderStatus::Ready,
        "order should be ready: {:?}",
        order.state()
    );
    let csr = csr_with_key(ids, &key);
    order.finalize_csr(&csr).await.expect("finalize");
    let pem = order
        .poll_certificate(&RetryPolicy::new().timeout(Duration::from_secs(20)))
        .await
        .expect("certificate");
    (pem, key)
}

/// A CSR for the identifiers with a fresh P-256 key.
pub fn csr_for(ids: &[Identifier]) -> (Vec<u8>, rcgen::KeyPair) {
    let key = rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).expect("key");
    (csr_with_key(ids, &key), key)
}

/// A CSR for the identifiers signed by `key`.
pub fn csr_with_key(ids: &[Identifier], key: &rcgen::KeyPair) -> Vec<u8> {
    let mut params = rcgen::CertificateParams::default();
    params.subject_alt_names = ids
        .iter()
        .map(|i| match i {
            Identifier::Dns(n) => rcgen::SanType::DnsName(n.clone().try_into().expect("dns name")),
            Identifier::Ip(ip) => rcgen::SanType::IpAddress(*ip),
            other => panic!("unexpected identifier {other:?}"),
        })
        .collect();
    params.distinguished_name = rcgen::DistinguishedName::new();
    let csr = params.serialize_request(key).expect("csr");
    csr.der().to_vec()
}

/// Splits a PEM chain into DER certificates.
pub fn pem_chain(pem: &str) -> Vec<Vec<u8>> {
    cairn_x509::pem_certificates(pem).expect("PEM chain")
}

/// Verifies `chain_pem` (leaf first) up to the CA's root as a TLS server certificate for
/// `name`, with an independent verifier (rustls-webpki).
pub fn verify_chain(root_path: &std::path::Path, chain_pem: &str, name: &str) {
    use rustls_pki_types::{CertificateDer, ServerName, UnixTime};
    let root_pem = std::fs::read_to_string(root_path).expect("root.pem");
    let root_der = pem_chain(&root_pem).remove(0);
    let root_cert = CertificateDer::from(root_der);
    let anchor = webpki::anchor_from_trusted_cert(&root_cert).expect("trust anchor");
    let chain = pem_chain(chain_pem);
    let leaf = CertificateDer::from(chain[0].clone());
    let intermediates: Vec<CertificateDer<'_>> = chain[1..]
        .iter()
        .cloned()
        .map(CertificateDer::from)
        .collect();
    let ee = webpki::EndEntityCert::try_from(&leaf).expect("leaf parses");
    ee.verify_for_usage(
        webpki::ALL_VERIFICATION_ALGS,
        &[anchor],
        &intermediates,
        UnixTime::now(),
        webpki::KeyUsage::server_auth(),
        None,
        None,
    )
    .expect("chain verifies to the root");
    let server_name = ServerName::try_from(name.to_owned()).expect("name");
    ee.verify_is_valid_for_subject_name(&server_name)
        .expect("certificate is valid for the name");
}
pub mod ceremony;
pub mod certbot;
pub mod dap;
pub mod pg;
pub mod prometheus;
pub mod raw;

/// A child process, killed and reaped when dropped, so a failing test leaves none behind.
pub struct KilledOnDrop(pub std::process::Child);

impl Drop for KilledOnDrop {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Starts `cairn <command…> --config <config>` and waits, up to 30 s, until it listens on
/// `port` of the loopback; panics if it exits first or never listens.
pub async fn spawn_serving(command: &[&str], config: &std::path::Path, port: u16) -> KilledOnDrop {
    let mut child = KilledOnDrop(
        std::process::Command::new(env!("CARGO_BIN_EXE_cairn"))
            .args(command)
            .arg("--config")
            .arg(config)
            .stdout(std::process::Stdio::null())
            .spawn()
            .unwrap(),
    );
    for _ in 0..600 {
        if std::net::TcpStream::connect(("127.0.0.1", port)).is_ok() {
            return child;
        }
        if let Some(status) = child.0.try_wait().unwrap() {
            panic!("cairn {} exited: {status}", command.join(" "));
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!(
        "cairn {} did not start listening on {port}",
        command.join(" ")
    );
}

pub use cairn_test_services::free_port;

/// The CRL Distribution Point URL in a certificate.
pub fn crl_dp(cert_der: &[u8]) -> String {
    use der::Decode;
    use x509_cert::ext::pkix::CrlDistributionPoints;
    use x509_cert::ext::pkix::name::{DistributionPointName, GeneralName};
    let cert = x509_cert::Certificate::from_der(cert_der).unwrap();
    let oid = der::asn1::ObjectIdentifier::new_unwrap("2.5.29.31");
    let ext = cert
        .tbs_certificate()
        .extensions()
        .unwrap()
        .iter()
        .find(|e| e.extn_id == oid)
        .expect("a CRL distribution point");
    let dps = CrlDistributionPoints::from_der(ext.extn_value.as_bytes()).unwrap();
    match &dps.0[0].distribution_point {
        Some(DistributionPointName::FullName(names)) => match &names[0] {
            GeneralName::UniformResourceIdentifier(u) => u.to_string(),
            other => panic!("{other:?}"),
        },
        other => panic!("{other:?}"),
    }
}
