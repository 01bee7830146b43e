//! An independent verifier of a static-ct-api log: its own tile paths, data-tile parser,
//! checkpoint signature check and naive RFC 6962 Merkle tree — sharing no code with the log.

use aws_lc_rs::digest::{SHA256, digest};
use aws_lc_rs::signature::{ECDSA_P256_SHA256_ASN1, UnparsedPublicKey};
use base64::Engine;
use base64::engine::general_purpose::STANDARD as B64;
use der::Decode;

pub type H = [u8; 32];

pub fn sha(parts: &[&[u8]]) -> H {
    let mut v = Vec::new();
    for p in parts {
        v.extend_from_slice(p);
    }
    digest(&SHA256, &v).as_ref().try_into().unwrap()
}

/// RFC 6962 MTH by definition over leaf hashes.
pub fn mth(leaves: &[H]) -> H {
    match leaves.len() {
        0 => sha(&[]),
        1 => leaves[0],
        n => {
            let k = 1usize << (usize::BITS - (n - 1).leading_zeros() - 1);
            sha(&[&[1], &mth(&leaves[..k]), &mth(&leaves[k..])])
        }
    }
}

#[derive(Debug, Clone)]
pub struct Cp {
    pub size: u64,
    pub root: H,
    pub timestamp: u64,
    pub text: String,
}

/// Parses the checkpoint and verifies its RFC6962NoteSignature with `spki`.
pub fn verify_checkpoint(text: &str, origin: &str, spki: &[u8]) -> Cp {
    let (body, sigs) = text.split_once("\n\n").expect("blank line");
    let lines: Vec<&str> = body.split('\n').collect();
    assert_eq!(lines.len(), 3, "three body lines");
    assert_eq!(lines[0], origin);
    let size: u64 = lines[1].parse().unwrap();
    let root: H = B64.decode(lines[2]).unwrap().try_into().unwrap();
    let log_id = sha(&[spki]);
    let key_id = &sha(&[origin.as_bytes(), b"\n", &[5], &log_id])[..4];
    for line in sigs.lines() {
        let rest = line.strip_prefix("\u{2014} ").unwrap();
        let (name, b64) = rest.split_once(' ').unwrap();
        let sig = B64.decode(b64).unwrap();
        if name != origin || &sig[..4] != key_id {
            continue;
        }
        let ts = u64::from_be_bytes(sig[4..12].try_into().unwrap());
        assert_eq!(&sig[12..14], &[4, 3], "sha256/ecdsa");
        let len = u16::from_be_bytes([sig[14], sig[15]]) as usize;
        assert_eq!(sig.len(), 16 + len);
        let mut msg = vec![0u8, 1u8];
        msg.extend_from_slice(&ts.to_be_bytes());
        msg.extend_from_slice(&size.to_be_bytes());
        msg.extend_from_slice(&root);
        let spki = x509_cert::spki::SubjectPublicKeyInfoRef::from_der(spki).unwrap();
        UnparsedPublicKey::new(&ECDSA_P256_SHA256_ASN1, spki.subject_public_key.raw_bytes())
            .verify(&msg, &sig[16..])
            .expect("checkpoint signature verifies");
        return Cp {
            size,
            root,
            timestamp: ts,
            text: text.to_string(),
        };
    }
    panic!("no log signature")
}

fn index_path(mut n: u64) -> String {
    let mut parts = vec![format!("{:03}", n % 1000)];
    n /= 1000;
    while n > 0 {
        parts.insert(0, format!("x{:03}", n % 1000));
        n /= 1000;
    }
    parts.join("/")
}

pub fn tile_url(base: &str, level: &str, n: u64, width: u64) -> String {
    if width == 256 {
        format!("{base}/tile/{level}/{}", index_path(n))
    } else {
        format!("{base}/tile/{level}/{}.p/{width}", index_path(n))
    }
}

