//! The history: every message sent and received, the per-peer delivery streams, and the
//! members of the room. One API, two stores behind it:
//! - `journaled`: `history.journal` in the data directory, for a node that has one (the CLI
//!   always does): the store in memory kept in a journal file of our own ([`crate::journal`]);
//!   durable, readable by the read-only tools while the peer runs;
//! - `memory`: Rust collections, for a node without a data directory (embedding, tests, the
//!   benchmarks' in-process peers).
//!
//! Both answer every call as a small naive model does (`model`, in the tests: the property tests
//! below make random calls on each and compare the answers). The node actor owns the store and
//! groups a turn's writes between [`Store::begin`] and [`Store::commit`] (docs/architecture.md,
//! "Storage").

mod journaled;
mod legacy;
mod memory;
#[cfg(test)]
mod model;

use std::path::Path;

use crate::error::Error;
use crate::event::Message;
use crate::id::{MsgId, PeerId};
use crate::protocol::Envelope;

use journaled::Journaled;
use memory::Memory;

pub use journaled::JOURNAL_FILE;

/// A message's place in this peer's history: 1 for the first message it stored, then 2, 3...
/// (the order in which this peer stored them, causal at this peer).
pub type Pos = i64;

/// One stored message, decoded.
#[derive(Debug, Clone)]
pub struct Stored {
    /// Its place in this peer's history.
    pub pos: Pos,
    /// The message.
    pub message: Message,
    /// When this peer stored it, ms since the epoch.
    pub received_ms: u64,
}

impl Stored {
    /// Place `pos`, the message `env`, stored at `received_ms` by the peer `me`.
    fn new(pos: i64, env: Envelope, received_ms: u64, me: PeerId) -> Stored {
        let own = env.id.author == me;
        Stored { pos, received_ms, message: Message::from_envelope(env, own) }
    }
}

/// A catch-up list and the (chats, limit) it was made for, and the same ids as a set.
type CatchupMemo = ((usize, usize), Vec<MsgId>, crate::id::FastSet<MsgId>);

/// The open history.
#[derive(Debug)]
pub struct Store(Backend);

#[derive(Debug)]
enum Backend {
    Memory(Memory),
    Journal(Journaled),
}

/// The same call on whichever store this is (`write`: a write, which the journal store makes a
/// group of its own outside a group).
macro_rules! each {
    ($self:ident . $f:ident ( $($a:expr),* )) => {
        match &$self.0 {
            Backend::Memory(m) => m.$f($($a),*),
            Backend::Journal(j) => j.mem.$f($($a),*),
        }
    };
    (write $self:ident . $f:ident ( $($a:expr),* )) => {
        match &mut $self.0 {
            Backend::Memory(m) => Ok(m.$f($($a),*)),
            Backend::Journal(j) => j.write(|m| m.$f($($a),*)),
        }
    };
}

impl Store {
    /// Open (creating) the history of the data dir `dir` (its journal) for the messages of
    /// `room`, or, for `None`, a history in memory.
    pub fn open(dir: Option<&Path>, me: PeerId, room: &str) -> Result<Store, Error> {
        match dir {
            Some(d) => Journaled::open_dir(d, me, room).map(|j| Store(Backend::Journal(j))),
            None => Ok(Store(Backend::Memory(Memory::new(me, Some(room))))),
        }
    }

    /// The history of the room `room` in the journal file at `path` (what `open` uses in a data
    /// dir, at any path: the tests and the bench).
    pub fn open_journal(path: &Path, me: PeerId, room: &str) -> Result<Store, Error> {
        Journaled::open(path, me, room).map(|j| Store(Backend::Journal(j)))
    }

    /// Open the history of `dir` for reading only (export and history, even while a peer runs),
    /// for the messages of `room`, or of every room: its journal.
    pub fn open_readonly(dir: &Path, room: Option<&str>) -> Result<Store, Error> {
        match Journaled::read(dir, room)? {
            Some(mem) => Ok(Store(Backend::Memory(mem))),
            None => Err(Error::Storage(format!(
                "there is no history in {}; give the --data-dir of a peer that has run",
                dir.display()
            ))),
        }
    }

    /// Start grouping writes: they are kept, or dropped, together, by [`Store::commit`] or
    /// [`Store::rollback`]. A group without writes costs nothing: most turns of the node (a
    /// beacon, a ping) write nothing.
    pub fn begin(&mut self) {
        match &mut self.0 {
            Backend::Memory(m) => m.begin(),
            Backend::Journal(j) => j.mem.begin(),
        }
    }

