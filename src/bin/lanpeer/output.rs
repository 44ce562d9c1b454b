//! How events reach the user: one JSON object per line (`--json`, the public contract of
//! scripts and tests: fields are only ever added), or lines a person reads.
//!
//! A line for people is built from pieces, each with its [`Tone`]; text from peers is made
//! printable piece by piece before any colour is added, so that colour is the only escape
//! sequence a line can hold. How a person's name is shown is decided in one place, [`Output::who`].
//!
//! What a peer sends can never make a line that looks like another: a line starts at the margin
//! only with a time or with what this program says. A text of several lines (a chat, an answer,
//! feedback) goes under its author's line, each of its lines indented; a newline anywhere else
//! (a warning's text, say) goes on indented too ([`Output::put`]); control characters show as
//! `�` and invisible format characters (a bidirectional override, a zero-width space) as a tag
//! such as `<U+202E>` ([`printable`]), so nothing reorders or hides a part of a line. At a
//! terminal, a line wider than the terminal goes on indented too, broken here and not at the
//! margin by the terminal (fit.rs).

use std::collections::HashSet;
use std::io::Write;
use std::time::{SystemTime, UNIX_EPOCH};

use lanpeer::web::json::{self, role};
use lanpeer::{Body, Event, Message, PeerId, PeerInfo, ProblemView};
use serde_json::{Value, json};

use crate::paint::{Paint, Tone, name_tone};

/// The output mode and the stream it writes to.
///
/// Lines are gathered in a buffer and written to stdout in large pieces: when the buffer holds
/// [`WRITE_AT`] bytes, and at every [`Output::flush`]. The caller flushes as soon as it has
/// nothing more at hand, so an event never waits in the buffer while the peer is idle.
pub struct Output {
    json: bool,
    buf: Vec<u8>,
    sink: Box<dyn Write + Send>,
    /// The colour of the lines for people (off but for the terminal front end).
    paint: Paint,
    /// This peer's id, from its `ready` event: its own name stands out.
    me: Option<PeerId>,
    /// The room's teacher, verified (this peer, if so): its name stands out.
    teachers: HashSet<PeerId>,
    /// For the terminal front end: `/help` tells its keys too.
    terminal: bool,
    /// Stdout is a terminal: its width is read at every flush, and lines are broken to fit it.
    measured: bool,
    /// The terminal's width in columns, as last read; `None` when lines go to a pipe or a file.
    width: Option<usize>,
    /// Files awaited, for few lines about their arrival.
    arrivals: crate::arrivals::Arrivals,
}

/// Files of a message listed at most, one line each (then one line for the rest).
const FILES_SHOWN: usize = 10;

/// A buffer this full is written out without waiting for a flush.
pub const WRITE_AT: usize = 64 * 1024;

/// `s` as shown on a terminal: every control character but newline and tab replaced by `�`, and
/// every invisible format character shown as its tag ([`lanpeer::text::neutralize`]).
pub fn printable(s: &str) -> std::borrow::Cow<'_, str> {
    use std::borrow::Cow;
    let controls = |c: char| c.is_control() && c != '\n' && c != '\t';
    let s: Cow<'_, str> = if s.chars().any(controls) {
        s.chars().map(|c| if controls(c) { '\u{fffd}' } else { c }).collect::<String>().into()
    } else {
        s.into()
    };
    match s {
        Cow::Borrowed(b) => lanpeer::text::neutralize(b),
        Cow::Owned(o) => match lanpeer::text::neutralize(&o) {
            Cow::Borrowed(_) => Cow::Owned(o),
            Cow::Owned(n) => Cow::Owned(n),
        },
    }
}

/// How far the lines of a text go in under its author's line.
const INDENT: &str = "          ";

fn clock(ms: u64) -> String {
    use chrono::TimeZone;
    match chrono::Local.timestamp_millis_opt(ms as i64) {
        chrono::LocalResult::Single(t) => t.format("%H:%M:%S").to_string(),
        _ => "--:--:--".to_string(),
    }
}

fn now_ms() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_millis() as u64).unwrap_or(0)
}

/// The role shown beside a peer: `teacher`, or a warning when its claim is not the teacher's key.
fn role_mark(role: Option<&str>, verified: Option<bool>) -> Option<String> {
    match (role, verified) {
        (_, Some(true)) => Some("teacher".into()),
        (_, Some(false)) => Some("says it is the teacher: UNVERIFIED".into()),
        (Some(r), None) => Some(r.to_string()),
        (None, None) => None,
    }
}

/// Every line of `text` indented (an empty text: one indented empty line, so that the author's
/// line is never left without what it announces).
fn indent(text: &str) -> String {
    let mut lines = text.lines().map(|l| format!("{INDENT}{l}")).collect::<Vec<_>>();
    if lines.is_empty() {
        lines.push(INDENT.to_string());
    }
    lines.join("\n")
}

/// One line for people (a text of several lines, for an indented body), in pieces with their tones.
#[derive(Default)]
struct Line(Vec<(Tone, String)>);

impl Line {
    fn new() -> Line {
        Line(Vec::with_capacity(8))
    }

    /// Then `text`, in `tone`.
    fn with(mut self, tone: Tone, text: impl Into<String>) -> Line {
        self.0.push((tone, text.into()));
        self
    }

    /// Then `text`, plain.
    fn text(self, text: impl Into<String>) -> Line {
        self.with(Tone::Plain, text)
    }

    /// Then a person's name, as [`Output::who`] shows it.
    fn who(self, (tone, name): (Tone, String)) -> Line {
        self.with(tone, name)
    }
}

// The `--json` objects: those of events, messages, peers and problems are the web page's
// (`lanpeer::web::json`), which has the same names and fields.

/// The `files` of `--json` objects: `{name, size, sha256}` each, as a message's.
fn files_json(files: &[lanpeer::protocol::FileRef]) -> Value {
    files.iter().map(|f| json!({"name": f.name, "size": f.size, "sha256": hex::encode(f.sha256)})).collect()
}

/// The `--json` object of `/status`.
fn status_json(problem: &Message, title: &str, st: &lanpeer::exercises::Status) -> Value {
    let answered: Vec<Value> = st
        .answered
        .iter()
        .map(|s| {
            let a = &s.latest;
            json!({
                "from": a.id.author.to_string(), "from_name": a.from_name, "from_label": a.from_label,
                "answer_id": a.id.to_string(), "time_ms": a.sent_ms, "versions": s.versions,
                "feedback": s.feedback, "feedback_on_latest": s.feedback_on_latest, "files": files_json(&a.files),
            })
        })
        .collect();
    let waiting: Vec<Value> =
        st.waiting.iter().map(|p| json!({"id": p.id.to_string(), "name": p.name, "label": p.label})).collect();
    json!({
        "event": "status", "problem_id": problem.id.to_string(), "title": title,
        "answered": answered, "waiting": waiting,
    })
}

/// The `--json` object of `/history`.
fn history_json(msgs: &[Message]) -> Value {
    json!({"event": "history", "messages": msgs.iter().map(json::message).collect::<Vec<_>>()})
}

/// The `--json` object of `/peers`.
fn peers_json(peers: &[PeerInfo]) -> Value {
    json!({"event": "peers", "peers": peers.iter().map(json::peer).collect::<Vec<_>>()})
}

