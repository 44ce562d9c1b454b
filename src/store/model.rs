//! A naive model of the store, for the property tests only: the same calls as [`super::Store`],
//! answered from plain vectors by the shortest code that says what each call means (a linear
//! scan where the stores keep indexes, a copy of the whole state where they keep an undo log).
//! The stores must answer every call as it does.

use std::collections::BTreeMap;

use crate::codec;
use crate::error::Error;
use crate::id::{MsgId, PeerId};
use crate::protocol::{Body, Envelope};

use super::Stored;

#[derive(Debug, Clone)]
struct Msg {
    id: MsgId,
    raw: Vec<u8>,
    received_ms: u64,
    room: String,
    private: bool,
    chat: bool,
    signed: bool,
}

#[derive(Debug, Clone, Default)]
struct State {
    /// Every message, in the order stored (pos = index + 1).
    msgs: Vec<Msg>,
    /// (room, id) -> (name, last seen).
    members: BTreeMap<(String, PeerId), (String, u64)>,
    out_streams: BTreeMap<PeerId, (u64, u64)>,
    in_streams: BTreeMap<PeerId, u64>,
    /// (peer, stream number) -> (pos, time queued).
    queued: BTreeMap<(PeerId, u64), (i64, u64)>,
}

/// The model store of the peer `me`, reading and writing the room `room`.
#[derive(Debug)]
pub(super) struct Model {
    me: PeerId,
    room: String,
    st: State,
    /// The state at `begin`, while a group is open.
    before: Option<State>,
    wrote: bool,
}

impl Model {
    pub(super) fn new(me: PeerId, room: &str) -> Model {
        Model { me, room: room.to_string(), st: State::default(), before: None, wrote: false }
    }

    fn writing(&mut self) {
        if self.before.is_some() {
            self.wrote = true;
        }
    }

    fn mine(&self) -> impl Iterator<Item = (i64, &Msg)> {
        self.st.msgs.iter().enumerate().map(|(i, m)| (i as i64 + 1, m)).filter(|(_, m)| m.room == self.room)
    }

    fn stored(&self, pos: i64, m: &Msg) -> Option<Stored> {
        let env = codec::decode_envelope(&m.raw).ok()?;
        Some(Stored::new(pos, env, m.received_ms, self.me))
    }

    pub(super) fn begin(&mut self) {
        if self.before.is_none() {
            self.before = Some(self.st.clone());
        }
    }

    pub(super) fn wrote(&self) -> bool {
        self.wrote
    }

    pub(super) fn commit(&mut self) -> Result<(), Error> {
        self.before = None;
        self.wrote = false;
        Ok(())
    }

    pub(super) fn rollback(&mut self) {
        if let Some(st) = self.before.take() {
            self.st = st;
        }
        self.wrote = false;
    }

    pub(super) fn insert(
        &mut self,
        env: &Envelope,
        raw: &[u8],
        received_ms: u64,
        signed: bool,
    ) -> Result<Option<i64>, Error> {
        self.writing();
        if self.st.msgs.iter().any(|m| m.id == env.id) {
            return Ok(None);
        }
        self.st.msgs.push(Msg {
            id: env.id,
            raw: raw.to_vec(),
            received_ms,
            room: self.room.clone(),
            private: env.to.is_some(),
            chat: matches!(env.body, Body::Chat { .. }),
            signed,
        });
        Ok(Some(self.st.msgs.len() as i64))
    }

    pub(super) fn has(&self, id: &MsgId) -> bool {
        self.st.msgs.iter().any(|m| m.id == *id)
    }

    pub(super) fn room_envelope(&self, id: &MsgId) -> Option<Vec<u8>> {
        self.mine().find(|(_, m)| m.id == *id && !m.private && m.signed).map(|(_, m)| m.raw.clone())
    }

    pub(super) fn catchup_ids(&self, chats: usize, limit: usize) -> Vec<MsgId> {
        let room: Vec<(i64, &Msg)> = self.mine().filter(|(_, m)| !m.private && m.signed).collect();
        let all_chats: Vec<i64> = room.iter().filter(|(_, m)| m.chat).map(|(r, _)| *r).collect();
        let last_chats = &all_chats[all_chats.len().saturating_sub(chats)..];
        let ids: Vec<MsgId> =
            room.iter().filter(|(r, m)| !m.chat || last_chats.contains(r)).map(|(_, m)| m.id).collect();
        ids[ids.len().saturating_sub(limit)..].to_vec()
    }

