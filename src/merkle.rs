//! The hash tree over a batch of an author's messages, whose root the author signs once (a
//! [`crate::protocol::Seal`]): a message proves its author with the batch's signature and the
//! hashes of the parts of the tree it does not hold, whoever hands it over.
//!
//! Why a tree and not a signature per message: an Ed25519 signature costs about 10 µs to make and
//! 25 µs to check, more than a whole message costs on the fast path; one signature per turn of
//! the author, over a tree of SHA-256 hashes (about 0.1 µs a leaf with the CPU's SHA extensions),
//! keeps it there. And why a tree and not a list of hashes: a message handed on alone (catch-up
//! from a third peer) then needs a proof of `log2(n)` hashes, not `n`.
//!
//! The tree over leaves `0..n` is the one of RFC 6962 (Certificate Transparency): for `n > 1` the
//! left subtree holds the first `k` leaves, `k` the largest power of two below `n`, the right one
//! the rest. Hashes (SHA-256) are domain-separated: a leaf is `H(0x00 || envelope bytes)`, an
//! inner node `H(0x01 || left || right)`; a leaf for a number the author gave to no message (a
//! message refused after it was numbered) is all zeros.
//!
//! A proof for a set of leaves that a receiver holds ([`prove`], [`root_of`]) is the hashes of the
//! largest subtrees that hold none of them, in depth-first order, left before right.

use sha2::{Digest, Sha256};

/// A SHA-256 hash.
pub type Hash = [u8; 32];

/// The leaf of a number the author gave to no message.
pub const GAP: Hash = [0; 32];

/// The hash of a leaf: a message's envelope, as encoded.
pub fn leaf(envelope: &[u8]) -> Hash {
    let mut h = Sha256::new();
    h.update([0u8]);
    h.update(envelope);
    h.finalize().into()
}

/// The hash of an inner node.
pub fn node(left: &Hash, right: &Hash) -> Hash {
    let mut h = Sha256::new();
    h.update([1u8]);
    h.update(left);
    h.update(right);
    h.finalize().into()
}

/// Where the tree over `n` leaves splits (`n > 1`): the largest power of two below `n`.
fn split(n: u32) -> u32 {
    debug_assert!(n > 1);
    1 << (31 - (n - 1).leading_zeros())
}

/// The root of the tree over `leaves` (at least one).
pub fn root(leaves: &[Hash]) -> Hash {
    match leaves.len() {
        0 => GAP,
        1 => leaves[0],
        n => {
            let k = split(n as u32) as usize;
            node(&root(&leaves[..k]), &root(&leaves[k..]))
        }
    }
}

/// The hashes of a tree's parts, as far as they are known: the leaves held, and nodes kept from
/// proofs received (each a range of leaves and its hash).
pub trait Known {
    /// The hash of leaf `i`, if held.
    fn leaf(&self, i: u32) -> Option<Hash>;
    /// The hash of the subtree over leaves `start..start + len`, if kept.
    fn node(&self, start: u32, len: u32) -> Option<Hash>;
}

/// Known leaves only, all of them (an author's own batch).
impl Known for [Hash] {
    fn leaf(&self, i: u32) -> Option<Hash> {
        self.get(i as usize).copied()
    }
    fn node(&self, _: u32, _: u32) -> Option<Hash> {
        None
    }
}

/// The hash of the subtree over `start..start + len`, from what `known` holds; `None` when a
/// part of it is not known.
pub fn subtree(known: &(impl Known + ?Sized), start: u32, len: u32) -> Option<Hash> {
    if let Some(h) = known.node(start, len) {
        return Some(h);
    }
    if len == 1 {
        return known.leaf(start);
    }
    let k = split(len);
    Some(node(&subtree(known, start, k)?, &subtree(known, start + k, len - k)?))
}

/// The proof for the leaves `held` (sorted, distinct, each below `n`) of a tree over `n` leaves:
/// the subtrees with none of them, each as (start, len, hash), depth-first. `None` when a hash
/// needed is not known.
pub fn prove(known: &(impl Known + ?Sized), n: u32, held: &[u32]) -> Option<Vec<(u32, u32, Hash)>> {
    let mut out = Vec::new();
    prove_into(known, 0, n, held, &mut out)?;
    Some(out)
}

fn prove_into(
    known: &(impl Known + ?Sized),
    start: u32,
    len: u32,
    held: &[u32],
    out: &mut Vec<(u32, u32, Hash)>,
) -> Option<()> {
    if held.is_empty() {
        out.push((start, len, subtree(known, start, len)?));
        return Some(());
    }
    if len == 1 {
        return Some(());
    }
    let k = split(len);
    let cut = held.partition_point(|&i| i < start + k);
    prove_into(known, start, k, &held[..cut], out)?;
    prove_into(known, start + k, len - k, &held[cut..], out)
}

/// The root of a tree over `n` leaves from the leaves held, `(index, hash)` sorted by index and
/// distinct, each below `n`, and the proof's hashes in its order; with the position of each proof
/// hash, (start, len), pushed to `nodes` (so that a receiver can keep them for handing the
/// messages on). `None` when the proof has too few or too many hashes.
pub fn root_of(n: u32, held: &[(u32, Hash)], proof: &[Hash], nodes: &mut Vec<(u32, u32, Hash)>) -> Option<Hash> {
    if n == 0 || held.last().is_some_and(|(i, _)| *i >= n) {
        return None;
    }
    let mut proof = proof.iter();
    let r = root_into(0, n, held, &mut proof, nodes)?;
    proof.next().is_none().then_some(r)
}

