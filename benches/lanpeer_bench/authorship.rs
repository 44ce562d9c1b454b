//! What proving authors costs: the author's side (a leaf per message, a tree and a signature
//! per batch) and the receiver's (the same tree, and the signature checked), per message, beside
//! decoding the same messages alone (what a receiver does without any proof); and a late joiner
//! that receives 10,000 caught-up messages, each its own batch (the worst case: messages typed one
//! by one) and in batches of 256 (a script's), verified in isolation and end to end.

use std::time::{Duration, Instant};

use lanpeer::authorship::{self, Verifier};
use lanpeer::codec::{self, Received};
use lanpeer::crypto::StaticKeys;
use lanpeer::protocol::{Body, Envelope, Seal};
use lanpeer::{MsgId, merkle};

use crate::chats::text;
use crate::opts::Opts;
use crate::report::{failed, figure, ms};
use crate::swarm::{config, start_node, unique_net};

/// `n` chats by `keys`, numbered from 1, with their encodings.
fn messages(keys: &StaticKeys, n: u64) -> Vec<(Envelope, bytes::Bytes)> {
    (1..=n)
        .map(|seq| {
            let e = Envelope {
                id: MsgId { author: keys.peer_id(), seq },
                author_name: "bench".into(),
                sent_ms: 1,
                to: None,
                body: Body::Chat { text: text("auth") },
                files: vec![],
            };
            let raw = codec::encode(&e).unwrap();
            (e, raw)
        })
        .collect()
}

/// Sign `msgs` in batches of `per`: the seals, and the author's time per message.
fn sign(keys: &StaticKeys, msgs: &[(Envelope, bytes::Bytes)], per: usize) -> (Vec<Seal>, Duration) {
    let t = Instant::now();
    let mut seals = Vec::new();
    for chunk in msgs.chunks(per) {
        let leaves: Vec<merkle::Hash> = chunk.iter().map(|(_, r)| merkle::leaf(r)).collect();
        let batch = authorship::sign_batch(keys, "bench", chunk[0].0.id.seq, &leaves);
        let all: Vec<u32> = (0..leaves.len() as u32).collect();
        seals.push(batch.seal(&all, |i| leaves.get(i as usize).copied()).unwrap());
    }
    (seals, t.elapsed() / msgs.len() as u32)
}

/// Verify `msgs` with their `seals` as a receiver's reader does (every message held, each seal
/// checked as it comes): the time, and how many were proved.
fn verify(msgs: &[(Envelope, bytes::Bytes)], seals: &[Seal], per: usize) -> (Duration, usize) {
    let t = Instant::now();
    let mut v = Verifier::new("bench".into());
    let mut out = Vec::new();
    let mut proved = 0;
    for (chunk, seal) in msgs.chunks(per).zip(seals) {
        for (e, r) in chunk {
            v.hold(Received::CatchUp { env: e.clone(), raw: r.clone(), proof: None }).unwrap();
        }
        v.seal(seal.clone());
        proved += v.finish(&mut out).proved;
        out.clear();
    }
    (t.elapsed(), proved)
}

pub fn bench_authorship(o: &Opts) {
    let n = o.size(10_000, 10_000, 500);
    let keys = StaticKeys::generate();
    let msgs = messages(&keys, n);
    // Baseline: the same messages decoded, as a receiver does anyway.
    let t = Instant::now();
    for (_, r) in &msgs {
        std::hint::black_box(codec::decode_envelope(r).unwrap());
    }
    let decode = t.elapsed() / n as u32;
    let us = |d: Duration| d.as_secs_f64() * 1e6;
    for per in [256usize, 1] {
        let (seals, author) = sign(&keys, &msgs, per);
        let (took, proved) = verify(&msgs, &seals, per);
        if proved != msgs.len() {
            failed(format!("authorship: {proved} of {} messages proved", msgs.len()));
        }
        let what = if per == 1 { "each its own batch" } else { "batches of 256" };
        figure(
            &format!("authorship, author's cost per message, {what}"),
            format!("{:.3} us", us(author)),
            &[format!("a leaf, the tree and one Ed25519 signature per batch; decoding alone {:.3} us", us(decode))],
        );
        figure(
            &format!("authorship, receiver's cost per message, {what}"),
            format!("{:.3} us", us(took) / n as f64),
            &[format!("held, its tree and the signature checked; decoding alone {:.3} us", us(decode))],
        );
        figure(
            &format!("authorship, late joiner verifies {n} caught-up messages, {what}"),
            ms(took),
            &[format!("target under 500 ms on one core; decoding them alone {}", ms(decode * n as u32))],
        );
    }
}

/// End to end: a peer holds 10,000 exercises (a problem and its answers, each sent alone: one
/// batch each); a late joiner starts, and the time until it has stored them all is measured
/// (catch-up, each message proved).
pub async fn bench_late_joiner(o: &Opts) {
    let n = o.size(10_000usize, 2_000, 200);
    let (port, room) = unique_net("authjoin");
    // Both offer and take that many (the default catch-up is 5,000).
    let mut cfg = config("author".into(), port, &room);
    cfg.catchup_max = n + 10;
    let (a, _ea) = start_node(cfg).await;
    let p = match a.post_problem("many answers", "", false).await {
        Ok(p) => p,
        Err(e) => return failed(format!("authorship: {e}")),
    };
    // One message per turn: each its own batch and signature, as when typed.
    for k in 1..n {
        if let Err(e) = a.answer(p, format!("answer {k}")).await {
            return failed(format!("authorship: {e}"));
        }
    }
    let mut cfg = config("late".into(), port, &room);
    cfg.catchup_max = n + 10;
    let t = Instant::now();
    let (b, _eb) = start_node(cfg).await;
    let deadline = t + Duration::from_secs(60);
    let mut stored = 0;
    while Instant::now() < deadline {
        stored = b.stats().await.map(|s| s.stored).unwrap_or(0);
        if stored as usize >= n {
            break;
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let took = t.elapsed();
    if (stored as usize) < n {
        failed(format!("authorship: the late joiner stored {stored} of {n} in 60 s"));
    } else {
        figure(
            &format!("authorship, late joiner to {n} exercises, each its own batch, end to end"),
            ms(took),
            &["from its start: the room found, offered, wanted, sent, every message proved and stored".into()],
        );
    }
    a.shutdown().await;
    b.shutdown().await;
}
