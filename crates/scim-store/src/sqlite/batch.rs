//! The rows one resource write consists of: the resource, its index rows, its
//! member rows and its change-feed row, written inside the writer's transaction.

use super::backend;
use crate::index::{index_rows, IndexValue};
use crate::{
    ChangeOp, Member, MemberChange, NewChange, ResourceWrite, StoreResult, StoredResource,
};
use rusqlite::{params, Transaction};
use scim_proto::schema::{ResourceTypeDef, SchemaRegistry};

/// Insert a new resource with its index, member and change-feed rows. The
/// `resources` row goes first: a uniqueness failure then leaves nothing behind.
pub(super) fn insert_resource(
    tx: &Transaction<'_>,
    registry: &SchemaRegistry,
    rt: &ResourceTypeDef,
    w: ResourceWrite,
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
    count_type(tx, &rt.name, 1)?;
    write_index(tx, registry, rt, &w, Existing::None)?;
    write_members(tx, &w.id, &w.members)?;
    record_change(
        tx,
        &NewChange {
            id: &w.id,
            rtype: &rt.name,
            op: ChangeOp::Created,
            version: 1,
            at: w.modified,
            actor: &w.actor,
        },
    )?;
    Ok(StoredResource {
        id: w.id,
        rtype: rt.name.clone(),
        doc: w.doc,
        version: 1,
    })
}

/// Add `delta` to the number of resources of type `rtype` (`type_counts`, read
/// for unfiltered totals), in the writing transaction.
pub(super) fn count_type(tx: &Transaction<'_>, rtype: &str, delta: i64) -> StoreResult<()> {
    tx.prepare_cached(
        "INSERT INTO type_counts (rtype, n) VALUES (?1, ?2)
         ON CONFLICT (rtype) DO UPDATE SET n = n + excluded.n",
    )
    .and_then(|mut s| s.execute(params![rtype, delta]))
    .map_err(backend)?;
    Ok(())
}

/// Whether the resource may already have index rows.
#[derive(Clone, Copy, PartialEq, Eq)]
pub(super) enum Existing {
    /// A new resource: nothing to compare with.
    None,
    /// A replaced one: only the rows that change are written.
    Maybe,
}

/// One attr_index row's identity: path, element and value (numbers by bits).
type RowKey = (String, i64, Option<String>, Option<u64>, Option<bool>);

fn row_key(path: String, elem: i64, t: Option<String>, n: Option<f64>, b: Option<bool>) -> RowKey {
    (path, elem, t, n.map(f64::to_bits), b)
}

/// Bring the resource's attr_index rows to those of `write.doc`. A replace
/// deletes only the rows that went and inserts only the new ones (a PATCH of
/// one attribute writes two rows, not every row of the user), and queues their
/// ids for the trigram index (`flush_trigrams`).
pub(super) fn write_index(
    tx: &Transaction<'_>,
    registry: &SchemaRegistry,
    rt: &ResourceTypeDef,
    write: &ResourceWrite,
    existing: Existing,
) -> StoreResult<()> {
    let mut wanted: Vec<RowKey> = index_rows(registry, rt, &write.doc)
        .into_iter()
        .map(|row| {
            let (t, n, b) = match row.value {
                IndexValue::Text(t) => (Some(t), None, None),
                IndexValue::Num(n) => (None, Some(n), None),
                IndexValue::Bool(b) => (None, None, Some(b)),
            };
            row_key(row.path, row.elem, t, n, b)
        })
        .collect();
    if existing == Existing::Maybe {
        let mut kept = std::collections::HashSet::new();
        let mut gone = Vec::new();
        let mut stmt = tx
            .prepare_cached(
                "SELECT id, path, elem, v_text, v_num, v_bool FROM attr_index WHERE res_id = ?1",
            )
            .map_err(backend)?;
        let rows = stmt
            .query_map([&write.id], |r| {
                let key = row_key(r.get(1)?, r.get(2)?, r.get(3)?, r.get(4)?, r.get(5)?);
                Ok((r.get::<_, i64>(0)?, key))
            })
            .map_err(backend)?;
        let wanted_set: std::collections::HashSet<&RowKey> = wanted.iter().collect();
        for row in rows {
            let (id, key) = row.map_err(backend)?;
            if wanted_set.contains(&key) && kept.insert(key.clone()) {
                continue;
            }
            gone.push((id, has_trigrams(key.2.as_deref())));
        }
        remove_index_rows(tx, &gone)?;
        wanted.retain(|k| !kept.contains(k));
    }
    let mut insert = tx
        .prepare_cached(
            "INSERT INTO attr_index (res_id, rtype, path, elem, v_text, v_num, v_bool)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
        )
        .map_err(backend)?;
    let mut queue = tx.prepare_cached(QUEUE).map_err(backend)?;
    for (path, elem, t, n, b) in wanted {
        let trigrams = has_trigrams(t.as_deref());
        insert
            .execute(params![
                write.id,
                rt.name,
                path,
                elem,
                t,
                n.map(f64::from_bits),
                b
            ])
            .map_err(backend)?;
        if trigrams {
            queue
                .execute(params![tx.last_insert_rowid(), 1])
                .map_err(backend)?;
        }
    }
    Ok(())
}

