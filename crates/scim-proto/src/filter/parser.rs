//! Filter and path parser (winnow). OWNER: filter helper. STUB until implemented.
use super::ast::*;
use crate::error::ScimResult;

/// Longest filter accepted, in bytes.
pub const MAX_FILTER_LEN: usize = 8192;
/// Deepest nesting of and/or/not/parentheses/value paths accepted.
pub const MAX_FILTER_DEPTH: usize = 32;

/// Parse a full filter expression (RFC 7644 §3.4.2.2). Errors are `invalidFilter`.
pub fn parse_filter(input: &str) -> ScimResult<Filter> {
    let _ = input;
    todo!("parse_filter")
}

/// Parse `[URN:]attr[.sub]` (sortBy, attributes, excludedAttributes). Errors are `invalidPath`.
pub fn parse_attr_path(input: &str) -> ScimResult<AttrPath> {
    let _ = input;
    todo!("parse_attr_path")
}

/// Parse a PATCH path: `attrPath` or `attrPath[valFilter][.subAttr]`. Errors are `invalidPath`.
pub fn parse_patch_path(input: &str) -> ScimResult<PatchPath> {
    let _ = input;
    todo!("parse_patch_path")
}
