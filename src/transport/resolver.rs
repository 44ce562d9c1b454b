//! The cryptography under the Noise handshake and the record layer: a `snow` crypto resolver
//! that takes X25519 and ChaCha20-Poly1305 from AWS-LC (`aws-lc-rs`, rustls's default crypto
//! provider), and BLAKE2s and the random source from snow's default resolver (AWS-LC has no
//! BLAKE2s). The Noise protocol names and every byte on the wire are unchanged: a peer that uses
//! snow's default resolver (pure Rust: curve25519-dalek, RustCrypto's chacha20poly1305) completes
//! the same handshakes and reads the same records (tested below).
//!
//! Why: on the x86-64 of the benchmarks AWS-LC's X25519 (s2n-bignum's assembly, ADX/BMI2) is about
//! 2.2x as fast as curve25519-dalek's Montgomery ladder, its key generation 2.6x, and its
//! ChaCha20-Poly1305 seals a 100-byte record 8x and a full 64 KiB record 2.2x as fast (the
//! bench's `floors` section measures what they cost in each run). A session's handshake costs six X25519 and, per side,
//! one key generation for the ephemeral key; the static key's public half is computed once per process
//! ([`StaticKeys`] keeps AWS-LC's form of it), not on every handshake as snow's default does.

use std::sync::Arc;

use aws_lc_rs::aead::{Aad, CHACHA20_POLY1305, LessSafeKey, Nonce, UnboundKey};
use aws_lc_rs::agreement::{self, PrivateKey, UnparsedPublicKey, X25519};
use snow::params::{CipherChoice, DHChoice, HashChoice};
use snow::resolvers::{CryptoResolver, DefaultResolver};
use snow::types::{Cipher, Dh, Hash, Random};
use zeroize::Zeroizing;

use crate::crypto::StaticKeys;

/// A snow builder for `name` whose primitives are those of [`Resolver`], with our static key
/// (whose AWS-LC form is reused, not recomputed).
pub fn builder<'a>(name: &str, statics: &'a StaticKeys) -> Result<snow::Builder<'a>, snow::Error> {
    let params = name.parse()?;
    snow::Builder::with_resolver(params, Box::new(Resolver { statics: Some(statics.clone()) }))
        .local_private_key(statics.secret())
}

/// Fill `out` from snow's default random source (the operating system's: `getrandom`). AWS-LC's
/// own random generator is never used: its first use in a process spends about 40 ms gathering
/// jitter entropy, and each new thread's first use more.
pub fn random(out: &mut [u8]) {
    DefaultResolver
        .resolve_rng()
        .expect("snow's default resolver has a random source")
        .try_fill_bytes(out)
        .expect("the OS random source works");
}

/// AWS-LC's X25519 and ChaCha20-Poly1305, snow's default BLAKE2s and random source.
#[derive(Default)]
pub struct Resolver {
    /// Our static key: a `set` with its secret takes its precomputed AWS-LC key.
    pub statics: Option<StaticKeys>,
}

impl CryptoResolver for Resolver {
    fn resolve_rng(&self) -> Option<Box<dyn Random>> {
        DefaultResolver.resolve_rng()
    }

    fn resolve_dh(&self, choice: &DHChoice) -> Option<Box<dyn Dh>> {
        match choice {
            DHChoice::Curve25519 => Some(Box::new(Dh25519 { statics: self.statics.clone(), key: None })),
            _ => None,
        }
    }

    fn resolve_hash(&self, choice: &HashChoice) -> Option<Box<dyn Hash>> {
        DefaultResolver.resolve_hash(choice)
    }

    fn resolve_cipher(&self, choice: &CipherChoice) -> Option<Box<dyn Cipher>> {
        match choice {
            CipherChoice::ChaChaPoly => Some(Box::new(ChaChaPoly { key: None })),
            _ => None,
        }
    }
}

/// An X25519 key in AWS-LC's form, with its raw bytes (snow asks for them) and public key.
pub struct X25519Key {
    secret: Zeroizing<[u8; 32]>,
    public: [u8; 32],
    key: PrivateKey,
}

impl X25519Key {
    /// The key of a 32-byte secret (AWS-LC computes its public key: one fixed-base
    /// multiplication).
    pub fn new(secret: &[u8; 32]) -> X25519Key {
        let key = PrivateKey::from_private_key(&X25519, secret).expect("any 32 bytes are an X25519 key");
        let mut public = [0u8; 32];
        public.copy_from_slice(key.compute_public_key().expect("X25519 public key").as_ref());
        X25519Key { secret: Zeroizing::new(*secret), public, key }
    }

