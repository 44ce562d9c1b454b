//! Two `lanpeer --json --iface lo` processes, chats piped into one and counted on the other: the
//! library's stream as a user of the CLI gets it, and the CPU each process spends per message.

use std::io::{BufWriter, Write};
use std::process::ChildStdin;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use crate::chats::text;
use crate::opts::Opts;
use crate::procs::{Children, spawn_cli, wait_until};
use crate::report::{failed, figure, rate};
use crate::swarm::unique_net;
use crate::sys::{clk_tck, cpu_ticks, scratch};

pub fn bench_cli(o: &Opts, lib_rate: Option<f64>) -> Option<f64> {
    let n: u64 = o.size(100_000, 20_000, 3_000);
    let dir = scratch("cli");
    let (port, room) = unique_net("cli");
    let mut kids = Children::default();
    let (a, sa) = spawn_cli(&mut kids, dir.path(), "a", port, &room);
    let (b, sb) = spawn_cli(&mut kids, dir.path(), "b", port, &room);
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
