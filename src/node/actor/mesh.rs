//! The node actor's side of "beyond one broadcast domain" (a child module of `actor`, so that it
//! shares the actor's state without widening it): seed peers, gossip, and sessions cut when the
//! local address they were bound to vanished.
//!
//! Pure decisions on the actor's state; the I/O is a spawned dial or a frame in an outbox, as
//! everywhere else in the actor.

use std::net::{IpAddr, SocketAddr};
use std::time::Instant;

use super::Actor;
use crate::codec;
use crate::diag::{COUNTS, Counts};
use crate::discovery::iface::Iface;
use crate::gossip::{self, Book, Round, Rounds};
use crate::guard::RateLimiter;
use crate::id::{FastMap as HashMap, PeerId};
use crate::protocol::{Frame, PeerAd};
use crate::seeds::{SeedOutcome, Seeds};
use crate::transport::dial;

/// The actor's mesh state.
pub(super) struct Mesh {
    /// Peers remembered from gossip and from our sessions.
    book: Book,
    /// When the next gossip round is due.
    rounds: Rounds,
    /// The seeds, and when to dial each.
    seeds: Seeds,
    /// Dials of gossiped or remembered peers (one bucket for all).
    dials: RateLimiter<()>,
    /// Our addresses on the selected interfaces with their prefix lengths, as last published by
    /// the announce task: our subnets (see [`gossip::hears_itself`]).
    subnets: Vec<(IpAddr, u8)>,
    /// When the book last heard that our live peers are alive.
    touched: Instant,
    /// Addresses dialed for peers known from gossip only: how many times, since when (at most
    /// [`TRIED_MAX`]). An address tried [`gossip::HEARSAY_TRIES`] times is not dialed for such
    /// peers again for [`gossip::BAR_FOR`], whatever ids are gossiped at it; a session that
    /// comes up from it clears it.
    tried: HashMap<SocketAddr, (u8, Instant)>,
}

/// Addresses tried for gossip remembered, at most (the oldest goes first).
const TRIED_MAX: usize = 4096;

impl Mesh {
    pub(super) fn new(seeds: &[crate::seeds::SeedAddr], ifaces: &[Iface], now: Instant) -> Self {
        Mesh {
            book: Book::default(),
            rounds: Rounds::default(),
            seeds: Seeds::new(seeds, now),
            dials: RateLimiter::new(gossip::DIAL_BURST, gossip::DIALS_PER_SEC),
            subnets: ifaces.iter().map(|i| (i.ip, i.prefix)).collect(),
            touched: now,
            tried: HashMap::default(),
        }
    }
}

impl Mesh {
    /// Is `peer` known from gossip only (no session of ours ever confirmed it)?
    fn hearsay(&self, peer: &PeerId) -> bool {
        self.book.get(peer).is_some_and(|k| !k.confirmed)
    }

    /// Was `addr` tried for gossip as often as it may be, lately?
    fn spent(&self, addr: &SocketAddr, now: Instant) -> bool {
        self.tried.get(addr).is_some_and(|(n, since)| {
            *n >= gossip::HEARSAY_TRIES && now.saturating_duration_since(*since) < gossip::BAR_FOR
        })
    }

    /// Is `peer` known from gossip only, and every one of `addrs` tried enough lately?
    pub(super) fn hearsay_spent(&self, peer: &PeerId, addrs: &[SocketAddr], now: Instant) -> bool {
        self.hearsay(peer) && !addrs.is_empty() && addrs.iter().all(|a| self.spent(a, now))
    }
}

impl Actor {
    /// On every tick: dial the seeds that are due, bring back remembered peers that fell out of
    /// the table, and send a gossip round if one is due.
    pub(super) fn mesh_tick(&mut self, now: Instant) {
        let sessions = &self.sessions;
        for (i, at) in self.mesh.seeds.due(now, |p| sessions.contains_key(p)) {
            tracing::debug!(seed = %at, "dialing seed");
            self.p.ctx.tracker.spawn(dial::dial_seed(i, at, self.p.ctx.clone()));
        }
        if now.saturating_duration_since(self.mesh.touched) >= gossip::REFRESH {
            // Gossip about peers we have a session with is not read (`gossip_in`): keep them
            // remembered here instead.
            self.mesh.touched = now;
            for id in self.sessions.keys() {
                self.mesh.book.touch(id, now);
            }
        }
        let table = &self.table;
        let back = self.mesh.book.due(now, |id| !table.contains(id));
        for (id, incarnation, addrs) in back {
            if !self.mesh.dials.allow((), now) {
                break;
            }
            tracing::debug!(peer = %id.short(), ?addrs, "looking again for a remembered peer");
            self.table.gossiped(id, incarnation, &addrs, now);
        }
        if let Some(round) = self.mesh.rounds.next(now) {
            let mut peers: Vec<PeerId> = self.sessions.keys().copied().collect();
            if round == Round::News && peers.len() > gossip::NEWS_FANOUT {
                // A partial shuffle: the first NEWS_FANOUT are a random sample.
                for i in 0..gossip::NEWS_FANOUT {
                    let j = rand::random_range(i..peers.len());
                    peers.swap(i, j);
                }
                peers.truncate(gossip::NEWS_FANOUT);
            }
            for p in peers {
                self.gossip_to(p, round == Round::Full);
            }
        }
    }

