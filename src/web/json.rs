//! The JSON the page and its peer exchange over the WebSocket.
//!
//! From the peer to the page, one object per WebSocket text message, each with an `event` field.
//! The events of a node have the same names and fields as the CLI's `--json` lines (`ready`,
//! `peer_joined`, `peer_left`, `chat`, `problem`, `answer`, `feedback`), plus:
//! - `history`: sent first on every connection, and again when the page fell behind:
//!   `me` (`{id, name, room, role, room_code}` or null), `peers`, `problems` (each with `answers`, each answer with
//!   `feedback`), `chat` (the latest chats, oldest first);
//! - `error`: `message`, one plain sentence, when a command of the page failed.
//!
//! (`warning`, `message`: something the person should know, from the node, as with `--json`.)
//!
//! From the page to the peer, [`Command`]s, tagged by `cmd`.

use serde::Deserialize;
use serde_json::{Value, json};

use crate::event::{Event, Message, PeerInfo};
use crate::exercises::ProblemView;
use crate::id::PeerId;
use crate::protocol::Body;

/// What the page asks its peer to do.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(tag = "cmd", rename_all = "snake_case", deny_unknown_fields)]
pub enum Command {
    /// Chat to everyone, or (`to`: a peer id) to one person.
    Chat {
        /// What to say.
        text: String,
        /// The addressee's id, or absent/null for everyone.
        #[serde(default)]
        to: Option<String>,
    },
    /// Post a problem.
    Problem {
        /// Its title.
        title: String,
        /// Its text.
        #[serde(default)]
        body: String,
        /// Answers go to the author only (a quiz).
        #[serde(default)]
        private_answers: bool,
    },
    /// Answer a problem (`problem_id` as in the events).
    Answer {
        /// The problem.
        problem_id: String,
        /// The answer.
        text: String,
    },
    /// Comment on an answer.
    Feedback {
        /// The answer.
        answer_id: String,
        /// The comment.
        text: String,
    },
}

/// This peer, as the page shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Me {
    /// Its id.
    pub id: PeerId,
    /// Its name.
    pub name: String,
    /// Its room.
    pub room: String,
    /// Its role (`--role`), if any.
    pub role: Option<String>,
    /// Its room code (the room and its key's fingerprint), which a teacher writes on the board.
    pub room_code: String,
}

pub use crate::event::role;

/// The `files` of a message: `{name, size, sha256}` each (`sha256` in hex, as `sha256sum`).
fn files(list: &[crate::protocol::FileRef]) -> Value {
    Value::Array(
        list.iter().map(|f| json!({"name": f.name, "size": f.size, "sha256": hex::encode(f.sha256)})).collect(),
    )
}

/// A chat, problem, answer or feedback (the `--json` object of a message).
pub fn message(m: &Message) -> Value {
    let mut v = match &m.body {
        Body::Chat { text } => json!({"event": "chat", "text": text}),
        Body::Problem { title, body, private_answers } => {
            json!({"event": "problem", "title": title, "body": body, "private_answers": private_answers})
        }
        Body::Answer { problem, text } => json!({"event": "answer", "problem_id": problem.to_string(), "text": text}),
        Body::Feedback { answer, text } => json!({"event": "feedback", "answer_id": answer.to_string(), "text": text}),
    };
    if let Some(o) = v.as_object_mut() {
        o.insert("id".into(), json!(m.id.to_string()));
        o.insert("from".into(), json!(m.id.author.to_string()));
        o.insert("from_name".into(), json!(m.from_name));
        o.insert("from_label".into(), json!(m.from_label));
        o.insert("from_role".into(), json!(m.from_role));
        o.insert("from_verified".into(), json!(m.from_verified));
        o.insert("files".into(), files(&m.files));
        o.insert("to".into(), json!(m.to.map(|t| t.to_string())));
        o.insert("time_ms".into(), json!(m.sent_ms));
        o.insert("own".into(), json!(m.own));
    }
    v
}

/// A listed peer.
pub fn peer(p: &PeerInfo) -> Value {
    json!({
        "id": p.id.to_string(),
        "name": p.name,
        "addr": p.addr.to_string(),
        "state": p.state.as_str(),
        "last_seen_ms": p.last_seen_ms,
        "role": role(&p.props),
        "verified": p.verified,
        "label": p.label,
    })
}

