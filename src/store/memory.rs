//! The history in memory: the store of a node without a data directory (`Config::data_dir =
//! None`: embedding, tests, the benchmarks' in-process peers), and the state that the journal
//! store (`journaled`) rebuilds when it opens and appends to as it goes.
//!
//! A message is a push onto a vector and an entry in a per-author vector of numbers: no b-tree,
//! no transaction log (the costs are in docs/benchmarks.md). Messages and members carry their
//! room (one data dir may serve several rooms, and the journal keeps them all in one file), and
//! the reads see the store's own room, or every room for the read-only tools (`room: None`).
//! Nothing here fails. A group (`begin` .. `commit`) keeps a list of what it changed, so that
//! `rollback` puts it back. A property test in `store/mod.rs` makes random calls on it and on a
//! naive model (`model.rs`) and compares every answer.

use std::cell::RefCell;
use std::collections::BTreeMap;

use crate::id::FastMap as HashMap;

use crate::authorship::Batch;
use crate::codec;
use crate::id::{MsgId, PeerId};
use crate::merkle::Hash;
use crate::protocol::{Body, Envelope};

use super::{CatchupMemo, Pos, Stored};

/// One stored message. Its place (a [`Pos`]) is its index in [`State::msgs`] plus 1 (0 means "none" in
/// the per-author vectors of [`Places`]).
///
/// Kept as its encoding (what the wire carried, what resending and catch-up send again, what the
/// journal writes), not as an [`Envelope`]: ≈ 130 bytes for a 100-byte chat instead of a copy of
/// the envelope with its two strings, and no encoding per resend. Read back as an envelope only
/// by the cold reads (`history`, `exercises`). The encoding is in [`State::raw`].
#[derive(Debug)]
struct Msg {
    raw: RawRef,
    id: MsgId,
    received_ms: u64,
    /// Its room: an index into [`State::rooms`].
    room: u32,
    /// Meant for one peer (never offered in catch-up).
    private: bool,
    /// Proved by its author's signature (a batch is kept for it): only such messages are handed
    /// on to others. A message of a data dir from before signatures is not.
    signed: bool,
}

/// Where a message's encoding is in [`Raw`].
#[derive(Debug, Clone, Copy)]
struct RawRef {
    chunk: u32,
    at: u32,
    len: u32,
}

/// Bytes of a chunk of [`Raw`] (a larger encoding gets a chunk of its own size).
const RAW_CHUNK: usize = 64 * 1024;

/// The messages' encodings, end to end in chunks that are never moved or grown: one allocation
/// per 64 KiB rather than one per message. An allocation per message was ≈ 4 % of a stream's CPU
/// on each side (glibc's `malloc`, its 16-byte header, and the frees of a burst coalescing) and
/// 16 bytes of pointer beside each; here a message is 12 bytes of reference and its bytes.
/// Messages are only ever added, and taken back last first (a rolled-back group).
#[derive(Debug, Default)]
struct Raw {
    chunks: Vec<Vec<u8>>,
}

impl Raw {
    fn push(&mut self, raw: &[u8]) -> RawRef {
        let fits = self.chunks.last().is_some_and(|c| c.capacity() - c.len() >= raw.len());
        if !fits {
            self.chunks.push(Vec::with_capacity(raw.len().max(RAW_CHUNK)));
        }
        let chunk = self.chunks.len() - 1;
        let c = &mut self.chunks[chunk];
        let at = c.len();
        c.extend_from_slice(raw);
        // A message is at most a frame (1 MiB) and a chunk no larger than its largest message.
        RawRef { chunk: chunk as u32, at: at as u32, len: raw.len() as u32 }
    }

    fn get(&self, r: RawRef) -> &[u8] {
        &self.chunks[r.chunk as usize][r.at as usize..][..r.len as usize]
    }

    /// Take back the last message pushed (`r`).
    fn pop(&mut self, r: RawRef) {
        if let Some(c) = self.chunks.get_mut(r.chunk as usize) {
            c.truncate(r.at as usize);
        }
    }
}

