//! The TCP accept task: takes incoming connections, caps how many are open at once (a semaphore
//! permit per connection, held until it ends), and runs each one's handshake and session in its
//! own task. Accept errors (e.g. out of file descriptors) back off instead of spinning.

use std::sync::Arc;
use std::time::Duration;

use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

use super::{Ctx, handshake, session};

/// Run until `cancel`.
pub async fn run(listener: TcpListener, ctx: Arc<Ctx>, cancel: CancellationToken) {
    let mut backoff = Duration::from_millis(10);
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
        let Ok(permit) = ctx.limit.clone().try_acquire_owned() else {
            tracing::debug!(%remote, "too many connections; refused");
            continue;
        };
        let c = ctx.clone();
        ctx.tracker.spawn(async move {
            let _permit = permit;
            match handshake::handshake(stream, &c).await {
                Ok((hello, framed)) => session::run(hello, remote, false, framed, c).await,
                Err(e) => tracing::debug!(%remote, error = %e, "incoming connection refused"),
            }
        });
    }
    tracing::debug!("accept task stopped");
}
