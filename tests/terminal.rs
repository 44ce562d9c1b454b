//! The terminal front end in a real pseudo-terminal: `lanpeer` runs on a pty that is its
//! controlling terminal (as in a shell), the test types into it, and reads the screen as a
//! terminal would show it (the vt100 crate keeps the screen; the test answers the cursor-position
//! queries a terminal answers). The other peer is a `--json` process on pipes, which checks what
//! arrives. Real processes on loopback, each test with a port and a room of its own.
#![cfg(target_os = "linux")]

mod common;
use common::TmpDir;

use std::fs::File;
use std::io::{BufRead, BufReader, Read, Write};
use std::num::NonZeroU16;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::os::unix::process::CommandExt;
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use serde_json::Value;

const BIN: &str = env!("CARGO_BIN_EXE_lanpeer");
const ROWS: u16 = 30;
const COLS: u16 = 110;
/// Generous: a busy machine of two cores runs several of these at once.
const T: Duration = Duration::from_secs(20);

const PASTE_START: &str = "\x1b[200~";
const PASTE_END: &str = "\x1b[201~";
const UP: &str = "\x1b[A";
const CTRL_C: &str = "\x03";
const CTRL_R: &str = "\x12";
const ESC: &str = "\x1b";

fn net() -> (u16, String) {
    let port = 20_000 + rand::random_range(0..40_000u16);
    (port, format!("t{}-{}", std::process::id() % 10_000, rand::random::<u16>()))
}

fn tmpdir(tag: &str) -> TmpDir {
    TmpDir::new(&format!("lanpeer-term-{tag}"))
}

/// A peer on a pseudo-terminal, and the screen it draws.
struct Tty {
    name: String,
    child: Child,
    typing: Option<File>,
    shown: mpsc::Receiver<Vec<u8>>,
    /// Tells the reading thread to let go of the terminal (closing the window).
    stop: Arc<AtomicBool>,
    screen: vt100::Parser,
    /// Every byte the peer wrote to its terminal.
    raw: Vec<u8>,
}

