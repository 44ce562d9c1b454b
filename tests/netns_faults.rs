//! Never lose an answer, under real faults: real `lanpeer --json` processes, each in
//! its own Linux network namespace on one bridge, with packet loss (nftables `numgen random`), a
//! partition (`ip link set eth0 down`), a crash (SIGKILL and restart on the same data dir), a
//! frozen laptop (SIGSTOP / SIGCONT), a late joiner, and a partitioned peer that comes back while
//! the author of what it missed is away (so that it catches up from another peer first).
//!
//! Every scenario prints what it measured (messages sent, received, duplicates, out of order, time
//! to heal or to catch up) and asserts that every addressee gets every message exactly once, in
//! the order its author sent it (message ids are `<author>-<seq>`, seq increasing in send order).
//!
//! Layout of one scenario (test number N; every name unique to the run; nothing is added to the
//! root namespace, so the scenarios run in parallel with each other and with other tests):
//!
//! ```text
//!   <tag>sw : bridge br0, ports s1..sK
//!   <tag>h1 : eth0 10.232.N.11/24  <-veth->  s1
//!   ...
//! ```
//!
//! Needs root, `ip` (iproute2) and `nft` (nftables). Without them the tests fail, unless
//! `LANPEER_SKIP_NETNS=1` is set. A guard kills every child and deletes every namespace, also when
//! a test panics (then the peers' debug logs are kept in a temp dir, whose name is printed).
//! Every wait has a deadline. `LANPEER_KEEP_LOGS=1` keeps the logs of a passing run too.
//!
//! Run: `cargo test --test netns_faults -- --nocapture` (as root) to see the figures.
#![cfg(target_os = "linux")]

mod support;

use std::collections::{HashMap, HashSet};
use std::thread;
use std::time::{Duration, Instant};

use serde_json::Value;
use support::netns::{Host, Lab, ip, is_peer_id, lab_or_skip, ms, need_root, need_tool, run, text, wait_deadline};

/// Start-up: ready, and every peer lists every other, within this.
const START_LIMIT: Duration = Duration::from_secs(10);
/// One event of an exercise step (problem, answer, feedback) reaches its next actor within this.
const STEP_LIMIT: Duration = Duration::from_secs(5);
/// After everything arrived, this long without any further message event (late duplicates).
const QUIET: Duration = Duration::from_millis(1500);
/// The default expiry timeout of a silent peer.
const EXPIRY: Duration = Duration::from_secs(5);

// ---------------------------------------------------------------------------------------------
// What the peers report.

/// A chat, problem, answer or feedback event.
fn is_message(v: &Value) -> bool {
    matches!(text(v, "event"), "chat" | "problem" | "answer" | "feedback")
}

fn is_own(v: &Value) -> bool {
    v.get("own").and_then(Value::as_bool) == Some(true)
}

/// `<author>-<seq>`.
fn split_id(id: &str) -> Option<(&str, u64)> {
    let (a, s) = id.rsplit_once('-')?;
    Some((a, s.parse().ok()?))
}

impl Host {
    /// Ids of this peer's own messages reported since `since`, in order; waits (bounded) until
    /// `n` are reported.
    fn own_ids(&self, since: usize, n: usize, limit: Duration) -> Vec<String> {
        let got = self.wait_until(Instant::now() + limit, |evs| {
            let ids: Vec<String> = evs
                .iter()
                .skip(since)
                .filter(|(_, v)| is_message(v) && is_own(v))
                .map(|(_, v)| text(v, "id").to_string())
                .collect();
            (ids.len() >= n).then_some(ids)
        });
        got.unwrap_or_else(|| {
            panic!("{}: fewer than {n} own messages reported; events:\n{}", self.name, self.events_since(since))
        })
    }

    fn pid(&self) -> i32 {
        self.child.as_ref().map(|c| c.id() as i32).unwrap_or_else(|| panic!("{}: not running", self.name))
    }
}

// ---------------------------------------------------------------------------------------------
// The lab (tests/support/netns.rs), and what these scenarios do with it.

