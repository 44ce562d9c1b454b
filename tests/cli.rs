//! Real `lanpeer --json` processes on loopback: the JSON contract, messages between processes,
//! a crash (SIGKILL) and the plain errors of a user's mistakes.

use std::io::{BufRead, BufReader, Write};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use serde_json::Value;

mod common;
use common::TmpDir;

const BIN: &str = env!("CARGO_BIN_EXE_lanpeer");

struct Proc {
    name: String,
    child: Child,
    stdin: Option<ChildStdin>,
    lines: mpsc::Receiver<Value>,
    seen: Vec<Value>,
    /// The data dir made for it by `spawn` (removed after it is killed).
    _dir: Option<TmpDir>,
}

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn tmpdir(tag: &str) -> TmpDir {
    TmpDir::new(&format!("lanpeer-cli-{tag}"))
}

fn spawn(name: &str, port: u16, room: &str, extra: &[&str]) -> Proc {
    let dir = tmpdir(name);
    let mut p = spawn_in(name, port, room, &dir, extra);
    p._dir = Some(dir);
    p
}

impl Proc {
    fn send(&mut self, line: &str) {
        let s = self.stdin.as_mut().expect("stdin open");
        writeln!(s, "{line}").unwrap();
        s.flush().unwrap();
    }

    /// Wait for an event matching `pred` (looking at those already seen first).
    fn wait(&mut self, within: Duration, pred: impl Fn(&Value) -> bool) -> Value {
        if let Some(v) = self.seen.iter().find(|v| pred(v)) {
            return v.clone();
        }
        let deadline = Instant::now() + within;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.lines.recv_timeout(left) {
                Ok(v) => {
                    self.seen.push(v.clone());
                    if pred(&v) {
                        return v;
                    }
                }
                Err(_) => panic!("{}: no matching event within {within:?}; saw {:#?}", self.name, self.seen),
            }
        }
    }

    fn drain(&mut self, for_: Duration) {
        let deadline = Instant::now() + for_;
        while let Ok(v) = self.lines.recv_timeout(deadline.saturating_duration_since(Instant::now())) {
            self.seen.push(v);
        }
    }
}

fn ev<'a>(name: &'a str) -> impl Fn(&Value) -> bool + 'a {
    move |v| v["event"] == name
}

const T: Duration = Duration::from_secs(8);

