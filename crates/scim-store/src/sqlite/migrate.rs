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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ddl::SQLITE_MIGRATIONS;

    const INSERT_RUN: &str = "INSERT INTO sync_runs (id, mapping, dry_run, state, stage, progress, summaries, started)
                              VALUES (?1, 'm', 0, ?2, '', '{}', '{}', '2026-01-01T00:00:00.000000Z')";

    /// A database at the version before the sync tables, with a resource in it.
    fn at_previous_version() -> Connection {
        let conn = Connection::open_in_memory().expect("open");
        let previous = SQLITE_MIGRATIONS.len() - 1;
        for step in &SQLITE_MIGRATIONS[..previous] {
            conn.execute_batch(step).expect("step");
        }
        conn.execute_batch(&format!(
            "PRAGMA user_version = {previous};
             INSERT INTO resources (id, rtype, doc, version, created, modified)
             VALUES ('u1', 'User', '{{}}', 1, 'c', 'm');"
        ))
        .expect("seed");
        conn
    }

    #[test]
    fn the_sync_step_migrates_a_database_forward() {
        let conn = at_previous_version();
        assert_eq!(
            migrate(&conn).expect("migrate"),
            vec![SQLITE_MIGRATIONS.len()]
        );
        assert_eq!(migrate(&conn).expect("again"), Vec::<usize>::new());
        let kept: String = conn
            .query_row("SELECT id FROM resources", [], |r| r.get(0))
            .expect("resource kept");
        assert_eq!(kept, "u1");

        // The database itself refuses a second open run of a mapping, and a
        // second link of one id per side.
        conn.execute(INSERT_RUN, ["r1", "SUCCESS"])
            .expect("finished run");
        conn.execute(INSERT_RUN, ["r2", "ACTIVE"])
            .expect("open run");
        assert!(conn.execute(INSERT_RUN, ["r3", "WAITING"]).is_err());
        let link = "INSERT INTO sync_links (link_set, first_id, second_id) VALUES ('s', ?1, ?2)";
        conn.execute(link, ["a", "x"]).expect("link");
        assert!(conn.execute(link, ["b", "x"]).is_err());
        assert!(conn.execute(link, ["a", "y"]).is_err());
    }
}
