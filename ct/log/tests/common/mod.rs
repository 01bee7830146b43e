//! Shared test fixtures: a generated PKI, log start-up in a temp folder, an HTTP client, and an
//! independent verifier of the log's static files.
#![allow(dead_code, unreachable_pub, clippy::unwrap_used, clippy::expect_used)]

pub mod backend;
pub mod verifier;

use base64::Engine;
use base64::engine::general_purpose::STANDARD as B64;
use cairn_ct::{CtConfig, LogConfig};
use rcgen::{
    BasicConstraints, CertificateParams, CertifiedIssuer, CustomExtension, DnType,
    ExtendedKeyUsagePurpose, IsCa, KeyPair, SerialNumber,
};
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};

pub const ORIGIN: &str = "ct.example.test/2030";

pub struct Pki {
    pub root: CertifiedIssuer<'static, KeyPair>,
    pub inter: CertifiedIssuer<'static, KeyPair>,
    pub psc: CertifiedIssuer<'static, KeyPair>,
    pub other_root: CertifiedIssuer<'static, KeyPair>,
}

fn ca_params(cn: &str) -> CertificateParams {
    let mut p = CertificateParams::new(Vec::<String>::new()).unwrap();
    p.distinguished_name.push(DnType::CommonName, cn);
    p.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    p.not_after = rcgen::date_time_ymd(2040, 1, 1);
    p
}

static SERIAL: AtomicU64 = AtomicU64::new(1000);

/// A leaf (or precertificate) and the same certificate without poison (the "final" one).
pub struct Leaf {
    pub der: Vec<u8>,
    /// The final certificate's TBS (what a precert entry must carry).
    pub final_tbs: Vec<u8>,
}

impl Pki {
    pub fn new() -> Pki {
        let root =
            CertifiedIssuer::self_signed(ca_params("Test Root"), KeyPair::generate().unwrap())
                .unwrap();
        let inter = CertifiedIssuer::signed_by(
            ca_params("Test Intermediate"),
            KeyPair::generate().unwrap(),
            &root,
        )
        .unwrap();
        let mut psc_params = ca_params("Test Precert Signer");
        psc_params.use_authority_key_identifier_extension = true;
        psc_params.extended_key_usages = vec![ExtendedKeyUsagePurpose::Other(vec![
            1, 3, 6, 1, 4, 1, 11129, 2, 4, 4,
        ])];
        let psc =
            CertifiedIssuer::signed_by(psc_params, KeyPair::generate().unwrap(), &inter).unwrap();
        let other_root =
            CertifiedIssuer::self_signed(ca_params("Other Root"), KeyPair::generate().unwrap())
                .unwrap();
        Pki {
            root,
            inter,
            psc,
            other_root,
        }
    }

    pub fn root_pem(&self) -> String {
        self.root.pem()
    }

    fn leaf_params(name: &str, not_after: (i32, u8, u8)) -> CertificateParams {
        let mut p = CertificateParams::new(vec![name.to_string()]).unwrap();
        p.not_after = rcgen::date_time_ymd(not_after.0, not_after.1, not_after.2);
        p.not_before = rcgen::date_time_ymd(2029, 1, 1);
        p.use_authority_key_identifier_extension = true;
        p.serial_number = Some(SerialNumber::from(
            SERIAL
                .fetch_add(1, Ordering::Relaxed)
                .to_be_bytes()
                .to_vec(),
        ));
        p
    }

    /// A leaf issued by the intermediate (precert: with the critical poison; via the PSC if
    /// `via_psc`).
    pub fn leaf(&self, name: &str, not_after: (i32, u8, u8), precert: bool, via_psc: bool) -> Leaf {
        let key = KeyPair::generate().unwrap();
        let params = Self::leaf_params(name, not_after);
        let final_cert = params.signed_by(&key, &self.inter).unwrap();
        let der = if precert {
            let mut p = params.clone();
            let mut poison = CustomExtension::from_oid_content(
                &[1, 3, 6, 1, 4, 1, 11129, 2, 4, 3],
                vec![0x05, 0x00],
            );
            poison.set_criticality(true);
            p.custom_extensions.push(poison);
            let issuer = if via_psc { &self.psc } else { &self.inter };
            p.signed_by(&key, issuer).unwrap().der().to_vec()
        } else {
            final_cert.der().to_vec()
        };
        Leaf {
            der,
            final_tbs: tbs_of(final_cert.der()),
        }
    }

