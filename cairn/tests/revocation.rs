//! Revocation status publishing: the public plain-HTTP listener (CA certificates, CRLs) and the
//! revocation hook that tells components about each revocation.

// Helpers outside #[test] functions: a failed unwrap there is a test failure too.
#![allow(clippy::unwrap_used, clippy::expect_used, reason = "test helpers")]

mod common;

use async_trait::async_trait;
use cairn_core::{Revocation, RevocationReason, Serial};
use common::TestCa;
use instant_acme::{ChallengeType, Identifier, RevocationRequest};
use rustls_pki_types::CertificateDer;
use std::sync::{Arc, Mutex};

fn short_id(der: &[u8]) -> String {
    cairn_x509::CertInfo::from_der(der).unwrap().spki_sha256_hex[..16].to_owned()
}

fn ca_file(ca: &TestCa, name: &str) -> Vec<u8> {
    let pem = std::fs::read_to_string(ca.server.root_path.with_file_name(name)).unwrap();
    common::pem_chain(&pem).remove(0)
}

#[tokio::test]
async fn the_public_listener_serves_ca_certificates_over_plain_http() {
    let ca = TestCa::start().await;
    assert_eq!(
        ca.server.public_base_url,
        format!("http://localhost:{}", ca.server.public_addr.port())
    );
    let client = reqwest::Client::new();
    for file in ["root.pem", "intermediate.pem"] {
        let der = ca_file(&ca, file);
        let url = format!(
            "http://{}/issuer/{}.der",
            ca.server.public_addr,
            short_id(&der)
        );
        let resp = client.get(&url).send().await.unwrap();
        assert_eq!(resp.status(), 200, "{url}");
        assert_eq!(resp.headers()["content-type"], "application/pkix-cert");
        assert_eq!(resp.bytes().await.unwrap().to_vec(), der, "{file}");
    }
    let resp = client
        .get(format!(
            "http://{}/issuer/0000000000000000.der",
            ca.server.public_addr
        ))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 404);
}

#[derive(Default)]
struct Recorder(Mutex<Vec<(Serial, String, Revocation)>>);

#[async_trait]
impl cairn_ra::RevocationListener for Recorder {
    async fn certificate_revoked(&self, serial: &Serial, issuer_id: &str, revocation: &Revocation) {
        self.0
            .lock()
            .unwrap()
            .push((serial.clone(), issuer_id.to_owned(), revocation.clone()));
    }
}

#[tokio::test]
async fn revocation_listeners_hear_about_acme_revocations_once() {
    let ca = TestCa::start().await;
    let recorder = Arc::new(Recorder::default());
    ca.server.add_revocation_listener(recorder.clone());
    let account = ca.account().await;
    let (pem, _) = ca
        .issue(
            &account,
            &[Identifier::Dns("hook.example.com".into())],
            ChallengeType::Http01,
        )
        .await;
    let leaf = common::pem_chain(&pem).remove(0);
    assert!(
        recorder.0.lock().unwrap().is_empty(),
        "issuance is no revocation"
    );
    let der = CertificateDer::from(leaf.clone());
    account
        .revoke(&RevocationRequest {
            certificate: &der,
            reason: Some(instant_acme::RevocationReason::Superseded),
        })
        .await
        .unwrap();
    // A refused second revocation does not call the listeners again.
    assert!(
        account
            .revoke(&RevocationRequest {
                certificate: &der,
                reason: None,
            })
            .await
            .is_err()
    );
    let heard = recorder.0.lock().unwrap().clone();
    assert_eq!(heard.len(), 1, "{heard:?}");
    let (serial, issuer_id, revocation) = &heard[0];
    let info = cairn_x509::CertInfo::from_der(&leaf).unwrap();
    assert_eq!(*serial, Serial::from_bytes(&info.serial));
    assert_eq!(*issuer_id, short_id(&ca_file(&ca, "intermediate.pem")));
    assert_eq!(revocation.reason, RevocationReason::Superseded);
}

const PUBLIC_BASE: &str = "http://crl.example.com";

