//! The files engine: one task that asks peers for files, serves what it holds, fetches chunks
//! from every peer that has them, checks each, saves whole files to the user's downloads, and
//! reports progress.
//!
//! How a file moves (docs/protocol.md, "Files"): a peer that learns of a message attaching a
//! file it may see asks the peers that may hold it ([`Frame::FileAsk`]: the whole room for a
//! room message, the author or the addressee for a private one). Each answers with the chunks it
//! holds ([`Frame::FileHave`]), and tells again as it holds more. The fetcher takes the list of
//! chunk hashes from one of them (checked against the message's hash), then asks each source for
//! a few chunks at a time ([`Frame::FileWant`]), the rarest first, so that chunks spread from
//! the author once and then between the others: the room swarms. A chunk that does not match its
//! hash is fetched again elsewhere, and a peer that sends [`BAD_MAX`] such chunks is ignored.
//!
//! Who may have what: a file is given only under a message visible to the asker, and only when
//! this peer holds it under such a message too (a room message naming the hash of a private file
//! does not make that file the room's: docs/security.md, "Files").
//!
//! Bounds: per source [`PER_SOURCE`] chunks in flight, per file [`PER_FILE`]; per asker
//! [`SERVE_QUEUE`] parts queued; the memory of a file is its list of hashes and bitmaps, never
//! its content (a chunk is read, or received, checked and written, one at a time).

use std::path::{Path, PathBuf};
use std::sync::{Arc, Weak};
use std::time::{Duration, Instant};

use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use super::store::{Held, Store};
use super::{Attached, CHUNK, Control, FromPeer, Hash, LIST_PIECE, chunk_count, names, piece_count};
use crate::codec::{self, OutFrame};
use crate::event::Event;
use crate::id::{FastMap as HashMap, FastSet as HashSet, MsgId, PeerId};
use crate::node::events::EventSender;
use crate::protocol::{FileAsk, FileHave, FileKey, FileNone, FilePart, FileRef, FileWant, Frame, Have, Part};
use crate::transport::outbox::Outbox;

/// How often the engine looks at timeouts, progress and what to tell.
const TICK: Duration = Duration::from_millis(100);
/// Chunks asked of one source at once, at most: enough to keep a link busy, few enough that a
/// chat on the same session waits behind little.
pub const PER_SOURCE: u32 = 4;
/// Chunks in flight for one file, at most.
pub const PER_FILE: usize = 64;
/// Parts queued for one asker at most; more wants are refused (an honest fetcher asks for
/// [`PER_SOURCE`] at a time).
pub const SERVE_QUEUE: usize = 16;
/// Chunks that do not match their hash before a peer's file frames are ignored.
pub const BAD_MAX: u32 = 3;
/// A chunk asked for and not received in this long is asked of another source.
const CHUNK_TIMEOUT: Duration = Duration::from_secs(20);
/// The list asked for and not received in this long is asked of another source.
const LIST_TIMEOUT: Duration = Duration::from_secs(30);
/// Peers that hold nothing of a file yet are asked again this often while it is fetched.
const ASK_AGAIN: Duration = Duration::from_secs(10);
/// New chunks are told to the peers fetching the same file this often.
const HAVE_EVERY: Duration = Duration::from_millis(250);
/// A file's progress is reported this often at most.
const PROGRESS_EVERY: Duration = Duration::from_millis(500);
/// What has been received of a file is saved (its bitmap) this often.
const SAVE_EVERY: Duration = Duration::from_secs(2);
/// A fetch stopped by a full disk or a failed write is tried again after this long.
const RETRY_AFTER: Duration = Duration::from_secs(30);
/// Most chunks examined to choose one to ask for.
const PICK_SCAN: usize = 512;
/// The file frames taken from the channel in one go.
const BATCH: usize = 64;

/// Where and how much.
#[derive(Debug, Clone)]
pub struct Settings {
    /// This peer.
    pub me: PeerId,
    /// Received files go under this folder (`<downloads>/<author (id8)>/<name>`).
    pub downloads: PathBuf,
    /// Largest file fetched.
    pub max_file: u64,
    /// Most bytes of files the store keeps.
    pub max_files: u64,
}

