//! The data directory: this peer's lasting identity, and a lock so that two processes never share
//! it (two peers with one id would fight over every session).
//!
//! Files: `identity.key` (the peer's long-term Ed25519 secret key, its 32-byte seed as 64 hex
//! digits and a newline; mode 0600 on Unix; the Noise key of its sessions derives from it:
//! [`crate::crypto`]), `id` (the peer id derived from the key, 32 hex digits and a newline: for
//! people and scripts to read; rewritten from the key when it differs), `seq` (the next free message sequence
//! number, reserved in blocks so that ids stay unique across restarts without a write per
//! message), `lock` (held with an OS file lock while the peer runs; released by the OS when the
//! process dies, even by SIGKILL).
//!
//! On Unix the folder is made `0700` and every file in it `0600` from its creation on (the
//! history, [`crate::journal`], too): the key is who the peer is, and the history holds private
//! messages and quiz answers. [`privacy_warnings`] says when an existing folder or key file is
//! open to other users.

use std::fs::{self, File, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};

use crate::crypto::StaticKeys;
use crate::error::Error;
use crate::id::PeerId;

/// Sequence numbers reserved per write of the `seq` file. Each reservation is a durable write
/// (two fsyncs, ≈ 1–2 ms here) taken inside the node actor, so at 100,000 messages a second a
/// block of 1024 cost ≈ 100 of them a second; 65,536 costs ≈ 1.5. After a crash the numbers of
/// the unused rest of the block are skipped: ids only need to be unique and increasing.
pub const SEQ_BLOCK: u64 = 65_536;

/// An open data directory (or an in-memory stand-in), holding the lock for as long as it lives.
#[derive(Debug)]
pub struct Identity {
    /// This peer's id: derived from its static public key ([`crate::crypto::peer_id_of`]).
    pub id: PeerId,
    /// This peer's long-term static keypair.
    pub keys: StaticKeys,
    dir: Option<PathBuf>,
    /// Held open for the lock; dropped with the identity.
    _lock: Option<File>,
    next_seq: u64,
    reserved_until: u64,
}

fn dir_err(path: &Path) -> impl FnOnce(std::io::Error) -> Error + '_ {
    move |source| Error::DataDir { path: path.to_path_buf(), source }
}

/// `o` makes its file readable and writable by its owner only (0600 on Unix), from its creation
/// on; elsewhere it is as the system makes it.
pub(crate) fn private(o: &mut OpenOptions) -> &mut OpenOptions {
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        o.mode(0o600);
    }
    o
}

/// Make the folder `dir` (and any missing parent) for its owner only (0700 on Unix). A folder
/// that is there already is left as it is.
pub(crate) fn create_private_dir(dir: &Path) -> std::io::Result<()> {
    let mut b = fs::DirBuilder::new();
    b.recursive(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::DirBuilderExt;
        b.mode(0o700);
    }
    b.create(dir)
}

/// Write `text` to `path` atomically (temporary file, sync, rename), readable by its owner only
/// from its creation on.
fn write_durably(path: &Path, text: &str) -> std::io::Result<()> {
    let tmp = path.with_extension("tmp");
    let _ = fs::remove_file(&tmp);
    {
        let mut f = private(OpenOptions::new().write(true).create_new(true)).open(&tmp)?;
        f.write_all(text.as_bytes())?;
        f.sync_all()?;
    }
    fs::rename(&tmp, path)
}

fn damaged(dir: &Path, what: String) -> Error {
    dir_err(dir)(std::io::Error::new(std::io::ErrorKind::InvalidData, what))
}

/// The file of the identity key in the data dir.
pub const KEY_FILE: &str = "identity.key";
/// The key file of a data dir made before messages were signed (an X25519 key that can sign
/// nothing): no longer read.
const OLD_KEY_FILE: &str = "key";

