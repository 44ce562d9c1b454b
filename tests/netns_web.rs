//! The web page end to end, in real headless Chromium, over a real (virtual) LAN: four
//! `lanpeer` processes in Linux network namespaces on one bridge. The teacher's peer runs with
//! `--web` (and `--json`, to read its address and events); Chromium runs inside the teacher's
//! namespace and browses to the page on that namespace's loopback. The students are `--json`
//! peers driven by this test; Sam, started with the teacher's room code, also serves his page
//! off loopback, on his namespace's own address, where it asks for its token. Late in the lesson
//! an impostor joins: another key, the teacher's name, `--role teacher`.
//!
//! ```text
//!   <tag>sw : bridge br0, ports s1..s4
//!   <tag>h1 : eth0 10.231.0.11/24   Ms Rivera, --role teacher --web   + Chromium (tests/web/e2e.js)
//!   <tag>h2 : eth0 10.231.0.12/24   Sam, --teacher CODE --web 10.231.0.12 (a tab of that Chromium)
//!   <tag>h3 : eth0 10.231.0.13/24   Lea (trusts the first teacher she sees)
//!   <tag>h4 : eth0 10.231.0.14/24   "Ms Rivera", --role teacher: the impostor
//! ```
//!
//! tests/web/e2e.js works the page like a person (label `Message`, Enter, buttons) on commands
//! from this test, one JSON line each way; every check is made here. Raw HTTP requests and
//! WebSocket handshakes to Sam's page are made from Lea's namespace, as a classmate's computer
//! would. Needs root, `ip`, `node`, `/usr/bin/chromium` and `npm ci` in tests/web (`.ci/run` does
//! all of it). Without them the test fails, unless `LANPEER_SKIP_WEB=1` is set. A guard kills
//! every child and deletes every namespace, also on panic; every wait has a deadline.
//!
//! Screenshots land in `$CARGO_TARGET_TMPDIR/netns_web/`; with `LANPEER_UPDATE_SCREENSHOT=1` the
//! laptop-width one is also written to docs/web.png.
//!
//! Run: `cargo test --test netns_web -- --nocapture` (as root) to see the measured times.
#![cfg(target_os = "linux")]

mod support;

use std::fs::{self, File};
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::os::fd::AsRawFd;
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::mpsc;
use std::thread;
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use support::netns::{Lab, ms, need_root, run, tail, text, wait_deadline};

const CHROMIUM: &str = "/usr/bin/chromium";
/// Students see each other and the teacher within this after the last start.
const DISCOVERY_LIMIT: Duration = Duration::from_secs(5);
/// A message reaches a peer, or the page, within this.
const DELIVERY_LIMIT: Duration = Duration::from_secs(3);
/// One action of the page driver (its own waits are 10 s).
const DRIVER_LIMIT: Duration = Duration::from_secs(20);

fn web_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests").join("web")
}