/// The `--json` object of `/problems`.
fn problems_json(list: &[ProblemView]) -> Value {
    json!({"event": "problems", "problems": json::problems(list)})
}

impl Output {
    /// Output to stdout, as JSON lines or for people (broken to the terminal's width when stdout
    /// is a terminal).
    pub fn new(json: bool) -> Self {
        let out = Self::to(json, Box::new(std::io::stdout()));
        if !json && std::io::IsTerminal::is_terminal(&std::io::stdout()) { out.measured() } else { out }
    }

    /// Lines broken to the width of the terminal that stdout is.
    fn measured(mut self) -> Self {
        self.measured = true;
        self.width = crate::fit::terminal_width();
        self
    }

    /// Output to any stream.
    pub fn to(json: bool, sink: Box<dyn Write + Send>) -> Self {
        Output {
            json,
            buf: Vec::with_capacity(WRITE_AT + 4096),
            sink,
            paint: Paint::OFF,
            me: None,
            teachers: HashSet::new(),
            terminal: false,
            measured: false,
            width: None,
            arrivals: Default::default(),
        }
    }

    /// For the terminal front end (its help tells the keys of the line editor; its lines are
    /// broken to the terminal's width).
    pub fn at_terminal(mut self) -> Self {
        self.terminal = true;
        self.measured()
    }

    /// Lines broken as for a terminal `width` columns wide, whatever the stream.
    #[cfg(test)]
    fn width(mut self, width: usize) -> Self {
        self.width = Some(width);
        self
    }

    /// The same, with the lines for people in colour when `paint` says so.
    pub fn painted(mut self, paint: Paint) -> Self {
        self.paint = paint;
        self
    }

    /// How a person's name is shown in every line for people: its label (the name, with the
    /// start of the id when two peers share it), with " (you)" after it when `you`, and after a
    /// peer that claims to be the teacher, `[teacher]` when it is (`verified`) and `[UNVERIFIED
    /// teacher]` when its key is not the teacher's; one's own name, the teacher's and everyone
    /// else's (by id) in their colours (an unverified claim never gets the teacher's).
    fn who(&self, label: &str, id: PeerId, you: bool, verified: Option<bool>) -> (Tone, String) {
        let mut text = if you { format!("{label} (you)") } else { label.to_string() };
        match verified {
            Some(true) if !you => text.push_str(" [teacher]"),
            Some(false) => text.push_str(" [UNVERIFIED teacher]"),
            _ => {}
        }
        let tone = if you || self.me == Some(id) {
            Tone::Own
        } else if verified == Some(false) {
            Tone::Warning
        } else if verified == Some(true) || self.teachers.contains(&id) {
            Tone::Teacher
        } else {
            name_tone(id.0[0])
        };
        (tone, text)
    }

    /// [`Output::who`] of a message's author.
    fn author(&self, m: &Message) -> (Tone, String) {
        self.who(&m.from_label, m.id.author, m.own, m.from_verified)
    }

    /// Lines as they are, each where it starts: this program's own (help, headings) at the
    /// margin, or a peer's text already indented ([`Output::body`]); made printable all the same.
    fn line(&mut self, s: &str) {
        let text = printable(s);
        match self.width.and_then(|w| crate::fit::Fit::new(w, INDENT)) {
            Some(mut fit) => {
                let mut fitted = String::with_capacity(text.len() + 16);
                fit.push(&mut fitted, &text);
                let _ = writeln!(self.buf, "{fitted}");
            }
            None => {
                let _ = writeln!(self.buf, "{text}");
            }
        }
        self.end_line();
    }

    /// A text from a peer (a chat of several lines, a problem's body, an answer, feedback) under
    /// its author's line: every line of it indented, none at the margin.
    fn body(&mut self, text: &str) {
        self.line(&indent(text));
    }

    /// One line for people, from its pieces: each made printable ([`printable`]: control
    /// characters from peers, terminal escape sequences say, shown as `�`, so a message can never
    /// drive the reader's terminal), then coloured. A newline in a piece goes on indented, never
    /// at the margin.
    fn put(&mut self, l: Line) {
        let mut s = String::with_capacity(l.0.iter().map(|(_, t)| t.len() + 12).sum::<usize>() + 1);
        let mut fit = self.width.and_then(|w| crate::fit::Fit::new(w, INDENT));
        let mut fitted = String::new();
        for (tone, text) in &l.0 {
            let mut text = printable(text);
            if text.contains('\n') {
                text = text.replace('\n', &format!("\n{INDENT}")).into();
            }
            if let Some(fit) = &mut fit {
                fitted.clear();
                fit.push(&mut fitted, &text);
                self.paint.push(&mut s, *tone, &fitted);
            } else {
                self.paint.push(&mut s, *tone, &text);
            }
        }
        s.push('\n');
        self.buf.extend_from_slice(s.as_bytes());
        self.end_line();
    }

    fn json(&mut self, v: Value) {
        let _ = serde_json::to_writer(&mut self.buf, &v);
        self.buf.push(b'\n');
        self.end_line();
    }

    /// A whole line is in the buffer: write it out if the buffer is full enough.
    fn end_line(&mut self) {
        if self.buf.len() >= WRITE_AT {
            self.flush();
        }
    }

    /// True when something is buffered, not yet written out.
    pub fn has_pending(&self) -> bool {
        !self.buf.is_empty()
    }

    /// Write out what is buffered (whole lines only ever: the buffer ends with a newline).
    pub fn flush(&mut self) {
        if self.buf.is_empty() {
            return;
        }
        // Stdout is line-buffered: a piece that ends with a newline goes straight through it.
        // A write error (the reader went away) drops the output, as before.
        let _ = self.sink.write_all(&self.buf).and_then(|()| self.sink.flush());
        self.buf.clear();
        // The window may have been made wider or narrower since.
        if self.measured {
            self.width = crate::fit::terminal_width();
        }
    }

