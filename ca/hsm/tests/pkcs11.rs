//! The PKCS#11 signer against SoftHSM2 in a temporary token directory. Each test sets up the
//! token in the parent and runs its body in a child process started with `SOFTHSM2_CONF` (the
//! module reads it once, at initialization).
#![allow(clippy::unwrap_used, clippy::expect_used)]

use cairn_hsm::AuthPin;
use cairn_hsm::softhsm::{self, SoftHsm};
use cairn_hsm::{HsmError, Pkcs11KeyConfig, Pkcs11Signer, generate_key_pair, open_session};
use cairn_pki::{ExternalSigner, KeyAlgorithm, verify_x509_signature};
use std::path::PathBuf;
use std::sync::Arc;

const TOKEN: &str = "cairn-test";
const PIN: &str = "1234";
const PIN_ENV: &str = "CAIRN_TEST_HSM_PIN";

/// In the parent: makes a token directory with one token and runs `test` in a child. Returns
/// false there (the body must not run). In the child: true.
fn in_softhsm(test: &str) -> bool {
    if softhsm::in_child() {
        return true;
    }
    if cairn_test_services::program("softhsm2-util").is_none() {
        return false;
    }
    let dir = tempfile::tempdir().unwrap();
    let hsm = SoftHsm::create(dir.path()).unwrap();
    hsm.init_token(TOKEN, PIN).unwrap();
    softhsm::run_in_child(
        test,
        &hsm,
        &[
            (PIN_ENV, PIN),
            ("CAIRN_TEST_HSM_MODULE", hsm.module().to_str().unwrap()),
        ],
    );
    false
}

fn module() -> PathBuf {
    PathBuf::from(std::env::var("CAIRN_TEST_HSM_MODULE").unwrap())
}

fn config(label: &str) -> Pkcs11KeyConfig {
    Pkcs11KeyConfig {
        module: module(),
        token_label: TOKEN.into(),
        pin_env: Some(PIN_ENV.into()),
        pin_file: None,
        key_label: Some(label.into()),
        key_id: None,
        sessions: 4,
    }
}

fn generate(alg: KeyAlgorithm, label: &str, id: &[u8]) -> Vec<u8> {
    let session = open_session(&module(), TOKEN, &AuthPin::new(PIN.into())).unwrap();
    generate_key_pair(&session, alg, label, id).unwrap()
}

fn signature_alg(alg: KeyAlgorithm) -> spki::AlgorithmIdentifierOwned {
    cairn_x509::SigningKey::generate(alg)
        .unwrap()
        .signature_algorithm()
}

#[test]
fn each_algorithm_signs_and_verifies() {
    if !in_softhsm("each_algorithm_signs_and_verifies") {
        return;
    }
    for (i, alg) in [
        KeyAlgorithm::EcdsaP256,
        KeyAlgorithm::EcdsaP384,
        KeyAlgorithm::Rsa2048,
    ]
    .into_iter()
    .enumerate()
    {
        let label = format!("key-{alg}");
        let spki = generate(alg, &label, &[i as u8 + 1]);
        assert_eq!(KeyAlgorithm::from_spki_der(&spki).unwrap(), alg);
        // By label, then by ID: the same key.
        let signer = Pkcs11Signer::open(&config(&label)).unwrap();
        let by_id = Pkcs11Signer::open(&Pkcs11KeyConfig {
            key_label: None,
            key_id: Some(hex::encode([i as u8 + 1])),
            ..config(&label)
        })
        .unwrap();
        assert_eq!(signer.spki_der(), spki.as_slice());
        assert_eq!(by_id.spki_der(), spki.as_slice());
        assert_eq!(signer.algorithm(), alg);

        let message = format!("to be signed by {alg}");
        let sig = signer.sign(message.as_bytes()).unwrap();
        let sig_alg = signature_alg(alg);
        let sig_alg_ref = spki::AlgorithmIdentifierRef {
            oid: sig_alg.oid,
            parameters: sig_alg.parameters.as_ref().map(Into::into),
        };
        assert!(
            verify_x509_signature(&spki, &sig_alg_ref, message.as_bytes(), &sig),
            "{alg} signature does not verify"
        );
        assert!(!verify_x509_signature(
            &spki,
            &sig_alg_ref,
            b"another message",
            &sig
        ));

        // Through the X.509 code: a self-signed CA certificate signed in the token.
        let key = cairn_x509::SigningKey::from_external(Arc::new(signer)).unwrap();
        assert!(key.to_pkcs8_der().is_err(), "an HSM key must not export");
        assert!(format!("{key:?}").contains("pkcs11:token=cairn-test"));
        let now = time::OffsetDateTime::now_utc();
        let root = cairn_x509::build_root_with(
            &key,
            "HSM Root",
            None,
            &cairn_x509::CaExtras::default(),
            now,
            now + time::Duration::days(10),
        )
        .unwrap();
        assert!(cairn_x509::is_signed_by(&root, &spki));
        assert!(cairn_x509::CaCertificate::new(root, key).is_ok());
    }
}

