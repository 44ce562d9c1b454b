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
}
