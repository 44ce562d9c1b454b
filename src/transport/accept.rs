//! The TCP accept task: takes incoming connections and runs each one's handshake and session in
//! its own task, holding the places [`super::slots`] gives it. Accept errors (e.g. out of file
//! descriptors) back off instead of spinning.
//!
//! A connection goes through three gates, and is closed at once (a debug log, and the
//! rate-limited `Flood` warning) at the first that refuses it:
//! 1. on accept, connection attempts per IP address (a token bucket, [`crate::guard`]), so that one
//!    address cannot keep the handshakes busy; then it takes a place among the handshakes under
//!    way (the oldest is cut when they are all taken);
//! 2. at Noise message 1, where the dialer names itself: a dialer whose id we know goes on while
//!    its reserve or the open pool has room; another needs room in the open pool and under the
//!    bounds of its address and IPv6 /64, which it holds from then on;
//! 3. once its hello is proved: its session's place (the known reserve, else the open pool),
//!    held until it ends.
//!
//! There may be two listeners on the same port: the IPv4 one and an IPv6 one (IPV6_V6ONLY, so
//! that each family has its own socket whatever the system's default). Both are served here.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

use super::handshake::{End, HandshakeError};
use super::noise::NoiseError;
use super::slots::Refused;
use super::{Ctx, handshake, session};
use crate::guard::{RateLimiter, WarnKind};

/// Connections waiting to be accepted, at most, per listener (`listen`'s backlog; Linux caps it at
/// `net.core.somaxconn`). Every peer of a room dials a newcomer at once (the half with the lower
/// ids; protocol 8.2), 100 at a time in a lecture hall of 200, while the newcomer's CPU is busy
/// with handshakes. The standard library's (and tokio's) `bind` listens with 128: the bench saw
/// the queue overflow and the dialers' SYNs dropped, each dial then waiting for the kernel's 1 s
/// SYN retry (a late joiner to 200 took ≈ 1.05 s in 1 run of 8 instead of ≈ 0.1 s).
pub const BACKLOG: i32 = 1024;

/// The session listener on `addr` (IPv4, or IPv6 with IPV6_V6ONLY, so that it never competes with
/// the IPv4 listener on the same port), listening with [`BACKLOG`]; SO_REUSEADDR on Unix as tokio
/// sets it (a restart does not wait for TIME_WAIT; on Windows it would let another program take
/// the port).
pub fn listen(addr: SocketAddr) -> std::io::Result<TcpListener> {
    let s =
        socket2::Socket::new(socket2::Domain::for_address(addr), socket2::Type::STREAM, Some(socket2::Protocol::TCP))?;
    if addr.is_ipv6() {
        s.set_only_v6(true)?;
    }
    #[cfg(unix)]
    s.set_reuse_address(true)?;
    s.set_nonblocking(true)?;
    s.bind(&addr.into())?;
    s.listen(BACKLOG)?;
    TcpListener::from_std(s.into())
}

