//! A session's sending side, shared by the node actor and the session's writer task.
//!
//! Why shared rather than a queue to the writer: at the end of its turn the actor writes a few
//! frames for a peer (a chat, an acknowledgement, a hello's answers: what a fan-out or a room
//! forming sends) itself, encrypted as one Noise record and written with one `try_write`, so
//! they cost no wake-up of another task. A teacher's problem posted to 100 students was 100
//! writer tasks woken, each a poll and often a thread woken; now it is 100 writes from the
//! actor's thread. Many frames for one peer in one turn (a stream: up to 256, or a window's
//! opening) still go to the writer task, which encrypts and writes them on another core while
//! the actor goes on with its next turn (round 10 of docs/benchmarks-history.md measured both).
//! The writer task also finishes a write the socket did not take whole (waiting for it to be
//! writable), pings when the session has been silent, and closes the write half gracefully
//! once the actor lets go ([`OutboxHandle`] dropped) and everything is written.
//!
//! Order and bounds: frames reach the socket in the order they were sent, because a few frames
//! are written at once only when nothing is queued for the writer or waiting for the socket,
//! and encoding and writing both happen under one lock (the Noise nonces must reach the peer in
//! order). What the socket has not taken waits in one buffer, and a peer that still leaves more
//! than `capacity` frames waiting when more are sent is not reading: the actor closes its
//! session rather than let the buffer grow (see `Live::push` in the actor). Only frames waiting
//! from earlier turns count, never a turn's own: a session's first turn may send a whole window
//! at once, and a peer must not be cut for what it has not had the time to read.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};

use bytes::{Buf, BytesMut};
use tokio::net::tcp::OwnedWriteHalf;
use tokio_util::sync::CancellationToken;

use super::noise::NoiseWriter;
use super::session::Liveness;
use crate::codec::{self, OutFrame};
use crate::protocol::Frame;

/// At most this many frames, of at most `INLINE_BYTES` together, are written by the caller of
/// `send` itself; more go to the writer task.
const INLINE_FRAMES: usize = 16;
const INLINE_BYTES: usize = 64 * 1024;
/// The writer's queue is kept for the next turn up to this capacity.
const QUEUED_KEPT: usize = 1024;

/// Why frames were not taken.
#[derive(Debug, PartialEq, Eq)]
pub enum Refused {
    /// The session is closed or broken.
    Closed,
    /// More than the capacity in frames was waiting for the socket already: the peer is not
    /// reading.
    Full,
}

#[derive(Debug)]
struct State {
    noise: NoiseWriter,
    /// Frames handed to the writer task, not yet encoded (a turn's many frames: see `send`).
    queued: Vec<OutFrame>,
    /// Encoded records not yet taken by the socket.
    buf: BytesMut,
    /// Bytes ever appended to `buf`, and ever written from it.
    appended: u64,
    written: u64,
    /// Where each batch still (partly) in `buf` ends (in `appended` terms), and its frames: a
    /// batch stops counting as waiting once its last byte is written.
    batches: VecDeque<(u64, usize)>,
    /// The writer task is waiting for the socket to be writable to finish `buf`: others only
    /// append.
    writer_waits: bool,
    /// The actor let go: write what is left, then close the write half.
    closing: bool,
}

/// The sending side of one session.
#[derive(Debug)]
pub struct Outbox {
    state: Mutex<State>,
    io: OwnedWriteHalf,
    /// Frames queued, or in batches of `buf` not yet wholly written (read without the lock by
    /// the actor, written under it).
    waiting: AtomicUsize,
    capacity: usize,
    live: Arc<Liveness>,
    cancel: CancellationToken,
}