/// Load the key file, or make one (a data dir without one, or with only the key of a version
/// that did not sign messages, gets a new identity, and so a new id).
fn load_keys(dir: &Path) -> Result<StaticKeys, Error> {
    let key_path = dir.join(KEY_FILE);
    match fs::read_to_string(&key_path) {
        Ok(text) => {
            let mut secret = zeroize::Zeroizing::new([0u8; 32]);
            hex::decode_to_slice(text.trim(), secret.as_mut()).map_err(|e| {
                damaged(dir, format!("the file `{KEY_FILE}` is damaged ({e}); remove it to get a new identity"))
            })?;
            if let Some(warning) = make_key_private(&key_path) {
                tracing::warn!(path = %key_path.display(), "{warning}");
            }
            Ok(StaticKeys::from_seed(*secret))
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            let keys = StaticKeys::generate();
            let text = zeroize::Zeroizing::new(format!("{}\n", hex::encode(keys.seed())));
            write_durably(&key_path, &text).map_err(dir_err(dir))?;
            if let Ok(old) = fs::read_to_string(dir.join("id")) {
                let why = if dir.join(OLD_KEY_FILE).exists() {
                    "this data folder's key cannot sign messages: made a new identity key"
                } else {
                    "this data folder had no key: made one"
                };
                tracing::warn!(
                    old_id = %old.trim(),
                    new_id = %keys.peer_id(),
                    "{why}; the peer's id is derived from it and has changed (its earlier messages stay readable here)"
                );
            }
            Ok(keys)
        }
        Err(e) => Err(dir_err(dir)(e)),
    }
}

/// A key file that others can read made private (0600), and a sentence that says so; `None` when
/// it was private (or is not there, or the system has no such modes).
fn make_key_private(key_path: &Path) -> Option<String> {
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let m = fs::metadata(key_path).ok()?;
        if m.permissions().mode() & 0o077 != 0 {
            let fixed = fs::set_permissions(key_path, fs::Permissions::from_mode(0o600)).is_ok();
            let now = if fixed { "it is private now" } else { "it could not be made private" };
            return Some(format!(
                "the key file {} could be read by other users of this computer ({now}); whoever copied it can act as this peer, so delete it to get a new identity if that may have happened",
                key_path.display()
            ));
        }
    }
    #[cfg(not(unix))]
    let _ = key_path;
    None
}

/// What in the data folder `dir` other users of this computer can reach, one plain sentence
/// each: the folder itself (opened or listed by others: the history holds private messages), and
/// the key file (readable by others: it is made private on the spot, and the sentence says so).
/// Nothing when all is private, when `dir` is not there yet, or off Unix.
pub fn privacy_warnings(dir: &Path) -> Vec<String> {
    let mut out = Vec::new();
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        if let Ok(m) = fs::metadata(dir)
            && m.is_dir()
            && m.permissions().mode() & 0o077 != 0
        {
            out.push(format!(
                "the data folder {} can be opened by other users of this computer, and it holds your messages; make it private with: chmod 700 {}",
                dir.display(),
                dir.display()
            ));
        }
    }
    out.extend(make_key_private(&dir.join(KEY_FILE)));
    out
}

