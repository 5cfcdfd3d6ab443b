//! The service layer: protocol validation, storage, and the response form of a
//! resource. Synchronous on purpose — the HTTP layer runs it on the blocking pool,
//! next to the (synchronous) store.

use crate::clock::Clock;
use crate::config::ServerConfig;
use crate::cursor;
use crate::members;
use scim_proto::filter::{parse_attr_path, parse_filter, AttrPath, CompareOp, Filter, Literal};
use scim_proto::patch::apply_patch;
use scim_proto::project::{project, Projection};
use scim_proto::schema::validate::{validate_create, validate_replace};
use scim_proto::schema::{ResourceTypeDef, SchemaRegistry, SharedRegistry};
use scim_proto::{ScimError, ScimResult};
use scim_store::{
    GroupRef, Member, MemberChange, MemberView, Query, SecretChange, SortOrder, Store, StoreError,
    StoredResource, Write,
};
use serde_json::{json, Map, Value};
use std::collections::HashSet;
use std::sync::Arc;

pub const LIST_RESPONSE_SCHEMA: &str = "urn:ietf:params:scim:api:messages:2.0:ListResponse";
pub const SEARCH_REQUEST_SCHEMA: &str = "urn:ietf:params:scim:api:messages:2.0:SearchRequest";

/// How often a read-modify-write is retried when another writer got in between.
const UPDATE_ATTEMPTS: u32 = 16;

/// Jittered, growing pause before retrying a lost read-modify-write race, so
/// writers hammering one resource (a popular group) spread out instead of
/// colliding again.
fn retry_pause(attempt: u32) {
    use rand_core::RngCore;
    let ceiling_us = 500u64 << attempt.min(6);
    let jitter = u64::from(rand_core::OsRng.next_u32()) % ceiling_us;
    std::thread::sleep(std::time::Duration::from_micros(ceiling_us / 2 + jitter));
}

pub struct Service {
    pub registry: Arc<SharedRegistry>,
    pub store: Arc<dyn Store>,
    pub clock: Arc<dyn Clock>,
    pub config: ServerConfig,
    /// Read-modify-writes of one resource queue here rather than race.
    pub updating: crate::locks::KeyedLocks,
}

/// Per-request context from the HTTP layer.
#[derive(Debug, Clone, Default)]
pub struct RequestCtx {
    /// Absolute base of the SCIM API as the client addressed it, e.g. `http://h/scim/v2`.
    pub base_url: String,
    pub projection: Projection,
    /// Gluu's `Group-Overhead-Bypass`: members are not checked and never displayed.
    pub overhead_bypass: bool,
}

/// A resource ready to send: projected document and its version (for the ETag).
#[derive(Debug, Clone)]
pub struct Rendered {
    /// The projected document; for a single group, without its member list.
    pub doc: Value,
    /// A single group's member list, to be written after `doc` (see `MemberList`).
    pub members: Option<MemberList>,
    pub version: i64,
    pub location: String,
}

/// Search parameters, from the query string or a SearchRequest body.
#[derive(Debug, Clone, Default)]
pub struct SearchParams {
    pub filter: Option<String>,
    pub sort_by: Option<String>,
    pub sort_order: Option<String>,
    pub start_index: Option<i64>,
    pub count: Option<i64>,
    /// Devices only: the owner's id.
    pub user_id: Option<String>,
    /// RFC 9865: present (possibly empty, for the first page) selects cursor paging.
    pub cursor: Option<String>,
}

pub fn store_error(e: StoreError) -> ScimError {
    match e {
        StoreError::NotFound => ScimError::not_found("resource not found"),
        StoreError::Uniqueness => {
            ScimError::uniqueness("a resource with this unique value already exists")
        }
        StoreError::VersionMismatch => {
            ScimError::precondition_failed("resource version does not match If-Match")
        }
        StoreError::Query(e) => e,
        StoreError::BadCursor(d) => ScimError::invalid_value(d),
        StoreError::Backend(e) => {
            tracing::error!(error = %e, "storage failure");
            ScimError::internal("storage failure")
        }
    }
}

pub fn etag(version: i64) -> String {
    format!("W/\"{version}\"")
}

/// Parse an `If-Match` / `If-None-Match` value into a version; `*` → None (any).
pub fn parse_etag(value: &str) -> Option<Option<i64>> {
    let v = value.trim();
    if v == "*" {
        return Some(None);
    }
    let v = v.strip_prefix("W/").unwrap_or(v).trim_matches('"');
    v.parse().ok().map(Some)
}

/// How a search is run (`Service::search_cost`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SearchCost {
    /// `userName eq` on a store whose point reads an async worker may run in place
    /// (see `Store::cheap_point_reads`): the lookup provisioning clients make
    /// before every create.
    PointRead,
    /// Equality lookups (`scim_store::sql::is_lookup`): a few rows whatever the
    /// directory's size.
    Lookup,
    /// Anything that may scan (`co`, ranges, presence, unfiltered or sorted pages).
    Scan,
}

/// What a stored creation gives Bulk: the new id, its version and location.
#[derive(Debug, Clone)]
pub struct Created {
    pub id: String,
    pub version: i64,
    pub location: String,
}

