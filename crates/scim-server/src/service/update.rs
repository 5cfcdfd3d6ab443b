//! Updating resources: PUT and PATCH as one read-modify-write with optimistic
//! concurrency, and the member-delta fast path of a group PATCH.

use super::members::member_kind;
use super::{
    display_of, not_found, rfc3339, store_error, take_password, unique_key, uniqueness_detail,
    user_name, without_members, Rendered, RequestCtx, Service,
};
use scim_hooks::WriteOp;
use scim_proto::document::Document;
use scim_proto::member_delta::{self, MemberOps};
use scim_proto::messages::{self, PATCH_OP};
use scim_proto::patch::apply_patch;
use scim_proto::project::Projection;
use scim_proto::schema::validate::validate_replace;
use scim_proto::schema::ResourceTypeDef;
use scim_proto::{ScimError, ScimResult};
use scim_store::{Member, MemberChange, ResourceWrite, StoreError};
use serde_json::{json, Value};
use std::collections::HashSet;

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

impl Service {
    pub fn replace(
        &self,
        rt: &ResourceTypeDef,
        id: &str,
        body: &Value,
        if_match: Option<i64>,
        ctx: &RequestCtx,
    ) -> ScimResult<Rendered> {
        if let Some(h) = self.hooked(ctx, rt) {
            self.gate_stored(h, rt, id, ctx, Some(body))?;
        }
        self.update(rt, id, if_match, ctx, true, |full| {
            validate_replace(&ctx.registry, rt, full, body).map(|d| (d, None))
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
        if let Some(h) = self.hooked(ctx, rt) {
            self.gate_stored(h, rt, id, ctx, Some(body))?;
        }
        if rt.kind.is_group() && messages::declares(body, PATCH_OP) {
            if let Some(ops) = member_delta::split(body) {
                return self.patch_members(rt, id, &ops, if_match, ctx);
            }
        }
        self.update(rt, id, if_match, ctx, true, |full| {
            apply_patch(&ctx.registry, rt, full, body).map(|d| (d, None))
        })
    }

    /// Membership-only (plus other attributes) PATCH of a group without loading its
    /// member list.
    fn patch_members(
        &self,
        rt: &ResourceTypeDef,
        id: &str,
        ops: &MemberOps,
        if_match: Option<i64>,
        ctx: &RequestCtx,
    ) -> ScimResult<Rendered> {
        self.update(rt, id, if_match, ctx, false, |before| {
            let doc = match &ops.rest {
                Some(rest) => apply_patch(&ctx.registry, rt, before, rest)?,
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
                .map(|(i, kind)| {
                    Ok(Member {
                        id: i.clone(),
                        kind: member_kind(kind.as_deref())?,
                    })
                })
                .collect::<ScimResult<_>>()?;
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
        let full_ctx = ctx.projected(if with_members {
            Projection::default()
        } else {
            without_members()
        });
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
            let hook = self.hooked(ctx, rt);
            if let Some(h) = hook {
                self.before_write(h, rt, WriteOp::Update, &mut doc, ctx)?;
            }
            let secret = take_password(&mut doc)?;
            let members = match members {
                Some(m) => m,
                None => self.member_change(rt, &before, &mut doc, ctx)?,
            };
            let now = self.now();
            let mut stamped = Document::from_value(doc)?;
            stamped.set("id", json!(id));
            stamped.remove("groups");
            stamped.set(
                "meta",
                json!({
                    "resourceType": rt.name,
                    "created": stored.doc.pointer("/meta/created").cloned().unwrap_or(Value::Null),
                    "lastModified": rfc3339(now),
                }),
            );
            let doc = stamped.into_value();
            let name = user_name(rt, &doc);
            let write = ResourceWrite {
                id: id.to_string(),
                unique_key: unique_key(rt, &doc),
                display: display_of(&doc),
                doc,
                created: now,
                modified: now,
                secret,
                members,
                actor: ctx.actor.clone(),
            };
            match self.store.replace(rt, write, Some(stored.version)) {
                Ok(s) => {
                    let mut r = self.render_one(rt, s, ctx)?;
                    if let Some(h) = hook {
                        self.after_write(h, rt, WriteOp::Update, &mut r.doc)?;
                    }
                    return Ok(r);
                }
                Err(StoreError::VersionMismatch) if if_match.is_none() => continue,
                Err(e) => return Err(uniqueness_detail(e, name.as_deref())),
            }
        }
        Err(ScimError::conflict(
            "the resource is being modified concurrently; try again",
        ))
    }
}
