//! Keepalive (src/transport/session.rs, `Liveness`): a session pings seldom while the peer's
//! beacons are heard, so the other side, which may not hear ours, must get its pings answered.
//! Real nodes on loopback.

mod common;

use std::time::Duration;

use common::*;
use lanpeer::Event;

/// A beacons once at start (and when it meets someone), then never: B soon stops hearing its
/// beacons and relies on the session (short keepalive, a 3 s silence ends it), while A hears B's
/// beacons every 200 ms and pings only every 30 s. B's pings must be answered, or B's session
/// falls silent and B reports A gone.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_quiet_side_answers_the_pings_of_a_side_that_does_not_hear_its_beacons() {
    let (port, room) = unique_net();
    let mut a_cfg = config("a", port, &room);
    a_cfg.beacon_interval = Duration::from_secs(3600);
    a_cfg.quiet_keepalive = Duration::from_secs(30);
    let mut b_cfg = config("b", port, &room);
    b_cfg.keepalive = Duration::from_millis(500);
    let mut a = start_with(a_cfg).await;
    let mut b = start_with(b_cfg).await;
    wait_listed(&a, 1, Duration::from_secs(10)).await;
    wait_listed(&b, 1, Duration::from_secs(10)).await;
    // Well past B's 3 s expiry, several times over.
    assert_none(&mut b, Duration::from_secs(8), |e| matches!(e, Event::PeerLeft { .. })).await;
    assert_eq!(b.node.peers().await.unwrap().len(), 1, "b still lists a");
    // And the session carries both ways.
    b.node.chat("from b").await.unwrap();
    wait_for(&mut a, Duration::from_secs(5), |e| is_text(e, "from b")).await;
    a.node.chat("from a").await.unwrap();
    wait_for(&mut b, Duration::from_secs(5), |e| is_text(e, "from a")).await;
    a.node.shutdown().await;
    b.node.shutdown().await;
}
