//! Attribute paths of CSV columns: `userName`, `name.givenName`,
//! `emails[type eq "work"].value`, and the same under an extension URN
//! (`urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:employeeNumber`).

use crate::error::{err, Result};
use serde_json::{Map, Value};

#[derive(Debug, Clone, PartialEq)]
pub(crate) struct AttrPath {
    /// The extension schema the attribute lives under, if any.
    pub(crate) urn: Option<String>,
    pub(crate) attr: String,
    /// `[sub eq value]`: which element of a multi-valued attribute.
    pub(crate) filter: Option<(String, Value)>,
    pub(crate) sub: Option<String>,
}

/// Where the attribute part of a URN-prefixed path starts: after the last `:`
/// outside brackets and quotes.
fn urn_split(p: &str) -> Option<usize> {
    let mut depth = 0;
    let mut quoted = false;
    let mut last = None;
    for (i, c) in p.char_indices() {
        match c {
            '"' => quoted = !quoted,
            '[' if !quoted => depth += 1,
            ']' if !quoted => depth -= 1,
            ':' if !quoted && depth == 0 => last = Some(i),
            _ => {}
        }
    }
    last
}

fn valid_name(n: &str) -> bool {
    let mut chars = n.chars();
    chars
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '$')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-' || c == '$')
}

fn parse_filter(f: &str, whole: &str) -> Result<(String, Value)> {
    let bad = || {
        err(format!(
            "column \"{whole}\": expected [attribute eq value] in brackets"
        ))
    };
    let mut parts = f.trim().splitn(3, char::is_whitespace);
    let (Some(sub), Some(op), Some(lit)) = (parts.next(), parts.next(), parts.next()) else {
        return Err(bad());
    };
    if !op.eq_ignore_ascii_case("eq") || !valid_name(sub) {
        return Err(bad());
    }
    let lit: Value = serde_json::from_str(lit.trim()).map_err(|_| bad())?;
    if !(lit.is_string() || lit.is_boolean() || lit.is_number()) {
        return Err(bad());
    }
    Ok((sub.to_string(), lit))
}

impl AttrPath {
    pub(crate) fn parse(whole: &str) -> Result<AttrPath> {
        let p = whole.trim();
        let (urn, rest) = if p.len() > 4 && p[..4].eq_ignore_ascii_case("urn:") {
            let at = urn_split(p).ok_or_else(|| err(format!("column \"{whole}\": bad URN")))?;
            (Some(p[..at].to_string()), &p[at + 1..])
        } else {
            (None, p)
        };
        let name_end = rest.find(['[', '.']).unwrap_or(rest.len());
        let attr = &rest[..name_end];
        if !valid_name(attr) {
            return Err(err(format!("column \"{whole}\": bad attribute name")));
        }
        let mut tail = &rest[name_end..];
        let mut filter = None;
        if let Some(t) = tail.strip_prefix('[') {
            let close = t
                .rfind(']')
                .ok_or_else(|| err(format!("column \"{whole}\": unclosed [")))?;
            filter = Some(parse_filter(&t[..close], whole)?);
            tail = &t[close + 1..];
        }
        let sub = match tail.strip_prefix('.') {
            Some(s) if valid_name(s) => Some(s.to_string()),
            None if tail.is_empty() => None,
            _ => return Err(err(format!("column \"{whole}\": bad sub-attribute"))),
        };
        Ok(AttrPath {
            urn,
            attr: attr.to_string(),
            filter,
            sub,
        })
    }
}

/// A key of an object, matched case-insensitively as SCIM names are.
pub(crate) fn get_ci<'a>(obj: &'a Map<String, Value>, key: &str) -> Option<&'a Value> {
    obj.get(key).or_else(|| {
        obj.iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(key))
            .map(|(_, v)| v)
    })
}

fn key_ci(obj: &Map<String, Value>, key: &str) -> String {
    obj.keys()
        .find(|k| k.eq_ignore_ascii_case(key))
        .cloned()
        .unwrap_or_else(|| key.to_string())
}

fn literal_matches(v: Option<&Value>, lit: &Value) -> bool {
    match (v, lit) {
        (Some(Value::String(a)), Value::String(b)) => a.eq_ignore_ascii_case(b),
        (Some(a), b) => a == b,
        (None, _) => false,
    }
}

/// The element of a multi-valued attribute a path without a filter reads:
/// the primary one, else the first.
fn primary_or_first(items: &[Value]) -> Option<&Value> {
    items
        .iter()
        .find(|i| i.get("primary").and_then(Value::as_bool) == Some(true))
        .or(items.first())
}

/// The value at this path in a resource, if any.
pub(crate) fn get<'a>(resource: &'a Value, p: &AttrPath) -> Option<&'a Value> {
    let mut obj = resource.as_object()?;
    if let Some(urn) = &p.urn {
        obj = get_ci(obj, urn)?.as_object()?;
    }
    let v = get_ci(obj, &p.attr)?;
    let v = match (&p.filter, v) {
        (Some((fsub, lit)), Value::Array(items)) => items.iter().find(|i| {
            i.as_object()
                .is_some_and(|o| literal_matches(get_ci(o, fsub), lit))
        })?,
        (Some(_), _) => return None,
        (None, Value::Array(items)) if p.sub.is_some() => primary_or_first(items)?,
        (None, v) => v,
    };
    match &p.sub {
        Some(s) => get_ci(v.as_object()?, s),
        None => Some(v),
    }
}

