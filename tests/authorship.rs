//! Every message proves its author, on real sockets: a member of the room (a raw Noise client,
//! `common::member`) tries to post as the teacher, to take the teacher's next numbers, to slip in
//! catch-up nobody asked for, to relay an altered copy of the teacher's message and to replay a
//! message of another room. Each is refused, and the real author's messages still arrive, once
//! and in order. Catch-up from a third peer after the author left still verifies. And the
//! teacher is verified: by the room code, or on first use, against an impostor with the
//! teacher's name and role.

mod common;

use std::time::Duration;

use common::member::Member;
use common::*;
use lanpeer::authorship::{self, Batch};
use lanpeer::codec::{self, Received};
use lanpeer::crypto::StaticKeys;
use lanpeer::protocol::{Body, Envelope, Frame, Seal};
use lanpeer::trust::RoomCode;
use lanpeer::{Event, MsgId, PeerId, merkle};

const T: Duration = Duration::from_secs(5);

fn teacher_config(name: &str, port: u16, room: &str) -> lanpeer::Config {
    let mut c = config(name, port, room);
    c.props = vec![("role".into(), "teacher".into())];
    c
}

fn chat_env(author: PeerId, seq: u64, name: &str, text: &str) -> Envelope {
    Envelope {
        id: MsgId { author, seq },
        author_name: name.into(),
        sent_ms: 1_700_000_000_000,
        to: None,
        body: Body::Chat { text: text.into() },
        files: vec![],
    }
}

/// `env` signed by `keys` as a batch of one in `room`: its bytes and the seal that proves it.
fn signed(keys: &StaticKeys, room: &str, env: &Envelope) -> (bytes::Bytes, Seal) {
    let raw = codec::encode(env).unwrap();
    let leaf = merkle::leaf(&raw);
    let batch = authorship::sign_batch(keys, room, env.id.seq, &[leaf]);
    let seal = batch.seal(&[0], |_| Some(leaf)).unwrap();
    (raw, seal)
}

fn catchup(raw: &bytes::Bytes) -> bytes::Bytes {
    codec::catchup_frame(raw.clone()).unwrap().to_bytes()
}

fn seal_bytes(seal: Seal) -> bytes::Bytes {
    codec::encode(&Frame::Seal(seal)).unwrap()
}

/// The member offers `ids`; the peer's `Want` in answer (what it asked for).
async fn offer(m: &mut Member, ids: Vec<MsgId>) -> Vec<MsgId> {
    m.send(&[Frame::Offer(ids)]).await;
    match m.next_where(T, |f| matches!(f, Received::Other(Frame::Want(_)))).await {
        Received::Other(Frame::Want(w)) => w,
        _ => unreachable!(),
    }
}

fn texts_of(e: &Event) -> Option<String> {
    match e {
        Event::Message(m) => match &m.body {
            Body::Chat { text } => Some(text.clone()),
            Body::Problem { title, .. } => Some(title.clone()),
            _ => None,
        },
        _ => None,
    }
}

/// Every chat `peer` reports within `within`, in order.
async fn chats_within(peer: &mut Peer, within: Duration) -> Vec<String> {
    let mut got = Vec::new();
    let end = tokio::time::Instant::now() + within;
    while let Ok(Some(e)) = tokio::time::timeout_at(end, peer.events.recv()).await {
        got.extend(texts_of(&e));
    }
    got
}

async fn warned(peer: &mut Peer, about: &str) -> String {
    match wait_for(peer, T, |e| matches!(e, Event::Warning { message } if message.contains(about))).await {
        Event::Warning { message } => message,
        _ => unreachable!(),
    }
}

