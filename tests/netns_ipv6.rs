//! IPv6 in Linux network namespaces: discovery by link-local multicast (`ff02::4c50`) and
//! sessions over IPv6, with default interface selection.
//!
//! 1. `ipv6_only_lan`: three hosts on a bridge with NO IPv4 address at all (eth0 has its
//!    link-local address and a ULA `fd00:76::1N/64`; DAD off). They discover each other, a chat
//!    and a private chat arrive, a leave is seen.
//! 2. `dual_stack_lan`: two dual-stack hosts (IPv4 `10.76.0.1N/24` and link-local) and one
//!    IPv6-only host (its IPv4 address removed) on one bridge: the dual-stack pair talks over
//!    IPv4 as before; each of them and the IPv6-only host talk over link-local IPv6.
//!
//! Needs root and `ip` (iproute2); fails without them unless `LANPEER_SKIP_NETNS=1`. The lab
//! ([`support::netns::Lab`]) kills every child and deletes every namespace, also on panic;
//! every wait has a deadline. `cargo test --test netns_ipv6 -- --nocapture` shows the figures.
#![cfg(target_os = "linux")]

mod support;

use std::net::{IpAddr, SocketAddr};
use std::time::{Duration, Instant};

use support::netns::{Lab, ip, is_peer_id, lab_or_skip, ms, need_root, text};

/// Every peer lists every other this long after the last one was started.
const DISCOVERY_LIMIT: Duration = Duration::from_secs(10);
/// A message or a leave arrives within this.
const DELIVERY_LIMIT: Duration = Duration::from_secs(5);

/// Start every host, read its ready event (id, listen address); returns the last spawn instant.
fn start_all(lab: &mut Lab) -> Instant {
    for i in 0..lab.hosts.len() {
        lab.spawn(i);
    }
    let last_spawn = lab.hosts.last().expect("hosts").spawned;
    for h in &mut lab.hosts {
        let (_, ready) = h
            .expect(0, h.spawned + Duration::from_secs(10), "ready event within 10 s", |v| text(v, "event") == "ready");
        let id = text(&ready, "id").to_string();
        assert!(is_peer_id(&id), "{}: {ready}", h.name);
        let listen: SocketAddr = text(&ready, "listen")
            .parse()
            .unwrap_or_else(|e| panic!("{}: listen not an address ({e}): {ready}", h.name));
        h.id = id;
        h.listen = Some(listen);
    }
    last_spawn
}

/// The index of eth0 in host `i`'s namespace.
fn eth0_index(lab: &Lab, i: usize) -> u32 {
    let show = ip(&["-n", &lab.hosts[i].ns, "-o", "link", "show", "eth0"]).expect("ip link show");
    show.split(':').next().and_then(|n| n.trim().parse().ok()).unwrap_or_else(|| panic!("no index in {show:?}"))
}

/// Wait until host `i` saw host `j` join; the address it lists it at.
fn joined_at(lab: &Lab, i: usize, j: usize, by: Instant) -> (Instant, SocketAddr) {
    let idj = lab.hosts[j].id.clone();
    let (t, v) = lab.hosts[i].expect(0, by, &format!("peer_joined for {}", lab.hosts[j].name), |v| {
        text(v, "event") == "peer_joined" && text(v, "id") == idj
    });
    assert_eq!(text(&v, "name"), lab.hosts[j].name, "{v}");
    let addr: SocketAddr =
        text(&v, "addr").parse().unwrap_or_else(|e| panic!("{}: addr is not an address ({e}): {v}", lab.hosts[i].name));
    (t, addr)
}

fn assert_link_local(lab: &Lab, i: usize, j: usize, addr: SocketAddr) {
    let ll = lab.wait_link_local(j).expect("link-local address");
    let SocketAddr::V6(a) = addr else {
        panic!("{} lists {} at {addr}, not IPv6", lab.hosts[i].name, lab.hosts[j].name)
    };
    assert_eq!(*a.ip(), ll, "{} lists {} at {addr}, not its link-local address", lab.hosts[i].name, lab.hosts[j].name);
    assert_eq!(a.scope_id(), eth0_index(lab, i), "{addr}: the scope id must be eth0's index");
}

