//! The exercises this peer has seen: problems, the answers to each, the feedback on each answer.
//!
//! Owned by the node actor. It answers `/problems`, checks that an answer names a known problem
//! and feedback a known answer, and knows who wrote a quiz (whose answers go to its author only).
//! From a problem's view, [`submissions`] and [`status`] say who answered (each author's latest
//! version counts) and who has not yet: `/status` and `lanpeer collect`.
//!
//! In memory, bounded per author and in all, never for good: each other author keeps at most
//! [`PER_AUTHOR`] items (its oldest answers and feedback go first when it posts more, its
//! problems last), and past [`MAX_ITEMS`] in all the author with the most gives way so. So a
//! member who floods the room with tiny feedback loses its own oldest items, not the teacher's
//! problems, and a new problem is always let in. This peer's own items are never dropped (it
//! makes them itself). Every item is linked in constant time (an answer that comes before its problem waits
//! in a map by problem), so building the index from the history at start is linear.

use std::collections::{BTreeMap, HashMap, VecDeque};

use crate::error::Error;
use crate::event::Message;
use crate::id::{MsgId, MsgIdPattern, PeerId};
use crate::protocol::Body;

/// Items (problems, answers, feedback) kept per author, at most.
pub const PER_AUTHOR: usize = 5_000;
/// Items kept in all, at most.
pub const MAX_ITEMS: usize = 100_000;

/// One problem with its answers and their feedback, for display.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProblemView {
    /// The problem.
    pub problem: Message,
    /// Its answers, oldest first, each with its feedback.
    pub answers: Vec<(Message, Vec<Message>)>,
}

#[derive(Debug, Default)]
struct AnswerRec {
    msg: Option<Message>,
    feedback: BTreeMap<MsgId, Message>,
}

/// The index.
#[derive(Debug, Default)]
pub struct Exercises {
    /// Problems in the order they came (ids of problems no longer kept are skipped).
    order: Vec<MsgId>,
    problems: HashMap<MsgId, (Message, Vec<MsgId>)>,
    answers: HashMap<MsgId, AnswerRec>,
    /// Answers whose problem has not come yet, by problem.
    early: HashMap<MsgId, Vec<MsgId>>,
    /// Each other author's items, oldest first: its answers and feedback (with the answer a
    /// feedback is on), and its problems apart (they go last).
    by_author: HashMap<PeerId, Kept>,
    items: usize,
}

/// One author's items, oldest first.
#[derive(Debug, Default)]
struct Kept {
    /// Answers (`None`) and feedback (`Some(answer)`).
    others: VecDeque<(MsgId, Option<MsgId>)>,
    problems: VecDeque<MsgId>,
}

impl Kept {
    fn len(&self) -> usize {
        self.others.len() + self.problems.len()
    }
}

impl Exercises {
    /// Keep a problem, answer or feedback (chats are ignored). Returns false when repeated.
    pub fn record(&mut self, m: &Message) -> bool {
        let (is_problem, on) = match &m.body {
            Body::Chat { .. } => return false,
            Body::Problem { .. } => {
                if self.problems.contains_key(&m.id) {
                    return false;
                }
                self.order.push(m.id);
                // Answers can arrive before their problem (catch-up from several peers).
                let early = self.early.remove(&m.id).unwrap_or_default();
                self.problems.insert(m.id, (m.clone(), early));
                (true, None)
            }
            Body::Answer { problem, .. } => {
                if self.answers.get(&m.id).is_some_and(|a| a.msg.is_some()) {
                    return false;
                }
                match self.problems.get_mut(problem) {
                    Some((_, answers)) => answers.push(m.id),
                    None => self.early.entry(*problem).or_default().push(m.id),
                }
                self.answers.entry(m.id).or_default().msg = Some(m.clone());
                (false, None)
            }
            Body::Feedback { answer, .. } => {
                let rec = self.answers.entry(*answer).or_default();
                if rec.feedback.contains_key(&m.id) {
                    return false;
                }
                rec.feedback.insert(m.id, m.clone());
                (false, Some(*answer))
            }
        };
        self.items += 1;
        if m.own {
            return true;
        }
        let kept = self.by_author.entry(m.id.author).or_default();
        if is_problem {
            kept.problems.push_back(m.id);
        } else {
            kept.others.push_back((m.id, on));
        }
        if kept.len() > PER_AUTHOR {
            self.evict_oldest_of(m.id.author);
        }
        if self.items > MAX_ITEMS
            && let Some(most) = self.by_author.iter().max_by_key(|(_, k)| k.len()).map(|(a, _)| *a)
        {
            self.evict_oldest_of(most);
        }
        true
    }

