//! /Bulk (RFC 7644 §3.7): operations in order, `bulkId` references resolved in
//! paths and data, `failOnErrors`, per-operation results.

use crate::service::{parse_etag, RequestCtx, Service};
use scim_proto::schema::ResourceTypeDef;
use scim_proto::{ScimError, ScimResult};
use scim_store::ResourceWrite;
use serde_json::{json, Map, Value};
use std::collections::HashMap;

use scim_proto::messages::{BULK_REQUEST, BULK_RESPONSE};

/// One operation as sent by the client.
#[derive(Debug, Clone)]
struct Op {
    method: String,
    bulk_id: Option<String>,
    version: Option<String>,
    path: String,
    data: Option<Value>,
}

/// What one successful operation produced.
struct Outcome {
    status: u16,
    /// Id of a created resource (to resolve its bulkId).
    created_id: Option<String>,
    location: Option<String>,
    version: Option<String>,
}

/// Decides whether the caller may run one operation (scope checks live in the
/// protection layer; bypass mode allows everything).
pub type Authorise<'a> = &'a (dyn Fn(&str, &str) -> Result<(), ScimError> + Sync);

fn field<'a>(o: &'a Map<String, Value>, name: &str) -> Option<&'a Value> {
    o.iter()
        .find(|(k, _)| k.eq_ignore_ascii_case(name))
        .map(|(_, v)| v)
}

fn parse_ops(body: &Value, max_ops: usize) -> ScimResult<(Vec<Op>, Option<usize>)> {
    let obj = body
        .as_object()
        .ok_or_else(|| ScimError::invalid_syntax("BulkRequest must be a JSON object"))?;
    let schemas_ok = field(obj, "schemas")
        .and_then(Value::as_array)
        .is_some_and(|a| a.iter().any(|s| s.as_str() == Some(BULK_REQUEST)));
    if !schemas_ok {
        return Err(ScimError::invalid_syntax(format!(
            "schemas must contain {BULK_REQUEST}"
        )));
    }
    let fail_on_errors =
        match field(obj, "failOnErrors") {
            None | Some(Value::Null) => None,
            Some(v) => Some(v.as_u64().filter(|n| *n >= 1).ok_or_else(|| {
                ScimError::invalid_value("failOnErrors must be a positive integer")
            })? as usize),
        };
    let ops = field(obj, "Operations")
        .and_then(Value::as_array)
        .ok_or_else(|| ScimError::invalid_syntax("Operations must be an array"))?;
    if ops.len() > max_ops {
        return Err(ScimError::payload_too_large(format!(
            "{} operations exceed the maximum of {max_ops}",
            ops.len()
        )));
    }
    let mut out = Vec::with_capacity(ops.len());
    for (i, op) in ops.iter().enumerate() {
        let o = op.as_object().ok_or_else(|| {
            ScimError::invalid_syntax(format!("Operations[{i}] must be an object"))
        })?;
        let text = |k: &str| field(o, k).and_then(Value::as_str).map(str::to_string);
        let method = text("method")
            .ok_or_else(|| ScimError::invalid_syntax(format!("Operations[{i}] needs a method")))?
            .to_ascii_uppercase();
        if !matches!(method.as_str(), "POST" | "PUT" | "PATCH" | "DELETE") {
            return Err(ScimError::invalid_syntax(format!(
                "Operations[{i}]: method '{method}' is not POST, PUT, PATCH or DELETE"
            )));
        }
        let path = text("path")
            .ok_or_else(|| ScimError::invalid_syntax(format!("Operations[{i}] needs a path")))?;
        let bulk_id = text("bulkId");
        if method == "POST" && bulk_id.is_none() {
            return Err(ScimError::invalid_syntax(format!(
                "Operations[{i}]: POST needs a bulkId"
            )));
        }
        out.push(Op {
            method,
            bulk_id,
            version: text("version"),
            path,
            data: field(o, "data").cloned(),
        });
    }
    Ok((out, fail_on_errors))
}

