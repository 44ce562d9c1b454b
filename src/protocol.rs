//! Every message of the TCP wire, in one place, with its version.
//!
//! A connection starts with an 8-byte [`Preamble`] from each side, then length-delimited frames
//! (a 4-byte big-endian length, then that many bytes) each holding one bincode-encoded [`Frame`].
//! The first frame each way is [`Frame::Hello`]. docs/protocol.md describes every byte.
//!
//! Evolution rules, so that later work (acknowledgements, catch-up, encryption, gossip) fits:
//! - new kinds of frame are *appended* to [`Frame`]; a peer drops a frame it cannot decode
//!   (debug log) and keeps the session, so an older peer survives a newer one;
//! - the preamble's `mode` byte names the transport (0 = plain frames, no longer accepted;
//!   1 = Noise, 2 = Noise with the room's passphrase key), with the same frames inside;
//! - a change that old peers cannot ignore bumps [`PROTOCOL_VERSION`], and peers of another
//!   version are refused in the preamble, before any frame.
//! - [`Hello::props`] carries optional key/value facts (e.g. `role=teacher`) without a new version.

use serde::{Deserialize, Serialize};

use crate::id::{MsgId, PeerId};

/// The version of the wire protocol (beacon and TCP). Peers of another version are ignored.
pub const PROTOCOL_VERSION: u8 = 2;

/// The first four bytes of a TCP connection, in each direction.
pub const PREAMBLE_MAGIC: [u8; 4] = *b"LNPT";

/// Size of the preamble in bytes.
pub const PREAMBLE_LEN: usize = 8;

/// Transport mode 0: frames sent as they are (the core protocol). No longer spoken: refused.
pub const MODE_PLAIN: u8 = 0;
/// Transport mode 1: a `Noise_XX_25519_ChaChaPoly_BLAKE2s` handshake, then encrypted records
/// (open rooms). See docs/protocol.md, "The Noise handshake".
pub const MODE_NOISE: u8 = 1;
/// Transport mode 2: as [`MODE_NOISE`], with `Noise_XXpsk3` and the room's passphrase key
/// (passphrase rooms). A peer only talks to peers of its own mode.
pub const MODE_NOISE_PSK: u8 = 2;

/// The 8 bytes each side writes first on a TCP connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Preamble {
    /// [`PROTOCOL_VERSION`] of the sender.
    pub version: u8,
    /// The transport mode the sender speaks ([`MODE_NOISE`] or [`MODE_NOISE_PSK`]).
    pub mode: u8,
}

/// Why a preamble was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PreambleError {
    /// Not a lanpeer connection.
    #[error("not a lanpeer connection (bad magic)")]
    BadMagic,
    /// Another protocol version.
    #[error("protocol version {0}, this peer speaks {PROTOCOL_VERSION}")]
    Version(u8),
    /// A transport mode this peer does not speak.
    #[error("transport mode {0} is not supported")]
    Mode(u8),
}

impl Preamble {
    /// The preamble of an open room ([`MODE_NOISE`]).
    pub fn ours() -> Self {
        Preamble::with_mode(MODE_NOISE)
    }

    /// The preamble of this version with transport `mode`.
    pub fn with_mode(mode: u8) -> Self {
        Preamble { version: PROTOCOL_VERSION, mode }
    }

    /// `magic(4) version(1) mode(1) reserved(2)=0`.
    pub fn to_bytes(self) -> [u8; PREAMBLE_LEN] {
        let m = PREAMBLE_MAGIC;
        [m[0], m[1], m[2], m[3], self.version, self.mode, 0, 0]
    }

    /// Parse and check a peer's preamble (reserved bytes are ignored).
    pub fn parse(b: &[u8; PREAMBLE_LEN]) -> Result<Self, PreambleError> {
        if b[..4] != PREAMBLE_MAGIC {
            return Err(PreambleError::BadMagic);
        }
        if b[4] != PROTOCOL_VERSION {
            return Err(PreambleError::Version(b[4]));
        }
        if b[5] != MODE_NOISE && b[5] != MODE_NOISE_PSK {
            return Err(PreambleError::Mode(b[5]));
        }
        Ok(Preamble { version: b[4], mode: b[5] })
    }
}

