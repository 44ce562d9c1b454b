//! Files from the command line, with real `lanpeer --json` processes on loopback (each test with
//! a discovery port and a room of its own, data and downloads in temporary folders): `/send` of a
//! file, a folder and an empty file; `/attach` with an answer, a second version, `/status`, and
//! `lanpeer collect` while the teacher's peer runs (index.csv checked, hashes as `sha256sum`
//! prints them); the plain errors of a missing file, a file too big, a full disk and bad sizes.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use serde_json::Value;

mod common;
use common::TmpDir;

const BIN: &str = env!("CARGO_BIN_EXE_lanpeer");
/// Generous: a busy machine of two cores runs several of these at once.
const T: Duration = Duration::from_secs(30);

fn net() -> (u16, String) {
    (20_000 + rand::random_range(0..40_000u16), format!("clif-{}-{}", std::process::id(), rand::random::<u32>()))
}

/// A `lanpeer --json` process, its data and downloads folders, and the events it printed.
struct Proc {
    name: String,
    child: Child,
    stdin: Option<ChildStdin>,
    lines: mpsc::Receiver<Value>,
    seen: Vec<Value>,
    data: TmpDir,
    downloads: TmpDir,
}

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn spawn(name: &str, port: u16, room: &str, extra: &[&str]) -> Proc {
    spawn_in(name, port, room, TmpDir::new(&format!("lanpeer-clif-{name}")), extra)
}

fn spawn_in(name: &str, port: u16, room: &str, data: TmpDir, extra: &[&str]) -> Proc {
    let downloads = TmpDir::new(&format!("lanpeer-clif-dl-{name}"));
    let mut child = Command::new(BIN)
        .args(["--json", "--iface", "lo", "--name", name, "--room", room, "--port", &port.to_string()])
        .arg("--data-dir")
        .arg(&*data)
        .arg("--downloads")
        .arg(&*downloads)
        .args(extra)
        .env_remove("LANPEER_PASSPHRASE")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("lanpeer runs");
    let lines = common::json_lines(child.stdout.take().unwrap());
    let stdin = child.stdin.take();
    Proc { name: name.into(), child, stdin, lines, seen: Vec::new(), data, downloads }
}

impl Proc {
    fn send(&mut self, line: &str) {
        let s = self.stdin.as_mut().expect("stdin open");
        writeln!(s, "{line}").unwrap();
        s.flush().unwrap();
    }

    /// The next event matching `pred` that was not taken before (those already read first).
    fn take(&mut self, pred: impl Fn(&Value) -> bool) -> Value {
        if let Some(i) = self.seen.iter().position(&pred) {
            return self.seen.remove(i);
        }
        let deadline = Instant::now() + T;
        loop {
            match self.lines.recv_timeout(deadline.saturating_duration_since(Instant::now())) {
                Ok(v) if pred(&v) => return v,
                Ok(v) => self.seen.push(v),
                Err(_) => panic!("{}: no matching event within {T:?}; saw {:#?}", self.name, self.seen),
            }
        }
    }

    /// The next event of kind `event`.
    fn next(&mut self, event: &str) -> Value {
        self.take(|v| v["event"] == event)
    }

    /// Everything printed within `d` (to check that something did not come).
    fn drain(&mut self, d: Duration) {
        let deadline = Instant::now() + d;
        while let Ok(v) = self.lines.recv_timeout(deadline.saturating_duration_since(Instant::now())) {
            self.seen.push(v);
        }
    }

    /// Its `ready` event's id.
    fn id(&mut self) -> String {
        self.take(|v| v["event"] == "ready")["id"].as_str().unwrap().to_string()
    }
}

/// `sha256sum FILE`'s hash.
fn sha256sum(p: &Path) -> String {
    let out = Command::new("sha256sum").arg(p).output().expect("sha256sum runs");
    assert!(out.status.success());
    String::from_utf8(out.stdout).unwrap().split_whitespace().next().unwrap().to_string()
}