/// Place of each message by its id.
///
/// An author numbers its messages 1, 2, 3 ..., and we store nearly all of them (all but the
/// private ones meant for others), mostly in order: so each author's places are a vector indexed
/// by number from the first we stored, 8 bytes a message, its next slot in the cache. A hash map
/// of every id was one random probe into a table as large as the history (a cache miss) and
/// its growth, ≈ 6 % of a stream's CPU on each side, and 32 bytes and more a message. A number
/// below an author's first, or more than [`GAP_MAX`] past its last (a hostile peer's, or an old
/// message caught up late), goes to a hash map of its own, so no number makes the vector grow
/// by more than that.
#[derive(Debug, Default)]
struct Places {
    authors: HashMap<PeerId, Dense>,
    sparse: HashMap<MsgId, i64>,
}

/// One author's places: `places[i]` is the place of its message `base + i` (0: none stored).
#[derive(Debug, Default)]
struct Dense {
    base: u64,
    places: Vec<i64>,
}

/// The most empty slots one message may add to an author's vector (a gap: messages not stored
/// here, such as the private ones meant for others).
const GAP_MAX: u64 = 64;

impl Places {
    fn get(&self, id: &MsgId) -> Option<Pos> {
        if let Some(d) = self.authors.get(&id.author)
            && let Some(i) = id.seq.checked_sub(d.base)
            && let Some(&pos) = d.places.get(i as usize)
            && pos != 0
        {
            return Some(pos);
        }
        if self.sparse.is_empty() { None } else { self.sparse.get(id).copied() }
    }

    /// Store `id` at `pos`; false (and nothing changed) when it is stored already.
    fn insert(&mut self, id: MsgId, pos: i64) -> bool {
        if self.get(&id).is_some() {
            return false;
        }
        let d = self.authors.entry(id.author).or_default();
        if d.places.is_empty() {
            d.base = id.seq;
        }
        match id.seq.checked_sub(d.base) {
            Some(i) if i < d.places.len() as u64 + GAP_MAX => {
                let i = i as usize;
                if i >= d.places.len() {
                    d.places.resize(i + 1, 0);
                }
                d.places[i] = pos;
            }
            _ => drop(self.sparse.insert(id, pos)),
        }
        true
    }

    /// Forget `id` (a rolled-back group takes its messages back).
    fn remove(&mut self, id: MsgId) {
        if let Some(d) = self.authors.get_mut(&id.author)
            && let Some(i) = id.seq.checked_sub(d.base)
            && let Some(pos) = d.places.get_mut(i as usize)
            && *pos != 0
        {
            *pos = 0;
            while d.places.last() == Some(&0) {
                d.places.pop();
            }
            return;
        }
        self.sparse.remove(&id);
    }
}

/// A run of messages queued for one peer: stream numbers `lseq..lseq+n` (the key of the map it
/// is in) are places `msg..msg+n`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Run {
    msg: i64,
    n: u64,
    queued_ms: u64,
}

/// One thing a group changed, with its value after the group (see [`Memory::changes`]).
#[derive(Debug)]
pub(super) enum Change<'a> {
    /// A message stored (its encoding), when, its room, and whether it is signed.
    Message(&'a [u8], u64, &'a str, bool),
    /// A signed batch kept (or what it knows grown).
    Batch(&'a Batch),
    /// A member of a room (id, room), its name and when it was last seen.
    Member(PeerId, &'a str, &'a str, u64),
    /// An outgoing stream's next number and highest acknowledged.
    OutStream(PeerId, u64, u64),
    /// An incoming stream's highest delivered.
    InStream(PeerId, u64),
    /// The run at (peer, lseq): (first place, length, time queued), or none any more.
    Run(PeerId, u64, Option<(i64, u64, u64)>),
}

/// How to put back one change of the open group.
#[derive(Debug)]
enum Undo {
    /// The last message pushed.
    Message,
    Member((u32, PeerId), Option<(String, u64)>),
    OutStream(PeerId, Option<(u64, u64)>),
    InStream(PeerId, Option<u64>),
    /// The run at (peer, lseq) as it was (`None`: there was none).
    Outbox(PeerId, u64, Option<Run>),
    /// The batch of (author, first) as it was.
    Batch((PeerId, u64), Option<Batch>),
}

/// The catch-up candidates of one room, places in order: exercises and chats meant for the whole
/// room.
#[derive(Debug, Default)]
struct Catchup {
    exercises: Vec<i64>,
    chats: Vec<i64>,
}

