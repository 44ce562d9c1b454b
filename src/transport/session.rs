//! One live session: a reader (this task) and a writer (a task of its own, so that a peer that
//! does not read can never stop us reading, and the other way round).
//!
//! The writer drains the outbox in batches (many frames, one flush), pings when idle, and when
//! every outbox sender is dropped it flushes what is queued and shuts its half down: a graceful
//! close loses nothing that was queued. The reader forwards messages to the actor (awaiting, so
//! a slow actor slows the socket rather than growing a queue), and ends on EOF, a broken frame
//! stream, or silence longer than the idle timeout. Undecodable frames are dropped, not fatal, so
//! a newer peer's new frame kinds do not end the session; but a record that does not decrypt
//! (altered, replayed, reordered, forged) ends it at once ([`super::noise`]).

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use bytes::Bytes;
use futures_util::StreamExt;
use tokio::io::AsyncWriteExt;
use tokio::net::tcp::OwnedWriteHalf;
use tokio::sync::mpsc;
use tokio::time::Instant;
use tokio_util::codec::FramedWrite;
use tokio_util::sync::CancellationToken;

use super::handshake::Framed;
use super::noise::NoiseWriter;
use super::{BYE_LEAVING, Ctx, SessionMsg, Up};
use crate::codec;
use crate::protocol::{Frame, Hello};

/// Frames written per flush at most.
const BATCH: usize = 256;
/// Bytes of frames gathered for one write, about (a frame already taken is always written).
const BATCH_BYTES: usize = 64 * 1024;
/// The reader reads the clock at least once per this many frames.
const STAMP_EVERY: u32 = 64;

static NEXT_SID: AtomicU64 = AtomicU64::new(1);

/// Hand a handshaken connection to the actor and serve it until it ends.
pub async fn run(
    hello: Hello,
    remote: SocketAddr,
    local: Option<SocketAddr>,
    dialer_is_me: bool,
    framed: Framed,
    ctx: Arc<Ctx>,
) {
    let sid = NEXT_SID.fetch_add(1, Ordering::Relaxed);
    let peer = hello.id;
    let (mut read, write) = framed;
    let (outbox, rx) = mpsc::channel(ctx.outbox_capacity);
    let cancel = ctx.cancel.child_token();
    tracing::debug!(sid, peer = %peer.short(), %remote, dialer_is_me, "session up");
    let up = Up { sid, hello, remote, local, dialer_is_me, outbox, cancel: cancel.clone() };
    if ctx.actor.send(SessionMsg::Up(up)).await.is_err() {
        return;
    }
    let writer = tokio::spawn(write_loop(write, rx, ctx.keepalive, cancel.clone()));

    let mut farewell = false;
    let mut eof = false;
    // No timer per frame: one deadline, moved forward only when it fires and something was
    // heard since. The clock is read once per socket read (when the read buffer is drained) or
    // every `STAMP_EVERY` frames, not per frame.
    let idle_timeout = ctx.idle_timeout;
    let mut last_heard = Instant::now();
    let mut unstamped = 0u32;
    let idle = tokio::time::sleep_until(last_heard + idle_timeout);
    tokio::pin!(idle);
    // Registered once for the session's life, not once per frame.
    let cancelled = cancel.cancelled();
    tokio::pin!(cancelled);
    loop {
        let next = tokio::select! {
            biased;
            _ = &mut cancelled => break,
            r = read.next() => r,
            _ = &mut idle => {
                let now = Instant::now();
                if unstamped > 0 {
                    last_heard = now;
                    unstamped = 0;
                }
                if now.duration_since(last_heard) >= idle_timeout {
                    tracing::debug!(sid, peer = %peer.short(), "session silent for too long");
                    break;
                }
                idle.as_mut().reset(last_heard + idle_timeout);
                continue;
            }
        };
        let bytes = match next {
            Some(Ok(b)) => b,
            Some(Err(e)) => {
                tracing::debug!(sid, peer = %peer.short(), error = %e, "session frame error");
                break;
            }
            None => {
                eof = true;
                break;
            }
        };
        unstamped += 1;
        if unstamped >= STAMP_EVERY || read.read_buffer().is_empty() {
            last_heard = Instant::now();
            unstamped = 0;
        }
        let msg = match codec::decode::<Frame>(&bytes) {
            Ok(Frame::Ping) => SessionMsg::Heard { peer },
            Ok(Frame::Bye(reason)) => {
                tracing::debug!(sid, peer = %peer.short(), %reason, "peer closes the session");
                farewell |= reason == BYE_LEAVING;
                continue;
            }
            Ok(Frame::Hello(_)) => {
                tracing::debug!(sid, peer = %peer.short(), "second hello dropped");
                continue;
            }
            Err(e) => {
                tracing::debug!(sid, peer = %peer.short(), error = %e, len = bytes.len(), "undecodable frame dropped");
                continue;
            }
            // Everything else (messages, acknowledgements, catch-up) is the actor's business.
            Ok(frame) => SessionMsg::Frame { peer, frame },
        };
        // Most of the time the actor's queue has room: no await, no select.
        let msg = match ctx.actor.try_send(msg) {
            Ok(()) => continue,
            Err(mpsc::error::TrySendError::Closed(_)) => break,
            Err(mpsc::error::TrySendError::Full(m)) => m,
        };
        let sent = tokio::select! {
            biased;
            _ = &mut cancelled => break,
            r = ctx.actor.send(msg) => r,
        };
        if sent.is_err() {
            break;
        }
    }
    // The reader is done, so is the session. On a clean end of stream the peer may still be
    // reading (both ends can close at once, e.g. when both drop the same duplicate session):
    // the actor is told first, drops its outbox sender, and the writer flushes what is queued
    // (bounded by the handshake timeout). On an error, silence or cancel, the writer stops now.
    if !eof {
        cancel.cancel();
    }
    tracing::debug!(sid, peer = %peer.short(), farewell, eof, "session closed");
    let _ = ctx.actor.send(SessionMsg::Closed { sid, peer, farewell }).await;
    let mut writer = writer;
    if tokio::time::timeout(ctx.handshake_timeout, &mut writer).await.is_err() {
        cancel.cancel();
        let _ = writer.await;
    }
}

