//! Backups of a live SQLite database and putting one back.
//!
//! A backup copies every page with SQLite's online backup API in one step: one
//! read transaction, so the copy is one point in time, and in WAL mode the
//! server's writer goes on meanwhile (a reader never blocks it). Copying in many
//! small steps would restart whenever the server wrote in between, and under
//! steady writes might never finish.
//!
//! A restore must not pull the file from under a running server: every `serve`
//! holds a shared lock on `<db>.lock` for its lifetime ([`ServeLock::serving`];
//! several servers may share one SQLite file) and a restore takes it
//! exclusively first ([`ServeLock::exclusive`]).

use super::backend;
use crate::{StoreError, StoreResult};
use rusqlite::backup::{Backup, StepResult};
use rusqlite::{Connection, OpenFlags};
use std::fs::File;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// What a backup or restore did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Copied {
    /// Database pages copied.
    pub pages: u64,
    /// Bytes of the copy.
    pub bytes: u64,
}

/// Copy the database at `db` into a new file `out` (refused if it exists),
/// consistently, while other processes keep writing to `db`.
pub fn backup(db: &Path, out: &Path) -> StoreResult<Copied> {
    if out.exists() {
        return Err(StoreError::Backend(format!(
            "{} exists: a backup never overwrites a file",
            out.display()
        )));
    }
    let src = Connection::open_with_flags(
        db,
        OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX,
    )
    .map_err(|e| StoreError::Backend(format!("cannot open {}: {e}", db.display())))?;
    src.busy_timeout(Duration::from_secs(30)).map_err(backend)?;
    check_scimd_database(&src, db)?;
    let partial = sibling(out, "partial");
    let copied = copy_fresh(&src, &partial)?;
    std::fs::rename(&partial, out).map_err(io(out))?;
    sync_dir(out);
    Ok(copied)
}

/// Put the backup `from` in place of the database at `db`: checked to be a
/// scimd database, refused while a server holds `db`, written next to it and
/// renamed over it (a failure leaves the old database as it was).
pub fn restore(from: &Path, db: &Path) -> StoreResult<Copied> {
    let _lock = ServeLock::exclusive(db)?;
    let src = Connection::open_with_flags(from, OpenFlags::SQLITE_OPEN_READ_ONLY)
        .map_err(|e| StoreError::Backend(format!("cannot open {}: {e}", from.display())))?;
    check_scimd_database(&src, from)?;
    if let Some(dir) = db.parent() {
        std::fs::create_dir_all(dir).map_err(io(dir))?;
    }
    let incoming = sibling(db, "restoring");
    let copied = copy_fresh(&src, &incoming)?;
    // The old WAL belongs to the old file: it must not be replayed onto the new.
    for ext in ["wal", "shm"] {
        let p = sibling(db, ext);
        if p.exists() {
            std::fs::remove_file(&p).map_err(io(&p))?;
        }
    }
    std::fs::rename(&incoming, db).map_err(io(db))?;
    sync_dir(db);
    Ok(copied)
}

/// `copy_into` a file `to` that starts empty; nothing is left there on failure.
fn copy_fresh(src: &Connection, to: &Path) -> StoreResult<Copied> {
    let _ = std::fs::remove_file(to);
    copy_into(src, to).inspect_err(|_| {
        let _ = std::fs::remove_file(to);
    })
}

/// Copy every page of `src` into a new database file at `to`, durably.
fn copy_into(src: &Connection, to: &Path) -> StoreResult<Copied> {
    let mut dst = Connection::open(to)
        .map_err(|e| StoreError::Backend(format!("cannot create {}: {e}", to.display())))?;
    {
        let b = Backup::new(src, &mut dst).map_err(backend)?;
        loop {
            match b.step(-1).map_err(backend)? {
                StepResult::Done => break,
                // The server's writer or a checkpoint held a lock a moment.
                StepResult::Busy | StepResult::Locked => {
                    std::thread::sleep(Duration::from_millis(20))
                }
                StepResult::More => {}
                _ => {}
            }
        }
    }
    // The copy is a plain rollback-journal database: one file, nothing pending.
    dst.execute_batch("PRAGMA journal_mode=DELETE;")
        .map_err(backend)?;
    let pages: u64 = dst
        .query_row("PRAGMA page_count", [], |r| r.get::<_, i64>(0))
        .map_err(backend)?
        .try_into()
        .unwrap_or(0);
    drop(dst);
    let f = File::open(to).map_err(io(to))?;
    f.sync_all().map_err(io(to))?;
    let bytes = f.metadata().map_err(io(to))?.len();
    Ok(Copied { pages, bytes })
}

/// A scimd database: its migrations ran (`user_version` > 0) and it has the
/// resources table.
fn check_scimd_database(conn: &Connection, path: &Path) -> StoreResult<()> {
    let not_ours = |why: String| {
        StoreError::Backend(format!("{} is not a scimd database: {why}", path.display()))
    };
    let version: i64 = conn
        .query_row("PRAGMA user_version", [], |r| r.get(0))
        .map_err(|e| not_ours(e.to_string()))?;
    let tables: i64 = conn
        .query_row(
            "SELECT count(*) FROM sqlite_master WHERE type = 'table' AND name = 'resources'",
            [],
            |r| r.get(0),
        )
        .map_err(|e| not_ours(e.to_string()))?;
    if version == 0 || tables == 0 {
        return Err(not_ours("no scimd schema in it".into()));
    }
    Ok(())
}

