//! Beyond one broadcast domain, in Linux network namespaces: two subnets joined by a router
//! (broadcast does not cross it), six `lanpeer --json` peers (three per subnet), and one seed
//! peer named with `--peer` on the peers of the other subnet.
//!
//! ```text
//!   <tag>r  : router, ip_forward on; bridges brA 10.77.1.1/24 and brB 10.77.2.1/24
//!   <tag>a1 : eth0 10.77.1.11/24, default via 10.77.1.1   (the seed)
//!   <tag>a2 : eth0 10.77.1.12/24                          (moves to 10.77.1.22)
//!   <tag>a3 : eth0 10.77.1.13/24
//!   <tag>b1 : eth0 10.77.2.11/24, default via 10.77.2.1, --peer 10.77.1.11 (default port)
//!   <tag>b2, <tag>b3 likewise
//! ```
//!
//! Checks, in order:
//! 1. a full mesh forms: each peer lists the five others (B learns A's peers, and A learns B's,
//!    through the seed's gossip);
//! 2. the seed's link goes down: a chat from b2 still reaches the four others;
//! 3. a2's address changes (`ip addr del/add` in its namespace) while running: a private chat
//!    sent to it from b1 at that moment arrives, and every other peer lists it again at its new
//!    address, connected, with the same id.
//!
//! Needs root and `ip` (iproute2); fails without them unless `LANPEER_SKIP_NETNS=1`. A guard
//! kills every child and deletes every namespace, also on panic; every wait has a deadline.
//! `cargo test --test netns_mesh -- --nocapture` shows the figures.

use std::collections::HashMap;
use std::fs::{self, File};
use std::io::{BufRead, BufReader, Write};
use std::path::PathBuf;
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::{Arc, Condvar, Mutex};
use std::thread;
use std::time::{Duration, Instant};

use serde_json::Value;

mod support;
use support::netns::{euid, ip, ms, random16, run, text, wait_deadline};

const BIN: &str = env!("CARGO_BIN_EXE_lanpeer");

/// A full mesh through the seed, after the last peer is ready.
const MESH_LIMIT: Duration = Duration::from_secs(15);
/// A chat reaches the others after the seed has gone.
const CHAT_LIMIT: Duration = Duration::from_secs(5);
/// A moved peer is back (listed at its new address by everyone, its message delivered).
const MOVE_LIMIT: Duration = Duration::from_secs(20);

#[derive(Default)]
struct Output {
    events: Vec<(Instant, Value)>,
    eof: bool,
}

type Shared = Arc<(Mutex<Output>, Condvar)>;

struct Host {
    name: String,
    ns: String,
    child: Option<Child>,
    stdin: Option<ChildStdin>,
    out: Shared,
    stderr_path: PathBuf,
    id: String,
}

impl Host {
    fn mark(&self) -> usize {
        self.out.0.lock().unwrap().events.len()
    }

    fn send(&mut self, line: &str) -> Instant {
        let t = Instant::now();
        let name = self.name.clone();
        let stdin = self.stdin.as_mut().unwrap_or_else(|| panic!("{name}: stdin closed"));
        stdin
            .write_all(format!("{line}\n").as_bytes())
            .and_then(|_| stdin.flush())
            .unwrap_or_else(|e| panic!("{name}: cannot write {line:?}: {e}"));
        t
    }

    fn wait_for(&self, since: usize, deadline: Instant, pred: impl Fn(&Value) -> bool) -> Option<(Instant, Value)> {
        let (lock, cv) = &*self.out;
        let mut out = lock.lock().unwrap();
        let mut from = since;
        loop {
            if let Some((t, v)) = out.events[from..].iter().find(|(_, v)| pred(v)) {
                return Some((*t, v.clone()));
            }
            from = out.events.len();
            let now = Instant::now();
            if out.eof || now >= deadline {
                return None;
            }
            out = cv.wait_timeout(out, deadline - now).unwrap().0;
        }
    }

    fn events_since(&self, since: usize) -> String {
        let out = self.out.0.lock().unwrap();
        let s: String = out.events.iter().skip(since).map(|(_, v)| format!("    {v}\n")).collect();
        if s.is_empty() { "    (none)\n".into() } else { s }
    }

    /// The peers listed now, from the joined and left events: id -> addr.
    fn listed(&self) -> HashMap<String, String> {
        let out = self.out.0.lock().unwrap();
        let mut m = HashMap::new();
        for (_, v) in &out.events {
            match text(v, "event") {
                "peer_joined" => {
                    m.insert(text(v, "id").to_string(), text(v, "addr").to_string());
                }
                "peer_left" => {
                    m.remove(text(v, "id"));
                }
                _ => {}
            }
        }
        m
    }

