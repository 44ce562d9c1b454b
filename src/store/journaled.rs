//! The history of a data dir (`history.journal`): the store in memory, with each group of its
//! writes appended to a journal of our own (`crate::journal`) as one journal group, and replayed
//! from it at open.
//!
//! Why a journal of our own and not a database: a turn's writes are one journal group, written
//! with one `write`, and the indexes live in memory; a message costs its bytes appended, not a
//! b-tree row and a transaction (docs/benchmarks.md has the figures).
//!
//! One journal holds every room of the data dir: the stream counters and the
//! outbox are per peer, not per room (a peer met in two rooms has one stream with us), while the
//! messages and members carry their room and the store reads its own.
//!
//! A group is the changes of one `begin` .. `commit` ([`Memory::changes`]): the messages it
//! stored, then the value after the group of every other thing it changed. A write outside a
//! group is a group of its own. If the append fails (a full disk), the group is undone in memory
//! too and the commit fails. Records (integers little-endian, ids 16 bytes,
//! a room is its length `u16` and its UTF-8 bytes):
//!
//! | kind | fields |
//! |---|---|
//! | 1 message of protocol version 1 (read, never written: see `legacy`) | time stored `u64`, room, the encoded envelope (the rest) |
//! | 7 message | time stored `u64`, room, flags `u8` (1: signed), the encoded envelope (the rest) |
//! | 8 signed batch | author, first `u64`, count `u32`, key (32), signature (64), then nodes: first leaf `u32`, leaves `u32`, hash (32) each |
//! | 2 member | id, last seen `u64`, room, name (the rest, UTF-8) |
//! | 3 outgoing stream | peer, next `u64`, highest acknowledged `u64` |
//! | 4 incoming stream | author, highest delivered `u64` |
//! | 5 run | peer, `lseq` `u64`, first place `i64`, length `u64`, time queued `u64` |
//! | 6 run gone | peer, `lseq` `u64` |
//!
//! Lifecycle of the file:
//! - **compaction**: at open, when superseded records (counters written again, runs acknowledged)
//!   are more than half the file and over 1 MiB, the state is written to a new file renamed over
//!   the old one. Messages are never superseded, so a history of messages never shrinks;
//! - **readers** (`lanpeer export`, `lanpeer history`) replay it beside a running peer and stop
//!   at a group being written.

use std::path::{Path, PathBuf};

use crate::codec;
use crate::error::Error;
use crate::id::PeerId;
use crate::journal::{GroupBuf, Journal, Records, Syncer};
use crate::protocol::Envelope;

use super::memory::{Change, Memory};

/// File name of the journal in the data dir.
pub const JOURNAL_FILE: &str = "history.journal";

/// The history of a data dir, in its journal file.
#[derive(Debug)]
pub(super) struct Journaled {
    pub(super) mem: Memory,
    journal: Journal,
    /// The group being written, kept between commits (no allocation per turn).
    group: GroupBuf,
    /// Syncs the file to disk beside the writer, at most every second (`None` where no thread
    /// could be had: logged).
    syncer: Option<Syncer>,
}

/// A room's name as a record holds it: its length `u16`, its bytes (cut at 65,535 bytes; rooms
/// are at most 200).
fn put_room(b: &mut Vec<u8>, room: &str) {
    let room = &room.as_bytes()[..room.len().min(u16::MAX as usize)];
    b.extend_from_slice(&(room.len() as u16).to_le_bytes());
    b.extend_from_slice(room);
}