/// A new resource id: a UUID version 7 from the injected clock. Ids of resources
/// created one after another sort together, so inserts land at the end of the
/// id-keyed B-trees instead of on a random page each (a third fewer pages written
/// per creation on SQLite); the random part keeps them unguessable.
fn new_id(now: chrono::DateTime<chrono::Utc>) -> String {
    let ts = uuid::Timestamp::from_unix(
        uuid::NoContext,
        now.timestamp().max(0) as u64,
        now.timestamp_subsec_nanos(),
    );
    uuid::Uuid::new_v7(ts).to_string()
}

/// A user's userName (None for other types), kept to name it in a uniqueness error.
fn user_name(rt: &ResourceTypeDef, doc: &Value) -> Option<String> {
    (rt.name == "User")
        .then(|| doc.get("userName").and_then(Value::as_str))
        .flatten()
        .map(str::to_string)
}

/// A store error as the client sees it; a taken userName is named.
fn uniqueness_detail(e: StoreError, user_name: Option<&str>) -> ScimError {
    match (e, user_name) {
        (StoreError::Uniqueness, Some(name)) => {
            ScimError::uniqueness(format!("userName '{name}' is already in use"))
        }
        (e, _) => store_error(e),
    }
}

/// One element of a group's `members` (or a user's `groups`, with its kind).
fn member_json(base_url: &str, m: &MemberView, kind: Option<&str>) -> Value {
    let endpoint = if m.kind == "Group" {
        "/Groups"
    } else {
        "/Users"
    };
    let mut v = Map::new();
    v.insert("value".into(), json!(m.id));
    v.insert(
        "$ref".into(),
        json!(format!("{base_url}{endpoint}/{}", m.id)),
    );
    if let Some(d) = &m.display {
        v.insert("display".into(), json!(d));
    }
    v.insert("type".into(), json!(kind.unwrap_or(&m.kind)));
    Value::Object(v)
}

/// A group's member list, turned into JSON one member at a time as the response is
/// written: a 100,000-member list held as JSON values took ~60 MB per GET.
#[derive(Debug, Clone)]
pub struct MemberList {
    base_url: String,
    items: Vec<MemberView>,
    /// Which of `value`, `$ref`, `display`, `type` the projection keeps.
    keep: [bool; 4],
}

impl serde::Serialize for MemberList {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeSeq;
        let mut seq = s.serialize_seq(Some(self.items.len()))?;
        for m in &self.items {
            let mut v = member_json(&self.base_url, m, None);
            if let Some(o) = v.as_object_mut() {
                for (name, keep) in MEMBER_FIELDS.iter().zip(self.keep) {
                    if !keep {
                        o.remove(*name);
                    }
                }
            }
            seq.serialize_element(&v)?;
        }
        seq.end()
    }
}

/// The sub-attributes `member_json` writes, in `MemberList::keep` order.
const MEMBER_FIELDS: [&str; 4] = ["value", "$ref", "display", "type"];

impl Service {
    /// The registry as it is now (custom attributes can change at run time).
    pub fn registry(&self) -> Arc<SchemaRegistry> {
        self.registry.load()
    }

    pub fn resource_type(&self, endpoint: &str) -> Option<ResourceTypeDef> {
        self.registry().resource_type_by_endpoint(endpoint).cloned()
    }

    fn location(&self, ctx: &RequestCtx, rt: &ResourceTypeDef, id: &str) -> String {
        format!("{}{}/{}", ctx.base_url, rt.endpoint, id)
    }

    fn is_group(rt: &ResourceTypeDef) -> bool {
        rt.name == "Group"
    }

    fn is_user(rt: &ResourceTypeDef) -> bool {
        rt.name == "User"
    }

    /// Now, at the millisecond precision timestamps are shown with, so the document
    /// and the indexed columns agree.
    fn now(&self) -> chrono::DateTime<chrono::Utc> {
        let t = self.clock.now();
        chrono::DurationRound::duration_trunc(t, chrono::TimeDelta::milliseconds(1)).unwrap_or(t)
    }

    /// POST of a resource by a SCIM client. Devices are not created over SCIM: the
    /// authentication flows enrol them (see `enrol_device`).
    pub fn create(
        &self,
        rt: &ResourceTypeDef,
        body: &Value,
        ctx: &RequestCtx,
    ) -> ScimResult<Rendered> {
        let write = self.prepare_create(rt, body, ctx)?;
        self.store_new(rt, write, ctx)
    }

    /// Validate a POST body and build its write, touching nothing: Bulk prepares a
    /// run of creations this way and stores them together (`create_prepared`).
    pub(crate) fn prepare_create(
        &self,
        rt: &ResourceTypeDef,
        body: &Value,
        ctx: &RequestCtx,
    ) -> ScimResult<Write> {
        if is_device(rt) {
            return Err(ScimError::new(
                405,
                None,
                format!(
                    "{} resources are enrolled by the authentication flows, not created over SCIM",
                    rt.name
                ),
            ));
        }
        self.new_write(rt, body, ctx)
    }

