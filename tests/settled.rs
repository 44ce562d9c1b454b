//! A settled peer (up for two dial graces) dials a peer it hears for the first time at once,
//! whatever the ids, and sends no beacon for it; a peer that is not settled answers a newcomer's
//! beacon with its own (docs/protocol.md, 4.5 and 13.1). Real nodes on loopback, and a plain UDP
//! socket on the room's discovery port that counts the beacons going by.

mod common;

use std::collections::HashMap;
use std::net::{Ipv4Addr, SocketAddr};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use common::*;
use lanpeer::PeerId;
use lanpeer::discovery::beacon::Beacon;

/// Counts the beacons heard on the discovery port, by peer (loopback only: the port is the
/// test's own, and the socket only receives).
struct BeaconCount(Arc<Mutex<HashMap<PeerId, usize>>>);

impl BeaconCount {
    fn start(port: u16) -> BeaconCount {
        use socket2::{Domain, Protocol, Socket, Type};
        let s = Socket::new(Domain::IPV4, Type::DGRAM, Some(Protocol::UDP)).unwrap();
        s.set_reuse_address(true).unwrap();
        // As the peers' own socket (src/discovery/socket.rs): SO_REUSEPORT where there is one.
        #[cfg(unix)]
        s.set_reuse_port(true).unwrap();
        s.bind(&SocketAddr::from((Ipv4Addr::UNSPECIFIED, port)).into()).unwrap();
        let s: std::net::UdpSocket = s.into();
        s.set_read_timeout(Some(Duration::from_millis(50))).unwrap();
        let seen: Arc<Mutex<HashMap<PeerId, usize>>> = Arc::default();
        let weak = Arc::downgrade(&seen);
        // Ends when the count is dropped (checked at least every 50 ms).
        std::thread::spawn(move || {
            let mut buf = [0u8; 256];
            while let Some(seen) = weak.upgrade() {
                let Ok(len) = s.recv(&mut buf) else { continue };
                if let Ok(b) = Beacon::decode(&buf[..len]) {
                    *seen.lock().unwrap().entry(b.id).or_default() += 1;
                }
            }
        });
        BeaconCount(seen)
    }

    fn of(&self, id: PeerId) -> usize {
        self.0.lock().unwrap().get(&id).copied().unwrap_or(0)
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_settled_peer_dials_a_newcomer_and_beacons_only_for_newcomers_before() {
    let (port, room) = unique_net();
    let counter = BeaconCount::start(port);
    // A beacons at start and for newcomers only (its interval is an hour); it is settled 2 × 250
    // ms after its start.
    let mut a_cfg = config("a", port, &room);
    a_cfg.beacon_interval = Duration::from_secs(3600);
    a_cfg.dial_grace = Duration::from_millis(250);
    let a = start_with(a_cfg).await;
    let a_id = a.node.id();
    // B comes at once: A is not settled and answers B's beacon with its own.
    let b = start("b", port, &room).await;
    wait_listed(&a, 1, Duration::from_secs(10)).await;
    wait_listed(&b, 1, Duration::from_secs(10)).await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    let before = counter.of(a_id);
    assert_eq!(before, 2, "a's start beacon and its answer to b (the counter works)");
    // A settled (up for well over 500 ms): C's beacon is answered by a dial, not a beacon (C
    // hears no beacon of A's from now on).
    tokio::time::sleep(Duration::from_millis(800)).await;
    let c = start("c", port, &room).await;
    wait_listed(&a, 2, Duration::from_secs(10)).await;
    wait_listed(&c, 2, Duration::from_secs(10)).await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(counter.of(a_id), before, "a settled peer sends no beacon for a newcomer");
    assert!(c.node.peers().await.unwrap().iter().any(|p| p.id == a_id), "c lists a");
    for p in [a, b, c] {
        p.node.shutdown().await;
    }
}