/// Every `bulkId:x` reference in a string or JSON value.
fn references(v: &Value, out: &mut Vec<String>) {
    match v {
        Value::String(s) => {
            if let Some(id) = s.strip_prefix("bulkId:") {
                out.push(id.to_string());
            }
        }
        Value::Array(a) => a.iter().for_each(|x| references(x, out)),
        Value::Object(o) => o.values().for_each(|x| references(x, out)),
        _ => {}
    }
}

fn op_references(op: &Op) -> Vec<String> {
    let mut refs = Vec::new();
    for seg in op.path.split('/') {
        if let Some(id) = seg.strip_prefix("bulkId:") {
            refs.push(id.to_string());
        }
    }
    if let Some(d) = &op.data {
        references(d, &mut refs);
    }
    refs
}

fn substitute(v: &mut Value, ids: &HashMap<String, String>) {
    match v {
        Value::String(s) => {
            if let Some(real) = s.strip_prefix("bulkId:").and_then(|b| ids.get(b)) {
                *s = real.clone();
            }
        }
        Value::Array(a) => a.iter_mut().for_each(|x| substitute(x, ids)),
        Value::Object(o) => o.values_mut().for_each(|x| substitute(x, ids)),
        _ => {}
    }
}

fn result(op: &Op, status: u16, location: Option<String>, version: Option<String>) -> Value {
    let mut r = Map::new();
    r.insert("method".into(), json!(op.method));
    if let Some(b) = &op.bulk_id {
        r.insert("bulkId".into(), json!(b));
    }
    if let Some(v) = version {
        r.insert("version".into(), json!(v));
    }
    if let Some(l) = location {
        r.insert("location".into(), json!(l));
    }
    r.insert("status".into(), json!(status.to_string()));
    Value::Object(r)
}

fn invalid_op(op: &Op) -> ScimError {
    ScimError::invalid_syntax(format!(
        "'{} {}' is not a valid bulk operation",
        op.method, op.path
    ))
}

fn failure(op: &Op, e: &ScimError) -> Value {
    let mut r = result(op, e.status, None, None);
    r["response"] = e.to_json();
    r
}

/// Where a BulkRequest stands while it runs.
struct Progress {
    ids: HashMap<String, String>,
    results: Vec<Option<Value>>,
    errors: usize,
    fail_on_errors: Option<usize>,
    /// Creations validated and waiting to be stored together, in request order.
    batch: Vec<(usize, ResourceTypeDef, ResourceWrite)>,
}

impl Progress {
    fn stopped(&self) -> bool {
        self.fail_on_errors.is_some_and(|n| self.errors >= n)
    }

    fn record(&mut self, i: usize, op: &Op, outcome: ScimResult<Outcome>) {
        self.results[i] = Some(match outcome {
            Ok(o) => {
                if let (Some(b), Some(id)) = (&op.bulk_id, o.created_id) {
                    self.ids.insert(b.clone(), id);
                }
                result(op, o.status, o.location, o.version)
            }
            Err(e) => {
                self.errors += 1;
                failure(op, &e)
            }
        });
    }
}

