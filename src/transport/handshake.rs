//! Opening a connection: each side writes its 8-byte preamble and its hello frame at once, then
//! reads the other's, all within the handshake timeout. A connection that sends anything else,
//! too slowly, of another version or room, or claims our own id, is closed with a debug log.

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};
use tokio_util::codec::{FramedRead, FramedWrite, LengthDelimitedCodec};

use futures_util::StreamExt;

use super::{Ctx, HANDSHAKE_MAX_FRAME};
use crate::codec;
use crate::protocol::{Frame, Hello, PREAMBLE_LEN, Preamble, PreambleError};

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
    /// Bad preamble.
    #[error("preamble: {0}")]
    Preamble(#[from] PreambleError),
    /// The first frame is not a valid hello.
    #[error("bad hello: {0}")]
    Hello(String),
    /// Another room.
    #[error("peer of room {0:?}")]
    Room(String),
    /// Our own id (we dialed ourselves, or someone copied our id).
    #[error("peer claims our own id")]
    SelfId,
}

/// Both halves of an open connection, framed.
pub type Framed = (FramedRead<OwnedReadHalf, LengthDelimitedCodec>, FramedWrite<OwnedWriteHalf, LengthDelimitedCodec>);

/// The frame codec: a 4-byte big-endian length, then the payload; at most `max` bytes.
pub fn frame_codec(max: usize) -> LengthDelimitedCodec {
    LengthDelimitedCodec::builder().length_field_length(4).big_endian().max_frame_length(max).new_codec()
}

/// Make a name safe to show: no control characters, trimmed, at most [`MAX_NAME`] characters.
pub fn clean_name(name: &str) -> String {
    let s: String = name.chars().filter(|c| !c.is_control()).take(MAX_NAME).collect();
    s.trim().to_string()
}

/// Run the handshake on a fresh connection.
pub async fn handshake(stream: TcpStream, ctx: &Ctx) -> Result<(Hello, Framed), HandshakeError> {
    tokio::time::timeout(ctx.handshake_timeout, exchange(stream, ctx)).await.map_err(|_| HandshakeError::Timeout)?
}

async fn exchange(mut stream: TcpStream, ctx: &Ctx) -> Result<(Hello, Framed), HandshakeError> {
    stream.set_nodelay(true)?;
    let mut first = Vec::with_capacity(PREAMBLE_LEN + 4 + ctx.hello.len());
    first.extend_from_slice(&Preamble::ours().to_bytes());
    first.extend_from_slice(&(ctx.hello.len() as u32).to_be_bytes());
    first.extend_from_slice(&ctx.hello);
    stream.write_all(&first).await?;

    let mut pre = [0u8; PREAMBLE_LEN];
    stream.read_exact(&mut pre).await?;
    Preamble::parse(&pre)?;

    let (r, w) = stream.into_split();
    let mut read = FramedRead::new(r, frame_codec(HANDSHAKE_MAX_FRAME));
    let bytes = match read.next().await {
        Some(Ok(b)) => b,
        Some(Err(e)) => return Err(HandshakeError::Hello(e.to_string())),
        None => return Err(HandshakeError::Hello("closed before hello".into())),
    };
    let mut hello = match codec::decode::<Frame>(&bytes) {
        Ok(Frame::Hello(h)) => h,
        Ok(other) => return Err(HandshakeError::Hello(format!("first frame is {other:?}"))),
        Err(e) => return Err(HandshakeError::Hello(e.to_string())),
    };
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
    read.decoder_mut().set_max_frame_length(ctx.max_frame);
    let write = FramedWrite::new(w, frame_codec(ctx.max_frame));
    Ok((hello, (read, write)))
}
