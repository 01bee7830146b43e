//! Certificate Transparency in issuance, end to end over ACME: certificates issued by the
//! all-in-one CA carry SCTs from both local logs that verify — with code of this test, not
//! Cairn's — over the precertificate TBS rebuilt from the final certificate; the logs include
//! the precertificate and the final certificate at the SCTs' indexes (checked by the CT log's
//! independent verifier over HTTPS); and a CA whose logs do not answer fails the order
//! cleanly without issuing anything.
// Helpers here are test code: a failed unwrap is a test failure.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;
#[allow(dead_code, unreachable_pub, clippy::unwrap_used, clippy::expect_used)]
#[path = "../../ct/log/tests/common/verifier.rs"]
mod verifier;

use base64::Engine;
use base64::engine::general_purpose::STANDARD as B64;
use common::{TestCa, csr_for, pem_chain};
use der::{Decode, Encode, Tagged};
use instant_acme::{ChallengeType, Identifier, NewOrder, OrderStatus, RetryPolicy};
use std::time::Duration;
use x509_cert::Certificate;
use x509_cert::ext::Extension;

const SCT_LIST_OID: &str = "1.3.6.1.4.1.11129.2.4.2";
const POISON_OID: &str = "1.3.6.1.4.1.11129.2.4.3";

/// CT on, with local logs that sequence every 50 ms.
fn ct_on(cfg: &mut cairn::config::Config) {
    cfg.ct.enabled = true;
    cfg.ct.local_logs = true;
    cfg.ct.local_period_ms = 50;
}

/// One SCT from a TLS `SignedCertificateTimestampList`.
#[derive(Debug)]
struct Sct {
    log_id: [u8; 32],
    timestamp: u64,
    extensions: Vec<u8>,
    signature: Vec<u8>,
}

/// Parses the TLS list by RFC 6962 §3.3 (u16-prefixed list of u16-prefixed SCTs).
fn parse_sct_list(b: &[u8]) -> Vec<Sct> {
    let total = u16::from_be_bytes([b[0], b[1]]) as usize;
    assert_eq!(total, b.len() - 2, "list length");
    let mut d = &b[2..];
    let mut out = Vec::new();
    while !d.is_empty() {
        let n = u16::from_be_bytes([d[0], d[1]]) as usize;
        let s = &d[2..2 + n];
        d = &d[2 + n..];
        assert_eq!(s[0], 0, "v1");
        let log_id: [u8; 32] = s[1..33].try_into().unwrap();
        let timestamp = u64::from_be_bytes(s[33..41].try_into().unwrap());
        let el = u16::from_be_bytes([s[41], s[42]]) as usize;
        let extensions = s[43..43 + el].to_vec();
        let signature = s[43 + el..].to_vec();
        let sl = u16::from_be_bytes([signature[2], signature[3]]) as usize;
        assert_eq!(signature.len(), 4 + sl, "digitally-signed length");
        out.push(Sct {
            log_id,
            timestamp,
            extensions,
            signature,
        });
    }
    out
}

/// The certificate's extensions, decoded from its TBS by generic DER.
fn extensions(cert_der: &[u8]) -> Vec<Extension> {
    let cert = Certificate::from_der(cert_der).unwrap();
    cert.tbs_certificate()
        .extensions()
        .cloned()
        .unwrap_or_default()
}

/// The precertificate TBS as RFC 6962 §3.2 defines it, rebuilt from the final certificate:
/// its TBSCertificate with the SCT list extension removed.
fn precert_tbs_from_final(cert_der: &[u8]) -> Vec<u8> {
    let cert = Certificate::from_der(cert_der).unwrap();
    let tbs = cert.tbs_certificate().to_der().unwrap();
    let mut items: Vec<der::Any> = Vec::from_der(&tbs).unwrap();
    let last = items.last_mut().unwrap();
    assert_eq!(
        last.tag(),
        der::Tag::ContextSpecific {
            constructed: true,
            number: der::TagNumber(3)
        }
    );
    let exts: Vec<Extension> = Vec::from_der(last.value()).unwrap();
    let kept: Vec<Extension> = exts
        .into_iter()
        .filter(|e| e.extn_id.to_string() != SCT_LIST_OID)
        .collect();
    *last = der::Any::new(last.tag(), kept.to_der().unwrap()).unwrap();
    items.to_der().unwrap()
}

/// An HTTPS client trusting only the local TLS root of the ACME listener.
fn https_client(ca: &TestCa) -> reqwest::Client {
    let root = std::fs::read(&ca.server.tls_root_path).unwrap();
    reqwest::Client::builder()
        .tls_certs_only([reqwest::Certificate::from_pem(&root).unwrap()])
        .timeout(Duration::from_secs(20))
        .build()
        .unwrap()
}

