//! C2SP signed-note signatures beside the RFC 6962 one: the log's Ed25519 note signature
//! (signed-note signature type 0x01, which C2SP tlog-tiles requires of a public log) and its
//! ML-DSA-44 `subtree/v1` cosignature (C2SP tlog-cosignature, type 0x06), and the Ed25519
//! `cosignature/v1` a witness adds (type 0x04), with their key IDs,
//! verifier keys (vkeys), signing and verification. Both keys live in aws-lc-rs.
//!
//! A signature line is `— <name> base64(key ID || signature)`; verifiers look for the line whose
//! name and key ID match a key they were configured with and ignore every other line.

use crate::checkpoint::Checkpoint;
use crate::merkle::sha256;
use aws_lc_rs::signature::{
    ED25519, Ed25519KeyPair, KeyPair, ML_DSA_44, ML_DSA_44_SIGNING, PqdsaKeyPair, UnparsedPublicKey,
};
use base64::Engine;
use base64::engine::general_purpose::STANDARD as B64;
use std::fmt;

/// Signed-note signature type of Ed25519 note signatures.
pub const SIGNATURE_TYPE_ED25519: u8 = 0x01;
/// Signed-note signature type of Ed25519 `cosignature/v1` cosignatures (witnesses).
pub const SIGNATURE_TYPE_COSIGNATURE_V1: u8 = 0x04;
/// Signed-note signature type of ML-DSA-44 `subtree/v1` cosignatures.
pub const SIGNATURE_TYPE_ML_DSA_44: u8 = 0x06;
/// Length of an ML-DSA-44 public key.
pub const ML_DSA_44_PUBLIC_KEY_LEN: usize = 1312;
/// Length of an ML-DSA-44 signature.
pub const ML_DSA_44_SIGNATURE_LEN: usize = 2420;
/// The domain-separation label of `subtree/v1` cosigned messages.
const SUBTREE_V1_LABEL: &[u8; 12] = b"subtree/v1\n\0";

/// Failures decoding keys or verifying note signatures.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[non_exhaustive]
pub enum NoteError {
    /// The bytes are not a PKCS#8 private key of the expected algorithm.
    #[error("not a PKCS#8 {0} private key")]
    BadKey(&'static str),
    /// A verifier key string is not `name+hex keyID+base64(type || key)` with a matching ID.
    #[error("malformed verifier key")]
    BadVkey,
    /// The crypto library failed to generate or sign.
    #[error("cryptographic operation failed")]
    Crypto,
    /// The note is not text, blank line, signature lines.
    #[error("malformed signed note")]
    MalformedNote,
    /// No signature line matches the key's name and key ID.
    #[error("no signature from key {0}")]
    Missing(String),
    /// The matching signature does not verify.
    #[error("invalid signature from key {0}")]
    BadSignature(String),
}

/// `SHA-256(name || "\n" || type || public key)[:4]`, the signed-note key ID.
pub fn key_id(name: &str, signature_type: u8, public_key: &[u8]) -> [u8; 4] {
    let mut data = Vec::with_capacity(name.len() + 2 + public_key.len());
    data.extend_from_slice(name.as_bytes());
    data.push(b'\n');
    data.push(signature_type);
    data.extend_from_slice(public_key);
    let h = sha256(&data);
    [h[0], h[1], h[2], h[3]]
}

/// A signed-note verifier key: `<name>+<hex key ID>+base64(type || public key)`.
pub fn vkey(name: &str, signature_type: u8, public_key: &[u8]) -> String {
    let mut material = vec![signature_type];
    material.extend_from_slice(public_key);
    format!(
        "{name}+{}+{}",
        hex::encode(key_id(name, signature_type, public_key)),
        B64.encode(material)
    )
}

/// A parsed verifier key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Vkey {
    /// The key name.
    pub name: String,
    /// The signature type byte.
    pub signature_type: u8,
    /// The raw public key.
    pub public_key: Vec<u8>,
}

/// Parses a verifier key and checks that its key ID matches its name and key.
pub fn parse_vkey(text: &str) -> Result<Vkey, NoteError> {
    let mut parts = text.trim().splitn(3, '+');
    let (Some(name), Some(id), Some(material), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err(NoteError::BadVkey);
    };
    let material = B64.decode(material).map_err(|_| NoteError::BadVkey)?;
    let (&signature_type, public_key) = material.split_first().ok_or(NoteError::BadVkey)?;
    if name.is_empty() || hex::encode(key_id(name, signature_type, public_key)) != id {
        return Err(NoteError::BadVkey);
    }
    Ok(Vkey {
        name: name.to_string(),
        signature_type,
        public_key: public_key.to_vec(),
    })
}