impl Lab {
    /// Wait for host `i`'s ready event; returns its id (also kept in the host).
    fn ready(&mut self, i: usize) -> String {
        let h = &self.hosts[i];
        let (_, ready) = h.expect(0, h.spawned + START_LIMIT, "ready event", |v| text(v, "event") == "ready");
        let id = text(&ready, "id").to_string();
        assert!(is_peer_id(&id), "{}: ready id is not 32 hex digits: {ready}", h.name);
        self.hosts[i].id = id.clone();
        id
    }

    /// Start the peers `which`, and wait until each lists every other. Returns their ids.
    fn start(&mut self, which: &[usize]) -> Vec<String> {
        for &i in which {
            self.spawn(i);
        }
        let ids: Vec<String> = which.iter().map(|&i| self.ready(i)).collect();
        let deadline = Instant::now() + START_LIMIT;
        for &i in which {
            for &j in which.iter().filter(|&&j| j != i) {
                let idj = self.hosts[j].id.clone();
                self.hosts[i].expect(0, deadline, &format!("peer_joined of host{}", j + 1), |v| {
                    text(v, "event") == "peer_joined" && text(v, "id") == idj
                });
            }
        }
        ids
    }

    /// SIGKILL host `i` and reap it.
    fn kill(&mut self, i: usize) {
        let h = &mut self.hosts[i];
        let c = h.child.as_mut().expect("running");
        c.kill().expect("SIGKILL");
        wait_deadline(c, Duration::from_secs(5)).unwrap_or_else(|| panic!("{} not reaped after SIGKILL", h.name));
        h.stdin.take();
    }

    fn signal(&self, i: usize, sig: libc::c_int) {
        // SAFETY: kill(2) on the pid of our own child, which has not been reaped.
        let r = unsafe { libc::kill(self.hosts[i].pid(), sig) };
        assert_eq!(r, 0, "kill({sig}) on {}: {}", self.hosts[i].name, std::io::Error::last_os_error());
    }

    fn link(&self, i: usize, up: bool) {
        let state = if up { "up" } else { "down" };
        ip(&["-n", &self.hosts[i].ns, "link", "set", "eth0", state])
            .unwrap_or_else(|e| panic!("eth0 {state} in host{}: {e}", i + 1));
    }

    fn nft(&self, i: usize, cmd: &str) -> Result<String, String> {
        run("ip", &["netns", "exec", &self.hosts[i].ns, "nft", cmd])
    }

    /// Drop one packet in `one_in` on host `i`'s eth0, both ways (with counters).
    fn lossy(&self, i: usize, one_in: u32) {
        let rules = [
            "add table inet lossy".to_string(),
            "add chain inet lossy in { type filter hook input priority 0; }".to_string(),
            "add chain inet lossy out { type filter hook output priority 0; }".to_string(),
            format!("add rule inet lossy in iifname \"eth0\" numgen random mod {one_in} == 0 counter drop"),
            format!("add rule inet lossy out oifname \"eth0\" numgen random mod {one_in} == 0 counter drop"),
        ];
        for r in &rules {
            self.nft(i, r).unwrap_or_else(|e| panic!("host{}: nft {r}: {e}", i + 1));
        }
    }

    /// Packets dropped so far by host `i`'s loss rules.
    fn dropped(&self, i: usize) -> u64 {
        let listing = self.nft(i, "list table inet lossy").unwrap_or_default();
        let words: Vec<&str> = listing.split_whitespace().collect();
        words.windows(2).filter(|w| w[0] == "packets").filter_map(|w| w[1].parse::<u64>().ok()).sum()
    }
}

/// `n` hosts on subnet 10.232.<net>.0/24, or None when the machine cannot build them and
/// LANPEER_SKIP_NETNS=1.
fn lab(net: u8, n: usize) -> Option<Lab> {
    let names: Vec<String> = (1..=n).map(|i| format!("host{i}")).collect();
    let names: Vec<&str> = names.iter().map(String::as_str).collect();
    let lab = need_root()
        .and_then(|()| need_tool("nft", "for the packet-loss test"))
        .and_then(|()| Lab::new(&format!("lf{net}"), [10, 232, net], &names));
    lab_or_skip(lab, "netns fault test", "root, iproute2 (`ip netns`) and nftables")
}

// ---------------------------------------------------------------------------------------------
// Accounting: what one receiver got, against what it should get.

