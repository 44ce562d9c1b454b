//! The places for connections: how many a node holds at once, and who may take which.
//!
//! A member of the room can mint keys at will, and each fresh key can complete a handshake. With
//! one pool shared by everyone, one address (or an IPv6 /64, rotating its addresses) could open
//! sessions until the pool is empty, and then neither the members the node knows nor its own
//! dials would find a place. So `max_connections` is split into three pools:
//!
//! - **dials**: our own dials take a place from their reserve (`dial_reserve`), or from the open
//!   pool when it is used up. A full inbound pool never stops them.
//! - **known**: an incoming connection whose dialer names, in Noise message 1, an id the node knows
//!   (one it had a session with, or a remembered member) takes a place from its reserve
//!   (`known_reserve`), or from the open pool. The claim is only believed once the hello proves it
//!   (the handshake checks it against the static key); the place is taken then.
//! - **open**: the rest, for everyone else; from message 1 to the connection's end, such dialers
//!   are also bounded per address (`max_inbound_per_ip`) and per IPv6 /64
//!   (`max_inbound_per_prefix`; [`crate::guard::OpenPerAddr`]). Loopback is exempt unless
//!   `limit_loopback` (all the peers of one computer share 127.0.0.1).
//!
//! Before its hello is proved, an incoming connection holds only a place among `max_handshakes`.
//! When they are all taken, the oldest is cut: an honest dialer sends its message 1 with its
//! first segment and is through within a few round trips, so the oldest is the one that stalls
//! (sent nothing, or claimed a known id it cannot prove).
//!
//! The known ids come from the node actor, which calls [`Slots::know`] for every session that
//! comes up, and from the members the store remembers (at start). At most [`MAX_KNOWN`] are kept;
//! when the set is full no more are added, so that a flood of fresh keys, each known once its
//! session came up, never pushes out the members known before it.

use std::collections::BTreeMap;
use std::net::IpAddr;
use std::sync::{Arc, Mutex};

use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tokio_util::sync::CancellationToken;

use crate::config::Config;
use crate::guard::{AddrHold, AddrKey, OpenPerAddr};
use crate::id::{FastSet, PeerId};

/// Most ids in the known set.
pub const MAX_KNOWN: usize = 8192;

/// Which pool a [`Slot`] came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Pool {
    /// The reserve of our own dials.
    Dials,
    /// The reserve of dialers we know.
    Known,
    /// The pool open to everyone.
    Open,
}

/// A connection's place: a dial's from before it connects, an accepted one's from its proved
/// hello. Held until the connection ends.
#[derive(Debug)]
pub struct Slot {
    _permit: OwnedSemaphorePermit,
    /// Where it came from.
    pub pool: Pool,
}

/// An incoming handshake's place among `max_handshakes`; leaves the table when dropped.
#[derive(Debug)]
pub struct Handshaking {
    seq: u64,
    cut: CancellationToken,
    table: Arc<Mutex<Handshakes>>,
}

impl Handshaking {
    /// Fires when a newer handshake took this place (all were taken, and this is the oldest).
    pub fn cut(&self) -> &CancellationToken {
        &self.cut
    }
}

impl Drop for Handshaking {
    fn drop(&mut self) {
        self.table.lock().unwrap_or_else(|p| p.into_inner()).under_way.remove(&self.seq);
    }
}

/// The handshakes under way, oldest first.
#[derive(Debug, Default)]
struct Handshakes {
    next: u64,
    under_way: BTreeMap<u64, CancellationToken>,
}

/// What message 1 let in: a dialer we know (its place is taken once its hello proves it), or
/// another, counted against its address (no hold on exempt loopback).
#[derive(Debug)]
pub enum Admitted {
    /// It names an id we know.
    Known,
    /// Anyone else.
    Other(Option<AddrHold>),
}

/// Why an incoming connection was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refused {
    /// This address or /64 has its bound of connections open already.
    Addr(AddrKey),
    /// No place left in the pools it may use.
    Full,
}

