//! PATCH engine (RFC 7644 §3.5.2). OWNER: patch helper. STUB until implemented.
use crate::error::ScimResult;
use crate::schema::{ResourceTypeDef, SchemaRegistry};
use serde_json::Value;

/// Apply a PatchOp request body to the stored canonical document and return the new
/// document (not yet persisted). The caller runs `schema::validate::validate_document`
/// afterwards? No: this function leaves the document valid (it calls it itself).
pub fn apply_patch(
    registry: &SchemaRegistry,
    rt: &ResourceTypeDef,
    resource: &Value,
    request: &Value,
) -> ScimResult<Value> {
    let _ = (registry, rt, resource, request);
    todo!()
}
