//! The terminal front end: for a person at a terminal (stdin and stdout are terminals, and not
//! `--json`), a line editor instead of reading stdin line by line.
//!
//! rustyline does the terminal work: the prompt line (`Ada@5B> `) keeps what is typed and the
//! cursor while messages are printed above it (its external printer, fed by
//! [`Printer`](crate::printer::Printer)), Up and Down recall earlier lines from a history file in
//! the data dir, Ctrl-R searches them, Tab completes (complete.rs, from the
//! [`Roster`](crate::roster::Roster)), and a pasted block (bracketed paste) arrives as one text.
//! What this module adds is the chat's own use of keys and lines:
//!
//! - a line goes to the main loop as the [`Input`] that [`input::parse_owned`] makes of it, over
//!   the same channel as the lines of stdin: the main loop cannot tell the two apart;
//! - `/answer ID`, `/feedback ID`, `/problem TITLE` or `/quiz TITLE` alone opens the multi-line
//!   editor ([`Draft`]): Enter starts a new line, a line with only `.` or Ctrl-D sends, Esc or
//!   Ctrl-C cancels, Tab indents;
//! - Ctrl-C clears a line that holds something; on an empty line it asks once, then leaves as
//!   `/quit` does. Ctrl-D on an empty line is the end of input, as at the end of a pipe.
//!
//! The editor runs on a thread of its own, blocked in `readline` most of the time; it never waits
//! on the async runtime (it reads the roster under a std mutex, and hands lines over with a
//! blocking send on a channel of a few slots).

use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread::JoinHandle;
use std::time::Duration;

use rustyline::completion::{Completer, FilenameCompleter, Pair};
use rustyline::config::{BellStyle, ColorMode};
use rustyline::error::ReadlineError;
use rustyline::highlight::Highlighter;
use rustyline::hint::Hinter;
use rustyline::history::FileHistory;
use rustyline::validate::{ValidationContext, ValidationResult, Validator};
use rustyline::{
    Cmd, CompletionType, ConditionalEventHandler, Config, Editor, Event, EventContext, EventHandler, KeyCode, KeyEvent,
    Modifiers, Movement, RepeatCount,
};

use crate::complete::{self, Candidate};
use crate::input::{self, Draft, Input};
use crate::output::printable;
use crate::paint::{Paint, Tone};
use crate::printer::Printer;
use crate::roster::Roster;

/// The file in the data dir that keeps the lines typed, for Up, Down and Ctrl-R after a restart.
pub const HISTORY_FILE: &str = "prompt-history";

/// Lines the history keeps.
const HISTORY_LEN: usize = 1000;

/// How long a lone Esc waits for the rest of an escape sequence before it counts as Esc: the
/// bytes of a key's sequence arrive together, a person's next key much later.
const ESC_WAIT_MS: u16 = 50;

/// Said when the terminal sent bytes that are not UTF-8.
const NOT_TEXT: &str = "! the terminal sent something that is not UTF-8 text, so that line was dropped; \
                        set the terminal to UTF-8 and type it again";

/// What Tab inserts in the multi-line editor: code is indented, not completed there.
const INDENT: &str = "    ";

/// True when this run should have the terminal front end: stdin and stdout are terminals, and
/// the terminal can edit a line (rustyline's own test: not `TERM=dumb`, `cons25` or `emacs`).
pub fn wanted() -> bool {
    use std::io::IsTerminal;
    let editing = !matches!(std::env::var("TERM").as_deref(), Ok("dumb" | "cons25" | "emacs"));
    std::io::stdin().is_terminal() && std::io::stdout().is_terminal() && editing
}

/// What the key bindings and the validator need to know of the editor's state.
#[derive(Default)]
struct Mode {
    /// The multi-line editor is open.
    drafting: AtomicBool,
    /// Ctrl-C was pressed on an empty line: the next one on an empty line leaves.
    armed: AtomicBool,
}

impl Mode {
    fn drafting(&self) -> bool {
        self.drafting.load(Ordering::Relaxed)
    }
}

/// rustyline's helper: completion, and the end of the multi-line editor.
struct Assist {
    roster: Arc<Roster>,
    mode: Arc<Mode>,
    files: FilenameCompleter,
}

impl Completer for Assist {
    type Candidate = Pair;

