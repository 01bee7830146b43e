//! Submission chain validation (RFC 6962 §3.1, §4.1–4.2): chaining to a configured root,
//! precertificate poison rules, precertificate signing certificates, the NotAfter window, and
//! the log entry a valid chain becomes.

use crate::entry::{EntryKind, LogEntry};
use crate::merkle::{Hash, sha256};
use crate::precert::{AKI_OID, POISON_OID, extension_tlv, precert_tbs};
use cairn_pki::is_signed_by;
use der::{Decode, Encode};
use std::collections::HashMap;
use x509_cert::Certificate;
use x509_cert::ext::pkix::{BasicConstraints, ExtendedKeyUsage};

/// The longest chain accepted, leaf included.
pub const MAX_CHAIN_LEN: usize = 10;

/// 1.3.6.1.4.1.11129.2.4.4, the precertificate signing certificate EKU.
const PRECERT_SIGNING_EKU: der::oid::ObjectIdentifier =
    der::oid::ObjectIdentifier::new_unwrap("1.3.6.1.4.1.11129.2.4.4");

/// Why a submission is refused. Every variant is the submitter's fault and its message is safe
/// to return to them.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[non_exhaustive]
pub enum ChainError {
    /// The chain is empty.
    #[error("empty chain")]
    Empty,
    /// More than [`MAX_CHAIN_LEN`] certificates.
    #[error("chain too long")]
    TooLong,
    /// A chain element is not a DER certificate.
    #[error("chain[{0}] is not a valid certificate")]
    Malformed(usize),
    /// `add-chain` got a precertificate.
    #[error("precertificates must be submitted to add-pre-chain")]
    UnexpectedPrecert,
    /// `add-pre-chain` got something without the critical poison extension.
    #[error("not a precertificate (no critical poison extension)")]
    NotPrecert,
    /// The leaf's NotAfter is outside this log shard's window.
    #[error("certificate NotAfter is outside this log's temporal interval")]
    OutsideWindow,
    /// `chain[i]` is not issued (name and signature) by `chain[i+1]`.
    #[error("chain[{0}] is not issued by the next certificate")]
    BrokenChain(usize),
    /// An issuer in the chain is not a CA certificate.
    #[error("chain[{0}] is not a CA certificate")]
    NotCa(usize),
    /// The chain does not end at (or directly below) an accepted root.
    #[error("chain does not lead to an accepted root")]
    UnknownRoot,
    /// A precertificate signing certificate without the CA above it.
    #[error("precertificate signing certificate without its issuer")]
    BadPrecertSigner,
}

/// A parsed certificate with the raw pieces validation needs.
struct Parsed {
    der: Vec<u8>,
    fingerprint: Hash,
    subject: Vec<u8>,
    issuer: Vec<u8>,
    spki: Vec<u8>,
    not_after: u64,
    is_ca: bool,
    poison: Option<bool>,
    precert_signer: bool,
}

fn parse(der: &[u8]) -> Option<Parsed> {
    let cert = Certificate::from_der(der).ok()?;
    let tbs = cert.tbs_certificate();
    let mut poison = None;
    for ext in tbs.extensions().map(|e| e.as_slice()).unwrap_or_default() {
        if ext.extn_id.as_bytes() == POISON_OID {
            poison = Some(ext.critical);
        }
    }
    let is_ca = tbs
        .get_extension::<BasicConstraints>()
        .ok()?
        .is_some_and(|(_, bc)| bc.ca);
    let precert_signer = tbs
        .get_extension::<ExtendedKeyUsage>()
        .ok()?
        .is_some_and(|(_, eku)| eku.0.contains(&PRECERT_SIGNING_EKU));
    Some(Parsed {
        fingerprint: sha256(der),
        der: der.to_vec(),
        subject: tbs.subject().to_der().ok()?,
        issuer: tbs.issuer().to_der().ok()?,
        spki: tbs.subject_public_key_info().to_der().ok()?,
        not_after: tbs.validity().not_after.to_unix_duration().as_secs(),
        is_ca,
        poison,
        precert_signer,
    })
}

/// The accepted roots.
pub struct Roots {
    certs: Vec<Parsed>,
    by_fingerprint: HashMap<Hash, usize>,
}

impl std::fmt::Debug for Roots {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Roots")
            .field("count", &self.certs.len())
            .finish()
    }
}