#[derive(Debug, Default)]
struct State {
    /// The rooms' names; a message or member names its room by index here.
    rooms: Vec<String>,
    msgs: Vec<Msg>,
    /// The messages' encodings.
    raw: Raw,
    /// Place of each message: the repeat check (`UNIQUE (author, seq)`, over every room).
    places: Places,
    /// Places of problems, answers and feedback of every room, in order (the exercises index).
    exercises: Vec<i64>,
    /// Places of the messages that attach files, in order.
    attached: Vec<i64>,
    /// The catch-up candidates of each room, by room index.
    catchup: Vec<Catchup>,
    members: HashMap<(u32, PeerId), (String, u64)>,
    out_streams: HashMap<PeerId, (u64, u64)>,
    in_streams: HashMap<PeerId, u64>,
    outbox: HashMap<PeerId, BTreeMap<u64, Run>>,
    /// The signed batches of the messages held, by (author, first number).
    batches: BTreeMap<(PeerId, u64), Batch>,
    /// The open group's changes, oldest first.
    undo: Vec<Undo>,
    /// Between `begin` and `commit`: changes are kept in `undo`.
    grouping: bool,
    /// The open group has written.
    wrote: bool,
    /// Bytes of messages the open group stored.
    group_bytes: usize,
}

impl State {
    /// The index of the room `name`, added if new.
    fn room(&mut self, name: &str) -> u32 {
        if let Some(i) = self.rooms.iter().position(|r| r == name) {
            return i as u32;
        }
        self.rooms.push(name.to_string());
        self.catchup.push(Catchup::default());
        (self.rooms.len() - 1) as u32
    }

    fn msg(&self, pos: i64) -> Option<&Msg> {
        usize::try_from(pos - 1).ok().and_then(|i| self.msgs.get(i))
    }

    /// A write call: the open group (if any) has written, even when the call changed nothing
    /// (the actor asks [`Memory::wrote`] whether a turn writes anyway).
    fn writing(&mut self) {
        if self.grouping {
            self.wrote = true;
        }
    }

    /// A change in the open group (if any): remember how to undo it.
    fn log(&mut self, undo: impl FnOnce() -> Undo) {
        self.writing();
        if self.grouping {
            self.undo.push(undo());
        }
    }

    /// A change to the run at (peer, lseq), kept for undo.
    fn set_run(&mut self, peer: PeerId, lseq: u64, run: Option<Run>) {
        let old = self.replace_run(peer, lseq, run);
        if old != run {
            self.log(|| Undo::Outbox(peer, lseq, old));
        }
    }

    /// The room a write goes to: `room`, or "" for a store of every room.
    fn write_room(&mut self, room: Option<u32>) -> u32 {
        match room {
            Some(r) => r,
            None => self.room(""),
        }
    }

    fn touch_at(&mut self, room: u32, id: PeerId, name: &str, now_ms: u64) {
        let old = self.members.insert((room, id), (name.to_string(), now_ms));
        self.log(|| Undo::Member((room, id), old));
    }

    /// Forget `peer`'s numbers up to `upto`: whole runs, and the head of the run that holds
    /// `upto` when it goes on past it.
    fn forget_upto(&mut self, peer: PeerId, upto: u64) {
        let Some(runs) = self.outbox.get(&peer) else { return };
        let hit: Vec<(u64, Run)> = runs.range(..=upto).map(|(l, r)| (*l, *r)).collect();
        for (lseq, r) in hit {
            self.set_run(peer, lseq, None);
            if lseq + r.n - 1 > upto {
                let cut = upto + 1 - lseq;
                self.set_run(peer, upto + 1, Some(Run { msg: r.msg + cut as i64, n: r.n - cut, ..r }));
            }
        }
    }

    /// Set the run at (peer, lseq), or remove it with `None`; returns what was there.
    fn replace_run(&mut self, peer: PeerId, lseq: u64, run: Option<Run>) -> Option<Run> {
        let runs = self.outbox.entry(peer).or_default();
        let old = match run {
            Some(r) => runs.insert(lseq, r),
            None => runs.remove(&lseq),
        };
        if runs.is_empty() {
            self.outbox.remove(&peer);
        }
        old
    }
}

/// Put back `key`'s value as it was (`None`: it had none).
fn restore<K: std::hash::Hash + Eq, V>(map: &mut HashMap<K, V>, key: K, old: Option<V>) {
    match old {
        Some(v) => drop(map.insert(key, v)),
        None => drop(map.remove(&key)),
    }
}

