//! C2SP tlog-checkpoint notes signed per static-ct-api: the signed-note format with an RFC 6962
//! `TreeHeadSignature` (signature type 0x05, `RFC6962NoteSignature`), and its verification.

use crate::key::{KeyError, LogKey, verify_p256};
use crate::merkle::{Hash, sha256};
use crate::note::{Ed25519NoteKey, MlDsa44Key};
use crate::sct::{digitally_signed, parse_digitally_signed};
use base64::Engine;
use base64::engine::general_purpose::STANDARD as B64;

/// The signed-note signature type of RFC 6962 tree head signatures.
pub const SIGNATURE_TYPE_RFC6962: u8 = 0x05;

/// Failures parsing or verifying a checkpoint.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[non_exhaustive]
pub enum CheckpointError {
    /// The note text is not origin / size / root hash lines.
    #[error("malformed checkpoint body")]
    MalformedBody,
    /// The note has no signature block, or a malformed signature line.
    #[error("malformed signed note")]
    MalformedNote,
    /// No signature line from the log's key name and key ID.
    #[error("no signature from the log key")]
    NoLogSignature,
    /// The log's signature does not verify.
    #[error("invalid log signature")]
    BadSignature,
    /// The origin is not the expected one.
    #[error("unexpected origin")]
    WrongOrigin,
}

/// A checkpoint's body: origin, tree size, root hash.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Checkpoint {
    /// The log's origin line (its submission prefix without scheme or trailing slash).
    pub origin: String,
    /// The number of entries.
    pub size: u64,
    /// The RFC 6962 root hash.
    pub root: Hash,
}

/// A verified signed checkpoint.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SignedCheckpoint {
    /// The body.
    pub checkpoint: Checkpoint,
    /// The `TreeHeadSignature` timestamp (ms since the epoch).
    pub timestamp: u64,
}

impl Checkpoint {
    /// The note text: three lines, each ending in a newline.
    pub fn body(&self) -> String {
        format!(
            "{}\n{}\n{}\n",
            self.origin,
            self.size,
            B64.encode(self.root)
        )
    }

    /// Parses a note text without extension lines (static-ct-api forbids them with the RFC
    /// 6962 signature type).
    pub fn parse_body(text: &str) -> Result<Checkpoint, CheckpointError> {
        let lines = text
            .strip_suffix('\n')
            .ok_or(CheckpointError::MalformedBody)?;
        let mut it = lines.split('\n');
        let (Some(origin), Some(size), Some(root), None) =
            (it.next(), it.next(), it.next(), it.next())
        else {
            return Err(CheckpointError::MalformedBody);
        };
        if origin.is_empty()
            || size.is_empty()
            || !size.bytes().all(|b| b.is_ascii_digit())
            || (size.len() > 1 && size.starts_with('0'))
        {
            return Err(CheckpointError::MalformedBody);
        }
        let size = size.parse().map_err(|_| CheckpointError::MalformedBody)?;
        let root = B64
            .decode(root)
            .map_err(|_| CheckpointError::MalformedBody)?;
        let root: Hash = root
            .try_into()
            .map_err(|_| CheckpointError::MalformedBody)?;
        Ok(Checkpoint {
            origin: origin.to_string(),
            size,
            root,
        })
    }
}

/// The signed-note key ID: `SHA-256(key name || 0x0A || 0x05 || LogID)[:4]`.
pub fn key_id(name: &str, log_id: &Hash) -> [u8; 4] {
    let mut data = name.as_bytes().to_vec();
    data.push(b'\n');
    data.push(SIGNATURE_TYPE_RFC6962);
    data.extend_from_slice(log_id);
    let h = sha256(&data);
    [h[0], h[1], h[2], h[3]]
}

/// The RFC 6962 §3.5 `TreeHeadSignature` input.
pub fn tree_head_signed_data(timestamp: u64, size: u64, root: &Hash) -> Vec<u8> {
    let mut out = vec![0u8 /* v1 */, 1u8 /* tree_hash */];
    out.extend_from_slice(&timestamp.to_be_bytes());
    out.extend_from_slice(&size.to_be_bytes());
    out.extend_from_slice(root);
    out
}

