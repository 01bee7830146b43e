//! A minimal ACME client (RFC 8555) for load generation: ES256 account keys signed with aws-lc-rs,
//! one nonce carried from response to response, and every request timed per endpoint. It refuses
//! to follow any URL outside the directory's origin, so it only talks to the server it was given.

use crate::stats::{Endpoint, Stats};
use aws_lc_rs::digest;
use aws_lc_rs::rand::SystemRandom;
use aws_lc_rs::signature::{ECDSA_P256_SHA256_FIXED_SIGNING, EcdsaKeyPair, KeyPair};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;
use serde_json::{Value, json};
use std::collections::HashSet;
use std::sync::Arc;
use std::time::{Duration, Instant};
use url::Url;

/// How a request failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum FlowError {
    /// The server answered with an RFC 8555 problem document.
    #[error("{endpoint}: {status} {typ}: {detail}")]
    Problem {
        /// The endpoint that answered.
        endpoint: Endpoint,
        /// HTTP status.
        status: u16,
        /// The problem type without the `urn:ietf:params:acme:error:` prefix.
        typ: String,
        /// The problem's detail.
        detail: String,
    },
    /// The request could not be sent or the response not read.
    #[error("{endpoint}: transport error: {message}")]
    Transport {
        /// The endpoint.
        endpoint: Endpoint,
        /// What went wrong.
        message: String,
    },
    /// The server answered something RFC 8555 does not allow here.
    #[error("{endpoint}: unexpected response: {message}")]
    Unexpected {
        /// The endpoint.
        endpoint: Endpoint,
        /// What was wrong.
        message: String,
    },
    /// The server named a URL outside the directory's origin.
    #[error("{endpoint}: the server named {url}, outside the directory's origin; not following it")]
    ForeignUrl {
        /// The endpoint whose response named it.
        endpoint: Endpoint,
        /// The URL.
        url: String,
    },
    /// An order or authorization did not reach the wanted state in time.
    #[error("{0}: gave up waiting")]
    Timeout(Endpoint),
}

impl FlowError {
    /// The key errors are counted under in the summary: the problem type, or the kind of
    /// failure.
    pub fn kind(&self) -> String {
        match self {
            FlowError::Problem { typ, .. } => typ.clone(),
            FlowError::Transport { .. } => "transport".into(),
            FlowError::Unexpected { .. } => "unexpectedResponse".into(),
            FlowError::ForeignUrl { .. } => "foreignUrl".into(),
            FlowError::Timeout(_) => "timeout".into(),
        }
    }
}

/// What the directory names.
#[derive(Debug, Clone)]
pub(crate) struct Directory {
    pub(crate) new_nonce: Url,
    pub(crate) new_account: Url,
    pub(crate) new_order: Url,
    pub(crate) revoke_cert: Url,
}

/// One HTTP connection pool and the server's directory, shared by one worker's account.
#[derive(Debug, Clone)]
pub(crate) struct Server {
    http: reqwest::Client,
    origin: url::Origin,
    pub(crate) dir: Arc<Directory>,
    stats: Arc<Stats>,
}

/// A response's useful parts.
#[derive(Debug)]
pub(crate) struct Reply {
    pub(crate) status: u16,
    pub(crate) location: Option<String>,
    pub(crate) body: Vec<u8>,
}

impl Reply {
    pub(crate) fn json(&self, endpoint: Endpoint) -> Result<Value, FlowError> {
        serde_json::from_slice(&self.body).map_err(|e| FlowError::Unexpected {
            endpoint,
            message: format!("body is not JSON: {e}"),
        })
    }
}

/// How to trust the server's TLS certificate.
#[derive(Debug, Clone)]
pub enum Trust {
    /// The system's default verifier plus these PEM roots.
    Roots(Vec<u8>),
    /// Accept any certificate (loopback tests only).
    Insecure,
}

