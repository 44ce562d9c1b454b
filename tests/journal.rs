//! The journal on a disk that fills up: a group that does not fit is an error and leaves no
//! trace, the groups before it stay whole, and once there is room again the journal goes on.

mod common;

use common::TinyDisk;
use lanpeer::journal::{GroupBuf, Journal};

fn groups(path: &std::path::Path) -> Vec<Vec<Vec<u8>>> {
    let mut got = Vec::new();
    Journal::read(path, |g| got.push(g.map(<[u8]>::to_vec).collect())).unwrap();
    got
}

#[test]
fn a_group_that_does_not_fit_on_the_disk_leaves_the_journal_whole() {
    let Some(disk) = TinyDisk::mount_or_skip(1 << 20, "a_group_that_does_not_fit_on_the_disk_leaves_the_journal_whole")
    else {
        return;
    };
    let path = disk.path.join("journal");
    let (mut j, _) = Journal::open(&path, |_| {}).unwrap();
    let mut g = GroupBuf::new();
    g.push(b"kept");
    j.append(&mut g).unwrap();
    let whole = j.len();
    disk.fill();
    // Bigger than what is left (the filler leaves less than a page): the write stops part way.
    g.push(&vec![7u8; 256 << 10]);
    let e = j.append(&mut g).unwrap_err();
    assert_eq!(e.kind(), std::io::ErrorKind::StorageFull, "{e}");
    assert_eq!(g.records(), 1, "the group is left with the caller");
    assert_eq!(j.len(), whole);
    assert_eq!(std::fs::metadata(&path).unwrap().len(), whole, "what the failed write wrote is cut away");
    assert_eq!(groups(&path), vec![vec![b"kept".to_vec()]]);
    // Room again: the same group goes in, after the whole one.
    disk.free();
    j.append(&mut g).unwrap();
    drop(j);
    let (_, cut) = Journal::open(&path, |_| {}).unwrap();
    assert_eq!(cut, 0);
    assert_eq!(groups(&path), vec![vec![b"kept".to_vec()], vec![vec![7u8; 256 << 10]]]);
}

/// The journal store on a full disk: a turn that cannot be written fails as a whole (nothing of
/// it stays in memory either), what was committed before stays, and once there is room the same
/// turn goes through and is there after the store is opened again.
#[test]
fn a_turn_the_journal_store_cannot_write_is_undone_whole() {
    use lanpeer::id::{MsgId, PeerId};
    use lanpeer::protocol::{Body, Envelope};
    use lanpeer::store::Store;
    let Some(disk) = TinyDisk::mount_or_skip(1 << 20, "a_turn_the_journal_store_cannot_write_is_undone_whole") else {
        return;
    };
    let path = disk.path.join("history.journal");
    let me = PeerId([1; 16]);
    let chat = |seq: u64, len: usize| Envelope {
        id: MsgId { author: PeerId([2; 16]), seq },
        author_name: "n".into(),
        sent_ms: 1,
        to: None,
        body: Body::Chat { text: "x".repeat(len) },
        files: vec![],
    };
    let mut s = Store::open_journal(&path, me, "r").unwrap();
    s.begin();
    s.insert(&chat(1, 10), &lanpeer::codec::encode(&chat(1, 10)).unwrap(), 5, true).unwrap();
    s.commit().unwrap();
    disk.fill();
    let turn = |s: &mut Store| {
        s.begin();
        for seq in 2..6 {
            s.insert(&chat(seq, 60_000), &lanpeer::codec::encode(&chat(seq, 60_000)).unwrap(), 6, true).unwrap();
        }
        s.save_in_stream(PeerId([2; 16]), 5).unwrap();
        s.commit()
    };
    let e = turn(&mut s).unwrap_err().to_string();
    assert!(e.contains("cannot save messages"), "{e}");
    assert_eq!(s.count(), 1, "the failed turn's messages are not kept in memory either");
    assert!(s.in_streams().is_empty());
    assert!(!s.has(&MsgId { author: PeerId([2; 16]), seq: 2 }));
    disk.free();
    turn(&mut s).unwrap();
    drop(s);
    let s = Store::open_journal(&path, me, "r").unwrap();
    assert_eq!(s.count(), 5);
    assert_eq!(s.in_streams(), vec![(PeerId([2; 16]), 5)]);
    assert_eq!(s.history(10).iter().map(|m| m.pos).collect::<Vec<_>>(), vec![1, 2, 3, 4, 5]);
}
