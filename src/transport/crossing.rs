//! Crossing dials: two peers that dial each other at the same moment would each handshake a
//! session, and one of the two would be thrown away (the node keeps the one dialed by the lower
//! id, protocol 8.3). Each handshake costs both ends a few elliptic-curve operations, and a room
//! that starts together on busy machines sees many such crossings (the bench's room of 200 on
//! 2 cores: one handshake in ten was a duplicate). So the dialer names itself in its first
//! handshake message (its id in plain, as its beacons do), and each node keeps here the peers
//! it is handshaking with, both ways:
//!
//! - an acceptor that is itself dialing the claimed id, past the connect, and has the lower id
//!   refuses the incoming one at once ([`Crossing::incoming`]), before any key agreement: its own
//!   dial is the one both ends would keep;
//! - a node does not start a dial to a peer whose incoming handshake is under way: the node
//!   actor does not start the dial task ([`Crossing::inbound`]), and a dial task that connected
//!   meanwhile closes its connection before the handshake ([`Crossing::dialing`]); both wait for
//!   the peer's session instead.
//!
//! The claim is not trusted for anything else: the hello that follows must carry the same id,
//! proved by the static key (else the handshake is refused, as before). A false claim can only
//! delay a dial it names while the false handshake lasts (at most the handshake timeout), and
//! the named peer's own dial to us is never refused by it (see docs/security.md).
//!
//! The table holds only handshakes under way, so it is bounded by the places for them
//! (`max_handshakes` incoming, our dials' places; [`super::slots`]), whatever ids the dialers
//! claim.
//!
//! Marks are guards: they leave the table when dropped, which the node actor does when it takes
//! the session that came of them (so that no dial slips in between the handshake's end and the
//! actor's `Up`), or the task does when the handshake fails.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use crate::id::PeerId;

/// Handshakes under way with one peer.
#[derive(Debug, Default, Clone, Copy)]
struct Ways {
    /// Our dials that connected and are handshaking.
    out: u32,
    /// Incoming handshakes that named this peer.
    inbound: u32,
}

/// The handshakes under way, by peer (one per node, shared by its connection tasks).
#[derive(Debug)]
pub struct Crossing {
    me: PeerId,
    ways: Arc<Mutex<HashMap<PeerId, Ways>>>,
}

/// Which count a [`Mark`] holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Way {
    Out,
    In,
}

/// One handshake's place in the [`Crossing`] table; leaves it when dropped.
#[derive(Debug)]
pub struct Mark {
    peer: PeerId,
    way: Way,
    ways: Arc<Mutex<HashMap<PeerId, Ways>>>,
}

/// The incoming handshake is refused: we are dialing the peer it names, and ours is kept.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Crossed;

impl Crossing {
    /// The table of node `me`.
    pub fn new(me: PeerId) -> Self {
        Crossing { me, ways: Arc::default() }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<PeerId, Ways>> {
        self.ways.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn mark(&self, peer: PeerId, way: Way, ways: &mut HashMap<PeerId, Ways>) -> Mark {
        let w = ways.entry(peer).or_default();
        match way {
            Way::Out => w.out += 1,
            Way::In => w.inbound += 1,
        }
        Mark { peer, way, ways: self.ways.clone() }
    }

    /// Our dial to `peer` connected and would start its handshake: None if the peer's own
    /// handshake with us is under way (it got there first: ours would cross it).
    pub fn dialing(&self, peer: PeerId) -> Option<Mark> {
        let mut ways = self.lock();
        if ways.get(&peer).is_some_and(|w| w.inbound > 0) {
            return None;
        }
        Some(self.mark(peer, Way::Out, &mut ways))
    }

    /// An incoming handshake whose first message names `claim` (None: it named nobody, as
    /// `lanpeer doctor` or an older peer). Refused when we are dialing that peer and our id is
    /// the lower: both ends would keep our session, not this one.
    pub fn incoming(&self, claim: Option<PeerId>) -> Result<Option<Mark>, Crossed> {
        let Some(peer) = claim.filter(|p| *p != self.me) else { return Ok(None) };
        let mut ways = self.lock();
        if self.me < peer && ways.get(&peer).is_some_and(|w| w.out > 0) {
            return Err(Crossed);
        }
        Ok(Some(self.mark(peer, Way::In, &mut ways)))
    }

    /// Is a handshake from `peer` under way (so that dialing it now would cross)?
    pub fn inbound(&self, peer: &PeerId) -> bool {
        self.lock().get(peer).is_some_and(|w| w.inbound > 0)
    }
}

impl Drop for Mark {
    fn drop(&mut self) {
        let mut ways = self.ways.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(w) = ways.get_mut(&self.peer) {
            match self.way {
                Way::Out => w.out = w.out.saturating_sub(1),
                Way::In => w.inbound = w.inbound.saturating_sub(1),
            }
            if w.out == 0 && w.inbound == 0 {
                ways.remove(&self.peer);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn id(b: u8) -> PeerId {
        PeerId([b; 16])
    }

    #[test]
    fn the_lower_id_refuses_a_crossing_dial_the_higher_accepts_it() {
        let low = Crossing::new(id(1));
        let high = Crossing::new(id(9));
        let _a = low.dialing(id(9)).expect("nothing under way");
        let _b = high.dialing(id(1)).expect("nothing under way");
        assert_eq!(low.incoming(Some(id(9))).map(|m| m.is_some()), Err(Crossed), "low keeps its own dial");
        let m = high.incoming(Some(id(1))).expect("high takes low's dial");
        assert!(m.is_some() && high.inbound(&id(1)));
    }

    #[test]
    fn no_dial_under_way_no_claim_or_our_own_id_is_accepted_unmarked_or_marked() {
        let low = Crossing::new(id(1));
        assert!(low.incoming(Some(id(9))).unwrap().is_some(), "not dialing 9: accepted");
        assert!(low.incoming(None).unwrap().is_none(), "no claim: nothing to mark");
        assert!(low.incoming(Some(id(1))).unwrap().is_none(), "our own id: the hello check refuses it");
        assert!(!low.inbound(&id(1)));
    }

    #[test]
    fn marks_leave_the_table_when_dropped() {
        let c = Crossing::new(id(1));
        let a = c.dialing(id(9)).unwrap();
        let i = c.incoming(Some(id(5))).unwrap();
        let j = c.incoming(Some(id(5))).unwrap();
        assert!(c.inbound(&id(5)));
        drop(i);
        assert!(c.inbound(&id(5)), "one of two still under way");
        assert!(c.dialing(id(5)).is_none(), "5's handshake with us is under way: no dial of ours");
        drop(j);
        assert!(!c.inbound(&id(5)));
        assert!(c.dialing(id(5)).is_some());
        assert_eq!(c.incoming(Some(id(9))).map(|_| ()), Err(Crossed));
        drop(a);
        assert!(c.incoming(Some(id(9))).unwrap().is_some(), "our dial ended: accepted");
        drop(c);
    }
}
