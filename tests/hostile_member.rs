//! A hostile member of the room, on real sockets: a raw Noise client (`common::member`) that
//! knows the room and signs what it sends as itself, as any student could, and sends what no
//! honest peer sends. Each test names the bound the attack hits, shows the bound held (through
//! `Node::stats`), and shows a real member served all along.
//!
//! (Floods of connections and a peer that does not read are in `tests/netns_flood.rs`, on
//! hosts of their own.)

mod common;

use std::time::Duration;

use common::member::Member;
use common::*;
use lanpeer::codec::Received;
use lanpeer::protocol::{Body, Frame, PeerAd};
use lanpeer::{Event, MsgId};

const T: Duration = Duration::from_secs(5);

/// A real member `b` still gets `a`'s chat, and `a` gets `b`'s.
async fn still_served(a: &mut Peer, b: &mut Peer, text: &str) {
    a.node.chat(format!("{text} (a)")).await.unwrap();
    wait_for(b, T, |e| is_text(e, &format!("{text} (a)"))).await;
    b.node.chat(format!("{text} (b)")).await.unwrap();
    wait_for(a, T, |e| is_text(e, &format!("{text} (b)"))).await;
}

/// Two real members and a hostile one joined to `a`.
async fn room_with_intruder() -> (String, Peer, Peer, Member) {
    let (port, room) = unique_net();
    let a = start("a", port, &room).await;
    let b = start("b", port, &room).await;
    wait_listed(&a, 1, T).await;
    let m = Member::join(a.node.listen_addr(), &room, "Mallory", &[]).await;
    wait_listed(&a, 2, T).await;
    (room, a, b, m)
}

/// Messages over their kind's limit (a 1 MiB chat, an answer of 300 KiB) are dropped; the
/// member's stream goes on past them, and its next message arrives.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn messages_over_their_limit_are_dropped_and_the_stream_goes_on() {
    let (_, mut a, mut b, mut m) = room_with_intruder().await;
    let big_chat = m.envelope(Body::Chat { text: "c".repeat(lanpeer::limits::CHAT + 1) });
    let p = m.envelope(Body::Problem { title: "p".into(), body: String::new(), private_answers: false });
    let big_answer = m.envelope(Body::Answer { problem: p.id, text: "a".repeat(lanpeer::limits::ANSWER + 1) });
    let fine = m.envelope(Body::Chat { text: "after the big ones".into() });
    m.stream(&[big_chat.clone(), p.clone(), big_answer.clone(), fine]).await;
    wait_for(&mut a, T, |e| is_text(e, "after the big ones")).await;
    let history = a.node.history(10).await.unwrap();
    assert!(history.iter().all(|h| h.id != big_chat.id && h.id != big_answer.id), "{history:?}");
    assert!(history.iter().any(|h| h.id == p.id));
    // And sending one gets one plain sentence.
    let e = a.node.chat("x".repeat(lanpeer::limits::CHAT + 1)).await.unwrap_err();
    assert_eq!(e.to_string(), "this message is longer than 16 KiB; shorten it");
    let q = a.node.post_problem("q", "", false).await.unwrap();
    let e = a.node.answer(q, "x".repeat(lanpeer::limits::ANSWER + 1)).await.unwrap_err();
    assert_eq!(e.to_string(), "this answer is longer than 256 KiB; shorten it");
    still_served(&mut a, &mut b, "sizes").await;
}

/// A member floods the index of exercises with tiny feedback: it keeps at most its bound of
/// them, the teacher's problem stays, and a new problem is still let in.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_flood_of_feedback_costs_its_author_only() {
    let (_, mut a, mut b, mut m) = room_with_intruder().await;
    let p = a.node.post_problem("Loops", "print 1 to 10", false).await.unwrap();
    let ans = m.envelope(Body::Answer { problem: p, text: "for i in range(10)".into() });
    m.stream(std::slice::from_ref(&ans)).await;
    wait_for(&mut a, T, |e| matches!(e, Event::Message(x) if x.id == ans.id)).await;
    let n = lanpeer::exercises::PER_AUTHOR + 1500;
    let flood: Vec<_> = (0..n).map(|k| m.envelope(Body::Feedback { answer: ans.id, text: format!("{k}") })).collect();
    let last = flood.last().unwrap().id;
    for part in flood.chunks(2000) {
        m.stream(part).await;
    }
    wait_for(&mut a, Duration::from_secs(60), |e| matches!(e, Event::Message(x) if x.id == last)).await;
    let stats = a.node.stats().await.unwrap();
    assert!(stats.exercises <= lanpeer::exercises::PER_AUTHOR + 2, "{stats:?}");
    let view = a.node.problems().await.unwrap();
    assert_eq!(view[0].problem.id, p, "the teacher's problem stays");
    let p2 = a.node.post_problem("Still open", "a new problem is let in", false).await.unwrap();
    assert!(a.node.problems().await.unwrap().iter().any(|v| v.problem.id == p2));
    println!("{n} feedback of one member: the index holds {} items", stats.exercises);
    still_served(&mut a, &mut b, "index").await;
}

