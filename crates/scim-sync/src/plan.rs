//! Planning a run: from in-memory source objects, target objects and the link
//! table, the decision for every object (situation, action, target, changes).
//! Nothing is written here; the runtime carries the plan out, and a dry run
//! reports it as is.

use crate::config::{Correlation, Mapping, ObjectKind};
use crate::links::{stamp, version_of, Link, LinkIndex};
use crate::mapping::{
    attribute_ops, map_source, member_diff, member_ids, member_ops, member_values, Expressions,
    Mapped,
};
use crate::ops::PatchOp;
use crate::path::get_ci;
use crate::situation::{
    classify_source, classify_target, Action, Correlated, Situation, SourceFacts,
};
use scim_proto::filter::{matches, CompareOp, Filter, Literal};
use scim_proto::schema::{ResourceTypeDef, SchemaRegistry};
use serde::Serialize;
use serde_json::{json, Map, Value};
use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::OnceLock;

/// Everything a run is planned from.
#[derive(Debug, Clone, Copy)]
pub struct PlanInput<'a> {
    pub mapping: &'a Mapping,
    pub registry: &'a SchemaRegistry,
    pub sources: &'a [Value],
    pub targets: &'a [Value],
    /// The mapping's link table (`mapping.link_set()`), forward orientation.
    pub links: &'a [Link],
    /// For group mappings: the links of the members' own mapping, seen from this
    /// mapping's source to its target (`SyncConfig::member_links_of`).
    pub member_links: &'a LinkIndex,
    pub dry_run: bool,
    /// Evaluates the mapping's Luau transform expressions.
    pub expressions: &'a dyn Expressions,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Phase {
    Source,
    Target,
}

/// What carrying out a decision writes to the target.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase", tag = "type", content = "value")]
pub enum Change {
    None,
    /// POST this document.
    Create(Value),
    /// PATCH with these operations (never empty).
    Patch(Vec<PatchOp>),
    Delete,
    /// `disableBeforeDelete`: set `active` false now; a later run deletes.
    Disable(Vec<PatchOp>),
}

/// What carrying out a decision does to the link table.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase", tag = "type", content = "link")]
pub enum LinkChange {
    None,
    Add(Link),
    /// Link the source to the object the create returns (replacing a stale link).
    AddAfterCreate,
    Remove(Link),
}

#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Decision {
    pub phase: Phase,
    pub situation: Situation,
    pub action: Action,
    pub source_id: Option<String>,
    pub target_id: Option<String>,
    pub change: Change,
    pub link: LinkChange,
    /// Source members left out because they have no link yet.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub unlinked_members: Vec<String>,
    /// Why the object could not be planned (e.g. it has no id).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// The versions the source and the target had when planned, for the
    /// link's stamp (`crate::links::stamp`).
    #[serde(skip)]
    pub source_version: Option<String>,
    #[serde(skip)]
    pub target_version: Option<String>,
}

