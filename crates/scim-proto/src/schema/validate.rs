//! Validation and normalisation of client input by attribute characteristics.
//!
//! The stored (canonical) document: keys in the schema's case; core and common
//! attributes at the top level; extension attributes in an object under the
//! extension URN; `schemas` = core URN followed by the URNs of the extensions
//! present. Null values, empty arrays and empty complex values are absent
//! (RFC 7643 §2.5 makes them equivalent), so they are never stored.
use super::model::*;
use super::SchemaRegistry;
use crate::error::{ScimError, ScimResult};
use serde_json::{Map, Value};

/// Normalise and check one attribute value against its definition: canonical
/// sub-attribute names, type checks (Entra-style "True"/"False" strings accepted for
/// booleans), arrays for multiValued. Errors: 400 invalidValue / invalidSyntax.
///
/// `Value::Null` in the result means "absent": the input was null, an empty
/// array, or a complex value with nothing but nulls in it.
pub fn coerce_value(def: &AttributeDef, value: &Value) -> ScimResult<Value> {
    coerce_at(def, value, &def.name, false)
}

/// `drop_ro`: leave out readOnly sub-attributes without checking them, as client
/// input for them SHALL be ignored (RFC 7643 §2.2).
fn coerce_at(def: &AttributeDef, value: &Value, path: &str, drop_ro: bool) -> ScimResult<Value> {
    if value.is_null() {
        return Ok(Value::Null);
    }
    if !def.multi_valued {
        if value.is_array() {
            return Err(ScimError::invalid_value(format!(
                "attribute '{path}' is single-valued and must not be an array"
            )));
        }
        return coerce_single(def, value, path, drop_ro);
    }
    // Wrapping a lone value into an array would hide client bugs that differ
    // between servers; RFC 7643 §2.4 says multi-valued attributes are arrays.
    let Value::Array(items) = value else {
        return Err(ScimError::invalid_value(format!(
            "attribute '{path}' is multi-valued and must be an array"
        )));
    };
    let mut out = Vec::with_capacity(items.len());
    for item in items {
        if item.is_array() {
            return Err(ScimError::invalid_value(format!(
                "values of '{path}' must not be arrays"
            )));
        }
        let v = coerce_single(def, item, path, drop_ro)?;
        if !v.is_null() {
            out.push(v);
        }
    }
    Ok(if out.is_empty() {
        Value::Null
    } else {
        Value::Array(out)
    })
}

fn type_error(path: &str, what: &str) -> ScimError {
    ScimError::invalid_value(format!("attribute '{path}' must be {what}"))
}

fn coerce_single(
    def: &AttributeDef,
    value: &Value,
    path: &str,
    drop_ro: bool,
) -> ScimResult<Value> {
    if value.is_null() {
        return Ok(Value::Null);
    }
    match def.ty {
        AttrType::Complex => {
            let Value::Object(obj) = value else {
                return Err(type_error(path, "an object"));
            };
            if let Some(k) = obj.keys().find(|k| def.sub(k).is_none()) {
                return Err(ScimError::invalid_syntax(format!(
                    "unknown attribute '{path}.{k}'"
                )));
            }
            let mut out = Map::new();
            for sub in &def.sub_attributes {
                if drop_ro && sub.mutability == Mutability::ReadOnly {
                    continue;
                }
                // A client repeating a name in another case: the last one wins,
                // as it would for a repeated key.
                let raw = obj
                    .iter()
                    .rev()
                    .find(|(k, _)| k.eq_ignore_ascii_case(&sub.name))
                    .map(|(_, v)| v);
                if let Some(raw) = raw {
                    let v = coerce_at(sub, raw, &format!("{path}.{}", sub.name), drop_ro)?;
                    if !v.is_null() {
                        out.insert(sub.name.clone(), v);
                    }
                }
            }
            Ok(if out.is_empty() {
                Value::Null
            } else {
                Value::Object(out)
            })
        }
        AttrType::String | AttrType::Reference | AttrType::Binary => match value {
            Value::String(_) => Ok(value.clone()),
            _ => Err(type_error(path, "a string")),
        },
        AttrType::Boolean => match value {
            Value::Bool(_) => Ok(value.clone()),
            // Entra ID sends "True"/"False" strings.
            Value::String(s) if s.eq_ignore_ascii_case("true") => Ok(Value::Bool(true)),
            Value::String(s) if s.eq_ignore_ascii_case("false") => Ok(Value::Bool(false)),
            _ => Err(type_error(path, "a boolean")),
        },
        AttrType::Integer => match value {
            Value::Number(n) if n.is_i64() || n.is_u64() => Ok(value.clone()),
            // 3.0 is the integer 3 to every JSON producer that has only doubles.
            Value::Number(n) => match n.as_f64() {
                Some(f) if f.fract() == 0.0 && f.abs() < 9.0e15 => Ok(Value::from(f as i64)),
                _ => Err(type_error(path, "an integer")),
            },
            _ => Err(type_error(path, "an integer")),
        },
        AttrType::Decimal => match value {
            Value::Number(_) => Ok(value.clone()),
            _ => Err(type_error(path, "a number")),
        },
        // The client's text is kept (it is what it will compare against); only
        // its form is checked.
        AttrType::DateTime => match value {
            Value::String(s) if chrono::DateTime::parse_from_rfc3339(s).is_ok() => {
                Ok(value.clone())
            }
            _ => Err(type_error(path, "an RFC 3339 dateTime string")),
        },
    }
}

