//! The embedded default backend: one SQLite file in WAL mode, one writer
//! connection (SQLite serialises writers anyway) and a small pool of readers.
//! `synchronous=FULL` so a write acknowledged to a client survives a crash.

use crate::dialect::Sqlite as SqliteDialect;
use crate::index::{index_rows, IndexValue};
use crate::sql::{search_sql, SearchSql, SqlParam};
use crate::{
    Change, ChangeOp, ChangePage, ExportRecord, GroupRef, Member, MemberChange, MemberView, Page,
    Query, SecretChange, Store, StoreError, StoreResult, StoredResource, Write,
};
use rusqlite::{params, params_from_iter, Connection, OpenFlags, OptionalExtension, Transaction};
use scim_proto::schema::custom::CustomAttribute;
use scim_proto::schema::{ResourceTypeDef, SchemaRegistry, SharedRegistry};
use std::path::Path;
use std::sync::atomic::{AtomicI64, AtomicUsize, Ordering};
use std::sync::mpsc::{sync_channel, Receiver, SyncSender};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

/// Threads, each with its own connection, for searches, member lists and feed
/// pages (which can be slow). A connection always used by the same thread keeps
/// its page cache in that thread's allocator heap: shared through a mutex by 32
/// request threads, each thread's heap came to hold a cache's worth of freed pages
/// (RSS 675 MiB after 32 concurrent `co` searches at 1M users).
///
/// Two sets, each with its own queue: searches that find their rows by equality
/// lookups (`sql::is_lookup`), and everything that may scan (`co`, ranges,
/// presence, unfiltered or sorted pages, member lists, feed pages). With one queue,
/// `emails.value eq` waited 1.8 s behind `co` searches in the 1M mixed workload.
const LOOKUP_READERS: usize = 2;
const SCAN_READERS: usize = 3;
/// Connections for primary-key lookups only (get, groups_of, existence checks):
/// never held for long, so a GET never waits behind a slow search, and callers
/// may run them on an async worker (`Store::cheap_point_reads`).
const POINT_READERS: usize = 4;
/// How deep nested groups are followed when computing `User.groups`.
const MAX_GROUP_NESTING: i64 = 32;

pub struct SqliteStore {
    registry: Arc<SharedRegistry>,
    /// Write jobs for the writer thread, which owns the one writing connection.
    jobs: Mutex<SyncSender<Job>>,
    /// Reads for the reader threads, which own one connection each.
    lookups: SyncSender<ReadJob>,
    scans: SyncSender<ReadJob>,
    point_readers: Vec<Mutex<Connection>>,
    /// The database file (exports open a connection of their own).
    path: std::path::PathBuf,
    next_reader: AtomicUsize,
    /// Dropping it stops the checkpointer thread.
    _stop_checkpoints: SyncSender<()>,
}

/// Statistics are refreshed after this many commits (a cheap no-op when nothing
/// changed much).
const OPTIMIZE_EVERY: usize = 5_000;

/// Most write jobs committed together.
const MAX_GROUP: usize = 128;

/// What a job hands back once it ran: given the outcome of the group's COMMIT,
/// deliver the job's own result to its caller.
type Deliver = Box<dyn FnOnce(StoreResult<()>) + Send>;

/// A write job: runs inside the group's transaction (or gets the error that kept
/// the transaction from starting).
type Job = Box<dyn FnOnce(StoreResult<&Transaction<'_>>, &SchemaRegistry) -> Deliver + Send>;

/// The writer thread: takes every job waiting, runs each in its own savepoint of
/// one transaction, commits once (one fsync for the group) and only then answers
/// the callers. A failing job rolls back its savepoint alone.
fn writer_loop(
    mut conn: Connection,
    jobs: Receiver<Job>,
    registry: Arc<SharedRegistry>,
    wal: Arc<WalState>,
) {
    while let Ok(first) = jobs.recv() {
        let mut group = vec![first];
        while group.len() < MAX_GROUP {
            match jobs.try_recv() {
                Ok(j) => group.push(j),
                Err(_) => break,
            }
        }
        let registry = registry.load();
        let tx = match conn.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate) {
            Ok(tx) => tx,
            Err(e) => {
                let e = backend(e);
                for job in group {
                    job(Err(e.clone()), &registry)(Ok(()));
                }
                continue;
            }
        };
        let deliveries: Vec<Deliver> = group
            .into_iter()
            .map(|job| job(Ok(&tx), &registry))
            .collect();
        let committed = tx.commit().map_err(backend);
        for deliver in deliveries {
            deliver(committed.clone());
        }
        let n = wal.commits.fetch_add(1, Ordering::Relaxed) + 1;
        if wal.frames.load(Ordering::Relaxed) > wal.restart_frames {
            restart_wal(&conn, &wal);
        }
        if n.is_multiple_of(OPTIMIZE_EVERY) {
            if let Err(e) = conn.execute_batch("PRAGMA optimize;") {
                tracing::warn!(error = %e, "PRAGMA optimize failed");
            }
        }
    }
}

