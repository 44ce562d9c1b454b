//! Bad input on the real sockets of a running peer: garbage datagrams on the discovery port,
//! random bytes and broken frames on the TCP port, a handshake that never comes, a peer of
//! another version or room. Each is dropped, and the peer keeps serving everyone else.

mod common;

use std::time::Duration;

use common::*;
use lanpeer::codec;
use lanpeer::discovery::beacon::{Beacon, room_tag};
use lanpeer::protocol::{Frame, Hello, PROTOCOL_VERSION, Preamble};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpStream, UdpSocket};

const T: Duration = Duration::from_secs(5);

/// Still serving: a fresh chat from `a` reaches `b`.
async fn still_serving(a: &Peer, b: &mut Peer, text: &str) {
    a.node.chat(text).await.unwrap();
    wait_for(b, T, |e| is_text(e, text)).await;
}

fn hello_frame(room: &str) -> Vec<u8> {
    let h = Hello {
        id: lanpeer::PeerId::random(),
        incarnation: 1,
        name: "intruder".into(),
        room: room.into(),
        tcp_port: 9,
        props: vec![],
    };
    let body = codec::encode(&Frame::Hello(h)).unwrap();
    let mut v = Preamble::ours().to_bytes().to_vec();
    v.extend_from_slice(&(body.len() as u32).to_be_bytes());
    v.extend_from_slice(&body);
    v
}

/// Read until the peer closes; true if it closed within `within`.
async fn closed_within(s: &mut TcpStream, within: Duration) -> bool {
    let mut buf = [0u8; 4096];
    tokio::time::timeout(within, async {
        loop {
            match s.read(&mut buf).await {
                Ok(0) | Err(_) => return,
                Ok(_) => continue,
            }
        }
    })
    .await
    .is_ok()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn garbage_datagrams_are_dropped() {
    let (port, room) = unique_net();
    let a = start("a", port, &room).await;
    let mut b = start("b", port, &room).await;
    wait_listed(&a, 1, T).await;
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

    // Another room.
    let mut r = TcpStream::connect(addr).await.unwrap();
    r.write_all(&hello_frame("another room")).await.unwrap();
    assert!(closed_within(&mut r, T).await, "other room not closed");

    // A good hello, then a frame header claiming 4 GiB: closed, nothing allocated.
    let mut big = TcpStream::connect(addr).await.unwrap();
    big.write_all(&hello_frame(&room)).await.unwrap();
    big.write_all(&u32::MAX.to_be_bytes()).await.unwrap();
    big.write_all(&[0u8; 1000]).await.unwrap();
    assert!(closed_within(&mut big, T).await, "oversized frame not closed");

    // A good hello, then undecodable frames: dropped, the session lives on.
    let mut odd = TcpStream::connect(addr).await.unwrap();
    odd.write_all(&hello_frame(&room)).await.unwrap();
    for _ in 0..100 {
        let junk: Vec<u8> = (0..64).map(|_| rand::random()).collect();
        odd.write_all(&(junk.len() as u32).to_be_bytes()).await.unwrap();
        odd.write_all(&junk).await.unwrap();
    }
    // A truncated frame, then the connection ends.
    odd.write_all(&100u32.to_be_bytes()).await.unwrap();
    odd.write_all(&[1, 2, 3]).await.unwrap();
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