    fn complete(&self, line: &str, pos: usize, _: &rustyline::Context<'_>) -> rustyline::Result<(usize, Vec<Pair>)> {
        let paths = |line: &str, pos: usize| {
            let (start, found) = self.files.complete_path(line, pos).unwrap_or((pos, Vec::new()));
            (start, found.into_iter().map(|p| Candidate { display: p.display, replacement: p.replacement }).collect())
        };
        let (start, found) = complete::complete(line, pos, &self.roster.known(), &paths);
        Ok((start, found.into_iter().map(|c| Pair { display: c.display, replacement: c.replacement }).collect()))
    }
}

impl Hinter for Assist {
    type Hint = String;
}

impl Highlighter for Assist {}

impl Validator for Assist {
    /// A line is done at Enter; the multi-line editor's text only at a line with only `.`.
    fn validate(&self, ctx: &mut ValidationContext<'_>) -> rustyline::Result<ValidationResult> {
        if !self.mode.drafting() || ends_with_dot(ctx.input()) {
            Ok(ValidationResult::Valid(None))
        } else {
            Ok(ValidationResult::Incomplete)
        }
    }
}

impl rustyline::Helper for Assist {}

/// Does the multi-line editor's text end with a line that holds only `.`?
fn ends_with_dot(text: &str) -> bool {
    text.rsplit('\n').next().is_some_and(|last| last.trim() == ".")
}

/// The multi-line editor's text without its closing `.` line.
fn without_dot(mut text: String) -> String {
    if ends_with_dot(&text) {
        let cut = text.rfind('\n').unwrap_or(0);
        text.truncate(cut);
    }
    text
}

/// A key whose meaning depends on the editor's state.
#[derive(Clone, Copy)]
enum Key {
    CtrlC,
    CtrlD,
    Esc,
    Up,
    Down,
    Left,
    Backspace,
    Tab,
}

struct Binding {
    key: Key,
    mode: Arc<Mode>,
}

impl ConditionalEventHandler for Binding {
    fn handle(&self, _: &Event, _: RepeatCount, _: bool, ctx: &EventContext<'_>) -> Option<Cmd> {
        let drafting = self.mode.drafting();
        // The multi-line editor's text starts with the newline that puts it below the prompt
        // line (see `draft`): the cursor stays after it.
        let first_line = drafting && ctx.line()[..ctx.pos()].matches('\n').count() <= 1;
        let at_start = drafting && ctx.pos() <= 1;
        match self.key {
            Key::Up if first_line => Some(Cmd::Noop),
            Key::Left | Key::Backspace if at_start => Some(Cmd::Noop),
            Key::CtrlC | Key::Esc if drafting => Some(Cmd::Interrupt),
            Key::CtrlC if !ctx.line().is_empty() => {
                self.mode.armed.store(false, Ordering::Relaxed);
                Some(Cmd::Kill(Movement::WholeBuffer))
            }
            Key::CtrlC => Some(Cmd::Interrupt),
            // AcceptLine ends the text whatever the validator says.
            Key::CtrlD if drafting => Some(Cmd::AcceptLine),
            Key::Up if drafting => Some(Cmd::Move(Movement::LineUp(1))),
            Key::Down if drafting => Some(Cmd::Move(Movement::LineDown(1))),
            Key::Tab if drafting => Some(Cmd::Insert(1, INDENT.into())),
            _ => None,
        }
    }
}

/// How the editor thread ends a readline.
enum Typed {
    /// A line (or a pasted block).
    Line(String),
    /// Ctrl-C on an empty line, or Esc or Ctrl-C in the multi-line editor.
    Cancelled,
    /// Bytes that are not UTF-8 text (a terminal set to another encoding): that line is lost.
    NotText,
    /// The end of input: Ctrl-D on an empty line, or the terminal is gone.
    End,
}

/// What the editor thread works with.
struct Ctx {
    mode: Arc<Mode>,
    roster: Arc<Roster>,
    printer: Printer,
    paint: Paint,
    lines: tokio::sync::mpsc::Sender<input::Read>,
    history: Option<PathBuf>,
}

impl Ctx {
    /// A line of the front end itself, above the prompt.
    fn note(&self, tone: Tone, text: &str) {
        self.printer.say(format!("{}\n", self.paint.paint(tone, text)));
    }