/// Run `f` in a savepoint: on error only its own changes are undone.
fn in_savepoint<T>(
    tx: &Transaction<'_>,
    f: impl FnOnce(&Transaction<'_>) -> StoreResult<T>,
) -> StoreResult<T> {
    let run = |sql: &str| -> StoreResult<()> {
        tx.prepare_cached(sql)
            .and_then(|mut s| s.execute([]))
            .map(|_| ())
            .map_err(backend)
    };
    run("SAVEPOINT job")?;
    let out = f(tx);
    if out.is_err() {
        run("ROLLBACK TO job")?;
    }
    run("RELEASE job")?;
    out
}

/// A read for a reader thread.
type ReadJob = Box<dyn FnOnce(&Connection) + Send>;

/// Reads waiting for a reader thread before callers block on sending more.
const READ_QUEUE: usize = 256;

/// A reader thread: takes the next waiting read and runs it on its connection. A
/// read that panics loses its answer (its caller gets an error), not the thread.
fn reader_loop(conn: Connection, queue: Arc<Mutex<Receiver<ReadJob>>>) {
    loop {
        let job = match queue.lock().map(|q| q.recv()) {
            Ok(Ok(job)) => job,
            _ => return,
        };
        let ran = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| job(&conn)));
        if ran.is_err() {
            tracing::error!("a read panicked on a reader thread");
        }
    }
}

/// `n` reader threads sharing one queue; the sender of that queue.
fn readers(path: &Path, kind: &str, n: usize) -> StoreResult<SyncSender<ReadJob>> {
    let (send, queue) = sync_channel::<ReadJob>(READ_QUEUE);
    let queue = Arc::new(Mutex::new(queue));
    for i in 0..n {
        let conn = open(path, true, READER_CACHE_KIB)?;
        let queue = queue.clone();
        spawn(&format!("scimd-sqlite-{kind}-{i}"), move || {
            reader_loop(conn, queue)
        })?;
    }
    Ok(send)
}

fn readers_stopped() -> StoreError {
    StoreError::Backend("the reader threads have stopped".into())
}

/// How often the checkpointer copies committed WAL frames into the database file.
const CHECKPOINT_EVERY: Duration = Duration::from_millis(100);

/// WAL size (in 4 KiB frames, 64 MiB) past which the writer makes the WAL start
/// over. Under a steady write load the background PASSIVE checkpoints never catch
/// up with the end of the log, so it would only ever grow (11 GB after loading 1M
/// users, reads slowing down as the WAL index grew).
const WAL_RESTART_FRAMES: i64 = 16_384;

/// How long a RESTART checkpoint may wait for readers to leave the WAL. Writes
/// queue meanwhile, so it gives up quickly and is tried again after a later commit.
const RESTART_WAIT: Duration = Duration::from_millis(100);

/// The writing connection's usual wait for locks.
const BUSY_WAIT: Duration = Duration::from_secs(10);

/// Shared by the writer and the checkpointer.
struct WalState {
    commits: AtomicUsize,
    /// WAL length in frames at the checkpointer's last pass.
    frames: AtomicI64,
    /// `WAL_RESTART_FRAMES` unless a test sets it lower.
    restart_frames: i64,
}

/// Between two write transactions, on the writer's own connection (no lock
/// hand-off with another connection): copy what is left of the WAL and wait for
/// readers to leave it, so the next transaction writes from its start again and
/// the file is cut back to `journal_size_limit`.
fn restart_wal(conn: &Connection, wal: &WalState) {
    let outcome = conn
        .busy_timeout(RESTART_WAIT)
        .and_then(|_| conn.query_row("PRAGMA wal_checkpoint(RESTART)", [], |_| Ok(())));
    if let Err(e) = conn.busy_timeout(BUSY_WAIT) {
        tracing::warn!(error = %e, "cannot restore the writer's busy timeout");
    }
    if let Err(e) = outcome {
        tracing::warn!(error = %e, "WAL restart failed");
    }
    // Done or not (a long read can hold the WAL), wait for the checkpointer's next
    // pass before trying again: otherwise every commit would wait RESTART_WAIT
    // while that read lasts.
    wal.frames.store(0, Ordering::Relaxed);
}

/// Copies the WAL into the database file on its own connection and thread, so the
/// writer never does it inside a commit (an automatic checkpoint took 18 % of the
/// writer's time under POST load, with an extra fsync per checkpoint). PASSIVE: it
/// never waits for anyone. Stops when `stop`'s sender is gone.
fn checkpoint_loop(conn: Connection, wal: Arc<WalState>, stop: Receiver<()>) {
    // usize::MAX: a first pass at start, for what an earlier process left in the WAL.
    let mut seen = usize::MAX;
    while let Err(std::sync::mpsc::RecvTimeoutError::Timeout) = stop.recv_timeout(CHECKPOINT_EVERY)
    {
        let now = wal.commits.load(Ordering::Relaxed);
        if now == seen {
            continue;
        }
        seen = now;
        match conn.query_row("PRAGMA wal_checkpoint(PASSIVE)", [], |r| r.get::<_, i64>(1)) {
            Ok(frames) => wal.frames.store(frames, Ordering::Relaxed),
            Err(e) => tracing::warn!(error = %e, "WAL checkpoint failed"),
        }
    }
}

fn spawn(name: &str, f: impl FnOnce() + Send + 'static) -> StoreResult<()> {
    std::thread::Builder::new()
        .name(name.into())
        .spawn(f)
        .map(|_| ())
        .map_err(|e| StoreError::Backend(format!("cannot start the {name} thread: {e}")))
}

