//! The beacon: the small UDP datagram a peer broadcasts to say "I am here, dial me on this port".
//!
//! Fixed layout, big-endian, 40 bytes in an open room, 56 in a passphrase room (limit 64):
//!
//! | offset | size | field |
//! |---|---|---|
//! | 0 | 4 | magic `LNPB` |
//! | 4 | 1 | protocol version |
//! | 5 | 1 | flags: bit 0 = farewell (the peer is leaving); bit 1 = authenticated (a tag follows); other bits reserved, sent as 0 |
//! | 6 | 2 | TCP port of the sender |
//! | 8 | 16 | peer id |
//! | 24 | 8 | incarnation (random per start: tells a restart) |
//! | 32 | 8 | room tag: first 8 bytes of SHA-256(`"lanpeer room\0"` + room name) |
//! | 40 | 16 | only with flag bit 1: HMAC-SHA256(beacon key, bytes 0..40), first 16 bytes |
//!
//! The beacon key is derived from the room's passphrase and name ([`crate::crypto::RoomKeys`]).
//! The room tag does not depend on the passphrase, on purpose: a peer can then tell "same room,
//! other passphrase" from "another room", and say so to its user. A tag-less beacon in a
//! passphrase room, or a bad tag, is dropped before the sender is ever dialed.
//!
//! Anything else (wrong magic, version or length) is not a beacon of ours and is dropped.

use hmac::{Hmac, KeyInit, Mac};
use sha2::{Digest, Sha256};

use crate::id::PeerId;
use crate::protocol::PROTOCOL_VERSION;

/// First four bytes of every beacon.
pub const BEACON_MAGIC: [u8; 4] = *b"LNPB";
/// Length of a version-1 beacon without a tag (open rooms).
pub const BEACON_LEN: usize = 40;
/// Length of the tag of an authenticated beacon.
pub const BEACON_TAG_LEN: usize = 16;
/// Length of an authenticated beacon (passphrase rooms).
pub const AUTH_BEACON_LEN: usize = BEACON_LEN + BEACON_TAG_LEN;
/// Flag bit: the sender is leaving.
pub const FLAG_FAREWELL: u8 = 0x01;
/// Flag bit: a tag follows the 40 bytes.
pub const FLAG_AUTH: u8 = 0x02;

fn mac(key: &[u8; 32], body: &[u8]) -> Hmac<Sha256> {
    let mut m = <Hmac<Sha256> as KeyInit>::new_from_slice(key).expect("HMAC takes any key length");
    m.update(body);
    m
}

/// Is the datagram `d` an authenticated beacon whose tag is right for `key`? Constant time.
pub fn tag_ok(d: &[u8], key: &[u8; 32]) -> bool {
    d.len() == AUTH_BEACON_LEN
        && d[5] & FLAG_AUTH != 0
        && mac(key, &d[..BEACON_LEN]).verify_truncated_left(&d[BEACON_LEN..]).is_ok()
}

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

