//! The node actor: the one task that owns the peer table, the live sessions, the exercises, the
//! history database and the delivery streams, and so takes every decision.
//!
//! Its loop (all in one `select!`): commands from the [`Node`] handles, beacons from the
//! collect-listener, reports from the sessions, and a tick (every 200 ms) that expires silent
//! peers, starts the dials that are due and resends what is not acknowledged. It never awaits the
//! network: the frames of a turn for a peer are gathered and written at the end of the turn
//! (after its commit) with one non-blocking write to that peer's session
//! ([`crate::transport::outbox`]); what the socket does not take waits for the session's writer
//! task, and a peer that leaves too many frames waiting is closed as too slow rather than allowed
//! to stall everyone else.
//!
//! Reliability (docs/protocol.md, "Delivery"): each ordered pair of peers has a stream; every
//! message to a peer gets the next number of that stream and a row in the outbox table, and stays
//! there until the peer acknowledges it. Writes of one batch of work share one transaction; events
//! and acknowledgements go out only after it commits, so what was acknowledged or reported survives
//! a crash.
//!
//! [`Node`]: super::Node

use std::collections::BTreeMap;

use crate::id::{FastMap as HashMap, FastSet as HashSet};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use super::{Command, MAX_TITLE};
use crate::codec::{self, OutFrame, Received};
use crate::config::Config;
use crate::discovery::listen::Heard;
use crate::error::Error;
use crate::event::{Event, LeaveReason, Message, PeerInfo};
use crate::exercises::Exercises;
use crate::id::{MsgId, PeerId};
use crate::identity::Identity;
use crate::peers::{BeaconOutcome, PeerTable, UpOutcome};
use crate::protocol::{Body, Envelope, Frame};
use crate::store::Store;
use crate::transport::handshake::{COUNTS, Counts};
use crate::transport::outbox::{OutboxHandle, Refused};
use crate::transport::{BYE_DUPLICATE, BYE_LEAVING, Ctx, SessionMsg, Up, dial};

#[path = "mesh.rs"]
mod mesh;
#[path = "unsent.rs"]
mod unsent;

/// How often the actor expires peers, starts due dials and checks for resends.
const TICK: Duration = Duration::from_millis(200);
/// How often queued messages are checked against the store-and-forward bounds.
const PURGE_EVERY: Duration = Duration::from_secs(30);
/// How long shutdown waits for sessions to flush and close before cutting them.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(2);
/// Session reports handled in one transaction at most.
const BATCH: usize = 256;
/// The room a turn's events start with, at most (see `send_events`).
const EVENTS_ROOM_MAX: usize = 512;
/// An acknowledgement waits this long for more deliveries to cover (see `flush`).
const ACK_DELAY: Duration = Duration::from_millis(20);
/// How often the delivered positions of the incoming streams are written (see `flush`).
const IN_SAVE_EVERY: Duration = Duration::from_secs(1);
/// Ids per offer or want frame at most.
const IDS_PER_FRAME: usize = 4096;
/// Messages from one author held back while an earlier one is missing, at most.
const REORDER_MAX: usize = 4096;
/// Catch-up messages kept to store again after a turn that failed, at most (beyond: the peers
/// offer them again with their next session).
const RETRY_MAX: usize = 10_000;

/// A session's buffer of a turn's frames is kept for the next turn up to this capacity (a burst
/// to 200 peers would otherwise keep its size for each of them).
const PENDING_KEPT: usize = 256;

/// The session kept for a peer.
struct Live {
    sid: u64,
    incarnation: u64,
    dialer_is_me: bool,
    outbox: OutboxHandle,
    /// Frames of this turn, written at its end (`Actor::write_pending`), or when dropped.
    pending: Vec<OutFrame>,
    cancel: CancellationToken,
    /// Our end's address (cut when it vanishes: see `mesh`).
    local: Option<std::net::SocketAddr>,
    /// Both ends on this computer (only then may loopback addresses travel in gossip).
    loopback: bool,
    /// Its keepalive: quiet while the peer's beacons are heard.
    liveness: Arc<crate::transport::session::Liveness>,
    /// When it came up (an established session gives way to a newer one: see `up`).
    since: Instant,
}

impl Live {
    /// Add an encoded frame for `peer` (this session's peer) to the turn's, and the peer to
    /// `touched` with its first; false if the session is gone or was too slow (then it is
    /// closed).
    fn push(&mut self, peer: PeerId, frame: OutFrame, touched: &mut Vec<PeerId>) -> bool {
        // Frames still waiting from earlier turns, not this turn's (see `transport::outbox`);
        // both checks once per turn, with its first frame (the token's check takes a lock, and
        // `Outbox::send` refuses a session cancelled meanwhile).
        if self.pending.is_empty() {
            if self.cancel.is_cancelled() {
                return false;
            }
            if self.outbox.waiting() > self.outbox.capacity() {
                self.too_slow(peer);
                return false;
            }
            touched.push(peer);
        }
        self.pending.push(frame);
        true
    }

    /// Write the turn's frames.
    fn write_pending(&mut self, peer: PeerId) {
        if let Err(Refused::Full) = self.outbox.send(&mut self.pending) {
            self.too_slow(peer);
        }
        if self.pending.capacity() > PENDING_KEPT {
            self.pending = Vec::new();
        } else {
            self.pending.clear();
        }
    }

    fn too_slow(&self, peer: PeerId) {
        tracing::warn!(peer = %peer.short(), "peer is not reading; closing its session");
        self.cancel.cancel();
    }

