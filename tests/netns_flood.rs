//! A member floods a peer with handshaken sessions under fresh keys, over a real (virtual) LAN;
//! the peer keeps at most its bounds, and a real member still joins and chats.
//!
//! ```text
//!   <tag>sw : bridge br0
//!   <tag>h1 : victim, `lanpeer --json`        10.78.0.11/24, fd00:78::11/64
//!   <tag>h2 : flooder (this test's own code)  10.78.0.12/24 and 16 more IPv4 addresses,
//!             281 addresses of fd00:78::/64
//!   <tag>h3 : member, `lanpeer --json`        10.78.0.13/24 (started during the flood)
//! ```
//!
//! The flooder is Rust code of this test (tests/common/member.rs: the Noise handshake and a hello
//! by hand, on the crate's own types) run in h2's namespace by a thread that joined it with
//! `setns`. Each session it holds pings every second and reads whatever comes. In order:
//! a "friend" key meets the victim and leaves (the victim knows its id from then on); 32 fresh
//! keys from one IPv4 address; 24 from one IPv6 address; one from each of 280 more addresses of
//! the same /64; 20 from each of 15 more IPv4 addresses (the open pool is then full); 5 from one
//! more address; the friend again, from the first address (whose bound is used up).
//!
//! Checked: what the flooder holds and what the victim's kernel shows established (at most the
//! bound per address and per /64, the open pool full and no more); the friend gets in (the known
//! reserve); the member, fresh, whose own dial would find no place, is dialed by the victim (the
//! dials' reserve), lists it and chats both ways within seconds; the victim warns of the flood;
//! its RSS and CPU before, during and while holding are printed and bounded.
//!
//! Needs root and `ip` (iproute2): without them it says so in one line and passes. The lab
//! ([`support::netns::Lab`]) kills every child and deletes every namespace, also on panic; the
//! flooder stops when told or after 60 s. `cargo test --test netns_flood -- --nocapture` shows
//! the figures.
#![cfg(target_os = "linux")]

mod common;
mod support;

use std::collections::HashMap;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use common::member::{Join, Member};
use lanpeer::codec::Received;
use lanpeer::crypto::StaticKeys;
use lanpeer::protocol::Frame;
use support::netns::{Lab, cpu_time, in_netns, ip, lab_or_skip, ms, need_root, rss_kib, run, text};
use tokio_util::sync::CancellationToken;

const ROOM: &str = "flood";
/// The IPv6 /64 of the LAN.
const NET6: &str = "fd00:78::";

/// One step of the flood, as the flooder saw it.
#[derive(Debug, Clone)]
struct Step {
    name: &'static str,
    tried: usize,
    /// Sessions of this step that came up (the victim's hello arrived) and are still open.
    held: Arc<AtomicUsize>,
    took: Duration,
}

impl Step {
    fn held(&self) -> usize {
        self.held.load(Ordering::Relaxed)
    }
}

/// Where the flooder connects from, step by step.
struct Plan {
    victim4: SocketAddr,
    victim6: SocketAddr,
    main4: IpAddr,
    aliases4: Vec<IpAddr>,
    v6: Vec<IpAddr>,
}

/// One connection with a fresh key (or `keys`): Some(member) once the victim's hello arrived.
async fn attempt(victim: SocketAddr, from: IpAddr, keys: StaticKeys) -> Option<Member> {
    let how = Join { room: ROOM, name: "flood", props: &[], from: Some(from), claim: true };
    let mut m = tokio::time::timeout(Duration::from_secs(10), Member::try_join(keys, victim, how)).await.ok()?.ok()?;
    match tokio::time::timeout(Duration::from_secs(10), m.rx.recv()).await {
        Ok(Some(Received::Other(Frame::Hello(_)))) => Some(m),
        _ => None,
    }
}

