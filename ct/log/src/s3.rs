//! S3-compatible object storage for a log's tiles, issuers and checkpoint (`object_store`'s
//! AWS client, TLS through rustls with aws-lc-rs).
//!
//! Object storage has no atomic multi-object write, so a sequencing cycle on it runs as Sunlight's
//! does (see `log.rs`): first one *staging bundle* object holding every file of the cycle, then the
//! checkpoint compare-and-swap in the lock store, then the files themselves, uploaded in parallel,
//! and only then the SCTs. A crash or a failed upload after the compare-and-swap leaves the lock
//! ahead of the bucket; recovery reads the bundle named by the lock's checkpoint and uploads it
//! again before the log runs. Tiles are therefore written only once their checkpoint is
//! committed, and never rewritten with other content.

use crate::storage::Storage;
use futures::StreamExt;
use object_store::aws::{AmazonS3, AmazonS3Builder};
use object_store::path::Path as ObjectPath;
use object_store::{BackoffConfig, ClientOptions, ObjectStore, ObjectStoreExt, RetryConfig};
use serde::{Deserialize, Serialize};
use std::sync::Arc;
use std::time::Duration;

/// `[log.s3]`: where the log's objects live. Credentials come from the standard AWS environment
/// variables (`AWS_ACCESS_KEY_ID`, `AWS_SECRET_ACCESS_KEY`, `AWS_SESSION_TOKEN`), never from the
/// file.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct S3Config {
    /// The bucket.
    pub bucket: String,
    /// Region (default `us-east-1`).
    #[serde(default = "default_region")]
    pub region: String,
    /// Endpoint of an S3-compatible server, e.g. `https://s3.example.net`; default AWS.
    #[serde(default)]
    pub endpoint: Option<String>,
    /// Key prefix inside the bucket (e.g. `2026h1`), without slashes at either end.
    #[serde(default)]
    pub prefix: Option<String>,
    /// Allow a plain-HTTP endpoint (default false; only for a server on loopback).
    #[serde(default)]
    pub allow_http: bool,
    /// Per-request timeout in milliseconds (default 10000): a hung PUT is abandoned and retried.
    #[serde(default = "default_request_timeout_ms")]
    pub request_timeout_ms: u64,
    /// Retries of a failed or timed-out request, with exponential backoff (default 10).
    #[serde(default = "default_max_retries")]
    pub max_retries: usize,
    /// Give up retrying one request after this many milliseconds (default 60000).
    #[serde(default = "default_retry_timeout_ms")]
    pub retry_timeout_ms: u64,
    /// Files holding the access key ID and the secret access key (surrounding whitespace
    /// ignored); both or neither. Without them the AWS environment variables are used.
    #[serde(default)]
    pub access_key_id_file: Option<std::path::PathBuf>,
    /// See `access_key_id_file`.
    #[serde(default)]
    pub secret_access_key_file: Option<std::path::PathBuf>,
    /// Objects uploaded at once within a sequencing cycle (default 32).
    #[serde(default = "default_parallel_uploads")]
    pub parallel_uploads: usize,
}

fn default_region() -> String {
    "us-east-1".into()
}
fn default_request_timeout_ms() -> u64 {
    10_000
}
fn default_max_retries() -> usize {
    10
}
fn default_retry_timeout_ms() -> u64 {
    60_000
}
fn default_parallel_uploads() -> usize {
    32
}

impl S3Config {
    /// Checks values an operator could get wrong.
    pub fn validate(&self) -> Result<(), String> {
        if self.bucket.is_empty() {
            return Err("s3.bucket is empty".into());
        }
        if let Some(p) = &self.prefix
            && (p.is_empty() || p.starts_with('/') || p.ends_with('/') || p.contains("//"))
        {
            return Err(
                "s3.prefix must be non-empty without leading, trailing or double slashes".into(),
            );
        }
        if let Some(e) = &self.endpoint
            && e.starts_with("http://")
            && !self.allow_http
        {
            return Err("s3.endpoint is plain HTTP: set s3.allow_http = true to allow it".into());
        }
        if self.access_key_id_file.is_some() != self.secret_access_key_file.is_some() {
            return Err("s3.access_key_id_file and s3.secret_access_key_file go together".into());
        }
        if self.parallel_uploads == 0 || self.parallel_uploads > 1024 {
            return Err("s3.parallel_uploads must be 1..=1024".into());
        }
        if self.request_timeout_ms == 0 {
            return Err("s3.request_timeout_ms must be positive".into());
        }
        Ok(())
    }
}

