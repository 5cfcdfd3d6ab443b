//! One OpenAPI 3.1 document for the whole HTTP surface (`GET /openapi.json`):
//! the SCIM endpoints generated from the schema registry (so custom attributes
//! and the configured resource types appear), the discovery, feed, token, admin,
//! health and metrics endpoints beside them. Response bodies are described as
//! they are; a documented `default` response covers every SCIM error.

use crate::config::ServerConfig;
use scim_proto::schema::{AttrType, AttributeDef, ResourceTypeDef, SchemaRegistry};
use serde_json::{json, Map, Value};

const SCIM: &str = "application/scim+json";

/// The document for this registry and configuration.
pub fn document(registry: &SchemaRegistry, cfg: &ServerConfig) -> Value {
    let mut paths = Map::new();
    let mut schemas = base_schemas();
    for rt in registry.resource_types() {
        schemas.insert(rt.name.clone(), resource_schema(registry, rt));
        resource_paths(&mut paths, rt);
    }
    discovery_paths(&mut paths);
    service_paths(&mut paths);
    let security = match cfg.protection {
        scim_auth::Mode::Bypass => json!([]),
        _ => json!([{"bearer": []}]),
    };
    json!({
        "openapi": "3.1.0",
        "info": {
            "title": "scimd",
            "version": env!("CARGO_PKG_VERSION"),
            "description": "SCIM 2.0 (RFC 7643 / 7644) provisioning server. The SCIM API is \
                also served under Gluu's prefixes /identity/restv1/scim/v2 and /scim/restv1/scim/v2."
        },
        "servers": [{"url": "/"}],
        "security": security,
        "components": {
            "securitySchemes": {
                "bearer": {"type": "http", "scheme": "bearer", "bearerFormat": "JWT"},
                "clientBasic": {"type": "http", "scheme": "basic"}
            },
            "schemas": Value::Object(schemas),
            "responses": {
                "Error": {
                    "description": "A SCIM error (RFC 7644 §3.12)",
                    "content": {SCIM: {"schema": {"$ref": "#/components/schemas/Error"}}}
                }
            }
        },
        "paths": Value::Object(paths),
    })
}

fn scim_body(schema: Value) -> Value {
    json!({"content": {SCIM: {"schema": schema}, "application/json": {"schema": schema}}})
}

fn reply(description: &str, schema: Value) -> Value {
    let mut r = json!({"description": description});
    r["content"] = json!({SCIM: {"schema": schema}});
    r
}

fn schema_ref(name: &str) -> Value {
    json!({"$ref": format!("#/components/schemas/{name}")})
}

/// An operation with its documented successes and the SCIM error default.
fn op(summary: &str, tag: &str, responses: Value, extra: Value) -> Value {
    let mut responses = responses;
    responses["default"] = json!({"$ref": "#/components/responses/Error"});
    let mut o = json!({"summary": summary, "tags": [tag], "responses": responses});
    if let (Some(o), Value::Object(extra)) = (o.as_object_mut(), extra) {
        o.extend(extra);
    }
    o
}

fn query(name: &str, schema: Value, description: &str) -> Value {
    json!({"name": name, "in": "query", "required": false, "schema": schema, "description": description})
}

fn list_params() -> Value {
    let mut params = json!([
        query(
            "filter",
            json!({"type": "string"}),
            "RFC 7644 §3.4.2.2 filter"
        ),
        query("sortBy", json!({"type": "string"}), "attribute to sort by"),
        query(
            "sortOrder",
            json!({"type": "string", "enum": ["ascending", "descending"]}),
            ""
        ),
        query(
            "startIndex",
            json!({"type": "integer"}),
            "1-based index of the first result"
        ),
        query("count", json!({"type": "integer"}), "page size"),
        query("cursor", json!({"type": "string"}), "RFC 9865 cursor"),
    ]);
    if let (Some(p), Value::Array(more)) = (params.as_array_mut(), projection_params()) {
        p.extend(more);
    }
    params
}

fn projection_params() -> Value {
    json!([
        query(
            "attributes",
            json!({"type": "string"}),
            "attributes to return"
        ),
        query(
            "excludedAttributes",
            json!({"type": "string"}),
            "attributes to leave out"
        ),
    ])
}

