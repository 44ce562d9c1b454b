//! The collect-listener task: receives every datagram on the discovery port (the IPv4 socket
//! and, when there is one, the IPv6 socket) and passes the beacons of the room's other peers to
//! the node actor. Both sockets go through the same checks.
//!
//! Dropped (debug log, nothing else): datagrams that are not beacons, beacons of another
//! version or room, our own beacons, and beacons from outside the selected interfaces. Beacons of
//! our room whose authentication does not match ours (a passphrase room needs a good tag; an
//! open room takes no tagged beacon) are dropped with a rate-limited warning for the user. Each
//! source address may pass a bounded number of beacons per second (a token bucket), so a flood
//! from one address costs nothing more and cannot push the others' beacons out. The hand-off
//! is `try_send` on a bounded channel, so a flood of beacons costs a fixed buffer and can never
//! stall the listener or the actor: when the actor is behind, beacons are dropped (the next ones
//! will do).
//!
//! Coalescing: a beacon identical to the last one heard from the same peer at the same address
//! (the case of every beacon but the first, at one per second from every peer) is not sent to
//! the actor; it replaces that peer's entry in [`Latest`], which the actor takes on its tick (every
//! 200 ms). With 100 peers around, that is 5 wake-ups of the actor a second instead of 99. A new
//! peer, a new address, a restart (new incarnation) and a farewell still go through at once.

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::{Arc, Mutex};
use std::time::Instant;

use tokio::net::UdpSocket;
use tokio::sync::{mpsc, watch};
use tokio_util::sync::CancellationToken;

use super::beacon::{Beacon, tag_ok};
use super::iface::{self, Iface};
use crate::guard::{RateLimiter, WarnKind, Warner};
use crate::id::PeerId;

/// A beacon heard, and the address it came from.
#[derive(Debug, Clone, Copy)]
pub struct Heard {
    /// The beacon.
    pub beacon: Beacon,
    /// Its source address.
    pub from: SocketAddr,
    /// When it was received.
    pub at: Instant,
}

/// Beacons remembered per (peer, address) to recognise repeats, at most: beyond, the memory is
/// cleared (a flood of forged ids costs a bounded map and then goes the normal, rate-limited way).
const MAX_SEEN: usize = 4096;

/// The latest repeated beacon of each (peer, address), waiting for the actor's tick.
#[derive(Debug, Default)]
pub struct Latest(Mutex<HashMap<(PeerId, SocketAddr), Heard>>);

impl Latest {
    /// Take every beacon waiting.
    pub fn take(&self) -> Vec<Heard> {
        let mut m = self.0.lock().unwrap_or_else(|e| e.into_inner());
        if m.is_empty() { Vec::new() } else { m.drain().map(|(_, h)| h).collect() }
    }

    fn put(&self, h: Heard) {
        let mut m = self.0.lock().unwrap_or_else(|e| e.into_inner());
        if m.len() < MAX_SEEN || m.contains_key(&(h.beacon.id, h.from)) {
            m.insert((h.beacon.id, h.from), h);
        }
    }
}

/// What the listener needs.
pub struct Listener {
    /// The shared discovery socket (IPv4).
    pub socket: Arc<UdpSocket>,
    /// The shared IPv6 discovery socket, when IPv6 is there.
    pub socket6: Option<Arc<UdpSocket>>,
    /// Our id (own beacons are dropped).
    pub me: PeerId,
    /// Our room's tag.
    pub room_tag: [u8; 8],
    /// Selected interfaces (sources outside them are dropped).
    pub ifaces: watch::Receiver<Vec<Iface>>,
    /// To the node actor: beacons that say something new.
    pub tx: mpsc::Sender<Heard>,
    /// Repeated beacons, for the actor's tick.
    pub latest: Arc<Latest>,
    /// The last beacon passed on per (peer, address).
    pub seen: HashMap<(PeerId, SocketAddr), Beacon>,
    /// Our room's name (for warnings).
    pub room: String,
    /// The beacon key of a passphrase room; `None` in an open room.
    pub key: Option<zeroize::Zeroizing<[u8; 32]>>,
    /// Beacons of our room per source address.
    pub per_source: RateLimiter<IpAddr>,
    /// Warnings for the user.
    pub warner: Arc<Warner>,
    /// Whether the per-source limit applies to loopback addresses.
    pub limit_loopback: bool,
}

