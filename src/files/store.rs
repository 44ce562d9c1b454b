//! The file store of a data dir (`files/`): every file this peer sent or received, by content.
//!
//! A file is named by the hash of the list of its chunks' hashes ([`FileRef::chunks`]), so a file
//! sent twice, or by two people, is kept once, and a chunk fetched from anyone is checked against
//! the list that the author's signed message names. On disk, for a file of hash `H` (hex):
//! - `H.list`: the list of its chunks' BLAKE3 hashes (32 bytes each), once it is known and checked;
//! - `H.part`: its content while it arrives (chunks written at their places, in any order), with
//!   `H.have`, the bitmap of the chunks written and checked, written after the content is synced:
//!   after a crash or a restart the bitmap may be behind, never ahead;
//! - `H.file`: its content, complete and checked against the SHA-256 the message names.
//!
//! Why a store of our own and not the user's files: what is sent must stay the same while others
//! fetch it (a student editing `main.py` after handing it in must not break the transfer), and
//! what arrives must be served to the others of the room (the room swarms) whatever the user
//! does with the copy in their downloads.

use std::fs::{self, File, OpenOptions};
use std::io::{Read, Write};
use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};

use super::{CHUNK, Hash, LIST_PIECE, chunk_count};
use crate::error::Error;
use crate::protocol::FileRef;

/// Reads and writes at an offset on every system.
fn read_at(f: &File, buf: &mut [u8], at: u64) -> std::io::Result<usize> {
    #[cfg(unix)]
    {
        use std::os::unix::fs::FileExt;
        f.read_at(buf, at)
    }
    #[cfg(windows)]
    {
        use std::os::windows::fs::FileExt;
        f.seek_read(buf, at)
    }
}

fn write_all_at(f: &File, mut buf: &[u8], mut at: u64) -> std::io::Result<()> {
    while !buf.is_empty() {
        #[cfg(unix)]
        let n = {
            use std::os::unix::fs::FileExt;
            f.write_at(buf, at)?
        };
        #[cfg(windows)]
        let n = {
            use std::os::windows::fs::FileExt;
            f.seek_write(buf, at)?
        };
        if n == 0 {
            return Err(std::io::ErrorKind::WriteZero.into());
        }
        buf = &buf[n..];
        at += n as u64;
    }
    Ok(())
}

fn read_exact_at(f: &File, buf: &mut [u8], at: u64) -> std::io::Result<()> {
    let mut done = 0;
    while done < buf.len() {
        let n = read_at(f, &mut buf[done..], at + done as u64)?;
        if n == 0 {
            return Err(std::io::ErrorKind::UnexpectedEof.into());
        }
        done += n;
    }
    Ok(())
}

/// Create a file readable by its owner only (0600 on Unix).
fn create_private(path: &Path, truncate: bool) -> std::io::Result<File> {
    let mut o = OpenOptions::new();
    o.read(true).write(true).create(true).truncate(truncate);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        o.mode(0o600);
    }
    o.open(path)
}

/// Write `bytes` to `path` durably (a file beside, synced, renamed over).
fn write_durably(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    let tmp = path.with_extension("tmp");
    {
        let mut f = create_private(&tmp, true)?;
        f.write_all(bytes)?;
        f.sync_all()?;
    }
    fs::rename(&tmp, path)
}

fn hex(h: &Hash) -> String {
    hex::encode(h)
}

/// What a file read from the user's disk comes to: its reference and its chunks' list.
#[derive(Debug, Clone)]
pub struct Hashed {
    /// The reference a message carries (its name as given).
    pub file: FileRef,
    /// The list of its chunks' hashes.
    pub list: Vec<Hash>,
}

/// Hash the file at `path` (its content as it is now) into a reference named `name`, copying it
/// into `copy` on the way (one read of the file).
fn hash_copy(path: &Path, name: &str, copy: &mut File) -> std::io::Result<Hashed> {
    let mut f = File::open(path)?;
    let mut sha = Sha256::new();
    let mut list = Vec::new();
    let mut buf = vec![0u8; CHUNK];
    let mut size = 0u64;
    loop {
        let mut got = 0;
        while got < CHUNK {
            let n = f.read(&mut buf[got..])?;
            if n == 0 {
                break;
            }
            got += n;
        }
        if got == 0 {
            break;
        }
        let chunk = &buf[..got];
        sha.update(chunk);
        list.push(*blake3::hash(chunk).as_bytes());
        copy.write_all(chunk)?;
        size += got as u64;
        if got < CHUNK {
            break;
        }
    }
    let file = FileRef { name: name.to_string(), size, sha256: sha.finalize().into(), chunks: list_hash(&list) };
    Ok(Hashed { file, list })
}