    /// One event.
    pub fn event(&mut self, e: &Event) {
        if self.json {
            json::write_event(&mut self.buf, e);
            self.buf.push(b'\n');
            return self.end_line();
        }
        let t = clock(now_ms());
        match e {
            Event::Ready { id, name, room, listen, role, room_code } => {
                self.me = Some(*id);
                let teacher = role.as_deref() == Some("teacher");
                if teacher {
                    self.teachers.insert(*id);
                }
                let as_role = role.as_deref().map(|r| format!(", as {r}")).unwrap_or_default();
                self.put(Line::new().text("You are ").with(Tone::Own, name.as_str()).text(format!(
                    " ({}){as_role} in room \"{room}\", reachable at {listen}. Type /help for the commands.",
                    id.short()
                )));
                if teacher {
                    self.put(
                        Line::new()
                            .text("Room code for the students (write it on the board): ")
                            .with(Tone::Teacher, room_code.as_str())
                            .text(format!("   they start with: lanpeer --teacher {room_code}")),
                    );
                }
            }
            Event::PeerJoined(p) => {
                if p.verified == Some(true) {
                    self.teachers.insert(p.id);
                }
                let mark = role_mark(role(&p.props), p.verified).map(|m| format!(", {m}")).unwrap_or_default();
                let l = Line::new()
                    .with(Tone::Time, t)
                    .with(Tone::Notice, "  * ")
                    .who(self.who(&p.label, p.id, false, None));
                self.put(l.with(Tone::Notice, format!(" joined ({}{mark}, id {})", p.addr.ip(), p.id.short())));
            }
            Event::PeerLeft { id, name, reason } => {
                let why = match reason {
                    lanpeer::LeaveReason::Left => "left",
                    lanpeer::LeaveReason::Timeout => "is gone (no sign of life)",
                    lanpeer::LeaveReason::Disconnected => "is gone (connection lost)",
                    lanpeer::LeaveReason::Restarted => "restarted",
                };
                let l =
                    Line::new().with(Tone::Time, t).with(Tone::Notice, "  * ").who(self.who(name, *id, false, None));
                self.put(l.with(Tone::Notice, format!(" {why}")));
            }
            Event::Warning { message } => {
                self.put(Line::new().with(Tone::Time, t).with(Tone::Warning, format!("  ! {message}")))
            }
            Event::Message(m) => {
                self.arrivals.message(m);
                self.message(m, &t);
            }
            Event::File { message_id, name, size, path, .. } => {
                for n in self.arrivals.file(*message_id, name, *size, path) {
                    self.notice(&t, &n.text());
                }
            }
            Event::FileProgress { message_id, name, bytes, .. } => {
                if let Some(n) = self.arrivals.progress(*message_id, name, *bytes, std::time::Instant::now()) {
                    self.notice(&t, &n.text());
                }
            }
        }
    }

    /// A line of what happened (`  * ...`), at time `t`.
    fn notice(&mut self, t: &str, text: &str) {
        self.put(Line::new().with(Tone::Time, t).with(Tone::Notice, format!("  * {text}")));
    }

    /// The files of a message (or attached), one line each, under its line: at most
    /// [`FILES_SHOWN`], then how many more.
    fn files(&mut self, files: &[lanpeer::protocol::FileRef]) {
        let human = lanpeer::files::prepare::human_bytes;
        for f in files.iter().take(FILES_SHOWN) {
            self.put(Line::new().text(format!("{INDENT}+ {} ({})", f.name, human(f.size))));
        }
        if files.len() > FILES_SHOWN {
            let rest = &files[FILES_SHOWN..];
            let bytes = rest.iter().map(|f| f.size).sum();
            self.put(Line::new().text(format!("{INDENT}+ {} more files ({})", rest.len(), human(bytes))));
        }
    }

    fn message(&mut self, m: &Message, t: &str) {
        let head = Line::new().with(Tone::Time, t).text("  ").who(self.author(m));
        let private = if m.to.is_some() { " [private]" } else { "" };
        // A text left empty because files say it all: no empty line for it.
        let files_only = |text: &str| text.is_empty() && !m.files.is_empty();
        match &m.body {
            Body::Chat { text } if files_only(text) => {
                let (n, bytes) = (m.files.len(), m.files.iter().map(|f| f.size).sum());
                let what = if n == 1 { "a file".to_string() } else { format!("{n} files") };
                let size = lanpeer::files::prepare::human_bytes(bytes);
                self.put(head.with(Tone::Private, private).text(format!(" shared {what} ({size}):")));
            }
            // A chat of several lines (pasted code, say) shows like an answer: its lines indented
            // under the name, not back at the margin where the times are.
            Body::Chat { text } if text.contains('\n') => {
                self.put(head.with(Tone::Private, private).text(":"));
                self.body(text);
            }
            Body::Chat { text } => self.put(head.with(Tone::Private, private).text(format!(": {text}"))),
            Body::Problem { title, body, private_answers } => {
                let quiz = match (*private_answers, m.from_verified) {
                    (false, _) => String::new(),
                    (true, _) if m.own => " (quiz: answers go to you only)".into(),
                    (true, Some(true)) => " (quiz: answers go to the teacher only)".into(),
                    (true, _) => {
                        format!(" (quiz: answers go to {} only, who is NOT the verified teacher)", m.from_label)
                    }
                };
                self.put(head.text(" posted problem ").with(Tone::Id, m.id.short()).text(format!("{quiz}: {title}")));
                if !body.is_empty() {
                    self.body(body);
                }
                self.put(
                    Line::new()
                        .text("          answer it with: /answer ")
                        .with(Tone::Id, m.id.short())
                        .text(" YOUR ANSWER"),
                );
            }
            Body::Answer { problem, text } => {
                let l = head.with(Tone::Private, private).text(" answered ").with(Tone::Id, problem.short());
                self.put(l.text(" (answer ").with(Tone::Id, m.id.short()).text("):"));
                if !files_only(text) {
                    self.body(text);
                }
            }
            Body::Feedback { answer, text } => {
                let l = head.with(Tone::Private, private).text(" on answer ").with(Tone::Id, answer.short());
                self.put(l.text(":"));
                if !files_only(text) {
                    self.body(text);
                }
            }
        }
        self.files(&m.files);
    }

    /// Earlier messages (`/history`, and the start of the prompt).
    pub fn history(&mut self, msgs: &[Message]) {
        if self.json {
            return self.json(history_json(msgs));
        }
        if msgs.is_empty() {
            return self.line("Nothing yet.");
        }
        self.line("Earlier in this room:");
        for m in msgs {
            let t = clock(m.sent_ms);
            self.message(m, &t);
        }
        self.line("---");
    }

    /// The answer to `/peers`.
    pub fn peers(&mut self, peers: &[PeerInfo]) {
        if self.json {
            return self.json(peers_json(peers));
        }
        if peers.is_empty() {
            return self.line("Nobody else is online yet.");
        }
        self.line(&format!("{} online:", peers.len()));
        for p in peers {
            let mark = role_mark(role(&p.props), p.verified).map(|m| format!("  {m}")).unwrap_or_default();
            let state = if p.state == lanpeer::PeerState::Connected { "" } else { "  (reconnecting)" };
            let (tone, name) = self.who(&p.label, p.id, false, None);
            let l = Line::new().text("  ").with(tone, format!("{name:<20}"));
            self.put(l.text(format!(" {}  {}{mark}{state}", p.id.short(), p.addr.ip())));
        }
    }

    /// The answer to `/problems`.
    pub fn problems(&mut self, list: &[ProblemView]) {
        if self.json {
            return self.json(problems_json(list));
        }
        if list.is_empty() {
            return self.line("No problems yet. Post one with /problem TITLE | BODY");
        }
        for p in list {
            if let Body::Problem { title, body, private_answers } = &p.problem.body {
                let quiz = if *private_answers { " (quiz)" } else { "" };
                let l = Line::new().text("problem ").with(Tone::Id, p.problem.id.short()).text(" by ");
                let by = self.who(&p.problem.from_label, p.problem.id.author, false, p.problem.from_verified);
                self.put(l.who(by).text(format!("{quiz}: {title}")));
                if !body.is_empty() {
                    self.body(body);
                }
            }
            for (a, fb) in &p.answers {
                if let Body::Answer { text, .. } = &a.body {
                    let l = Line::new().text("  answer ").with(Tone::Id, a.id.short()).text(" by ");
                    let by = self.author(a);
                    self.put(l.who(by).text(":"));
                    self.body(text);
                }
                for f in fb {
                    if let Body::Feedback { text, .. } = &f.body {
                        let by = self.author(f);
                        self.put(
                            Line::new()
                                .text("    feedback by ")
                                .who(by)
                                .text(format!(": {}", text.replace('\n', " / "))),
                        );
                    }
                }
            }
        }
    }