#[derive(Debug, Default)]
struct Tally {
    /// Message events (not own) seen.
    events: usize,
    /// Distinct ids among them.
    unique: usize,
    /// Events whose id was already reported.
    duplicates: usize,
    /// First reports whose seq is below one already reported from the same author.
    out_of_order: usize,
    /// A few examples of each problem, for the failure message.
    examples: Vec<String>,
    /// Expected ids not (yet) reported.
    missing: Vec<String>,
    /// Ids reported that were not expected.
    unexpected: Vec<String>,
    /// When the last expected id was first reported.
    complete_at: Option<Instant>,
}

fn tally<'a>(events: impl IntoIterator<Item = &'a (Instant, Value)>, expected: &[String]) -> Tally {
    let want: HashSet<&str> = expected.iter().map(String::as_str).collect();
    let mut t = Tally::default();
    let mut seen: HashSet<String> = HashSet::new();
    let mut max_seq: HashMap<String, u64> = HashMap::new();
    let mut remaining = want.len();
    for (at, v) in events {
        if !is_message(v) || is_own(v) {
            continue;
        }
        t.events += 1;
        let id = text(v, "id");
        if !seen.insert(id.to_string()) {
            t.duplicates += 1;
            if t.examples.len() < 8 {
                t.examples.push(format!("duplicate {id} (report #{})", t.events));
            }
            continue;
        }
        if want.contains(id) {
            remaining -= 1;
            if remaining == 0 {
                t.complete_at = Some(*at);
            }
        } else {
            t.unexpected.push(id.to_string());
        }
        if let Some((author, seq)) = split_id(id) {
            let max = max_seq.entry(author.to_string()).or_insert(0);
            if seq < *max {
                t.out_of_order += 1;
                if t.examples.len() < 8 {
                    t.examples.push(format!("{id} after {author}-{} (report #{})", *max, t.events));
                }
            }
            *max = (*max).max(seq);
        }
    }
    t.unique = seen.len();
    t.missing = expected.iter().filter(|id| !seen.contains(*id)).cloned().collect();
    t
}

/// Wait (until `deadline`) for host `h` to report every id of `expected` since event `since`,
/// then QUIET more (late duplicates); the final tally.
fn collect(h: &Host, since: usize, expected: &[String], deadline: Instant) -> Tally {
    let done = h.wait_until(deadline, |evs| {
        let t = tally(evs.iter().skip(since), expected);
        t.missing.is_empty().then_some(())
    });
    if done.is_some() {
        thread::sleep(QUIET);
    }
    tally(h.events().iter().skip(since), expected)
}

/// Print one receiver's figures; add its faults to `failures`.
fn report(what: &str, h: &Host, sent: usize, t: &Tally, t0: Instant, failures: &mut Vec<String>) {
    let done = t.complete_at.map_or_else(|| "never complete".to_string(), |c| ms(c.saturating_duration_since(t0)));
    println!(
        "  {what}: {}: sent {sent}, received {} reports ({} distinct), duplicates {}, out of order {}, \
         missing {}, unexpected {}; complete {done}",
        h.name,
        t.events,
        t.unique,
        t.duplicates,
        t.out_of_order,
        t.missing.len(),
        t.unexpected.len()
    );
    let few = |v: &[String]| v.iter().take(5).cloned().collect::<Vec<_>>().join(", ");
    if !t.missing.is_empty() {
        failures.push(format!("{what}: {} lacks {} of {sent}: {} ...", h.name, t.missing.len(), few(&t.missing)));
    }
    if t.duplicates > 0 || t.out_of_order > 0 {
        failures.push(format!(
            "{what}: {} got {} duplicates and {} out of order: {}",
            h.name,
            t.duplicates,
            t.out_of_order,
            t.examples.join("; ")
        ));
    }
    if !t.unexpected.is_empty() {
        failures.push(format!("{what}: {} reported unexpected ids: {} ...", h.name, few(&t.unexpected)));
    }
}

fn peer_lefts(h: &Host, since: usize) -> usize {
    h.events().iter().skip(since).filter(|(_, v)| text(v, "event") == "peer_left").count()
}

fn finish(what: &str, failures: &[String], lab: &Lab) {
    assert!(failures.is_empty(), "{what} ({}) failed:\n  {}", lab.tag, failures.join("\n  "));
    for h in &lab.hosts {
        let bad = h.out.0.lock().unwrap().bad_lines.clone();
        assert!(bad.is_empty(), "{}: stdout lines that are not JSON objects: {bad:?}", h.name);
    }
}

