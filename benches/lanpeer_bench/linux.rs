//! The benchmarks themselves (Linux: they read `/proc`, make network namespaces and use
//! `PR_SET_PDEATHSIG`). See `main.rs` for what they measure and how they stay on loopback.

use std::collections::{HashMap, HashSet};
use std::io::{BufRead, BufReader, BufWriter, Read, Write};
use std::net::{Ipv4Addr, SocketAddr};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicI64, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use futures_util::future::join_all;
use lanpeer::{Body, Config, Event, Events, Node};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::sync::mpsc;
use tokio::task::JoinHandle;

#[path = "../../src/rlimit.rs"]
#[allow(dead_code)]
mod rlimit;

/// Size of every chat text, in bytes.
const TEXT_LEN: usize = 100;

// ---- options and output ----------------------------------------------------------------------

struct Opts {
    quick: bool,
    /// Run by `cargo test` (no `--bench` argument) or with `--smoke`: tiny sizes and no Zyre, to
    /// prove that every benchmark still runs to its end and that the library delivers everything
    /// it measures (any failure makes the process exit with status 1). Its figures mean nothing.
    smoke: bool,
    only: Vec<String>,
    /// `--n=10,50`: sizes for fan-out and convergence instead of the defaults.
    sizes: Option<Vec<usize>>,
    /// `--rounds=N`: fan-out rounds instead of the default (e.g. long enough to profile).
    rounds: Option<usize>,
}

impl Opts {
    fn parse() -> Opts {
        let mut quick = false;
        let mut bench = false;
        let mut smoke = false;
        let mut only = Vec::new();
        let mut sizes = None;
        let mut rounds = None;
        for a in std::env::args().skip(1) {
            match a.as_str() {
                "--quick" => quick = true,
                "--bench" => bench = true, // cargo bench passes it; cargo test does not
                "--smoke" => smoke = true,
                s if s.starts_with("--rounds=") => rounds = s[9..].parse().ok(),
                s if s.starts_with("--n=") => {
                    sizes = Some(s[4..].split(',').filter_map(|x| x.parse().ok()).collect());
                }
                s if s.starts_with('-') => {} // e.g. cargo test's --nocapture
                s => only.push(s.to_string()),
            }
        }
        Opts { quick, smoke: smoke || !bench, only, sizes, rounds }
    }

    fn wants(&self, name: &str) -> bool {
        // The smoke run never measures Zyre: it needs pyre and a network namespace, and minutes.
        (self.only.is_empty() || self.only.iter().any(|o| o == name)) && !(self.smoke && name == "zyre")
    }

    /// The full size, the `--quick` one, or the smoke run's.
    fn size<T>(&self, full: T, quick: T, smoke: T) -> T {
        if self.smoke {
            smoke
        } else if self.quick {
            quick
        } else {
            full
        }
    }
}

/// How many things went wrong in this run (a peer not found, a message not delivered, a room
/// that did not converge): the process exits with status 1 when any did.
static FAILURES: AtomicUsize = AtomicUsize::new(0);

/// Reports one failure on its own line and counts it.
fn failed(what: impl std::fmt::Display) {
    FAILURES.fetch_add(1, Ordering::Relaxed);
    println!("FAILED: {what}");
}

/// Figures of the Python Zyre run, by key (see benches/zyre_bench.py).
type Zyre = HashMap<String, f64>;

/// One figure on one line: name, our value, and what it is compared with.
fn figure(name: &str, ours: String, beside: &[String]) {
    let mut line = format!("{name:<34} {ours:>22}");
    for b in beside {
        line.push_str("  | ");
        line.push_str(b);
    }
    println!("{line}");
}

/// "ours 3.2x better" or "ours 4.0x WORSE" from ours/theirs (higher is better).
fn better(r: f64) -> String {
    if r >= 1.0 { format!("ours {r:.1}x better") } else { format!("ours {:.1}x WORSE", 1.0 / r) }
}

fn rate(x: f64) -> String {
    if x >= 1e6 {
        format!("{:.2} M", x / 1e6)
    } else if x >= 1e3 {
        format!("{:.1} k", x / 1e3)
    } else {
        format!("{x:.1} ")
    }
}

fn ms(d: Duration) -> String {
    format!("{:.3} ms", d.as_secs_f64() * 1e3)
}

fn zyre_beside(z: &Zyre, key: &str, unit: &str, scale: f64, ours: f64, higher_is_better: bool) -> String {
    match z.get(key) {
        Some(v) => {
            let v = v * scale;
            let r = if higher_is_better { ours / v } else { v / ours };
            format!("Zyre (pyre) {v:.3} {unit}, {}", better(r))
        }
        None => "Zyre: not measured".to_string(),
    }
}

/// "; raw TCP itself 9.1x": how far the plain TCP baseline of the same run is from Zyre's
/// figure, the most that any TCP peer could show against it on this machine.
fn raw_vs_zyre(z: &Zyre, key: &str, raw: Duration) -> String {
    z.get(key).map_or(String::new(), |v| format!("; raw TCP itself {:.1}x", v / (raw.as_secs_f64() * 1e3)))
}

// ---- loopback setup --------------------------------------------------------------------------

/// A random discovery port and a room nobody else uses.
fn unique_net(tag: &str) -> (u16, String) {
    let port = 20_000 + rand::random_range(0..40_000u16);
    (port, format!("bench-{tag}-{}-{:08x}", std::process::id(), rand::random::<u32>()))
}

/// Default timers; loopback only.
fn config(name: String, port: u16, room: &str) -> Config {
    Config {
        name,
        room: room.to_string(),
        interfaces: vec!["lo".into()],
        discovery_port: port,
        data_dir: None,
        ..Config::default()
    }
}

async fn start_node(cfg: Config) -> (Node, Events) {
    assert_eq!(cfg.interfaces, vec!["lo".to_string()], "benchmark peers must stay on loopback");
    Node::start(cfg).await.expect("node starts")
}

/// What a node's watcher task reports.
enum Note {
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
struct Tally {
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
    fn new() -> Tally {
        Tally {
            round_count: AtomicU64::new(u64::MAX),
            target: AtomicUsize::new(0),
            last_ns: AtomicU64::new(0),
            base: Instant::now(),
        }
    }

    /// Round `round` starts: `n` receivers are to have it.
    fn start(&self, round: u64, n: usize) {
        self.last_ns.store(0, Ordering::SeqCst);
        self.target.store(n, Ordering::SeqCst);
        self.round_count.store((round as u32 as u64) << 32, Ordering::SeqCst);
    }

