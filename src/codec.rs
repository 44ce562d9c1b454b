//! The one place that knows how messages become bytes: bincode 2 (serde flavour).
//!
//! Every other module calls [`encode`] and [`decode`]; swapping the encoding, or its settings,
//! touches this file alone. Decoding is bounded: bincode is given a byte limit so that a length
//! field in hostile input can never make it allocate more than the frame it came in. Byte arrays
//! (ids, keys, hashes) are byte strings on the wire (`serde_bytes`): one copy to decode.

use bytes::{Bytes, BytesMut};
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

/// A frame on its way out, in two parts written one after the other: a short head and a body.
///
/// A message frame is `Frame::Message { lseq, env }`: its head is the variant and the peer's
/// stream number, its body the envelope's bytes as they were encoded once for every recipient
/// (shared with the [`Arena`], not copied: a message sent to 100 peers is 100 heads of a few
/// bytes and one envelope, where it was 100 frames of their own, each allocated and filled). Any
/// other frame is all body. The writer copies both parts into the record it encrypts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OutFrame {
    head: [u8; HEAD_MAX],
    head_len: u8,
    body: Bytes,
}

/// The longest head: a variant index and a stream number, 5 + 9 bytes at most as varints.
const HEAD_MAX: usize = 14;

impl OutFrame {
    /// The head (empty for a frame that is all body).
    pub fn head(&self) -> &[u8] {
        &self.head[..self.head_len as usize]
    }

    /// The body.
    pub fn body(&self) -> &[u8] {
        &self.body
    }

    /// Length of the whole frame.
    pub fn len(&self) -> usize {
        self.head_len as usize + self.body.len()
    }

    /// Is the frame empty (no head, no body)?
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The frame in one piece, in an allocation of its exact size: for a frame that may wait
    /// long (its body would otherwise keep a whole arena chunk alive).
    pub fn to_bytes(&self) -> Bytes {
        let mut v = Vec::with_capacity(self.len());
        v.extend_from_slice(self.head());
        v.extend_from_slice(&self.body);
        v.into()
    }
}

impl From<Bytes> for OutFrame {
    fn from(body: Bytes) -> OutFrame {
        OutFrame { head: [0; HEAD_MAX], head_len: 0, body }
    }
}

/// `Frame::Message { lseq, env }` from an already encoded envelope, so that a message sent to
/// many peers (each with its own stream number) is encoded once and never copied before the
/// writer's record. bincode writes an enum as its variant index then its fields in order, so
/// head then body is the same as encoding the frame (a unit test in `protocol` checks it).
pub fn message_frame(lseq: u64, env: Bytes) -> Result<OutFrame, CodecError> {
    prefixed(&(1u32, lseq), env)
}

/// `Frame::CatchUp(env)` from an encoded envelope (see [`message_frame`]).
pub fn catchup_frame(env: Bytes) -> Result<OutFrame, CodecError> {
    prefixed(&8u32, env)
}

fn prefixed<T: Serialize>(head: &T, body: Bytes) -> Result<OutFrame, CodecError> {
    let mut h = [0u8; HEAD_MAX];
    let n = bincode::serde::encode_into_slice(head, &mut h, config())?;
    Ok(OutFrame { head: h, head_len: n as u8, body })
}

/// Bytes a fresh [`Arena`] chunk holds (a chunk is shared by the values cut from it, and freed
/// when the last of them is dropped).
const ARENA_CHUNK: usize = 32 * 1024;

/// A reused encode buffer for the envelopes a node sends: each is encoded at the end of one large
/// buffer and cut off as a [`Bytes`] that shares it, so that encoding a message costs no
/// allocation of its own (a `Vec` per value, grown five or six times on the way, did). A new
/// chunk is allocated when the current one is full; the old one lives on until the last value cut
/// from it is dropped.
///
/// Only for values that live no longer than the actor's turn (an envelope is stored, then framed
/// for each addressee at the commit, then dropped). Not for frames: a frame may wait in the outbox
/// of a peer that does not read, and would keep a whole chunk, filled with other peers' frames,
/// alive with it; frames get one allocation of their own exact size ([`message_frame`]).
///
/// The bytes are the same as those of [`encode`].
#[derive(Debug, Default)]
pub struct Arena {
    buf: BytesMut,
}

