//! Crossing dials on a real node, on loopback: a fake peer announced by beacons, whose TCP port
//! is a listener the test holds (so that the node's dial to it stays connected and handshaking
//! as long as the test wants), and a raw Noise dialer that names that peer in its first message.
//! The lower id refuses a dial that crosses its own; the higher id takes it; a node does not dial
//! a peer whose handshake with it is under way; and every refusal ends when its cause does.
//! Also what message 1 carries on the wire (the dialer's id; nothing from a seed dial), and that
//! the claim must be the id the key proves.

mod common;

use std::net::SocketAddr;
use std::time::Duration;

use bytes::BytesMut;
use common::*;
use lanpeer::crypto::{SessionKeys, StaticKeys};
use lanpeer::discovery::beacon::{Beacon, room_tag};
use lanpeer::protocol::{Frame, Hello};
use lanpeer::transport::noise::{self, Intro, NoiseError, NoiseWriter};
use lanpeer::{Event, PeerId, codec};
use tokio::io::AsyncWriteExt;
use tokio::net::{TcpListener, TcpStream, UdpSocket};
use tokio::task::JoinHandle;
use tokio_util::codec::Encoder;

const T: Duration = Duration::from_secs(5);

/// Keys whose peer id is above (`above` true) or below `than`.
fn keys_of_id(than: PeerId, above: bool) -> SessionKeys {
    loop {
        let statics = StaticKeys::generate();
        if (statics.peer_id() > than) == above {
            return SessionKeys { statics, psk: None };
        }
    }
}

/// A fake peer x for node `a`: keys whose id is above (or below) a's, and x's TCP port, a
/// listener that takes a's dials and holds them, mid-handshake, as long as the test keeps them.
struct Fake {
    keys: SessionKeys,
    id: PeerId,
    listener: TcpListener,
}

async fn fake(a: &Peer, above: bool) -> Fake {
    let keys = keys_of_id(a.node.id(), above);
    let id = keys.statics.peer_id();
    Fake { keys, id, listener: TcpListener::bind("127.0.0.1:0").await.unwrap() }
}

impl Fake {
    /// Announce x to nodes on discovery port `port` (see [`announce`]).
    fn announce(&self, port: u16, room: &str) -> JoinHandle<()> {
        announce(self.id, self.listener.local_addr().unwrap().port(), port, room)
    }
}

