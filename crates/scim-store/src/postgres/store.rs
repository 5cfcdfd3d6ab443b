//! The storage traits on PostgreSQL: each call one transaction (or one
//! autocommit statement), retried as a whole when the engine asks.

use super::batch::{
    insert_new, missing_or_changed, record_change, write_members, IndexBatch, MemberBatch,
};
use super::session::{found, Conn, Fail, Session, TxKind, TxResult};
use super::{db_error, json_err, PostgresStore};
use crate::dialect::Postgres as PgDialect;
use crate::sql::search_sql;
use crate::statements;
use crate::{
    Change, ChangeOp, ChangePage, ExportRecord, FeedStore, GroupRef, Member, MemberView,
    MembershipStore, Page, Query, ResourceStore, ResourceWrite, SchemaStore, ScriptRecord,
    ScriptStore, SecretChange, StoreError, StoreResult, StoredResource, TransferStore,
};
use postgres::error::SqlState;
use postgres::IsolationLevel;
use scim_proto::schema::custom::CustomAttribute;
use scim_proto::schema::ResourceTypeDef;
use std::collections::{HashMap, HashSet};

/// How deep nested groups are followed when computing `User.groups` (as SQLite).
pub(super) const MAX_GROUP_NESTING: i64 = 32;

/// One resource (CTE `d`, chosen by `$1` and type `$2`) and the walk up the
/// membership graph from it (as in `groups_of`, depth cap `$3`), in one statement:
/// a row per group, or one row with no group.
macro_rules! with_groups_sql {
    ($target:literal) => {
        concat!(
            "WITH RECURSIVE d AS (SELECT id, doc, version FROM resources WHERE ",
            $target,
            "), up(group_id, depth) AS (
                 SELECT m.group_id, 0::bigint FROM members m JOIN d ON m.member_id = d.id
                 UNION
                 SELECT m.group_id, up.depth + 1 FROM members m
                 JOIN up ON m.member_id = up.group_id
                 WHERE up.depth < $3::bigint
             ), g AS (
                 SELECT up.group_id, r.display, min(up.depth) AS depth FROM up
                 JOIN resources r ON r.id = up.group_id
                 WHERE up.group_id NOT IN (SELECT id FROM d)
                 GROUP BY up.group_id, r.display
             )
             SELECT d.id, d.doc, d.version, g.group_id, g.display, g.depth
             FROM d LEFT JOIN g ON true
             ORDER BY g.depth, g.display NULLS FIRST"
        )
    };
}
pub(super) const WITH_GROUPS_BY_ID: &str = with_groups_sql!("id = $1 AND rtype = $2");
pub(super) const WITH_GROUPS_BY_KEY: &str = with_groups_sql!("rtype = $2 AND unique_key = $1");

impl PostgresStore {
    /// A resource and its groups by one of the `WITH_GROUPS_*` statements.
    pub(super) fn with_groups(
        &self,
        sql: &'static str,
        rt: &ResourceTypeDef,
        target: &str,
    ) -> StoreResult<Option<(StoredResource, Vec<GroupRef>)>> {
        let rows = self.run(TxKind::Single, |s| {
            let rows = s.query(sql, &[&target, &rt.name, &MAX_GROUP_NESTING])?;
            rows.iter()
                .map(|r| {
                    let group = match r.try_get::<_, Option<String>>(3)? {
                        Some(gid) => Some(GroupRef {
                            id: gid,
                            display: r.try_get(4)?,
                            direct: r.try_get::<_, i64>(5)? == 0,
                        }),
                        None => None,
                    };
                    let resource = (
                        r.try_get::<_, String>(0)?,
                        r.try_get::<_, String>(1)?,
                        r.try_get::<_, i64>(2)?,
                    );
                    Ok((resource, group))
                })
                .collect::<TxResult<Vec<_>>>()
        })?;
        let Some(((id, doc, version), _)) = rows.first() else {
            return Ok(None);
        };
        let found = stored(id.clone(), &rt.name, doc, *version)?;
        let groups = rows.into_iter().filter_map(|(_, g)| g).collect();
        Ok(Some((found, groups)))
    }
}

/// A change-feed position: the writing transaction's id and the change row's id.
/// Written zero-padded so that text order is position order.
pub(super) fn position(tx: u64, id: &str) -> String {
    format!("p:{tx:020}:{id}")
}

pub(super) fn parse_position(p: &str) -> StoreResult<(u64, String)> {
    p.strip_prefix("p:")
        .and_then(|rest| rest.split_once(':'))
        .and_then(|(tx, id)| Some((tx.parse::<u64>().ok()?, id.to_string())))
        .ok_or_else(|| StoreError::BadCursor("not a position of this server".into()))
}

pub(super) fn stored(
    id: String,
    rtype: &str,
    doc: &str,
    version: i64,
) -> StoreResult<StoredResource> {
    Ok(StoredResource {
        id,
        rtype: rtype.to_string(),
        doc: serde_json::from_str(doc).map_err(json_err)?,
        version,
    })
}