/// One event of the node.
pub fn event(e: &Event) -> Value {
    match e {
        Event::Ready { id, name, room, listen, role, room_code } => json!({
            "event": "ready", "id": id.to_string(), "name": name, "room": room, "listen": listen.to_string(), "role": role,
            "room_code": room_code,
        }),
        Event::PeerJoined(p) => {
            let mut v = peer(p);
            v["event"] = json!("peer_joined");
            v
        }
        Event::PeerLeft { id, name, reason } => {
            json!({"event": "peer_left", "id": id.to_string(), "name": name, "reason": reason.as_str()})
        }
        Event::Message(m) => message(m),
        Event::Warning { message } => json!({"event": "warning", "message": message}),
        Event::File { message_id, name, size, sha256, path } => json!({
            "event": "file", "message_id": message_id.to_string(), "name": name, "size": size,
            "sha256": hex::encode(sha256), "path": path.display().to_string(),
        }),
        Event::FileProgress { message_id, name, bytes, size } => json!({
            "event": "file_progress", "message_id": message_id.to_string(), "name": name, "bytes": bytes, "size": size,
        }),
    }
}

/// Append the JSON text of `e` to `out`: byte for byte `event(e).to_string()` (the same fields in
/// the same, sorted, order), without building a [`Value`] first. A message, the event of every
/// chat, is written directly (no map, no allocation); the rarer events go through [`event`].
pub fn write_event(out: &mut Vec<u8>, e: &Event) {
    match e {
        Event::Message(m) => write_message(out, m),
        other => {
            // Writing to a Vec cannot fail, and a Value always serializes.
            let _ = serde_json::to_writer(&mut *out, &event(other));
        }
    }
}

/// A string as JSON (quoted and escaped exactly as serde_json does).
fn put_str(out: &mut Vec<u8>, s: &str) {
    // Writing to a Vec cannot fail.
    let _ = serde::Serializer::serialize_str(&mut serde_json::Serializer::new(&mut *out), s);
}

fn put_u64(out: &mut Vec<u8>, n: u64) {
    let _ = serde::Serializer::serialize_u64(&mut serde_json::Serializer::new(&mut *out), n);
}

/// `"<32 lowercase hex digits>"`, as `PeerId`'s `Display`.
fn put_peer(out: &mut Vec<u8>, p: &PeerId) {
    out.push(b'"');
    put_hex(out, p);
    out.push(b'"');
}

fn put_hex(out: &mut Vec<u8>, p: &PeerId) {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    for b in p.0 {
        out.extend_from_slice(&[HEX[(b >> 4) as usize], HEX[(b & 15) as usize]]);
    }
}

/// `"<author>-<seq>"`, as `MsgId`'s `Display`.
fn put_msg_id(out: &mut Vec<u8>, id: &crate::id::MsgId) {
    out.push(b'"');
    put_hex(out, &id.author);
    out.push(b'-');
    put_u64(out, id.seq);
    out.push(b'"');
}