    /// Bytes of messages the current group has stored (a turn stops taking more work past a
    /// bound, so that a group always fits the journal whole).
    pub fn group_bytes(&self) -> usize {
        each!(self.group_bytes())
    }

    /// Has the current group written anything yet?
    pub fn wrote(&self) -> bool {
        each!(self.wrote())
    }

    /// Make the grouped writes durable, and end the group. On an error nothing of the group is
    /// kept (see [`Store::rollback`]).
    pub fn commit(&mut self) -> Result<(), Error> {
        match &mut self.0 {
            Backend::Memory(m) => {
                m.commit();
                Ok(())
            }
            Backend::Journal(j) => j.commit(),
        }
    }

    /// Drop the group's writes and end it: a write of the group failed, and a group is kept
    /// whole or not at all (the node then acknowledges and reports nothing of it).
    pub fn rollback(&mut self) {
        match &mut self.0 {
            Backend::Memory(m) => m.rollback(),
            Backend::Journal(j) => j.mem.rollback(),
        }
    }

    /// Keep a message, `env`, whose encoding ([`crate::codec::encode`], or the bytes it was
    /// decoded from) is `raw`; `signed`: proved by a batch kept with [`Store::keep_batch`] (only
    /// such messages are offered to others). Returns its place if it is new, `None` if it
    /// was already stored.
    pub fn insert(&mut self, env: &Envelope, raw: &[u8], received_ms: u64, signed: bool) -> Result<Option<Pos>, Error> {
        each!(write self.insert(env, raw, received_ms, signed))
    }

    /// Keep the signed batch `b` that proves messages stored (or add to the one kept what `b`
    /// knows of its tree).
    pub fn keep_batch(&mut self, b: &crate::authorship::Batch) -> Result<(), Error> {
        each!(write self.keep_batch(b))
    }

    /// The batch that proves message `id` and the leaves of it this store holds (by index), to
    /// prove any of them to another peer ([`crate::authorship::Batch::seal`]).
    pub fn proof_parts(&self, id: &MsgId) -> Option<(crate::authorship::Batch, Vec<Option<crate::merkle::Hash>>)> {
        match &self.0 {
            Backend::Memory(m) => m.proof_parts(id),
            Backend::Journal(j) => j.mem.proof_parts(id),
        }
    }

    /// Is `id` in the catch-up set of [`Store::catchup_ids`] with these bounds (what we offer)?
    pub fn offered(&self, id: &MsgId, chats: usize, limit: usize) -> bool {
        match &self.0 {
            Backend::Memory(m) => m.offered(id, chats, limit),
            Backend::Journal(j) => j.mem.offered(id, chats, limit),
        }
    }

    /// Is this message stored?
    pub fn has(&self, id: &MsgId) -> bool {
        each!(self.has(id))
    }

    /// The encoded envelope of a message, if stored and meant for the whole room.
    pub fn room_envelope(&self, id: &MsgId) -> Option<Vec<u8>> {
        each!(self.room_envelope(id))
    }

    /// The room's catch-up set, oldest first: every problem, answer and feedback meant for the
    /// whole room, and the last `chats` room chats; at most `limit` ids (the newest kept).
    pub fn catchup_ids(&self, chats: usize, limit: usize) -> Vec<MsgId> {
        each!(self.catchup_ids(chats, limit))
    }

    /// The last `limit` messages of every kind, oldest first.
    pub fn history(&self, limit: usize) -> Vec<Stored> {
        each!(self.history(limit))
    }

    /// Every problem, answer and feedback, oldest first.
    pub fn exercises(&self) -> Vec<Stored> {
        each!(self.exercises())
    }

    /// Every message that attaches files, oldest first.
    pub fn with_files(&self) -> Vec<Stored> {
        each!(self.with_files())
    }

    /// Number of messages stored.
    pub fn count(&self) -> u64 {
        each!(self.count())
    }

    /// Remember a peer of the room, seen now.
    pub fn touch_member(&mut self, id: PeerId, name: &str, now_ms: u64) -> Result<(), Error> {
        each!(write self.touch_member(id, name, now_ms))
    }

    /// Members seen since `since_ms`.
    pub fn members_since(&self, since_ms: u64) -> Vec<(PeerId, String)> {
        each!(self.members_since(since_ms))
    }