fn encode(g: &mut GroupBuf, c: Change<'_>) {
    match c {
        Change::Message(raw, at, room, signed) => g.push_with(|b| {
            b.push(7);
            b.extend_from_slice(&at.to_le_bytes());
            put_room(b, room);
            b.push(u8::from(signed));
            b.extend_from_slice(raw);
        }),
        Change::Batch(batch) => g.push_with(|b| {
            b.push(8);
            b.extend_from_slice(&batch.author.0);
            b.extend_from_slice(&batch.first.to_le_bytes());
            b.extend_from_slice(&batch.count.to_le_bytes());
            b.extend_from_slice(&batch.key);
            b.extend_from_slice(&batch.sig);
            for (start, len, hash) in &batch.nodes {
                b.extend_from_slice(&start.to_le_bytes());
                b.extend_from_slice(&len.to_le_bytes());
                b.extend_from_slice(hash);
            }
        }),
        Change::Member(id, room, name, at) => g.push_with(|b| {
            b.push(2);
            b.extend_from_slice(&id.0);
            b.extend_from_slice(&at.to_le_bytes());
            put_room(b, room);
            b.extend_from_slice(name.as_bytes());
        }),
        Change::OutStream(p, next, acked) => g.push_with(|b| {
            b.push(3);
            b.extend_from_slice(&p.0);
            b.extend_from_slice(&next.to_le_bytes());
            b.extend_from_slice(&acked.to_le_bytes());
        }),
        Change::InStream(p, delivered) => g.push_with(|b| {
            b.push(4);
            b.extend_from_slice(&p.0);
            b.extend_from_slice(&delivered.to_le_bytes());
        }),
        Change::Run(p, lseq, Some((msg, n, queued))) => g.push_with(|b| {
            b.push(5);
            b.extend_from_slice(&p.0);
            for v in [lseq, msg as u64, n, queued] {
                b.extend_from_slice(&v.to_le_bytes());
            }
        }),
        Change::Run(p, lseq, None) => g.push_with(|b| {
            b.push(6);
            b.extend_from_slice(&p.0);
            b.extend_from_slice(&lseq.to_le_bytes());
        }),
    }
}

/// Reads the fields of one record in order.
struct Fields<'a>(&'a [u8]);

impl<'a> Fields<'a> {
    fn take<const N: usize>(&mut self) -> Option<[u8; N]> {
        let (v, rest) = self.0.split_first_chunk::<N>()?;
        self.0 = rest;
        Some(*v)
    }
    fn u64(&mut self) -> Option<u64> {
        self.take::<8>().map(u64::from_le_bytes)
    }
    fn u32(&mut self) -> Option<u32> {
        self.take::<4>().map(u32::from_le_bytes)
    }
    fn peer(&mut self) -> Option<PeerId> {
        self.take::<16>().map(PeerId)
    }
    fn room(&mut self) -> Option<&'a str> {
        let len = u16::from_le_bytes(self.take::<2>()?) as usize;
        let (room, rest) = self.0.split_at_checked(len)?;
        self.0 = rest;
        std::str::from_utf8(room).ok()
    }
    /// `Some` when every byte was read.
    fn end(self) -> Option<()> {
        self.0.is_empty().then_some(())
    }
}

/// Apply one record to the state (outside any group). `None`: a record this version cannot read.
fn apply(mem: &mut Memory, rec: &[u8]) -> Option<()> {
    let (&kind, rest) = rec.split_first()?;
    let mut f = Fields(rest);
    match kind {
        1 => {
            // Kept as today's encoding, unsigned: readable here, never handed on.
            let (at, room) = (f.u64()?, f.room()?);
            let env = super::legacy::envelope(f.0)?;
            let raw = codec::encode(&env).ok()?;
            mem.insert_in(room, &env, &raw, at, false);
        }
        7 => {
            let (at, room, flags) = (f.u64()?, f.room()?, f.take::<1>()?[0]);
            let env: Envelope = codec::decode_envelope(f.0).ok()?;
            mem.insert_in(room, &env, f.0, at, flags & 1 != 0);
        }
        8 => {
            let (author, first, count) = (f.peer()?, f.u64()?, f.u32()?);
            let (key, sig) = (f.take::<32>()?, f.take::<64>()?);
            let mut nodes = Vec::new();
            while !f.0.is_empty() {
                nodes.push((f.u32()?, f.u32()?, f.take::<32>()?));
            }
            mem.keep_batch(&crate::authorship::Batch { author, key, first, count, sig, nodes });
        }
        2 => {
            let (id, at, room) = (f.peer()?, f.u64()?, f.room()?);
            mem.touch_member_in(room, id, std::str::from_utf8(f.0).ok()?, at);
        }
        3 => {
            let (p, next, acked) = (f.peer()?, f.u64()?, f.u64()?);
            f.end()?;
            mem.save_out_stream(p, next, acked);
        }
        4 => {
            let (p, delivered) = (f.peer()?, f.u64()?);
            f.end()?;
            mem.save_in_stream(p, delivered);
        }
        5 => {
            let (p, lseq, msg, n, queued) = (f.peer()?, f.u64()?, f.u64()?, f.u64()?, f.u64()?);
            f.end()?;
            mem.put_run(p, lseq, Some((msg as i64, n, queued)));
        }
        6 => {
            let (p, lseq) = (f.peer()?, f.u64()?);
            f.end()?;
            mem.put_run(p, lseq, None);
        }
        _ => return None,
    }
    Some(())
}

