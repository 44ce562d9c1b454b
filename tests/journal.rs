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
    let disk = TinyDisk::mount(1 << 20);
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
