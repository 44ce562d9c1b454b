//! Rooms that keep outsiders out, over a real (virtual) LAN: five `lanpeer --json` processes in
//! their own network namespaces on one bridge, and tcpdump on the bridge.
//!
//! ```text
//!   <tag>sw : bridge br0 (tcpdump -i br0 runs here), ports s1..s5
//!   <tag>h1 : ada  room "lab",  passphrase from LANPEER_PASSPHRASE     10.232.0.11
//!   <tag>h2 : bob  room "lab",  the same passphrase from --passphrase-file 10.232.0.12
//!   <tag>h3 : eve  room "lab",  a wrong passphrase (one letter off)    10.232.0.13
//!   <tag>h4 : cy   room "lab2", open (no passphrase)                   10.232.0.14
//!   <tag>h5 : dee  room "lab2", open                                   10.232.0.15
//! ```
//!
//! Checks: who lists whom, who receives what, warnings; a marker text chatted in each room never
//! appears in the capture, while the capture did see the session traffic (TCP payload to and
//! from the session ports, and the plaintext beacons); random UDP datagrams to every port of
//! every peer, forged beacons, and random bytes on every session port leave every peer alive
//! and serving.
//!
//! Needs root, `ip` (iproute2), `tcpdump` and `python3`; without them the test fails, unless
//! `LANPEER_SKIP_NETNS=1` is set. A guard kills every child and deletes every namespace, also on
//! panic; every wait has a deadline. `cargo test --test netns_security -- --nocapture` shows the
//! measured figures.
#![cfg(target_os = "linux")]

mod support;

use std::fs::{self, File};
use std::net::{Ipv4Addr, SocketAddr};
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::thread;
use std::time::{Duration, Instant};

use support::netns::{Host, Lab, lab_or_skip, ms, need_root, need_tool, text, wait_deadline};

const PASS: &str = "correct horse battery staple";
const WRONG: &str = "correct horse battery stapler";

/// Who runs where: host N (1..=5) is `WHO[N - 1]`, (name, room).
const WHO: [(&str, &str); 5] = [("ada", "lab"), ("bob", "lab"), ("eve", "lab"), ("cy", "lab2"), ("dee", "lab2")];

/// The lab of this test (see tests/support/netns.rs), or None when the machine cannot build it
/// and LANPEER_SKIP_NETNS=1.
fn lab() -> Option<Lab> {
    let names: Vec<&str> = WHO.iter().map(|(name, _)| *name).collect();
    let lab = need_root()
        .and_then(|()| need_tool("tcpdump", "to capture the bridge"))
        .and_then(|()| need_tool("python3", "for the junk sender"))
        .and_then(|()| Lab::new("ls", [10, 232, 0], &names));
    lab_or_skip(lab, "netns security test", "root, iproute2 (`ip netns`), tcpdump and python3")
}

impl Lab {
    /// Start tcpdump on the bridge, writing the capture to `pcap`; returns once it listens.
    fn capture(&mut self, pcap: &PathBuf) {
        let err_path = self.dir.join("tcpdump.stderr");
        let child = Command::new("ip")
            .args(["netns", "exec", &self.switch, "tcpdump", "-i", "br0", "-n", "-s", "0", "-U", "-w", "-"])
            .stdin(Stdio::null())
            .stdout(File::create(pcap).expect("pcap file"))
            .stderr(File::create(&err_path).expect("tcpdump stderr file"))
            .spawn()
            .expect("cannot start tcpdump");
        self.helpers.push(child);
        let deadline = Instant::now() + Duration::from_secs(10);
        while !fs::read_to_string(&err_path).unwrap_or_default().contains("listening on") {
            assert!(
                Instant::now() < deadline,
                "tcpdump did not start: {}",
                fs::read_to_string(&err_path).unwrap_or_default()
            );
            thread::sleep(Duration::from_millis(20));
        }
    }

    /// Start host `i`'s peer in its room, with its passphrase (from the environment, a file, or
    /// a wrong one) or none.
    fn spawn_in_room(&mut self, i: usize) {
        // Written once, before any peer starts (a rewrite could be read half-done).
        let pass_file = self.dir.join("passphrase.txt");
        if !pass_file.exists() {
            fs::write(&pass_file, format!("{PASS}\n")).expect("passphrase file");
        }
        let (name, room) = WHO[i];
        self.spawn_with(i, |cmd| {
            cmd.args(["--room", room]).env_remove("LANPEER_PASSPHRASE");
            match name {
                "ada" => drop(cmd.env("LANPEER_PASSPHRASE", PASS)),
                "bob" => drop(cmd.arg("--passphrase-file").arg(&pass_file)),
                "eve" => drop(cmd.env("LANPEER_PASSPHRASE", WRONG)),
                _ => {}
            }
        });
    }

