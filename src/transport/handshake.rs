//! Opening a connection: each side writes its 8-byte preamble (whose mode says Noise, or Noise
//! with the room's passphrase key), then the dialer and the acceptor run a Noise `XX` handshake
//! ([`super::noise`]); then each sends its hello as the first encrypted frame and reads the
//! other's, all within the handshake timeout. Refused with a debug log: anything else, too slow,
//! another version, mode or room, a hello whose id is not the hash of the static key the Noise
//! handshake proved, or our own id. Refusals that tell of a passphrase problem also become a
//! rate-limited warning for the user.

use std::net::SocketAddr;
use std::sync::atomic::Ordering;

use tokio::net::TcpStream;
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};
use tokio_util::codec::{FramedRead, FramedWrite};

use futures_util::{FutureExt, SinkExt, StreamExt};

use super::crossing::Mark;
use super::noise::{self, Admit, Intro, NoiseError, NoiseReader, NoiseWriter, Prefixed};
use super::{Ctx, HANDSHAKE_MAX_FRAME};
use crate::codec;
use crate::crypto::{noise_key_of, peer_id_of};
use crate::diag::{COUNTS, Counts};
use crate::guard::WarnKind;
use crate::protocol::{Frame, Hello, MODE_NOISE_PSK};

/// Longest name kept from a hello, in characters.
pub const MAX_NAME: usize = 64;
/// Most props kept from a hello.
pub const MAX_PROPS: usize = 16;

