//! How events reach the user: one JSON object per line (`--json`, the public contract of
//! scripts and tests: fields are only ever added), or lines a person reads.

use std::io::Write;
use std::time::{SystemTime, UNIX_EPOCH};

use lanpeer::{Body, Event, Message, PeerInfo, ProblemView};
use serde_json::{Value, json};

/// The output mode and the stream it writes to.
pub struct Output {
    json: bool,
    out: std::io::BufWriter<std::io::Stdout>,
}

/// `s` with every control character but newline and tab replaced by `�`.
pub fn printable(s: &str) -> std::borrow::Cow<'_, str> {
    if s.chars().all(|c| !c.is_control() || c == '\n' || c == '\t') {
        return s.into();
    }
    s.chars().map(|c| if c.is_control() && c != '\n' && c != '\t' { '\u{fffd}' } else { c }).collect::<String>().into()
}

fn role(props: &[(String, String)]) -> Option<&str> {
    props.iter().find(|(k, _)| k == "role").map(|(_, v)| v.as_str())
}

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

fn indent(text: &str) -> String {
    text.lines().map(|l| format!("          {l}")).collect::<Vec<_>>().join("\n")
}

/// The `--json` object of a message.
pub fn message_json(m: &Message) -> Value {
    let mut v = match &m.body {
        Body::Chat { text } => json!({"event": "chat", "text": text}),
        Body::Problem { title, body, private_answers } => {
            json!({"event": "problem", "title": title, "body": body, "private_answers": private_answers})
        }
        Body::Answer { problem, text } => json!({"event": "answer", "problem_id": problem.to_string(), "text": text}),
        Body::Feedback { answer, text } => json!({"event": "feedback", "answer_id": answer.to_string(), "text": text}),
    };
    let o = v.as_object_mut().expect("object");
    o.insert("id".into(), json!(m.id.to_string()));
    o.insert("from".into(), json!(m.id.author.to_string()));
    o.insert("from_name".into(), json!(m.from_name));
    o.insert("to".into(), json!(m.to.map(|t| t.to_string())));
    o.insert("time_ms".into(), json!(m.sent_ms));
    o.insert("own".into(), json!(m.own));
    v
}

fn peer_json(p: &PeerInfo) -> Value {
    json!({
        "id": p.id.to_string(),
        "name": p.name,
        "addr": p.addr.to_string(),
        "state": p.state.as_str(),
        "last_seen_ms": p.last_seen_ms,
        "role": role(&p.props),
    })
}

impl Output {
    /// Output to stdout, as JSON lines or for people.
    pub fn new(json: bool) -> Self {
        Output { json, out: std::io::BufWriter::new(std::io::stdout()) }
    }

    /// One line for people. Control characters from peers (terminal escape sequences, say) are
    /// shown as `�`, so a message can never drive the reader's terminal.
    fn line(&mut self, s: &str) {
        let _ = writeln!(self.out, "{}", printable(s));
    }

    fn json(&mut self, v: Value) {
        let _ = serde_json::to_writer(&mut self.out, &v);
        let _ = self.out.write_all(b"\n");
    }

    /// Write out what is buffered.
    pub fn flush(&mut self) {
        let _ = self.out.flush();
    }

    /// One event.
    pub fn event(&mut self, e: &Event) {
        if self.json {
            let v = match e {
                Event::Ready { id, name, room, listen } => {
                    json!({"event": "ready", "id": id.to_string(), "name": name, "room": room, "listen": listen.to_string()})
                }
                Event::PeerJoined(p) => {
                    let mut v = peer_json(p);
                    v.as_object_mut().expect("object").insert("event".into(), json!("peer_joined"));
                    v
                }
                Event::PeerLeft { id, name, reason } => {
                    json!({"event": "peer_left", "id": id.to_string(), "name": name, "reason": reason.as_str()})
                }
                Event::Message(m) => message_json(m),
                Event::Warning { message } => json!({"event": "warning", "message": message}),
            };
            return self.json(v);
        }
        let t = clock(now_ms());
        match e {
            Event::Ready { id, name, room, listen } => {
                self.line(&format!(
                    "You are {name} ({}) in room \"{room}\", reachable at {listen}. Type /help for the commands.",
                    id.short()
                ));
            }
            Event::PeerJoined(p) => {
                let teacher = if role(&p.props) == Some("teacher") { ", teacher" } else { "" };
                self.line(&format!("{t}  * {} joined ({}{teacher}, id {})", p.name, p.addr.ip(), p.id.short()))
            }
            Event::PeerLeft { name, reason, .. } => {
                let why = match reason {
                    lanpeer::LeaveReason::Left => "left",
                    lanpeer::LeaveReason::Timeout => "is gone (no sign of life)",
                    lanpeer::LeaveReason::Disconnected => "is gone (connection lost)",
                    lanpeer::LeaveReason::Restarted => "restarted",
                };
                self.line(&format!("{t}  * {name} {why}"))
            }
            Event::Warning { message } => self.line(&format!("{t}  ! {message}")),
            Event::Message(m) => self.message(m, &t),
        }
    }

