//! `lanpeer export` and `lanpeer history`: read a peer's history (even while the peer runs: its
//! journal is only ever appended to, and a reader stops before a group being written) and write
//! it for the teacher.

use std::io::Write;
use std::path::Path;

use lanpeer::exercises::Exercises;
use lanpeer::store::Store;
use lanpeer::{Body, Error, Message, ProblemView};
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

fn time(ms: u64) -> String {
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
        "time": time(m.sent_ms),
        "time_ms": m.sent_ms,
        "text": text_of(m),
    })
}

/// The exercises of a data dir, optionally one problem only (full id or `<prefix>-<seq>`).
fn problems(dir: &Path, room: Option<&str>, problem: Option<&str>) -> Result<Vec<ProblemView>, Error> {
    let store = Store::open_readonly(dir, room)?;
    let mut ex = Exercises::default();
    for s in store.exercises()? {
        ex.record(&s.message);
    }
    let view = ex.view();
    Ok(match problem {
        None => view,
        Some(p) => {
            let id = ex.find_problem(p)?;
            view.into_iter().filter(|v| v.problem.id == id).collect()
        }
    })
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
            let mut w = csv::Writer::from_writer(out);
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
                    ]
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
    let msgs: Vec<Message> = store.history(limit)?.into_iter().map(|s| s.message).collect();
    let mut out = Output::new(json);
    out.history(&msgs);
    out.flush();
    Ok(())
}
