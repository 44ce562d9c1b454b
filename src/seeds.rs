//! Seed peers: peers named by the user (`--peer HOST[:PORT]`, or `peer = ...` in a config file)
//! that are dialed by unicast, for networks where broadcast does not reach them.
//!
//! A seed is a host name or an address and the peer's TCP session port ([`DEFAULT_TCP_PORT`]
//! when none is given: a peer started without `--tcp-port` listens there when it is free). The
//! node dials every seed it has no live session with, resolving the name again on each attempt
//! (a laptop's name may point elsewhere after a new lease), and waits [`MIN_WAIT`], doubling to
//! [`MAX_WAIT`], between failed attempts. A seed that turns out to be this very peer is dropped.
//! Once a session with a seed is up, the seed is an ordinary peer, and gossip does the rest.
//!
//! Pure data and deadlines; the dial itself is `transport::dial::dial_seed`.

use std::time::{Duration, Instant};

use crate::config::DEFAULT_TCP_PORT;
use crate::id::PeerId;

/// First wait before dialing a seed again.
pub const MIN_WAIT: Duration = Duration::from_millis(500);
/// Longest wait between two dials of one seed.
pub const MAX_WAIT: Duration = Duration::from_secs(10);
/// Seeds at most (more are ignored, with a warning).
pub const MAX_SEEDS: usize = 64;

/// A seed as the user wrote it: a host (a name or an address) and a TCP port.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SeedAddr {
    /// A name (`lab-pc-1`, `teacher.local`) or an address (`10.0.4.17`, `fd00::17`, `fe80::1%eth0`).
    pub host: String,
    /// The peer's TCP session port.
    pub port: u16,
}

impl std::fmt::Display for SeedAddr {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if self.host.contains(':') {
            write!(f, "[{}]:{}", self.host, self.port)
        } else {
            write!(f, "{}:{}", self.host, self.port)
        }
    }
}

impl std::str::FromStr for SeedAddr {
    type Err = String;

    /// `HOST`, `HOST:PORT`, `[IPV6]`, `[IPV6]:PORT`, or a bare IPv6 address (no port).
    fn from_str(s: &str) -> Result<Self, String> {
        let s = s.trim();
        let bad =
            |why: &str| format!("cannot use {s:?} as a peer: {why}; write HOST or HOST:PORT, e.g. 10.0.4.17:5681");
        let port_of = |p: &str| match p.parse::<u16>() {
            Ok(0) | Err(_) => Err(bad("the port must be a number from 1 to 65535")),
            Ok(p) => Ok(p),
        };
        let (host, port) = if let Some(rest) = s.strip_prefix('[') {
            let Some((h, after)) = rest.split_once(']') else { return Err(bad("a '[' without ']'")) };
            match after {
                "" => (h, DEFAULT_TCP_PORT),
                _ => match after.strip_prefix(':') {
                    Some(p) => (h, port_of(p)?),
                    None => return Err(bad("something after ']' that is not :PORT")),
                },
            }
        } else if s.matches(':').count() > 1 {
            (s, DEFAULT_TCP_PORT) // a bare IPv6 address
        } else if let Some((h, p)) = s.split_once(':') {
            (h, port_of(p)?)
        } else {
            (s, DEFAULT_TCP_PORT)
        };
        if host.is_empty() {
            return Err(bad("no host"));
        }
        if host.chars().any(|c| c.is_whitespace() || c.is_control() || c == '/' || c == '@') {
            return Err(bad("not a host name or address"));
        }
        Ok(SeedAddr { host: host.to_string(), port })
    }
}

/// How a dial of a seed ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SeedOutcome {
    /// A session is up with this peer.
    Up(PeerId),
    /// No session (name not resolved, nobody answered, handshake refused).
    Failed,
    /// The seed is this very peer.
    Itself,
}

#[derive(Debug)]
struct Seed {
    addr: SeedAddr,
    peer: Option<PeerId>,
    next: Instant,
    wait: Duration,
    dialing: bool,
    itself: bool,
}

/// The seeds and when to dial each.
#[derive(Debug, Default)]
pub struct Seeds {
    list: Vec<Seed>,
}

impl Seeds {
    /// The seeds, first dialed at `now` (at most [`MAX_SEEDS`]; repeats are dropped).
    pub fn new(addrs: &[SeedAddr], now: Instant) -> Self {
        let mut list: Vec<Seed> = Vec::new();
        for a in addrs {
            if list.len() < MAX_SEEDS && !list.iter().any(|s| &s.addr == a) {
                list.push(Seed {
                    addr: a.clone(),
                    peer: None,
                    next: now,
                    wait: MIN_WAIT,
                    dialing: false,
                    itself: false,
                });
            }
        }
        Seeds { list }
    }

    /// Number of seeds.
    pub fn len(&self) -> usize {
        self.list.len()
    }