    /// Every outgoing stream: (peer, next number, highest acknowledged).
    pub fn out_streams(&self) -> Vec<(PeerId, u64, u64)> {
        each!(self.out_streams())
    }

    /// Save an outgoing stream's counters.
    pub fn save_out_stream(&mut self, peer: PeerId, next: u64, acked: u64) -> Result<(), Error> {
        each!(write self.save_out_stream(peer, next, acked))
    }

    /// Queue the message at place `msg` for `peer` as stream number `lseq`.
    pub fn enqueue(&mut self, peer: PeerId, lseq: u64, msg: i64, now_ms: u64) -> Result<(), Error> {
        each!(write self.enqueue(peer, lseq, msg, now_ms))
    }

    /// Up to `limit` queued messages for `peer` after stream number `after`: (number, envelope).
    pub fn pending(&self, peer: PeerId, after: u64, limit: usize) -> Vec<(u64, Vec<u8>)> {
        each!(self.pending(peer, after, limit))
    }

    /// The lowest stream number still queued for `peer`.
    pub fn first_pending(&self, peer: PeerId) -> Option<u64> {
        each!(self.first_pending(peer))
    }

    /// `peer` has everything up to `upto`: forget those.
    pub fn acked(&mut self, peer: PeerId, upto: u64) -> Result<(), Error> {
        each!(write self.acked(peer, upto))
    }

    /// Drop queued messages older than `before_ms`, and beyond `max_per_peer` for any peer
    /// (oldest first). Returns how many were dropped for whom.
    pub fn purge(&mut self, before_ms: u64, max_per_peer: usize) -> Result<Vec<(PeerId, u64)>, Error> {
        each!(write self.purge(before_ms, max_per_peer))
    }

    /// Every incoming stream: (author, highest delivered).
    pub fn in_streams(&self) -> Vec<(PeerId, u64)> {
        each!(self.in_streams())
    }

    /// Save how far the stream from `author` has been delivered.
    pub fn save_in_stream(&mut self, author: PeerId, delivered: u64) -> Result<(), Error> {
        each!(write self.save_in_stream(author, delivered))
    }
}

#[cfg(test)]
mod same_answers {
    //! The stores against the naive model (`model`): random calls, every answer compared.

    use super::*;
    use crate::protocol::Body;
    use proptest::prelude::*;

    #[derive(Debug, Clone)]
    enum Call {
        Begin,
        Commit,
        Rollback,
        Insert {
            author: u8,
            seq: u64,
            private: bool,
            kind: u8,
            at: u64,
            signed: bool,
        },
        Has {
            author: u8,
            seq: u64,
        },
        RoomEnvelope {
            author: u8,
            seq: u64,
        },
        Catchup {
            chats: usize,
            limit: usize,
        },
        History {
            limit: usize,
        },
        Exercises,
        Count,
        Member {
            id: u8,
            name: u8,
            at: u64,
        },
        MembersSince {
            since: u64,
        },
        SaveOut {
            peer: u8,
            next: u64,
            acked: u64,
        },
        /// The next stream number for `peer` (numbers only grow, as the actor gives them);
        /// `pos` counts back from the newest message (0: the newest).
        Enqueue {
            peer: u8,
            row_back: i64,
            skip: u64,
            at: u64,
        },
        /// The next number and the next place after `peer`'s last, at the same time: a run grows.
        EnqueueNext {
            peer: u8,
        },
        Pending {
            peer: u8,
            after: u64,
            limit: usize,
        },
        FirstPending {
            peer: u8,
        },
        Acked {
            peer: u8,
            upto: u64,
        },
        Purge {
            before: u64,
            max: usize,
        },
        SaveIn {
            author: u8,
            delivered: u64,
        },
        Streams,
    }

