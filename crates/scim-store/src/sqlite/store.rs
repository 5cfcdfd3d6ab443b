//! The storage traits on SQLite: reads on the reader threads or point-read
//! connections, writes as jobs of the writer's group commit.

use super::batch::{
    count_type, delete_index, insert_resource, keep_superseded, record_change, write_index,
    write_members, Existing,
};
use super::session::{open, READER_CACHE_KIB};
use super::{backend, json_err, SqliteStore};
use crate::dialect::Sqlite as SqliteDialect;
use crate::sql::{search_sql, SearchSql, SqlParam};
use crate::statements;
use crate::{script_record, ScriptRow};
use crate::{
    Change, ChangeOp, ChangePage, ExportRecord, FeedStore, GroupRef, Member, MemberView,
    MembershipStore, Page, Query, ResourceStore, ResourceWrite, SchemaStore, ScriptRecord,
    ScriptStore, SecretChange, StoreError, StoreResult, StoredResource, TransferStore,
};
use rusqlite::{params, params_from_iter, Connection, OptionalExtension, Transaction};
use scim_proto::schema::custom::CustomAttribute;
use scim_proto::schema::ResourceTypeDef;

/// How deep nested groups are followed when computing `User.groups`.
pub(super) const MAX_GROUP_NESTING: i64 = 32;

pub(super) fn parse_position(after: Option<&str>) -> StoreResult<i64> {
    match after {
        None => Ok(0),
        Some(p) => p
            .strip_prefix("s:")
            .and_then(|n| n.parse::<i64>().ok())
            .filter(|n| *n >= 0)
            .ok_or_else(|| StoreError::BadCursor("not a position of this server".into())),
    }
}

/// Why a conditional write matched no row: the resource is gone, or changed.
fn missing_or_changed(tx: &Transaction<'_>, rtype: &str, id: &str) -> StoreError {
    let exists = tx
        .query_row(&statements::sqlite().version_of, params![id, rtype], |_| {
            Ok(())
        })
        .optional();
    match exists {
        Ok(Some(())) => StoreError::VersionMismatch,
        Ok(None) => StoreError::NotFound,
        Err(e) => backend(e),
    }
}

pub(super) fn stored(
    id: String,
    rtype: String,
    doc: &str,
    version: i64,
) -> StoreResult<StoredResource> {
    Ok(StoredResource {
        id,
        rtype,
        doc: serde_json::from_str(doc).map_err(json_err)?,
        version,
    })
}

pub(super) fn to_sql(p: &SqlParam) -> rusqlite::types::Value {
    use rusqlite::types::Value as V;
    match p {
        SqlParam::Text(t) => V::Text(t.clone()),
        SqlParam::Num(n) => V::Real(*n),
        SqlParam::Bool(b) => V::Integer(i64::from(*b)),
        SqlParam::Int(i) => V::Integer(*i),
    }
}

/// Run a compiled search: the page, then the count unless the page tells it.
/// Run `f` with its statements stopped once `budget` has passed: the progress
/// handler is asked every few thousand virtual machine steps, so a scan stops
/// within microseconds of the deadline, and its error becomes 400 tooMany.
pub(super) fn within_budget<T>(
    conn: &Connection,
    budget: std::time::Duration,
    f: impl FnOnce() -> StoreResult<T>,
) -> StoreResult<T> {
    let deadline = std::time::Instant::now() + budget;
    conn.progress_handler(4_000, Some(move || std::time::Instant::now() > deadline));
    let out = f();
    conn.progress_handler(0, None::<fn() -> bool>);
    match out {
        // A read-only search fails past its deadline only because it was stopped.
        Err(StoreError::Backend(_)) if std::time::Instant::now() > deadline => {
            Err(crate::over_budget(budget))
        }
        other => other,
    }
}