/// A message that attaches the file, at its place in the message's list.
#[derive(Debug, Clone)]
struct Grant {
    msg: MsgId,
    to: Option<PeerId>,
    index: u32,
    name: String,
    folder: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Stage {
    /// Known, not being fetched (ours, or refused by a bound).
    Idle,
    /// What a previous run received is being checked.
    Checking,
    Fetching,
    /// Every chunk is here: the whole is being checked and saved.
    Finishing,
    Complete,
    /// Not fetched: a bound, or its content does not match its message.
    Failed,
}

#[derive(Debug)]
struct Source {
    /// One bit per chunk it holds.
    bits: Vec<u8>,
    in_flight: u32,
}

#[derive(Debug)]
struct Fetch {
    /// The message it is fetched under.
    via: FileKey,
    sources: HashMap<PeerId, Source>,
    asked: HashMap<PeerId, Instant>,
    /// Chunks asked for: of whom, since when.
    pending: HashMap<u32, (PeerId, Instant)>,
    /// The list, while it arrives (from one source).
    pieces: Vec<Option<Vec<u8>>>,
    list_from: Option<(PeerId, Instant)>,
    list_bad: HashSet<PeerId>,
    /// Chunks not yet held (compacted on the tick).
    missing: Vec<u32>,
    /// How many sources hold each chunk.
    avail: Vec<u16>,
    /// Bytes held, and at the last progress report.
    got: u64,
    reported: (Instant, u64),
    saved_at: Instant,
    unsaved: bool,
    paused_until: Option<Instant>,
}

#[derive(Debug)]
struct Entry {
    r: FileRef,
    grants: Vec<Grant>,
    list: Option<Arc<Vec<Hash>>>,
    have: Vec<u8>,
    had: u64,
    n: u64,
    stage: Stage,
    /// The content may be given under room messages.
    room: bool,
    /// Peers fetching it that were told what this peer holds (and are told what it gets).
    interested: HashSet<PeerId>,
    /// Chunks got since the peers fetching it were last told.
    fresh: Vec<u32>,
    fetch: Option<Fetch>,
}

fn bit(bits: &[u8], i: u64) -> bool {
    bits.get((i / 8) as usize).is_some_and(|b| b & (1 << (i % 8)) != 0)
}

fn set_bit(bits: &mut [u8], i: u64) {
    if let Some(b) = bits.get_mut((i / 8) as usize) {
        *b |= 1 << (i % 8);
    }
}

fn clear_bit(bits: &mut [u8], i: u64) {
    if let Some(b) = bits.get_mut((i / 8) as usize) {
        *b &= !(1 << (i % 8));
    }
}

/// A bitmap of `n` bits, all set.
fn full(n: u64) -> Vec<u8> {
    let mut v = vec![0xFF; n.div_ceil(8) as usize];
    if !n.is_multiple_of(8)
        && let Some(last) = v.last_mut()
    {
        *last = (1u8 << (n % 8)) - 1;
    }
    v
}

impl Entry {
    fn new(r: &FileRef) -> Entry {
        let n = chunk_count(r.size);
        Entry {
            r: r.clone(),
            grants: Vec::new(),
            list: None,
            have: vec![0; n.div_ceil(8) as usize],
            had: 0,
            n,
            stage: Stage::Idle,
            room: false,
            interested: HashSet::default(),
            fresh: Vec::new(),
            fetch: None,
        }
    }

    fn complete(&self) -> bool {
        self.stage == Stage::Complete
    }

    fn holds(&self, i: u64) -> bool {
        self.complete() || bit(&self.have, i)
    }

    /// What this peer tells of it.
    fn have(&self) -> Have {
        if self.complete() { Have::All } else { Have::Bits(self.have.clone()) }
    }

    fn chunk_len(&self, i: u64) -> usize {
        (self.r.size - i * CHUNK as u64).min(CHUNK as u64) as usize
    }
}

/// What blocking work (on tokio's blocking threads) comes back with.
#[derive(Debug)]
enum Done {
    /// A previous run's part checked.
    Resumed { file: Hash, list: Vec<Hash>, have: Vec<u8>, cleared: usize },
    /// A file complete and checked, and the copies saved; or why not.
    Finished { file: Hash, result: Result<Vec<Saved>, Finish> },
    /// Copies of a file held already, for new messages.
    Copied { saved: Vec<Saved>, failed: Option<String> },
}

#[derive(Debug)]
enum Finish {
    /// The content does not match the message's SHA-256 (its author lied).
    Mismatch,
    Io(String),
}

#[derive(Debug)]
struct Saved {
    msg: MsgId,
    index: u32,
    name: String,
    size: u64,
    sha256: Hash,
    path: PathBuf,
}

/// The engine's state; [`Engine::run`] is its task.
pub struct Engine {
    s: Settings,
    store: Arc<Store>,
    events: EventSender,
    sessions: HashMap<PeerId, Vec<(u64, Weak<Outbox>)>>,
    files: HashMap<Hash, Entry>,
    /// Chunks each peer sent that did not match their hash.
    bad: HashMap<PeerId, u32>,
    /// (message, index) of the files saved to the downloads (`files/saved.log`).
    saved: HashSet<(MsgId, u32)>,
    done_tx: mpsc::UnboundedSender<Done>,
    done_rx: mpsc::UnboundedReceiver<Done>,
    /// Files with something to ask for since the last pump.
    dirty: HashSet<Hash>,
    last_have: Instant,
    /// Warnings said once (by their text).
    warned: HashSet<String>,
}

impl std::fmt::Debug for Engine {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Engine").field("files", &self.files.len()).field("sessions", &self.sessions.len()).finish()
    }
}

const SAVED_LOG: &str = "saved.log";

impl Engine {
    /// The engine of `store`, knowing the messages with files stored so far.
    pub fn new(s: Settings, store: Arc<Store>, events: EventSender, known: Vec<Attached>) -> Engine {
        let (done_tx, done_rx) = mpsc::unbounded_channel();
        let saved = std::fs::read_to_string(store.dir().join(SAVED_LOG))
            .unwrap_or_default()
            .lines()
            .filter_map(|l| {
                let (key, _) = l.split_once('\t')?;
                let (msg, index) = key.rsplit_once(':')?;
                Some((msg.parse().ok()?, index.parse().ok()?))
            })
            .collect();
        let mut e = Engine {
            s,
            store,
            events,
            sessions: HashMap::default(),
            files: HashMap::default(),
            bad: HashMap::default(),
            saved,
            done_tx,
            done_rx,
            dirty: HashSet::default(),
            last_have: Instant::now(),
            warned: HashSet::default(),
        };
        e.messages(known);
        e
    }

