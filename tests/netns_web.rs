//! The web page end to end, in real headless Chromium, over a real (virtual) LAN: three
//! `lanpeer` processes in Linux network namespaces on one bridge. The teacher's peer runs with
//! `--web` (and `--json`, to read its address and events); Chromium runs inside the teacher's
//! namespace and browses to the page on that namespace's loopback. Two students are `--json`
//! peers driven by this test.
//!
//! ```text
//!   <tag>sw : bridge br0, ports s1..s3
//!   <tag>h1 : eth0 10.231.0.11/24   Ms Rivera, --role teacher --web   + Chromium (tests/web/e2e.js)
//!   <tag>h2 : eth0 10.231.0.12/24   Sam, --json
//!   <tag>h3 : eth0 10.231.0.13/24   Lea, --json
//! ```
//!
//! tests/web/e2e.js works the page like a person (label `Message`, Enter, buttons) on commands
//! from this test, one JSON line each way; every check is made here. Needs root, `ip`, `node`,
//! `/usr/bin/chromium` and `npm ci` in tests/web (`.ci/run` does all of it). Without them the test
//! fails, unless `LANPEER_SKIP_WEB=1` is set. A guard kills every child and deletes every
//! namespace, also on panic; every wait has a deadline.
//!
//! Screenshots land in `$CARGO_TARGET_TMPDIR/netns_web/`; with `LANPEER_UPDATE_SCREENSHOT=1` the
//! laptop-width one is also written to docs/web.png.
//!
//! Run: `cargo test --test netns_web -- --nocapture` (as root) to see the measured times.

use std::collections::hash_map::RandomState;
use std::fs::{self, File};
use std::hash::{BuildHasher, Hasher};
use std::io::{BufRead, BufReader, Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, ExitStatus, Stdio};
use std::sync::mpsc;
use std::sync::{Arc, Condvar, Mutex};
use std::thread;
use std::time::{Duration, Instant};

use serde_json::{Value, json};

const BIN: &str = env!("CARGO_BIN_EXE_lanpeer");
const CHROMIUM: &str = "/usr/bin/chromium";
/// Students see each other and the teacher within this after the last start.
const DISCOVERY_LIMIT: Duration = Duration::from_secs(5);
/// A message reaches a peer, or the page, within this.
const DELIVERY_LIMIT: Duration = Duration::from_secs(3);
/// One action of the page driver (its own waits are 10 s).
const DRIVER_LIMIT: Duration = Duration::from_secs(20);

// ---------------------------------------------------------------------------------------------
// Small process helpers, all bounded in time.

fn wait_deadline(child: &mut Child, limit: Duration) -> Option<ExitStatus> {
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
fn run(program: &str, args: &[&str]) -> Result<String, String> {
    let shown = format!("`{program} {}`", args.join(" "));
    let mut child = Command::new(program)
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| format!("cannot run {shown}: {e}"))?;
    let Some(status) = wait_deadline(&mut child, Duration::from_secs(10)) else {
        let _ = child.kill();
        let _ = wait_deadline(&mut child, Duration::from_secs(2));
        return Err(format!("{shown} did not finish within 10 s"));
    };
    let (mut out, mut err) = (String::new(), String::new());
    if let Some(mut o) = child.stdout.take() {
        let _ = o.read_to_string(&mut out);
    }
    if let Some(mut e) = child.stderr.take() {
        let _ = e.read_to_string(&mut err);
    }
    if status.success() { Ok(out) } else { Err(format!("{shown} failed ({status}): {}", err.trim())) }
}

fn ip(args: &[&str]) -> Result<String, String> {
    run("ip", args)
}

fn random16() -> u16 {
    let mut h = RandomState::new().build_hasher();
    h.write_u128(std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_nanos()).unwrap_or(0));
    h.finish() as u16
}

fn euid() -> Option<u32> {
    let status = fs::read_to_string("/proc/self/status").ok()?;
    status.lines().find(|l| l.starts_with("Uid:"))?.split_whitespace().nth(2)?.parse().ok()
}

fn text<'a>(v: &'a Value, key: &str) -> &'a str {
    v.get(key).and_then(Value::as_str).unwrap_or("")
}

fn ms(d: Duration) -> String {
    format!("{} ms", d.as_millis())
}

fn web_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests").join("web")
}

