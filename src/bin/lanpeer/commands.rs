//! Carrying out what a person or a script types, one line at a time and in order.
//!
//! Most lines are quick: a message is handed to the node (its confirmation is awaited apart, in
//! [`InFlight`], so a script can pipe thousands), a list is asked for and printed. A line with
//! files is not: its files are read, hashed and copied into the store (seconds for a large one),
//! and a message with files waits for them. Such a line becomes [`Work`], which the main loop
//! awaits beside the node's events (which go on showing) while the lines after it wait their
//! turn: the order of lines is kept, and nothing stalls the screen.
//!
//! What `/attach` staged ([`Staged`]) goes with the next message of any kind, and is then
//! dropped; a message that is refused gives its files back to be attached still.

use std::future::Future;
use std::path::PathBuf;
use std::pin::Pin;
use std::sync::Arc;

use lanpeer::{Body, Error, MsgId, Node, PeerId};

use crate::attach::{self, Group, Staged};
use crate::input::{self, Input};
use crate::output::Output;
use crate::roster::Roster;

/// Messages handed to the node whose confirmation is still to come, oldest first: the CLI does
/// not wait for each one before reading the next line (a script can pipe thousands), and reports
/// a refusal when it comes.
///
/// The node confirms messages in the order they were submitted, so only the oldest is polled
/// (and woken on): the others are looked at once it is done, most of them ready by then.
#[derive(Default)]
pub struct InFlight(std::collections::VecDeque<lanpeer::Pending>);

impl InFlight {
    fn push_back(&mut self, p: lanpeer::Pending) {
        self.0.push_back(p);
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// Wait until the oldest is confirmed (or refused); then take every confirmation that is
    /// ready, in order, and report each refusal.
    pub async fn settle(&mut self, out: &mut Output) {
        let mut first = true;
        std::future::poll_fn(|cx| {
            while let Some(p) = self.0.front_mut() {
                let r = match p.as_mut().poll(cx) {
                    std::task::Poll::Ready(r) => r,
                    std::task::Poll::Pending if first => return std::task::Poll::Pending,
                    std::task::Poll::Pending => break,
                };
                first = false;
                self.0.pop_front();
                if let Err(e) = r {
                    out.error(&e.to_string());
                }
            }
            std::task::Poll::Ready(())
        })
        .await
    }

    /// Wait for every confirmation, in order (reporting each refusal).
    pub async fn finish(&mut self, out: &mut Output) {
        while let Some(p) = self.0.pop_front() {
            if let Err(e) = p.await {
                out.error(&e.to_string());
            }
        }
    }
}

/// A line that waits on files: the main loop awaits it, then hands what it gives to
/// [`Commands::finish`].
pub type Work = Pin<Box<dyn Future<Output = Worked> + Send>>;

/// What a [`Work`] came to.
pub enum Worked {
    /// `/attach`: its files, prepared, or why not.
    Attached(Result<Group, Error>),
    /// A message with files: its id, or why it was not sent, with the files it took from those
    /// attached (to give them back).
    Sent(Result<MsgId, (Error, Vec<Group>)>),
}

/// What became of a line.
pub enum Handled {
    /// Done (or handed to the node).
    Done,
    /// The user leaves.
    Quit,
    /// It waits on files: the lines after it wait for it.
    Wait(Work),
}

/// The state of the lines typed: messages in flight and the files attached.
pub struct Commands {
    node: Node,
    pub inflight: InFlight,
    staged: Staged,
    /// The terminal front end's roster: it learns whether files are attached.
    roster: Option<Arc<Roster>>,
}

/// Who a message goes to, and what it is.
async fn target(node: &Node, input: Input) -> Result<(Option<PeerId>, Body), Error> {
    Ok(match input {
        Input::Chat(text) => (None, Body::Chat { text }),
        Input::Msg { who, text } => (Some(node.find_peer(&who).await?), Body::Chat { text }),
        Input::Problem { title, body, private_answers } => (None, Body::Problem { title, body, private_answers }),
        Input::Answer { problem, text } => (None, Body::Answer { problem: node.find_problem(&problem).await?, text }),
        Input::Feedback { answer, text } => (None, Body::Feedback { answer: node.find_answer(&answer).await?, text }),
        _ => return Err(Error::BadText("that line sends no message".into())),
    })
}

/// `/attach PATH...`: the files prepared, and what they looked like before.
async fn attach(node: Node, paths: Vec<PathBuf>) -> Worked {
    Worked::Attached(prepare(&node, paths).await)
}

async fn prepare(node: &Node, paths: Vec<PathBuf>) -> Result<Group, Error> {
    let looked = paths.clone();
    let seen = tokio::task::spawn_blocking(move || attach::look(&looked)).await.map_err(|_| Error::Stopped)?;
    let files = node.prepare_files(paths.clone()).await?;
    Ok(Group::new(paths, files, seen))
}

/// `/send PATH...`: a chat of the files alone, to everyone.
async fn send(node: Node, paths: Vec<PathBuf>) -> Worked {
    let sent = async {
        let files = node.prepare_files(paths).await?;
        node.submit_with(None, Body::Chat { text: String::new() }, files).await?.await
    };
    Worked::Sent(sent.await.map_err(|e| (e, Vec::new())))
}

/// A message with the files attached: those changed since they were attached are read again.
async fn send_attached(node: Node, input: Input, mut groups: Vec<Group>) -> Worked {
    let (to, body) = match target(&node, input).await {
        Ok(t) => t,
        Err(e) => return Worked::Sent(Err((e, groups))),
    };
    for g in &mut groups {
        let old = g.clone();
        let changed = tokio::task::spawn_blocking(move || old.changed()).await.unwrap_or(true);
        if changed {
            match prepare(&node, g.paths.clone()).await {
                Ok(new) => *g = new,
                Err(e) => return Worked::Sent(Err((e, groups))),
            }
        }
    }
    let sent = async { node.submit_with(to, body, attach::files_of(&groups)).await?.await };
    Worked::Sent(sent.await.map_err(|e| (e, groups)))
}

impl Commands {
    pub fn new(node: Node, roster: Option<Arc<Roster>>) -> Commands {
        Commands { node, inflight: InFlight::default(), staged: Staged::default(), roster }
    }

