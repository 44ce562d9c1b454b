//! `--ask-passphrase` on a real terminal: the peer is started on a pseudo-terminal that is its
//! controlling terminal (as in a shell), is asked for the passphrase, gets it typed, does not echo
//! it, and then meets a peer of the same passphrase room (which lists it only if the passphrase
//! matches). Real processes on loopback.
#![cfg(target_os = "linux")]

mod common;
use common::TmpDir;

use std::fs::File;
use std::io::{BufRead, BufReader, Read, Write};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::os::unix::process::CommandExt;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

const BIN: &str = env!("CARGO_BIN_EXE_lanpeer");

/// Killed and reaped when dropped (also when the test fails).
struct Kill(Child);

impl Drop for Kill {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn tmpdir(tag: &str) -> TmpDir {
    TmpDir::new(&format!("lanpeer-tty-{tag}"))
}

/// A new pseudo-terminal: (master, slave).
fn openpty() -> (OwnedFd, OwnedFd) {
    let (mut master, mut slave) = (-1, -1);
    // SAFETY: openpty writes two new descriptors, which we own from here on.
    let r = unsafe {
        libc::openpty(&mut master, &mut slave, std::ptr::null_mut(), std::ptr::null_mut(), std::ptr::null_mut())
    };
    assert_eq!(r, 0, "openpty: {}", std::io::Error::last_os_error());
    // SAFETY: both are open descriptors nobody else owns.
    unsafe { (OwnedFd::from_raw_fd(master), OwnedFd::from_raw_fd(slave)) }
}

/// Everything the terminal shows, as it comes.
fn read_all(master: &OwnedFd) -> mpsc::Receiver<String> {
    let mut f = File::from(master.try_clone().unwrap());
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        let mut buf = [0u8; 4096];
        // Ends with EIO once the peer and every holder of the slave side are gone.
        while let Ok(n @ 1..) = f.read(&mut buf) {
            if tx.send(String::from_utf8_lossy(&buf[..n]).into_owned()).is_err() {
                break;
            }
        }
    });
    rx
}

/// Collect what `rx` shows until `done` holds for it (or panic after `within`).
fn until(rx: &mpsc::Receiver<String>, shown: &mut String, within: Duration, done: impl Fn(&str) -> bool) {
    let deadline = Instant::now() + within;
    while !done(shown) {
        let left = deadline.saturating_duration_since(Instant::now());
        match rx.recv_timeout(left) {
            Ok(s) => shown.push_str(&s),
            Err(_) => panic!("not shown within {within:?}; the terminal shows: {shown:?}"),
        }
    }
}

#[test]
fn ask_passphrase_reads_the_terminal_without_echo_and_joins_the_passphrase_room() {
    let port = 20_000 + rand::random_range(0..40_000u16);
    let room = format!("tty-{}-{}", std::process::id(), rand::random::<u32>());
    let secret = "correct horse battery";

    let (dir_a, dir_b) = (tmpdir("a"), tmpdir("b"));
    // A: in the passphrase room through the environment, JSON on a pipe.
    let mut a = Kill(
        Command::new(BIN)
            .args(["--json", "--iface", "lo", "--port", &port.to_string(), "--room", &room, "--name", "ada"])
            .arg("--data-dir")
            .arg(&*dir_a)
            .env("LANPEER_PASSPHRASE", secret)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("lanpeer starts"),
    );
    let (a_tx, a_lines) = mpsc::channel::<String>();
    let out = a.0.stdout.take().unwrap();
    std::thread::spawn(move || {
        for line in BufReader::new(out).lines().map_while(Result::ok) {
            let _ = a_tx.send(line);
        }
    });

    // B: asked on its terminal.
    let (master, slave) = openpty();
    let shown = read_all(&master);
    let fd = slave.as_raw_fd();
    let mut cmd = Command::new(BIN);
    cmd.args(["--json", "--ask-passphrase", "--iface", "lo", "--port", &port.to_string(), "--room", &room])
        .args(["--name", "bea", "--data-dir"])
        .arg(&*dir_b)
        .env_remove("LANPEER_PASSPHRASE")
        .stdin(Stdio::from(slave.try_clone().unwrap()))
        .stdout(Stdio::from(slave.try_clone().unwrap()))
        .stderr(Stdio::from(slave.try_clone().unwrap()));
    // SAFETY: only async-signal-safe calls between fork and exec: a new session whose controlling
    // terminal is the pseudo-terminal, as a shell would give it (`/dev/tty` is then that terminal).
    unsafe {
        cmd.pre_exec(move || {
            if libc::setsid() < 0 || libc::ioctl(fd, libc::TIOCSCTTY as _, 0) < 0 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
    let _b = Kill(cmd.spawn().expect("lanpeer starts on the terminal"));
    drop(slave);

    let mut screen = String::new();
    until(&shown, &mut screen, Duration::from_secs(15), |s| s.contains(&format!("Passphrase of room \"{room}\"")));
    // A person types after the prompt; a test could type before the program has turned the echo
    // off (the kernel would echo that). Wait until the terminal stops echoing: that is the
    // program's doing, and what this test checks.
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        // SAFETY: a zeroed termios is a valid out-parameter; the descriptor is open.
        let mut t: libc::termios = unsafe { std::mem::zeroed() };
        assert_eq!(unsafe { libc::tcgetattr(master.as_raw_fd(), &mut t) }, 0);
        if t.c_lflag & libc::ECHO == 0 {
            break;
        }
        assert!(Instant::now() < deadline, "the terminal still echoes 10 s after the prompt");
        std::thread::sleep(Duration::from_millis(5));
    }
    let mut typing = File::from(master.try_clone().unwrap());
    typing.write_all(format!("{secret}\n").as_bytes()).unwrap();

    // B is up (its ready event on the terminal), and A lists it: only a peer that has the same
    // passphrase passes A's beacon check and handshake.
    until(&shown, &mut screen, Duration::from_secs(15), |s| s.contains("\"event\":\"ready\""));
    let deadline = Instant::now() + Duration::from_secs(15);
    let mut joined = false;
    while !joined {
        let left = deadline.saturating_duration_since(Instant::now());
        match a_lines.recv_timeout(left) {
            Ok(l) => joined = l.contains("\"event\":\"peer_joined\"") && l.contains("\"name\":\"bea\""),
            Err(_) => panic!("ada never listed bea; bea's terminal shows: {screen:?}"),
        }
    }
    // Typed, not echoed.
    until(&shown, &mut screen, Duration::from_secs(15), |s| s.contains("\"event\":\"peer_joined\""));
    assert!(!screen.contains(secret), "the passphrase was echoed: {screen:?}");
    let _ = a.0.stdin.take();
}