    /// Run until `cancel`: what the sessions and the actor tell, and the tick.
    pub async fn run(
        mut self,
        mut control: mpsc::UnboundedReceiver<Control>,
        mut frames: mpsc::Receiver<FromPeer>,
        cancel: CancellationToken,
    ) {
        let mut tick = tokio::time::interval(TICK);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                biased;
                _ = cancel.cancelled() => break,
                Some(c) = control.recv() => self.control(c),
                Some(d) = self.done_rx.recv() => self.done(d),
                Some(f) = frames.recv() => {
                    self.frame(f);
                    for _ in 1..BATCH {
                        match frames.try_recv() {
                            Ok(f) => self.frame(f),
                            Err(_) => break,
                        }
                    }
                }
                _ = tick.tick() => self.tick(),
            }
            self.pump_dirty();
        }
        for e in self.files.values_mut() {
            if let Some(f) = &e.fetch
                && f.unsaved
            {
                let _ = self.store.save_have(&e.r, &e.have);
            }
        }
    }

    fn emit(&self, e: Event) {
        let _ = self.events.send(vec![e]);
    }

    fn warn_once(&mut self, text: String) {
        if self.warned.insert(text.clone()) {
            tracing::warn!("{text}");
            self.emit(Event::Warning { message: text });
        }
    }

    // ---- sending -------------------------------------------------------------------------

    fn outbox(&self, peer: &PeerId) -> Option<Arc<Outbox>> {
        self.sessions.get(peer)?.iter().rev().filter_map(|(_, w)| w.upgrade()).find(|o| !o.is_closed())
    }

    fn send(&self, peer: &PeerId, frame: &Frame) {
        let Some(out) = self.outbox(peer) else { return };
        match codec::encode(frame) {
            Ok(b) => {
                let _ = out.push(&mut vec![OutFrame::from(b)]);
            }
            Err(e) => tracing::debug!(error = %e, "file frame not encoded"),
        }
    }

    fn send_bulk(&self, peer: &PeerId, frame: &Frame) -> bool {
        let Some(out) = self.outbox(peer) else { return false };
        if out.bulk_waiting() >= SERVE_QUEUE {
            return false;
        }
        match codec::encode(frame) {
            Ok(b) => out.push_bulk(OutFrame::from(b)).is_ok(),
            Err(_) => false,
        }
    }

    // ---- what the node tells ---------------------------------------------------------------

    fn control(&mut self, c: Control) {
        match c {
            Control::Up { peer, sid, out } => {
                self.sessions.entry(peer).or_default().push((sid, out));
                // Ask it about every file being fetched that it may hold.
                let asks: Vec<FileKey> = self
                    .files
                    .values()
                    .filter_map(|e| e.fetch.as_ref())
                    .filter(|f| self.may_hold(&f.via, &peer))
                    .map(|f| f.via)
                    .collect();
                for key in asks {
                    self.ask(key, peer);
                }
            }
            Control::Down { peer, sid } => {
                let gone = match self.sessions.get_mut(&peer) {
                    Some(v) => {
                        v.retain(|(s, _)| *s != sid);
                        v.is_empty()
                    }
                    None => false,
                };
                if gone {
                    self.sessions.remove(&peer);
                    self.forget_peer(&peer);
                }
            }
            Control::Messages(list) => self.messages(list),
        }
    }

    /// May `peer` hold the file `key` under its message (the room, or the private message's
    /// two ends)?
    fn may_hold(&self, key: &FileKey, peer: &PeerId) -> bool {
        self.files
            .get(&key.file)
            .and_then(|e| e.grants.iter().find(|g| g.msg == key.msg))
            .is_some_and(|g| g.to.is_none() || g.to == Some(*peer) || g.msg.author == *peer)
    }

    /// May this peer give `peer` the file `key`: is the message visible to it, and does this
    /// peer hold the content under such a message?
    fn may_give(&self, e: &Entry, key: &FileKey, peer: &PeerId) -> bool {
        let me = self.s.me;
        e.grants.iter().any(|g| {
            g.msg == key.msg
                && match g.to {
                    None => e.room,
                    Some(to) => (to == *peer || g.msg.author == *peer) && (to == me || g.msg.author == me),
                }
        })
    }

    fn ask(&mut self, key: FileKey, peer: PeerId) {
        if let Some(f) = self.files.get_mut(&key.file).and_then(|e| e.fetch.as_mut()) {
            f.asked.insert(peer, Instant::now());
        }
        self.send(&peer, &Frame::FileAsk(FileAsk { key }));
    }

    fn forget_peer(&mut self, peer: &PeerId) {
        for (h, e) in self.files.iter_mut() {
            e.interested.remove(peer);
            if let Some(f) = &mut e.fetch {
                drop_source(f, peer);
                if f.list_from.is_some_and(|(p, _)| p == *peer) {
                    f.list_from = None;
                }
                self.dirty.insert(*h);
            }
        }
    }

    fn messages(&mut self, list: Vec<Attached>) {
        tracing::trace!(messages = list.len(), "messages with files");
        let me = self.s.me;
        let mut touched = Vec::new();
        for a in list {
            let folder = names::author_folder(&a.author_name, &a.id.author);
            for (index, r) in a.files.iter().enumerate() {
                let e = self.files.entry(r.chunks).or_insert_with(|| Entry::new(r));
                if e.r.size != r.size || e.r.sha256 != r.sha256 {
                    tracing::debug!(msg = %a.id.short(), "a file named by two messages with two sizes: the later one ignored");
                    continue;
                }
                let index = index as u32;
                if e.grants.iter().any(|g| g.msg == a.id && g.index == index) {
                    continue;
                }
                e.grants.push(Grant { msg: a.id, to: a.to, index, name: r.name.clone(), folder: folder.clone() });
                if a.id.author == me {
                    // Ours: in the store since it was prepared.
                    if e.list.is_none()
                        && let Held::Complete { list } = self.store.held(r)
                    {
                        e.list = Some(Arc::new(list));
                        e.stage = Stage::Complete;
                        e.fetch = None;
                    }
                    if a.to.is_none() && e.complete() {
                        e.room = true;
                        self.store.mark_room(&r.chunks);
                    }
                } else if !e.room && e.complete() && a.to.is_none() && self.store.is_room(&r.chunks) {
                    e.room = true;
                }
                touched.push(r.chunks);
            }
        }
        touched.dedup();
        for h in touched {
            self.consider(h);
        }
    }

    /// A file gained a message: save it for that message if it is here, else fetch it.
    fn consider(&mut self, h: Hash) {
        let me = self.s.me;
        let Some(e) = self.files.get_mut(&h) else { return };
        if e.stage == Stage::Idle && !e.complete() {
            match self.store.held(&e.r) {
                Held::Complete { list } => {
                    e.list = Some(Arc::new(list));
                    e.stage = Stage::Complete;
                    e.room |= self.store.is_room(&h);
                }
                _ if e.grants.iter().all(|g| g.msg.author == me) => {}
                _ => return self.start(h),
            }
        }
        // A file fetched under one message is not fetched again under another: its chunks are
        // given under the message they were fetched under (see `may_give`).
        if e.complete() {
            self.save_copies(h);
        }
    }

    /// Begin (or resume) fetching `h`, within the bounds.
    fn start(&mut self, h: Hash) {
        let me = self.s.me;
        let Some(e) = self.files.get(&h) else { return };
        let r = e.r.clone();
        let g = e.grants.iter().filter(|g| g.msg.author != me).min_by_key(|g| g.to.is_some()).cloned();
        let Some(g) = g else { return };
        let from = self.files[&h].grants.first().map(|g| g.folder.clone()).unwrap_or_default();
        let human = super::prepare::human_bytes;
        if r.size > self.s.max_file {
            self.files.get_mut(&h).expect("present").stage = Stage::Failed;
            return self.warn_once(format!(
                "{} from {from} ({}) is not downloaded: it is larger than {} (--max-file)",
                r.name,
                human(r.size),
                human(self.s.max_file)
            ));
        }
        let held = self.store.held(&r);
        if matches!(held, Held::Nothing) && self.store.total_bytes() + r.size > self.s.max_files {
            self.files.get_mut(&h).expect("present").stage = Stage::Failed;
            return self.warn_once(format!(
                "{} from {from} is not downloaded: the files kept by this peer would pass {} (--max-files); remove some from {}",
                r.name,
                human(self.s.max_files),
                self.store.dir().display()
            ));
        }
        let now = Instant::now();
        let e = self.files.get_mut(&h).expect("present");
        let n = e.n;
        e.fetch = Some(Fetch {
            via: FileKey { msg: g.msg, file: h },
            sources: HashMap::default(),
            asked: HashMap::default(),
            pending: HashMap::default(),
            pieces: Vec::new(),
            list_from: None,
            list_bad: HashSet::default(),
            missing: Vec::new(),
            avail: vec![0; n as usize],
            got: 0,
            reported: (now, 0),
            saved_at: now,
            unsaved: false,
            paused_until: None,
        });
        match held {
            Held::Complete { list } => {
                e.list = Some(Arc::new(list));
                e.stage = Stage::Complete;
                e.fetch = None;
                self.save_copies(h);
            }
            Held::Partly { list, mut have } => {
                e.stage = Stage::Checking;
                let store = self.store.clone();
                let done = self.done_tx.clone();
                tokio::task::spawn_blocking(move || {
                    let cleared = store.verify(&r, &list, &mut have);
                    let _ = done.send(Done::Resumed { file: h, list, have, cleared });
                });
            }
            Held::Nothing if n == 0 => {
                // An empty file: its list is empty, and checked without asking anyone.
                if super::store::list_hash(&[]) == h {
                    self.got_list(h, Vec::new());
                } else {
                    e.stage = Stage::Failed;
                }
            }
            Held::Nothing => {
                e.stage = Stage::Fetching;
                self.ask_all(h);
            }
        }
    }

    /// Ask every peer that may hold `h` under the message it is fetched under.
    fn ask_all(&mut self, h: Hash) {
        let Some(via) = self.files.get(&h).and_then(|e| e.fetch.as_ref()).map(|f| f.via) else { return };
        let peers: Vec<PeerId> = self.sessions.keys().copied().filter(|p| self.may_hold(&via, p)).collect();
        for p in peers {
            self.ask(via, p);
        }
    }

    fn save_copies(&mut self, h: Hash) {
        let me = self.s.me;
        let Some(e) = self.files.get(&h) else { return };
        let todo: Vec<Grant> = e
            .grants
            .iter()
            .filter(|g| g.msg.author != me && !self.saved.contains(&(g.msg, g.index)))
            .cloned()
            .collect();
        if todo.is_empty() {
            return;
        }
        for g in &todo {
            self.saved.insert((g.msg, g.index));
        }
        let Some(from) = self.store.complete_path(&h) else { return };
        let (r, dir, done) = (e.r.clone(), self.s.downloads.clone(), self.done_tx.clone());
        tokio::task::spawn_blocking(move || {
            let (saved, failed) = copy_all(&from, &dir, &r, &todo);
            let _ = done.send(Done::Copied { saved, failed });
        });
    }

    // ---- what blocking work brings back ------------------------------------------------------

    fn done(&mut self, d: Done) {
        match d {
            Done::Resumed { file, list, have, cleared } => {
                if cleared > 0 {
                    tracing::info!(file = %hex::encode(&file[..4]), cleared, "chunks that did not survive a restart fetched again");
                }
                let Some(e) = self.files.get_mut(&file) else { return };
                e.had = have.iter().map(|b| b.count_ones() as u64).sum();
                e.have = have;
                e.stage = Stage::Fetching;
                self.got_list(file, list);
                self.ask_all(file);
            }
            Done::Finished { file, result } => {
                let Some(e) = self.files.get_mut(&file) else { return };
                match result {
                    Ok(saved) => {
                        let via_room = e
                            .fetch
                            .as_ref()
                            .is_some_and(|f| e.grants.iter().any(|g| g.msg == f.via.msg && g.to.is_none()));
                        e.stage = Stage::Complete;
                        e.fetch = None;
                        e.room |= via_room;
                        if via_room {
                            self.store.mark_room(&file);
                        }
                        let told: Vec<PeerId> = e.interested.drain().collect();
                        for p in told {
                            self.send(&p, &Frame::FileHave(FileHave { file, have: Have::All }));
                        }
                        self.report_saved(saved);
                        // Messages that named it while it was finishing.
                        self.save_copies(file);
                    }
                    Err(Finish::Mismatch) => {
                        e.stage = Stage::Failed;
                        e.fetch = None;
                        let (name, from) =
                            (e.r.name.clone(), e.grants.first().map(|g| g.folder.clone()).unwrap_or_default());
                        self.store.discard(&file);
                        self.warn_once(format!(
                            "{name} from {from} is not saved: its content does not match the SHA-256 its message names"
                        ));
                    }
                    Err(Finish::Io(why)) => {
                        e.stage = Stage::Fetching;
                        if let Some(f) = &mut e.fetch {
                            f.paused_until = Some(Instant::now() + RETRY_AFTER);
                        }
                        let name = e.r.name.clone();
                        self.warn_once(format!("{name} could not be saved ({why}); lanpeer tries again in 30 s"));
                    }
                }
            }
            Done::Copied { saved, failed } => {
                self.report_saved(saved);
                if let Some(why) = failed {
                    self.warn_once(why);
                }
            }
        }
    }

    fn report_saved(&mut self, saved: Vec<Saved>) {
        use std::io::Write;
        let mut log = String::new();
        for s in &saved {
            log.push_str(&format!("{}:{}\t{}\n", s.msg, s.index, s.path.display()));
        }
        if !log.is_empty()
            && let Ok(mut f) =
                std::fs::OpenOptions::new().create(true).append(true).open(self.store.dir().join(SAVED_LOG))
        {
            let _ = f.write_all(log.as_bytes());
        }
        for s in saved {
            tracing::info!(msg = %s.msg.short(), name = %s.name, path = %s.path.display(), "file saved");
            self.emit(Event::File { message_id: s.msg, name: s.name, size: s.size, sha256: s.sha256, path: s.path });
        }
    }

    // ---- frames from peers -----------------------------------------------------------------

    fn frame(&mut self, f: FromPeer) {
        let peer = f.peer;
        tracing::trace!(peer = %peer.short(), frame = ?std::mem::discriminant(&f.frame), "file frame");
        if self.bad.get(&peer).is_some_and(|n| *n >= BAD_MAX) {
            return;
        }
        match f.frame {
            Frame::FileAsk(FileAsk { key }) => self.asked(peer, key),
            Frame::FileWant(FileWant { key, part }) => self.wanted(peer, key, part),
            Frame::FileHave(FileHave { file, have }) => self.had(peer, file, have),
            Frame::FilePart(FilePart { file, part, data }) => self.part(peer, file, part, data),
            Frame::FileNone(FileNone { file, part }) => self.refused(peer, file, part),
            _ => {}
        }
    }

    fn asked(&mut self, peer: PeerId, key: FileKey) {
        let answer = match self.files.get(&key.file) {
            Some(e) if self.may_give(e, &key, &peer) => Some(e.have()),
            _ => None,
        };
        match answer {
            Some(have) => {
                // It fetches the file: it is told what this peer gets, until it holds it all.
                self.files.get_mut(&key.file).expect("present").interested.insert(peer);
                self.send(&peer, &Frame::FileHave(FileHave { file: key.file, have }));
            }
            None => self.send(&peer, &Frame::FileNone(FileNone { file: key.file, part: None })),
        }
    }

    fn wanted(&mut self, peer: PeerId, key: FileKey, part: Part) {
        let none = Frame::FileNone(FileNone { file: key.file, part: Some(part) });
        let Some(e) = self.files.get(&key.file) else { return self.send(&peer, &none) };
        if !self.may_give(e, &key, &peer) {
            return self.send(&peer, &none);
        }
        let data = match part {
            Part::List(k) => e.list.as_ref().and_then(|l| Store::list_piece(l, k)),
            Part::Chunk(i) if (i as u64) < e.n && e.holds(i as u64) => match self.store.read_chunk(&e.r, i) {
                Ok(d) => Some(d),
                Err(err) => {
                    tracing::debug!(error = %err, "a chunk could not be read");
                    None
                }
            },
            Part::Chunk(_) => None,
        };
        let sent = match data {
            Some(data) => self.send_bulk(&peer, &Frame::FilePart(FilePart { file: key.file, part, data })),
            None => false,
        };
        if !sent {
            self.send(&peer, &none);
        }
    }

    fn had(&mut self, peer: PeerId, file: Hash, have: Have) {
        let Some(e) = self.files.get_mut(&file) else { return };
        if have == Have::All {
            e.interested.remove(&peer);
        }
        let n = e.n;
        let Some(f) = &mut e.fetch else { return };
        let src =
            f.sources.entry(peer).or_insert_with(|| Source { bits: vec![0; n.div_ceil(8) as usize], in_flight: 0 });
        let fetching = !matches!(have, Have::All);
        match have {
            Have::All => set_bits(&mut f.avail, &mut src.bits, full(n)),
            Have::Bits(mut b) => {
                b.resize(n.div_ceil(8) as usize, 0);
                let mask = full(n);
                b.iter_mut().zip(&mask).for_each(|(x, m)| *x &= m);
                set_bits(&mut f.avail, &mut src.bits, b);
            }
            Have::Added(list) => {
                for i in list.into_iter().take(n as usize) {
                    if (i as u64) < n && !bit(&src.bits, i as u64) {
                        set_bit(&mut src.bits, i as u64);
                        f.avail[i as usize] = f.avail[i as usize].saturating_add(1);
                    }
                }
            }
        }
        let via = f.via;
        if fetching {
            // It fetches the file too: it will want what this peer gets.
            if self.files.get(&file).is_some_and(|e| self.may_give(e, &via, &peer)) {
                self.files.get_mut(&file).expect("present").interested.insert(peer);
            }
        }
        self.dirty.insert(file);
    }

    fn part(&mut self, peer: PeerId, file: Hash, part: Part, data: Vec<u8>) {
        let Some(e) = self.files.get_mut(&file) else { return };
        if let Part::Chunk(i) = part
            && (i as u64) < e.n
        {
            return self.chunk(peer, file, i, data);
        }
        let Some(f) = &mut e.fetch else { return };
        match part {
            Part::List(k) => {
                let ok_from = f.list_from.is_some_and(|(p, _)| p == peer);
                let k = k as usize;
                if !ok_from || k >= f.pieces.len() || f.pieces[k].is_some() {
                    return;
                }
                let want = ((e.n as usize).saturating_sub(k * LIST_PIECE)).min(LIST_PIECE) * 32;
                if data.len() != want {
                    return self.bad_list(file, peer);
                }
                f.pieces[k] = Some(data);
                if f.pieces.iter().all(Option::is_some) {
                    let bytes: Vec<u8> = f.pieces.drain(..).flatten().flatten().collect();
                    let list: Vec<Hash> = bytes.chunks_exact(32).map(|c| c.try_into().expect("32")).collect();
                    f.list_from = None;
                    if super::store::list_hash(&list) != file {
                        return self.bad_list(file, peer);
                    }
                    if let Err(err) = self.store.begin(&e.r, &list) {
                        return self.write_failed(file, err);
                    }
                    self.got_list(file, list);
                }
            }
            Part::Chunk(_) => {}
        }
    }

    /// Chunk `i` of `file` from `peer`: checked against its hash, written, counted.
    fn chunk(&mut self, peer: PeerId, file: Hash, i: u32, data: Vec<u8>) {
        let Some(e) = self.files.get_mut(&file) else { return };
        let (held, len, list) = (e.holds(i as u64), e.chunk_len(i as u64), e.list.clone());
        let Some(f) = &mut e.fetch else { return };
        if f.pending.get(&i).is_none_or(|(p, _)| *p != peer) {
            return; // not asked of it (or given up on): dropped
        }
        f.pending.remove(&i);
        if let Some(s) = f.sources.get_mut(&peer) {
            s.in_flight = s.in_flight.saturating_sub(1);
        }
        self.dirty.insert(file);
        let Some(list) = list else { return };
        if held {
            return;
        }
        if data.len() != len || blake3::hash(&data).as_bytes() != &list[i as usize] {
            return self.bad_chunk(file, peer, i);
        }
        if let Err(err) = self.store.write_chunk(&e.r, i, &data) {
            return self.write_failed(file, err);
        }
        set_bit(&mut e.have, i as u64);
        e.had += 1;
        e.fresh.push(i);
        f.got += data.len() as u64;
        f.unsaved = true;
        if e.had == e.n {
            self.finish(file);
        }
    }

    fn refused(&mut self, peer: PeerId, file: Hash, part: Option<Part>) {
        let Some(f) = self.files.get_mut(&file).and_then(|e| e.fetch.as_mut()) else { return };
        match part {
            None => drop_source(f, &peer),
            Some(Part::List(_)) => {
                if f.list_from.is_some_and(|(p, _)| p == peer) {
                    f.list_from = None;
                    f.list_bad.insert(peer);
                }
            }
            Some(Part::Chunk(i)) => {
                if f.pending.get(&i).is_some_and(|(p, _)| *p == peer) {
                    f.pending.remove(&i);
                }
                if let Some(s) = f.sources.get_mut(&peer) {
                    s.in_flight = s.in_flight.saturating_sub(1);
                    if bit(&s.bits, i as u64) {
                        clear_bit(&mut s.bits, i as u64);
                        if let Some(a) = f.avail.get_mut(i as usize) {
                            *a = a.saturating_sub(1);
                        }
                    }
                }
            }
        }
        self.dirty.insert(file);
    }

    fn bad_list(&mut self, file: Hash, peer: PeerId) {
        if let Some(f) = self.files.get_mut(&file).and_then(|e| e.fetch.as_mut()) {
            f.list_from = None;
            f.pieces.clear();
            f.list_bad.insert(peer);
        }
        self.count_bad(peer);
        self.dirty.insert(file);
    }

    fn bad_chunk(&mut self, file: Hash, peer: PeerId, i: u32) {
        tracing::debug!(peer = %peer.short(), chunk = i, "a chunk that does not match its hash dropped");
        self.count_bad(peer);
        self.dirty.insert(file);
    }

    fn count_bad(&mut self, peer: PeerId) {
        let n = self.bad.entry(peer).or_default();
        *n += 1;
        if *n == BAD_MAX {
            let n = *n;
            self.forget_peer(&peer);
            self.warn_once(format!(
                "ignoring the files of the peer {}: it sent {n} parts that do not match their hashes (a broken disk, or forged)",
                peer.short()
            ));
        }
    }

    fn write_failed(&mut self, file: Hash, err: std::io::Error) {
        let Some(e) = self.files.get_mut(&file) else { return };
        if let Some(f) = &mut e.fetch {
            f.paused_until = Some(Instant::now() + RETRY_AFTER);
            for (_, (p, _)) in f.pending.drain() {
                if let Some(s) = f.sources.get_mut(&p) {
                    s.in_flight = s.in_flight.saturating_sub(1);
                }
            }
        }
        let name = e.r.name.clone();
        let text = if err.kind() == std::io::ErrorKind::StorageFull {
            format!("the disk is full: {name} stops arriving until there is space; free some and lanpeer goes on")
        } else {
            format!("{name} cannot be written ({err}); lanpeer tries again in 30 s")
        };
        self.warn_once(text);
    }

    /// The list of `file` is known (checked): fetch its chunks.
    fn got_list(&mut self, file: Hash, list: Vec<Hash>) {
        let Some(e) = self.files.get_mut(&file) else { return };
        if e.list.is_none() && e.n == 0 && self.store.begin(&e.r, &list).is_err() {
            e.stage = Stage::Failed;
            return;
        }
        e.list = Some(Arc::new(list));
        if let Some(f) = &mut e.fetch {
            f.missing = (0..e.n as u32).filter(|&i| !bit(&e.have, i as u64)).collect();
            f.got = e.had.saturating_mul(CHUNK as u64).min(e.r.size);
            f.reported.1 = f.got;
        }
        if e.stage != Stage::Checking {
            e.stage = Stage::Fetching;
        }
        if e.had == e.n {
            self.finish(file);
        } else {
            self.dirty.insert(file);
        }
    }

    fn finish(&mut self, file: Hash) {
        let me = self.s.me;
        let Some(e) = self.files.get_mut(&file) else { return };
        e.stage = Stage::Finishing;
        let todo: Vec<Grant> = e
            .grants
            .iter()
            .filter(|g| g.msg.author != me && !self.saved.contains(&(g.msg, g.index)))
            .cloned()
            .collect();
        for g in &todo {
            self.saved.insert((g.msg, g.index));
        }
        let (store, r, have, dir, done) =
            (self.store.clone(), e.r.clone(), e.have.clone(), self.s.downloads.clone(), self.done_tx.clone());
        tokio::task::spawn_blocking(move || {
            let _ = store.save_have(&r, &have);
            let result = match store.finish(&r) {
                Ok(path) => {
                    let (saved, failed) = copy_all(&path, &dir, &r, &todo);
                    match failed {
                        Some(why) if saved.is_empty() && !todo.is_empty() => Err(Finish::Io(why)),
                        _ => Ok(saved),
                    }
                }
                Err(e) if e.kind() == std::io::ErrorKind::InvalidData => Err(Finish::Mismatch),
                Err(e) => Err(Finish::Io(e.to_string())),
            };
            let _ = done.send(Done::Finished { file, result });
        });
    }

    // ---- asking ------------------------------------------------------------------------------

    fn pump_dirty(&mut self) {
        if self.dirty.is_empty() {
            return;
        }
        let dirty: Vec<Hash> = self.dirty.drain().collect();
        for h in dirty {
            self.pump(h);
        }
    }

    /// Ask for what `file` needs next: its list, or chunks from each source with room.
    fn pump(&mut self, file: Hash) {
        let now = Instant::now();
        let mut wants: Vec<(PeerId, Frame)> = Vec::new();
        {
            let Some(e) = self.files.get_mut(&file) else { return };
            if e.stage != Stage::Fetching {
                return;
            }
            let Some(f) = &mut e.fetch else { return };
            if f.paused_until.is_some_and(|t| t > now) {
                return;
            }
            f.paused_until = None;
            let via = f.via;
            if e.list.is_none() {
                if f.list_from.is_some() {
                    return;
                }
                // Anyone holding a chunk holds the list.
                let from = f
                    .sources
                    .iter()
                    .filter(|(p, s)| !f.list_bad.contains(*p) && s.bits.iter().any(|b| *b != 0))
                    .map(|(p, _)| *p)
                    .next();
                let Some(from) = from else { return };
                let pieces = piece_count(e.r.size) as u32;
                f.pieces = vec![None; pieces as usize];
                f.list_from = Some((from, now));
                for k in 0..pieces {
                    wants.push((from, Frame::FileWant(FileWant { key: via, part: Part::List(k) })));
                }
            } else {
                let mut peers: Vec<PeerId> = f.sources.keys().copied().collect();
                // Not always the same source first.
                let len = peers.len().max(1);
                peers.rotate_left(rand::random_range(0..len));
                for p in peers {
                    loop {
                        if f.pending.len() >= PER_FILE {
                            break;
                        }
                        let Some(s) = f.sources.get(&p) else { break };
                        if s.in_flight >= PER_SOURCE {
                            break;
                        }
                        let Some(c) = pick(&f.missing, &f.pending, &f.avail, &e.have, &s.bits) else { break };
                        f.pending.insert(c, (p, now));
                        f.sources.get_mut(&p).expect("present").in_flight += 1;
                        wants.push((p, Frame::FileWant(FileWant { key: via, part: Part::Chunk(c) })));
                    }
                }
            }
        }
        for (p, w) in wants {
            self.send(&p, &w);
        }
    }

    // ---- the tick ----------------------------------------------------------------------------

    fn tick(&mut self) {
        let now = Instant::now();
        let tell_haves = now.duration_since(self.last_have) >= HAVE_EVERY;
        if tell_haves {
            self.last_have = now;
        }
        let mut asks = Vec::new();
        let mut haves = Vec::new();
        let mut progress = Vec::new();
        let me = self.s.me;
        for (h, e) in self.files.iter_mut() {
            if tell_haves && !e.fresh.is_empty() {
                let added = std::mem::take(&mut e.fresh);
                for p in &e.interested {
                    haves.push((*p, Frame::FileHave(FileHave { file: *h, have: Have::Added(added.clone()) })));
                }
            }
            let Some(f) = &mut e.fetch else { continue };
            if e.stage != Stage::Fetching {
                continue;
            }
            // Given up on: asked again, maybe of another.
            let late: Vec<(u32, PeerId)> = f
                .pending
                .iter()
                .filter(|(_, (_, t))| now.duration_since(*t) > CHUNK_TIMEOUT)
                .map(|(c, (p, _))| (*c, *p))
                .collect();
            for (c, p) in late {
                f.pending.remove(&c);
                if let Some(s) = f.sources.get_mut(&p) {
                    s.in_flight = s.in_flight.saturating_sub(1);
                }
            }
            if let Some((p, t)) = f.list_from
                && now.duration_since(t) > LIST_TIMEOUT
            {
                f.list_from = None;
                f.list_bad.insert(p);
            }
            if f.list_bad.len() >= f.sources.len() && !f.list_bad.is_empty() && f.list_from.is_none() {
                f.list_bad.clear(); // every source failed once: try them again
            }
            f.missing.retain(|&c| !bit(&e.have, c as u64));
            for (p, _) in self.sessions.iter() {
                let holds = f.sources.get(p).is_some_and(|s| s.bits.iter().any(|b| *b != 0));
                let due = f.asked.get(p).is_none_or(|t| now.duration_since(*t) >= ASK_AGAIN);
                if !holds && due && *p != me {
                    asks.push((f.via, *p));
                }
            }
            if f.got != f.reported.1 && now.duration_since(f.reported.0) >= PROGRESS_EVERY {
                f.reported = (now, f.got);
                for g in e.grants.iter().filter(|g| g.msg.author != me) {
                    progress.push(Event::FileProgress {
                        message_id: g.msg,
                        name: g.name.clone(),
                        bytes: f.got,
                        size: e.r.size,
                    });
                }
            }
            if f.unsaved && now.duration_since(f.saved_at) >= SAVE_EVERY {
                f.unsaved = false;
                f.saved_at = now;
                let _ = self.store.save_have(&e.r, &e.have);
            }
            self.dirty.insert(*h);
        }
        for (p, fr) in haves {
            self.send(&p, &fr);
        }
        for (key, p) in asks {
            if self.may_hold(&key, &p) {
                self.ask(key, p);
            }
        }
        if !progress.is_empty() {
            let _ = self.events.send(progress);
        }
    }
}