async fn write_loop(
    write: FramedWrite<OwnedWriteHalf, NoiseWriter>,
    mut rx: mpsc::Receiver<Bytes>,
    keepalive: std::time::Duration,
    cancel: CancellationToken,
) {
    // The frames of one batch go out as few records as they fit in (`encode_batch`), then one
    // write: the `FramedWrite` of the handshake is taken apart for that.
    let parts = write.into_parts();
    let (mut io, mut noise, mut buf) = (parts.io, parts.codec, parts.write_buf);
    let ping = codec::encode(&Frame::Ping).expect("ping encodes");
    let mut batch: Vec<Bytes> = Vec::with_capacity(BATCH);
    let cancelled = cancel.cancelled();
    tokio::pin!(cancelled);
    let mut last_write = Instant::now();
    loop {
        if buf.is_empty() {
            let first = tokio::select! {
                biased;
                _ = &mut cancelled => return,
                m = rx.recv() => m,
                _ = tokio::time::sleep_until(last_write + keepalive) => Some(ping.clone()),
            };
            let Some(first) = first else {
                // Every sender dropped: what is queued is written; close our half gracefully.
                let _ = io.shutdown().await;
                return;
            };
            let mut bytes = first.len();
            batch.push(first);
            while batch.len() < BATCH && bytes < BATCH_BYTES {
                match rx.try_recv() {
                    Ok(b) => {
                        bytes += b.len();
                        batch.push(b);
                    }
                    Err(_) => break,
                }
            }
            let r = noise.encode_batch(batch.iter().map(|b| &b[..]), &mut buf);
            batch.clear();
            if let Err(e) = r {
                tracing::debug!(error = %e, "session write failed");
                cancel.cancel();
                return;
            }
        }
        let result = tokio::select! {
            biased;
            _ = &mut cancelled => return,
            r = io.write_all_buf(&mut buf) => r,
        };
        if let Err(e) = result {
            tracing::debug!(error = %e, "session write failed");
            cancel.cancel();
            return;
        }
        last_write = Instant::now();
    }
}
