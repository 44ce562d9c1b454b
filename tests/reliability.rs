//! Never lose an answer, in one process on loopback: messages for an absent peer are kept and
//! delivered when it comes back, a late joiner catches up on the exercises and recent chat, a
//! restarted peer neither loses nor replays, and flow control carries more than a window.

mod common;

use std::path::{Path, PathBuf};
use std::time::Duration;

use common::*;
use lanpeer::{Body, Event};

const T: Duration = Duration::from_secs(10);

fn data_dir(tag: &str) -> PathBuf {
    std::env::temp_dir().join(format!("lanpeer-rel-{}-{}-{tag}", std::process::id(), rand::random::<u32>()))
}

fn with_dir(name: &str, port: u16, room: &str, dir: &Path) -> lanpeer::Config {
    let mut c = config(name, port, room);
    c.data_dir = Some(dir.to_path_buf());
    c
}

/// Collect the texts of received (not own) messages until `n` arrived; panics on a duplicate.
async fn collect(p: &mut Peer, n: usize, within: Duration) -> Vec<String> {
    let mut got = Vec::new();
    let mut ids = std::collections::HashSet::new();
    let name = p.name.clone();
    tokio::time::timeout(within, async {
        while got.len() < n {
            match p.events.recv().await {
                Some(Event::Message(m)) if !m.own => {
                    assert!(ids.insert(m.id), "{name}: {} delivered twice", m.id);
                    got.push(match m.body {
                        Body::Chat { text } | Body::Answer { text, .. } | Body::Feedback { text, .. } => text,
                        Body::Problem { title, .. } => title,
                    });
                }
                Some(_) => {}
                None => panic!("{name}: events ended"),
            }
        }
    })
    .await
    .unwrap_or_else(|_| panic!("{name}: got {} of {n}: {got:?}", got.len()));
    got
}

/// `p` receives `want` (texts), once each and in this order, and then nothing more (no repeat by
/// catch-up or resend).
async fn exactly(p: &mut Peer, want: &[String]) {
    let got = collect(p, want.len(), T).await;
    assert_eq!(got, want, "everything, once, in the order sent");
    assert_none(p, Duration::from_millis(800), |e| matches!(e, Event::Message(m) if !m.own)).await;
}

/// Stop both peers and remove their data dirs.
async fn end(a: Peer, b: Peer, dirs: &[PathBuf]) {
    a.node.shutdown().await;
    b.node.shutdown().await;
    for d in dirs {
        let _ = std::fs::remove_dir_all(d);
    }
}

/// Peer `a` running and peer `b` away: both with a data dir, they met, then `b` stopped and `a`
/// saw it leave (so `b` is a member that messages are kept for).
struct Away {
    a: Peer,
    port: u16,
    room: String,
    da: PathBuf,
    db: PathBuf,
    b_id: lanpeer::PeerId,
}

