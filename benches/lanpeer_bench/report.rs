//! How a run reports: one line per figure, its baselines beside it, and a `FAILED:` line for
//! anything that went wrong. The figure lines' names are what docs/benchmarks.md quotes, so they
//! are made in one place; failures are counted here so that the run can end with exit status 1.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

/// How many things went wrong in this run (a peer not found, a message not delivered, a room
/// that did not converge): the process exits with status 1 when any did.
static FAILURES: AtomicUsize = AtomicUsize::new(0);

/// Reports one failure on its own line and counts it.
pub fn failed(what: impl std::fmt::Display) {
    FAILURES.fetch_add(1, Ordering::Relaxed);
    println!("FAILED: {what}");
}

/// How many failures this run has reported so far.
pub fn failures() -> usize {
    FAILURES.load(Ordering::Relaxed)
}

/// One figure on one line: name, our value, and what it is compared with.
pub fn figure(name: &str, ours: String, beside: &[String]) {
    let mut line = format!("{name:<34} {ours:>22}");
    for b in beside {
        line.push_str("  | ");
        line.push_str(b);
    }
    println!("{line}");
}

/// "ours 3.2x better" or "ours 4.0x WORSE" from ours/theirs (higher is better).
pub fn better(r: f64) -> String {
    if r >= 1.0 { format!("ours {r:.1}x better") } else { format!("ours {:.1}x WORSE", 1.0 / r) }
}

/// A rate with its prefix: "1.50 M", "438.9 k", "12.0 " (the unit follows).
pub fn rate(x: f64) -> String {
    if x >= 1e6 {
        format!("{:.2} M", x / 1e6)
    } else if x >= 1e3 {
        format!("{:.1} k", x / 1e3)
    } else {
        format!("{x:.1} ")
    }
}

/// A duration in milliseconds, to the microsecond.
pub fn ms(d: Duration) -> String {
    format!("{:.3} ms", d.as_secs_f64() * 1e3)
}
