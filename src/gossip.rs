//! Gossip: peers tell each other whom they know, so that peers in different broadcast domains
//! (two subnets joined by a router, a Wi-Fi that blocks client-to-client broadcast) find each
//! other through one common peer, and keep finding each other after it leaves.
//!
//! Rules (docs/protocol.md, section 12):
//! - A peer gossips only the peers it has a **live, authenticated session** with (so their ids
//!   were proved by their keys, and they passed the room and passphrase checks), and only inside
//!   a session of the room. Gossip never lists anyone: a gossiped peer is dialed, and listed only
//!   after its own handshake.
//! - A [`Frame::Peers`](crate::protocol::Frame::Peers) holds at most [`MAX_ADS`] entries of at
//!   most [`MAX_AD_ADDRS`] addresses. It is sent to a peer when its session starts; when the set
//!   of live peers changes, to [`NEWS_FANOUT`] sessions picked at random, at most once per
//!   [`ROUND_GAP`] (changes in between are coalesced): news spreads from peer to peer in a few
//!   rounds, at a cost that does not grow with the square of the room; and to every session
//!   every [`REFRESH`].
//! - A receiver keeps what it learns in a [`Book`] of at most [`MAX_KNOWN`] peers for
//!   [`REMEMBER_FOR`], dials the ones it does not know (lower id at once, higher id after the
//!   grace, as for beacons), and starts at most [`DIAL_BURST`] such dials at once and
//!   [`DIALS_PER_SEC`] per second after that.
//!
//! Everything here is pure data and deadlines; the node actor does the I/O.

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::time::{Duration, Instant};

use crate::discovery::iface::{LOOPBACK_BEACON, LoopbackBeacon};
use crate::id::PeerId;
use crate::protocol::PeerAd;

/// Entries per gossip frame, at most.
pub const MAX_ADS: usize = 64;
/// Addresses per entry, at most.
pub const MAX_AD_ADDRS: usize = 4;
/// Peers remembered from gossip and from our own sessions, at most.
pub const MAX_KNOWN: usize = 512;
/// Shortest time between two gossip rounds.
pub const ROUND_GAP: Duration = Duration::from_secs(1);
/// A gossip round is sent at least this often while sessions are live.
pub const REFRESH: Duration = Duration::from_secs(30);
/// Sessions a round of news (a change of the live peers) goes to, picked at random.
pub const NEWS_FANOUT: usize = 3;

/// What a gossip round sends, and to whom.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Round {
    /// The periodic refresh: to every session.
    Full,
    /// News of a change: to [`NEWS_FANOUT`] sessions at random.
    News,
}
/// A remembered peer not heard of (by gossip or a session) for this long is forgotten.
pub const REMEMBER_FOR: Duration = Duration::from_secs(600);
/// Dials started for gossiped or remembered peers: at most this many at once...
pub const DIAL_BURST: u32 = 16;
/// ...and this many per second after that.
pub const DIALS_PER_SEC: f64 = 4.0;
/// First wait before dialing a remembered peer that is not in the peer table again.
pub const RETRY_MIN: Duration = Duration::from_secs(2);
/// Longest wait between two such dials.
pub const RETRY_MAX: Duration = Duration::from_secs(60);

/// May `ip` travel in gossip, or be taken from it? `loopback_session`: the session it travels
/// on is between two peers of one computer (only then do loopback addresses mean anything).
/// IPv6 link-local addresses need a scope (an interface index) that only means something on the
/// computer that has it, so they never travel; neighbours on one link find each other by
/// multicast anyway.
pub fn usable(ip: IpAddr, loopback_session: bool) -> bool {
    if ip.is_unspecified() || ip.is_multicast() {
        return false;
    }
    match ip {
        IpAddr::V4(v4) => !v4.is_broadcast() && (loopback_session || !v4.is_loopback()),
        IpAddr::V6(v6) => {
            if let Some(v4) = v6.to_ipv4_mapped() {
                return usable(IpAddr::V4(v4), loopback_session);
            }
            !v6.is_unicast_link_local() && (loopback_session || !v6.is_loopback())
        }
    }
}