async fn b_away() -> Away {
    let (port, room) = unique_net();
    let (da, db) = (data_dir("a"), data_dir("b"));
    let mut a = start_with(with_dir("a", port, &room, &da)).await;
    let b = start_with(with_dir("b", port, &room, &db)).await;
    wait_listed(&a, 1, T).await;
    let b_id = b.node.id();
    b.node.shutdown().await;
    wait_for(&mut a, T, |e| matches!(e, Event::PeerLeft { .. })).await;
    Away { a, port, room, da, db, b_id }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn messages_for_an_absent_peer_arrive_when_it_returns() {
    let Away { a, port, room, da, db, b_id } = b_away().await;

    // b is away: chats, a problem and a private message are kept for it.
    for k in 0..20 {
        a.node.chat(format!("while away {k}")).await.unwrap();
    }
    a.node.post_problem("Away problem", "solve me", false).await.unwrap();
    a.node.private_chat(b_id, "for b, privately").await.unwrap();

    let mut b = start_with(with_dir("b", port, &room, &db)).await;
    assert_eq!(b.node.id(), b_id);
    let mut want: Vec<String> = (0..20).map(|k| format!("while away {k}")).collect();
    want.push("Away problem".into());
    want.push("for b, privately".into());
    exactly(&mut b, &want).await;
    end(a, b, &[da, db]).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_late_joiner_catches_up_on_exercises_and_recent_chat() {
    let (port, room) = unique_net();
    let mut cfg = config("teacher", port, &room);
    cfg.catchup_chats = 3;
    let mut t = start_with(cfg).await;
    let mut cfg = config("student", port, &room);
    cfg.catchup_chats = 3;
    let mut s = start_with(cfg).await;
    wait_listed(&t, 1, T).await;
    for k in 0..6 {
        t.node.chat(format!("chat {k}")).await.unwrap();
    }
    let p = t.node.post_problem("Late problem", "body", false).await.unwrap();
    wait_for(&mut s, T, |e| is_text(e, "Late problem")).await;
    let a = s.node.answer(p, "my answer").await.unwrap();
    wait_for(&mut t, T, |e| is_text(e, "my answer")).await;
    t.node.feedback(a, "well done").await.unwrap();
    wait_for(&mut s, T, |e| is_text(e, "well done")).await;
    // A private chat is never part of anyone's catch-up.
    t.node.private_chat(s.node.id(), "secret").await.unwrap();
    wait_for(&mut s, T, |e| is_text(e, "secret")).await;

    // The teacher leaves; the newcomer must get everything from the student alone.
    t.node.shutdown().await;
    let mut late = start("late", port, &room).await;
    let mut got = collect(&mut late, 6, T).await;
    got.sort();
    let mut want: Vec<String> = ["Late problem", "my answer", "well done", "chat 3", "chat 4", "chat 5"]
        .iter()
        .map(|s| s.to_string())
        .collect();
    want.sort();
    assert_eq!(got, want);
    assert_none(&mut late, Duration::from_millis(800), |e| matches!(e, Event::Message(m) if !m.own)).await;
    let view = late.node.problems().await.unwrap();
    assert_eq!(view.len(), 1);
    assert_eq!(view[0].answers.len(), 1);
    assert_eq!(view[0].answers[0].1.len(), 1);
    s.node.shutdown().await;
    late.node.shutdown().await;
}

/// The sender restarts while its messages wait for an absent peer: its stream counters were not
/// written with those sends (only their outbox rows), and the messages it sends after the restart
/// must follow them, not take their numbers.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sender_restarted_with_messages_queued_numbers_on_after_them() {
    let Away { a, port, room, da, db, .. } = b_away().await;
    for k in 0..10 {
        a.node.chat(format!("before restart {k}")).await.unwrap();
    }
    a.node.shutdown().await;
    let a = start_with(with_dir("a", port, &room, &da)).await;
    for k in 0..10 {
        a.node.chat(format!("after restart {k}")).await.unwrap();
    }
    let mut b = start_with(with_dir("b", port, &room, &db)).await;
    let want: Vec<String> =
        (0..10).map(|k| format!("before restart {k}")).chain((0..10).map(|k| format!("after restart {k}"))).collect();
    exactly(&mut b, &want).await;
    end(a, b, &[da, db]).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restarted_peer_keeps_its_history_and_replays_nothing() {
    let (port, room) = unique_net();
    let db = data_dir("keep");
    let a = start("a", port, &room).await;
    let mut b = start_with(with_dir("b", port, &room, &db)).await;
    wait_listed(&a, 1, T).await;
    a.node.post_problem("P1", "body", false).await.unwrap();
    a.node.chat("hi b").await.unwrap();
    collect(&mut b, 2, T).await;
    b.node.shutdown().await;
    let mut b = start_with(with_dir("b", port, &room, &db)).await;
    wait_listed(&b, 1, T).await;
    assert_none(&mut b, Duration::from_millis(1000), |e| matches!(e, Event::Message(_))).await;
    let h = b.node.history(10).await.unwrap();
    assert_eq!(h.len(), 2);
    assert_eq!(h[1].body, Body::Chat { text: "hi b".into() });
    assert_eq!(b.node.problems().await.unwrap().len(), 1, "exercises are loaded from the history");
    a.node.shutdown().await;
    b.node.shutdown().await;
    let _ = std::fs::remove_dir_all(db);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn more_than_a_window_flows_in_order() {
    let (port, room) = unique_net();
    let mut cfg = config("a", port, &room);
    cfg.window = 64;
    let a = start_with(cfg).await;
    let mut b = start("b", port, &room).await;
    wait_listed(&a, 1, T).await;
    const N: usize = 3000;
    for k in 0..N {
        a.node.chat(format!("{k}")).await.unwrap();
    }
    let got = collect(&mut b, N, T).await;
    let nums: Vec<usize> = got.iter().map(|t| t.parse().unwrap()).collect();
    assert_eq!(nums, (0..N).collect::<Vec<_>>());
    a.node.shutdown().await;
    b.node.shutdown().await;
}

/// `got` is messages 0..n, each once, in order, each whole (`text(k)`: message k, which starts
/// with its 4-digit number).
/// A problem that `a` posts and `b` has: long texts (past a chat's 16 KiB) go as its answers.
async fn long_texts_problem(a: &Peer, b: &mut Peer) -> lanpeer::MsgId {
    let p = a.node.post_problem("Long texts", "answers as long as allowed", false).await.unwrap();
    wait_for(b, T, |e| matches!(e, Event::Message(m) if m.id == p)).await;
    p
}

fn numbered_in_order(got: &[String], n: usize, text: impl Fn(usize) -> String) {
    let heads: Vec<&str> = got.iter().map(|t| &t[..4]).collect();
    let want: Vec<String> = (0..n).map(|k| format!("{k:04}")).collect();
    assert_eq!(heads, want, "every message once, in order");
    assert!(got.iter().enumerate().all(|(k, t)| *t == text(k)), "every message whole");
}

/// A sender far ahead of a small window keeps what waits in memory only up to a bound (8 MiB),
/// and reads the rest back from the store: here the stream goes from memory, then from the store
/// (what did not fit), then from memory again behind it. Everything arrives once, in order, whole.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sender_far_ahead_of_the_window_sends_everything_in_order() {
    let (port, room) = unique_net();
    let mut cfg = config("a", port, &room);
    cfg.window = 16;
    // No resend within the test: a message skipped would stall the stream, not come late.
    cfg.resend_after = Duration::from_secs(300);
    let a = start_with(cfg).await;
    let mut b = start("b", port, &room).await;
    wait_listed(&a, 1, T).await;
    let problem = long_texts_problem(&a, &mut b).await;
    const N: usize = 400;
    let text = |k: usize| format!("{k:04} {}", "x".repeat(100_000));
    let submit = |range: std::ops::Range<usize>| {
        let msgs: Vec<_> = range.map(|k| (None, Body::Answer { problem, text: text(k) })).collect();
        let node = a.node.clone();
        async move {
            // At most 16 MiB of text in one batch.
            for part in msgs.chunks(100) {
                let results = node.submit_batch(part.to_vec()).await.unwrap().await.unwrap();
                assert!(results.iter().all(|r| r.is_ok()));
            }
        }
    };
    // 300 wait: about 80 fit in memory, the other 200 are in the store only.
    submit(0..300).await;
    // Once those in memory went, 100 more: kept in memory again, behind those in the store.
    let mut got = collect(&mut b, 110, Duration::from_secs(30)).await;
    submit(300..N).await;
    got.extend(collect(&mut b, N - 110, Duration::from_secs(30)).await);
    numbered_in_order(&got, N, text);
    a.node.shutdown().await;
    b.node.shutdown().await;
}

/// The receiver restarts while the sender holds frames for it in memory (past the window): they
/// are dropped with the session, and the new session sends the rest from the store, once each,
/// in order, after what the receiver had already stored.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_receiver_restarted_mid_stream_gets_the_rest_once_in_order() {
    let (port, room) = unique_net();
    let db = data_dir("mid");
    let mut cfg = config("a", port, &room);
    cfg.window = 16;
    let a = start_with(cfg).await;
    let mut b = start_with(with_dir("b", port, &room, &db)).await;
    wait_listed(&a, 1, T).await;
    let problem = long_texts_problem(&a, &mut b).await;
    const N: usize = 200;
    let text = |k: usize| format!("{k:04} {}", "y".repeat(50_000));
    let msgs = (0..N).map(|k| (None, Body::Answer { problem, text: text(k) })).collect();
    let results = a.node.submit_batch(msgs).await.unwrap().await.unwrap();
    assert!(results.iter().all(|r| r.is_ok()));
    let mut got = collect(&mut b, 40, T).await;
    b.node.shutdown().await;
    // What b reported before it stopped, up to the end of its events.
    while let Ok(Some(e)) = tokio::time::timeout(T, b.events.recv()).await {
        if let Event::Message(m) = e
            && !m.own
            && let Body::Answer { text, .. } = m.body
        {
            got.push(text);
        }
    }
    let mut b = start_with(with_dir("b", port, &room, &db)).await;
    let before = got.len();
    assert!(before < N, "b stopped before the end of the stream ({before} of {N})");
    got.extend(collect(&mut b, N - before, Duration::from_secs(30)).await);
    assert_none(&mut b, Duration::from_millis(800), |e| matches!(e, Event::Message(m) if !m.own)).await;
    numbered_in_order(&got, N, text);
    a.node.shutdown().await;
    b.node.shutdown().await;
    let _ = std::fs::remove_dir_all(db);
}

/// `submit_batch`: one result per message in order, a refused message does not stop the others,
/// and the peer gets the stored ones once, in order, each as its own event.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_batch_is_stored_and_delivered_in_order_with_refusals_in_place() {
    let (_, _, a, mut b) = two_met(T).await;
    let mut msgs: Vec<(Option<lanpeer::PeerId>, Body)> =
        (0..300).map(|k| (None, Body::Chat { text: format!("batch {k}") })).collect();
    msgs[7].1 = Body::Chat { text: "   ".into() };
    msgs[200].0 = Some(lanpeer::PeerId([0x42; 16]));
    let results = a.node.submit_batch(msgs).await.unwrap().await.unwrap();
    assert_eq!(results.len(), 300);
    for (k, r) in results.iter().enumerate() {
        match k {
            7 => assert!(matches!(r, Err(lanpeer::Error::BadText(_))), "{k}: {r:?}"),
            200 => assert!(matches!(r, Err(lanpeer::Error::UnknownPeer(_))), "{k}: {r:?}"),
            _ => assert!(r.is_ok(), "{k}: {r:?}"),
        }
    }
    let ids: Vec<_> = results.iter().filter_map(|r| r.as_ref().ok()).collect();
    assert!(ids.windows(2).all(|w| w[0].seq < w[1].seq), "ids in the order submitted");
    let got = collect(&mut b, 298, T).await;
    let want: Vec<String> = (0..300).filter(|k| *k != 7 && *k != 200).map(|k| format!("batch {k}")).collect();
    assert_eq!(got, want);
    let too_many = vec![(None, Body::Chat { text: "x".into() }); lanpeer::node::MAX_BATCH + 1];
    assert!(matches!(a.node.submit_batch(too_many).await, Err(lanpeer::Error::BadText(_))));
    a.node.shutdown().await;
    b.node.shutdown().await;
}