fn id_param() -> Value {
    json!({"name": "id", "in": "path", "required": true, "schema": {"type": "string"}})
}

fn resource_paths(paths: &mut Map<String, Value>, rt: &ResourceTypeDef) {
    let base = format!("/scim/v2{}", rt.endpoint);
    let name = &rt.name;
    let tag = rt.name.as_str();
    let one = reply(&format!("the {name}"), schema_ref(name));
    let list = reply("a page of results", schema_ref("ListResponse"));
    let mut collection = json!({
        "get": op(&format!("List or search {name} resources"), tag,
                  json!({"200": list.clone()}), json!({"parameters": list_params()})),
    });
    if !rt.kind.is_device() {
        collection["post"] = op(
            &format!("Create a {name}"),
            tag,
            json!({"201": one.clone()}),
            json!({"requestBody": scim_body(schema_ref(name)), "parameters": projection_params()}),
        );
    }
    paths.insert(base.clone(), collection);
    paths.insert(
        format!("{base}/.search"),
        json!({"post": op(&format!("Search {name} resources (SearchRequest)"), tag,
            json!({"200": list}),
            json!({"requestBody": scim_body(schema_ref("SearchRequest"))}))}),
    );
    let mut params = projection_params();
    if let Some(a) = params.as_array_mut() {
        a.push(id_param());
    }
    paths.insert(
        format!("{base}/{{id}}"),
        json!({
            "parameters": [id_param()],
            "get": op(&format!("Get a {name}"), tag, json!({"200": one.clone(), "304": {"description": "not modified (If-None-Match)"}}),
                      json!({"parameters": projection_params()})),
            "put": op(&format!("Replace a {name}"), tag, json!({"200": one.clone()}),
                      json!({"requestBody": scim_body(schema_ref(name)), "parameters": projection_params()})),
            "patch": op(&format!("Modify a {name} (PatchOp)"), tag,
                        json!({"200": one, "204": {"description": "modified"}}),
                        json!({"requestBody": scim_body(schema_ref("PatchOp")), "parameters": projection_params()})),
            "delete": op(&format!("Delete a {name}"), tag, json!({"204": {"description": "deleted"}}), json!({})),
        }),
    );
}

fn discovery_paths(paths: &mut Map<String, Value>) {
    let any = json!({"type": "object"});
    let public = json!({"security": []});
    let get = |summary: &str, body: Value| json!({"get": op(summary, "Discovery", json!({"200": reply("the document", body)}), public.clone())});
    paths.insert(
        "/scim/v2/ServiceProviderConfig".into(),
        get("Service provider configuration", any.clone()),
    );
    paths.insert(
        "/scim/v2/Schemas".into(),
        get("Every schema", schema_ref("ListResponse")),
    );
    paths.insert(
        "/scim/v2/ResourceTypes".into(),
        get("Every resource type", schema_ref("ListResponse")),
    );
    for (path, what) in [
        ("/scim/v2/Schemas/{id}", "One schema"),
        ("/scim/v2/ResourceTypes/{id}", "One resource type"),
    ] {
        let mut p = get(what, any.clone());
        p["parameters"] = json!([id_param()]);
        paths.insert(path.into(), p);
    }
    paths.insert(
        "/scim/v2/.search".into(),
        json!({"post": op("Search across every resource type", "Search",
            json!({"200": reply("a page of results", schema_ref("ListResponse"))}),
            json!({"requestBody": scim_body(schema_ref("SearchRequest"))}))}),
    );
    paths.insert(
        "/scim/v2/Bulk".into(),
        json!({"post": op("Bulk operations (RFC 7644 §3.7)", "Bulk",
            json!({"200": reply("the operations' results", schema_ref("BulkResponse"))}),
            json!({"requestBody": scim_body(schema_ref("BulkRequest"))}))}),
    );
    paths.insert(
        "/scim/v2/Changes".into(),
        json!({"get": op("The lossless change feed", "Feed",
            json!({"200": reply("changes after the cursor", any.clone())}),
            json!({"parameters": [
                query("cursor", json!({"type": "string"}), "position to read after; `latest` for the end"),
                query("count", json!({"type": "integer"}), "most changes"),
            ]}))}),
    );
    paths.insert(
        "/scim/UpdatedUsers".into(),
        json!({"get": op("Gluu's IDM-sync feed of changed users", "Feed",
            json!({"200": {"description": "users changed since timeStamp", "content": {"application/json": {"schema": any.clone()}}}}),
            json!({"parameters": [
                query("timeStamp", json!({"type": "string"}), "ISO time"),
                query("start", json!({"type": "integer"}), ""),
                query("pageSize", json!({"type": "integer"}), ""),
            ]}))}),
    );
}