#[test]
fn processes_talk_over_loopback_and_a_crash_is_noticed() {
    let port = 20_000 + rand::random_range(0..40_000u16);
    let room = format!("cli-{}", rand::random::<u32>());
    let mut p: Vec<Proc> = ["ann", "ben", "cat"].iter().map(|n| spawn(n, port, &room, &[])).collect();
    let ids: Vec<String> = p
        .iter_mut()
        .map(|x| {
            let r = x.wait(T, ev("ready"));
            assert_eq!(r["name"], x.name.as_str());
            assert_eq!(r["room"], room.as_str());
            assert!(r["listen"].as_str().unwrap().starts_with("127.0.0.1:"), "{r}");
            let id = r["id"].as_str().unwrap().to_string();
            assert_eq!(id.len(), 32);
            id
        })
        .collect();
    for (i, x) in p.iter_mut().enumerate() {
        for (j, id) in ids.iter().enumerate() {
            if i != j {
                let j = x.wait(T, |v| v["event"] == "peer_joined" && v["id"] == id.as_str());
                assert!(j["addr"].as_str().unwrap().starts_with("127.0.0.1:"));
                assert!(j["name"].is_string());
            }
        }
    }

    p[0].send("hello from ann");
    let own = p[0].wait(T, |v| v["event"] == "chat" && v["text"] == "hello from ann");
    assert_eq!(own["from"], ids[0].as_str());
    let chat_id = own["id"].as_str().unwrap().to_string();
    assert!(chat_id.starts_with(&ids[0]));
    for x in &mut p[1..] {
        let c = x.wait(T, |v| v["event"] == "chat" && v["id"] == chat_id.as_str());
        assert_eq!(c["from_name"], "ann");
        assert_eq!(c["to"], Value::Null);
    }

    p[1].send("/problem Loops | print 1 to 10\\nwith a for loop");
    let prob = p[2].wait(T, |v| v["event"] == "problem" && v["title"] == "Loops");
    assert_eq!(prob["body"], "print 1 to 10\nwith a for loop");
    assert_eq!(prob["from"], ids[1].as_str());
    let pid = prob["id"].as_str().unwrap().to_string();
    p[2].send(&format!("/answer {pid} for i in 1..=10 {{\\n    println!(\"{{i}}\");\\n}}"));
    let ans = p[0].wait(T, |v| v["event"] == "answer");
    assert_eq!(ans["problem_id"], pid.as_str());
    assert_eq!(ans["text"], "for i in 1..=10 {\n    println!(\"{i}\");\n}");
    let aid = ans["id"].as_str().unwrap().to_string();
    p[0].send(&format!("/feedback {aid} nice"));
    let fb = p[1].wait(T, |v| v["event"] == "feedback");
    assert_eq!((fb["answer_id"].as_str(), fb["text"].as_str()), (Some(aid.as_str()), Some("nice")));
    assert_eq!(fb["from_name"], "ann");

    // Private: by name.
    p[0].send("/msg ben for ben only");
    let m = p[1].wait(T, |v| v["event"] == "chat" && v["text"] == "for ben only");
    assert_eq!(m["to"], ids[1].as_str());

    // Errors are events, not exits.
    p[2].send("/answer 0000-1 nothing");
    let e = p[2].wait(T, ev("error"));
    assert!(e["message"].as_str().unwrap().contains("no problem"), "{e}");
    p[2].send("/peers");
    let peers = p[2].wait(T, ev("peers"));
    assert_eq!(peers["peers"].as_array().unwrap().len(), 2);

    p[2].drain(Duration::from_millis(300));
    assert!(!p[2].seen.iter().any(|v| v["text"] == "for ben only"), "cat got ben's private chat");

    // Crash: SIGKILL, no farewell. The others notice within the expiry timeout.
    let t0 = Instant::now();
    p[2].child.kill().unwrap();
    let _ = p[2].child.wait();
    for x in &mut p[..2] {
        let left = x.wait(Duration::from_secs(6), |v| v["event"] == "peer_left" && v["id"] == ids[2].as_str());
        assert!(["disconnected", "timeout"].contains(&left["reason"].as_str().unwrap()), "{left}");
    }
    println!("crash noticed by both after {:?}", t0.elapsed());

    // End of input: a graceful leave, exit status 0.
    let t0 = Instant::now();
    drop(p[0].stdin.take());
    let left = p[1].wait(Duration::from_secs(2), |v| v["event"] == "peer_left" && v["id"] == ids[0].as_str());
    assert_eq!(left["reason"], "left");
    println!("graceful leave noticed after {:?}", t0.elapsed());
    let status = wait_exit(&mut p[0].child, Duration::from_secs(5));
    assert!(status.success());
    p[1].send("/quit");
    assert!(wait_exit(&mut p[1].child, Duration::from_secs(5)).success());
}

/// Output is written in large pieces, but never held back: an event shows at once when nothing
/// follows it (an interactive script waits for it), and a burst of lines gives every event, in
/// order, the last one included.
#[test]
fn events_come_at_once_and_none_is_lost_in_a_burst() {
    let port = 20_000 + rand::random_range(0..40_000u16);
    let room = format!("cli-{}", rand::random::<u32>());
    let mut p = spawn("solo", port, &room, &[]);
    p.wait(T, ev("ready"));
    // Quick: each answer is waited for with stdin still open (no end of input to flush it).
    let quick = Duration::from_secs(2);
    for i in 0..5 {
        p.send(&format!("/nosuch{i}"));
        let e =
            p.wait(quick, |v| v["event"] == "error" && v["message"].as_str().unwrap().contains(&format!("/nosuch{i}")));
        assert!(e["message"].as_str().unwrap().contains("/help"), "{e}");
        p.send(&format!("alone {i}"));
        p.wait(quick, |v| v["event"] == "chat" && v["text"] == format!("alone {i}").as_str() && v["own"] == true);
    }
    // A burst in one write: every chat comes back, in order, the last one without delay.
    let n = 3000;
    let burst: String = (0..n).map(|i| format!("burst {i:05} {}\n", "z".repeat(80))).collect();
    let s = p.stdin.as_mut().unwrap();
    s.write_all(burst.as_bytes()).unwrap();
    s.flush().unwrap();
    let last = format!("burst {:05} {}", n - 1, "z".repeat(80));
    p.wait(Duration::from_secs(30), |v| v["text"] == last.as_str());
    let texts: Vec<&str> =
        p.seen.iter().filter_map(|v| v["text"].as_str()).filter(|t| t.starts_with("burst ")).collect();
    assert_eq!(texts.len(), n);
    for (i, t) in texts.iter().enumerate() {
        assert!(t.starts_with(&format!("burst {i:05} ")), "{i}: {t}");
    }
    p.send("/peers");
    p.wait(quick, ev("peers"));
    p.send("/quit");
    assert!(wait_exit(&mut p.child, Duration::from_secs(5)).success());
}

