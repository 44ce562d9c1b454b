//! Files attached to messages: kept by content, moved in chunks that any peer holding them
//! serves, so that a room swarms (docs/protocol.md, "Files"; docs/architecture.md, "Files").
//!
//! Why apart from the node actor: a file is megabytes to gigabytes of reads, hashes and writes,
//! and chat must not wait behind them. The engine ([`engine`]) is a task of its own; the
//! sessions' readers hand it the file frames directly, it writes to the sessions' outboxes
//! itself (file parts after everything else: [`crate::transport::outbox`]), and the actor only
//! tells it, after each commit, which messages attach files. What it holds in memory per file
//! is the list of chunk hashes and a bitmap, never content.
//!
//! - [`store`]: the content store of the data dir (`files/`), resumable;
//! - [`prepare`]: files and folders of the user's disk made into references (hashed, copied in);
//! - [`names`]: names made safe for every system, and where a received file is saved;
//! - [`engine`]: asking, serving, fetching from many peers, checking, saving, reporting.

pub mod engine;
pub mod names;
pub mod prepare;
pub mod store;

use std::sync::Arc;

use tokio::sync::mpsc;

use crate::id::{MsgId, PeerId};
use crate::protocol::FileRef;

/// A 32-byte hash (BLAKE3 for chunks and lists).
pub type Hash = [u8; 32];

/// Bytes per chunk (the last chunk of a file is shorter).
pub const CHUNK: usize = 64 * 1024;

/// Chunk hashes per piece of a file's list (64 KiB of hashes).
pub const LIST_PIECE: usize = 2048;

/// The number of chunks of a file of `size` bytes.
pub fn chunk_count(size: u64) -> u64 {
    size.div_ceil(CHUNK as u64)
}

/// The number of pieces of the list of a file of `size` bytes (at least one, empty for an
/// empty file).
pub fn piece_count(size: u64) -> u64 {
    chunk_count(size).div_ceil(LIST_PIECE as u64).max(1)
}

/// A message that attaches files, as the engine needs it: who may see it, and where its files go.
#[derive(Debug, Clone)]
pub struct Attached {
    /// The message.
    pub id: MsgId,
    /// `None`: the room's; else the one addressee (the author sees it too).
    pub to: Option<PeerId>,
    /// The author's name as it signed it (the folder its files are saved in).
    pub author_name: String,
    /// Its files, in order.
    pub files: Vec<FileRef>,
}

impl Attached {
    /// The files of a message.
    pub fn of(m: &crate::event::Message) -> Attached {
        Attached { id: m.id, to: m.to, author_name: m.from_name.clone(), files: m.files.clone() }
    }
}

/// What the engine is told, by the sessions and the actor.
#[derive(Debug)]
pub enum Control {
    /// A session is up: its outbox (held weakly: the session's life is the actor's business).
    Up {
        /// The peer.
        peer: PeerId,
        /// The session's number.
        sid: u64,
        /// Its sending side.
        out: std::sync::Weak<crate::transport::outbox::Outbox>,
    },
    /// A session ended.
    Down {
        /// The peer.
        peer: PeerId,
        /// The session's number.
        sid: u64,
    },
    /// Messages with files, stored (committed): ours and others'.
    Messages(Vec<Attached>),
}

/// A file frame from a peer (read by its session, not by the actor).
#[derive(Debug)]
pub struct FromPeer {
    /// The peer.
    pub peer: PeerId,
    /// The frame (one of the `File*` frames).
    pub frame: crate::protocol::Frame,
}

/// The ends of the engine's channels that the node's tasks hold.
#[derive(Debug, Clone)]
pub struct Files {
    /// The file store.
    pub store: Arc<store::Store>,
    /// To the engine: sessions and messages.
    pub control: mpsc::UnboundedSender<Control>,
    /// To the engine: file frames (bounded: a peer sending faster than files are written waits).
    pub frames: mpsc::Sender<FromPeer>,
}

impl Files {
    /// Tell the engine (nothing happens once it has stopped).
    pub fn tell(&self, c: Control) {
        let _ = self.control.send(c);
    }
}
