//! Guards against floods: a per-address token bucket (connection attempts in the accept task,
//! beacons in the collect-listener), a per-address count of open connections ([`OpenPerAddr`]),
//! and the rate-limited warnings a node shows its user about peers it refused (wrong passphrase,
//! no passphrase, too many connections).
//!
//! The bucket and the warnings keep a bounded table: when it is full, entries idle long enough to
//! be back at full credit are forgotten (they would behave the same as new ones), and if none is,
//! the table is cleared, which at worst gives a flooder one more burst. The open count needs no
//! such rule: an address has an entry only while it holds a connection.

use std::collections::HashMap;
use std::hash::Hash;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio::sync::mpsc;

use crate::event::Event;

/// Most addresses a [`RateLimiter`] or a [`Warner`] remembers.
pub const MAX_TRACKED: usize = 4096;

/// A token bucket per key: `burst` at once, then `per_sec` per second.
#[derive(Debug)]
pub struct RateLimiter<K> {
    burst: f64,
    per_sec: f64,
    buckets: HashMap<K, (f64, Instant)>,
}

impl<K: Hash + Eq + Copy> RateLimiter<K> {
    /// A limiter allowing `burst` events at once and `per_sec` per second after that, per key.
    pub fn new(burst: u32, per_sec: f64) -> Self {
        RateLimiter { burst: burst.max(1) as f64, per_sec: per_sec.max(0.0), buckets: HashMap::new() }
    }

    /// May `key` do one more now? Takes a token if so.
    pub fn allow(&mut self, key: K, now: Instant) -> bool {
        if self.buckets.len() >= MAX_TRACKED && !self.buckets.contains_key(&key) {
            let full = if self.per_sec > 0.0 { self.burst / self.per_sec } else { f64::INFINITY };
            self.buckets.retain(|_, (_, t)| now.saturating_duration_since(*t).as_secs_f64() < full);
            if self.buckets.len() >= MAX_TRACKED {
                self.buckets.clear();
            }
        }
        let (burst, rate) = (self.burst, self.per_sec);
        let (tokens, last) = self.buckets.entry(key).or_insert((burst, now));
        *tokens = (*tokens + now.saturating_duration_since(*last).as_secs_f64() * rate).min(burst);
        *last = now;
        if *tokens >= 1.0 {
            *tokens -= 1.0;
            true
        } else {
            false
        }
    }
}

/// Where a connection comes from, as the per-address bounds see it. An IPv4-mapped IPv6 address
/// (`::ffff:a.b.c.d`) is its IPv4 address.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum AddrKey {
    /// One IPv4 address.
    V4(Ipv4Addr),
    /// One IPv6 address.
    V6(Ipv6Addr),
    /// An IPv6 /64 prefix (its first 64 bits): a host can take any address in its LAN's /64
    /// (privacy addresses do), so one address alone would bound nothing.
    Net64(u64),
}

impl AddrKey {
    /// The address of `ip`, and for IPv6 its /64 prefix too.
    pub fn of(ip: IpAddr) -> (AddrKey, Option<AddrKey>) {
        match ip {
            IpAddr::V4(a) => (AddrKey::V4(a), None),
            IpAddr::V6(a) => match a.to_ipv4_mapped() {
                Some(v4) => (AddrKey::V4(v4), None),
                None => (AddrKey::V6(a), Some(AddrKey::Net64((u128::from(a) >> 64) as u64))),
            },
        }
    }

    /// An address that stands for the key in a warning (a /64 by its first address).
    pub fn ip(self) -> IpAddr {
        match self {
            AddrKey::V4(a) => a.into(),
            AddrKey::V6(a) => a.into(),
            AddrKey::Net64(p) => Ipv6Addr::from(u128::from(p) << 64).into(),
        }
    }
}

impl std::fmt::Display for AddrKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            AddrKey::Net64(_) => write!(f, "{}/64", self.ip()),
            _ => write!(f, "{}", self.ip()),
        }
    }
}

/// Connections open at once per address: at most `per_addr` per IPv4 or IPv6 address, and at
/// most `per_net` per IPv6 /64 ([`AddrKey`]). Each connection holds an [`AddrHold`] for its whole
/// life; the count drops when it is dropped.
#[derive(Debug)]
pub struct OpenPerAddr {
    per_addr: usize,
    per_net: usize,
    open: Arc<Mutex<HashMap<AddrKey, usize>>>,
}

/// A connection's place in [`OpenPerAddr`]; leaves it when dropped.
#[derive(Debug)]
pub struct AddrHold {
    keys: (AddrKey, Option<AddrKey>),
    open: Arc<Mutex<HashMap<AddrKey, usize>>>,
}