/// Set the value at this path, creating what is missing. `multi` says whether
/// the attribute is multi-valued (then a path without a filter writes the
/// first element).
pub(crate) fn set(resource: &mut Map<String, Value>, p: &AttrPath, multi: bool, value: Value) {
    let mut obj = resource;
    if let Some(urn) = &p.urn {
        let k = key_ci(obj, urn);
        obj = object_at(obj, k);
    }
    let k = key_ci(obj, &p.attr);
    if p.filter.is_none() && !multi {
        match &p.sub {
            None => {
                obj.insert(k, value);
            }
            Some(s) => {
                let o = object_at(obj, k);
                let sk = key_ci(o, s);
                o.insert(sk, value);
            }
        }
        return;
    }
    let items = array_at(obj, k);
    let at = match &p.filter {
        Some((fsub, lit)) => items.iter().position(|i| {
            i.as_object()
                .is_some_and(|o| literal_matches(get_ci(o, fsub), lit))
        }),
        None => (!items.is_empty()).then_some(0),
    };
    let at = at.unwrap_or_else(|| {
        let mut fresh = Map::new();
        if let Some((fsub, lit)) = &p.filter {
            fresh.insert(fsub.clone(), lit.clone());
        }
        items.push(Value::Object(fresh));
        items.len() - 1
    });
    let elem = &mut items[at];
    match (&p.sub, elem) {
        (Some(s), Value::Object(o)) => {
            let sk = key_ci(o, s);
            o.insert(sk, value);
        }
        (_, e) => *e = value,
    }
}

fn object_at(obj: &mut Map<String, Value>, k: String) -> &mut Map<String, Value> {
    let slot = obj.entry(k).or_insert_with(|| Value::Object(Map::new()));
    if !slot.is_object() {
        *slot = Value::Object(Map::new());
    }
    match slot {
        Value::Object(o) => o,
        _ => unreachable!("just made an object"),
    }
}

fn array_at(obj: &mut Map<String, Value>, k: String) -> &mut Vec<Value> {
    let slot = obj.entry(k).or_insert_with(|| Value::Array(Vec::new()));
    if !slot.is_array() {
        *slot = Value::Array(Vec::new());
    }
    match slot {
        Value::Array(a) => a,
        _ => unreachable!("just made an array"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    const ENT: &str = "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User";

    #[test]
    fn parses_the_forms() {
        let p = AttrPath::parse("userName").unwrap();
        assert_eq!(
            (p.urn, p.attr.as_str(), p.filter, p.sub),
            (None, "userName", None, None)
        );
        let p = AttrPath::parse("name.givenName").unwrap();
        assert_eq!(p.sub.as_deref(), Some("givenName"));
        let p = AttrPath::parse("emails[type eq \"work\"].value").unwrap();
        assert_eq!(p.filter, Some(("type".into(), json!("work"))));
        assert_eq!(p.sub.as_deref(), Some("value"));
        let p = AttrPath::parse(&format!("{ENT}:manager.value")).unwrap();
        assert_eq!(p.urn.as_deref(), Some(ENT));
        assert_eq!(p.attr, "manager");
        let p = AttrPath::parse("emails[primary eq true]").unwrap();
        assert_eq!(p.filter, Some(("primary".into(), json!(true))));
        for bad in [
            "",
            "a b",
            "emails[type co \"x\"].value",
            "emails[type eq \"x\"",
            "a.",
            "a..b",
        ] {
            assert!(AttrPath::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn get_reads_nested_filtered_and_extension_values() {
        let u = json!({
            "userName": "bjensen",
            "name": {"givenName": "Barbara"},
            "emails": [{"type": "home", "value": "b@home"}, {"type": "work", "value": "b@work", "primary": true}],
            ENT: {"employeeNumber": "42"}
        });
        let g = |p: &str| get(&u, &AttrPath::parse(p).unwrap()).cloned();
        assert_eq!(g("USERNAME"), Some(json!("bjensen")));
        assert_eq!(g("name.givenName"), Some(json!("Barbara")));
        assert_eq!(g("emails[type eq \"work\"].value"), Some(json!("b@work")));
        assert_eq!(g("emails[type eq \"other\"].value"), None);
        assert_eq!(g("emails.value"), Some(json!("b@work")));
        assert_eq!(g(&format!("{ENT}:employeeNumber")), Some(json!("42")));
        assert_eq!(g("name.familyName"), None);
    }

    #[test]
    fn set_builds_what_get_reads() {
        let mut m = Map::new();
        let cols = [
            ("userName", false, json!("bjensen")),
            ("name.givenName", false, json!("Barbara")),
            ("emails[type eq \"work\"].value", true, json!("b@work")),
            ("emails[type eq \"work\"].primary", true, json!(true)),
            ("emails[type eq \"home\"].value", true, json!("b@home")),
            ("phoneNumbers.value", true, json!("555")),
            (&format!("{ENT}:employeeNumber"), false, json!("42")),
        ];
        for (p, multi, v) in &cols {
            set(&mut m, &AttrPath::parse(p).unwrap(), *multi, v.clone());
        }
        let u = Value::Object(m);
        assert_eq!(
            u["emails"],
            json!([{"type": "work", "value": "b@work", "primary": true}, {"type": "home", "value": "b@home"}])
        );
        assert_eq!(u["phoneNumbers"], json!([{"value": "555"}]));
        for (p, _, v) in &cols {
            assert_eq!(get(&u, &AttrPath::parse(p).unwrap()), Some(v), "{p}");
        }
    }
}