/// A `file` event for `name` of message `msg`: its saved path, checked against `original`.
fn saved(p: &mut Proc, msg: &str, name: &str, original: &Path) -> PathBuf {
    let e = p.take(|v| v["event"] == "file" && v["message_id"] == msg && v["name"] == name);
    let path = PathBuf::from(e["path"].as_str().unwrap());
    assert!(path.starts_with(&*p.downloads), "{}: saved under the downloads: {}", p.name, path.display());
    assert_eq!(e["sha256"], sha256sum(original).as_str(), "{name}: the event's hash is sha256sum's");
    assert_eq!(sha256sum(&path), sha256sum(original), "{name}: the saved file is the original");
    assert_eq!(e["size"], std::fs::metadata(original).unwrap().len());
    path
}

/// An `error` event's message, checked to be one plain sentence.
fn error(p: &mut Proc) -> String {
    let m = p.next("error")["message"].as_str().unwrap().to_string();
    assert!(!m.contains('\n') && !m.is_empty() && m.len() < 300, "one plain sentence: {m:?}");
    m
}

fn names(v: &Value) -> Vec<String> {
    v["files"].as_array().unwrap().iter().map(|f| f["name"].as_str().unwrap().to_string()).collect()
}

#[test]
fn a_file_a_folder_and_an_empty_file_reach_the_other_with_their_hashes() {
    let (port, room) = net();
    let mut ann = spawn("ann", port, &room, &[]);
    let mut ben = spawn("ben", port, &room, &[]);
    let (_, ben_id) = (ann.id(), ben.id());
    ann.take(|v| v["event"] == "peer_joined" && v["id"] == ben_id.as_str());
    let src = TmpDir::new("lanpeer-clif-src");
    std::fs::create_dir_all(src.join("lab 1/lib")).unwrap();
    std::fs::write(src.join("my notes.txt"), "notes\n").unwrap();
    std::fs::write(src.join("lab 1/main.py"), "print('hi')\n").unwrap();
    std::fs::write(src.join("lab 1/lib/util.py"), "x = 1\n").unwrap();
    let big: Vec<u8> = (0..3_000_000u32).map(|i| (i.wrapping_mul(2654435761) >> 13) as u8).collect();
    std::fs::write(src.join("data.bin"), &big).unwrap();
    std::fs::write(src.join("empty.txt"), b"").unwrap();
    let s = src.display();
    ann.send(&format!("/send \"{s}/my notes.txt\" '{s}/lab 1' {s}/data.bin {s}/empty.txt"));
    let own = ann.take(|v| v["event"] == "chat" && v["own"] == true);
    assert_eq!(own["text"], "", "a chat of the files alone");
    let want = ["my notes.txt", "lab 1/lib/util.py", "lab 1/main.py", "data.bin", "empty.txt"];
    assert_eq!(names(&own), want);
    let id = own["id"].as_str().unwrap().to_string();
    let got = ben.take(|v| v["event"] == "chat" && v["id"] == id.as_str());
    assert_eq!(names(&got), want);
    assert_eq!(got["files"][3]["sha256"], sha256sum(&src.join("data.bin")).as_str());
    for (name, original) in [
        ("my notes.txt", src.join("my notes.txt")),
        ("lab 1/main.py", src.join("lab 1/main.py")),
        ("lab 1/lib/util.py", src.join("lab 1/lib/util.py")),
        ("data.bin", src.join("data.bin")),
        ("empty.txt", src.join("empty.txt")),
    ] {
        let path = saved(&mut ben, &id, name, &original);
        assert!(path.ends_with(Path::new(name)), "{name} keeps its place in the folder: {}", path.display());
    }
    let empty = ben.downloads.join(&room).join(format!("ann ({})", &own["from"].as_str().unwrap()[..8]));
    assert_eq!(std::fs::metadata(empty.join("empty.txt")).unwrap().len(), 0, "the empty file is there, empty");

    // The same again: saved beside, never over the first.
    ann.send(&format!("/send {s}/empty.txt"));
    let again = ann.take(|v| v["event"] == "chat" && v["own"] == true)["id"].as_str().unwrap().to_string();
    let e = ben.take(|v| v["event"] == "file" && v["message_id"] == again.as_str());
    assert!(e["path"].as_str().unwrap().ends_with("empty (1).txt"), "{e}");
}