/// Announce peer `id` (its TCP port: `tcp_port`) to the node on discovery port `port`, five
/// times a second, until the task is aborted.
fn announce(id: PeerId, tcp_port: u16, port: u16, room: &str) -> JoinHandle<()> {
    let b = Beacon { id, incarnation: 1, tcp_port, room_tag: room_tag(room), farewell: false }.encode();
    tokio::spawn(async move {
        let sock = UdpSocket::bind("127.0.0.1:0").await.unwrap();
        loop {
            let _ = sock.send_to(&b, ("127.0.0.1", port)).await;
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    })
}

/// A raw dialer's handshake with the node at `addr`, naming `claim`, up to (not including) its
/// third message.
async fn open_naming(addr: SocketAddr, claim: PeerId, keys: &SessionKeys) -> (TcpStream, Result<(), NoiseError>) {
    let mut s = TcpStream::connect(addr).await.unwrap();
    let r = tokio::time::timeout(T, noise::open(&mut s, Intro::Dialer(Some(claim)), keys)).await.expect("bounded");
    (s, r.map(|_| ()))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_lower_id_refuses_a_dial_that_crosses_its_own_until_its_own_ends() {
    let (port, room) = unique_net();
    let a = start("a", port, &room).await;
    let addr = a.node.listen_addr();
    let Fake { keys: x, id: xid, listener: l } = fake(&a, true).await;
    let beacons = announce(xid, l.local_addr().unwrap().port(), port, &room);
    let (held, _) = tokio::time::timeout(T, l.accept()).await.expect("a dials x at once (lower id)").unwrap();

    // x dials a meanwhile: a's own dial is the one both keep, so a refuses this one after
    // message 1, before any key agreement of its own.
    let (_s, r) = open_naming(addr, xid, &x).await;
    assert!(matches!(r, Err(NoiseError::Crossed)), "a crossing dial is refused: {r:?}");
    // A dial that names someone a is not dialing goes on.
    let y = keys_of_id(a.node.id(), true);
    let (_s, r) = open_naming(addr, y.statics.peer_id(), &y).await;
    assert!(r.is_ok(), "no crossing: {r:?}");

    // a's dial ends (x is gone: no more beacons, its port closed): x's dial is taken again.
    beacons.abort();
    drop(held);
    drop(l);
    let t0 = std::time::Instant::now();
    loop {
        let (_s, r) = open_naming(addr, xid, &x).await;
        match r {
            Ok(()) => break,
            Err(NoiseError::Crossed) if t0.elapsed() < T => tokio::time::sleep(Duration::from_millis(50)).await,
            Err(e) => panic!("still refused after a's dial ended: {e}"),
        }
    }
    a.node.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_higher_id_takes_a_dial_that_crosses_its_own() {
    let (port, room) = unique_net();
    let a = start("a", port, &room).await;
    let x = fake(&a, false).await;
    let beacons = x.announce(port, &room);
    // a has the higher id: it dials x after the grace (300 ms in the tests' config).
    let (_held, _) = tokio::time::timeout(T, x.listener.accept()).await.expect("a dials x after the grace").unwrap();
    let (_s, r) = open_naming(a.node.listen_addr(), x.id, &x.keys).await;
    assert!(r.is_ok(), "x's dial is the one both keep: {r:?}");
    beacons.abort();
    a.node.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_dial_to_a_peer_whose_handshake_with_us_is_under_way() {
    let (port, room) = unique_net();
    let a = start("a", port, &room).await;
    let x = fake(&a, true).await;
    // x dials a first and stops before its third message: its handshake is under way.
    let (pending, r) = open_naming(a.node.listen_addr(), x.id, &x.keys).await;
    assert!(r.is_ok(), "{r:?}");
    // Then a hears x's beacons. a has the lower id and would dial x at once; it does not.
    let beacons = x.announce(port, &room);
    let early = tokio::time::timeout(Duration::from_millis(1200), x.listener.accept()).await;
    assert!(early.is_err(), "a dialed x while x's handshake with it was under way");
    // x's handshake fails (closed): a dials x now.
    drop(pending);
    let dialed = tokio::time::timeout(T, x.listener.accept()).await;
    assert!(dialed.is_ok(), "a never dialed x after x's handshake ended");
    beacons.abort();
    a.node.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dialer_must_be_who_its_first_message_names() {
    let (port, room) = unique_net();
    let mut a = start("a", port, &room).await;
    let addr = a.node.listen_addr();
    // Message 1 names `claim`; the key proved and the hello are x's own, and agree.
    let join = |claim: PeerId, x: SessionKeys| {
        let room = room.clone();
        async move {
            let mut s = TcpStream::connect(addr).await.unwrap();
            let o = noise::open(&mut s, Intro::Dialer(Some(claim)), &x).await.unwrap();
            let id = x.statics.peer_id();
            let hello = Hello {
                id,
                identity: x.statics.identity,
                incarnation: 1,
                name: "x".into(),
                room,
                tcp_port: 9,
                props: vec![],
            };
            let mut out = BytesMut::from(&o.unsent[..]);
            NoiseWriter::new(o.ts, 1 << 20).encode(codec::encode(&Frame::Hello(hello)).unwrap(), &mut out).unwrap();
            s.write_all(&out).await.unwrap();
            s
        }
    };
    let x = SessionKeys { statics: StaticKeys::generate(), psk: None };
    let xid = x.statics.peer_id();
    let mut s = join(PeerId::random(), x.clone()).await;
    // Refused at once (an idle session would be closed too, but only after the expiry: 3 s).
    assert!(closed_within(&mut s, Duration::from_secs(1)).await, "a dialer that named someone else was not refused");
    assert_none(&mut a, Duration::from_millis(300), |e| matches!(e, Event::PeerJoined(p) if p.id == xid)).await;
    // The same dialer naming itself is listed (so the check above can fail).
    let _s = join(xid, x).await;
    wait_for(&mut a, T, |e| matches!(e, Event::PeerJoined(p) if p.id == xid)).await;
    a.node.shutdown().await;
}

/// What a node's first handshake message carries, read off the wire by a listener: its id when
/// it dials a peer it knows by id (from a beacon), nothing when it dials a seed (known only by
/// its address, so that it is never refused as crossing and always learns who answered).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dial_names_the_dialer_and_a_seed_dial_names_nobody() {
    use tokio::io::AsyncReadExt;
    /// Message 1's length: after the 8-byte preamble, a 2-byte length.
    async fn first_message_len(l: &TcpListener) -> usize {
        let (mut s, _) = tokio::time::timeout(T, l.accept()).await.expect("dialed").unwrap();
        let mut head = [0u8; 10];
        tokio::time::timeout(T, s.read_exact(&mut head)).await.expect("preamble and length").unwrap();
        u16::from_be_bytes([head[8], head[9]]) as usize
    }
    let (port, room) = unique_net();
    let seed = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let mut cfg = config("a", port, &room);
    cfg.seeds = vec![lanpeer::seeds::SeedAddr { host: "127.0.0.1".into(), port: seed.local_addr().unwrap().port() }];
    let a = start_with(cfg).await;
    assert_eq!(first_message_len(&seed).await, 32, "a seed dial: the ephemeral key alone");
    let x = fake(&a, true).await;
    let beacons = x.announce(port, &room);
    assert_eq!(first_message_len(&x.listener).await, 32 + 16, "a dial of a known peer: its ephemeral key and its id");
    beacons.abort();
    a.node.shutdown().await;
}
