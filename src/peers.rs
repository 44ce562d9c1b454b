//! The peer table: pure data and deadlines, no I/O, so that every rule of the state machine is
//! unit-tested without a socket.
//!
//! The node actor owns the one table and feeds it what the tasks observe (beacons, sessions up
//! and down, dial results, the clock); the table answers with what the user must be told.
//! A peer is *listed* (and reported joined) once its session is up, so that everyone on the list
//! can be messaged; see docs/protocol.md, "The peer state machine".

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use crate::discovery::beacon::Beacon;
use crate::error::Error;
use crate::event::{LeaveReason, PeerInfo, PeerState};
use crate::id::{FastMap, PeerId};
use crate::protocol::Hello;

/// First wait before dialing a peer again; doubled per failure up to [`MAX_BACKOFF`].
pub const MIN_BACKOFF: Duration = Duration::from_millis(200);
/// Longest wait between two dials of one peer.
pub const MAX_BACKOFF: Duration = Duration::from_secs(5);
/// Addresses remembered per peer (the one to dial first, and others it was heard on).
pub const MAX_ADDRS: usize = 4;

/// A table is settled this many dial graces after it was made ([`PeerTable::settled`]).
pub const SETTLED_GRACES: u32 = 2;

/// Dials started at once when the table is new (the window then adapts, see [`DialWindow`]).
pub const DIAL_WINDOW_START: usize = 4;
/// A dial that ends (session up, or failed) within this widens the window by one.
pub const DIAL_FAST: Duration = Duration::from_millis(250);
/// A dial that takes longer than this halves the window (at most once per round of dials).
pub const DIAL_SLOW: Duration = Duration::from_secs(1);

/// How many dials the table starts at once: an adaptive window, as TCP's congestion window.
///
/// A handshake costs a few elliptic-curve operations on both ends. When a whole room starts at
/// once on machines too slow for it (many peers on one computer, a room of small laptops), every
/// handshake in flight shares the CPU: with too many at once, each takes longer than the
/// handshake timeout, fails and is tried again, and the room never forms. More dials in flight
/// than the CPU can serve add nothing but latency; so the window widens by one for every dial
/// that ends within [`DIAL_FAST`] (up to `max`: `Config::max_dials`), and halves when one that
/// started after the last cut takes longer than [`DIAL_SLOW`] (down to 1). On an idle LAN every
/// handshake takes milliseconds and the window stays wide open.
///
/// Dials that do not fit wait in the table, not in a task: when a session with the peer comes up
/// meanwhile (the other side dialed, after its grace), the dial is never started, instead of
/// handshaking a second session that one of the two ends would throw away.
#[derive(Debug, Clone)]
pub struct DialWindow {
    size: usize,
    max: usize,
    /// When the window was last cut: dials started before then say nothing new.
    cut_at: Option<Instant>,
}

impl DialWindow {
    fn new(max: usize) -> Self {
        let max = max.max(1);
        DialWindow { size: DIAL_WINDOW_START.min(max), max, cut_at: None }
    }

    /// A dial started at `started` ended at `now`.
    fn ended(&mut self, started: Instant, now: Instant) {
        let took = now.saturating_duration_since(started);
        if took <= DIAL_FAST {
            self.size = (self.size + 1).min(self.max);
        } else if took > DIAL_SLOW && self.cut_at.is_none_or(|t| started >= t) {
            self.size = (self.size / 2).max(1);
            self.cut_at = Some(now);
        }
    }

    /// Dials allowed in flight now.
    pub fn size(&self) -> usize {
        self.size
    }
}

/// One known peer.
#[derive(Debug, Clone)]
pub struct Entry {
    /// Its id.
    pub id: PeerId,
    /// Its incarnation (from beacon or hello).
    pub incarnation: u64,
    /// Its name (empty until its hello).
    pub name: String,
    /// Where to dial it: its IP and TCP port (the address it was last heard on).
    pub addr: SocketAddr,
    /// Other addresses it was heard on (beacons on other interfaces, gossip), newest first;
    /// a dial tries them after `addr`. At most [`MAX_ADDRS`] − 1.
    pub alts: Vec<SocketAddr>,
    /// Last beacon or session traffic.
    pub last_seen: Instant,
    /// Its state.
    pub state: PeerState,
    /// Whether the user was told it joined (and so must be told when it leaves).
    pub joined: bool,
    /// When to dial it next, if it needs a dial.
    pub next_dial: Option<Instant>,
    /// A dial is under way (started then).
    pub dialing: Option<Instant>,
    /// A beacon came since the last dial started (so a failed dial is not the end of it).
    pub beacon_since_dial: bool,
    /// Current wait between dials.
    pub backoff: Duration,
    /// Facts from its hello.
    pub props: Vec<(String, String)>,
}

impl Entry {
    /// Every address to try, best first.
    pub fn addrs(&self) -> Vec<SocketAddr> {
        std::iter::once(self.addr).chain(self.alts.iter().copied()).collect()
    }

    /// `a` becomes the address to dial first (the previous one is kept as an alternative).
    fn prefer(&mut self, a: SocketAddr) {
        if a == self.addr {
            return;
        }
        let old = std::mem::replace(&mut self.addr, a);
        self.alts.retain(|x| *x != a && *x != old);
        self.alts.insert(0, old);
        self.alts.truncate(MAX_ADDRS - 1);
    }

    /// Remember `a` as an alternative (after the ones known), unless known already.
    fn also(&mut self, a: SocketAddr) {
        if a != self.addr && !self.alts.contains(&a) && self.alts.len() < MAX_ADDRS - 1 {
            self.alts.push(a);
        }
    }

