//! The service layer: protocol validation, storage, and the response form of a
//! resource, split by operation (`create`, `update`, `delete`, `search`, `render`;
//! Bulk, feeds and admin live beside it). Synchronous on purpose — the HTTP layer
//! runs it on the blocking pool, next to the (synchronous) store.

mod create;
mod delete;
mod hooks;
mod members;
mod render;
mod search;
mod update;

#[cfg(test)]
mod tests;

pub use create::Created;
pub(crate) use render::stamp_meta;
pub use render::{MemberList, Rendered};
pub use search::{RootSearch, SearchCost, SearchQuery};

use crate::config::ServerConfig;
use scim_proto::clock::Clock;
use scim_proto::filter::{AttrPath, CompareOp, Filter, Literal};
use scim_proto::project::Projection;
use scim_proto::schema::{ResourceTypeDef, SchemaRegistry, SharedRegistry};
use scim_proto::{ScimError, ScimResult};
use scim_store::{SecretChange, Store, StoreError};
use serde_json::Value;
use std::sync::Arc;

pub struct Service {
    pub registry: Arc<SharedRegistry>,
    pub store: Arc<dyn Store>,
    pub clock: Arc<dyn Clock>,
    pub config: ServerConfig,
    /// Read-modify-writes of one resource queue here rather than race.
    pub updating: crate::locks::KeyedLocks,
    /// What runs around each operation (the interception scripts).
    pub hooks: Arc<dyn scim_hooks::Hooks>,
    /// Checks scripts and makes the stored set the running one (`crate::scripts`).
    pub scripts: Arc<dyn scim_hooks::ScriptManager>,
}

/// Per-request context from the HTTP layer.
#[derive(Clone)]
pub struct RequestCtx {
    /// Absolute base of the SCIM API as the client addressed it, e.g. `http://h/scim/v2`.
    pub base_url: String,
    pub projection: Projection,
    /// Gluu's `Group-Overhead-Bypass`: members are not checked and never displayed.
    pub overhead_bypass: bool,
    /// The schema registry as it was when the request arrived: one snapshot serves
    /// the whole request, even if custom attributes change meanwhile.
    pub registry: Arc<SchemaRegistry>,
    /// What interception scripts see of the request; None when no script runs
    /// (and for work that does not come from the API).
    pub hook: Option<Arc<scim_hooks::HookContext>>,
    /// Who is asking: recorded with every write (the audit trail).
    pub actor: scim_store::Actor,
}

impl RequestCtx {
    /// The same request, with another projection.
    pub(crate) fn projected(&self, projection: Projection) -> RequestCtx {
        RequestCtx {
            projection,
            ..self.clone()
        }
    }
}

/// The projection that leaves a group's member list out.
pub(crate) fn without_members() -> Projection {
    Projection {
        attributes: vec![],
        excluded: vec![AttrPath::simple("members")],
    }
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
        StoreError::Backend(e) => ScimError::internal_because("storage failure", e),
        StoreError::Unavailable(e) => ScimError {
            cause: Some(e),
            ..ScimError::new(
                503,
                None,
                "the database is not available right now; nothing was changed, try again shortly",
            )
        },
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

impl Service {
    /// The registry as it is now (custom attributes can change at run time).
    pub fn registry(&self) -> Arc<SchemaRegistry> {
        self.registry.load()
    }

    /// A context for work that does not come from an HTTP request (admin commands,
    /// maintenance): no base URL, full projection, today's registry.
    pub fn local_ctx(&self) -> RequestCtx {
        RequestCtx {
            base_url: String::new(),
            projection: Projection::default(),
            overhead_bypass: false,
            registry: self.registry(),
            hook: None,
            actor: scim_store::Actor::system("scimd"),
        }
    }

    pub fn resource_type(&self, endpoint: &str) -> Option<ResourceTypeDef> {
        self.registry().resource_type_by_endpoint(endpoint).cloned()
    }

    fn location(&self, ctx: &RequestCtx, rt: &ResourceTypeDef, id: &str) -> String {
        format!("{}{}/{}", ctx.base_url, rt.endpoint, id)
    }

    /// Now, at the millisecond precision timestamps are shown with, so the document
    /// and the indexed columns agree.
    fn now(&self) -> chrono::DateTime<chrono::Utc> {
        let t = self.clock.now();
        chrono::DurationRound::duration_trunc(t, chrono::TimeDelta::milliseconds(1)).unwrap_or(t)
    }
}

/// A user's userName (None for other types), kept to name it in a uniqueness error.
fn user_name(rt: &ResourceTypeDef, doc: &Value) -> Option<String> {
    rt.kind
        .is_user()
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

/// The filter of one user's devices (Gluu's `userId` parameter).
fn owner_filter(user_id: &str) -> Filter {
    Filter::Compare {
        path: AttrPath::simple("userId"),
        op: CompareOp::Eq,
        value: Literal::String(user_id.to_string()),
    }
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