    fn call() -> impl Strategy<Value = Call> {
        prop_oneof![
            2 => Just(Call::Begin),
            2 => Just(Call::Commit),
            1 => Just(Call::Rollback),
            6 => (1..4u8, 1..12u64, any::<bool>(), 0..4u8, 0..50u64, prop::bool::weighted(0.8))
                .prop_map(|(author, seq, private, kind, at, signed)| Call::Insert { author, seq, private, kind, at, signed }),
            1 => (1..4u8, 1..12u64).prop_map(|(author, seq)| Call::Has { author, seq }),
            1 => (1..4u8, 1..12u64).prop_map(|(author, seq)| Call::RoomEnvelope { author, seq }),
            1 => (0..6usize, 0..8usize).prop_map(|(chats, limit)| Call::Catchup { chats, limit }),
            1 => (0..12usize).prop_map(|limit| Call::History { limit }),
            1 => Just(Call::Exercises),
            1 => Just(Call::Count),
            1 => (1..4u8, 0..3u8, 0..10u64).prop_map(|(id, name, at)| Call::Member { id, name, at }),
            1 => (0..10u64).prop_map(|since| Call::MembersSince { since }),
            1 => (1..4u8, 0..40u64, 0..40u64).prop_map(|(peer, next, acked)| Call::SaveOut { peer, next, acked }),
            6 => (1..4u8, 0..4i64, 0..2u64, 0..4u64)
                .prop_map(|(peer, row_back, skip, at)| Call::Enqueue { peer, row_back, skip, at }),
            6 => (1..4u8).prop_map(|peer| Call::EnqueueNext { peer }),
            3 => (1..4u8, 0..30u64, 0..6usize).prop_map(|(peer, after, limit)| Call::Pending { peer, after, limit }),
            1 => (1..4u8).prop_map(|peer| Call::FirstPending { peer }),
            2 => (1..4u8, 0..30u64).prop_map(|(peer, upto)| Call::Acked { peer, upto }),
            1 => (0..5u64, 0..6usize).prop_map(|(before, max)| Call::Purge { before, max }),
            1 => (1..4u8, 0..40u64).prop_map(|(author, delivered)| Call::SaveIn { author, delivered }),
            1 => Just(Call::Streams),
        ]
    }

    fn envelope(author: u8, seq: u64, private: bool, kind: u8) -> Envelope {
        let text = format!("m{author}.{seq}");
        let other = MsgId { author: PeerId([9; 16]), seq: 1 };
        let body = match kind {
            0 => Body::Chat { text },
            1 => Body::Problem { title: "t".into(), body: text, private_answers: private },
            2 => Body::Answer { problem: other, text },
            _ => Body::Feedback { answer: other, text },
        };
        let to = private.then_some(PeerId([1; 16]));
        Envelope {
            id: MsgId { author: PeerId([author; 16]), seq },
            author_name: "n".into(),
            sent_ms: 7,
            to,
            body,
            files: vec![],
        }
    }

    fn sorted<T: Ord>(mut v: Vec<T>) -> Vec<T> {
        v.sort();
        v
    }

    /// `fn $name(s: &mut $store, ..)`: one call on one store, its answer as text (the same code
    /// for the stores and the model, which have the same calls).
    macro_rules! answer_fn {
        ($name:ident, $store:ty) => {
            fn $name(s: &mut $store, c: &Call, lseq: &mut [u64; 4], last: &mut [(i64, u64); 4]) -> String {
                let p = |n: u8| PeerId([n; 16]);
                match *c {
                    Call::Begin => format!("{:?}", s.begin()),
                    Call::Commit => format!("{:?}", s.commit()),
                    Call::Rollback => format!("{:?}", s.rollback()),
                    Call::Insert { author, seq, private, kind, at, signed } => {
                        let e = envelope(author, seq, private, kind);
                        format!("{:?}", s.insert(&e, &crate::codec::encode(&e).unwrap(), at, signed))
                    }
                    Call::Has { author, seq } => format!("{:?}", s.has(&MsgId { author: p(author), seq })),
                    Call::RoomEnvelope { author, seq } => {
                        format!("{:?}", s.room_envelope(&MsgId { author: p(author), seq }))
                    }
                    Call::Catchup { chats, limit } => format!("{:?}", s.catchup_ids(chats, limit)),
                    Call::History { limit } => format!("{:?}", s.history(limit)),
                    Call::Exercises => format!("{:?}", s.exercises()),
                    Call::Count => format!("{:?}", s.count()),
                    Call::Member { id, name, at } => format!("{:?}", s.touch_member(p(id), &format!("name{name}"), at)),
                    Call::MembersSince { since } => format!("{:?}", sorted(s.members_since(since))),
                    Call::SaveOut { peer, next, acked } => format!("{:?}", s.save_out_stream(p(peer), next, acked)),
                    Call::Enqueue { peer, row_back, skip, at } => {
                        // Only places that exist, as the actor queues.
                        let n = s.count() as i64;
                        if n == 0 {
                            return "no places".into();
                        }
                        lseq[peer as usize] += 1 + skip;
                        let pos = (n - row_back).max(1);
                        last[peer as usize] = (pos, at);
                        format!("{:?}", s.enqueue(p(peer), lseq[peer as usize], pos, at))
                    }
                    Call::EnqueueNext { peer } => {
                        let (pos, at) = last[peer as usize];
                        if pos == 0 || pos >= s.count() as i64 {
                            return "no next pos".into();
                        }
                        lseq[peer as usize] += 1;
                        last[peer as usize] = (pos + 1, at);
                        format!("{:?}", s.enqueue(p(peer), lseq[peer as usize], pos + 1, at))
                    }
                    Call::Pending { peer, after, limit } => format!("{:?}", s.pending(p(peer), after, limit)),
                    Call::FirstPending { peer } => format!("{:?}", s.first_pending(p(peer))),
                    Call::Acked { peer, upto } => format!("{:?}", s.acked(p(peer), upto)),
                    Call::Purge { before, max } => format!("{:?}", s.purge(before, max).map(sorted)),
                    Call::SaveIn { author, delivered } => format!("{:?}", s.save_in_stream(p(author), delivered)),
                    Call::Streams => {
                        format!("{:?} {:?} {}", sorted(s.out_streams()), sorted(s.in_streams()), s.wrote())
                    }
                }
            }
        };
    }
    answer_fn!(answer, Store);
    answer_fn!(answer_model, model::Model);

