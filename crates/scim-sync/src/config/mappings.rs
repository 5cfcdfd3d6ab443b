//! `sync.json`: the named mappings between object sets, each with its property
//! mappings, correlation queries, policies and safety settings.

use super::fields::Fields;
use crate::error::ConfigError;
use crate::path::PropertyPath;
use crate::situation::{Action, Policies, Situation};
use scim_proto::filter::{parse_attr_path, parse_filter, AttrPath, Filter};
use scim_proto::schema::{ResourceTypeDef, SchemaRegistry};
use serde_json::Value;
use std::time::Duration;

/// The two kinds of object a mapping moves.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ObjectKind {
    User,
    Group,
}

impl ObjectKind {
    /// The SCIM resource type the objects are, for schema lookups.
    pub fn resource_type(self) -> &'static str {
        match self {
            ObjectKind::User => "User",
            ObjectKind::Group => "Group",
        }
    }
}

/// `managed/user`, `managed/group` (alias `managed/role`): scimd's own store;
/// `system/<connector>/account|group`: a remote provider.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Endpoint {
    Managed(ObjectKind),
    System { connector: String, kind: ObjectKind },
}

impl Endpoint {
    pub fn parse(s: &str) -> Result<Endpoint, String> {
        let parts: Vec<&str> = s.split('/').collect();
        match parts.as_slice() {
            ["managed", "user"] => Ok(Endpoint::Managed(ObjectKind::User)),
            ["managed", "group" | "role"] => Ok(Endpoint::Managed(ObjectKind::Group)),
            ["system", connector, kind] if !connector.is_empty() => {
                let kind = match *kind {
                    "account" => ObjectKind::User,
                    "group" => ObjectKind::Group,
                    _ => return Err(format!("'{s}': a system object type is account or group")),
                };
                Ok(Endpoint::System {
                    connector: (*connector).to_string(),
                    kind,
                })
            }
            _ => Err(format!(
                "'{s}' is not managed/user, managed/group, managed/role or system/<connector>/account|group"
            )),
        }
    }

    pub fn kind(&self) -> ObjectKind {
        match self {
            Endpoint::Managed(k) | Endpoint::System { kind: k, .. } => *k,
        }
    }

