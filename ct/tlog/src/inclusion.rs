//! RFC 9162 §2.1.3 Merkle inclusion proofs (audit paths): generation from leaf hashes or from
//! complete-subtree hashes (a tiled log), and verification. The RFC 6962 `get-proof-by-hash`
//! read endpoint serves them.

use crate::consistency::{range_hash, split_u64, tree_hash};
use crate::merkle::{Hash, node_hash};

/// The inclusion proof of leaf `index` in the tree of all `leaves`; `None` if out of range.
pub fn prove(index: usize, leaves: &[Hash]) -> Option<Vec<Hash>> {
    if index >= leaves.len() {
        return None;
    }
    let (mut start, mut end, mut m) = (0, leaves.len(), index);
    let mut path = Vec::new();
    while end - start > 1 {
        let k = split_u64((end - start) as u64) as usize;
        if m < k {
            path.push(tree_hash(&leaves[start + k..end]));
            end = start + k;
        } else {
            path.push(tree_hash(&leaves[start..start + k]));
            start += k;
            m -= k;
        }
    }
    path.reverse();
    Some(path)
}

/// The inclusion proof of leaf `index` in the tree of `size`, from complete-subtree hashes:
/// `node(height, index)` is the hash of the `2^height` leaves from `index·2^height`.
/// `Ok(None)` if `index >= size`.
pub fn prove_from_nodes<E>(
    index: u64,
    size: u64,
    node: &mut impl FnMut(u8, u64) -> Result<Hash, E>,
) -> Result<Option<Vec<Hash>>, E> {
    if index >= size {
        return Ok(None);
    }
    let mut path = Vec::new();
    let (mut start, mut end) = (0u64, size);
    while end - start > 1 {
        let k = split_u64(end - start);
        if index < start + k {
            path.push(range_hash(start + k, end, node)?);
            end = start + k;
        } else {
            path.push(range_hash(start, start + k, node)?);
            start += k;
        }
    }
    path.reverse();
    Ok(Some(path))
}

/// Verifies that `leaf` (a leaf hash) is at `index` in the tree (`size`, `root`) with `proof`
/// (RFC 9162 §2.1.3.2).
pub fn verify(index: u64, size: u64, leaf: &Hash, proof: &[Hash], root: &Hash) -> bool {
    if index >= size {
        return false;
    }
    let (mut f, mut s) = (index, size - 1);
    let mut r = *leaf;
    for p in proof {
        if s == 0 {
            return false;
        }
        if f & 1 == 1 || f == s {
            r = node_hash(p, &r);
            while f & 1 == 0 && f != 0 {
                f >>= 1;
                s >>= 1;
            }
        } else {
            r = node_hash(&r, p);
        }
        f >>= 1;
        s >>= 1;
    }
    s == 0 && &r == root
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::merkle::leaf_hash;

    #[test]
    fn proofs_verify_for_every_leaf_of_every_size_and_tampering_fails() {
        let leaves: Vec<Hash> = (0u32..40).map(|i| leaf_hash(&i.to_be_bytes())).collect();
        for n in 1..=leaves.len() {
            let root = tree_hash(&leaves[..n]);
            for m in 0..n {
                let p = prove(m, &leaves[..n]).unwrap();
                assert!(
                    verify(m as u64, n as u64, &leaves[m], &p, &root),
                    "{m} in {n}"
                );
                let mut node = |height: u8, index: u64| {
                    let width = 1usize << height;
                    let start = index as usize * width;
                    assert!(start + width <= n, "subtree beyond the tree");
                    Ok::<_, ()>(tree_hash(&leaves[start..start + width]))
                };
                assert_eq!(
                    prove_from_nodes(m as u64, n as u64, &mut node),
                    Ok(Some(p.clone()))
                );
                let other = (m + 1) % n;
                if other != m {
                    assert!(!verify(other as u64, n as u64, &leaves[m], &p, &root));
                    assert!(!verify(m as u64, n as u64, &leaves[other], &p, &root));
                }
                if let Some(first) = p.first() {
                    let mut q = p.clone();
                    q[0] = leaf_hash(first);
                    assert!(!verify(m as u64, n as u64, &leaves[m], &q, &root));
                }
            }
            assert_eq!(prove(n, &leaves[..n]), None);
        }
    }
}
