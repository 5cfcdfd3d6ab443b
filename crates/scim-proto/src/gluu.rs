//! Gluu's stored (LDAP-style) view of a user, as its IDM-sync endpoint
//! (`UpdatedUsers`) and its scripts see it. One table maps SCIM paths to the
//! stored names; everything Gluu-specific about that view lives here.

use serde_json::{Map, Value};
use std::collections::BTreeMap;

/// How a SCIM attribute's values become stored values.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Shape {
    /// Simple value(s), kept as typed JSON.
    Plain,
    /// Multi-valued complex attribute: each element as a JSON string (as Gluu
    /// stores them), primary element first.
    JsonValues,
    /// `emails`: the `value` of each element, primary first.
    Values,
    /// `active`: "active" / "inactive".
    Status,
}

/// SCIM path → stored attribute name. `password` has no entry: it never appears.
const MAPPING: &[(&str, &str, Shape)] = &[
    ("id", "inum", Shape::Plain),
    ("userName", "uid", Shape::Plain),
    ("externalId", "oxTrustExternalId", Shape::Plain),
    ("name.givenName", "givenName", Shape::Plain),
    ("name.familyName", "sn", Shape::Plain),
    ("name.middleName", "middleName", Shape::Plain),
    ("name.formatted", "oxTrustNameFormatted", Shape::Plain),
    (
        "name.honorificPrefix",
        "oxTrusthonorificPrefix",
        Shape::Plain,
    ),
    (
        "name.honorificSuffix",
        "oxTrusthonorificSuffix",
        Shape::Plain,
    ),
    ("displayName", "displayName", Shape::Plain),
    ("nickName", "nickname", Shape::Plain),
    ("profileUrl", "oxTrustProfileURL", Shape::Plain),
    ("title", "oxTrustTitle", Shape::Plain),
    ("userType", "oxTrustUserType", Shape::Plain),
    ("preferredLanguage", "preferredLanguage", Shape::Plain),
    ("locale", "locale", Shape::Plain),
    ("timezone", "zoneinfo", Shape::Plain),
    ("active", "gluuStatus", Shape::Status),
    ("emails", "mail", Shape::Values),
    ("phoneNumbers", "oxTrustPhoneValue", Shape::JsonValues),
    ("addresses", "oxTrustAddresses", Shape::JsonValues),
    ("ims", "oxTrustIMValue", Shape::JsonValues),
    ("photos", "oxTrustPhotos", Shape::JsonValues),
    ("entitlements", "oxTrustEntitlements", Shape::JsonValues),
    ("roles", "oxTrustRole", Shape::JsonValues),
    (
        "x509Certificates",
        "oxTrustx509Certificate",
        Shape::JsonValues,
    ),
    ("meta.created", "oxCreationTimestamp", Shape::Plain),
    ("meta.lastModified", "updatedAt", Shape::Plain),
];

/// The stored name of a SCIM attribute path, if Gluu maps it.
pub fn stored_name(scim_path: &str) -> Option<&'static str> {
    MAPPING
        .iter()
        .find(|(p, _, _)| p.eq_ignore_ascii_case(scim_path))
        .map(|(_, n, _)| *n)
}

fn lookup<'a>(doc: &'a Value, path: &str) -> Option<&'a Value> {
    let mut cur = doc;
    for part in path.split('.') {
        cur = cur.get(part)?;
    }
    Some(cur)
}

fn primary_first(items: &[Value]) -> Vec<&Value> {
    let mut v: Vec<&Value> = items.iter().collect();
    v.sort_by_key(|e| e.get("primary") != Some(&Value::Bool(true)));
    v
}

fn values(shape: Shape, v: &Value) -> Vec<Value> {
    match (shape, v) {
        (Shape::Status, Value::Bool(b)) => {
            vec![Value::String(if *b { "active" } else { "inactive" }.into())]
        }
        (Shape::Values, Value::Array(items)) => primary_first(items)
            .into_iter()
            .filter_map(|e| e.get("value").cloned())
            .collect(),
        (Shape::JsonValues, Value::Array(items)) => primary_first(items)
            .into_iter()
            .map(|e| Value::String(e.to_string()))
            .collect(),
        (_, Value::Array(items)) => items.clone(),
        (_, other) => vec![other.clone()],
    }
}