fn storage(what: &str, e: std::io::Error) -> Error {
    Error::Storage(format!("{what}: {e}"))
}

/// What a replay found: records it could not read, and bytes of message records (never
/// superseded: the floor of what compaction can reach).
#[derive(Debug, Default)]
struct Replayed {
    unread: usize,
    message_bytes: u64,
}

/// Replay one group's records into `mem`.
fn replay_into(mem: &mut Memory, seen: &mut Replayed, g: Records<'_>) {
    for rec in g {
        if matches!(rec.first(), Some(1 | 7 | 8)) {
            seen.message_bytes += 4 + rec.len() as u64;
        }
        if apply(mem, rec).is_none() {
            seen.unread += 1;
        }
    }
}

/// Are superseded records of a journal of `len` bytes more than half of it, and over 1 MiB? The
/// live size is the message records' bytes and an estimate of the rest's (members, counters,
/// runs).
fn superseded(mem: &Memory, message_bytes: u64, len: u64) -> bool {
    let (_, members, streams, runs) = mem.sizes();
    let live = message_bytes + members as u64 * 80 + streams as u64 * 45 + runs as u64 * 60;
    let dead = len.saturating_sub(live);
    dead > live && dead > 1 << 20
}

/// The peer id of a data dir, from its `id` file (the read-only tools: which messages are "own").
fn me_of(dir: &Path) -> PeerId {
    std::fs::read_to_string(dir.join("id")).ok().and_then(|t| t.trim().parse().ok()).unwrap_or(PeerId([0; 16]))
}

/// Groups of a snapshot are cut at this many bytes (well under [`crate::journal::MAX_GROUP`]).
const SNAPSHOT_GROUP: usize = 1 << 20;

/// Write everything `mem` holds as a new journal at `path`, through a file beside it renamed
/// into place: a crash leaves either the old file or the whole new one.
fn write_snapshot(mem: &Memory, path: &Path) -> std::io::Result<()> {
    let tmp = PathBuf::from(format!("{}.new", path.display()));
    let _ = std::fs::remove_file(&tmp);
    let written = (|| {
        let (mut journal, _) = Journal::open(&tmp, |_| {})?;
        let mut g = GroupBuf::default();
        let mut err = Ok(());
        mem.snapshot(|c| {
            encode(&mut g, c);
            if err.is_ok() && g.payload_len() >= SNAPSHOT_GROUP {
                err = journal.append(&mut g);
            }
        });
        err?;
        journal.append(&mut g)?;
        journal.sync()
    })();
    if let Err(e) = written.and_then(|()| std::fs::rename(&tmp, path)) {
        let _ = std::fs::remove_file(&tmp);
        return Err(e);
    }
    // The rename itself made durable (not possible on every system: Windows cannot open a
    // directory; there the rename is as durable as the file system makes it).
    if let Some(dir) = path.parent()
        && let Ok(d) = std::fs::File::open(dir)
    {
        let _ = d.sync_all();
    }
    Ok(())
}

impl Journaled {
    /// Open (creating) the history of the data dir `dir`, for the room `room`: its journal.
    pub(super) fn open_dir(dir: &Path, me: PeerId, room: &str) -> Result<Journaled, Error> {
        Journaled::open(&dir.join(JOURNAL_FILE), me, room)
    }

    /// Open (creating) the journal at `path` and replay it, for the room `room`; compacted first
    /// when mostly superseded records.
    pub(super) fn open(path: &Path, me: PeerId, room: &str) -> Result<Journaled, Error> {
        let mut mem = Memory::new(me, Some(room));
        let mut seen = Replayed::default();
        let (journal, _) = Journal::open(path, |g| replay_into(&mut mem, &mut seen, g))
            .map_err(|e| storage("cannot open the history", e))?;
        if seen.unread > 0 {
            tracing::warn!(unread = seen.unread, path = %path.display(), "records of the history this version cannot read were skipped");
        }
        if seen.unread == 0 && superseded(&mem, seen.message_bytes, journal.len()) {
            // The state in memory holds every room (a store reads its own room, but keeps all):
            // it is the snapshot. The file is closed before the rename (Windows would refuse it).
            let before = journal.len();
            drop(journal);
            write_snapshot(&mem, path).map_err(|e| storage("cannot compact the history", e))?;
            let (journal, _) = Journal::open(path, |_| {}).map_err(|e| storage("cannot open the history", e))?;
            tracing::info!(before, after = journal.len(), "the history was compacted");
            return Ok(Journaled::new(mem, journal));
        }
        Ok(Journaled::new(mem, journal))
    }