/// The object of [`message`], its keys in the sorted order of a serde_json map.
fn write_message(out: &mut Vec<u8>, m: &Message) {
    // The keys every kind has, in order: [answer_id, body,] event, files, from, from_label,
    // from_name, from_role, from_verified, id, own, [private_answers, problem_id, text,] time_ms,
    // [title,] to.
    let (first, event): (Option<(&[u8], &str)>, &[u8]) = match &m.body {
        Body::Chat { .. } => (None, b"chat"),
        Body::Problem { body, .. } => (Some((b"body", body)), b"problem"),
        Body::Answer { .. } => (None, b"answer"),
        Body::Feedback { .. } => (None, b"feedback"),
    };
    out.push(b'{');
    if let Body::Feedback { answer, .. } = &m.body {
        out.extend_from_slice(b"\"answer_id\":");
        put_msg_id(out, answer);
        out.push(b',');
    }
    if let Some((key, value)) = first {
        out.push(b'"');
        out.extend_from_slice(key);
        out.extend_from_slice(b"\":");
        put_str(out, value);
        out.push(b',');
    }
    out.extend_from_slice(b"\"event\":\"");
    out.extend_from_slice(event);
    out.extend_from_slice(b"\",\"files\":");
    if m.files.is_empty() {
        out.extend_from_slice(b"[]");
    } else {
        let _ = serde_json::to_writer(&mut *out, &files(&m.files));
    }
    out.extend_from_slice(b",\"from\":");
    put_peer(out, &m.id.author);
    out.extend_from_slice(b",\"from_label\":");
    put_str(out, &m.from_label);
    out.extend_from_slice(b",\"from_name\":");
    put_str(out, &m.from_name);
    out.extend_from_slice(b",\"from_role\":");
    match &m.from_role {
        Some(r) => put_str(out, r),
        None => out.extend_from_slice(b"null"),
    }
    out.extend_from_slice(match m.from_verified {
        Some(true) => b",\"from_verified\":true",
        Some(false) => b",\"from_verified\":false",
        None => b",\"from_verified\":null",
    });
    out.extend_from_slice(b",\"id\":");
    put_msg_id(out, &m.id);
    out.extend_from_slice(if m.own { b",\"own\":true" } else { b",\"own\":false" });
    match &m.body {
        Body::Chat { text } | Body::Feedback { text, .. } => {
            out.extend_from_slice(b",\"text\":");
            put_str(out, text);
        }
        Body::Problem { private_answers, .. } => {
            out.extend_from_slice(if *private_answers {
                b",\"private_answers\":true"
            } else {
                b",\"private_answers\":false"
            });
        }
        Body::Answer { problem, text } => {
            out.extend_from_slice(b",\"problem_id\":");
            put_msg_id(out, problem);
            out.extend_from_slice(b",\"text\":");
            put_str(out, text);
        }
    }
    out.extend_from_slice(b",\"time_ms\":");
    put_u64(out, m.sent_ms);
    if let Body::Problem { title, .. } = &m.body {
        out.extend_from_slice(b",\"title\":");
        put_str(out, title);
    }
    out.extend_from_slice(b",\"to\":");
    match &m.to {
        Some(t) => put_peer(out, t),
        None => out.extend_from_slice(b"null"),
    }
    out.push(b'}');
}

/// Every problem with its answers, each answer with its feedback.
pub fn problems(list: &[ProblemView]) -> Value {
    Value::Array(
        list.iter()
            .map(|p| {
                let mut pv = message(&p.problem);
                let answers = p
                    .answers
                    .iter()
                    .map(|(a, fb)| {
                        let mut av = message(a);
                        av["feedback"] = Value::Array(fb.iter().map(message).collect());
                        av
                    })
                    .collect();
                pv["answers"] = Value::Array(answers);
                pv
            })
            .collect(),
    )
}

/// The `history` object: everything a freshly (re)loaded page shows.
pub fn history(me: Option<&Me>, peers: &[PeerInfo], problem_list: &[ProblemView], chat: &[Message]) -> Value {
    json!({
        "event": "history",
        "me": me.map(|m| json!({
            "id": m.id.to_string(), "name": m.name, "room": m.room, "role": m.role, "room_code": m.room_code,
        })),
        "peers": peers.iter().map(peer).collect::<Vec<_>>(),
        "problems": problems(problem_list),
        "chat": chat.iter().map(message).collect::<Vec<_>>(),
    })
}

