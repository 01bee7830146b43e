//! Precertificates (RFC 6962 §3.2): the TBSCertificate a precertificate entry logs and an SCT
//! signs — the poison extension removed and, when a precertificate signing certificate issued
//! it, the issuer Name and authorityKeyIdentifier taken from that certificate. Done as minimal
//! DER surgery, byte-exact for everything untouched, so the CA (checking an SCT) and the log
//! (building the entry) get the same bytes.

/// DER contents of OID 1.3.6.1.4.1.11129.2.4.3 (the precertificate poison extension).
pub(crate) const POISON_OID: &[u8] = &[0x2b, 0x06, 0x01, 0x04, 0x01, 0xd6, 0x79, 0x02, 0x04, 0x03];
/// DER contents of OID 2.5.29.35 (authorityKeyIdentifier).
pub(crate) const AKI_OID: &[u8] = &[0x55, 0x1d, 0x23];

/// The TBSCertificate of `cert` (DER) with the precertificate poison extension removed, as
/// logged for a precertificate issued directly by its CA; `None` if `cert` is not DER.
pub fn tbs_without_poison(cert: &[u8]) -> Option<Vec<u8>> {
    precert_tbs(cert, None)
}

// ---- minimal DER TLV surgery on TBSCertificates ----

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
pub(crate) fn extension_tlv(cert: &[u8], oid: &[u8]) -> Option<Vec<u8>> {
    let tbs = tbs_children(cert)?;
    extensions(&tbs)?
        .into_iter()
        .find(|(o, _)| *o == oid)
        .map(|(_, whole)| whole.to_vec())
}

/// The precertificate's TBSCertificate with the poison extension removed and, for a
/// precertificate signing certificate, the issuer Name replaced and the AKI extension replaced
/// (or removed when the signing certificate has none), per RFC 6962 §3.2.
pub(crate) fn precert_tbs(cert: &[u8], psc: Option<(&[u8], Option<&[u8]>)>) -> Option<Vec<u8>> {
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
