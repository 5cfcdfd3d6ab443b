//! Property paths of a mapping (`userName`, `name.givenName`,
//! `emails[type eq "work"].value`, `urn:…:enterprise:2.0:User:department`): read a
//! value out of a SCIM document and write one in. Parsing and element matching are
//! scim-proto's (`parse_patch_path`, `matches_element`); this module only walks
//! and builds the JSON.

use scim_proto::filter::{matches_element, parse_patch_path, AttrPath, CompareOp, Filter, Literal};
use scim_proto::schema::{AttrType, AttributeDef, ResourceTypeDef, SchemaRegistry};
use serde_json::{Map, Value};

/// A value filter selecting one element of a multi-valued complex attribute, with
/// the attribute's definition it is evaluated against (caseExact, types).
#[derive(Debug, Clone, PartialEq)]
struct Selector {
    filter: Filter,
    def: AttributeDef,
}

#[derive(Debug, Clone, PartialEq)]
pub struct PropertyPath {
    raw: String,
    attr: AttrPath,
    selector: Option<Selector>,
    /// The sub-attribute after the brackets (`.value`).
    element_sub: Option<String>,
}

impl PropertyPath {
    /// Parse `raw` for resource type `rt`. Only value filters are checked against
    /// the schema: plain paths may name attributes a remote provider adds.
    pub fn parse(
        raw: &str,
        registry: &SchemaRegistry,
        rt: &ResourceTypeDef,
    ) -> Result<PropertyPath, String> {
        let parsed = parse_patch_path(raw).map_err(|e| e.detail)?;
        let selector = match parsed.filter {
            None => {
                check_single(&parsed.attr, registry, rt)?;
                None
            }
            Some(filter) => {
                let resolved = registry.resolve(rt, &parsed.attr).map_err(|e| e.detail)?;
                if !(resolved.attr.multi_valued && resolved.attr.ty == AttrType::Complex) {
                    return Err(format!(
                        "'{}' is not a multi-valued complex attribute; it takes no value filter",
                        parsed.attr.attr
                    ));
                }
                Some(Selector {
                    filter,
                    def: resolved.attr.clone(),
                })
            }
        };
        Ok(PropertyPath {
            raw: raw.to_string(),
            attr: parsed.attr,
            selector,
            element_sub: parsed.sub_attr,
        })
    }

    /// The path as written in the configuration (a valid PATCH path).
    pub fn raw(&self) -> &str {
        &self.raw
    }

    /// The attribute part: `emails` of `emails[type eq "work"].value`.
    pub fn attr(&self) -> &AttrPath {
        &self.attr
    }

    pub fn has_selector(&self) -> bool {
        self.selector.is_some()
    }

    /// `members` of a group, which mappings translate through links instead of copying.
    pub fn is_members(&self) -> bool {
        self.attr.urn.is_none()
            && self.attr.sub_attr.is_none()
            && self.selector.is_none()
            && self.attr.attr.eq_ignore_ascii_case("members")
    }

    /// Can a write create the selected element? Only when the filter is a
    /// conjunction of `eq` comparisons, which say what the new element holds.
    pub fn check_writable(&self) -> Result<(), String> {
        match &self.selector {
            Some(s) if !is_equality_conjunction(&s.filter) => Err(format!(
                "'{}': a target value filter must only use 'eq' and 'and', so that a missing element can be created",
                self.raw
            )),
            _ => Ok(()),
        }
    }

