//! Peers in this process, all on loopback, in one room: their configuration, a watcher task per
//! node that turns its events into notes for the benchmark (list changes, a target reached, a
//! fan-out round complete), and the swarm that starts them, waits on them and shuts them down.

use std::collections::HashSet;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use futures_util::future::join_all;
use lanpeer::{Body, Config, Event, Events, Node};
use tempfile::TempDir;
use tokio::sync::mpsc;
use tokio::task::JoinHandle;

/// A random discovery port and a room nobody else uses.
pub fn unique_net(tag: &str) -> (u16, String) {
    let port = 20_000 + rand::random_range(0..40_000u16);
    (port, format!("bench-{tag}-{}-{:08x}", std::process::id(), rand::random::<u32>()))
}

/// Default timers; loopback only.
pub fn config(name: String, port: u16, room: &str) -> Config {
    Config {
        name,
        room: room.to_string(),
        interfaces: vec!["lo".into()],
        discovery_port: port,
        data_dir: None,
        ..Config::default()
    }
}

/// Start one node, after asserting that it stays on loopback.
pub async fn start_node(cfg: Config) -> (Node, Events) {
    assert_eq!(cfg.interfaces, vec!["lo".to_string()], "benchmark peers must stay on loopback");
    Node::start(cfg).await.expect("node starts")
}

/// What a node's watcher task reports.
pub enum Note {
    /// The node lists `count` peers.
    Listed { idx: usize, count: usize },
    /// Every receiver has fan-out round `round`; the last had it at `at`.
    Round { round: u64, at: Instant },
    /// The node received its target number of messages.
    Reached { at: Instant },
}

/// One fan-out round's arrivals, counted by the receivers themselves: the one that completes the
/// round reports it, with the latest arrival, in one note. (A note per receiver woke the bench's
/// main thread 50 or 100 times a round, CPU that the round's receivers then lacked: the raw TCP
/// baseline counts the same way.)
pub struct Tally {
    /// The round (high 32 bits, mod 2^32) and its arrivals so far (low 32 bits), in one atomic:
    /// a late arrival of an earlier round (after a round that timed out) is never counted in
    /// the next.
    round_count: AtomicU64,
    target: AtomicUsize,
    /// The latest arrival of the round, in ns after `base`.
    last_ns: AtomicU64,
    base: Instant,
}

impl Tally {
    /// No round started yet.
    pub fn new() -> Tally {
        Tally {
            round_count: AtomicU64::new(u64::MAX),
            target: AtomicUsize::new(0),
            last_ns: AtomicU64::new(0),
            base: Instant::now(),
        }
    }

    /// Round `round` starts: `n` receivers are to have it.
    pub fn start(&self, round: u64, n: usize) {
        self.last_ns.store(0, Ordering::SeqCst);
        self.target.store(n, Ordering::SeqCst);
        self.round_count.store((round as u32 as u64) << 32, Ordering::SeqCst);
    }

    /// A receiver has round `round` (now): the latest arrival when it is the round's last.
    pub fn arrived(&self, round: u64) -> Option<Instant> {
        let at = Instant::now();
        // Before the count: the arrival that completes the round sees every earlier one's time.
        // (A late arrival of an earlier round may raise it too, with an earlier time: harmless.)
        self.last_ns.fetch_max((at - self.base).as_nanos() as u64, Ordering::SeqCst);
        let mut cur = self.round_count.load(Ordering::SeqCst);
        loop {
            if cur >> 32 != round as u32 as u64 {
                return None;
            }
            match self.round_count.compare_exchange(cur, cur + 1, Ordering::SeqCst, Ordering::SeqCst) {
                Ok(_) => break,
                Err(now) => cur = now,
            }
        }
        let count = (cur & 0xffff_ffff) as usize + 1;
        (count == self.target.load(Ordering::SeqCst))
            .then(|| self.base + Duration::from_nanos(self.last_ns.load(Ordering::SeqCst)))
    }
}

#[derive(Default)]
pub struct Counter {
    /// Messages received from others.
    pub msgs: AtomicU64,
    /// When `msgs` reaches it, the watcher sends [`Note::Reached`].
    pub target: AtomicU64,
}

