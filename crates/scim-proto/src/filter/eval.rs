//! Filter validation and in-memory evaluation.
//!
//! The SQL compiler mirrors these semantics and a differential test compares the
//! two, so they are spelled out here precisely.
//!
//! # Locating values
//! * Core attributes live at the top level of the stored document, extension
//!   attributes under the extension's URN key, the common attributes (`id`,
//!   `externalId`, `meta`) at the top level. Keys are matched exactly first, then
//!   ASCII-case-insensitively.
//! * The *values* at a path are collected by flattening arrays: `emails.value`
//!   yields every element's `value`; a multi-valued simple attribute yields its
//!   items. A missing key yields nothing.
//! * A comparison (non-null literal) on a complex attribute without a
//!   sub-attribute compares against its `value` sub-attribute (`emails eq "x"`
//!   ≡ `emails.value eq "x"`); without such a sub-attribute it is invalid.
//!
//! # Operators
//! * `pr`: some value at the path is *present*: not null, not `""`, not `[]`,
//!   not `{}` (an array is present when any element is).
//! * `eq`, `co`, `sw`, `ew`, `gt`, `ge`, `lt`, `le`: true when **any** value
//!   satisfies the comparison; false when there is no value.
//! * `ne` is exactly `not eq`: true when **no** value is equal — including when
//!   the attribute is missing.
//! * `eq null` is `not pr`, `ne null` is `pr` (of the path as written); other
//!   operators with `null` are invalid.
//! * `and`, `or`, `not` are the boolean connectives (no three-valued logic).
//! * A value path `attr[f]` is true when some element of `attr` (or the single
//!   object, for a single-valued complex attribute) satisfies `f`, with `f`'s
//!   paths naming sub-attributes of `attr`.
//!
//! # Comparing one value (by the attribute's type)
//! * string, reference: strings. caseExact=false compares `to_lowercase()` of
//!   both sides (full Unicode lowercase mapping, not ASCII-only); caseExact=true
//!   compares as is. `co`/`sw`/`ew` are substring/prefix/suffix tests; ordering
//!   is by Unicode code point (byte-wise UTF-8).
//! * binary: `eq`/`ne` only, exact string equality.
//! * boolean: `eq`/`ne` only.
//! * integer, decimal: numeric; `2 eq 2.0` is true. Two integers compare
//!   exactly, otherwise both are compared as f64. No `co`/`sw`/`ew`.
//! * dateTime: both sides parsed as RFC 3339 and compared as instants, so
//!   `2024-01-01T00:00:00+01:00 lt 2024-01-01T00:00:00Z`. No `co`/`sw`/`ew`.
//! * A stored value of the wrong JSON type (or an unparsable dateTime) never
//!   satisfies a comparison.
use super::ast::*;
use crate::error::{ScimError, ScimResult};
use crate::schema::{display_path, AttrType, AttributeDef, ResourceTypeDef, SchemaRegistry};
use chrono::{DateTime, FixedOffset};
use serde_json::{Number, Value};
use std::cmp::Ordering;

/// Check every attribute path of `filter` against the registry and every literal
/// against the attribute's type; errors are `invalidFilter` with a detail naming the problem.
pub fn validate_filter(
    filter: &Filter,
    registry: &SchemaRegistry,
    rt: &ResourceTypeDef,
) -> ScimResult<()> {
    match filter {
        Filter::Compare { path, op, value } => {
            let resolved = resolve(registry, rt, path)?;
            let target = resolved.target();
            check_comparison(target, *op, value, &display_path(path))
        }
        Filter::Present(path) => resolve(registry, rt, path).map(|_| ()),
        Filter::And(l, r) | Filter::Or(l, r) => {
            validate_filter(l, registry, rt)?;
            validate_filter(r, registry, rt)
        }
        Filter::Not(inner) => validate_filter(inner, registry, rt),
        Filter::ValuePath { path, filter } => {
            let shown = display_path(path);
            let resolved = resolve(registry, rt, path)?;
            if resolved.sub.is_some() || resolved.attr.ty != AttrType::Complex {
                return Err(ScimError::invalid_filter(format!(
                    "a value filter needs a complex attribute, and '{shown}' is not one"
                )));
            }
            validate_element_filter(filter, resolved.attr, &shown)
        }
    }
}

