//! The history in SQLite (`history.db` in the data dir): every message sent and received, the
//! per-peer delivery streams, and the members of the room.
//!
//! Why SQLite: one file, crash-safe transactions, readable by any SQLite tool for the teacher's
//! own scripts, and a bundled build (nothing to install). The node actor owns the one read-write
//! connection and groups its writes into a transaction per batch of work (see docs/architecture.md,
//! "Storage"). Journal: WAL with `synchronous=NORMAL`: a committed transaction survives the
//! process being killed (SIGKILL), which is the promise made to users; a power cut may lose the
//! last fraction of a second (documented in the README).
//!
//! What is written when:
//! - a message sent or received for the first time: one row in `messages`, each field of the
//!   envelope once in its own column (readable by any SQLite tool); for resending and catch-up
//!   the envelope is encoded again from them (the `env` column, which held a copy of it in
//!   earlier builds, is left empty: a row took 327 bytes, now 192 for a 100-byte chat);
//! - messages sent to a peer: one row in `outbox` per *run* (peer, first stream number, first
//!   message row, length `n`: stream numbers `lseq..lseq+n` are message rows `msg..msg+n`), so a
//!   batch of sends in one transaction costs one outbox row per recipient, not one per message;
//!   trimmed and deleted as the peer acknowledges, or dropped by age or size with a log line;
//! - `out_streams` / `in_streams`: the counters of each per-peer stream (next number to send,
//!   highest acknowledged; highest delivered);
//! - `members`: every peer of the room seen, with its name and when it was last seen.
//!
//! Messages and members carry their room: one data dir may serve several rooms (a teacher with
//! two classes), and what is offered, shown or addressed in one room never comes from another.

use std::cell::Cell;
use std::path::Path;

use rusqlite::{Connection, OpenFlags, OptionalExtension, params};

use crate::codec;
use crate::error::Error;
use crate::id::{MsgId, PeerId};
use crate::protocol::{Body, Envelope};

use super::{CatchupMemo, DB_FILE, Stored};

/// Process-wide SQLite settings, made once before the first connection opens.
///
/// Memory statistics off (`SQLITE_CONFIG_MEMSTATUS`, which SQLite's own documentation recommends
/// turning off): with them on, every allocation SQLite makes takes one process-wide mutex to count
/// it. A peer allocates for every statement and every page a transaction journals; where several
/// peers share a process (the benchmarks, a library user's tests) their actors met on that lock
/// (the profile of a fan-out to 100 showed futex waits inside the in-memory journal's writes).
/// The setting can only be made before SQLite initialises: if something else in the process
/// opened a database first, SQLite refuses it and keeps the default, which is only slower.
fn configure_sqlite() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        // SAFETY: `sqlite3_config` with MEMSTATUS takes one int; called once, before this module
        // opens any connection. A refusal (already initialised) is harmless.
        let rc =
            unsafe { rusqlite::ffi::sqlite3_config(rusqlite::ffi::SQLITE_CONFIG_MEMSTATUS, 0 as std::os::raw::c_int) };
        if rc != rusqlite::ffi::SQLITE_OK {
            tracing::debug!(rc, "SQLite was initialised before lanpeer opened its history; memory statistics stay on");
        }
    });
}

const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS messages (
    id INTEGER PRIMARY KEY,
    room TEXT NOT NULL,
    author BLOB NOT NULL,
    seq INTEGER NOT NULL,
    author_name TEXT NOT NULL,
    sent_ms INTEGER NOT NULL,
    received_ms INTEGER NOT NULL,
    recipient BLOB,
    kind TEXT NOT NULL,
    ref TEXT,
    title TEXT,
    text TEXT NOT NULL,
    private_answers INTEGER NOT NULL DEFAULT 0,
    env BLOB NOT NULL,
    UNIQUE (author, seq)
);
-- Exercises only: chats, the bulk, pay no second index (an index on every message cost each
-- chat a b-tree insert and its page in the WAL, and no query used it).
DROP INDEX IF EXISTS messages_room_kind;
CREATE INDEX IF NOT EXISTS messages_exercises ON messages (kind) WHERE kind != 'chat';
CREATE TABLE IF NOT EXISTS members (
    room TEXT NOT NULL,
    id BLOB NOT NULL,
    name TEXT NOT NULL,
    last_seen_ms INTEGER NOT NULL,
    PRIMARY KEY (room, id)
);
CREATE TABLE IF NOT EXISTS out_streams (
    peer BLOB PRIMARY KEY,
    next_lseq INTEGER NOT NULL,
    acked INTEGER NOT NULL
);
-- A run of queued messages: stream numbers lseq..lseq+n-1 are message rows msg..msg+n-1.
CREATE TABLE IF NOT EXISTS outbox (
    peer BLOB NOT NULL,
    lseq INTEGER NOT NULL,
    msg INTEGER NOT NULL REFERENCES messages (id),
    queued_ms INTEGER NOT NULL,
    n INTEGER NOT NULL DEFAULT 1,
    PRIMARY KEY (peer, lseq)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS in_streams (
    author BLOB PRIMARY KEY,
    delivered INTEGER NOT NULL
);
";

/// The columns of `messages` that make up a message's envelope, in the order [`envelope_at`]
/// reads them, each name after `$t` (a table alias with its dot, or nothing).
macro_rules! envelope_columns {
    ($t:literal) => {
        concat!(
            $t,
            "author, ",
            $t,
            "seq, ",
            $t,
            "author_name, ",
            $t,
            "sent_ms, ",
            $t,
            "recipient, ",
            $t,
            "kind, ",
            $t,
            "ref, ",
            $t,
            "title, ",
            $t,
            "text, ",
            $t,
            "private_answers"
        )
    };
}

/// The exercise queries (every exercise; the catch-up list), reading the exercises index when
/// `indexed`.
fn queries(indexed: bool) -> (String, String) {
    let from = if indexed { "messages INDEXED BY messages_exercises" } else { "messages" };
    let exercises = format!(
        "SELECT id, received_ms, {} FROM {from} WHERE kind != 'chat' AND (?1 IS NULL OR room = ?1) ORDER BY id ASC",
        envelope_columns!("")
    );
    let catchup = format!(
        "SELECT author, seq FROM (
            SELECT id, author, seq FROM {from}
            WHERE recipient IS NULL AND kind != 'chat' AND (?3 IS NULL OR room = ?3)
            UNION ALL
            SELECT * FROM (SELECT id, author, seq FROM messages
                           WHERE recipient IS NULL AND kind = 'chat' AND (?3 IS NULL OR room = ?3)
                           ORDER BY id DESC LIMIT ?1)
            ORDER BY id DESC LIMIT ?2
         ) ORDER BY id ASC"
    );
    (exercises, catchup)
}

fn peer_of(b: Vec<u8>) -> Option<PeerId> {
    <[u8; 16]>::try_from(b.as_slice()).ok().map(PeerId)
}

/// The envelope of a `messages` row, from its columns (selected by [`envelope_columns!`] from
/// column `first` on). A row holds each field once, not the encoded envelope beside them (rows
/// written by earlier builds also have it in `env`, which nothing reads now; their columns say
/// the same). Encoded again, it is the same message, and the very bytes the author sent, since
/// encoders write the one shortest form of each value (protocol.md 4.3).
///
/// `None` (with a debug log) for a row that no lanpeer wrote: an id of the wrong length, an unknown
/// kind, a reference that is not a message id.
fn envelope_at(r: &rusqlite::Row<'_>, first: usize) -> rusqlite::Result<Option<Envelope>> {
    let col = |i: usize| first + i;
    let (Some(author), Some(to)) = (
        peer_of(r.get(col(0))?),
        match r.get::<_, Option<Vec<u8>>>(col(4))? {
            None => Some(None),
            Some(b) => peer_of(b).map(Some),
        },
    ) else {
        tracing::debug!("a stored message with a malformed peer id is skipped");
        return Ok(None);
    };
    let text: String = r.get(col(8))?;
    let reference = || r.get::<_, Option<String>>(col(6)).map(|t| t.and_then(|t| t.parse::<MsgId>().ok()));
    let kind: String = r.get(col(5))?;
    let body = match kind.as_str() {
        "chat" => Some(Body::Chat { text }),
        "problem" => Some(Body::Problem {
            title: r.get::<_, Option<String>>(col(7))?.unwrap_or_default(),
            body: text,
            private_answers: r.get::<_, i64>(col(9))? != 0,
        }),
        "answer" => reference()?.map(|problem| Body::Answer { problem, text }),
        "feedback" => reference()?.map(|answer| Body::Feedback { answer, text }),
        _ => None,
    };
    let Some(body) = body else {
        tracing::debug!(kind, "a stored message of an unknown kind or reference is skipped");
        return Ok(None);
    };
    Ok(Some(Envelope {
        id: MsgId { author, seq: r.get::<_, i64>(col(1))? as u64 },
        author_name: r.get(col(2))?,
        sent_ms: r.get::<_, i64>(col(3))? as u64,
        to,
        body,
    }))
}

fn storage(e: rusqlite::Error) -> Error {
    Error::Storage(e.to_string())
}

/// WAL pages after which the actor's own connection checkpoints (a safety net: the
/// [`Checkpointer`] thread normally keeps the WAL far smaller).
const WAL_AUTOCHECKPOINT: i64 = 16_384;
/// How often the checkpointer thread copies the WAL into the database.
const CHECKPOINT_EVERY: std::time::Duration = std::time::Duration::from_millis(500);