/// Normalise an address learned from a socket (an IPv4-mapped IPv6 address becomes IPv4).
pub fn canonical(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(ip, IpAddr::V4),
        v4 => v4,
    }
}

/// Are `a` and `b` in one subnet of `prefix` bits? Addresses of two families never are
/// (IPv4-mapped IPv6 addresses count as IPv4).
pub fn same_subnet(a: IpAddr, b: IpAddr, prefix: u8) -> bool {
    match (canonical(a), canonical(b)) {
        (IpAddr::V4(a), IpAddr::V4(b)) => {
            let m = if prefix == 0 { 0 } else { u32::MAX << (32 - u32::from(prefix.min(32))) };
            u32::from(a) & m == u32::from(b) & m
        }
        (IpAddr::V6(a), IpAddr::V6(b)) => {
            let m = if prefix == 0 { 0 } else { u128::MAX << (128 - u32::from(prefix.min(128))) };
            u128::from(a) & m == u128::from(b) & m
        }
        _ => false,
    }
}

/// Does a receiver at `receiver` hear the beacons of a peer at `peer` itself? True when one of
/// our own subnets (`local`: our address and prefix on each selected interface) holds both:
/// they share a broadcast domain, so news of that peer needs no gossip (docs/protocol.md 12.2). A
/// receiver beyond a router (on none of our subnets) is told about everyone.
pub fn hears_itself(receiver: IpAddr, peer: IpAddr, local: &[(IpAddr, u8)]) -> bool {
    Hearing::of(receiver, local).hears(peer)
}

/// [`hears_itself`] for one receiver and many peers: the receiver's side (which of our subnets
/// it is on) worked out once.
#[derive(Debug, Clone, Default)]
pub struct Hearing {
    nets: Vec<(IpAddr, u8)>,
}

impl Hearing {
    /// What `receiver` hears itself, given our subnets `local`.
    pub fn of(receiver: IpAddr, local: &[(IpAddr, u8)]) -> Self {
        Self::of_with(receiver, local, LOOPBACK_BEACON)
    }

    /// The same, where loopback beacons go as `loopback` says. Sent unicast (Windows, macOS:
    /// [`crate::discovery::iface`]), a loopback beacon reaches one peer of the computer, not
    /// every one: peers of one computer then hear each other only through gossip.
    fn of_with(receiver: IpAddr, local: &[(IpAddr, u8)], loopback: LoopbackBeacon) -> Self {
        let heard = |ip: IpAddr| loopback == LoopbackBeacon::SubnetBroadcast || !canonical(ip).is_loopback();
        Hearing {
            nets: local
                .iter()
                .copied()
                .filter(|&(ip, prefix)| heard(ip) && same_subnet(ip, receiver, prefix))
                .collect(),
        }
    }

    /// Does the receiver hear the beacons of a peer at `peer` itself?
    pub fn hears(&self, peer: IpAddr) -> bool {
        self.nets.iter().any(|&(ip, prefix)| same_subnet(ip, peer, prefix))
    }
}

/// The gossip entry for a peer we have a live session with, as sent to a receiver on a
/// loopback session or not. `None` when no address of it may travel.
pub fn ad(id: PeerId, incarnation: u64, tcp_port: u16, addrs: &[SocketAddr], loopback_session: bool) -> Option<PeerAd> {
    let mut ips: Vec<IpAddr> = Vec::new();
    for a in addrs {
        let ip = canonical(a.ip());
        if usable(ip, loopback_session) && !ips.contains(&ip) && ips.len() < MAX_AD_ADDRS {
            ips.push(ip);
        }
    }
    (!ips.is_empty() && tcp_port != 0).then_some(PeerAd { id, incarnation, tcp_port, addrs: ips })
}