/// The schemas a resource type's documents are built from, resolved once.
struct Ctx<'a> {
    rt: &'a ResourceTypeDef,
    common: &'a [AttributeDef],
    core: &'a Schema,
    exts: Vec<&'a Schema>,
}

impl<'a> Ctx<'a> {
    fn new(registry: &'a SchemaRegistry, rt: &'a ResourceTypeDef) -> ScimResult<Self> {
        let missing = |urn: &str| ScimError::internal(format!("schema '{urn}' is not registered"));
        let core = registry
            .schema(&rt.schema)
            .ok_or_else(|| missing(&rt.schema))?;
        let exts = rt
            .schema_extensions
            .iter()
            .map(|e| registry.schema(&e.schema).ok_or_else(|| missing(&e.schema)))
            .collect::<ScimResult<Vec<_>>>()?;
        Ok(Ctx {
            rt,
            common: registry.common_attributes(),
            core,
            exts,
        })
    }

    /// A top-level (non-extension) attribute: core schema first, as `resolve` does.
    fn top(&self, name: &str) -> Option<&'a AttributeDef> {
        self.core.attr(name).or_else(|| {
            self.common
                .iter()
                .find(|a| a.name.eq_ignore_ascii_case(name))
        })
    }

    fn ext_index(&self, urn: &str) -> Option<usize> {
        self.exts
            .iter()
            .position(|s| s.id.eq_ignore_ascii_case(urn))
    }

    /// Top-level definitions in output order: id, externalId, core attributes,
    /// and meta last, where clients expect it.
    fn top_defs(&self) -> impl Iterator<Item = &'a AttributeDef> + '_ {
        let is_meta = |a: &&AttributeDef| a.name == "meta";
        let common = self.common;
        common
            .iter()
            .filter(move |a| !is_meta(a))
            .chain(self.core.attributes.iter())
            .chain(common.iter().filter(is_meta))
    }
}

/// `rest` when `key` is `urn:rest` (URN compared case-insensitively).
fn strip_urn<'k>(key: &'k str, urn: &str) -> Option<&'k str> {
    let head = key.get(..urn.len())?;
    let rest = key.get(urn.len()..)?.strip_prefix(':')?;
    (head.eq_ignore_ascii_case(urn) && !rest.is_empty()).then_some(rest)
}

/// A client body sorted into canonical names, values still raw.
struct Parsed<'v> {
    top: Map<String, Value>,
    ext: Vec<Map<String, Value>>,
    schemas: Option<&'v Value>,
    id: Option<&'v Value>,
}

fn parse<'v>(ctx: &Ctx<'_>, input: &'v Value) -> ScimResult<Parsed<'v>> {
    let Value::Object(obj) = input else {
        return Err(ScimError::invalid_syntax(
            "the resource must be a JSON object",
        ));
    };
    let mut p = Parsed {
        top: Map::new(),
        ext: vec![Map::new(); ctx.exts.len()],
        schemas: None,
        id: None,
    };
    let unknown = |k: &str| ScimError::invalid_syntax(format!("unknown attribute '{k}'"));
    for (k, v) in obj {
        if k.eq_ignore_ascii_case("schemas") {
            p.schemas = Some(v);
        } else if let Some(def) = ctx.top(k) {
            if def.name == "id" {
                p.id = Some(v);
            }
            p.top.insert(def.name.clone(), v.clone());
        } else if let Some(i) = ctx.ext_index(k) {
            let ext = ctx.exts[i];
            match v {
                Value::Null => {}
                Value::Object(inner) => {
                    for (ek, ev) in inner {
                        let def = ext
                            .attr(ek)
                            .ok_or_else(|| unknown(&format!("{}:{ek}", ext.id)))?;
                        p.ext[i].insert(def.name.clone(), ev.clone());
                    }
                }
                _ => {
                    return Err(ScimError::invalid_value(format!(
                        "extension '{}' must be an object",
                        ext.id
                    )))
                }
            }
        } else if let Some(rest) = strip_urn(k, &ctx.core.id) {
            let def = ctx.top(rest).ok_or_else(|| unknown(k))?;
            p.top.insert(def.name.clone(), v.clone());
        } else {
            // Fully qualified extension attribute at the top level
            // ("urn:…:enterprise:2.0:User:employeeNumber"): file it under its URN.
            let (i, def) = ctx
                .exts
                .iter()
                .enumerate()
                .find_map(|(i, s)| strip_urn(k, &s.id).and_then(|r| s.attr(r)).map(|d| (i, d)))
                .ok_or_else(|| unknown(k))?;
            p.ext[i].insert(def.name.clone(), v.clone());
        }
    }
    Ok(p)
}