impl Service {
    /// Run a BulkRequest. Operations referring to a `bulkId` created later in the
    /// request wait until it exists; what can never be resolved (circular or
    /// unknown references) fails with 409. Consecutive POSTs that refer to no
    /// bulkId are stored together (one commit on SQLite): a 1,000-user load costs
    /// one fsync, not 1,000, and is answered only once durable.
    pub fn bulk(
        &self,
        body: &Value,
        ctx: &RequestCtx,
        authorise: Authorise<'_>,
    ) -> ScimResult<Value> {
        let (ops, fail_on_errors) = parse_ops(body, self.config.bulk_max_operations)?;
        let declared: Vec<&str> = ops.iter().filter_map(|o| o.bulk_id.as_deref()).collect();
        let mut p = Progress {
            ids: HashMap::new(),
            results: vec![None; ops.len()],
            errors: 0,
            fail_on_errors,
            batch: Vec::new(),
        };
        let mut pending: Vec<usize> = (0..ops.len()).collect();
        loop {
            let mut progressed = false;
            let mut still = Vec::new();
            for i in pending {
                if p.stopped() {
                    still.push(i);
                    continue;
                }
                let op = &ops[i];
                let refs = op_references(op);
                // With scripts every operation runs alone, so its hooks see it
                // (and may stop it) by itself.
                if refs.is_empty() && op.method == "POST" && ctx.hook.is_none() {
                    match self.prepare_bulk_create(op, ctx, authorise) {
                        Ok((rt, write)) => {
                            p.batch.push((i, rt, write));
                            progressed = true;
                            continue;
                        }
                        // Keep request order: what was batched before runs first.
                        Err(e) => {
                            self.store_batch(&ops, &mut p, &mut still, ctx);
                            if p.stopped() {
                                still.push(i);
                            } else {
                                p.record(i, op, Err(e));
                                progressed = true;
                            }
                            continue;
                        }
                    }
                }
                self.store_batch(&ops, &mut p, &mut still, ctx);
                if p.stopped() {
                    still.push(i);
                    continue;
                }
                let unknown = refs.iter().find(|r| !declared.contains(&r.as_str()));
                if let Some(r) = unknown {
                    let e =
                        ScimError::conflict(format!("bulkId '{r}' is not defined in this request"));
                    p.record(i, op, Err(e));
                    progressed = true;
                    continue;
                }
                if refs.iter().any(|r| !p.ids.contains_key(r)) {
                    still.push(i);
                    continue;
                }
                let res = self.bulk_op(i, op, &p.ids, ctx, authorise);
                progressed = true;
                p.record(i, op, res);
            }
            self.store_batch(&ops, &mut p, &mut still, ctx);
            still.sort_unstable();
            pending = still;
            if pending.is_empty() || !progressed || p.stopped() {
                break;
            }
        }
        if !p.stopped() {
            for i in pending {
                let e = ScimError::conflict(
                    "circular bulkId reference: the operations it depends on could not complete first",
                );
                p.results[i] = Some(failure(&ops[i], &e));
            }
        }
        Ok(json!({
            "schemas": [BULK_RESPONSE],
            "Operations": p.results.into_iter().flatten().collect::<Vec<_>>(),
        }))
    }

    /// Validate a POST that refers to no bulkId, without storing it.
    fn prepare_bulk_create(
        &self,
        op: &Op,
        ctx: &RequestCtx,
        authorise: Authorise<'_>,
    ) -> ScimResult<(ResourceTypeDef, ResourceWrite)> {
        let endpoint = op.path.trim_matches('/');
        if endpoint.contains('/') {
            return Err(invalid_op(op));
        }
        let rt = resource_type(ctx, endpoint)?;
        authorise(&op.method, &rt.endpoint)?;
        let data = op.data.clone().unwrap_or(Value::Null);
        let write = self.prepare_create(&rt, &data, ctx)?;
        Ok((rt, write))
    }

    /// Store the batched creations and record their outcomes; those not attempted
    /// because failOnErrors was reached go back to `still`.
    fn store_batch(&self, ops: &[Op], p: &mut Progress, still: &mut Vec<usize>, ctx: &RequestCtx) {
        if p.batch.is_empty() {
            return;
        }
        let batch = std::mem::take(&mut p.batch);
        let max_failures = p
            .fail_on_errors
            .map_or(usize::MAX, |n| n.saturating_sub(p.errors));
        let order: Vec<usize> = batch.iter().map(|(i, _, _)| *i).collect();
        let items = batch.into_iter().map(|(_, rt, w)| (rt, w)).collect();
        let outcomes = self.create_prepared(items, max_failures, ctx);
        let attempted = outcomes.len();
        for (&i, outcome) in order.iter().zip(outcomes) {
            let outcome = outcome.map(|c| Outcome {
                status: 201,
                created_id: Some(c.id),
                location: Some(c.location),
                version: Some(crate::service::etag(c.version)),
            });
            p.record(i, &ops[i], outcome);
        }
        still.extend_from_slice(&order[attempted..]);
    }

