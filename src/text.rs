//! Text from peers made safe to show: names and titles are one line of plain characters of a
//! bounded length, whatever a peer (or a journal written before these rules) holds; other text
//! (a chat, an answer) keeps every character but shows the invisible ones as a visible tag.
//!
//! Why: a name is what a person trusts when reading who said what. Control characters (a
//! newline, a terminal escape) could forge a line that looks like another person's message;
//! bidirectional overrides (U+202E and its kin) could make `Sam` read as another name, and other
//! invisible format characters (zero-width spaces) could make two different names look alike.

use std::borrow::Cow;

/// Longest name kept, in characters.
pub const MAX_NAME: usize = 64;
/// Longest title kept, in bytes.
pub const MAX_TITLE: usize = 200;

/// Characters never shown in a name or a title, and shown as a visible tag in other text
/// ([`neutralize`]): the bidirectional controls (embeddings, overrides, isolates, marks); the
/// invisible format characters that make two texts look alike (zero-width space, word joiner,
/// byte-order mark, soft hyphen, the other default-ignorable code points, the blank Hangul
/// fillers); the line and paragraph separators (a line break to some readers, none to others);
/// the interlinear annotation marks. What scripts and emoji need stays: the zero-width joiner
/// and non-joiner, the variation selectors, Mongolian's free variation selectors, and the tag
/// characters of a flag (see [`hidden`]: those are told apart by what comes before them).
pub fn is_hidden_format(c: char) -> bool {
    matches!(c,
        '\u{061C}' | '\u{200E}' | '\u{200F}' | '\u{202A}'..='\u{202E}' | '\u{2066}'..='\u{2069}'
        | '\u{200B}' | '\u{2060}'..='\u{2065}' | '\u{206A}'..='\u{206F}' | '\u{FEFF}' | '\u{00AD}'
        | '\u{180E}' | '\u{034F}' | '\u{115F}' | '\u{1160}' | '\u{17B4}' | '\u{17B5}' | '\u{3164}'
        | '\u{FFA0}' | '\u{FFF0}'..='\u{FFFB}' | '\u{2028}' | '\u{2029}' | '\u{1BCA0}'..='\u{1BCA3}'
        | '\u{1D173}'..='\u{1D17A}' | '\u{E0000}'..='\u{E00FF}' | '\u{E01F0}'..='\u{E0FFF}')
}

/// The black flag that starts a flag of tag characters (England's: U+1F3F4, then the tags of
/// `gbeng`, then U+E007F).
const FLAG: char = '\u{1F3F4}';

/// A tag character that spells a flag's region, or ends it.
fn is_flag_tag(c: char) -> bool {
    matches!(c, '\u{E0020}'..='\u{E007F}')
}

/// Each character of `text` with whether it is hidden: [`is_hidden_format`], except the tag
/// characters of a flag sequence (a black flag, then tags), which emoji need.
fn hidden(text: &str) -> impl Iterator<Item = (char, bool)> + '_ {
    let mut in_flag = false;
    text.chars().map(move |c| {
        in_flag = c == FLAG || (in_flag && is_flag_tag(c));
        (c, is_hidden_format(c) && !(in_flag && is_flag_tag(c)))
    })
}

/// Brackets never kept in a name: lanpeer marks people with them (`[teacher]`, `[private]`), and
/// a name must not carry a mark of its own (`Ms Rivera [teacher]`), nor its look-alikes.
fn is_mark_bracket(c: char) -> bool {
    matches!(
        c,
        '[' | ']'
            | '［'
            | '］'
            | '【'
            | '】'
            | '〔'
            | '〕'
            | '〖'
            | '〗'
            | '〘'
            | '〙'
            | '〚'
            | '〛'
            | '⟦'
            | '⟧'
            | '⁅'
            | '⁆'
    )
}

/// The end of a name that only lanpeer may write: the start of an id (`Sam (6d81c34e)`, the
/// label of one of two Sams) or `(you)`. The length of that end, in bytes.
fn marked_end(name: &str) -> Option<usize> {
    let open = name.rfind('(')?;
    let inner = name[open + 1..].strip_suffix(')')?;
    let id = inner.len() == crate::id::SHORT_LEN && inner.bytes().all(|b| b.is_ascii_hexdigit());
    (id || inner.eq_ignore_ascii_case("you")).then(|| name.len() - open)
}

/// Is `name` as [`clean_name`] makes it already?
fn is_clean_name(name: &str) -> bool {
    name.chars().count() <= MAX_NAME
        && name.trim() == name
        && !name.is_empty()
        && hidden(name).all(|(c, h)| !c.is_control() && !h && !is_mark_bracket(c))
        && marked_end(name).is_none()
}

/// [`clean_name`] of an owned name: the same string, not a copy, when it is clean already (the
/// name of every message received).
pub fn clean_name_owned(name: String) -> String {
    if is_clean_name(&name) { name } else { clean_name(&name) }
}

/// A name as shown: no control or hidden format characters, no brackets, no end that looks like
/// lanpeer's own marks (`(6d81c34e)`, `(you)`), spaces trimmed, at most [`MAX_NAME`] characters.
pub fn clean_name(name: &str) -> String {
    let mut s: String = hidden(name)
        .filter(|(c, h)| !c.is_control() && !h && !is_mark_bracket(*c))
        .map(|(c, _)| c)
        .take(MAX_NAME)
        .collect();
    while let Some(n) = marked_end(s.trim_end()) {
        let keep = s.trim_end().len() - n;
        s.truncate(keep);
    }
    s.trim().to_string()
}

