//! PATCH engine (RFC 7644 §3.5.2).
//!
//! Operations are applied in order to a copy of the stored canonical document; the
//! first failing operation aborts the whole request, so a caller that persists only
//! on `Ok` gets all-or-nothing semantics for free.

use crate::error::{ScimError, ScimResult};
use crate::filter::{matches_element, parse_patch_path, AttrPath, Filter, PatchPath};
use crate::schema::validate::{coerce_value, validate_document};
use crate::schema::{
    display_path, AttrType, AttributeDef, Mutability, ResourceTypeDef, SchemaRegistry,
};
use serde_json::{Map, Value};

use crate::messages::PATCH_OP;

/// Apply a PatchOp request body to the stored canonical `resource` and return the
/// new document, already checked with `schema::validate::validate_document`. Nothing
/// is persisted here; on any error the caller keeps the old document.
pub fn apply_patch(
    registry: &SchemaRegistry,
    rt: &ResourceTypeDef,
    resource: &Value,
    request: &Value,
) -> ScimResult<Value> {
    let ops = parse_request(request)?;
    let mut doc = resource.clone();
    if !doc.is_object() {
        return Err(ScimError::internal("stored resource is not a JSON object"));
    }
    let engine = Engine { registry, rt };
    for (i, op) in ops.iter().enumerate() {
        engine.apply(&mut doc, op).map_err(|mut e| {
            e.detail = format!("Operations[{i}]: {}", e.detail);
            e
        })?;
    }
    validate_document(registry, rt, &mut doc)?;
    Ok(doc)
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum OpKind {
    Add,
    Remove,
    Replace,
}

impl OpKind {
    fn name(self) -> &'static str {
        match self {
            OpKind::Add => "add",
            OpKind::Remove => "remove",
            OpKind::Replace => "replace",
        }
    }
}

struct Operation<'r> {
    kind: OpKind,
    path: Option<&'r str>,
    /// `None` when the member is absent; `Some(Null)` when the client sent null.
    value: Option<&'r Value>,
}

/// Member lookup tolerant of key case: clients disagree on `Operations`/`operations`
/// and SCIM names are case-insensitive anyway.
fn member<'v>(obj: &'v Map<String, Value>, name: &str) -> Option<&'v Value> {
    obj.get(name).or_else(|| {
        obj.iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v)
    })
}

fn parse_request(request: &Value) -> ScimResult<Vec<Operation<'_>>> {
    let body = request
        .as_object()
        .ok_or_else(|| ScimError::invalid_syntax("PATCH body must be a JSON object"))?;
    let has_schema = member(body, "schemas")
        .and_then(Value::as_array)
        .is_some_and(|s| {
            s.iter()
                .filter_map(Value::as_str)
                .any(|u| u.eq_ignore_ascii_case(PATCH_OP))
        });
    if !has_schema {
        return Err(ScimError::invalid_syntax(format!(
            "'schemas' must contain \"{PATCH_OP}\""
        )));
    }
    let ops = match member(body, "Operations").and_then(Value::as_array) {
        Some(ops) if !ops.is_empty() => ops,
        _ => {
            return Err(ScimError::invalid_syntax(
                "'Operations' must be a non-empty array",
            ))
        }
    };
    ops.iter()
        .enumerate()
        .map(|(i, raw)| {
            parse_operation(raw).map_err(|mut e| {
                e.detail = format!("Operations[{i}]: {}", e.detail);
                e
            })
        })
        .collect()
}