    /// A receiver has round `round` (now): the latest arrival when it is the round's last.
    fn arrived(&self, round: u64) -> Option<Instant> {
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
struct Counter {
    msgs: AtomicU64,
    target: AtomicU64,
}

/// Drain a node's events; report list changes, and messages as asked.
fn watch(
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
struct Swarm {
    port: u16,
    room: String,
    nodes: Vec<Node>,
    counters: Vec<Arc<Counter>>,
    listed: Vec<usize>,
    notes: mpsc::UnboundedReceiver<Note>,
    notes_tx: mpsc::UnboundedSender<Note>,
    watchers: Vec<JoinHandle<()>>,
    /// Fan-out rounds counted (`None`: not a fan-out).
    tally: Option<Arc<Tally>>,
    /// With a data dir per node (history on disk, WAL): the durable set-up the CLI uses.
    data: Option<Scratch>,
}

impl Swarm {
    async fn start(n: usize, tag: &str, per_msg: bool) -> Swarm {
        Swarm::start_with(n, tag, per_msg, false).await
    }

    /// With `durable`, every node keeps its history in a data dir of its own (SQLite file in WAL
    /// mode, as the CLI does); otherwise `data_dir: None` (SQLite in memory).
    async fn start_with(n: usize, tag: &str, per_msg: bool, durable: bool) -> Swarm {
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
            data: durable.then(|| Scratch::new(tag)),
        };
        for _ in 0..n {
            s.add().await;
        }
        s
    }

    async fn add(&mut self) -> usize {
        let idx = self.nodes.len();
        let mut cfg = config(format!("p{idx}"), self.port, &self.room);
        if let Some(d) = &self.data {
            let dir = d.0.join(format!("p{idx}"));
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
    async fn note(&mut self, deadline: Instant) -> Option<Note> {
        let left = deadline.saturating_duration_since(Instant::now());
        let n = tokio::time::timeout(left, self.notes.recv()).await.ok()??;
        if let Note::Listed { idx, count } = n {
            self.listed[idx] = count;
        }
        Some(n)
    }

    /// Wait until the nodes `which` each list `want` peers; the moment it happened.
    async fn wait_listed(&mut self, which: std::ops::Range<usize>, want: usize, within: Duration) -> Option<Instant> {
        let deadline = Instant::now() + within;
        loop {
            if self.listed[which.clone()].iter().all(|&c| c == want) {
                return Some(Instant::now());
            }
            self.note(deadline).await?;
        }
    }

    fn converged_count(&self, want: usize) -> usize {
        self.listed.iter().filter(|&&c| c == want).count()
    }

    async fn shutdown(self) {
        let all = join_all(self.nodes.iter().map(|n| n.shutdown()));
        let _ = tokio::time::timeout(Duration::from_secs(20), all).await;
        for w in self.watchers {
            w.abort();
        }
    }
}

fn text(prefix: &str) -> String {
    let mut t = prefix.to_string();
    while t.len() < TEXT_LEN {
        t.push((b'a' + (t.len() % 26) as u8) as char);
    }
    t.truncate(TEXT_LEN);
    t
}

// ---- store -----------------------------------------------------------------------------------

/// The author of [`chat_envelope`]'s chats.
const AUTHOR: lanpeer::PeerId = lanpeer::PeerId([7; 16]);

/// A chat of [`TEXT_LEN`] bytes as a peer would send it, number `seq` of [`AUTHOR`].
fn chat_envelope(seq: u64, tag: &str) -> lanpeer::protocol::Envelope {
    lanpeer::protocol::Envelope {
        id: lanpeer::MsgId { author: AUTHOR, seq },
        author_name: "bench".into(),
        sent_ms: 1,
        to: None,
        body: Body::Chat { text: text(tag) },
    }
}

/// The history alone, as the node actor drives it: one message per commit (a lone caller
/// awaiting each `chat`, or one message arriving), and many per commit (a pipelined stream), in
/// memory and on disk (`history.journal`, as the CLI runs). Baseline: the same encoded envelopes
/// appended to a plain file with one `write` each (the cheapest durable log the kernel offers
/// without fsync, which the journal does not do per commit either).
fn bench_store(o: &Opts) {
    use lanpeer::PeerId;
    use lanpeer::codec;
    use lanpeer::protocol::Envelope;
    use lanpeer::store::Store;
    let n: u64 = o.size(20_000, 5_000, 300);
    let scratch = std::env::temp_dir().join(format!("lanpeer-bench-store-{}", std::process::id()));
    let envs: Vec<(Envelope, Vec<u8>)> = (1..=2 * n)
        .map(|seq| {
            let e = chat_envelope(seq, "store");
            let b = codec::encode(&e).unwrap().to_vec();
            (e, b)
        })
        .collect();
    // Baseline: append each envelope to a file with its own write(2).
    let _ = std::fs::remove_dir_all(&scratch);
    std::fs::create_dir_all(&scratch).unwrap();
    let raw = {
        let mut f = std::fs::File::create(scratch.join("log")).unwrap();
        let t = Instant::now();
        for (_, b) in &envs[..n as usize] {
            f.write_all(b).unwrap();
        }
        t.elapsed() / n as u32
    };
    let env_len = envs.iter().map(|(_, b)| b.len()).sum::<usize>() as f64 / envs.len() as f64;
    let us = |d: Duration| d.as_secs_f64() * 1e6;
    let journal = scratch.join(lanpeer::store::JOURNAL_FILE);
    for place in ["in memory", "on disk"] {
        let fresh = || {
            let _ = std::fs::remove_dir_all(&scratch);
            std::fs::create_dir_all(&scratch).unwrap();
            let me = PeerId([1; 16]);
            match place {
                "in memory" => Store::open(None, me, "bench"),
                _ => Store::open(Some(&scratch), me, "bench"),
            }
            .unwrap()
        };
        let mut st = fresh();
        let t = Instant::now();
        for (e, b) in &envs[..n as usize] {
            st.begin();
            st.insert(e, b, 1).unwrap();
            st.save_in_stream(AUTHOR, e.id.seq).unwrap();
            st.commit().unwrap();
        }
        let one = t.elapsed() / n as u32;
        drop(st);
        let mut st = fresh();
        let t = Instant::now();
        for chunk in envs[n as usize..].chunks(256) {
            st.begin();
            for (e, b) in chunk {
                st.insert(e, b, 1).unwrap();
            }
            st.save_in_stream(AUTHOR, chunk.last().unwrap().0.id.seq).unwrap();
            st.commit().unwrap();
        }
        let batched = t.elapsed() / n as u32;
        drop(st);
        let took = [one, batched];
        for (i, name) in ["1 message per commit", "256 per commit"].into_iter().enumerate() {
            figure(
                &format!("store, {name}, {place}"),
                format!("{:.2} us", us(took[i])),
                &[
                    format!("file append {:.2} us per message (one write each)", us(raw)),
                    format!("ceiling {}msg/s on one core", rate(1.0 / took[i].as_secs_f64())),
                ],
            );
        }
        if place == "on disk" {
            let size = std::fs::metadata(&journal).map(|m| m.len()).unwrap_or(0);
            figure(
                "store, journal bytes per message",
                format!("{:.0} B", size as f64 / n as f64),
                &[format!("the encoded envelope {env_len:.0} B (its text {TEXT_LEN} B)")],
            );
            // What a peer's start pays for its history: the journal replayed into memory.
            let t = Instant::now();
            let bytes = std::fs::read(&journal).map(|b| b.len()).unwrap_or(0);
            let read = t.elapsed();
            let t = Instant::now();
            let st = Store::open(Some(&scratch), PeerId([1; 16]), "bench").unwrap();
            let open = t.elapsed();
            assert_eq!(st.count().unwrap(), n, "the journal holds what was written");
            drop(st);
            figure(
                "store, opening a journal, per message",
                format!("{:.2} us", us(open) / n as f64),
                &[format!(
                    "{n} messages in {:.1} ms; reading its {:.1} MB alone {:.1} ms",
                    open.as_secs_f64() * 1e3,
                    bytes as f64 / 1e6,
                    read.as_secs_f64() * 1e3
                )],
            );
        }
    }
    // Memory: a data dir's store keeps the history's state in memory (docs/architecture.md):
    // resident memory per stored message, `m` chats into a store in memory (the same state the
    // journal store replays).
    let m = o.size(200_000, 20_000, 1_000);
    // What the stores above freed goes back to the system first, so that the store measured
    // here grows the resident set rather than reusing it (which read 141 B in one run, 224 in
    // the others, before this).
    // SAFETY: `malloc_trim` takes a size and touches only the allocator's own state.
    unsafe { libc::malloc_trim(0) };
    let before = rss_kib(std::process::id()).unwrap_or(0);
    let st = Store::open(None, PeerId([1; 16]), "bench").unwrap();
    let mut e = envs[0].0.clone();
    for seq in 0..m {
        e.id.seq = 1 << 40 | seq;
        st.insert(&e, &codec::encode(&e).unwrap(), 1).unwrap();
    }
    let after = rss_kib(std::process::id()).unwrap_or(0);
    figure(
        "store, resident memory per message",
        format!("{:.0} B", after.saturating_sub(before) as f64 * 1024.0 / m as f64),
        &[format!("{m} chats of {TEXT_LEN} B; the encoded envelope {env_len:.0} B")],
    );
    drop(st);
    let _ = std::fs::remove_dir_all(&scratch);
}

// ---- stream ----------------------------------------------------------------------------------

struct StreamResult {
    received: u64,
    sent: u64,
    elapsed: Duration,
    complete: bool,
}

impl StreamResult {
    fn rate(&self) -> f64 {
        self.received as f64 / self.elapsed.as_secs_f64()
    }
}

/// In-flight messages of the pipelined stream (`callers == 0`).
const PIPELINE: usize = 1024;
/// Messages per `submit_batch` in the batched stream line.
const BATCH: usize = 256;
/// `callers` value of `stream_lib` for one caller of `submit_batch` ([`BATCH`] per call,
/// [`PIPELINE`] messages in flight).
const BATCHED: u64 = u64::MAX;

fn ok_count(ids: &[Result<lanpeer::MsgId, lanpeer::Error>]) -> u64 {
    ids.iter().filter(|r| r.is_ok()).count() as u64
}

/// `n` chats from node 0 to node 1 by `callers` tasks calling `node.chat`; with `callers == 0`,
/// one task calling `node.submit` with up to [`PIPELINE`] messages in flight; with
/// [`BATCHED`], one task calling `node.submit_batch`.
async fn stream_lib(n: u64, callers: u64, durable: bool) -> Option<StreamResult> {
    let batched = callers == BATCHED;
    let pipelined = callers == 0 || batched;
    let callers = if batched { 1 } else { callers.max(1) };
    let mut s = Swarm::start_with(2, "stream", false, durable).await;
    if s.wait_listed(0..2, 1, Duration::from_secs(30)).await.is_none() {
        failed("stream: the two peers did not find each other within 30 s");
        s.shutdown().await;
        return None;
    }
    s.counters[1].target.store(n, Ordering::Relaxed);
    let msg = text("stream");
    let sent = Arc::new(AtomicU64::new(0));
    let stop = Arc::new(AtomicBool::new(false));
    let t0 = Instant::now();
    let deadline = t0 + Duration::from_secs(60);
    let mut tasks = Vec::new();
    for c in 0..callers {
        let (node, msg, sent, stop) = (s.nodes[0].clone(), msg.clone(), sent.clone(), stop.clone());
        let share = n / callers + u64::from(c < n % callers);
        tasks.push(tokio::spawn(async move {
            if batched {
                use futures_util::StreamExt;
                let mut inflight: futures_util::stream::FuturesOrdered<lanpeer::PendingBatch> = Default::default();
                let mut left = share as usize;
                while left > 0 {
                    if stop.load(Ordering::Relaxed) {
                        return;
                    }
                    if inflight.len() >= PIPELINE / BATCH {
                        match inflight.next().await {
                            Some(Ok(ids)) => drop(sent.fetch_add(ok_count(&ids), Ordering::Relaxed)),
                            _ => return,
                        }
                    }
                    let k = left.min(BATCH);
                    left -= k;
                    let msgs = (0..k).map(|_| (None, Body::Chat { text: msg.clone() })).collect();
                    match node.submit_batch(msgs).await {
                        Ok(p) => inflight.push_back(p),
                        Err(_) => return,
                    }
                }
                while let Some(r) = inflight.next().await {
                    if let Ok(ids) = r {
                        sent.fetch_add(ok_count(&ids), Ordering::Relaxed);
                    }
                }
                return;
            }
            if pipelined {
                use futures_util::StreamExt;
                let mut inflight = futures_util::stream::FuturesOrdered::new();
                for _ in 0..share {
                    if stop.load(Ordering::Relaxed) {
                        return;
                    }
                    if inflight.len() >= PIPELINE {
                        match inflight.next().await {
                            Some(Ok(_)) => drop(sent.fetch_add(1, Ordering::Relaxed)),
                            _ => return,
                        }
                    }
                    match node.submit(None, Body::Chat { text: msg.clone() }).await {
                        Ok(p) => inflight.push_back(p),
                        Err(_) => return,
                    }
                }
                while let Some(r) = inflight.next().await {
                    if r.is_ok() {
                        sent.fetch_add(1, Ordering::Relaxed);
                    }
                }
                return;
            }
            for _ in 0..share {
                if stop.load(Ordering::Relaxed) || node.chat(msg.clone()).await.is_err() {
                    return;
                }
                sent.fetch_add(1, Ordering::Relaxed);
            }
        }));
    }
    let mut end = None;
    // Stop early when nothing arrives for 3 s (a session closed as too slow loses the rest).
    let mut progress = (0u64, Instant::now());
    while end.is_none() {
        match s.note((Instant::now() + Duration::from_millis(100)).min(deadline)).await {
            Some(Note::Reached { at }) => end = Some(at),
            Some(Note::Listed { idx, count: 0 }) => {
                println!("stream: peer {idx} lost its session during the stream (closed as too slow?)");
                break;
            }
            Some(_) => {}
            None if Instant::now() >= deadline => break,
            None => {
                let c = s.counters[1].msgs.load(Ordering::Relaxed);
                if c != progress.0 {
                    progress = (c, Instant::now());
                } else if progress.1.elapsed() > Duration::from_secs(3) {
                    break;
                }
            }
        }
    }
    stop.store(true, Ordering::Relaxed);
    join_all(tasks).await;
    let received = s.counters[1].msgs.load(Ordering::Relaxed);
    let r = StreamResult {
        received,
        sent: sent.load(Ordering::Relaxed),
        elapsed: end.unwrap_or(progress.1) - t0,
        complete: end.is_some(),
    };
    s.shutdown().await;
    Some(r)
}

/// User + system CPU time of this process so far (every thread).
fn process_cpu() -> Duration {
    let mut u: libc::rusage = unsafe { std::mem::zeroed() };
    unsafe { libc::getrusage(libc::RUSAGE_SELF, &mut u) };
    let tv = |t: libc::timeval| Duration::new(t.tv_sec as u64, t.tv_usec as u32 * 1000);
    tv(u.ru_utime) + tv(u.ru_stime)
}

/// The physical baseline: a plain length-prefixed TCP sender and receiver (two threads,
/// 64 KiB buffered writes and reads, 4-byte big-endian length + 100 bytes).
fn stream_raw(n: u64) -> Duration {
    let l = std::net::TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).unwrap();
    let addr = l.local_addr().unwrap();
    let rx = std::thread::spawn(move || {
        let (s, _) = l.accept().unwrap();
        let mut r = BufReader::with_capacity(64 * 1024, s);
        let mut len = [0u8; 4];
        let mut buf = vec![0u8; 1 << 16];
        for _ in 0..n {
            r.read_exact(&mut len).unwrap();
            let l = u32::from_be_bytes(len) as usize;
            r.read_exact(&mut buf[..l]).unwrap();
        }
        Instant::now()
    });
    let t0 = Instant::now();
    let s = std::net::TcpStream::connect(addr).unwrap();
    s.set_nodelay(true).unwrap();
    let mut w = BufWriter::with_capacity(64 * 1024, s);
    let payload = text("raw").into_bytes();
    for _ in 0..n {
        w.write_all(&(payload.len() as u32).to_be_bytes()).unwrap();
        w.write_all(&payload).unwrap();
    }
    w.flush().unwrap();
    let end = rx.join().unwrap();
    end - t0
}

/// The cores the figures share (all peers of a benchmark run on them).
fn cores() -> f64 {
    std::thread::available_parallelism().map_or(1, |n| n.get()) as f64
}

/// What the encryption alone leaves of raw TCP's rate: a stream of sealed chats needs at least
/// raw TCP's CPU per message plus the sealing and opening of each chat's frame, so on these
/// cores it moves at most `cores / (raw + seal_open)` messages a second, whatever else it does.
fn stream_floor(o: &Opts, raw_rate: f64, raw_cpu: f64) {
    let env = chat_envelope(100_000, "floor");
    let frame = lanpeer::codec::message_frame(100_000, lanpeer::codec::encode(&env).unwrap()).unwrap();
    let frame_len = 4 + frame.len();
    let aead = crate::floors::seal_open_cpu(frame_len, o.size(200, 50, 5)).as_secs_f64();
    let ceiling = cores() / (raw_cpu + aead);
    figure(
        "stream floor: seal + open per chat",
        format!("{:.1} ns", aead * 1e9),
        &[
            format!(
                "its {frame_len}-byte frame in 64 KiB records, both ends, one core (ChaCha20-Poly1305, AWS-LC); raw TCP's CPU {:.1} ns per message (both ends)",
                raw_cpu * 1e9
            ),
            format!(
                "so a sealed stream moves at most {}msg/s on {} cores, ratio {:.2} of raw TCP",
                rate(ceiling),
                cores(),
                ceiling / raw_rate
            ),
        ],
    );
}

async fn bench_stream(o: &Opts, z: &Zyre) -> Option<f64> {
    let n: u64 = o.size(300_000, 50_000, 3_000);
    let raw_n: u64 = o.size(5_000_000, 1_000_000, 100_000);
    let raw_cpu0 = process_cpu();
    let raw = tokio::task::spawn_blocking(move || stream_raw(raw_n)).await.unwrap();
    let raw_cpu = (process_cpu() - raw_cpu0).as_secs_f64() / raw_n as f64;
    let raw_rate = raw_n as f64 / raw.as_secs_f64();
    let raw_txt = format!("raw TCP {}msg/s {:.1} MB/s", rate(raw_rate), raw_rate * TEXT_LEN as f64 / 1e6);
    stream_floor(o, raw_rate, raw_cpu);
    let mut best = None;
    // Durable (a data dir per node, as the CLI runs) for each way of calling; then the pipelined
    // stream again with the history in memory, to show what durability costs.
    let ways = [(1u64, true), (8, true), (0, true), (1, false), (0, false), (BATCHED, true), (BATCHED, false)];
    for (callers, durable) in ways {
        let who = match callers {
            0 => format!("1 caller, submit, {PIPELINE} in flight"),
            BATCHED => format!("1 caller, submit_batch of {BATCH}, {PIPELINE} in flight"),
            1 => "1 caller".to_string(),
            c => format!("{c} callers"),
        };
        let who = format!("{who}, {}", if durable { "history on disk" } else { "history in memory" });
        // LANPEER_STREAM_LINES=a;b: only the lines whose name holds one of these (A/B runs).
        if let Ok(f) = std::env::var("LANPEER_STREAM_LINES")
            && !f.split(';').any(|x| who.contains(x))
        {
            continue;
        }
        let cpu0 = process_cpu();
        let Some(r) = stream_lib(n, callers, durable).await else { continue };
        // CPU of the whole process (both peers, set-up and shutdown included) per message received:
        // less sensitive than the rate to other work on the machine.
        let cpu_us = (process_cpu() - cpu0).as_secs_f64() * 1e6 / r.received.max(1) as f64;
        let ours = r.rate();
        if durable {
            // The CLI keeps its history on disk: compare it with the durable library figure.
            best = Some(best.map_or(ours, |b: f64| b.max(ours)));
        }
        let tag = if r.complete {
            String::new()
        } else {
            format!(
                " INCOMPLETE: {} of {n} received ({} lost), {} chat() calls returned Ok; rate up to the last arrival",
                r.received,
                n - r.received,
                r.sent
            )
        };
        if !r.complete {
            failed(format!("stream ({who}): {} of {n} messages received", r.received));
        }
        figure(
            &format!("stream msgs/s ({who})"),
            format!("{}msg/s", rate(ours)),
            &[
                format!("CPU {cpu_us:.2} us/msg"),
                format!("{raw_txt}, ratio {:.3}{tag}", ours / raw_rate),
                zyre_beside(z, "stream_msgs_per_s", "msg/s", 1.0, ours, true),
            ],
        );
        figure(
            &format!("stream MB/s ({who})"),
            format!("{:.2} MB/s", ours * TEXT_LEN as f64 / 1e6),
            &[format!("raw TCP {:.1} MB/s (payload bytes, 100 per message)", raw_rate * TEXT_LEN as f64 / 1e6)],
        );
    }
    best
}

// ---- fan-out ---------------------------------------------------------------------------------

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    if sorted.is_empty() {
        return Duration::ZERO;
    }
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i]
}

/// One chat from node 0 to `n` others, `rounds` times: time until the last has it.
/// Returns the latencies, the rounds missed, and the process's CPU time per measured round (a
/// figure that the machine's other load disturbs less than the latencies).
async fn fanout_lib(n: usize, rounds: usize, durable: bool) -> Option<(Vec<Duration>, usize, Duration)> {
    let mut s = Swarm::start_with(n + 1, "fanout", true, durable).await;
    let within = Duration::from_secs(60);
    if s.wait_listed(0..n + 1, n, within).await.is_none() {
        failed(format!("fanout {n}: only {} of {} peers converged within 60 s", s.converged_count(n), n + 1));
        s.shutdown().await;
        return None;
    }
    let warm = 5;
    let mut lat = Vec::new();
    let mut missed = 0;
    let mut cpu0 = process_cpu();
    for r in 0..(rounds + warm) as u64 {
        if r == warm as u64 {
            cpu0 = process_cpu();
        }
        let tally = s.tally.clone().expect("a fan-out swarm counts rounds");
        tally.start(r, n);
        let t0 = Instant::now();
        if s.nodes[0].chat(text(&format!("{r:08}"))).await.is_err() {
            break;
        }
        let deadline = t0 + Duration::from_secs(5);
        let mut last = None;
        while last.is_none() {
            match s.note(deadline).await {
                Some(Note::Round { round, at }) if round == r => last = Some(at),
                Some(_) => {}
                None => break,
            }
        }
        if r < warm as u64 {
            continue;
        }
        match last {
            Some(at) => lat.push(at - t0),
            None => missed += 1,
        }
    }
    let cpu = (process_cpu() - cpu0) / rounds.max(1) as u32;
    s.shutdown().await;
    lat.sort();
    Some((lat, missed, cpu))
}

/// Baseline: one sender writes the same 104-byte frame to `n` plain TCP connections (tokio,
/// nodelay), one reader task per connection; time until the last reader has it.
/// Returns the latencies and the process's CPU time per measured round, as `fanout_lib`.
async fn fanout_raw(n: usize, rounds: usize) -> (Vec<Duration>, Duration) {
    let l = tokio::net::TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).await.unwrap();
    let addr = l.local_addr().unwrap();
    let (tx, mut rx) = mpsc::unbounded_channel::<(u64, Instant)>();
    let tally = Arc::new(Tally::new());
    let mut senders = Vec::new();
    let mut readers = Vec::new();
    for _ in 0..n {
        let c = tokio::net::TcpStream::connect(addr).await.unwrap();
        c.set_nodelay(true).unwrap();
        senders.push(c);
        let (mut a, _) = l.accept().await.unwrap();
        let (tx, tally) = (tx.clone(), tally.clone());
        readers.push(tokio::spawn(async move {
            let mut buf = [0u8; 4 + TEXT_LEN];
            while a.read_exact(&mut buf).await.is_ok() {
                let round = std::str::from_utf8(&buf[4..12]).ok().and_then(|s| s.parse().ok()).unwrap_or(u64::MAX);
                if let Some(at) = tally.arrived(round) {
                    let _ = tx.send((round, at));
                }
            }
        }));
    }
    let mut lat = Vec::new();
    let mut cpu0 = process_cpu();
    for r in 0..(rounds + 5) as u64 {
        if r == 5 {
            cpu0 = process_cpu();
        }
        let mut frame = (TEXT_LEN as u32).to_be_bytes().to_vec();
        frame.extend_from_slice(text(&format!("{r:08}")).as_bytes());
        tally.start(r, n);
        let t0 = Instant::now();
        for s in senders.iter_mut() {
            s.write_all(&frame).await.unwrap();
        }
        let mut last = None;
        while last.is_none() {
            let Ok(Some((round, at))) = tokio::time::timeout(Duration::from_secs(5), rx.recv()).await else { break };
            if round == r {
                last = Some(at);
            }
        }
        if let (true, Some(at)) = (r >= 5, last) {
            lat.push(at - t0);
        }
    }
    let cpu = (process_cpu() - cpu0) / rounds.max(1) as u32;
    drop(senders);
    for r in readers {
        let _ = r.await;
    }
    lat.sort();
    (lat, cpu)
}

async fn bench_fanout(o: &Opts, z: &Zyre) -> Vec<(usize, Duration, Duration)> {
    let sizes: &[usize] = o.sizes.as_deref().unwrap_or(o.size(&[10, 50, 100], &[10], &[5]));
    let rounds = o.rounds.unwrap_or(o.size(200, 50, 20));
    let mut out = Vec::new();
    for &n in sizes {
        if n == 0 {
            println!("fanout to 0: skipped (it needs at least 1 receiver)");
            continue;
        }
        let (raw, raw_cpu) = fanout_raw(n, rounds).await;
        let Some((lat, missed, cpu)) = fanout_lib(n, rounds, false).await else { continue };
        let (p50, p99) = (percentile(&lat, 0.5), percentile(&lat, 0.99));
        let (r50, r99) = (percentile(&raw, 0.5), percentile(&raw, 0.99));
        let miss =
            if missed > 0 { format!(", {missed} rounds MISSED (not all had it within 5 s)") } else { String::new() };
        if missed > 0 {
            failed(format!("fanout to {n}: in {missed} of {rounds} rounds not every peer had the chat within 5 s"));
        }
        figure(
            &format!("fanout to {n} p50"),
            ms(p50),
            &[
                format!(
                    "raw TCP {}, ratio {:.1}x ({} rounds{miss})",
                    ms(r50),
                    p50.as_secs_f64() / r50.as_secs_f64(),
                    lat.len()
                ),
                zyre_beside(z, &format!("fanout_{n}_p50_ms"), "ms", 1.0, p50.as_secs_f64() * 1e3, false)
                    + &raw_vs_zyre(z, &format!("fanout_{n}_p50_ms"), r50),
            ],
        );
        figure(
            &format!("fanout to {n} p99"),
            ms(p99),
            &[
                format!("raw TCP {}, ratio {:.1}x", ms(r99), p99.as_secs_f64() / r99.as_secs_f64()),
                zyre_beside(z, &format!("fanout_{n}_p99_ms"), "ms", 1.0, p99.as_secs_f64() * 1e3, false)
                    + &raw_vs_zyre(z, &format!("fanout_{n}_p99_ms"), r99),
            ],
        );
        figure(
            &format!("fanout to {n} CPU per round"),
            ms(cpu),
            &[format!(
                "{:.1} us per receiver; raw TCP {} ({:.1} us per receiver) (the process's user + system time over the rounds, both cores)",
                cpu.as_secs_f64() * 1e6 / n as f64,
                ms(raw_cpu),
                raw_cpu.as_secs_f64() * 1e6 / n as f64
            )],
        );
        out.push((n, p50, p99));
    }
    // The same with every node's history on disk (as the CLI runs), for the largest size: each
    // receiver's commit then writes the WAL. In a classroom each receiver has its own CPU and
    // disk; here 100 of them share 2 cores.
    if let Some(&n) = sizes.iter().max().filter(|&&n| n > 0 && (!o.quick || o.smoke))
        && let Some((lat, missed, cpu)) = fanout_lib(n, rounds, true).await
    {
        let miss = if missed > 0 { format!(", {missed} rounds MISSED") } else { String::new() };
        if missed > 0 {
            failed(format!("fanout to {n}, history on disk: {missed} of {rounds} rounds missed"));
        }
        figure(
            &format!("fanout to {n} p50, history on disk"),
            ms(percentile(&lat, 0.5)),
            &[format!("p99 {} ({} rounds{miss}), CPU per round {}", ms(percentile(&lat, 0.99)), lat.len(), ms(cpu))],
        );
    }
    out
}

// ---- convergence -----------------------------------------------------------------------------

/// Most peers one worker process hosts: 25 peers of a room of 200 hold 25·199 sockets, well
/// within a 20,000 descriptor limit (200 in one process would need 39,800).
const PER_WORKER: usize = 25;

/// The process's connection counts (`lanpeer::diag::COUNTS`) as one line.
fn counts_line(tag: &str) -> String {
    let mut l = tag.to_string();
    for (k, v) in lanpeer::diag::COUNTS.snapshot() {
        l.push_str(&format!(" {k}={v}"));
    }
    l
}

/// Sum `k=v` pairs of a counts line into `into`.
fn add_counts(line: &str, into: &mut Vec<(String, u64)>) {
    for kv in line.split_whitespace().skip(1) {
        let Some((k, v)) = kv.split_once('=') else { continue };
        let v: u64 = v.parse().unwrap_or(0);
        match into.iter_mut().find(|(n, _)| n == k) {
            Some((_, x)) => *x += v,
            None => into.push((k.to_string(), v)),
        }
    }
}

/// Worker mode (`lanpeer_bench --worker PORT ROOM FIRST COUNT TOTAL`): host COUNT peers of a
/// room of TOTAL, print `L <idx> <listed>` on every change of a peer's list, `C <counts>` (the
/// process's connection counts) once all of its peers list TOTAL−1 others, and `S <counts>` at
/// the end; stop at end of stdin (or after 180 s at most).
fn worker(args: &[String]) {
    let port: u16 = args[0].parse().unwrap();
    let room = args[1].clone();
    let first: usize = args[2].parse().unwrap();
    let count: usize = args[3].parse().unwrap();
    let total: usize = args.get(4).and_then(|t| t.parse().ok()).unwrap_or(usize::MAX);
    let rt = tokio::runtime::Builder::new_multi_thread().enable_all().build().unwrap();
    rt.block_on(async move {
        let (tx, mut rx) = mpsc::unbounded_channel();
        let mut nodes = Vec::new();
        let mut watchers = Vec::new();
        for i in first..first + count {
            let (node, events) = start_node(config(format!("p{i}"), port, &room)).await;
            watchers.push(watch(i, events, tx.clone(), Arc::new(Counter::default()), None));
            nodes.push(node);
        }
        let (eof_tx, mut eof) = mpsc::unbounded_channel::<()>();
        std::thread::spawn(move || {
            let _ = std::io::stdin().read_to_end(&mut Vec::new());
            let _ = eof_tx.send(());
        });
        let stop = tokio::time::sleep(Duration::from_secs(180));
        tokio::pin!(stop);
        let mut out = std::io::stdout();
        let mut listed = vec![0usize; count];
        let mut told = false;
        loop {
            tokio::select! {
                n = rx.recv() => {
                    if let Some(Note::Listed { idx, count }) = n {
                        let _ = writeln!(out, "L {idx} {count}");
                        listed[idx - first] = count;
                        if !told && listed.iter().all(|&c| c + 1 >= total) {
                            told = true;
                            let _ = writeln!(out, "{}", counts_line("C"));
                        }
                        let _ = out.flush();
                    }
                }
                _ = eof.recv() => break,
                _ = &mut stop => break,
            }
        }
        let _ = writeln!(out, "{}", counts_line("S"));
        let _ = out.flush();
        let _ = tokio::time::timeout(Duration::from_secs(20), join_all(nodes.iter().map(|n| n.shutdown()))).await;
    });
}

/// Connection counts summed over the workers: when each worker's peers had all converged
/// (`C` lines), and at the end (`S` lines: the late joiner's dials and accepts on the workers'
/// side included).
type Sums = (Vec<(String, u64)>, Vec<(String, u64)>);

fn print_counts(n: usize, c: &Sums) {
    let show = |v: &[(String, u64)]| v.iter().map(|(k, v)| format!("{k}={v}")).collect::<Vec<_>>().join(" ");
    println!("  connections of {n} (workers summed), at convergence: {}", show(&c.0));
    println!("  connections of {n} (workers summed), at the end: {}", show(&c.1));
}

/// `n` peers started together (in worker processes of at most [`PER_WORKER`] peers each): time
/// until each lists all others; then one late joiner (in this process).
async fn convergence_lib(n: usize) -> (Option<Duration>, Option<Duration>, String) {
    let (port, room) = unique_net("converge");
    let (tx, mut rx) = mpsc::unbounded_channel::<(usize, usize)>();
    let mut kids = Children::default();
    let counts: Arc<Mutex<Sums>> = Arc::default();
    let mut readers = Vec::new();
    let workers = n.div_ceil(PER_WORKER);
    let t0 = Instant::now();
    for w in 0..workers {
        let first = w * n / workers;
        let count = (w + 1) * n / workers - first;
        let mut cmd = Command::new(std::env::current_exe().unwrap());
        cmd.args(["--worker", &port.to_string(), &room, &first.to_string(), &count.to_string(), &n.to_string()])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit());
        die_with_parent(&mut cmd);
        let mut c = cmd.spawn().expect("worker starts");
        let out = c.stdout.take().unwrap();
        kids.add(c);
        let tx = tx.clone();
        let counts = counts.clone();
        readers.push(std::thread::spawn(move || {
            for l in BufReader::new(out).lines().map_while(Result::ok) {
                if l.starts_with("C ") || l.starts_with("S ") {
                    let mut c = counts.lock().unwrap();
                    add_counts(&l, if l.starts_with('C') { &mut c.0 } else { &mut c.1 });
                    continue;
                }
                let mut it = l.split_whitespace().skip(1).map(|x| x.parse::<usize>().unwrap_or(0));
                if let (Some(i), Some(c)) = (it.next(), it.next()) {
                    let _ = tx.send((i, c));
                }
            }
        }));
    }
    let mut listed = vec![0usize; n];
    let deadline = t0 + Duration::from_secs(90);
    let mut all = None;
    // `LANPEER_BENCH_PROGRESS=1`: print the share of the mesh listed, every 500 ms.
    let progress = std::env::var_os("LANPEER_BENCH_PROGRESS").is_some();
    let mut next_progress = t0;
    while all.is_none() {
        if progress && Instant::now() >= next_progress {
            next_progress += Duration::from_millis(500);
            let sum: usize = listed.iter().sum();
            eprintln!(
                "  {:6.1} s: {:5.1} % listed",
                t0.elapsed().as_secs_f64(),
                100.0 * sum as f64 / (n * (n - 1)) as f64
            );
        }
        let left = deadline.saturating_duration_since(Instant::now());
        let left = if progress { left.min(Duration::from_millis(100)) } else { left };
        match tokio::time::timeout(left, rx.recv()).await {
            Err(_) if progress && Instant::now() < deadline => {}
            Ok(Some((i, c))) if i < n => {
                listed[i] = c;
                if listed.iter().all(|&c| c == n - 1) {
                    all = Some(t0.elapsed());
                }
            }
            Ok(Some(_)) => {}
            _ => break,
        }
    }
    let mut note = format!("{workers} worker process(es) of <= {PER_WORKER} peers");
    if all.is_none() {
        let ok = listed.iter().filter(|&&c| c == n - 1).count();
        note.push_str(&format!("; only {ok} of {n} converged within 90 s"));
        failed(format!("convergence of {n}: only {ok} of {n} listed all others within 90 s"));
        kids.stop(Duration::from_secs(20));
        for r in readers {
            let _ = r.join();
        }
        print_counts(n, &counts.lock().unwrap());
        return (None, None, note);
    }
    // The late joiner, in this process, same room: into a settled room, as a student who comes
    // in after the others (and as Zyre's late joiner, which joins a room up for seconds), at
    // least 500 ms after the room converged. Into a room younger than that, every peer would
    // answer its beacon with one of their own and the lower ids dial (`lanpeer::peers`,
    // `PeerTable::settled`), as in a room started together.
    let settled = t0 + Config::default().dial_grace * lanpeer::peers::SETTLED_GRACES + Duration::from_millis(500);
    tokio::time::sleep_until(settled.max(Instant::now() + Duration::from_millis(500)).into()).await;
    let mut s = Swarm::start(0, "unused", false).await;
    s.port = port;
    s.room = room;
    let t1 = Instant::now();
    let idx = s.add().await;
    let late = s.wait_listed(idx..idx + 1, n, Duration::from_secs(30)).await.map(|at| at - t1);
    // Everyone lists the newcomer too.
    let deadline = Instant::now() + Duration::from_secs(10);
    while !listed.iter().all(|&c| c == n) {
        let left = deadline.saturating_duration_since(Instant::now());
        match tokio::time::timeout(left, rx.recv()).await {
            Ok(Some((i, c))) if i < n => listed[i] = c,
            Ok(Some(_)) => {}
            _ => break,
        }
    }
    let wrong = listed.iter().filter(|&&c| c != n).count();
    if wrong > 0 {
        note.push_str(&format!("; {wrong} of {n} do not list the late joiner within 10 s"));
        failed(format!("late joiner to {n}: {wrong} of {n} do not list it within 10 s"));
    }
    if late.is_none() {
        failed(format!("late joiner to {n}: it did not list all {n} within 30 s"));
    }
    s.shutdown().await;
    let stop = tokio::task::spawn_blocking(move || {
        kids.stop(Duration::from_secs(25));
        for r in readers {
            let _ = r.join();
        }
    });
    let _ = stop.await;
    print_counts(n, &counts.lock().unwrap());
    (all, late, note)
}

