//! CertID hashes: which hash algorithms are accepted, and the issuer name and key hashes a
//! request must carry to be about certificates of a given issuer.

use crate::asn1::CertId;
use crate::{OID_SHA1, OID_SHA256};
use aws_lc_rs::digest;
use der::asn1::{AnyRef, ObjectIdentifier};
use der::{Decode, Encode};
use spki::AlgorithmIdentifierOwned;
use x509_cert::Certificate;

/// The CertID hash algorithms the responder accepts: SHA-1 (what RFC 5019 §2.1.1 requires of
/// clients, and what almost every client sends) and SHA-256.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum HashAlgorithm {
    /// SHA-1.
    Sha1,
    /// SHA-256.
    Sha256,
}

impl HashAlgorithm {
    /// Both, SHA-1 first.
    pub const ALL: [HashAlgorithm; 2] = [HashAlgorithm::Sha1, HashAlgorithm::Sha256];

    /// The algorithm for an OID, if accepted.
    pub fn from_oid(oid: &ObjectIdentifier) -> Option<HashAlgorithm> {
        if *oid == OID_SHA1 {
            Some(HashAlgorithm::Sha1)
        } else if *oid == OID_SHA256 {
            Some(HashAlgorithm::Sha256)
        } else {
            None
        }
    }

    /// A short stable name (`sha1`, `sha256`) for cache keys and logs.
    pub fn as_str(self) -> &'static str {
        match self {
            HashAlgorithm::Sha1 => "sha1",
            HashAlgorithm::Sha256 => "sha256",
        }
    }

    /// The digest length in octets.
    pub fn output_len(self) -> usize {
        match self {
            HashAlgorithm::Sha1 => 20,
            HashAlgorithm::Sha256 => 32,
        }
    }

    /// The `AlgorithmIdentifier` with NULL parameters, as OpenSSL and most clients write it.
    pub fn algorithm_identifier(self) -> AlgorithmIdentifierOwned {
        AlgorithmIdentifierOwned {
            oid: match self {
                HashAlgorithm::Sha1 => OID_SHA1,
                HashAlgorithm::Sha256 => OID_SHA256,
            },
            parameters: Some(AnyRef::NULL.into()),
        }
    }

    /// Hashes `data`.
    pub fn digest(self, data: &[u8]) -> Vec<u8> {
        let alg = match self {
            HashAlgorithm::Sha1 => &digest::SHA1_FOR_LEGACY_USE_ONLY,
            HashAlgorithm::Sha256 => &digest::SHA256,
        };
        digest::digest(alg, data).as_ref().to_vec()
    }
}

/// The SHA-1 of a SubjectPublicKeyInfo's subjectPublicKey BIT STRING value: the `KeyHash` of a
/// `ResponderID` (RFC 6960 §4.2.1). `None` when `spki_der` does not decode.
pub fn key_hash_sha1(spki_der: &[u8]) -> Option<[u8; 20]> {
    let spki = spki::SubjectPublicKeyInfoRef::from_der(spki_der).ok()?;
    let hash = HashAlgorithm::Sha1.digest(spki.subject_public_key.raw_bytes());
    hash.try_into().ok()
}

/// An issuer's name and key hashes under every accepted algorithm: what a CertID must carry to
/// ask about a certificate this issuer signed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct IssuerHashes {
    /// (algorithm, name hash, key hash), one per accepted algorithm.
    hashes: Vec<(HashAlgorithm, Vec<u8>, Vec<u8>)>,
}

impl IssuerHashes {
    /// The hashes of the issuing CA certificate `issuer_der`.
    pub fn from_certificate(issuer_der: &[u8]) -> Result<IssuerHashes, der::Error> {
        let cert = Certificate::from_der(issuer_der)?;
        let tbs = cert.tbs_certificate();
        let name_der = tbs.subject().to_der()?;
        let key = tbs.subject_public_key_info().subject_public_key.raw_bytes();
        Ok(IssuerHashes {
            hashes: HashAlgorithm::ALL
                .into_iter()
                .map(|alg| (alg, alg.digest(&name_der), alg.digest(key)))
                .collect(),
        })
    }

    /// True when `cert_id` names this issuer with an accepted algorithm. The algorithm's
    /// parameters may be NULL or absent.
    pub fn matches(&self, cert_id: &CertId) -> bool {
        let Some(alg) = HashAlgorithm::from_oid(&cert_id.hash_algorithm.oid) else {
            return false;
        };
        self.hashes.iter().any(|(a, name, key)| {
            *a == alg
                && cert_id.issuer_name_hash.as_bytes() == name.as_slice()
                && cert_id.issuer_key_hash.as_bytes() == key.as_slice()
        })
    }

    /// The name and key hash under `alg`.
    pub fn get(&self, alg: HashAlgorithm) -> Option<(&[u8], &[u8])> {
        self.hashes
            .iter()
            .find(|(a, _, _)| *a == alg)
            .map(|(_, n, k)| (n.as_slice(), k.as_slice()))
    }
}