fn parse_operation(raw: &Value) -> ScimResult<Operation<'_>> {
    let obj = raw
        .as_object()
        .ok_or_else(|| ScimError::invalid_syntax("each operation must be a JSON object"))?;
    let op = member(obj, "op")
        .and_then(Value::as_str)
        .ok_or_else(|| ScimError::invalid_syntax("operation has no 'op' string"))?;
    // Entra ID capitalises op names ("Add", "Replace").
    let kind = match op.to_ascii_lowercase().as_str() {
        "add" => OpKind::Add,
        "remove" => OpKind::Remove,
        "replace" => OpKind::Replace,
        _ => {
            return Err(ScimError::invalid_syntax(format!(
                "unknown op '{op}' (expected add, remove or replace)"
            )))
        }
    };
    let path = match member(obj, "path") {
        None | Some(Value::Null) => None,
        Some(Value::String(p)) if p.trim().is_empty() => None,
        Some(Value::String(p)) => Some(p.as_str()),
        Some(_) => return Err(ScimError::invalid_path("'path' must be a string")),
    };
    let value = member(obj, "value");
    if kind != OpKind::Remove && value.is_none() {
        return Err(ScimError::invalid_syntax(format!(
            "'{}' requires a 'value'",
            kind.name()
        )));
    }
    Ok(Operation { kind, path, value })
}

/// Where one operation lands: an attribute, optionally narrowed by a value filter
/// and/or a sub-attribute.
struct Target<'a> {
    attr: &'a AttributeDef,
    /// URN key of the extension object holding the attribute; `None` for top level.
    container: Option<&'a str>,
    filter: Option<Filter>,
    sub: Option<&'a AttributeDef>,
    display: String,
}

impl Target<'_> {
    fn is_read_only(&self) -> bool {
        self.attr.mutability == Mutability::ReadOnly
            || self
                .sub
                .is_some_and(|s| s.mutability == Mutability::ReadOnly)
    }
}

struct Engine<'a> {
    registry: &'a SchemaRegistry,
    rt: &'a ResourceTypeDef,
}

impl<'a> Engine<'a> {
    fn apply(&self, doc: &mut Value, op: &Operation<'_>) -> ScimResult<()> {
        let Some(path) = op.path else {
            return match (op.kind, op.value) {
                // RFC 7644 §3.5.2.2: a remove without a path has no target.
                (OpKind::Remove, _) => Err(ScimError::no_target("remove requires a 'path'")),
                (kind, Some(Value::Object(obj))) => self.apply_object(doc, kind, obj, None),
                (kind, _) => Err(ScimError::invalid_value(format!(
                    "'{}' without a path needs an object of attributes as 'value'",
                    kind.name()
                ))),
            };
        };
        if let Some(urn) = self.extension_urn(path) {
            return self.apply_to_extension(doc, op, urn);
        }
        let pp = parse_patch_path(path)?;
        let target = self.target(&pp)?;
        if target.is_read_only() {
            return Err(ScimError::mutability(format!(
                "'{}' is readOnly",
                target.display
            )));
        }
        self.apply_target(doc, op.kind, &target, op.value)
    }