/// What a received entry may be used for: the addresses to dial, or `None` to drop it
/// (our own id, port 0, no usable address). At most [`MAX_AD_ADDRS`] addresses are taken.
pub fn accept(ad: &PeerAd, me: PeerId, loopback_session: bool) -> Option<Vec<SocketAddr>> {
    if ad.id == me || ad.tcp_port == 0 {
        return None;
    }
    let mut out: Vec<SocketAddr> = Vec::new();
    for ip in ad.addrs.iter().take(MAX_AD_ADDRS) {
        let ip = canonical(*ip);
        let a = SocketAddr::new(ip, ad.tcp_port);
        if usable(ip, loopback_session) && !out.contains(&a) {
            out.push(a);
        }
    }
    (!out.is_empty()).then_some(out)
}

/// When to send the next gossip round.
#[derive(Debug, Default)]
pub struct Rounds {
    last: Option<Instant>,
    /// When the next full round is due ([`REFRESH`] after the first round, then after each
    /// full one): news rounds do not put it off.
    full_at: Option<Instant>,
    dirty: bool,
}

impl Rounds {
    /// The set of live peers changed: a round is due (no sooner than [`ROUND_GAP`] after the last).
    pub fn changed(&mut self) {
        self.dirty = true;
    }

    /// Is a round due now? If so, it counts as sent.
    pub fn due(&mut self, now: Instant) -> bool {
        self.next(now).is_some()
    }

    /// The round due now, if any (it counts as sent).
    pub fn next(&mut self, now: Instant) -> Option<Round> {
        let gap_ok = self.last.is_none_or(|t| now.saturating_duration_since(t) >= ROUND_GAP);
        let refresh = self.full_at.is_some_and(|t| now >= t);
        if gap_ok && (self.dirty || refresh) {
            self.dirty = false;
            self.last = Some(now);
            if refresh || self.full_at.is_none() {
                self.full_at = Some(now + REFRESH);
            }
            return Some(if refresh { Round::Full } else { Round::News });
        }
        None
    }
}

/// A peer remembered from gossip or from a session of ours.
#[derive(Debug, Clone)]
pub struct Known {
    /// Its incarnation, as last heard.
    pub incarnation: u64,
    /// Where to dial it, most recent first (at most [`MAX_AD_ADDRS`]).
    pub addrs: Vec<SocketAddr>,
    /// Last time it was confirmed (a session of ours) or gossiped.
    pub seen: Instant,
    next_try: Instant,
    backoff: Duration,
    /// A session of ours was up with it: known first hand, not from gossip only.
    pub confirmed: bool,
    /// Dials that failed while it was known from gossip only.
    failed: u8,
}

/// Failed dials after which a peer known from gossip only is forgotten, and its addresses
/// barred (see [`BAR_FOR`]).
pub const HEARSAY_TRIES: u8 = 2;
/// How long an address tried [`HEARSAY_TRIES`] times for peers known from gossip only is not
/// dialed for gossip again: so that a member who gossips a host that is not a peer makes each
/// other member try it that many times per this long, whatever ids it names it with.
pub const BAR_FOR: Duration = Duration::from_secs(600);

/// The peers remembered, bounded by [`MAX_KNOWN`]: the longest unheard-of goes first.
#[derive(Debug, Default)]
pub struct Book {
    known: HashMap<PeerId, Known>,
}

fn merge(into: &mut Vec<SocketAddr>, newer: &[SocketAddr]) {
    if into.starts_with(newer) {
        return; // nothing new (the common case: gossip repeats what we know)
    }
    let mut v: Vec<SocketAddr> = newer.to_vec();
    for a in into.iter() {
        if !v.contains(a) {
            v.push(*a);
        }
    }
    v.truncate(MAX_AD_ADDRS);
    *into = v;
}

impl Book {
    fn make_room(&mut self, id: PeerId) {
        if self.known.len() >= MAX_KNOWN
            && !self.known.contains_key(&id)
            && let Some(oldest) = self.known.iter().min_by_key(|(_, k)| k.seen).map(|(id, _)| *id)
        {
            self.known.remove(&oldest);
        }
    }