impl Server {
    /// Builds the HTTP client and fetches the directory.
    pub(crate) async fn connect(
        directory_url: &Url,
        trust: &Trust,
        stats: Arc<Stats>,
    ) -> Result<Server, FlowError> {
        let endpoint = Endpoint::Directory;
        let transport = |e: &dyn std::fmt::Display| FlowError::Transport {
            endpoint,
            message: e.to_string(),
        };
        // No proxies: the load must go only to the address given.
        // RFC 8555 §6.1: every ACME client sends a User-Agent (Pebble 2.10 refuses requests
        // without one).
        let mut builder = reqwest::Client::builder()
            .user_agent(concat!("cairn-loadgen/", env!("CARGO_PKG_VERSION")))
            .no_proxy()
            .timeout(Duration::from_secs(30))
            .pool_max_idle_per_host(4);
        match trust {
            Trust::Roots(pem) => {
                for cert in reqwest::Certificate::from_pem_bundle(pem).map_err(|e| transport(&e))? {
                    builder = builder.add_root_certificate(cert);
                }
            }
            Trust::Insecure => builder = builder.tls_danger_accept_invalid_certs(true),
        }
        let http = builder.build().map_err(|e| transport(&e))?;
        let mut server = Server {
            http,
            origin: directory_url.origin(),
            dir: Arc::new(Directory {
                new_nonce: directory_url.clone(),
                new_account: directory_url.clone(),
                new_order: directory_url.clone(),
                revoke_cert: directory_url.clone(),
            }),
            stats,
        };
        let reply = server.get(endpoint, directory_url.as_str()).await?;
        let doc = reply.json(endpoint)?;
        let url = |name: &str| -> Result<Url, FlowError> {
            let s = doc[name].as_str().ok_or_else(|| FlowError::Unexpected {
                endpoint,
                message: format!("the directory has no {name}"),
            })?;
            server.checked_url(endpoint, s)
        };
        let dir = Directory {
            new_nonce: url("newNonce")?,
            new_account: url("newAccount")?,
            new_order: url("newOrder")?,
            revoke_cert: url("revokeCert")?,
        };
        server.dir = Arc::new(dir);
        Ok(server)
    }

    /// Parses a URL the server named and refuses it unless it has the directory's origin.
    pub(crate) fn checked_url(&self, endpoint: Endpoint, s: &str) -> Result<Url, FlowError> {
        let foreign = || FlowError::ForeignUrl {
            endpoint,
            url: s.chars().take(200).collect(),
        };
        let url = Url::parse(s).map_err(|_| foreign())?;
        if url.origin() != self.origin {
            return Err(foreign());
        }
        Ok(url)
    }

    pub(crate) fn stats(&self) -> &Stats {
        &self.stats
    }

    async fn get(&self, endpoint: Endpoint, url: &str) -> Result<Reply, FlowError> {
        let started = Instant::now();
        let res = self.http.get(url).send().await;
        self.finish(endpoint, started, res).await.0
    }

    /// A fresh nonce from newNonce.
    pub(crate) async fn new_nonce(&self) -> Result<String, FlowError> {
        let endpoint = Endpoint::NewNonce;
        let started = Instant::now();
        let res = self.http.head(self.dir.new_nonce.as_str()).send().await;
        let (reply, nonce) = self.finish(endpoint, started, res).await;
        reply?;
        nonce.ok_or_else(|| FlowError::Unexpected {
            endpoint,
            message: "no Replay-Nonce".into(),
        })
    }

    /// Reads a response, records its latency, and turns problem documents into errors. The
    /// `Replay-Nonce` comes back either way (error responses carry fresh nonces too).
    async fn finish(
        &self,
        endpoint: Endpoint,
        started: Instant,
        res: reqwest::Result<reqwest::Response>,
    ) -> (Result<Reply, FlowError>, Option<String>) {
        let transport = |e: reqwest::Error| FlowError::Transport {
            endpoint,
            message: e.to_string(),
        };
        let resp = match res {
            Ok(r) => r,
            Err(e) => return (Err(transport(e)), None),
        };
        let status = resp.status().as_u16();
        self.stats.status(endpoint, status);
        let header = |name: &str| {
            resp.headers()
                .get(name)
                .and_then(|v| v.to_str().ok())
                .map(str::to_owned)
        };
        let nonce = header("replay-nonce");
        let location = header("location");
        let is_problem =
            header("content-type").is_some_and(|c| c.starts_with("application/problem+json"));
        let body = match resp.bytes().await {
            Ok(b) => b.to_vec(),
            Err(e) => return (Err(transport(e)), nonce),
        };
        self.stats.record(endpoint, started.elapsed());
        if is_problem || status >= 400 {
            let doc: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
            let typ = doc["type"]
                .as_str()
                .map(|t| {
                    t.strip_prefix("urn:ietf:params:acme:error:")
                        .unwrap_or(t)
                        .to_owned()
                })
                .unwrap_or_else(|| format!("http{status}"));
            let detail = doc["detail"].as_str().unwrap_or_default().to_owned();
            let err = FlowError::Problem {
                endpoint,
                status,
                typ,
                detail,
            };
            return (Err(err), nonce);
        }
        (
            Ok(Reply {
                status,
                location,
                body,
            }),
            nonce,
        )
    }
}

/// An ACME account: its key, its URL once registered, and the nonce in hand.
#[derive(Debug)]
pub(crate) struct Account {
    server: Server,
    key: EcdsaKeyPair,
    jwk: Value,
    thumbprint: String,
    kid: Option<String>,
    nonce: Option<String>,
    /// The dns-persist-01 records already published for this account (name, with a
    /// `*.` prefix for a wildcard policy): they stand, so a renewal publishes nothing.
    persist_published: HashSet<String>,
}