// ---------------------------------------------------------------------------------------------
// The scenarios.

/// 10% packet loss on every host (both ways on eth0) while host1 sends 300 chats as fast as its
/// stdin takes them: hosts 2-4 get all of them, exactly once, in order.
#[test]
fn packet_loss_300_chats_exactly_once_in_order() {
    const SENT: usize = 300;
    const PACE: Duration = Duration::from_millis(10);
    let started = Instant::now();
    let Some(mut lab) = lab(1, 4) else { return };
    let tag = lab.tag.clone();
    lab.start(&[0, 1, 2, 3]);
    for i in 0..4 {
        lab.lossy(i, 10);
    }
    let marks: Vec<usize> = lab.hosts.iter().map(Host::mark).collect();
    let t0 = Instant::now();
    for k in 0..SENT {
        lab.hosts[0].send(&format!("lossy {k} {tag}"));
        // Paced a little: many small segments, so that many are dropped.
        thread::sleep(PACE);
    }
    let expected = lab.hosts[0].own_ids(marks[0], SENT, Duration::from_secs(30));
    let deadline = t0 + Duration::from_secs(60);
    let mut failures = Vec::new();
    println!("1. 10% loss each way on every host; host1 sent {SENT} chats, one every {} ({tag})", ms(PACE));
    for (h, &mark) in lab.hosts.iter().zip(&marks).skip(1) {
        let t = collect(h, mark, &expected, deadline);
        report("loss", h, SENT, &t, t0, &mut failures);
    }
    let dropped: Vec<u64> = (0..4).map(|i| lab.dropped(i)).collect();
    let lefts: Vec<usize> = (0..4).map(|i| peer_lefts(&lab.hosts[i], marks[i])).collect();
    println!(
        "  loss: packets dropped by the rules per host {dropped:?}; peer_left events per host {lefts:?}; \
         scenario {}",
        ms(started.elapsed())
    );
    finish("packet loss", &failures, &lab);
}

/// host3's link goes down for 8 s (longer than the expiry) while host1 sends a chat every 50 ms:
/// host2 gets everything as it comes, host3 everything after it heals; both once, in order.
#[test]
fn partition_heals_without_loss() {
    const BEFORE: usize = 40;
    const DURING: usize = 160;
    const AFTER: usize = 40;
    const PACE: Duration = Duration::from_millis(50);
    let started = Instant::now();
    let Some(mut lab) = lab(2, 3) else { return };
    let tag = lab.tag.clone();
    lab.start(&[0, 1, 2]);
    let marks: Vec<usize> = lab.hosts.iter().map(Host::mark).collect();
    let t0 = Instant::now();
    let mut t_down = t0;
    let mut t_up = t0;
    for k in 0..BEFORE + DURING + AFTER {
        if k == BEFORE {
            lab.link(2, false);
            t_down = Instant::now();
        }
        if k == BEFORE + DURING {
            lab.link(2, true);
            t_up = Instant::now();
        }
        lab.hosts[0].send(&format!("partition {k} {tag}"));
        thread::sleep(PACE);
    }
    let sent = BEFORE + DURING + AFTER;
    let expected = lab.hosts[0].own_ids(marks[0], sent, Duration::from_secs(10));
    let deadline = Instant::now() + Duration::from_secs(30);
    let mut failures = Vec::new();
    println!(
        "2. host3 partitioned for {} while host1 sent {sent} chats, one every {} ({tag})",
        ms(t_up - t_down),
        ms(PACE)
    );
    let t2 = collect(&lab.hosts[1], marks[1], &expected, deadline);
    report("partition", &lab.hosts[1], sent, &t2, t0, &mut failures);
    let t3 = collect(&lab.hosts[2], marks[2], &expected, deadline);
    report("partition", &lab.hosts[2], sent, &t3, t0, &mut failures);
    // Healing: host3 hears host1 again, and has everything sent before the link came back.
    let id1 = lab.hosts[0].id.clone();
    let evs = lab.hosts[2].events();
    let rejoined = evs
        .iter()
        .skip(marks[2])
        .find(|(t, v)| *t >= t_up && text(v, "event") == "peer_joined" && text(v, "id") == id1)
        .map(|(t, _)| *t - t_up);
    let healed = tally(evs.iter().skip(marks[2]), &expected[..BEFORE + DURING]).complete_at.map(|t| t - t_up);
    let lefts = evs.iter().skip(marks[2]).filter(|(_, v)| text(v, "event") == "peer_left").count();
    println!(
        "  partition: host3 reported {lefts} peer_left; after the link came up: host1 rejoined in {}, \
         all {} messages sent before then delivered in {}; scenario {}",
        rejoined.map_or("never".into(), ms),
        BEFORE + DURING,
        healed.map_or("never".into(), ms),
        ms(started.elapsed())
    );
    finish("partition", &failures, &lab);
}

