//! `lanpeer doctor`: says, in plain words, what this computer would do as a peer and why two
//! peers might not see each other: the interfaces and addresses it would use, whether the
//! discovery socket opens (and may broadcast), whether the ports are free, and whether the
//! peers named with `--peer` answer (a TCP connection and the 8-byte preamble exchange: no
//! session, no handshake, nothing sent on the network but that connection).
//!
//! It never sends a beacon or any other datagram. (Joining the IPv6 discovery group, to check
//! that it can be joined, makes the system announce the membership on that link by MLD, as a
//! running peer does; the group is left at once.)

use std::io::{Read, Write};
use std::net::{IpAddr, Ipv4Addr, SocketAddr, TcpListener, TcpStream, ToSocketAddrs, UdpSocket};
use std::time::{Duration, Instant};

use lanpeer::discovery::{iface, socket};
use lanpeer::protocol::{MODE_NOISE, MODE_NOISE_PSK, PREAMBLE_LEN, Preamble, PreambleError};
use lanpeer::seeds::SeedAddr;

/// How long a peer has to answer.
const ANSWER_WITHIN: Duration = Duration::from_secs(3);

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
        let (addr, via) = match i.broadcast {
            Some(b) => (i.ip.to_string(), format!("broadcast {b:<15}")),
            None => (format!("{}/{}", i.ip, i.prefix), format!("multicast {}%{}", socket::GROUP_V6, i.index)),
        };
        writeln!(
            out,
            "  {:<10} {:<15} {} {}",
            i.name,
            addr,
            via,
            if used && i.is_v6() {
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