/// A member posts as the teacher through catch-up, and takes the teacher's next twenty numbers:
/// nothing of it is shown, and the teacher's real messages arrive once and in order.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_member_cannot_post_as_the_teacher_nor_take_its_numbers() {
    let (port, room) = unique_net();
    let teacher = start_with(teacher_config("Ms Rivera", port, &room)).await;
    let mut student = start("Sam", port, &room).await;
    wait_listed(&student, 1, T).await;
    let mut m = Member::join(student.node.listen_addr(), &room, "Mallory", &[]).await;
    wait_listed(&student, 2, T).await;

    teacher.node.chat("real 0").await.unwrap();
    let Event::Message(first) = wait_for(&mut student, T, |e| is_text(e, "real 0")).await else { unreachable!() };
    let t = teacher.node.id();
    let next: Vec<MsgId> = (1..=20).map(|k| MsgId { author: t, seq: first.id.seq + k }).collect();
    // The student asks for them: it lacks them (so the check below is of the seal, not of the offer).
    assert_eq!(offer(&mut m, next.clone()).await, next);
    let forged: Vec<Envelope> =
        next.iter().map(|id| chat_env(t, id.seq, "Ms Rivera", &format!("forged {}", id.seq))).collect();
    let mut frames: Vec<bytes::Bytes> = forged.iter().map(|e| catchup(&codec::encode(e).unwrap())).collect();
    // First the teacher's own key, with a signature the member cannot make.
    let leaves: Vec<merkle::Hash> = forged.iter().map(|e| merkle::leaf(&codec::encode(e).unwrap())).collect();
    let mine = authorship::sign_batch(&m.keys, &room, next[0].seq, &leaves);
    let fake = Batch { key: identity_of(teacher.node.listen_addr(), &room).await, author: t, ..mine.clone() };
    frames.push(seal_bytes(fake.seal(&(0..20).collect::<Vec<_>>(), |i| Some(leaves[i as usize])).unwrap()));
    m.send_bytes(frames).await;
    let message = warned(&mut student, "do not prove who wrote them").await;
    assert!(message.contains("127.0.0.1"), "{message}");
    // Then the member's own key (a true signature, of another author's messages).
    let mut frames: Vec<bytes::Bytes> = forged.iter().map(|e| catchup(&codec::encode(e).unwrap())).collect();
    frames.push(seal_bytes(mine.seal(&(0..20).collect::<Vec<_>>(), |i| Some(leaves[i as usize])).unwrap()));
    m.send_bytes(frames).await;

    for k in 1..=5 {
        teacher.node.chat(format!("real {k}")).await.unwrap();
    }
    let got = chats_within(&mut student, Duration::from_secs(2)).await;
    assert_eq!(got, (1..=5).map(|k| format!("real {k}")).collect::<Vec<_>>(), "once, in order, nothing forged");
    let history: Vec<String> =
        student.node.history(100).await.unwrap().iter().filter_map(|m| texts_of(&Event::Message(m.clone()))).collect();
    assert!(history.iter().all(|t| !t.starts_with("forged")), "{history:?}");
    assert!(m.is_open(), "the member's session stays (it may be a confused peer): only its messages are dropped");
    teacher.node.shutdown().await;
    student.node.shutdown().await;
}

/// A peer's identity key, as its hello carries it (read from a session with it).
async fn identity_of(addr: std::net::SocketAddr, room: &str) -> [u8; 32] {
    let mut probe = Member::join(addr, room, "probe", &[]).await;
    match probe.next_where(T, |f| matches!(f, Received::Other(Frame::Hello(_)))).await {
        Received::Other(Frame::Hello(h)) => h.identity,
        _ => unreachable!(),
    }
}

/// Catch-up nobody asked for is dropped, even when it is a true message of its sender; asked
/// for, the same message is taken.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn catch_up_is_taken_only_as_asked() {
    let (port, room) = unique_net();
    let mut b = start("b", port, &room).await;
    let mut m = Member::join(b.node.listen_addr(), &room, "Mallory", &[]).await;
    wait_listed(&b, 1, T).await;
    let env = chat_env(m.id, 1, "Mallory", "not asked for");
    let (raw, seal) = signed(&m.keys, &room, &env);
    m.send_bytes(vec![catchup(&raw), seal_bytes(seal.clone())]).await;
    assert_none(&mut b, Duration::from_millis(800), |e| is_text(e, "not asked for")).await;
    assert_eq!(offer(&mut m, vec![env.id]).await, vec![env.id]);
    m.send_bytes(vec![catchup(&raw), seal_bytes(seal)]).await;
    wait_for(&mut b, T, |e| is_text(e, "not asked for")).await;
    // Asked once, taken once: the same again is not asked for any more.
    let env2 = chat_env(m.id, 2, "Mallory", "second, not asked");
    let (raw2, seal2) = signed(&m.keys, &room, &env2);
    m.send_bytes(vec![catchup(&raw2), seal_bytes(seal2)]).await;
    assert_none(&mut b, Duration::from_millis(500), |e| is_text(e, "second, not asked")).await;
    b.node.shutdown().await;
}