    /// A session is up and kept: remember where the peer is, tell it whom we know, and tell
    /// the others about it (at the next round).
    pub(super) fn mesh_up(&mut self, peer: PeerId, now: Instant) {
        if let Some(e) = self.table.get(&peer) {
            let (inc, addr) = (e.incarnation, e.addr);
            self.mesh.book.confirm(peer, inc, addr, now);
        }
        self.gossip_to(peer, false);
        self.mesh.rounds.changed();
        Counts::bump(&COUNTS.kept);
        // If it was our dial, its place in the dial window is free: start the next one now
        // rather than at the next tick.
        self.dial_due(now);
    }

    /// Do we remember this incarnation of `peer` (from a session of ours, or gossip, within
    /// [`gossip::REMEMBER_FOR`])? Then it is not a newcomer: it comes back into reach.
    pub(super) fn met_before(&self, peer: &PeerId, incarnation: u64) -> bool {
        self.mesh.book.get(peer).is_some_and(|k| k.incarnation == incarnation)
    }

    /// The peer left on purpose: stop looking for it.
    pub(super) fn mesh_left(&mut self, peer: &PeerId) {
        self.mesh.book.forget(peer);
    }

    /// A dial of a seed ended.
    pub(super) fn seed_dialed(&mut self, seed: usize, outcome: SeedOutcome) {
        if let Some(at) = self.mesh.seeds.done(seed, outcome, Instant::now()) {
            tracing::info!(seed = %at, "the peer given as {at} is this peer itself; not dialing it");
        }
    }

    /// Send `to` the peers we have a live session with (except itself), at most
    /// [`gossip::MAX_ADS`], starting at a random one when there are more. Unless `all` (the
    /// periodic refresh), not the peers on a subnet of ours that `to` is on too: it hears their
    /// beacons itself (in a room of one subnet, this is nearly all gossip).
    fn gossip_to(&mut self, to: PeerId, all: bool) {
        let Some(s) = self.sessions.get(&to) else { return };
        let loopback = s.loopback;
        // This runs for every session that comes up, over every connected peer: the receiver's
        // side of the rule is worked out once, the cheap test goes first, the hash lookup last.
        let rx = self.table.get(&to).map(|e| gossip::canonical(e.addr.ip()));
        let hearing = match rx {
            Some(rx) if !all => gossip::Hearing::of(rx, &self.mesh.subnets),
            _ => gossip::Hearing::default(),
        };
        let hears = |e: &crate::peers::Entry| hearing.hears(gossip::canonical(e.addr.ip()));
        let mut peers: Vec<&crate::peers::Entry> =
            self.table.connected().filter(|e| e.id != to && !hears(e) && self.sessions.contains_key(&e.id)).collect();
        if peers.len() > gossip::MAX_ADS {
            let start = rand::random_range(0..peers.len());
            peers.rotate_left(start);
        }
        // Ads are made for the first MAX_ADS peers that have an address that may travel, not for
        // every peer (this runs for every session that comes up).
        let ads: Vec<PeerAd> = peers
            .iter()
            .filter_map(|e| gossip::ad(e.id, e.incarnation, e.addr.port(), &e.addrs(), loopback))
            .take(gossip::MAX_ADS)
            .collect();
        if ads.is_empty() {
            return;
        }
        COUNTS.gossip_ads_out.fetch_add(ads.len() as u64, std::sync::atomic::Ordering::Relaxed);
        tracing::trace!(peer = %to.short(), n = ads.len(), "gossip sent");
        if let Ok(f) = codec::encode(&Frame::Peers(ads)) {
            self.push(to, f);
        }
    }

