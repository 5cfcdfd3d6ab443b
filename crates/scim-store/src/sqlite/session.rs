//! Connections and the threads that own them: the writer (group commit), the
//! reader sets, the point-read connections and the WAL checkpointer.

use super::migrate::migrate;
use super::{backend, poisoned, SqliteStore};
use crate::{StoreError, StoreResult};
use rusqlite::{Connection, OpenFlags, Transaction};
use scim_proto::schema::{SchemaRegistry, SharedRegistry};
use std::path::Path;
use std::sync::atomic::{AtomicI64, AtomicUsize, Ordering};
use std::sync::mpsc::{sync_channel, Receiver, SyncSender};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

/// Threads, each with its own connection, for searches, member lists and feed
/// pages (which can be slow). A connection always used by the same thread keeps
/// its page cache in that thread's allocator heap: shared through a mutex by 32
/// request threads, each thread's heap came to hold a cache's worth of freed pages
/// (docs/benchmarks.md, "Memory").
///
/// Two sets, each with its own queue: searches that find their rows by equality
/// lookups (`sql::is_lookup`), and everything that may scan (`co`, ranges,
/// presence, unfiltered or sorted pages, member lists, feed pages). With one queue,
/// `emails.value eq` waited 1.8 s behind `co` searches in the 1M mixed workload.
pub(super) const LOOKUP_READERS: usize = 2;
pub(super) const SCAN_READERS: usize = 3;
/// Connections for primary-key lookups only (get, groups_of, existence checks):
/// never held for long, so a GET never waits behind a slow search, and callers
/// may run them on an async worker (`ResourceStore::cheap_point_reads`).
pub(super) const POINT_READERS: usize = 4;

/// Statistics are refreshed after this many commits (a cheap no-op when nothing
/// changed much).
pub(super) const OPTIMIZE_EVERY: usize = 5_000;

/// Most write jobs committed together.
pub(super) const MAX_GROUP: usize = 128;

/// What a job hands back once it ran: given the outcome of the group's COMMIT,
/// deliver the job's own result to its caller.
pub(super) type Deliver = Box<dyn FnOnce(StoreResult<()>) + Send>;

