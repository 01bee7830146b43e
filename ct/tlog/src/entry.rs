//! Log entries on the wire: RFC 6962 `TimestampedEntry`/`MerkleTreeLeaf`, the static-ct-api
//! `leaf_index` extension and `TileLeaf` data-tile encoding (and its decoding, for readers).

use crate::merkle::{Hash, leaf_hash, sha256};

/// `LogEntryType` x509_entry.
pub const X509_ENTRY: u16 = 0;
/// `LogEntryType` precert_entry.
pub const PRECERT_ENTRY: u16 = 1;
/// The largest leaf index the 40-bit `leaf_index` extension can carry.
pub const MAX_LEAF_INDEX: u64 = (1 << 40) - 1;

/// What a submission logs: the signed entry and the fingerprints of its chain.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogEntry {
    /// Certificate or precertificate.
    pub kind: EntryKind,
    /// SHA-256 of each issuer certificate in the chain, leaf's issuer first, root last.
    pub chain_fingerprints: Vec<Hash>,
}

/// The signed part of an entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum EntryKind {
    /// A final certificate (`x509_entry`).
    X509 {
        /// The certificate, DER.
        certificate: Vec<u8>,
    },
    /// A precertificate (`precert_entry`).
    Precert {
        /// SHA-256 of the issuing CA's SubjectPublicKeyInfo.
        issuer_key_hash: Hash,
        /// The TBSCertificate with the poison removed (and, for a precertificate signing
        /// certificate, issuer and AKI rewritten), DER.
        tbs_certificate: Vec<u8>,
        /// The submitted precertificate, DER.
        pre_certificate: Vec<u8>,
    },
}

/// The signed part of an entry, borrowed: with a timestamp and extensions, what an SCT's
/// signature covers. The log builds it from its [`EntryKind`]; a CA checking an SCT builds it
/// from the certificate it submitted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SignedEntry<'a> {
    /// `x509_entry`: the certificate, DER.
    X509(&'a [u8]),
    /// `precert_entry`: the issuer's key hash and the TBSCertificate without poison, DER.
    Precert {
        /// SHA-256 of the issuing CA's SubjectPublicKeyInfo.
        issuer_key_hash: &'a Hash,
        /// The TBSCertificate as logged (see [`crate::precert`]).
        tbs_certificate: &'a [u8],
    },
}

impl SignedEntry<'_> {
    /// The `LogEntryType`.
    pub fn entry_type(&self) -> u16 {
        match self {
            SignedEntry::X509(_) => X509_ENTRY,
            SignedEntry::Precert { .. } => PRECERT_ENTRY,
        }
    }

    /// The `signed_entry` encoding (ASN.1Cert, or PreCert).
    pub fn encode(&self) -> Vec<u8> {
        let mut out = Vec::new();
        match self {
            SignedEntry::X509(certificate) => put_u24_bytes(&mut out, certificate),
            SignedEntry::Precert {
                issuer_key_hash,
                tbs_certificate,
            } => {
                out.extend_from_slice(*issuer_key_hash);
                put_u24_bytes(&mut out, tbs_certificate);
            }
        }
        out
    }

    /// True if the certificate (or TBS) fits its 24-bit length prefix.
    pub fn fits(&self) -> bool {
        let len = match self {
            SignedEntry::X509(c) => c.len(),
            SignedEntry::Precert {
                tbs_certificate, ..
            } => tbs_certificate.len(),
        };
        len < 1 << 24
    }
}

impl EntryKind {
    /// The signed part of this entry.
    pub fn signed(&self) -> SignedEntry<'_> {
        match self {
            EntryKind::X509 { certificate } => SignedEntry::X509(certificate),
            EntryKind::Precert {
                issuer_key_hash,
                tbs_certificate,
                ..
            } => SignedEntry::Precert {
                issuer_key_hash,
                tbs_certificate,
            },
        }
    }
}

/// The RFC 6962 `TimestampedEntry`: `timestamp || entry_type || signed_entry || extensions`.
pub fn timestamped_entry(entry: SignedEntry<'_>, timestamp: u64, extensions: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    out.extend_from_slice(&timestamp.to_be_bytes());
    out.extend_from_slice(&entry.entry_type().to_be_bytes());
    out.extend_from_slice(&entry.encode());
    put_u16_bytes(&mut out, extensions);
    out
}

/// Errors decoding a data tile.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[non_exhaustive]
pub enum DecodeError {
    /// The bytes end in the middle of a structure.
    #[error("truncated entry")]
    Truncated,
    /// An entry type other than x509_entry or precert_entry.
    #[error("unknown entry type {0}")]
    UnknownEntryType(u16),
    /// The extensions are not a well-formed list.
    #[error("malformed extensions")]
    BadExtensions,
    /// The fingerprint list length is not a multiple of 32.
    #[error("malformed chain fingerprints")]
    BadChain,
}

fn put_u24_bytes(out: &mut Vec<u8>, data: &[u8]) {
    let len = u32::try_from(data.len()).unwrap_or(u32::MAX).to_be_bytes();
    out.extend_from_slice(&len[1..]);
    out.extend_from_slice(data);
}

