//! The ACME router in-process over a real RA on `cairn-api`'s fakes, and a small ACME client
//! that signs its requests (ES256) and sends them with `tower::ServiceExt::oneshot`: no socket,
//! no database, no DNS.

// Each test file uses its own part of the harness.
#![allow(dead_code)]

use aws_lc_rs::rand::SystemRandom;
use aws_lc_rs::signature::{ECDSA_P256_SHA256_FIXED_SIGNING, EcdsaKeyPair, KeyPair};
use axum::Router;
use axum::body::Body;
use axum::http::{HeaderMap, Method, Request, StatusCode, header};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;
use cairn_api::fake::{FakeIssuer, MemoryStorage, ScriptedValidation};
use cairn_api::{CertificateIssuer, RegistrationAuthority, StorageAuthority, ValidationAuthority};
use cairn_core::FixedClock;
use cairn_ra::{Ra, RaConfig};
use cairn_ratelimit::{MemoryStore, RateLimitConfig, RateLimiter};
use cairn_wfe::WfeConfig;
use serde_json::{Value, json};
use std::sync::Arc;
use time::OffsetDateTime;
use time::macros::datetime;
use tower::ServiceExt;

/// The base URL the front end is configured with.
pub(crate) const BASE: &str = "https://ca.test";

/// When every test starts.
pub(crate) const T0: OffsetDateTime = datetime!(2026-03-02 09:00 UTC);

/// The ACME API over a real RA and the fakes behind it.
pub(crate) struct Acme {
    router: Router,
    pub(crate) va: Arc<ScriptedValidation>,
    pub(crate) issuer: Arc<FakeIssuer>,
    pub(crate) sa: MemoryStorage,
}

/// One HTTP answer, read whole.
#[derive(Debug)]
pub(crate) struct Reply {
    pub(crate) status: StatusCode,
    pub(crate) headers: HeaderMap,
    pub(crate) body: Vec<u8>,
}

impl Reply {
    pub(crate) fn json(&self) -> Value {
        serde_json::from_slice(&self.body)
            .unwrap_or_else(|e| panic!("not JSON ({e}): {}", String::from_utf8_lossy(&self.body)))
    }

    pub(crate) fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }

    /// The `type` of a problem document, after checking it is one.
    pub(crate) fn problem_type(&self) -> String {
        assert_eq!(
            self.header("content-type"),
            Some("application/problem+json"),
            "{self:?}"
        );
        let doc = self.json();
        assert_eq!(doc["status"], self.status.as_u16(), "{doc}");
        doc["type"].as_str().unwrap().to_owned()
    }

    pub(crate) fn location(&self) -> String {
        self.header("location").unwrap().to_owned()
    }
}

/// An ACME client key, and the account URL once it has one.
pub(crate) struct Client {
    key: EcdsaKeyPair,
    pub(crate) kid: Option<String>,
}

impl Client {
    pub(crate) fn new() -> Client {
        let key = EcdsaKeyPair::generate(&ECDSA_P256_SHA256_FIXED_SIGNING).unwrap();
        Client { key, kid: None }
    }

    /// The public key as a JWK.
    pub(crate) fn jwk(&self) -> Value {
        let point = self.key.public_key().as_ref();
        json!({
            "kty": "EC",
            "crv": "P-256",
            "x": B64.encode(&point[1..33]),
            "y": B64.encode(&point[33..65]),
        })
    }

    /// The RFC 7638 thumbprint of [`Client::jwk`].
    pub(crate) fn thumbprint(&self) -> String {
        cairn_acme::Jwk::from_value(&self.jwk())
            .unwrap()
            .thumbprint()
    }

    /// A flattened JWS of `payload` (`None`: POST-as-GET) for `url`, naming the key by `kid`
    /// when the client has an account, else embedding the JWK.
    pub(crate) fn sign(&self, url: &str, nonce: &str, payload: Option<&Value>) -> Vec<u8> {
        let mut protected = json!({"alg": "ES256", "nonce": nonce, "url": url});
        match &self.kid {
            Some(kid) => protected["kid"] = json!(kid),
            None => protected["jwk"] = self.jwk(),
        }
        let payload = payload.map_or(String::new(), |p| B64.encode(p.to_string()));
        self.flattened(&protected, payload).to_string().into_bytes()
    }

    /// The inner JWS of a key change (RFC 8555 §7.3.5) to this client's key, for the account
    /// `kid` whose key is now `old_jwk`: signed by this key, embedding it, no nonce.
    pub(crate) fn key_change_inner(&self, kid: &str, old_jwk: &Value) -> Value {
        let url = format!("{BASE}/acme/key-change");
        let protected = json!({"alg": "ES256", "jwk": self.jwk(), "url": url});
        let payload = B64.encode(json!({"account": kid, "oldKey": old_jwk}).to_string());
        self.flattened(&protected, payload)
    }

