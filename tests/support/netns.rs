//! A virtual LAN of Linux network namespaces, and `lanpeer --json` processes on it.
//!
//! [`Lab::new`] builds, with names unique to the run (nothing is added to the root namespace):
//!
//! ```text
//!   <tag>sw : bridge br0, ports s1..sN
//!   <tag>h1 : eth0 A.B.C.11/24 brd A.B.C.255  <-veth->  s1
//!   ...
//! ```
//!
//! Each host runs `ip netns exec <tag>hN lanpeer --json --name NAME --data-dir DIR ...` ([`Host`]):
//! a reader thread keeps every JSON object it prints, with the instant it was read; every wait
//! has a deadline. The [`Lab`] is the guard: its Drop kills every child (and anything else left
//! in its namespaces) and deletes every namespace, also when the test panics (then it prints the
//! tail of each peer's debug log and keeps the logs; `LANPEER_KEEP_LOGS=1` keeps them anyway).

use std::collections::hash_map::RandomState;
use std::fs::{self, File};
use std::hash::{BuildHasher, Hasher};
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, ExitStatus, Stdio};
use std::sync::{Arc, Condvar, Mutex};
use std::thread;
use std::time::{Duration, Instant};

use serde_json::Value;

pub const BIN: &str = env!("CARGO_BIN_EXE_lanpeer");

// ---------------------------------------------------------------------------------------------
// Small process helpers, all bounded in time.

/// Wait for `child` to exit, at most `limit`.
pub fn wait_deadline(child: &mut Child, limit: Duration) -> Option<ExitStatus> {
    let deadline = Instant::now() + limit;
    loop {
        match child.try_wait() {
            Ok(Some(status)) => return Some(status),
            Ok(None) if Instant::now() < deadline => thread::sleep(Duration::from_millis(10)),
            _ => return None,
        }
    }
}

/// Run a short command to completion (killed after 10 s); Ok(stdout) or Err(description).
pub fn run(program: &str, args: &[&str]) -> Result<String, String> {
    let shown = format!("`{program} {}`", args.join(" "));
    let mut child = Command::new(program)
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| format!("cannot run {shown}: {e}"))?;
    // Outputs are tiny (well under a pipe buffer), so reading after the exit cannot deadlock.
    let Some(status) = wait_deadline(&mut child, Duration::from_secs(10)) else {
        let _ = child.kill();
        let _ = wait_deadline(&mut child, Duration::from_secs(2));
        return Err(format!("{shown} did not finish within 10 s"));
    };
    let (out, err) = outputs(&mut child);
    if status.success() { Ok(out) } else { Err(format!("{shown} failed ({status}): {}", err.trim())) }
}

/// What a finished child printed: (stdout, stderr), each empty when not piped.
pub fn outputs(child: &mut Child) -> (String, String) {
    let (mut out, mut err) = (String::new(), String::new());
    if let Some(mut o) = child.stdout.take() {
        let _ = o.read_to_string(&mut out);
    }
    if let Some(mut e) = child.stderr.take() {
        let _ = e.read_to_string(&mut err);
    }
    (out, err)
}

pub fn ip(args: &[&str]) -> Result<String, String> {
    run("ip", args)
}

/// Random 16 bits from std's per-process random hash keys.
pub fn random16() -> u16 {
    let mut h = RandomState::new().build_hasher();
    h.write_u128(std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_nanos()).unwrap_or(0));
    h.finish() as u16
}

/// A tag unique to this run: `prefix`, the pid and 16 random bits. It starts every name a lab
/// creates, so that tests running at once never share one.
pub fn run_tag(prefix: &str) -> String {
    format!("{prefix}{}{:04x}", std::process::id() % 100_000, random16())
}

/// The effective uid, from /proc/self/status.
pub fn euid() -> Option<u32> {
    let status = fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("Uid:"))?;
    line.split_whitespace().nth(2)?.parse().ok()
}

/// Ok when this process is root (network namespaces need it).
pub fn need_root() -> Result<(), String> {
    match euid() {
        Some(0) => Ok(()),
        Some(uid) => Err(format!("network namespaces need root, and the euid is {uid}")),
        None => Err("cannot read the euid from /proc/self/status".into()),
    }
}

