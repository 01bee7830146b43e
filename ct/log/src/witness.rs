//! A C2SP tlog-witness: `POST /add-checkpoint` with an old size, a consistency proof and a
//! signed checkpoint of a known log; the witness checks the log's Ed25519 note signature and
//! the proof from the checkpoint it cosigned last, stores the new one durably (fsync, rename,
//! fsync of the folder) and only then answers with its `cosignature/v1` line (C2SP
//! tlog-cosignature). It never cosigns a checkpoint that does not extend the last one it
//! cosigned for that origin, so a forked log is refused.

use crate::storage::sync_parent;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use base64::Engine;
use base64::engine::general_purpose::STANDARD as B64;
use cairn_tlog::checkpoint::Checkpoint;
use cairn_tlog::consistency;
use cairn_tlog::merkle::{Hash, empty_root};
use cairn_tlog::note::{Ed25519NoteKey, Vkey, parse_note, verify_ed25519};
use std::collections::HashMap;
use std::io::Write;
use std::path::PathBuf;
use std::sync::Arc;

/// At most this many proof lines (C2SP tlog-witness).
const MAX_PROOF_LINES: usize = 63;

/// Why a checkpoint was not cosigned; each maps to the tlog-witness status code.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum WitnessError {
    /// The request body is malformed (400).
    #[error("malformed request: {0}")]
    Malformed(&'static str),
    /// The origin is not a log this witness knows (404).
    #[error("unknown log")]
    UnknownLog,
    /// The checkpoint has no valid signature by the log's key (403).
    #[error("checkpoint signature does not verify")]
    BadSignature,
    /// The old size is not the size the witness last cosigned (409; body: that size).
    #[error("old size does not match the latest cosigned size {0}")]
    Conflict(u64),
    /// The consistency proof does not show the checkpoint extends the last one (422): a fork,
    /// or a bad proof.
    #[error("consistency proof does not verify")]
    BadProof,
    /// The witness could not store its state (500).
    #[error("witness state: {0}")]
    Io(#[from] std::io::Error),
}

/// A witness: its cosigner name and key, the logs it watches (Ed25519 verifier keys named by
/// origin), and the folder holding the last cosigned checkpoint of each.
pub struct Witness {
    name: String,
    key: Ed25519NoteKey,
    logs: HashMap<String, Vkey>,
    state_dir: PathBuf,
    lock: tokio::sync::Mutex<()>,
}

impl std::fmt::Debug for Witness {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Witness").field("name", &self.name).finish()
    }
}

/// Splits an `add-checkpoint` body into the old size, the proof hashes and the checkpoint note.
pub fn parse_request(body: &str) -> Result<(u64, Vec<Hash>, &str), WitnessError> {
    let (head, note) = body.split_once("\n\n").ok_or(WitnessError::Malformed(
        "no blank line before the checkpoint",
    ))?;
    let mut lines = head.split('\n');
    let old: u64 = lines
        .next()
        .and_then(|l| l.strip_prefix("old "))
        .and_then(|n| n.parse().ok())
        .ok_or(WitnessError::Malformed("first line is not \"old <size>\""))?;
    let mut proof: Vec<Hash> = Vec::new();
    for l in lines {
        if proof.len() == MAX_PROOF_LINES {
            return Err(WitnessError::Malformed("too many proof lines"));
        }
        let h: Hash = B64
            .decode(l)
            .ok()
            .and_then(|v| v.try_into().ok())
            .ok_or(WitnessError::Malformed("proof line is not a base64 hash"))?;
        proof.push(h);
    }
    Ok((old, proof, note))
}

impl Witness {
    /// A witness named `name` (its cosignature key name) over `logs`, state in `state_dir`
    /// (created if missing).
    pub fn new(
        name: &str,
        key: Ed25519NoteKey,
        logs: Vec<Vkey>,
        state_dir: PathBuf,
    ) -> std::io::Result<Witness> {
        std::fs::create_dir_all(&state_dir)?;
        Ok(Witness {
            name: name.to_owned(),
            key,
            logs: logs.into_iter().map(|v| (v.name.clone(), v)).collect(),
            state_dir,
            lock: tokio::sync::Mutex::new(()),
        })
    }

    /// The witness's verifier key (`cosignature/v1`).
    pub fn vkey(&self) -> String {
        cairn_tlog::note::vkey(
            &self.name,
            cairn_tlog::note::SIGNATURE_TYPE_COSIGNATURE_V1,
            self.key.public_key(),
        )
    }

