//! The Zyre baseline: benches/zyre_bench.py (Python pyre) run in a private network namespace
//! that has nothing but `lo`, its figures read from its output, and how ours read beside them.
//! pyre beacons on the first non-loopback interface and has no working `set_interface`, so it
//! never runs outside such a namespace.

use std::collections::HashMap;
use std::io::{BufRead, BufReader, Read};
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use crate::opts::Opts;
use crate::procs::{Children, die_with_parent};
use crate::report::better;

/// Figures of the Python Zyre run, by key (see benches/zyre_bench.py).
pub type Zyre = HashMap<String, f64>;

pub fn zyre_beside(z: &Zyre, key: &str, unit: &str, scale: f64, ours: f64, higher_is_better: bool) -> String {
    match z.get(key) {
        Some(v) => {
            let v = v * scale;
            let r = if higher_is_better { ours / v } else { v / ours };
            format!("Zyre (pyre) {v:.3} {unit}, {}", better(r))
        }
        None => "Zyre: not measured".to_string(),
    }
}

/// "; raw TCP itself 9.1x": how far the plain TCP baseline of the same run is from Zyre's
/// figure, the most that any TCP peer could show against it on this machine.
pub fn raw_vs_zyre(z: &Zyre, key: &str, raw: Duration) -> String {
    z.get(key).map_or(String::new(), |v| format!("; raw TCP itself {:.1}x", v / (raw.as_secs_f64() * 1e3)))
}

fn have(cmd: &str, args: &[&str]) -> bool {
    Command::new(cmd).args(args).stdout(Stdio::null()).stderr(Stdio::null()).status().is_ok_and(|s| s.success())
}

/// Run benches/zyre_bench.py inside a new network namespace that has only `lo`; its figures.
pub fn run_zyre(o: &Opts) -> Result<Zyre, String> {
    if !have("python3", &["-c", "import pyre, zmq"]) {
        return Err("python3 with pyre (pip install zeromq-pyre) is not available".into());
    }
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } != 0 || !have("unshare", &["-n", "true"]) || !have("ip", &["-V"]) {
        return Err("it runs only inside a private network namespace (`unshare -n`, needs root and iproute2), \
                    because pyre beacons on the first non-loopback interface and has no working set_interface"
            .into());
    }
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("benches/zyre_bench.py");
    let mut cmd = Command::new("unshare");
    cmd.args(["-n", "--", "sh", "-c", "ip link set lo up && exec python3 \"$0\" \"$@\""]).arg(&script);
    if o.quick {
        cmd.arg("--quick");
    }
    cmd.stdin(Stdio::null()).stdout(Stdio::piped()).stderr(Stdio::piped());
    die_with_parent(&mut cmd);
    let mut kids = Children::default();
    let mut child = cmd.spawn().map_err(|e| format!("cannot start python3: {e}"))?;
    let out = child.stdout.take().unwrap();
    let mut err = child.stderr.take().unwrap();
    kids.add(child);
    let errs = std::thread::spawn(move || {
        let mut s = String::new();
        let _ = err.read_to_string(&mut s);
        s
    });
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for l in BufReader::new(out).lines().map_while(Result::ok) {
            let _ = tx.send(l);
        }
    });
    let mut z = Zyre::new();
    let deadline = Instant::now() + Duration::from_secs(if o.quick { 120 } else { 420 });
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        match rx.recv_timeout(left) {
            Ok(l) => {
                println!("  zyre_bench.py: {l}");
                let mut it = l.split_whitespace();
                if let (Some("zyre"), Some(k), Some(v)) = (it.next(), it.next(), it.next())
                    && let Ok(v) = v.parse()
                {
                    z.insert(k.to_string(), v);
                }
            }
            Err(std::sync::mpsc::RecvTimeoutError::Disconnected) => break,
            Err(std::sync::mpsc::RecvTimeoutError::Timeout) => {
                println!("  zyre_bench.py: stopped after its time limit");
                break;
            }
        }
    }
    kids.stop(Duration::from_secs(2));
    let e = errs.join().unwrap_or_default();
    if z.is_empty() {
        let last = e.lines().last().unwrap_or("no output").to_string();
        return Err(format!("zyre_bench.py gave no figures ({last})"));
    }
    Ok(z)
}