    /// Gossip from `from`, a peer of a live session of this room: remember the peers it names,
    /// and dial those we do not know (within the dial rate). Nobody is listed before its own
    /// handshake.
    pub(super) fn gossip_in(&mut self, from: PeerId, ads: Vec<PeerAd>) {
        let now = Instant::now();
        let loopback = self.sessions.get(&from).is_some_and(|s| s.loopback);
        let mut new = false;
        COUNTS.gossip_ads_in.fetch_add(ads.len().min(gossip::MAX_ADS) as u64, std::sync::atomic::Ordering::Relaxed);
        for ad in ads.iter().take(gossip::MAX_ADS) {
            if self.sessions.contains_key(&ad.id) {
                // Nothing to learn: the book has it from the session (`mesh_up`), and keeps it
                // while the session lives (`mesh_tick`). Most ads are of such peers (every
                // session that comes up brings a list), so this is worth skipping.
                continue;
            }
            let Some(mut addrs) = gossip::accept(ad, self.me, loopback) else { continue };
            // A host that did not answer as a peer is not dialed again for anyone's gossip.
            addrs.retain(|a| !self.mesh.spent(a, now));
            if addrs.is_empty() {
                continue;
            }
            self.mesh.book.learn(ad.id, ad.incarnation, &addrs, now);
            if !self.table.contains(&ad.id) && !self.mesh.dials.allow((), now) {
                tracing::debug!(peer = %ad.id.short(), "gossiped peer not dialed now (dial rate)");
                continue;
            }
            if self.table.gossiped(ad.id, ad.incarnation, &addrs, now) {
                tracing::debug!(peer = %ad.id.short(), via = %from.short(), ?addrs, "discovered by gossip");
                new = true;
            }
        }
        if new {
            self.dial_due(now);
        }
    }

    /// A dial of `peer` failed: a peer known from gossip only is forgotten after
    /// [`gossip::HEARSAY_TRIES`] failures (its addresses were counted as it was dialed).
    pub(super) fn mesh_dial_failed(&mut self, peer: PeerId, now: Instant) {
        if self.mesh.book.dial_failed(&peer).is_some() {
            tracing::debug!(peer = %peer.short(), "known from gossip only and not reachable: forgotten");
            if !self.table.get(&peer).is_some_and(|e| e.joined) {
                self.table.remove(peer, now);
            }
        }
    }

    /// A dial of `peer` at `addrs` starts: when it is known from gossip only, each address counts
    /// a try.
    pub(super) fn mesh_dialing(&mut self, peer: &PeerId, addrs: &[SocketAddr], now: Instant) {
        if !self.mesh.hearsay(peer) {
            return;
        }
        if self.mesh.tried.len() + addrs.len() > TRIED_MAX {
            self.mesh.tried.retain(|_, (_, since)| now.saturating_duration_since(*since) < gossip::BAR_FOR);
            while self.mesh.tried.len() + addrs.len() > TRIED_MAX {
                let Some(oldest) = self.mesh.tried.iter().min_by_key(|(_, v)| v.1).map(|(a, _)| *a) else { break };
                self.mesh.tried.remove(&oldest);
            }
        }
        for a in addrs {
            let e = self.mesh.tried.entry(*a).or_insert((0, now));
            if now.saturating_duration_since(e.1) >= gossip::BAR_FOR {
                *e = (0, now);
            }
            e.0 = e.0.saturating_add(1);
        }
    }

    /// A session came up with a peer at `remote`: a peer's address, tried or not.
    pub(super) fn mesh_reached(&mut self, remote: SocketAddr) {
        self.mesh.tried.remove(&remote);
    }

    /// The announce task published a new set of interfaces. Sessions bound to an address we no
    /// longer have cannot carry anything any more: cut them now (rather than after the idle
    /// timeout), so that both ends redial at once, from and to the new address. Beacon at once
    /// too: the others learn the new address.
    pub(super) fn ifaces_changed(&mut self, now_set: &[Iface]) {
        let subnets: Vec<(IpAddr, u8)> = now_set.iter().map(|i| (i.ip, i.prefix)).collect();
        let gone: Vec<IpAddr> =
            self.mesh.subnets.iter().map(|s| s.0).filter(|ip| !subnets.iter().any(|s| s.0 == *ip)).collect();
        self.mesh.subnets = subnets;
        if gone.is_empty() {
            return;
        }
        for (peer, s) in &self.sessions {
            if s.local.is_some_and(|l| gone.contains(&gossip::canonical(l.ip()))) {
                tracing::info!(peer = %peer.short(), local = ?s.local, "our address on this session is gone; reconnecting");
                s.cancel.cancel();
            }
        }
        self.p.wake_announcer.notify_one();
    }
}