    /// Store prepared creations in one durable step (one commit on SQLite), in
    /// order, each succeeding or failing on its own; after `max_failures` failures
    /// the rest are not attempted, so the answer may be shorter than `items`.
    pub(crate) fn create_prepared(
        &self,
        items: Vec<(ResourceTypeDef, Write)>,
        max_failures: usize,
        ctx: &RequestCtx,
    ) -> Vec<ScimResult<Created>> {
        let user_names: Vec<Option<String>> =
            items.iter().map(|(rt, w)| user_name(rt, &w.doc)).collect();
        let types: Vec<ResourceTypeDef> = items.iter().map(|(rt, _)| rt.clone()).collect();
        self.store
            .create_many(items, max_failures)
            .into_iter()
            .zip(types.iter().zip(user_names))
            .map(|(r, (rt, name))| {
                let stored = r.map_err(|e| uniqueness_detail(e, name.as_deref()))?;
                Ok(Created {
                    location: self.location(ctx, rt, &stored.id),
                    id: stored.id,
                    version: stored.version,
                })
            })
            .collect()
    }
    /// Admin enrolment of a FIDO device for an existing user (import, migration).
    pub fn enrol_device(
        &self,
        rt: &ResourceTypeDef,
        body: &Value,
        ctx: &RequestCtx,
    ) -> ScimResult<Rendered> {
        if !is_device(rt) {
            return Err(ScimError::invalid_value(format!(
                "{} is not a device type",
                rt.name
            )));
        }
        let user_id = body
            .get("userId")
            .and_then(Value::as_str)
            .ok_or_else(|| ScimError::invalid_value("a device needs the userId of its owner"))?;
        let registry = self.registry();
        let user_rt = registry
            .resource_type("User")
            .ok_or_else(|| ScimError::internal("User resource type missing"))?;
        self.store
            .get(user_rt, user_id)
            .map_err(|e| not_found(e, user_rt, user_id))?;
        let write = self.new_write(rt, body, ctx)?;
        self.store_new(rt, write, ctx)
    }

    /// The write that creates `body` as a new resource of type `rt`.
    fn new_write(&self, rt: &ResourceTypeDef, body: &Value, ctx: &RequestCtx) -> ScimResult<Write> {
        let mut doc = validate_create(&self.registry(), rt, body)?;
        let now = self.now();
        let id = new_id(now);
        let secret = take_password(&mut doc)?;
        let members = self.take_members(rt, &mut doc, ctx)?;
        doc["id"] = json!(id);
        doc["meta"] = json!({
            "resourceType": rt.name,
            "created": rfc3339(now),
            "lastModified": rfc3339(now),
        });
        Ok(Write {
            id,
            unique_key: unique_key(rt, &doc),
            display: display_of(&doc),
            doc,
            created: now,
            modified: now,
            secret,
            members: members.map_or(MemberChange::Keep, MemberChange::Replace),
        })
    }

    fn store_new(
        &self,
        rt: &ResourceTypeDef,
        write: Write,
        ctx: &RequestCtx,
    ) -> ScimResult<Rendered> {
        let name = user_name(rt, &write.doc);
        let stored = self
            .store
            .create(rt, write)
            .map_err(|e| uniqueness_detail(e, name.as_deref()))?;
        self.render_one(rt, stored, ctx)
    }

    pub fn get(&self, rt: &ResourceTypeDef, id: &str, ctx: &RequestCtx) -> ScimResult<Rendered> {
        if Self::is_user(rt) && self.wants(rt, ctx, "groups", None) {
            // One store call for the document and the groups (one round trip on
            // PostgreSQL instead of two).
            let (stored, groups) = self
                .store
                .get_with_groups(rt, id)
                .map_err(|e| not_found(e, rt, id))?;
            return self.render_with(rt, stored, ctx, Some(groups));
        }
        let stored = self.store.get(rt, id).map_err(|e| not_found(e, rt, id))?;
        self.render_one(rt, stored, ctx)
    }

    /// Whether the response asks for this core attribute (or sub-attribute) of `rt`.
    fn wants(&self, rt: &ResourceTypeDef, ctx: &RequestCtx, attr: &str, sub: Option<&str>) -> bool {
        let path = AttrPath {
            urn: None,
            attr: attr.to_string(),
            sub_attr: sub.map(str::to_string),
        };
        ctx.projection.wants(&self.registry(), rt, &path)
    }

    /// One resource as a response shows it. A group's member list comes apart from
    /// the document, for the response to write it member by member (see
    /// `MemberList`); search results keep it inside (`render`).
    fn render_one(
        &self,
        rt: &ResourceTypeDef,
        stored: StoredResource,
        ctx: &RequestCtx,
    ) -> ScimResult<Rendered> {
        if !Self::is_group(rt) {
            return self.render(rt, stored, ctx);
        }
        let no_members = RequestCtx {
            projection: Projection {
                attributes: vec![],
                excluded: vec![AttrPath::simple("members")],
            },
            ..ctx.clone()
        };
        let full = self.full_doc(rt, &stored, &no_members, true)?;
        let wants = |sub: Option<&str>| self.wants(rt, ctx, "members", sub);
        let members = if wants(None) {
            let keep = MEMBER_FIELDS.map(|f| wants(Some(f)));
            let mut items = self
                .store
                .members(&stored.id, keep[2] && !ctx.overhead_bypass)
                .map_err(store_error)?;
            // value, $ref and type are always there; a member left with nothing to
            // show (only display kept, and it has none) is dropped, as projection
            // drops it.
            if keep == [false, false, true, false] {
                items.retain(|m| m.display.is_some());
            }
            (!items.is_empty()).then(|| MemberList {
                base_url: ctx.base_url.clone(),
                items,
                keep,
            })
        } else {
            None
        };
        Ok(Rendered {
            doc: project(&self.registry(), rt, &full, &ctx.projection),
            members,
            version: stored.version,
            location: self.location(ctx, rt, &stored.id),
        })
    }