/// Ok when `tool --version` runs.
pub fn need_tool(tool: &str, why: &str) -> Result<(), String> {
    run(tool, &["--version"]).map(|_| ()).map_err(|e| format!("{tool} is needed {why}: {e}"))
}

/// `lab`, or None (the test is skipped, with one line saying why) when it could not be built and
/// this is not root, or `LANPEER_SKIP_NETNS=1`; as root otherwise the test fails, saying what
/// `test` needs (`needs`): CI runs as root, and must not skip what it should run.
pub fn lab_or_skip(lab: Result<Lab, String>, test: &str, needs: &str) -> Option<Lab> {
    match lab {
        Ok(lab) => Some(lab),
        Err(why) => {
            if euid() != Some(0) {
                super::skip_note(&format!("{test} skipped: it needs {needs} ({why})"));
                return None;
            }
            if std::env::var("LANPEER_SKIP_NETNS").as_deref() == Ok("1") {
                super::skip_note(&format!("{test} skipped (LANPEER_SKIP_NETNS=1): {why}"));
                return None;
            }
            panic!(
                "the {test} cannot set up its network namespaces: {why}\n\
                 It needs {needs}. Set LANPEER_SKIP_NETNS=1 to skip it."
            );
        }
    }
}

pub fn ms(d: Duration) -> String {
    format!("{} ms", d.as_millis())
}

pub fn shown(status: Option<ExitStatus>) -> String {
    status.map_or_else(|| "still running".to_string(), |s| s.to_string())
}

/// The string field `key` of `v`, or "".
pub fn text<'a>(v: &'a Value, key: &str) -> &'a str {
    v.get(key).and_then(Value::as_str).unwrap_or("")
}

pub fn is_peer_id(s: &str) -> bool {
    s.len() == 32 && s.bytes().all(|b| b.is_ascii_hexdigit())
}

/// The last `lines` lines of the file at `path` ("" if it cannot be read).
pub fn tail(path: &Path, lines: usize) -> String {
    let text = fs::read_to_string(path).unwrap_or_default();
    let all: Vec<&str> = text.lines().collect();
    all[all.len().saturating_sub(lines)..].join("\n")
}

/// A deadline: an instant, or a time from now.
pub trait Deadline: Copy {
    fn deadline(self) -> Instant;
}

impl Deadline for Instant {
    fn deadline(self) -> Instant {
        self
    }
}

impl Deadline for Duration {
    fn deadline(self) -> Instant {
        Instant::now() + self
    }
}

/// Run `f` on a thread of its own inside the network namespace `ns` (it joins it with `setns`
/// before `f` runs, so every socket `f` opens is the namespace's; the rest of the process stays
/// where it is). Threads `f` starts inherit the namespace.
pub fn in_netns<T: Send + 'static>(ns: &str, f: impl FnOnce() -> T + Send + 'static) -> thread::JoinHandle<T> {
    use std::os::fd::AsRawFd;
    let path = format!("/run/netns/{ns}");
    thread::spawn(move || {
        let file = File::open(&path).unwrap_or_else(|e| panic!("cannot open {path}: {e}"));
        // SAFETY: setns takes a file descriptor (open for the call's duration) and a flag; it
        // changes only this thread's network namespace.
        let r = unsafe { libc::setns(file.as_raw_fd(), libc::CLONE_NEWNET) };
        assert_eq!(r, 0, "setns({path}): {}", std::io::Error::last_os_error());
        drop(file);
        f()
    })
}

/// A process's resident memory (VmRSS), in KiB.
pub fn rss_kib(pid: u32) -> Option<u64> {
    let status = fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    status.lines().find(|l| l.starts_with("VmRSS:"))?.split_whitespace().nth(1)?.parse().ok()
}

/// A process's CPU time so far (user and system), from /proc/PID/stat.
pub fn cpu_time(pid: u32) -> Option<Duration> {
    let stat = fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The fields after the command name (which may hold spaces) start at its closing parenthesis.
    let rest = &stat[stat.rfind(')')? + 2..];
    let f: Vec<&str> = rest.split_whitespace().collect();
    let ticks: u64 = f.get(11)?.parse::<u64>().ok()? + f.get(12)?.parse::<u64>().ok()?;
    // SAFETY: sysconf reads a constant of the system.
    let hz = unsafe { libc::sysconf(libc::_SC_CLK_TCK) }.max(1) as u64;
    Some(Duration::from_millis(ticks * 1000 / hz))
}

