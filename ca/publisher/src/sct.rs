//! Signed certificate timestamps as the CA handles them: decoded from a log's JSON answer,
//! checked against the log's key, and TLS-encoded into the `SignedCertificateTimestampList`
//! that the final certificate embeds (RFC 6962 §3.2, §3.3). No I/O.

use base64::Engine;
use base64::engine::general_purpose::STANDARD as B64;
use cairn_tlog::entry::SignedEntry;
use cairn_tlog::sct::{SctResponse, SctVerifyError, verify_sct_signature};

/// A decoded v1 SCT.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Sct {
    /// The LogID: SHA-256 of the log's SubjectPublicKeyInfo.
    pub log_id: [u8; 32],
    /// Milliseconds since the epoch.
    pub timestamp: u64,
    /// The `CtExtensions` bytes.
    pub extensions: Vec<u8>,
    /// The TLS `digitally-signed` struct (hash, signature algorithm, length-prefixed signature).
    pub signature: Vec<u8>,
}

/// Why a log's answer is not a usable SCT.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum SctError {
    /// Not version 1.
    #[error("unsupported SCT version {0}")]
    Version(u8),
    /// A field is not base64 or has the wrong size.
    #[error("malformed SCT field {0}")]
    Malformed(&'static str),
    /// The LogID is not the configured log's.
    #[error("SCT from an unexpected log ID")]
    WrongLog,
    /// The signature does not verify under the log's key.
    #[error("SCT signature does not verify")]
    BadSignature,
}

impl Sct {
    /// Decodes an `add-chain`/`add-pre-chain` answer.
    pub fn from_response(r: &SctResponse) -> Result<Sct, SctError> {
        if r.sct_version != 0 {
            return Err(SctError::Version(r.sct_version));
        }
        let log_id: [u8; 32] = B64
            .decode(&r.id)
            .ok()
            .and_then(|v| v.try_into().ok())
            .ok_or(SctError::Malformed("id"))?;
        let extensions = B64
            .decode(&r.extensions)
            .map_err(|_| SctError::Malformed("extensions"))?;
        let signature = B64
            .decode(&r.signature)
            .map_err(|_| SctError::Malformed("signature"))?;
        if extensions.len() > usize::from(u16::MAX) || signature.len() > usize::from(u16::MAX) {
            return Err(SctError::Malformed("length"));
        }
        if cairn_tlog::sct::parse_digitally_signed(&signature).is_none() {
            return Err(SctError::Malformed("signature"));
        }
        Ok(Sct {
            log_id,
            timestamp: r.timestamp,
            extensions,
            signature,
        })
    }

    /// Checks that this SCT was issued by the log with SubjectPublicKeyInfo `log_spki` for the
    /// precertificate `precert_der` issued by the CA with SubjectPublicKeyInfo `issuer_spki`.
    pub fn verify_precert(
        &self,
        log_spki: &[u8],
        precert_der: &[u8],
        issuer_spki: &[u8],
    ) -> Result<(), SctError> {
        if self.log_id != cairn_tlog::merkle::sha256(log_spki) {
            return Err(SctError::WrongLog);
        }
        let tbs = cairn_tlog::precert::tbs_without_poison(precert_der)
            .ok_or(SctError::Malformed("precertificate"))?;
        let issuer_key_hash = cairn_tlog::merkle::sha256(issuer_spki);
        let entry = SignedEntry::Precert {
            issuer_key_hash: &issuer_key_hash,
            tbs_certificate: &tbs,
        };
        verify_sct_signature(
            log_spki,
            entry,
            self.timestamp,
            &self.extensions,
            &self.signature,
        )
        .map_err(|e| match e {
            SctVerifyError::MalformedSignature => SctError::Malformed("signature"),
            SctVerifyError::EntryTooLarge => SctError::Malformed("precertificate"),
            SctVerifyError::ExtensionsTooLarge => SctError::Malformed("extensions"),
            _ => SctError::BadSignature,
        })
    }

    /// The TLS encoding of this `SignedCertificateTimestamp`.
    pub fn to_tls(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(47 + self.extensions.len() + self.signature.len());
        out.push(0); // v1
        out.extend_from_slice(&self.log_id);
        out.extend_from_slice(&self.timestamp.to_be_bytes());
        put_u16_bytes(&mut out, &self.extensions);
        out.extend_from_slice(&self.signature);
        out
    }
}

fn put_u16_bytes(out: &mut Vec<u8>, data: &[u8]) {
    let len = u16::try_from(data.len()).unwrap_or(u16::MAX);
    out.extend_from_slice(&len.to_be_bytes());
    out.extend_from_slice(data);
}

/// The TLS-encoded `SignedCertificateTimestampList` (RFC 6962 §3.3): a u16-length-prefixed
/// list of u16-length-prefixed SCTs. This is the content of the OCTET STRING the certificate's
/// SCT list extension carries.
pub fn sct_list(scts: &[Sct]) -> Vec<u8> {
    let mut body = Vec::new();
    for s in scts {
        put_u16_bytes(&mut body, &s.to_tls());
    }
    let mut out = Vec::with_capacity(body.len() + 2);
    put_u16_bytes(&mut out, &body);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn list_encoding_is_length_prefixed_twice() {
        let sct = Sct {
            log_id: [9; 32],
            timestamp: 0x0102_0304_0506_0708,
            extensions: vec![0, 0, 5, 0, 0, 0, 0, 7],
            signature: vec![4, 3, 0, 2, 0xaa, 0xbb],
        };
        let one = sct.to_tls();
        assert_eq!(one.len(), 1 + 32 + 8 + 2 + 8 + 6);
        assert_eq!(one[0], 0);
        assert_eq!(&one[33..41], &[1, 2, 3, 4, 5, 6, 7, 8]);
        assert_eq!(&one[41..43], &[0, 8]);
        let list = sct_list(&[sct.clone(), sct]);
        let total = u16::from_be_bytes([list[0], list[1]]) as usize;
        assert_eq!(total, list.len() - 2);
        assert_eq!(u16::from_be_bytes([list[2], list[3]]) as usize, one.len());
        assert_eq!(&list[4..4 + one.len()], &one[..]);
    }

    #[test]
    fn malformed_answers_are_refused() {
        let ok = SctResponse {
            sct_version: 0,
            id: B64.encode([1u8; 32]),
            timestamp: 5,
            extensions: String::new(),
            signature: B64.encode([4, 3, 0, 1, 0]),
        };
        assert!(Sct::from_response(&ok).is_ok());
        let mut bad = ok.clone();
        bad.sct_version = 1;
        assert_eq!(Sct::from_response(&bad), Err(SctError::Version(1)));
        let mut bad = ok.clone();
        bad.id = B64.encode([1u8; 31]);
        assert!(Sct::from_response(&bad).is_err());
        let mut bad = ok.clone();
        bad.signature = B64.encode([4, 3, 0, 9, 0]);
        assert!(Sct::from_response(&bad).is_err());
        let mut bad = ok;
        bad.extensions = "%%".into();
        assert!(Sct::from_response(&bad).is_err());
    }
}