/// A thread with a connection of its own that checkpoints the WAL (`PASSIVE`: it never blocks
/// the writer), so that the checkpoint's page copies and its two fsyncs happen beside the node
/// actor rather than inside one of its commits. Commits themselves never fsync (WAL with
/// `synchronous=NORMAL`). The thread sleeps until a commit has written something, then
/// checkpoints at most every [`CHECKPOINT_EVERY`]: an idle peer wakes it never.
struct Checkpointer {
    /// "A commit wrote", sent only when `dirty` was clear: one wake-up per checkpoint at most,
    /// never one per commit.
    wrote: Option<std::sync::mpsc::SyncSender<()>>,
    /// Written since the thread's last checkpoint began.
    dirty: std::sync::Arc<std::sync::atomic::AtomicBool>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Checkpointer {
    fn start(path: &Path) -> Option<Checkpointer> {
        configure_sqlite();
        let conn = Connection::open(path).ok()?;
        conn.busy_timeout(std::time::Duration::from_millis(100)).ok()?;
        let (wrote, rx) = std::sync::mpsc::sync_channel::<()>(1);
        let dirty = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let flag = dirty.clone();
        let thread = std::thread::Builder::new()
            .name("lanpeer-checkpoint".into())
            .spawn(move || {
                use std::sync::mpsc::RecvTimeoutError;
                let checkpoint = || drop(conn.query_row("PRAGMA wal_checkpoint(PASSIVE)", [], |_| Ok(())));
                // Ends when the store is dropped (the sender with it), with a last checkpoint.
                let mut pending = false;
                loop {
                    if !pending && rx.recv().is_err() {
                        return;
                    }
                    flag.store(false, std::sync::atomic::Ordering::SeqCst);
                    checkpoint();
                    pending = false;
                    // A pause between checkpoints; a write meanwhile means one more after it.
                    let until = std::time::Instant::now() + CHECKPOINT_EVERY;
                    loop {
                        match rx.recv_timeout(until.saturating_duration_since(std::time::Instant::now())) {
                            Ok(()) => pending = true,
                            Err(RecvTimeoutError::Timeout) => break,
                            Err(RecvTimeoutError::Disconnected) => return checkpoint(),
                        }
                    }
                }
            })
            .ok()?;
        Some(Checkpointer { wrote: Some(wrote), dirty, thread: Some(thread) })
    }

    /// A commit wrote: checkpoint soon.
    fn wrote(&self) {
        if !self.dirty.swap(true, std::sync::atomic::Ordering::SeqCst)
            && let Some(w) = &self.wrote
        {
            let _ = w.try_send(());
        }
    }
}

impl Drop for Checkpointer {
    fn drop(&mut self) {
        self.wrote = None;
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// The message INSERT of [`Sqlite::insert`] (parameters: see there).
const INSERT_MESSAGE: &str = "INSERT OR IGNORE INTO messages
     (author, seq, author_name, sent_ms, received_ms, recipient, kind, ref, title, text, private_answers, env, room)
     VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13)";

/// A value bound to a parameter of the raw INSERT.
enum Param<'a> {
    Null,
    Int(i64),
    Text(&'a str),
    Blob(&'a [u8]),
}

impl<'a> Param<'a> {
    fn text_or_null(t: Option<&'a str>) -> Param<'a> {
        t.map_or(Param::Null, Param::Text)
    }
}

/// The message INSERT, prepared once and kept for the life of the store: every message sent or
/// received is one, and through `prepare_cached` each paid a lookup in rusqlite's statement cache
/// (hashing the SQL text twice, a new `Arc<str>` of it, clearing the bindings) besides the bind
/// calls. Held as a raw SQLite statement, since a rusqlite `Statement` borrows its `Connection`
/// and cannot live beside it in the same struct.
///
/// Invariants (what makes the `unsafe` below sound): the statement is prepared on the store's own
/// connection, used only through `&Sqlite` (which is not `Sync`: one thread at a time), always
/// reset after a step, and finalized in `Sqlite`'s `Drop` before the connection closes.
struct RawInsert(std::ptr::NonNull<rusqlite::ffi::sqlite3_stmt>);

impl RawInsert {
    /// The error SQLite reports for `code` on `db`, as rusqlite makes it.
    ///
    /// # Safety
    /// `db` is an open connection.
    unsafe fn error(db: *mut rusqlite::ffi::sqlite3, code: std::os::raw::c_int) -> Error {
        use rusqlite::ffi;
        // SAFETY: `db` is open (the caller's promise); the strings SQLite returns are
        // NUL-terminated and copied before any other call on `db`.
        let msg = unsafe {
            let p = if ffi::sqlite3_errcode(db) == code { ffi::sqlite3_errmsg(db) } else { ffi::sqlite3_errstr(code) };
            (!p.is_null()).then(|| std::ffi::CStr::from_ptr(p).to_string_lossy().into_owned())
        };
        storage(rusqlite::Error::SqliteFailure(ffi::Error::new(code), msg))
    }

    fn prepare(conn: &Connection) -> Result<RawInsert, Error> {
        use rusqlite::ffi;
        let mut stmt = std::ptr::null_mut();
        // SAFETY: the handle is the open connection's; the SQL is passed with its length (no NUL
        // needed); `stmt` receives the statement or null.
        let rc = unsafe {
            let db = conn.handle();
            let rc = ffi::sqlite3_prepare_v3(
                db,
                INSERT_MESSAGE.as_ptr().cast(),
                INSERT_MESSAGE.len() as std::os::raw::c_int,
                ffi::SQLITE_PREPARE_PERSISTENT as std::os::raw::c_uint,
                &mut stmt,
                std::ptr::null_mut(),
            );
            if rc != ffi::SQLITE_OK {
                ffi::sqlite3_finalize(stmt);
                return Err(RawInsert::error(db, rc));
            }
            rc
        };
        std::ptr::NonNull::new(stmt)
            .map(RawInsert)
            .ok_or_else(|| storage(rusqlite::Error::SqliteFailure(ffi::Error::new(rc), None)))
    }

    /// Bind `params` (in order, from parameter 1), step once and reset: the number of rows
    /// changed. `conn` is the connection the statement was prepared on.
    fn execute(&self, conn: &Connection, params: &[Param<'_>]) -> Result<u64, Error> {
        use rusqlite::ffi;
        let stmt = self.0.as_ptr();
        // SAFETY: `stmt` is a live statement of `conn` (the invariants above), not running (reset
        // after every step). Text and blobs are bound `SQLITE_TRANSIENT`: SQLite copies them, so
        // no binding outlives the borrowed values. Empty ones point at a static (never read).
        unsafe {
            let db = conn.handle();
            for (i, p) in params.iter().enumerate() {
                let i = i as std::os::raw::c_int + 1;
                let rc = match p {
                    Param::Null => ffi::sqlite3_bind_null(stmt, i),
                    Param::Int(v) => ffi::sqlite3_bind_int64(stmt, i, *v),
                    Param::Text(t) => {
                        let ptr = if t.is_empty() { c"".as_ptr() } else { t.as_ptr().cast() };
                        let utf8 = ffi::SQLITE_UTF8 as std::os::raw::c_uchar;
                        ffi::sqlite3_bind_text64(stmt, i, ptr, t.len() as u64, ffi::SQLITE_TRANSIENT(), utf8)
                    }
                    Param::Blob(b) => {
                        if b.is_empty() {
                            ffi::sqlite3_bind_zeroblob(stmt, i, 0)
                        } else {
                            ffi::sqlite3_bind_blob64(
                                stmt,
                                i,
                                b.as_ptr().cast(),
                                b.len() as u64,
                                ffi::SQLITE_TRANSIENT(),
                            )
                        }
                    }
                };
                if rc != ffi::SQLITE_OK {
                    return Err(RawInsert::error(db, rc));
                }
            }
            let step = ffi::sqlite3_step(stmt);
            let reset = ffi::sqlite3_reset(stmt);
            match step {
                ffi::SQLITE_DONE if reset == ffi::SQLITE_OK => Ok(ffi::sqlite3_changes64(db) as u64),
                ffi::SQLITE_DONE => Err(RawInsert::error(db, reset)),
                _ => Err(RawInsert::error(db, step)),
            }
        }
    }
}

/// Everything in a database (see [`Sqlite::dump`]).
#[derive(Debug, Default)]
pub(super) struct Dump {
    /// (row, room, time stored, message), in row order.
    pub messages: Vec<(i64, String, u64, Envelope)>,
    /// (room, id, name, last seen).
    pub members: Vec<(String, PeerId, String, u64)>,
    /// (peer, next number, highest acknowledged).
    pub out_streams: Vec<(PeerId, u64, u64)>,
    /// (author, highest delivered).
    pub in_streams: Vec<(PeerId, u64)>,
    /// (peer, first stream number, first row, length, time queued), by peer and number.
    pub runs: Vec<(PeerId, u64, i64, u64, u64)>,
}

/// The open database.
pub struct Sqlite {
    conn: Connection,
    me: PeerId,
    /// The room whose messages are read and written; `None` (read-only tools): every room.
    room: Option<String>,
    /// Between [`Sqlite::begin`] and [`Sqlite::commit`]: the first write opens a transaction.
    grouping: Cell<bool>,
    /// A transaction is open (it was opened by a write of this group).
    in_tx: Cell<bool>,
    checkpointer: Option<Checkpointer>,
    /// The exercise queries, naming the exercises index when the database has it (SQLite's
    /// planner, without `ANALYZE` statistics, would scan the whole table instead).
    q_exercises: String,
    q_catchup: String,
    /// The last catch-up list, by (chats, limit): every session that comes up is offered it, and
    /// it changes only when a message is stored (a room of 200 forming offers it 199 times).
    catchup_memo: std::cell::RefCell<Option<CatchupMemo>>,
    /// Outbox runs of the open group not yet written, per peer (written when the run breaks,
    /// before any read of the outbox, and before the commit).
    runs: std::cell::RefCell<std::collections::HashMap<PeerId, Run>>,
    /// The message INSERT, prepared on first use (see [`RawInsert`]).
    insert_stmt: std::cell::OnceCell<RawInsert>,
}

// SAFETY: the only field that is not `Send` by itself is the raw INSERT statement. It belongs to
// `conn`, which is `Send` and moves with it; `Sqlite` is not `Sync` (its `Cell`s), so the
// statement and its connection are only ever used by the one thread that holds the store (SQLite
// is built thread-safe, and a connection may move between threads between calls).
unsafe impl Send for Sqlite {}

impl Drop for Sqlite {
    fn drop(&mut self) {
        if let Some(st) = self.insert_stmt.take() {
            // SAFETY: the statement is this connection's and is not used again; finalized before
            // the connection (a field, dropped after this) closes, which would refuse to close
            // with a statement still open.
            unsafe { rusqlite::ffi::sqlite3_finalize(st.0.as_ptr()) };
        }
    }
}

/// A run of messages queued for one peer: stream numbers `lseq..lseq+n` are rows `msg..msg+n`.
#[derive(Debug, Clone, Copy)]
struct Run {
    lseq: u64,
    msg: i64,
    n: u64,
    queued_ms: u64,
}

impl std::fmt::Debug for Sqlite {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Sqlite").field("in_tx", &self.in_tx.get()).finish()
    }
}

impl Sqlite {
    /// Open (creating) the database of the data dir `dir`, or an in-memory one for `None`, for
    /// the messages of `room`.
    pub fn open(dir: Option<&Path>, me: PeerId, room: &str) -> Result<Sqlite, Error> {
        configure_sqlite();
        let conn = match dir {
            Some(d) => Connection::open(d.join(DB_FILE)),
            None => Connection::open_in_memory(),
        }
        .map_err(storage)?;
        conn.busy_timeout(std::time::Duration::from_secs(5)).map_err(storage)?;
        if dir.is_some() {
            conn.pragma_update(None, "journal_mode", "WAL").map_err(storage)?;
            conn.pragma_update(None, "wal_autocheckpoint", WAL_AUTOCHECKPOINT).map_err(storage)?;
        }
        conn.pragma_update(None, "synchronous", "NORMAL").map_err(storage)?;
        // The temporary b-trees of the catch-up query's ORDER BY stay in memory.
        conn.pragma_update(None, "temp_store", "MEMORY").map_err(storage)?;
        // Room for every statement of this file: rusqlite keeps 16 by default, fewer than we
        // use, and an evicted statement is parsed and planned again on its next use.
        conn.set_prepared_statement_cache_capacity(64);
        conn.execute_batch(SCHEMA).map_err(storage)?;
        // A database of an older version has an outbox of one row per message: each is a run of 1.
        if conn.prepare("SELECT n FROM outbox LIMIT 0").is_err() {
            conn.execute_batch("ALTER TABLE outbox ADD COLUMN n INTEGER NOT NULL DEFAULT 1").map_err(storage)?;
        }
        let checkpointer = dir.and_then(|d| Checkpointer::start(&d.join(DB_FILE)));
        Ok(Sqlite {
            conn,
            me,
            room: Some(room.to_string()),
            grouping: Cell::new(false),
            in_tx: Cell::new(false),
            checkpointer,
            q_exercises: queries(true).0,
            q_catchup: queries(true).1,
            catchup_memo: Default::default(),
            runs: Default::default(),
            insert_stmt: Default::default(),
        })
    }

    /// Open the database of `dir` for reading only (export and history, even while a peer runs),
    /// for the messages of `room`, or of every room.
    pub fn open_readonly(dir: &Path, room: Option<&str>) -> Result<Sqlite, Error> {
        let path = dir.join(DB_FILE);
        if !path.exists() {
            return Err(Error::Storage(format!(
                "there is no history in {}; give the --data-dir of a peer that has run",
                dir.display()
            )));
        }
        configure_sqlite();
        let conn = Connection::open_with_flags(&path, OpenFlags::SQLITE_OPEN_READ_ONLY).map_err(storage)?;
        conn.busy_timeout(std::time::Duration::from_secs(5)).map_err(storage)?;
        let me =
            std::fs::read_to_string(dir.join("id")).ok().and_then(|t| t.trim().parse().ok()).unwrap_or(PeerId([0; 16]));
        // A database of an older version may lack the exercises index (it is made on the next
        // read-write open).
        let indexed = conn
            .query_row("SELECT 1 FROM sqlite_master WHERE type = 'index' AND name = 'messages_exercises'", [], |_| {
                Ok(())
            })
            .optional()
            .map_err(storage)?
            .is_some();
        let (q_exercises, q_catchup) = queries(indexed);
        Ok(Sqlite {
            conn,
            me,
            room: room.map(str::to_string),
            grouping: Cell::new(false),
            in_tx: Cell::new(false),
            checkpointer: None,
            q_exercises,
            q_catchup,
            catchup_memo: Default::default(),
            runs: Default::default(),
            insert_stmt: Default::default(),
        })
    }

    /// Everything in the database, every room, for the journal store's one-time import of a
    /// `history.db` (`store/journaled.rs`): messages in row order, members, stream counters, and
    /// the outbox runs as stored (naming the rows of this database).
    pub(super) fn dump(&self) -> Result<Dump, Error> {
        let mut d = Dump::default();
        let sql = format!("SELECT id, room, received_ms, {} FROM messages ORDER BY id", envelope_columns!(""));
        let mut st = self.conn.prepare(&sql).map_err(storage)?;
        let rows = st
            .query_map([], |r| {
                Ok((r.get::<_, i64>(0)?, r.get::<_, String>(1)?, r.get::<_, i64>(2)?, envelope_at(r, 3)?))
            })
            .map_err(storage)?;
        for r in rows {
            let (row, room, at, env) = r.map_err(storage)?;
            d.messages.extend(env.map(|env| (row, room, at as u64, env)));
        }
        let mut st = self.conn.prepare("SELECT room, id, name, last_seen_ms FROM members").map_err(storage)?;
        let rows = st
            .query_map([], |r| {
                Ok((r.get::<_, String>(0)?, r.get::<_, Vec<u8>>(1)?, r.get::<_, String>(2)?, r.get::<_, i64>(3)?))
            })
            .map_err(storage)?;
        for r in rows {
            let (room, id, name, at) = r.map_err(storage)?;
            d.members.extend(peer_of(id).map(|id| (room, id, name, at as u64)));
        }
        d.out_streams = self.out_streams()?;
        d.in_streams = self.in_streams()?;
        // A database of an older version has no `n` (a run of 1 per row).
        let sql = match self.conn.prepare("SELECT n FROM outbox LIMIT 0") {
            Ok(_) => "SELECT peer, lseq, msg, n, queued_ms FROM outbox ORDER BY peer, lseq",
            Err(_) => "SELECT peer, lseq, msg, 1, queued_ms FROM outbox ORDER BY peer, lseq",
        };
        let mut st = self.conn.prepare(sql).map_err(storage)?;
        let rows = st
            .query_map([], |r| {
                Ok((
                    r.get::<_, Vec<u8>>(0)?,
                    r.get::<_, i64>(1)?,
                    r.get::<_, i64>(2)?,
                    r.get::<_, i64>(3)?,
                    r.get::<_, i64>(4)?,
                ))
            })
            .map_err(storage)?;
        for r in rows {
            let (peer, lseq, msg, n, at) = r.map_err(storage)?;
            d.runs.extend(peer_of(peer).map(|p| (p, lseq as u64, msg, n as u64, at as u64)));
        }
        Ok(d)
    }

    /// Start grouping writes: the first write after this opens a transaction, which
    /// [`Sqlite::commit`] ends. A group without writes costs nothing (no `BEGIN`/`COMMIT`): most
    /// turns of the node (a beacon, a ping) write nothing.
    pub fn begin(&mut self) {
        self.grouping.set(true);
    }

    /// Open the group's transaction on its first write (no-op outside a group or when open).
    fn tx(&self) -> Result<(), Error> {
        if self.grouping.get() && !self.in_tx.get() {
            // Cached statement: no SQL parsing per turn.
            self.conn.prepare_cached("BEGIN").and_then(|mut st| st.execute([])).map_err(storage)?;
            self.in_tx.set(true);
        }
        Ok(())
    }

    /// Has the current group written anything yet?
    pub fn wrote(&self) -> bool {
        self.in_tx.get()
    }

    /// Make the grouped writes durable, and end the group. On an error nothing of the group is
    /// kept (see [`Sqlite::rollback`]).
    pub fn commit(&mut self) -> Result<(), Error> {
        if !self.in_tx.get() {
            self.grouping.set(false);
            return Ok(());
        }
        let done = self.write_runs().and_then(|()| {
            self.conn.prepare_cached("COMMIT").and_then(|mut st| st.execute([])).map(drop).map_err(storage)
        });
        if let Err(e) = done {
            self.rollback();
            return Err(e);
        }
        self.in_tx.set(false);
        self.grouping.set(false);
        if let Some(c) = &self.checkpointer {
            c.wrote();
        }
        Ok(())
    }

    /// Drop the group's writes and end it: a write of the group failed, and a group is kept
    /// whole or not at all (the node then acknowledges and reports nothing of it).
    pub fn rollback(&mut self) {
        self.grouping.set(false);
        self.runs.borrow_mut().clear();
        // It may name messages of the group.
        self.catchup_memo.borrow_mut().take();
        // SQLite ends the transaction itself after some failures (a full disk), not all (a busy
        // database).
        if self.in_tx.replace(false) && !self.conn.is_autocommit() {
            let _ = self.conn.execute_batch("ROLLBACK");
        }
    }

    // ---- messages ----------------------------------------------------------------------------

    /// Keep a message. Returns its row number if it is new, `None` if it was already stored.
    ///
    /// The row holds each field of the envelope once, in its own column (`env` is left empty:
    /// the envelope is made again from the columns when it is read, see [`envelope_at`]).
    pub fn insert(&self, env: &Envelope, received_ms: u64) -> Result<Option<i64>, Error> {
        self.tx()?;
        let (kind, reference, title, text, private) = match &env.body {
            Body::Chat { text } => ("chat", None, None, text.as_str(), false),
            Body::Problem { title, body, private_answers } => {
                ("problem", None, Some(title.as_str()), body.as_str(), *private_answers)
            }
            Body::Answer { problem, text } => ("answer", Some(problem.to_string()), None, text.as_str(), false),
            Body::Feedback { answer, text } => ("feedback", Some(answer.to_string()), None, text.as_str(), false),
        };
        let st = match self.insert_stmt.get() {
            Some(st) => st,
            None => {
                let st = RawInsert::prepare(&self.conn)?;
                self.insert_stmt.get_or_init(|| st)
            }
        };
        let n = st.execute(
            &self.conn,
            &[
                Param::Blob(&env.id.author.0),
                Param::Int(env.id.seq as i64),
                Param::Text(&env.author_name),
                Param::Int(env.sent_ms as i64),
                Param::Int(received_ms as i64),
                env.to.as_ref().map_or(Param::Null, |t| Param::Blob(&t.0)),
                Param::Text(kind),
                Param::text_or_null(reference.as_deref()),
                Param::text_or_null(title),
                Param::Text(text),
                Param::Int(i64::from(private)),
                Param::Blob(&[]),
                Param::Text(self.room.as_deref().unwrap_or("")),
            ],
        )?;
        if n == 1 {
            self.catchup_memo.borrow_mut().take();
        }
        Ok((n == 1).then(|| self.conn.last_insert_rowid()))
    }

    /// Is this message stored?
    pub fn has(&self, id: &MsgId) -> Result<bool, Error> {
        self.conn
            .prepare_cached("SELECT 1 FROM messages WHERE author = ?1 AND seq = ?2")
            .and_then(|mut st| st.exists(params![&id.author.0[..], id.seq as i64]))
            .map_err(storage)
    }

    /// The encoded envelope of a message, if stored and meant for the whole room.
    pub fn room_envelope(&self, id: &MsgId) -> Result<Option<Vec<u8>>, Error> {
        let env = self
            .conn
            .prepare_cached(concat!(
                "SELECT ",
                envelope_columns!(""),
                " FROM messages WHERE author = ?1 AND seq = ?2 AND recipient IS NULL AND (?3 IS NULL OR room = ?3)"
            ))
            .and_then(|mut st| {
                st.query_row(params![&id.author.0[..], id.seq as i64, self.room], |r| envelope_at(r, 0)).optional()
            })
            .map_err(storage)?;
        Ok(env.flatten().and_then(|e| codec::encode(&e).ok()).map(|b| b.to_vec()))
    }

    fn stored(&self, row: i64, env: Envelope, received_ms: i64) -> Stored {
        Stored::new(row, env, received_ms as u64, self.me)
    }

    /// Rows of `sql`, which selects `id, received_ms` and then [`envelope_columns!`].
    fn select(&self, sql: &str, p: impl rusqlite::Params) -> Result<Vec<Stored>, Error> {
        let mut st = self.conn.prepare_cached(sql).map_err(storage)?;
        let rows =
            st.query_map(p, |r| Ok((r.get::<_, i64>(0)?, r.get::<_, i64>(1)?, envelope_at(r, 2)?))).map_err(storage)?;
        let mut out = Vec::new();
        for r in rows {
            let (row, rec, env) = r.map_err(storage)?;
            out.extend(env.map(|env| self.stored(row, env, rec)));
        }
        Ok(out)
    }

    /// The room's catch-up set, oldest first: every problem, answer and feedback meant for the
    /// whole room, and the last `chats` room chats; at most `limit` ids (the newest kept).
    pub fn catchup_ids(&self, chats: usize, limit: usize) -> Result<Vec<MsgId>, Error> {
        if let Some((key, ids)) = &*self.catchup_memo.borrow()
            && *key == (chats, limit)
        {
            return Ok(ids.clone());
        }
        let ids = self.catchup_query(chats, limit)?;
        *self.catchup_memo.borrow_mut() = Some(((chats, limit), ids.clone()));
        Ok(ids)
    }

    fn catchup_query(&self, chats: usize, limit: usize) -> Result<Vec<MsgId>, Error> {
        let mut st = self.conn.prepare_cached(&self.q_catchup).map_err(storage)?;
        let rows = st
            .query_map(params![chats as i64, limit as i64, self.room], |r| {
                Ok((r.get::<_, Vec<u8>>(0)?, r.get::<_, i64>(1)?))
            })
            .map_err(storage)?;
        let mut out = Vec::new();
        for r in rows {
            let (a, s) = r.map_err(storage)?;
            if let Some(author) = peer_of(a) {
                out.push(MsgId { author, seq: s as u64 });
            }
        }
        Ok(out)
    }

    /// The last `limit` messages of every kind, oldest first.
    pub fn history(&self, limit: usize) -> Result<Vec<Stored>, Error> {
        self.select(
            concat!(
                "SELECT * FROM (SELECT id, received_ms, ",
                envelope_columns!(""),
                " FROM messages WHERE (?2 IS NULL OR room = ?2) ORDER BY id DESC LIMIT ?1) ORDER BY id ASC"
            ),
            params![limit as i64, self.room],
        )
    }

    /// Every problem, answer and feedback, oldest first.
    pub fn exercises(&self) -> Result<Vec<Stored>, Error> {
        self.select(&self.q_exercises, params![self.room])
    }

    /// Number of messages stored.
    pub fn count(&self) -> Result<u64, Error> {
        self.conn
            .query_row("SELECT COUNT(*) FROM messages", [], |r| r.get::<_, i64>(0))
            .map(|n| n as u64)
            .map_err(storage)
    }

    // ---- members -----------------------------------------------------------------------------

    /// Remember a peer of the room, seen now.
    pub fn touch_member(&self, id: PeerId, name: &str, now_ms: u64) -> Result<(), Error> {
        self.tx()?;
        self.conn
            .prepare_cached(
                "INSERT INTO members (room, id, name, last_seen_ms) VALUES (?4, ?1, ?2, ?3)
                 ON CONFLICT (room, id) DO UPDATE SET name = excluded.name, last_seen_ms = excluded.last_seen_ms",
            )
            .and_then(|mut st| st.execute(params![&id.0[..], name, now_ms as i64, self.room.as_deref().unwrap_or("")]))
            .map(|_| ())
            .map_err(storage)
    }

    /// Members seen since `since_ms`.
    pub fn members_since(&self, since_ms: u64) -> Result<Vec<(PeerId, String)>, Error> {
        let mut st = self
            .conn
            .prepare_cached("SELECT id, name FROM members WHERE last_seen_ms >= ?1 AND (?2 IS NULL OR room = ?2)")
            .map_err(storage)?;
        let rows = st
            .query_map(params![since_ms as i64, self.room], |r| Ok((r.get::<_, Vec<u8>>(0)?, r.get::<_, String>(1)?)))
            .map_err(storage)?;
        let mut out = Vec::new();
        for r in rows {
            let (id, name) = r.map_err(storage)?;
            if let Some(id) = peer_of(id) {
                out.push((id, name));
            }
        }
        Ok(out)
    }

    // ---- streams -----------------------------------------------------------------------------

    /// Every outgoing stream: (peer, next number, highest acknowledged).
    pub fn out_streams(&self) -> Result<Vec<(PeerId, u64, u64)>, Error> {
        // Runs of the open group count too (the node reads this at start, outside any group).
        self.write_runs()?;
        // The saved counters lag behind the sends (a send writes only its outbox row; the
        // counters are written with acknowledgements and drops, which delete rows): the next
        // number is one past the highest queued, if that is higher than the saved one.
        let mut st = self
            .conn
            .prepare_cached(
                "SELECT peer, MAX(next_lseq), MAX(acked) FROM (
                     SELECT peer, next_lseq, acked FROM out_streams
                     UNION ALL
                     SELECT peer, MAX(lseq + n), 0 FROM outbox GROUP BY peer
                 ) GROUP BY peer",
            )
            .map_err(storage)?;
        let rows = st
            .query_map([], |r| Ok((r.get::<_, Vec<u8>>(0)?, r.get::<_, i64>(1)?, r.get::<_, i64>(2)?)))
            .map_err(storage)?;
        let mut out = Vec::new();
        for r in rows {
            let (p, n, a) = r.map_err(storage)?;
            if let Some(p) = peer_of(p) {
                out.push((p, n as u64, a as u64));
            }
        }
        Ok(out)
    }

    /// Save an outgoing stream's counters.
    pub fn save_out_stream(&self, peer: PeerId, next: u64, acked: u64) -> Result<(), Error> {
        self.tx()?;
        self.conn
            .prepare_cached(
                "INSERT INTO out_streams (peer, next_lseq, acked) VALUES (?1, ?2, ?3)
                 ON CONFLICT (peer) DO UPDATE SET next_lseq = excluded.next_lseq, acked = excluded.acked",
            )
            .and_then(|mut st| st.execute(params![&peer.0[..], next as i64, acked as i64]))
            .map(|_| ())
            .map_err(storage)
    }

    /// Queue message row `msg` for `peer` as stream number `lseq`. Within a group, a message that
    /// follows the last one queued for that peer (next number, next row, same millisecond)
    /// extends its run in memory: the run is written once (see [`Run`]), before the commit.
    pub fn enqueue(&self, peer: PeerId, lseq: u64, msg: i64, now_ms: u64) -> Result<(), Error> {
        self.tx()?;
        let one = Run { lseq, msg, n: 1, queued_ms: now_ms };
        if !self.grouping.get() {
            return self.write_run(peer, one);
        }
        let mut runs = self.runs.borrow_mut();
        match runs.get_mut(&peer) {
            // Same millisecond too: the age bound drops whole runs, so a run is of one age.
            Some(r) if r.lseq + r.n == lseq && r.msg + r.n as i64 == msg && r.queued_ms == now_ms => {
                r.n += 1;
                Ok(())
            }
            Some(r) => {
                let done = std::mem::replace(r, one);
                drop(runs);
                self.write_run(peer, done)
            }
            None => {
                runs.insert(peer, one);
                Ok(())
            }
        }
    }

    fn write_run(&self, peer: PeerId, r: Run) -> Result<(), Error> {
        self.conn
            .prepare_cached("INSERT OR REPLACE INTO outbox (peer, lseq, msg, queued_ms, n) VALUES (?1, ?2, ?3, ?4, ?5)")
            .and_then(|mut st| st.execute(params![&peer.0[..], r.lseq as i64, r.msg, r.queued_ms as i64, r.n as i64]))
            .map(|_| ())
            .map_err(storage)
    }

    /// Write the runs held in memory (before a read of the outbox, and before the commit).
    fn write_runs(&self) -> Result<(), Error> {
        if self.runs.borrow().is_empty() {
            return Ok(());
        }
        let runs = std::mem::take(&mut *self.runs.borrow_mut());
        for (peer, r) in runs {
            self.write_run(peer, r)?;
        }
        Ok(())
    }

    /// Up to `limit` queued messages for `peer` after stream number `after`: (number, envelope).
    pub fn pending(&self, peer: PeerId, after: u64, limit: usize) -> Result<Vec<(u64, Vec<u8>)>, Error> {
        self.write_runs()?;
        // The runs from the one that holds `after + 1` on (runs never overlap), each joined with
        // its range of message rows: both in order, so no sort and LIMIT stops the scan.
        let mut st = self
            .conn
            .prepare_cached(concat!(
                "SELECT o.lseq + (m.id - o.msg), ",
                envelope_columns!("m."),
                " FROM outbox o
                 JOIN messages m ON m.id BETWEEN o.msg AND o.msg + o.n - 1
                 WHERE o.peer = ?1
                   AND o.lseq >= COALESCE((SELECT MAX(lseq) FROM outbox WHERE peer = ?1 AND lseq <= ?2 + 1), 0)
                   AND o.lseq + (m.id - o.msg) > ?2
                 ORDER BY o.lseq, m.id LIMIT ?3"
            ))
            .map_err(storage)?;
        let rows = st
            .query_map(params![&peer.0[..], after as i64, limit as i64], |r| {
                Ok((r.get::<_, i64>(0)? as u64, envelope_at(r, 1)?))
            })
            .map_err(storage)?;
        let mut out = Vec::new();
        for r in rows {
            let (lseq, env) = r.map_err(storage)?;
            // A row that makes no envelope (never written by lanpeer) cannot be sent: it stops
            // the batch here rather than leave a gap in the stream.
            let Some(bytes) = env.and_then(|e| codec::encode(&e).ok()) else { break };
            out.push((lseq, bytes.to_vec()));
        }
        Ok(out)
    }

    /// The lowest stream number still queued for `peer`.
    pub fn first_pending(&self, peer: PeerId) -> Result<Option<u64>, Error> {
        self.write_runs()?;
        self.conn
            .prepare_cached("SELECT MIN(lseq) FROM outbox WHERE peer = ?1")
            .and_then(|mut st| st.query_row(params![&peer.0[..]], |r| r.get::<_, Option<i64>>(0)))
            .map(|v| v.map(|x| x as u64))
            .map_err(storage)
    }

    /// `peer` has everything up to `upto`: forget those (whole runs, and the head of the run
    /// that holds `upto` when it goes on past it).
    pub fn acked(&self, peer: PeerId, upto: u64) -> Result<(), Error> {
        self.tx()?;
        self.write_runs()?;
        self.conn
            .prepare_cached("DELETE FROM outbox WHERE peer = ?1 AND lseq <= ?2 AND lseq + n - 1 <= ?2")
            .and_then(|mut st| st.execute(params![&peer.0[..], upto as i64]))
            .map_err(storage)?;
        self.trim_run(peer, upto)
    }

    /// Cut the numbers up to `upto` off the run that holds `upto` and goes on past it.
    fn trim_run(&self, peer: PeerId, upto: u64) -> Result<(), Error> {
        self.conn
            .prepare_cached(
                "UPDATE outbox SET msg = msg + (?2 + 1 - lseq), n = n - (?2 + 1 - lseq), lseq = ?2 + 1
                 WHERE peer = ?1 AND lseq <= ?2 AND lseq + n - 1 > ?2",
            )
            .and_then(|mut st| st.execute(params![&peer.0[..], upto as i64]))
            .map(|_| ())
            .map_err(storage)
    }

    /// Drop queued messages older than `before_ms`, and beyond `max_per_peer` for any peer
    /// (oldest first). Returns how many were dropped for whom.
    pub fn purge(&self, before_ms: u64, max_per_peer: usize) -> Result<Vec<(PeerId, u64)>, Error> {
        self.tx()?;
        self.write_runs()?;
        let mut dropped: std::collections::HashMap<PeerId, u64> = Default::default();
        {
            let mut st = self
                .conn
                .prepare_cached("SELECT peer, SUM(n) FROM outbox WHERE queued_ms < ?1 GROUP BY peer")
                .map_err(storage)?;
            let rows = st
                .query_map(params![before_ms as i64], |r| Ok((r.get::<_, Vec<u8>>(0)?, r.get::<_, i64>(1)?)))
                .map_err(storage)?;
            for r in rows {
                let (p, n) = r.map_err(storage)?;
                if let Some(p) = peer_of(p) {
                    *dropped.entry(p).or_default() += n as u64;
                }
            }
        }
        self.conn.execute("DELETE FROM outbox WHERE queued_ms < ?1", params![before_ms as i64]).map_err(storage)?;
        let over: Vec<(Vec<u8>, i64)> = {
            let mut st = self
                .conn
                .prepare_cached("SELECT peer, SUM(n) FROM outbox GROUP BY peer HAVING SUM(n) > ?1")
                .map_err(storage)?;
            let rows = st.query_map(params![max_per_peer as i64], |r| Ok((r.get(0)?, r.get(1)?))).map_err(storage)?;
            rows.collect::<Result<_, _>>().map_err(storage)?
        };
        for (p, n) in over {
            let extra = n - max_per_peer as i64;
            let Some(peer) = peer_of(p) else { continue };
            // The oldest `extra` numbers go: through the number `extra` places after the first.
            let upto = self
                .conn
                .query_row(
                    "SELECT lseq + (?2 - covered) - 1 FROM (
                         SELECT lseq, n, SUM(n) OVER (ORDER BY lseq ROWS UNBOUNDED PRECEDING) - n AS covered
                         FROM outbox WHERE peer = ?1)
                     WHERE covered < ?2 AND covered + n >= ?2",
                    params![&peer.0[..], extra],
                    |r| r.get::<_, i64>(0),
                )
                .map_err(storage)?;
            self.conn
                .execute("DELETE FROM outbox WHERE peer = ?1 AND lseq + n - 1 <= ?2", params![&peer.0[..], upto])
                .map_err(storage)?;
            self.trim_run(peer, upto as u64)?;
            *dropped.entry(peer).or_default() += extra as u64;
        }
        Ok(dropped.into_iter().collect())
    }

    /// Every incoming stream: (author, highest delivered).
    pub fn in_streams(&self) -> Result<Vec<(PeerId, u64)>, Error> {
        let mut st = self.conn.prepare_cached("SELECT author, delivered FROM in_streams").map_err(storage)?;
        let rows = st.query_map([], |r| Ok((r.get::<_, Vec<u8>>(0)?, r.get::<_, i64>(1)?))).map_err(storage)?;
        let mut out = Vec::new();
        for r in rows {
            let (p, d) = r.map_err(storage)?;
            if let Some(p) = peer_of(p) {
                out.push((p, d as u64));
            }
        }
        Ok(out)
    }

    /// Save how far the stream from `author` has been delivered.
    pub fn save_in_stream(&self, author: PeerId, delivered: u64) -> Result<(), Error> {
        self.tx()?;
        self.conn
            .prepare_cached(
                "INSERT INTO in_streams (author, delivered) VALUES (?1, ?2)
                 ON CONFLICT (author) DO UPDATE SET delivered = excluded.delivered",
            )
            .and_then(|mut st| st.execute(params![&author.0[..], delivered as i64]))
            .map(|_| ())
            .map_err(storage)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A message from `author` number `seq`, and its encoding (for every test module here).
    pub(super) fn env(author: u8, seq: u64, to: Option<PeerId>, body: Body) -> Envelope {
        Envelope { id: MsgId { author: PeerId([author; 16]), seq }, author_name: "n".into(), sent_ms: 5, to, body }
    }

    #[test]
    fn sqlite_does_not_count_memory() {
        // With memory statistics on, SQLite would take a process-wide mutex on every allocation
        // (see `configure_sqlite`); off, it reports no memory in use at all.
        let s = Sqlite::open(None, PeerId([1; 16]), "r").unwrap();
        let c = env(2, 1, None, Body::Chat { text: "hello".into() });
        s.insert(&c, 1).unwrap();
        assert_eq!(unsafe { rusqlite::ffi::sqlite3_memory_used() }, 0);
    }

    #[test]
    fn messages_are_kept_once_and_catch_up_is_room_only() {
        let s = Sqlite::open(None, PeerId([1; 16]), "r").unwrap();
        let p = env(1, 1, None, Body::Problem { title: "t".into(), body: "b".into(), private_answers: false });
        assert!(s.insert(&p, 10).unwrap().is_some());
        assert!(s.insert(&p, 11).unwrap().is_none(), "a repeat is not stored twice");
        for k in 0..5 {
            let c = env(2, 10 + k, None, Body::Chat { text: format!("c{k}") });
            s.insert(&c, 12).unwrap();
        }
        let private = env(2, 20, Some(PeerId([1; 16])), Body::Chat { text: "psst".into() });
        s.insert(&private, 13).unwrap();
        let ids = s.catchup_ids(2, 100).unwrap();
        let want = vec![p.id, MsgId { author: PeerId([2; 16]), seq: 13 }, MsgId { author: PeerId([2; 16]), seq: 14 }];
        assert_eq!(ids, want);
        assert_eq!(s.catchup_ids(2, 1).unwrap(), vec![MsgId { author: PeerId([2; 16]), seq: 14 }]);
        assert!(s.room_envelope(&private.id).unwrap().is_none(), "private messages are never relayed");
        assert!(s.has(&private.id).unwrap());
        let h = s.history(3).unwrap();
        assert_eq!(h.len(), 3);
        assert_eq!(h[2].message.id, private.id);
        assert!(h.iter().all(|x| !x.message.own));
        assert_eq!(s.exercises().unwrap().len(), 1);
        assert!(s.exercises().unwrap()[0].message.own);
    }

    /// One message of each kind (and a private one), with names and texts that are not ASCII.
    fn one_of_each() -> Vec<Envelope> {
        let p = env(2, 1, None, Body::Problem { title: "Ü1".into(), body: "x²\n≥ 0".into(), private_answers: true });
        let a = env(3, 7, Some(PeerId([2; 16])), Body::Answer { problem: p.id, text: "ok\n✓".into() });
        let f = env(2, 2, None, Body::Feedback { answer: a.id, text: String::new() });
        let mut c = env(4, u64::MAX >> 1, None, Body::Chat { text: "héllo 🙂".into() });
        c.author_name = "Zoë".into();
        c.sent_ms = 1_764_950_400_123;
        vec![p, a, f, c, env(4, 9, Some(PeerId([1; 16])), Body::Chat { text: "psst".into() })]
    }

    /// A row keeps each field once (no encoded envelope beside the columns), and what is read
    /// back is what was stored: the same message in history, and the very bytes the author sent
    /// when it is sent on (catch-up, the outbox).
    #[test]
    fn a_message_read_back_from_its_columns_is_the_one_stored_to_the_byte() {
        let s = Sqlite::open(None, PeerId([2; 16]), "r").unwrap();
        let all = one_of_each();
        for (k, e) in all.iter().enumerate() {
            assert_eq!(s.insert(e, 10 + k as u64).unwrap(), Some(k as i64 + 1));
            s.enqueue(PeerId([9; 16]), k as u64 + 1, k as i64 + 1, 0).unwrap();
        }
        let env_bytes: i64 = s.conn.query_row("SELECT SUM(length(env)) FROM messages", [], |r| r.get(0)).unwrap();
        assert_eq!(env_bytes, 0, "the envelope is not stored twice");
        let h = s.history(10).unwrap();
        assert_eq!(h.len(), all.len());
        for (st, e) in h.iter().zip(&all) {
            let m = &st.message;
            assert_eq!(
                (m.id, &m.from_name, m.sent_ms, m.to, &m.body),
                (e.id, &e.author_name, e.sent_ms, e.to, &e.body)
            );
            assert_eq!(m.own, e.id.author == PeerId([2; 16]));
        }
        let sent: Vec<Vec<u8>> = all.iter().map(|e| codec::encode(e).unwrap().to_vec()).collect();
        for (e, bytes) in all.iter().zip(&sent) {
            let want = e.to.is_none().then(|| bytes.clone());
            assert_eq!(s.room_envelope(&e.id).unwrap(), want, "{:?}", e.body);
        }
        let queued = s.pending(PeerId([9; 16]), 0, 100).unwrap();
        assert_eq!(queued, sent.iter().cloned().enumerate().map(|(k, b)| (k as u64 + 1, b)).collect::<Vec<_>>());
        assert_eq!(s.exercises().unwrap().len(), 3);
    }

    /// Rows written by earlier builds carry the encoded envelope in `env` as well: they read as
    /// before. A row that no lanpeer wrote (an unknown kind, a reference that is no message id)
    /// is skipped, not fatal, and stops an outbox batch rather than leave a gap in the stream.
    #[test]
    fn rows_of_earlier_builds_read_as_before_and_a_foreign_row_is_skipped() {
        let s = Sqlite::open(None, PeerId([1; 16]), "r").unwrap();
        let all = one_of_each();
        for (k, e) in all.iter().enumerate() {
            s.insert(e, 1).unwrap();
            s.conn
                .execute(
                    "UPDATE messages SET env = ?1 WHERE id = ?2",
                    params![codec::encode(e).unwrap().to_vec(), k as i64 + 1],
                )
                .unwrap();
        }
        assert_eq!(
            s.history(10).unwrap().iter().map(|m| m.message.id).collect::<Vec<_>>(),
            all.iter().map(|e| e.id).collect::<Vec<_>>()
        );
        assert_eq!(s.room_envelope(&all[0].id).unwrap(), Some(codec::encode(&all[0]).unwrap().to_vec()));
        for k in 0..3 {
            s.enqueue(PeerId([9; 16]), k + 1, k as i64 + 1, 0).unwrap();
        }
        s.conn
            .execute_batch("UPDATE messages SET kind = 'poll' WHERE id = 2; UPDATE messages SET ref = 'x' WHERE id = 3")
            .unwrap();
        assert_eq!(s.history(10).unwrap().len(), all.len() - 2);
        assert!(s.room_envelope(&all[2].id).unwrap().is_none());
        assert_eq!(s.pending(PeerId([9; 16]), 0, 10).unwrap().len(), 1, "the batch stops at the first foreign row");
    }

    #[test]
    fn rooms_do_not_mix() {
        let dir = std::env::temp_dir().join(format!("lanpeer-store-rooms-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let me = PeerId([1; 16]);
        let p = env(1, 1, None, Body::Problem { title: "5A".into(), body: String::new(), private_answers: false });
        {
            let a = Sqlite::open(Some(&dir), me, "5A").unwrap();
            a.insert(&p, 0).unwrap();
            a.touch_member(PeerId([7; 16]), "x", 10).unwrap();
        }
        let b = Sqlite::open(Some(&dir), me, "5B").unwrap();
        assert!(b.catchup_ids(100, 100).unwrap().is_empty(), "5A's exercise is never offered in 5B");
        assert!(b.room_envelope(&p.id).unwrap().is_none());
        assert!(b.history(10).unwrap().is_empty());
        assert!(b.exercises().unwrap().is_empty());
        assert!(b.members_since(0).unwrap().is_empty(), "5A's members are not addressed in 5B");
        let all = Sqlite::open_readonly(&dir, None).unwrap();
        assert_eq!(all.exercises().unwrap().len(), 1, "the export sees every room");
        drop((b, all));
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn outbox_pending_ack_and_purge() {
        let mut s = Sqlite::open(None, PeerId([1; 16]), "r").unwrap();
        s.begin();
        let peer = PeerId([9; 16]);
        for k in 1..=10u64 {
            let c = env(1, k, None, Body::Chat { text: format!("m{k}") });
            let row = s.insert(&c, 0).unwrap().unwrap();
            s.enqueue(peer, k, row, k * 100).unwrap();
        }
        s.save_out_stream(peer, 11, 0).unwrap();
        s.commit().unwrap();
        assert_eq!(s.pending(peer, 0, 3).unwrap().iter().map(|x| x.0).collect::<Vec<_>>(), vec![1, 2, 3]);
        s.acked(peer, 4).unwrap();
        assert_eq!(s.first_pending(peer).unwrap(), Some(5));
        // Older than 650 ms: 5 and 6 go; then at most 2 per peer: 7, 8 go.
        let dropped = s.purge(650, 2).unwrap();
        assert_eq!(dropped, vec![(peer, 4)]);
        assert_eq!(s.pending(peer, 0, 100).unwrap().iter().map(|x| x.0).collect::<Vec<_>>(), vec![9, 10]);
        assert_eq!(s.out_streams().unwrap(), vec![(peer, 11, 0)]);
        s.save_in_stream(peer, 7).unwrap();
        s.save_in_stream(peer, 8).unwrap();
        assert_eq!(s.in_streams().unwrap(), vec![(peer, 8)]);
        s.touch_member(peer, "bob", 1000).unwrap();
        assert_eq!(s.members_since(999).unwrap(), vec![(peer, "bob".to_string())]);
        assert!(s.members_since(1001).unwrap().is_empty());
    }

    #[test]
    fn the_next_stream_number_comes_from_the_outbox_when_the_counter_lags() {
        // A send writes only its outbox row; the counter is written with acknowledgements. A
        // restart must never number a new message with a number already used.
        let mut s = Sqlite::open(None, PeerId([1; 16]), "r").unwrap();
        let (p, q) = (PeerId([8; 16]), PeerId([9; 16]));
        s.begin();
        s.save_out_stream(p, 3, 2).unwrap();
        for k in 1..=6u64 {
            let c = env(1, k, None, Body::Chat { text: format!("m{k}") });
            let row = s.insert(&c, 0).unwrap().unwrap();
            // p: numbers 3..=8 (the counter says 3); q: 1..=6, never saved.
            s.enqueue(p, k + 2, row, 5).unwrap();
            s.enqueue(q, k, row, 5).unwrap();
        }
        s.commit().unwrap();
        let mut o = s.out_streams().unwrap();
        o.sort();
        assert_eq!(o, vec![(p, 9, 2), (q, 7, 0)]);
        // Everything acknowledged and the rows gone: the counter, written then, still holds.
        s.begin();
        s.acked(p, 8).unwrap();
        s.save_out_stream(p, 9, 8).unwrap();
        s.commit().unwrap();
        let mut o = s.out_streams().unwrap();
        o.sort();
        assert_eq!(o, vec![(p, 9, 8), (q, 7, 0)]);
    }
}

#[cfg(test)]
mod run_tests {
    use super::*;

    fn chat(seq: u64) -> Envelope {
        super::tests::env(1, seq, None, Body::Chat { text: format!("m{seq}") })
    }

    fn rows(s: &Sqlite) -> i64 {
        s.conn.query_row("SELECT COUNT(*) FROM outbox", [], |r| r.get(0)).unwrap()
    }

    fn numbers(s: &Sqlite, peer: PeerId, after: u64, limit: usize) -> Vec<u64> {
        s.pending(peer, after, limit).unwrap().into_iter().map(|x| x.0).collect()
    }

    #[test]
    fn a_turn_of_sends_is_one_outbox_row_per_peer_and_acks_trim_it() {
        let mut s = Sqlite::open(None, PeerId([1; 16]), "r").unwrap();
        let (a, b) = (PeerId([8; 16]), PeerId([9; 16]));
        // Turn 1: 1..=100 to both peers, in one millisecond. Turn 2: 101..=150 (another ms).
        for (turn, range, ms) in [(1, 1..=100u64, 7u64), (2, 101..=150, 8)] {
            s.begin();
            for k in range {
                let e = chat(k);
                let row = s.insert(&e, 0).unwrap().unwrap();
                s.enqueue(a, k, row, ms).unwrap();
                s.enqueue(b, k, row, ms).unwrap();
            }
            s.commit().unwrap();
            assert_eq!(rows(&s), 2 * turn, "one row per peer per turn");
        }
        // Every number maps to its own message, across the two runs.
        let got = s.pending(a, 95, 10).unwrap();
        assert_eq!(got.iter().map(|x| x.0).collect::<Vec<_>>(), (96..=105).collect::<Vec<_>>());
        for (lseq, env) in got {
            assert_eq!(codec::decode::<Envelope>(&env).unwrap().id.seq, lseq);
        }
        // The query walks the runs in order: no sort.
        let plan: Vec<String> = s
            .conn
            .prepare(&format!(
                "EXPLAIN QUERY PLAN {}",
                "SELECT o.lseq + (m.id - o.msg), m.env FROM outbox o
                 JOIN messages m ON m.id BETWEEN o.msg AND o.msg + o.n - 1
                 WHERE o.peer = ?1
                   AND o.lseq >= COALESCE((SELECT MAX(lseq) FROM outbox WHERE peer = ?1 AND lseq <= ?2 + 1), 0)
                   AND o.lseq + (m.id - o.msg) > ?2
                 ORDER BY o.lseq, m.id LIMIT ?3"
            ))
            .unwrap()
            .query_map(params![&a.0[..], 0, 10], |r| r.get::<_, String>(3))
            .unwrap()
            .collect::<Result<_, _>>()
            .unwrap();
        assert!(!plan.iter().any(|p| p.contains("TEMP B-TREE")), "{plan:?}");
        // A partial acknowledgement trims the run; the next session resumes after it.
        s.acked(a, 40).unwrap();
        assert_eq!(s.first_pending(a).unwrap(), Some(41));
        assert_eq!(numbers(&s, a, 0, 3), vec![41, 42, 43]);
        assert_eq!(numbers(&s, a, 99, 3), vec![100, 101, 102]);
        s.acked(a, 100).unwrap();
        assert_eq!(s.first_pending(a).unwrap(), Some(101));
        assert_eq!(rows(&s), 3);
        // The size bound drops the oldest: 150 queued for b and 50 for a, at most 20 kept.
        let dropped = |v: Vec<(PeerId, u64)>| v.into_iter().collect::<std::collections::HashMap<_, _>>();
        assert_eq!(dropped(s.purge(0, 20).unwrap()), [(a, 30), (b, 130)].into());
        assert_eq!(numbers(&s, b, 0, 100), (131..=150).collect::<Vec<_>>());
        assert_eq!(numbers(&s, a, 0, 100), (131..=150).collect::<Vec<_>>());
        // The age bound: the runs queued at 8 ms are older than 9.
        assert_eq!(dropped(s.purge(9, 1000).unwrap()), [(a, 20), (b, 20)].into());
        assert_eq!(s.first_pending(b).unwrap(), None);
    }

    #[test]
    fn an_outbox_of_an_older_version_is_read_as_runs_of_one() {
        let dir = std::env::temp_dir().join(format!("lanpeer-runs-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        {
            let conn = Connection::open(dir.join(DB_FILE)).unwrap();
            conn.execute_batch(&SCHEMA.replace("    n INTEGER NOT NULL DEFAULT 1,\n", "")).unwrap();
            assert!(conn.prepare("SELECT n FROM outbox").is_err(), "the old table has no run length");
        }
        let s = Sqlite::open(Some(&dir), PeerId([1; 16]), "r").unwrap();
        let peer = PeerId([9; 16]);
        for k in 1..=3u64 {
            let e = chat(k);
            let row = s.insert(&e, 0).unwrap().unwrap();
            s.conn
                .execute(
                    "INSERT INTO outbox (peer, lseq, msg, queued_ms) VALUES (?1, ?2, ?3, 0)",
                    params![&peer.0[..], k as i64, row],
                )
                .unwrap();
        }
        assert_eq!(numbers(&s, peer, 1, 10), vec![2, 3]);
        drop(s);
        std::fs::remove_dir_all(&dir).unwrap();
    }
}

#[cfg(test)]
mod lazy_tests {
    use super::*;

    fn chat(seq: u64) -> Envelope {
        super::tests::env(7, seq, None, Body::Chat { text: "x".repeat(200) })
    }

    #[test]
    fn a_group_without_writes_opens_no_transaction_and_a_write_does() {
        let mut s = Sqlite::open(None, PeerId([1; 16]), "r").unwrap();
        s.begin();
        assert!(s.has(&MsgId { author: PeerId([7; 16]), seq: 1 }).is_ok());
        assert!(!s.wrote(), "a read opened a transaction");
        s.commit().unwrap();
        s.begin();
        let e = chat(1);
        s.insert(&e, 1).unwrap();
        assert!(s.wrote());
        s.commit().unwrap();
        assert!(!s.wrote());
        // Outside a group, writes commit on their own.
        let e = chat(2);
        s.insert(&e, 1).unwrap();
        assert!(!s.wrote());
        assert_eq!(s.count().unwrap(), 2);
    }

    #[test]
    fn chats_pay_one_index_and_the_exercise_queries_use_the_other() {
        let s = Sqlite::open(None, PeerId([1; 16]), "r").unwrap();
        // A database made by an older version carries the index on every message: opened again,
        // it is gone.
        s.conn.execute_batch("CREATE INDEX messages_room_kind ON messages (room, kind, id)").unwrap();
        s.conn.execute_batch(SCHEMA).unwrap();
        let names: Vec<String> = s
            .conn
            .prepare("SELECT name FROM sqlite_master WHERE type = 'index' AND tbl_name = 'messages'")
            .unwrap()
            .query_map([], |r| r.get(0))
            .unwrap()
            .map(Result::unwrap)
            .collect();
        assert!(names.contains(&"messages_exercises".to_string()), "{names:?}");
        assert!(!names.contains(&"messages_room_kind".to_string()), "{names:?}");
        let plan: Vec<String> = s
            .conn
            .prepare(&format!("EXPLAIN QUERY PLAN {}", s.q_exercises))
            .unwrap()
            .query_map(params!["r"], |r| r.get::<_, String>(3))
            .unwrap()
            .map(Result::unwrap)
            .collect();
        assert!(plan.iter().any(|p| p.contains("messages_exercises")), "{plan:?}");
        let plan: Vec<String> = s
            .conn
            .prepare(&format!("EXPLAIN QUERY PLAN {}", s.q_catchup))
            .unwrap()
            .query_map(params![100, 5000, "r"], |r| r.get::<_, String>(3))
            .unwrap()
            .map(Result::unwrap)
            .collect();
        assert!(plan.iter().any(|p| p.contains("messages_exercises")), "{plan:?}");
    }

    #[test]
    fn an_older_database_without_the_exercises_index_is_read_by_the_tools() {
        let dir = std::env::temp_dir().join(format!("lanpeer-store-old-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let s = Sqlite::open(Some(&dir), PeerId([1; 16]), "r").unwrap();
        let e = Envelope {
            id: MsgId { author: PeerId([7; 16]), seq: 1 },
            author_name: "n".into(),
            sent_ms: 5,
            to: None,
            body: Body::Problem { title: "t".into(), body: "b".into(), private_answers: false },
        };
        s.insert(&e, 1).unwrap();
        s.conn.execute_batch("DROP INDEX messages_exercises").unwrap();
        drop(s);
        let ro = Sqlite::open_readonly(&dir, Some("r")).unwrap();
        let n = ro.exercises().map(|v| v.len());
        let c = ro.catchup_ids(10, 10).map(|v| v.len());
        let _ = std::fs::remove_dir_all(&dir);
        assert_eq!(n.unwrap(), 1);
        assert_eq!(c.unwrap(), 1);
    }

    #[test]
    fn the_catch_up_list_is_remembered_until_a_message_is_stored() {
        let s = Sqlite::open(None, PeerId([1; 16]), "r").unwrap();
        assert!(s.catchup_ids(100, 5000).unwrap().is_empty());
        let e = chat(1);
        s.insert(&e, 1).unwrap();
        assert_eq!(s.catchup_ids(100, 5000).unwrap(), vec![e.id], "stale list after a new message");
        // A repeat stores nothing and changes nothing.
        s.insert(&e, 1).unwrap();
        assert_eq!(s.catchup_ids(100, 5000).unwrap(), vec![e.id]);
        // Another size is another list.
        let e2 = chat(2);
        s.insert(&e2, 1).unwrap();
        assert_eq!(s.catchup_ids(1, 5000).unwrap(), vec![e2.id]);
        assert_eq!(s.catchup_ids(100, 5000).unwrap(), vec![e.id, e2.id]);
    }

    #[test]
    fn the_checkpointer_copies_committed_writes_into_the_database_file() {
        let dir = std::env::temp_dir().join(format!("lanpeer-store-ckpt-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let db = dir.join(DB_FILE);
        let mut s = Sqlite::open(Some(&dir), PeerId([1; 16]), "r").unwrap();
        let before = std::fs::metadata(&db).unwrap().len();
        s.begin();
        for seq in 1..=2000 {
            let e = chat(seq);
            s.insert(&e, 1).unwrap();
        }
        s.commit().unwrap();
        // The rows are in the WAL; the checkpointer, woken by the commit, moves them.
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
        let grown = loop {
            let now = std::fs::metadata(&db).unwrap().len();
            if now > before + 200_000 || std::time::Instant::now() > deadline {
                break now;
            }
            std::thread::sleep(std::time::Duration::from_millis(50));
        };
        drop(s);
        let _ = std::fs::remove_dir_all(&dir);
        assert!(grown > before + 200_000, "database file {before} -> {grown} bytes: no checkpoint");
    }
}

#[cfg(test)]
mod raw_insert_tests {
    use super::*;

    fn row(s: &Sqlite, author: u8, seq: u64) -> Vec<Option<String>> {
        s.conn
            .query_row(
                "SELECT quote(author), author_name, sent_ms, received_ms, quote(recipient), kind, ref, title, text,
                        private_answers, quote(env), room
                 FROM messages WHERE author = ?1 AND seq = ?2",
                params![&[author; 16][..], seq as i64],
                |r| (0..12).map(|i| r.get::<_, Option<rusqlite::types::Value>>(i)).collect::<Result<Vec<_>, _>>(),
            )
            .unwrap()
            .into_iter()
            .map(|v| match v {
                None | Some(rusqlite::types::Value::Null) => None,
                Some(rusqlite::types::Value::Integer(i)) => Some(i.to_string()),
                Some(rusqlite::types::Value::Text(t)) => Some(t),
                Some(other) => Some(format!("{other:?}")),
            })
            .collect()
    }

    #[test]
    fn the_kept_insert_writes_every_column_as_rusqlite_did_and_stays_usable() {
        let s = Sqlite::open(None, PeerId([1; 16]), "5A").unwrap();
        let to = PeerId([4; 16]);
        let p = super::tests::env(
            2,
            1,
            None,
            Body::Problem { title: "t".into(), body: String::new(), private_answers: true },
        );
        let a = super::tests::env(3, 9, Some(to), Body::Answer { problem: p.id, text: "42".into() });
        assert_eq!(s.insert(&p, 77).unwrap(), Some(1));
        assert_eq!(s.insert(&a, 78).unwrap(), Some(2));
        // A repeat changes nothing and says so, however often.
        for _ in 0..3 {
            assert_eq!(s.insert(&p, 79).unwrap(), None);
        }
        let hex = |b: &[u8]| format!("X'{}'", hex::encode_upper(b));
        let some = |t: &str| Some(t.to_string());
        assert_eq!(
            row(&s, 2, 1),
            vec![
                Some(hex(&[2; 16])),
                some("n"),
                some("5"),
                some("77"),
                some("NULL"),
                some("problem"),
                None,
                some("t"),
                some(""),
                some("1"),
                some("X''"),
                some("5A")
            ]
        );
        assert_eq!(
            row(&s, 3, 9),
            vec![
                Some(hex(&[3; 16])),
                some("n"),
                some("5"),
                some("78"),
                Some(hex(&to.0)),
                some("answer"),
                Some(p.id.to_string()),
                None,
                some("42"),
                some("0"),
                some("X''"),
                some("5A")
            ]
        );
        assert_eq!(s.history(10).unwrap().len(), 2);
        // Still prepared after a change of schema (SQLite prepares it again by itself).
        s.conn.execute_batch("CREATE INDEX by_sent ON messages (sent_ms)").unwrap();
        let c = super::tests::env(2, 2, None, Body::Chat { text: "after".into() });
        assert_eq!(s.insert(&c, 80).unwrap(), Some(3));
    }

    #[test]
    fn an_insert_that_fails_says_why_and_the_store_closes_cleanly() {
        let dir = std::env::temp_dir().join(format!("lanpeer-raw-insert-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let c = super::tests::env(2, 1, None, Body::Chat { text: "x".into() });
        // Opened, used, dropped many times: the statement is finalized before its connection
        // closes (rusqlite would panic on a connection that cannot close).
        for seq in 1..=20u64 {
            let s = Sqlite::open(Some(&dir), PeerId([1; 16]), "r").unwrap();
            let c = super::tests::env(2, seq, None, Body::Chat { text: "x".into() });
            assert!(s.insert(&c, 1).unwrap().is_some());
        }
        let ro = Sqlite::open_readonly(&dir, Some("r")).unwrap();
        let c2 = super::tests::env(2, 99, None, Body::Chat { text: "x".into() });
        let e = ro.insert(&c2, 1).unwrap_err().to_string();
        assert!(e.contains("readonly"), "{e}");
        // Used after a failure: reset, and still refusing for the same reason.
        let e = ro.insert(&c, 1).unwrap_err().to_string();
        assert!(e.contains("readonly"), "{e}");
        assert_eq!(ro.count().unwrap(), 20);
        drop(ro);
        // A store moves between threads (the node's runtime may run its actor on any worker).
        let s = Sqlite::open(Some(&dir), PeerId([1; 16]), "r").unwrap();
        let n = std::thread::spawn(move || {
            let c3 = super::tests::env(2, 100, None, Body::Chat { text: "y".into() });
            s.insert(&c3, 1).unwrap();
            s.count().unwrap()
        })
        .join()
        .unwrap();
        assert_eq!(n, 21);
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
