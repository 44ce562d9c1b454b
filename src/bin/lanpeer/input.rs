//! What a person (or a script) types: one line, one command. Plain lines are chat to everyone.

/// One parsed line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Input {
    /// Chat to everyone.
    Chat(String),
    /// `/msg WHO TEXT`.
    Msg { who: String, text: String },
    /// `/problem TITLE | BODY` (or `/quiz`, whose answers go to the author only).
    Problem { title: String, body: String, private_answers: bool },
    /// `/answer PROBLEM-ID TEXT`.
    Answer { problem: String, text: String },
    /// `/feedback ANSWER-ID TEXT`.
    Feedback { answer: String, text: String },
    /// `/peers`.
    Peers,
    /// `/problems`.
    Problems,
    /// `/history [N]`: the last N messages (default 50).
    History(Option<usize>),
    /// `/help`.
    Help,
    /// `/quit`.
    Quit,
    /// An empty line.
    Nothing,
}

/// The `/help` text.
pub const HELP: &str = "\
Type a line and press Enter to chat with everyone. Commands:
  /msg NAME-or-ID TEXT        private message to one person
  /problem TITLE | BODY       post an exercise to everyone
  /quiz TITLE | BODY          post an exercise whose answers only you will see
  /answer PROBLEM-ID TEXT     answer an exercise
  /feedback ANSWER-ID TEXT    comment on an answer
  /peers                      who is online
  /problems                   the exercises with their answers and feedback
  /history [N]                the last N messages (default 50), also from before a restart
  /help                       this list
  /quit                       leave (end of input does the same)
In problem bodies, answers and feedback, \\n starts a new line.";

/// Turn `\n` into a newline and `\\` into a backslash (multi-line text on one input line).
pub fn unescape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut it = s.chars();
    while let Some(c) = it.next() {
        if c != '\\' {
            out.push(c);
            continue;
        }
        match it.next() {
            Some('n') => out.push('\n'),
            Some('t') => out.push('\t'),
            Some('\\') => out.push('\\'),
            Some(o) => {
                out.push('\\');
                out.push(o);
            }
            None => out.push('\\'),
        }
    }
    out
}

fn two(rest: &str, usage: &str) -> Result<(String, String), String> {
    let rest = rest.trim_start();
    match rest.split_once(char::is_whitespace) {
        Some((a, b)) if !b.trim().is_empty() => Ok((a.to_string(), b.trim_start().to_string())),
        _ => Err(format!("usage: {usage}")),
    }
}

/// Parse one line. An error is a sentence that says how to type it.
pub fn parse(line: &str) -> Result<Input, String> {
    let line = line.trim_end_matches(['\r', '\n']);
    if line.trim().is_empty() {
        return Ok(Input::Nothing);
    }
    let Some(cmd_line) = line.strip_prefix('/') else {
        return Ok(Input::Chat(line.to_string()));
    };
    let (cmd, rest) = cmd_line.split_once(char::is_whitespace).unwrap_or((cmd_line, ""));
    match cmd.to_ascii_lowercase().as_str() {
        "msg" | "m" => {
            let (who, text) = two(rest, "/msg NAME-or-ID TEXT")?;
            Ok(Input::Msg { who, text })
        }
        "problem" | "quiz" => {
            let private_answers = cmd.eq_ignore_ascii_case("quiz");
            let (title, body) = rest.split_once('|').unwrap_or((rest, ""));
            let title = title.trim();
            if title.is_empty() {
                return Err(format!("usage: /{} TITLE | BODY", cmd.to_ascii_lowercase()));
            }
            Ok(Input::Problem { title: title.to_string(), body: unescape(body.trim()), private_answers })
        }
        "answer" | "a" => {
            let (problem, text) = two(rest, "/answer PROBLEM-ID TEXT")?;
            Ok(Input::Answer { problem, text: unescape(&text) })
        }
        "feedback" | "f" => {
            let (answer, text) = two(rest, "/feedback ANSWER-ID TEXT")?;
            Ok(Input::Feedback { answer, text: unescape(&text) })
        }
        "peers" | "who" => Ok(Input::Peers),
        "problems" => Ok(Input::Problems),
        "history" => match rest.trim() {
            "" => Ok(Input::History(None)),
            n => n.parse().map(|n| Input::History(Some(n))).map_err(|_| "usage: /history [HOW-MANY]".to_string()),
        },
        "help" | "?" => Ok(Input::Help),
        "quit" | "exit" | "q" => Ok(Input::Quit),
        other => Err(format!("there is no command /{other}; type /help to see the commands")),
    }
}

