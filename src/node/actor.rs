//! The node actor: the one task that owns the peer table, the live sessions, the exercises and
//! the message counter, and so takes every decision.
//!
//! Its loop (in this order of concern, all in one `select!`): commands from the [`Node`] handles,
//! beacons from the collect-listener, reports from the sessions, and a tick (every 200 ms) that
//! expires silent peers and starts the dials that are due. It never awaits the network: frames
//! for a peer go into that peer's bounded outbox with `try_send`, and a peer whose outbox is
//! full is closed as too slow rather than allowed to stall everyone else.
//!
//! [`Node`]: super::Node

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use tokio::sync::mpsc;
use tokio::sync::mpsc::error::TrySendError;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use super::{Command, MAX_TITLE};
use crate::codec;
use crate::config::Config;
use crate::discovery::listen::Heard;
use crate::error::Error;
use crate::event::{Event, LeaveReason, Message, PeerInfo};
use crate::exercises::Exercises;
use crate::id::{MsgId, PeerId};
use crate::identity::Identity;
use crate::peers::{BeaconOutcome, PeerTable, UpOutcome};
use crate::protocol::{Body, Envelope, Frame};
use crate::transport::{BYE_DUPLICATE, BYE_LEAVING, Ctx, SessionMsg, Up, dial};

/// How often the actor expires peers and starts due dials.
const TICK: Duration = Duration::from_millis(200);
/// How long shutdown waits for sessions to flush and close before cutting them.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(2);

/// The session kept for a peer.
struct Live {
    sid: u64,
    incarnation: u64,
    dialer_is_me: bool,
    outbox: mpsc::Sender<Bytes>,
    cancel: CancellationToken,
}

impl Live {
    /// Close gracefully: say why, then drop the outbox so the writer flushes and ends.
    fn close(self, reason: &str) {
        if let Ok(bye) = codec::encode(&Frame::Bye(reason.to_string())) {
            let _ = self.outbox.try_send(bye);
        }
    }
}

/// Everything the actor is built from.
pub(super) struct Parts {
    pub identity: Identity,
    pub name: String,
    pub config: Config,
    pub ctx: Arc<Ctx>,
    pub events: mpsc::UnboundedSender<Event>,
    pub cancel: CancellationToken,
    pub announce_cancel: CancellationToken,
    pub net_cancel: CancellationToken,
    /// Makes the announce task beacon now (newcomers learn of us at once).
    pub wake_announcer: Arc<tokio::sync::Notify>,
    pub tasks: Vec<JoinHandle<()>>,
}

pub(super) struct Actor {
    p: Parts,
    me: PeerId,
    table: PeerTable,
    exercises: Exercises,
    sessions: HashMap<PeerId, Live>,
}

fn now_ms() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_millis() as u64).unwrap_or(0)
}

impl Actor {
    pub(super) fn new(p: Parts) -> Self {
        let me = p.identity.id;
        let table = PeerTable::new(me, p.config.dial_grace, p.config.expiry);
        Actor { p, me, table, exercises: Exercises::default(), sessions: HashMap::new() }
    }

    fn emit(&self, e: Event) {
        let _ = self.p.events.send(e);
    }

    fn left(&self, info: PeerInfo, reason: LeaveReason) {
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
        loop {
            tokio::select! {
                c = cmds.recv() => match c {
                    None | Some(Command::Shutdown) => break,
                    Some(c) => self.command(c),
                },
                Some(h) = heard.recv() => self.beacon(h),
                Some(m) = sess.recv() => self.session(m),
                _ = tick.tick() => self.tick(),
            }
        }
        self.shutdown(sess).await;
    }

    // ---- discovery -------------------------------------------------------------------------

    fn beacon(&mut self, h: Heard) {
        match self.table.beacon(&h.beacon, h.from.ip(), Instant::now()) {
            BeaconOutcome::New => {
                tracing::debug!(peer = %h.beacon.id.short(), from = %h.from, "discovered");
                self.p.wake_announcer.notify_one();
            }
            BeaconOutcome::Known => {}
            BeaconOutcome::Left(info) => {
                if let Some(s) = self.sessions.remove(&info.id) {
                    s.close(BYE_LEAVING);
                }
                self.left(info, LeaveReason::Left);
            }
            BeaconOutcome::Restarted(info) => {
                if let Some(s) = self.sessions.remove(&info.id) {
                    s.cancel.cancel();
                }
                self.left(info, LeaveReason::Restarted);
                self.p.wake_announcer.notify_one();
            }
        }
    }

    fn tick(&mut self) {
        let now = Instant::now();
        for info in self.table.expire(now) {
            if let Some(s) = self.sessions.remove(&info.id) {
                s.cancel.cancel();
            }
            self.left(info, LeaveReason::Timeout);
        }
        for (peer, addr) in self.table.due_dials(now) {
            tracing::debug!(peer = %peer.short(), %addr, "dialing");
            self.p.ctx.tracker.spawn(dial::dial(peer, addr, self.p.ctx.clone()));
        }
    }

    // ---- sessions --------------------------------------------------------------------------