/// A bucket (and prefix) holding one log.
pub struct S3Storage {
    store: Arc<AmazonS3>,
    prefix: Option<String>,
    parallel: usize,
    rt: tokio::runtime::Handle,
}

impl std::fmt::Debug for S3Storage {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("S3Storage")
            .field("store", &self.store.to_string())
            .field("prefix", &self.prefix)
            .finish()
    }
}

fn io_err(e: object_store::Error) -> std::io::Error {
    std::io::Error::other(format!("object storage: {e}"))
}

/// The S3 client for `cfg`.
fn build(cfg: &S3Config) -> std::io::Result<AmazonS3> {
    cfg.validate().map_err(std::io::Error::other)?;
    let mut b = AmazonS3Builder::from_env()
        .with_bucket_name(&cfg.bucket)
        .with_region(&cfg.region)
        .with_allow_http(cfg.allow_http)
        .with_client_options(
            ClientOptions::new()
                .with_allow_http(cfg.allow_http)
                .with_timeout(Duration::from_millis(cfg.request_timeout_ms))
                .with_connect_timeout(Duration::from_millis(cfg.request_timeout_ms.min(5_000))),
        )
        .with_retry(RetryConfig {
            backoff: BackoffConfig {
                init_backoff: Duration::from_millis(50),
                max_backoff: Duration::from_secs(5),
                base: 2.0,
            },
            max_retries: cfg.max_retries,
            retry_timeout: Duration::from_millis(cfg.retry_timeout_ms),
        });
    if let Some(e) = &cfg.endpoint {
        b = b.with_endpoint(e);
    }
    if let (Some(id), Some(secret)) = (&cfg.access_key_id_file, &cfg.secret_access_key_file) {
        let read = |p: &std::path::Path| {
            std::fs::read_to_string(p)
                .map(|s| s.trim().to_owned())
                .map_err(|e| std::io::Error::other(format!("reading {}: {e}", p.display())))
        };
        b = b
            .with_access_key_id(read(id)?)
            .with_secret_access_key(read(secret)?);
    }
    b.build().map_err(io_err)
}

impl S3Storage {
    /// Builds the client (no request is made). Must be called inside a Tokio runtime: the
    /// blocking [`Storage`] methods run their requests on it.
    pub fn new(cfg: &S3Config) -> std::io::Result<S3Storage> {
        let store = build(cfg)?;
        let rt = tokio::runtime::Handle::try_current()
            .map_err(|_| std::io::Error::other("S3 storage needs a Tokio runtime"))?;
        Ok(S3Storage {
            store: Arc::new(store),
            prefix: cfg.prefix.clone(),
            parallel: cfg.parallel_uploads,
            rt,
        })
    }

    fn path(&self, key: &str) -> std::io::Result<ObjectPath> {
        object_path(self.prefix.as_deref(), key)
    }

    /// Reads one object (relative to the prefix); `None` if missing.
    pub async fn get_object(&self, key: &str) -> std::io::Result<Option<Vec<u8>>> {
        let path = self.path(key)?;
        match self.store.get(&path).await {
            Ok(r) => Ok(Some(r.bytes().await.map_err(io_err)?.to_vec())),
            Err(object_store::Error::NotFound { .. }) => Ok(None),
            Err(e) => Err(io_err(e)),
        }
    }

    /// Writes one object (relative to the prefix).
    pub async fn put_object(&self, key: &str, data: Vec<u8>) -> std::io::Result<()> {
        self.put_all_async(&[(key.to_owned(), data)]).await
    }

    /// Deletes one object (relative to the prefix), e.g. an old staging bundle.
    pub async fn delete_object(&self, key: &str) -> std::io::Result<()> {
        let path = self.path(key)?;
        self.store.delete(&path).await.map_err(io_err)
    }

    /// Uploads every file, `parallel` at a time; the first failure (after the client's
    /// retries) fails the batch.
    async fn put_all_async(&self, files: &[(String, Vec<u8>)]) -> std::io::Result<()> {
        let mut uploads = Vec::with_capacity(files.len());
        for (k, v) in files {
            uploads.push((self.path(k)?, v.clone()));
        }
        let store = self.store.clone();
        let results: Vec<std::io::Result<()>> = futures::stream::iter(uploads)
            .map(|(path, data)| {
                let store = store.clone();
                async move {
                    store
                        .put(&path, data.into())
                        .await
                        .map(|_| ())
                        .map_err(io_err)
                }
            })
            .buffer_unordered(self.parallel)
            .collect()
            .await;
        results.into_iter().collect()
    }
}

