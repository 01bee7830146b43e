//! Submission chain validation (RFC 6962 §3.1, §4.1–4.2): chaining to a configured root,
//! precertificate poison rules, precertificate signing certificates, the NotAfter window, and
//! the log entry a valid chain becomes.

use crate::entry::{EntryKind, LogEntry};
use crate::merkle::{Hash, sha256};
use crate::precert::{AKI_OID, POISON_OID, extension_tlv, precert_tbs};
use cairn_pki::is_signed_by;
use der::{Decode, Encode};
use std::collections::{HashMap, HashSet};
use std::sync::Mutex;
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
    not_before: u64,
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
        not_before: tbs.validity().not_before.to_unix_duration().as_secs(),
        not_after: tbs.validity().not_after.to_unix_duration().as_secs(),
        is_ca,
        poison,
        precert_signer,
    })
}

/// The accepted roots, and the issuer links already verified above the leaf.
pub struct Roots {
    certs: Vec<Parsed>,
    by_fingerprint: HashMap<Hash, usize>,
    /// `(child, parent)` SHA-256 fingerprints of whole DER certificates whose signature link
    /// (child signed by parent's key) has been verified. Almost every submission carries the
    /// same few intermediates, so their signature is checked once instead of per submission.
    /// Keyed by the exact bytes of both certificates, so a hit is the same fact; never the
    /// leaf's link (a leaf is new each time). Cleared when full.
    verified: Mutex<HashSet<(Hash, Hash)>>,
}

/// Verified issuer links kept before the set is cleared (each entry is 64 bytes).
const MAX_VERIFIED_LINKS: usize = 4096;

impl Roots {
    /// Whether `child` is signed by `parent`'s key, from the verified links or by checking
    /// the signature (and remembering a success).
    fn signed_by(&self, child: &Parsed, parent: &Parsed) -> bool {
        let key = (child.fingerprint, parent.fingerprint);
        if self
            .verified
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .contains(&key)
        {
            return true;
        }
        if !is_signed_by(&child.der, &parent.spki) {
            return false;
        }
        let mut verified = self.verified.lock().unwrap_or_else(|e| e.into_inner());
        if verified.len() >= MAX_VERIFIED_LINKS {
            verified.clear();
        }
        verified.insert(key);
        true
    }