/// A peer whose history database was deleted (its identity kept) numbers its stream to us from 1
/// again: its new messages must not be taken for ones we have and dropped.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_peer_whose_history_was_deleted_is_heard_again() {
    let (port, room) = unique_net();
    let (da, db) = (data_dir("a"), data_dir("b"));
    let a = start_with(with_dir("a", port, &room, &da)).await;
    let mut b = start_with(with_dir("b", port, &room, &db)).await;
    wait_listed(&a, 1, T).await;
    for k in 0..5 {
        a.node.chat(format!("first life {k}")).await.unwrap();
    }
    collect(&mut b, 5, T).await;
    let a_id = a.node.id();
    a.node.shutdown().await;
    let _ = std::fs::remove_file(da.join("history.journal"));
    let a = start_with(with_dir("a", port, &room, &da)).await;
    assert_eq!(a.node.id(), a_id, "the same identity, a new history");
    wait_listed(&a, 1, T).await;
    a.node.chat("after the reset").await.unwrap();
    exactly(&mut b, &["after the reset".to_string()]).await;
    end(a, b, &[da, db]).await;
}

/// The texts (titles) of the messages `p` receives until it warns that its disk is full.
async fn until_warned(p: &mut Peer) -> Vec<String> {
    let mut got = Vec::new();
    let mut warned = false;
    tokio::time::timeout(T, async {
        while !warned {
            match p.events.recv().await {
                Some(Event::Message(m)) if !m.own => got.push(match m.body {
                    Body::Chat { text } => text,
                    Body::Problem { title, .. } => title,
                    other => panic!("unexpected {other:?}"),
                }),
                Some(Event::Warning { message }) => warned = message.contains("disk"),
                Some(_) => {}
                None => panic!("events ended"),
            }
        }
    })
    .await
    .expect("a warning that it cannot save (did the disk fill up?)");
    got
}