#[test]
fn ipv6_only_lan() {
    let names = ["v6a", "v6b", "v6c"];
    let lab = need_root().and_then(|()| Lab::new_v6("l6", Some(0x76), &names));
    let Some(mut lab) = lab_or_skip(lab, "IPv6 netns test", "root, iproute2 (`ip netns`) and IPv6") else { return };
    for h in &lab.hosts {
        let v4 = ip(&["-n", &h.ns, "-4", "-o", "addr", "show"]).unwrap();
        assert!(v4.lines().all(|l| l.contains(" lo ")), "{}: an IPv4 address besides lo's: {v4}", h.name);
    }

    // `lanpeer doctor` in one host: the IPv6 socket opens and joins the group on eth0.
    let doc = support::netns::run(
        "ip",
        &["netns", "exec", &lab.hosts[0].ns, support::netns::BIN, "doctor", "--port", "5681"],
    )
    .unwrap_or_else(|e| panic!("doctor: {e}"));
    assert!(doc.contains("the IPv6 discovery socket opens"), "{doc}");
    assert!(doc.contains("eth0: joins the IPv6 multicast group ff02::4c50"), "{doc}");
    assert!(doc.contains("fd00:76::b/64") && doc.contains("USED: IPv6 beacons"), "{doc}");
    assert!(doc.contains("Nothing wrong found."), "{doc}");

    let last_spawn = start_all(&mut lab);
    for h in &lab.hosts {
        assert_eq!(h.listen.map(|l| l.ip()), Some(h.ip), "{}: listen is not its ULA", h.name);
    }

    // ---- Discovery: each lists the two others, at their link-local address on eth0.
    let mut worst = Duration::ZERO;
    for i in 0..3 {
        for j in (0..3).filter(|&j| j != i) {
            let (t, addr) = joined_at(&lab, i, j, last_spawn + DISCOVERY_LIMIT);
            assert_link_local(&lab, i, j, addr);
            assert_eq!(addr.port(), lab.hosts[j].listen.unwrap().port(), "the beacon's TCP port");
            worst = worst.max(t.saturating_duration_since(last_spawn));
        }
    }
    println!("IPv6 only: 3 peers saw each other {} after the last spawn", ms(worst));

    // ---- Sessions over a routable IPv6 address (what a seed `--peer [fd00:..]:port` dials):
    // the IPv6 listener answers on the ULA, on the beacon's TCP port.
    let seed = lab.hosts[1].listen.unwrap();
    let doc = support::netns::run(
        "ip",
        &["netns", "exec", &lab.hosts[0].ns, support::netns::BIN, "doctor", "--peer", &seed.to_string()],
    );
    let doc = doc.unwrap_or_else(|e| e);
    assert!(doc.contains(&format!("{seed}: a lanpeer peer answers (an open room)")), "{doc}");
    // And at its link-local address, named with the zone as a user writes it (`%eth0`).
    let ll = lab.wait_link_local(1).unwrap();
    let named = format!("[{ll}%eth0]:{}", seed.port());
    let doc = support::netns::run(
        "ip",
        &["netns", "exec", &lab.hosts[0].ns, support::netns::BIN, "doctor", "--peer", &named],
    );
    let doc = doc.unwrap_or_else(|e| e);
    assert!(doc.contains("a lanpeer peer answers (an open room)") && doc.contains(&ll.to_string()), "{doc}");

    // ---- A chat reaches both others; a private chat only its addressee.
    let marks: Vec<usize> = lab.hosts.iter().map(|h| h.mark()).collect();
    let t0 = lab.hosts[0].send("hello over IPv6");
    for i in [1, 2] {
        let from = lab.hosts[0].id.clone();
        let (t, _) = lab.hosts[i].expect(marks[i], t0 + DELIVERY_LIMIT, "the chat", |v| {
            text(v, "event") == "chat" && text(v, "text") == "hello over IPv6" && text(v, "from") == from
        });
        println!("chat v6a -> {}: {}", lab.hosts[i].name, ms(t - t0));
    }
    let t1 = lab.hosts[1].send("/msg v6c just for you");
    let from = lab.hosts[1].id.clone();
    let to = lab.hosts[2].id.clone();
    let (t, v) = lab.hosts[2].expect(marks[2], t1 + DELIVERY_LIMIT, "the private chat", |v| {
        text(v, "event") == "chat" && text(v, "text") == "just for you" && text(v, "from") == from
    });
    assert_eq!(text(&v, "to"), to, "{v}");
    println!("private chat v6b -> v6c: {}", ms(t - t1));
    assert!(lab.hosts[0].all(marks[0], |v| text(v, "text") == "just for you").is_empty(), "v6a got the private chat");

    // ---- v6c leaves: both others see it leave.
    let marks: Vec<usize> = lab.hosts.iter().map(|h| h.mark()).collect();
    let t2 = lab.hosts[2].send("/quit");
    for i in [0, 1] {
        let id = lab.hosts[2].id.clone();
        let (t, _) = lab.hosts[i].expect(marks[i], t2 + DELIVERY_LIMIT, "v6c's leave", |v| {
            text(v, "event") == "peer_left" && text(v, "id") == id && text(v, "reason") == "left"
        });
        println!("leave seen by {}: {}", lab.hosts[i].name, ms(t - t2));
    }
}

