//! The history alone, without sockets or tasks: what bounds a durable stream, per message.

use std::io::Write;
use std::time::{Duration, Instant};

use lanpeer::PeerId;
use lanpeer::codec;
use lanpeer::protocol::Envelope;
use lanpeer::store::Store;

use crate::chats::{AUTHOR, TEXT_LEN, chat_envelope};
use crate::opts::Opts;
use crate::report::{figure, rate};
use crate::sys::{rss_kib, scratch};

/// The history alone, as the node actor drives it: one message per commit (a lone caller
/// awaiting each `chat`, or one message arriving), and many per commit (a pipelined stream), in
/// memory and on disk (`history.journal`, as the CLI runs). Baseline: the same encoded envelopes
/// appended to a plain file with one `write` each (the cheapest durable log the kernel offers
/// without fsync, which the journal does not do per commit either).
pub fn bench_store(o: &Opts) {
    let n: u64 = o.size(20_000, 5_000, 300);
    let dir = scratch("store");
    let root = dir.path();
    let envs: Vec<(Envelope, Vec<u8>)> = (1..=2 * n)
        .map(|seq| {
            let e = chat_envelope(seq, "store");
            let b = codec::encode(&e).unwrap().to_vec();
            (e, b)
        })
        .collect();
    // Baseline: append each envelope to a file with its own write(2).
    let raw = {
        let mut f = std::fs::File::create(root.join("log")).unwrap();
        let t = Instant::now();
        for (_, b) in &envs[..n as usize] {
            f.write_all(b).unwrap();
        }
        t.elapsed() / n as u32
    };
    let env_len = envs.iter().map(|(_, b)| b.len()).sum::<usize>() as f64 / envs.len() as f64;
    let us = |d: Duration| d.as_secs_f64() * 1e6;
    let journal = root.join(lanpeer::store::JOURNAL_FILE);
    for place in ["in memory", "on disk"] {
        let fresh = || {
            let _ = std::fs::remove_dir_all(root);
            std::fs::create_dir_all(root).unwrap();
            let me = PeerId([1; 16]);
            match place {
                "in memory" => Store::open(None, me, "bench"),
                _ => Store::open(Some(root), me, "bench"),
            }
            .unwrap()
        };
        let mut st = fresh();
        let t = Instant::now();
        for (e, b) in &envs[..n as usize] {
            st.begin();
            st.insert(e, b, 1, true).unwrap();
            st.save_in_stream(AUTHOR, e.id.seq).unwrap();
            st.commit().unwrap();
        }
        let one = t.elapsed() / n as u32;
        drop(st);
        let mut st = fresh();
        let t = Instant::now();
        for chunk in envs[n as usize..].chunks(256) {
            st.begin();
            for (e, b) in chunk {
                st.insert(e, b, 1, true).unwrap();
            }
            st.save_in_stream(AUTHOR, chunk.last().unwrap().0.id.seq).unwrap();
            st.commit().unwrap();
        }
        let batched = t.elapsed() / n as u32;
        drop(st);
        let took = [one, batched];
        for (i, name) in ["1 message per commit", "256 per commit"].into_iter().enumerate() {
            figure(
                &format!("store, {name}, {place}"),
                format!("{:.2} us", us(took[i])),
                &[
                    format!("file append {:.2} us per message (one write each)", us(raw)),
                    format!("ceiling {}msg/s on one core", rate(1.0 / took[i].as_secs_f64())),
                ],
            );
        }
        if place == "on disk" {
            let size = std::fs::metadata(&journal).map(|m| m.len()).unwrap_or(0);
            figure(
                "store, journal bytes per message",
                format!("{:.0} B", size as f64 / n as f64),
                &[format!("the encoded envelope {env_len:.0} B (its text {TEXT_LEN} B)")],
            );
            // What a peer's start pays for its history: the journal replayed into memory.
            let t = Instant::now();
            let bytes = std::fs::read(&journal).map(|b| b.len()).unwrap_or(0);
            let read = t.elapsed();
            let t = Instant::now();
            let st = Store::open(Some(root), PeerId([1; 16]), "bench").unwrap();
            let open = t.elapsed();
            assert_eq!(st.count(), n, "the journal holds what was written");
            drop(st);
            figure(
                "store, opening a journal, per message",
                format!("{:.2} us", us(open) / n as f64),
                &[format!(
                    "{n} messages in {:.1} ms; reading its {:.1} MB alone {:.1} ms",
                    open.as_secs_f64() * 1e3,
                    bytes as f64 / 1e6,
                    read.as_secs_f64() * 1e3
                )],
            );
        }
    }
    // Memory: a data dir's store keeps the history's state in memory (docs/architecture.md):
    // resident memory per stored message, `m` chats into a store in memory (the same state the
    // journal store replays).
    let m = o.size(200_000, 20_000, 1_000);
    // What the stores above freed goes back to the system first, so that the store measured
    // here grows the resident set rather than reusing it (which read 141 B in one run, 224 in
    // the others, before this).
    // SAFETY: `malloc_trim` takes a size and touches only the allocator's own state.
    unsafe { libc::malloc_trim(0) };
    let before = rss_kib(std::process::id()).unwrap_or(0);
    let mut st = Store::open(None, PeerId([1; 16]), "bench").unwrap();
    let mut e = envs[0].0.clone();
    for seq in 0..m {
        e.id.seq = 1 << 40 | seq;
        st.insert(&e, &codec::encode(&e).unwrap(), 1, true).unwrap();
    }
    let after = rss_kib(std::process::id()).unwrap_or(0);
    figure(
        "store, resident memory per message",
        format!("{:.0} B", after.saturating_sub(before) as f64 * 1024.0 / m as f64),
        &[format!("{m} chats of {TEXT_LEN} B; the encoded envelope {env_len:.0} B")],
    );
    drop(st);
}
