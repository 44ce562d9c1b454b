//! Lines that fit the terminal: a line wider than the terminal is broken here, its rest indented,
//! before the terminal would break it at the left margin itself.
//!
//! Why: a terminal goes on with a long line at the left margin, where lines start with a time and
//! a name. A peer's one-line chat padded to the reader's width would then show its tail as a line
//! of its own, `09:00:00  Ms Rivera: ...`. Broken here instead, every part of a peer's text stays
//! after its author's name or indented under it. The columns a character takes are counted so as
//! never to be fewer than a terminal gives it (East Asian "ambiguous" characters as two, an emoji's
//! presentation selector as one more), and the last column is left free: a line broken a little
//! early is harmless, one broken late is what this is for.
//!
//! Only a terminal has a width: lines written to a pipe or a file are left as they are.

use unicode_width::UnicodeWidthChar;

/// Below this many columns lines are not broken: an indented rest would hold next to nothing.
const NARROWEST: usize = 30;

/// Where the next character goes on a line of a terminal `width` columns wide.
pub struct Fit<'a> {
    /// The columns a line may fill: one less than the terminal's.
    room: usize,
    /// What a broken line goes on with.
    indent: &'a str,
    /// The column of the next character.
    col: usize,
}

/// The columns `c` takes at column `col`, never fewer than a terminal gives it.
fn columns(c: char, col: usize) -> usize {
    match c {
        '\t' => 8 - col % 8,
        // Makes the character before it an emoji, two columns wide, on many terminals.
        '\u{FE0F}' => 1,
        // A flag's halves: two columns each where no flag is drawn.
        '\u{1F1E6}'..='\u{1F1FF}' => 2,
        _ => c.width_cjk().unwrap_or(1),
    }
}

impl<'a> Fit<'a> {
    /// A line starting at the margin of a terminal `width` columns wide, whose rest, when it is
    /// broken, goes on after `indent`. `None` for a terminal too narrow to break lines on.
    pub fn new(width: usize, indent: &'a str) -> Option<Fit<'a>> {
        (width >= NARROWEST).then(|| Fit { room: width - 1, indent, col: 0 })
    }

    /// `text` appended to `out`, broken (a newline, then the indent) before each character that
    /// would go past the line's room. A newline in `text` starts a new line at the margin.
    pub fn push(&mut self, out: &mut String, text: &str) {
        for c in text.chars() {
            if c == '\n' {
                out.push('\n');
                self.col = 0;
                continue;
            }
            if self.col + columns(c, self.col) > self.room && self.col > self.indent.len() {
                out.push('\n');
                out.push_str(self.indent);
                self.col = self.indent.len();
            }
            self.col += columns(c, self.col);
            out.push(c);
        }
    }
}

/// The width of the terminal that stdout is, in columns; `None` when stdout is not a terminal.
#[cfg(unix)]
pub fn terminal_width() -> Option<usize> {
    // SAFETY: `winsize` is plain data; TIOCGWINSZ fills the one it is given, for this process's
    // stdout, and fails (leaving it) when stdout is not a terminal.
    let mut ws: libc::winsize = unsafe { std::mem::zeroed() };
    let r = unsafe { libc::ioctl(libc::STDOUT_FILENO, libc::TIOCGWINSZ, &mut ws) };
    (r == 0 && ws.ws_col > 0).then_some(usize::from(ws.ws_col))
}

/// The width of the console window that stdout is, in columns; `None` when it is not a console.
#[cfg(windows)]
pub fn terminal_width() -> Option<usize> {
    use windows_sys::Win32::System::Console::{
        CONSOLE_SCREEN_BUFFER_INFO, GetConsoleScreenBufferInfo, GetStdHandle, STD_OUTPUT_HANDLE,
    };
    // SAFETY: the handle is this process's stdout; the call fills the plain struct it is given,
    // and fails for a handle that is not a console.
    let mut info: CONSOLE_SCREEN_BUFFER_INFO = unsafe { std::mem::zeroed() };
    let ok = unsafe { GetConsoleScreenBufferInfo(GetStdHandle(STD_OUTPUT_HANDLE), &mut info) };
    let width = i32::from(info.srWindow.Right) - i32::from(info.srWindow.Left) + 1;
    (ok != 0 && width > 0).then_some(width as usize)
}

#[cfg(not(any(unix, windows)))]
pub fn terminal_width() -> Option<usize> {
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fit(width: usize, pieces: &[&str]) -> String {
        let mut f = Fit::new(width, "    ").unwrap();
        let mut out = String::new();
        for p in pieces {
            f.push(&mut out, p);
        }
        out
    }

    #[test]
    fn a_long_line_goes_on_indented_before_the_last_column() {
        let pad = " ".repeat(40);
        let got = fit(40, &["12:00:00  Sam: ", &format!("x{pad}09:00:00  Ms Rivera: hi")]);
        for l in got.lines() {
            assert!(l.chars().count() < 40, "{l:?}");
        }
        for l in got.lines().skip(1) {
            assert!(l.starts_with("    "), "a rest at the margin: {l:?}");
        }
        assert_eq!(got.replace("\n    ", ""), format!("12:00:00  Sam: x{pad}09:00:00  Ms Rivera: hi"));
        // A line that fits is left as it is; a newline starts again at the margin.
        assert_eq!(fit(40, &["short", "\nand short"]), "short\nand short");
    }

    #[test]
    fn wide_characters_count_as_the_terminal_draws_them() {
        // 日本 is 4 columns, not 2; ✔ with its emoji selector, 2; a flag's half, 2.
        let got = fit(30, &["日本".repeat(10).as_str()]);
        assert!(got.lines().next().unwrap().chars().count() <= 14, "{got}");
        let got = fit(30, &["\u{2714}\u{FE0F}".repeat(20).as_str()]);
        assert!(got.lines().next().unwrap().chars().count() <= 29, "{got}");
        let got = fit(30, &["\u{1F1EB}".repeat(20).as_str()]);
        assert_eq!(got.lines().next().unwrap().chars().count(), 14, "{got}");
        // Tabs go to the next stop of 8.
        assert_eq!(fit(30, &["\t\t\tab\tc"]), "\t\t\tab\n    \tc");
    }

    #[test]
    fn a_narrow_terminal_is_left_to_itself() {
        assert!(Fit::new(NARROWEST - 1, "    ").is_none());
    }
}
