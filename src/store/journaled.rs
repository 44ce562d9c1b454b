//! The history in a journal of our own (`crate::journal`): the store in memory, with each group
//! of its writes appended to a file as one journal group, and replayed from it at open.
//!
//! Why: round 12 of docs/benchmarks-history.md measured SQLite at ≈ 4.2 of the 7.3 µs a streamed
//! message costs on disk and ≈ 30 µs for a receiver's one-message commit; a journal group is
//! written once, with one `write`. Not what a node's data dir uses yet: what is missing before it
//! can replace `history.db` (reading an older `history.db` once, the read-only tools, rooms,
//! compaction) is listed in docs/architecture.md, 8b. The bench's `store` lines measure it.
//!
//! A group is the changes of one `begin` .. `commit` ([`Memory::changes`]): the messages it
//! stored, then the value after the group of every other thing it changed. A write outside a
//! group is a group of its own. If the append fails (a full disk), the group is undone in memory
//! too and the commit fails, as SQLite's would. Records (integers little-endian, ids 16 bytes):
//!
//! | kind | fields |
//! |---|---|
//! | 1 message | time stored `u64`, the encoded envelope (the rest) |
//! | 2 member | id, last seen `u64`, name (the rest, UTF-8) |
//! | 3 outgoing stream | peer, next `u64`, highest acknowledged `u64` |
//! | 4 incoming stream | author, highest delivered `u64` |
//! | 5 run | peer, `lseq` `u64`, first row `i64`, length `u64`, time queued `u64` |
//! | 6 run gone | peer, `lseq` `u64` |

use std::cell::RefCell;
use std::path::Path;

use crate::codec;
use crate::error::Error;
use crate::id::PeerId;
use crate::journal::{GroupBuf, Journal, Records};
use crate::protocol::Envelope;

use super::memory::{Change, Memory};

/// The history of one room in a journal file.
#[derive(Debug)]
pub(super) struct Journaled {
    pub(super) mem: Memory,
    journal: RefCell<Journal>,
    /// The group being written, kept between commits (no allocation per turn).
    group: RefCell<GroupBuf>,
}

fn encode(g: &mut GroupBuf, c: Change<'_>) {
    match c {
        Change::Message(env, at) => {
            // An envelope that does not encode was refused before it got here (it came through
            // the codec, or was made by this node); if one did, it is kept in memory only.
            let Ok(bytes) = codec::encode(env) else { return };
            g.push_with(|b| {
                b.push(1);
                b.extend_from_slice(&at.to_le_bytes());
                b.extend_from_slice(&bytes);
            });
        }
        Change::Member(id, name, at) => g.push_with(|b| {
            b.push(2);
            b.extend_from_slice(&id.0);
            b.extend_from_slice(&at.to_le_bytes());
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
    fn peer(&mut self) -> Option<PeerId> {
        self.take::<16>().map(PeerId)
    }
    /// `Some` when every byte was read.
    fn end(self) -> Option<()> {
        self.0.is_empty().then_some(())
    }
}

/// Apply one record to the state (outside any group). `None`: a record this version cannot read.
fn apply(mem: &Memory, rec: &[u8]) -> Option<()> {
    let (&kind, rest) = rec.split_first()?;
    let mut f = Fields(rest);
    match kind {
        1 => {
            let at = f.u64()?;
            let env: Envelope = codec::decode(f.0).ok()?;
            mem.insert(&env, at).ok()?;
        }
        2 => {
            let (id, at) = (f.peer()?, f.u64()?);
            mem.touch_member(id, std::str::from_utf8(f.0).ok()?, at).ok()?;
        }
        3 => {
            let (p, next, acked) = (f.peer()?, f.u64()?, f.u64()?);
            f.end()?;
            mem.save_out_stream(p, next, acked).ok()?;
        }
        4 => {
            let (p, delivered) = (f.peer()?, f.u64()?);
            f.end()?;
            mem.save_in_stream(p, delivered).ok()?;
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

impl Journaled {
    /// Open (creating) the journal at `path` and replay it.
    pub(super) fn open(path: &Path, me: PeerId) -> Result<Journaled, Error> {
        let mem = Memory::new(me);
        let mut unread = 0usize;
        let replay = |g: Records<'_>| {
            for rec in g {
                if apply(&mem, rec).is_none() {
                    unread += 1;
                }
            }
        };
        let (journal, _) = Journal::open(path, replay).map_err(|e| storage("cannot open the history", e))?;
        if unread > 0 {
            tracing::warn!(unread, path = %path.display(), "records of the history this version cannot read were skipped");
        }
        Ok(Journaled { mem, journal: RefCell::new(journal), group: Default::default() })
    }

    /// Run a write: in the open group, or as a group of its own.
    pub(super) fn write<T>(&self, op: impl FnOnce(&Memory) -> Result<T, Error>) -> Result<T, Error> {
        if self.mem.grouping() {
            return op(&self.mem);
        }
        self.mem.begin();
        let r = op(&self.mem);
        self.commit()?;
        r
    }

    pub(super) fn commit(&self) -> Result<(), Error> {
        if self.mem.wrote() {
            let g = &mut *self.group.borrow_mut();
            g.clear();
            self.mem.changes(|c| encode(g, c));
            if let Err(e) = self.journal.borrow_mut().append(g) {
                g.clear();
                self.mem.rollback();
                return Err(storage("cannot save messages", e));
            }
        }
        self.mem.commit()
    }
}
