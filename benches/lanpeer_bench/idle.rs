//! The cost at rest: a room of idle `lanpeer --json --iface lo` processes (how fast it forms,
//! then its memory, CPU and beacon traffic per peer), beside one peer alone.

use std::net::{Ipv4Addr, SocketAddr};
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use crate::opts::Opts;
use crate::procs::{Children, spawn_cli, wait_until};
use crate::report::{failed, figure, ms};
use crate::swarm::unique_net;
use crate::sys::{clk_tck, cpu_ticks, rss_kib, scratch};

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

pub fn bench_idle(o: &Opts) {
    let n = o.size(100, 20, 4);
    let window = Duration::from_secs(o.size(10, 5, 2));
    let dir = scratch("idle");
    let (port, room) = unique_net("idle");
    let (port1, room1) = unique_net("alone");
    let mut kids = Children::default();
    let t0 = Instant::now();
    let mut seen = Vec::new();
    for i in 0..n {
        seen.push(spawn_cli(&mut kids, dir.path(), &format!("p{i}"), port, &room).1);
    }
    let alone = spawn_cli(&mut kids, dir.path(), "alone", port1, &room1).0;
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