// ---------------------------------------------------------------------------------------------
// One peer process and what it printed.

#[derive(Default)]
pub struct Output {
    /// Every JSON object read from stdout, with the instant it was read.
    pub events: Vec<(Instant, Value)>,
    /// Lines that were not one JSON object.
    pub bad_lines: Vec<String>,
    /// Stdout reached its end (the process exited or closed it).
    pub eof: bool,
}

pub type Shared = Arc<(Mutex<Output>, Condvar)>;

/// A host of the lab, and the `lanpeer --json` process it runs (one at a time; it may be
/// started again, on the same data dir).
pub struct Host {
    /// The `--name` of its peer.
    pub name: String,
    /// The command that runs lanpeer in its namespace: [`BIN`], or another build of it (the
    /// Windows exe under `wine`, the static Linux binary).
    pub program: Vec<std::ffi::OsString>,
    /// How that program is given the data dir (a Windows exe wants a drive letter); `None`:
    /// [`Host::data_dir`] as it is.
    pub data_dir_arg: Option<std::ffi::OsString>,
    pub ns: String,
    /// Its eth0 address.
    pub ip: IpAddr,
    /// The same for every process of this host.
    pub data_dir: PathBuf,
    /// Its log files are `<logs>.<run>.stderr` (debug log) and `<logs>.<run>.jsonl` (stdout).
    logs: PathBuf,
    /// The current process (`out` is its stdout); `earlier` the stdouts of the ones before it.
    pub child: Option<Child>,
    pub stdin: Option<ChildStdin>,
    pub out: Shared,
    pub earlier: Vec<Shared>,
    /// Processes started so far (1 for the first).
    pub runs: u32,
    pub spawned: Instant,
    /// From a ready event (set by the test).
    pub id: String,
    pub listen: Option<SocketAddr>,
}

impl Host {
    /// Host number `n` of a lab in `dir`, not started.
    fn new(name: &str, ns: String, ip: IpAddr, dir: &Path, n: usize) -> Host {
        Host {
            name: name.to_string(),
            program: vec![BIN.into()],
            data_dir_arg: None,
            ns,
            ip,
            data_dir: dir.join(format!("host{n}-data")),
            logs: dir.join(format!("host{n}")),
            child: None,
            stdin: None,
            out: Shared::default(),
            earlier: Vec::new(),
            runs: 0,
            spawned: Instant::now(),
            id: String::new(),
            listen: None,
        }
    }

