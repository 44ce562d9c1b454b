//! Discovery and sessions: what the actor does with a beacon heard (a newcomer to dial, a peer
//! leaving or restarted), the dials that are due, and the live sessions (one kept per peer,
//! reports from their tasks, keepalives).

use std::sync::Arc;
use std::time::Instant;

use tokio_util::sync::CancellationToken;

use super::{Actor, now_ms};
use crate::codec::{self, OutFrame};
use crate::diag::{COUNTS, Counts};
use crate::discovery::listen::Heard;
use crate::event::{Event, LeaveReason};
use crate::id::{FastSet, MsgId, PeerId};
use crate::peers::{BeaconOutcome, UpOutcome};
use crate::protocol::Frame;
use crate::transport::outbox::{OutboxHandle, Refused};
use crate::transport::{BYE_DUPLICATE, SessionMsg, Up, dial};

/// A session's buffer of a turn's frames is kept for the next turn up to this capacity (a burst
/// to 200 peers would otherwise keep its size for each of them).
const PENDING_KEPT: usize = 256;

/// The session kept for a peer.
pub(super) struct Live {
    pub(super) sid: u64,
    pub(super) incarnation: u64,
    pub(super) dialer_is_me: bool,
    pub(super) outbox: OutboxHandle,
    /// Frames of this turn, written at its end (`Actor::write_pending`), or when dropped.
    pub(super) pending: Vec<OutFrame>,
    pub(super) cancel: CancellationToken,
    /// Our end's address (cut when it vanishes: see `mesh`).
    pub(super) local: Option<std::net::SocketAddr>,
    /// Both ends on this computer (only then may loopback addresses travel in gossip).
    pub(super) loopback: bool,
    /// Its keepalive: quiet while the peer's beacons are heard.
    pub(super) liveness: Arc<crate::transport::session::Liveness>,
    /// When it came up (an established session gives way to a newer one: see `up`).
    pub(super) since: Instant,
    /// Messages pushed since the last seals on this session (any author's): the next seals
    /// prove them (see `sealing`).
    pub(super) unsealed: Vec<MsgId>,
    /// Bytes of the frames of `unsealed`.
    pub(super) unsealed_bytes: usize,
    /// The catch-up messages we asked this peer for and have not received.
    pub(super) wanted: FastSet<MsgId>,
    /// The catch-up messages this peer asked us for and has not been sent yet: sent as its
    /// socket takes them (see `serve`).
    pub(super) serving: std::collections::VecDeque<MsgId>,
}

impl Live {
    /// Add an encoded frame for `peer` (this session's peer) to the turn's, and the peer to
    /// `touched` with its first; false if the session is gone or was too slow (then it is
    /// closed), or, for a message, if the bytes waiting for the socket and this turn's would
    /// pass their bound (the message goes in a later turn: its stream sends it again).
    pub(super) fn push(&mut self, peer: PeerId, frame: OutFrame, touched: &mut Vec<PeerId>) -> bool {
        // Frames and bytes still waiting from earlier turns, not this turn's (see
        // `transport::outbox`); both checks once per turn, with its first frame (the token's
        // check takes a lock, and `Outbox::send` refuses a session cancelled meanwhile).
        if self.pending.is_empty() {
            if self.cancel.is_cancelled() {
                return false;
            }
            if self.outbox.waiting() > self.outbox.capacity() || self.outbox.waiting_bytes() > self.outbox.max_bytes() {
                self.too_slow(peer);
                return false;
            }
        }
        // Message and catch-up frames are the ones built with a head (`codec::message_frame`).
        if !self.outbox.admit(frame.len(), !frame.head().is_empty()) {
            return false;
        }
        if self.pending.is_empty() {
            touched.push(peer);
        }
        self.pending.push(frame);
        true
    }

    /// A message of `len` bytes was pushed: its seal follows. True when enough wait for their
    /// seals that they should get them now, within the turn.
    pub(super) fn note_unsealed(&mut self, id: MsgId, len: usize) -> bool {
        self.unsealed.push(id);
        self.unsealed_bytes += len;
        self.unsealed.len() >= crate::authorship::SEAL_EVERY
            || self.unsealed_bytes >= crate::authorship::SEAL_EVERY_BYTES
    }

    /// Write the turn's frames.
    pub(super) fn write_pending(&mut self, peer: PeerId) {
        if let Err(Refused::Full) = self.outbox.send(&mut self.pending) {
            self.too_slow(peer);
        }
        if self.pending.capacity() > PENDING_KEPT {
            self.pending = Vec::new();
        } else {
            self.pending.clear();
        }
    }

    pub(super) fn too_slow(&self, peer: PeerId) {
        tracing::warn!(peer = %peer.short(), "peer is not reading; closing its session");
        self.cancel.cancel();
    }

    /// Close gracefully: say why; dropped, the session writes what it has and ends.
    pub(super) fn close(mut self, reason: &str) {
        if let Ok(bye) = codec::encode(&Frame::Bye(reason.to_string())) {
            self.pending.push(bye.into());
        }
    }
}