    fn info(&self, now: Instant) -> PeerInfo {
        PeerInfo {
            id: self.id,
            name: self.name.clone(),
            addr: self.addr,
            state: self.state,
            last_seen_ms: now.saturating_duration_since(self.last_seen).as_millis() as u64,
            props: self.props.clone(),
            verified: None,
            label: self.name.clone(),
        }
    }
}

/// What a beacon changed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BeaconOutcome {
    /// A peer not known before (not listed until its session is up).
    New,
    /// Nothing the user needs to hear about.
    Known,
    /// A listed peer said goodbye: report it left.
    Left(PeerInfo),
    /// A listed peer came back with a new incarnation: report it left; its old session is stale.
    Restarted(PeerInfo),
}

/// What a session coming up changed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum UpOutcome {
    /// Report this peer joined.
    Joined(PeerInfo),
    /// The peer restarted under the same id: report the old one left, then the new one joined.
    Restarted {
        /// The old incarnation, to report left.
        old: PeerInfo,
        /// The new one, to report joined.
        new: PeerInfo,
    },
    /// It was listed already (a reconnect): nothing to report.
    Resumed,
}

/// Entries in the table, at most, before a beacon or gossip of an id never met is ignored
/// (sessions, which prove their peer's key, always get one): forged beacons of random ids, in an
/// open room, cannot grow it without bound.
pub const MAX_PEERS: usize = 4096;

/// A new incarnation number: the time of this start in milliseconds since the Unix epoch, in the
/// high bits, and 20 random bits. Later starts of a peer have larger numbers (while its clock
/// does not go back), so a beacon of an earlier start, recorded and replayed, is known to be
/// stale and ignored; the random bits tell apart two starts in one millisecond.
pub fn new_incarnation() -> u64 {
    let ms = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_millis() as u64);
    (ms << 20) | (rand::random::<u64>() & 0xF_FFFF)
}

/// The table.
#[derive(Debug)]
pub struct PeerTable {
    me: PeerId,
    grace: Duration,
    expiry: Duration,
    peers: FastMap<PeerId, Entry>,
    window: DialWindow,
    /// From then on a peer heard for the first time is a newcomer to a room we know (see
    /// [`Self::settled`]).
    settled_at: Instant,
}

impl PeerTable {
    /// An empty table for peer `me`, starting at most 16 dials at once.
    pub fn new(me: PeerId, grace: Duration, expiry: Duration) -> Self {
        PeerTable::new_at(me, grace, expiry, Instant::now())
    }

    /// [`Self::new`], the table made at `now`.
    pub fn new_at(me: PeerId, grace: Duration, expiry: Duration, now: Instant) -> Self {
        let settled_at = now + grace * SETTLED_GRACES;
        PeerTable { me, grace, expiry, peers: FastMap::default(), window: DialWindow::new(16), settled_at }
    }

    /// Have we been up long enough to have heard the peers around (two graces: three beacon
    /// intervals by default)? Then a peer heard for the first time, and never met before in
    /// this incarnation, has just started: the node dials it at once, whatever the ids
    /// ([`Self::dial_now`]), rather than answer its beacon with ours and let the lower id dial.
    /// A room of 200 answering a newcomer's beacon by broadcast is 200 beacons that each of the
    /// 200 receives, 40,000 datagrams for one newcomer; 200 dials are 200 connections, each to
    /// the newcomer only. (A peer met before, heard again after a partition, is not a
    /// newcomer: both sides would dial at once, and every pair would cross.)
    pub fn settled(&self, now: Instant) -> bool {
        now >= self.settled_at
    }

    /// Dial `id` now, whatever the ids (a newcomer to a settled node): unless it is connected
    /// or a dial to it is under way.
    pub fn dial_now(&mut self, id: &PeerId, now: Instant) {
        if let Some(e) = self.peers.get_mut(id)
            && e.state != PeerState::Connected
            && e.dialing.is_none()
        {
            e.next_dial = Some(now);
        }
    }

    /// Start at most `max` dials at once (`Config::max_dials`; fewer while dials are slow).
    pub fn with_max_dials(mut self, max: usize) -> Self {
        self.window = DialWindow::new(max);
        self
    }

    /// The dial window.
    pub fn window(&self) -> &DialWindow {
        &self.window
    }

    /// The first dial waits `grace` for the peer with the higher id, so that the lower id usually
    /// dials first and the two seldom dial each other at once (unless the node dials a newcomer
    /// at once: [`Self::settled`]).
    fn first_dial_at(&self, id: PeerId, now: Instant) -> Instant {
        if self.me < id { now } else { now + self.grace }
    }

    fn fresh(&self, b: &Beacon, addr: SocketAddr, now: Instant) -> Entry {
        Entry {
            id: b.id,
            incarnation: b.incarnation,
            name: String::new(),
            addr,
            alts: Vec::new(),
            last_seen: now,
            state: PeerState::Discovered,
            joined: false,
            next_dial: Some(self.first_dial_at(b.id, now)),
            dialing: None,
            beacon_since_dial: true,
            backoff: MIN_BACKOFF,
            props: Vec::new(),
        }
    }

