//! The encrypted transport: the Noise handshake (through `snow`, with the primitives of
//! [`super::resolver`]) and the record layer that
//! carries frames after it.
//!
//! Wire, after the two 8-byte preambles (which must name the same mode):
//! - handshake messages: `len: u16 BE`, then `len` bytes of Noise handshake message; three of them
//!   (`XX`: initiator, responder, initiator), the dialer being the initiator. Message 1's
//!   payload is the dialer's 16-byte peer id (in plain, as in its beacons; empty from a dialer
//!   that names nobody, as `lanpeer doctor`); the others' are empty. An acceptor that is itself
//!   dialing that peer, with the lower id, answers message 1 with an empty message (`len` 0)
//!   and closes: the crossing dials of [`super::crossing`].
//!   The Noise prologue is the 8-byte preamble (so version and mode are authenticated);
//! - then records, each way: `len: u16 BE` (17..=65535), then a Noise transport message of `len`
//!   bytes (ciphertext and a 16-byte ChaCha20-Poly1305 tag), nonces counting from 0 each way.
//!   The plaintexts of the records, concatenated, are the frame stream of the core protocol: each
//!   frame is `length: u32 BE` and that many payload bytes. The session writer lays the frames of
//!   one batch end to end and cuts them into records of at most 65519 plaintext bytes (so many
//!   small frames share a record, and frames up to `max_frame`, 1 MiB, travel); a receiver
//!   accepts any cut.
//!
//! A record that fails to decrypt (altered, replayed, reordered, cut, or forged) is a fatal error:
//! the session closes. A frame header over the maximum closes it too, before its bytes arrive.

use std::sync::Arc;

use bytes::{Buf, BufMut, Bytes, BytesMut};
use snow::StatelessTransportState;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWriteExt, ReadBuf};
use tokio::net::TcpStream;
use tokio_util::codec::{Decoder, Encoder};

use crate::codec::OutFrame;
use crate::crypto::{NOISE_OPEN, NOISE_PSK, SessionKeys};
use crate::diag::COUNTS;
use crate::id::PeerId;
use crate::protocol::{MODE_NOISE, MODE_NOISE_PSK, PREAMBLE_LEN, Preamble, PreambleError};

/// Largest Noise message (handshake or transport), from the Noise specification.
pub const MAX_NOISE_MSG: usize = 65535;
/// Authentication tag of each transport message.
pub const TAG_LEN: usize = 16;
/// Most plaintext bytes in one record.
pub const MAX_RECORD_PLAIN: usize = MAX_NOISE_MSG - TAG_LEN;
/// Largest handshake message accepted (the largest `XX` message is 96 bytes with empty payloads).
pub const MAX_HANDSHAKE_MSG: usize = 1024;