/// RFC 7643 §3: `schemas` lists the core schema and only extensions of this type.
fn check_declared_schemas(ctx: &Ctx<'_>, schemas: Option<&Value>) -> ScimResult<()> {
    let core = &ctx.core.id;
    let Some(Value::Array(list)) = schemas else {
        return Err(ScimError::invalid_value(format!(
            "schemas must be an array including '{core}'"
        )));
    };
    let mut has_core = false;
    for s in list {
        let Some(s) = s.as_str() else {
            return Err(ScimError::invalid_value(
                "schemas must contain only strings",
            ));
        };
        if s.eq_ignore_ascii_case(core) {
            has_core = true;
        } else if ctx.ext_index(s).is_none() {
            return Err(ScimError::invalid_value(format!(
                "schema '{s}' is not valid for resource type '{}'",
                ctx.rt.name
            )));
        }
    }
    if has_core {
        Ok(())
    } else {
        Err(ScimError::invalid_value(format!(
            "schemas must include '{core}'"
        )))
    }
}

/// Where readOnly values come from.
#[derive(Clone, Copy)]
enum ReadOnly<'e> {
    /// Client input: the RFC says readOnly values SHALL be ignored.
    Drop,
    /// A server-side document (after PATCH): readOnly values are ours.
    Keep,
    /// PUT: top-level readOnly values come from the stored document, and
    /// immutable values must not change.
    From(&'e Map<String, Value>),
}

fn same_value(def: &AttributeDef, a: &Value, b: &Value) -> bool {
    match (a, b) {
        (Value::String(x), Value::String(y)) if !def.case_exact => {
            x.to_lowercase() == y.to_lowercase()
        }
        _ => a == b,
    }
}

fn immutable_error(path: &str) -> ScimError {
    ScimError::mutability(format!(
        "attribute '{path}' is immutable and cannot be changed"
    ))
}

/// The value to store for one attribute, or Null for none.
fn attribute_value(
    def: &AttributeDef,
    raw: Option<&Value>,
    path: &str,
    ro: ReadOnly<'_>,
    existing: Option<&Value>,
) -> ScimResult<Value> {
    let drop_ro = match ro {
        ReadOnly::Keep => false,
        ReadOnly::Drop => {
            if def.mutability == Mutability::ReadOnly {
                return Ok(Value::Null);
            }
            true
        }
        ReadOnly::From(_) => {
            if def.mutability == Mutability::ReadOnly {
                return Ok(existing.cloned().unwrap_or(Value::Null));
            }
            true
        }
    };
    let value = match raw {
        Some(raw) => coerce_at(def, raw, path, drop_ro)?,
        None => Value::Null,
    };
    if !matches!(ro, ReadOnly::From(_)) {
        return Ok(value);
    }
    let Some(old) = existing.filter(|v| !v.is_null()) else {
        return Ok(value);
    };
    if def.mutability == Mutability::Immutable {
        // Omitting an immutable value in a PUT keeps it: clearing it would be
        // a change as much as overwriting it.
        if value.is_null() {
            return Ok(old.clone());
        }
        if !same_value(def, old, &value) {
            return Err(immutable_error(path));
        }
    }
    // Immutable sub-attributes of a single complex value; for multi-valued ones a
    // PUT replaces the set, and elements have no identity to compare by.
    if def.ty == AttrType::Complex && !def.multi_valued {
        if let (Value::Object(old), Value::Object(new)) = (old, &value) {
            for sub in &def.sub_attributes {
                if sub.mutability != Mutability::Immutable {
                    continue;
                }
                if let (Some(o), Some(n)) = (old.get(&sub.name), new.get(&sub.name)) {
                    if !same_value(sub, o, n) {
                        return Err(immutable_error(&format!("{path}.{}", sub.name)));
                    }
                }
            }
        }
    }
    Ok(value)
}