/// The `error` object: a command of the page failed.
pub fn error(text: &str) -> Value {
    json!({"event": "error", "message": text})
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::event::{LeaveReason, PeerState};
    use crate::id::MsgId;

    fn msg(author: u8, seq: u64, body: Body, to: Option<PeerId>) -> Message {
        Message {
            id: MsgId { author: PeerId([author; 16]), seq },
            from_name: "Sam <b>".into(),
            sent_ms: 1_700_000_000_123,
            to,
            body,
            own: false,
            files: vec![],
            from_label: "Sam <b> (abababab)".into(),
            from_role: Some("student".into()),
            from_verified: None,
        }
    }

    /// A teacher (peer id 5s) called `name`, at `addr`, in `state`.
    fn teacher(name: &str, addr: &str, state: PeerState) -> PeerInfo {
        PeerInfo {
            id: PeerId([5; 16]),
            name: name.into(),
            addr: addr.parse().unwrap(),
            state,
            last_seen_ms: 3,
            props: vec![("role".into(), "teacher".into())],
            verified: Some(false),
            label: name.into(),
        }
    }

    #[test]
    fn messages_have_the_cli_fields_and_text_stays_text() {
        let m = msg(0xab, 7, Body::Chat { text: "<script>alert(1)</script>".into() }, Some(PeerId([1; 16])));
        let v = message(&m);
        assert_eq!(v["event"], "chat");
        assert_eq!(v["id"], format!("{}-7", "ab".repeat(16)));
        assert_eq!(v["from"], "ab".repeat(16));
        assert_eq!(v["from_name"], "Sam <b>");
        assert_eq!(v["text"], "<script>alert(1)</script>");
        assert_eq!(v["to"], "01".repeat(16));
        assert_eq!(v["time_ms"], 1_700_000_000_123u64);
        assert_eq!(v["own"], false);
        // The serialized form is JSON, in which the text is a string value (the page inserts it
        // with textContent).
        let s = v.to_string();
        assert_eq!(serde_json::from_str::<Value>(&s).unwrap()["text"], "<script>alert(1)</script>");

        let p = msg(2, 1, Body::Problem { title: "Loops".into(), body: "a\nb".into(), private_answers: true }, None);
        let v = message(&p);
        assert_eq!((v["event"].as_str(), v["private_answers"].as_bool()), (Some("problem"), Some(true)));
        assert_eq!(v["body"], "a\nb");
        assert_eq!(v["to"], Value::Null);
        let a = msg(3, 4, Body::Answer { problem: p.id, text: "x".into() }, Some(p.id.author));
        assert_eq!(message(&a)["problem_id"], p.id.to_string());
        let f = msg(2, 2, Body::Feedback { answer: a.id, text: "ok".into() }, None);
        assert_eq!(message(&f)["answer_id"], a.id.to_string());

        let list = vec![ProblemView { problem: p.clone(), answers: vec![(a.clone(), vec![f.clone()])] }];
        let v = problems(&list);
        assert_eq!(v[0]["answers"][0]["id"], a.id.to_string());
        assert_eq!(v[0]["answers"][0]["feedback"][0]["text"], "ok");
    }

    #[test]
    fn events_and_history() {
        let info = teacher("Ms Rivera", "10.0.0.2:4000", PeerState::Connected);
        let v = event(&Event::PeerJoined(info.clone()));
        assert_eq!((v["event"].as_str(), v["role"].as_str()), (Some("peer_joined"), Some("teacher")));
        assert_eq!(v["addr"], "10.0.0.2:4000");
        let v = event(&Event::PeerLeft { id: info.id, name: "x".into(), reason: LeaveReason::Timeout });
        assert_eq!((v["event"].as_str(), v["reason"].as_str()), (Some("peer_left"), Some("timeout")));
        let no_role = PeerInfo { props: vec![], ..info.clone() };
        assert_eq!(peer(&no_role)["role"], Value::Null);

        let me = Me {
            id: PeerId([9; 16]),
            name: "Ada".into(),
            room: "5B".into(),
            role: Some("teacher".into()),
            room_code: "5B-0909-0909-0909-0909-0909".into(),
        };
        let chat = vec![msg(5, 1, Body::Chat { text: "hi".into() }, None)];
        let h = history(Some(&me), &[info], &[], &chat);
        assert_eq!(h["event"], "history");
        assert_eq!(h["me"]["name"], "Ada");
        assert_eq!(h["me"]["room"], "5B");
        assert_eq!(h["me"]["role"], "teacher");
        assert_eq!(h["me"]["room_code"], "5B-0909-0909-0909-0909-0909");
        assert_eq!(
            (h["peers"][0]["verified"].as_bool(), h["peers"][0]["label"].as_str()),
            (Some(false), Some("Ms Rivera"))
        );
        assert_eq!(h["peers"][0]["name"], "Ms Rivera");
        assert_eq!(h["chat"][0]["text"], "hi");
        assert_eq!(h["problems"], json!([]));
        assert_eq!(history(None, &[], &[], &[])["me"], Value::Null);
        assert_eq!(error("no")["message"], "no");
    }

    #[test]
    fn commands_parse_and_reject_junk() {
        let c: Command = serde_json::from_str(r#"{"cmd":"chat","text":"hi"}"#).unwrap();
        assert_eq!(c, Command::Chat { text: "hi".into(), to: None });
        let c: Command = serde_json::from_str(r#"{"cmd":"chat","text":"hi","to":"abc"}"#).unwrap();
        assert_eq!(c, Command::Chat { text: "hi".into(), to: Some("abc".into()) });
        let c: Command = serde_json::from_str(r#"{"cmd":"problem","title":"T","private_answers":true}"#).unwrap();
        assert_eq!(c, Command::Problem { title: "T".into(), body: String::new(), private_answers: true });
        let c: Command = serde_json::from_str(r#"{"cmd":"answer","problem_id":"p-1","text":"a"}"#).unwrap();
        assert_eq!(c, Command::Answer { problem_id: "p-1".into(), text: "a".into() });
        let c: Command = serde_json::from_str(r#"{"cmd":"feedback","answer_id":"a-1","text":"f"}"#).unwrap();
        assert_eq!(c, Command::Feedback { answer_id: "a-1".into(), text: "f".into() });
        for bad in [r#"{"cmd":"shutdown"}"#, r#"{"cmd":"chat"}"#, r#"{"text":"x"}"#, r#"{"cmd":"chat","text":1}"#, "x"]
        {
            assert!(serde_json::from_str::<Command>(bad).is_err(), "{bad} should be refused");
        }
    }

    fn written(e: &Event) -> String {
        let mut out = Vec::new();
        write_event(&mut out, e);
        String::from_utf8(out).expect("UTF-8")
    }

    #[test]
    fn written_events_are_the_values_text() {
        let p =
            msg(2, 1, Body::Problem { title: "T\"\\".into(), body: "a\nb\u{1}".into(), private_answers: true }, None);
        let a = msg(3, u64::MAX, Body::Answer { problem: p.id, text: "x\u{7f}é".into() }, Some(p.id.author));
        let f = msg(2, 0, Body::Feedback { answer: a.id, text: "\t".into() }, None);
        let c = msg(0xab, 7, Body::Chat { text: "<b>hi</b> \u{2028}".into() }, Some(PeerId([1; 16])));
        let info = teacher("Ms \"R\"", "[fe80::1%2]:4000", PeerState::Reconnecting);
        let mut events = vec![
            Event::Ready {
                id: PeerId([9; 16]),
                name: "Ada".into(),
                room: "5B".into(),
                listen: "10.0.0.1:4001".parse().unwrap(),
                role: None,
                room_code: "5B-0909-0909-0909-0909-0909".into(),
            },
            Event::PeerJoined(info.clone()),
            Event::PeerLeft { id: info.id, name: "Lea".into(), reason: LeaveReason::Restarted },
            Event::Warning { message: "w\r".into() },
        ];
        for own in [false, true] {
            for m in [&p, &a, &f, &c] {
                events.push(Event::Message(Message { own, ..m.clone() }));
            }
        }
        for e in &events {
            assert_eq!(written(e), event(e).to_string());
        }
    }

    mod prop {
        use super::*;
        use proptest::prelude::*;

        fn any_id() -> impl Strategy<Value = MsgId> {
            (any::<[u8; 16]>(), any::<u64>()).prop_map(|(a, seq)| MsgId { author: PeerId(a), seq })
        }

        fn any_body() -> impl Strategy<Value = Body> {
            prop_oneof![
                any::<String>().prop_map(|text| Body::Chat { text }),
                (any::<String>(), any::<String>(), any::<bool>())
                    .prop_map(|(title, body, private_answers)| Body::Problem { title, body, private_answers }),
                (any_id(), any::<String>()).prop_map(|(problem, text)| Body::Answer { problem, text }),
                (any_id(), any::<String>()).prop_map(|(answer, text)| Body::Feedback { answer, text }),
            ]
        }

        proptest! {
            #![proptest_config(ProptestConfig { cases: 2000, ..ProptestConfig::default() })]

            /// The direct writer and the `Value` give the same bytes, whatever the texts hold.
            #[test]
            fn written_messages_are_the_values_text(
                id in any_id(),
                from_name in any::<String>(),
                sent_ms in any::<u64>(),
                to in proptest::option::of(any::<[u8; 16]>()),
                body in any_body(),
                own in any::<bool>(),
                from_label in any::<String>(),
                from_role in proptest::option::of(any::<String>()),
                from_verified in proptest::option::of(any::<bool>()),
                files in proptest::collection::vec((any::<String>(), any::<u64>(), any::<[u8; 32]>()), 0..2),
            ) {
                let files = files
                    .into_iter()
                    .map(|(name, size, sha256)| crate::protocol::FileRef { name, size, sha256, chunks: [0; 32] })
                    .collect();
                let e = Event::Message(Message {
                    id,
                    from_name,
                    sent_ms,
                    to: to.map(PeerId),
                    body,
                    own,
                    files,
                    from_label,
                    from_role,
                    from_verified,
                });
                prop_assert_eq!(written(&e), event(&e).to_string());
            }
        }
    }
}
