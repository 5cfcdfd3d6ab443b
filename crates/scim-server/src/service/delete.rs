//! Deleting resources: a user takes its devices with it.

use super::{not_found, owner_filter, store_error, RequestCtx, Service};
use scim_hooks::WriteOp;
use scim_proto::schema::ResourceTypeDef;
use scim_proto::ScimResult;
use scim_store::{Query, StoreError};

impl Service {
    pub fn delete(
        &self,
        rt: &ResourceTypeDef,
        id: &str,
        if_match: Option<i64>,
        ctx: &RequestCtx,
    ) -> ScimResult<()> {
        let Some(h) = self.hooked(ctx, rt) else {
            return self.delete_unhooked(rt, id, if_match, ctx);
        };
        let mut stored = match self.gate_stored(h, rt, id, ctx, None)? {
            Some(full) => full,
            None => self.stored_full(rt, id, ctx)?,
        };
        self.before_write(h, rt, WriteOp::Delete, &mut stored, ctx)?;
        self.delete_unhooked(rt, id, if_match, ctx)?;
        self.after_write(h, rt, WriteOp::Delete, &mut stored)
    }

    fn delete_unhooked(
        &self,
        rt: &ResourceTypeDef,
        id: &str,
        if_match: Option<i64>,
        ctx: &RequestCtx,
    ) -> ScimResult<()> {
        if rt.kind.is_user() {
            // Devices go first: a crash in between leaves a user with fewer
            // devices, never devices without a user; a retried DELETE finishes.
            // A refused condition must leave the devices too.
            let version = self.version(rt, id)?;
            if if_match.is_some_and(|v| v != version) {
                return Err(store_error(StoreError::VersionMismatch));
            }
            self.delete_devices_of(id, ctx)?;
        }
        self.store
            .delete(rt, id, if_match, self.now(), &ctx.actor)
            .map_err(|e| not_found(e, rt, id))
    }

    fn delete_devices_of(&self, user_id: &str, ctx: &RequestCtx) -> ScimResult<()> {
        let registry = self.registry();
        for rt in registry
            .resource_types()
            .iter()
            .filter(|r| r.kind.is_device())
        {
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
                    match self.store.delete(rt, &d.id, None, self.now(), &ctx.actor) {
                        Ok(()) | Err(StoreError::NotFound) => {}
                        Err(e) => return Err(store_error(e)),
                    }
                }
            }
        }
        Ok(())
    }
}
