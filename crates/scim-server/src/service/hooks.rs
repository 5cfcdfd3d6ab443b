//! Where the service calls interception scripts (`scim_hooks::Hooks`): the v5
//! gates, the v1 hooks before a write (whose changes are validated again), and the
//! v2/v3/v4 hooks on responses. Scripts see users and groups of requests that came
//! over the API; admin commands and maintenance run without them.

use super::{not_found, RequestCtx, Service};
use scim_hooks::{HookContext, HookError, HookResponse, WriteOp};
use scim_proto::project::Projection;
use scim_proto::schema::validate::validate_document;
use scim_proto::schema::ResourceTypeDef;
use scim_proto::{ScimError, ScimResult};
use serde_json::Value;
use std::borrow::Cow;

/// A hook's refusal or failure as the client sees it: a 500 naming the script,
/// never its internals (the script log has them).
pub(crate) fn hook_error(e: HookError) -> ScimError {
    match &e {
        HookError::Refused { .. } => ScimError::internal(e.to_string()),
        HookError::Failed { message, .. } => ScimError::internal_because(e.to_string(), message),
    }
}

/// A script's own answer, sent instead of the operation's.
pub(crate) fn scripted(r: HookResponse) -> ScimError {
    ScimError::replied(r.status, r.body.unwrap_or(Value::Null), r.headers)
}

/// The script context of a request about `rt`: a root search covers every type,
/// and each type's hooks see their own resource type.
pub(crate) fn for_type<'a>(h: &'a HookContext, rt: &ResourceTypeDef) -> Cow<'a, HookContext> {
    if h.resource_type == rt.name {
        Cow::Borrowed(h)
    } else {
        Cow::Owned(HookContext {
            resource_type: rt.name.clone(),
            ..h.clone()
        })
    }
}

impl Service {
    /// The request's script context when scripts run for this resource type.
    pub(super) fn hooked<'a>(
        &self,
        ctx: &'a RequestCtx,
        rt: &ResourceTypeDef,
    ) -> Option<&'a HookContext> {
        let h = ctx.hook.as_deref()?;
        (self.hooks.active() && (rt.kind.is_user() || rt.kind.is_group())).then_some(h)
    }

    /// v5 `manageResourceOperation` on a resource about to be written or read.
    pub(super) fn gate(
        &self,
        h: &HookContext,
        rt: &ResourceTypeDef,
        resource: &Value,
        payload: Option<&Value>,
    ) -> ScimResult<()> {
        match self
            .hooks
            .manage_resource(h, rt.kind, resource, payload)
            .map_err(hook_error)?
        {
            Some(answer) => Err(scripted(answer)),
            None => Ok(()),
        }
    }

    /// `gate` for an operation on a stored resource (GET, PUT, PATCH, DELETE): the
    /// script sees the whole stored resource, whatever the response will show.
    /// Nothing is read when no script gates resources; the resource when one did.
    pub(super) fn gate_stored(
        &self,
        h: &HookContext,
        rt: &ResourceTypeDef,
        id: &str,
        ctx: &RequestCtx,
        payload: Option<&Value>,
    ) -> ScimResult<Option<Value>> {
        if !self.hooks.gates_resources() {
            return Ok(None);
        }
        let full = self.stored_full(rt, id, ctx)?;
        self.gate(h, rt, &full, payload)?;
        Ok(Some(full))
    }

    /// The stored resource with everything a response could show of it.
    pub(super) fn stored_full(
        &self,
        rt: &ResourceTypeDef,
        id: &str,
        ctx: &RequestCtx,
    ) -> ScimResult<Value> {
        let stored = self.store.get(rt, id).map_err(|e| not_found(e, rt, id))?;
        self.full_doc(rt, &stored, &ctx.projected(Projection::default()), true)
    }

    /// v1 hooks before a write; what they change is validated again, as if the
    /// client had sent it.
    pub(super) fn before_write(
        &self,
        h: &HookContext,
        rt: &ResourceTypeDef,
        op: WriteOp,
        doc: &mut Value,
        ctx: &RequestCtx,
    ) -> ScimResult<()> {
        let before = doc.clone();
        self.hooks
            .before_write(h, rt.kind, op, doc)
            .map_err(hook_error)?;
        if op != WriteOp::Delete && *doc != before {
            validate_document(&ctx.registry, rt, doc).map_err(|e| {
                ScimError::internal(format!(
                    "an interception script made the resource invalid: {}",
                    e.detail
                ))
            })?;
        }
        Ok(())
    }

    /// v2 hooks after a write. The write is stored whatever they say; a refusal
    /// answers 500 and says so.
    pub(super) fn after_write(
        &self,
        h: &HookContext,
        rt: &ResourceTypeDef,
        op: WriteOp,
        response: &mut Value,
    ) -> ScimResult<()> {
        self.hooks
            .after_write(h, rt.kind, op, response)
            .map_err(|e| {
                let mut err = hook_error(e);
                err.detail = format!("{} after the write; the write was stored", err.detail);
                err
            })
    }

    /// v3 hooks on a GET by id.
    pub(super) fn on_get(
        &self,
        h: &HookContext,
        rt: &ResourceTypeDef,
        response: &mut Value,
    ) -> ScimResult<()> {
        self.hooks.on_get(h, rt.kind, response).map_err(hook_error)
    }

    /// v4 hooks on a page of search results (a ListResponse).
    pub(super) fn after_search(
        &self,
        h: &HookContext,
        rt: &ResourceTypeDef,
        results: &mut Value,
    ) -> ScimResult<()> {
        self.hooks
            .after_search(h, rt.kind, results)
            .map_err(hook_error)
    }
}
