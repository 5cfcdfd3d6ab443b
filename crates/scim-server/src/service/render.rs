//! Reading one resource and the response form of resources: what is stored
//! elsewhere (meta.version/location, members, groups) joined in, then projected.

use super::{etag, not_found, store_error, without_members, RequestCtx, Service};
use scim_proto::document::Document;
use scim_proto::filter::AttrPath;
use scim_proto::project::{project, Projection};
use scim_proto::schema::ResourceTypeDef;
use scim_proto::ScimResult;
use scim_store::{GroupRef, MemberKind, MemberView, StoredResource};
use serde_json::{json, Map, Value};

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

/// What a response adds to a stored document's `meta`: its ETag and location.
pub(crate) fn stamp_meta(doc: &mut Document, version: i64, location: String) {
    doc.set_meta("version", json!(etag(version)));
    doc.set_meta("location", json!(location));
}

/// The `meta` values a row-only projection asks for.
#[derive(Debug, Default, PartialEq)]
struct RowMeta {
    resource_type: bool,
    version: bool,
    location: bool,
}

/// When a projection asks for nothing but `id` and `meta.version`,
/// `meta.location` or `meta.resourceType` (what a sync engine lists to compare
/// versions), what it asks of `meta`: everything it shows is in the row. None
/// for any other projection.
fn row_only(p: &Projection) -> Option<RowMeta> {
    if p.attributes.is_empty() || !p.excluded.is_empty() {
        return None;
    }
    let mut meta = RowMeta::default();
    for a in &p.attributes {
        // A URN-qualified name takes the general path.
        if a.urn.is_some() {
            return None;
        }
        let sub = a.sub_attr.as_deref().map(str::to_ascii_lowercase);
        match (a.attr.to_ascii_lowercase().as_str(), sub.as_deref()) {
            ("id", None) => {}
            ("meta", Some("version")) => meta.version = true,
            ("meta", Some("location")) => meta.location = true,
            ("meta", Some("resourcetype")) => meta.resource_type = true,
            _ => return None,
        }
    }
    Some(meta)
}

/// Whether `p` shows nothing of a document but what its row has (and `schemas`).
pub(super) fn is_row_only(p: &Projection) -> bool {
    row_only(p).is_some()
}

/// One element of a group's `members` (or a user's `groups`, with its kind).
fn member_json(base_url: &str, m: &MemberView, kind: Option<&str>) -> Value {
    let endpoint = m.kind.endpoint();
    let mut v = Map::new();
    v.insert("value".into(), json!(m.id));
    v.insert(
        "$ref".into(),
        json!(format!("{base_url}{endpoint}/{}", m.id)),
    );
    if let Some(d) = &m.display {
        v.insert("display".into(), json!(d));
    }
    v.insert("type".into(), json!(kind.unwrap_or(m.kind.as_str())));
    Value::Object(v)
}

