//! Child processes of a benchmark (CLI peers, worker processes, the Zyre script): a guard that
//! kills and reaps them when dropped, also on panic, and `PR_SET_PDEATHSIG` so that they die with
//! the bench even when it is killed; and the `lanpeer --json --iface lo` peers with the thread
//! that reads what each shows.

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// Kills (and reaps) every child it holds when dropped, also on panic.
#[derive(Default)]
pub struct Children(pub Vec<Child>);

impl Children {
    /// Hold `c`; its index.
    pub fn add(&mut self, c: Child) -> usize {
        self.0.push(c);
        self.0.len() - 1
    }

    /// Close stdin (a lanpeer leaves at end of input), wait up to `grace`, then kill.
    pub fn stop(&mut self, grace: Duration) {
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
pub fn die_with_parent(cmd: &mut Command) {
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

/// What a CLI peer's stdout showed.
#[derive(Default)]
pub struct Seen {
    /// Peers it lists (joined minus left).
    pub listed: AtomicI64,
    /// Chats received from others.
    pub chats_in: AtomicU64,
    /// When `chats_in` reaches it, `reached` is set.
    pub target: AtomicU64,
    /// When `chats_in` reached `target`.
    pub reached: Mutex<Option<Instant>>,
}

/// Start `lanpeer --json --iface lo` (never without `--iface lo`), with a stdout reader thread.
pub fn spawn_cli(kids: &mut Children, dir: &Path, name: &str, port: u16, room: &str) -> (usize, Arc<Seen>) {
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

/// Poll `cond` every 5 ms until it holds or `within` has passed; whether it held.
pub fn wait_until(within: Duration, mut cond: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + within;
    while Instant::now() < deadline {
        if cond() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(5));
    }
    cond()
}