    /// The value at this path; `null` counts as absent.
    pub fn read<'v>(&self, doc: &'v Value) -> Option<&'v Value> {
        let holder = match &self.attr.urn {
            Some(urn) => get_ci(doc, urn)?,
            None => doc,
        };
        let value = get_ci(holder, &self.attr.attr)?;
        let value = match &self.selector {
            Some(s) => self.selected(value, s)?,
            None => value,
        };
        let sub = self.attr.sub_attr.as_ref().or(self.element_sub.as_ref());
        let found = match sub {
            Some(name) => get_ci(value, name)?,
            None => value,
        };
        (!found.is_null()).then_some(found)
    }

    /// Does `doc` hold the element the value filter selects?
    pub fn has_element(&self, doc: &Value) -> bool {
        match &self.selector {
            None => true,
            Some(s) => {
                let holder = match &self.attr.urn {
                    Some(urn) => get_ci(doc, urn),
                    None => Some(doc),
                };
                holder
                    .and_then(|h| get_ci(h, &self.attr.attr))
                    .and_then(|v| self.selected(v, s))
                    .is_some()
            }
        }
    }

    /// A new element for the value filter holding `value`: what to `add` when the
    /// target has no matching element yet.
    pub fn new_element(&self, value: Value) -> Value {
        let mut element = Map::new();
        if let Some(s) = &self.selector {
            fill_from_filter(&s.filter, &mut element);
        }
        match &self.element_sub {
            Some(sub) => {
                element.insert(sub.clone(), value);
            }
            None => {
                if let Value::Object(fields) = value {
                    element.extend(fields);
                }
            }
        }
        Value::Object(element)
    }

    /// The PATCH path of the whole attribute (`emails`, `urn:…:User:manager`).
    pub fn attr_patch_path(&self) -> String {
        match &self.attr.urn {
            Some(urn) => format!("{urn}:{}", self.attr.attr),
            None => self.attr.attr.clone(),
        }
    }

    /// Write `value` at this path into `doc`, creating the objects, the array and
    /// the selected element as needed.
    pub fn write(&self, doc: &mut Map<String, Value>, value: Value) {
        match &self.attr.urn {
            Some(urn) => with_object(doc, urn, |holder| self.write_in(holder, value)),
            None => self.write_in(doc, value),
        }
    }

    fn write_in(&self, holder: &mut Map<String, Value>, value: Value) {
        if let Some(s) = &self.selector {
            let slot = slot_ci(holder, &self.attr.attr);
            let mut items = match slot.take() {
                Value::Array(items) => items,
                _ => Vec::new(),
            };
            self.write_element(&mut items, s, value);
            *slot = Value::Array(items);
            return;
        }
        match &self.attr.sub_attr {
            Some(sub) => with_object(holder, &self.attr.attr, |parent| {
                *slot_ci(parent, sub) = value;
            }),
            None => *slot_ci(holder, &self.attr.attr) = value,
        }
    }

    fn write_element(&self, items: &mut Vec<Value>, s: &Selector, value: Value) {
        let found = items
            .iter()
            .position(|e| e.is_object() && matches_element(&s.filter, e, &s.def));
        match (found, &self.element_sub) {
            (Some(i), Some(sub)) => {
                if let Some(Value::Object(element)) = items.get_mut(i) {
                    *slot_ci(element, sub) = value;
                }
            }
            (Some(i), None) => {
                if let Some(slot) = items.get_mut(i) {
                    *slot = self.new_element(value);
                }
            }
            (None, _) => items.push(self.new_element(value)),
        }
    }

    fn selected<'v>(&self, value: &'v Value, s: &Selector) -> Option<&'v Value> {
        match value {
            Value::Array(items) => items
                .iter()
                .find(|e| e.is_object() && matches_element(&s.filter, e, &s.def)),
            Value::Object(_) if matches_element(&s.filter, value, &s.def) => Some(value),
            _ => None,
        }
    }
}

/// `emails.value` names the values of every element; a mapping needs one value.
fn check_single(
    attr: &AttrPath,
    registry: &SchemaRegistry,
    rt: &ResourceTypeDef,
) -> Result<(), String> {
    match (&attr.sub_attr, registry.resolve(rt, attr)) {
        (Some(sub), Ok(r)) if r.attr.multi_valued => Err(format!(
            "'{}.{sub}' names every element; select one with a value filter, e.g. {}[type eq \"work\"].{sub}",
            attr.attr, attr.attr
        )),
        _ => Ok(()),
    }
}

fn is_equality_conjunction(f: &Filter) -> bool {
    match f {
        Filter::Compare {
            path,
            op: CompareOp::Eq,
            value,
        } => path.sub_attr.is_none() && *value != Literal::Null,
        Filter::And(l, r) => is_equality_conjunction(l) && is_equality_conjunction(r),
        _ => false,
    }
}

fn fill_from_filter(f: &Filter, element: &mut Map<String, Value>) {
    match f {
        Filter::Compare {
            path,
            op: CompareOp::Eq,
            value,
        } => {
            let v = match value {
                Literal::String(s) => Value::String(s.clone()),
                Literal::Number(n) => Value::Number(n.clone()),
                Literal::Bool(b) => Value::Bool(*b),
                Literal::Null => return,
            };
            element.insert(path.attr.clone(), v);
        }
        Filter::And(l, r) => {
            fill_from_filter(l, element);
            fill_from_filter(r, element);
        }
        _ => {}
    }
}

/// SCIM names are case-insensitive: an exact key first, then any case.
pub(crate) fn get_ci<'v>(value: &'v Value, key: &str) -> Option<&'v Value> {
    let map = value.as_object()?;
    map.get(key).or_else(|| {
        map.iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(key))
            .map(|(_, v)| v)
    })
}

