//! A group's members on a write: taken out of the document (they are stored
//! relationally), checked against the store, and turned into a delta.

use super::{store_error, RequestCtx, Service};
use scim_proto::schema::ResourceTypeDef;
use scim_proto::{ScimError, ScimResult};
use scim_store::{Member, MemberChange, MemberKind};
use serde_json::Value;
use std::collections::HashSet;

impl Service {
    /// Pull `members` out of a group document and check that each exists, unless
    /// the client asked to bypass that check.
    pub(super) fn take_members(
        &self,
        rt: &ResourceTypeDef,
        doc: &mut Value,
        ctx: &RequestCtx,
    ) -> ScimResult<Option<Vec<Member>>> {
        if !rt.kind.is_group() {
            return Ok(None);
        }
        let wanted = listed_members(doc)?;
        if ctx.overhead_bypass || wanted.is_empty() {
            return Ok(Some(wanted));
        }
        self.checked_members(wanted, doc.get("id").and_then(Value::as_str))
            .map(Some)
    }

    /// Resolve members against the store: each must exist; its type is what it is.
    pub(super) fn checked_members(
        &self,
        wanted: Vec<Member>,
        group_id: Option<&str>,
    ) -> ScimResult<Vec<Member>> {
        let ids: Vec<String> = wanted.iter().map(|m| m.id.clone()).collect();
        if group_id.is_some_and(|g| ids.iter().any(|i| i == g)) {
            return Err(ScimError::invalid_value(
                "a group cannot be a member of itself",
            ));
        }
        let found = self.store.existing(&ids).map_err(store_error)?;
        let mut out = Vec::with_capacity(wanted.len());
        for m in wanted {
            match found.iter().find(|f| f.id == m.id) {
                Some(f) => out.push(f.clone()),
                None => {
                    return Err(ScimError::invalid_value(format!(
                        "member '{}' is not an existing User or Group",
                        m.id
                    )))
                }
            }
        }
        Ok(out)
    }

    /// The membership delta between the document before and after an update; the
    /// member list leaves `doc`.
    pub(super) fn member_change(
        &self,
        rt: &ResourceTypeDef,
        before: &Value,
        doc: &mut Value,
        ctx: &RequestCtx,
    ) -> ScimResult<MemberChange> {
        if !rt.kind.is_group() {
            return Ok(MemberChange::Keep);
        }
        let old = member_ids(before);
        let after = listed_members(doc)?;
        let new_ids: HashSet<String> = after.iter().map(|m| m.id.clone()).collect();
        let added: Vec<Member> = after.into_iter().filter(|m| !old.contains(&m.id)).collect();
        let added = if ctx.overhead_bypass || added.is_empty() {
            added
        } else {
            self.checked_members(added, before.get("id").and_then(Value::as_str))?
        };
        let remove: Vec<String> = old.into_iter().filter(|i| !new_ids.contains(i)).collect();
        Ok(MemberChange::Delta { add: added, remove })
    }
}

/// The `members` of a group document, removed from it, each once, in order.
fn listed_members(doc: &mut Value) -> ScimResult<Vec<Member>> {
    let listed = doc
        .as_object_mut()
        .and_then(|o| o.remove("members"))
        .unwrap_or(Value::Array(vec![]));
    let mut wanted: Vec<Member> = Vec::new();
    let mut seen = HashSet::new();
    for m in listed.as_array().map(Vec::as_slice).unwrap_or_default() {
        let id = m
            .get("value")
            .and_then(Value::as_str)
            .ok_or_else(|| ScimError::invalid_value("every member needs a 'value'"))?;
        if seen.insert(id.to_string()) {
            wanted.push(Member {
                id: id.to_string(),
                kind: member_kind(m.get("type").and_then(Value::as_str))?,
            });
        }
    }
    Ok(wanted)
}

/// A member's `type` as sent; none means a user.
pub(super) fn member_kind(sent: Option<&str>) -> ScimResult<MemberKind> {
    match sent {
        None => Ok(MemberKind::User),
        Some(t) => MemberKind::parse(t).ok_or_else(|| {
            ScimError::invalid_value(format!("member type '{t}' is not 'User' or 'Group'"))
        }),
    }
}

/// The ids in a document's `members`.
fn member_ids(doc: &Value) -> HashSet<String> {
    doc.get("members")
        .and_then(Value::as_array)
        .map(|a| {
            a.iter()
                .filter_map(|m| m.get("value").and_then(Value::as_str).map(str::to_string))
                .collect()
        })
        .unwrap_or_default()
}