/// The hash of a list of chunk hashes: what [`FileRef::chunks`] names.
pub fn list_hash(list: &[Hash]) -> Hash {
    let mut h = blake3::Hasher::new();
    for c in list {
        h.update(c);
    }
    *h.finalize().as_bytes()
}

/// The file store of a data dir.
#[derive(Debug)]
pub struct Store {
    dir: PathBuf,
}

/// How a file stands in the store.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Held {
    /// Nothing of it.
    Nothing,
    /// Its list is known; these chunks are written (a bitmap, one bit per chunk).
    Partly {
        /// The list of its chunks' hashes.
        list: Vec<Hash>,
        /// One bit per chunk, set when it is written and checked.
        have: Vec<u8>,
    },
    /// All of it, checked.
    Complete {
        /// The list of its chunks' hashes.
        list: Vec<Hash>,
    },
}

impl Store {
    /// The store in `dir` (created, readable by its owner only).
    pub fn open(dir: &Path) -> Result<Store, Error> {
        let err = |source| Error::DataDir { path: dir.to_path_buf(), source };
        fs::create_dir_all(dir).map_err(err)?;
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let _ = fs::set_permissions(dir, fs::Permissions::from_mode(0o700));
        }
        Ok(Store { dir: dir.to_path_buf() })
    }

    fn path(&self, h: &Hash, ext: &str) -> PathBuf {
        self.dir.join(format!("{}.{ext}", hex(h)))
    }

    /// Where a complete file's content is (to read it, or to serve a download of it).
    pub fn complete_path(&self, h: &Hash) -> Option<PathBuf> {
        let p = self.path(h, "file");
        p.exists().then_some(p)
    }

    /// Bytes of every file kept, complete or in part.
    pub fn total_bytes(&self) -> u64 {
        let Ok(rd) = fs::read_dir(&self.dir) else { return 0 };
        rd.filter_map(Result::ok)
            .filter(|e| e.path().extension().is_some_and(|x| x == "file" || x == "part"))
            .filter_map(|e| e.metadata().ok())
            .map(|m| m.len())
            .sum()
    }

    /// Copy the file at `path` into the store, hashed on the way, under the name `name`.
    pub fn add(&self, path: &Path, name: &str) -> std::io::Result<Hashed> {
        let tmp = self.dir.join(format!("adding-{}.tmp", rand::random::<u64>()));
        let r = (|| {
            let mut copy = create_private(&tmp, true)?;
            let h = hash_copy(path, name, &mut copy)?;
            copy.sync_all()?;
            Ok(h)
        })();
        let h = match r {
            Ok(h) => h,
            Err(e) => {
                let _ = fs::remove_file(&tmp);
                return Err(e);
            }
        };
        let id = h.file.chunks;
        if self.path(&id, "file").exists() {
            // Kept already (the same content sent before).
            let _ = fs::remove_file(&tmp);
        } else {
            self.write_list(&id, &h.list)?;
            fs::rename(&tmp, self.path(&id, "file"))?;
        }
        let _ = fs::remove_file(self.path(&id, "part"));
        let _ = fs::remove_file(self.path(&id, "have"));
        Ok(h)
    }

    fn write_list(&self, id: &Hash, list: &[Hash]) -> std::io::Result<()> {
        write_durably(&self.path(id, "list"), &list.concat())
    }

    fn read_list(&self, id: &Hash) -> Option<Vec<Hash>> {
        let bytes = fs::read(self.path(id, "list")).ok()?;
        if bytes.len() % 32 != 0 {
            return None;
        }
        let list: Vec<Hash> = bytes.chunks_exact(32).map(|c| c.try_into().expect("32")).collect();
        (list_hash(&list) == *id).then_some(list)
    }

    /// How the file `f` stands here.
    pub fn held(&self, f: &FileRef) -> Held {
        let id = f.chunks;
        let Some(list) = self.read_list(&id) else { return Held::Nothing };
        if list.len() as u64 != chunk_count(f.size) {
            return Held::Nothing;
        }
        if self.path(&id, "file").exists() {
            return Held::Complete { list };
        }
        let n = list.len();
        let mut have = fs::read(self.path(&id, "have")).unwrap_or_default();
        have.resize(n.div_ceil(8), 0);
        if !self.path(&id, "part").exists() {
            have.fill(0);
        }
        Held::Partly { list, have }
    }

    /// Begin receiving `f`, whose list (checked against its reference) is `list`: the content
    /// file made at its size (sparse where the system allows).
    pub fn begin(&self, f: &FileRef, list: &[Hash]) -> std::io::Result<()> {
        let id = f.chunks;
        self.write_list(&id, list)?;
        let part = self.path(&id, "part");
        if !part.exists() {
            let file = create_private(&part, false)?;
            file.set_len(f.size)?;
        }
        Ok(())
    }

    /// Write chunk `i` of `f` (its bytes were checked by the caller).
    pub fn write_chunk(&self, f: &FileRef, i: u32, data: &[u8]) -> std::io::Result<()> {
        let file = OpenOptions::new().write(true).open(self.path(&f.chunks, "part"))?;
        write_all_at(&file, data, i as u64 * CHUNK as u64)
    }

    /// Save the bitmap `have` of `f`. The content is not synced first: a bit may be ahead of
    /// the disk after a crash, and [`Store::verify`] checks every chunk the bitmap names when
    /// a transfer resumes (a hash is cheaper than a sync per save).
    pub fn save_have(&self, f: &FileRef, have: &[u8]) -> std::io::Result<()> {
        write_durably(&self.path(&f.chunks, "have"), have)
    }

    /// Check each chunk `have` names against `list`, clearing the bits of those that do not
    /// match (a crash, a disk that lost writes); how many were cleared.
    pub fn verify(&self, f: &FileRef, list: &[Hash], have: &mut [u8]) -> usize {
        let Ok(file) = File::open(self.path(&f.chunks, "part")) else {
            let n = have.iter().map(|b| b.count_ones() as usize).sum();
            have.fill(0);
            return n;
        };
        let mut buf = vec![0u8; CHUNK];
        let mut cleared = 0;
        for (i, want) in list.iter().enumerate() {
            if have[i / 8] & (1 << (i % 8)) == 0 {
                continue;
            }
            let at = i as u64 * CHUNK as u64;
            let len = (f.size - at).min(CHUNK as u64) as usize;
            let ok = read_exact_at(&file, &mut buf[..len], at).is_ok() && blake3::hash(&buf[..len]).as_bytes() == want;
            if !ok {
                have[i / 8] &= !(1 << (i % 8));
                cleared += 1;
            }
        }
        cleared
    }

    /// The folder of the store.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Remember that the content of `id` may be given under room messages (it was sent, or
    /// fetched, under one: docs/security.md, "Files").
    pub fn mark_room(&self, id: &Hash) {
        let _ = create_private(&self.path(id, "room"), false);
    }

    /// May the content of `id` be given under room messages?
    pub fn is_room(&self, id: &Hash) -> bool {
        self.path(id, "room").exists()
    }

    /// Forget what was received of `id` (its content did not match its message).
    pub fn discard(&self, id: &Hash) {
        for ext in ["part", "have", "list"] {
            let _ = fs::remove_file(self.path(id, ext));
        }
    }

    /// Every chunk of `f` is written: check the whole against its SHA-256 and keep it as
    /// complete. Err(InvalidData) when the content is not what the message names.
    pub fn finish(&self, f: &FileRef) -> std::io::Result<PathBuf> {
        let part = self.path(&f.chunks, "part");
        let mut file = File::open(&part)?;
        let mut sha = Sha256::new();
        let mut buf = vec![0u8; 1 << 20];
        loop {
            let n = file.read(&mut buf)?;
            if n == 0 {
                break;
            }
            sha.update(&buf[..n]);
        }
        if <[u8; 32]>::from(sha.finalize()) != f.sha256 {
            return Err(std::io::Error::new(std::io::ErrorKind::InvalidData, "the file does not match its SHA-256"));
        }
        File::open(&part)?.sync_all()?;
        let done = self.path(&f.chunks, "file");
        fs::rename(&part, &done)?;
        let _ = fs::remove_file(self.path(&f.chunks, "have"));
        Ok(done)
    }

    /// Chunk `i` of a file held here (complete or in part, the caller knowing it is written).
    pub fn read_chunk(&self, f: &FileRef, i: u32) -> std::io::Result<Vec<u8>> {
        let path = match self.complete_path(&f.chunks) {
            Some(p) => p,
            None => self.path(&f.chunks, "part"),
        };
        let file = File::open(path)?;
        let at = i as u64 * CHUNK as u64;
        let len = (f.size.saturating_sub(at)).min(CHUNK as u64) as usize;
        let mut buf = vec![0u8; len];
        read_exact_at(&file, &mut buf, at)?;
        Ok(buf)
    }

    /// Piece `k` of a file's list, as bytes.
    pub fn list_piece(list: &[Hash], k: u32) -> Option<Vec<u8>> {
        let from = k as usize * LIST_PIECE;
        (from < list.len() || (list.is_empty() && k == 0))
            .then(|| list[from.min(list.len())..(from + LIST_PIECE).min(list.len())].concat())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn scratch(tag: &str) -> PathBuf {
        let d =
            std::env::temp_dir().join(format!("lanpeer-files-{tag}-{}-{}", std::process::id(), rand::random::<u32>()));
        fs::create_dir_all(&d).unwrap();
        d
    }

    #[test]
    fn a_file_added_is_hashed_kept_and_read_back_by_chunk() {
        let d = scratch("add");
        let src = d.join("src.bin");
        let content: Vec<u8> = (0..(3 * CHUNK + 100)).map(|i| (i * 7) as u8).collect();
        fs::write(&src, &content).unwrap();
        let s = Store::open(&d.join("files")).unwrap();
        let h = s.add(&src, "data/src.bin").unwrap();
        assert_eq!(h.file.size, content.len() as u64);
        assert_eq!(h.file.sha256, <[u8; 32]>::from(Sha256::digest(&content)));
        assert_eq!(h.list.len(), 4);
        assert_eq!(h.list[3], *blake3::hash(&content[3 * CHUNK..]).as_bytes());
        assert_eq!(h.file.chunks, list_hash(&h.list));
        assert_eq!(s.held(&h.file), Held::Complete { list: h.list.clone() });
        assert_eq!(s.read_chunk(&h.file, 1).unwrap(), &content[CHUNK..2 * CHUNK]);
        assert_eq!(s.read_chunk(&h.file, 3).unwrap(), &content[3 * CHUNK..]);
        // Changing the source changes nothing kept.
        fs::write(&src, b"changed").unwrap();
        assert_eq!(s.read_chunk(&h.file, 0).unwrap(), &content[..CHUNK]);
        fs::remove_dir_all(&d).unwrap();
    }

    #[test]
    fn a_file_received_in_any_order_resumes_and_is_checked_whole() {
        let d = scratch("recv");
        let src = d.join("a");
        let content: Vec<u8> = (0..(2 * CHUNK + 5)).map(|i| (i % 251) as u8).collect();
        fs::write(&src, &content).unwrap();
        let sender = Store::open(&d.join("s")).unwrap();
        let h = sender.add(&src, "a").unwrap();
        let recv = Store::open(&d.join("r")).unwrap();
        assert_eq!(recv.held(&h.file), Held::Nothing);
        recv.begin(&h.file, &h.list).unwrap();
        recv.write_chunk(&h.file, 2, &sender.read_chunk(&h.file, 2).unwrap()).unwrap();
        recv.save_have(&h.file, &[0b100]).unwrap();
        // A restart: what was saved is there.
        let again = Store::open(&d.join("r")).unwrap();
        match again.held(&h.file) {
            Held::Partly { have, list } => assert_eq!((have, list.len()), (vec![0b100], 3)),
            other => panic!("{other:?}"),
        }
        for i in [0, 1] {
            again.write_chunk(&h.file, i, &sender.read_chunk(&h.file, i).unwrap()).unwrap();
        }
        let done = again.finish(&h.file).unwrap();
        assert_eq!(fs::read(done).unwrap(), content);
        assert!(matches!(again.held(&h.file), Held::Complete { .. }));
        // A wrong SHA-256 (an author's lie) is refused.
        let mut lie = h.file.clone();
        lie.sha256[0] ^= 1;
        let other = Store::open(&d.join("o")).unwrap();
        other.begin(&lie, &h.list).unwrap();
        for i in 0..3 {
            other.write_chunk(&lie, i, &sender.read_chunk(&h.file, i).unwrap()).unwrap();
        }
        assert_eq!(other.finish(&lie).unwrap_err().kind(), std::io::ErrorKind::InvalidData);
        fs::remove_dir_all(&d).unwrap();
    }

    #[test]
    fn an_empty_file_is_a_file() {
        let d = scratch("empty");
        fs::write(d.join("e"), b"").unwrap();
        let s = Store::open(&d.join("f")).unwrap();
        let h = s.add(&d.join("e"), "e").unwrap();
        assert_eq!((h.file.size, h.list.len()), (0, 0));
        assert!(matches!(s.held(&h.file), Held::Complete { .. }));
        assert_eq!(Store::list_piece(&h.list, 0), Some(vec![]));
        fs::remove_dir_all(&d).unwrap();
    }
}