fn root_into<'a>(
    start: u32,
    len: u32,
    held: &[(u32, Hash)],
    proof: &mut impl Iterator<Item = &'a Hash>,
    nodes: &mut Vec<(u32, u32, Hash)>,
) -> Option<Hash> {
    if held.is_empty() {
        let h = *proof.next()?;
        nodes.push((start, len, h));
        return Some(h);
    }
    if len == 1 {
        return (held.len() == 1 && held[0].0 == start).then_some(held[0].1);
    }
    let k = split(len);
    let cut = held.partition_point(|&(i, _)| i < start + k);
    let l = root_into(start, k, &held[..cut], proof, nodes)?;
    let r = root_into(start + k, len - k, &held[cut..], proof, nodes)?;
    Some(node(&l, &r))
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn leaves(n: u32) -> Vec<Hash> {
        (0..n).map(|i| leaf(&i.to_le_bytes())).collect()
    }

    #[test]
    fn the_tree_is_rfc_6962s() {
        let l = leaves(5);
        assert_eq!(root(&l[..1]), l[0]);
        assert_eq!(root(&l[..2]), node(&l[0], &l[1]));
        assert_eq!(root(&l[..3]), node(&node(&l[0], &l[1]), &l[2]));
        assert_eq!(root(&l), node(&node(&node(&l[0], &l[1]), &node(&l[2], &l[3])), &l[4]));
        assert_ne!(leaf(&[]), node(&GAP, &GAP), "leaves and nodes never hash alike");
    }

    /// Kept nodes as a receiver has them.
    struct Kept<'a>(&'a [Option<Hash>], &'a [(u32, u32, Hash)]);
    impl Known for Kept<'_> {
        fn leaf(&self, i: u32) -> Option<Hash> {
            self.0.get(i as usize).copied().flatten()
        }
        fn node(&self, start: u32, len: u32) -> Option<Hash> {
            self.1.iter().find(|(s, l, _)| (*s, *l) == (start, len)).map(|n| n.2)
        }
    }

    proptest! {
        /// Any subset of the leaves, proved by the author, gives the root back at a receiver;
        /// the nodes it keeps then prove any other subset of what it holds to a third peer.
        #[test]
        fn proofs_of_any_subset_give_the_root(n in 1u32..300, picks in proptest::collection::vec(any::<u32>(), 0..40), again in proptest::collection::vec(any::<u32>(), 0..10)) {
            let l = leaves(n);
            let r = root(&l);
            let mut held: Vec<u32> = picks.iter().map(|p| p % n).collect();
            held.sort_unstable();
            held.dedup();
            let proof = prove(&l[..], n, &held).unwrap();
            let hashes: Vec<Hash> = proof.iter().map(|p| p.2).collect();
            let pairs: Vec<(u32, Hash)> = held.iter().map(|&i| (i, l[i as usize])).collect();
            let mut nodes = Vec::new();
            prop_assert_eq!(root_of(n, &pairs, &hashes, &mut nodes), Some(r));
            prop_assert_eq!(&nodes, &proof);
            // A third peer gets a part of what the second holds, proved from what it kept.
            if !held.is_empty() {
                let mut part: Vec<u32> = again.iter().map(|p| held[*p as usize % held.len()]).collect();
                part.sort_unstable();
                part.dedup();
                let mut have = vec![None; n as usize];
                for &i in &held {
                    have[i as usize] = Some(l[i as usize]);
                }
                let second = Kept(&have, &nodes);
                let proof2 = prove(&second, n, &part).unwrap();
                let hashes2: Vec<Hash> = proof2.iter().map(|p| p.2).collect();
                let pairs2: Vec<(u32, Hash)> = part.iter().map(|&i| (i, l[i as usize])).collect();
                prop_assert_eq!(root_of(n, &pairs2, &hashes2, &mut Vec::new()), Some(r));
            }
        }

        /// A changed leaf, a changed proof hash, a proof too short or too long: another root, or
        /// none.
        #[test]
        fn an_altered_proof_does_not_give_the_root(n in 2u32..100, pick in any::<u32>(), flip in any::<u32>()) {
            let l = leaves(n);
            let r = root(&l);
            let i = pick % n;
            let proof: Vec<Hash> = prove(&l[..], n, &[i]).unwrap().into_iter().map(|p| p.2).collect();
            let mut bad_leaf = l[i as usize];
            bad_leaf[(flip % 32) as usize] ^= 1;
            prop_assert_ne!(root_of(n, &[(i, bad_leaf)], &proof, &mut Vec::new()), Some(r));
            let mut bad = proof.clone();
            let at = (flip as usize) % bad.len();
            bad[at][(flip % 32) as usize] ^= 0x80;
            prop_assert_ne!(root_of(n, &[(i, l[i as usize])], &bad, &mut Vec::new()), Some(r));
            prop_assert_eq!(root_of(n, &[(i, l[i as usize])], &proof[1..], &mut Vec::new()), None);
            let mut long = proof.clone();
            long.push(GAP);
            prop_assert_eq!(root_of(n, &[(i, l[i as usize])], &long, &mut Vec::new()), None);
            // A leaf claimed at another index.
            let j = (i + 1) % n;
            prop_assert_ne!(root_of(n, &[(j, l[i as usize])], &proof, &mut Vec::new()), Some(r));
        }
    }

    #[test]
    fn out_of_range_and_unknown_parts_are_refused() {
        let l = leaves(4);
        assert_eq!(root_of(4, &[(4, l[0])], &[], &mut Vec::new()), None);
        assert_eq!(root_of(0, &[], &[], &mut Vec::new()), None);
        let none: Vec<Option<Hash>> = vec![Some(l[0]), None, None, None];
        assert!(prove(&Kept(&none, &[]), 4, &[0]).is_none(), "a part neither held nor kept");
        assert_eq!(prove(&l[..], 4, &[0, 1, 2, 3]).unwrap(), vec![], "all held: nothing to prove");
    }
}