    /// True without seeds.
    pub fn is_empty(&self) -> bool {
        self.list.is_empty()
    }

    /// The seeds to dial now: due, not being dialed, and not live (`live` says whether we have
    /// a session with a peer). Each is marked dialing.
    pub fn due(&mut self, now: Instant, live: impl Fn(&PeerId) -> bool) -> Vec<(usize, SeedAddr)> {
        let mut out = Vec::new();
        for (i, s) in self.list.iter_mut().enumerate() {
            if s.itself || s.dialing || s.next > now || s.peer.as_ref().is_some_and(&live) {
                continue;
            }
            s.dialing = true;
            out.push((i, s.addr.clone()));
        }
        out
    }

    /// A dial of seed `i` ended. Returns the seed when it turned out to be this peer.
    pub fn done(&mut self, i: usize, outcome: SeedOutcome, now: Instant) -> Option<SeedAddr> {
        let s = self.list.get_mut(i)?;
        s.dialing = false;
        match outcome {
            SeedOutcome::Up(peer) => {
                s.peer = Some(peer);
                s.wait = MIN_WAIT;
                s.next = now + MIN_WAIT;
                None
            }
            SeedOutcome::Failed => {
                let jitter = rand::random_range(0..=s.wait.as_millis() as u64 / 4);
                s.next = now + s.wait + Duration::from_millis(jitter);
                s.wait = (s.wait * 2).min(MAX_WAIT);
                None
            }
            SeedOutcome::Itself => {
                s.itself = true;
                Some(s.addr.clone())
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(s: &str) -> Result<SeedAddr, String> {
        s.parse()
    }

    fn sa(host: &str, port: u16) -> SeedAddr {
        SeedAddr { host: host.into(), port }
    }

    #[test]
    fn parses_hosts_and_ports() {
        assert_eq!(p("10.0.4.17:4000").unwrap(), sa("10.0.4.17", 4000));
        assert_eq!(p("10.0.4.17").unwrap(), sa("10.0.4.17", DEFAULT_TCP_PORT));
        assert_eq!(p(" lab-pc-1:7 ").unwrap(), sa("lab-pc-1", 7));
        assert_eq!(p("teacher.local").unwrap(), sa("teacher.local", DEFAULT_TCP_PORT));
        assert_eq!(p("[fd00::1]:9").unwrap(), sa("fd00::1", 9));
        assert_eq!(p("[fe80::1%eth0]").unwrap(), sa("fe80::1%eth0", DEFAULT_TCP_PORT));
        assert_eq!(p("fd00::1").unwrap(), sa("fd00::1", DEFAULT_TCP_PORT));
        for bad in ["", ":5", "host:0", "host:70000", "host:x", "[fd00::1", "[fd00::1]x", "a b", "user@host"] {
            assert!(p(bad).is_err(), "{bad:?} accepted");
        }
        assert_eq!(sa("fd00::1", 9).to_string(), "[fd00::1]:9");
        assert_eq!(sa("pc", 9).to_string(), "pc:9");
    }

    #[test]
    fn dials_until_live_with_backoff() {
        let t = Instant::now();
        let a = sa("10.0.0.1", 1);
        let mut s = Seeds::new(&[a.clone(), a.clone(), sa("10.0.0.2", 1)], t);
        assert_eq!(s.len(), 2, "repeats dropped");
        let due = s.due(t, |_| false);
        assert_eq!(due.len(), 2);
        assert!(s.due(t, |_| false).is_empty(), "a dial under way is not repeated");
        s.done(0, SeedOutcome::Failed, t);
        assert!(s.due(t + MIN_WAIT / 2, |_| false).is_empty());
        assert_eq!(s.due(t + MIN_WAIT * 2, |_| false).len(), 1, "retried after the wait");
        s.done(0, SeedOutcome::Failed, t);
        assert!(s.due(t + MIN_WAIT + MIN_WAIT / 2, |_| false).is_empty(), "the wait doubled");
        // Up: not dialed while live, dialed again once it is not.
        let peer = PeerId([9; 16]);
        s.done(1, SeedOutcome::Up(peer), t);
        assert!(s.due(t + MAX_WAIT * 3, |p| *p == peer).iter().all(|(i, _)| *i != 1));
        s.done(0, SeedOutcome::Up(PeerId([8; 16])), t);
        assert_eq!(s.due(t + MIN_WAIT, |_| false).len(), 2);
        // Ourselves: never again.
        assert_eq!(s.done(0, SeedOutcome::Itself, t), Some(a));
        s.done(1, SeedOutcome::Failed, t);
        assert!(s.due(t + MAX_WAIT * 10, |_| false).iter().all(|(i, _)| *i != 0));
        // The wait is bounded.
        for _ in 0..20 {
            s.done(1, SeedOutcome::Failed, t);
        }
        assert_eq!(s.due(t + MAX_WAIT + MAX_WAIT / 4, |_| false).len(), 1);
    }
}
