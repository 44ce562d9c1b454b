//! Authorship: every message proves its author, whoever hands it over.
//!
//! An author signs each batch of its messages once ([`sign_batch`]): the batch is a run of its
//! own sequence numbers `first..first + count`, the leaves of a hash tree over the messages'
//! envelopes ([`crate::merkle`]), and the signature covers the tree's root together with the
//! protocol version, the room and the author's id ([`signed_bytes`]). Every field of every
//! envelope (id, addressee, time, author name, body, files) is so signed; a message of another
//! room does not verify.
//!
//! On the wire a [`Seal`] follows the messages it proves, on every session that carries them: the
//! author's own streams, catch-up from a third peer. Each session's reader runs a [`Verifier`]:
//! it holds the messages that arrive until a seal proves them, and hands the node only proved
//! ones, each with its [`Batch`]: what a store keeps so that it can prove those messages to
//! others in turn ([`Batch::seal`]), after their author has left.
//!
//! Why here and not in the node actor: checking a signature costs tens of microseconds; the
//! readers of the sessions run beside each other (and beside the actor) on the runtime's
//! threads.

use std::sync::Arc;

use bytes::Bytes;

use crate::codec::Received;
use crate::crypto::{self, PublicKey, StaticKeys};
use crate::id::{MsgId, PeerId};
use crate::merkle::{self, Hash};
use crate::protocol::{Envelope, MAX_SEALED, PROTOCOL_VERSION, Seal};

/// What the signed bytes start with: no signature lanpeer makes for another purpose starts so.
pub const SEAL_CONTEXT: &[u8] = b"lanpeer seal\0";

/// Messages held by a [`Verifier`] waiting for their seal, at most (an honest peer seals every
/// [`SEAL_EVERY`] messages at most).
pub const HELD_MAX: usize = 4 * SEAL_EVERY;
/// Bytes of messages held by a [`Verifier`], at most (an honest peer seals every
/// [`SEAL_EVERY_BYTES`], and a message is at most a frame).
pub const HELD_MAX_BYTES: usize = 8 << 20;
/// A sender seals what it sent on a session at the end of each turn, and within one after this
/// many messages...
pub const SEAL_EVERY: usize = 1024;
/// ...or this many bytes of them.
pub const SEAL_EVERY_BYTES: usize = 1 << 20;
/// A message held this long without a seal that proves it is dropped (an honest sender's seal
/// follows in the same write).
pub const UNSEALED_FOR: std::time::Duration = std::time::Duration::from_secs(10);

/// The bytes the author signs for a batch:
/// `SEAL_CONTEXT || version u8 || room length u16 LE || room || author id (16) || first u64 LE ||
/// count u32 LE || root (32)`.
pub fn signed_bytes(room: &str, author: PeerId, first: u64, count: u32, root: &Hash) -> Vec<u8> {
    let room = &room.as_bytes()[..room.len().min(u16::MAX as usize)];
    let mut b = Vec::with_capacity(SEAL_CONTEXT.len() + 1 + 2 + room.len() + 16 + 8 + 4 + 32);
    b.extend_from_slice(SEAL_CONTEXT);
    b.push(PROTOCOL_VERSION);
    b.extend_from_slice(&(room.len() as u16).to_le_bytes());
    b.extend_from_slice(room);
    b.extend_from_slice(&author.0);
    b.extend_from_slice(&first.to_le_bytes());
    b.extend_from_slice(&count.to_le_bytes());
    b.extend_from_slice(root);
    b
}

/// A signed batch as a store keeps it: the signature, and the hashes of the parts of the tree
/// whose messages the store does not hold (with the leaves of those it holds, any of them can be
/// proved to another peer).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Batch {
    /// The author's id (the hash of `key`).
    pub author: PeerId,
    /// The author's identity key.
    pub key: PublicKey,
    /// The author's number of the first message.
    pub first: u64,
    /// How many numbers.
    pub count: u32,
    /// The author's signature over [`signed_bytes`].
    pub sig: crypto::Signature,
    /// Hashes of parts of the tree, as (first leaf, leaves, hash).
    pub nodes: Vec<(u32, u32, Hash)>,
}

impl Batch {
    /// The leaf of message number `seq`, if it is in this batch.
    pub fn index(&self, seq: u64) -> Option<u32> {
        seq.checked_sub(self.first).filter(|i| *i < self.count as u64).map(|i| i as u32)
    }