/// The receiver's disk is full: it acknowledges and reports nothing it could not store, says so
/// in one sentence, and once there is space again every message arrives, once and in order, and
/// is in its history.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_disk_loses_nothing() {
    let Some(disk) = TinyDisk::mount_or_skip(8 << 20, "a_full_disk_loses_nothing") else { return };
    let (port, room) = unique_net();
    let mut cfg = config("a", port, &room);
    cfg.resend_after = Duration::from_millis(300);
    let a = start_with(cfg).await;
    let mut b = start_with(with_dir("b", port, &room, &disk.path.join("b"))).await;
    wait_listed(&a, 1, T).await;
    disk.fill();
    // 200 messages of 2 kB: far more than the database's journal has room for.
    const N: usize = 200;
    let want: Vec<String> = (0..N).map(|k| format!("{k:04} {}", "x".repeat(2000))).collect();
    for t in &want {
        a.node.chat(t.clone()).await.unwrap();
    }
    let mut texts = until_warned(&mut b).await;
    assert!(texts.len() < N, "b reported messages it could not store");
    // Still full: nothing more is reported.
    tokio::time::sleep(Duration::from_millis(700)).await;
    disk.free();
    let rest = collect(&mut b, N - texts.len(), T).await;
    texts.extend(rest);
    assert_eq!(texts, want, "every message once, in order");
    assert_none(&mut b, Duration::from_millis(800), |e| matches!(e, Event::Message(m) if !m.own)).await;
    let h = b.node.history(N + 10).await.unwrap();
    let stored: Vec<&Body> = h.iter().map(|m| &m.body).collect();
    let want_bodies: Vec<Body> = want.iter().map(|t| Body::Chat { text: t.clone() }).collect();
    assert_eq!(stored, want_bodies.iter().collect::<Vec<_>>(), "all in b's history");
    a.node.shutdown().await;
    b.node.shutdown().await;
    drop(disk);
}