/// A write job: runs inside the group's transaction (or gets the error that kept
/// the transaction from starting).
pub(super) type Job =
    Box<dyn FnOnce(StoreResult<&Transaction<'_>>, &SchemaRegistry) -> Deliver + Send>;

/// The writer thread: takes every job waiting, runs each in its own savepoint of
/// one transaction, commits once (one fsync for the group) and only then answers
/// the callers. A failing job rolls back its savepoint alone.
pub(super) fn writer_loop(
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
        metrics::histogram!("scimd_store_commit_batch_size").record(group.len() as f64);
        let started = std::time::Instant::now();
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
        // On failure the transaction rolls back (dropped): every job fails.
        let committed = super::trigrams::flush(&tx).and_then(|()| tx.commit().map_err(backend));
        metrics::histogram!("scimd_store_commit_seconds").record(started.elapsed().as_secs_f64());
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

/// A job waiting in a queue: counted in the queue's depth until it starts, and
/// its wait recorded then.
struct Waiting {
    queue: &'static str,
    since: std::time::Instant,
}

impl Waiting {
    fn start(queue: &'static str) -> Waiting {
        metrics::gauge!("scimd_store_queue_depth", "queue" => queue).increment(1.0);
        Waiting {
            queue,
            since: std::time::Instant::now(),
        }
    }

    fn end(self) {
        metrics::gauge!("scimd_store_queue_depth", "queue" => self.queue).decrement(1.0);
        metrics::histogram!("scimd_store_wait_seconds", "queue" => self.queue)
            .record(self.since.elapsed().as_secs_f64());
    }
}

/// Run `f` in a savepoint: on error only its own changes are undone.
pub(super) fn in_savepoint<T>(
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
pub(super) type ReadJob = Box<dyn FnOnce(&Connection) + Send>;

/// Reads waiting for a reader thread before callers block on sending more.
pub(super) const READ_QUEUE: usize = 256;

/// A reader thread: takes the next waiting read and runs it on its connection. A
/// read that panics loses its answer (its caller gets an error), not the thread.
pub(super) fn reader_loop(conn: Connection, queue: Arc<Mutex<Receiver<ReadJob>>>) {
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
pub(super) fn readers(path: &Path, kind: &str, n: usize) -> StoreResult<SyncSender<ReadJob>> {
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

pub(super) fn readers_stopped() -> StoreError {
    StoreError::Backend("the reader threads have stopped".into())
}

/// How often the checkpointer copies committed WAL frames into the database file.
pub(super) const CHECKPOINT_EVERY: Duration = Duration::from_millis(100);

/// WAL size (in 4 KiB frames, 64 MiB) past which the writer makes the WAL start
/// over. Under a steady write load the background PASSIVE checkpoints never catch
/// up with the end of the log, so it would only ever grow, reads slowing down as
/// the WAL index grows (docs/benchmarks.md, "WAL checkpoints off the commit path").
pub(super) const WAL_RESTART_FRAMES: i64 = 16_384;

/// How long a RESTART checkpoint may wait for readers to leave the WAL. Writes
/// queue meanwhile, so it gives up quickly and is tried again after a later commit.
pub(super) const RESTART_WAIT: Duration = Duration::from_millis(100);

/// The writing connection's usual wait for locks.
pub(super) const BUSY_WAIT: Duration = Duration::from_secs(10);

/// Shared by the writer and the checkpointer.
pub(super) struct WalState {
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
pub(super) fn restart_wal(conn: &Connection, wal: &WalState) {
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
pub(super) fn checkpoint_loop(conn: Connection, wal: Arc<WalState>, stop: Receiver<()>) {
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

pub(super) fn spawn(name: &str, f: impl FnOnce() + Send + 'static) -> StoreResult<()> {
    std::thread::Builder::new()
        .name(name.into())
        .spawn(f)
        .map(|_| ())
        .map_err(|e| StoreError::Backend(format!("cannot start the {name} thread: {e}")))
}

/// Page cache of each connection, KiB. Readers get a moderate one (the OS caches
/// the file too, and resident memory must stay bounded at a million users); point
/// readers only need the upper levels of the id index. The writer's stays small:
/// SQLite walks the whole page cache when a write transaction ends
/// (pcache1TruncateUnsafe), so a big writer cache makes every commit slower
/// (docs/benchmarks.md).
pub(super) const READER_CACHE_KIB: u32 = 12_288;
pub(super) const POINT_READER_CACHE_KIB: u32 = 4_096;
pub(super) const WRITER_CACHE_KIB: u32 = 8_192;

pub(super) fn open(path: &Path, read_only: bool, cache_kib: u32) -> StoreResult<Connection> {
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
            search_budget: crate::DEFAULT_SEARCH_BUDGET,
            trigrams: Arc::default(),
            _stop_checkpoints: stop_checkpoints,
        })
    }

    /// The store with searches stopped after `budget` (400 tooMany).
    pub fn with_search_budget(mut self, budget: Duration) -> Self {
        self.search_budget = budget;
        self
    }

    /// Run `f` on the next free reader thread of `queue` and wait for its answer.
    /// `f` owns what it needs: it runs on another thread.
    pub(super) fn read<T: Send + 'static>(
        queue: &SyncSender<ReadJob>,
        f: impl FnOnce(&Connection) -> StoreResult<T> + Send + 'static,
    ) -> StoreResult<T> {
        let (done, answer) = sync_channel::<StoreResult<T>>(1);
        let queued = Waiting::start("reader");
        let job: ReadJob = Box::new(move |conn| {
            queued.end();
            let _ = done.send(f(conn));
        });
        queue.send(job).map_err(|_| readers_stopped())?;
        answer.recv().map_err(|_| readers_stopped())?
    }

    pub(super) fn point_reader(&self) -> StoreResult<MutexGuard<'_, Connection>> {
        self.free_connection(&self.point_readers)
    }

    /// A connection of `pool` nobody holds, else wait for one (round robin).
    pub(super) fn free_connection<'a>(
        &self,
        pool: &'a [Mutex<Connection>],
    ) -> StoreResult<MutexGuard<'a, Connection>> {
        for conn in pool {
            if let Ok(guard) = conn.try_lock() {
                return Ok(guard);
            }
        }
        let i = self.next_reader.fetch_add(1, Ordering::Relaxed) % pool.len();
        let waited = std::time::Instant::now();
        let guard = pool[i].lock().map_err(poisoned);
        metrics::histogram!("scimd_store_wait_seconds", "queue" => "point")
            .record(waited.elapsed().as_secs_f64());
        guard
    }

    /// Run `f` in the writer thread's next group commit and wait until that group
    /// is durable. `f` owns what it needs: it runs on another thread.
    pub(super) fn write<T: Send + 'static>(
        &self,
        f: impl FnOnce(&Transaction<'_>, &SchemaRegistry) -> StoreResult<T> + Send + 'static,
    ) -> StoreResult<T> {
        let (done, result) = sync_channel::<StoreResult<T>>(1);
        let queued = Waiting::start("writer");
        let job: Job = Box::new(move |tx, registry| {
            queued.end();
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
