//! Applying a mapping's properties to a source object, and the smallest PATCH that
//! brings a target in line: the mapped attributes that differ, and the group
//! members that were added or removed.

use crate::config::{Mapping, Transform};
use crate::links::LinkIndex;
use crate::ops::PatchOp;
use crate::path::get_ci;
use serde_json::{json, Map, Value};
use std::collections::HashSet;

/// A source object seen through a mapping.
#[derive(Debug, Clone, PartialEq)]
pub struct Mapped {
    /// The target attributes the properties produce (no `members`).
    pub doc: Value,
    /// The source's member ids, when the mapping maps `members`; they still have to
    /// be translated through the links of the member objects.
    pub members: Option<Vec<String>>,
    /// A transform expression that failed: the object cannot be mapped.
    pub error: Option<String>,
}

/// Evaluates the Luau expressions of transforms (the runtime's sandbox); shared
/// by the planning threads.
pub trait Expressions: Sync + std::fmt::Debug {
    /// `expr` of `value` (the source value) and `source` (the source object):
    /// the value to write, `None` for none.
    fn eval(&self, expr: &str, value: &Value, source: &Value) -> Result<Option<Value>, String>;
}

/// No expression can be evaluated (mappings without them need nothing).
#[derive(Debug)]
pub struct NoExpressions;

impl Expressions for NoExpressions {
    fn eval(&self, expr: &str, _: &Value, _: &Value) -> Result<Option<Value>, String> {
        Err(format!("no Luau runtime to evaluate '{expr}'"))
    }
}

/// Map `source` through every property: the source value (or the default when it
/// has none), transformed, written at the target path.
pub fn map_source(mapping: &Mapping, source: &Value, expressions: &dyn Expressions) -> Mapped {
    let mut doc = Map::new();
    let mut members = None;
    let mut error = None;
    for p in &mapping.properties {
        if p.target.is_members() {
            members = Some(member_ids(source));
            continue;
        }
        let value = p
            .source
            .as_ref()
            .and_then(|s| s.read(source))
            .cloned()
            .or_else(|| p.default.clone());
        let value = match (&p.transform, value) {
            (Some(Transform::Expression(e)), Some(v)) => match expressions.eval(e, &v, source) {
                Ok(v) => v,
                Err(why) => {
                    error.get_or_insert(format!("transform of {}: {why}", p.target.raw()));
                    None
                }
            },
            (Some(t), v) => v.map(|v| t.apply(v)),
            (None, v) => v,
        };
        if let Some(v) = value {
            p.target.write(&mut doc, v);
        }
    }
    Mapped {
        doc: Value::Object(doc),
        members,
        error,
    }
}

/// The operations that make `current` hold the mapped values of `desired`, for
/// mapped attributes only: attributes no property names are left alone.
pub fn attribute_ops(mapping: &Mapping, desired: &Value, current: &Value) -> Vec<PatchOp> {
    let mut seen = HashSet::new();
    let mut ops = Vec::new();
    for p in &mapping.properties {
        let path = &p.target;
        if path.is_members() || !seen.insert(path.raw()) {
            continue;
        }
        match (path.read(desired), path.read(current)) {
            (Some(want), Some(have)) if want == have => {}
            (None, None) => {}
            (None, Some(_)) => ops.push(PatchOp::remove(path.raw())),
            // A replace through a value filter that matches nothing is noTarget
            // (RFC 7644 §3.5.2.3), so a missing element is added whole.
            (Some(want), _) if !path.has_element(current) => ops.push(PatchOp::add(
                &path.attr_patch_path(),
                json!([path.new_element(want.clone())]),
            )),
            (Some(want), _) => ops.push(PatchOp::replace(path.raw(), want.clone())),
        }
    }
    ops
}

/// The `value` of each element of a document's `members`.
pub fn member_ids(doc: &Value) -> Vec<String> {
    get_ci(doc, "members")
        .and_then(Value::as_array)
        .map(|items| {
            items
                .iter()
                .filter_map(|m| get_ci(m, "value").and_then(Value::as_str))
                .map(str::to_string)
                .collect()
        })
        .unwrap_or_default()
}

/// How a target group's members must change to mirror its source's.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct MemberDiff {
    /// Target ids to add, in source order.
    pub add: Vec<String>,
    /// Target ids to remove, in target order.
    pub remove: Vec<String>,
    /// Source member ids with no link to a target object: left out (a later run
    /// adds them once their own mapping has linked them).
    pub unlinked: Vec<String>,
}

impl MemberDiff {
    pub fn is_empty(&self) -> bool {
        self.add.is_empty() && self.remove.is_empty()
    }
}

