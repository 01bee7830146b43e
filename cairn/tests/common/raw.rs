//! A deliberately low-level ACME client for wire tests: it signs whatever it is told to, so tests
#![allow(clippy::unwrap_used)] // test client: a failure is a test failure
//! can send malformed, replayed or mis-addressed requests.

use aws_lc_rs::rand::SystemRandom;
use aws_lc_rs::signature::{ECDSA_P256_SHA256_FIXED_SIGNING, EcdsaKeyPair, KeyPair};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;
use serde_json::{Value, json};

pub struct RawClient {
    pub http: reqwest::Client,
    pub directory: Value,
    pub key: EcdsaKeyPair,
    pub kid: Option<String>,
}

pub fn b64(data: &[u8]) -> String {
    B64.encode(data)
}

pub fn jwk_of(key: &EcdsaKeyPair) -> Value {
    let pubkey = key.public_key().as_ref();
    json!({
        "crv": "P-256",
        "kty": "EC",
        "x": b64(&pubkey[1..33]),
        "y": b64(&pubkey[33..65]),
    })
}

pub fn new_p256() -> EcdsaKeyPair {
    let rng = SystemRandom::new();
    let pkcs8 = EcdsaKeyPair::generate_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, &rng).unwrap();
    EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, pkcs8.as_ref()).unwrap()
}

/// Signs a flattened JWS with ES256; `payload` None means POST-as-GET.
pub fn sign(key: &EcdsaKeyPair, protected: &Value, payload: Option<&Value>) -> Value {
    let protected_b64 = b64(protected.to_string().as_bytes());
    let payload_b64 = payload
        .map(|p| b64(p.to_string().as_bytes()))
        .unwrap_or_default();
    let input = format!("{protected_b64}.{payload_b64}");
    let sig = key.sign(&SystemRandom::new(), input.as_bytes()).unwrap();
    json!({ "protected": protected_b64, "payload": payload_b64, "signature": b64(sig.as_ref()) })
}

impl RawClient {
    pub async fn new(directory_url: &str, root_pem_path: &std::path::Path) -> RawClient {
        let root = std::fs::read(root_pem_path).unwrap();
        let http = reqwest::Client::builder()
            .add_root_certificate(reqwest::Certificate::from_pem(&root).unwrap())
            .build()
            .unwrap();
        let directory = http
            .get(directory_url)
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        RawClient {
            http,
            directory,
            key: new_p256(),
            kid: None,
        }
    }

    pub fn url(&self, name: &str) -> String {
        self.directory[name].as_str().unwrap().to_owned()
    }

    pub async fn nonce(&self) -> String {
        let resp = self.http.head(self.url("newNonce")).send().await.unwrap();
        resp.headers()["replay-nonce"].to_str().unwrap().to_owned()
    }

    /// The protected header for `url`: kid if registered, else jwk.
    pub async fn header(&self, url: &str) -> Value {
        let mut h = json!({ "alg": "ES256", "nonce": self.nonce().await, "url": url });
        match &self.kid {
            Some(kid) => h["kid"] = json!(kid),
            None => h["jwk"] = jwk_of(&self.key),
        }
        h
    }

    pub async fn post_body(&self, url: &str, body: Vec<u8>) -> reqwest::Response {
        self.http
            .post(url)
            .header("content-type", "application/jose+json")
            .body(body)
            .send()
            .await
            .unwrap()
    }

    pub async fn post(&self, url: &str, payload: Option<&Value>) -> reqwest::Response {
        let header = self.header(url).await;
        let jws = sign(&self.key, &header, payload);
        self.post_body(url, jws.to_string().into_bytes()).await
    }

    /// Registers an account and remembers its URL as kid.
    pub async fn register(&mut self) -> String {
        let resp = self
            .post(
                &self.url("newAccount"),
                Some(&json!({"termsOfServiceAgreed": true})),
            )
            .await;
        assert_eq!(resp.status(), 201, "{:?}", resp.text().await);
        let loc = resp.headers()["location"].to_str().unwrap().to_owned();
        self.kid = Some(loc.clone());
        loc
    }
}

/// A new-account request at `at`, signed by a fresh key, carrying `nonce`.
pub async fn new_account_with_nonce(at: &RawClient, nonce: &str) -> reqwest::Response {
    let key = new_p256();
    let url = at.url("newAccount");
    let header = json!({ "alg": "ES256", "nonce": nonce, "url": url, "jwk": jwk_of(&key) });
    let jws = sign(
        &key,
        &header,
        Some(&json!({ "termsOfServiceAgreed": true })),
    );
    at.post_body(&url, jws.to_string().into_bytes()).await
}

/// Asserts a problem response of `typ` (the part after `urn:ietf:params:acme:error:`) and
/// `status`; returns the document.
pub async fn expect_problem(resp: reqwest::Response, status: u16, typ: &str) -> Value {
    assert_eq!(resp.status().as_u16(), status, "status");
    assert_eq!(
        resp.headers()["content-type"].to_str().unwrap(),
        "application/problem+json"
    );
    assert!(
        resp.headers().contains_key("replay-nonce"),
        "every response carries a nonce"
    );
    let doc: Value = resp.json().await.unwrap();
    assert_eq!(
        doc["type"].as_str().unwrap(),
        format!("urn:ietf:params:acme:error:{typ}"),
        "{doc}"
    );
    doc
}