    /// Start `lanpeer --json --name NAME --data-dir DIR` in this host's namespace, with what
    /// `configure` adds (arguments, environment).
    pub fn spawn_with(&mut self, configure: impl FnOnce(&mut Command)) {
        if let Some(c) = self.child.as_mut() {
            assert!(matches!(c.try_wait(), Ok(Some(_))), "{}: spawned while still running", self.name);
        }
        self.runs += 1;
        let old = std::mem::take(&mut self.out);
        if self.runs > 1 {
            self.earlier.push(old);
        }
        let stderr = File::create(self.stderr_path()).expect("stderr log file");
        let mut cmd = Command::new("ip");
        cmd.args(["netns", "exec", &self.ns])
            .args(&self.program)
            .args(["--json", "--name", &self.name, "--data-dir"])
            .arg(self.data_dir_arg.clone().unwrap_or_else(|| self.data_dir.clone().into()))
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(stderr);
        // The CLI logs to stderr, filtered by LANPEER_LOG: a debug log helps when a test fails.
        if std::env::var_os("LANPEER_LOG").is_none() {
            cmd.env("LANPEER_LOG", "lanpeer=debug");
        }
        cmd.env("NO_COLOR", "1");
        configure(&mut cmd);
        self.spawned = Instant::now();
        // `ip netns exec` execs the program: the child's pid is lanpeer's own (or wine's).
        let mut child = cmd.spawn().unwrap_or_else(|e| panic!("{}: cannot spawn: {e}", self.name));
        self.stdin = child.stdin.take();
        let stdout = child.stdout.take().expect("piped stdout");
        self.child = Some(child);
        let out = self.out.clone();
        let raw_path = self.log_path("jsonl");
        thread::spawn(move || {
            let mut raw = File::create(raw_path).ok();
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                let now = Instant::now();
                if let Some(f) = raw.as_mut() {
                    let _ = writeln!(f, "{line}");
                }
                let (lock, cv) = &*out;
                let mut o = lock.lock().unwrap();
                match serde_json::from_str::<Value>(&line) {
                    Ok(v) if v.is_object() => o.events.push((now, v)),
                    _ if line.trim().is_empty() => {}
                    _ => o.bad_lines.push(line),
                }
                cv.notify_all();
            }
            let (lock, cv) = &*out;
            lock.lock().unwrap().eof = true;
            cv.notify_all();
        });
    }

    fn log_path(&self, ext: &str) -> PathBuf {
        let mut p = self.logs.clone().into_os_string();
        p.push(format!(".{}.{ext}", self.runs));
        p.into()
    }

    /// The debug log of the current process.
    pub fn stderr_path(&self) -> PathBuf {
        self.log_path("stderr")
    }

    pub fn stderr_tail(&self, lines: usize) -> String {
        tail(&self.stderr_path(), lines)
    }

    /// Number of events so far: a mark to search from.
    pub fn mark(&self) -> usize {
        self.out.0.lock().unwrap().events.len()
    }

    /// Send one command line; returns the instant just before writing it.
    pub fn send(&mut self, line: &str) -> Instant {
        let t = Instant::now();
        let name = self.name.clone();
        let stdin = self.stdin.as_mut().unwrap_or_else(|| panic!("{name}: stdin already closed"));
        stdin
            .write_all(format!("{line}\n").as_bytes())
            .and_then(|_| stdin.flush())
            .unwrap_or_else(|e| panic!("{name}: cannot write command {line:?}: {e}"));
        t
    }

    /// Wait until `f` (given every event of the current process) returns Some, or the deadline.
    /// None when the deadline passes or the process closed its stdout first.
    pub fn wait_until<T>(&self, by: impl Deadline, mut f: impl FnMut(&[(Instant, Value)]) -> Option<T>) -> Option<T> {
        let deadline = by.deadline();
        let (lock, cv) = &*self.out;
        let mut out = lock.lock().unwrap();
        loop {
            if let Some(x) = f(&out.events) {
                return Some(x);
            }
            let now = Instant::now();
            if out.eof || now >= deadline {
                return None;
            }
            out = cv.wait_timeout(out, deadline - now).unwrap().0;
        }
    }

    /// The first event at or after `since` that satisfies `pred`, waiting until the deadline.
    pub fn wait_for(&self, since: usize, by: impl Deadline, pred: impl Fn(&Value) -> bool) -> Option<(Instant, Value)> {
        self.wait_until(by, |evs| evs.iter().skip(since).find(|(_, v)| pred(v)).map(|(t, v)| (*t, v.clone())))
    }

    /// Like `wait_for`, but a missing event is a test failure described by `what`.
    pub fn expect(
        &self,
        since: usize,
        by: impl Deadline,
        what: &str,
        pred: impl Fn(&Value) -> bool,
    ) -> (Instant, Value) {
        match self.wait_for(since, by, pred) {
            Some(found) => found,
            None => panic!(
                "{}: no {what} (process {}); its events since the mark:\n{}",
                self.name,
                if self.out.0.lock().unwrap().eof { "closed its stdout" } else { "still running" },
                self.events_since(since)
            ),
        }
    }

    /// Every event of the current process.
    pub fn events(&self) -> Vec<(Instant, Value)> {
        self.out.0.lock().unwrap().events.clone()
    }

    /// Every event of the current process, without the instants.
    pub fn values(&self) -> Vec<Value> {
        self.out.0.lock().unwrap().events.iter().map(|(_, v)| v.clone()).collect()
    }

    /// Events since `since` that match `pred`.
    pub fn all(&self, since: usize, pred: impl Fn(&Value) -> bool) -> Vec<Value> {
        self.out.0.lock().unwrap().events[since..].iter().filter(|(_, v)| pred(v)).map(|(_, v)| v.clone()).collect()
    }

    pub fn events_since(&self, since: usize) -> String {
        let out = self.out.0.lock().unwrap();
        let lines: Vec<String> = out.events.iter().skip(since).map(|(_, v)| format!("    {v}")).collect();
        if lines.is_empty() { "    (none)".into() } else { lines.join("\n") }
    }

    /// Stdout lines that were not one JSON object.
    pub fn bad_lines(&self) -> Vec<String> {
        self.out.0.lock().map(|o| o.bad_lines.clone()).unwrap_or_default()
    }

    pub fn running(&mut self) -> bool {
        matches!(self.child.as_mut().map(|c| c.try_wait()), Some(Ok(None)))
    }

    /// The ids this peer lists, asked with `/peers`, sorted.
    pub fn listed(&mut self) -> Vec<String> {
        let m = self.mark();
        self.send("/peers");
        let (_, v) = self.expect(m, Duration::from_secs(5), "peers answer", |v| text(v, "event") == "peers");
        let mut ids: Vec<String> =
            v["peers"].as_array().expect("peers list").iter().map(|p| text(p, "id").to_string()).collect();
        ids.sort();
        ids
    }
}