fn put_u16_bytes(out: &mut Vec<u8>, data: &[u8]) {
    let len = u16::try_from(data.len()).unwrap_or(u16::MAX);
    out.extend_from_slice(&len.to_be_bytes());
    out.extend_from_slice(data);
}

/// The `CtExtensions` carrying only `leaf_index(0)` with the 40-bit big-endian index (8 bytes).
pub fn leaf_index_extensions(index: u64) -> Vec<u8> {
    let be = index.to_be_bytes();
    let mut out = vec![0u8, 0, 5];
    out.extend_from_slice(&be[3..]);
    out
}

/// The `leaf_index` in a `CtExtensions` value; `None` if absent, `Err` if malformed or
/// duplicated.
pub fn parse_leaf_index(mut ext: &[u8]) -> Result<Option<u64>, DecodeError> {
    let mut found = None;
    while !ext.is_empty() {
        let (&ty, rest) = ext.split_first().ok_or(DecodeError::BadExtensions)?;
        let (data, rest) = take_u16_bytes(rest).map_err(|_| DecodeError::BadExtensions)?;
        if ty == 0 {
            if found.is_some() || data.len() != 5 {
                return Err(DecodeError::BadExtensions);
            }
            let mut be = [0u8; 8];
            be[3..].copy_from_slice(data);
            found = Some(u64::from_be_bytes(be));
        }
        ext = rest;
    }
    Ok(found)
}

impl LogEntry {
    /// The `LogEntryType`.
    pub fn entry_type(&self) -> u16 {
        self.kind.signed().entry_type()
    }

    /// The `signed_entry` encoding (ASN.1Cert, or PreCert).
    pub fn signed_entry(&self) -> Vec<u8> {
        self.kind.signed().encode()
    }

    /// The key deduplicating resubmissions: SHA-256 of entry type and signed entry (so the same
    /// certificate submitted with another chain is still the same entry).
    pub fn dedup_key(&self) -> Hash {
        let mut data = self.entry_type().to_be_bytes().to_vec();
        data.extend_from_slice(&self.signed_entry());
        sha256(&data)
    }

    /// The RFC 6962 `TimestampedEntry` with the `leaf_index` extension.
    pub fn timestamped_entry(&self, timestamp: u64, index: u64) -> Vec<u8> {
        timestamped_entry(self.kind.signed(), timestamp, &leaf_index_extensions(index))
    }

    /// The RFC 6962 `MerkleTreeLeaf` (v1, timestamped_entry).
    pub fn merkle_tree_leaf(&self, timestamp: u64, index: u64) -> Vec<u8> {
        let mut out = vec![0u8, 0u8];
        out.extend_from_slice(&self.timestamped_entry(timestamp, index));
        out
    }

    /// The leaf hash of this entry at `index`.
    pub fn leaf_hash(&self, timestamp: u64, index: u64) -> Hash {
        leaf_hash(&self.merkle_tree_leaf(timestamp, index))
    }

    /// The static-ct-api `TileLeaf` for the data tile.
    pub fn tile_leaf(&self, timestamp: u64, index: u64) -> Vec<u8> {
        let mut out = self.timestamped_entry(timestamp, index);
        if let EntryKind::Precert {
            pre_certificate, ..
        } = &self.kind
        {
            put_u24_bytes(&mut out, pre_certificate);
        }
        let fingerprints: Vec<u8> = self.chain_fingerprints.concat();
        put_u16_bytes(&mut out, &fingerprints);
        out
    }
}

/// One decoded `TileLeaf`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TileLeaf {
    /// The entry's timestamp (ms since the epoch).
    pub timestamp: u64,
    /// The entry.
    pub entry: LogEntry,
    /// The raw `CtExtensions`.
    pub extensions: Vec<u8>,
    /// The `leaf_index` extension, if present.
    pub leaf_index: Option<u64>,
    /// The `MerkleTreeLeaf` bytes (what the level-0 hash covers).
    pub merkle_tree_leaf: Vec<u8>,
}

fn take(input: &[u8], n: usize) -> Result<(&[u8], &[u8]), DecodeError> {
    if input.len() < n {
        return Err(DecodeError::Truncated);
    }
    Ok(input.split_at(n))
}

fn take_u16_bytes(input: &[u8]) -> Result<(&[u8], &[u8]), DecodeError> {
    let (len, rest) = take(input, 2)?;
    let len = usize::from(u16::from_be_bytes([len[0], len[1]]));
    take(rest, len)
}

fn take_u24_bytes(input: &[u8]) -> Result<(&[u8], &[u8]), DecodeError> {
    let (len, rest) = take(input, 3)?;
    let len = (usize::from(len[0]) << 16) | (usize::from(len[1]) << 8) | usize::from(len[2]);
    take(rest, len)
}