    /// A path naming a whole extension schema (`urn:…:enterprise:2.0:User`).
    fn extension_urn(&self, path: &str) -> Option<&'a str> {
        self.rt
            .schema_extensions
            .iter()
            .find(|e| e.schema.eq_ignore_ascii_case(path))
            .and_then(|e| self.registry.schema(&e.schema))
            .map(|s| s.id.as_str())
    }

    fn apply_to_extension(&self, doc: &mut Value, op: &Operation<'_>, urn: &str) -> ScimResult<()> {
        match (op.kind, op.value) {
            (OpKind::Remove, _) => {
                let present: Vec<String> = doc
                    .as_object()
                    .and_then(|root| find_key(root, urn).and_then(|k| root.get(&k)))
                    .and_then(Value::as_object)
                    .map(|ext| ext.keys().cloned().collect())
                    .unwrap_or_default();
                for name in present {
                    let pp = PatchPath {
                        attr: AttrPath {
                            urn: Some(urn.to_string()),
                            attr: name,
                            sub_attr: None,
                        },
                        filter: None,
                        sub_attr: None,
                    };
                    let target = self.target(&pp)?;
                    if target.is_read_only() {
                        return Err(ScimError::mutability(format!(
                            "'{}' is readOnly",
                            target.display
                        )));
                    }
                    self.apply_target(doc, OpKind::Remove, &target, None)?;
                }
                Ok(())
            }
            (kind, Some(Value::Object(obj))) => self.apply_object(doc, kind, obj, Some(urn)),
            (kind, _) => Err(ScimError::invalid_value(format!(
                "'{}' on '{urn}' needs an object of attributes as 'value'",
                kind.name()
            ))),
        }
    }

    /// add/replace without a path (or with a schema URN as path): every member of
    /// the value object is handled as if it had been the path of its own operation.
    fn apply_object(
        &self,
        doc: &mut Value,
        kind: OpKind,
        obj: &Map<String, Value>,
        urn: Option<&str>,
    ) -> ScimResult<()> {
        for (key, value) in obj {
            // `schemas` is derived from the content by validate_document; clients
            // also send it inside an extension's value object.
            if key.eq_ignore_ascii_case("schemas") {
                continue;
            }
            let pp = match urn {
                Some(u) => {
                    let (attr, sub) = split_sub(key);
                    PatchPath {
                        attr: AttrPath {
                            urn: Some(u.to_string()),
                            attr: attr.to_string(),
                            sub_attr: sub.map(str::to_string),
                        },
                        filter: None,
                        sub_attr: None,
                    }
                }
                None => {
                    if let Some(schema) = self.schema_urn(key) {
                        match value {
                            Value::Object(inner) => {
                                self.apply_object(doc, kind, inner, Some(schema))?;
                                continue;
                            }
                            _ => {
                                return Err(ScimError::invalid_value(format!(
                                    "'{key}' must hold an object of attributes"
                                )))
                            }
                        }
                    }
                    if key.starts_with("urn:") || key.starts_with("URN:") {
                        let pp = parse_patch_path(key)?;
                        if pp.filter.is_some() {
                            return Err(ScimError::invalid_path(format!(
                                "value filters are not allowed in attribute names ('{key}')"
                            )));
                        }
                        pp
                    } else {
                        let (attr, sub) = split_sub(key);
                        PatchPath {
                            attr: AttrPath {
                                urn: None,
                                attr: attr.to_string(),
                                sub_attr: sub.map(str::to_string),
                            },
                            filter: None,
                            sub_attr: None,
                        }
                    }
                }
            };
            let target = self.target(&pp)?;
            if target.is_read_only() {
                // Clients that echo a resource back (id, meta) change nothing; only a
                // real change of a server-owned value is an error.
                if self.current(doc, &target) == Some(value) {
                    continue;
                }
                return Err(ScimError::mutability(format!(
                    "'{}' is readOnly",
                    target.display
                )));
            }
            self.apply_target(doc, kind, &target, Some(value))?;
        }
        Ok(())
    }

    /// The core or extension schema URN of this resource type that `key` names.
    fn schema_urn(&self, key: &str) -> Option<&'a str> {
        if key.eq_ignore_ascii_case(&self.rt.schema) {
            return Some(self.rt.schema.as_str());
        }
        self.extension_urn(key)
    }

    fn target(&self, pp: &PatchPath) -> ScimResult<Target<'a>> {
        let res = self.registry.resolve(self.rt, &pp.attr)?;
        let attr = res.attr;
        let mut display = display_path(&pp.attr);
        let mut sub = res.sub;
        if let Some(filter) = &pp.filter {
            if sub.is_some() {
                return Err(ScimError::invalid_path(format!(
                    "a value filter must follow the attribute name, not '{display}'"
                )));
            }
            if !(attr.multi_valued && attr.ty == AttrType::Complex) {
                return Err(ScimError::invalid_path(format!(
                    "'{display}' is not a multi-valued complex attribute; it takes no value filter"
                )));
            }
            check_filter(filter, attr)?;
            display.push_str("[…]");
            if let Some(name) = &pp.sub_attr {
                let sd = attr.sub(name).ok_or_else(|| {
                    ScimError::invalid_path(format!("unknown attribute '{display}.{name}'"))
                })?;
                display.push('.');
                display.push_str(&sd.name);
                sub = Some(sd);
            }
        } else if let Some(name) = &pp.sub_attr {
            return Err(ScimError::invalid_path(format!(
                "unexpected sub-attribute '{name}' after '{display}'"
            )));
        }
        Ok(Target {
            attr,
            container: if res.extension { res.schema } else { None },
            filter: pp.filter.clone(),
            sub,
            display,
        })
    }

    /// The stored value of the target's attribute (or sub-attribute of a single
    /// complex attribute); only used to detect no-op writes of readOnly values.
    fn current<'d>(&self, doc: &'d Value, target: &Target<'_>) -> Option<&'d Value> {
        let root = doc.as_object()?;
        let holder = match target.container {
            Some(urn) => root.get(&find_key(root, urn)?)?.as_object()?,
            None => root,
        };
        let value = holder.get(&find_key(holder, &target.attr.name)?)?;
        match (target.sub, target.attr.multi_valued) {
            (None, _) => Some(value),
            (Some(sd), false) => {
                let obj = value.as_object()?;
                obj.get(&find_key(obj, &sd.name)?)
            }
            (Some(_), true) => None,
        }
    }

    fn apply_target(
        &self,
        doc: &mut Value,
        kind: OpKind,
        target: &Target<'_>,
        value: Option<&Value>,
    ) -> ScimResult<()> {
        let root = doc
            .as_object_mut()
            .ok_or_else(|| ScimError::internal("stored resource is not a JSON object"))?;
        let name = target.attr.name.as_str();
        match target.container {
            None => {
                let cur = take_attr(root, name);
                let new = self.change_attr(kind, target, cur, value)?;
                put_attr(root, name, new);
            }
            Some(urn) => {
                let mut ext = match take_attr(root, urn) {
                    None | Some(Value::Null) => Map::new(),
                    Some(Value::Object(m)) => m,
                    Some(_) => {
                        return Err(ScimError::internal(format!(
                            "stored '{urn}' is not an object"
                        )))
                    }
                };
                let cur = take_attr(&mut ext, name);
                let new = self.change_attr(kind, target, cur, value)?;
                put_attr(&mut ext, name, new);
                put_attr(root, urn, Some(Value::Object(ext)));
            }
        }
        Ok(())
    }

    /// Compute the attribute's new value from its current one. Checks that hold for
    /// every shape of operation (immutable, required) are made here, on the result.
    fn change_attr(
        &self,
        kind: OpKind,
        target: &Target<'_>,
        cur: Option<Value>,
        value: Option<&Value>,
    ) -> ScimResult<Option<Value>> {
        let attr = target.attr;
        let cur = cur.filter(|v| !is_empty(v));
        let new = match (&target.filter, target.sub) {
            (None, None) => whole_attr(kind, attr, cur.clone(), value)?,
            (None, Some(sd)) if !attr.multi_valued => {
                single_sub(kind, attr, sd, cur.clone(), value)?
            }
            (filter, sub) => elements(kind, target, filter.as_ref(), sub, cur.clone(), value)?,
        };
        let new = new.filter(|v| !is_empty(v));
        if attr.mutability == Mutability::Immutable && cur.is_some() && new != cur {
            return Err(ScimError::mutability(format!(
                "'{}' is immutable and already set",
                target.display
            )));
        }
        if attr.required && new.is_none() {
            return Err(ScimError::invalid_value(format!(
                "'{}' is required and cannot be removed",
                target.display
            )));
        }
        Ok(new)
    }
}

