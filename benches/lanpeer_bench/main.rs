//! lanpeer benchmarks: every figure beside a baseline measured in the same run.
//!
//! ```sh
//! cargo bench --bench lanpeer_bench                       # everything, full sizes (a few minutes)
//! cargo bench --bench lanpeer_bench -- stream fanout --quick
//! cargo bench --bench lanpeer_bench -- --help
//! ```
//! Benchmarks: `stream`, `fanout`, `convergence`, `store`, `idle`, `cli`, `zyre` (none named: all).
//! `--quick` uses small sizes (for development). Without cargo bench's `--bench` argument (as
//! `cargo test` runs it, `test = true` in Cargo.toml), or with `--smoke`, it is a smoke run: tiny
//! sizes, no Zyre, figures that mean nothing. Any failure (a peer not found, a message not
//! delivered, a room not formed) prints a `FAILED:` line and the exit status is 1.
//!
//! NETWORK SAFETY: everything runs on loopback. In-process nodes get `interfaces = ["lo"]`
//! (asserted before every start), CLI peers get `--iface lo`, plain sockets use 127.0.0.1. Each
//! run uses a random discovery port and a unique room. Every load is bounded in count and time.
//! Child processes are killed by a Drop guard (also on panic) and get PR_SET_PDEATHSIG, so they
//! die with the bench even if it is killed. The Python Zyre comparison runs only inside a fresh
//! network namespace that has nothing but `lo` (see benches/zyre_bench.py). Data directories are
//! `tempfile` directories, removed when dropped, also on panic.
//!
//! Timers: the library and CLI peers run with the DEFAULT Config (beacon every 1 s ±20%, dial
//! grace 1.5 s, keepalive 2 s, expiry 5 s): the figures are what a user gets.
//!
//! The process raises its RLIMIT_NOFILE (soft, and hard when root and allowed): 100 peers in
//! one process (fan-out) hold 101·100 = 10,100 TCP sockets. The convergence runs put at most
//! 25 peers in one worker process (25·199 sockets for a room of 200), because 200 peers in one
//! process would need 39,800 descriptors, more than the 20,000 hard limit of this container.
//!
//! # Layout
//! Linux only (they read `/proc`, make network namespaces and use `PR_SET_PDEATHSIG`); elsewhere
//! the program says so and ends.
//! - `opts`: the command line (clap), also as `cargo test` and a convergence worker give it.
//! - `report`: the figure lines and `FAILED:` lines, the exit status.
//! - `chats`: what every benchmark sends; `swarm`: peers in this process, in one room.
//! - `procs`: child processes and CLI peers; `sys`: cores, CPU and memory of processes, limits.
//! - one file per benchmark: `stream` (and its floor, `floors`), `fanout`, `convergence` (and
//!   its `worker` processes), `store`, `cli`, `idle`, `zyre`.

#[cfg(target_os = "linux")]
mod authorship;
#[cfg(target_os = "linux")]
mod chats;
#[cfg(target_os = "linux")]
mod cli;
#[cfg(target_os = "linux")]
mod convergence;
#[cfg(target_os = "linux")]
mod fanout;
#[cfg(target_os = "linux")]
mod floors;
#[cfg(target_os = "linux")]
mod idle;
#[cfg(target_os = "linux")]
mod opts;
#[cfg(target_os = "linux")]
mod procs;
#[cfg(target_os = "linux")]
mod report;
#[cfg(target_os = "linux")]
mod store;
#[cfg(target_os = "linux")]
mod stream;
#[cfg(target_os = "linux")]
mod swarm;
#[cfg(target_os = "linux")]
mod sys;
#[cfg(target_os = "linux")]
mod worker;
#[cfg(target_os = "linux")]
mod zyre;

fn main() {
    #[cfg(target_os = "linux")]
    run();
    #[cfg(not(target_os = "linux"))]
    eprintln!("The lanpeer benchmarks run on Linux only (they read /proc and make network namespaces).");
}

/// The benchmarks asked for, in an order that keeps each one's load away from the next: the
/// Zyre script first (its own processes), the in-process ones on one runtime, then the ones
/// with CLI processes.
#[cfg(target_os = "linux")]
fn run() {
    use opts::{Bench, Run};
    // The library's warnings (e.g. "peer is not reading; closing its session") on stderr.
    let filter = tracing_subscriber::EnvFilter::try_from_env("LANPEER_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn"));
    tracing_subscriber::fmt().with_env_filter(filter).with_writer(std::io::stderr).with_target(false).init();
    let o = match opts::parse() {
        Run::Worker(w) => {
            sys::raise_fd_limit();
            return worker::worker(w);
        }
        Run::Bench(o) => o,
    };
    let how = o.size("", " (--quick)", " (smoke run: tiny sizes, the figures mean nothing; `cargo bench` measures)");
    println!("lanpeer benchmarks{how}: {}", sys::machine());
    println!("{}; default Config timers; loopback only", sys::raise_fd_limit());
    let z = if o.wants(Bench::Zyre) {
        println!("== Zyre (Python pyre) in a private network namespace with only lo");
        match zyre::run_zyre(&o) {
            Ok(z) => z,
            Err(why) => {
                println!("Zyre not measured: {why}");
                zyre::Zyre::new()
            }
        }
    } else {
        zyre::Zyre::new()
    };
    let rt = tokio::runtime::Builder::new_multi_thread().enable_all().build().unwrap();
    let mut lib_rate = None;
    if o.wants(Bench::Stream) {
        println!("== stream: one peer to one peer, {}-byte chats through node.chat", chats::TEXT_LEN);
        lib_rate = rt.block_on(stream::bench_stream(&o, &z));
    }
    if o.wants(Bench::Fanout) {
        println!("== fan-out: one chat to N peers in one process, time until the last has it");
        rt.block_on(fanout::bench_fanout(&o, &z));
    }
    if o.wants(Bench::Convergence) {
        println!(
            "== convergence: N peers started together (worker processes of <= {}); then one late joiner",
            convergence::PER_WORKER
        );
        rt.block_on(convergence::bench_convergence(&o, &z));
    }
    if o.wants(Bench::Authorship) {
        println!("== authorship: the cost of proving every message's author, and a late joiner's catch-up");
        authorship::bench_authorship(&o);
        rt.block_on(authorship::bench_late_joiner(&o));
    }
    drop(rt);
    if o.wants(Bench::Store) {
        println!("== store: the history database alone (what bounds a durable stream), per message");
        store::bench_store(&o);
    }
    if o.wants(Bench::Cli) {
        println!("== CLI: two `lanpeer --json --iface lo` processes, chats piped into one, counted on the other");
        cli::bench_cli(&o, lib_rate);
    }
    if o.wants(Bench::Idle) {
        println!("== cost at rest: `lanpeer --json --iface lo` processes, idle");
        idle::bench_idle(&o);
    }
    let failures = report::failures();
    if failures > 0 {
        println!("{failures} FAILURE(S) in this run: see the FAILED lines above");
        std::process::exit(1);
    }
}
