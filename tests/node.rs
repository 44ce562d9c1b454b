//! Several peers in one process, on loopback: discovery, the four kinds of message, private
//! chat, refusals, graceful leave and shutdown, and identity in the data dir.

mod common;

use std::time::Duration;

use common::*;
use lanpeer::{Body, Error, Event, LeaveReason};

const T: Duration = Duration::from_secs(5);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_peers_discover_and_exchange_every_kind_of_message() {
    let (port, room) = unique_net();
    let mut a = start("ada", port, &room).await;
    let mut b = start("bob", port, &room).await;
    let mut c = start("cy", port, &room).await;
    for p in [&a, &b, &c] {
        wait_listed(p, 2, T).await;
    }

    // Chat to everyone.
    let id = a.node.chat("hello class").await.unwrap();
    for p in [&mut b, &mut c] {
        match wait_for(p, T, |e| is_text(e, "hello class")).await {
            Event::Message(m) => {
                assert_eq!(m.id, id);
                assert_eq!(m.from_name, "ada");
                assert_eq!(m.to, None);
                assert!(!m.own);
            }
            _ => unreachable!(),
        }
    }
    // Own messages are reported too.
    wait_for(&mut a, T, |e| matches!(e, Event::Message(m) if m.own && m.id == id)).await;

    // Problem, answer (newlines kept), feedback.
    let pid = b.node.post_problem("Sum", "add two numbers\nprint it", false).await.unwrap();
    wait_for(&mut c, T, |e| is_text(e, "Sum")).await;
    wait_for(&mut a, T, |e| is_text(e, "Sum")).await;
    let code = "fn main() {\n    println!(\"{}\", 1 + 2);\n}\n";
    let aid = c.node.answer(pid, code).await.unwrap();
    match wait_for(&mut a, T, |e| is_text(e, code)).await {
        Event::Message(m) => assert_eq!(m.body, Body::Answer { problem: pid, text: code.into() }),
        _ => unreachable!(),
    }
    wait_for(&mut b, T, |e| is_text(e, code)).await;
    let fid = a.node.feedback(aid, "good, but name the numbers").await.unwrap();
    wait_for(&mut b, T, |e| is_text(e, "good, but name the numbers")).await;
    wait_for(&mut c, T, |e| is_text(e, "good, but name the numbers")).await;
    let view = b.node.problems().await.unwrap();
    assert_eq!(view.len(), 1);
    assert_eq!(view[0].answers[0].0.id, aid);
    assert_eq!(view[0].answers[0].1[0].id, fid);

    // Short forms resolve.
    assert_eq!(c.node.find_problem(&pid.short()).await.unwrap(), pid);
    assert_eq!(c.node.find_answer(&aid.short()).await.unwrap(), aid);
    assert_eq!(a.node.find_peer("BOB").await.unwrap(), b.node.id());

    // Private chat reaches its addressee only.
    a.node.private_chat(b.node.id(), "just for bob").await.unwrap();
    match wait_for(&mut b, T, |e| is_text(e, "just for bob")).await {
        Event::Message(m) => assert_eq!(m.to, Some(b.node.id())),
        _ => unreachable!(),
    }
    c.node.chat("marker").await.unwrap();
    // Sessions are ordered: once c has a's later chat, the private one would have come before.
    a.node.chat("after private").await.unwrap();
    let e = wait_for(&mut c, T, |e| is_text(e, "after private") || is_text(e, "just for bob")).await;
    assert!(is_text(&e, "after private"), "c must not get the private chat");

    // Refusals, each with a plain error.
    let fake = lanpeer::MsgId { author: a.node.id(), seq: 999_999 };
    assert!(matches!(c.node.answer(fake, "x").await, Err(Error::UnknownProblem(_))));
    assert!(matches!(c.node.feedback(fake, "x").await, Err(Error::UnknownAnswer(_))));
    assert!(matches!(c.node.chat("   ").await, Err(Error::BadText(_))));
    assert!(matches!(c.node.find_peer("nobody").await, Err(Error::UnknownPeer(_))));

    // Graceful leave: reported at once, with reason "left".
    let started = std::time::Instant::now();
    a.node.shutdown().await;
    for p in [&mut b, &mut c] {
        match wait_for(p, Duration::from_secs(1), |e| matches!(e, Event::PeerLeft { .. })).await {
            Event::PeerLeft { name, reason, .. } => assert_eq!((name.as_str(), reason), ("ada", LeaveReason::Left)),
            _ => unreachable!(),
        }
    }
    println!("leave reported after {:?}", started.elapsed());
    assert!(matches!(a.node.chat("x").await, Err(Error::Stopped)));
    b.node.shutdown().await;
    c.node.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn quiz_answers_go_to_the_author_only() {
    let (port, room) = unique_net();
    let mut t = start("teacher", port, &room).await;
    let mut s1 = start("s1", port, &room).await;
    let mut s2 = start("s2", port, &room).await;
    for p in [&t, &s1, &s2] {
        wait_listed(p, 2, T).await;
    }
    let q = t.node.post_problem("Quiz 1", "what is 2+2?", true).await.unwrap();
    wait_for(&mut s1, T, |e| is_text(e, "Quiz 1")).await;
    wait_for(&mut s2, T, |e| is_text(e, "Quiz 1")).await;
    let a = s1.node.answer(q, "four").await.unwrap();
    match wait_for(&mut t, T, |e| is_text(e, "four")).await {
        Event::Message(m) => assert_eq!((m.id, m.to), (a, Some(t.node.id()))),
        _ => unreachable!(),
    }
    s1.node.chat("sync").await.unwrap();
    let e = wait_for(&mut s2, T, |e| is_text(e, "sync") || is_text(e, "four")).await;
    assert!(is_text(&e, "sync"), "s2 must not see s1's quiz answer");
    for p in [t, s1, s2] {
        p.node.shutdown().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn other_rooms_are_not_seen() {
    let (port, room) = unique_net();
    let a = start("a", port, &room).await;
    let b = start("b", port, &format!("{room}-other")).await;
    let c = start("c", port, &room).await;
    wait_listed(&a, 1, T).await;
    wait_listed(&c, 1, T).await;
    tokio::time::sleep(Duration::from_millis(800)).await;
    assert_eq!(a.node.peers().await.unwrap().len(), 1);
    assert!(b.node.peers().await.unwrap().is_empty());
    for p in [a, b, c] {
        p.node.shutdown().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shutdown_ends_every_task_and_frees_the_ports() {
    let (port, room) = unique_net();
    let mut a = start("a", port, &room).await;
    let b = start("b", port, &room).await;
    wait_listed(&a, 1, T).await;
    let listen = b.node.listen_addr();
    let t0 = std::time::Instant::now();
    b.node.shutdown().await;
    let took = t0.elapsed();
    assert!(took < Duration::from_secs(3), "shutdown took {took:?}");
    // Its TCP port is closed: the accept task is gone.
    assert!(tokio::net::TcpStream::connect(listen).await.is_err(), "listener still open after shutdown");
    // Its event stream has ended: every sender (every task) is gone.
    let mut b = b;
    let end = tokio::time::timeout(T, async { while b.events.recv().await.is_some() {} }).await;
    assert!(end.is_ok(), "event stream did not end after shutdown");
    wait_for(&mut a, T, |e| matches!(e, Event::PeerLeft { reason: LeaveReason::Left, .. })).await;
    assert!(a.node.peers().await.unwrap().is_empty());
    a.node.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn data_dir_keeps_the_id_and_refuses_a_second_process() {
    let (port, room) = unique_net();
    let dir = std::env::temp_dir().join(format!("lanpeer-node-test-{}-{}", std::process::id(), rand::random::<u32>()));
    let mut cfg = config("a", port, &room);
    cfg.data_dir = Some(dir.clone());
    let a = start_with(cfg.clone()).await;
    let first_id = a.node.id();
    match lanpeer::Node::start(cfg.clone()).await {
        Err(Error::DataDirInUse(d)) => assert_eq!(d, dir),
        Err(e) => panic!("wrong error: {e}"),
        Ok(_) => panic!("a second node started on the same data dir"),
    }
    let mut watcher = start("w", port, &room).await;
    wait_listed(&watcher, 1, T).await;
    let m1 = a.node.chat("before restart").await.unwrap();
    a.node.shutdown().await;
    wait_for(&mut watcher, T, |e| matches!(e, Event::PeerLeft { .. })).await;
    let a = start_with(cfg).await;
    assert_eq!(a.node.id(), first_id, "the id survives a restart");
    match wait_for(&mut watcher, T, |e| matches!(e, Event::PeerJoined(_))).await {
        Event::PeerJoined(p) => assert_eq!(p.id, first_id),
        _ => unreachable!(),
    }
    let m2 = a.node.chat("after restart").await.unwrap();
    assert!(m2.seq > m1.seq, "message ids never repeat across restarts");
    a.node.shutdown().await;
    watcher.node.shutdown().await;
    std::fs::remove_dir_all(dir).unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn simultaneous_dials_settle_on_one_session_and_lose_nothing() {
    let (port, room) = unique_net();
    let mut peers = Vec::new();
    for i in 0..4 {
        let mut cfg = config(&format!("p{i}"), port, &room);
        // Everyone dials everyone at once: every pair makes two sessions and must keep one.
        cfg.dial_grace = Duration::ZERO;
        peers.push(start_with(cfg).await);
    }
    for p in &peers {
        wait_listed(p, 3, T).await;
    }
    const N: usize = 50;
    for p in &peers {
        for k in 0..N {
            p.node.chat(format!("{} #{k}", p.name)).await.unwrap();
        }
    }
    for p in &mut peers {
        let mut got = std::collections::HashMap::<String, Vec<usize>>::new();
        let want = 3 * N;
        let mut n = 0;
        tokio::time::timeout(T, async {
            while n < want {
                match p.events.recv().await.unwrap() {
                    Event::Message(m) if !m.own => {
                        if let Body::Chat { text } = m.body {
                            let (who, k) = text.split_once(" #").unwrap();
                            got.entry(who.to_string()).or_default().push(k.parse().unwrap());
                            n += 1;
                        }
                    }
                    Event::PeerLeft { name, .. } => panic!("{} saw {name} leave", p.name),
                    _ => {}
                }
            }
        })
        .await
        .unwrap_or_else(|_| panic!("{} got {n} of {want}", p.name));
        for (who, ks) in got {
            assert_eq!(ks, (0..N).collect::<Vec<_>>(), "{} got {who}'s chats out of order or twice", p.name);
        }
    }
    for p in peers {
        p.node.shutdown().await;
    }
}