/// The operation targets the attribute as a whole (`emails`, `name`, `userName`).
fn whole_attr(
    kind: OpKind,
    attr: &AttributeDef,
    cur: Option<Value>,
    value: Option<&Value>,
) -> ScimResult<Option<Value>> {
    let value = match (kind, value) {
        (OpKind::Remove, Some(v)) if attr.multi_valued && !v.is_null() => {
            return remove_listed(attr, cur, v)
        }
        (OpKind::Remove, _) => return Ok(None),
        // Null and [] mean "unassigned" (RFC 7643 §2.5): replacing with them clears,
        // adding them adds nothing.
        (OpKind::Replace, Some(v)) if is_empty(v) => return Ok(None),
        (OpKind::Add, Some(v)) if is_empty(v) => return Ok(cur),
        (_, Some(v)) => v,
        (_, None) => return Ok(cur),
    };
    if attr.multi_valued {
        let items = coerce_elements(attr, value)?;
        let (mut arr, written) = match kind {
            OpKind::Replace => {
                let written = (0..items.len()).collect::<Vec<_>>();
                (items, written)
            }
            _ => {
                let mut arr = into_array(cur);
                let mut written = Vec::new();
                for item in items {
                    match arr.iter().position(|e| same_element(attr, e, &item)) {
                        Some(i) => written.push(i),
                        None => {
                            arr.push(item);
                            written.push(arr.len() - 1);
                        }
                    }
                }
                (arr, written)
            }
        };
        settle_primary(attr, &mut arr, &written)?;
        Ok(Some(Value::Array(arr)))
    } else if attr.ty == AttrType::Complex {
        // Entra ID (before its 2020 SCIM fixes, still seen in the field) sends the
        // enterprise `manager` as the bare id string.
        let wrapped;
        let value = match value {
            Value::String(id) if attr.sub("value").is_some() => {
                wrapped = Value::Object(Map::from_iter([(
                    "value".to_string(),
                    Value::String(id.clone()),
                )]));
                &wrapped
            }
            other => other,
        };
        let mut obj = into_object(cur);
        merge_subs(attr, &mut obj, value)?;
        Ok(Some(Value::Object(obj)))
    } else {
        Ok(Some(coerce_value(attr, value)?))
    }
}

