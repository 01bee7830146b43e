//! Account keys generated once per test run, and a minimal JWS signer, for the crate's tests.

use crate::base64url;
use crate::jwk::Jwk;
use crate::jws::JwsAlg;
use aws_lc_rs::rand::SystemRandom;
use aws_lc_rs::rsa::KeySize;
use aws_lc_rs::signature::{
    ECDSA_P256_SHA256_FIXED_SIGNING, ECDSA_P384_SHA384_FIXED_SIGNING,
    ECDSA_P521_SHA512_FIXED_SIGNING, EcdsaKeyPair, Ed25519KeyPair, KeyPair, RSA_PKCS1_SHA256,
    RsaKeyPair,
};
use serde_json::{Value, json};
use std::sync::LazyLock;

static RSA: LazyLock<RsaKeyPair> =
    LazyLock::new(|| RsaKeyPair::generate(KeySize::Rsa2048).expect("RSA keygen"));
static P256: LazyLock<EcdsaKeyPair> = LazyLock::new(|| {
    EcdsaKeyPair::generate(&ECDSA_P256_SHA256_FIXED_SIGNING).expect("P-256 keygen")
});
static P384: LazyLock<EcdsaKeyPair> = LazyLock::new(|| {
    EcdsaKeyPair::generate(&ECDSA_P384_SHA384_FIXED_SIGNING).expect("P-384 keygen")
});
static P521: LazyLock<EcdsaKeyPair> = LazyLock::new(|| {
    EcdsaKeyPair::generate(&ECDSA_P521_SHA512_FIXED_SIGNING).expect("P-521 keygen")
});
static ED25519: LazyLock<Ed25519KeyPair> =
    LazyLock::new(|| Ed25519KeyPair::generate().expect("Ed25519 keygen"));

/// One generated key of each supported kind.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum TestKey {
    Rsa2048,
    P256,
    P384,
    P521,
    Ed25519,
}

impl TestKey {
    pub(crate) fn all() -> [TestKey; 5] {
        [
            TestKey::Rsa2048,
            TestKey::P256,
            TestKey::P384,
            TestKey::P521,
            TestKey::Ed25519,
        ]
    }

    pub(crate) fn alg(self) -> JwsAlg {
        match self {
            TestKey::Rsa2048 => JwsAlg::Rs256,
            TestKey::P256 => JwsAlg::Es256,
            TestKey::P384 => JwsAlg::Es384,
            TestKey::P521 => JwsAlg::Es512,
            TestKey::Ed25519 => JwsAlg::EdDsa,
        }
    }

    pub(crate) fn jwk(self) -> Jwk {
        let value = match self {
            TestKey::Rsa2048 => {
                let public = RSA.public_key();
                json!({
                    "kty": "RSA",
                    "n": base64url::encode(public.modulus().big_endian_without_leading_zero()),
                    "e": base64url::encode(public.exponent().big_endian_without_leading_zero()),
                })
            }
            TestKey::P256 => ec_jwk("P-256", &P256),
            TestKey::P384 => ec_jwk("P-384", &P384),
            TestKey::P521 => ec_jwk("P-521", &P521),
            TestKey::Ed25519 => json!({
                "kty": "OKP",
                "crv": "Ed25519",
                "x": base64url::encode(ED25519.public_key().as_ref()),
            }),
        };
        Jwk::from_value(&value).expect("generated key parses")
    }

    pub(crate) fn sign(self, msg: &[u8]) -> Vec<u8> {
        let rng = SystemRandom::new();
        match self {
            TestKey::Rsa2048 => {
                let mut sig = vec![0u8; RSA.public_modulus_len()];
                RSA.sign(&RSA_PKCS1_SHA256, &rng, msg, &mut sig)
                    .expect("RSA sign");
                sig
            }
            TestKey::P256 => P256.sign(&rng, msg).expect("sign").as_ref().to_vec(),
            TestKey::P384 => P384.sign(&rng, msg).expect("sign").as_ref().to_vec(),
            TestKey::P521 => P521.sign(&rng, msg).expect("sign").as_ref().to_vec(),
            TestKey::Ed25519 => ED25519.sign(msg).as_ref().to_vec(),
        }
    }
}

fn ec_jwk(crv: &str, pair: &EcdsaKeyPair) -> Value {
    let point = pair.public_key().as_ref();
    let len = (point.len() - 1) / 2;
    json!({
        "kty": "EC",
        "crv": crv,
        "x": base64url::encode(&point[1..1 + len]),
        "y": base64url::encode(&point[1 + len..]),
    })
}

/// A flattened JWS with the given header, payload and (raw) signature.
pub(crate) fn flattened(header: &Value, payload: &[u8], sig: &[u8]) -> Vec<u8> {
    json!({
        "protected": base64url::encode(header.to_string()),
        "payload": base64url::encode(payload),
        "signature": base64url::encode(sig),
    })
    .to_string()
    .into_bytes()
}

/// A flattened JWS over `header` and `payload`, signed by `key`.
pub(crate) fn sign_jws(key: TestKey, header: &Value, payload: &[u8]) -> Vec<u8> {
    let protected = base64url::encode(header.to_string());
    let payload = base64url::encode(payload);
    let sig = key.sign(format!("{protected}.{payload}").as_bytes());
    json!({"protected": protected, "payload": payload, "signature": base64url::encode(sig)})
        .to_string()
        .into_bytes()
}