    /// Ask `/peers` and return its list (id -> (addr, state)), within 2 s.
    fn peers_now(&mut self) -> Option<HashMap<String, (String, String)>> {
        let m = self.mark();
        let t = self.send("/peers");
        let (_, v) = self.wait_for(m, t + Duration::from_secs(2), |v| text(v, "event") == "peers")?;
        Some(
            v.get("peers")?
                .as_array()?
                .iter()
                .map(|p| (text(p, "id").to_string(), (text(p, "addr").to_string(), text(p, "state").to_string())))
                .collect(),
        )
    }
}

struct Lab {
    tag: String,
    namespaces: Vec<String>,
    hosts: Vec<Host>,
    dir: PathBuf,
}

impl Lab {
    fn new() -> Result<Lab, String> {
        let tag = format!("lm{}{:04x}", std::process::id() % 100_000, random16());
        let dir = std::env::temp_dir().join(format!("lanpeer-netns-{tag}"));
        let mut lab = Lab { tag, namespaces: Vec::new(), hosts: Vec::new(), dir };
        match euid() {
            Some(0) => {}
            Some(uid) => return Err(format!("network namespaces need root, and the euid is {uid}")),
            None => return Err("cannot read the euid".into()),
        }
        fs::create_dir_all(&lab.dir).map_err(|e| format!("cannot create {}: {e}", lab.dir.display()))?;
        let r = format!("{}r", lab.tag);
        lab.add_ns(&r)?;
        ip(&["-n", &r, "link", "set", "lo", "up"])?;
        run("ip", &["netns", "exec", &r, "sysctl", "-qw", "net.ipv4.ip_forward=1"])?;
        for (net, br) in [(1, "brA"), (2, "brB")] {
            ip(&["-n", &r, "link", "add", br, "type", "bridge", "stp_state", "0"])?;
            ip(&["-n", &r, "addr", "add", &format!("10.77.{net}.1/24"), "brd", "+", "dev", br])?;
            ip(&["-n", &r, "link", "set", br, "up"])?;
        }
        for (k, (sub, i)) in [("a", 1), ("a", 2), ("a", 3), ("b", 1), ("b", 2), ("b", 3)].into_iter().enumerate() {
            let net = if sub == "a" { 1 } else { 2 };
            let name = format!("{sub}{i}");
            let ns = format!("{}{name}", lab.tag);
            lab.add_ns(&ns)?;
            let port = format!("p{k}");
            ip(&["-n", &r, "link", "add", &port, "type", "veth", "peer", "name", "eth0", "netns", &ns])?;
            ip(&["-n", &r, "link", "set", &port, "master", if net == 1 { "brA" } else { "brB" }])?;
            ip(&["-n", &r, "link", "set", &port, "up"])?;
            ip(&["-n", &ns, "link", "set", "lo", "up"])?;
            ip(&["-n", &ns, "addr", "add", &format!("10.77.{net}.{}/24", 10 + i), "brd", "+", "dev", "eth0"])?;
            ip(&["-n", &ns, "link", "set", "eth0", "up"])?;
            ip(&["-n", &ns, "route", "add", "default", "via", &format!("10.77.{net}.1")])?;
            lab.hosts.push(Host {
                stderr_path: lab.dir.join(format!("{name}.stderr")),
                name,
                ns,
                child: None,
                stdin: None,
                out: Shared::default(),
                id: String::new(),
            });
        }
        let deadline = Instant::now() + Duration::from_secs(5);
        for h in &lab.hosts {
            while !ip(&["-n", &h.ns, "link", "show", "eth0"])?.contains("state UP") {
                if Instant::now() >= deadline {
                    return Err(format!("{}: eth0 not up within 5 s", h.ns));
                }
                thread::sleep(Duration::from_millis(20));
            }
        }
        Ok(lab)
    }

    fn add_ns(&mut self, ns: &str) -> Result<(), String> {
        self.namespaces.push(ns.to_string());
        ip(&["netns", "add", ns]).map(|_| ())
    }