fn backend(e: rusqlite::Error) -> StoreError {
    if let rusqlite::Error::SqliteFailure(f, _) = &e {
        if f.code == rusqlite::ErrorCode::ConstraintViolation {
            return StoreError::Uniqueness;
        }
    }
    StoreError::Backend(e.to_string())
}

fn poisoned<T>(_: std::sync::PoisonError<T>) -> StoreError {
    StoreError::Backend("connection lock poisoned".into())
}

fn json_err(e: serde_json::Error) -> StoreError {
    StoreError::Backend(format!("stored document is not valid JSON: {e}"))
}

/// Page cache of each connection, KiB. Readers get a moderate one (the OS caches
/// the file too, and resident memory stays bounded: the 1M-user benchmark must stay
/// under 300 MB); point readers only need the upper levels of the id index. The
/// writer's stays small: SQLite walks the whole page cache when a write
/// transaction ends (pcache1TruncateUnsafe), so a big writer cache makes every
/// commit slower (12% of CPU at 64 MiB).
const READER_CACHE_KIB: u32 = 12_288;
const POINT_READER_CACHE_KIB: u32 = 4_096;
const WRITER_CACHE_KIB: u32 = 8_192;

fn open(path: &Path, read_only: bool, cache_kib: u32) -> StoreResult<Connection> {
    let flags = if read_only {
        OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX
    } else {
        OpenFlags::SQLITE_OPEN_READ_WRITE
            | OpenFlags::SQLITE_OPEN_CREATE
            | OpenFlags::SQLITE_OPEN_NO_MUTEX
    };
    let conn = Connection::open_with_flags(path, flags).map_err(backend)?;
    conn.busy_timeout(BUSY_WAIT).map_err(backend)?;
    conn.execute_batch(&format!(
        "PRAGMA journal_mode=WAL; PRAGMA synchronous=FULL; PRAGMA foreign_keys=OFF;
         PRAGMA cache_size=-{cache_kib}; PRAGMA temp_store=MEMORY;"
    ))
    .map_err(backend)?;
    Ok(conn)
}

impl SqliteStore {
    /// Open (creating if needed) the database file and apply migrations.
    pub fn open(path: &Path, registry: Arc<SharedRegistry>) -> StoreResult<Self> {
        Self::open_with_wal_limit(path, registry, WAL_RESTART_FRAMES)
    }

    /// `open`, with the WAL started over past `restart_frames` frames instead of
    /// `WAL_RESTART_FRAMES` (tests use a small limit).
    pub fn open_with_wal_limit(
        path: &Path,
        registry: Arc<SharedRegistry>,
        restart_frames: i64,
    ) -> StoreResult<Self> {
        let writer = open(path, false, WRITER_CACHE_KIB)?;
        migrate(&writer)?;
        // Planner statistics: without them SQLite may walk every resource of a type
        // instead of driving a filtered search from attr_index. analysis_limit makes
        // ANALYZE sample each index instead of reading all of it (a full pass over
        // 15 million index rows held up the start of a 1M-user server).
        writer
            .execute_batch("PRAGMA analysis_limit=1000; PRAGMA optimize=0x10002;")
            .map_err(backend)?;
        let pool = |n: usize, cache_kib: u32| {
            (0..n)
                .map(|_| open(path, true, cache_kib).map(Mutex::new))
                .collect::<StoreResult<Vec<_>>>()
        };
        let point_readers = pool(POINT_READERS, POINT_READER_CACHE_KIB)?;
        let lookups = readers(path, "lookup", LOOKUP_READERS)?;
        let scans = readers(path, "scan", SCAN_READERS)?;
        // The WAL file is cut back to 64 MiB when it starts over.
        writer
            .execute_batch("PRAGMA wal_autocheckpoint=0; PRAGMA journal_size_limit=67108864;")
            .map_err(backend)?;
        let checkpointer = open(path, false, POINT_READER_CACHE_KIB)?;
        let wal = Arc::new(WalState {
            commits: AtomicUsize::new(0),
            frames: AtomicI64::new(0),
            restart_frames,
        });
        let (stop_checkpoints, stop) = sync_channel::<()>(0);
        let counted = wal.clone();
        spawn("scimd-sqlite-checkpoint", move || {
            checkpoint_loop(checkpointer, counted, stop)
        })?;
        let (send, receive) = sync_channel::<Job>(4 * MAX_GROUP);
        let for_writer = registry.clone();
        spawn("scimd-sqlite-writer", move || {
            writer_loop(writer, receive, for_writer, wal)
        })?;
        Ok(SqliteStore {
            registry,
            jobs: Mutex::new(send),
            lookups,
            scans,
            point_readers,
            path: path.to_path_buf(),
            next_reader: AtomicUsize::new(0),
            _stop_checkpoints: stop_checkpoints,
        })
    }

