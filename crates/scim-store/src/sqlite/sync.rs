//! `SyncStore` on SQLite: writes through the writer thread (one savepoint each,
//! so a failing call leaves nothing behind), reads on the lookup readers.

use super::clients::{found, opt_time, parse_time};
use super::{backend, SqliteStore};
use crate::statements;
use crate::sync::{
    as_count, AuditEntry, AuditRecord, LinkRow, LinkSide, RunRecord, RunStart, RunUpdate,
    RUN_STARTED_STATE,
};
use crate::{db_time, StoreError, StoreResult, SyncStore};
use chrono::{DateTime, Utc};
use rusqlite::{params, Connection, OptionalExtension};

fn link_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<LinkRow> {
    Ok(LinkRow {
        first_id: r.get(0)?,
        second_id: r.get(1)?,
        stamp: r.get(2)?,
    })
}

fn run_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<RunRecord> {
    Ok(RunRecord {
        id: r.get(0)?,
        mapping: r.get(1)?,
        dry_run: r.get(2)?,
        state: r.get(3)?,
        stage: r.get(4)?,
        progress: r.get(5)?,
        summaries: r.get(6)?,
        cursor: r.get(7)?,
        started: parse_time(&r.get::<_, String>(8)?)?,
        ended: opt_time(r.get(9)?)?,
    })
}

fn audit_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<AuditRecord> {
    Ok(AuditRecord {
        seq: r.get(0)?,
        entry: AuditEntry {
            situation: r.get(1)?,
            action: r.get(2)?,
            status: r.get(3)?,
            source_id: r.get(4)?,
            target_id: r.get(5)?,
            error: r.get(6)?,
        },
    })
}

/// Every run `sql` selects with `params`, parsed.
fn query_runs(
    conn: &Connection,
    sql: &str,
    params: impl rusqlite::Params,
) -> StoreResult<Vec<RunRecord>> {
    let mut stmt = conn.prepare_cached(sql).map_err(backend)?;
    stmt.query_map(params, run_row)
        .and_then(|rows| rows.collect::<rusqlite::Result<Vec<_>>>())
        .map_err(backend)
}

impl SyncStore for SqliteStore {
    fn put_links(&self, link_set: &str, links: &[LinkRow]) -> StoreResult<()> {
        let (set, links) = (link_set.to_string(), links.to_vec());
        self.write(move |tx, _| {
            let st = statements::sqlite();
            for l in &links {
                tx.execute(&st.drop_links_of, params![set, l.first_id, l.second_id])
                    .map_err(backend)?;
                tx.execute(&st.add_link, params![set, l.first_id, l.second_id, l.stamp])
                    .map_err(backend)?;
            }
            Ok(())
        })
    }

    fn stamp_links(&self, link_set: &str, stamps: &[(String, Option<String>)]) -> StoreResult<()> {
        let (set, stamps) = (link_set.to_string(), stamps.to_vec());
        self.write(move |tx, _| {
            let mut stmt = tx
                .prepare_cached(&statements::sqlite().stamp_link)
                .map_err(backend)?;
            for (first, stamp) in &stamps {
                stmt.execute(params![set, first, stamp]).map_err(backend)?;
            }
            Ok(())
        })
    }

    fn remove_link(&self, link_set: &str, side: LinkSide, id: &str) -> StoreResult<bool> {
        let (set, id) = (link_set.to_string(), id.to_string());
        self.write(move |tx, _| {
            let st = statements::sqlite();
            let sql = match side {
                LinkSide::First => &st.remove_link_by_first,
                LinkSide::Second => &st.remove_link_by_second,
            };
            let n = tx.execute(sql, params![set, id]).map_err(backend)?;
            Ok(n > 0)
        })
    }

    fn find_link(&self, link_set: &str, side: LinkSide, id: &str) -> StoreResult<Option<LinkRow>> {
        let (set, id) = (link_set.to_string(), id.to_string());
        Self::read(&self.lookups, move |conn| {
            let st = statements::sqlite();
            let sql = match side {
                LinkSide::First => &st.link_by_first,
                LinkSide::Second => &st.link_by_second,
            };
            conn.prepare_cached(sql)
                .and_then(|mut s| s.query_row(params![set, id], link_row).optional())
                .map_err(backend)
        })
    }

    fn links(&self, link_set: &str, after: Option<&str>, n: usize) -> StoreResult<Vec<LinkRow>> {
        let (set, after) = (link_set.to_string(), after.map(str::to_string));
        Self::read(&self.lookups, move |conn| {
            let st = statements::sqlite();
            let rows = match &after {
                None => conn.prepare_cached(&st.links_first_page).and_then(|mut s| {
                    s.query_map(params![set, as_count(n)], link_row)?
                        .collect::<rusqlite::Result<Vec<_>>>()
                }),
                Some(a) => conn.prepare_cached(&st.links_next_page).and_then(|mut s| {
                    s.query_map(params![set, a, as_count(n)], link_row)?
                        .collect::<rusqlite::Result<Vec<_>>>()
                }),
            };
            rows.map_err(backend)
        })
    }

    fn count_links(&self, link_set: &str) -> StoreResult<u64> {
        let set = link_set.to_string();
        Self::read(&self.lookups, move |conn| {
            let n: i64 = conn
                .prepare_cached(&statements::sqlite().count_links)
                .and_then(|mut s| s.query_row([set], |r| r.get(0)))
                .map_err(backend)?;
            Ok(u64::try_from(n).unwrap_or(0))
        })
    }