    /// Forget the oldest answer or feedback of `author`, or when it has none, its oldest problem.
    fn evict_oldest_of(&mut self, author: PeerId) {
        let Some(kept) = self.by_author.get_mut(&author) else { return };
        let Some((id, on)) = kept.others.pop_front().or_else(|| kept.problems.pop_front().map(|p| (p, None))) else {
            return;
        };
        if kept.len() == 0 {
            self.by_author.remove(&author);
        }
        self.items -= 1;
        tracing::debug!(%id, "the index of exercises forgets its author's oldest item (too many kept)");
        if let Some(answer) = on {
            if let Some(rec) = self.answers.get_mut(&answer) {
                rec.feedback.remove(&id);
                if rec.msg.is_none() && rec.feedback.is_empty() {
                    self.answers.remove(&answer);
                }
            }
        } else if self.problems.remove(&id).is_some() {
            // Compacted now and then, not on every eviction.
            if self.order.len() > 2 * self.problems.len() + 64 {
                let problems = &self.problems;
                self.order.retain(|p| problems.contains_key(p));
            }
        } else if let Some(rec) = self.answers.get_mut(&id) {
            rec.msg = None;
            if rec.feedback.is_empty() {
                self.answers.remove(&id);
            }
        }
    }

    fn find<'a>(ids: impl Iterator<Item = &'a MsgId>, text: &str) -> Option<Result<MsgId, ()>> {
        let pat: MsgIdPattern = text.parse().ok()?;
        let found: Vec<MsgId> = ids.filter(|id| pat.matches(id)).copied().collect();
        match found.as_slice() {
            [one] => Some(Ok(*one)),
            [] => None,
            _ => Some(Err(())),
        }
    }

    /// The problem a person means by `text` (full id or `<prefix>-<seq>`).
    pub fn find_problem(&self, text: &str) -> Result<MsgId, Error> {
        match Self::find(self.problems.keys(), text) {
            Some(Ok(id)) => Ok(id),
            _ => Err(Error::UnknownProblem(text.trim().to_string())),
        }
    }

    /// The answer a person means by `text`.
    pub fn find_answer(&self, text: &str) -> Result<MsgId, Error> {
        let known = self.answers.iter().filter(|(_, a)| a.msg.is_some()).map(|(id, _)| id);
        match Self::find(known, text) {
            Some(Ok(id)) => Ok(id),
            _ => Err(Error::UnknownAnswer(text.trim().to_string())),
        }
    }

    /// The author of `problem` if its answers are private to the author.
    pub fn quiz_author(&self, problem: &MsgId) -> Option<PeerId> {
        match self.problems.get(problem) {
            Some((m, _)) if matches!(m.body, Body::Problem { private_answers: true, .. }) => Some(m.id.author),
            _ => None,
        }
    }

    /// The problem an answer belongs to, if known.
    pub fn problem_of(&self, answer: &MsgId) -> Option<MsgId> {
        match &self.answers.get(answer)?.msg.as_ref()?.body {
            Body::Answer { problem, .. } => Some(*problem),
            _ => None,
        }
    }

    /// Items kept in all.
    pub fn len(&self) -> usize {
        self.items
    }

    /// Is nothing kept?
    pub fn is_empty(&self) -> bool {
        self.items == 0
    }

    /// Every problem, oldest first (by its author's clock), with its answers and their feedback,
    /// oldest first too, whatever order they arrived in.
    pub fn view(&self) -> Vec<ProblemView> {
        let key = |m: &Message| (m.sent_ms, m.id);
        let mut v: Vec<ProblemView> = self
            .order
            .iter()
            .filter_map(|id| self.problems.get(id))
            .map(|(p, answer_ids)| {
                let mut answers: Vec<(Message, Vec<Message>)> = answer_ids
                    .iter()
                    .filter_map(|a| self.answers.get(a))
                    .filter_map(|a| {
                        let mut fb: Vec<Message> = a.feedback.values().cloned().collect();
                        fb.sort_by_key(key);
                        Some((a.msg.clone()?, fb))
                    })
                    .collect();
                answers.sort_by_key(|(a, _)| key(a));
                ProblemView { problem: p.clone(), answers }
            })
            .collect();
        v.sort_by_key(|p| key(&p.problem));
        v
    }
}