    /// Close gracefully: say why; dropped, the session writes what it has and ends.
    fn close(mut self, reason: &str) {
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

/// A `send` command's reply, and what to answer once the turn is committed.
enum HeldReply {
    One(tokio::sync::oneshot::Sender<Result<MsgId, Error>>, Result<MsgId, Error>),
    Batch(tokio::sync::oneshot::Sender<Vec<Result<MsgId, Error>>>, Vec<Result<MsgId, Error>>),
}

impl HeldReply {
    /// Answer as held (the turn committed).
    fn send(self) {
        match self {
            HeldReply::One(tx, r) => drop(tx.send(r)),
            HeldReply::Batch(tx, r) => drop(tx.send(r)),
        }
    }

    /// The commit failed: nothing of this reply is stored.
    fn fail(self, e: &Error) {
        let err = || Err(Error::Storage(e.to_string()));
        match self {
            HeldReply::One(tx, _) => drop(tx.send(err())),
            HeldReply::Batch(tx, r) => drop(tx.send(r.iter().map(|_| err()).collect())),
        }
    }
}

/// Our stream to one peer.
#[derive(Debug, Clone, Copy)]
struct OutStream {
    /// Number the next message gets.
    next: u64,
    /// Highest number the peer acknowledged (or that was dropped).
    acked: u64,
    /// Highest number handed to the current session.
    sent: u64,
    /// Last time the peer acknowledged something (or we last resent).
    progress: Instant,
}

/// A peer's stream to us.
#[derive(Debug, Default)]
struct InStream {
    /// Highest number delivered (everything below it too).
    delivered: u64,
    /// `delivered` as of the last transaction that committed: where it goes back to when the
    /// current one fails (see `flush_with`).
    saved: u64,
    /// Messages that arrived ahead of a missing one (with their bytes as received).
    ahead: BTreeMap<u64, (Envelope, Bytes)>,
    /// From the `Resume` of the current session: the last number the peer had used for us.
    resume_last: Option<u64>,
    /// Catch-up messages by this author (relayed by others), held back by author seq until its
    /// own stream has delivered everything older, so that its messages stay in order.
    held: BTreeMap<u64, (Envelope, Bytes)>,
    /// When the oldest held message came.
    held_since: Option<Instant>,
}

impl InStream {
    /// Has the peer's own stream delivered everything it sent us before this session?
    fn caught_up(&self) -> bool {
        self.resume_last.is_some_and(|last| self.delivered >= last)
    }
}

/// Everything the actor is built from.
pub(super) struct Parts {
    pub identity: Identity,
    pub store: Store,
    pub name: String,
    pub config: Config,
    pub ctx: Arc<Ctx>,
    pub events: super::events::EventSender,
    pub cancel: CancellationToken,
    pub announce_cancel: CancellationToken,
    pub net_cancel: CancellationToken,
    /// Makes the announce task beacon now (newcomers learn of us at once).
    pub wake_announcer: Arc<tokio::sync::Notify>,
    /// The selected interfaces, as the announce task publishes them.
    pub ifaces: tokio::sync::watch::Receiver<Vec<crate::discovery::iface::Iface>>,
    /// Repeated beacons the listener keeps for the tick.
    pub latest: Arc<crate::discovery::listen::Latest>,
    pub tasks: Vec<JoinHandle<()>>,
}

pub(super) struct Actor {
    p: Parts,
    me: PeerId,
    table: PeerTable,
    /// Seeds, gossip, moved addresses.
    mesh: mesh::Mesh,
    exercises: Exercises,
    sessions: HashMap<PeerId, Live>,
    out: HashMap<PeerId, OutStream>,
    inbound: HashMap<PeerId, InStream>,
    /// Peers of the room seen within `keep_for`: the addressees of room messages.
    members: HashMap<PeerId, u64>,
    /// Events and acknowledgements held until the current transaction commits.
    held_events: Vec<Event>,
    held_acks: HashMap<PeerId, u64>,
    /// Acknowledgements delayed by up to `ACK_DELAY` (one frame covers many deliveries), and
    /// when they are due.
    ack_later: HashMap<PeerId, u64>,
    ack_due: Option<Instant>,
    /// The last acknowledgement sent per stream.
    acks_sent: HashMap<PeerId, u64>,
    /// Streams whose counters changed this turn (saved once, at the end of the turn).
    dirty_out: HashSet<PeerId>,
    /// Delivered positions of incoming streams, committed messages not yet written as counters,
    /// and when they were last written (see `flush`).
    in_unsaved: HashMap<PeerId, u64>,
    in_saved_at: Instant,
    /// Replies to `send` commands, held until the messages are stored.
    held_replies: Vec<HeldReply>,
    /// Streams with acknowledgements not yet applied to the outbox table: done in a turn that
    /// writes anyway, or on the tick, so that a turn of acknowledgements alone costs no commit.
    acked_unsaved: HashSet<PeerId>,
    last_purge: Instant,
    /// When each peer's last beacon was heard (sessions of peers heard lately ping seldom).
    beaconed: HashMap<PeerId, Instant>,
    /// A store call of the current turn failed: the turn is rolled back, not committed.
    failed: std::cell::Cell<bool>,
    /// Our messages of this turn, sent once the turn commits: (peer, stream number, envelope).
    held_frames: Vec<(PeerId, u64, Bytes)>,
    /// Committed frames of ours that wait for room in a peer's window (a bounded cache of the
    /// outbox table, see `unsent`).
    unsent: unsent::Unsent,
    /// The streams that numbered messages this turn, with their `next` before it.
    numbered: HashMap<PeerId, u64>,
    /// Catch-up messages stored this turn (their envelopes), and those of failed turns, stored
    /// again on the tick: no stream resends them (see `turn_failed`).
    caught: Vec<Bytes>,
    retry: Vec<Bytes>,
    /// The encode buffer of the envelopes we send (no allocation per message; not for frames,
    /// see `codec::Arena`).
    arena: codec::Arena,
    /// The addressees of the message being sent (kept for its capacity).
    targets: Vec<PeerId>,
    /// Sessions with frames of this turn to write at its end.
    touched: Vec<PeerId>,
    /// The wall clock as of this turn (read once per turn, when first needed: a turn of a
    /// stream is hundreds of messages, and a clock read per message was ≈ 1.5 % of its CPU).
    turn_ms: Option<u64>,
}

fn now_ms() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_millis() as u64).unwrap_or(0)
}

impl Actor {
    /// The wall clock in ms, as of this turn.
    fn turn_now_ms(&mut self) -> u64 {
        *self.turn_ms.get_or_insert_with(now_ms)
    }

