//! What Tab completes at the prompt, and to what: pure, from the line, the cursor and a copy of
//! the [`Roster`](crate::roster::Roster); editor.rs hands the candidates to rustyline.
//!
//! - the first word of a line starting with `/`: the commands;
//! - the word after `/msg`: an online peer, by name or id (to the name when it is one word and no
//!   one else's, else to the short id, which `/msg` always understands);
//! - the word after `/answer` (and `/status`): a problem id; after `/feedback`: an answer id
//!   (typed as the start of the id, or of the problem's title);
//! - any word after `/send` or `/attach`: a path;
//! - any other word: the name of an online peer, as a nickname in a chat.

use crate::input::{self, Arg};
use crate::roster::Known;

/// One completion: what the list shows, and what replaces the word.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Candidate {
    pub display: String,
    pub replacement: String,
}

/// Does `s` start with `prefix`, whatever the case?
fn starts_with_ci(s: &str, prefix: &str) -> bool {
    s.to_lowercase().starts_with(&prefix.to_lowercase())
}

/// Where a completion starts in the line, and its candidates.
pub type Completions = (usize, Vec<Candidate>);

/// The completions of the word that ends at `pos` in `line`: where that word starts, and the
/// candidates. `paths` completes a path at `(line, pos)` the same way.
pub fn complete(line: &str, pos: usize, known: &Known, paths: &dyn Fn(&str, usize) -> Completions) -> Completions {
    let pos = pos.min(line.len());
    let head = &line[..pos];
    let start = head.rfind(char::is_whitespace).map_or(0, |i| i + head[i..].chars().next().map_or(1, char::len_utf8));
    let word = &head[start..];
    let Some(command) = head.strip_prefix('/').map(|_| head.split(char::is_whitespace).next().unwrap_or(head)) else {
        return (start, nicknames(word, known));
    };
    if start == 0 {
        let list = input::COMMANDS
            .iter()
            .filter(|c| starts_with_ci(c, word))
            .map(|c| Candidate { display: c.to_string(), replacement: format!("{c} ") })
            .collect();
        return (0, list);
    }
    let arg = input::arg_of(command);
    if arg == Arg::Path {
        return paths(line, pos);
    }
    // Which word after the command this is (the first is 0).
    let before = head[command.len()..start].split_whitespace().count();
    let list = match arg {
        Arg::Peer if before == 0 => peers(word, known),
        Arg::Problem if before == 0 => problems(word, known),
        Arg::Answer if before == 0 => answers(word, known),
        _ => nicknames(word, known),
    };
    (start, list)
}

/// A candidate's text as the list shows it: peers' names and titles made printable.
fn shown(text: String) -> String {
    crate::output::printable(&text).into_owned()
}

/// Does `name` hold a character that shows as nothing? Such a name is never typed for the user
/// (it would carry the character into what they send): the id is, or nothing.
fn hides(name: &str) -> bool {
    name.chars().any(|c| c.is_control() || lanpeer::text::is_hidden_format(c))
}

/// Online peers for `/msg`: by the start of the name or of the id.
fn peers(word: &str, known: &Known) -> Vec<Candidate> {
    let unique = |name: &str| known.peers.iter().filter(|(_, n)| n.eq_ignore_ascii_case(name)).count() == 1;
    known
        .peers
        .iter()
        .filter(|(id, name)| word.is_empty() || starts_with_ci(name, word) || id.matches_prefix(word))
        .map(|(id, name)| {
            let by_name = !name.contains(char::is_whitespace) && !hides(name) && unique(name);
            let replacement = if by_name { format!("{name} ") } else { format!("{} ", id.short()) };
            Candidate { display: shown(format!("{name} ({})", id.short())), replacement }
        })
        .collect()
}

/// Names of online peers, as they are (for a chat).
fn nicknames(word: &str, known: &Known) -> Vec<Candidate> {
    if word.is_empty() {
        return Vec::new();
    }
    let mut names: Vec<&str> =
        known.peers.iter().map(|(_, n)| n.as_str()).filter(|n| starts_with_ci(n, word) && !hides(n)).collect();
    names.dedup();
    names.into_iter().map(|n| Candidate { display: n.to_string(), replacement: n.to_string() }).collect()
}

/// Problems for `/answer`: by the start of the id or of the title, the newest first.
fn problems(word: &str, known: &Known) -> Vec<Candidate> {
    known
        .problems
        .iter()
        .rev()
        .filter(|p| starts_with_ci(&p.id.short(), word) || starts_with_ci(&p.title, word))
        .map(|p| Candidate {
            display: shown(format!("{}  {} (by {})", p.id.short(), p.title, p.author)),
            replacement: format!("{} ", p.id.short()),
        })
        .collect()
}

