//! JWS verification per algorithm: Cairn's parse + verify of a whole request body next to the
//! raw aws-lc-rs signature check it wraps. `cargo bench -p cairn-acme`.
#![allow(clippy::unwrap_used, clippy::expect_used)] // benchmark set-up

use aws_lc_rs::rand::SystemRandom;
use aws_lc_rs::rsa::KeySize;
use aws_lc_rs::signature::{
    self, ECDSA_P256_SHA256_FIXED_SIGNING, ECDSA_P384_SHA384_FIXED_SIGNING, EcdsaKeyPair,
    Ed25519KeyPair, KeyPair, RSA_PKCS1_SHA256, RsaKeyPair, UnparsedPublicKey,
};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;
use cairn_acme::ParsedJws;
use serde_json::{Value, json};

fn main() {
    divan::main();
}

const ALGS: [&str; 4] = ["ES256", "ES384", "RS256", "EdDSA"];

/// A signed newOrder-like request body, the signing input, the signature and the public key in
/// the form aws-lc-rs verifies.
struct Signed {
    body: Vec<u8>,
    signing_input: Vec<u8>,
    signature: Vec<u8>,
    public_key: Vec<u8>,
    raw_alg: &'static dyn signature::VerificationAlgorithm,
}

/// A signing closure.
type Signer = Box<dyn Fn(&[u8]) -> Vec<u8>>;
/// What a key gives a benchmark: its JWK, its raw public key, a signer, the raw verifier.
type KeyParts = (
    Value,
    Vec<u8>,
    Signer,
    &'static dyn signature::VerificationAlgorithm,
);

fn b64(b: &[u8]) -> String {
    B64.encode(b)
}

fn signed(alg: &str) -> Signed {
    let rng = SystemRandom::new();
    let (jwk, public_key, sign, raw_alg): KeyParts = match alg {
        "ES256" | "ES384" => {
            let (signing, verify, crv, n): (
                _,
                &'static dyn signature::VerificationAlgorithm,
                _,
                _,
            ) = if alg == "ES256" {
                (
                    &ECDSA_P256_SHA256_FIXED_SIGNING,
                    &signature::ECDSA_P256_SHA256_FIXED,
                    "P-256",
                    32,
                )
            } else {
                (
                    &ECDSA_P384_SHA384_FIXED_SIGNING,
                    &signature::ECDSA_P384_SHA384_FIXED,
                    "P-384",
                    48,
                )
            };
            let key = EcdsaKeyPair::generate(signing).unwrap();
            let point = key.public_key().as_ref().to_vec();
            let jwk = json!({"kty": "EC", "crv": crv, "x": b64(&point[1..=n]), "y": b64(&point[n + 1..])});
            let sign = Box::new(move |m: &[u8]| {
                key.sign(&SystemRandom::new(), m).unwrap().as_ref().to_vec()
            });
            (jwk, point, sign, verify)
        }
        "RS256" => {
            let key = RsaKeyPair::generate(KeySize::Rsa2048).unwrap();
            let components = key.public_key();
            let der = components.as_ref().to_vec();
            let (n, e) = rsa_components(&key);
            let jwk = json!({"kty": "RSA", "n": b64(&n), "e": b64(&e)});
            let sign = Box::new(move |m: &[u8]| {
                let mut sig = vec![0; key.public_modulus_len()];
                key.sign(&RSA_PKCS1_SHA256, &rng, m, &mut sig).unwrap();
                sig
            });
            (jwk, der, sign, &signature::RSA_PKCS1_2048_8192_SHA256)
        }
        _ => {
            let key = Ed25519KeyPair::generate().unwrap();
            let x = key.public_key().as_ref().to_vec();
            let jwk = json!({"kty": "OKP", "crv": "Ed25519", "x": b64(&x)});
            let sign = Box::new(move |m: &[u8]| key.sign(m).as_ref().to_vec());
            (jwk, x, sign, &signature::ED25519)
        }
    };
    let protected = json!({
        "alg": alg,
        "jwk": jwk,
        "nonce": "YWJjZGVmZ2hpamtsbW5vcA",
        "url": "https://ca.example/acme/new-order",
    });
    let payload = json!({"identifiers": [{"type": "dns", "value": "www.example.com"}]});
    let signing_input = format!(
        "{}.{}",
        b64(protected.to_string().as_bytes()),
        b64(payload.to_string().as_bytes())
    );
    let signature = sign(signing_input.as_bytes());
    let body = json!({
        "protected": b64(protected.to_string().as_bytes()),
        "payload": b64(payload.to_string().as_bytes()),
        "signature": b64(&signature),
    })
    .to_string()
    .into_bytes();
    Signed {
        body,
        signing_input: signing_input.into_bytes(),
        signature,
        public_key,
        raw_alg,
    }
}

/// The modulus and exponent of an RSA key, from its RSAPublicKey DER.
fn rsa_components(key: &RsaKeyPair) -> (Vec<u8>, Vec<u8>) {
    use aws_lc_rs::signature::RsaSubjectPublicKey;
    let public: &RsaSubjectPublicKey = key.public_key();
    let components: aws_lc_rs::rsa::PublicKeyComponents<Vec<u8>> = public.into();
    (components.n, components.e)
}

/// Cairn: parse the request body (JSON, base64url, header checks, JWK) and verify.
#[divan::bench(args = ALGS)]
fn cairn_parse_and_verify(bencher: divan::Bencher, alg: &str) {
    let s = signed(alg);
    bencher.bench(|| {
        let jws = ParsedJws::parse(divan::black_box(&s.body)).unwrap();
        let key = jws.jwk().unwrap().clone();
        jws.verify_with(&key).unwrap();
    });
}

/// Raw aws-lc-rs: the signature check alone.
#[divan::bench(args = ALGS)]
fn raw_verify(bencher: divan::Bencher, alg: &str) {
    let s = signed(alg);
    bencher.bench(|| {
        UnparsedPublicKey::new(s.raw_alg, &s.public_key)
            .verify(divan::black_box(&s.signing_input), &s.signature)
            .unwrap();
    });
}
