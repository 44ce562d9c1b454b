//! `lanpeer doctor` on loopback only (`--iface lo`): it must report the interface it would use,
//! the ports, and whether a peer answers, without starting a peer or sending a beacon.

mod common;

use std::io::{BufRead, BufReader, Read};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

const BIN: &str = env!("CARGO_BIN_EXE_lanpeer");

/// Run the doctor (killed after 20 s): (exit success, stdout).
fn doctor(args: &[&str]) -> (bool, String) {
    let mut child = Command::new(BIN)
        .arg("doctor")
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("doctor starts");
    let deadline = Instant::now() + Duration::from_secs(20);
    let status = loop {
        if let Some(s) = child.try_wait().unwrap() {
            break s;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            panic!("the doctor did not finish within 20 s");
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    let mut out = String::new();
    child.stdout.take().unwrap().read_to_string(&mut out).unwrap();
    (status.success(), out)
}

struct Kill(Child);
impl Drop for Kill {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[test]
fn doctor_on_loopback() {
    let port = 20_000 + (std::process::id() % 20_000) as u16;
    let dir = std::env::temp_dir().join(format!("lanpeer-doctor-{}-{port}", std::process::id()));
    let mut peer = Kill(
        Command::new(BIN)
            .args(["--json", "--iface", "lo", "--name", "Doc", "--room", &format!("doctor-{port}"), "--port"])
            .arg(port.to_string())
            .arg("--data-dir")
            .arg(&dir)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("peer starts"),
    );
    let mut lines = BufReader::new(peer.0.stdout.take().unwrap()).lines();
    let ready = lines.next().expect("a ready line").unwrap();
    let v: serde_json::Value = serde_json::from_str(&ready).unwrap();
    let listen = v["listen"].as_str().expect("listen").to_string();
    assert!(listen.starts_with("127.0.0.1:"), "{ready}");
    let tcp: u16 = listen.rsplit(':').next().unwrap().parse().unwrap();

    // The running peer answers; a closed port does not.
    let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let (ok, out) = doctor(&[
        "--iface",
        "lo",
        "--port",
        &port.to_string(),
        "--tcp-port",
        &tcp.to_string(),
        "--peer",
        &listen,
        "--peer",
        &format!("127.0.0.1:{closed}"),
    ]);
    assert!(!ok, "a peer that does not answer is a problem:\n{out}");
    assert!(out.contains("lo ") && out.contains("127.0.0.1") && out.contains("USED"), "{out}");
    // Where this system's loopback beacons go (Linux: every peer of the computer gets them).
    let lo = out.lines().find(|l| l.contains("127.0.0.1") && l.contains("USED")).unwrap();
    assert!(lo.contains("beacons to 127.255.255.255") && lo.contains("this computer only"), "{lo}");
    assert!(out.contains(&format!("{listen}: a lanpeer peer answers (an open room)")), "{out}");
    assert!(out.contains(&format!("127.0.0.1:{closed}: PROBLEM: nothing listens on that port")), "{out}");
    assert!(out.contains("the discovery socket opens, and may send broadcasts"), "{out}");
    assert!(out.contains("already open in another program"), "the peer holds the UDP port:\n{out}");
    assert!(out.contains("the port is in use"), "the peer holds the TCP port:\n{out}");

    // Only the live peer: nothing wrong. An interface that does not exist: said so.
    let (ok, out) = doctor(&["--iface", "lo", "--port", &port.to_string(), "--peer", &listen]);
    assert!(ok, "{out}");
    assert!(out.contains("Nothing wrong found."), "{out}");
    let (ok, out) = doctor(&["--iface", "nosuch0", "--port", &port.to_string()]);
    assert!(!ok && out.contains("PROBLEM: there is no usable network interface named nosuch0"), "{out}");
    // A name that does not resolve.
    let (ok, out) = doctor(&["--iface", "lo", "--port", &port.to_string(), "--peer", "no-such-host.invalid"]);
    assert!(!ok && out.contains("does not resolve"), "{out}");

    drop(peer);
    let _ = std::fs::remove_dir_all(dir);
}

/// The doctor checks the data folder: it can be written, and its disk has room (a full disk is a
/// problem said in plain words).
#[test]
fn doctor_checks_the_data_folder() {
    let port = 20_000 + (std::process::id() % 20_000) as u16 + 1;
    let dir = std::env::temp_dir().join(format!("lanpeer-doctor-data-{}", std::process::id()));
    let (ok, out) = doctor(&["--iface", "lo", "--port", &port.to_string(), "--data-dir", &dir.display().to_string()]);
    assert!(ok, "{out}");
    assert!(out.contains(&format!("History (data folder {})", dir.display())), "{out}");
    assert!(out.contains("can be written") && out.contains("MiB free on its disk"), "{out}");
    assert!(!dir.exists(), "the doctor creates no folder");

    // A small disk: little room left, then none.
    let Some(disk) = common::TinyDisk::mount_or_skip(4 << 20, "doctor_checks_the_data_folder") else { return };
    let small = disk.path.join("data").display().to_string();
    let (ok, out) = doctor(&["--iface", "lo", "--port", &port.to_string(), "--data-dir", &small]);
    assert!(!ok && out.contains("PROBLEM: only 4 MiB free") && out.contains("free some disk space"), "{out}");
    disk.fill();
    let (ok, out) = doctor(&["--iface", "lo", "--port", &port.to_string(), "--data-dir", &small]);
    assert!(!ok && out.contains("PROBLEM: its disk is full") && out.contains("free some disk space"), "{out}");
}