    /// Run `f` on the next free reader thread of `queue` and wait for its answer.
    /// `f` owns what it needs: it runs on another thread.
    fn read<T: Send + 'static>(
        queue: &SyncSender<ReadJob>,
        f: impl FnOnce(&Connection) -> StoreResult<T> + Send + 'static,
    ) -> StoreResult<T> {
        let (done, answer) = sync_channel::<StoreResult<T>>(1);
        let job: ReadJob = Box::new(move |conn| {
            let _ = done.send(f(conn));
        });
        queue.send(job).map_err(|_| readers_stopped())?;
        answer.recv().map_err(|_| readers_stopped())?
    }

    fn point_reader(&self) -> StoreResult<MutexGuard<'_, Connection>> {
        self.free_connection(&self.point_readers)
    }

    /// A connection of `pool` nobody holds, else wait for one (round robin).
    fn free_connection<'a>(
        &self,
        pool: &'a [Mutex<Connection>],
    ) -> StoreResult<MutexGuard<'a, Connection>> {
        for conn in pool {
            if let Ok(guard) = conn.try_lock() {
                return Ok(guard);
            }
        }
        let i = self.next_reader.fetch_add(1, Ordering::Relaxed) % pool.len();
        pool[i].lock().map_err(poisoned)
    }

    /// Run `f` in the writer thread's next group commit and wait until that group
    /// is durable. `f` owns what it needs: it runs on another thread.
    fn write<T: Send + 'static>(
        &self,
        f: impl FnOnce(&Transaction<'_>, &SchemaRegistry) -> StoreResult<T> + Send + 'static,
    ) -> StoreResult<T> {
        let (done, result) = sync_channel::<StoreResult<T>>(1);
        let job: Job = Box::new(move |tx, registry| {
            let out = tx.and_then(|tx| in_savepoint(tx, |tx| f(tx, registry)));
            Box::new(move |committed: StoreResult<()>| {
                let _ = done.send(committed.and(out));
            })
        });
        self.jobs
            .lock()
            .map_err(poisoned)?
            .send(job)
            .map_err(|_| StoreError::Backend("the writer thread has stopped".into()))?;
        result
            .recv()
            .map_err(|_| StoreError::Backend("the writer thread has stopped".into()))?
    }
}

/// Apply the migrations not yet applied, tracked by `PRAGMA user_version`.
pub fn migrate(conn: &Connection) -> StoreResult<()> {
    let applied: usize = conn
        .query_row("PRAGMA user_version", [], |r| r.get::<_, i64>(0))
        .map_err(backend)? as usize;
    for (i, step) in crate::ddl::SQLITE_MIGRATIONS
        .iter()
        .enumerate()
        .skip(applied)
    {
        conn.execute_batch(&format!(
            "BEGIN; {step}; PRAGMA user_version = {}; COMMIT;",
            i + 1
        ))
        .map_err(backend)?;
    }
    Ok(())
}

/// Insert a new resource with its index, member and change-feed rows. The
/// `resources` row goes first: a uniqueness failure then leaves nothing behind.
fn insert_resource(
    tx: &Transaction<'_>,
    registry: &SchemaRegistry,
    rt: &ResourceTypeDef,
    w: Write,
    doc: &str,
) -> StoreResult<StoredResource> {
    let secret = w.secret.new_hash();
    tx.prepare_cached(
        "INSERT INTO resources (id, rtype, doc, version, created, modified, unique_key, display, secret)
         VALUES (?1, ?2, ?3, 1, ?4, ?5, ?6, ?7, ?8)",
    )
    .map_err(backend)?
    .execute(params![
        w.id,
        rt.name,
        doc,
        crate::db_time(w.created),
        crate::db_time(w.modified),
        w.unique_key,
        w.display,
        secret
    ])
    .map_err(backend)?;
    write_index(tx, registry, rt, &w)?;
    write_members(tx, &w.id, &w.members)?;
    record_change(
        tx,
        &w.id,
        &rt.name,
        ChangeOp::Created,
        1,
        w.modified,
        Some(doc),
    )?;
    Ok(StoredResource {
        id: w.id,
        rtype: rt.name.clone(),
        doc: w.doc,
        version: 1,
    })
}

fn write_index(
    tx: &Transaction<'_>,
    registry: &SchemaRegistry,
    rt: &ResourceTypeDef,
    write: &Write,
) -> StoreResult<()> {
    tx.execute("DELETE FROM attr_index WHERE res_id = ?1", [&write.id])
        .map_err(backend)?;
    let mut stmt = tx
        .prepare_cached(
            "INSERT INTO attr_index (res_id, rtype, path, elem, v_text, v_num, v_bool)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
        )
        .map_err(backend)?;
    for row in index_rows(registry, rt, &write.doc) {
        let (t, n, b) = match row.value {
            IndexValue::Text(t) => (Some(t), None, None),
            IndexValue::Num(n) => (None, Some(n), None),
            IndexValue::Bool(b) => (None, None, Some(b)),
        };
        stmt.execute(params![write.id, rt.name, row.path, row.elem, t, n, b])
            .map_err(backend)?;
    }
    Ok(())
}

fn write_members(tx: &Transaction<'_>, group_id: &str, change: &MemberChange) -> StoreResult<()> {
    let (add, remove): (&[Member], &[String]) = match change {
        MemberChange::Keep => return Ok(()),
        MemberChange::Replace(all) => {
            tx.execute("DELETE FROM members WHERE group_id = ?1", [group_id])
                .map_err(backend)?;
            (all, &[])
        }
        MemberChange::Delta { add, remove } => (add, remove),
    };
    let mut del = tx
        .prepare_cached("DELETE FROM members WHERE group_id = ?1 AND member_id = ?2")
        .map_err(backend)?;
    for id in remove {
        del.execute(params![group_id, id]).map_err(backend)?;
    }
    let mut ins = tx
        .prepare_cached(
            "INSERT OR IGNORE INTO members (group_id, member_id, member_type) VALUES (?1, ?2, ?3)",
        )
        .map_err(backend)?;
    for m in add {
        ins.execute(params![group_id, m.id, m.kind])
            .map_err(backend)?;
    }
    Ok(())
}

