//! What a node reports to its user: who came and went, and every message it sent or received.
//!
//! The CLI turns each [`Event`] into one `--json` line or one line of the prompt; a library user
//! reads them from the receiver that [`crate::Node::start`] returns.

use std::net::SocketAddr;

use crate::id::{MsgId, PeerId};
use crate::protocol::Body;

/// The state of a listed peer (see docs/protocol.md, "Peer state machine").
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PeerState {
    /// Heard by beacon, no session yet: not listed to the user.
    Discovered,
    /// Session up: listed, and messages reach it.
    Connected,
    /// Its session dropped while it still announces: listed, being dialed again.
    Reconnecting,
}

impl PeerState {
    /// Lowercase name, as in `--json`.
    pub fn as_str(&self) -> &'static str {
        match self {
            PeerState::Discovered => "discovered",
            PeerState::Connected => "connected",
            PeerState::Reconnecting => "reconnecting",
        }
    }
}

/// A peer as the user sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PeerInfo {
    /// Its id.
    pub id: PeerId,
    /// Its display name.
    pub name: String,
    /// The address its session uses (its IP and TCP port).
    pub addr: SocketAddr,
    /// Its state.
    pub state: PeerState,
    /// Milliseconds since it was last heard from.
    pub last_seen_ms: u64,
    /// Facts from its handshake, e.g. `("role", "teacher")`.
    pub props: Vec<(String, String)>,
}

/// Why a peer left the list.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LeaveReason {
    /// It said goodbye (farewell beacon or a closing session).
    Left,
    /// It fell silent for longer than the expiry timeout.
    Timeout,
    /// Its session closed and it could not be reached again.
    Disconnected,
    /// It started again under the same id (a new session follows).
    Restarted,
}

impl LeaveReason {
    /// Lowercase name, as in `--json`.
    pub fn as_str(&self) -> &'static str {
        match self {
            LeaveReason::Left => "left",
            LeaveReason::Timeout => "timeout",
            LeaveReason::Disconnected => "disconnected",
            LeaveReason::Restarted => "restarted",
        }
    }
}

/// A chat, problem, answer or feedback, sent or received.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Message {
    /// Its id (author and sequence number).
    pub id: MsgId,
    /// The author's display name.
    pub from_name: String,
    /// The author's clock when sent, milliseconds since the Unix epoch.
    pub sent_ms: u64,
    /// `None` for everyone, or the one addressee.
    pub to: Option<PeerId>,
    /// What it says.
    pub body: Body,
    /// True when this peer is the author.
    pub own: bool,
}

/// Something the node reports.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Event {
    /// Once, when every task is up.
    Ready {
        /// This peer's id.
        id: PeerId,
        /// Its name.
        name: String,
        /// Its room.
        room: String,
        /// The address its sessions are reached on.
        listen: SocketAddr,
        /// Its role (`--role`, e.g. `teacher`), if it gave one.
        role: Option<String>,
    },
    /// A peer's session is up: it can be messaged.
    PeerJoined(PeerInfo),
    /// A peer is gone.
    PeerLeft {
        /// Its id.
        id: PeerId,
        /// Its name.
        name: String,
        /// Why.
        reason: LeaveReason,
    },
    /// A message, received or sent by this peer.
    Message(Message),
    /// Something the user should know, in one short sentence: e.g. a peer of this room was
    /// refused because its passphrase differs. Rate-limited (see [`crate::guard::Warner`]).
    Warning {
        /// What happened.
        message: String,
    },
}