    /// Whether `get` of this type is a few primary-key lookups that an async
    /// worker may run in place: not for groups, whose member lists can be long.
    pub fn get_is_cheap(&self, rt: &ResourceTypeDef) -> bool {
        self.store.cheap_point_reads() && !Self::is_group(rt)
    }

    pub fn version(&self, rt: &ResourceTypeDef, id: &str) -> ScimResult<i64> {
        Ok(self
            .store
            .get(rt, id)
            .map_err(|e| not_found(e, rt, id))?
            .version)
    }

    pub fn replace(
        &self,
        rt: &ResourceTypeDef,
        id: &str,
        body: &Value,
        if_match: Option<i64>,
        ctx: &RequestCtx,
    ) -> ScimResult<Rendered> {
        self.update(rt, id, if_match, ctx, true, |full| {
            validate_replace(&self.registry(), rt, full, body).map(|d| (d, None))
        })
    }

    pub fn patch(
        &self,
        rt: &ResourceTypeDef,
        id: &str,
        body: &Value,
        if_match: Option<i64>,
        ctx: &RequestCtx,
    ) -> ScimResult<Rendered> {
        if Self::is_group(rt) && is_patch_op(body) {
            if let Some(ops) = members::split(body) {
                return self.patch_members(rt, id, &ops, if_match, ctx);
            }
        }
        self.update(rt, id, if_match, ctx, true, |full| {
            apply_patch(&self.registry(), rt, full, body).map(|d| (d, None))
        })
    }

    /// Membership-only (plus other attributes) PATCH of a group without loading its
    /// member list.
    fn patch_members(
        &self,
        rt: &ResourceTypeDef,
        id: &str,
        ops: &members::MemberOps,
        if_match: Option<i64>,
        ctx: &RequestCtx,
    ) -> ScimResult<Rendered> {
        self.update(rt, id, if_match, ctx, false, |before| {
            let doc = match &ops.rest {
                Some(rest) => apply_patch(&self.registry(), rt, before, rest)?,
                None => before.clone(),
            };
            let present = self
                .store
                .members_among(id, &ops.remove)
                .map_err(store_error)?;
            if let Some(f) = ops
                .remove_filters
                .iter()
                .find(|f| !f.iter().any(|i| present.contains(i)))
            {
                return Err(ScimError::no_target(format!(
                    "no member matches value {}",
                    f.join(" or ")
                )));
            }
            let mut seen = HashSet::new();
            let add: Vec<Member> = ops
                .add
                .iter()
                .filter(|(i, _)| seen.insert(i.clone()))
                .map(|(i, kind)| Member {
                    id: i.clone(),
                    kind: kind.clone().unwrap_or_else(|| "User".into()),
                })
                .collect();
            let add = if ctx.overhead_bypass || add.is_empty() {
                add
            } else {
                self.checked_members(add, Some(id))?
            };
            Ok((
                doc,
                Some(MemberChange::Delta {
                    add,
                    remove: present,
                }),
            ))
        })
    }

    /// Read-modify-write with optimistic concurrency: the write only lands on the
    /// version that was read; if another writer got in between, start again, so no
    /// concurrent update is lost. An explicit If-Match is never retried.
    fn update(
        &self,
        rt: &ResourceTypeDef,
        id: &str,
        if_match: Option<i64>,
        ctx: &RequestCtx,
        with_members: bool,
        change: impl Fn(&Value) -> ScimResult<(Value, Option<MemberChange>)>,
    ) -> ScimResult<Rendered> {
        let full_ctx = RequestCtx {
            projection: if with_members {
                Projection::default()
            } else {
                Projection {
                    attributes: vec![],
                    excluded: vec![AttrPath::simple("members")],
                }
            },
            ..ctx.clone()
        };
        let _queued = self.updating.lock(id);
        for attempt in 0..UPDATE_ATTEMPTS {
            if attempt > 0 {
                retry_pause(attempt);
            }
            let stored = self.store.get(rt, id).map_err(|e| not_found(e, rt, id))?;
            if if_match.is_some_and(|v| v != stored.version) {
                return Err(store_error(StoreError::VersionMismatch));
            }
            let before = self.full_doc(rt, &stored, &full_ctx, !ctx.overhead_bypass)?;
            let (mut doc, members) = change(&before)?;
            let secret = take_password(&mut doc)?;
            let members = match members {
                Some(m) => m,
                None => self.member_change(rt, &before, &mut doc, ctx)?,
            };
            let now = self.now();
            doc["id"] = json!(id);
            if let Some(groups) = doc.as_object_mut() {
                groups.remove("groups");
            }
            let created = stored.doc["meta"]["created"].clone();
            doc["meta"] = json!({
                "resourceType": rt.name,
                "created": created,
                "lastModified": rfc3339(now),
            });
            let name = user_name(rt, &doc);
            let write = Write {
                id: id.to_string(),
                unique_key: unique_key(rt, &doc),
                display: display_of(&doc),
                doc,
                created: now,
                modified: now,
                secret,
                members,
            };
            match self.store.replace(rt, write, Some(stored.version)) {
                Ok(s) => return self.render_one(rt, s, ctx),
                Err(StoreError::VersionMismatch) if if_match.is_none() => continue,
                Err(e) => return Err(uniqueness_detail(e, name.as_deref())),
            }
        }
        Err(ScimError::conflict(
            "the resource is being modified concurrently; try again",
        ))
    }