    pub(super) fn new(p: Parts) -> Result<Self, Error> {
        let me = p.identity.id;
        let table = PeerTable::new(me, p.config.dial_grace, p.config.expiry).with_max_dials(p.config.max_dials);
        let mut exercises = Exercises::default();
        for s in p.store.exercises()? {
            exercises.record(&s.message);
        }
        let now = Instant::now();
        let out = p
            .store
            .out_streams()?
            .into_iter()
            .map(|(peer, next, acked)| (peer, OutStream { next, acked, sent: acked, progress: now }))
            .collect();
        let inbound = p
            .store
            .in_streams()?
            .into_iter()
            .map(|(peer, delivered)| (peer, InStream { delivered, saved: delivered, ..Default::default() }))
            .collect();
        let since = now_ms().saturating_sub(p.config.keep_for.as_millis() as u64);
        let members = p.store.members_since(since)?.into_iter().map(|(id, _)| (id, now_ms())).collect();
        let mesh = mesh::Mesh::new(&p.config.seeds, &p.ifaces.borrow(), now);
        Ok(Actor {
            p,
            me,
            table,
            mesh,
            exercises,
            sessions: HashMap::default(),
            out,
            inbound,
            members,
            held_events: Vec::new(),
            held_acks: HashMap::default(),
            ack_later: HashMap::default(),
            ack_due: None,
            acks_sent: HashMap::default(),
            held_replies: Vec::new(),
            acked_unsaved: Default::default(),
            turn_ms: None,
            dirty_out: Default::default(),
            in_unsaved: HashMap::default(),
            in_saved_at: now,
            last_purge: now,
            beaconed: HashMap::default(),
            failed: Default::default(),
            held_frames: Vec::new(),
            unsent: unsent::Unsent::new(),
            numbered: HashMap::default(),
            caught: Vec::new(),
            retry: Vec::new(),
            arena: codec::Arena::new(),
            targets: Vec::new(),
            touched: Vec::new(),
        })
    }

    fn emit(&mut self, e: Event) {
        self.held_events.push(e);
    }

    /// Hand the turn's events to the application, in one batch. The next batch starts with
    /// room for as many as this one had (a stream's turns are alike: not grown on the way).
    fn send_events(&mut self) {
        if self.held_events.is_empty() {
            return;
        }
        let room = self.held_events.len().next_power_of_two().min(EVENTS_ROOM_MAX);
        let batch = std::mem::replace(&mut self.held_events, Vec::with_capacity(room));
        let _ = self.p.events.send(batch);
    }

    fn left(&mut self, info: PeerInfo, reason: LeaveReason) {
        if reason == LeaveReason::Left {
            self.mesh_left(&info.id);
        }
        tracing::info!(peer = %info.id.short(), name = %info.name, reason = reason.as_str(), "peer left");
        self.emit(Event::PeerLeft { id: info.id, name: info.name, reason });
    }

    /// End of a batch of work: make it durable, then tell the user and acknowledge.
    /// Forget acknowledged messages in the outbox table (and save those streams' counters).
    fn save_acked(&mut self) {
        for peer in std::mem::take(&mut self.acked_unsaved) {
            if let Some(o) = self.out.get(&peer) {
                self.log_store(self.p.store.acked(peer, o.acked));
                self.dirty_out.insert(peer);
            }
        }
    }

    fn flush(&mut self) {
        self.flush_with(false);
    }

    /// `flush`, with `last`: write every counter now (the node is stopping).
    fn flush_with(&mut self, last: bool) {
        self.commit_turn(last);
        self.write_pending();
    }

    /// Write every session's frames of this turn: one non-blocking write each, as few Noise
    /// records as they fit in.
    fn write_pending(&mut self) {
        for peer in std::mem::take(&mut self.touched) {
            if let Some(s) = self.sessions.get_mut(&peer) {
                s.write_pending(peer);
            }
        }
    }

    /// Commit the turn; then release what waited for it (replies, events, our messages, the
    /// acknowledgements).
    fn commit_turn(&mut self, last: bool) {
        let now = Instant::now();
        // The delivered positions of the incoming streams: at most once a second, not once per
        // turn (a receiver's turn is often one message: the counter was a third of its
        // transaction). They only say where a stream resumes after a restart. A position is
        // kept here only once its messages are committed, and acknowledgements go out only
        // after that commit, so a position written late never claims a message that is not
        // stored. After a crash the written position may be behind: the sender's `Resume`
        // (its own acknowledged position) moves it on, and what the sender sends again from
        // there is dropped as already stored (one row per author and number).
        let save_in = !self.in_unsaved.is_empty() && (last || now.duration_since(self.in_saved_at) >= IN_SAVE_EVERY);
        // Acknowledgements ride along with a turn that commits anyway.
        if !self.acked_unsaved.is_empty() && (self.p.store.wrote() || !self.dirty_out.is_empty() || save_in || last) {
            self.save_acked();
        }
        // The stream counters of this turn, once per stream rather than once per message.
        for peer in std::mem::take(&mut self.dirty_out) {
            if let Some(o) = self.out.get(&peer) {
                self.log_store(self.p.store.save_out_stream(peer, o.next, o.acked));
            }
        }
        if save_in {
            for (peer, delivered) in &self.in_unsaved {
                self.log_store(self.p.store.save_in_stream(*peer, *delivered));
            }
        }
        // A turn is kept whole or not at all: a failed write (a full disk, say) rolls it back.
        let done = if self.failed.take() {
            self.p.store.rollback();
            Err(Error::Storage("a write failed".into()))
        } else {
            self.p.store.commit()
        };
        if let Err(e) = done {
            return self.turn_failed(&e);
        }
        if save_in {
            self.in_saved_at = now;
            self.in_unsaved.clear();
        }
        self.numbered.clear();
        self.caught.clear();
        // Durable now: the callers may learn their messages' ids, and our messages may leave
        // (never before they are stored: a number a peer has seen is never given to another
        // message, even when the turn fails or the process dies).
        for reply in self.held_replies.drain(..) {
            reply.send();
        }
        self.send_events();
        let window = self.p.config.window as u64;
        let mut frames = std::mem::take(&mut self.held_frames);
        for (peer, lseq, env) in frames.drain(..) {
            // Without a session the outbox table has it, for the next one.
            let (Some(o), Some(s)) = (self.out.get_mut(&peer), self.sessions.get_mut(&peer)) else { continue };
            if o.sent + 1 == lseq && o.sent - o.acked < window {
                if let Ok(f) = codec::message_frame(lseq, env)
                    && s.push(peer, f, &mut self.touched)
                {
                    o.sent = lseq;
                }
            } else if self.unsent.fits(peer, lseq, env.len())
                && let Ok(f) = codec::message_frame(lseq, env)
            {
                // The window is full: `pump` sends it when the peer acknowledges. It may wait
                // long: in bytes of its own, not holding on to the arena's chunk.
                self.unsent.keep(peer, lseq, f.to_bytes());
            }
        }
        // Kept for its capacity.
        self.held_frames = frames;
        // Delayed acknowledgements: a stream acknowledged within the window's quarter waits up
        // to ACK_DELAY, so that a burst (or a teacher's fan-out followed by the next) costs the
        // sender one `Ack` per peer rather than one per turn, and the sender's handling of
        // acknowledgements does not compete with the delivery of what follows. The sender's
        // window (4096) and resend timer (3 s) are far above what this holds back.
        let quarter = (self.p.config.window as u64 / 4).max(1);
        for (peer, upto) in std::mem::take(&mut self.held_acks) {
            if let Some(i) = self.inbound.get_mut(&peer) {
                i.saved = upto;
            }
            self.in_unsaved.insert(peer, upto);
            let sent = self.acks_sent.get(&peer).copied().unwrap_or(0);
            if upto >= sent + quarter {
                self.ack_later.remove(&peer);
                self.send_ack(peer, upto);
            } else {
                self.ack_later.insert(peer, upto);
                self.ack_due.get_or_insert(now + ACK_DELAY);
            }
        }
    }