// ---------------------------------------------------------------------------------------------
// The lab: namespaces, bridge, processes, and the guard that removes them all.

pub struct Lab {
    /// Starts every name of the lab (see [`run_tag`]).
    pub tag: String,
    /// The namespace of the bridge.
    pub switch: String,
    /// Every namespace created (or being created), deleted by Drop.
    pub namespaces: Vec<String>,
    pub hosts: Vec<Host>,
    /// Other children (junk senders, tcpdump...), killed by Drop.
    pub helpers: Vec<Child>,
    /// Logs, data dirs and anything else of the run; removed by Drop unless a test failed.
    pub dir: PathBuf,
}

impl Lab {
    /// A bridge and one host per name, host N at `subnet.(10+N)/24`, all names starting with a
    /// tag made of `prefix` (see [`run_tag`]). Waits until every eth0 is up (default interface
    /// selection wants it). Err: the machine cannot (no netns, no veth...).
    pub fn new(prefix: &str, subnet: [u8; 3], names: &[&str]) -> Result<Lab, String> {
        let tag = run_tag(prefix);
        let dir = std::env::temp_dir().join(format!("lanpeer-netns-{tag}"));
        let mut lab = Lab {
            switch: format!("{tag}sw"),
            tag,
            namespaces: Vec::new(),
            hosts: Vec::new(),
            helpers: Vec::new(),
            dir,
        };
        fs::create_dir_all(&lab.dir).map_err(|e| format!("cannot create {}: {e}", lab.dir.display()))?;
        let sw = lab.switch.clone();
        lab.add_ns(&sw)?;
        ip(&["-n", &sw, "link", "set", "lo", "up"])?;
        ip(&["-n", &sw, "link", "add", "br0", "type", "bridge", "stp_state", "0"])?;
        ip(&["-n", &sw, "link", "set", "br0", "up"])?;
        for (i, name) in names.iter().enumerate() {
            let n = i + 1;
            let ns = format!("{}h{n}", lab.tag);
            lab.add_ns(&ns)?;
            let port = format!("s{n}");
            let addr = Ipv4Addr::new(subnet[0], subnet[1], subnet[2], 10 + n as u8);
            // Created inside the switch namespace, the host end moved straight into its own.
            ip(&["-n", &sw, "link", "add", &port, "type", "veth", "peer", "name", "eth0", "netns", &ns])?;
            ip(&["-n", &sw, "link", "set", &port, "master", "br0"])?;
            ip(&["-n", &sw, "link", "set", &port, "up"])?;
            ip(&["-n", &ns, "link", "set", "lo", "up"])?;
            ip(&["-n", &ns, "addr", "add", &format!("{addr}/24"), "brd", "+", "dev", "eth0"])?;
            ip(&["-n", &ns, "link", "set", "eth0", "up"])?;
            lab.hosts.push(Host::new(name, ns, IpAddr::V4(addr), &lab.dir, n));
        }
        for i in 0..lab.hosts.len() {
            lab.wait_carrier(i)?;
        }
        Ok(lab)
    }