/// bincode's output into the arena's buffer.
struct ArenaWriter<'a>(&'a mut BytesMut);

impl bincode::enc::write::Writer for ArenaWriter<'_> {
    fn write(&mut self, bytes: &[u8]) -> Result<(), bincode::error::EncodeError> {
        self.0.extend_from_slice(bytes);
        Ok(())
    }
}

impl Arena {
    /// An empty arena (its first chunk is allocated by its first use).
    pub fn new() -> Arena {
        Arena::default()
    }

    /// The bytes of `value`, as [`encode`] gives them.
    pub fn encode<T: Serialize>(&mut self, value: &T) -> Result<Bytes, CodecError> {
        debug_assert!(self.buf.is_empty());
        if self.buf.capacity() < 256 {
            // The values cut from the old chunk keep it alive; this one is new. A larger value
            // grows it as it is written.
            self.buf = BytesMut::with_capacity(ARENA_CHUNK);
        }
        let r = bincode::serde::encode_into_writer(value, ArenaWriter(&mut self.buf), config());
        if let Err(e) = r {
            self.buf.clear();
            return Err(e.into());
        }
        Ok(self.buf.split().freeze())
    }
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
        /// The batch that proves its author, once a seal did ([`crate::authorship::Verifier`]).
        proof: Option<std::sync::Arc<crate::authorship::Batch>>,
    },
    /// `Frame::CatchUp`, with the envelope's bytes.
    CatchUp {
        /// The message.
        env: crate::protocol::Envelope,
        /// Its bytes on the wire.
        raw: Bytes,
        /// As for `Message`.
        proof: Option<std::sync::Arc<crate::authorship::Batch>>,
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
            Ok(Received::Message { lseq, env: decode_envelope(&raw)?, raw, proof: None })
        }
        8 => {
            let raw = bytes.slice(used..);
            Ok(Received::CatchUp { env: decode_envelope(&raw)?, raw, proof: None })
        }
        _ => Ok(Received::Other(decode::<Frame>(bytes)?)),
    }
}

/// Decode an envelope that must fill `bytes` exactly (every message received, every message
/// replayed from the journal).
pub fn decode_envelope(bytes: &[u8]) -> Result<crate::protocol::Envelope, CodecError> {
    decode(bytes)
}

/// The id of the envelope encoded in `bytes` (its first field), without decoding the rest.
pub fn envelope_id(bytes: &[u8]) -> Result<crate::id::MsgId, CodecError> {
    Ok(bincode::serde::decode_from_slice(bytes, config())?.0)
}

