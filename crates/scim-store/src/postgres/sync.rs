//! `SyncStore` on PostgreSQL. One open run per mapping holds across processes
//! because the partial unique index `sync_runs_open` refuses the second insert
//! (a concurrent creator waits on the index entry, then fails with 23505).

use super::session::{found, Fail, Session, TxKind, TxResult};
use super::PostgresStore;
use crate::statements;
use crate::sync::{
    as_count, AuditEntry, AuditRecord, LinkRow, LinkSide, RunRecord, RunStart, RunUpdate,
    RUN_STARTED_STATE,
};
use crate::{db_time, parse_db_time, StoreError, StoreResult, SyncStore};
use chrono::{DateTime, Utc};
use postgres::error::SqlState;
use postgres::Row;

/// The index that keeps a mapping to one open run (`crate::ddl`).
const OPEN_RUN_INDEX: &str = "sync_runs_open";

fn link_row(r: &Row) -> TxResult<LinkRow> {
    Ok(LinkRow {
        first_id: r.try_get(0)?,
        second_id: r.try_get(1)?,
        stamp: r.try_get(2)?,
    })
}

fn run_row(r: &Row) -> TxResult<RunRecord> {
    let started: String = r.try_get(8)?;
    let ended: Option<String> = r.try_get(9)?;
    Ok(RunRecord {
        id: r.try_get(0)?,
        mapping: r.try_get(1)?,
        dry_run: r.try_get(2)?,
        state: r.try_get(3)?,
        stage: r.try_get(4)?,
        progress: r.try_get(5)?,
        summaries: r.try_get(6)?,
        cursor: r.try_get(7)?,
        started: parse_db_time(&started)?,
        ended: ended.as_deref().map(parse_db_time).transpose()?,
    })
}

fn audit_row(r: &Row) -> TxResult<AuditRecord> {
    Ok(AuditRecord {
        seq: r.try_get(0)?,
        entry: AuditEntry {
            situation: r.try_get(1)?,
            action: r.try_get(2)?,
            status: r.try_get(3)?,
            source_id: r.try_get(4)?,
            target_id: r.try_get(5)?,
            error: r.try_get(6)?,
        },
    })
}

fn open_run_of(s: &mut Session<'_>, mapping: &str) -> TxResult<Option<RunRecord>> {
    s.query_opt(&statements::postgres().open_run, &[&mapping])?
        .map(|r| run_row(&r))
        .transpose()
}

/// Whether `e` is the open-run index refusing a second open run of a mapping.
fn is_open_run_conflict(e: &postgres::Error) -> bool {
    e.code() == Some(&SqlState::UNIQUE_VIOLATION)
        && e.as_db_error().and_then(|d| d.constraint()) == Some(OPEN_RUN_INDEX)
}

impl SyncStore for PostgresStore {
    fn put_links(&self, link_set: &str, links: &[LinkRow]) -> StoreResult<()> {
        self.run(TxKind::Write, |s| {
            let st = statements::postgres();
            for l in links {
                s.execute(&st.drop_links_of, &[&link_set, &l.first_id, &l.second_id])?;
                s.execute(
                    &st.add_link,
                    &[&link_set, &l.first_id, &l.second_id, &l.stamp],
                )?;
            }
            Ok(())
        })
    }

    fn stamp_links(&self, link_set: &str, stamps: &[(String, Option<String>)]) -> StoreResult<()> {
        self.run(TxKind::Write, |s| {
            let sql = &statements::postgres().stamp_link;
            for (first, stamp) in stamps {
                s.execute(sql, &[&link_set, first, stamp])?;
            }
            Ok(())
        })
    }

    fn remove_link(&self, link_set: &str, side: LinkSide, id: &str) -> StoreResult<bool> {
        let st = statements::postgres();
        let sql = match side {
            LinkSide::First => &st.remove_link_by_first,
            LinkSide::Second => &st.remove_link_by_second,
        };
        self.run(TxKind::Single, |s| {
            Ok(s.execute(sql, &[&link_set, &id])? > 0)
        })
    }

    fn find_link(&self, link_set: &str, side: LinkSide, id: &str) -> StoreResult<Option<LinkRow>> {
        let st = statements::postgres();
        let sql = match side {
            LinkSide::First => &st.link_by_first,
            LinkSide::Second => &st.link_by_second,
        };
        self.run(TxKind::Single, |s| {
            s.query_opt(sql, &[&link_set, &id])?
                .map(|r| link_row(&r))
                .transpose()
        })
    }

    fn links(&self, link_set: &str, after: Option<&str>, n: usize) -> StoreResult<Vec<LinkRow>> {
        let st = statements::postgres();
        let n = as_count(n);
        self.run(TxKind::Single, |s| {
            let rows = match after {
                None => s.query(&st.links_first_page, &[&link_set, &n])?,
                Some(a) => s.query(&st.links_next_page, &[&link_set, &a, &n])?,
            };
            rows.iter().map(link_row).collect()
        })
    }