/// Replace a source's bitmap, keeping the availability counts right.
fn set_bits(avail: &mut [u16], bits: &mut Vec<u8>, new: Vec<u8>) {
    for (i, a) in avail.iter_mut().enumerate() {
        let (was, is) = (bit(bits, i as u64), bit(&new, i as u64));
        if was && !is {
            *a = a.saturating_sub(1);
        } else if is && !was {
            *a = a.saturating_add(1);
        }
    }
    *bits = new;
}

/// A source is gone: its chunks no longer count, what was asked of it is asked again.
fn drop_source(f: &mut Fetch, peer: &PeerId) {
    if let Some(s) = f.sources.remove(peer) {
        for (i, a) in f.avail.iter_mut().enumerate() {
            if bit(&s.bits, i as u64) {
                *a = a.saturating_sub(1);
            }
        }
    }
    f.pending.retain(|_, (p, _)| p != peer);
}

/// A chunk to ask of a source holding `src`: one this peer lacks, not asked for yet, among the
/// rarest of a random stretch of the missing ones.
fn pick(
    missing: &[u32],
    pending: &HashMap<u32, (PeerId, Instant)>,
    avail: &[u16],
    have: &[u8],
    src: &[u8],
) -> Option<u32> {
    let len = missing.len();
    if len == 0 {
        return None;
    }
    let start = rand::random_range(0..len);
    let mut best: Option<(u16, u32)> = None;
    let mut found = 0;
    for step in 0..len.min(PICK_SCAN) {
        let c = missing[(start + step) % len];
        if bit(have, c as u64) || pending.contains_key(&c) || !bit(src, c as u64) {
            continue;
        }
        let a = avail.get(c as usize).copied().unwrap_or(0);
        if best.is_none_or(|(b, _)| a < b) {
            best = Some((a, c));
        }
        found += 1;
        if found >= 16 || a <= 1 {
            break;
        }
    }
    best.map(|(_, c)| c)
}

