//! What a person (or a script) types: one line, one command. Plain lines are chat to everyone.
//!
//! At a terminal a "line" may hold several lines: a pasted block, or the text of the multi-line
//! editor (see [`Draft`]). Such text is code, kept as it is; a text on one line (every line of a
//! script) reads as it always did, with `\n` escapes for new lines.
//!
//! A message of `/msg`, `/answer` or `/feedback` may come without its text: with files attached
//! (`/attach`) it is sent with none. Whether files are attached is the main loop's to know, so it
//! is the main loop that refuses such a line otherwise, with the usage a missing text always got
//! ([`Input::without_files`]).

use std::path::PathBuf;

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
    /// `/send PATH...`: files and folders to everyone.
    Send(Vec<PathBuf>),
    /// `/attach PATH...`: files and folders for the next message sent.
    Attach(Vec<PathBuf>),
    /// `/attach` alone: what is attached.
    Attached,
    /// `/attach -`: attach nothing after all.
    Detach,
    /// `/status PROBLEM-ID`: who has answered, and who has not.
    Status(String),
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
  /send PATH...               share files or folders with everyone
  /attach PATH...             attach files or folders to the next message you send, of any kind
                              (its text may then be empty)
  /attach, /attach -          list the files attached; drop them
  /status PROBLEM-ID          who has answered an exercise (when, how many versions, feedback),
                              and who of those online has not
  /peers                      who is online
  /problems                   the exercises with their answers and feedback
  /history [N]                the last N messages (default 50), also from before a restart
  /help                       this list
  /quit                       leave (end of input does the same)
In problem bodies, answers and feedback, \\n starts a new line. A path with blanks goes in quotes:
/send \"my notes.txt\".";

/// More for a person at a terminal (appended to [`HELP`] there).
pub const TERMINAL_HELP: &str = "\
At the terminal:
  Tab                         completes commands, names, the ids of exercises and answers, and
                              paths after /send and /attach
  Up, Down, Ctrl-R            earlier lines, also from before a restart; Ctrl-R searches them
  paste several lines         they stay one message (after /answer ID, say), indentation and all
  /answer ID, /feedback ID, /problem TITLE or /quiz TITLE alone
                              opens an editor for several lines: a line with only . sends them
                              (Ctrl-D too), Esc or Ctrl-C cancels
  Ctrl-C                      clears the line; on an empty line, twice, leaves";

/// What the first word after a command names, for completion at the terminal.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Arg {
    /// Nothing to complete from (a title, a number, text).
    Text,
    /// An online peer.
    Peer,
    /// A problem's id.
    Problem,
    /// An answer's id.
    Answer,
    /// A file (every word after the command).
    Path,
}

/// The commands, as completion offers them (their short aliases aside).
pub const COMMANDS: &[&str] = &[
    "/msg",
    "/problem",
    "/quiz",
    "/answer",
    "/feedback",
    "/send",
    "/attach",
    "/status",
    "/peers",
    "/problems",
    "/history",
    "/help",
    "/quit",
];

/// What the words after `command` (with its `/`) name.
pub fn arg_of(command: &str) -> Arg {
    match command.to_ascii_lowercase().as_str() {
        "/msg" | "/m" => Arg::Peer,
        "/answer" | "/a" | "/status" => Arg::Problem,
        "/feedback" | "/f" => Arg::Answer,
        "/send" | "/attach" => Arg::Path,
        _ => Arg::Text,
    }
}

/// A command typed at the terminal without its text, whose text the multi-line editor then asks
/// for: `/answer ID`, `/feedback ID`, `/problem TITLE` or `/quiz TITLE` alone.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Draft {
    /// An answer to this problem (an id as typed).
    Answer { problem: String },
    /// Feedback on this answer (an id as typed).
    Feedback { answer: String },
    /// The body of this exercise.
    Problem { title: String, private_answers: bool },
}

impl Draft {
    /// The draft `line` opens, if it is one of the four commands without its text.
    pub fn of(line: &str) -> Option<Draft> {
        let line = line.trim();
        let cmd_line = line.strip_prefix('/')?;
        let (cmd, rest) = cmd_line.split_once(char::is_whitespace)?;
        let rest = rest.trim();
        if rest.is_empty() || rest.contains('\n') {
            return None;
        }
        let one_word = !rest.contains(char::is_whitespace);
        match cmd.to_ascii_lowercase().as_str() {
            "answer" | "a" if one_word => Some(Draft::Answer { problem: rest.to_string() }),
            "feedback" | "f" if one_word => Some(Draft::Feedback { answer: rest.to_string() }),
            c @ ("problem" | "quiz") if !rest.contains('|') => {
                Some(Draft::Problem { title: rest.to_string(), private_answers: c == "quiz" })
            }
            _ => None,
        }
    }

