//! What the web module remembers itself, so that a reloaded page shows the chat again: who this
//! peer is (from [`Event::Ready`]) and the latest chats, in a bounded ring.
//!
//! Problems, answers and feedback come from the node ([`crate::Node::problems`]), peers from
//! [`crate::Node::peers`]. When the node keeps a persistent history, [`super::Web`]'s `history`
//! function reads the chat from there instead, and this ring goes.

use std::collections::VecDeque;

use super::json::Me;
use crate::event::{Event, Message};
use crate::protocol::Body;

/// How many chats a reloaded page shows by default.
pub const DEFAULT_CHAT_LIMIT: usize = 500;

/// The ring of recent chats, and this peer's identity.
#[derive(Debug)]
pub struct History {
    me: Option<Me>,
    chat: VecDeque<Message>,
    limit: usize,
}

impl History {
    /// An empty history keeping at most `limit` chats.
    pub fn new(limit: usize) -> Self {
        History { me: None, chat: VecDeque::with_capacity(limit.min(1024)), limit }
    }

    /// Take note of an event: `Ready` says who this peer is; chats (public and private, sent and
    /// received) are kept, the oldest dropped past the limit. Everything else is not kept here.
    pub fn record(&mut self, e: &Event) {
        match e {
            Event::Ready { id, name, room, role, room_code, .. } => {
                self.me = Some(Me {
                    id: *id,
                    name: name.clone(),
                    room: room.clone(),
                    role: role.clone(),
                    room_code: room_code.clone(),
                });
            }
            Event::Message(m) if matches!(m.body, Body::Chat { .. }) => {
                if self.chat.iter().rev().take(64).any(|c| c.id == m.id) {
                    return;
                }
                if self.limit == 0 {
                    return;
                }
                while self.chat.len() >= self.limit {
                    self.chat.pop_front();
                }
                self.chat.push_back(m.clone());
            }
            _ => {}
        }
    }

    /// This peer, once ready.
    pub fn me(&self) -> Option<&Me> {
        self.me.as_ref()
    }

    /// The kept chats, oldest first.
    pub fn chat(&self) -> Vec<Message> {
        self.chat.iter().cloned().collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::id::{MsgId, PeerId};

    fn chat(seq: u64) -> Event {
        Event::Message(Message {
            id: MsgId { author: PeerId([1; 16]), seq },
            from_name: "Sam".into(),
            sent_ms: seq,
            to: None,
            body: Body::Chat { text: format!("chat {seq}") },
            own: false,
            files: vec![],
            from_label: "x".into(),
            from_role: None,
            from_verified: None,
        })
    }

    #[test]
    fn keeps_the_latest_chats_only_and_who_i_am() {
        let mut h = History::new(3);
        assert!(h.me().is_none());
        h.record(&Event::Ready {
            id: PeerId([2; 16]),
            name: "Ada".into(),
            room: "r".into(),
            listen: "127.0.0.1:1".parse().unwrap(),
            role: None,
            room_code: "r-0202-0202-0202-0202-0202".into(),
        });
        assert_eq!(h.me().map(|m| m.name.as_str()), Some("Ada"));
        assert_eq!(h.me().map(|m| m.room_code.as_str()), Some("r-0202-0202-0202-0202-0202"));
        for seq in 1..=5 {
            h.record(&chat(seq));
        }
        h.record(&chat(5));
        let problem = Event::Message(Message {
            id: MsgId { author: PeerId([1; 16]), seq: 9 },
            from_name: "Sam".into(),
            sent_ms: 0,
            to: None,
            body: Body::Problem { title: "t".into(), body: String::new(), private_answers: false },
            own: false,
            files: vec![],
            from_label: "x".into(),
            from_role: None,
            from_verified: None,
        });
        h.record(&problem);
        let seqs: Vec<u64> = h.chat().iter().map(|m| m.id.seq).collect();
        assert_eq!(seqs, vec![3, 4, 5], "oldest dropped, repeats and non-chats not kept");

        let mut none = History::new(0);
        none.record(&chat(1));
        assert!(none.chat().is_empty());
    }
}
