//! The storage backends the CT suite runs on: the local filesystem and a real S3-compatible
//! server (moto's standalone server on loopback, started from the `CAIRN_VENV` virtualenv;
//! under `CI=true` a missing moto fails). `on_every_backend!` runs one test body on each.

use super::{Pki, client, log_config};
use cairn_ct::LogConfig;
use cairn_ct::s3::S3Config;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

/// Where a test log keeps its tiles, issuers and checkpoint.
#[derive(Clone, Copy, Debug)]
pub enum Backend {
    Fs,
    S3,
}

/// A started backend; for S3 it owns the moto server (killed on drop).
pub struct Store {
    moto: Option<Moto>,
}

static BUCKET: AtomicU64 = AtomicU64::new(0);

impl Store {
    /// Starts the backend, or `None` when S3 is skipped (outside CI without moto).
    pub async fn start(backend: Backend) -> Option<Store> {
        match backend {
            Backend::Fs => Some(Store { moto: None }),
            Backend::S3 => Some(Store {
                moto: Some(moto().await?),
            }),
        }
    }

    /// `common::log_config` in `dir`, with its objects in a fresh bucket on S3.
    pub async fn log_config(&self, dir: &Path, pki: &Pki) -> LogConfig {
        let Some(moto) = &self.moto else {
            return log_config(dir, pki);
        };
        let bucket = format!("ct-{}", BUCKET.fetch_add(1, Ordering::Relaxed));
        moto.create_bucket(&bucket).await;
        let mut log = s3_log(dir, pki, format!("http://127.0.0.1:{}", moto.port), &bucket);
        log.period_ms = 100; // as on the filesystem; tests set their own
        log
    }

    /// Points `log` at empty storage: another data folder and, on S3, another prefix.
    pub fn empty_storage(&self, log: &mut LogConfig, dir: &Path) {
        log.data_dir = dir.join("data-empty");
        if let Some(s3) = &mut log.s3 {
            s3.prefix = Some("2030-empty".into());
        }
    }
}

/// `on_every_backend!(#[tokio::test] fn name);` after `async fn name(backend: Backend)` makes
/// the tests `name::fs` and `name::s3`.
#[macro_export]
macro_rules! on_every_backend {
    ($(#[$attr:meta])* fn $name:ident) => {
        mod $name {
            $(#[$attr])*
            async fn fs() {
                super::$name($crate::common::backend::Backend::Fs).await
            }
            $(#[$attr])*
            async fn s3() {
                super::$name($crate::common::backend::Backend::S3).await
            }
        }
    };
}

/// A moto S3 server on a free loopback port; killed on drop.
pub struct Moto {
    child: Child,
    pub port: u16,
}

impl Drop for Moto {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

pub use cairn_test_services::free_port;

/// Starts moto, or `None` outside CI without `CAIRN_VENV` (under CI a missing venv or a
/// venv without moto fails).
pub async fn moto() -> Option<Moto> {
    let venv = cairn_test_services::venv()?;
    let bin = venv.join("bin/moto_server");
    if !bin.exists() {
        assert!(
            !cairn_test_services::in_ci(),
            "{} is missing: install testing/requirements.txt into CAIRN_VENV",
            bin.display()
        );
        println!("skipped: {} missing", bin.display());
        return None;
    }
    for _ in 0..5 {
        let port = free_port();
        let child = Command::new(&bin)
            .args(["-H", "127.0.0.1", "-p", &port.to_string()])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let mut m = Moto { child, port };
        let deadline = Instant::now() + Duration::from_secs(30);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = m.child.try_wait() {
                break; // port taken meanwhile: try another
            }
            if client()
                .get(format!("http://127.0.0.1:{port}/"))
                .send()
                .await
                .is_ok()
            {
                return Some(m);
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        let _ = m.child.kill();
    }
    panic!("moto_server did not start");
}

impl Moto {
    pub async fn create_bucket(&self, bucket: &str) {
        let url = format!("http://127.0.0.1:{}/{bucket}", self.port);
        let r = client().put(url).send().await.unwrap();
        assert!(r.status().is_success(), "create bucket: {}", r.status());
    }
}

/// A log config whose files live in `bucket/2030/` at `endpoint`.
pub fn s3_log(dir: &Path, pki: &Pki, endpoint: String, bucket: &str) -> LogConfig {
    std::fs::write(dir.join("s3-id"), "test-key\n").unwrap();
    std::fs::write(dir.join("s3-secret"), "test-secret\n").unwrap();
    let mut log = log_config(dir, pki);
    log.period_ms = 50;
    log.s3 = Some(S3Config {
        bucket: bucket.into(),
        region: "us-east-1".into(),
        endpoint: Some(endpoint),
        prefix: Some("2030".into()),
        allow_http: true,
        request_timeout_ms: 700,
        max_retries: 2,
        retry_timeout_ms: 2_000,
        parallel_uploads: 16,
        access_key_id_file: Some(dir.join("s3-id")),
        secret_access_key_file: Some(dir.join("s3-secret")),
    });
    log
}
