//! The SQLite schema steps (`crate::ddl`), applied in order and tracked by
//! `PRAGMA user_version`.

use super::backend;
use super::session::{open, WRITER_CACHE_KIB};
use crate::StoreResult;
use rusqlite::Connection;
use std::path::Path;

/// Apply the migrations not yet applied, tracked by `PRAGMA user_version`;
/// returns the steps applied now (1-based).
pub fn migrate(conn: &Connection) -> StoreResult<Vec<usize>> {
    let applied: usize = conn
        .query_row("PRAGMA user_version", [], |r| r.get::<_, i64>(0))
        .map_err(backend)? as usize;
    let mut applied_now = Vec::new();
    for (i, step) in crate::ddl::SQLITE_MIGRATIONS
        .iter()
        .enumerate()
        .skip(applied)
    {
        applied_now.push(i + 1);
        conn.execute_batch(&format!(
            "BEGIN; {step}; PRAGMA user_version = {}; COMMIT;",
            i + 1
        ))
        .map_err(backend)?;
    }
    Ok(applied_now)
}

/// Open (creating if needed) the database file and apply the migrations.
pub fn migrate_file(path: &Path) -> StoreResult<Vec<usize>> {
    migrate(&open(path, false, WRITER_CACHE_KIB)?)
}
