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

/// The IPv6 session listener on `addr` (`[::]:port` or `[::1]:port`): IPV6_V6ONLY, so that it
/// never competes with the IPv4 listener on the same port; SO_REUSEADDR as tokio sets it on the
/// IPv4 one (a restart does not wait for TIME_WAIT).
pub fn listen_v6(addr: SocketAddr) -> std::io::Result<TcpListener> {
    let s = socket2::Socket::new(socket2::Domain::IPV6, socket2::Type::STREAM, Some(socket2::Protocol::TCP))?;
    s.set_only_v6(true)?;
    #[cfg(unix)]
    s.set_reuse_address(true)?;
    s.set_nonblocking(true)?;
    s.bind(&addr.into())?;
    s.listen(1024)?;
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
            match handshake::handshake(stream, &c, false, remote).await {
                Ok((hello, framed)) => session::run(hello, remote, local, false, framed, c).await,
                Err(e) => tracing::debug!(%remote, error = %e, "incoming connection refused"),
            }
        });
    }
    tracing::debug!("accept task stopped");
}
