//! Keys: the peer's long-term static key (its identity), the room keys derived from a
//! passphrase, and the Noise protocol names. No cryptography is made here: the Noise protocol
//! runs in `snow`, with X25519 and ChaChaPoly from AWS-LC (`aws-lc-rs`) and BLAKE2s from snow's
//! own (see [`crate::transport::resolver`]), the passphrase KDF is Argon2id (`argon2`),
//! the key expansion HKDF-SHA256 (`hkdf`), and the beacon tag HMAC-SHA256 (`hmac`).
//!
//! docs/security.md explains what each key protects.

use std::fmt;
use std::sync::Arc;

use hkdf::Hkdf;
use sha2::{Digest, Sha256};
use zeroize::Zeroizing;

use crate::id::PeerId;
use crate::transport::resolver::X25519Key;

/// Noise protocol of open rooms (no passphrase).
pub const NOISE_OPEN: &str = "Noise_XX_25519_ChaChaPoly_BLAKE2s";
/// Noise protocol of passphrase rooms: the room key is mixed in as a PSK after the third message.
pub const NOISE_PSK: &str = "Noise_XXpsk3_25519_ChaChaPoly_BLAKE2s";

/// Argon2id memory cost in KiB (19 MiB, OWASP's minimum recommendation for Argon2id).
pub const KDF_MEMORY_KIB: u32 = 19 * 1024;
/// Argon2id passes.
pub const KDF_PASSES: u32 = 2;

/// The peer id that stands for a static public key: the first 16 bytes of its SHA-256.
pub fn peer_id_of(public: &[u8]) -> PeerId {
    let d = Sha256::digest(public);
    let mut id = [0u8; 16];
    id.copy_from_slice(&d[..16]);
    PeerId(id)
}

/// A long-term X25519 keypair. The secret is wiped from memory when dropped.
#[derive(Clone)]
pub struct StaticKeys {
    /// The key in the form the Noise resolver uses (computed once, reused by every handshake).
    key: Arc<X25519Key>,
    /// The public key (32 bytes).
    pub public: [u8; 32],
}

impl fmt::Debug for StaticKeys {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "StaticKeys {{ public: {}, secret: <hidden> }}", hex::encode(self.public))
    }
}

impl StaticKeys {
    /// A fresh random keypair (32 bytes from the operating system's random source, through the
    /// same source as the Noise ephemeral keys: not AWS-LC's, whose first use in a process costs
    /// about 40 ms of entropy gathering, and each new thread's some more).
    pub fn generate() -> StaticKeys {
        let mut secret = Zeroizing::new([0u8; 32]);
        crate::transport::resolver::random(secret.as_mut());
        StaticKeys::from_secret(*secret)
    }

    /// The keypair of a 32-byte secret key (the public key is computed from it, by the same
    /// X25519 as the Noise handshakes: [`crate::transport::resolver`]).
    pub fn from_secret(secret: [u8; 32]) -> StaticKeys {
        let secret = Zeroizing::new(secret);
        let key = X25519Key::new(&secret);
        let public = *key.public();
        StaticKeys { key: Arc::new(key), public }
    }

    /// The secret key.
    pub fn secret(&self) -> &[u8; 32] {
        self.key.secret()
    }

    /// The key in the Noise resolver's form.
    pub(crate) fn x25519(&self) -> &Arc<X25519Key> {
        &self.key
    }

    /// The peer id of this key.
    pub fn peer_id(&self) -> PeerId {
        peer_id_of(&self.public)
    }
}

/// A room passphrase. Never printed (`Debug` hides it) and wiped from memory when dropped.
#[derive(Clone, PartialEq, Eq)]
pub struct Passphrase(Zeroizing<String>);

impl Passphrase {
    /// Wrap a passphrase. Surrounding whitespace (a file's trailing newline) is removed.
    pub fn new(text: &str) -> Passphrase {
        Passphrase(Zeroizing::new(text.trim_matches(|c: char| c == '\n' || c == '\r').to_string()))
    }