/// Signs `checkpoint` at `timestamp` and returns the full signed note.
pub fn sign_checkpoint(
    key: &LogKey,
    checkpoint: &Checkpoint,
    timestamp: u64,
) -> Result<String, KeyError> {
    let sig = key.sign(&tree_head_signed_data(
        timestamp,
        checkpoint.size,
        &checkpoint.root,
    ))?;
    let mut blob = key_id(&checkpoint.origin, &key.log_id()).to_vec();
    blob.extend_from_slice(&timestamp.to_be_bytes());
    blob.extend_from_slice(&digitally_signed(&sig));
    Ok(format!(
        "{}\n\u{2014} {} {}\n",
        checkpoint.body(),
        checkpoint.origin,
        B64.encode(blob)
    ))
}

/// The log's signed-note keys beside its RFC 6962 key.
#[derive(Debug)]
pub struct NoteKeys {
    /// Signs the note text (signed-note type 0x01) under the origin as key name.
    pub ed25519: Ed25519NoteKey,
    /// Cosigns the checkpoint (tlog-cosignature `subtree/v1`) under the origin as cosigner name.
    pub ml_dsa_44: MlDsa44Key,
}

/// Signs `checkpoint` at `timestamp` (ms) with the RFC 6962 key, then adds the Ed25519 note
/// signature and the ML-DSA-44 cosignature (timestamp in seconds), each under the origin.
pub fn sign_checkpoint_with_notes(
    key: &LogKey,
    notes: &NoteKeys,
    checkpoint: &Checkpoint,
    timestamp: u64,
) -> Result<String, KeyError> {
    let mut note = sign_checkpoint(key, checkpoint, timestamp)?;
    let body = checkpoint.body();
    note.push_str(&notes.ed25519.sign_note(&checkpoint.origin, &body));
    note.push_str(
        &notes
            .ml_dsa_44
            .cosign_checkpoint(&checkpoint.origin, timestamp / 1000, checkpoint)
            .map_err(|_| KeyError::Crypto)?,
    );
    Ok(note)
}

