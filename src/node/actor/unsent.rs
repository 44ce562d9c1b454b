//! Our messages that are stored and numbered but wait for room in a peer's window, kept encoded
//! in memory so that the window's next opening sends them without reading them back.
//!
//! Why: a sender that runs ahead of its receiver (a long stream, a slow laptop) has everything
//! past the window in the store's outbox only, and each acknowledgement would read the next
//! messages back, find their envelopes and frame them again, once per message. The frames were
//! in hand when the turn committed; this keeps them.
//!
//! Only a cache: the store's outbox still has every message, and whatever is not here is read
//! from it. Per peer it holds one run of consecutive stream numbers, so that the actor sends
//! the numbers before the run from the store and the run from here, in order. All peers together
//! hold at most [`MAX_BYTES`]; a frame that does not fit is simply not kept (and the run is not
//! extended past the gap it leaves).

use std::collections::VecDeque;

use crate::id::FastMap as HashMap;

use bytes::Bytes;

use crate::id::PeerId;

/// Bytes of frames kept for all peers together, at most.
pub const MAX_BYTES: usize = 8 << 20;

/// The kept frames: per peer, a run of consecutive stream numbers.
#[derive(Debug, Default)]
pub struct Unsent {
    runs: HashMap<PeerId, VecDeque<(u64, u64, Bytes)>>,
    bytes: usize,
    max_bytes: usize,
}

impl Unsent {
    /// Empty, holding at most [`MAX_BYTES`].
    pub fn new() -> Self {
        Self::with_max_bytes(MAX_BYTES)
    }

    /// Empty, holding at most `max_bytes`.
    pub fn with_max_bytes(max_bytes: usize) -> Self {
        Unsent { runs: HashMap::default(), bytes: 0, max_bytes }
    }

    /// Could a frame of at least `len` bytes, number `lseq` of `peer`'s stream, be kept? (So
    /// that a frame is not encoded only to be refused.)
    pub fn fits(&self, peer: PeerId, lseq: u64, len: usize) -> bool {
        self.bytes + len <= self.max_bytes
            && self.runs.get(&peer).and_then(|r| r.back()).is_none_or(|(last, _, _)| last + 1 == lseq)
    }

    /// Keep `frame`, number `lseq` of `peer`'s stream and our message number `seq`, if it
    /// extends that peer's run (or starts one) and fits. Returns whether it was kept.
    pub fn keep(&mut self, peer: PeerId, lseq: u64, seq: u64, frame: Bytes) -> bool {
        if !self.fits(peer, lseq, frame.len()) {
            return false;
        }
        let run = self.runs.entry(peer).or_default();
        self.bytes += frame.len();
        run.push_back((lseq, seq, frame));
        true
    }

    /// The first number kept for `peer` after `sent`; those at or below `sent` (sent from the
    /// store meanwhile, or acknowledged) are dropped.
    pub fn first_after(&mut self, peer: PeerId, sent: u64) -> Option<u64> {
        let run = self.runs.get_mut(&peer)?;
        while let Some((lseq, _, f)) = run.front() {
            if *lseq > sent {
                return Some(*lseq);
            }
            self.bytes -= f.len();
            run.pop_front();
        }
        self.runs.remove(&peer);
        None
    }

    /// Take the frame numbered `lseq` for `peer`, if it is the first kept, with its message's
    /// number.
    pub fn take(&mut self, peer: PeerId, lseq: u64) -> Option<(u64, Bytes)> {
        let run = self.runs.get_mut(&peer)?;
        if run.front().is_none_or(|(first, _, _)| *first != lseq) {
            return None;
        }
        let (_, seq, f) = run.pop_front().expect("checked");
        self.bytes -= f.len();
        if run.is_empty() {
            self.runs.remove(&peer);
        }
        Some((seq, f))
    }

    /// Drop what is kept for `peer` (its session ended, or its queue was purged).
    pub fn forget(&mut self, peer: PeerId) {
        if let Some(run) = self.runs.remove(&peer) {
            self.bytes -= run.iter().map(|(_, _, f)| f.len()).sum::<usize>();
        }
    }

    /// Bytes kept for all peers.
    #[cfg(test)]
    pub fn bytes(&self) -> usize {
        self.bytes
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn peer(b: u8) -> PeerId {
        PeerId([b; 16])
    }

    fn frame(n: usize) -> Bytes {
        Bytes::from(vec![7u8; n])
    }

    #[test]
    fn keeps_one_run_of_consecutive_numbers_per_peer() {
        let mut u = Unsent::new();
        assert!(u.keep(peer(1), 5, 5, frame(10)));
        assert!(u.keep(peer(1), 6, 6, frame(10)));
        // A gap: 8 cannot follow 6 (7 is in the store only).
        assert!(!u.keep(peer(1), 8, 8, frame(10)));
        // Another peer has its own run.
        assert!(u.keep(peer(2), 1, 1, frame(10)));
        assert_eq!(u.bytes(), 30);
        assert_eq!(u.first_after(peer(1), 4), Some(5));
        assert_eq!(u.take(peer(1), 6), None, "only the first kept is taken");
        assert_eq!(u.take(peer(1), 5).map(|(seq, f)| (seq, f.len())), Some((5, 10)));
        assert_eq!(u.take(peer(1), 6).map(|(seq, f)| (seq, f.len())), Some((6, 10)));
        assert_eq!(u.first_after(peer(1), 6), None);
        // The run is empty: a new one may start anywhere.
        assert!(u.keep(peer(1), 9, 9, frame(10)));
        assert_eq!(u.bytes(), 20);
    }

    #[test]
    fn first_after_drops_what_was_sent_or_acknowledged() {
        let mut u = Unsent::new();
        for n in 1..=5 {
            assert!(u.keep(peer(1), n, n, frame(4)));
        }
        assert_eq!(u.first_after(peer(1), 3), Some(4));
        assert_eq!(u.bytes(), 8);
        assert_eq!(u.first_after(peer(1), 9), None);
        assert_eq!(u.bytes(), 0);
        assert_eq!(u.first_after(peer(3), 0), None);
    }

    #[test]
    fn holds_no_more_than_its_bound_in_all() {
        let mut u = Unsent::with_max_bytes(100);
        assert!(u.keep(peer(1), 1, 1, frame(60)));
        assert!(!u.keep(peer(2), 1, 1, frame(50)), "over the bound for all peers together");
        assert!(u.keep(peer(2), 1, 1, frame(40)));
        assert!(!u.keep(peer(1), 2, 2, frame(1)));
        assert_eq!(u.bytes(), 100);
        // Once a frame was not kept, the run does not go on past it.
        u.forget(peer(2));
        assert_eq!(u.bytes(), 60);
        assert!(!u.keep(peer(1), 3, 3, frame(1)));
        assert!(u.keep(peer(1), 2, 2, frame(1)));
    }
}
