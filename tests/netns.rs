//! End to end over a real (virtual) LAN: five `lanpeer --json` processes, each in its own
//! Linux network namespace, all plugged into one bridge, with default interface selection.
//!
//! Layout (every name unique to the run; nothing is added to the root namespace):
//!
//! ```text
//!   <tag>sw : bridge br0, ports s1..s5
//!   <tag>h1 : eth0 10.231.0.11/24 brd 10.231.0.255  <-veth->  s1
//!   ...
//!   <tag>h5 : eth0 10.231.0.15/24                    <-veth->  s5
//! ```
//!
//! Needs root and `ip` (iproute2); `python3` for the junk sender. Without them the test fails,
//! unless `LANPEER_SKIP_NETNS=1` is set. A guard kills every child and deletes every namespace,
//! also when the test panics. Every wait has a deadline.
//!
//! Run: `cargo test --test netns -- --nocapture` (as root) to see the measured figures.
#![cfg(target_os = "linux")]

mod support;

use std::net::SocketAddr;
use std::thread;
use std::time::{Duration, Instant};

use serde_json::Value;
use support::netns::{Host, Lab, ip, is_peer_id, lab_or_skip, ms, need_root, shown, text, wait_deadline};

const HOSTS: usize = 5;

/// Discovery: every peer lists every other this long after the last one was started.
const DISCOVERY_LIMIT: Duration = Duration::from_secs(2);
/// A chat, problem, answer or feedback reaches everyone within this.
const DELIVERY_LIMIT: Duration = Duration::from_secs(1);
/// A graceful leave is reported within this.
const LEAVE_LIMIT: Duration = Duration::from_secs(1);
/// The default expiry timeout of a silent peer.
const EXPIRY: Duration = Duration::from_secs(5);
/// Slack over the expiry for a SIGKILLed peer (its kernel closes its sockets, so usually faster).
const CRASH_SLACK: Duration = Duration::from_secs(1);
/// Slack over the expiry for a peer whose link went down (it was last heard up to one beacon or
/// keepalive interval before, plus the jitter of the expiry sweep).
const VANISH_SLACK: Duration = Duration::from_millis(1500);

// ---------------------------------------------------------------------------------------------
// The test.

/// Wait on every host in `who` for an event matching `pred`; returns the worst latency since
/// `t0` and the events. Panics (with `what`) if one is missing by `t0 + wait`.
fn expect_all(
    lab: &Lab,
    who: &[usize],
    marks: &[usize],
    t0: Instant,
    wait: Duration,
    what: &str,
    pred: impl Fn(usize, &Value) -> bool,
) -> (Duration, Vec<Value>) {
    let mut worst = Duration::ZERO;
    let mut found = Vec::new();
    for &i in who {
        let (t, v) = lab.hosts[i].expect(marks[i], t0 + wait, what, |v| pred(i, v));
        worst = worst.max(t.saturating_duration_since(t0));
        found.push(v);
    }
    (worst, found)
}

fn others(of: usize, alive: &[usize]) -> Vec<usize> {
    alive.iter().copied().filter(|&i| i != of).collect()
}

fn marks(lab: &Lab) -> Vec<usize> {
    lab.hosts.iter().map(Host::mark).collect()
}

