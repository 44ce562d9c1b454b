//! Helpers shared by the in-process loopback tests: start nodes on `lo` with a port and room
//! unique to the test, and wait for events with a deadline.
#![allow(dead_code)]

use std::time::Duration;

use lanpeer::{Config, Event, Events, Node};

/// A node and its events.
pub struct Peer {
    pub node: Node,
    pub events: Events,
    pub name: String,
}

/// A discovery port and a room of our own, so tests running at once never meet.
pub fn unique_net() -> (u16, String) {
    let port = 20_000 + rand::random_range(0..40_000u16);
    (port, format!("test-{}-{}", std::process::id(), rand::random::<u32>()))
}

/// Config for a loopback peer; fast timers so that tests are quick.
pub fn config(name: &str, port: u16, room: &str) -> Config {
    Config {
        name: name.into(),
        room: room.into(),
        interfaces: vec!["lo".into()],
        discovery_port: port,
        beacon_interval: Duration::from_millis(200),
        dial_grace: Duration::from_millis(300),
        expiry: Duration::from_secs(3),
        ..Config::default()
    }
}

pub async fn start(name: &str, port: u16, room: &str) -> Peer {
    start_with(config(name, port, room)).await
}

pub async fn start_with(cfg: Config) -> Peer {
    let name = cfg.name.clone();
    let (node, mut events) = Node::start(cfg).await.expect("node starts");
    match events.recv().await {
        Some(Event::Ready { .. }) => {}
        other => panic!("first event should be ready, got {other:?}"),
    }
    Peer { node, events, name }
}

/// Wait (at most `within`) for an event matching `pred`; other events are skipped.
pub async fn wait_for(peer: &mut Peer, within: Duration, mut pred: impl FnMut(&Event) -> bool) -> Event {
    let name = peer.name.clone();
    tokio::time::timeout(within, async {
        loop {
            match peer.events.recv().await {
                Some(e) if pred(&e) => return e,
                Some(_) => continue,
                None => panic!("{name}: event stream ended"),
            }
        }
    })
    .await
    .unwrap_or_else(|_| panic!("{name}: no matching event within {within:?}"))
}

