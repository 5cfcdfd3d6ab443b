//! Validation and normalisation of client input by attribute characteristics.
//! OWNER: schema helper. STUB until implemented.
use super::model::*;
use super::SchemaRegistry;
use crate::error::ScimResult;
use serde_json::Value;

/// Normalise and check one attribute value against its definition: canonical
/// sub-attribute names, type checks (Entra-style "True"/"False" strings accepted for
/// booleans), arrays for multiValued. Errors: 400 invalidValue / invalidSyntax.
pub fn coerce_value(def: &AttributeDef, value: &Value) -> ScimResult<Value> {
    let _ = (def, value);
    todo!()
}

/// Turn a client's POST body into the canonical document to store: keys in schema
/// case, extension attributes under their URN key, readOnly attributes dropped,
/// required attributes present, `schemas` checked, at most one primary=true per
/// multi-valued attribute. `password` (writeOnly) is kept for the caller to hash.
pub fn validate_create(
    registry: &SchemaRegistry,
    rt: &ResourceTypeDef,
    input: &Value,
) -> ScimResult<Value> {
    let _ = (registry, rt, input);
    todo!()
}

/// PUT (RFC 7644 §3.5.1): validate `input` like a create, then keep readOnly values
/// of `existing`, reject changes of immutable values (400 mutability) and an `id`
/// that differs from `existing`'s (400 invalidValue).
pub fn validate_replace(
    registry: &SchemaRegistry,
    rt: &ResourceTypeDef,
    existing: &Value,
    input: &Value,
) -> ScimResult<Value> {
    let _ = (registry, rt, existing, input);
    todo!()
}

/// Check a whole canonical document after PATCH: types, required attributes present,
/// at most one primary=true (extra primaries from earlier elements are set false).
pub fn validate_document(
    registry: &SchemaRegistry,
    rt: &ResourceTypeDef,
    doc: &mut Value,
) -> ScimResult<()> {
    let _ = (registry, rt, doc);
    todo!()
}
