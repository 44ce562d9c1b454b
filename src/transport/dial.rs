//! Outgoing connections: connect within the handshake timeout, run the handshake, serve the
//! session. A failure of any step is reported to the actor as `DialFailed`, which decides
//! whether to try again (with backoff) or to report the peer gone.

use std::net::SocketAddr;
use std::sync::Arc;

use tokio::net::TcpStream;

use super::{Ctx, SessionMsg, handshake, session};
use crate::id::PeerId;

/// Dial `peer` at `addr` (spawned by the actor on the connection tracker).
pub async fn dial(peer: PeerId, addr: SocketAddr, ctx: Arc<Ctx>) {
    let failed = |why: String| {
        tracing::debug!(peer = %peer.short(), %addr, %why, "dial failed");
        SessionMsg::DialFailed { peer }
    };
    let Ok(_permit) = ctx.limit.clone().try_acquire_owned() else {
        let _ = ctx.actor.send(failed("too many connections".into())).await;
        return;
    };
    let stream = tokio::select! {
        _ = ctx.cancel.cancelled() => return,
        r = tokio::time::timeout(ctx.handshake_timeout, TcpStream::connect(addr)) => r,
    };
    let stream = match stream {
        Ok(Ok(s)) => s,
        Ok(Err(e)) => return drop(ctx.actor.send(failed(e.to_string())).await),
        Err(_) => return drop(ctx.actor.send(failed("connect timed out".into())).await),
    };
    match handshake::handshake(stream, &ctx, true, addr).await {
        Ok((hello, framed)) => {
            if hello.id != peer {
                // Someone else answers there now; the session with them is still good.
                let _ = ctx.actor.send(failed(format!("{} answered", hello.id.short()))).await;
            }
            session::run(hello, addr, true, framed, ctx).await;
        }
        Err(e) => {
            let _ = ctx.actor.send(failed(e.to_string())).await;
        }
    }
}
