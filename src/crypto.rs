//! Keys: the peer's long-term identity key (it signs the peer's messages, and the Noise key of
//! its sessions derives from it), the room keys derived from a passphrase, and the Noise protocol
//! names. No cryptography is made here: Ed25519 signatures are AWS-LC's (`aws-lc-rs`: about 8 µs
//! to sign, 25 µs to check here, a third less than `ed25519-dalek`), the key conversions to
//! X25519 `ed25519-dalek`'s (`curve25519-dalek`), the Noise protocol runs in
//! `snow`, with X25519 and ChaChaPoly from AWS-LC (`aws-lc-rs`) and BLAKE2s from snow's own (see
//! [`crate::transport::resolver`]), the passphrase KDF is Argon2id (`argon2`), the key expansion
//! HKDF-SHA256 (`hkdf`), and the beacon tag HMAC-SHA256 (`hmac`).
//!
//! One key, two uses: a peer's identity is an Ed25519 key pair; the X25519 key of its Noise
//! handshakes is the same secret scalar, and its public key the Montgomery form of the Ed25519
//! public key (as libsodium's `crypto_sign_ed25519_sk_to_curve25519` and `_pk_to_curve25519`
//! do). So a hello that names its Ed25519 key proves, through the handshake, that the sender
//! holds it; and the peer id, a hash of that key, is proved by every message the key signs,
//! whoever hands it over. docs/security.md explains what each key protects.

use std::fmt;
use std::sync::Arc;

use ed25519_dalek::{SigningKey, VerifyingKey};
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

/// An Ed25519 public key: a peer's identity.
pub type PublicKey = [u8; 32];
/// An Ed25519 signature.
pub type Signature = [u8; 64];

/// The peer id that stands for an identity key: the first 16 bytes of its SHA-256.
pub fn peer_id_of(identity: &[u8]) -> PeerId {
    let d = Sha256::digest(identity);
    let mut id = [0u8; 16];
    id.copy_from_slice(&d[..16]);
    PeerId(id)
}

/// The X25519 public key of the Noise handshakes of the identity `identity` (its Montgomery
/// form); `None` for 32 bytes that are no Ed25519 public key.
pub fn noise_key_of(identity: &PublicKey) -> Option<[u8; 32]> {
    VerifyingKey::from_bytes(identity).ok().map(|k| k.to_montgomery().to_bytes())
}

/// Does `sig` sign `msg` with the identity key `identity` (RFC 8032's Ed25519, by AWS-LC)?
pub fn verify(identity: &PublicKey, msg: &[u8], sig: &Signature) -> bool {
    use aws_lc_rs::signature::{ED25519, UnparsedPublicKey};
    UnparsedPublicKey::new(&ED25519, identity).verify(msg, sig).is_ok()
}

/// A peer's long-term keys: its Ed25519 identity key pair, and the X25519 key pair of its Noise
/// handshakes derived from it. The secrets are wiped from memory when dropped.
#[derive(Clone)]
pub struct StaticKeys {
    signing: Arc<SigningKey>,
    /// The same key in AWS-LC's form, which signs.
    signer: Arc<aws_lc_rs::signature::Ed25519KeyPair>,
    /// The Noise key in the form the resolver uses (computed once, reused by every handshake).
    key: Arc<X25519Key>,
    /// The Ed25519 public key: the identity (the peer id is its hash).
    pub identity: PublicKey,
    /// The X25519 public key of the Noise handshakes (the Montgomery form of `identity`).
    pub public: [u8; 32],
}

impl fmt::Debug for StaticKeys {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "StaticKeys {{ identity: {}, secret: <hidden> }}", hex::encode(self.identity))
    }
}

impl StaticKeys {
    /// A fresh random identity (32 bytes from the operating system's random source, through the
    /// same source as the Noise ephemeral keys: not AWS-LC's, whose first use in a process costs
    /// about 40 ms of entropy gathering, and each new thread's some more).
    pub fn generate() -> StaticKeys {
        let mut seed = Zeroizing::new([0u8; 32]);
        crate::transport::resolver::random(seed.as_mut());
        StaticKeys::from_seed(*seed)
    }

