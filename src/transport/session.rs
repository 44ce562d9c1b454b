//! One live session: a reader (this task) and a writer (a task of its own, so that a peer that
//! does not read can never stop us reading, and the other way round).
//!
//! The node actor writes itself, at the end of each turn, through the session's [`Outbox`];
//! the writer task finishes what the socket did not take at once, pings when idle, and when the
//! actor lets go of the outbox it writes what is left and shuts its half down: a graceful close
//! loses nothing that was sent ([`super::outbox`]). The reader forwards messages to the actor
//! (awaiting, so a slow actor slows the socket rather than growing a queue), and ends on EOF, a
//! broken frame stream, or silence longer than the idle timeout. Undecodable frames are dropped,
//! not fatal, so a newer peer's new frame kinds do not end the session; but a record that does
//! not decrypt (altered, replayed, reordered, forged) ends it at once ([`super::noise`]).
//!
//! Keepalive ([`Liveness`]): a session that has written nothing for the keepalive interval
//! pings. The interval is short (2 s) while the session is the only sign that the peer lives, and
//! long (15 s, "quiet") while the actor hears the peer's beacons, which already prove it every
//! second: with 100 peers around that is 13 pings a second instead of 100. Each side chooses for
//! itself, so a side that needs to hear more often must be answered: a peer that receives a ping
//! and has written nothing on the session for [`ANSWER_AFTER`] answers with a ping (never an
//! answer to an answer: the first ping was written just before). The reader gives up after
//! `idle_timeout` of silence, longer by the difference of the intervals while quiet.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use futures_util::StreamExt;
use tokio::sync::mpsc;
use tokio::time::Instant;

use super::handshake::Framed;
use super::outbox::{self, Outbox, OutboxHandle};
use super::{BYE_LEAVING, Ctx, SessionMsg, Up};
use crate::codec::{self, Received};
use crate::protocol::{Frame, Hello};

/// The reader reads the clock at least once per this many frames.
const STAMP_EVERY: u32 = 64;
/// Frames in one report to the actor at most (the rest of the record goes in the next).
const REPORT_MAX: usize = 1024;

static NEXT_SID: AtomicU64 = AtomicU64::new(1);

/// A ping is answered when the session has written nothing for this long.
pub const ANSWER_AFTER: Duration = Duration::from_secs(1);

/// How often a session pings, and whether a ping must be answered: shared by its reader, its
/// writer and the actor (which makes it quiet while the peer's beacons are heard).
#[derive(Debug)]
pub struct Liveness {
    quiet: AtomicBool,
    short: Duration,
    long: Duration,
    /// Set by the reader (a ping to answer) or the actor (no longer quiet: ping at once).
    ping_now: AtomicBool,
    /// Wakes the writer task: a ping to send, a write to finish, or the outbox closed.
    pub(super) wake: tokio::sync::Notify,
    /// When the writer last wrote, in ms after `start`.
    last_write_ms: AtomicU64,
    start: Instant,
}

impl Liveness {
    pub(super) fn new(short: Duration, long: Duration) -> Liveness {
        Liveness {
            quiet: AtomicBool::new(false),
            short,
            long,
            ping_now: AtomicBool::new(false),
            wake: tokio::sync::Notify::new(),
            last_write_ms: AtomicU64::new(0),
            start: Instant::now(),
        }
    }

    /// Ping seldom (the peer's beacons are heard) or often (they are not: ping at once, to learn
    /// soon whether the session still carries).
    pub fn set_quiet(&self, quiet: bool) {
        if self.quiet.swap(quiet, Ordering::Relaxed) && !quiet {
            self.ping_now.store(true, Ordering::Relaxed);
            self.wake.notify_one();
        }
    }

    /// Is the session pinging seldom?
    pub fn is_quiet(&self) -> bool {
        self.quiet.load(Ordering::Relaxed)
    }

    pub(super) fn interval(&self) -> Duration {
        if self.is_quiet() { self.long } else { self.short }
    }

    /// Silence after which the reader gives up.
    fn idle_timeout(&self, base: Duration) -> Duration {
        if self.is_quiet() { base + self.long.saturating_sub(self.short) } else { base }
    }

    /// When something was last written (the session's start if nothing was).
    pub(super) fn last_write(&self) -> Instant {
        self.start + Duration::from_millis(self.last_write_ms.load(Ordering::Relaxed))
    }

