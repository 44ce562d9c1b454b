//! A session's sending side, shared by the node actor and the session's writer task.
//!
//! Why shared rather than a queue to the writer: at the end of its turn the actor writes a few
//! frames for a peer (a chat, an acknowledgement, a hello's answers: what a fan-out or a room
//! forming sends) itself, encrypted as one Noise record and written with one `try_write`, so
//! they cost no wake-up of another task. A teacher's problem posted to 100 students was 100
//! writer tasks woken, each a poll and often a thread woken; now it is 100 writes from the
//! actor's thread. Many frames for one peer in one turn (a stream: up to 256, or a window's
//! opening) still go to the writer task, which encrypts and writes them on another core while
//! the actor goes on with its next turn.
//! The writer task also finishes a write the socket did not take whole (waiting for it to be
//! writable), pings when the session has been silent, and closes the write half gracefully
//! once the actor lets go ([`OutboxHandle`] dropped) and everything is written.
//!
//! Order: frames reach the socket in the order they were sent, because a few frames are written
//! at once only when nothing is queued for the writer or waiting for the socket, and encoding and
//! writing both happen under one lock (the Noise nonces must reach the peer in order).
//!
//! Bounds ([`Bounds`]): what the socket has not taken waits in one buffer, counted in frames and
//! in bytes. A peer that still leaves more than `frames` frames or `bytes` bytes waiting when more
//! are sent is not reading: the actor closes its session rather than let the buffer grow (see
//! `Live::push` in the actor). For the frame count only frames waiting from earlier turns count,
//! never a turn's own: a session's first turn may send a whole window at once, and a peer must
//! not be cut for what it has not had the time to read. Bytes are bounded whatever the frame
//! mix, a turn's own included: a message (a stream or catch-up frame) that would take the bytes
//! waiting past the bound is not taken this turn ([`Outbox::admit`]), and goes in a later one
//! (its stream sends it again once the peer acknowledges what it read). So a turn never queues
//! more than the bound, and a peer that reads is never cut for a large turn; one that does not
//! read stops the socket, and the writer cuts a session whose socket takes nothing for `stall`
//! while bytes wait.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

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
    /// More than the bound in frames or in bytes was waiting for the socket already: the peer
    /// is not reading.
    Full,
}

/// How much may wait for one session's socket.
#[derive(Debug, Clone, Copy)]
pub struct Bounds {
    /// Frames waiting from earlier turns, at most.
    pub frames: usize,
    /// Bytes waiting, at most.
    pub bytes: usize,
    /// A socket that takes nothing for this long while bytes wait is the peer's that does not
    /// read: the session is cut.
    pub stall: Duration,
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
    /// Where each batch still (partly) in `buf` ends (in `appended` terms), its frames and their
    /// bytes: a batch stops counting as waiting once its last byte is written.
    batches: VecDeque<(u64, usize, usize)>,
    /// The writer task is waiting for the socket to be writable to finish `buf`: others only
    /// append.
    writer_waits: bool,
    /// The actor let go: write what is left, then close the write half.
    closing: bool,
    /// File parts (`push_bulk`), encoded one at a time once everything else is written: a chat
    /// sent while a file moves waits behind one part at most, not behind the file.
    bulk: VecDeque<OutFrame>,
}

