//! `lanpeer export` and `lanpeer history`: read a peer's history (even while the peer runs: its
//! journal is only ever appended to, and a reader stops before a group being written) and write
//! it for the teacher.
//!
//! What the texts hold is written as it is, with two exceptions for the reader's sake: two
//! authors of one name are told apart (`Sam (6d81c34e)`, in an added `author_label`), and a CSV
//! cell that a spreadsheet would run as a formula is written as text ([`cell`]): an export is
//! opened by the teacher, and its texts were typed by whoever was in the room.

use std::borrow::Cow;
use std::collections::{HashMap, HashSet};
use std::io::Write;
use std::path::Path;

use lanpeer::exercises::Exercises;
use lanpeer::store::Store;
use lanpeer::{Body, Error, Message, PeerId, ProblemView};
use serde_json::{Value, json};

use crate::output::Output;

/// Output formats of `export`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Format {
    /// One row per problem, answer and feedback.
    Csv,
    /// Problems, each with its answers, each with its feedback.
    Json,
}

pub(crate) fn time(ms: u64) -> String {
    use chrono::TimeZone;
    match chrono::Local.timestamp_millis_opt(ms as i64) {
        chrono::LocalResult::Single(t) => t.to_rfc3339_opts(chrono::SecondsFormat::Secs, false),
        _ => String::new(),
    }
}

fn text_of(m: &Message) -> &str {
    match &m.body {
        Body::Chat { text } | Body::Answer { text, .. } | Body::Feedback { text, .. } => text,
        Body::Problem { body, .. } => body,
    }
}

fn item(m: &Message) -> Value {
    json!({
        "id": m.id.to_string(),
        "author": m.id.author.to_string(),
        "author_name": m.from_name,
        "author_label": m.from_label,
        "time": time(m.sent_ms),
        "time_ms": m.sent_ms,
        "text": text_of(m),
    })
}

/// Each message's `from_label`: its author's name, with the start of the id when another author
/// of the same messages goes by that name (without case), as the prompt tells two peers apart.
fn label_all<'a>(msgs: impl IntoIterator<Item = &'a mut Message>) {
    let msgs: Vec<&mut Message> = msgs.into_iter().collect();
    let mut authors: HashMap<String, HashSet<PeerId>> = HashMap::new();
    for m in &msgs {
        authors.entry(m.from_name.to_lowercase()).or_default().insert(m.id.author);
    }
    for m in msgs {
        let shared = authors.get(&m.from_name.to_lowercase()).is_some_and(|a| a.len() > 1);
        m.from_label = if shared { lanpeer::event::label(&m.from_name, &m.id.author) } else { m.from_name.clone() };
    }
}

/// A CSV cell as a spreadsheet takes it: as text. A cell that a spreadsheet would run as a
/// formula (one that starts with `=`, `+`, `-` or `@`, after any white space, or that starts with
/// a tab or a carriage return; and, to be safe, one that starts with the full-width forms of
/// those four signs) gets a single quote in front, as OWASP advises for CSV injection; every
/// other cell is written as it is. (Every cell is quoted as well, so that a `;` or a `,`
/// in a text never starts a cell of its own, whichever separator the spreadsheet splits on.)
pub(crate) fn cell(s: &str) -> Cow<'_, str> {
    let formula = s.starts_with(['\t', '\r'])
        || s.trim_start().starts_with(['=', '+', '-', '@'])
        || s.trim_start().starts_with(['\u{FF1D}', '\u{FF0B}', '\u{FF0D}', '\u{FF20}']);
    if formula { Cow::Owned(format!("'{s}")) } else { Cow::Borrowed(s) }
}

/// The exercises of a data dir, optionally one problem only (full id or `<prefix>-<seq>`), their
/// authors labelled as in [`label_all`].
pub(crate) fn problems(dir: &Path, room: Option<&str>, problem: Option<&str>) -> Result<Vec<ProblemView>, Error> {
    let store = Store::open_readonly(dir, room)?;
    let mut ex = Exercises::default();
    for s in store.exercises() {
        ex.record(&s.message);
    }
    let view = ex.view();
    let mut view: Vec<ProblemView> = match problem {
        None => view,
        Some(p) => {
            let id = ex.find_problem(p)?;
            view.into_iter().filter(|v| v.problem.id == id).collect()
        }
    };
    label_all(view.iter_mut().flat_map(|p| {
        let answers = p.answers.iter_mut().flat_map(|(a, fb)| std::iter::once(a).chain(fb.iter_mut()));
        std::iter::once(&mut p.problem).chain(answers)
    }));
    Ok(view)
}