impl Listener {
    /// Run until `cancel`.
    pub async fn run(mut self, cancel: CancellationToken) {
        let mut batch = Batch::default();
        let mut batch6 = Batch::default();
        let socket = self.socket.clone();
        let socket6 = self.socket6.clone();
        loop {
            let recv6 = async {
                match &socket6 {
                    Some(s) => recv_batch(s, &mut batch6).await,
                    None => std::future::pending().await,
                }
            };
            let r = tokio::select! {
                _ = cancel.cancelled() => break,
                r = recv_batch(&socket, &mut batch) => r.map(|()| &batch),
                r = recv6 => r.map(|()| &batch6),
            };
            let got = match r {
                Ok(b) => b,
                Err(e) => {
                    // E.g. ICMP errors surfacing on some platforms: not fatal.
                    tracing::debug!(error = %e, "discovery receive error");
                    tokio::time::sleep(std::time::Duration::from_millis(10)).await;
                    continue;
                }
            };
            let (n, bufs, lens, froms) = (got.n, got.bufs, got.lens, got.froms);
            for i in 0..n {
                if !self.datagram(&bufs[i][..lens[i]], froms[i]) {
                    tracing::debug!("listener task stopped");
                    return;
                }
            }
        }
        tracing::debug!("listener task stopped");
    }

    /// Handle one datagram; false when the node is gone.
    fn datagram(&mut self, d: &[u8], from: Option<SocketAddr>) -> bool {
        let Some(from) = from else { return true };
        let Some(beacon) = self.check(d, from) else { return true };
        let heard = Heard { beacon, from, at: Instant::now() };
        if self.seen.get(&(beacon.id, from)) == Some(&beacon) {
            self.latest.put(heard);
            return true;
        }
        if self.seen.len() >= MAX_SEEN {
            self.seen.clear();
        }
        self.seen.insert((beacon.id, from), beacon);
        if self.tx.try_send(heard).is_err() {
            if self.tx.is_closed() {
                return false;
            }
            tracing::debug!(%from, "beacon dropped: node busy");
        }
        true
    }

    /// The beacon in `d`, if it is one of our room's that we should pass on.
    fn check(&mut self, d: &[u8], from: SocketAddr) -> Option<Beacon> {
        let parsed = match Beacon::parse(d) {
            Ok(b) => b,
            Err(e) => {
                tracing::debug!(%from, error = %e, "dropped datagram");
                return None;
            }
        };
        let beacon = parsed.beacon;
        if beacon.id == self.me {
            return None;
        }
        if beacon.room_tag != self.room_tag {
            tracing::trace!(%from, "beacon of another room");
            return None;
        }
        // IPv4: on a selected subnet; IPv6 link-local: on the selected interface whose index is
        // the source's scope id; other IPv6: on a selected prefix; IPv6 only on links without
        // a selected IPv4 address (see `iface::hears`).
        if !iface::hears(&self.ifaces.borrow(), from) {
            tracing::debug!(%from, "beacon from outside the selected interfaces");
            return None;
        }
        let ip = from.ip();
        if (self.limit_loopback || !ip.is_loopback()) && !self.per_source.allow(ip, Instant::now()) {
            tracing::debug!(%from, "too many beacons from this address; dropped");
            self.warner.warn(WarnKind::Flood, ip, || format!("too many beacons from {ip}; some were ignored"));
            return None;
        }
        let room = &self.room;
        match (&self.key, parsed.tagged) {
            (Some(key), true) if tag_ok(d, key) => Some(beacon),
            (Some(_), true) => {
                tracing::debug!(%from, "beacon with a bad tag");
                self.warner.warn(WarnKind::WrongPassphrase, ip, || {
                    format!("ignoring a peer at {ip}: it is in room \"{room}\" with another passphrase")
                });
                None
            }
            (Some(_), false) => {
                tracing::debug!(%from, "beacon without a tag in a passphrase room");
                self.warner.warn(WarnKind::NoPassphrase, ip, || {
                    format!("ignoring a peer at {ip}: it is in room \"{room}\" without the passphrase")
                });
                None
            }
            (None, true) => {
                tracing::debug!(%from, "tagged beacon in an open room");
                self.warner.warn(WarnKind::TheyHavePassphrase, ip, || {
                    format!("ignoring a peer at {ip}: room \"{room}\" has a passphrase there and this peer has none")
                });
                None
            }
            (None, false) => Some(beacon),
        }
    }
}

/// Datagrams taken per read at most.
const BATCH: usize = 8;
/// Bytes kept of a datagram: larger than any beacon, so an oversized datagram shows as too long
/// rather than cut.
const DATAGRAM: usize = 256;

/// The datagrams of one read.
#[derive(Clone, Copy)]
struct Batch {
    n: usize,
    bufs: [[u8; DATAGRAM]; BATCH],
    lens: [usize; BATCH],
    froms: [Option<SocketAddr>; BATCH],
}