/// Does the stored (canonical) resource document match? The filter must have passed
/// `validate_filter`.
pub fn matches(
    filter: &Filter,
    resource: &Value,
    registry: &SchemaRegistry,
    rt: &ResourceTypeDef,
) -> bool {
    match filter {
        Filter::Compare { path, op, value } => match registry.resolve(rt, path) {
            Ok(r) => {
                let holder = holder_of(resource, r.extension, r.schema);
                compare_at(holder, r.attr, r.sub, *op, value)
            }
            // Keeps `ne` ≡ `not eq` even for paths validation would reject.
            Err(_) => *op == CompareOp::Ne,
        },
        Filter::Present(path) => match registry.resolve(rt, path) {
            Ok(r) => {
                let holder = holder_of(resource, r.extension, r.schema);
                present_at(holder, r.attr, r.sub)
            }
            Err(_) => false,
        },
        Filter::And(l, r) => {
            matches(l, resource, registry, rt) && matches(r, resource, registry, rt)
        }
        Filter::Or(l, r) => {
            matches(l, resource, registry, rt) || matches(r, resource, registry, rt)
        }
        Filter::Not(inner) => !matches(inner, resource, registry, rt),
        Filter::ValuePath { path, filter } => match registry.resolve(rt, path) {
            Ok(r) if r.sub.is_none() => {
                let holder = holder_of(resource, r.extension, r.schema);
                let mut elements = Vec::new();
                collect(holder.and_then(|h| get_ci(h, &r.attr.name)), &mut elements);
                elements
                    .into_iter()
                    .any(|e| e.is_object() && matches_element(filter, e, r.attr))
            }
            _ => false,
        },
    }
}

/// Does one element of a multi-valued complex attribute (`parent`) match a value
/// filter whose paths name `parent`'s sub-attributes (`type eq "work"`)?
pub fn matches_element(filter: &Filter, element: &Value, parent: &AttributeDef) -> bool {
    match filter {
        Filter::Compare { path, op, value } => match element_attr(path, parent) {
            Some(def) => compare_at(Some(element), def, None, *op, value),
            None => *op == CompareOp::Ne,
        },
        Filter::Present(path) => match element_attr(path, parent) {
            Some(def) => present_at(Some(element), def, None),
            None => false,
        },
        Filter::And(l, r) => {
            matches_element(l, element, parent) && matches_element(r, element, parent)
        }
        Filter::Or(l, r) => {
            matches_element(l, element, parent) || matches_element(r, element, parent)
        }
        Filter::Not(inner) => !matches_element(inner, element, parent),
        // Elements have no multi-valued complex sub-attributes to filter on.
        Filter::ValuePath { .. } => false,
    }
}

/// Compare one stored JSON value with a literal, according to `def`'s type and
/// caseExact. This is the single definition of a comparison; everything else
/// only decides which values to feed it. `Ne` is `!Eq`; `Null` never compares.
pub fn compare_value(def: &AttributeDef, value: &Value, op: CompareOp, literal: &Literal) -> bool {
    if op == CompareOp::Ne {
        return !compare_value(def, value, CompareOp::Eq, literal);
    }
    match (def.ty, value, literal) {
        (AttrType::String | AttrType::Reference, Value::String(a), Literal::String(b)) => {
            if def.case_exact {
                compare_strings(a, b, op)
            } else {
                compare_strings(&a.to_lowercase(), &b.to_lowercase(), op)
            }
        }
        (AttrType::Binary, Value::String(a), Literal::String(b)) => op == CompareOp::Eq && a == b,
        (AttrType::Boolean, Value::Bool(a), Literal::Bool(b)) => op == CompareOp::Eq && a == b,
        (AttrType::Integer | AttrType::Decimal, Value::Number(a), Literal::Number(b)) => {
            compare_numbers(a, b).is_some_and(|ord| ordering_satisfies(op, ord))
        }
        (AttrType::DateTime, Value::String(a), Literal::String(b)) => {
            match (parse_date_time(a), parse_date_time(b)) {
                (Some(a), Some(b)) => ordering_satisfies(op, a.cmp(&b)),
                _ => false,
            }
        }
        _ => false,
    }
}

// ---------------------------------------------------------------------------
// Validation

fn resolve<'a>(
    registry: &'a SchemaRegistry,
    rt: &'a ResourceTypeDef,
    path: &AttrPath,
) -> ScimResult<crate::schema::Resolved<'a>> {
    registry
        .resolve(rt, path)
        .map_err(|e| ScimError::invalid_filter(format!("{} in filter", e.detail)))
}

fn validate_element_filter(
    filter: &Filter,
    parent: &AttributeDef,
    parent_name: &str,
) -> ScimResult<()> {
    match filter {
        Filter::Compare { path, op, value } => {
            let def = element_attr_checked(path, parent, parent_name)?;
            let shown = format!("{parent_name}.{}", def.name);
            check_comparison(def, *op, value, &shown)
        }
        Filter::Present(path) => element_attr_checked(path, parent, parent_name).map(|_| ()),
        Filter::And(l, r) | Filter::Or(l, r) => {
            validate_element_filter(l, parent, parent_name)?;
            validate_element_filter(r, parent, parent_name)
        }
        Filter::Not(inner) => validate_element_filter(inner, parent, parent_name),
        Filter::ValuePath { path, .. } => Err(ScimError::invalid_filter(format!(
            "value filters cannot be nested ('{}' inside '{parent_name}[...]')",
            display_path(path)
        ))),
    }
}