/// Baseline: the TCP full mesh itself. `n` listeners; node i connects to every j > i (each
/// node's dials one after another, all nodes at once); time until every connection is accepted.
/// Connections are closed at once (only their setup is timed), so that 200 fit in 20,000
/// descriptors.
async fn mesh_raw(n: usize) -> (Duration, Duration) {
    let accepted = Arc::new(AtomicUsize::new(0));
    let mut addrs = Vec::new();
    let mut accept_tasks = Vec::new();
    for _ in 0..n + 1 {
        let l = tokio::net::TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).await.unwrap();
        addrs.push(l.local_addr().unwrap());
        let accepted = accepted.clone();
        accept_tasks.push(tokio::spawn(async move {
            while let Ok((s, _)) = l.accept().await {
                drop(s); // not kept: 200 peers would need 39,800 descriptors in this process
                accepted.fetch_add(1, Ordering::Relaxed);
            }
        }));
    }
    let wait = |target: usize, accepted: Arc<AtomicUsize>| async move {
        let deadline = Instant::now() + Duration::from_secs(60);
        while accepted.load(Ordering::Relaxed) < target && Instant::now() < deadline {
            tokio::time::sleep(Duration::from_micros(200)).await;
        }
        Instant::now()
    };
    let t0 = Instant::now();
    let dialers: Vec<_> = (0..n)
        .map(|i| {
            let targets: Vec<SocketAddr> = addrs[i + 1..n].to_vec();
            tokio::spawn(async move {
                for a in targets {
                    let _ = tokio::net::TcpStream::connect(a).await;
                }
            })
        })
        .collect();
    let mesh = n * (n - 1) / 2;
    let done = wait(mesh, accepted.clone()).await - t0;
    join_all(dialers).await;
    // Late joiner: it dials all n others, one after another.
    let t1 = Instant::now();
    for a in &addrs[..n] {
        let _ = tokio::net::TcpStream::connect(a).await;
    }
    let late_done = wait(mesh + n, accepted.clone()).await - t1;
    for t in accept_tasks {
        t.abort();
    }
    (done, late_done)
}