/// A title as shown: as a name, cut at [`MAX_TITLE`] bytes (on a character boundary).
pub fn clean_title(title: &str) -> String {
    let s: String = hidden(title).filter(|(_, h)| !h).map(|(c, _)| if c.is_control() { ' ' } else { c }).collect();
    let s = s.trim();
    let mut end = s.len().min(MAX_TITLE);
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    s[..end].trim_end().to_string()
}

/// `text` with every hidden character ([`is_hidden_format`]) shown as a visible tag of its code
/// point, e.g. `<U+202E>`: the reader sees that it is there and what it is, and it changes
/// nothing around it (no reordering, no look-alike). Every other character is kept, control
/// characters included (the terminal's own rules deal with those).
pub fn neutralize(text: &str) -> Cow<'_, str> {
    if !hidden(text).any(|(_, h)| h) {
        return Cow::Borrowed(text);
    }
    let mut out = String::with_capacity(text.len() + 16);
    for (c, h) in hidden(text) {
        if h {
            out.push_str(&format!("<U+{:04X}>", c as u32));
        } else {
            out.push(c);
        }
    }
    Cow::Owned(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_one_plain_line() {
        assert_eq!(clean_name("  Sam \n09:00  Teacher: hi"), "Sam 09:00  Teacher: hi");
        assert_eq!(clean_name("Sa\u{202E}maS"), "SamaS", "no override");
        assert_eq!(clean_name("Ms\u{200B} Rivera"), "Ms Rivera", "no zero-width space");
        assert_eq!(clean_name("\u{1b}[31mred"), "31mred");
        assert_eq!(clean_name(&"é".repeat(100)).chars().count(), MAX_NAME);
        assert_eq!(clean_name("👩\u{200D}🏫 Ada"), "👩\u{200D}🏫 Ada", "emoji sequences are kept");
        assert_eq!(clean_name("\u{3164}"), "", "a blank filler is no name");
        assert_eq!(clean_name("Sam\u{2028}Teacher"), "SamTeacher", "no line separator");
        assert_eq!(clean_name("Sam\u{E0041}\u{E0042}"), "Sam", "no hidden tag letters");
    }

    #[test]
    fn titles_are_one_line_of_bounded_length() {
        assert_eq!(clean_title("Loops\nfake line"), "Loops fake line");
        assert_eq!(clean_title("a\u{2067}b"), "ab");
        assert_eq!(clean_title("a\u{2029}b\u{FEFF}"), "ab");
        let long = "é".repeat(150);
        let t = clean_title(&long);
        assert!(t.len() <= MAX_TITLE && t.chars().all(|c| c == 'é'));
    }

    #[test]
    fn hidden_characters_are_shown_as_tags() {
        assert_eq!(neutralize("pay \u{202E}3$ ot\u{202C} me"), "pay <U+202E>3$ ot<U+202C> me");
        assert_eq!(neutralize("a\u{200B}b\u{2066}c\u{2069}"), "a<U+200B>b<U+2066>c<U+2069>");
        assert_eq!(neutralize("x\u{2028}y"), "x<U+2028>y");
        assert_eq!(neutralize("secret\u{E0068}\u{E0069}"), "secret<U+E0068><U+E0069>");
        assert_eq!(neutralize("\u{1D173}"), "<U+1D173>", "five hex digits when needed");
    }

    #[test]
    fn ordinary_text_is_kept_as_it_is() {
        for text in [
            "plain ascii, tabs\tand\nnewlines",
            "été, Ελληνικά, русский, עברית, العربية, 日本語, 한국어",
            "👩\u{200D}🏫 👨\u{200D}👩\u{200D}👧 ❤\u{FE0F} 👍🏽",
            "क्\u{200D}ष and می\u{200C}خواهم",
            "England: \u{1F3F4}\u{E0067}\u{E0062}\u{E0065}\u{E006E}\u{E0067}\u{E007F}",
            "\u{8FBB}\u{E0100} (an ideographic variation)",
            "\u{1b}[31m control characters are the terminal's business",
        ] {
            assert!(matches!(neutralize(text), Cow::Borrowed(t) if t == text), "{text:?}");
        }
        assert_eq!(
            clean_name("\u{1F3F4}\u{E0067}\u{E0062}\u{E0073}\u{E0063}\u{E0074}\u{E007F} Ada"),
            "\u{1F3F4}\u{E0067}\u{E0062}\u{E0073}\u{E0063}\u{E0074}\u{E007F} Ada",
            "a flag in a name is kept"
        );
        // Tags after the flag's sequence ended are hidden again.
        assert_eq!(neutralize("\u{1F3F4}\u{E0067}x\u{E0067}"), "\u{1F3F4}\u{E0067}x<U+E0067>");
    }

    #[test]
    fn a_name_cannot_carry_lanpeer_s_own_marks() {
        assert_eq!(clean_name("Ms Rivera [teacher]"), "Ms Rivera teacher");
        assert_eq!(clean_name("Ms Rivera ［teacher］"), "Ms Rivera teacher");
        assert_eq!(clean_name("Sam (6d81c34e)"), "Sam");
        assert_eq!(clean_name("Sam (you)"), "Sam");
        assert_eq!(clean_name("Sam (6d81c34e) (YOU)"), "Sam");
        assert_eq!(clean_name("Sam (B)"), "Sam (B)", "other parentheses stay");
        for n in ["Ms Rivera [teacher]", "Sam (6d81c34e)", "Sam (you)", "Sam (B)", "Léa"] {
            assert_eq!(clean_name_owned(n.to_string()), clean_name(n), "{n}");
        }
    }
}