impl Outbox {
    /// The sending side of a handshaken connection; `buf` holds what the handshake left to write
    /// (an acceptor's hello, held back to go with the first frames).
    pub fn new(
        io: OwnedWriteHalf,
        noise: NoiseWriter,
        buf: BytesMut,
        capacity: usize,
        live: Arc<Liveness>,
        cancel: CancellationToken,
    ) -> Arc<Outbox> {
        Arc::new(Outbox {
            state: Mutex::new(State {
                noise,
                queued: Vec::new(),
                appended: buf.len() as u64,
                buf,
                written: 0,
                batches: VecDeque::new(),
                writer_waits: false,
                closing: false,
            }),
            io,
            waiting: AtomicUsize::new(0),
            capacity,
            live,
            cancel,
        })
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        // Every change under it is a few assignments: a panic elsewhere while it was held leaves
        // the state consistent, so a poisoned lock is used as it is.
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Frames waiting for the socket now (not yet all written).
    pub fn waiting(&self) -> usize {
        self.waiting.load(Ordering::Relaxed)
    }

    /// Most frames that may wait, from earlier sends, before the peer counts as not reading.
    pub fn capacity(&self) -> usize {
        self.capacity
    }

    /// Send `frames`, after everything sent before. A few frames (a chat, an acknowledgement: the
    /// fan-out case) are encrypted and written at once, what the socket does not take finished
    /// by the writer task; many (a stream: hundreds per turn) are handed to the writer task, which
    /// encrypts and writes them on another core while this turn's caller goes on to the next.
    /// The frames are taken from `frames` (moved, not copied), which is left empty.
    pub fn send(&self, frames: &mut Vec<OutFrame>) -> Result<(), Refused> {
        if frames.is_empty() {
            return Ok(());
        }
        if self.cancel.is_cancelled() {
            return Err(Refused::Closed);
        }
        let mut st = self.lock();
        if st.closing {
            return Err(Refused::Closed);
        }
        // What is waiting from before counts, not this turn's frames: a session's first turn may
        // send a whole window at once, whatever the capacity.
        if self.waiting() > self.capacity {
            return Err(Refused::Full);
        }
        self.waiting.fetch_add(frames.len(), Ordering::Relaxed);
        let few = frames.len() <= INLINE_FRAMES && frames.iter().map(|f| f.len()).sum::<usize>() <= INLINE_BYTES;
        if few && !st.writer_waits && st.queued.is_empty() {
            let appended = self.append(&mut st, frames.iter(), frames.len());
            frames.clear();
            appended?;
            self.write_some(&mut st, true)?;
        } else {
            // The writer is woken unless it is busy already (it takes the queue on each pass).
            let wake = st.queued.is_empty() && !st.writer_waits;
            st.queued.append(frames);
            if wake {
                self.live.wake.notify_one();
            }
        }
        Ok(())
    }

    /// Encode `n` frames at the end of `buf` (`waiting` counts them already).
    fn append<'a>(
        &self,
        st: &mut State,
        frames: impl IntoIterator<Item = &'a OutFrame>,
        n: usize,
    ) -> Result<(), Refused> {
        let before = st.buf.len();
        if let Err(e) = st.noise.encode_batch(frames, &mut st.buf) {
            tracing::debug!(error = %e, "session write failed");
            self.cancel.cancel();
            return Err(Refused::Closed);
        }
        st.appended += (st.buf.len() - before) as u64;
        st.batches.push_back((st.appended, n));
        Ok(())
    }

    /// Encode the queued frames at the end of `buf` (the writer task's part of `send`).
    fn encode_queued(&self, st: &mut State) -> Result<(), Refused> {
        if st.queued.is_empty() {
            return Ok(());
        }
        let mut queued = std::mem::take(&mut st.queued);
        let r = self.append(st, queued.iter(), queued.len());
        queued.clear();
        if queued.capacity() <= QUEUED_KEPT {
            st.queued = queued; // kept for its capacity
        }
        r
    }

    /// Write as much of `buf` as the socket takes without waiting. True when all is written;
    /// false when the writer must wait for the socket (woken to do so with `wake_writer`).
    fn write_some(&self, st: &mut State, wake_writer: bool) -> Result<bool, Refused> {
        let mut wrote = false;
        let r = loop {
            if st.buf.is_empty() {
                break Ok(true);
            }
            match self.io.try_write(&st.buf) {
                Ok(n) => {
                    st.buf.advance(n);
                    st.written += n as u64;
                    while let Some(&(end, frames)) = st.batches.front()
                        && end <= st.written
                    {
                        st.batches.pop_front();
                        self.waiting.fetch_sub(frames, Ordering::Relaxed);
                    }
                    wrote = true;
                }
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {
                    st.writer_waits = true;
                    if wake_writer {
                        self.live.wake.notify_one();
                    }
                    break Ok(false);
                }
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                Err(e) => {
                    tracing::debug!(error = %e, "session write failed");
                    self.cancel.cancel();
                    break Err(Refused::Closed);
                }
            }
        };
        if wrote {
            self.live.wrote();
        }
        r
    }

