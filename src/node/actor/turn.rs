//! A turn of the actor and its commit: what a turn holds back until the store has made its
//! writes durable (replies to senders, events, our messages, acknowledgements), the commit that
//! releases them, and a failed turn undone in memory.
//!
//! Why hold back: an id a caller learns, an event a user sees, a message that leaves and an
//! acknowledgement a peer gets all claim something is on disk; each waits for the commit that
//! makes it so. A failed commit (a full disk) rolls the turn back whole.

use std::time::{Duration, Instant};

use bytes::Bytes;

use super::{Actor, now_ms};
use crate::codec::{self};
use crate::error::Error;
use crate::event::Event;
use crate::exercises::Exercises;
use crate::id::{FastMap as HashMap, FastSet as HashSet, MsgId, PeerId};

/// An acknowledgement waits this long for more deliveries to cover (see `commit_turn`).
const ACK_DELAY: Duration = Duration::from_millis(20);
/// How often the delivered positions of the incoming streams are written (see `commit_turn`).
const IN_SAVE_EVERY: Duration = Duration::from_secs(1);
/// Catch-up messages kept to store again after a turn that failed, at most (beyond: the peers
/// offer them again with their next session).
const RETRY_MAX: usize = 10_000;

/// A `send` command's reply, and what to answer once the turn is committed.
pub(super) enum HeldReply {
    One(tokio::sync::oneshot::Sender<Result<MsgId, Error>>, Result<MsgId, Error>),
    Batch(tokio::sync::oneshot::Sender<Vec<Result<MsgId, Error>>>, Vec<Result<MsgId, Error>>),
}

impl HeldReply {
    /// Answer as held (the turn committed).
    pub(super) fn send(self) {
        match self {
            HeldReply::One(tx, r) => drop(tx.send(r)),
            HeldReply::Batch(tx, r) => drop(tx.send(r)),
        }
    }

    /// The commit failed: nothing of this reply is stored.
    pub(super) fn fail(self, e: &Error) {
        let err = || Err(Error::Storage(e.to_string()));
        match self {
            HeldReply::One(tx, _) => drop(tx.send(err())),
            HeldReply::Batch(tx, r) => drop(tx.send(r.iter().map(|_| err()).collect())),
        }
    }
}

/// Does an acknowledgement up to `upto` go at once (it covers a quarter of the sender's `window`
/// since the last one sent, `sent`), or wait up to [`ACK_DELAY`] for more deliveries to cover?
fn ack_at_once(upto: u64, sent: u64, window: u64) -> bool {
    upto >= sent + (window / 4).max(1)
}

/// What the current turn holds back until it commits.
#[derive(Default)]
pub(super) struct Turn {
    /// Events for the application.
    pub(super) events: Vec<Event>,
    /// Acknowledgements: how far each peer's stream is delivered.
    pub(super) acks: HashMap<PeerId, u64>,
    /// Replies to `send` commands.
    pub(super) replies: Vec<HeldReply>,
    /// Our messages: (peer, stream number, our message number, envelope).
    pub(super) frames: Vec<(PeerId, u64, u64, Bytes)>,
    /// Our messages of this turn, (number, envelope): signed as batches before it commits.
    pub(super) own: Vec<(u64, Bytes)>,
    /// The batch last kept with a message received this turn (one seal proves many).
    pub(super) kept: Option<std::sync::Arc<crate::authorship::Batch>>,
    /// The streams that numbered messages this turn, with their `next` before it.
    pub(super) numbered: HashMap<PeerId, u64>,
    /// Catch-up messages stored this turn: stored again if it fails.
    pub(super) caught: Vec<crate::authorship::Proved>,
    /// A store call of this turn failed: the turn is rolled back, not committed.
    pub(super) failed: bool,
    /// The wall clock as of this turn (read once per turn, when first needed: a turn of a
    /// stream is hundreds of messages, and a clock read per message was ≈ 1.5 % of its CPU).
    pub(super) now_ms: Option<u64>,
    /// Sessions with frames of this turn to write at its end.
    pub(super) touched: Vec<PeerId>,
}

/// Counters changed in memory and written with a later turn rather than at once.
pub(super) struct Unsaved {
    /// Streams whose counters changed this turn (saved once, at the end of the turn).
    pub(super) out: HashSet<PeerId>,
    /// Streams with acknowledgements not yet applied to the store's outbox: done in a turn that
    /// writes anyway, or on the tick, so that a turn of acknowledgements alone costs no commit.
    pub(super) acked: HashSet<PeerId>,
    /// Delivered positions of incoming streams whose messages are committed, not yet written...
    pub(super) inbound: HashMap<PeerId, u64>,
    /// ...and when they were last written.
    pub(super) inbound_at: Instant,
}

impl Unsaved {
    pub(super) fn new(now: Instant) -> Unsaved {
        Unsaved { out: Default::default(), acked: Default::default(), inbound: Default::default(), inbound_at: now }
    }
}

impl Turn {
    /// A store write's result, logged when it failed (the turn then fails).
    pub(super) fn log_store<T>(&mut self, r: Result<T, Error>) -> Option<T> {
        self.checked(r).map_err(|e| tracing::error!(error = %e, "history")).ok()
    }