    /// The turn's writes were rolled back: undo what it did in memory, so that what it received
    /// comes again (nothing of it was acknowledged) and what it sent is refused (nothing of it
    /// left), and say so once in a while.
    fn turn_failed(&mut self, e: &Error) {
        tracing::error!(error = %e, "cannot save the history; nothing is acknowledged or sent until it works again");
        self.p.ctx.warner.warn(crate::guard::WarnKind::Storage, std::net::Ipv4Addr::UNSPECIFIED.into(), || {
            "cannot save messages on this computer (is the disk full?); nothing is lost, \
             messages arrive once there is space again: free some disk space"
                .to_string()
        });
        // Received: back to the last committed position; the senders resend what they do not
        // see acknowledged.
        for (peer, _) in self.held_acks.drain() {
            if let Some(i) = self.inbound.get_mut(&peer) {
                i.delivered = i.saved;
            }
        }
        // Caught up: stored again on the tick (the peer that offered them will not resend them).
        let room = RETRY_MAX.saturating_sub(self.retry.len());
        if self.caught.len() > room {
            tracing::warn!(
                dropped = self.caught.len() - room,
                "catch-up not stored; offered again with the next session"
            );
        }
        let caught: Vec<Bytes> = self.caught.drain(..).take(room).collect();
        self.retry.extend(caught);
        // Sent: nothing left, so the numbers are given again.
        self.held_frames.clear();
        for (peer, next) in self.numbered.drain() {
            if let Some(o) = self.out.get_mut(&peer) {
                o.next = next;
            }
        }
        for reply in self.held_replies.drain(..) {
            reply.fail(e);
        }
        // Messages are reported once stored: these were not (they come again, or were refused).
        let before = self.held_events.len();
        self.held_events.retain(|e| !matches!(e, Event::Message(_)));
        if self.held_events.len() != before {
            let mut exercises = Exercises::default();
            for s in self.p.store.exercises().unwrap_or_default() {
                exercises.record(&s.message);
            }
            self.exercises = exercises;
        }
        self.send_events();
        // The acknowledgement and counter writes of the turn are lost too: write them again with
        // the next turn that commits (all of them: rare, and harmless twice).
        self.acked_unsaved.extend(self.out.keys().copied());
    }

    fn send_ack(&mut self, peer: PeerId, upto: u64) {
        if let Ok(f) = codec::encode(&Frame::Ack(upto)) {
            self.push(peer, f);
        }
        self.acks_sent.insert(peer, upto);
    }

    /// Send the delayed acknowledgements.
    fn send_acks(&mut self) {
        self.ack_due = None;
        for (peer, upto) in std::mem::take(&mut self.ack_later) {
            self.send_ack(peer, upto);
        }
    }

    /// A store call's result; an error is logged and fails the turn (see `flush_with`).
    fn log_store<T>(&self, r: Result<T, Error>) -> Option<T> {
        self.checked(r).map_err(|e| tracing::error!(error = %e, "history database")).ok()
    }

    /// A store call's result; an error fails the turn: nothing of it is kept, acknowledged,
    /// sent or reported (see `flush_with`).
    fn checked<T>(&self, r: Result<T, Error>) -> Result<T, Error> {
        if r.is_err() {
            self.failed.set(true);
        }
        r
    }