/// The teacher's peer takes files of 1 MiB at most, so a student's larger file stays missing.
#[test]
fn answers_with_files_a_second_version_status_and_collect() {
    let (port, room) = net();
    let mut teacher = spawn("teacher", port, &room, &["--role", "teacher", "--max-file", "1M"]);
    let mut sam = spawn("Sam", port, &room, &[]);
    let mut lea = spawn("Lea", port, &room, &[]);
    let (t_id, sam_id, lea_id) = (teacher.id(), sam.id(), lea.id());
    for id in [&sam_id, &lea_id] {
        teacher.take(|v| v["event"] == "peer_joined" && v["id"] == id.as_str());
    }
    for p in [&mut sam, &mut lea] {
        p.take(|v| v["event"] == "peer_joined" && v["id"] == t_id.as_str());
    }
    teacher.send("/quiz Loops | print 1 to 3");
    let pid = sam.next("problem")["id"].as_str().unwrap().to_string();
    // As the prompt shows it.
    let short = format!("{}-{}", &pid[..8], pid.rsplit('-').next().unwrap());
    lea.take(|v| v["event"] == "problem" && v["id"] == pid.as_str());

    let work = TmpDir::new("lanpeer-clif-sam");
    std::fs::create_dir_all(work.join("src")).unwrap();
    std::fs::write(work.join("main.py"), "for i in range(3): print(i)\n").unwrap();
    std::fs::write(work.join("src/util.py"), "def f(): pass\n").unwrap();
    let w = work.display();
    sam.send(&format!("/attach {w}/main.py {w}/src"));
    assert_eq!(names(&sam.next("attached")), ["main.py", "src/util.py"]);
    sam.send("/attach");
    assert_eq!(names(&sam.next("attached")), ["main.py", "src/util.py"], "/attach alone lists them");
    sam.send(&format!("/answer {pid} first try"));
    let v1 = sam.take(|v| v["event"] == "answer" && v["own"] == true);
    assert_eq!((v1["text"].as_str(), names(&v1)), (Some("first try"), vec!["main.py".into(), "src/util.py".into()]));
    sam.send("/attach");
    assert_eq!(names(&sam.next("attached")), Vec::<String>::new(), "sent: nothing is attached any more");
    let v1 = v1["id"].as_str().unwrap().to_string();
    saved(&mut teacher, &v1, "main.py", &work.join("main.py"));

    // Status: Sam has answered, Lea not yet.
    teacher.send(&format!("/status {short}"));
    let st = teacher.next("status");
    assert_eq!(st["problem_id"], pid.as_str());
    assert_eq!(st["answered"].as_array().unwrap().len(), 1);
    assert_eq!(
        (st["answered"][0]["from_name"].as_str(), st["answered"][0]["versions"].as_u64()),
        (Some("Sam"), Some(1))
    );
    let waiting: Vec<&str> = st["waiting"].as_array().unwrap().iter().map(|p| p["name"].as_str().unwrap()).collect();
    assert_eq!(waiting, ["Lea"]);

    // The second version: main.py changed after it was attached; the file as it is when sent goes.
    sam.send(&format!("/attach {w}/main.py"));
    sam.next("attached");
    std::fs::write(work.join("main.py"), "for i in range(1, 4):\n    print(i)\n").unwrap();
    sam.send(&format!("/answer {pid}"));
    let v2 = sam.take(|v| v["event"] == "answer" && v["own"] == true);
    assert_eq!((v2["text"].as_str(), names(&v2)), (Some(""), vec!["main.py".into()]), "the files alone");
    assert_eq!(v2["files"][0]["sha256"], sha256sum(&work.join("main.py")).as_str(), "the file as it was when sent");
    let v2 = v2["id"].as_str().unwrap().to_string();
    saved(&mut teacher, &v2, "main.py", &work.join("main.py"));
    teacher.send(&format!("/feedback {v2} good"));
    teacher.take(|v| v["event"] == "feedback" && v["own"] == true);

    // Lea answers with a file larger than the teacher's --max-file: it stays missing there.
    let lw = TmpDir::new("lanpeer-clif-lea");
    std::fs::write(lw.join("Lea's answer.py"), "print(1, 2, 3)\n").unwrap();
    std::fs::write(lw.join("data.bin"), vec![7u8; 2 << 20]).unwrap();
    lea.send(&format!("/attach \"{}/Lea's answer.py\" {}/data.bin", lw.display(), lw.display()));
    lea.next("attached");
    lea.send(&format!("/answer {pid} see the files"));
    let la = lea.take(|v| v["event"] == "answer" && v["own"] == true)["id"].as_str().unwrap().to_string();
    saved(&mut teacher, &la, "Lea's answer.py", &lw.join("Lea's answer.py"));
    let warned = teacher.take(|v| v["event"] == "warning");
    assert!(warned["message"].as_str().unwrap().contains("--max-file"), "{warned}");

    teacher.send(&format!("/status {pid}"));
    let st = teacher.next("status");
    let answered = st["answered"].as_array().unwrap();
    let rows: Vec<(&str, u64, u64, bool)> = answered
        .iter()
        .map(|a| {
            let f = (a["from_name"].as_str().unwrap(), a["versions"].as_u64().unwrap());
            (f.0, f.1, a["feedback"].as_u64().unwrap(), a["feedback_on_latest"].as_bool().unwrap())
        })
        .collect();
    assert_eq!(rows, [("Lea", 1, 0, false), ("Sam", 2, 1, true)]);
    assert_eq!(answered[1]["answer_id"], v2.as_str(), "the latest version");
    assert!(st["waiting"].as_array().unwrap().is_empty());

    // Collect while the teacher's peer runs.
    let out = TmpDir::new("lanpeer-clif-out");
    let dir = out.join("loops");
    let run = Command::new(BIN).arg("collect").arg(&short).arg(&dir).arg("--data-dir").arg(&*teacher.data).output();
    let run = run.unwrap();
    let said = String::from_utf8_lossy(&run.stdout);
    assert!(run.status.success(), "{said} {}", String::from_utf8_lossy(&run.stderr));
    assert!(said.contains("2 answers and 2 files written") && said.contains("1 file is not received yet"), "{said}");
    let sam_dir = dir.join(format!("Sam ({})", &sam_id[..8]));
    let lea_dir = dir.join(format!("Lea ({})", &lea_id[..8]));
    assert_eq!(std::fs::read_to_string(sam_dir.join("answer.txt")).unwrap(), "");
    assert_eq!(sha256sum(&sam_dir.join("main.py")), sha256sum(&work.join("main.py")), "the latest version's file");
    assert!(!sam_dir.join("src").exists(), "the first version's files are not collected");
    assert_eq!(std::fs::read_to_string(lea_dir.join("answer.txt")).unwrap(), "see the files");
    assert_eq!(sha256sum(&lea_dir.join("Lea's answer.py")), sha256sum(&lw.join("Lea's answer.py")));
    assert!(!lea_dir.join("data.bin").exists());
    let mut csv = csv::Reader::from_path(dir.join("index.csv")).unwrap();
    let header: Vec<String> = csv.headers().unwrap().iter().map(str::to_string).collect();
    assert_eq!(header[..6], ["student", "id", "time", "versions", "files", "sha256"]);
    let rows: Vec<Vec<String>> = csv.records().map(|r| r.unwrap().iter().map(str::to_string).collect()).collect();
    assert_eq!(rows.len(), 2);
    let (lea_row, sam_row) = (&rows[0], &rows[1]);
    assert_eq!((sam_row[0].as_str(), sam_row[1].as_str(), sam_row[3].as_str()), ("Sam", sam_id.as_str(), "2"));
    assert_eq!(sam_row[4], "main.py");
    assert_eq!(sam_row[5], sha256sum(&work.join("main.py")));
    assert!(sam_row[2].starts_with("20"), "a time: {}", sam_row[2]);
    assert_eq!((lea_row[0].as_str(), lea_row[3].as_str()), ("Lea", "1"));
    assert_eq!(lea_row[4], "Lea's answer.py | data.bin (missing: not received yet)");
    let hashes = format!("{} | {}", sha256sum(&lw.join("Lea's answer.py")), sha256sum(&lw.join("data.bin")));
    assert_eq!(lea_row[5], hashes);

    // Never over a collection: the folder is not empty now.
    let mut again = Command::new(BIN);
    let err = fails(again.arg("collect").arg(&pid).arg(&dir).arg("--data-dir").arg(&*teacher.data));
    assert!(err.contains("is not empty") && err.trim().lines().count() == 1, "{err}");
    let mut unknown = Command::new(BIN);
    let err = fails(unknown.args(["collect", "0000-9"]).arg(out.join("x")).arg("--data-dir").arg(&*teacher.data));
    assert!(err.contains("there is no problem 0000-9") && err.trim().lines().count() == 1, "{err}");
    assert!(!out.join("x").exists(), "nothing written for a problem that is not there");
}