/// `name.givenName`-style target: a sub-attribute of a single-valued complex attribute.
fn single_sub(
    kind: OpKind,
    attr: &AttributeDef,
    sd: &AttributeDef,
    cur: Option<Value>,
    value: Option<&Value>,
) -> ScimResult<Option<Value>> {
    let mut obj = into_object(cur);
    match (kind, value) {
        (OpKind::Add, Some(v)) if v.is_null() => {}
        (OpKind::Remove, _) | (OpKind::Replace, Some(Value::Null)) | (_, None) => {
            remove_sub(attr, sd, &mut obj)?;
        }
        (_, Some(v)) => set_sub(attr, sd, &mut obj, v)?,
    }
    Ok(Some(Value::Object(obj)))
}

/// Targets inside a multi-valued complex attribute: `emails[type eq "work"]`,
/// `emails[…].value`, or `emails.value` (every element).
fn elements(
    kind: OpKind,
    target: &Target<'_>,
    filter: Option<&Filter>,
    sub: Option<&AttributeDef>,
    cur: Option<Value>,
    value: Option<&Value>,
) -> ScimResult<Option<Value>> {
    let attr = target.attr;
    if kind == OpKind::Add && filter.is_some() && sub.is_none() {
        return Err(ScimError::invalid_path(format!(
            "add with a value filter needs a sub-attribute after the filter ('{}.attr')",
            target.display
        )));
    }
    let mut arr = into_array(cur);
    let matched: Vec<usize> = arr
        .iter()
        .enumerate()
        .filter(|(_, e)| filter.is_none_or(|f| matches_element(f, e, attr)))
        .map(|(i, _)| i)
        .collect();
    if matched.is_empty() {
        if filter.is_none() && kind == OpKind::Remove {
            return Ok(Some(Value::Array(arr)));
        }
        return Err(ScimError::no_target(match filter {
            Some(_) => format!("no value of '{}' matches the filter", attr.name),
            None => format!("'{}' has no values", attr.name),
        }));
    }
    let mut written = Vec::new();
    match (kind, sub, value) {
        (OpKind::Remove, None, _) | (OpKind::Replace, None, Some(Value::Null)) => {
            let mut i = 0;
            arr.retain(|_| {
                let keep = !matched.contains(&i);
                i += 1;
                keep
            });
        }
        (OpKind::Add, Some(_), Some(v)) if v.is_null() => {}
        (OpKind::Remove, Some(sd), _) | (OpKind::Replace, Some(sd), Some(Value::Null)) => {
            for &i in &matched {
                if let Some(obj) = arr.get_mut(i).and_then(Value::as_object_mut) {
                    remove_sub(attr, sd, obj)?;
                }
            }
        }
        (_, Some(sd), Some(v)) => {
            for &i in &matched {
                if let Some(obj) = arr.get_mut(i).and_then(Value::as_object_mut) {
                    set_sub(attr, sd, obj, v)?;
                    if is_primary(attr, obj) && is_primary_sub(attr, sd) {
                        written.push(i);
                    }
                }
            }
        }
        (OpKind::Replace, None, Some(v)) => {
            let sets_primary = v.as_object().is_some_and(|o| {
                o.iter().any(|(k, pv)| {
                    attr.sub(k).is_some_and(|sd| is_primary_sub(attr, sd)) && !pv.is_null()
                })
            });
            for &i in &matched {
                if let Some(obj) = arr.get_mut(i).and_then(Value::as_object_mut) {
                    merge_subs(attr, obj, v)?;
                    if sets_primary && is_primary(attr, obj) {
                        written.push(i);
                    }
                }
            }
        }
        (_, _, None) | (OpKind::Add, None, _) => {}
    }
    arr.retain(|e| !is_empty(e));
    settle_primary(attr, &mut arr, &written)?;
    Ok(Some(Value::Array(arr)))
}

