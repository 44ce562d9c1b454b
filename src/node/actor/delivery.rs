//! Delivery: our stream to each peer (numbers, the window, resends from the store), each peer's
//! stream to us (in order, once, with what arrives ahead held back), acknowledgements (delayed a
//! little so that one covers many), catch-up (offers, wants, messages by any author, held until
//! their author's own stream has caught up), and the store-and-forward bounds.

use std::collections::BTreeMap;
use std::time::Instant;

use super::{Actor, now_ms};
use crate::authorship::Proved;
use crate::codec::{self, Received};
use crate::event::{Event, Message};
use crate::id::{FastMap as HashMap, FastSet as HashSet, MsgId, PeerId};
use crate::protocol::Frame;

/// Ids per offer or want frame at most.
const IDS_PER_FRAME: usize = 4096;
/// Bytes of catch-up that may wait for a session's socket before more is sent (see `serve`).
const SERVE_BUDGET: usize = 4 << 20;
/// Members kept for store and forward while they have no session, at most (see
/// `bound_members`): a lecture hall's worth of absent students.
pub(super) const MAX_ABSENT_MEMBERS: usize = 256;
/// Messages from one author held back while an earlier one is missing, at most...
const REORDER_MAX: usize = 4096;
/// ...and bytes of them (each of the two buffers of a stream: ahead of a gap, and catch-up held
/// for its author's stream). Past either bound a message is dropped: its sender sends it again.
const REORDER_BYTES: usize = 4 << 20;

/// Our stream to one peer.
#[derive(Debug, Clone, Copy)]
pub(super) struct OutStream {
    /// Number the next message gets.
    pub(super) next: u64,
    /// Highest number the peer acknowledged (or that was dropped).
    pub(super) acked: u64,
    /// Highest number handed to the current session.
    pub(super) sent: u64,
    /// Last time the peer acknowledged something (or we last resent).
    pub(super) progress: Instant,
}

/// A peer's stream to us.
#[derive(Debug, Default)]
pub(super) struct InStream {
    /// Highest number delivered (everything below it too).
    pub(super) delivered: u64,
    /// `delivered` as of the last transaction that committed: where it goes back to when the
    /// current one fails (see `flush_with`).
    pub(super) saved: u64,
    /// Messages that arrived ahead of a missing one (with their bytes as received).
    pub(super) ahead: BTreeMap<u64, Proved>,
    /// Bytes held in `ahead`.
    pub(super) ahead_bytes: usize,
    /// From the `Resume` of the current session: the last number the peer had used for us.
    pub(super) resume_last: Option<u64>,
    /// Catch-up messages by this author (relayed by others), held back by author seq until its
    /// own stream has delivered everything older, so that its messages stay in order.
    pub(super) held: BTreeMap<u64, Proved>,
    /// Bytes held in `held`.
    pub(super) held_bytes: usize,
    /// When the oldest held message came.
    pub(super) held_since: Option<Instant>,
}

impl OutStream {
    /// A stream that has sent nothing yet.
    pub(super) fn new(now: Instant) -> OutStream {
        OutStream { next: 1, acked: 0, sent: 0, progress: now }
    }

    /// How many more numbers the current session may have unacknowledged, at a window of
    /// `window`.
    pub(super) fn room(&self, window: u64) -> u64 {
        window.saturating_sub(self.sent - self.acked)
    }

    /// The peer acknowledged everything up to `upto` (never past what was numbered): true when
    /// that acknowledged something new.
    pub(super) fn ack(&mut self, upto: u64, now: Instant) -> bool {
        let upto = upto.min(self.next - 1);
        if upto <= self.acked {
            return false;
        }
        self.acked = upto;
        self.sent = self.sent.max(upto);
        self.progress = now;
        true
    }
}

/// Where a message of a peer's stream stands against what is delivered.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Place {
    /// Delivered already (an acknowledgement was lost): acknowledge again.
    Repeat,
    /// The next one: deliver it.
    Next,
    /// Past a missing one: hold it.
    Ahead,
}

/// What a peer's `Resume` changed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub(super) struct Resumed {
    /// Its stream ends below what we delivered: we follow it back.
    pub(super) back: bool,
    /// It will never send numbers up to what we delivered now: delivered moved on.
    pub(super) moved: bool,
}

impl InStream {
    /// Has the peer's own stream delivered everything it sent us before this session?
    pub(super) fn caught_up(&self) -> bool {
        self.resume_last.is_some_and(|last| self.delivered >= last)
    }