impl Storage for S3Storage {
    fn put_all(&self, files: &[(String, Vec<u8>)]) -> std::io::Result<()> {
        if files.is_empty() {
            return Ok(());
        }
        self.rt.block_on(self.put_all_async(files))
    }

    fn get(&self, key: &str) -> std::io::Result<Option<Vec<u8>>> {
        self.rt.block_on(self.get_object(key))
    }

    fn exists(&self, key: &str) -> std::io::Result<bool> {
        let path = self.path(key)?;
        self.rt.block_on(async {
            match self.store.head(&path).await {
                Ok(_) => Ok(true),
                Err(object_store::Error::NotFound { .. }) => Ok(false),
                Err(e) => Err(io_err(e)),
            }
        })
    }

    fn any_under(&self, prefix: &str) -> std::io::Result<bool> {
        let path = self.path(prefix)?;
        self.rt.block_on(async {
            let mut list = self.store.list(Some(&path));
            match list.next().await {
                None => Ok(false),
                Some(Ok(_)) => Ok(true),
                Some(Err(e)) => Err(io_err(e)),
            }
        })
    }

    fn staged(&self) -> bool {
        true
    }
}

/// The staging bundle: every file of one sequencing cycle in one object, so that the cycle's
/// files can be uploaded again after a crash. Format: repeated `u16 key length, key, u32 data
/// length, data` (big-endian), nothing else.
pub fn encode_bundle(files: &[(String, Vec<u8>)]) -> std::io::Result<Vec<u8>> {
    let mut out = Vec::new();
    for (k, v) in files {
        let kl =
            u16::try_from(k.len()).map_err(|_| std::io::Error::other("bundle key too long"))?;
        let vl =
            u32::try_from(v.len()).map_err(|_| std::io::Error::other("bundle file too big"))?;
        out.extend_from_slice(&kl.to_be_bytes());
        out.extend_from_slice(k.as_bytes());
        out.extend_from_slice(&vl.to_be_bytes());
        out.extend_from_slice(v);
    }
    Ok(out)
}

/// Parses a staging bundle; `None` if it is truncated or a key is not UTF-8 / not a tile or
/// issuer key.
pub fn decode_bundle(mut b: &[u8]) -> Option<Vec<(String, Vec<u8>)>> {
    let mut files = Vec::new();
    while !b.is_empty() {
        let (kl, rest) = b.split_first_chunk::<2>()?;
        let kl = usize::from(u16::from_be_bytes(*kl));
        let (key, rest) = rest.split_at_checked(kl)?;
        let key = std::str::from_utf8(key).ok()?;
        if !(key.starts_with("tile/") || key.starts_with("issuer/")) {
            return None;
        }
        let (vl, rest) = rest.split_first_chunk::<4>()?;
        let vl = usize::try_from(u32::from_be_bytes(*vl)).ok()?;
        let (data, rest) = rest.split_at_checked(vl)?;
        files.push((key.to_owned(), data.to_vec()));
        b = rest;
    }
    Some(files)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bundles_round_trip_and_reject_garbage() {
        let files = vec![
            ("tile/0/000".to_string(), vec![1u8; 64]),
            ("issuer/ab".to_string(), vec![]),
            ("tile/data/000.p/3".to_string(), vec![9u8; 7]),
        ];
        let b = encode_bundle(&files).unwrap();
        assert_eq!(decode_bundle(&b).unwrap(), files);
        assert_eq!(decode_bundle(&[]).unwrap(), vec![]);
        for cut in 1..b.len() {
            if let Some(parsed) = decode_bundle(&b[..cut]) {
                // Only a cut on a file boundary parses, and then it is a prefix of the files.
                assert!(files.starts_with(&parsed), "cut {cut}");
            }
        }
        let bad = encode_bundle(&[("checkpoint".to_string(), vec![1])]).unwrap();
        assert_eq!(decode_bundle(&bad), None);
    }

    #[test]
    fn config_rules() {
        let ok = S3Config {
            bucket: "b".into(),
            region: default_region(),
            endpoint: Some("http://127.0.0.1:9000".into()),
            prefix: Some("2026h1".into()),
            allow_http: true,
            request_timeout_ms: 1000,
            max_retries: 1,
            retry_timeout_ms: 1000,
            parallel_uploads: 4,
            access_key_id_file: None,
            secret_access_key_file: None,
        };
        assert!(ok.validate().is_ok());
        let mut c = ok.clone();
        c.allow_http = false;
        assert!(c.validate().unwrap_err().contains("allow_http"));
        let mut c = ok.clone();
        c.prefix = Some("/x".into());
        assert!(c.validate().is_err());
        let mut c = ok;
        c.parallel_uploads = 0;
        assert!(c.validate().is_err());
    }
}