#[test]
fn dual_stack_lan() {
    let names = ["dsa", "dsb", "v6c"];
    let lab = need_root().and_then(|()| Lab::new("l6d", [10, 76, 0], &names));
    let Some(mut lab) = lab_or_skip(lab, "dual-stack netns test", "root, iproute2 (`ip netns`) and IPv6") else {
        return;
    };
    // v6c loses its IPv4 address: IPv6 only, on a link the two others reach over IPv4.
    let c = lab.hosts[2].ip.to_string();
    ip(&["-n", &lab.hosts[2].ns, "addr", "del", &format!("{c}/24"), "dev", "eth0"]).unwrap();
    for i in 0..3 {
        // Discovery by multicast needs a usable (no longer tentative) link-local address.
        lab.wait_link_local(i).unwrap();
    }
    let last_spawn = start_all(&mut lab);
    assert!(matches!(lab.hosts[2].listen.map(|l| l.ip()), Some(IpAddr::V6(_))), "v6c listens on IPv6");
    for (i, j) in [(0, 1), (1, 0)] {
        let (_, addr) = joined_at(&lab, i, j, last_spawn + DISCOVERY_LIMIT);
        assert_eq!(addr.ip(), lab.hosts[j].ip, "dual-stack peers talk over IPv4, as before IPv6");
    }
    let mut worst = Duration::ZERO;
    for (i, j) in [(0, 2), (2, 0), (1, 2), (2, 1)] {
        let (t, addr) = joined_at(&lab, i, j, last_spawn + DISCOVERY_LIMIT);
        assert_link_local(&lab, i, j, addr);
        worst = worst.max(t.saturating_duration_since(last_spawn));
    }
    println!("dual stack: the IPv6-only peer and the two dual-stack ones met {} after the last spawn", ms(worst));
    let marks: Vec<usize> = lab.hosts.iter().map(|h| h.mark()).collect();
    let t0 = lab.hosts[2].send("from the IPv6-only host");
    for i in [0, 1] {
        lab.hosts[i].expect(marks[i], t0 + DELIVERY_LIMIT, "the chat", |v| {
            text(v, "event") == "chat" && text(v, "text") == "from the IPv6-only host"
        });
    }
}