impl Identity {
    /// Open (creating if needed) the data directory `dir`, or make a throwaway identity.
    pub fn open(dir: Option<&Path>) -> Result<Identity, Error> {
        let Some(dir) = dir else {
            let keys = StaticKeys::generate();
            return Ok(Identity {
                id: keys.peer_id(),
                keys,
                dir: None,
                _lock: None,
                next_seq: 1,
                reserved_until: u64::MAX,
            });
        };
        create_private_dir(dir).map_err(dir_err(dir))?;
        let lock = private(OpenOptions::new().create(true).truncate(false).write(true))
            .open(dir.join("lock"))
            .map_err(dir_err(dir))?;
        match lock.try_lock() {
            Ok(()) => {}
            Err(fs::TryLockError::WouldBlock) => return Err(Error::DataDirInUse(dir.to_path_buf())),
            Err(fs::TryLockError::Error(e)) => return Err(dir_err(dir)(e)),
        }
        let keys = load_keys(dir)?;
        let id = keys.peer_id();
        let id_path = dir.join("id");
        let written = fs::read_to_string(&id_path).ok().and_then(|t| t.trim().parse::<PeerId>().ok());
        if written != Some(id) {
            write_durably(&id_path, &format!("{id}\n")).map_err(dir_err(dir))?;
        }
        let next_seq = match fs::read_to_string(dir.join("seq")) {
            Ok(t) => t.trim().parse::<u64>().unwrap_or(1).max(1),
            Err(_) => 1,
        };
        let mut me =
            Identity { id, keys, dir: Some(dir.to_path_buf()), _lock: Some(lock), next_seq, reserved_until: next_seq };
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

    /// The next message sequence number: never handed out twice, restarts included. An error
    /// when the counter's next block cannot be reserved on disk (a full disk): a number not
    /// reserved could be given again after a restart, and peers that had the first message with
    /// that id would drop the second as one they have.
    pub fn next_seq(&mut self) -> Result<u64, Error> {
        if self.next_seq >= self.reserved_until {
            self.reserve()
                .map_err(|e| Error::Storage(format!("cannot save the message counter ({e}); is the disk full?")))?;
        }
        let s = self.next_seq;
        self.next_seq += 1;
        Ok(s)
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
                let s = a.next_seq().unwrap();
                assert!(s > last);
                last = s;
            }
            (a.id, last)
        };
        let mut b = Identity::open(Some(&dir)).unwrap();
        assert_eq!(b.id, id);
        assert!(b.next_seq().unwrap() > last, "sequence numbers must not repeat after a restart");
        drop(b);
        fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn identity_is_a_private_key_file() {
        let dir = std::env::temp_dir().join(format!("lanpeer-key-test-{}", std::process::id()));
        let _ = fs::remove_dir_all(&dir);
        let a = Identity::open(Some(&dir)).unwrap();
        assert_eq!(a.id, crate::crypto::peer_id_of(&a.keys.identity), "the id is the hash of the public key");
        let key_text = fs::read_to_string(dir.join(KEY_FILE)).unwrap();
        assert_eq!(key_text.trim(), hex::encode(a.keys.seed()));
        assert_eq!(fs::read_to_string(dir.join("id")).unwrap(), format!("{}\n", a.id));
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            assert_eq!(fs::metadata(dir.join(KEY_FILE)).unwrap().permissions().mode() & 0o777, 0o600);
        }
        let (id, public) = (a.id, a.keys.public);
        drop(a);
        // A hand-edited id file does not change who the peer is: the key decides.
        fs::write(dir.join("id"), format!("{}\n", PeerId([9; 16]))).unwrap();
        let b = Identity::open(Some(&dir)).unwrap();
        assert_eq!((b.id, b.keys.public), (id, public));
        assert_eq!(fs::read_to_string(dir.join("id")).unwrap().trim(), id.to_string());
        drop(b);
        // A damaged key is an error, not a silent new identity.
        fs::write(dir.join(KEY_FILE), "not hex\n").unwrap();
        assert!(matches!(Identity::open(Some(&dir)), Err(Error::DataDir { .. })));
        fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn old_data_dir_with_only_an_id_gets_a_key() {
        let dir = std::env::temp_dir().join(format!("lanpeer-old-id-test-{}", std::process::id()));
        let _ = fs::remove_dir_all(&dir);
        fs::create_dir_all(&dir).unwrap();
        let old = PeerId([5; 16]);
        fs::write(dir.join("id"), format!("{old}\n")).unwrap();
        fs::write(dir.join("seq"), "5000\n").unwrap();
        let mut a = Identity::open(Some(&dir)).unwrap();
        assert_ne!(a.id, old);
        assert_eq!(a.id, a.keys.peer_id());
        assert!(dir.join(KEY_FILE).exists());
        assert!(a.next_seq().unwrap() >= 5000, "the message counter is kept");
        let id = a.id;
        drop(a);
        // A data dir of a version whose key could not sign: a new identity, the counter kept.
        fs::remove_file(dir.join(KEY_FILE)).unwrap();
        fs::write(dir.join(OLD_KEY_FILE), format!("{}\n", hex::encode([3u8; 32]))).unwrap();
        let mut a = Identity::open(Some(&dir)).unwrap();
        assert_ne!(a.id, id);
        assert!(a.next_seq().unwrap() >= 5000);
        drop(a);
        fs::remove_dir_all(&dir).unwrap();
    }