#[test]
fn five_hosts_on_a_bridge() {
    let started = Instant::now();
    let names: Vec<String> = (1..=HOSTS).map(|i| format!("host{i}")).collect();
    let names: Vec<&str> = names.iter().map(String::as_str).collect();
    let lab = need_root().and_then(|()| Lab::new("lp", [10, 231, 0], &names));
    let Some(mut lab) = lab_or_skip(lab, "netns test", "root and iproute2 (`ip netns`)") else { return };
    let mut summary: Vec<String> = Vec::new();
    let all: Vec<usize> = (0..HOSTS).collect();
    let tag = lab.tag.clone();

    // ---- Start the five peers, read their ready events.
    for i in 0..HOSTS {
        lab.spawn(i);
    }
    let last_spawn = lab.hosts[HOSTS - 1].spawned;
    let mut last_ready = last_spawn;
    for i in 0..HOSTS {
        let h = &lab.hosts[i];
        let (t, ready) = match h.wait_for(0, h.spawned + Duration::from_secs(10), |v| text(v, "event") == "ready") {
            Some(r) => r,
            None => panic!(
                "{}: no ready event within 10 s (stdout {}). Events: \n{}stderr:\n{}",
                h.name,
                if h.out.0.lock().unwrap().eof { "closed" } else { "open" },
                h.events_since(0),
                h.stderr_tail(40)
            ),
        };
        last_ready = last_ready.max(t);
        let id = text(&ready, "id").to_string();
        assert!(is_peer_id(&id), "{}: ready id is not 32 hex digits: {ready}", h.name);
        assert_eq!(text(&ready, "name"), h.name, "{}: ready name: {ready}", h.name);
        assert!(!text(&ready, "room").is_empty(), "{}: ready without room: {ready}", h.name);
        let listen: SocketAddr = text(&ready, "listen")
            .parse()
            .unwrap_or_else(|e| panic!("{}: ready listen is not IP:PORT ({e}): {ready}", h.name));
        assert_eq!(listen.ip(), h.ip, "{}: listen is not its eth0 address: {ready}", h.name);
        let h = &mut lab.hosts[i];
        h.id = id;
        h.listen = Some(listen);
    }
    let ids: Vec<String> = lab.hosts.iter().map(|h| h.id.clone()).collect();
    for i in 0..HOSTS {
        for j in 0..i {
            assert_ne!(ids[i], ids[j], "host{} and host{} have one id", i + 1, j + 1);
        }
    }
    let spawn_spread = last_spawn - lab.hosts[0].spawned;
    let ready_after = last_ready - last_spawn;
    println!(
        "start: 5 processes spawned within {}, all ready {} after the last spawn",
        ms(spawn_spread),
        ms(ready_after)
    );

    // ---- 1. Discovery: each sees the 4 others.
    let mut worst = Duration::ZERO;
    for i in 0..HOSTS {
        for j in others(i, &all) {
            let (hj, idj, ipj) = (lab.hosts[j].name.clone(), ids[j].clone(), lab.hosts[j].ip);
            let (t, v) = lab.hosts[i].expect(
                0,
                last_spawn + Duration::from_secs(10),
                &format!("peer_joined for {hj} within 10 s"),
                |v| text(v, "event") == "peer_joined" && text(v, "id") == idj,
            );
            assert_eq!(text(&v, "name"), hj, "host{}: peer_joined name: {v}", i + 1);
            let addr: Option<SocketAddr> = text(&v, "addr").parse().ok();
            assert_eq!(addr.map(|a| a.ip()), Some(ipj), "host{}: peer_joined addr: {v}", i + 1);
            worst = worst.max(t.saturating_duration_since(last_spawn));
        }
    }
    println!(
        "1. discovery: all 5 saw all 4 others {} after the last spawn ({} after the last ready)",
        ms(worst),
        ms(worst.saturating_sub(ready_after))
    );
    assert!(
        worst <= DISCOVERY_LIMIT,
        "discovery took {} after the last start (limit {})",
        ms(worst),
        ms(DISCOVERY_LIMIT)
    );
    summary.push(format!("discovery (5 x 4 peer_joined)      {:>6}", ms(worst)));

    // /peers on host1 lists the four others.
    let m = lab.hosts[0].mark();
    let t0 = lab.hosts[0].send("/peers");
    let (_, peers) = lab.hosts[0].expect(m, t0 + DELIVERY_LIMIT, "peers event", |v| text(v, "event") == "peers");
    let mut listed: Vec<String> = peers
        .get("peers")
        .and_then(Value::as_array)
        .unwrap_or_else(|| panic!("host1: peers event without a peers array: {peers}"))
        .iter()
        .map(|p| text(p, "id").to_string())
        .collect();
    listed.sort();
    let mut want: Vec<String> = ids[1..].to_vec();
    want.sort();
    assert_eq!(listed, want, "host1: /peers lists: {peers}");

    // ---- 2. Chat, problem, answer, feedback reach everyone.
    // Chat from host1.
    let chat = format!("hello class from host1 {tag}");
    let m = marks(&lab);
    let t0 = lab.hosts[0].send(&chat);
    let (lat, got) = expect_all(&lab, &all, &m, t0, Duration::from_secs(5), "chat", |_, v| {
        text(v, "event") == "chat" && text(v, "text") == chat
    });
    let chat_id = text(&got[0], "id").to_string();
    assert!(chat_id.starts_with(&format!("{}-", ids[0])), "chat id is not <peerid>-<seq>: {}", got[0]);
    for v in &got {
        assert_eq!(text(v, "id"), chat_id, "chat id differs: {v}");
        assert_eq!(text(v, "from"), ids[0], "chat from: {v}");
        assert_eq!(text(v, "from_name"), "host1", "chat from_name: {v}");
        assert!(v.get("to").is_some_and(Value::is_null), "public chat has a 'to': {v}");
    }
    println!("2a. chat from host1 reached all 4 others (and itself) within {}", ms(lat));
    assert!(lat < DELIVERY_LIMIT, "chat took {}", ms(lat));
    summary.push(format!("chat to all                        {:>6}", ms(lat)));

    // Problem from host2.
    let title = format!("Sum {tag}");
    let body = "Compute two plus three and explain your reasoning.";
    let m = marks(&lab);
    let t0 = lab.hosts[1].send(&format!("/problem {title} | {body}"));
    let (lat, got) = expect_all(&lab, &all, &m, t0, Duration::from_secs(5), "problem", |_, v| {
        text(v, "event") == "problem" && text(v, "title").trim() == title
    });
    let problem_id = text(&got[2], "id").to_string(); // as host3 received it
    assert!(problem_id.starts_with(&format!("{}-", ids[1])), "problem id: {}", got[2]);
    for v in &got {
        assert_eq!(text(v, "id"), problem_id, "problem id differs: {v}");
        assert_eq!(text(v, "from"), ids[1], "problem from: {v}");
        assert_eq!(text(v, "from_name"), "host2", "problem from_name: {v}");
        assert_eq!(text(v, "body").trim(), body, "problem body: {v}");
    }
    println!("2b. problem from host2 reached all within {}", ms(lat));
    assert!(lat < DELIVERY_LIMIT, "problem took {}", ms(lat));
    summary.push(format!("problem to all                     {:>6}", ms(lat)));

    // Answer from host3, to the problem id host3 received.
    let answer = format!("It is five {tag}");
    let m = marks(&lab);
    let t0 = lab.hosts[2].send(&format!("/answer {problem_id} {answer}"));
    let (lat, got) = expect_all(&lab, &all, &m, t0, Duration::from_secs(5), "answer", |_, v| {
        text(v, "event") == "answer" && text(v, "text") == answer
    });
    let answer_id = text(&got[3], "id").to_string(); // as host4 received it
    assert!(answer_id.starts_with(&format!("{}-", ids[2])), "answer id: {}", got[3]);
    for v in &got {
        assert_eq!(text(v, "id"), answer_id, "answer id differs: {v}");
        assert_eq!(text(v, "problem_id"), problem_id, "answer problem_id: {v}");
        assert_eq!(text(v, "from"), ids[2], "answer from: {v}");
        assert_eq!(text(v, "from_name"), "host3", "answer from_name: {v}");
    }
    println!("2c. answer from host3 reached all within {}", ms(lat));
    assert!(lat < DELIVERY_LIMIT, "answer took {}", ms(lat));
    summary.push(format!("answer to all                      {:>6}", ms(lat)));

    // Feedback from host4 on that answer.
    let feedback = format!("Correct, well explained {tag}");
    let m = marks(&lab);
    let t0 = lab.hosts[3].send(&format!("/feedback {answer_id} {feedback}"));
    let (lat, got) = expect_all(&lab, &all, &m, t0, Duration::from_secs(5), "feedback", |_, v| {
        text(v, "event") == "feedback" && text(v, "text") == feedback
    });
    let feedback_id = text(&got[3], "id").to_string();
    assert!(feedback_id.starts_with(&format!("{}-", ids[3])), "feedback id: {}", got[3]);
    for v in &got {
        assert_eq!(text(v, "id"), feedback_id, "feedback id differs: {v}");
        assert_eq!(text(v, "answer_id"), answer_id, "feedback answer_id: {v}");
        assert_eq!(text(v, "from"), ids[3], "feedback from: {v}");
        assert_eq!(text(v, "from_name"), "host4", "feedback from_name: {v}");
    }
    println!("2d. feedback from host4 reached all within {}", ms(lat));
    assert!(lat < DELIVERY_LIMIT, "feedback took {}", ms(lat));
    summary.push(format!("feedback to all                    {:>6}", ms(lat)));

    // ---- 3. Private chat host1 -> host2 only.
    let secret = format!("secret-marker-{tag}");
    let m = marks(&lab);
    let t0 = lab.hosts[0].send(&format!("/msg host2 {secret}"));
    let (t, v) = lab.hosts[1].expect(m[1], t0 + Duration::from_secs(5), "private chat", |v| {
        text(v, "event") == "chat" && text(v, "text") == secret
    });
    assert_eq!(text(&v, "to"), ids[1], "host2: private chat 'to' is not host2's id: {v}");
    assert_eq!(text(&v, "from"), ids[0], "host2: private chat from: {v}");
    let lat = t - t0;
    let (_, own) = lab.hosts[0].expect(m[0], t0 + Duration::from_secs(2), "own private chat", |v| {
        text(v, "event") == "chat" && text(v, "text") == secret
    });
    assert_eq!(text(&own, "to"), ids[1], "host1: own private chat 'to': {own}");
    thread::sleep((t + Duration::from_millis(500)).saturating_duration_since(Instant::now()));
    for i in [2, 3, 4] {
        let leaked = lab.hosts[i].wait_for(m[i], Instant::now(), |v| v.to_string().contains(&secret));
        assert!(leaked.is_none(), "host{}: got the private chat: {:?}", i + 1, leaked);
    }
    println!("3. private chat host1->host2 arrived in {}; hosts 3-5 had nothing 500 ms later", ms(lat));
    assert!(lat < DELIVERY_LIMIT, "private chat took {}", ms(lat));
    summary.push(format!("private chat (host2 only)          {:>6}", ms(lat)));

    // ---- 4. An answer to an unknown problem is an error.
    for (k, unknown) in [format!("{}-999999", ids[4]), "no-such-problem".to_string()].iter().enumerate() {
        let bogus = format!("orphan answer {k} {tag}");
        let m = marks(&lab);
        let t0 = lab.hosts[0].send(&format!("/answer {unknown} {bogus}"));
        let (t, v) =
            lab.hosts[0].expect(m[0], t0 + Duration::from_secs(2), "error event", |v| text(v, "event") == "error");
        assert!(!text(&v, "message").is_empty(), "error without message: {v}");
        println!("4. /answer {unknown} -> error in {}: {v}", ms(t - t0));
        thread::sleep(Duration::from_millis(200));
        for (h, &mark) in lab.hosts.iter().zip(&m) {
            let sent = h.wait_for(mark, Instant::now(), |v| text(v, "text") == bogus);
            assert!(sent.is_none(), "{}: the refused answer went out: {sent:?}", h.name);
        }
    }
    summary.push("answer to unknown problem          error".to_string());

    // ---- 5. 1 MiB of random bytes to host5's session port, from host1's namespace.
    let target = lab.hosts[4].listen.expect("host5 listen");
    let script = "import os,socket,sys,time\n\
                  s=socket.create_connection((sys.argv[1],int(sys.argv[2])),timeout=5)\n\
                  d=os.urandom(1<<20);n=0;how='sent all'\n\
                  try:\n\
                  \x20 while n<len(d): n+=s.send(d[n:n+65536])\n\
                  \x20 s.shutdown(socket.SHUT_WR)\n\
                  \x20 while s.recv(65536): pass\n\
                  except OSError as e: how=repr(e)\n\
                  print(n,how)\n";
    let t0 = Instant::now();
    let args = [target.ip().to_string(), target.port().to_string()];
    let (status, said, err) = lab.run_python(0, script, &args, Duration::from_secs(20));
    let junk_time = t0.elapsed();
    assert!(
        status.is_some_and(|s| s.success()),
        "junk sender failed ({status:?}) after {}: {said} {err}",
        ms(junk_time)
    );
    println!("5. junk: 1 MiB to {target}: python says '{}' after {}", said.trim(), ms(junk_time));
    assert!(lab.hosts[4].running(), "host5 died after the junk");
    let chat2 = format!("still here after junk {tag}");
    let m = marks(&lab);
    let t0 = lab.hosts[0].send(&chat2);
    let (lat, _) = expect_all(&lab, &all, &m, t0, Duration::from_secs(5), "chat after junk", |_, v| {
        text(v, "event") == "chat" && text(v, "text") == chat2 && text(v, "from") == ids[0]
    });
    println!("5. after the junk, a chat from host1 reached all within {}", ms(lat));
    assert!(lat < DELIVERY_LIMIT, "chat after junk took {}", ms(lat));
    assert!(lab.hosts[4].running(), "host5 died after the junk");
    for h in &lab.hosts {
        let left = h.wait_for(0, Instant::now(), |v| text(v, "event") == "peer_left");
        assert!(left.is_none(), "{}: a peer left before any was told to: {left:?}", h.name);
    }
    summary.push(format!("chat after 1 MiB junk to host5     {:>6}", ms(lat)));

    // ---- 6. Graceful leave: host4's stdin closes.
    let m = marks(&lab);
    let t0 = Instant::now();
    lab.hosts[3].stdin.take();
    let id4 = ids[3].clone();
    let (lat, _) = expect_all(&lab, &[0, 1, 2, 4], &m, t0, Duration::from_secs(6), "peer_left host4", |_, v| {
        text(v, "event") == "peer_left" && text(v, "id") == id4 && text(v, "reason") == "left"
    });
    let status = wait_deadline(lab.hosts[3].child.as_mut().unwrap(), Duration::from_secs(5));
    let exit_time = t0.elapsed();
    println!(
        "6. graceful leave: all 4 others reported host4 'left' within {}; it ended ({}) after {}",
        ms(lat),
        shown(status),
        ms(exit_time)
    );
    assert!(lat < LEAVE_LIMIT, "graceful leave took {}", ms(lat));
    assert!(status.is_some_and(|s| s.success()), "host4 did not exit 0 within 5 s: {status:?}");
    summary.push(format!("graceful leave (reason left)       {:>6}", ms(lat)));
    summary.push(format!("host4 exit 0 after stdin EOF       {:>6}", ms(exit_time)));

    // ---- 7. Crash: SIGKILL host3.
    let m = marks(&lab);
    let t0 = Instant::now();
    {
        let c = lab.hosts[2].child.as_mut().unwrap();
        c.kill().expect("SIGKILL host3");
        wait_deadline(c, Duration::from_secs(5)).expect("host3 reaped");
    }
    let id3 = ids[2].clone();
    let limit = EXPIRY + CRASH_SLACK;
    let (lat, got) = expect_all(&lab, &[0, 1, 4], &m, t0, Duration::from_secs(10), "peer_left host3", |_, v| {
        text(v, "event") == "peer_left" && text(v, "id") == id3
    });
    let reasons: Vec<&str> = got.iter().map(|v| text(v, "reason")).collect();
    println!("7. crash: others reported host3 gone within {} (reasons {reasons:?})", ms(lat));
    assert!(lat <= limit, "crash detection took {} (limit {})", ms(lat), ms(limit));
    summary.push(format!("crash (SIGKILL) detected           {:>6}  {reasons:?}", ms(lat)));

    // ---- 8. Vanish: host5's link goes down without a word.
    let m = marks(&lab);
    ip(&["-n", &lab.hosts[4].ns, "link", "set", "eth0", "down"]).expect("eth0 down in host5");
    let t0 = Instant::now();
    let id5 = ids[4].clone();
    let limit = EXPIRY + VANISH_SLACK;
    let (lat, _) = expect_all(&lab, &[0, 1], &m, t0, Duration::from_secs(10), "peer_left host5 timeout", |_, v| {
        text(v, "event") == "peer_left" && text(v, "id") == id5 && text(v, "reason") == "timeout"
    });
    println!("8. vanish: hosts 1-2 reported host5 'timeout' {} after its link went down", ms(lat));
    assert!(lat <= limit, "timeout detection took {} (limit {})", ms(lat), ms(limit));
    summary.push(format!("vanish (link down, reason timeout) {:>6}", ms(lat)));

    // ---- No stray output; then leave.
    for h in &lab.hosts {
        let bad = h.out.0.lock().unwrap().bad_lines.clone();
        assert!(bad.is_empty(), "{}: stdout lines that are not JSON objects: {bad:?}", h.name);
    }
    // host1 leaves with /quit (host4 left by end of input): host2 hears it, both exit 0.
    let m = marks(&lab);
    let t0 = lab.hosts[0].send("/quit");
    let id1 = ids[0].clone();
    let (t, _) = lab.hosts[1].expect(m[1], t0 + Duration::from_secs(5), "peer_left host1 after /quit", |v| {
        text(v, "event") == "peer_left" && text(v, "id") == id1 && text(v, "reason") == "left"
    });
    let lat = t - t0;
    let status = wait_deadline(lab.hosts[0].child.as_mut().unwrap(), Duration::from_secs(5));
    println!("9. /quit: host2 reported host1 'left' within {}; host1 ended ({})", ms(lat), shown(status));
    assert!(lat < LEAVE_LIMIT, "leave by /quit took {}", ms(lat));
    assert!(status.is_some_and(|s| s.success()), "host1 did not exit 0 within 5 s of /quit: {status:?}");
    summary.push(format!("leave by /quit (reason left)       {:>6}", ms(lat)));
    lab.hosts[1].stdin.take();
    let status = wait_deadline(lab.hosts[1].child.as_mut().unwrap(), Duration::from_secs(5));
    assert!(status.is_some_and(|s| s.success()), "host2 did not exit 0 within 5 s of end of input: {status:?}");

    println!("summary ({}; whole test {}):", lab.tag, ms(started.elapsed()));
    for line in &summary {
        println!("  {line}");
    }
}
