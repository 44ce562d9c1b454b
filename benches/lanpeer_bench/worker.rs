//! A convergence worker process: the bench binary re-run with `worker`, hosting some peers of
//! the room and reporting on stdout what the benchmark's main process sums. A room of 200 cannot
//! live in one process here: its 200·199 sockets exceed the container's 20,000 descriptors.

use std::io::{Read, Write};
use std::sync::Arc;
use std::time::Duration;

use futures_util::future::join_all;
use tokio::sync::mpsc;

use crate::opts::WorkerArgs;
use crate::swarm::{Counter, Note, config, start_node, watch};

/// The process's connection counts (`lanpeer::diag::COUNTS`) as one line.
fn counts_line(tag: &str) -> String {
    let mut l = tag.to_string();
    for (k, v) in lanpeer::diag::COUNTS.snapshot() {
        l.push_str(&format!(" {k}={v}"));
    }
    l
}

/// Worker mode (`lanpeer_bench worker PORT ROOM FIRST COUNT TOTAL`): host COUNT peers of a
/// room of TOTAL, print `L <idx> <listed>` on every change of a peer's list, `C <counts>` (the
/// process's connection counts) once all of its peers list TOTAL−1 others, and `S <counts>` at
/// the end; stop at end of stdin (or after 180 s at most).
pub fn worker(w: WorkerArgs) {
    let WorkerArgs { port, room, first, count, total } = w;
    let rt = tokio::runtime::Builder::new_multi_thread().enable_all().build().unwrap();
    rt.block_on(async move {
        let (tx, mut rx) = mpsc::unbounded_channel();
        let mut nodes = Vec::new();
        let mut watchers = Vec::new();
        for i in first..first + count {
            let (node, events) = start_node(config(format!("p{i}"), port, &room)).await;
            watchers.push(watch(i, events, tx.clone(), Arc::new(Counter::default()), None));
            nodes.push(node);
        }
        let (eof_tx, mut eof) = mpsc::unbounded_channel::<()>();
        std::thread::spawn(move || {
            let _ = std::io::stdin().read_to_end(&mut Vec::new());
            let _ = eof_tx.send(());
        });
        let stop = tokio::time::sleep(Duration::from_secs(180));
        tokio::pin!(stop);
        let mut out = std::io::stdout();
        let mut listed = vec![0usize; count];
        let mut told = false;
        loop {
            tokio::select! {
                n = rx.recv() => {
                    if let Some(Note::Listed { idx, count }) = n {
                        let _ = writeln!(out, "L {idx} {count}");
                        listed[idx - first] = count;
                        if !told && listed.iter().all(|&c| c + 1 >= total) {
                            told = true;
                            let _ = writeln!(out, "{}", counts_line("C"));
                        }
                        let _ = out.flush();
                    }
                }
                _ = eof.recv() => break,
                _ = &mut stop => break,
            }
        }
        let _ = writeln!(out, "{}", counts_line("S"));
        let _ = out.flush();
        let _ = tokio::time::timeout(Duration::from_secs(20), join_all(nodes.iter().map(|n| n.shutdown()))).await;
    });
}