    pub fn delete(&self, rt: &ResourceTypeDef, id: &str, if_match: Option<i64>) -> ScimResult<()> {
        if Self::is_user(rt) {
            // Devices go first: a crash in between leaves a user with fewer
            // devices, never devices without a user; a retried DELETE finishes.
            self.version(rt, id)?;
            self.delete_devices_of(id)?;
        }
        self.store
            .delete(rt, id, if_match, self.now())
            .map_err(|e| not_found(e, rt, id))
    }

    fn delete_devices_of(&self, user_id: &str) -> ScimResult<()> {
        let registry = self.registry();
        for rt in registry.resource_types().iter().filter(|r| is_device(r)) {
            loop {
                let query = Query {
                    filter: Some(owner_filter(user_id)),
                    start_index: 1,
                    count: 500,
                    ..Query::default()
                };
                let page = self.store.search(rt, &query).map_err(store_error)?;
                if page.resources.is_empty() {
                    break;
                }
                for d in page.resources {
                    match self.store.delete(rt, &d.id, None, self.now()) {
                        Ok(()) | Err(StoreError::NotFound) => {}
                        Err(e) => return Err(store_error(e)),
                    }
                }
            }
        }
        Ok(())
    }

    pub fn search(
        &self,
        rt: &ResourceTypeDef,
        params: &SearchParams,
        ctx: &RequestCtx,
    ) -> ScimResult<Value> {
        let query = self.query(rt, params)?;
        if params.cursor.is_some() {
            return self.cursor_search(rt, params, query, ctx);
        }
        if let Some(key) = unique_key_lookup(rt, &query) {
            return self.find_unique(rt, &key, &query, ctx);
        }
        let page = self.store.search(rt, &query).map_err(store_error)?;
        let resources = self.render_all(rt, page.resources, ctx)?;
        Ok(json!({
            "schemas": [LIST_RESPONSE_SCHEMA],
            "totalResults": page.total,
            "itemsPerPage": resources.len(),
            "startIndex": query.start_index,
            "Resources": resources,
        }))
    }

    /// A `userName eq` search answered from the uniqueness index: at most one user
    /// (with its groups in the same store call when the response shows them).
    fn find_unique(
        &self,
        rt: &ResourceTypeDef,
        key: &str,
        query: &Query,
        ctx: &RequestCtx,
    ) -> ScimResult<Value> {
        let with_groups = self.wants(rt, ctx, "groups", None);
        let found = if with_groups {
            self.store
                .find_unique_with_groups(rt, key)
                .map(|f| f.map(|(r, g)| (r, Some(g))))
        } else {
            self.store
                .find_unique(rt, key)
                .map(|f| f.map(|r| (r, None)))
        }
        .map_err(store_error)?;
        let total = u64::from(found.is_some());
        let resources = match found {
            Some((stored, groups)) if query.count > 0 => {
                vec![self.render_with(rt, stored, ctx, groups)?.doc]
            }
            _ => vec![],
        };
        Ok(json!({
            "schemas": [LIST_RESPONSE_SCHEMA],
            "totalResults": total,
            "itemsPerPage": resources.len(),
            "startIndex": query.start_index,
            "Resources": resources,
        }))
    }

    /// How a search of one type should be run, from its filter (parsed once here).
    pub fn search_cost(&self, rt: &ResourceTypeDef, params: &SearchParams) -> SearchCost {
        let filter = match (&params.cursor, params.filter.as_deref()) {
            (None, Some(f)) => parse_filter(f).ok(),
            _ => None,
        };
        match filter {
            Some(f) if unique_key_filter(rt, &f).is_some() => {
                if self.store.cheap_point_reads() {
                    SearchCost::PointRead
                } else {
                    SearchCost::Lookup
                }
            }
            Some(f) if scim_store::sql::is_lookup(&f) => SearchCost::Lookup,
            _ => SearchCost::Scan,
        }
    }

    fn render_all(
        &self,
        rt: &ResourceTypeDef,
        stored: Vec<StoredResource>,
        ctx: &RequestCtx,
    ) -> ScimResult<Vec<Value>> {
        stored
            .into_iter()
            .map(|s| self.render(rt, s, ctx).map(|r| r.doc))
            .collect()
    }