/// Decode a value that must fill `bytes` exactly.
pub fn decode<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, CodecError> {
    let (value, used) = bincode::serde::decode_from_slice(bytes, config())?;
    if used != bytes.len() {
        return Err(CodecError::Trailing(bytes.len() - used));
    }
    Ok(value)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::id::{MsgId, PeerId};
    use crate::protocol::{Body, Envelope, Frame};
    use proptest::prelude::*;

    fn env(seq: u64, text: &str) -> Envelope {
        Envelope {
            id: MsgId { author: PeerId([3; 16]), seq },
            author_name: "ann".into(),
            sent_ms: 1_700_000_000_000 + seq,
            to: None,
            body: Body::Chat { text: text.into() },
            files: vec![],
        }
    }

    fn any_envelope() -> impl Strategy<Value = Envelope> {
        let id = (any::<[u8; 16]>(), any::<u64>()).prop_map(|(a, seq)| MsgId { author: PeerId(a), seq });
        let body = prop_oneof![
            ".{0,40}".prop_map(|text| Body::Chat { text }),
            (".{0,20}", ".{0,40}", any::<bool>()).prop_map(|(title, body, private_answers)| Body::Problem {
                title,
                body,
                private_answers
            }),
            (id.clone(), ".{0,40}").prop_map(|(problem, text)| Body::Answer { problem, text }),
            (id.clone(), ".{0,40}").prop_map(|(answer, text)| Body::Feedback { answer, text }),
        ];
        let file = (".{0,20}", any::<u64>(), any::<[u8; 32]>(), any::<[u8; 32]>())
            .prop_map(|(name, size, sha256, chunks)| crate::protocol::FileRef { name, size, sha256, chunks });
        (
            id,
            ".{0,20}",
            any::<u64>(),
            proptest::option::of(any::<[u8; 16]>()),
            body,
            proptest::collection::vec(file, 0..3),
        )
            .prop_map(|(id, author_name, sent_ms, to, body, files)| Envelope {
                id,
                author_name,
                sent_ms,
                to: to.map(PeerId),
                body,
                files,
            })
    }

    #[test]
    fn an_envelope_length_past_the_limit_is_refused_before_any_allocation() {
        // A name whose length field claims 4 GiB.
        let mut bytes = vec![16u8];
        bytes.extend_from_slice(&[0u8; 16]);
        bytes.push(1); // seq
        bytes.extend_from_slice(&[252, 0xff, 0xff, 0xff, 0xff]);
        assert!(decode_envelope(&bytes).is_err());
    }

    proptest! {
        /// Every envelope comes back; every cut short, and one byte too many, is refused.
        #[test]
        fn envelopes_round_trip_and_cut_ones_are_refused(e in any_envelope()) {
            let bytes = encode(&e).unwrap();
            prop_assert_eq!(&Arena::new().encode(&e).unwrap(), &bytes);
            prop_assert_eq!(decode_envelope(&bytes).unwrap(), e);
            for n in 0..bytes.len() {
                prop_assert!(decode_envelope(&bytes[..n]).is_err());
            }
            let mut longer = bytes.to_vec();
            longer.push(0);
            prop_assert!(decode_envelope(&longer).is_err());
        }

        /// Random bytes never panic the decoder.
        #[test]
        fn random_bytes_do_not_panic(bytes in proptest::collection::vec(any::<u8>(), 0..160)) {
            let _ = decode_envelope(&bytes);
            let _ = decode_received(&bytes::Bytes::from(bytes));
        }
    }

    #[test]
    fn the_arena_encodes_as_encode_does_across_chunks_and_frames_are_exact() {
        let mut a = Arena::new();
        let mut kept = Vec::new();
        // Enough to fill several chunks, with a value larger than a chunk among them.
        for seq in 1..2000u64 {
            let text = if seq == 700 { "y".repeat(3 * ARENA_CHUNK) } else { "x".repeat((seq % 300) as usize + 1) };
            let e = env(seq, &text);
            let bytes = a.encode(&e).unwrap();
            assert_eq!(bytes, encode(&e).unwrap());
            let lseq = if seq == 5 { u64::MAX } else { seq * 7 };
            let f = message_frame(lseq, bytes.clone()).unwrap().to_bytes();
            assert_eq!(f, encode(&Frame::Message { lseq, env: e.clone() }).unwrap());
            assert_eq!(catchup_frame(bytes.clone()).unwrap().to_bytes(), encode(&Frame::CatchUp(e.clone())).unwrap());
            kept.push((lseq, e, bytes, f));
        }
        // Frames cut earlier are not disturbed by the later ones.
        for (lseq, e, bytes, f) in kept {
            assert_eq!(decode::<Envelope>(&bytes).unwrap(), e);
            assert_eq!(decode::<Frame>(&f).unwrap(), Frame::Message { lseq, env: e });
        }
        // Refused (or not) as `encode` does; a refused value leaves nothing behind.
        let huge = env(1, &"z".repeat(MAX_ENCODED + 1));
        assert_eq!(a.encode(&huge).is_err(), encode(&huge).is_err());
        let e = env(2, "after");
        assert_eq!(a.encode(&e).unwrap(), encode(&e).unwrap());
    }
}