    fn message(&mut self, m: &Message, t: &str) {
        let who = if m.own { format!("{} (you)", m.from_name) } else { m.from_name.clone() };
        let private = if m.to.is_some() { " [private]" } else { "" };
        match &m.body {
            Body::Chat { text } => self.line(&format!("{t}  {who}{private}: {text}")),
            Body::Problem { title, body, private_answers } => {
                let quiz = if *private_answers { " (quiz: answers go to the author only)" } else { "" };
                self.line(&format!("{t}  {who} posted problem {}{quiz}: {title}", m.id.short()));
                if !body.is_empty() {
                    self.line(&indent(body));
                }
                self.line(&format!("          answer it with: /answer {} YOUR ANSWER", m.id.short()));
            }
            Body::Answer { problem, text } => {
                self.line(&format!("{t}  {who}{private} answered {} (answer {}):", problem.short(), m.id.short()));
                self.line(&indent(text));
            }
            Body::Feedback { answer, text } => {
                self.line(&format!("{t}  {who}{private} on answer {}:", answer.short()));
                self.line(&indent(text));
            }
        }
    }

    /// Earlier messages (`/history`, and the start of the prompt).
    pub fn history(&mut self, msgs: &[Message]) {
        if self.json {
            return self
                .json(json!({"event": "history", "messages": msgs.iter().map(message_json).collect::<Vec<_>>()}));
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
            return self.json(json!({"event": "peers", "peers": peers.iter().map(peer_json).collect::<Vec<_>>()}));
        }
        if peers.is_empty() {
            return self.line("Nobody else is online yet.");
        }
        self.line(&format!("{} online:", peers.len()));
        for p in peers {
            let teacher = if role(&p.props) == Some("teacher") { "  teacher" } else { "" };
            let state = if p.state == lanpeer::PeerState::Connected { "" } else { "  (reconnecting)" };
            self.line(&format!("  {:<20} {}  {}{teacher}{state}", p.name, p.id.short(), p.addr.ip()));
        }
    }

    /// The answer to `/problems`.
    pub fn problems(&mut self, list: &[ProblemView]) {
        if self.json {
            let v: Vec<Value> = list
                .iter()
                .map(|p| {
                    let mut pv = message_json(&p.problem);
                    let answers: Vec<Value> = p
                        .answers
                        .iter()
                        .map(|(a, fb)| {
                            let mut av = message_json(a);
                            av["feedback"] = Value::Array(fb.iter().map(message_json).collect());
                            av
                        })
                        .collect();
                    pv["answers"] = Value::Array(answers);
                    pv
                })
                .collect();
            return self.json(json!({"event": "problems", "problems": v}));
        }
        if list.is_empty() {
            return self.line("No problems yet. Post one with /problem TITLE | BODY");
        }
        for p in list {
            if let Body::Problem { title, body, private_answers } = &p.problem.body {
                let quiz = if *private_answers { " (quiz)" } else { "" };
                self.line(&format!("problem {} by {}{quiz}: {title}", p.problem.id.short(), p.problem.from_name));
                if !body.is_empty() {
                    self.line(&indent(body));
                }
            }
            for (a, fb) in &p.answers {
                if let Body::Answer { text, .. } = &a.body {
                    self.line(&format!("  answer {} by {}:", a.id.short(), a.from_name));
                    self.line(&indent(text));
                }
                for f in fb {
                    if let Body::Feedback { text, .. } = &f.body {
                        self.line(&format!("    feedback by {}: {}", f.from_name, text.replace('\n', " / ")));
                    }
                }
            }
        }
    }

    /// The address of this peer's web page (`--web`).
    pub fn web(&mut self, url: &str) {
        if self.json {
            return self.json(json!({"event": "web", "url": url}));
        }
        self.line(&format!("This peer's web page: {url} (open it in a browser)"));
    }

    /// A mistake of the user, or an error of a command.
    pub fn error(&mut self, message: &str) {
        if self.json {
            return self.json(json!({"event": "error", "message": message}));
        }
        self.line(&format!("! {message}"));
    }

    /// The help text.
    pub fn help(&mut self, text: &str) {
        if self.json {
            return self.json(json!({"event": "help", "text": text}));
        }
        self.line(text);
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn escape_sequences_are_defused() {
        assert_eq!(super::printable("a\x1b[2Jb\nc\td\r"), "a\u{fffd}[2Jb\nc\td\u{fffd}");
        assert!(matches!(super::printable("plain"), std::borrow::Cow::Borrowed(_)));
    }
}