    /// The passphrase text.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Passphrase {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Passphrase(<hidden>)")
    }
}

/// The keys of a passphrase room, derived once at start.
#[derive(Clone)]
pub struct RoomKeys {
    /// The Noise pre-shared key (mixed into every session handshake).
    pub psk: Zeroizing<[u8; 32]>,
    /// The key of the beacon tags (HMAC-SHA256).
    pub beacon: Zeroizing<[u8; 32]>,
}

impl fmt::Debug for RoomKeys {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("RoomKeys(<hidden>)")
    }
}

impl RoomKeys {
    /// Derive the keys of `room` with `passphrase`:
    /// `master = Argon2id(passphrase, salt = SHA-256("lanpeer room salt\0" || room), 19 MiB, 2 passes)`,
    /// then `HKDF-SHA256(salt = room, ikm = master)` expanded with the labels
    /// `"lanpeer v1 noise psk"` and `"lanpeer v1 beacon tag"`. Slow on purpose (tens of
    /// milliseconds): it makes guessing a passphrase from a captured beacon expensive.
    pub fn derive(room: &str, passphrase: &Passphrase) -> RoomKeys {
        let salt = Sha256::new().chain_update(b"lanpeer room salt\0").chain_update(room.as_bytes()).finalize();
        let params = argon2::Params::new(KDF_MEMORY_KIB, KDF_PASSES, 1, Some(32)).expect("valid argon2 params");
        let argon = argon2::Argon2::new(argon2::Algorithm::Argon2id, argon2::Version::V0x13, params);
        let mut master = Zeroizing::new([0u8; 32]);
        argon
            .hash_password_into(passphrase.expose().as_bytes(), &salt, master.as_mut())
            .expect("argon2 with valid sizes");
        let hk = Hkdf::<Sha256>::new(Some(room.as_bytes()), master.as_ref());
        let mut psk = Zeroizing::new([0u8; 32]);
        let mut beacon = Zeroizing::new([0u8; 32]);
        hk.expand(b"lanpeer v1 noise psk", psk.as_mut()).expect("32 bytes is a valid HKDF length");
        hk.expand(b"lanpeer v1 beacon tag", beacon.as_mut()).expect("32 bytes is a valid HKDF length");
        RoomKeys { psk, beacon }
    }
}

/// What a connection needs to run its Noise handshake.
#[derive(Clone, Debug)]
pub struct SessionKeys {
    /// Our static keypair.
    pub statics: StaticKeys,
    /// The room's PSK, in a passphrase room.
    pub psk: Option<Zeroizing<[u8; 32]>>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn public_key_is_recomputed_from_the_secret() {
        let k = StaticKeys::generate();
        let again = StaticKeys::from_secret(*k.secret());
        assert_eq!(again.public, k.public);
        assert_eq!(again.peer_id(), k.peer_id());
        assert_ne!(StaticKeys::generate().public, k.public);
        assert!(!format!("{k:?}").contains(&hex::encode(k.secret())));
    }

    #[test]
    fn room_keys_depend_on_room_and_passphrase() {
        let a = RoomKeys::derive("lab", &Passphrase::new("open sesame"));
        let b = RoomKeys::derive("lab", &Passphrase::new("open sesame\n"));
        assert_eq!(*a.psk, *b.psk, "a trailing newline (from a file) is not part of the passphrase");
        assert_ne!(*a.psk, *a.beacon, "separate keys for separate uses");
        let c = RoomKeys::derive("lab", &Passphrase::new("open sesamE"));
        let d = RoomKeys::derive("lab2", &Passphrase::new("open sesame"));
        assert_ne!(*a.psk, *c.psk);
        assert_ne!(*a.psk, *d.psk);
        assert_ne!(*a.beacon, *c.beacon);
        assert_eq!(format!("{:?}", Passphrase::new("x")), "Passphrase(<hidden>)");
    }
}