/// A CRL's entries: serial bytes (sign octet stripped) → reason code (0 when absent), and its
/// issuingDistributionPoint URL if any.
fn crl_entries(der_bytes: &[u8]) -> (Vec<(Vec<u8>, u8)>, Option<String>) {
    use der::Decode;
    use x509_cert::ext::pkix::crl::dp::IssuingDistributionPoint;
    use x509_cert::ext::pkix::name::{DistributionPointName, GeneralName};
    let crl: x509_cert::crl::CertificateList =
        x509_cert::crl::CertificateList::from_der(der_bytes).unwrap();
    let reason_oid = der::asn1::ObjectIdentifier::new_unwrap("2.5.29.21");
    let idp_oid = der::asn1::ObjectIdentifier::new_unwrap("2.5.29.28");
    let entries = crl
        .tbs_cert_list
        .revoked_certificates
        .iter()
        .flatten()
        .map(|e| {
            let reason = e
                .crl_entry_extensions
                .iter()
                .flatten()
                .find(|x| x.extn_id == reason_oid)
                .map(|x| x.extn_value.as_bytes()[2])
                .unwrap_or(0);
            let mut serial = e.serial_number.as_bytes().to_vec();
            if serial.len() > 1 && serial[0] == 0 {
                serial.remove(0);
            }
            (serial, reason)
        })
        .collect();
    let idp = crl
        .tbs_cert_list
        .crl_extensions
        .iter()
        .flatten()
        .find(|x| x.extn_id == idp_oid)
        .map(|x| {
            assert!(x.critical, "issuingDistributionPoint is critical");
            let idp = IssuingDistributionPoint::from_der(x.extn_value.as_bytes()).unwrap();
            match idp.distribution_point {
                Some(DistributionPointName::FullName(n)) => match &n[0] {
                    GeneralName::UniformResourceIdentifier(u) => u.to_string(),
                    other => panic!("{other:?}"),
                },
                other => panic!("{other:?}"),
            }
        });
    (entries, idp)
}

/// Fetches `url` until `done(body)` holds (bounded: 15 s).
async fn fetch_until(url: &str, done: impl Fn(&[u8]) -> bool) -> Vec<u8> {
    let client = reqwest::Client::new();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(15);
    loop {
        let resp = client.get(url).send().await.unwrap();
        if resp.status() == 200 {
            assert_eq!(resp.headers()["content-type"], "application/pkix-crl");
            let body = resp.bytes().await.unwrap().to_vec();
            if done(&body) {
                return body;
            }
        }
        assert!(
            std::time::Instant::now() < deadline,
            "{url} did not reach the expected state in time"
        );
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    }
}

/// `openssl crl` parses the CRL and verifies its signature against `ca_pem`.
fn openssl_verifies(crl_der: &[u8], ca_pem: &std::path::Path, dir: &std::path::Path, name: &str) {
    let path = dir.join(format!("{name}.crl"));
    std::fs::write(&path, crl_der).unwrap();
    let out = std::process::Command::new("openssl")
        .args(["crl", "-inform", "DER", "-noout", "-in"])
        .arg(&path)
        .arg("-CAfile")
        .arg(ca_pem)
        .output()
        .expect("openssl runs");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        out.status.success() && text.contains("verify OK"),
        "openssl crl {name}: {text}"
    );
}

/// pkilint's CRL linter (when `CAIRN_VENV` is set) finds no ERROR or FATAL.
fn pkilint_crl(crl_der: &[u8], kind: &str, dir: &std::path::Path, name: &str) {
    let Some(venv) = cairn_test_services::venv() else {
        return;
    };
    let path = dir.join(format!("{name}.der"));
    std::fs::write(&path, crl_der).unwrap();
    let exe = std::path::Path::new(&venv).join("bin").join("lint_crl");
    let out = std::process::Command::new(&exe)
        .args(["lint", "-t", kind, "-p", "BR", "-s", "NOTICE", "-f", "JSON"])
        .args(["--document-format", "DER"])
        .arg(&path)
        .output()
        .unwrap_or_else(|e| panic!("cannot run {}: {e}", exe.display()));
    let stdout = String::from_utf8_lossy(&out.stdout);
    let json: serde_json::Value = serde_json::from_str(stdout.trim()).unwrap_or_else(|e| {
        panic!(
            "pkilint printed no JSON ({e}): {stdout}{}",
            String::from_utf8_lossy(&out.stderr)
        )
    });
    let mut errors = Vec::new();
    for result in json["results"].as_array().expect("results") {
        for d in result["finding_descriptions"].as_array().expect("findings") {
            let line = format!("{} {} @ {}", d["severity"], d["code"], result["node_path"]);
            println!("pkilint {name}: {line} {}", d["message"]);
            if matches!(d["severity"].as_str(), Some("ERROR" | "FATAL")) {
                errors.push(format!("{line} {}", d["message"]));
            }
        }
    }
    assert!(
        errors.is_empty(),
        "pkilint found errors in {name}: {errors:#?}"
    );
}