impl Drop for Live {
    /// Frames of a turn that closed the session still go (then the outbox handle, dropped after
    /// this, lets the writer finish and close).
    fn drop(&mut self) {
        let _ = self.outbox.send(&mut self.pending);
    }
}

impl Actor {
    pub(super) fn beacon(&mut self, h: Heard) {
        if !h.beacon.farewell {
            self.beaconed.insert(h.beacon.id, h.at);
        }
        match self.table.beacon(&h.beacon, h.from, h.at) {
            BeaconOutcome::New => {
                tracing::debug!(peer = %h.beacon.id.short(), from = %h.from, "discovered");
                self.newcomer(&h.beacon);
            }
            BeaconOutcome::Known => {}
            BeaconOutcome::Left(info) => {
                // It is leaving, not us: just end our side of the session.
                if let Some(s) = self.sessions.remove(&info.id) {
                    s.cancel.cancel();
                }
                self.session_gone(info.id);
                self.left(info, LeaveReason::Left);
            }
            BeaconOutcome::Restarted(info) => {
                if let Some(s) = self.sessions.remove(&info.id) {
                    s.cancel.cancel();
                }
                self.session_gone(info.id);
                self.left(info, LeaveReason::Restarted);
                self.newcomer(&h.beacon);
            }
        }
    }

    /// A peer heard for the first time, or with a new incarnation. Once we are settled, one we
    /// do not remember in this incarnation (`met_before`) has just started: we dial it at once,
    /// which tells it of us. Else our beacon does, at once, and the lower id dials
    /// (docs/protocol.md, 4.5 and 13.1).
    pub(super) fn newcomer(&mut self, b: &crate::discovery::beacon::Beacon) {
        let now = Instant::now();
        if self.table.settled(now) && !self.met_before(&b.id, b.incarnation) {
            self.table.dial_now(&b.id, now);
        } else {
            self.p.wake_announcer.notify_one();
        }
        self.dial_due(now);
    }

    /// Start the dials that are due (on every tick, and at once when a newcomer is heard).
    pub(super) fn dial_due(&mut self, now: Instant) {
        let crossing = &self.p.ctx.crossing;
        let mesh = &self.mesh;
        let busy = |e: &crate::peers::Entry| {
            let b = crossing.inbound(&e.id);
            if b {
                tracing::debug!(peer = %e.id.short(), "its handshake with us is under way: not dialing it now");
                Counts::bump(&COUNTS.deferred);
            }
            // A peer known from gossip only, at addresses tried enough already.
            b || mesh.hearsay_spent(&e.id, &e.addrs(), now)
        };
        for (peer, addrs) in self.table.due_dials_except(now, busy) {
            // Several peers gossiped at one address in one go: the tries count as they start.
            if self.mesh.hearsay_spent(&peer, &addrs, now) {
                self.table.dial_done(peer);
                continue;
            }
            tracing::debug!(peer = %peer.short(), ?addrs, "dialing");
            self.mesh_dialing(&peer, &addrs, now);
            self.p.ctx.tracker.spawn(dial::dial(peer, addrs, self.p.ctx.clone()));
        }
    }

    /// Sessions of peers whose beacons are heard ping seldom: the beacons show the peer lives,
    /// and a peer heard neither way for `expiry` is dropped ([`PeerTable::expire`]). When the
    /// beacons stop (a link or subnet that does not carry them, a peer that left), the session
    /// pings often again, at once.
    pub(super) fn keepalives(&mut self, now: Instant) {
        let fresh = self.p.config.beacon_interval * 3;
        self.beaconed.retain(|_, at| now.saturating_duration_since(*at) < fresh);
        for (peer, s) in &self.sessions {
            s.liveness.set_quiet(self.beaconed.contains_key(peer));
        }
    }

    /// Handle a session's report; how many frames it carried (1 for any other report).
    pub(super) fn session(&mut self, m: SessionMsg) -> usize {
        let now = Instant::now();
        match m {
            SessionMsg::Up(up) => self.up(*up),
            SessionMsg::Frames { peer, frames } => {
                self.table.heard(peer, now);
                let n = frames.len();
                for f in frames {
                    self.frame(peer, f);
                }
                return n.max(1);
            }
            SessionMsg::Heard { peer } => self.table.heard(peer, now),
            SessionMsg::Closed { sid, peer, farewell } => {
                if self.sessions.get(&peer).is_none_or(|s| s.sid != sid) {
                    return 1; // a session we had already replaced or dropped
                }
                self.sessions.remove(&peer);
                self.session_gone(peer);
                if let Some((info, why)) = self.table.session_closed(peer, farewell, now) {
                    self.left(info, why);
                }
                self.bound_members();
            }
            SessionMsg::SeedDialed { seed, outcome } => self.seed_dialed(seed, outcome),
            SessionMsg::DialCrossed { peer, refused } => {
                self.table.dial_crossed(peer, refused, now);
                self.dial_due(now);
            }
            SessionMsg::DialFailed { peer } => {
                if self.sessions.contains_key(&peer) {
                    self.table.dial_done(peer);
                } else {
                    if let Some((info, why)) = self.table.dial_failed(peer, now) {
                        self.left(info, why);
                    }
                    self.mesh_dial_failed(peer, now);
                }
            }
        }
        1
    }

