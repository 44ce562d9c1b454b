//! What every benchmark sends: chats of [`TEXT_LEN`] bytes, as text for `node.chat` and as the
//! envelope a peer would store and send, so that the store, the stream and its floor measure the
//! same bytes.

use lanpeer::Body;

/// Size of every chat text, in bytes.
pub const TEXT_LEN: usize = 100;

/// A chat text of [`TEXT_LEN`] bytes that starts with `prefix` (a fan-out round's number, a tag).
pub fn text(prefix: &str) -> String {
    let mut t = prefix.to_string();
    while t.len() < TEXT_LEN {
        t.push((b'a' + (t.len() % 26) as u8) as char);
    }
    t.truncate(TEXT_LEN);
    t
}

/// The author of [`chat_envelope`]'s chats.
pub const AUTHOR: lanpeer::PeerId = lanpeer::PeerId([7; 16]);

/// A chat of [`TEXT_LEN`] bytes as a peer would send it, number `seq` of [`AUTHOR`].
pub fn chat_envelope(seq: u64, tag: &str) -> lanpeer::protocol::Envelope {
    lanpeer::protocol::Envelope {
        id: lanpeer::MsgId { author: AUTHOR, seq },
        author_name: "bench".into(),
        sent_ms: 1,
        to: None,
        body: Body::Chat { text: text(tag) },
        files: vec![],
    }
}