/// host3 is SIGKILLed in the middle of a stream of chats from host1 (one every 20 ms); host1 goes
/// on sending, host2 posts a problem, host1 answers, host2 gives feedback; host3 restarts on the
/// same data dir: same id, it catches up on everything it had not reported, once, in order, and
/// reports nothing it reported before the kill.
#[test]
fn crash_and_restart_catches_up_once() {
    const EARLY: usize = 20;
    const STREAM: usize = 40;
    const KILL_AT: usize = 15;
    const LATER: usize = 10;
    const PACE: Duration = Duration::from_millis(20);
    let started = Instant::now();
    let Some(mut lab) = lab(3, 3) else { return };
    let tag = lab.tag.clone();
    let ids = lab.start(&[0, 1, 2]);
    let mut failures = Vec::new();

    // Before the crash: 20 chats, all reported by host3.
    let m0 = lab.hosts[0].mark();
    for k in 0..EARLY {
        lab.hosts[0].send(&format!("before crash {k} {tag}"));
    }
    let early = lab.hosts[0].own_ids(m0, EARLY, Duration::from_secs(10));
    let t = collect(&lab.hosts[2], 0, &early, Instant::now() + Duration::from_secs(10));
    report("before crash", &lab.hosts[2], EARLY, &t, started, &mut failures);
    finish("crash (before the kill)", &failures, &lab);

    // A stream of chats, host3 killed in its middle; then more while host3 is down.
    let marks: Vec<usize> = lab.hosts.iter().map(Host::mark).collect();
    let mut t_kill = Instant::now();
    for k in 0..STREAM {
        if k == KILL_AT {
            lab.kill(2);
            t_kill = Instant::now();
        }
        lab.hosts[0].send(&format!("stream {k} {tag}"));
        thread::sleep(PACE);
    }
    let id3 = ids[2].clone();
    let (t_left, v) = lab.hosts[0].expect(marks[0], t_kill + EXPIRY + Duration::from_secs(2), "peer_left host3", |v| {
        text(v, "event") == "peer_left" && text(v, "id") == id3
    });
    println!(
        "3. host3 SIGKILLed after {KILL_AT} of {STREAM} chats; host1 reported it gone ({}) after {}",
        text(&v, "reason"),
        ms(t_left - t_kill)
    );
    for k in 0..LATER {
        lab.hosts[0].send(&format!("while host3 is down {k} {tag}"));
    }
    let title = format!("Crash problem {tag}");
    lab.hosts[1].send(&format!("/problem {title} | posted while host3 is down"));
    let (_, p) = lab.hosts[0].expect(marks[0], Instant::now() + STEP_LIMIT, "the problem", |v| {
        text(v, "event") == "problem" && text(v, "title") == title
    });
    let pid = text(&p, "id").to_string();
    lab.hosts[0].send(&format!("/answer {pid} answered while host3 is down {tag}"));
    let (_, a) = lab.hosts[1].expect(marks[1], Instant::now() + STEP_LIMIT, "the answer", |v| {
        text(v, "event") == "answer" && text(v, "problem_id") == pid
    });
    let aid = text(&a, "id").to_string();
    lab.hosts[1].send(&format!("/feedback {aid} feedback while host3 is down {tag}"));
    let mut all = lab.hosts[0].own_ids(marks[0], STREAM + LATER + 1, Duration::from_secs(10));
    all.extend(lab.hosts[1].own_ids(marks[1], 2, Duration::from_secs(10)));
    thread::sleep(Duration::from_millis(300));

    // What host3 reported before it died (of this stream), and so must not report again.
    let before: Vec<String> = lab.hosts[2]
        .events()
        .iter()
        .skip(marks[2])
        .filter(|(_, v)| is_message(v) && !is_own(v))
        .map(|(_, v)| text(v, "id").to_string())
        .collect();
    let expected: Vec<String> = all.iter().filter(|id| !before.contains(id)).cloned().collect();

    // Restart on the same data dir.
    lab.spawn(2);
    let t_restart = lab.hosts[2].spawned;
    let id = lab.ready(2);
    if id != ids[2] {
        failures.push(format!("host3 restarted with id {id}, not its id before the crash {}", ids[2]));
    }
    let t = collect(&lab.hosts[2], 0, &expected, Instant::now() + Duration::from_secs(20));
    let reported_before: HashSet<String> = lab.hosts[2].earlier[0]
        .0
        .lock()
        .unwrap()
        .events
        .iter()
        .filter(|(_, v)| is_message(v))
        .map(|(_, v)| text(v, "id").to_string())
        .collect();
    let again: Vec<String> = lab.hosts[2]
        .events()
        .iter()
        .filter(|(_, v)| is_message(v) && reported_before.contains(text(v, "id")))
        .map(|(_, v)| text(v, "id").to_string())
        .collect();
    println!(
        "  host3 had reported {} of the {} messages of the stream before it died; after the restart \
         (down {}) it should report the other {}:",
        before.len(),
        all.len(),
        ms(t_restart - t_kill),
        expected.len()
    );
    report("after restart", &lab.hosts[2], expected.len(), &t, t_restart, &mut failures);
    println!(
        "  after restart: same id: {}; reported again from before the kill: {}; caught up {} after the \
         restart; scenario {}",
        id == ids[2],
        again.len(),
        t.complete_at.map_or("never".into(), |c| ms(c - t_restart)),
        ms(started.elapsed())
    );
    if !again.is_empty() {
        failures.push(format!("host3 reported again after the restart: {again:?}"));
    }
    finish("crash and restart", &failures, &lab);
}

