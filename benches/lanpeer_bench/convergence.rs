//! N peers started together (in worker processes, see [`crate::worker`]): time until each lists
//! all others, then one late joiner; beside the plain TCP full mesh and the floor that the Noise
//! handshakes alone set. The workers' connection counts ([`lanpeer::diag`]) are printed too.

use std::io::{BufRead, BufReader};
use std::net::{Ipv4Addr, SocketAddr};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use futures_util::future::join_all;
use lanpeer::Config;
use tokio::sync::mpsc;

use crate::opts::Opts;
use crate::procs::{Children, die_with_parent};
use crate::report::{better, failed, figure, ms};
use crate::swarm::{Swarm, unique_net};
use crate::sys::cores;
use crate::zyre::Zyre;

/// Most peers one worker process hosts: 25 peers of a room of 200 hold 25·199 sockets, well
/// within a 20,000 descriptor limit (200 in one process would need 39,800).
pub const PER_WORKER: usize = 25;

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
        cmd.args(["worker", &port.to_string(), &room, &first.to_string(), &count.to_string(), &n.to_string()])
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

pub async fn bench_convergence(o: &Opts, z: &Zyre) -> Vec<(usize, Option<Duration>, Option<Duration>)> {
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
