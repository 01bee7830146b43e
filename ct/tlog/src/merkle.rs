//! RFC 6962 Merkle tree hashing: leaf and interior hashes, and tree roots built from aligned
//! complete subtrees (the shape the tiles store).

use aws_lc_rs::digest;

/// A SHA-256 Merkle tree hash.
pub type Hash = [u8; 32];

fn sha256_parts(parts: &[&[u8]]) -> Hash {
    let mut ctx = digest::Context::new(&digest::SHA256);
    for p in parts {
        ctx.update(p);
    }
    let mut out = [0u8; 32];
    out.copy_from_slice(ctx.finish().as_ref());
    out
}

/// SHA-256 of `data`.
pub fn sha256(data: &[u8]) -> Hash {
    sha256_parts(&[data])
}

/// The leaf hash `SHA-256(0x00 || leaf)` (RFC 6962 §2.1).
pub fn leaf_hash(leaf: &[u8]) -> Hash {
    sha256_parts(&[&[0x00], leaf])
}

/// The interior node hash `SHA-256(0x01 || left || right)` (RFC 6962 §2.1).
pub fn node_hash(left: &Hash, right: &Hash) -> Hash {
    sha256_parts(&[&[0x01], left, right])
}

/// The root of the empty tree, `SHA-256("")`.
pub fn empty_root() -> Hash {
    sha256(b"")
}

/// The root of a complete subtree whose leaves (at some level) are `hashes`; `None` unless the
/// count is a non-zero power of two.
pub fn complete_root(hashes: &[Hash]) -> Option<Hash> {
    if hashes.is_empty() || !hashes.len().is_power_of_two() {
        return None;
    }
    let mut level = hashes.to_vec();
    while level.len() > 1 {
        level = level
            .chunks_exact(2)
            .map(|pair| node_hash(&pair[0], &pair[1]))
            .collect();
    }
    level.first().copied()
}

/// The root of the tree made of `subtrees`, given left to right as `(leaf count, hash)` of
/// complete subtrees whose sizes are powers of two, non-increasing, each aligned to its size
/// (exactly what the rightmost partial tiles of every level hold, highest level first).
/// Adjacent equal subtrees are merged first, then the stack is folded from the right, which is
/// RFC 6962's MTH. `None` if the sizes break those rules.
pub fn root_from_subtrees(subtrees: &[(u64, Hash)]) -> Option<Hash> {
    let mut stack: Vec<(u64, Hash)> = Vec::new();
    for &(size, hash) in subtrees {
        if size == 0 || !size.is_power_of_two() {
            return None;
        }
        if stack.last().is_some_and(|&(prev, _)| prev < size) {
            return None;
        }
        stack.push((size, hash));
        while stack.len() >= 2 {
            let n = stack.len();
            let (rs, rh) = stack[n - 1];
            let (ls, lh) = stack[n - 2];
            if ls != rs {
                break;
            }
            stack.truncate(n - 2);
            stack.push((ls * 2, node_hash(&lh, &rh)));
        }
    }
    let mut iter = stack.into_iter().rev();
    let Some((_, mut acc)) = iter.next() else {
        return Some(empty_root());
    };
    for (_, left) in iter {
        acc = node_hash(&left, &acc);
    }
    Some(acc)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// RFC 6962's MTH by its recursive definition over leaf hashes.
    fn naive_mth(leaves: &[Hash]) -> Hash {
        match leaves.len() {
            0 => empty_root(),
            1 => leaves[0],
            n => {
                let mut k = 1;
                while k * 2 < n {
                    k *= 2;
                }
                node_hash(&naive_mth(&leaves[..k]), &naive_mth(&leaves[k..]))
            }
        }
    }

    fn vector_leaves() -> Vec<Vec<u8>> {
        // The eight leaves of the RFC 6962 test vectors used by certificate-transparency-go and
        // Trillian.
        [
            "",
            "00",
            "10",
            "2021",
            "3031",
            "40414243",
            "5051525354555657",
            "606162636465666768696a6b6c6d6e6f",
        ]
        .iter()
        .map(|h| hex::decode(h).unwrap())
        .collect()
    }

    #[test]
    fn roots_match_rfc6962_test_vectors() {
        let roots = [
            "6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d",
            "fac54203e7cc696cf0dfcb42c92a1d9dbaf70ad9e621f4bd8d98662f00e3c125",
            "aeb6bcfe274b70a14fb067a5e5578264db0fa9b51af5e0ba159158f329e06e77",
            "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7",
            "4e3bbb1f7b478dcfe71fb631631519a3bca12c9aefca1612bfce4c13a86264d4",
            "76e67dadbcdf1e10e1b74ddc608abd2f98dfb16fbce75277b5232a127f2087ef",
            "ddb89be403809e325750d3d263cd78929c2942b7942a34b77e122c9594a74c8c",
            "5dc9da79a70659a9ad559cb701ded9a2ab9d823aad2f4960cfe370eff4604328",
        ];
        let leaves: Vec<Hash> = vector_leaves().iter().map(|l| leaf_hash(l)).collect();
        for (n, want) in roots.iter().enumerate() {
            let got = naive_mth(&leaves[..=n]);
            assert_eq!(hex::encode(got), *want, "naive size {}", n + 1);
            let subtrees: Vec<(u64, Hash)> = leaves[..=n].iter().map(|h| (1, *h)).collect();
            assert_eq!(
                hex::encode(root_from_subtrees(&subtrees).unwrap()),
                *want,
                "stacked size {}",
                n + 1
            );
        }
        assert_eq!(
            hex::encode(empty_root()),
            "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
        );
    }

    #[test]
    fn subtree_roots_match_naive_for_many_sizes() {
        let leaves: Vec<Hash> = (0u32..700).map(|i| leaf_hash(&i.to_be_bytes())).collect();
        for n in [1usize, 2, 3, 255, 256, 257, 511, 512, 513, 600, 700] {
            // Group as tiles of 16 leaves (a smaller tile height keeps the test fast but covers
            // the multi-level merging).
            let mut subtrees = Vec::new();
            let mut i = 0;
            for size in [256usize, 16, 1] {
                while i + size <= n && i % size == 0 {
                    subtrees.push((size as u64, complete_root(&leaves[i..i + size]).unwrap()));
                    i += size;
                }
            }
            assert_eq!(i, n);
            assert_eq!(
                root_from_subtrees(&subtrees).unwrap(),
                naive_mth(&leaves[..n]),
                "size {n}"
            );
        }
        assert!(root_from_subtrees(&[(1, [0; 32]), (2, [0; 32])]).is_none());
        assert!(root_from_subtrees(&[(3, [0; 32])]).is_none());
        assert_eq!(root_from_subtrees(&[]).unwrap(), empty_root());
    }
}
