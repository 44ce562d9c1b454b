//! The discovery sockets: one UDP socket per address family, bound to the discovery port on
//! every address, shared by every peer on the machine.
//!
//! Built with socket2 because the standard library cannot set the options before `bind`:
//! SO_REUSEADDR (and SO_REUSEPORT on the Unix systems that have it) so that several peers of one
//! machine bind the same port and each receive every beacon. On Windows SO_REUSEADDR alone
//! gives the sharing.
//!
//! - IPv4 ([`open`]): `0.0.0.0:port`, SO_BROADCAST; beacons go to each interface's broadcast
//!   address.
//! - IPv6 ([`open_v6`]): `[::]:port`, IPV6_V6ONLY (the IPv4 socket has the IPv4 traffic), the
//!   link-local multicast group [`GROUP_V6`] joined on each selected interface by index
//!   ([`sync_groups`]), hop limit 1, loop on (several peers of one computer hear each other).
//!   Beacons go to `[ff02::4c50%index]:port`: one socket for every interface, the interface
//!   chosen per send by the destination's scope id (and IPV6_MULTICAST_IF set before each send,
//!   for systems that look only at that). One socket rather than one per interface: the
//!   receiving side needs only one bound socket, joins are per interface anyway, and
//!   interfaces that come and go cost a join or a leave instead of a socket.

use std::net::{Ipv4Addr, Ipv6Addr, SocketAddr, SocketAddrV6};

use socket2::{Domain, Protocol, SockRef, Socket, Type};

use crate::error::Error;

/// The IPv6 link-local multicast group of lanpeer beacons: `ff02::4c50` ("LP"), link scope, so
/// it never leaves the link.
pub const GROUP_V6: Ipv6Addr = Ipv6Addr::new(0xff02, 0, 0, 0, 0, 0, 0, 0x4c50);

/// Where an IPv6 beacon goes on the interface of index `index`: the group, scoped to it.
pub fn group_addr(index: u32, port: u16) -> SocketAddr {
    SocketAddr::V6(SocketAddrV6::new(GROUP_V6, port, 0, index))
}

/// Open the discovery socket on `port` (non-blocking, ready for tokio).
pub fn open(port: u16) -> Result<tokio::net::UdpSocket, Error> {
    let s = open_std(port)?;
    tokio::net::UdpSocket::from_std(s).map_err(|source| Error::Socket { what: "discovery (UDP)", source })
}

/// Receive buffer asked for on the discovery sockets (see [`shared`]).
pub const RECV_BUFFER: usize = 1 << 20;

fn shared(domain: Domain, port: u16, what: &'static str) -> Result<Socket, Error> {
    let err = |source: std::io::Error| {
        if source.kind() == std::io::ErrorKind::AddrInUse {
            Error::PortInUse { what, port, flag: "--port" }
        } else {
            Error::Socket { what, source }
        }
    };
    let s = Socket::new(domain, Type::DGRAM, Some(Protocol::UDP)).map_err(err)?;
    s.set_reuse_address(true).map_err(err)?;
    #[cfg(all(unix, not(any(target_os = "solaris", target_os = "illumos", target_os = "cygwin"))))]
    s.set_reuse_port(true).map_err(err)?;
    s.set_nonblocking(true).map_err(err)?;
    // Room for a burst of beacons (every peer of a room answers a newcomer at once): best
    // effort, the system may give less (Linux caps it at `net.core.rmem_max`).
    if let Err(e) = s.set_recv_buffer_size(RECV_BUFFER) {
        tracing::debug!(error = %e, "discovery receive buffer left at the system's default");
    }
    if domain == Domain::IPV6 {
        s.set_only_v6(true).map_err(err)?;
        s.set_multicast_loop_v6(true).map_err(err)?;
        s.set_multicast_hops_v6(1).map_err(err)?;
        s.bind(&SocketAddr::from((Ipv6Addr::UNSPECIFIED, port)).into()).map_err(err)?;
    } else {
        s.set_broadcast(true).map_err(err)?;
        s.bind(&SocketAddr::from((Ipv4Addr::UNSPECIFIED, port)).into()).map_err(err)?;
    }
    Ok(s)
}

/// The same socket as [`open`], as a standard (non-blocking) socket (`lanpeer doctor`).
pub fn open_std(port: u16) -> Result<std::net::UdpSocket, Error> {
    Ok(shared(Domain::IPV4, port, "discovery (UDP)")?.into())
}

/// Open the IPv6 discovery socket on `port` (no group joined yet: see [`sync_groups`]).
pub fn open_v6(port: u16) -> Result<tokio::net::UdpSocket, Error> {
    let s = open_v6_std(port)?;
    tokio::net::UdpSocket::from_std(s).map_err(|source| Error::Socket { what: "discovery (UDP, IPv6)", source })
}