    /// A beacon from `src` (own beacons and other rooms were filtered out before). The source
    /// address is kept whole (an IPv6 link-local address needs its scope id); its port is
    /// replaced by the beacon's TCP port.
    pub fn beacon(&mut self, b: &Beacon, src: SocketAddr, now: Instant) -> BeaconOutcome {
        let mut addr = src;
        addr.set_ip(crate::gossip::canonical(src.ip()));
        addr.set_port(b.tcp_port);
        if b.farewell {
            return match self.peers.get(&b.id) {
                // With a live session, its end (after the peer's `Bye`) says it left: that keeps
                // its last messages, still on their way over TCP, ahead of the leave, and a forged
                // farewell cannot drop a peer we are talking to.
                Some(e) if e.state == PeerState::Connected => BeaconOutcome::Known,
                Some(e) if e.incarnation == b.incarnation => {
                    let e = self.peers.remove(&b.id).expect("present");
                    if e.joined { BeaconOutcome::Left(e.info(now)) } else { BeaconOutcome::Known }
                }
                _ => BeaconOutcome::Known,
            };
        }
        let fresh = self.fresh(b, addr, now);
        let full = self.peers.len() >= MAX_PEERS;
        match self.peers.get_mut(&b.id) {
            None if full => BeaconOutcome::Known,
            None => {
                self.peers.insert(b.id, fresh);
                BeaconOutcome::New
            }
            // A beacon never ends a live session: only a new authenticated session shows that
            // the peer restarted (it dials us, or we it once its old session ends). And a beacon
            // of an earlier start (replayed) is stale.
            Some(e) if e.state == PeerState::Connected && e.incarnation != b.incarnation => BeaconOutcome::Known,
            Some(e) if b.incarnation < e.incarnation => BeaconOutcome::Known,
            Some(e) if e.incarnation != b.incarnation => {
                let old = std::mem::replace(e, fresh);
                if old.joined { BeaconOutcome::Restarted(old.info(now)) } else { BeaconOutcome::New }
            }
            Some(e) => {
                e.last_seen = now;
                e.beacon_since_dial = true;
                if e.state != PeerState::Connected {
                    // Not connected: dial where it announces from now (it may have moved).
                    e.prefer(addr);
                } else {
                    e.also(addr);
                }
                BeaconOutcome::Known
            }
        }
    }

    /// A session with the peer of `hello`, whose socket's remote address is `remote`, is up and
    /// kept. Its address (with the hello's port) becomes the one to dial first.
    pub fn session_up(&mut self, hello: &Hello, remote: SocketAddr, now: Instant) -> UpOutcome {
        let mut addr = remote;
        addr.set_ip(crate::gossip::canonical(remote.ip()));
        addr.set_port(hello.tcp_port);
        let mut restarted = None;
        if let Some(e) = self.peers.get(&hello.id)
            && e.incarnation != hello.incarnation
        {
            let old = self.peers.remove(&hello.id).expect("present");
            if old.joined {
                restarted = Some(old.info(now));
            }
        }
        let e = self.peers.entry(hello.id).or_insert_with(|| Entry {
            id: hello.id,
            incarnation: hello.incarnation,
            name: String::new(),
            addr,
            alts: Vec::new(),
            last_seen: now,
            state: PeerState::Discovered,
            joined: false,
            next_dial: None,
            dialing: None,
            beacon_since_dial: false,
            backoff: MIN_BACKOFF,
            props: Vec::new(),
        });
        e.name = hello.name.clone();
        e.props = hello.props.clone();
        e.prefer(addr);
        e.last_seen = now;
        e.state = PeerState::Connected;
        e.next_dial = None;
        e.backoff = MIN_BACKOFF;
        let was_joined = std::mem::replace(&mut e.joined, true);
        let info = e.info(now);
        match (restarted, was_joined) {
            (Some(old), _) => UpOutcome::Restarted { old, new: info },
            (None, true) => UpOutcome::Resumed,
            (None, false) => UpOutcome::Joined(info),
        }
    }

    /// The live session of `id` closed. `farewell`: the peer said goodbye on it.
    /// Returns the peer to report left, if it leaves now.
    pub fn session_closed(&mut self, id: PeerId, farewell: bool, now: Instant) -> Option<(PeerInfo, LeaveReason)> {
        let e = self.peers.get_mut(&id)?;
        if farewell {
            let e = self.peers.remove(&id).expect("present");
            return e.joined.then(|| (e.info(now), LeaveReason::Left));
        }
        // Dial again at once (after a short backoff): if it is gone, the dial fails and
        // `dial_failed` reports it; if the network blinked, the session comes back.
        e.state = PeerState::Reconnecting;
        e.beacon_since_dial = false;
        e.next_dial = Some(now + e.backoff);
        None
    }

    /// A peer told of by gossip (or remembered from it), at `addrs` (newest first). Returns
    /// true when it was not known: it is then Discovered, and dialed as after a first beacon
    /// (at once if our id is lower, else after the grace). A known peer only gains addresses:
    /// gossip never changes the state, incarnation or listing of a peer.
    pub fn gossiped(&mut self, id: PeerId, incarnation: u64, addrs: &[SocketAddr], now: Instant) -> bool {
        let Some((&first, rest)) = addrs.split_first() else { return false };
        if id == self.me {
            return false;
        }
        if let Some(e) = self.peers.get_mut(&id) {
            if e.state != PeerState::Connected {
                // Someone reaches it there now: better than an address that failed.
                for a in addrs.iter().rev() {
                    e.prefer(*a);
                }
            }
            return false;
        }
        if self.peers.len() >= MAX_PEERS {
            return false;
        }
        let mut e = Entry {
            id,
            incarnation,
            name: String::new(),
            addr: first,
            alts: Vec::new(),
            last_seen: now,
            state: PeerState::Discovered,
            joined: false,
            next_dial: Some(self.first_dial_at(id, now)),
            dialing: None,
            beacon_since_dial: true,
            backoff: MIN_BACKOFF,
            props: Vec::new(),
        };
        for a in rest {
            e.also(*a);
        }
        self.peers.insert(id, e);
        true
    }

