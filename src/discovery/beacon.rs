//! The beacon: the small UDP datagram a peer broadcasts to say "I am here, dial me on this port".
//!
//! Fixed layout, big-endian, 40 bytes (the limit is 64, leaving room for an authentication tag):
//!
//! | offset | size | field |
//! |---|---|---|
//! | 0 | 4 | magic `LNPB` |
//! | 4 | 1 | protocol version |
//! | 5 | 1 | flags: bit 0 = farewell (the peer is leaving); other bits reserved, sent as 0 |
//! | 6 | 2 | TCP port of the sender |
//! | 8 | 16 | peer id |
//! | 24 | 8 | incarnation (random per start: tells a restart) |
//! | 32 | 8 | room tag: first 8 bytes of SHA-256(`"lanpeer room\0"` + room name) |
//!
//! Anything else (wrong magic, version or length) is not a beacon of ours and is dropped.

use sha2::{Digest, Sha256};

use crate::id::PeerId;
use crate::protocol::PROTOCOL_VERSION;

/// First four bytes of every beacon.
pub const BEACON_MAGIC: [u8; 4] = *b"LNPB";
/// Length of a version-1 beacon.
pub const BEACON_LEN: usize = 40;
/// Flag bit: the sender is leaving.
pub const FLAG_FAREWELL: u8 = 0x01;

/// The 8-byte tag that stands for a room name in beacons.
pub fn room_tag(room: &str) -> [u8; 8] {
    let mut h = Sha256::new();
    h.update(b"lanpeer room\0");
    h.update(room.as_bytes());
    let d = h.finalize();
    let mut tag = [0u8; 8];
    tag.copy_from_slice(&d[..8]);
    tag
}

/// A decoded beacon.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Beacon {
    /// Sender's id.
    pub id: PeerId,
    /// Sender's incarnation.
    pub incarnation: u64,
    /// Sender's TCP port.
    pub tcp_port: u16,
    /// Sender's room tag.
    pub room_tag: [u8; 8],
    /// Set on the last beacons of a leaving peer.
    pub farewell: bool,
}

/// Why a datagram is not a usable beacon.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum BeaconError {
    /// Wrong size.
    #[error("datagram of {0} bytes is not a beacon")]
    Length(usize),
    /// Wrong magic.
    #[error("not a lanpeer beacon")]
    Magic,
    /// Another protocol version.
    #[error("beacon of protocol version {0}")]
    Version(u8),
    /// Port 0 cannot be dialed.
    #[error("beacon with TCP port 0")]
    Port,
}

impl Beacon {
    /// The wire bytes.
    pub fn encode(&self) -> [u8; BEACON_LEN] {
        let mut b = [0u8; BEACON_LEN];
        b[0..4].copy_from_slice(&BEACON_MAGIC);
        b[4] = PROTOCOL_VERSION;
        b[5] = if self.farewell { FLAG_FAREWELL } else { 0 };
        b[6..8].copy_from_slice(&self.tcp_port.to_be_bytes());
        b[8..24].copy_from_slice(&self.id.0);
        b[24..32].copy_from_slice(&self.incarnation.to_be_bytes());
        b[32..40].copy_from_slice(&self.room_tag);
        b
    }

    /// Parse a datagram. Never panics, whatever the input.
    pub fn decode(d: &[u8]) -> Result<Beacon, BeaconError> {
        if d.len() < 5 || d[0..4] != BEACON_MAGIC {
            return Err(if d.len() == BEACON_LEN { BeaconError::Magic } else { BeaconError::Length(d.len()) });
        }
        if d[4] != PROTOCOL_VERSION {
            return Err(BeaconError::Version(d[4]));
        }
        if d.len() != BEACON_LEN {
            return Err(BeaconError::Length(d.len()));
        }
        let tcp_port = u16::from_be_bytes([d[6], d[7]]);
        if tcp_port == 0 {
            return Err(BeaconError::Port);
        }
        let mut id = [0u8; 16];
        id.copy_from_slice(&d[8..24]);
        let mut inc = [0u8; 8];
        inc.copy_from_slice(&d[24..32]);
        let mut room_tag = [0u8; 8];
        room_tag.copy_from_slice(&d[32..40]);
        Ok(Beacon {
            id: PeerId(id),
            incarnation: u64::from_be_bytes(inc),
            tcp_port,
            room_tag,
            farewell: d[5] & FLAG_FAREWELL != 0,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample(farewell: bool) -> Beacon {
        Beacon {
            id: PeerId([3; 16]),
            incarnation: 0x0102_0304_0506_0708,
            tcp_port: 4242,
            room_tag: room_tag("lab"),
            farewell,
        }
    }

    #[test]
    fn round_trip_and_layout() {
        for fw in [false, true] {
            let b = sample(fw);
            let bytes = b.encode();
            assert!(bytes.len() <= 64);
            assert_eq!(&bytes[0..4], b"LNPB");
            assert_eq!(bytes[4], PROTOCOL_VERSION);
            assert_eq!(bytes[5], fw as u8);
            assert_eq!(&bytes[6..8], &4242u16.to_be_bytes());
            assert_eq!(&bytes[24..32], &[1, 2, 3, 4, 5, 6, 7, 8]);
            assert_eq!(Beacon::decode(&bytes), Ok(b));
        }
    }

    #[test]
    fn rejects_bad_input() {
        let good = sample(false).encode();
        for n in 0..BEACON_LEN {
            assert!(Beacon::decode(&good[..n]).is_err());
        }
        let mut v = good;
        v[4] = PROTOCOL_VERSION + 1;
        assert_eq!(Beacon::decode(&v), Err(BeaconError::Version(PROTOCOL_VERSION + 1)));
        let mut m = good;
        m[0] = b'X';
        assert_eq!(Beacon::decode(&m), Err(BeaconError::Magic));
        let mut p = good;
        p[6] = 0;
        p[7] = 0;
        assert_eq!(Beacon::decode(&p), Err(BeaconError::Port));
        let mut long = good.to_vec();
        long.push(0);
        assert!(Beacon::decode(&long).is_err());
    }

    #[test]
    fn random_datagrams_never_panic() {
        for i in 0..20_000u32 {
            let len = (i % 80) as usize;
            let mut d: Vec<u8> = (0..len).map(|_| rand::random()).collect();
            if i % 3 == 0 && len >= 5 {
                d[0..4].copy_from_slice(b"LNPB");
                d[4] = PROTOCOL_VERSION;
            }
            let _ = Beacon::decode(&d);
        }
    }

    #[test]
    fn rooms_have_distinct_tags() {
        assert_ne!(room_tag("lab"), room_tag("lab2"));
        assert_eq!(room_tag("lab"), room_tag("lab"));
    }
}
