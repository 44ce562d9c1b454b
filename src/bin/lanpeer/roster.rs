//! What the terminal front end knows of the room, for the prompt and for Tab: who this peer is,
//! who is online, the problems and answers seen, and whether files are attached.
//!
//! The main loop keeps it up to date from the node's events (and fills it from `Node::peers` and
//! `Node::problems` at the start); the editor thread reads it when it draws the prompt or a key
//! asks for completion. It sits behind a std mutex, held only to copy or to change a few entries
//! and never across an `await` or a write to the terminal, so the editor never waits on the
//! async runtime and the runtime never waits on the terminal.

use std::collections::{BTreeMap, HashSet};
use std::sync::{Condvar, Mutex, PoisonError};
use std::time::Duration;

use lanpeer::id::MsgIdPattern;
use lanpeer::{Body, Event, MsgId, PeerId, PeerInfo, ProblemView};

/// Problems and answers kept at most (the oldest go first): a lesson has far fewer.
const KEPT: usize = 10_000;

/// A problem, for completion.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    pub id: MsgId,
    pub title: String,
    pub author: String,
}

/// An answer, for completion.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Answer {
    pub id: MsgId,
    pub author: String,
    pub problem: MsgId,
}

/// What the editor reads: a copy, so that no lock is held while it is used.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Known {
    /// The online peers: id and name.
    pub peers: Vec<(PeerId, String)>,
    /// The problems, oldest first.
    pub problems: Vec<Problem>,
    /// The answers, oldest first.
    pub answers: Vec<Answer>,
}

#[derive(Default)]
struct State {
    /// This peer's name and room, from its `ready` event.
    me: Option<(String, String)>,
    peers: BTreeMap<PeerId, String>,
    problems: Vec<Problem>,
    answers: Vec<Answer>,
    /// The ids in `problems` and `answers`: an event and the fill at the start may both bring one.
    seen: HashSet<MsgId>,
    /// Files are attached (or being attached) for the next message.
    attached: bool,
}

/// The shared roster (see the module doc).
#[derive(Default)]
pub struct Roster {
    state: Mutex<State>,
    /// Woken when this peer's name and room are known.
    ready: Condvar,
}

/// Add `item` (of id `id`) to `list` unless `seen` has it, keeping at most [`KEPT`].
fn keep<T>(list: &mut Vec<T>, seen: &mut HashSet<MsgId>, id: MsgId, item: T, id_of: impl Fn(&T) -> MsgId) {
    if seen.insert(id) {
        list.push(item);
        if list.len() > KEPT {
            let gone = list.remove(0);
            seen.remove(&id_of(&gone));
        }
    }
}

impl State {
    fn add_problem(&mut self, p: Problem) {
        keep(&mut self.problems, &mut self.seen, p.id, p, |p| p.id);
    }

    fn add_answer(&mut self, a: Answer) {
        keep(&mut self.answers, &mut self.seen, a.id, a, |a| a.id);
    }
}

impl Roster {
    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        // The state stays consistent whatever a panicking holder did: each change is one insert.
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Take in what an event says.
    pub fn note(&self, e: &Event) {
        let mut s = self.lock();
        match e {
            Event::Ready { name, room, .. } => {
                s.me = Some((name.clone(), room.clone()));
                self.ready.notify_all();
            }
            Event::PeerJoined(p) => {
                s.peers.insert(p.id, p.name.clone());
            }
            Event::PeerLeft { id, .. } => {
                s.peers.remove(id);
            }
            Event::Message(m) => match &m.body {
                Body::Problem { title, .. } => {
                    s.add_problem(Problem { id: m.id, title: title.clone(), author: m.from_name.clone() })
                }
                Body::Answer { problem, .. } => {
                    s.add_answer(Answer { id: m.id, author: m.from_name.clone(), problem: *problem })
                }
                Body::Chat { .. } | Body::Feedback { .. } => {}
            },
            Event::Warning { .. } | Event::File { .. } | Event::FileProgress { .. } => {}
        }
    }

    /// Take in the peers and the exercises the node knows (at the start: those from before it).
    pub fn fill(&self, peers: &[PeerInfo], problems: &[ProblemView]) {
        let mut s = self.lock();
        for p in peers {
            s.peers.insert(p.id, p.name.clone());
        }
        for v in problems {
            if let Body::Problem { title, .. } = &v.problem.body {
                let (id, author) = (v.problem.id, v.problem.from_name.clone());
                s.add_problem(Problem { id, title: title.clone(), author });
            }
            for (a, _) in &v.answers {
                if let Body::Answer { problem, .. } = &a.body {
                    s.add_answer(Answer { id: a.id, author: a.from_name.clone(), problem: *problem });
                }
            }
        }
    }

    /// This peer's name and room, waiting for them at most `within` (the `ready` event comes
    /// first of all, at once).
    pub fn me(&self, within: Duration) -> Option<(String, String)> {
        let s = self.lock();
        let (s, _) =
            self.ready.wait_timeout_while(s, within, |s| s.me.is_none()).unwrap_or_else(PoisonError::into_inner);
        s.me.clone()
    }

