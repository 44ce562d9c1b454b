//! The broadcast-announce task: a beacon on every selected interface at start, then every
//! interval with ±20% jitter (so that a room of peers started together does not beacon in
//! lock-step), and two farewell beacons when the node stops.
//!
//! When the actor hears a newcomer it wakes this task, which answers with a beacon at once (at
//! most one such beacon per [`MIN_GAP`]; periodic beacons do not count): a peer started a moment
//! after us learns of us in milliseconds, not at our next interval.
//!
//! It also owns the interface scan: every `rescan_interval` it looks at the interfaces again and
//! publishes the new set on a `watch` channel, which the collect-listener reads to filter sources.
//! It keeps the IPv6 socket's group memberships in step with the set: the group is joined on
//! every selected interface with an IPv6 address, and left on those that are gone.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::net::UdpSocket;
use tokio::sync::{Notify, watch};
use tokio_util::sync::CancellationToken;

use super::beacon::Beacon;
use super::iface::{self, Iface};
use super::socket;
use crate::diag::{COUNTS, Counts};

/// Shortest time between two beacons sent for newcomers.
pub const MIN_GAP: Duration = Duration::from_millis(100);

/// What the announce task needs.
pub struct Announcer {
    /// The shared discovery socket (IPv4).
    pub socket: Arc<UdpSocket>,
    /// The shared IPv6 discovery socket, when IPv6 is there.
    pub socket6: Option<Arc<UdpSocket>>,
    /// Interface indexes whose group membership the IPv6 socket holds.
    pub joined: Vec<u32>,
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

/// How long to wait before a beacon for a newcomer, `since` the last beacon for a newcomer
/// (`None`: there was none). At once, unless one went out less than [`MIN_GAP`] ago: periodic
/// beacons do not count, so every peer of a settled room answers a late joiner at once.
fn newcomer_wait(since: Option<Duration>) -> Duration {
    since.map_or(Duration::ZERO, |s| MIN_GAP.saturating_sub(s))
}

fn jittered(d: Duration) -> Duration {
    let ms = d.as_millis() as u64;
    let j = ms / 5;
    Duration::from_millis(ms - j + rand::random_range(0..=2 * j))
}

impl Announcer {
    async fn send_all(&self, bytes: &[u8]) {
        let (targets, indexes): (Vec<SocketAddr>, Vec<u32>) = {
            let ifaces = self.ifaces.borrow();
            let v4 = ifaces.iter().filter_map(Iface::beacon_to).map(|b| SocketAddr::from((b, self.port))).collect();
            (v4, iface::v6_indexes(&ifaces))
        };
        for to in targets {
            if let Err(e) = self.socket.send_to(bytes, to).await {
                tracing::debug!(%to, error = %e, "beacon not sent");
            }
        }
        if let Some(s6) = &self.socket6 {
            for index in indexes {
                if let Err(e) = socket::send_v6(s6, bytes, index, self.port).await {
                    tracing::debug!(to = %socket::group_addr(index, self.port), error = %e, "beacon not sent");
                }
            }
        }
    }

    /// Join the group on the selected interfaces that have IPv6, leave it on the others.
    fn sync_groups(&mut self) {
        let Some(s6) = &self.socket6 else { return };
        let wanted = iface::v6_indexes(&self.ifaces.borrow());
        if wanted.len() == self.joined.len() && wanted.iter().all(|i| self.joined.contains(i)) {
            return;
        }
        for (index, e) in socket::sync_groups(socket2::SockRef::from(&**s6), &mut self.joined, &wanted) {
            tracing::debug!(index, error = %e, "cannot join the IPv6 discovery group on this interface (yet)");
        }
    }

    fn rescan_now(&mut self) {
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
        self.sync_groups();
    }

    /// Run until `cancel`, then say farewell.
    pub async fn run(mut self, cancel: CancellationToken) {
        let hello = self.beacon.encode_for(self.key.as_deref());
        self.sync_groups();
        let mut next_scan = Instant::now() + self.rescan;
        // When the last beacon for a newcomer went out.
        let mut answered: Option<Instant> = None;
        let mut woken = false;
        loop {
            self.send_all(&hello).await;
            Counts::bump(&COUNTS.beacons);
            if woken {
                answered = Some(Instant::now());
                woken = false;
            }
            tokio::select! {
                _ = cancel.cancelled() => break,
                _ = tokio::time::sleep(jittered(self.interval)) => {}
                _ = self.wake.notified() => {
                    let wait = newcomer_wait(answered.map(|t| t.elapsed()));
                    if !wait.is_zero() {
                        tokio::select! {
                            _ = cancel.cancelled() => break,
                            _ = tokio::time::sleep(wait) => {}
                        }
                    }
                    woken = true;
                    Counts::bump(&COUNTS.beacons_newcomer);
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn newcomers_are_answered_at_once_then_every_min_gap() {
        let ms = Duration::from_millis;
        assert_eq!(newcomer_wait(None), Duration::ZERO, "the first newcomer");
        assert_eq!(newcomer_wait(Some(ms(5000))), Duration::ZERO, "a late joiner to a settled room");
        assert_eq!(newcomer_wait(Some(ms(100))), Duration::ZERO);
        assert_eq!(newcomer_wait(Some(ms(30))), ms(70), "a burst: one per MIN_GAP");
    }

    #[test]
    fn jitter_stays_within_a_fifth() {
        for _ in 0..200 {
            let d = jittered(Duration::from_secs(1)).as_millis();
            assert!((800..=1200).contains(&d), "{d}");
        }
    }
}
