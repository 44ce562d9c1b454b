//! Files and folders of the user's disk made into the references a message carries: each file
//! hashed and copied into the store in one read (so that what is sent stays the same while the
//! room fetches it, whatever the user does to the original).
//!
//! A folder is sent as its files, named by their path from the folder's parent (`src/a.py`);
//! its symbolic links are not followed (a link to `/` must not send the disk), nor are other
//! special files. Every refusal is one plain sentence.

use std::fs;
use std::path::{Path, PathBuf};

use super::store::Store;
use crate::limits::{FILE_NAME, FILES, human};
use crate::protocol::FileRef;

/// Bounds of what may be sent.
#[derive(Debug, Clone, Copy)]
pub struct Bounds {
    /// Largest file.
    pub max_file: u64,
    /// Most bytes the store keeps in all.
    pub max_files: u64,
}

/// Space left free on the store's disk, beyond what a file needs.
const DISK_MARGIN: u64 = 64 << 20;

/// The files named by `paths` (files or folders), in order, each with its name in the message.
fn walk(paths: &[PathBuf]) -> Result<Vec<(PathBuf, String)>, String> {
    let mut out = Vec::new();
    for p in paths {
        // The path the user typed is followed if it is a link; links inside folders are not.
        let meta = fs::metadata(p).map_err(|_| format!("there is no file or folder {}", p.display()))?;
        let base = p
            .file_name()
            .and_then(|n| n.to_str())
            .map(str::to_string)
            .or_else(|| fs::canonicalize(p).ok()?.file_name()?.to_str().map(str::to_string))
            .ok_or_else(|| format!("the name of {} is not valid text; rename it", p.display()))?;
        if meta.is_file() {
            out.push((p.clone(), base));
        } else if meta.is_dir() {
            let before = out.len();
            walk_dir(p, &base, &mut out, 0)?;
            if out.len() == before {
                return Err(format!("the folder {} holds no files", p.display()));
            }
        } else {
            return Err(format!("{} is neither a file nor a folder", p.display()));
        }
        if out.len() > FILES {
            return Err(format!("a message carries at most {FILES} files; send the folder as a zip"));
        }
    }
    if out.is_empty() {
        return Err("name a file or a folder to send".into());
    }
    Ok(out)
}

fn walk_dir(dir: &Path, name: &str, out: &mut Vec<(PathBuf, String)>, depth: usize) -> Result<(), String> {
    if depth > 32 {
        return Err(format!("the folder {} is nested too deep", dir.display()));
    }
    let mut entries: Vec<_> = fs::read_dir(dir)
        .map_err(|e| format!("cannot read the folder {}: {e}", dir.display()))?
        .filter_map(Result::ok)
        .collect();
    entries.sort_by_key(|e| e.file_name());
    for e in entries {
        let Ok(kind) = e.file_type() else { continue };
        let Some(part) = e.file_name().to_str().map(str::to_string) else {
            return Err(format!("the name of {} is not valid text; rename it", e.path().display()));
        };
        let child = format!("{name}/{part}");
        if kind.is_symlink() {
            tracing::debug!(path = %e.path().display(), "a link in a folder is not sent");
        } else if kind.is_dir() {
            walk_dir(&e.path(), &child, out, depth + 1)?;
        } else if kind.is_file() {
            out.push((e.path(), child));
        }
        if out.len() > FILES {
            return Err(format!("a message carries at most {FILES} files; send the folder as a zip"));
        }
    }
    Ok(())
}