/// Everything this test needs from the machine, or why it cannot run.
fn preconditions() -> Result<(), String> {
    match euid() {
        Some(0) => {}
        Some(uid) => return Err(format!("network namespaces need root, and the euid is {uid}")),
        None => return Err("cannot read the euid from /proc/self/status".into()),
    }
    run("ip", &["-V"]).map_err(|e| format!("`ip` (iproute2) is needed: {e}"))?;
    run("node", &["--version"]).map_err(|e| format!("Node.js is needed (apt-get install nodejs npm): {e}"))?;
    if !Path::new(CHROMIUM).exists() {
        return Err(format!("{CHROMIUM} is missing (apt-get install chromium)"));
    }
    if !web_dir().join("node_modules").join("playwright-core").exists() {
        return Err("playwright-core is missing: run `npm ci` in tests/web".into());
    }
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// A peer process and what it printed.

#[derive(Default)]
struct Output {
    events: Vec<(Instant, Value)>,
    bad_lines: Vec<String>,
    eof: bool,
}

type Shared = Arc<(Mutex<Output>, Condvar)>;

struct Peer {
    name: String,
    ns: String,
    child: Option<Child>,
    stdin: Option<ChildStdin>,
    out: Shared,
    stderr_path: PathBuf,
    id: String,
}

impl Peer {
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

    fn wait_for(&self, since: usize, limit: Duration, pred: impl Fn(&Value) -> bool) -> Option<(Instant, Value)> {
        let deadline = Instant::now() + limit;
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

    fn expect(&self, since: usize, limit: Duration, what: &str, pred: impl Fn(&Value) -> bool) -> (Instant, Value) {
        self.wait_for(since, limit, pred).unwrap_or_else(|| {
            let out = self.out.0.lock().unwrap();
            let seen: Vec<String> = out.events.iter().skip(since).map(|(_, v)| format!("    {v}")).collect();
            panic!("{}: no {what} within {limit:?}; its events since the mark:\n{}", self.name, seen.join("\n"))
        })
    }

    fn events(&self) -> Vec<Value> {
        self.out.0.lock().unwrap().events.iter().map(|(_, v)| v.clone()).collect()
    }
}

/// The page driver: tests/web/e2e.js with Chromium, one JSON line each way.
struct Driver {
    child: Child,
    stdin: ChildStdin,
    lines: mpsc::Receiver<String>,
    next: u64,
}

impl Driver {
    fn call(&mut self, action: &str, args: Value) -> (Duration, Value) {
        self.next += 1;
        let mut cmd = args;
        cmd["id"] = json!(self.next);
        cmd["do"] = json!(action);
        let t = Instant::now();
        writeln!(self.stdin, "{cmd}").and_then(|_| self.stdin.flush()).expect("write to the page driver");
        let deadline = t + DRIVER_LIMIT;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            let line = match self.lines.recv_timeout(left) {
                Ok(l) => l,
                Err(_) => panic!("page driver: no answer to {action} within {DRIVER_LIMIT:?}"),
            };
            let Ok(v) = serde_json::from_str::<Value>(&line) else {
                eprintln!("page driver, not JSON: {line}");
                continue;
            };
            if v["id"] == json!(self.next) || v["id"].is_null() {
                assert_eq!(v["ok"], json!(true), "page driver, {action} {cmd}: {}", text(&v, "error"));
                return (t.elapsed(), v);
            }
        }
    }
}

// ---------------------------------------------------------------------------------------------
// The lab: namespaces, bridge, processes, and the guard that removes them all.

struct Lab {
    tag: String,
    namespaces: Vec<String>,
    peers: Vec<Peer>,
    driver: Option<Driver>,
    dir: PathBuf,
}

impl Lab {
    fn new(names: &[&str]) -> Result<Lab, String> {
        let tag = format!("lw{}{:04x}", std::process::id() % 100_000, random16());
        let dir = std::env::temp_dir().join(format!("lanpeer-netns-web-{tag}"));
        let mut lab = Lab { tag, namespaces: Vec::new(), peers: Vec::new(), driver: None, dir };
        fs::create_dir_all(&lab.dir).map_err(|e| format!("cannot create {}: {e}", lab.dir.display()))?;
        let sw = format!("{}sw", lab.tag);
        lab.add_ns(&sw)?;
        ip(&["-n", &sw, "link", "set", "lo", "up"])?;
        ip(&["-n", &sw, "link", "add", "br0", "type", "bridge", "stp_state", "0"])?;
        ip(&["-n", &sw, "link", "set", "br0", "up"])?;
        for (i, name) in names.iter().enumerate() {
            let n = i + 1;
            let ns = format!("{}h{n}", lab.tag);
            lab.add_ns(&ns)?;
            let port = format!("s{n}");
            ip(&["-n", &sw, "link", "add", &port, "type", "veth", "peer", "name", "eth0", "netns", &ns])?;
            ip(&["-n", &sw, "link", "set", &port, "master", "br0"])?;
            ip(&["-n", &sw, "link", "set", &port, "up"])?;
            ip(&["-n", &ns, "link", "set", "lo", "up"])?;
            ip(&["-n", &ns, "addr", "add", &format!("10.231.0.{}/24", 10 + n), "brd", "+", "dev", "eth0"])?;
            ip(&["-n", &ns, "link", "set", "eth0", "up"])?;
            lab.peers.push(Peer {
                name: name.to_string(),
                ns,
                child: None,
                stdin: None,
                out: Shared::default(),
                stderr_path: lab.dir.join(format!("peer{n}.stderr")),
                id: String::new(),
            });
        }
        let deadline = Instant::now() + Duration::from_secs(5);
        for p in &lab.peers {
            loop {
                let show = ip(&["-n", &p.ns, "link", "show", "eth0"])?;
                if show.contains("state UP") {
                    break;
                }
                if Instant::now() >= deadline {
                    return Err(format!("{}: eth0 not up within 5 s: {}", p.ns, show.trim()));
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

    /// Start `lanpeer --json EXTRA...` as peer `i` in its namespace.
    fn spawn(&mut self, i: usize, extra: &[&str]) {
        let data_dir = self.dir.join(format!("peer{}-data", i + 1));
        let p = &mut self.peers[i];
        let stderr = File::create(&p.stderr_path).expect("stderr log file");
        let mut cmd = Command::new("ip");
        cmd.args(["netns", "exec", &p.ns, BIN, "--json", "--name", &p.name, "--data-dir"])
            .arg(&data_dir)
            .args(extra)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(stderr);
        if std::env::var_os("LANPEER_LOG").is_none() {
            cmd.env("LANPEER_LOG", "lanpeer=debug");
        }
        let mut child = cmd.spawn().unwrap_or_else(|e| panic!("{}: cannot spawn: {e}", p.name));
        p.stdin = child.stdin.take();
        let stdout = child.stdout.take().expect("piped stdout");
        p.child = Some(child);
        let out = p.out.clone();
        thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                let (lock, cv) = &*out;
                let mut o = lock.lock().unwrap();
                match serde_json::from_str::<Value>(&line) {
                    Ok(v) if v.is_object() => o.events.push((Instant::now(), v)),
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

    /// Start the page driver (Node.js + Chromium) in peer `i`'s namespace, browsing to `url`.
    fn start_driver(&mut self, i: usize, url: &str) {
        let home = self.dir.join("browser-home");
        let profile = self.dir.join("chromium-profile");
        fs::create_dir_all(&home).expect("browser home");
        let stderr = File::create(self.dir.join("driver.stderr")).expect("driver log file");
        let mut child = Command::new("ip")
            .args(["netns", "exec", &self.peers[i].ns, "node", "e2e.js", url])
            .arg(&profile)
            .current_dir(web_dir())
            .env("HOME", &home)
            .env("XDG_CONFIG_HOME", home.join(".config"))
            .env("XDG_CACHE_HOME", home.join(".cache"))
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(stderr)
            .spawn()
            .expect("cannot start node tests/web/e2e.js");
        let stdin = child.stdin.take().expect("driver stdin");
        let stdout = child.stdout.take().expect("driver stdout");
        let (tx, rx) = mpsc::channel();
        thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        let d = Driver { child, stdin, lines: rx, next: 0 };
        // The first line says the browser is up.
        let first = d.lines.recv_timeout(Duration::from_secs(40)).unwrap_or_else(|_| {
            panic!("the page driver did not start within 40 s; see {}", self.dir.join("driver.stderr").display())
        });
        let v: Value = serde_json::from_str(&first).unwrap_or_else(|_| panic!("page driver said: {first}"));
        assert_eq!(v["ready"], json!(true), "page driver did not start: {v}");
        self.driver = Some(d);
    }

    fn driver(&mut self) -> &mut Driver {
        self.driver.as_mut().expect("driver started")
    }

    fn tail(path: &Path, lines: usize) -> String {
        let text = fs::read_to_string(path).unwrap_or_default();
        let all: Vec<&str> = text.lines().collect();
        all[all.len().saturating_sub(lines)..].join("\n")
    }
}

impl Drop for Lab {
    fn drop(&mut self) {
        if let Some(d) = self.driver.as_mut() {
            let _ = writeln!(d.stdin, "{}", json!({"id": 0, "do": "quit"}));
            let _ = d.stdin.flush();
            if wait_deadline(&mut d.child, Duration::from_secs(5)).is_none() {
                let _ = d.child.kill();
                let _ = wait_deadline(&mut d.child, Duration::from_secs(5));
            }
        }
        for p in &mut self.peers {
            p.stdin.take();
            if let Some(c) = p.child.as_mut() {
                let _ = c.kill();
                let _ = wait_deadline(c, Duration::from_secs(5));
            }
        }
        // Anything the browser left behind in the namespaces (it runs in the first one).
        if let Some(p) = self.peers.first() {
            let _ = run("ip", &["netns", "pids", &p.ns]).map(|pids| {
                for pid in pids.split_whitespace() {
                    let _ = run("kill", &["-KILL", pid]);
                }
            });
        }
        let failed = thread::panicking();
        if failed {
            for p in &self.peers {
                let bad = p.out.0.lock().map(|o| o.bad_lines.clone()).unwrap_or_default();
                eprintln!(
                    "----- {} ({}) stderr, last lines:\n{}\n----- non-JSON stdout: {bad:?}",
                    p.name,
                    p.ns,
                    Self::tail(&p.stderr_path, 25)
                );
            }
            eprintln!("----- page driver stderr:\n{}", Self::tail(&self.dir.join("driver.stderr"), 40));
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

// ---------------------------------------------------------------------------------------------

const TEACHER: usize = 0;
const SAM: usize = 1;
const LEA: usize = 2;

#[test]
fn web_page_in_chromium_between_namespaces() {
    if std::env::var("LANPEER_SKIP_WEB").as_deref() == Ok("1") {
        eprintln!("netns_web: skipped (LANPEER_SKIP_WEB=1)");
        return;
    }
    if let Err(why) = preconditions() {
        panic!("netns_web cannot run: {why}. Set LANPEER_SKIP_WEB=1 to skip it on a machine that cannot.");
    }
    let mut lab = Lab::new(&["Ms Rivera", "Sam", "Lea"]).unwrap_or_else(|e| panic!("cannot build the lab: {e}"));
    let started = Instant::now();

    // The students first, then the teacher with the page.
    lab.spawn(SAM, &[]);
    lab.spawn(LEA, &[]);
    lab.spawn(TEACHER, &["--role", "teacher", "--web"]);
    for i in [TEACHER, SAM, LEA] {
        let (_, ready) = lab.peers[i].expect(0, Duration::from_secs(10), "ready event", |v| v["event"] == "ready");
        lab.peers[i].id = text(&ready, "id").to_string();
    }
    let (_, web) = lab.peers[TEACHER].expect(0, Duration::from_secs(5), "web event", |v| v["event"] == "web");
    let url = text(&web, "url").to_string();
    assert!(url.starts_with("http://127.0.0.1:") && url.ends_with('/'), "the page is on loopback by default: {url}");
    let events = lab.peers[TEACHER].events();
    let web_at = events.iter().position(|v| v["event"] == "web").unwrap();
    assert_eq!(events[0]["event"], "ready", "ready stays the first event");
    assert!(web_at > 0);
    let teacher_id = lab.peers[TEACHER].id.clone();
    let sam_id = lab.peers[SAM].id.clone();
    for i in [SAM, LEA] {
        lab.peers[i].expect(0, DISCOVERY_LIMIT, "the teacher joined, as teacher", |v| {
            v["event"] == "peer_joined" && v["id"] == teacher_id.as_str() && v["role"] == "teacher"
        });
    }

    // The page, in Chromium inside the teacher's namespace.
    lab.start_driver(TEACHER, &url);
    let (t, opened) = lab.driver().call("open", json!({}));
    println!("page open and connected: {}", ms(t));
    assert!(text(&opened, "whoami").contains("Ms Rivera"), "{opened}");
    let (t, sam) = lab.driver().call("expect_peer", json!({"name": "Sam"}));
    lab.driver().call("expect_peer", json!({"name": "Lea"}));
    println!("page lists the students: {}", ms(t));
    assert_eq!(sam["badges"], json!([]), "Sam is no teacher");

    // A chat typed into `Message` reaches the students.
    let (s, l) = (lab.peers[SAM].mark(), lab.peers[LEA].mark());
    let t0 = Instant::now();
    lab.driver().call("chat", json!({"text": "Good morning! Today: loops."}));
    let is_hello = |v: &Value| v["event"] == "chat" && v["text"] == "Good morning! Today: loops.";
    let (at, v) = lab.peers[SAM].expect(s, DELIVERY_LIMIT, "the page's chat", is_hello);
    assert_eq!((text(&v, "from"), &v["to"]), (teacher_id.as_str(), &Value::Null));
    lab.peers[LEA].expect(l, DELIVERY_LIMIT, "the page's chat", is_hello);
    println!("chat typed on the page -> other peer: {}", ms(at - t0));

    // The students' chats appear on the page, as text, even when they look like HTML.
    let t0 = lab.peers[SAM].send("Good morning, Ms Rivera");
    let (_, c) = lab.driver().call("expect_chat", json!({"text": "Good morning, Ms Rivera"}));
    println!("chat of another peer -> page: {}", ms(t0.elapsed()));
    assert_eq!(text(&c, "from"), "Sam");
    // A student's problem appears with its body, newlines kept.
    let s = lab.peers[SAM].mark();
    lab.peers[SAM].send(r"/problem Loops | Print the numbers 1 to 10.\nUse a for loop.");
    let (_, p) = lab.peers[SAM].expect(s, DELIVERY_LIMIT, "own problem", |v| v["event"] == "problem");
    let problem_id = text(&p, "id").to_string();
    let (_, shown) = lab.driver().call("expect_problem", json!({"title": "Loops"}));
    assert_eq!(text(&shown, "problem_id"), problem_id);
    assert_eq!(text(&shown, "body"), "Print the numbers 1 to 10.\nUse a for loop.");

    // Lea answers; her code shows as code on the page, indentation and newlines kept.
    let l = lab.peers[LEA].mark();
    let short = &problem_id[..8];
    let seq = &problem_id[problem_id.rfind('-').unwrap() + 1..];
    lab.peers[LEA].send(&format!(r"/answer {short}-{seq} for i in range(1, 11):\n    print(i)"));
    let (_, lea_answer) = lab.peers[LEA].expect(l, DELIVERY_LIMIT, "own answer", |v| v["event"] == "answer");
    let lea_answer_id = text(&lea_answer, "id").to_string();
    let (_, a) = lab.driver().call("expect_answer", json!({"title": "Loops", "text": "print(i)"}));
    assert_eq!(text(&a, "answer_id"), lea_answer_id);
    assert_eq!(text(&a, "code"), "for i in range(1, 11):\n    print(i)");
    assert_eq!(text(&a, "from"), "Lea");

    // The teacher answers on the page: the answer reaches the students, text intact.
    let s = lab.peers[SAM].mark();
    let own_answer = "for n in range(1, 11):\n    print(n)  # <b>not bold</b>";
    let t0 = Instant::now();
    lab.driver().call("answer", json!({"title": "Loops", "text": own_answer}));
    let (at, v) = lab.peers[SAM]
        .expect(s, DELIVERY_LIMIT, "the page's answer", |v| v["event"] == "answer" && v["from"] == teacher_id.as_str());
    println!("answer posted on the page -> other peer: {}", ms(at - t0));
    assert_eq!(text(&v, "problem_id"), problem_id);
    assert_eq!(text(&v, "text"), own_answer);
    let teacher_answer_id = text(&v, "id").to_string();

    // Feedback on Lea's answer, given on the page, reaches everyone.
    let (s, l) = (lab.peers[SAM].mark(), lab.peers[LEA].mark());
    let t0 = Instant::now();
    lab.driver().call("feedback", json!({"answer_text": "print(i)", "text": "Good. Now print only the even ones."}));
    let is_fb = |v: &Value| v["event"] == "feedback" && v["text"] == "Good. Now print only the even ones.";
    let (at, v) = lab.peers[LEA].expect(l, DELIVERY_LIMIT, "the page's feedback", is_fb);
    println!("feedback given on the page -> other peer: {}", ms(at - t0));
    assert_eq!(text(&v, "answer_id"), lea_answer_id);
    assert_eq!(text(&v, "from"), teacher_id.as_str());
    lab.peers[SAM].expect(s, DELIVERY_LIMIT, "the page's feedback", is_fb);
    lab.driver().call("expect_feedback", json!({"answer_text": "print(i)", "text": "only the even ones"}));

    // Feedback from a student on the teacher's answer appears under it.
    let short_answer =
        format!("{}-{}", &teacher_answer_id[..8], &teacher_answer_id[teacher_answer_id.rfind('-').unwrap() + 1..]);
    lab.peers[SAM].send(&format!("/feedback {short_answer} Nice use of a comment."));
    let (_, f) =
        lab.driver().call("expect_feedback", json!({"answer_text": "print(n)", "text": "Nice use of a comment."}));
    assert_eq!(text(&f, "from"), "Sam");

    // Choosing a person sends privately: Sam gets it, Lea does not.
    let (s, l) = (lab.peers[SAM].mark(), lab.peers[LEA].mark());
    lab.driver().call("chat", json!({"text": "Sam, can you share your screen?", "to": "Sam"}));
    let (_, v) = lab.peers[SAM].expect(s, DELIVERY_LIMIT, "the private chat", |v| {
        v["event"] == "chat" && v["text"] == "Sam, can you share your screen?"
    });
    assert_eq!(text(&v, "to"), sam_id.as_str(), "addressed to Sam only");
    let (_, c) = lab.driver().call("expect_chat", json!({"text": "can you share your screen?"}));
    assert!(c["badges"].to_string().contains("private to Sam"), "{c}");
    lab.peers[SAM].send(&format!("/msg {} Yes, one moment.", &teacher_id[..8]));
    let (_, c) = lab.driver().call("expect_chat", json!({"text": "Yes, one moment."}));
    assert!(c["badges"].to_string().contains("private"), "a private message is marked: {c}");

    // A quiz from the page: the students see that answers are private; the page counts answers.
    let (s, l2) = (lab.peers[SAM].mark(), lab.peers[LEA].mark());
    lab.driver()
        .call("post_problem", json!({"title": "Quiz: range", "body": "What does list(range(3)) give?", "quiz": true}));
    let (_, q) = lab.peers[SAM].expect(s, DELIVERY_LIMIT, "the quiz", |v| v["event"] == "problem");
    assert_eq!((text(&q, "title"), &q["private_answers"]), ("Quiz: range", &json!(true)));
    lab.peers[LEA].expect(l2, DELIVERY_LIMIT, "the quiz", |v| v["event"] == "problem");
    let quiz_id = text(&q, "id").to_string();
    let (_, shown) = lab.driver().call("expect_problem", json!({"title": "Quiz: range"}));
    assert!(shown["badges"].to_string().contains("quiz"), "{shown}");
    lab.driver().call("answer_count", json!({"title": "Quiz: range", "expect": "0 people have answered"}));
    lab.peers[SAM].send(&format!("/answer {quiz_id} [0, 1, 2]"));
    lab.driver().call("answer_count", json!({"title": "Quiz: range", "expect": "1 person has answered"}));
    lab.peers[LEA].send(&format!("/answer {quiz_id} [1, 2, 3]"));
    let (_, n) = lab.driver().call("answer_count", json!({"title": "Quiz: range", "expect": "2 people have answered"}));
    println!("quiz author's count: {}", text(&n, "text"));

    // Nothing private leaked to Lea.
    let lea_seen = lab.peers[LEA].events();
    assert!(
        !lea_seen.iter().skip(l).any(|v| v["text"] == "Sam, can you share your screen?" || v["text"] == "[0, 1, 2]"),
        "Lea saw a private message or answer"
    );

    // After a reload, the page shows the history again.
    let t0 = Instant::now();
    lab.driver().call("reload", json!({}));
    lab.driver().call("expect_chat", json!({"text": "Good morning, Ms Rivera"}));
    lab.driver().call("expect_chat", json!({"text": "Sam, can you share your screen?"}));
    lab.driver().call("expect_answer", json!({"title": "Loops", "text": "print(i)"}));
    lab.driver().call("expect_feedback", json!({"answer_text": "print(i)", "text": "only the even ones"}));
    lab.driver().call("answer_count", json!({"title": "Quiz: range", "expect": "2 people have answered"}));
    lab.driver().call("expect_peer", json!({"name": "Lea"}));
    println!("reload -> history shown again: {}", ms(t0.elapsed()));

    // Screenshots at laptop and phone widths; neither scrolls sideways.
    let shots = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("netns_web");
    fs::create_dir_all(&shots).expect("screenshot folder");
    lab.driver().call("scroll_chat_bottom", json!({}));
    let laptop = shots.join("web.png");
    let (_, r) = lab.driver().call(
        "screenshot",
        json!({"path": laptop.to_string_lossy(), "width": 1366, "height": 1000, "full_page": false}),
    );
    assert_eq!(r["horizontal_overflow_px"], json!(0), "laptop width: no sideways scrolling");
    let phone = shots.join("web-phone.png");
    let (_, r) = lab
        .driver()
        .call("screenshot", json!({"path": phone.to_string_lossy(), "width": 390, "height": 844, "full_page": true}));
    assert_eq!(r["horizontal_overflow_px"], json!(0), "phone width: no sideways scrolling");
    println!("screenshots: {} {}", laptop.display(), phone.display());
    if std::env::var("LANPEER_UPDATE_SCREENSHOT").as_deref() == Ok("1") {
        let docs = Path::new(env!("CARGO_MANIFEST_DIR")).join("docs").join("web.png");
        fs::copy(&laptop, &docs).expect("copy the screenshot to docs/");
        println!("updated {}", docs.display());
    }
    let (_, errs) = lab.driver().call("console_errors", json!({}));
    let errs: Vec<String> = errs["errors"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(Value::as_str)
        .filter(|e| !e.contains("favicon"))
        .map(String::from)
        .collect();
    assert!(errs.is_empty(), "the page logged errors: {errs:?}");

    // A chat that looks like HTML shows as text, also after a reload; nothing of it runs.
    let evil = "<script>window.pwned=1</script><img src=x onerror=\"window.pwned=2\"> <b>bold?</b>";
    lab.peers[LEA].send(evil);
    for reload in [false, true] {
        if reload {
            lab.driver().call("reload", json!({}));
        }
        let (_, c) = lab.driver().call("expect_chat", json!({"text": "window.pwned=1"}));
        assert_eq!(text(&c, "text"), evil, "shown exactly as typed");
        assert_eq!(c["child_elements"], json!(0), "no element made from a chat");
        let (_, inj) = lab.driver().call("injected", json!({}));
        assert_eq!(
            (&inj["pwned"], &inj["scripts_in_log"], &inj["elements_in_texts"]),
            (&Value::Null, &json!(0), &json!(0))
        );
    }

    // A student leaves with SIGTERM while her input is still open: she exits at once, and the
    // page shows that she left.
    let lea = lab.peers[LEA].child.as_mut().unwrap();
    run("kill", &["-TERM", &lea.id().to_string()]).expect("SIGTERM");
    let status = wait_deadline(lea, Duration::from_secs(5)).expect("a peer leaves within 5 s of SIGTERM");
    assert!(status.success(), "clean exit: {status}");
    lab.driver().call("expect_no_peer", json!({"name": "Lea"}));

    // With --web, the end of input does not end the peer; SIGTERM leaves gracefully.
    lab.peers[TEACHER].stdin.take();
    thread::sleep(Duration::from_millis(300));
    let child = lab.peers[TEACHER].child.as_mut().unwrap();
    assert!(matches!(child.try_wait(), Ok(None)), "the web peer keeps running after the end of its input");
    run("kill", &["-TERM", &child.id().to_string()]).expect("SIGTERM");
    let status = wait_deadline(child, Duration::from_secs(5)).expect("the web peer leaves within 5 s of SIGTERM");
    assert!(status.success(), "clean exit: {status}");
    println!("whole test: {}", ms(started.elapsed()));
}