    fn new(mem: Memory, journal: Journal) -> Journaled {
        Journaled { mem, syncer: Syncer::start(&journal), journal, group: Default::default() }
    }

    /// The history of the data dir `dir` for reading only, beside a running peer (its group
    /// being written is left): `None` when the dir has no journal.
    pub(super) fn read(dir: &Path, room: Option<&str>) -> Result<Option<Memory>, Error> {
        let path = dir.join(JOURNAL_FILE);
        if !path.exists() {
            return Ok(None);
        }
        let mut mem = Memory::new(me_of(dir), room);
        let mut seen = Replayed::default();
        Journal::read(&path, |g| replay_into(&mut mem, &mut seen, g))
            .map_err(|e| storage("cannot read the history", e))?;
        Ok(Some(mem))
    }

    /// Run a write: in the open group, or as a group of its own.
    pub(super) fn write<T>(&mut self, op: impl FnOnce(&mut Memory) -> T) -> Result<T, Error> {
        if self.mem.grouping() {
            return Ok(op(&mut self.mem));
        }
        self.mem.begin();
        let r = op(&mut self.mem);
        self.commit()?;
        Ok(r)
    }

    /// Append the group's changes to the journal and end the group; on a failed append the
    /// group is undone in memory too.
    pub(super) fn commit(&mut self) -> Result<(), Error> {
        if self.mem.wrote() {
            let g = &mut self.group;
            g.clear();
            self.mem.changes(|c| encode(g, c));
            if let Err(e) = self.journal.append(g) {
                g.clear();
                self.mem.rollback();
                return Err(storage("cannot save messages", e));
            }
            if let Some(s) = &self.syncer {
                s.wrote();
            }
        }
        self.mem.commit();
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::id::MsgId;
    use crate::protocol::Body;
    use crate::store::Store;

    fn env(author: u8, seq: u64, to: Option<PeerId>, body: Body) -> Envelope {
        Envelope {
            id: MsgId { author: PeerId([author; 16]), seq },
            author_name: "n".into(),
            sent_ms: 5,
            to,
            body,
            files: vec![],
        }
    }

    fn chat(author: u8, seq: u64, text: &str) -> Envelope {
        env(author, seq, None, Body::Chat { text: text.into() })
    }

    fn dir(name: &str) -> PathBuf {
        let d =
            std::env::temp_dir().join(format!("lanpeer-jdir-{name}-{}-{}", std::process::id(), rand::random::<u32>()));
        std::fs::create_dir_all(&d).unwrap();
        d
    }

    #[test]
    fn rooms_share_one_journal_and_do_not_mix() {
        let d = dir("rooms");
        let me = PeerId([1; 16]);
        let p = env(1, 1, None, Body::Problem { title: "5A".into(), body: String::new(), private_answers: false });
        {
            let mut a = Store::open(Some(&d), me, "5A").unwrap();
            a.insert(&p, &codec::encode(&p).unwrap(), 0, true).unwrap();
            a.touch_member(PeerId([7; 16]), "x", 10).unwrap();
            a.save_out_stream(PeerId([7; 16]), 4, 2).unwrap();
        }
        let mut b = Store::open(Some(&d), me, "5B").unwrap();
        assert!(b.has(&p.id), "a message is stored once, whatever its room");
        assert!(b.exercises().is_empty() && b.history(10).is_empty());
        assert!(b.room_envelope(&p.id).is_none() && b.catchup_ids(10, 10).is_empty());
        assert!(b.members_since(0).is_empty());
        assert_eq!(b.out_streams(), vec![(PeerId([7; 16]), 4, 2)], "streams are per peer, not per room");
        b.insert(&chat(2, 1, "in 5B"), &codec::encode(&chat(2, 1, "in 5B")).unwrap(), 1, true).unwrap();
        b.touch_member(PeerId([8; 16]), "y", 10).unwrap();
        drop(b);
        let a = Store::open_readonly(&d, Some("5A")).unwrap();
        assert_eq!(a.exercises().len(), 1);
        assert_eq!(a.history(10).len(), 1);
        assert_eq!(a.members_since(0), vec![(PeerId([7; 16]), "x".to_string())]);
        let all = Store::open_readonly(&d, None).unwrap();
        assert_eq!(all.history(10).len(), 2, "the export sees every room");
        assert_eq!(all.members_since(0).len(), 2);
        std::fs::remove_dir_all(&d).unwrap();
    }

    /// Counters written again and runs acknowledged pile up in the file; at open, once they are
    /// most of it, the state is written to a new file: smaller, and the same state.
    #[test]
    fn a_journal_of_mostly_superseded_records_is_compacted_at_open() {
        let d = dir("compact");
        let me = PeerId([1; 16]);
        let p = PeerId([7; 16]);
        let mut s = Store::open(Some(&d), me, "r").unwrap();
        for k in 1..=40_000u64 {
            s.save_out_stream(p, k + 1, k).unwrap();
        }
        let pos =
            s.insert(&chat(1, 1, "kept"), &codec::encode(&chat(1, 1, "kept")).unwrap(), 1, true).unwrap().unwrap();
        s.enqueue(p, 40_001, pos, 1).unwrap();
        s.touch_member(p, "seven", 3).unwrap();
        drop(s);
        let path = d.join(JOURNAL_FILE);
        let before = std::fs::metadata(&path).unwrap().len();
        assert!(before > 1 << 20, "{before}");
        let mut s = Store::open(Some(&d), me, "r").unwrap();
        let after = std::fs::metadata(&path).unwrap().len();
        assert!(after < 4096, "{before} -> {after}");
        assert_eq!(s.out_streams(), vec![(p, 40_002, 40_000)]);
        assert_eq!(s.pending(p, 0, 10).len(), 1);
        assert_eq!(s.members_since(0).len(), 1);
        assert!(!PathBuf::from(format!("{}.new", path.display())).exists());
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(&path).unwrap().permissions().mode() & 0o777;
            assert_eq!(mode, 0o600, "the compacted history is its owner's only, as the one it replaced");
        }
        // Still a journal that takes writes and replays them.
        s.insert(&chat(1, 2, "more"), &codec::encode(&chat(1, 2, "more")).unwrap(), 2, true).unwrap();
        drop(s);
        let s = Store::open(Some(&d), me, "r").unwrap();
        assert_eq!(s.count(), 2);
        drop(s);
        std::fs::remove_dir_all(&d).unwrap();
    }

