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
    let rx = common::json_lines(child.stdout.take().unwrap());
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

/// A `lanpeer` for people (no `--json`, stdin a pipe, not a terminal: the lines a person reads)
/// on `lo` only, with its data in `dir`; its stdout and stderr read into lines.
struct Plain {
    child: Child,
    stdin: Option<ChildStdin>,
    out: mpsc::Receiver<String>,
    err: mpsc::Receiver<String>,
    seen: Vec<String>,
}

impl Drop for Plain {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn lines_of(r: impl std::io::Read + Send + 'static) -> mpsc::Receiver<String> {
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(r).lines() {
            let Ok(line) = line else { break };
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    rx
}

fn spawn_plain(name: &str, port: u16, room: &str, dir: &std::path::Path, extra: &[&str]) -> Plain {
    let mut child = Command::new(BIN)
        .args(["--iface", "lo", "--name", name, "--room", room, "--port", &port.to_string()])
        .arg("--data-dir")
        .arg(dir)
        .args(extra)
        .env_remove("LANPEER_LOG")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("lanpeer runs");
    let (out, err) = (lines_of(child.stdout.take().unwrap()), lines_of(child.stderr.take().unwrap()));
    Plain { stdin: child.stdin.take(), child, out, err, seen: Vec::new() }
}

impl Plain {
    fn send(&mut self, line: &str) {
        let s = self.stdin.as_mut().expect("stdin open");
        writeln!(s, "{line}").unwrap();
        s.flush().unwrap();
    }

    /// Wait for a line holding `what`.
    fn shows(&mut self, within: Duration, what: &str) {
        if self.seen.iter().any(|l| l.contains(what)) {
            return;
        }
        let deadline = Instant::now() + within;
        loop {
            match self.out.recv_timeout(deadline.saturating_duration_since(Instant::now())) {
                Ok(l) => {
                    let found = l.contains(what);
                    self.seen.push(l);
                    if found {
                        return;
                    }
                }
                Err(_) => panic!("no line with {what:?} within {within:?}; saw:\n{}", self.seen.join("\n")),
            }
        }
    }
}

/// How far the lines of a text go in under its author's line (output.rs).
const INDENT: &str = "          ";

/// The lines for people hold nothing a peer could have forged: every line at the margin is one
/// of this program's (a time and a head, or a heading), a forged text (`FORGED`) comes only after
/// a head's `: ` or on an indented line, and no control or invisible format character is left.
fn assert_nothing_forged(what: &str, text: &str) {
    let own = [
        "You are ",
        "Room code for the students",
        "Earlier in this room:",
        "---",
        "Nothing yet.",
        "problem ",
        "  answer ",
        "    feedback by ",
        "  ",
    ];
    let clock = |l: &str| {
        let b = l.as_bytes();
        b.len() > 10
            && b[..8].iter().enumerate().all(|(k, c)| if k % 3 == 2 { *c == b':' } else { c.is_ascii_digit() })
            && &b[8..10] == b"  "
    };
    for l in text.lines() {
        assert!(
            !l.chars().any(|c| (c.is_control() && c != '\t') || lanpeer::text::is_hidden_format(c)),
            "{what}: a control or invisible character is left in {l:?}"
        );
        if l.starts_with(INDENT) {
            continue;
        }
        let online = l.strip_suffix(" online:").is_some_and(|n| n.parse::<u32>().is_ok());
        assert!(
            clock(l) || online || own.iter().any(|o| l.starts_with(o)),
            "{what}: a line at the margin not of ours: {l:?}"
        );
        if let Some(at) = l.find("FORGED") {
            let head_end = l.find(": ").unwrap_or(usize::MAX);
            assert!(at > head_end, "{what}: a forged text in a line's head: {l:?}");
        }
    }
}

/// A hostile member (a library node on loopback: it sends any text at all) fills every text
/// field with lines that would pass for other people's, escapes, overrides and spreadsheet
/// formulas; two students share a name. The teacher's peer, for people, shows nothing forged;
/// then `lanpeer history`, `history --json` and `export` (csv, json) of its data dir: the same
/// lines safe, the data kept exact, the formula cells text, the two students told apart.
#[test]
fn hostile_texts_forge_no_line_and_no_formula() {
    use lanpeer::{Body, Event, Node};
    let port = 20_000 + rand::random_range(0..40_000u16);
    let room = format!("hostile-{}", rand::random::<u32>());
    let td = tmpdir("hostile-teacher");
    let tdir = td.join("data");
    let mut teacher = spawn_plain("Ms Rivera", port, &room, &tdir, &["--role", "teacher"]);
    let mut sam1 = spawn("Sam", port, &room, &[]);
    let mut sam2 = spawn("sam", port, &room, &[]);
    let sam1_id = sam1.wait(T, ev("ready"))["id"].as_str().unwrap().to_string();
    let sam2_id = sam2.wait(T, ev("ready"))["id"].as_str().unwrap().to_string();

    let rt = tokio::runtime::Runtime::new().unwrap();
    let name = "=2+3 Mal\u{202E}lory\n\u{200B}";
    let cfg = lanpeer::Config { data_dir: None, ..common::config(name, port, &room) };
    let (mallory, mut events) = rt.block_on(Node::start(cfg)).unwrap();
    let mut wait = |what: &str, pred: &dyn Fn(&Event) -> bool| -> Event {
        rt.block_on(async {
            tokio::time::timeout(T, async {
                loop {
                    let e = events.recv().await.expect("events");
                    if pred(&e) {
                        return e;
                    }
                }
            })
            .await
            .unwrap_or_else(|_| panic!("mallory: no {what}"))
        })
    };
    for id in [&sam1_id, &sam2_id] {
        sam1.wait(T, |v| v["event"] == "peer_joined" || v["id"] == id.as_str());
    }
    teacher.shows(T, "* sam");
    // The name of a hello is cleaned as every name is: the override and the zero-width space gone.
    teacher.shows(T, "=2+3 Mallory joined");
    teacher.send("/problem Loops | write a loop");
    let pid = sam1.wait(T, |v| v["event"] == "problem" && v["title"] == "Loops")["id"].as_str().unwrap().to_string();
    sam2.wait(T, |v| v["event"] == "problem" && v["title"] == "Loops");
    sam1.send(&format!("/answer {pid} -2+3"));
    sam2.send(&format!("/answer {pid} \\t=1+1"));
    sam1.send("hi from the first Sam");
    sam2.send("hi from the second sam");
    let problem = match wait(
        "the problem",
        &|e| matches!(e, Event::Message(m) if matches!(&m.body, Body::Problem { title, .. } if title == "Loops")),
    ) {
        Event::Message(m) => m.id,
        _ => unreachable!(),
    };
    let answer = match wait(
        "sam's answer",
        &|e| matches!(e, Event::Message(m) if matches!(&m.body, Body::Answer { text, .. } if text == "-2+3")),
    ) {
        Event::Message(m) => m.id,
        _ => unreachable!(),
    };
    let forged = "FORGED 09:00:00  Ms Rivera: send me your password";
    let lines = format!("ok\n{forged}\r\n\rFORGED  * Lea joined\n! FORGED a warning\n");
    let bodies = [
        Body::Chat { text: lines.clone() },
        Body::Chat { text: "one line \u{202E}drowssap\u{202C}\u{200B}\u{2028}FORGED after a separator".into() },
        Body::Chat { text: "\u{1b}[2J\u{1b}[31mred\u{7}".into() },
        Body::Chat { text: format!("visible\r{forged}") },
        Body::Problem {
            title: "@SUM(1+1)\u{202E}\nFORGED 09:00:00  Ms Rivera: title".into(),
            body: format!("=1+2\n{lines}"),
            private_answers: false,
        },
        Body::Answer { problem, text: format!("=HYPERLINK(\"http://evil\")\n{lines}") },
        Body::Feedback { answer, text: format!("+1 good\n{lines}") },
        Body::Chat { text: "END-OF-HOSTILE".into() },
    ];
    rt.block_on(async {
        for b in bodies {
            mallory.submit(None, b).await.unwrap().await.unwrap();
        }
    });
    teacher.shows(T, "END-OF-HOSTILE");
    teacher.send("/problems");
    teacher.send("/peers");
    teacher.send("/history 100");
    teacher.send("teacher done");
    teacher.shows(T, "Ms Rivera (you): teacher done");
    let live = teacher.seen.join("\n");
    assert_nothing_forged("the teacher's prompt", &live);
    for want in [
        &format!("{INDENT}{forged}"),
        &format!("{INDENT}! FORGED a warning"),
        "one line <U+202E>drowssap<U+202C><U+200B><U+2028>FORGED after a separator",
        "\u{fffd}[2J\u{fffd}[31mred\u{fffd}",
        &format!("visible\u{fffd}{forged}"),
        "Sam (",
        "sam (",
    ] {
        assert!(live.contains(want), "the prompt lacks {want:?}:\n{live}");
    }
    teacher.send("/quit");
    assert!(wait_exit(&mut teacher.child, Duration::from_secs(10)).success());
    let stderr: Vec<String> = teacher.err.try_iter().collect();
    assert!(!stderr.iter().any(|l| l.contains("warning:")), "a folder lanpeer made is private: {stderr:?}");
    rt.block_on(mallory.shutdown());

    // The teacher's history, for people: as safe; and the two students told apart.
    let run = |args: &[&str]| {
        let out = Command::new(BIN).args(args).arg("--data-dir").arg(&tdir).output().unwrap();
        assert!(out.status.success(), "{args:?}: {}", String::from_utf8_lossy(&out.stderr));
        String::from_utf8(out.stdout).unwrap()
    };
    let hist = run(&["history", "--limit", "200"]);
    assert_nothing_forged("lanpeer history", &hist);
    let (s1, s2) = (format!("Sam ({})", &sam1_id[..8]), format!("sam ({})", &sam2_id[..8]));
    assert!(hist.contains(&format!("  {s1}: hi from the first Sam")), "{hist}");
    assert!(hist.contains(&format!("  {s2}: hi from the second sam")), "{hist}");
    assert!(hist.contains(&format!("{INDENT}{forged}")) && hist.contains("<U+202E>drowssap"), "{hist}");
    // With --json the texts are exact (JSON's escaping keeps them safe), the labels added.
    let v: Value = serde_json::from_str(&run(&["history", "--limit", "200", "--json"])).unwrap();
    let msgs = v["messages"].as_array().unwrap();
    assert!(msgs.iter().any(|m| m["text"] == lines.as_str()), "{v}");
    assert!(msgs.iter().any(|m| m["text"].as_str().is_some_and(|t| t.contains("\u{202E}drowssap"))));
    assert!(msgs.iter().any(|m| m["from_label"] == s1.as_str() && m["from_name"] == "Sam"));
    assert!(msgs.iter().any(|m| m["from_label"] == s2.as_str() && m["from_name"] == "sam"));

    // The CSV: every cell a spreadsheet would run is text, every text kept after the quote.
    let csv_text = run(&["export", "--format", "csv"]);
    assert!(csv_text.starts_with("\"problem_id\","), "every cell quoted: {csv_text}");
    let mut r = csv::Reader::from_reader(csv_text.as_bytes());
    let head: Vec<String> = r.headers().unwrap().iter().map(str::to_string).collect();
    assert_eq!(
        head,
        [
            "problem_id",
            "problem_title",
            "kind",
            "id",
            "answer_id",
            "author_id",
            "author_name",
            "time",
            "text",
            "author_label"
        ],
        "the columns, one added at the end"
    );
    let rows: Vec<Vec<String>> = r.records().map(|x| x.unwrap().iter().map(str::to_string).collect()).collect();
    for row in &rows {
        for c in row {
            let t = c.trim_start();
            assert!(
                !(c.starts_with(['\t', '\r']) || t.starts_with(['=', '+', '-', '@'])),
                "a cell a spreadsheet would run: {c:?}"
            );
        }
    }
    let col = |n: &str| head.iter().position(|h| h == n).unwrap();
    let find = |kind: &str, text_starts: &str| {
        rows.iter()
            .find(|r| r[col("kind")] == kind && r[col("text")].starts_with(text_starts))
            .unwrap_or_else(|| panic!("no {kind} {text_starts:?} in {rows:?}"))
    };
    let evil = find("answer", "'=HYPERLINK");
    assert_eq!(evil[col("text")], format!("'=HYPERLINK(\"http://evil\")\n{lines}"));
    assert_eq!(evil[col("author_name")], "'=2+3 Mallory", "the name cleaned, then made text");
    assert_eq!(evil[col("author_label")], "'=2+3 Mallory");
    assert_eq!(find("answer", "'-2+3")[col("author_label")], s1);
    assert_eq!(find("answer", "'\t=1+1")[col("author_label")], s2);
    assert_eq!(find("feedback", "'+1 good")[col("text")], format!("'+1 good\n{lines}"));
    let p = find("problem", "'=1+2");
    assert_eq!(p[col("problem_title")], "'@SUM(1+1) FORGED 09:00:00  Ms Rivera: title", "one clean line");
    // JSON: the data as it is, the label added.
    let v: Value = serde_json::from_str(&run(&["export", "--format", "json"])).unwrap();
    let loops = v.as_array().unwrap().iter().find(|p| p["title"] == "Loops").unwrap();
    let answers = loops["answers"].as_array().unwrap();
    let by = |t: &str| answers.iter().find(|a| a["text"].as_str().unwrap().starts_with(t)).unwrap();
    assert_eq!(by("=HYPERLINK")["text"], format!("=HYPERLINK(\"http://evil\")\n{lines}"));
    assert_eq!((by("-2+3")["author_name"].as_str(), by("-2+3")["author_label"].as_str()), (Some("Sam"), Some(&*s1)));
    assert_eq!(by("\t=1+1")["author_label"], s2.as_str());
}

#[cfg(unix)]
fn mode(p: &std::path::Path) -> u32 {
    use std::os::unix::fs::PermissionsExt;
    std::fs::metadata(p).unwrap().permissions().mode() & 0o777
}

/// A data folder that lanpeer makes is its owner's only, and so is every file in it after a real
/// lesson (the key, the history, the lock, the remembered teacher...); one that others can open,
/// and a key file they can read, are told at the next start in a sentence each, and the key is
/// made private.
#[cfg(unix)]
#[test]
fn the_data_dir_is_private_and_an_open_one_is_told() {
    use std::os::unix::fs::PermissionsExt;
    let port = 20_000 + rand::random_range(0..40_000u16);
    let room = format!("modes-{}", rand::random::<u32>());
    let td = tmpdir("modes");
    let dir = td.join("made").join("data");
    let mut teacher = spawn("teacher", port, &room, &["--role", "teacher"]);
    let mut student = spawn_in("student", port, &room, &dir, &[]);
    teacher.wait(T, ev("ready"));
    student.wait(T, |v| v["event"] == "peer_joined" && v["verified"] == true);
    student.send("a line for the history");
    teacher.wait(T, |v| v["text"] == "a line for the history");
    student.send("/quit");
    assert!(wait_exit(&mut student.child, Duration::from_secs(5)).success());
    assert_eq!((mode(&td.join("made")), mode(&dir)), (0o700, 0o700), "the folder and the parent it made");
    let mut names: Vec<String> =
        std::fs::read_dir(&dir).unwrap().map(|e| e.unwrap().file_name().to_string_lossy().into_owned()).collect();
    names.sort();
    for want in ["history.journal", "id", "identity.key", "lock", "seq", "teachers.json"] {
        assert!(names.iter().any(|n| n == want), "{want} in {names:?}");
    }
    for n in &names {
        // Its folders (the file store, `files`) 0700, its files 0600.
        let want = if dir.join(n).is_dir() { 0o700 } else { 0o600 };
        assert_eq!(mode(&dir.join(n)), want, "{n} is its owner's only");
    }

    // Opened up by hand: told at the next start, the key made private again, the folder left.
    std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o755)).unwrap();
    std::fs::set_permissions(dir.join("identity.key"), std::fs::Permissions::from_mode(0o644)).unwrap();
    let d = dir.to_str().unwrap();
    let (st, err) = run_to_end(&["--iface", "lo", "--port", &port.to_string(), "--room", &room, "--data-dir", d]);
    assert!(st.success(), "{err}");
    let warnings: Vec<&str> = err.lines().filter(|l| l.starts_with("lanpeer: warning: ")).collect();
    assert_eq!(warnings.len(), 2, "{err}");
    assert!(warnings[0].contains(d) && warnings[0].contains("chmod 700"), "{}", warnings[0]);
    assert!(warnings[1].contains("identity.key") && warnings[1].contains("it is private now"), "{}", warnings[1]);
    assert_eq!(mode(&dir.join("identity.key")), 0o600);
    assert_eq!(mode(&dir), 0o755, "the folder is the user's to change");
    // Private again: nothing to say.
    std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o700)).unwrap();
    let (st, err) = run_to_end(&["--iface", "lo", "--port", &port.to_string(), "--room", &room, "--data-dir", d]);
    assert!(st.success() && !err.contains("warning"), "{err}");
}
