//! `lanpeer doctor`: says, in plain words, what this computer would do as a peer and why two
//! peers might not see each other: the interfaces and addresses it would use, whether the
//! discovery socket opens (and may broadcast), whether the ports are free, and whether the
//! peers named with `--peer` answer (a TCP connection and the 8-byte preamble exchange: no
//! session, no handshake, nothing sent on the network but that connection).
//!
//! It also says where the history is kept, whether it can be written there, and how much disk
//! space is left (a peer whose disk is full stores, acknowledges and shows nothing new).
//!
//! It never sends a beacon or any other datagram. (Joining the IPv6 discovery group, to check
//! that it can be joined, makes the system announce the membership on that link by MLD, as a
//! running peer does; the group is left at once.)

use std::io::{Read, Write};
use std::net::{IpAddr, Ipv4Addr, SocketAddr, TcpListener, TcpStream, ToSocketAddrs, UdpSocket};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use lanpeer::discovery::{iface, socket};
use lanpeer::protocol::{MODE_NOISE, MODE_NOISE_PSK, PREAMBLE_LEN, Preamble, PreambleError};
use lanpeer::seeds::SeedAddr;

/// How long a peer has to answer.
const ANSWER_WITHIN: Duration = Duration::from_secs(3);
/// Less free space than this in the data folder is a problem: a day of a busy room's chat fits
/// many times over, but the disk is close to full.
const LOW_SPACE: u64 = 100 << 20;

/// What to check.
pub struct Doctor {
    /// Interfaces asked for (empty: the default selection).
    pub ifaces: Vec<String>,
    /// The discovery port.
    pub port: u16,
    /// The session port a peer would take.
    pub tcp_port: u16,
    /// Peers to try.
    pub peers: Vec<SeedAddr>,
    /// The data folder a peer would use (none: this system has no default one).
    pub data_dir: Option<PathBuf>,
}