/// One author's answers to one problem: every version is kept, the latest is the one that
/// counts (the one `lanpeer collect` writes out).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Submission {
    /// The latest version: its author's answer with the highest sequence number (an author's
    /// numbers only grow, whatever its clock says).
    pub latest: Message,
    /// How many versions its author sent.
    pub versions: usize,
    /// Feedback on any of its versions, in all.
    pub feedback: usize,
    /// Whether the latest version has feedback.
    pub feedback_on_latest: bool,
}

/// Each author's [`Submission`] to the problem of `view`, by the author's label (without case).
pub fn submissions(view: &ProblemView) -> Vec<Submission> {
    let mut by: HashMap<PeerId, Submission> = HashMap::new();
    for (a, fb) in &view.answers {
        let s = by.entry(a.id.author).or_insert_with(|| Submission {
            latest: a.clone(),
            versions: 0,
            feedback: 0,
            feedback_on_latest: !fb.is_empty(),
        });
        s.versions += 1;
        s.feedback += fb.len();
        if a.id.seq > s.latest.id.seq {
            s.latest = a.clone();
            s.feedback_on_latest = !fb.is_empty();
        }
    }
    let mut list: Vec<Submission> = by.into_values().collect();
    list.sort_by_cached_key(|s| (s.latest.from_label.to_lowercase(), s.latest.id));
    list
}

/// Where a problem stands: who has answered, and who of the peers online has not.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Status {
    /// Each author who answered, by label.
    pub answered: Vec<Submission>,
    /// The peers online who have not answered (its author aside), by label.
    pub waiting: Vec<crate::event::PeerInfo>,
}