    #[cfg(test)]
    fn verified_links(&self) -> usize {
        self.verified
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .len()
    }
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
            verified: Mutex::new(HashSet::new()),
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
    /// The leaf's NotBefore (Unix seconds): how long ago it was issued, for shedding stale
    /// resubmissions under load.
    pub not_before: u64,
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
        let signed = if i == 0 {
            is_signed_by(&child.der, &parent.spki)
        } else {
            roots.signed_by(child, parent)
        };
        if child.issuer != parent.subject || !signed {
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
            .find(|r| {
                r.subject == last.issuer
                    && if path.len() == 1 {
                        is_signed_by(&last.der, &r.spki)
                    } else {
                        roots.signed_by(last, r)
                    }
            })
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
    let not_before = path[0].not_before;
    Ok(Accepted {
        not_before,
        entry: LogEntry {
            kind,
            chain_fingerprints: path[1..].iter().map(|p| p.fingerprint).collect(),
        },
        issuers: path.into_iter().skip(1).map(|p| p.der).collect(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::entry::SignedEntry;
    use crate::key::LogKey;
    use crate::precert::tbs_without_poison;
    use crate::sct::{sign_sct, verify_sct_signature};
    use base64::Engine;
    use base64::engine::general_purpose::STANDARD as B64;
    use rcgen::{
        BasicConstraints, CertificateParams, CertifiedIssuer, CustomExtension, DnType,
        ExtendedKeyUsagePurpose, IsCa, KeyPair, PublicKeyData,
    };

    type Issuer = CertifiedIssuer<'static, KeyPair>;

    fn ca_params(cn: &str) -> CertificateParams {
        let mut p = CertificateParams::new(Vec::<String>::new()).unwrap();
        p.distinguished_name.push(DnType::CommonName, cn);
        p.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        p.use_authority_key_identifier_extension = true;
        p
    }

    struct Pki {
        root: Issuer,
        inter: Issuer,
        psc: Issuer,
        other_root: Issuer,
    }

    fn pki() -> Pki {
        let root = Issuer::self_signed(ca_params("Root"), KeyPair::generate().unwrap()).unwrap();
        let inter =
            Issuer::signed_by(ca_params("Inter"), KeyPair::generate().unwrap(), &root).unwrap();
        let mut psc = ca_params("Precert Signer");
        psc.extended_key_usages = vec![ExtendedKeyUsagePurpose::Other(vec![
            1, 3, 6, 1, 4, 1, 11129, 2, 4, 4,
        ])];
        let psc = Issuer::signed_by(psc, KeyPair::generate().unwrap(), &inter).unwrap();
        let other_root =
            Issuer::self_signed(ca_params("Other Root"), KeyPair::generate().unwrap()).unwrap();
        Pki {
            root,
            inter,
            psc,
            other_root,
        }
    }

    /// A final certificate by the intermediate and, from the same TBS fields, a precertificate
    /// (critical poison) signed by `pre_issuer`; not after 2030-06-01.
    fn leaf(pre_issuer: &Issuer, inter: &Issuer) -> (Vec<u8>, Vec<u8>) {
        let key = KeyPair::generate().unwrap();
        let mut params = CertificateParams::new(vec!["a.example".to_string()]).unwrap();
        params.not_after = rcgen::date_time_ymd(2030, 6, 1);
        params.use_authority_key_identifier_extension = true;
        params.serial_number = Some(vec![1, 2, 3].into());
        let final_cert = params.signed_by(&key, inter).unwrap().der().to_vec();
        let mut poison =
            CustomExtension::from_oid_content(&[1, 3, 6, 1, 4, 1, 11129, 2, 4, 3], vec![5, 0]);
        poison.set_criticality(true);
        params.custom_extensions.push(poison);
        let precert = params.signed_by(&key, pre_issuer).unwrap().der().to_vec();
        (final_cert, precert)
    }

    fn tbs_of(cert: &[u8]) -> Vec<u8> {
        Certificate::from_der(cert)
            .unwrap()
            .tbs_certificate()
            .to_der()
            .unwrap()
    }

    const WINDOW: NotAfterWindow = NotAfterWindow {
        start: 1_893_456_000, // 2030-01-01
        limit: 1_924_992_000, // 2031-01-01
    };

    #[test]
    fn issuer_links_are_verified_once_and_the_leafs_every_time() {
        let pki = pki();
        let roots = Roots::from_der(&[pki.root.der().to_vec()]).unwrap();
        let (cert, _) = leaf(&pki.inter, &pki.inter);
        let inter = pki.inter.der().to_vec();
        validate_chain(&roots, &[cert.clone(), inter.clone()], false, WINDOW).unwrap();
        assert_eq!(roots.verified_links(), 1, "intermediate -> root");
        validate_chain(&roots, &[cert.clone(), inter.clone()], false, WINDOW).unwrap();
        assert_eq!(roots.verified_links(), 1);

        // A leaf with a broken signature is refused although its issuer's link is remembered.
        let mut forged = cert.clone();
        *forged.last_mut().unwrap() ^= 1;
        assert_eq!(
            validate_chain(&roots, &[forged, inter.clone()], false, WINDOW).unwrap_err(),
            ChainError::BrokenChain(0)
        );
        // An intermediate with other bytes (its signature altered, same key, so the leaf still
        // verifies under it) is not the remembered one: checked again, and refused.
        let mut altered = inter.clone();
        *altered.last_mut().unwrap() ^= 1;
        assert_eq!(
            validate_chain(&roots, &[cert.clone(), altered.clone()], false, WINDOW).unwrap_err(),
            ChainError::UnknownRoot
        );
        let root = pki.root.der().to_vec();
        assert_eq!(
            validate_chain(&roots, &[cert, altered, root], false, WINDOW).unwrap_err(),
            ChainError::BrokenChain(1)
        );
        assert_eq!(roots.verified_links(), 1, "failures are not remembered");
    }

    #[test]
    fn valid_chains_become_entries() {
        let pki = pki();
        let roots = Roots::from_der(&[pki.root.der().to_vec()]).unwrap();
        let (cert, pre) = leaf(&pki.inter, &pki.inter);
        let inter = pki.inter.der().to_vec();
        let root = pki.root.der().to_vec();

        // A final certificate; the root is found when the chain stops below it.
        let ok = validate_chain(&roots, &[cert.clone(), inter.clone()], false, WINDOW).unwrap();
        assert_eq!(
            ok.entry.kind,
            EntryKind::X509 {
                certificate: cert.clone()
            }
        );
        assert_eq!(
            ok.entry.chain_fingerprints,
            vec![sha256(&inter), sha256(&root)]
        );
        assert_eq!(ok.issuers, vec![inter.clone(), root.clone()]);
        let with_root = validate_chain(&roots, &[cert.clone(), inter.clone(), root], false, WINDOW);
        assert_eq!(with_root.unwrap().entry, ok.entry);

        // A precertificate issued directly: the logged TBS is the final certificate's.
        let ok = validate_chain(&roots, &[pre.clone(), inter.clone()], true, WINDOW).unwrap();
        let inter_spki = pki.inter.key().subject_public_key_info();
        match &ok.entry.kind {
            EntryKind::Precert {
                issuer_key_hash,
                tbs_certificate,
                pre_certificate,
            } => {
                assert_eq!(*issuer_key_hash, sha256(&inter_spki));
                assert_eq!(*tbs_certificate, tbs_of(&cert));
                assert_eq!(*tbs_certificate, tbs_without_poison(&pre).unwrap());
                assert_eq!(pre_certificate, &pre);
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn precertificate_signing_certificates_are_rewritten_to_the_final_issuer() {
        let pki = pki();
        let roots = Roots::from_der(&[pki.root.der().to_vec()]).unwrap();
        let (final_cert, pre) = leaf(&pki.psc, &pki.inter);
        let chain = [pre, pki.psc.der().to_vec(), pki.inter.der().to_vec()];
        let ok = validate_chain(&roots, &chain, true, WINDOW).unwrap();
        let EntryKind::Precert {
            issuer_key_hash,
            tbs_certificate,
            ..
        } = &ok.entry.kind
        else {
            panic!("not a precert entry");
        };
        // Issuer Name and AKI come from the signing certificate's issuer: the TBS is exactly the
        // final certificate's, and the key hash is the real CA's.
        assert_eq!(*tbs_certificate, tbs_of(&final_cert));
        assert_eq!(
            *issuer_key_hash,
            sha256(&pki.inter.key().subject_public_key_info())
        );
        assert_eq!(ok.entry.chain_fingerprints.len(), 3);
        assert_eq!(
            validate_chain(&roots, &chain[..2], true, WINDOW).unwrap_err(),
            ChainError::UnknownRoot
        );
    }

    #[test]
    fn the_ca_and_the_log_agree_on_what_a_precertificate_sct_signs() {
        let pki = pki();
        let roots = Roots::from_der(&[pki.root.der().to_vec()]).unwrap();
        let (_, pre) = leaf(&pki.inter, &pki.inter);
        let ok = validate_chain(
            &roots,
            &[pre.clone(), pki.inter.der().to_vec()],
            true,
            WINDOW,
        )
        .unwrap();
        let key = LogKey::generate().unwrap();
        let sct = sign_sct(&key, &ok.entry, 1_900_000_000_000, 7).unwrap();
        // The CA side knows only the precertificate and its issuer's key.
        let tbs = tbs_without_poison(&pre).unwrap();
        let ikh = sha256(&pki.inter.key().subject_public_key_info());
        let entry = SignedEntry::Precert {
            issuer_key_hash: &ikh,
            tbs_certificate: &tbs,
        };
        let ext = B64.decode(&sct.extensions).unwrap();
        let sig = B64.decode(&sct.signature).unwrap();
        assert_eq!(
            verify_sct_signature(key.spki_der(), entry, sct.timestamp, &ext, &sig),
            Ok(())
        );
    }

    #[test]
    fn refusals_name_their_reason() {
        let pki = pki();
        let roots = Roots::from_der(&[pki.root.der().to_vec()]).unwrap();
        let (cert, pre) = leaf(&pki.inter, &pki.inter);
        let inter = pki.inter.der().to_vec();
        let root = pki.root.der().to_vec();
        let check = |chain: &[Vec<u8>], precert: bool, window: NotAfterWindow| {
            validate_chain(&roots, chain, precert, window).unwrap_err()
        };
        assert_eq!(check(&[], false, WINDOW), ChainError::Empty);
        assert_eq!(
            check(&vec![cert.clone(); MAX_CHAIN_LEN + 1], false, WINDOW),
            ChainError::TooLong
        );
        assert_eq!(
            check(&[cert.clone(), b"junk".to_vec()], false, WINDOW),
            ChainError::Malformed(1)
        );
        assert_eq!(
            check(&[pre.clone(), inter.clone()], false, WINDOW),
            ChainError::UnexpectedPrecert
        );
        assert_eq!(
            check(&[cert.clone(), inter.clone()], true, WINDOW),
            ChainError::NotPrecert
        );
        let later = NotAfterWindow {
            start: WINDOW.limit,
            limit: WINDOW.limit + 1,
        };
        assert_eq!(
            check(&[cert.clone(), inter.clone()], false, later),
            ChainError::OutsideWindow
        );
        // NotAfter is inclusive at the start, exclusive at the limit.
        let not_after = 1_906_502_400; // 2030-06-01
        let exact = NotAfterWindow {
            start: not_after,
            limit: not_after + 1,
        };
        assert!(validate_chain(&roots, &[cert.clone(), inter.clone()], false, exact).is_ok());
        let ending = NotAfterWindow {
            start: 0,
            limit: not_after,
        };
        assert_eq!(
            check(&[cert.clone(), inter.clone()], false, ending),
            ChainError::OutsideWindow
        );
        assert_eq!(
            check(&[cert.clone(), root.clone()], false, WINDOW),
            ChainError::BrokenChain(0)
        );
        assert_eq!(
            check(&[cert.clone(), cert.clone()], false, WINDOW),
            ChainError::BrokenChain(0)
        );
        assert_eq!(
            check(std::slice::from_ref(&cert), false, WINDOW),
            ChainError::UnknownRoot
        );
        let mut foreign = CertificateParams::new(vec!["x.example".to_string()]).unwrap();
        foreign.not_after = rcgen::date_time_ymd(2030, 6, 1);
        let foreign = foreign
            .signed_by(&KeyPair::generate().unwrap(), &pki.other_root)
            .unwrap();
        assert_eq!(
            check(
                &[foreign.der().to_vec(), pki.other_root.der().to_vec()],
                false,
                WINDOW
            ),
            ChainError::UnknownRoot
        );
        // A chain through a certificate that is not a CA.
        let leaf_key = KeyPair::generate().unwrap();
        let not_ca = CertificateParams::new(vec!["issuer.example".to_string()])
            .unwrap()
            .signed_by(&leaf_key, &pki.inter)
            .unwrap();
        let not_ca_issuer = rcgen::Issuer::new(
            CertificateParams::new(vec!["issuer.example".to_string()]).unwrap(),
            leaf_key,
        );
        let mut under = CertificateParams::new(vec!["b.example".to_string()]).unwrap();
        under.not_after = rcgen::date_time_ymd(2030, 6, 1);
        let under = under
            .signed_by(&KeyPair::generate().unwrap(), &not_ca_issuer)
            .unwrap();
        assert_eq!(
            check(
                &[under.der().to_vec(), not_ca.der().to_vec(), inter.clone()],
                false,
                WINDOW
            ),
            ChainError::NotCa(1)
        );
        // A precertificate signing certificate as the last element has no CA above it.
        let (_, via_psc) = leaf(&pki.psc, &pki.inter);
        let psc_roots = Roots::from_der(&[pki.psc.der().to_vec()]).unwrap();
        assert_eq!(
            validate_chain(&psc_roots, &[via_psc, pki.psc.der().to_vec()], true, WINDOW)
                .unwrap_err(),
            ChainError::BadPrecertSigner
        );
        assert_eq!(Roots::from_der(&[root, b"junk".to_vec()]).unwrap_err(), 1);
    }
}
