//! One chat to N peers in one process: time until the last has it, beside one sender writing
//! the same frame to N plain TCP connections.

use std::net::Ipv4Addr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::sync::mpsc;

use crate::chats::{TEXT_LEN, text};
use crate::opts::Opts;
use crate::report::{failed, figure, ms};
use crate::swarm::{Note, Swarm, Tally};
use crate::sys::process_cpu;
use crate::zyre::{Zyre, raw_vs_zyre, zyre_beside};

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

pub async fn bench_fanout(o: &Opts, z: &Zyre) -> Vec<(usize, Duration, Duration)> {
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
    // receiver's commit then appends to its journal. In a classroom each receiver has its own CPU and
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