fn wait_exit(c: &mut Child, within: Duration) -> std::process::ExitStatus {
    let deadline = Instant::now() + within;
    loop {
        if let Some(s) = c.try_wait().unwrap() {
            return s;
        }
        assert!(Instant::now() < deadline, "process did not exit");
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Run lanpeer to its end with no input; return (status, stderr).
fn run_to_end(args: &[&str]) -> (std::process::ExitStatus, String) {
    let out = Command::new(BIN).args(args).stdin(Stdio::null()).output().unwrap();
    (out.status, String::from_utf8_lossy(&out.stderr).into_owned())
}

fn one_plain_sentence(stderr: &str) {
    let lines: Vec<&str> = stderr.lines().filter(|l| !l.trim().is_empty()).collect();
    assert_eq!(lines.len(), 1, "expected one line, got {stderr:?}");
    assert!(lines[0].starts_with("lanpeer: "), "{stderr:?}");
}

#[test]
fn mistakes_get_one_plain_sentence_and_a_failure_status() {
    let dir = tmpdir("mistakes");
    let d = dir.to_str().unwrap();

    let (st, err) = run_to_end(&["--iface", "nosuchif0", "--data-dir", d]);
    assert!(!st.success());
    one_plain_sentence(&err);
    assert!(err.contains("nosuchif0") && err.contains("lo"), "{err}");

    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let tport = taken.local_addr().unwrap().port().to_string();
    let (st, err) = run_to_end(&["--iface", "lo", "--port", "47999", "--tcp-port", &tport, "--data-dir", d]);
    assert!(!st.success());
    one_plain_sentence(&err);
    assert!(err.contains("already in use") && err.contains(&tport), "{err}");

    let (st, err) = run_to_end(&["--no-such-flag"]);
    assert!(!st.success());
    assert!(err.contains("--no-such-flag"), "{err}");

    // The same data dir twice.
    let port = 20_000 + rand::random_range(0..40_000u16);
    let mut first = spawn("one", port, "x", &[]);
    first.wait(T, ev("ready"));
    let dir1 = tmpdir("shared");
    drop(first);
    let mut a = Command::new(BIN)
        .args(["--json", "--iface", "lo", "--port", &port.to_string(), "--data-dir", dir1.to_str().unwrap()])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut r = BufReader::new(a.stdout.take().unwrap());
    let mut first_line = String::new();
    r.read_line(&mut first_line).unwrap();
    assert!(first_line.contains("\"ready\""), "{first_line}");
    let (st, err) = run_to_end(&["--iface", "lo", "--port", &port.to_string(), "--data-dir", dir1.to_str().unwrap()]);
    assert!(!st.success());
    one_plain_sentence(&err);
    assert!(err.contains("already using the data directory"), "{err}");
    drop(a.stdin.take());
    assert!(wait_exit(&mut a, Duration::from_secs(5)).success());
}

/// `lanpeer --json` on `lo` only, with its data in `dir`, plus `extra` arguments.
fn spawn_in(name: &str, port: u16, room: &str, dir: &std::path::Path, extra: &[&str]) -> Proc {
    let mut child = Command::new(BIN)
        .args(["--json", "--iface", "lo", "--name", name, "--room", room, "--port", &port.to_string()])
        .arg("--data-dir")
        .arg(dir)
        .args(extra)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("lanpeer runs");
    let stdout = child.stdout.take().unwrap();
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines() {
            let Ok(line) = line else { break };
            let v: Value = serde_json::from_str(&line).unwrap_or_else(|e| panic!("not JSON: {line:?}: {e}"));
            if tx.send(v).is_err() {
                break;
            }
        }
    });
    let stdin = child.stdin.take();
    Proc { name: name.into(), child, stdin, lines: rx, seen: Vec::new(), _dir: None }
}