/// Why the encrypted transport failed.
#[derive(Debug, thiserror::Error)]
pub enum NoiseError {
    /// Socket error or EOF.
    #[error("i/o: {0}")]
    Io(#[from] std::io::Error),
    /// Bad preamble.
    #[error("preamble: {0}")]
    Preamble(#[from] PreambleError),
    /// The other side speaks another transport mode (e.g. one has a passphrase, the other not).
    #[error("transport mode {theirs}, ours is {ours}")]
    ModeMismatch {
        /// Ours.
        ours: u8,
        /// Theirs.
        theirs: u8,
    },
    /// A handshake message failed (wrong passphrase key, tampering, garbage).
    #[error("noise handshake failed at message {step}: {error}")]
    Handshake {
        /// Message number, 1 to 3.
        step: u8,
        /// What snow said.
        error: snow::Error,
    },
    /// The acceptor is dialing us too, and its dial is the one both ends keep
    /// ([`super::crossing`]): it refused ours after message 1.
    #[error("the peer is dialing us at the same time; its session is kept")]
    Crossed,
    /// The acceptor had no place for this connection ([`Admit::Refused`]).
    #[error("no place for the connection")]
    Refused,
    /// A handshake message of a silly size.
    #[error("handshake message of {0} bytes")]
    HandshakeSize(usize),
    /// A record failed to decrypt: altered, replayed, reordered or forged.
    #[error("record {nonce} does not decrypt (altered, replayed or forged)")]
    Decrypt {
        /// Its expected nonce.
        nonce: u64,
    },
    /// A record length below the tag size.
    #[error("record of {0} bytes is too short")]
    ShortRecord(usize),
    /// A frame longer than allowed.
    #[error("frame of {len} bytes, the limit is {max}")]
    FrameTooLong {
        /// Announced length.
        len: usize,
        /// The limit.
        max: usize,
    },
    /// The connection ended inside a record or frame.
    #[error("connection ended inside a record or frame")]
    Truncated,
}

/// The transport mode of these keys: with a PSK, [`MODE_NOISE_PSK`].
pub fn mode_of(keys: &SessionKeys) -> u8 {
    if keys.psk.is_some() { MODE_NOISE_PSK } else { MODE_NOISE }
}

/// Append a handshake message to `out` as it goes on the wire (`len: u16 BE`, then the message).
fn put_msg(out: &mut Vec<u8>, msg: &[u8]) {
    out.extend_from_slice(&(msg.len() as u16).to_be_bytes());
    out.extend_from_slice(msg);
}

/// Bytes asked of the socket at a time during the handshake: everything the other side sent at
/// once fits (a preamble and a handshake message, or message 3 and the first record).
const READ_CHUNK: usize = 2048;

/// Append to `buf` what has arrived already, without waiting: one plain non-blocking read on the
/// socket (tokio keeps it non-blocking). An error or the end of the stream stops it too: the
/// awaited read that follows sees them.
fn read_ready(stream: &TcpStream, buf: &mut BytesMut) {
    use std::io::Read;
    let sock = socket2::SockRef::from(stream);
    let mut chunk = [0u8; READ_CHUNK];
    if let Ok(n) = (&*sock).read(&mut chunk) {
        buf.extend_from_slice(&chunk[..n]);
    }
}

/// Read until `buf` holds at least `need` bytes, each read taking whatever has arrived (so a
/// preamble and the message behind it, sent at once, cost one read, not three).
async fn fill(stream: &mut TcpStream, buf: &mut BytesMut, need: usize) -> Result<(), NoiseError> {
    while buf.len() < need {
        buf.reserve(READ_CHUNK.max(need - buf.len()));
        if stream.read_buf(buf).await? == 0 {
            return Err(std::io::Error::from(std::io::ErrorKind::UnexpectedEof).into());
        }
    }
    Ok(())
}

/// The length of the handshake message at the start of `buf`, if its length prefix is there.
fn msg_len(buf: &[u8]) -> Option<usize> {
    (buf.len() >= 2).then(|| u16::from_be_bytes([buf[0], buf[1]]) as usize)
}

/// The next handshake message (`len: u16 BE`, then `len` bytes), from `buf` and what arrives.
async fn read_msg(stream: &mut TcpStream, buf: &mut BytesMut) -> Result<BytesMut, NoiseError> {
    fill(stream, buf, 2).await?;
    let len = msg_len(buf).expect("filled");
    if len == 0 || len > MAX_HANDSHAKE_MSG {
        return Err(NoiseError::HandshakeSize(len));
    }
    fill(stream, buf, 2 + len).await?;
    buf.advance(2);
    Ok(buf.split_to(len))
}

/// Which side of the handshake, and what it does with the dialer's claim (message 1's payload).
pub enum Intro<'a> {
    /// The dialer, naming itself (or nobody).
    Dialer(Option<PeerId>),
    /// The acceptor, which is shown the id the dialer claims (None if it named nobody) and says
    /// whether to go on.
    Acceptor(&'a mut (dyn FnMut(Option<PeerId>) -> Admit + Send)),
}

/// What an acceptor does with a dialer's message 1.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Admit {
    /// Go on with the handshake.
    Go,
    /// Refuse it as a crossing dial: an empty message 2 tells the dialer so
    /// ([`NoiseError::Crossed`]).
    Crossed,
    /// Refuse it with nothing more written ([`NoiseError::Refused`]): no place for it.
    Refused,
}

/// A finished handshake whose last message may not be sent yet ([`open`]).
pub struct Opened {
    /// The transport keys; the remote static key is in them.
    pub ts: Arc<StatelessTransportState>,
    /// Bytes to write before anything else (the initiator's third message, framed), so that
    /// they can share one write with the first record. Empty for the responder.
    pub unsent: Vec<u8>,
    /// Bytes read past the handshake's last message (the start of the other side's records:
    /// the initiator sends its first one with message 3), to be read before the socket.
    pub rest: BytesMut,
}

/// Exchange preambles and run the Noise `XX` (or `XXpsk3`) handshake on a fresh connection.
/// The caller bounds the time. Returns the transport keys; the remote static key is in them.
/// Bytes read past the last handshake message are dropped: for an initiator there are none (the
/// responder sends nothing more until it has message 3); a responder that goes on reading
/// records uses [`open`].
pub async fn handshake(
    stream: &mut TcpStream,
    initiator: bool,
    keys: &SessionKeys,
) -> Result<Arc<StatelessTransportState>, NoiseError> {
    let mut admit = |_| Admit::Go;
    let intro = if initiator { Intro::Dialer(None) } else { Intro::Acceptor(&mut admit) };
    let o = open(stream, intro, keys).await?;
    if !o.unsent.is_empty() {
        stream.write_all(&o.unsent).await?;
    }
    Ok(o.ts)
}

/// [`handshake`], except that the initiator's third message is handed back unsent, for the
/// caller to write together with its first record, and the bytes read past the last message
/// are handed back too. The bytes on the wire are the same; only their grouping into writes and
/// reads differs: the initiator writes its preamble and first message at once (it needs nothing
/// from the other side for them). The responder writes its preamble and second message at once
/// when the initiator's preamble and first message are there already; else its preamble at once
/// (before it waits for anything: `lanpeer doctor` waits for it), then its second message. Each
/// read takes what has arrived, so that what came in one segment costs one read.
pub async fn open(stream: &mut TcpStream, intro: Intro<'_>, keys: &SessionKeys) -> Result<Opened, NoiseError> {
    let initiator = matches!(intro, Intro::Dialer(_));
    let ours = Preamble::with_mode(mode_of(keys));
    let pre = ours.to_bytes();
    let name = if keys.psk.is_some() { NOISE_PSK } else { NOISE_OPEN };
    let step_err = |step: u8| move |error| NoiseError::Handshake { step, error };
    let mut b =
        super::resolver::builder(name, &keys.statics).map_err(step_err(0))?.prologue(&pre).map_err(step_err(0))?;
    if let Some(psk) = &keys.psk {
        b = b.psk(3, psk).map_err(step_err(0))?;
    }
    let mut hs = if initiator { b.build_initiator() } else { b.build_responder() }.map_err(step_err(0))?;
    let mut buf = [0u8; MAX_HANDSHAKE_MSG];
    let mut payload = [0u8; MAX_HANDSHAKE_MSG];
    let mut out = Vec::with_capacity(PREAMBLE_LEN + 2 + 96);
    out.extend_from_slice(&pre);
    let mut unsent = Vec::new();
    let mut inbox = BytesMut::new();
    match intro {
        Intro::Dialer(claim) => {
            let claim = claim.as_ref().map_or(&[][..], |id| &id.0[..]);
            let n = hs.write_message(claim, &mut buf).map_err(step_err(1))?;
            put_msg(&mut out, &buf[..n]);
            stream.write_all(&out).await?;
            fill(stream, &mut inbox, PREAMBLE_LEN).await?;
            let theirs = Preamble::parse(inbox.first_chunk::<PREAMBLE_LEN>().expect("filled"))?;
            if theirs.mode != ours.mode {
                return Err(NoiseError::ModeMismatch { ours: ours.mode, theirs: theirs.mode });
            }
            inbox.advance(PREAMBLE_LEN);
            fill(stream, &mut inbox, 2).await?;
            if msg_len(&inbox) == Some(0) {
                return Err(NoiseError::Crossed);
            }
            let m = read_msg(stream, &mut inbox).await?;
            hs.read_message(&m, &mut payload).map_err(step_err(2))?;
            let n = hs.write_message(&[], &mut buf).map_err(step_err(3))?;
            put_msg(&mut unsent, &buf[..n]);
        }
        Intro::Acceptor(admit) => {
            // The dialer writes its preamble and message 1 at once, so they are usually here
            // already (the connection waited in the accept queue). Then our preamble and message 2
            // go in one write. Else our preamble goes now, before we wait for anything (13.3).
            read_ready(stream, &mut inbox);
            let early = inbox.len() >= PREAMBLE_LEN + 2
                && msg_len(&inbox[PREAMBLE_LEN..])
                    .is_some_and(|len| (1..=MAX_HANDSHAKE_MSG).contains(&len) && inbox.len() >= PREAMBLE_LEN + 2 + len);
            if early {
                COUNTS.merged_msg2.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            } else {
                stream.write_all(&out).await?;
                out.clear();
            }
            fill(stream, &mut inbox, PREAMBLE_LEN).await?;
            match Preamble::parse(inbox.first_chunk::<PREAMBLE_LEN>().expect("filled")) {
                Ok(t) if t.mode == ours.mode => {}
                r => {
                    if early {
                        // Not sent yet: the dialer learns our mode all the same.
                        stream.write_all(&out).await?;
                    }
                    let theirs = r?;
                    return Err(NoiseError::ModeMismatch { ours: ours.mode, theirs: theirs.mode });
                }
            }
            inbox.advance(PREAMBLE_LEN);
            let m = read_msg(stream, &mut inbox).await?;
            let n = hs.read_message(&m, &mut payload).map_err(step_err(1))?;
            // A claim of another length (a later version's) names nobody.
            let claim = payload[..n].try_into().ok().map(PeerId);
            match admit(claim) {
                Admit::Go => {}
                Admit::Crossed => {
                    put_msg(&mut out, &[]);
                    stream.write_all(&out).await?;
                    return Err(NoiseError::Crossed);
                }
                Admit::Refused => return Err(NoiseError::Refused),
            }
            let n = hs.write_message(&[], &mut buf).map_err(step_err(2))?;
            put_msg(&mut out, &buf[..n]);
            stream.write_all(&out).await?;
            let m = read_msg(stream, &mut inbox).await?;
            hs.read_message(&m, &mut payload).map_err(step_err(3))?;
        }
    }
    let ts = hs.into_stateless_transport_mode().map_err(step_err(3))?;
    Ok(Opened { ts: Arc::new(ts), unsent, rest: inbox })
}

/// A reader that yields `head` first, then what `inner` reads: the bytes the handshake read past
/// its end come first, so that none is lost and none waits for the socket.
#[derive(Debug)]
pub struct Prefixed<R> {
    head: BytesMut,
    inner: R,
}

impl<R> Prefixed<R> {
    /// `head`, then `inner`.
    pub fn new(head: BytesMut, inner: R) -> Self {
        Prefixed { head, inner }
    }
}

impl<R: AsyncRead + Unpin> AsyncRead for Prefixed<R> {
    fn poll_read(
        self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
        out: &mut ReadBuf<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        let me = self.get_mut();
        if me.head.is_empty() {
            return std::pin::Pin::new(&mut me.inner).poll_read(cx, out);
        }
        let n = me.head.len().min(out.remaining());
        out.put_slice(&me.head[..n]);
        me.head.advance(n);
        if me.head.is_empty() {
            me.head = BytesMut::new(); // give the memory back
        }
        std::task::Poll::Ready(Ok(()))
    }
}

/// The remote static public key of a finished handshake.
pub fn remote_static(ts: &StatelessTransportState) -> Option<[u8; 32]> {
    ts.get_remote_static().and_then(|k| k.try_into().ok())
}

/// Encodes frames into records ([`Encoder`] for `FramedWrite`).
#[derive(Debug)]
pub struct NoiseWriter {
    ts: Arc<StatelessTransportState>,
    nonce: u64,
    max_frame: usize,
    plain: Vec<u8>,
}

impl NoiseWriter {
    /// A writer with the keys of a finished handshake.
    pub fn new(ts: Arc<StatelessTransportState>, max_frame: usize) -> Self {
        NoiseWriter { ts, nonce: 0, max_frame, plain: Vec::new() }
    }

