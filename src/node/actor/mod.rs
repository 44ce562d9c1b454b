//! The node actor: the one task that owns the peer table, the live sessions, the exercises, the
//! history and the delivery streams, and so takes every decision.
//!
//! Its loop (all in one `select!`, [`Actor::run`]): commands from the [`Node`] handles, beacons
//! from the collect-listener, reports from the sessions, and a tick (every 200 ms) that expires
//! silent peers, starts the dials that are due and resends what is not acknowledged. It never
//! awaits the network: the frames of a turn for a peer are gathered and written at the end of the
//! turn (after its commit) with one non-blocking write to that peer's session
//! ([`crate::transport::outbox`]); what the socket does not take waits for the session's writer
//! task, and a peer that leaves too many frames waiting is closed as too slow rather than allowed
//! to stall everyone else.
//!
//! Reliability (docs/protocol.md, "Delivery"): each ordered pair of peers has a stream; every
//! message to a peer gets the next number of that stream and a place in the store's outbox, and
//! stays there until the peer acknowledges it. Writes of one turn are one group of the store;
//! events and acknowledgements go out only after it commits, so what was acknowledged or reported
//! survives a crash.
//!
//! The files follow the actor's responsibilities:
//! - this one: the state, the run loop, the tick, shutdown;
//! - [`turn`]: what a turn holds back until its commit, the commit, and a failed turn undone;
//! - [`sessions`]: discovery (beacons, dials) and the live sessions;
//! - [`delivery`]: the streams (numbering, windows, resends), acknowledgements, ordering, catch-up;
//! - [`commands`]: the commands of the [`Node`] handles, and sending a message;
//! - [`mesh`]: seeds, gossip, moved addresses; [`unsent`]: our frames waiting for a window.
//!
//! [`Node`]: super::Node

use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use super::Command;
use crate::codec;
use crate::config::Config;
use crate::discovery::listen::Heard;
use crate::error::Error;
use crate::event::{Event, LeaveReason, PeerInfo};
use crate::exercises::Exercises;
use crate::id::{FastMap as HashMap, PeerId};
use crate::identity::Identity;
use crate::peers::PeerTable;
use crate::store::Store;
use crate::transport::{BYE_LEAVING, Ctx, SessionMsg};

mod commands;
mod delivery;
mod mesh;
mod people;
mod sealing;
mod sessions;
mod turn;
mod unsent;

use delivery::{Acks, InStream, OutStream};
use sessions::Live;
use turn::{Turn, Unsaved};

/// How often the actor expires peers, starts due dials and checks for resends.
const TICK: Duration = Duration::from_millis(200);
/// How often queued messages are checked against the store-and-forward bounds.
const PURGE_EVERY: Duration = Duration::from_secs(30);
/// How long shutdown waits for sessions to flush and close before cutting them.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(2);
/// Session reports handled in one turn at most.
const BATCH: usize = 256;
/// A turn takes no more work once it has stored this many bytes of messages: whatever peers
/// send, its group stays far below what the journal takes whole (`journal::MAX_GROUP`), so a
/// turn never fails for its size (and never rolls back other peers' messages again and again).
const TURN_BYTES: usize = 8 << 20;
/// The room a turn's events start with, at most (see `send_events`).
const EVENTS_ROOM_MAX: usize = 512;

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
    /// The files engine, told of the messages that attach files once they are committed.
    pub files: Option<crate::files::Files>,
}

pub(super) struct Actor {
    p: Parts,
    me: PeerId,
    table: PeerTable,
    /// Seeds, gossip, moved addresses.
    mesh: mesh::Mesh,
    exercises: Exercises,
    /// The live session of each connected peer.
    sessions: HashMap<PeerId, Live>,
    /// When each peer's last beacon was heard (sessions of peers heard lately ping seldom).
    beaconed: HashMap<PeerId, Instant>,
    /// Peers of the room seen within `keep_for`, and when: the addressees of room messages.
    members: HashMap<PeerId, u64>,
    /// Our stream to each peer.
    out: HashMap<PeerId, OutStream>,
    /// Each peer's stream to us.
    inbound: HashMap<PeerId, InStream>,
    /// Acknowledgements sent and delayed.
    acks: Acks,
    /// What the current turn holds back until it commits.
    turn: Turn,
    /// Counters changed but not yet written (written with a later turn).
    unsaved: Unsaved,
    /// Committed frames of ours that wait for room in a peer's window (a bounded cache of the
    /// store's outbox, see `unsent`).
    unsent: unsent::Unsent,
    /// Catch-up messages of failed turns, stored again on the tick: no stream resends them (see
    /// `turn_failed`).
    retry: Vec<crate::authorship::Proved>,
    /// Our recent batches and others' read back, for the seals of what sessions carry.
    sealing: sealing::Sealing,
    /// The names peers go by.
    names: people::Names,
    /// Who the room's teacher is.
    trust: crate::trust::Trust,
    /// What each peer's claim to teach came to (from its handshake).
    claims: HashMap<PeerId, crate::trust::Claim>,
    last_purge: Instant,
    /// The encode buffer of the envelopes we send (no allocation per message; not for frames,
    /// see `codec::Arena`).
    arena: codec::Arena,
    /// The addressees of the message being sent (kept for its capacity).
    targets: Vec<PeerId>,
}