    /// Is `id` in the table (listed or not)?
    pub fn contains(&self, id: &PeerId) -> bool {
        self.peers.contains_key(id)
    }

    /// The peers with a live session: id, incarnation, TCP port and addresses (for gossip).
    pub fn connected(&self) -> impl Iterator<Item = &Entry> {
        self.peers.values().filter(|e| e.state == PeerState::Connected)
    }

    /// [`Self::due_dials_except`] with no peer busy (the tests' shorthand).
    #[cfg(test)]
    pub fn due_dials(&mut self, now: Instant) -> Vec<(PeerId, Vec<SocketAddr>)> {
        self.due_dials_except(now, |_| false)
    }

    /// Pick the peers whose dial is due, as many as the dial window has room for (those due
    /// first, first), and mark them dialing. Each comes with the addresses to try, in order.
    /// The others stay due: a session that comes up meanwhile (the peer dialed us) spares them.
    /// A due peer for which `busy` says true (its handshake with us is under way: dialing it
    /// would cross) is not dialed now but looked at again after [`MIN_BACKOFF`]; its session
    /// will most likely come up before.
    pub fn due_dials_except(&mut self, now: Instant, busy: impl Fn(&Entry) -> bool) -> Vec<(PeerId, Vec<SocketAddr>)> {
        let in_flight = self.peers.values().filter(|e| e.dialing.is_some()).count();
        let room = self.window.size.saturating_sub(in_flight);
        if room == 0 {
            return Vec::new();
        }
        let mut due: Vec<(Instant, PeerId)> = Vec::new();
        for e in self.peers.values_mut().filter(|e| e.dialing.is_none() && e.state != PeerState::Connected) {
            let Some(t) = e.next_dial.filter(|t| *t <= now) else { continue };
            if busy(e) {
                e.next_dial = Some(now + MIN_BACKOFF);
                continue;
            }
            due.push((t, e.id));
        }
        if due.len() > room {
            due.select_nth_unstable(room - 1);
            due.truncate(room);
        }
        due.sort_unstable();
        let mut out = Vec::with_capacity(due.len());
        for (_, id) in due {
            let e = self.peers.get_mut(&id).expect("present");
            e.dialing = Some(now);
            e.beacon_since_dial = false;
            e.next_dial = None;
            out.push((e.id, e.addrs()));
        }
        out
    }

    /// A dial under way ended at `now`: it leaves the window, and its duration adapts it.
    fn dial_ended(&mut self, id: PeerId, now: Instant) -> Option<&mut Entry> {
        let e = self.peers.get_mut(&id)?;
        if let Some(started) = e.dialing.take() {
            self.window.ended(started, now);
        }
        Some(e)
    }

    /// A dial ended without a session. Returns the peer to report left, when a listed peer
    /// cannot be reached and has not announced itself since the dial started.
    pub fn dial_failed(&mut self, id: PeerId, now: Instant) -> Option<(PeerInfo, LeaveReason)> {
        let e = self.dial_ended(id, now)?;
        if e.state == PeerState::Connected {
            return None;
        }
        if e.joined && !e.beacon_since_dial {
            let e = self.peers.remove(&id).expect("present");
            return Some((e.info(now), LeaveReason::Disconnected));
        }
        let jitter = rand::random_range(0..=e.backoff.as_millis() as u64 / 4);
        e.next_dial = Some(now + e.backoff + Duration::from_millis(jitter));
        e.backoff = (e.backoff * 2).min(MAX_BACKOFF);
        None
    }

    /// Our dial crossed the peer's own and ended without a handshake: wait for the peer's
    /// session. `refused`: the peer refused ours, its dial to us being connected and
    /// handshaking; dial again only if its session has not come up after the grace (its dial
    /// may fail). Else the peer's handshake with us had begun when ours would have started: look
    /// again after [`MIN_BACKOFF`], as [`Self::due_dials_except`] does. The backoff does not
    /// grow: nothing failed.
    pub fn dial_crossed(&mut self, id: PeerId, refused: bool, now: Instant) {
        let wait = if refused { self.grace } else { MIN_BACKOFF };
        if let Some(e) = self.dial_ended(id, now)
            && e.state != PeerState::Connected
        {
            e.next_dial = Some(now + wait);
        }
    }

    /// A dial ended (successfully or not): it no longer blocks the next one.
    pub fn dial_done(&mut self, id: PeerId) {
        self.dial_done_at(id, Instant::now());
    }

    /// [`Self::dial_done`] at `now`.
    pub fn dial_done_at(&mut self, id: PeerId, now: Instant) {
        self.dial_ended(id, now);
    }

    /// Session traffic from `id`: it is alive.
    pub fn heard(&mut self, id: PeerId, now: Instant) {
        if let Some(e) = self.peers.get_mut(&id) {
            e.last_seen = now;
        }
    }

    /// Remove the peers silent for longer than the expiry timeout; returns those that were listed.
    pub fn expire(&mut self, now: Instant) -> Vec<PeerInfo> {
        let expiry = self.expiry;
        let gone: Vec<PeerId> =
            self.peers.values().filter(|e| now.saturating_duration_since(e.last_seen) > expiry).map(|e| e.id).collect();
        gone.into_iter().filter_map(|id| self.peers.remove(&id)).filter(|e| e.joined).map(|e| e.info(now)).collect()
    }