/// One frame of the TCP wire. The variant order is the wire order: append, never reorder.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Frame {
    /// 0: who I am; the first frame each way.
    Hello(Hello),
    /// 1: an application message (chat, problem, answer, feedback), number `lseq` of the
    /// sender's reliable stream to this receiver (1, 2, 3... per ordered pair of peers, over all
    /// sessions and restarts). Delivered in that order, once; acknowledged by [`Frame::Ack`].
    Message {
        /// Position in the sender's stream to this receiver.
        lseq: u64,
        /// The message.
        env: Envelope,
    },
    /// 2: keepalive, sent when a session has been idle for a keepalive interval.
    Ping,
    /// 3: I am closing this session on purpose; the text says why (for logs).
    Bye(String),
    /// 4: I have stored every message of your stream to me up to this `lseq` (cumulative).
    Ack(u64),
    /// 5: sent first on every session, about my stream to you.
    Resume {
        /// It will never again carry numbers up to this one (acknowledged, or dropped by the
        /// store-and-forward bounds): do not wait for them.
        done: u64,
        /// The last number it has used so far: once you have everything up to it, you have
        /// every message I sent you before this session (so catch-up from others may follow).
        last: u64,
    },
    /// 6: the ids of the room messages I can give you (catch-up), oldest first. Sent at session start.
    Offer(Vec<MsgId>),
    /// 7: send me these (the ones of your offer that I do not have).
    Want(Vec<MsgId>),
    /// 8: a room message from my store (possibly by another author), outside any stream.
    CatchUp(Envelope),
    /// 9: gossip: peers I have a live, authenticated session with in this room, and where I
    /// reach them (at most [`crate::gossip::MAX_ADS`] entries). Sent at session start and when
    /// my set of peers changes; a receiver may dial them (docs/protocol.md, "Gossip").
    Peers(Vec<PeerAd>),
    /// 10: the author's signature over a batch of its messages, proving the messages of that
    /// batch sent on this session since its last seal ([`Message`](Frame::Message) or
    /// [`CatchUp`](Frame::CatchUp) frames before it). A receiver holds a message until a seal
    /// proves it, and drops it when none does.
    Seal(Seal),
    /// 11: which parts of this file do you hold? Asked, of the peers that may have it, by a peer
    /// that fetches it (docs/protocol.md, "Files"). Answered with [`Frame::FileHave`], or with
    /// [`Frame::FileNone`] when the asker may not have it (its message is not visible to it).
    FileAsk(FileAsk),
    /// 12: what I hold of a file: in answer to an ask, then, to the peers that fetch it too, each
    /// time I hold more.
    FileHave(FileHave),
    /// 13: send me this part of a file (its list of chunk hashes, or a chunk).
    FileWant(FileWant),
    /// 14: a part of a file, in answer to a want.
    FilePart(FilePart),
    /// 15: I will not send this (I do not hold it, or you may not have it).
    FileNone(FileNone),
}

/// A file named by the message that attaches it: its id, and the file's
/// [`chunks`](FileRef::chunks) hash. A file is given only under a message visible to the asker
/// (docs/security.md, "Files").
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct FileKey {
    /// The message that attaches the file.
    pub msg: MsgId,
    /// [`FileRef::chunks`] of the file.
    #[serde(with = "serde_bytes")]
    pub file: [u8; 32],
}

/// [`Frame::FileAsk`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FileAsk {
    /// The file asked about.
    pub key: FileKey,
}

/// Which chunks of a file a peer holds.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Have {
    /// 0: all of it.
    All,
    /// 1: one bit per chunk (chunk `i` is bit `i % 8` of byte `i / 8`).
    Bits(#[serde(with = "serde_bytes")] Vec<u8>),
    /// 2: these chunks, more than the sender said before.
    Added(Vec<u32>),
}

/// [`Frame::FileHave`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FileHave {
    /// [`FileRef::chunks`] of the file.
    #[serde(with = "serde_bytes")]
    pub file: [u8; 32],
    /// What the sender holds.
    pub have: Have,
}