fn now_ms() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_millis() as u64).unwrap_or(0)
}

impl Actor {
    pub(super) fn new(p: Parts) -> Result<Self, Error> {
        let me = p.identity.id;
        let table = PeerTable::new(me, p.config.dial_grace, p.config.expiry).with_max_dials(p.config.max_dials);
        let mut exercises = Exercises::default();
        let mut names = people::Names::default();
        names.see(me, &p.name);
        for s in p.store.exercises() {
            names.see(s.message.id.author, &s.message.from_name);
            exercises.record(&s.message);
        }
        for (id, name) in p.store.members_since(0) {
            names.see(id, &crate::text::clean_name(&name));
        }
        let teacher = crate::event::role(&p.config.props) == Some(crate::trust::TEACHER);
        let trust = crate::trust::Trust::new(
            me,
            &p.config.room,
            teacher,
            p.config.teacher.clone(),
            p.config.data_dir.as_deref(),
        );
        let now = Instant::now();
        let out = p
            .store
            .out_streams()
            .into_iter()
            .map(|(peer, next, acked)| (peer, OutStream { next, acked, sent: acked, progress: now }))
            .collect();
        let inbound = p
            .store
            .in_streams()
            .into_iter()
            .map(|(peer, delivered)| (peer, InStream { delivered, saved: delivered, ..Default::default() }))
            .collect();
        let since = now_ms().saturating_sub(p.config.keep_for.as_millis() as u64);
        // More than are kept (`bound_members`) are trimmed by the first purge.
        let members = p.store.members_since(since).into_iter().map(|(id, _)| (id, now_ms())).collect();
        let mesh = mesh::Mesh::new(&p.config.seeds, &p.ifaces.borrow(), now);
        Ok(Actor {
            p,
            me,
            table,
            mesh,
            exercises,
            sessions: HashMap::default(),
            beaconed: HashMap::default(),
            members,
            out,
            inbound,
            acks: Acks::default(),
            turn: Turn::default(),
            unsaved: Unsaved::new(now),
            unsent: unsent::Unsent::new(),
            retry: Vec::new(),
            sealing: sealing::Sealing::default(),
            names,
            trust,
            claims: HashMap::default(),
            last_purge: now,
            arena: codec::Arena::new(),
            targets: Vec::new(),
        })
    }

    fn emit(&mut self, e: Event) {
        self.turn.events.push(e);
    }

    /// Hand the turn's events to the application, in one batch. The next batch starts with
    /// room for as many as this one had (a stream's turns are alike: not grown on the way).
    fn send_events(&mut self) {
        if self.turn.events.is_empty() {
            return;
        }
        let room = self.turn.events.len().next_power_of_two().min(EVENTS_ROOM_MAX);
        let batch = std::mem::replace(&mut self.turn.events, Vec::with_capacity(room));
        let attached: Vec<crate::files::Attached> = match &self.p.files {
            Some(_) => batch
                .iter()
                .filter_map(|e| match e {
                    Event::Message(m) if !m.files.is_empty() => Some(crate::files::Attached::of(m)),
                    _ => None,
                })
                .collect(),
            None => Vec::new(),
        };
        let _ = self.p.events.send(batch);
        if let Some(files) = &self.p.files
            && !attached.is_empty()
        {
            files.tell(crate::files::Control::Messages(attached));
        }
    }

    fn left(&mut self, info: PeerInfo, reason: LeaveReason) {
        if reason == LeaveReason::Left {
            self.mesh_left(&info.id);
        }
        tracing::info!(peer = %info.id.short(), name = %info.name, reason = reason.as_str(), "peer left");
        self.emit(Event::PeerLeft { id: info.id, name: info.name, reason });
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
            self.turn.now_ms = None;
            if self.acks.due != ack_armed {
                if let Some(due) = self.acks.due {
                    ack_timer.as_mut().reset(tokio::time::Instant::from_std(due));
                }
                ack_armed = self.acks.due;
            }
            tokio::select! {
                c = cmds.recv() => match c {
                    None | Some(Command::Shutdown) => break,
                    Some(c) => {
                        // Group commit: the commands already waiting share this transaction (up to
                        // BATCH messages, a batch command counting as its messages).
                        let mut done = self.command(c);
                        let mut stop = false;
                        while done < BATCH && self.p.store.group_bytes() < TURN_BYTES {
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
                    while done < BATCH && self.p.store.group_bytes() < TURN_BYTES {
                        match sess.try_recv() {
                            Ok(m) => done += self.session(m),
                            Err(_) => break,
                        }
                    }
                }
                _ = tick.tick() => self.tick(),
                _ = &mut ack_timer, if self.acks.due.is_some() => self.send_acks(),
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
        self.resend_stale(now);
        self.release_overdue(now);
        self.retry_caught();
        self.serve_all();
        if now.duration_since(self.last_purge) > PURGE_EVERY {
            self.last_purge = now;
            self.purge();
        }
    }

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
