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
#![cfg(target_os = "linux")]

mod support;

use std::fs::{self, File};
use std::io::{BufRead, BufReader, Write};
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

#[test]
fn web_page_in_chromium_between_namespaces() {
    if std::env::var("LANPEER_SKIP_WEB").as_deref() == Ok("1") {
        eprintln!("netns_web: skipped (LANPEER_SKIP_WEB=1)");
        return;
    }
    if let Err(why) = preconditions() {
        panic!("netns_web cannot run: {why}. Set LANPEER_SKIP_WEB=1 to skip it on a machine that cannot.");
    }
    let mut lab = Lab::new("lw", [10, 231, 0], &["Ms Rivera", "Sam", "Lea"])
        .unwrap_or_else(|e| panic!("cannot build the lab: {e}"));
    let started = Instant::now();

    // The students first, then the teacher with the page.
    lab.spawn(SAM);
    lab.spawn(LEA);
    lab.spawn_with(TEACHER, |cmd| {
        cmd.args(["--role", "teacher", "--web"]);
    });
    for i in [TEACHER, SAM, LEA] {
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
        lab.hosts[i].expect(0, DISCOVERY_LIMIT, "the teacher joined, as teacher", |v| {
            v["event"] == "peer_joined" && v["id"] == teacher_id.as_str() && v["role"] == "teacher"
        });
    }

    // The page, in Chromium inside the teacher's namespace.
    let mut driver = lab.start_driver(TEACHER, &url);
    let (t, opened) = driver.call("open", json!({}));
    println!("page open and connected: {}", ms(t));
    assert!(text(&opened, "whoami").contains("Ms Rivera"), "{opened}");
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