    /// Run a python3 script in host `i`'s namespace, bounded; returns what it printed.
    fn python(&mut self, i: usize, script: &str, args: &[String], limit: Duration) -> String {
        let (status, out, err) = self.run_python(i, script, args, limit);
        assert!(status.is_some_and(|s| s.success()), "python failed ({status:?}): {out} {err}");
        out
    }
}

/// TCP segments of an Ethernet pcap: (src, dst, payload).
fn tcp_payloads(pcap: &[u8]) -> Vec<(SocketAddr, SocketAddr, Vec<u8>)> {
    let mut out = Vec::new();
    if pcap.len() < 24 {
        return out;
    }
    let le = pcap[0..4] == [0xd4, 0xc3, 0xb2, 0xa1] || pcap[0..4] == [0x4d, 0x3c, 0xb2, 0xa1];
    let u32_at = |b: &[u8]| {
        let a = [b[0], b[1], b[2], b[3]];
        if le { u32::from_le_bytes(a) } else { u32::from_be_bytes(a) }
    };
    let mut at = 24;
    while at + 16 <= pcap.len() {
        let incl = u32_at(&pcap[at + 8..]) as usize;
        let start = at + 16;
        at = start + incl;
        if at > pcap.len() {
            break;
        }
        let f = &pcap[start..at];
        if f.len() < 34 || f[12..14] != [0x08, 0x00] {
            continue;
        }
        let ipb = &f[14..];
        let ihl = (ipb[0] & 0x0f) as usize * 4;
        let total = u16::from_be_bytes([ipb[2], ipb[3]]) as usize;
        if ipb[9] != 6 || ipb.len() < ihl + 20 || total > ipb.len() {
            continue;
        }
        let src = Ipv4Addr::new(ipb[12], ipb[13], ipb[14], ipb[15]);
        let dst = Ipv4Addr::new(ipb[16], ipb[17], ipb[18], ipb[19]);
        let t = &ipb[ihl..total];
        let thl = (t[12] >> 4) as usize * 4;
        if t.len() < thl {
            continue;
        }
        let sp = u16::from_be_bytes([t[0], t[1]]);
        let dp = u16::from_be_bytes([t[2], t[3]]);
        out.push((SocketAddr::from((src, sp)), SocketAddr::from((dst, dp)), t[thl..].to_vec()));
    }
    out
}

fn contains(hay: &[u8], needle: &[u8]) -> bool {
    hay.windows(needle.len()).any(|w| w == needle)
}

/// Random datagrams to every UDP port of every target, random and forged beacons to the
/// discovery broadcast, and random bytes (1 MiB, and 50 short connections) on each session port.
const JUNK: &str = r#"
import hashlib, os, socket, sys, struct, time
targets = sys.argv[1].split(',')
sessions = [(a.split(':')[0], int(a.split(':')[1])) for a in sys.argv[2].split(',')]
u = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
u.setsockopt(socket.SOL_SOCKET, socket.SO_BROADCAST, 1)
sent = 0
for t in targets:
    for port in range(1, 65536):
        try:
            u.sendto(os.urandom(port % 97), (t, port)); sent += 1
        except OSError:
            time.sleep(0.001)
def tag(room):
    return hashlib.sha256(b'lanpeer room\0' + room.encode()).digest()[:8]
for i in range(3000):
    kind = i % 3
    if kind == 0:
        d = os.urandom(i % 120)
    elif kind == 1:   # a forged beacon of the passphrase room: bad tag
        d = b'LNPB' + bytes([1, 2]) + struct.pack('>H', 1000 + i) + os.urandom(24) + tag('lab') + os.urandom(16)
    else:             # a forged open-room beacon of random ids (the per-source limit caps them)
        d = b'LNPB' + bytes([1, 0]) + struct.pack('>H', 1000 + i) + os.urandom(24) + tag('lab2')
    try:
        u.sendto(d, ('10.232.0.255', 5681)); sent += 1
    except OSError:
        time.sleep(0.001)