    /// A certificate issued (NotBefore) in 2020: a stale resubmission for the log.
    pub fn stale_leaf(&self, name: &str) -> Leaf {
        let key = KeyPair::generate().unwrap();
        let mut params = Self::leaf_params(name, (2030, 6, 1));
        params.not_before = rcgen::date_time_ymd(2020, 1, 1);
        let cert = params.signed_by(&key, &self.inter).unwrap();
        Leaf {
            der: cert.der().to_vec(),
            final_tbs: tbs_of(cert.der()),
        }
    }

    pub fn chain(&self, leaf: &Leaf, via_psc: bool) -> Vec<Vec<u8>> {
        let mut c = vec![leaf.der.clone()];
        if via_psc {
            c.push(self.psc.der().to_vec());
        }
        c.push(self.inter.der().to_vec());
        c
    }

    pub fn inter_spki(&self) -> Vec<u8> {
        use rcgen::PublicKeyData;
        self.inter.key().subject_public_key_info()
    }
}

/// The TBSCertificate DER of a certificate, via x509-cert.
pub fn tbs_of(cert: &[u8]) -> Vec<u8> {
    use der::{Decode, Encode};
    x509_cert::Certificate::from_der(cert)
        .unwrap()
        .tbs_certificate()
        .to_der()
        .unwrap()
}

pub fn chain_body(chain: &[Vec<u8>]) -> serde_json::Value {
    serde_json::json!({ "chain": chain.iter().map(|c| B64.encode(c)).collect::<Vec<_>>() })
}

/// A log config in `dir` (roots written there).
pub fn log_config(dir: &Path, pki: &Pki) -> LogConfig {
    std::fs::create_dir_all(dir.join("roots")).unwrap();
    std::fs::write(dir.join("roots/root.pem"), pki.root_pem()).unwrap();
    LogConfig {
        name: "test2030".into(),
        description: None,
        submission_url: format!("https://{ORIGIN}/"),
        monitoring_url: None,
        key_file: dir.join("log-key.pem"),
        key_pkcs11: None,
        note_key_file: None,
        roots_dir: dir.join("roots"),
        data_dir: dir.join("data"),
        lock_db: None,
        s3: None,
        lock_s3: None,
        ccadb_csv: None,
        merge_delay_monitor_root: true,
        not_after_start: time::macros::datetime!(2030-01-01 0:00 UTC),
        not_after_limit: time::macros::datetime!(2031-01-01 0:00 UTC),
        period_ms: 100,
        pool_size: 10_000,
        witnesses: Vec::new(),
        inception: None,
        read_only_after_s: None,
    }
}

pub fn server_config(log: LogConfig) -> CtConfig {
    CtConfig {
        listen: "127.0.0.1:0".parse().unwrap(),
        metrics_listen: None,
        health_max_checkpoint_age_ms: 15_000,
        read_limits: None,
        rfc6962_read_endpoints: false,
        max_connections: None,
        logs: vec![log],
    }
}

pub fn client() -> reqwest::Client {
    reqwest::Client::builder()
        .timeout(std::time::Duration::from_secs(30))
        .build()
        .unwrap()
}

/// The log's current checkpoint (the signed note) at `base`.
pub async fn get_checkpoint(c: &reqwest::Client, base: &str) -> String {
    c.get(format!("{base}/checkpoint"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap()
}

/// The `/2030` mount path of [`ORIGIN`].
pub fn base_url(addr: std::net::SocketAddr) -> String {
    format!("http://{addr}/2030")
}

/// Submits `n` fresh certificates (`<tag><i>.example`) concurrently to the log at `base`;
/// every one must get an SCT.
pub async fn add_many(base: &str, pki: &Pki, tag: &str, n: usize) {
    let c = client();
    let posts = (0..n).map(|i| {
        let leaf = pki.leaf(&format!("{tag}{i}.example"), (2030, 6, 1), false, false);
        let body = chain_body(&pki.chain(&leaf, false));
        let c = c.clone();
        let url = format!("{base}/ct/v1/add-chain");
        async move { c.post(url).json(&body).send().await.unwrap().status() }
    });
    for status in futures::future::join_all(posts).await {
        assert_eq!(status, 200);
    }
}