/// Verifies a signed checkpoint note from the log with `origin` and public key `spki_der`.
/// Signatures from other keys are ignored, as signed-note requires.
pub fn verify_checkpoint(
    note: &str,
    origin: &str,
    spki_der: &[u8],
) -> Result<SignedCheckpoint, CheckpointError> {
    if note.bytes().any(|b| b < 0x20 && b != b'\n') {
        return Err(CheckpointError::MalformedNote);
    }
    let split = note.rfind("\n\n").ok_or(CheckpointError::MalformedNote)?;
    let (text, sigs) = (&note[..=split], &note[split + 2..]);
    let checkpoint = Checkpoint::parse_body(text)?;
    if checkpoint.origin != origin {
        return Err(CheckpointError::WrongOrigin);
    }
    let want_id = key_id(origin, &sha256(spki_der));
    let sigs = sigs
        .strip_suffix('\n')
        .ok_or(CheckpointError::MalformedNote)?;
    let mut verified = None;
    for line in sigs.split('\n') {
        let rest = line
            .strip_prefix("\u{2014} ")
            .ok_or(CheckpointError::MalformedNote)?;
        let (name, sig) = rest.split_once(' ').ok_or(CheckpointError::MalformedNote)?;
        let sig = B64
            .decode(sig)
            .map_err(|_| CheckpointError::MalformedNote)?;
        if name != origin || sig.len() < 4 || sig[..4] != want_id {
            continue;
        }
        let body = &sig[4..];
        let (ts, ds) = body
            .split_at_checked(8)
            .ok_or(CheckpointError::BadSignature)?;
        let mut ts_be = [0u8; 8];
        ts_be.copy_from_slice(ts);
        let timestamp = u64::from_be_bytes(ts_be);
        let raw = parse_digitally_signed(ds).ok_or(CheckpointError::BadSignature)?;
        let msg = tree_head_signed_data(timestamp, checkpoint.size, &checkpoint.root);
        if !verify_p256(spki_der, &msg, raw) {
            return Err(CheckpointError::BadSignature);
        }
        verified = Some(timestamp);
    }
    let timestamp = verified.ok_or(CheckpointError::NoLogSignature)?;
    Ok(SignedCheckpoint {
        checkpoint,
        timestamp,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn checkpoint_round_trips_and_verifies() {
        let key = LogKey::generate().unwrap();
        let cp = Checkpoint {
            origin: "ct.example.org/2026h1".into(),
            size: 70_000,
            root: [0xab; 32],
        };
        let note = sign_checkpoint(&key, &cp, 1_700_000_000_000).unwrap();
        let lines: Vec<&str> = note.lines().collect();
        assert_eq!(lines[0], "ct.example.org/2026h1");
        assert_eq!(lines[1], "70000");
        assert_eq!(lines[3], "");
        assert!(lines[4].starts_with("\u{2014} ct.example.org/2026h1 "));
        let v = verify_checkpoint(&note, &cp.origin, key.spki_der()).unwrap();
        assert_eq!(v.checkpoint, cp);
        assert_eq!(v.timestamp, 1_700_000_000_000);

        // Signature blob: key ID (4) + timestamp (8) + hash/sig alg (2) + length (2) + DER.
        let blob = B64.decode(lines[4].rsplit(' ').next().unwrap()).unwrap();
        assert_eq!(&blob[..4], &key_id(&cp.origin, &key.log_id()));
        assert_eq!(&blob[12..14], &[4, 3]);

        // Unknown signatures are ignored; a tampered body fails.
        let other = LogKey::generate().unwrap();
        let foreign = sign_checkpoint(&other, &cp, 5).unwrap();
        let foreign_line = foreign.lines().last().unwrap();
        let both = format!("{note}{foreign_line}\n");
        assert!(verify_checkpoint(&both, &cp.origin, key.spki_der()).is_ok());
        assert_eq!(
            verify_checkpoint(&foreign, &cp.origin, key.spki_der()),
            Err(CheckpointError::NoLogSignature)
        );
        let tampered = note.replace("70000", "70001");
        assert_eq!(
            verify_checkpoint(&tampered, &cp.origin, key.spki_der()),
            Err(CheckpointError::BadSignature)
        );
        assert_eq!(
            verify_checkpoint(&note, "other.example/log", key.spki_der()),
            Err(CheckpointError::WrongOrigin)
        );
        assert!(Checkpoint::parse_body("a\n01\nAAAA\n").is_err());
        assert!(Checkpoint::parse_body("a\n1\nAAAA\n").is_err());
        assert_eq!(Checkpoint::parse_body(&cp.body()).unwrap(), cp);
    }

    #[test]
    fn checkpoint_carries_rfc6962_ed25519_and_ml_dsa_signatures() {
        let key = LogKey::generate().unwrap();
        let notes = NoteKeys {
            ed25519: Ed25519NoteKey::generate().unwrap(),
            ml_dsa_44: MlDsa44Key::generate().unwrap(),
        };
        let cp = Checkpoint {
            origin: "ct.example.org/2026h1".into(),
            size: 9,
            root: [1; 32],
        };
        let note = sign_checkpoint_with_notes(&key, &notes, &cp, 1_700_000_000_123).unwrap();
        assert_eq!(
            note.lines().filter(|l| l.starts_with('\u{2014}')).count(),
            3
        );
        assert_eq!(
            verify_checkpoint(&note, &cp.origin, key.spki_der())
                .unwrap()
                .checkpoint,
            cp
        );
        crate::note::verify_ed25519(&note, &cp.origin, notes.ed25519.public_key()).unwrap();
        assert_eq!(
            crate::note::verify_ml_dsa_44_cosignature(
                &note,
                &cp.origin,
                notes.ml_dsa_44.public_key()
            ),
            Ok(1_700_000_000)
        );
    }
}
