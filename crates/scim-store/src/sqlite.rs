//! The embedded default backend: one SQLite file in WAL mode, one writer
//! connection (SQLite serialises writers anyway) and a small pool of readers.
//! `synchronous=FULL` so a write acknowledged to a client survives a crash.

use crate::dialect::Sqlite as SqliteDialect;
use crate::index::{index_rows, IndexValue};
use crate::sql::{compile_filter, compile_sort, SqlParam};
use crate::{
    GroupRef, Member, MemberChange, MemberView, Page, Query, SecretChange, SortOrder, Store,
    StoreError, StoreResult, StoredResource, Write,
};
use rusqlite::{params, params_from_iter, Connection, OpenFlags, OptionalExtension, Transaction};
use scim_proto::schema::{ResourceTypeDef, SchemaRegistry};
use std::path::Path;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

const READERS: usize = 4;
/// How deep nested groups are followed when computing `User.groups`.
const MAX_GROUP_NESTING: i64 = 32;

pub struct SqliteStore {
    registry: Arc<SchemaRegistry>,
    writer: Mutex<Connection>,
    readers: Vec<Mutex<Connection>>,
    next_reader: AtomicUsize,
    writes: AtomicUsize,
}

/// Statistics are refreshed after this many writes (a cheap no-op when nothing
/// changed much).
const OPTIMIZE_EVERY: usize = 5_000;

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

fn open(path: &Path, read_only: bool) -> StoreResult<Connection> {
    let flags = if read_only {
        OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX
    } else {
        OpenFlags::SQLITE_OPEN_READ_WRITE
            | OpenFlags::SQLITE_OPEN_CREATE
            | OpenFlags::SQLITE_OPEN_NO_MUTEX
    };
    let conn = Connection::open_with_flags(path, flags).map_err(backend)?;
    conn.busy_timeout(Duration::from_secs(10))
        .map_err(backend)?;
    conn.execute_batch(
        "PRAGMA journal_mode=WAL; PRAGMA synchronous=FULL; PRAGMA foreign_keys=OFF;
         PRAGMA cache_size=-65536; PRAGMA temp_store=MEMORY;",
    )
    .map_err(backend)?;
    Ok(conn)
}

impl SqliteStore {
    /// Open (creating if needed) the database file and apply migrations.
    pub fn open(path: &Path, registry: Arc<SchemaRegistry>) -> StoreResult<Self> {
        let writer = open(path, false)?;
        migrate(&writer)?;
        // Planner statistics: without them SQLite may walk every resource of a type
        // instead of driving a filtered search from attr_index.
        writer
            .execute_batch("PRAGMA optimize=0x10002;")
            .map_err(backend)?;
        let readers = (0..READERS)
            .map(|_| open(path, true).map(Mutex::new))
            .collect::<StoreResult<Vec<_>>>()?;
        Ok(SqliteStore {
            registry,
            writer: Mutex::new(writer),
            readers,
            next_reader: AtomicUsize::new(0),
            writes: AtomicUsize::new(0),
        })
    }

