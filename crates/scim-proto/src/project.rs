//! attributes / excludedAttributes (RFC 7644 §3.4.2.5) honouring `returned`.
//! OWNER: schema helper. STUB until implemented.
use crate::error::ScimResult;
use crate::filter::AttrPath;
use crate::schema::{ResourceTypeDef, SchemaRegistry};
use serde_json::Value;

#[derive(Debug, Clone, Default, PartialEq)]
pub struct Projection {
    pub attributes: Vec<AttrPath>,
    pub excluded: Vec<AttrPath>,
}

impl Projection {
    /// From the comma-separated query parameters (or SearchRequest fields).
    /// Unknown attribute names are ignored (RFC 7644 leaves this open; clients send
    /// names of other resource types on root searches).
    pub fn parse(attributes: Option<&str>, excluded: Option<&str>) -> ScimResult<Projection> {
        let _ = (attributes, excluded);
        todo!()
    }

    /// Is this (multi-valued complex) attribute wanted at all? Lets the server skip
    /// expensive work such as joining group member display names.
    pub fn wants(&self, registry: &SchemaRegistry, rt: &ResourceTypeDef, path: &AttrPath) -> bool {
        let _ = (registry, rt, path);
        todo!()
    }
}

/// The response form of a stored document: `returned: never` removed, `always`
/// kept, `default` unless excluded or not asked for, `request` only when asked for.
pub fn project(
    registry: &SchemaRegistry,
    rt: &ResourceTypeDef,
    resource: &Value,
    projection: &Projection,
) -> Value {
    let _ = (registry, rt, resource, projection);
    todo!()
}