#[tokio::test]
async fn a_revoked_certificate_is_listed_on_exactly_its_shard_with_its_reason() {
    // A base URL that names no real host (pkilint refuses "localhost" and internal names like .test as URI hosts); requests
    // go to the listener's address instead.
    let ca = TestCa::start_with(|cfg| {
        cfg.crl.shards = 4;
        cfg.crl.poll_interval = "1s".into();
        cfg.crl.output_dir = cfg.server.data_dir.parent().map(|p| p.join("crl-out"));
        cfg.server.public_base_url = Some(PUBLIC_BASE.into());
    })
    .await;
    let base = PUBLIC_BASE;
    assert_eq!(ca.server.public_base_url, base);
    let local = format!("http://{}", ca.server.public_addr);
    let at = |url: &str| url.replacen(base, &local, 1);
    let account = ca.account().await;
    let (pem, _) = ca
        .issue(
            &account,
            &[Identifier::Dns("crl.example.com".into())],
            ChallengeType::Http01,
        )
        .await;
    let chain = common::pem_chain(&pem);
    let leaf = chain[0].clone();
    let info = cairn_x509::CertInfo::from_der(&leaf).unwrap();
    let int_id = short_id(&ca_file(&ca, "intermediate.pem"));
    let dp = common::crl_dp(&leaf);
    let prefix = format!("{base}/crl/{int_id}/");
    assert!(dp.starts_with(&prefix) && dp.ends_with(".crl"), "{dp}");
    let shard: u32 = dp[prefix.len()..dp.len() - 4].parse().unwrap();
    assert!(shard < 4, "{dp}");
    // The intermediate names the root's CRL and certificate.
    let root_id = short_id(&ca_file(&ca, "root.pem"));
    assert_eq!(
        common::crl_dp(&chain[1]),
        format!("{base}/crl/{root_id}/0.crl")
    );

    account
        .revoke(&RevocationRequest {
            certificate: &CertificateDer::from(leaf.clone()),
            reason: Some(instant_acme::RevocationReason::CessationOfOperation),
        })
        .await
        .unwrap();
    let listed = |body: &[u8]| crl_entries(body).0.iter().any(|(s, _)| *s == info.serial);
    let crl = fetch_until(&at(&dp), listed).await;
    let (entries, idp) = crl_entries(&crl);
    assert_eq!(idp.as_deref(), Some(dp.as_str()), "IDP names the CDP URL");
    assert_eq!(
        entries,
        vec![(info.serial.clone(), 5)],
        "cessationOfOperation"
    );

    let tmp = tempfile::tempdir().unwrap();
    let int_pem = ca.server.root_path.with_file_name("intermediate.pem");
    for s in 0..4u32 {
        let url = format!("{prefix}{s}.crl");
        let body = fetch_until(&at(&url), |_| true).await;
        let (entries, idp) = crl_entries(&body);
        assert_eq!(idp.as_deref(), Some(url.as_str()));
        if s != shard {
            assert!(entries.is_empty(), "shard {s} lists {entries:?}");
        }
        openssl_verifies(&body, &int_pem, tmp.path(), &format!("shard{s}"));
        pkilint_crl(&body, "CRL", tmp.path(), &format!("shard{s}"));
    }
    // The files written for a CDN are the published CRLs (the newest may lag by one update).
    let written =
        std::fs::read(ca.dir.path().join(format!("crl-out/{int_id}/{shard}.crl"))).unwrap();
    assert!(crl_entries(&written).0.len() <= 1);
    let root_crl = fetch_until(&format!("{local}/crl/{root_id}/0.crl"), |_| true).await;
    assert_eq!(
        std::fs::read(ca.dir.path().join(format!("crl-out/{root_id}/0.crl"))).unwrap(),
        root_crl
    );
    openssl_verifies(&root_crl, &ca.server.root_path, tmp.path(), "root");
    pkilint_crl(&root_crl, "ARL", tmp.path(), "root");
    // Shards that do not exist, other issuers and junk names are 404.
    let client = reqwest::Client::new();
    for path in [
        format!("/crl/{int_id}/4.crl"),
        format!("/crl/{int_id}/x.crl"),
        format!("/crl/{int_id}/0"),
        "/crl/0000000000000000/0.crl".to_owned(),
    ] {
        let resp = client.get(format!("{local}{path}")).send().await.unwrap();
        assert_eq!(resp.status(), 404, "{path}");
    }
}

