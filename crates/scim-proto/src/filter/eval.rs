//! In-memory filter evaluator. OWNER: filter helper. STUB until implemented.
use super::ast::*;
use crate::error::ScimResult;
use crate::schema::{AttributeDef, ResourceTypeDef, SchemaRegistry};
use serde_json::Value;

/// Check every attribute path of `filter` against the registry and every literal
/// against the attribute's type; errors are `invalidFilter` with a detail naming the problem.
pub fn validate_filter(
    filter: &Filter,
    registry: &SchemaRegistry,
    rt: &ResourceTypeDef,
) -> ScimResult<()> {
    let _ = (filter, registry, rt);
    todo!()
}

/// Does the stored (canonical) resource document match? The filter must have passed
/// `validate_filter`.
pub fn matches(
    filter: &Filter,
    resource: &Value,
    registry: &SchemaRegistry,
    rt: &ResourceTypeDef,
) -> bool {
    let _ = (filter, resource, registry, rt);
    todo!()
}

/// Does one element of a multi-valued complex attribute (`parent`) match a value
/// filter whose paths name `parent`'s sub-attributes (`type eq "work"`)?
pub fn matches_element(filter: &Filter, element: &Value, parent: &AttributeDef) -> bool {
    let _ = (filter, element, parent);
    todo!()
}