    /// The public key.
    pub fn public(&self) -> &[u8; 32] {
        &self.public
    }

    /// The secret key.
    pub fn secret(&self) -> &[u8; 32] {
        &self.secret
    }
}

struct Dh25519 {
    statics: Option<StaticKeys>,
    key: Option<Arc<X25519Key>>,
}

impl Dh for Dh25519 {
    fn name(&self) -> &'static str {
        "25519"
    }

    fn pub_len(&self) -> usize {
        32
    }

    fn priv_len(&self) -> usize {
        32
    }

    fn set(&mut self, privkey: &[u8]) {
        let mut secret = Zeroizing::new([0u8; 32]);
        secret.copy_from_slice(&privkey[..32]);
        self.key = match &self.statics {
            Some(s) if ct_eq(s.secret(), &secret) => Some(s.x25519().clone()),
            _ => Some(Arc::new(X25519Key::new(&secret))),
        };
    }

    fn generate(&mut self, rng: &mut dyn Random) -> Result<(), snow::Error> {
        let mut secret = Zeroizing::new([0u8; 32]);
        rng.try_fill_bytes(secret.as_mut())?;
        self.key = Some(Arc::new(X25519Key::new(&secret)));
        Ok(())
    }

    fn pubkey(&self) -> &[u8] {
        self.key.as_ref().map_or(&[0u8; 32][..], |k| &k.public[..])
    }

    fn privkey(&self) -> &[u8] {
        self.key.as_ref().map_or(&[0u8; 32][..], |k| &k.secret[..])
    }

    fn dh(&self, pubkey: &[u8], out: &mut [u8]) -> Result<(), snow::Error> {
        let key = self.key.as_ref().ok_or(snow::Error::Dh)?;
        // AWS-LC refuses a public key of small order (an all-zero shared secret); snow's default
        // computes the zero secret and goes on. Either way such a handshake cannot authenticate
        // a peer: ours stops at once.
        agreement::agree(&key.key, UnparsedPublicKey::new(&X25519, &pubkey[..32]), snow::Error::Dh, |s| {
            out[..32].copy_from_slice(s);
            Ok(())
        })
    }
}