/// A CSR for `name` with an existing key.
fn csr_with_key(name: &str, key: &rcgen::KeyPair) -> Vec<u8> {
    let mut params = rcgen::CertificateParams::new(vec![name.to_owned()]).unwrap();
    params.distinguished_name = rcgen::DistinguishedName::new();
    params.serialize_request(key).unwrap().der().to_vec()
}

#[tokio::test]
async fn a_key_compromise_signed_with_the_key_blocks_it_for_later_csrs() {
    use aws_lc_rs::signature::{ECDSA_P256_SHA256_FIXED_SIGNING, EcdsaKeyPair};
    let ca = TestCa::start().await;
    let account = ca.account().await;
    let ids = [Identifier::Dns("compromised.example.com".into())];
    let (pem, key) = ca.issue(&account, &ids, ChallengeType::Http01).await;
    let leaf = common::pem_chain(&pem).remove(0);
    // Revoked with a request signed by the certificate's key (jwk, no account): proof of
    // possession, so the key is blocked. (An account's keyCompromise request only revokes.)
    let mut holder = common::raw::RawClient::new(ca.directory(), &ca.server.tls_root_path).await;
    holder.key =
        EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, &key.serialize_der()).unwrap();
    let resp = holder
        .post(
            &holder.url("revokeCert"),
            Some(&serde_json::json!({"certificate": common::raw::b64(&leaf), "reason": 1})),
        )
        .await;
    assert_eq!(resp.status(), 200, "{:?}", resp.text().await);
    let mut order = account
        .new_order(&instant_acme::NewOrder::new(&ids))
        .await
        .unwrap();
    assert_eq!(
        ca.authorize(&mut order, ChallengeType::Http01).await,
        instant_acme::OrderStatus::Ready
    );
    let err = order
        .finalize_csr(&csr_with_key("compromised.example.com", &key))
        .await
        .expect_err("a blocked key is refused");
    assert!(format!("{err:?}").contains("badPublicKey"), "{err:?}");
    // A fresh key still works.
    let (csr, _) = common::csr_for(&ids);
    order.finalize_csr(&csr).await.expect("a fresh key is fine");
}

