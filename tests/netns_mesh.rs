//! Beyond one broadcast domain, in Linux network namespaces: two subnets joined by a router
//! (broadcast does not cross it), six `lanpeer --json` peers (three per subnet), and one seed
//! peer named with `--peer` on the peers of the other subnet. The lab is the shared one
//! (tests/support/netns.rs, [`Lab::new_routed`]):
//!
//! ```text
//!   <tag>r      : router, ip_forward on; bridges br0 10.77.1.1/24 and br1 10.77.2.1/24
//!   <tag>h1 a1  : eth0 10.77.1.11/24, default via 10.77.1.1   (the seed)
//!   <tag>h2 a2  : eth0 10.77.1.12/24                          (moves to 10.77.1.22)
//!   <tag>h3 a3  : eth0 10.77.1.13/24
//!   <tag>h4 b1  : eth0 10.77.2.11/24, default via 10.77.2.1, --peer 10.77.1.11 (default port)
//!   <tag>h5 b2, <tag>h6 b3 likewise
//! ```
//!
//! Checks, in order:
//! 1. a full mesh forms: each peer lists the five others (B learns A's peers, and A learns B's,
//!    through the seed's gossip);
//! 2. the seed's link goes down: a chat from b2 still reaches the four others;
//! 3. a2's address changes (`ip addr del/add` in its namespace) while running: a private chat
//!    sent to it from b1 at that moment arrives, and every other peer lists it again at its new
//!    address, connected, with the same id.
//!
//! Needs root and `ip` (iproute2); fails without them unless `LANPEER_SKIP_NETNS=1`. The lab's
//! guard kills every child and deletes every namespace, also on panic; every wait has a deadline.
//! `cargo test --test netns_mesh -- --nocapture` shows the figures.
#![cfg(target_os = "linux")]

use std::collections::HashMap;
use std::thread;
use std::time::{Duration, Instant};

mod support;
use support::netns::{Host, Lab, ip, lab_or_skip, ms, text};

/// A full mesh through the seed, after the last peer is ready.
const MESH_LIMIT: Duration = Duration::from_secs(15);
/// A chat reaches the others after the seed has gone.
const CHAT_LIMIT: Duration = Duration::from_secs(5);
/// A moved peer is back (listed at its new address by everyone, its message delivered). Its
/// neighbours hear its beacons, so their old sessions with it ping only every 15 s and would
/// take 18 s to time out: it must be back well before that (its new session replaces the old).
const MOVE_LIMIT: Duration = Duration::from_secs(10);

/// The peers `h` lists now, from its joined and left events: id -> addr.
fn joined(h: &Host) -> HashMap<String, String> {
    let mut m = HashMap::new();
    for (_, v) in h.events() {
        match text(&v, "event") {
            "peer_joined" => {
                m.insert(text(&v, "id").to_string(), text(&v, "addr").to_string());
            }
            "peer_left" => {
                m.remove(text(&v, "id"));
            }
            _ => {}
        }
    }
    m
}

/// Ask `h` for `/peers` and return its list (id -> (addr, state)), within 2 s.
fn peers_now(h: &mut Host) -> Option<HashMap<String, (String, String)>> {
    let m = h.mark();
    let t = h.send("/peers");
    let (_, v) = h.wait_for(m, t + Duration::from_secs(2), |v| text(v, "event") == "peers")?;
    Some(
        v.get("peers")?
            .as_array()?
            .iter()
            .map(|p| (text(p, "id").to_string(), (text(p, "addr").to_string(), text(p, "state").to_string())))
            .collect(),
    )
}

/// Poll `cond` every 100 ms until it holds (Some) or `deadline` passes (None).
fn until<T>(deadline: Instant, mut cond: impl FnMut() -> Option<T>) -> Option<T> {
    loop {
        if let Some(t) = cond() {
            return Some(t);
        }
        if Instant::now() >= deadline {
            return None;
        }
        thread::sleep(Duration::from_millis(100));
    }
}