/// Run until `cancel`, taking connections from `listener` and, if given, from `listener6`.
pub async fn run(listener: TcpListener, listener6: Option<TcpListener>, ctx: Arc<Ctx>, cancel: CancellationToken) {
    let mut backoff = Duration::from_millis(10);
    let mut per_ip = RateLimiter::new(ctx.conn_burst, ctx.conn_per_sec);
    loop {
        let accept6 = async {
            match &listener6 {
                Some(l) => l.accept().await,
                None => std::future::pending().await,
            }
        };
        let accepted = tokio::select! {
            _ = cancel.cancelled() => break,
            r = listener.accept() => r,
            r = accept6 => r,
        };
        let (stream, remote) = match accepted {
            Ok(x) => {
                backoff = Duration::from_millis(10);
                x
            }
            Err(e) => {
                tracing::warn!(error = %e, "cannot accept a connection; retrying");
                tokio::time::sleep(backoff).await;
                backoff = (backoff * 2).min(Duration::from_secs(1));
                continue;
            }
        };
        if (ctx.limit_loopback || !remote.ip().is_loopback()) && !per_ip.allow(remote.ip(), Instant::now()) {
            tracing::debug!(%remote, "too many connection attempts from this address; refused");
            let ip = remote.ip();
            ctx.warner.warn(WarnKind::Flood, ip, || format!("too many connections from {ip}; some were refused"));
            continue;
        }
        let handshaking = ctx.slots.handshake();
        let c = ctx.clone();
        ctx.tracker.spawn(async move {
            let local = stream.local_addr().ok();
            let mut admitted = None;
            let mut refusal = None;
            let mut screen = |claim| match c.slots.screen(claim, remote.ip()) {
                Ok(a) => {
                    admitted = Some(a);
                    true
                }
                Err(why) => {
                    refusal = Some(why);
                    false
                }
            };
            let shaken = tokio::select! {
                _ = handshaking.cut().cancelled() => {
                    tracing::debug!(%remote, "incoming handshakes all taken: this one, the oldest, is cut");
                    return;
                }
                r = handshake::handshake(stream, &c, End::Acceptor, remote, Some(&mut screen)) => r,
            };
            drop(handshaking);
            let (hello, framed, mark) = match shaken {
                Ok(x) => x,
                Err(HandshakeError::Noise(NoiseError::Refused)) => {
                    return refused(&c, remote, refusal.unwrap_or(Refused::Full));
                }
                Err(e) => return tracing::debug!(%remote, error = %e, "incoming connection refused"),
            };
            // Message 1 came before the proved hello: the screen has seen this dialer.
            let Some(admitted) = admitted else { return };
            let Some(_slot) = c.slots.session(&admitted) else { return refused(&c, remote, Refused::Full) };
            // A dialer we know, proved now, counts against no address; another keeps its hold.
            let _hold = admitted;
            session::run(hello, remote, local, false, framed, mark, c).await;
        });
    }
    tracing::debug!("accept task stopped");
}

/// Close a connection there is no place for: a debug log, and the rate-limited warning.
fn refused(ctx: &Ctx, remote: SocketAddr, why: Refused) {
    match why {
        Refused::Addr(key) => {
            tracing::debug!(%remote, %key, "too many connections open from this address; refused");
            ctx.warner
                .warn(WarnKind::Flood, key.ip(), || format!("too many connections from {key}; some were refused"));
        }
        Refused::Full => {
            let ip = remote.ip();
            tracing::debug!(%remote, "no place for another connection; refused");
            ctx.warner.warn(WarnKind::Flood, ip, || format!("too many connections open; some from {ip} were refused"));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// 300 peers dial a listener that is busy and accepts none of them yet: each connection is
    /// set up by the kernel at once (the queue holds [`BACKLOG`]); none waits for a SYN retry
    /// (1 s), which is what happened past 128 with the standard `bind`. Both families.
    #[tokio::test]
    async fn three_hundred_dials_at_once_wait_in_the_queue_not_for_a_retry() {
        let cap = std::fs::read_to_string("/proc/sys/net/core/somaxconn").ok().and_then(|t| t.trim().parse().ok());
        if cap.is_some_and(|c: usize| c < 300) {
            eprintln!("net.core.somaxconn is below 300: the system caps the queue, nothing to test");
            return;
        }
        for local in [SocketAddr::from(([127, 0, 0, 1], 0)), SocketAddr::from((std::net::Ipv6Addr::LOCALHOST, 0))] {
            let Ok(l) = listen(local) else {
                assert!(local.is_ipv6(), "the IPv4 listener must open");
                continue; // no IPv6 here
            };
            let addr = l.local_addr().unwrap();
            let dials = tokio::task::spawn_blocking(move || {
                let mut open = Vec::new();
                for i in 0..300 {
                    match std::net::TcpStream::connect_timeout(&addr, Duration::from_millis(500)) {
                        Ok(s) => open.push(s),
                        Err(e) => return Err(format!("{addr}: dial {i} waited: {e}")),
                    }
                }
                Ok(open.len())
            });
            assert_eq!(dials.await.unwrap(), Ok(300));
            drop(l);
        }
    }
}
