//! A member that asks for everything and reads nothing: the bytes queued for it stay bounded,
//! its session is cut, and the other members are served all along.
//!
//! Two `lanpeer --json` processes in a network namespace of their own with nothing but `lo`
//! ([`Lab::loopback`]): the victim, which has 300 answers of 200 KiB to offer (60 MB, `--catch-up
//! 300`; more than its 32 MiB bound of bytes waiting for one session), and a member who reads.
//! Then a raw member (tests' own Noise client on the crate's types, run in the namespace by a
//! thread that joined it with `setns`) joins, reads the victim's offer, asks for all of it four
//! times over, never reads again and pings every 200 ms so that it never falls silent.
//!
//! Checked: the victim cuts it (its writes fail; the victim's log says the peer is not reading);
//! the victim's RSS, sampled all along, grows by less than a bound far below what queuing every
//! request would take (4 x 60 MB); the member who reads gets a chat from the victim every 250 ms
//! within seconds, and the victim gets its chat, during the attack and after.
//!
//! Needs root and `ip` (iproute2): without them it says so in one line and passes. The lab kills
//! both processes and deletes the namespace, also on panic; the raw member stops after 40 s.
//! `cargo test --test netns_not_reading -- --nocapture` shows the figures.
#![cfg(target_os = "linux")]

mod support;

use std::net::SocketAddr;
use std::sync::mpsc;
use std::time::{Duration, Instant};

use bytes::BytesMut;
use lanpeer::PeerId;
use lanpeer::codec::{self, Received};
use lanpeer::crypto::{SessionKeys, StaticKeys};
use lanpeer::protocol::{Frame, Hello};
use lanpeer::transport::noise::{self, NoiseReader, NoiseWriter};
use support::netns::{Lab, in_netns, ms, need_root, rss_kib, run, text};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio_util::codec::{Decoder, Encoder};

/// Large chats the victim offers.
const BIG: usize = 300;
const BIG_LEN: usize = 200 * 1024;
/// How many times the raw member asks for all of them.
const WANTS: usize = 4;

/// What the raw member reports.
#[derive(Debug)]
enum Report {
    /// It asked for this many messages, this many times, and reads no more.
    Asked(usize),
    /// Its writes fail: the victim cut it, this long after it asked.
    Cut(Duration),
    /// Still not cut when it gave up.
    NotCut,
}

