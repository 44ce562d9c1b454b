//! Text from peers made safe to show: names and titles are one line of plain characters of a
//! bounded length, whatever a peer (or a journal written before these rules) holds.
//!
//! Why: a name is what a person trusts when reading who said what. Control characters (a
//! newline, a terminal escape) could forge a line that looks like another person's message;
//! bidirectional overrides (U+202E and its kin) could make `Sam` read as another name, and other
//! invisible format characters (zero-width spaces) could make two different names look alike.

/// Longest name kept, in characters.
pub const MAX_NAME: usize = 64;
/// Longest title kept, in bytes.
pub const MAX_TITLE: usize = 200;

/// Characters never shown in a name or a title, and shown as a visible mark in other text: the
/// bidirectional controls (embeddings, overrides, isolates, marks) and the invisible format
/// characters that make two texts look alike (zero-width space, word joiner, byte-order mark,
/// soft hyphen). The zero-width joiner and non-joiner stay: scripts and emoji need them.
pub fn is_hidden_format(c: char) -> bool {
    matches!(c,
        '\u{061C}' | '\u{200E}' | '\u{200F}' | '\u{202A}'..='\u{202E}' | '\u{2066}'..='\u{2069}'
        | '\u{200B}' | '\u{2060}'..='\u{2064}' | '\u{FEFF}' | '\u{00AD}' | '\u{180E}')
}

/// Is `name` as [`clean_name`] makes it already?
fn is_clean_name(name: &str) -> bool {
    name.len() <= MAX_NAME
        && name.trim() == name
        && !name.is_empty()
        && name.chars().all(|c| !c.is_control() && !is_hidden_format(c))
}

/// [`clean_name`] of an owned name: the same string, not a copy, when it is clean already (the
/// name of every message received).
pub fn clean_name_owned(name: String) -> String {
    if is_clean_name(&name) { name } else { clean_name(&name) }
}

/// A name as shown: no control or hidden format characters, spaces trimmed, at most
/// [`MAX_NAME`] characters.
pub fn clean_name(name: &str) -> String {
    let s: String = name.chars().filter(|c| !c.is_control() && !is_hidden_format(*c)).take(MAX_NAME).collect();
    s.trim().to_string()
}

/// A title as shown: as a name, cut at [`MAX_TITLE`] bytes (on a character boundary).
pub fn clean_title(title: &str) -> String {
    let s: String =
        title.chars().map(|c| if c.is_control() { ' ' } else { c }).filter(|c| !is_hidden_format(*c)).collect();
    let s = s.trim();
    let mut end = s.len().min(MAX_TITLE);
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    s[..end].trim_end().to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_one_plain_line() {
        assert_eq!(clean_name("  Sam \n09:00  Teacher: hi"), "Sam 09:00  Teacher: hi");
        assert_eq!(clean_name("Sa\u{202E}maS"), "SamaS", "no override");
        assert_eq!(clean_name("Ms\u{200B} Rivera"), "Ms Rivera", "no zero-width space");
        assert_eq!(clean_name("\u{1b}[31mred"), "[31mred");
        assert_eq!(clean_name(&"é".repeat(100)).chars().count(), MAX_NAME);
        assert_eq!(clean_name("👩\u{200D}🏫 Ada"), "👩\u{200D}🏫 Ada", "emoji sequences are kept");
    }

    #[test]
    fn titles_are_one_line_of_bounded_length() {
        assert_eq!(clean_title("Loops\nfake line"), "Loops fake line");
        assert_eq!(clean_title("a\u{2067}b"), "ab");
        let long = "é".repeat(150);
        let t = clean_title(&long);
        assert!(t.len() <= MAX_TITLE && t.chars().all(|c| c == 'é'));
    }
}
