//! Rooms that keep outsiders out, on loopback: passphrase rooms (who lists whom, who receives
//! what, warnings), and a raw Noise client on the TCP port (a claimed id that is not its key,
//! plain sessions, altered and replayed records, connection floods).

mod common;

use std::time::Duration;

use bytes::BytesMut;
use common::*;
use futures_util::{SinkExt, StreamExt};
use lanpeer::codec;
use lanpeer::crypto::{Passphrase, RoomKeys, SessionKeys, StaticKeys};
use lanpeer::protocol::{Frame, Hello, MODE_NOISE, MODE_PLAIN, Preamble};
use lanpeer::transport::noise::{self, NoiseReader, NoiseWriter};
use lanpeer::{Config, Event, PeerId};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio_util::codec::{Decoder, Encoder, FramedRead, FramedWrite};

const T: Duration = Duration::from_secs(5);

fn with_pass(mut cfg: Config, pass: Option<&str>) -> Config {
    cfg.passphrase = pass.map(Passphrase::new);
    cfg
}

fn is_warning(e: &Event) -> bool {
    matches!(e, Event::Warning { .. })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn passphrase_room_keeps_outsiders_out() {
    let (port, room) = unique_net();
    let t0 = std::time::Instant::now();
    let mut a = start_with(with_pass(config("a", port, &room), Some("correct horse"))).await;
    println!("start with a passphrase (Argon2id) took {:?}", t0.elapsed());
    let mut b = start_with(with_pass(config("b", port, &room), Some("correct horse"))).await;
    let mut wrong = start_with(with_pass(config("wrong", port, &room), Some("correct hose"))).await;
    let mut open = start_with(config("open", port, &room)).await;
    let mut other = start_with(with_pass(config("other", port, &format!("{room}-2")), Some("correct horse"))).await;

    wait_listed(&a, 1, T).await;
    wait_listed(&b, 1, T).await;
    assert_eq!(a.node.peers().await.unwrap()[0].id, b.node.id());

    // Each refused side learns why, in one short sentence.
    for p in [&mut a, &mut wrong, &mut open] {
        match wait_for(p, T, is_warning).await {
            Event::Warning { message } => {
                assert!(message.contains("passphrase"), "{message}");
                assert!(message.len() < 160, "short: {message}");
            }
            _ => unreachable!(),
        }
    }
    a.node.chat("members only").await.unwrap();
    wait_for(&mut b, T, |e| is_text(e, "members only")).await;
    // Beacons went on for a while: still nobody else is listed, and nothing leaked.
    tokio::time::sleep(Duration::from_millis(600)).await;
    for p in [&a, &b] {
        assert_eq!(p.node.peers().await.unwrap().len(), 1, "{} lists only the other member", p.name);
    }
    for p in [&wrong, &open, &other] {
        assert!(p.node.peers().await.unwrap().is_empty(), "{} lists nobody", p.name);
    }
    for p in [&mut wrong, &mut open, &mut other] {
        assert_none(p, Duration::from_millis(100), |e| matches!(e, Event::Message(_))).await;
    }
    // Outsiders can send nothing in: they have no one to send to.
    assert!(wrong.node.chat("let me in").await.is_ok(), "a chat to nobody is not an error");
    assert_none(&mut a, Duration::from_millis(300), |e| is_text(e, "let me in")).await;
    // Warnings are rate-limited: a peer beaconing every 200 ms is reported once, not 5 times a second.
    let mut n = 0;
    while let Ok(e) = a.events.try_recv() {
        n += is_warning(&e) as usize;
    }
    assert!(n <= 2, "{n} more warnings in a second");
    for p in [a, b, wrong, open, other] {
        p.node.shutdown().await;
    }
}

/// A raw client: handshake with `keys` as initiator, send `hello`, read the node's hello.
async fn raw_session(
    addr: std::net::SocketAddr,
    keys: &SessionKeys,
    hello: Hello,
) -> (TcpStream, NoiseWriter, NoiseReader, BytesMut) {
    let mut s = TcpStream::connect(addr).await.unwrap();
    let ts = noise::handshake(&mut s, true, keys).await.unwrap();
    let mut w = NoiseWriter::new(ts.clone(), 1 << 20);
    let mut r = NoiseReader::new(ts, 1 << 20);
    let mut out = BytesMut::new();
    w.encode(codec::encode(&Frame::Hello(hello)).unwrap(), &mut out).unwrap();
    s.write_all(&out).await.unwrap();
    // Read the node's hello.
    let mut inbuf = BytesMut::new();
    let got = tokio::time::timeout(T, async {
        loop {
            if let Some(f) = r.decode(&mut inbuf).unwrap() {
                return f;
            }
            let mut b = [0u8; 4096];
            let n = s.read(&mut b).await.unwrap();
            assert!(n > 0, "closed before its hello");
            inbuf.extend_from_slice(&b[..n]);
        }
    })
    .await
    .expect("the node's hello");
    assert!(matches!(codec::decode::<Frame>(&got), Ok(Frame::Hello(_))));
    (s, w, r, inbuf)
}

/// A hello naming `id` and the identity key of `keys` (so: a true hello when `id` is theirs).
fn hello_of(id: PeerId, keys: &SessionKeys, room: &str) -> Hello {
    Hello {
        id,
        identity: keys.statics.identity,
        incarnation: 1,
        name: "raw".into(),
        room: room.into(),
        tcp_port: 9,
        props: vec![],
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn altered_and_replayed_records_close_the_session() {
    let (port, room) = unique_net();
    let mut a = start("a", port, &room).await;
    let addr = a.node.listen_addr();
    let keys = SessionKeys { statics: StaticKeys::generate(), psk: None };
    let me = keys.statics.peer_id();

    // A well-behaved raw peer is listed (so the checks below can fail).
    let (mut s, mut w, _r, _) = raw_session(addr, &keys, hello_of(me, &keys, &room)).await;
    wait_for(&mut a, T, |e| matches!(e, Event::PeerJoined(p) if p.id == me)).await;
    // One good record (a ping) is accepted...
    let mut rec = BytesMut::new();
    w.encode(codec::encode(&Frame::Ping).unwrap(), &mut rec).unwrap();
    s.write_all(&rec).await.unwrap();
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert_eq!(a.node.peers().await.unwrap().len(), 1);
    // ...and the same bytes again (a replay) end the session.
    s.write_all(&rec).await.unwrap();
    assert!(closed_within(&mut s, T).await, "replayed record: session not closed");
    wait_for(&mut a, T, |e| matches!(e, Event::PeerLeft { id, .. } if *id == me)).await;

    // A record with one flipped byte ends the session too.
    let (mut s, mut w, _r, _) = raw_session(addr, &keys, hello_of(me, &keys, &room)).await;
    wait_for(&mut a, T, |e| matches!(e, Event::PeerJoined(p) if p.id == me)).await;
    let mut rec = BytesMut::new();
    w.encode(codec::encode(&Frame::Bye("x".into())).unwrap(), &mut rec).unwrap();
    let k = rec.len() / 2;
    rec[k] ^= 0x01;
    s.write_all(&rec).await.unwrap();
    assert!(closed_within(&mut s, T).await, "altered record: session not closed");
    wait_for(&mut a, T, |e| matches!(e, Event::PeerLeft { id, .. } if *id == me)).await;

    // A record that skips ahead (reordered: record 1 sent before record 0).
    let (mut s, mut w, _r, _) = raw_session(addr, &keys, hello_of(me, &keys, &room)).await;
    wait_for(&mut a, T, |e| matches!(e, Event::PeerJoined(p) if p.id == me)).await;
    let (mut r0, mut r1) = (BytesMut::new(), BytesMut::new());
    w.encode(codec::encode(&Frame::Ping).unwrap(), &mut r0).unwrap();
    w.encode(codec::encode(&Frame::Ping).unwrap(), &mut r1).unwrap();
    s.write_all(&r1).await.unwrap();
    assert!(closed_within(&mut s, T).await, "reordered record: session not closed");
    a.node.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ids_must_match_keys_and_plain_sessions_are_refused() {
    let (_, room, a, mut b) = two_met(T).await;
    let addr = a.node.listen_addr();

    // Claiming b's id with another key: refused before any listing.
    let keys = SessionKeys { statics: StaticKeys::generate(), psk: None };
    let mut s = TcpStream::connect(addr).await.unwrap();
    let ts = noise::handshake(&mut s, true, &keys).await.unwrap();
    let (rd, wr) = s.into_split();
    let mut w = FramedWrite::new(wr, NoiseWriter::new(ts.clone(), 1 << 20));
    let mut r = FramedRead::new(rd, NoiseReader::new(ts, 1 << 20));
    w.send(codec::encode(&Frame::Hello(hello_of(b.node.id(), &keys, &room))).unwrap()).await.unwrap();
    let closed = tokio::time::timeout(T, async {
        loop {
            match r.next().await {
                Some(Ok(_)) => continue, // the node's own hello may arrive first
                _ => return,
            }
        }
    })
    .await;
    assert!(closed.is_ok(), "a stolen id was not refused");
    assert_eq!(a.node.peers().await.unwrap().len(), 1);

    // The core's plain transport (mode 0): refused at the preamble.
    let mut p = TcpStream::connect(addr).await.unwrap();
    p.write_all(&Preamble::with_mode(MODE_PLAIN).to_bytes()).await.unwrap();
    assert!(closed_within(&mut p, T).await, "plain session not refused");

    // A passphrase-room client on an open room's node: mode mismatch, refused.
    let psk =
        SessionKeys { statics: StaticKeys::generate(), psk: Some(RoomKeys::derive(&room, &Passphrase::new("x")).psk) };
    let mut m = TcpStream::connect(addr).await.unwrap();
    let r = tokio::time::timeout(T, noise::handshake(&mut m, true, &psk)).await.expect("bounded");
    assert!(matches!(r, Err(noise::NoiseError::ModeMismatch { ours: 2, theirs: MODE_NOISE })), "{r:?}");

    // Still serving.
    a.node.chat("still here").await.unwrap();
    wait_for(&mut b, T, |e| is_text(e, "still here")).await;
    a.node.shutdown().await;
    b.node.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wrong_passphrase_fails_the_handshake() {
    let (port, room) = unique_net();
    let mut a = start_with(with_pass(config("a", port, &room), Some("right"))).await;
    let addr = a.node.listen_addr();
    let keys = |p: &str| SessionKeys {
        statics: StaticKeys::generate(),
        psk: Some(RoomKeys::derive(&room, &Passphrase::new(p)).psk),
    };
    // Wrong passphrase: the node refuses at message 3 and warns.
    let k = keys("wrong");
    let mut s = TcpStream::connect(addr).await.unwrap();
    noise::handshake(&mut s, true, &k).await.expect("the initiator cannot tell yet");
    assert!(closed_within(&mut s, T).await, "wrong passphrase not refused");
    match wait_for(&mut a, T, is_warning).await {
        Event::Warning { message } => assert!(message.contains("wrong passphrase"), "{message}"),
        _ => unreachable!(),
    }
    assert!(a.node.peers().await.unwrap().is_empty());
    // The right passphrase gets in (so the check above can fail).
    let k = keys("right");
    let id = k.statics.peer_id();
    let (_s, _w, _r, _) = raw_session(addr, &k, hello_of(id, &k, &room)).await;
    wait_for(&mut a, T, |e| matches!(e, Event::PeerJoined(p) if p.id == id)).await;
    a.node.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connection_flood_from_one_address_is_cut_short() {
    let (port, room) = unique_net();
    let mut cfg = config("a", port, &room);
    cfg.conn_burst_per_ip = 5;
    cfg.limit_loopback = true;
    cfg.conn_per_sec_per_ip = 5.0;
    let mut a = start_with(cfg).await;
    let addr = a.node.listen_addr();
    // 60 connections at once: after the burst, they are closed before any byte is read.
    let mut conns = Vec::new();
    for _ in 0..60 {
        conns.push(TcpStream::connect(addr).await.unwrap());
    }
    let t0 = std::time::Instant::now();
    let mut cut = 0;
    for c in &mut conns {
        let mut b = [0u8; 16];
        // A refused one is closed at once; an accepted one gets our preamble, then waits.
        if let Ok(Ok(0)) = tokio::time::timeout(Duration::from_millis(300), c.read(&mut b)).await {
            cut += 1;
        }
    }
    println!("{cut} of 60 cut in {:?}", t0.elapsed());
    assert!(cut >= 50, "only {cut} of 60 were refused");
    match wait_for(&mut a, T, is_warning).await {
        Event::Warning { message } => assert!(message.contains("too many connections"), "{message}"),
        _ => unreachable!(),
    }
    drop(conns);
    // After a second of calm, a real peer gets in.
    tokio::time::sleep(Duration::from_secs(1)).await;
    let mut b = start("b", port, &room).await;
    wait_listed(&a, 1, T).await;
    a.node.chat("after the flood").await.unwrap();
    wait_for(&mut b, T, |e| is_text(e, "after the flood")).await;
    a.node.shutdown().await;
    b.node.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn handshake_time_on_loopback() {
    let (port, room) = unique_net();
    let a = start("a", port, &room).await;
    let addr = a.node.listen_addr();
    let keys = SessionKeys { statics: StaticKeys::generate(), psk: None };
    let id = keys.statics.peer_id();
    let mut times = Vec::new();
    for _ in 0..10 {
        let t = std::time::Instant::now();
        // Connect, preamble, three Noise messages, both hellos.
        let (s, ..) = raw_session(addr, &keys, hello_of(id, &keys, &room)).await;
        times.push(t.elapsed());
        drop(s);
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    times.sort();
    println!("handshake (connect to hello, loopback, this build): median {:?}, max {:?}", times[5], times[9]);
    assert!(times[5] < Duration::from_millis(250), "median handshake {:?}", times[5]);
    a.node.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn beacon_flood_from_one_address_does_not_starve_the_others() {
    use lanpeer::discovery::beacon::{Beacon, room_tag};
    let (port, room) = unique_net();
    let mut cfg = config("a", port, &room);
    // Loopback is exempt from the per-address limits unless asked: ask, to test them here.
    cfg.limit_loopback = true;
    let a = start_with(cfg).await;
    // The flooder: another loopback address (127.0.0.2), well-formed beacons of our room with
    // random ids, as fast as it can, for at most 3 s (or until the test is done).
    let stop = tokio_util::sync::CancellationToken::new();
    // Every forged beacon points at this listener: it counts the dials the flood causes.
    let sink = tokio::net::TcpListener::bind("127.0.0.2:0").await.unwrap();
    let sink_port = sink.local_addr().unwrap().port();
    let dials = std::sync::Arc::new(std::sync::atomic::AtomicU64::new(0));
    let counter = {
        let dials = dials.clone();
        tokio::spawn(async move {
            while let Ok((c, _)) = sink.accept().await {
                dials.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                drop(c);
            }
        })
    };
    let flood = {
        let stop = stop.clone();
        let room = room.clone();
        tokio::spawn(async move {
            let s = tokio::net::UdpSocket::bind("127.0.0.2:0").await.unwrap();
            s.set_broadcast(true).unwrap();
            let t0 = std::time::Instant::now();
            let mut n = 0u64;
            while !stop.is_cancelled() && t0.elapsed() < Duration::from_secs(3) {
                let b = Beacon {
                    id: PeerId::random(),
                    incarnation: n,
                    tcp_port: sink_port,
                    room_tag: room_tag(&room),
                    farewell: false,
                };
                let _ = s.send_to(&b.encode(), ("127.255.255.255", port)).await;
                n += 1;
                if n.is_multiple_of(64) {
                    tokio::task::yield_now().await;
                }
            }
            (n, t0.elapsed())
        })
    };
    tokio::time::sleep(Duration::from_millis(300)).await;
    // A real peer that starts during the flood is found as quickly as ever.
    let t = std::time::Instant::now();
    // b hears the flood too: it applies the same limit (or its own dials would be counted).
    let mut cfg_b = config("b", port, &room);
    cfg_b.limit_loopback = true;
    let mut b = start_with(cfg_b).await;
    wait_listed(&a, 1, Duration::from_secs(3)).await;
    let took = t.elapsed();
    stop.cancel();
    let (sent, lasted) = flood.await.unwrap();
    tokio::time::sleep(Duration::from_millis(500)).await;
    counter.abort();
    let dials = dials.load(std::sync::atomic::Ordering::Relaxed);
    // The limiter lets 100 beacons through at once and 50 per second while the flood lasts; each
    // forged peer it lets through is dialed a bounded number of times (backoff from 200 ms, until
    // it expires after 3 s: about ten). Without the per-source limit, every forged beacon makes a
    // peer to dial: over ten thousand dials for the same flood.
    let admitted = 2.0 * (100.0 + 50.0 * lasted.as_secs_f64()); // a and b each let as many through
    let bound = (admitted * 8.0) as u64;
    println!(
        "{sent} forged beacons from 127.0.0.2 in {lasted:?} caused {dials} dials (at most {bound} allowed); the real peer was listed after {took:?}"
    );
    assert!(dials <= bound, "{dials} dials for a {lasted:?} flood: the flood was not limited");
    assert!(sent > 1000, "the flood was too small to mean anything ({sent})");
    assert!(took < Duration::from_secs(2), "discovery took {took:?} under a flood");
    a.node.chat("after the beacon flood").await.unwrap();
    wait_for(&mut b, T, |e| is_text(e, "after the beacon flood")).await;
    assert_eq!(a.node.peers().await.unwrap().len(), 1, "no forged peer is listed");
    a.node.shutdown().await;
    b.node.shutdown().await;
}
