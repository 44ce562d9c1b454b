//! The TCP accept task: takes incoming connections, caps how many are open at once (a semaphore
//! permit per connection, held until it ends), and runs each one's handshake and session in its
//! own task. Accept errors (e.g. out of file descriptors) back off instead of spinning.
//! Connection attempts are also limited per IP address (a token bucket, [`crate::guard`]), so
//! that one address cannot take every slot or keep the handshakes busy.
//!
//! There may be two listeners on the same port: the IPv4 one and an IPv6 one (IPV6_V6ONLY, so
//! that each family has its own socket whatever the system's default). Both are served here.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

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
        let Ok(permit) = ctx.limit.clone().try_acquire_owned() else {
            tracing::debug!(%remote, "too many connections; refused");
            continue;
        };
        let c = ctx.clone();
        ctx.tracker.spawn(async move {
            let _permit = permit;
            let local = stream.local_addr().ok();
            match handshake::handshake(stream, &c, handshake::End::Acceptor, remote).await {
                Ok((hello, framed, mark)) => session::run(hello, remote, local, false, framed, mark, c).await,
                Err(e) => tracing::debug!(%remote, error = %e, "incoming connection refused"),
            }
        });
    }
    tracing::debug!("accept task stopped");
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
