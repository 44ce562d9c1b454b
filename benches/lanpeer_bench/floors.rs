//! What the cryptography alone costs on this machine, measured in the run: the floor under the
//! figures that every encrypted session pays, whatever the rest of the code does.
//!
//! Why: three targets (stream ≥ 0.5 raw TCP, convergence of 200 < 2 s, a late joiner ≥ 10x
//! Zyre at 10–100) are missed, and the question is whether anything of ours is what misses
//! them. These figures answer it in the same run as the others: a Noise XX handshake and the
//! sealing and opening of a chat's bytes, done in memory (no socket, no task, no copy) with the
//! very primitives and resolver the sessions use ([`lanpeer::transport::resolver`]), on one
//! core. Each is the best of a few batches: a floor is what the machine can do, not what it did
//! while busy.

use std::time::{Duration, Instant};

use lanpeer::crypto::{NOISE_OPEN, StaticKeys};
use lanpeer::transport::resolver;
use snow::StatelessTransportState;

/// Batches per measurement; the best is kept.
const BATCHES: usize = 5;

/// One whole Noise XX handshake, both ends, as a session does it: the initiator's and the
/// responder's states built with our static keys, the three messages (message 1 carrying a
/// 16-byte id, as a dialer's does), and both switched to transport mode.
fn handshake(a: &StaticKeys, b: &StaticKeys) -> (StatelessTransportState, StatelessTransportState) {
    let mut i = resolver::builder(NOISE_OPEN, a).unwrap().build_initiator().unwrap();
    let mut r = resolver::builder(NOISE_OPEN, b).unwrap().build_responder().unwrap();
    let mut msg = [0u8; 1024];
    let mut payload = [0u8; 1024];
    let n = i.write_message(&[7u8; 16], &mut msg).unwrap();
    r.read_message(&msg[..n], &mut payload).unwrap();
    let n = r.write_message(&[], &mut msg).unwrap();
    i.read_message(&msg[..n], &mut payload).unwrap();
    let n = i.write_message(&[], &mut msg).unwrap();
    r.read_message(&msg[..n], &mut payload).unwrap();
    (i.into_stateless_transport_mode().unwrap(), r.into_stateless_transport_mode().unwrap())
}

/// CPU of one session's handshake, both ends together, on one core (best of [`BATCHES`]
/// batches of `per_batch`).
pub fn handshake_cpu(per_batch: usize) -> Duration {
    let a = StaticKeys::generate();
    let b = StaticKeys::generate();
    let _ = handshake(&a, &b); // warm up (AWS-LC's first use, page faults)
    (0..BATCHES)
        .map(|_| {
            let t = Instant::now();
            for _ in 0..per_batch {
                std::hint::black_box(handshake(&a, &b));
            }
            t.elapsed() / per_batch as u32
        })
        .min()
        .unwrap()
}

/// Plaintext bytes per record when a sender has many frames at once (65535 − the 16-byte tag).
const RECORD: usize = 65519;

/// CPU of sealing and opening `frame_len` bytes (one chat's frame), both ends together, on one
/// core: ChaCha20-Poly1305 over full 64 KiB records, as a stream of many chats sends them, per
/// `frame_len` bytes (best of [`BATCHES`] batches of `records`).
pub fn seal_open_cpu(frame_len: usize, records: usize) -> Duration {
    let (i, r) = handshake(&StaticKeys::generate(), &StaticKeys::generate());
    let plain = vec![0x5au8; RECORD];
    let mut sealed = vec![0u8; RECORD + 16];
    let mut opened = vec![0u8; RECORD];
    let mut nonce = 0u64;
    let best = (0..BATCHES)
        .map(|_| {
            let t = Instant::now();
            for _ in 0..records {
                let n = i.write_message(nonce, &plain, &mut sealed).unwrap();
                let m = r.read_message(nonce, &sealed[..n], &mut opened).unwrap();
                assert_eq!(m, RECORD);
                nonce += 1;
            }
            t.elapsed()
        })
        .min()
        .unwrap();
    best.mul_f64(frame_len as f64 / (RECORD * records) as f64)
}