    fn spawn(&mut self, i: usize, extra: &[&str]) {
        let data_dir = self.dir.join(format!("{}-data", self.hosts[i].name));
        let h = &mut self.hosts[i];
        let stderr = File::create(&h.stderr_path).expect("stderr log file");
        let mut cmd = Command::new("ip");
        cmd.args(["netns", "exec", &h.ns, BIN, "--json", "--name", &h.name, "--data-dir"])
            .arg(&data_dir)
            .args(extra)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(stderr);
        if std::env::var_os("LANPEER_LOG").is_none() {
            cmd.env("LANPEER_LOG", "lanpeer=debug");
        }
        let mut child = cmd.spawn().unwrap_or_else(|e| panic!("{}: cannot spawn: {e}", h.name));
        h.stdin = child.stdin.take();
        let stdout = child.stdout.take().expect("piped stdout");
        h.child = Some(child);
        let out = h.out.clone();
        thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                let now = Instant::now();
                let (lock, cv) = &*out;
                if let Ok(v) = serde_json::from_str::<Value>(&line) {
                    lock.lock().unwrap().events.push((now, v));
                }
                cv.notify_all();
            }
            let (lock, cv) = &*out;
            lock.lock().unwrap().eof = true;
            cv.notify_all();
        });
    }

    fn stderr_tail(&self, i: usize, lines: usize) -> String {
        let text = fs::read_to_string(&self.hosts[i].stderr_path).unwrap_or_default();
        let all: Vec<&str> = text.lines().collect();
        all[all.len().saturating_sub(lines)..].join("\n")
    }
}

impl Drop for Lab {
    fn drop(&mut self) {
        for h in &mut self.hosts {
            h.stdin.take();
            if let Some(c) = h.child.as_mut() {
                let _ = c.kill();
                let _ = wait_deadline(c, Duration::from_secs(5));
            }
        }
        let failed = thread::panicking();
        if failed {
            for (i, h) in self.hosts.iter().enumerate() {
                eprintln!("----- {} ({}, id {}) stderr, last lines:\n{}", h.name, h.ns, h.id, self.stderr_tail(i, 30));
            }
        }
        for ns in self.namespaces.iter().rev() {
            if let Err(e) = ip(&["netns", "del", ns]) {
                eprintln!("netns cleanup: {e}");
            }
        }
        if failed {
            eprintln!("logs kept in {}", self.dir.display());
        } else {
            let _ = fs::remove_dir_all(&self.dir);
        }
    }
}

/// Poll `cond` every 100 ms until it holds (Some) or `deadline` passes (None).
fn until<T>(deadline: Instant, mut cond: impl FnMut() -> Option<T>) -> Option<T> {
    loop {
        if let Some(t) = cond() {
            return Some(t);
        }
        if Instant::now() >= deadline {
            return None;
        }
        thread::sleep(Duration::from_millis(100));
    }
}