    /// A store write's result; an error fails the turn: nothing of it is kept, acknowledged,
    /// sent or reported (see `flush_with`).
    pub(super) fn checked<T>(&mut self, r: Result<T, Error>) -> Result<T, Error> {
        if r.is_err() {
            self.failed = true;
        }
        r
    }
}

impl Actor {
    /// The wall clock in ms, as of this turn.
    pub(super) fn turn_now_ms(&mut self) -> u64 {
        *self.turn.now_ms.get_or_insert_with(now_ms)
    }

    /// End of a batch of work: make it durable, then tell the user and acknowledge.
    /// Forget acknowledged messages in the outbox table (and save those streams' counters).
    pub(super) fn save_acked(&mut self) {
        for peer in std::mem::take(&mut self.unsaved.acked) {
            if let Some(o) = self.out.get(&peer) {
                self.turn.log_store(self.p.store.acked(peer, o.acked));
                self.unsaved.out.insert(peer);
            }
        }
    }

    pub(super) fn flush(&mut self) {
        self.flush_with(false);
    }

    /// `flush`, with `last`: write every counter now (the node is stopping).
    pub(super) fn flush_with(&mut self, last: bool) {
        self.commit_turn(last);
        self.write_pending();
    }

    /// Write every session's frames of this turn: one non-blocking write each, as few Noise
    /// records as they fit in.
    pub(super) fn write_pending(&mut self) {
        let touched = std::mem::take(&mut self.turn.touched);
        // The messages of the turn first get their seals, behind them.
        for &peer in &touched {
            if self.sessions.get(&peer).is_some_and(|s| !s.unsealed.is_empty()) {
                self.seal_session(peer);
            }
        }
        for peer in touched {
            if let Some(s) = self.sessions.get_mut(&peer) {
                s.write_pending(peer);
            }
        }
        self.turn.kept = None;
    }

    /// Commit the turn; then release what waited for it (replies, events, our messages, the
    /// acknowledgements).
    pub(super) fn commit_turn(&mut self, last: bool) {
        let now = Instant::now();
        // The delivered positions of the incoming streams: at most once a second, not once per
        // turn (a receiver's turn is often one message: the counter was a third of its
        // transaction). They only say where a stream resumes after a restart. A position is
        // kept here only once its messages are committed, and acknowledgements go out only
        // after that commit, so a position written late never claims a message that is not
        // stored. After a crash the written position may be behind: the sender's `Resume`
        // (its own acknowledged position) moves it on, and what the sender sends again from
        // there is dropped as already stored (one message per author and number).
        let save_in =
            !self.unsaved.inbound.is_empty() && (last || now.duration_since(self.unsaved.inbound_at) >= IN_SAVE_EVERY);
        // Acknowledgements ride along with a turn that commits anyway.
        if !self.unsaved.acked.is_empty() && (self.p.store.wrote() || !self.unsaved.out.is_empty() || save_in || last) {
            self.save_acked();
        }
        // The stream counters of this turn, once per stream rather than once per message.
        for peer in std::mem::take(&mut self.unsaved.out) {
            if let Some(o) = self.out.get(&peer) {
                self.turn.log_store(self.p.store.save_out_stream(peer, o.next, o.acked));
            }
        }
        if save_in {
            for (peer, delivered) in &self.unsaved.inbound {
                self.turn.log_store(self.p.store.save_in_stream(*peer, *delivered));
            }
        }
        // Our messages of the turn are signed, their batches stored with them.
        if !self.turn.own.is_empty() && !self.turn.failed {
            self.sign_turn();
        }
        // A turn is kept whole or not at all: a failed write (a full disk, say) rolls it back.
        let done = if std::mem::take(&mut self.turn.failed) {
            self.p.store.rollback();
            Err(Error::Storage("a write failed".into()))
        } else {
            self.p.store.commit()
        };
        if let Err(e) = done {
            return self.turn_failed(&e);
        }
        if save_in {
            self.unsaved.inbound_at = now;
            self.unsaved.inbound.clear();
        }
        self.turn.numbered.clear();
        self.turn.caught.clear();
        self.sealing.signed_now = 0;
        // Durable now: the callers may learn their messages' ids, and our messages may leave
        // (never before they are stored: a number a peer has seen is never given to another
        // message, even when the turn fails or the process dies).
        for reply in self.turn.replies.drain(..) {
            reply.send();
        }
        self.send_events();
        let window = self.p.config.window as u64;
        let mut frames = std::mem::take(&mut self.turn.frames);
        for (peer, lseq, seq, env) in frames.drain(..) {
            // Without a session the outbox table has it, for the next one.
            let (Some(o), Some(s)) = (self.out.get_mut(&peer), self.sessions.get_mut(&peer)) else { continue };
            if o.sent + 1 == lseq && o.sent - o.acked < window {
                if let Ok(f) = codec::message_frame(lseq, env) {
                    let len = f.len();
                    if s.push(peer, f, &mut self.turn.touched) {
                        o.sent = lseq;
                        if s.note_unsealed(MsgId { author: self.me, seq }, len) {
                            self.seal_session(peer);
                        }
                    }
                }
            } else if self.unsent.fits(peer, lseq, env.len())
                && let Ok(f) = codec::message_frame(lseq, env)
            {
                // The window is full: `pump` sends it when the peer acknowledges. It may wait
                // long: in bytes of its own, not holding on to the arena's chunk.
                self.unsent.keep(peer, lseq, seq, f.to_bytes());
            }
        }
        // Kept for its capacity.
        self.turn.frames = frames;
        // Delayed acknowledgements: a stream acknowledged within the window's quarter waits up
        // to ACK_DELAY, so that a burst (or a teacher's fan-out followed by the next) costs the
        // sender one `Ack` per peer rather than one per turn, and the sender's handling of
        // acknowledgements does not compete with the delivery of what follows. The sender's
        // window (4096) and resend timer (3 s) are far above what this holds back.
        let window = self.p.config.window as u64;
        for (peer, upto) in std::mem::take(&mut self.turn.acks) {
            if let Some(i) = self.inbound.get_mut(&peer) {
                i.saved = upto;
            }
            self.unsaved.inbound.insert(peer, upto);
            let sent = self.acks.sent.get(&peer).copied().unwrap_or(0);
            if ack_at_once(upto, sent, window) {
                self.acks.later.remove(&peer);
                self.send_ack(peer, upto);
            } else {
                self.acks.later.insert(peer, upto);
                self.acks.due.get_or_insert(now + ACK_DELAY);
            }
        }
    }

