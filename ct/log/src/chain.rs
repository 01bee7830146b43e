//! Submission chain validation (RFC 6962 §3.1, §4.1–4.2): chaining to a configured root,
//! precertificate poison rules, precertificate signing certificates, the NotAfter window, and
//! the log entry a valid chain becomes.

use crate::entry::{EntryKind, LogEntry};
use crate::merkle::{Hash, sha256};
use der::{Decode, Encode};
use std::collections::HashMap;
use std::path::Path;
use x509_cert::Certificate;
use x509_cert::ext::pkix::{BasicConstraints, ExtendedKeyUsage};

/// The longest chain accepted, leaf included.
pub const MAX_CHAIN_LEN: usize = 10;

/// DER contents of OID 1.3.6.1.4.1.11129.2.4.3 (the precertificate poison extension).
const POISON_OID: &[u8] = &[0x2b, 0x06, 0x01, 0x04, 0x01, 0xd6, 0x79, 0x02, 0x04, 0x03];
/// DER contents of OID 2.5.29.35 (authorityKeyIdentifier).
const AKI_OID: &[u8] = &[0x55, 0x1d, 0x23];
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

/// Errors loading the root set.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum RootsError {
    /// The folder or a file could not be read.
    #[error("reading roots: {0}")]
    Io(#[from] std::io::Error),
    /// A file is not PEM certificates.
    #[error("root file {0} is not PEM certificates")]
    BadPem(String),
    /// A certificate does not parse.
    #[error("root certificate in {0} does not parse")]
    BadCertificate(String),
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

    /// Every `CERTIFICATE` in the `*.pem` and `*.crt` files of `dir`.
    pub fn load_dir(dir: &Path) -> Result<Roots, RootsError> {
        let mut files: Vec<_> = std::fs::read_dir(dir)?
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| p.extension().is_some_and(|e| e == "pem" || e == "crt"))
            .collect();
        files.sort();
        let mut ders = Vec::new();
        let mut origin = Vec::new();
        for f in files {
            let text = std::fs::read_to_string(&f)?;
            let certs = cairn_x509::pem_certificates(&text)
                .map_err(|_| RootsError::BadPem(f.display().to_string()))?;
            for c in certs {
                ders.push(c);
                origin.push(f.display().to_string());
            }
        }
        Roots::from_der(&ders)
            .map_err(|i| RootsError::BadCertificate(origin.get(i).cloned().unwrap_or_default()))
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
        if child.issuer != parent.subject || !cairn_x509::is_signed_by(&child.der, &parent.spki) {
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
            .find(|r| r.subject == last.issuer && cairn_x509::is_signed_by(&last.der, &r.spki))
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

/// The TBSCertificate of `cert` (DER) with the precertificate poison extension removed, as
/// logged for a precertificate issued directly by its CA; `None` if `cert` is not DER.
pub fn tbs_without_poison(cert: &[u8]) -> Option<Vec<u8>> {
    precert_tbs(cert, None)
}

// ---- minimal DER TLV surgery on TBSCertificates (byte-exact for everything untouched) ----

/// One TLV: (tag, whole encoding, contents, rest of input).
type Tlv<'a> = (u8, &'a [u8], &'a [u8], &'a [u8]);
/// A child TLV: (tag, whole encoding, contents).
type Child<'a> = (u8, &'a [u8], &'a [u8]);

/// Reads one TLV. Single-byte tags, definite lengths.
fn tlv(input: &[u8]) -> Option<Tlv<'_>> {
    let (&tag, rest) = input.split_first()?;
    if tag & 0x1f == 0x1f {
        return None;
    }
    let (&first, rest) = rest.split_first()?;
    let (len, rest) = if first < 0x80 {
        (usize::from(first), rest)
    } else {
        let n = usize::from(first & 0x7f);
        if n == 0 || n > 4 {
            return None;
        }
        let (bytes, rest) = rest.split_at_checked(n)?;
        (
            bytes
                .iter()
                .fold(0usize, |acc, b| (acc << 8) | usize::from(*b)),
            rest,
        )
    };
    let header = input.len() - rest.len();
    let (contents, after) = rest.split_at_checked(len)?;
    Some((tag, &input[..header + len], contents, after))
}