/// Translate the source members through `links` (the member objects' links, seen
/// from source to target) and compare with the target's `current` members. Only
/// linked target members are ever removed: a member the sync does not know (added
/// on the target by someone else, or whose source is not linked yet) stays, so a
/// group is never emptied because its members' mapping has not run.
pub fn member_diff(source_members: &[String], links: &LinkIndex, current: &[String]) -> MemberDiff {
    // Sets keep this linear: groups can have hundreds of thousands of members.
    let mut diff = MemberDiff::default();
    let mut wanted = HashSet::new();
    let mut unlinked = HashSet::new();
    let have: HashSet<&str> = current.iter().map(String::as_str).collect();
    for id in source_members {
        match links.target_of(id) {
            Some(target) => {
                if wanted.insert(target) && !have.contains(target) {
                    diff.add.push(target.to_string());
                }
            }
            None => {
                if unlinked.insert(id.as_str()) {
                    diff.unlinked.push(id.clone());
                }
            }
        }
    }
    let mut removed = HashSet::new();
    for id in current {
        let known = links.source_of(id).is_some();
        if known && !wanted.contains(id.as_str()) && removed.insert(id.as_str()) {
            diff.remove.push(id.clone());
        }
    }
    diff
}

/// One `add` of the new members and one `remove` per member that left: never the
/// whole member list.
pub fn member_ops(diff: &MemberDiff) -> Vec<PatchOp> {
    let mut ops = Vec::new();
    if !diff.add.is_empty() {
        ops.push(PatchOp::add("members", member_values(&diff.add)));
    }
    for id in &diff.remove {
        let quoted = Value::String(id.clone()).to_string();
        ops.push(PatchOp::remove(&format!("members[value eq {quoted}]")));
    }
    ops
}

