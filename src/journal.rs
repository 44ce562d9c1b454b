//! An append-only journal of groups of records, each group written whole or not at all: the
//! file format of a history store of our own.
//!
//! Why: a database writes each message more than once (a page of its write-ahead log, then the
//! same page into its tables, with a b-tree row and an index entry per message), where a turn's
//! messages are bytes to keep in order. A journal writes a turn's bytes once, with one `write`,
//! and the store keeps its indexes in memory. This module is the format and its crash rules; the
//! store on it is `store/journaled.rs`, a data dir's `history.journal` (docs/architecture.md,
//! "The journal file"; the bench's `store` lines measure it beside a plain write to a file).
//!
//! Format (all integers little-endian; docs/architecture.md, "The journal"):
//! - a header of 16 bytes: the magic `LPJOURN1`, the format version (`u32`, 1), 4 zero bytes;
//! - then groups, each: its payload's length (`u32`), a CRC-32 (`u32`, IEEE, over the length's 4
//!   bytes and the payload), and the payload: records, each its length (`u32`) and its bytes.
//!
//! Crash rules: a group is appended with one `write` at the end of the last whole group. On
//! open, groups are replayed in order up to the first that is not whole (short, longer than the
//! file or [`MAX_GROUP`], a CRC that does not match, records that overrun the payload): that
//! tail is what a crash cut off in the middle of a write, and the writer cuts it away before it
//! appends (a reader, which may be looking at a writer mid-append, stops there and leaves it).
//! Damage that is not a crash's (a group that does not check out with a whole group after it: a
//! disk error) is cut the same way, but the whole file is first copied beside it
//! (`<name>.damaged-<ms>`) and the cut logged as an error, so nothing on disk is lost with it.
//! So a group, like a database transaction, is kept whole or not at all. Durability is the
//! caller's choice: an appended group survives the process being killed; [`Journal::sync`]
//! (`fdatasync`) makes it survive a power cut, and a [`Syncer`] does that beside the writer at
//! most every second.

use std::fs::{File, OpenOptions};
use std::io::{self, BufReader, Read, Seek, SeekFrom, Write};
use std::path::Path;

/// The first 8 bytes of every journal.
pub const MAGIC: &[u8; 8] = b"LPJOURN1";
/// The format version this build writes and reads.
pub const VERSION: u32 = 1;
/// Bytes before the first group.
pub const HEADER_LEN: u64 = 16;
/// Bytes before a group's payload: its length and its CRC.
pub const GROUP_HEADER_LEN: usize = 8;
/// The largest payload of one group. Larger is refused by [`Journal::append`], and a length
/// above it in a file is read as a damaged tail (never allocated).
pub const MAX_GROUP: usize = 64 << 20;

/// A group being built: records pushed one after another, appended with [`Journal::append`].
/// Reused turn after turn ([`GroupBuf::clear`]) so that a turn allocates nothing once the
/// buffer has grown to the size of the turns.
#[derive(Debug, Clone)]
pub struct GroupBuf {
    /// The group header's 8 bytes (filled in by `append`), then the records.
    buf: Vec<u8>,
    /// How many records were pushed.
    records: usize,
}

impl Default for GroupBuf {
    fn default() -> Self {
        GroupBuf { buf: vec![0; GROUP_HEADER_LEN], records: 0 }
    }
}

impl GroupBuf {
    /// An empty group.
    pub fn new() -> GroupBuf {
        GroupBuf::default()
    }

    /// Add one record.
    pub fn push(&mut self, record: &[u8]) {
        self.push_with(|b| b.extend_from_slice(record));
    }

    /// Add one record written in place by `write` (which appends to the vector it is given and
    /// must not touch what is already there): no copy through a buffer of its own.
    pub fn push_with(&mut self, write: impl FnOnce(&mut Vec<u8>)) {
        let at = self.buf.len();
        self.buf.extend_from_slice(&[0; 4]);
        write(&mut self.buf);
        let len = (self.buf.len() - at - 4) as u32;
        self.buf[at..at + 4].copy_from_slice(&len.to_le_bytes());
        self.records += 1;
    }

    /// Records pushed since the last clear.
    pub fn records(&self) -> usize {
        self.records
    }

    /// Nothing pushed since the last clear.
    pub fn is_empty(&self) -> bool {
        self.records == 0
    }