    /// Remember what gossip said (addresses from [`accept`]). Newer addresses go first.
    pub fn learn(&mut self, id: PeerId, incarnation: u64, addrs: &[SocketAddr], now: Instant) {
        self.make_room(id);
        let k = self.known.entry(id).or_insert_with(|| Known {
            incarnation,
            addrs: Vec::new(),
            seen: now,
            next_try: now + RETRY_MIN,
            backoff: RETRY_MIN,
            confirmed: false,
            failed: 0,
        });
        k.incarnation = incarnation;
        k.seen = now;
        merge(&mut k.addrs, addrs);
    }

    /// A session of ours with `id` is up at `addr` (the best address there is): remember it
    /// first, and start retrying from the shortest wait if it is ever lost.
    pub fn confirm(&mut self, id: PeerId, incarnation: u64, addr: SocketAddr, now: Instant) {
        self.learn(id, incarnation, &[addr], now);
        if let Some(k) = self.known.get_mut(&id) {
            k.backoff = RETRY_MIN;
            k.next_try = now + RETRY_MIN;
            k.confirmed = true;
            k.failed = 0;
        }
    }

    /// A dial of `id` failed. A peer known from gossip only is forgotten after
    /// [`HEARSAY_TRIES`] failures: its addresses are returned, to be barred.
    pub fn dial_failed(&mut self, id: &PeerId) -> Option<Vec<SocketAddr>> {
        let k = self.known.get_mut(id)?;
        if k.confirmed {
            return None;
        }
        k.failed += 1;
        if k.failed < HEARSAY_TRIES {
            return None;
        }
        self.known.remove(id).map(|k| k.addrs)
    }

    /// `id` is alive (a session of ours with it is live): remember it [`REMEMBER_FOR`] from now.
    pub fn touch(&mut self, id: &PeerId, now: Instant) {
        if let Some(k) = self.known.get_mut(id) {
            k.seen = now;
        }
    }

    /// The peer left on purpose: do not look for it any more.
    pub fn forget(&mut self, id: &PeerId) {
        self.known.remove(id);
    }

    /// One remembered peer.
    pub fn get(&self, id: &PeerId) -> Option<&Known> {
        self.known.get(id)
    }

    /// How many peers are remembered.
    pub fn len(&self) -> usize {
        self.known.len()
    }

    /// True when nobody is remembered.
    pub fn is_empty(&self) -> bool {
        self.known.is_empty()
    }