    /// A counter block that cannot be reserved refuses the number instead of risking it again
    /// after a restart; once the disk takes writes again, numbering goes on.
    #[test]
    fn a_counter_that_cannot_be_saved_refuses_numbers() {
        let dir = std::env::temp_dir().join(format!("lanpeer-seq-full-test-{}", std::process::id()));
        let _ = fs::remove_dir_all(&dir);
        let mut a = Identity::open(Some(&dir)).unwrap();
        a.next_seq = a.reserved_until;
        let want = a.next_seq;
        // The counter's file cannot be replaced (a folder in its place stands for a full disk).
        fs::remove_file(dir.join("seq")).unwrap();
        fs::create_dir_all(dir.join("seq").join("x")).unwrap();
        assert!(matches!(a.next_seq(), Err(Error::Storage(_))));
        fs::remove_dir_all(dir.join("seq")).unwrap();
        assert_eq!(a.next_seq().unwrap(), want, "no number was used up");
        let saved: u64 = fs::read_to_string(dir.join("seq")).unwrap().trim().parse().unwrap();
        assert_eq!(saved, want + SEQ_BLOCK);
        drop(a);
        fs::remove_dir_all(&dir).unwrap();
    }

    #[cfg(unix)]
    fn mode(p: &Path) -> u32 {
        use std::os::unix::fs::PermissionsExt;
        fs::metadata(p).unwrap().permissions().mode() & 0o777
    }

    /// A new data folder is its owner's only, and so is every file made in it; an old one that is
    /// open to others gets a sentence each for the folder and the key, and the key is made private.
    #[cfg(unix)]
    #[test]
    fn the_data_dir_is_private_and_an_open_one_is_told() {
        use std::os::unix::fs::PermissionsExt;
        let top = std::env::temp_dir().join(format!("lanpeer-modes-test-{}", std::process::id()));
        let _ = fs::remove_dir_all(&top);
        let dir = top.join("made").join("here");
        let a = Identity::open(Some(&dir)).unwrap();
        assert_eq!((mode(&top.join("made")), mode(&dir)), (0o700, 0o700), "the folder and its missing parent");
        for f in [KEY_FILE, "id", "seq", "lock"] {
            assert_eq!(mode(&dir.join(f)), 0o600, "{f}");
        }
        assert_eq!(privacy_warnings(&dir), Vec::<String>::new());
        drop(a);
        fs::set_permissions(&dir, fs::Permissions::from_mode(0o755)).unwrap();
        fs::set_permissions(dir.join(KEY_FILE), fs::Permissions::from_mode(0o644)).unwrap();
        let w = privacy_warnings(&dir);
        assert_eq!(w.len(), 2, "{w:?}");
        assert!(w[0].contains("chmod 700") && w[0].contains(&dir.display().to_string()), "{}", w[0]);
        assert!(w[1].contains("key file") && w[1].contains("it is private now"), "{}", w[1]);
        assert_eq!(mode(&dir.join(KEY_FILE)), 0o600, "the key was made private");
        assert_eq!(mode(&dir), 0o755, "the folder is the user's to change");
        // The same when the node opens the folder itself (no sentence then, a log line).
        fs::set_permissions(dir.join(KEY_FILE), fs::Permissions::from_mode(0o640)).unwrap();
        drop(Identity::open(Some(&dir)).unwrap());
        assert_eq!(mode(&dir.join(KEY_FILE)), 0o600);
        assert!(privacy_warnings(&top.join("nowhere")).is_empty());
        fs::remove_dir_all(&top).unwrap();
    }

    #[test]
    fn in_memory_identities_are_fresh_keys() {
        let a = Identity::open(None).unwrap();
        let b = Identity::open(None).unwrap();
        assert_ne!(a.keys.public, b.keys.public);
        assert_eq!(a.id, a.keys.peer_id());
    }
}
