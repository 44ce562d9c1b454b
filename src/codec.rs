//! The one place that knows how messages become bytes: bincode 2 (serde flavour).
//!
//! Every other module calls [`encode`] and [`decode`]; swapping the encoding, or its settings,
//! touches this file alone. Decoding is bounded: bincode is given a byte limit so that a length
//! field in hostile input can never make it allocate more than the frame it came in.

use bytes::Bytes;
use serde::Serialize;
use serde::de::DeserializeOwned;

/// The largest value the codec will encode or decode, in bytes (matches the largest frame).
pub const MAX_ENCODED: usize = 1 << 20;

fn config() -> impl bincode::config::Config {
    bincode::config::standard().with_limit::<MAX_ENCODED>()
}

/// Why bytes could not be turned into a value, or back.
#[derive(Debug, thiserror::Error)]
pub enum CodecError {
    /// The value could not be encoded (too large, most likely).
    #[error("cannot encode: {0}")]
    Encode(#[from] bincode::error::EncodeError),
    /// The bytes are not a valid encoding.
    #[error("cannot decode: {0}")]
    Decode(#[from] bincode::error::DecodeError),
    /// A valid value was followed by bytes that belong to nothing.
    #[error("{0} trailing bytes after the value")]
    Trailing(usize),
}

/// Encode a value.
pub fn encode<T: Serialize>(value: &T) -> Result<Bytes, CodecError> {
    Ok(bincode::serde::encode_to_vec(value, config())?.into())
}

/// The bytes of `Frame::Message { lseq, env }` built from an already encoded envelope, so that a
/// message sent to many peers (each with its own stream number) is encoded once. bincode writes
/// an enum as its variant index then its fields in order, so this is the same as encoding the
/// frame (a unit test in `protocol` checks it).
pub fn message_frame(lseq: u64, env: &[u8]) -> Result<Bytes, CodecError> {
    prefixed(&(1u32, lseq), env)
}

/// The bytes of `Frame::CatchUp(env)` from an encoded envelope (see [`message_frame`]).
pub fn catchup_frame(env: &[u8]) -> Result<Bytes, CodecError> {
    prefixed(&8u32, env)
}

fn prefixed<T: Serialize>(head: &T, tail: &[u8]) -> Result<Bytes, CodecError> {
    let mut v = bincode::serde::encode_to_vec(head, config())?;
    v.extend_from_slice(tail);
    Ok(v.into())
}

/// A frame as received, with the bytes of its envelope kept when it has one (so that a message
/// received is stored as it came, not encoded again).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Received {
    /// `Frame::Message`; `raw` is the envelope's encoding, a slice of the frame.
    Message {
        /// Position in the sender's stream.
        lseq: u64,
        /// The message.
        env: crate::protocol::Envelope,
        /// Its bytes on the wire.
        raw: Bytes,
    },
    /// `Frame::CatchUp`, with the envelope's bytes.
    CatchUp {
        /// The message.
        env: crate::protocol::Envelope,
        /// Its bytes on the wire.
        raw: Bytes,
    },
    /// Any other frame.
    Other(crate::protocol::Frame),
}

/// Decode a frame as [`decode`] would, keeping the envelope bytes of a message or catch-up frame
/// (bincode writes the variant index, then the fields in order: see [`message_frame`]). Accepts
/// and refuses exactly what `decode::<Frame>` does.
pub fn decode_received(bytes: &Bytes) -> Result<Received, CodecError> {
    use crate::protocol::Frame;
    let (variant, used): (u32, usize) = bincode::serde::decode_from_slice(bytes, config())?;
    match variant {
        1 => {
            let (lseq, n): (u64, usize) = bincode::serde::decode_from_slice(&bytes[used..], config())?;
            let raw = bytes.slice(used + n..);
            Ok(Received::Message { lseq, env: decode(&raw)?, raw })
        }
        8 => {
            let raw = bytes.slice(used..);
            Ok(Received::CatchUp { env: decode(&raw)?, raw })
        }
        _ => Ok(Received::Other(decode::<Frame>(bytes)?)),
    }
}

/// Decode a value that must fill `bytes` exactly.
pub fn decode<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, CodecError> {
    let (value, used) = bincode::serde::decode_from_slice(bytes, config())?;
    if used != bytes.len() {
        return Err(CodecError::Trailing(bytes.len() - used));
    }
    Ok(value)
}
