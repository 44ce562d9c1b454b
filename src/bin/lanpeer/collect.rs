//! `lanpeer collect PROBLEM-ID DIR`: each student's latest answer to a problem, its text and its
//! files, written out for the teacher to open, mark or run: `DIR/<name (id8)>/answer.txt` and
//! the files beside it, and `DIR/index.csv` with a row per student.
//!
//! Read-only on the data dir, like `export`, so it works while the peer runs: the history is read
//! from its journal, and each file from the peer's file store (`<data dir>/files/<hash>.file`,
//! complete and checked once it is there), never from the downloads (which the user may have
//! moved or changed). A file not received yet is no error: its row says it is missing, and a
//! later collect into another folder gets it. Nothing is ever overwritten: DIR must be new or
//! empty, and within it a file whose (safe) name is taken gets a name of its own (`main (1).py`).
//! Every version of an answer stays in the history; the latest is the one collected.

use std::fs;
use std::io::{Read, Write};
use std::path::{Path, PathBuf};

use lanpeer::files::names;
use lanpeer::protocol::FileRef;
use lanpeer::{Body, Error};
use sha2::{Digest, Sha256};

use crate::export::{cell, problems, time};

/// What a collect wrote, for the line that says so.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Collected {
    pub answers: usize,
    pub files: usize,
    pub missing: usize,
}

/// One file of an answer, as it went: saved (its path under the student's folder), or not.
enum Got {
    Saved(String),
    Missing,
    /// In the store, but not what its message names (the store is damaged): not written.
    Damaged,
}

/// Copy `from` to a new file at `to` (or beside it: never over a file), checking its SHA-256.
fn copy_checked(from: &Path, to: &Path, sha256: &[u8; 32]) -> std::io::Result<Option<PathBuf>> {
    let (path, mut out) = names::create_unique(to)?;
    let r = (|| {
        let mut src = fs::File::open(from)?;
        let mut sha = Sha256::new();
        let mut buf = vec![0u8; 256 * 1024];
        loop {
            let n = src.read(&mut buf)?;
            if n == 0 {
                break;
            }
            sha.update(&buf[..n]);
            out.write_all(&buf[..n])?;
        }
        out.sync_all()?;
        Ok(<[u8; 32]>::from(sha.finalize()) == *sha256)
    })();
    match r {
        Ok(true) => Ok(Some(path)),
        Ok(false) => {
            let _ = fs::remove_file(&path);
            Ok(None)
        }
        Err(e) => {
            let _ = fs::remove_file(&path);
            Err(e)
        }
    }
}

/// A path under `base`, with `/` between its parts (as in a message).
fn relative(path: &Path, base: &Path) -> String {
    let rel = path.strip_prefix(base).unwrap_or(path);
    rel.components().map(|c| c.as_os_str().to_string_lossy()).collect::<Vec<_>>().join("/")
}

/// Write the file `f` of an answer into `folder`, from the file store `store`.
fn file_into(store: &Path, folder: &Path, f: &FileRef) -> Result<Got, Error> {
    let from = store.join(format!("{}.file", hex::encode(f.chunks)));
    if !from.is_file() {
        return Ok(Got::Missing);
    }
    let to = folder.join(names::safe_relative(&f.name));
    match copy_checked(&from, &to, &f.sha256) {
        Ok(Some(p)) => Ok(Got::Saved(relative(&p, folder))),
        Ok(None) => Ok(Got::Damaged),
        Err(e) => Err(Error::Storage(format!("cannot write {}: {e}", to.display()))),
    }
}