fn json_reply(description: &str) -> Value {
    json!({"description": description, "content": {"application/json": {"schema": {"type": "object"}}}})
}

fn service_paths(paths: &mut Map<String, Value>) {
    let public = json!({"security": []});
    paths.insert(
        "/oauth/token".into(),
        json!({"post": {
            "summary": "OAuth 2.0 token endpoint (client_credentials, UMA grant)",
            "tags": ["OAuth"],
            "security": [{"clientBasic": []}, {}],
            "requestBody": {"content": {"application/x-www-form-urlencoded": {"schema": {
                "type": "object",
                "properties": {"grant_type": {"type": "string"}, "scope": {"type": "string"},
                               "client_id": {"type": "string"}, "client_secret": {"type": "string"},
                               "ticket": {"type": "string"}},
                "required": ["grant_type"]}}}},
            "responses": {"200": json_reply("the access token"), "default": json_reply("an OAuth error (RFC 6749 §5.2)")}
        }}),
    );
    for (path, what) in [
        (
            "/.well-known/openid-configuration",
            "Authorization server metadata",
        ),
        (
            "/.well-known/oauth-authorization-server",
            "Authorization server metadata (RFC 8414)",
        ),
        ("/.well-known/uma2-configuration", "UMA 2.0 metadata"),
        ("/scim/scim-configuration", "Gluu's endpoint list"),
        ("/health/live", "Liveness: the process serves"),
        (
            "/health/ready",
            "Readiness: the database answers and is migrated",
        ),
        ("/openapi.json", "This document"),
    ] {
        let mut ok = json!({"200": json_reply(what)});
        if path == "/health/ready" {
            ok["503"] = json_reply("not ready");
        }
        if path == "/scim/scim-configuration" {
            ok["200"]["content"] = json!({SCIM: {"schema": {"type": "array"}}});
        }
        ok["default"] = json!({"$ref": "#/components/responses/Error"});
        let mut o = json!({"summary": what, "tags": ["Service"], "responses": ok});
        o["security"] = public["security"].clone();
        paths.insert(path.into(), json!({"get": o}));
    }
    paths.insert(
        "/oauth/jwks".into(),
        json!({"get": {"summary": "The signing keys (JWKS)", "tags": ["OAuth"], "security": [],
            "responses": {"200": {"description": "the key set",
                "content": {"application/jwk-set+json": {"schema": {"type": "object"}}}},
                "default": {"$ref": "#/components/responses/Error"}}}}),
    );
    paths.insert(
        "/metrics".into(),
        json!({"get": op("Prometheus metrics (scope metrics)", "Service",
            json!({"200": {"description": "Prometheus text", "content": {"text/plain": {"schema": {"type": "string"}}}}}),
            json!({}))}),
    );
    paths.insert(
        "/admin/attributes".into(),
        json!({
            "get": op("Custom user attributes", "Admin", json!({"200": reply("the attributes", json!({"type": "object"}))}), json!({})),
            "post": op("Add a custom user attribute", "Admin", json!({"201": reply("the attribute", json!({"type": "object"}))}),
                       json!({"requestBody": scim_body(json!({"type": "object",
                            "properties": {"name": {"type": "string"}, "type": {"type": "string"}, "multiValued": {"type": "boolean"}},
                            "required": ["name", "type"]}))})),
        }),
    );
    paths.insert(
        "/admin/attributes/{name}".into(),
        json!({
            "parameters": [{"name": "name", "in": "path", "required": true, "schema": {"type": "string"}}],
            "delete": op("Remove a custom user attribute", "Admin", json!({"204": {"description": "removed"}}),
                         json!({"parameters": [query("force", json!({"type": "boolean"}), "also delete users' values")]})),
        }),
    );
    paths.insert(
        "/admin/audit".into(),
        json!({"get": op("The audit trail: who wrote what", "Admin",
        json!({"200": reply("writes, newest first", json!({"type": "object"}))}),
        json!({"parameters": [
            query("resource", json!({"type": "string"}), "a resource id"),
            query("client", json!({"type": "string"}), "a client id"),
            query("since", json!({"type": "string", "format": "date-time"}), "RFC 3339"),
            query("count", json!({"type": "integer"}), "at most 1,000"),
        ]}))}),
    );
    paths.insert(
        "/admin/scripts".into(),
        json!({
            "get": op("Interception scripts", "Admin", json!({"200": reply("the scripts", json!({"type": "object"}))}), json!({})),
            "post": op("Add an interception script", "Admin", json!({"201": reply("the script", json!({"type": "object"}))}),
                       json!({"requestBody": scim_body(json!({"type": "object"}))})),
        }),
    );
    paths.insert(
        "/admin/scripts/{name}".into(),
        json!({
            "parameters": [{"name": "name", "in": "path", "required": true, "schema": {"type": "string"}}],
            "get": op("One interception script", "Admin", json!({"200": reply("the script", json!({"type": "object"}))}), json!({})),
            "put": op("Change an interception script", "Admin", json!({"200": reply("the script", json!({"type": "object"}))}),
                      json!({"requestBody": scim_body(json!({"type": "object"}))})),
            "delete": op("Remove an interception script", "Admin", json!({"204": {"description": "removed"}}), json!({})),
        }),
    );
}