impl ResourceStore for PostgresStore {
    fn create(&self, rt: &ResourceTypeDef, w: ResourceWrite) -> StoreResult<StoredResource> {
        self.create_many(vec![(rt.clone(), w)], 1)
            .pop()
            .unwrap_or_else(|| Err(StoreError::Backend("creation not attempted".into())))
    }

    fn create_many(
        &self,
        items: Vec<(ResourceTypeDef, ResourceWrite)>,
        max_failures: usize,
    ) -> Vec<StoreResult<StoredResource>> {
        self.note_rows(items.len().saturating_sub(1) as u64);
        let registry = self.registry.load();
        let prepared: Vec<_> = items
            .into_iter()
            .map(|(rt, w)| {
                let doc = serde_json::to_string(&w.doc).map_err(json_err);
                let mut index = IndexBatch::default();
                index.add(&registry, &rt, &w.id, &w.doc);
                (rt, w, doc, index)
            })
            .collect();
        // One transaction for all: a uniqueness conflict skips its item without
        // aborting the transaction (no savepoint per item); any other error fails
        // them all, and a retryable one runs them all again.
        let outcome = self.run(TxKind::Write, |s| {
            let mut out = Vec::with_capacity(prepared.len());
            let mut failures = 0;
            for (rt, w, doc, index) in &prepared {
                if failures >= max_failures {
                    break;
                }
                let r = match doc {
                    Err(e) => Err(e.clone()),
                    Ok(doc) => insert_new(s, rt, w, doc, index)?,
                };
                failures += usize::from(r.is_err());
                out.push(r);
            }
            Ok(out)
        });
        match outcome {
            Ok(out) => out
                .into_iter()
                .zip(prepared)
                .map(|(r, (rt, w, _, _))| {
                    r.map(|()| StoredResource {
                        id: w.id,
                        rtype: rt.name,
                        doc: w.doc,
                        version: 1,
                    })
                })
                .collect(),
            Err(e) => vec![Err(e); prepared.len()],
        }
    }

    fn get_with_groups(
        &self,
        rt: &ResourceTypeDef,
        id: &str,
    ) -> StoreResult<(StoredResource, Vec<GroupRef>)> {
        self.with_groups(WITH_GROUPS_BY_ID, rt, id)?
            .ok_or(StoreError::NotFound)
    }

    fn find_unique_with_groups(
        &self,
        rt: &ResourceTypeDef,
        key: &str,
    ) -> StoreResult<Option<(StoredResource, Vec<GroupRef>)>> {
        self.with_groups(WITH_GROUPS_BY_KEY, rt, key)
    }

    fn find_unique(&self, rt: &ResourceTypeDef, key: &str) -> StoreResult<Option<StoredResource>> {
        let row = self.run(TxKind::Single, |s| {
            let row = s.query_opt(&statements::postgres().find_unique, &[&rt.name, &key])?;
            Ok(match row {
                Some(r) => Some((
                    r.try_get::<_, String>(0)?,
                    r.try_get::<_, String>(1)?,
                    r.try_get::<_, i64>(2)?,
                )),
                None => None,
            })
        })?;
        row.map(|(id, doc, version)| stored(id, &rt.name, &doc, version))
            .transpose()
    }

    fn get(&self, rt: &ResourceTypeDef, id: &str) -> StoreResult<StoredResource> {
        let row = self.run(TxKind::Single, |s| {
            let row = s.query_opt(&statements::postgres().get, &[&id, &rt.name])?;
            Ok(match row {
                Some(r) => Some((r.try_get::<_, String>(0)?, r.try_get::<_, i64>(1)?)),
                None => None,
            })
        })?;
        let (doc, version) = row.ok_or(StoreError::NotFound)?;
        stored(id.to_string(), &rt.name, &doc, version)
    }

    fn replace(
        &self,
        rt: &ResourceTypeDef,
        w: ResourceWrite,
        if_version: Option<i64>,
    ) -> StoreResult<StoredResource> {
        let doc = serde_json::to_string(&w.doc).map_err(json_err)?;
        let set_secret = matches!(w.secret, SecretChange::Set(_));
        let secret = w.secret.new_hash();
        let mut index = IndexBatch::default();
        index.add(&self.registry.load(), rt, &w.id, &w.doc);
        let version = self.run(TxKind::Write, |s| {
            // Locks the row: writers of this resource (and of this group's member
            // rows) queue here, and each re-checks the version when its turn comes.
            let updated = s.query_opt(
                &statements::postgres().replace,
                &[
                    &w.id,
                    &rt.name,
                    &doc,
                    &crate::db_time(w.modified),
                    &w.unique_key,
                    &w.display,
                    &set_secret,
                    &secret,
                    &if_version,
                ],
            )?;
            let Some(row) = updated else {
                return Err(missing_or_changed(s, rt, &w.id)?);
            };
            let next: i64 = row.try_get(0)?;
            s.execute(&statements::postgres().delete_index, &[&w.id])?;
            index.insert(s)?;
            write_members(s, &w.id, &w.members)?;
            record_change(
                s,
                &crate::NewChange {
                    id: &w.id,
                    rtype: &rt.name,
                    op: ChangeOp::Updated,
                    version: next,
                    at: w.modified,
                    actor: &w.actor,
                },
                Some(&doc),
            )?;
            Ok(next)
        })?;
        Ok(StoredResource {
            id: w.id,
            rtype: rt.name.clone(),
            doc: w.doc,
            version,
        })
    }