fn b64(data: &[u8]) -> String {
    B64.encode(data)
}

/// Base64url without padding (for CSRs and certificates in payloads).
pub(crate) fn b64url(data: &[u8]) -> String {
    b64(data)
}

impl Account {
    /// A fresh P-256 key, not yet registered.
    pub(crate) fn generate(server: Server) -> Result<Account, FlowError> {
        let unexpected = |m: &str| FlowError::Unexpected {
            endpoint: Endpoint::NewAccount,
            message: m.into(),
        };
        let rng = SystemRandom::new();
        let pkcs8 = EcdsaKeyPair::generate_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, &rng)
            .map_err(|_| unexpected("cannot generate an account key"))?;
        let key = EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, pkcs8.as_ref())
            .map_err(|_| unexpected("cannot load the account key"))?;
        let point = key.public_key().as_ref();
        let (x, y) = (b64(&point[1..33]), b64(&point[33..65]));
        // RFC 7638: members in lexicographic order, no whitespace.
        let canonical = format!(r#"{{"crv":"P-256","kty":"EC","x":"{x}","y":"{y}"}}"#);
        let thumbprint = b64(digest::digest(&digest::SHA256, canonical.as_bytes()).as_ref());
        Ok(Account {
            server,
            key,
            jwk: json!({"crv": "P-256", "kty": "EC", "x": x, "y": y}),
            thumbprint,
            kid: None,
            nonce: None,
            persist_published: HashSet::new(),
        })
    }

    pub(crate) fn server(&self) -> &Server {
        &self.server
    }

    /// `token.thumbprint` (RFC 8555 §8.1).
    /// The account URL (`Location` of newAccount), once registered.
    pub(crate) fn url(&self) -> Option<&String> {
        self.kid.as_ref()
    }

    /// Notes that this account's dns-persist-01 record for `record` (a name, `*.`-prefixed for a
    /// wildcard policy) is published; false if it already was.
    pub(crate) fn note_persist_record(&mut self, record: &str) -> bool {
        self.persist_published.insert(record.to_owned())
    }

    pub(crate) fn key_authorization(&self, token: &str) -> String {
        format!("{token}.{}", self.thumbprint)
    }

    /// Registers the account (newAccount) and keeps its URL as `kid`.
    pub(crate) async fn register(&mut self) -> Result<(), FlowError> {
        let url = self.server.dir.new_account.to_string();
        let reply = self
            .post(
                Endpoint::NewAccount,
                &url,
                Some(&json!({"termsOfServiceAgreed": true})),
            )
            .await?;
        let kid = reply.location.ok_or_else(|| FlowError::Unexpected {
            endpoint: Endpoint::NewAccount,
            message: "no Location".into(),
        })?;
        self.server.checked_url(Endpoint::NewAccount, &kid)?;
        self.kid = Some(kid);
        Ok(())
    }

    /// Signs and sends a POST (`payload` None: POST-as-GET), retrying `badNonce` a few times
    /// with the nonce of the error response.
    pub(crate) async fn post(
        &mut self,
        endpoint: Endpoint,
        url: &str,
        payload: Option<&Value>,
    ) -> Result<Reply, FlowError> {
        let payload_b64 = payload
            .map(|p| b64(p.to_string().as_bytes()))
            .unwrap_or_default();
        let mut attempts = 0;
        loop {
            attempts += 1;
            let nonce = match self.nonce.take() {
                Some(n) => n,
                None => self.server.new_nonce().await?,
            };
            let mut protected = json!({"alg": "ES256", "nonce": nonce, "url": url});
            match &self.kid {
                Some(kid) => protected["kid"] = json!(kid),
                None => protected["jwk"] = self.jwk.clone(),
            }
            let protected_b64 = b64(protected.to_string().as_bytes());
            let input = format!("{protected_b64}.{payload_b64}");
            let sig = self
                .key
                .sign(&SystemRandom::new(), input.as_bytes())
                .map_err(|_| FlowError::Unexpected {
                    endpoint,
                    message: "signing failed".into(),
                })?;
            let body = json!({
                "protected": protected_b64,
                "payload": payload_b64,
                "signature": b64(sig.as_ref()),
            })
            .to_string();
            let started = Instant::now();
            let res = self
                .server
                .http
                .post(url)
                .header("content-type", "application/jose+json")
                .body(body)
                .send()
                .await;
            let (reply, nonce) = self.server.finish(endpoint, started, res).await;
            self.nonce = nonce;
            match reply {
                Ok(reply) => return Ok(reply),
                Err(e) => {
                    if matches!(&e, FlowError::Problem { typ, .. } if typ == "badNonce")
                        && attempts < 4
                    {
                        self.server.stats.bad_nonce_retry();
                        continue;
                    }
                    return Err(e);
                }
            }
        }
    }
}
