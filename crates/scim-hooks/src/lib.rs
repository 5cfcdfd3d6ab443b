//! Interception scripts: what the service calls around its operations (the
//! `Hooks` trait) and how scripts are managed (`ScriptManager`). The service knows
//! nothing of the script language; `NoHooks` is what it runs without scripts.

pub mod luau;

use chrono::{DateTime, Utc};
use scim_proto::schema::ResourceKind;
use serde_json::Value;
use std::collections::BTreeMap;

/// One script as an operator manages it (`scimd scripts add`, `/admin/scripts`).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct ScriptDef {
    pub name: String,
    /// Scripts run in ascending order (ties: by name).
    pub order: i64,
    pub enabled: bool,
    /// The script's source text.
    pub source: String,
    /// Its configuration properties (`config` in every call).
    #[serde(default)]
    pub properties: BTreeMap<String, String>,
}

/// Why a script could not be loaded: compile error or a failed `init`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("script '{script}'{}: {message}", line.map(|l| format!(", line {l}")).unwrap_or_default())]
pub struct ScriptError {
    pub script: String,
    pub line: Option<u32>,
    pub message: String,
}

/// The caller's token, as v5 scripts see it (`context.tokenDetails`); absent in
/// bypass mode.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct TokenDetails {
    pub client_id: String,
    /// Space-separated scopes, as granted.
    pub scope: String,
    pub expiration: Option<DateTime<Utc>>,
    /// `Bearer`, or `UMA` for an RPT.
    pub token_type: String,
}

/// What a script learns about the request (Gluu's `OperationContext`).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct HookContext {
    /// The request path below the API base, e.g. `/Users/abc`.
    pub path: String,
    /// The absolute API base, e.g. `https://h/scim/v2`.
    pub base_uri: String,
    pub method: String,
    /// `User`, `Group`, …
    pub resource_type: String,
    pub query_params: Vec<(String, String)>,
    /// Request headers, `Authorization` left out.
    pub request_headers: Vec<(String, String)>,
    pub token: Option<TokenDetails>,
    /// For the script log.
    pub request_id: Option<String>,
}

/// A response a v5 script sends instead of the operation.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct HookResponse {
    pub status: u16,
    /// With status ≥ 400 and no `schemas`, the SCIM Error schema is added.
    pub body: Option<Value>,
    pub headers: Vec<(String, String)>,
}

/// What `manageSearchOperation` decided.
#[derive(Debug, Clone, PartialEq)]
pub enum SearchGate {
    /// Go on; with a filter, the effective filter is `prepend and (original)`
    /// (`prepend` alone without an original filter).
    Continue { filter_prepend: Option<String> },
    /// Answer this instead of searching.
    Respond(HookResponse),
}

/// A write a v1 (before) or v2 (after) hook sees.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WriteOp {
    Create,
    /// PUT and PATCH.
    Update,
    Delete,
}

/// Why a hook stopped an operation. The service answers 500 with a detail that
/// names the script and never its internals; the script log has the rest.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum HookError {
    /// A boolean hook returned false.
    #[error("interception script '{script}' refused the operation")]
    Refused { script: String },
    /// A hook failed (runtime error, a limit broken, an invalid return value).
    #[error("interception script '{script}' failed")]
    Failed { script: String, message: String },
}

pub type HookResult<T> = Result<T, HookError>;

/// What the service calls around its operations (Gluu's SCIM custom-script API).
/// Every method is cheap when `active` is false; the service may skip calls then.
pub trait Hooks: Send + Sync {
    /// Whether any enabled script is loaded.
    fn active(&self) -> bool;

    /// Whether `manage_resource` may answer anything (a v5 script defines
    /// `manageResourceOperation`): when not, the service skips reading the stored
    /// resource for it.
    fn gates_resources(&self) -> bool {
        self.active()
    }

    /// Whether the hook calls of late took microseconds, not milliseconds: the
    /// service then runs a cheap point read with its hooks on the async worker
    /// instead of handing it to the blocking pool.
    fn calls_are_quick(&self) -> bool {
        !self.active()
    }