impl Decision {
    /// The stamp of a pair this decision leaves in step without writing (a
    /// CONFIRMED source whose target needs no change), when both versions are known.
    pub fn in_step_stamp(&self, m: &Mapping) -> Option<String> {
        let in_step = self.situation == Situation::Confirmed
            && self.change == Change::None
            && self.error.is_none();
        match (&self.source_version, &self.target_version) {
            (Some(s), Some(t)) if in_step => Some(stamp(m, s, t)),
            _ => None,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Plan {
    pub mapping: String,
    pub dry_run: bool,
    pub decisions: Vec<Decision>,
    /// Deletes and disables the plan makes.
    pub deletes: u64,
    /// The mapping's threshold for this many targets, if it has one.
    pub max_deletes: Option<u64>,
    /// More deletes than allowed: the run stops before them and waits for
    /// `allowDeletes`.
    pub needs_allow_deletes: bool,
}

impl Plan {
    pub fn situation_summary(&self) -> BTreeMap<Situation, u64> {
        let mut out = BTreeMap::new();
        for d in &self.decisions {
            *out.entry(d.situation).or_insert(0) += 1;
        }
        out
    }

    /// Decisions that write to the target.
    pub fn changes(&self) -> impl Iterator<Item = &Decision> {
        self.decisions.iter().filter(|d| d.change != Change::None)
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PlanError {
    #[error("the schema registry has no {0} resource type")]
    NoResourceType(&'static str),
}

/// Plan one run of `input.mapping`.
pub fn plan(input: &PlanInput<'_>) -> Result<Plan, PlanError> {
    let m = input.mapping;
    let source_rt = resource_type(input.registry, m.source.kind())?;
    let target_rt = resource_type(input.registry, m.target.kind())?;
    let mut run = Run {
        input,
        target_rt,
        links: LinkIndex::new(input.links, m.is_reverse()),
        targets: input
            .targets
            .iter()
            .filter_map(|t| Some((id_of(t)?, t)))
            .collect(),
        correlation: m.correlation.iter().map(|q| (q, OnceLock::new())).collect(),
        seen: HashSet::new(),
        claimed: HashMap::new(),
        decisions: Vec::with_capacity(input.sources.len()),
    };
    // Linked sources need nothing other sources decide: they are decided on a
    // few threads; the others (correlation, claims) then in source order.
    for (source, prepared) in input.sources.iter().zip(prepare(&run, source_rt)) {
        let (d, correlated) = match prepared {
            Prepared::Decided(d) => (d, Vec::new()),
            Prepared::Mapped(mapped, qualifies) => run.decide(source, mapped, qualifies),
        };
        run.record(&d, correlated);
        run.decisions.push(d);
    }
    if m.run_target_phase {
        run.target_phase();
    }
    Ok(finish(input, run.decisions))
}

/// Sources below this many are prepared on the calling thread.
const PARALLEL_FROM: usize = 2000;

/// A source after the parallel pass.
enum Prepared {
    /// Linked: its decision is made.
    Decided(Decision),
    /// Its mapped document and whether it qualifies; the decision needs the
    /// sequential pass.
    Mapped(Mapped, bool),
}

/// Each source mapped and, when linked, decided, in source order, on as many
/// threads as the machine has (up to 4).
fn prepare(run: &Run<'_, '_>, rt: &ResourceTypeDef) -> Vec<Prepared> {
    let input = run.input;
    let one = |source: &Value| {
        let qualifies = input
            .mapping
            .source_filter
            .as_ref()
            .is_none_or(|(_, f)| matches(f, source, input.registry, rt));
        let mapped = map_source(input.mapping, source, input.expressions);
        let linked = id_of(source).is_some_and(|id| run.links.target_of(id).is_some());
        if linked {
            Prepared::Decided(run.decide(source, mapped, qualifies).0)
        } else {
            Prepared::Mapped(mapped, qualifies)
        }
    };
    let threads = std::thread::available_parallelism().map_or(1, |n| n.get().min(4));
    if threads == 1 || input.sources.len() < PARALLEL_FROM {
        return input.sources.iter().map(one).collect();
    }
    let chunk = input.sources.len().div_ceil(threads);
    std::thread::scope(|s| {
        let parts: Vec<_> = input
            .sources
            .chunks(chunk)
            .map(|c| s.spawn(move || c.iter().map(one).collect::<Vec<_>>()))
            .collect();
        parts.into_iter().flat_map(joined).collect()
    })
}

/// A scoped thread's result; its panic goes on in the caller.
fn joined<T>(h: std::thread::ScopedJoinHandle<'_, T>) -> T {
    h.join().unwrap_or_else(|p| std::panic::resume_unwind(p))
}

fn resource_type(
    registry: &SchemaRegistry,
    kind: ObjectKind,
) -> Result<&ResourceTypeDef, PlanError> {
    registry
        .resource_type(kind.resource_type())
        .ok_or(PlanError::NoResourceType(kind.resource_type()))
}

fn id_of(doc: &Value) -> Option<&str> {
    get_ci(doc, "id").and_then(Value::as_str)
}

fn finish(input: &PlanInput<'_>, decisions: Vec<Decision>) -> Plan {
    let deletes = decisions
        .iter()
        .filter(|d| matches!(d.change, Change::Delete | Change::Disable(_)))
        .count() as u64;
    let max_deletes = input
        .mapping
        .max_deletes
        .map(|m| m.limit(input.targets.len()));
    Plan {
        mapping: input.mapping.name.clone(),
        dry_run: input.dry_run,
        needs_allow_deletes: max_deletes.is_some_and(|limit| deletes > limit),
        deletes,
        max_deletes,
        decisions,
    }
}

/// Target values of one correlation query, by a case-folded key. The key only
/// narrows the candidates; the filter evaluator decides equality (caseExact).
struct CorrelationIndex<'a> {
    query: &'a Correlation,
    by_key: HashMap<String, Vec<usize>>,
}

impl<'a> CorrelationIndex<'a> {
    fn new(query: &'a Correlation, targets: &[Value]) -> Self {
        let mut by_key: HashMap<String, Vec<usize>> = HashMap::new();
        for (i, t) in targets.iter().enumerate() {
            if let Some(key) = query.path.read(t).and_then(key_of) {
                by_key.entry(key).or_default().push(i);
            }
        }
        CorrelationIndex { query, by_key }
    }
}

fn key_of(v: &Value) -> Option<String> {
    match v {
        Value::String(s) => Some(s.to_lowercase()),
        Value::Number(n) => Some(n.to_string()),
        Value::Bool(b) => Some(b.to_string()),
        _ => None,
    }
}

fn literal_of(v: &Value) -> Option<Literal> {
    match v {
        Value::String(s) => Some(Literal::String(s.clone())),
        Value::Number(n) => Some(Literal::Number(n.clone())),
        Value::Bool(b) => Some(Literal::Bool(*b)),
        _ => None,
    }
}

/// The state of one planning pass.
struct Run<'a, 'i> {
    input: &'i PlanInput<'a>,
    target_rt: &'a ResourceTypeDef,
    links: LinkIndex,
    targets: HashMap<&'a str, &'a Value>,
    /// Built on first use: a re-run whose sources are all linked needs none.
    correlation: Vec<(&'a Correlation, OnceLock<CorrelationIndex<'a>>)>,
    /// Targets the source phase reached; the target phase looks at the others.
    seen: HashSet<String>,
    /// Targets linked earlier in this plan, by source id: a second source that
    /// correlates to one is FOUND_ALREADY_LINKED.
    claimed: HashMap<String, String>,
    decisions: Vec<Decision>,
}

impl<'a> Run<'a, '_> {
    /// The decision for a source, and the targets its correlation reached: all
    /// that reads the planning state, nothing that changes it (`record`).
    fn decide(&self, source: &Value, mapped: Mapped, qualifies: bool) -> (Decision, Vec<String>) {
        let Some(source_id) = id_of(source) else {
            let d = Decision {
                phase: Phase::Source,
                situation: Situation::SourceIgnored,
                action: Action::Exception,
                source_id: None,
                target_id: None,
                change: Change::None,
                link: LinkChange::None,
                unlinked_members: Vec::new(),
                error: Some("the source object has no id".into()),
                source_version: None,
                target_version: None,
            };
            return (d, Vec::new());
        };
        let m = self.input.mapping;
        let linked_target = self.links.target_of(source_id).map(str::to_string);
        let linked_target_exists = linked_target
            .as_deref()
            .is_some_and(|t| self.targets.contains_key(t));
        let correlated = if qualifies && linked_target.is_none() {
            self.correlate(source_id, &mapped)
        } else {
            Vec::new()
        };
        let facts = SourceFacts {
            qualifies,
            linked_target,
            linked_target_exists,
            correlated,
        };
        let situation = classify_source(&facts);
        let action = m.policies.action_for(situation);
        let target_id = match situation {
            Situation::Found | Situation::FoundAlreadyLinked => {
                facts.correlated.first().map(|c| c.target_id.clone())
            }
            _ => facts.linked_target.clone(),
        };
        let correlated: Vec<String> = facts
            .correlated
            .iter()
            .map(|c| c.target_id.clone())
            .collect();
        let target = target_id
            .as_deref()
            .and_then(|t| self.targets.get(t).copied());
        // An object whose transform failed is reported, and nothing is written.
        let (change, unlinked_members) = match &mapped.error {
            Some(_) => (Change::None, Vec::new()),
            None => self.change_for(action, &mapped, target),
        };
        let link = match &mapped.error {
            Some(_) => LinkChange::None,
            None => link_change(
                m.is_reverse(),
                situation,
                action,
                &change,
                source_id,
                target_id.as_deref(),
            ),
        };
        let d = Decision {
            phase: Phase::Source,
            situation,
            action,
            source_id: Some(source_id.to_string()),
            target_id,
            change,
            link,
            unlinked_members,
            error: mapped.error,
            source_version: version_of(source).map(str::to_string),
            target_version: target.and_then(version_of).map(str::to_string),
        };
        (d, correlated)
    }

    /// Note what a decision reached: its target and the correlated ones (the
    /// target phase skips them), and a target it links (claimed from then on).
    fn record(&mut self, d: &Decision, correlated: Vec<String>) {
        if let Some(t) = &d.target_id {
            self.seen.insert(t.clone());
            if let (LinkChange::Add(_), Some(s)) = (&d.link, &d.source_id) {
                self.claimed.insert(t.clone(), s.clone());
            }
        }
        self.seen.extend(correlated);
    }

    /// The first query that matches exactly one target wins; when none does but
    /// one matched several, all of those are returned (AMBIGUOUS).
    fn correlate(&self, source_id: &str, mapped: &Mapped) -> Vec<Correlated> {
        let mut ambiguous = Vec::new();
        for (query, index) in &self.correlation {
            let index = index.get_or_init(|| CorrelationIndex::new(query, self.input.targets));
            let found = self.matching_targets(index, &mapped.doc);
            match found.len() {
                0 => {}
                1 => return self.correlated(source_id, found),
                _ if ambiguous.is_empty() => ambiguous = found,
                _ => {}
            }
        }
        self.correlated(source_id, ambiguous)
    }

    fn matching_targets(&self, index: &CorrelationIndex<'_>, mapped: &Value) -> Vec<&'a str> {
        let Some(value) = index.query.path.read(mapped) else {
            return Vec::new();
        };
        let (Some(key), Some(literal)) = (key_of(value), literal_of(value)) else {
            return Vec::new();
        };
        let filter = Filter::Compare {
            path: index.query.attr().clone(),
            op: CompareOp::Eq,
            value: literal,
        };
        let candidates = index.by_key.get(&key).map_or(&[][..], Vec::as_slice);
        let mut out = Vec::new();
        for &i in candidates {
            let Some(t) = self.input.targets.get(i) else {
                continue;
            };
            if matches(&filter, t, self.input.registry, self.target_rt) {
                if let Some(id) = id_of(t) {
                    if !out.contains(&id) {
                        out.push(id);
                    }
                }
            }
        }
        out
    }

    fn correlated(&self, source_id: &str, ids: Vec<&str>) -> Vec<Correlated> {
        ids.into_iter()
            .map(|t| Correlated {
                target_id: t.to_string(),
                linked_elsewhere: self.links.source_of(t).is_some_and(|s| s != source_id)
                    || self.claimed.get(t).is_some_and(|s| s != source_id),
            })
            .collect()
    }

    fn change_for(
        &self,
        action: Action,
        mapped: &Mapped,
        target: Option<&Value>,
    ) -> (Change, Vec<String>) {
        let m = self.input.mapping;
        match (action, target) {
            (Action::Create, _) => self.create(mapped),
            (Action::Update | Action::Link, Some(t)) => {
                let mut ops = attribute_ops(m, &mapped.doc, t);
                let mut unlinked = Vec::new();
                if let Some(members) = &mapped.members {
                    let diff = member_diff(members, self.input.member_links, &member_ids(t));
                    ops.extend(member_ops(&diff));
                    unlinked = diff.unlinked;
                }
                let change = if ops.is_empty() {
                    Change::None
                } else {
                    Change::Patch(ops)
                };
                (change, unlinked)
            }
            (Action::Delete, Some(t)) => (self.delete(t), Vec::new()),
            _ => (Change::None, Vec::new()),
        }
    }

    /// The document to create: the mapped attributes, the members that have links,
    /// and `schemas` for the URNs it uses.
    fn create(&self, mapped: &Mapped) -> (Change, Vec<String>) {
        let mut doc = match &mapped.doc {
            Value::Object(m) => m.clone(),
            _ => Map::new(),
        };
        let mut unlinked = Vec::new();
        if let Some(members) = &mapped.members {
            let diff = member_diff(members, self.input.member_links, &[]);
            if !diff.add.is_empty() {
                doc.insert("members".into(), member_values(&diff.add));
            }
            unlinked = diff.unlinked;
        }
        let mut schemas = vec![Value::String(self.target_rt.schema.clone())];
        for ext in &self.target_rt.schema_extensions {
            if doc.keys().any(|k| k.eq_ignore_ascii_case(&ext.schema)) {
                schemas.push(Value::String(ext.schema.clone()));
            }
        }
        doc.insert("schemas".into(), Value::Array(schemas));
        (Change::Create(Value::Object(doc)), unlinked)
    }

    /// Delete, or with `disableBeforeDelete` first disable a user still active.
    fn delete(&self, target: &Value) -> Change {
        let still_active = get_ci(target, "active") != Some(&Value::Bool(false));
        if self.input.mapping.disable_before_delete
            && self.input.mapping.target.kind() == ObjectKind::User
            && still_active
        {
            Change::Disable(vec![PatchOp::replace("active", json!(false))])
        } else {
            Change::Delete
        }
    }

    fn target_phase(&mut self) {
        let reverse = self.input.mapping.is_reverse();
        for t in self.input.targets {
            let Some(target_id) = id_of(t) else { continue };
            if self.seen.contains(target_id) {
                continue;
            }
            let source_id = self.links.source_of(target_id).map(str::to_string);
            let situation = classify_target(source_id.is_some());
            let action = self.input.mapping.policies.action_for(situation);
            let change = match action {
                Action::Delete => self.delete(t),
                _ => Change::None,
            };
            let link = match &source_id {
                Some(s) => link_change(reverse, situation, action, &change, s, Some(target_id)),
                None => LinkChange::None,
            };
            self.decisions.push(Decision {
                phase: Phase::Target,
                situation,
                action,
                source_id,
                target_id: Some(target_id.to_string()),
                change,
                link,
                unlinked_members: Vec::new(),
                error: None,
                source_version: None,
                target_version: version_of(t).map(str::to_string),
            });
        }
    }
}

/// How a decision changes the links. FOUND links whether the action is LINK or
/// UPDATE; only an existing link is removed; a disable keeps the link so that the
/// later delete still finds its target.
fn link_change(
    reverse: bool,
    situation: Situation,
    action: Action,
    change: &Change,
    source_id: &str,
    target_id: Option<&str>,
) -> LinkChange {
    let had_link = matches!(
        situation,
        Situation::Confirmed
            | Situation::Unqualified
            | Situation::Missing
            | Situation::SourceMissing
    );
    let Some(t) = target_id else {
        return match action {
            Action::Create => LinkChange::AddAfterCreate,
            _ => LinkChange::None,
        };
    };
    let link = || Link::between(reverse, source_id, t);
    match action {
        Action::Create => LinkChange::AddAfterCreate,
        Action::Link => LinkChange::Add(link()),
        Action::Update if situation == Situation::Found => LinkChange::Add(link()),
        Action::Unlink if had_link => LinkChange::Remove(link()),
        Action::Delete if had_link && *change == Change::Delete => LinkChange::Remove(link()),
        _ => LinkChange::None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::SyncConfig;

    fn mapping(extra: Value) -> Mapping {
        let mut m = json!({"name": "accounts", "source": "system/scim/account",
            "target": "managed/user",
            "properties": [{"source": "userName", "target": "userName"},
                           {"source": "id", "target": "externalId"},
                           {"source": "active", "target": "active"}],
            "correlationQuery": ["externalId", "userName"]});
        if let (Some(m), Value::Object(extra)) = (m.as_object_mut(), extra) {
            m.extend(extra);
        }
        let text = json!({"mappings": [m]}).to_string();
        let c = SyncConfig::parse("sync.json", &text, &SchemaRegistry::standard()).unwrap();
        c.mappings[0].clone()
    }

    fn run(m: &Mapping, sources: &[Value], targets: &[Value], links: &[Link]) -> Plan {
        plan(&PlanInput {
            mapping: m,
            registry: &SchemaRegistry::standard(),
            sources,
            targets,
            links,
            member_links: &LinkIndex::default(),
            dry_run: false,
            expressions: &crate::mapping::NoExpressions,
        })
        .unwrap()
    }

    fn user(id: &str, user_name: &str) -> Value {
        json!({"id": id, "userName": user_name, "active": true})
    }

    fn situations(p: &Plan) -> Vec<(Option<&str>, Situation, Action)> {
        p.decisions
            .iter()
            .map(|d| (d.source_id.as_deref(), d.situation, d.action))
            .collect()
    }

    #[test]
    fn the_first_query_matching_exactly_one_target_wins() {
        let m = mapping(json!({"runTargetPhase": false}));
        let targets = [
            json!({"id": "t1", "userName": "alice", "externalId": "r1"}),
            json!({"id": "t2", "userName": "bob", "externalId": "other"}),
            json!({"id": "t3", "userName": "carol", "externalId": "r3"}),
            json!({"id": "t4", "userName": "dave", "externalId": "r3"}),
        ];
        let sources = [
            // externalId matches t1 although userName matches nothing.
            user("r1", "nobody"),
            // No externalId match: userName (case-insensitive) finds t2.
            user("r2", "BOB"),
            // externalId matches two, userName one: the userName query wins.
            user("r3", "carol"),
            // externalId matches two, userName nothing: ambiguous.
            user("r3", "zed"),
            user("r5", "eve"),
        ];
        let p = run(&m, &sources, &targets, &[]);
        let got: Vec<_> = p
            .decisions
            .iter()
            .map(|d| (d.situation, d.target_id.as_deref()))
            .collect();
        assert_eq!(
            got,
            vec![
                (Situation::Found, Some("t1")),
                (Situation::Found, Some("t2")),
                (Situation::Found, Some("t3")),
                (Situation::Ambiguous, None),
                (Situation::Absent, None),
            ]
        );
        assert_eq!(p.decisions[3].action, Action::Exception);
        assert_eq!(
            p.decisions[0].link,
            LinkChange::Add(Link::between(false, "r1", "t1"))
        );
        // LINK also brings the target in line with the mapped attributes.
        let Change::Patch(ops) = &p.decisions[0].change else {
            panic!("{:?}", p.decisions[0].change)
        };
        assert!(ops.contains(&PatchOp::replace("userName", json!("nobody"))));
    }

    #[test]
    fn found_with_update_links_and_found_with_delete_removes_no_link() {
        let targets = [json!({"id": "t1", "userName": "alice"})];
        let m = mapping(
            json!({"policies": [{"situation": "FOUND", "action": "UPDATE"}],
                               "runTargetPhase": false}),
        );
        let p = run(&m, &[user("r1", "alice")], &targets, &[]);
        assert_eq!(
            p.decisions[0].link,
            LinkChange::Add(Link::between(false, "r1", "t1"))
        );
        assert!(matches!(p.decisions[0].change, Change::Patch(_)));
        let m = mapping(
            json!({"policies": [{"situation": "FOUND", "action": "DELETE"}],
                               "runTargetPhase": false}),
        );
        let p = run(&m, &[user("r1", "alice")], &targets, &[]);
        assert_eq!(p.decisions[0].change, Change::Delete);
        assert_eq!(p.decisions[0].link, LinkChange::None);
    }

    #[test]
    fn group_updates_patch_changed_members_and_report_unlinked_ones() {
        let text = json!({"mappings": [{"name": "groups", "source": "system/scim/group",
            "target": "managed/group",
            "properties": [{"source": "displayName", "target": "displayName"},
                           {"source": "members", "target": "members"}]}]})
        .to_string();
        let c = SyncConfig::parse("sync.json", &text, &SchemaRegistry::standard()).unwrap();
        let sources = [json!({"id": "rg", "displayName": "eng",
                              "members": [{"value": "ra"}, {"value": "rx"}]})];
        let targets = [json!({"id": "lg", "displayName": "eng",
                              "members": [{"value": "la"}, {"value": "lb"}]})];
        let member_links = LinkIndex::new(
            &[
                Link::between(false, "ra", "la"),
                Link::between(false, "rb", "lb"),
            ],
            false,
        );
        let p = plan(&PlanInput {
            mapping: &c.mappings[0],
            registry: &SchemaRegistry::standard(),
            sources: &sources,
            targets: &targets,
            links: &[Link::between(false, "rg", "lg")],
            member_links: &member_links,
            dry_run: false,
            expressions: &crate::mapping::NoExpressions,
        })
        .unwrap();
        let d = &p.decisions[0];
        assert_eq!(d.situation, Situation::Confirmed);
        assert_eq!(
            d.change,
            Change::Patch(vec![PatchOp::remove("members[value eq \"lb\"]")])
        );
        assert_eq!(d.unlinked_members, vec!["rx"]);
    }

    #[test]
    fn decisions_serialise_for_the_audit_log() {
        let p = run(&mapping(json!({})), &[user("r1", "a")], &[], &[]);
        let v = serde_json::to_value(&p.decisions[0]).unwrap();
        assert_eq!(v["situation"], "ABSENT");
        assert_eq!(v["action"], "CREATE");
        assert_eq!(v["sourceId"], "r1");
        assert_eq!(v["change"]["type"], "create");
        assert_eq!(v["link"]["type"], "addAfterCreate");
    }

    #[test]
    fn case_exact_attributes_correlate_exactly() {
        let m = mapping(json!({"correlationQuery": ["externalId"], "runTargetPhase": false}));
        let targets = [json!({"id": "t1", "userName": "a", "externalId": "ABC"})];
        let p = run(&m, &[user("abc", "a")], &targets, &[]);
        assert_eq!(p.decisions[0].situation, Situation::Absent);
        let p = run(&m, &[user("ABC", "a")], &targets, &[]);
        assert_eq!(p.decisions[0].situation, Situation::Found);
    }

    #[test]
    fn a_target_linked_elsewhere_is_found_already_linked() {
        let m = mapping(json!({"runTargetPhase": false}));
        let targets = [json!({"id": "t1", "userName": "alice"})];
        let links = [Link::between(false, "gone", "t1")];
        let p = run(&m, &[user("r1", "alice")], &targets, &links);
        assert_eq!(p.decisions[0].situation, Situation::FoundAlreadyLinked);
        // Two sources correlating to one target in one run: the second finds it taken.
        let p = run(
            &m,
            &[user("r1", "alice"), user("r2", "ALICE")],
            &targets,
            &[],
        );
        assert_eq!(
            situations(&p),
            vec![
                (Some("r1"), Situation::Found, Action::Link),
                (Some("r2"), Situation::FoundAlreadyLinked, Action::Exception),
            ]
        );
    }

    #[test]
    fn a_rename_of_a_linked_object_is_an_update() {
        let m = mapping(json!({}));
        let targets =
            [json!({"id": "t1", "userName": "alice", "externalId": "r1", "active": true})];
        let links = [Link::between(false, "r1", "t1")];
        let p = run(&m, &[user("r1", "alice.smith")], &targets, &links);
        assert_eq!(p.decisions.len(), 1, "no target phase entry: {p:?}");
        let d = &p.decisions[0];
        assert_eq!(
            (d.situation, d.action),
            (Situation::Confirmed, Action::Update)
        );
        assert_eq!(d.target_id.as_deref(), Some("t1"));
        assert_eq!(
            d.change,
            Change::Patch(vec![PatchOp::replace("userName", json!("alice.smith"))])
        );
        assert_eq!(d.link, LinkChange::None);
        // Unchanged: nothing to write.
        let p = run(&m, &[user("r1", "alice")], &targets, &links);
        assert_eq!(p.decisions[0].change, Change::None);
    }

    #[test]
    fn creates_carry_schemas_and_ask_for_a_link() {
        let m = mapping(json!({}));
        let p = run(&m, &[user("r1", "alice")], &[], &[]);
        let d = &p.decisions[0];
        assert_eq!((d.situation, d.action), (Situation::Absent, Action::Create));
        assert_eq!(
            d.change,
            Change::Create(
                json!({"userName": "alice", "externalId": "r1", "active": true,
                "schemas": ["urn:ietf:params:scim:schemas:core:2.0:User"]})
            )
        );
        assert_eq!(d.link, LinkChange::AddAfterCreate);
    }

    #[test]
    fn missing_targets_follow_the_policy() {
        let links = [Link::between(false, "r1", "t-gone")];
        let p = run(&mapping(json!({})), &[user("r1", "a")], &[], &links);
        assert_eq!(
            situations(&p),
            vec![(Some("r1"), Situation::Missing, Action::Exception)]
        );
        assert_eq!(p.decisions[0].change, Change::None);
        let m = mapping(json!({"policies": [{"situation": "MISSING", "action": "CREATE"}]}));
        let p = run(&m, &[user("r1", "a")], &[], &links);
        assert!(matches!(p.decisions[0].change, Change::Create(_)));
    }

    #[test]
    fn unqualified_sources_are_deleted_or_first_disabled() {
        let targets = [json!({"id": "t1", "userName": "a", "active": true})];
        let links = [Link::between(false, "r1", "t1")];
        let mut inactive = user("r1", "a");
        inactive["active"] = json!(false);
        let m = mapping(json!({"sourceFilter": "active eq true"}));
        let p = run(&m, &[inactive.clone()], &targets, &links);
        let d = &p.decisions[0];
        assert_eq!(
            (d.situation, d.action),
            (Situation::Unqualified, Action::Delete)
        );
        assert_eq!(d.change, Change::Delete);
        assert_eq!(d.link, LinkChange::Remove(links[0].clone()));
        let m = mapping(json!({"sourceFilter": "active eq true", "disableBeforeDelete": true}));
        let p = run(&m, &[inactive.clone()], &targets, &links);
        assert_eq!(
            p.decisions[0].change,
            Change::Disable(vec![PatchOp::replace("active", json!(false))])
        );
        assert_eq!(p.decisions[0].link, LinkChange::None);
        // Once disabled, the next run deletes.
        let disabled = [json!({"id": "t1", "userName": "a", "active": false})];
        let p = run(&m, &[inactive.clone()], &disabled, &links);
        assert_eq!(p.decisions[0].change, Change::Delete);
        // Not qualifying and never linked: out of scope.
        let p = run(&m, &[inactive], &[], &[]);
        assert_eq!(p.decisions[0].situation, Situation::SourceIgnored);
        assert_eq!(p.decisions[0].change, Change::None);
    }

    #[test]
    fn the_target_phase_reports_unassigned_and_source_missing() {
        let targets = [
            json!({"id": "t1", "userName": "kept"}),
            json!({"id": "t2", "userName": "orphan"}),
            json!({"id": "t3", "userName": "local-only"}),
        ];
        let links = [
            Link::between(false, "r1", "t1"),
            Link::between(false, "r2", "t2"),
        ];
        let sources = [user("r1", "kept")];
        let p = run(&mapping(json!({})), &sources, &targets, &links);
        let target_phase: Vec<_> = p
            .decisions
            .iter()
            .filter(|d| d.phase == Phase::Target)
            .map(|d| (d.target_id.as_deref(), d.situation, d.action))
            .collect();
        assert_eq!(
            target_phase,
            vec![
                (Some("t2"), Situation::SourceMissing, Action::Exception),
                (Some("t3"), Situation::Unassigned, Action::Exception),
            ]
        );
        let m = mapping(json!({"policies": [{"situation": "SOURCE_MISSING", "action": "DELETE"}]}));
        let p = run(&m, &sources, &targets, &links);
        let d = p
            .decisions
            .iter()
            .find(|d| d.situation == Situation::SourceMissing)
            .unwrap();
        assert_eq!(d.source_id.as_deref(), Some("r2"));
        assert_eq!(d.change, Change::Delete);
        assert_eq!(d.link, LinkChange::Remove(links[1].clone()));
        let p = run(
            &mapping(json!({"runTargetPhase": false})),
            &sources,
            &targets,
            &links,
        );
        assert!(p.decisions.iter().all(|d| d.phase == Phase::Source));
    }

    #[test]
    fn too_many_deletes_need_an_explicit_allow() {
        let targets: Vec<Value> = (0..10)
            .map(|i| user(&format!("t{i}"), &format!("u{i}")))
            .collect();
        let links: Vec<Link> = (0..10)
            .map(|i| Link::between(false, &format!("r{i}"), &format!("t{i}")))
            .collect();
        let policy = json!([{"situation": "SOURCE_MISSING", "action": "DELETE"}]);
        // Sources r0..r6 remain: three linked targets lost their source.
        let sources: Vec<Value> = (0..7)
            .map(|i| user(&format!("r{i}"), &format!("u{i}")))
            .collect();
        for (max, needs) in [
            (json!(2), true),
            (json!(3), false),
            (json!("20%"), true),
            (json!("30%"), false),
        ] {
            let m = mapping(json!({"policies": policy, "maxDeletes": max}));
            let p = run(&m, &sources, &targets, &links);
            assert_eq!(p.deletes, 3);
            assert_eq!(p.needs_allow_deletes, needs, "maxDeletes {max}");
        }
        let p = run(
            &mapping(json!({"policies": policy})),
            &sources,
            &targets,
            &links,
        );
        assert!(!p.needs_allow_deletes);
        assert_eq!(p.max_deletes, None);
    }

    #[test]
    fn a_dry_run_is_the_same_plan_flagged() {
        let m = mapping(json!({}));
        let sources = [user("r1", "a")];
        let input = PlanInput {
            mapping: &m,
            registry: &SchemaRegistry::standard(),
            sources: &sources,
            targets: &[],
            links: &[],
            member_links: &LinkIndex::default(),
            dry_run: true,
            expressions: &crate::mapping::NoExpressions,
        };
        let dry = plan(&input).unwrap();
        let wet = plan(&PlanInput {
            dry_run: false,
            ..input
        })
        .unwrap();
        assert!(dry.dry_run && !wet.dry_run);
        assert_eq!(dry.decisions, wet.decisions);
    }

    #[test]
    fn a_source_without_id_is_an_exception_and_the_run_goes_on() {
        let p = run(
            &mapping(json!({})),
            &[json!({"userName": "x"}), user("r1", "a")],
            &[],
            &[],
        );
        assert_eq!(p.decisions[0].action, Action::Exception);
        assert!(p.decisions[0].error.is_some());
        assert_eq!(p.decisions[1].situation, Situation::Absent);
        assert_eq!(p.situation_summary().get(&Situation::Absent), Some(&1));
    }

    /// Above `PARALLEL_FROM` linked sources are decided on other threads; the
    /// unlinked ones still see each other's claims in source order.
    #[test]
    fn a_large_plan_decides_like_a_small_one() {
        let m = mapping(json!({"correlationQuery": ["userName"]}));
        let n = PARALLEL_FROM + 500;
        let mut sources: Vec<Value> = (0..n)
            .map(|i| user(&format!("s{i}"), &format!("u{i}")))
            .collect();
        // Two unlinked sources correlating to one target: the second finds it claimed.
        sources.push(user("dup1", "shared"));
        sources.push(user("dup2", "shared"));
        let mut targets: Vec<Value> = (0..n)
            .map(|i| user(&format!("t{i}"), &format!("u{i}")))
            .collect();
        targets.push(user("tshared", "shared"));
        // Every other source is linked; the rest correlate by userName.
        let links: Vec<Link> = (0..n)
            .step_by(2)
            .map(|i| Link::between(false, &format!("s{i}"), &format!("t{i}")))
            .collect();
        let p = run(&m, &sources, &targets, &links);
        assert_eq!(p.decisions.len(), n + 2);
        for (i, d) in p.decisions.iter().take(n).enumerate() {
            assert_eq!(
                d.source_id.as_deref(),
                Some(format!("s{i}").as_str()),
                "in source order"
            );
            let want = if i % 2 == 0 {
                Situation::Confirmed
            } else {
                Situation::Found
            };
            assert_eq!(d.situation, want, "{d:?}");
            assert_eq!(d.target_id.as_deref(), Some(format!("t{i}").as_str()));
        }
        assert_eq!(p.decisions[n].situation, Situation::Found);
        assert_eq!(p.decisions[n + 1].situation, Situation::FoundAlreadyLinked);
        // The target phase saw every target reached.
        assert!(p.decisions.iter().all(|d| d.phase == Phase::Source));
    }

    /// Fails every expression.
    #[derive(Debug)]
    struct Failing;

    impl Expressions for Failing {
        fn eval(&self, _: &str, _: &Value, _: &Value) -> Result<Option<Value>, String> {
            Err("boom".into())
        }
    }

    #[test]
    fn a_failing_transform_writes_nothing_for_that_object() {
        let m = mapping(json!({"properties": [
            {"source": "userName", "target": "userName", "transform": "string.upper(value)"}]}));
        let links = [Link::between(false, "r2", "l2")];
        let targets = [user("l2", "b")];
        let p = plan(&PlanInput {
            mapping: &m,
            registry: &SchemaRegistry::standard(),
            sources: &[user("r1", "a"), user("r2", "b")],
            targets: &targets,
            links: &links,
            member_links: &LinkIndex::default(),
            dry_run: false,
            expressions: &Failing,
        })
        .unwrap();
        for d in &p.decisions {
            assert_eq!(d.change, Change::None, "{d:?}");
            assert_eq!(d.link, LinkChange::None, "{d:?}");
            assert_eq!(d.error.as_deref(), Some("transform of userName: boom"));
        }
        assert_eq!(p.decisions[0].situation, Situation::Absent);
        assert_eq!(p.decisions[1].situation, Situation::Confirmed);
    }
}

/// What planning costs per object (`cargo test -p scim-sync --release -- --ignored
/// plan_cost --nocapture`): 100,000 linked users with nothing to change, the
/// no-change re-run of docs/benchmarks.md.
#[cfg(test)]
mod cost {
    use super::*;
    use crate::config::SyncConfig;

    #[test]
    #[ignore]
    fn plan_cost() {
        let text = json!({"mappings": [{"name": "u", "source": "managed/user",
            "target": "system/scim/account",
            "properties": [{"source": "userName", "target": "userName"},
                           {"source": "displayName", "target": "displayName"},
                           {"source": "name.givenName", "target": "name.givenName"},
                           {"source": "name.familyName", "target": "name.familyName"},
                           {"source": "emails[type eq \"work\"].value", "target": "emails[type eq \"work\"].value"},
                           {"source": "active", "target": "active"}],
            "correlationQuery": ["userName"]}]})
        .to_string();
        let registry = SchemaRegistry::standard();
        let c = SyncConfig::parse("sync.json", &text, &registry).unwrap();
        let doc = |id: String, i: usize| {
            json!({"id": id, "userName": format!("user{i:07}"), "displayName": format!("User {i}"),
                   "name": {"givenName": format!("Given{i}"), "familyName": "Family"},
                   "emails": [{"value": format!("user{i}@example.com"), "type": "work"}],
                   "active": true})
        };
        let n = 100_000;
        let sources: Vec<Value> = (0..n).map(|i| doc(format!("s{i}"), i)).collect();
        let targets: Vec<Value> = (0..n).map(|i| doc(format!("t{i}"), i)).collect();
        let links: Vec<Link> = (0..n)
            .map(|i| Link::between(false, &format!("s{i}"), &format!("t{i}")))
            .collect();
        let t = std::time::Instant::now();
        let p = plan(&PlanInput {
            mapping: &c.mappings[0],
            registry: &registry,
            sources: &sources,
            targets: &targets,
            links: &links,
            member_links: &LinkIndex::default(),
            dry_run: false,
            expressions: &crate::mapping::NoExpressions,
        })
        .unwrap();
        let took = t.elapsed();
        assert_eq!(p.changes().count(), 0);
        println!(
            "plan of {n} unchanged users: {took:?} ({:?} per user)",
            took / n as u32
        );
    }
}
