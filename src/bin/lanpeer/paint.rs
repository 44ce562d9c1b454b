//! Colour, decided in one place: whether a run has colour at all, and which style each kind of
//! text gets. The lines for people (output.rs) and the prompt (editor.rs) only name a [`Tone`];
//! changing a colour, or the rule for when there is colour, is a change here alone.
//!
//! Colour is for a person at a terminal: only the terminal front end asks for it, and it is off
//! with `NO_COLOR` (set and not empty, as <https://no-color.org> says), with `TERM=dumb`, and when
//! stdout is not a terminal. Without colour a line is exactly its text.

use anstyle::{AnsiColor, Color, Style};

/// What a piece of text is, as far as its colour goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Tone {
    /// Everything not named below.
    Plain,
    /// The time at the start of a line.
    Time,
    /// A person, by one of the [`NAMES`] colours (chosen from their id, so it stays theirs).
    Name(usize),
    /// A person whose role is teacher.
    Teacher,
    /// This peer's own name.
    Own,
    /// The mark of a private message.
    Private,
    /// An id to type in a command (of a problem or an answer).
    Id,
    /// Someone came or went.
    Notice,
    /// A warning from the node.
    Warning,
    /// A mistake of the user, or a refused command.
    Error,
    /// A hint of the line editor (how to end the multi-line editor, say).
    Hint,
}

/// The colours that tell people apart: none of them is one of the tones above (green is one's
/// own name, magenta private, red errors, bright yellow the teacher).
const NAMES: [AnsiColor; 5] =
    [AnsiColor::Cyan, AnsiColor::Blue, AnsiColor::Yellow, AnsiColor::BrightCyan, AnsiColor::BrightBlue];

/// The tone of a person's name, from the first byte of their id.
pub fn name_tone(id_first_byte: u8) -> Tone {
    Tone::Name(id_first_byte as usize % NAMES.len())
}

fn fg(c: AnsiColor) -> Style {
    Style::new().fg_color(Some(Color::Ansi(c)))
}

/// The style of a tone.
fn style(tone: Tone) -> Style {
    match tone {
        Tone::Plain => Style::new(),
        Tone::Time | Tone::Notice | Tone::Hint => Style::new().dimmed(),
        Tone::Name(i) => fg(NAMES[i % NAMES.len()]),
        Tone::Teacher => fg(AnsiColor::BrightYellow).bold(),
        Tone::Own => fg(AnsiColor::Green).bold(),
        Tone::Private => fg(AnsiColor::Magenta).bold(),
        Tone::Id => Style::new().bold(),
        Tone::Warning => fg(AnsiColor::Yellow).bold(),
        Tone::Error => fg(AnsiColor::Red).bold(),
    }
}

/// Whether text gets colour, and the colouring itself.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Paint {
    on: bool,
}

impl Paint {
    /// No colour: scripts, pipes, files, `--json`.
    pub const OFF: Paint = Paint { on: false };

    /// Colour for the terminal front end, unless the environment or the output says no.
    pub fn for_terminal() -> Paint {
        let no_color = std::env::var_os("NO_COLOR").is_some_and(|v| !v.is_empty());
        let dumb = std::env::var_os("TERM").is_some_and(|t| t == "dumb");
        let tty = std::io::IsTerminal::is_terminal(&std::io::stdout());
        let on = !no_color && !dumb && tty && console_takes_colour();
        Paint { on }
    }

    /// True when text gets colour.
    pub fn is_on(self) -> bool {
        self.on
    }

    /// Append `text` to `out` in `tone` (just `text` without colour).
    pub fn push(self, out: &mut String, tone: Tone, text: &str) {
        let st = style(tone);
        if !self.on || st == Style::new() || text.is_empty() {
            out.push_str(text);
            return;
        }
        use std::fmt::Write;
        let _ = write!(out, "{}{text}{}", st.render(), st.render_reset());
    }

    /// `text` in `tone`.
    pub fn paint(self, tone: Tone, text: &str) -> String {
        let mut s = String::with_capacity(text.len() + 16);
        self.push(&mut s, tone, text);
        s
    }
}

/// The Windows console shows escape sequences as text unless its escape processing is on: switch
/// it on, and go without colour where that fails (an old console).
#[cfg(windows)]
fn console_takes_colour() -> bool {
    anstyle_query::windows::enable_ansi_colors().unwrap_or(false)
}

#[cfg(not(windows))]
fn console_takes_colour() -> bool {
    true
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn without_colour_the_text_is_untouched() {
        assert_eq!(Paint::OFF.paint(Tone::Error, "! bad"), "! bad");
        let on = Paint { on: true };
        let red = on.paint(Tone::Error, "! bad");
        assert!(red.starts_with('\x1b') && red.contains("! bad") && red.ends_with('m'), "{red:?}");
        assert_eq!(on.paint(Tone::Plain, "x"), "x", "plain text gets no escape sequence");
    }

    #[test]
    fn every_name_colour_differs_from_the_other_tones() {
        let others: Vec<Style> =
            [Tone::Teacher, Tone::Own, Tone::Private, Tone::Error, Tone::Warning].iter().map(|t| style(*t)).collect();
        for i in 0..NAMES.len() {
            assert!(!others.contains(&style(Tone::Name(i))), "name colour {i}");
        }
        assert_eq!(name_tone(7), name_tone(7 + NAMES.len() as u8));
    }
}
