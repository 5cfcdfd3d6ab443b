//! The member-delta analysis of a Group PATCH: a request that only adds or removes
//! members is applied as a delta, without loading the member list, so its cost is
//! proportional to the members it names, not to the size of the group.

use crate::filter::{parse_patch_path, CompareOp, Filter, Literal};
use crate::messages::PATCH_OP;
use serde_json::{json, Value};

/// A PATCH request split into member changes and the remaining operations.
#[derive(Debug, Default, PartialEq)]
pub struct MemberOps {
    pub add: Vec<(String, Option<String>)>,
    pub remove: Vec<String>,
    /// Ids named by each `members[value eq …]` filter: a filter naming no current
    /// member is a noTarget error, as in the general PATCH engine.
    pub remove_filters: Vec<Vec<String>>,
    /// Operations that do not touch `members`, as a PatchOp body (None if there are none).
    pub rest: Option<Value>,
}

fn field<'a>(op: &'a Value, name: &str) -> Option<&'a Value> {
    op.as_object()?
        .iter()
        .find(|(k, _)| k.eq_ignore_ascii_case(name))
        .map(|(_, v)| v)
}

/// `value` (+ optional `type`) of each element of a members value.
fn member_values(v: &Value) -> Option<Vec<(String, Option<String>)>> {
    let items = match v {
        Value::Array(a) => a.iter().collect::<Vec<_>>(),
        Value::Object(_) => vec![v],
        _ => return None,
    };
    items
        .into_iter()
        .map(|m| {
            let id = field(m, "value")?.as_str()?.to_string();
            let kind = field(m, "type").and_then(Value::as_str).map(str::to_string);
            Some((id, kind))
        })
        .collect()
}

/// Ids named by `value eq "x" [or value eq "y" …]`.
fn filter_ids(f: &Filter, out: &mut Vec<String>) -> bool {
    match f {
        Filter::Compare {
            path,
            op: CompareOp::Eq,
            value: Literal::String(id),
        } if path.urn.is_none()
            && path.sub_attr.is_none()
            && path.attr.eq_ignore_ascii_case("value") =>
        {
            out.push(id.clone());
            true
        }
        Filter::Or(a, b) => filter_ids(a, out) && filter_ids(b, out),
        _ => false,
    }
}

fn is_members(path: &str) -> bool {
    path.trim().eq_ignore_ascii_case("members")
}

/// Split a Group PatchOp body; None when a member operation has a form this fast
/// path does not handle (the caller then applies the PATCH to the whole document).
pub fn split(request: &Value) -> Option<MemberOps> {
    let ops = field(request, "Operations")?.as_array()?;
    let mut out = MemberOps::default();
    let mut rest = Vec::new();
    for op in ops {
        let name = field(op, "op")?.as_str()?.to_ascii_lowercase();
        let path = field(op, "path").and_then(Value::as_str);
        let value = field(op, "value");
        match (name.as_str(), path) {
            ("add", Some(p)) if is_members(p) => out.add.extend(member_values(value?)?),
            ("remove", Some(p)) if is_members(p) && value.is_some() => {
                out.remove
                    .extend(member_values(value?)?.into_iter().map(|(id, _)| id));
            }
            ("remove", Some(p)) if p.trim_start().to_ascii_lowercase().starts_with("members[") => {
                let parsed = parse_patch_path(p).ok()?;
                if parsed.sub_attr.is_some() {
                    return None;
                }
                let mut ids = Vec::new();
                if !filter_ids(parsed.filter.as_ref()?, &mut ids) {
                    return None;
                }
                out.remove.extend(ids.iter().cloned());
                out.remove_filters.push(ids);
            }
            (_, Some(p)) if p.trim_start().to_ascii_lowercase().starts_with("members") => {
                return None
            }
            (_, None) if value.and_then(|v| field(v, "members")).is_some() => return None,
            _ => rest.push(op.clone()),
        }
    }
    // A member both added and removed in one request is order-dependent: leave it
    // to the general engine.
    if out.add.iter().any(|(id, _)| out.remove.contains(id)) {
        return None;
    }
    if !rest.is_empty() {
        out.rest = Some(json!({
            "schemas": [PATCH_OP],
            "Operations": rest,
        }));
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn req(ops: Value) -> Value {
        json!({"schemas": [PATCH_OP], "Operations": ops})
    }

    #[test]
    fn member_adds_and_removes_become_a_delta() {
        let r = req(json!([
            {"op": "add", "path": "members", "value": [{"value": "a", "type": "User"}, {"value": "b"}]},
            {"op": "remove", "path": "members[value eq \"c\" or value eq \"d\"]"},
            {"op": "Remove", "path": "members", "value": [{"value": "e"}]},
            {"op": "replace", "path": "displayName", "value": "X"}
        ]));
        let s = split(&r).expect("fast path");
        assert_eq!(
            s.add,
            vec![("a".into(), Some("User".into())), ("b".into(), None)]
        );
        assert_eq!(s.remove, vec!["c", "d", "e"]);
        assert_eq!(
            s.rest.expect("rest")["Operations"][0]["path"],
            "displayName"
        );
    }

    #[test]
    fn other_member_forms_take_the_general_path() {
        for ops in [
            json!([{"op": "replace", "path": "members", "value": []}]),
            json!([{"op": "remove", "path": "members"}]),
            json!([{"op": "remove", "path": "members[display eq \"x\"]"}]),
            json!([{"op": "replace", "path": "members[value eq \"x\"].type", "value": "User"}]),
            json!([{"op": "add", "value": {"members": [{"value": "a"}]}}]),
            json!([{"op": "add", "path": "members", "value": [{"value": "a"}]},
                   {"op": "remove", "path": "members[value eq \"a\"]"}]),
        ] {
            assert!(split(&req(ops.clone())).is_none(), "{ops}");
        }
    }
}