/// Hold `m`: ping every second and drop what it receives, until `stop` or the victim closes it.
fn hold(mut m: Member, held: Arc<AtomicUsize>, stop: CancellationToken) {
    held.fetch_add(1, Ordering::Relaxed);
    tokio::spawn(async move {
        loop {
            while m.rx.try_recv().is_ok() {}
            if !m.is_open() {
                held.fetch_sub(1, Ordering::Relaxed);
                return;
            }
            m.send(&[Frame::Ping]).await;
            tokio::select! {
                _ = stop.cancelled() => return,
                _ = tokio::time::sleep(Duration::from_secs(1)) => {}
            }
        }
    });
}

/// Run `tries` connections, at most 16 at a time, each from `from(i)` with a fresh key; hold the
/// sessions that come up.
async fn step(
    name: &'static str,
    victim: SocketAddr,
    tries: usize,
    from: impl Fn(usize) -> IpAddr,
    stop: &CancellationToken,
) -> Step {
    let t0 = Instant::now();
    let held = Arc::new(AtomicUsize::new(0));
    let all: Vec<usize> = (0..tries).collect();
    for chunk in all.chunks(16) {
        let got =
            futures_util::future::join_all(chunk.iter().map(|&i| attempt(victim, from(i), StaticKeys::generate())));
        for m in got.await.into_iter().flatten() {
            hold(m, held.clone(), stop.clone());
        }
    }
    Step { name, tried: tries, held, took: t0.elapsed() }
}

/// The flood, in h2's namespace: reports each step on `report`; holds everything until `stop`
/// (or 60 s).
async fn flood(plan: Plan, report: std::sync::mpsc::Sender<Step>, stop: CancellationToken) {
    let send = |s: &Step| {
        let _ = report.send(s.clone());
    };
    // A friend meets the victim, then leaves: its id is known from now on.
    let friend = StaticKeys::generate();
    let t0 = Instant::now();
    let met = attempt(plan.victim4, plan.main4, friend.clone()).await;
    let first = Step { name: "friend meets the victim", tried: 1, held: Arc::default(), took: t0.elapsed() };
    first.held.store(usize::from(met.is_some()), Ordering::Relaxed);
    send(&first);
    drop(met);
    tokio::time::sleep(Duration::from_millis(300)).await;

    let (v4, v6) = (plan.victim4, plan.victim6);
    send(&step("one IPv4 address", v4, 32, |_| plan.main4, &stop).await);
    send(&step("one IPv6 address", v6, 24, |_| plan.v6[0], &stop).await);
    send(&step("280 more addresses of the /64", v6, 280, |i| plan.v6[1 + i], &stop).await);
    send(&step("15 more IPv4 addresses", v4, 15 * 20, |i| plan.aliases4[i / 20], &stop).await);
    send(&step("one more IPv4 address", v4, 5, |_| plan.aliases4[15], &stop).await);
    // The friend again, from the first address, whose bound is used up.
    let t0 = Instant::now();
    let back = Step { name: "the friend again", tried: 1, held: Arc::default(), took: Duration::ZERO };
    if let Some(m) = attempt(v4, plan.main4, friend).await {
        hold(m, back.held.clone(), stop.clone());
    }
    send(&Step { took: t0.elapsed(), ..back });
    tokio::select! {
        _ = stop.cancelled() => {}
        _ = tokio::time::sleep(Duration::from_secs(60)) => {}
    }
}

/// Established TCP connections to local port `port` in `pid`'s namespace, by remote address.
fn established(pid: u32, port: u16) -> HashMap<IpAddr, usize> {
    let mut by = HashMap::new();
    for file in ["tcp", "tcp6"] {
        let table = std::fs::read_to_string(format!("/proc/{pid}/net/{file}")).unwrap_or_default();
        for line in table.lines().skip(1) {
            let f: Vec<&str> = line.split_whitespace().collect();
            if f.len() < 4 || f[3] != "01" {
                continue;
            }
            let (Some(local), Some(remote)) = (proc_addr(f[1]), proc_addr(f[2])) else { continue };
            if local.port() == port {
                *by.entry(remote.ip()).or_insert(0) += 1;
            }
        }
    }
    by
}

