//! What a node reports to its user: who came and went, and every message it sent or received.
//!
//! The CLI turns each [`Event`] into one `--json` line or one line of the prompt; a library user
//! reads them from the receiver that [`crate::Node::start`] returns.

use std::net::SocketAddr;

use crate::id::{MsgId, PeerId};
use crate::protocol::{Body, Envelope, FileRef};

/// The state of a listed peer (see docs/protocol.md, "The peer state machine").
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
    /// For a peer that claims the teacher's role: whether it is the room's teacher (its key is
    /// the teacher's: [`crate::trust`]). `None` when it claims no such role.
    pub verified: Option<bool>,
    /// Its name as shown: with the start of its id when another peer has the same name.
    pub label: String,
}

impl PeerInfo {
    /// The role it gave (`--role`), if any.
    pub fn role(&self) -> Option<&str> {
        role(&self.props)
    }
}

/// The role in a handshake's facts (`--role`), if any.
pub fn role(props: &[(String, String)]) -> Option<&str> {
    props.iter().find(|(k, _)| k == "role").map(|(_, v)| v.as_str())
}

/// `name (6d81c34e)`: a name with the start of the id, where two peers share a name.
pub fn label(name: &str, id: &PeerId) -> String {
    format!("{name} ({})", id.short())
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
    /// Files attached.
    pub files: Vec<FileRef>,
    /// True when this peer is the author.
    pub own: bool,
    /// The author's name as shown: with the start of its id when another peer has the same name.
    pub from_label: String,
    /// The author's role, as far as this peer knows it (its handshake's, or the room's teacher).
    pub from_role: Option<String>,
    /// For an author known to claim the teacher's role: whether it is the room's teacher.
    pub from_verified: Option<bool>,
}

impl Message {
    /// The message of an envelope (the author's name and a problem's title cleaned for showing,
    /// whatever the envelope holds: [`crate::text`]). `own`: this peer is the author.
    pub fn from_envelope(env: Envelope, own: bool) -> Message {
        let from_name = crate::text::clean_name_owned(env.author_name);
        let body = match env.body {
            Body::Problem { title, body, private_answers } => {
                Body::Problem { title: crate::text::clean_title(&title), body, private_answers }
            }
            other => other,
        };
        Message {
            id: env.id,
            from_label: from_name.clone(),
            from_name,
            sent_ms: env.sent_ms,
            to: env.to,
            body,
            files: env.files,
            own,
            from_role: None,
            from_verified: None,
        }
    }
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
        /// Its room code: the room and a fingerprint of its key, for students to start with
        /// (`--teacher CODE`) when this peer is the teacher ([`crate::trust::RoomCode`]).
        room_code: String,
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
    /// A file of a message is complete on disk, checked against the SHA-256 its message names,
    /// and saved (under the downloads folder, never over another file).
    File {
        /// The message that attaches it.
        message_id: MsgId,
        /// Its name in the message (`src/a.py`).
        name: String,
        /// Its size in bytes.
        size: u64,
        /// Its SHA-256.
        sha256: [u8; 32],
        /// Where it was saved.
        path: std::path::PathBuf,
    },
    /// A file of a message is arriving: at most every half second per file.
    FileProgress {
        /// The message that attaches it.
        message_id: MsgId,
        /// Its name in the message.
        name: String,
        /// Bytes received and checked so far.
        bytes: u64,
        /// Its size in bytes.
        size: u64,
    },
    /// Something the user should know, in one short sentence: e.g. a peer of this room was
    /// refused because its passphrase differs. Rate-limited (see [`crate::guard::Warner`]).
    Warning {
        /// What happened.
        message: String,
    },
}