/// `[{"value": id}, …]`, the form `members` takes in a write.
pub fn member_values(ids: &[String]) -> Value {
    Value::Array(ids.iter().map(|id| json!({"value": id})).collect())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::SyncConfig;
    use crate::links::Link;
    use scim_proto::schema::SchemaRegistry;

    fn mapping(properties: Value, target: &str) -> Mapping {
        let (source, target) = match target {
            "group" => ("system/scim/group", "managed/group"),
            _ => ("system/scim/account", "managed/user"),
        };
        let cfg = json!({"mappings": [{"name": "m", "source": source, "target": target,
                                        "properties": properties}]});
        let c =
            SyncConfig::parse("sync.json", &cfg.to_string(), &SchemaRegistry::standard()).unwrap();
        c.mappings[0].clone()
    }

    fn users() -> Mapping {
        mapping(
            json!([
                {"source": "userName", "target": "userName", "transform": "lower"},
                {"source": "name.givenName", "target": "name.givenName", "transform": "trim"},
                {"source": "emails[primary eq true].value", "target": "emails[type eq \"work\"].value"},
                {"source": "title", "target": "title", "default": "Staff"},
                {"source": "nickName", "target": "nickName"}
            ]),
            "user",
        )
    }

    #[test]
    fn mapping_copies_transforms_and_defaults() {
        let source = json!({"userName": "BJensen", "name": {"givenName": " Barbara "},
            "emails": [{"value": "x@home", "type": "home"}, {"value": "b@work", "primary": true}],
            "displayName": "not mapped"});
        let m = map_source(&users(), &source, &NoExpressions);
        assert_eq!(
            m.doc,
            json!({"userName": "bjensen", "name": {"givenName": "Barbara"},
                   "emails": [{"type": "work", "value": "b@work"}], "title": "Staff"})
        );
        assert_eq!(m.members, None);
    }

    /// Joins the value and the source's userName; "fail" fails.
    #[derive(Debug)]
    struct Joiner;

    impl Expressions for Joiner {
        fn eval(&self, expr: &str, value: &Value, source: &Value) -> Result<Option<Value>, String> {
            match expr {
                "fail" => Err("boom".into()),
                "none" => Ok(None),
                _ => Ok(Some(json!(format!(
                    "{} ({})",
                    value.as_str().unwrap_or(""),
                    source["userName"].as_str().unwrap_or("")
                )))),
            }
        }
    }

    #[test]
    fn expressions_see_the_value_and_the_source() {
        let text = json!({"mappings": [{"name": "m", "source": "system/r/account",
            "target": "managed/user",
            "properties": [{"source": "displayName", "target": "displayName", "transform": "join"},
                           {"source": "nickName", "target": "nickName", "transform": "none"},
                           {"source": "userName", "target": "userName"}]}]})
        .to_string();
        let c = SyncConfig::parse("sync.json", &text, &SchemaRegistry::standard()).unwrap();
        let source = json!({"userName": "bjensen", "displayName": "Babs", "nickName": "B"});
        let m = map_source(&c.mappings[0], &source, &Joiner);
        assert_eq!(
            m.doc,
            json!({"displayName": "Babs (bjensen)", "userName": "bjensen"})
        );
        assert_eq!(m.error, None);
        let failing = text.replace("\"join\"", "\"fail\"");
        let c = SyncConfig::parse("sync.json", &failing, &SchemaRegistry::standard()).unwrap();
        let m = map_source(&c.mappings[0], &source, &Joiner);
        assert_eq!(m.error.as_deref(), Some("transform of displayName: boom"));
        let m = map_source(&c.mappings[0], &source, &NoExpressions);
        assert!(m.error.is_some());
    }

    #[test]
    fn only_changed_mapped_attributes_are_patched() {
        let m = users();
        let desired = map_source(
            &m,
            &json!({"userName": "bjensen", "name": {"givenName": "Babs"},
                    "emails": [{"value": "b@work", "primary": true}]}),
            &NoExpressions,
        )
        .doc;
        let current = json!({"id": "t1", "userName": "bjensen", "displayName": "unmapped",
            "name": {"givenName": "Barbara", "familyName": "Jensen"},
            "emails": [{"value": "old@work", "type": "work"}], "title": "Staff",
            "nickName": "BJ"});
        assert_eq!(
            attribute_ops(&m, &desired, &current),
            vec![
                PatchOp::replace("name.givenName", json!("Babs")),
                PatchOp::replace("emails[type eq \"work\"].value", json!("b@work")),
                PatchOp::remove("nickName"),
            ]
        );
        assert!(attribute_ops(&m, &desired, &{
            let mut same = current.clone();
            same["name"]["givenName"] = json!("Babs");
            same["emails"][0]["value"] = json!("b@work");
            same.as_object_mut().unwrap().remove("nickName");
            same
        })
        .is_empty());
    }

    #[test]
    fn a_missing_selected_element_is_added_whole() {
        let m = users();
        let desired = json!({"userName": "b", "title": "Staff",
                             "emails": [{"type": "work", "value": "b@work"}]});
        let current = json!({"userName": "b", "title": "Staff",
                             "emails": [{"type": "home", "value": "b@home"}]});
        assert_eq!(
            attribute_ops(&m, &desired, &current),
            vec![PatchOp::add(
                "emails",
                json!([{"type": "work", "value": "b@work"}])
            )]
        );
    }

    #[test]
    fn members_are_translated_and_diffed() {
        let m = mapping(
            json!([{"source": "displayName", "target": "displayName"},
                   {"source": "members", "target": "members"}]),
            "group",
        );
        assert!(m.maps_members());
        let source = json!({"displayName": "eng",
            "members": [{"value": "r1"}, {"value": "r2"}, {"value": "r9"}]});
        let mapped = map_source(&m, &source, &NoExpressions);
        assert_eq!(mapped.doc, json!({"displayName": "eng"}));
        let ids = mapped.members.unwrap();
        assert_eq!(ids, vec!["r1", "r2", "r9"]);
        let links = LinkIndex::new(
            &[
                Link::between(false, "r1", "l1"),
                Link::between(false, "r2", "l2"),
                Link::between(false, "r7", "l7"),
            ],
            false,
        );
        // l7 is linked (to r7, no longer a member): removed; l8 is unknown: kept.
        let current = ["l1", "l7", "l8"].map(String::from);
        let diff = member_diff(&ids, &links, &current);
        assert_eq!(diff.add, vec!["l2"]);
        assert_eq!(diff.remove, vec!["l7"]);
        assert_eq!(diff.unlinked, vec!["r9"]);
        assert_eq!(
            member_ops(&diff),
            vec![
                PatchOp::add("members", json!([{"value": "l2"}])),
                PatchOp::remove("members[value eq \"l7\"]"),
            ]
        );
        // Duplicates on either side count once.
        let twice: Vec<String> = ["r2", "r2", "r9", "r9"].map(String::from).to_vec();
        let diff = member_diff(&twice, &links, &["l7".to_string(), "l7".to_string()]);
        assert_eq!(
            (diff.add, diff.remove, diff.unlinked),
            (
                vec!["l2".to_string()],
                vec!["l7".to_string()],
                vec!["r9".to_string()]
            )
        );
        let same = member_diff(&ids, &links, &["l2".to_string(), "l1".to_string()]);
        assert!(same.is_empty());
        assert!(member_ops(&same).is_empty());
    }
}