/// A signature line of a note.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NoteSignature {
    /// The key name.
    pub name: String,
    /// The key ID.
    pub key_id: [u8; 4],
    /// The signature bytes after the key ID.
    pub signature: Vec<u8>,
}

/// Splits a signed note into its text (ending in a newline) and signature lines.
pub fn parse_note(note: &str) -> Result<(&str, Vec<NoteSignature>), NoteError> {
    if note.bytes().any(|b| b < 0x20 && b != b'\n') {
        return Err(NoteError::MalformedNote);
    }
    let split = note.rfind("\n\n").ok_or(NoteError::MalformedNote)?;
    let (text, sigs) = (&note[..=split], &note[split + 2..]);
    let sigs = sigs.strip_suffix('\n').ok_or(NoteError::MalformedNote)?;
    let mut out = Vec::new();
    for line in sigs.split('\n') {
        let rest = line
            .strip_prefix("\u{2014} ")
            .ok_or(NoteError::MalformedNote)?;
        let (name, sig) = rest.split_once(' ').ok_or(NoteError::MalformedNote)?;
        let sig = B64.decode(sig).map_err(|_| NoteError::MalformedNote)?;
        if name.is_empty() || sig.len() < 4 {
            return Err(NoteError::MalformedNote);
        }
        out.push(NoteSignature {
            name: name.to_string(),
            key_id: [sig[0], sig[1], sig[2], sig[3]],
            signature: sig[4..].to_vec(),
        });
    }
    Ok((text, out))
}

/// The signature line `— <name> base64(key ID || signature)`.
pub fn signature_line(name: &str, key_id: [u8; 4], signature: &[u8]) -> String {
    let mut blob = key_id.to_vec();
    blob.extend_from_slice(signature);
    format!("\u{2014} {name} {}\n", B64.encode(blob))
}

/// The `subtree/v1` cosigned message for a whole checkpoint (start 0, end = size).
pub fn subtree_v1_message(cosigner: &str, timestamp: u64, checkpoint: &Checkpoint) -> Vec<u8> {
    let mut m = SUBTREE_V1_LABEL.to_vec();
    // Names are at most 255 bytes (the caller checks); truncating would break verification,
    // so an over-long name yields a message no verifier accepts for the full name.
    m.push(u8::try_from(cosigner.len()).unwrap_or(u8::MAX));
    m.extend_from_slice(cosigner.as_bytes());
    m.extend_from_slice(&timestamp.to_be_bytes());
    m.push(u8::try_from(checkpoint.origin.len()).unwrap_or(u8::MAX));
    m.extend_from_slice(checkpoint.origin.as_bytes());
    m.extend_from_slice(&0u64.to_be_bytes());
    m.extend_from_slice(&checkpoint.size.to_be_bytes());
    m.extend_from_slice(&checkpoint.root);
    m
}

/// The Ed25519 `cosignature/v1` signed message: header line, time line, then the note text.
pub fn cosignature_v1_message(timestamp: u64, text: &str) -> Vec<u8> {
    format!("cosignature/v1\ntime {timestamp}\n{text}").into_bytes()
}

/// An Ed25519 signed-note key.
pub struct Ed25519NoteKey {
    pair: Ed25519KeyPair,
}

impl fmt::Debug for Ed25519NoteKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Ed25519NoteKey")
            .field("public_key", &hex::encode(self.public_key()))
            .finish_non_exhaustive()
    }
}

impl Ed25519NoteKey {
    /// A fresh random key.
    pub fn generate() -> Result<Ed25519NoteKey, NoteError> {
        Ok(Ed25519NoteKey {
            pair: Ed25519KeyPair::generate().map_err(|_| NoteError::Crypto)?,
        })
    }

    /// A key from PKCS#8 DER.
    pub fn from_pkcs8_der(der: &[u8]) -> Result<Ed25519NoteKey, NoteError> {
        Ok(Ed25519NoteKey {
            pair: Ed25519KeyPair::from_pkcs8(der).map_err(|_| NoteError::BadKey("Ed25519"))?,
        })
    }

    /// PKCS#8 DER of the private key (the secret).
    pub fn to_pkcs8_der(&self) -> Result<Vec<u8>, NoteError> {
        Ok(self
            .pair
            .to_pkcs8v1()
            .map_err(|_| NoteError::Crypto)?
            .as_ref()
            .to_vec())
    }