/// A decoded beacon and whether it carried a tag (not yet checked: see [`tag_ok`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Parsed {
    /// The beacon.
    pub beacon: Beacon,
    /// True for an authenticated beacon (56 bytes, flag bit 1).
    pub tagged: bool,
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

    /// The wire bytes, with a tag when `key` is given (a passphrase room).
    pub fn encode_for(&self, key: Option<&[u8; 32]>) -> Vec<u8> {
        let mut b = self.encode().to_vec();
        if let Some(key) = key {
            b[5] |= FLAG_AUTH;
            let tag = mac(key, &b).finalize().into_bytes();
            b.extend_from_slice(&tag[..BEACON_TAG_LEN]);
        }
        b
    }

    /// Parse a datagram (tagged or not; the tag is not checked). Never panics, whatever the input.
    pub fn decode(d: &[u8]) -> Result<Beacon, BeaconError> {
        Self::parse(d).map(|p| p.beacon)
    }

    /// Parse a datagram, telling whether it is tagged. Never panics, whatever the input.
    pub fn parse(d: &[u8]) -> Result<Parsed, BeaconError> {
        let good_len = |d: &[u8]| d.len() == BEACON_LEN || d.len() == AUTH_BEACON_LEN;
        if d.len() < 5 || d[0..4] != BEACON_MAGIC {
            return Err(if good_len(d) { BeaconError::Magic } else { BeaconError::Length(d.len()) });
        }
        if d[4] != PROTOCOL_VERSION {
            return Err(BeaconError::Version(d[4]));
        }
        let tagged = d.len() > 5 && d[5] & FLAG_AUTH != 0;
        if d.len() != if tagged { AUTH_BEACON_LEN } else { BEACON_LEN } {
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
        let beacon = Beacon {
            id: PeerId(id),
            incarnation: u64::from_be_bytes(inc),
            tcp_port,
            room_tag,
            farewell: d[5] & FLAG_FAREWELL != 0,
        };
        Ok(Parsed { beacon, tagged })
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

    #[test]
    fn tagged_beacons() {
        let key = [7u8; 32];
        for fw in [false, true] {
            let b = sample(fw);
            let bytes = b.encode_for(Some(&key));
            assert_eq!(bytes.len(), AUTH_BEACON_LEN);
            assert!(bytes.len() <= 64);
            assert_eq!(bytes[5], FLAG_AUTH | fw as u8);
            assert_eq!(Beacon::parse(&bytes), Ok(Parsed { beacon: b, tagged: true }));
            assert!(tag_ok(&bytes, &key));
            assert!(!tag_ok(&bytes, &[8u8; 32]), "another passphrase's key");
            for k in 0..bytes.len() {
                let mut bad = bytes.clone();
                bad[k] ^= 1;
                assert!(!tag_ok(&bad, &key), "byte {k} altered and still accepted");
            }
            let open = b.encode_for(None);
            assert_eq!(open, b.encode().to_vec());
            assert_eq!(Beacon::parse(&open), Ok(Parsed { beacon: b, tagged: false }));
            assert!(!tag_ok(&open, &key));
            // The flag and the length must agree.
            assert!(Beacon::parse(&bytes[..BEACON_LEN]).is_err());
            let mut no_flag = bytes.clone();
            no_flag[5] &= !FLAG_AUTH;
            assert!(Beacon::parse(&no_flag).is_err());
        }
    }
}

#[cfg(test)]
mod fuzz {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        #![proptest_config(ProptestConfig { cases: 2000, max_shrink_iters: 200, ..ProptestConfig::default() })]

        #[test]
        fn parse_never_panics(d in proptest::collection::vec(any::<u8>(), 0..100)) {
            let _ = Beacon::parse(&d);
            let _ = tag_ok(&d, &[1u8; 32]);
        }

        #[test]
        fn near_beacons_never_panic(
            mut d in proptest::collection::vec(any::<u8>(), 38..60),
            flags in any::<u8>(),
            key in any::<[u8; 32]>(),
        ) {
            d[..4].copy_from_slice(&BEACON_MAGIC);
            d[4] = PROTOCOL_VERSION;
            d[5] = flags;
            if let Ok(p) = Beacon::parse(&d) {
                // Whatever parses re-encodes to the same bytes (reserved flag bits aside).
                let again = p.beacon.encode();
                prop_assert_eq!(&again[6..40], &d[6..40]);
                prop_assert_eq!(p.tagged, d.len() == AUTH_BEACON_LEN);
            }
            prop_assert!(!tag_ok(&d, &key) || d.len() == AUTH_BEACON_LEN);
        }

        #[test]
        fn tags_round_trip(id in any::<[u8; 16]>(), inc in any::<u64>(), port in 1u16.., key in any::<[u8; 32]>()) {
            let b = Beacon { id: PeerId(id), incarnation: inc, tcp_port: port, room_tag: room_tag("r"), farewell: false };
            let bytes = b.encode_for(Some(&key));
            prop_assert!(tag_ok(&bytes, &key));
            prop_assert_eq!(Beacon::decode(&bytes), Ok(b));
        }
    }
}