impl OpenPerAddr {
    /// At most `per_addr` connections per address and `per_net` per IPv6 /64 (at least 1 each).
    pub fn new(per_addr: usize, per_net: usize) -> Self {
        OpenPerAddr { per_addr: per_addr.max(1), per_net: per_net.max(1), open: Arc::default() }
    }

    /// One more connection from `ip`, or Err(the key that has its bound already).
    pub fn hold(&self, ip: IpAddr) -> Result<AddrHold, AddrKey> {
        let keys = AddrKey::of(ip);
        let mut open = self.open.lock().unwrap_or_else(|p| p.into_inner());
        let count = |k: &AddrKey| open.get(k).copied().unwrap_or(0);
        if count(&keys.0) >= self.per_addr {
            return Err(keys.0);
        }
        if let Some(net) = keys.1
            && count(&net) >= self.per_net
        {
            return Err(net);
        }
        for k in [Some(keys.0), keys.1].into_iter().flatten() {
            *open.entry(k).or_insert(0) += 1;
        }
        Ok(AddrHold { keys, open: self.open.clone() })
    }

    /// Connections open from the address or prefix `key` now.
    pub fn open(&self, key: AddrKey) -> usize {
        self.open.lock().unwrap_or_else(|p| p.into_inner()).get(&key).copied().unwrap_or(0)
    }
}

impl Drop for AddrHold {
    fn drop(&mut self) {
        let mut open = self.open.lock().unwrap_or_else(|p| p.into_inner());
        for k in [Some(self.keys.0), self.keys.1].into_iter().flatten() {
            if let Some(n) = open.get_mut(&k) {
                *n -= 1;
                if *n == 0 {
                    open.remove(&k);
                }
            }
        }
    }
}

/// What a warning is about (one rate limit per kind and address).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum WarnKind {
    /// A peer of our room with another passphrase (bad beacon tag or failed handshake).
    WrongPassphrase,
    /// A peer of our room without a passphrase, when we have one.
    NoPassphrase,
    /// A peer of our room with a passphrase, when we have none.
    TheyHavePassphrase,
    /// Too many connection attempts or beacons from one address.
    Flood,
    /// The history cannot be written (a full disk, say); reported about no address.
    Storage,
    /// Messages that do not prove their author (forged, altered, of another room).
    Unproved,
    /// A peer claims the teacher's role with a key that is not the room's teacher's.
    Impostor,
}

/// Sends [`Event::Warning`]s, at most one per kind and address per `every`, and at most
/// [`Warner::BURST`] per `every` in all.
#[derive(Debug)]
pub struct Warner {
    events: mpsc::UnboundedSender<Vec<Event>>,
    every: Duration,
    state: Mutex<WarnState>,
}

/// When each (kind, address) was last reported, and the overall budget.
type WarnState = (HashMap<(WarnKind, IpAddr), Instant>, RateLimiter<()>);

impl Warner {
    /// Warnings in all per period, at most.
    pub const BURST: u32 = 5;

    /// A warner that reports to `events`.
    pub fn new(events: mpsc::UnboundedSender<Vec<Event>>, every: Duration) -> Self {
        let per_sec = Self::BURST as f64 / every.as_secs_f64().max(0.001);
        Warner { events, every, state: Mutex::new((HashMap::new(), RateLimiter::new(Self::BURST, per_sec))) }
    }

