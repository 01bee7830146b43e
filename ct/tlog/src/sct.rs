//! Signed certificate timestamps (RFC 6962 §3.2) with the static-ct-api `leaf_index`
//! extension, and the TLS `digitally-signed` encoding of the log's signatures: signing on the
//! log's side, verification on the submitter's.

use crate::entry::{LogEntry, SignedEntry, leaf_index_extensions, timestamped_entry};
use crate::key::{KeyError, LogKey, verify_p256};
use base64::Engine;
use base64::engine::general_purpose::STANDARD as B64;
use serde::{Deserialize, Serialize};

/// `HashAlgorithm.sha256` and `SignatureAlgorithm.ecdsa` of the `digitally-signed` struct.
const SHA256_ECDSA: [u8; 2] = [4, 3];

/// Wraps an ASN.1 ECDSA signature as a TLS `digitally-signed` value (sha256, ecdsa).
pub fn digitally_signed(signature: &[u8]) -> Vec<u8> {
    let mut out = SHA256_ECDSA.to_vec();
    let len = u16::try_from(signature.len()).unwrap_or(u16::MAX);
    out.extend_from_slice(&len.to_be_bytes());
    out.extend_from_slice(signature);
    out
}

/// The raw signature inside a `digitally-signed` value if it is (sha256, ecdsa) and well formed.
pub fn parse_digitally_signed(ds: &[u8]) -> Option<&[u8]> {
    let (head, rest) = ds.split_at_checked(4)?;
    if head[..2] != SHA256_ECDSA {
        return None;
    }
    let len = usize::from(u16::from_be_bytes([head[2], head[3]]));
    (rest.len() == len).then_some(rest)
}

/// The bytes an SCT signature covers: `sct_version(v1) || signature_type(certificate_timestamp)
/// || timestamp || entry_type || signed_entry || extensions`.
pub fn signed_data(entry: SignedEntry<'_>, timestamp: u64, extensions: &[u8]) -> Vec<u8> {
    // The TimestampedEntry already is `timestamp || entry_type || signed_entry || extensions`.
    let mut out = vec![0u8, 0u8];
    out.extend_from_slice(&timestamped_entry(entry, timestamp, extensions));
    out
}

/// The bytes this log's SCT for `entry` sequenced at `index` covers (its only extension is
/// `leaf_index`).
pub fn sct_signed_data(entry: &LogEntry, timestamp: u64, index: u64) -> Vec<u8> {
    signed_data(
        entry.kind.signed(),
        timestamp,
        &leaf_index_extensions(index),
    )
}

/// Why an SCT's signature is not accepted.
#[derive(Debug, Clone, Copy, thiserror::Error, PartialEq, Eq)]
#[non_exhaustive]
pub enum SctVerifyError {
    /// The signature is not a well-formed (sha256, ecdsa) `digitally-signed` value.
    #[error("malformed SCT signature")]
    MalformedSignature,
    /// The certificate or TBSCertificate is too long for its 24-bit length prefix.
    #[error("entry too large for an SCT")]
    EntryTooLarge,
    /// The extensions are too long for their 16-bit length prefix.
    #[error("SCT extensions too large")]
    ExtensionsTooLarge,
    /// The signature does not verify under the log's key over this entry.
    #[error("SCT signature does not verify")]
    BadSignature,
}

/// Checks that `signature` (the SCT's `digitally-signed` value) was made by the log whose
/// SubjectPublicKeyInfo is `log_spki` over `entry` with the SCT's `timestamp` and `extensions`.
/// (Whether the SCT's LogID names that log is the caller's check: it is `sha256(log_spki)`.)
pub fn verify_sct_signature(
    log_spki: &[u8],
    entry: SignedEntry<'_>,
    timestamp: u64,
    extensions: &[u8],
    signature: &[u8],
) -> Result<(), SctVerifyError> {
    let raw = parse_digitally_signed(signature).ok_or(SctVerifyError::MalformedSignature)?;
    if !entry.fits() {
        return Err(SctVerifyError::EntryTooLarge);
    }
    if extensions.len() > usize::from(u16::MAX) {
        return Err(SctVerifyError::ExtensionsTooLarge);
    }
    if verify_p256(log_spki, &signed_data(entry, timestamp, extensions), raw) {
        Ok(())
    } else {
        Err(SctVerifyError::BadSignature)
    }
}

/// The JSON body of an `add-chain`/`add-pre-chain` response (RFC 6962 §4.1).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SctResponse {
    /// Always 0 (v1).
    pub sct_version: u8,
    /// The LogID, base64.
    pub id: String,
    /// Milliseconds since the epoch.
    pub timestamp: u64,
    /// The `CtExtensions`, base64.
    pub extensions: String,
    /// The `digitally-signed` signature, base64.
    pub signature: String,
}