/// The member named `key` in any case, inserted as null under `key` if missing.
fn slot_ci<'m>(map: &'m mut Map<String, Value>, key: &str) -> &'m mut Value {
    let existing = map
        .keys()
        .find(|k| k.eq_ignore_ascii_case(key))
        .cloned()
        .unwrap_or_else(|| key.to_string());
    map.entry(existing).or_insert(Value::Null)
}

/// Run `f` on the object member named `key`, which replaces anything there that is
/// not an object. Taking the value out and putting it back keeps the key's place.
fn with_object<R>(
    map: &mut Map<String, Value>,
    key: &str,
    f: impl FnOnce(&mut Map<String, Value>) -> R,
) -> R {
    let slot = slot_ci(map, key);
    let mut obj = match slot.take() {
        Value::Object(m) => m,
        _ => Map::new(),
    };
    let result = f(&mut obj);
    *slot = Value::Object(obj);
    result
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn path(raw: &str) -> PropertyPath {
        let reg = SchemaRegistry::standard();
        let rt = reg.resource_type("User").unwrap().clone();
        PropertyPath::parse(raw, &reg, &rt).unwrap()
    }

    fn user() -> Value {
        json!({"userName": "bjensen", "name": {"givenName": "Barbara"},
               "emails": [{"value": "b@home.org", "type": "home"},
                          {"value": "B@Work.org", "type": "work", "primary": true}],
               "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User": {"department": "Sales"}})
    }

    #[test]
    fn reads_plain_sub_value_path_and_extension_values() {
        let u = user();
        assert_eq!(path("userName").read(&u), Some(&json!("bjensen")));
        assert_eq!(path("USERNAME").read(&u), Some(&json!("bjensen")));
        assert_eq!(path("name.givenName").read(&u), Some(&json!("Barbara")));
        assert_eq!(
            path("emails[primary eq true].value").read(&u),
            Some(&json!("B@Work.org"))
        );
        assert_eq!(
            path("emails[type eq \"home\"].value").read(&u),
            Some(&json!("b@home.org"))
        );
        assert_eq!(path("emails[type eq \"other\"].value").read(&u), None);
        assert_eq!(
            path("urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:department").read(&u),
            Some(&json!("Sales"))
        );
        assert_eq!(path("title").read(&json!({"title": null})), None);
    }

    #[test]
    fn writing_a_value_path_updates_the_matching_element() {
        let mut doc = user().as_object().unwrap().clone();
        path("emails[type eq \"work\"].value").write(&mut doc, json!("new@work.org"));
        let emails = doc["emails"].as_array().unwrap();
        assert_eq!(emails.len(), 2);
        assert_eq!(emails[1]["value"], "new@work.org");
        assert_eq!(emails[1]["primary"], true);
    }

    #[test]
    fn writing_a_value_path_creates_the_element_from_the_filter() {
        let mut doc = Map::new();
        path("emails[type eq \"work\" and primary eq true].value").write(&mut doc, json!("a@b.c"));
        path("name.familyName").write(&mut doc, json!("Jensen"));
        path("urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:department")
            .write(&mut doc, json!("R&D"));
        assert_eq!(
            Value::Object(doc),
            json!({"emails": [{"type": "work", "primary": true, "value": "a@b.c"}],
                   "name": {"familyName": "Jensen"},
                   "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User": {"department": "R&D"}})
        );
    }

    #[test]
    fn only_equality_filters_are_writable() {
        assert!(path("emails[type eq \"work\"].value")
            .check_writable()
            .is_ok());
        assert!(path("emails[type co \"w\"].value")
            .check_writable()
            .is_err());
        assert!(path("emails[type eq \"w\" or primary eq true].value")
            .check_writable()
            .is_err());
    }

    #[test]
    fn value_filters_need_a_multi_valued_complex_attribute() {
        let reg = SchemaRegistry::standard();
        let rt = reg.resource_type("User").unwrap().clone();
        assert!(PropertyPath::parse("userName[value eq \"x\"]", &reg, &rt).is_err());
        assert!(PropertyPath::parse("emails[", &reg, &rt).is_err());
        let e = PropertyPath::parse("emails.value", &reg, &rt).unwrap_err();
        assert!(e.contains("value filter"), "{e}");
        // Attributes the schema does not know are taken as written.
        assert!(PropertyPath::parse("x-custom.sub", &reg, &rt).is_ok());
    }

    #[test]
    fn members_is_recognised() {
        let reg = SchemaRegistry::standard();
        let rt = reg.resource_type("Group").unwrap().clone();
        assert!(PropertyPath::parse("members", &reg, &rt)
            .unwrap()
            .is_members());
        assert!(!PropertyPath::parse("displayName", &reg, &rt)
            .unwrap()
            .is_members());
    }
}