impl Default for Batch {
    fn default() -> Self {
        Batch { n: 0, bufs: [[0; DATAGRAM]; BATCH], lens: [0; BATCH], froms: [None; BATCH] }
    }
}

/// Wait for datagrams and take those queued, up to [`BATCH`], in one `recvmmsg`. When it takes
/// fewer than it could, the queue was empty: the socket is marked not ready without the read
/// that would find it so (`recv_from` in a loop costs a second syscall per beacon, the
/// `EWOULDBLOCK`). A datagram that comes after that read wakes the socket again (the readiness
/// that tokio clears is the one seen before the read).
#[cfg(target_os = "linux")]
async fn recv_batch(sock: &UdpSocket, b: &mut Batch) -> std::io::Result<()> {
    use tokio::io::Interest;
    loop {
        sock.readable().await?;
        b.n = 0;
        let r = sock.try_io(Interest::READABLE, || {
            b.n = recvmmsg(sock, b)?;
            if b.n < BATCH { Err(std::io::ErrorKind::WouldBlock.into()) } else { Ok(()) }
        });
        match r {
            Ok(()) => return Ok(()),
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {
                if b.n > 0 {
                    return Ok(());
                }
            }
            Err(e) => return Err(e),
        }
    }
}

/// (Elsewhere: one datagram per read.)
#[cfg(not(target_os = "linux"))]
async fn recv_batch(sock: &UdpSocket, b: &mut Batch) -> std::io::Result<()> {
    recv_one(sock, b).await
}

/// One datagram per read, with `recv_from`: the way of every system but Linux, and built for
/// the tests on Linux too, which run it (tests below).
///
/// A datagram larger than the buffer is not an error of the socket: Linux cuts it to the
/// buffer, but Windows drops it and fails the read (`WSAEMSGSIZE`). There it reads as nothing
/// taken, not as a failed read (which makes the listener pause): a flood of large datagrams must
/// not slow the reading of beacons.
#[cfg(any(test, not(target_os = "linux")))]
async fn recv_one(sock: &UdpSocket, b: &mut Batch) -> std::io::Result<()> {
    b.n = 0;
    match sock.recv_from(&mut b.bufs[0]).await {
        Ok((n, from)) => {
            b.n = 1;
            b.lens[0] = n;
            b.froms[0] = Some(from);
            Ok(())
        }
        Err(e) if too_big(&e) => {
            tracing::debug!("oversized datagram dropped");
            Ok(())
        }
        Err(e) => Err(e),
    }
}

/// Did the read fail because the datagram was larger than the buffer (Windows only)?
#[cfg(any(test, not(target_os = "linux")))]
fn too_big(e: &std::io::Error) -> bool {
    /// `WSAEMSGSIZE`.
    const WSAEMSGSIZE: i32 = 10040;
    cfg!(windows) && e.raw_os_error() == Some(WSAEMSGSIZE)
}

/// `recvmmsg(MSG_DONTWAIT)` into `b`: how many datagrams (an error if none was there).
#[cfg(target_os = "linux")]
fn recvmmsg(sock: &UdpSocket, b: &mut Batch) -> std::io::Result<usize> {
    use std::os::fd::AsRawFd;
    // SAFETY: all-zero is a valid value of these plain C structs.
    let mut names: [libc::sockaddr_storage; BATCH] = unsafe { std::mem::zeroed() };
    let mut iov: [libc::iovec; BATCH] = unsafe { std::mem::zeroed() };
    let mut hdrs: [libc::mmsghdr; BATCH] = unsafe { std::mem::zeroed() };
    for i in 0..BATCH {
        iov[i] = libc::iovec { iov_base: b.bufs[i].as_mut_ptr().cast(), iov_len: DATAGRAM };
        hdrs[i].msg_hdr.msg_name = (&mut names[i] as *mut libc::sockaddr_storage).cast();
        hdrs[i].msg_hdr.msg_namelen = std::mem::size_of::<libc::sockaddr_storage>() as libc::socklen_t;
        hdrs[i].msg_hdr.msg_iov = &mut iov[i];
        hdrs[i].msg_hdr.msg_iovlen = 1;
    }
    // SAFETY: every header points at a live buffer of the length given and at a name of the
    // length given; the kernel writes at most that much. (The flags are a C int in glibc's
    // declaration and an unsigned one in musl's: `as _` fits either.)
    let n = unsafe {
        libc::recvmmsg(sock.as_raw_fd(), hdrs.as_mut_ptr(), BATCH as _, libc::MSG_DONTWAIT as _, std::ptr::null_mut())
    };
    if n < 0 {
        return Err(std::io::Error::last_os_error());
    }
    let n = n as usize;
    for i in 0..n {
        b.lens[i] = (hdrs[i].msg_len as usize).min(DATAGRAM);
        b.froms[i] = socket_addr(&names[i]);
    }
    Ok(n)
}