    /// One namespace with nothing but `lo` (up, 127.0.0.1/8), every host in it at 127.0.0.1:
    /// whatever its peers send cannot leave it. The namespace is `switch`. Err: the machine
    /// cannot, or the namespace has another interface.
    pub fn loopback(prefix: &str, names: &[&str]) -> Result<Lab, String> {
        need_root()?;
        let tag = run_tag(prefix);
        let dir = std::env::temp_dir().join(format!("lanpeer-netns-{tag}"));
        let ns = format!("{tag}lo");
        let mut lab =
            Lab { switch: ns.clone(), tag, namespaces: Vec::new(), hosts: Vec::new(), helpers: Vec::new(), dir };
        fs::create_dir_all(&lab.dir).map_err(|e| format!("cannot create {}: {e}", lab.dir.display()))?;
        lab.add_ns(&ns)?;
        ip(&["-n", &ns, "link", "set", "lo", "up"])?;
        let links = ip(&["-n", &ns, "-o", "link", "show"])?;
        let names_seen: Vec<&str> = links.lines().filter_map(|l| l.split(": ").nth(1)).collect();
        if names_seen != ["lo"] {
            return Err(format!("{ns} should have only lo, and has {names_seen:?}"));
        }
        for (i, name) in names.iter().enumerate() {
            lab.hosts.push(Host::new(name, ns.clone(), IpAddr::V4(Ipv4Addr::LOCALHOST), &lab.dir, i + 1));
        }
        Ok(lab)
    }

    /// Like [`Lab::new`], but an IPv6-only LAN: no IPv4 address anywhere (only `lo`'s own
    /// 127.0.0.1, which default selection skips). Each host's eth0 has its link-local address
    /// and, with `ula`, `fd00:<ula>::(10+N)/64`; duplicate address detection is off in every
    /// namespace, so no address is ever `tentative`. Waits until every eth0 is up and has a
    /// usable (non-tentative) link-local address. `Host::ip` is the ULA, or the link-local
    /// address without one.
    pub fn new_v6(prefix: &str, ula: Option<u16>, names: &[&str]) -> Result<Lab, String> {
        let tag = run_tag(prefix);
        let dir = std::env::temp_dir().join(format!("lanpeer-netns-{tag}"));
        let mut lab = Lab {
            switch: format!("{tag}sw"),
            tag,
            namespaces: Vec::new(),
            hosts: Vec::new(),
            helpers: Vec::new(),
            dir,
        };
        fs::create_dir_all(&lab.dir).map_err(|e| format!("cannot create {}: {e}", lab.dir.display()))?;
        let no_dad = |ns: &str| {
            for key in ["all", "default"] {
                run("ip", &["netns", "exec", ns, "sysctl", "-qw", &format!("net.ipv6.conf.{key}.accept_dad=0")])?;
            }
            Ok::<(), String>(())
        };
        let sw = lab.switch.clone();
        lab.add_ns(&sw)?;
        // The switch itself takes no part in IPv6 (its ports would get link-local addresses).
        run("ip", &["netns", "exec", &sw, "sysctl", "-qw", "net.ipv6.conf.default.disable_ipv6=1"])?;
        ip(&["-n", &sw, "link", "set", "lo", "up"])?;
        ip(&["-n", &sw, "link", "add", "br0", "type", "bridge", "stp_state", "0"])?;
        ip(&["-n", &sw, "link", "set", "br0", "up"])?;
        for (i, name) in names.iter().enumerate() {
            let n = i + 1;
            let ns = format!("{}h{n}", lab.tag);
            lab.add_ns(&ns)?;
            no_dad(&ns)?;
            let port = format!("s{n}");
            ip(&["-n", &sw, "link", "add", &port, "type", "veth", "peer", "name", "eth0", "netns", &ns])?;
            ip(&["-n", &sw, "link", "set", &port, "master", "br0"])?;
            ip(&["-n", &sw, "link", "set", &port, "up"])?;
            ip(&["-n", &ns, "link", "set", "lo", "up"])?;
            let mut addr = None;
            if let Some(u) = ula {
                let a: std::net::Ipv6Addr = format!("fd00:{u:x}::{:x}", 10 + n).parse().expect("a ULA");
                ip(&["-n", &ns, "-6", "addr", "add", &format!("{a}/64"), "dev", "eth0", "nodad"])?;
                addr = Some(IpAddr::V6(a));
            }
            ip(&["-n", &ns, "link", "set", "eth0", "up"])?;
            lab.hosts.push(Host::new(
                name,
                ns,
                addr.unwrap_or(IpAddr::V6(std::net::Ipv6Addr::UNSPECIFIED)),
                &lab.dir,
                n,
            ));
        }
        for i in 0..lab.hosts.len() {
            lab.wait_carrier(i)?;
            let ll = lab.wait_link_local(i)?;
            if ula.is_none() {
                lab.hosts[i].ip = IpAddr::V6(ll);
            }
        }
        Ok(lab)
    }