    proptest! {
        // Seeds of past failures live beside this file (mod.proptest-regressions), not in a folder at
        // the top of the repository.
        #![proptest_config(ProptestConfig {
            cases: 400,
            failure_persistence: Some(Box::new(proptest::test_runner::FileFailurePersistence::WithSource("proptest-regressions"))),
            ..ProptestConfig::default()
        })]
        #[test]
        fn the_store_in_memory_answers_as_the_model_does(calls in proptest::collection::vec(call(), 1..80)) {
            let me = PeerId([2; 16]);
            let mut mem = Store::open(None, me, "r").unwrap();
            let mut model = model::Model::new(me, "r");
            assert!(matches!(mem.0, Backend::Memory(_)));
            let (mut l1, mut l2) = ([0; 4], [0; 4]);
            let (mut r1, mut r2) = ([(0, 0); 4], [(0, 0); 4]);
            for (i, c) in calls.iter().enumerate() {
                let (a, b) = (answer(&mut mem, c, &mut l1, &mut r1), answer_model(&mut model, c, &mut l2, &mut r2));
                prop_assert_eq!(a, b, "call {} ({:?})", i, c);
            }
        }

        /// The journal store against the store in memory, closed and opened again now and then
        /// (`None`): a group still open then is lost, as in a crash, and the store in memory
        /// rolls it back to match; everything committed comes back from the file.
        #[test]
        fn the_journal_store_answers_as_the_store_in_memory_across_reopens(
            calls in proptest::collection::vec(prop_oneof![8 => call().prop_map(Some), 1 => Just(None)], 1..80)
        ) {
            let dir = std::env::temp_dir().join(format!("lanpeer-jstore-{}-{}", std::process::id(), rand::random::<u64>()));
            std::fs::create_dir_all(&dir).unwrap();
            let path = dir.join("history.journal");
            let me = PeerId([2; 16]);
            let mut mem = Store::open(None, me, "r").unwrap();
            let mut jr = Store::open_journal(&path, me, "r").unwrap();
            assert!(matches!(jr.0, Backend::Journal(_)));
            let (mut l1, mut l2) = ([0; 4], [0; 4]);
            let (mut r1, mut r2) = ([(0, 0); 4], [(0, 0); 4]);
            let mut result = Ok(());
            for (i, c) in calls.iter().enumerate() {
                let Some(c) = c else {
                    mem.rollback();
                    drop(jr);
                    jr = Store::open_journal(&path, me, "r").unwrap();
                    continue;
                };
                let (a, b) = (answer(&mut mem, c, &mut l1, &mut r1), answer(&mut jr, c, &mut l2, &mut r2));
                if a != b {
                    result = Err(TestCaseError::fail(format!("call {i} ({c:?}): {a} != {b}")));
                    break;
                }
            }
            drop(jr);
            std::fs::remove_dir_all(&dir).unwrap();
            result?;
        }
    }
}
