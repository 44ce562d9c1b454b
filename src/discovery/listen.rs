//! The collect-listener task: receives every datagram on the discovery port and passes the
//! beacons of the room's other peers to the node actor.
//!
//! Dropped (debug log, nothing else): datagrams that are not beacons, beacons of another
//! version or room, our own beacons, and beacons from outside the selected interfaces. The hand-off
//! is `try_send` on a bounded channel, so a flood of beacons costs a fixed buffer and can never
//! stall the listener or the actor: when the actor is behind, beacons are dropped (the next ones
//! will do).

use std::net::SocketAddr;
use std::sync::Arc;

use tokio::net::UdpSocket;
use tokio::sync::{mpsc, watch};
use tokio_util::sync::CancellationToken;

use super::beacon::Beacon;
use super::iface::Iface;
use crate::id::PeerId;

/// A beacon heard, and the address it came from.
#[derive(Debug, Clone, Copy)]
pub struct Heard {
    /// The beacon.
    pub beacon: Beacon,
    /// Its source address.
    pub from: SocketAddr,
}

/// What the listener needs.
pub struct Listener {
    /// The shared discovery socket.
    pub socket: Arc<UdpSocket>,
    /// Our id (own beacons are dropped).
    pub me: PeerId,
    /// Our room's tag.
    pub room_tag: [u8; 8],
    /// Selected interfaces (sources outside them are dropped).
    pub ifaces: watch::Receiver<Vec<Iface>>,
    /// To the node actor.
    pub tx: mpsc::Sender<Heard>,
}

impl Listener {
    /// Run until `cancel`.
    pub async fn run(self, cancel: CancellationToken) {
        // Larger than any beacon, so an oversized datagram shows as too long rather than cut.
        let mut buf = [0u8; 256];
        loop {
            let (n, from) = tokio::select! {
                _ = cancel.cancelled() => break,
                r = self.socket.recv_from(&mut buf) => match r {
                    Ok(x) => x,
                    Err(e) => {
                        // E.g. ICMP errors surfacing on some platforms: not fatal.
                        tracing::debug!(error = %e, "discovery receive error");
                        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
                        continue;
                    }
                },
            };
            let beacon = match Beacon::decode(&buf[..n]) {
                Ok(b) => b,
                Err(e) => {
                    tracing::debug!(%from, error = %e, "dropped datagram");
                    continue;
                }
            };
            if beacon.id == self.me {
                continue;
            }
            if beacon.room_tag != self.room_tag {
                tracing::trace!(%from, "beacon of another room");
                continue;
            }
            if !self.ifaces.borrow().iter().any(|i| i.contains(from.ip())) {
                tracing::debug!(%from, "beacon from outside the selected interfaces");
                continue;
            }
            if self.tx.try_send(Heard { beacon, from }).is_err() {
                if self.tx.is_closed() {
                    break;
                }
                tracing::debug!(%from, "beacon dropped: node busy");
            }
        }
        tracing::debug!("listener task stopped");
    }
}