    /// The turn's writes were rolled back: undo what it did in memory, so that what it received
    /// comes again (nothing of it was acknowledged) and what it sent is refused (nothing of it
    /// left), and say so once in a while.
    pub(super) fn turn_failed(&mut self, e: &Error) {
        tracing::error!(error = %e, "cannot save the history; nothing is acknowledged or sent until it works again");
        self.p.ctx.warner.warn(crate::guard::WarnKind::Storage, std::net::Ipv4Addr::UNSPECIFIED.into(), || {
            "cannot save messages on this computer (is the disk full?); nothing is lost, \
             messages arrive once there is space again: free some disk space"
                .to_string()
        });
        // Received: back to the last committed position; the senders resend what they do not
        // see acknowledged.
        for (peer, _) in self.turn.acks.drain() {
            if let Some(i) = self.inbound.get_mut(&peer) {
                i.delivered = i.saved;
            }
        }
        // Caught up: stored again on the tick (the peer that offered them will not resend them).
        let room = RETRY_MAX.saturating_sub(self.retry.len());
        if self.turn.caught.len() > room {
            tracing::warn!(
                dropped = self.turn.caught.len() - room,
                "catch-up not stored; offered again with the next session"
            );
        }
        let caught: Vec<_> = self.turn.caught.drain(..).take(room).collect();
        self.retry.extend(caught);
        // Sent: nothing left, so the numbers are given again; our batches were not stored.
        self.turn.frames.clear();
        self.turn.own.clear();
        self.sealing.turn_failed();
        for (peer, next) in self.turn.numbered.drain() {
            if let Some(o) = self.out.get_mut(&peer) {
                o.next = next;
            }
        }
        for reply in self.turn.replies.drain(..) {
            reply.fail(e);
        }
        // Messages are reported once stored: these were not (they come again, or were refused).
        let before = self.turn.events.len();
        self.turn.events.retain(|e| !matches!(e, Event::Message(_)));
        if self.turn.events.len() != before {
            let mut exercises = Exercises::default();
            for s in self.p.store.exercises() {
                exercises.record(&s.message);
            }
            self.exercises = exercises;
        }
        self.send_events();
        // The acknowledgement and counter writes of the turn are lost too: write them again with
        // the next turn that commits (all of them: rare, and harmless twice).
        self.unsaved.acked.extend(self.out.keys().copied());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_acknowledgement_goes_at_once_only_past_a_quarter_window() {
        assert!(!ack_at_once(10, 0, 4096), "a few messages wait for more");
        assert!(ack_at_once(1024, 0, 4096));
        assert!(!ack_at_once(2047, 1024, 4096));
        assert!(ack_at_once(2048, 1024, 4096));
        assert!(ack_at_once(1, 0, 1) && ack_at_once(1, 0, 2), "a tiny window acknowledges each");
    }

    #[tokio::test]
    async fn a_failed_turn_refuses_every_message_of_a_held_reply() {
        let (tx, rx) = tokio::sync::oneshot::channel();
        let ok = |seq| Ok(MsgId { author: PeerId([1; 16]), seq });
        HeldReply::Batch(tx, vec![ok(1), Err(Error::Stopped), ok(2)]).fail(&Error::Storage("disk full".into()));
        let got = rx.await.unwrap();
        assert_eq!(got.len(), 3);
        assert!(got.iter().all(|r| matches!(r, Err(Error::Storage(m)) if m.contains("disk full"))));
        let (tx, rx) = tokio::sync::oneshot::channel();
        HeldReply::One(tx, ok(7)).send();
        assert_eq!(rx.await.unwrap().unwrap().seq, 7);
    }
}