    /// The same batch, the same signature: another proof of it (from another seal) adds what it
    /// knows. Returns whether anything was added.
    pub fn merge(&mut self, other: &Batch) -> bool {
        if (other.first, other.count, other.sig) != (self.first, self.count, self.sig) {
            return false;
        }
        let before = self.nodes.len();
        for n in &other.nodes {
            if !self.nodes.iter().any(|m| (m.0, m.1) == (n.0, n.1)) {
                self.nodes.push(*n);
            }
        }
        self.nodes.len() != before
    }

    /// The seal that proves the leaves `held` (sorted, distinct) to a peer that receives them with
    /// it, the other parts' hashes taken from `leaf` (the leaves this store holds) and the kept
    /// nodes. `None` when a part is known neither way.
    pub fn seal(&self, held: &[u32], leaf: impl Fn(u32) -> Option<Hash>) -> Option<Seal> {
        let known = Parts { batch: self, leaf };
        let proof = merkle::prove(&known, self.count, held)?;
        let mut bytes = Vec::with_capacity(proof.len() * 32);
        for (_, _, h) in proof {
            bytes.extend_from_slice(&h);
        }
        Some(Seal { key: self.key, first: self.first, count: self.count, sig: self.sig, proof: bytes })
    }
}

/// A batch's parts as a store knows them.
struct Parts<'a, F> {
    batch: &'a Batch,
    leaf: F,
}

impl<F: Fn(u32) -> Option<Hash>> merkle::Known for Parts<'_, F> {
    fn leaf(&self, i: u32) -> Option<Hash> {
        (self.leaf)(i).or_else(|| self.node(i, 1))
    }
    fn node(&self, start: u32, len: u32) -> Option<Hash> {
        self.batch.nodes.iter().find(|n| (n.0, n.1) == (start, len)).map(|n| n.2)
    }
}

/// Sign a batch of our own messages: `leaves[i]` is the leaf of number `first + i`
/// ([`merkle::leaf`] of its envelope, [`merkle::GAP`] for a number given to no message).
pub fn sign_batch(keys: &StaticKeys, room: &str, first: u64, leaves: &[Hash]) -> Batch {
    debug_assert!(!leaves.is_empty() && leaves.len() <= MAX_SEALED as usize);
    let count = leaves.len() as u32;
    let author = keys.peer_id();
    let root = merkle::root(leaves);
    let sig = keys.sign(&signed_bytes(room, author, first, count, &root));
    // Gaps are held by nobody: their hashes are parts every proof may need.
    let nodes = (0..count).filter(|&i| leaves[i as usize] == merkle::GAP).map(|i| (i, 1, merkle::GAP)).collect();
    Batch { author, key: keys.identity, first, count, sig, nodes }
}

/// A message and the batch that proves it: what the node stores.
#[derive(Debug, Clone)]
pub struct Proved {
    /// The message.
    pub env: Envelope,
    /// Its bytes as received.
    pub raw: Bytes,
    /// The batch that proves it.
    pub batch: Arc<Batch>,
}

/// Why a session's reader stops: its peer sent more than a seal may cover.
#[derive(Debug, thiserror::Error)]
#[error("more than {HELD_MAX} messages or {HELD_MAX_BYTES} bytes without a seal")]
pub struct TooMuchUnsealed;

/// A message that waits for its seal.
#[derive(Debug)]
struct Held {
    /// The frame as decoded (a message or a catch-up message).
    frame: Received,
    id: MsgId,
    leaf: Hash,
    len: usize,
    at: std::time::Instant,
}

/// A seal that arrived, with the messages it is about (taken from those held then).
#[derive(Debug)]
struct Pending {
    seal: Seal,
    author: PeerId,
    held: Vec<Held>,
}

/// What a report's seals did: messages proved, and messages refused (their seal did not hold).
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Checked {
    /// Messages handed on.
    pub proved: usize,
    /// Messages dropped.
    pub refused: usize,
}

/// The authorship check of one session's reader: messages held until a seal proves them.
#[derive(Debug)]
pub struct Verifier {
    room: Arc<str>,
    held: Vec<Held>,
    bytes: usize,
    seals: Vec<Pending>,
}

impl Verifier {
    /// A verifier for the messages of `room`.
    pub fn new(room: Arc<str>) -> Verifier {
        Verifier { room, held: Vec::new(), bytes: 0, seals: Vec::new() }
    }

    /// Messages held, waiting for a seal.
    pub fn held(&self) -> usize {
        self.held.len()
    }

