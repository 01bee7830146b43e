//! `cairn ct verify`: an auditor for any static-ct-api log, ours or anyone's. It fetches the
//! log's `log.v3.json` (or takes it from the operator), checks that the log ID is the SHA-256 of
//! the key, fetches the checkpoint and verifies its RFC 6962 signature and its Ed25519 note
//! signature (and the ML-DSA-44 cosignature when that key is known), then fetches every data and
//! hash tile and hands them to [`cairn_tlog::audit::Auditor`], which recomputes the tree and
//! checks consistency with an older checkpoint; last, every issuer the entries name must be
//! served and hash to its fingerprint.
//!
//! The signed-note keys come from `--vkey` or, failing that, from the log's `vkeys` file (a
//! Cairn convenience: trust on first use; pin them with `--vkey` for anyone else's log).

use crate::http::LogDescription;
use base64::Engine;
use base64::engine::general_purpose::STANDARD as B64;
use cairn_tlog::audit::{AuditError, Auditor};
use cairn_tlog::checkpoint::{CheckpointError, verify_checkpoint};
use cairn_tlog::entry::parse_data_tile;
use cairn_tlog::merkle::{Hash, sha256};
use cairn_tlog::note::{
    NoteError, SIGNATURE_TYPE_ED25519, SIGNATURE_TYPE_ML_DSA_44, Vkey, parse_vkey, verify_ed25519,
    verify_ml_dsa_44_cosignature,
};
use cairn_tlog::tile::Tile;
use std::collections::HashSet;
use std::io::Read;

/// Largest response body accepted (after gzip decoding): a full data tile of large chains
/// stays far below this.
const MAX_BODY: u64 = 64 << 20;

/// What to verify.
#[derive(Debug, Clone, Default)]
pub struct VerifyOptions {
    /// The monitoring prefix, e.g. `https://ct.example.org/2026h1/`.
    pub url: String,
    /// An older signed checkpoint (note text) the current tree must extend.
    pub old_checkpoint: Option<String>,
    /// Signed-note verifier keys (Ed25519, optionally ML-DSA-44); fetched from `vkeys` if empty.
    pub vkeys: Vec<String>,
    /// The log's `log.v3.json` as the operator has it; fetched from the log if `None`.
    pub log_json: Option<String>,
}

/// What was verified.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VerifyReport {
    /// The checkpoint origin.
    pub origin: String,
    /// The tree size.
    pub size: u64,
    /// The root hash.
    pub root: Hash,
    /// The signatures that verified.
    pub signatures: Vec<&'static str>,
    /// The older checkpoint's size, if one was given (and is consistent).
    pub consistent_with: Option<u64>,
    /// Tiles fetched and checked.
    pub tiles: u64,
}

impl std::fmt::Display for VerifyReport {
    /// One line: `OK <origin> size <n> root <hex> signatures <a+b> tiles <n>[ consistent-with <m>]`.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "OK {} size {} root {} signatures {} tiles {}",
            self.origin,
            self.size,
            hex::encode(self.root),
            self.signatures.join("+"),
            self.tiles
        )?;
        if let Some(old) = self.consistent_with {
            write!(f, " consistent-with {old}")?;
        }
        Ok(())
    }
}