/// Run the checks, print the findings; Ok(true) when nothing is wrong.
pub fn run(d: &Doctor, out: &mut impl Write) -> std::io::Result<bool> {
    let mut ok = true;
    writeln!(out, "lanpeer doctor (version {})", env!("CARGO_PKG_VERSION"))?;

    // ---- Interfaces.
    writeln!(out, "\nNetwork interfaces:")?;
    let all = match iface::scan() {
        Ok(a) => a,
        Err(e) => {
            writeln!(out, "  PROBLEM: cannot list the network interfaces: {e}")?;
            Vec::new()
        }
    };
    let selected = match iface::select(&all, &d.ifaces, true) {
        Ok(s) => s,
        Err(e) => {
            writeln!(out, "  PROBLEM: {e}")?;
            ok = false;
            Vec::new()
        }
    };
    for i in &all {
        let used = selected.contains(i);
        let (addr, via) = match i.beacon_to() {
            Some(b) if i.loopback => (i.ip.to_string(), format!("beacons to {b:<14}")),
            Some(b) => (i.ip.to_string(), format!("broadcast {b:<15}")),
            None if i.is_v6() => {
                (format!("{}/{}", i.ip, i.prefix), format!("multicast {}%{}", socket::GROUP_V6, i.index))
            }
            None => (i.ip.to_string(), "no beacon address".to_string()),
        };
        writeln!(
            out,
            "  {:<10} {:<15} {} {}",
            i.name,
            addr,
            via,
            if used && i.loopback {
                "USED: beacons go to the peers of this computer only, and are heard from them only".to_string()
            } else if used && i.is_v6() {
                "USED: IPv6 beacons go out here, and beacons from this link are heard".to_string()
            } else if used {
                "USED: beacons go out here, and beacons from this subnet are heard".to_string()
            } else if i.loopback {
                "not used (only with --iface lo: peers of this computer only)".to_string()
            } else {
                "not used (not named with --iface)".to_string()
            }
        )?;
    }
    if all.is_empty() {
        writeln!(out, "  none found that is up and has an IPv4 broadcast address or IPv6 with multicast")?;
    }
    if !selected.is_empty() {
        let addrs: Vec<String> = selected
            .iter()
            .map(|i| if iface::is_link_local(i.ip) { format!("{}%{}", i.ip, i.name) } else { i.ip.to_string() })
            .collect();
        writeln!(
            out,
            "  Other peers reach this computer at {} (one of them must be routable from theirs).",
            addrs.join(", ")
        )?;
    }

    // ---- Discovery socket.
    writeln!(out, "\nDiscovery (UDP port {}):", d.port)?;
    match UdpSocket::bind((Ipv4Addr::UNSPECIFIED, d.port)) {
        Ok(s) => {
            drop(s);
            writeln!(out, "  the port is free (no other program, and no other peer of this computer, uses it)")?;
        }
        Err(e) if e.kind() == std::io::ErrorKind::AddrInUse => writeln!(
            out,
            "  the port is already open in another program: fine if that is another lanpeer peer (they share it)"
        )?,
        Err(e) => writeln!(out, "  cannot test the port: {e}")?,
    }
    match socket::open_std(d.port) {
        Ok(s) => {
            let b = s.broadcast().unwrap_or(false);
            writeln!(out, "  the discovery socket opens{}", if b { ", and may send broadcasts" } else { "" })?;
            if !b {
                writeln!(out, "  PROBLEM: the system does not allow broadcasts on it")?;
                ok = false;
            }
        }
        Err(e) => {
            writeln!(out, "  PROBLEM: the discovery socket does not open: {e}")?;
            ok = false;
        }
    }
    let v6_ifaces = iface::v6_indexes(&selected);
    if v6_ifaces.is_empty() {
        writeln!(
            out,
            "  IPv6: no selected interface has IPv6 with multicast (lo has none): IPv6 discovery is not used"
        )?;
    } else {
        match socket::open_v6_std(d.port) {
            Ok(s) => {
                writeln!(out, "  the IPv6 discovery socket opens ([::]:{}, IPv6 only)", d.port)?;
                let s = socket2::SockRef::from(&s);
                for index in v6_ifaces {
                    let name = selected.iter().find(|i| i.index == index).map_or("?", |i| i.name.as_str());
                    match socket::join(&s, index) {
                        Ok(()) => writeln!(
                            out,
                            "  {name}: joins the IPv6 multicast group {} (beacons to [{}%{name}]:{})",
                            socket::GROUP_V6,
                            socket::GROUP_V6,
                            d.port
                        )?,
                        Err(e) => {
                            writeln!(
                                out,
                                "  PROBLEM: {name}: cannot join the IPv6 multicast group {}: {e}",
                                socket::GROUP_V6
                            )?;
                            ok = false;
                        }
                    }
                }
            }
            Err(e) => {
                writeln!(out, "  PROBLEM: the IPv6 discovery socket does not open: {e}")?;
                ok = false;
            }
        }
    }
    writeln!(
        out,
        "  Beacons reach only this broadcast domain: peers behind a router, or on a Wi-Fi that blocks\n  \
         traffic between devices, must be named with --peer HOST[:PORT] (one is enough: they introduce the others)."
    )?;

    // ---- Session port.
    writeln!(out, "\nSessions (TCP port {}):", d.tcp_port)?;
    let only_lo = !selected.is_empty() && selected.iter().all(|i| i.loopback);
    let bind_ip = if only_lo { IpAddr::V4(Ipv4Addr::LOCALHOST) } else { IpAddr::V4(Ipv4Addr::UNSPECIFIED) };
    match TcpListener::bind((bind_ip, d.tcp_port)) {
        Ok(l) => {
            drop(l);
            writeln!(out, "  the port is free: a peer started now listens there, so others can name it with --peer")?;
        }
        Err(e) if e.kind() == std::io::ErrorKind::AddrInUse => writeln!(
            out,
            "  the port is in use (another lanpeer peer of this computer?): a peer started now without --tcp-port\n  \
             takes any free port, and others must then name it with that port"
        )?,
        Err(e) => {
            writeln!(out, "  PROBLEM: cannot open a session port: {e}")?;
            ok = false;
        }
    }

    // ---- History.
    ok &= history(d.data_dir.as_deref(), out)?;

    // ---- Peers.
    for p in &d.peers {
        writeln!(out, "\nPeer {p}:")?;
        let addrs: Vec<SocketAddr> = match (p.host.as_str(), p.port).to_socket_addrs() {
            Ok(a) => a.take(4).collect(),
            Err(e) => {
                writeln!(out, "  PROBLEM: the name {:?} does not resolve: {e}", p.host)?;
                ok = false;
                continue;
            }
        };
        let mut answered = false;
        for a in addrs {
            let (line, good) = probe(a);
            writeln!(out, "  {a}: {line}")?;
            answered |= good;
            if good {
                break;
            }
        }
        if !answered {
            ok = false;
        }
    }

    writeln!(out, "\n{}", if ok { "Nothing wrong found." } else { "Problems found: see the lines marked PROBLEM." })?;
    Ok(ok)
}