/// An address of /proc/net/tcp{,6}: hex words in host (little-endian) order, then the port.
fn proc_addr(s: &str) -> Option<SocketAddr> {
    let (a, p) = s.split_once(':')?;
    let port = u16::from_str_radix(p, 16).ok()?;
    let word = |i: usize| u32::from_str_radix(a.get(i * 8..i * 8 + 8)?, 16).ok().map(u32::to_le_bytes);
    let ip = match a.len() {
        8 => IpAddr::from(word(0)?),
        32 => {
            let mut b = [0u8; 16];
            for i in 0..4 {
                b[i * 4..i * 4 + 4].copy_from_slice(&word(i)?);
            }
            let v6 = Ipv6Addr::from(b);
            v6.to_ipv4_mapped().map_or(IpAddr::V6(v6), IpAddr::V4)
        }
        _ => return None,
    };
    Some(SocketAddr::new(ip, port))
}

fn in_net6(ip: &IpAddr) -> bool {
    matches!(ip, IpAddr::V6(a) if a.segments()[..4] == [0xfd00, 0x78, 0, 0])
}

/// `ip -n NS -batch FILE` with `lines`.
fn ip_batch(lab: &Lab, ns: &str, lines: &[String]) -> Result<(), String> {
    let file = lab.dir.join(format!("{ns}.batch"));
    std::fs::write(&file, lines.join("\n") + "\n").map_err(|e| e.to_string())?;
    ip(&["-n", ns, "-batch", &file.to_string_lossy()]).map(|_| ())
}