    /// The 32-byte public key.
    pub fn public_key(&self) -> &[u8] {
        self.pair.public_key().as_ref()
    }

    /// The verifier key for `name`.
    pub fn vkey(&self, name: &str) -> String {
        vkey(name, SIGNATURE_TYPE_ED25519, self.public_key())
    }

    /// The signature line over the note `text` under `name`.
    pub fn sign_note(&self, name: &str, text: &str) -> String {
        let sig = self.pair.sign(text.as_bytes());
        signature_line(
            name,
            key_id(name, SIGNATURE_TYPE_ED25519, self.public_key()),
            sig.as_ref(),
        )
    }
}

impl Ed25519NoteKey {
    /// The `cosignature/v1` line by cosigner `name` over the checkpoint note `text` at
    /// `timestamp` (POSIX seconds), as a witness signs it (C2SP tlog-cosignature).
    pub fn cosign_v1(&self, name: &str, timestamp: u64, text: &str) -> String {
        let sig = self.pair.sign(&cosignature_v1_message(timestamp, text));
        let mut blob = timestamp.to_be_bytes().to_vec();
        blob.extend_from_slice(sig.as_ref());
        signature_line(
            name,
            key_id(name, SIGNATURE_TYPE_COSIGNATURE_V1, self.public_key()),
            &blob,
        )
    }
}

/// Verifies the Ed25519 `cosignature/v1` by cosigner `name` on `note`; returns its timestamp
/// (POSIX seconds).
pub fn verify_cosignature_v1(note: &str, name: &str, public_key: &[u8]) -> Result<u64, NoteError> {
    let (text, sigs) = parse_note(note)?;
    let sig = find(
        &sigs,
        name,
        key_id(name, SIGNATURE_TYPE_COSIGNATURE_V1, public_key),
    )
    .ok_or_else(|| NoteError::Missing(name.to_string()))?;
    let bad = || NoteError::BadSignature(name.to_string());
    let (ts, raw) = sig.signature.split_at_checked(8).ok_or_else(bad)?;
    let mut ts_be = [0u8; 8];
    ts_be.copy_from_slice(ts);
    let timestamp = u64::from_be_bytes(ts_be);
    UnparsedPublicKey::new(&ED25519, public_key)
        .verify(&cosignature_v1_message(timestamp, text), raw)
        .map_err(|_| bad())?;
    Ok(timestamp)
}

/// An ML-DSA-44 cosigning key (C2SP tlog-cosignature `subtree/v1`).
pub struct MlDsa44Key {
    pair: PqdsaKeyPair,
}

impl fmt::Debug for MlDsa44Key {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MlDsa44Key")
            .field("key_id", &hex::encode(&sha256(self.public_key())[..4]))
            .finish_non_exhaustive()
    }
}

impl MlDsa44Key {
    /// A fresh random key.
    pub fn generate() -> Result<MlDsa44Key, NoteError> {
        Ok(MlDsa44Key {
            pair: PqdsaKeyPair::generate(&ML_DSA_44_SIGNING).map_err(|_| NoteError::Crypto)?,
        })
    }

    /// A key from PKCS#8 DER.
    pub fn from_pkcs8_der(der: &[u8]) -> Result<MlDsa44Key, NoteError> {
        Ok(MlDsa44Key {
            pair: PqdsaKeyPair::from_pkcs8(&ML_DSA_44_SIGNING, der)
                .map_err(|_| NoteError::BadKey("ML-DSA-44"))?,
        })
    }

    /// PKCS#8 DER of the private key (the secret).
    pub fn to_pkcs8_der(&self) -> Result<Vec<u8>, NoteError> {
        Ok(self
            .pair
            .to_pkcs8v1()
            .map_err(|_| NoteError::Crypto)?
            .as_ref()
            .to_vec())
    }

    /// The 1312-byte public key.
    pub fn public_key(&self) -> &[u8] {
        self.pair.public_key().as_ref()
    }

    /// The verifier key for cosigner `name`.
    pub fn vkey(&self, name: &str) -> String {
        vkey(name, SIGNATURE_TYPE_ML_DSA_44, self.public_key())
    }