fn record_change(
    tx: &Transaction<'_>,
    id: &str,
    rtype: &str,
    op: ChangeOp,
    version: i64,
    at: chrono::DateTime<chrono::Utc>,
    doc: Option<&str>,
) -> StoreResult<()> {
    tx.prepare_cached(
        "INSERT INTO changes (res_id, rtype, op, version, at, doc) VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
    )
    .map_err(backend)?
    .execute(params![
        id,
        rtype,
        op.as_str(),
        version,
        crate::db_time(at),
        doc
    ])
    .map_err(backend)?;
    Ok(())
}

fn parse_position(after: Option<&str>) -> StoreResult<i64> {
    match after {
        None => Ok(0),
        Some(p) => p
            .strip_prefix("s:")
            .and_then(|n| n.parse::<i64>().ok())
            .filter(|n| *n >= 0)
            .ok_or_else(|| StoreError::BadCursor("not a position of this server".into())),
    }
}

fn stored(id: String, rtype: String, doc: &str, version: i64) -> StoreResult<StoredResource> {
    Ok(StoredResource {
        id,
        rtype,
        doc: serde_json::from_str(doc).map_err(json_err)?,
        version,
    })
}

fn to_sql(p: &SqlParam) -> rusqlite::types::Value {
    use rusqlite::types::Value as V;
    match p {
        SqlParam::Text(t) => V::Text(t.clone()),
        SqlParam::Num(n) => V::Real(*n),
        SqlParam::Bool(b) => V::Integer(i64::from(*b)),
        SqlParam::Int(i) => V::Integer(*i),
    }
}

/// Run a compiled search: the page, then the count unless the page tells it.
fn run_search(conn: &Connection, s: &SearchSql, q: &Query, rtype: &str) -> StoreResult<Page> {
    let bind = |n: usize| params_from_iter(s.params[..n].iter().map(to_sql));
    let mut rows: Vec<crate::model::PageRow> = Vec::new();
    if let Some(page_sql) = &s.page_sql {
        let mut stmt = conn.prepare_cached(page_sql).map_err(backend)?;
        let found = stmt
            .query_map(bind(s.params.len()), |r| {
                Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?))
            })
            .map_err(backend)?;
        for row in found {
            rows.push(row.map_err(backend)?);
        }
    }
    let total = match crate::model::total_from_page(q, rows.len()) {
        Some(t) => t,
        None => conn
            .prepare_cached(&s.count_sql)
            .map_err(backend)?
            .query_row(bind(s.count_params), |r| r.get(0))
            .map_err(backend)?,
    };
    crate::model::assemble_page(rtype, total, rows, s.reversed)
}

fn members_of(
    conn: &Connection,
    group_id: &str,
    with_display: bool,
) -> StoreResult<Vec<MemberView>> {
    let sql = if with_display {
        "SELECT m.member_id, m.member_type, r.display FROM members m
         LEFT JOIN resources r ON r.id = m.member_id
         WHERE m.group_id = ?1 ORDER BY m.rowid"
    } else {
        "SELECT m.member_id, m.member_type, NULL FROM members m
         WHERE m.group_id = ?1 ORDER BY m.rowid"
    };
    let mut stmt = conn.prepare_cached(sql).map_err(backend)?;
    let rows = stmt
        .query_map([group_id], |r| {
            Ok(MemberView {
                id: r.get(0)?,
                kind: r.get(1)?,
                display: r.get(2)?,
            })
        })
        .map_err(backend)?;
    rows.collect::<Result<_, _>>().map_err(backend)
}

/// A page of the change feed after position `from`.
fn changes_after(
    conn: &Connection,
    from: i64,
    resumed: bool,
    limit: usize,
) -> StoreResult<ChangePage> {
    let pruned: i64 = conn
        .query_row(
            "SELECT value FROM feed_state WHERE name = 'pruned_through'",
            [],
            |r| r.get(0),
        )
        .optional()
        .map_err(backend)?
        .unwrap_or(0);
    if resumed && from < pruned {
        return Err(StoreError::BadCursor(
            "the changes after this position are no longer retained".into(),
        ));
    }
    let mut stmt = conn
        .prepare_cached(
            "SELECT seq, res_id, rtype, op, version, at, doc FROM changes
             WHERE seq > ?1 ORDER BY seq LIMIT ?2",
        )
        .map_err(backend)?;
    let rows = stmt
        .query_map(params![from.max(pruned), limit as i64 + 1], |r| {
            Ok((
                r.get::<_, i64>(0)?,
                r.get::<_, String>(1)?,
                r.get::<_, String>(2)?,
                r.get::<_, String>(3)?,
                r.get::<_, i64>(4)?,
                r.get::<_, String>(5)?,
                r.get::<_, Option<String>>(6)?,
            ))
        })
        .map_err(backend)?;
    let mut changes = Vec::new();
    let mut last = from.max(pruned);
    let mut more = false;
    for row in rows {
        let (seq, id, rtype, op, version, at, doc) = row.map_err(backend)?;
        if changes.len() == limit {
            more = true;
            break;
        }
        last = seq;
        changes.push(Change {
            op: ChangeOp::parse(&op)
                .ok_or_else(|| StoreError::Backend(format!("unknown change op '{op}'")))?,
            id,
            rtype,
            version,
            at,
            doc: doc
                .map(|d| serde_json::from_str(&d))
                .transpose()
                .map_err(json_err)?,
        });
    }
    Ok(ChangePage {
        changes,
        next: format!("s:{last}"),
        more,
    })
}

