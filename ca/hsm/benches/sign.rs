//! Signatures per second: a key in SoftHSM2 through [`Pkcs11Signer`] (its session pool, and the
//! check of each signature against the public key, as `cairn serve` signs) next to the same
//! algorithm as a file key signing in process with aws-lc-rs. First the throughput (signatures
//! per second over 2 s, all threads together, on 1, 2 and 8 threads), then divan's latency per
//! signature (per thread). `cargo bench -p cairn-hsm --bench sign`.
//!
//! SoftHSM2 reads `SOFTHSM2_CONF` once, when the module is initialized, so the bench makes a
//! token directory of its own and runs itself again with that variable set.
#![allow(clippy::unwrap_used, clippy::expect_used)] // benchmark set-up

use cairn_hsm::softhsm::{self, SoftHsm};
use cairn_hsm::{AuthPin, Pkcs11KeyConfig, Pkcs11Signer, generate_key_pair, open_session};
use cairn_pki::{ExternalSigner, KeyAlgorithm};
use cairn_x509::SigningKey;
use std::path::PathBuf;
use std::sync::OnceLock;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

const TOKEN: &str = "cairn-bench";
const PIN: &str = "4711";
const PIN_ENV: &str = "CAIRN_BENCH_HSM_PIN";
const MODULE_ENV: &str = "CAIRN_BENCH_HSM_MODULE";
/// About the size of an end-entity certificate's TBSCertificate.
const MESSAGE: [u8; 1024] = [0x5a; 1024];

struct Keys {
    hsm_p256: Pkcs11Signer,
    hsm_rsa2048: Pkcs11Signer,
    file_p256: SigningKey,
    file_rsa2048: SigningKey,
}

static KEYS: OnceLock<Keys> = OnceLock::new();

fn keys() -> &'static Keys {
    KEYS.get()
        .expect("keys are set up before the benchmarks run")
}

fn main() {
    if !softhsm::in_child() {
        let dir = tempfile::tempdir().unwrap();
        let hsm = SoftHsm::create(dir.path()).expect("softhsm2 must be installed");
        hsm.init_token(TOKEN, PIN).unwrap();
        let status = std::process::Command::new(std::env::current_exe().unwrap())
            .args(std::env::args_os().skip(1))
            .env(softhsm::CONF_ENV, hsm.conf())
            .env(softhsm::CHILD_ENV, "1")
            .env(PIN_ENV, PIN)
            .env(MODULE_ENV, hsm.module())
            .status()
            .unwrap();
        std::process::exit(status.code().unwrap_or(1));
    }
    let module = PathBuf::from(std::env::var_os(MODULE_ENV).unwrap());
    let session = open_session(&module, TOKEN, &AuthPin::new(PIN.into())).unwrap();
    generate_key_pair(&session, KeyAlgorithm::EcdsaP256, "p256", &[1]).unwrap();
    generate_key_pair(&session, KeyAlgorithm::Rsa2048, "rsa2048", &[2]).unwrap();
    drop(session);
    let open = |label: &str| {
        Pkcs11Signer::open(&Pkcs11KeyConfig {
            module: module.clone(),
            token_label: TOKEN.into(),
            pin_env: Some(PIN_ENV.into()),
            pin_file: None,
            key_label: Some(label.into()),
            key_id: None,
            sessions: cairn_hsm::DEFAULT_SESSIONS,
        })
        .unwrap()
    };
    let keys = Keys {
        hsm_p256: open("p256"),
        hsm_rsa2048: open("rsa2048"),
        file_p256: SigningKey::generate(KeyAlgorithm::EcdsaP256).unwrap(),
        file_rsa2048: SigningKey::generate(KeyAlgorithm::Rsa2048).unwrap(),
    };
    assert!(KEYS.set(keys).is_ok());
    let keys = self::keys();
    let kinds: [(&str, &(dyn Fn() + Sync)); 4] = [
        ("hsm_ecdsa_p256", &|| {
            drop(keys.hsm_p256.sign(&MESSAGE).unwrap())
        }),
        ("file_ecdsa_p256", &|| {
            drop(keys.file_p256.sign(&MESSAGE).unwrap())
        }),
        ("hsm_rsa2048", &|| {
            drop(keys.hsm_rsa2048.sign(&MESSAGE).unwrap())
        }),
        ("file_rsa2048", &|| {
            drop(keys.file_rsa2048.sign(&MESSAGE).unwrap())
        }),
    ];
    println!("throughput, signatures/s (all threads, 2 s each)");
    for (name, sign) in kinds {
        let rates: Vec<String> = [1, 2, 8]
            .into_iter()
            .map(|threads| format!("t={threads} {:>8.0}", throughput(threads, sign)))
            .collect();
        println!("  {name:<16} {}", rates.join("   "));
    }
    divan::main();
}

/// Signatures per second by `threads` threads calling `sign` for 2 s.
fn throughput(threads: usize, sign: &(dyn Fn() + Sync)) -> f64 {
    let stop = AtomicBool::new(false);
    let count = AtomicU64::new(0);
    let start = Instant::now();
    std::thread::scope(|s| {
        for _ in 0..threads {
            s.spawn(|| {
                while !stop.load(Ordering::Relaxed) {
                    sign();
                    count.fetch_add(1, Ordering::Relaxed);
                }
            });
        }
        std::thread::sleep(Duration::from_secs(2));
        stop.store(true, Ordering::Relaxed);
    });
    count.load(Ordering::Relaxed) as f64 / start.elapsed().as_secs_f64()
}

#[divan::bench(threads = [1, 2, 8])]
fn hsm_ecdsa_p256() -> Vec<u8> {
    keys().hsm_p256.sign(divan::black_box(&MESSAGE)).unwrap()
}

#[divan::bench(threads = [1, 2, 8])]
fn file_ecdsa_p256() -> Vec<u8> {
    keys().file_p256.sign(divan::black_box(&MESSAGE)).unwrap()
}

#[divan::bench(threads = [1, 2, 8])]
fn hsm_rsa2048() -> Vec<u8> {
    keys().hsm_rsa2048.sign(divan::black_box(&MESSAGE)).unwrap()
}

#[divan::bench(threads = [1, 2, 8])]
fn file_rsa2048() -> Vec<u8> {
    keys()
        .file_rsa2048
        .sign(divan::black_box(&MESSAGE))
        .unwrap()
}