    /// Hold a message or catch-up frame until a seal proves it. An error when the peer has sent
    /// more without a seal than any honest peer does (the session should end).
    pub fn hold(&mut self, frame: Received) -> Result<(), TooMuchUnsealed> {
        let (id, raw) = match &frame {
            Received::Message { env, raw, .. } | Received::CatchUp { env, raw, .. } => (env.id, raw),
            Received::Other(_) => return Ok(()),
        };
        let len = raw.len();
        if self.held.len() >= HELD_MAX || self.bytes + len > HELD_MAX_BYTES {
            return Err(TooMuchUnsealed);
        }
        self.bytes += len;
        let leaf = merkle::leaf(raw);
        self.held.push(Held { frame, id, leaf, len, at: std::time::Instant::now() });
        Ok(())
    }

    /// A seal: the messages held now that are of its batch are its to prove (checked at
    /// [`Verifier::finish`]).
    pub fn seal(&mut self, seal: Seal) {
        let author = crypto::peer_id_of(&seal.key);
        let (first, count) = (seal.first, seal.count as u64);
        let mine = |h: &mut Held| h.id.author == author && h.id.seq >= first && h.id.seq - first < count;
        // Usually every message held is this seal's: nothing is left to move.
        let ours: Vec<Held> = self.held.extract_if(.., mine).collect();
        self.bytes -= ours.iter().map(|h| h.len).sum::<usize>();
        self.seals.push(Pending { seal, author, held: ours });
    }

    /// Check the seals that arrived since the last call: each tree, then each signature. Proved
    /// messages go to `out`, by number, each with its batch.
    pub fn finish(&mut self, out: &mut Vec<Received>) -> Checked {
        let mut checked = Checked::default();
        // Messages no seal proved in time (another author's name on them, say).
        if self.held.first().is_some_and(|h| h.at.elapsed() >= UNSEALED_FOR) {
            let before = self.held.len();
            self.held.retain(|h| h.at.elapsed() < UNSEALED_FOR);
            checked.refused += before - self.held.len();
            self.bytes = self.held.iter().map(|h| h.len).sum();
        }
        if self.seals.is_empty() {
            return checked;
        }
        let seals = std::mem::take(&mut self.seals);
        // Each seal's tree first: its root and the nodes a store keeps.
        let mut trees: Vec<Result<Tree, usize>> = Vec::with_capacity(seals.len());
        let mut signed: Vec<Vec<u8>> = Vec::with_capacity(seals.len());
        let mut meta = Vec::with_capacity(seals.len());
        for p in seals {
            let Pending { seal, author, held } = p;
            let tree = tree_of(&seal, held);
            match &tree {
                Ok((root, _, _)) => signed.push(signed_bytes(&self.room, author, seal.first, seal.count, root)),
                Err(_) => signed.push(Vec::new()),
            }
            trees.push(tree);
            meta.push((seal, author));
        }
        for (((seal, author), tree), bytes) in meta.into_iter().zip(trees).zip(&signed) {
            let (_, nodes, held) = match tree {
                Ok(t) => t,
                Err(n) => {
                    tracing::debug!(author = %author.short(), first = seal.first, count = seal.count, n, "a malformed seal: its messages dropped");
                    checked.refused += n;
                    continue;
                }
            };
            if !crypto::verify(&seal.key, bytes, &seal.sig) {
                tracing::debug!(author = %author.short(), first = seal.first, n = held.len(), "a seal that does not hold: its messages dropped");
                checked.refused += held.len();
                continue;
            }
            let batch =
                Arc::new(Batch { author, key: seal.key, first: seal.first, count: seal.count, sig: seal.sig, nodes });
            checked.proved += held.len();
            for h in held {
                out.push(with_proof(h.frame, &batch));
            }
        }
        checked
    }
}

/// A seal's tree over the messages held for it: its root, the proof's nodes, the messages (each
/// once).
type Tree = (Hash, Vec<(u32, u32, Hash)>, Vec<Held>);