impl Store for SqliteStore {
    fn cheap_point_reads(&self) -> bool {
        true
    }

    fn create(&self, rt: &ResourceTypeDef, w: Write) -> StoreResult<StoredResource> {
        let doc = serde_json::to_string(&w.doc).map_err(json_err)?;
        let rt = rt.clone();
        self.write(move |tx, registry| insert_resource(tx, registry, &rt, w, &doc))
    }

    fn create_many(
        &self,
        items: Vec<(ResourceTypeDef, Write)>,
        max_failures: usize,
    ) -> Vec<StoreResult<StoredResource>> {
        let n = items.len();
        let prepared: Vec<_> = items
            .into_iter()
            .map(|(rt, w)| {
                let doc = serde_json::to_string(&w.doc).map_err(json_err);
                (rt, w, doc)
            })
            .collect();
        let outcome = self.write(move |tx, registry| {
            let mut out = Vec::with_capacity(prepared.len());
            let mut failures = 0;
            for (rt, w, doc) in prepared {
                if failures >= max_failures {
                    break;
                }
                // No savepoint per item (they took half the writer's time in a
                // 1,000-user batch): an item's only expected failure is the
                // uniqueness check of its first statement, which SQLite undoes by
                // itself; any other error fails the whole batch.
                let r = match doc.map(|doc| insert_resource(tx, registry, &rt, w, &doc)) {
                    Err(e) => Err(e),
                    Ok(Err(StoreError::Backend(e))) => return Err(StoreError::Backend(e)),
                    Ok(r) => r,
                };
                failures += usize::from(r.is_err());
                out.push(r);
            }
            Ok(out)
        });
        // Nothing is durable when the shared commit failed: every item failed.
        outcome.unwrap_or_else(|e| vec![Err(e); n])
    }

    fn get(&self, rt: &ResourceTypeDef, id: &str) -> StoreResult<StoredResource> {
        let conn = self.point_reader()?;
        let row = conn
            .prepare_cached("SELECT doc, version FROM resources WHERE id = ?1 AND rtype = ?2")
            .map_err(backend)?
            .query_row(params![id, rt.name], |r| {
                Ok((r.get::<_, String>(0)?, r.get::<_, i64>(1)?))
            })
            .optional()
            .map_err(backend)?;
        let (doc, version) = row.ok_or(StoreError::NotFound)?;
        stored(id.to_string(), rt.name.clone(), &doc, version)
    }

    fn find_unique(&self, rt: &ResourceTypeDef, key: &str) -> StoreResult<Option<StoredResource>> {
        let conn = self.point_reader()?;
        let row = conn
            .prepare_cached(
                "SELECT id, doc, version FROM resources WHERE rtype = ?1 AND unique_key = ?2",
            )
            .map_err(backend)?
            .query_row(params![rt.name, key], |r| {
                Ok((
                    r.get::<_, String>(0)?,
                    r.get::<_, String>(1)?,
                    r.get::<_, i64>(2)?,
                ))
            })
            .optional()
            .map_err(backend)?;
        row.map(|(id, doc, version)| stored(id, rt.name.clone(), &doc, version))
            .transpose()
    }

    fn replace(
        &self,
        rt: &ResourceTypeDef,
        w: Write,
        if_version: Option<i64>,
    ) -> StoreResult<StoredResource> {
        let doc = serde_json::to_string(&w.doc).map_err(json_err)?;
        let rt = rt.clone();
        self.write(move |tx, registry| {
            let current: i64 = tx
                .query_row(
                    "SELECT version FROM resources WHERE id = ?1 AND rtype = ?2",
                    params![w.id, rt.name],
                    |r| r.get(0),
                )
                .optional()
                .map_err(backend)?
                .ok_or(StoreError::NotFound)?;
            if if_version.is_some_and(|v| v != current) {
                return Err(StoreError::VersionMismatch);
            }
            let next = current + 1;
            tx.execute(
                "UPDATE resources SET doc = ?2, version = ?3, modified = ?4, unique_key = ?5,
                        display = ?6, secret = CASE WHEN ?7 THEN ?8 ELSE secret END
                 WHERE id = ?1",
                params![
                    w.id,
                    doc,
                    next,
                    crate::db_time(w.modified),
                    w.unique_key,
                    w.display,
                    matches!(w.secret, SecretChange::Set(_)),
                    w.secret.new_hash()
                ],
            )
            .map_err(backend)?;
            write_index(tx, registry, &rt, &w)?;
            write_members(tx, &w.id, &w.members)?;
            record_change(
                tx,
                &w.id,
                &rt.name,
                ChangeOp::Updated,
                next,
                w.modified,
                Some(&doc),
            )?;
            Ok(StoredResource {
                id: w.id,
                rtype: rt.name,
                doc: w.doc,
                version: next,
            })
        })
    }