#[test]
fn wrong_pin_missing_key_and_bad_config_are_clear_errors() {
    if !in_softhsm("wrong_pin_missing_key_and_bad_config_are_clear_errors") {
        return;
    }
    generate(KeyAlgorithm::EcdsaP256, "present", &[9]);
    let pin_file = tempfile::NamedTempFile::new().unwrap();
    std::fs::write(pin_file.path(), "9999\n").unwrap();
    let wrong_pin = Pkcs11KeyConfig {
        pin_env: None,
        pin_file: Some(pin_file.path().to_path_buf()),
        ..config("present")
    };
    // Opening with the wrong PIN must not be saved by an earlier login of the same process:
    // this is the first login here.
    let err = Pkcs11Signer::open(&wrong_pin).unwrap_err();
    assert!(
        matches!(&err, HsmError::Login { error, .. } if error.contains("PIN is incorrect")),
        "{err}"
    );
    // The right PIN from a file works.
    std::fs::write(pin_file.path(), format!("{PIN}\n")).unwrap();
    let logged_in = Pkcs11Signer::open(&wrong_pin).unwrap();
    // While that signer keeps the token logged in, PKCS#11 answers "already logged in" to any
    // PIN: a second key of the token configured with a wrong PIN is still refused.
    std::fs::write(pin_file.path(), "9999\n").unwrap();
    let err = Pkcs11Signer::open(&wrong_pin).unwrap_err();
    assert!(
        matches!(&err, HsmError::Login { error, .. } if error.contains("PIN is incorrect")),
        "{err}"
    );
    std::fs::write(pin_file.path(), format!("{PIN}\n")).unwrap();
    Pkcs11Signer::open(&wrong_pin).unwrap();
    drop(logged_in);

    let err = Pkcs11Signer::open(&config("absent")).unwrap_err();
    assert!(
        matches!(&err, HsmError::Key { error, .. } if error.contains("no such private key")),
        "{err}"
    );
    assert!(err.to_string().contains("label=\"absent\""), "{err}");

    let err = Pkcs11Signer::open(&Pkcs11KeyConfig {
        token_label: "no-such-token".into(),
        ..config("present")
    })
    .unwrap_err();
    assert_eq!(err, HsmError::NoToken("no-such-token".into()));

    let err = Pkcs11Signer::open(&Pkcs11KeyConfig {
        pin_env: Some("CAIRN_TEST_HSM_PIN_UNSET".into()),
        ..config("present")
    })
    .unwrap_err();
    assert!(matches!(err, HsmError::Pin(ref m) if m.contains("CAIRN_TEST_HSM_PIN_UNSET")));

    let err = Pkcs11Signer::open(&Pkcs11KeyConfig {
        pin_file: Some("pin".into()),
        ..config("present")
    })
    .unwrap_err();
    assert!(matches!(err, HsmError::Config(ref m) if m.contains("only one")));

    let err = Pkcs11Signer::open(&Pkcs11KeyConfig {
        module: "/nonexistent/libpkcs11.so".into(),
        ..config("present")
    })
    .unwrap_err();
    assert!(matches!(err, HsmError::Module { .. }), "{err}");

    // Generating a second key under a label in use is refused.
    let session = open_session(&module(), TOKEN, &AuthPin::new(PIN.into())).unwrap();
    let err = generate_key_pair(&session, KeyAlgorithm::EcdsaP256, "present", &[10]).unwrap_err();
    assert!(err.to_string().contains("already exists"), "{err}");
}

#[test]
fn the_session_pool_signs_in_parallel() {
    if !in_softhsm("the_session_pool_signs_in_parallel") {
        return;
    }
    let spki = generate(KeyAlgorithm::EcdsaP256, "pool", &[20]);
    let signer = Arc::new(Pkcs11Signer::open(&config("pool")).unwrap());
    let single = Arc::new(
        Pkcs11Signer::open(&Pkcs11KeyConfig {
            sessions: 1,
            ..config("pool")
        })
        .unwrap(),
    );
    let alg = signature_alg(KeyAlgorithm::EcdsaP256);
    for s in [&signer, &single] {
        let threads: Vec<_> = (0..8)
            .map(|t| {
                let s = Arc::clone(s);
                std::thread::spawn(move || {
                    (0..40)
                        .map(|i| {
                            let msg = format!("thread {t} message {i}").into_bytes();
                            let sig = s.sign(&msg).unwrap();
                            (msg, sig)
                        })
                        .collect::<Vec<_>>()
                })
            })
            .collect();
        for t in threads {
            for (msg, sig) in t.join().unwrap() {
                let alg_ref = spki::AlgorithmIdentifierRef {
                    oid: alg.oid,
                    parameters: None,
                };
                assert!(verify_x509_signature(&spki, &alg_ref, &msg, &sig));
            }
        }
    }
    assert!(
        signer.max_parallel_signatures() > 1,
        "4 sessions, 8 threads: signatures never overlapped"
    );
    assert!(signer.max_parallel_signatures() <= 4);
    assert_eq!(single.max_parallel_signatures(), 1);
}