    pub(super) async fn run(
        mut self,
        mut cmds: mpsc::Receiver<Command>,
        mut heard: mpsc::Receiver<Heard>,
        mut sess: mpsc::Receiver<SessionMsg>,
    ) {
        let mut tick = tokio::time::interval(TICK);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut ifaces = self.p.ifaces.clone();
        // The delayed acknowledgements' timer: one for the actor's life, set again only when
        // `ack_due` changes (once per ACK_DELAY), not a timer made and dropped every turn.
        let ack_timer = tokio::time::sleep(Duration::ZERO);
        tokio::pin!(ack_timer);
        let mut ack_armed = None;
        loop {
            self.p.store.begin();
            self.turn_ms = None;
            if self.ack_due != ack_armed {
                if let Some(due) = self.ack_due {
                    ack_timer.as_mut().reset(tokio::time::Instant::from_std(due));
                }
                ack_armed = self.ack_due;
            }
            tokio::select! {
                c = cmds.recv() => match c {
                    None | Some(Command::Shutdown) => break,
                    Some(c) => {
                        // Group commit: the commands already waiting share this transaction (up to
                        // BATCH messages, a batch command counting as its messages).
                        let mut done = self.command(c);
                        let mut stop = false;
                        while done < BATCH {
                            match cmds.try_recv() {
                                Ok(Command::Shutdown) => {
                                    stop = true;
                                    break;
                                }
                                Ok(c) => done += self.command(c),
                                Err(_) => break,
                            }
                        }
                        if stop {
                            break;
                        }
                    }
                },
                Some(h) = heard.recv() => self.beacon(h),
                Some(m) = sess.recv() => {
                    // Reports waiting share this transaction (up to BATCH frames about).
                    let mut done = self.session(m);
                    while done < BATCH {
                        match sess.try_recv() {
                            Ok(m) => done += self.session(m),
                            Err(_) => break,
                        }
                    }
                }
                _ = tick.tick() => self.tick(),
                _ = &mut ack_timer, if self.ack_due.is_some() => self.send_acks(),
                Ok(()) = ifaces.changed() => {
                    let now_set = ifaces.borrow_and_update().clone();
                    self.ifaces_changed(&now_set);
                }
            }
            self.flush();
        }
        self.p.store.begin();
        self.save_acked();
        self.flush();
        // Every counter, with the positions of the turn just committed.
        self.p.store.begin();
        self.flush_with(true);
        self.send_acks();
        self.shutdown(sess).await;
    }

    // ---- discovery -------------------------------------------------------------------------

    fn beacon(&mut self, h: Heard) {
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
    /// (docs/protocol.md, 3.5 and 8.2).
    fn newcomer(&mut self, b: &crate::discovery::beacon::Beacon) {
        let now = Instant::now();
        if self.table.settled(now) && !self.met_before(&b.id, b.incarnation) {
            self.table.dial_now(&b.id, now);
        } else {
            self.p.wake_announcer.notify_one();
        }
        self.dial_due(now);
    }

    /// Start the dials that are due (on every tick, and at once when a newcomer is heard).
    fn dial_due(&mut self, now: Instant) {
        let crossing = &self.p.ctx.crossing;
        let busy = |p: &PeerId| {
            let b = crossing.inbound(p);
            if b {
                tracing::debug!(peer = %p.short(), "its handshake with us is under way: not dialing it now");
                Counts::bump(&COUNTS.deferred);
            }
            b
        };
        for (peer, addrs) in self.table.due_dials_except(now, busy) {
            tracing::debug!(peer = %peer.short(), ?addrs, "dialing");
            self.p.ctx.tracker.spawn(dial::dial(peer, addrs, self.p.ctx.clone()));
        }
    }

    fn tick(&mut self) {
        for h in self.p.latest.take() {
            self.beacon(h);
        }
        let now = Instant::now();
        self.save_acked();
        for info in self.table.expire(now) {
            if let Some(s) = self.sessions.remove(&info.id) {
                s.cancel.cancel();
            }
            self.session_gone(info.id);
            self.left(info, LeaveReason::Timeout);
        }
        self.dial_due(now);
        self.mesh_tick(now);
        self.keepalives(now);
        // Resend what a live peer has not acknowledged for a while (a frame lost with a session
        // we replaced, say). Duplicates are harmless: the receiver drops them.
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
        // Catch-up held for an author that has not come back in time: deliver it anyway.
        let overdue: Vec<PeerId> = self
            .inbound
            .iter()
            .filter(|(_, i)| i.held_since.is_some_and(|t| now.duration_since(t) > self.p.config.hold_catchup))
            .map(|(p, _)| *p)
            .collect();
        for author in overdue {
            self.release_held(author, true);
        }
        // Catch-up that a failed turn could not store.
        for raw in std::mem::take(&mut self.retry) {
            if let Ok(env) = codec::decode_envelope(&raw) {
                self.deliver(env, raw, "catch-up again");
            }
        }
        if now.duration_since(self.last_purge) > PURGE_EVERY {
            self.last_purge = now;
            self.purge();
        }
    }

    /// Sessions of peers whose beacons are heard ping seldom: the beacons show the peer lives,
    /// and a peer heard neither way for `expiry` is dropped ([`PeerTable::expire`]). When the
    /// beacons stop (a link or subnet that does not carry them, a peer that left), the session
    /// pings often again, at once.
    fn keepalives(&mut self, now: Instant) {
        let fresh = self.p.config.beacon_interval * 3;
        self.beaconed.retain(|_, at| now.saturating_duration_since(*at) < fresh);
        for (peer, s) in &self.sessions {
            s.liveness.set_quiet(self.beaconed.contains_key(peer));
        }
    }

    /// Apply the store-and-forward bounds, saying in the log what is dropped.
    fn purge(&mut self) {
        let before = now_ms().saturating_sub(self.p.config.keep_for.as_millis() as u64);
        let Some(dropped) = self.log_store(self.p.store.purge(before, self.p.config.max_pending_per_peer)) else {
            return;
        };
        for (peer, n) in dropped {
            tracing::warn!(peer = %peer.short(), dropped = n, "messages kept for an absent peer were dropped (too old or too many)");
            self.unsent.forget(peer);
            // The dropped rows may have been the last record of how far the stream went.
            self.dirty_out.insert(peer);
        }
        let now = now_ms();
        let live: Vec<PeerId> = self.sessions.keys().copied().collect();
        for peer in live {
            let name = self.table.get(&peer).map(|e| e.name.clone()).unwrap_or_default();
            self.log_store(self.p.store.touch_member(peer, &name, now));
            self.members.insert(peer, now);
        }
        self.members.retain(|_, seen| *seen >= before);
    }

    // ---- sessions --------------------------------------------------------------------------

    /// Handle a session's report; how many frames it carried (1 for any other report).
    fn session(&mut self, m: SessionMsg) -> usize {
        let now = Instant::now();
        match m {
            SessionMsg::Up(up) => self.up(up),
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
            }
            SessionMsg::SeedDialed { seed, outcome } => self.seed_dialed(seed, outcome),
            SessionMsg::DialCrossed { peer, refused } => {
                self.table.dial_crossed(peer, refused, now);
                self.dial_due(now);
            }
            SessionMsg::DialFailed { peer } => {
                if self.sessions.contains_key(&peer) {
                    self.table.dial_done(peer);
                } else if let Some((info, why)) = self.table.dial_failed(peer, now) {
                    self.left(info, why);
                }
            }
        }
        1
    }