    /// A flattened JWS of the encoded `payload` under `protected`, signed by this key.
    fn flattened(&self, protected: &Value, payload: String) -> Value {
        let protected = B64.encode(protected.to_string());
        let signature = self
            .key
            .sign(
                &SystemRandom::new(),
                format!("{protected}.{payload}").as_bytes(),
            )
            .unwrap();
        json!({
            "protected": protected,
            "payload": payload,
            "signature": B64.encode(signature.as_ref()),
        })
    }
}

impl Acme {
    pub(crate) fn new() -> Acme {
        Self::fronts(&[None]).pop().unwrap()
    }

    /// Several front ends (WFEs) over one RA and one set of fakes, as a split deployment runs
    /// them behind a load balancer: each gets its own nonce source (`None`: its own in-process
    /// nonces).
    pub(crate) fn fronts(nonces: &[Option<Arc<dyn cairn_api::NonceService>>]) -> Vec<Acme> {
        Self::fronts_with(nonces, WfeConfig::default())
    }

    /// [`Acme::fronts`] with `config` (its `base_url` set to [`BASE`]).
    pub(crate) fn fronts_with(
        nonces: &[Option<Arc<dyn cairn_api::NonceService>>],
        config: WfeConfig,
    ) -> Vec<Acme> {
        let clock = Arc::new(FixedClock::new(T0));
        let sa = MemoryStorage::new();
        let va = Arc::new(ScriptedValidation::new());
        let issuer = Arc::new(FakeIssuer::new(T0).unwrap());
        let limiter =
            RateLimiter::new(&RateLimitConfig::default(), Arc::new(MemoryStore::new())).unwrap();
        let ra = Ra::new(
            Arc::new(sa.clone()) as Arc<dyn StorageAuthority>,
            va.clone() as Arc<dyn ValidationAuthority>,
            issuer.clone() as Arc<dyn CertificateIssuer>,
            limiter,
            clock,
            RaConfig::default(),
        );
        let config = WfeConfig {
            base_url: Some(BASE.into()),
            ..config
        };
        let ra: Arc<dyn RegistrationAuthority> = Arc::new(ra);
        nonces
            .iter()
            .map(|n| Acme {
                router: match n {
                    Some(n) => cairn_wfe::router_with_nonces(ra.clone(), config.clone(), n.clone()),
                    None => cairn_wfe::router(ra.clone(), config.clone()),
                },
                va: va.clone(),
                issuer: issuer.clone(),
                sa: sa.clone(),
            })
            .collect()
    }

    /// Sends `req` through the router.
    pub(crate) async fn send(&self, req: Request<Body>) -> Reply {
        let resp = self.router.clone().oneshot(req).await.unwrap();
        let (parts, body) = resp.into_parts();
        let body = axum::body::to_bytes(body, usize::MAX).await.unwrap();
        Reply {
            status: parts.status,
            headers: parts.headers,
            body: body.to_vec(),
        }
    }

    pub(crate) async fn request(&self, method: Method, path: &str) -> Reply {
        let req = Request::builder()
            .method(method)
            .uri(path)
            .body(Body::empty())
            .unwrap();
        self.send(req).await
    }

    /// A fresh nonce from newNonce.
    pub(crate) async fn nonce(&self) -> String {
        let reply = self.request(Method::HEAD, "/acme/new-nonce").await;
        reply.header("replay-nonce").unwrap().to_owned()
    }

    /// POSTs `body` to `path` as `application/jose+json`.
    pub(crate) async fn post_raw(&self, path: &str, body: Vec<u8>) -> Reply {
        let req = Request::builder()
            .method(Method::POST)
            .uri(path)
            .header(header::CONTENT_TYPE, "application/jose+json")
            .body(Body::from(body))
            .unwrap();
        self.send(req).await
    }

    /// POSTs `payload` (`None`: POST-as-GET) to `url` (absolute, under [`BASE`]), signed by
    /// `client` with a fresh nonce.
    pub(crate) async fn post(&self, client: &Client, url: &str, payload: Option<&Value>) -> Reply {
        let path = url.strip_prefix(BASE).unwrap_or(url);
        let body = client.sign(url, &self.nonce().await, payload);
        self.post_raw(path, body).await
    }

    /// Creates an account for `client` and remembers its URL.
    pub(crate) async fn new_account(&self, client: &mut Client) -> Reply {
        let reply = self
            .post(
                client,
                &format!("{BASE}/acme/new-acct"),
                Some(&json!({"termsOfServiceAgreed": true, "contact": ["mailto:a@cairn-ca.net"]})),
            )
            .await;
        assert_eq!(reply.status, StatusCode::CREATED, "{:?}", reply.json());
        client.kid = Some(reply.location());
        reply
    }
}

/// A CSR for DNS `names` with a fresh key.
pub(crate) fn csr(names: &[&str]) -> Vec<u8> {
    let key = rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).unwrap();
    let mut params =
        rcgen::CertificateParams::new(names.iter().map(|s| s.to_string()).collect::<Vec<_>>())
            .unwrap();
    params.distinguished_name = rcgen::DistinguishedName::new();
    params.serialize_request(&key).unwrap().der().to_vec()
}

/// base64url without padding, as ACME carries DER.
pub(crate) fn b64(der: &[u8]) -> String {
    B64.encode(der)
}
