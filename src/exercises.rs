//! The exercises this peer has seen: problems, the answers to each, the feedback on each answer.
//!
//! Owned by the node actor. It answers `/problems`, checks that an answer names a known problem
//! and feedback a known answer, and knows who wrote a quiz (whose answers go to its author only).
//! In memory, bounded by [`MAX_ITEMS`]; the reliability work moves it to the database.

use std::collections::HashMap;

use crate::error::Error;
use crate::event::Message;
use crate::id::{MsgId, MsgIdPattern, PeerId};
use crate::protocol::Body;

/// Most problems, answers and feedback kept together; past it new ones are still delivered
/// as events but not kept for `/problems`.
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
    feedback: Vec<Message>,
}

/// The store.
#[derive(Debug, Default)]
pub struct Exercises {
    order: Vec<MsgId>,
    problems: HashMap<MsgId, (Message, Vec<MsgId>)>,
    answers: HashMap<MsgId, AnswerRec>,
    items: usize,
}

impl Exercises {
    /// Keep a problem, answer or feedback (chats are ignored). Returns false when full or repeated.
    pub fn record(&mut self, m: &Message) -> bool {
        if self.items >= MAX_ITEMS {
            tracing::warn!(id = %m.id, "exercise store full; not kept for /problems");
            return false;
        }
        match &m.body {
            Body::Chat { .. } => return false,
            Body::Problem { .. } => {
                if self.problems.contains_key(&m.id) {
                    return false;
                }
                self.order.push(m.id);
                // Answers can arrive before their problem (catch-up from several peers).
                let early: Vec<MsgId> = self
                    .answers
                    .iter()
                    .filter(|(_, a)| matches!(&a.msg, Some(x) if matches!(&x.body, Body::Answer { problem, .. } if *problem == m.id)))
                    .map(|(id, _)| *id)
                    .collect();
                self.problems.insert(m.id, (m.clone(), early));
            }
            Body::Answer { problem, .. } => {
                if self.answers.get(&m.id).is_some_and(|a| a.msg.is_some()) {
                    return false;
                }
                if let Some((_, answers)) = self.problems.get_mut(problem) {
                    answers.push(m.id);
                }
                self.answers.entry(m.id).or_default().msg = Some(m.clone());
            }
            Body::Feedback { answer, .. } => {
                let rec = self.answers.entry(*answer).or_default();
                if rec.feedback.iter().any(|f| f.id == m.id) {
                    return false;
                }
                rec.feedback.push(m.clone());
            }
        }
        self.items += 1;
        true
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
                        let mut fb = a.feedback.clone();
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
}