/// Everything this test needs from the machine, or why it cannot run.
fn preconditions() -> Result<(), String> {
    need_root()?;
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
// The page driver.

/// The page driver: tests/web/e2e.js with Chromium, one JSON line each way.
/// Dropped before the lab (it is made after it): it quits, or is killed, and on a failure shows
/// the end of its log.
struct Driver {
    child: Child,
    stdin: ChildStdin,
    lines: mpsc::Receiver<String>,
    next: u64,
    stderr_path: PathBuf,
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

impl Drop for Driver {
    fn drop(&mut self) {
        let _ = writeln!(self.stdin, "{}", json!({"id": 0, "do": "quit"}));
        let _ = self.stdin.flush();
        if wait_deadline(&mut self.child, Duration::from_secs(5)).is_none() {
            let _ = self.child.kill();
            let _ = wait_deadline(&mut self.child, Duration::from_secs(5));
        }
        if thread::panicking() {
            eprintln!("----- page driver stderr:\n{}", tail(&self.stderr_path, 40));
        }
    }
}

// ---------------------------------------------------------------------------------------------
// The lab (tests/support/netns.rs), with the page driver.

impl Lab {
    /// Start the page driver (Node.js + Chromium) in peer `i`'s namespace, browsing to `url`.
    fn start_driver(&self, i: usize, url: &str) -> Driver {
        let home = self.dir.join("browser-home");
        let profile = self.dir.join("chromium-profile");
        fs::create_dir_all(&home).expect("browser home");
        let stderr_path = self.dir.join("driver.stderr");
        let stderr = File::create(&stderr_path).expect("driver log file");
        let mut child = Command::new("ip")
            .args(["netns", "exec", &self.hosts[i].ns, "node", "e2e.js", url])
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
        let d = Driver { child, stdin, lines: rx, next: 0, stderr_path };
        // The first line says the browser is up.
        let first = d
            .lines
            .recv_timeout(Duration::from_secs(40))
            .unwrap_or_else(|_| panic!("the page driver did not start within 40 s; see {}", d.stderr_path.display()));
        let v: Value = serde_json::from_str(&first).unwrap_or_else(|_| panic!("page driver said: {first}"));
        assert_eq!(v["ready"], json!(true), "page driver did not start: {v}");
        d
    }
}

// ---------------------------------------------------------------------------------------------

const TEACHER: usize = 0;
const SAM: usize = 1;
const LEA: usize = 2;
const IMPOSTOR: usize = 3;

// ---------------------------------------------------------------------------------------------
// Raw requests from inside a namespace.

/// Run `f` on a thread of its own that has joined the network namespace `ns`: every socket it
/// opens is that namespace's.
fn in_netns<T: Send + 'static>(ns: &str, f: impl FnOnce() -> T + Send + 'static) -> T {
    let path = format!("/run/netns/{ns}");
    let joined = thread::spawn(move || {
        let file = File::open(&path).unwrap_or_else(|e| panic!("cannot open {path}: {e}"));
        // SAFETY: setns on a valid descriptor changes this thread's network namespace only.
        let rc = unsafe { libc::setns(file.as_raw_fd(), libc::CLONE_NEWNET) };
        assert_eq!(rc, 0, "setns {path}: {}", std::io::Error::last_os_error());
        f()
    })
    .join();
    joined.unwrap_or_else(|e| std::panic::resume_unwind(e))
}

/// One `GET path` to `addr` with `extra` header lines (each ending in CRLF): (status, whole
/// response). Bounded: 5 s.
fn raw_get(addr: SocketAddr, path: &str, extra: &str) -> (u16, String) {
    let mut s = TcpStream::connect_timeout(&addr, Duration::from_secs(5)).expect("connect to the page");
    s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    write!(s, "GET {path} HTTP/1.1\r\nHost: {addr}\r\n{extra}Connection: close\r\n\r\n").unwrap();
    let mut out = String::new();
    s.read_to_string(&mut out).expect("a whole response within 5 s");
    let status = out.split(' ').nth(1).and_then(|c| c.parse().ok()).unwrap_or(0);
    (status, out)
}

/// A WebSocket handshake to `addr`'s `/ws` from the page's own origin, with `cookie` if any:
/// Ok(the first message, as JSON) or Err(the HTTP status of the refusal).
fn raw_ws(addr: SocketAddr, cookie: Option<&str>) -> Result<Value, u16> {
    use tokio_tungstenite::tungstenite::{self, client::IntoClientRequest};
    let mut req = format!("ws://{addr}/ws").into_client_request().unwrap();
    req.headers_mut().insert("origin", format!("http://{addr}").parse().unwrap());
    if let Some(c) = cookie {
        req.headers_mut().insert("cookie", c.parse().unwrap());
    }
    let stream = TcpStream::connect_timeout(&addr, Duration::from_secs(5)).expect("connect to the page");
    stream.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    match tungstenite::client(req, stream) {
        Ok((mut ws, _)) => loop {
            match ws.read().expect("a first message within 5 s") {
                tungstenite::Message::Text(t) => return Ok(serde_json::from_str(t.as_str()).expect("JSON")),
                _ => continue,
            }
        },
        Err(tungstenite::HandshakeError::Failure(tungstenite::Error::Http(resp))) => Err(resp.status().as_u16()),
        Err(e) => panic!("WebSocket handshake to {addr}: {e}"),
    }
}

/// Sam's page, served off loopback, seen from another computer of the LAN (`ns`): without the
/// token, nothing (HTTP and WebSocket); with it, the cookie, then everything.
fn token_checks(ns: &str, addr: SocketAddr, token: String) -> Duration {
    in_netns(ns, move || {
        let t0 = Instant::now();
        for path in ["/", "/app.js", "/style.css", "/ws"] {
            let (status, r) = raw_get(addr, path, "");
            assert_eq!(status, 401, "{path} without the token: {r}");
            assert!(r.contains("needs its token"), "one plain sentence: {r}");
        }
        let wrong: String = token.chars().rev().collect();
        assert_ne!(wrong, token);
        let (status, r) = raw_get(addr, &format!("/?token={wrong}"), "");
        assert_eq!(status, 403, "a wrong token: {r}");
        assert_eq!(raw_ws(addr, None).map(|_| ()), Err(401), "the WebSocket without the token");
        let name = format!("lanpeer_token_{}", addr.port());
        assert_eq!(raw_ws(addr, Some(&format!("{name}={wrong}"))).map(|_| ()), Err(403), "a wrong cookie");

        let (status, r) = raw_get(addr, &format!("/?token={token}"), "");
        assert_eq!(status, 303, "the printed address: {r}");
        assert!(r.to_ascii_lowercase().contains("\r\nlocation: /\r\n"), "on to the address without it: {r}");
        let set = r.lines().find(|l| l.to_ascii_lowercase().starts_with("set-cookie:")).expect("a cookie");
        assert!(set.contains(&format!("{name}={token}")), "{set}");
        assert!(set.contains("HttpOnly") && set.contains("SameSite=Strict"), "{set}");
        let cookie = format!("{name}={token}");
        let (status, page) = raw_get(addr, "/", &format!("Cookie: {cookie}\r\n"));
        assert_eq!(status, 200, "{page}");
        assert!(page.contains("id=\"chat-log\""), "the page itself");
        let history = raw_ws(addr, Some(&cookie)).expect("the WebSocket with the cookie");
        assert_eq!((text(&history, "event"), text(&history["me"], "name")), ("history", "Sam"));
        t0.elapsed()
    })
}

/// `code` is a room code of `room`: `ROOM-xxxx-xxxx-xxxx-xxxx-xxxx`, 80 bits of `id`.
fn is_room_code(code: &str, room: &str, id: &str) -> bool {
    let Some(groups) = code.strip_prefix(room).and_then(|r| r.strip_prefix('-')) else { return false };
    let parts: Vec<&str> = groups.split('-').collect();
    parts.len() == 5 && parts.iter().all(|g| g.len() == 4) && id.starts_with(&parts.concat())
}

/// The person under Online whose id is `id`, from the driver's `people` answer.
fn person<'a>(people: &'a Value, id: &str) -> &'a Value {
    people["people"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["id"] == id)
        .unwrap_or_else(|| panic!("{id} is not under Online: {people}"))
}