    /// A history of messages only is not rewritten (nothing in it is superseded).
    #[test]
    fn a_journal_of_messages_is_left_as_it_is() {
        let d = dir("nocompact");
        let me = PeerId([1; 16]);
        let mut s = Store::open(Some(&d), me, "r").unwrap();
        for k in 1..=20_000u64 {
            s.insert(
                &chat(2, k, "a chat of some length, as in a lesson"),
                &codec::encode(&chat(2, k, "a chat of some length, as in a lesson")).unwrap(),
                k,
                true,
            )
            .unwrap();
        }
        drop(s);
        let path = d.join(JOURNAL_FILE);
        let before = std::fs::metadata(&path).unwrap();
        let s = Store::open(Some(&d), me, "r").unwrap();
        assert_eq!(s.count(), 20_000);
        let after = std::fs::metadata(&path).unwrap();
        assert_eq!(before.len(), after.len());
        assert_eq!(before.modified().unwrap(), after.modified().unwrap());
        drop(s);
        std::fs::remove_dir_all(&d).unwrap();
    }

    /// The read-only tools beside a writer: every committed group, and not the writer's lock.
    #[test]
    fn a_reader_sees_what_a_running_writer_committed() {
        let d = dir("reader");
        let me = PeerId([1; 16]);
        std::fs::write(d.join("id"), me.to_string()).unwrap();
        let mut w = Store::open(Some(&d), me, "r").unwrap();
        w.begin();
        w.insert(&chat(1, 1, "one"), &codec::encode(&chat(1, 1, "one")).unwrap(), 1, true).unwrap();
        w.commit().unwrap();
        w.begin();
        w.insert(&chat(1, 2, "two"), &codec::encode(&chat(1, 2, "two")).unwrap(), 2, true).unwrap();
        // Not committed yet: not in the file.
        assert_eq!(Store::open_readonly(&d, None).unwrap().count(), 1);
        w.commit().unwrap();
        let r = Store::open_readonly(&d, Some("r")).unwrap();
        assert_eq!(r.count(), 2);
        assert!(r.history(10).iter().all(|m| m.message.own), "own messages are known by the dir's id");
        drop((w, r));
        std::fs::remove_dir_all(&d).unwrap();
    }
}