    /// Say whether files are attached for the next message (or being attached: the main loop
    /// says so as soon as it takes the `/attach` line).
    pub fn set_attached(&self, attached: bool) {
        self.lock().attached = attached;
    }

    /// Are files attached for the next message? (Its text may then be empty.)
    pub fn attached(&self) -> bool {
        self.lock().attached
    }

    /// A copy of the peers, problems and answers.
    pub fn known(&self) -> Known {
        let s = self.lock();
        Known {
            peers: s.peers.iter().map(|(id, n)| (*id, n.clone())).collect(),
            problems: s.problems.clone(),
            answers: s.answers.clone(),
        }
    }

    /// The problem that `typed` names (as `Node::find_problem` reads an id), if known.
    pub fn problem(&self, typed: &str) -> Option<Problem> {
        let pattern: MsgIdPattern = typed.parse().ok()?;
        self.lock().problems.iter().rev().find(|p| pattern.matches(&p.id)).cloned()
    }

    /// The answer that `typed` names, if known.
    pub fn answer(&self, typed: &str) -> Option<Answer> {
        let pattern: MsgIdPattern = typed.parse().ok()?;
        self.lock().answers.iter().rev().find(|a| pattern.matches(&a.id)).cloned()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use lanpeer::{LeaveReason, Message, PeerState};

    fn peer(b: u8, name: &str) -> PeerInfo {
        PeerInfo {
            id: PeerId([b; 16]),
            name: name.into(),
            addr: "127.0.0.1:1".parse().unwrap(),
            state: PeerState::Connected,
            last_seen_ms: 0,
            props: vec![],
            verified: None,
            label: name.into(),
        }
    }

    fn msg(b: u8, seq: u64, body: Body) -> Message {
        Message {
            id: MsgId { author: PeerId([b; 16]), seq },
            from_name: "Sam".into(),
            sent_ms: 0,
            to: None,
            body,
            own: false,
            files: vec![],
            from_label: "Sam".into(),
            from_role: None,
            from_verified: None,
        }
    }

    #[test]
    fn events_keep_it_fresh_and_the_fill_adds_no_twins() {
        let r = Roster::default();
        assert_eq!(r.me(Duration::from_millis(1)), None);
        r.note(&Event::Ready {
            id: PeerId([9; 16]),
            name: "Ada".into(),
            room: "5B".into(),
            listen: "127.0.0.1:1".parse().unwrap(),
            role: None,
            room_code: "5B-0909-0909-0909-0909-0909".into(),
        });
        assert_eq!(r.me(Duration::ZERO), Some(("Ada".into(), "5B".into())));
        r.note(&Event::PeerJoined(peer(1, "Bea")));
        r.note(&Event::PeerJoined(peer(2, "Cy")));
        r.note(&Event::PeerLeft { id: PeerId([1; 16]), name: "Bea".into(), reason: LeaveReason::Left });
        let p = msg(2, 5, Body::Problem { title: "Loops".into(), body: String::new(), private_answers: false });
        let a = msg(3, 1, Body::Answer { problem: p.id, text: "x".into() });
        r.note(&Event::Message(p.clone()));
        r.note(&Event::Message(a.clone()));
        r.fill(&[peer(2, "Cy")], &[ProblemView { problem: p.clone(), answers: vec![(a.clone(), vec![])] }]);
        let k = r.known();
        assert_eq!(k.peers, vec![(PeerId([2; 16]), "Cy".to_string())]);
        assert_eq!(k.problems.len(), 1);
        assert_eq!(k.answers.len(), 1);
        assert_eq!(r.problem("02020202-5").map(|p| p.title), Some("Loops".into()));
        assert_eq!(r.problem("0202-6"), None);
        assert_eq!(r.answer("0303-1").map(|a| a.problem), Some(p.id));
        assert_eq!(r.answer("not an id"), None);
    }

    #[test]
    fn it_keeps_the_newest_problems_when_there_are_too_many() {
        let r = Roster::default();
        for seq in 0..(KEPT as u64 + 5) {
            r.note(&Event::Message(msg(
                4,
                seq,
                Body::Problem { title: format!("p{seq}"), body: String::new(), private_answers: false },
            )));
        }
        let k = r.known();
        assert_eq!(k.problems.len(), KEPT);
        assert_eq!(k.problems[0].id.seq, 5, "the oldest went first");
        assert_eq!(r.problem("04040404-0"), None);
    }

    #[test]
    fn the_editor_waits_for_the_ready_event() {
        let r = std::sync::Arc::new(Roster::default());
        let r2 = r.clone();
        let t = std::thread::spawn(move || r2.me(Duration::from_secs(10)));
        std::thread::sleep(Duration::from_millis(20));
        r.note(&Event::Ready {
            id: PeerId([9; 16]),
            name: "Ada".into(),
            room: "5B".into(),
            listen: "127.0.0.1:1".parse().unwrap(),
            role: None,
            room_code: "5B-0909-0909-0909-0909-0909".into(),
        });
        assert_eq!(t.join().unwrap(), Some(("Ada".into(), "5B".into())));
    }
}
