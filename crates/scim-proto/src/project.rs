//! attributes / excludedAttributes (RFC 7644 §3.4.2.5) honouring `returned`
//! (RFC 7643 §2.2).
//!
//! Naming an attribute selects all of it; naming a sub-attribute selects the
//! parent with only that sub-attribute (plus `returned: always` ones); a bare
//! extension URN names the whole extension object. `excludedAttributes` never
//! removes `returned: always` values, and nothing returns `returned: never`.
use crate::error::ScimResult;
use crate::filter::{parse_attr_path, AttrPath};
use crate::schema::{AttrType, AttributeDef, ResourceTypeDef, Returned, SchemaRegistry};
use serde_json::{Map, Value};

#[derive(Debug, Clone, Default, PartialEq)]
pub struct Projection {
    pub attributes: Vec<AttrPath>,
    pub excluded: Vec<AttrPath>,
}

/// Paths that do not parse are dropped rather than rejected: conformance tools
/// send names of other resource types on root searches, and RFC 7644 does not
/// require an error. A bare schema URN does not fit the `attrPath` grammar, so
/// if the parser refuses one it is kept with an empty `attr`; resolution then
/// recognises it as a whole extension (or ignores it).
fn parse_list(list: Option<&str>) -> Vec<AttrPath> {
    list.into_iter()
        .flat_map(|l| l.split(','))
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .filter_map(|s| match parse_attr_path(s) {
            Ok(p) => Some(p),
            Err(_) if s.get(..4).is_some_and(|h| h.eq_ignore_ascii_case("urn:")) => {
                Some(AttrPath {
                    urn: Some(s.to_string()),
                    attr: String::new(),
                    sub_attr: None,
                })
            }
            Err(_) => None,
        })
        .collect()
}

impl Projection {
    /// From the comma-separated query parameters (or SearchRequest fields).
    /// Unknown attribute names are ignored (RFC 7644 leaves this open; clients send
    /// names of other resource types on root searches).
    pub fn parse(attributes: Option<&str>, excluded: Option<&str>) -> ScimResult<Projection> {
        Ok(Projection {
            attributes: parse_list(attributes),
            excluded: parse_list(excluded),
        })
    }

    /// Is this (multi-valued complex) attribute wanted at all? Lets the server skip
    /// expensive work such as joining group member display names.
    ///
    /// For a sub-attribute path, whether that sub-attribute would be returned.
    /// Paths that do not resolve for `rt` are not wanted.
    pub fn wants(&self, registry: &SchemaRegistry, rt: &ResourceTypeDef, path: &AttrPath) -> bool {
        let plan = Plan::new(registry, rt, self);
        match target(registry, rt, path) {
            None => false,
            Some(Target::Extension(urn)) => registry.extension_of(rt, urn).is_some_and(|s| {
                s.attributes
                    .iter()
                    .any(|d| !matches!(plan.mode(Some(urn), d), Keep::Drop))
            }),
            Some(Target::Attr { ext, attr, sub }) => {
                let mode = plan.mode(ext, attr);
                match (mode, sub) {
                    (Keep::Drop, _) => false,
                    (_, None) => true,
                    (mode, Some(s)) => plan.keep_sub(ext, attr, &mode, s),
                }
            }
        }
    }
}

/// A projection path resolved against a resource type.
#[derive(Debug, Clone, Copy)]
enum Target<'a> {
    /// A whole extension object, by its registered URN.
    Extension(&'a str),
    Attr {
        /// Registered URN of the extension holding the attribute; None for core
        /// and common attributes.
        ext: Option<&'a str>,
        attr: &'a AttributeDef,
        sub: Option<&'a AttributeDef>,
    },
}

fn target<'a>(
    registry: &'a SchemaRegistry,
    rt: &'a ResourceTypeDef,
    path: &AttrPath,
) -> Option<Target<'a>> {
    if path.sub_attr.is_none() {
        // However the parser split a bare URN (at its last colon, or not at
        // all), gluing it back together gives the URN.
        let joined = match (&path.urn, path.attr.is_empty()) {
            (Some(u), true) => u.clone(),
            (Some(u), false) => format!("{u}:{}", path.attr),
            (None, _) => path.attr.clone(),
        };
        if let Some(s) = registry.extension_of(rt, &joined) {
            return Some(Target::Extension(&s.id));
        }
    }
    if path.attr.is_empty() {
        return None;
    }
    let resolved = registry.resolve(rt, path).ok().or_else(|| {
        // resolve() looks core-qualified names up in the core schema only, but
        // id/externalId/meta qualified with the core URN name the same thing.
        let urn = path.urn.as_ref()?;
        if !urn.eq_ignore_ascii_case(&rt.schema) {
            return None;
        }
        let bare = AttrPath {
            urn: None,
            ..path.clone()
        };
        registry.resolve(rt, &bare).ok()
    })?;
    Some(Target::Attr {
        ext: if resolved.extension {
            resolved.schema
        } else {
            None
        },
        attr: resolved.attr,
        sub: resolved.sub,
    })
}

