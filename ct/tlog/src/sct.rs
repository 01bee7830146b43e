//! Signed certificate timestamps (RFC 6962 §3.2) with the static-ct-api `leaf_index`
//! extension, and the TLS `digitally-signed` encoding of the log's signatures.

use crate::entry::{LogEntry, leaf_index_extensions};
use crate::key::{KeyError, LogKey};
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
pub fn sct_signed_data(entry: &LogEntry, timestamp: u64, index: u64) -> Vec<u8> {
    // The TimestampedEntry already is `timestamp || entry_type || signed_entry || extensions`.
    let mut out = vec![0u8, 0u8];
    out.extend_from_slice(&entry.timestamped_entry(timestamp, index));
    out
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
        assert!(crate::key::verify_p256(key.spki_der(), &msg, sig));
        assert_eq!(msg, sct_signed_data(&entry, sct.timestamp, 0x01_0203_0405));
    }
}