    /// v5 `manageResourceOperation` (first enabled v5 script only, before the v1
    /// hooks): `resource` is what a create would store, or the stored resource;
    /// `payload` the request body (None for GET and DELETE). `Some` answers the
    /// request instead of the operation.
    fn manage_resource(
        &self,
        ctx: &HookContext,
        kind: ResourceKind,
        resource: &Value,
        payload: Option<&Value>,
    ) -> HookResult<Option<HookResponse>>;

    /// v5 `manageSearchOperation` with the SearchRequest as JSON.
    fn manage_search(
        &self,
        ctx: &HookContext,
        kind: ResourceKind,
        search: &Value,
    ) -> HookResult<SearchGate>;

    /// v1 createUser/updateUser/deleteUser and the Group ones, before the write:
    /// may change what is stored; a false (or error) stops the operation.
    fn before_write(
        &self,
        ctx: &HookContext,
        kind: ResourceKind,
        op: WriteOp,
        resource: &mut Value,
    ) -> HookResult<()>;

    /// v2 postCreateUser/… after the write: may change only the response.
    fn after_write(
        &self,
        ctx: &HookContext,
        kind: ResourceKind,
        op: WriteOp,
        resource: &mut Value,
    ) -> HookResult<()>;

    /// v3 getUser/getGroup (GET by id): may change only the response.
    fn on_get(&self, ctx: &HookContext, kind: ResourceKind, resource: &mut Value)
        -> HookResult<()>;

    /// v4 postSearchUsers/postSearchGroups: `results` is the ListResponse.
    fn after_search(
        &self,
        ctx: &HookContext,
        kind: ResourceKind,
        results: &mut Value,
    ) -> HookResult<()>;

    /// The operations of request `request_id` were committed: release what the
    /// hooks kept for after the commit (`scim.notify`, when the engine defers
    /// notifications). Nothing by default.
    fn commit(&self, _request_id: &str) {}

    /// The request failed after its hooks ran: drop what they kept for after
    /// the commit. Nothing by default.
    fn discard(&self, _request_id: &str) {}
}

/// Loading and checking scripts (the admin API, the CLI, hot reload).
pub trait ScriptManager: Send + Sync {
    /// Compile the script and run its `init` in a throwaway state; nothing changes.
    fn check(&self, def: &ScriptDef) -> Result<(), ScriptError>;

    /// Make `defs` the running set: `destroy` on the scripts replaced or removed,
    /// `init` on the new ones. A script that fails to load is left out and
    /// reported; the others run. Calls in flight finish on the set they started on.
    fn load(&self, defs: Vec<ScriptDef>) -> Vec<ScriptError>;

    /// The last runtime error of each script that has had one: (script, message,
    /// when). The service records them where `scimd scripts show` finds them.
    fn runtime_errors(&self) -> Vec<(String, String, DateTime<Utc>)> {
        Vec::new()
    }
}

/// No scripts: every hook lets the operation through unchanged.
#[derive(Debug, Clone, Copy, Default)]
pub struct NoHooks;

impl Hooks for NoHooks {
    fn active(&self) -> bool {
        false
    }
    fn manage_resource(
        &self,
        _: &HookContext,
        _: ResourceKind,
        _: &Value,
        _: Option<&Value>,
    ) -> HookResult<Option<HookResponse>> {
        Ok(None)
    }
    fn manage_search(&self, _: &HookContext, _: ResourceKind, _: &Value) -> HookResult<SearchGate> {
        Ok(SearchGate::Continue {
            filter_prepend: None,
        })
    }
    fn before_write(
        &self,
        _: &HookContext,
        _: ResourceKind,
        _: WriteOp,
        _: &mut Value,
    ) -> HookResult<()> {
        Ok(())
    }
    fn after_write(
        &self,
        _: &HookContext,
        _: ResourceKind,
        _: WriteOp,
        _: &mut Value,
    ) -> HookResult<()> {
        Ok(())
    }
    fn on_get(&self, _: &HookContext, _: ResourceKind, _: &mut Value) -> HookResult<()> {
        Ok(())
    }
    fn after_search(&self, _: &HookContext, _: ResourceKind, _: &mut Value) -> HookResult<()> {
        Ok(())
    }
}
