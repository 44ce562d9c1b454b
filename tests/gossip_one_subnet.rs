//! Gossip leaves out the peers a receiver hears itself (docs/protocol.md 12.2), on loopback:
//! every peer is 127.0.0.1, one subnet (127.0.0.0/8) of each sender's.
//!
//! 1. Four peers of one room that hear each other's beacons form the mesh with no gossip entry
//!    sent at all (the process-wide counts; this file is one test, so the counts are its own).
//! 2. Two peers that do not hear each other's beacons (another discovery port each: a subnet
//!    that does not carry broadcasts between its hosts) and name a common seed are not
//!    introduced when their sessions with the seed come up, but by the seed's refresh, within
//!    `gossip::REFRESH`, and then meet.
//!
//! Cross-subnet gossip (a receiver beyond a router is told about everyone) is tested for real in
//! `tests/netns_mesh.rs`.

mod common;

use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use common::*;
use lanpeer::diag::COUNTS;

fn lists(p: &[lanpeer::PeerInfo], id: lanpeer::PeerId) -> bool {
    p.iter().any(|i| i.id == id)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn gossip_skips_what_the_receiver_hears_and_the_refresh_still_introduces() {
    // ---- 1. One broadcast domain: no gossip.
    let (port, room) = unique_net();
    let mut peers = Vec::new();
    for name in ["a", "b", "c", "d"] {
        peers.push(start(name, port, &room).await);
    }
    for p in &peers {
        wait_listed(p, 3, Duration::from_secs(10)).await;
    }
    // A news round (at most one per second) has had time to go out.
    tokio::time::sleep(lanpeer::gossip::ROUND_GAP + Duration::from_millis(500)).await;
    assert_eq!(COUNTS.gossip_ads_out.load(Ordering::Relaxed), 0, "nobody gossips what the receiver hears");
    assert_eq!(COUNTS.gossip_ads_in.load(Ordering::Relaxed), 0);
    for p in peers {
        p.node.shutdown().await;
    }

    // ---- 2. Peers that do not hear each other, and one seed.
    let (seed_port, room) = unique_net();
    let seed = start("seed", seed_port, &room).await;
    let seed_addr: lanpeer::seeds::SeedAddr = format!("127.0.0.1:{}", seed.node.listen_addr().port()).parse().unwrap();
    let mut cfg_b = config("b", seed_port + 1, &room);
    cfg_b.seeds = vec![seed_addr.clone()];
    let mut cfg_c = config("c", seed_port + 2, &room);
    cfg_c.seeds = vec![seed_addr];
    let t0 = Instant::now();
    let b = start_with(cfg_b).await;
    let c = start_with(cfg_c).await;
    let (bid, cid) = (b.node.id(), c.node.id());
    let deadline = t0 + lanpeer::gossip::REFRESH + Duration::from_secs(15);
    let met = loop {
        let (pb, pc) = (b.node.peers().await.unwrap(), c.node.peers().await.unwrap());
        if lists(&pb, cid) && lists(&pc, bid) {
            break t0.elapsed();
        }
        assert!(Instant::now() < deadline, "b and c did not meet through the seed's refresh");
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    println!("b and c met {met:?} after they started (the seed's refresh)");
    assert!(COUNTS.gossip_ads_out.load(Ordering::Relaxed) >= 2, "the refresh named b to c and c to b");
    // Not introduced when their sessions with the seed came up (a second or so), only by the
    // refresh; the seed's first round came with the first session.
    assert!(met >= lanpeer::gossip::REFRESH - Duration::from_secs(5), "met after {met:?}: gossiped too early");
    for p in [seed, b, c] {
        p.node.shutdown().await;
    }
}