tcp = 0
for (h, p) in sessions:
    n = 0
    try:
        s = socket.create_connection((h, p), timeout=5)
        d = os.urandom(1 << 20)
        while n < len(d):
            n += s.send(d[n:n + 65536])
        s.close()
    except OSError:
        pass  # the peer closed the connection: expected
    tcp += n
    for k in range(50):
        try:
            s = socket.create_connection((h, p), timeout=2)
            s.send(os.urandom(1 + k * 37)); s.close()
        except OSError:
            pass
print(sent, tcp)
"#;

#[test]
fn passphrase_rooms_on_a_bridge() {
    let Some(mut lab) = lab() else { return };
    let tag = lab.tag.clone();
    let pcap = lab.dir.join("bridge.pcap");
    lab.capture(&pcap);
    let (ada, bob, eve, cy, dee) = (0, 1, 2, 3, 4);
    for i in 0..5 {
        lab.spawn_in_room(i);
    }
    let t0 = Instant::now();
    for h in &mut lab.hosts {
        let (_, r) = h.expect(0, Duration::from_secs(10), "ready", |v| text(v, "event") == "ready");
        h.id = text(&r, "id").to_string();
        h.listen = text(&r, "listen").parse().ok();
        assert!(h.listen.is_some_and(|l| l.ip() == h.ip), "{}: {r}", h.name);
    }
    let id = |lab: &Lab, i: usize| lab.hosts[i].id.clone();

    // ---- Who lists whom.
    for (i, j) in [(ada, bob), (bob, ada), (cy, dee), (dee, cy)] {
        let want = id(&lab, j);
        lab.hosts[i].expect(0, Duration::from_secs(5), "peer_joined", |v| {
            text(v, "event") == "peer_joined" && text(v, "id") == want
        });
    }
    println!("members and open-room peers joined {} after the spawns", ms(t0.elapsed()));
    // Beacons for a while longer: nobody else joins.
    thread::sleep(Duration::from_millis(2500));
    let expect_lists = [(ada, vec![bob]), (bob, vec![ada]), (eve, vec![]), (cy, vec![dee]), (dee, vec![cy])];
    for (i, want) in &expect_lists {
        let mut want: Vec<String> = want.iter().map(|&j| id(&lab, j)).collect();
        want.sort();
        let name = lab.hosts[*i].name.clone();
        assert_eq!(lab.hosts[*i].listed(), want, "{name} lists the wrong peers");
    }
    // The members and the outsider were told why (short, and not repeated every beacon).
    for i in [ada, bob, eve] {
        let (_, w) = lab.hosts[i].expect(0, Duration::from_secs(1), "warning", |v| text(v, "event") == "warning");
        let msg = text(&w, "message");
        assert!(msg.contains("passphrase") && msg.contains("10.232.0."), "{}: {msg}", lab.hosts[i].name);
        let n = lab.hosts[i].all(0, |v| text(v, "event") == "warning").len();
        println!("{} warnings ({n} in {} s): {msg}", lab.hosts[i].name, t0.elapsed().as_secs());
        assert!(n <= 4, "{}: {n} warnings: not rate-limited", lab.hosts[i].name);
    }
    for i in [cy, dee] {
        assert!(lab.hosts[i].all(0, |v| text(v, "event") == "warning").is_empty(), "another room is no warning");
    }

    // ---- Who receives what; markers that must never be on the wire in clear.
    let secret = format!("MARKER-{tag}-passphrase-room-secret");
    let open_secret = format!("MARKER-{tag}-open-room-secret");
    let marks: Vec<usize> = lab.hosts.iter().map(Host::mark).collect();
    let t = Instant::now();
    lab.hosts[ada].send(&secret);
    lab.hosts[cy].send(&open_secret);
    let (tb, _) =
        lab.hosts[bob].expect(marks[bob], Duration::from_secs(2), "ada's chat", |v| text(v, "text") == secret);
    let (td, _) =
        lab.hosts[dee].expect(marks[dee], Duration::from_secs(2), "cy's chat", |v| text(v, "text") == open_secret);
    println!("chat delivered: passphrase room {}, open room {}", ms(tb - t), ms(td - t));
    thread::sleep(Duration::from_millis(500));
    for (i, must_not) in [(eve, &secret), (cy, &secret), (dee, &secret), (ada, &open_secret), (bob, &open_secret)] {
        let m = marks[i];
        assert!(
            lab.hosts[i].all(m, |v| text(v, "text") == must_not.as_str()).is_empty(),
            "{} got it",
            lab.hosts[i].name
        );
    }
    for i in [eve, cy, dee, ada, bob] {
        let chats = lab.hosts[i].all(marks[i], |v| text(v, "event") == "chat" && v["own"] == false);
        let allowed = match i {
            1 => 1, // bob: ada's
            4 => 1, // dee: cy's
            _ => 0,
        };
        assert_eq!(chats.len(), allowed, "{} received {chats:?}", lab.hosts[i].name);
    }
    // eve's chat goes nowhere.
    let m_ada = lab.hosts[ada].mark();
    lab.hosts[eve].send("let me in");
    thread::sleep(Duration::from_millis(500));
    assert!(lab.hosts[ada].all(m_ada, |v| text(v, "text") == "let me in").is_empty());

    // ---- Junk from eve's namespace: every UDP port of every peer, forged beacons, TCP garbage.
    let targets: Vec<String> = [ada, bob, cy, dee].iter().map(|&i| lab.hosts[i].ip.to_string()).collect();
    let sessions: Vec<String> = [ada, bob, cy, dee].iter().map(|&i| lab.hosts[i].listen.unwrap().to_string()).collect();
    let tj = Instant::now();
    let said = lab.python(eve, JUNK, &[targets.join(","), sessions.join(",")], Duration::from_secs(120));
    println!("junk: python sent '{}' (datagrams, TCP bytes) in {}", said.trim(), ms(tj.elapsed()));
    for h in &mut lab.hosts {
        assert!(h.running(), "{} died after the junk", h.name);
    }
    let marks: Vec<usize> = lab.hosts.iter().map(Host::mark).collect();
    let t = Instant::now();
    lab.hosts[bob].send("still here after the junk");
    lab.hosts[dee].send("open room still here");
    let (ta, _) = lab.hosts[ada].expect(marks[ada], Duration::from_secs(3), "chat after junk", |v| {
        text(v, "text") == "still here after the junk"
    });
    let (tc, _) = lab.hosts[cy]
        .expect(marks[cy], Duration::from_secs(3), "chat after junk", |v| text(v, "text") == "open room still here");
    println!("after the junk, chats delivered in {} and {}", ms(ta - t), ms(tc - t));
    for (i, want) in &expect_lists {
        let mut want: Vec<String> = want.iter().map(|&j| id(&lab, j)).collect();
        want.sort();
        let name = lab.hosts[*i].name.clone();
        assert_eq!(lab.hosts[*i].listed(), want, "{name} lists the wrong peers after the junk");
    }

    // ---- The capture: the markers are not in it; the session traffic and the beacons are.
    thread::sleep(Duration::from_millis(300));
    let dump = lab.helpers.remove(0);
    let mut dump = dump;
    let _ = dump.kill();
    let _ = wait_deadline(&mut dump, Duration::from_secs(5));
    let bytes = fs::read(&pcap).expect("capture file");
    let segs = tcp_payloads(&bytes);
    let session_ports: Vec<SocketAddr> = [ada, bob, cy, dee].iter().map(|&i| lab.hosts[i].listen.unwrap()).collect();
    let eve_ip = lab.hosts[eve].ip;
    let session: Vec<&(SocketAddr, SocketAddr, Vec<u8>)> = segs
        .iter()
        .filter(|(s, d, p)| {
            !p.is_empty()
                && s.ip() != eve_ip
                && d.ip() != eve_ip
                && (session_ports.contains(s) || session_ports.contains(d))
        })
        .collect();
    let session_bytes: usize = session.iter().map(|(_, _, p)| p.len()).sum();
    println!(
        "capture: {} bytes, {} TCP segments with payload between peers ({} payload bytes)",
        bytes.len(),
        session.len(),
        session_bytes
    );
    assert!(session.len() >= 10 && session_bytes > 1000, "the capture missed the session traffic");
    assert!(contains(&bytes, b"LNPB"), "the capture missed the (plaintext) beacons");
    assert!(contains(&bytes, b"LNPT"), "the capture missed the session preambles");
    for m in [&secret, &open_secret, &"still here after the junk".to_string()] {
        assert!(!contains(&bytes, m.as_bytes()), "{m:?} is readable in the capture");
    }
    // The names travel in the hello, inside the encryption: not readable between the peers either.
    for (_, _, p) in &session {
        assert!(!contains(p, b"\x03ada") && !contains(p, b"\x03dee"), "a hello is readable in the capture");
    }
}