    /// Is a ping asked for (and no longer, once this said so)?
    pub(super) fn take_ping_now(&self) -> bool {
        self.ping_now.swap(false, Ordering::Relaxed)
    }

    pub(super) fn wrote(&self) {
        // Whatever was written answers a pending ping.
        self.ping_now.store(false, Ordering::Relaxed);
        self.last_write_ms.store(self.start.elapsed().as_millis() as u64, Ordering::Relaxed);
    }

    /// A ping came in: answer it unless something was written lately.
    fn pinged(&self) {
        // The writer may store a later time than the one read here: saturate, never wrap.
        let since =
            (self.start.elapsed().as_millis() as u64).saturating_sub(self.last_write_ms.load(Ordering::Relaxed));
        if since >= ANSWER_AFTER.as_millis() as u64 {
            self.ping_now.store(true, Ordering::Relaxed);
            self.wake.notify_one();
        }
    }
}

/// Hand a handshaken connection to the actor and serve it until it ends.
pub async fn run(
    hello: Hello,
    remote: SocketAddr,
    local: Option<SocketAddr>,
    dialer_is_me: bool,
    framed: Framed,
    mark: Option<super::crossing::Mark>,
    ctx: Arc<Ctx>,
) {
    let sid = NEXT_SID.fetch_add(1, Ordering::Relaxed);
    let peer = hello.id;
    let (mut read, write) = framed;
    let cancel = ctx.cancel.child_token();
    tracing::debug!(sid, peer = %peer.short(), %remote, dialer_is_me, "session up");
    let live = Arc::new(Liveness::new(ctx.keepalive, ctx.quiet_keepalive));
    // The handshake's `FramedWrite` taken apart: what it holds (an acceptor's hello held back)
    // goes with the first frames.
    let parts = write.into_parts();
    let bounds = outbox::Bounds { frames: ctx.outbox_capacity, bytes: ctx.outbox_max_bytes, stall: ctx.idle_timeout };
    let out = Outbox::new(parts.io, parts.codec, parts.write_buf, bounds, live.clone(), cancel.clone());
    let outbox = OutboxHandle::new(out.clone());
    let up =
        Up { sid, hello, remote, local, dialer_is_me, outbox, cancel: cancel.clone(), liveness: live.clone(), mark };
    if ctx.actor.send(SessionMsg::Up(Box::new(up))).await.is_err() {
        return;
    }
    if let Some(files) = &ctx.files {
        files.tell(crate::files::Control::Up { peer, sid, out: Arc::downgrade(&out) });
    }
    let writer = tokio::spawn(outbox::run_writer(out, peer));

    let mut farewell = false;
    let mut eof = false;
    // A frame header over the limit in the rest of a record: the session ends after the report.
    let mut broken = false;
    // No timer per frame: one deadline, moved forward only when it fires and something was
    // heard since. The clock is read once per socket read (when the read buffer is drained) or
    // every `STAMP_EVERY` frames, not per frame.
    let mut last_heard = Instant::now();
    // Messages wait here for the seals that prove their authors.
    let mut verifier = crate::authorship::Verifier::new(ctx.room.as_str().into());
    let mut unstamped = 0u32;
    let mut report_len = 1;
    let idle = tokio::time::sleep_until(last_heard + live.idle_timeout(ctx.idle_timeout));
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
                let idle_timeout = live.idle_timeout(ctx.idle_timeout);
                if now.duration_since(last_heard) >= idle_timeout {
                    tracing::debug!(sid, peer = %peer.short(), ?idle_timeout, "session silent for too long");
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
        // This frame and the others already decrypted (the rest of its record) go to the actor
        // in one report: one channel message per record rather than per frame.
        // Sized as the last report was (a stream's reports are alike), so that a report of
        // hundreds of frames is not grown, and copied, nine times on the way.
        let mut frames = Vec::with_capacity(report_len);
        let mut pinged = false;
        let mut next = Some(bytes);
        while let Some(bytes) = next {
            unstamped += 1;
            match codec::decode_received(&bytes) {
                Ok(Received::Other(Frame::Ping)) => {
                    live.pinged();
                    pinged = true;
                }
                Ok(Received::Other(Frame::Bye(reason))) => {
                    tracing::debug!(sid, peer = %peer.short(), %reason, "peer closes the session");
                    farewell |= reason == BYE_LEAVING;
                }
                Ok(Received::Other(Frame::Hello(_))) => {
                    tracing::debug!(sid, peer = %peer.short(), "second hello dropped");
                }
                Err(e) => {
                    tracing::debug!(sid, peer = %peer.short(), error = %e, len = bytes.len(), "undecodable frame dropped");
                }
                Ok(Received::Other(Frame::Seal(seal))) => verifier.seal(seal),
                // The files engine's, straight to it (a file's parts never wait behind the
                // actor, nor the actor behind them).
                Ok(Received::Other(
                    frame @ (Frame::FileAsk(_)
                    | Frame::FileHave(_)
                    | Frame::FileWant(_)
                    | Frame::FilePart(_)
                    | Frame::FileNone(_)),
                )) => {
                    if let Some(files) = &ctx.files {
                        let msg = crate::files::FromPeer { peer, frame };
                        let sent = match files.frames.try_send(msg) {
                            Ok(()) => true,
                            Err(mpsc::error::TrySendError::Full(msg)) => tokio::select! {
                                biased;
                                _ = &mut cancelled => false,
                                r = files.frames.send(msg) => r.is_ok(),
                            },
                            Err(mpsc::error::TrySendError::Closed(_)) => true,
                        };
                        if !sent {
                            broken = true;
                            break;
                        }
                    }
                }
                Ok(m @ (Received::Message { .. } | Received::CatchUp { .. })) => {
                    if let Err(e) = verifier.hold(m) {
                        tracing::debug!(sid, peer = %peer.short(), error = %e, "peer sends messages without seals; closing");
                        broken = true;
                    }
                }
                // Everything else (acknowledgements, catch-up offers...) is the actor's business.
                Ok(r) => frames.push(r),
            }
            if frames.len() >= REPORT_MAX {
                break;
            }
            next = match read.decoder_mut().buffered_frame() {
                Ok(b) => b,
                Err(e) => {
                    tracing::debug!(sid, peer = %peer.short(), error = %e, "session frame error");
                    broken = true;
                    None
                }
            };
        }
        let checked = verifier.finish(&mut frames);
        if checked.refused > 0 {
            let ip = remote.ip();
            tracing::debug!(sid, peer = %peer.short(), refused = checked.refused, "messages that do not prove their author dropped");
            ctx.warner.warn(crate::guard::WarnKind::Unproved, ip, || {
                format!(
                    "dropped {} message(s) from the peer at {ip} that do not prove who wrote them (forged or altered)",
                    checked.refused
                )
            });
        }
        if unstamped >= STAMP_EVERY || read.read_buffer().is_empty() {
            last_heard = Instant::now();
            unstamped = 0;
        }
        report_len = frames.len().next_power_of_two().min(REPORT_MAX);
        let msg = match (frames.is_empty(), pinged) {
            (false, _) => SessionMsg::Frames { peer, frames },
            (true, true) => SessionMsg::Heard { peer },
            (true, false) if broken => break,
            (true, false) => continue,
        };
        // Most of the time the actor's queue has room: no await, no select.
        let msg = match ctx.actor.try_send(msg) {
            Ok(()) if broken => break,
            Ok(()) => continue,
            Err(mpsc::error::TrySendError::Closed(_)) => break,
            Err(mpsc::error::TrySendError::Full(m)) => m,
        };
        let sent = tokio::select! {
            biased;
            _ = &mut cancelled => break,
            r = ctx.actor.send(msg) => r,
        };
        if sent.is_err() || broken {
            break;
        }
    }
    // The reader is done, so is the session. On a clean end of stream the peer may still be
    // reading (both ends can close at once, e.g. when both drop the same duplicate session):
    // the actor is told first, lets go of the outbox, and the writer writes what is left
    // (bounded by the handshake timeout). On an error, silence or cancel, the writer stops now.
    if !eof {
        cancel.cancel();
    }
    tracing::debug!(sid, peer = %peer.short(), farewell, eof, "session closed");
    let _ = ctx.actor.send(SessionMsg::Closed { sid, peer, farewell }).await;
    if let Some(files) = &ctx.files {
        files.tell(crate::files::Control::Down { peer, sid });
    }
    let mut writer = writer;
    if tokio::time::timeout(ctx.handshake_timeout, &mut writer).await.is_err() {
        cancel.cancel();
        let _ = writer.await;
    }
}