    /// The actor lets go: the writer writes what is left and closes the write half.
    fn close(&self) {
        self.lock().closing = true;
        self.live.wake.notify_one();
    }
}

/// The actor's hold on a session's [`Outbox`]: dropping it closes the session gracefully (what
/// was sent is written first).
#[derive(Debug)]
pub struct OutboxHandle(Arc<Outbox>);

impl OutboxHandle {
    /// The handle of an outbox.
    pub fn new(outbox: Arc<Outbox>) -> OutboxHandle {
        OutboxHandle(outbox)
    }
}

impl std::ops::Deref for OutboxHandle {
    type Target = Outbox;

    fn deref(&self) -> &Outbox {
        &self.0
    }
}

impl Drop for OutboxHandle {
    fn drop(&mut self) {
        self.0.close();
    }
}

/// The session's writer task: finish writes the socket did not take whole, ping when silent,
/// close the write half once the actor let go and everything is written. Ends at once when the
/// session is cancelled.
pub async fn run_writer(out: Arc<Outbox>) {
    let ping: OutFrame = codec::encode(&Frame::Ping).expect("ping encodes").into();
    let live = out.live.clone();
    let cancelled = out.cancel.cancelled();
    tokio::pin!(cancelled);
    loop {
        // Wait for something to do.
        let due = live.last_write() + live.interval();
        let mut ping_due = tokio::select! {
            biased;
            _ = &mut cancelled => return,
            _ = live.wake.notified() => live.take_ping_now(),
            _ = tokio::time::sleep_until(due) => live.last_write() + live.interval() <= tokio::time::Instant::now(),
        };
        // Write until done, waiting for the socket as needed.
        loop {
            let (done, closing) = {
                let mut st = out.lock();
                if out.encode_queued(&mut st).is_err() {
                    return;
                }
                let ping_now = std::mem::take(&mut ping_due) && st.buf.is_empty() && !st.closing;
                if ping_now {
                    out.waiting.fetch_add(1, Ordering::Relaxed);
                    if out.append(&mut st, [&ping], 1).is_err() {
                        return;
                    }
                }
                st.writer_waits = false;
                match out.write_some(&mut st, false) {
                    Ok(done) => (done, st.closing),
                    Err(_) => return,
                }
            };
            if done {
                if closing {
                    // Dropping the last `Arc` drops the write half, which shuts it down; the
                    // actor's handle is gone already.
                    return;
                }
                break;
            }
            let writable = tokio::select! {
                biased;
                _ = &mut cancelled => return,
                r = out.io.writable() => r,
            };
            if let Err(e) = writable {
                tracing::debug!(error = %e, "session write failed");
                out.cancel.cancel();
                return;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use bytes::Bytes;
    use tokio::io::AsyncReadExt;
    use tokio::net::TcpStream;
    use tokio_util::codec::Decoder;

    use super::*;
    use crate::codec::Received;
    use crate::transport::noise::NoiseReader;
    use crate::transport::noise::tests::pair;

    const MAX: usize = 1 << 20;

    /// An outbox on one end of a loopback connection (the writer task running), the other end
    /// and the reader's keys.
    async fn setup(
        capacity: usize,
        keepalive: Duration,
    ) -> (OutboxHandle, TcpStream, NoiseReader, tokio::task::JoinHandle<()>) {
        let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let c = TcpStream::connect(l.local_addr().unwrap()).await.unwrap();
        let (s, _) = l.accept().await.unwrap();
        let (a, b) = pair(None);
        let (_, w) = c.into_split();
        let live = Arc::new(Liveness::new(keepalive, keepalive));
        let out = Outbox::new(w, NoiseWriter::new(a, MAX), BytesMut::new(), capacity, live, CancellationToken::new());
        let writer = tokio::spawn(run_writer(out.clone()));
        (OutboxHandle::new(out), s, NoiseReader::new(b, MAX), writer)
    }

    fn frame(i: u32, len: usize) -> Bytes {
        let mut f = vec![(i % 251) as u8; len];
        f[..4].copy_from_slice(&i.to_be_bytes());
        Bytes::from(f)
    }

    fn outs(frames: &[Bytes]) -> Vec<OutFrame> {
        frames.iter().cloned().map(OutFrame::from).collect()
    }

    /// Read frames until end of stream (or `limit` frames).
    async fn read_all(s: &mut TcpStream, r: &mut NoiseReader, limit: usize) -> Vec<Bytes> {
        let mut wire = BytesMut::new();
        let mut got = Vec::new();
        loop {
            while let Some(f) = r.decode(&mut wire).unwrap() {
                got.push(f);
            }
            if got.len() >= limit {
                return got;
            }
            let read = tokio::time::timeout(Duration::from_secs(10), s.read_buf(&mut wire)).await;
            if read.expect("frames within 10 s").unwrap() == 0 {
                return got;
            }
        }
    }

    /// More than the socket takes at once, in sends of a few frames (written by the caller)
    /// and of many (handed to the writer) mixed: the writes stop at the full socket, the writer
    /// finishes them in order once the peer reads, and nothing counts as waiting after.
    #[tokio::test]
    async fn what_the_socket_does_not_take_is_finished_in_order_by_the_writer() {
        let (out, mut s, mut r, _writer) = setup(100_000, Duration::from_secs(60)).await;
        let n = 8_000u32;
        let mut i = 0;
        for size in [1u32, 10, 100, 3, 50, 16, 17].into_iter().cycle() {
            let end = (i + size).min(n);
            let frames: Vec<Bytes> = (i..end).map(|i| frame(i, 1000)).collect();
            out.send(&mut outs(&frames)).unwrap();
            i = end;
            if i == n {
                break;
            }
        }
        assert!(out.waiting() > 0, "8 MB cannot all be in the socket buffers yet");
        let got = read_all(&mut s, &mut r, n as usize).await;
        assert_eq!(got.len(), n as usize);
        for (i, f) in got.iter().enumerate() {
            assert_eq!(f, &frame(i as u32, 1000), "frame {i} in order and whole");
        }
        assert_eq!(out.waiting(), 0);
    }

    /// A peer that does not read: once more than `capacity` frames wait, more are refused as
    /// `Full`.
    #[tokio::test]
    async fn a_peer_that_does_not_read_fills_the_outbox() {
        let (out, _s, _r, _writer) = setup(2_000, Duration::from_secs(60)).await;
        let mut refused = None;
        for i in 0..100u32 {
            let frames: Vec<Bytes> = (0..100).map(|j| frame(i * 100 + j, 10_000)).collect();
            if let Err(e) = out.send(&mut outs(&frames)) {
                refused = Some((i, e));
                break;
            }
        }
        let (i, e) = refused.expect("refused before 100 MB");
        assert_eq!(e, Refused::Full);
        assert!(out.waiting() > 2_000 && out.waiting() <= 2_100, "{} frames waiting after {i} sends", out.waiting());
    }

    /// Dropping the handle: what was sent is written, then the write half closes (end of
    /// stream), and the writer ends.
    #[tokio::test]
    async fn dropping_the_handle_writes_everything_then_closes() {
        let (out, mut s, mut r, writer) = setup(100_000, Duration::from_secs(60)).await;
        let frames: Vec<Bytes> = (0..3_000).map(|i| frame(i, 1000)).collect();
        out.send(&mut outs(&frames)).unwrap();
        drop(out);
        let got = read_all(&mut s, &mut r, usize::MAX).await;
        assert_eq!(got, frames, "every frame, then end of stream");
        tokio::time::timeout(Duration::from_secs(5), writer).await.expect("writer ends").unwrap();
    }

    /// Silent for the keepalive interval: the writer pings; writing something puts it off.
    #[tokio::test]
    async fn a_silent_session_pings() {
        let (out, mut s, mut r, _writer) = setup(100, Duration::from_millis(200)).await;
        let t0 = tokio::time::Instant::now();
        let got = read_all(&mut s, &mut r, 1).await;
        assert!(t0.elapsed() >= Duration::from_millis(150), "not before the interval");
        assert!(matches!(codec::decode_received(&got[0]), Ok(Received::Other(Frame::Ping))));
        out.send(&mut outs(&[frame(7, 10)])).unwrap();
        let got = read_all(&mut s, &mut r, 1).await;
        assert_eq!(got[0], frame(7, 10), "the frame, not a ping, comes next");
    }
}
