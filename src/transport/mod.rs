//! Transport: the TCP sessions that carry messages between two peers.
//!
//! - [`handshake`]: the preamble, Noise handshake and hello exchange that open every connection.
//! - [`noise`]: the Noise handshake and the encrypted record layer (every session is encrypted).
//! - [`session`]: one task per live connection (its reader), and a writer task beside it.
//! - [`outbox`]: a session's sending side, written by the node actor at the end of each turn;
//!   the writer task finishes what the socket does not take at once.
//! - [`accept`]: the TCP accept task; [`dial`]: outgoing connections; [`slots`]: how many
//!   connections are held at once, in which pools (our dials, the ids we know, everyone else).
//! - [`crossing`]: the handshakes under way by peer, so that two peers dialing each other at
//!   once handshake one session, not two.
//!
//! Sessions never touch the peer table: they report to the node actor over one bounded channel
//! ([`SessionMsg`]), which gives back-pressure from the actor to the sockets and a single owner
//! for every decision (which session to keep, who is listed).

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use tokio::sync::{Semaphore, mpsc};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::crypto::SessionKeys;
use crate::guard::Warner;
use crate::id::PeerId;
use crate::protocol::Hello;

pub mod accept;
pub mod crossing;
pub mod dial;
pub mod handshake;
pub mod noise;
pub mod outbox;
pub mod resolver;
pub mod session;
pub mod slots;

/// Largest frame accepted before the hello is through (a hello is far smaller).
pub const HANDSHAKE_MAX_FRAME: usize = 16 * 1024;

/// Bye reason: the peer is leaving the room.
pub const BYE_LEAVING: &str = "leaving";
/// Bye reason: the other of two sessions between the same peers is kept.
pub const BYE_DUPLICATE: &str = "duplicate";

/// A session that completed its handshake.
#[derive(Debug)]
pub struct Up {
    /// Session number (unique within this node).
    pub sid: u64,
    /// The peer's hello.
    pub hello: Hello,
    /// The peer's socket address.
    pub remote: std::net::SocketAddr,
    /// Our end's address (a session whose local address vanished is cut: the peer moved us).
    pub local: Option<std::net::SocketAddr>,
    /// True when this node dialed.
    pub dialer_is_me: bool,
    /// The session's sending side. Dropping it closes the session gracefully (what was sent is
    /// written first).
    pub outbox: outbox::OutboxHandle,
    /// Cancels the session at once.
    pub cancel: CancellationToken,
    /// How often the session pings (the actor makes it quiet while beacons are heard).
    pub liveness: Arc<session::Liveness>,
    /// The handshake's place in [`Ctx::crossing`], held until the actor has taken the session
    /// (so that it starts no dial to the peer in between).
    pub mark: Option<crossing::Mark>,
}

/// What sessions report to the node actor.
#[derive(Debug)]
pub enum SessionMsg {
    /// A session is up.
    Up(Box<Up>),
    /// Frames for the actor arrived (messages, acknowledgements, catch-up offers...): those the
    /// reader had at hand at once (up to a record's worth), in order, in one report.
    Frames {
        /// The peer they came from (as its hello said).
        peer: PeerId,
        /// The frames, in the order received.
        frames: Vec<crate::codec::Received>,
    },
    /// The peer showed it is alive (a ping).
    Heard {
        /// The peer.
        peer: PeerId,
    },
    /// A session ended.
    Closed {
        /// Its number.
        sid: u64,
        /// Its peer.
        peer: PeerId,
        /// The peer said it is leaving.
        farewell: bool,
    },
    /// A dial ended without a session with the peer it was meant for.
    DialFailed {
        /// The peer dialed.
        peer: PeerId,
    },
    /// A dial ended without a handshake because it crossed the peer's own ([`crossing`]):
    /// wait for the peer's session.
    DialCrossed {
        /// The peer dialed.
        peer: PeerId,
        /// The peer refused ours: its own dial to us is connected and handshaking, and is the
        /// one both ends keep. Else its handshake with us had begun (this dial was not made).
        refused: bool,
    },
    /// A dial of a seed peer ended (sent before the session, if any, reports `Up`).
    SeedDialed {
        /// The seed's index in the node's list.
        seed: usize,
        /// What came of it.
        outcome: crate::seeds::SeedOutcome,
    },
}

/// What every connection task shares.
#[derive(Debug)]
pub struct Ctx {
    /// Our id.
    pub me: PeerId,
    /// Our room.
    pub room: String,
    /// Our hello, encoded once.
    pub hello: Bytes,
    /// Time for connect + preamble + hello.
    pub handshake_timeout: Duration,
    /// Idle time before a ping.
    pub keepalive: Duration,
    /// Idle time before a ping while the peer's beacons are heard (see [`session::Liveness`]).
    pub quiet_keepalive: Duration,
    /// Silence after which a session is dead (with the short keepalive; quiet sessions wait
    /// longer by the difference of the two keepalives).
    pub idle_timeout: Duration,
    /// Largest frame.
    pub max_frame: usize,
    /// Frames that may wait for a session's socket before its peer counts as not reading.
    pub outbox_capacity: usize,
    /// Bytes that may wait for a session's socket (see [`outbox`]).
    pub outbox_max_bytes: usize,
    /// To the node actor.
    pub actor: mpsc::Sender<SessionMsg>,
    /// Tracks every connection task (for shutdown).
    pub tracker: TaskTracker,
    /// Cancels every connection task.
    pub cancel: CancellationToken,
    /// The places for connections: our dials, the ids we know, everyone else.
    pub slots: slots::Slots,
    /// Caps the dials connecting or handshaking at once. A handshake costs a few elliptic-curve
    /// operations; when a whole room starts together, hundreds of them at once would each take
    /// longer than the handshake timeout on a busy machine and be tried again, forever. Queued
    /// dials wait for a place before connecting, so the other side's timer does not run.
    pub dialing: Arc<Semaphore>,
    /// The handshakes under way, by peer: crossing dials.
    pub crossing: crossing::Crossing,
    /// Our static key, and the room's passphrase key if any.
    pub keys: SessionKeys,
    /// Rate-limited warnings for the user (refused peers).
    pub warner: Arc<Warner>,
    /// Whether the per-address connection limit applies to loopback addresses.
    pub limit_loopback: bool,
    /// The files engine's ends (`None` without a data dir: no files).
    pub files: Option<crate::files::Files>,
    /// Connection attempts accepted from one IP address at once...
    pub conn_burst: u32,
    /// ...and per second after that (more are closed before any handshake).
    pub conn_per_sec: f64,
}