    /// The command this draft is, with `text` as its text (as it is: no escapes).
    pub fn finish(self, text: String) -> Input {
        match self {
            Draft::Answer { problem } => Input::Answer { problem, text },
            Draft::Feedback { answer } => Input::Feedback { answer, text },
            Draft::Problem { title, private_answers } => Input::Problem { title, body: text, private_answers },
        }
    }

    /// The whole command on several lines, as the history keeps it: [`parse`] reads it back as
    /// [`Draft::finish`] made it.
    pub fn entry(&self, text: &str) -> String {
        match self {
            Draft::Answer { problem } => format!("/answer {problem}\n{text}"),
            Draft::Feedback { answer } => format!("/feedback {answer}\n{text}"),
            Draft::Problem { title, private_answers: false } => format!("/problem {title}\n{text}"),
            Draft::Problem { title, private_answers: true } => format!("/quiz {title}\n{text}"),
        }
    }

    /// An exercise may have no body; an answer or feedback needs a text.
    pub fn may_be_empty(&self) -> bool {
        matches!(self, Draft::Problem { .. })
    }
}

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

/// Where a command's text starts in `b`, what follows the blank after its id: past the blanks of
/// the command's own line; when that line holds nothing more (the text was pasted below it), at
/// the first line that is not blank, whose indentation is the text's own.
fn text_start(b: &str) -> &str {
    let Some((first, mut rest)) = b.split_once('\n') else {
        return b.trim_start();
    };
    if !first.trim().is_empty() {
        return b.trim_start();
    }
    while let Some((line, next)) = rest.split_once('\n') {
        if !line.trim().is_empty() {
            break;
        }
        rest = next;
    }
    rest
}

/// A command's text, `b`: on one line (a line of a script, say), as `\n` escapes make it when
/// `escapes`; on lines of its own (pasted, or from the multi-line editor), as it is (code: its
/// backslashes are its own), but for the blanks at its end.
fn text_of(b: &str, escapes: bool) -> String {
    if b.contains('\n') {
        b.trim_end().to_string()
    } else if escapes {
        unescape(b)
    } else {
        b.to_string()
    }
}

/// An id and a text: `ID TEXT` on one line, or `ID` and then the text on the lines below.
fn two(rest: &str, usage: &str, escapes: bool) -> Result<(String, String), String> {
    let rest = rest.trim_start_matches(|c: char| c.is_whitespace() && c != '\n');
    let usage = || format!("usage: {usage}");
    let at = rest.find(char::is_whitespace).ok_or_else(usage)?;
    let (a, b) = rest.split_at(at);
    if b.trim().is_empty() {
        return Err(usage());
    }
    let text = match b.strip_prefix('\n') {
        // The text below the command's line starts there, indentation and all.
        Some(below) => below.trim_end().to_string(),
        None => text_of(text_start(&b[b.chars().next().map_or(0, char::len_utf8)..]), escapes),
    };
    Ok((a.to_string(), text))
}

/// An id, and a text that may be missing (`/answer ID` alone: files attached may stand for it).
fn id_then_text(rest: &str, usage: &str, escapes: bool) -> Result<(String, String), String> {
    let alone = rest.trim();
    if !alone.is_empty() && !alone.contains(char::is_whitespace) {
        return Ok((alone.to_string(), String::new()));
    }
    two(rest, usage, escapes)
}

/// The words of `s`, split at blanks, each a path: `"..."` and `'...'` keep blanks in a word;
/// with `backslash` (on Unix, where Tab completes `my\ file.py`), a backslash outside single
/// quotes keeps the next character as it is (on Windows it is the separator of a path, kept as
/// it is). A word that starts with `~/` (or is `~`), unquoted, starts at `home`.
pub fn paths(s: &str, backslash: bool, home: Option<&std::path::Path>) -> Result<Vec<PathBuf>, String> {
    let mut out = Vec::new();
    let mut word: Option<String> = None;
    let mut it = s.chars().peekable();
    let mut quote: Option<char> = None;
    while let Some(c) = it.next() {
        match (quote, c) {
            (Some(q), c) if c == q => quote = None,
            (Some('"'), '\\') if backslash && matches!(it.peek(), Some('"' | '\\')) => {
                word.get_or_insert_default().push(it.next().expect("peeked"));
            }
            (Some(_), c) => word.get_or_insert_default().push(c),
            (None, '"' | '\'') => {
                quote = Some(c);
                word.get_or_insert_default();
            }
            (None, '\\') if backslash => match it.next() {
                Some(n) => word.get_or_insert_default().push(n),
                None => word.get_or_insert_default().push('\\'),
            },
            (None, '~') if word.is_none() && it.peek().is_none_or(|n| *n == '/' || n.is_whitespace()) => {
                word = Some(home.map_or("~".into(), |h| h.to_string_lossy().into_owned()));
            }
            (None, c) if c.is_whitespace() => {
                if let Some(w) = word.take() {
                    out.push(PathBuf::from(w));
                }
            }
            (None, c) => word.get_or_insert_default().push(c),
        }
    }
    if let Some(q) = quote {
        return Err(format!("a {q} is not closed; put the name between two of them, like {q}my file.py{q}"));
    }
    if let Some(w) = word {
        out.push(PathBuf::from(w));
    }
    Ok(out)
}

