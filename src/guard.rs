//! Guards against floods: a per-address token bucket (connection attempts in the accept task,
//! beacons in the collect-listener) and the rate-limited warnings a node shows its user about
//! peers it refused (wrong passphrase, no passphrase, too many connections).
//!
//! Both keep a bounded table: when it is full, entries idle long enough to be back at full
//! credit are forgotten (they would behave the same as new ones), and if none is, the table is
//! cleared, which at worst gives a flooder one more burst.

use std::collections::HashMap;
use std::hash::Hash;
use std::net::IpAddr;
use std::sync::Mutex;
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
