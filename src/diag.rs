//! Process-wide counters of how a room forms: dials, handshakes and how they ended, sessions
//! kept, gossip, beacons.
//!
//! They are diagnostics, not part of what a node reports to its application: the convergence
//! benchmark prints them (summed over its worker processes) beside its figures, and they are
//! what to look at when a room forms slowly (too many crossed dials, handshakes that time out,
//! beacons that go unanswered). They live apart from the code that bumps them so that the
//! transport, discovery and the node actor share one set without depending on each other for it.
//! Every node of the process adds to the same counters; relaxed atomics, never reset.

use std::sync::atomic::{AtomicU64, Ordering};

/// How many connections this process opened and how they ended, how much it gossiped and how
/// often it beaconed (see the module documentation).
#[derive(Debug)]
pub struct Counts {
    /// Dial tasks started (one per dial the actor decided).
    pub dials: AtomicU64,
    /// Dials whose TCP connect failed (every address).
    pub connect_failed: AtomicU64,
    /// Time dials spent waiting for a place among `max_dials`, in microseconds, summed.
    pub dial_wait_us: AtomicU64,
    /// Handshakes started as the dialer / as the acceptor.
    pub started: [AtomicU64; 2],
    /// Handshakes that succeeded, dialer / acceptor.
    pub ok: [AtomicU64; 2],
    /// Handshakes that timed out, dialer / acceptor.
    pub timed_out: [AtomicU64; 2],
    /// Handshakes that failed otherwise (closed by the other end, refused), dialer / acceptor.
    pub failed: [AtomicU64; 2],
    /// Handshakes refused as crossing dials (ours refused / theirs refused by us), dialer / acceptor.
    pub crossed: [AtomicU64; 2],
    /// Dials not started because the peer's handshake with us was under way.
    pub deferred: AtomicU64,
    /// Time spent in successful handshakes, in microseconds, summed (both sides).
    pub ok_us: AtomicU64,
    /// Sessions kept by the node actor (the others of the `ok` ones were duplicates, dropped).
    pub kept: AtomicU64,
    /// Peers named in gossip frames sent / received.
    pub gossip_ads_out: AtomicU64,
    /// (see `gossip_ads_out`)
    pub gossip_ads_in: AtomicU64,
    /// Beacon rounds sent (each: the beacon on every selected interface), all of them...
    pub beacons: AtomicU64,
    /// ...of which rounds sent early because a newcomer was heard.
    pub beacons_newcomer: AtomicU64,
    /// Handshakes where the acceptor found the dialer's preamble and message 1 there already,
    /// and so sent its preamble and message 2 in one write.
    pub merged_msg2: AtomicU64,
    /// Handshakes where the acceptor found the dialer's hello there already, and so held its own
    /// back to send it with the session's first frames, in one write.
    pub held_hello: AtomicU64,
}

/// The process-wide [`Counts`].
pub static COUNTS: Counts = Counts {
    dials: AtomicU64::new(0),
    connect_failed: AtomicU64::new(0),
    dial_wait_us: AtomicU64::new(0),
    started: [AtomicU64::new(0), AtomicU64::new(0)],
    ok: [AtomicU64::new(0), AtomicU64::new(0)],
    timed_out: [AtomicU64::new(0), AtomicU64::new(0)],
    failed: [AtomicU64::new(0), AtomicU64::new(0)],
    crossed: [AtomicU64::new(0), AtomicU64::new(0)],
    deferred: AtomicU64::new(0),
    ok_us: AtomicU64::new(0),
    kept: AtomicU64::new(0),
    gossip_ads_out: AtomicU64::new(0),
    gossip_ads_in: AtomicU64::new(0),
    beacons: AtomicU64::new(0),
    beacons_newcomer: AtomicU64::new(0),
    merged_msg2: AtomicU64::new(0),
    held_hello: AtomicU64::new(0),
};

impl Counts {
    /// Add one to `c`.
    pub fn bump(c: &AtomicU64) {
        c.fetch_add(1, Ordering::Relaxed);
    }

    /// The counts as `name=value` pairs, in a fixed order.
    pub fn snapshot(&self) -> Vec<(&'static str, u64)> {
        let g = |c: &AtomicU64| c.load(Ordering::Relaxed);
        vec![
            ("dials", g(&self.dials)),
            ("connect_failed", g(&self.connect_failed)),
            ("dial_wait_us", g(&self.dial_wait_us)),
            ("hs_started_out", g(&self.started[0])),
            ("hs_started_in", g(&self.started[1])),
            ("hs_ok_out", g(&self.ok[0])),
            ("hs_ok_in", g(&self.ok[1])),
            ("hs_timeout_out", g(&self.timed_out[0])),
            ("hs_timeout_in", g(&self.timed_out[1])),
            ("hs_failed_out", g(&self.failed[0])),
            ("hs_failed_in", g(&self.failed[1])),
            ("hs_crossed_out", g(&self.crossed[0])),
            ("hs_crossed_in", g(&self.crossed[1])),
            ("dials_deferred", g(&self.deferred)),
            ("hs_ok_us", g(&self.ok_us)),
            ("kept", g(&self.kept)),
            ("gossip_ads_out", g(&self.gossip_ads_out)),
            ("gossip_ads_in", g(&self.gossip_ads_in)),
            ("beacons", g(&self.beacons)),
            ("beacons_newcomer", g(&self.beacons_newcomer)),
            ("merged_msg2", g(&self.merged_msg2)),
            ("held_hello", g(&self.held_hello)),
        ]
    }
}