/// Comparison of two secrets whose time does not depend on where they differ.
fn ct_eq(a: &[u8; 32], b: &[u8; 32]) -> bool {
    a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// ChaCha20-Poly1305 as Noise uses it: 96-bit nonce of 32 zero bits then the 64-bit counter,
/// little-endian.
struct ChaChaPoly {
    key: Option<LessSafeKey>,
}

fn nonce(n: u64) -> Nonce {
    let mut b = [0u8; 12];
    b[4..].copy_from_slice(&n.to_le_bytes());
    Nonce::assume_unique_for_key(b)
}

const TAG: usize = 16;

impl Cipher for ChaChaPoly {
    fn name(&self) -> &'static str {
        "ChaChaPoly"
    }

    fn set(&mut self, key: &[u8; 32]) {
        self.key = Some(LessSafeKey::new(UnboundKey::new(&CHACHA20_POLY1305, key).expect("32-byte key")));
    }

    fn encrypt(&self, nonce_n: u64, authtext: &[u8], plaintext: &[u8], out: &mut [u8]) -> usize {
        let key = self.key.as_ref().expect("snow encrypts only with a key");
        let n = plaintext.len();
        out[..n].copy_from_slice(plaintext);
        let tag = key
            .seal_in_place_separate_tag(nonce(nonce_n), Aad::from(authtext), &mut out[..n])
            .expect("ChaCha20-Poly1305 seals any record length");
        out[n..n + TAG].copy_from_slice(tag.as_ref());
        n + TAG
    }

    fn decrypt(&self, nonce_n: u64, authtext: &[u8], ciphertext: &[u8], out: &mut [u8]) -> Result<usize, snow::Error> {
        let key = self.key.as_ref().ok_or(snow::Error::Decrypt)?;
        let n = ciphertext.len().checked_sub(TAG).ok_or(snow::Error::Decrypt)?;
        let (body, tag) = ciphertext.split_at(n);
        key.open_separate_gather(nonce(nonce_n), Aad::from(authtext), body, tag, &mut out[..n])
            .map_err(|_| snow::Error::Decrypt)?;
        Ok(n)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::crypto::{NOISE_OPEN, NOISE_PSK};

    fn default_builder<'a>(name: &str, k: &'a StaticKeys) -> snow::Builder<'a> {
        snow::Builder::with_resolver(name.parse().unwrap(), Box::new(DefaultResolver))
            .local_private_key(k.secret())
            .unwrap()
    }

    /// A handshake between `i` and `r`, then records both ways (several sizes, stateful and
    /// stateless): the bytes one side sends are those the other reads.
    fn run<'a>(mut i: snow::Builder<'a>, mut r: snow::Builder<'a>, psk: Option<&'a [u8; 32]>) -> ([u8; 32], [u8; 32]) {
        let pre = b"LNPT\x01\x01\0\0";
        i = i.prologue(pre).unwrap();
        r = r.prologue(pre).unwrap();
        if let Some(p) = psk {
            i = i.psk(3, p).unwrap();
            r = r.psk(3, p).unwrap();
        }
        let (mut i, mut r) = (i.build_initiator().unwrap(), r.build_responder().unwrap());
        let mut buf = vec![0u8; 70_000];
        let mut pl = vec![0u8; 70_000];
        for step in 0..3 {
            let (w, rd) = if step % 2 == 0 { (&mut i, &mut r) } else { (&mut r, &mut i) };
            let n = w.write_message(&[], &mut buf).unwrap();
            rd.read_message(&buf[..n], &mut pl).unwrap();
        }
        let ri: [u8; 32] = r.get_remote_static().unwrap().try_into().unwrap();
        let ir: [u8; 32] = i.get_remote_static().unwrap().try_into().unwrap();
        let (i, r) = (i.into_stateless_transport_mode().unwrap(), r.into_stateless_transport_mode().unwrap());
        for (k, len) in [0usize, 1, 100, 1500, 65_519].into_iter().enumerate() {
            let msg: Vec<u8> = (0..len).map(|x| (x * 31 + k) as u8).collect();
            for (w, rd) in [(&i, &r), (&r, &i)] {
                let n = w.write_message(k as u64, &msg, &mut buf).unwrap();
                assert_eq!(n, len + TAG);
                let m = rd.read_message(k as u64, &buf[..n], &mut pl).unwrap();
                assert_eq!(&pl[..m], &msg[..]);
                // Altered: refused.
                buf[n / 2] ^= 1;
                assert!(rd.read_message(k as u64, &buf[..n], &mut pl).is_err());
                // Another nonce: refused.
                buf[n / 2] ^= 1;
                assert!(rd.read_message(k as u64 + 1, &buf[..n], &mut pl).is_err());
            }
        }
        (ri, ir)
    }

    #[test]
    fn interoperates_with_snows_default_resolver() {
        let (a, b) = (StaticKeys::generate(), StaticKeys::generate());
        let psk = [9u8; 32];
        for (name, psk) in [(NOISE_OPEN, None), (NOISE_PSK, Some(&psk))] {
            // Ours as initiator, snow's as responder, and the other way round; and ours on both.
            let (ri, ir) = run(builder(name, &a).unwrap(), default_builder(name, &b), psk);
            assert_eq!((ri, ir), (a.public, b.public), "{name}");
            let (ri, ir) = run(default_builder(name, &a), builder(name, &b).unwrap(), psk);
            assert_eq!((ri, ir), (a.public, b.public), "{name}");
            let (ri, ir) = run(builder(name, &a).unwrap(), builder(name, &b).unwrap(), psk);
            assert_eq!((ri, ir), (a.public, b.public), "{name}");
        }
    }

    #[test]
    fn x25519_agrees_with_snows_default() {
        // Same public key and shared secret as curve25519-dalek (through snow's default resolver).
        let mut rng = DefaultResolver.resolve_rng().unwrap();
        for _ in 0..20 {
            let mut ours = Resolver::default().resolve_dh(&DHChoice::Curve25519).unwrap();
            let mut theirs = DefaultResolver.resolve_dh(&DHChoice::Curve25519).unwrap();
            ours.generate(&mut *rng).unwrap();
            theirs.set(ours.privkey());
            assert_eq!(ours.pubkey(), theirs.pubkey());
            let mut other = DefaultResolver.resolve_dh(&DHChoice::Curve25519).unwrap();
            other.generate(&mut *rng).unwrap();
            let (mut x, mut y) = ([0u8; 32], [0u8; 32]);
            ours.dh(other.pubkey(), &mut x).unwrap();
            theirs.dh(other.pubkey(), &mut y).unwrap();
            assert_eq!(x, y);
        }
        // A small-order public key (here zero) is refused.
        let mut ours = Resolver::default().resolve_dh(&DHChoice::Curve25519).unwrap();
        ours.generate(&mut *rng).unwrap();
        assert!(ours.dh(&[0u8; 32], &mut [0u8; 32]).is_err());
    }
}