fn build(ctx: &Ctx<'_>, p: &Parsed<'_>, ro: ReadOnly<'_>) -> ScimResult<Map<String, Value>> {
    let existing_top = match ro {
        ReadOnly::From(e) => Some(e),
        _ => None,
    };
    let mut out = Map::new();
    // Reserve first position: `schemas` is filled in once extensions are known.
    out.insert("schemas".into(), Value::Null);
    let mut exts = Vec::new();
    for (i, ext) in ctx.exts.iter().enumerate() {
        let existing = existing_top
            .and_then(|e| e.get(&ext.id))
            .and_then(Value::as_object);
        let mut obj = Map::new();
        for def in &ext.attributes {
            let path = format!("{}:{}", ext.id, def.name);
            let old = existing.and_then(|e| e.get(&def.name));
            let v = attribute_value(def, p.ext[i].get(&def.name), &path, ro, old)?;
            if !v.is_null() {
                obj.insert(def.name.clone(), v);
            }
        }
        exts.push(obj);
    }
    for def in ctx.top_defs() {
        if def.name == "meta" {
            for (ext, obj) in ctx.exts.iter().zip(exts.iter_mut()) {
                if !obj.is_empty() {
                    out.insert(ext.id.clone(), Value::Object(std::mem::take(obj)));
                }
            }
        }
        let old = existing_top.and_then(|e| e.get(&def.name));
        let v = attribute_value(def, p.top.get(&def.name), &def.name, ro, old)?;
        if !v.is_null() {
            out.insert(def.name.clone(), v);
        }
    }
    let mut schemas = vec![Value::String(ctx.core.id.clone())];
    schemas.extend(
        ctx.exts
            .iter()
            .filter(|e| out.contains_key(&e.id))
            .map(|e| Value::String(e.id.clone())),
    );
    out.insert("schemas".into(), Value::Array(schemas));
    Ok(out)
}

fn is_missing(v: Option<&Value>) -> bool {
    match v {
        None | Some(Value::Null) => true,
        // §4.1.1: "Each User MUST include a non-empty userName value".
        Some(Value::String(s)) => s.trim().is_empty(),
        _ => false,
    }
}

fn required_error(path: &str) -> ScimError {
    ScimError::invalid_value(format!("attribute '{path}' is required"))
}

/// Required attributes present, and required sub-attributes in every complex
/// value that is present.
fn check_attrs(defs: &[AttributeDef], obj: &Map<String, Value>, prefix: &str) -> ScimResult<()> {
    for def in defs {
        let path = format!("{prefix}{}", def.name);
        let v = obj.get(&def.name);
        if def.required && is_missing(v) {
            return Err(required_error(&path));
        }
        let Some(v) = v else { continue };
        let elems: Vec<&Value> = match v {
            Value::Array(items) => items.iter().collect(),
            other => vec![other],
        };
        let objs = elems.iter().filter_map(|e| e.as_object());
        for e in objs.clone() {
            if let Some(sub) = def
                .sub_attributes
                .iter()
                .find(|s| s.required && is_missing(e.get(&s.name)))
            {
                return Err(required_error(&format!("{path}.{}", sub.name)));
            }
        }
        // RFC 7643 §2.4: primary true MUST appear no more than once.
        if def.multi_valued && def.sub("primary").is_some() {
            let primaries = objs
                .filter(|e| e.get("primary") == Some(&Value::Bool(true)))
                .count();
            if primaries > 1 {
                return Err(ScimError::invalid_value(format!(
                    "at most one value of '{path}' may have primary set to true"
                )));
            }
        }
    }
    Ok(())
}

fn check_document(ctx: &Ctx<'_>, out: &Map<String, Value>) -> ScimResult<()> {
    check_attrs(ctx.common, out, "")?;
    check_attrs(&ctx.core.attributes, out, "")?;
    for (ext, r) in ctx.exts.iter().zip(&ctx.rt.schema_extensions) {
        match out.get(&ext.id).and_then(Value::as_object) {
            Some(obj) => check_attrs(&ext.attributes, obj, &format!("{}:", ext.id))?,
            None if r.required => {
                return Err(ScimError::invalid_value(format!(
                    "extension '{}' is required",
                    ext.id
                )))
            }
            None => {}
        }
    }
    Ok(())
}