/// Signs the SCT of `entry` sequenced at `index` with `timestamp`.
pub fn sign_sct(
    key: &LogKey,
    entry: &LogEntry,
    timestamp: u64,
    index: u64,
) -> Result<SctResponse, KeyError> {
    let signature = key.sign(&sct_signed_data(entry, timestamp, index))?;
    Ok(SctResponse {
        sct_version: 0,
        id: B64.encode(key.log_id()),
        timestamp,
        extensions: B64.encode(leaf_index_extensions(index)),
        signature: B64.encode(digitally_signed(&signature)),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::entry::EntryKind;

    /// Builds the signed struct field by field, independently of `LogEntry`'s encoders.
    fn independent_signed_data(cert: &[u8], ts: u64, index: u64) -> Vec<u8> {
        let mut v = vec![0u8 /* v1 */, 0u8 /* certificate_timestamp */];
        v.extend_from_slice(&ts.to_be_bytes());
        v.extend_from_slice(&[0, 0]); // x509_entry
        let len = cert.len() as u32;
        v.extend_from_slice(&[(len >> 16) as u8, (len >> 8) as u8, len as u8]);
        v.extend_from_slice(cert);
        v.extend_from_slice(&[0, 8]); // extensions length
        v.push(0); // leaf_index
        v.extend_from_slice(&[0, 5]);
        v.extend_from_slice(&index.to_be_bytes()[3..]);
        v
    }

    #[test]
    fn sct_signature_verifies_over_independent_encoding() {
        let key = LogKey::generate().unwrap();
        let cert = vec![0x30, 0x03, 1, 2, 3];
        let entry = LogEntry {
            kind: EntryKind::X509 {
                certificate: cert.clone(),
            },
            chain_fingerprints: vec![[7; 32]],
        };
        let sct = sign_sct(&key, &entry, 1_700_000_000_123, 0x01_0203_0405).unwrap();
        assert_eq!(sct.sct_version, 0);
        assert_eq!(
            B64.decode(&sct.id).unwrap(),
            crate::merkle::sha256(key.spki_der())
        );
        let ext = B64.decode(&sct.extensions).unwrap();
        assert_eq!(ext, vec![0, 0, 5, 1, 2, 3, 4, 5]);
        let ds = B64.decode(&sct.signature).unwrap();
        let sig = parse_digitally_signed(&ds).unwrap();
        let msg = independent_signed_data(&cert, sct.timestamp, 0x01_0203_0405);
        assert!(verify_p256(key.spki_der(), &msg, sig));
        assert_eq!(msg, sct_signed_data(&entry, sct.timestamp, 0x01_0203_0405));
    }

    #[test]
    fn verification_accepts_the_logs_scts_and_nothing_else() {
        let key = LogKey::generate().unwrap();
        let entry = LogEntry {
            kind: EntryKind::Precert {
                issuer_key_hash: [5; 32],
                tbs_certificate: vec![0x30, 0x02, 9, 9],
                pre_certificate: vec![0x30, 0x01, 7],
            },
            chain_fingerprints: vec![],
        };
        let sct = sign_sct(&key, &entry, 1_700_000_000_000, 42).unwrap();
        let ext = B64.decode(&sct.extensions).unwrap();
        let sig = B64.decode(&sct.signature).unwrap();
        let signed = entry.kind.signed();
        let spki = key.spki_der();
        let verify = |spki: &[u8], e: SignedEntry<'_>, ts: u64, ext: &[u8], sig: &[u8]| {
            verify_sct_signature(spki, e, ts, ext, sig)
        };
        assert_eq!(verify(spki, signed, sct.timestamp, &ext, &sig), Ok(()));

        let bad = Err(SctVerifyError::BadSignature);
        assert_eq!(verify(spki, signed, sct.timestamp + 1, &ext, &sig), bad);
        assert_eq!(
            verify(
                spki,
                signed,
                sct.timestamp,
                &leaf_index_extensions(43),
                &sig
            ),
            bad
        );
        let other_hash = [6; 32];
        let other = SignedEntry::Precert {
            issuer_key_hash: &other_hash,
            tbs_certificate: &[0x30, 0x02, 9, 9],
        };
        assert_eq!(verify(spki, other, sct.timestamp, &ext, &sig), bad);
        // The same bytes as an x509_entry are a different entry.
        let as_x509 = SignedEntry::X509(&[0x30, 0x02, 9, 9]);
        assert_eq!(verify(spki, as_x509, sct.timestamp, &ext, &sig), bad);
        let other_key = LogKey::generate().unwrap();
        assert_eq!(
            verify(other_key.spki_der(), signed, sct.timestamp, &ext, &sig),
            bad
        );

        let mut truncated = sig.clone();
        truncated.pop();
        assert_eq!(
            verify(spki, signed, sct.timestamp, &ext, &truncated),
            Err(SctVerifyError::MalformedSignature)
        );
        let mut rsa = sig.clone();
        rsa[1] = 1; // SignatureAlgorithm.rsa
        assert_eq!(
            verify(spki, signed, sct.timestamp, &ext, &rsa),
            Err(SctVerifyError::MalformedSignature)
        );
        let long = vec![0u8; 1 << 24];
        let too_large = SignedEntry::X509(&long);
        assert_eq!(
            verify(spki, too_large, sct.timestamp, &ext, &sig),
            Err(SctVerifyError::EntryTooLarge)
        );
        assert_eq!(
            verify(spki, signed, sct.timestamp, &vec![0u8; 1 << 16], &sig),
            Err(SctVerifyError::ExtensionsTooLarge)
        );
    }
}