/// The sending side of one session.
#[derive(Debug)]
pub struct Outbox {
    state: Mutex<State>,
    io: OwnedWriteHalf,
    /// Frames queued, or in batches of `buf` not yet wholly written (read without the lock by
    /// the actor, written under it).
    waiting: AtomicUsize,
    /// The bytes of those frames.
    waiting_bytes: AtomicUsize,
    /// Bytes of the turn under way, not sent yet ([`Outbox::admit`]; only the actor touches it).
    turn_bytes: AtomicUsize,
    /// File parts waiting in `bulk` (not counted in `waiting`: the peer reads what it asked for
    /// at its own pace, and the files engine bounds what it queues).
    bulk_waiting: AtomicUsize,
    bounds: Bounds,
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
        bounds: Bounds,
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
                bulk: VecDeque::new(),
            }),
            io,
            waiting: AtomicUsize::new(0),
            waiting_bytes: AtomicUsize::new(0),
            turn_bytes: AtomicUsize::new(0),
            bulk_waiting: AtomicUsize::new(0),
            bounds,
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
        self.bounds.frames
    }

    /// Bytes of the frames waiting for the socket now.
    pub fn waiting_bytes(&self) -> usize {
        self.waiting_bytes.load(Ordering::Relaxed)
    }

    /// Most bytes that may wait before the peer counts as not reading.
    pub fn max_bytes(&self) -> usize {
        self.bounds.bytes
    }

    /// Count a frame of `len` bytes into the turn under way (the actor's, sent at its end). A
    /// `message` (which its stream or catch-up sends again later) is refused, and not counted,
    /// when the bytes waiting and the turn's would pass the bound; one frame always goes when
    /// nothing waits. Other frames (acknowledgements, seals, offers: small) are always counted.
    pub fn admit(&self, len: usize, message: bool) -> bool {
        let turn = self.turn_bytes.load(Ordering::Relaxed);
        let queued = self.waiting_bytes() + turn;
        if message && queued > 0 && queued + len > self.bounds.bytes {
            return false;
        }
        self.turn_bytes.store(turn + len, Ordering::Relaxed);
        true
    }

    /// Send `frames`, after everything sent before. A few frames (a chat, an acknowledgement: the
    /// fan-out case) are encrypted and written at once, what the socket does not take finished
    /// by the writer task; many (a stream: hundreds per turn) are handed to the writer task, which
    /// encrypts and writes them on another core while this turn's caller goes on to the next.
    /// The frames are taken from `frames` (moved, not copied), which is left empty.
    pub fn send(&self, frames: &mut Vec<OutFrame>) -> Result<(), Refused> {
        // The turn's frames are these (or were dropped with it).
        self.turn_bytes.store(0, Ordering::Relaxed);
        self.push(frames)
    }

    /// Send `frames` as [`send`](Outbox::send) does, outside the actor's turns (the files
    /// engine's small frames: asks, haves, wants).
    pub fn push(&self, frames: &mut Vec<OutFrame>) -> Result<(), Refused> {
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
        // send a whole window at once, whatever the frame bound (`admit` bounds its bytes).
        if self.waiting() > self.bounds.frames || self.waiting_bytes() > self.bounds.bytes {
            return Err(Refused::Full);
        }
        let bytes = frames.iter().map(|f| f.len()).sum::<usize>();
        self.waiting.fetch_add(frames.len(), Ordering::Relaxed);
        self.waiting_bytes.fetch_add(bytes, Ordering::Relaxed);
        let few = frames.len() <= INLINE_FRAMES && bytes <= INLINE_BYTES;
        if few && !st.writer_waits && st.queued.is_empty() {
            let appended = self.append(&mut st, frames.iter(), frames.len(), bytes);
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

    /// Queue a file part, sent after everything else waiting (and everything sent while it
    /// waits).
    pub fn push_bulk(&self, frame: OutFrame) -> Result<(), Refused> {
        if self.cancel.is_cancelled() {
            return Err(Refused::Closed);
        }
        let mut st = self.lock();
        if st.closing {
            return Err(Refused::Closed);
        }
        let wake = st.bulk.is_empty() && st.queued.is_empty() && !st.writer_waits;
        st.bulk.push_back(frame);
        self.bulk_waiting.fetch_add(1, Ordering::Relaxed);
        if wake {
            self.live.wake.notify_one();
        }
        Ok(())
    }

    /// File parts queued and not yet being written.
    pub fn bulk_waiting(&self) -> usize {
        self.bulk_waiting.load(Ordering::Relaxed)
    }

    /// Is the session closed (or closing)?
    pub fn is_closed(&self) -> bool {
        self.cancel.is_cancelled() || self.lock().closing
    }

    /// Once everything else is written, encode the next file part (the writer's).
    fn encode_bulk(&self, st: &mut State) -> Result<(), Refused> {
        if !st.buf.is_empty() || !st.queued.is_empty() {
            return Ok(());
        }
        let Some(frame) = st.bulk.pop_front() else { return Ok(()) };
        self.bulk_waiting.fetch_sub(1, Ordering::Relaxed);
        // Counted as no frame and no byte: only what the actor sends counts as waiting.
        self.append(st, [&frame], 0, 0)
    }

    /// Encode `n` frames of `bytes` bytes at the end of `buf` (`waiting` and `waiting_bytes`
    /// count them already).
    fn append<'a>(
        &self,
        st: &mut State,
        frames: impl IntoIterator<Item = &'a OutFrame>,
        n: usize,
        bytes: usize,
    ) -> Result<(), Refused> {
        let before = st.buf.len();
        if let Err(e) = st.noise.encode_batch(frames, &mut st.buf) {
            tracing::debug!(error = %e, "session write failed");
            self.cancel.cancel();
            return Err(Refused::Closed);
        }
        st.appended += (st.buf.len() - before) as u64;
        st.batches.push_back((st.appended, n, bytes));
        Ok(())
    }

    /// Encode the queued frames at the end of `buf` (the writer task's part of `send`).
    fn encode_queued(&self, st: &mut State) -> Result<(), Refused> {
        if st.queued.is_empty() {
            return Ok(());
        }
        let mut queued = std::mem::take(&mut st.queued);
        let bytes = queued.iter().map(|f| f.len()).sum();
        let r = self.append(st, queued.iter(), queued.len(), bytes);
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
                    while let Some(&(end, frames, bytes)) = st.batches.front()
                        && end <= st.written
                    {
                        st.batches.pop_front();
                        self.waiting.fetch_sub(frames, Ordering::Relaxed);
                        self.waiting_bytes.fetch_sub(bytes, Ordering::Relaxed);
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
pub async fn run_writer(out: Arc<Outbox>, peer: crate::id::PeerId) {
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
                if out.encode_queued(&mut st).is_err() || out.encode_bulk(&mut st).is_err() {
                    return;
                }
                let ping_now = std::mem::take(&mut ping_due) && st.buf.is_empty() && !st.closing;
                if ping_now {
                    out.waiting.fetch_add(1, Ordering::Relaxed);
                    out.waiting_bytes.fetch_add(ping.len(), Ordering::Relaxed);
                    if out.append(&mut st, [&ping], 1, ping.len()).is_err() {
                        return;
                    }
                }
                st.writer_waits = false;
                match out.write_some(&mut st, false) {
                    // File parts left: written on this pass, after anything sent meanwhile.
                    Ok(true) if !st.bulk.is_empty() => continue,
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
                r = tokio::time::timeout(out.bounds.stall, out.io.writable()) => r,
            };
            let Ok(writable) = writable else {
                tracing::warn!(peer = %peer.short(), stall = ?out.bounds.stall, waiting_bytes = out.waiting_bytes(), "peer is not reading; closing its session");
                out.cancel.cancel();
                return;
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
        setup_with(Bounds { frames: capacity, bytes: usize::MAX / 2, stall: Duration::from_secs(60) }, keepalive).await
    }

    async fn setup_with(
        bounds: Bounds,
        keepalive: Duration,
    ) -> (OutboxHandle, TcpStream, NoiseReader, tokio::task::JoinHandle<()>) {
        let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let c = TcpStream::connect(l.local_addr().unwrap()).await.unwrap();
        let (s, _) = l.accept().await.unwrap();
        let (a, b) = pair(None);
        let (_, w) = c.into_split();
        let live = Arc::new(Liveness::new(keepalive, keepalive));
        let out = Outbox::new(w, NoiseWriter::new(a, MAX), BytesMut::new(), bounds, live, CancellationToken::new());
        let writer = tokio::spawn(run_writer(out.clone(), crate::id::PeerId([0; 16])));
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

    /// Bytes are bounded whatever the frame mix: a few large frames fill the bound long before
    /// the frame bound; then more are refused as `Full`.
    #[tokio::test]
    async fn large_frames_fill_the_byte_bound_before_the_frame_bound() {
        let bounds = Bounds { frames: 1_000_000, bytes: 8 << 20, stall: Duration::from_secs(60) };
        let (out, _s, _r, _writer) = setup_with(bounds, Duration::from_secs(60)).await;
        let mut refused = None;
        for i in 0..200u32 {
            if let Err(e) = out.send(&mut outs(&[frame(i, 512 * 1024)])) {
                refused = Some((i, e));
                break;
            }
        }
        let (i, e) = refused.expect("refused before 100 MB");
        assert_eq!(e, Refused::Full);
        let waiting = out.waiting_bytes();
        assert!(waiting > 8 << 20 && waiting <= (8 << 20) + 512 * 1024, "{waiting} bytes waiting after {i} sends");
        assert!(out.waiting() < 20, "{} frames", out.waiting());
    }

    /// A turn's messages are taken until the bytes waiting and the turn's reach the bound (one
    /// always, when nothing waits); other frames are always counted; a send starts a new turn.
    #[tokio::test]
    async fn a_turn_takes_messages_up_to_the_byte_bound() {
        let bounds = Bounds { frames: 1_000_000, bytes: 1 << 20, stall: Duration::from_secs(60) };
        let (out, mut s, mut r, _writer) = setup_with(bounds, Duration::from_secs(60)).await;
        assert!(out.admit(3 << 20, true), "one frame goes when nothing waits, whatever its size");
        assert!(!out.admit(10, true), "then no message");
        assert!(out.admit(10, false), "an acknowledgement, a seal: always");
        // 24 MB sent: more than the socket buffers take; what waits stops the next messages.
        let frames: Vec<Bytes> = (0..24).map(|i| frame(i, 1 << 20)).collect();
        out.send(&mut outs(&frames)).unwrap();
        assert!(out.waiting_bytes() > 1 << 20, "{} bytes waiting", out.waiting_bytes());
        assert!(!out.admit(64 * 1024, true), "messages wait for a later turn");
        assert!(out.admit(64, false));
        // Once the peer has read everything, they are taken again.
        let got = read_all(&mut s, &mut r, frames.len()).await;
        assert_eq!(got, frames);
        out.send(&mut Vec::new()).unwrap();
        assert_eq!(out.waiting_bytes(), 0);
        assert!(out.admit(64 * 1024, true));
    }

    /// A socket that takes nothing for `stall` while bytes wait is a peer that does not read: the
    /// writer cancels the session. One that reads, however slowly, is not cut.
    #[tokio::test]
    async fn a_socket_that_takes_nothing_for_the_stall_time_is_cut() {
        let stall = Duration::from_millis(500);
        let bounds = Bounds { frames: 1_000_000, bytes: 64 << 20, stall };
        let (out, mut s, mut r, writer) = setup_with(bounds, Duration::from_secs(60)).await;
        out.send(&mut outs(&(0..40).map(|i| frame(i, 1 << 20)).collect::<Vec<_>>())).unwrap();
        // Read every 100 ms for 1.5 s: never stalled for 500 ms.
        let mut wire = BytesMut::new();
        let mut got = 0;
        let t0 = tokio::time::Instant::now();
        while t0.elapsed() < Duration::from_millis(1500) {
            let mut chunk = vec![0u8; 1 << 20];
            let n = s.read(&mut chunk).await.unwrap();
            wire.extend_from_slice(&chunk[..n]);
            while r.decode(&mut wire).unwrap().is_some() {
                got += 1;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        assert!(!out.cancel.is_cancelled(), "a slow reader is not cut ({got} frames read)");
        // Then it stops reading.
        let t1 = tokio::time::Instant::now();
        tokio::time::timeout(Duration::from_secs(10), writer).await.expect("the writer ends").unwrap();
        assert!(out.cancel.is_cancelled());
        assert!(t1.elapsed() >= stall / 4, "cut after the stall, not before: {:?}", t1.elapsed());
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