/// host3 is frozen (SIGSTOP) for 7 s, longer than the expiry, while host1 sends a chat every
/// 50 ms; after SIGCONT nothing is lost and nothing duplicated, on host3 nor host2.
#[test]
fn frozen_peer_loses_nothing() {
    const BEFORE: usize = 20;
    const DURING: usize = 140;
    const AFTER: usize = 20;
    const PACE: Duration = Duration::from_millis(50);
    let started = Instant::now();
    let Some(mut lab) = lab(4, 3) else { return };
    let tag = lab.tag.clone();
    lab.start(&[0, 1, 2]);
    let marks: Vec<usize> = lab.hosts.iter().map(Host::mark).collect();
    let t0 = Instant::now();
    let mut t_stop = t0;
    let mut t_cont = t0;
    for k in 0..BEFORE + DURING + AFTER {
        if k == BEFORE {
            lab.signal(2, libc::SIGSTOP);
            t_stop = Instant::now();
        }
        if k == BEFORE + DURING {
            lab.signal(2, libc::SIGCONT);
            t_cont = Instant::now();
        }
        lab.hosts[0].send(&format!("frozen {k} {tag}"));
        thread::sleep(PACE);
    }
    let sent = BEFORE + DURING + AFTER;
    let expected = lab.hosts[0].own_ids(marks[0], sent, Duration::from_secs(10));
    let deadline = Instant::now() + Duration::from_secs(30);
    let mut failures = Vec::new();
    println!("4. host3 frozen (SIGSTOP) for {} while host1 sent {sent} chats ({tag})", ms(t_cont - t_stop));
    let t2 = collect(&lab.hosts[1], marks[1], &expected, deadline);
    report("frozen", &lab.hosts[1], sent, &t2, t0, &mut failures);
    let t3 = collect(&lab.hosts[2], marks[2], &expected, deadline);
    report("frozen", &lab.hosts[2], sent, &t3, t0, &mut failures);
    let evs = lab.hosts[2].events();
    let healed = tally(evs.iter().skip(marks[2]), &expected[..BEFORE + DURING]).complete_at.map(|t| t - t_cont);
    let left1 = peer_lefts(&lab.hosts[0], marks[0]);
    let left3 = peer_lefts(&lab.hosts[2], marks[2]);
    println!(
        "  frozen: peer_left reported by host1 {left1}, by host3 {left3}; everything sent while frozen \
         delivered {} after SIGCONT; scenario {}",
        healed.map_or("never".into(), ms),
        ms(started.elapsed())
    );
    finish("frozen peer", &failures, &lab);
}