    fn tell_roster(&self, attached: bool) {
        if let Some(r) = &self.roster {
            r.set_attached(attached);
        }
    }

    /// Carry out one parsed line.
    pub async fn handle(&mut self, out: &mut Output, line: Result<Input, String>) -> Handled {
        let parsed = match line {
            Ok(i) => i,
            Err(e) => {
                out.error(&e);
                return Handled::Done;
            }
        };
        if parsed.sends() && !self.staged.is_empty() {
            let groups = self.staged.take();
            self.tell_roster(false);
            return Handled::Wait(Box::pin(send_attached(self.node.clone(), parsed, groups)));
        }
        let parsed = match parsed.without_files() {
            Ok(i) => i,
            Err(e) => {
                out.error(&e);
                return Handled::Done;
            }
        };
        let node = self.node.clone();
        let node = &node;
        let result: Result<Handled, Error> = async {
            match parsed {
                Input::Nothing => {}
                Input::Quit => return Ok(Handled::Quit),
                Input::Help => out.help(input::HELP),
                Input::Peers => out.peers(&node.peers().await?),
                Input::Problems => out.problems(&node.problems().await?),
                Input::History(n) => out.history(&node.history(n.unwrap_or(50)).await?),
                Input::Send(paths) => return Ok(Handled::Wait(Box::pin(send(node.clone(), paths)))),
                Input::Attach(paths) => {
                    self.tell_roster(true);
                    return Ok(Handled::Wait(Box::pin(attach(node.clone(), paths))));
                }
                Input::Attached => out.attached(&self.staged.files()),
                Input::Detach => {
                    self.staged.clear();
                    self.tell_roster(false);
                    out.attached(&[]);
                }
                Input::Status(problem) => {
                    let id = node.find_problem(&problem).await?;
                    let view = node.problems().await?.into_iter().find(|v| v.problem.id == id);
                    let view = view.ok_or_else(|| Error::UnknownProblem(problem.clone()))?;
                    let st = lanpeer::exercises::status(&view, &node.peers().await?);
                    out.status(&view.problem, &st);
                }
                message => {
                    let (to, body) = target(node, message).await?;
                    self.inflight.push_back(node.submit(to, body).await?);
                }
            }
            Ok(Handled::Done)
        }
        .await;
        match result {
            Ok(h) => h,
            Err(Error::Stopped) => Handled::Quit,
            Err(e) => {
                out.error(&e.to_string());
                Handled::Done
            }
        }
    }

    /// What a line that waited on files came to.
    pub fn finish(&mut self, out: &mut Output, worked: Worked) {
        match worked {
            Worked::Attached(Ok(g)) => {
                self.staged.push(g);
                out.attached(&self.staged.files());
            }
            Worked::Attached(Err(e)) => out.error(&e.to_string()),
            Worked::Sent(Ok(_)) => {}
            Worked::Sent(Err((e, groups))) if groups.is_empty() => out.error(&e.to_string()),
            Worked::Sent(Err((e, groups))) => {
                self.staged.restore(groups);
                out.error(&format!("{e} (nothing was sent; the files stay attached)"));
            }
        }
        self.tell_roster(!self.staged.is_empty());
    }
}