    fn delete(
        &self,
        rt: &ResourceTypeDef,
        id: &str,
        if_version: Option<i64>,
        at: chrono::DateTime<chrono::Utc>,
        actor: &crate::Actor,
    ) -> StoreResult<()> {
        self.run(TxKind::Write, |s| {
            let deleted = s.query_opt(
                &statements::postgres().delete,
                &[&id, &rt.name, &if_version],
            )?;
            let Some(row) = deleted else {
                return Err(missing_or_changed(s, rt, id)?);
            };
            let version: i64 = row.try_get(0)?;
            s.execute(&statements::postgres().delete_index, &[&id])?;
            s.execute(&statements::postgres().delete_memberships, &[&id])?;
            let change = crate::NewChange {
                id,
                rtype: &rt.name,
                op: ChangeOp::Deleted,
                version,
                at,
                actor,
            };
            record_change(s, &change, None)
        })
    }

    fn search(&self, rt: &ResourceTypeDef, q: &Query) -> StoreResult<Page> {
        let sql = search_sql(&PgDialect, &self.registry.load(), rt, q, None)
            .map_err(StoreError::Query)?;
        // Page and total from one snapshot; a count-only lookup needs no
        // transaction. A search that may scan runs in one, under the budget.
        let lookup = q.filter.as_ref().is_some_and(crate::sql::is_lookup);
        let mode = if sql.page_sql.is_some() || !lookup {
            TxKind::Snapshot
        } else {
            TxKind::Single
        };
        let budget = self.search_budget;
        let (total, rows) = self.run(mode, |s| {
            if !lookup {
                s.limit_statements(budget)?;
            }
            // Lookups and unfiltered pages plan the same whatever the values.
            let keep = lookup || q.filter.is_none();
            page_and_total(s, &sql, q, keep).map_err(|e| match e {
                Fail::Db(e) if e.code() == Some(&SqlState::QUERY_CANCELED) => {
                    Fail::Store(crate::over_budget(budget))
                }
                other => other,
            })
        })?;
        crate::model::assemble_page(&rt.name, total, rows, sql.reversed, q.schemas_only)
    }

    fn ready(&self) -> StoreResult<()> {
        let applied: i64 = self.run(TxKind::Single, |s| {
            let row = s.query_opt("SELECT count(*) FROM schema_migrations", &[])?;
            Ok(row.map_or(Ok(0), |r| r.try_get(0))?)
        })?;
        crate::migrations_applied(applied, crate::ddl::POSTGRES_MIGRATIONS.len())
    }

    fn existing(&self, ids: &[String]) -> StoreResult<Vec<Member>> {
        if ids.is_empty() {
            return Ok(Vec::new());
        }
        let found: HashMap<String, String> = self.run(TxKind::Single, |s| {
            let rows = s.query(
                "SELECT id, rtype FROM resources WHERE id = ANY($1)",
                &[&ids],
            )?;
            rows.iter()
                .map(|r| Ok((r.try_get(0)?, r.try_get(1)?)))
                .collect()
        })?;
        Ok(ids
            .iter()
            .filter_map(|id| {
                let kind = found
                    .get(id)
                    .and_then(|k: &String| crate::MemberKind::parse(k))?;
                Some(Member {
                    id: id.clone(),
                    kind,
                })
            })
            .collect())
    }

    fn password_hash(&self, id: &str) -> StoreResult<Option<String>> {
        self.run(TxKind::Single, |s| {
            let row = s.query_opt("SELECT secret FROM resources WHERE id = $1", &[&id])?;
            Ok(row.map(|r| r.try_get(0)).transpose()?.flatten())
        })
    }

    fn versions(
        &self,
        rtype: &str,
        after: Option<&str>,
        limit: usize,
    ) -> StoreResult<Vec<(String, i64)>> {
        let st = statements::postgres();
        let n = crate::sync::as_count(limit);
        self.run(TxKind::Single, |s| {
            let rows = match after {
                None => s.query(&st.versions_first_page, &[&rtype, &n])?,
                Some(a) => s.query(&st.versions_next_page, &[&rtype, &a, &n])?,
            };
            rows.iter()
                .map(|r| Ok((r.try_get(0)?, r.try_get(1)?)))
                .collect()
        })
    }
}