    pub(super) fn history(&self, limit: usize) -> Vec<Stored> {
        let all: Vec<Stored> = self.mine().filter_map(|(r, m)| self.stored(r, m)).collect();
        all[all.len().saturating_sub(limit)..].to_vec()
    }

    pub(super) fn exercises(&self) -> Vec<Stored> {
        self.mine().filter(|(_, m)| !m.chat).filter_map(|(r, m)| self.stored(r, m)).collect()
    }

    pub(super) fn count(&self) -> u64 {
        self.st.msgs.len() as u64
    }

    pub(super) fn touch_member(&mut self, id: PeerId, name: &str, now_ms: u64) -> Result<(), Error> {
        self.writing();
        self.st.members.insert((self.room.clone(), id), (name.to_string(), now_ms));
        Ok(())
    }

    pub(super) fn members_since(&self, since_ms: u64) -> Vec<(PeerId, String)> {
        self.st
            .members
            .iter()
            .filter(|((room, _), (_, seen))| *room == self.room && *seen >= since_ms)
            .map(|((_, id), (name, _))| (*id, name.clone()))
            .collect()
    }

    pub(super) fn out_streams(&self) -> Vec<(PeerId, u64, u64)> {
        let mut all = self.st.out_streams.clone();
        for &(peer, lseq) in self.st.queued.keys() {
            let e = all.entry(peer).or_insert((0, 0));
            e.0 = e.0.max(lseq + 1);
        }
        all.into_iter().map(|(p, (n, a))| (p, n, a)).collect()
    }

    pub(super) fn save_out_stream(&mut self, peer: PeerId, next: u64, acked: u64) -> Result<(), Error> {
        self.writing();
        self.st.out_streams.insert(peer, (next, acked));
        Ok(())
    }

    pub(super) fn enqueue(&mut self, peer: PeerId, lseq: u64, msg: i64, now_ms: u64) -> Result<(), Error> {
        self.writing();
        self.st.queued.insert((peer, lseq), (msg, now_ms));
        Ok(())
    }

    pub(super) fn pending(&self, peer: PeerId, after: u64, limit: usize) -> Vec<(u64, Vec<u8>)> {
        self.st
            .queued
            .range((peer, after.saturating_add(1))..=(peer, u64::MAX))
            .filter_map(|(&(_, lseq), &(pos, _))| Some((lseq, self.st.msgs.get(pos as usize - 1)?.raw.clone())))
            .take(limit)
            .collect()
    }

    pub(super) fn first_pending(&self, peer: PeerId) -> Option<u64> {
        self.st.queued.range((peer, 0)..=(peer, u64::MAX)).next().map(|(&(_, l), _)| l)
    }

    pub(super) fn acked(&mut self, peer: PeerId, upto: u64) -> Result<(), Error> {
        self.writing();
        self.st.queued.retain(|&(p, l), _| p != peer || l > upto);
        Ok(())
    }

    pub(super) fn purge(&mut self, before_ms: u64, max_per_peer: usize) -> Result<Vec<(PeerId, u64)>, Error> {
        self.writing();
        let mut dropped: BTreeMap<PeerId, u64> = BTreeMap::new();
        self.st.queued.retain(|&(p, _), &mut (_, at)| {
            let old = at < before_ms;
            if old {
                *dropped.entry(p).or_default() += 1;
            }
            !old
        });
        let mut per_peer: BTreeMap<PeerId, Vec<u64>> = BTreeMap::new();
        for &(p, l) in self.st.queued.keys() {
            per_peer.entry(p).or_default().push(l);
        }
        for (p, numbers) in per_peer {
            let extra = numbers.len().saturating_sub(max_per_peer);
            for l in &numbers[..extra] {
                self.st.queued.remove(&(p, *l));
            }
            if extra > 0 {
                *dropped.entry(p).or_default() += extra as u64;
            }
        }
        Ok(dropped.into_iter().collect())
    }

    pub(super) fn in_streams(&self) -> Vec<(PeerId, u64)> {
        self.st.in_streams.iter().map(|(p, d)| (*p, *d)).collect()
    }

    pub(super) fn save_in_stream(&mut self, author: PeerId, delivered: u64) -> Result<(), Error> {
        self.writing();
        self.st.in_streams.insert(author, delivered);
        Ok(())
    }
}
