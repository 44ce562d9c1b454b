//! The public handle: [`Node::start`] a peer from a [`Config`], read its [`Event`]s, send the four
//! kinds of message, list peers, and [`Node::shutdown`] gracefully.
//!
//! The handle is a cheap clone around the command channel of the node actor ([`actor`]), the
//! single owner of the peer table, the sessions and the exercises. Each call is a command with a
//! oneshot reply, so callers never share a lock with the network tasks. Dropping every handle
//! stops the node as `shutdown` would.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::sync::Arc;

use tokio::sync::{Mutex, Notify, Semaphore, mpsc, oneshot, watch};
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::codec;
use crate::config::Config;
use crate::crypto::{RoomKeys, SessionKeys};
use crate::discovery::announce::Announcer;
use crate::discovery::beacon::{Beacon, room_tag};
use crate::discovery::listen::Listener;
use crate::discovery::{iface, socket};
use crate::error::Error;
use crate::event::{Event, PeerInfo};
use crate::exercises::ProblemView;
use crate::guard::{RateLimiter, Warner};
use crate::id::{MsgId, PeerId};
use crate::identity::Identity;
use crate::protocol::{Body, FileRef, Frame, Hello};
use crate::transport::{self, Ctx};

mod actor;
pub(crate) mod events;

pub use events::{Events, TryRecvError};

/// A submitted message, not yet confirmed: await it for its id, or for the reason it was refused.
pub type Pending = std::pin::Pin<Box<dyn std::future::Future<Output = Result<MsgId, Error>> + Send>>;

/// A submitted batch, not yet confirmed: await it for each message's id or refusal, in the order
/// submitted (or for [`Error::Stopped`] when the node is gone).
pub type PendingBatch =
    std::pin::Pin<Box<dyn std::future::Future<Output = Result<Vec<Result<MsgId, Error>>, Error>> + Send>>;

/// Messages in one [`Node::submit_batch`] at most.
pub const MAX_BATCH: usize = 4096;

/// A request to the node actor.
#[derive(Debug)]
pub(crate) enum Command {
    Send { to: Option<PeerId>, body: Body, files: Vec<FileRef>, reply: oneshot::Sender<Result<MsgId, Error>> },
    SendBatch { msgs: Vec<(Option<PeerId>, Body)>, reply: oneshot::Sender<Vec<Result<MsgId, Error>>> },
    Peers(oneshot::Sender<Vec<PeerInfo>>),
    Problems(oneshot::Sender<Vec<ProblemView>>),
    History(usize, oneshot::Sender<Result<Vec<crate::event::Message>, Error>>),
    FindPeer(String, oneshot::Sender<Result<PeerId, Error>>),
    FindProblem(String, oneshot::Sender<Result<MsgId, Error>>),
    FindAnswer(String, oneshot::Sender<Result<MsgId, Error>>),
    Stats(oneshot::Sender<Stats>),
    Shutdown,
}

/// How much a node holds, for diagnostics (`lanpeer doctor`, the benchmarks, the tests that show
/// each bound holds against a hostile member).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Stats {
    /// Live sessions.
    pub sessions: usize,
    /// Members kept for store and forward (with a session or not).
    pub members: usize,
    /// Entries of the peer table (listed or not).
    pub table: usize,
    /// Problems, answers and feedback in the index of exercises.
    pub exercises: usize,
    /// Messages held back ahead of a missing one, in all streams, and their bytes.
    pub ahead: (usize, usize),
    /// Catch-up messages held for their authors' streams, and their bytes.
    pub held: (usize, usize),
    /// Messages stored.
    pub stored: u64,
}

/// A running peer. Clone it freely; every clone talks to the same node.
#[derive(Debug, Clone)]
pub struct Node {
    id: PeerId,
    listen: SocketAddr,
    cmd: mpsc::Sender<Command>,
    actor: Arc<Mutex<Option<JoinHandle<()>>>>,
    files: Option<Arc<FilesHandle>>,
    bounds: crate::files::prepare::Bounds,
}