    /// Remove a peer (e.g. a session closed by policy), returning it if it was listed.
    pub fn remove(&mut self, id: PeerId, now: Instant) -> Option<PeerInfo> {
        self.peers.remove(&id).filter(|e| e.joined).map(|e| e.info(now))
    }

    /// One peer.
    pub fn get(&self, id: &PeerId) -> Option<&Entry> {
        self.peers.get(id)
    }

    /// The listed peers, by name.
    pub fn listed(&self, now: Instant) -> Vec<PeerInfo> {
        let mut v: Vec<PeerInfo> = self.peers.values().filter(|e| e.joined).map(|e| e.info(now)).collect();
        v.sort_by(|a, b| a.name.to_lowercase().cmp(&b.name.to_lowercase()).then(a.id.cmp(&b.id)));
        v
    }

    /// Find a listed peer by name (case-insensitive) or by a prefix of its id.
    pub fn resolve(&self, query: &str, now: Instant) -> Result<PeerId, Error> {
        let q = query.trim();
        let listed = self.listed(now);
        let by_name: Vec<&PeerInfo> = listed.iter().filter(|p| p.name.eq_ignore_ascii_case(q)).collect();
        let found: Vec<&PeerInfo> =
            if by_name.is_empty() { listed.iter().filter(|p| p.id.matches_prefix(q)).collect() } else { by_name };
        match found.as_slice() {
            [one] => Ok(one.id),
            [] => Err(Error::UnknownPeer(q.to_string())),
            many => Err(Error::AmbiguousPeer(
                q.to_string(),
                many.iter().map(|p| format!("{} {}", p.name, p.id.short())).collect::<Vec<_>>().join(", "),
            )),
        }
    }

    /// Number of known peers (listed or not).
    pub fn len(&self) -> usize {
        self.peers.len()
    }

