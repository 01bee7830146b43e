//! RFC 9162 §2.1.4 Merkle consistency proofs: generation from leaf hashes and verification
//! (what a C2SP tlog-witness checks before cosigning).

use crate::merkle::{Hash, empty_root, node_hash};

/// The Merkle tree hash of `leaves` (leaf hashes), RFC 9162 §2.1.1.
pub fn tree_hash(leaves: &[Hash]) -> Hash {
    match leaves.len() {
        0 => empty_root(),
        1 => leaves[0],
        n => {
            let k = split(n);
            node_hash(&tree_hash(&leaves[..k]), &tree_hash(&leaves[k..]))
        }
    }
}

/// The largest power of two smaller than `n` (n ≥ 2).
fn split(n: usize) -> usize {
    let mut k = 1;
    while k << 1 < n {
        k <<= 1;
    }
    k
}

/// The consistency proof from the tree of the first `old_size` leaves to the tree of all
/// `leaves` (RFC 9162 §2.1.4.1); `None` if `old_size` exceeds the leaves.
pub fn prove(old_size: usize, leaves: &[Hash]) -> Option<Vec<Hash>> {
    if old_size > leaves.len() {
        return None;
    }
    if old_size == 0 || old_size == leaves.len() {
        return Some(Vec::new());
    }
    Some(subproof(old_size, leaves, true))
}

fn subproof(m: usize, leaves: &[Hash], whole: bool) -> Vec<Hash> {
    let n = leaves.len();
    if m == n {
        return if whole {
            Vec::new()
        } else {
            vec![tree_hash(leaves)]
        };
    }
    let k = split(n);
    if m <= k {
        let mut p = subproof(m, &leaves[..k], whole);
        p.push(tree_hash(&leaves[k..]));
        p
    } else {
        let mut p = subproof(m - k, &leaves[k..], false);
        p.push(tree_hash(&leaves[..k]));
        p
    }
}

/// The consistency proof from the tree of size `old_size` to the tree of size `new_size`, for a
/// log that keeps hashes rather than leaves (tiles): `node(height, index)` returns the hash of
/// the complete subtree of `2^height` leaves starting at leaf `index·2^height`. Only subtrees
/// inside the new tree are asked for, about two per level. `Ok(None)` if `old_size >
/// new_size`. Same proofs as [`prove`].
pub fn prove_from_nodes<E>(
    old_size: u64,
    new_size: u64,
    node: &mut impl FnMut(u8, u64) -> Result<Hash, E>,
) -> Result<Option<Vec<Hash>>, E> {
    if old_size > new_size {
        return Ok(None);
    }
    if old_size == 0 || old_size == new_size {
        return Ok(Some(Vec::new()));
    }
    let mut proof = Vec::new();
    range_subproof(old_size, 0, new_size, true, node, &mut proof)?;
    Ok(Some(proof))
}

/// The largest power of two smaller than `n` (n ≥ 2), for leaf counts.
pub(crate) fn split_u64(n: u64) -> u64 {
    let mut k = 1;
    while k << 1 < n {
        k <<= 1;
    }
    k
}

/// The hash of leaves `start..end` (`end > start`), from complete subtrees.
pub(crate) fn range_hash<E>(
    start: u64,
    end: u64,
    node: &mut impl FnMut(u8, u64) -> Result<Hash, E>,
) -> Result<Hash, E> {
    let n = end - start;
    if n.is_power_of_two() && start.is_multiple_of(n) {
        return node(n.trailing_zeros() as u8, start / n);
    }
    let k = split_u64(n);
    let left = range_hash(start, start + k, node)?;
    let right = range_hash(start + k, end, node)?;
    Ok(node_hash(&left, &right))
}

fn range_subproof<E>(
    m: u64,
    start: u64,
    end: u64,
    whole: bool,
    node: &mut impl FnMut(u8, u64) -> Result<Hash, E>,
    out: &mut Vec<Hash>,
) -> Result<(), E> {
    let n = end - start;
    if m == n {
        if !whole {
            out.push(range_hash(start, end, node)?);
        }
        return Ok(());
    }
    let k = split_u64(n);
    if m <= k {
        range_subproof(m, start, start + k, whole, node, out)?;
        out.push(range_hash(start + k, end, node)?);
    } else {
        range_subproof(m - k, start + k, end, false, node, out)?;
        out.push(range_hash(start, start + k, node)?);
    }
    Ok(())
}