/// Why a connection was refused.
#[derive(Debug, thiserror::Error)]
pub enum HandshakeError {
    /// Socket error or EOF.
    #[error("i/o: {0}")]
    Io(#[from] std::io::Error),
    /// Too slow.
    #[error("handshake timed out")]
    Timeout,
    /// Preamble or Noise handshake failed.
    #[error("{0}")]
    Noise(#[from] NoiseError),
    /// The first frame is not a valid hello.
    #[error("bad hello: {0}")]
    Hello(String),
    /// Another room.
    #[error("peer of room {0:?}")]
    Room(String),
    /// Our own id (we dialed ourselves, or someone copied our id).
    #[error("peer claims our own id")]
    SelfId,
    /// The hello claims an id that is not the hash of the key the peer proved it holds.
    #[error("peer claims id {claimed} but its key is that of {proved}")]
    WrongKey {
        /// The id in the hello.
        claimed: String,
        /// The id of its static key.
        proved: String,
    },
}

/// Both halves of an open connection, framed and encrypted.
pub type Framed = (FramedRead<Prefixed<OwnedReadHalf>, NoiseReader>, FramedWrite<OwnedWriteHalf, NoiseWriter>);

/// Make a name safe to show ([`crate::text::clean_name`]).
pub fn clean_name(name: &str) -> String {
    crate::text::clean_name(name)
}

/// Which end of a connection a handshake runs at.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum End {
    /// Dialing a peer known by its id: the dialer names itself in message 1, so that the peer,
    /// if it is dialing us at the same moment, can refuse this crossing dial early
    /// ([`super::crossing`]).
    Dialer,
    /// Dialing a seed, a peer known only by its address: names nobody. A refusal as crossing
    /// would leave the dialer not knowing who answered, and the seed to be dialed again.
    SeedDialer,
    /// Accepting.
    Acceptor,
}

/// What an acceptor asks of a dialer's claim (the id it names in message 1, if any) once the
/// crossing check let it through: false refuses the connection ([`NoiseError::Refused`]).
pub type Screen<'a> = dyn FnMut(Option<crate::id::PeerId>) -> bool + Send + 'a;

/// Run the handshake on a fresh connection to or from `remote`, at `end`. An acceptor gets the
/// handshake's place in [`Ctx::crossing`] too, when the dialer named itself, and asks `screen`
/// whether to go on after message 1.
pub async fn handshake(
    stream: TcpStream,
    ctx: &Ctx,
    end: End,
    remote: SocketAddr,
    screen: Option<&mut Screen<'_>>,
) -> Result<(Hello, Framed, Option<Mark>), HandshakeError> {
    let initiator = end != End::Acceptor;
    let side = usize::from(!initiator);
    Counts::bump(&COUNTS.started[side]);
    let t0 = std::time::Instant::now();
    let r = tokio::time::timeout(ctx.handshake_timeout, exchange(stream, ctx, end, screen))
        .await
        .map_err(|_| HandshakeError::Timeout)
        .and_then(|r| r);
    match &r {
        Ok(_) => {
            Counts::bump(&COUNTS.ok[side]);
            COUNTS.ok_us.fetch_add(t0.elapsed().as_micros() as u64, Ordering::Relaxed);
        }
        Err(HandshakeError::Timeout) => Counts::bump(&COUNTS.timed_out[side]),
        Err(HandshakeError::Noise(NoiseError::Crossed)) => Counts::bump(&COUNTS.crossed[side]),
        Err(_) => Counts::bump(&COUNTS.failed[side]),
    }
    if let Err(e) = &r {
        warn_about(e, ctx, remote);
    }
    r
}

/// Turn a refusal that tells of a passphrase problem into a warning for the user.
fn warn_about(e: &HandshakeError, ctx: &Ctx, remote: SocketAddr) {
    let ip = remote.ip();
    let room = &ctx.room;
    match e {
        HandshakeError::Noise(NoiseError::ModeMismatch { theirs, .. }) if *theirs == MODE_NOISE_PSK => {
            ctx.warner.warn(WarnKind::TheyHavePassphrase, ip, || {
                format!("refused a peer at {ip}: it uses a passphrase and this peer has none")
            });
        }
        HandshakeError::Noise(NoiseError::ModeMismatch { .. }) => {
            ctx.warner.warn(WarnKind::NoPassphrase, ip, || {
                format!("refused a peer at {ip}: it has no passphrase for room \"{room}\"")
            });
        }
        HandshakeError::Noise(NoiseError::Handshake { step: 3, .. }) if ctx.keys.psk.is_some() => {
            ctx.warner.warn(WarnKind::WrongPassphrase, ip, || {
                format!("refused a peer at {ip}: wrong passphrase for room \"{room}\"")
            });
        }
        _ => {}
    }
}

async fn exchange(
    mut stream: TcpStream,
    ctx: &Ctx,
    end: End,
    mut screen: Option<&mut Screen<'_>>,
) -> Result<(Hello, Framed, Option<Mark>), HandshakeError> {
    stream.set_nodelay(true)?;
    let initiator = end != End::Acceptor;
    // The dialer names itself; the acceptor refuses a crossing dial, or one it has no place
    // for, or marks the handshake.
    let mut claimed = None;
    let mut mark = None;
    let mut admit = |claim| {
        claimed = claim;
        match ctx.crossing.incoming(claim) {
            Err(_) => Admit::Crossed,
            Ok(_) if screen.as_mut().is_some_and(|s| !s(claim)) => Admit::Refused,
            Ok(m) => {
                mark = m;
                Admit::Go
            }
        }
    };
    let intro = match end {
        End::Dialer => Intro::Dialer(Some(ctx.me)),
        End::SeedDialer => Intro::Dialer(None),
        End::Acceptor => Intro::Acceptor(&mut admit),
    };
    let noise::Opened { ts, unsent, rest } = noise::open(&mut stream, intro, &ctx.keys).await?;
    let proved = noise::remote_static(&ts);
    let (r, w) = stream.into_split();
    // What the handshake read past its end (the dialer's hello, sent with message 3) is read first.
    let mut read = FramedRead::new(Prefixed::new(rest, r), NoiseReader::new(ts.clone(), HANDSHAKE_MAX_FRAME));
    let mut write = FramedWrite::new(w, NoiseWriter::new(ts, ctx.max_frame));
    // The initiator's last handshake message and its hello go in one write.
    write.write_buffer_mut().extend_from_slice(&unsent);
    // The acceptor whose dialer's hello is here already (it came with message 3) holds its own
    // hello back: the session's writer sends it with the first frames the node queues (`Resume`,
    // or a `Bye`), in one write. Otherwise the hello goes now: the dialer may wait for it.
    let early = if initiator { None } else { read.next().now_or_never().flatten() };
    let held = early.is_some();
    let next = match early {
        Some(r) => {
            Counts::bump(&COUNTS.held_hello);
            write.feed(ctx.hello.clone()).await?;
            Some(r)
        }
        None => {
            write.send(ctx.hello.clone()).await?;
            read.next().await
        }
    };
    match check(next, proved, ctx).and_then(|h| claim_holds(claimed, h)) {
        Ok(hello) => {
            read.decoder_mut().set_max_frame(ctx.max_frame);
            Ok((hello, (read, write), mark))
        }
        Err(e) => {
            if held {
                // The dialer learns who we are all the same (another room, say).
                let _ = write.flush().await;
            }
            Err(e)
        }
    }
}

/// A dialer that named itself in message 1 must be who its hello (and key) says.
fn claim_holds(claimed: Option<crate::id::PeerId>, hello: Hello) -> Result<Hello, HandshakeError> {
    match claimed {
        Some(c) if c != hello.id => {
            Err(HandshakeError::WrongKey { claimed: c.to_string(), proved: hello.id.to_string() })
        }
        _ => Ok(hello),
    }
}

/// The other side's hello, checked against the Noise key it proved (which must be its identity
/// key's, whose hash is its id) and our room, and cleaned.
fn check(
    next: Option<Result<bytes::Bytes, std::io::Error>>,
    proved: Option<[u8; 32]>,
    ctx: &Ctx,
) -> Result<Hello, HandshakeError> {
    let bytes = match next {
        Some(Ok(b)) => b,
        Some(Err(e)) => return Err(HandshakeError::Hello(e.to_string())),
        None => return Err(HandshakeError::Hello("closed before hello".into())),
    };
    let mut hello = match codec::decode::<Frame>(&bytes) {
        Ok(Frame::Hello(h)) => h,
        Ok(other) => return Err(HandshakeError::Hello(format!("first frame is {other:?}"))),
        Err(e) => return Err(HandshakeError::Hello(e.to_string())),
    };
    let holds = proved.is_some() && noise_key_of(&hello.identity) == proved;
    if !holds || peer_id_of(&hello.identity) != hello.id {
        return Err(HandshakeError::WrongKey {
            claimed: hello.id.to_string(),
            proved: if holds { peer_id_of(&hello.identity).to_string() } else { "another key".into() },
        });
    }
    if hello.room != ctx.room {
        return Err(HandshakeError::Room(hello.room));
    }
    if hello.id == ctx.me {
        return Err(HandshakeError::SelfId);
    }
    if hello.tcp_port == 0 {
        return Err(HandshakeError::Hello("TCP port 0".into()));
    }
    hello.name = clean_name(&hello.name);
    if hello.name.is_empty() {
        hello.name = format!("peer-{}", hello.id.short());
    }
    hello.props.truncate(MAX_PROPS);
    Ok(hello)
}