fn base_schemas() -> Map<String, Value> {
    let mut m = Map::new();
    m.insert(
        "Error".into(),
        json!({
            "type": "object",
            "properties": {"schemas": {"type": "array", "items": {"type": "string"}},
                           "status": {"type": "string"}, "scimType": {"type": "string"},
                           "detail": {"type": "string"}},
            "required": ["schemas", "status"]
        }),
    );
    m.insert(
        "ListResponse".into(),
        json!({
            "type": "object",
            "properties": {"schemas": {"type": "array", "items": {"type": "string"}},
                           "totalResults": {"type": "integer"}, "startIndex": {"type": "integer"},
                           "itemsPerPage": {"type": "integer"}, "nextCursor": {"type": "string"},
                           "previousCursor": {"type": "string"},
                           "Resources": {"type": "array", "items": {"type": "object"}}},
            "required": ["schemas", "totalResults"]
        }),
    );
    m.insert(
        "SearchRequest".into(),
        json!({
            "type": "object",
            "properties": {"schemas": {"type": "array", "items": {"type": "string"}},
                           "filter": {"type": "string"}, "sortBy": {"type": "string"},
                           "sortOrder": {"type": "string"}, "startIndex": {"type": "integer"},
                           "count": {"type": "integer"}, "cursor": {"type": "string"},
                           "attributes": {"type": "array", "items": {"type": "string"}},
                           "excludedAttributes": {"type": "array", "items": {"type": "string"}}}
        }),
    );
    m.insert("PatchOp".into(), json!({
        "type": "object",
        "properties": {"schemas": {"type": "array", "items": {"type": "string"}},
                       "Operations": {"type": "array", "items": {"type": "object",
                           "properties": {"op": {"type": "string"}, "path": {"type": "string"}, "value": {}},
                           "required": ["op"]}}},
        "required": ["schemas", "Operations"]
    }));
    m.insert("BulkRequest".into(), json!({
        "type": "object",
        "properties": {"schemas": {"type": "array", "items": {"type": "string"}},
                       "failOnErrors": {"type": "integer"},
                       "Operations": {"type": "array", "items": {"type": "object",
                           "properties": {"method": {"type": "string"}, "bulkId": {"type": "string"},
                                          "path": {"type": "string"}, "version": {"type": "string"}, "data": {}},
                           "required": ["method", "path"]}}},
        "required": ["schemas", "Operations"]
    }));
    m.insert(
        "BulkResponse".into(),
        json!({
            "type": "object",
            "properties": {"schemas": {"type": "array", "items": {"type": "string"}},
                           "Operations": {"type": "array", "items": {"type": "object"}}},
            "required": ["schemas", "Operations"]
        }),
    );
    m
}