    /// Where stream message `lseq` stands.
    pub(super) fn place(&self, lseq: u64) -> Place {
        if lseq <= self.delivered {
            Place::Repeat
        } else if lseq == self.delivered + 1 {
            Place::Next
        } else {
            Place::Ahead
        }
    }

    /// Keep a message that came ahead of a missing one; false (and dropped: its sender sends
    /// it again) when [`REORDER_MAX`] are held already.
    pub(super) fn hold_ahead(&mut self, lseq: u64, m: Proved) -> bool {
        if self.ahead.len() >= REORDER_MAX || self.ahead_bytes + m.raw.len() > REORDER_BYTES {
            return false;
        }
        let len = m.raw.len();
        if let Some(old) = self.ahead.insert(lseq, m) {
            self.ahead_bytes -= old.raw.len();
        }
        self.ahead_bytes += len;
        true
    }

    /// Keep a catch-up message by this author until its own stream has caught up; false (and
    /// dropped: the peer that offered it offers it again with its next session) when either
    /// bound is reached.
    pub(super) fn hold_catchup(&mut self, m: Proved) -> bool {
        if self.held.len() >= REORDER_MAX || self.held_bytes + m.raw.len() > REORDER_BYTES {
            return false;
        }
        let len = m.raw.len();
        self.held_since.get_or_insert_with(Instant::now);
        if let Some(old) = self.held.insert(m.env.id.seq, m) {
            self.held_bytes -= old.raw.len();
        }
        self.held_bytes += len;
        true
    }

    /// Everything held for catch-up, taken.
    pub(super) fn take_held(&mut self) -> BTreeMap<u64, Proved> {
        self.held_since = None;
        self.held_bytes = 0;
        std::mem::take(&mut self.held)
    }

    /// Forget what arrived ahead (the session that carried it ended).
    pub(super) fn clear_ahead(&mut self) {
        self.ahead.clear();
        self.ahead_bytes = 0;
    }

    /// The held message that is next in order now, taken, `delivered` moved past it.
    pub(super) fn take_next(&mut self) -> Option<Proved> {
        let next = self.delivered + 1;
        let m = self.ahead.remove(&next)?;
        self.ahead_bytes -= m.raw.len();
        self.delivered = next;
        Some(m)
    }

    /// The peer's `Resume` of a new session: it will never again send numbers up to `done`, and
    /// had used numbers up to `last`.
    pub(super) fn resume(&mut self, done: u64, last: u64) -> Resumed {
        self.resume_last = Some(last);
        let mut r = Resumed::default();
        if last < self.delivered {
            // It lost the end of its history (a new history under the same identity, say).
            // What we have stays (by message id); its numbers count again from where it is, or
            // we would take its next messages for ones we have and drop them.
            self.delivered = last;
            self.clear_ahead();
            r.back = true;
        }
        if done > self.delivered {
            self.delivered = done;
            self.ahead.retain(|k, _| *k > done);
            self.ahead_bytes = self.ahead.values().map(|m| m.raw.len()).sum();
            r.moved = true;
        }
        r
    }
}

/// Acknowledgements: the last sent per stream, and those delayed by up to `ACK_DELAY` (one frame
/// covers many deliveries) with when they are due.
#[derive(Default)]
pub(super) struct Acks {
    pub(super) later: HashMap<PeerId, u64>,
    pub(super) due: Option<Instant>,
    pub(super) sent: HashMap<PeerId, u64>,
}

impl Actor {
    pub(super) fn send_ack(&mut self, peer: PeerId, upto: u64) {
        if let Ok(f) = codec::encode(&Frame::Ack(upto)) {
            self.push(peer, f);
        }
        self.acks.sent.insert(peer, upto);
    }

    /// Send the delayed acknowledgements.
    pub(super) fn send_acks(&mut self) {
        self.acks.due = None;
        for (peer, upto) in std::mem::take(&mut self.acks.later) {
            self.send_ack(peer, upto);
        }
    }