async fn bench_convergence(o: &Opts, z: &Zyre) -> Vec<(usize, Option<Duration>, Option<Duration>)> {
    let sizes: &[usize] = o.sizes.as_deref().unwrap_or(o.size(&[10, 50, 100, 200], &[10, 50], &[5]));
    let mut out = Vec::new();
    // The floor under every session: its Noise handshake's CPU (both ends), measured here.
    let hs = crate::floors::handshake_cpu(o.size(200, 50, 5));
    println!("  a Noise XX handshake, both ends, in memory on one core: {:.1} us", hs.as_secs_f64() * 1e6);
    // A room cannot form faster than its handshakes spread over the cores plus its TCP alone.
    let floor = |sessions: usize, raw: Duration| hs.mul_f64(sessions as f64 / cores()) + raw;
    let vs_floor = |d: Option<Duration>, f: Duration| {
        d.map_or(String::new(), |d| format!(", ours {:.1}x the floor", d.as_secs_f64() / f.as_secs_f64()))
    };
    for &n in sizes {
        if n < 2 {
            println!("convergence of {n}: skipped (a room needs at least 2 peers)");
            continue;
        }
        let (raw_all, raw_late) = mesh_raw(n).await;
        let (all, late, note) = convergence_lib(n).await;
        let show = |d: Option<Duration>| d.map_or("NOT CONVERGED".to_string(), ms);
        let sessions = n * (n - 1) / 2;
        let all_floor = floor(sessions, raw_all);
        figure(
            &format!("convergence of {n} started together"),
            show(all),
            &[
                format!("raw TCP full mesh ({sessions} connections) {}", ms(raw_all)),
                format!(
                    "floor {} ({sessions} handshakes over {} cores + the raw TCP mesh){}",
                    ms(all_floor),
                    cores(),
                    vs_floor(all, all_floor)
                ),
                note,
            ],
        );
        let late_floor = floor(n, raw_late);
        figure(
            &format!("late joiner to {n}: lists all"),
            show(late),
            &[
                format!("raw TCP connect to {n} {}", ms(raw_late)),
                format!(
                    "floor {} ({n} handshakes over {} cores + the raw TCP connects){}",
                    ms(late_floor),
                    cores(),
                    vs_floor(late, late_floor)
                ),
                match (z.get(&format!("late_join_{n}_ms")), late) {
                    (Some(v), Some(l)) => format!(
                        "Zyre (pyre) {v:.1} ms, {}; 10x Zyre asks {:.1} ms",
                        better(v / (l.as_secs_f64() * 1e3)),
                        v / 10.0
                    ),
                    _ => "Zyre: not measured for this size".to_string(),
                },
            ],
        );
        out.push((n, all, late));
    }
    out
}

