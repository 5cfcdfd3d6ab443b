//! The rows one resource write consists of: the resource, its index rows, its
//! member rows and its change-feed row, written inside the writer's transaction.

use super::backend;
use crate::index::{index_rows, IndexValue};
use crate::statements;
use crate::{ChangeOp, Member, MemberChange, ResourceWrite, StoreResult, StoredResource};
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
    write_index(tx, registry, rt, &w)?;
    write_members(tx, &w.id, &w.members)?;
    record_change(
        tx,
        &w.id,
        &rt.name,
        ChangeOp::Created,
        1,
        w.modified,
        Some(doc),
    )?;
    Ok(StoredResource {
        id: w.id,
        rtype: rt.name.clone(),
        doc: w.doc,
        version: 1,
    })
}

pub(super) fn write_index(
    tx: &Transaction<'_>,
    registry: &SchemaRegistry,
    rt: &ResourceTypeDef,
    write: &ResourceWrite,
) -> StoreResult<()> {
    tx.execute(&statements::sqlite().delete_index, [&write.id])
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

pub(super) fn record_change(
    tx: &Transaction<'_>,
    id: &str,
    rtype: &str,
    op: ChangeOp,
    version: i64,
    at: chrono::DateTime<chrono::Utc>,
    doc: Option<&str>,
) -> StoreResult<()> {
    tx.prepare_cached(
        "INSERT INTO changes (res_id, rtype, op, version, at, doc) VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
    )
    .map_err(backend)?
    .execute(params![
        id,
        rtype,
        op.as_str(),
        version,
        crate::db_time(at),
        doc
    ])
    .map_err(backend)?;
    Ok(())
}