    /// Change the largest frame written.
    pub fn set_max_frame(&mut self, max: usize) {
        self.max_frame = max;
    }

    /// Append one record holding `chunk` (at most [`MAX_RECORD_PLAIN`] bytes) as it is, with no
    /// frame header: for tests and tools that need to send a malformed frame stream.
    pub fn seal_record(&mut self, chunk: &[u8], dst: &mut BytesMut) -> std::io::Result<()> {
        self.seal(chunk, dst)
    }

    fn seal(&mut self, chunk: &[u8], dst: &mut BytesMut) -> std::io::Result<()> {
        let start = dst.len();
        dst.put_u16(0);
        dst.resize(start + 2 + chunk.len() + TAG_LEN, 0);
        let n = self
            .ts
            .write_message(self.nonce, chunk, &mut dst[start + 2..])
            .map_err(|e| std::io::Error::other(format!("encrypt: {e}")))?;
        self.nonce += 1;
        dst.truncate(start + 2 + n);
        dst[start..start + 2].copy_from_slice(&(n as u16).to_be_bytes());
        Ok(())
    }
}

impl NoiseWriter {
    /// Append several frames to `dst` as few records as they fit in: the frames (each with its
    /// `u32` length) are laid end to end and cut into records of at most [`MAX_RECORD_PLAIN`]
    /// plaintext bytes. A batch of 100-byte chats then costs one AEAD seal and one 18-byte
    /// record header per ~480 frames instead of per frame. Every frame is checked against the
    /// limit first; on an error nothing is appended.
    pub fn encode_batch<'a>(
        &mut self,
        frames: impl IntoIterator<Item = &'a OutFrame>,
        dst: &mut BytesMut,
    ) -> std::io::Result<()> {
        let mut plain = std::mem::take(&mut self.plain);
        plain.clear();
        for frame in frames {
            if frame.len() > self.max_frame {
                self.plain = plain;
                return Err(std::io::Error::new(
                    std::io::ErrorKind::InvalidInput,
                    format!("frame of {} bytes, the limit is {}", frame.len(), self.max_frame),
                ));
            }
            plain.extend_from_slice(&(frame.len() as u32).to_be_bytes());
            plain.extend_from_slice(frame.head());
            plain.extend_from_slice(frame.body());
        }
        let r = self.seal_all(&plain, dst);
        if plain.capacity() <= 4 * MAX_RECORD_PLAIN {
            self.plain = plain; // keep a small buffer for the next batch
        }
        r
    }