/// A part of a file.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum Part {
    /// 0: piece `k` of the list of chunk hashes (hashes `k * 2048 ..`, 32 bytes each).
    List(u32),
    /// 1: chunk `i` (bytes `i * 65536 ..`, 64 KiB, the last one shorter).
    Chunk(u32),
}

/// [`Frame::FileWant`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FileWant {
    /// The file, and the message it is asked under.
    pub key: FileKey,
    /// The part wanted.
    pub part: Part,
}

/// [`Frame::FilePart`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FilePart {
    /// [`FileRef::chunks`] of the file.
    #[serde(with = "serde_bytes")]
    pub file: [u8; 32],
    /// Which part.
    pub part: Part,
    /// Its bytes.
    #[serde(with = "serde_bytes")]
    pub data: Vec<u8>,
}

/// [`Frame::FileNone`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FileNone {
    /// [`FileRef::chunks`] of the file.
    #[serde(with = "serde_bytes")]
    pub file: [u8; 32],
    /// The part refused; `None`: the whole file (an ask refused).
    pub part: Option<Part>,
}

/// An author's signature over a batch of its messages: the numbers `first..first + count` of
/// its own sequence, the leaves of a hash tree ([`crate::merkle`]) whose root the author signed.
/// docs/protocol.md, "Authorship", gives the signed bytes.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Seal {
    /// The author's identity key (its id is this key's hash: no lookup needed).
    #[serde(with = "serde_bytes")]
    pub key: [u8; 32],
    /// The author's number of the batch's first message.
    pub first: u64,
    /// The numbers in the batch (1 to [`MAX_SEALED`]).
    pub count: u32,
    /// Ed25519 signature by `key` over the batch's signed bytes.
    #[serde(with = "serde_bytes")]
    pub sig: [u8; 64],
    /// The proof of the messages this seal accompanies: the hashes of the batch's other parts,
    /// 32 bytes each, in the order of [`crate::merkle::prove`].
    #[serde(with = "serde_bytes")]
    pub proof: Vec<u8>,
}

/// Numbers in one sealed batch, at most.
pub const MAX_SEALED: u32 = 4096;

/// One entry of a [`Frame::Peers`] gossip frame.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PeerAd {
    /// The peer's id (proved by its key in the session the sender has with it).
    pub id: PeerId,
    /// Its incarnation, from its hello.
    pub incarnation: u64,
    /// Its TCP session port, from its hello.
    pub tcp_port: u16,
    /// Addresses the sender knows it by, most recent first (at most
    /// [`crate::gossip::MAX_AD_ADDRS`]; IPv6 link-local addresses are never sent).
    pub addrs: Vec<std::net::IpAddr>,
}

/// The handshake: the facts a peer needs before it lists another.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Hello {
    /// The sender's id: the hash of `identity`.
    pub id: PeerId,
    /// The sender's identity key (Ed25519); the Noise key it proved in the handshake must be this
    /// key's Montgomery form ([`crate::crypto`]).
    #[serde(with = "serde_bytes")]
    pub identity: [u8; 32],
    /// Random per start of the sender: tells a restarted peer from a lingering old session.
    pub incarnation: u64,
    /// Display name.
    pub name: String,
    /// Room name; must equal the receiver's room.
    pub room: String,
    /// The sender's TCP listening port (so that an accepted session knows where to dial back).
    pub tcp_port: u16,
    /// Optional facts, e.g. `("role", "teacher")`. Unknown keys are ignored.
    pub props: Vec<(String, String)>,
}

/// An application message with its id, as sent to each addressee. Every field is covered by the
/// author's signature (a [`Seal`] over the envelope's bytes).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Envelope {
    /// Unique in the room: author and the author's sequence number.
    pub id: MsgId,
    /// The author's display name when it was sent.
    pub author_name: String,
    /// The author's clock when it was sent, in milliseconds since the Unix epoch.
    pub sent_ms: u64,
    /// `None` for everyone, or the one addressee of a private message.
    pub to: Option<PeerId>,
    /// What it says.
    pub body: Body,
    /// Files attached, in order (often none).
    pub files: Vec<FileRef>,
}

