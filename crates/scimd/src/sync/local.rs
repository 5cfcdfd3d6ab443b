//! scimd's own users and groups as the sync engine's `managed/*` object set:
//! through the service layer, so a synced write is validated, runs the
//! interception scripts and enters the change feed like any API write.

use async_trait::async_trait;
use scim_proto::messages::SearchRequest;
use scim_proto::project::Projection;
use scim_proto::schema::ResourceTypeDef;
use scim_proto::ScimError;
use scim_server::service::{etag, Rendered, Service};
use scim_store::ChangeOp;
use scim_sync::config::{ObjectKind, Quirks};
use scim_sync::links::version_of;
use scim_sync::ops::{patch_request, PatchOp};
use scim_sync_engine::{Changed, Listed, Mark, ObjectError, ObjectSet};
use serde_json::Value;
use std::collections::HashMap;
use std::sync::Arc;

/// Resources per page when a run reads all of them, and changes per feed page.
const PAGE: usize = 1000;

pub(crate) struct LocalSet {
    pub(crate) service: Arc<Service>,
}

fn object_error(e: ScimError) -> ObjectError {
    let text = match e.scim_type {
        Some(t) => format!("{} {}: {}", e.status, t.as_str(), e.detail),
        None => format!("{}: {}", e.status, e.detail),
    };
    match e.status {
        409 => ObjectError::Conflict(text),
        403 => ObjectError::Forbidden(text),
        404 => ObjectError::NotFound(text),
        _ => ObjectError::Failed(text),
    }
}

/// A rendered resource as one document (a single group's members included).
fn document(r: Rendered) -> Value {
    let mut doc = r.doc;
    if let (Some(members), Some(o)) = (r.members, doc.as_object_mut()) {
        o.insert(
            "members".into(),
            serde_json::to_value(members).unwrap_or(Value::Array(Vec::new())),
        );
    }
    doc
}

impl LocalSet {
    fn rt(&self, kind: ObjectKind) -> Result<ResourceTypeDef, ObjectError> {
        self.service
            .registry()
            .resource_type(kind.resource_type())
            .cloned()
            .ok_or_else(|| ObjectError::Failed(format!("no {} type", kind.resource_type())))
    }

    /// Run service work on a blocking thread (the service and store are synchronous).
    async fn call<T: Send + 'static>(
        &self,
        f: impl FnOnce(&Service) -> Result<T, ScimError> + Send + 'static,
    ) -> Result<T, ObjectError> {
        let service = self.service.clone();
        tokio::task::spawn_blocking(move || f(&service))
            .await
            .map_err(|e| ObjectError::Failed(format!("service task: {e}")))?
            .map_err(object_error)
    }
}

/// Every resource of `rt` matching `filter`, page after page (cursor paging).
fn list_all(
    service: &Service,
    rt: &ResourceTypeDef,
    filter: Option<String>,
    attributes: Option<String>,
) -> Result<Vec<Value>, ScimError> {
    let mut ctx = service.local_ctx();
    ctx.projection = Projection::parse(attributes.as_deref(), None)?;
    let count = PAGE.min(usize::try_from(service.config.max_results).unwrap_or(PAGE));
    let mut out = Vec::new();
    let mut cursor = String::new();
    loop {
        let req = SearchRequest {
            filter: filter.clone(),
            count: Some(count as i64),
            cursor: Some(cursor.clone()),
            ..SearchRequest::default()
        };
        let q = service.prepare_search(rt, &req, &ctx)?;
        let mut page = service.search(&q, &ctx)?;
        if let Some(Value::Array(items)) = page.get_mut("Resources").map(Value::take) {
            out.extend(items);
        }
        match page.get("nextCursor").and_then(Value::as_str) {
            Some(next) if !next.is_empty() => cursor = next.to_string(),
            _ => return Ok(out),
        }
    }
}

#[async_trait]
impl ObjectSet for LocalSet {
    async fn list(
        &self,
        kind: ObjectKind,
        filter: Option<&str>,
        attributes: &[String],
    ) -> Result<Vec<Value>, ObjectError> {
        let rt = self.rt(kind)?;
        let filter = filter.map(str::to_string);
        let attributes = (!attributes.is_empty()).then(|| attributes.join(","));
        self.call(move |s| list_all(s, &rt, filter, attributes))
            .await
    }