    /// True when no peer is known.
    pub fn is_empty(&self) -> bool {
        self.peers.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::discovery::beacon::room_tag;
    use std::net::{IpAddr, Ipv4Addr};

    const GRACE: Duration = Duration::from_millis(1500);
    const EXPIRY: Duration = Duration::from_secs(5);
    const IP: SocketAddr = SocketAddr::new(IpAddr::V4(Ipv4Addr::new(10, 0, 0, 2)), 33333);
    const ADDR: SocketAddr = SocketAddr::new(IpAddr::V4(Ipv4Addr::new(10, 0, 0, 2)), 4000);

    fn beacon(id: u8, inc: u64, farewell: bool) -> Beacon {
        Beacon { id: PeerId([id; 16]), incarnation: inc, tcp_port: 4000, room_tag: room_tag("r"), farewell }
    }

    fn hello(id: u8, inc: u64, name: &str) -> Hello {
        Hello {
            id: PeerId([id; 16]),
            identity: [id; 32],
            incarnation: inc,
            name: name.into(),
            room: "r".into(),
            tcp_port: 4000,
            props: vec![],
        }
    }

    fn table() -> PeerTable {
        PeerTable::new(PeerId([5; 16]), GRACE, EXPIRY)
    }

    #[test]
    fn lower_id_dials_at_once_higher_after_grace() {
        let mut t = table();
        let now = Instant::now();
        assert_eq!(t.beacon(&beacon(9, 1, false), IP, now), BeaconOutcome::New);
        assert_eq!(t.beacon(&beacon(1, 1, false), IP, now), BeaconOutcome::New);
        // We (5) are lower than 9: dial 9 now. 1 is lower than us: wait for it to dial.
        let due = t.due_dials(now);
        assert_eq!(due, vec![(PeerId([9; 16]), vec![ADDR])]);
        assert!(t.due_dials(now).is_empty(), "a dial under way is not repeated");
        let later = now + GRACE;
        assert_eq!(t.due_dials(later), vec![(PeerId([1; 16]), vec![ADDR])]);
        assert!(t.listed(later).is_empty(), "not listed before its session is up");
    }

    #[test]
    fn settled_after_two_graces_and_a_newcomer_dialed_now_whatever_the_ids() {
        let t0 = Instant::now();
        let mut t = PeerTable::new_at(PeerId([5; 16]), GRACE, EXPIRY, t0);
        assert!(!t.settled(t0 + GRACE * SETTLED_GRACES - Duration::from_millis(1)));
        let now = t0 + GRACE * SETTLED_GRACES;
        assert!(t.settled(now));
        // The id rule alone: we (5) are higher than 1 and 2, and wait the grace for both.
        t.beacon(&beacon(1, 1, false), IP, now);
        t.beacon(&beacon(2, 1, false), IP, now);
        assert!(t.due_dials(now).is_empty());
        // 2 is a newcomer to us: dialed now; 1 keeps its grace.
        t.dial_now(&PeerId([2; 16]), now);
        assert_eq!(t.due_dials(now), vec![(PeerId([2; 16]), vec![ADDR])]);
        // Not twice while its dial is under way, nor once it is connected.
        t.dial_now(&PeerId([2; 16]), now);
        assert!(t.due_dials(now).is_empty());
        t.session_up(&hello(2, 1, "two"), IP, now);
        t.dial_now(&PeerId([2; 16]), now);
        assert!(t.due_dials(now).is_empty());
        // An unknown id: nothing to dial.
        t.dial_now(&PeerId([3; 16]), now);
        assert!(t.due_dials(now).is_empty());
        assert_eq!(t.due_dials(now + GRACE), vec![(PeerId([1; 16]), vec![ADDR])]);
    }

    #[test]
    fn joins_on_session_and_leaves_on_farewell() {
        let mut t = table();
        let now = Instant::now();
        t.beacon(&beacon(9, 1, false), IP, now);
        match t.session_up(&hello(9, 1, "Bob"), IP, now) {
            UpOutcome::Joined(p) => assert_eq!(p.name, "Bob"),
            o => panic!("{o:?}"),
        }
        assert_eq!(t.listed(now).len(), 1);
        assert_eq!(t.resolve("bob", now).unwrap(), PeerId([9; 16]));
        assert_eq!(t.resolve("0909", now).unwrap(), PeerId([9; 16]));
        assert!(matches!(t.resolve("alice", now), Err(Error::UnknownPeer(_))));
        // A farewell of another incarnation is stale and ignored.
        assert_eq!(t.beacon(&beacon(9, 2, true), IP, now), BeaconOutcome::Known);
        // While its session lives, the session's end tells (a farewell may overtake its last
        // messages, or be forged).
        assert_eq!(t.beacon(&beacon(9, 1, true), IP, now), BeaconOutcome::Known);
        assert_eq!(t.listed(now).len(), 1);
        // Without a live session, the farewell is the word.
        assert_eq!(t.session_closed(PeerId([9; 16]), false, now), None);
        match t.beacon(&beacon(9, 1, true), IP, now) {
            BeaconOutcome::Left(p) => assert_eq!(p.name, "Bob"),
            o => panic!("{o:?}"),
        }
        assert!(t.is_empty());
    }

    #[test]
    fn closed_session_redials_and_unreachable_peer_leaves() {
        let mut t = table();
        let now = Instant::now();
        t.session_up(&hello(9, 1, "Bob"), IP, now);
        assert_eq!(t.session_closed(PeerId([9; 16]), false, now), None);
        assert_eq!(t.listed(now)[0].state, PeerState::Reconnecting);
        let due = t.due_dials(now + MIN_BACKOFF);
        assert_eq!(due.len(), 1);
        // Refused, and no beacon since: it is gone.
        let (p, why) = t.dial_failed(PeerId([9; 16]), now + MIN_BACKOFF).unwrap();
        assert_eq!((p.name.as_str(), why), ("Bob", LeaveReason::Disconnected));
        assert!(t.listed(now).is_empty());
    }

    #[test]
    fn failed_dial_with_beacons_backs_off() {
        let mut t = table();
        let now = Instant::now();
        t.session_up(&hello(9, 1, "Bob"), IP, now);
        t.session_closed(PeerId([9; 16]), false, now);
        let t1 = now + MIN_BACKOFF;
        assert_eq!(t.due_dials(t1).len(), 1);
        t.beacon(&beacon(9, 1, false), IP, t1);
        assert_eq!(t.dial_failed(PeerId([9; 16]), t1), None, "still announcing: keep trying");
        assert!(t.due_dials(t1).is_empty());
        assert_eq!(t.due_dials(t1 + MIN_BACKOFF * 2).len(), 1);
        assert_eq!(t.get(&PeerId([9; 16])).unwrap().backoff, MIN_BACKOFF * 2);
        // The session comes back: listed all along, so nothing new to report.
        assert_eq!(t.session_up(&hello(9, 1, "Bob"), IP, t1), UpOutcome::Resumed);
        assert_eq!(t.get(&PeerId([9; 16])).unwrap().backoff, MIN_BACKOFF);
    }

    #[test]
    fn silent_peers_expire() {
        let mut t = table();
        let now = Instant::now();
        t.session_up(&hello(9, 1, "Bob"), IP, now);
        t.beacon(&beacon(7, 1, false), IP, now);
        assert!(t.expire(now + EXPIRY).is_empty());
        t.heard(PeerId([9; 16]), now + Duration::from_secs(3));
        let gone = t.expire(now + EXPIRY + Duration::from_millis(1));
        assert!(gone.is_empty(), "Bob was heard from; 7 was never listed");
        assert_eq!(t.len(), 1);
        let gone = t.expire(now + Duration::from_secs(9));
        assert_eq!(gone.len(), 1);
        assert!(t.is_empty());
    }

    #[test]
    fn restart_is_reported_as_leave_then_join() {
        let mut t = table();
        let now = Instant::now();
        t.session_up(&hello(9, 1, "Bob"), IP, now);
        match t.session_up(&hello(9, 2, "Bob"), IP, now) {
            UpOutcome::Restarted { old, new } => assert_eq!((old.id, new.id), (PeerId([9; 16]), PeerId([9; 16]))),
            o => panic!("{o:?}"),
        }
        // A beacon never ends a live session, whatever incarnation it names.
        assert!(matches!(t.beacon(&beacon(9, 3, false), IP, now), BeaconOutcome::Known));
        assert!(matches!(t.beacon(&beacon(9, 3, true), IP, now), BeaconOutcome::Known));
        assert_eq!(t.listed(now).len(), 1);
        // Once the session is gone: a beacon of an earlier start (replayed) is stale; a later
        // start is a restart.
        t.session_closed(PeerId([9; 16]), false, now);
        assert!(matches!(t.beacon(&beacon(9, 1, false), IP, now), BeaconOutcome::Known));
        assert_eq!(t.get(&PeerId([9; 16])).unwrap().incarnation, 2);
        match t.beacon(&beacon(9, 3, false), IP, now) {
            BeaconOutcome::Restarted(p) => assert_eq!(p.name, "Bob"),
            o => panic!("{o:?}"),
        }
        assert!(t.listed(now).is_empty(), "the new incarnation is listed once its session is up");
    }

    #[test]
    fn incarnations_grow_with_each_start() {
        let a = new_incarnation();
        std::thread::sleep(Duration::from_millis(2));
        assert!(new_incarnation() > a);
    }

    #[test]
    fn beacons_of_unknown_ids_cannot_grow_the_table_past_its_bound() {
        let mut t = table();
        let now = Instant::now();
        for i in 0..(MAX_PEERS as u32 + 100) {
            let mut id = [0u8; 16];
            id[..4].copy_from_slice(&i.to_le_bytes());
            id[15] = 1;
            t.beacon(&Beacon { id: PeerId(id), ..beacon(1, 1, false) }, IP, now);
        }
        assert_eq!(t.len(), MAX_PEERS);
        // A session always gets its entry: it proved its key.
        t.session_up(&hello(0xee, 1, "Real"), IP, now);
        assert_eq!(t.len(), MAX_PEERS + 1);
        assert_eq!(t.listed(now).len(), 1);
    }

    #[test]
    fn ambiguous_names_are_refused() {
        let mut t = table();
        let now = Instant::now();
        t.session_up(&hello(9, 1, "Sam"), IP, now);
        t.session_up(&hello(8, 1, "sam"), IP, now);
        assert!(matches!(t.resolve("SAM", now), Err(Error::AmbiguousPeer(..))));
        assert_eq!(t.resolve("0808", now).unwrap(), PeerId([8; 16]));
    }

    fn at(last: u8, port: u16) -> SocketAddr {
        SocketAddr::from(([10, 0, 0, last], port))
    }

    #[test]
    fn gossip_introduces_unknown_peers_only() {
        let mut t = table();
        let now = Instant::now();
        // Unknown, higher id: dialed at once, at every address given, in order.
        assert!(t.gossiped(PeerId([9; 16]), 1, &[at(9, 4000), at(19, 4000)], now));
        assert_eq!(t.due_dials(now), vec![(PeerId([9; 16]), vec![at(9, 4000), at(19, 4000)])]);
        // Lower id: after the grace, as for a beacon.
        assert!(t.gossiped(PeerId([1; 16]), 1, &[at(1, 4000)], now));
        assert!(t.due_dials(now).is_empty());
        assert_eq!(t.due_dials(now + GRACE).len(), 1);
        assert!(t.listed(now).is_empty(), "gossip never lists anyone");
        // Ourselves, and no address: ignored.
        assert!(!t.gossiped(PeerId([5; 16]), 1, &[at(5, 4000)], now));
        assert!(!t.gossiped(PeerId([7; 16]), 1, &[], now));
        // A connected peer is left alone (no address, incarnation or state change).
        t.session_up(&hello(9, 1, "Bob"), IP, now);
        assert!(!t.gossiped(PeerId([9; 16]), 2, &[at(99, 1)], now));
        let e = t.get(&PeerId([9; 16])).unwrap();
        assert_eq!((e.addr, e.incarnation, e.state), (ADDR, 1, PeerState::Connected));
        // A reconnecting one gets the gossiped address first (someone reaches it there now).
        t.session_closed(PeerId([9; 16]), false, now);
        t.gossiped(PeerId([9; 16]), 1, &[at(42, 4000)], now);
        let e = t.get(&PeerId([9; 16])).unwrap();
        assert_eq!(e.addrs(), vec![at(42, 4000), ADDR, at(9, 4000), at(19, 4000)]);
    }

    #[test]
    fn moved_peer_is_dialed_at_its_new_address_first() {
        let mut t = table();
        let now = Instant::now();
        t.beacon(&beacon(9, 1, false), IP, now);
        t.session_up(&hello(9, 1, "Bob"), IP, now);
        // A beacon from a second interface while connected: remembered, not preferred.
        let other = SocketAddr::from(([192, 168, 1, 9], 5555));
        t.beacon(&beacon(9, 1, false), other, now);
        assert_eq!(t.get(&PeerId([9; 16])).unwrap().addrs(), vec![ADDR, at9(192, 168, 1, 9)]);
        // Its session dies; it announces itself from a new address: dialed there first.
        t.session_closed(PeerId([9; 16]), false, now);
        let moved = SocketAddr::from(([10, 0, 0, 77], 1234));
        t.beacon(&beacon(9, 1, false), moved, now);
        let due = t.due_dials(now + MIN_BACKOFF);
        assert_eq!(due, vec![(PeerId([9; 16]), vec![at(77, 4000), ADDR, at9(192, 168, 1, 9)])]);
        // One peer, however many addresses.
        assert_eq!(t.len(), 1);
        // The addresses are bounded.
        for i in 100..110 {
            t.beacon(&beacon(9, 1, false), SocketAddr::from(([10, 0, 0, i], 1)), now);
        }
        assert_eq!(t.get(&PeerId([9; 16])).unwrap().addrs().len(), MAX_ADDRS);
        assert_eq!(t.get(&PeerId([9; 16])).unwrap().addr, at(109, 4000));
    }

    #[test]
    fn dials_beyond_the_window_wait_and_are_spared_by_a_session() {
        let mut t = table().with_max_dials(6);
        let now = Instant::now();
        // Ten peers with higher ids than ours (5): each is ours to dial at once.
        for id in 10..20u8 {
            t.beacon(&beacon(id, 1, false), IP, now + Duration::from_millis(id as u64));
        }
        let later = now + Duration::from_millis(50);
        let first = t.due_dials(later);
        assert_eq!(first.len(), DIAL_WINDOW_START, "no more than the window at once");
        // Those due first go first.
        let ids: Vec<u8> = first.iter().map(|(p, _)| p.0[0]).collect();
        assert_eq!(ids, vec![10, 11, 12, 13]);
        assert!(t.due_dials(later).is_empty(), "the window is full");
        // Peer 14 dials us meanwhile: its session is up, so it is never dialed.
        t.session_up(&hello(14, 1, "p14"), IP, later);
        // Our dial of 10 ends quickly: its place is free, and the window widens by one.
        t.dial_done_at(PeerId([10; 16]), later + Duration::from_millis(10));
        assert_eq!(t.window().size(), DIAL_WINDOW_START + 1);
        let next: Vec<u8> = t.due_dials(later).iter().map(|(p, _)| p.0[0]).collect();
        assert_eq!(next, vec![15, 16], "two places: 14 is spared");
        // Fast dials widen the window up to the configured maximum, no further.
        for id in [11u8, 12, 13, 15, 16] {
            t.dial_done_at(PeerId([id; 16]), later + Duration::from_millis(20));
        }
        assert_eq!(t.window().size(), 6);
        assert_eq!(t.due_dials(later).len(), 3, "17, 18 and 19");
    }

    #[test]
    fn a_dial_that_would_cross_waits_and_a_crossed_dial_waits_for_the_peers_session() {
        let mut t = table();
        let now = Instant::now();
        t.beacon(&beacon(9, 1, false), IP, now);
        t.beacon(&beacon(8, 1, false), IP, now);
        // 9's handshake with us is under way: not dialed now, looked at again after MIN_BACKOFF.
        let nine = PeerId([9; 16]);
        let due = t.due_dials_except(now, |e| e.id == nine);
        assert_eq!(due, vec![(PeerId([8; 16]), vec![ADDR])]);
        assert!(t.due_dials(now + MIN_BACKOFF / 2).is_empty(), "not before MIN_BACKOFF");
        assert_eq!(t.due_dials(now + MIN_BACKOFF), vec![(nine, vec![ADDR])], "its handshake failed: dial it");
        // 8 refused ours: it is dialing us. No backoff growth; dial again after the grace only.
        let backoff = t.get(&PeerId([8; 16])).unwrap().backoff;
        t.dial_crossed(PeerId([8; 16]), true, now);
        assert_eq!(t.get(&PeerId([8; 16])).unwrap().backoff, backoff);
        assert!(t.due_dials(now + GRACE / 2).is_empty());
        assert_eq!(t.due_dials(now + GRACE).len(), 1, "its session never came: dial it");
        // Not made because 8's handshake with us had begun: looked at again after MIN_BACKOFF.
        t.dial_crossed(PeerId([8; 16]), false, now + GRACE);
        assert!(t.due_dials(now + GRACE + MIN_BACKOFF / 2).is_empty());
        assert_eq!(t.due_dials(now + GRACE + MIN_BACKOFF).len(), 1);
        // A session that comes up meanwhile spares the dial.
        t.dial_crossed(PeerId([8; 16]), true, now + GRACE);
        t.session_up(&hello(8, 1, "p8"), IP, now + GRACE);
        assert!(t.due_dials(now + GRACE * 3).is_empty());
    }

    #[test]
    fn slow_dials_halve_the_window_once_per_round() {
        let mut t = table().with_max_dials(16);
        let now = Instant::now();
        for id in 10..40u8 {
            t.beacon(&beacon(id, 1, false), IP, now);
        }
        // Widen it to 8 with four fast dials.
        for (p, _) in t.due_dials(now) {
            t.dial_done_at(p, now + Duration::from_millis(1));
        }
        assert_eq!(t.window().size(), 8);
        let round = t.due_dials(now);
        assert_eq!(round.len(), 8);
        // The first of them to end takes longer than DIAL_SLOW: the window halves...
        let slow = now + DIAL_SLOW + Duration::from_millis(1);
        t.dial_done_at(round[0].0, slow);
        assert_eq!(t.window().size(), 4);
        // ...but not again for the dials of the same round (started before the cut), which
        // were slowed by the same crowd. A failure (a timeout) counts as an end too.
        t.dial_done_at(round[1].0, slow);
        assert_eq!(t.dial_failed(round[2].0, slow), None);
        assert_eq!(t.window().size(), 4);
        // Five still in flight: nothing starts until fewer than 4 are.
        assert!(t.due_dials(slow).is_empty());
        for (p, _) in &round[3..6] {
            t.dial_done_at(*p, slow);
        }
        let late = t.due_dials(slow);
        assert_eq!(late.len(), 2);
        // A dial of the new round that is slow too halves it again; never below one.
        let slower = slow + DIAL_SLOW * 2;
        t.dial_done_at(late[0].0, slower);
        assert_eq!(t.window().size(), 2);
        for p in [round[6].0, round[7].0, late[1].0] {
            t.dial_done_at(p, slower);
        }
        assert_eq!(t.window().size(), 2, "all started before that cut");
        for _ in 0..3 {
            let cut = Instant::now() + DIAL_SLOW * 10;
            if let Some((p, _)) = t.due_dials(cut).first().cloned() {
                t.dial_done_at(p, cut + DIAL_SLOW * 2);
            }
        }
        assert_eq!(t.window().size(), 1);
    }

    fn at9(a: u8, b: u8, c: u8, d: u8) -> SocketAddr {
        SocketAddr::from(([a, b, c, d], 4000))
    }
}