// ---- child processes -------------------------------------------------------------------------

/// Kills (and reaps) every child it holds when dropped, also on panic.
#[derive(Default)]
struct Children(Vec<Child>);

impl Children {
    fn add(&mut self, c: Child) -> usize {
        self.0.push(c);
        self.0.len() - 1
    }

    /// Close stdin (a lanpeer leaves at end of input), wait up to `grace`, then kill.
    fn stop(&mut self, grace: Duration) {
        for c in self.0.iter_mut() {
            drop(c.stdin.take());
        }
        let deadline = Instant::now() + grace;
        for c in self.0.iter_mut() {
            while Instant::now() < deadline && matches!(c.try_wait(), Ok(None)) {
                std::thread::sleep(Duration::from_millis(20));
            }
        }
        self.kill_all();
    }

    fn kill_all(&mut self) {
        for c in self.0.iter_mut() {
            let _ = c.kill();
            let _ = c.wait();
        }
        self.0.clear();
    }
}

impl Drop for Children {
    fn drop(&mut self) {
        self.kill_all();
    }
}

/// Make a child die with this process (SIGKILL when the spawning thread ends: spawn only from
/// the main thread).
fn die_with_parent(cmd: &mut Command) {
    use std::os::unix::process::CommandExt;
    // SAFETY: prctl is async-signal-safe; nothing else runs between fork and exec here.
    unsafe {
        cmd.pre_exec(|| {
            libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL);
            Ok(())
        });
    }
}

