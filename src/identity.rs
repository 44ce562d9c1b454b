//! The data directory: this peer's lasting identity, and a lock so that two processes never share
//! it (two peers with one id would fight over every session).
//!
//! Files: `id` (the peer id, 32 hex digits and a newline), `seq` (the next free message sequence
//! number, reserved in blocks so that ids stay unique across restarts without a write per
//! message), `lock` (held with an OS file lock while the peer runs; released by the OS when the
//! process dies, even by SIGKILL).

use std::fs::{self, File, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};

use crate::error::Error;
use crate::id::PeerId;

/// Sequence numbers reserved per write of the `seq` file.
pub const SEQ_BLOCK: u64 = 1024;

/// An open data directory (or an in-memory stand-in), holding the lock for as long as it lives.
#[derive(Debug)]
pub struct Identity {
    /// This peer's id.
    pub id: PeerId,
    dir: Option<PathBuf>,
    /// Held open for the lock; dropped with the identity.
    _lock: Option<File>,
    next_seq: u64,
    reserved_until: u64,
}

fn dir_err(path: &Path) -> impl FnOnce(std::io::Error) -> Error + '_ {
    move |source| Error::DataDir { path: path.to_path_buf(), source }
}

fn write_durably(path: &Path, text: &str) -> std::io::Result<()> {
    let tmp = path.with_extension("tmp");
    {
        let mut f = File::create(&tmp)?;
        f.write_all(text.as_bytes())?;
        f.sync_all()?;
    }
    fs::rename(&tmp, path)
}

impl Identity {
    /// Open (creating if needed) the data directory `dir`, or make a throwaway identity.
    pub fn open(dir: Option<&Path>) -> Result<Identity, Error> {
        let Some(dir) = dir else {
            return Ok(Identity {
                id: PeerId::random(),
                dir: None,
                _lock: None,
                next_seq: 1,
                reserved_until: u64::MAX,
            });
        };
        fs::create_dir_all(dir).map_err(dir_err(dir))?;
        let lock =
            OpenOptions::new().create(true).truncate(false).write(true).open(dir.join("lock")).map_err(dir_err(dir))?;
        match lock.try_lock() {
            Ok(()) => {}
            Err(fs::TryLockError::WouldBlock) => return Err(Error::DataDirInUse(dir.to_path_buf())),
            Err(fs::TryLockError::Error(e)) => return Err(dir_err(dir)(e)),
        }
        let id_path = dir.join("id");
        let id = match fs::read_to_string(&id_path) {
            Ok(text) => text.trim().parse::<PeerId>().map_err(|e| {
                dir_err(dir)(std::io::Error::new(
                    std::io::ErrorKind::InvalidData,
                    format!("the file `id` is damaged ({e})"),
                ))
            })?,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                let id = PeerId::random();
                write_durably(&id_path, &format!("{id}\n")).map_err(dir_err(dir))?;
                id
            }
            Err(e) => return Err(dir_err(dir)(e)),
        };
        let next_seq = match fs::read_to_string(dir.join("seq")) {
            Ok(t) => t.trim().parse::<u64>().unwrap_or(1).max(1),
            Err(_) => 1,
        };
        let mut me =
            Identity { id, dir: Some(dir.to_path_buf()), _lock: Some(lock), next_seq, reserved_until: next_seq };
        me.reserve().map_err(dir_err(dir))?;
        Ok(me)
    }

    /// The data directory, if any.
    pub fn dir(&self) -> Option<&Path> {
        self.dir.as_deref()
    }

    fn reserve(&mut self) -> std::io::Result<()> {
        if let Some(dir) = &self.dir {
            let until = self.next_seq + SEQ_BLOCK;
            write_durably(&dir.join("seq"), &format!("{until}\n"))?;
            self.reserved_until = until;
        }
        Ok(())
    }

    /// The next message sequence number: never handed out twice, restarts included.
    pub fn next_seq(&mut self) -> u64 {
        if self.next_seq >= self.reserved_until
            && let Err(e) = self.reserve()
        {
            tracing::warn!(error = %e, "cannot save the message counter; ids may repeat after a restart");
            self.reserved_until = self.next_seq + SEQ_BLOCK;
        }
        let s = self.next_seq;
        self.next_seq += 1;
        s
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn identity_survives_and_is_exclusive() {
        let dir = std::env::temp_dir().join(format!("lanpeer-id-test-{}", std::process::id()));
        let _ = fs::remove_dir_all(&dir);
        let (id, last) = {
            let mut a = Identity::open(Some(&dir)).unwrap();
            assert!(matches!(Identity::open(Some(&dir)), Err(Error::DataDirInUse(_))));
            let mut last = 0;
            for _ in 0..(SEQ_BLOCK + 5) {
                let s = a.next_seq();
                assert!(s > last);
                last = s;
            }
            (a.id, last)
        };
        let mut b = Identity::open(Some(&dir)).unwrap();
        assert_eq!(b.id, id);
        assert!(b.next_seq() > last, "sequence numbers must not repeat after a restart");
        drop(b);
        fs::remove_dir_all(&dir).unwrap();
    }
}