fn children(mut contents: &[u8]) -> Option<Vec<Child<'_>>> {
    let mut out = Vec::new();
    while !contents.is_empty() {
        let (tag, whole, inner, rest) = tlv(contents)?;
        out.push((tag, whole, inner));
        contents = rest;
    }
    Some(out)
}

fn encode(tag: u8, contents: &[u8]) -> Vec<u8> {
    let mut out = vec![tag];
    let len = contents.len();
    if len < 0x80 {
        out.push(len as u8);
    } else {
        let bytes = len.to_be_bytes();
        let skip = bytes.iter().take_while(|b| **b == 0).count();
        out.push(0x80 | (bytes.len() - skip) as u8);
        out.extend_from_slice(&bytes[skip..]);
    }
    out.extend_from_slice(contents);
    out
}

/// The TBSCertificate's children, from a certificate.
fn tbs_children(cert: &[u8]) -> Option<Vec<Child<'_>>> {
    let (_, _, cert_contents, _) = tlv(cert)?;
    let (tag, _, tbs_contents, _) = tlv(cert_contents)?;
    if tag != 0x30 {
        return None;
    }
    children(tbs_contents)
}

/// The extension TLVs of a TBS (children of `[3] { SEQUENCE { ... } }`), with their OIDs.
fn extensions<'a>(tbs: &[Child<'a>]) -> Option<Vec<(&'a [u8], &'a [u8])>> {
    let Some((_, _, explicit)) = tbs.iter().find(|(t, _, _)| *t == 0xa3) else {
        return Some(Vec::new());
    };
    let (_, _, seq, _) = tlv(explicit)?;
    children(seq)?
        .into_iter()
        .map(|(_, whole, inner)| {
            let (tag, _, oid, _) = tlv(inner)?;
            (tag == 0x06).then_some((oid, whole))
        })
        .collect()
}

/// The whole TLV of the extension `oid` in `cert`, if present.
fn extension_tlv(cert: &[u8], oid: &[u8]) -> Option<Vec<u8>> {
    let tbs = tbs_children(cert)?;
    extensions(&tbs)?
        .into_iter()
        .find(|(o, _)| *o == oid)
        .map(|(_, whole)| whole.to_vec())
}

/// The precertificate's TBSCertificate with the poison extension removed and, for a
/// precertificate signing certificate, the issuer Name replaced and the AKI extension replaced
/// (or removed when the signing certificate has none), per RFC 6962 §3.2.
fn precert_tbs(cert: &[u8], psc: Option<(&[u8], Option<&[u8]>)>) -> Option<Vec<u8>> {
    let tbs = tbs_children(cert)?;
    let issuer_pos = if tbs.first()?.0 == 0xa0 { 3 } else { 2 };
    let exts = extensions(&tbs)?;
    let mut new_exts = Vec::new();
    for (oid, whole) in exts {
        if oid == POISON_OID {
            continue;
        }
        if let (true, Some((_, aki))) = (oid == AKI_OID, psc) {
            if let Some(aki) = aki {
                new_exts.extend_from_slice(aki);
            }
            continue;
        }
        new_exts.extend_from_slice(whole);
    }
    let mut out = Vec::new();
    for (i, (tag, whole, _)) in tbs.iter().enumerate() {
        if *tag == 0xa3 {
            if !new_exts.is_empty() {
                out.extend_from_slice(&encode(0xa3, &encode(0x30, &new_exts)));
            }
        } else if i == issuer_pos {
            match psc {
                Some((issuer, _)) => out.extend_from_slice(issuer),
                None => out.extend_from_slice(whole),
            }
        } else {
            out.extend_from_slice(whole);
        }
    }
    Some(encode(0x30, &out))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tlv_round_trips_long_lengths() {
        for len in [0usize, 1, 127, 128, 255, 256, 70_000] {
            let data = vec![7u8; len];
            let enc = encode(0x04, &data);
            let (tag, whole, inner, rest) = tlv(&enc).unwrap();
            assert_eq!(
                (tag, whole.len(), inner, rest.len()),
                (0x04, enc.len(), &data[..], 0)
            );
        }
        assert!(tlv(&[0x30, 0x85, 1, 1, 1, 1, 1]).is_none());
        assert!(tlv(&[0x30, 0x05, 1]).is_none());
        assert!(tlv(&[0x1f, 0x00]).is_none());
        assert!(precert_tbs(&[0x30, 0x00], None).is_none());
    }
}