/// Copy a complete file to the downloads for each message naming it: `dir/<author>/<name>`.
fn copy_all(from: &Path, dir: &Path, r: &FileRef, todo: &[Grant]) -> (Vec<Saved>, Option<String>) {
    let mut saved = Vec::new();
    let mut failed = None;
    for g in todo {
        let to = dir.join(&g.folder).join(names::safe_relative(&g.name));
        match names::save_copy(from, &to) {
            Ok(path) => saved.push(Saved {
                msg: g.msg,
                index: g.index,
                name: g.name.clone(),
                size: r.size,
                sha256: r.sha256,
                path,
            }),
            Err(e) => {
                let why = if e.kind() == std::io::ErrorKind::StorageFull {
                    format!("the disk is full: {} could not be saved in {}; free some space", g.name, dir.display())
                } else {
                    format!("{} could not be saved in {}: {e}", g.name, dir.display())
                };
                failed = Some(why);
            }
        }
    }
    (saved, failed)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bitmaps_count_what_sources_hold() {
        assert_eq!(full(10), vec![0xFF, 0b11]);
        assert_eq!(full(16), vec![0xFF, 0xFF]);
        let mut avail = vec![0u16; 10];
        let mut bits = vec![0u8; 2];
        set_bits(&mut avail, &mut bits, full(10));
        assert!(avail.iter().all(|a| *a == 1));
        set_bits(&mut avail, &mut bits, vec![0b1, 0]);
        assert_eq!(avail.iter().sum::<u16>(), 1);
    }
}