/// The checkpoint lock in an S3 bucket: one object per log (`<prefix>/lock/<log>`) advanced
/// only by conditional writes, `If-None-Match: *` to create it and `If-Match: <etag>` to
/// replace it, so two sequencers can never both advance the same checkpoint.
pub struct S3Lock {
    store: Arc<AmazonS3>,
    prefix: Option<String>,
}

impl std::fmt::Debug for S3Lock {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("S3Lock")
            .field("store", &self.store.to_string())
            .field("prefix", &self.prefix)
            .finish()
    }
}

/// A lock object as read: its content and the version to make the next write conditional on.
#[derive(Debug)]
pub struct LockObject {
    /// The checkpoint (signed note).
    pub checkpoint: String,
    version: object_store::UpdateVersion,
}

impl S3Lock {
    /// Builds the client (no request is made).
    pub fn new(cfg: &S3Config) -> std::io::Result<S3Lock> {
        Ok(S3Lock {
            store: Arc::new(build(cfg)?),
            prefix: cfg.prefix.clone(),
        })
    }

    fn path(&self, log: &str) -> std::io::Result<ObjectPath> {
        object_path(self.prefix.as_deref(), &format!("lock/{log}"))
    }

    /// The lock object of `log`, if any.
    pub async fn get(&self, log: &str) -> std::io::Result<Option<LockObject>> {
        let path = self.path(log)?;
        match self.store.get(&path).await {
            Ok(r) => {
                let version = object_store::UpdateVersion {
                    e_tag: r.meta.e_tag.clone(),
                    version: r.meta.version.clone(),
                };
                let bytes = r.bytes().await.map_err(io_err)?;
                let checkpoint = String::from_utf8(bytes.to_vec())
                    .map_err(|_| std::io::Error::other("lock object is not UTF-8"))?;
                Ok(Some(LockObject {
                    checkpoint,
                    version,
                }))
            }
            Err(object_store::Error::NotFound { .. }) => Ok(None),
            Err(e) => Err(io_err(e)),
        }
    }

    /// Creates the lock object; `false` if it already exists.
    pub async fn create(&self, log: &str, checkpoint: &str) -> std::io::Result<bool> {
        self.put(log, checkpoint, object_store::PutMode::Create)
            .await
    }

    /// Replaces `current` (as read by [`S3Lock::get`]) by `new`; `false` if the object
    /// changed since it was read.
    pub async fn swap(&self, log: &str, current: LockObject, new: &str) -> std::io::Result<bool> {
        self.put(log, new, object_store::PutMode::Update(current.version))
            .await
    }

    async fn put(
        &self,
        log: &str,
        checkpoint: &str,
        mode: object_store::PutMode,
    ) -> std::io::Result<bool> {
        let path = self.path(log)?;
        let payload = checkpoint.as_bytes().to_vec().into();
        match self.store.put_opts(&path, payload, mode.into()).await {
            Ok(_) => Ok(true),
            Err(
                object_store::Error::AlreadyExists { .. }
                | object_store::Error::Precondition { .. },
            ) => Ok(false),
            Err(e) => Err(io_err(e)),
        }
    }
}

/// `prefix/key` as an object path; keys are made by the log, but are checked anyway.
fn object_path(prefix: Option<&str>, key: &str) -> std::io::Result<ObjectPath> {
    let invalid = || std::io::Error::new(std::io::ErrorKind::InvalidInput, "invalid storage key");
    let ok = !key.is_empty()
        && key
            .split('/')
            .all(|seg| !seg.is_empty() && seg != "." && seg != "..");
    if !ok {
        return Err(invalid());
    }
    let full = match prefix {
        Some(p) => format!("{p}/{key}"),
        None => key.to_owned(),
    };
    ObjectPath::parse(full).map_err(|_| invalid())
}