/// The `lanpeer` built with this bench, or LANPEER_BENCH_EXE (to compare with another build in
/// the same period: the machine's load varies more than the builds do).
fn lanpeer_exe() -> String {
    std::env::var("LANPEER_BENCH_EXE").unwrap_or_else(|_| env!("CARGO_BIN_EXE_lanpeer").to_string())
}

/// Scratch directory for data dirs; removed on drop.
struct Scratch(PathBuf);

impl Scratch {
    fn new(tag: &str) -> Scratch {
        let p = std::env::temp_dir().join(format!(
            "lanpeer-bench-{tag}-{}-{:08x}",
            std::process::id(),
            rand::random::<u32>()
        ));
        std::fs::create_dir_all(&p).unwrap();
        Scratch(p)
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// What a CLI peer's stdout showed.
#[derive(Default)]
struct Seen {
    listed: AtomicI64,
    chats_in: AtomicU64,
    target: AtomicU64,
    reached: Mutex<Option<Instant>>,
}

/// Start `lanpeer --json --iface lo` (never without `--iface lo`), with a stdout reader thread.
fn spawn_cli(kids: &mut Children, dir: &Path, name: &str, port: u16, room: &str) -> (usize, Arc<Seen>) {
    let data = dir.join(name);
    let mut cmd = Command::new(lanpeer_exe());
    cmd.args(["--json", "--iface", "lo", "--port", &port.to_string(), "--room", room, "--name", name])
        .arg("--data-dir")
        .arg(&data)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::null());
    die_with_parent(&mut cmd);
    let mut child = cmd.spawn().expect("lanpeer starts");
    let out = child.stdout.take().unwrap();
    let seen = Arc::new(Seen::default());
    let s = seen.clone();
    std::thread::spawn(move || {
        let mut r = BufReader::with_capacity(256 * 1024, out);
        let mut line = String::new();
        while r.read_line(&mut line).unwrap_or(0) > 0 {
            if line.contains("\"event\":\"chat\"") {
                if line.contains("\"own\":false") {
                    let c = s.chats_in.fetch_add(1, Ordering::Relaxed) + 1;
                    if c == s.target.load(Ordering::Relaxed) {
                        *s.reached.lock().unwrap() = Some(Instant::now());
                    }
                }
            } else if line.contains("\"event\":\"peer_joined\"") {
                s.listed.fetch_add(1, Ordering::Relaxed);
            } else if line.contains("\"event\":\"peer_left\"") {
                s.listed.fetch_sub(1, Ordering::Relaxed);
            }
            line.clear();
        }
    });
    (kids.add(child), seen)
}

fn wait_until(within: Duration, mut cond: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + within;
    while Instant::now() < deadline {
        if cond() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(5));
    }
    cond()
}

