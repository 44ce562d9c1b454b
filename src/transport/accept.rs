//! The TCP accept task: takes incoming connections, caps how many are open at once (a semaphore
//! permit per connection, held until it ends), and runs each one's handshake and session in its
//! own task. Accept errors (e.g. out of file descriptors) back off instead of spinning.
//! Connection attempts are also limited per IP address (a token bucket, [`crate::guard`]), so
//! that one address cannot take every slot or keep the handshakes busy.

use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

use super::{Ctx, handshake, session};
use crate::guard::{RateLimiter, WarnKind};

/// Run until `cancel`.
pub async fn run(listener: TcpListener, ctx: Arc<Ctx>, cancel: CancellationToken) {
    let mut backoff = Duration::from_millis(10);
    let mut per_ip = RateLimiter::new(ctx.conn_burst, ctx.conn_per_sec);
    loop {
        let (stream, remote) = tokio::select! {
            _ = cancel.cancelled() => break,
            r = listener.accept() => match r {
                Ok(x) => { backoff = Duration::from_millis(10); x }
                Err(e) => {
                    tracing::warn!(error = %e, "cannot accept a connection; retrying");
                    tokio::time::sleep(backoff).await;
                    backoff = (backoff * 2).min(Duration::from_secs(1));
                    continue;
                }
            },
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