    /// Execute one operation: (status, new id, location, version).
    fn bulk_op(
        &self,
        index: usize,
        op: &Op,
        ids: &HashMap<String, String>,
        ctx: &RequestCtx,
        authorise: Authorise<'_>,
    ) -> ScimResult<Outcome> {
        let mut data = op.data.clone().unwrap_or(Value::Null);
        substitute(&mut data, ids);
        let segments: Vec<String> = op
            .path
            .trim_matches('/')
            .split('/')
            .map(|s| {
                s.strip_prefix("bulkId:")
                    .and_then(|b| ids.get(b).cloned())
                    .unwrap_or_else(|| s.to_string())
            })
            .collect();
        let endpoint = segments.first().map(String::as_str).unwrap_or_default();
        let rt = resource_type(ctx, endpoint)?;
        authorise(&op.method, &rt.endpoint)?;
        let if_match = match &op.version {
            Some(v) => parse_etag(v).ok_or_else(|| {
                ScimError::precondition_failed(format!("version '{v}' is not an ETag"))
            })?,
            None => None,
        };
        let op_ctx = operation_ctx(ctx, index, &op.method, &segments, &rt);
        let result = self.run_op(op, &segments, &rt, &data, if_match, &op_ctx);
        // Each operation is its own transaction: what its hooks kept goes or stays now.
        if let Some(rid) = op_ctx.hook.as_ref().and_then(|h| h.request_id.as_deref()) {
            match &result {
                Ok(_) => self.hooks.commit(rid),
                Err(_) => self.hooks.discard(rid),
            }
        }
        result
    }

    /// One operation of a Bulk request, its references resolved.
    fn run_op(
        &self,
        op: &Op,
        segments: &[String],
        rt: &ResourceTypeDef,
        data: &Value,
        if_match: Option<i64>,
        ctx: &RequestCtx,
    ) -> ScimResult<Outcome> {
        let etag = |v: i64| Some(crate::service::etag(v));
        match (op.method.as_str(), segments.get(1), segments.len()) {
            ("POST", None, 1) => {
                let r = self.create(rt, data, ctx)?;
                Ok(Outcome {
                    status: 201,
                    created_id: r.doc.get("id").and_then(Value::as_str).map(str::to_string),
                    location: Some(r.location),
                    version: etag(r.version),
                })
            }
            ("PUT", Some(id), 2) => {
                let r = self.replace(rt, id, data, if_match, ctx)?;
                Ok(Outcome {
                    status: 200,
                    created_id: None,
                    location: Some(r.location),
                    version: etag(r.version),
                })
            }
            ("PATCH", Some(id), 2) => {
                let r = self.patch(rt, id, data, if_match, ctx)?;
                Ok(Outcome {
                    status: 200,
                    created_id: None,
                    location: Some(r.location),
                    version: etag(r.version),
                })
            }
            ("DELETE", Some(id), 2) => {
                self.delete(rt, id, if_match, ctx)?;
                Ok(Outcome {
                    status: 204,
                    created_id: None,
                    location: None,
                    version: None,
                })
            }
            _ => Err(invalid_op(op)),
        }
    }
}

/// The resource type an operation's path names, from the request's snapshot.
fn resource_type(ctx: &RequestCtx, endpoint: &str) -> ScimResult<ResourceTypeDef> {
    ctx.registry
        .resource_type_by_endpoint(endpoint)
        .cloned()
        .ok_or_else(|| ScimError::not_found(format!("no resource type at /{endpoint}")))
}

/// The request context of one Bulk operation: scripts see the operation's own
/// method, path and resource type, not the Bulk request's.
fn operation_ctx<'a>(
    ctx: &'a RequestCtx,
    index: usize,
    method: &str,
    segments: &[String],
    rt: &ResourceTypeDef,
) -> std::borrow::Cow<'a, RequestCtx> {
    let Some(h) = &ctx.hook else {
        return std::borrow::Cow::Borrowed(ctx);
    };
    std::borrow::Cow::Owned(RequestCtx {
        hook: Some(std::sync::Arc::new(scim_hooks::HookContext {
            method: method.to_string(),
            path: format!("/{}", segments.join("/")),
            resource_type: rt.name.clone(),
            // Each operation's notifications stand or fall with it.
            request_id: h.request_id.as_ref().map(|r| format!("{r}.{index}")),
            ..(**h).clone()
        })),
        ..ctx.clone()
    })
}