#[test]
fn seed_gossip_two_subnets_and_a_moving_peer() {
    let started = Instant::now();
    let lab = Lab::new_routed("lm", &[([10, 77, 1], &["a1", "a2", "a3"]), ([10, 77, 2], &["b1", "b2", "b3"])]);
    let Some(mut lab) = lab_or_skip(lab, "netns mesh test", "root and iproute2 (`ip netns`)") else { return };
    let (a1, a2, a3, b1, b2, b3) = (0, 1, 2, 3, 4, 5);
    let n = lab.hosts.len();

    // ---- 1. Start: the B peers know only the seed (a1), by address, on the default port.
    for i in 0..n {
        let extra: &[&str] = if i >= b1 { &["--peer", "10.77.1.11"] } else { &[] };
        lab.spawn_with(i, |c| {
            c.args(extra);
        });
    }
    let mut last_ready = Instant::now();
    for i in 0..n {
        let h = &lab.hosts[i];
        let Some((t, ready)) = h.wait_for(0, Instant::now() + Duration::from_secs(10), |v| text(v, "event") == "ready")
        else {
            panic!("{}: no ready event within 10 s; stderr:\n{}", h.name, h.stderr_tail(30));
        };
        last_ready = last_ready.max(t);
        assert!(text(&ready, "listen").ends_with(":5681"), "{}: not on the default session port: {ready}", h.name);
        lab.hosts[i].id = text(&ready, "id").to_string();
    }
    let ids: Vec<String> = lab.hosts.iter().map(|h| h.id.clone()).collect();
    let full = until(last_ready + MESH_LIMIT, || {
        lab.hosts
            .iter()
            .all(|h| {
                let l = joined(h);
                ids.iter().filter(|id| **id != h.id).all(|id| l.contains_key(id))
            })
            .then(Instant::now)
    });
    if full.is_none() {
        let seen: Vec<String> = lab.hosts.iter().map(|h| format!("{}: {} listed", h.name, joined(h).len())).collect();
        panic!("no full mesh within {}: {}", ms(MESH_LIMIT), seen.join(", "));
    }
    let mesh_time = full.unwrap().saturating_duration_since(last_ready);
    // One peer per id, whatever the number of addresses: each lists exactly 5.
    for h in &lab.hosts {
        assert_eq!(joined(h).len(), n - 1, "{}: {:?}", h.name, joined(h));
    }
    // B learned A's non-seed peers by gossip, and at their real addresses.
    assert!(joined(&lab.hosts[b3]).get(&ids[a3]).is_some_and(|a| a.starts_with("10.77.1.13:")));
    println!("1. full mesh of 6 peers over two subnets through one seed: {} after the last ready", ms(mesh_time));

    // ---- 2. The seed's link goes down: the others still talk.
    ip(&["-n", &lab.hosts[a1].ns, "link", "set", "eth0", "down"]).unwrap();
    let chat = format!("after the seed left {}", lab.tag);
    let marks: Vec<usize> = lab.hosts.iter().map(Host::mark).collect();
    let t0 = lab.hosts[b2].send(&chat);
    let mut worst = Duration::ZERO;
    for i in [a2, a3, b1, b3] {
        let h = &lab.hosts[i];
        let Some((t, _)) =
            h.wait_for(marks[i], t0 + CHAT_LIMIT, |v| text(v, "event") == "chat" && text(v, "text") == chat)
        else {
            panic!("{}: no chat from b2 after the seed left; events:\n{}", h.name, h.events_since(marks[i]));
        };
        worst = worst.max(t - t0);
    }
    println!("2. seed link down: a chat from b2 reached the 4 others in {}", ms(worst));

    // ---- 3. a2 moves to a new address while running; b1 writes to it at that moment.
    let ns = lab.hosts[a2].ns.clone();
    let marks: Vec<usize> = lab.hosts.iter().map(Host::mark).collect();
    let t_move = Instant::now();
    ip(&["-n", &ns, "addr", "del", "10.77.1.12/24", "dev", "eth0"]).unwrap();
    ip(&["-n", &ns, "addr", "add", "10.77.1.22/24", "brd", "+", "dev", "eth0"]).unwrap();
    ip(&["-n", &ns, "route", "replace", "default", "via", "10.77.1.1"]).unwrap();
    let secret = format!("while you moved {}", lab.tag);
    lab.hosts[b1].send(&format!("/msg a2 {secret}"));
    let a2_id = ids[a2].clone();
    let others = [a3, b1, b2, b3];
    let (got, _) = lab.hosts[a2]
        .wait_for(marks[a2], t_move + MOVE_LIMIT, |v| text(v, "event") == "chat" && text(v, "text") == secret)
        .unwrap_or_else(|| {
            panic!("a2: the chat sent while it moved never arrived:\n{}", lab.hosts[a2].events_since(marks[a2]))
        });
    let delivered = got - t_move;
    let mut pending: Vec<usize> = others.to_vec();
    let back = until(t_move + MOVE_LIMIT, || {
        pending.retain(|&i| {
            let ok = peers_now(&mut lab.hosts[i])
                .and_then(|p| p.get(&a2_id).cloned())
                .is_some_and(|(addr, state)| addr.starts_with("10.77.1.22:") && state == "connected");
            !ok
        });
        pending.is_empty().then(Instant::now)
    });
    let Some(back) = back else {
        let views: Vec<String> = pending
            .iter()
            .map(|&i| {
                let seen = peers_now(&mut lab.hosts[i]).and_then(|p| p.get(&a2_id).cloned());
                format!("{}: {seen:?}", lab.hosts[i].name)
            })
            .collect();
        panic!("a2 not back at its new address within {}: {}", ms(MOVE_LIMIT), views.join("; "));
    };
    // And a2 itself has every other live peer connected again.
    let a2_sees = until(t_move + MOVE_LIMIT, || {
        let p = peers_now(&mut lab.hosts[a2])?;
        others.iter().all(|&i| p.get(&ids[i]).is_some_and(|(_, s)| s == "connected")).then_some(())
    });
    assert!(a2_sees.is_some(), "a2 does not list the others as connected: {:?}", peers_now(&mut lab.hosts[a2]));
    println!(
        "3. address change of a2: its pending message delivered after {}, listed at the new address by all 4 after {}",
        ms(delivered),
        ms(back - t_move)
    );
    // Nobody lost its id: a2 has one id, listed once.
    for &i in &others {
        let l = joined(&lab.hosts[i]);
        assert!(l.contains_key(&a2_id), "{}: a2 not listed", lab.hosts[i].name);
    }
    let elapsed = started.elapsed();
    println!("netns mesh test: {} in all", ms(elapsed));
    assert!(elapsed < Duration::from_secs(90), "took {}", ms(elapsed));
}