    fn seal_all(&mut self, plain: &[u8], dst: &mut BytesMut) -> std::io::Result<()> {
        dst.reserve(plain.len() + plain.len().div_ceil(MAX_RECORD_PLAIN) * (2 + TAG_LEN));
        for chunk in plain.chunks(MAX_RECORD_PLAIN) {
            self.seal(chunk, dst)?;
        }
        Ok(())
    }
}

impl Encoder<Bytes> for NoiseWriter {
    type Error = std::io::Error;

    fn encode(&mut self, frame: Bytes, dst: &mut BytesMut) -> std::io::Result<()> {
        if frame.len() > self.max_frame {
            return Err(std::io::Error::new(
                std::io::ErrorKind::InvalidInput,
                format!("frame of {} bytes, the limit is {}", frame.len(), self.max_frame),
            ));
        }
        let mut plain = std::mem::take(&mut self.plain);
        plain.clear();
        plain.extend_from_slice(&(frame.len() as u32).to_be_bytes());
        plain.extend_from_slice(&frame);
        let r = self.seal_all(&plain, dst);
        if plain.capacity() <= 4 * MAX_RECORD_PLAIN {
            self.plain = plain; // keep a small buffer for the next frame
        }
        r
    }
}

/// Decodes records into frames ([`Decoder`] for `FramedRead`). Memory is bounded by
/// `max_frame` plus one record.
#[derive(Debug)]
pub struct NoiseReader {
    ts: Arc<StatelessTransportState>,
    nonce: u64,
    max_frame: usize,
    plain: BytesMut,
}

impl NoiseReader {
    /// A reader with the keys of a finished handshake.
    pub fn new(ts: Arc<StatelessTransportState>, max_frame: usize) -> Self {
        NoiseReader { ts, nonce: 0, max_frame, plain: BytesMut::new() }
    }

    /// Change the largest frame accepted.
    pub fn set_max_frame(&mut self, max: usize) {
        self.max_frame = max;
    }

    /// The keys (e.g. to read the remote static key).
    pub fn transport(&self) -> &StatelessTransportState {
        &self.ts
    }

    /// A complete frame from the plaintext, if there is one; an error if its header is too big.
    fn frame(&mut self) -> Result<Option<Bytes>, NoiseError> {
        if self.plain.len() < 4 {
            return Ok(None);
        }
        let len = u32::from_be_bytes([self.plain[0], self.plain[1], self.plain[2], self.plain[3]]) as usize;
        if len > self.max_frame {
            return Err(NoiseError::FrameTooLong { len, max: self.max_frame });
        }
        if self.plain.len() < 4 + len {
            return Ok(None);
        }
        self.plain.advance(4);
        Ok(Some(self.plain.split_to(len).freeze()))
    }
}