/// How much of one attribute the response carries.
#[derive(Debug, PartialEq)]
enum Keep<'a> {
    Drop,
    /// All of it; `named` when the attribute (or its extension) was asked for,
    /// which also brings its `returned: request` sub-attributes.
    Whole {
        named: bool,
    },
    /// Only these sub-attributes (plus `returned: always` ones).
    Subs(Vec<&'a str>),
}

struct Plan<'a> {
    attributes: Vec<Target<'a>>,
    excluded: Vec<Target<'a>>,
    /// `attributes` was given: only what it names (and `always`) is returned.
    restrict: bool,
}

fn same_ext(a: Option<&str>, b: Option<&str>) -> bool {
    match (a, b) {
        (None, None) => true,
        (Some(a), Some(b)) => a.eq_ignore_ascii_case(b),
        _ => false,
    }
}

/// Does `t` name all of attribute `def` (directly or through its extension)?
fn covers(t: &Target<'_>, ext: Option<&str>, def: &AttributeDef) -> bool {
    match *t {
        Target::Extension(urn) => same_ext(Some(urn), ext),
        Target::Attr { ext: e, attr, sub } => {
            sub.is_none() && same_ext(e, ext) && attr.name.eq_ignore_ascii_case(&def.name)
        }
    }
}

/// The sub-attribute of `def` that `t` names, if any.
fn sub_of<'a>(t: &Target<'a>, ext: Option<&str>, def: &AttributeDef) -> Option<&'a str> {
    match *t {
        Target::Attr {
            ext: e,
            attr,
            sub: Some(s),
        } if same_ext(e, ext) && attr.name.eq_ignore_ascii_case(&def.name) => Some(&s.name),
        _ => None,
    }
}

impl<'a> Plan<'a> {
    fn new(registry: &'a SchemaRegistry, rt: &'a ResourceTypeDef, p: &Projection) -> Self {
        let resolve = |paths: &[AttrPath]| -> Vec<Target<'a>> {
            paths
                .iter()
                .filter_map(|p| target(registry, rt, p))
                .collect()
        };
        Plan {
            attributes: resolve(&p.attributes),
            excluded: resolve(&p.excluded),
            restrict: !p.attributes.is_empty(),
        }
    }

    fn mode(&self, ext: Option<&str>, def: &AttributeDef) -> Keep<'a> {
        if def.returned == Returned::Never {
            return Keep::Drop;
        }
        let named = self.attributes.iter().any(|t| covers(t, ext, def));
        if def.returned == Returned::Always {
            return Keep::Whole { named };
        }
        if self.excluded.iter().any(|t| covers(t, ext, def)) {
            return Keep::Drop;
        }
        if self.restrict {
            if named {
                return Keep::Whole { named };
            }
            let subs: Vec<&'a str> = self
                .attributes
                .iter()
                .filter_map(|t| sub_of(t, ext, def))
                .collect();
            return if subs.is_empty() {
                Keep::Drop
            } else {
                Keep::Subs(subs)
            };
        }
        match def.returned {
            Returned::Request => Keep::Drop,
            _ => Keep::Whole { named: false },
        }
    }

    fn keep_sub(
        &self,
        ext: Option<&str>,
        def: &AttributeDef,
        mode: &Keep<'_>,
        sub: &AttributeDef,
    ) -> bool {
        match sub.returned {
            Returned::Never => return false,
            Returned::Always => return !matches!(mode, Keep::Drop),
            _ => {}
        }
        let excluded = self
            .excluded
            .iter()
            .filter_map(|t| sub_of(t, ext, def))
            .any(|s| s.eq_ignore_ascii_case(&sub.name));
        if excluded {
            return false;
        }
        match mode {
            Keep::Drop => false,
            Keep::Whole { named } => *named || sub.returned != Returned::Request,
            Keep::Subs(names) => names.iter().any(|n| n.eq_ignore_ascii_case(&sub.name)),
        }
    }

    /// The projected value of one attribute; None when nothing of it is returned.
    fn apply(&self, ext: Option<&str>, def: &AttributeDef, value: &Value) -> Option<Value> {
        let mode = self.mode(ext, def);
        if mode == Keep::Drop {
            return None;
        }
        if def.ty != AttrType::Complex {
            return Some(value.clone());
        }
        let filter = |obj: &Map<String, Value>| -> Option<Value> {
            let kept: Map<String, Value> = obj
                .iter()
                .filter(|(k, _)| {
                    def.sub(k)
                        .is_some_and(|s| self.keep_sub(ext, def, &mode, s))
                })
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect();
            (!kept.is_empty()).then_some(Value::Object(kept))
        };
        match value {
            Value::Object(obj) => filter(obj),
            Value::Array(items) => {
                let kept: Vec<Value> = items
                    .iter()
                    .filter_map(|item| match item {
                        Value::Object(obj) => filter(obj),
                        other => Some(other.clone()),
                    })
                    .collect();
                (!kept.is_empty()).then_some(Value::Array(kept))
            }
            other => Some(other.clone()),
        }
    }
}

