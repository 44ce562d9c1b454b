//! Names of received files made safe on every system, and the place each one is saved.
//!
//! A name comes from another peer (an author may write anything in a message): it must never
//! leave the folder it is saved in (`..`, an absolute path, a drive letter), never name a device
//! of Windows (`CON`, `NUL`, `COM1`...), never hold control characters or characters Windows
//! refuses, and never replace a file already there (a second `main.py` is `main (1).py`).

use std::fs::{self, File, OpenOptions};
use std::io;
use std::path::{Path, PathBuf};

/// The longest part of a name kept, in bytes (file systems take 255).
const PART_MAX: usize = 120;
/// The deepest folder kept in a name (deeper parts are joined into the last one).
const DEPTH_MAX: usize = 16;

const RESERVED: [&str; 22] = [
    "CON", "PRN", "AUX", "NUL", "COM1", "COM2", "COM3", "COM4", "COM5", "COM6", "COM7", "COM8", "COM9", "LPT1", "LPT2",
    "LPT3", "LPT4", "LPT5", "LPT6", "LPT7", "LPT8", "LPT9",
];

/// One part of a path (a file's or a folder's name), safe on every system.
pub fn safe_part(part: &str) -> String {
    let mut s: String = part
        .chars()
        .map(|c| match c {
            '/' | '\\' | ':' | '*' | '?' | '"' | '<' | '>' | '|' => '_',
            c if c.is_control() || crate::text::is_hidden_format(c) => '_',
            c => c,
        })
        .collect();
    // Windows drops trailing dots and spaces (so "a." is "a"): never let two names meet that way.
    while s.ends_with(['.', ' ']) {
        s.pop();
    }
    let s = s.trim_start().to_string();
    let mut s = if s.is_empty() { "_".to_string() } else { s };
    let stem = s.split('.').next().unwrap_or("").trim_end().to_ascii_uppercase();
    if RESERVED.contains(&stem.as_str()) {
        s.insert(0, '_');
    }
    if s.len() > PART_MAX {
        // Keep the extension: cut the stem.
        let ext = s.rfind('.').map(|i| s[i..].to_string()).filter(|e| e.len() <= 16).unwrap_or_default();
        let mut cut = PART_MAX - ext.len();
        while !s.is_char_boundary(cut) {
            cut -= 1;
        }
        s = format!("{}{ext}", &s[..cut]);
    }
    s
}

/// A name of a message's file (`src/a.py`), as a relative path of safe parts: never absolute,
/// never with `..`, at most [`DEPTH_MAX`] deep.
pub fn safe_relative(name: &str) -> PathBuf {
    let parts: Vec<String> = name
        .split(['/', '\\'])
        .filter(|p| !p.is_empty() && *p != ".")
        .map(|p| if p == ".." { "_" } else { p })
        .map(safe_part)
        .collect();
    let mut path = PathBuf::new();
    if parts.is_empty() {
        path.push("_");
        return path;
    }
    let (head, tail) = parts.split_at(parts.len().min(DEPTH_MAX) - 1);
    for p in head {
        path.push(p);
    }
    path.push(safe_part(&tail.join("_")));
    path
}

/// The folder of an author's files: `NAME (id8)`.
pub fn author_folder(name: &str, id: &crate::id::PeerId) -> String {
    let name = crate::text::clean_name(name);
    safe_part(&format!("{} ({})", if name.is_empty() { "peer" } else { &name }, id.short()))
}

/// `path`, or the first of `stem (1).ext`, `stem (2).ext`... that does not exist, created empty
/// (so that two saves at once never take the same name). The folders on the way are made.
pub fn create_unique(path: &Path) -> io::Result<(PathBuf, File)> {
    if let Some(dir) = path.parent() {
        fs::create_dir_all(dir)?;
    }
    let stem = path.file_stem().map(|s| s.to_string_lossy().into_owned()).unwrap_or_default();
    let ext = path.extension().map(|e| format!(".{}", e.to_string_lossy())).unwrap_or_default();
    for n in 0..10_000u32 {
        let p = if n == 0 { path.to_path_buf() } else { path.with_file_name(format!("{stem} ({n}){ext}")) };
        match OpenOptions::new().write(true).create_new(true).open(&p) {
            Ok(f) => return Ok((p, f)),
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => continue,
            Err(e) => return Err(e),
        }
    }
    Err(io::Error::new(io::ErrorKind::AlreadyExists, "too many files of that name"))
}

/// Copy the store's file `from` to a new file at `to` (or beside it, never over a file).
pub fn save_copy(from: &Path, to: &Path) -> io::Result<PathBuf> {
    let (path, mut out) = create_unique(to)?;
    let r = (|| {
        let mut src = File::open(from)?;
        io::copy(&mut src, &mut out)?;
        out.sync_all()
    })();
    match r {
        Ok(()) => Ok(path),
        Err(e) => {
            let _ = fs::remove_file(&path);
            Err(e)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_never_leave_their_folder_nor_name_a_device() {
        let cases = [
            ("../../etc/passwd", "_/_/etc/passwd"),
            ("/etc/passwd", "etc/passwd"),
            ("C:\\Windows\\system32", "C_/Windows/system32"),
            ("src/a.py", "src/a.py"),
            ("CON", "_CON"),
            ("nul.txt", "_nul.txt"),
            ("com1.tar.gz", "_com1.tar.gz"),
            ("a\u{0}b\u{1b}[31m", "a_b_[31m"),
            ("dots...", "dots"),
            ("", "_"),
            ("..", "_"),
            ("a/./b", "a/b"),
            ("what?*.txt", "what__.txt"),
            ("\u{202e}txt.exe", "_txt.exe"),
        ];
        for (name, want) in cases {
            let got = safe_relative(name);
            assert_eq!(got, PathBuf::from_iter(want.split('/')), "{name:?}");
            assert!(got.is_relative());
            assert!(got.components().all(|c| matches!(c, std::path::Component::Normal(_))), "{name:?}");
        }
        let deep = (0..40).map(|i| i.to_string()).collect::<Vec<_>>().join("/");
        assert_eq!(safe_relative(&deep).components().count(), DEPTH_MAX);
        let long = format!("{}.py", "x".repeat(500));
        let p = safe_relative(&long);
        let s = p.to_str().unwrap();
        assert!(s.len() <= PART_MAX && s.ends_with(".py"), "{s}");
    }

    #[test]
    fn a_save_never_replaces_a_file() {
        let d = tempfile::tempdir().unwrap();
        let src = d.path().join("src");
        fs::write(&src, b"new").unwrap();
        let to = d.path().join("out").join("main.py");
        fs::create_dir_all(to.parent().unwrap()).unwrap();
        fs::write(&to, b"old").unwrap();
        let a = save_copy(&src, &to).unwrap();
        let b = save_copy(&src, &to).unwrap();
        assert_eq!(fs::read(&to).unwrap(), b"old");
        assert_eq!(a.file_name().unwrap(), "main (1).py");
        assert_eq!(b.file_name().unwrap(), "main (2).py");
        assert_eq!(fs::read(&b).unwrap(), b"new");
    }
}