/// `<path>-<ext>`, beside `path` (SQLite's own naming for `-wal` and `-shm`).
fn sibling(path: &Path, ext: &str) -> PathBuf {
    let mut name = path.as_os_str().to_owned();
    name.push(format!("-{ext}"));
    PathBuf::from(name)
}

fn io(path: &Path) -> impl Fn(std::io::Error) -> StoreError + '_ {
    move |e| StoreError::Backend(format!("{}: {e}", path.display()))
}

/// A rename is durable once its directory is synced.
fn sync_dir(path: &Path) {
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        if let Ok(d) = File::open(dir) {
            let _ = d.sync_all();
        }
    }
}

/// The lock on a SQLite database's `<db>.lock`: shared by the servers using
/// it, exclusive while a restore replaces it; a `flock`, released by the kernel
/// when the process ends, however it ends.
#[derive(Debug)]
pub struct ServeLock {
    _file: File,
}

impl ServeLock {
    /// What a server holds while it serves (other servers may hold it too).
    pub fn serving(db: &Path) -> StoreResult<ServeLock> {
        Self::take(db, rustix::fs::FlockOperation::NonBlockingLockShared)
    }

    /// What a restore holds: refused at once while any server serves.
    pub fn exclusive(db: &Path) -> StoreResult<ServeLock> {
        Self::take(db, rustix::fs::FlockOperation::NonBlockingLockExclusive)
    }

    fn take(db: &Path, how: rustix::fs::FlockOperation) -> StoreResult<ServeLock> {
        let path = lock_path(db);
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir).map_err(io(dir))?;
        }
        let file = std::fs::OpenOptions::new()
            .create(true)
            .truncate(false)
            .read(true)
            .write(true)
            .open(&path)
            .map_err(io(&path))?;
        match rustix::fs::flock(&file, how) {
            Ok(()) => Ok(ServeLock { _file: file }),
            Err(rustix::io::Errno::WOULDBLOCK) => Err(StoreError::Backend(format!(
                "{} is in use ({} is locked): stop the scimd server using it first",
                db.display(),
                path.display()
            ))),
            Err(e) => Err(StoreError::Backend(format!("{}: {e}", path.display()))),
        }
    }
}

fn lock_path(db: &Path) -> PathBuf {
    sibling(db, "lock")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn scimd_db(path: &Path) {
        let c = Connection::open(path).expect("open");
        c.execute_batch(
            "PRAGMA journal_mode=WAL; CREATE TABLE resources (id TEXT PRIMARY KEY, doc TEXT);
             PRAGMA user_version = 3;",
        )
        .expect("schema");
    }

    #[test]
    fn a_backup_is_a_consistent_copy_and_restores() {
        let dir = tempfile::tempdir().expect("tmp");
        let db = dir.path().join("scimd.db");
        scimd_db(&db);
        let writer = Connection::open(&db).expect("writer");
        writer
            .execute("INSERT INTO resources VALUES ('a', '{}')", [])
            .expect("insert");
        let out = dir.path().join("backup.db");
        let copied = backup(&db, &out).expect("backup");
        assert!(copied.pages > 0 && copied.bytes > 0, "{copied:?}");
        assert!(backup(&db, &out).is_err(), "never overwrites");
        writer
            .execute("INSERT INTO resources VALUES ('b', '{}')", [])
            .expect("insert after");
        drop(writer);
        restore(&out, &db).expect("restore");
        let c = Connection::open(&db).expect("open");
        let ids: Vec<String> = c
            .prepare("SELECT id FROM resources ORDER BY id")
            .and_then(|mut s| s.query_map([], |r| r.get(0))?.collect())
            .expect("ids");
        assert_eq!(ids, vec!["a".to_string()]);
    }

    #[test]
    fn restore_refuses_a_served_database_and_foreign_files() {
        let dir = tempfile::tempdir().expect("tmp");
        let db = dir.path().join("scimd.db");
        scimd_db(&db);
        let out = dir.path().join("b.db");
        backup(&db, &out).expect("backup");
        let held = ServeLock::serving(&db).expect("lock");
        let also = ServeLock::serving(&db).expect("a second server shares it");
        let e = restore(&out, &db).expect_err("served");
        assert!(e.to_string().contains("stop the scimd server"), "{e}");
        drop((held, also));
        let other = dir.path().join("other.db");
        Connection::open(&other)
            .and_then(|c| c.execute_batch("CREATE TABLE t (x);"))
            .expect("other");
        let e = restore(&other, &db).expect_err("foreign");
        assert!(e.to_string().contains("not a scimd database"), "{e}");
        restore(&out, &db).expect("restore once the server is gone");
    }
}