/// The [`Status`] of the problem of `view`, beside the peers `online` (as [`crate::Node::peers`]
/// lists them).
pub fn status(view: &ProblemView, online: &[crate::event::PeerInfo]) -> Status {
    let answered = submissions(view);
    let mut waiting: Vec<crate::event::PeerInfo> = online
        .iter()
        .filter(|p| p.id != view.problem.id.author && !answered.iter().any(|s| s.latest.id.author == p.id))
        .cloned()
        .collect();
    waiting.sort_by_cached_key(|p| (p.label.to_lowercase(), p.id));
    Status { answered, waiting }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn msg(author: u8, seq: u64, body: Body) -> Message {
        Message {
            id: MsgId { author: PeerId([author; 16]), seq },
            from_name: "x".into(),
            sent_ms: 0,
            to: None,
            body,
            own: false,
            files: vec![],
            from_label: "x".into(),
            from_role: None,
            from_verified: None,
        }
    }

    #[test]
    fn threads_problems_answers_feedback() {
        let mut ex = Exercises::default();
        let p = msg(1, 1, Body::Problem { title: "t".into(), body: "b".into(), private_answers: true });
        assert!(ex.record(&p));
        assert!(!ex.record(&p), "repeats are not kept twice");
        let a = msg(2, 5, Body::Answer { problem: p.id, text: "x\ny".into() });
        assert!(ex.record(&a));
        let f = msg(1, 2, Body::Feedback { answer: a.id, text: "good".into() });
        assert!(ex.record(&f));
        assert!(!ex.record(&msg(1, 3, Body::Chat { text: "hi".into() })));

        assert_eq!(ex.find_problem("01010101-1").unwrap(), p.id);
        assert_eq!(ex.find_problem(&p.id.to_string()).unwrap(), p.id);
        assert!(matches!(ex.find_problem("0202-1"), Err(Error::UnknownProblem(_))));
        assert!(matches!(ex.find_problem("nonsense"), Err(Error::UnknownProblem(_))));
        assert_eq!(ex.find_answer("02-5").unwrap(), a.id);
        assert!(ex.find_answer("01-1").is_err(), "a problem is not an answer");
        assert_eq!(ex.quiz_author(&p.id), Some(PeerId([1; 16])));
        assert_eq!(ex.problem_of(&a.id), Some(p.id));

        // An answer that comes before its problem is linked when the problem comes.
        let p2 = msg(3, 1, Body::Problem { title: "t2".into(), body: String::new(), private_answers: false });
        let early = msg(2, 9, Body::Answer { problem: p2.id, text: "early".into() });
        assert!(ex.record(&early));
        assert!(ex.record(&p2));
        let v = ex.view();
        assert_eq!(v.len(), 2);
        assert_eq!(v[1].answers[0].0, early);
        assert_eq!(v[0].answers.len(), 1);
        assert_eq!(v[0].answers[0].1, vec![f]);
    }

    /// A member floods the index with feedback: it loses its own oldest, the teacher's problem
    /// stays, and a new problem is let in; the bound is never for good.
    #[test]
    fn a_flood_of_one_author_costs_that_author_only() {
        let mut ex = Exercises::default();
        let p = msg(1, 1, Body::Problem { title: "t".into(), body: String::new(), private_answers: false });
        ex.record(&p);
        let a = msg(2, 1, Body::Answer { problem: p.id, text: "x".into() });
        ex.record(&a);
        for seq in 1..=(PER_AUTHOR as u64 + 500) {
            assert!(ex.record(&msg(3, seq, Body::Feedback { answer: a.id, text: "spam".into() })));
        }
        assert_eq!(ex.len(), 2 + PER_AUTHOR);
        let v = ex.view();
        assert_eq!(v.len(), 1, "the problem is kept");
        assert_eq!(v[0].answers[0].1.len(), PER_AUTHOR);
        assert_eq!(v[0].answers[0].1[0].id.seq, 501, "the flooder's oldest went first");
        let p2 = msg(1, 2, Body::Problem { title: "new".into(), body: String::new(), private_answers: false });
        assert!(ex.record(&p2));
        assert!(ex.find_problem("01010101-2").is_ok(), "a new problem is let in");
    }

    /// An author's own problem is not pushed out by its own answers and feedback; this peer's
    /// own items are never dropped.
    #[test]
    fn an_author_s_problems_go_last_and_our_own_never() {
        let mut ex = Exercises::default();
        let p = msg(4, 1, Body::Problem { title: "t".into(), body: String::new(), private_answers: false });
        ex.record(&p);
        for seq in 2..(PER_AUTHOR as u64 + 100) {
            ex.record(&msg(4, seq, Body::Answer { problem: p.id, text: "a".into() }));
        }
        assert!(ex.find_problem("04040404-1").is_ok(), "its problem stays");
        let mut own = Exercises::default();
        let mine = Message { own: true, ..p.clone() };
        own.record(&mine);
        for seq in 2..(PER_AUTHOR as u64 + 100) {
            own.record(&Message { own: true, ..msg(4, seq, Body::Answer { problem: p.id, text: "a".into() }) });
        }
        assert_eq!(own.len(), PER_AUTHOR + 99, "nothing of ours dropped");
    }

    /// Many authors past the bound in all: the one with the most loses its oldest.
    #[test]
    fn past_the_bound_in_all_the_largest_author_gives_way() {
        let mut ex = Exercises::default();
        let p = msg(1, 1, Body::Problem { title: "t".into(), body: String::new(), private_answers: false });
        ex.record(&p);
        let a = msg(2, 1, Body::Answer { problem: p.id, text: "x".into() });
        ex.record(&a);
        let authors = (MAX_ITEMS / PER_AUTHOR) as u64 + 2;
        for author in 0..authors {
            for seq in 1..=PER_AUTHOR as u64 {
                let id = MsgId { author: PeerId([author as u8 + 10; 16]), seq };
                ex.record(&Message { id, ..msg(0, 0, Body::Feedback { answer: a.id, text: "f".into() }) });
            }
        }
        assert!(ex.len() <= MAX_ITEMS);
        assert!(ex.find_problem("01010101-1").is_ok(), "the author with one item keeps it");
    }

    /// Answers before their problems, many of them: linked in time linear in their number.
    #[test]
    fn building_the_index_is_linear() {
        let mut ex = Exercises::default();
        let n = 20_000u64;
        let t = std::time::Instant::now();
        for seq in 1..=n {
            let problem = MsgId { author: PeerId([1; 16]), seq };
            ex.record(&msg(2, seq, Body::Answer { problem, text: "early".into() }));
        }
        for seq in 1..=n {
            ex.record(&msg(1, seq, Body::Problem { title: "t".into(), body: String::new(), private_answers: false }));
        }
        assert!(ex.view().iter().all(|p| p.answers.len() == 1));
        // Quadratic, as before, was 4e8 steps here: minutes in a debug build.
        assert!(t.elapsed() < std::time::Duration::from_secs(20), "{:?}", t.elapsed());
    }
    fn peer(id: u8, name: &str) -> crate::event::PeerInfo {
        crate::event::PeerInfo {
            id: PeerId([id; 16]),
            name: name.into(),
            addr: "127.0.0.1:1".parse().unwrap(),
            state: crate::event::PeerState::Connected,
            last_seen_ms: 0,
            props: vec![],
            verified: None,
            label: name.into(),
        }
    }

    fn by(author: u8, seq: u64, name: &str, body: Body, sent_ms: u64) -> Message {
        Message { from_name: name.into(), from_label: name.into(), sent_ms, ..msg(author, seq, body) }
    }

    /// Two versions from one student (the later one with an older clock), one from another with
    /// feedback on it, and the online peers who have not answered.
    #[test]
    fn the_latest_version_counts_and_the_others_wait() {
        let mut ex = Exercises::default();
        let p =
            by(1, 1, "Ms Rivera", Body::Problem { title: "t".into(), body: String::new(), private_answers: true }, 0);
        ex.record(&p);
        let sam1 = by(2, 3, "Sam", Body::Answer { problem: p.id, text: "v1".into() }, 5_000);
        let sam2 = by(2, 7, "Sam", Body::Answer { problem: p.id, text: "v2".into() }, 4_000);
        let lea = by(3, 1, "lea", Body::Answer { problem: p.id, text: "mine".into() }, 6_000);
        let other =
            by(4, 1, "Cy", Body::Answer { problem: MsgId { author: PeerId([9; 16]), seq: 1 }, text: "x".into() }, 1);
        for m in [&sam1, &sam2, &lea, &other] {
            ex.record(m);
        }
        ex.record(&by(1, 2, "Ms Rivera", Body::Feedback { answer: lea.id, text: "good".into() }, 7_000));
        ex.record(&by(1, 3, "Ms Rivera", Body::Feedback { answer: sam1.id, text: "almost".into() }, 7_000));
        let view = ex.view().into_iter().find(|v| v.problem.id == p.id).unwrap();
        let online = [peer(1, "Ms Rivera"), peer(5, "Bob"), peer(2, "Sam"), peer(4, "Cy"), peer(6, "ana")];
        let st = status(&view, &online);
        let got: Vec<_> = st
            .answered
            .iter()
            .map(|s| (s.latest.from_label.as_str(), s.latest.id.seq, s.versions, s.feedback, s.feedback_on_latest))
            .collect();
        assert_eq!(got, [("lea", 1, 1, 1, true), ("Sam", 7, 2, 1, false)]);
        let waiting: Vec<_> = st.waiting.iter().map(|p| p.label.as_str()).collect();
        assert_eq!(waiting, ["ana", "Bob", "Cy"], "the author and those who answered are not waited for");
        let none = ProblemView { problem: p.clone(), answers: vec![] };
        assert!(submissions(&none).is_empty());
    }
}
