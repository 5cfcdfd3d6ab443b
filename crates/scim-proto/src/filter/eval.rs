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
//!   satisfies a comparison (so it is `ne` anything).
//!
//! # Filters that did not pass validation
//! A comparison `validate_filter` would reject (unknown attribute or
//! sub-attribute, complex attribute without `value`) evaluates to false, `ne`
//! included; `pr` on an unknown path is false; a nested value path is false.
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
            Err(_) => false,
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
            None => false,
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
        let article = if def.ty == AttrType::Integer {
            "an"
        } else {
            "a"
        };
        return err(format!(
            "'{shown}' is {article} {} attribute and needs {wanted}, not {}",
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
            None => return false,
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

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
mod tests {
    use super::*;
    use crate::error::ScimType;
    use crate::filter::parse_filter;
    use crate::schema::{Mutability, Returned, Uniqueness};
    use serde_json::json;

    const ENT: &str = "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User";

    fn user() -> Value {
        json!({
            "schemas": ["urn:ietf:params:scim:schemas:core:2.0:User", ENT],
            "id": "2819c223-7f76-453a-919d-413861904646",
            "externalId": "Ext-1",
            "userName": "BJensen",
            "name": {"givenName": "Barbara", "familyName": "Jensen"},
            "displayName": "ÉCOLE",
            "title": "STRASSE",
            "nickName": "",
            "active": true,
            "profileUrl": "https://login.example.com/bjensen",
            "emails": [
                {"value": "bjensen@example.com", "type": "work", "primary": true},
                {"value": "babs@jensen.org", "type": "home"}
            ],
            "phoneNumbers": [],
            "ims": [{}],
            "x509Certificates": [{"value": "MIIDQzCCA"}],
            "meta": {
                "resourceType": "User",
                "created": "2024-01-01T00:00:00+01:00",
                "lastModified": "2024-06-01T12:00:00+02:00",
                "location": "https://example.com/v2/Users/2819c223",
                "version": "W/\"1\""
            },
            ENT: {
                "employeeNumber": "701984",
                "manager": {"value": "26118915", "displayName": "John Smith"}
            }
        })
    }

    fn eval_on(rt_name: &str, doc: &Value, filter: &str) -> bool {
        let reg = SchemaRegistry::standard();
        let rt = reg.resource_type(rt_name).unwrap();
        let f = parse_filter(filter).unwrap_or_else(|e| panic!("{filter}: {e}"));
        validate_filter(&f, &reg, rt).unwrap_or_else(|e| panic!("{filter}: {e}"));
        let got = matches(&f, doc, &reg, rt);
        // `not` must always be the exact negation.
        assert_eq!(
            matches(&Filter::Not(Box::new(f)), doc, &reg, rt),
            !got,
            "{filter}"
        );
        got
    }

    fn check(filter: &str, want: bool) {
        assert_eq!(eval_on("User", &user(), filter), want, "{filter}");
    }

    fn invalid(filter: &str) -> String {
        let reg = SchemaRegistry::standard();
        let rt = reg.resource_type("User").unwrap();
        let f = parse_filter(filter).unwrap_or_else(|e| panic!("{filter}: {e}"));
        let e = validate_filter(&f, &reg, rt).expect_err(filter);
        assert_eq!(e.scim_type, Some(ScimType::InvalidFilter), "{filter}");
        e.detail
    }

    #[test]
    fn string_operators_case_insensitive() {
        for (f, want) in [
            (r#"userName eq "bjensen""#, true),
            (r#"userName eq "BJENSEN""#, true),
            (r#"userName eq "bjense""#, false),
            (r#"userName ne "bjensen""#, false),
            (r#"userName ne "other""#, true),
            (r#"userName co "JEN""#, true),
            (r#"userName co "xyz""#, false),
            (r#"userName sw "bj""#, true),
            (r#"userName sw "je""#, false),
            (r#"userName ew "SEN""#, true),
            (r#"userName ew "bj""#, false),
            (r#"userName gt "BA""#, true),
            (r#"userName gt "bjensen""#, false),
            (r#"userName ge "BJENSEN""#, true),
            (r#"userName lt "c""#, true),
            (r#"userName lt "bjensen""#, false),
            (r#"userName le "bjensen""#, true),
            (r#"userName le "a""#, false),
            (r#"USERNAME eq "bjensen""#, true),
        ] {
            check(f, want);
        }
    }

    #[test]
    fn unicode_lowercasing() {
        check(r#"displayName eq "école""#, true);
        check(r#"displayName sw "éc""#, true);
        check(r#"title eq "strasse""#, true);
        // to_lowercase is a lowercase mapping, not case folding: ß stays ß.
        check(r#"title eq "straße""#, false);
    }

    #[test]
    fn case_exact_attributes() {
        check(r#"id eq "2819c223-7f76-453a-919d-413861904646""#, true);
        check(r#"id eq "2819C223-7F76-453A-919D-413861904646""#, false);
        check(r#"externalId eq "ext-1""#, false);
        check(r#"externalId sw "Ext""#, true);
        check(
            r#"meta.location eq "HTTPS://example.com/v2/Users/2819c223""#,
            false,
        );
        check(r#"meta.location co "/Users/""#, true);
        // profileUrl is a caseExact=false reference.
        check(r#"profileUrl eq "HTTPS://LOGIN.example.com/bjensen""#, true);
        check(r#"x509Certificates.value eq "MIIDQzCCA""#, true);
        check(r#"x509Certificates.value eq "miidqzcca""#, false);
        check(r#"x509Certificates.value ne "miidqzcca""#, true);
    }

    #[test]
    fn booleans() {
        check("active eq true", true);
        check("active eq TRUE", true);
        check("active eq false", false);
        check("active ne false", true);
        check("active ne true", false);
        check("emails.primary eq true", true);
        check("emails.primary eq false", false);
    }

    #[test]
    fn date_times_compare_as_instants() {
        // lastModified is 2024-06-01T10:00:00Z.
        check(r#"meta.lastModified eq "2024-06-01T10:00:00Z""#, true);
        check(
            r#"meta.lastModified eq "2024-06-01T10:00:00.000+00:00""#,
            true,
        );
        check(r#"meta.lastModified ne "2024-06-01T10:00:00Z""#, false);
        check(r#"meta.lastModified gt "2024-06-01T09:59:59Z""#, true);
        check(r#"meta.lastModified gt "2024-06-01T10:00:00Z""#, false);
        check(r#"meta.lastModified ge "2024-06-01T10:00:00Z""#, true);
        check(r#"meta.lastModified lt "2024-06-01T10:00:00.001Z""#, true);
        check(r#"meta.lastModified le "2024-06-01T09:00:00Z""#, false);
        // created is 2024-01-01T00:00:00+01:00, an hour before midnight UTC.
        check(r#"meta.created lt "2024-01-01T00:00:00Z""#, true);
        check(r#"meta.created eq "2023-12-31T23:00:00Z""#, true);
    }

    #[test]
    fn multi_valued_any_semantics() {
        check(r#"emails.value eq "babs@jensen.org""#, true);
        check(r#"emails.value eq "BABS@jensen.org""#, true);
        check(r#"emails eq "babs@jensen.org""#, true);
        check(r#"emails co "example.com""#, true);
        check(r#"emails.type eq "work""#, true);
        check(r#"emails.type eq "other""#, false);
        // ne is `not eq`: no element may be equal.
        check(r#"emails.type ne "work""#, false);
        check(r#"emails.type ne "other""#, true);
        check(r#"emails.value ew ".org""#, true);
        check(r#"emails.value gt "c""#, false);
        check(r#"emails.value gt "b""#, true);
        // Without a value path, the two conditions may hold on different elements.
        check(
            r#"emails.type eq "home" and emails.value co "example.com""#,
            true,
        );
    }

    #[test]
    fn value_paths() {
        check(r#"emails[type eq "work" and value co "example.com"]"#, true);
        check(
            r#"emails[type eq "home" and value co "example.com"]"#,
            false,
        );
        check(r#"emails[TYPE eq "HOME"]"#, true);
        check(r#"emails[primary eq true]"#, true);
        check(r#"emails[not (primary eq true)]"#, true);
        check(r#"emails[primary pr and type eq "home"]"#, false);
        check(r#"emails[type eq "home" or type eq "other"]"#, true);
        check(r#"emails[value pr]"#, true);
        check(r#"phoneNumbers[value pr]"#, false);
        check(r#"ims[value pr]"#, false);
        check(r#"ims[value ne "x"]"#, true);
        check(r#"addresses[type eq "work"]"#, false);
        check(r#"userName eq "bjensen" and emails[type eq "work"]"#, true);
        // Single-valued complex attributes behave as one element.
        check(r#"name[givenName eq "barbara"]"#, true);
        check(
            r#"name[givenName eq "barbara" and familyName eq "x"]"#,
            false,
        );
    }

    #[test]
    fn extension_attributes() {
        check(&format!(r#"{ENT}:employeeNumber eq "701984""#), true);
        check(&format!(r#"{ENT}:employeeNumber ne "701984""#), false);
        check(&format!(r#"{ENT}:manager.value eq "26118915""#), true);
        check(&format!(r#"{ENT}:manager.displayName sw "john""#), true);
        check(
            &format!(r#"{ENT}:manager[displayName eq "john smith"]"#),
            true,
        );
        check(&format!(r#"{ENT}:manager eq "26118915""#), true);
        check(&format!("{ENT}:costCenter pr"), false);
        check(&format!(r#"{ENT}:costCenter ne "x""#), true);
        check(
            &format!("{}:userName eq \"bjensen\"", crate::schema::USER_SCHEMA),
            true,
        );
        // Keys are found whatever their case.
        let mut doc = user();
        let ext = doc.as_object_mut().unwrap().remove(ENT).unwrap();
        doc[ENT.to_uppercase()] = ext;
        let user_name = doc.as_object_mut().unwrap().remove("userName").unwrap();
        doc["USERNAME"] = user_name;
        assert!(eval_on(
            "User",
            &doc,
            &format!(r#"{ENT}:employeeNumber eq "701984""#)
        ));
        assert!(eval_on("User", &doc, r#"username eq "bjensen""#));
    }

    #[test]
    fn presence_and_null() {
        for (f, want) in [
            ("userName pr", true),
            ("nickName pr", false),
            ("title pr", true),
            ("timezone pr", false),
            ("name pr", true),
            ("name.middleName pr", false),
            ("emails pr", true),
            ("emails.primary pr", true),
            ("phoneNumbers pr", false),
            ("ims pr", false),
            ("meta.created pr", true),
            ("id pr", true),
            ("timezone eq null", true),
            ("nickName eq null", true),
            ("userName eq null", false),
            ("userName ne null", true),
            ("timezone ne null", false),
            ("name eq null", false),
            ("addresses eq null", true),
        ] {
            check(f, want);
        }
    }

    #[test]
    fn missing_attributes() {
        check(r#"timezone eq "x""#, false);
        check(r#"timezone ne "x""#, true);
        check(r#"timezone co "x""#, false);
        check(r#"timezone gt "a""#, false);
        check(r#"not (timezone eq "x")"#, true);
        check(r#"addresses.type eq "work""#, false);
        check(r#"addresses.type ne "work""#, true);
        assert!(!eval_on("User", &json!({}), r#"userName eq "x""#));
        assert!(eval_on("User", &json!({}), r#"userName ne "x""#));
    }

    #[test]
    fn connectives_and_precedence() {
        check(
            r#"userName eq "bjensen" or active eq false and timezone pr"#,
            true,
        );
        check(
            r#"(userName eq "bjensen" or active eq false) and timezone pr"#,
            false,
        );
        check(r#"userName eq "x" or active eq true and title pr"#, true);
        check(r#"not (userName eq "bjensen") or active eq true"#, true);
        check(r#"not (userName eq "bjensen" or active eq true)"#, false);
        check(
            r#"userName eq "bjensen" and not (emails[type eq "other"])"#,
            true,
        );
    }

    #[test]
    fn wrong_stored_types_never_match() {
        let doc = json!({"userName": 5, "active": "true", "meta": {"lastModified": "yesterday"}});
        assert!(!eval_on("User", &doc, r#"userName eq "5""#));
        assert!(eval_on("User", &doc, r#"userName ne "5""#));
        assert!(!eval_on("User", &doc, "active eq true"));
        assert!(!eval_on(
            "User",
            &doc,
            r#"meta.lastModified lt "2030-01-01T00:00:00Z""#
        ));
    }

    #[test]
    fn groups() {
        let g = json!({
            "displayName": "Admins",
            "members": [
                {"value": "u1", "$ref": "https://x/Users/u1", "type": "User"},
                {"value": "g2", "type": "Group"}
            ]
        });
        assert!(eval_on("Group", &g, r#"displayName eq "admins""#));
        assert!(eval_on(
            "Group",
            &g,
            r#"members[value eq "g2" and type eq "group"]"#
        ));
        assert!(eval_on("Group", &g, r#"members.$ref co "/Users/""#));
        assert!(eval_on(
            "Group",
            &g,
            r#"members[$ref pr and value eq "u1"]"#
        ));
        assert!(!eval_on(
            "Group",
            &g,
            r#"members[$ref pr and value eq "g2"]"#
        ));
        assert!(eval_on("Group", &g, r#"members eq "u1""#));
    }

    #[test]
    fn validation_errors_name_the_attribute() {
        for (f, detail) in [
            ("foo pr", "unknown attribute 'foo' in filter"),
            (r#"foo eq "x""#, "unknown attribute 'foo' in filter"),
            (r#"name.foo eq "x""#, "unknown attribute 'name.foo' in filter"),
            (&format!("{ENT}:foo pr"), &format!("unknown attribute '{ENT}:foo' in filter")),
            ("urn:example:other:1.0:User:userName pr", "unknown attribute 'urn:example:other:1.0:User:userName' in filter"),
            (r#"emails[foo eq "x"]"#, "unknown sub-attribute 'foo' of 'emails' in filter"),
            (r#"emails[emails.type eq "x"]"#, "unknown sub-attribute 'emails.type' of 'emails' in filter"),
            (r#"userName[value eq "x"]"#, "a value filter needs a complex attribute, and 'userName' is not one"),
            ("active gt true", "gt is not defined for boolean attribute 'active'"),
            ("active co true", "co is not defined for boolean attribute 'active'"),
            (r#"active eq "true""#, "'active' is a boolean attribute and needs true or false, not a string"),
            ("userName eq 1", "'userName' is a string attribute and needs a string, not a number"),
            ("userName eq true", "'userName' is a string attribute and needs a string, not a boolean"),
            (r#"meta.lastModified gt "yesterday""#, "'yesterday' is not a valid dateTime for 'meta.lastModified' (expected RFC 3339, e.g. 2024-01-01T00:00:00Z)"),
            (r#"meta.lastModified co "2024""#, "co is not defined for dateTime attribute 'meta.lastModified'"),
            ("meta.lastModified eq 5", "'meta.lastModified' is a dateTime attribute and needs a dateTime string, not a number"),
            (r#"x509Certificates.value sw "M""#, "sw is not defined for binary attribute 'x509Certificates.value'"),
            (r#"x509Certificates.value gt "M""#, "gt is not defined for binary attribute 'x509Certificates.value'"),
            (r#"name eq "x""#, "cannot compare complex attribute 'name' with a value; compare one of its sub-attributes"),
            (r#"meta gt "x""#, "cannot compare complex attribute 'meta' with a value; compare one of its sub-attributes"),
            ("userName gt null", "gt is not defined for null (only eq and ne), in comparison on 'userName'"),
            ("emails gt 1", "'emails' is a string attribute and needs a string, not a number"),
            (r#"emails[primary sw "t"]"#, "sw is not defined for boolean attribute 'emails.primary'"),
            ("emails[value co null]", "co is not defined for null (only eq and ne), in comparison on 'emails.value'"),
        ] {
            assert_eq!(invalid(f), detail, "{f}");
        }
    }

    #[test]
    fn validation_accepts() {
        let reg = SchemaRegistry::standard();
        let rt = reg.resource_type("User").unwrap();
        for f in [
            r#"emails eq "x""#,
            "emails eq null",
            "name eq null",
            "name pr",
            r#"meta.created ge "2024-01-01T00:00:00.5-05:00""#,
            r#"x509Certificates.value eq "M""#,
            "x509Certificates pr",
            r#"profileUrl co "x""#,
            r#"members.$ref eq "x""#,
        ] {
            let parsed = parse_filter(f).unwrap();
            let res = validate_filter(&parsed, &reg, rt);
            if f.starts_with("members") {
                assert!(res.is_err(), "members is a Group attribute");
            } else {
                assert!(res.is_ok(), "{f}: {res:?}");
            }
        }
        let nested = Filter::ValuePath {
            path: AttrPath::simple("emails"),
            filter: Box::new(Filter::ValuePath {
                path: AttrPath::simple("type"),
                filter: Box::new(Filter::Present(AttrPath::simple("x"))),
            }),
        };
        let e = validate_filter(&nested, &reg, rt).unwrap_err();
        assert!(e.detail.contains("cannot be nested"), "{e}");
        assert!(!matches(&nested, &user(), &reg, rt));
    }

    #[test]
    fn longest_flat_chain_evaluates() {
        // The parser does not count and/or chains toward the depth limit, so the
        // evaluator must cope with a left-deep tree as long as MAX_FILTER_LEN allows.
        let term = r#"userName eq "x" or "#;
        let n = (crate::filter::parser::MAX_FILTER_LEN - 20) / term.len();
        let filter = format!("{}active eq true", term.repeat(n));
        assert!(check_len(&filter));
        check(&filter, true);
        check(&filter.replace("active eq true", "active eq false"), false);
    }

    fn check_len(f: &str) -> bool {
        f.len() <= crate::filter::parser::MAX_FILTER_LEN
    }

    fn def(name: &str, ty: AttrType, case_exact: bool) -> AttributeDef {
        AttributeDef {
            name: name.to_string(),
            ty,
            multi_valued: false,
            description: String::new(),
            required: false,
            case_exact,
            mutability: Mutability::ReadWrite,
            returned: Returned::Default,
            uniqueness: Uniqueness::None,
            canonical_values: Vec::new(),
            reference_types: Vec::new(),
            sub_attributes: Vec::new(),
        }
    }

    fn parent() -> AttributeDef {
        let mut tags = def("tags", AttrType::String, false);
        tags.multi_valued = true;
        let mut p = def("things", AttrType::Complex, false);
        p.multi_valued = true;
        p.sub_attributes = vec![
            def("count", AttrType::Integer, false),
            def("score", AttrType::Decimal, false),
            def("code", AttrType::String, true),
            def("label", AttrType::String, false),
            def("when", AttrType::DateTime, false),
            def("flag", AttrType::Boolean, false),
            def("blob", AttrType::Binary, true),
            tags,
        ];
        p
    }

    fn elem_match(filter: &str, element: &Value) -> bool {
        let f = parse_filter(filter).unwrap_or_else(|e| panic!("{filter}: {e}"));
        let p = parent();
        validate_element_filter(&f, &p, "things").unwrap_or_else(|e| panic!("{filter}: {e}"));
        let got = matches_element(&f, element, &p);
        assert_eq!(
            matches_element(&Filter::Not(Box::new(f)), element, &p),
            !got
        );
        got
    }

    #[test]
    fn numbers() {
        let e = json!({"count": 2, "score": 2.5, "big": 1});
        for (f, want) in [
            ("count eq 2", true),
            ("count eq 2.0", true),
            ("count eq 2.5", false),
            ("count ne 2", false),
            ("count ne 3", true),
            ("count gt 1", true),
            ("count gt 2", false),
            ("count ge 2", true),
            ("count lt 2.1", true),
            ("count lt -5", false),
            ("count le 2e0", true),
            ("count gt -9223372036854775808", true),
            ("count lt 18446744073709551615", true),
            ("score eq 2.5", true),
            ("score eq 25e-1", true),
            ("score gt 2", true),
            ("score lt 3", true),
            ("score le 2.4", false),
            ("score ge 2.5", true),
            ("COUNT eq 2", true),
        ] {
            assert_eq!(elem_match(f, &e), want, "{f}");
        }
        let big = json!({"count": u64::MAX, "score": -1});
        assert!(elem_match("count gt -1", &big));
        assert!(elem_match("count gt 9223372036854775807", &big));
        assert!(elem_match("score lt 18446744073709551615", &big));
        assert!(elem_match("score eq -1.0", &big));
        assert_eq!(
            compare_numbers(&Number::from(u64::MAX), &Number::from(-1)),
            Some(Ordering::Greater)
        );
        assert_eq!(
            compare_numbers(&Number::from(-1), &Number::from(u64::MAX)),
            Some(Ordering::Less)
        );
    }

    #[test]
    fn element_strings_dates_booleans() {
        let e = json!({
            "code": "AbC", "label": "Größe", "when": "2024-01-01T00:00:00+01:00",
            "flag": false, "blob": "QUJD", "tags": ["Red", "GREEN"]
        });
        for (f, want) in [
            (r#"code eq "AbC""#, true),
            (r#"code eq "abc""#, false),
            (r#"code co "bC""#, true),
            (r#"code gt "AbB""#, true),
            (r#"label eq "GRÖSSE""#, false),
            (r#"label eq "GRÖßE""#, true),
            (r#"label co "RÖ""#, true),
            (r#"when lt "2024-01-01T00:00:00Z""#, true),
            (r#"when eq "2023-12-31T23:00:00Z""#, true),
            ("flag eq false", true),
            ("flag ne false", false),
            ("flag pr", true),
            (r#"blob eq "QUJD""#, true),
            (r#"blob eq "qujd""#, false),
            (r#"tags eq "green""#, true),
            (r#"tags ne "green""#, false),
            (r#"tags sw "r""#, true),
            (r#"tags eq "blue""#, false),
            (r#"code eq "AbC" and not (flag eq true)"#, true),
            ("count eq 1", false),
            ("count ne 1", true),
            ("count pr", false),
            ("count eq null", true),
        ] {
            assert_eq!(elem_match(f, &e), want, "{f}");
        }
    }

    #[test]
    fn element_unknown_or_qualified_paths_are_false() {
        let e = json!({"code": "x", "other": "x"});
        let p = parent();
        for f in [
            r#"other eq "x""#,
            r#"other ne "y""#,
            "other pr",
            r#"things.code eq "x""#,
            r#"urn:a:b:code eq "x""#,
        ] {
            let parsed = parse_filter(f).unwrap();
            assert!(!matches_element(&parsed, &e, &p), "{f}");
            assert!(
                validate_element_filter(&parsed, &p, "things").is_err(),
                "{f}"
            );
        }
        // Non-object elements hold no sub-attributes.
        assert!(!matches_element(
            &parse_filter(r#"code eq "x""#).unwrap(),
            &json!("x"),
            &p
        ));
    }

    #[test]
    fn literal_checks_for_number_types() {
        let int = def("n", AttrType::Integer, false);
        assert!(
            check_comparison(&int, CompareOp::Ge, &Literal::Number(Number::from(1)), "n").is_ok()
        );
        assert_eq!(
            check_comparison(&int, CompareOp::Co, &Literal::Number(Number::from(1)), "n")
                .unwrap_err()
                .detail,
            "co is not defined for integer attribute 'n'"
        );
        assert_eq!(
            check_comparison(&int, CompareOp::Eq, &Literal::String("1".into()), "n")
                .unwrap_err()
                .detail,
            "'n' is an integer attribute and needs a number, not a string"
        );
        let dec = def("d", AttrType::Decimal, false);
        assert!(
            check_comparison(&dec, CompareOp::Lt, &Literal::Number(Number::from(-3)), "d").is_ok()
        );
        assert!(check_comparison(&dec, CompareOp::Eq, &Literal::Bool(true), "d").is_err());
    }
}