    fn state_path(&self, origin: &str) -> PathBuf {
        self.state_dir
            .join(hex::encode(cairn_tlog::merkle::sha256(origin.as_bytes())))
    }

    fn load(&self, origin: &str) -> std::io::Result<Option<Checkpoint>> {
        match std::fs::read_to_string(self.state_path(origin)) {
            Ok(text) => Checkpoint::parse_body(&text)
                .map(Some)
                .map_err(|_| std::io::Error::other("stored checkpoint does not parse")),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(e),
        }
    }

    fn store(&self, origin: &str, body: &str) -> std::io::Result<()> {
        let path = self.state_path(origin);
        let tmp = path.with_extension("tmp");
        let mut f = std::fs::File::create(&tmp)?;
        f.write_all(body.as_bytes())?;
        f.sync_all()?;
        drop(f);
        std::fs::rename(&tmp, &path)?;
        sync_parent(&path)
    }

    /// Handles an `add-checkpoint` request body; returns the cosignature line(s).
    pub async fn add_checkpoint(&self, body: &str, now_secs: u64) -> Result<String, WitnessError> {
        let (old, proof, note) = parse_request(body)?;
        let (text, _) = parse_note(note).map_err(|_| WitnessError::Malformed("bad note"))?;
        let cp = Checkpoint::parse_body(text)
            .map_err(|_| WitnessError::Malformed("bad checkpoint body"))?;
        let vkey = self.logs.get(&cp.origin).ok_or(WitnessError::UnknownLog)?;
        if vkey.signature_type != cairn_tlog::note::SIGNATURE_TYPE_ED25519
            || verify_ed25519(note, &vkey.name, &vkey.public_key).is_err()
        {
            return Err(WitnessError::BadSignature);
        }
        if old > cp.size {
            return Err(WitnessError::Malformed(
                "old size is larger than the checkpoint",
            ));
        }
        let _guard = self.lock.lock().await;
        let latest = self.load(&cp.origin)?;
        let (cur_size, cur_root) = latest
            .as_ref()
            .map_or((0, empty_root()), |c| (c.size, c.root));
        if old != cur_size {
            return Err(WitnessError::Conflict(cur_size));
        }
        if !consistency::verify(cur_size, &cur_root, cp.size, &cp.root, &proof) {
            return Err(WitnessError::BadProof);
        }
        if latest.as_ref() != Some(&cp) {
            self.store(&cp.origin, text)?;
        }
        Ok(self.key.cosign_v1(&self.name, now_secs, text))
    }

    /// The HTTP routes: `POST /add-checkpoint`.
    pub fn router(self: Arc<Self>) -> axum::Router {
        axum::Router::new()
            .route("/add-checkpoint", post(add_checkpoint))
            .layer(axum::extract::DefaultBodyLimit::max(64 * 1024))
            .with_state(self)
    }
}

async fn add_checkpoint(
    axum::extract::State(w): axum::extract::State<Arc<Witness>>,
    body: String,
) -> Response {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    match w.add_checkpoint(&body, now).await {
        Ok(lines) => (StatusCode::OK, lines).into_response(),
        Err(WitnessError::Conflict(size)) => (
            StatusCode::CONFLICT,
            [(header::CONTENT_TYPE, "text/x.tlog.size")],
            format!("{size}\n"),
        )
            .into_response(),
        Err(e) => {
            let status = match e {
                WitnessError::Malformed(_) => StatusCode::BAD_REQUEST,
                WitnessError::UnknownLog => StatusCode::NOT_FOUND,
                WitnessError::BadSignature => StatusCode::FORBIDDEN,
                WitnessError::BadProof => StatusCode::UNPROCESSABLE_ENTITY,
                _ => StatusCode::INTERNAL_SERVER_ERROR,
            };
            if status == StatusCode::INTERNAL_SERVER_ERROR {
                tracing::error!(error = %e, "witness failed to store its state");
            }
            (status, format!("{e}\n")).into_response()
        }
    }
}