/// Azure-style `{"op":"remove","path":"members","value":[{"value":"id"}]}`: drop
/// the listed elements. An element matches when it agrees on every sub-attribute
/// the listed one gives; elements that are not there are ignored (idempotent).
fn remove_listed(
    attr: &AttributeDef,
    cur: Option<Value>,
    value: &Value,
) -> ScimResult<Option<Value>> {
    let listed: Vec<&Value> = match value {
        Value::Array(items) => items.iter().collect(),
        other => vec![other],
    };
    let mut arr = into_array(cur);
    for item in listed {
        if attr.ty == AttrType::Complex {
            let wanted = match item.as_object() {
                Some(o) if !o.is_empty() => o,
                _ => {
                    return Err(ScimError::invalid_value(format!(
                        "values to remove from '{}' must be non-empty objects",
                        attr.name
                    )))
                }
            };
            // `value` identifies an element (a member's id); other sub-attributes
            // the client echoes (display) may be stale, so they only count when
            // there is no `value` to go by.
            let by_value: Vec<(&String, &Value)> = wanted
                .iter()
                .filter(|(k, _)| k.eq_ignore_ascii_case("value"))
                .collect();
            let criteria: Vec<(&String, &Value)> = if by_value.is_empty() {
                wanted.iter().collect()
            } else {
                by_value
            };
            arr.retain(|e| {
                let Some(obj) = e.as_object() else {
                    return true;
                };
                !criteria.iter().all(|(k, v)| {
                    find_key(obj, k)
                        .and_then(|key| obj.get(&key))
                        .is_some_and(|have| have == *v)
                })
            });
        } else {
            let item = coerce_value(attr, &Value::Array(vec![item.clone()]))?;
            let item = first_of(item);
            arr.retain(|e| *e != item);
        }
    }
    Ok(Some(Value::Array(arr)))
}

/// Merge a value object into a complex value, sub-attribute by sub-attribute
/// (RFC 7644 §3.5.2.3: sub-attributes not given are left unchanged).
fn merge_subs(attr: &AttributeDef, obj: &mut Map<String, Value>, value: &Value) -> ScimResult<()> {
    let given = value.as_object().ok_or_else(|| {
        ScimError::invalid_value(format!(
            "'{}' is complex; the value must be an object of sub-attributes",
            attr.name
        ))
    })?;
    for (key, v) in given {
        // Same scimType as coerce_value gives unknown sub-attributes elsewhere.
        let sd = attr.sub(key).ok_or_else(|| {
            ScimError::invalid_syntax(format!("unknown attribute '{}.{key}'", attr.name))
        })?;
        // Server-maintained sub-attributes (e.g. a manager's displayName) are not the
        // client's to write; drop them as a create would.
        if sd.mutability == Mutability::ReadOnly {
            continue;
        }
        if v.is_null() {
            remove_sub(attr, sd, obj)?;
        } else {
            set_sub(attr, sd, obj, v)?;
        }
    }
    Ok(())
}

