//! The Windows exe (`x86_64-pc-windows-gnu`, built by `.ci/run`) as a teacher would use it, run
//! under Wine inside a network namespace of its own that has nothing but `lo`, so that nothing
//! it sends can leave this computer: `--version`; `doctor --iface lo`; three peers in `--json`
//! on loopback (two joined with `--peer`, the third by beacons alone) that list each other,
//! chat, post a problem, answer it and give feedback, leave, come back on the same data dirs
//! with their ids and history; then `export` and `history`.
//!
//! Wine 8 lacks `ProcessPrng` (bcryptprimitives.dll), which Rust's standard library calls at
//! start: tests/support/wine/bcryptprimitives.c, built here with MinGW and put beside a copy of
//! the exe, gives it (Windows 10 and later have it; the release ships no such DLL).
//!
//! Wine creates every socket in `wineserver`, not in the Windows process: the test starts the
//! server of its own Wine prefix inside the namespace, and checks before any exe runs that
//! every server process of that prefix is in the namespace. The prefix is kept in the target
//! folder (`target/wine/prefix`, made once in about 10 s), one test at a time (a lock file).
//!
//! Skipped (one line) without the exe, Wine, MinGW (for the DLL) or root, unless
//! `LANPEER_REQUIRE_CROSS` names its target (see tests/support/cross.rs).
#![cfg(target_os = "linux")]

mod support;