/// The raw member: join, read until the offer, ask for all of it `WANTS` times, then only ping.
async fn not_reading(victim: SocketAddr, room: String, report: mpsc::Sender<Report>) {
    let statics = StaticKeys::generate();
    let id: PeerId = statics.peer_id();
    let keys = SessionKeys { statics: statics.clone(), psk: None };
    let mut s = TcpStream::connect(victim).await.expect("connect to the victim");
    let opened = noise::open(&mut s, noise::Intro::Dialer(Some(id)), &keys).await.expect("handshake");
    let mut w = NoiseWriter::new(opened.ts.clone(), 1 << 20);
    let mut r = NoiseReader::new(opened.ts.clone(), 1 << 20);
    let hello = Hello {
        id,
        identity: statics.identity,
        incarnation: 1,
        name: "not-reading".into(),
        room,
        tcp_port: 9,
        props: vec![],
    };
    let mut out = BytesMut::from(&opened.unsent[..]);
    for f in [Frame::Hello(hello), Frame::Resume { done: 0, last: 0 }] {
        w.encode(codec::encode(&f).unwrap(), &mut out).unwrap();
    }
    s.write_all(&out).await.unwrap();
    // Read until the victim's offer of its catch-up set.
    let mut buf = opened.rest;
    let ids = loop {
        if let Some(f) = r.decode(&mut buf).expect("records decrypt") {
            if let Ok(Received::Other(Frame::Offer(ids))) = codec::decode_received(&f) {
                break ids;
            }
            continue;
        }
        let n = tokio::time::timeout(Duration::from_secs(10), s.read_buf(&mut buf)).await.expect("the offer").unwrap();
        assert!(n > 0, "the victim closed before its offer");
    };
    for _ in 0..WANTS {
        let mut rec = BytesMut::new();
        w.encode(codec::encode(&Frame::Want(ids.clone())).unwrap(), &mut rec).unwrap();
        s.write_all(&rec).await.unwrap();
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let asked = Instant::now();
    let _ = report.send(Report::Asked(ids.len()));
    // From now on it never reads; it pings so that it never falls silent.
    loop {
        let mut rec = BytesMut::new();
        w.encode(codec::encode(&Frame::Ping).unwrap(), &mut rec).unwrap();
        if s.write_all(&rec).await.is_err() {
            let _ = report.send(Report::Cut(asked.elapsed()));
            return;
        }
        if asked.elapsed() > Duration::from_secs(40) {
            let _ = report.send(Report::NotCut);
            return;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

#[test]
fn a_member_that_asks_for_everything_and_reads_nothing_is_cut_with_memory_bounded() {
    if let Err(why) = need_root().and_then(|()| run("ip", &["-V"]).map(|_| ())) {
        support::skip_note(&format!("netns not-reading test skipped: {why}"));
        return;
    }
    let started = Instant::now();
    let mut lab = Lab::loopback("lnr", &["victim", "reader"]).expect("a namespace with only lo");
    let port = (20_000 + support::netns::random16() % 40_000).to_string();
    let room = format!("nr-{}", lab.tag);
    for i in 0..2 {
        let (port, room) = (port.clone(), room.clone());
        lab.spawn_with(i, move |c| {
            c.args(["--iface", "lo", "--port", &port, "--room", &room, "--catch-up", &BIG.to_string()]);
        });
    }
    let t = Duration::from_secs(20);
    let mut listen = Vec::new();
    for i in 0..2 {
        let (_, r) = lab.hosts[i].expect(0, t, "ready", |v| text(v, "event") == "ready");
        lab.hosts[i].id = text(&r, "id").to_string();
        listen.push(text(&r, "listen").parse::<SocketAddr>().expect("listen address"));
    }
    let (vid, bid) = (lab.hosts[0].id.clone(), lab.hosts[1].id.clone());
    lab.hosts[0].expect(0, t, "victim lists the reader", |v| text(v, "event") == "peer_joined" && text(v, "id") == bid);
    lab.hosts[1].expect(0, t, "reader lists the victim", |v| text(v, "event") == "peer_joined" && text(v, "id") == vid);

    // ---- What the victim will offer: 300 answers of 200 KiB (a chat is at most 16 KiB).
    let t0 = Instant::now();
    let m = lab.hosts[0].mark();
    lab.hosts[0].send("/problem Big answers | each 200 KiB");
    let (_, p) = lab.hosts[0].expect(m, t, "its problem", |v| text(v, "event") == "problem");
    let pid = text(&p, "id").to_string();
    let m = lab.hosts[1].mark();
    let body = "x".repeat(BIG_LEN);
    for i in 0..BIG {
        lab.hosts[0].send(&format!("/answer {pid} big {i:03} {body}"));
    }
    let last = format!("big {:03} ", BIG - 1);
    lab.hosts[1].expect(m, Duration::from_secs(60), "the last large answer", |v| {
        text(v, "event") == "answer" && text(v, "text").starts_with(&last)
    });
    println!("setup: {BIG} answers of {} KiB posted and delivered in {}", BIG_LEN / 1024, ms(t0.elapsed()));
    let pid = lab.hosts[0].child.as_ref().expect("running").id();
    std::thread::sleep(Duration::from_millis(500));
    let rss_before = rss_kib(pid).expect("VmRSS");

    // ---- The raw member.
    let (tx, rx) = mpsc::channel();
    let (victim, room_) = (listen[0], room.clone());
    let raw = in_netns(&lab.switch, move || {
        let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("runtime");
        rt.block_on(not_reading(victim, room_, tx));
    });
    let asked = match rx.recv_timeout(Duration::from_secs(20)).expect("the raw member joins and asks") {
        Report::Asked(n) => n,
        other => panic!("{other:?}"),
    };
    println!("the raw member asked {WANTS} times for the {asked} messages offered and reads no more");
    assert!(asked >= BIG, "the offer holds the large chats");

    // ---- Meanwhile: a chat every 250 ms from the victim to the reader, the RSS sampled.
    let mut rss_max = rss_before;
    let mut worst = Duration::ZERO;
    let mut ticks = 0;
    let mut cut = None;
    let attack = Instant::now();
    while cut.is_none() && attack.elapsed() < Duration::from_secs(45) {
        let m = lab.hosts[1].mark();
        let tick = format!("tick {ticks}");
        let sent = lab.hosts[0].send(&tick);
        let (got, _) = lab.hosts[1]
            .expect(m, Duration::from_secs(5), "a tick", |v| text(v, "event") == "chat" && text(v, "text") == tick);
        worst = worst.max(got.saturating_duration_since(sent));
        ticks += 1;
        rss_max = rss_max.max(rss_kib(pid).unwrap_or(0));
        if ticks == 8 {
            let m = lab.hosts[0].mark();
            let sent = lab.hosts[1].send("and the reader speaks");
            let (got, _) = lab.hosts[0].expect(m, Duration::from_secs(5), "the reader's chat", |v| {
                text(v, "event") == "chat" && text(v, "text") == "and the reader speaks"
            });
            worst = worst.max(got.saturating_duration_since(sent));
        }
        match rx.try_recv() {
            Ok(Report::Cut(after)) => cut = Some(after),
            Ok(r) => panic!("{r:?}"),
            Err(_) => std::thread::sleep(Duration::from_millis(250)),
        }
    }
    let cut = cut.unwrap_or_else(|| match rx.recv_timeout(Duration::from_secs(5)) {
        Ok(Report::Cut(after)) => after,
        other => panic!("the victim did not cut the member that does not read: {other:?}"),
    });
    raw.join().expect("the raw member ends");
    // A few more ticks after the cut.
    for i in 0..4 {
        let m = lab.hosts[1].mark();
        let tick = format!("after {i}");
        let sent = lab.hosts[0].send(&tick);
        let (got, _) = lab.hosts[1].expect(m, Duration::from_secs(5), "a tick after the cut", |v| {
            text(v, "event") == "chat" && text(v, "text") == tick
        });
        worst = worst.max(got.saturating_duration_since(sent));
        rss_max = rss_max.max(rss_kib(pid).unwrap_or(0));
    }
    let rss_after = rss_kib(pid).unwrap();
    let grew = rss_max.saturating_sub(rss_before);
    println!(
        "cut {} after it asked; victim RSS {} MiB before, {} MiB at most during, {} MiB after \
         (grew {} MiB at most); {ticks} ticks and a chat back, the slowest {}",
        ms(cut),
        rss_before / 1024,
        rss_max / 1024,
        rss_after / 1024,
        grew / 1024,
        ms(worst)
    );
    let log = std::fs::read_to_string(lab.hosts[0].stderr_path()).unwrap_or_default();
    assert!(
        log.lines().any(|l| l.contains("peer is not reading; closing its session")),
        "the victim says why it cut the session:\n{}",
        lab.hosts[0].stderr_tail(30)
    );
    assert!(cut < Duration::from_secs(20), "cut within seconds, not {}", ms(cut));
    // Queuing every request would take 4 x 60 MB; the bound is 32 MiB of bytes waiting.
    assert!(grew < 96 * 1024, "the victim's memory grew by {} MiB", grew / 1024);
    assert!(worst < Duration::from_secs(3), "the reader is served all along (slowest {})", ms(worst));
    assert!(lab.hosts[0].running() && lab.hosts[1].running());
    println!("netns not-reading test: {} in all", ms(started.elapsed()));
}