/// Hash and copy the files named by `paths` into `store`; their references, in order.
pub fn prepare(store: &Store, paths: &[PathBuf], bounds: Bounds) -> Result<Vec<FileRef>, String> {
    let files = walk(paths)?;
    let mut total = 0u64;
    for (path, name) in &files {
        if name.len() > FILE_NAME {
            return Err(format!("the name {name} is longer than {}; rename it", human(FILE_NAME)));
        }
        let size = fs::metadata(path).map(|m| m.len()).unwrap_or(0);
        if size > bounds.max_file {
            return Err(format!(
                "{} is {}, larger than the {} a file may be (--max-file)",
                path.display(),
                human_bytes(size),
                human_bytes(bounds.max_file)
            ));
        }
        total += size;
    }
    let held = store.total_bytes();
    if held + total > bounds.max_files {
        return Err(format!(
            "the files kept by this peer would pass {} (--max-files); remove some from {}",
            human_bytes(bounds.max_files),
            store.dir().display()
        ));
    }
    if let Ok(free) = fs4::available_space(store.dir())
        && free < total + DISK_MARGIN
    {
        return Err(format!(
            "the disk is full: {} free, and these files need {}; free some space",
            human_bytes(free),
            human_bytes(total)
        ));
    }
    let mut refs = Vec::with_capacity(files.len());
    for (path, name) in &files {
        let h = store.add(path, name).map_err(|e| match e.kind() {
            std::io::ErrorKind::StorageFull => "the disk is full; free some space and send again".to_string(),
            _ => format!("cannot read {}: {e}", path.display()),
        })?;
        if h.file.size > bounds.max_file {
            return Err(format!(
                "{} grew past the {} a file may be (--max-file)",
                path.display(),
                human_bytes(bounds.max_file)
            ));
        }
        refs.push(h.file);
    }
    Ok(refs)
}

/// A size as people read it: `812 bytes`, `3.4 MB`, `2.0 GB` (powers of 1024).
pub fn human_bytes(n: u64) -> String {
    const UNITS: [&str; 4] = ["KB", "MB", "GB", "TB"];
    if n < 1024 {
        return format!("{n} bytes");
    }
    let mut v = n as f64 / 1024.0;
    let mut u = 0;
    while v >= 1024.0 && u + 1 < UNITS.len() {
        v /= 1024.0;
        u += 1;
    }
    format!("{v:.1} {}", UNITS[u])
}

#[cfg(test)]
mod tests {
    use super::*;

    const BIG: Bounds = Bounds { max_file: 1 << 30, max_files: 1 << 40 };

    #[test]
    fn a_folder_is_its_files_by_relative_name_without_its_links() {
        let d = tempfile::tempdir().unwrap();
        let src = d.path().join("src");
        fs::create_dir_all(src.join("lib")).unwrap();
        fs::write(src.join("main.py"), b"print(1)\n").unwrap();
        fs::write(src.join("lib").join("util.py"), b"x = 2\n").unwrap();
        #[cfg(unix)]
        std::os::unix::fs::symlink("/", src.join("root")).unwrap();
        let store = Store::open(&d.path().join("files")).unwrap();
        let refs = prepare(&store, std::slice::from_ref(&src), BIG).unwrap();
        let names: Vec<_> = refs.iter().map(|r| r.name.as_str()).collect();
        assert_eq!(names, ["src/lib/util.py", "src/main.py"]);
        assert_eq!(refs[1].size, 9);
    }

    #[test]
    fn mistakes_are_plain_sentences() {
        let d = tempfile::tempdir().unwrap();
        let store = Store::open(&d.path().join("files")).unwrap();
        let missing = d.path().join("nope.py");
        let e = prepare(&store, &[missing], BIG).unwrap_err();
        assert!(e.starts_with("there is no file or folder"), "{e}");
        let big = d.path().join("big.bin");
        fs::write(&big, vec![0u8; 2000]).unwrap();
        let e = prepare(&store, &[big], Bounds { max_file: 1000, max_files: 1 << 40 }).unwrap_err();
        assert!(e.contains("larger than the 1000 bytes a file may be (--max-file)"), "{e}");
        let empty = d.path().join("empty");
        fs::create_dir(&empty).unwrap();
        assert!(prepare(&store, &[empty], BIG).unwrap_err().contains("holds no files"));
        let f = d.path().join("f");
        fs::write(&f, b"abc").unwrap();
        let e = prepare(&store, &[f], Bounds { max_file: 1 << 20, max_files: 2 }).unwrap_err();
        assert!(e.contains("--max-files"), "{e}");
    }
}