/// The pools of one node (see the module doc).
#[derive(Debug)]
pub struct Slots {
    dials: Arc<Semaphore>,
    known_pool: Arc<Semaphore>,
    open: Arc<Semaphore>,
    handshakes: Arc<Mutex<Handshakes>>,
    max_handshakes: usize,
    per_addr: OpenPerAddr,
    limit_loopback: bool,
    known: Mutex<FastSet<PeerId>>,
}

impl Slots {
    /// The pools `config` asks for: `max_connections` split into the reserves (each cut to what
    /// is left) and the open pool.
    pub fn new(config: &Config) -> Slots {
        let total = config.max_connections;
        let dials = config.dial_reserve.min(total);
        let known = config.known_reserve.min(total - dials);
        Slots {
            dials: Arc::new(Semaphore::new(dials)),
            known_pool: Arc::new(Semaphore::new(known)),
            open: Arc::new(Semaphore::new(total - dials - known)),
            handshakes: Arc::default(),
            max_handshakes: config.max_handshakes.max(1),
            per_addr: OpenPerAddr::new(config.max_inbound_per_ip, config.max_inbound_per_prefix),
            limit_loopback: config.limit_loopback,
            known: Mutex::default(),
        }
    }

    fn take(pool: &Arc<Semaphore>, name: Pool) -> Option<Slot> {
        pool.clone().try_acquire_owned().ok().map(|p| Slot { _permit: p, pool: name })
    }

    /// A place for one of our dials, or None when both its reserve and the open pool are full.
    pub fn dial(&self) -> Option<Slot> {
        Self::take(&self.dials, Pool::Dials).or_else(|| Self::take(&self.open, Pool::Open))
    }

    /// A place for an incoming handshake; when all are taken, the oldest handshake is cut.
    pub fn handshake(&self) -> Handshaking {
        let mut t = self.handshakes.lock().unwrap_or_else(|p| p.into_inner());
        while t.under_way.len() >= self.max_handshakes {
            match t.under_way.pop_first() {
                Some((seq, cut)) => {
                    tracing::debug!(seq, "incoming handshakes all taken: the oldest is cut");
                    cut.cancel();
                }
                None => break,
            }
        }
        let seq = t.next;
        t.next += 1;
        let cut = CancellationToken::new();
        t.under_way.insert(seq, cut.clone());
        Handshaking { seq, cut, table: self.handshakes.clone() }
    }

    /// At message 1 of an incoming handshake from `ip` whose dialer names `claim`: may it go on?
    /// A dialer we know goes on while its reserve or the open pool has room; another also needs
    /// room under its address's bounds, held from now on.
    pub fn screen(&self, claim: Option<PeerId>, ip: IpAddr) -> Result<Admitted, Refused> {
        if claim.is_some_and(|id| self.knows(&id)) {
            let room = self.known_pool.available_permits() > 0 || self.open.available_permits() > 0;
            return if room { Ok(Admitted::Known) } else { Err(Refused::Full) };
        }
        let hold = if self.limit_loopback || !ip.is_loopback() {
            Some(self.per_addr.hold(ip).map_err(Refused::Addr)?)
        } else {
            None
        };
        if self.open.available_permits() == 0 {
            return Err(Refused::Full);
        }
        Ok(Admitted::Other(hold))
    }

    /// The place of an incoming session whose hello is proved, as `admitted` at message 1.
    pub fn session(&self, admitted: &Admitted) -> Option<Slot> {
        match admitted {
            Admitted::Known => Self::take(&self.known_pool, Pool::Known).or_else(|| Self::take(&self.open, Pool::Open)),
            Admitted::Other(_) => Self::take(&self.open, Pool::Open),
        }
    }

    /// `id` is known from now on (a session with it came up, or the store remembers it), unless
    /// the set is full.
    pub fn know(&self, id: PeerId) {
        let mut known = self.known.lock().unwrap_or_else(|p| p.into_inner());
        if known.len() < MAX_KNOWN {
            known.insert(id);
        }
    }

    /// Is `id` known?
    pub fn knows(&self, id: &PeerId) -> bool {
        self.known.lock().unwrap_or_else(|p| p.into_inner()).contains(id)
    }

