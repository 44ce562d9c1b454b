//! This machine and its processes, read from the kernel: the cores the figures share, the CPU
//! and memory a process used (`getrusage`, `/proc/PID/stat`, `/proc/PID/status`), the machine's
//! description for the header line, the open-file limit that 100 peers in one process need, and
//! scratch directories (`tempfile`) for data dirs, which nothing outlives, not even a panic.

use std::time::Duration;

use tempfile::TempDir;

/// User + system CPU time of this process so far (every thread).
pub fn process_cpu() -> Duration {
    // SAFETY: an all-zero rusage is a valid value, and getrusage writes one rusage struct.
    let mut u: libc::rusage = unsafe { std::mem::zeroed() };
    // SAFETY: as above.
    unsafe { libc::getrusage(libc::RUSAGE_SELF, &mut u) };
    let tv = |t: libc::timeval| Duration::new(t.tv_sec as u64, t.tv_usec as u32 * 1000);
    tv(u.ru_utime) + tv(u.ru_stime)
}

/// The cores the figures share (all peers of a benchmark run on them).
pub fn cores() -> f64 {
    std::thread::available_parallelism().map_or(1, |n| n.get()) as f64
}

/// Clock ticks per second, the unit of `/proc/PID/stat`'s CPU times.
pub fn clk_tck() -> f64 {
    // SAFETY: sysconf has no preconditions.
    (unsafe { libc::sysconf(libc::_SC_CLK_TCK) }) as f64
}

/// utime + stime of a process, in clock ticks.
pub fn cpu_ticks(pid: u32) -> Option<u64> {
    let s = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let rest = &s[s.rfind(')')? + 2..];
    let f: Vec<&str> = rest.split_whitespace().collect();
    Some(f.get(11)?.parse::<u64>().ok()? + f.get(12)?.parse::<u64>().ok()?)
}

/// Resident set size, in KiB.
pub fn rss_kib(pid: u32) -> Option<u64> {
    let s = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    s.lines().find(|l| l.starts_with("VmRSS:"))?.split_whitespace().nth(1)?.parse().ok()
}

/// One line on the machine: cores, CPU model, memory.
pub fn machine() -> String {
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
pub fn raise_fd_limit() -> String {
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
    match lanpeer::rlimit::raise_nofile_limit_to(NEED) {
        Ok((soft, hard)) if soft >= NEED => format!("RLIMIT_NOFILE raised to {soft} (hard {hard})"),
        Ok((soft, hard)) => format!("RLIMIT_NOFILE {soft} (hard {hard}, not raisable here)"),
        Err(e) => format!("cannot raise RLIMIT_NOFILE: {e}"),
    }
}

/// A scratch directory for data dirs and files, `lanpeer-bench-TAG-…` in the system's temp
/// directory: removed when dropped, also when a benchmark panics.
pub fn scratch(tag: &str) -> TempDir {
    tempfile::Builder::new()
        .prefix(&format!("lanpeer-bench-{tag}-"))
        .tempdir()
        .expect("a scratch directory in the temp dir")
}