#[tokio::test]
async fn issued_certificates_embed_scts_of_two_operators_that_verify_and_are_logged() {
    let ca = TestCa::start_with(ct_on).await;
    let account = ca.account().await;
    let ids = [Identifier::Dns("sct.example.com".into())];
    let (pem, _) = ca.issue(&account, &ids, ChallengeType::Http01).await;
    common::verify_chain(&ca.server.root_path, &pem, "sct.example.com");
    let chain = pem_chain(&pem);
    let (leaf, intermediate) = (&chain[0], &chain[1]);

    let exts = extensions(leaf);
    assert!(
        exts.iter().all(|e| e.extn_id.to_string() != POISON_OID),
        "a final certificate has no poison"
    );
    let sct_ext = exts
        .iter()
        .find(|e| e.extn_id.to_string() == SCT_LIST_OID)
        .expect("SCT list extension");
    assert!(!sct_ext.critical);
    let list = der::asn1::OctetString::from_der(sct_ext.extn_value.as_bytes()).unwrap();
    let scts = parse_sct_list(list.as_bytes());
    assert_eq!(scts.len(), 2, "one SCT per operator");

    // The logs' keys, as they publish them.
    let http = https_client(&ca);
    let port = ca.server.acme_addr.port();
    let mut logs = Vec::new();
    for name in ["local-a", "local-b"] {
        let base = format!("https://localhost:{port}/ct/{name}");
        let desc: serde_json::Value = http
            .get(format!("{base}/log.json"))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        let key = B64.decode(desc["key"].as_str().unwrap()).unwrap();
        logs.push((name, base, key));
    }

    let issuer_spki = Certificate::from_der(intermediate)
        .unwrap()
        .tbs_certificate()
        .subject_public_key_info()
        .to_der()
        .unwrap();
    let tbs = precert_tbs_from_final(leaf);
    let signed_entry = verifier::precert_signed_entry(&issuer_spki, &tbs);
    let mut seen = Vec::new();
    for sct in &scts {
        let (name, base, key) = logs
            .iter()
            .find(|(_, _, k)| verifier::sha(&[k]) == sct.log_id)
            .expect("the SCT is from one of the local logs");
        assert!(!seen.contains(name), "two SCTs from one log");
        seen.push(*name);
        let json = serde_json::json!({
            "sct_version": 0,
            "id": B64.encode(sct.log_id),
            "timestamp": sct.timestamp,
            "extensions": B64.encode(&sct.extensions),
            "signature": B64.encode(&sct.signature),
        });
        let (ts, index) = verifier::verify_sct(&json, key, 1, &signed_entry);

        // The log holds the precertificate at that index, and (submitted in the background)
        // the final certificate after it.
        let origin = format!("localhost/ct/{name}");
        let mut snap = verifier::snapshot(&http, base, &origin, key).await;
        for _ in 0..100 {
            if snap
                .entries
                .iter()
                .any(|e| e.entry_type == 0 && e.signed == *leaf)
            {
                break;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
            snap = verifier::snapshot(&http, base, &origin, key).await;
        }
        let entry = &snap.entries[index as usize];
        assert_eq!(entry.entry_type, 1, "precert_entry");
        assert_eq!(entry.timestamp, ts);
        assert_eq!(
            entry.signed, tbs,
            "the logged TBS is the final certificate's minus SCTs"
        );
        assert_eq!(entry.issuer_key_hash, Some(verifier::sha(&[&issuer_spki])));
        let precert = entry.pre_certificate.as_ref().unwrap();
        let pexts = extensions(precert);
        let poison = pexts
            .iter()
            .find(|e| e.extn_id.to_string() == POISON_OID)
            .expect("poison");
        assert!(poison.critical);
        assert_eq!(poison.extn_value.as_bytes(), &[5, 0], "ASN.1 NULL");
        assert_eq!(
            Certificate::from_der(precert)
                .unwrap()
                .tbs_certificate()
                .serial_number(),
            Certificate::from_der(leaf)
                .unwrap()
                .tbs_certificate()
                .serial_number(),
            "same serial"
        );
        assert!(
            snap.entries
                .iter()
                .any(|e| e.entry_type == 0 && e.signed == *leaf),
            "{name} also logged the final certificate"
        );
    }
}

/// Starts a real CT log over HTTP rooted at `ca`'s root: (server, submission URL, key b64).
async fn http_log(dir: &std::path::Path, root_pem: &str) -> (cairn_ct::CtServer, String, String) {
    std::fs::create_dir_all(dir.join("roots")).unwrap();
    std::fs::write(dir.join("roots/root.pem"), root_pem).unwrap();
    let log = cairn_ct::LogConfig {
        name: "remote".into(),
        description: None,
        submission_url: "https://ct.test.invalid/remote/".into(),
        monitoring_url: None,
        key_file: dir.join("key.pem"),
        key_pkcs11: None,
        note_key_file: None,
        roots_dir: dir.join("roots"),
        data_dir: dir.join("data"),
        lock_db: None,
        s3: None,
        lock_s3: None,
        ccadb_csv: None,
        merge_delay_monitor_root: true,
        not_after_start: time::macros::datetime!(2000-01-01 0:00 UTC),
        not_after_limit: time::macros::datetime!(2100-01-01 0:00 UTC),
        period_ms: 50,
        pool_size: 100,
        witnesses: Vec::new(),
        inception: None,
        read_only_after_s: None,
    };
    let server = cairn_ct::CtServer::start(&cairn_ct::CtConfig {
        listen: "127.0.0.1:0".parse().unwrap(),
        metrics_listen: None,
        health_max_checkpoint_age_ms: 15_000,
        read_limits: None,
        rfc6962_read_endpoints: false,
        max_connections: None,
        logs: vec![log],
    })
    .await
    .unwrap();
    let url = format!("http://{}/remote/", server.local_addr());
    let key = B64.encode(server.logs()[0].public_key_der());
    (server, url, key)
}

#[tokio::test]
async fn without_scts_from_enough_operators_the_order_fails_cleanly_and_nothing_is_issued() {
    // Two logs of two operators, one of which never answers (nothing listens there); the CA
    // needs both. The reachable log is started after the CA (it needs the CA's root), so the
    // CA's config names its port up front.
    let dir = tempfile::tempdir().unwrap();
    let probe = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let dead = format!("http://{}/dead/", probe.local_addr().unwrap());
    drop(probe);
    let unused_key = B64.encode(cairn_tlog::key::LogKey::generate().unwrap().spki_der());
    let ca_dir = dir.path().join("pki");
    std::fs::create_dir_all(&ca_dir).unwrap();
    // The CA's hierarchy, created before the CA starts so the log can be rooted at it.
    let hierarchy = cairn_issuer::CaHierarchy::load_or_create(
        &ca_dir.join("ca"),
        cairn_x509::KeyAlgorithm::EcdsaP256,
        time::OffsetDateTime::now_utc(),
    )
    .unwrap();
    let root_pem = hierarchy.root_pem();
    let (log, url, key) = http_log(&dir.path().join("log"), &root_pem).await;
    let ca = TestCa::start_with(|c| {
        c.server.data_dir = ca_dir.clone();
        c.ct.enabled = true;
        c.ct.local_logs = false;
        c.ct.min_operators = 2;
        c.ct.timeout = "2s".into();
        c.ct.logs = vec![
            cairn::ct_issuance::CtLogSection {
                name: "remote".into(),
                url,
                key,
                operator: "Operator One".into(),
            },
            cairn::ct_issuance::CtLogSection {
                name: "dead".into(),
                url: dead,
                key: unused_key,
                operator: "Operator Two".into(),
            },
        ];
    })
    .await;
    let account = ca.account().await;
    let ids = [Identifier::Dns("nosct.example.com".into())];
    let mut order = account.new_order(&NewOrder::new(&ids)).await.unwrap();
    assert_eq!(
        ca.authorize(&mut order, ChallengeType::Http01).await,
        OrderStatus::Ready
    );
    let (csr, _key) = csr_for(&ids);
    let _ = order.finalize_csr(&csr).await;
    let status = order
        .poll_ready(&RetryPolicy::new().timeout(Duration::from_secs(20)))
        .await;
    let state = order.state();
    assert!(
        matches!(status, Ok(OrderStatus::Invalid) | Err(_)) && state.status == OrderStatus::Invalid,
        "order must be invalid: {status:?} {state:?}"
    );
    assert!(state.certificate.is_none(), "no certificate URL");
    let err = state.error.as_ref().expect("order error");
    let text = format!("{err:?}");
    assert!(text.contains("rateLimited"), "{text}");
    assert!(text.contains("Certificate Transparency"), "{text}");
    assert!(
        !text.contains("127.0.0.1") && !text.contains("remote"),
        "no internals: {text}"
    );
    // The reachable log did receive the precertificate (and only that).
    let log_handle = log.logs()[0].clone();
    for _ in 0..40 {
        if log_handle.tree_size() >= 1 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(
        log_handle.tree_size(),
        1,
        "only the precertificate was logged"
    );
    log.shutdown().await;
}
