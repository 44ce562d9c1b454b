//! What the terminal says of files arriving: few lines, whatever the number or size of files.
//!
//! The node reports each file once it is saved (`file`) and, while a file arrives, its progress
//! every half second (`file_progress`): as lines, that would flood the screen for a folder of
//! hundreds of files or a file of gigabytes. So, per message: the folder its files are saved in
//! is said once (the first time a file of its author arrives in this run), a message of one file
//! gets one line when it is there, a message of several gets one line when all are there (and one
//! for each file saved under another name, because a file of that name was there already), and a
//! transfer that lasts gets a line of progress at most every [`PROGRESS_EVERY`]. A file whose
//! message this run has not seen (a transfer resumed after a restart) gets a line of its own.

use std::collections::{HashMap, HashSet, VecDeque};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use lanpeer::files::prepare::human_bytes;
use lanpeer::{Message, MsgId};

/// A transfer's progress is told at most this often.
pub const PROGRESS_EVERY: Duration = Duration::from_secs(5);

/// Messages followed at most (the oldest are forgotten first): a lesson has far fewer.
const FOLLOWED: usize = 1000;

/// What to tell, one line each (the caller adds the time and the colour).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Note {
    /// The folder where `from`'s files are saved (said once).
    Folder { from: String, folder: PathBuf },
    /// One file is here (`saved_as`: the name it was saved under, when not its own).
    File { name: String, size: u64, from: String, saved_as: Option<String> },
    /// One file of a message of several was saved under another name.
    Renamed { name: String, saved_as: String },
    /// Every file of a message of several is here.
    All { files: usize, bytes: u64, from: String },
    /// A transfer that lasts: how far it is.
    Progress { from: String, what: String, bytes: u64, size: u64 },
}

impl Note {
    /// The line for people (names as they came: the caller makes them printable).
    pub fn text(&self) -> String {
        match self {
            Note::Folder { from, folder } => format!("files from {from} are saved in {}", folder.display()),
            Note::File { name, size, from, saved_as } => {
                let how = saved_as.as_ref().map(|s| format!(", saved as {s} (the name was taken)")).unwrap_or_default();
                format!("{name} ({}) from {from} is here{how}", human_bytes(*size))
            }
            Note::Renamed { name, saved_as } => format!("{name} was saved as {saved_as} (the name was taken)"),
            Note::All { files, bytes, from } => {
                format!("all {files} files from {from} are here ({})", human_bytes(*bytes))
            }
            Note::Progress { from, what, bytes, size } => {
                let pct = if *size == 0 { 100 } else { bytes.saturating_mul(100) / size };
                format!("receiving {what} from {from}: {} of {} ({pct}%)", human_bytes(*bytes), human_bytes(*size))
            }
        }
    }
}

/// A message whose files are awaited.
struct Awaited {
    from: String,
    /// Its files' names and sizes.
    files: HashMap<String, u64>,
    arrived: HashSet<String>,
    /// Bytes of each file still arriving, as last reported.
    partial: HashMap<String, u64>,
    /// When its progress was last told (or, before that, first reported).
    told: Option<Instant>,
}

impl Awaited {
    fn size(&self) -> u64 {
        self.files.values().sum()
    }

    fn bytes(&self) -> u64 {
        let done: u64 = self.arrived.iter().filter_map(|n| self.files.get(n)).sum();
        done + self.partial.iter().filter(|(n, _)| !self.arrived.contains(*n)).map(|(_, b)| b).sum::<u64>()
    }
}

/// The files awaited, and the folders already told.
#[derive(Default)]
pub struct Arrivals {
    awaited: HashMap<MsgId, Awaited>,
    order: VecDeque<MsgId>,
    folders: HashSet<PathBuf>,
}

/// The folder of the author that a saved file's path is in: the path without the parts of the
/// file's (safe) name.
fn folder_of(path: &Path, name: &str) -> PathBuf {
    let depth = lanpeer::files::names::safe_relative(name).components().count();
    path.ancestors().nth(depth).map(Path::to_path_buf).unwrap_or_default()
}

/// The saved path under its folder, with `/`, when it is not the file's own (safe) name.
fn renamed(path: &Path, folder: &Path, name: &str) -> Option<String> {
    let rel = path.strip_prefix(folder).ok()?;
    (rel != lanpeer::files::names::safe_relative(name))
        .then(|| rel.components().map(|c| c.as_os_str().to_string_lossy()).collect::<Vec<_>>().join("/"))
}

impl Arrivals {
    /// A message: its files are awaited unless it is our own (ours are not fetched).
    pub fn message(&mut self, m: &Message) {
        if m.own || m.files.is_empty() || self.awaited.contains_key(&m.id) {
            return;
        }
        let files = m.files.iter().map(|f| (f.name.clone(), f.size)).collect();
        let a =
            Awaited { from: m.from_label.clone(), files, arrived: HashSet::new(), partial: HashMap::new(), told: None };
        self.awaited.insert(m.id, a);
        self.order.push_back(m.id);
        if self.order.len() > FOLLOWED
            && let Some(old) = self.order.pop_front()
        {
            self.awaited.remove(&old);
        }
    }