/// A member leaves a gap in its stream and sends far past it: what waits ahead of the gap is
/// bounded in count and bytes; once the gap is filled, the stream goes on.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn what_waits_past_a_gap_is_bounded() {
    let (_, mut a, mut b, mut m) = room_with_intruder().await;
    let _gap = m.envelope(Body::Chat { text: "the missing one".into() });
    m.skip_stream(1);
    // 12 MiB of answers ahead of the gap (each 12 KiB... as chats of 15 KiB).
    let ahead: Vec<_> =
        (0..800).map(|k| m.envelope(Body::Chat { text: format!("{k:04}{}", "z".repeat(15_000)) })).collect();
    for part in ahead.chunks(50) {
        m.stream(part).await;
    }
    tokio::time::sleep(Duration::from_millis(800)).await;
    let stats = a.node.stats().await.unwrap();
    assert!(stats.ahead.1 <= 4 << 20, "{stats:?}");
    assert!(stats.ahead.0 > 0, "{stats:?}");
    println!("past a gap: {} messages, {} bytes held", stats.ahead.0, stats.ahead.1);
    still_served(&mut a, &mut b, "gap").await;
    assert!(m.is_open());
}

/// A `Want` that names one message 4,096 times gets it once; one that names what was never
/// offered gets nothing.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_want_is_answered_once_per_message_and_only_for_what_was_offered() {
    let (_, mut a, mut b, mut m) = room_with_intruder().await;
    let p = a.node.post_problem("Offered", "x", false).await.unwrap();
    m.send(&[Frame::Want(vec![p; 4096])]).await;
    let mut got = 0;
    let end = tokio::time::Instant::now() + Duration::from_secs(2);
    while let Ok(Some(f)) = tokio::time::timeout_at(end, m.rx.recv()).await {
        if matches!(&f, Received::CatchUp { env, .. } if env.id == p) {
            got += 1;
        }
    }
    assert_eq!(got, 1, "one copy for 4096 asks");
    // Not offered: a private message, and one of nobody.
    let private = a.node.private_chat(b.node.id(), "only for b").await.unwrap();
    let nobody = MsgId { author: b.node.id(), seq: 999 };
    m.send(&[Frame::Want(vec![private, nobody])]).await;
    let end = tokio::time::Instant::now() + Duration::from_millis(800);
    while let Ok(Some(f)) = tokio::time::timeout_at(end, m.rx.recv()).await {
        assert!(!matches!(f, Received::CatchUp { .. }), "sent what was not offered: {f:?}");
    }
    still_served(&mut a, &mut b, "want").await;
}

/// Fresh keys join and leave, one after another: the members kept for store and forward stay
/// bounded, and a real member still joins.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fresh_keys_joining_cannot_grow_the_members_kept() {
    let (port, room) = unique_net();
    let mut a = start("a", port, &room).await;
    let n = 300;
    for _ in 0..n {
        let m = Member::join(a.node.listen_addr(), &room, "fresh", &[]).await;
        drop(m);
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
    let stats = a.node.stats().await.unwrap();
    assert!(stats.members <= 256 + stats.sessions, "{stats:?}");
    println!("{n} fresh keys joined: {} members kept", stats.members);
    let mut b = start("b", port, &room).await;
    wait_listed(&b, 1, T).await;
    still_served(&mut a, &mut b, "members").await;
}