impl NoiseReader {
    /// The next frame already decrypted (the rest of the last record), without reading or
    /// decrypting more: lets a reader take every frame of a record at once.
    pub fn buffered_frame(&mut self) -> std::io::Result<Option<Bytes>> {
        self.frame().map_err(|e| std::io::Error::new(std::io::ErrorKind::InvalidData, e))
    }
}

impl Decoder for NoiseReader {
    type Item = Bytes;
    type Error = std::io::Error;

    fn decode(&mut self, src: &mut BytesMut) -> std::io::Result<Option<Bytes>> {
        let err = |e: NoiseError| std::io::Error::new(std::io::ErrorKind::InvalidData, e);
        loop {
            if let Some(f) = self.frame().map_err(err)? {
                return Ok(Some(f));
            }
            if src.len() < 2 {
                return Ok(None);
            }
            let len = u16::from_be_bytes([src[0], src[1]]) as usize;
            if len <= TAG_LEN {
                return Err(err(NoiseError::ShortRecord(len)));
            }
            if src.len() < 2 + len {
                src.reserve(2 + len - src.len());
                return Ok(None);
            }
            // Decrypt straight into the plaintext buffer (no copy through a scratch buffer).
            let at = self.plain.len();
            self.plain.resize(at + len, 0);
            let r = self.ts.read_message(self.nonce, &src[2..2 + len], &mut self.plain[at..]);
            let Ok(n) = r else {
                self.plain.truncate(at);
                return Err(err(NoiseError::Decrypt { nonce: self.nonce }));
            };
            self.plain.truncate(at + n);
            self.nonce += 1;
            src.advance(2 + len);
        }
    }