/// The files part of a node that has a data dir.
#[derive(Debug)]
struct FilesHandle {
    files: crate::files::Files,
    downloads: std::path::PathBuf,
}

/// A warning about one address and kind is repeated at most this often.
const WARN_EVERY: std::time::Duration = std::time::Duration::from_secs(30);

/// Largest title of a problem, in bytes.
pub const MAX_TITLE: usize = crate::text::MAX_TITLE;

impl Node {
    /// Start a peer: open the data dir, pick interfaces, bind the sockets, start the tasks.
    /// The first event is always [`Event::Ready`].
    pub async fn start(config: Config) -> Result<(Node, Events), Error> {
        let name = transport::handshake::clean_name(&config.name);
        if name.is_empty() {
            return Err(Error::BadText("the name is empty; give one with --name".into()));
        }
        if config.room.trim().is_empty() || config.room.len() > 200 {
            return Err(Error::BadText("the room name must be 1 to 200 bytes long; give one with --room".into()));
        }
        if let Some(code) = &config.teacher
            && !code.room.is_empty()
            && code.room != config.room
        {
            return Err(Error::BadText(format!(
                "the teacher's code is for room \"{}\", not \"{}\"; start with --room {} (or check the code)",
                code.room, config.room, code.room
            )));
        }
        let room_keys = match &config.passphrase {
            Some(p) if p.expose().is_empty() => {
                return Err(Error::BadText("the passphrase is empty; give the room's passphrase".into()));
            }
            // Argon2id takes tens of milliseconds: off the async threads.
            Some(p) => {
                let (room, p) = (config.room.clone(), p.clone());
                Some(
                    tokio::task::spawn_blocking(move || RoomKeys::derive(&room, &p))
                        .await
                        .map_err(|_| Error::BadText("could not derive the room key".into()))?,
                )
            }
            None => None,
        };
        let identity = Identity::open(config.data_dir.as_deref())?;
        let me = identity.id;
        let store = crate::store::Store::open(config.data_dir.as_deref(), me, &config.room)?;
        // Files need a data dir (their store is `<data dir>/files`).
        let files = match &config.data_dir {
            Some(dir) => {
                let fstore = Arc::new(crate::files::store::Store::open(&dir.join("files"))?);
                let (control, control_rx) = mpsc::unbounded_channel();
                let (frames, frames_rx) = mpsc::channel(256);
                Some((crate::files::Files { store: fstore, control, frames }, control_rx, frames_rx))
            }
            None => None,
        };
        let all = iface::scan().map_err(|source| Error::Socket { what: "interface list", source })?;
        let selected = iface::select(&all, &config.interfaces, true)?;

        let udp = Arc::new(socket::open(config.discovery_port)?);
        // IPv6 discovery is an addition: without IPv6 (disabled in the kernel, say) the peer
        // runs on IPv4 alone, as before.
        let udp6 = match socket::open_v6(config.discovery_port) {
            Ok(s) => Some(Arc::new(s)),
            Err(e) => {
                if selected.iter().any(|i| i.is_v6()) {
                    tracing::warn!(error = %e, "no IPv6 discovery socket: peers are found by IPv4 broadcast only");
                } else {
                    tracing::debug!(error = %e, "no IPv6 discovery socket");
                }
                None
            }
        };
        let loopback_only = selected.iter().all(|i| i.loopback);
        let bind_ip = if loopback_only { IpAddr::V4(Ipv4Addr::LOCALHOST) } else { IpAddr::V4(Ipv4Addr::UNSPECIFIED) };
        let mut tcp = transport::accept::listen(SocketAddr::from((bind_ip, config.tcp_port)));
        if config.tcp_port_fallback && tcp.as_ref().is_err_and(|e| e.kind() == std::io::ErrorKind::AddrInUse) {
            tracing::info!(
                port = config.tcp_port,
                "the session port is taken (another peer on this computer?); using any free port"
            );
            tcp = transport::accept::listen(SocketAddr::from((bind_ip, 0)));
        }
        let tcp = tcp.map_err(|source| {
            if source.kind() == std::io::ErrorKind::AddrInUse {
                Error::PortInUse { what: "session (TCP)", port: config.tcp_port, flag: "--tcp-port" }
            } else {
                Error::Socket { what: "session (TCP)", source }
            }
        })?;
        let tcp_port = tcp.local_addr().map_err(|source| Error::Socket { what: "session (TCP)", source })?.port();
        // The IPv6 listener: same port, `::1` when only loopback is selected, `::` otherwise.
        let bind6 = if loopback_only { Ipv6Addr::LOCALHOST } else { Ipv6Addr::UNSPECIFIED };
        let tcp6 = match transport::accept::listen(SocketAddr::from((bind6, tcp_port))) {
            Ok(l) => Some(l),
            Err(e) => {
                if selected.iter().any(|i| i.is_v6()) {
                    tracing::warn!(error = %e, port = tcp_port, "no IPv6 session listener: peers reach this one over IPv4 only");
                } else {
                    tracing::debug!(error = %e, port = tcp_port, "no IPv6 session listener");
                }
                None
            }
        };
        // Shown to the user: an IPv4 address first, then a routable IPv6 one, then link-local.
        let shown = selected
            .iter()
            .min_by_key(|i| match i.ip {
                IpAddr::V4(_) => 0,
                ip if !iface::is_link_local(ip) => 1,
                _ => 2,
            })
            .expect("select() returned at least one interface");
        let listen = shown.socket_addr(tcp_port);

        let incarnation = crate::peers::new_incarnation();
        let hello = Hello {
            id: me,
            identity: identity.keys.identity,
            incarnation,
            name: name.clone(),
            room: config.room.clone(),
            tcp_port,
            props: config.props.clone(),
        };
        let hello_bytes = codec::encode(&Frame::Hello(hello))
            .ok()
            .filter(|b| b.len() <= transport::HANDSHAKE_MAX_FRAME)
            .ok_or_else(|| Error::BadText("the name, room or role is too long; shorten it".into()))?;
        let (cmd_tx, cmd_rx) = mpsc::channel(1024);
        let (heard_tx, heard_rx) = mpsc::channel(1024);
        let latest = Arc::new(crate::discovery::listen::Latest::default());
        let (sess_tx, sess_rx) = mpsc::channel(4096);
        let (events_tx, events_rx) = events::channel();
        let (iface_tx, iface_rx) = watch::channel(selected.clone());
        let iface_watch = iface_rx.clone();
        let cancel = CancellationToken::new();
        let warner = Arc::new(Warner::new(events_tx.clone(), WARN_EVERY));
        // The members the store remembers are known dialers from the start (transport::slots).
        let slots = transport::slots::Slots::new(&config);
        for (id, _) in store.members_since(0) {
            slots.know(id);
        }
        let ctx = Arc::new(Ctx {
            me,
            room: config.room.clone(),
            hello: hello_bytes,
            handshake_timeout: config.handshake_timeout,
            keepalive: config.keepalive,
            quiet_keepalive: config.quiet_keepalive.max(config.keepalive),
            idle_timeout: config.expiry,
            // The codec refuses anything larger, whatever the config says.
            max_frame: config.max_frame.min(codec::MAX_ENCODED),
            outbox_capacity: config.outbox_capacity,
            outbox_max_bytes: config.outbox_max_bytes.max(2 * config.max_frame.min(codec::MAX_ENCODED)),
            actor: sess_tx,
            tracker: TaskTracker::new(),
            cancel: cancel.child_token(),
            slots,
            dialing: Arc::new(Semaphore::new(config.max_dials.max(1))),
            crossing: crate::transport::crossing::Crossing::new(me),
            keys: SessionKeys { statics: identity.keys.clone(), psk: room_keys.as_ref().map(|k| k.psk.clone()) },
            warner: warner.clone(),
            limit_loopback: config.limit_loopback,
            conn_burst: config.conn_burst_per_ip,
            conn_per_sec: config.conn_per_sec_per_ip,
            files: files.as_ref().map(|(f, _, _)| f.clone()),
        });

        let tag = room_tag(&config.room);
        let announce_cancel = cancel.child_token();
        let wake = Arc::new(Notify::new());
        let announcer = Announcer {
            socket: udp.clone(),
            socket6: udp6.clone(),
            joined: Vec::new(),
            beacon: Beacon { id: me, incarnation, tcp_port, room_tag: tag, farewell: false },
            port: config.discovery_port,
            wanted: config.interfaces.clone(),
            ifaces: iface_tx,
            interval: config.beacon_interval,
            rescan: config.rescan_interval,
            wake: wake.clone(),
            key: room_keys.as_ref().map(|k| k.beacon.clone()),
        };
        let listener = Listener {
            socket: udp,
            socket6: udp6,
            me,
            room_tag: tag,
            ifaces: iface_rx,
            tx: heard_tx,
            latest: latest.clone(),
            seen: std::collections::HashMap::new(),
            room: config.room.clone(),
            key: room_keys.as_ref().map(|k| k.beacon.clone()),
            per_source: RateLimiter::new(config.beacon_burst_per_ip, config.beacon_per_sec_per_ip),
            limit_loopback: config.limit_loopback,
            warner,
        };
        // Ready first: the tasks below may report warnings at once.
        let names: Vec<String> = selected.iter().map(|i| format!("{} {}", i.name, i.ip)).collect();
        tracing::info!(id = %me, %name, room = %config.room, %listen, interfaces = %names.join(", "), "peer up");
        let role = crate::event::role(&config.props).map(str::to_string);
        let room_code = crate::trust::RoomCode::of(&config.room, me).to_string();
        let _ = events_tx.send(vec![Event::Ready {
            id: me,
            name: name.clone(),
            room: config.room.clone(),
            listen,
            role,
            room_code,
        }]);
        let net_cancel = cancel.child_token();
        let announce = tokio::spawn(announcer.run(announce_cancel.clone()));
        let listen_task = tokio::spawn(listener.run(net_cancel.clone()));
        let accept = tokio::spawn(transport::accept::run(tcp, tcp6, ctx.clone(), net_cancel.clone()));
        let mut tasks = vec![announce, listen_task, accept];
        let mut files_handle = None;
        if let Some((f, control_rx, frames_rx)) = files {
            let known = store.with_files().iter().map(|s| crate::files::Attached::of(&s.message)).collect();
            let downloads = config
                .downloads
                .clone()
                .or_else(crate::config::default_downloads)
                .unwrap_or_else(|| config.data_dir.clone().unwrap_or_default().join("downloads"))
                .join(crate::files::names::safe_part(&config.room));
            let settings = crate::files::engine::Settings {
                me,
                downloads: downloads.clone(),
                max_file: config.max_file,
                max_files: config.max_files,
            };
            let engine = crate::files::engine::Engine::new(settings, f.store.clone(), events_tx.clone(), known);
            tasks.push(tokio::spawn(engine.run(control_rx, frames_rx, cancel.child_token())));
            files_handle = Some(Arc::new(FilesHandle { files: f, downloads }));
        }

        let bounds = crate::files::prepare::Bounds { max_file: config.max_file, max_files: config.max_files };
        let actor = actor::Actor::new(actor::Parts {
            identity,
            store,
            name,
            config,
            ctx,
            events: events_tx,
            cancel,
            announce_cancel,
            net_cancel,
            wake_announcer: wake,
            ifaces: iface_watch,
            latest,
            tasks,
            files: files_handle.as_ref().map(|h| h.files.clone()),
        })?;
        let handle = tokio::spawn(actor.run(cmd_rx, heard_rx, sess_rx));
        let node = Node {
            id: me,
            listen,
            cmd: cmd_tx,
            actor: Arc::new(Mutex::new(Some(handle))),
            files: files_handle,
            bounds,
        };
        Ok((node, events_rx))
    }