impl MembershipStore for PostgresStore {
    fn members(&self, group_id: &str, with_display: bool) -> StoreResult<Vec<MemberView>> {
        self.run(TxKind::Single, |s| {
            let st = statements::postgres();
            let sql = if with_display {
                &st.members_with_display
            } else {
                &st.members
            };
            let rows = s.query(sql, &[&group_id])?;
            rows.iter()
                .map(|r| {
                    Ok(MemberView {
                        id: r.try_get(0)?,
                        kind: r.try_get(1)?,
                        display: r.try_get(2)?,
                    })
                })
                .collect()
        })
    }

    fn members_page(
        &self,
        group_id: &str,
        offset: usize,
        limit: usize,
    ) -> StoreResult<(u64, Vec<MemberView>)> {
        let st = statements::postgres();
        let (limit, offset) = (crate::sync::as_count(limit), crate::sync::as_count(offset));
        self.run(TxKind::Single, |s| {
            let total: i64 = s
                .query_opt(&st.count_members, &[&group_id])?
                .map(|r| r.try_get(0))
                .transpose()?
                .unwrap_or(0);
            let rows = s.query(&st.members_page, &[&group_id, &limit, &offset])?;
            let page = rows
                .iter()
                .map(|r| {
                    Ok(MemberView {
                        id: r.try_get(0)?,
                        kind: r.try_get(1)?,
                        display: r.try_get(2)?,
                    })
                })
                .collect::<TxResult<Vec<_>>>()?;
            Ok((u64::try_from(total).unwrap_or(0), page))
        })
    }

    fn groups_of(&self, member_id: &str) -> StoreResult<Vec<GroupRef>> {
        self.run(TxKind::Single, |s| {
            // Depth-capped walk up the membership graph (cycles end at the cap).
            let rows = s.query(
                "WITH RECURSIVE up(group_id, depth) AS (
                     SELECT group_id, 0::bigint FROM members WHERE member_id = $1
                     UNION
                     SELECT m.group_id, up.depth + 1 FROM members m
                     JOIN up ON m.member_id = up.group_id
                     WHERE up.depth < $2::bigint
                 )
                 SELECT up.group_id, r.display, min(up.depth) FROM up
                 JOIN resources r ON r.id = up.group_id
                 WHERE up.group_id <> $1
                 GROUP BY up.group_id, r.display
                 ORDER BY min(up.depth), r.display NULLS FIRST",
                &[&member_id, &MAX_GROUP_NESTING],
            )?;
            rows.iter()
                .map(|r| {
                    Ok(GroupRef {
                        id: r.try_get(0)?,
                        display: r.try_get(1)?,
                        direct: r.try_get::<_, i64>(2)? == 0,
                    })
                })
                .collect()
        })
    }

    fn members_among(&self, group_id: &str, ids: &[String]) -> StoreResult<Vec<String>> {
        if ids.is_empty() {
            return Ok(Vec::new());
        }
        let found: HashSet<String> = self.run(TxKind::Single, |s| {
            let rows = s.query(
                "SELECT member_id FROM members WHERE group_id = $1 AND member_id = ANY($2)",
                &[&group_id, &ids],
            )?;
            rows.iter()
                .map(|r| r.try_get(0).map_err(Fail::Db))
                .collect()
        })?;
        Ok(ids
            .iter()
            .filter(|id| found.contains(*id))
            .cloned()
            .collect())
    }
}

/// Every transaction running in the snapshot, whether it is in another database,
/// and the first transaction id not yet assigned.
const RUNNING_TRANSACTIONS: &str = "
    WITH elsewhere AS MATERIALIZED (
        SELECT backend_xid::text AS xid FROM pg_stat_activity
        WHERE backend_xid IS NOT NULL AND datname IS DISTINCT FROM current_database())
    SELECT x::text, (x::text::numeric % 4294967296)::text IN (SELECT xid FROM elsewhere)
    FROM pg_snapshot_xip(pg_current_snapshot()) AS x
    UNION ALL
    SELECT pg_snapshot_xmax(pg_current_snapshot())::text, NULL";

/// How much longer than a scimd write may take a transaction is still waited
/// for: the time its COMMIT may need after the writer checked its bound.
const SETTLE_MARGIN: std::time::Duration = std::time::Duration::from_secs(5);