    /// Several subnets joined by a router (broadcast does not cross it): `<tag>r` forwards
    /// IPv4 and holds one bridge per subnet at `A.B.C.1/24`; subnet `k`'s host N (counting from
    /// 1 within the subnet) is at `A.B.C.(10+N)/24` with its default route via the router. Hosts
    /// are numbered across subnets in order. `switch` is the router's namespace.
    ///
    /// ```text
    ///   <tag>r  : ip_forward=1; br0 A.B.C.1/24, br1 D.E.F.1/24 ...
    ///   <tag>h1 : eth0 A.B.C.11/24, default via A.B.C.1
    ///   ...
    /// ```
    pub fn new_routed(prefix: &str, subnets: &[([u8; 3], &[&str])]) -> Result<Lab, String> {
        need_root()?;
        let tag = run_tag(prefix);
        let dir = std::env::temp_dir().join(format!("lanpeer-netns-{tag}"));
        let mut lab =
            Lab { switch: format!("{tag}r"), tag, namespaces: Vec::new(), hosts: Vec::new(), helpers: Vec::new(), dir };
        fs::create_dir_all(&lab.dir).map_err(|e| format!("cannot create {}: {e}", lab.dir.display()))?;
        let r = lab.switch.clone();
        lab.add_ns(&r)?;
        ip(&["-n", &r, "link", "set", "lo", "up"])?;
        run("ip", &["netns", "exec", &r, "sysctl", "-qw", "net.ipv4.ip_forward=1"])?;
        for (k, (net, names)) in subnets.iter().enumerate() {
            let br = format!("br{k}");
            let gw = Ipv4Addr::new(net[0], net[1], net[2], 1);
            ip(&["-n", &r, "link", "add", &br, "type", "bridge", "stp_state", "0"])?;
            ip(&["-n", &r, "addr", "add", &format!("{gw}/24"), "brd", "+", "dev", &br])?;
            ip(&["-n", &r, "link", "set", &br, "up"])?;
            for (i, name) in names.iter().enumerate() {
                let n = lab.hosts.len() + 1;
                let ns = format!("{}h{n}", lab.tag);
                lab.add_ns(&ns)?;
                let port = format!("p{n}");
                let addr = Ipv4Addr::new(net[0], net[1], net[2], 11 + i as u8);
                ip(&["-n", &r, "link", "add", &port, "type", "veth", "peer", "name", "eth0", "netns", &ns])?;
                ip(&["-n", &r, "link", "set", &port, "master", &br])?;
                ip(&["-n", &r, "link", "set", &port, "up"])?;
                ip(&["-n", &ns, "link", "set", "lo", "up"])?;
                ip(&["-n", &ns, "addr", "add", &format!("{addr}/24"), "brd", "+", "dev", "eth0"])?;
                ip(&["-n", &ns, "link", "set", "eth0", "up"])?;
                ip(&["-n", &ns, "route", "add", "default", "via", &gw.to_string()])?;
                lab.hosts.push(Host::new(name, ns, IpAddr::V4(addr), &lab.dir, n));
            }
        }
        for i in 0..lab.hosts.len() {
            lab.wait_carrier(i)?;
        }
        Ok(lab)
    }