    /// A file is saved at `path`.
    pub fn file(&mut self, msg: MsgId, name: &str, size: u64, path: &Path) -> Vec<Note> {
        let folder = folder_of(path, name);
        let saved_as = renamed(path, &folder, name);
        let mut notes = Vec::new();
        let from = match self.awaited.get(&msg) {
            Some(a) => a.from.clone(),
            None => folder.file_name().map(|f| f.to_string_lossy().into_owned()).unwrap_or_else(|| msg.author.short()),
        };
        if self.folders.len() < 10_000 && self.folders.insert(folder.clone()) {
            notes.push(Note::Folder { from: from.clone(), folder });
        }
        let Some(a) = self.awaited.get_mut(&msg) else {
            notes.push(Note::File { name: name.into(), size, from, saved_as });
            return notes;
        };
        if a.files.len() == 1 {
            notes.push(Note::File { name: name.into(), size, from, saved_as });
        } else if let Some(s) = saved_as {
            notes.push(Note::Renamed { name: name.into(), saved_as: s });
        }
        a.arrived.insert(name.to_string());
        if a.arrived.len() >= a.files.len() {
            if a.files.len() > 1 {
                notes.push(Note::All { files: a.files.len(), bytes: a.size(), from: a.from.clone() });
            }
            self.awaited.remove(&msg);
            self.order.retain(|m| *m != msg);
        }
        notes
    }

    /// A file arriving has `bytes` so far: a line at most every [`PROGRESS_EVERY`] per message,
    /// the first one once it has arrived that long.
    pub fn progress(&mut self, msg: MsgId, name: &str, bytes: u64, now: Instant) -> Option<Note> {
        let a = self.awaited.get_mut(&msg)?;
        a.partial.insert(name.to_string(), bytes);
        let told = *a.told.get_or_insert(now);
        if now.duration_since(told) < PROGRESS_EVERY {
            return None;
        }
        a.told = Some(now);
        let what = if a.files.len() == 1 {
            name.to_string()
        } else {
            format!("{} files ({} of them here)", a.files.len(), a.arrived.len())
        };
        Some(Note::Progress { from: a.from.clone(), what, bytes: a.bytes(), size: a.size() })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use lanpeer::protocol::FileRef;
    use lanpeer::{Body, PeerId};

    fn msg(seq: u64, files: &[(&str, u64)]) -> Message {
        let mut m = Message::from_envelope(
            lanpeer::protocol::Envelope {
                id: MsgId { author: PeerId([7; 16]), seq },
                author_name: "Sam".into(),
                sent_ms: 1,
                to: None,
                body: Body::Chat { text: String::new() },
                files: files
                    .iter()
                    .map(|(n, s)| FileRef { name: n.to_string(), size: *s, sha256: [0; 32], chunks: [0; 32] })
                    .collect(),
            },
            false,
        );
        m.from_label = "Sam".into();
        m
    }

    #[test]
    fn the_folder_once_a_single_file_at_once_a_folder_when_whole() {
        let dir = Path::new("/dl/5B/Sam (07070707)");
        let mut a = Arrivals::default();
        let one = msg(1, &[("main.py", 12)]);
        a.message(&one);
        let notes = a.file(one.id, "main.py", 12, &dir.join("main.py"));
        assert_eq!(
            notes,
            [
                Note::Folder { from: "Sam".into(), folder: dir.into() },
                Note::File { name: "main.py".into(), size: 12, from: "Sam".into(), saved_as: None }
            ]
        );
        assert_eq!(notes[1].text(), "main.py (12 bytes) from Sam is here");
        // A folder of three: one line when all are here, one for a name that was taken.
        let three = msg(2, &[("src/a.py", 1), ("src/b.py", 2), ("main.py", 3)]);
        a.message(&three);
        assert!(a.file(three.id, "src/a.py", 1, &dir.join("src/a.py")).is_empty());
        assert_eq!(
            a.file(three.id, "main.py", 3, &dir.join("main (1).py")),
            [Note::Renamed { name: "main.py".into(), saved_as: "main (1).py".into() }]
        );
        let last = a.file(three.id, "src/b.py", 2, &dir.join("src").join("b.py"));
        assert_eq!(last, [Note::All { files: 3, bytes: 6, from: "Sam".into() }]);
        assert_eq!(last[0].text(), "all 3 files from Sam are here (6 bytes)");
        // Unknown message (resumed after a restart): a line of its own, named by its folder.
        let other = MsgId { author: PeerId([7; 16]), seq: 99 };
        assert_eq!(
            a.file(other, "x.bin", 5, &dir.join("x.bin")),
            [Note::File { name: "x.bin".into(), size: 5, from: "Sam (07070707)".into(), saved_as: None }]
        );
        // Our own messages are not awaited.
        let mut own = msg(3, &[("a", 1)]);
        own.own = true;
        a.message(&own);
        assert!(a.progress(own.id, "a", 1, Instant::now()).is_none());
    }

    #[test]
    fn progress_at_most_every_few_seconds() {
        let mut a = Arrivals::default();
        let big = msg(1, &[("vm.img", 2 << 30)]);
        a.message(&big);
        let t0 = Instant::now();
        let mut told = Vec::new();
        // Reports every half second for 21 s.
        for i in 0..=42u64 {
            let now = t0 + Duration::from_millis(500 * i);
            if let Some(n) = a.progress(big.id, "vm.img", i * (50 << 20), now) {
                told.push((i, n));
            }
        }
        let at: Vec<u64> = told.iter().map(|(i, _)| *i).collect();
        assert_eq!(at, [10, 20, 30, 40], "every 5 s, the first after 5 s");
        assert_eq!(told[0].1.text(), "receiving vm.img from Sam: 500.0 MB of 2.0 GB (24%)");
        let several = msg(2, &[("a", 100), ("b", 100)]);
        a.message(&several);
        a.file(several.id, "a", 100, Path::new("/dl/S/a"));
        a.progress(several.id, "b", 10, t0);
        let n = a.progress(several.id, "b", 50, t0 + PROGRESS_EVERY).unwrap();
        assert_eq!(n.text(), "receiving 2 files (1 of them here) from Sam: 150 bytes of 200 bytes (75%)");
    }
}
