//! The static Linux binary (`x86_64-unknown-linux-musl`, built by `.ci/run`): the one that runs
//! on any Linux distribution of recent years, because it needs no C library of the system. It
//! names no program interpreter, it runs, and two of it find each other and chat on loopback
//! in a network namespace of their own with only `lo`. Skipped (one line) without the binary or
//! root, unless `LANPEER_REQUIRE_CROSS` names its target (see tests/support/cross.rs).
#![cfg(target_os = "linux")]

mod support;

use std::process::Command;
use std::time::Duration;

use support::cross;
use support::netns::{Lab, need_root, shown, text, wait_deadline};

const TRIPLE: &str = "x86_64-unknown-linux-musl";
const TEST: &str = "the static Linux binary's test (tests/musl.rs)";

#[test]
fn the_static_binary_runs_and_two_of_it_chat_on_loopback() {
    let bin = cross::built(TRIPLE, "lanpeer");
    if let Err(why) = cross::fresh(&bin, TRIPLE) {
        return cross::skip(TEST, TRIPLE, &why);
    }
    assert!(!cross::elf_interpreter(&bin).unwrap(), "{} names a dynamic loader: it is not static", bin.display());
    // The host's own binary does, so the check can tell.
    assert!(cross::elf_interpreter(std::path::Path::new(support::netns::BIN)).unwrap());

    // No network: the version alone.
    let out = Command::new(&bin).arg("--version").output().expect("the static binary runs");
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), format!("lanpeer {}", env!("CARGO_PKG_VERSION")));

    if let Err(why) = need_root() {
        return cross::skip(TEST, TRIPLE, &format!("its loopback run needs a network namespace: {why}"));
    }
    let mut lab = match Lab::loopback("lpmu", &["ann", "ben"]) {
        Ok(l) => l,
        Err(why) => return cross::skip(TEST, TRIPLE, &format!("cannot make its network namespace: {why}")),
    };
    let port = (20_000 + support::netns::random16() % 40_000).to_string();
    let room = format!("musl-{}", lab.tag);
    for i in 0..2 {
        lab.hosts[i].program = vec![bin.clone().into()];
        let (port, room) = (port.clone(), room.clone());
        lab.spawn_with(i, move |c| {
            c.args(["--iface", "lo", "--port", &port, "--room", &room]);
        });
    }
    let t = Duration::from_secs(20);
    let ids: Vec<String> = (0..2)
        .map(|i| {
            let (_, r) = lab.hosts[i].expect(0, t, "ready", |v| text(v, "event") == "ready");
            assert!(text(&r, "listen").starts_with("127.0.0.1:"), "{r}");
            text(&r, "id").to_string()
        })
        .collect();
    // Found by beacons alone (127.255.255.255 on Linux), no --peer.
    for (i, other) in [(0, &ids[1]), (1, &ids[0])] {
        lab.hosts[i]
            .expect(0, t, "peer_joined of the other", |v| text(v, "event") == "peer_joined" && text(v, "id") == other);
    }
    let m = lab.hosts[1].mark();
    lab.hosts[0].send("hello from a static binary");
    let (_, c) = lab.hosts[1]
        .expect(m, t, "the chat", |v| text(v, "event") == "chat" && text(v, "text") == "hello from a static binary");
    assert_eq!(text(&c, "from"), ids[0]);
    let m = lab.hosts[0].mark();
    lab.hosts[1].send("/quit");
    let (_, left) = lab.hosts[0].expect(m, t, "ben's leave", |v| text(v, "event") == "peer_left");
    assert_eq!(text(&left, "reason"), "left", "{left}");
    lab.hosts[0].send("/quit");
    for h in &mut lab.hosts {
        let status = wait_deadline(h.child.as_mut().unwrap(), Duration::from_secs(10));
        assert!(status.is_some_and(|s| s.success()), "{}: {}", h.name, shown(status));
    }
    eprintln!("the static binary {} ran, and two of it chatted on loopback", bin.display());
}