    fn session(&mut self, m: SessionMsg) {
        let now = Instant::now();
        match m {
            SessionMsg::Up(up) => self.up(up),
            SessionMsg::Frame { peer, frame } => {
                self.table.heard(peer, now);
                match frame {
                    Frame::Message(env) => self.received(peer, env),
                    other => tracing::debug!(peer = %peer.short(), frame = ?other, "unexpected frame dropped"),
                }
            }
            SessionMsg::Heard { peer } => self.table.heard(peer, now),
            SessionMsg::Closed { sid, peer, farewell } => {
                if self.sessions.get(&peer).is_none_or(|s| s.sid != sid) {
                    return; // a session we had already replaced or dropped
                }
                self.sessions.remove(&peer);
                if let Some((info, why)) = self.table.session_closed(peer, farewell, now) {
                    self.left(info, why);
                }
            }
            SessionMsg::DialFailed { peer } => {
                if self.sessions.contains_key(&peer) {
                    self.table.dial_done(peer);
                } else if let Some((info, why)) = self.table.dial_failed(peer, now) {
                    self.left(info, why);
                }
            }
        }
    }

    /// A session is up: keep it, or, when one is already live with the same incarnation, keep
    /// the one dialed by the lower id (both ends apply the same rule, so both keep the same).
    fn up(&mut self, up: Up) {
        let Up { sid, hello, remote, dialer_is_me, outbox, cancel } = up;
        let peer = hello.id;
        if dialer_is_me {
            self.table.dial_done(peer);
        }
        let new = Live { sid, incarnation: hello.incarnation, dialer_is_me, outbox, cancel };
        if let Some(cur) = self.sessions.get(&peer)
            && cur.incarnation == hello.incarnation
        {
            let dialer = |mine: bool| if mine { self.me } else { peer };
            let keep_new = dialer(dialer_is_me) <= dialer(cur.dialer_is_me);
            tracing::debug!(peer = %peer.short(), keep_new, "two sessions with one peer");
            if !keep_new {
                new.close(BYE_DUPLICATE);
                return;
            }
            let old = self.sessions.insert(peer, new).expect("present");
            old.close(BYE_DUPLICATE);
        } else if let Some(stale) = self.sessions.insert(peer, new) {
            stale.cancel.cancel();
        }
        match self.table.session_up(&hello, remote.ip(), Instant::now()) {
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
    }

    fn received(&mut self, peer: PeerId, env: Envelope) {
        if env.id.author != peer {
            tracing::debug!(peer = %peer.short(), author = %env.id.author.short(), "message with another author dropped");
            return;
        }
        if env.to.is_some_and(|to| to != self.me) {
            tracing::debug!(peer = %peer.short(), "message for someone else dropped");
            return;
        }
        let from_name = self.table.get(&peer).map(|e| e.name.clone()).unwrap_or(env.author_name);
        let m = Message { id: env.id, from_name, sent_ms: env.sent_ms, to: env.to, body: env.body, own: false };
        self.exercises.record(&m);
        self.emit(Event::Message(m));
    }

    /// Queue an encoded frame for `peer`; false if it has no live session or was too slow.
    fn push(&mut self, peer: PeerId, frame: &Bytes) -> bool {
        let Some(s) = self.sessions.get(&peer) else { return false };
        match s.outbox.try_send(frame.clone()) {
            Ok(()) => true,
            Err(TrySendError::Full(_)) => {
                tracing::warn!(peer = %peer.short(), "peer is not reading; closing its session");
                s.cancel.cancel();
                false
            }
            Err(TrySendError::Closed(_)) => false,
        }
    }

    // ---- commands --------------------------------------------------------------------------

    fn command(&mut self, c: Command) {
        let now = Instant::now();
        match c {
            Command::Send { to, body, reply } => {
                let _ = reply.send(self.send(to, body));
            }
            Command::Peers(r) => {
                let _ = r.send(self.table.listed(now));
            }
            Command::Problems(r) => {
                let _ = r.send(self.exercises.view());
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
            && !self.sessions.contains_key(&t)
        {
            let name = self.table.get(&t).map(|e| e.name.clone()).unwrap_or_else(|| t.short());
            return Err(if self.table.get(&t).is_some_and(|e| e.joined) {
                Error::BadText(format!("{name} is reconnecting; try again in a moment"))
            } else {
                Error::UnknownPeer(name)
            });
        }
        let id = MsgId { author: self.me, seq: self.p.identity.next_seq() };
        let env = Envelope { id, author_name: self.p.name.clone(), sent_ms: now_ms(), to, body };
        let frame = codec::encode(&Frame::Message(env.clone()))
            .map_err(|_| Error::BadText("the message is too large; shorten it".into()))?;
        if frame.len() > self.p.config.max_frame {
            return Err(Error::BadText("the message is too large; shorten it".into()));
        }
        match to {
            Some(t) if t == self.me => {}
            Some(t) => {
                self.push(t, &frame);
            }
            None => {
                let peers: Vec<PeerId> = self.sessions.keys().copied().collect();
                for p in peers {
                    self.push(p, &frame);
                }
            }
        }
        let m = Message { id, from_name: env.author_name, sent_ms: env.sent_ms, to, body: env.body, own: true };
        self.exercises.record(&m);
        self.emit(Event::Message(m));
        Ok(id)
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