impl PostgresStore {
    /// The feed's horizon in the session's snapshot: every change row of a
    /// transaction below it is in the snapshot already, or never will be.
    ///
    /// A transaction still running when the snapshot was taken could commit a
    /// change later, behind positions handed out meanwhile; so the horizon is
    /// the oldest running transaction that may be a scimd writer. Two kinds
    /// cannot be: one in another database (it cannot write this one's tables),
    /// and one this process has seen running for longer than scimd's writes
    /// may take (`max_write_duration`, past which a scimd write rolls back
    /// instead of committing) plus a margin. A forgotten session, a long
    /// migration or another application on the server thus holds the feed back
    /// by at most that bound, and never makes it skip or reorder a change.
    fn horizon(&self, s: &mut Session<'_>) -> TxResult<String> {
        let rows = s.query(RUNNING_TRANSACTIONS, &[])?;
        let now = std::time::Instant::now();
        let expire = self.max_write_duration + SETTLE_MARGIN;
        let mut horizon: Option<u64> = None;
        let mut running = self
            .running
            .lock()
            .map_err(|_| Fail::Store(StoreError::Backend("feed state poisoned".into())))?;
        let mut seen = std::collections::HashMap::new();
        for r in rows {
            let x: String = r.try_get(0)?;
            let elsewhere: Option<bool> = r.try_get(1)?;
            let x: u64 = x
                .parse()
                .map_err(|_| Fail::Store(StoreError::Backend(format!("transaction id '{x}'"))))?;
            let Some(elsewhere) = elsewhere else {
                // The snapshot's xmax: nothing at or above it has committed.
                horizon = Some(horizon.map_or(x, |h| h.min(x)));
                continue;
            };
            let first = running.get(&x).copied().unwrap_or(now);
            seen.insert(x, first);
            let expired = now.duration_since(first) > expire;
            if !elsewhere && !expired {
                horizon = Some(horizon.map_or(x, |h| h.min(x)));
            }
        }
        // Transactions no longer running are forgotten; a reader with an older
        // snapshot may add one back as new, which only makes it wait longer.
        running.retain(|x, _| seen.contains_key(x));
        for (x, first) in seen {
            running.entry(x).or_insert(first);
        }
        Ok(horizon.unwrap_or(u64::MAX).to_string())
    }
}

impl FeedStore for PostgresStore {
    /// Changes are delivered in (transaction id, row id) order, and only those
    /// below the horizon (`horizon`): a transaction that began earlier but
    /// commits later cannot add a row behind a position already handed out.
    fn changes(&self, after: Option<&str>, limit: usize) -> StoreResult<ChangePage> {
        let from = after.map(parse_position).transpose()?;
        let limit_rows = i64::try_from(limit).unwrap_or(i64::MAX - 1) + 1;
        let (pruned, rows) = self.run(TxKind::Snapshot, |s| {
            let pruned = s
                .query_opt(&statements::postgres().pruned_through, &[])?
                .map(|r| r.try_get::<_, String>(0))
                .transpose()?;
            let pruned = pruned.as_deref().map(parse_position).transpose()?;
            if let (Some(f), Some(p)) = (&from, &pruned) {
                if f < p {
                    return Err(Fail::Store(StoreError::BadCursor(
                        "the changes after this position are no longer retained".into(),
                    )));
                }
            }
            let start = match (&from, &pruned) {
                (Some(f), Some(p)) => Some(f.max(p).clone()),
                (f, p) => f.clone().or_else(|| p.clone()),
            };
            let (tx, id) = start.clone().unwrap_or((0, String::new()));
            let horizon = self.horizon(s)?;
            let rows = s.query(
                "SELECT tx::text, id, res_id, rtype, op, version, at, doc FROM changes
                 WHERE (tx, id) > ($1::text::xid8, $2::text)
                   AND tx < $4::text::xid8
                 ORDER BY tx, id LIMIT $3",
                &[&tx.to_string(), &id, &limit_rows, &horizon],
            )?;
            Ok((start, rows))
        })?;
        let mut changes = Vec::new();
        let mut last = pruned.or(from);
        let mut more = false;
        for r in rows {
            if changes.len() == limit {
                more = true;
                break;
            }
            let tx: String = r.try_get(0).map_err(db_error)?;
            let tx: u64 = tx
                .parse()
                .map_err(|_| StoreError::Backend(format!("transaction id '{tx}'")))?;
            let op: String = r.try_get(4).map_err(db_error)?;
            let doc: Option<String> = r.try_get(7).map_err(db_error)?;
            last = Some((tx, r.try_get(1).map_err(db_error)?));
            changes.push(Change {
                op: ChangeOp::parse(&op)
                    .ok_or_else(|| StoreError::Backend(format!("unknown change op '{op}'")))?,
                id: r.try_get(2).map_err(db_error)?,
                rtype: r.try_get(3).map_err(db_error)?,
                version: r.try_get(5).map_err(db_error)?,
                at: r.try_get(6).map_err(db_error)?,
                doc: doc
                    .map(|d| serde_json::from_str(&d))
                    .transpose()
                    .map_err(json_err)?,
            });
        }
        let (tx, id) = last.unwrap_or((0, String::new()));
        Ok(ChangePage {
            changes,
            next: position(tx, &id),
            more,
        })
    }