/// Run to the end, expecting a failure: its stderr.
fn fails(c: &mut Command) -> String {
    let out = c.stdin(Stdio::null()).output().unwrap();
    assert!(!out.status.success());
    String::from_utf8_lossy(&out.stderr).into_owned()
}

#[test]
fn mistakes_with_files_are_one_plain_sentence_and_lose_nothing() {
    let (port, room) = net();
    let mut p = spawn("solo", port, &room, &["--max-file", "1K"]);
    p.id();
    let src = TmpDir::new("lanpeer-clif-err");
    std::fs::write(src.join("big.bin"), vec![1u8; 2000]).unwrap();
    std::fs::write(src.join("small file.txt"), "small\n").unwrap();
    let s = src.display();
    p.send(&format!("/send {s}/nope.py"));
    assert_eq!(error(&mut p), format!("there is no file or folder {s}/nope.py"));
    p.send(&format!("/attach {s}/big.bin"));
    let e = error(&mut p);
    assert!(e.contains("larger than the 1.0 KB a file may be (--max-file)"), "{e}");
    p.send(&format!("/attach \"{s}/small file.txt"));
    assert!(error(&mut p).contains("is not closed"));
    p.send(&format!("/attach \"{s}/small file.txt\""));
    assert_eq!(names(&p.next("attached")), ["small file.txt"]);
    // A refused message keeps its files attached.
    p.send("/answer 0000-1");
    let e = error(&mut p);
    assert!(e.contains("there is no problem 0000-1") && e.contains("the files stay attached"), "{e}");
    p.send("/attach");
    assert_eq!(names(&p.next("attached")), ["small file.txt"]);
    p.send("/attach -");
    assert_eq!(names(&p.next("attached")), Vec::<String>::new());
    p.send("/answer 0000-1");
    assert_eq!(error(&mut p), "usage: /answer PROBLEM-ID TEXT", "no text and nothing attached");
    p.send("after all");
    let c = p.take(|v| v["event"] == "chat" && v["own"] == true);
    assert_eq!((c["text"].as_str(), names(&c).len()), (Some("after all"), 0), "nothing attached after /attach -");
    p.drain(Duration::from_millis(300));
    assert!(!p.seen.iter().any(|v| v["event"] == "error"), "{:#?}", p.seen);

    // Bad sizes, on the command line and in the config file.
    let err = fails(Command::new(BIN).args(["--iface", "lo", "--max-file", "2X"]));
    assert!(err.contains("like 500M or 2G"), "{err}");
    let conf = src.join("lab.conf");
    std::fs::write(&conf, "max-files = lots\n").unwrap();
    let err = fails(Command::new(BIN).args(["--iface", "lo", "--config"]).arg(&conf));
    assert!(err.contains("like 500M or 2G"), "{err}");
}

/// A data folder on a disk with no room left: the files are refused with one sentence, and the
/// peer goes on.
#[cfg(target_os = "linux")]
#[test]
fn a_full_disk_is_one_plain_sentence() {
    let Some(disk) = common::TinyDisk::mount_or_skip(8 << 20, "a_full_disk_is_one_plain_sentence") else { return };
    let data = TmpDir(disk.path.join("data"));
    std::fs::create_dir_all(&*data).unwrap();
    std::fs::set_permissions(&*data, std::os::unix::fs::PermissionsExt::from_mode(0o700)).unwrap();
    let (port, room) = net();
    let mut p = spawn_in("full", port, &room, data, &[]);
    p.id();
    let src = TmpDir::new("lanpeer-clif-full");
    std::fs::write(src.join("a.txt"), "a\n").unwrap();
    p.send(&format!("/send {}/a.txt", src.display()));
    let e = error(&mut p);
    assert!(e.starts_with("the disk is full"), "{e}");
    p.send("still here");
    p.take(|v| v["event"] == "chat" && v["text"] == "still here");
    drop(p);
}
