//! The rows of `attr_index` for one canonical resource document: every simple value
//! a filter or sortBy can name, normalised so that SQL comparisons give the same
//! answers as the in-memory evaluator (`scim_proto::filter::eval`).
//!
//! Normalisation, shared with the filter compiler through [`text_value`] and
//! [`datetime_value`]:
//! - caseExact=false strings are lowercased with `str::to_lowercase` (full Unicode),
//!   the same folding the evaluator applies to both sides of a comparison;
//! - dateTimes become fixed-width UTC text with nanoseconds, so text order is time
//!   order and an offset such as `+02:00` compares equal to the same instant in `Z`
//!   (nanoseconds, not the microseconds of the `created`/`modified` columns, because
//!   the evaluator compares full RFC 3339 instants);
//! - binary values are kept exactly (the evaluator never folds their case);
//! - integers and decimals become `f64` (so, unlike the evaluator, integers beyond
//!   2^53 compare approximately; the standard schemas have no integer attributes),
//!   booleans stay booleans.

use scim_proto::schema::{
    AttrType, AttributeDef, Mutability, ResourceTypeDef, SchemaRegistry, GROUP_SCHEMA, USER_SCHEMA,
};
use serde_json::{Map, Value};

#[derive(Debug, Clone, PartialEq)]
pub struct IndexRow {
    /// Canonical lowercase path: `emails.value`, `urn:…:user:manager.value`.
    pub path: String,
    /// Element number within a multi-valued attribute, 0 otherwise; rows of the
    /// same element share it so value-path filters can correlate sub-attributes.
    pub elem: i64,
    pub value: IndexValue,
}

#[derive(Debug, Clone, PartialEq)]
pub enum IndexValue {
    Text(String),
    Num(f64),
    Bool(bool),
}

/// Attributes held elsewhere than in `attr_index`: membership lives in the
/// `members` table (Group `members`, and User `groups` computed from it).
pub fn is_membership(schema_urn: &str, attr: &AttributeDef) -> bool {
    (schema_urn.eq_ignore_ascii_case(GROUP_SCHEMA) && attr.name.eq_ignore_ascii_case("members"))
        || (schema_urn.eq_ignore_ascii_case(USER_SCHEMA)
            && attr.name.eq_ignore_ascii_case("groups"))
}

/// Secrets are never stored in the document and must never be searchable.
pub fn is_secret(attr: &AttributeDef) -> bool {
    attr.mutability == Mutability::WriteOnly || attr.name.eq_ignore_ascii_case("password")
}

/// The canonical path prefix of an attribute: `""` for core and common attributes,
/// `"<lowercase urn>:"` for extension attributes.
pub fn path_of(extension_urn: Option<&str>, attr: &str, sub: Option<&str>) -> String {
    let mut p = String::new();
    if let Some(urn) = extension_urn {
        p.push_str(&urn.to_lowercase());
        p.push(':');
    }
    p.push_str(&attr.to_lowercase());
    if let Some(s) = sub {
        p.push('.');
        p.push_str(&s.to_lowercase());
    }
    p
}

/// A string value as stored in `v_text` for an attribute with this caseExact.
pub fn text_value(s: &str, case_exact: bool) -> String {
    if case_exact {
        s.to_string()
    } else {
        s.to_lowercase()
    }
}

/// An RFC 3339 dateTime as fixed-width UTC text, or `None` if it does not parse.
pub fn datetime_value(s: &str) -> Option<String> {
    chrono::DateTime::parse_from_rfc3339(s).ok().map(|t| {
        t.with_timezone(&chrono::Utc)
            .format("%Y-%m-%dT%H:%M:%S%.9fZ")
            .to_string()
    })
}

/// Every `attr_index` row for `doc`, a canonical document of resource type `rt`.
pub fn index_rows(registry: &SchemaRegistry, rt: &ResourceTypeDef, doc: &Value) -> Vec<IndexRow> {
    let mut rows = Vec::new();
    let Some(top) = doc.as_object() else {
        return rows;
    };
    if let Some(core) = registry.schema(&rt.schema) {
        for def in &core.attributes {
            if is_membership(&core.id, def) || is_secret(def) {
                continue;
            }
            if let Some(v) = field(top, &def.name) {
                attribute_rows(&mut rows, None, def, v);
            }
        }
    }
    // id and meta are columns of `resources`; the other common attributes
    // (externalId) are indexed like core attributes.
    for def in registry.common_attributes() {
        if def.name == "id" || def.name == "meta" || is_secret(def) {
            continue;
        }
        if let Some(v) = field(top, &def.name) {
            attribute_rows(&mut rows, None, def, v);
        }
    }
    for ext in &rt.schema_extensions {
        let Some(schema) = registry.schema(&ext.schema) else {
            continue;
        };
        let Some(obj) = field(top, &schema.id).and_then(Value::as_object) else {
            continue;
        };
        for def in &schema.attributes {
            if is_secret(def) {
                continue;
            }
            if let Some(v) = field(obj, &def.name) {
                attribute_rows(&mut rows, Some(&schema.id), def, v);
            }
        }
    }
    rows
}

/// Canonical documents use schema case; the case-insensitive fallback keeps a
/// document written by an older, less strict version searchable.
fn field<'a>(obj: &'a Map<String, Value>, name: &str) -> Option<&'a Value> {
    obj.get(name).or_else(|| {
        obj.iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v)
    })
}