impl Roots {
    /// Roots from DER certificates; `Err(i)` names the first that does not parse.
    pub fn from_der(ders: &[Vec<u8>]) -> Result<Roots, usize> {
        let mut certs = Vec::new();
        let mut by_fingerprint = HashMap::new();
        for (i, der) in ders.iter().enumerate() {
            let p = parse(der).ok_or(i)?;
            if by_fingerprint.contains_key(&p.fingerprint) {
                continue;
            }
            by_fingerprint.insert(p.fingerprint, certs.len());
            certs.push(p);
        }
        Ok(Roots {
            certs,
            by_fingerprint,
        })
    }

    /// The roots' DER, in load order.
    pub fn ders(&self) -> impl Iterator<Item = &[u8]> {
        self.certs.iter().map(|c| c.der.as_slice())
    }

    /// The number of roots.
    pub fn len(&self) -> usize {
        self.certs.len()
    }

    /// True if there are none.
    pub fn is_empty(&self) -> bool {
        self.certs.is_empty()
    }
}

/// The NotAfter interval a log shard accepts: `[start, limit)`, unix seconds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct NotAfterWindow {
    /// Inclusive start.
    pub start: u64,
    /// Exclusive end.
    pub limit: u64,
}

/// A validated submission.
#[derive(Debug, Clone)]
pub struct Accepted {
    /// The entry to log.
    pub entry: LogEntry,
    /// The chain's issuer certificates (DER), root last, to publish under `issuer/`.
    pub issuers: Vec<Vec<u8>>,
}

/// Validates a submitted chain (leaf first) for `add-chain` (`precert == false`) or
/// `add-pre-chain`.
pub fn validate_chain(
    roots: &Roots,
    chain: &[Vec<u8>],
    precert: bool,
    window: NotAfterWindow,
) -> Result<Accepted, ChainError> {
    if chain.is_empty() {
        return Err(ChainError::Empty);
    }
    if chain.len() > MAX_CHAIN_LEN {
        return Err(ChainError::TooLong);
    }
    let mut path = Vec::with_capacity(chain.len() + 1);
    for (i, der) in chain.iter().enumerate() {
        path.push(parse(der).ok_or(ChainError::Malformed(i))?);
    }
    let leaf = &path[0];
    match (precert, leaf.poison) {
        (false, Some(_)) => return Err(ChainError::UnexpectedPrecert),
        (true, Some(true)) => {}
        (true, _) => return Err(ChainError::NotPrecert),
        (false, None) => {}
    }
    if leaf.not_after < window.start || leaf.not_after >= window.limit {
        return Err(ChainError::OutsideWindow);
    }
    for i in 0..path.len() - 1 {
        let (child, parent) = (&path[i], &path[i + 1]);
        if child.issuer != parent.subject || !is_signed_by(&child.der, &parent.spki) {
            return Err(ChainError::BrokenChain(i));
        }
        if !parent.is_ca {
            return Err(ChainError::NotCa(i + 1));
        }
    }
    let last = &path[path.len() - 1];
    if !roots.by_fingerprint.contains_key(&last.fingerprint) {
        let root = roots
            .certs
            .iter()
            .find(|r| r.subject == last.issuer && is_signed_by(&last.der, &r.spki))
            .ok_or(ChainError::UnknownRoot)?;
        path.push(parse(&root.der).ok_or(ChainError::UnknownRoot)?);
    }

    let kind = if precert {
        let issuer = path.get(1).ok_or(ChainError::UnknownRoot)?;
        let (issuer_key_hash, tbs) = if issuer.precert_signer {
            let ca = path.get(2).ok_or(ChainError::BadPrecertSigner)?;
            let aki = extension_tlv(&issuer.der, AKI_OID);
            let tbs = precert_tbs(&path[0].der, Some((&issuer.issuer, aki.as_deref())))
                .ok_or(ChainError::Malformed(0))?;
            (sha256(&ca.spki), tbs)
        } else {
            let tbs = precert_tbs(&path[0].der, None).ok_or(ChainError::Malformed(0))?;
            (sha256(&issuer.spki), tbs)
        };
        EntryKind::Precert {
            issuer_key_hash,
            tbs_certificate: tbs,
            pre_certificate: path[0].der.clone(),
        }
    } else {
        EntryKind::X509 {
            certificate: path[0].der.clone(),
        }
    };
    Ok(Accepted {
        entry: LogEntry {
            kind,
            chain_fingerprints: path[1..].iter().map(|p| p.fingerprint).collect(),
        },
        issuers: path.into_iter().skip(1).map(|p| p.der).collect(),
    })
}