#[test]
fn a_flood_of_fresh_keys_is_held_to_its_bounds_and_a_real_member_still_joins() {
    if let Err(why) = need_root().and_then(|()| run("ip", &["-V"]).map(|_| ())) {
        support::skip_note(&format!("netns flood test skipped: {why}"));
        return;
    }
    let started = Instant::now();
    let defaults = lanpeer::Config::default();
    let (per_ip, per_net) = (defaults.max_inbound_per_ip, defaults.max_inbound_per_prefix);
    let open = defaults.max_connections - defaults.dial_reserve - defaults.known_reserve;
    assert!(per_ip < 32 && per_net < 300 && per_ip + per_net + 15 * per_ip >= open, "the plan fills the pool");

    let lab = Lab::new("lfl", [10, 78, 0], &["victim", "flooder", "member"]);
    let Some(mut lab) = lab_or_skip(lab, "netns flood test", "root and iproute2 (`ip netns`)") else { return };
    let (victim_ns, flood_ns) = (lab.hosts[0].ns.clone(), lab.hosts[1].ns.clone());
    let main4 = lab.hosts[1].ip;
    let aliases4: Vec<IpAddr> = (0..16).map(|k| IpAddr::V4(Ipv4Addr::new(10, 78, 0, 100 + k))).collect();
    let v6: Vec<IpAddr> = (1..=281u16).map(|i| format!("{NET6}1:{i:x}").parse().unwrap()).collect();
    let victim6: Ipv6Addr = format!("{NET6}11").parse().unwrap();
    ip(&["-n", &victim_ns, "-6", "addr", "add", &format!("{victim6}/64"), "dev", "eth0", "nodad"]).unwrap();
    let mut lines: Vec<String> = v6.iter().map(|a| format!("addr add {a}/64 dev eth0 nodad")).collect();
    lines.extend(aliases4.iter().map(|a| format!("addr add {a}/24 dev eth0")));
    ip_batch(&lab, &flood_ns, &lines).unwrap();

    // ---- The victim, alone in its room.
    lab.spawn_with(0, |c| {
        c.args(["--room", ROOM]);
    });
    let (_, ready) = lab.hosts[0].expect(0, Duration::from_secs(15), "ready event", |v| text(v, "event") == "ready");
    let victim4: SocketAddr = text(&ready, "listen").parse().expect("listen address");
    lab.hosts[0].id = text(&ready, "id").to_string();
    let pid = lab.hosts[0].child.as_ref().expect("running").id();
    std::thread::sleep(Duration::from_secs(1));
    let rss_before = rss_kib(pid).expect("VmRSS");
    let cpu_before = cpu_time(pid).expect("CPU time");

    // ---- The flood.
    let first_v6 = v6[0];
    let plan = Plan { victim4, victim6: SocketAddr::new(victim6.into(), victim4.port()), main4, aliases4, v6 };
    let (tx, rx) = std::sync::mpsc::channel();
    let stop = CancellationToken::new();
    let stop_flood = stop.clone();
    let flooder = in_netns(&flood_ns, move || {
        let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("runtime");
        rt.block_on(flood(plan, tx, stop_flood));
    });
    // Stops the flooder whatever happens below (before the lab, dropped later, kills the rest).
    struct StopOnDrop(CancellationToken);
    impl Drop for StopOnDrop {
        fn drop(&mut self) {
            self.0.cancel();
        }
    }
    let _stop_guard = StopOnDrop(stop.clone());
    let mut steps = Vec::new();
    let flood_t0 = Instant::now();
    while steps.len() < 7 {
        let s = rx.recv_timeout(Duration::from_secs(60)).expect("the flooder reports each step within 60 s");
        println!("flood: {:<32} {:>4} tried, {:>4} held, {}", s.name, s.tried, s.held(), ms(s.took));
        steps.push(s);
    }
    let flood_took = flood_t0.elapsed();
    let cpu_flood = cpu_time(pid).unwrap() - cpu_before;
    // The sessions settle (a refusal after the hello would close one now).
    std::thread::sleep(Duration::from_secs(1));
    let rss_during = rss_kib(pid).unwrap();
    let held: Vec<usize> = steps.iter().map(Step::held).collect();
    let kernel = established(pid, victim4.port());
    let from_main = kernel.get(&main4).copied().unwrap_or(0);
    let from_net6: usize = kernel.iter().filter(|(a, _)| in_net6(a)).map(|(_, n)| n).sum();
    let from_v6_first = kernel.get(&first_v6).copied().unwrap_or(0);
    let from_last = kernel.get(&IpAddr::V4(Ipv4Addr::new(10, 78, 0, 115))).copied().unwrap_or(0);
    let total: usize = kernel.values().sum();
    println!(
        "victim's kernel: {total} sessions established; {from_main} from {main4} (the friend's among them), \
         {from_v6_first} from {first_v6}, {from_net6} from {NET6}/64, {from_last} from 10.78.0.115"
    );

    assert_eq!(held[0], 1, "the friend meets the victim");
    assert_eq!(held[1], per_ip, "one IPv4 address: at most {per_ip} sessions");
    assert_eq!(held[2], per_ip, "one IPv6 address: at most {per_ip} sessions");
    assert_eq!(held[2] + held[3], per_net, "one /64: at most {per_net} sessions");
    assert_eq!(held[4], 15 * per_ip, "15 addresses of {per_ip} each");
    assert_eq!(held[5], 0, "the open pool is full: a fresh key from a new address is refused");
    assert_eq!(held[6], 1, "the friend gets in, from an address whose bound is used up: the known reserve");
    assert_eq!(from_main, per_ip + 1, "the victim's kernel: {per_ip} strangers and the friend from {main4}");
    assert_eq!(from_v6_first, per_ip);
    assert_eq!(from_net6, per_net);
    assert_eq!(from_last, 0);
    assert!(kernel.iter().filter(|(a, _)| a.is_ipv4() && **a != main4).all(|(_, n)| *n <= per_ip), "{kernel:?}");
    assert_eq!(total, open + 1, "the open pool and the friend");

    // ---- A real member joins during the flood: fresh, so its own dial finds no place; the
    // victim's dial, from its reserve, brings it in.
    let join_t0 = Instant::now();
    lab.spawn_with(2, |c| {
        c.args(["--room", ROOM]);
    });
    let (_, ready) =
        lab.hosts[2].expect(0, Duration::from_secs(15), "member's ready event", |v| text(v, "event") == "ready");
    lab.hosts[2].id = text(&ready, "id").to_string();
    let (vid, mid) = (lab.hosts[0].id.clone(), lab.hosts[2].id.clone());
    let (t_m, _) = lab.hosts[2].expect(0, Duration::from_secs(15), "member lists the victim", |v| {
        text(v, "event") == "peer_joined" && text(v, "id") == vid
    });
    let (t_v, _) = lab.hosts[0].expect(0, Duration::from_secs(15), "victim lists the member", |v| {
        text(v, "event") == "peer_joined" && text(v, "id") == mid
    });
    let joined = t_m.max(t_v).saturating_duration_since(join_t0);
    let chat = |lab: &mut Lab, from: usize, to: usize, text_: &str| {
        let m = lab.hosts[to].mark();
        let t0 = lab.hosts[from].send(text_);
        let (t, _) = lab.hosts[to]
            .expect(m, Duration::from_secs(10), "the chat", |v| text(v, "event") == "chat" && text(v, "text") == text_);
        t.saturating_duration_since(t0)
    };
    let to_victim = chat(&mut lab, 2, 0, "hello victim, from a real member");
    let to_member = chat(&mut lab, 0, 2, "hello member, from the victim");
    println!(
        "member: listed both ways {} after it started; chats {} (to the victim) and {} (back)",
        ms(joined),
        ms(to_victim),
        ms(to_member)
    );
    assert!(joined < Duration::from_secs(10), "the member joins within seconds: {}", ms(joined));
    assert!(to_victim < Duration::from_secs(5) && to_member < Duration::from_secs(5));
    let log = std::fs::read_to_string(lab.hosts[0].stderr_path()).unwrap_or_default();
    let short = &mid[..8];
    assert!(
        log.lines().any(|l| l.contains("session up") && l.contains(short) && l.contains("dialer_is_me=true")),
        "the victim dialed the member (its dial has a reserve); the victim's log:\n{}",
        lab.hosts[0].stderr_tail(30)
    );
    let warned = lab.hosts[0].all(0, |v| text(v, "event") == "warning" && text(v, "message").contains("too many"));
    assert!(!warned.is_empty(), "the victim warns of the flood");
    println!("victim warned: {}", text(&warned[0], "message"));

    // ---- Holding: what the held sessions cost the victim, CPU and memory.
    let (cpu0, t0) = (cpu_time(pid).unwrap(), Instant::now());
    std::thread::sleep(Duration::from_secs(3));
    let holding = (cpu_time(pid).unwrap() - cpu0).as_secs_f64() / t0.elapsed().as_secs_f64();
    let rss_holding = rss_kib(pid).unwrap();
    println!(
        "victim: RSS {} MiB before, {} MiB with {total} sessions held, {} MiB after 3 s more; \
         CPU {:.1} s for the flood ({} in all), {:.0}% of a core while holding",
        rss_before / 1024,
        rss_during / 1024,
        rss_holding / 1024,
        cpu_flood.as_secs_f64(),
        ms(flood_took),
        holding * 100.0
    );
    assert!(rss_holding < rss_before + 256 * 1024, "the victim's memory stays bounded");
    assert!(holding < 0.6, "holding {total} idle sessions costs the victim little CPU");
    assert!(lab.hosts[0].running(), "the victim is still running");

    stop.cancel();
    flooder.join().expect("the flooder ends");
    println!("netns flood test: {} in all", ms(started.elapsed()));
}