    /// The `subtree/v1` cosignature line by cosigner `name` over `checkpoint` at `timestamp`
    /// (POSIX seconds).
    pub fn cosign_checkpoint(
        &self,
        name: &str,
        timestamp: u64,
        checkpoint: &Checkpoint,
    ) -> Result<String, NoteError> {
        if name.is_empty() || name.len() > 255 || checkpoint.origin.len() > 255 {
            return Err(NoteError::Crypto);
        }
        let msg = subtree_v1_message(name, timestamp, checkpoint);
        let mut sig = vec![0u8; ML_DSA_44_SIGNATURE_LEN];
        let n = self
            .pair
            .sign(&msg, &mut sig)
            .map_err(|_| NoteError::Crypto)?;
        sig.truncate(n);
        let mut blob = timestamp.to_be_bytes().to_vec();
        blob.extend_from_slice(&sig);
        Ok(signature_line(
            name,
            key_id(name, SIGNATURE_TYPE_ML_DSA_44, self.public_key()),
            &blob,
        ))
    }
}

fn find<'a>(sigs: &'a [NoteSignature], name: &str, id: [u8; 4]) -> Option<&'a NoteSignature> {
    sigs.iter().find(|s| s.name == name && s.key_id == id)
}

/// Verifies the Ed25519 note signature by key `name` (public key `public_key`) on `note`, and
/// returns the note text.
pub fn verify_ed25519<'a>(
    note: &'a str,
    name: &str,
    public_key: &[u8],
) -> Result<&'a str, NoteError> {
    let (text, sigs) = parse_note(note)?;
    let sig = find(
        &sigs,
        name,
        key_id(name, SIGNATURE_TYPE_ED25519, public_key),
    )
    .ok_or_else(|| NoteError::Missing(name.to_string()))?;
    UnparsedPublicKey::new(&ED25519, public_key)
        .verify(text.as_bytes(), &sig.signature)
        .map_err(|_| NoteError::BadSignature(name.to_string()))?;
    Ok(text)
}

