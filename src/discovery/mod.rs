//! Discovery: finding the peers of the room by UDP broadcast.
//!
//! - [`beacon`]: the wire format of the beacon.
//! - [`iface`]: which interfaces to announce on, rescanned now and then.
//! - [`socket`]: the one shared UDP socket (reuse address/port, broadcast), built with socket2.
//! - [`announce`]: the broadcast-announce task (beacon at start, every interval, farewell at the end).
//! - [`listen`]: the collect-listener task (hears the others' beacons, drops the rest).

pub mod announce;
pub mod beacon;
pub mod iface;
pub mod listen;
pub mod socket;