    fn decode_eof(&mut self, src: &mut BytesMut) -> std::io::Result<Option<Bytes>> {
        match self.decode(src)? {
            Some(f) => Ok(Some(f)),
            None if src.is_empty() && self.plain.is_empty() => Ok(None),
            None => Err(std::io::Error::new(std::io::ErrorKind::UnexpectedEof, NoiseError::Truncated)),
        }
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::codec;
    use crate::crypto::{Passphrase, RoomKeys, StaticKeys};

    /// Both ends of an in-memory handshake (no socket).
    pub(crate) fn pair(psk: Option<[u8; 32]>) -> (Arc<StatelessTransportState>, Arc<StatelessTransportState>) {
        let a = StaticKeys::generate();
        let b = StaticKeys::generate();
        let name = if psk.is_some() { NOISE_PSK } else { NOISE_OPEN };
        fn mk<'a>(name: &str, k: &'a StaticKeys, psk: &'a Option<[u8; 32]>) -> snow::Builder<'a> {
            let b = crate::transport::resolver::builder(name, k).unwrap();
            match psk {
                Some(p) => b.psk(3, p).unwrap(),
                None => b,
            }
        }
        let mut i = mk(name, &a, &psk).build_initiator().unwrap();
        let mut r = mk(name, &b, &psk).build_responder().unwrap();
        let mut buf = [0u8; 1024];
        let mut pl = [0u8; 1024];
        let n = i.write_message(&[], &mut buf).unwrap();
        r.read_message(&buf[..n], &mut pl).unwrap();
        let n = r.write_message(&[], &mut buf).unwrap();
        i.read_message(&buf[..n], &mut pl).unwrap();
        let n = i.write_message(&[], &mut buf).unwrap();
        r.read_message(&buf[..n], &mut pl).unwrap();
        assert_eq!(i.get_remote_static().unwrap(), &b.public);
        assert_eq!(r.get_remote_static().unwrap(), &a.public);
        (Arc::new(i.into_stateless_transport_mode().unwrap()), Arc::new(r.into_stateless_transport_mode().unwrap()))
    }

    fn keys(psk: Option<[u8; 32]>) -> SessionKeys {
        SessionKeys { statics: StaticKeys::generate(), psk: psk.map(zeroize::Zeroizing::new) }
    }

    async fn tcp_pair() -> (TcpStream, tokio::net::TcpListener) {
        let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let c = TcpStream::connect(l.local_addr().unwrap()).await.unwrap();
        (c, l)
    }

    /// The dialer's preamble and message 1 are there before the acceptor starts: it answers
    /// with its preamble and message 2 in one write, and both ends agree.
    #[tokio::test]
    async fn acceptor_merges_preamble_and_message_2_when_message_1_is_there() {
        for psk in [None, Some([7u8; 32])] {
            let (mut c, l) = tcp_pair().await;
            let (ka, kb) = (keys(psk), keys(psk));
            let (pa, pb) = (ka.statics.public, kb.statics.public);
            let dialer = tokio::spawn(async move { handshake(&mut c, true, &ka).await });
            let (mut s, _) = l.accept().await.unwrap();
            tokio::time::sleep(std::time::Duration::from_millis(50)).await; // message 1 arrives
            let before = COUNTS.merged_msg2.load(std::sync::atomic::Ordering::Relaxed);
            let ts_b = handshake(&mut s, false, &kb).await.unwrap();
            assert!(COUNTS.merged_msg2.load(std::sync::atomic::Ordering::Relaxed) > before, "merged");
            let ts_a = dialer.await.unwrap().unwrap();
            assert_eq!(remote_static(&ts_b), Some(pa));
            assert_eq!(remote_static(&ts_a), Some(pb));
        }
    }

    /// A dialer that sends its preamble alone and waits (as `lanpeer doctor` does) gets the
    /// acceptor's preamble: the acceptor waits for nothing before it.
    #[tokio::test]
    async fn acceptor_sends_its_preamble_before_message_1() {
        let (mut c, l) = tcp_pair().await;
        let kb = keys(None);
        let (mut s, _) = l.accept().await.unwrap();
        let acceptor = tokio::spawn(async move { handshake(&mut s, false, &kb).await.map(|_| ()) });
        c.write_all(&Preamble::with_mode(MODE_NOISE).to_bytes()).await.unwrap();
        let mut got = [0u8; PREAMBLE_LEN];
        tokio::time::timeout(std::time::Duration::from_secs(5), c.read_exact(&mut got)).await.unwrap().unwrap();
        assert_eq!(Preamble::parse(&got).unwrap().mode, MODE_NOISE);
        drop(c);
        assert!(acceptor.await.unwrap().is_err(), "closed before message 1");
    }

    /// Another mode, found on the merged path: the dialer still gets our preamble, so it too
    /// knows why (and can tell its user about the passphrase).
    #[tokio::test]
    async fn mode_mismatch_on_the_merged_path_still_sends_our_preamble() {
        let (mut c, l) = tcp_pair().await;
        let (ka, kb) = (keys(Some([1u8; 32])), keys(None));
        let dialer = tokio::spawn(async move { handshake(&mut c, true, &ka).await.map(|_| ()) });
        let (mut s, _) = l.accept().await.unwrap();
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        let e = handshake(&mut s, false, &kb).await.map(|_| ()).unwrap_err();
        assert!(matches!(e, NoiseError::ModeMismatch { ours: MODE_NOISE, theirs: MODE_NOISE_PSK }), "{e}");
        let e = dialer.await.unwrap().unwrap_err();
        assert!(matches!(e, NoiseError::ModeMismatch { ours: MODE_NOISE_PSK, theirs: MODE_NOISE }), "{e}");
    }

    /// The dialer's first record goes with message 3: the acceptor's handshake reads what came
    /// and hands back what lies past message 3; read through [`Prefixed`], nothing is lost.
    #[tokio::test]
    async fn bytes_past_message_3_are_handed_back() {
        let (mut c, l) = tcp_pair().await;
        let (ka, kb) = (keys(None), keys(None));
        let extra = b"the first record, say";
        let dialer = tokio::spawn(async move {
            let o = open(&mut c, Intro::Dialer(Some(PeerId([7; 16]))), &ka).await.unwrap();
            let mut w = o.unsent;
            w.extend_from_slice(extra);
            c.write_all(&w).await.unwrap();
            c
        });
        let (mut s, _) = l.accept().await.unwrap();
        let mut claimed = Vec::new();
        let mut admit = |c| {
            claimed.push(c);
            Admit::Go
        };
        let o = open(&mut s, Intro::Acceptor(&mut admit), &kb).await.unwrap();
        assert_eq!(claimed, [Some(PeerId([7; 16]))], "message 1 names the dialer");
        assert!(o.rest.len() <= extra.len());
        let mut r = Prefixed::new(o.rest, s);
        let mut got = vec![0u8; extra.len()];
        r.read_exact(&mut got).await.unwrap();
        assert_eq!(&got[..], &extra[..]);
        drop(dialer.await.unwrap());
    }

    /// An acceptor that refuses the claim (a crossing dial) answers message 1 with an empty
    /// message: both ends fail with `Crossed`, before the acceptor's key agreement, for both modes.
    #[tokio::test]
    async fn a_refused_claim_ends_both_sides_with_crossed() {
        for psk in [None, Some([3u8; 32])] {
            let (mut c, l) = tcp_pair().await;
            let (ka, kb) = (keys(psk), keys(psk));
            let dialer = tokio::spawn(async move { open(&mut c, Intro::Dialer(Some(PeerId([9; 16]))), &ka).await });
            let (mut s, _) = l.accept().await.unwrap();
            let mut admit = |c| if c == Some(PeerId([9; 16])) { Admit::Crossed } else { Admit::Go };
            let e = open(&mut s, Intro::Acceptor(&mut admit), &kb).await.map(|_| ()).unwrap_err();
            assert!(matches!(e, NoiseError::Crossed), "{e}");
            let e = dialer.await.unwrap().map(|_| ()).unwrap_err();
            assert!(matches!(e, NoiseError::Crossed), "{e}");
        }
    }

    /// An acceptor with no place for the connection stops after message 1 and writes nothing
    /// more: the dialer, once the socket is closed, fails on message 2 (not as crossed).
    #[tokio::test]
    async fn a_refused_connection_gets_no_message_2() {
        let (mut c, l) = tcp_pair().await;
        let (ka, kb) = (keys(None), keys(None));
        let dialer = tokio::spawn(async move { open(&mut c, Intro::Dialer(Some(PeerId([9; 16]))), &ka).await });
        let (mut s, _) = l.accept().await.unwrap();
        let mut admit = |_| Admit::Refused;
        let e = open(&mut s, Intro::Acceptor(&mut admit), &kb).await.map(|_| ()).unwrap_err();
        assert!(matches!(e, NoiseError::Refused), "{e}");
        drop(s);
        let e = dialer.await.unwrap().map(|_| ()).unwrap_err();
        assert!(matches!(e, NoiseError::Io(_)), "closed before message 2: {e}");
    }

    fn drain(r: &mut NoiseReader, wire: &mut BytesMut) -> Result<Vec<Bytes>, std::io::Error> {
        let mut out = Vec::new();
        while let Some(f) = r.decode(wire)? {
            out.push(f);
        }
        Ok(out)
    }

    #[test]
    fn frames_of_every_size_round_trip_and_are_unreadable() {
        let (i, r) = pair(None);
        let max = 1 << 20;
        let mut w = NoiseWriter::new(i, max);
        let mut rd = NoiseReader::new(r, max);
        let marker = b"MARKER-in-the-clear";
        let sizes = [0usize, 1, 100, MAX_RECORD_PLAIN - 4, MAX_RECORD_PLAIN - 3, MAX_RECORD_PLAIN, 200_000, max];
        let mut wire = BytesMut::new();
        let mut frames = Vec::new();
        for (k, &n) in sizes.iter().enumerate() {
            let mut f: Vec<u8> = (0..n).map(|x| (x * 7 + k) as u8).collect();
            if n >= marker.len() {
                f[..marker.len()].copy_from_slice(marker);
            }
            w.encode(Bytes::from(f.clone()), &mut wire).unwrap();
            frames.push(f);
        }
        assert!(!wire.windows(marker.len()).any(|x| x == marker), "plaintext visible on the wire");
        // Fed a byte range at a time, as a socket would.
        let mut got = Vec::new();
        let mut fed = BytesMut::new();
        for piece in wire.chunks(7919) {
            fed.extend_from_slice(piece);
            got.extend(drain(&mut rd, &mut fed).unwrap());
        }
        assert_eq!(got.len(), frames.len());
        for (g, f) in got.iter().zip(&frames) {
            assert_eq!(&g[..], &f[..]);
        }
        assert!(w.encode(Bytes::from(vec![0u8; max + 1]), &mut BytesMut::new()).is_err());
    }

    #[test]
    fn batches_share_records_and_round_trip() {
        let (i, r) = pair(None);
        let mut w = NoiseWriter::new(i, 1 << 20);
        let mut rd = NoiseReader::new(r, 1 << 20);
        let mut out: Vec<OutFrame> = [100usize, 0, 99, 200_000, 7, MAX_RECORD_PLAIN, 100]
            .iter()
            .enumerate()
            .map(|(k, &n)| Bytes::from((0..n).map(|x| (x + k) as u8).collect::<Vec<u8>>()).into())
            .collect();
        // A frame in two parts (a head, and a body shared with others) is written as one.
        out[2] = codec::catchup_frame(out[2].to_bytes()).unwrap();
        let frames: Vec<Bytes> = out.iter().map(OutFrame::to_bytes).collect();
        let mut wire = BytesMut::new();
        w.encode_batch(&out[..3], &mut wire).unwrap();
        assert_eq!(wire.len(), 2 + 3 * 4 + 200 + TAG_LEN, "three small frames in one record");
        w.encode_batch(&out[3..], &mut wire).unwrap();
        let mut got = Vec::new();
        let mut fed = BytesMut::new();
        for piece in wire.chunks(4093) {
            fed.extend_from_slice(piece);
            got.extend(drain(&mut rd, &mut fed).unwrap());
        }
        assert_eq!(got.len(), frames.len());
        for (g, f) in got.iter().zip(&frames) {
            assert_eq!(&g[..], &f[..]);
        }
        let mut out = BytesMut::new();
        let big = vec![0u8; (1 << 20) + 1];
        let refused: [OutFrame; 2] = [Bytes::from_static(b"ok").into(), Bytes::from(big).into()];
        assert!(w.encode_batch(&refused, &mut out).is_err());
        assert!(out.is_empty(), "nothing appended when a frame is refused");
    }

    #[test]
    fn altered_replayed_reordered_records_fail() {
        let (i, r) = pair(Some(*RoomKeys::derive("lab", &Passphrase::new("pw")).psk));
        let mut w = NoiseWriter::new(i, 1 << 20);
        let mut recs = Vec::new();
        for t in ["one", "two", "three"] {
            let mut b = BytesMut::new();
            w.encode(Bytes::from(t), &mut b).unwrap();
            recs.push(b);
        }
        let fresh = |ts: &Arc<StatelessTransportState>| NoiseReader::new(ts.clone(), 1 << 20);
        // In order: fine.
        let mut rd = fresh(&r);
        for (rec, t) in recs.iter().zip(["one", "two", "three"]) {
            assert_eq!(&drain(&mut rd, &mut rec.clone()).unwrap()[0][..], t.as_bytes());
        }
        // Replayed: the second copy fails.
        let mut rd = fresh(&r);
        drain(&mut rd, &mut recs[0].clone()).unwrap();
        assert!(drain(&mut rd, &mut recs[0].clone()).is_err());
        // Reordered.
        let mut rd = fresh(&r);
        assert!(drain(&mut rd, &mut recs[1].clone()).is_err());
        // Each byte flipped in turn (length bytes included): never accepted as the original.
        for k in 0..recs[0].len() {
            let mut rd = fresh(&r);
            let mut bad = recs[0].clone();
            bad[k] ^= 0x40;
            let res = drain(&mut rd, &mut bad);
            assert!(!matches!(res, Ok(ref v) if !v.is_empty()), "flipped byte {k} accepted");
        }
    }

    #[test]
    fn oversized_header_is_refused_at_the_first_record() {
        let (i, r) = pair(None);
        let mut w = NoiseWriter::new(i, 1 << 20);
        let mut rd = NoiseReader::new(r.clone(), 1000);
        let mut wire = BytesMut::new();
        w.encode(Bytes::from(vec![1u8; 200_000]), &mut wire).unwrap();
        let mut first = BytesMut::from(&wire[..2 + MAX_NOISE_MSG]);
        assert!(rd.decode(&mut first).is_err(), "a 200 kB frame is refused after its first record");
        // Keys of the wrong direction (our own sending keys) never decrypt.
        let mut mirror = NoiseWriter::new(r.clone(), 1 << 20);
        let mut wire = BytesMut::new();
        mirror.encode(Bytes::from_static(b"x"), &mut wire).unwrap();
        assert!(NoiseReader::new(r, 1000).decode(&mut wire).is_err());
    }

    #[test]
    fn ping_record_is_as_documented() {
        let (i, _) = pair(None);
        let mut w = NoiseWriter::new(i, 1 << 20);
        let mut wire = BytesMut::new();
        let ping = codec::encode(&crate::protocol::Frame::Ping).unwrap();
        assert_eq!(&ping[..], &[2]);
        w.encode(ping, &mut wire).unwrap();
        assert_eq!(wire.len(), 23);
        assert_eq!(&wire[..2], &[0, 21]);
    }

    #[test]
    fn handshake_message_sizes_are_as_documented() {
        // docs/protocol.md 5.2 gives these sizes; pin them.
        for (psk, want) in [(None, [32usize, 96, 64]), (Some([3u8; 32]), [48, 96, 64])] {
            let name = if psk.is_some() { NOISE_PSK } else { NOISE_OPEN };
            let (a, b) = (StaticKeys::generate(), StaticKeys::generate());
            let mk = |k: &StaticKeys, init: bool| {
                let mut bld = crate::transport::resolver::builder(name, k).unwrap();
                bld = bld.prologue(b"LNPT\x01\x01\0\0").unwrap();
                if let Some(p) = &psk {
                    bld = bld.psk(3, p).unwrap();
                }
                if init { bld.build_initiator().unwrap() } else { bld.build_responder().unwrap() }
            };
            let (mut i, mut r) = (mk(&a, true), mk(&b, false));
            let mut buf = [0u8; 1024];
            let mut pl = [0u8; 1024];
            let mut got = [0usize; 3];
            for (step, g) in got.iter_mut().enumerate() {
                let (w, rd) = if step % 2 == 0 { (&mut i, &mut r) } else { (&mut r, &mut i) };
                *g = w.write_message(&[], &mut buf).unwrap();
                rd.read_message(&buf[..*g], &mut pl).unwrap();
            }
            assert_eq!(got, want, "{name}");
        }
    }
}

#[cfg(test)]
mod fuzz {
    use super::tests::pair;
    use super::*;
    use crate::codec;
    use crate::protocol::Frame;
    use proptest::prelude::*;