    /// RFC 9865 cursor paging: keyset pages over the search's order. One row
    /// more than asked is read to know whether a further page exists.
    fn cursor_search(
        &self,
        rt: &ResourceTypeDef,
        params: &SearchParams,
        mut query: Query,
        ctx: &RequestCtx,
    ) -> ScimResult<Value> {
        if params.start_index.is_some() {
            return Err(ScimError::invalid_value(
                "startIndex and cursor cannot be combined",
            ));
        }
        let fp = cursor::fingerprint(&[
            &rt.name,
            params.filter.as_deref().unwrap_or(""),
            params.sort_by.as_deref().unwrap_or(""),
            params.sort_order.as_deref().unwrap_or(""),
            params.user_id.as_deref().unwrap_or(""),
        ]);
        let mut direction = cursor::Direction::Next;
        match params.cursor.as_deref().map(str::trim) {
            None | Some("") => {}
            Some(c) => {
                let (key, d) = cursor::decode(c, &fp)?;
                match d {
                    cursor::Direction::Next => query.after = Some(key),
                    cursor::Direction::Previous => query.before = Some(key),
                }
                direction = d;
            }
        }
        let count = query.count;
        query.count = count + 1;
        let started = query.after.is_some() || query.before.is_some();
        let mut page = self.store.search(rt, &query).map_err(store_error)?;
        let more = page.resources.len() as u64 > count;
        if more {
            // The extra row is the farthest one in the walking direction.
            if direction == cursor::Direction::Previous {
                page.resources.remove(0);
                page.keys.remove(0);
            } else {
                page.resources.pop();
                page.keys.pop();
            }
        }
        let (has_next, has_previous) = match direction {
            cursor::Direction::Next => (more, started),
            cursor::Direction::Previous => (true, more),
        };
        let mut body = json!({
            "schemas": [LIST_RESPONSE_SCHEMA],
            "totalResults": page.total,
            "itemsPerPage": page.resources.len(),
        });
        if has_next {
            if let Some(k) = page.keys.last() {
                body["nextCursor"] = json!(cursor::encode(k, cursor::Direction::Next, &fp));
            }
        }
        if has_previous {
            if let Some(k) = page.keys.first() {
                body["previousCursor"] = json!(cursor::encode(k, cursor::Direction::Previous, &fp));
            }
        }
        body["Resources"] = Value::Array(self.render_all(rt, page.resources, ctx)?);
        Ok(body)
    }

    /// Root `/.search` across every resource type (RFC 7644 §3.4.3). Results are
    /// ordered by resource type (as listed in /ResourceTypes), then as a
    /// per-type search orders them; paging runs over that concatenation. A filter
    /// naming attributes a type does not have matches nothing of that type.
    pub fn search_all(&self, params: &SearchParams, ctx: &RequestCtx) -> ScimResult<Value> {
        let mut first_error = None;
        let mut parts = Vec::new();
        let registry = self.registry();
        for rt in registry.resource_types() {
            match self.query(rt, params) {
                Ok(q) => parts.push((rt, q)),
                Err(e) if e.status == 400 && e.scim_type != Some(scim_proto::ScimType::TooMany) => {
                    first_error.get_or_insert(e);
                }
                Err(e) => return Err(e),
            }
        }
        if parts.is_empty() {
            return Err(first_error
                .unwrap_or_else(|| ScimError::invalid_filter("no resource type matches")));
        }
        let start_index = parts[0].1.start_index;
        let mut wanted = parts[0].1.count;
        let mut skip = start_index - 1;
        let mut total = 0u64;
        let mut resources = Vec::new();
        for (rt, q) in parts {
            let counted = self
                .store
                .search(
                    rt,
                    &Query {
                        count: 0,
                        ..q.clone()
                    },
                )
                .map_err(store_error)?
                .total;
            total += counted;
            if skip >= counted {
                skip -= counted;
                continue;
            }
            if wanted > 0 {
                let page = self
                    .store
                    .search(
                        rt,
                        &Query {
                            start_index: skip + 1,
                            count: wanted,
                            ..q
                        },
                    )
                    .map_err(store_error)?;
                skip = 0;
                wanted -= page.resources.len() as u64;
                for r in page.resources {
                    resources.push(self.render(rt, r, ctx)?.doc);
                }
            }
        }
        Ok(json!({
            "schemas": [LIST_RESPONSE_SCHEMA],
            "totalResults": total,
            "itemsPerPage": resources.len(),
            "startIndex": start_index,
            "Resources": resources,
        }))
    }

    fn query(&self, rt: &ResourceTypeDef, p: &SearchParams) -> ScimResult<Query> {
        let filter = match p.filter.as_deref().map(str::trim) {
            Some(f) if !f.is_empty() => {
                let f = parse_filter(f)?;
                scim_proto::filter::eval::validate_filter(&f, &self.registry(), rt)?;
                Some(f)
            }
            _ => None,
        };
        // Gluu's `userId` parameter narrows a device search to one user's devices.
        let filter = match (&p.user_id, is_device(rt)) {
            (Some(u), true) => Some(match filter {
                Some(f) => scim_proto::filter::Filter::And(Box::new(owner_filter(u)), Box::new(f)),
                None => owner_filter(u),
            }),
            _ => filter,
        };
        let sort_by = match p.sort_by.as_deref().map(str::trim) {
            Some(s) if !s.is_empty() => {
                let path = parse_attr_path(s).map_err(|_| {
                    ScimError::invalid_value(format!("sortBy '{s}' is not an attribute path"))
                })?;
                self.registry().resolve(rt, &path).map_err(|_| {
                    ScimError::invalid_value(format!(
                        "sortBy '{s}' is not an attribute of {}",
                        rt.name
                    ))
                })?;
                Some(path)
            }
            _ => None,
        };
        let sort_order = match p
            .sort_order
            .as_deref()
            .map(str::to_ascii_lowercase)
            .as_deref()
        {
            None | Some("") | Some("ascending") => SortOrder::Ascending,
            Some("descending") => SortOrder::Descending,
            Some(other) => {
                return Err(ScimError::invalid_value(format!(
                    "sortOrder '{other}' is not 'ascending' or 'descending'"
                )))
            }
        };
        let count = p.count.unwrap_or(self.config.max_results as i64).max(0) as u64;
        if count > self.config.max_results {
            return Err(ScimError::too_many(format!(
                "count {count} is above the maximum of {}",
                self.config.max_results
            )));
        }
        Ok(Query {
            filter,
            sort_by,
            sort_order,
            start_index: p.start_index.unwrap_or(1).max(1) as u64,
            count,
            ..Query::default()
        })
    }