use std::fs::{self, File};
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::process::{Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;
use support::cross;
use support::netns::{Lab, is_peer_id, need_root, random16, shown, text, wait_deadline};

const TRIPLE: &str = "x86_64-pc-windows-gnu";
const TEST: &str = "the Windows exe's test under Wine (tests/wine.rs)";
const SHIM_SOURCE: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/support/wine/bcryptprimitives.c");
const MINGW: &str = "x86_64-w64-mingw32-gcc";
/// For everything a peer does once Wine is up (a Windows process under Wine starts in well under
/// a second here; the margin is for a busy machine).
const T: Duration = Duration::from_secs(30);

/// A path of this computer as the Windows exe names it: Wine maps `/` to drive `Z:`.
fn win_path(p: &Path) -> String {
    format!("Z:{}", p.display().to_string().replace('/', "\\"))
}

/// The shim DLL, built from its source into the target folder when missing or older.
fn shim(dir: &Path) -> Result<PathBuf, String> {
    let dll = dir.join("bcryptprimitives.dll");
    let src_time = fs::metadata(SHIM_SOURCE).and_then(|m| m.modified()).map_err(|e| format!("{SHIM_SOURCE}: {e}"))?;
    if fs::metadata(&dll).and_then(|m| m.modified()).is_ok_and(|t| t >= src_time) {
        return Ok(dll);
    }
    let tmp = dir.join(format!("bcryptprimitives.{}.dll", std::process::id()));
    let out = Command::new(MINGW)
        .args(["-shared", "-O2", "-s", "-o"])
        .arg(&tmp)
        .arg(SHIM_SOURCE)
        .arg("-ladvapi32")
        .output()
        .map_err(|e| {
            format!("{MINGW} is needed to build the ProcessPrng shim ({e}); apt-get install gcc-mingw-w64-x86-64")
        })?;
    if !out.status.success() {
        return Err(format!("{MINGW} failed: {}", String::from_utf8_lossy(&out.stderr).trim()));
    }
    fs::rename(&tmp, &dll).map_err(|e| format!("{}: {e}", dll.display()))?;
    Ok(dll)
}

/// Wine for this test: its prefix (locked while the test runs), its server inside the lab's
/// namespace, and the environment of every Wine command. Dropped before the lab (declared
/// after it): the server is stopped, then the lab kills whatever is left in the namespace.
struct Wine {
    /// The lab's namespace, where every Wine process runs.
    ns: String,
    /// `WINEPREFIX`: Wine's "C: drive" and registry, made once and kept in the target folder.
    prefix: PathBuf,
    /// The exe, a copy beside the shim DLL.
    exe: PathBuf,
    /// `wineserver -f`, in the namespace: the one that creates every socket of the exe.
    server: Option<std::process::Child>,
    /// Held while the prefix is in use (one test at a time).
    _lock: File,
}

impl Wine {
    /// A command run by Wine in the namespace.
    fn command(&self, args: &[&str]) -> Command {
        let mut c = Command::new("ip");
        c.args(["netns", "exec", &self.ns, "wine"]).args(args);
        self.env(&mut c);
        c
    }

    fn env(&self, c: &mut Command) {
        c.env("WINEPREFIX", &self.prefix)
            .env("WINEDEBUG", "-all")
            // No Mono or Gecko installer, no menu entries; the shim DLL before Wine's own.
            .env("WINEDLLOVERRIDES", "mscoree,mshtml,winemenubuilder.exe=d;bcryptprimitives=n,b")
            .env_remove("DISPLAY")
            .env_remove("WAYLAND_DISPLAY");
    }

    /// Run `lanpeer.exe ARGS` to its end (killed after `limit`): (status, stdout, stderr).
    fn run(&self, args: &[&str], limit: Duration) -> (Option<ExitStatus>, String, String) {
        let exe = self.exe.to_str().expect("a UTF-8 path");
        let mut all = vec![exe];
        all.extend_from_slice(args);
        let mut child = self
            .command(&all)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("ip netns exec wine");
        // Read on threads, and waited for at most a few seconds after the exit: a Wine service
        // that the command started may hold the pipes long after it.
        let reader = |mut r: Box<dyn std::io::Read + Send>| {
            let (tx, rx) = std::sync::mpsc::channel();
            std::thread::spawn(move || {
                let mut b = Vec::new();
                let _ = r.read_to_end(&mut b);
                let _ = tx.send(String::from_utf8_lossy(&b).into_owned());
            });
            rx
        };
        let out = reader(Box::new(child.stdout.take().unwrap()));
        let err = reader(Box::new(child.stderr.take().unwrap()));
        let status = wait_deadline(&mut child, limit);
        if status.is_none() {
            let _ = child.kill();
            let _ = wait_deadline(&mut child, Duration::from_secs(5));
        }
        let take = |rx: std::sync::mpsc::Receiver<String>| rx.recv_timeout(Duration::from_secs(5)).unwrap_or_default();
        (status, take(out), take(err))
    }

    /// `lanpeer.exe ARGS`, which must succeed: its stdout.
    fn ok(&self, args: &[&str]) -> String {
        let (status, out, err) = self.run(args, T);
        assert!(status.is_some_and(|s| s.success()), "lanpeer.exe {args:?}: {}\n{out}\n{err}", shown(status));
        out
    }
}

impl Drop for Wine {
    fn drop(&mut self) {
        // Ends every Wine process of the prefix, then the server itself.
        let mut k = Command::new("ip");
        k.args(["netns", "exec", &self.ns, "wineserver", "-k"]).stdin(Stdio::null()).stdout(Stdio::null());
        self.env(&mut k);
        if let Ok(mut c) = k.spawn()
            && wait_deadline(&mut c, Duration::from_secs(10)).is_none()
        {
            let _ = c.kill();
        }
        if let Some(s) = self.server.as_mut() {
            if wait_deadline(s, Duration::from_secs(5)).is_none() {
                let _ = s.kill();
            }
            let _ = s.wait();
        }
    }
}

/// The network namespace a process is in (`net:[N]`), or None when it is gone.
fn netns_of(pid: &str) -> Option<String> {
    fs::read_link(format!("/proc/{pid}/ns/net")).ok().map(|p| p.display().to_string())
}

/// The pids of the Wine servers of `prefix`: the processes whose working folder is the
/// prefix's server folder (`.../server-<device>-<inode>`, in hex, as Wine names it).
fn servers_of(prefix: &Path) -> Vec<String> {
    let Ok(m) = fs::metadata(prefix) else { return Vec::new() };
    let tail = format!("/server-{:x}-{:x}", m.dev(), m.ino());
    let mut pids = Vec::new();
    for e in fs::read_dir("/proc").into_iter().flatten().flatten() {
        let pid = e.file_name().to_string_lossy().into_owned();
        if pid.bytes().all(|b| b.is_ascii_digit())
            && fs::read_link(e.path().join("cwd")).is_ok_and(|cwd| cwd.to_string_lossy().ends_with(&tail))
        {
            pids.push(pid);
        }
    }
    pids
}

/// Wine ready in the lab's namespace, or why it cannot be.
fn wine(lab: &mut Lab, exe: &Path) -> Result<Wine, String> {
    let dir = cross::target_dir().join("wine");
    fs::create_dir_all(&dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    let dll = shim(&dir)?;
    let lock = File::create(dir.join("prefix.lock")).map_err(|e| format!("the prefix's lock: {e}"))?;
    lock.lock().map_err(|e| format!("the prefix's lock: {e}"))?;
    let run_dir = lab.dir.join("win");
    fs::create_dir_all(&run_dir).map_err(|e| format!("{}: {e}", run_dir.display()))?;
    let copy = run_dir.join("lanpeer.exe");
    fs::hard_link(exe, &copy)
        .or_else(|_| fs::copy(exe, &copy).map(|_| ()))
        .map_err(|e| format!("copy of the exe: {e}"))?;
    fs::copy(&dll, run_dir.join("bcryptprimitives.dll")).map_err(|e| format!("copy of the DLL: {e}"))?;
    let mut w = Wine { ns: lab.switch.clone(), prefix: dir.join("prefix"), exe: copy, server: None, _lock: lock };
    let ns_id = fs::metadata(format!("/run/netns/{}", w.ns))
        .map(|m| format!("net:[{}]", m.ino()))
        .map_err(|e| format!("cannot read the namespace's id: {e}"))?;

    // A server of this prefix left from a run that was killed: stopped (we hold the lock, so
    // nobody uses it).
    let mut k = Command::new("wineserver");
    k.arg("-k").stdout(Stdio::null()).stderr(Stdio::null());
    w.env(&mut k);
    if let Ok(mut c) = k.spawn() {
        let _ = wait_deadline(&mut c, Duration::from_secs(10));
    }
    if !w.prefix.join("system.reg").exists() {
        let t0 = Instant::now();
        let mut c = w
            .command(&["wineboot", "--init"])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .spawn()
            .map_err(|e| format!("wine: {e}"))?;
        let status = wait_deadline(&mut c, Duration::from_secs(180));
        if !status.is_some_and(|s| s.success()) {
            let _ = c.kill();
            return Err(format!("wineboot --init: {}", shown(status)));
        }
        eprintln!("wine prefix {} made in {:?}", w.prefix.display(), t0.elapsed());
    }
    // The server, in the namespace, in the foreground, kept until the test ends.
    let mut s = Command::new("ip");
    s.args(["netns", "exec", &w.ns, "wineserver", "-p", "-f"]).stdin(Stdio::null());
    w.env(&mut s);
    w.server = Some(s.spawn().map_err(|e| format!("wineserver: {e}"))?);
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let pids = servers_of(&w.prefix);
        if let Some(out) = pids.iter().find(|p| netns_of(p).is_some_and(|n| n != ns_id)) {
            return Err(format!("a Wine server of the prefix (pid {out}) runs outside the namespace"));
        }
        if !pids.is_empty() {
            break;
        }
        if Instant::now() > deadline {
            return Err("the Wine server did not start within 10 s".into());
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    // Wine's own services (services.exe, winedevice.exe...) start with the first Windows
    // process and outlive it: started here, on no pipe of the test's.
    let mut c = w
        .command(&["wineboot"])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .map_err(|e| format!("wine: {e}"))?;
    let status = wait_deadline(&mut c, Duration::from_secs(60));
    if !status.is_some_and(|s| s.success()) {
        let _ = c.kill();
        return Err(format!("wineboot: {}", shown(status)));
    }
    Ok(w)
}

/// Why the Windows exe cannot be run here, if it cannot.
fn missing(exe: &Path) -> Result<(), String> {
    cross::fresh(exe, TRIPLE)?;
    Command::new("wine")
        .arg("--version")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .map_err(|e| format!("wine is needed ({e}); apt-get install wine64"))?;
    need_root().map_err(|e| format!("Wine runs only in a network namespace of its own: {e}"))
}

#[test]
fn the_windows_exe_runs_a_lesson_under_wine() {
    let exe = cross::built(TRIPLE, "lanpeer.exe");
    if let Err(why) = missing(&exe) {
        return cross::skip(TEST, TRIPLE, &why);
    }
    let t_all = Instant::now();
    let mut lab = match Lab::loopback("lpwi", &["ann", "ben", "cara"]) {
        Ok(l) => l,
        Err(why) => return cross::skip(TEST, TRIPLE, &format!("cannot make its network namespace: {why}")),
    };
    let wine = match wine(&mut lab, &exe) {
        Ok(w) => w,
        Err(why) => return cross::skip(TEST, TRIPLE, &why),
    };
    let t_ready = t_all.elapsed();

    // ---- 1. The version.
    let out = wine.ok(&["--version"]);
    assert_eq!(out.trim(), format!("lanpeer {}", env!("CARGO_PKG_VERSION")));

    // ---- 2. The doctor on loopback: beacons to 127.0.0.1, never the limited broadcast.
    let port = (20_000 + random16() % 40_000).to_string();
    let room = format!("wine-{}", lab.tag);
    let ann_dir = win_path(&lab.hosts[0].data_dir);
    let doc = wine.ok(&["doctor", "--iface", "lo", "--port", &port, "--data-dir", &ann_dir]);
    println!("{doc}");
    let lo = doc.lines().find(|l| l.contains("127.0.0.1") && l.contains("USED")).unwrap_or_else(|| panic!("{doc}"));
    assert!(lo.contains("beacons to 127.0.0.1 ") && lo.contains("this computer only"), "{lo}");
    assert!(!doc.contains("255.255.255.255"), "{doc}");
    assert!(doc.contains("MiB free on its disk"), "the free space is checked on Windows too: {doc}");
    assert!(doc.contains("Nothing wrong found."), "{doc}");
    let (status, _, err) = wine.run(&["doctor", "--iface", "nosuchif0"], T);
    assert!(!status.is_some_and(|s| s.success()));
    assert!(err.contains("lanpeer: ") && !err.contains("panicked"), "{err}");

    // ---- 3. Three peers: ann (teacher), ben (given ann with --peer), cara (beacons alone).
    let base = 20_000 + random16() % 40_000;
    let tcp: Vec<String> = (0..3).map(|i| (base + i).to_string()).collect();
    for h in &mut lab.hosts {
        h.program = vec!["wine".into(), wine.exe.clone().into()];
        h.data_dir_arg = Some(win_path(&h.data_dir).into());
    }
    let spawn = |lab: &mut Lab, i: usize| {
        let (port, room, tcp, wine_env) = (port.clone(), room.clone(), tcp.clone(), &wine);
        lab.spawn_with(i, |c| {
            wine_env.env(c);
            c.args(["--iface", "lo", "--port", &port, "--room", &room, "--tcp-port", &tcp[i]]);
            if i == 0 {
                c.args(["--role", "teacher"]);
            } else if i == 1 {
                c.args(["--peer", &format!("127.0.0.1:{}", tcp[0])]);
            }
        });
    };
    let ready = |lab: &mut Lab, i: usize| -> String {
        let (_, r) = lab.hosts[i].expect(0, T, "ready", |v| text(v, "event") == "ready");
        assert_eq!(text(&r, "listen"), format!("127.0.0.1:{}", tcp[i]), "{r}");
        let id = text(&r, "id").to_string();
        assert!(is_peer_id(&id), "{r}");
        lab.hosts[i].id = id.clone();
        id
    };
    let t_peers = Instant::now();
    spawn(&mut lab, 0);
    spawn(&mut lab, 1);
    let ann = ready(&mut lab, 0);
    let ben = ready(&mut lab, 1);
    spawn(&mut lab, 2);
    let cara = ready(&mut lab, 2);
    let ids = [ann.clone(), ben.clone(), cara.clone()];
    for i in 0..3 {
        for j in (0..3).filter(|&j| j != i) {
            let who = ids[j].clone();
            lab.hosts[i].expect(0, T, "peer_joined", |v| text(v, "event") == "peer_joined" && text(v, "id") == who);
        }
        let mut others: Vec<String> = ids.iter().filter(|id| **id != ids[i]).cloned().collect();
        others.sort();
        assert_eq!(lab.hosts[i].listed(), others, "{} lists the other two", lab.hosts[i].name);
    }
    let t_met = t_peers.elapsed();
    let (_, joined) = lab.hosts[1].expect(0, T, "ann", |v| text(v, "event") == "peer_joined" && text(v, "id") == ann);
    assert_eq!(joined["role"], "teacher", "{joined}");

    // ---- 4. A lesson: chat (with text that is not ASCII), a private word, a problem, an
    // answer over two lines, feedback.
    let chat = "Grüße aus Windows — ça marche";
    let m: Vec<usize> = lab.hosts.iter().map(|h| h.mark()).collect();
    lab.hosts[0].send(chat);
    for (h, &since) in lab.hosts.iter().zip(&m).skip(1) {
        let (_, c) = h.expect(since, T, "the chat", |v| text(v, "event") == "chat" && text(v, "text") == chat);
        assert_eq!((text(&c, "from"), text(&c, "from_name")), (ann.as_str(), "ann"), "{c}");
    }
    lab.hosts[1].send("/msg ann for ann only");
    lab.hosts[0].expect(m[0], T, "ben's private chat", |v| text(v, "text") == "for ann only" && text(v, "to") == ann);
    lab.hosts[0].send("/problem Loops | Print the numbers 1 to 10.\\nUse a for loop.");
    let (_, p) = lab.hosts[1].expect(m[1], T, "the problem", |v| text(v, "event") == "problem");
    assert_eq!((text(&p, "title"), text(&p, "body")), ("Loops", "Print the numbers 1 to 10.\nUse a for loop."));
    let pid = text(&p, "id").to_string();
    // The short form of the id, as the prompt shows it.
    lab.hosts[1].send(&format!("/answer {}{} for i in range(1, 11):\\n    print(i)", &pid[..8], &pid[32..]));
    let (_, a) = lab.hosts[0].expect(m[0], T, "the answer", |v| text(v, "event") == "answer");
    assert_eq!((text(&a, "problem_id"), text(&a, "text")), (pid.as_str(), "for i in range(1, 11):\n    print(i)"));
    let aid = text(&a, "id").to_string();
    lab.hosts[0].send(&format!("/feedback {aid} Good. Now only the even ones."));
    for (h, &since) in lab.hosts.iter().zip(&m).skip(1) {
        let (_, f) = h.expect(since, T, "the feedback", |v| text(v, "event") == "feedback");
        assert_eq!((text(&f, "answer_id"), text(&f, "text")), (aid.as_str(), "Good. Now only the even ones."));
    }
    assert!(lab.hosts[2].all(m[2], |v| text(v, "text") == "for ann only").is_empty(), "cara got ben's private chat");

    // ---- 5. Everyone leaves; the others see it at once.
    let m0 = lab.hosts[0].mark();
    lab.hosts[1].send("/quit");
    let (_, left) =
        lab.hosts[0].expect(m0, T, "ben's leave", |v| text(v, "event") == "peer_left" && text(v, "id") == ben);
    assert_eq!(text(&left, "reason"), "left", "{left}");
    lab.hosts[2].stdin.take();
    lab.hosts[0].send("/quit");
    for h in &mut lab.hosts {
        let status = wait_deadline(h.child.as_mut().unwrap(), T);
        assert!(status.is_some_and(|s| s.success()), "{}: {}\n{}", h.name, shown(status), h.stderr_tail(20));
    }

    // ---- 6. Back on the same data dirs: the same ids, the history kept.
    spawn(&mut lab, 0);
    spawn(&mut lab, 1);
    assert_eq!(ready(&mut lab, 0), ann, "ann keeps her id");
    assert_eq!(ready(&mut lab, 1), ben, "ben keeps his id");
    let b = ann.clone();
    lab.hosts[1].expect(0, T, "ann again", |v| text(v, "event") == "peer_joined" && text(v, "id") == b);
    let m1 = lab.hosts[1].mark();
    lab.hosts[1].send("/history");
    let (_, h) = lab.hosts[1].expect(m1, T, "the history", |v| text(v, "event") == "history");
    let msgs = h["messages"].as_array().expect("messages");
    let has =
        |kind: &str, field: &str, want: &str| msgs.iter().any(|v| text(v, "event") == kind && text(v, field) == want);
    assert!(has("chat", "text", chat), "{h}");
    assert!(has("problem", "id", &pid), "{h}");
    assert!(has("answer", "id", &aid), "{h}");
    assert!(has("feedback", "answer_id", &aid), "{h}");
    assert!(has("chat", "text", "for ann only"), "{h}");
    let m0 = lab.hosts[0].mark();
    lab.hosts[1].send("back again");
    lab.hosts[0].expect(m0, T, "a chat after the restart", |v| text(v, "text") == "back again");
    lab.hosts[1].send("/quit");
    lab.hosts[0].send("/quit");
    for h in &mut lab.hosts[..2] {
        let status = wait_deadline(h.child.as_mut().unwrap(), T);
        assert!(status.is_some_and(|s| s.success()), "{}: {}", h.name, shown(status));
    }

    // ---- 7. The teacher's export and history, read from the data dir.
    let json = wine.ok(&["export", "--format", "json", "--data-dir", &ann_dir]);
    let v: Value = serde_json::from_str(&json).unwrap_or_else(|e| panic!("{e}: {json}"));
    let prob =
        v.as_array().and_then(|a| a.iter().find(|p| text(p, "title") == "Loops")).unwrap_or_else(|| panic!("{v}"));
    assert_eq!(prob["answers"][0]["author_name"], "ben", "{prob}");
    assert_eq!(prob["answers"][0]["feedback"][0]["text"], "Good. Now only the even ones.", "{prob}");
    let csv = wine.ok(&["export", "--format", "csv", "--data-dir", &ann_dir]);
    let rows: Vec<csv::StringRecord> = csv::Reader::from_reader(csv.as_bytes())
        .records()
        .collect::<Result<_, _>>()
        .unwrap_or_else(|e| panic!("{e}: {csv}"));
    let kinds: Vec<&str> = rows.iter().map(|r| r.get(2).unwrap_or("")).collect();
    assert_eq!(kinds, ["problem", "answer", "feedback"], "{csv}");
    assert_eq!(rows[1].get(8), Some("for i in range(1, 11):\n    print(i)"), "{csv}");
    let ben_dir = win_path(&lab.hosts[1].data_dir);
    let hist = wine.ok(&["history", "--data-dir", &ben_dir]);
    assert!(hist.contains(chat) && hist.contains("Loops") && hist.contains("back again"), "{hist}");
    let (status, _, err) = wine.run(&["export", "--data-dir", "Z:\\nonexistent\\lanpeer"], T);
    assert!(!status.is_some_and(|s| s.success()), "{err}");
    assert_eq!(err.lines().filter(|l| !l.trim().is_empty()).count(), 1, "one plain sentence: {err:?}");

    for h in &lab.hosts {
        let log = fs::read_to_string(h.stderr_path()).unwrap_or_default();
        assert!(!log.contains("panicked"), "{}: {log}", h.name);
    }
    println!("wine: ready in {:?}, three peers met in {:?}, whole test {:?}", t_ready, t_met, t_all.elapsed());
    drop(wine);
}