    fn delete(
        &self,
        rt: &ResourceTypeDef,
        id: &str,
        if_version: Option<i64>,
        at: chrono::DateTime<chrono::Utc>,
    ) -> StoreResult<()> {
        let (id, rtype) = (id.to_string(), rt.name.clone());
        self.write(move |tx, _| {
            let (id, rt_name) = (id.as_str(), rtype.as_str());
            let current: i64 = tx
                .query_row(
                    "SELECT version FROM resources WHERE id = ?1 AND rtype = ?2",
                    params![id, rt_name],
                    |r| r.get(0),
                )
                .optional()
                .map_err(backend)?
                .ok_or(StoreError::NotFound)?;
            if if_version.is_some_and(|v| v != current) {
                return Err(StoreError::VersionMismatch);
            }
            tx.execute("DELETE FROM resources WHERE id = ?1", [id])
                .map_err(backend)?;
            tx.execute("DELETE FROM attr_index WHERE res_id = ?1", [id])
                .map_err(backend)?;
            tx.execute(
                "DELETE FROM members WHERE group_id = ?1 OR member_id = ?1",
                [id],
            )
            .map_err(backend)?;
            record_change(tx, id, rt_name, ChangeOp::Deleted, current, at, None)
        })
    }

    fn search(&self, rt: &ResourceTypeDef, q: &Query) -> StoreResult<Page> {
        let s =
            search_sql(&SqliteDialect, &self.registry.load(), rt, q).map_err(StoreError::Query)?;
        let (q, rtype) = (q.clone(), rt.name.clone());
        let queue = match &q.filter {
            Some(f) if crate::sql::is_lookup(f) => &self.lookups,
            _ => &self.scans,
        };
        Self::read(queue, move |conn| run_search(conn, &s, &q, &rtype))
    }

    fn members(&self, group_id: &str, with_display: bool) -> StoreResult<Vec<MemberView>> {
        let group_id = group_id.to_string();
        Self::read(&self.scans, move |conn| {
            members_of(conn, &group_id, with_display)
        })
    }