/// A member gossips hosts that are not peers (a listener that counts connections), under many
/// made-up ids: each member dials such an address at most `gossip::HEARSAY_TRIES` times, then
/// bars it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn gossip_cannot_turn_the_room_against_a_host() {
    let (room, mut a, mut b, mut m) = room_with_intruder().await;
    let mut m2 = Member::join_as(m.keys.clone(), b.node.listen_addr(), &room, "Mallory", &[]).await;
    wait_listed(&b, 2, T).await;
    let target = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let at = target.local_addr().unwrap();
    let counter = tokio::spawn(async move {
        let mut n = 0u32;
        let end = tokio::time::Instant::now() + Duration::from_secs(6);
        // Accept and close at once: no handshake ever completes.
        while let Ok(Ok((s, _))) = tokio::time::timeout_at(end, target.accept()).await {
            drop(s);
            n += 1;
        }
        n
    });
    for round in 0..10u64 {
        let ads: Vec<PeerAd> = (0..16)
            .map(|k| PeerAd {
                id: lanpeer::PeerId(rand::random()),
                incarnation: round * 100 + k,
                tcp_port: at.port(),
                addrs: vec![at.ip()],
            })
            .collect();
        m.send(&[Frame::Peers(ads.clone())]).await;
        m2.send(&[Frame::Peers(ads)]).await;
        tokio::time::sleep(Duration::from_millis(400)).await;
    }
    let n = counter.await.unwrap();
    let bound = 2 * lanpeer::gossip::HEARSAY_TRIES as u32;
    println!("160 gossiped ids at one host, to 2 members: {n} connection attempts (bound {bound})");
    assert!(n <= bound, "{n} attempts toward a host that is not a peer");
    still_served(&mut a, &mut b, "gossip").await;
}

/// Beacons of a peer's id with a new incarnation, and farewells, forged on the discovery port:
/// they never end its live session (nobody sees it leave), and messages go on.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn forged_beacons_never_end_a_live_session() {
    use lanpeer::discovery::beacon::{Beacon, room_tag};
    let (port, room) = unique_net();
    let mut a = start("a", port, &room).await;
    let mut b = start("b", port, &room).await;
    wait_listed(&a, 1, T).await;
    let sock = tokio::net::UdpSocket::bind("127.0.0.1:0").await.unwrap();
    for k in 0..50u64 {
        let forged = Beacon {
            id: b.node.id(),
            incarnation: u64::MAX - k,
            tcp_port: 9,
            room_tag: room_tag(&room),
            farewell: k % 2 == 0,
        };
        let _ = sock.send_to(&forged.encode(), ("127.0.0.1", port)).await;
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert_none(&mut a, Duration::from_millis(1200), |e| matches!(e, Event::PeerLeft { .. })).await;
    assert_eq!(a.node.peers().await.unwrap().len(), 1);
    still_served(&mut a, &mut b, "beacons").await;
}

/// Large answers, many at once, into a peer with a journal: its turns stay within what the
/// journal takes whole, so every one is stored (no turn fails for its size, again and again).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_burst_of_large_messages_is_stored_whole() {
    let (port, room) = unique_net();
    let dir = std::env::temp_dir().join(format!("lanpeer-burst-{}-{}", std::process::id(), rand::random::<u32>()));
    let mut cfg = config("a", port, &room);
    cfg.data_dir = Some(dir.clone());
    let mut a = start_with(cfg).await;
    let mut b = start("b", port, &room).await;
    wait_listed(&a, 1, T).await;
    let mut m = Member::join(a.node.listen_addr(), &room, "Mallory", &[]).await;
    wait_listed(&a, 2, T).await;
    let p = m.envelope(Body::Problem { title: "big".into(), body: String::new(), private_answers: false });
    let big: Vec<_> = std::iter::once(p.clone())
        .chain((0..320).map(|k| {
            let text = format!("{k:04}{}", "b".repeat(lanpeer::limits::ANSWER - 8));
            m.envelope(Body::Answer { problem: p.id, text })
        }))
        .collect();
    let last = big.last().unwrap().id;
    // 80 MiB, more than the journal takes in one group: in writes of 10.
    for part in big.chunks(10) {
        m.stream(part).await;
    }
    wait_for(&mut a, Duration::from_secs(60), |e| matches!(e, Event::Message(x) if x.id == last)).await;
    assert_eq!(a.node.stats().await.unwrap().stored as usize, big.len());
    assert_none(&mut a, Duration::from_millis(300), |e| matches!(e, Event::Warning { .. })).await;
    still_served(&mut a, &mut b, "burst").await;
    a.node.shutdown().await;
    let _ = std::fs::remove_dir_all(dir);
}