/// [`parse`] of a line the caller owns: a chat (the common line) keeps its `String`, no copy.
pub fn parse_owned(mut line: String) -> Result<Input, String> {
    let end = line.trim_end_matches(['\r', '\n']).len();
    line.truncate(end);
    if !line.starts_with('/') && !line.trim().is_empty() {
        return Ok(Input::Chat(line));
    }
    parse(&line)
}

/// What the reading thread hands over: lines, parsed, in the order read.
#[derive(Debug)]
pub enum Read {
    /// The lines read since the last hand-over.
    Lines(Vec<Result<Input, String>>),
    /// Input could not be read (or is not UTF-8); nothing follows.
    Failed(std::io::Error),
}

/// At most this many lines go over in one hand-over.
pub const BATCH: usize = 512;

/// Read `r` line by line on this (blocking) thread until its end, and hand the parsed lines to
/// `tx` in batches: what has been read when the reader's buffer runs dry goes over at once (a
/// line typed alone is not held back), and at most [`BATCH`] at a time (a script piping
/// thousands of lines needs few hand-overs). Returns at the end of input, after an error, or
/// when nobody receives any more; the end of input is `tx` dropped.
pub fn read_lines<R: std::io::Read>(mut r: std::io::BufReader<R>, tx: tokio::sync::mpsc::Sender<Read>) {
    use std::io::BufRead;
    let mut batch = Vec::new();
    loop {
        let mut raw = Vec::new();
        let failed = match r.read_until(b'\n', &mut raw) {
            Ok(0) => None,
            Ok(_) => match String::from_utf8(raw) {
                Ok(line) => {
                    batch.push(parse_owned(line));
                    if batch.len() < BATCH && !r.buffer().is_empty() {
                        continue;
                    }
                    if tx.blocking_send(Read::Lines(std::mem::take(&mut batch))).is_err() {
                        return;
                    }
                    continue;
                }
                Err(_) => Some(std::io::Error::new(std::io::ErrorKind::InvalidData, "the input is not UTF-8")),
            },
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(e) => Some(e),
        };
        // The end, or an error: what was read before it first.
        if !batch.is_empty() && tx.blocking_send(Read::Lines(std::mem::take(&mut batch))).is_err() {
            return;
        }
        if let Some(e) = failed {
            let _ = tx.blocking_send(Read::Failed(e));
        }
        return;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_every_command() {
        assert_eq!(parse("hello all\n"), Ok(Input::Chat("hello all".into())));
        assert_eq!(parse("  "), Ok(Input::Nothing));
        assert_eq!(parse("/msg bob  hi there"), Ok(Input::Msg { who: "bob".into(), text: "hi there".into() }));
        assert!(parse("/msg bob").is_err());
        assert_eq!(
            parse("/problem Sum | add a\\nand b"),
            Ok(Input::Problem { title: "Sum".into(), body: "add a\nand b".into(), private_answers: false })
        );
        assert_eq!(
            parse("/quiz Q1"),
            Ok(Input::Problem { title: "Q1".into(), body: String::new(), private_answers: true })
        );
        assert!(parse("/problem | body").is_err());
        assert_eq!(
            parse("/answer ab12-3 fn f() {\\n}"),
            Ok(Input::Answer { problem: "ab12-3".into(), text: "fn f() {\n}".into() })
        );
        assert_eq!(parse("/feedback ab-4 good"), Ok(Input::Feedback { answer: "ab-4".into(), text: "good".into() }));
        assert_eq!(parse("/PEERS"), Ok(Input::Peers));
        assert_eq!(parse("/problems"), Ok(Input::Problems));
        assert_eq!(parse("/history"), Ok(Input::History(None)));
        assert_eq!(parse("/history 7"), Ok(Input::History(Some(7))));
        assert!(parse("/history lots").is_err());
        assert_eq!(parse("/quit"), Ok(Input::Quit));
        assert!(parse("/frobnicate").unwrap_err().contains("/help"));
    }

    #[test]
    fn unescape_keeps_other_backslashes() {
        assert_eq!(unescape(r"a\nb\\n\q\"), "a\nb\\n\\q\\");
    }

    #[test]
    fn parse_owned_is_parse() {
        for l in ["hi", "hi\r\n", " hi \n", "", "  \r\n", "/quit", "/msg bob hi\n", "/x", "a/b", "/problem T | b\\n"] {
            assert_eq!(parse_owned(l.to_string()), parse(l), "{l:?}");
        }
    }

    fn read_all(data: &[u8]) -> Vec<Read> {
        let (tx, mut rx) = tokio::sync::mpsc::channel(1000);
        read_lines(std::io::BufReader::with_capacity(64, data), tx);
        let mut got = Vec::new();
        while let Ok(r) = rx.try_recv() {
            got.push(r);
        }
        got
    }

    #[test]
    fn every_line_arrives_in_order_in_bounded_batches() {
        let mut data = String::new();
        for i in 0..3000 {
            data.push_str(&format!("line {i}\n"));
        }
        data.push_str("/quit\r\nlast, without a newline");
        let mut lines = Vec::new();
        for r in read_all(data.as_bytes()) {
            let Read::Lines(b) = r else { panic!("{r:?}") };
            assert!(!b.is_empty() && b.len() <= BATCH);
            lines.extend(b);
        }
        assert_eq!(lines.len(), 3002);
        for (i, l) in lines[..3000].iter().enumerate() {
            assert_eq!(l, &Ok(Input::Chat(format!("line {i}"))));
        }
        assert_eq!(lines[3000], Ok(Input::Quit));
        assert_eq!(lines[3001], Ok(Input::Chat("last, without a newline".into())));
    }

    #[test]
    fn not_utf8_ends_the_input_after_the_lines_before() {
        let got = read_all(b"one\ntw\xffo\nthree\n");
        assert!(
            matches!(&got[..], [Read::Lines(l), Read::Failed(_)] if l == &[Ok(Input::Chat("one".into()))]),
            "{got:?}"
        );
    }

    /// Input that gives some bytes, then blocks until told to go on (a person typing).
    struct Typing(std::sync::mpsc::Receiver<Vec<u8>>);

    impl std::io::Read for Typing {
        fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
            match self.0.recv() {
                Ok(d) => {
                    buf[..d.len()].copy_from_slice(&d);
                    Ok(d.len())
                }
                Err(_) => Ok(0),
            }
        }
    }

    #[test]
    fn a_line_is_handed_over_while_the_next_is_not_there_yet() {
        let (typed, keys) = std::sync::mpsc::channel();
        let (tx, mut rx) = tokio::sync::mpsc::channel(10);
        let t = std::thread::spawn(move || read_lines(std::io::BufReader::new(Typing(keys)), tx));
        let rt = tokio::runtime::Builder::new_current_thread().enable_time().build().unwrap();
        let mut next = || {
            rt.block_on(async { tokio::time::timeout(std::time::Duration::from_secs(5), rx.recv()).await })
                .expect("handed over while the reader waits for more input")
        };
        typed.send(b"hello\nagain\n".to_vec()).unwrap();
        let got = next();
        assert!(matches!(&got, Some(Read::Lines(l)) if l.len() == 2), "{got:?}");
        typed.send(b"/quit\n".to_vec()).unwrap();
        assert!(matches!(next(), Some(Read::Lines(l)) if l == [Ok(Input::Quit)]));
        drop(typed);
        assert!(next().is_none(), "the end of input closes the channel");
        t.join().unwrap();
    }
}
