//! The commands of the [`Node`](crate::Node) handles, and sending a message: checked, numbered,
//! stored and queued for each addressee within the turn; answered, and sent, once the turn
//! commits.

use std::time::Instant;

use bytes::Bytes;

use super::Actor;
use super::delivery::OutStream;
use super::turn::HeldReply;
use crate::error::Error;
use crate::event::{Event, Message};
use crate::id::{MsgId, PeerId};
use crate::node::Command;
use crate::protocol::{Body, Envelope, FileRef};

impl Actor {
    /// Carry out a command; how many messages it submitted (1 for any other command).
    pub(super) fn command(&mut self, c: Command) -> usize {
        let now = Instant::now();
        match c {
            Command::Send { to, body, files, reply } => {
                // Answered after the commit (in `flush`), so an id the caller gets is on disk.
                let r = self.send(to, body, files);
                self.turn.replies.push(HeldReply::One(reply, r));
            }
            Command::SendBatch { msgs, reply } => {
                let n = msgs.len();
                let r = msgs.into_iter().map(|(to, body)| self.send(to, body, Vec::new())).collect();
                self.turn.replies.push(HeldReply::Batch(reply, r));
                return n.max(1);
            }
            Command::Peers(r) => {
                let mut peers = self.table.listed(now);
                peers.iter_mut().for_each(|p| self.describe_peer(p));
                let _ = r.send(peers);
            }
            Command::Problems(r) => {
                let mut view = self.exercises.view();
                for p in &mut view {
                    self.describe(&mut p.problem);
                    for (a, feedback) in &mut p.answers {
                        self.describe(a);
                        feedback.iter_mut().for_each(|f| self.describe(f));
                    }
                }
                let _ = r.send(view);
            }
            Command::History(limit, r) => {
                let h = self.p.store.history(limit);
                let h = h
                    .into_iter()
                    .map(|s| {
                        let mut m = s.message;
                        self.describe(&mut m);
                        m
                    })
                    .collect();
                let _ = r.send(Ok(h));
            }
            Command::FindPeer(q, r) => {
                let _ = r.send(self.table.resolve(&q, now));
            }
            Command::FindProblem(q, r) => {
                let _ = r.send(self.exercises.find_problem(&q));
            }
            Command::FindAnswer(q, r) => {
                let _ = r.send(self.exercises.find_answer(&q));
            }
            Command::Stats(r) => {
                let sum = |f: &dyn Fn(&super::InStream) -> (usize, usize)| {
                    self.inbound.values().map(f).fold((0, 0), |a, b| (a.0 + b.0, a.1 + b.1))
                };
                let _ = r.send(crate::node::Stats {
                    sessions: self.sessions.len(),
                    members: self.members.len(),
                    table: self.table.len(),
                    exercises: self.exercises.len(),
                    ahead: sum(&|i| (i.ahead.len(), i.ahead_bytes)),
                    held: sum(&|i| (i.held.len(), i.held_bytes)),
                    stored: self.p.store.count(),
                });
            }
            Command::Shutdown => {}
        }
        1
    }

    /// An empty text is a mistake of the user: one plain sentence.
    pub(super) fn check_text(&self, what: &str, text: &str) -> Result<(), Error> {
        if text.trim().is_empty() {
            return Err(Error::BadText(format!("the {what} is empty; type some text after the command")));
        }
        Ok(())
    }