/// A resource type as JSON Schema: its core schema's attributes, each extension
/// under its URN, and the common attributes.
fn resource_schema(registry: &SchemaRegistry, rt: &ResourceTypeDef) -> Value {
    let mut props = Map::new();
    props.insert(
        "schemas".into(),
        json!({"type": "array", "items": {"type": "string"}}),
    );
    for a in registry.common_attributes() {
        props.insert(a.name.clone(), attribute_schema(a));
    }
    if let Some(core) = registry.schema(&rt.schema) {
        for a in &core.attributes {
            props.insert(a.name.clone(), attribute_schema(a));
        }
    }
    for ext in &rt.schema_extensions {
        if let Some(s) = registry.schema(&ext.schema) {
            props.insert(ext.schema.clone(), object_of(&s.attributes, &s.description));
        }
    }
    json!({"type": "object", "description": rt.description, "properties": props})
}

fn object_of(attrs: &[AttributeDef], description: &str) -> Value {
    let props: Map<String, Value> = attrs
        .iter()
        .map(|a| (a.name.clone(), attribute_schema(a)))
        .collect();
    json!({"type": "object", "description": description, "properties": props})
}

fn attribute_schema(a: &AttributeDef) -> Value {
    let one = match a.ty {
        AttrType::String | AttrType::Binary | AttrType::Reference => json!({"type": "string"}),
        AttrType::DateTime => json!({"type": "string", "format": "date-time"}),
        AttrType::Boolean => json!({"type": "boolean"}),
        AttrType::Decimal => json!({"type": "number"}),
        AttrType::Integer => json!({"type": "integer"}),
        AttrType::Complex => object_of(&a.sub_attributes, ""),
    };
    let mut s = if a.multi_valued {
        json!({"type": "array", "items": one})
    } else {
        one
    };
    if !a.description.is_empty() {
        s["description"] = json!(a.description);
    }
    if matches!(a.mutability, scim_proto::schema::Mutability::ReadOnly) {
        s["readOnly"] = json!(true);
    }
    if matches!(a.returned, scim_proto::schema::Returned::Never) {
        s["writeOnly"] = json!(true);
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_resource_type_and_custom_attributes_appear() {
        use scim_proto::schema::custom::{CustomAttribute, CustomType, GLUU_USER_EXTENSION};
        let reg = SchemaRegistry::build(&scim_proto::schema::RegistryOptions {
            devices: true,
            custom: Some((
                GLUU_USER_EXTENSION.into(),
                vec![CustomAttribute {
                    name: "badge".into(),
                    kind: CustomType::Numeric,
                    multi_valued: false,
                    description: String::new(),
                }],
            )),
        });
        let doc = document(&reg, &ServerConfig::default());
        assert_eq!(doc["openapi"], "3.1.0");
        for p in [
            "/scim/v2/Users",
            "/scim/v2/Users/{id}",
            "/scim/v2/Groups/.search",
            "/scim/v2/FidoDevices/{id}",
            "/scim/v2/Bulk",
            "/oauth/token",
            "/admin/audit",
        ] {
            assert!(doc["paths"][p].is_object(), "{p} missing");
        }
        assert!(
            doc["paths"]["/scim/v2/FidoDevices"]["post"].is_null(),
            "devices are enrolled"
        );
        let user = &doc["components"]["schemas"]["User"]["properties"];
        assert_eq!(
            user[GLUU_USER_EXTENSION]["properties"]["badge"]["type"],
            "number"
        );
        assert_eq!(user["emails"]["type"], "array");
        assert_eq!(user["password"]["writeOnly"], true);
        assert_eq!(user["id"]["readOnly"], true);
    }
}