/// `cairn ct witness`'s configuration (TOML).
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WitnessConfig {
    /// Address of the HTTP listener (`POST /add-checkpoint`).
    pub listen: std::net::SocketAddr,
    /// The witness's name (its cosignature key name), e.g. `witness.example.org`.
    pub name: String,
    /// PEM PKCS#8 Ed25519 key; generated (0600) on first start if missing.
    pub key_file: PathBuf,
    /// Folder of the last cosigned checkpoint of each log (keep it: it is what refuses forks).
    pub state_dir: PathBuf,
    /// The logs witnessed: their Ed25519 signed-note verifier keys (`<origin>+<id>+<key>`).
    pub logs: Vec<String>,
}

impl WitnessConfig {
    /// Reads `path`; relative paths are resolved against its folder.
    pub fn load(path: &std::path::Path) -> Result<WitnessConfig, String> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| format!("cannot read {}: {e}", path.display()))?;
        let mut cfg: WitnessConfig =
            toml::from_str(&text).map_err(|e| format!("invalid witness configuration: {e}"))?;
        let base = path.parent().unwrap_or(std::path::Path::new("."));
        for p in [&mut cfg.key_file, &mut cfg.state_dir] {
            if p.is_relative() {
                *p = base.join(&*p);
            }
        }
        if cfg.name.is_empty() || cfg.name.contains(char::is_whitespace) || cfg.name.contains('+') {
            return Err("witness name must be non-empty, without spaces or '+'".into());
        }
        Ok(cfg)
    }
}

/// Loads the witness key, generating it (0600, fsync, rename) if the file is missing.
pub fn load_or_generate_key(path: &std::path::Path) -> Result<Ed25519NoteKey, String> {
    match std::fs::read_to_string(path) {
        Ok(pem) => {
            let der = cairn_pki::pem_decode_all(&pem)
                .ok()
                .and_then(|mut v| (!v.is_empty()).then(|| v.remove(0).1))
                .ok_or_else(|| format!("{} is not a PEM key", path.display()))?;
            Ed25519NoteKey::from_pkcs8_der(&der)
                .map_err(|_| format!("{} is not an Ed25519 PKCS#8 key", path.display()))
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            let key = Ed25519NoteKey::generate().map_err(|e| e.to_string())?;
            let der = key.to_pkcs8_der().map_err(|e| e.to_string())?;
            let pem = cairn_pki::pem_encode("PRIVATE KEY", &der);
            let io = |e: std::io::Error| format!("writing {}: {e}", path.display());
            if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
                std::fs::create_dir_all(dir).map_err(io)?;
            }
            let tmp = path.with_extension("tmp");
            let mut opts = std::fs::OpenOptions::new();
            opts.write(true).create(true).truncate(true);
            #[cfg(unix)]
            std::os::unix::fs::OpenOptionsExt::mode(&mut opts, 0o600);
            let mut f = opts.open(&tmp).map_err(io)?;
            f.write_all(pem.as_bytes()).map_err(io)?;
            f.sync_all().map_err(io)?;
            drop(f);
            std::fs::rename(&tmp, path).map_err(io)?;
            sync_parent(path).map_err(io)?;
            Ok(key)
        }
        Err(e) => Err(format!("reading {}: {e}", path.display())),
    }
}

/// Starts the witness of `cfg` on its listener (Cairn's connection bounds); returns the bound
/// address, the witness, and the serving task (ends when `shutdown` resolves).
pub async fn serve(
    cfg: &WitnessConfig,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<
    (
        std::net::SocketAddr,
        Arc<Witness>,
        tokio::task::JoinHandle<()>,
    ),
    String,
> {
    let key = load_or_generate_key(&cfg.key_file)?;
    let logs = cfg
        .logs
        .iter()
        .map(|v| cairn_tlog::note::parse_vkey(v).map_err(|_| format!("bad log vkey {v:?}")))
        .collect::<Result<Vec<_>, _>>()?;
    let w = Arc::new(
        Witness::new(&cfg.name, key, logs, cfg.state_dir.clone())
            .map_err(|e| format!("state_dir: {e}"))?,
    );
    let listener = tokio::net::TcpListener::bind(cfg.listen)
        .await
        .map_err(|e| format!("cannot listen on {}: {e}", cfg.listen))?;
    let addr = listener.local_addr().map_err(|e| e.to_string())?;
    let app = w.clone().router();
    let task = tokio::spawn(
        cairn_listen::Listener::new(listener, "ct-witness", cairn_listen::Limits::default())
            .serve(app, shutdown),
    );
    Ok((addr, w, task))
}