/// One decoded data-tile entry.
#[derive(Debug, Clone)]
pub struct Entry {
    pub timestamp: u64,
    pub entry_type: u16,
    /// Certificate (x509) or TBS (precert).
    pub signed: Vec<u8>,
    pub issuer_key_hash: Option<H>,
    pub leaf_index: u64,
    pub pre_certificate: Option<Vec<u8>>,
    pub chain: Vec<H>,
    pub leaf_hash: H,
}

fn u24(b: &[u8]) -> usize {
    (b[0] as usize) << 16 | (b[1] as usize) << 8 | b[2] as usize
}

pub fn parse_data(mut d: &[u8]) -> Vec<Entry> {
    let mut out = Vec::new();
    while !d.is_empty() {
        let start = d;
        let timestamp = u64::from_be_bytes(d[..8].try_into().unwrap());
        let entry_type = u16::from_be_bytes([d[8], d[9]]);
        d = &d[10..];
        let mut issuer_key_hash = None;
        if entry_type == 1 {
            issuer_key_hash = Some(d[..32].try_into().unwrap());
            d = &d[32..];
        } else {
            assert_eq!(entry_type, 0);
        }
        let n = u24(d);
        let signed = d[3..3 + n].to_vec();
        d = &d[3 + n..];
        let ext_len = u16::from_be_bytes([d[0], d[1]]) as usize;
        let ext = &d[2..2 + ext_len];
        assert_eq!(ext.len(), 8);
        assert_eq!(&ext[..3], &[0, 0, 5]);
        let mut idx = [0u8; 8];
        idx[3..].copy_from_slice(&ext[3..]);
        d = &d[2 + ext_len..];
        let te_len = start.len() - d.len();
        let leaf_hash = sha(&[&[0, 0, 0], &start[..te_len]]);
        let mut pre_certificate = None;
        if entry_type == 1 {
            let n = u24(d);
            pre_certificate = Some(d[3..3 + n].to_vec());
            d = &d[3 + n..];
        }
        let fl = u16::from_be_bytes([d[0], d[1]]) as usize;
        let chain = d[2..2 + fl]
            .chunks(32)
            .map(|c| c.try_into().unwrap())
            .collect();
        d = &d[2 + fl..];
        out.push(Entry {
            timestamp,
            entry_type,
            signed,
            issuer_key_hash,
            leaf_index: u64::from_be_bytes(idx),
            pre_certificate,
            chain,
            leaf_hash,
        });
    }
    out
}

/// Everything the verifier learned about the log at one checkpoint.
pub struct Snapshot {
    pub checkpoint: Cp,
    pub entries: Vec<Entry>,
    pub leaf_hashes: Vec<H>,
}

async fn get(client: &reqwest::Client, url: &str) -> Vec<u8> {
    let r = client.get(url).send().await.unwrap();
    assert!(r.status().is_success(), "GET {url}: {}", r.status());
    r.bytes().await.unwrap().to_vec()
}

/// Fetches the checkpoint and every level-0 and data tile, checks they agree, and that the
/// naive root of the leaves is the checkpoint's root; checks level-1 tiles too.
pub async fn snapshot(client: &reqwest::Client, base: &str, origin: &str, spki: &[u8]) -> Snapshot {
    let text = String::from_utf8(get(client, &format!("{base}/checkpoint")).await).unwrap();
    let checkpoint = verify_checkpoint(&text, origin, spki);
    let size = checkpoint.size;
    let mut leaf_hashes = Vec::new();
    let mut entries = Vec::new();
    let mut n = 0u64;
    while n * 256 < size {
        let width = (size - n * 256).min(256);
        let hashes = get(client, &tile_url(base, "0", n, width)).await;
        assert_eq!(hashes.len() as u64, width * 32);
        let data = get(client, &tile_url(base, "data", n, width)).await;
        let parsed = parse_data(&data);
        assert_eq!(parsed.len() as u64, width);
        for (i, e) in parsed.iter().enumerate() {
            assert_eq!(
                &hashes[i * 32..i * 32 + 32],
                &e.leaf_hash,
                "level-0 tile matches data tile"
            );
            assert_eq!(
                e.leaf_index,
                n * 256 + i as u64,
                "leaf_index extension matches position"
            );
            for fp in &e.chain {
                let issuer = get(client, &format!("{base}/issuer/{}", hex::encode(fp))).await;
                assert_eq!(&sha(&[&issuer]), fp);
            }
        }
        leaf_hashes.extend(hashes.chunks(32).map(|c| -> H { c.try_into().unwrap() }));
        entries.extend(parsed);
        n += 1;
    }
    assert_eq!(
        mth(&leaf_hashes),
        checkpoint.root,
        "naive root matches checkpoint"
    );
    // Level 1: each hash is the MTH of a full level-0 tile.
    let full0 = size / 256;
    let mut m = 0u64;
    while m * 256 < full0 {
        let width = (full0 - m * 256).min(256);
        let l1 = get(client, &tile_url(base, "1", m, width)).await;
        for i in 0..width as usize {
            let t = (m as usize * 256 + i) * 256;
            assert_eq!(&l1[i * 32..i * 32 + 32], &mth(&leaf_hashes[t..t + 256]));
        }
        m += 1;
    }
    Snapshot {
        checkpoint,
        entries,
        leaf_hashes,
    }
}