    /// The live session of `peer` is gone: what it had not acknowledged goes again next time.
    pub(super) fn session_gone(&mut self, peer: PeerId) {
        if let Some(o) = self.out.get_mut(&peer) {
            o.sent = o.acked;
        }
        self.unsent.forget(peer);
        if let Some(i) = self.inbound.get_mut(&peer) {
            i.clear_ahead();
            i.resume_last = None;
        }
    }

    /// A session is up: keep it, or, when one is already live with the same incarnation, keep
    /// the one dialed by the lower id (both ends apply the same rule, so both keep the same).
    pub(super) fn up(&mut self, up: Up) {
        let Up { sid, hello, remote, local, dialer_is_me, outbox, cancel, liveness, mark } = up;
        let peer = hello.id;
        if dialer_is_me {
            self.table.dial_done(peer);
        }
        let loopback = remote.ip().is_loopback();
        let now = Instant::now();
        let new = Live {
            sid,
            incarnation: hello.incarnation,
            dialer_is_me,
            outbox,
            pending: Vec::new(),
            cancel,
            local,
            loopback,
            liveness,
            since: now,
            unsealed: Vec::new(),
            unsealed_bytes: 0,
            wanted: FastSet::default(),
            serving: Default::default(),
        };
        if let Some(cur) = self.sessions.get(&peer)
            && cur.incarnation == hello.incarnation
        {
            // Two dials that crossed come up close together: keep the one dialed by the lower id
            // (both sides choose the same). A session that comes up while ours has been up for
            // longer than a handshake may take means the peer no longer has ours (it moved to
            // another address, or its end timed out first; a peer with a live session does not
            // dial): ours is dead, and may stay silent for a while yet (a quiet keepalive waits
            // 15 s), so the newer one replaces it. Both sides see the same order and nearly the
            // same ages; should they straddle the limit, each closes one and both dial again.
            let established = now.saturating_duration_since(cur.since) > self.p.ctx.handshake_timeout;
            let dialer = |mine: bool| if mine { self.me } else { peer };
            let keep_new = established || dialer(dialer_is_me) <= dialer(cur.dialer_is_me);
            tracing::debug!(peer = %peer.short(), keep_new, established, "two sessions with one peer");
            if !keep_new {
                new.close(BYE_DUPLICATE);
                return;
            }
            let old = self.sessions.insert(peer, new).expect("present");
            old.close(BYE_DUPLICATE);
        } else if let Some(stale) = self.sessions.insert(peer, new) {
            stale.cancel.cancel();
        }
        let outcome = self.table.session_up(&hello, remote, Instant::now());
        self.mesh_reached(remote);
        if !matches!(outcome, UpOutcome::Resumed) {
            self.met(peer, &hello.name, &hello.props);
        }
        match outcome {
            UpOutcome::Joined(mut info) => {
                tracing::info!(peer = %peer.short(), name = %info.name, addr = %info.addr, "peer joined");
                self.describe_peer(&mut info);
                self.emit(Event::PeerJoined(info));
            }
            UpOutcome::Restarted { old, mut new } => {
                self.left(old, LeaveReason::Restarted);
                tracing::info!(peer = %peer.short(), name = %new.name, "peer joined again");
                self.describe_peer(&mut new);
                self.emit(Event::PeerJoined(new));
            }
            UpOutcome::Resumed => tracing::debug!(peer = %peer.short(), "session resumed"),
        }
        // The peer is connected in the table now: no dial to it starts; its handshake leaves
        // the crossing table. Its next connection may use the known dialers' reserve.
        drop(mark);
        self.p.ctx.slots.know(peer);
        let now = now_ms();
        self.turn.log_store(self.p.store.touch_member(peer, &hello.name, now));
        self.members.insert(peer, now);
        self.bound_members();
        self.start_stream(peer);
        self.offer(peer);
        self.mesh_up(peer, Instant::now());
    }

    /// Queue an encoded frame for `peer`, written at the end of the turn; false if it has no
    /// live session or was too slow.
    pub(super) fn push(&mut self, peer: PeerId, frame: impl Into<OutFrame>) -> bool {
        self.sessions.get_mut(&peer).is_some_and(|s| s.push(peer, frame.into(), &mut self.turn.touched))
    }

    /// Queue the frame of message `id` (a stream or catch-up frame) for `peer`, to be proved by
    /// the seals that follow it on the session (at the end of the turn, or now when many wait).
    pub(super) fn push_message(&mut self, peer: PeerId, frame: impl Into<OutFrame>, id: MsgId) -> bool {
        let Some(s) = self.sessions.get_mut(&peer) else { return false };
        let frame = frame.into();
        let len = frame.len();
        if !s.push(peer, frame, &mut self.turn.touched) {
            return false;
        }
        if s.note_unsealed(id, len) {
            self.seal_session(peer);
        }
        true
    }
}
