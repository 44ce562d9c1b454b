//! Identifiers: who a peer is ([`PeerId`]) and which message is which ([`MsgId`]).
//!
//! A peer id is 16 random bytes kept in the data dir, so it survives restarts (the security work
//! will derive it from a public key instead, with the same size and text form). A message id is
//! the author's id plus the author's own sequence number: unique in the room without any
//! coordination, and the basis that acknowledgements and catch-up build on.
//!
//! Text forms: a peer id is 32 lowercase hex digits; a message id is `<peer id>-<seq>`. People may
//! type any unique prefix of a peer id, and `<prefix>-<seq>` for a message id: the short forms
//! ([`PeerId::short`], [`MsgId::short`]) use the first 8 hex digits.

/// The hasher of the maps every message touches (by peer, by message id): foldhash, seeded per
/// process. SipHash, the standard library's default, costs ≈ 5 % of a stream's CPU; the keys here
/// are peer ids and counters, and the seed keeps crafted collisions out of reach of a peer that
/// does not know it.
pub type FastHash = foldhash::fast::RandomState;
/// A `HashMap` with [`FastHash`].
pub type FastMap<K, V> = std::collections::HashMap<K, V, FastHash>;
/// A `HashSet` with [`FastHash`].
pub type FastSet<K> = std::collections::HashSet<K, FastHash>;

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

/// Number of hex digits shown in the short form of an id.
pub const SHORT_LEN: usize = 8;

/// The identity of one peer: 16 bytes, shown as 32 hex digits. On the wire a byte string
/// (its length, 16, then the bytes): decoded in one copy, where an array is read byte by byte.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct PeerId(#[serde(with = "serde_bytes")] pub [u8; 16]);

impl PeerId {
    /// A fresh random id.
    pub fn random() -> Self {
        PeerId(rand::random())
    }

    /// The first 8 hex digits: enough to tell the peers of one classroom apart.
    pub fn short(&self) -> String {
        let mut s = self.to_string();
        s.truncate(SHORT_LEN);
        s
    }

    /// Does the text form of this id start with `prefix` (case-insensitive)?
    pub fn matches_prefix(&self, prefix: &str) -> bool {
        !prefix.is_empty() && self.to_string().starts_with(&prefix.to_ascii_lowercase())
    }
}

impl fmt::Display for PeerId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for b in self.0 {
            write!(f, "{b:02x}")?;
        }
        Ok(())
    }
}

impl fmt::Debug for PeerId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "PeerId({})", self.short())
    }
}

/// A text that is not a valid id.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("`{0}` is not a valid id")]
pub struct ParseIdError(pub String);

impl FromStr for PeerId {
    type Err = ParseIdError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let mut out = [0u8; 16];
        hex::decode_to_slice(s, &mut out).map_err(|_| ParseIdError(s.to_string()))?;
        Ok(PeerId(out))
    }
}

/// The id of one message: its author and the author's sequence number.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct MsgId {
    /// Who wrote the message.
    pub author: PeerId,
    /// The author's own counter: strictly increasing over the author's lifetime, restarts included.
    pub seq: u64,
}

impl MsgId {
    /// `<first 8 hex of the author>-<seq>`: what the prompt shows and people type.
    pub fn short(&self) -> String {
        format!("{}-{}", self.author.short(), self.seq)
    }
}

impl fmt::Display for MsgId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}-{}", self.author, self.seq)
    }
}

impl fmt::Debug for MsgId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "MsgId({})", self.short())
    }
}

impl FromStr for MsgId {
    type Err = ParseIdError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let (a, q) = s.rsplit_once('-').ok_or_else(|| ParseIdError(s.to_string()))?;
        Ok(MsgId { author: a.parse()?, seq: q.parse().map_err(|_| ParseIdError(s.to_string()))? })
    }
}

/// A message id as a person typed it: a prefix of the author's id and the sequence number.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MsgIdPattern {
    /// Lowercase hex prefix of the author id (1 to 32 digits).
    pub author_prefix: String,
    /// The exact sequence number.
    pub seq: u64,
}

impl MsgIdPattern {
    /// Does `id` fit this pattern?
    pub fn matches(&self, id: &MsgId) -> bool {
        id.seq == self.seq && id.author.matches_prefix(&self.author_prefix)
    }
}

impl FromStr for MsgIdPattern {
    type Err = ParseIdError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let bad = || ParseIdError(s.to_string());
        let (a, q) = s.trim().rsplit_once('-').ok_or_else(bad)?;
        if a.is_empty() || a.len() > 32 || !a.bytes().all(|b| b.is_ascii_hexdigit()) {
            return Err(bad());
        }
        Ok(MsgIdPattern { author_prefix: a.to_ascii_lowercase(), seq: q.parse().map_err(|_| bad())? })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn peer_id_text_round_trip() {
        let id = PeerId::random();
        let text = id.to_string();
        assert_eq!(text.len(), 32);
        assert_eq!(text.parse::<PeerId>().unwrap(), id);
        assert!(id.matches_prefix(&id.short()));
        assert!(id.matches_prefix(&id.short().to_uppercase()));
        assert!(!id.matches_prefix(""));
        assert!("xyz".parse::<PeerId>().is_err());
    }

    #[test]
    fn msg_id_text_round_trip_and_patterns() {
        let id = MsgId { author: PeerId([0xab; 16]), seq: 42 };
        assert_eq!(id.to_string().parse::<MsgId>().unwrap(), id);
        assert_eq!(id.short(), "abababab-42");
        let p: MsgIdPattern = "ABAB-42".parse().unwrap();
        assert!(p.matches(&id));
        let p: MsgIdPattern = id.to_string().parse().unwrap();
        assert!(p.matches(&id));
        assert!(!"abab-41".parse::<MsgIdPattern>().unwrap().matches(&id));
        assert!("zz-1".parse::<MsgIdPattern>().is_err());
        assert!("abab".parse::<MsgIdPattern>().is_err());
        assert!("-3".parse::<MsgIdPattern>().is_err());
    }
}