    /// This peer's id.
    pub fn id(&self) -> PeerId {
        self.id
    }

    /// The address sessions reach this peer on.
    pub fn listen_addr(&self) -> SocketAddr {
        self.listen
    }

    async fn ask<T>(&self, make: impl FnOnce(oneshot::Sender<T>) -> Command) -> Result<T, Error> {
        let (tx, rx) = oneshot::channel();
        self.cmd.send(make(tx)).await.map_err(|_| Error::Stopped)?;
        rx.await.map_err(|_| Error::Stopped)
    }

    async fn send(&self, to: Option<PeerId>, body: Body) -> Result<MsgId, Error> {
        self.submit(to, body).await?.await
    }

    /// Hand a message to the node and return at once with a [`Pending`] that resolves to its id
    /// (or the refusal) once it is stored. Messages submitted one after another keep their order,
    /// so a caller can have many in flight: the node stores a whole batch of them in one
    /// transaction. `to`: `None` for everyone, or one peer.
    pub async fn submit(&self, to: Option<PeerId>, body: Body) -> Result<Pending, Error> {
        self.submit_with(to, body, Vec::new()).await
    }

    /// [`Node::submit`] with files attached (from [`Node::prepare_files`]), in the same order as
    /// the messages submitted before and after it.
    pub async fn submit_with(&self, to: Option<PeerId>, body: Body, files: Vec<FileRef>) -> Result<Pending, Error> {
        let (reply, rx) = oneshot::channel();
        self.cmd.send(Command::Send { to, body, files, reply }).await.map_err(|_| Error::Stopped)?;
        Ok(Box::pin(async move { rx.await.map_err(|_| Error::Stopped)? }))
    }