/// The sender's disk is full: a message it cannot store is refused and never leaves (a peer
/// never sees what its author has no record of), and what it sends afterwards arrives.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sender_with_a_full_disk_refuses_and_sends_nothing() {
    let Some(disk) = TinyDisk::mount_or_skip(8 << 20, "a_sender_with_a_full_disk_refuses_and_sends_nothing") else {
        return;
    };
    let (port, room) = unique_net();
    let a = start_with(with_dir("a", port, &room, &disk.path.join("a"))).await;
    let mut b = start("b", port, &room).await;
    wait_listed(&a, 1, T).await;
    disk.fill();
    let mut want = Vec::new();
    let mut refused = 0;
    for k in 0..200 {
        let text = format!("{k:04} {}", "x".repeat(2000));
        match a.node.chat(text.clone()).await {
            Ok(_) => want.push(text),
            Err(lanpeer::Error::Storage(_)) => refused += 1,
            Err(e) => panic!("unexpected {e}"),
        }
    }
    assert!(refused > 0, "no message was refused: did the disk fill up?");
    disk.free();
    a.node.chat("after the disk was freed").await.unwrap();
    want.push("after the disk was freed".into());
    exactly(&mut b, &want).await;
    a.node.shutdown().await;
    b.node.shutdown().await;
    drop(disk);
}