    /// Connections open now from the address or /64 `key` that count against its bound.
    pub fn open_from(&self, key: AddrKey) -> usize {
        self.per_addr.open(key)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn slots(total: usize, dials: usize, known: usize, handshakes: usize) -> Slots {
        Slots::new(&Config {
            max_connections: total,
            dial_reserve: dials,
            known_reserve: known,
            max_handshakes: handshakes,
            max_inbound_per_ip: 2,
            max_inbound_per_prefix: 3,
            ..Config::default()
        })
    }

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn a_full_open_pool_leaves_the_dials_and_the_known_their_reserves() {
        let s = slots(6, 2, 2, 16);
        let friend = PeerId([1; 16]);
        s.know(friend);
        // Strangers from two addresses take the open pool (2 places), and no more.
        let mut held = Vec::new();
        for a in ["10.0.0.1", "10.0.0.2"] {
            let admitted = s.screen(Some(PeerId([9; 16])), ip(a)).unwrap();
            held.push((s.session(&admitted).expect("open has room"), admitted));
        }
        assert!(held.iter().all(|(slot, _)| slot.pool == Pool::Open));
        assert_eq!(s.screen(None, ip("10.0.0.3")).unwrap_err(), Refused::Full);
        // The known dialer and our dials still find places, in their reserves.
        let admitted = s.screen(Some(friend), ip("10.0.0.3")).expect("known: its reserve has room");
        assert_eq!(s.session(&admitted).unwrap().pool, Pool::Known);
        let d = [s.dial().unwrap(), s.dial().unwrap()];
        assert!(d.iter().all(|d| d.pool == Pool::Dials));
        assert!(s.dial().is_none(), "the reserve and the open pool are used up");
        drop(held);
        assert_eq!(s.dial().unwrap().pool, Pool::Open, "dials use the open pool when it has room");
    }

    #[test]
    fn strangers_are_bounded_per_address_and_per_64_from_message_1_loopback_exempt() {
        let s = slots(100, 0, 0, 16);
        let a = s.screen(None, ip("10.0.0.1")).unwrap();
        let _b = s.screen(Some(PeerId([3; 16])), ip("10.0.0.1")).unwrap();
        assert!(matches!(s.screen(None, ip("10.0.0.1")), Err(Refused::Addr(AddrKey::V4(_)))));
        drop(a);
        assert!(s.screen(None, ip("10.0.0.1")).is_ok(), "the bound counts open connections");
        let v6: Vec<_> = (1..=3).map(|i| s.screen(None, ip(&format!("fd00::{i}"))).unwrap()).collect();
        assert!(matches!(s.screen(None, ip("fd00::99")), Err(Refused::Addr(AddrKey::Net64(_)))));
        assert_eq!(s.open_from(AddrKey::of(ip("fd00::5")).1.unwrap()), 3);
        drop(v6);
        let lo: Vec<_> = (0..10).map(|_| s.screen(None, ip("127.0.0.1")).unwrap()).collect();
        assert!(lo.iter().all(|a| matches!(a, Admitted::Other(None))), "loopback is not counted");
    }

    #[test]
    fn the_oldest_handshake_is_cut_when_all_places_are_taken() {
        let s = slots(10, 0, 0, 2);
        let first = s.handshake();
        let second = s.handshake();
        assert!(!first.cut().is_cancelled());
        let third = s.handshake();
        assert!(first.cut().is_cancelled() && !second.cut().is_cancelled() && !third.cut().is_cancelled());
        drop(second);
        let _fourth = s.handshake();
        assert!(!third.cut().is_cancelled(), "a place came free: nobody is cut");
    }

    #[test]
    fn the_known_set_is_bounded_and_keeps_the_first() {
        let s = slots(10, 0, 0, 2);
        for i in 0..(MAX_KNOWN as u32 + 10) {
            let mut id = [0u8; 16];
            id[..4].copy_from_slice(&i.to_be_bytes());
            s.know(PeerId(id));
        }
        assert!(s.knows(&PeerId([0; 16])));
        assert_eq!(s.known.lock().unwrap().len(), MAX_KNOWN);
    }
}