/// The same socket as [`open_v6`], as a standard (non-blocking) socket (`lanpeer doctor`).
pub fn open_v6_std(port: u16) -> Result<std::net::UdpSocket, Error> {
    Ok(shared(Domain::IPV6, port, "discovery (UDP, IPv6)")?.into())
}

/// Join [`GROUP_V6`] on the interface of index `index`.
pub fn join(socket: &SockRef<'_>, index: u32) -> std::io::Result<()> {
    socket.join_multicast_v6(&GROUP_V6, index)
}

/// Make the group memberships of `socket` those of `wanted` (interface indexes): join the new,
/// leave the gone. `joined` is what is joined now, updated. Returns the indexes whose join
/// failed, with the error (they are retried on the next call).
pub fn sync_groups(socket: SockRef<'_>, joined: &mut Vec<u32>, wanted: &[u32]) -> Vec<(u32, std::io::Error)> {
    for &i in joined.iter().filter(|i| !wanted.contains(i)) {
        // The interface may be gone already, and its memberships with it.
        let _ = socket.leave_multicast_v6(&GROUP_V6, i);
    }
    joined.retain(|i| wanted.contains(i));
    let mut failed = Vec::new();
    let new: Vec<u32> = wanted.iter().filter(|i| !joined.contains(i)).copied().collect();
    for i in new {
        match join(&socket, i) {
            Ok(()) => joined.push(i),
            // Already a member (a join that raced a rescan): as good as joined.
            Err(e) if e.kind() == std::io::ErrorKind::AddrInUse => joined.push(i),
            Err(e) => failed.push((i, e)),
        }
    }
    failed
}

/// Send `bytes` to the group on interface `index` (IPV6_MULTICAST_IF set first).
pub async fn send_v6(socket: &tokio::net::UdpSocket, bytes: &[u8], index: u32, port: u16) -> std::io::Result<usize> {
    SockRef::from(socket).set_multicast_if_v6(index)?;
    socket.send_to(bytes, group_addr(index, port)).await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn group_is_link_local_multicast() {
        assert!(GROUP_V6.is_multicast());
        assert_eq!(GROUP_V6.to_string(), "ff02::4c50");
        // ff02::/16: scope 2 (link-local), so routers never forward it.
        assert_eq!(GROUP_V6.segments()[0] & 0x000f, 2);
        assert_eq!(group_addr(3, 5681).to_string(), "[ff02::4c50%3]:5681");
    }

    /// A burst of beacons (a room of 1,000 answering a newcomer at once, say) waits whole in the
    /// discovery socket until the listener reads it. With the system's default buffer here
    /// (212,992 bytes) 256 of them fit; the bench saw ≈ 10,000 beacons dropped per run of
    /// convergence of 200 before the buffer was raised, none after.
    #[test]
    fn a_burst_of_a_thousand_beacons_is_kept_until_read() {
        const BURST: usize = 1000;
        let max = std::fs::read_to_string("/proc/sys/net/core/rmem_max").ok().and_then(|t| t.trim().parse().ok());
        if max.is_some_and(|m: usize| m < RECV_BUFFER) {
            eprintln!("net.core.rmem_max is below {RECV_BUFFER}: the system caps the buffer, nothing to test");
            return;
        }
        let rx = open_std(0).expect("the discovery socket opens");
        let to = SocketAddr::from((Ipv4Addr::LOCALHOST, rx.local_addr().unwrap().port()));
        let tx = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
        for i in 0..BURST {
            tx.send_to(&[i as u8; crate::discovery::beacon::BEACON_LEN], to).unwrap();
        }
        let mut got = 0;
        let mut buf = [0u8; 64];
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
        while got < BURST && std::time::Instant::now() < deadline {
            match rx.recv_from(&mut buf) {
                Ok(_) => got += 1,
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => break,
                Err(e) => panic!("{e}"),
            }
        }
        assert_eq!(got, BURST, "beacons of the burst were dropped");
    }

    #[test]
    fn v6_socket_opens_and_shares_the_port() {
        // No group is joined and nothing is sent: this touches no network.
        if std::net::UdpSocket::bind("[::1]:0").is_err() {
            eprintln!("no IPv6 on this system: nothing to test");
            return;
        }
        let a = open_v6_std(0).expect("the IPv6 discovery socket opens");
        let port = a.local_addr().unwrap().port();
        let b = open_v6_std(port).expect("a second peer of this computer shares the port");
        let s = SockRef::from(&b);
        assert!(s.only_v6().unwrap());
        assert_eq!(s.multicast_hops_v6().unwrap(), 1);
        assert!(s.multicast_loop_v6().unwrap());
        let mut joined = vec![];
        assert!(sync_groups(SockRef::from(&b), &mut joined, &[]).is_empty());
        assert!(joined.is_empty());
    }
}
