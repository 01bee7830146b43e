//! The signing abstraction for keys Cairn does not hold in memory: a key in a hardware security
//! module (PKCS#11) or any other external signer. The X.509 code (`cairn-x509`'s `SigningKey`)
//! wraps one of these exactly as it wraps an in-memory key, so certificates, CRLs and OCSP
//! responses are signed the same way whichever holds the key.

use crate::key::KeyAlgorithm;
use std::fmt;

/// Why an external signer refused or failed to sign.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct ExternalSignerError(pub String);

/// A private key held outside the process. Implementations must be safe to call from several
/// threads at once; a signature that fails is an error, never a fallback to another key.
pub trait ExternalSigner: Send + Sync + fmt::Debug {
    /// The key type.
    fn algorithm(&self) -> KeyAlgorithm;

    /// The public key as SubjectPublicKeyInfo DER.
    fn spki_der(&self) -> &[u8];

    /// Signs `message` the way X.509 expects for this key: ECDSA as a DER `Ecdsa-Sig-Value`
    /// (SHA-256 for P-256, SHA-384 for P-384) or RSA PKCS#1 v1.5 with SHA-256.
    fn sign(&self, message: &[u8]) -> Result<Vec<u8>, ExternalSignerError>;

    /// Where the key lives, for logs (`pkcs11:token=ca;object=int-ecdsa`); never a secret.
    fn describe(&self) -> String;
}

/// Encodes a raw ECDSA signature `r || s` (as PKCS#11 `CKM_ECDSA` returns it, each half the
/// curve's size) as the DER `Ecdsa-Sig-Value ::= SEQUENCE { r INTEGER, s INTEGER }` X.509 uses.
/// `None` if `raw` is empty or of odd length.
pub fn ecdsa_raw_to_der(raw: &[u8]) -> Option<Vec<u8>> {
    if raw.is_empty() || !raw.len().is_multiple_of(2) {
        return None;
    }
    let (r, s) = raw.split_at(raw.len() / 2);
    let mut body = der_uint(r);
    body.extend(der_uint(s));
    let mut out = vec![0x30];
    push_len(&mut out, body.len());
    out.extend(body);
    Some(out)
}

/// A DER INTEGER holding the unsigned big-endian `bytes`.
fn der_uint(bytes: &[u8]) -> Vec<u8> {
    let start = bytes.iter().position(|b| *b != 0).unwrap_or(bytes.len());
    let trimmed = &bytes[start..];
    let mut content = Vec::with_capacity(trimmed.len() + 1);
    if trimmed.first().is_none_or(|b| b & 0x80 != 0) {
        content.push(0);
    }
    content.extend_from_slice(trimmed);
    let mut out = vec![0x02];
    push_len(&mut out, content.len());
    out.extend(content);
    out
}

fn push_len(out: &mut Vec<u8>, len: usize) {
    if len < 0x80 {
        out.push(len as u8);
    } else if len < 0x100 {
        out.extend([0x81, len as u8]);
    } else {
        out.extend([0x82, (len >> 8) as u8, len as u8]);
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;
    use aws_lc_rs::rand::SystemRandom;
    use aws_lc_rs::signature::{
        ECDSA_P256_SHA256_ASN1, ECDSA_P256_SHA256_FIXED_SIGNING, ECDSA_P384_SHA384_ASN1,
        ECDSA_P384_SHA384_FIXED_SIGNING, EcdsaKeyPair, KeyPair, UnparsedPublicKey,
    };

    #[test]
    fn raw_ecdsa_signatures_become_verifiable_der() {
        let rng = SystemRandom::new();
        for (signing, verify) in [
            (&ECDSA_P256_SHA256_FIXED_SIGNING, &ECDSA_P256_SHA256_ASN1),
            (&ECDSA_P384_SHA384_FIXED_SIGNING, &ECDSA_P384_SHA384_ASN1),
        ] {
            let key = EcdsaKeyPair::generate(signing).unwrap();
            // Enough signatures that some r or s has a high bit set or a leading zero byte.
            for i in 0..64u8 {
                let msg = [i; 10];
                let raw = key.sign(&rng, &msg).unwrap();
                let der = ecdsa_raw_to_der(raw.as_ref()).unwrap();
                UnparsedPublicKey::new(verify, key.public_key().as_ref())
                    .verify(&msg, &der)
                    .unwrap();
            }
        }
        assert_eq!(ecdsa_raw_to_der(&[]), None);
        assert_eq!(ecdsa_raw_to_der(&[1, 2, 3]), None);
        // r = 0x80 needs a leading zero; s = 0x00 is INTEGER 0.
        assert_eq!(
            ecdsa_raw_to_der(&[0x80, 0x00]).unwrap(),
            vec![0x30, 0x07, 0x02, 0x02, 0x00, 0x80, 0x02, 0x01, 0x00]
        );
    }
}