const QUEUE: &str = "INSERT INTO trigram_queue (id, added) VALUES (?1, ?2)";

/// Values the trigram index holds (ddl.rs, step 10).
fn has_trigrams(text: Option<&str>) -> bool {
    text.is_some_and(|t| t.chars().nth(crate::sql::TRIGRAM - 1).is_some())
}

/// Delete attr_index rows by id, queueing the removal of those in the trigram index.
fn remove_index_rows(tx: &Transaction<'_>, rows: &[(i64, bool)]) -> StoreResult<()> {
    let mut delete = tx
        .prepare_cached("DELETE FROM attr_index WHERE id = ?1")
        .map_err(backend)?;
    let mut queue = tx.prepare_cached(QUEUE).map_err(backend)?;
    for (id, trigrams) in rows {
        delete.execute([id]).map_err(backend)?;
        if *trigrams {
            queue.execute(params![id, 0]).map_err(backend)?;
        }
    }
    Ok(())
}

/// Delete every attr_index row of a resource (it is deleted).
pub(super) fn delete_index(tx: &Transaction<'_>, res_id: &str) -> StoreResult<()> {
    let mut stmt = tx
        .prepare_cached("SELECT id, v_text FROM attr_index WHERE res_id = ?1")
        .map_err(backend)?;
    let rows = stmt
        .query_map([res_id], |r| {
            let text: Option<String> = r.get(1)?;
            Ok((r.get::<_, i64>(0)?, has_trigrams(text.as_deref())))
        })
        .map_err(backend)?
        .collect::<Result<Vec<_>, _>>()
        .map_err(backend)?;
    remove_index_rows(tx, &rows)
}

pub(super) fn write_members(
    tx: &Transaction<'_>,
    group_id: &str,
    change: &MemberChange,
) -> StoreResult<()> {
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

/// Before a write supersedes resource `id`'s current version: its latest change
/// (which reads the document from `resources`, see `record_change`) gets a copy of
/// that document, so the feed still shows the version it records.
pub(super) fn keep_superseded(tx: &Transaction<'_>, id: &str) -> StoreResult<()> {
    tx.prepare_cached(
        "UPDATE changes SET doc = (SELECT r.doc FROM resources r WHERE r.id = ?1)
         WHERE seq = (SELECT max(seq) FROM changes WHERE res_id = ?1)
           AND doc IS NULL AND op <> 'deleted'
           AND version = (SELECT r.version FROM resources r WHERE r.id = ?1)",
    )
    .and_then(|mut s| s.execute([id]))
    .map_err(backend)?;
    Ok(())
}

/// A change-feed row. The document of a creation or update is not stored here:
/// the feed reads it from `resources` while it is the current version, and
/// `keep_superseded` copies it here when it no longer is.
pub(super) fn record_change(tx: &Transaction<'_>, c: &NewChange<'_>) -> StoreResult<()> {
    tx.prepare_cached(
        "INSERT INTO changes (res_id, rtype, op, version, at, principal, request_id, source_ip)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
    )
    .map_err(backend)?
    .execute(params![
        c.id,
        c.rtype,
        c.op.as_str(),
        c.version,
        crate::db_time(c.at),
        c.actor.principal,
        c.actor.request_id,
        c.actor.source_ip,
    ])
    .map_err(backend)?;
    Ok(())
}