/// Write the problems with every answer and its feedback to stdout.
pub fn export(dir: &Path, room: Option<&str>, format: Format, problem: Option<&str>) -> Result<(), Error> {
    let list = problems(dir, room, problem)?;
    let out = std::io::stdout();
    let mut out = out.lock();
    let io = |e: std::io::Error| Error::Storage(format!("cannot write the export: {e}"));
    match format {
        Format::Json => {
            let v: Vec<Value> = list
                .iter()
                .map(|p| {
                    let mut pv = item(&p.problem);
                    if let Body::Problem { title, private_answers, .. } = &p.problem.body {
                        pv["title"] = json!(title);
                        pv["body"] = pv["text"].clone();
                        pv["private_answers"] = json!(private_answers);
                    }
                    pv["answers"] = p
                        .answers
                        .iter()
                        .map(|(a, fb)| {
                            let mut av = item(a);
                            av["feedback"] = fb.iter().map(item).collect();
                            av
                        })
                        .collect();
                    pv
                })
                .collect();
            serde_json::to_writer_pretty(&mut out, &v).map_err(|e| io(e.into()))?;
            writeln!(out).map_err(io)?;
        }
        Format::Csv => {
            let mut w = csv::WriterBuilder::new().quote_style(csv::QuoteStyle::Always).from_writer(out);
            let csv_err = |e: csv::Error| Error::Storage(format!("cannot write the export: {e}"));
            w.write_record([
                "problem_id",
                "problem_title",
                "kind",
                "id",
                "answer_id",
                "author_id",
                "author_name",
                "time",
                "text",
                "author_label",
            ])
            .map_err(csv_err)?;
            for p in &list {
                let title = match &p.problem.body {
                    Body::Problem { title, .. } => title.as_str(),
                    _ => "",
                };
                let pid = p.problem.id.to_string();
                let row = |kind: &str, m: &Message, answer: &str| {
                    [
                        pid.clone(),
                        title.to_string(),
                        kind.to_string(),
                        m.id.to_string(),
                        answer.to_string(),
                        m.id.author.to_string(),
                        m.from_name.clone(),
                        time(m.sent_ms),
                        text_of(m).to_string(),
                        m.from_label.clone(),
                    ]
                    .map(|c| cell(&c).into_owned())
                };
                w.write_record(row("problem", &p.problem, "")).map_err(csv_err)?;
                for (a, fb) in &p.answers {
                    let aid = a.id.to_string();
                    w.write_record(row("answer", a, &aid)).map_err(csv_err)?;
                    for f in fb {
                        w.write_record(row("feedback", f, &aid)).map_err(csv_err)?;
                    }
                }
            }
            w.flush().map_err(io)?;
        }
    }
    Ok(())
}

/// Print the recent messages as the prompt shows them (or as one JSON `history` event).
pub fn history(dir: &Path, room: Option<&str>, limit: usize, json: bool) -> Result<(), Error> {
    let store = Store::open_readonly(dir, room)?;
    let mut msgs: Vec<Message> = store.history(limit).into_iter().map(|s| s.message).collect();
    label_all(msgs.iter_mut());
    let mut out = Output::new(json);
    out.history(&msgs);
    out.flush();
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use lanpeer::MsgId;

    #[test]
    fn formula_cells_become_text() {
        for bad in ["=1+1", "+1", "-2+3", "@SUM(A1)", "\t=1", "\r=1", "  =HYPERLINK(\"x\")", "\n=1", "\u{FF1D}1+1"] {
            assert_eq!(cell(bad), format!("'{bad}"), "{bad:?}");
        }
        for good in ["", "hello", "1+1", "a=b", "Sam (6d81c34e)", "2024-05-01T09:00:00+02:00", "'quoted", "😀"] {
            assert!(matches!(cell(good), Cow::Borrowed(c) if c == good), "{good:?}");
        }
    }

    fn msg(author: u8, seq: u64, name: &str) -> Message {
        let mut m = Message::from_envelope(
            lanpeer::protocol::Envelope {
                id: MsgId { author: PeerId([author; 16]), seq },
                author_name: name.into(),
                sent_ms: 1,
                to: None,
                body: Body::Chat { text: "x".into() },
                files: vec![],
            },
            false,
        );
        m.from_label = "stale".into();
        m
    }

    #[test]
    fn two_authors_of_one_name_are_told_apart() {
        let mut msgs = [msg(1, 1, "Sam"), msg(2, 1, "sam"), msg(1, 2, "Sam"), msg(3, 1, "Lea")];
        label_all(msgs.iter_mut());
        let labels: Vec<&str> = msgs.iter().map(|m| m.from_label.as_str()).collect();
        assert_eq!(labels, ["Sam (01010101)", "sam (02020202)", "Sam (01010101)", "Lea"]);
        let mut alone = [msg(1, 1, "Sam"), msg(1, 2, "Sam")];
        label_all(alone.iter_mut());
        assert_eq!(alone[1].from_label, "Sam", "one author, one name: no id");
    }
}
