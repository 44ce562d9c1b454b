//! lanpeer: the computers of one classroom talk to each other with nothing installed but this.
//!
//! Every peer is equal. Each finds the others by UDP broadcast and talks to each directly over
//! TCP: chat (to everyone or private), problems, answers and feedback.
//!
//! ```no_run
//! # async fn demo() -> Result<(), lanpeer::Error> {
//! let config = lanpeer::Config { name: "Ada".into(), interfaces: vec!["lo".into()], ..Default::default() };
//! let (node, mut events) = lanpeer::Node::start(config).await?;
//! node.chat("hello, class").await?;
//! while let Some(event) = events.recv().await {
//!     println!("{event:?}");
//! #   break;
//! }
//! node.shutdown().await;
//! # Ok(()) }
//! ```
//!
//! # Layout
//! - [`config`]: every port, interval, timeout and limit, with defaults.
//! - [`node`]: the public handle, and the actor that owns all state.
//! - [`event`]: what a node reports.
//! - [`peers`]: the peer table and its state machine (pure data, unit-tested).
//! - [`exercises`]: problems, answers and feedback seen so far.
//! - [`discovery`]: beacon format, announce task, collect-listener task, interface scan.
//! - [`transport`]: TCP accept task, dialing, handshake, one task per session.
//! - [`protocol`]: every frame of the TCP wire; [`codec`]: how they become bytes.
//! - [`identity`]: the data directory (lasting key and id, lock).
//! - [`store`]: the history (a journal in a data dir, Rust collections without one);
//!   [`journal`]: the append-only file format.
//! - [`crypto`]: static keys, passphrase room keys; [`guard`]: flood limits and warnings.
//! - [`diag`]: process-wide counters of dials, handshakes, gossip and beacons, for the
//!   benchmarks and for debugging a room that forms slowly (not events of the API).
//! - [`web`]: the page of `--web`: a local web server and WebSocket that face this peer.
//!
//! docs/architecture.md and docs/protocol.md describe the whole.

#![deny(missing_docs)]

pub mod authorship;
pub mod codec;
pub mod config;
pub mod crypto;
pub mod diag;
pub mod discovery;
pub mod error;
pub mod event;
pub mod exercises;
pub mod files;
pub mod gossip;
pub mod guard;
pub mod id;
pub mod identity;
pub mod journal;
pub mod limits;
pub mod merkle;
pub mod node;
pub mod peers;
pub mod protocol;
#[cfg(unix)]
pub mod rlimit;
pub mod seeds;
pub mod store;
pub mod text;
pub mod transport;
pub mod trust;
pub mod web;

pub use config::Config;
pub use error::Error;
pub use event::{Event, LeaveReason, Message, PeerInfo, PeerState};
pub use exercises::ProblemView;
pub use id::{MsgId, PeerId};
pub use node::{Events, Node, Pending, PendingBatch, Stats, TryRecvError};
pub use protocol::Body;