/// Where the history is kept, whether it can be written, and the free space there; true when
/// nothing is wrong. Creates nothing but a probe file, removed at once.
fn history(dir: Option<&Path>, out: &mut impl Write) -> std::io::Result<bool> {
    let Some(dir) = dir else {
        writeln!(out, "\nHistory:\n  PROBLEM: this system has no per-user data folder; choose one with --data-dir")?;
        return Ok(false);
    };
    writeln!(out, "\nHistory (data folder {}):", dir.display())?;
    // A peer creates the folder if need be: test the nearest part of it that exists.
    let Some(existing) = dir.ancestors().find(|p| p.is_dir()) else {
        writeln!(out, "  PROBLEM: no part of this path exists; choose another folder with --data-dir")?;
        return Ok(false);
    };
    let probe = existing.join(format!(".lanpeer-doctor-{}", std::process::id()));
    let written = std::fs::write(&probe, b"lanpeer doctor");
    let _ = std::fs::remove_file(&probe);
    if let Err(e) = &written
        && e.kind() == std::io::ErrorKind::StorageFull
    {
        writeln!(
            out,
            "  PROBLEM: its disk is full: new messages wait unsaved (nothing is lost, but nothing new is shown); free some disk space"
        )?;
        return Ok(false);
    }
    if let Err(e) = written {
        writeln!(
            out,
            "  PROBLEM: cannot write in {} ({e}): messages could not be saved; choose another folder with --data-dir",
            existing.display()
        )?;
        return Ok(false);
    }
    writeln!(out, "  {} can be written", existing.display())?;
    match free_space(existing) {
        Some(free) if free < LOW_SPACE => {
            writeln!(
                out,
                "  PROBLEM: only {} MiB free on its disk: once it is full, new messages wait unsaved\n  \
                 (nothing is lost, but nothing new is shown); free some disk space",
                free >> 20
            )?;
            Ok(false)
        }
        Some(free) => {
            writeln!(out, "  {} MiB free on its disk", free >> 20)?;
            Ok(true)
        }
        None => {
            writeln!(out, "  (the free space on its disk cannot be read)")?;
            Ok(true)
        }
    }
}

/// Bytes an unprivileged user may still write on the file system of `p` (statvfs on Unix,
/// GetDiskFreeSpaceExW on Windows, by fs4).
fn free_space(p: &Path) -> Option<u64> {
    fs4::available_space(p).ok()
}

/// Connect to `a` and exchange preambles: (what happened, in words; whether a peer answered).
fn probe(a: SocketAddr) -> (String, bool) {
    let t0 = Instant::now();
    let mut s = match TcpStream::connect_timeout(&a, ANSWER_WITHIN) {
        Ok(s) => s,
        Err(e) if e.kind() == std::io::ErrorKind::ConnectionRefused => {
            return (
                "PROBLEM: nothing listens on that port (is lanpeer running there, and is this its session port?)"
                    .into(),
                false,
            );
        }
        Err(e) if e.kind() == std::io::ErrorKind::TimedOut => {
            return (
                format!(
                    "PROBLEM: no answer within {} s (computer off, wrong address, or a firewall drops the connection)",
                    ANSWER_WITHIN.as_secs()
                ),
                false,
            );
        }
        Err(e) => return (format!("PROBLEM: cannot connect: {e}"), false),
    };
    let _ = s.set_read_timeout(Some(ANSWER_WITHIN));
    let _ = s.set_write_timeout(Some(ANSWER_WITHIN));
    if let Err(e) = s.write_all(&Preamble::ours().to_bytes()) {
        return (format!("PROBLEM: connected, then the connection failed: {e}"), false);
    }
    let mut b = [0u8; PREAMBLE_LEN];
    if let Err(e) = s.read_exact(&mut b) {
        return (format!("PROBLEM: connected, but it did not answer like a lanpeer peer ({e})"), false);
    }
    let ms = t0.elapsed().as_millis();
    match Preamble::parse(&b) {
        Ok(p) if p.mode == MODE_NOISE => (format!("a lanpeer peer answers (an open room), in {ms} ms"), true),
        Ok(p) if p.mode == MODE_NOISE_PSK => {
            (format!("a lanpeer peer answers (a room with a passphrase: you need it too), in {ms} ms"), true)
        }
        Ok(p) => (format!("a lanpeer peer answers, transport mode {}, in {ms} ms", p.mode), true),
        Err(PreambleError::Version(v)) => {
            (format!("PROBLEM: a lanpeer peer of another protocol version ({v}) answers; use the same version"), false)
        }
        Err(e) => (format!("PROBLEM: something answers, but it is not lanpeer ({e})"), false),
    }
}
