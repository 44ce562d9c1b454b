//! Outgoing connections: take a place from the dials' reserve ([`super::slots`]), connect within
//! the handshake timeout, run the handshake, serve the session. A failure of any step is reported to the actor as `DialFailed`, which decides
//! whether to try again (with backoff) or to report the peer gone.
//!
//! A peer may be known at several addresses (several interfaces, an old and a new lease, what
//! gossip said): they are tried in order, each with its share of the connect timeout, and the
//! first that connects is used. Seeds ([`dial_seed`]) are named by host and port: the name is
//! resolved on every attempt.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use tokio::net::TcpStream;

use super::handshake::{End, HandshakeError};
use super::noise::NoiseError;
use super::{Ctx, SessionMsg, handshake, session};
use crate::diag::{COUNTS, Counts};
use crate::id::PeerId;
use crate::seeds::{SeedAddr, SeedOutcome};

/// Shortest connect timeout per address when several are tried.
const MIN_CONNECT: Duration = Duration::from_millis(1000);

/// Connect to the first of `addrs` that answers; Err(why) if none does (or on cancel: None).
async fn connect_any(addrs: &[SocketAddr], ctx: &Ctx) -> Option<Result<(TcpStream, SocketAddr), String>> {
    if addrs.is_empty() {
        return Some(Err("no address".into()));
    }
    let each = (ctx.handshake_timeout / addrs.len() as u32).max(MIN_CONNECT.min(ctx.handshake_timeout));
    let mut why = String::new();
    for &addr in addrs {
        let r = tokio::select! {
            _ = ctx.cancel.cancelled() => return None,
            r = tokio::time::timeout(each, TcpStream::connect(addr)) => r,
        };
        match r {
            Ok(Ok(s)) => return Some(Ok((s, addr))),
            Ok(Err(e)) => why = format!("{addr}: {e}"),
            Err(_) => why = format!("{addr}: connect timed out"),
        }
        tracing::debug!(%why, "connect failed");
    }
    Some(Err(why))
}

/// Dial `peer` at `addrs`, in order (spawned by the actor on the connection tracker).
pub async fn dial(peer: PeerId, addrs: Vec<SocketAddr>, ctx: Arc<Ctx>) {
    let failed = |why: String| {
        tracing::debug!(peer = %peer.short(), ?addrs, %why, "dial failed");
        SessionMsg::DialFailed { peer }
    };
    let Some(_slot) = ctx.slots.dial() else {
        let _ = ctx.actor.send(failed("too many connections".into())).await;
        return;
    };
    Counts::bump(&COUNTS.dials);
    let t0 = std::time::Instant::now();
    let turn = tokio::select! {
        _ = ctx.cancel.cancelled() => return,
        t = ctx.dialing.clone().acquire_owned() => t,
    };
    COUNTS.dial_wait_us.fetch_add(t0.elapsed().as_micros() as u64, std::sync::atomic::Ordering::Relaxed);
    let actor = &ctx.actor;
    let crossed = |refused: bool| async move {
        tracing::debug!(peer = %peer.short(), refused, "the peer is dialing us at the same time; waiting for its session");
        let _ = actor.send(SessionMsg::DialCrossed { peer, refused }).await;
    };
    // Its handshake with us may have started since the actor decided to dial (this task may
    // have waited for its turn): then connecting would only cross it.
    if ctx.crossing.inbound(&peer) {
        return crossed(false).await;
    }
    let (stream, addr) = match connect_any(&addrs, &ctx).await {
        None => return,
        Some(Ok(x)) => x,
        Some(Err(why)) => {
            Counts::bump(&COUNTS.connect_failed);
            return drop(ctx.actor.send(failed(why)).await);
        }
    };
    let Some(mark) = ctx.crossing.dialing(peer) else { return crossed(false).await };
    let local = stream.local_addr().ok();
    let shaken = handshake::handshake(stream, &ctx, End::Dialer, addr, None).await;
    drop(turn);
    match shaken {
        Ok((hello, framed, _)) => {
            let mark = if hello.id != peer {
                // Someone else answers there now; the session with them is still good.
                let _ = ctx.actor.send(failed(format!("{} answered", hello.id.short()))).await;
                None
            } else {
                Some(mark)
            };
            session::run(hello, addr, local, true, framed, mark, ctx).await;
        }
        Err(HandshakeError::Noise(NoiseError::Crossed)) => crossed(true).await,
        Err(e) => {
            let _ = ctx.actor.send(failed(e.to_string())).await;
        }
    }
}

/// Most addresses tried for one seed name.
const SEED_ADDRS: usize = 4;

/// Dial seed number `seed` at `at`: resolve the name now (a name may point elsewhere than at
/// the last attempt), connect to the first address that answers, handshake, serve the session.
pub async fn dial_seed(seed: usize, at: SeedAddr, ctx: Arc<Ctx>) {
    let report = |outcome: SeedOutcome| SessionMsg::SeedDialed { seed, outcome };
    let Some(_slot) = ctx.slots.dial() else {
        let _ = ctx.actor.send(report(SeedOutcome::Failed)).await;
        return;
    };
    let lookup = tokio::select! {
        _ = ctx.cancel.cancelled() => return,
        r = tokio::time::timeout(ctx.handshake_timeout, tokio::net::lookup_host((at.host.as_str(), at.port))) => r,
    };
    let mut addrs: Vec<SocketAddr> = match lookup {
        Ok(Ok(a)) => a.collect(),
        Ok(Err(e)) => {
            tracing::debug!(seed = %at, error = %e, "cannot resolve the seed's name");
            Vec::new()
        }
        Err(_) => {
            tracing::debug!(seed = %at, "resolving the seed's name timed out");
            Vec::new()
        }
    };
    addrs.dedup();
    addrs.truncate(SEED_ADDRS);
    let (stream, addr) = match connect_any(&addrs, &ctx).await {
        None => return,
        Some(Ok(x)) => x,
        Some(Err(why)) => {
            tracing::debug!(seed = %at, %why, "seed does not answer");
            let _ = ctx.actor.send(report(SeedOutcome::Failed)).await;
            return;
        }
    };
    let local = stream.local_addr().ok();
    match handshake::handshake(stream, &ctx, End::SeedDialer, addr, None).await {
        Ok((hello, framed, _)) => {
            tracing::debug!(seed = %at, peer = %hello.id.short(), %addr, "seed answered");
            if ctx.actor.send(report(SeedOutcome::Up(hello.id))).await.is_err() {
                return;
            }
            session::run(hello, addr, local, true, framed, None, ctx).await;
        }
        Err(HandshakeError::SelfId) => {
            let _ = ctx.actor.send(report(SeedOutcome::Itself)).await;
        }
        Err(e) => {
            tracing::debug!(seed = %at, error = %e, "seed refused the session");
            let _ = ctx.actor.send(report(SeedOutcome::Failed)).await;
        }
    }
}