    /// Hand `input` to the main loop; false once nobody takes it any more.
    fn send(&self, input: Result<Input, String>) -> bool {
        self.lines.blocking_send(input::Read::Lines(vec![input])).is_ok()
    }
}

/// The running front end, as the main loop holds it.
pub struct Terminal {
    printer: Printer,
    paint: Paint,
    thread: JoinHandle<()>,
    /// The terminal's settings before the editor changed them.
    #[cfg(unix)]
    saved: Option<libc::termios>,
}

/// What the front end is started with.
pub struct Setup {
    /// The history file (in the data dir).
    pub history: Option<PathBuf>,
    /// What completion and the prompt read.
    pub roster: Arc<Roster>,
    /// Colour or not.
    pub paint: Paint,
    /// Where lines go: the main loop's input channel.
    pub lines: tokio::sync::mpsc::Sender<input::Read>,
}

fn config(paint: Paint) -> rustyline::Result<Config> {
    Ok(Config::builder()
        .max_history_size(HISTORY_LEN)?
        .history_ignore_dups(true)?
        // A chat, not a shell: a line that starts with a blank (pasted code) is kept too.
        .history_ignore_space(false)
        .auto_add_history(false)
        .completion_type(CompletionType::List)
        .completion_show_all_if_ambiguous(true)
        .bell_style(BellStyle::None)
        .keyseq_timeout(Some(ESC_WAIT_MS))
        .color_mode(if paint.is_on() { ColorMode::Enabled } else { ColorMode::Disabled })
        .bracketed_paste(true)
        .build())
}

impl Terminal {
    /// Set up the editor and its printer, and start the editor thread. The first prompt shows
    /// once the roster knows this peer's name and room (its `ready` event).
    pub fn start(setup: Setup) -> rustyline::Result<Terminal> {
        #[cfg(unix)]
        let saved = {
            // SAFETY: a zeroed termios is a valid out-parameter; fd 0 is open.
            let mut t: libc::termios = unsafe { std::mem::zeroed() };
            (unsafe { libc::tcgetattr(0, &mut t) } == 0).then_some(t)
        };
        let mode = Arc::new(Mode::default());
        let helper = Assist { roster: setup.roster.clone(), mode: mode.clone(), files: FilenameCompleter::new() };
        let mut ed: Editor<Assist, FileHistory> = Editor::with_config(config(setup.paint)?)?;
        ed.set_helper(Some(helper));
        for (key, event) in [
            (Key::CtrlC, KeyEvent::ctrl('C')),
            (Key::CtrlD, KeyEvent::ctrl('D')),
            (Key::Esc, KeyEvent(KeyCode::Esc, Modifiers::NONE)),
            (Key::Up, KeyEvent(KeyCode::Up, Modifiers::NONE)),
            (Key::Down, KeyEvent(KeyCode::Down, Modifiers::NONE)),
            (Key::Left, KeyEvent(KeyCode::Left, Modifiers::NONE)),
            (Key::Backspace, KeyEvent(KeyCode::Backspace, Modifiers::NONE)),
            (Key::Backspace, KeyEvent::ctrl('H')),
            (Key::Tab, KeyEvent(KeyCode::Tab, Modifiers::NONE)),
        ] {
            ed.bind_sequence(event, EventHandler::Conditional(Box::new(Binding { key, mode: mode.clone() })));
        }
        if let Some(h) = &setup.history
            && h.exists()
            && let Err(e) = ed.load_history(h)
        {
            tracing::warn!(error = %e, file = %h.display(), "cannot read the earlier lines typed; Up starts empty");
        }
        let printer = Printer::start(ed.create_external_printer()?)?;
        let paint = setup.paint;
        let ctx = Ctx {
            mode,
            roster: setup.roster,
            printer: printer.clone(),
            paint,
            lines: setup.lines,
            history: setup.history,
        };
        let thread = std::thread::Builder::new().name("lanpeer-editor".into()).spawn(move || run(ed, ctx))?;
        Ok(Terminal {
            printer,
            paint,
            thread,
            #[cfg(unix)]
            saved,
        })
    }

    /// The printer: everything else the terminal shows goes through it.
    pub fn printer(&self) -> &Printer {
        &self.printer
    }

    /// Colour or not, as for the prompt.
    pub fn paint(&self) -> Paint {
        self.paint
    }