/// Collect the latest answer of each student to `problem` (its id, or the short form the prompt
/// shows) from the data dir `data`, into `dir`.
pub fn collect(data: &Path, room: Option<&str>, problem: &str, dir: &Path) -> Result<Collected, Error> {
    let view = match problems(data, room, Some(problem)) {
        Ok(mut v) if !v.is_empty() => v.remove(0),
        Ok(_) | Err(Error::UnknownProblem(_)) => {
            return Err(Error::BadText(format!(
                "there is no problem {problem} in the history of {}; `lanpeer export` lists the problems and their ids",
                data.display()
            )));
        }
        Err(e) => return Err(e),
    };
    let write_err = |e: std::io::Error| Error::Storage(format!("cannot write into {}: {e}", dir.display()));
    if fs::read_dir(dir).is_ok_and(|mut d| d.next().is_some()) {
        return Err(Error::BadText(format!(
            "the folder {} is not empty; collect into a new or empty folder (nothing is ever overwritten)",
            dir.display()
        )));
    }
    fs::create_dir_all(dir).map_err(write_err)?;
    let store = data.join("files");
    let mut done = Collected::default();
    let mut rows = Vec::new();
    for s in lanpeer::exercises::submissions(&view) {
        let a = &s.latest;
        let folder_name = names::author_folder(&a.from_name, &a.id.author);
        let folder = dir.join(&folder_name);
        fs::create_dir_all(&folder).map_err(write_err)?;
        let text = match &a.body {
            Body::Answer { text, .. } => text.as_str(),
            _ => "",
        };
        let (_, mut f) = names::create_unique(&folder.join("answer.txt")).map_err(write_err)?;
        f.write_all(text.as_bytes()).and_then(|()| f.sync_all()).map_err(write_err)?;
        let (mut listed, mut hashes, mut missing) = (Vec::new(), Vec::new(), 0);
        for file in &a.files {
            match file_into(&store, &folder, file)? {
                Got::Saved(p) => {
                    done.files += 1;
                    listed.push(p);
                }
                Got::Missing => {
                    missing += 1;
                    listed.push(format!("{} (missing: not received yet)", file.name));
                }
                Got::Damaged => {
                    missing += 1;
                    listed.push(format!("{} (missing: damaged in this peer's store)", file.name));
                }
            }
            hashes.push(hex::encode(file.sha256));
        }
        done.answers += 1;
        done.missing += missing;
        rows.push([
            a.from_label.clone(),
            a.id.author.to_string(),
            time(a.sent_ms),
            s.versions.to_string(),
            listed.join(" | "),
            hashes.join(" | "),
            a.id.to_string(),
            folder_name,
            missing.to_string(),
        ]);
    }
    let (_, index) = names::create_unique(&dir.join("index.csv")).map_err(write_err)?;
    let mut w = csv::WriterBuilder::new().quote_style(csv::QuoteStyle::Always).from_writer(index);
    let csv_err = |e: csv::Error| Error::Storage(format!("cannot write {}: {e}", dir.join("index.csv").display()));
    w.write_record(["student", "id", "time", "versions", "files", "sha256", "answer_id", "folder", "missing"])
        .map_err(csv_err)?;
    for row in rows {
        w.write_record(row.map(|c| cell(&c).into_owned())).map_err(csv_err)?;
    }
    w.flush().map_err(write_err)?;
    Ok(done)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_copy_is_checked_and_never_replaces_a_file() {
        let d = tempfile::tempdir().unwrap();
        let from = d.path().join("store.file");
        fs::write(&from, b"print(1)\n").unwrap();
        let sha: [u8; 32] = Sha256::digest(b"print(1)\n").into();
        let to = d.path().join("out").join("answer.txt");
        fs::create_dir_all(to.parent().unwrap()).unwrap();
        fs::write(&to, b"the text").unwrap();
        let p = copy_checked(&from, &to, &sha).unwrap().unwrap();
        assert_eq!(p.file_name().unwrap(), "answer (1).txt");
        assert_eq!(fs::read(&to).unwrap(), b"the text");
        assert_eq!(fs::read(&p).unwrap(), b"print(1)\n");
        assert_eq!(copy_checked(&from, &to, &[0; 32]).unwrap(), None, "a damaged copy is not kept");
        assert!(!d.path().join("out").join("answer (2).txt").exists());
        assert_eq!(relative(&d.path().join("out/src/a.py"), &d.path().join("out")), "src/a.py");
    }
}