/// Consistency: the earlier checkpoint's root is the root of the first `old.size` leaves.
pub fn assert_consistent(old: &Cp, new: &Snapshot) {
    assert!(old.size <= new.checkpoint.size, "tree shrank");
    assert_eq!(
        mth(&new.leaf_hashes[..old.size as usize]),
        old.root,
        "checkpoint of size {} is not a prefix of size {}",
        old.size,
        new.checkpoint.size
    );
}

/// Verifies an add-chain SCT JSON independently: LogID, leaf_index extension, and signature
/// over a struct rebuilt from the submitted certificate (or the expected TBS for precerts).
pub fn verify_sct(
    sct: &serde_json::Value,
    spki: &[u8],
    entry_type: u16,
    signed_entry: &[u8],
) -> (u64, u64) {
    assert_eq!(sct["sct_version"], 0);
    assert_eq!(
        B64.decode(sct["id"].as_str().unwrap()).unwrap(),
        sha(&[spki])
    );
    let ts = sct["timestamp"].as_u64().unwrap();
    let ext = B64.decode(sct["extensions"].as_str().unwrap()).unwrap();
    assert_eq!(ext.len(), 8);
    assert_eq!(&ext[..3], &[0, 0, 5]);
    let mut idx = [0u8; 8];
    idx[3..].copy_from_slice(&ext[3..]);
    let index = u64::from_be_bytes(idx);
    let mut msg = vec![0u8, 0u8];
    msg.extend_from_slice(&ts.to_be_bytes());
    msg.extend_from_slice(&entry_type.to_be_bytes());
    msg.extend_from_slice(signed_entry);
    msg.extend_from_slice(&[0, 8]);
    msg.extend_from_slice(&ext);
    let ds = B64.decode(sct["signature"].as_str().unwrap()).unwrap();
    assert_eq!(&ds[..2], &[4, 3]);
    let spki = x509_cert::spki::SubjectPublicKeyInfoRef::from_der(spki).unwrap();
    UnparsedPublicKey::new(&ECDSA_P256_SHA256_ASN1, spki.subject_public_key.raw_bytes())
        .verify(&msg, &ds[4..])
        .expect("SCT signature verifies");
    (ts, index)
}

/// `signed_entry` for a certificate.
pub fn x509_signed_entry(cert: &[u8]) -> Vec<u8> {
    let n = cert.len();
    let mut v = vec![(n >> 16) as u8, (n >> 8) as u8, n as u8];
    v.extend_from_slice(cert);
    v
}

/// `signed_entry` for a precertificate.
pub fn precert_signed_entry(issuer_spki: &[u8], tbs: &[u8]) -> Vec<u8> {
    let mut v = sha(&[issuer_spki]).to_vec();
    v.extend_from_slice(&x509_signed_entry(tbs));
    v
}