/// A group's member list, turned into JSON one member at a time as the response is
/// written: a large list held as JSON values costs tens of megabytes per GET.
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
    pub fn get(&self, rt: &ResourceTypeDef, id: &str, ctx: &RequestCtx) -> ScimResult<Rendered> {
        let Some(h) = self.hooked(ctx, rt) else {
            return self.get_unhooked(rt, id, ctx);
        };
        self.gate_stored(h, rt, id, ctx, None)?;
        let mut r = self.get_unhooked(rt, id, ctx)?;
        self.on_get(h, rt, &mut r.doc)?;
        Ok(r)
    }

    fn get_unhooked(
        &self,
        rt: &ResourceTypeDef,
        id: &str,
        ctx: &RequestCtx,
    ) -> ScimResult<Rendered> {
        if rt.kind.is_user() && self.wants(rt, ctx, "groups", None) {
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

    /// Whether `get` of this type is a few primary-key lookups that an async
    /// worker may run in place: not for groups, whose member lists can be long,
    /// nor while script calls have been slow (a script may take milliseconds).
    pub fn get_is_cheap(&self, rt: &ResourceTypeDef) -> bool {
        self.store.cheap_point_reads() && !rt.kind.is_group() && self.hooks.calls_are_quick()
    }

    pub fn version(&self, rt: &ResourceTypeDef, id: &str) -> ScimResult<i64> {
        Ok(self
            .store
            .get(rt, id)
            .map_err(|e| not_found(e, rt, id))?
            .version)
    }

    /// Whether the response asks for this core attribute (or sub-attribute) of `rt`.
    pub(super) fn wants(
        &self,
        rt: &ResourceTypeDef,
        ctx: &RequestCtx,
        attr: &str,
        sub: Option<&str>,
    ) -> bool {
        let path = AttrPath {
            urn: None,
            attr: attr.to_string(),
            sub_attr: sub.map(str::to_string),
        };
        ctx.projection.wants(&ctx.registry, rt, &path)
    }

    /// One resource as a response shows it. A group's member list comes apart from
    /// the document, for the response to write it member by member (see
    /// `MemberList`); search results keep it inside (`render`).
    pub(super) fn render_one(
        &self,
        rt: &ResourceTypeDef,
        stored: StoredResource,
        ctx: &RequestCtx,
    ) -> ScimResult<Rendered> {
        if !rt.kind.is_group() {
            return self.render(rt, stored, ctx);
        }
        let full = self.full_doc(rt, &stored, &ctx.projected(without_members()), true)?;
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
            doc: project(&ctx.registry, rt, &full, &ctx.projection),
            members,
            version: stored.version,
            location: self.location(ctx, rt, &stored.id),
        })
    }

    pub(super) fn render_all(
        &self,
        rt: &ResourceTypeDef,
        stored: Vec<StoredResource>,
        ctx: &RequestCtx,
    ) -> ScimResult<Vec<Value>> {
        if let Some(meta) = row_only(&ctx.projection) {
            return Ok(stored
                .into_iter()
                .map(|s| self.render_row(rt, s, ctx, &meta))
                .collect());
        }
        stored
            .into_iter()
            .map(|s| self.render(rt, s, ctx).map(|r| r.doc))
            .collect()
    }

    /// A resource as a projection that `row_only` accepts shows it: `schemas`,
    /// `id` and the asked-for `meta` values, the same as `project` of the full
    /// document gives, without building that document.
    fn render_row(
        &self,
        rt: &ResourceTypeDef,
        stored: StoredResource,
        ctx: &RequestCtx,
        meta: &RowMeta,
    ) -> Value {
        let StoredResource {
            id,
            mut doc,
            version,
            ..
        } = stored;
        let mut m = Map::new();
        if meta.resource_type {
            m.insert("resourceType".into(), json!(rt.name));
        }
        if meta.version {
            m.insert("version".into(), json!(etag(version)));
        }
        if meta.location {
            m.insert("location".into(), json!(self.location(ctx, rt, &id)));
        }
        let mut out = Map::new();
        if let Some(schemas) = doc.get_mut("schemas").map(Value::take) {
            out.insert("schemas".into(), schemas);
        }
        out.insert("id".into(), json!(id));
        if !m.is_empty() {
            out.insert("meta".into(), Value::Object(m));
        }
        Value::Object(out)
    }

    /// Stored document plus what is kept elsewhere: meta.version/location, group
    /// members, user groups. Work the projection does not need is skipped.
    pub(super) fn full_doc(
        &self,
        rt: &ResourceTypeDef,
        stored: &StoredResource,
        ctx: &RequestCtx,
        member_display: bool,
    ) -> ScimResult<Value> {
        let (id, version) = (stored.id.as_str(), stored.version);
        self.full_doc_with(
            rt,
            id,
            version,
            stored.doc.clone(),
            ctx,
            member_display,
            None,
        )
    }

    /// `full_doc` of the stored document `doc` (taken, not copied), with a user's
    /// groups already read (`Store::get_with_groups`).
    #[allow(clippy::too_many_arguments)]
    fn full_doc_with(
        &self,
        rt: &ResourceTypeDef,
        id: &str,
        version: i64,
        doc: Value,
        ctx: &RequestCtx,
        member_display: bool,
        groups: Option<Vec<GroupRef>>,
    ) -> ScimResult<Value> {
        let mut doc = Document::from_value(doc)?;
        stamp_meta(&mut doc, version, self.location(ctx, rt, id));
        let wants = |attr: &str, sub: Option<&str>| self.wants(rt, ctx, attr, sub);
        if rt.kind.is_group() && wants("members", None) {
            let display =
                member_display && !ctx.overhead_bypass && wants("members", Some("display"));
            let members = self.store.members(id, display).map_err(store_error)?;
            if !members.is_empty() {
                doc.set(
                    "members",
                    Value::Array(
                        members
                            .iter()
                            .map(|m| member_json(&ctx.base_url, m, None))
                            .collect(),
                    ),
                );
            }
        }
        if rt.kind.is_user() && wants("groups", None) {
            let groups = match groups {
                Some(g) => g,
                None => self.store.groups_of(id).map_err(store_error)?,
            };
            if !groups.is_empty() {
                doc.set(
                    "groups",
                    Value::Array(
                        groups
                            .iter()
                            .map(|g| {
                                let view = MemberView {
                                    id: g.id.clone(),
                                    kind: MemberKind::Group,
                                    display: g.display.clone(),
                                };
                                let kind = if g.direct { "direct" } else { "indirect" };
                                member_json(&ctx.base_url, &view, Some(kind))
                            })
                            .collect(),
                    ),
                );
            }
        }
        Ok(doc.into_value())
    }

    pub(super) fn render(
        &self,
        rt: &ResourceTypeDef,
        stored: StoredResource,
        ctx: &RequestCtx,
    ) -> ScimResult<Rendered> {
        self.render_with(rt, stored, ctx, None)
    }

    pub(super) fn render_with(
        &self,
        rt: &ResourceTypeDef,
        stored: StoredResource,
        ctx: &RequestCtx,
        groups: Option<Vec<GroupRef>>,
    ) -> ScimResult<Rendered> {
        let StoredResource {
            id, doc, version, ..
        } = stored;
        let full = self.full_doc_with(rt, &id, version, doc, ctx, true, groups)?;
        Ok(Rendered {
            doc: project(&ctx.registry, rt, &full, &ctx.projection),
            members: None,
            version,
            location: self.location(ctx, rt, &id),
        })
    }
}