    /// Submit several messages as one command: each is checked, stored and sent as [`Node::submit`]
    /// would (its own id, its own [`Event::Message`], the same order), and the returned
    /// [`PendingBatch`] resolves, once they are all stored, to one result per message in the order
    /// given (an id, or why that message was refused; a refusal does not stop the others). At most
    /// [`MAX_BATCH`] messages (more is refused whole). Batches submitted one after another keep
    /// their order with each other and with `submit`.
    pub async fn submit_batch(&self, msgs: Vec<(Option<PeerId>, Body)>) -> Result<PendingBatch, Error> {
        if msgs.len() > MAX_BATCH {
            return Err(Error::BadText(format!("a batch holds at most {MAX_BATCH} messages; split it")));
        }
        if msgs.iter().map(|(_, b)| crate::limits::text_len(b)).sum::<usize>() > crate::limits::BATCH_BYTES {
            return Err(Error::BadText(format!(
                "a batch holds at most {} of text; split it",
                crate::limits::human(crate::limits::BATCH_BYTES)
            )));
        }
        let (reply, rx) = oneshot::channel();
        self.cmd.send(Command::SendBatch { msgs, reply }).await.map_err(|_| Error::Stopped)?;
        Ok(Box::pin(async move { rx.await.map_err(|_| Error::Stopped) }))
    }