/// A file attached to a message: what it is called, and the hashes that name its content.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FileRef {
    /// Its name, a relative path with `/` between the parts (`src/a.py` for a file of a folder).
    pub name: String,
    /// Its size in bytes.
    pub size: u64,
    /// SHA-256 of its content (what `sha256sum` prints).
    #[serde(with = "serde_bytes")]
    pub sha256: [u8; 32],
    /// The hash of the list of its chunks' hashes (docs/protocol.md, "Files").
    #[serde(with = "serde_bytes")]
    pub chunks: [u8; 32],
}

/// The four kinds of application message.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Body {
    /// 0: a chat line (to everyone, or private when the envelope has `to`).
    Chat {
        /// The text.
        text: String,
    },
    /// 1: an exercise.
    Problem {
        /// Short title.
        title: String,
        /// The statement; newlines kept.
        body: String,
        /// When set, answers go to the problem's author only (a quiz).
        private_answers: bool,
    },
    /// 2: an answer to a problem.
    Answer {
        /// The problem answered.
        problem: MsgId,
        /// The answer; code included, newlines kept.
        text: String,
    },
    /// 3: feedback on an answer.
    Feedback {
        /// The answer commented on.
        answer: MsgId,
        /// The feedback.
        text: String,
    },
}

impl Body {
    /// The event name of this kind of message (as in `--json`).
    pub fn kind(&self) -> &'static str {
        match self {
            Body::Chat { .. } => "chat",
            Body::Problem { .. } => "problem",
            Body::Answer { .. } => "answer",
            Body::Feedback { .. } => "feedback",
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::codec;

    fn sample() -> Vec<Frame> {
        let author = PeerId([7; 16]);
        let id = MsgId { author, seq: 9 };
        vec![
            Frame::Hello(Hello {
                id: author,
                identity: [9; 32],
                incarnation: 77,
                name: "Ada".into(),
                room: "lab".into(),
                tcp_port: 4000,
                props: vec![("role".into(), "teacher".into())],
            }),
            Frame::Message {
                lseq: 300,
                env: Envelope {
                    id,
                    author_name: "Ada".into(),
                    sent_ms: 1,
                    to: Some(PeerId([1; 16])),
                    body: Body::Answer { problem: id, text: "fn main() {\n}\n".into() },
                    files: vec![FileRef { name: "src/main.rs".into(), size: 12, sha256: [3; 32], chunks: [4; 32] }],
                },
            },
            Frame::Ping,
            Frame::Bye("leaving".into()),
            Frame::Ack(7),
            Frame::Resume { done: 3, last: u64::MAX },
            Frame::Offer(vec![id, id]),
            Frame::Want(vec![]),
            Frame::CatchUp(Envelope {
                id,
                author_name: "Ada".into(),
                sent_ms: 2,
                to: None,
                body: Body::Feedback { answer: id, text: "ok".into() },
                files: vec![],
            }),
            Frame::Peers(vec![PeerAd {
                id: author,
                incarnation: 5,
                tcp_port: 5681,
                addrs: vec!["10.0.0.7".parse().unwrap(), "fd00::7".parse().unwrap()],
            }]),
            Frame::Seal(Seal { key: [5; 32], first: 9, count: 3, sig: [6; 64], proof: vec![7; 64] }),
            Frame::FileAsk(FileAsk { key: FileKey { msg: id, file: [1; 32] } }),
            Frame::FileHave(FileHave { file: [1; 32], have: Have::All }),
            Frame::FileHave(FileHave { file: [1; 32], have: Have::Bits(vec![0b101]) }),
            Frame::FileHave(FileHave { file: [1; 32], have: Have::Added(vec![3, 70000]) }),
            Frame::FileWant(FileWant { key: FileKey { msg: id, file: [1; 32] }, part: Part::List(0) }),
            Frame::FilePart(FilePart { file: [1; 32], part: Part::Chunk(2), data: vec![9; 100] }),
            Frame::FileNone(FileNone { file: [1; 32], part: None }),
            Frame::FileNone(FileNone { file: [1; 32], part: Some(Part::Chunk(1)) }),
        ]
    }

    #[test]
    fn frames_round_trip() {
        for f in sample() {
            let bytes = codec::encode(&f).unwrap();
            assert_eq!(codec::decode::<Frame>(&bytes).unwrap(), f);
        }
    }

    #[test]
    fn prebuilt_message_frames_match_the_encoder() {
        for f in sample() {
            match &f {
                Frame::Message { lseq, env } => {
                    let env_bytes = codec::encode(env).unwrap();
                    let whole = codec::encode(&f).unwrap();
                    assert_eq!(codec::message_frame(*lseq, env_bytes.clone()).unwrap().to_bytes(), whole);
                    // The longest head there is.
                    let last = Frame::Message { lseq: u64::MAX, env: env.clone() };
                    let f = codec::message_frame(u64::MAX, env_bytes).unwrap();
                    assert_eq!(
                        (f.to_bytes(), f.len()),
                        (codec::encode(&last).unwrap(), f.head().len() + f.body().len())
                    );
                }
                Frame::CatchUp(env) => {
                    let env_bytes = codec::encode(env).unwrap();
                    assert_eq!(codec::catchup_frame(env_bytes).unwrap().to_bytes(), codec::encode(&f).unwrap());
                }
                _ => {}
            }
        }
    }

    #[test]
    fn truncated_and_padded_frames_are_errors() {
        for f in sample() {
            let bytes = codec::encode(&f).unwrap();
            for cut in 0..bytes.len() {
                assert!(codec::decode::<Frame>(&bytes[..cut]).is_err(), "{f:?} cut at {cut}");
                assert!(codec::decode_received(&bytes.slice(..cut)).is_err(), "{f:?} cut at {cut}");
            }
            let mut long = bytes.to_vec();
            long.push(0);
            assert!(codec::decode::<Frame>(&long).is_err());
            assert!(codec::decode_received(&long.into()).is_err());
        }
    }

    #[test]
    fn received_frames_keep_the_envelope_bytes() {
        use codec::Received;
        for f in sample() {
            let bytes = codec::encode(&f).unwrap();
            match (codec::decode_received(&bytes).unwrap(), f) {
                (Received::Message { lseq, env, raw, .. }, Frame::Message { lseq: l, env: e }) => {
                    assert_eq!((lseq, &env), (l, &e));
                    assert_eq!(raw, codec::encode(&e).unwrap());
                }
                (Received::CatchUp { env, raw, .. }, Frame::CatchUp(e)) => {
                    assert_eq!(env, e);
                    assert_eq!(raw, codec::encode(&e).unwrap());
                }
                (Received::Other(got), f) => assert_eq!(got, f),
                (got, f) => panic!("{f:?} decoded as {got:?}"),
            }
        }
    }

    #[test]
    fn hostile_lengths_do_not_allocate() {
        // Variant 1 (Message) then a string length claiming ~2^60 bytes.
        let evil = [1u8, 0xff, 0, 0, 0, 0, 0, 0, 0x10, 0];
        assert!(codec::decode::<Frame>(&evil).is_err());
        assert!(codec::decode::<Frame>(&[200]).is_err());
    }

    #[test]
    fn preamble_checks() {
        let ours = Preamble::ours().to_bytes();
        assert_eq!(Preamble::parse(&ours), Ok(Preamble::ours()));
        let mut v = ours;
        v[4] = 9;
        assert_eq!(Preamble::parse(&v), Err(PreambleError::Version(9)));
        let mut m = ours;
        m[5] = MODE_PLAIN;
        assert_eq!(Preamble::parse(&m), Err(PreambleError::Mode(MODE_PLAIN)), "plain sessions are refused");
        m[5] = 9;
        assert_eq!(Preamble::parse(&m), Err(PreambleError::Mode(9)));
        m[5] = MODE_NOISE_PSK;
        assert_eq!(Preamble::parse(&m), Ok(Preamble::with_mode(MODE_NOISE_PSK)));
        assert_eq!(Preamble::parse(b"GET / HT"), Err(PreambleError::BadMagic));
    }
}