fn cairn_admin(ca: &TestCa, args: &[&str]) -> (bool, String, String) {
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_cairn"))
        .arg("admin")
        .args(args)
        .arg("--data-dir")
        .arg(ca.dir.path().join("data"))
        .output()
        .unwrap();
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[tokio::test]
async fn admin_revoke_from_another_process_reaches_the_servers_crls() {
    let ca = TestCa::start_with(|cfg| {
        cfg.crl.shards = 2;
        cfg.crl.poll_interval = "1s".into();
    })
    .await;
    let account = ca.account().await;
    let mut leaves = Vec::new();
    for name in [
        "a.admin.example.com",
        "b.admin.example.com",
        "c.admin.example.com",
    ] {
        let (pem, _) = ca
            .issue(
                &account,
                &[Identifier::Dns(name.into())],
                ChallengeType::Http01,
            )
            .await;
        leaves.push(common::pem_chain(&pem).remove(0));
    }
    let serial = |der: &[u8]| {
        let s = cairn_x509::CertInfo::from_der(der).unwrap().serial;
        s.iter().map(|b| format!("{b:02x}")).collect::<String>()
    };
    let serials: Vec<String> = leaves.iter().map(|l| serial(l)).collect();

    let (ok, _, err) = cairn_admin(
        &ca,
        &["revoke", "--serial", &serials[0], "--reason", "bogus"],
    );
    assert!(
        !ok && err.lines().count() == 1 && err.contains("--reason"),
        "{err}"
    );

    let (ok, out, err) = cairn_admin(&ca, &["revoke", "--serial", &serials[0], "--dry-run"]);
    assert!(ok, "{err}");
    assert!(
        out.contains("1 to revoke") && out.contains("dry run"),
        "{out}"
    );
    // The dry run changed nothing: the real run still has it to revoke.
    let (ok, out, err) = cairn_admin(
        &ca,
        &["revoke", "--serial", &serials[0], "--reason", "superseded"],
    );
    assert!(ok, "{err}");
    assert!(
        out.contains("1 to revoke") && out.contains("revoked 1 "),
        "{out}"
    );

    let file = ca.dir.path().join("serials.txt");
    std::fs::write(
        &file,
        format!(
            "# to revoke\n{}\n\n{}\n{}\n00ff00ff\n",
            serials[0], serials[1], serials[2]
        ),
    )
    .unwrap();
    let (ok, out, err) = cairn_admin(
        &ca,
        &[
            "revoke",
            "--serials-file",
            file.to_str().unwrap(),
            "--reason",
            "4",
        ],
    );
    assert!(ok, "{err}");
    assert!(
        out.contains("2 to revoke")
            && out.contains("1 already revoked")
            && out.contains("1 not found"),
        "{out}"
    );
    assert!(err.contains("not found: serial 00ff00ff"), "{err}");

    // The running server notices the other process's revocations (revocation epoch polling).
    let local = format!("http://{}", ca.server.public_addr);
    let int_id = short_id(&ca_file(&ca, "intermediate.pem"));
    let wanted: Vec<Vec<u8>> = leaves
        .iter()
        .map(|l| cairn_x509::CertInfo::from_der(l).unwrap().serial)
        .collect();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(15);
    loop {
        let mut listed = Vec::new();
        for shard in 0..2 {
            let body = fetch_until(&format!("{local}/crl/{int_id}/{shard}.crl"), |_| true).await;
            listed.extend(crl_entries(&body).0);
        }
        if wanted
            .iter()
            .all(|w| listed.iter().any(|(s, r)| s == w && *r == 4))
        {
            break;
        }
        assert!(std::time::Instant::now() < deadline, "CRLs list {listed:?}");
        tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    }

    let (ok, out, err) = cairn_admin(&ca, &["crl"]);
    assert!(ok, "{err}");
    assert!(out.contains("3 CRL(s), 3 entries, 0 stale"), "{out}");
    assert!(out.contains(&int_id) && out.contains("fresh"), "{out}");
}

#[tokio::test]
async fn admin_revoke_by_key_blocks_the_key_and_revokes_its_certificates() {
    let ca = TestCa::start().await;
    let account = ca.account().await;
    let ids = [Identifier::Dns("key.admin.example.com".into())];
    let (pem, key) = ca.issue(&account, &ids, ChallengeType::Http01).await;
    let pem_file = ca.dir.path().join("leaf.pem");
    std::fs::write(&pem_file, &pem).unwrap();
    let (ok, out, err) = cairn_admin(
        &ca,
        &[
            "revoke",
            "--key",
            pem_file.to_str().unwrap(),
            "--reason",
            "keyCompromise",
        ],
    );
    assert!(ok, "{err}");
    assert!(out.contains("revoked 1 "), "{out}");
    let mut order = account
        .new_order(&instant_acme::NewOrder::new(&ids))
        .await
        .unwrap();
    ca.authorize(&mut order, ChallengeType::Http01).await;
    let err = order
        .finalize_csr(&csr_with_key("key.admin.example.com", &key))
        .await
        .expect_err("blocked key");
    assert!(format!("{err:?}").contains("badPublicKey"), "{err:?}");
}