    fn groups_of(&self, member_id: &str) -> StoreResult<Vec<GroupRef>> {
        let conn = self.point_reader()?;
        // Depth-capped walk up the membership graph; UNION stops at cycles. CROSS
        // JOIN fixes the join order: otherwise SQLite may scan every resource and
        // probe the CTE, making each rendered User cost O(all resources).
        let mut stmt = conn
            .prepare_cached(
                "WITH RECURSIVE up(group_id, depth) AS (
                     SELECT group_id, 0 FROM members WHERE member_id = ?1
                     UNION
                     SELECT m.group_id, up.depth + 1 FROM members m
                     JOIN up ON m.member_id = up.group_id
                     WHERE up.depth < ?2
                 )
                 SELECT up.group_id, r.display, min(up.depth) FROM up
                 CROSS JOIN resources r ON r.id = up.group_id
                 WHERE up.group_id <> ?1
                 GROUP BY up.group_id, r.display
                 ORDER BY min(up.depth), r.display",
            )
            .map_err(backend)?;
        let rows = stmt
            .query_map(params![member_id, MAX_GROUP_NESTING], |r| {
                Ok(GroupRef {
                    id: r.get(0)?,
                    display: r.get(1)?,
                    direct: r.get::<_, i64>(2)? == 0,
                })
            })
            .map_err(backend)?;
        rows.collect::<Result<_, _>>().map_err(backend)
    }

    fn members_among(&self, group_id: &str, ids: &[String]) -> StoreResult<Vec<String>> {
        let conn = self.point_reader()?;
        let mut stmt = conn
            .prepare_cached("SELECT 1 FROM members WHERE group_id = ?1 AND member_id = ?2")
            .map_err(backend)?;
        let mut found = Vec::new();
        for id in ids {
            if stmt.exists(params![group_id, id]).map_err(backend)? {
                found.push(id.clone());
            }
        }
        Ok(found)
    }

    fn changes(&self, after: Option<&str>, limit: usize) -> StoreResult<ChangePage> {
        let from = parse_position(after)?;
        let resumed = after.is_some();
        Self::read(&self.scans, move |conn| {
            changes_after(conn, from, resumed, limit)
        })
    }

    fn prune_changes(&self, before: chrono::DateTime<chrono::Utc>) -> StoreResult<u64> {
        self.write(move |tx, _| {
            let through: Option<i64> = tx
                // INDEXED BY: left to itself SQLite answers max(seq) by walking the
                // table backwards from the newest change, reading every retained
                // document (minutes of I/O at 1M changes, at every start).
                .query_row(
                    "SELECT max(seq) FROM changes INDEXED BY changes_at WHERE at < ?1",
                    [crate::db_time(before)],
                    |r| r.get(0),
                )
                .map_err(backend)?;
            let Some(through) = through else {
                return Ok(0);
            };
            let n = tx
                .execute("DELETE FROM changes WHERE seq <= ?1", [through])
                .map_err(backend)?;
            tx.execute(
                "INSERT INTO feed_state (name, value) VALUES ('pruned_through', ?1)
                 ON CONFLICT (name) DO UPDATE SET value = max(value, excluded.value)",
                [through],
            )
            .map_err(backend)?;
            Ok(n as u64)
        })
    }

    fn custom_attributes(&self) -> StoreResult<Vec<CustomAttribute>> {
        Self::read(&self.lookups, |conn| {
            let mut stmt = conn
                .prepare_cached("SELECT definition FROM custom_attributes ORDER BY rowid")
                .map_err(backend)?;
            let rows = stmt
                .query_map([], |r| r.get::<_, String>(0))
                .map_err(backend)?;
            let mut out = Vec::new();
            for row in rows {
                out.push(serde_json::from_str(&row.map_err(backend)?).map_err(json_err)?);
            }
            Ok(out)
        })
    }

    fn add_custom_attribute(&self, attr: &CustomAttribute) -> StoreResult<()> {
        let definition = serde_json::to_string(attr).map_err(json_err)?;
        let key = attr.name.to_lowercase();
        self.write(move |tx, _| {
            tx.execute(
                "INSERT INTO custom_attributes (name_key, definition) VALUES (?1, ?2)",
                params![key, definition],
            )
            .map_err(backend)?;
            Ok(())
        })
    }

    fn remove_custom_attribute(&self, name: &str) -> StoreResult<()> {
        let key = name.to_lowercase();
        self.write(move |tx, _| {
            let n = tx
                .execute("DELETE FROM custom_attributes WHERE name_key = ?1", [key])
                .map_err(backend)?;
            if n == 0 {
                return Err(StoreError::NotFound);
            }
            Ok(())
        })
    }

    fn existing(&self, ids: &[String]) -> StoreResult<Vec<Member>> {
        let conn = self.point_reader()?;
        let mut stmt = conn
            .prepare_cached("SELECT rtype FROM resources WHERE id = ?1")
            .map_err(backend)?;
        let mut found = Vec::new();
        for id in ids {
            if let Some(kind) = stmt
                .query_row([id], |r| r.get::<_, String>(0))
                .optional()
                .map_err(backend)?
            {
                found.push(Member {
                    id: id.clone(),
                    kind,
                });
            }
        }
        Ok(found)
    }

    fn export(&self, sink: &mut dyn FnMut(ExportRecord) -> StoreResult<()>) -> StoreResult<u64> {
        // A connection of its own (an export can take minutes), in one read
        // transaction: a consistent snapshot however long the sink takes.
        let mut conn = open(&self.path, true, READER_CACHE_KIB)?;
        let tx = conn.transaction().map_err(backend)?;
        let mut rows = tx
            .prepare(
                "SELECT id, rtype, doc, version, created, modified, unique_key, display, secret
                 FROM resources ORDER BY rtype, created, id",
            )
            .map_err(backend)?;
        let mut members = tx
            .prepare(
                "SELECT member_id, member_type FROM members WHERE group_id = ?1 ORDER BY rowid",
            )
            .map_err(backend)?;
        let mut it = rows.query([]).map_err(backend)?;
        let mut n = 0;
        while let Some(r) = it.next().map_err(backend)? {
            let id: String = r.get(0).map_err(backend)?;
            let doc: String = r.get(2).map_err(backend)?;
            let member_rows = members
                .query_map([&id], |m| {
                    Ok(Member {
                        id: m.get(0)?,
                        kind: m.get(1)?,
                    })
                })
                .map_err(backend)?
                .collect::<Result<Vec<_>, _>>()
                .map_err(backend)?;
            sink(ExportRecord {
                rtype: r.get(1).map_err(backend)?,
                doc: serde_json::from_str(&doc).map_err(json_err)?,
                version: r.get(3).map_err(backend)?,
                created: crate::parse_db_time(&r.get::<_, String>(4).map_err(backend)?)?,
                modified: crate::parse_db_time(&r.get::<_, String>(5).map_err(backend)?)?,
                unique_key: r.get(6).map_err(backend)?,
                display: r.get(7).map_err(backend)?,
                secret: r.get(8).map_err(backend)?,
                members: member_rows,
                id,
            })?;
            n += 1;
        }
        Ok(n)
    }

    fn import(&self, batch: &[ExportRecord]) -> StoreResult<()> {
        let batch = batch.to_vec();
        self.write(move |tx, registry| {
            let mut put = tx
                .prepare_cached(
                    "INSERT INTO resources (id, rtype, doc, version, created, modified, unique_key, display, secret)
                     VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)
                     ON CONFLICT (id) DO UPDATE SET rtype = excluded.rtype, doc = excluded.doc,
                        version = excluded.version, created = excluded.created,
                        modified = excluded.modified, unique_key = excluded.unique_key,
                        display = excluded.display, secret = excluded.secret",
                )
                .map_err(backend)?;
            for rec in &batch {
                let rt = registry.resource_type(&rec.rtype).ok_or_else(|| {
                    StoreError::Backend(format!("unknown resource type '{}'", rec.rtype))
                })?;
                let doc = serde_json::to_string(&rec.doc).map_err(json_err)?;
                put.execute(params![
                    rec.id,
                    rec.rtype,
                    doc,
                    rec.version,
                    crate::db_time(rec.created),
                    crate::db_time(rec.modified),
                    rec.unique_key,
                    rec.display,
                    rec.secret
                ])
                .map_err(backend)?;
                let w = crate::import_write(rec);
                write_index(tx, registry, rt, &w)?;
                write_members(tx, &rec.id, &w.members)?;
            }
            Ok(())
        })
    }
}