/// The paths of `/send` and `/attach`, as [`paths`] reads them on this system.
fn typed_paths(rest: &str, usage: &str) -> Result<Vec<PathBuf>, String> {
    let home = dirs::home_dir();
    let list = paths(rest, !cfg!(windows), home.as_deref())?;
    if list.is_empty() {
        return Err(format!("usage: {usage}"));
    }
    Ok(list)
}

impl Input {
    /// This line as it stands when no files are attached: a message without its text is refused
    /// with the usage of its command.
    pub fn without_files(self) -> Result<Input, String> {
        let usage = match &self {
            Input::Msg { text, .. } if text.is_empty() => "/msg NAME-or-ID TEXT",
            Input::Answer { text, .. } if text.is_empty() => "/answer PROBLEM-ID TEXT",
            Input::Feedback { text, .. } if text.is_empty() => "/feedback ANSWER-ID TEXT",
            _ => return Ok(self),
        };
        Err(format!("usage: {usage}"))
    }

    /// Does this line send a message (which takes the files attached)?
    pub fn sends(&self) -> bool {
        matches!(
            self,
            Input::Chat(_) | Input::Msg { .. } | Input::Problem { .. } | Input::Answer { .. } | Input::Feedback { .. }
        )
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
            let (who, text) = id_then_text(rest, "/msg NAME-or-ID TEXT", false)?;
            Ok(Input::Msg { who, text })
        }
        "problem" | "quiz" => {
            let private_answers = cmd.eq_ignore_ascii_case("quiz");
            // The title ends at `|`, or at the end of its line: the body is then the lines below.
            let (title, body) = match rest.find(['|', '\n']) {
                Some(i) if rest[i..].starts_with('\n') => (&rest[..i], rest[i + 1..].trim_end().to_string()),
                Some(i) if rest[i + 1..].contains('\n') => (&rest[..i], text_of(text_start(&rest[i + 1..]), true)),
                Some(i) => (&rest[..i], unescape(rest[i + 1..].trim())),
                None => (rest, String::new()),
            };
            let title = title.trim();
            if title.is_empty() {
                return Err(format!("usage: /{} TITLE | BODY", cmd.to_ascii_lowercase()));
            }
            Ok(Input::Problem { title: title.to_string(), body, private_answers })
        }
        "answer" | "a" => {
            let (problem, text) = id_then_text(rest, "/answer PROBLEM-ID TEXT", true)?;
            Ok(Input::Answer { problem, text })
        }
        "feedback" | "f" => {
            let (answer, text) = id_then_text(rest, "/feedback ANSWER-ID TEXT", true)?;
            Ok(Input::Feedback { answer, text })
        }
        "send" => typed_paths(rest, "/send PATH... (files or folders)").map(Input::Send),
        "attach" => match rest.trim() {
            "" => Ok(Input::Attached),
            "-" => Ok(Input::Detach),
            _ => typed_paths(rest, "/attach PATH...").map(Input::Attach),
        },
        "status" => match rest.trim() {
            "" => Err("usage: /status PROBLEM-ID".into()),
            id if id.contains(char::is_whitespace) => Err("usage: /status PROBLEM-ID".into()),
            id => Ok(Input::Status(id.to_string())),
        },
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
        // Without its text: files attached stand for it, else the usage.
        assert_eq!(parse("/msg bob"), Ok(Input::Msg { who: "bob".into(), text: String::new() }));
        assert_eq!(parse("/msg bob").and_then(Input::without_files), Err("usage: /msg NAME-or-ID TEXT".into()));
        assert_eq!(parse("/a ab-3 "), Ok(Input::Answer { problem: "ab-3".into(), text: String::new() }));
        assert!(parse("/f ab-3").and_then(Input::without_files).unwrap_err().starts_with("usage: /feedback"));
        assert!(parse("/msg").is_err() && parse("/answer  ").is_err());
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