    /// The keys of a 32-byte Ed25519 secret key (its seed). The X25519 secret is the Ed25519
    /// secret scalar (`to_scalar_bytes`); AWS-LC computes its public key, which is the
    /// Montgomery form of the Ed25519 public key.
    pub fn from_seed(seed: [u8; 32]) -> StaticKeys {
        let seed = Zeroizing::new(seed);
        let signing = SigningKey::from_bytes(&seed);
        let scalar = Zeroizing::new(signing.to_scalar_bytes());
        let key = X25519Key::new(&scalar);
        let identity = signing.verifying_key().to_bytes();
        let public = *key.public();
        debug_assert_eq!(Some(public), noise_key_of(&identity));
        let signer = aws_lc_rs::signature::Ed25519KeyPair::from_seed_unchecked(seed.as_ref())
            .expect("any 32 bytes are an Ed25519 seed");
        StaticKeys { signing: Arc::new(signing), signer: Arc::new(signer), key: Arc::new(key), identity, public }
    }

    /// The Ed25519 secret key (its seed): what the key file holds.
    pub fn seed(&self) -> &[u8; 32] {
        self.signing.as_bytes()
    }

    /// The X25519 secret key of the Noise handshakes.
    pub fn secret(&self) -> &[u8; 32] {
        self.key.secret()
    }

    /// The key in the Noise resolver's form.
    pub(crate) fn x25519(&self) -> &Arc<X25519Key> {
        &self.key
    }

    /// The peer id of this identity.
    pub fn peer_id(&self) -> PeerId {
        peer_id_of(&self.identity)
    }

    /// Sign `msg` with the identity key.
    pub fn sign(&self, msg: &[u8]) -> Signature {
        let mut out = [0u8; 64];
        out.copy_from_slice(self.signer.sign(msg).as_ref());
        out
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
        let again = StaticKeys::from_seed(*k.seed());
        assert_eq!(again.public, k.public);
        assert_eq!(again.peer_id(), k.peer_id());
        assert_ne!(StaticKeys::generate().public, k.public);
        assert!(!format!("{k:?}").contains(&hex::encode(k.seed())));
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

#[cfg(test)]
mod identity_keys {
    use super::*;

    #[test]
    fn the_noise_key_is_the_identity_key_in_montgomery_form() {
        for _ in 0..20 {
            let k = StaticKeys::generate();
            assert_eq!(noise_key_of(&k.identity), Some(k.public));
            assert_eq!(StaticKeys::from_seed(*k.seed()).public, k.public, "the same seed, the same keys");
            assert_eq!(k.peer_id(), peer_id_of(&k.identity));
        }
        // About half of all 32-byte strings are no point of the curve.
        assert!((0..40u8).any(|b| noise_key_of(&[b; 32]).is_none()), "bytes that are no key are refused");
    }

    #[test]
    fn signatures_hold_for_their_key_and_message_only() {
        let (a, b) = (StaticKeys::generate(), StaticKeys::generate());
        let sig = a.sign(b"lesson one");
        assert!(verify(&a.identity, b"lesson one", &sig));
        assert!(!verify(&b.identity, b"lesson one", &sig));
        assert!(!verify(&a.identity, b"lesson two", &sig));
        let mut bad = sig;
        bad[10] ^= 1;
        assert!(!verify(&a.identity, b"lesson one", &bad));
        assert!(!verify(&[0xff; 32], b"lesson one", &sig), "bytes that are no key");
        // AWS-LC's signature is RFC 8032's, as ed25519-dalek makes it (deterministic).
        use ed25519_dalek::Signer;
        assert_eq!(sig, a.signing.sign(b"lesson one").to_bytes());
    }
}