fn element_attr_checked<'a>(
    path: &AttrPath,
    parent: &'a AttributeDef,
    parent_name: &str,
) -> ScimResult<&'a AttributeDef> {
    element_attr(path, parent).ok_or_else(|| {
        ScimError::invalid_filter(format!(
            "unknown sub-attribute '{}' of '{parent_name}' in filter",
            display_path(path)
        ))
    })
}

/// The sub-attribute of `parent` an inner value-filter path names; only a bare
/// name is meaningful inside the brackets.
fn element_attr<'a>(path: &AttrPath, parent: &'a AttributeDef) -> Option<&'a AttributeDef> {
    if path.urn.is_some() || path.sub_attr.is_some() {
        return None;
    }
    parent.sub(&path.attr)
}

fn op_name(op: CompareOp) -> &'static str {
    match op {
        CompareOp::Eq => "eq",
        CompareOp::Ne => "ne",
        CompareOp::Co => "co",
        CompareOp::Sw => "sw",
        CompareOp::Ew => "ew",
        CompareOp::Gt => "gt",
        CompareOp::Lt => "lt",
        CompareOp::Ge => "ge",
        CompareOp::Le => "le",
    }
}

fn type_name(ty: AttrType) -> &'static str {
    match ty {
        AttrType::String => "string",
        AttrType::Boolean => "boolean",
        AttrType::Decimal => "decimal",
        AttrType::Integer => "integer",
        AttrType::DateTime => "dateTime",
        AttrType::Binary => "binary",
        AttrType::Reference => "reference",
        AttrType::Complex => "complex",
    }
}

fn literal_kind(lit: &Literal) -> &'static str {
    match lit {
        Literal::String(_) => "a string",
        Literal::Number(_) => "a number",
        Literal::Bool(_) => "a boolean",
        Literal::Null => "null",
    }
}

/// Is `target <op> literal` meaningful? `shown` names the attribute in errors.
fn check_comparison(
    target: &AttributeDef,
    op: CompareOp,
    lit: &Literal,
    shown: &str,
) -> ScimResult<()> {
    let err = |msg: String| Err(ScimError::invalid_filter(msg));
    if *lit == Literal::Null {
        // `eq null` / `ne null` are presence tests, meaningful for any attribute.
        return match op {
            CompareOp::Eq | CompareOp::Ne => Ok(()),
            _ => err(format!(
                "{} is not defined for null (only eq and ne), in comparison on '{shown}'",
                op_name(op)
            )),
        };
    }
    let def = if target.ty == AttrType::Complex {
        match target.sub("value") {
            Some(v) => v,
            None => {
                return err(format!(
                    "cannot compare complex attribute '{shown}' with a value; compare one of its sub-attributes"
                ))
            }
        }
    } else {
        target
    };
    let ordering = matches!(
        op,
        CompareOp::Gt | CompareOp::Lt | CompareOp::Ge | CompareOp::Le
    );
    let substring = matches!(op, CompareOp::Co | CompareOp::Sw | CompareOp::Ew);
    let op_ok = match def.ty {
        AttrType::String | AttrType::Reference => true,
        AttrType::Boolean | AttrType::Binary => !ordering && !substring,
        AttrType::Integer | AttrType::Decimal | AttrType::DateTime => !substring,
        AttrType::Complex => false,
    };
    if !op_ok {
        return err(format!(
            "{} is not defined for {} attribute '{shown}'",
            op_name(op),
            type_name(def.ty)
        ));
    }
    let lit_ok = match (def.ty, lit) {
        (AttrType::String | AttrType::Reference | AttrType::Binary, Literal::String(_)) => true,
        (AttrType::Boolean, Literal::Bool(_)) => true,
        (AttrType::Integer | AttrType::Decimal, Literal::Number(_)) => true,
        (AttrType::DateTime, Literal::String(s)) => {
            if parse_date_time(s).is_none() {
                return err(format!(
                    "'{s}' is not a valid dateTime for '{shown}' (expected RFC 3339, e.g. 2024-01-01T00:00:00Z)"
                ));
            }
            true
        }
        _ => false,
    };
    if !lit_ok {
        let wanted = match def.ty {
            AttrType::Boolean => "true or false",
            AttrType::Integer | AttrType::Decimal => "a number",
            AttrType::DateTime => "a dateTime string",
            _ => "a string",
        };
        return err(format!(
            "'{shown}' is a {} attribute and needs {wanted}, not {}",
            type_name(def.ty),
            literal_kind(lit)
        ));
    }
    Ok(())
}