/// Turn a client's POST body into the canonical document to store: keys in schema
/// case, extension attributes under their URN key, readOnly attributes dropped,
/// required attributes present, `schemas` checked, at most one primary=true per
/// multi-valued attribute. `password` (writeOnly) is kept for the caller to hash.
///
/// Extension data whose URN the client left out of `schemas` is accepted (many
/// clients forget it); the output `schemas` lists exactly the extensions present.
pub fn validate_create(
    registry: &SchemaRegistry,
    rt: &ResourceTypeDef,
    input: &Value,
) -> ScimResult<Value> {
    let ctx = Ctx::new(registry, rt)?;
    let p = parse(&ctx, input)?;
    check_declared_schemas(&ctx, p.schemas)?;
    let out = build(&ctx, &p, ReadOnly::Drop)?;
    check_document(&ctx, &out)?;
    Ok(Value::Object(out))
}

/// PUT (RFC 7644 §3.5.1): validate `input` like a create, then keep readOnly values
/// of `existing`, reject changes of immutable values (400 mutability) and an `id`
/// that differs from `existing`'s (400 invalidValue).
///
/// Top-level readOnly attributes (id, meta, groups) come from `existing`;
/// readOnly sub-attributes of writable attributes (members.display,
/// manager.displayName) are dropped for the server to recompute. An immutable
/// attribute the input omits keeps its stored value.
pub fn validate_replace(
    registry: &SchemaRegistry,
    rt: &ResourceTypeDef,
    existing: &Value,
    input: &Value,
) -> ScimResult<Value> {
    let ctx = Ctx::new(registry, rt)?;
    let Value::Object(stored) = existing else {
        return Err(ScimError::internal("stored resource is not an object"));
    };
    let p = parse(&ctx, input)?;
    check_declared_schemas(&ctx, p.schemas)?;
    if let Some(id) = p.id.filter(|v| !v.is_null()) {
        if stored.get("id") != Some(id) {
            return Err(ScimError::invalid_value(format!(
                "id {id} does not match the resource's id"
            )));
        }
    }
    let out = build(&ctx, &p, ReadOnly::From(stored))?;
    check_document(&ctx, &out)?;
    Ok(Value::Object(out))
}