    /// Forget the peers not heard of for [`REMEMBER_FOR`]; return the remembered peers that
    /// `absent` says are not in the peer table and whose retry is due (each then waits twice
    /// as long, up to [`RETRY_MAX`], unless a session confirms it).
    pub fn due(&mut self, now: Instant, absent: impl Fn(&PeerId) -> bool) -> Vec<(PeerId, u64, Vec<SocketAddr>)> {
        self.known.retain(|_, k| now.saturating_duration_since(k.seen) < REMEMBER_FOR);
        let mut out = Vec::new();
        for (id, k) in self.known.iter_mut() {
            if k.next_try <= now && absent(id) {
                out.push((*id, k.incarnation, k.addrs.clone()));
                k.backoff = (k.backoff * 2).min(RETRY_MAX);
                k.next_try = now + k.backoff;
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::codec;
    use crate::protocol::Frame;

    fn id(b: u8) -> PeerId {
        PeerId([b; 16])
    }

    fn sa(s: &str) -> SocketAddr {
        s.parse().unwrap()
    }

    #[test]
    fn addresses_that_may_travel() {
        assert!(usable("10.0.0.1".parse().unwrap(), false));
        assert!(usable("fd00::1".parse().unwrap(), false));
        assert!(usable("2001:db8::1".parse().unwrap(), false));
        assert!(!usable("fe80::1".parse().unwrap(), false), "link-local needs a scope");
        assert!(!usable("fe80::1".parse().unwrap(), true));
        assert!(!usable("127.0.0.1".parse().unwrap(), false));
        assert!(usable("127.0.0.1".parse().unwrap(), true));
        assert!(!usable("::1".parse().unwrap(), false));
        assert!(!usable("0.0.0.0".parse().unwrap(), true));
        assert!(!usable("255.255.255.255".parse().unwrap(), false));
        assert!(!usable("224.0.0.1".parse().unwrap(), false));
        assert!(!usable("ff02::1".parse().unwrap(), false));
        assert!(!usable("::ffff:127.0.0.1".parse().unwrap(), false));
        assert!(usable("::ffff:10.0.0.1".parse().unwrap(), false));
        assert_eq!(canonical("::ffff:10.0.0.1".parse().unwrap()), "10.0.0.1".parse::<IpAddr>().unwrap());
    }

    #[test]
    fn subnets_and_who_hears_whom() {
        let ip = |s: &str| s.parse::<IpAddr>().unwrap();
        assert!(same_subnet(ip("10.77.1.11"), ip("10.77.1.200"), 24));
        assert!(!same_subnet(ip("10.77.1.11"), ip("10.77.2.11"), 24));
        assert!(same_subnet(ip("10.77.1.11"), ip("10.77.2.11"), 16));
        assert!(same_subnet(ip("10.0.0.1"), ip("192.168.0.1"), 0));
        assert!(same_subnet(ip("::ffff:10.77.1.1"), ip("10.77.1.2"), 24), "mapped is IPv4");
        assert!(!same_subnet(ip("10.77.1.1"), ip("fd00::1"), 0), "two families");
        assert!(same_subnet(ip("fd00::1"), ip("fd00::2"), 64));
        assert!(!same_subnet(ip("fd00::1"), ip("fd00:0:0:1::2"), 64));
        assert!(same_subnet(ip("127.0.0.1"), ip("127.0.0.1"), 8));
        // A seed on two subnets (10.77.1.0/24 and 10.77.2.0/24).
        let local = [(ip("10.77.1.11"), 24), (ip("10.77.2.1"), 24)];
        assert!(hears_itself(ip("10.77.1.12"), ip("10.77.1.13"), &local), "one subnet: beacons do");
        assert!(hears_itself(ip("10.77.2.5"), ip("10.77.2.6"), &local));
        assert!(!hears_itself(ip("10.77.1.12"), ip("10.77.2.6"), &local), "across the router");
        assert!(!hears_itself(ip("10.9.0.5"), ip("10.9.0.6"), &local), "a subnet that is not ours: unknown mask");
        assert!(!hears_itself(ip("127.0.0.1"), ip("127.0.0.1"), &[]));
    }

    /// Peers of one computer hear each other's beacons where loopback beacons are broadcast
    /// (Linux); where they go unicast (Windows, macOS) each reaches one peer, so gossip names
    /// the others.
    #[test]
    fn on_loopback_gossip_names_the_peers_of_this_computer_unless_they_broadcast() {
        let ip = |s: &str| s.parse::<IpAddr>().unwrap();
        let lo = [(ip("127.0.0.1"), 8)];
        let with = |how| Hearing::of_with(ip("127.0.0.1"), &lo, how).hears(ip("127.0.0.1"));
        assert!(with(LoopbackBeacon::SubnetBroadcast));
        assert!(!with(LoopbackBeacon::Unicast));
        assert!(!Hearing::of_with(ip("::ffff:127.0.0.1"), &lo, LoopbackBeacon::Unicast).hears(ip("127.0.0.1")));
        // The LAN is not concerned.
        let lan = [(ip("10.77.1.11"), 24), (ip("127.0.0.1"), 8)];
        assert!(Hearing::of_with(ip("10.77.1.12"), &lan, LoopbackBeacon::Unicast).hears(ip("10.77.1.13")));
        // This system's own choice (the tests run on Linux).
        assert_eq!(hears_itself(ip("127.0.0.1"), ip("127.0.0.1"), &lo), cfg!(target_os = "linux"));
    }

    #[test]
    fn ads_are_bounded_and_cleaned() {
        let addrs: Vec<SocketAddr> = [
            "[fe80::1%2]:9",
            "10.0.0.1:9",
            "10.0.0.1:9",
            "[::ffff:10.0.0.2]:9",
            "10.0.0.3:9",
            "10.0.0.4:9",
            "10.0.0.5:9",
        ]
        .iter()
        .map(|s| sa(s))
        .collect();
        let a = ad(id(1), 7, 4000, &addrs, false).unwrap();
        assert_eq!(a.tcp_port, 4000);
        assert_eq!(a.addrs.len(), MAX_AD_ADDRS);
        assert_eq!(a.addrs[0], "10.0.0.1".parse::<IpAddr>().unwrap());
        assert_eq!(a.addrs[1], "10.0.0.2".parse::<IpAddr>().unwrap(), "mapped addresses become IPv4");
        assert!(ad(id(1), 7, 4000, &[sa("127.0.0.1:9")], false).is_none(), "loopback only between loopback peers");
        assert!(ad(id(1), 7, 4000, &[sa("127.0.0.1:9")], true).is_some());
        assert!(ad(id(1), 7, 0, &[sa("10.0.0.1:9")], false).is_none());
    }

    #[test]
    fn received_entries_are_checked() {
        let me = id(5);
        let mut a = PeerAd {
            id: id(1),
            incarnation: 3,
            tcp_port: 4000,
            addrs: (1..=10).map(|i| IpAddr::from([10, 0, 0, i])).collect(),
        };
        let got = accept(&a, me, false).unwrap();
        assert_eq!(got.len(), MAX_AD_ADDRS);
        assert_eq!(got[0], sa("10.0.0.1:4000"));
        a.id = me;
        assert!(accept(&a, me, false).is_none(), "ourselves");
        a.id = id(1);
        a.tcp_port = 0;
        assert!(accept(&a, me, false).is_none(), "port 0");
        a.tcp_port = 1;
        a.addrs = vec!["127.0.0.1".parse().unwrap(), "fe80::2".parse().unwrap(), "0.0.0.0".parse().unwrap()];
        assert!(accept(&a, me, false).is_none(), "nothing usable");
        assert_eq!(accept(&a, me, true).unwrap(), vec![sa("127.0.0.1:1")]);
    }

    #[test]
    fn gossip_frame_codec_and_size() {
        let ads: Vec<PeerAd> = (0..MAX_ADS as u8)
            .map(|i| PeerAd {
                id: id(i),
                incarnation: u64::MAX - i as u64,
                tcp_port: 65535,
                addrs: vec![
                    IpAddr::from([10, 0, 0, i]),
                    "2001:db8::1".parse().unwrap(),
                    "fd00::2".parse().unwrap(),
                    "fd00::3".parse().unwrap(),
                ],
            })
            .collect();
        let f = Frame::Peers(ads);
        let bytes = codec::encode(&f).unwrap();
        assert_eq!(codec::decode::<Frame>(&bytes).unwrap(), f);
        // A full frame stays far below the handshake limit, let alone max_frame.
        assert!(bytes.len() < 8 * 1024, "{} bytes", bytes.len());
        // Exact bytes of one entry: variant 9, count 1, id, incarnation, port, 2 addresses.
        let one = Frame::Peers(vec![PeerAd {
            id: id(0xab),
            incarnation: 1,
            tcp_port: 5681,
            addrs: vec![IpAddr::from([10, 0, 0, 7]), "fd00::7".parse().unwrap()],
        }]);
        let b = codec::encode(&one).unwrap();
        let mut want = vec![9u8, 1, 16];
        want.extend([0xab; 16]);
        want.extend([1, 0xfb, 0x31, 0x16, 2, 0, 10, 0, 0, 7, 1]);
        want.extend([0xfd, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 7]);
        assert_eq!(b.as_ref(), want.as_slice());
    }

    #[test]
    fn rounds_are_rate_limited_and_refreshed() {
        let mut r = Rounds::default();
        let t = Instant::now();
        assert!(!r.due(t), "nothing changed yet");
        r.changed();
        assert!(r.due(t));
        r.changed();
        assert!(!r.due(t + ROUND_GAP / 2), "one round per gap");
        assert!(r.due(t + ROUND_GAP), "coalesced change goes out after the gap");
        assert!(!r.due(t + ROUND_GAP * 2));
        assert_eq!(r.next(t + ROUND_GAP + REFRESH), Some(Round::Full), "refresh");
        r.changed();
        assert_eq!(r.next(t + ROUND_GAP * 2 + REFRESH), Some(Round::News));
        // News every second does not put off the refresh.
        let mut fulls = 0;
        for s in 3..(3 + 2 * REFRESH.as_secs()) {
            r.changed();
            if r.next(t + REFRESH + ROUND_GAP * s as u32) == Some(Round::Full) {
                fulls += 1;
            }
        }
        assert_eq!(fulls, 2, "a full round every REFRESH while news keeps coming");
    }

    #[test]
    fn book_remembers_bounded_and_retries_with_backoff() {
        let mut b = Book::default();
        let t = Instant::now();
        b.learn(id(1), 1, &[sa("10.0.0.1:1")], t);
        b.learn(id(1), 1, &[sa("10.0.0.2:1")], t);
        assert_eq!(b.get(&id(1)).unwrap().addrs, vec![sa("10.0.0.2:1"), sa("10.0.0.1:1")], "newest first");
        b.confirm(id(1), 2, sa("10.0.0.1:1"), t);
        assert_eq!(b.get(&id(1)).unwrap().addrs[0], sa("10.0.0.1:1"));
        assert_eq!(b.get(&id(1)).unwrap().incarnation, 2);
        assert!(b.due(t, |_| true).is_empty(), "not before the first wait");
        assert_eq!(b.due(t + RETRY_MIN, |_| false).len(), 0, "present in the table: not due");
        assert_eq!(b.due(t + RETRY_MIN, |_| true).len(), 1);
        assert!(b.due(t + RETRY_MIN * 2, |_| true).is_empty(), "backed off");
        assert_eq!(b.due(t + RETRY_MIN * 3, |_| true).len(), 1);
        b.forget(&id(1));
        assert!(b.is_empty());
        for i in 0..(MAX_KNOWN + 10) {
            let mut raw = [0u8; 16];
            raw[..8].copy_from_slice(&(i as u64).to_be_bytes());
            b.learn(PeerId(raw), 1, &[sa("10.0.0.1:1")], t + Duration::from_millis(i as u64));
        }
        assert_eq!(b.len(), MAX_KNOWN);
        assert!(b.get(&PeerId([0; 16])).is_none(), "the oldest went first");
        assert!(b.due(t + REMEMBER_FOR + Duration::from_secs(1), |_| true).is_empty());
        assert!(b.is_empty(), "forgotten after REMEMBER_FOR");
        let many: Vec<SocketAddr> = (1..=9).map(|i| SocketAddr::from(([10, 0, 0, i], 1))).collect();
        b.learn(id(2), 1, &many, t);
        assert_eq!(b.get(&id(2)).unwrap().addrs.len(), MAX_AD_ADDRS);
        // Known addresses again, in the same order: nothing changes.
        b.learn(id(2), 1, &many[..2], t);
        assert_eq!(b.get(&id(2)).unwrap().addrs, many[..MAX_AD_ADDRS].to_vec());
    }

    #[test]
    fn a_touched_peer_is_remembered_from_then() {
        let mut b = Book::default();
        let t = Instant::now();
        b.confirm(id(1), 1, sa("10.0.0.1:1"), t);
        b.confirm(id(2), 1, sa("10.0.0.2:1"), t);
        b.touch(&id(1), t + REMEMBER_FOR / 2);
        b.touch(&id(3), t + REMEMBER_FOR / 2); // unknown: stays unknown
        b.due(t + REMEMBER_FOR + Duration::from_secs(1), |_| false);
        assert!(b.get(&id(1)).is_some(), "touched: remembered");
        assert!(b.get(&id(2)).is_none(), "not heard of for REMEMBER_FOR: forgotten");
        assert_eq!(b.len(), 1);
    }
}