    /// Warn about `ip`, unless a warning of this kind about it went out recently. True if sent.
    pub fn warn(&self, kind: WarnKind, ip: IpAddr, message: impl FnOnce() -> String) -> bool {
        let now = Instant::now();
        let mut st = self.state.lock().unwrap_or_else(|p| p.into_inner());
        let (seen, total) = &mut *st;
        if seen.get(&(kind, ip)).is_some_and(|t| now.saturating_duration_since(*t) < self.every) {
            return false;
        }
        if seen.len() >= MAX_TRACKED {
            let every = self.every;
            seen.retain(|_, t| now.saturating_duration_since(*t) < every);
            if seen.len() >= MAX_TRACKED {
                seen.clear();
            }
        }
        seen.insert((kind, ip), now);
        if !total.allow((), now) {
            return false;
        }
        let message = message();
        // The event is how the user hears of it (a `!` line, or `--json`); the log keeps a copy.
        tracing::info!("{message}");
        self.events.send(vec![Event::Warning { message }]).is_ok()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bucket_allows_a_burst_then_the_rate() {
        let mut r = RateLimiter::new(3, 2.0);
        let t = Instant::now();
        let a: IpAddr = "10.0.0.1".parse().unwrap();
        let b: IpAddr = "10.0.0.2".parse().unwrap();
        assert!((0..3).all(|_| r.allow(a, t)));
        assert!(!r.allow(a, t), "burst spent");
        assert!(r.allow(b, t), "another address is not affected");
        assert!(!r.allow(a, t + Duration::from_millis(400)));
        assert!(r.allow(a, t + Duration::from_millis(1100)), "refilled at 2 per second");
    }

    #[test]
    fn bucket_table_stays_bounded() {
        let mut r = RateLimiter::new(1, 1.0);
        let t = Instant::now();
        for i in 0..(3 * MAX_TRACKED as u32) {
            r.allow(IpAddr::from(i.to_be_bytes()), t);
        }
        assert!(r.buckets.len() <= MAX_TRACKED);
    }

    #[test]
    fn keys_are_the_ipv4_address_or_the_ipv6_address_and_its_64() {
        let v4: IpAddr = "10.0.0.7".parse().unwrap();
        assert_eq!(AddrKey::of(v4), (AddrKey::V4("10.0.0.7".parse().unwrap()), None));
        let mapped: IpAddr = "::ffff:10.0.0.7".parse().unwrap();
        assert_eq!(AddrKey::of(mapped), AddrKey::of(v4), "an IPv4-mapped address is its IPv4 address");
        let a: IpAddr = "fd00:1:2:3:aaaa::1".parse().unwrap();
        let b: IpAddr = "fd00:1:2:3:bbbb::2".parse().unwrap();
        let c: IpAddr = "fd00:1:2:4::1".parse().unwrap();
        assert_ne!(AddrKey::of(a).0, AddrKey::of(b).0);
        assert_eq!(AddrKey::of(a).1, AddrKey::of(b).1, "one /64");
        assert_ne!(AddrKey::of(a).1, AddrKey::of(c).1, "another /64");
        assert_eq!(AddrKey::of(a).1.unwrap().to_string(), "fd00:1:2:3::/64");
    }

    #[test]
    fn open_connections_are_bounded_per_address_and_per_64_while_held() {
        let limits = OpenPerAddr::new(2, 3);
        let ip = |s: &str| s.parse::<IpAddr>().unwrap();
        let x = limits.hold(ip("10.0.0.1")).unwrap();
        let _y = limits.hold(ip("::ffff:10.0.0.1")).unwrap();
        assert_eq!(limits.hold(ip("10.0.0.1")).unwrap_err(), AddrKey::V4("10.0.0.1".parse().unwrap()));
        assert!(limits.hold(ip("10.0.0.2")).is_ok(), "another address is not affected");
        drop(x);
        let _z = limits.hold(ip("10.0.0.1")).expect("a place came free");
        // Three of one /64, each from its own address: the fourth is refused for the /64.
        let held: Vec<AddrHold> =
            (1..=3).map(|i| limits.hold(ip(&format!("fd00::{i}"))).expect("under both bounds")).collect();
        let net = limits.hold(ip("fd00::4")).unwrap_err();
        assert_eq!(net.to_string(), "fd00::/64");
        assert_eq!(limits.open(net), 3);
        assert!(limits.hold(ip("fd00:0:0:1::4")).is_ok(), "another /64");
        drop(held);
        assert_eq!(limits.open(net), 0);
        assert!(
            limits.open.lock().unwrap().keys().all(|k| matches!(k, AddrKey::V4(_))),
            "an address leaves the table with its last connection"
        );
    }

    #[test]
    fn warnings_are_rate_limited() {
        let (tx, mut rx) = mpsc::unbounded_channel();
        let w = Warner::new(tx, Duration::from_secs(60));
        let ip: IpAddr = "10.0.0.9".parse().unwrap();
        assert!(w.warn(WarnKind::WrongPassphrase, ip, || "one".into()));
        assert!(!w.warn(WarnKind::WrongPassphrase, ip, || "two".into()), "same kind and address: quiet");
        assert!(w.warn(WarnKind::NoPassphrase, ip, || "three".into()));
        let mut sent = 2;
        for i in 0..100u32 {
            sent += w.warn(WarnKind::Flood, IpAddr::from(i.to_be_bytes()), || "flood".into()) as u32;
        }
        assert_eq!(sent, Warner::BURST, "at most a burst in all");
        assert!(matches!(rx.try_recv().as_deref(), Ok([Event::Warning { message }]) if message == "one"));
    }
}