impl Drop for Tty {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A new pseudo-terminal of ROWS x COLS: (master, slave).
fn openpty() -> (OwnedFd, OwnedFd) {
    let (mut master, mut slave) = (-1, -1);
    let size = libc::winsize { ws_row: ROWS, ws_col: COLS, ws_xpixel: 0, ws_ypixel: 0 };
    // SAFETY: openpty writes two new descriptors, which we own from here on.
    let r = unsafe { libc::openpty(&mut master, &mut slave, std::ptr::null_mut(), std::ptr::null(), &size) };
    assert_eq!(r, 0, "openpty: {}", std::io::Error::last_os_error());
    // Not inherited by the processes that tests start (openpty does not say close-on-exec): a
    // peer that held its own terminal's master side would never see that terminal closed.
    for fd in [master, slave] {
        // SAFETY: fcntl on a descriptor just opened.
        assert_eq!(unsafe { libc::fcntl(fd, libc::F_SETFD, libc::FD_CLOEXEC) }, 0);
    }
    // SAFETY: both are open descriptors nobody else owns.
    unsafe { (OwnedFd::from_raw_fd(master), OwnedFd::from_raw_fd(slave)) }
}

fn spawn_tty(name: &str, port: u16, room: &str, dir: &std::path::Path, env: &[(&str, &str)]) -> Tty {
    spawn_tty_with(name, port, room, dir, env, &[])
}

fn spawn_tty_with(
    name: &str,
    port: u16,
    room: &str,
    dir: &std::path::Path,
    env: &[(&str, &str)],
    extra: &[&str],
) -> Tty {
    let (master, slave) = openpty();
    let fd = slave.as_raw_fd();
    let mut cmd = Command::new(BIN);
    cmd.args(["--iface", "lo", "--port", &port.to_string(), "--room", room, "--name", name, "--data-dir"])
        .arg(dir)
        .args(extra)
        .env("TERM", "xterm-256color")
        .env_remove("NO_COLOR")
        .env_remove("LANPEER_PASSPHRASE")
        .env_remove("LANPEER_LOG")
        .stdin(Stdio::from(slave.try_clone().unwrap()))
        .stdout(Stdio::from(slave.try_clone().unwrap()))
        .stderr(Stdio::from(slave.try_clone().unwrap()));
    for (k, v) in env {
        cmd.env(k, v);
    }
    // SAFETY: only async-signal-safe calls between fork and exec: a new session whose controlling
    // terminal is the pseudo-terminal, as a shell would give it.
    unsafe {
        cmd.pre_exec(move || {
            if libc::setsid() < 0 || libc::ioctl(fd, libc::TIOCSCTTY as _, 0) < 0 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
    let child = cmd.spawn().expect("lanpeer starts on the terminal");
    drop(slave);
    let typing = File::from(master.try_clone().unwrap());
    let stop = Arc::new(AtomicBool::new(false));
    let (tx, shown) = mpsc::channel();
    let stop2 = stop.clone();
    // The only other holder of the terminal's master side: when it and `typing` are closed, the
    // terminal is closed, as when its window is.
    std::thread::spawn(move || {
        let mut f = File::from(master);
        let mut buf = [0u8; 8192];
        while !stop2.load(Ordering::Relaxed) {
            let mut p = libc::pollfd { fd: f.as_raw_fd(), events: libc::POLLIN, revents: 0 };
            // SAFETY: one valid pollfd.
            if unsafe { libc::poll(&mut p, 1, 50) } <= 0 {
                continue;
            }
            match f.read(&mut buf) {
                Ok(n @ 1..) => {
                    if tx.send(buf[..n].to_vec()).is_err() {
                        break;
                    }
                }
                // EIO once the peer and every holder of the slave side are gone.
                _ => break,
            }
        }
    });
    let screen = vt100::Parser::new(NonZeroU16::new(ROWS).unwrap(), NonZeroU16::new(COLS).unwrap(), 0);
    Tty { name: name.into(), child, typing: Some(typing), shown, stop, screen, raw: Vec::new() }
}

impl Tty {
    /// Take in what the peer drew, waiting at most `wait` for something; answer the terminal
    /// queries in it (where the cursor is) as a terminal does.
    fn pump(&mut self, wait: Duration) {
        let Ok(first) = self.shown.recv_timeout(wait) else { return };
        let mut chunks = vec![first];
        while let Ok(more) = self.shown.try_recv() {
            chunks.push(more);
        }
        for c in chunks {
            self.screen.process(&c);
            if c.windows(4).any(|w| w == b"\x1b[6n") {
                let (row, col) = self.screen.screen().cursor_position();
                let answer = format!("\x1b[{};{}R", row + 1, col + 1);
                self.type_(&answer);
            }
            self.raw.extend_from_slice(&c);
        }
    }

    /// What the screen shows.
    fn text(&self) -> String {
        self.screen.screen().contents()
    }

    /// The line the cursor is on, without the blanks at its end (a prompt `ada@5B> ` shows as
    /// `ada@5B>`).
    fn cursor_line(&self) -> String {
        let (row, _) = self.screen.screen().cursor_position();
        self.screen.screen().rows(0, COLS).nth(row as usize).unwrap_or_default().trim_end().to_string()
    }

    /// Wait until `done` holds for the screen (or panic, showing it).
    fn until(&mut self, what: &str, done: impl Fn(&Tty) -> bool) {
        let deadline = Instant::now() + T;
        while !done(self) {
            assert!(
                Instant::now() < deadline,
                "{}: {what}: not so within {T:?}; the screen shows:\n{}\n(cursor at {:?})",
                self.name,
                self.text(),
                self.screen.screen().cursor_position()
            );
            self.pump(Duration::from_millis(50));
        }
    }

    /// Wait until the screen shows `s`.
    fn shows(&mut self, s: &str) {
        self.until(&format!("shows {s:?}"), |t| t.text().contains(s));
    }

    fn type_(&mut self, keys: &str) {
        self.type_bytes(keys.as_bytes());
    }

    fn type_bytes(&mut self, bytes: &[u8]) {
        let f = self.typing.as_mut().expect("terminal open");
        f.write_all(bytes).unwrap();
        f.flush().unwrap();
    }

    /// Type `keys` and wait until the prompt line shows them (the editor has taken them in).
    fn type_seen(&mut self, keys: &str) {
        self.type_(keys);
        self.until(&format!("typed {keys:?}"), |t| t.cursor_line().ends_with(keys.trim_end()));
    }

    /// Wait for the peer to end by itself.
    fn exits(&mut self) -> std::process::ExitStatus {
        let deadline = Instant::now() + T;
        loop {
            self.pump(Duration::from_millis(20));
            if let Some(s) = self.child.try_wait().unwrap() {
                return s;
            }
            assert!(Instant::now() < deadline, "{} did not leave; the screen shows:\n{}", self.name, self.text());
        }
    }
}

/// A `--json` peer on pipes.
struct Json {
    child: Child,
    stdin: ChildStdin,
    lines: mpsc::Receiver<Value>,
    seen: Vec<Value>,
    _dir: TmpDir,
}

impl Drop for Json {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn spawn_json(name: &str, port: u16, room: &str) -> Json {
    spawn_json_with(name, port, room, &[])
}

fn spawn_json_with(name: &str, port: u16, room: &str, extra: &[&str]) -> Json {
    let dir = tmpdir(name);
    let mut child = Command::new(BIN)
        .args(["--json", "--iface", "lo", "--port", &port.to_string(), "--room", room, "--name", name, "--data-dir"])
        .arg(&*dir)
        .args(extra)
        .env_remove("LANPEER_PASSPHRASE")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("lanpeer starts");
    let (tx, lines) = mpsc::channel();
    let out = child.stdout.take().unwrap();
    std::thread::spawn(move || {
        for l in BufReader::new(out).lines().map_while(Result::ok) {
            if let Ok(v) = serde_json::from_str::<Value>(&l)
                && tx.send(v).is_err()
            {
                break;
            }
        }
    });
    let stdin = child.stdin.take().unwrap();
    Json { child, stdin, lines, seen: Vec::new(), _dir: dir }
}

impl Json {
    fn send(&mut self, line: &str) {
        writeln!(self.stdin, "{line}").unwrap();
        self.stdin.flush().unwrap();
    }

    fn wait(&mut self, what: &str, pred: impl Fn(&Value) -> bool) -> Value {
        if let Some(v) = self.seen.iter().find(|v| pred(v)) {
            return v.clone();
        }
        let deadline = Instant::now() + T;
        loop {
            match self.lines.recv_timeout(deadline.saturating_duration_since(Instant::now())) {
                Ok(v) => {
                    self.seen.push(v.clone());
                    if pred(&v) {
                        return v;
                    }
                }
                Err(_) => panic!("no {what} within {T:?}; saw {:#?}", self.seen),
            }
        }
    }

    /// Take in what arrives for `d` (to check that something did not come).
    fn drain(&mut self, d: Duration) {
        let deadline = Instant::now() + d;
        while let Ok(v) = self.lines.recv_timeout(deadline.saturating_duration_since(Instant::now())) {
            self.seen.push(v);
        }
    }
}

/// A tty peer `ada` and a `--json` peer `other`, once they see each other; its data dir, the room
/// and the port.
fn pair(ada: &str, other: &str, env: &[(&str, &str)]) -> (Tty, Json, TmpDir, String, u16) {
    let (port, room) = net();
    let mut j = spawn_json(other, port, &room);
    let dir = tmpdir(ada);
    let mut t = spawn_tty(ada, port, &room, &dir, env);
    t.shows(&format!("* {other} joined"));
    j.wait("peer_joined", |v| v["event"] == "peer_joined" && v["name"] == ada);
    t.until("the prompt", |t| t.cursor_line() == format!("{ada}@{room}>"));
    (t, j, dir, room, port)
}

/// The number of colour escape sequences (SGR: `ESC [ ... m`) in `raw`.
fn colour_codes(raw: &[u8]) -> usize {
    let mut n = 0;
    let mut i = 0;
    while i + 1 < raw.len() {
        if raw[i] == 0x1b && raw[i + 1] == b'[' {
            let mut j = i + 2;
            while j < raw.len() && (raw[j].is_ascii_digit() || raw[j] == b';') {
                j += 1;
            }
            if j < raw.len() && raw[j] == b'm' {
                n += 1;
            }
            i = j;
        } else {
            i += 1;
        }
    }
    n
}

#[test]
fn a_half_typed_line_survives_an_incoming_chat_and_is_then_sent_whole() {
    let (mut ada, mut bea, _dir, room, _) = pair("ada", "bea", &[]);
    let prompt = format!("ada@{room}> ");
    ada.type_seen("I am typing a long ans");
    bea.send("Hello class");
    ada.shows("bea: Hello class");
    // The message is above the prompt, on a line of its own; the prompt keeps what was typed and
    // the cursor at its end.
    ada.until("the half-typed line kept", |t| t.cursor_line() == format!("{prompt}I am typing a long ans"));
    let text = ada.text();
    let hello = text.lines().position(|l| l.contains("bea: Hello class")).unwrap();
    let typed = text.lines().position(|l| l.contains("I am typing a long ans")).unwrap();
    assert!(hello < typed, "the message is printed above the prompt:\n{text}");
    assert!(!text.lines().nth(hello).unwrap().contains("typing"), "the message went into the typed line:\n{text}");
    let (_, col) = ada.screen.screen().cursor_position();
    assert_eq!(col as usize, prompt.len() + "I am typing a long ans".len(), "the cursor moved:\n{text}");
    // Typing goes on where it was, and the line is sent whole.
    ada.type_("wer\r");
    let c = bea.wait("the whole line", |v| v["event"] == "chat" && v["from_name"] == "ada");
    assert_eq!(c["text"], "I am typing a long answer");
}

#[test]
fn a_pasted_20_line_answer_arrives_as_one_answer_with_its_indentation() {
    let (mut ada, mut bea, _dir, _, _) = pair("ada", "bea", &[]);
    bea.send("/problem Loops | print a triangle");
    let p = bea.wait("the problem", |v| v["event"] == "problem" && v["own"] == true);
    let pid = p["id"].as_str().unwrap().to_string();
    let short = format!("{}-{}", &pid[..8], pid.rsplit('-').next().unwrap());
    ada.shows(&format!("posted problem {short}"));
    let mut code = String::from("def triangle(n):\n");
    for i in 0..17 {
        code.push_str(&format!("{}print(\"{}\\n\", {i})\n", "    ".repeat(1 + i % 3), "*".repeat(i + 1)));
    }
    code.push_str("\treturn None\n# 20 lines");
    assert_eq!(code.lines().count(), 20);
    ada.type_seen(&format!("/answer {short} "));
    ada.type_(&format!("{PASTE_START}{code}{PASTE_END}"));
    ada.shows("# 20 lines");
    ada.type_("\r");
    let a = bea.wait("the answer", |v| v["event"] == "answer" && v["from_name"] == "ada");
    assert_eq!(a["problem_id"], pid.as_str());
    assert_eq!(a["text"], code.as_str(), "one answer, every line and its indentation as pasted");
    bea.drain(Duration::from_millis(500));
    let n = bea.seen.iter().filter(|v| v["from_name"] == "ada" && v["own"] == false).count();
    assert_eq!(n, 1, "the paste was sent as one message: {:#?}", bea.seen);
}

#[test]
fn the_multi_line_editor_sends_at_a_dot_and_cancels_at_esc() {
    let (mut ada, mut bea, _dir, _, _) = pair("ada", "bea", &[]);
    // `/problem TITLE` alone opens it; the pasted body keeps its first line's indentation.
    ada.type_seen("/problem Squares");
    ada.type_("\r");
    ada.shows("The exercise \"Squares\": end with a line holding only .");
    let body = "  Print the squares:\n    for i in 1..=5 {\n        println!(\"{}\", i * i);\n    }";
    ada.type_(&format!("{PASTE_START}{body}{PASTE_END}"));
    ada.shows("println!");
    // A message that arrives meanwhile goes above; the editor's line stays right above the text.
    bea.send("while you write");
    ada.shows("bea: while you write");
    ada.type_("\r.\r");
    let p = bea.wait("the exercise", |v| v["event"] == "problem" && v["title"] == "Squares");
    assert_eq!(p["body"], body);
    let pid = p["id"].as_str().unwrap().to_string();
    let short = format!("{}-{}", &pid[..8], pid.rsplit('-').next().unwrap());
    // `/answer ID` alone: typed lines, Tab indents, Ctrl-D ends.
    ada.type_seen(&format!("/answer {short}"));
    ada.type_("\r");
    ada.shows("Your answer to");
    // Up, Left and Backspace cannot leave the text for the prompt line above it.
    ada.type_(&format!("{UP}\x1b[D\x7fx"));
    ada.until("x on the line below the prompt line", |t| t.cursor_line() == "x");
    assert!(ada.text().contains("Esc cancels\nx"), "{}", ada.text());
    ada.type_("\x7ffor x in xs:\r\tprint(x)\r\x04");
    let a = bea.wait("the answer", |v| v["event"] == "answer");
    assert_eq!(a["text"], "for x in xs:\n    print(x)");
    // Esc cancels: nothing is sent.
    ada.type_seen(&format!("/answer {short}"));
    ada.type_("\r");
    ada.until("the editor open again", |t| t.text().matches("Your answer to").count() == 2);
    ada.type_("not this one");
    ada.shows("not this one");
    ada.type_(ESC);
    ada.shows("(cancelled: nothing was sent)");
    ada.type_seen("after");
    ada.type_("\r");
    bea.wait("the next chat", |v| v["event"] == "chat" && v["text"] == "after");
    assert!(
        !bea.seen.iter().any(|v| v["text"].as_str().is_some_and(|t| t.contains("not this one"))),
        "a cancelled text was sent: {:#?}",
        bea.seen
    );
}

#[test]
fn tab_completes_a_peer_name_and_a_problem_id() {
    let (mut ada, mut bea, _dir, room, _) = pair("ada", "beatrice", &[]);
    let prompt = format!("ada@{room}> ");
    ada.type_("/msg bea\t");
    ada.until("the name completed", |t| t.cursor_line() == format!("{prompt}/msg beatrice"));
    ada.type_("hi there\r");
    let m = bea.wait("the private chat", |v| v["event"] == "chat" && v["text"] == "hi there");
    assert!(m["to"].is_string(), "to beatrice only: {m}");
    bea.send("/problem Loops | count to 3");
    let p = bea.wait("the problem", |v| v["event"] == "problem" && v["own"] == true);
    let pid = p["id"].as_str().unwrap().to_string();
    let short = format!("{}-{}", &pid[..8], pid.rsplit('-').next().unwrap());
    ada.shows(&format!("posted problem {short}"));
    ada.type_("/ans\t");
    ada.until("the command completed", |t| t.cursor_line() == format!("{prompt}/answer"));
    ada.type_("\t");
    ada.until("the id completed", |t| t.cursor_line() == format!("{prompt}/answer {short}"));
    ada.type_("1 2 3\r");
    let a = bea.wait("the answer", |v| v["event"] == "answer");
    assert_eq!((a["problem_id"].as_str(), a["text"].as_str()), (Some(pid.as_str()), Some("1 2 3")));
}

#[test]
fn earlier_lines_come_back_after_a_restart() {
    let (port, room) = net();
    let dir = tmpdir("hist");
    let prompt = format!("ada@{room}> ");
    let mut ada = spawn_tty("ada", port, &room, &dir, &[]);
    ada.until("the prompt", |t| t.cursor_line() == prompt.trim_end());
    ada.type_seen("the first line typed");
    ada.type_("\r");
    ada.shows("ada (you): the first line typed");
    ada.type_seen("and a second");
    ada.type_("\r");
    ada.shows("ada (you): and a second");
    // Ctrl-D on an empty line: the end of input.
    ada.type_("\x04");
    assert!(ada.exits().success());
    drop(ada);
    assert!(dir.join("prompt-history").exists());
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(dir.join("prompt-history")).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600, "what was typed is the owner's only");
    }

    let mut ada = spawn_tty("ada", port, &room, &dir, &[]);
    ada.until("the prompt", |t| t.cursor_line() == prompt.trim_end());
    ada.type_(UP);
    ada.until("Up recalls the last line", |t| t.cursor_line() == format!("{prompt}and a second"));
    ada.type_(UP);
    ada.until("and the one before", |t| t.cursor_line() == format!("{prompt}the first line typed"));
    ada.type_("\x15"); // Ctrl-U: clear.
    ada.type_(&format!("{CTRL_R}first"));
    ada.until("Ctrl-R finds it", |t| t.cursor_line().contains("`first': the first line typed"));
    ada.type_("\r");
    ada.shows("ada (you): the first line typed\n");
}

#[test]
fn colour_for_names_private_messages_and_errors_and_none_with_no_color() {
    let (mut ada, mut bea, _dir, room, _) = pair("ada", "bea", &[]);
    bea.send(&format!("/msg ada just for you in {room}"));
    ada.shows("just for you");
    ada.type_("/nosuch\r");
    ada.shows("! there is no command /nosuch");
    ada.pump(Duration::from_millis(200));
    assert!(colour_codes(&ada.raw) > 0);
    let s = ada.screen.screen();
    let rows: Vec<String> = s.rows(0, COLS).collect();
    let colour_at = |needle: &str| {
        let r = rows.iter().position(|l| l.contains(needle)).unwrap();
        let c = rows[r].find(needle).unwrap();
        s.cell(r as u16, c as u16).unwrap().fgcolor()
    };
    let private = colour_at("[private]");
    let error = colour_at("! there is no command");
    let name = colour_at("bea [private]");
    assert_ne!(private, vt100::Color::Default);
    assert_ne!(error, vt100::Color::Default);
    assert_ne!(name, vt100::Color::Default);
    assert!(private != error && name != private && name != error, "{name:?} {private:?} {error:?}");

    // NO_COLOR: the same lines, not one colour code.
    let (mut plain, mut cy, _dir2, _, _) = pair("ada", "cy", &[("NO_COLOR", "1")]);
    cy.send("/msg ada just for you");
    plain.shows("cy [private]: just for you");
    plain.type_("/nosuch\r");
    plain.shows("! there is no command /nosuch");
    plain.pump(Duration::from_millis(200));
    assert_eq!(colour_codes(&plain.raw), 0, "{:?}", String::from_utf8_lossy(&plain.raw));
}

#[test]
fn ctrl_c_clears_then_asks_then_leaves_and_closing_the_terminal_leaves() {
    let (mut ada, mut bea, dir, room, port) = pair("ada", "bea", &[]);
    let prompt = format!("ada@{room}> ");
    ada.type_seen("half a thought");
    ada.type_(CTRL_C);
    ada.until("Ctrl-C cleared the line", |t| t.cursor_line() == prompt.trim_end());
    ada.type_(CTRL_C);
    ada.shows("(Ctrl-C again leaves, as /quit does)");
    ada.type_(CTRL_C);
    assert!(ada.exits().success());
    let is_ada = |v: &Value| v["name"] == "ada";
    let left = bea.wait("ada leaving", |v| v["event"] == "peer_left" && is_ada(v));
    assert_eq!(left["reason"], "left");
    drop(ada);

    // Again, and then its window is closed: the terminal's master side goes away.
    bea.seen.clear();
    let mut ada = spawn_tty("ada", port, &room, &dir, &[]);
    bea.wait("ada again", |v| v["event"] == "peer_joined" && is_ada(v));
    ada.until("the prompt", |t| t.cursor_line() == prompt.trim_end());
    ada.type_seen("typing when the window closes");
    ada.typing = None;
    ada.stop.store(true, Ordering::Relaxed);
    let deadline = Instant::now() + T;
    while ada.child.try_wait().unwrap().is_none() {
        assert!(Instant::now() < deadline, "ada is still running with its terminal closed");
        std::thread::sleep(Duration::from_millis(20));
    }
    let again = bea.wait("ada leaving again", |v| v["event"] == "peer_left" && is_ada(v));
    assert_eq!(again["reason"], "left", "a closed terminal leaves gracefully");
}

#[test]
fn wide_characters_keep_the_cursor_where_it_belongs() {
    let (mut li, mut bea, _dir, room, _) = pair("李雷", "bea", &[]);
    // Each of these characters takes two columns.
    li.type_seen("日本語で書く");
    let at = |t: &Tty| t.screen.screen().cursor_position().1 as usize;
    let want = "李雷".len() / 3 * 2 + format!("@{room}> ").len() + "日本語で書く".len() / 3 * 2;
    assert_eq!(at(&li), want, "the cursor after the typed text:\n{}", li.text());
    bea.send("こんにちは 李雷");
    li.shows("bea: こんにちは 李雷");
    li.until("the typed text kept", |t| t.cursor_line().ends_with("日本語で書く"));
    assert_eq!(at(&li), want, "the cursor after a message above:\n{}", li.text());
    // Moving left over wide characters, and typing there.
    li.type_("\x1b[D\x1b[D");
    li.until("two to the left", |t| at(t) == want - 4);
    li.type_("x\r");
    let c = bea.wait("the chat", |v| v["event"] == "chat" && v["from_name"] == "李雷");
    assert_eq!(c["text"], "日本語でx書く");
}

#[test]
fn a_dumb_terminal_gets_the_plain_lines_without_colour_or_prompt() {
    let (port, room) = net();
    let mut bea = spawn_json("bea", port, &room);
    let dir = tmpdir("dumb");
    let mut ada = spawn_tty("ada", port, &room, &dir, &[("TERM", "dumb")]);
    ada.shows("* bea joined");
    bea.wait("peer_joined", |v| v["event"] == "peer_joined" && v["name"] == "ada");
    bea.send("/msg ada hello");
    ada.shows("bea [private]: hello");
    // No line editor: the terminal's own line discipline echoes, Enter sends the line.
    ada.type_("from a dumb terminal\r");
    let c = bea.wait("the chat", |v| v["event"] == "chat" && v["from_name"] == "ada");
    assert_eq!(c["text"], "from a dumb terminal");
    ada.shows("ada (you): from a dumb terminal");
    assert!(!ada.text().contains(&format!("ada@{room}>")), "a prompt on a dumb terminal:\n{}", ada.text());
    assert_eq!(colour_codes(&ada.raw), 0, "{:?}", String::from_utf8_lossy(&ada.raw));
}

#[test]
fn bytes_that_are_not_text_get_a_sentence_and_the_peer_goes_on() {
    let (mut ada, mut bea, _dir, _, _) = pair("ada", "bea", &[]);
    ada.type_bytes(b"caf\xe9 ");
    ada.shows("! the terminal sent something that is not UTF-8 text");
    ada.type_seen("still here");
    ada.type_("\r");
    let c = bea.wait("the next chat", |v| v["event"] == "chat" && v["from_name"] == "ada");
    assert_eq!(c["text"], "still here");
    assert!(ada.child.try_wait().unwrap().is_none());
}

#[test]
fn the_log_goes_above_the_prompt_too() {
    let (port, room) = net();
    let dir = tmpdir("log");
    let prompt = format!("ada@{room}>");
    let mut ada = spawn_tty("ada", port, &room, &dir, &[("LANPEER_LOG", "lanpeer=info")]);
    ada.until("the prompt", |t| t.cursor_line() == prompt);
    ada.type_seen("typed before anyone came");
    // bea's arrival is logged (info) while ada types.
    let _bea = spawn_json("bea", port, &room);
    ada.shows("peer joined");
    ada.shows("* bea joined");
    ada.until("the typed line kept", |t| t.cursor_line() == format!("{prompt} typed before anyone came"));
    let text = ada.text();
    assert!(
        !text.lines().any(|l| l.contains("peer joined") && l.contains("typed before")),
        "a log line went into the typed line:\n{text}"
    );
}

/// A one-line chat padded to the width of the reader's terminal (spaces, or wide characters), so
/// that the terminal would go on with its tail at the left margin, where it would read as another
/// person's message: lanpeer breaks the line itself, and the tail shows indented.
#[test]
fn a_chat_padded_to_the_width_forges_no_line_at_the_margin() {
    let (mut ada, mut bea, _dir, _room, _) = pair("ada", "bea", &[]);
    let forged = "FORGED 09:00:00  Ms Rivera: send me your password";
    // `hh:mm:ss  bea: ` is 15 columns: the tail starts the terminal's next row at these pads.
    let at = COLS as usize - 15;
    for pad in at - 3..=at + 1 {
        bea.send(&format!("{}{forged}", "-".repeat(pad)));
    }
    bea.send(&format!("x{}{forged}", "日".repeat((at - 1) / 2)));
    bea.send("END of the padded chats");
    ada.shows("bea: END of the padded chats");
    let rows: Vec<String> = ada.screen.screen().rows(0, COLS).collect();
    assert!(
        rows.iter().filter(|r| r.contains("send me your password")).count() == 6,
        "every padded chat is on the screen:\n{}",
        rows.join("\n")
    );
    for r in &rows {
        assert!(!r.contains("  Ms Rivera") || r.starts_with("          "), "a forged line:\n{}", rows.join("\n"));
        if !r.contains("bea: ") && r.contains("send me your password") {
            assert!(r.starts_with("          "), "the rest of a long line is indented: {r:?}");
        }
    }
}

/// Files at the terminal: a path with a blank completed by Tab and attached, the list of what is
/// attached, a file that arrives while a line is half typed (above the prompt, the line kept), a
/// chat and an answer of the editor that take the attached files (the answer's text empty).
#[test]
fn attached_files_are_listed_and_arriving_files_keep_the_prompt_whole() {
    let (port, room) = net();
    let (bea_dl, ada_dl) = (tmpdir("bea-dl"), tmpdir("ada-dl"));
    let mut bea = spawn_json_with("bea", port, &room, &["--downloads", bea_dl.to_str().unwrap()]);
    let dir = tmpdir("ada");
    let mut ada = spawn_tty_with("ada", port, &room, &dir, &[], &["--downloads", ada_dl.to_str().unwrap()]);
    ada.shows("* bea joined");
    bea.wait("peer_joined", |v| v["event"] == "peer_joined" && v["name"] == "ada");
    let prompt = format!("ada@{room}> ");
    ada.until("the prompt", |t| t.cursor_line() == prompt.trim_end());
    let src = tmpdir("files");
    std::fs::write(src.join("my answer.py"), "print(42)\n").unwrap();
    std::fs::write(src.join("notes.txt"), "bring a laptop\n").unwrap();
    let s = src.to_str().unwrap();

    // Tab completes the name with its blank, as the command reads it back.
    ada.type_(&format!("/attach {s}/my"));
    ada.type_("\t");
    ada.until("the path completed", |t| t.cursor_line().ends_with("/my\\ answer.py"));
    ada.type_("\r");
    ada.shows("Attached to your next message (1 file, 10 bytes; /attach - drops them):");
    ada.shows("+ my answer.py (10 bytes)");
    ada.until("the prompt back", |t| t.cursor_line() == prompt.trim_end());
    ada.type_seen("/attach");
    ada.type_("\r");
    ada.until("listed twice", |t| {
        t.text().matches("+ my answer.py (10 bytes)").count() == 2 && t.cursor_line() == prompt.trim_end()
    });

    // A file arrives while a line is half typed: above the prompt, the line and cursor kept.
    ada.type_seen("here is my answ");
    bea.send(&format!("/send {s}/notes.txt"));
    ada.shows("bea shared a file (15 bytes):");
    ada.shows("notes.txt (15 bytes) from bea is here");
    ada.until("the half-typed line kept", |t| t.cursor_line() == format!("{prompt}here is my answ"));
    let text = ada.text();
    assert!(text.contains(&format!("files from bea are saved in {}", ada_dl.display())), "{text}");
    let arrived = text.lines().position(|l| l.contains("from bea is here")).unwrap();
    let typed = text.lines().position(|l| l.contains("here is my answ")).unwrap();
    assert!(arrived < typed, "printed above the prompt:\n{text}");
    assert!(!text.lines().nth(arrived).unwrap().contains("answ"), "the line went into the typed one:\n{text}");
    let (_, col) = ada.screen.screen().cursor_position();
    assert_eq!(col as usize, prompt.len() + "here is my answ".len(), "the cursor moved:\n{text}");
    ada.type_("er\r");
    let c = bea.wait("the chat with the file", |v| v["event"] == "chat" && v["from_name"] == "ada");
    assert_eq!(c["text"], "here is my answer");
    assert_eq!(c["files"][0]["name"], "my answer.py");

    // The editor's answer may be the attached files alone.
    bea.send("/problem Squares | print them");
    let p = bea.wait("the problem", |v| v["event"] == "problem" && v["own"] == true);
    let pid = p["id"].as_str().unwrap().to_string();
    let short = format!("{}-{}", &pid[..8], pid.rsplit('-').next().unwrap());
    ada.shows(&format!("posted problem {short}"));
    ada.type_seen(&format!("/attach {s}/notes.txt"));
    ada.type_("\r");
    // Keys typed before the prompt is back could be taken for the terminal's answer to where
    // its cursor is: wait for it.
    ada.until("attached, and the prompt back", |t| {
        t.text().matches("+ notes.txt (15 bytes)").count() == 2 && t.cursor_line() == prompt.trim_end()
    });
    ada.type_seen(&format!("/answer {short}"));
    ada.type_("\r");
    ada.shows("Your answer to");
    ada.type_(".\r");
    let a = bea.wait("the answer", |v| v["event"] == "answer");
    assert_eq!((a["text"].as_str(), a["files"][0]["name"].as_str()), (Some(""), Some("notes.txt")));
    assert!(!ada.text().contains("nothing was sent"), "{}", ada.text());
    ada.shows(&format!("(you) answered {short}"));
}
