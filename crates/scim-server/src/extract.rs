//! The application state and the axum extractors every handler shares: the
//! request's schema snapshot, its context (base URL, projection, Gluu's overhead
//! bypass) and the resource type an endpoint names.

use crate::http::{error_response, API_PREFIXES};
use crate::service::{RequestCtx, Service};
use axum::extract::{FromRequestParts, OriginalUri, RawPathParams};
use axum::http::request::Parts;
use axum::http::{header, HeaderMap};
use axum::response::{IntoResponse, Response};
use scim_hooks::{HookContext, TokenDetails};
use scim_proto::messages::param;
use scim_proto::project::Projection;
use scim_proto::schema::{ResourceTypeDef, SchemaRegistry};
use scim_proto::ScimError;
use std::sync::Arc;

/// What every handler gets: the service and the admission slots of slow reads.
#[derive(Clone)]
pub struct AppState {
    pub svc: Arc<Service>,
    /// Searches and feed pages that may run at once. They can take seconds (a `co`
    /// filter on a large directory) and wait for the store's few reader
    /// connections; past this many they wait here, holding no blocking thread, so
    /// writes and lookups still find one.
    pub(crate) search_slots: Arc<tokio::sync::Semaphore>,
}

/// Slow reads admitted at once (see `AppState::search_slots`).
const SEARCH_SLOTS: usize = 8;

impl AppState {
    pub fn new(svc: Arc<Service>) -> AppState {
        AppState {
            svc,
            search_slots: Arc::new(tokio::sync::Semaphore::new(SEARCH_SLOTS)),
        }
    }
}

/// A handler's SCIM error, answered as a SCIM error body.
pub(crate) struct Failure(pub(crate) ScimError);

impl IntoResponse for Failure {
    fn into_response(self) -> Response {
        error_response(&self.0)
    }
}

impl From<ScimError> for Failure {
    fn from(e: ScimError) -> Self {
        Failure(e)
    }
}

/// The schema registry as the request found it, loaded once per request: a
/// custom attribute added meanwhile never changes a request half-way.
#[derive(Clone)]
pub(crate) struct Snapshot(pub(crate) Arc<SchemaRegistry>);

fn snapshot(parts: &mut Parts, state: &AppState) -> Arc<SchemaRegistry> {
    if let Some(Snapshot(r)) = parts.extensions.get::<Snapshot>() {
        return r.clone();
    }
    let registry = state.svc.registry();
    parts.extensions.insert(Snapshot(registry.clone()));
    registry
}

impl FromRequestParts<AppState> for Snapshot {
    type Rejection = Failure;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, Failure> {
        Ok(Snapshot(snapshot(parts, state)))
    }
}

/// `http(s)://host/prefix` as the client addressed us, for `meta.location` and `$ref`.
pub(crate) struct BaseUrl(pub(crate) String);

pub(crate) fn base_url(headers: &HeaderMap, path: &str) -> String {
    let host = headers
        .get(header::HOST)
        .and_then(|h| h.to_str().ok())
        .unwrap_or("localhost");
    let scheme = headers
        .get("x-forwarded-proto")
        .and_then(|h| h.to_str().ok())
        .unwrap_or("http");
    let prefix = API_PREFIXES
        .iter()
        .filter(|p| path.starts_with(*p))
        .max_by_key(|p| p.len())
        .copied()
        .unwrap_or(API_PREFIXES[0]);
    format!("{scheme}://{host}{prefix}")
}

fn original_path(parts: &Parts) -> String {
    match parts.extensions.get::<OriginalUri>() {
        Some(OriginalUri(u)) => u.path().to_string(),
        None => parts.uri.path().to_string(),
    }
}

impl<S: Send + Sync> FromRequestParts<S> for BaseUrl {
    type Rejection = Failure;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Failure> {
        Ok(BaseUrl(base_url(&parts.headers, &original_path(parts))))
    }
}

/// The query string as name/value pairs (names are matched without case later).
pub(crate) fn query_pairs(parts: &Parts) -> Result<Vec<(String, String)>, Failure> {
    axum::extract::Query::<Vec<(String, String)>>::try_from_uri(&parts.uri)
        .map(|q| q.0)
        .map_err(|e| Failure(ScimError::invalid_syntax(format!("query string: {e}"))))
}

/// The request context: base URL, projection (`attributes`, `excludedAttributes`),
/// Gluu's `Group-Overhead-Bypass` (header or query parameter) and the snapshot.
pub(crate) struct Ctx(pub(crate) RequestCtx);

