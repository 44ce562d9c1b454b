//! Who is the teacher: a role anyone may claim (`--role teacher`), verified against a key.
//!
//! The teacher's peer shows a **room code**, the room and a fingerprint of its identity key
//! (80 bits of its peer id, which is a hash of the key: nobody can make a key to match), in groups
//! that are easy to copy from a board: `5B-6d81-c34e-9dc1-1e60-7bde`. A student started with it
//! (`--teacher CODE`) sees that key, and only that key, as the teacher. Without a code, trust on
//! first use: the first key a data dir sees claiming the teacher's role in a room is remembered
//! (`teachers.json` in the data dir); another key claiming it later is shown as unverified, and
//! a warning says so once.

use std::collections::BTreeMap;
use std::fmt;
use std::path::{Path, PathBuf};
use std::str::FromStr;

use crate::id::{FastSet, PeerId};

/// Bytes of the peer id in a room code (80 bits).
pub const FINGERPRINT_LEN: usize = 10;

/// The file of a data dir that remembers each room's teacher.
pub const TEACHERS_FILE: &str = "teachers.json";

/// The role that is verified.
pub const TEACHER: &str = "teacher";

/// A room and the fingerprint of its teacher's key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RoomCode {
    /// The room ("" when the code was given without one).
    pub room: String,
    /// The first [`FINGERPRINT_LEN`] bytes of the teacher's peer id.
    pub fingerprint: [u8; FINGERPRINT_LEN],
}

impl RoomCode {
    /// The code of the peer `id` in `room`.
    pub fn of(room: &str, id: PeerId) -> RoomCode {
        let mut fingerprint = [0; FINGERPRINT_LEN];
        fingerprint.copy_from_slice(&id.0[..FINGERPRINT_LEN]);
        RoomCode { room: room.to_string(), fingerprint }
    }

    /// Is `id` the key this code names?
    pub fn names(&self, id: &PeerId) -> bool {
        id.0[..FINGERPRINT_LEN] == self.fingerprint
    }
}

impl fmt::Display for RoomCode {
    /// `ROOM-xxxx-xxxx-xxxx-xxxx-xxxx` (the groups alone when the room is empty).
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if !self.room.is_empty() {
            write!(f, "{}-", self.room)?;
        }
        let hex = hex::encode(self.fingerprint);
        let groups: Vec<&str> = (0..hex.len()).step_by(4).map(|i| &hex[i..i + 4]).collect();
        f.write_str(&groups.join("-"))
    }
}

/// A text that is not a room code.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "`{0}` is not a teacher's room code: it ends with five groups of four hex digits, e.g. 5B-6d81-c34e-9dc1-1e60-7bde"
)]
pub struct BadCode(pub String);

impl FromStr for RoomCode {
    type Err = BadCode;

    /// `ROOM-xxxx-xxxx-xxxx-xxxx-xxxx`, or the groups alone; hex in either case, spaces around
    /// ignored. The room may itself contain `-`: the last five groups are the fingerprint.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let bad = || BadCode(s.trim().to_string());
        let t = s.trim();
        let mut parts: Vec<&str> = t.rsplitn(6, '-').collect();
        parts.reverse();
        let (room, groups) = match parts.len() {
            6 => (parts[0], &parts[1..]),
            5 => ("", &parts[..]),
            _ => return Err(bad()),
        };
        if groups.iter().any(|g| g.len() != 4) {
            return Err(bad());
        }
        let mut fingerprint = [0; FINGERPRINT_LEN];
        hex::decode_to_slice(groups.concat(), &mut fingerprint).map_err(|_| bad())?;
        if parts.len() == 6 && room.is_empty() {
            return Err(bad());
        }
        Ok(RoomCode { room: room.to_string(), fingerprint })
    }
}

/// What a peer's role claim comes to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Claim {
    /// It claims no teacher's role.
    None,
    /// It is the room's teacher: its key is the one of the code, or the one remembered.
    Verified,
    /// It claims the teacher's role with another key.
    Unverified,
}