// ---------------------------------------------------------------------------
// Evaluation

/// The object holding the attribute: the document itself, or the extension object.
fn holder_of<'v>(resource: &'v Value, extension: bool, schema: Option<&str>) -> Option<&'v Value> {
    match (extension, schema) {
        (true, Some(urn)) => get_ci(resource, urn),
        _ => Some(resource),
    }
}

/// Object member lookup: exact key first, then ASCII-case-insensitive.
fn get_ci<'v>(value: &'v Value, key: &str) -> Option<&'v Value> {
    let map = value.as_object()?;
    map.get(key).or_else(|| {
        map.iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(key))
            .map(|(_, v)| v)
    })
}

/// Push `value`, or its elements if it is an array.
fn collect<'v>(value: Option<&'v Value>, out: &mut Vec<&'v Value>) {
    match value {
        Some(Value::Array(items)) => out.extend(items.iter()),
        Some(v) => out.push(v),
        None => {}
    }
}

/// The values at `attr[.sub]` inside `holder`, arrays flattened.
fn values_at<'v>(
    holder: Option<&'v Value>,
    attr: &AttributeDef,
    sub: Option<&AttributeDef>,
) -> Vec<&'v Value> {
    let mut top = Vec::new();
    collect(holder.and_then(|h| get_ci(h, &attr.name)), &mut top);
    let Some(sub) = sub else {
        return top;
    };
    let mut out = Vec::new();
    for item in top {
        collect(get_ci(item, &sub.name), &mut out);
    }
    out
}

fn is_present(value: &Value) -> bool {
    match value {
        Value::Null => false,
        Value::String(s) => !s.is_empty(),
        Value::Array(items) => items.iter().any(is_present),
        Value::Object(map) => !map.is_empty(),
        Value::Bool(_) | Value::Number(_) => true,
    }
}

fn present_at(holder: Option<&Value>, attr: &AttributeDef, sub: Option<&AttributeDef>) -> bool {
    values_at(holder, attr, sub).into_iter().any(is_present)
}

/// `attr[.sub] op literal` with the any-value / `ne` = `not eq` / null rules.
fn compare_at(
    holder: Option<&Value>,
    attr: &AttributeDef,
    sub: Option<&AttributeDef>,
    op: CompareOp,
    literal: &Literal,
) -> bool {
    if *literal == Literal::Null {
        let present = present_at(holder, attr, sub);
        return match op {
            CompareOp::Eq => !present,
            CompareOp::Ne => present,
            _ => false,
        };
    }
    let (def, sub) = match sub {
        Some(s) => (s, Some(s)),
        None if attr.ty == AttrType::Complex => match attr.sub("value") {
            Some(v) => (v, Some(v)),
            None => return op == CompareOp::Ne,
        },
        None => (attr, None),
    };
    let values = values_at(holder, attr, sub);
    let any = |op| values.iter().any(|v| compare_value(def, v, op, literal));
    match op {
        CompareOp::Ne => !any(CompareOp::Eq),
        op => any(op),
    }
}

fn compare_strings(a: &str, b: &str, op: CompareOp) -> bool {
    match op {
        CompareOp::Co => a.contains(b),
        CompareOp::Sw => a.starts_with(b),
        CompareOp::Ew => a.ends_with(b),
        op => ordering_satisfies(op, a.cmp(b)),
    }
}

fn ordering_satisfies(op: CompareOp, ord: Ordering) -> bool {
    match op {
        CompareOp::Eq => ord == Ordering::Equal,
        CompareOp::Ne => ord != Ordering::Equal,
        CompareOp::Gt => ord == Ordering::Greater,
        CompareOp::Ge => ord != Ordering::Less,
        CompareOp::Lt => ord == Ordering::Less,
        CompareOp::Le => ord != Ordering::Greater,
        CompareOp::Co | CompareOp::Sw | CompareOp::Ew => false,
    }
}

/// Integers compare exactly (i64 and u64 ranges both covered); anything involving
/// a float compares as f64.
fn compare_numbers(a: &Number, b: &Number) -> Option<Ordering> {
    if let (Some(x), Some(y)) = (a.as_i64(), b.as_i64()) {
        return Some(x.cmp(&y));
    }
    if let (Some(x), Some(y)) = (a.as_u64(), b.as_u64()) {
        return Some(x.cmp(&y));
    }
    // One is a u64 above i64::MAX and the other a negative i64.
    if a.is_u64() && b.is_i64() {
        return Some(Ordering::Greater);
    }
    if a.is_i64() && b.is_u64() {
        return Some(Ordering::Less);
    }
    a.as_f64()?.partial_cmp(&b.as_f64()?)
}

fn parse_date_time(s: &str) -> Option<DateTime<FixedOffset>> {
    DateTime::parse_from_rfc3339(s).ok()
}
