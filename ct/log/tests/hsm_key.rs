//! A log whose RFC 6962 key is in an HSM (SoftHSM2 in a temporary token directory): its SCTs and
//! checkpoints verify with the HSM key's public key, and no key file is written. The body runs
//! in a child process started with `SOFTHSM2_CONF` (the module reads it once, at initialization).
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use cairn_ct::CtServer;
use cairn_hsm::softhsm::{self, SoftHsm};
use cairn_hsm::{AuthPin, Pkcs11KeyConfig, generate_key_pair, open_session};
use cairn_pki::KeyAlgorithm;
use common::verifier::{self, verify_sct, x509_signed_entry};
use common::{
    ORIGIN, Pki, base_url, chain_body, client, get_checkpoint, log_config, server_config,
};
use std::path::PathBuf;
use std::time::{Duration, Instant};

const TOKEN: &str = "cairn-ct";
const PIN: &str = "2468";
const PIN_ENV: &str = "CAIRN_TEST_CT_HSM_PIN";
const MODULE_ENV: &str = "CAIRN_TEST_HSM_MODULE";

#[tokio::test]
async fn scts_and_checkpoints_are_signed_by_the_hsm_key() {
    if !softhsm::in_child() {
        if cairn_test_services::program("softhsm2-util").is_none() {
            return;
        }
        let dir = tempfile::tempdir().unwrap();
        let hsm = SoftHsm::create(dir.path()).unwrap();
        hsm.init_token(TOKEN, PIN).unwrap();
        let module = hsm.module().display().to_string();
        softhsm::run_in_child(
            "scts_and_checkpoints_are_signed_by_the_hsm_key",
            &hsm,
            &[(PIN_ENV, PIN), (MODULE_ENV, &module)],
        );
        return;
    }
    let module = PathBuf::from(std::env::var(MODULE_ENV).unwrap());
    let session = open_session(&module, TOKEN, &AuthPin::new(PIN.into())).unwrap();
    let spki = generate_key_pair(&session, KeyAlgorithm::EcdsaP256, "ct-2030", &[7]).unwrap();

    let dir = tempfile::tempdir().unwrap();
    let pki = Pki::new();
    let mut cfg = log_config(dir.path(), &pki);
    cfg.key_pkcs11 = Some(Pkcs11KeyConfig {
        module,
        token_label: TOKEN.into(),
        pin_env: Some(PIN_ENV.into()),
        pin_file: None,
        key_label: Some("ct-2030".into()),
        key_id: None,
        sessions: 4,
    });
    let server = CtServer::start(&server_config(cfg.clone())).await.unwrap();
    assert_eq!(server.logs()[0].public_key_der(), spki.as_slice());
    let base = base_url(server.local_addr());
    let c = client();

    let leaf = pki.leaf("hsm.example", (2030, 6, 1), false, false);
    let r = c
        .post(format!("{base}/ct/v1/add-chain"))
        .json(&chain_body(&pki.chain(&leaf, false)))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let sct: serde_json::Value = r.json().await.unwrap();
    verify_sct(&sct, &spki, 0, &x509_signed_entry(&leaf.der));

    // The checkpoint that includes it, signed by the same key.
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let note = get_checkpoint(&c, &base).await;
        if verifier::verify_checkpoint(&note, ORIGIN, &spki).size >= 1 {
            break;
        }
        assert!(Instant::now() < deadline, "no checkpoint of size 1: {note}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(
        !cfg.key_file.exists(),
        "an RFC 6962 key file was written beside the HSM key"
    );
}