#[test]
fn web_page_in_chromium_between_namespaces() {
    let missing = preconditions().err();
    if let Some(why) = &missing
        && support::netns::euid() != Some(0)
    {
        support::skip_note(&format!("netns_web skipped: it needs root, network namespaces and Chromium ({why})"));
        return;
    }
    if std::env::var("LANPEER_SKIP_WEB").as_deref() == Ok("1") {
        eprintln!(
            "netns_web: skipped (LANPEER_SKIP_WEB=1){}",
            missing.map(|why| format!(": {why}")).unwrap_or_default()
        );
        return;
    }
    if let Some(why) = missing {
        panic!("netns_web cannot run: {why}. Set LANPEER_SKIP_WEB=1 to skip it on a machine that cannot.");
    }
    let mut lab = Lab::new("lw", [10, 231, 0], &["Ms Rivera", "Sam", "Lea", "Ms Rivera"])
        .unwrap_or_else(|e| panic!("cannot build the lab: {e}"));
    let started = Instant::now();

    // The teacher with the page, then the students: Sam with the teacher's room code and his page
    // on his own address, Lea with none (she trusts the first teacher she sees).
    lab.spawn_with(TEACHER, |cmd| {
        cmd.args(["--role", "teacher", "--web"]);
    });
    let (_, ready) = lab.hosts[TEACHER].expect(0, Duration::from_secs(10), "ready event", |v| v["event"] == "ready");
    lab.hosts[TEACHER].id = text(&ready, "id").to_string();
    let room_code = text(&ready, "room_code").to_string();
    assert!(is_room_code(&room_code, text(&ready, "room"), &lab.hosts[TEACHER].id), "the room code: {ready}");
    let sam_web = lab.hosts[SAM].ip.to_string();
    lab.spawn_with(SAM, |cmd| {
        cmd.args(["--teacher", &room_code, "--web", &sam_web]);
    });
    lab.spawn(LEA);
    for i in [SAM, LEA] {
        let (_, ready) = lab.hosts[i].expect(0, Duration::from_secs(10), "ready event", |v| v["event"] == "ready");
        lab.hosts[i].id = text(&ready, "id").to_string();
    }
    let (_, web) = lab.hosts[TEACHER].expect(0, Duration::from_secs(5), "web event", |v| v["event"] == "web");
    let url = text(&web, "url").to_string();
    assert!(url.starts_with("http://127.0.0.1:") && url.ends_with('/'), "the page is on loopback by default: {url}");
    let events = lab.hosts[TEACHER].values();
    let web_at = events.iter().position(|v| v["event"] == "web").unwrap();
    assert_eq!(events[0]["event"], "ready", "ready stays the first event");
    assert!(web_at > 0);
    let teacher_id = lab.hosts[TEACHER].id.clone();
    let sam_id = lab.hosts[SAM].id.clone();
    for i in [SAM, LEA] {
        let (_, joined) = lab.hosts[i].expect(0, DISCOVERY_LIMIT, "the teacher joined, as teacher", |v| {
            v["event"] == "peer_joined" && v["id"] == teacher_id.as_str() && v["role"] == "teacher"
        });
        assert_eq!(joined["verified"], json!(true), "by the code (Sam), on first use (Lea): {joined}");
    }

    // Sam's page, off loopback: its address carries the token, and nothing works without it.
    let (_, web) = lab.hosts[SAM].expect(0, Duration::from_secs(5), "web event", |v| v["event"] == "web");
    let sam_url = text(&web, "url").to_string();
    let (sam_addr, sam_token) = sam_url
        .strip_prefix("http://")
        .and_then(|r| r.split_once("/?token="))
        .unwrap_or_else(|| panic!("off loopback, the address carries the token: {sam_url}"));
    let sam_addr: SocketAddr = sam_addr.parse().expect("IP:PORT");
    assert_eq!(sam_addr.ip(), lab.hosts[SAM].ip, "{sam_url}");
    assert!(sam_token.len() >= 32 && sam_token.bytes().all(|b| b.is_ascii_hexdigit()), "128 bits or more: {sam_url}");
    let t = token_checks(&lab.hosts[LEA].ns, sam_addr, sam_token.to_string());
    println!("token refused/accepted over HTTP and WebSocket from another computer: {}", ms(t));

    // The page, in Chromium inside the teacher's namespace.
    let mut driver = lab.start_driver(TEACHER, &url);
    let (t, opened) = driver.call("open", json!({}));
    println!("page open and connected: {}", ms(t));
    assert!(text(&opened, "whoami").contains("Ms Rivera"), "{opened}");
    let (_, code) = driver.call("room_code", json!({}));
    assert_eq!(text(&code, "code"), room_code, "the teacher's page shows its room code");
    assert!(text(&code, "text").contains(&format!("lanpeer --teacher {room_code}")), "{code}");
    let (t, sam) = driver.call("expect_peer", json!({"name": "Sam"}));
    driver.call("expect_peer", json!({"name": "Lea"}));
    println!("page lists the students: {}", ms(t));
    assert_eq!(sam["badges"], json!([]), "Sam is no teacher");

    // A chat typed into `Message` reaches the students.
    let (s, l) = (lab.hosts[SAM].mark(), lab.hosts[LEA].mark());
    let t0 = Instant::now();
    driver.call("chat", json!({"text": "Good morning! Today: loops."}));
    let is_hello = |v: &Value| v["event"] == "chat" && v["text"] == "Good morning! Today: loops.";
    let (at, v) = lab.hosts[SAM].expect(s, DELIVERY_LIMIT, "the page's chat", is_hello);
    assert_eq!((text(&v, "from"), &v["to"]), (teacher_id.as_str(), &Value::Null));
    lab.hosts[LEA].expect(l, DELIVERY_LIMIT, "the page's chat", is_hello);
    println!("chat typed on the page -> other peer: {}", ms(at - t0));

    // The students' chats appear on the page, as text, even when they look like HTML.
    let t0 = lab.hosts[SAM].send("Good morning, Ms Rivera");
    let (_, c) = driver.call("expect_chat", json!({"text": "Good morning, Ms Rivera"}));
    println!("chat of another peer -> page: {}", ms(t0.elapsed()));
    assert_eq!(text(&c, "from"), "Sam");
    // A student's problem appears with its body, newlines kept.
    let s = lab.hosts[SAM].mark();
    lab.hosts[SAM].send(r"/problem Loops | Print the numbers 1 to 10.\nUse a for loop.");
    let (_, p) = lab.hosts[SAM].expect(s, DELIVERY_LIMIT, "own problem", |v| v["event"] == "problem");
    let problem_id = text(&p, "id").to_string();
    let (_, shown) = driver.call("expect_problem", json!({"title": "Loops"}));
    assert_eq!(text(&shown, "problem_id"), problem_id);
    assert_eq!(text(&shown, "body"), "Print the numbers 1 to 10.\nUse a for loop.");

    // Lea answers; her code shows as code on the page, indentation and newlines kept.
    let l = lab.hosts[LEA].mark();
    let short = &problem_id[..8];
    let seq = &problem_id[problem_id.rfind('-').unwrap() + 1..];
    lab.hosts[LEA].send(&format!(r"/answer {short}-{seq} for i in range(1, 11):\n    print(i)"));
    let (_, lea_answer) = lab.hosts[LEA].expect(l, DELIVERY_LIMIT, "own answer", |v| v["event"] == "answer");
    let lea_answer_id = text(&lea_answer, "id").to_string();
    let (_, a) = driver.call("expect_answer", json!({"title": "Loops", "text": "print(i)"}));
    assert_eq!(text(&a, "answer_id"), lea_answer_id);
    assert_eq!(text(&a, "code"), "for i in range(1, 11):\n    print(i)");
    assert_eq!(text(&a, "from"), "Lea");

    // The teacher answers on the page: the answer reaches the students, text intact.
    let s = lab.hosts[SAM].mark();
    let own_answer = "for n in range(1, 11):\n    print(n)  # <b>not bold</b>";
    let t0 = Instant::now();
    driver.call("answer", json!({"title": "Loops", "text": own_answer}));
    let (at, v) = lab.hosts[SAM]
        .expect(s, DELIVERY_LIMIT, "the page's answer", |v| v["event"] == "answer" && v["from"] == teacher_id.as_str());
    println!("answer posted on the page -> other peer: {}", ms(at - t0));
    assert_eq!(text(&v, "problem_id"), problem_id);
    assert_eq!(text(&v, "text"), own_answer);
    let teacher_answer_id = text(&v, "id").to_string();

    // Feedback on Lea's answer, given on the page, reaches everyone.
    let (s, l) = (lab.hosts[SAM].mark(), lab.hosts[LEA].mark());
    let t0 = Instant::now();
    driver.call("feedback", json!({"answer_text": "print(i)", "text": "Good. Now print only the even ones."}));
    let is_fb = |v: &Value| v["event"] == "feedback" && v["text"] == "Good. Now print only the even ones.";
    let (at, v) = lab.hosts[LEA].expect(l, DELIVERY_LIMIT, "the page's feedback", is_fb);
    println!("feedback given on the page -> other peer: {}", ms(at - t0));
    assert_eq!(text(&v, "answer_id"), lea_answer_id);
    assert_eq!(text(&v, "from"), teacher_id.as_str());
    lab.hosts[SAM].expect(s, DELIVERY_LIMIT, "the page's feedback", is_fb);
    driver.call("expect_feedback", json!({"answer_text": "print(i)", "text": "only the even ones"}));

    // Feedback from a student on the teacher's answer appears under it.
    let short_answer =
        format!("{}-{}", &teacher_answer_id[..8], &teacher_answer_id[teacher_answer_id.rfind('-').unwrap() + 1..]);
    lab.hosts[SAM].send(&format!("/feedback {short_answer} Nice use of a comment."));
    let (_, f) = driver.call("expect_feedback", json!({"answer_text": "print(n)", "text": "Nice use of a comment."}));
    assert_eq!(text(&f, "from"), "Sam");

    // Choosing a person sends privately: Sam gets it, Lea does not.
    let (s, l) = (lab.hosts[SAM].mark(), lab.hosts[LEA].mark());
    driver.call("chat", json!({"text": "Sam, can you share your screen?", "to": "Sam"}));
    let (_, v) = lab.hosts[SAM].expect(s, DELIVERY_LIMIT, "the private chat", |v| {
        v["event"] == "chat" && v["text"] == "Sam, can you share your screen?"
    });
    assert_eq!(text(&v, "to"), sam_id.as_str(), "addressed to Sam only");
    let (_, c) = driver.call("expect_chat", json!({"text": "can you share your screen?"}));
    assert!(c["badges"].to_string().contains("private to Sam"), "{c}");
    lab.hosts[SAM].send(&format!("/msg {} Yes, one moment.", &teacher_id[..8]));
    let (_, c) = driver.call("expect_chat", json!({"text": "Yes, one moment."}));
    assert!(c["badges"].to_string().contains("private"), "a private message is marked: {c}");

    // A quiz from the page: the students see that answers are private; the page counts answers.
    let (s, l2) = (lab.hosts[SAM].mark(), lab.hosts[LEA].mark());
    driver
        .call("post_problem", json!({"title": "Quiz: range", "body": "What does list(range(3)) give?", "quiz": true}));
    let (_, q) = lab.hosts[SAM].expect(s, DELIVERY_LIMIT, "the quiz", |v| v["event"] == "problem");
    assert_eq!((text(&q, "title"), &q["private_answers"]), ("Quiz: range", &json!(true)));
    lab.hosts[LEA].expect(l2, DELIVERY_LIMIT, "the quiz", |v| v["event"] == "problem");
    let quiz_id = text(&q, "id").to_string();
    let (_, shown) = driver.call("expect_problem", json!({"title": "Quiz: range"}));
    assert!(shown["badges"].to_string().contains("quiz"), "{shown}");
    driver.call("answer_count", json!({"title": "Quiz: range", "expect": "0 people have answered"}));
    lab.hosts[SAM].send(&format!("/answer {quiz_id} [0, 1, 2]"));
    driver.call("answer_count", json!({"title": "Quiz: range", "expect": "1 person has answered"}));
    lab.hosts[LEA].send(&format!("/answer {quiz_id} [1, 2, 3]"));
    let (_, n) = driver.call("answer_count", json!({"title": "Quiz: range", "expect": "2 people have answered"}));
    println!("quiz author's count: {}", text(&n, "text"));

    // Nothing private leaked to Lea.
    let lea_seen = lab.hosts[LEA].values();
    assert!(
        !lea_seen.iter().skip(l).any(|v| v["text"] == "Sam, can you share your screen?" || v["text"] == "[0, 1, 2]"),
        "Lea saw a private message or answer"
    );

    // After a reload, the page shows the history again.
    let t0 = Instant::now();
    driver.call("reload", json!({}));
    driver.call("expect_chat", json!({"text": "Good morning, Ms Rivera"}));
    driver.call("expect_chat", json!({"text": "Sam, can you share your screen?"}));
    driver.call("expect_answer", json!({"title": "Loops", "text": "print(i)"}));
    driver.call("expect_feedback", json!({"answer_text": "print(i)", "text": "only the even ones"}));
    driver.call("answer_count", json!({"title": "Quiz: range", "expect": "2 people have answered"}));
    driver.call("expect_peer", json!({"name": "Lea"}));
    println!("reload -> history shown again: {}", ms(t0.elapsed()));

    // Screenshots at laptop and phone widths; neither scrolls sideways.
    let shots = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("netns_web");
    fs::create_dir_all(&shots).expect("screenshot folder");
    driver.call("scroll_chat_bottom", json!({}));
    let laptop = shots.join("web.png");
    let (_, r) = driver.call(
        "screenshot",
        json!({"path": laptop.to_string_lossy(), "width": 1366, "height": 1000, "full_page": false}),
    );
    assert_eq!(r["horizontal_overflow_px"], json!(0), "laptop width: no sideways scrolling");
    let phone = shots.join("web-phone.png");
    let (_, r) = driver
        .call("screenshot", json!({"path": phone.to_string_lossy(), "width": 390, "height": 844, "full_page": true}));
    assert_eq!(r["horizontal_overflow_px"], json!(0), "phone width: no sideways scrolling");
    println!("screenshots: {} {}", laptop.display(), phone.display());
    if std::env::var("LANPEER_UPDATE_SCREENSHOT").as_deref() == Ok("1") {
        let docs = Path::new(env!("CARGO_MANIFEST_DIR")).join("docs").join("web.png");
        fs::copy(&laptop, &docs).expect("copy the screenshot to docs/");
        println!("updated {}", docs.display());
    }
    let (_, errs) = driver.call("console_errors", json!({}));
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
    lab.hosts[LEA].send(evil);
    for reload in [false, true] {
        if reload {
            driver.call("reload", json!({}));
        }
        let (_, c) = driver.call("expect_chat", json!({"text": "window.pwned=1"}));
        assert_eq!(text(&c, "text"), evil, "shown exactly as typed");
        assert_eq!(c["child_elements"], json!(0), "no element made from a chat");
        let (_, inj) = driver.call("injected", json!({}));
        assert_eq!(
            (&inj["pwned"], &inj["scripts_in_log"], &inj["elements_in_texts"]),
            (&Value::Null, &json!(0), &json!(0))
        );
    }

    // An impostor joins: the teacher's name and role, another key. Sam (by the code) and Lea (who
    // met the real teacher first) show it as unverified, and the two are told apart by label.
    let (s, l) = (lab.hosts[SAM].mark(), lab.hosts[LEA].mark());
    lab.spawn_with(IMPOSTOR, |cmd| {
        cmd.args(["--role", "teacher"]);
    });
    let (_, ready) = lab.hosts[IMPOSTOR].expect(0, Duration::from_secs(10), "ready event", |v| v["event"] == "ready");
    let impostor_id = text(&ready, "id").to_string();
    lab.hosts[IMPOSTOR].id = impostor_id.clone();
    for (i, mark) in [(SAM, s), (LEA, l)] {
        let (_, joined) = lab.hosts[i].expect(mark, DISCOVERY_LIMIT, "the impostor joined", |v| {
            v["event"] == "peer_joined" && v["id"] == impostor_id.as_str()
        });
        assert_eq!((&joined["role"], &joined["verified"]), (&json!("teacher"), &json!(false)), "{joined}");
        assert_eq!(text(&joined, "label"), format!("Ms Rivera ({})", &impostor_id[..8]), "{joined}");
    }
    lab.hosts[IMPOSTOR]
        .expect(0, DISCOVERY_LIMIT, "Sam joined", |v| v["event"] == "peer_joined" && v["id"] == sam_id.as_str());

    // Sam's page, in a second tab: the token's address, then the page at `/` on the cookie.
    let t0 = Instant::now();
    let (_, tab) = driver.call("tab", json!({"name": "sam", "to": sam_url}));
    println!("Sam's page (off loopback, token -> cookie -> /) open and connected: {}", ms(t0.elapsed()));
    assert!(text(&tab, "whoami").contains("Sam"), "{tab}");
    assert_eq!(text(&tab, "location"), format!("http://{sam_addr}/"), "the token is gone from the address");
    let (_, c) = driver.call("cookies", json!({}));
    assert_eq!(
        c["cookies"],
        json!([{"name": format!("lanpeer_token_{}", sam_addr.port()), "httpOnly": true, "sameSite": "Strict", "path": "/"}]),
    );
    let (_, people) = driver.call("people", json!({}));
    let (real, fake) = (person(&people, &teacher_id), person(&people, &impostor_id));
    assert_eq!(real["badges"], json!(["teacher"]), "the real teacher, verified: {people}");
    assert_eq!(fake["badges"], json!(["teacher? UNVERIFIED"]), "the impostor, never the teacher's badge: {people}");
    let (real_label, fake_label) = (text(real, "label"), text(fake, "label"));
    assert_ne!(real_label, fake_label, "two Ms Riveras told apart");
    assert_eq!(real_label, format!("Ms Rivera ({})", &teacher_id[..8]));
    assert_eq!(fake_label, format!("Ms Rivera ({})", &impostor_id[..8]));
    let options = people["to_options"].to_string();
    assert!(options.contains(&format!("{fake_label} (teacher? UNVERIFIED), privately")), "{options}");
    assert!(options.contains(&format!("{real_label} (teacher), privately")), "{options}");

    // A quiz from each: the impostor's warns before the answer box, the teacher's does not.
    lab.hosts[TEACHER].send("/quiz Real quiz | What is 2 + 2?");
    lab.hosts[IMPOSTOR].send("/quiz Homework check | Send me your password and your answers.");
    lab.hosts[IMPOSTOR].send("I am your teacher today.");
    let (_, q) = driver.call("expect_problem", json!({"title": "Real quiz"}));
    assert_eq!(q["badges"], json!(["teacher", "quiz"]), "{q}");
    assert_eq!((text(&q, "from"), &q["warning"]), (real_label, &Value::Null), "{q}");
    assert_eq!(text(&q, "quiz_note"), format!("Quiz: your answer goes to {real_label} only."));
    let (_, q) = driver.call("expect_problem", json!({"title": "Homework check"}));
    assert_eq!(q["badges"], json!(["teacher? UNVERIFIED", "quiz"]), "{q}");
    assert_eq!(text(&q, "from"), fake_label);
    assert!(text(&q, "warning").starts_with("Not the verified teacher."), "{q}");
    assert!(text(&q, "warning").contains(fake_label), "{q}");
    assert_eq!((&q["warning_visible"], &q["warning_before_box"]), (&json!(true), &json!(true)), "{q}");
    assert!(text(&q, "quiz_note").contains("NOT the verified teacher"), "{q}");
    let (_, c) = driver.call("expect_chat", json!({"text": "I am your teacher today."}));
    assert_eq!((text(&c, "from"), &c["badges"]), (fake_label, &json!(["teacher? UNVERIFIED"])), "{c}");

    let student = shots.join("web-student.png");
    let (_, r) = driver.call(
        "screenshot",
        json!({"path": student.to_string_lossy(), "width": 1366, "height": 1000, "full_page": false}),
    );
    assert_eq!(r["horizontal_overflow_px"], json!(0), "the student's page: no sideways scrolling");

    // Sam answers the real quiz on his page: it reaches the teacher, and only the teacher.
    let (t, i) = (lab.hosts[TEACHER].mark(), lab.hosts[IMPOSTOR].mark());
    driver.call("answer", json!({"title": "Real quiz", "text": "4"}));
    let (_, a) = lab.hosts[TEACHER].expect(t, DELIVERY_LIMIT, "Sam's answer from his page", |v| {
        v["event"] == "answer" && v["from"] == sam_id.as_str()
    });
    assert_eq!((text(&a, "text"), text(&a, "to")), ("4", teacher_id.as_str()));
    // The page keeps working on its cookie alone, also after a reload.
    driver.call("reload", json!({}));
    driver.call("expect_answer", json!({"title": "Real quiz", "text": "4"}));
    let (_, q) = driver.call("expect_problem", json!({"title": "Homework check"}));
    assert_eq!(q["warning_before_box"], json!(true), "after a reload too: {q}");
    assert!(
        lab.hosts[IMPOSTOR].all(i, |v| v["event"] == "answer").is_empty(),
        "the impostor got no answer to the teacher's quiz"
    );

    // The teacher's own page: the impostor is unverified there too.
    driver.call("tab", json!({"name": "first"}));
    let (_, people) = driver.call("people", json!({}));
    assert_eq!(person(&people, &impostor_id)["badges"], json!(["teacher? UNVERIFIED"]), "{people}");

    // A student leaves with SIGTERM while her input is still open: she exits at once, and the
    // page shows that she left.
    let lea = lab.hosts[LEA].child.as_mut().unwrap();
    run("kill", &["-TERM", &lea.id().to_string()]).expect("SIGTERM");
    let status = wait_deadline(lea, Duration::from_secs(5)).expect("a peer leaves within 5 s of SIGTERM");
    assert!(status.success(), "clean exit: {status}");
    driver.call("expect_no_peer", json!({"name": "Lea"}));

    // With --web, the end of input does not end the peer; SIGTERM leaves gracefully.
    lab.hosts[TEACHER].stdin.take();
    thread::sleep(Duration::from_millis(300));
    let child = lab.hosts[TEACHER].child.as_mut().unwrap();
    assert!(matches!(child.try_wait(), Ok(None)), "the web peer keeps running after the end of its input");
    run("kill", &["-TERM", &child.id().to_string()]).expect("SIGTERM");
    let status = wait_deadline(child, Duration::from_secs(5)).expect("the web peer leaves within 5 s of SIGTERM");
    assert!(status.success(), "clean exit: {status}");
    println!("whole test: {}", ms(started.elapsed()));
}