fn attribute_rows(rows: &mut Vec<IndexRow>, urn: Option<&str>, def: &AttributeDef, v: &Value) {
    // A lone value where an array is expected (or the reverse) is indexed as
    // elements anyway rather than dropped.
    let elements: Vec<&Value> = match v {
        Value::Array(items) => items.iter().collect(),
        other => vec![other],
    };
    for (i, el) in elements.into_iter().enumerate() {
        let elem = i64::try_from(i).unwrap_or(i64::MAX);
        if def.ty == AttrType::Complex {
            let Some(obj) = el.as_object() else { continue };
            for sub in &def.sub_attributes {
                if let Some(sv) = field(obj, &sub.name) {
                    let path = path_of(urn, &def.name, Some(&sub.name));
                    simple_rows(rows, &path, elem, sub, sv);
                }
            }
        } else {
            let path = path_of(urn, &def.name, None);
            if let Some(value) = simple_value(def, el) {
                rows.push(IndexRow { path, elem, value });
            }
        }
    }
}

fn simple_rows(rows: &mut Vec<IndexRow>, path: &str, elem: i64, def: &AttributeDef, v: &Value) {
    let values: Vec<&Value> = match v {
        Value::Array(items) => items.iter().collect(),
        other => vec![other],
    };
    for v in values {
        if let Some(value) = simple_value(def, v) {
            rows.push(IndexRow {
                path: path.to_string(),
                elem,
                value,
            });
        }
    }
}

/// The index form of one simple value; `None` for null and for values of the
/// wrong JSON type (which a canonical document does not contain). Empty strings
/// are indexed: they satisfy `eq ""` though not `pr`.
pub fn simple_value(def: &AttributeDef, v: &Value) -> Option<IndexValue> {
    match (def.ty, v) {
        (AttrType::String | AttrType::Reference, Value::String(s)) => {
            Some(IndexValue::Text(text_value(s, def.case_exact)))
        }
        (AttrType::Binary, Value::String(s)) => Some(IndexValue::Text(s.clone())),
        // An unparsable dateTime never satisfies a comparison in the evaluator; a
        // canonical document cannot hold one, so it is simply not indexed.
        (AttrType::DateTime, Value::String(s)) => datetime_value(s).map(IndexValue::Text),
        (AttrType::Integer | AttrType::Decimal, Value::Number(n)) => {
            n.as_f64().map(IndexValue::Num)
        }
        (AttrType::Boolean, Value::Bool(b)) => Some(IndexValue::Bool(*b)),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn rows_of(rt: &str, doc: Value) -> Vec<(String, i64, IndexValue)> {
        let reg = SchemaRegistry::standard();
        let Some(rt) = reg.resource_type(rt) else {
            return Vec::new();
        };
        index_rows(&reg, rt, &doc)
            .into_iter()
            .map(|r| (r.path, r.elem, r.value))
            .collect()
    }

    fn text(p: &str, e: i64, v: &str) -> (String, i64, IndexValue) {
        (p.to_string(), e, IndexValue::Text(v.to_string()))
    }

    #[test]
    fn user_rows() {
        let rows = rows_of(
            "User",
            json!({
                "schemas": ["urn:ietf:params:scim:schemas:core:2.0:User"],
                "id": "Abc",
                "externalId": "ExT",
                "userName": "ÉCOLE",
                "password": "secret",
                "name": {"givenName": "Straße"},
                "active": true,
                "emails": [
                    {"value": "A@X.org", "type": "Work", "primary": true},
                    {"value": "b@x.org"}
                ],
                "groups": [{"value": "g1"}],
                "meta": {"created": "2024-01-01T00:00:00Z"},
                "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User": {
                    "employeeNumber": "E1",
                    "manager": {"value": "M1"}
                }
            }),
        );
        let ent = "urn:ietf:params:scim:schemas:extension:enterprise:2.0:user:";
        assert_eq!(
            rows,
            vec![
                text("username", 0, "école"),
                text("name.givenname", 0, "straße"),
                ("active".into(), 0, IndexValue::Bool(true)),
                text("emails.value", 0, "a@x.org"),
                text("emails.type", 0, "work"),
                ("emails.primary".into(), 0, IndexValue::Bool(true)),
                text("emails.value", 1, "b@x.org"),
                text("externalid", 0, "ExT"),
                text(&format!("{ent}employeenumber"), 0, "e1"),
                text(&format!("{ent}manager.value"), 0, "m1"),
            ]
        );
    }

    #[test]
    fn group_members_are_not_indexed() {
        let rows = rows_of(
            "Group",
            json!({"displayName": "Ops", "members": [{"value": "u1", "type": "User"}]}),
        );
        assert_eq!(rows, vec![text("displayname", 0, "ops")]);
    }

    #[test]
    fn datetimes_are_fixed_width_utc() {
        assert_eq!(
            datetime_value("2024-03-01T01:30:00+02:00").as_deref(),
            Some("2024-02-29T23:30:00.000000000Z")
        );
        assert_eq!(
            datetime_value("2024-03-01T01:30:00.5Z").as_deref(),
            Some("2024-03-01T01:30:00.500000000Z")
        );
        assert_eq!(datetime_value("yesterday"), None);
    }
}