/// A message signed for another room, and one altered after it was signed, do not verify; the
/// true one sent with them does.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn another_room_and_an_altered_field_do_not_verify() {
    let (port, room) = unique_net();
    let mut b = start("b", port, &room).await;
    let mut m = Member::join(b.node.listen_addr(), &room, "Mallory", &[]).await;
    wait_listed(&b, 1, T).await;
    let other = chat_env(m.id, 1, "Mallory", "from another room");
    let (raw_other, seal_other) = signed(&m.keys, "another room", &other);
    let orig = chat_env(m.id, 2, "Mallory", "original");
    let (_, seal_orig) = signed(&m.keys, &room, &orig);
    let altered = Envelope { author_name: "Ms Rivera".into(), ..orig.clone() };
    let good = chat_env(m.id, 3, "Mallory", "a true one");
    let (raw_good, seal_good) = signed(&m.keys, &room, &good);
    let ids = vec![other.id, orig.id, good.id];
    assert_eq!(offer(&mut m, ids.clone()).await, ids);
    m.send_bytes(vec![
        catchup(&raw_other),
        seal_bytes(seal_other),
        catchup(&codec::encode(&altered).unwrap()),
        seal_bytes(seal_orig),
        catchup(&raw_good),
        seal_bytes(seal_good),
    ])
    .await;
    // The refusals come first (their seals are checked first), then the true one.
    warned(&mut b, "do not prove who wrote them").await;
    wait_for(&mut b, T, |e| is_text(e, "a true one")).await;
    let shown: Vec<String> = b.node.history(10).await.unwrap().iter().map(|m| format!("{:?}", m.body)).collect();
    assert_eq!(shown.len(), 1, "{shown:?}");
    b.node.shutdown().await;
}

/// The teacher's real message, relayed by a member after the teacher left: altered, it is
/// refused; as it was, it verifies at the late joiner (whoever hands it over).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_relayed_message_of_the_teacher_verifies_and_an_altered_copy_does_not() {
    let (port, room) = unique_net();
    let teacher = start_with(teacher_config("Ms Rivera", port, &room)).await;
    let mut m = Member::join(teacher.node.listen_addr(), &room, "Mallory", &[]).await;
    wait_listed(&teacher, 1, T).await;
    let p = teacher.node.post_problem("Loops", "Print 1 to 10", false).await.unwrap();
    // The problem and its seal, as the teacher's stream carries them to the member.
    let (env, raw) = match m.next_where(T, |f| matches!(f, Received::Message { env, .. } if env.id == p)).await {
        Received::Message { env, raw, .. } => (env, raw),
        _ => unreachable!(),
    };
    let seal = match m.next_where(T, |f| matches!(f, Received::Other(Frame::Seal(_)))).await {
        Received::Other(Frame::Seal(s)) => s,
        _ => unreachable!(),
    };
    teacher.node.shutdown().await;

    let mut late = start("late", port, &room).await;
    let mut m2 = Member::join_as(m.keys.clone(), late.node.listen_addr(), &room, "Mallory", &[]).await;
    assert_eq!(offer(&mut m2, vec![p]).await, vec![p]);
    let mut altered = env.clone();
    altered.body = Body::Problem { title: "Loops".into(), body: "Print 1 to 11".into(), private_answers: false };
    m2.send_bytes(vec![catchup(&codec::encode(&altered).unwrap()), seal_bytes(seal.clone())]).await;
    warned(&mut late, "do not prove who wrote them").await;
    assert!(late.node.problems().await.unwrap().is_empty());
    m2.send_bytes(vec![catchup(&raw), seal_bytes(seal)]).await;
    let e = wait_for(&mut late, T, |e| matches!(e, Event::Message(x) if x.id == p)).await;
    let Event::Message(got) = e else { unreachable!() };
    assert_eq!(got.from_name, "Ms Rivera");
    assert_eq!(got.body, Body::Problem { title: "Loops".into(), body: "Print 1 to 10".into(), private_answers: false });
    late.node.shutdown().await;
}

/// Catch-up from a third peer after the author left: the problem, its answer and feedback
/// reach a late joiner from the student who stayed, and prove their authors there too (its
/// answer to the problem is then accepted).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn catch_up_from_a_third_peer_after_the_author_left() {
    let (port, room) = unique_net();
    let teacher = start_with(teacher_config("Ms Rivera", port, &room)).await;
    let mut stays = start("stays", port, &room).await;
    wait_listed(&stays, 1, T).await;
    let p = teacher.node.post_problem("Squares", "the first five", false).await.unwrap();
    wait_for(&mut stays, T, |e| matches!(e, Event::Message(m) if m.id == p)).await;
    let a = stays.node.answer(p, "1 4 9 16 25").await.unwrap();
    let mut t = teacher;
    wait_for(&mut t, T, |e| matches!(e, Event::Message(m) if m.id == a)).await;
    let f = t.node.feedback(a, "right").await.unwrap();
    wait_for(&mut stays, T, |e| matches!(e, Event::Message(m) if m.id == f)).await;
    t.node.shutdown().await;
    wait_listed(&stays, 0, T).await;

    let mut late = start("late", port, &room).await;
    for id in [p, a, f] {
        wait_for(&mut late, T, |e| matches!(e, Event::Message(m) if m.id == id)).await;
    }
    let view = late.node.problems().await.unwrap();
    assert_eq!(view.len(), 1);
    assert_eq!(view[0].answers[0].1.len(), 1);
    late.node.answer(p, "1, 4, 9, 16, 25").await.unwrap();
    late.node.shutdown().await;
    stays.node.shutdown().await;
}

