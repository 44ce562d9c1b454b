//! The discovery socket: one UDP socket bound to the discovery port on every address, shared by
//! every peer on the machine.
//!
//! Built with socket2 because the standard library cannot set the options before `bind`:
//! SO_REUSEADDR (and SO_REUSEPORT on the Unix systems that have it) so that several peers of one
//! machine bind the same port and each receive every broadcast; SO_BROADCAST to send to broadcast
//! addresses. On Windows SO_REUSEADDR alone gives the sharing.

use std::net::{Ipv4Addr, SocketAddr};

use socket2::{Domain, Protocol, Socket, Type};

use crate::error::Error;

/// Open the discovery socket on `port` (non-blocking, ready for tokio).
pub fn open(port: u16) -> Result<tokio::net::UdpSocket, Error> {
    let s = open_std(port)?;
    tokio::net::UdpSocket::from_std(s).map_err(|source| Error::Socket { what: "discovery (UDP)", source })
}

/// The same socket as [`open`], as a standard (non-blocking) socket (`lanpeer doctor`).
pub fn open_std(port: u16) -> Result<std::net::UdpSocket, Error> {
    let err = |source: std::io::Error| {
        if source.kind() == std::io::ErrorKind::AddrInUse {
            Error::PortInUse { what: "discovery (UDP)", port, flag: "--port" }
        } else {
            Error::Socket { what: "discovery (UDP)", source }
        }
    };
    let s = Socket::new(Domain::IPV4, Type::DGRAM, Some(Protocol::UDP)).map_err(err)?;
    s.set_reuse_address(true).map_err(err)?;
    #[cfg(all(unix, not(any(target_os = "solaris", target_os = "illumos", target_os = "cygwin"))))]
    s.set_reuse_port(true).map_err(err)?;
    s.set_broadcast(true).map_err(err)?;
    s.set_nonblocking(true).map_err(err)?;
    s.bind(&SocketAddr::from((Ipv4Addr::UNSPECIFIED, port)).into()).map_err(err)?;
    Ok(s.into())
}
