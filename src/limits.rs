//! How large a message may be, by kind. The same for every peer (part of the protocol): a sender
//! refuses a message over its limit with one plain sentence, and a receiver drops one (an honest
//! peer never sends it), so that no member can fill the others' memory, disks and screens with a
//! single message, and no turn of the node grows past what its journal takes whole.

use crate::protocol::{Body, Envelope};

/// A chat line (to everyone or private), in bytes.
pub const CHAT: usize = 16 * 1024;
/// A problem's title, in bytes.
pub const TITLE: usize = crate::text::MAX_TITLE;
/// A problem's statement, in bytes.
pub const PROBLEM: usize = 256 * 1024;
/// An answer (code included), in bytes.
pub const ANSWER: usize = 256 * 1024;
/// Feedback on an answer, in bytes.
pub const FEEDBACK: usize = 64 * 1024;
/// An author's name as a message carries it, in bytes (shown cut to [`crate::text::MAX_NAME`]
/// characters).
pub const NAME: usize = 1024;
/// Files attached to one message, at most.
pub const FILES: usize = 1000;
/// A file's name (its path in a folder), in bytes.
pub const FILE_NAME: usize = 1024;
/// The messages of one [`crate::Node::submit_batch`], in bytes of text in all.
pub const BATCH_BYTES: usize = 16 << 20;

/// `n` bytes as people read sizes: `16 KiB`, `256 KiB`, `3 MiB`.
pub fn human(n: usize) -> String {
    match n {
        n if n >= 1 << 20 && n % (1 << 20) == 0 => format!("{} MiB", n >> 20),
        n if n >= 1 << 10 && n % (1 << 10) == 0 => format!("{} KiB", n >> 10),
        n => format!("{n} bytes"),
    }
}

/// The text fields of a body with their names and limits: (what, text, limit).
fn fields(body: &Body) -> Vec<(&'static str, &str, usize)> {
    match body {
        Body::Chat { text } => vec![("message", text, CHAT)],
        Body::Problem { title, body, .. } => vec![("title", title, TITLE), ("problem text", body, PROBLEM)],
        Body::Answer { text, .. } => vec![("answer", text, ANSWER)],
        Body::Feedback { text, .. } => vec![("feedback", text, FEEDBACK)],
    }
}

/// Is `body` within the limits of its kind? If not, one plain sentence that says what to do.
pub fn check_body(body: &Body) -> Result<(), String> {
    for (what, text, limit) in fields(body) {
        if text.len() > limit {
            return Err(format!("this {what} is longer than {}; shorten it", human(limit)));
        }
    }
    Ok(())
}

/// Is the whole envelope within the limits (its body, its author's name, its files)?
pub fn check(env: &Envelope) -> Result<(), String> {
    check_body(&env.body)?;
    if env.author_name.len() > NAME {
        return Err(format!("the name is longer than {}", human(NAME)));
    }
    if env.files.len() > FILES {
        return Err(format!("a message carries at most {FILES} files"));
    }
    if env.files.iter().any(|f| f.name.len() > FILE_NAME) {
        return Err(format!("a file name is longer than {}", human(FILE_NAME)));
    }
    Ok(())
}

/// The bytes of text a body holds.
pub fn text_len(body: &Body) -> usize {
    fields(body).iter().map(|(_, t, _)| t.len()).sum()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::id::{MsgId, PeerId};

    #[test]
    fn each_kind_has_its_limit_and_a_plain_sentence() {
        let id = MsgId { author: PeerId([1; 16]), seq: 1 };
        assert!(check_body(&Body::Chat { text: "x".repeat(CHAT) }).is_ok());
        assert_eq!(
            check_body(&Body::Chat { text: "x".repeat(CHAT + 1) }).unwrap_err(),
            "this message is longer than 16 KiB; shorten it"
        );
        assert_eq!(
            check_body(&Body::Answer { problem: id, text: "x".repeat(ANSWER + 1) }).unwrap_err(),
            "this answer is longer than 256 KiB; shorten it"
        );
        assert!(check_body(&Body::Answer { problem: id, text: "x".repeat(ANSWER) }).is_ok());
        assert!(check_body(&Body::Feedback { answer: id, text: "x".repeat(FEEDBACK + 1) }).is_err());
        let long_title = Body::Problem { title: "t".repeat(TITLE + 1), body: String::new(), private_answers: false };
        assert_eq!(check_body(&long_title).unwrap_err(), "this title is longer than 200 bytes; shorten it");
        assert_eq!(human(3 << 20), "3 MiB");
    }
}