/// Wait until `peer` lists exactly `n` others.
pub async fn wait_listed(peer: &Peer, n: usize, within: Duration) {
    let deadline = tokio::time::Instant::now() + within;
    loop {
        let got = peer.node.peers().await.unwrap().len();
        if got == n {
            return;
        }
        assert!(tokio::time::Instant::now() < deadline, "{}: lists {got} peers, expected {n}", peer.name);
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Two peers, "a" and "b", in a room and on a discovery port of their own, once `a` lists `b`
/// (within `within`): (port, room, a, b).
pub async fn two_met(within: Duration) -> (u16, String, Peer, Peer) {
    let (port, room) = unique_net();
    let a = start("a", port, &room).await;
    let b = start("b", port, &room).await;
    wait_listed(&a, 1, within).await;
    (port, room, a, b)
}

/// No event matching `pred` arrives within `within`.
pub async fn assert_none(peer: &mut Peer, within: Duration, mut pred: impl FnMut(&Event) -> bool) {
    let r = tokio::time::timeout(within, async {
        while let Some(e) = peer.events.recv().await {
            if pred(&e) {
                return Some(e);
            }
        }
        None
    })
    .await;
    if let Ok(Some(e)) = r {
        panic!("{}: unexpected event {e:?}", peer.name);
    }
}

/// Is this event a message with this text?
pub fn is_text(e: &Event, want: &str) -> bool {
    match e {
        Event::Message(m) => match &m.body {
            lanpeer::Body::Chat { text }
            | lanpeer::Body::Answer { text, .. }
            | lanpeer::Body::Feedback { text, .. } => text == want,
            lanpeer::Body::Problem { title, .. } => title == want,
        },
        _ => false,
    }
}

/// Read a raw connection until the node closes it; true if it did within `within`.
pub async fn closed_within(s: &mut tokio::net::TcpStream, within: Duration) -> bool {
    use tokio::io::AsyncReadExt;
    let mut buf = [0u8; 4096];
    tokio::time::timeout(within, async {
        loop {
            match s.read(&mut buf).await {
                Ok(0) | Err(_) => return,
                Ok(_) => continue,
            }
        }
    })
    .await
    .is_ok()
}

/// A small tmpfs of our own (the test runs as root, as CI does), filled up on demand.
pub struct TinyDisk {
    pub path: std::path::PathBuf,
}

impl TinyDisk {
    /// A tmpfs of `bytes`, or None (with one line saying why `test` is skipped) for a user who
    /// is not root: mounting needs root. As root (CI) a failed mount fails the test.
    pub fn mount_or_skip(bytes: u64, test: &str) -> Option<Self> {
        let root = std::fs::read_to_string("/proc/self/status")
            .ok()
            .and_then(|s| {
                s.lines().find(|l| l.starts_with("Uid:")).and_then(|l| l.split_whitespace().nth(2)).map(|u| u == "0")
            })
            .unwrap_or(false);
        if !root {
            skip_note(&format!("{test} skipped: it mounts a small tmpfs to fill, which needs root"));
            return None;
        }
        Some(TinyDisk::mount(bytes))
    }

    pub fn mount(bytes: u64) -> Self {
        let path = std::env::temp_dir().join(format!("lanpeer-disk-{}-{}", std::process::id(), rand::random::<u32>()));
        std::fs::create_dir_all(&path).unwrap();
        let ok = std::process::Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={bytes}"), "tmpfs"])
            .arg(&path)
            .status()
            .is_ok_and(|s| s.success());
        assert!(ok, "this test mounts a small tmpfs at {}: run it as root", path.display());
        TinyDisk { path }
    }

    /// Take every free byte.
    pub fn fill(&self) {
        use std::io::Write;
        let mut f = std::fs::File::create(self.path.join("filler")).unwrap();
        for size in [64 << 10, 4 << 10, 1] {
            let chunk = vec![0u8; size];
            while f.write_all(&chunk).is_ok() {}
        }
    }

    pub fn free(&self) {
        std::fs::remove_file(self.path.join("filler")).unwrap();
    }
}

impl Drop for TinyDisk {
    fn drop(&mut self) {
        let _ = std::process::Command::new("umount").arg("-l").arg(&self.path).status();
        let _ = std::fs::remove_dir_all(&self.path);
    }
}

/// A scratch directory of its own in the temporary directory, removed when dropped (whether
/// the test passed or not).
pub struct TmpDir(pub std::path::PathBuf);

impl TmpDir {
    /// A new empty directory named after `tag`, this process and a random number.
    pub fn new(tag: &str) -> TmpDir {
        let d = std::env::temp_dir().join(format!("{tag}-{}-{}", std::process::id(), rand::random::<u32>()));
        std::fs::create_dir_all(&d).unwrap();
        // Its owner's only, as lanpeer makes a data folder (one open to others gets a warning).
        #[cfg(unix)]
        std::fs::set_permissions(&d, std::os::unix::fs::PermissionsExt::from_mode(0o700)).unwrap();
        TmpDir(d)
    }
}

impl std::ops::Deref for TmpDir {
    type Target = std::path::Path;

    fn deref(&self) -> &std::path::Path {
        &self.0
    }
}

impl Drop for TmpDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

impl AsRef<std::ffi::OsStr> for TmpDir {
    fn as_ref(&self) -> &std::ffi::OsStr {
        self.0.as_os_str()
    }
}

impl AsRef<std::path::Path> for TmpDir {
    fn as_ref(&self) -> &std::path::Path {
        &self.0
    }
}
pub mod member;

/// Say that a test is skipped, and why, in one line that shows even though the test passes
/// (written to the process's stderr, past the test harness's capture of `eprintln!`).
pub fn skip_note(line: &str) {
    use std::io::Write;
    let _ = writeln!(std::io::stderr(), "{line}");
}

/// The objects a `lanpeer --json` process prints on `stdout`, one a line, read on a thread of
/// their own (which panics on a line that is not JSON: the contract is one object a line).
pub fn json_lines(stdout: impl std::io::Read + Send + 'static) -> std::sync::mpsc::Receiver<serde_json::Value> {
    use std::io::BufRead;
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in std::io::BufReader::new(stdout).lines() {
            let Ok(line) = line else { break };
            let v = serde_json::from_str(&line).unwrap_or_else(|e| panic!("not JSON: {line:?}: {e}"));
            if tx.send(v).is_err() {
                break;
            }
        }
    });
    rx
}
