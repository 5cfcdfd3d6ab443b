//! JSON of /Schemas and /ResourceTypes entries. OWNER: schema helper. STUB.
use super::model::*;
use serde_json::Value;

/// A schema as served by `/Schemas/{urn}`, with `schemas` and `meta` (location under `base_url`).
pub fn schema_json(schema: &Schema, base_url: &str) -> Value {
    let _ = (schema, base_url);
    todo!()
}

/// A resource type as served by `/ResourceTypes/{name}`, with `schemas` and `meta`.
pub fn resource_type_json(rt: &ResourceTypeDef, base_url: &str) -> Value {
    let _ = (rt, base_url);
    todo!()
}