/// The store of a node without a data directory.
pub(super) struct Memory {
    me: PeerId,
    /// The room read and written (an index into [`State::rooms`]); `None`: every room is read
    /// (the read-only tools), and a write goes to the room "".
    room: Option<u32>,
    st: State,
    /// The last catch-up set asked for (a cache of a read, hence the cell).
    catchup_memo: RefCell<Option<CatchupMemo>>,
}

impl std::fmt::Debug for Memory {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Not the messages: a log line must not print the history.
        f.debug_struct("Memory").field("messages", &self.st.msgs.len()).field("grouping", &self.st.grouping).finish()
    }
}

impl Memory {
    /// An empty store of the peer `me`, for the room `room` (`None`: every room).
    pub(super) fn new(me: PeerId, room: Option<&str>) -> Memory {
        let mut st = State::default();
        let room = room.map(|r| st.room(r));
        Memory { me, room, st, catchup_memo: Default::default() }
    }

    /// Is `room` one this store reads?
    fn reads(&self, room: u32) -> bool {
        self.room.is_none_or(|r| r == room)
    }

    pub(super) fn begin(&mut self) {
        self.st.grouping = true;
    }

    /// Bytes of messages stored by the open group.
    pub(super) fn group_bytes(&self) -> usize {
        self.st.group_bytes
    }

    /// A group is open.
    pub(super) fn grouping(&self) -> bool {
        self.st.grouping
    }

    pub(super) fn wrote(&self) -> bool {
        self.st.wrote
    }

    /// End the group, keeping what it wrote.
    pub(super) fn commit(&mut self) {
        let st = &mut self.st;
        st.undo.clear();
        st.grouping = false;
        st.wrote = false;
        st.group_bytes = 0;
    }