/// The address the kernel wrote (IPv4 or IPv6), as `recv_from` gives it.
#[cfg(target_os = "linux")]
fn socket_addr(s: &libc::sockaddr_storage) -> Option<SocketAddr> {
    use std::net::{Ipv4Addr, Ipv6Addr, SocketAddrV4, SocketAddrV6};
    match i32::from(s.ss_family) {
        libc::AF_INET => {
            // SAFETY: the family says the storage holds a `sockaddr_in`, which it is large
            // and aligned enough for.
            let a = unsafe { &*(s as *const libc::sockaddr_storage).cast::<libc::sockaddr_in>() };
            let ip = Ipv4Addr::from(u32::from_be(a.sin_addr.s_addr));
            Some(SocketAddr::V4(SocketAddrV4::new(ip, u16::from_be(a.sin_port))))
        }
        libc::AF_INET6 => {
            // SAFETY: as above, a `sockaddr_in6`.
            let a = unsafe { &*(s as *const libc::sockaddr_storage).cast::<libc::sockaddr_in6>() };
            let ip = Ipv6Addr::from(a.sin6_addr.s6_addr);
            Some(SocketAddr::V6(SocketAddrV6::new(ip, u16::from_be(a.sin6_port), a.sin6_flowinfo, a.sin6_scope_id)))
        }
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Datagrams of these lengths, from `from` to `to`; the longest is over [`DATAGRAM`].
    const LENS: [usize; 4] = [1, 100, DATAGRAM, DATAGRAM + 50];

    async fn pair(local: IpAddr) -> Option<(UdpSocket, UdpSocket)> {
        let to = UdpSocket::bind((local, 0)).await.ok()?;
        let from = UdpSocket::bind((local, 0)).await.ok()?;
        for (i, len) in LENS.iter().enumerate() {
            from.send_to(&vec![i as u8; *len], to.local_addr().ok()?).await.ok()?;
        }
        Some((to, from))
    }

    /// What a read gave: (first byte, length, source) per datagram.
    fn got(b: &Batch) -> Vec<(u8, usize, Option<SocketAddr>)> {
        (0..b.n).map(|i| (b.bufs[i][0], b.lens[i], b.froms[i])).collect()
    }

    fn expected(from: SocketAddr) -> Vec<(u8, usize, Option<SocketAddr>)> {
        LENS.iter().enumerate().map(|(i, len)| (i as u8, (*len).min(DATAGRAM), Some(from))).collect()
    }

    /// Both ways of reading (the Linux batch and the one-by-one of the other systems) give every
    /// datagram whole, in order, with its source, an oversized one cut to the buffer, over IPv4
    /// and IPv6 loopback.
    #[tokio::test]
    async fn both_ways_of_reading_give_each_datagram_with_its_source() {
        let locals = [IpAddr::from([127, 0, 0, 1]), IpAddr::from(std::net::Ipv6Addr::LOCALHOST)];
        let mut tried = 0;
        for local in locals {
            // IPv6 loopback may be off (some containers): then IPv4 alone.
            let Some((to, from)) = pair(local).await else { continue };
            tried += 1;
            let from = from.local_addr().unwrap();
            let mut b = Batch::default();
            let mut one_by_one = Vec::new();
            while one_by_one.len() < LENS.len() {
                recv_one(&to, &mut b).await.unwrap();
                assert_eq!(b.n, 1, "recv_one takes one datagram per read");
                one_by_one.extend(got(&b));
            }
            assert_eq!(one_by_one, expected(from), "{local}: one by one");

            let Some((to, sender)) = pair(local).await else { continue };
            let from = sender.local_addr().unwrap();
            let mut batched = Vec::new();
            while batched.len() < LENS.len() {
                recv_batch(&to, &mut b).await.unwrap();
                assert!(b.n >= 1, "a read that returns took something");
                batched.extend(got(&b));
            }
            assert_eq!(batched, expected(from), "{local}: batched");
        }
        assert!(tried >= 1, "IPv4 loopback must be there");
    }

    #[test]
    fn only_a_windows_size_error_counts_as_an_oversized_datagram() {
        let e = std::io::Error::from_raw_os_error(10040);
        assert_eq!(too_big(&e), cfg!(windows));
        assert!(!too_big(&std::io::Error::from(std::io::ErrorKind::ConnectionReset)));
    }
}