    /// Chat to everyone listed.
    pub async fn chat(&self, text: impl Into<String>) -> Result<MsgId, Error> {
        self.send(None, Body::Chat { text: text.into() }).await
    }

    /// Chat to one peer only.
    pub async fn private_chat(&self, to: PeerId, text: impl Into<String>) -> Result<MsgId, Error> {
        self.send(Some(to), Body::Chat { text: text.into() }).await
    }

    /// Post a problem to everyone. With `private_answers`, answers go to this peer only (a quiz).
    pub async fn post_problem(
        &self,
        title: impl Into<String>,
        body: impl Into<String>,
        private_answers: bool,
    ) -> Result<MsgId, Error> {
        self.send(None, Body::Problem { title: title.into(), body: body.into(), private_answers }).await
    }

    /// Answer a known problem (refused with [`Error::UnknownProblem`] otherwise).
    pub async fn answer(&self, problem: MsgId, text: impl Into<String>) -> Result<MsgId, Error> {
        self.send(None, Body::Answer { problem, text: text.into() }).await
    }

    /// Give feedback on a known answer (refused with [`Error::UnknownAnswer`] otherwise).
    pub async fn feedback(&self, answer: MsgId, text: impl Into<String>) -> Result<MsgId, Error> {
        self.send(None, Body::Feedback { answer, text: text.into() }).await
    }