fn set_sub(
    attr: &AttributeDef,
    sd: &AttributeDef,
    obj: &mut Map<String, Value>,
    value: &Value,
) -> ScimResult<()> {
    let new = coerce_value(sd, value)?;
    let cur = take_attr(obj, &sd.name).filter(|v| !is_empty(v));
    if sd.mutability == Mutability::Immutable && cur.as_ref().is_some_and(|c| *c != new) {
        return Err(ScimError::mutability(format!(
            "'{}.{}' is immutable and already set",
            attr.name, sd.name
        )));
    }
    put_attr(obj, &sd.name, Some(new));
    Ok(())
}

fn remove_sub(
    attr: &AttributeDef,
    sd: &AttributeDef,
    obj: &mut Map<String, Value>,
) -> ScimResult<()> {
    let Some(key) = find_key(obj, &sd.name) else {
        return Ok(());
    };
    if obj.shift_remove(&key).is_none_or(|v| is_empty(&v)) {
        return Ok(());
    }
    if sd.required {
        return Err(ScimError::invalid_value(format!(
            "'{}.{}' is required and cannot be removed",
            attr.name, sd.name
        )));
    }
    if sd.mutability == Mutability::Immutable {
        return Err(ScimError::mutability(format!(
            "'{}.{}' is immutable",
            attr.name, sd.name
        )));
    }
    Ok(())
}

/// Normalise the value(s) given for a multi-valued attribute: one element or an
/// array of them, canonical keys, readOnly sub-attributes dropped.
fn coerce_elements(attr: &AttributeDef, value: &Value) -> ScimResult<Vec<Value>> {
    let items = match value {
        Value::Array(items) => items.clone(),
        other => vec![other.clone()],
    };
    let mut items = match coerce_value(attr, &Value::Array(items))? {
        Value::Array(items) => items,
        other => vec![other],
    };
    if attr.ty == AttrType::Complex {
        for item in &mut items {
            if let Some(obj) = item.as_object_mut() {
                obj.retain(|k, _| {
                    attr.sub(k)
                        .is_none_or(|sd| sd.mutability != Mutability::ReadOnly)
                });
            }
        }
    }
    items.retain(|v| !is_empty(v));
    Ok(items)
}

/// Duplicate detection for add: equal values, or complex elements equal once the
/// server-maintained (readOnly) sub-attributes are ignored.
fn same_element(attr: &AttributeDef, a: &Value, b: &Value) -> bool {
    match (a, b) {
        (Value::Object(x), Value::Object(y)) if attr.ty == AttrType::Complex => {
            let writable = |m: &Map<String, Value>| -> Map<String, Value> {
                m.iter()
                    .filter(|(k, _)| {
                        attr.sub(k)
                            .is_none_or(|sd| sd.mutability != Mutability::ReadOnly)
                    })
                    .map(|(k, v)| (k.to_ascii_lowercase(), v.clone()))
                    .collect()
            };
            let (x, y) = (writable(x), writable(y));
            x.len() == y.len() && x.iter().all(|(k, v)| y.get(k) == Some(v))
        }
        _ => a == b,
    }
}

fn is_primary_sub(attr: &AttributeDef, sd: &AttributeDef) -> bool {
    sd.ty == AttrType::Boolean
        && sd.name.eq_ignore_ascii_case("primary")
        && attr.ty == AttrType::Complex
}

fn is_primary(attr: &AttributeDef, obj: &Map<String, Value>) -> bool {
    attr.sub("primary")
        .and_then(|sd| find_key(obj, &sd.name))
        .and_then(|k| obj.get(&k))
        == Some(&Value::Bool(true))
}