// ---- CLI stream ------------------------------------------------------------------------------

fn bench_cli(o: &Opts, lib_rate: Option<f64>) -> Option<f64> {
    let n: u64 = o.size(100_000, 20_000, 3_000);
    let dir = Scratch::new("cli");
    let (port, room) = unique_net("cli");
    let mut kids = Children::default();
    let (a, sa) = spawn_cli(&mut kids, &dir.0, "a", port, &room);
    let (b, sb) = spawn_cli(&mut kids, &dir.0, "b", port, &room);
    if !wait_until(Duration::from_secs(30), || {
        sa.listed.load(Ordering::Relaxed) == 1 && sb.listed.load(Ordering::Relaxed) == 1
    }) {
        failed("cli: the two processes did not find each other within 30 s");
        return None;
    }
    sb.target.store(n, Ordering::Relaxed);
    let stdin: ChildStdin = kids.0[a].stdin.take().unwrap();
    // CPU time of each process over the stream: far less sensitive to the machine's load than the
    // rate (the CLI's own cost is in it, beside the node's).
    let pids = [kids.0[a].id(), kids.0[b].id()];
    let cpu0 = pids.map(cpu_ticks);
    let t0 = Instant::now();
    let writer = std::thread::spawn(move || {
        let mut w = BufWriter::with_capacity(64 * 1024, stdin);
        for i in 0..n {
            let mut t = text(&format!("{i:08}"));
            t.push('\n');
            if w.write_all(t.as_bytes()).is_err() {
                break;
            }
        }
        let _ = w.flush();
        w // keep stdin open: end of input would make the peer leave
    });
    let mut last = (0, Instant::now());
    let done = wait_until(Duration::from_secs(90), || {
        let c = sb.chats_in.load(Ordering::Relaxed);
        if c != last.0 {
            last = (c, Instant::now());
        }
        sb.reached.lock().unwrap().is_some() || last.1.elapsed() > Duration::from_secs(10)
    });
    let end = sb.reached.lock().unwrap().unwrap_or_else(Instant::now);
    let cpu1 = pids.map(cpu_ticks);
    let got = sb.chats_in.load(Ordering::Relaxed);
    let r = got as f64 / (end - t0).as_secs_f64();
    let _stdin = writer.join().ok();
    kids.stop(Duration::from_secs(5));
    let tag = if done && got == n { String::new() } else { format!(" INCOMPLETE: {got} of {n}") };
    if !tag.is_empty() {
        failed(format!("cli: {got} of {n} chats arrived"));
    }
    figure(
        "cli --json msgs/s end to end",
        format!("{}msg/s", rate(r)),
        &[match lib_rate {
            Some(l) => format!("library stream {}msg/s, ratio {:.3}{tag}", rate(l), r / l),
            None => format!("library stream not measured in this run{tag}"),
        }],
    );
    let per_msg = |i: usize| match (cpu0[i], cpu1[i]) {
        (Some(x), Some(y)) if got > 0 => format!("{:.1} µs", (y - x) as f64 / clk_tck() / got as f64 * 1e6),
        _ => "not measured".to_string(),
    };
    figure(
        "cli CPU per message, sender",
        per_msg(0),
        &[format!("receiver {} (user + system time of each process, all threads)", per_msg(1))],
    );
    Some(r)
}

// ---- cost at rest ----------------------------------------------------------------------------

fn clk_tck() -> f64 {
    // SAFETY: sysconf has no preconditions.
    (unsafe { libc::sysconf(libc::_SC_CLK_TCK) }) as f64
}

/// utime + stime of a process, in clock ticks.
fn cpu_ticks(pid: u32) -> Option<u64> {
    let s = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let rest = &s[s.rfind(')')? + 2..];
    let f: Vec<&str> = rest.split_whitespace().collect();
    Some(f.get(11)?.parse::<u64>().ok()? + f.get(12)?.parse::<u64>().ok()?)
}

/// Resident set size, in KiB.
fn rss_kib(pid: u32) -> Option<u64> {
    let s = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    s.lines().find(|l| l.starts_with("VmRSS:"))?.split_whitespace().nth(1)?.parse().ok()
}

/// A plain UDP socket on the discovery port (SO_REUSEADDR + SO_REUSEPORT, like the peers'), to
/// count the beacons that go by. It only receives.
fn beacon_counter(port: u16) -> std::net::UdpSocket {
    use socket2::{Domain, Protocol, Socket, Type};
    let s = Socket::new(Domain::IPV4, Type::DGRAM, Some(Protocol::UDP)).unwrap();
    s.set_reuse_address(true).unwrap();
    s.set_reuse_port(true).unwrap();
    s.bind(&SocketAddr::from((Ipv4Addr::UNSPECIFIED, port)).into()).unwrap();
    let s: std::net::UdpSocket = s.into();
    s.set_read_timeout(Some(Duration::from_millis(50))).unwrap();
    s
}

fn bench_idle(o: &Opts) {
    let n = o.size(100, 20, 4);
    let window = Duration::from_secs(o.size(10, 5, 2));
    let dir = Scratch::new("idle");
    let (port, room) = unique_net("idle");
    let (port1, room1) = unique_net("alone");
    let mut kids = Children::default();
    let t0 = Instant::now();
    let mut seen = Vec::new();
    for i in 0..n {
        seen.push(spawn_cli(&mut kids, &dir.0, &format!("p{i}"), port, &room).1);
    }
    let alone = spawn_cli(&mut kids, &dir.0, "alone", port1, &room1).0;
    let want = n as i64 - 1;
    let converged =
        wait_until(Duration::from_secs(120), || seen.iter().all(|s| s.listed.load(Ordering::Relaxed) == want));
    let conv = t0.elapsed();
    let ok = seen.iter().filter(|s| s.listed.load(Ordering::Relaxed) == want).count();
    figure(
        &format!("cli convergence of {n} processes"),
        if converged { ms(conv) } else { "NOT CONVERGED".into() },
        &[format!("{ok} of {n} list all others; spawned one after another")],
    );
    if !converged {
        failed(format!("cli convergence: only {ok} of {n} processes list all others within 120 s"));
    }
    std::thread::sleep(Duration::from_secs(o.size(3, 3, 1)));
    let sock = beacon_counter(port);
    let mut junk = [0u8; 128];
    while sock.recv_from(&mut junk).is_ok() {} // what queued before the window
    let pids: Vec<u32> = kids.0.iter().map(|c| c.id()).collect();
    let before: Vec<Option<u64>> = pids.iter().map(|&p| cpu_ticks(p)).collect();
    let w0 = Instant::now();
    let (mut beacons, mut other) = (0u64, 0u64);
    while w0.elapsed() < window {
        if let Ok((len, from)) = sock.recv_from(&mut junk) {
            if len == 40 && junk.starts_with(b"LNPB") && from.ip().is_loopback() {
                beacons += 1;
            } else {
                other += 1;
            }
        }
    }
    let secs = w0.elapsed().as_secs_f64();
    if beacons == 0 {
        failed(format!("idle: no beacon of the {n} peers heard in {secs:.1} s"));
    }
    let after: Vec<Option<u64>> = pids.iter().map(|&p| cpu_ticks(p)).collect();
    let rss: Vec<u64> = pids.iter().map(|&p| rss_kib(p).unwrap_or(0)).collect();
    if let Some(i) = rss.iter().position(|&k| k == 0) {
        failed(format!("idle: process {i} of the room is gone"));
    }
    let cpu: Vec<f64> = before
        .iter()
        .zip(&after)
        .map(|(b, a)| match (b, a) {
            (Some(b), Some(a)) => (a - b) as f64 / clk_tck() / secs * 100.0,
            _ => f64::NAN,
        })
        .collect();
    let (rss_room, cpu_room) = (&rss[..n], &cpu[..n]);
    let mean = |v: &[f64]| v.iter().sum::<f64>() / v.len() as f64;
    let rss_f: Vec<f64> = rss_room.iter().map(|&k| k as f64 / 1024.0).collect();
    let rss_max = rss_f.iter().cloned().fold(0.0, f64::max);
    let cpu_max = cpu_room.iter().cloned().fold(0.0, f64::max);
    figure(
        &format!("idle RSS per peer ({n} peers)"),
        format!("{:.2} MiB", mean(&rss_f)),
        &[format!("max {rss_max:.2} MiB; one peer alone {:.2} MiB", rss[alone] as f64 / 1024.0)],
    );
    figure(
        &format!("idle CPU per peer ({n} peers)"),
        format!("{:.3} % of a core", mean(cpu_room)),
        &[format!("max {cpu_max:.3} %; one peer alone {:.3} %; {secs:.1} s window", cpu[alone])],
    );
    let per_peer = beacons as f64 / n as f64 / secs;
    figure(
        "beacon bytes/s per peer",
        format!("{:.1} B/s", per_peer * 40.0),
        &[
            format!(
                "computed 40 B / 1 s interval = 40.0 B/s (68 B/s with IP+UDP headers); counted {beacons} beacons ({per_peer:.2}/s per peer){}",
                if other > 0 { format!(", {other} other datagrams") } else { String::new() }
            ),
            format!("room receives {:.0} datagrams/s", beacons as f64 / secs),
        ],
    );
    kids.stop(Duration::from_secs(10));
}