    /// The connector a `system/…` endpoint goes through.
    pub fn connector(&self) -> Option<&str> {
        match self {
            Endpoint::Managed(_) => None,
            Endpoint::System { connector, .. } => Some(connector),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Transform {
    Lower,
    Upper,
    Trim,
    /// A Luau expression of `value` (the source value) and `source` (the source
    /// object), evaluated by the runtime's [`crate::mapping::Expressions`].
    Expression(String),
}

impl Transform {
    /// Apply a keyword transform to a string, or to each string of an array;
    /// other values pass through, and so does everything for an expression
    /// (which the runtime evaluates).
    pub fn apply(&self, v: Value) -> Value {
        let f = match self {
            Transform::Lower => str::to_lowercase,
            Transform::Upper => str::to_uppercase,
            Transform::Trim => |s: &str| s.trim().to_string(),
            Transform::Expression(_) => return v,
        };
        keyword(f, v)
    }
}

fn keyword(f: fn(&str) -> String, v: Value) -> Value {
    match v {
        Value::String(s) => Value::String(f(&s)),
        Value::Array(items) => Value::Array(items.into_iter().map(|i| keyword(f, i)).collect()),
        other => other,
    }
}

/// One property mapping: the source value (or the default when the source has
/// none), transformed, written at the target path.
#[derive(Debug, Clone, PartialEq)]
pub struct Property {
    pub source: Option<PropertyPath>,
    pub target: PropertyPath,
    pub default: Option<Value>,
    pub transform: Option<Transform>,
}

/// One correlation query: the target attribute whose value, taken from the mapped
/// source, must equal the target's.
#[derive(Debug, Clone, PartialEq)]
pub struct Correlation {
    pub path: PropertyPath,
}

impl Correlation {
    pub fn attr(&self) -> &AttrPath {
        self.path.attr()
    }
}

/// The deletion threshold: a run that would delete (or disable) more than this
/// waits for an explicit allow.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MaxDeletes {
    Count(u64),
    /// Percent of the target objects.
    Percent(u8),
}

impl MaxDeletes {
    /// The largest number of deletes allowed among `targets` objects.
    pub fn limit(self, targets: usize) -> u64 {
        match self {
            MaxDeletes::Count(n) => n,
            MaxDeletes::Percent(p) => (targets as u64).saturating_mul(u64::from(p)) / 100,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Schedule {
    /// `every 5m` (s, m, h or d).
    Every(Duration),
    /// A five-field cron expression in UTC (`crate::cron`).
    Cron(String),
}

#[derive(Debug, Clone, PartialEq)]
pub struct Mapping {
    pub name: String,
    pub source: Endpoint,
    pub target: Endpoint,
    pub properties: Vec<Property>,
    pub correlation: Vec<Correlation>,
    pub policies: Policies,
    /// The raw filter text (for display) and its parsed form.
    pub source_filter: Option<(String, Filter)>,
    pub run_target_phase: bool,
    /// The forward mapping whose links this (reverse) mapping shares.
    pub links: Option<String>,
    pub schedule: Option<Schedule>,
    pub max_deletes: Option<MaxDeletes>,
    pub disable_before_delete: bool,
    /// A digest of the mapping's configuration: a link stamped under another
    /// configuration is reconciled again (`crate::links::stamp`).
    pub digest: String,
}

impl Mapping {
    /// The name of the link table: the forward mapping's.
    pub fn link_set(&self) -> &str {
        self.links.as_deref().unwrap_or(&self.name)
    }

    /// Whether links are stored the other way round (this is a reverse mapping).
    pub fn is_reverse(&self) -> bool {
        self.links.is_some()
    }

    /// The Luau expressions of the transforms, for the runtime to compile.
    pub fn expressions(&self) -> impl Iterator<Item = &str> {
        self.properties.iter().filter_map(|p| match &p.transform {
            Some(Transform::Expression(e)) => Some(e.as_str()),
            _ => None,
        })
    }

    /// The `members` property, when this mapping carries group memberships.
    pub fn maps_members(&self) -> bool {
        self.properties.iter().any(|p| p.target.is_members())
    }

    /// The top-level attributes a run reads of the source objects (for a search's
    /// `attributes`), or None for all of them: a `sourceFilter` may name any.
    /// `meta` always: its version goes into the link's stamp.
    pub fn source_attributes(&self) -> Option<Vec<String>> {
        if self.source_filter.is_some() {
            return None;
        }
        let mut out = top_level(self.properties.iter().filter_map(|p| p.source.as_ref()));
        with_meta(&mut out);
        Some(out)
    }

    /// The top-level attributes a run reads of the target objects: what it maps
    /// (to compare), what it correlates on, and `active` when it disables before
    /// deleting.
    pub fn target_attributes(&self) -> Vec<String> {
        let mut out = top_level(
            self.properties
                .iter()
                .map(|p| &p.target)
                .chain(self.correlation.iter().map(|c| &c.path)),
        );
        if self.disable_before_delete && !out.iter().any(|a| a.eq_ignore_ascii_case("active")) {
            out.push("active".into());
        }
        with_meta(&mut out);
        out
    }
}

fn with_meta(attributes: &mut Vec<String>) {
    if !attributes.iter().any(|a| a.eq_ignore_ascii_case("meta")) {
        attributes.push("meta".into());
    }
}

/// Each path's top-level attribute (`name` of `name.givenName`, `emails` of
/// `emails[type eq "work"].value`, `urn:…:User:department`), once, in order.
fn top_level<'a>(paths: impl Iterator<Item = &'a PropertyPath>) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    for p in paths {
        let a = p.attr();
        let name = match &a.urn {
            Some(urn) => format!("{urn}:{}", a.attr),
            None => a.attr.clone(),
        };
        if name != "id" && !out.iter().any(|o| o.eq_ignore_ascii_case(&name)) {
            out.push(name);
        }
    }
    out
}

#[derive(Debug, Clone, PartialEq)]
pub struct SyncConfig {
    pub mappings: Vec<Mapping>,
}

impl SyncConfig {
    /// Parse and validate `sync.json`; `file` names it in errors.
    pub fn parse(
        file: &str,
        text: &str,
        registry: &SchemaRegistry,
    ) -> Result<SyncConfig, ConfigError> {
        let root: Value = serde_json::from_str(text)
            .map_err(|e| ConfigError::new(file, format!("not valid JSON: {e}")))?;
        let top = Fields::of(file, "", &root)?;
        let raw = match top.get("mappings") {
            Some(Value::Array(items)) => items,
            _ => return Err(top.error("mappings", "must be an array")),
        };
        let mut mappings = Vec::with_capacity(raw.len());
        for (i, item) in raw.iter().enumerate() {
            let label = item
                .get("name")
                .and_then(Value::as_str)
                .map_or_else(|| format!("#{i}"), str::to_string);
            let mapping = parse_mapping(file, item, registry).map_err(|e| e.in_mapping(&label))?;
            if mappings.iter().any(|m: &Mapping| m.name == mapping.name) {
                return Err(
                    ConfigError::field(file, "name", "is used by another mapping")
                        .in_mapping(&label),
                );
            }
            mappings.push(mapping);
        }
        check_links(file, &mappings)?;
        Ok(SyncConfig { mappings })
    }

    pub fn mapping(&self, name: &str) -> Option<&Mapping> {
        self.mappings.iter().find(|m| m.name == name)
    }

    /// Where a group mapping's member ids are translated: the link set of the user
    /// mapping between the same two places (scimd or a connector), and whether to
    /// read it reversed. `None` when no user mapping joins those places.
    pub fn member_links_of(&self, group: &Mapping) -> Option<(&str, bool)> {
        let (from, to) = places(group);
        let users = || {
            self.mappings
                .iter()
                .filter(|m| m.source.kind() == ObjectKind::User)
        };
        if let Some(u) = users().find(|u| places(u) == (from, to)) {
            return Some((u.link_set(), u.is_reverse()));
        }
        users()
            .find(|u| places(u) == (to, from))
            .map(|u| (u.link_set(), !u.is_reverse()))
    }

    /// Mappings naming a connector not in `known`, as errors naming the field.
    pub fn check_connectors(&self, file: &str, known: &[&str]) -> Result<(), ConfigError> {
        for m in &self.mappings {
            for (field, ep) in [("source", &m.source), ("target", &m.target)] {
                if let Some(c) = ep.connector().filter(|c| !known.contains(c)) {
                    return Err(ConfigError::field(
                        file,
                        field,
                        format!("no connector named '{c}'"),
                    )
                    .in_mapping(&m.name));
                }
            }
        }
        Ok(())
    }
}

/// Where a mapping reads from and writes to: scimd (`None`) or a connector.
fn places(m: &Mapping) -> (Option<&str>, Option<&str>) {
    (m.source.connector(), m.target.connector())
}

fn parse_mapping(
    file: &str,
    item: &Value,
    registry: &SchemaRegistry,
) -> Result<Mapping, ConfigError> {
    let f = Fields::of(file, "", item)?;
    let name = f.required_str("name")?;
    let source = Endpoint::parse(&f.required_str("source")?).map_err(|m| f.error("source", m))?;
    let target = Endpoint::parse(&f.required_str("target")?).map_err(|m| f.error("target", m))?;
    if source.kind() != target.kind() {
        return Err(f.error("target", "must hold the same kind of object as the source"));
    }
    let source_rt = resource_type(registry, source.kind(), &f)?;
    let target_rt = resource_type(registry, target.kind(), &f)?;
    let properties = properties(file, &f, registry, source_rt, target_rt)?;
    if target.kind() == ObjectKind::User && properties.iter().any(|p| p.target.is_members()) {
        return Err(f.error("properties", "'members' can only be mapped between groups"));
    }
    Ok(Mapping {
        name,
        source,
        target,
        properties,
        correlation: correlation(&f, registry, target_rt)?,
        policies: policies(file, &f)?,
        source_filter: source_filter(&f, registry, source_rt)?,
        run_target_phase: f.bool_or("runTargetPhase", true)?,
        links: f.optional_str("links")?,
        schedule: match f.optional_str("schedule")? {
            None => None,
            Some(s) => Some(parse_schedule(&s).map_err(|m| f.error("schedule", m))?),
        },
        max_deletes: max_deletes(&f)?,
        disable_before_delete: f.bool_or("disableBeforeDelete", false)?,
        digest: digest(item),
    })
}

/// The first 16 hex digits of the SHA-256 of the mapping's JSON text (keys in
/// the file's order: reordering them costs one full re-run, nothing else).
fn digest(item: &Value) -> String {
    use sha2::{Digest, Sha256};
    let hash = Sha256::digest(item.to_string().as_bytes());
    hash.iter().take(8).map(|b| format!("{b:02x}")).collect()
}

fn resource_type<'r>(
    registry: &'r SchemaRegistry,
    kind: ObjectKind,
    f: &Fields<'_>,
) -> Result<&'r ResourceTypeDef, ConfigError> {
    registry.resource_type(kind.resource_type()).ok_or_else(|| {
        f.error(
            "source",
            format!("the schema has no {} type", kind.resource_type()),
        )
    })
}

fn properties(
    file: &str,
    f: &Fields<'_>,
    registry: &SchemaRegistry,
    source_rt: &ResourceTypeDef,
    target_rt: &ResourceTypeDef,
) -> Result<Vec<Property>, ConfigError> {
    let items = match f.get("properties") {
        None => return Ok(Vec::new()),
        Some(Value::Array(items)) => items,
        Some(_) => return Err(f.error("properties", "must be an array")),
    };
    items
        .iter()
        .enumerate()
        .map(|(i, item)| {
            let prefix = format!("properties[{i}].");
            let p = Fields::of(file, &prefix, item)?;
            property(&p, registry, source_rt, target_rt)
        })
        .collect()
}

fn property(
    p: &Fields<'_>,
    registry: &SchemaRegistry,
    source_rt: &ResourceTypeDef,
    target_rt: &ResourceTypeDef,
) -> Result<Property, ConfigError> {
    let target_raw = p.required_str("target")?;
    let target =
        PropertyPath::parse(&target_raw, registry, target_rt).map_err(|m| p.error("target", m))?;
    target.check_writable().map_err(|m| p.error("target", m))?;
    let source = match p.optional_str("source")? {
        None => None,
        Some(s) => {
            Some(PropertyPath::parse(&s, registry, source_rt).map_err(|m| p.error("source", m))?)
        }
    };
    let default = p.get("default").cloned();
    if source.is_none() && default.is_none() {
        return Err(p.error(
            "source",
            "is missing (a property needs a source or a default)",
        ));
    }
    if target.is_members() != source.as_ref().is_some_and(PropertyPath::is_members) {
        return Err(p.error("target", "'members' maps only to 'members'"));
    }
    let transform = match p.optional_str("transform")?.as_deref() {
        None => None,
        Some("lower") => Some(Transform::Lower),
        Some("upper") => Some(Transform::Upper),
        Some("trim") => Some(Transform::Trim),
        Some(e) if e.trim().is_empty() => {
            return Err(p.error(
                "transform",
                "is empty (lower, upper, trim or a Luau expression)",
            ))
        }
        Some(e) => Some(Transform::Expression(e.to_string())),
    };
    Ok(Property {
        source,
        target,
        default,
        transform,
    })
}

fn correlation(
    f: &Fields<'_>,
    registry: &SchemaRegistry,
    target_rt: &ResourceTypeDef,
) -> Result<Vec<Correlation>, ConfigError> {
    let items = match f.get("correlationQuery") {
        None => return Ok(Vec::new()),
        Some(Value::String(s)) => vec![Value::String(s.clone())],
        Some(Value::Array(items)) => items.clone(),
        Some(_) => return Err(f.error("correlationQuery", "must be an array of attribute names")),
    };
    items
        .iter()
        .map(|item| {
            let raw = item.as_str().ok_or_else(|| {
                f.error("correlationQuery", "must be an array of attribute names")
            })?;
            // Correlation compares through the filter evaluator, so the attribute must
            // be one the schema knows.
            let attr = parse_attr_path(raw).map_err(|e| f.error("correlationQuery", e.detail))?;
            registry
                .resolve(target_rt, &attr)
                .map_err(|e| f.error("correlationQuery", e.detail))?;
            let path = PropertyPath::parse(raw, registry, target_rt)
                .map_err(|m| f.error("correlationQuery", m))?;
            Ok(Correlation { path })
        })
        .collect()
}

fn policies(file: &str, f: &Fields<'_>) -> Result<Policies, ConfigError> {
    let mut out = Policies::default();
    let items = match f.get("policies") {
        None => return Ok(out),
        Some(Value::Array(items)) => items,
        Some(_) => return Err(f.error("policies", "must be an array")),
    };
    for (i, item) in items.iter().enumerate() {
        let prefix = format!("policies[{i}].");
        let p = Fields::of(file, &prefix, item)?;
        let situation = p.required_str("situation")?;
        let situation = Situation::parse(&situation)
            .ok_or_else(|| p.error("situation", format!("unknown situation '{situation}'")))?;
        let action = p.required_str("action")?;
        let action = Action::parse(&action)
            .ok_or_else(|| p.error("action", format!("unknown action '{action}'")))?;
        out.set(situation, action)
            .map_err(|m| p.error("action", m))?;
    }
    Ok(out)
}

fn source_filter(
    f: &Fields<'_>,
    registry: &SchemaRegistry,
    source_rt: &ResourceTypeDef,
) -> Result<Option<(String, Filter)>, ConfigError> {
    let Some(text) = f.optional_str("sourceFilter")? else {
        return Ok(None);
    };
    let filter = parse_filter(&text).map_err(|e| f.error("sourceFilter", e.detail))?;
    scim_proto::filter::eval::validate_filter(&filter, registry, source_rt)
        .map_err(|e| f.error("sourceFilter", e.detail))?;
    Ok(Some((text, filter)))
}

fn max_deletes(f: &Fields<'_>) -> Result<Option<MaxDeletes>, ConfigError> {
    let bad = || {
        f.error(
            "maxDeletes",
            "must be a whole number or a percentage like \"10%\"",
        )
    };
    match f.get("maxDeletes") {
        None => Ok(None),
        Some(Value::Number(n)) => n
            .as_u64()
            .map(|n| Some(MaxDeletes::Count(n)))
            .ok_or_else(bad),
        Some(Value::String(s)) => {
            let p = s.trim().strip_suffix('%').ok_or_else(bad)?;
            let p: u8 = p.trim().parse().map_err(|_| bad())?;
            if p > 100 {
                return Err(bad());
            }
            Ok(Some(MaxDeletes::Percent(p)))
        }
        Some(_) => Err(bad()),
    }
}

fn parse_schedule(s: &str) -> Result<Schedule, String> {
    let s = s.trim();
    if let Some(rest) = s.strip_prefix("every ") {
        let rest = rest.trim();
        let split = rest
            .find(|c: char| !c.is_ascii_digit())
            .unwrap_or(rest.len());
        let (num, unit) = rest.split_at(split);
        let n: u64 = num
            .parse()
            .map_err(|_| format!("'{s}': expected e.g. \"every 5m\""))?;
        let secs = match unit.trim() {
            "s" => n,
            "m" => n.saturating_mul(60),
            "h" => n.saturating_mul(3600),
            "d" => n.saturating_mul(86_400),
            _ => return Err(format!("'{s}': the unit is s, m, h or d")),
        };
        if secs == 0 {
            return Err(format!("'{s}': the interval must be positive"));
        }
        return Ok(Schedule::Every(Duration::from_secs(secs)));
    }
    let fields: Vec<&str> = s.split_whitespace().collect();
    if fields.len() != 5 {
        return Err(format!(
            "'{s}' is neither \"every N(s|m|h|d)\" nor a five-field cron expression"
        ));
    }
    let expr = fields.join(" ");
    crate::cron::Cron::parse(&expr)?;
    Ok(Schedule::Cron(expr))
}

/// A reverse mapping's `links` must name a forward mapping (one without `links`)
/// that goes the other way.
fn check_links(file: &str, mappings: &[Mapping]) -> Result<(), ConfigError> {
    for m in mappings {
        let Some(forward) = &m.links else { continue };
        let err = |msg: String| ConfigError::field(file, "links", msg).in_mapping(&m.name);
        let f = mappings
            .iter()
            .find(|x| &x.name == forward)
            .ok_or_else(|| err(format!("no mapping named '{forward}'")))?;
        if f.links.is_some() {
            return Err(err(format!(
                "'{forward}' itself shares another mapping's links"
            )));
        }
        if f.source != m.target || f.target != m.source {
            return Err(err(format!(
                "'{forward}' must go the other way (from this mapping's target to its source)"
            )));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn parse(v: Value) -> Result<SyncConfig, ConfigError> {
        SyncConfig::parse("sync.json", &v.to_string(), &SchemaRegistry::standard())
    }

    fn forward() -> Value {
        json!({"name": "systemScimAccount_managedUser", "source": "system/scim/account",
               "target": "managed/user",
               "properties": [
                   {"source": "userName", "target": "userName", "transform": "lower"},
                   {"source": "emails[primary eq true].value",
                    "target": "emails[type eq \"work\"].value"},
                   {"target": "title", "default": "Staff"}],
               "correlationQuery": ["externalId", "userName"],
               "policies": [{"situation": "MISSING", "action": "CREATE"}],
               "sourceFilter": "active eq true", "runTargetPhase": false,
               "schedule": "every 5m", "maxDeletes": "10%", "disableBeforeDelete": true})
    }

    fn reverse() -> Value {
        json!({"name": "managedUser_systemScimAccount", "source": "managed/user",
               "target": "system/scim/account", "links": "systemScimAccount_managedUser",
               "properties": [{"source": "userName", "target": "userName"}],
               "maxDeletes": 5, "schedule": "*/10 * * * *"})
    }

    fn error_of(mut mapping: Value, field: &str, bad: Value) -> ConfigError {
        mapping[field] = bad;
        parse(json!({"mappings": [mapping]})).unwrap_err()
    }

    #[test]
    fn a_forward_and_reverse_pair_parses() {
        let c = parse(json!({"mappings": [forward(), reverse()]})).unwrap();
        let f = c.mapping("systemScimAccount_managedUser").unwrap();
        assert_eq!(
            f.source,
            Endpoint::System {
                connector: "scim".into(),
                kind: ObjectKind::User
            }
        );
        assert_eq!(f.properties.len(), 3);
        assert_eq!(f.properties[0].transform, Some(Transform::Lower));
        assert_eq!(f.correlation.len(), 2);
        assert_eq!(f.policies.action_for(Situation::Missing), Action::Create);
        assert!(f.source_filter.is_some());
        assert!(!f.run_target_phase);
        assert_eq!(f.schedule, Some(Schedule::Every(Duration::from_secs(300))));
        assert_eq!(f.max_deletes, Some(MaxDeletes::Percent(10)));
        assert!(f.disable_before_delete);
        assert_eq!(f.link_set(), "systemScimAccount_managedUser");
        let r = c.mapping("managedUser_systemScimAccount").unwrap();
        assert!(r.is_reverse());
        assert_eq!(r.link_set(), "systemScimAccount_managedUser");
        assert!(r.run_target_phase);
        assert_eq!(r.max_deletes, Some(MaxDeletes::Count(5)));
        assert_eq!(r.schedule, Some(Schedule::Cron("*/10 * * * *".into())));
        assert!(c.check_connectors("sync.json", &["scim"]).is_ok());
        let e = c.check_connectors("sync.json", &["other"]).unwrap_err();
        assert_eq!(e.field.as_deref(), Some("source"));
    }

    #[test]
    fn endpoints_and_the_role_alias() {
        assert_eq!(
            Endpoint::parse("managed/role"),
            Ok(Endpoint::Managed(ObjectKind::Group))
        );
        assert_eq!(
            Endpoint::parse("system/x/group").map(|e| e.kind()),
            Ok(ObjectKind::Group)
        );
        for bad in ["managed/device", "system//account", "system/x/role", "user"] {
            assert!(Endpoint::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn errors_name_file_mapping_and_field() {
        let cases = [
            ("source", json!("managed/thing"), "source"),
            ("target", json!("managed/group"), "target"),
            ("sourceFilter", json!("active eq"), "sourceFilter"),
            ("sourceFilter", json!("nosuch eq 1"), "sourceFilter"),
            ("correlationQuery", json!(["nosuch"]), "correlationQuery"),
            ("maxDeletes", json!("120%"), "maxDeletes"),
            ("maxDeletes", json!(-1), "maxDeletes"),
            ("schedule", json!("every week"), "schedule"),
            ("runTargetPhase", json!("yes"), "runTargetPhase"),
            (
                "policies",
                json!([{"situation": "CONFIRMED", "action": "CREATE"}]),
                "policies[0].action",
            ),
            (
                "policies",
                json!([{"situation": "LOST", "action": "CREATE"}]),
                "policies[0].situation",
            ),
            (
                "properties",
                json!([{"source": "userName", "target": "emails[type co \"w\"].value"}]),
                "properties[0].target",
            ),
            (
                "properties",
                json!([{"target": "userName"}]),
                "properties[0].source",
            ),
            (
                "properties",
                json!([{"source": "userName", "target": "userName", "transform": ""}]),
                "properties[0].transform",
            ),
        ];
        for (field, bad, want) in cases {
            let e = error_of(forward(), field, bad.clone());
            assert_eq!(e.file, "sync.json");
            assert_eq!(e.mapping.as_deref(), Some("systemScimAccount_managedUser"));
            assert_eq!(e.field.as_deref(), Some(want), "{field}={bad}: {e}");
        }
    }

    #[test]
    fn a_transform_that_is_no_keyword_is_a_luau_expression() {
        let mut f = forward();
        f["properties"] = json!([{"source": "userName", "target": "userName",
                                  "transform": "string.lower(value)"}]);
        let c = parse(json!({"mappings": [f]})).unwrap();
        assert_eq!(
            c.mappings[0].properties[0].transform,
            Some(Transform::Expression("string.lower(value)".into()))
        );
        assert_eq!(
            c.mappings[0].expressions().collect::<Vec<_>>(),
            ["string.lower(value)"]
        );
        let e = error_of(
            forward(),
            "properties",
            json!([{"source": "userName", "target": "userName", "transform": " "}]),
        );
        assert_eq!(e.field.as_deref(), Some("properties[0].transform"), "{e}");
    }

    #[test]
    fn links_must_name_the_opposite_forward_mapping() {
        let mut r = reverse();
        r["links"] = json!("nope");
        let e = parse(json!({"mappings": [forward(), r]})).unwrap_err();
        assert_eq!(e.field.as_deref(), Some("links"));
        let mut r = reverse();
        r["source"] = json!("system/scim/account");
        r["target"] = json!("managed/user");
        r["name"] = json!("same_direction");
        let e = parse(json!({"mappings": [forward(), r]})).unwrap_err();
        assert!(e.to_string().contains("other way"), "{e}");
    }

    #[test]
    fn duplicate_names_and_members_on_users_are_refused() {
        let e = parse(json!({"mappings": [forward(), forward()]})).unwrap_err();
        assert_eq!(e.field.as_deref(), Some("name"));
        let e = error_of(
            forward(),
            "properties",
            json!([{"source": "members", "target": "members"}]),
        );
        assert_eq!(e.field.as_deref(), Some("properties"));
    }

    #[test]
    fn group_members_translate_through_the_user_links_between_the_same_places() {
        let groups = json!({"name": "g_back", "source": "managed/role",
                            "target": "system/scim/group",
                            "properties": [{"source": "members", "target": "members"}]});
        // Only the forward user mapping exists: read its links reversed.
        let c = parse(json!({"mappings": [forward(), groups.clone()]})).unwrap();
        let g = c.mapping("g_back").unwrap();
        assert!(g.maps_members());
        assert_eq!(
            c.member_links_of(g),
            Some(("systemScimAccount_managedUser", true))
        );
        // With the reverse user mapping too, the same direction is preferred; its
        // links are the same set, read the same way.
        let c = parse(json!({"mappings": [forward(), reverse(), groups]})).unwrap();
        let g = c.mapping("g_back").unwrap();
        assert_eq!(
            c.member_links_of(g),
            Some(("systemScimAccount_managedUser", true))
        );
        let lone = json!({"name": "g", "source": "system/other/group", "target": "managed/group"});
        let c = parse(json!({"mappings": [forward(), lone]})).unwrap();
        assert_eq!(c.member_links_of(c.mapping("g").unwrap()), None);
    }

    #[test]
    fn runs_read_only_the_attributes_they_map_and_correlate_on() {
        let c = parse(json!({"mappings": [forward(), reverse()]})).unwrap();
        let f = c.mapping("systemScimAccount_managedUser").unwrap();
        // A sourceFilter may name anything: the sources are read whole.
        assert_eq!(f.source_attributes(), None);
        assert_eq!(
            f.target_attributes(),
            [
                "userName",
                "emails",
                "title",
                "externalId",
                "active",
                "meta"
            ]
        );
        let r = c.mapping("managedUser_systemScimAccount").unwrap();
        assert_eq!(
            r.source_attributes(),
            Some(vec!["userName".to_string(), "meta".to_string()])
        );
        let ext = json!({"name": "x", "source": "managed/user", "target": "system/scim/account",
            "properties": [
                {"source": "id", "target": "externalId"},
                {"source": "name.givenName", "target": "name.givenName"},
                {"source": "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:department",
                 "target": "title"}]});
        let c = parse(json!({"mappings": [ext]})).unwrap();
        assert_eq!(
            c.mappings[0].source_attributes().unwrap(),
            [
                "name",
                "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:department",
                "meta"
            ]
        );
        // The digest follows the configuration.
        let again = parse(json!({"mappings": [forward()]})).unwrap();
        assert_eq!(again.mappings[0].digest, f.digest);
        assert_ne!(r.digest, f.digest);
        assert_eq!(f.digest.len(), 16);
    }

    #[test]
    fn the_deletion_limit_of_a_percentage_rounds_down() {
        assert_eq!(MaxDeletes::Percent(10).limit(25), 2);
        assert_eq!(MaxDeletes::Count(3).limit(1000), 3);
    }
}
