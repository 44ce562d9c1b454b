//! Bad input on the real sockets of a running peer: garbage datagrams on the discovery port,
//! random bytes and broken frames on the TCP port, a handshake that never comes, a peer of
//! another version or room. Each is dropped, and the peer keeps serving everyone else.

mod common;

use std::time::Duration;

use bytes::BytesMut;
use common::*;
use lanpeer::Event;
use lanpeer::codec;
use lanpeer::crypto::{SessionKeys, StaticKeys};
use lanpeer::discovery::beacon::{Beacon, room_tag};
use lanpeer::protocol::{Frame, Hello, PROTOCOL_VERSION, Preamble};
use lanpeer::transport::noise::{self, NoiseWriter};
use tokio::io::AsyncWriteExt;
use tokio::net::{TcpStream, UdpSocket};
use tokio_util::codec::Encoder;

const T: Duration = Duration::from_secs(5);

/// Still serving: a fresh chat from `a` reaches `b`.
async fn still_serving(a: &Peer, b: &mut Peer, text: &str) {
    a.node.chat(text).await.unwrap();
    wait_for(b, T, |e| is_text(e, text)).await;
}

/// An encrypted session (Noise handshake as the dialer, then our hello for `room`); the writer
/// seals whatever the test sends next.
async fn noise_hello(addr: std::net::SocketAddr, room: &str) -> (TcpStream, NoiseWriter) {
    let keys = SessionKeys { statics: StaticKeys::generate(), psk: None };
    let mut s = TcpStream::connect(addr).await.unwrap();
    let ts = noise::handshake(&mut s, true, &keys).await.unwrap();
    let mut w = NoiseWriter::new(ts, 1 << 20);
    let h = Hello {
        id: keys.statics.peer_id(),
        identity: keys.statics.identity,
        incarnation: 1,
        name: "intruder".into(),
        room: room.into(),
        tcp_port: 9,
        props: vec![],
    };
    let mut out = BytesMut::new();
    w.encode(codec::encode(&Frame::Hello(h)).unwrap(), &mut out).unwrap();
    s.write_all(&out).await.unwrap();
    (s, w)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn garbage_datagrams_are_dropped() {
    let (port, room, a, mut b) = two_met(T).await;
    let sock = UdpSocket::bind("127.0.0.1:0").await.unwrap();
    let to = ("127.0.0.1", port);
    let good = Beacon {
        id: lanpeer::PeerId::random(),
        incarnation: 5,
        tcp_port: 1,
        room_tag: room_tag(&room),
        farewell: false,
    };
    for i in 0..5000u32 {
        let d: Vec<u8> = match i % 5 {
            0 => (0..(i % 1400) as usize).map(|_| rand::random()).collect(),
            1 => {
                // A beacon of another version.
                let mut b = good.encode();
                b[4] = PROTOCOL_VERSION.wrapping_add(1);
                b.to_vec()
            }
            2 => good.encode()[..39].to_vec(),
            3 => {
                let mut b = good.encode().to_vec();
                b.extend_from_slice(&[0; 30]);
                b
            }
            _ => {
                // Well-formed beacons of random ids in another room.
                let mut x = good;
                x.id = lanpeer::PeerId::random();
                x.room_tag = room_tag("elsewhere");
                x.encode().to_vec()
            }
        };
        let _ = sock.send_to(&d, to).await;
    }
    still_serving(&a, &mut b, "after udp garbage").await;
    assert_eq!(a.node.peers().await.unwrap().len(), 1, "no bogus peer is listed");
    a.node.shutdown().await;
    b.node.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn garbage_on_the_tcp_port_changes_nothing() {
    let (port, room) = unique_net();
    let mut cfg = config("a", port, &room);
    cfg.handshake_timeout = Duration::from_millis(700);
    let mut a = start_with(cfg).await;
    let mut b = start("b", port, &room).await;
    wait_listed(&a, 1, T).await;
    let addr = b.node.listen_addr();

    // A megabyte of random bytes.
    let mut s = TcpStream::connect(addr).await.unwrap();
    let junk: Vec<u8> = (0..(1 << 20)).map(|_| rand::random()).collect();
    let _ = s.write_all(&junk).await;
    assert!(closed_within(&mut s, T).await, "random bytes: connection not closed");

    // A handshake that never comes is cut after the handshake timeout.
    let a_addr = a.node.listen_addr();
    let mut idle = TcpStream::connect(a_addr).await.unwrap();
    let t0 = std::time::Instant::now();
    assert!(closed_within(&mut idle, Duration::from_secs(3)).await, "silent connection not closed");
    println!("silent connection closed after {:?}", t0.elapsed());

    // Another protocol version.
    let mut v = TcpStream::connect(addr).await.unwrap();
    let mut pre = Preamble::ours().to_bytes();
    pre[4] = PROTOCOL_VERSION + 1;
    v.write_all(&pre).await.unwrap();
    assert!(closed_within(&mut v, T).await, "other version not closed");

    // Another room (over a good encrypted session).
    let (mut r, _) = noise_hello(addr, "another room").await;
    assert!(closed_within(&mut r, T).await, "other room not closed");

    // A good hello, then a frame header claiming 4 GiB: closed, nothing allocated.
    let (mut big, mut w) = noise_hello(addr, &room).await;
    let mut rec = BytesMut::new();
    let mut plain = u32::MAX.to_be_bytes().to_vec();
    plain.extend_from_slice(&[0u8; 1000]);
    w.seal_record(&plain, &mut rec).unwrap();
    let _ = big.write_all(&rec).await;
    assert!(closed_within(&mut big, T).await, "oversized frame not closed");

    // A good hello, then undecodable frames: dropped, the session lives on.
    let (mut odd, mut w) = noise_hello(addr, &room).await;
    let mut rec = BytesMut::new();
    for _ in 0..100 {
        let junk: Vec<u8> = (0..64).map(|_| rand::random()).collect();
        w.encode(junk.into(), &mut rec).unwrap();
    }
    odd.write_all(&rec).await.unwrap();
    // A truncated frame, then the connection ends.
    let mut rec = BytesMut::new();
    w.seal_record(&[0, 0, 0, 100, 1, 2, 3], &mut rec).unwrap();
    odd.write_all(&rec).await.unwrap();
    drop(odd);

    still_serving(&a, &mut b, "after tcp garbage").await;
    still_serving(&b, &mut a, "and back").await;
    // The peer that spoke the protocol was a peer while its session lasted; once it is gone
    // (and cannot be dialed back) only the real peer is left.
    wait_listed(&b, 1, T).await;
    assert_eq!(b.node.peers().await.unwrap()[0].name, "a");
    a.node.shutdown().await;
    b.node.shutdown().await;
}

/// A peer that keeps its session alive but never reads: once more than `outbox_capacity` frames
/// wait for its socket, its session is cut (long before it would time out), and the peer that
/// reads gets every message.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_peer_that_does_not_read_is_cut_and_the_others_get_everything() {
    let (port, room) = unique_net();
    let mut cfg = config("a", port, &room);
    cfg.outbox_capacity = 64;
    cfg.expiry = Duration::from_secs(20);
    let a = start_with(cfg).await;
    let mut b = start("b", port, &room).await;
    wait_listed(&a, 1, T).await;

    // Joins, pings every 200 ms (so it never falls silent), reads nothing.
    let (s, mut w) = noise_hello(a.node.listen_addr(), &room).await;
    wait_listed(&a, 2, T).await;
    let (_keep_read_half, mut wr) = s.into_split();
    let pinger = tokio::spawn(async move {
        let t0 = std::time::Instant::now();
        loop {
            let mut rec = BytesMut::new();
            w.encode(codec::encode(&Frame::Ping).unwrap(), &mut rec).unwrap();
            if wr.write_all(&rec).await.is_err() {
                return Some(t0.elapsed());
            }
            if t0.elapsed() > Duration::from_secs(15) {
                return None;
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    });

    // 300 answers of 100 KiB: 30 MB, far more than the socket buffers between a and the intruder.
    let t0 = std::time::Instant::now();
    let problem = a.node.post_problem("Long answers", "as long as allowed", false).await.unwrap();
    let body = "x".repeat(100 * 1024);
    let texts: Vec<String> = (0..300).map(|i| format!("{i:04}{body}")).collect();
    for t in &texts {
        a.node.answer(problem, t.clone()).await.unwrap();
    }
    let cut = pinger.await.unwrap().expect("the session of a peer that does not read is cut within 15 s");
    println!("not reading: cut {cut:?} after it joined, {:?} after the first chat", t0.elapsed());
    assert!(t0.elapsed() < Duration::from_secs(10), "cut as too slow, not by the 20 s expiry");
    // Every answer reaches b (in a debug build b may itself fall behind by more than 64 frames,
    // be cut and catch up over its next session: nothing is lost either way).
    let mut missing: std::collections::HashSet<&str> = texts.iter().map(|t| &t[..4]).collect();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    while !missing.is_empty() {
        let e = tokio::time::timeout_at(deadline, b.events.recv()).await;
        match e.unwrap_or_else(|_| panic!("b still misses {} answers after 60 s", missing.len())) {
            Some(Event::Message(m)) => {
                if let lanpeer::Body::Answer { text, .. } = &m.body {
                    missing.remove(&text[..4.min(text.len())]);
                }
            }
            Some(other) => println!("b: {other:?}"),
            None => panic!("b stopped"),
        }
    }
    println!("b had all 300 after {:?}", t0.elapsed());
    still_serving(&a, &mut b, "after the cut").await;
}