    /// The newest settled row (see `changes`): every later row has a higher
    /// transaction id, so nothing can appear behind it.
    fn feed_head(&self) -> StoreResult<Option<String>> {
        self.run(TxKind::Snapshot, |s| {
            let horizon = self.horizon(s)?;
            let Some(last) = s.query_opt(
                "SELECT tx::text, id FROM changes
                 WHERE tx < $1::text::xid8
                 ORDER BY tx DESC, id DESC LIMIT 1",
                &[&horizon],
            )?
            else {
                return Ok(None);
            };
            let tx: String = last.try_get(0)?;
            let id: String = last.try_get(1)?;
            let tx: u64 = tx
                .parse()
                .map_err(|_| StoreError::Backend(format!("transaction id '{tx}'")))?;
            Ok(Some(position(tx, &id)))
        })
    }

    fn prune_changes(&self, before: chrono::DateTime<chrono::Utc>) -> StoreResult<u64> {
        let before = crate::db_time(before);
        self.run(TxKind::Write, |s| {
            // Only settled rows (see `changes`) can be pruned, so nothing can later
            // appear behind the pruned position.
            let horizon = self.horizon(s)?;
            let Some(last) = s.query_opt(
                "SELECT tx::text, id FROM changes
                 WHERE at < $1 AND tx < $2::text::xid8
                 ORDER BY tx DESC, id DESC LIMIT 1",
                &[&before, &horizon],
            )?
            else {
                return Ok(0);
            };
            let tx: String = last.try_get(0)?;
            let id: String = last.try_get(1)?;
            let n = s.execute(
                "DELETE FROM changes WHERE (tx, id) <= ($1::text::xid8, $2::text)",
                &[&tx, &id],
            )?;
            let tx: u64 = tx
                .parse()
                .map_err(|_| StoreError::Backend(format!("transaction id '{tx}'")))?;
            s.execute(
                "INSERT INTO feed_state (name, value) VALUES ('pruned_through', $1)
                 ON CONFLICT (name) DO UPDATE SET value = excluded.value
                 WHERE feed_state.value COLLATE \"C\" < excluded.value COLLATE \"C\"",
                &[&position(tx, &id)],
            )?;
            Ok(n)
        })
    }

    fn writes(&self, q: &crate::WriteQuery) -> StoreResult<Vec<crate::WriteRecord>> {
        let (sql, params) = crate::audit::writes_sql(q, &["tx", "id"], |n| format!("${n}"));
        let params: Vec<crate::sql::SqlParam> =
            params.into_iter().map(crate::sql::SqlParam::Text).collect();
        self.run(TxKind::Single, |s| {
            let rows = s.query_built(&sql, &params, false)?;
            rows.iter()
                .map(|r| {
                    Ok(crate::WriteRecord {
                        at: r.try_get(0)?,
                        op: r.try_get(1)?,
                        resource_type: r.try_get(2)?,
                        resource_id: r.try_get(3)?,
                        version: r.try_get(4)?,
                        principal: r.try_get(5)?,
                        request_id: r.try_get(6)?,
                        source_ip: r.try_get(7)?,
                    })
                })
                .collect()
        })
    }
}

impl SchemaStore for PostgresStore {
    fn custom_attributes(&self) -> StoreResult<Vec<CustomAttribute>> {
        self.run(TxKind::Single, |s| {
            s.query(
                "SELECT definition FROM custom_attributes ORDER BY created, name_key",
                &[],
            )?
            .iter()
            .map(|r| {
                let def: String = r.get(0);
                serde_json::from_str(&def).map_err(|e| Fail::Store(json_err(e)))
            })
            .collect()
        })
    }

    fn add_custom_attribute(&self, attr: &CustomAttribute) -> StoreResult<()> {
        let definition = serde_json::to_string(attr).map_err(json_err)?;
        let key = attr.name.to_lowercase();
        self.run(TxKind::Single, |s| {
            s.execute(
                &statements::postgres().add_custom_attribute,
                &[&key, &definition],
            )?;
            Ok(())
        })
    }

    fn remove_custom_attribute(&self, name: &str) -> StoreResult<()> {
        let key = name.to_lowercase();
        self.run(TxKind::Single, |s| {
            found(s.execute(&statements::postgres().remove_custom_attribute, &[&key])?)
        })
    }
}

/// A script row (columns of `statements::LIST_SCRIPTS`) as a record.
fn script_record(r: &postgres::Row) -> TxResult<ScriptRecord> {
    let row = (
        r.try_get(0)?,
        r.try_get(1)?,
        r.try_get(2)?,
        r.try_get(3)?,
        r.try_get(4)?,
        r.try_get(5)?,
        r.try_get(6)?,
        r.try_get(7)?,
        r.try_get(8)?,
    );
    Ok(crate::model::script_record(row)?)
}

impl ScriptStore for PostgresStore {
    fn scripts(&self) -> StoreResult<Vec<ScriptRecord>> {
        self.run(TxKind::Single, |s| {
            s.query(&statements::postgres().list_scripts, &[])?
                .iter()
                .map(script_record)
                .collect()
        })
    }