    /// What is attached for the next message (after `/attach`, and for `/attach` alone).
    pub fn attached(&mut self, files: &[lanpeer::protocol::FileRef]) {
        if self.json {
            return self.json(json!({"event": "attached", "files": files_json(files)}));
        }
        if files.is_empty() {
            return self.line("Nothing is attached. /attach PATH... attaches files or folders to your next message.");
        }
        let bytes = lanpeer::files::prepare::human_bytes(files.iter().map(|f| f.size).sum());
        let n = if files.len() == 1 { "1 file".to_string() } else { format!("{} files", files.len()) };
        self.line(&format!("Attached to your next message ({n}, {bytes}; /attach - drops them):"));
        self.files(files);
    }

    /// The answer to `/status`: who has answered `problem`, and who of those online has not.
    pub fn status(&mut self, problem: &Message, st: &lanpeer::exercises::Status) {
        let title = match &problem.body {
            Body::Problem { title, .. } => title.as_str(),
            _ => "",
        };
        if self.json {
            return self.json(status_json(problem, title, st));
        }
        let (answered, waiting) = (st.answered.len(), st.waiting.len());
        let by = self.who(&problem.from_label, problem.id.author, problem.own, problem.from_verified);
        let l = Line::new().text("problem ").with(Tone::Id, problem.id.short()).text(format!(" ({title}) by "));
        let not = match waiting {
            0 => String::new(),
            1 => ", 1 online has not".into(),
            n => format!(", {n} online have not"),
        };
        self.put(l.who(by).text(format!(": {answered} answered{not}")));
        let width = st.answered.iter().map(|s| s.latest.from_label.chars().count()).max().unwrap_or(0).min(30);
        for s in &st.answered {
            let a = &s.latest;
            let versions = if s.versions == 1 { "1 version ".to_string() } else { format!("{} versions", s.versions) };
            let feedback = match (s.feedback_on_latest, s.feedback) {
                (true, _) => "feedback given",
                (false, 0) => "no feedback yet",
                (false, _) => "feedback on an earlier version",
            };
            let files = match a.files.len() {
                0 => String::new(),
                1 => "  1 file".into(),
                n => format!("  {n} files"),
            };
            let (tone, name) = self.who(&a.from_label, a.id.author, a.own, None);
            let l = Line::new().text("  ").with(tone, format!("{name:<width$}"));
            let l = l.text("  ").with(Tone::Time, clock(a.sent_ms)).text("  answer ").with(Tone::Id, a.id.short());
            self.put(l.text(format!("  {versions}  {feedback}{files}")));
        }
        if answered == 0 {
            self.line("  nobody has answered yet");
        }
        if waiting > 0 {
            let names: Vec<&str> = st.waiting.iter().map(|p| p.label.as_str()).collect();
            self.put(Line::new().text(format!("  not answered yet: {}", names.join(", "))));
        }
    }

    /// The address of this peer's web page (`--web`).
    pub fn web(&mut self, url: &str) {
        if self.json {
            return self.json(json!({"event": "web", "url": url}));
        }
        self.line(&format!("This peer's web page: {url} (open it in a browser)"));
    }

    /// A line of this program for a person (none in `--json`): what it is doing.
    pub fn note(&mut self, text: &str) {
        if !self.json {
            self.put(Line::new().with(Tone::Hint, text));
        }
    }

    /// A mistake of the user, or an error of a command.
    pub fn error(&mut self, message: &str) {
        if self.json {
            return self.json(json!({"event": "error", "message": message}));
        }
        self.put(Line::new().with(Tone::Error, format!("! {message}")));
    }

    /// The help text.
    pub fn help(&mut self, text: &str) {
        if self.json {
            return self.json(json!({"event": "help", "text": text}));
        }
        self.line(text);
        if self.terminal {
            self.line(crate::input::TERMINAL_HELP);
        }
    }
}

#[cfg(test)]
mod tests {
    use lanpeer::{Body, Event, LeaveReason, Message, MsgId, PeerId, PeerInfo, PeerState, ProblemView};

    fn msg(author: u8, seq: u64, body: Body, to: Option<PeerId>, own: bool) -> Message {
        Message {
            id: MsgId { author: PeerId([author; 16]), seq },
            from_name: "Sam".into(),
            sent_ms: 1_700_000_000_123,
            to,
            body,
            own,
            files: vec![],
            from_label: "Sam".into(),
            from_role: None,
            from_verified: None,
        }
    }

    /// A stream whose bytes the test reads afterwards.
    #[derive(Clone, Default)]
    struct Shared(std::sync::Arc<std::sync::Mutex<Vec<u8>>>);