    /// The live session of `peer` is gone: what it had not acknowledged goes again next time.
    fn session_gone(&mut self, peer: PeerId) {
        if let Some(o) = self.out.get_mut(&peer) {
            o.sent = o.acked;
        }
        self.unsent.forget(peer);
        if let Some(i) = self.inbound.get_mut(&peer) {
            i.ahead.clear();
            i.resume_last = None;
        }
    }

    /// A session is up: keep it, or, when one is already live with the same incarnation, keep
    /// the one dialed by the lower id (both ends apply the same rule, so both keep the same).
    fn up(&mut self, up: Up) {
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
        match self.table.session_up(&hello, remote, Instant::now()) {
            UpOutcome::Joined(info) => {
                tracing::info!(peer = %peer.short(), name = %info.name, addr = %info.addr, "peer joined");
                self.emit(Event::PeerJoined(info));
            }
            UpOutcome::Restarted { old, new } => {
                self.left(old, LeaveReason::Restarted);
                tracing::info!(peer = %peer.short(), name = %new.name, "peer joined again");
                self.emit(Event::PeerJoined(new));
            }
            UpOutcome::Resumed => tracing::debug!(peer = %peer.short(), "session resumed"),
        }
        // The peer is connected in the table now: no dial to it starts; its handshake leaves
        // the crossing table.
        drop(mark);
        let now = now_ms();
        self.log_store(self.p.store.touch_member(peer, &hello.name, now));
        self.members.insert(peer, now);
        self.start_stream(peer);
        self.offer(peer);
        self.mesh_up(peer, Instant::now());
    }