    /// A new session: tell the peer where our stream to it resumes, and send what it lacks.
    pub(super) fn start_stream(&mut self, peer: PeerId) {
        let o = self.out.entry(peer).or_insert_with(|| OutStream::new(Instant::now()));
        // Nothing sent beyond what is acknowledged (every session of a room that is forming):
        // nothing is queued, no need to ask the database.
        let first = if o.next - 1 <= o.acked { None } else { self.p.store.first_pending(peer) };
        let o = self.out.get_mut(&peer).expect("just inserted");
        // Everything below the first queued message is acknowledged or was dropped.
        let done = first.map_or(o.next - 1, |f| f - 1).max(o.acked);
        o.acked = done;
        o.sent = done;
        o.progress = Instant::now();
        let last = o.next - 1;
        if let Ok(f) = codec::encode(&Frame::Resume { done, last }) {
            self.push(peer, f);
        }
        self.pump(peer);
    }

    /// Send queued messages to `peer`, as far as its window allows.
    /// The frames kept in `unsent` go from memory; the numbers before them (and all of them
    /// when nothing is kept) are read from the store.
    pub(super) fn pump(&mut self, peer: PeerId) {
        if !self.sessions.contains_key(&peer) {
            return;
        }
        let window = self.p.config.window as u64;
        loop {
            let Some(o) = self.out.get(&peer).copied() else { return };
            let room = o.room(window);
            if room == 0 || o.sent + 1 >= o.next {
                return;
            }
            let kept = self.unsent.first_after(peer, o.sent);
            if kept == Some(o.sent + 1) {
                let mut sent = o.sent;
                let mut pushed = true;
                while sent - o.sent < room
                    && let Some((seq, f)) = self.unsent.take(peer, sent + 1)
                {
                    pushed = self.push_message(peer, f, MsgId { author: self.me, seq });
                    if !pushed {
                        break;
                    }
                    sent += 1;
                }
                if let Some(o) = self.out.get_mut(&peer) {
                    o.sent = sent;
                }
                if !pushed {
                    return;
                }
                continue;
            }
            // From the store: up to the kept run, or as far as the window allows.
            let limit = kept.map_or(room, |k| room.min(k - o.sent - 1));
            let batch = self.p.store.pending(peer, o.sent, limit as usize);
            if batch.is_empty() {
                return;
            }
            for (lseq, env) in batch {
                let Ok(id) = codec::envelope_id(&env) else { return };
                let Ok(f) = codec::message_frame(lseq, env.into()) else { return };
                if !self.push_message(peer, f, id) {
                    return;
                }
                if let Some(o) = self.out.get_mut(&peer) {
                    o.sent = lseq;
                }
            }
        }
    }

    /// Offer the peer the room's catch-up set (exercises and recent chat).
    pub(super) fn offer(&mut self, peer: PeerId) {
        let ids = self.p.store.catchup_ids(self.p.config.catchup_chats, self.p.config.catchup_max);
        for chunk in ids.chunks(IDS_PER_FRAME) {
            if let Ok(f) = codec::encode(&Frame::Offer(chunk.to_vec())) {
                self.push(peer, f);
            }
        }
    }

    pub(super) fn frame(&mut self, peer: PeerId, frame: Received) {
        // A message reaches the actor proved by its seal (the session's `Verifier`), or not at
        // all.
        let frame = match frame {
            Received::Message { lseq, env, raw, proof: Some(batch) } => {
                return self.stream_message(peer, lseq, Proved { env, raw, batch });
            }
            Received::CatchUp { env, raw, proof: Some(batch) } => {
                return self.catch_up(peer, Proved { env, raw, batch });
            }
            Received::Message { .. } | Received::CatchUp { .. } => {
                return tracing::debug!(peer = %peer.short(), "a message without its seal dropped");
            }
            Received::Other(f) => f,
        };
        match frame {
            Frame::Ack(upto) => {
                let Some(o) = self.out.get_mut(&peer) else { return };
                if o.ack(upto, Instant::now()) {
                    // Forgotten on disk lazily (see `save_acked`): losing that to a crash only
                    // resends what the peer already has, and it drops repeats.
                    self.unsaved.acked.insert(peer);
                    self.pump(peer);
                }
            }
            Frame::Resume { done, last } => {
                let i = self.inbound.entry(peer).or_default();
                let before = i.delivered;
                let r = i.resume(done, last);
                tracing::debug!(peer = %peer.short(), delivered = before, done, last, "stream resumes");
                if r.back {
                    tracing::warn!(peer = %peer.short(), delivered = before, last, "peer's stream went back; following it");
                    self.acks.sent.insert(peer, last);
                }
                if r.moved {
                    self.drain_ahead(peer);
                }
                if r.back || r.moved {
                    self.save_inbound(peer);
                }
                self.release_held(peer, false);
            }
            Frame::Offer(ids) => self.offered(peer, ids),
            Frame::Want(ids) => self.wanted(peer, ids),
            Frame::Peers(ads) => self.gossip_in(peer, ads),
            other => tracing::debug!(peer = %peer.short(), frame = ?other, "unexpected frame dropped"),
        }
    }