/// A late joiner's disk fills up while it catches up: what it could not store is stored once
/// there is space again, without waiting for a new session (the peers offer catch-up once per
/// session, and no stream resends it).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_disk_during_catch_up_loses_nothing() {
    let (port, room) = unique_net();
    let da = data_dir("a");
    let a = start_with(with_dir("a", port, &room, &da)).await;
    const N: usize = 40;
    let mut want: Vec<String> = (0..N).map(|k| format!("Problem {k:02}")).collect();
    // 40 problems of 12 kB: far more than the journal has room for.
    let body = "y".repeat(12_000);
    for t in &want {
        a.node.post_problem(t.clone(), body.clone(), false).await.unwrap();
    }
    a.node.shutdown().await;
    // b starts alone, its disk fills up, then a comes back and offers it the exercises.
    let Some(disk) = TinyDisk::mount_or_skip(8 << 20, "a_full_disk_during_catch_up_loses_nothing") else { return };
    let mut b = start_with(with_dir("b", port, &room, &disk.path.join("b"))).await;
    disk.fill();
    let a = start_with(with_dir("a", port, &room, &da)).await;
    let mut got = until_warned(&mut b).await;
    assert!(got.len() < N, "b reported catch-up it could not store");
    tokio::time::sleep(Duration::from_millis(700)).await;
    disk.free();
    let rest = collect(&mut b, N - got.len(), T).await;
    got.extend(rest);
    got.sort();
    want.sort();
    assert_eq!(got, want, "every problem, once");
    assert_none(&mut b, Duration::from_millis(800), |e| matches!(e, Event::Message(m) if !m.own)).await;
    assert_eq!(b.node.problems().await.unwrap().len(), N, "all in b's exercises");
    end(a, b, &[da]).await;
    drop(disk);
}

/// A late joiner asks for more catch-up than may wait for its socket at once (here 60 answers of
/// 200 KiB, 12 MB): it is sent at the pace the socket takes it, and every one arrives.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_large_catch_up_is_sent_at_the_pace_of_the_socket_and_arrives_whole() {
    let (port, room) = unique_net();
    let a = start("a", port, &room).await;
    let p = a.node.post_problem("Big", "long answers", false).await.unwrap();
    let text = |k: usize| format!("{k:04} {}", "z".repeat(200 * 1024));
    for k in 0..60 {
        a.node.answer(p, text(k)).await.unwrap();
    }
    let mut late = start("late", port, &room).await;
    let got = collect(&mut late, 61, Duration::from_secs(60)).await;
    let answers: Vec<String> = got.into_iter().filter(|t| t.len() > 1000).collect();
    assert_eq!(answers.len(), 60);
    let mut heads: Vec<&str> = answers.iter().map(|t| &t[..4]).collect();
    heads.sort();
    assert_eq!(heads, (0..60).map(|k| format!("{k:04}")).collect::<Vec<_>>());
    a.node.shutdown().await;
    late.node.shutdown().await;
}