    fn script(&self, name: &str) -> StoreResult<ScriptRecord> {
        let key = name.to_lowercase();
        self.run(TxKind::Single, |s| {
            match s.query_opt(&statements::postgres().get_script, &[&key])? {
                Some(r) => script_record(&r),
                None => Err(Fail::Store(StoreError::NotFound)),
            }
        })
    }

    fn create_script(&self, script: &ScriptRecord) -> StoreResult<()> {
        let properties = serde_json::to_string(&script.properties).map_err(json_err)?;
        let key = script.name.to_lowercase();
        let (created, updated) = (
            crate::db_time(script.created),
            crate::db_time(script.updated),
        );
        let last_error_at = script.last_error_at.map(crate::db_time);
        self.run(TxKind::Write, |s| {
            let st = statements::postgres();
            s.execute(
                &st.add_script,
                &[
                    &key,
                    &script.name,
                    &script.order,
                    &script.enabled,
                    &script.source,
                    &properties,
                    &created,
                    &updated,
                    &script.last_error,
                    &last_error_at,
                ],
            )?;
            s.execute(&st.bump_scripts_revision, &[])?;
            Ok(())
        })
    }

    fn replace_script(&self, script: &ScriptRecord) -> StoreResult<()> {
        let properties = serde_json::to_string(&script.properties).map_err(json_err)?;
        let key = script.name.to_lowercase();
        let updated = crate::db_time(script.updated);
        self.run(TxKind::Write, |s| {
            let st = statements::postgres();
            found(s.execute(
                &st.replace_script,
                &[
                    &key,
                    &script.name,
                    &script.order,
                    &script.enabled,
                    &script.source,
                    &properties,
                    &updated,
                ],
            )?)?;
            s.execute(&st.bump_scripts_revision, &[])?;
            Ok(())
        })
    }

    fn remove_script(&self, name: &str) -> StoreResult<()> {
        let key = name.to_lowercase();
        self.run(TxKind::Write, |s| {
            let st = statements::postgres();
            found(s.execute(&st.remove_script, &[&key])?)?;
            s.execute(&st.bump_scripts_revision, &[])?;
            Ok(())
        })
    }

    fn scripts_revision(&self) -> StoreResult<i64> {
        self.run(TxKind::Single, |s| {
            Ok(s.query_opt(&statements::postgres().scripts_revision, &[])?
                .map(|r| r.try_get::<_, i64>(0))
                .transpose()?
                .unwrap_or(0))
        })
    }

    fn record_script_error(
        &self,
        name: &str,
        message: &str,
        at: chrono::DateTime<chrono::Utc>,
    ) -> StoreResult<()> {
        let key = name.to_lowercase();
        let at = crate::db_time(at);
        self.run(TxKind::Single, |s| {
            found(s.execute(
                &statements::postgres().record_script_error,
                &[&key, &message, &at],
            )?)
        })
    }
}

impl TransferStore for PostgresStore {
    fn export(&self, sink: &mut dyn FnMut(ExportRecord) -> StoreResult<()>) -> StoreResult<u64> {
        // Not retried: records already handed to the sink cannot be taken back.
        let mut conn = self.conn()?;
        let Conn { client, .. } = &mut *conn;
        let mut tx = client
            .build_transaction()
            .isolation_level(IsolationLevel::RepeatableRead)
            .read_only(true)
            .start()
            .map_err(db_error)?;
        let portal = tx
            .bind(&statements::postgres().export_resources, &[])
            .map_err(db_error)?;
        let mut n = 0;
        loop {
            let rows = tx.query_portal(&portal, 500).map_err(db_error)?;
            if rows.is_empty() {
                break;
            }
            let groups: Vec<String> = rows
                .iter()
                .filter(|r| r.try_get::<_, &str>(1).is_ok_and(|t| t == "Group"))
                .map(|r| r.try_get(0))
                .collect::<Result<_, _>>()
                .map_err(db_error)?;
            let mut members: HashMap<String, Vec<Member>> = HashMap::new();
            if !groups.is_empty() {
                for m in tx
                    .query(
                        "SELECT group_id, member_id, member_type FROM members
                         WHERE group_id = ANY($1) ORDER BY group_id, pos",
                        &[&groups],
                    )
                    .map_err(db_error)?
                {
                    members
                        .entry(m.try_get(0).map_err(db_error)?)
                        .or_default()
                        .push(Member {
                            id: m.try_get(1).map_err(db_error)?,
                            kind: m.try_get(2).map_err(db_error)?,
                        });
                }
            }
            for r in rows {
                let id: String = r.try_get(0).map_err(db_error)?;
                let doc: String = r.try_get(2).map_err(db_error)?;
                let created: String = r.try_get(4).map_err(db_error)?;
                let modified: String = r.try_get(5).map_err(db_error)?;
                sink(ExportRecord {
                    rtype: r.try_get(1).map_err(db_error)?,
                    doc: serde_json::from_str(&doc).map_err(json_err)?,
                    version: r.try_get(3).map_err(db_error)?,
                    created: crate::parse_db_time(&created)?,
                    modified: crate::parse_db_time(&modified)?,
                    unique_key: r.try_get(6).map_err(db_error)?,
                    display: r.try_get(7).map_err(db_error)?,
                    secret: r.try_get(8).map_err(db_error)?,
                    members: members.remove(&id).unwrap_or_default(),
                    id,
                })?;
                n += 1;
            }
        }
        tx.commit().map_err(db_error)?;
        Ok(n)
    }