/// The response form of a stored document: `returned: never` removed, `always`
/// kept, `default` unless excluded or not asked for, `request` only when asked for.
///
/// `schemas` is copied unchanged; keys that are not attributes of `rt` are not
/// returned; an extension object with nothing left is dropped.
pub fn project(
    registry: &SchemaRegistry,
    rt: &ResourceTypeDef,
    resource: &Value,
    projection: &Projection,
) -> Value {
    let Value::Object(obj) = resource else {
        return resource.clone();
    };
    let plan = Plan::new(registry, rt, projection);
    let core = registry.schema(&rt.schema);
    let mut out = Map::new();
    for (k, v) in obj {
        if k.eq_ignore_ascii_case("schemas") {
            out.insert(k.clone(), v.clone());
            continue;
        }
        if let Some(ext) = registry.extension_of(rt, k) {
            let Value::Object(inner) = v else { continue };
            let projected: Map<String, Value> = inner
                .iter()
                .filter_map(|(ek, ev)| {
                    let def = ext.attr(ek)?;
                    Some((ek.clone(), plan.apply(Some(&ext.id), def, ev)?))
                })
                .collect();
            if !projected.is_empty() {
                out.insert(k.clone(), Value::Object(projected));
            }
            continue;
        }
        let def = core.and_then(|s| s.attr(k)).or_else(|| {
            registry
                .common_attributes()
                .iter()
                .find(|a| a.name.eq_ignore_ascii_case(k))
        });
        if let Some(pv) = def.and_then(|d| plan.apply(None, d, v)) {
            out.insert(k.clone(), pv);
        }
    }
    Value::Object(out)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use crate::schema::{ENTERPRISE_USER_SCHEMA as ENT, USER_SCHEMA};
    use serde_json::json;

    /// Splits like the grammar does, so these tests don't depend on the parser.
    fn path(s: &str) -> AttrPath {
        let (urn, rest) = match s.rsplit_once(':') {
            Some((u, r)) => (Some(u.to_string()), r),
            None => (None, s),
        };
        let (attr, sub) = match rest.split_once('.') {
            Some((a, b)) => (a, Some(b.to_string())),
            None => (rest, None),
        };
        AttrPath {
            urn,
            attr: attr.to_string(),
            sub_attr: sub,
        }
    }

    fn proj(attrs: &[&str], excl: &[&str]) -> Projection {
        Projection {
            attributes: attrs.iter().map(|s| path(s)).collect(),
            excluded: excl.iter().map(|s| path(s)).collect(),
        }
    }

    fn user() -> Value {
        json!({
            "schemas": [USER_SCHEMA, ENT],
            "id": "u1",
            "externalId": "e1",
            "userName": "bjensen",
            "name": {"givenName": "Barbara", "familyName": "Jensen"},
            "password": "hash",
            "emails": [{"value": "b@x", "type": "work"}, {"type": "home"}],
            "groups": [{"value": "g1", "display": "G"}],
            ENT: {"employeeNumber": "7", "department": "R&D"},
            "meta": {"resourceType": "User"},
        })
    }

    fn run(attrs: &[&str], excl: &[&str]) -> Value {
        let r = SchemaRegistry::standard();
        let rt = r.resource_type("User").unwrap();
        project(&r, rt, &user(), &proj(attrs, excl))
    }

    #[test]
    fn default_drops_never() {
        let mut want = user();
        want.as_object_mut().unwrap().remove("password");
        assert_eq!(run(&[], &[]), want);
        assert_eq!(
            run(&["password"], &[]),
            json!({"schemas": [USER_SCHEMA, ENT], "id": "u1"})
        );
    }

    #[test]
    fn attributes_keep_always() {
        assert_eq!(
            run(&["userName"], &[]),
            json!({"schemas": [USER_SCHEMA, ENT], "id": "u1", "userName": "bjensen"})
        );
        // Case-insensitive, core-qualified and unknown names.
        let v = run(
            &[&format!("{USER_SCHEMA}:USERNAME"), "members", "Meta"],
            &["id"],
        );
        assert_eq!(
            v,
            json!({"schemas": [USER_SCHEMA, ENT], "id": "u1", "userName": "bjensen",
                   "meta": {"resourceType": "User"}})
        );
        assert_eq!(run(&[&format!("{USER_SCHEMA}:id")], &[])["id"], "u1");
    }

    #[test]
    fn sub_attributes() {
        let v = run(&["name.GIVENNAME", "emails.value"], &[]);
        assert_eq!(v["name"], json!({"givenName": "Barbara"}));
        assert_eq!(v["emails"], json!([{"value": "b@x"}]));
        let v = run(&["name"], &[]);
        assert_eq!(v["name"], user()["name"]);
        let v = run(&[], &["name.familyName", "emails", "groups.display"]);
        assert_eq!(v["name"], json!({"givenName": "Barbara"}));
        assert!(v.get("emails").is_none());
        assert_eq!(v["groups"], json!([{"value": "g1"}]));
        let v = run(&[], &["emails.value", "emails.type"]);
        assert!(v.get("emails").is_none());
    }

    #[test]
    fn extensions() {
        let whole = run(&[ENT], &[]);
        assert_eq!(
            whole,
            json!({"schemas": [USER_SCHEMA, ENT], "id": "u1", ENT: user()[ENT]})
        );
        let one = run(&[&format!("{ENT}:employeeNumber")], &[]);
        assert_eq!(one[ENT], json!({"employeeNumber": "7"}));
        let bare = Projection {
            attributes: vec![AttrPath {
                urn: Some(ENT.to_lowercase()),
                attr: String::new(),
                sub_attr: None,
            }],
            excluded: vec![],
        };
        let r = SchemaRegistry::standard();
        let rt = r.resource_type("User").unwrap();
        assert_eq!(project(&r, rt, &user(), &bare), whole);
        assert!(run(&[], &[ENT]).get(ENT).is_none());
        let v = run(
            &[],
            &[
                &format!("{ENT}:employeeNumber"),
                &format!("{ENT}:department"),
            ],
        );
        assert!(v.get(ENT).is_none());
        assert_eq!(v["schemas"], json!([USER_SCHEMA, ENT]));
    }

    #[test]
    fn excluded_never_removes_always() {
        let v = run(&[], &["id", "userName"]);
        assert_eq!(v["id"], "u1");
        assert!(v.get("userName").is_none());
    }

    #[test]
    fn request_returned() {
        let r = SchemaRegistry::standard();
        let rt = r.resource_type("User").unwrap();
        let mut def = r
            .schema(USER_SCHEMA)
            .unwrap()
            .attr("title")
            .unwrap()
            .clone();
        def.returned = Returned::Request;
        let plan = Plan::new(&r, rt, &proj(&[], &[]));
        assert_eq!(plan.mode(None, &def), Keep::Drop);
        let plan = Plan::new(&r, rt, &proj(&["title"], &[]));
        assert_eq!(plan.mode(None, &def), Keep::Whole { named: true });
    }

    #[test]
    fn wants() {
        let r = SchemaRegistry::standard();
        let g = r.resource_type("Group").unwrap();
        let u = r.resource_type("User").unwrap();
        let members = path("members");
        let display = path("members.display");
        assert!(!proj(&[], &["members"]).wants(&r, g, &members));
        assert!(!proj(&["displayName"], &[]).wants(&r, g, &members));
        assert!(proj(&[], &[]).wants(&r, g, &members));
        let p = proj(&[], &["members.display"]);
        assert!(p.wants(&r, g, &members));
        assert!(!p.wants(&r, g, &display));
        assert!(p.wants(&r, g, &path("members.value")));
        assert!(proj(&["members.value"], &[]).wants(&r, g, &members));
        assert!(!proj(&["members.value"], &[]).wants(&r, g, &display));
        assert!(!proj(&[], &[]).wants(&r, u, &path("password")));
        assert!(!proj(&[], &[]).wants(&r, u, &members));
        assert!(proj(&[ENT], &[]).wants(&r, u, &path(&format!("{ENT}:manager"))));
        assert!(!proj(&["userName"], &[]).wants(&r, u, &path(ENT)));
    }

    #[test]
    fn parse_lists() {
        let p = Projection::parse(Some(" userName, name.givenName ,,"), None).unwrap();
        assert_eq!(p.attributes, vec![path("userName"), path("name.givenName")]);
        assert!(p.excluded.is_empty());
        let p = Projection::parse(None, Some(&format!("{ENT}:manager.value,emails"))).unwrap();
        assert_eq!(p.excluded[1], path("emails"));
        assert_eq!(p.excluded[0].sub_attr.as_deref(), Some("value"));
        // Whatever shape a bare extension URN parses to, it names the extension.
        let p = Projection::parse(Some(ENT), None).unwrap();
        let r = SchemaRegistry::standard();
        let u = r.resource_type("User").unwrap();
        assert!(p.wants(&r, u, &path(&format!("{ENT}:department"))));
        assert!(!p.wants(&r, u, &path("userName")));
    }
}