    /// Straight from the store's columns: no document is read or rendered.
    async fn versions(&self, kind: ObjectKind) -> Result<Vec<Listed>, ObjectError> {
        let store = self.service.store.clone();
        let rtype = kind.resource_type().to_string();
        tokio::task::spawn_blocking(move || {
            let mut out = Vec::new();
            let mut after: Option<String> = None;
            loop {
                let page = store.versions(&rtype, after.as_deref(), PAGE * 10)?;
                let full = page.len() == PAGE * 10;
                after = page.last().map(|(id, _)| id.clone());
                out.extend(page.into_iter().map(|(id, v)| Listed {
                    id,
                    version: Some(etag(v)),
                }));
                if !full {
                    return Ok(out);
                }
            }
        })
        .await
        .map_err(|e| ObjectError::Failed(format!("store task: {e}")))?
        .map_err(|e: scim_store::StoreError| ObjectError::Failed(format!("reading versions: {e}")))
    }

    async fn get(&self, kind: ObjectKind, id: &str) -> Result<Option<Value>, ObjectError> {
        let (rt, id) = (self.rt(kind)?, id.to_string());
        let found = self
            .call(move |s| match s.get(&rt, &id, &s.local_ctx()) {
                Ok(r) => Ok(Some(document(r))),
                Err(e) if e.status == 404 => Ok(None),
                Err(e) => Err(e),
            })
            .await?;
        Ok(found)
    }

    async fn create(&self, kind: ObjectKind, doc: &Value) -> Result<Value, ObjectError> {
        let (rt, doc) = (self.rt(kind)?, doc.clone());
        self.call(move |s| s.create(&rt, &doc, &s.local_ctx()).map(document))
            .await
    }

    async fn update(
        &self,
        kind: ObjectKind,
        id: &str,
        ops: &[PatchOp],
    ) -> Result<Option<String>, ObjectError> {
        let (rt, id) = (self.rt(kind)?, id.to_string());
        let body = patch_request(ops, Quirks::Standard);
        self.call(move |s| {
            s.patch(&rt, &id, &body, None, &s.local_ctx())
                .map(|r| version_of(&r.doc).map(str::to_string))
        })
        .await
    }

    async fn delete(&self, kind: ObjectKind, id: &str) -> Result<(), ObjectError> {
        let (rt, id) = (self.rt(kind)?, id.to_string());
        self.call(move |s| match s.delete(&rt, &id, None, &s.local_ctx()) {
            Err(e) if e.status == 404 => Ok(()),
            other => other,
        })
        .await
    }

    async fn mark(&self) -> Result<Mark, ObjectError> {
        let store = self.service.store.clone();
        let position = tokio::task::spawn_blocking(move || store.feed_head())
            .await
            .map_err(|e| ObjectError::Failed(format!("feed task: {e}")))?
            .map_err(|e| ObjectError::Failed(format!("reading the change feed: {e}")))?;
        Ok(Mark::Feed { position })
    }

    async fn changed_since(&self, kind: ObjectKind, mark: &Mark) -> Result<Changed, ObjectError> {
        let Mark::Feed { position } = mark else {
            return Err(ObjectError::Failed(
                "not a mark of scimd's change feed".into(),
            ));
        };
        let store = self.service.store.clone();
        let rtype = kind.resource_type().to_string();
        let from = position.clone();
        // The last change of each object decides: changed (read it now) or gone.
        let last = tokio::task::spawn_blocking(move || {
            let mut last: HashMap<String, bool> = HashMap::new();
            let mut after = from;
            loop {
                let page = store.changes(after.as_deref(), PAGE)?;
                for c in page.changes.iter().filter(|c| c.rtype == rtype) {
                    last.insert(c.id.clone(), c.op == ChangeOp::Deleted);
                }
                if !page.more {
                    return Ok(last);
                }
                after = Some(page.next);
            }
        })
        .await
        .map_err(|e| ObjectError::Failed(format!("feed task: {e}")))?
        .map_err(|e: scim_store::StoreError| match e {
            // Pruned past the mark: the run reads everything instead.
            scim_store::StoreError::BadCursor(d) => ObjectError::Gone(d),
            e => ObjectError::Failed(format!("reading the change feed: {e}")),
        })?;
        let mut out = Changed::default();
        for (id, deleted) in last {
            if deleted {
                out.deleted.push(id);
            } else if let Some(doc) = self.get(kind, &id).await? {
                out.changed.push(doc);
            } else {
                out.deleted.push(id);
            }
        }
        Ok(out)
    }
}