// ---- Zyre ------------------------------------------------------------------------------------

fn have(cmd: &str, args: &[&str]) -> bool {
    Command::new(cmd).args(args).stdout(Stdio::null()).stderr(Stdio::null()).status().is_ok_and(|s| s.success())
}

/// Run benches/zyre_bench.py inside a new network namespace that has only `lo`; its figures.
fn run_zyre(o: &Opts) -> Result<Zyre, String> {
    if !have("python3", &["-c", "import pyre, zmq"]) {
        return Err("python3 with pyre (pip install zeromq-pyre) is not available".into());
    }
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } != 0 || !have("unshare", &["-n", "true"]) || !have("ip", &["-V"]) {
        return Err("it runs only inside a private network namespace (`unshare -n`, needs root and iproute2), \
                    because pyre beacons on the first non-loopback interface and has no working set_interface"
            .into());
    }
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("benches/zyre_bench.py");
    let mut cmd = Command::new("unshare");
    cmd.args(["-n", "--", "sh", "-c", "ip link set lo up && exec python3 \"$0\" \"$@\""]).arg(&script);
    if o.quick {
        cmd.arg("--quick");
    }
    cmd.stdin(Stdio::null()).stdout(Stdio::piped()).stderr(Stdio::piped());
    die_with_parent(&mut cmd);
    let mut kids = Children::default();
    let mut child = cmd.spawn().map_err(|e| format!("cannot start python3: {e}"))?;
    let out = child.stdout.take().unwrap();
    let mut err = child.stderr.take().unwrap();
    kids.add(child);
    let errs = std::thread::spawn(move || {
        let mut s = String::new();
        let _ = err.read_to_string(&mut s);
        s
    });
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for l in BufReader::new(out).lines().map_while(Result::ok) {
            let _ = tx.send(l);
        }
    });
    let mut z = Zyre::new();
    let deadline = Instant::now() + Duration::from_secs(if o.quick { 120 } else { 420 });
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        match rx.recv_timeout(left) {
            Ok(l) => {
                println!("  zyre_bench.py: {l}");
                let mut it = l.split_whitespace();
                if let (Some("zyre"), Some(k), Some(v)) = (it.next(), it.next(), it.next())
                    && let Ok(v) = v.parse()
                {
                    z.insert(k.to_string(), v);
                }
            }
            Err(std::sync::mpsc::RecvTimeoutError::Disconnected) => break,
            Err(std::sync::mpsc::RecvTimeoutError::Timeout) => {
                println!("  zyre_bench.py: stopped after its time limit");
                break;
            }
        }
    }
    kids.stop(Duration::from_secs(2));
    let e = errs.join().unwrap_or_default();
    if z.is_empty() {
        let last = e.lines().last().unwrap_or("no output").to_string();
        return Err(format!("zyre_bench.py gave no figures ({last})"));
    }
    Ok(z)
}

// ---- main ------------------------------------------------------------------------------------

fn machine() -> String {
    let cpu = std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("model name"))
                .map(|l| l.split(':').nth(1).unwrap_or("").trim().to_string())
        })
        .unwrap_or_else(|| "unknown".into());
    let mem = std::fs::read_to_string("/proc/meminfo")
        .ok()
        .and_then(|s| s.lines().next().map(|l| l.split_whitespace().nth(1).unwrap_or("0").to_string()))
        .and_then(|k| k.parse::<u64>().ok())
        .map_or("unknown".to_string(), |k| format!("{:.1} GiB", k as f64 / 1024.0 / 1024.0));
    format!("{} cores, {cpu}, {mem} RAM", cores())
}

/// 200 peers in one process hold 200·199 sockets: raise the soft limit, and as root the hard one.
#[allow(clippy::unnecessary_cast)] // rlim_t is not u64 on every Unix
fn raise_fd_limit() -> String {
    const NEED: u64 = 50_000;
    let mut lim = libc::rlimit { rlim_cur: 0, rlim_max: 0 };
    // SAFETY: getrlimit/setrlimit read or write one rlimit struct.
    unsafe {
        libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim);
        if (lim.rlim_max as u64) < NEED {
            let want = libc::rlimit { rlim_cur: NEED as libc::rlim_t, rlim_max: NEED as libc::rlim_t };
            libc::setrlimit(libc::RLIMIT_NOFILE, &want); // works as root; otherwise stays
        }
    }
    match rlimit::raise_nofile_limit_to(NEED) {
        Ok((soft, hard)) if soft >= NEED => format!("RLIMIT_NOFILE raised to {soft} (hard {hard})"),
        Ok((soft, hard)) => format!("RLIMIT_NOFILE {soft} (hard {hard}, not raisable here)"),
        Err(e) => format!("cannot raise RLIMIT_NOFILE: {e}"),
    }
}

pub fn main() {
    // The library's warnings (e.g. "peer is not reading; closing its session") on stderr.
    let filter = tracing_subscriber::EnvFilter::try_from_env("LANPEER_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn"));
    tracing_subscriber::fmt().with_env_filter(filter).with_writer(std::io::stderr).with_target(false).init();
    let args: Vec<String> = std::env::args().collect();
    if args.get(1).map(String::as_str) == Some("--worker") {
        raise_fd_limit();
        return worker(&args[2..]);
    }
    let o = Opts::parse();
    let how = o.size("", " (--quick)", " (smoke run: tiny sizes, the figures mean nothing; `cargo bench` measures)");
    println!("lanpeer benchmarks{how}: {}", machine());
    println!("{}; default Config timers; loopback only", raise_fd_limit());
    let z = if o.wants("zyre") {
        println!("== Zyre (Python pyre) in a private network namespace with only lo");
        match run_zyre(&o) {
            Ok(z) => z,
            Err(why) => {
                println!("Zyre not measured: {why}");
                Zyre::new()
            }
        }
    } else {
        Zyre::new()
    };
    let rt = tokio::runtime::Builder::new_multi_thread().enable_all().build().unwrap();
    let mut lib_rate = None;
    if o.wants("stream") {
        println!("== stream: one peer to one peer, {TEXT_LEN}-byte chats through node.chat");
        lib_rate = rt.block_on(bench_stream(&o, &z));
    }
    if o.wants("fanout") {
        println!("== fan-out: one chat to N peers in one process, time until the last has it");
        rt.block_on(bench_fanout(&o, &z));
    }
    if o.wants("convergence") {
        println!(
            "== convergence: N peers started together (worker processes of <= {PER_WORKER}); then one late joiner"
        );
        rt.block_on(bench_convergence(&o, &z));
    }
    drop(rt);
    if o.wants("store") {
        println!("== store: the history database alone (what bounds a durable stream), per message");
        bench_store(&o);
    }
    if o.wants("cli") {
        println!("== CLI: two `lanpeer --json --iface lo` processes, chats piped into one, counted on the other");
        bench_cli(&o, lib_rate);
    }
    if o.wants("idle") {
        println!("== cost at rest: `lanpeer --json --iface lo` processes, idle");
        bench_idle(&o);
    }
    let failures = FAILURES.load(Ordering::Relaxed);
    if failures > 0 {
        println!("{failures} FAILURE(S) in this run: see the FAILED lines above");
        std::process::exit(1);
    }
}