/// Answers for `/feedback`: by the start of the id, of the author's name or of the problem's
/// title, the newest first.
fn answers(word: &str, known: &Known) -> Vec<Candidate> {
    let title = |id| known.problems.iter().find(|p| p.id == id).map(|p| p.title.as_str()).unwrap_or("?");
    known
        .answers
        .iter()
        .rev()
        .filter(|a| {
            starts_with_ci(&a.id.short(), word)
                || starts_with_ci(&a.author, word)
                || starts_with_ci(title(a.problem), word)
        })
        .map(|a| Candidate {
            display: shown(format!("{}  by {} on {}", a.id.short(), a.author, title(a.problem))),
            replacement: format!("{} ", a.id.short()),
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::roster::{Answer, Problem};
    use lanpeer::{MsgId, PeerId};

    fn known() -> Known {
        let loops = MsgId { author: PeerId([0x3f; 16]), seq: 4 };
        let squares = MsgId { author: PeerId([0x3f; 16]), seq: 9 };
        Known {
            peers: vec![
                (PeerId([0xbe; 16]), "beatrice".into()),
                (PeerId([0x12; 16]), "Ms Rivera".into()),
                (PeerId([0x13; 16]), "sam".into()),
                (PeerId([0x14; 16]), "Sam".into()),
            ],
            problems: vec![
                Problem { id: loops, title: "Loops".into(), author: "Ms Rivera".into() },
                Problem { id: squares, title: "Squares".into(), author: "Ms Rivera".into() },
            ],
            answers: vec![Answer {
                id: MsgId { author: PeerId([0xbe; 16]), seq: 2 },
                author: "beatrice".into(),
                problem: loops,
            }],
        }
    }

    fn no_paths(_: &str, _: usize) -> (usize, Vec<Candidate>) {
        (0, Vec::new())
    }

    fn replacements(line: &str) -> (usize, Vec<String>) {
        let (start, c) = complete(line, line.len(), &known(), &no_paths);
        (start, c.into_iter().map(|c| c.replacement).collect())
    }

    #[test]
    fn commands_complete_at_the_start() {
        assert_eq!(replacements("/pe"), (0, vec!["/peers ".to_string()]));
        assert_eq!(replacements("/PRob"), (0, vec!["/problem ".to_string(), "/problems ".to_string()]));
        assert_eq!(replacements("/zz"), (0, vec![]));
    }

    #[test]
    fn msg_completes_a_peer_to_a_name_it_understands() {
        assert_eq!(replacements("/msg bea"), (5, vec!["beatrice ".to_string()]));
        assert_eq!(replacements("/m BEBE"), (3, vec!["beatrice ".to_string()]), "by the start of the id");
        // Two words, or two people of one name: the id.
        assert_eq!(replacements("/msg ms"), (5, vec!["12121212 ".to_string()]));
        assert_eq!(replacements("/msg sa"), (5, vec!["13131313 ".to_string(), "14141414 ".to_string()]));
        // The text after the name completes names as they are.
        assert_eq!(replacements("/msg bea hello Ms R"), (18, vec![]));
        assert_eq!(replacements("/msg beatrice hi mS"), (17, vec!["Ms Rivera".to_string()]));
    }

    #[test]
    fn hidden_characters_of_a_name_are_shown_and_never_typed() {
        let mut k = known();
        k.peers.push((PeerId([0x77; 16]), "zed\u{202E}nimda".into()));
        k.problems.push(Problem {
            id: MsgId { author: PeerId([0x77; 16]), seq: 1 },
            title: "zz\u{200B}top".into(),
            author: "zed\u{202E}nimda".into(),
        });
        let (_, c) = complete("/msg ze", 7, &k, &no_paths);
        assert_eq!((c[0].display.as_str(), c[0].replacement.as_str()), ("zed<U+202E>nimda (77777777)", "77777777 "));
        let (_, c) = complete("hi ze", 5, &k, &no_paths);
        assert!(c.is_empty(), "a name that hides a character is not typed into a chat: {:?}", c[0].replacement);
        let (_, c) = complete("/answer zz", 10, &k, &no_paths);
        assert_eq!(c[0].display, "77777777-1  zz<U+200B>top (by zed<U+202E>nimda)");
    }

    #[test]
    fn ids_complete_after_answer_and_feedback() {
        assert_eq!(replacements("/answer "), (8, vec!["3f3f3f3f-9 ".to_string(), "3f3f3f3f-4 ".to_string()]));
        assert_eq!(replacements("/answer 3f3f3f3f-4"), (8, vec!["3f3f3f3f-4 ".to_string()]));
        assert_eq!(replacements("/a loo"), (3, vec!["3f3f3f3f-4 ".to_string()]), "by the title");
        assert_eq!(replacements("/status sq"), (8, vec!["3f3f3f3f-9 ".to_string()]));
        assert_eq!(replacements("/feedback "), (10, vec!["bebebebe-2 ".to_string()]));
        assert_eq!(replacements("/f loops"), (3, vec!["bebebebe-2 ".to_string()]));
        assert_eq!(replacements("/answer 3f3f3f3f-4 be"), (19, vec!["beatrice".to_string()]));
        let (_, shown) = complete("/answer lo", 10, &known(), &no_paths);
        assert_eq!(shown[0].display, "3f3f3f3f-4  Loops (by Ms Rivera)");
    }

    #[test]
    fn paths_complete_after_send_and_attach() {
        let paths = |line: &str, pos: usize| (pos, vec![Candidate { display: line.into(), replacement: "x".into() }]);
        let (start, c) = complete("/send notes/a", 13, &known(), &paths);
        assert_eq!((start, c[0].display.as_str()), (13, "/send notes/a"));
        let (_, c) = complete("/attach 3f-4 ./", 15, &known(), &paths);
        assert_eq!(c.len(), 1);
    }

    #[test]
    fn a_chat_completes_nicknames_and_nothing_on_an_empty_word() {
        assert_eq!(replacements("thanks bea"), (7, vec!["beatrice".to_string()]));
        assert_eq!(replacements("thanks "), (7, vec![]));
        // In a pasted block, the word at the cursor on its own line.
        assert_eq!(replacements("line one\n  bea"), (11, vec!["beatrice".to_string()]));
        // Wide characters before the cursor: the start is a character boundary.
        assert_eq!(replacements("日本語 bea"), (10, vec!["beatrice".to_string()]));
    }
}