    /// `parse` as it was before lines could hold several lines: a line of a script must still
    /// read exactly so.
    fn one_line_parse(line: &str) -> Result<Input, String> {
        fn two(rest: &str, usage: &str) -> Result<(String, String), String> {
            let rest = rest.trim_start();
            match rest.split_once(char::is_whitespace) {
                Some((a, b)) if !b.trim().is_empty() => Ok((a.to_string(), b.trim_start().to_string())),
                _ => Err(format!("usage: {usage}")),
            }
        }
        let line = line.trim_end_matches(['\r', '\n']);
        if line.trim().is_empty() {
            return Ok(Input::Nothing);
        }
        let Some(cmd_line) = line.strip_prefix('/') else {
            return Ok(Input::Chat(line.to_string()));
        };
        let (cmd, rest) = cmd_line.split_once(char::is_whitespace).unwrap_or((cmd_line, ""));
        match cmd.to_ascii_lowercase().as_str() {
            "msg" | "m" => two(rest, "/msg NAME-or-ID TEXT").map(|(who, text)| Input::Msg { who, text }),
            "problem" | "quiz" => {
                let private_answers = cmd.eq_ignore_ascii_case("quiz");
                let (title, body) = rest.split_once('|').unwrap_or((rest, ""));
                let title = title.trim();
                if title.is_empty() {
                    return Err(format!("usage: /{} TITLE | BODY", cmd.to_ascii_lowercase()));
                }
                Ok(Input::Problem { title: title.to_string(), body: unescape(body.trim()), private_answers })
            }
            "answer" | "a" => two(rest, "/answer PROBLEM-ID TEXT")
                .map(|(problem, text)| Input::Answer { problem, text: unescape(&text) }),
            "feedback" | "f" => two(rest, "/feedback ANSWER-ID TEXT")
                .map(|(answer, text)| Input::Feedback { answer, text: unescape(&text) }),
            _ => parse(line),
        }
    }

    proptest::proptest! {
        #[test]
        fn a_line_of_a_script_reads_as_before(
            cmd in proptest::sample::select(vec!["", "/msg", "/M", "/answer", "/a", "/feedback", "/f", "/problem", "/quiz", "/peers", "hi"]),
            rest in proptest::collection::vec(
                proptest::sample::select(vec![' ', ' ', '\t', 'a', 'b', '|', '\\', 'n', 't', '-', '1', 'é', '\u{3000}', '\u{85}', '\r']),
                0..16,
            ),
        ) {
            let line = format!("{cmd}{}", rest.iter().collect::<String>());
            // With nothing attached, as the main loop takes it.
            proptest::prop_assert_eq!(parse(&line).and_then(Input::without_files), one_line_parse(&line), "{:?}", line);
        }
    }

    #[test]
    fn several_lines_are_code_kept_as_they_are() {
        let code = "def f(x):\n    if x:\n        return \"a\\nb\"\n    return 1";
        // Pasted after the id, on the command's line.
        assert_eq!(
            parse(&format!("/answer ab-3 {code}\n\n")),
            Ok(Input::Answer { problem: "ab-3".into(), text: code.into() })
        );
        // Pasted below the command's line, indented as a whole: the first line keeps its indentation.
        let indented = "    x = 1\n    y = 2";
        assert_eq!(
            parse(&format!("/answer ab-3 \n\n{indented}")),
            Ok(Input::Answer { problem: "ab-3".into(), text: indented.into() })
        );
        assert_eq!(
            parse(&format!("/answer ab-3\n{indented}")),
            Ok(Input::Answer { problem: "ab-3".into(), text: indented.into() })
        );
        assert_eq!(
            parse(&format!("/feedback cd-4 look:\n{indented}")),
            Ok(Input::Feedback { answer: "cd-4".into(), text: format!("look:\n{indented}") })
        );
        assert_eq!(parse("/msg bob a\\n\n  b"), Ok(Input::Msg { who: "bob".into(), text: "a\\n\n  b".into() }));
        // A title ends at its line's end; the body below keeps its indentation.
        assert_eq!(
            parse(&format!("/problem Loops\n{indented}\n")),
            Ok(Input::Problem { title: "Loops".into(), body: indented.into(), private_answers: false })
        );
        assert_eq!(
            parse(&format!("/quiz Loops | {indented}")),
            Ok(Input::Problem { title: "Loops".into(), body: "x = 1\n    y = 2".into(), private_answers: true })
        );
        assert_eq!(parse("  fn f() {\n}\n"), Ok(Input::Chat("  fn f() {\n}".into())));
        assert!(
            parse("/answer ab-3\n\n  \n").and_then(Input::without_files).is_err(),
            "an id with only blank lines is no answer (without files)"
        );
    }