/// Check a whole canonical document after PATCH: types, required attributes
/// present, at most one primary=true (400 invalidValue otherwise: the PATCH
/// engine clears other primaries when it sets one, so several here means the
/// request itself set several). Nulls and empty values are dropped and
/// `schemas` is rebuilt from the extensions present. readOnly values are kept.
pub fn validate_document(
    registry: &SchemaRegistry,
    rt: &ResourceTypeDef,
    doc: &mut Value,
) -> ScimResult<()> {
    let ctx = Ctx::new(registry, rt)?;
    let p = parse(&ctx, doc)?;
    let out = build(&ctx, &p, ReadOnly::Keep)?;
    check_document(&ctx, &out)?;
    *doc = Value::Object(out);
    Ok(())
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use crate::error::ScimType;
    use crate::schema::{ENTERPRISE_USER_SCHEMA as ENT, GROUP_SCHEMA, USER_SCHEMA};
    use serde_json::json;

    fn reg() -> SchemaRegistry {
        SchemaRegistry::standard()
    }

    fn rt(r: &SchemaRegistry, name: &str) -> ResourceTypeDef {
        r.resource_type(name).unwrap().clone()
    }

    fn user_def(name: &str) -> AttributeDef {
        reg()
            .schema(USER_SCHEMA)
            .unwrap()
            .attr(name)
            .unwrap()
            .clone()
    }

    fn create_user(input: Value) -> ScimResult<Value> {
        let r = reg();
        validate_create(&r, &rt(&r, "User"), &input)
    }

    fn err_type(r: ScimResult<Value>) -> ScimType {
        r.unwrap_err().scim_type.unwrap()
    }

    #[test]
    fn coerce_strings_and_references() {
        assert_eq!(
            coerce_value(&user_def("title"), &json!("x")).unwrap(),
            json!("x")
        );
        let e = coerce_value(&user_def("title"), &json!(5)).unwrap_err();
        assert_eq!(e.scim_type, Some(ScimType::InvalidValue));
        assert!(e.detail.contains("'title'"));
        assert!(coerce_value(&user_def("profileUrl"), &json!(true)).is_err());
        assert!(coerce_value(&user_def("title"), &json!(["x"])).is_err());
        assert_eq!(
            coerce_value(&user_def("title"), &Value::Null).unwrap(),
            Value::Null
        );
    }

    #[test]
    fn coerce_booleans_accepts_entra_strings() {
        let active = user_def("active");
        for (i, o) in [
            (json!(true), true),
            (json!("True"), true),
            (json!("FALSE"), false),
            (json!("false"), false),
        ] {
            assert_eq!(coerce_value(&active, &i).unwrap(), json!(o));
        }
        assert!(coerce_value(&active, &json!("yes")).is_err());
        assert!(coerce_value(&active, &json!(1)).is_err());
    }

    #[test]
    fn coerce_numbers_and_dates() {
        let mut int = user_def("title");
        int.ty = AttrType::Integer;
        assert_eq!(coerce_value(&int, &json!(3)).unwrap(), json!(3));
        assert_eq!(coerce_value(&int, &json!(3.0)).unwrap(), json!(3));
        assert!(coerce_value(&int, &json!(3.5)).is_err());
        assert!(coerce_value(&int, &json!("3")).is_err());
        let mut dec = int.clone();
        dec.ty = AttrType::Decimal;
        assert_eq!(coerce_value(&dec, &json!(3.5)).unwrap(), json!(3.5));
        assert!(coerce_value(&dec, &json!("3.5")).is_err());
        let mut dt = int;
        dt.ty = AttrType::DateTime;
        let s = json!("2011-08-01T21:32:44.882Z");
        assert_eq!(coerce_value(&dt, &s).unwrap(), s);
        assert!(coerce_value(&dt, &json!("2011-08-01")).is_err());
        assert!(coerce_value(&dt, &json!(0)).is_err());
    }

    #[test]
    fn coerce_complex_and_multi_valued() {
        let emails = user_def("emails");
        let v = coerce_value(
            &emails,
            &json!([{"VALUE": "a@x", "Type": "work", "primary": "True"}, null]),
        )
        .unwrap();
        assert_eq!(
            v,
            json!([{"value": "a@x", "type": "work", "primary": true}])
        );
        let e = coerce_value(&emails, &json!([{"value": "a", "foo": 1}])).unwrap_err();
        assert_eq!(e.scim_type, Some(ScimType::InvalidSyntax));
        assert!(e.detail.contains("'emails.foo'"), "{}", e.detail);
        let e = coerce_value(&emails, &json!({"value": "a"})).unwrap_err();
        assert_eq!(e.scim_type, Some(ScimType::InvalidValue));
        assert!(coerce_value(&emails, &json!(["a@x"])).is_err());
        assert_eq!(coerce_value(&emails, &json!([])).unwrap(), Value::Null);
        let e = coerce_value(&user_def("name"), &json!({"givenName": 1})).unwrap_err();
        assert!(e.detail.contains("'name.givenName'"));
        assert!(coerce_value(&user_def("name"), &json!("Bob")).is_err());
    }

    #[test]
    fn create_canonicalises_keys_and_drops_read_only() {
        let out = create_user(json!({
            "Schemas": [USER_SCHEMA],
            "USERNAME": "bjensen",
            "id": "client-id",
            "meta": {"created": "2011-08-01T21:32:44.882Z"},
            "groups": [{"value": "g1"}],
            "Name": {"givenname": "Barbara"},
            "externalid": "e1",
            "active": "True",
            "nickName": null,
            "emails": [],
            "password": "secret",
        }))
        .unwrap();
        assert_eq!(
            out,
            json!({
                "schemas": [USER_SCHEMA],
                "externalId": "e1",
                "userName": "bjensen",
                "name": {"givenName": "Barbara"},
                "active": true,
                "password": "secret",
            })
        );
        // Key order is the schema's.
        let keys: Vec<&String> = out.as_object().unwrap().keys().collect();
        assert_eq!(keys[0], "schemas");
    }

    #[test]
    fn create_unknown_attribute() {
        let e =
            create_user(json!({"schemas": [USER_SCHEMA], "userName": "a", "foo": 1})).unwrap_err();
        assert_eq!(e.scim_type, Some(ScimType::InvalidSyntax));
        assert!(e.detail.contains("'foo'"));
        let e =
            create_user(json!({"schemas": [USER_SCHEMA, ENT], "userName": "a", ENT: {"bar": 1}}))
                .unwrap_err();
        assert!(e.detail.contains("bar"));
    }

    #[test]
    fn create_extension_both_forms() {
        let qualified = format!("{}:employeeNumber", ENT.to_uppercase());
        let out = create_user(json!({
            "schemas": [USER_SCHEMA],
            "userName": "a",
            qualified: "42",
            "urn:ietf:params:scim:schemas:extension:enterprise:2.0:user": {
                "Department": "R&D",
                "manager": {"value": "m1", "displayName": "Boss"}
            },
            "meta": {"location": "x"},
        }))
        .unwrap();
        assert_eq!(
            out,
            json!({
                "schemas": [USER_SCHEMA, ENT],
                "userName": "a",
                ENT: {"employeeNumber": "42", "department": "R&D", "manager": {"value": "m1"}},
            })
        );
        // A core-qualified top-level name is the plain attribute.
        let out = create_user(json!({
            "schemas": [USER_SCHEMA],
            format!("{USER_SCHEMA}:userName"): "b",
        }))
        .unwrap();
        assert_eq!(out["userName"], "b");
        // An extension listed but empty is not kept in schemas.
        let out =
            create_user(json!({"schemas": [USER_SCHEMA, ENT], "userName": "c", ENT: {}})).unwrap();
        assert_eq!(out, json!({"schemas": [USER_SCHEMA], "userName": "c"}));
        assert_eq!(
            err_type(create_user(
                json!({"schemas": [USER_SCHEMA], "userName": "c", ENT: "x"})
            )),
            ScimType::InvalidValue
        );
    }

    #[test]
    fn create_schemas_rules() {
        for bad in [
            json!({"userName": "a"}),
            json!({"schemas": [], "userName": "a"}),
            json!({"schemas": USER_SCHEMA, "userName": "a"}),
            json!({"schemas": [ENT], "userName": "a"}),
            json!({"schemas": [USER_SCHEMA, GROUP_SCHEMA], "userName": "a"}),
            json!({"schemas": [USER_SCHEMA, 1], "userName": "a"}),
        ] {
            assert_eq!(
                err_type(create_user(bad.clone())),
                ScimType::InvalidValue,
                "{bad}"
            );
        }
        let ok = create_user(json!({"schemas": [USER_SCHEMA.to_lowercase()], "userName": "a"}));
        assert_eq!(ok.unwrap()["schemas"], json!([USER_SCHEMA]));
        assert_eq!(err_type(create_user(json!([1]))), ScimType::InvalidSyntax);
    }

    #[test]
    fn create_required() {
        for input in [
            json!({"schemas": [USER_SCHEMA]}),
            json!({"schemas": [USER_SCHEMA], "userName": null}),
            json!({"schemas": [USER_SCHEMA], "userName": " "}),
        ] {
            let e = create_user(input).unwrap_err();
            assert_eq!(e.scim_type, Some(ScimType::InvalidValue));
            assert_eq!(e.detail, "attribute 'userName' is required");
        }
        let r = reg();
        let g = rt(&r, "Group");
        let e = validate_create(&r, &g, &json!({"schemas": [GROUP_SCHEMA]})).unwrap_err();
        assert!(e.detail.contains("'displayName'"));
        let out = validate_create(
            &r,
            &g,
            &json!({"schemas": [GROUP_SCHEMA], "displayName": "G",
                    "members": [{"value": "u1", "display": "U", "type": "User"}]}),
        )
        .unwrap();
        assert_eq!(out["members"], json!([{"value": "u1", "type": "User"}]));
    }

    #[test]
    fn create_single_primary() {
        let e = create_user(json!({
            "schemas": [USER_SCHEMA], "userName": "a",
            "emails": [{"value": "a", "primary": true}, {"value": "b", "primary": "true"}]
        }))
        .unwrap_err();
        assert_eq!(e.scim_type, Some(ScimType::InvalidValue));
        assert!(e.detail.contains("'emails'"));
        assert!(create_user(json!({
            "schemas": [USER_SCHEMA], "userName": "a",
            "emails": [{"value": "a", "primary": true}, {"value": "b", "primary": false}]
        }))
        .is_ok());
    }

    #[test]
    fn read_only_input_is_ignored_unchecked() {
        let out = create_user(json!({
            "schemas": [USER_SCHEMA], "userName": "a",
            "id": 5, "meta": "junk", "groups": "junk",
            ENT: {"manager": {"value": "m", "displayName": 7}},
        }))
        .unwrap();
        assert_eq!(
            out,
            json!({"schemas": [USER_SCHEMA, ENT], "userName": "a", ENT: {"manager": {"value": "m"}}})
        );
        // Unknown names are still reported inside readOnly-bearing values.
        assert!(
            create_user(json!({"schemas": [USER_SCHEMA], "userName": "a",
                                   ENT: {"manager": {"bogus": 1}}}))
            .is_err()
        );
    }

    fn stored_group() -> Value {
        json!({
            "schemas": [GROUP_SCHEMA],
            "id": "g1",
            "displayName": "Old",
            "members": [{"value": "u1", "type": "User"}],
            "meta": {"resourceType": "Group", "version": "W/\"1\""},
        })
    }

    #[test]
    fn replace_keeps_read_only_and_checks_id() {
        let r = reg();
        let g = rt(&r, "Group");
        let out = validate_replace(
            &r,
            &g,
            &stored_group(),
            &json!({"schemas": [GROUP_SCHEMA], "id": "g1", "displayName": "New",
                    "meta": {"version": "bogus"}}),
        )
        .unwrap();
        assert_eq!(
            out,
            json!({
                "schemas": [GROUP_SCHEMA],
                "id": "g1",
                "displayName": "New",
                "meta": {"resourceType": "Group", "version": "W/\"1\""},
            })
        );
        let e = validate_replace(
            &r,
            &g,
            &stored_group(),
            &json!({"schemas": [GROUP_SCHEMA], "id": "other", "displayName": "New"}),
        )
        .unwrap_err();
        assert_eq!(e.scim_type, Some(ScimType::InvalidValue));
        let e = validate_replace(&r, &g, &stored_group(), &json!({"schemas": [GROUP_SCHEMA]}))
            .unwrap_err();
        assert!(e.detail.contains("displayName"));
    }

    #[test]
    fn replace_immutable() {
        // No standard top-level attribute is immutable; use a registry-shaped
        // definition to exercise the rule.
        let mut def = user_def("title");
        def.mutability = Mutability::Immutable;
        let old = json!("A");
        let ro = Map::new();
        let from = ReadOnly::From(&ro);
        let same = attribute_value(&def, Some(&json!("a")), "title", from, Some(&old));
        assert_eq!(same.unwrap(), json!("a"));
        let kept = attribute_value(&def, None, "title", from, Some(&old));
        assert_eq!(kept.unwrap(), json!("A"));
        let e = attribute_value(&def, Some(&json!("B")), "title", from, Some(&old)).unwrap_err();
        assert_eq!(e.scim_type, Some(ScimType::Mutability));
        let set = attribute_value(&def, Some(&json!("B")), "title", from, None);
        assert_eq!(set.unwrap(), json!("B"));

        let mut mgr = reg().schema(ENT).unwrap().attr("manager").unwrap().clone();
        mgr.sub_attributes[0].mutability = Mutability::Immutable;
        let old = json!({"value": "m1"});
        let e = attribute_value(
            &mgr,
            Some(&json!({"value": "m2"})),
            "manager",
            from,
            Some(&old),
        )
        .unwrap_err();
        assert_eq!(e.scim_type, Some(ScimType::Mutability));
        assert!(e.detail.contains("manager.value"));
    }

    #[test]
    fn replace_members_may_change() {
        let r = reg();
        let g = rt(&r, "Group");
        let out = validate_replace(
            &r,
            &g,
            &stored_group(),
            &json!({"schemas": [GROUP_SCHEMA], "displayName": "Old",
                    "members": [{"value": "u2"}]}),
        )
        .unwrap();
        assert_eq!(out["members"], json!([{"value": "u2"}]));
        assert_eq!(out["id"], "g1");
    }

    #[test]
    fn document_after_patch() {
        let r = reg();
        let u = rt(&r, "User");
        let mut doc = json!({
            "schemas": [USER_SCHEMA, ENT],
            "id": "u1",
            "userName": "a",
            "groups": [{"value": "g1", "display": "G"}],
            "emails": [],
            "name": {"givenName": null},
            ENT: {"department": null},
            "meta": {"resourceType": "User"},
        });
        validate_document(&r, &u, &mut doc).unwrap();
        assert_eq!(
            doc,
            json!({
                "schemas": [USER_SCHEMA],
                "id": "u1",
                "userName": "a",
                "groups": [{"value": "g1", "display": "G"}],
                "meta": {"resourceType": "User"},
            })
        );
        let mut doc =
            json!({"schemas": [USER_SCHEMA], "userName": "a", ENT: {"employeeNumber": "1"}});
        validate_document(&r, &u, &mut doc).unwrap();
        assert_eq!(doc["schemas"], json!([USER_SCHEMA, ENT]));
        for bad in [
            json!({"schemas": [USER_SCHEMA]}),
            json!({"schemas": [USER_SCHEMA], "userName": "a", "active": "maybe"}),
            json!({"schemas": [USER_SCHEMA], "userName": "a",
                   "emails": [{"value": "x", "primary": true}, {"value": "y", "primary": true}]}),
        ] {
            let mut d = bad.clone();
            let e = validate_document(&r, &u, &mut d).unwrap_err();
            assert_eq!(e.scim_type, Some(ScimType::InvalidValue), "{bad}");
        }
    }
}