    /// Wait (at most 5 s) until host `i`'s eth0 has a link-local address that is not
    /// tentative; that address.
    pub fn wait_link_local(&self, i: usize) -> Result<std::net::Ipv6Addr, String> {
        let ns = &self.hosts[i].ns;
        let deadline = Instant::now() + Duration::from_secs(5);
        loop {
            let show = ip(&["-n", ns, "-6", "addr", "show", "dev", "eth0", "scope", "link"])?;
            let ready = show
                .lines()
                .filter(|l| l.trim_start().starts_with("inet6 ") && !l.contains("tentative"))
                .find_map(|l| l.split_whitespace().nth(1)?.split('/').next()?.parse().ok());
            if let Some(a) = ready {
                return Ok(a);
            }
            if Instant::now() >= deadline {
                return Err(format!("{ns}: no usable link-local address within 5 s: {}", show.trim()));
            }
            thread::sleep(Duration::from_millis(20));
        }
    }

    fn add_ns(&mut self, ns: &str) -> Result<(), String> {
        // Recorded first, so that the guard deletes it whatever happens next.
        self.namespaces.push(ns.to_string());
        ip(&["netns", "add", ns]).map(|_| ())
    }

    /// Wait (at most 5 s) until host `i`'s eth0 is operationally up.
    pub fn wait_carrier(&self, i: usize) -> Result<(), String> {
        let ns = &self.hosts[i].ns;
        let deadline = Instant::now() + Duration::from_secs(5);
        loop {
            let show = ip(&["-n", ns, "link", "show", "eth0"])?;
            if show.contains("state UP") {
                return Ok(());
            }
            if Instant::now() >= deadline {
                return Err(format!("{ns}: eth0 not up within 5 s: {}", show.trim()));
            }
            thread::sleep(Duration::from_millis(20));
        }
    }

    /// Start `lanpeer --json` in host `i`'s namespace (on its data dir, the same each time).
    pub fn spawn(&mut self, i: usize) {
        self.hosts[i].spawn_with(|_| {});
    }

    /// Like `spawn`, with what `configure` adds to the command.
    pub fn spawn_with(&mut self, i: usize, configure: impl FnOnce(&mut Command)) {
        self.hosts[i].spawn_with(configure);
    }

    /// Run `python3 -c script ARGS...` in host `i`'s namespace, at most `limit` (then it is
    /// killed); its exit status (None: killed) and what it printed, (stdout, stderr).
    pub fn run_python(
        &mut self,
        i: usize,
        script: &str,
        args: &[String],
        limit: Duration,
    ) -> (Option<ExitStatus>, String, String) {
        let child = Command::new("ip")
            .args(["netns", "exec", &self.hosts[i].ns, "python3", "-c", script])
            .args(args)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("cannot start python3");
        self.helpers.push(child);
        let c = self.helpers.last_mut().unwrap();
        let status = wait_deadline(c, limit);
        if status.is_none() {
            let _ = c.kill();
            let _ = wait_deadline(c, Duration::from_secs(5));
        }
        let (out, err) = outputs(c);
        (status, out, err)
    }
}

impl Drop for Lab {
    fn drop(&mut self) {
        for h in &mut self.hosts {
            h.stdin.take();
            if let Some(c) = h.child.as_mut() {
                // SIGKILL ends a stopped process too.
                let _ = c.kill();
                let _ = wait_deadline(c, Duration::from_secs(5));
            }
        }
        for c in &mut self.helpers {
            let _ = c.kill();
            let _ = wait_deadline(c, Duration::from_secs(5));
        }
        // Anything else still running in the namespaces (a browser's helpers, say).
        for ns in &self.namespaces {
            if let Ok(pids) = ip(&["netns", "pids", ns]) {
                for pid in pids.split_whitespace() {
                    let _ = run("kill", &["-KILL", pid]);
                }
            }
        }
        let failed = thread::panicking();
        if failed {
            for h in &self.hosts {
                eprintln!(
                    "----- {} ({}, id {}, run {}) stderr, last lines:\n{}\n----- non-JSON stdout lines: {:?}",
                    h.name,
                    h.ns,
                    h.id,
                    h.runs,
                    h.stderr_tail(25),
                    h.bad_lines()
                );
            }
        }
        for ns in self.namespaces.iter().rev() {
            if let Err(e) = ip(&["netns", "del", ns]) {
                eprintln!("netns cleanup: {e}");
            }
        }
        if failed || std::env::var_os("LANPEER_KEEP_LOGS").is_some() {
            eprintln!("logs (debug stderr, raw stdout, data dirs) kept in {}", self.dir.display());
        } else {
            let _ = fs::remove_dir_all(&self.dir);
        }
    }
}