/// Verifies that the tree (`new_size`, `new_root`) extends (`old_size`, `old_root`) with
/// `proof` (RFC 9162 §2.1.4.2). An empty old tree is extended by every tree (empty proof).
pub fn verify(
    old_size: u64,
    old_root: &Hash,
    new_size: u64,
    new_root: &Hash,
    proof: &[Hash],
) -> bool {
    if old_size > new_size {
        return false;
    }
    if old_size == new_size {
        return proof.is_empty() && old_root == new_root;
    }
    if old_size == 0 {
        return proof.is_empty();
    }
    let mut path: Vec<Hash> = Vec::with_capacity(proof.len() + 1);
    if old_size.is_power_of_two() {
        path.push(*old_root);
    }
    path.extend_from_slice(proof);
    let Some((first, rest)) = path.split_first() else {
        return false;
    };
    let (mut f, mut s) = (old_size - 1, new_size - 1);
    while f & 1 == 1 {
        f >>= 1;
        s >>= 1;
    }
    let (mut fr, mut sr) = (*first, *first);
    for c in rest {
        if s == 0 {
            return false;
        }
        if f & 1 == 1 || f == s {
            fr = node_hash(c, &fr);
            sr = node_hash(c, &sr);
            while f & 1 == 0 && f != 0 {
                f >>= 1;
                s >>= 1;
            }
        } else {
            sr = node_hash(&sr, c);
        }
        f >>= 1;
        s >>= 1;
    }
    s == 0 && &fr == old_root && &sr == new_root
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::merkle::leaf_hash;

    #[test]
    fn proofs_verify_for_every_pair_of_sizes_and_tampering_fails() {
        let leaves: Vec<Hash> = (0u32..40).map(|i| leaf_hash(&i.to_be_bytes())).collect();
        for n in 1..=leaves.len() {
            let new_root = tree_hash(&leaves[..n]);
            for m in 0..=n {
                let old_root = tree_hash(&leaves[..m]);
                let p = prove(m, &leaves[..n]).unwrap();
                assert!(
                    verify(m as u64, &old_root, n as u64, &new_root, &p),
                    "{m}->{n}"
                );
                if m > 0 && m < n {
                    // Wrong old root, wrong new root, a flipped proof hash, a wrong size.
                    let bad = leaf_hash(b"x");
                    assert!(!verify(m as u64, &bad, n as u64, &new_root, &p));
                    assert!(!verify(m as u64, &old_root, n as u64, &bad, &p));
                    let mut q = p.clone();
                    q[0][0] ^= 1;
                    assert!(!verify(m as u64, &old_root, n as u64, &new_root, &q));
                    assert!(
                        !verify(m as u64 + 1, &old_root, n as u64, &new_root, &p) || m + 1 == n
                    );
                }
            }
        }
        // The same proofs from complete-subtree hashes only (as a tiled log computes them),
        // never asking for a subtree beyond the new tree.
        for n in 0..=leaves.len() {
            for m in 0..=n {
                let mut node = |height: u8, index: u64| {
                    let width = 1usize << height;
                    let start = index as usize * width;
                    assert!(start + width <= n, "subtree beyond the tree");
                    Ok::<_, ()>(tree_hash(&leaves[start..start + width]))
                };
                let p = prove_from_nodes(m as u64, n as u64, &mut node).unwrap();
                assert_eq!(p, prove(m, &leaves[..n]), "{m}->{n}");
            }
        }
        assert_eq!(
            prove_from_nodes(5, 4, &mut |_, _| Ok::<_, ()>(empty_root())),
            Ok(None)
        );
        // A fork: same size, another root.
        let other: Vec<Hash> = (100u32..110).map(|i| leaf_hash(&i.to_be_bytes())).collect();
        assert!(!verify(
            10,
            &tree_hash(&leaves[..10]),
            10,
            &tree_hash(&other),
            &[]
        ));
    }
}