    fn create_run(
        &self,
        id: &str,
        mapping: &str,
        dry_run: bool,
        started: DateTime<Utc>,
    ) -> StoreResult<RunStart> {
        let (id, mapping) = (id.to_string(), mapping.to_string());
        self.write(move |tx, _| {
            let st = statements::sqlite();
            // The open run, if any, is read first only to answer with it; the
            // index `sync_runs_open` is what refuses a second open run.
            let open = query_runs(tx, &st.open_run, [&mapping])?;
            if let Some(run) = open.into_iter().next() {
                return Ok(RunStart::AlreadyOpen(run));
            }
            tx.execute(
                &st.create_run,
                params![
                    id,
                    mapping,
                    dry_run,
                    RUN_STARTED_STATE,
                    db_time(started),
                    "{}"
                ],
            )
            .map_err(backend)?;
            let created = query_runs(tx, &st.get_run, [&id])?;
            created
                .into_iter()
                .next()
                .map(RunStart::Started)
                .ok_or(StoreError::NotFound)
        })
    }

    fn update_run(&self, id: &str, u: &RunUpdate) -> StoreResult<()> {
        let (id, u) = (id.to_string(), u.clone());
        self.write(move |tx, _| {
            let n = tx
                .execute(
                    &statements::sqlite().update_run,
                    params![id, u.state, u.stage, u.progress, u.summaries, u.cursor],
                )
                .map_err(backend)?;
            found(n)
        })
    }

    fn claim_run(
        &self,
        id: &str,
        owner: &str,
        now: DateTime<Utc>,
        until: DateTime<Utc>,
    ) -> StoreResult<bool> {
        let (id, owner) = (id.to_string(), owner.to_string());
        self.write(move |tx, _| {
            let n = tx
                .execute(
                    &statements::sqlite().claim_run,
                    params![id, owner, db_time(now), db_time(until)],
                )
                .map_err(backend)?;
            Ok(n == 1)
        })
    }

    fn release_run(&self, id: &str, owner: &str) -> StoreResult<()> {
        let (id, owner) = (id.to_string(), owner.to_string());
        self.write(move |tx, _| {
            tx.execute(&statements::sqlite().release_run, params![id, owner])
                .map_err(backend)?;
            Ok(())
        })
    }

    fn finish_run(&self, id: &str, state: &str, ended: DateTime<Utc>) -> StoreResult<()> {
        let (id, state) = (id.to_string(), state.to_string());
        self.write(move |tx, _| {
            let n = tx
                .execute(
                    &statements::sqlite().finish_run,
                    params![id, state, db_time(ended)],
                )
                .map_err(backend)?;
            found(n)
        })
    }

    fn get_run(&self, id: &str) -> StoreResult<RunRecord> {
        let id = id.to_string();
        Self::read(&self.lookups, move |conn| {
            let runs = query_runs(conn, &statements::sqlite().get_run, [id])?;
            runs.into_iter().next().ok_or(StoreError::NotFound)
        })
    }

    fn recent_runs(&self, mapping: Option<&str>, n: usize) -> StoreResult<Vec<RunRecord>> {
        let mapping = mapping.map(str::to_string);
        Self::read(&self.lookups, move |conn| {
            let st = statements::sqlite();
            match &mapping {
                None => query_runs(conn, &st.recent_runs, [as_count(n)]),
                Some(m) => query_runs(conn, &st.recent_runs_of, params![m, as_count(n)]),
            }
        })
    }

    fn open_run(&self, mapping: &str) -> StoreResult<Option<RunRecord>> {
        let mapping = mapping.to_string();
        Self::read(&self.lookups, move |conn| {
            let runs = query_runs(conn, &statements::sqlite().open_run, [mapping])?;
            Ok(runs.into_iter().next())
        })
    }

    fn append_audit(&self, run_id: &str, entries: &[AuditEntry]) -> StoreResult<i64> {
        let (run_id, entries) = (run_id.to_string(), entries.to_vec());
        self.write(move |tx, _| {
            let st = statements::sqlite();
            let last: i64 = tx
                .prepare_cached(&st.reserve_audit)
                .and_then(|mut s| {
                    s.query_row(params![run_id, as_count(entries.len())], |r| r.get(0))
                        .optional()
                })
                .map_err(backend)?
                .ok_or(StoreError::NotFound)?;
            let first = last - as_count(entries.len()) + 1;
            let mut add = tx.prepare_cached(&st.add_audit).map_err(backend)?;
            for (seq, e) in (first..).zip(&entries) {
                add.execute(params![
                    run_id,
                    seq,
                    e.situation,
                    e.action,
                    e.status,
                    e.source_id,
                    e.target_id,
                    e.error
                ])
                .map_err(backend)?;
            }
            Ok(last)
        })
    }

    fn audit(&self, run_id: &str, after_seq: i64, n: usize) -> StoreResult<Vec<AuditRecord>> {
        let run_id = run_id.to_string();
        Self::read(&self.lookups, move |conn| {
            conn.prepare_cached(&statements::sqlite().audit_page)
                .and_then(|mut s| {
                    s.query_map(params![run_id, after_seq, as_count(n)], audit_row)?
                        .collect::<rusqlite::Result<Vec<_>>>()
                })
                .map_err(backend)
        })
    }

    fn prune_sync_runs(&self, older_than: DateTime<Utc>) -> StoreResult<u64> {
        let before = db_time(older_than);
        self.write(move |tx, _| {
            let st = statements::sqlite();
            tx.execute(&st.prune_audit, [&before]).map_err(backend)?;
            let n = tx.execute(&st.prune_runs, [&before]).map_err(backend)?;
            Ok(n as u64)
        })
    }
}