/// The tree of a seal over the messages held for it; `Err(n)`, the `n` messages dropped, when the
/// seal is malformed or its proof does not fit those messages.
fn tree_of(seal: &Seal, mut held: Vec<Held>) -> Result<Tree, usize> {
    let n = held.len();
    if seal.count == 0
        || seal.count > MAX_SEALED
        || seal.first == 0
        || !seal.proof.len().is_multiple_of(32)
        || seal.first.checked_add(seal.count as u64).is_none()
    {
        return Err(n);
    }
    // Held in the order they came: by number already, as a stream sends them (then nothing is
    // moved; a message is a large value to move).
    if !held.is_sorted_by_key(|h| h.id.seq) {
        held.sort_by_key(|h| h.id.seq);
    }
    // A message sent twice before its seal (a resend): proved once, handed on once.
    if held.windows(2).any(|w| w[0].id.seq == w[1].id.seq) {
        held.dedup_by_key(|h| h.id.seq);
    }
    let pairs: Vec<(u32, Hash)> = held.iter().map(|h| ((h.id.seq - seal.first) as u32, h.leaf)).collect();
    let proof: Vec<Hash> = seal.proof.chunks_exact(32).map(|c| c.try_into().expect("32 bytes")).collect();
    let mut nodes = Vec::new();
    match merkle::root_of(seal.count, &pairs, &proof, &mut nodes) {
        Some(root) => Ok((root, nodes, held)),
        None => Err(n),
    }
}