/// host4 joins after two problems, their answers and feedback, and 15 chats were posted by
/// hosts 1-3: it reports every one of them once (by catch-up), in order per author.
#[test]
fn late_joiner_sees_the_exercises_and_recent_chat() {
    let started = Instant::now();
    let Some(mut lab) = lab(5, 4) else { return };
    let tag = lab.tag.clone();
    lab.start(&[0, 1, 2]);
    let marks: Vec<usize> = lab.hosts.iter().map(Host::mark).collect();
    let chats = |lab: &mut Lab, round: usize| {
        for i in 0..3 {
            for k in 0..3 {
                lab.hosts[i].send(&format!("chat {round}.{k} from host{} {tag}", i + 1));
            }
        }
    };
    chats(&mut lab, 1);

    // Problem 1 by host1, answered by host2, feedback by host3.
    let step = |lab: &mut Lab, by: usize, line: String, next: usize, event: &str, key: &str, val: String| -> String {
        let m = lab.hosts[next].mark();
        lab.hosts[by].send(&line);
        let (_, v) = lab.hosts[next].expect(m, Instant::now() + STEP_LIMIT, event, |v| {
            text(v, "event") == event && (key.is_empty() || text(v, key) == val)
        });
        text(&v, "id").to_string()
    };
    let t1 = format!("Late one {tag}");
    let p1 = step(&mut lab, 0, format!("/problem {t1} | first"), 1, "problem", "title", t1.clone());
    let a1 = step(&mut lab, 1, format!("/answer {p1} answer one {tag}"), 2, "answer", "problem_id", p1.clone());
    step(&mut lab, 2, format!("/feedback {a1} nice one {tag}"), 0, "feedback", "answer_id", a1.clone());
    chats(&mut lab, 2);
    // Problem 2 by host2, answered by host3, feedback by host1.
    let t2 = format!("Late two {tag}");
    let p2 = step(&mut lab, 1, format!("/problem {t2} | second"), 2, "problem", "title", t2.clone());
    let a2 = step(&mut lab, 2, format!("/answer {p2} answer two {tag}"), 0, "answer", "problem_id", p2.clone());
    step(&mut lab, 0, format!("/feedback {a2} nice two {tag}"), 1, "feedback", "answer_id", a2.clone());
    chats(&mut lab, 3);
    let mut expected = Vec::new();
    expected.extend(lab.hosts[0].own_ids(marks[0], 9 + 2, Duration::from_secs(10)));
    expected.extend(lab.hosts[1].own_ids(marks[1], 9 + 2, Duration::from_secs(10)));
    expected.extend(lab.hosts[2].own_ids(marks[2], 9 + 2, Duration::from_secs(10)));
    let sent = expected.len();
    // Everyone already present has everything (so catch-up can come from any of them).
    for (h, &mark) in lab.hosts.iter().zip(&marks).take(3) {
        let mine: HashSet<String> = h.own_ids(mark, 11, Duration::ZERO).into_iter().collect();
        let theirs: Vec<String> = expected.iter().filter(|id| !mine.contains(*id)).cloned().collect();
        let deadline = Instant::now() + Duration::from_secs(10);
        h.wait_until(deadline, |evs| tally(evs.iter().skip(mark), &theirs).missing.is_empty().then_some(()));
    }

    lab.spawn(3);
    let t_spawn = lab.hosts[3].spawned;
    lab.ready(3);
    let mut failures = Vec::new();
    println!("5. host4 joins after 6 exercise messages and 27 chats by hosts 1-3 ({tag})");
    let t = collect(&lab.hosts[3], 0, &expected, Instant::now() + Duration::from_secs(15));
    report("late joiner", &lab.hosts[3], sent, &t, t_spawn, &mut failures);
    // Its exercise view holds both problems, each with its answer and feedback.
    let m = lab.hosts[3].mark();
    lab.hosts[3].send("/problems");
    let (_, v) = lab.hosts[3].expect(m, Instant::now() + STEP_LIMIT, "problems", |v| text(v, "event") == "problems");
    let problems = v.get("problems").and_then(Value::as_array).cloned().unwrap_or_default();
    let mut counts = (0, 0, 0);
    for p in &problems {
        counts.0 += 1;
        for a in p.get("answers").and_then(Value::as_array).into_iter().flatten() {
            counts.1 += 1;
            counts.2 += a.get("feedback").and_then(Value::as_array).map_or(0, Vec::len);
        }
    }
    println!(
        "  late joiner: /problems shows {} problems, {} answers, {} feedback; scenario {}",
        counts.0,
        counts.1,
        counts.2,
        ms(started.elapsed())
    );
    if counts != (2, 2, 2) {
        failures.push(format!("host4's /problems: {counts:?} (problems, answers, feedback), want (2, 2, 2): {v}"));
    }
    finish("late joiner", &failures, &lab);
}

