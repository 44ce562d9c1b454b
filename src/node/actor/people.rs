//! Who is who, as the user sees it: the names peers go by (a name shared by two peers is shown
//! with the start of each one's id) and who the room's teacher is ([`crate::trust`]). Every peer
//! and every message the actor reports passes here on its way out.

use crate::event::{self, Message, PeerInfo};
use crate::id::{FastMap as HashMap, PeerId};
use crate::trust::{Claim, TEACHER};

use super::Actor;

/// The names known, by peer, and how many peers go by each.
#[derive(Debug, Default)]
pub(super) struct Names {
    /// Each peer's name, and that name as compared (without case).
    of: HashMap<PeerId, (String, String)>,
    /// Peers per name, compared without case.
    count: HashMap<String, u32>,
}

impl Names {
    /// `id` goes by `name` now.
    pub(super) fn see(&mut self, id: PeerId, name: &str) {
        if self.of.get(&id).is_some_and(|(n, _)| n == name) {
            return;
        }
        let key = name.to_lowercase();
        *self.count.entry(key.clone()).or_default() += 1;
        if let Some((_, old)) = self.of.insert(id, (name.to_string(), key))
            && let Some(c) = self.count.get_mut(&old)
        {
            *c -= 1;
            if *c == 0 {
                self.count.remove(&old);
            }
        }
    }

    /// Does another peer go by `name`, as `id` does (or did)?
    fn shared(&self, id: &PeerId, name: &str) -> bool {
        match self.of.get(id) {
            // The usual case: the name `id` goes by, its key at hand.
            Some((n, key)) if n == name => self.count.get(key).copied().unwrap_or(0) > 1,
            Some((_, key)) => {
                let other = name.to_lowercase();
                self.count.get(&other).copied().unwrap_or(0) > u32::from(*key == other)
            }
            None => self.count.contains_key(&name.to_lowercase()),
        }
    }

    /// `name` as shown for `id`: with the start of the id when another peer goes by it.
    pub(super) fn label(&self, id: &PeerId, name: &str) -> String {
        if self.shared(id, name) { event::label(name, id) } else { name.to_string() }
    }

    /// [`Names::label`] written into `out` (no allocation when it is the name, as it usually is).
    pub(super) fn label_into(&self, id: &PeerId, name: &str, out: &mut String) {
        if self.shared(id, name) {
            *out = event::label(name, id);
        } else if out != name {
            out.clear();
            out.push_str(name);
        }
    }
}

impl Actor {
    /// A peer as reported: its label and whether its claim to teach holds.
    pub(super) fn describe_peer(&self, p: &mut PeerInfo) {
        p.label = self.names.label(&p.id, &p.name);
        p.verified = self.claims.get(&p.id).copied().unwrap_or(Claim::None).verified();
    }

    /// A message as reported: its author's label, role, and whether the author is the teacher.
    pub(super) fn describe(&self, m: &mut Message) {
        let author = m.id.author;
        self.names.label_into(&author, &m.from_name, &mut m.from_label);
        if m.own {
            m.from_role = event::role(&self.p.config.props).map(str::to_string);
            m.from_verified = (m.from_role.as_deref() == Some(TEACHER)).then_some(true);
            return;
        }
        let claim = self.claims.get(&author).copied().unwrap_or(Claim::None);
        if self.trust.is_teacher(&author) {
            m.from_role = Some(TEACHER.to_string());
            m.from_verified = Some(true);
        } else {
            m.from_role = self.table.get(&author).and_then(|e| event::role(&e.props)).map(str::to_string);
            m.from_verified = claim.verified();
        }
    }

    /// A peer's session is up with these facts: its name is known, its claim judged (a warning,
    /// once, about an impostor).
    pub(super) fn met(&mut self, id: PeerId, name: &str, props: &[(String, String)]) {
        self.names.see(id, name);
        let (claim, warn) = self.trust.claim(id, event::role(props) == Some(TEACHER));
        self.claims.insert(id, claim);
        if let Some(message) = warn {
            tracing::warn!(peer = %id.short(), "{message}");
            self.emit(crate::event::Event::Warning { message });
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_shared_name_is_shown_with_the_id() {
        let (a, b) = (PeerId([0xa1; 16]), PeerId([0xb2; 16]));
        let mut n = Names::default();
        n.see(a, "Sam");
        assert_eq!(n.label(&a, "Sam"), "Sam");
        n.see(b, "sam");
        assert_eq!(n.label(&a, "Sam"), "Sam (a1a1a1a1)");
        assert_eq!(n.label(&b, "sam"), "sam (b2b2b2b2)");
        // b changes its name: a's is its own again.
        n.see(b, "Lea");
        assert_eq!(n.label(&a, "Sam"), "Sam");
        // An old message of b's still under the name a has now.
        assert_eq!(n.label(&b, "Sam"), "Sam (b2b2b2b2)");
        n.see(b, "Lea");
        assert_eq!(n.count.get("lea"), Some(&1));
        let mut out = String::from("x");
        n.label_into(&a, "Sam", &mut out);
        assert_eq!(out, "Sam");
        n.see(b, "SAM");
        n.label_into(&a, "Sam", &mut out);
        assert_eq!(out, "Sam (a1a1a1a1)");
    }
}