    impl std::io::Write for Shared {
        fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(b);
            Ok(b.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    fn teacher() -> PeerInfo {
        PeerInfo {
            id: PeerId([5; 16]),
            name: "Ms Rivera".into(),
            addr: "10.0.0.2:4000".parse().unwrap(),
            state: PeerState::Connected,
            last_seen_ms: 3,
            props: vec![("role".into(), "teacher".into())],
            verified: Some(true),
            label: "Ms Rivera".into(),
        }
    }

    fn ready() -> Event {
        Event::Ready {
            id: PeerId([9; 16]),
            name: "Ada".into(),
            room: "5B".into(),
            listen: "10.0.0.1:4001".parse().unwrap(),
            role: Some("teacher".into()),
            room_code: "5B-0909-0909-0909-0909-0909".into(),
        }
    }

    /// Every `--json` object of the CLI, as `Output` writes them, one per line: the public contract.
    fn all_objects() -> String {
        let p =
            msg(2, 1, Body::Problem { title: "Loops".into(), body: "a\nb".into(), private_answers: true }, None, true);
        let a = msg(3, 4, Body::Answer { problem: p.id, text: "x".into() }, Some(p.id.author), false);
        let f = msg(2, 2, Body::Feedback { answer: a.id, text: "ok".into() }, None, false);
        let c = msg(0xab, 7, Body::Chat { text: "<b>hi</b>".into() }, Some(PeerId([1; 16])), false);
        let teacher = teacher();
        let student = PeerInfo { props: vec![], state: PeerState::Reconnecting, ..teacher.clone() };
        let list = vec![ProblemView { problem: p.clone(), answers: vec![(a.clone(), vec![f.clone()])] }];
        let sink = Shared::default();
        let mut out = super::Output::to(true, Box::new(sink.clone()));
        for e in [
            ready(),
            Event::PeerJoined(teacher.clone()),
            Event::PeerLeft { id: student.id, name: "Lea".into(), reason: LeaveReason::Timeout },
            Event::Message(c.clone()),
            Event::Message(p.clone()),
            Event::Message(a.clone()),
            Event::Message(f.clone()),
            Event::Warning { message: "w".into() },
        ] {
            out.event(&e);
        }
        out.history(&[c, p, a, f]);
        out.peers(&[teacher, student]);
        out.problems(&list);
        out.problems(&[]);
        out.flush();
        assert!(!out.has_pending());
        String::from_utf8(sink.0.lock().unwrap().clone()).unwrap()
    }

    /// The objects as the CLI wrote them before it took them from `lanpeer::web::json` (plus
    /// `role` in `ready`): fields are only ever added, so each object now holds every one of
    /// these fields with the same value.
    const BEFORE: &str = r#"{"event":"ready","id":"09090909090909090909090909090909","listen":"10.0.0.1:4001","name":"Ada","role":"teacher","room":"5B"}
{"addr":"10.0.0.2:4000","event":"peer_joined","id":"05050505050505050505050505050505","last_seen_ms":3,"name":"Ms Rivera","role":"teacher","state":"connected"}
{"event":"peer_left","id":"05050505050505050505050505050505","name":"Lea","reason":"timeout"}
{"event":"chat","from":"abababababababababababababababab","from_name":"Sam","id":"abababababababababababababababab-7","own":false,"text":"<b>hi</b>","time_ms":1700000000123,"to":"01010101010101010101010101010101"}
{"body":"a\nb","event":"problem","from":"02020202020202020202020202020202","from_name":"Sam","id":"02020202020202020202020202020202-1","own":true,"private_answers":true,"time_ms":1700000000123,"title":"Loops","to":null}
{"event":"answer","from":"03030303030303030303030303030303","from_name":"Sam","id":"03030303030303030303030303030303-4","own":false,"problem_id":"02020202020202020202020202020202-1","text":"x","time_ms":1700000000123,"to":"02020202020202020202020202020202"}
{"answer_id":"03030303030303030303030303030303-4","event":"feedback","from":"02020202020202020202020202020202","from_name":"Sam","id":"02020202020202020202020202020202-2","own":false,"text":"ok","time_ms":1700000000123,"to":null}
{"event":"warning","message":"w"}
{"event":"history","messages":[{"event":"chat","from":"abababababababababababababababab","from_name":"Sam","id":"abababababababababababababababab-7","own":false,"text":"<b>hi</b>","time_ms":1700000000123,"to":"01010101010101010101010101010101"},{"body":"a\nb","event":"problem","from":"02020202020202020202020202020202","from_name":"Sam","id":"02020202020202020202020202020202-1","own":true,"private_answers":true,"time_ms":1700000000123,"title":"Loops","to":null},{"event":"answer","from":"03030303030303030303030303030303","from_name":"Sam","id":"03030303030303030303030303030303-4","own":false,"problem_id":"02020202020202020202020202020202-1","text":"x","time_ms":1700000000123,"to":"02020202020202020202020202020202"},{"answer_id":"03030303030303030303030303030303-4","event":"feedback","from":"02020202020202020202020202020202","from_name":"Sam","id":"02020202020202020202020202020202-2","own":false,"text":"ok","time_ms":1700000000123,"to":null}]}
{"event":"peers","peers":[{"addr":"10.0.0.2:4000","id":"05050505050505050505050505050505","last_seen_ms":3,"name":"Ms Rivera","role":"teacher","state":"connected"},{"addr":"10.0.0.2:4000","id":"05050505050505050505050505050505","last_seen_ms":3,"name":"Ms Rivera","role":null,"state":"reconnecting"}]}
{"event":"problems","problems":[{"answers":[{"event":"answer","feedback":[{"answer_id":"03030303030303030303030303030303-4","event":"feedback","from":"02020202020202020202020202020202","from_name":"Sam","id":"02020202020202020202020202020202-2","own":false,"text":"ok","time_ms":1700000000123,"to":null}],"from":"03030303030303030303030303030303","from_name":"Sam","id":"03030303030303030303030303030303-4","own":false,"problem_id":"02020202020202020202020202020202-1","text":"x","time_ms":1700000000123,"to":"02020202020202020202020202020202"}],"body":"a\nb","event":"problem","from":"02020202020202020202020202020202","from_name":"Sam","id":"02020202020202020202020202020202-1","own":true,"private_answers":true,"time_ms":1700000000123,"title":"Loops","to":null}]}
{"event":"problems","problems":[]}
"#;

    /// `text` with every clock time (`12:34:56`) replaced by `hh:mm:ss`: the lines' times are the
    /// local time of now or of the message, which no test fixes.
    fn without_times(text: &str) -> String {
        let b = text.as_bytes();
        let mut out = String::new();
        let mut i = 0;
        while i < b.len() {
            let is_time = b.len() - i >= 8
                && b[i..i + 8]
                    .iter()
                    .enumerate()
                    .all(|(k, c)| if k % 3 == 2 { *c == b':' } else { c.is_ascii_digit() });
            if is_time {
                out.push_str("hh:mm:ss");
                i += 8;
            } else {
                let c = text[i..].chars().next().unwrap();
                out.push(c);
                i += c.len_utf8();
            }
        }
        out
    }

    /// Every line for people that `Output` writes, for the same events as [`all_objects`].
    fn all_lines() -> String {
        let p =
            msg(2, 1, Body::Problem { title: "Loops".into(), body: "a\nb".into(), private_answers: true }, None, true);
        let a = msg(3, 4, Body::Answer { problem: p.id, text: "x\n  y".into() }, Some(p.id.author), false);
        let f = msg(2, 2, Body::Feedback { answer: a.id, text: "ok".into() }, None, false);
        let c = msg(0xab, 7, Body::Chat { text: "<b>hi</b>\x1b[2J".into() }, Some(PeerId([1; 16])), false);
        let open = msg(0xab, 8, Body::Chat { text: "to all".into() }, None, true);
        let code = msg(0xab, 9, Body::Chat { text: "fn f() {\n    g();\n}".into() }, None, false);
        let teacher = teacher();
        let student = PeerInfo {
            props: vec![],
            state: PeerState::Reconnecting,
            name: "Lea".into(),
            label: "Lea".into(),
            verified: None,
            ..teacher.clone()
        };
        let list = vec![ProblemView { problem: p.clone(), answers: vec![(a.clone(), vec![f.clone()])] }];
        // An impostor: the teacher's name and role, another key.
        let impostor = PeerInfo {
            id: PeerId([7; 16]),
            label: "Ms Rivera (07070707)".into(),
            verified: Some(false),
            ..teacher.clone()
        };
        let quiz = Message {
            from_name: "Ms Rivera".into(),
            from_label: "Ms Rivera (07070707)".into(),
            from_role: Some("teacher".into()),
            from_verified: Some(false),
            ..msg(7, 3, Body::Problem { title: "Quiz".into(), body: String::new(), private_answers: true }, None, false)
        };
        let real = Message {
            from_name: "Ms Rivera".into(),
            from_label: "Ms Rivera (05050505)".into(),
            from_role: Some("teacher".into()),
            from_verified: Some(true),
            ..msg(5, 3, Body::Problem { title: "Quiz".into(), body: String::new(), private_answers: true }, None, false)
        };
        let sink = Shared::default();
        let mut out = super::Output::to(false, Box::new(sink.clone()));
        for e in [
            ready(),
            Event::PeerJoined(teacher.clone()),
            Event::PeerJoined(impostor.clone()),
            Event::Message(quiz),
            Event::Message(real),
            Event::PeerJoined(student.clone()),
            Event::PeerLeft { id: student.id, name: "Lea".into(), reason: LeaveReason::Timeout },
            Event::PeerLeft { id: student.id, name: "Lea".into(), reason: LeaveReason::Left },
            Event::Message(c.clone()),
            Event::Message(open.clone()),
            Event::Message(code.clone()),
            Event::Message(p.clone()),
            Event::Message(a.clone()),
            Event::Message(f.clone()),
            Event::Warning { message: "w".into() },
        ] {
            out.event(&e);
        }
        out.history(&[c, p, a, f]);
        out.history(&[]);
        out.peers(&[teacher, impostor, student]);
        out.peers(&[]);
        out.problems(&list);
        out.problems(&[]);
        out.web("http://127.0.0.1:1/");
        out.error("bad");
        out.help("help text");
        out.flush();
        without_times(&String::from_utf8(sink.0.lock().unwrap().clone()).unwrap())
    }

    fn file(name: &str, size: u64) -> lanpeer::protocol::FileRef {
        lanpeer::protocol::FileRef { name: name.into(), size, sha256: [0xab; 32], chunks: [1; 32] }
    }

    /// Messages with files, files arriving, what is attached and a problem's status, for people.
    fn file_lines() -> String {
        let with = |m: Message, files: Vec<lanpeer::protocol::FileRef>| Message { files, ..m };
        let shared = with(msg(0xab, 1, Body::Chat { text: String::new() }, None, false), vec![file("main.py", 12)]);
        let folder: Vec<_> = (0..12).map(|i| file(&format!("src/f{i:02}.py"), 1000)).collect();
        let answer = msg(
            3,
            4,
            Body::Answer { problem: MsgId { author: PeerId([2; 16]), seq: 1 }, text: "".into() },
            None,
            false,
        );
        let answer = with(answer, folder.clone());
        let chat = with(
            msg(0xab, 2, Body::Chat { text: "see the data\nattached".into() }, None, true),
            vec![file("d.csv", 3 << 20)],
        );
        let sink = Shared::default();
        let mut out = super::Output::to(false, Box::new(sink.clone()));
        let dir = std::path::Path::new("/dl/5B/Sam (abababab)");
        for e in [
            Event::Message(shared.clone()),
            Event::Message(answer.clone()),
            Event::Message(chat),
            Event::File {
                message_id: shared.id,
                name: "main.py".into(),
                size: 12,
                sha256: [0; 32],
                path: dir.join("main (1).py"),
            },
        ] {
            out.event(&e);
        }
        for f in &folder {
            out.event(&Event::File {
                message_id: answer.id,
                name: f.name.clone(),
                size: f.size,
                sha256: [0; 32],
                path: dir.join(&f.name),
            });
        }
        out.attached(&folder[..2]);
        out.attached(&[]);
        let problem =
            msg(2, 1, Body::Problem { title: "Loops".into(), body: String::new(), private_answers: true }, None, true);
        let v1 = Message {
            from_label: "Lea".into(),
            ..msg(3, 2, Body::Answer { problem: problem.id, text: "1".into() }, None, false)
        };
        let v2 = with(
            Message {
                from_label: "Lea".into(),
                ..msg(3, 5, Body::Answer { problem: problem.id, text: "2".into() }, None, false)
            },
            vec![file("a.py", 1)],
        );
        let sam = msg(4, 1, Body::Answer { problem: problem.id, text: "s".into() }, None, false);
        let fb = msg(2, 3, Body::Feedback { answer: sam.id, text: "ok".into() }, None, true);
        let view = ProblemView { problem: problem.clone(), answers: vec![(v1, vec![]), (v2, vec![]), (sam, vec![fb])] };
        let bob = PeerInfo {
            id: PeerId([6; 16]),
            name: "Bob".into(),
            label: "Bob".into(),
            props: vec![],
            verified: None,
            ..teacher()
        };
        out.status(&problem, &lanpeer::exercises::status(&view, &[bob]));
        out.status(
            &problem,
            &lanpeer::exercises::status(&ProblemView { problem: problem.clone(), answers: vec![] }, &[]),
        );
        out.flush();
        without_times(&String::from_utf8(sink.0.lock().unwrap().clone()).unwrap())
    }

    #[test]
    fn files_show_under_their_message_and_arrive_in_few_lines() {
        let got = file_lines();
        assert_eq!(got, FILE_LINES, "the lines of files changed; now:\n{got}");
    }

    const FILE_LINES: &str = r#"hh:mm:ss  Sam shared a file (12 bytes):
          + main.py (12 bytes)
hh:mm:ss  Sam answered 02020202-1 (answer 03030303-4):
          + src/f00.py (1000 bytes)
          + src/f01.py (1000 bytes)
          + src/f02.py (1000 bytes)
          + src/f03.py (1000 bytes)
          + src/f04.py (1000 bytes)
          + src/f05.py (1000 bytes)
          + src/f06.py (1000 bytes)
          + src/f07.py (1000 bytes)
          + src/f08.py (1000 bytes)
          + src/f09.py (1000 bytes)
          + 2 more files (2.0 KB)
hh:mm:ss  Sam (you):
          see the data
          attached
          + d.csv (3.0 MB)
hh:mm:ss  * files from Sam are saved in /dl/5B/Sam (abababab)
hh:mm:ss  * main.py (12 bytes) from Sam is here, saved as main (1).py (the name was taken)
hh:mm:ss  * all 12 files from Sam are here (11.7 KB)
Attached to your next message (2 files, 2.0 KB; /attach - drops them):
          + src/f00.py (1000 bytes)
          + src/f01.py (1000 bytes)
Nothing is attached. /attach PATH... attaches files or folders to your next message.
problem 02020202-1 (Loops) by Sam (you): 2 answered, 1 online has not
  Lea  hh:mm:ss  answer 03030303-5  2 versions  no feedback yet  1 file
  Sam  hh:mm:ss  answer 04040404-1  1 version   feedback given
  not answered yet: Bob
problem 02020202-1 (Loops) by Sam (you): 0 answered
  nobody has answered yet
"#;

    #[test]
    fn lines_for_people_are_unchanged() {
        let now = all_lines();
        assert_eq!(now, LINES, "the lines for people changed; now:\n{now}");
    }

    /// The lines as `Output` writes them (times aside).
    const LINES: &str = r#"You are Ada (09090909), as teacher in room "5B", reachable at 10.0.0.1:4001. Type /help for the commands.
Room code for the students (write it on the board): 5B-0909-0909-0909-0909-0909   they start with: lanpeer --teacher 5B-0909-0909-0909-0909-0909
hh:mm:ss  * Ms Rivera joined (10.0.0.2, teacher, id 05050505)
hh:mm:ss  * Ms Rivera (07070707) joined (10.0.0.2, says it is the teacher: UNVERIFIED, id 07070707)
hh:mm:ss  Ms Rivera (07070707) [UNVERIFIED teacher] posted problem 07070707-3 (quiz: answers go to Ms Rivera (07070707) only, who is NOT the verified teacher): Quiz
          answer it with: /answer 07070707-3 YOUR ANSWER
hh:mm:ss  Ms Rivera (05050505) [teacher] posted problem 05050505-3 (quiz: answers go to the teacher only): Quiz
          answer it with: /answer 05050505-3 YOUR ANSWER
hh:mm:ss  * Lea joined (10.0.0.2, id 05050505)
hh:mm:ss  * Lea is gone (no sign of life)
hh:mm:ss  * Lea left
hh:mm:ss  Sam [private]: <b>hi</b>�[2J
hh:mm:ss  Sam (you): to all
hh:mm:ss  Sam:
          fn f() {
              g();
          }
hh:mm:ss  Sam (you) posted problem 02020202-1 (quiz: answers go to you only): Loops
          a
          b
          answer it with: /answer 02020202-1 YOUR ANSWER
hh:mm:ss  Sam [private] answered 02020202-1 (answer 03030303-4):
          x
            y
hh:mm:ss  Sam on answer 03030303-4:
          ok
hh:mm:ss  ! w
Earlier in this room:
hh:mm:ss  Sam [private]: <b>hi</b>�[2J
hh:mm:ss  Sam (you) posted problem 02020202-1 (quiz: answers go to you only): Loops
          a
          b
          answer it with: /answer 02020202-1 YOUR ANSWER
hh:mm:ss  Sam [private] answered 02020202-1 (answer 03030303-4):
          x
            y
hh:mm:ss  Sam on answer 03030303-4:
          ok
---
Nothing yet.
3 online:
  Ms Rivera            05050505  10.0.0.2  teacher
  Ms Rivera (07070707) 07070707  10.0.0.2  says it is the teacher: UNVERIFIED
  Lea                  05050505  10.0.0.2  (reconnecting)
Nobody else is online yet.
problem 02020202-1 by Sam (quiz): Loops
          a
          b
  answer 03030303-4 by Sam:
          x
            y
    feedback by Sam: ok
No problems yet. Post one with /problem TITLE | BODY
This peer's web page: http://127.0.0.1:1/ (open it in a browser)
! bad
help text
"#;

    /// Does `new` hold everything `old` holds (every field, with the same value; in arrays, item
    /// by item)?
    fn holds(old: &serde_json::Value, new: &serde_json::Value) -> bool {
        use serde_json::Value;
        match (old, new) {
            (Value::Object(o), Value::Object(n)) => o.iter().all(|(k, v)| n.get(k).is_some_and(|nv| holds(v, nv))),
            (Value::Array(o), Value::Array(n)) => o.len() == n.len() && o.iter().zip(n).all(|(a, b)| holds(a, b)),
            (o, n) => o == n,
        }
    }

    #[test]
    fn json_objects_only_gain_fields() {
        let now = all_objects();
        assert_eq!(now.lines().count(), BEFORE.lines().count());
        for (old, new) in BEFORE.lines().zip(now.lines()) {
            let (o, n): (serde_json::Value, serde_json::Value) =
                (serde_json::from_str(old).unwrap(), serde_json::from_str(new).unwrap());
            assert!(holds(&o, &n), "a --json field was lost or changed:\nbefore {old}\nnow    {new}");
        }
        // What was added.
        assert!(now.contains(r#""room_code":"5B-0909-0909-0909-0909-0909""#));
        assert!(now.contains(r#""verified":true"#) && now.contains(r#""label":"Ms Rivera""#));
        assert!(now.contains(r#""from_label":"Sam""#) && now.contains(r#""from_verified":null"#));
        assert!(now.contains(r#""files":[]"#) && now.contains(r#""from_role":null"#));
        // A changed value is caught.
        let first = BEFORE.lines().next().unwrap();
        let changed = first.replace("Ada", "Bob");
        assert!(!holds(&serde_json::from_str(first).unwrap(), &serde_json::from_str(&changed).unwrap()));
    }

    #[test]
    fn lines_wait_in_the_buffer_until_a_flush_or_a_full_buffer() {
        let sink = Shared::default();
        let mut out = super::Output::to(true, Box::new(sink.clone()));
        let chat = |seq| Event::Message(msg(1, seq, Body::Chat { text: "x".repeat(100) }, None, false));
        out.event(&chat(0));
        assert!(out.has_pending());
        assert!(sink.0.lock().unwrap().is_empty(), "written before the flush");
        out.flush();
        assert!(!out.has_pending());
        let one = sink.0.lock().unwrap().len();
        assert!(one > 100 && sink.0.lock().unwrap().ends_with(b"\n"));
        // A long burst goes out in pieces of whole lines, without a flush.
        let n = 3 * super::WRITE_AT / one;
        for seq in 1..=n as u64 {
            out.event(&chat(seq));
        }
        let written = sink.0.lock().unwrap().clone();
        assert!(written.len() > 2 * super::WRITE_AT, "{} bytes written", written.len());
        assert!(written.ends_with(b"\n"));
        out.flush();
        let all = String::from_utf8(sink.0.lock().unwrap().clone()).unwrap();
        assert_eq!(all.lines().count(), n + 1);
        for (i, l) in all.lines().enumerate() {
            let v: serde_json::Value = serde_json::from_str(l).unwrap();
            assert_eq!(v["id"], format!("{}-{i}", "01".repeat(16)));
        }
    }

    #[test]
    fn escape_sequences_are_defused() {
        assert_eq!(super::printable("a\x1b[2Jb\nc\td\r"), "a\u{fffd}[2Jb\nc\td\u{fffd}");
        assert!(matches!(super::printable("plain"), std::borrow::Cow::Borrowed(_)));
        assert_eq!(super::printable("a\u{202E}b\x07"), "a<U+202E>b\u{fffd}");
        assert_eq!(super::printable("👩\u{200D}🏫 été"), "👩\u{200D}🏫 été");
    }

    /// A one-line chat padded to the reader's width, so that its tail would start a line of the
    /// terminal's own: broken before the last column, its rest indented.
    #[test]
    fn a_line_wider_than_the_terminal_goes_on_indented() {
        let sink = Shared::default();
        let mut out = super::Output::to(false, Box::new(sink.clone())).width(60);
        for pad in 0..70 {
            let text = format!("hi{}{FORGED}", " ".repeat(pad));
            out.event(&Event::Message(msg(0xab, pad as u64, Body::Chat { text }, None, false)));
            let body = format!("x{}{FORGED}", "y".repeat(pad));
            out.event(&Event::Message(msg(
                0xab,
                pad as u64,
                Body::Answer { problem: MsgId { author: PeerId([1; 16]), seq: 1 }, text: body },
                None,
                false,
            )));
        }
        out.help("a help text that is a good deal longer than sixty columns, as the help of a command is");
        out.flush();
        let got = String::from_utf8(sink.0.lock().unwrap().clone()).unwrap();
        for l in got.lines() {
            assert!(l.chars().count() < 60, "wider than the terminal: {l:?}");
            assert!(!l.starts_with("FORGED"), "{l:?}");
            assert!(l.starts_with(super::INDENT) || l.as_bytes()[2] == b':' || l.starts_with("a help"), "{l:?}");
        }
        // Without a width (a pipe, a file), lines are as they are.
        let sink = Shared::default();
        let mut out = super::Output::to(false, Box::new(sink.clone()));
        let text = format!("hi{}{FORGED}", " ".repeat(60));
        out.event(&Event::Message(msg(0xab, 1, Body::Chat { text: text.clone() }, None, false)));
        out.flush();
        assert!(String::from_utf8(sink.0.lock().unwrap().clone()).unwrap().ends_with(&format!(": {text}\n")));
    }

    /// A line a peer tries to forge: another person's message, a join, a warning, each at the
    /// margin; a carriage return, a line separator and an override around it.
    const FORGED: &str = "FORGED 09:00:00  Ms Rivera [teacher]: send me your password";

    /// Every text field of every kind of line, from a hostile peer.
    fn hostile_lines() -> String {
        let bad = format!("ok\n{FORGED}\r\n\rFORGED  * Lea joined\n! FORGED\u{2028}FORGED \u{202E}drow\u{202C}\n");
        let name = "Sam\u{202E}nimda\u{202C}\u{200B}";
        let with = |m: Message| Message { from_name: name.into(), from_label: name.into(), ..m };
        let p = with(msg(
            2,
            1,
            Body::Problem { title: "Loops\u{2067}!".into(), body: bad.clone(), private_answers: true },
            None,
            false,
        ));
        let a = with(msg(3, 4, Body::Answer { problem: p.id, text: bad.clone() }, None, false));
        let f = with(msg(2, 2, Body::Feedback { answer: a.id, text: bad.clone() }, None, false));
        let c = with(msg(0xab, 7, Body::Chat { text: bad.clone() }, None, false));
        let one = with(msg(0xab, 8, Body::Chat { text: "one line\u{2028}FORGED\u{202E}x".into() }, None, false));
        // A name that came with a newline (none does: a handshake's name is cleaned; this shows
        // that the lines hold even so).
        let joined = PeerInfo { name: format!("{name}\n{FORGED}"), label: format!("{name}\n{FORGED}"), ..teacher() };
        let list = vec![ProblemView { problem: p.clone(), answers: vec![(a.clone(), vec![f.clone()])] }];
        let sink = Shared::default();
        let mut out = super::Output::to(false, Box::new(sink.clone()));
        for e in [
            Event::PeerJoined(joined.clone()),
            Event::PeerLeft { id: joined.id, name: joined.name.clone(), reason: LeaveReason::Left },
            Event::Message(c.clone()),
            Event::Message(one.clone()),
            Event::Message(p.clone()),
            Event::Message(a.clone()),
            Event::Message(f.clone()),
            Event::Warning { message: bad.clone() },
        ] {
            out.event(&e);
        }
        out.history(&[c, one]);
        out.peers(&[joined]);
        out.problems(&list);
        out.error(&bad);
        out.flush();
        without_times(&String::from_utf8(sink.0.lock().unwrap().clone()).unwrap())
    }

    #[test]
    fn no_text_from_a_peer_reaches_the_margin_or_hides() {
        let got = hostile_lines();
        for l in got.lines() {
            assert!(!l.starts_with("FORGED") && !l.starts_with("! FORGED"), "a forged line at the margin: {l:?}");
            assert!(
                !l.chars().any(|c| c.is_control() || lanpeer::text::is_hidden_format(c)),
                "a control or hidden character: {l:?}"
            );
        }
        assert_eq!(got, HOSTILE, "the hostile lines changed; now:\n{got}");
    }

    /// [`hostile_lines`] as shown (times aside): every forged line indented under its author's.
    const HOSTILE: &str = r#"hh:mm:ss  * Sam<U+202E>nimda<U+202C><U+200B>
          FORGED hh:mm:ss  Ms Rivera [teacher]: send me your password joined (10.0.0.2, teacher, id 05050505)
hh:mm:ss  * Sam<U+202E>nimda<U+202C><U+200B>
          FORGED hh:mm:ss  Ms Rivera [teacher]: send me your password left
hh:mm:ss  Sam<U+202E>nimda<U+202C><U+200B>:
          ok
          FORGED hh:mm:ss  Ms Rivera [teacher]: send me your password
          �FORGED  * Lea joined
          ! FORGED<U+2028>FORGED <U+202E>drow<U+202C>
hh:mm:ss  Sam<U+202E>nimda<U+202C><U+200B>: one line<U+2028>FORGED<U+202E>x
hh:mm:ss  Sam<U+202E>nimda<U+202C><U+200B> posted problem 02020202-1 (quiz: answers go to Sam<U+202E>nimda<U+202C><U+200B> only, who is NOT the verified teacher): Loops<U+2067>!
          ok
          FORGED hh:mm:ss  Ms Rivera [teacher]: send me your password
          �FORGED  * Lea joined
          ! FORGED<U+2028>FORGED <U+202E>drow<U+202C>
          answer it with: /answer 02020202-1 YOUR ANSWER
hh:mm:ss  Sam<U+202E>nimda<U+202C><U+200B> answered 02020202-1 (answer 03030303-4):
          ok
          FORGED hh:mm:ss  Ms Rivera [teacher]: send me your password
          �FORGED  * Lea joined
          ! FORGED<U+2028>FORGED <U+202E>drow<U+202C>
hh:mm:ss  Sam<U+202E>nimda<U+202C><U+200B> on answer 03030303-4:
          ok
          FORGED hh:mm:ss  Ms Rivera [teacher]: send me your password
          �FORGED  * Lea joined
          ! FORGED<U+2028>FORGED <U+202E>drow<U+202C>
hh:mm:ss  ! ok
          FORGED hh:mm:ss  Ms Rivera [teacher]: send me your password�
          �FORGED  * Lea joined
          ! FORGED<U+2028>FORGED <U+202E>drow<U+202C>
          
Earlier in this room:
hh:mm:ss  Sam<U+202E>nimda<U+202C><U+200B>:
          ok
          FORGED hh:mm:ss  Ms Rivera [teacher]: send me your password
          �FORGED  * Lea joined
          ! FORGED<U+2028>FORGED <U+202E>drow<U+202C>
hh:mm:ss  Sam<U+202E>nimda<U+202C><U+200B>: one line<U+2028>FORGED<U+202E>x
---
1 online:
  Sam<U+202E>nimda<U+202C><U+200B>
          FORGED hh:mm:ss  Ms Rivera [teacher]: send me your password 05050505  10.0.0.2  teacher
problem 02020202-1 by Sam<U+202E>nimda<U+202C><U+200B> (quiz): Loops<U+2067>!
          ok
          FORGED hh:mm:ss  Ms Rivera [teacher]: send me your password
          �FORGED  * Lea joined
          ! FORGED<U+2028>FORGED <U+202E>drow<U+202C>
  answer 03030303-4 by Sam<U+202E>nimda<U+202C><U+200B>:
          ok
          FORGED hh:mm:ss  Ms Rivera [teacher]: send me your password
          �FORGED  * Lea joined
          ! FORGED<U+2028>FORGED <U+202E>drow<U+202C>
    feedback by Sam<U+202E>nimda<U+202C><U+200B>: ok / FORGED hh:mm:ss  Ms Rivera [teacher]: send me your password� / �FORGED  * Lea joined / ! FORGED<U+2028>FORGED <U+202E>drow<U+202C> / 
! ok
          FORGED hh:mm:ss  Ms Rivera [teacher]: send me your password�
          �FORGED  * Lea joined
          ! FORGED<U+2028>FORGED <U+202E>drow<U+202C>
          
"#;
}