    /// `peer` offers these room messages: want those we lack, and remember which we asked it
    /// for (a catch-up message it sends that we did not ask for is dropped).
    fn offered(&mut self, peer: PeerId, ids: Vec<MsgId>) {
        let Some(s) = self.sessions.get_mut(&peer) else { return };
        let room = self.p.config.catchup_max.saturating_sub(s.wanted.len());
        let want: Vec<MsgId> =
            ids.into_iter().filter(|id| !self.p.store.has(id) && !s.wanted.contains(id)).take(room).collect();
        s.wanted.extend(want.iter().copied());
        for chunk in want.chunks(IDS_PER_FRAME) {
            if let Ok(f) = codec::encode(&Frame::Want(chunk.to_vec())) {
                self.push(peer, f);
            }
        }
    }

    /// `peer` wants these of the messages we offered: each once, and only what we offer (the
    /// room's catch-up set); sent with the seals that prove them, as its socket takes them.
    fn wanted(&mut self, peer: PeerId, ids: Vec<MsgId>) {
        let (chats, max) = (self.p.config.catchup_chats, self.p.config.catchup_max);
        let Some(s) = self.sessions.get_mut(&peer) else { return };
        let mut seen: HashSet<MsgId> = s.serving.iter().copied().collect();
        for id in ids {
            if s.serving.len() >= max {
                break;
            }
            if seen.insert(id) && self.p.store.offered(&id, chats, max) {
                s.serving.push_back(id);
            }
        }
        self.serve(peer);
    }

    /// Send `peer` more of the catch-up it asked for, while what waits for its socket stays
    /// under [`SERVE_BUDGET`] (the rest goes on the tick, once the socket took this): a `Want`
    /// of thousands of large answers is sent at the pace the peer reads, never queued whole.
    pub(super) fn serve(&mut self, peer: PeerId) {
        let mut sent = 0usize;
        loop {
            let Some(s) = self.sessions.get_mut(&peer) else { return };
            if s.outbox.waiting_bytes() + sent >= SERVE_BUDGET {
                return;
            }
            let Some(id) = s.serving.pop_front() else { return };
            let Some(env) = self.p.store.room_envelope(&id) else { continue };
            let Ok(f) = codec::catchup_frame(env.into()) else { continue };
            let len = f.len();
            if !self.push_message(peer, f, id) {
                // Over what the socket may hold now: later.
                if let Some(s) = self.sessions.get_mut(&peer) {
                    s.serving.push_front(id);
                }
                return;
            }
            sent += len;
        }
    }

    /// On the tick: go on with the catch-up the sessions asked for.
    pub(super) fn serve_all(&mut self) {
        let waiting: Vec<PeerId> =
            self.sessions.iter().filter(|(_, s)| !s.serving.is_empty()).map(|(p, _)| *p).collect();
        for peer in waiting {
            self.serve(peer);
        }
    }

    /// A room message from `peer`'s store (any author), outside the streams, proved by its
    /// author's seal.
    pub(super) fn catch_up(&mut self, peer: PeerId, m: Proved) {
        let asked = self.sessions.get_mut(&peer).is_some_and(|s| s.wanted.remove(&m.env.id));
        if !asked {
            tracing::debug!(peer = %peer.short(), id = %m.env.id.short(), "a catch-up message we did not ask for dropped");
            return;
        }
        if m.env.to.is_some() {
            tracing::debug!(peer = %peer.short(), "private message offered as catch-up dropped");
            return;
        }
        let author = m.env.id.author;
        // An author we have met may still have older messages for us in its own stream:
        // hold its newer ones until that stream has caught up (or for `hold_catchup`).
        let wait = author != self.me
            && self.members.contains_key(&author)
            && !self.inbound.get(&author).is_some_and(InStream::caught_up);
        if !wait {
            return self.deliver(m, "catch-up");
        }
        let i = self.inbound.entry(author).or_default();
        let id = m.env.id;
        if i.hold_catchup(m) {
            tracing::trace!(id = %id.short(), "catch-up held until its author's stream catches up");
        } else {
            tracing::debug!(id = %id.short(), "too much catch-up held for its author: dropped");
        }
    }