/// A user document (canonical SCIM form) in Gluu's stored form: keys are the
/// stored names, sorted; every value is an array. Extension attributes (custom
/// ones, enterprise) keep their own names. `groups` are the ids of the groups the
/// user belongs to (`memberOf`).
pub fn stored_user(doc: &Value, groups: &[String]) -> Map<String, Value> {
    let mut out: BTreeMap<String, Vec<Value>> = BTreeMap::new();
    for (path, name, shape) in MAPPING {
        if let Some(v) = lookup(doc, path) {
            let vals = values(*shape, v);
            if !vals.is_empty() {
                out.insert((*name).to_string(), vals);
            }
        }
    }
    // Gluu emits `mobile` for phone numbers of type mobile.
    if let Some(Value::Array(phones)) = doc.get("phoneNumbers") {
        let mobiles: Vec<Value> = phones
            .iter()
            .filter(|p| p.get("type").and_then(Value::as_str) == Some("mobile"))
            .filter_map(|p| p.get("value").cloned())
            .collect();
        if !mobiles.is_empty() {
            out.insert("mobile".into(), mobiles);
        }
    }
    let given = lookup(doc, "name.givenName").and_then(Value::as_str);
    let family = lookup(doc, "name.familyName").and_then(Value::as_str);
    let cn: Vec<&str> = [given, family].into_iter().flatten().collect();
    if !cn.is_empty() {
        out.insert("cn".into(), vec![Value::String(cn.join(" "))]);
    }
    if !groups.is_empty() {
        out.insert(
            "memberOf".into(),
            groups.iter().cloned().map(Value::String).collect(),
        );
    }
    if let Some(obj) = doc.as_object() {
        for ext in obj
            .iter()
            .filter(|(k, _)| k.starts_with("urn:"))
            .map(|(_, v)| v)
        {
            for (name, v) in ext.as_object().into_iter().flatten() {
                out.insert(name.clone(), values(Shape::Plain, v));
            }
        }
    }
    out.into_iter().map(|(k, v)| (k, Value::Array(v))).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn user_in_stored_form() {
        let doc = json!({
            "schemas": ["urn:ietf:params:scim:schemas:core:2.0:User"],
            "id": "abcd-1234", "userName": "jhonny", "displayName": "Jhonny",
            "name": {"givenName": "Jhon", "familyName": "Garbanzo"},
            "active": true,
            "emails": [{"value": "jhon@home.com"}, {"value": "jhon@office.com", "primary": true}],
            "phoneNumbers": [{"value": "+1987654321", "type": "mobile"}],
            "urn:ietf:params:scim:schemas:extension:gluu:2.0:User": {"myIntegerCustomAttribute": 123},
            "meta": {"created": "2019-12-25T01:27:29.934Z", "lastModified": "2019-12-25T01:27:29.934Z"}
        });
        let m = stored_user(&doc, &["g1".to_string()]);
        assert_eq!(m["inum"], json!(["abcd-1234"]));
        assert_eq!(m["uid"], json!(["jhonny"]));
        assert_eq!(m["cn"], json!(["Jhon Garbanzo"]));
        assert_eq!(m["sn"], json!(["Garbanzo"]));
        assert_eq!(m["gluuStatus"], json!(["active"]));
        assert_eq!(m["mail"], json!(["jhon@office.com", "jhon@home.com"]));
        assert_eq!(m["mobile"], json!(["+1987654321"]));
        assert_eq!(m["myIntegerCustomAttribute"], json!([123]));
        assert_eq!(m["updatedAt"], json!(["2019-12-25T01:27:29.934Z"]));
        assert_eq!(m["memberOf"], json!(["g1"]));
        assert!(m["oxTrustPhoneValue"][0].is_string());
        let keys: Vec<&String> = m.keys().collect();
        let mut sorted = keys.clone();
        sorted.sort();
        assert_eq!(keys, sorted, "keys sorted");
        assert!(!m.contains_key("userPassword"));
        assert_eq!(stored_name("name.familyName"), Some("sn"));
        assert_eq!(stored_name("password"), None);
    }
}