impl FromRequestParts<AppState> for Ctx {
    type Rejection = Failure;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, Failure> {
        let params = query_pairs(parts)?;
        let projection = Projection::parse(
            param(&params, "attributes"),
            param(&params, "excludedAttributes"),
        )?;
        let base = base_url(&parts.headers, &original_path(parts));
        let registry = snapshot(parts, state);
        let hook = state
            .svc
            .hooks
            .active()
            .then(|| Arc::new(hook_context(parts, &registry, &base, params.clone())));
        Ok(Ctx(RequestCtx {
            base_url: base,
            projection,
            overhead_bypass: parts.headers.contains_key("group-overhead-bypass")
                || param(&params, "Group-Overhead-Bypass").is_some(),
            registry,
            hook,
            actor: actor_of(parts),
        }))
    }
}

/// Who a request comes from: the token's client, the request id and the peer.
fn actor_of(parts: &Parts) -> scim_store::Actor {
    scim_store::Actor {
        principal: parts
            .extensions
            .get::<scim_auth::TokenInfo>()
            .and_then(|t| t.client_id.clone()),
        request_id: parts.extensions.get::<RequestId>().map(|r| r.0.clone()),
        source_ip: parts
            .extensions
            .get::<scim_auth::limits::ClientAddr>()
            .map(|c| c.0.to_string()),
    }
}

/// The resource type the `{endpoint}` path segment names (404 if none).
pub(crate) struct Endpoint(pub(crate) ResourceTypeDef);

impl FromRequestParts<AppState> for Endpoint {
    type Rejection = Failure;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, Failure> {
        let raw = RawPathParams::from_request_parts(parts, state)
            .await
            .map_err(|e| match e {
                axum::extract::rejection::RawPathParamsRejection::InvalidUtf8InPathParam(_) => {
                    Failure(ScimError::bad_request("the path is not valid UTF-8"))
                }
                _ => Failure(ScimError::not_found("no resource type in the path")),
            })?;
        let endpoint = raw
            .iter()
            .find(|(k, _)| *k == "endpoint")
            .map(|(_, v)| v.to_string())
            .ok_or_else(|| Failure(ScimError::not_found("no resource type in the path")))?;
        let registry = snapshot(parts, state);
        registry
            .resource_type_by_endpoint(&endpoint)
            .cloned()
            .map(Endpoint)
            .ok_or_else(|| {
                Failure(ScimError::not_found(format!(
                    "no resource type at /{endpoint}"
                )))
            })
    }
}

/// The request's id, set by `http::log_request` for every request: it ties log
/// lines, the script log and the notifications a request's hooks queued to it.
#[derive(Clone)]
pub struct RequestId(pub String);

/// Headers a script never sees: credentials.
const HIDDEN_HEADERS: [&str; 3] = ["authorization", "cookie", "proxy-authorization"];

/// What interception scripts learn about the request (Gluu's OperationContext).
fn hook_context(
    parts: &Parts,
    registry: &SchemaRegistry,
    base: &str,
    query_params: Vec<(String, String)>,
) -> HookContext {
    let full = original_path(parts);
    let prefix = API_PREFIXES
        .iter()
        .filter(|p| full.starts_with(*p))
        .max_by_key(|p| p.len())
        .copied()
        .unwrap_or("");
    let path = full[prefix.len()..].to_string();
    let resource_type = path
        .trim_start_matches('/')
        .split('/')
        .next()
        .and_then(|e| registry.resource_type_by_endpoint(e))
        .map(|rt| rt.name.clone())
        .unwrap_or_default();
    let request_headers = parts
        .headers
        .iter()
        .filter(|(k, _)| !HIDDEN_HEADERS.contains(&k.as_str()))
        .filter_map(|(k, v)| Some((k.as_str().to_string(), v.to_str().ok()?.to_string())))
        .collect();
    let token = parts
        .extensions
        .get::<scim_auth::Caller>()
        .and_then(|c| c.token())
        .map(|t| TokenDetails {
            client_id: t.client_id.clone().unwrap_or_default(),
            scope: t.scopes.join(" "),
            expiration: t.expires_at,
            token_type: match t.kind {
                scim_auth::TokenKind::Rpt => "UMA".into(),
                _ => "Bearer".into(),
            },
        });
    HookContext {
        path,
        base_uri: base.to_string(),
        method: parts.method.as_str().to_string(),
        resource_type,
        query_params,
        request_headers,
        token,
        request_id: parts
            .extensions
            .get::<RequestId>()
            .map(|RequestId(id)| id.clone()),
    }
}