    /// At the end: print what is still to print, and give the terminal back as it was, also
    /// when the editor is still waiting for a key (the peer was told to stop, by SIGTERM say).
    pub fn finish(self) {
        self.printer.drain(Duration::from_secs(2));
        let still_editing = !self.thread.is_finished();
        // rustyline restores the terminal when its readline returns, which it does not now: the
        // settings it changed (raw mode, bracketed paste) are put back here, and the shell's
        // prompt starts on a line of its own. (On Windows the console is only left so when the
        // node stops by itself: Ctrl-C is a key there, and closing the console ends the process.)
        #[cfg(unix)]
        if still_editing && let Some(t) = self.saved {
            // SAFETY: `t` is the termios read from fd 0 at the start.
            unsafe { libc::tcsetattr(0, libc::TCSANOW, &t) };
            use std::io::Write;
            let _ = std::io::stdout().write_all(b"\x1b[?2004l\r\n").and_then(|()| std::io::stdout().flush());
        }
        #[cfg(not(unix))]
        let _ = still_editing;
    }
}

/// The prompt: who this peer is and in which room (`Ada@5B> `), the name in its own colour.
fn prompt(name: &str, room: &str, paint: Paint) -> (String, String) {
    let (name, room) = (printable(name), printable(room));
    let raw = format!("{name}@{room}> ");
    let styled = format!("{}@{room}> ", paint.paint(Tone::Own, &name));
    (raw, styled)
}

/// The multi-line editor's prompt: a line that says what is being written and how to end it. The
/// text goes below it (the editor's text starts with a newline: see [`draft`]), so that the
/// instructions stay on screen while messages arrive above.
fn draft_prompt(d: &Draft, roster: &Roster, paint: Paint) -> (String, String) {
    let what = match d {
        Draft::Answer { problem } => match roster.problem(problem) {
            Some(p) => format!("Your answer to {} ({})", p.id.short(), p.title),
            None => format!("Your answer to {problem}"),
        },
        Draft::Feedback { answer } => match roster.answer(answer) {
            Some(a) => format!("Your feedback on {}'s answer {}", a.author, a.id.short()),
            None => format!("Your feedback on answer {answer}"),
        },
        Draft::Problem { title, private_answers: false } => format!("The exercise \"{title}\""),
        Draft::Problem { title, private_answers: true } => format!("The quiz \"{title}\""),
    };
    let how = ": end with a line holding only . (or Ctrl-D); Esc cancels";
    let line = format!("{}{how}", printable(&what));
    let styled = paint.paint(Tone::Hint, &line);
    (line, styled)
}

/// Read one text with `prompt`, the text starting with `initial`.
fn read(ed: &mut Editor<Assist, FileHistory>, prompt: &(String, String), initial: &str) -> Typed {
    match ed.readline_with_initial(prompt, (initial, "")) {
        Ok(line) => Typed::Line(line),
        Err(ReadlineError::Interrupted) => Typed::Cancelled,
        Err(ReadlineError::Eof) => Typed::End,
        Err(ReadlineError::Io(e)) if e.kind() == std::io::ErrorKind::InvalidData => Typed::NotText,
        Err(e) => {
            tracing::debug!(error = %e, "the terminal cannot be read any more");
            Typed::End
        }
    }
}

/// Keep `entry` for Up, Down and Ctrl-R, also after a restart.
fn remember(ed: &mut Editor<Assist, FileHistory>, ctx: &Ctx, entry: &str) {
    if entry.trim().is_empty() || !matches!(ed.add_history_entry(entry), Ok(true)) {
        return;
    }
    if let Some(h) = &ctx.history
        && let Err(e) = ed.append_history(h)
    {
        tracing::debug!(error = %e, file = %h.display(), "cannot save the line typed");
    }
}