/// Drain a node's events; report list changes, and messages as asked.
pub fn watch(
    idx: usize,
    mut events: Events,
    notes: mpsc::UnboundedSender<Note>,
    counter: Arc<Counter>,
    tally: Option<Arc<Tally>>,
) -> JoinHandle<()> {
    tokio::spawn(async move {
        let mut listed = HashSet::new();
        while let Some(e) = events.recv().await {
            match e {
                Event::PeerJoined(p) => {
                    listed.insert(p.id);
                    let _ = notes.send(Note::Listed { idx, count: listed.len() });
                }
                Event::PeerLeft { id, .. } => {
                    listed.remove(&id);
                    let _ = notes.send(Note::Listed { idx, count: listed.len() });
                }
                Event::Message(m) if !m.own => {
                    // The clock is read only for a message whose time is used (a stream's last,
                    // each of a fan-out), as an application would: not charged to every message.
                    let c = counter.msgs.fetch_add(1, Ordering::Relaxed) + 1;
                    if c == counter.target.load(Ordering::Relaxed) {
                        let _ = notes.send(Note::Reached { at: Instant::now() });
                    }
                    if let Some(t) = &tally
                        && let Body::Chat { text } = &m.body
                        && let Some(round) = text.get(..8).and_then(|r| r.parse().ok())
                        && let Some(at) = t.arrived(round)
                    {
                        let _ = notes.send(Note::Round { round, at });
                    }
                }
                _ => {}
            }
        }
    })
}

/// Peers in this process, all on loopback, one room.
pub struct Swarm {
    /// The room's discovery port.
    pub port: u16,
    /// The room.
    pub room: String,
    /// The nodes, by index.
    pub nodes: Vec<Node>,
    /// What each node received.
    pub counters: Vec<Arc<Counter>>,
    /// How many peers each node lists.
    listed: Vec<usize>,
    notes: mpsc::UnboundedReceiver<Note>,
    notes_tx: mpsc::UnboundedSender<Note>,
    watchers: Vec<JoinHandle<()>>,
    /// Fan-out rounds counted (`None`: not a fan-out).
    pub tally: Option<Arc<Tally>>,
    /// With a data dir per node (history on disk): the durable set-up the CLI uses.
    data: Option<TempDir>,
}

impl Swarm {
    /// `n` nodes with their history in memory; `per_msg`: count fan-out rounds.
    pub async fn start(n: usize, tag: &str, per_msg: bool) -> Swarm {
        Swarm::start_with(n, tag, per_msg, false).await
    }

    /// With `durable`, every node keeps its history in a data dir of its own (its journal, as
    /// the CLI does); otherwise `data_dir: None` (the history in memory).
    pub async fn start_with(n: usize, tag: &str, per_msg: bool, durable: bool) -> Swarm {
        let (port, room) = unique_net(tag);
        let (notes_tx, notes) = mpsc::unbounded_channel();
        let mut s = Swarm {
            port,
            room,
            nodes: Vec::new(),
            counters: Vec::new(),
            listed: Vec::new(),
            notes,
            notes_tx,
            watchers: Vec::new(),
            tally: per_msg.then(|| Arc::new(Tally::new())),
            data: durable.then(|| crate::sys::scratch(tag)),
        };
        for _ in 0..n {
            s.add().await;
        }
        s
    }

    /// Start one more node in the room; its index.
    pub async fn add(&mut self) -> usize {
        let idx = self.nodes.len();
        let mut cfg = config(format!("p{idx}"), self.port, &self.room);
        if let Some(d) = &self.data {
            let dir = d.path().join(format!("p{idx}"));
            std::fs::create_dir_all(&dir).unwrap();
            cfg.data_dir = Some(dir);
        }
        let (node, events) = start_node(cfg).await;
        let counter = Arc::new(Counter::default());
        self.watchers.push(watch(idx, events, self.notes_tx.clone(), counter.clone(), self.tally.clone()));
        self.nodes.push(node);
        self.counters.push(counter);
        self.listed.push(0);
        idx
    }

    /// Next note, list changes applied.
    pub async fn note(&mut self, deadline: Instant) -> Option<Note> {
        let left = deadline.saturating_duration_since(Instant::now());
        let n = tokio::time::timeout(left, self.notes.recv()).await.ok()??;
        if let Note::Listed { idx, count } = n {
            self.listed[idx] = count;
        }
        Some(n)
    }

    /// Wait until the nodes `which` each list `want` peers; the moment it happened.
    pub async fn wait_listed(
        &mut self,
        which: std::ops::Range<usize>,
        want: usize,
        within: Duration,
    ) -> Option<Instant> {
        let deadline = Instant::now() + within;
        loop {
            if self.listed[which.clone()].iter().all(|&c| c == want) {
                return Some(Instant::now());
            }
            self.note(deadline).await?;
        }
    }

    /// How many nodes list `want` peers.
    pub fn converged_count(&self, want: usize) -> usize {
        self.listed.iter().filter(|&&c| c == want).count()
    }

    /// Shut every node down (20 s at most), then stop the watchers; the data dirs go last.
    pub async fn shutdown(self) {
        let all = join_all(self.nodes.iter().map(|n| n.shutdown()));
        let _ = tokio::time::timeout(Duration::from_secs(20), all).await;
        for w in self.watchers {
            w.abort();
        }
    }
}