    /// Hash the files and folders at `paths` and copy them into this peer's file store: the
    /// references to attach to a message ([`Node::send_with`]). A folder is its files, named by
    /// their path from its parent (`src/a.py`); its links are not followed. Refused with one
    /// plain sentence: no such file, too big (`--max-file`), too many, the disk full.
    pub async fn prepare_files(&self, paths: Vec<std::path::PathBuf>) -> Result<Vec<FileRef>, Error> {
        let Some(h) = &self.files else {
            return Err(Error::Files("this peer keeps no data directory, so it cannot send files".into()));
        };
        let (store, bounds) = (h.files.store.clone(), self.bounds);
        tokio::task::spawn_blocking(move || crate::files::prepare::prepare(&store, &paths, bounds))
            .await
            .map_err(|_| Error::Stopped)?
            .map_err(Error::Files)
    }

    /// Send a message with files attached (from [`Node::prepare_files`]): to everyone, or to
    /// `to` only. With files, a chat's, an answer's or a feedback's text may be empty.
    pub async fn send_with(&self, to: Option<PeerId>, body: Body, files: Vec<FileRef>) -> Result<MsgId, Error> {
        let (reply, rx) = oneshot::channel();
        self.cmd.send(Command::Send { to, body, files, reply }).await.map_err(|_| Error::Stopped)?;
        rx.await.map_err(|_| Error::Stopped)?
    }

    /// Where a file's content is kept, once this peer holds all of it (to serve it to the page).
    pub fn file_content(&self, f: &FileRef) -> Option<std::path::PathBuf> {
        self.files.as_ref()?.files.store.complete_path(&f.chunks)
    }

    /// The folder received files are saved in (`None` without a data dir).
    pub fn downloads(&self) -> Option<std::path::PathBuf> {
        self.files.as_ref().map(|h| h.downloads.clone())
    }

    /// The listed peers, by name.
    pub async fn peers(&self) -> Result<Vec<PeerInfo>, Error> {
        self.ask(Command::Peers).await
    }

    /// Every problem seen, with its answers and feedback.
    pub async fn problems(&self) -> Result<Vec<ProblemView>, Error> {
        self.ask(Command::Problems).await
    }

    /// The last `limit` messages of every kind this peer sent or received, oldest first (from
    /// the history database, so across restarts).
    pub async fn history(&self, limit: usize) -> Result<Vec<crate::event::Message>, Error> {
        self.ask(|r| Command::History(limit, r)).await?
    }

    /// The listed peer a person means: a name, or a prefix of an id.
    pub async fn find_peer(&self, text: &str) -> Result<PeerId, Error> {
        self.ask(|r| Command::FindPeer(text.to_string(), r)).await?
    }

    /// The problem a person means: a full id, or `<id prefix>-<seq>`.
    pub async fn find_problem(&self, text: &str) -> Result<MsgId, Error> {
        self.ask(|r| Command::FindProblem(text.to_string(), r)).await?
    }

    /// The answer a person means: a full id, or `<id prefix>-<seq>`.
    pub async fn find_answer(&self, text: &str) -> Result<MsgId, Error> {
        self.ask(|r| Command::FindAnswer(text.to_string(), r)).await?
    }

    /// How much the node holds now.
    pub async fn stats(&self) -> Result<Stats, Error> {
        self.ask(Command::Stats).await
    }

    /// Leave gracefully: farewell beacons, `Bye` on every session, queued frames flushed, every
    /// task ended. Returns when the node is down; the event stream then ends.
    pub async fn shutdown(&self) {
        let _ = self.cmd.send(Command::Shutdown).await;
        if let Some(h) = self.actor.lock().await.take() {
            let _ = h.await;
        }
    }
}