    /// The payload's size so far (the records with their lengths).
    pub fn payload_len(&self) -> usize {
        self.buf.len() - GROUP_HEADER_LEN
    }

    /// Empty it for the next group, keeping its memory.
    pub fn clear(&mut self) {
        self.buf.truncate(GROUP_HEADER_LEN);
        self.records = 0;
    }
}

/// The records of one replayed group, in the order they were pushed.
#[derive(Debug, Clone, Copy)]
pub struct Records<'a> {
    rest: &'a [u8],
}

impl<'a> Iterator for Records<'a> {
    type Item = &'a [u8];

    fn next(&mut self) -> Option<&'a [u8]> {
        // `whole` checked every length before the group was handed out.
        let (len, rest) = self.rest.split_first_chunk::<4>()?;
        let (rec, rest) = rest.split_at(u32::from_le_bytes(*len) as usize);
        self.rest = rest;
        Some(rec)
    }
}

/// Whether `payload` is a sequence of whole records (a length never runs past the end).
fn whole(mut payload: &[u8]) -> bool {
    while let Some((len, rest)) = payload.split_first_chunk::<4>() {
        let len = u32::from_le_bytes(*len) as usize;
        if len > rest.len() {
            return false;
        }
        payload = &rest[len..];
    }
    payload.is_empty()
}

fn crc(len: [u8; 4], payload: &[u8]) -> u32 {
    let mut h = crc32fast::Hasher::new();
    h.update(&len);
    h.update(payload);
    h.finalize()
}

fn invalid(what: &str) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, what.to_string())
}

/// The header this build writes.
fn header() -> [u8; HEADER_LEN as usize] {
    let mut h = [0u8; HEADER_LEN as usize];
    h[..8].copy_from_slice(MAGIC);
    h[8..12].copy_from_slice(&VERSION.to_le_bytes());
    h
}

/// Check the header of an open journal (positioned at its start).
fn read_header(f: &mut impl Read) -> io::Result<()> {
    let mut h = [0u8; HEADER_LEN as usize];
    f.read_exact(&mut h).map_err(|_| invalid("not a lanpeer journal (too short)"))?;
    if &h[..8] != MAGIC {
        return Err(invalid("not a lanpeer journal"));
    }
    let version = u32::from_le_bytes([h[8], h[9], h[10], h[11]]);
    if version != VERSION {
        return Err(invalid(&format!(
            "this journal was written by another version of lanpeer (format {version}, this one reads {VERSION}); use that version, or a newer one"
        )));
    }
    Ok(())
}

/// Is what follows the last whole group at `end` what an append cut off by a crash leaves (a
/// group header cut short, or a group that reaches the end of the file, with no whole group
/// after it), rather than damage with more of the file after it?
fn torn(f: &File, end: u64, size: u64) -> io::Result<bool> {
    let mut head = [0u8; GROUP_HEADER_LEN];
    let mut r = f;
    r.seek(SeekFrom::Start(end))?;
    if size - end < GROUP_HEADER_LEN as u64 || r.read_exact(&mut head).is_err() {
        return Ok(true);
    }
    let len = u32::from_le_bytes([head[0], head[1], head[2], head[3]]) as u64;
    if len > MAX_GROUP as u64 || end + GROUP_HEADER_LEN as u64 + len < size {
        return Ok(false);
    }
    // The damaged group seems to reach the end, but its length may be what was damaged: a whole
    // group starting anywhere after it says so (looked for in the first 8 MiB after it).
    let mut rest = Vec::new();
    r.seek(SeekFrom::Start(end + 1))?;
    r.take(SCAN_AFTER_DAMAGE).read_to_end(&mut rest)?;
    Ok(!(0..rest.len()).any(|o| group_at(&rest[o..])))
}

/// How far after a damaged group [`torn`] looks for a whole one.
const SCAN_AFTER_DAMAGE: u64 = 8 << 20;

/// Does `b` start with a whole group?
fn group_at(b: &[u8]) -> bool {
    let Some((head, rest)) = b.split_first_chunk::<GROUP_HEADER_LEN>() else { return false };
    let len_bytes = [head[0], head[1], head[2], head[3]];
    let len = u32::from_le_bytes(len_bytes) as usize;
    let want = u32::from_le_bytes([head[4], head[5], head[6], head[7]]);
    len <= rest.len() && crc(len_bytes, &rest[..len]) == want && whole(&rest[..len])
}