/// Decodes every `TileLeaf` of a data tile.
pub fn parse_data_tile(mut data: &[u8]) -> Result<Vec<TileLeaf>, DecodeError> {
    let mut out = Vec::new();
    while !data.is_empty() {
        let (leaf, rest) = parse_tile_leaf(data)?;
        out.push(leaf);
        data = rest;
    }
    Ok(out)
}

fn parse_tile_leaf(input: &[u8]) -> Result<(TileLeaf, &[u8]), DecodeError> {
    let start = input;
    let (ts, rest) = take(input, 8)?;
    let mut ts_be = [0u8; 8];
    ts_be.copy_from_slice(ts);
    let (ty, rest) = take(rest, 2)?;
    let entry_type = u16::from_be_bytes([ty[0], ty[1]]);
    let (signed, rest) = match entry_type {
        X509_ENTRY => {
            let (cert, rest) = take_u24_bytes(rest)?;
            (Signed::X509(cert), rest)
        }
        PRECERT_ENTRY => {
            let (ikh, rest) = take(rest, 32)?;
            let (tbs, rest) = take_u24_bytes(rest)?;
            (Signed::Precert(ikh, tbs), rest)
        }
        other => return Err(DecodeError::UnknownEntryType(other)),
    };
    let (extensions, rest) = take_u16_bytes(rest)?;
    let timestamped_len = start.len() - rest.len();
    let mut merkle_tree_leaf = vec![0u8, 0u8];
    merkle_tree_leaf.extend_from_slice(&start[..timestamped_len]);
    let (kind, rest) = match signed {
        Signed::X509(cert) => (
            EntryKind::X509 {
                certificate: cert.to_vec(),
            },
            rest,
        ),
        Signed::Precert(ikh, tbs) => {
            let (pre, rest) = take_u24_bytes(rest)?;
            let mut issuer_key_hash = [0u8; 32];
            issuer_key_hash.copy_from_slice(ikh);
            (
                EntryKind::Precert {
                    issuer_key_hash,
                    tbs_certificate: tbs.to_vec(),
                    pre_certificate: pre.to_vec(),
                },
                rest,
            )
        }
    };
    let (fps, rest) = take_u16_bytes(rest)?;
    if fps.len() % 32 != 0 {
        return Err(DecodeError::BadChain);
    }
    let chain_fingerprints = fps
        .chunks_exact(32)
        .map(|c| {
            let mut h = [0u8; 32];
            h.copy_from_slice(c);
            h
        })
        .collect();
    Ok((
        TileLeaf {
            timestamp: u64::from_be_bytes(ts_be),
            leaf_index: parse_leaf_index(extensions)?,
            extensions: extensions.to_vec(),
            entry: LogEntry {
                kind,
                chain_fingerprints,
            },
            merkle_tree_leaf,
        },
        rest,
    ))
}

enum Signed<'a> {
    X509(&'a [u8]),
    Precert(&'a [u8], &'a [u8]),
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tile_leaves_round_trip() {
        let a = LogEntry {
            kind: EntryKind::X509 {
                certificate: vec![0x30, 1, 2, 3],
            },
            chain_fingerprints: vec![[1; 32], [2; 32]],
        };
        let b = LogEntry {
            kind: EntryKind::Precert {
                issuer_key_hash: [9; 32],
                tbs_certificate: vec![0x30, 7],
                pre_certificate: vec![0x30, 8, 8],
            },
            chain_fingerprints: vec![[3; 32]],
        };
        let mut tile = a.tile_leaf(1000, 41);
        tile.extend_from_slice(&b.tile_leaf(1001, 42));
        let leaves = parse_data_tile(&tile).unwrap();
        assert_eq!(leaves.len(), 2);
        assert_eq!(leaves[0].entry, a);
        assert_eq!(leaves[0].timestamp, 1000);
        assert_eq!(leaves[0].leaf_index, Some(41));
        assert_eq!(leaves[0].merkle_tree_leaf, a.merkle_tree_leaf(1000, 41));
        assert_eq!(leaves[1].entry, b);
        assert_eq!(leaves[1].leaf_index, Some(42));
        assert_eq!(leaves[1].merkle_tree_leaf, b.merkle_tree_leaf(1001, 42));
        assert_eq!(leaf_index_extensions(42).len(), 8);
        for cut in 1..tile.len() {
            let _ = parse_data_tile(&tile[..cut]);
        }
        assert!(parse_data_tile(&tile[..tile.len() - 1]).is_err());
    }

    #[test]
    fn leaf_index_extension_rules() {
        assert_eq!(
            parse_leaf_index(&leaf_index_extensions(MAX_LEAF_INDEX)).unwrap(),
            Some(MAX_LEAF_INDEX)
        );
        assert_eq!(parse_leaf_index(&[]).unwrap(), None);
        let mut dup = leaf_index_extensions(1);
        dup.extend_from_slice(&leaf_index_extensions(2));
        assert!(parse_leaf_index(&dup).is_err());
        assert!(parse_leaf_index(&[0, 0, 4, 1, 2, 3, 4]).is_err());
        assert_eq!(parse_leaf_index(&[7, 0, 1, 9]).unwrap(), None);
    }
}