/// RFC 7643 §2.4 allows one `primary: true`. The element this operation made
/// primary wins; any other primary element is demoted.
fn settle_primary(attr: &AttributeDef, arr: &mut [Value], written: &[usize]) -> ScimResult<()> {
    let Some(pd) = attr.sub("primary").filter(|sd| is_primary_sub(attr, sd)) else {
        return Ok(());
    };
    let winners: Vec<usize> = written
        .iter()
        .copied()
        .filter(|&i| {
            arr.get(i)
                .and_then(Value::as_object)
                .is_some_and(|o| is_primary(attr, o))
        })
        .collect();
    match winners.as_slice() {
        [] => Ok(()),
        [w] => {
            for (i, el) in arr.iter_mut().enumerate() {
                if i == *w {
                    continue;
                }
                if let Some(obj) = el.as_object_mut() {
                    if is_primary(attr, obj) {
                        put_attr(obj, &pd.name, Some(Value::Bool(false)));
                    }
                }
            }
            Ok(())
        }
        _ => Err(ScimError::invalid_value(format!(
            "at most one value of '{}' may be primary",
            attr.name
        ))),
    }
}

/// Value filters are relative to one element: every name must be a sub-attribute
/// of `parent` (RFC 7644 §3.5.2; errors are invalidFilter per Table 9).
fn check_filter(filter: &Filter, parent: &AttributeDef) -> ScimResult<()> {
    match filter {
        Filter::Compare { path, .. } | Filter::Present(path) => {
            if path.urn.is_some() || path.sub_attr.is_some() || parent.sub(&path.attr).is_none() {
                return Err(ScimError::invalid_filter(format!(
                    "'{}' is not a sub-attribute of '{}'",
                    display_path(path),
                    parent.name
                )));
            }
            Ok(())
        }
        Filter::And(l, r) | Filter::Or(l, r) => {
            check_filter(l, parent)?;
            check_filter(r, parent)
        }
        Filter::Not(inner) => check_filter(inner, parent),
        Filter::ValuePath { path, .. } => Err(ScimError::invalid_filter(format!(
            "nested value filter '{}[…]' inside '{}[…]'",
            display_path(path),
            parent.name
        ))),
    }
}

fn split_sub(key: &str) -> (&str, Option<&str>) {
    match key.split_once('.') {
        Some((a, s)) => (a, Some(s)),
        None => (key, None),
    }
}

fn is_empty(v: &Value) -> bool {
    match v {
        Value::Null => true,
        Value::Array(a) => a.is_empty(),
        Value::Object(o) => o.is_empty(),
        _ => false,
    }
}

fn into_array(v: Option<Value>) -> Vec<Value> {
    match v {
        None | Some(Value::Null) => Vec::new(),
        Some(Value::Array(a)) => a,
        Some(other) => vec![other],
    }
}

fn into_object(v: Option<Value>) -> Map<String, Value> {
    match v {
        Some(Value::Object(o)) => o,
        _ => Map::new(),
    }
}

fn first_of(v: Value) -> Value {
    match v {
        Value::Array(mut a) if !a.is_empty() => a.swap_remove(0),
        other => other,
    }
}

/// The key under which `name` is stored, tolerating a case difference.
fn find_key(map: &Map<String, Value>, name: &str) -> Option<String> {
    if map.contains_key(name) {
        return Some(name.to_string());
    }
    map.keys().find(|k| k.eq_ignore_ascii_case(name)).cloned()
}

/// Take a member out for rewriting. An exact-case key keeps its slot (a Null
/// placeholder) so that `put_attr` preserves the document's key order.
fn take_attr(map: &mut Map<String, Value>, name: &str) -> Option<Value> {
    let key = find_key(map, name)?;
    if key == name {
        map.get_mut(name).map(Value::take)
    } else {
        map.shift_remove(&key)
    }
}

/// Store a member under its canonical name; empty values become absent.
fn put_attr(map: &mut Map<String, Value>, name: &str, value: Option<Value>) {
    match value.filter(|v| !is_empty(v)) {
        Some(v) => {
            map.insert(name.to_string(), v);
        }
        None => {
            map.shift_remove(name);
        }
    }
}