    /// Stored document plus what is kept elsewhere: meta.version/location, group
    /// members, user groups. Work the projection does not need is skipped.
    fn full_doc(
        &self,
        rt: &ResourceTypeDef,
        stored: &StoredResource,
        ctx: &RequestCtx,
        member_display: bool,
    ) -> ScimResult<Value> {
        self.full_doc_with(rt, stored, ctx, member_display, None)
    }

    /// `full_doc`, with a user's groups already read (`Store::get_with_groups`).
    fn full_doc_with(
        &self,
        rt: &ResourceTypeDef,
        stored: &StoredResource,
        ctx: &RequestCtx,
        member_display: bool,
        groups: Option<Vec<GroupRef>>,
    ) -> ScimResult<Value> {
        let mut doc = stored.doc.clone();
        doc["meta"]["version"] = json!(etag(stored.version));
        doc["meta"]["location"] = json!(self.location(ctx, rt, &stored.id));
        let wants = |attr: &str, sub: Option<&str>| self.wants(rt, ctx, attr, sub);
        if Self::is_group(rt) && wants("members", None) {
            let display =
                member_display && !ctx.overhead_bypass && wants("members", Some("display"));
            let members = self
                .store
                .members(&stored.id, display)
                .map_err(store_error)?;
            if !members.is_empty() {
                doc["members"] = Value::Array(
                    members
                        .iter()
                        .map(|m| member_json(&ctx.base_url, m, None))
                        .collect(),
                );
            }
        }
        if Self::is_user(rt) && wants("groups", None) {
            let groups = match groups {
                Some(g) => g,
                None => self.store.groups_of(&stored.id).map_err(store_error)?,
            };
            if !groups.is_empty() {
                doc["groups"] = Value::Array(
                    groups
                        .iter()
                        .map(|g| {
                            let view = MemberView {
                                id: g.id.clone(),
                                kind: "Group".into(),
                                display: g.display.clone(),
                            };
                            let kind = if g.direct { "direct" } else { "indirect" };
                            member_json(&ctx.base_url, &view, Some(kind))
                        })
                        .collect(),
                );
            }
        }
        Ok(doc)
    }

    fn render(
        &self,
        rt: &ResourceTypeDef,
        stored: StoredResource,
        ctx: &RequestCtx,
    ) -> ScimResult<Rendered> {
        self.render_with(rt, stored, ctx, None)
    }

    fn render_with(
        &self,
        rt: &ResourceTypeDef,
        stored: StoredResource,
        ctx: &RequestCtx,
        groups: Option<Vec<GroupRef>>,
    ) -> ScimResult<Rendered> {
        let full = self.full_doc_with(rt, &stored, ctx, true, groups)?;
        Ok(Rendered {
            doc: project(&self.registry(), rt, &full, &ctx.projection),
            members: None,
            version: stored.version,
            location: self.location(ctx, rt, &stored.id),
        })
    }

    /// Pull `members` out of a group document (they are stored relationally) and
    /// check that each exists, unless the client asked to bypass that check.
    fn take_members(
        &self,
        rt: &ResourceTypeDef,
        doc: &mut Value,
        ctx: &RequestCtx,
    ) -> ScimResult<Option<Vec<Member>>> {
        if !Self::is_group(rt) {
            return Ok(None);
        }
        let listed = doc
            .as_object_mut()
            .and_then(|o| o.remove("members"))
            .unwrap_or(Value::Array(vec![]));
        let mut wanted: Vec<Member> = Vec::new();
        let mut seen = HashSet::new();
        for m in listed.as_array().map(Vec::as_slice).unwrap_or_default() {
            let id = m
                .get("value")
                .and_then(Value::as_str)
                .ok_or_else(|| ScimError::invalid_value("every member needs a 'value'"))?;
            if seen.insert(id.to_string()) {
                let kind = m.get("type").and_then(Value::as_str).unwrap_or("User");
                wanted.push(Member {
                    id: id.to_string(),
                    kind: kind.to_string(),
                });
            }
        }
        if ctx.overhead_bypass || wanted.is_empty() {
            return Ok(Some(wanted));
        }
        self.checked_members(wanted, doc.get("id").and_then(Value::as_str))
            .map(Some)
    }

    /// Resolve members against the store: each must exist; its type is what it is.
    fn checked_members(
        &self,
        wanted: Vec<Member>,
        group_id: Option<&str>,
    ) -> ScimResult<Vec<Member>> {
        let ids: Vec<String> = wanted.iter().map(|m| m.id.clone()).collect();
        if group_id.is_some_and(|g| ids.iter().any(|i| i == g)) {
            return Err(ScimError::invalid_value(
                "a group cannot be a member of itself",
            ));
        }
        let found = self.store.existing(&ids).map_err(store_error)?;
        let mut out = Vec::with_capacity(wanted.len());
        for m in wanted {
            match found.iter().find(|f| f.id == m.id) {
                Some(f) if f.kind == "User" || f.kind == "Group" => out.push(f.clone()),
                _ => {
                    return Err(ScimError::invalid_value(format!(
                        "member '{}' is not an existing User or Group",
                        m.id
                    )))
                }
            }
        }
        Ok(out)
    }