    /// What the open group changed, as it is now (for the journal, before the commit): the
    /// messages it stored, in order, then each other thing it changed once, with its value now.
    pub(super) fn changes(&self, mut each: impl FnMut(Change<'_>)) {
        let st = &self.st;
        let new = st.undo.iter().filter(|u| matches!(u, Undo::Message)).count();
        for m in &st.msgs[st.msgs.len() - new..] {
            each(Change::Message(st.raw.get(m.raw), m.received_ms, &st.rooms[m.room as usize], m.signed));
        }
        let mut seen = crate::id::FastSet::default();
        for u in &st.undo {
            match *u {
                Undo::Message => {}
                Undo::Member((room, id), _) if seen.insert((0, id, room as u64)) => {
                    if let Some((name, at)) = st.members.get(&(room, id)) {
                        each(Change::Member(id, &st.rooms[room as usize], name, *at));
                    }
                }
                Undo::OutStream(p, _) if seen.insert((1, p, 0)) => {
                    if let Some(&(next, acked)) = st.out_streams.get(&p) {
                        each(Change::OutStream(p, next, acked));
                    }
                }
                Undo::InStream(p, _) if seen.insert((2, p, 0)) => {
                    if let Some(&d) = st.in_streams.get(&p) {
                        each(Change::InStream(p, d));
                    }
                }
                Undo::Outbox(p, lseq, _) if seen.insert((3, p, lseq)) => {
                    let run = st.outbox.get(&p).and_then(|runs| runs.get(&lseq));
                    each(Change::Run(p, lseq, run.map(|r| (r.msg, r.n, r.queued_ms))));
                }
                Undo::Batch(key, _) if seen.insert((4, key.0, key.1)) => {
                    if let Some(b) = st.batches.get(&key) {
                        each(Change::Batch(b));
                    }
                }
                _ => {}
            }
        }
    }

    /// Everything stored, as the changes that would make it from nothing (a journal's
    /// compaction, an import): the messages in order, then the members, the streams and the runs.
    pub(super) fn snapshot(&self, mut each: impl FnMut(Change<'_>)) {
        let st = &self.st;
        for m in &st.msgs {
            each(Change::Message(st.raw.get(m.raw), m.received_ms, &st.rooms[m.room as usize], m.signed));
        }
        for b in st.batches.values() {
            each(Change::Batch(b));
        }
        for ((room, id), (name, at)) in &st.members {
            each(Change::Member(*id, &st.rooms[*room as usize], name, *at));
        }
        for (p, (next, acked)) in &st.out_streams {
            each(Change::OutStream(*p, *next, *acked));
        }
        for (p, d) in &st.in_streams {
            each(Change::InStream(*p, *d));
        }
        for (p, runs) in &st.outbox {
            for (lseq, r) in runs {
                each(Change::Run(*p, *lseq, Some((r.msg, r.n, r.queued_ms))));
            }
        }
    }

    /// How many of each thing is stored: (messages, members, streams out and in, runs).
    pub(super) fn sizes(&self) -> (usize, usize, usize, usize) {
        let st = &self.st;
        let runs = st.outbox.values().map(BTreeMap::len).sum();
        (st.msgs.len(), st.members.len(), st.out_streams.len() + st.in_streams.len(), runs)
    }

    /// Set or remove the run at (peer, lseq) as a journal recorded it (outside any group).
    pub(super) fn put_run(&mut self, peer: PeerId, lseq: u64, run: Option<(i64, u64, u64)>) {
        let run = run.map(|(msg, n, queued_ms)| Run { msg, n, queued_ms });
        self.st.replace_run(peer, lseq, run);
    }

    pub(super) fn rollback(&mut self) {
        self.catchup_memo.get_mut().take();
        let st = &mut self.st;
        st.grouping = false;
        st.wrote = false;
        st.group_bytes = 0;
        while let Some(u) = st.undo.pop() {
            match u {
                Undo::Message => {
                    let Some(m) = st.msgs.pop() else { continue };
                    st.raw.pop(m.raw);
                    let pos = st.msgs.len() as i64 + 1;
                    st.places.remove(m.id);
                    let c = &mut st.catchup[m.room as usize];
                    for list in [&mut st.exercises, &mut st.attached, &mut c.exercises, &mut c.chats] {
                        if list.last() == Some(&pos) {
                            list.pop();
                        }
                    }
                }
                Undo::Member(id, old) => restore(&mut st.members, id, old),
                Undo::OutStream(p, old) => restore(&mut st.out_streams, p, old),
                Undo::InStream(p, old) => restore(&mut st.in_streams, p, old),
                Undo::Outbox(p, lseq, old) => drop(st.replace_run(p, lseq, old)),
                Undo::Batch(key, old) => match old {
                    Some(b) => drop(st.batches.insert(key, b)),
                    None => drop(st.batches.remove(&key)),
                },
            }
        }
    }

    // ---- messages ----------------------------------------------------------------------------

    /// Keep `env`, whose encoding is `raw`; `signed`: proved by a batch the store keeps too.
    pub(super) fn insert(&mut self, env: &Envelope, raw: &[u8], received_ms: u64, signed: bool) -> Option<Pos> {
        let room = self.st.write_room(self.room);
        self.insert_at(room, env, raw, received_ms, signed)
    }

    /// Keep a message of the room `room` (a journal's record).
    pub(super) fn insert_in(&mut self, room: &str, env: &Envelope, raw: &[u8], at: u64, signed: bool) -> Option<Pos> {
        let room = self.st.room(room);
        self.insert_at(room, env, raw, at, signed)
    }

    fn insert_at(&mut self, room: u32, env: &Envelope, raw: &[u8], received_ms: u64, signed: bool) -> Option<Pos> {
        let st = &mut self.st;
        st.writing();
        let pos = st.msgs.len() as i64 + 1;
        if !st.places.insert(env.id, pos) {
            return None;
        }
        if st.grouping {
            st.group_bytes += raw.len();
        }
        let raw = st.raw.push(raw);
        st.msgs.push(Msg { raw, id: env.id, received_ms, room, private: env.to.is_some(), signed });
        let chat = matches!(env.body, Body::Chat { .. });
        if !chat {
            st.exercises.push(pos);
        }
        if !env.files.is_empty() {
            st.attached.push(pos);
        }
        if env.to.is_none() && signed {
            let c = &mut st.catchup[room as usize];
            if chat { &mut c.chats } else { &mut c.exercises }.push(pos);
        }
        st.log(|| Undo::Message);
        self.catchup_memo.get_mut().take();
        Some(pos)
    }

    pub(super) fn has(&self, id: &MsgId) -> bool {
        self.st.places.get(id).is_some()
    }

    pub(super) fn room_envelope(&self, id: &MsgId) -> Option<Vec<u8>> {
        let st = &self.st;
        let m = st.places.get(id).and_then(|pos| st.msg(pos))?;
        if m.private || !m.signed || !self.reads(m.room) {
            return None;
        }
        Some(st.raw.get(m.raw).to_vec())
    }

    /// Keep a signed batch (or add what `b` knows to the one kept). Only the first batch of an
    /// (author, first number) is kept: an honest author signs one.
    pub(super) fn keep_batch(&mut self, b: &Batch) {
        let st = &mut self.st;
        let key = (b.author, b.first);
        let old = st.batches.get(&key).cloned();
        let changed = match st.batches.get_mut(&key) {
            Some(kept) => kept.merge(b),
            None => {
                st.batches.insert(key, b.clone());
                true
            }
        };
        if changed {
            st.log(|| Undo::Batch(key, old));
        }
    }

    /// The batch that proves message `id`, with the leaves of it that this store holds (by
    /// index; `None` for the others), to prove any of them to another peer.
    pub(super) fn proof_parts(&self, id: &MsgId) -> Option<(Batch, Vec<Option<Hash>>)> {
        let st = &self.st;
        let (_, b) = st.batches.range(..=(id.author, id.seq)).next_back()?;
        if b.author != id.author || b.index(id.seq).is_none() {
            return None;
        }
        let leaves = (0..b.count as u64)
            .map(|i| {
                let pos = st.places.get(&MsgId { author: b.author, seq: b.first + i })?;
                st.msg(pos).filter(|m| m.signed).map(|m| crate::merkle::leaf(st.raw.get(m.raw)))
            })
            .collect();
        Some((b.clone(), leaves))
    }

    fn stored(&self, st: &State, pos: i64) -> Option<Stored> {
        let m = st.msg(pos)?;
        let env = codec::decode_envelope(st.raw.get(m.raw)).ok()?;
        Some(Stored::new(pos, env, m.received_ms, self.me))
    }

    /// Is `id` in the catch-up set ([`Memory::catchup_ids`])?
    pub(super) fn offered(&self, id: &MsgId, chats: usize, limit: usize) -> bool {
        if self.catchup_memo.borrow().as_ref().is_none_or(|(key, _, _)| *key != (chats, limit)) {
            self.catchup_ids(chats, limit);
        }
        self.catchup_memo.borrow().as_ref().is_some_and(|(_, _, set)| set.contains(id))
    }

    pub(super) fn catchup_ids(&self, chats: usize, limit: usize) -> Vec<MsgId> {
        if let Some((key, ids, _)) = &*self.catchup_memo.borrow()
            && *key == (chats, limit)
        {
            return ids.clone();
        }
        let st = &self.st;
        // Every room exercise and the last `chats` room chats; of them the newest `limit`.
        let (mut places, mut all_chats) = (Vec::new(), Vec::new());
        for (i, c) in st.catchup.iter().enumerate() {
            if self.reads(i as u32) {
                places.extend_from_slice(&c.exercises);
                all_chats.extend_from_slice(&c.chats);
            }
        }
        if self.room.is_none() {
            all_chats.sort_unstable();
        }
        places.extend_from_slice(&all_chats[all_chats.len().saturating_sub(chats)..]);
        places.sort_unstable();
        let places = &places[places.len().saturating_sub(limit)..];
        let ids: Vec<MsgId> = places.iter().filter_map(|&r| st.msg(r)).map(|m| m.id).collect();
        let set = ids.iter().copied().collect();
        *self.catchup_memo.borrow_mut() = Some(((chats, limit), ids.clone(), set));
        ids
    }

    pub(super) fn history(&self, limit: usize) -> Vec<Stored> {
        let st = &self.st;
        let places = (1..=st.msgs.len() as i64).rev().filter(|&pos| st.msg(pos).is_some_and(|m| self.reads(m.room)));
        let mut places: Vec<i64> = places.take(limit).collect();
        places.reverse();
        places.into_iter().filter_map(|pos| self.stored(st, pos)).collect()
    }

    pub(super) fn exercises(&self) -> Vec<Stored> {
        let st = &self.st;
        let mine = st.exercises.iter().filter(|&&pos| st.msg(pos).is_some_and(|m| self.reads(m.room)));
        mine.filter_map(|&pos| self.stored(st, pos)).collect()
    }

    pub(super) fn with_files(&self) -> Vec<Stored> {
        let st = &self.st;
        let mine = st.attached.iter().filter(|&&pos| st.msg(pos).is_some_and(|m| self.reads(m.room)));
        mine.filter_map(|&pos| self.stored(st, pos)).collect()
    }

    pub(super) fn count(&self) -> u64 {
        self.st.msgs.len() as u64
    }

    // ---- members -----------------------------------------------------------------------------

    pub(super) fn touch_member(&mut self, id: PeerId, name: &str, now_ms: u64) {
        let room = self.st.write_room(self.room);
        self.st.touch_at(room, id, name, now_ms);
    }

    /// Remember a peer of the room `room` (a journal's record, an import).
    pub(super) fn touch_member_in(&mut self, room: &str, id: PeerId, name: &str, now_ms: u64) {
        let room = self.st.room(room);
        self.st.touch_at(room, id, name, now_ms);
    }

    pub(super) fn members_since(&self, since_ms: u64) -> Vec<(PeerId, String)> {
        self.st
            .members
            .iter()
            .filter(|((room, _), (_, seen))| *seen >= since_ms && self.reads(*room))
            .map(|((_, id), (name, _))| (*id, name.clone()))
            .collect()
    }

    // ---- streams -----------------------------------------------------------------------------

    pub(super) fn out_streams(&self) -> Vec<(PeerId, u64, u64)> {
        let st = &self.st;
        // The next number is one past the highest queued when the saved counter lags behind (it
        // is written with the acknowledgements, not with every message queued).
        let mut all: BTreeMap<PeerId, (u64, u64)> = st.out_streams.iter().map(|(p, v)| (*p, *v)).collect();
        for (peer, runs) in &st.outbox {
            let Some((lseq, r)) = runs.last_key_value() else { continue };
            let e = all.entry(*peer).or_insert((0, 0));
            e.0 = e.0.max(lseq + r.n);
        }
        all.into_iter().map(|(p, (n, a))| (p, n, a)).collect()
    }

    pub(super) fn save_out_stream(&mut self, peer: PeerId, next: u64, acked: u64) {
        let st = &mut self.st;
        let old = st.out_streams.insert(peer, (next, acked));
        st.log(|| Undo::OutStream(peer, old));
    }

    pub(super) fn enqueue(&mut self, peer: PeerId, lseq: u64, msg: i64, now_ms: u64) {
        let st = &mut self.st;
        st.writing();
        // A message that follows the peer's last run (next number, next place, same millisecond)
        // extends it; a run is of one age, since the age bound drops whole runs.
        let last = st.outbox.get(&peer).and_then(|runs| runs.last_key_value()).map(|(l, r)| (*l, *r));
        let run = match last {
            Some((l, r)) if l + r.n == lseq && r.msg + r.n as i64 == msg && r.queued_ms == now_ms => {
                st.set_run(peer, l, Some(Run { n: r.n + 1, ..r }));
                return;
            }
            _ => Run { msg, n: 1, queued_ms: now_ms },
        };
        st.set_run(peer, lseq, Some(run));
    }

    pub(super) fn pending(&self, peer: PeerId, after: u64, limit: usize) -> Vec<(u64, Vec<u8>)> {
        let st = &self.st;
        let mut out = Vec::new();
        let Some(runs) = st.outbox.get(&peer) else { return out };
        // From the run that holds `after + 1` on.
        let start = runs.range(..=after.saturating_add(1)).next_back().map_or(0, |(l, _)| *l);
        'runs: for (&lseq, r) in runs.range(start..) {
            for i in 0..r.n {
                if out.len() >= limit {
                    break 'runs;
                }
                let number = lseq + i;
                let Some(m) = st.msg(r.msg + i as i64) else { continue };
                if number <= after {
                    continue;
                }
                out.push((number, st.raw.get(m.raw).to_vec()));
            }
        }
        out
    }

    pub(super) fn first_pending(&self, peer: PeerId) -> Option<u64> {
        self.st.outbox.get(&peer).and_then(|runs| runs.first_key_value()).map(|(l, _)| *l)
    }

    pub(super) fn acked(&mut self, peer: PeerId, upto: u64) {
        self.st.writing();
        self.st.forget_upto(peer, upto);
    }

    pub(super) fn purge(&mut self, before_ms: u64, max_per_peer: usize) -> Vec<(PeerId, u64)> {
        let st = &mut self.st;
        st.writing();
        let mut dropped: HashMap<PeerId, u64> = HashMap::default();
        let old: Vec<(PeerId, u64, u64)> = st
            .outbox
            .iter()
            .flat_map(|(p, runs)| runs.iter().filter(|(_, r)| r.queued_ms < before_ms).map(|(l, r)| (*p, *l, r.n)))
            .collect();
        for (peer, lseq, n) in old {
            st.set_run(peer, lseq, None);
            *dropped.entry(peer).or_default() += n;
        }
        let over: Vec<(PeerId, u64)> = st
            .outbox
            .iter()
            .filter_map(|(p, runs)| {
                let total: u64 = runs.values().map(|r| r.n).sum();
                (total > max_per_peer as u64).then(|| (*p, total - max_per_peer as u64))
            })
            .collect();
        for (peer, extra) in over {
            // The oldest `extra` numbers go: through the number `extra` places after the first.
            let mut covered = 0;
            let mut upto = None;
            for (&lseq, r) in &st.outbox[&peer] {
                if covered + r.n >= extra {
                    upto = Some(lseq + (extra - covered) - 1);
                    break;
                }
                covered += r.n;
            }
            if let Some(upto) = upto {
                st.forget_upto(peer, upto);
            }
            *dropped.entry(peer).or_default() += extra;
        }
        dropped.into_iter().collect()
    }

    pub(super) fn in_streams(&self) -> Vec<(PeerId, u64)> {
        self.st.in_streams.iter().map(|(p, d)| (*p, *d)).collect()
    }

    pub(super) fn save_in_stream(&mut self, author: PeerId, delivered: u64) {
        let st = &mut self.st;
        let old = st.in_streams.insert(author, delivered);
        st.log(|| Undo::InStream(author, old));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Ids in order, with gaps, far ahead, behind, again, taken back: each found at its place,
    /// each stored once, and no author's vector grown by more than `GAP_MAX` for one id.
    #[test]
    fn rows_find_every_id_once_whatever_its_number() {
        let (a, b) = (PeerId([1; 16]), PeerId([2; 16]));
        let id = |author, seq| MsgId { author, seq };
        let mut r = Places::default();
        let mut want = std::collections::HashMap::new();
        let seqs = [5u64, 6, 7, 9, 40, 41, 3, 1_000_000, 42, 2, u64::MAX, 200, 100];
        for (k, &seq) in seqs.iter().enumerate() {
            for author in [a, b] {
                let pos = (k * 2 + (author == b) as usize + 1) as i64;
                assert!(r.insert(id(author, seq), pos), "{seq} is new");
                assert!(!r.insert(id(author, seq), pos + 100), "{seq} again is refused");
                want.insert(id(author, seq), pos);
            }
        }
        for (i, pos) in &want {
            assert_eq!(r.get(i), Some(*pos));
        }
        assert_eq!(r.get(&id(a, 8)), None);
        assert_eq!(r.get(&id(a, 4)), None);
        assert!(r.authors[&a].places.len() <= 200 - 5 + 1, "1,000,000 and u64::MAX did not grow it");
        // Taken back (a rolled-back group), last first: gone, and stored again if it comes again.
        for seq in [100u64, 200, u64::MAX, 2] {
            r.remove(id(a, seq));
            assert_eq!(r.get(&id(a, seq)), None);
            assert_eq!(r.get(&id(b, seq)), want.get(&id(b, seq)).copied(), "the other author's is kept");
        }
        assert!(r.insert(id(a, 200), 7));
        assert_eq!(r.get(&id(a, 200)), Some(7));
    }

    /// Encodings small and large across chunk boundaries come back whole; one taken back
    /// leaves its room to the next; no chunk is ever grown (it would move the others' bytes).
    #[test]
    fn raw_chunks_keep_every_encoding_whole() {
        let mut r = Raw::default();
        let mut kept = Vec::new();
        for i in 0..3_000usize {
            let len = match i {
                700 => 3 * RAW_CHUNK,
                701 => RAW_CHUNK,
                _ => i % 300,
            };
            let bytes: Vec<u8> = (0..len).map(|x| (x + i) as u8).collect();
            let at = r.push(&bytes);
            kept.push((at, bytes));
            if i % 7 == 0 {
                // A rolled-back message: the next one takes its place.
                let (at, _) = kept.pop().unwrap();
                r.pop(at);
            }
        }
        for (at, bytes) in &kept {
            assert_eq!(r.get(*at), &bytes[..]);
        }
        assert!(r.chunks.iter().all(|c| c.len() <= c.capacity() && c.capacity() <= 3 * RAW_CHUNK));
        let used: usize = r.chunks.iter().map(Vec::len).sum();
        assert_eq!(used, kept.iter().map(|(_, b)| b.len()).sum::<usize>(), "nothing left of what was taken back");
    }
}