impl Claim {
    /// As `--json` says it: `true`, `false`, or null for no claim.
    pub fn verified(self) -> Option<bool> {
        match self {
            Claim::None => None,
            Claim::Verified => Some(true),
            Claim::Unverified => Some(false),
        }
    }
}

/// The teacher of one room, as this peer knows it.
#[derive(Debug)]
pub struct Trust {
    me: PeerId,
    room: String,
    code: Option<RoomCode>,
    /// The teacher remembered on first use (or, for a teacher, itself).
    known: Option<PeerId>,
    /// Where the remembered teachers of every room are kept.
    file: Option<PathBuf>,
    /// Impostors warned about already.
    warned: FastSet<PeerId>,
}

impl Trust {
    /// The teacher of `room` for the peer `me` (a teacher itself when `teacher`), from the code
    /// it was started with, or remembered in the data dir `dir`.
    pub fn new(me: PeerId, room: &str, teacher: bool, code: Option<RoomCode>, dir: Option<&Path>) -> Trust {
        let file = dir.map(|d| d.join(TEACHERS_FILE));
        let known = if teacher { Some(me) } else { file.as_deref().and_then(|f| read(f).remove(room)) };
        Trust { me, room: room.to_string(), code, known, file, warned: FastSet::default() }
    }

    /// The teacher this peer trusts, if it knows one (not with a code: the code decides).
    pub fn known(&self) -> Option<PeerId> {
        if self.code.is_some() { None } else { self.known }
    }

    /// Is `id` the room's teacher, by the code or by what is remembered?
    pub fn is_teacher(&self, id: &PeerId) -> bool {
        match &self.code {
            Some(code) => code.names(id),
            None => self.known == Some(*id),
        }
    }

    /// The peer `id` claims the teacher's role (`claims`) or not: what it comes to. The first
    /// claim without a code is remembered; the first claim of an impostor returns a warning to
    /// show once.
    pub fn claim(&mut self, id: PeerId, claims: bool) -> (Claim, Option<String>) {
        if !claims {
            return (Claim::None, None);
        }
        if id == self.me {
            return (Claim::Verified, None);
        }
        if self.code.is_none() && self.known.is_none() {
            self.known = Some(id);
            self.remember(id);
        }
        if self.is_teacher(&id) {
            return (Claim::Verified, None);
        }
        let warn = self.warned.insert(id).then(|| match &self.code {
            Some(_) => format!(
                "a peer ({}) says it is the teacher, but its key is not the one of the teacher's code: it is shown as unverified",
                id.short()
            ),
            None => format!(
                "a peer ({}) says it is the teacher of room \"{}\", but this computer knows another teacher there: it is shown as unverified",
                id.short(),
                self.room
            ),
        });
        (Claim::Unverified, warn)
    }

    /// Write the teacher of this room to the data dir's file (the other rooms' kept).
    fn remember(&self, id: PeerId) {
        let Some(file) = &self.file else { return };
        let mut all = read(file);
        all.insert(self.room.clone(), id);
        let text: BTreeMap<&String, String> = all.iter().map(|(r, i)| (r, i.to_string())).collect();
        let written = serde_json::to_string_pretty(&text).map_err(std::io::Error::other).and_then(|t| {
            let tmp = file.with_extension("json.tmp");
            let mut f = crate::identity::private(std::fs::OpenOptions::new().write(true).create(true).truncate(true))
                .open(&tmp)?;
            std::io::Write::write_all(&mut f, (t + "\n").as_bytes())?;
            drop(f);
            std::fs::rename(&tmp, file)
        });
        match written {
            Ok(()) => tracing::info!(teacher = %id.short(), room = %self.room, "the room's teacher is remembered"),
            Err(e) => tracing::warn!(error = %e, "cannot remember the room's teacher"),
        }
    }
}

