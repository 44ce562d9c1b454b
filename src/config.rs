//! How a node is set up: a plain struct with public fields and sensible defaults.
//!
//! The CLI fills it from flags; a library user fills it by hand (`Config { name, ..Default::default() }`).
//! Every timeout and limit that the protocol documents lives here, in one place.

use std::path::PathBuf;
use std::time::Duration;

/// The UDP port peers broadcast their beacons to and listen on, unless told otherwise.
pub const DEFAULT_DISCOVERY_PORT: u16 = 5681;

/// The TCP session port a peer listens on when it is free and none is asked for (the CLI
/// without `--tcp-port`), and the port of a seed (`--peer HOST`) written without one.
pub const DEFAULT_TCP_PORT: u16 = 5681;

/// The room peers join when none is given.
pub const DEFAULT_ROOM: &str = "classroom";

/// Everything a node needs to start.
#[derive(Debug, Clone)]
pub struct Config {
    /// Display name shown to others.
    pub name: String,
    /// Room: peers of other rooms are ignored.
    pub room: String,
    /// Interfaces to announce on and accept beacons from, by name (`lo`, `eth0`...).
    /// Empty means every up, non-loopback interface with an IPv4 broadcast address or with an
    /// IPv6 address and multicast.
    pub interfaces: Vec<String>,
    /// UDP port of discovery (shared by all peers of a LAN, and of one machine).
    pub discovery_port: u16,
    /// TCP port for sessions; 0 picks a free one (it travels in the beacon).
    pub tcp_port: u16,
    /// When `tcp_port` is taken, pick a free one instead of failing (the CLI asks for
    /// [`DEFAULT_TCP_PORT`] this way, so that seeds can name a peer without its port).
    pub tcp_port_fallback: bool,
    /// Seed peers, dialed by unicast whether or not their beacons reach us (crate::seeds).
    pub seeds: Vec<crate::seeds::SeedAddr>,
    /// Where the identity and the history (`history.journal`) live. `None`: a fresh identity and a
    /// history in memory only (lost when the node stops), for tests and embedding.
    pub data_dir: Option<PathBuf>,
    /// Optional facts sent in the handshake, e.g. `("role", "teacher")`.
    pub props: Vec<(String, String)>,
    /// The room code of the teacher (`--teacher CODE`): only the key it names is shown as the
    /// teacher. `None`: the first teacher met in the room is remembered ([`crate::trust`]).
    pub teacher: Option<crate::trust::RoomCode>,
    /// Time between beacons (each one jittered by up to ±20%).
    pub beacon_interval: Duration,
    /// A peer heard from neither by beacon nor by session for this long is dropped.
    pub expiry: Duration,
    /// Time allowed for a connection's preamble and hello, and for a dial to connect.
    pub handshake_timeout: Duration,
    /// A session idle for this long sends a ping.
    pub keepalive: Duration,
    /// The same while the peer's beacons are heard: they show it is alive (a peer heard neither
    /// by beacon nor by session for `expiry` is dropped), so the session need not, and pings
    /// seldom. Its reader then waits this much longer than `expiry` for a frame.
    pub quiet_keepalive: Duration,
    /// How often the interface list is scanned again.
    pub rescan_interval: Duration,
    /// Wait before the peer with the higher id dials (the lower id dials at once), so that
    /// two peers seldom dial each other at the same moment.
    pub dial_grace: Duration,
    /// Largest frame accepted or sent, in bytes.
    pub max_frame: usize,
    /// Most sessions at once, ours (from before the dial connects) and others' (from their
    /// proved hello), split into reserves and an open pool ([`crate::transport::slots`]).
    /// Incoming handshakes are bounded apart (`max_handshakes`).
    pub max_connections: usize,
    /// Of `max_connections`, places kept for our own dials: a full inbound pool never stops
    /// them (they use the open pool too when their reserve is used up).
    pub dial_reserve: usize,
    /// Of `max_connections`, places kept for dialers whose id we know (a session with it came
    /// up, or the store remembers it as a member), named in Noise message 1 and proved by the
    /// hello: a flood of fresh keys cannot take them.
    pub known_reserve: usize,
    /// Incoming connections handshaking at once (before their hello is proved); when more come,
    /// the oldest is cut.
    pub max_handshakes: usize,
    /// Incoming connections (handshaking or live) from dialers we do not know, per IPv4 or IPv6
    /// address...
    pub max_inbound_per_ip: usize,
    /// ...and per IPv6 /64 prefix (a host may take any address of its /64; every honest peer of
    /// an IPv6-only LAN is in the same one too, so this bound is set above a room's size, and our
    /// own dials, which it does not count, make up the rest). More are refused at message 1.
    /// Loopback is exempt unless `limit_loopback`.
    pub max_inbound_per_prefix: usize,
    /// Most dials connecting or handshaking at once (the rest wait their turn).
    pub max_dials: usize,
    /// Frames waiting for one peer's socket at most: a session with more is closed as too slow.
    pub outbox_capacity: usize,
    /// Bytes waiting for one peer's socket at most, whatever the frame mix: messages beyond it
    /// wait for a later turn, a session that still has more when a turn starts is closed as too
    /// slow, and so is one whose socket takes nothing for `expiry` while bytes wait.
    pub outbox_max_bytes: usize,
    /// Store and forward: messages for an absent peer are kept this long...
    pub keep_for: Duration,
    /// ...and at most this many per peer (the oldest are dropped first, with a log line).
    pub max_pending_per_peer: usize,
    /// Catch-up: how many recent room chats a late joiner receives (with every exercise).
    pub catchup_chats: usize,
    /// Catch-up: most messages offered in all.
    pub catchup_max: usize,
    /// Messages sent to one peer and not yet acknowledged, at most (flow control).
    pub window: usize,
    /// Unacknowledged messages on a live session are sent again after this long.
    pub resend_after: Duration,
    /// Catch-up messages relayed for an author we know are held this long at most while that
    /// author's own stream (which may carry older messages for us) has not caught up.
    pub hold_catchup: Duration,
    /// The room's passphrase: with one, beacons carry a tag and sessions need the room key
    /// derived from it (docs/security.md). `None`: an open room (sessions are still encrypted).
    pub passphrase: Option<crate::crypto::Passphrase>,
    /// Connection attempts taken from one IP address at once...
    pub conn_burst_per_ip: u32,
    /// ...and per second after that; more are closed before any handshake.
    pub conn_per_sec_per_ip: f64,
    /// Beacons of our room taken from one IP address at once...
    pub beacon_burst_per_ip: u32,
    /// ...and per second after that; more are dropped unread.
    pub beacon_per_sec_per_ip: f64,
    /// Apply the per-address limits (the two above, and `max_inbound_per_ip`) to loopback
    /// addresses too. Off by default:
    /// everything on loopback comes from this computer, where many peers share 127.0.0.1 (tests,
    /// demos, benchmarks), and its user could do anything anyway.
    pub limit_loopback: bool,
    /// Where received files are saved (in a folder per room, then per author). `None`: the
    /// user's download folder, `.../Downloads/lanpeer` ([`default_downloads`]).
    pub downloads: Option<PathBuf>,
    /// Largest file sent or received, in bytes (`--max-file`).
    pub max_file: u64,
    /// Most bytes of files the data dir's file store keeps (sent and received), in all.
    pub max_files: u64,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            name: default_name(),
            room: DEFAULT_ROOM.to_string(),
            interfaces: Vec::new(),
            discovery_port: DEFAULT_DISCOVERY_PORT,
            tcp_port: 0,
            tcp_port_fallback: false,
            seeds: Vec::new(),
            data_dir: None,
            props: Vec::new(),
            teacher: None,
            beacon_interval: Duration::from_secs(1),
            expiry: Duration::from_secs(5),
            handshake_timeout: Duration::from_secs(5),
            keepalive: Duration::from_secs(2),
            quiet_keepalive: Duration::from_secs(15),
            rescan_interval: Duration::from_secs(2),
            dial_grace: Duration::from_millis(1500),
            max_frame: 1 << 20,
            max_connections: 1024,
            dial_reserve: 256,
            known_reserve: 256,
            max_handshakes: 256,
            max_inbound_per_ip: 16,
            max_inbound_per_prefix: 256,
            max_dials: 16,
            outbox_capacity: 16 * 1024,
            outbox_max_bytes: 32 << 20,
            keep_for: Duration::from_secs(24 * 3600),
            max_pending_per_peer: 10_000,
            catchup_chats: 100,
            catchup_max: 5_000,
            window: 4096,
            resend_after: Duration::from_secs(3),
            hold_catchup: Duration::from_secs(10),
            passphrase: None,
            conn_burst_per_ip: 32,
            conn_per_sec_per_ip: 8.0,
            beacon_burst_per_ip: 100,
            beacon_per_sec_per_ip: 50.0,
            limit_loopback: false,
            downloads: None,
            max_file: 2 << 30,
            max_files: 20 << 30,
        }
    }
}

/// The login name of the user, or `peer` when the platform does not say.
pub fn default_name() -> String {
    ["USER", "USERNAME", "LOGNAME"]
        .iter()
        .filter_map(|k| std::env::var(k).ok())
        .find(|v| !v.trim().is_empty())
        .unwrap_or_else(|| "peer".to_string())
}

/// The user's download folder, `.../Downloads/lanpeer` (the home folder's when the platform
/// names none).
pub fn default_downloads() -> Option<PathBuf> {
    dirs::download_dir().or_else(|| dirs::home_dir().map(|h| h.join("Downloads"))).map(|d| d.join("lanpeer"))
}

/// The per-user data directory of the platform, `.../lanpeer`.
pub fn default_data_dir() -> Option<PathBuf> {
    dirs::data_dir().map(|d| d.join("lanpeer"))
}
