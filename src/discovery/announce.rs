//! The broadcast-announce task: a beacon on every selected interface at start, then every
//! interval with ±20% jitter (so that a room of peers started together does not beacon in
//! lock-step), and two farewell beacons when the node stops.
//!
//! When the actor hears a newcomer it wakes this task, which answers with a beacon at once (at
//! most one per [`MIN_GAP`]): a peer started a moment after us learns of us in milliseconds,
//! not at our next interval.
//!
//! It also owns the interface scan: every `rescan_interval` it looks at the interfaces again and
//! publishes the new set on a `watch` channel, which the collect-listener reads to filter sources.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::net::UdpSocket;
use tokio::sync::{Notify, watch};
use tokio_util::sync::CancellationToken;

use super::beacon::Beacon;
use super::iface::{self, Iface};

/// Shortest time between two beacons, when woken by newcomers.
pub const MIN_GAP: Duration = Duration::from_millis(100);

/// What the announce task needs.
pub struct Announcer {
    /// The shared discovery socket.
    pub socket: Arc<UdpSocket>,
    /// Our beacon (its farewell flag is set at the end).
    pub beacon: Beacon,
    /// The discovery port beacons are sent to.
    pub port: u16,
    /// Interface names asked for (empty: all).
    pub wanted: Vec<String>,
    /// Publishes the selected interfaces.
    pub ifaces: watch::Sender<Vec<Iface>>,
    /// Time between beacons.
    pub interval: Duration,
    /// Time between interface scans.
    pub rescan: Duration,
    /// Woken when a newcomer was heard: beacon now.
    pub wake: Arc<Notify>,
    /// The beacon key of a passphrase room: beacons then carry a tag.
    pub key: Option<zeroize::Zeroizing<[u8; 32]>>,
}

fn jittered(d: Duration) -> Duration {
    let ms = d.as_millis() as u64;
    let j = ms / 5;
    Duration::from_millis(ms - j + rand::random_range(0..=2 * j))
}

impl Announcer {
    async fn send_all(&self, bytes: &[u8]) {
        let targets: Vec<SocketAddr> =
            self.ifaces.borrow().iter().map(|i| SocketAddr::from((i.broadcast, self.port))).collect();
        for to in targets {
            if let Err(e) = self.socket.send_to(bytes, to).await {
                tracing::debug!(%to, error = %e, "beacon not sent");
            }
        }
    }

    fn rescan_now(&self) {
        let all = match iface::scan() {
            Ok(a) => a,
            Err(e) => {
                tracing::debug!(error = %e, "interface scan failed");
                return;
            }
        };
        let Ok(sel) = iface::select(&all, &self.wanted, false) else { return };
        self.ifaces.send_if_modified(|cur| {
            if *cur == sel {
                return false;
            }
            let names: Vec<String> = sel.iter().map(|i| format!("{} {}", i.name, i.ip)).collect();
            if sel.is_empty() {
                tracing::warn!("no usable network interface any more; waiting for one to come up");
            } else {
                tracing::info!(interfaces = %names.join(", "), "interfaces changed");
            }
            *cur = sel;
            true
        });
    }

    /// Run until `cancel`, then say farewell.
    pub async fn run(mut self, cancel: CancellationToken) {
        let hello = self.beacon.encode_for(self.key.as_deref());
        let mut next_scan = Instant::now() + self.rescan;
        loop {
            self.send_all(&hello).await;
            let sent = Instant::now();
            tokio::select! {
                _ = cancel.cancelled() => break,
                _ = tokio::time::sleep(jittered(self.interval)) => {}
                _ = self.wake.notified() => {
                    let since = sent.elapsed();
                    if since < MIN_GAP {
                        tokio::time::sleep(MIN_GAP - since).await;
                    }
                }
            }
            if Instant::now() >= next_scan {
                self.rescan_now();
                next_scan = Instant::now() + self.rescan;
            }
        }
        self.beacon.farewell = true;
        let bye = self.beacon.encode_for(self.key.as_deref());
        for _ in 0..2 {
            self.send_all(&bye).await;
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        tracing::debug!("announce task stopped after farewell");
    }
}