    /// Deliver the catch-up messages held for `author`, oldest first, once its own stream has
    /// caught up (or, with `force`, because it stayed away too long).
    pub(super) fn release_held(&mut self, author: PeerId, force: bool) {
        let Some(i) = self.inbound.get_mut(&author) else { return };
        if i.held.is_empty() || !(force || i.caught_up()) {
            return;
        }
        let held = i.take_held();
        tracing::debug!(author = %author.short(), n = held.len(), force, "releasing held catch-up");
        for (_, m) in held {
            self.deliver(m, "catch-up");
        }
    }

    /// Note how far `peer`'s stream is delivered: saved, then acknowledged, at the end of the turn.
    pub(super) fn save_inbound(&mut self, peer: PeerId) {
        let d = self.inbound.get(&peer).map_or(0, |i| i.delivered);
        self.turn.acks.insert(peer, d);
    }

    /// Message number `lseq` of `peer`'s stream to us.
    pub(super) fn stream_message(&mut self, peer: PeerId, lseq: u64, m: Proved) {
        if m.env.id.author != peer {
            tracing::debug!(peer = %peer.short(), author = %m.env.id.author.short(), "message with another author dropped");
            return;
        }
        let i = self.inbound.entry(peer).or_default();
        match i.place(lseq) {
            Place::Repeat => {
                self.turn.acks.insert(peer, i.delivered);
                return;
            }
            Place::Ahead => {
                i.hold_ahead(lseq, m);
                return;
            }
            Place::Next => i.delivered = lseq,
        }
        // The usual case, nothing held back behind it: no more lookups of the stream (what
        // `drain_ahead`, `save_inbound` and `release_held` would find is nothing to do).
        let alone = i.ahead.is_empty() && i.held.is_empty();
        self.deliver(m, "stream");
        if alone {
            self.turn.acks.insert(peer, lseq);
            return;
        }
        self.drain_ahead(peer);
        self.save_inbound(peer);
        self.release_held(peer, false);
    }

    /// Deliver what was held ahead and is in order now.
    pub(super) fn drain_ahead(&mut self, peer: PeerId) {
        while let Some(m) = self.inbound.get_mut(&peer).and_then(InStream::take_next) {
            self.deliver(m, "stream");
        }
    }

    /// Store a received message (its bytes as they came), with the batch that proves it, and,
    /// the first time only, report it.
    pub(super) fn deliver(&mut self, m: Proved, how: &'static str) {
        let Proved { env, raw, batch } = m;
        if let Err(why) = crate::limits::check(&env) {
            // Over its kind's limit: an honest peer never sends it. Its stream goes on past it.
            tracing::debug!(author = %env.id.author.short(), %why, "a message over its size limit dropped");
            return;
        }
        if env.to.is_some_and(|to| to != self.me) {
            tracing::debug!(author = %env.id.author.short(), "message for someone else dropped");
            return;
        }
        let at = self.turn_now_ms();
        let stored = self.turn.log_store(self.p.store.insert(&env, &raw, at, true));
        if let Some(Some(_)) = stored
            && !self.turn.kept.as_ref().is_some_and(|k| std::sync::Arc::ptr_eq(k, &batch))
        {
            // One batch proves many messages of a turn: kept once.
            self.turn.log_store(self.p.store.keep_batch(&batch));
            self.turn.kept = Some(batch.clone());
        }
        // Catch-up is offered once per session: if this turn fails, it is stored again.
        if how != "stream" && stored != Some(None) {
            self.turn.caught.push(Proved { env: env.clone(), raw, batch });
        }
        match stored {
            None => return,
            Some(None) => {
                tracing::trace!(id = %env.id.short(), how, "duplicate dropped");
                return;
            }
            Some(Some(_)) => {}
        }
        let author = env.id.author;
        let mut m = Message::from_envelope(env, false);
        // Signed by its author: the name it went by then. A peer online goes by its hello's.
        match self.table.get(&author) {
            // Heard by beacon or gossip only, no hello yet: no name of its own to go by.
            Some(e) if e.name.is_empty() => self.names.see(author, &m.from_name),
            Some(e) if e.name != m.from_name => m.from_name = e.name.clone(),
            Some(_) => {}
            None => self.names.see(author, &m.from_name),
        }
        self.describe(&mut m);
        self.exercises.record(&m);
        self.emit(Event::Message(m));
    }

