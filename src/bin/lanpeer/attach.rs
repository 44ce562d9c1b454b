//! What `/attach` has staged for the next message: the files as they were when attached, and
//! what to look at to tell whether they changed since.
//!
//! Files are prepared (hashed and copied into the store) when they are attached, not when the
//! message goes: a mistake (no such file, too big, the disk full) is said at once, while the
//! person is still at the command, and a large file is read while the message is written, so the
//! message then goes at once. A student who attaches `main.py`, fixes a bug and then answers must
//! still send the fixed file: when the message goes, every file of a staged group is looked at
//! again (its size and modification time, no content read), and a group that changed is prepared
//! anew, so what is sent is what is on disk then.

use std::path::{Path, PathBuf};
use std::time::SystemTime;

use lanpeer::protocol::FileRef;

/// What one file looked like: its path, size and modification time.
type Seen = Vec<(PathBuf, u64, Option<SystemTime>)>;

/// The files of one `/attach` command.
#[derive(Debug, Clone)]
pub struct Group {
    /// The paths as given (files or folders).
    pub paths: Vec<PathBuf>,
    /// Their files, as prepared.
    pub files: Vec<FileRef>,
    /// What their files looked like just before they were prepared.
    seen: Seen,
}

impl Group {
    /// `files`, prepared from `paths`, which looked like `seen` before ([`look`]).
    pub fn new(paths: Vec<PathBuf>, files: Vec<FileRef>, seen: Seen) -> Group {
        Group { paths, files, seen }
    }

    /// Has any of its files changed (or gone, or a new one come) since it was prepared?
    pub fn changed(&self) -> bool {
        look(&self.paths) != self.seen
    }
}

/// The files under `paths` as `prepare` walks them (the paths given followed if they are links,
/// links inside folders not), with their sizes and modification times; a path that cannot be
/// read counts as an entry of its own, so that it changes what is seen.
pub fn look(paths: &[PathBuf]) -> Seen {
    let mut out = Vec::new();
    for p in paths {
        match std::fs::metadata(p) {
            Ok(m) if m.is_dir() => look_dir(p, &mut out, 0),
            Ok(m) => out.push((p.clone(), m.len(), m.modified().ok())),
            Err(_) => out.push((p.clone(), u64::MAX, None)),
        }
    }
    out
}

fn look_dir(dir: &Path, out: &mut Seen, depth: usize) {
    let Ok(rd) = std::fs::read_dir(dir) else {
        out.push((dir.to_path_buf(), u64::MAX, None));
        return;
    };
    let mut entries: Vec<_> = rd.filter_map(Result::ok).collect();
    entries.sort_by_key(|e| e.file_name());
    for e in entries {
        if out.len() > lanpeer::limits::FILES {
            return;
        }
        let Ok(kind) = e.file_type() else { continue };
        if kind.is_dir() && depth < 32 {
            look_dir(&e.path(), out, depth + 1);
        } else if kind.is_file()
            && let Ok(m) = e.metadata()
        {
            out.push((e.path(), m.len(), m.modified().ok()));
        }
    }
}

/// The groups staged, in the order attached.
#[derive(Debug, Default)]
pub struct Staged(Vec<Group>);

impl Staged {
    /// Add a group.
    pub fn push(&mut self, g: Group) {
        self.0.push(g);
    }

    /// Every group, for a message (nothing is staged after).
    pub fn take(&mut self) -> Vec<Group> {
        std::mem::take(&mut self.0)
    }

    /// Put back groups taken for a message that was not sent, before any attached since.
    pub fn restore(&mut self, mut groups: Vec<Group>) {
        groups.append(&mut self.0);
        self.0 = groups;
    }

    /// Drop everything staged.
    pub fn clear(&mut self) {
        self.0.clear();
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// Every file staged, in order.
    pub fn files(&self) -> Vec<FileRef> {
        self.0.iter().flat_map(|g| g.files.iter().cloned()).collect()
    }
}

/// The files of `groups`, in order.
pub fn files_of(groups: &[Group]) -> Vec<FileRef> {
    groups.iter().flat_map(|g| g.files.iter().cloned()).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_change_of_any_file_is_seen_and_nothing_else_is() {
        let d = tempfile::tempdir().unwrap();
        let f = d.path().join("main.py");
        let src = d.path().join("src");
        std::fs::create_dir_all(src.join("lib")).unwrap();
        std::fs::write(&f, b"print(1)\n").unwrap();
        std::fs::write(src.join("lib").join("a.py"), b"a").unwrap();
        let paths = vec![f.clone(), src.clone()];
        let g = Group::new(paths.clone(), vec![], look(&paths));
        assert!(!g.changed());
        std::fs::write(&f, b"print(2)\n").unwrap();
        let past = SystemTime::now() - std::time::Duration::from_secs(100);
        std::fs::File::options().write(true).open(&f).unwrap().set_modified(past).unwrap();
        assert!(g.changed(), "same size, another time");
        let g = Group::new(paths.clone(), vec![], look(&paths));
        std::fs::write(src.join("lib").join("b.py"), b"b").unwrap();
        assert!(g.changed(), "a new file in the folder");
        let g = Group::new(paths.clone(), vec![], look(&paths));
        std::fs::remove_file(&f).unwrap();
        assert!(g.changed(), "a file gone");
    }

    #[test]
    fn groups_put_back_go_before_those_attached_since() {
        let r = |n: &str| FileRef { name: n.into(), size: 1, sha256: [0; 32], chunks: [0; 32] };
        let g = |n: &str| Group::new(vec![], vec![r(n)], vec![]);
        let mut s = Staged::default();
        s.push(g("a"));
        let taken = s.take();
        assert!(s.is_empty());
        s.push(g("b"));
        s.restore(taken);
        let names: Vec<_> = s.files().into_iter().map(|f| f.name).collect();
        assert_eq!(names, ["a", "b"]);
        s.clear();
        assert!(s.files().is_empty());
    }
}
