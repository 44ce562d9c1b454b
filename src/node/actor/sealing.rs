//! The author's side of authorship: our messages of a turn signed as batches before the turn
//! commits, and the seals that follow the messages pushed on each session (ours and, for
//! catch-up, other authors'), so that every receiver can prove every message it gets
//! ([`crate::authorship`]).
//!
//! Why seals per session rather than one per batch for everyone: a receiver proves the messages
//! it holds with the hashes of the parts it does not hold, and what each session carries
//! differs (private messages, a window that sends a batch in parts, catch-up of a few messages of
//! a large batch). In the usual case, a batch of room messages that all reach the peer, the
//! proof is empty and the seal's frame is the same for every peer: encoded once.

use std::collections::VecDeque;
use std::sync::Arc;

use bytes::Bytes;

use super::Actor;
use crate::authorship::{self, Batch};
use crate::codec;
use crate::id::{MsgId, PeerId};
use crate::merkle::{self, Hash};
use crate::protocol::{Frame, MAX_SEALED};

/// Our batches kept with their leaves: the recent ones, what the window, the frames waiting for
/// it and resends still send after the turn that signed them (a sender may run tens of thousands
/// of messages ahead of a slow receiver). About 33 bytes a message; a batch not kept has its
/// leaves read back from the store (a hash of each of its messages).
const OWN_KEPT: usize = 512;
/// Other authors' batches whose leaves were read back from the store, kept for the next seals.
const LEAVES_KEPT: usize = 16;

/// A batch with the leaves this peer holds (by index).
pub(super) struct Leaves {
    pub(super) batch: Batch,
    pub(super) leaves: Vec<Option<Hash>>,
    /// The seal frame for a peer that got every leaf we hold (no proof but the gaps'), once
    /// made.
    pub(super) whole: std::sync::OnceLock<Option<Bytes>>,
}

impl Leaves {
    fn new(batch: Batch, leaves: Vec<Option<Hash>>) -> Arc<Leaves> {
        Arc::new(Leaves { batch, leaves, whole: Default::default() })
    }

    /// The encoded seal proving the leaves `held` (sorted, distinct).
    fn seal_frame(&self, held: &[u32]) -> Option<Bytes> {
        let whole = held.len() == self.leaves.iter().filter(|l| l.is_some()).count();
        let make = || {
            let seal = self.batch.seal(held, |i| self.leaves.get(i as usize).copied().flatten())?;
            codec::encode(&Frame::Seal(seal)).ok()
        };
        if whole { self.whole.get_or_init(make).clone() } else { make() }
    }
}

/// The batches at hand for sealing: ours of the last turns, and other authors' read back.
#[derive(Default)]
pub(super) struct Sealing {
    own: VecDeque<Arc<Leaves>>,
    others: VecDeque<Arc<Leaves>>,
    /// Our batches signed in the current turn (dropped again if it fails).
    pub(super) signed_now: usize,
}

impl Sealing {
    fn find(list: &VecDeque<Arc<Leaves>>, id: &MsgId) -> Option<Arc<Leaves>> {
        list.iter().find(|l| l.batch.author == id.author && l.batch.index(id.seq).is_some()).cloned()
    }

    /// Our batch of message number `seq` (ours are kept in the order of their numbers).
    fn own(&self, seq: u64) -> Option<Arc<Leaves>> {
        let i = self.own.partition_point(|l| l.batch.first <= seq);
        let l = self.own.get(i.checked_sub(1)?)?;
        l.batch.index(seq).map(|_| l.clone())
    }

    /// The current turn failed: its batches were not stored.
    pub(super) fn turn_failed(&mut self) {
        for _ in 0..self.signed_now {
            self.own.pop_back();
        }
        self.signed_now = 0;
    }
}

impl Actor {
    /// Sign our messages of this turn (numbered `turn.own`), in batches of at most
    /// [`MAX_SEALED`] numbers, and keep each batch in the store with them (the same group).
    pub(super) fn sign_turn(&mut self) {
        let own = std::mem::take(&mut self.turn.own);
        let mut i = 0;
        while i < own.len() {
            let first = own[i].0;
            let mut leaves: Vec<Hash> = Vec::new();
            while i < own.len() && own[i].0 - first < MAX_SEALED as u64 {
                let (seq, raw) = &own[i];
                // Numbers given to no message (refused after numbering) are gaps.
                leaves.resize((seq - first) as usize, merkle::GAP);
                leaves.push(merkle::leaf(raw));
                i += 1;
            }
            let batch = authorship::sign_batch(&self.p.identity.keys, &self.p.config.room, first, &leaves);
            if self.turn.log_store(self.p.store.keep_batch(&batch)).is_none() {
                return;
            }
            let held = leaves.iter().map(|l| (*l != merkle::GAP).then_some(*l)).collect();
            self.sealing.own.push_back(Leaves::new(batch, held));
            self.sealing.signed_now += 1;
            if self.sealing.own.len() > OWN_KEPT {
                self.sealing.own.pop_front();
            }
        }
        // Kept for its capacity.
        self.turn.own = own;
        self.turn.own.clear();
    }

    /// The batch of message `id` with the leaves we hold: ours at hand, or read back.
    fn leaves_of(&mut self, id: &MsgId) -> Option<Arc<Leaves>> {
        if id.author == self.me
            && let Some(l) = self.sealing.own(id.seq)
        {
            return Some(l);
        }
        if let Some(l) = Sealing::find(&self.sealing.others, id) {
            return Some(l);
        }
        let (batch, leaves) = self.p.store.proof_parts(id)?;
        let l = Leaves::new(batch, leaves);
        self.sealing.others.push_back(l.clone());
        if self.sealing.others.len() > LEAVES_KEPT {
            self.sealing.others.pop_front();
        }
        Some(l)
    }

    /// Push the seals that prove the messages pushed on `peer`'s session since its last seals.
    pub(super) fn seal_session(&mut self, peer: PeerId) {
        let Some(s) = self.sessions.get_mut(&peer) else { return };
        let ids = std::mem::take(&mut s.unsealed);
        s.unsealed_bytes = 0;
        // Runs of one batch (usually the whole list is one): (batch, leaves pushed).
        let mut groups: Vec<(Arc<Leaves>, Vec<u32>)> = Vec::new();
        for id in &ids {
            if let Some((l, held)) = groups.last_mut()
                && l.batch.author == id.author
                && let Some(i) = l.batch.index(id.seq)
            {
                held.push(i);
                continue;
            }
            if let Some((l, held)) =
                groups.iter_mut().find(|(l, _)| l.batch.author == id.author && l.batch.index(id.seq).is_some())
            {
                held.push(l.batch.index(id.seq).expect("found"));
                continue;
            }
            match self.leaves_of(id) {
                Some(l) => {
                    let i = l.batch.index(id.seq).expect("its batch");
                    groups.push((l, vec![i]));
                }
                None => tracing::debug!(id = %id.short(), "no batch proves this message: its receiver will drop it"),
            }
        }
        for (l, mut held) in groups {
            held.sort_unstable();
            held.dedup();
            match l.seal_frame(&held) {
                Some(f) => drop(self.push(peer, f)),
                None => {
                    tracing::debug!(author = %l.batch.author.short(), first = l.batch.first, "cannot prove these messages")
                }
            }
        }
        // Kept for its capacity.
        if let Some(s) = self.sessions.get_mut(&peer) {
            let mut ids = ids;
            ids.clear();
            if s.unsealed.is_empty() {
                s.unsealed = ids;
            }
        }
    }
}