/// Why verification failed; each says what and where.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum VerifyError {
    /// The URL is not an http(s) URL.
    #[error("{0} is not an http:// or https:// URL")]
    BadUrl(String),
    /// A request failed.
    #[error("GET {url}: {reason}")]
    Fetch {
        /// The URL.
        url: String,
        /// What went wrong.
        reason: String,
    },
    /// `log.v3.json` is unusable (message says why).
    #[error("log.v3.json: {0}")]
    LogJson(String),
    /// The checkpoint's RFC 6962 signature failed.
    #[error("checkpoint: {0}")]
    Checkpoint(CheckpointError),
    /// The older checkpoint does not verify.
    #[error("older checkpoint: {0}")]
    OldCheckpoint(CheckpointError),
    /// A verifier key is malformed, or none is an Ed25519 key for the origin.
    #[error("verifier keys: {0}")]
    Vkeys(String),
    /// A signed-note signature failed.
    #[error("checkpoint: {0}")]
    Note(#[from] NoteError),
    /// An issuer certificate is missing or does not hash to its fingerprint.
    #[error("issuer/{0} is missing or does not hash to its name")]
    Issuer(String),
    /// The tiles do not make the checkpoint's tree.
    #[error(transparent)]
    Audit(#[from] AuditError),
}

/// The checkpoint origin of a submission or monitoring prefix.
fn origin_of(url: &str) -> String {
    url.trim_start_matches("https://")
        .trim_start_matches("http://")
        .trim_end_matches('/')
        .to_string()
}

struct Fetcher {
    client: reqwest::Client,
    base: String,
}

impl Fetcher {
    /// GETs `path` under the prefix, asking for gzip and decoding it.
    async fn get(&self, path: &str) -> Result<Vec<u8>, VerifyError> {
        let url = format!("{}/{path}", self.base);
        let fail = |reason: String| VerifyError::Fetch {
            url: url.clone(),
            reason,
        };
        let r = self
            .client
            .get(&url)
            .header(reqwest::header::ACCEPT_ENCODING, "gzip")
            .send()
            .await
            .map_err(|e| fail(e.to_string()))?;
        if !r.status().is_success() {
            return Err(fail(format!("HTTP {}", r.status())));
        }
        let gzipped = r
            .headers()
            .get(reqwest::header::CONTENT_ENCODING)
            .is_some_and(|v| v.as_bytes().eq_ignore_ascii_case(b"gzip"));
        let body = r.bytes().await.map_err(|e| fail(e.to_string()))?;
        if body.len() as u64 > MAX_BODY {
            return Err(fail("response too large".into()));
        }
        if !gzipped {
            return Ok(body.to_vec());
        }
        let mut out = Vec::new();
        flate2::read::GzDecoder::new(&body[..])
            .take(MAX_BODY + 1)
            .read_to_end(&mut out)
            .map_err(|e| fail(format!("bad gzip body: {e}")))?;
        if out.len() as u64 > MAX_BODY {
            return Err(fail("response too large".into()));
        }
        Ok(out)
    }

    async fn text(&self, path: &str) -> Result<String, VerifyError> {
        let bytes = self.get(path).await?;
        String::from_utf8(bytes).map_err(|_| VerifyError::Fetch {
            url: format!("{}/{path}", self.base),
            reason: "not UTF-8 text".into(),
        })
    }
}

/// Verifies the log at `opts.url`; see the module documentation.
pub async fn verify_log(opts: &VerifyOptions) -> Result<VerifyReport, VerifyError> {
    if !(opts.url.starts_with("https://") || opts.url.starts_with("http://")) {
        return Err(VerifyError::BadUrl(opts.url.clone()));
    }
    let client = reqwest::Client::builder()
        .timeout(std::time::Duration::from_secs(60))
        .user_agent(concat!(
            "cairn-ct-verify/",
            env!("CARGO_PKG_VERSION"),
            " (+https://github.com/cairn)"
        ))
        .build()
        .map_err(|e| VerifyError::Fetch {
            url: opts.url.clone(),
            reason: e.to_string(),
        })?;
    let f = Fetcher {
        client,
        base: opts.url.trim_end_matches('/').to_string(),
    };

    // The log's key and identity.
    let log_json = match &opts.log_json {
        Some(j) => j.clone(),
        None => f.text("log.v3.json").await?,
    };
    let desc: LogDescription =
        serde_json::from_str(&log_json).map_err(|e| VerifyError::LogJson(e.to_string()))?;
    let spki = B64
        .decode(&desc.key)
        .map_err(|_| VerifyError::LogJson("key is not base64".into()))?;
    let log_id = B64
        .decode(&desc.log_id)
        .map_err(|_| VerifyError::LogJson("log_id is not base64".into()))?;
    if log_id != sha256(&spki) {
        return Err(VerifyError::LogJson(
            "log_id is not the SHA-256 of the key".into(),
        ));
    }
    let origin = origin_of(&desc.submission_url);

    // The checkpoint and its signatures.
    let note = f.text("checkpoint").await?;
    let signed = verify_checkpoint(&note, &origin, &spki).map_err(VerifyError::Checkpoint)?;
    let mut signatures = vec!["RFC 6962"];
    let vkey_text = if opts.vkeys.is_empty() {
        f.text("vkeys")
            .await?
            .lines()
            .filter(|l| !l.trim().is_empty())
            .map(str::to_string)
            .collect()
    } else {
        opts.vkeys.clone()
    };
    let vkeys: Vec<Vkey> = vkey_text
        .iter()
        .map(|v| parse_vkey(v).map_err(|e| VerifyError::Vkeys(e.to_string())))
        .collect::<Result<_, _>>()?;
    let ed = vkeys
        .iter()
        .find(|v| v.signature_type == SIGNATURE_TYPE_ED25519 && v.name == origin)
        .ok_or_else(|| VerifyError::Vkeys(format!("no Ed25519 key named {origin}")))?;
    verify_ed25519(&note, &origin, &ed.public_key)?;
    signatures.push("Ed25519");
    for v in vkeys
        .iter()
        .filter(|v| v.signature_type == SIGNATURE_TYPE_ML_DSA_44)
    {
        verify_ml_dsa_44_cosignature(&note, &v.name, &v.public_key)?;
        signatures.push("ML-DSA-44");
    }

    let old = match &opts.old_checkpoint {
        Some(old) => Some(
            verify_checkpoint(old, &origin, &spki)
                .map_err(VerifyError::OldCheckpoint)?
                .checkpoint,
        ),
        None => None,
    };
    let consistent_with = old.as_ref().map(|o| o.size);

    // Every tile.
    let mut auditor = Auditor::new(signed.checkpoint.clone(), old)?;
    let mut tiles = 0u64;
    let mut issuers: HashSet<Hash> = HashSet::new();
    let check = async |auditor: &mut Auditor, due: Vec<Tile>, tiles: &mut u64| {
        for t in due {
            let bytes = f.get(&t.path()).await?;
            auditor.check_tile(t, &bytes)?;
            *tiles += 1;
        }
        Ok::<(), VerifyError>(())
    };
    for (data, level0) in auditor.data_tiles() {
        let (data_path, level0_path) = (data.path(), level0.path());
        let (d, h) = tokio::try_join!(f.get(&data_path), f.get(&level0_path))?;
        tiles += 2;
        let due = auditor.add_data_tile(data, &d, &h)?;
        // The tile decoded (the auditor checked it); remember the chains' issuers.
        for leaf in parse_data_tile(&d).unwrap_or_default() {
            issuers.extend(leaf.entry.chain_fingerprints);
        }
        check(&mut auditor, due, &mut tiles).await?;
    }
    let due = auditor.finish();
    check(&mut auditor, due, &mut tiles).await?;
    auditor.verify()?;
    for fp in &issuers {
        let name = hex::encode(fp);
        let der = f
            .get(&format!("issuer/{name}"))
            .await
            .map_err(|_| VerifyError::Issuer(name.clone()))?;
        if sha256(&der) != *fp {
            return Err(VerifyError::Issuer(name));
        }
    }
    Ok(VerifyReport {
        origin,
        size: signed.checkpoint.size,
        root: signed.checkpoint.root,
        signatures,
        consistent_with,
        tiles,
    })
}