    /// Apply the store-and-forward bounds, saying in the log what is dropped.
    pub(super) fn purge(&mut self) {
        let before = now_ms().saturating_sub(self.p.config.keep_for.as_millis() as u64);
        let Some(dropped) = self.turn.log_store(self.p.store.purge(before, self.p.config.max_pending_per_peer)) else {
            return;
        };
        for (peer, n) in dropped {
            tracing::warn!(peer = %peer.short(), dropped = n, "messages kept for an absent peer were dropped (too old or too many)");
            self.unsent.forget(peer);
            // The dropped messages may have been the last record of how far the stream went.
            self.unsaved.out.insert(peer);
        }
        let now = now_ms();
        let live: Vec<PeerId> = self.sessions.keys().copied().collect();
        for peer in live {
            let name = self.table.get(&peer).map(|e| e.name.clone()).unwrap_or_default();
            self.turn.log_store(self.p.store.touch_member(peer, &name, now));
            self.members.insert(peer, now);
        }
        self.members.retain(|_, seen| *seen >= before);
        self.bound_members();
    }

    /// Keep at most [`MAX_ABSENT_MEMBERS`] members that have no session now, the most recently
    /// seen: each one costs every room message a place in the store's outbox. The others are
    /// forgotten, with what was kept for them (a member forgotten that comes back is a member
    /// again at once, and gets catch-up as a late joiner does).
    pub(super) fn bound_members(&mut self) {
        let absent = self.members.len().saturating_sub(self.sessions.len());
        if absent <= MAX_ABSENT_MEMBERS {
            return;
        }
        let mut old: Vec<(u64, PeerId)> =
            self.members.iter().filter(|(p, _)| !self.sessions.contains_key(p)).map(|(p, s)| (*s, *p)).collect();
        old.sort_unstable();
        let gone = &old[..absent - MAX_ABSENT_MEMBERS];
        tracing::warn!(
            forgotten = gone.len(),
            kept = MAX_ABSENT_MEMBERS,
            "more absent members than are kept: the longest unseen are forgotten, with their queued messages"
        );
        for &(_, peer) in gone {
            self.members.remove(&peer);
            // Its last sight set to the epoch: not a member after a restart either.
            let name = self.table.get(&peer).map(|e| e.name.clone()).unwrap_or_default();
            self.turn.log_store(self.p.store.touch_member(peer, &name, 0));
            if let Some(o) = self.out.get_mut(&peer) {
                o.acked = o.next - 1;
                o.sent = o.acked;
                let upto = o.acked;
                self.turn.log_store(self.p.store.acked(peer, upto));
                self.unsaved.out.insert(peer);
            }
            self.unsent.forget(peer);
        }
    }

    /// Resend what a live peer has not acknowledged for a while (a frame lost with a session we
    /// replaced, say). Duplicates are harmless: the receiver drops them.
    pub(super) fn resend_stale(&mut self, now: Instant) {
        let stale: Vec<PeerId> = self
            .out
            .iter()
            .filter(|(p, o)| {
                o.sent > o.acked
                    && now.duration_since(o.progress) > self.p.config.resend_after
                    && self.sessions.contains_key(p)
            })
            .map(|(p, _)| *p)
            .collect();
        for peer in stale {
            tracing::debug!(peer = %peer.short(), "resending unacknowledged messages");
            if let Some(o) = self.out.get_mut(&peer) {
                o.sent = o.acked;
                o.progress = now;
            }
            self.pump(peer);
        }
    }

    /// Catch-up held for an author that has not come back in time: deliver it anyway.
    pub(super) fn release_overdue(&mut self, now: Instant) {
        let overdue: Vec<PeerId> = self
            .inbound
            .iter()
            .filter(|(_, i)| i.held_since.is_some_and(|t| now.duration_since(t) > self.p.config.hold_catchup))
            .map(|(p, _)| *p)
            .collect();
        for author in overdue {
            self.release_held(author, true);
        }
    }