    /// The membership delta between the document before and after an update.
    fn member_change(
        &self,
        rt: &ResourceTypeDef,
        before: &Value,
        doc: &mut Value,
        ctx: &RequestCtx,
    ) -> ScimResult<MemberChange> {
        if !Self::is_group(rt) {
            return Ok(MemberChange::Keep);
        }
        let ids = |v: &Value| -> HashSet<String> {
            v.get("members")
                .and_then(Value::as_array)
                .map(|a| {
                    a.iter()
                        .filter_map(|m| m.get("value").and_then(Value::as_str).map(str::to_string))
                        .collect()
                })
                .unwrap_or_default()
        };
        let old = ids(before);
        let with_id = {
            let mut d = doc.clone();
            d["id"] = before["id"].clone();
            d
        };
        let mut tmp = with_id;
        let after = self
            .take_members(
                rt,
                &mut tmp,
                &RequestCtx {
                    overhead_bypass: true,
                    ..ctx.clone()
                },
            )?
            .unwrap_or_default();
        if let Some(o) = doc.as_object_mut() {
            o.remove("members");
        }
        let new_ids: HashSet<String> = after.iter().map(|m| m.id.clone()).collect();
        let added: Vec<Member> = after.into_iter().filter(|m| !old.contains(&m.id)).collect();
        let added = if ctx.overhead_bypass || added.is_empty() {
            added
        } else {
            self.checked_members(added, before.get("id").and_then(Value::as_str))?
        };
        let remove: Vec<String> = old.into_iter().filter(|i| !new_ids.contains(i)).collect();
        Ok(MemberChange::Delta { add: added, remove })
    }
}

pub fn is_device(rt: &ResourceTypeDef) -> bool {
    rt.name == "FidoDevice" || rt.name == "Fido2Device"
}

fn owner_filter(user_id: &str) -> scim_proto::filter::Filter {
    scim_proto::filter::Filter::Compare {
        path: AttrPath::simple("userId"),
        op: scim_proto::filter::CompareOp::Eq,
        value: scim_proto::filter::Literal::String(user_id.to_string()),
    }
}

fn is_patch_op(body: &Value) -> bool {
    body.get("schemas")
        .and_then(Value::as_array)
        .is_some_and(|a| {
            a.iter()
                .any(|s| s.as_str() == Some(scim_proto::patch::PATCH_OP_SCHEMA))
        })
}

fn not_found(e: StoreError, rt: &ResourceTypeDef, id: &str) -> ScimError {
    match e {
        StoreError::NotFound => ScimError::not_found(format!("{} '{id}' not found", rt.name)),
        other => store_error(other),
    }
}

fn rfc3339(t: chrono::DateTime<chrono::Utc>) -> String {
    t.to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
}

/// The unique key a search is about, when it is exactly `userName eq "…"` on
/// Users and its page starts at the first result.
fn unique_key_lookup(rt: &ResourceTypeDef, query: &Query) -> Option<String> {
    if query.after.is_some() || query.before.is_some() || query.start_index > 1 {
        return None;
    }
    unique_key_filter(rt, query.filter.as_ref()?)
}

/// `userName eq "x"` (userName is unique and not case-exact) as the key stored by
/// `unique_key`.
fn unique_key_filter(rt: &ResourceTypeDef, f: &Filter) -> Option<String> {
    match f {
        Filter::Compare {
            path,
            op: CompareOp::Eq,
            value: Literal::String(v),
        } if rt.name == "User"
            && path.sub_attr.is_none()
            && path.attr.eq_ignore_ascii_case("userName")
            && path
                .urn
                .as_deref()
                .is_none_or(|u| u.eq_ignore_ascii_case(scim_proto::schema::USER_SCHEMA)) =>
        {
            Some(user_key(v))
        }
        _ => None,
    }
}

fn unique_key(rt: &ResourceTypeDef, doc: &Value) -> Option<String> {
    user_name(rt, doc).map(|n| user_key(&n))
}

/// userName is unique regardless of case: the key is its lower-case form.
fn user_key(name: &str) -> String {
    name.to_lowercase()
}

/// What member lists show: the displayName only — a client that set none must not
/// see a value it never sent.
fn display_of(doc: &Value) -> Option<String> {
    doc.get("displayName")
        .and_then(Value::as_str)
        .map(str::to_string)
}

/// Remove a clear-text password from the document and hash it (Argon2id).
fn take_password(doc: &mut Value) -> ScimResult<SecretChange> {
    let Some(pw) = doc.as_object_mut().and_then(|o| o.remove("password")) else {
        return Ok(SecretChange::Keep);
    };
    let pw = pw
        .as_str()
        .ok_or_else(|| ScimError::invalid_value("password must be a string"))?;
    use argon2::password_hash::{PasswordHasher, SaltString};
    use rand_core::OsRng;
    let salt = SaltString::generate(&mut OsRng);
    let hash = argon2::Argon2::default()
        .hash_password(pw.as_bytes(), &salt)
        .map_err(|_| ScimError::internal("password hashing failed"))?;
    Ok(SecretChange::Set(hash.to_string()))
}