/// The teachers remembered in `file`, by room (nothing when it is missing or damaged).
fn read(file: &Path) -> BTreeMap<String, PeerId> {
    let Ok(text) = std::fs::read_to_string(file) else { return BTreeMap::new() };
    let map: BTreeMap<String, String> = serde_json::from_str(&text).unwrap_or_default();
    map.into_iter().filter_map(|(room, id)| Some((room, id.parse().ok()?))).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn room_codes_read_back_and_name_their_key() {
        let id: PeerId = "6d81c34e9dc11e607bde00112233aabb".parse().unwrap();
        let code = RoomCode::of("5B", id);
        assert_eq!(code.to_string(), "5B-6d81-c34e-9dc1-1e60-7bde");
        assert_eq!("5B-6d81-c34e-9dc1-1e60-7bde".parse::<RoomCode>().unwrap(), code);
        assert_eq!(" 5b-6D81-C34E-9dc1-1e60-7bde \n".parse::<RoomCode>().unwrap().fingerprint, code.fingerprint);
        let bare: RoomCode = "6d81-c34e-9dc1-1e60-7bde".parse().unwrap();
        assert_eq!((bare.room.as_str(), bare.fingerprint), ("", code.fingerprint));
        let dashed: RoomCode = "lab-2024-6d81-c34e-9dc1-1e60-7bde".parse().unwrap();
        assert_eq!(dashed.room, "lab-2024");
        assert!(code.names(&id));
        let mut other = id;
        other.0[9] ^= 1;
        assert!(!code.names(&other), "all 80 bits count");
        other = id;
        other.0[10] ^= 1;
        assert!(code.names(&other), "the rest of the id is not in the code");
        for bad in [
            "",
            "5B",
            "5B-6d81-c34e-9dc1-1e60",
            "5B-6d81-c34e-9dc1-1e60-7bdz",
            "5B-6d8-c34e-9dc1-1e60-7bde0",
            "-6d81-c34e-9dc1-1e60-7bde",
        ] {
            assert!(bad.parse::<RoomCode>().is_err(), "{bad}");
        }
    }

    #[test]
    fn a_code_decides_who_the_teacher_is() {
        let (me, teacher, impostor) = (PeerId([1; 16]), PeerId([2; 16]), PeerId([3; 16]));
        let mut t = Trust::new(me, "5B", false, Some(RoomCode::of("5B", teacher)), None);
        let (c, warn) = t.claim(impostor, true);
        assert_eq!(c, Claim::Unverified);
        assert!(warn.unwrap().contains("not the one of the teacher's code"));
        assert_eq!(t.claim(impostor, true), (Claim::Unverified, None), "warned once");
        assert_eq!(t.claim(teacher, true).0, Claim::Verified);
        assert_eq!(t.claim(teacher, false).0, Claim::None);
        assert!(t.is_teacher(&teacher) && !t.is_teacher(&impostor));
    }

    #[test]
    fn without_a_code_the_first_teacher_is_remembered_per_room() {
        let dir = std::env::temp_dir().join(format!("lanpeer-trust-{}-{}", std::process::id(), rand::random::<u32>()));
        std::fs::create_dir_all(&dir).unwrap();
        let (me, teacher, impostor) = (PeerId([1; 16]), PeerId([2; 16]), PeerId([3; 16]));
        {
            let mut t = Trust::new(me, "5B", false, None, Some(&dir));
            assert_eq!(t.claim(teacher, true).0, Claim::Verified, "first use");
            assert_eq!(t.claim(impostor, true).0, Claim::Unverified);
        }
        // After a restart, the same; another room has its own teacher.
        let mut t = Trust::new(me, "5B", false, None, Some(&dir));
        assert_eq!(t.known(), Some(teacher));
        assert_eq!(t.claim(impostor, true).0, Claim::Unverified, "the impostor first after the restart");
        let mut other = Trust::new(me, "5C", false, None, Some(&dir));
        assert_eq!(other.claim(impostor, true).0, Claim::Verified);
        assert_eq!(Trust::new(me, "5B", false, None, Some(&dir)).known(), Some(teacher), "5B's kept");
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(dir.join(TEACHERS_FILE)).unwrap().permissions().mode();
            assert_eq!(mode & 0o777, 0o600, "the file is its owner's only");
        }
        // A teacher is its own room's teacher: nobody else is.
        let mut own = Trust::new(teacher, "5B", true, None, None);
        assert_eq!(own.claim(impostor, true).0, Claim::Unverified);
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