    /// Store again the catch-up that a failed turn could not store.
    pub(super) fn retry_caught(&mut self) {
        for m in std::mem::take(&mut self.retry) {
            self.deliver(m, "catch-up again");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::protocol::Body;
    use bytes::Bytes;

    fn msg(seq: u64) -> Proved {
        let env = crate::protocol::Envelope {
            id: MsgId { author: PeerId([1; 16]), seq },
            author_name: "a".into(),
            sent_ms: 0,
            to: None,
            body: Body::Chat { text: format!("m{seq}") },
            files: vec![],
        };
        let raw = codec::encode(&env).unwrap();
        let keys = crate::crypto::StaticKeys::generate();
        let batch = std::sync::Arc::new(crate::authorship::sign_batch(&keys, "r", seq, &[crate::merkle::leaf(&raw)]));
        Proved { env, raw, batch }
    }

    #[test]
    fn an_out_stream_counts_its_window_and_takes_acknowledgements_once() {
        let now = Instant::now();
        let mut o = OutStream::new(now);
        assert_eq!(o.room(4), 4);
        o.next = 11;
        o.sent = 6;
        assert_eq!(o.room(4), 0, "six sent, none acknowledged, a window of four");
        assert!(o.ack(3, now));
        assert_eq!((o.acked, o.sent, o.room(4)), (3, 6, 1));
        assert!(!o.ack(3, now), "the same acknowledgement again changes nothing");
        assert!(!o.ack(2, now), "an older one neither");
        assert!(o.ack(99, now), "never past what was numbered");
        assert_eq!((o.acked, o.sent), (10, 10));
    }

    #[test]
    fn an_in_stream_delivers_in_order_once_whatever_the_arrival_order() {
        let mut i = InStream::default();
        let mut delivered = Vec::new();
        for lseq in [3u64, 1, 1, 5, 2, 4, 2] {
            match i.place(lseq) {
                Place::Repeat => {}
                Place::Ahead => assert!(i.hold_ahead(lseq, msg(lseq))),
                Place::Next => {
                    i.delivered = lseq;
                    delivered.push(lseq);
                    while let Some(m) = i.take_next() {
                        delivered.push(m.env.id.seq);
                    }
                }
            }
        }
        assert_eq!(delivered, [1, 2, 3, 4, 5]);
        assert!(i.ahead.is_empty());
        assert_eq!(i.place(5), Place::Repeat);
        assert_eq!(i.place(6), Place::Next);
        assert_eq!(i.place(8), Place::Ahead);
    }

    #[test]
    fn messages_ahead_are_held_up_to_a_bound() {
        let mut i = InStream::default();
        for lseq in 2..(2 + REORDER_MAX as u64) {
            assert!(i.hold_ahead(lseq, msg(lseq)));
        }
        assert!(!i.hold_ahead(REORDER_MAX as u64 + 5, msg(1)), "one more is dropped: its sender resends it");
        assert_eq!(i.ahead.len(), REORDER_MAX);
    }

    #[test]
    fn what_is_held_is_bounded_in_bytes_too() {
        let big = |seq: u64| {
            let mut m = msg(seq);
            m.raw = Bytes::from(vec![0u8; 1 << 20]);
            m
        };
        let mut i = InStream::default();
        let kept = (2..10).filter(|&l| i.hold_ahead(l, big(l))).count();
        assert_eq!(kept, REORDER_BYTES >> 20);
        assert_eq!(i.ahead_bytes, REORDER_BYTES);
        i.delivered = 1;
        assert!(i.take_next().is_some());
        assert!(i.hold_ahead(20, big(20)), "room again once one is delivered");
        let held = (1..10).filter(|&s| i.hold_catchup(big(s))).count();
        assert_eq!(held, REORDER_BYTES >> 20);
        assert_eq!(i.take_held().len(), held);
        assert_eq!(i.held_bytes, 0);
    }

    #[test]
    fn a_resume_moves_the_stream_on_or_back() {
        let mut i = InStream { delivered: 5, ..Default::default() };
        assert!(!i.caught_up(), "no resume yet");
        i.hold_ahead(9, msg(9));
        i.hold_ahead(12, msg(12));
        // The peer dropped 6..=10 (store-and-forward bounds): they never come.
        assert_eq!(i.resume(10, 12), Resumed { back: false, moved: true });
        assert_eq!(i.delivered, 10);
        assert_eq!(i.ahead.keys().copied().collect::<Vec<_>>(), [12]);
        assert!(!i.caught_up());
        // A peer that lost its history: its stream starts again below what we had.
        assert_eq!(i.resume(0, 3), Resumed { back: true, moved: false });
        assert_eq!(i.delivered, 3);
        assert!(i.ahead.is_empty() && i.caught_up());
        assert_eq!(i.resume(3, 3), Resumed::default(), "nothing new");
    }
}
