//! Creating resources: POST, the prepared creations of a Bulk run, and the admin
//! enrolment of FIDO devices.

use super::{
    display_of, not_found, rfc3339, take_password, unique_key, uniqueness_detail, user_name,
    Rendered, RequestCtx, Service,
};
use scim_hooks::WriteOp;
use scim_proto::document::Document;
use scim_proto::schema::validate::validate_create;
use scim_proto::schema::{ResourceKind, ResourceTypeDef};
use scim_proto::{ScimError, ScimResult};
use scim_store::{MemberChange, ResourceWrite};
use serde_json::{json, Value};

/// What a stored creation gives Bulk: the new id, its version and location.
#[derive(Debug, Clone)]
pub struct Created {
    pub id: String,
    pub version: i64,
    pub location: String,
}

/// A new resource id: a UUID version 7 from the injected clock. Ids of resources
/// created one after another sort together, so inserts land at the end of the
/// id-keyed B-trees instead of on a random page each; the random part keeps them
/// unguessable.
fn new_id(now: chrono::DateTime<chrono::Utc>) -> String {
    let ts = uuid::Timestamp::from_unix(
        uuid::NoContext,
        now.timestamp().max(0) as u64,
        now.timestamp_subsec_nanos(),
    );
    uuid::Uuid::new_v7(ts).to_string()
}

impl Service {
    /// POST of a resource by a SCIM client. Devices are not created over SCIM: the
    /// authentication flows enrol them (see `enrol_device`).
    pub fn create(
        &self,
        rt: &ResourceTypeDef,
        body: &Value,
        ctx: &RequestCtx,
    ) -> ScimResult<Rendered> {
        let mut write = self.prepare_create(rt, body, ctx)?;
        let Some(h) = self.hooked(ctx, rt) else {
            return self.store_new(rt, write, ctx);
        };
        self.gate(h, rt, &write.doc, Some(body))?;
        self.before_write(h, rt, WriteOp::Create, &mut write.doc, ctx)?;
        write.unique_key = unique_key(rt, &write.doc);
        write.display = display_of(&write.doc);
        let mut r = self.store_new(rt, write, ctx)?;
        self.after_write(h, rt, WriteOp::Create, &mut r.doc)?;
        Ok(r)
    }

    /// Validate a POST body and build its write, touching nothing: Bulk prepares a
    /// run of creations this way and stores them together (`create_prepared`).
    pub(crate) fn prepare_create(
        &self,
        rt: &ResourceTypeDef,
        body: &Value,
        ctx: &RequestCtx,
    ) -> ScimResult<ResourceWrite> {
        if rt.kind.is_device() {
            return Err(ScimError::method_not_allowed(format!(
                "{} resources are enrolled by the authentication flows, not created over SCIM",
                rt.name
            )));
        }
        self.new_write(rt, body, ctx)
    }

    /// Store prepared creations in one durable step (one commit on SQLite), in
    /// order, each succeeding or failing on its own; after `max_failures` failures
    /// the rest are not attempted, so the answer may be shorter than `items`.
    pub(crate) fn create_prepared(
        &self,
        items: Vec<(ResourceTypeDef, ResourceWrite)>,
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
        if !rt.kind.is_device() {
            return Err(ScimError::invalid_value(format!(
                "{} is not a device type",
                rt.name
            )));
        }
        let user_id = body
            .get("userId")
            .and_then(Value::as_str)
            .ok_or_else(|| ScimError::invalid_value("a device needs the userId of its owner"))?;
        let user_rt = ctx
            .registry
            .resource_type(ResourceKind::User.as_str())
            .ok_or_else(|| ScimError::internal("User resource type missing"))?;
        self.store
            .get(user_rt, user_id)
            .map_err(|e| not_found(e, user_rt, user_id))?;
        let write = self.new_write(rt, body, ctx)?;
        self.store_new(rt, write, ctx)
    }

    /// The write that creates `body` as a new resource of type `rt`.
    fn new_write(
        &self,
        rt: &ResourceTypeDef,
        body: &Value,
        ctx: &RequestCtx,
    ) -> ScimResult<ResourceWrite> {
        let mut doc = validate_create(&ctx.registry, rt, body)?;
        let now = self.now();
        let id = new_id(now);
        let secret = take_password(&mut doc)?;
        let members = self.take_members(rt, &mut doc, ctx)?;
        let mut stamped = Document::from_value(doc)?;
        stamped.set("id", json!(id));
        stamped.set(
            "meta",
            json!({
                "resourceType": rt.name,
                "created": rfc3339(now),
                "lastModified": rfc3339(now),
            }),
        );
        let doc = stamped.into_value();
        Ok(ResourceWrite {
            id,
            unique_key: unique_key(rt, &doc),
            display: display_of(&doc),
            doc,
            created: now,
            modified: now,
            secret,
            members: members.map_or(MemberChange::Keep, MemberChange::Replace),
            actor: ctx.actor.clone(),
        })
    }

    fn store_new(
        &self,
        rt: &ResourceTypeDef,
        write: ResourceWrite,
        ctx: &RequestCtx,
    ) -> ScimResult<Rendered> {
        let name = user_name(rt, &write.doc);
        let stored = self
            .store
            .create(rt, write)
            .map_err(|e| uniqueness_detail(e, name.as_deref()))?;
        self.render_one(rt, stored, ctx)
    }
}
