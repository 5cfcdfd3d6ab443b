//! The rows one resource write consists of, bound as arrays (one `unnest`
//! statement per table) inside the write's transaction.

use super::session::{Fail, Session, TxResult};
use crate::index::{index_rows, IndexValue};
use crate::statements;
use crate::{ChangeOp, Member, MemberChange, NewChange, ResourceWrite, StoreError, StoreResult};
use scim_proto::schema::{ResourceTypeDef, SchemaRegistry};

/// Index rows of several resources as parallel arrays, inserted with one
/// `unnest` statement.
#[derive(Default)]
pub(super) struct IndexBatch {
    res_id: Vec<String>,
    rtype: Vec<String>,
    path: Vec<String>,
    elem: Vec<i64>,
    text: Vec<Option<String>>,
    num: Vec<Option<f64>>,
    boolean: Vec<Option<bool>>,
}

impl IndexBatch {
    pub(super) fn add(
        &mut self,
        registry: &SchemaRegistry,
        rt: &ResourceTypeDef,
        id: &str,
        doc: &serde_json::Value,
    ) {
        for row in index_rows(registry, rt, doc) {
            let (t, n, b) = match row.value {
                IndexValue::Text(t) => (Some(t), None, None),
                IndexValue::Num(n) => (None, Some(n), None),
                IndexValue::Bool(b) => (None, None, Some(b)),
            };
            self.res_id.push(id.to_string());
            self.rtype.push(rt.name.clone());
            self.path.push(row.path);
            self.elem.push(row.elem);
            self.text.push(t);
            self.num.push(n);
            self.boolean.push(b);
        }
    }

    pub(super) fn insert(&self, s: &mut Session<'_>) -> Result<(), postgres::Error> {
        if self.res_id.is_empty() {
            return Ok(());
        }
        s.execute(
            "INSERT INTO attr_index (res_id, rtype, path, elem, v_text, v_num, v_bool)
             SELECT * FROM unnest($1::text[], $2::text[], $3::text[], $4::bigint[],
                                  $5::text[], $6::float8[], $7::bool[])",
            &[
                &self.res_id,
                &self.rtype,
                &self.path,
                &self.elem,
                &self.text,
                &self.num,
                &self.boolean,
            ],
        )?;
        Ok(())
    }
}

/// Member rows as parallel arrays; `pos` orders a group's members.
#[derive(Default)]
pub(super) struct MemberBatch {
    group_id: Vec<String>,
    member_id: Vec<String>,
    member_type: Vec<String>,
    pos: Vec<i64>,
}

impl MemberBatch {
    pub(super) fn add(&mut self, group_id: &str, members: &[Member], first_pos: i64) {
        for (k, m) in members.iter().enumerate() {
            self.group_id.push(group_id.to_string());
            self.member_id.push(m.id.clone());
            self.member_type.push(m.kind.as_str().to_string());
            self.pos
                .push(first_pos.saturating_add(i64::try_from(k).unwrap_or(i64::MAX)));
        }
    }

    pub(super) fn insert(&self, s: &mut Session<'_>) -> Result<(), postgres::Error> {
        if self.member_id.is_empty() {
            return Ok(());
        }
        // A member already present keeps its place (as SQLite's INSERT OR IGNORE).
        s.execute(
            "INSERT INTO members (group_id, member_id, member_type, pos)
             SELECT * FROM unnest($1::text[], $2::text[], $3::text[], $4::bigint[])
             ON CONFLICT (group_id, member_id) DO NOTHING",
            &[
                &self.group_id,
                &self.member_id,
                &self.member_type,
                &self.pos,
            ],
        )?;
        Ok(())
    }
}

/// Apply a membership change to `group_id`, whose row this transaction has
/// already inserted or locked.
pub(super) fn write_members(
    s: &mut Session<'_>,
    group_id: &str,
    change: &MemberChange,
) -> TxResult<()> {
    let (add, first_pos) = match change {
        MemberChange::Keep => return Ok(()),
        MemberChange::Replace(all) => {
            s.execute("DELETE FROM members WHERE group_id = $1", &[&group_id])?;
            (all, 1)
        }
        MemberChange::Delta { add, remove } => {
            if !remove.is_empty() {
                s.execute(
                    "DELETE FROM members WHERE group_id = $1 AND member_id = ANY($2)",
                    &[&group_id, remove],
                )?;
            }
            if add.is_empty() {
                return Ok(());
            }
            let last: i64 = s
                .query_opt(
                    "SELECT pos FROM members WHERE group_id = $1 ORDER BY pos DESC LIMIT 1",
                    &[&group_id],
                )?
                .map(|r| r.try_get(0))
                .transpose()?
                .unwrap_or(0);
            (add, last + 1)
        }
    };
    let mut batch = MemberBatch::default();
    batch.add(group_id, add, first_pos);
    batch.insert(s)?;
    Ok(())
}

pub(super) fn record_change(
    s: &mut Session<'_>,
    c: &NewChange<'_>,
    doc: Option<&str>,
) -> TxResult<()> {
    s.execute(
        "INSERT INTO changes (id, res_id, rtype, op, version, at, doc, principal, request_id, source_ip)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)",
        &[
            &uuid::Uuid::new_v4().to_string(),
            &c.id,
            &c.rtype,
            &c.op.as_str(),
            &c.version,
            &crate::db_time(c.at),
            &doc,
            &c.actor.principal,
            &c.actor.request_id,
            &c.actor.source_ip,
        ],
    )?;
    Ok(())
}

/// Why a conditional write matched no row: the resource is gone, or changed.
pub(super) fn missing_or_changed(
    s: &mut Session<'_>,
    rt: &ResourceTypeDef,
    id: &str,
) -> TxResult<Fail> {
    let exists = s
        .query_opt(&statements::postgres().version_of, &[&id, &rt.name])?
        .is_some();
    Ok(Fail::Store(if exists {
        StoreError::VersionMismatch
    } else {
        StoreError::NotFound
    }))
}

/// Insert a new resource with its index, member and change-feed rows; a taken id
/// or unique key is this item's `Uniqueness` failure and leaves nothing behind.
pub(super) fn insert_new(
    s: &mut Session<'_>,
    rt: &ResourceTypeDef,
    w: &ResourceWrite,
    doc: &str,
    index: &IndexBatch,
) -> TxResult<StoreResult<()>> {
    let secret = w.secret.new_hash();
    let inserted = s.execute(
        "INSERT INTO resources (id, rtype, doc, version, created, modified, unique_key, display, secret)
         VALUES ($1, $2, $3, 1, $4, $5, $6, $7, $8) ON CONFLICT DO NOTHING",
        &[
            &w.id,
            &rt.name,
            &doc,
            &crate::db_time(w.created),
            &crate::db_time(w.modified),
            &w.unique_key,
            &w.display,
            &secret,
        ],
    )?;
    if inserted == 0 {
        return Ok(Err(StoreError::Uniqueness));
    }
    index.insert(s)?;
    write_members(s, &w.id, &w.members)?;
    record_change(
        s,
        &NewChange {
            id: &w.id,
            rtype: &rt.name,
            op: ChangeOp::Created,
            version: 1,
            at: w.modified,
            actor: &w.actor,
        },
        Some(doc),
    )?;
    Ok(Ok(()))
}
