//! lanpeer benchmarks (issue 6): every figure beside a baseline measured in the same run.
//!
//! ```sh
//! cargo bench --bench lanpeer_bench                       # everything, full sizes (a few minutes)
//! cargo bench --bench lanpeer_bench -- stream fanout --quick
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
//! network namespace that has nothing but `lo` (see benches/zyre_bench.py).
//!
//! Timers: the library and CLI peers run with the DEFAULT Config (beacon every 1 s ±20%, dial
//! grace 1.5 s, keepalive 2 s, expiry 5 s): the figures are what a user gets.
//!
//! The process raises its RLIMIT_NOFILE (soft, and hard when root and allowed): 100 peers in
//! one process (fan-out) hold 101·100 = 10,100 TCP sockets. The convergence runs put at most
//! 25 peers in one worker process (25·199 sockets for a room of 200), because 200 peers in one
//! process would need 39,800 descriptors, more than the 20,000 hard limit of this container.

#[cfg(target_os = "linux")]
mod floors;
#[cfg(target_os = "linux")]
mod linux;

fn main() {
    #[cfg(target_os = "linux")]
    linux::main();
    #[cfg(not(target_os = "linux"))]
    eprintln!("The lanpeer benchmarks run on Linux only (they read /proc and make network namespaces).");
}