    fn import(&self, batch: &[ExportRecord]) -> StoreResult<()> {
        self.note_rows(batch.len().saturating_sub(1) as u64);
        if batch.is_empty() {
            return Ok(());
        }
        let mut ids = Vec::with_capacity(batch.len());
        let mut rtypes = Vec::with_capacity(batch.len());
        let mut docs = Vec::with_capacity(batch.len());
        let mut versions = Vec::with_capacity(batch.len());
        let mut created = Vec::with_capacity(batch.len());
        let mut modified = Vec::with_capacity(batch.len());
        let mut unique_keys = Vec::with_capacity(batch.len());
        let mut displays = Vec::with_capacity(batch.len());
        let mut secrets = Vec::with_capacity(batch.len());
        let mut groups = Vec::new();
        let mut index = IndexBatch::default();
        let mut members = MemberBatch::default();
        let registry = self.registry.load();
        for rec in batch {
            let rt = registry.resource_type(&rec.rtype).ok_or_else(|| {
                StoreError::Backend(format!("unknown resource type '{}'", rec.rtype))
            })?;
            ids.push(rec.id.clone());
            rtypes.push(rec.rtype.clone());
            docs.push(serde_json::to_string(&rec.doc).map_err(json_err)?);
            versions.push(rec.version);
            created.push(crate::db_time(rec.created));
            modified.push(crate::db_time(rec.modified));
            unique_keys.push(rec.unique_key.clone());
            displays.push(rec.display.clone());
            secrets.push(rec.secret.clone());
            index.add(&registry, rt, &rec.id, &rec.doc);
            if rt.name == "Group" || !rec.members.is_empty() {
                groups.push(rec.id.clone());
                members.add(&rec.id, &rec.members, 1);
            }
        }
        self.run(TxKind::Write, |s| {
            s.execute(
                "INSERT INTO resources (id, rtype, doc, version, created, modified, unique_key, display, secret)
                 SELECT * FROM unnest($1::text[], $2::text[], $3::text[], $4::bigint[], $5::text[],
                                      $6::text[], $7::text[], $8::text[], $9::text[])
                 ON CONFLICT (id) DO UPDATE SET rtype = excluded.rtype, doc = excluded.doc,
                    version = excluded.version, created = excluded.created,
                    modified = excluded.modified, unique_key = excluded.unique_key,
                    display = excluded.display, secret = excluded.secret",
                &[
                    &ids,
                    &rtypes,
                    &docs,
                    &versions,
                    &created,
                    &modified,
                    &unique_keys,
                    &displays,
                    &secrets,
                ],
            )?;
            s.execute("DELETE FROM attr_index WHERE res_id = ANY($1)", &[&ids])?;
            index.insert(s)?;
            if !groups.is_empty() {
                s.execute("DELETE FROM members WHERE group_id = ANY($1)", &[&groups])?;
                members.insert(s)?;
            }
            Ok(())
        })
    }
}

/// A search's page (when it asks for one) and its total, on one session.
fn page_and_total(
    s: &mut super::session::Session<'_>,
    sql: &crate::sql::SearchSql,
    q: &Query,
    keep: bool,
) -> TxResult<(i64, Vec<crate::model::PageRow>)> {
    let mut rows: Vec<crate::model::PageRow> = Vec::new();
    if let Some(page_sql) = &sql.page_sql {
        for r in s.query_built(page_sql, &sql.params, keep)? {
            rows.push((
                r.try_get(0)?,
                r.try_get(1)?,
                r.try_get(2)?,
                r.try_get(3)?,
                r.try_get(4)?,
            ));
        }
    }
    let total: i64 = match crate::model::page_total(q, &rows) {
        Some(t) => t,
        None => match s
            .query_built(&sql.count_sql, &sql.params[..sql.count_params], keep)?
            .first()
        {
            Some(r) => r.try_get(0)?,
            None => 0,
        },
    };
    Ok((total, rows))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn positions_order_as_text_and_parse_back() {
        let a = position(9, "b");
        let b = position(10, "a");
        assert!(a < b);
        assert_eq!(parse_position(&b).ok(), Some((10, "a".to_string())));
        assert!(parse_position("s:12").is_err());
        assert!(parse_position("p:x:y").is_err());
    }
}