fn with_proof(frame: Received, batch: &Arc<Batch>) -> Received {
    match frame {
        Received::Message { lseq, env, raw, .. } => Received::Message { lseq, env, raw, proof: Some(batch.clone()) },
        Received::CatchUp { env, raw, .. } => Received::CatchUp { env, raw, proof: Some(batch.clone()) },
        other => other,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::codec;
    use crate::protocol::Body;

    const ROOM: &str = "5B";

    fn env(author: PeerId, seq: u64, text: &str) -> Envelope {
        Envelope {
            id: MsgId { author, seq },
            author_name: "Ada".into(),
            sent_ms: 1,
            to: None,
            body: Body::Chat { text: text.into() },
            files: vec![],
        }
    }

    fn frame(e: &Envelope) -> Received {
        Received::CatchUp { env: e.clone(), raw: codec::encode(e).unwrap(), proof: None }
    }

    /// An author's batch of `n` messages from number 1: the envelopes and the batch.
    fn batch(keys: &StaticKeys, n: u64) -> (Vec<Envelope>, Batch) {
        let envs: Vec<Envelope> = (1..=n).map(|s| env(keys.peer_id(), s, &format!("m{s}"))).collect();
        let leaves: Vec<Hash> = envs.iter().map(|e| merkle::leaf(&codec::encode(e).unwrap())).collect();
        let b = sign_batch(keys, ROOM, 1, &leaves);
        (envs, b)
    }

    fn leaves_of(envs: &[Envelope]) -> impl Fn(u32) -> Option<Hash> + '_ {
        |i| envs.get(i as usize).map(|e| merkle::leaf(&codec::encode(e).unwrap()))
    }

    fn proved(out: &[Received]) -> Vec<u64> {
        out.iter()
            .map(|r| match r {
                Received::CatchUp { env, proof: Some(_), .. } => env.id.seq,
                other => panic!("{other:?}"),
            })
            .collect()
    }

    #[test]
    fn a_sealed_batch_proves_its_messages_and_only_them() {
        let k = StaticKeys::generate();
        let (envs, b) = batch(&k, 10);
        let mut v = Verifier::new(ROOM.into());
        for i in [2usize, 5, 7] {
            v.hold(frame(&envs[i])).unwrap();
        }
        // A message of another author held beside them stays held.
        let other = StaticKeys::generate();
        v.hold(frame(&env(other.peer_id(), 3, "x"))).unwrap();
        v.seal(b.seal(&[2, 5, 7], leaves_of(&envs)).unwrap());
        let mut out = Vec::new();
        assert_eq!(v.finish(&mut out), Checked { proved: 3, refused: 0 });
        assert_eq!(proved(&out), [3, 6, 8]);
        assert_eq!(v.held(), 1);
        // What a receiver keeps proves a part of it to a third peer.
        let Received::CatchUp { proof: Some(kept), .. } = &out[0] else { unreachable!() };
        let mut third = Verifier::new(ROOM.into());
        third.hold(frame(&envs[5])).unwrap();
        let have = |i: u32| [2u32, 5, 7].contains(&i).then(|| merkle::leaf(&codec::encode(&envs[i as usize]).unwrap()));
        third.seal(kept.seal(&[5], have).unwrap());
        let mut out = Vec::new();
        assert_eq!(third.finish(&mut out).proved, 1);
    }

    #[test]
    fn forged_altered_and_foreign_messages_are_refused() {
        let k = StaticKeys::generate();
        let (envs, b) = batch(&k, 4);
        let check = |room: &str, held: Vec<Envelope>, seal: Seal| {
            let mut v = Verifier::new(room.into());
            for e in &held {
                v.hold(frame(e)).unwrap();
            }
            v.seal(seal);
            let mut out = Vec::new();
            let c = v.finish(&mut out);
            (c.proved, out.len())
        };
        let good = b.seal(&[1], leaves_of(&envs)).unwrap();
        assert_eq!(check(ROOM, vec![envs[1].clone()], good.clone()), (1, 1));
        // A field changed (the name, the text, the addressee, the time).
        for change in 0..4 {
            let mut e = envs[1].clone();
            match change {
                0 => e.author_name = "Teacher".into(),
                1 => e.body = Body::Chat { text: "changed".into() },
                2 => e.to = Some(PeerId([1; 16])),
                _ => e.sent_ms += 1,
            }
            assert_eq!(check(ROOM, vec![e], good.clone()), (0, 0), "change {change}");
        }
        // Another room.
        assert_eq!(check("5C", vec![envs[1].clone()], good.clone()), (0, 0));
        // A forger's own key on another author's messages: the id is not its key's.
        let forger = StaticKeys::generate();
        let forged = sign_batch(&forger, ROOM, 1, &(0..4).map(|i| leaves_of(&envs)(i).unwrap()).collect::<Vec<_>>());
        assert_eq!(check(ROOM, vec![envs[1].clone()], forged.seal(&[1], leaves_of(&envs)).unwrap()), (0, 0));
        // The author's key with another's signature bytes.
        let mut bad = good.clone();
        bad.sig[0] ^= 1;
        assert_eq!(check(ROOM, vec![envs[1].clone()], bad), (0, 0));
        // A seal that claims more than it may.
        let mut huge = good.clone();
        huge.count = MAX_SEALED + 1;
        assert_eq!(check(ROOM, vec![envs[1].clone()], huge), (0, 0));
        let mut odd = good;
        odd.proof.push(0);
        assert_eq!(check(ROOM, vec![envs[1].clone()], odd), (0, 0));
    }

    #[test]
    fn many_seals_at_once_and_a_bad_one_among_them_found() {
        let mut v = Verifier::new(ROOM.into());
        let mut want = Vec::new();
        for k in 0..6 {
            let keys = StaticKeys::generate();
            let (envs, b) = batch(&keys, 3);
            let mut seal = b.seal(&[0, 1, 2], leaves_of(&envs)).unwrap();
            if k == 4 {
                seal.sig[5] ^= 1;
            } else {
                want.push(3);
            }
            for e in &envs {
                v.hold(frame(e)).unwrap();
            }
            v.seal(seal);
        }
        let mut out = Vec::new();
        assert_eq!(v.finish(&mut out), Checked { proved: 15, refused: 3 });
        assert_eq!(out.len(), 15);
    }

    #[test]
    fn a_peer_that_never_seals_is_bounded() {
        let k = StaticKeys::generate();
        let mut v = Verifier::new(ROOM.into());
        let mut n = 0;
        let err = loop {
            n += 1;
            if let Err(e) = v.hold(frame(&env(k.peer_id(), n, "no seal"))) {
                break e;
            }
        };
        assert_eq!(n as usize, HELD_MAX + 1, "{err}");
    }

    #[test]
    fn gaps_in_a_batch_are_proved_by_their_known_hash() {
        let k = StaticKeys::generate();
        let envs: Vec<Envelope> = [1u64, 2, 4].iter().map(|&s| env(k.peer_id(), s, "g")).collect();
        let mut leaves: Vec<Hash> = envs.iter().map(|e| merkle::leaf(&codec::encode(e).unwrap())).collect();
        leaves.insert(2, merkle::GAP);
        let b = sign_batch(&k, ROOM, 1, &leaves);
        assert_eq!(b.nodes, vec![(2, 1, merkle::GAP)]);
        let mut v = Verifier::new(ROOM.into());
        v.hold(frame(&envs[2])).unwrap();
        v.seal(b.seal(&[3], |i| (i != 2).then(|| leaves[i as usize])).unwrap());
        let mut out = Vec::new();
        assert_eq!(v.finish(&mut out).proved, 1);
        let mut merged = b.clone();
        let mut other = b.clone();
        other.nodes = vec![(0, 2, merkle::node(&leaves[0], &leaves[1]))];
        assert!(merged.merge(&other) && merged.nodes.len() == 2);
        assert!(!merged.merge(&other), "nothing new");
    }
}