/// Where the copy of a damaged journal goes: beside it, named with the time.
fn damaged_copy(path: &Path) -> std::path::PathBuf {
    let ms = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_millis());
    let mut n = 0;
    loop {
        let p = std::path::PathBuf::from(format!(
            "{}.damaged-{ms}{}",
            path.display(),
            if n == 0 { String::new() } else { format!("-{n}") }
        ));
        if !p.exists() {
            return p;
        }
        n += 1;
    }
}

/// Replay the groups after the header, calling `each` for every whole one; returns the offset
/// just past the last whole group (where the next one goes).
fn replay(f: &File, size: u64, mut each: impl FnMut(Records<'_>)) -> io::Result<u64> {
    let mut r = BufReader::with_capacity(64 << 10, f);
    r.seek(SeekFrom::Start(HEADER_LEN))?;
    let mut at = HEADER_LEN;
    let mut payload = Vec::new();
    loop {
        let mut head = [0u8; GROUP_HEADER_LEN];
        if size - at < GROUP_HEADER_LEN as u64 || r.read_exact(&mut head).is_err() {
            return Ok(at);
        }
        let len_bytes = [head[0], head[1], head[2], head[3]];
        let len = u32::from_le_bytes(len_bytes) as usize;
        let want = u32::from_le_bytes([head[4], head[5], head[6], head[7]]);
        // A length beyond the file or the limit is a damaged tail: nothing is allocated for it.
        if len > MAX_GROUP || len as u64 > size - at - GROUP_HEADER_LEN as u64 {
            return Ok(at);
        }
        payload.resize(len, 0);
        if r.read_exact(&mut payload).is_err() || crc(len_bytes, &payload) != want || !whole(&payload) {
            return Ok(at);
        }
        each(Records { rest: &payload });
        at += (GROUP_HEADER_LEN + len) as u64;
    }
}

/// A journal open for appending. One writer per file: the caller holds the data directory's
/// lock (docs/architecture.md, "The data directory").
#[derive(Debug)]
pub struct Journal {
    file: File,
    /// Where the next group goes: just past the last whole group.
    end: u64,
}

impl Journal {
    /// Open the journal at `path` (made, with its header, when missing or empty), replay every
    /// whole group into `each`, and cut away a damaged tail. Returns the journal and how many
    /// bytes of tail were cut (logged at warn level when not 0).
    pub fn open(path: &Path, each: impl FnMut(Records<'_>)) -> io::Result<(Journal, u64)> {
        // Owner only (0600 on Unix) from its creation on: the history holds private messages.
        let mut file = crate::identity::private(OpenOptions::new().read(true).write(true).create(true).truncate(false))
            .open(path)?;
        let size = file.metadata()?.len();
        let h = header();
        if size < HEADER_LEN {
            // Empty, or a header cut off while it was made (nothing after it was ever written):
            // made again. Anything else this short is not ours.
            let mut b = Vec::new();
            file.read_to_end(&mut b)?;
            if !h.starts_with(&b) {
                return Err(invalid("not a lanpeer journal (too short)"));
            }
            file.set_len(0)?;
            file.seek(SeekFrom::Start(0))?;
            file.write_all(&h)?;
            file.sync_data()?;
            return Ok((Journal { file, end: HEADER_LEN }, 0));
        }
        read_header(&mut file)?;
        let end = replay(&file, size, each)?;
        let cut = size - end;
        if cut > 0 && torn(&file, end, size)? {
            tracing::warn!(path = %path.display(), bytes = cut, "the journal's last write was cut off (a crash?); that unfinished group is dropped");
            file.set_len(end)?;
        } else if cut > 0 {
            // Not what a crash leaves: the file was damaged before its end. What follows the
            // damage is kept in a copy of the whole file before the journal goes on without it.
            let copy = damaged_copy(path);
            std::fs::copy(path, &copy)?;
            tracing::error!(
                path = %path.display(), at = end, bytes = cut, copy = %copy.display(),
                "the history file is damaged (a disk error?); it goes on from before the damage, and the whole file was kept as a copy"
            );
            file.set_len(end)?;
        }
        file.seek(SeekFrom::Start(end))?;
        Ok((Journal { file, end }, cut))
    }

    /// Replay the whole groups of the journal at `path` into `each` without changing the file
    /// (a reader beside a running writer: a group being written is not whole yet, and is left).
    pub fn read(path: &Path, each: impl FnMut(Records<'_>)) -> io::Result<()> {
        let mut file = File::open(path)?;
        let size = file.metadata()?.len();
        read_header(&mut file)?;
        replay(&file, size, each).map(drop)
    }

    /// Append `group` with one write, and leave it ready for the next group (cleared). An empty
    /// group writes nothing. If the write fails (a full disk), what it wrote is cut away again,
    /// so that the journal still ends with a whole group, and the group is kept in `group` for
    /// the caller to retry or drop.
    pub fn append(&mut self, group: &mut GroupBuf) -> io::Result<()> {
        if group.is_empty() {
            return Ok(());
        }
        let len = group.payload_len();
        if len > MAX_GROUP {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                format!("a journal group of {len} bytes is more than the {MAX_GROUP} allowed"),
            ));
        }
        let len_bytes = (len as u32).to_le_bytes();
        let sum = crc(len_bytes, &group.buf[GROUP_HEADER_LEN..]);
        group.buf[..4].copy_from_slice(&len_bytes);
        group.buf[4..8].copy_from_slice(&sum.to_le_bytes());
        if let Err(e) = self.file.write_all(&group.buf) {
            // Cut back to the last whole group; if even that fails, the next open cuts it.
            let _ = self.file.set_len(self.end).and_then(|()| self.file.seek(SeekFrom::Start(self.end)));
            return Err(e);
        }
        self.end += group.buf.len() as u64;
        group.clear();
        Ok(())
    }

    /// Make every appended group survive a power cut (`fdatasync`).
    pub fn sync(&self) -> io::Result<()> {
        self.file.sync_data()
    }

    /// The journal's length in bytes: the header and the whole groups.
    pub fn len(&self) -> u64 {
        self.end
    }

    /// No group yet.
    pub fn is_empty(&self) -> bool {
        self.end == HEADER_LEN
    }
}

/// How long after a group is appended it is made to survive a power cut, at the latest.
pub const SYNC_EVERY: std::time::Duration = std::time::Duration::from_secs(1);

/// A thread that makes a journal's appended groups survive a power cut (`fdatasync` on a handle
/// of its own), at most every [`SYNC_EVERY`] and only after something was appended: the writer
/// never waits for the disk, an idle journal wakes it never, and a power cut costs at most the
/// last second or so. Dropped, it syncs a last time and ends.
#[derive(Debug)]
pub struct Syncer {
    /// "Appended", sent only when `dirty` was clear: one wake-up per sync at most.
    wrote: Option<std::sync::mpsc::SyncSender<()>>,
    dirty: std::sync::Arc<std::sync::atomic::AtomicBool>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Syncer {
    /// Start syncing `journal`'s file. `None` when no handle or thread could be had (the groups
    /// then survive the process being killed, not a power cut; logged).
    pub fn start(journal: &Journal) -> Option<Syncer> {
        let file = match journal.file.try_clone() {
            Ok(f) => f,
            Err(e) => {
                tracing::warn!(error = %e, "the history will not be synced to disk (a power cut may lose more than the last second)");
                return None;
            }
        };
        let (wrote, rx) = std::sync::mpsc::sync_channel::<()>(1);
        let dirty = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let flag = dirty.clone();
        let thread = std::thread::Builder::new()
            .name("lanpeer-sync".into())
            .spawn(move || {
                use std::sync::mpsc::RecvTimeoutError;
                let sync = || {
                    if let Err(e) = file.sync_data() {
                        tracing::warn!(error = %e, "cannot sync the history to disk");
                    }
                };
                let mut pending = false;
                loop {
                    if !pending && rx.recv().is_err() {
                        return;
                    }
                    flag.store(false, std::sync::atomic::Ordering::SeqCst);
                    sync();
                    pending = false;
                    let until = std::time::Instant::now() + SYNC_EVERY;
                    loop {
                        match rx.recv_timeout(until.saturating_duration_since(std::time::Instant::now())) {
                            Ok(()) => pending = true,
                            Err(RecvTimeoutError::Timeout) => break,
                            Err(RecvTimeoutError::Disconnected) => return sync(),
                        }
                    }
                }
            })
            .ok()?;
        Some(Syncer { wrote: Some(wrote), dirty, thread: Some(thread) })
    }

    /// A group was appended: sync soon.
    pub fn wrote(&self) {
        if !self.dirty.swap(true, std::sync::atomic::Ordering::SeqCst)
            && let Some(w) = &self.wrote
        {
            let _ = w.try_send(());
        }
    }
}

impl Drop for Syncer {
    fn drop(&mut self) {
        self.wrote = None;
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn dir() -> std::path::PathBuf {
        let d = std::env::temp_dir().join(format!("lanpeer-journal-{}-{}", std::process::id(), rand::random::<u64>()));
        std::fs::create_dir_all(&d).unwrap();
        d
    }

    /// Every group of the journal, each as its records.
    fn groups_of(path: &Path) -> (Vec<Vec<Vec<u8>>>, u64, u64) {
        let mut got = Vec::new();
        let (j, cut) = Journal::open(path, |g| got.push(g.map(<[u8]>::to_vec).collect())).unwrap();
        (got, cut, j.len())
    }

    fn sample() -> Vec<Vec<Vec<u8>>> {
        vec![
            vec![b"first".to_vec()],
            vec![b"a".to_vec(), Vec::new(), vec![0xff; 300]],
            vec![b"third group".to_vec(), b"x".to_vec()],
        ]
    }

    #[cfg(unix)]
    #[test]
    fn a_new_journal_is_its_owners_only() {
        use std::os::unix::fs::PermissionsExt;
        let d = dir();
        let p = d.join("j");
        write(&p, &sample());
        assert_eq!(std::fs::metadata(&p).unwrap().permissions().mode() & 0o777, 0o600);
        std::fs::remove_dir_all(&d).unwrap();
    }

    fn write(path: &Path, groups: &[Vec<Vec<u8>>]) -> Vec<u64> {
        let (mut j, _) = Journal::open(path, |_| {}).unwrap();
        let mut g = GroupBuf::new();
        let mut ends = vec![j.len()];
        for group in groups {
            for r in group {
                g.push(r);
            }
            j.append(&mut g).unwrap();
            assert!(g.is_empty(), "append leaves the buffer ready for the next group");
            ends.push(j.len());
        }
        ends
    }

    #[test]
    fn groups_come_back_in_order_with_their_records_to_the_byte() {
        let d = dir();
        let p = d.join("j");
        let ends = write(&p, &sample());
        assert_eq!(*ends.last().unwrap(), std::fs::metadata(&p).unwrap().len());
        let (got, cut, len) = groups_of(&p);
        assert_eq!(got, sample());
        assert_eq!((cut, len), (0, *ends.last().unwrap()));
        // Appending after a reopen goes after what is there.
        let (mut j, _) = Journal::open(&p, |_| {}).unwrap();
        let mut g = GroupBuf::new();
        g.push_with(|b| b.extend_from_slice(b"in place"));
        j.append(&mut g).unwrap();
        let mut want = sample();
        want.push(vec![b"in place".to_vec()]);
        assert_eq!(groups_of(&p).0, want);
        // An empty group writes nothing.
        let before = j.len();
        j.append(&mut GroupBuf::new()).unwrap();
        assert_eq!(j.len(), before);
        std::fs::remove_dir_all(d).unwrap();
    }

    #[test]
    fn a_write_cut_off_anywhere_keeps_the_whole_groups_before_it_and_is_cut_away() {
        let d = dir();
        let full = d.join("full");
        let ends = write(&full, &sample());
        let bytes = std::fs::read(&full).unwrap();
        let p = d.join("cut");
        // A header cut off while it was made: the journal is made again, empty.
        for cut_at in 0..HEADER_LEN {
            std::fs::write(&p, &bytes[..cut_at as usize]).unwrap();
            assert_eq!(groups_of(&p), (Vec::new(), 0, HEADER_LEN), "header cut at {cut_at}");
        }
        std::fs::write(&p, b"PK").unwrap();
        assert!(Journal::open(&p, |_| {}).unwrap_err().to_string().contains("not a lanpeer journal"));
        for cut_at in HEADER_LEN..=bytes.len() as u64 {
            std::fs::write(&p, &bytes[..cut_at as usize]).unwrap();
            // A reader leaves the file as it is.
            let mut seen = 0;
            Journal::read(&p, |_| seen += 1).unwrap();
            assert_eq!(std::fs::metadata(&p).unwrap().len(), cut_at);
            let (got, cut, len) = groups_of(&p);
            let whole = ends.iter().filter(|&&e| e <= cut_at).count() - 1;
            assert_eq!(got, sample()[..whole], "cut at {cut_at}");
            assert_eq!(seen, whole);
            assert_eq!(len, ends[whole]);
            assert_eq!(cut, cut_at - ends[whole]);
            assert_eq!(std::fs::metadata(&p).unwrap().len(), ends[whole], "the damaged tail was cut away");
            assert_eq!(std::fs::read_dir(&d).unwrap().count(), 2, "a torn tail is not kept as a damaged copy");
            // The next group goes right after the last whole one, and is read back.
            let (mut j, _) = Journal::open(&p, |_| {}).unwrap();
            let mut g = GroupBuf::new();
            g.push(b"after");
            j.append(&mut g).unwrap();
            let mut want = sample()[..whole].to_vec();
            want.push(vec![b"after".to_vec()]);
            assert_eq!(groups_of(&p).0, want, "cut at {cut_at}");
        }
        std::fs::remove_dir_all(d).unwrap();
    }

    #[test]
    fn a_damaged_byte_drops_its_group_and_what_follows_and_a_foreign_file_is_refused() {
        let d = dir();
        let full = d.join("full");
        let ends = write(&full, &sample());
        let bytes = std::fs::read(&full).unwrap();
        let p = d.join("bad");
        // Any byte of the second group flipped: the first group alone is kept, and since a whole
        // group follows (not what a crash leaves), the file as it was is kept as a copy.
        let copies = || {
            let mut c: Vec<_> = std::fs::read_dir(&d)
                .unwrap()
                .map(|e| e.unwrap().path())
                .filter(|p| p.to_string_lossy().contains(".damaged-"))
                .collect();
            c.sort();
            c
        };
        for at in ends[1]..ends[2] {
            let mut b = bytes.clone();
            b[at as usize] ^= 0x40;
            std::fs::write(&p, &b).unwrap();
            let (got, _, len) = groups_of(&p);
            assert_eq!(got, sample()[..1], "byte {at} flipped");
            assert_eq!(len, ends[1]);
            let kept = copies();
            assert_eq!(kept.len(), 1, "byte {at}: {kept:?}");
            assert_eq!(std::fs::read(&kept[0]).unwrap(), b, "the whole damaged file is kept");
            std::fs::remove_file(&kept[0]).unwrap();
        }
        // A damaged last group (nothing after it) is read as a crash's torn write: no copy.
        let mut b = bytes.clone();
        b[ends[2] as usize + 9] ^= 0x40;
        std::fs::write(&p, &b).unwrap();
        assert_eq!(groups_of(&p).0, sample()[..2]);
        assert!(copies().is_empty());
        // A length far beyond the file: read as a damaged tail, nothing allocated for it.
        let mut b = bytes.clone();
        b[ends[1] as usize..ends[1] as usize + 4].copy_from_slice(&u32::MAX.to_le_bytes());
        std::fs::write(&p, &b).unwrap();
        assert_eq!(groups_of(&p).0, sample()[..1]);
        assert_eq!(copies().len(), 1, "an impossible length is damage, not a torn write");
        std::fs::remove_file(&copies()[0]).unwrap();
        // Not a journal, or a journal of another format version: an error, the file untouched.
        for (at, what) in [(0usize, "not a lanpeer journal"), (8, "another version")] {
            let mut b = bytes.clone();
            b[at] ^= 1;
            std::fs::write(&p, &b).unwrap();
            let e = Journal::open(&p, |_| {}).unwrap_err();
            assert_eq!(e.kind(), io::ErrorKind::InvalidData);
            assert!(e.to_string().contains(what), "{e}");
            assert_eq!(std::fs::read(&p).unwrap(), b);
        }
        std::fs::remove_dir_all(d).unwrap();
    }

    #[test]
    fn a_record_that_overruns_its_group_makes_the_group_damaged() {
        assert!(whole(&[]));
        assert!(whole(&[0, 0, 0, 0]));
        assert!(whole(&[1, 0, 0, 0, 9]));
        assert!(!whole(&[2, 0, 0, 0, 9]), "a length past the end");
        assert!(!whole(&[1, 0, 0]), "a cut length");
    }
}