/// The editor thread: read lines until the person leaves or the terminal is gone.
fn run(mut ed: Editor<Assist, FileHistory>, ctx: Ctx) {
    let Some((name, room)) = ctx.roster.me(Duration::from_secs(60)) else {
        return;
    };
    let prompt = prompt(&name, &room, ctx.paint);
    loop {
        ctx.mode.drafting.store(false, Ordering::Relaxed);
        let line = match read(&mut ed, &prompt, "") {
            Typed::Line(l) => l,
            Typed::Cancelled if ctx.mode.armed.swap(true, Ordering::Relaxed) => {
                let _ = ctx.send(Ok(Input::Quit));
                return;
            }
            Typed::Cancelled => {
                ctx.note(Tone::Hint, "(Ctrl-C again leaves, as /quit does)");
                continue;
            }
            Typed::NotText => {
                ctx.note(Tone::Error, NOT_TEXT);
                continue;
            }
            Typed::End => return,
        };
        ctx.mode.armed.store(false, Ordering::Relaxed);
        let parsed = match Draft::of(&line) {
            Some(d) => match draft(&mut ed, &ctx, d) {
                Some(Ok(input)) => Ok(input),
                Some(Err(())) => continue,
                None => return,
            },
            None => {
                remember(&mut ed, &ctx, &line);
                input::parse_owned(line)
            }
        };
        let quit = matches!(parsed, Ok(Input::Quit));
        if !ctx.send(parsed) || quit {
            return;
        }
    }
}

/// The multi-line editor for `d`: the command with its text, `Err` when cancelled (or there was
/// nothing to send), `None` at the end of input.
fn draft(ed: &mut Editor<Assist, FileHistory>, ctx: &Ctx, d: Draft) -> Option<Result<Input, ()>> {
    // An id that names nothing known is said now, not after the text is written.
    let unknown = match &d {
        Draft::Answer { problem } if ctx.roster.problem(problem).is_none() => {
            Some(lanpeer::Error::UnknownProblem(problem.clone()))
        }
        Draft::Feedback { answer } if ctx.roster.answer(answer).is_none() => {
            Some(lanpeer::Error::UnknownAnswer(answer.clone()))
        }
        _ => None,
    };
    if let Some(e) = unknown {
        ctx.note(Tone::Error, &format!("! {e}"));
        return Some(Err(()));
    }
    ctx.mode.drafting.store(true, Ordering::Relaxed);
    // The text starts on the line below the prompt: with a newline of its own, not one at the end
    // of the prompt, which rustyline would draw as one line too many while the text is empty
    // (and then clear one line too few when it prints above the prompt).
    let typed = read(ed, &draft_prompt(&d, &ctx.roster, ctx.paint), "\n");
    ctx.mode.drafting.store(false, Ordering::Relaxed);
    match typed {
        Typed::Line(text) => {
            let text = without_dot(text.strip_prefix('\n').map(str::to_string).unwrap_or(text));
            // Blank lines after the text are no part of it (an Enter before the `.`, say).
            let text = text.trim_end().to_string();
            // With files attached, an answer or feedback may be the files alone.
            if text.trim().is_empty() && !d.may_be_empty() && !ctx.roster.attached() {
                ctx.note(Tone::Hint, "(nothing written: nothing was sent)");
                return Some(Err(()));
            }
            // Kept whole in the history: Up brings the command back with its text, to send again
            // or to correct.
            remember(ed, ctx, &d.entry(&text));
            Some(Ok(d.finish(text)))
        }
        Typed::Cancelled => {
            ctx.note(Tone::Hint, "(cancelled: nothing was sent)");
            Some(Err(()))
        }
        Typed::NotText => {
            ctx.note(Tone::Error, NOT_TEXT);
            Some(Err(()))
        }
        Typed::End => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_dot_line_ends_the_text_and_is_not_part_of_it() {
        assert!(ends_with_dot("a\n  b\n."));
        assert!(ends_with_dot("."));
        assert!(ends_with_dot("a\n . "));
        assert!(!ends_with_dot("a\n.b"));
        assert!(!ends_with_dot("a.\n"));
        assert_eq!(without_dot("a\n  b\n.".into()), "a\n  b");
        assert_eq!(without_dot(".".into()), "");
        assert_eq!(without_dot("a\n  b".into()), "a\n  b", "Ctrl-D: no dot line");
    }

    #[test]
    fn the_prompt_shows_who_and_where_and_defuses_control_characters() {
        let (raw, styled) = prompt("Ada", "5B", Paint::OFF);
        assert_eq!((raw.as_str(), styled.as_str()), ("Ada@5B> ", "Ada@5B> "));
        let (raw, _) = prompt("A\x1bda", "5B", Paint::OFF);
        assert_eq!(raw, "A\u{fffd}da@5B> ");
    }
}