    /// A new session: tell the peer where our stream to it resumes, and send what it lacks.
    fn start_stream(&mut self, peer: PeerId) {
        let o =
            self.out.entry(peer).or_insert_with(|| OutStream { next: 1, acked: 0, sent: 0, progress: Instant::now() });
        // Nothing sent beyond what is acknowledged (every session of a room that is forming):
        // nothing is queued, no need to ask the database.
        let first =
            if o.next - 1 <= o.acked { None } else { self.log_store(self.p.store.first_pending(peer)).flatten() };
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
    fn pump(&mut self, peer: PeerId) {
        if !self.sessions.contains_key(&peer) {
            return;
        }
        let window = self.p.config.window as u64;
        loop {
            let Some(o) = self.out.get(&peer).copied() else { return };
            let room = window.saturating_sub(o.sent - o.acked);
            if room == 0 || o.sent + 1 >= o.next {
                return;
            }
            let kept = self.unsent.first_after(peer, o.sent);
            if kept == Some(o.sent + 1) {
                let mut sent = o.sent;
                let mut pushed = true;
                while sent - o.sent < room
                    && let Some(f) = self.unsent.take(peer, sent + 1)
                {
                    pushed = self.push(peer, f);
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
            let Some(batch) = self.log_store(self.p.store.pending(peer, o.sent, limit as usize)) else { return };
            if batch.is_empty() {
                return;
            }
            for (lseq, env) in batch {
                let Ok(f) = codec::message_frame(lseq, env.into()) else { return };
                if !self.push(peer, f) {
                    return;
                }
                if let Some(o) = self.out.get_mut(&peer) {
                    o.sent = lseq;
                }
            }
        }
    }

    /// Offer the peer the room's catch-up set (exercises and recent chat).
    fn offer(&mut self, peer: PeerId) {
        let Some(ids) =
            self.log_store(self.p.store.catchup_ids(self.p.config.catchup_chats, self.p.config.catchup_max))
        else {
            return;
        };
        for chunk in ids.chunks(IDS_PER_FRAME) {
            if let Ok(f) = codec::encode(&Frame::Offer(chunk.to_vec())) {
                self.push(peer, f);
            }
        }
    }

    fn frame(&mut self, peer: PeerId, frame: Received) {
        let frame = match frame {
            Received::Message { lseq, env, raw } => return self.stream_message(peer, lseq, env, raw),
            Received::CatchUp { env, raw } => return self.catch_up(peer, env, raw),
            Received::Other(f) => f,
        };
        match frame {
            Frame::Ack(upto) => {
                let Some(o) = self.out.get_mut(&peer) else { return };
                let upto = upto.min(o.next - 1);
                if upto > o.acked {
                    o.acked = upto;
                    o.sent = o.sent.max(upto);
                    o.progress = Instant::now();
                    // Forgotten on disk lazily (see `save_acked`): losing that to a crash only
                    // resends what the peer already has, and it drops repeats.
                    self.acked_unsaved.insert(peer);
                    self.pump(peer);
                }
            }
            Frame::Resume { done, last } => {
                let i = self.inbound.entry(peer).or_default();
                i.resume_last = Some(last);
                tracing::debug!(peer = %peer.short(), delivered = i.delivered, done, last, "stream resumes");
                if last < i.delivered {
                    // Its stream to us ends below what we delivered: it lost the end of its
                    // history (a new database under the same identity, say). What we have stays
                    // (by message id); its numbers count again from where it is, or we would
                    // take its next messages for ones we have and drop them.
                    tracing::warn!(peer = %peer.short(), delivered = i.delivered, last, "peer's stream went back; following it");
                    i.delivered = last;
                    i.ahead.clear();
                    self.acks_sent.insert(peer, last);
                    self.save_inbound(peer);
                }
                let i = self.inbound.entry(peer).or_default();
                if done > i.delivered {
                    i.delivered = done;
                    i.ahead.retain(|k, _| *k > done);
                    self.drain_ahead(peer);
                    self.save_inbound(peer);
                }
                self.release_held(peer, false);
            }
            Frame::Offer(ids) => {
                let want: Vec<MsgId> =
                    ids.into_iter().filter(|id| self.log_store(self.p.store.has(id)) == Some(false)).collect();
                for chunk in want.chunks(IDS_PER_FRAME) {
                    if let Ok(f) = codec::encode(&Frame::Want(chunk.to_vec())) {
                        self.push(peer, f);
                    }
                }
            }
            Frame::Want(ids) => {
                for id in ids.into_iter().take(self.p.config.catchup_max) {
                    let Some(Some(env)) = self.log_store(self.p.store.room_envelope(&id)) else { continue };
                    let Ok(f) = codec::catchup_frame(env.into()) else { continue };
                    if !self.push(peer, f) {
                        break;
                    }
                }
            }
            Frame::Peers(ads) => self.gossip_in(peer, ads),
            other => tracing::debug!(peer = %peer.short(), frame = ?other, "unexpected frame dropped"),
        }
    }

    /// A room message from `peer`'s store (any author), outside the streams.
    fn catch_up(&mut self, peer: PeerId, env: Envelope, raw: Bytes) {
        if env.to.is_some() {
            tracing::debug!(peer = %peer.short(), "private message offered as catch-up dropped");
            return;
        }
        let author = env.id.author;
        // An author we have met may still have older messages for us in its own stream:
        // hold its newer ones until that stream has caught up (or for `hold_catchup`).
        let wait = author != self.me
            && self.members.contains_key(&author)
            && !self.inbound.get(&author).is_some_and(InStream::caught_up);
        if !wait {
            return self.deliver(env, raw, "catch-up");
        }
        let i = self.inbound.entry(author).or_default();
        if i.held.len() < REORDER_MAX {
            tracing::trace!(id = %env.id.short(), "catch-up held until its author's stream catches up");
            i.held_since.get_or_insert_with(Instant::now);
            i.held.insert(env.id.seq, (env, raw));
        }
    }

    /// Deliver the catch-up messages held for `author`, oldest first, once its own stream has
    /// caught up (or, with `force`, because it stayed away too long).
    fn release_held(&mut self, author: PeerId, force: bool) {
        let Some(i) = self.inbound.get_mut(&author) else { return };
        if i.held.is_empty() || !(force || i.caught_up()) {
            return;
        }
        i.held_since = None;
        let held = std::mem::take(&mut i.held);
        tracing::debug!(author = %author.short(), n = held.len(), force, "releasing held catch-up");
        for (_, (env, raw)) in held {
            self.deliver(env, raw, "catch-up");
        }
    }

    /// Note how far `peer`'s stream is delivered: saved, then acknowledged, at the end of the turn.
    fn save_inbound(&mut self, peer: PeerId) {
        let d = self.inbound.get(&peer).map_or(0, |i| i.delivered);
        self.held_acks.insert(peer, d);
    }

    /// Message number `lseq` of `peer`'s stream to us.
    fn stream_message(&mut self, peer: PeerId, lseq: u64, env: Envelope, raw: Bytes) {
        if env.id.author != peer {
            tracing::debug!(peer = %peer.short(), author = %env.id.author.short(), "message with another author dropped");
            return;
        }
        let i = self.inbound.entry(peer).or_default();
        if lseq <= i.delivered {
            // Already have it (an acknowledgement was lost): acknowledge again.
            self.held_acks.insert(peer, i.delivered);
            return;
        }
        if lseq > i.delivered + 1 {
            if i.ahead.len() < REORDER_MAX {
                i.ahead.insert(lseq, (env, raw));
            }
            return;
        }
        i.delivered = lseq;
        // The usual case, nothing held back behind it: no more lookups of the stream (what
        // `drain_ahead`, `save_inbound` and `release_held` would find is nothing to do).
        let alone = i.ahead.is_empty() && i.held.is_empty();
        self.deliver(env, raw, "stream");
        if alone {
            self.held_acks.insert(peer, lseq);
            return;
        }
        self.drain_ahead(peer);
        self.save_inbound(peer);
        self.release_held(peer, false);
    }

    fn drain_ahead(&mut self, peer: PeerId) {
        loop {
            let Some(i) = self.inbound.get_mut(&peer) else { return };
            let next = i.delivered + 1;
            let Some((env, raw)) = i.ahead.remove(&next) else { return };
            i.delivered = next;
            self.deliver(env, raw, "stream");
        }
    }

    /// Store a received message (its bytes as they came: they decode to `env`) and, the first
    /// time only, report it.
    fn deliver(&mut self, env: Envelope, raw: Bytes, how: &'static str) {
        if env.to.is_some_and(|to| to != self.me) {
            tracing::debug!(author = %env.id.author.short(), "message for someone else dropped");
            return;
        }
        let at = self.turn_now_ms();
        let stored = self.log_store(self.p.store.insert(&env, &raw, at));
        // Catch-up is offered once per session: if this turn fails, it is stored again.
        if how != "stream" && stored != Some(None) {
            self.caught.push(raw);
        }
        match stored {
            None => return,
            Some(None) => {
                tracing::trace!(id = %env.id.short(), how, "duplicate dropped");
                return;
            }
            Some(Some(_)) => {}
        }
        // The name the author goes by now; the envelope's own when it is the same (no copy).
        let from_name = match self.table.get(&env.id.author) {
            Some(e) if e.name != env.author_name => e.name.clone(),
            _ => env.author_name,
        };
        let m = Message { id: env.id, from_name, sent_ms: env.sent_ms, to: env.to, body: env.body, own: false };
        self.exercises.record(&m);
        self.emit(Event::Message(m));
    }

    /// Queue an encoded frame for `peer`, written at the end of the turn; false if it has no
    /// live session or was too slow.
    fn push(&mut self, peer: PeerId, frame: impl Into<OutFrame>) -> bool {
        self.sessions.get_mut(&peer).is_some_and(|s| s.push(peer, frame.into(), &mut self.touched))
    }

    // ---- commands --------------------------------------------------------------------------

    /// Carry out a command; how many messages it submitted (1 for any other command).
    fn command(&mut self, c: Command) -> usize {
        let now = Instant::now();
        match c {
            Command::Send { to, body, reply } => {
                // Answered after the commit (in `flush`), so an id the caller gets is on disk.
                let r = self.send(to, body);
                self.held_replies.push(HeldReply::One(reply, r));
            }
            Command::SendBatch { msgs, reply } => {
                let n = msgs.len();
                let r = msgs.into_iter().map(|(to, body)| self.send(to, body)).collect();
                self.held_replies.push(HeldReply::Batch(reply, r));
                return n.max(1);
            }
            Command::Peers(r) => {
                let _ = r.send(self.table.listed(now));
            }
            Command::Problems(r) => {
                let _ = r.send(self.exercises.view());
            }
            Command::History(limit, r) => {
                let h = self.p.store.history(limit).map(|v| v.into_iter().map(|s| s.message).collect());
                let _ = r.send(h);
            }
            Command::FindPeer(q, r) => {
                let _ = r.send(self.table.resolve(&q, now));
            }
            Command::FindProblem(q, r) => {
                let _ = r.send(self.exercises.find_problem(&q));
            }
            Command::FindAnswer(q, r) => {
                let _ = r.send(self.exercises.find_answer(&q));
            }
            Command::Shutdown => {}
        }
        1
    }

    fn check_text(&self, what: &str, text: &str) -> Result<(), Error> {
        if text.trim().is_empty() {
            return Err(Error::BadText(format!("the {what} is empty; type some text after the command")));
        }
        if text.len() > self.p.config.max_text {
            return Err(Error::BadText(format!(
                "the {what} is {} bytes long, more than the limit of {}; shorten it",
                text.len(),
                self.p.config.max_text
            )));
        }
        Ok(())
    }

    fn send(&mut self, mut to: Option<PeerId>, body: Body) -> Result<MsgId, Error> {
        match &body {
            Body::Chat { text } => self.check_text("message", text)?,
            Body::Problem { title, body, .. } => {
                self.check_text("title", title)?;
                if title.len() > MAX_TITLE {
                    return Err(Error::BadText(format!("the title is longer than {MAX_TITLE} bytes; shorten it")));
                }
                if body.len() > self.p.config.max_text {
                    return Err(Error::BadText("the problem text is too long; shorten it".into()));
                }
            }
            Body::Answer { problem, text } => {
                self.exercises.find_problem(&problem.to_string())?;
                self.check_text("answer", text)?;
                // A quiz: answers go to its author only.
                if let Some(author) = self.exercises.quiz_author(problem) {
                    to = Some(author);
                }
            }
            Body::Feedback { answer, text } => {
                self.exercises.find_answer(&answer.to_string())?;
                self.check_text("feedback", text)?;
                // Feedback on a quiz answer goes to the answer's author only.
                if self.exercises.problem_of(answer).and_then(|p| self.exercises.quiz_author(&p)).is_some() {
                    to = Some(answer.author);
                }
            }
        }
        if let Some(t) = to
            && t != self.me
            && !self.members.contains_key(&t)
        {
            let name = self.table.get(&t).map(|e| e.name.clone()).unwrap_or_else(|| t.short());
            return Err(Error::UnknownPeer(name));
        }
        let id = MsgId { author: self.me, seq: self.p.identity.next_seq()? };
        let now = self.turn_now_ms();
        let env = Envelope { id, author_name: self.p.name.clone(), sent_ms: now, to, body };
        let bytes =
            self.arena.encode(&env).map_err(|_| Error::BadText("the message is too large; shorten it".into()))?;
        if bytes.len() + 16 > self.p.ctx.max_frame {
            return Err(Error::BadText("the message is too large; shorten it".into()));
        }
        let row = self
            .checked(self.p.store.insert(&env, &bytes, now))?
            .ok_or_else(|| Error::Storage("message id used twice".into()))?;
        let mut recipients = std::mem::take(&mut self.targets);
        recipients.clear();
        match to {
            Some(t) if t == self.me => {}
            Some(t) => recipients.push(t),
            None => recipients.extend(self.members.keys().copied().filter(|p| *p != self.me)),
        }
        let queued = self.queue(&recipients, row, &bytes, now);
        self.targets = recipients;
        queued?;
        let m = Message { id, from_name: env.author_name, sent_ms: env.sent_ms, to, body: env.body, own: true };
        self.exercises.record(&m);
        self.emit(Event::Message(m));
        Ok(id)
    }

    /// Give our message (row `row`, encoded `bytes`) the next number of each recipient's stream
    /// and queue it there; it is sent once the turn commits (`flush_with`).
    fn queue(&mut self, recipients: &[PeerId], row: i64, bytes: &Bytes, now: u64) -> Result<(), Error> {
        for &peer in recipients {
            let o = self.out.entry(peer).or_insert_with(|| OutStream {
                next: 1,
                acked: 0,
                sent: 0,
                progress: Instant::now(),
            });
            let lseq = o.next;
            self.numbered.entry(peer).or_insert(lseq);
            o.next += 1;
            // The stream's counter is not written here: the outbox row says how far it went (see
            // `Store::out_streams`), and it is written with the acknowledgements.
            self.checked(self.p.store.enqueue(peer, lseq, row, now))?;
            self.held_frames.push((peer, lseq, bytes.clone()));
        }
        Ok(())
    }

    // ---- shutdown --------------------------------------------------------------------------

    /// Farewell beacons, `Bye` on every session, then wait (bounded) for the sessions to flush
    /// and close, and for every task to end.
    async fn shutdown(mut self, mut sess: mpsc::Receiver<SessionMsg>) {
        tracing::info!("leaving");
        self.p.announce_cancel.cancel();
        for (_, s) in self.sessions.drain() {
            s.close(BYE_LEAVING);
        }
        self.p.net_cancel.cancel();
        let tracker = self.p.ctx.tracker.clone();
        tracker.close();
        let deadline = tokio::time::sleep(SHUTDOWN_GRACE);
        tokio::pin!(deadline);
        loop {
            tokio::select! {
                _ = tracker.wait() => break,
                _ = &mut deadline => break,
                m = sess.recv() => match m {
                    // A session that comes up now is closed at once.
                    Some(SessionMsg::Up(up)) => drop(up),
                    Some(_) => {}
                    None => break,
                },
            }
        }
        self.p.cancel.cancel();
        drop(sess);
        let _ = tokio::time::timeout(Duration::from_secs(1), tracker.wait()).await;
        for t in self.p.tasks.drain(..) {
            let _ = tokio::time::timeout(Duration::from_secs(1), t).await;
        }
        tracing::info!("stopped");
    }
}