#[test]
fn a_killed_peer_restarts_with_its_id_catches_up_and_exports() {
    let port = 20_000 + rand::random_range(0..40_000u16);
    let room = format!("kill-{}", rand::random::<u32>());
    let (da, db) = (tmpdir("ka"), tmpdir("kb"));
    let mut a = spawn_in("teacher", port, &room, &da, &[]);
    let mut b = spawn_in("student", port, &room, &db, &[]);
    let b_id = b.wait(T, ev("ready"))["id"].as_str().unwrap().to_string();
    a.wait(T, ev("peer_joined"));
    a.send("/problem Squares | print the first 5 squares");
    let pid = b.wait(T, ev("problem"))["id"].as_str().unwrap().to_string();
    b.send(&format!("/answer {pid} for i in 1..=5 {{ println!(\"{{}}\", i * i); }}"));
    let aid = a.wait(T, |v| v["event"] == "answer" && v["own"] == false)["id"].as_str().unwrap().to_string();
    a.send(&format!("/feedback {aid} correct"));
    b.wait(T, ev("feedback"));
    a.send("before the crash");
    b.wait(T, |v| v["text"] == "before the crash");

    b.child.kill().unwrap();
    let _ = b.child.wait();
    a.wait(T, |v| v["event"] == "peer_left");
    for k in 0..10 {
        a.send(&format!("while down {k}"));
    }
    a.send("/problem Cubes | now the cubes");
    a.wait(T, |v| v["event"] == "problem" && v["title"] == "Cubes");

    let t0 = Instant::now();
    let mut b2 = spawn_in("student", port, &room, &db, &[]);
    assert_eq!(b2.wait(T, ev("ready"))["id"], b_id.as_str(), "same id after a crash");
    b2.wait(T, |v| v["event"] == "problem" && v["title"] == "Cubes");
    for k in 0..10 {
        b2.wait(T, |v| v["text"] == format!("while down {k}").as_str());
    }
    println!("restarted peer caught up in {:?}", t0.elapsed());
    b2.drain(Duration::from_millis(800));
    let texts: Vec<&Value> = b2.seen.iter().filter(|v| v["event"] == "chat").collect();
    assert_eq!(texts.len(), 10, "only the missed chats, once each: {texts:?}");
    assert!(!b2.seen.iter().any(|v| v["title"] == "Squares"), "what was reported before the crash is not replayed");
    let order: Vec<String> = texts.iter().map(|v| v["text"].as_str().unwrap().to_string()).collect();
    assert_eq!(order, (0..10).map(|k| format!("while down {k}")).collect::<Vec<_>>());

    // The teacher's export has the problem, the answer and its feedback, with names.
    let out = Command::new(BIN).args(["export", "--format", "json", "--data-dir"]).arg(&da).output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    let sq = v.as_array().unwrap().iter().find(|p| p["title"] == "Squares").expect("problem exported");
    assert_eq!(sq["answers"][0]["author_name"], "student");
    assert_eq!(sq["answers"][0]["feedback"][0]["text"], "correct");
    let short = format!("{}-{}", &pid[..8], pid.rsplit_once('-').unwrap().1);
    let out = Command::new(BIN)
        .args(["export", "--format", "csv", "--problem", &short, "--data-dir"])
        .arg(&da)
        .output()
        .unwrap();
    assert!(out.status.success());
    let csv = String::from_utf8(out.stdout).unwrap();
    assert_eq!(csv.lines().count(), 4, "header, problem, answer, feedback: {csv}");
    assert!(!csv.contains("Cubes"), "--problem selects one problem");
    let out = Command::new(BIN).args(["history", "--data-dir"]).arg(&db).output().unwrap();
    let hist = String::from_utf8(out.stdout).unwrap();
    assert!(hist.contains("while down 9") && hist.contains("Squares"), "{hist}");
    let out = Command::new(BIN).args(["export", "--data-dir", "/nonexistent/lanpeer"]).output().unwrap();
    assert!(!out.status.success());
    one_plain_sentence(&String::from_utf8_lossy(&out.stderr));
}
