//! JSON of /Schemas and /ResourceTypes entries (RFC 7643 §6, §7).
use super::model::*;
use serde_json::{json, Map, Value};

pub const SCHEMA_SCHEMA: &str = "urn:ietf:params:scim:schemas:core:2.0:Schema";
pub const RESOURCE_TYPE_SCHEMA: &str = "urn:ietf:params:scim:schemas:core:2.0:ResourceType";

fn location(base_url: &str, collection: &str, id: &str) -> String {
    format!("{}/{collection}/{id}", base_url.trim_end_matches('/'))
}

/// `AttributeDef`'s serde form is already the §7 shape (camelCase keys, empty
/// canonicalValues/referenceTypes/subAttributes omitted). Serialising a plain
/// struct of enums and strings cannot fail; the fallback only keeps this total.
fn attribute_json(def: &AttributeDef) -> Value {
    serde_json::to_value(def).unwrap_or(Value::Null)
}

/// A schema as served by `/Schemas/{urn}`, with `schemas` and `meta` (location under `base_url`).
pub fn schema_json(schema: &Schema, base_url: &str) -> Value {
    json!({
        "schemas": [SCHEMA_SCHEMA],
        "id": schema.id,
        "name": schema.name,
        "description": schema.description,
        "attributes": schema.attributes.iter().map(attribute_json).collect::<Vec<_>>(),
        "meta": {
            "resourceType": "Schema",
            "location": location(base_url, "Schemas", &schema.id),
        },
    })
}

/// A resource type as served by `/ResourceTypes/{name}`, with `schemas` and `meta`.
pub fn resource_type_json(rt: &ResourceTypeDef, base_url: &str) -> Value {
    let mut out = Map::new();
    out.insert("schemas".into(), json!([RESOURCE_TYPE_SCHEMA]));
    out.insert("id".into(), json!(rt.id));
    out.insert("name".into(), json!(rt.name));
    out.insert("endpoint".into(), json!(rt.endpoint));
    out.insert("description".into(), json!(rt.description));
    out.insert("schema".into(), json!(rt.schema));
    // Optional in §6; an empty list trips some strict client models, so omit it.
    if !rt.schema_extensions.is_empty() {
        let exts: Vec<Value> = rt
            .schema_extensions
            .iter()
            .map(|e| json!({ "schema": e.schema, "required": e.required }))
            .collect();
        out.insert("schemaExtensions".into(), Value::Array(exts));
    }
    out.insert(
        "meta".into(),
        json!({
            "resourceType": "ResourceType",
            "location": location(base_url, "ResourceTypes", &rt.id),
        }),
    );
    Value::Object(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::schema::{SchemaRegistry, ENTERPRISE_USER_SCHEMA, USER_SCHEMA};

    const CHARACTERISTICS: [&str; 8] = [
        "name",
        "type",
        "multiValued",
        "required",
        "caseExact",
        "mutability",
        "returned",
        "uniqueness",
    ];

    fn check_attr(a: &Value) {
        for k in CHARACTERISTICS {
            assert!(a.get(k).is_some(), "{k} missing in {a}");
        }
        match a["type"].as_str() {
            Some("complex") => {
                let subs = a["subAttributes"].as_array();
                assert!(subs.is_some_and(|s| !s.is_empty()), "{a}");
                subs.into_iter().flatten().for_each(check_attr);
            }
            Some("reference") => assert!(a["referenceTypes"].is_array(), "{a}"),
            _ => assert!(a.get("subAttributes").is_none()),
        }
    }

    #[test]
    fn schema_representation() {
        let reg = SchemaRegistry::standard();
        let user = reg.schema(USER_SCHEMA);
        let v = user.map(|s| schema_json(s, "https://x.example/scim/v2/"));
        let v = v.unwrap_or_default();
        assert_eq!(v["schemas"][0], SCHEMA_SCHEMA);
        assert_eq!(v["id"], USER_SCHEMA);
        assert_eq!(v["meta"]["resourceType"], "Schema");
        assert_eq!(
            v["meta"]["location"],
            format!("https://x.example/scim/v2/Schemas/{USER_SCHEMA}")
        );
        let attrs = v["attributes"].as_array().cloned().unwrap_or_default();
        assert!(attrs.len() > 15);
        attrs.iter().for_each(check_attr);
        let emails = attrs.iter().find(|a| a["name"] == "emails");
        let emails = emails.cloned().unwrap_or_default();
        assert_eq!(emails["multiValued"], true);
        assert_eq!(emails["mutability"], "readWrite");
        assert_eq!(
            emails["subAttributes"][2]["canonicalValues"],
            json!(["work", "home", "other"])
        );
        let pw = attrs.iter().find(|a| a["name"] == "password");
        assert_eq!(pw.map(|p| p["returned"].clone()), Some(json!("never")));
        assert_eq!(
            pw.map(|p| p["mutability"].clone()),
            Some(json!("writeOnly"))
        );
        for s in reg.schemas() {
            let v = schema_json(s, "http://h");
            v["attributes"]
                .as_array()
                .into_iter()
                .flatten()
                .for_each(check_attr);
        }
    }

    #[test]
    fn resource_type_representation() {
        let reg = SchemaRegistry::standard();
        let rt = reg.resource_type("User").cloned();
        let v = rt.map(|r| resource_type_json(&r, "http://h/scim"));
        let v = v.unwrap_or_default();
        assert_eq!(
            v,
            json!({
                "schemas": [RESOURCE_TYPE_SCHEMA],
                "id": "User",
                "name": "User",
                "endpoint": "/Users",
                "description": "User Account",
                "schema": USER_SCHEMA,
                "schemaExtensions": [{"schema": ENTERPRISE_USER_SCHEMA, "required": false}],
                "meta": {"resourceType": "ResourceType", "location": "http://h/scim/ResourceTypes/User"},
            })
        );
        let g = reg.resource_type("Group").cloned();
        let v = g
            .map(|r| resource_type_json(&r, "http://h"))
            .unwrap_or_default();
        assert_eq!(v["endpoint"], "/Groups");
        assert!(v.get("schemaExtensions").is_none());
    }
}