/// Verifies the ML-DSA-44 `subtree/v1` cosignature by cosigner `name` on the checkpoint `note`,
/// and returns its timestamp (POSIX seconds).
pub fn verify_ml_dsa_44_cosignature(
    note: &str,
    name: &str,
    public_key: &[u8],
) -> Result<u64, NoteError> {
    let (text, sigs) = parse_note(note)?;
    let checkpoint = Checkpoint::parse_body(text).map_err(|_| NoteError::MalformedNote)?;
    let sig = find(
        &sigs,
        name,
        key_id(name, SIGNATURE_TYPE_ML_DSA_44, public_key),
    )
    .ok_or_else(|| NoteError::Missing(name.to_string()))?;
    let bad = || NoteError::BadSignature(name.to_string());
    let (ts, raw) = sig.signature.split_at_checked(8).ok_or_else(bad)?;
    let mut ts_be = [0u8; 8];
    ts_be.copy_from_slice(ts);
    let timestamp = u64::from_be_bytes(ts_be);
    let msg = subtree_v1_message(name, timestamp, &checkpoint);
    UnparsedPublicKey::new(&ML_DSA_44, public_key)
        .verify(&msg, raw)
        .map_err(|_| bad())?;
    Ok(timestamp)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cp() -> Checkpoint {
        Checkpoint {
            origin: "ct.example.org/2026h1".into(),
            size: 1234,
            root: [7; 32],
        }
    }

    #[test]
    fn ed25519_note_signature_verifies_and_key_id_follows_signed_note() {
        let key = Ed25519NoteKey::generate().unwrap();
        let again = Ed25519NoteKey::from_pkcs8_der(&key.to_pkcs8_der().unwrap()).unwrap();
        assert_eq!(again.public_key(), key.public_key());
        let c = cp();
        let note = format!("{}\n{}", c.body(), key.sign_note(&c.origin, &c.body()));
        assert_eq!(
            verify_ed25519(&note, &c.origin, key.public_key()),
            Ok(&*c.body())
        );

        // Key ID: SHA-256(name || 0x0A || 0x01 || key)[:4], computed here independently.
        let mut data = b"ct.example.org/2026h1\n\x01".to_vec();
        data.extend_from_slice(key.public_key());
        let (_, sigs) = parse_note(&note).unwrap();
        assert_eq!(sigs[0].key_id, sha256(&data)[..4]);
        assert_eq!(sigs[0].signature.len(), 64);

        let v = parse_vkey(&key.vkey(&c.origin)).unwrap();
        assert_eq!(v.signature_type, 1);
        assert_eq!(v.public_key, key.public_key());
        assert_eq!(parse_vkey("a+00000000+AQ=="), Err(NoteError::BadVkey));

        let tampered = note.replace("1234", "1235");
        assert_eq!(
            verify_ed25519(&tampered, &c.origin, key.public_key()),
            Err(NoteError::BadSignature(c.origin.clone()))
        );
        let other = Ed25519NoteKey::generate().unwrap();
        assert_eq!(
            verify_ed25519(&note, &c.origin, other.public_key()),
            Err(NoteError::Missing(c.origin.clone()))
        );
    }

    #[test]
    fn ed25519_cosignature_v1_signs_header_time_and_body() {
        let key = Ed25519NoteKey::generate().unwrap();
        let c = cp();
        let line = key.cosign_v1("witness.example/w1", 1_679_315_147, &c.body());
        let note = format!("{}\n{line}", c.body());
        assert_eq!(
            verify_cosignature_v1(&note, "witness.example/w1", key.public_key()),
            Ok(1_679_315_147)
        );
        // The signed message as the spec spells it.
        assert_eq!(
            cosignature_v1_message(1_679_315_147, &c.body()),
            b"cosignature/v1\ntime 1679315147\nct.example.org/2026h1\n1234\nBwcHBwcHBwcHBwcHBwcHBwcHBwcHBwcHBwcHBwcHBwc=\n"
        );
        let (_, sigs) = parse_note(&note).unwrap();
        let mut data = b"witness.example/w1\n\x04".to_vec();
        data.extend_from_slice(key.public_key());
        assert_eq!(sigs[0].key_id, sha256(&data)[..4]);
        // A note signature (type 0x01) by the same key is not a cosignature.
        let plain = format!(
            "{}\n{}",
            c.body(),
            key.sign_note("witness.example/w1", &c.body())
        );
        assert_eq!(
            verify_cosignature_v1(&plain, "witness.example/w1", key.public_key()),
            Err(NoteError::Missing("witness.example/w1".into()))
        );
        let tampered = note.replace("1234", "1230");
        assert_eq!(
            verify_cosignature_v1(&tampered, "witness.example/w1", key.public_key()),
            Err(NoteError::BadSignature("witness.example/w1".into()))
        );
    }

    #[test]
    fn ml_dsa_44_cosignature_verifies_and_binds_the_cosigner_name() {
        let key = MlDsa44Key::generate().unwrap();
        assert_eq!(key.public_key().len(), ML_DSA_44_PUBLIC_KEY_LEN);
        let again = MlDsa44Key::from_pkcs8_der(&key.to_pkcs8_der().unwrap()).unwrap();
        assert_eq!(again.public_key(), key.public_key());
        let c = cp();
        let line = key
            .cosign_checkpoint("witness.example/w1", 1_700_000_000, &c)
            .unwrap();
        let note = format!("{}\n{line}", c.body());
        assert_eq!(
            verify_ml_dsa_44_cosignature(&note, "witness.example/w1", key.public_key()),
            Ok(1_700_000_000)
        );
        let (_, sigs) = parse_note(&note).unwrap();
        assert_eq!(sigs[0].signature.len(), 8 + ML_DSA_44_SIGNATURE_LEN);

        // The message layout of tlog-cosignature, spelled out.
        let msg = subtree_v1_message("w", 5, &c);
        let mut want = b"subtree/v1\n\0\x01w".to_vec();
        want.extend_from_slice(&5u64.to_be_bytes());
        want.push(21);
        want.extend_from_slice(b"ct.example.org/2026h1");
        want.extend_from_slice(&0u64.to_be_bytes());
        want.extend_from_slice(&1234u64.to_be_bytes());
        want.extend_from_slice(&[7; 32]);
        assert_eq!(msg, want);

        // Renaming the line (same key, other name) fails: the name is signed.
        let (_, blob) = line.trim_end().rsplit_once(' ').unwrap();
        let mut raw = B64.decode(blob).unwrap();
        raw[..4].copy_from_slice(&key_id("w2", SIGNATURE_TYPE_ML_DSA_44, key.public_key()));
        let renamed = format!("{}\n\u{2014} w2 {}\n", c.body(), B64.encode(raw));
        assert_eq!(
            verify_ml_dsa_44_cosignature(&renamed, "w2", key.public_key()),
            Err(NoteError::BadSignature("w2".into()))
        );
        let tampered = note.replace("1234", "1233");
        assert!(
            verify_ml_dsa_44_cosignature(&tampered, "witness.example/w1", key.public_key())
                .is_err()
        );
    }
}