/// Two members called Sam are told apart by the start of their ids, in the peer list and in
/// their messages.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_members_of_one_name_are_told_apart() {
    let (port, room) = unique_net();
    let mut seer = start("seer", port, &room).await;
    let sam1 = start("Sam", port, &room).await;
    let sam2 = start("Sam", port, &room).await;
    wait_listed(&seer, 2, T).await;
    let peers = seer.node.peers().await.unwrap();
    let mut labels: Vec<String> = peers.iter().map(|p| p.label.clone()).collect();
    labels.sort();
    let mut want = vec![format!("Sam ({})", sam1.node.id().short()), format!("Sam ({})", sam2.node.id().short())];
    want.sort();
    assert_eq!(labels, want);
    sam2.node.chat("which Sam?").await.unwrap();
    let Event::Message(m) = wait_for(&mut seer, T, |e| is_text(e, "which Sam?")).await else { unreachable!() };
    assert_eq!(m.from_label, format!("Sam ({})", sam2.node.id().short()));
    assert_eq!(m.from_name, "Sam");
    for p in [seer, sam1, sam2] {
        p.node.shutdown().await;
    }
}

/// The teacher against an impostor with its name and role: a student with the room code, and
/// one that met the teacher first, see the teacher verified and the impostor not (warned once);
/// a quiz says whose it is.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_teacher_is_verified_and_an_impostor_is_not() {
    let (port, room) = unique_net();
    let mut teacher = start_with(teacher_config("Ms Rivera", port, &room)).await;
    let code = RoomCode::of(&room, teacher.node.id());
    let mut with_code = config("with code", port, &room);
    with_code.teacher = Some(code.to_string().parse().unwrap());
    let mut coded = start_with(with_code).await;
    let mut first_use = start("first use", port, &room).await;
    wait_listed(&coded, 2, T).await;
    wait_listed(&first_use, 2, T).await;
    let impostor = start_with(teacher_config("Ms Rivera", port, &room)).await;
    wait_listed(&impostor, 3, T).await;
    for s in [&mut coded, &mut first_use] {
        warned(s, "is shown as unverified").await;
        wait_listed(s, 3, T).await;
        let peers = s.node.peers().await.unwrap();
        let of = |id| peers.iter().find(|p| p.id == id).unwrap().clone();
        assert_eq!(of(teacher.node.id()).verified, Some(true), "{}", s.name);
        assert_eq!(of(impostor.node.id()).verified, Some(false), "{}", s.name);
        let them = peers.iter().find(|p| p.name == "first use" || p.name == "with code").unwrap();
        assert_eq!(them.verified, None, "no claim, nothing to verify");
        let rivera = |id: PeerId| format!("Ms Rivera ({})", id.short());
        assert_eq!(of(impostor.node.id()).label, rivera(impostor.node.id()), "two of one name");
    }
    let fake = impostor.node.post_problem("Quiz 1", "hand it to me", true).await.unwrap();
    let real = teacher.node.post_problem("Quiz 2", "the real one", true).await.unwrap();
    for s in [&mut coded, &mut first_use] {
        // Two authors: in either order.
        let mut seen = std::collections::HashMap::new();
        while seen.len() < 2 {
            let Event::Message(m) =
                wait_for(s, T, |e| matches!(e, Event::Message(m) if m.id == fake || m.id == real)).await
            else {
                unreachable!()
            };
            assert_eq!(m.from_role.as_deref(), Some("teacher"));
            seen.insert(m.id, m.from_verified);
        }
        assert_eq!((seen[&fake], seen[&real]), (Some(false), Some(true)), "{}", s.name);
    }
    // Warned once: the impostor's beacons and sessions go on, no new warning.
    assert_none(&mut coded, Duration::from_millis(600), |e| matches!(e, Event::Warning { .. })).await;
    let _ = teacher.events.try_recv();
    for p in [teacher, coded, first_use, impostor] {
        p.node.shutdown().await;
    }
}