/// host3 is partitioned while host1 sends 150 chats; host1 is away (link down) when host3 comes
/// back, so host3 first meets only host2, which holds all of them and offers it catch-up; then
/// host1 returns. host3 must end with every chat, once, in host1's order.
#[test]
fn partitioned_peer_heals_while_the_author_is_away() {
    const BEFORE: usize = 10;
    const DURING: usize = 150;
    const PACE: Duration = Duration::from_millis(20);
    let started = Instant::now();
    let Some(mut lab) = lab(6, 3) else { return };
    let tag = lab.tag.clone();
    let ids = lab.start(&[0, 1, 2]);
    let marks: Vec<usize> = lab.hosts.iter().map(Host::mark).collect();
    let t0 = Instant::now();
    for k in 0..BEFORE {
        lab.hosts[0].send(&format!("author away {k} {tag}"));
    }
    let first = lab.hosts[0].own_ids(marks[0], BEFORE, Duration::from_secs(10));
    collect(&lab.hosts[2], marks[2], &first, Instant::now() + Duration::from_secs(10));
    lab.link(2, false);
    let t_down = Instant::now();
    for k in BEFORE..BEFORE + DURING {
        lab.hosts[0].send(&format!("author away {k} {tag}"));
        thread::sleep(PACE);
    }
    let sent = BEFORE + DURING;
    let expected = lab.hosts[0].own_ids(marks[0], sent, Duration::from_secs(10));
    let mut failures = Vec::new();
    let t2 = collect(&lab.hosts[1], marks[1], &expected, Instant::now() + Duration::from_secs(10));
    report("author away", &lab.hosts[1], sent, &t2, t0, &mut failures);
    // The author leaves; host3 comes back (after its peers expired) and meets host2 alone.
    lab.link(0, false);
    thread::sleep((t_down + EXPIRY + Duration::from_secs(1)).saturating_duration_since(Instant::now()));
    let m3 = lab.hosts[2].mark();
    lab.link(2, true);
    let t_up3 = Instant::now();
    let id2 = ids[1].clone();
    let (t_meet, _) = lab.hosts[2].expect(m3, t_up3 + START_LIMIT, "peer_joined of host2 after the heal", |v| {
        text(v, "event") == "peer_joined" && text(v, "id") == id2
    });
    // Whatever host2 offers arrives; then the author comes back.
    thread::sleep(Duration::from_secs(2));
    let from_host2 = tally(lab.hosts[2].events().iter().skip(marks[2]), &expected).unique.saturating_sub(BEFORE);
    lab.link(0, true);
    let t_up1 = Instant::now();
    let t3 = collect(&lab.hosts[2], marks[2], &expected, t_up1 + Duration::from_secs(20));
    println!("6. host3 partitioned while host1 sent {DURING} chats; host1 away when host3 came back ({tag})");
    report("author away", &lab.hosts[2], sent, &t3, t0, &mut failures);
    println!(
        "  author away: host3 met host2 {} after its link came up and had {from_host2} of the {DURING} \
         from it 2 s later; complete {} after host1 came back; scenario {}",
        ms(t_meet - t_up3),
        t3.complete_at.map_or("never".into(), |c| ms(c.saturating_duration_since(t_up1))),
        ms(started.elapsed())
    );
    finish("author away", &failures, &lab);
}