pub(super) fn run_search(
    conn: &Connection,
    s: &SearchSql,
    q: &Query,
    rtype: &str,
) -> StoreResult<Page> {
    let bind = |n: usize| params_from_iter(s.params[..n].iter().map(to_sql));
    let mut rows: Vec<crate::model::PageRow> = Vec::new();
    if let Some(page_sql) = &s.page_sql {
        let mut stmt = conn.prepare_cached(page_sql).map_err(backend)?;
        let found = stmt
            .query_map(bind(s.params.len()), |r| {
                Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?, r.get(4)?))
            })
            .map_err(backend)?;
        for row in found {
            rows.push(row.map_err(backend)?);
        }
    }
    let total = match crate::model::page_total(q, &rows) {
        Some(t) => t,
        None => conn
            .prepare_cached(&s.count_sql)
            .map_err(backend)?
            .query_row(bind(s.count_params), |r| r.get(0))
            .map_err(backend)?,
    };
    crate::model::assemble_page(rtype, total, rows, s.reversed, q.schemas_only)
}

pub(super) fn members_of(
    conn: &Connection,
    group_id: &str,
    with_display: bool,
) -> StoreResult<Vec<MemberView>> {
    let st = statements::sqlite();
    let sql = if with_display {
        &st.members_with_display
    } else {
        &st.members
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
pub(super) fn changes_after(
    conn: &Connection,
    from: i64,
    resumed: bool,
    limit: usize,
) -> StoreResult<ChangePage> {
    let pruned: i64 = conn
        .query_row(&statements::sqlite().pruned_through, [], |r| r.get(0))
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
            "SELECT c.seq, c.res_id, c.rtype, c.op, c.version, c.at, coalesce(c.doc, r.doc)
             FROM changes c
             LEFT JOIN resources r ON c.doc IS NULL AND c.op <> 'deleted'
                 AND r.id = c.res_id AND r.version = c.version
             WHERE c.seq > ?1 ORDER BY c.seq LIMIT ?2",
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

impl ResourceStore for SqliteStore {
    fn cheap_point_reads(&self) -> bool {
        true
    }

    fn create(&self, rt: &ResourceTypeDef, w: ResourceWrite) -> StoreResult<StoredResource> {
        let doc = serde_json::to_string(&w.doc).map_err(json_err)?;
        let rt = rt.clone();
        self.write(move |tx, registry| insert_resource(tx, registry, &rt, w, &doc))
    }

    fn create_many(
        &self,
        items: Vec<(ResourceTypeDef, ResourceWrite)>,
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
                // No savepoint per item (they dominated the writer's time in a
                // Bulk batch, docs/benchmarks.md): an item's only expected failure is the
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
            .prepare_cached(&statements::sqlite().get)
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
            .prepare_cached(&statements::sqlite().find_unique)
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
        w: ResourceWrite,
        if_version: Option<i64>,
    ) -> StoreResult<StoredResource> {
        let doc = serde_json::to_string(&w.doc).map_err(json_err)?;
        let rt = rt.clone();
        self.write(move |tx, registry| {
            keep_superseded(tx, &w.id)?;
            let next: Option<i64> = tx
                .query_row(
                    &statements::sqlite().replace,
                    params![
                        w.id,
                        rt.name,
                        doc,
                        crate::db_time(w.modified),
                        w.unique_key,
                        w.display,
                        matches!(w.secret, SecretChange::Set(_)),
                        w.secret.new_hash(),
                        if_version
                    ],
                    |r| r.get(0),
                )
                .optional()
                .map_err(backend)?;
            let Some(next) = next else {
                return Err(missing_or_changed(tx, &rt.name, &w.id));
            };
            write_index(tx, registry, &rt, &w, Existing::Maybe)?;
            write_members(tx, &w.id, &w.members)?;
            record_change(
                tx,
                &crate::NewChange {
                    id: &w.id,
                    rtype: &rt.name,
                    op: ChangeOp::Updated,
                    version: next,
                    at: w.modified,
                    actor: &w.actor,
                },
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
        actor: &crate::Actor,
    ) -> StoreResult<()> {
        let (id, rtype, actor) = (id.to_string(), rt.name.clone(), actor.clone());
        self.write(move |tx, _| {
            let (id, rt_name) = (id.as_str(), rtype.as_str());
            let st = statements::sqlite();
            keep_superseded(tx, id)?;
            let deleted: Option<i64> = tx
                .query_row(&st.delete, params![id, rt_name, if_version], |r| r.get(0))
                .optional()
                .map_err(backend)?;
            let Some(version) = deleted else {
                return Err(missing_or_changed(tx, rt_name, id));
            };
            count_type(tx, rt_name, -1)?;
            delete_index(tx, id)?;
            tx.execute(&st.delete_memberships, [id]).map_err(backend)?;
            record_change(
                tx,
                &crate::NewChange {
                    id,
                    rtype: rt_name,
                    op: ChangeOp::Deleted,
                    version,
                    at,
                    actor: &actor,
                },
            )
        })
    }

    fn search(&self, rt: &ResourceTypeDef, q: &Query) -> StoreResult<Page> {
        let queue = match &q.filter {
            Some(f) if crate::sql::is_lookup(f) => &self.lookups,
            _ => &self.scans,
        };
        let (registry, rt, q) = (self.registry.load(), rt.clone(), q.clone());
        let (budget, trigrams) = (self.search_budget, self.trigrams.clone());
        // Compiled on the reader: a substring filter asks its connection how
        // common the needle's trigrams are.
        Self::read(queue, move |conn| {
            let stats = trigrams.on(conn);
            let s = search_sql(&SqliteDialect, &registry, &rt, &q, Some(&stats))
                .map_err(StoreError::Query)?;
            within_budget(conn, budget, || run_search(conn, &s, &q, &rt.name))
        })
    }

    fn ready(&self) -> StoreResult<()> {
        let conn = self.point_reader()?;
        let version: i64 = conn
            .query_row("PRAGMA user_version", [], |r| r.get(0))
            .map_err(backend)?;
        crate::migrations_applied(version, crate::ddl::SQLITE_MIGRATIONS.len())
    }

    fn existing(&self, ids: &[String]) -> StoreResult<Vec<Member>> {
        let conn = self.point_reader()?;
        let mut stmt = conn
            .prepare_cached("SELECT rtype FROM resources WHERE id = ?1")
            .map_err(backend)?;
        let mut found = Vec::new();
        for id in ids {
            let rtype = stmt
                .query_row([id], |r| r.get::<_, String>(0))
                .optional()
                .map_err(backend)?;
            if let Some(kind) = rtype.as_deref().and_then(crate::MemberKind::parse) {
                found.push(Member {
                    id: id.clone(),
                    kind,
                });
            }
        }
        Ok(found)
    }

    fn password_hash(&self, id: &str) -> StoreResult<Option<String>> {
        let conn = self.point_reader()?;
        conn.prepare_cached("SELECT secret FROM resources WHERE id = ?1")
            .and_then(|mut s| s.query_row([id], |r| r.get(0)).optional())
            .map(Option::flatten)
            .map_err(backend)
    }

    fn versions(
        &self,
        rtype: &str,
        after: Option<&str>,
        limit: usize,
    ) -> StoreResult<Vec<(String, i64)>> {
        let conn = self.point_reader()?;
        let st = crate::statements::sqlite();
        let row = |r: &rusqlite::Row<'_>| Ok((r.get(0)?, r.get(1)?));
        let n = crate::sync::as_count(limit);
        let rows = match after {
            None => conn
                .prepare_cached(&st.versions_first_page)
                .and_then(|mut s| s.query_map(rusqlite::params![rtype, n], row)?.collect()),
            Some(a) => conn
                .prepare_cached(&st.versions_next_page)
                .and_then(|mut s| s.query_map(rusqlite::params![rtype, a, n], row)?.collect()),
        };
        rows.map_err(backend)
    }
}

impl MembershipStore for SqliteStore {
    fn members(&self, group_id: &str, with_display: bool) -> StoreResult<Vec<MemberView>> {
        let group_id = group_id.to_string();
        Self::read(&self.scans, move |conn| {
            members_of(conn, &group_id, with_display)
        })
    }

    fn members_page(
        &self,
        group_id: &str,
        offset: usize,
        limit: usize,
    ) -> StoreResult<(u64, Vec<MemberView>)> {
        let conn = self.point_reader()?;
        let st = statements::sqlite();
        let total: i64 = conn
            .prepare_cached(&st.count_members)
            .and_then(|mut s| s.query_row([group_id], |r| r.get(0)))
            .map_err(backend)?;
        let mut stmt = conn.prepare_cached(&st.members_page).map_err(backend)?;
        let rows = stmt
            .query_map(
                params![
                    group_id,
                    crate::sync::as_count(limit),
                    crate::sync::as_count(offset)
                ],
                |r| {
                    Ok(MemberView {
                        id: r.get(0)?,
                        kind: r.get(1)?,
                        display: r.get(2)?,
                    })
                },
            )
            .map_err(backend)?;
        let page = rows.collect::<Result<_, _>>().map_err(backend)?;
        Ok((u64::try_from(total).unwrap_or(0), page))
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
}

impl FeedStore for SqliteStore {
    fn changes(&self, after: Option<&str>, limit: usize) -> StoreResult<ChangePage> {
        let from = parse_position(after)?;
        let resumed = after.is_some();
        Self::read(&self.scans, move |conn| {
            changes_after(conn, from, resumed, limit)
        })
    }

    fn feed_head(&self) -> StoreResult<Option<String>> {
        Self::read(&self.lookups, |conn| {
            let newest: Option<i64> = conn
                .query_row("SELECT max(seq) FROM changes", [], |r| r.get(0))
                .map_err(backend)?;
            Ok(newest.map(|n| format!("s:{n}")))
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

    fn writes(&self, q: &crate::WriteQuery) -> StoreResult<Vec<crate::WriteRecord>> {
        let (sql, params) = crate::audit::writes_sql(q, &["seq"], |n| format!("?{n}"));
        Self::read(&self.scans, move |conn| {
            let mut stmt = conn.prepare(&sql).map_err(backend)?;
            let rows = stmt
                .query_map(rusqlite::params_from_iter(params.iter()), |r| {
                    Ok(crate::WriteRecord {
                        at: r.get(0)?,
                        op: r.get(1)?,
                        resource_type: r.get(2)?,
                        resource_id: r.get(3)?,
                        version: r.get(4)?,
                        principal: r.get(5)?,
                        request_id: r.get(6)?,
                        source_ip: r.get(7)?,
                    })
                })
                .map_err(backend)?;
            rows.collect::<rusqlite::Result<Vec<_>>>().map_err(backend)
        })
    }
}

impl SchemaStore for SqliteStore {
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
                &statements::sqlite().add_custom_attribute,
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
                .execute(&statements::sqlite().remove_custom_attribute, [key])
                .map_err(backend)?;
            if n == 0 {
                return Err(StoreError::NotFound);
            }
            Ok(())
        })
    }
}

fn script_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<ScriptRow> {
    Ok((
        r.get(0)?,
        r.get(1)?,
        r.get(2)?,
        r.get(3)?,
        r.get(4)?,
        r.get(5)?,
        r.get(6)?,
        r.get(7)?,
        r.get(8)?,
    ))
}

impl ScriptStore for SqliteStore {
    fn scripts(&self) -> StoreResult<Vec<ScriptRecord>> {
        Self::read(&self.lookups, |conn| {
            let mut stmt = conn
                .prepare_cached(&statements::sqlite().list_scripts)
                .map_err(backend)?;
            let rows = stmt.query_map([], script_row).map_err(backend)?;
            let mut out = Vec::new();
            for row in rows {
                out.push(script_record(row.map_err(backend)?)?);
            }
            Ok(out)
        })
    }

    fn script(&self, name: &str) -> StoreResult<ScriptRecord> {
        let key = name.to_lowercase();
        Self::read(&self.lookups, move |conn| {
            let row = conn
                .prepare_cached(&statements::sqlite().get_script)
                .map_err(backend)?
                .query_row([key], script_row)
                .optional()
                .map_err(backend)?;
            script_record(row.ok_or(StoreError::NotFound)?)
        })
    }

    fn create_script(&self, script: &ScriptRecord) -> StoreResult<()> {
        let properties = serde_json::to_string(&script.properties).map_err(json_err)?;
        let s = script.clone();
        self.write(move |tx, _| {
            let st = statements::sqlite();
            tx.execute(
                &st.add_script,
                params![
                    s.name.to_lowercase(),
                    s.name,
                    s.order,
                    s.enabled,
                    s.source,
                    properties,
                    crate::db_time(s.created),
                    crate::db_time(s.updated),
                    s.last_error,
                    s.last_error_at.map(crate::db_time),
                ],
            )
            .map_err(backend)?;
            tx.execute(&st.bump_scripts_revision, []).map_err(backend)?;
            Ok(())
        })
    }

    fn replace_script(&self, script: &ScriptRecord) -> StoreResult<()> {
        let properties = serde_json::to_string(&script.properties).map_err(json_err)?;
        let s = script.clone();
        self.write(move |tx, _| {
            let st = statements::sqlite();
            let n = tx
                .execute(
                    &st.replace_script,
                    params![
                        s.name.to_lowercase(),
                        s.name,
                        s.order,
                        s.enabled,
                        s.source,
                        properties,
                        crate::db_time(s.updated),
                    ],
                )
                .map_err(backend)?;
            if n == 0 {
                return Err(StoreError::NotFound);
            }
            tx.execute(&st.bump_scripts_revision, []).map_err(backend)?;
            Ok(())
        })
    }

    fn remove_script(&self, name: &str) -> StoreResult<()> {
        let key = name.to_lowercase();
        self.write(move |tx, _| {
            let st = statements::sqlite();
            let n = tx.execute(&st.remove_script, [key]).map_err(backend)?;
            if n == 0 {
                return Err(StoreError::NotFound);
            }
            tx.execute(&st.bump_scripts_revision, []).map_err(backend)?;
            Ok(())
        })
    }

    fn scripts_revision(&self) -> StoreResult<i64> {
        let conn = self.point_reader()?;
        let revision = conn
            .prepare_cached(&statements::sqlite().scripts_revision)
            .map_err(backend)?
            .query_row([], |r| r.get::<_, i64>(0))
            .optional()
            .map_err(backend)?;
        Ok(revision.unwrap_or(0))
    }

    fn record_script_error(
        &self,
        name: &str,
        message: &str,
        at: chrono::DateTime<chrono::Utc>,
    ) -> StoreResult<()> {
        let (key, message) = (name.to_lowercase(), message.to_string());
        self.write(move |tx, _| {
            let n = tx
                .execute(
                    &statements::sqlite().record_script_error,
                    params![key, message, crate::db_time(at)],
                )
                .map_err(backend)?;
            if n == 0 {
                return Err(StoreError::NotFound);
            }
            Ok(())
        })
    }
}

impl TransferStore for SqliteStore {
    fn export(&self, sink: &mut dyn FnMut(ExportRecord) -> StoreResult<()>) -> StoreResult<u64> {
        // A connection of its own (an export can take minutes), in one read
        // transaction: a consistent snapshot however long the sink takes.
        let mut conn = open(&self.path, true, READER_CACHE_KIB)?;
        let tx = conn.transaction().map_err(backend)?;
        let mut rows = tx
            .prepare(&statements::sqlite().export_resources)
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
            let mut was = tx
                .prepare_cached("SELECT rtype FROM resources WHERE id = ?1")
                .map_err(backend)?;
            for rec in &batch {
                let rt = registry.resource_type(&rec.rtype).ok_or_else(|| {
                    StoreError::Backend(format!("unknown resource type '{}'", rec.rtype))
                })?;
                let before: Option<String> = was
                    .query_row([&rec.id], |r| r.get(0))
                    .optional()
                    .map_err(backend)?;
                if before.as_deref() != Some(rec.rtype.as_str()) {
                    if let Some(old) = &before {
                        count_type(tx, old, -1)?;
                    }
                    count_type(tx, &rec.rtype, 1)?;
                }
                let doc = serde_json::to_string(&rec.doc).map_err(json_err)?;
                if before.is_some() {
                    keep_superseded(tx, &rec.id)?;
                }
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
                write_index(tx, registry, rt, &w, Existing::Maybe)?;
                write_members(tx, &rec.id, &w.members)?;
            }
            Ok(())
        })
    }
}