    /// Feed `wire` to a reader in pieces of `step` bytes, as a socket would; never panics.
    fn feed(r: &mut NoiseReader, wire: &[u8], step: usize) -> Vec<Bytes> {
        let mut out = Vec::new();
        let mut buf = BytesMut::new();
        for piece in wire.chunks(step.max(1)) {
            buf.extend_from_slice(piece);
            loop {
                match r.decode(&mut buf) {
                    Ok(Some(f)) => out.push(f),
                    Ok(None) => break,
                    Err(_) => return out,
                }
            }
        }
        let _ = r.decode_eof(&mut buf);
        out
    }

    proptest! {
        #![proptest_config(ProptestConfig { cases: 300, max_shrink_iters: 100, ..ProptestConfig::default() })]

        /// Random bytes on an encrypted session: never a frame, never a panic.
        #[test]
        fn random_wire_bytes_yield_nothing(wire in proptest::collection::vec(any::<u8>(), 0..2000), step in 1usize..300) {
            let (_, r) = pair(None);
            let mut rd = NoiseReader::new(r, 1 << 20);
            prop_assert!(feed(&mut rd, &wire, step).is_empty());
        }

        /// Any plaintext stream (even one that is not well-formed frames), properly encrypted:
        /// the frame parser inside never panics and never returns more than was sent.
        #[test]
        fn any_plaintext_inside_records(chunks in proptest::collection::vec(proptest::collection::vec(any::<u8>(), 0..300), 0..8), max in 0usize..400) {
            let (i, r) = pair(None);
            let w = NoiseWriter::new(i, 1 << 20);
            let mut wire = BytesMut::new();
            let mut sent = 0;
            for (n, c) in chunks.iter().enumerate() {
                // Raw records, bypassing the frame header the writer adds.
                let start = wire.len();
                wire.put_u16(0);
                wire.resize(start + 2 + c.len() + TAG_LEN, 0);
                let k = w.ts.write_message(n as u64, c, &mut wire[start + 2..]).unwrap();
                wire[start..start + 2].copy_from_slice(&(k as u16).to_be_bytes());
                sent += c.len();
            }
            let mut rd = NoiseReader::new(r, max);
            let got: usize = feed(&mut rd, &wire, 97).iter().map(|f| f.len() + 4).sum();
            prop_assert!(got <= sent);
        }

        /// The frame decoder on arbitrary payloads: an error or a frame, never a panic.
        #[test]
        fn frame_decoder_never_panics(payload in proptest::collection::vec(any::<u8>(), 0..600)) {
            let _ = codec::decode::<Frame>(&payload);
        }

        /// Frame payloads with a valid variant tag and random fields.
        #[test]
        fn frame_decoder_on_near_frames(tag in 0u8..8, rest in proptest::collection::vec(any::<u8>(), 0..300)) {
            let mut p = vec![tag];
            p.extend_from_slice(&rest);
            let _ = codec::decode::<Frame>(&p);
        }
    }
}
