//! Messages of a data dir from before signed messages (protocol version 1): how its journal
//! wrote them, read into today's envelope. They stay readable here (history, export) and are
//! never handed on: nothing proves who wrote them.

use serde::Deserialize;

use crate::codec;
use crate::id::{MsgId, PeerId};
use crate::protocol::{Body, Envelope};

/// A peer id as version 1 encoded it: its 16 bytes, with no length before them.
#[derive(Deserialize)]
#[cfg_attr(test, derive(serde::Serialize))]
struct Id([u8; 16]);

#[derive(Deserialize)]
#[cfg_attr(test, derive(serde::Serialize))]
struct Mid {
    author: Id,
    seq: u64,
}

#[derive(Deserialize)]
#[cfg_attr(test, derive(serde::Serialize))]
enum V1Body {
    Chat { text: String },
    Problem { title: String, body: String, private_answers: bool },
    Answer { problem: Mid, text: String },
    Feedback { answer: Mid, text: String },
}

#[derive(Deserialize)]
#[cfg_attr(test, derive(serde::Serialize))]
struct V1Envelope {
    id: Mid,
    author_name: String,
    sent_ms: u64,
    to: Option<Id>,
    body: V1Body,
}

fn mid(m: Mid) -> MsgId {
    MsgId { author: PeerId(m.author.0), seq: m.seq }
}

/// A version 1 envelope's bytes as today's envelope (no files).
pub(super) fn envelope(bytes: &[u8]) -> Option<Envelope> {
    let e: V1Envelope = codec::decode(bytes).ok()?;
    let body = match e.body {
        V1Body::Chat { text } => Body::Chat { text },
        V1Body::Problem { title, body, private_answers } => Body::Problem { title, body, private_answers },
        V1Body::Answer { problem, text } => Body::Answer { problem: mid(problem), text },
        V1Body::Feedback { answer, text } => Body::Feedback { answer: mid(answer), text },
    };
    Some(Envelope {
        id: mid(e.id),
        author_name: e.author_name,
        sent_ms: e.sent_ms,
        to: e.to.map(|i| PeerId(i.0)),
        body,
        files: Vec::new(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_version_1_envelope_reads_as_today_s() {
        let old = V1Envelope {
            id: Mid { author: Id([7; 16]), seq: 3 },
            author_name: "Ms Rivera".into(),
            sent_ms: 1_700_000_000_000,
            to: Some(Id([1; 16])),
            body: V1Body::Feedback { answer: Mid { author: Id([2; 16]), seq: 9 }, text: "good".into() },
        };
        let bytes = codec::encode(&old).unwrap();
        // Version 1 wrote an id as 16 bytes alone: `seq` follows them at once.
        assert_eq!(&bytes[..16], &[7; 16]);
        let e = envelope(&bytes).unwrap();
        assert_eq!(e.id, MsgId { author: PeerId([7; 16]), seq: 3 });
        assert_eq!(e.to, Some(PeerId([1; 16])));
        assert_eq!(e.body, Body::Feedback { answer: MsgId { author: PeerId([2; 16]), seq: 9 }, text: "good".into() });
        assert!(e.files.is_empty());
        assert!(envelope(&bytes[..bytes.len() - 1]).is_none());
    }
}