    pub(super) fn send(&mut self, mut to: Option<PeerId>, body: Body, files: Vec<FileRef>) -> Result<MsgId, Error> {
        crate::limits::check_body(&body).map_err(Error::BadText)?;
        if files.len() > crate::limits::FILES {
            return Err(Error::Files(format!(
                "a message carries at most {} files; send the folder as a zip",
                crate::limits::FILES
            )));
        }
        match &self.p.files {
            None if !files.is_empty() => {
                return Err(Error::Files("this peer keeps no data directory, so it cannot send files".into()));
            }
            // Only what this peer holds can be sent (and served): files come from `prepare_files`.
            Some(store) => {
                if let Some(f) = files.iter().find(|f| store.store.complete_path(&f.chunks).is_none()) {
                    return Err(Error::Files(format!("{} is not in this peer's files; attach it again", f.name)));
                }
            }
            None => {}
        }
        // With files, a text may be empty (the files say it).
        let bare = files.is_empty();
        match &body {
            Body::Chat { text } if bare => self.check_text("message", text)?,
            Body::Chat { .. } => {}
            Body::Problem { title, .. } => self.check_text("title", title)?,
            Body::Answer { problem, text } => {
                self.exercises.find_problem(&problem.to_string())?;
                if bare {
                    self.check_text("answer", text)?;
                }
                // A quiz: answers go to its author only.
                if let Some(author) = self.exercises.quiz_author(problem) {
                    to = Some(author);
                }
            }
            Body::Feedback { answer, text } => {
                self.exercises.find_answer(&answer.to_string())?;
                if bare {
                    self.check_text("feedback", text)?;
                }
                // Feedback on a quiz answer goes to the answer's author only.
                if self.exercises.problem_of(answer).and_then(|p| self.exercises.quiz_author(&p)).is_some() {
                    to = Some(answer.author);
                }
            }
        }
        if let Some(t) = to
            && t != self.me
            && !self.members.contains_key(&t)
        {
            let name = self.table.get(&t).map(|e| e.name.clone()).unwrap_or_else(|| t.short());
            return Err(Error::UnknownPeer(name));
        }
        let id = MsgId { author: self.me, seq: self.p.identity.next_seq()? };
        let now = self.turn_now_ms();
        let env = Envelope { id, author_name: self.p.name.clone(), sent_ms: now, to, body, files };
        let bytes =
            self.arena.encode(&env).map_err(|_| Error::BadText("the message is too large; shorten it".into()))?;
        if bytes.len() + 16 > self.p.ctx.max_frame {
            return Err(Error::BadText("the message is too large; shorten it".into()));
        }
        let pos = self
            .turn
            .checked(self.p.store.insert(&env, &bytes, now, true))?
            .ok_or_else(|| Error::Storage("message id used twice".into()))?;
        let mut recipients = std::mem::take(&mut self.targets);
        recipients.clear();
        match to {
            Some(t) if t == self.me => {}
            Some(t) => recipients.push(t),
            None => recipients.extend(self.members.keys().copied().filter(|p| *p != self.me)),
        }
        let queued = self.queue(&recipients, pos, id.seq, &bytes, now);
        self.targets = recipients;
        queued?;
        // Signed with the turn's other messages before it commits (`sealing`).
        self.turn.own.push((id.seq, bytes));
        let mut m = Message::from_envelope(env, true);
        self.describe(&mut m);
        self.exercises.record(&m);
        self.emit(Event::Message(m));
        Ok(id)
    }

    /// Give our message number `seq` (at place `pos` of the history, encoded `bytes`) the next number of each
    /// recipient's stream and queue it there; it is sent once the turn commits (`flush_with`).
    pub(super) fn queue(
        &mut self,
        recipients: &[PeerId],
        pos: crate::store::Pos,
        seq: u64,
        bytes: &Bytes,
        now: u64,
    ) -> Result<(), Error> {
        for &peer in recipients {
            let o = self.out.entry(peer).or_insert_with(|| OutStream::new(Instant::now()));
            let lseq = o.next;
            self.turn.numbered.entry(peer).or_insert(lseq);
            o.next += 1;
            // The stream's counter is not written here: the store's outbox says how far it went (see
            // `Store::out_streams`), and it is written with the acknowledgements.
            self.turn.checked(self.p.store.enqueue(peer, lseq, pos, now))?;
            self.turn.frames.push((peer, lseq, seq, bytes.clone()));
        }
        Ok(())
    }
}