    fn reader(&self) -> StoreResult<MutexGuard<'_, Connection>> {
        for conn in &self.readers {
            if let Ok(guard) = conn.try_lock() {
                return Ok(guard);
            }
        }
        let i = self.next_reader.fetch_add(1, Ordering::Relaxed) % self.readers.len();
        self.readers[i].lock().map_err(poisoned)
    }

    fn write<T>(&self, f: impl FnOnce(&Transaction<'_>) -> StoreResult<T>) -> StoreResult<T> {
        let mut conn = self.writer.lock().map_err(poisoned)?;
        let tx = conn
            .transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)
            .map_err(backend)?;
        let out = f(&tx)?;
        tx.commit().map_err(backend)?;
        if self.writes.fetch_add(1, Ordering::Relaxed) % OPTIMIZE_EVERY == OPTIMIZE_EVERY - 1 {
            if let Err(e) = conn.execute_batch("PRAGMA optimize;") {
                tracing::warn!(error = %e, "PRAGMA optimize failed");
            }
        }
        Ok(out)
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

impl Store for SqliteStore {
    fn create(&self, rt: &ResourceTypeDef, w: Write) -> StoreResult<StoredResource> {
        let doc = serde_json::to_string(&w.doc).map_err(json_err)?;
        self.write(|tx| {
            let secret = match &w.secret {
                SecretChange::Set(h) => Some(h.as_str()),
                SecretChange::Keep => None,
            };
            tx.execute(
                "INSERT INTO resources (id, rtype, doc, version, created, modified, unique_key, display, secret)
                 VALUES (?1, ?2, ?3, 1, ?4, ?5, ?6, ?7, ?8)",
                params![
                    w.id,
                    rt.name,
                    doc,
                    crate::db_time(w.created),
                    crate::db_time(w.modified),
                    w.unique_key,
                    w.display,
                    secret
                ],
            )
            .map_err(backend)?;
            write_index(tx, &self.registry, rt, &w)?;
            write_members(tx, &w.id, &w.members)?;
            Ok(())
        })?;
        Ok(StoredResource {
            id: w.id,
            rtype: rt.name.clone(),
            doc: w.doc,
            version: 1,
        })
    }

    fn get(&self, rt: &ResourceTypeDef, id: &str) -> StoreResult<StoredResource> {
        let conn = self.reader()?;
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

    fn replace(
        &self,
        rt: &ResourceTypeDef,
        w: Write,
        if_version: Option<i64>,
    ) -> StoreResult<StoredResource> {
        let doc = serde_json::to_string(&w.doc).map_err(json_err)?;
        let version = self.write(|tx| {
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
                    match &w.secret {
                        SecretChange::Set(h) => Some(h.as_str()),
                        SecretChange::Keep => None,
                    }
                ],
            )
            .map_err(backend)?;
            write_index(tx, &self.registry, rt, &w)?;
            write_members(tx, &w.id, &w.members)?;
            Ok(next)
        })?;
        Ok(StoredResource {
            id: w.id,
            rtype: rt.name.clone(),
            doc: w.doc,
            version,
        })
    }

    fn delete(&self, rt: &ResourceTypeDef, id: &str, if_version: Option<i64>) -> StoreResult<()> {
        self.write(|tx| {
            let current: i64 = tx
                .query_row(
                    "SELECT version FROM resources WHERE id = ?1 AND rtype = ?2",
                    params![id, rt.name],
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
            Ok(())
        })
    }

    fn search(&self, rt: &ResourceTypeDef, q: &Query) -> StoreResult<Page> {
        let mut params: Vec<SqlParam> = vec![SqlParam::Text(rt.name.clone())];
        let mut where_sql = String::from("r.rtype = ?1");
        if let Some(f) = &q.filter {
            // `+` keeps the planner from walking the type's rows when the filter's
            // index lookups are the selective part.
            where_sql = String::from("+r.rtype = ?1");
            let frag = compile_filter(&SqliteDialect, &self.registry, rt, f, params.len() + 1)
                .map_err(StoreError::Query)?;
            where_sql.push_str(" AND (");
            where_sql.push_str(&frag.sql);
            where_sql.push(')');
            params.extend(frag.params);
        }
        let conn = self.reader()?;
        let count_sql = format!("SELECT count(*) FROM resources r WHERE {where_sql}");
        let total: i64 = conn
            .prepare_cached(&count_sql)
            .map_err(backend)?
            .query_row(params_from_iter(params.iter().map(to_sql)), |r| r.get(0))
            .map_err(backend)?;
        if q.count == 0 {
            return Ok(Page {
                total: total as u64,
                resources: vec![],
            });
        }
        let dir = match q.sort_order {
            SortOrder::Ascending => "ASC",
            SortOrder::Descending => "DESC",
        };
        let order = match &q.sort_by {
            Some(path) => {
                let frag = compile_sort(&SqliteDialect, &self.registry, rt, path, params.len() + 1)
                    .map_err(StoreError::Query)?;
                params.extend(frag.params);
                // Resources without the attribute sort last ascending (RFC 7644 §3.4.2.3).
                format!("({s}) IS NULL, {s} {dir}, r.id", s = frag.sql)
            }
            None => "r.created, r.id".to_string(),
        };
        let limit_at = params.len() + 1;
        params.push(SqlParam::Int(q.count as i64));
        params.push(SqlParam::Int(q.start_index.saturating_sub(1) as i64));
        let sql = format!(
            "SELECT r.id, r.doc, r.version FROM resources r WHERE {where_sql} ORDER BY {order} LIMIT ?{limit_at} OFFSET ?{}",
            limit_at + 1
        );
        let mut stmt = conn.prepare_cached(&sql).map_err(backend)?;
        let rows = stmt
            .query_map(params_from_iter(params.iter().map(to_sql)), |r| {
                Ok((
                    r.get::<_, String>(0)?,
                    r.get::<_, String>(1)?,
                    r.get::<_, i64>(2)?,
                ))
            })
            .map_err(backend)?;
        let mut resources = Vec::new();
        for row in rows {
            let (id, doc, version) = row.map_err(backend)?;
            resources.push(stored(id, rt.name.clone(), &doc, version)?);
        }
        Ok(Page {
            total: total as u64,
            resources,
        })
    }

    fn members(&self, group_id: &str, with_display: bool) -> StoreResult<Vec<MemberView>> {
        let conn = self.reader()?;
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

    fn groups_of(&self, member_id: &str) -> StoreResult<Vec<GroupRef>> {
        let conn = self.reader()?;
        // Depth-capped walk up the membership graph; UNION stops at cycles.
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
                 JOIN resources r ON r.id = up.group_id
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
        let conn = self.reader()?;
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

    fn existing(&self, ids: &[String]) -> StoreResult<Vec<Member>> {
        let conn = self.reader()?;
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
}