    #[test]
    fn drafts_open_for_a_command_without_its_text_and_read_back_from_the_history() {
        assert_eq!(Draft::of("/answer 3f9a-4"), Some(Draft::Answer { problem: "3f9a-4".into() }));
        assert_eq!(Draft::of("/a 3f9a-4  "), Some(Draft::Answer { problem: "3f9a-4".into() }));
        assert_eq!(Draft::of("/F 3f9a-5"), Some(Draft::Feedback { answer: "3f9a-5".into() }));
        assert_eq!(
            Draft::of("/quiz Two words"),
            Some(Draft::Problem { title: "Two words".into(), private_answers: true })
        );
        for not in
            ["/answer", "/answer 3f9a-4 42", "/problem T | b", "/problem", "/msg bob", "hello", "/answer 3f9a-4\nx"]
        {
            assert_eq!(Draft::of(not), None, "{not:?}");
        }
        let text = "  for i in range(3):\n      print(i)";
        for d in [
            Draft::Answer { problem: "3f9a-4".into() },
            Draft::Feedback { answer: "3f9a-5".into() },
            Draft::Problem { title: "Loops".into(), private_answers: false },
            Draft::Problem { title: "Quiz 1".into(), private_answers: true },
        ] {
            let entry = d.entry(text);
            assert_eq!(parse(&entry), Ok(d.clone().finish(text.into())), "{entry:?}");
        }
    }

    #[test]
    fn files_and_status_commands() {
        let p = |v: &[&str]| v.iter().map(PathBuf::from).collect::<Vec<_>>();
        assert_eq!(parse("/send a.py src/"), Ok(Input::Send(p(&["a.py", "src/"]))));
        assert_eq!(parse("/attach \"my file.py\" b"), Ok(Input::Attach(p(&["my file.py", "b"]))));
        assert_eq!(parse("/attach"), Ok(Input::Attached));
        assert_eq!(parse("/ATTACH  - "), Ok(Input::Detach));
        assert_eq!(parse("/attach ./-"), Ok(Input::Attach(p(&["./-"]))));
        assert!(parse("/send").unwrap_err().starts_with("usage: /send PATH"));
        assert!(parse("/send \"open").unwrap_err().contains("is not closed"));
        assert_eq!(parse("/status 3f9a-4"), Ok(Input::Status("3f9a-4".into())));
        assert!(parse("/status").is_err() && parse("/status a b").is_err());
        for i in [Input::Send(vec![]), Input::Status("x".into()), Input::Attached, Input::Peers] {
            assert!(!i.sends());
        }
        assert!(Input::Chat("x".into()).sends() && Input::Answer { problem: "p".into(), text: String::new() }.sends());
    }

    #[test]
    fn paths_keep_blanks_in_quotes_and_after_a_backslash() {
        let home = std::path::Path::new("/home/ada");
        let unix = |s: &str| paths(s, true, Some(home)).unwrap();
        let win = |s: &str| paths(s, false, None).unwrap();
        let p = |v: &[&str]| v.iter().map(PathBuf::from).collect::<Vec<_>>();
        assert_eq!(unix("a  b\tc"), p(&["a", "b", "c"]));
        assert_eq!(unix(r#""my file.py" 'it''s' "a\"b""#), p(&["my file.py", "its", "a\"b"]));
        assert_eq!(unix(r"my\ file.py x\\y"), p(&["my file.py", r"x\y"]));
        assert_eq!(unix(r#"'a\ b' "c\d""#), p(&[r"a\ b", r"c\d"]));
        assert_eq!(unix("~/notes ~ a~ \"~/q\""), p(&["/home/ada/notes", "/home/ada", "a~", "~/q"]));
        assert_eq!(unix("\"\""), p(&[""]), "an empty name is a name (which does not exist)");
        assert_eq!(win(r#"C:\Users\ada\"my notes.txt" D:\x"#), p(&[r"C:\Users\ada\my notes.txt", r"D:\x"]));
        assert_eq!(
            paths("'open", true, None).unwrap_err(),
            "a ' is not closed; put the name between two of them, like 'my file.py'"
        );
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