    fn count_links(&self, link_set: &str) -> StoreResult<u64> {
        self.run(TxKind::Single, |s| {
            let n: i64 = s
                .query_opt(&statements::postgres().count_links, &[&link_set])?
                .map(|r| r.try_get(0))
                .transpose()?
                .unwrap_or(0);
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
        let started = db_time(started);
        let st = statements::postgres();
        // Autocommit, so that after the index refuses the insert the winner's run
        // (committed by then) can still be read to answer with.
        self.run(TxKind::Single, |s| {
            if let Some(run) = open_run_of(s, mapping)? {
                return Ok(RunStart::AlreadyOpen(run));
            }
            let inserted = s.execute(
                &st.create_run,
                &[&id, &mapping, &dry_run, &RUN_STARTED_STATE, &started, &"{}"],
            );
            match inserted {
                Ok(_) => {}
                Err(e) if is_open_run_conflict(&e) => {
                    // The winner may have finished since: then there is nothing
                    // to report but the conflict itself.
                    return match open_run_of(s, mapping)? {
                        Some(run) => Ok(RunStart::AlreadyOpen(run)),
                        None => Err(Fail::Store(StoreError::Uniqueness)),
                    };
                }
                Err(e) => return Err(Fail::Db(e)),
            }
            match s.query_opt(&st.get_run, &[&id])? {
                Some(r) => Ok(RunStart::Started(run_row(&r)?)),
                None => Err(Fail::Store(StoreError::NotFound)),
            }
        })
    }

    fn update_run(&self, id: &str, u: &RunUpdate) -> StoreResult<()> {
        self.run(TxKind::Single, |s| {
            found(s.execute(
                &statements::postgres().update_run,
                &[
                    &id,
                    &u.state,
                    &u.stage,
                    &u.progress,
                    &u.summaries,
                    &u.cursor,
                ],
            )?)
        })
    }

    fn claim_run(
        &self,
        id: &str,
        owner: &str,
        now: DateTime<Utc>,
        until: DateTime<Utc>,
    ) -> StoreResult<bool> {
        let (now, until) = (db_time(now), db_time(until));
        self.run(TxKind::Single, |s| {
            let n = s.execute(
                &statements::postgres().claim_run,
                &[&id, &owner, &now, &until],
            )?;
            Ok(n == 1)
        })
    }

    fn release_run(&self, id: &str, owner: &str) -> StoreResult<()> {
        self.run(TxKind::Single, |s| {
            s.execute(&statements::postgres().release_run, &[&id, &owner])?;
            Ok(())
        })
    }

    fn finish_run(&self, id: &str, state: &str, ended: DateTime<Utc>) -> StoreResult<()> {
        let ended = db_time(ended);
        self.run(TxKind::Single, |s| {
            found(s.execute(&statements::postgres().finish_run, &[&id, &state, &ended])?)
        })
    }

    fn get_run(&self, id: &str) -> StoreResult<RunRecord> {
        self.run(TxKind::Single, |s| {
            match s.query_opt(&statements::postgres().get_run, &[&id])? {
                Some(r) => run_row(&r),
                None => Err(Fail::Store(StoreError::NotFound)),
            }
        })
    }

    fn recent_runs(&self, mapping: Option<&str>, n: usize) -> StoreResult<Vec<RunRecord>> {
        let st = statements::postgres();
        let n = as_count(n);
        self.run(TxKind::Single, |s| {
            let rows = match mapping {
                None => s.query(&st.recent_runs, &[&n])?,
                Some(m) => s.query(&st.recent_runs_of, &[&m, &n])?,
            };
            rows.iter().map(run_row).collect()
        })
    }

    fn open_run(&self, mapping: &str) -> StoreResult<Option<RunRecord>> {
        self.run(TxKind::Single, |s| open_run_of(s, mapping))
    }

    fn append_audit(&self, run_id: &str, entries: &[AuditEntry]) -> StoreResult<i64> {
        let count = as_count(entries.len());
        self.run(TxKind::Write, |s| {
            let st = statements::postgres();
            let last: i64 = match s.query_opt(&st.reserve_audit, &[&run_id, &count])? {
                Some(r) => r.try_get(0)?,
                None => return Err(Fail::Store(StoreError::NotFound)),
            };
            for (seq, e) in (last - count + 1..).zip(entries) {
                s.execute(
                    &st.add_audit,
                    &[
                        &run_id,
                        &seq,
                        &e.situation,
                        &e.action,
                        &e.status,
                        &e.source_id,
                        &e.target_id,
                        &e.error,
                    ],
                )?;
            }
            Ok(last)
        })
    }

    fn audit(&self, run_id: &str, after_seq: i64, n: usize) -> StoreResult<Vec<AuditRecord>> {
        let n = as_count(n);
        self.run(TxKind::Single, |s| {
            s.query(
                &statements::postgres().audit_page,
                &[&run_id, &after_seq, &n],
            )?
            .iter()
            .map(audit_row)
            .collect()
        })
    }

    fn prune_sync_runs(&self, older_than: DateTime<Utc>) -> StoreResult<u64> {
        let before = db_time(older_than);
        self.run(TxKind::Write, |s| {
            let st = statements::postgres();
            s.execute(&st.prune_audit, &[&before])?;
            Ok(s.execute(&st.prune_runs, &[&before])?)
        })
    }
}