#[test]
fn seed_gossip_two_subnets_and_a_moving_peer() {
    let started = Instant::now();
    let mut lab = match Lab::new() {
        Ok(lab) => lab,
        Err(why) => {
            if std::env::var("LANPEER_SKIP_NETNS").as_deref() == Ok("1") {
                eprintln!("netns mesh test skipped (LANPEER_SKIP_NETNS=1): {why}");
                return;
            }
            panic!("the netns mesh test cannot set up its namespaces: {why}\nSet LANPEER_SKIP_NETNS=1 to skip it.");
        }
    };
    let (a1, a2, a3, b1, b2, b3) = (0, 1, 2, 3, 4, 5);
    let n = lab.hosts.len();

    // ---- 1. Start: the B peers know only the seed (a1), by address, on the default port.
    for i in 0..n {
        let extra: &[&str] = if i >= b1 { &["--peer", "10.77.1.11"] } else { &[] };
        lab.spawn(i, extra);
    }
    let mut last_ready = Instant::now();
    for i in 0..n {
        let h = &lab.hosts[i];
        let Some((t, ready)) = h.wait_for(0, Instant::now() + Duration::from_secs(10), |v| text(v, "event") == "ready")
        else {
            panic!("{}: no ready event within 10 s; stderr:\n{}", h.name, lab.stderr_tail(i, 30));
        };
        last_ready = last_ready.max(t);
        assert!(text(&ready, "listen").ends_with(":5681"), "{}: not on the default session port: {ready}", h.name);
        lab.hosts[i].id = text(&ready, "id").to_string();
    }
    let ids: Vec<String> = lab.hosts.iter().map(|h| h.id.clone()).collect();
    let full = until(last_ready + MESH_LIMIT, || {
        lab.hosts
            .iter()
            .all(|h| {
                let l = h.listed();
                ids.iter().filter(|id| **id != h.id).all(|id| l.contains_key(id))
            })
            .then(Instant::now)
    });
    if full.is_none() {
        let seen: Vec<String> = lab.hosts.iter().map(|h| format!("{}: {} listed", h.name, h.listed().len())).collect();
        panic!("no full mesh within {}: {}", ms(MESH_LIMIT), seen.join(", "));
    }
    let mesh_time = full.unwrap().saturating_duration_since(last_ready);
    // One peer per id, whatever the number of addresses: each lists exactly 5.
    for h in &lab.hosts {
        assert_eq!(h.listed().len(), n - 1, "{}: {:?}", h.name, h.listed());
    }
    // B learned A's non-seed peers by gossip, and at their real addresses.
    assert!(lab.hosts[b3].listed().get(&ids[a3]).is_some_and(|a| a.starts_with("10.77.1.13:")));
    println!("1. full mesh of 6 peers over two subnets through one seed: {} after the last ready", ms(mesh_time));

    // ---- 2. The seed's link goes down: the others still talk.
    ip(&["-n", &lab.hosts[a1].ns, "link", "set", "eth0", "down"]).unwrap();
    let chat = format!("after the seed left {}", lab.tag);
    let marks: Vec<usize> = lab.hosts.iter().map(Host::mark).collect();
    let t0 = lab.hosts[b2].send(&chat);
    let mut worst = Duration::ZERO;
    for i in [a2, a3, b1, b3] {
        let h = &lab.hosts[i];
        let Some((t, _)) =
            h.wait_for(marks[i], t0 + CHAT_LIMIT, |v| text(v, "event") == "chat" && text(v, "text") == chat)
        else {
            panic!("{}: no chat from b2 after the seed left; events:\n{}", h.name, h.events_since(marks[i]));
        };
        worst = worst.max(t - t0);
    }
    println!("2. seed link down: a chat from b2 reached the 4 others in {}", ms(worst));

    // ---- 3. a2 moves to a new address while running; b1 writes to it at that moment.
    let ns = lab.hosts[a2].ns.clone();
    let marks: Vec<usize> = lab.hosts.iter().map(Host::mark).collect();
    let t_move = Instant::now();
    ip(&["-n", &ns, "addr", "del", "10.77.1.12/24", "dev", "eth0"]).unwrap();
    ip(&["-n", &ns, "addr", "add", "10.77.1.22/24", "brd", "+", "dev", "eth0"]).unwrap();
    ip(&["-n", &ns, "route", "replace", "default", "via", "10.77.1.1"]).unwrap();
    let secret = format!("while you moved {}", lab.tag);
    lab.hosts[b1].send(&format!("/msg a2 {secret}"));
    let a2_id = ids[a2].clone();
    let others = [a3, b1, b2, b3];
    let (got, _) = lab.hosts[a2]
        .wait_for(marks[a2], t_move + MOVE_LIMIT, |v| text(v, "event") == "chat" && text(v, "text") == secret)
        .unwrap_or_else(|| {
            panic!("a2: the chat sent while it moved never arrived:\n{}", lab.hosts[a2].events_since(marks[a2]))
        });
    let delivered = got - t_move;
    let mut pending: Vec<usize> = others.to_vec();
    let back = until(t_move + MOVE_LIMIT, || {
        pending.retain(|&i| {
            let ok = lab.hosts[i]
                .peers_now()
                .and_then(|p| p.get(&a2_id).cloned())
                .is_some_and(|(addr, state)| addr.starts_with("10.77.1.22:") && state == "connected");
            !ok
        });
        pending.is_empty().then(Instant::now)
    });
    let Some(back) = back else {
        let views: Vec<String> = pending
            .iter()
            .map(|&i| {
                let seen = lab.hosts[i].peers_now().and_then(|p| p.get(&a2_id).cloned());
                format!("{}: {seen:?}", lab.hosts[i].name)
            })
            .collect();
        panic!("a2 not back at its new address within {}: {}", ms(MOVE_LIMIT), views.join("; "));
    };
    // And a2 itself has every other live peer connected again.
    let a2_sees = until(t_move + MOVE_LIMIT, || {
        let p = lab.hosts[a2].peers_now()?;
        others.iter().all(|&i| p.get(&ids[i]).is_some_and(|(_, s)| s == "connected")).then_some(())
    });
    assert!(a2_sees.is_some(), "a2 does not list the others as connected: {:?}", lab.hosts[a2].peers_now());
    println!(
        "3. address change of a2: its pending message delivered after {}, listed at the new address by all 4 after {}",
        ms(delivered),
        ms(back - t_move)
    );
    // Nobody lost its id: a2 has one id, listed once.
    for &i in &others {
        let l = lab.hosts[i].listed();
        assert!(l.contains_key(&a2_id), "{}: a2 not listed", lab.hosts[i].name);
    }
    let elapsed = started.elapsed();
    println!("netns mesh test: {} in all", ms(elapsed));
    assert!(elapsed < Duration::from_secs(90), "took {}", ms(elapsed));
}
