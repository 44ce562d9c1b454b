//! One peer to one peer: chats through `node.chat` (one caller, eight), `node.submit` (pipelined)
//! and `node.submit_batch`, with the history on disk and in memory, beside a plain TCP stream of
//! the same messages and the floor that the encryption alone sets under it.

use std::io::{BufReader, BufWriter, Read, Write};
use std::net::Ipv4Addr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use futures_util::future::join_all;
use lanpeer::Body;

use crate::chats::{TEXT_LEN, chat_envelope, text};
use crate::opts::Opts;
use crate::report::{failed, figure, rate};
use crate::swarm::{Note, Swarm};
use crate::sys::{cores, process_cpu};
use crate::zyre::{Zyre, zyre_beside};

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

pub async fn bench_stream(o: &Opts, z: &Zyre) -> Option<f64> {
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
