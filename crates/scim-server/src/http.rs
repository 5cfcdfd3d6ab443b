//! Routes and the HTTP edge: content negotiation, body limits, ETags, and mapping
//! of `ScimError` to SCIM error responses.

use crate::discovery;
use crate::extract::{AppState, BaseUrl, Ctx, Endpoint, Failure, Snapshot};
use crate::service::{etag, parse_etag, MemberList, Rendered, RequestCtx, SearchCost, Service};
use axum::body::{to_bytes, Body};
use axum::extract::{Path, Query, State};
use axum::http::{header, HeaderMap, HeaderValue, Method, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{any, get, post};
use axum::Router;
use scim_auth::Mode;
use scim_proto::messages::{int_param, param, SearchRequest};
use scim_proto::project::Projection;
use scim_proto::schema::ResourceTypeDef;
use scim_proto::{ScimError, ScimResult};
use serde_json::{Map, Value};
use std::sync::Arc;

pub const SCIM_CONTENT_TYPE: &str = "application/scim+json";

/// Where the SCIM API is served: the canonical base and Gluu's two prefixes.
pub const API_PREFIXES: [&str; 3] = [
    "/scim/v2",
    "/identity/restv1/scim/v2",
    "/scim/restv1/scim/v2",
];

type Params = Query<Vec<(String, String)>>;

pub fn router(service: Arc<Service>) -> Router {
    router_with_auth(service, None)
}

/// The app with API protection: `auth` validates tokens (scim-auth's middleware
/// on every SCIM route) and serves the OAuth endpoints. Without it only bypass
/// mode lets protected requests through.
pub fn router_with_auth(service: Arc<Service>, auth: Option<Arc<scim_auth::Auth>>) -> Router {
    let guard = match &auth {
        Some(a) => scim_auth::Guard::new(a.clone()),
        None => scim_auth::Guard::unconfigured(service.config.protection),
    };
    let protect = axum::middleware::from_fn_with_state(guard, scim_auth::protect);
    let state = AppState::new(service);
    let api = Router::new()
        .route(
            "/ServiceProviderConfig",
            get(spc).fallback(method_not_allowed),
        )
        .route("/Schemas", get(list_schemas).fallback(method_not_allowed))
        .route(
            "/Schemas/{id}",
            get(get_schema).fallback(method_not_allowed),
        )
        .route(
            "/ResourceTypes",
            get(list_resource_types).fallback(method_not_allowed),
        )
        .route(
            "/ResourceTypes/{id}",
            get(get_resource_type).fallback(method_not_allowed),
        )
        .route("/.search", post(root_search).fallback(method_not_allowed))
        .route("/Bulk", post(bulk).fallback(method_not_allowed))
        .route("/Changes", get(changes).fallback(method_not_allowed))
        .route(
            "/{endpoint}",
            get(list).post(create).fallback(method_not_allowed),
        )
        .route(
            "/{endpoint}/.search",
            post(search_post).fallback(method_not_allowed),
        )
        .route(
            "/{endpoint}/{id}",
            get(get_one)
                .put(replace)
                .patch(patch)
                .delete(delete)
                .fallback(method_not_allowed),
        )
        .layer(protect.clone())
        .layer(axum::middleware::from_fn_with_state(
            state.clone(),
            settle_scripts,
        ));
    let mut app = Router::new();
    for prefix in API_PREFIXES {
        app = app.nest(prefix, api.clone());
    }
    for path in [
        "/scim/UpdatedUsers",
        "/identity/restv1/scim/UpdatedUsers",
        "/scim/restv1/scim/UpdatedUsers",
    ] {
        app = app.route(
            path,
            get(updated_users)
                .fallback(method_not_allowed)
                .layer(protect.clone()),
        );
    }
    app = app
        .route(
            "/admin/devices/{endpoint}",
            post(enrol_device)
                .fallback(method_not_allowed)
                .layer(protect.clone()),
        )
        .route(
            "/admin/attributes",
            get(list_custom_attributes)
                .post(add_custom_attribute)
                .fallback(method_not_allowed)
                .layer(protect.clone()),
        )
        .route(
            "/admin/attributes/{name}",
            axum::routing::delete(remove_custom_attribute)
                .fallback(method_not_allowed)
                .layer(protect.clone()),
        )
        .route(
            "/admin/audit",
            get(list_audit)
                .fallback(method_not_allowed)
                .layer(protect.clone()),
        )
        .route(
            "/admin/scripts",
            get(list_scripts)
                .post(add_script)
                .fallback(method_not_allowed)
                .layer(protect.clone()),
        )
        .route(
            "/admin/scripts/{name}",
            get(get_script)
                .put(replace_script)
                .delete(remove_script)
                .fallback(method_not_allowed)
                .layer(protect.clone()),
        );
    app = app.route("/openapi.json", get(openapi).fallback(method_not_allowed));
    for path in SCIM_CONFIGURATION_PATHS {
        app = app.route(path, get(scim_configuration).fallback(method_not_allowed));
    }
    for path in [
        "/scim/resource_changes.yaml",
        "/identity/scim/resource_changes.yaml",
    ] {
        app = app.route(
            path,
            get(resource_changes_yaml).fallback(method_not_allowed),
        );
    }
    if let Some(auth) = auth {
        app = app.merge(scim_auth::routes(auth));
    }
    app.route("/", any(not_found))
        .fallback(not_found)
        .with_state(state)
}

/// What an API request's hooks kept for after the commit (`scim.notify`) is
/// released when it succeeded and dropped when it failed, under the request's id.
async fn settle_scripts(
    State(app): State<AppState>,
    req: axum::extract::Request,
    next: axum::middleware::Next,
) -> Response {
    if !app.svc.hooks.active() {
        return next.run(req).await;
    }
    let id = req
        .extensions()
        .get::<crate::extract::RequestId>()
        .map(|r| r.0.clone())
        .unwrap_or_else(crate::edge::new_request_id);
    let resp = next.run(req).await;
    if resp.status().is_success() {
        app.svc.hooks.commit(&id);
    } else {
        app.svc.hooks.discard(&id);
    }
    resp
}

/// A SCIM JSON response.
fn scim(status: StatusCode, body: &Value) -> Response {
    scim_text(status, body.to_string())
}

fn scim_text(status: StatusCode, body: String) -> Response {
    let mut resp = (status, body).into_response();
    resp.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static(SCIM_CONTENT_TYPE),
    );
    resp
}

/// The SCIM error body of `e`. A server error gets an error id, in its detail and
/// in the log line that records its cause, so an operator can find one from the
/// other; the cause itself never reaches the client.
pub fn error_response(e: &ScimError) -> Response {
    let status = StatusCode::from_u16(e.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    if let Some(reply) = &e.reply {
        return script_reply(status, reply);
    }
    if !status.is_server_error() {
        return scim(status, &e.to_json());
    }
    let error_id = uuid::Uuid::new_v4().simple().to_string();
    tracing::error!(
        error_id,
        status = e.status,
        detail = %e.detail,
        cause = e.cause.as_deref().unwrap_or(""),
        "server error"
    );
    let shown = ScimError::new(
        e.status,
        e.scim_type,
        format!("{} (error id {error_id})", e.detail),
    );
    let mut resp = scim(status, &shown.to_json());
    if status == StatusCode::SERVICE_UNAVAILABLE {
        resp.headers_mut().insert(
            header::RETRY_AFTER,
            HeaderValue::from_static(RETRY_AFTER_SECONDS),
        );
    }
    resp
}

/// When a client should try again after a 503 (the database restarting).
const RETRY_AFTER_SECONDS: &str = "2";

/// An interception script's own answer: its status, body and headers.
fn script_reply(status: StatusCode, reply: &scim_proto::error::Reply) -> Response {
    let mut resp = if reply.body.is_null() {
        status.into_response()
    } else {
        scim(status, &reply.body)
    };
    for (k, v) in &reply.headers {
        if let (Ok(k), Ok(v)) = (
            header::HeaderName::from_bytes(k.as_bytes()),
            HeaderValue::from_str(v),
        ) {
            resp.headers_mut().insert(k, v);
        }
    }
    resp
}

type Reply = Result<Response, Failure>;

async fn not_found() -> Response {
    error_response(&ScimError::not_found("no such endpoint"))
}

async fn method_not_allowed(method: Method) -> Response {
    error_response(&ScimError::method_not_allowed(format!(
        "method {method} is not allowed on this endpoint"
    )))
}

/// Read and parse a JSON request body: media type checked (415), size limited (413),
/// syntax checked (400 invalidSyntax).
async fn json_body(svc: &Service, headers: &HeaderMap, body: Body) -> ScimResult<Value> {
    json_body_limited(headers, body, svc.config.max_payload_bytes).await
}

async fn json_body_limited(headers: &HeaderMap, body: Body, limit: usize) -> ScimResult<Value> {
    let ct = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    let mime = ct
        .split(';')
        .next()
        .unwrap_or("")
        .trim()
        .to_ascii_lowercase();
    if !mime.is_empty() && mime != SCIM_CONTENT_TYPE && mime != "application/json" {
        return Err(ScimError::unsupported_media_type(format!(
            "unsupported media type '{mime}'; use {SCIM_CONTENT_TYPE} or application/json"
        )));
    }
    let bytes = to_bytes(body, limit).await.map_err(|_| {
        ScimError::payload_too_large(format!("request body is larger than {limit} bytes"))
    })?;
    serde_json::from_slice(&bytes)
        .map_err(|e| ScimError::invalid_syntax(format!("request body is not valid JSON: {e}")))
}

fn if_match(headers: &HeaderMap) -> ScimResult<Option<i64>> {
    match headers.get(header::IF_MATCH).and_then(|v| v.to_str().ok()) {
        None => Ok(None),
        Some(v) => parse_etag(v).ok_or_else(|| {
            ScimError::precondition_failed(format!("If-Match '{v}' is not an ETag of this server"))
        }),
    }
}

/// Run service code on the blocking pool (the store is synchronous).
async fn blocking<T: Send + 'static>(
    app: &AppState,
    f: impl FnOnce(&Service) -> ScimResult<T> + Send + 'static,
) -> ScimResult<T> {
    let svc = app.svc.clone();
    tokio::task::spawn_blocking(move || f(&svc))
        .await
        .map_err(|e| ScimError::internal_because("request worker failed", e))?
}

/// `blocking` for searches and feed pages: they wait for one of the state's
/// search slots first, holding no blocking thread while they wait.
async fn searching<T: Send + 'static>(
    app: &AppState,
    f: impl FnOnce(&Service) -> ScimResult<T> + Send + 'static,
) -> ScimResult<T> {
    let _slot = app
        .search_slots
        .acquire()
        .await
        .map_err(|e| ScimError::internal_because("search slots closed", e))?;
    blocking(app, f).await
}

/// A search of one resource type, validated here once: a point read runs in
/// place, equality lookups go straight to a blocking thread, the rest wait for a
/// search slot (lookups must not queue behind `co`).
async fn search_one(
    app: &AppState,
    rt: &ResourceTypeDef,
    req: &SearchRequest,
    ctx: RequestCtx,
) -> Reply {
    let q = app.svc.prepare_search(rt, req, &ctx)?;
    let v = match q.cost() {
        SearchCost::PointRead => app.svc.search(&q, &ctx)?,
        SearchCost::Lookup => blocking(app, move |s| s.search(&q, &ctx)).await?,
        SearchCost::Scan => searching(app, move |s| s.search(&q, &ctx)).await?,
    };
    Ok(scim(StatusCode::OK, &v))
}

fn with_etag(mut resp: Response, version: i64, location: Option<&str>) -> Response {
    if let Ok(v) = HeaderValue::from_str(&etag(version)) {
        resp.headers_mut().insert(header::ETAG, v);
    }
    if let Some(Ok(l)) = location.map(HeaderValue::from_str) {
        resp.headers_mut().insert(header::LOCATION, l);
    }
    resp
}

async fn spc(State(app): State<AppState>, BaseUrl(base): BaseUrl) -> Response {
    scim(
        StatusCode::OK,
        &discovery::service_provider_config(&app.svc.config, &base),
    )
}

/// The OpenAPI document of everything served (no token).
async fn openapi(State(app): State<AppState>, Snapshot(registry): Snapshot) -> Response {
    let doc = crate::openapi::document(&registry, &app.svc.config);
    let mut resp = (StatusCode::OK, doc.to_string()).into_response();
    resp.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    resp
}

/// Where Gluu serves its endpoint list, and the SCIM base each names.
const SCIM_CONFIGURATION_PATHS: [&str; 3] = [
    "/scim/scim-configuration",
    "/identity/restv1/scim-configuration",
    "/scim/restv1/scim-configuration",
];

async fn scim_configuration(
    Snapshot(registry): Snapshot,
    uri: axum::extract::OriginalUri,
    headers: HeaderMap,
) -> Response {
    let path = uri.path();
    let prefix = API_PREFIXES
        .iter()
        .zip(SCIM_CONFIGURATION_PATHS)
        .find(|(_, p)| *p == path)
        .map_or(API_PREFIXES[0], |(prefix, _)| *prefix);
    let base = crate::extract::base_url(&headers, prefix);
    let root = base.strip_suffix(prefix).unwrap_or(&base).to_string();
    scim(
        StatusCode::OK,
        &discovery::scim_configuration(&registry, &root, &base),
    )
}

async fn list_schemas(Snapshot(registry): Snapshot, BaseUrl(base): BaseUrl) -> Response {
    scim(StatusCode::OK, &discovery::schemas(&registry, &base))
}

async fn get_schema(
    Snapshot(registry): Snapshot,
    BaseUrl(base): BaseUrl,
    Path(id): Path<String>,
) -> Reply {
    discovery::schema(&registry, &base, &id)
        .map(|v| scim(StatusCode::OK, &v))
        .ok_or_else(|| ScimError::not_found(format!("schema '{id}' not found")).into())
}

async fn list_resource_types(Snapshot(registry): Snapshot, BaseUrl(base): BaseUrl) -> Response {
    scim(StatusCode::OK, &discovery::resource_types(&registry, &base))
}

async fn get_resource_type(
    Snapshot(registry): Snapshot,
    BaseUrl(base): BaseUrl,
    Path(id): Path<String>,
) -> Reply {
    discovery::resource_type(&registry, &base, &id)
        .map(|v| scim(StatusCode::OK, &v))
        .ok_or_else(|| ScimError::not_found(format!("resource type '{id}' not found")).into())
}

async fn create(
    State(app): State<AppState>,
    Endpoint(rt): Endpoint,
    Ctx(ctx): Ctx,
    headers: HeaderMap,
    body: Body,
) -> Reply {
    let body = json_body(&app.svc, &headers, body).await?;
    let r = blocking(&app, move |s| s.create(&rt, &body, &ctx)).await?;
    resource_reply(StatusCode::CREATED, &r)
}

async fn get_one(
    State(app): State<AppState>,
    Endpoint(rt): Endpoint,
    Path((_, id)): Path<(String, String)>,
    Ctx(ctx): Ctx,
    headers: HeaderMap,
) -> Reply {
    let if_none_match = headers
        .get(header::IF_NONE_MATCH)
        .and_then(|v| v.to_str().ok())
        .and_then(parse_etag);
    let r = if app.svc.get_is_cheap(&rt) {
        app.svc.get(&rt, &id, &ctx)?
    } else {
        blocking(&app, move |s| s.get(&rt, &id, &ctx)).await?
    };
    if let Some(want) = if_none_match {
        if want.is_none_or(|v| v == r.version) {
            let resp = StatusCode::NOT_MODIFIED.into_response();
            return Ok(with_etag(resp, r.version, None));
        }
    }
    resource_reply(StatusCode::OK, &r)
}

/// A resource response: the document, then a group's member list if it has one,
/// with its ETag and Location.
fn resource_reply(status: StatusCode, r: &Rendered) -> Reply {
    let resp = match &r.members {
        None => scim(status, &r.doc),
        Some(list) => scim_text(status, with_members(&r.doc, list)?),
    };
    Ok(with_etag(resp, r.version, Some(&r.location)))
}

/// A group document with its member list written after its other attributes.
fn with_members(doc: &Value, members: &MemberList) -> ScimResult<String> {
    struct Both<'a>(&'a Map<String, Value>, &'a MemberList);
    impl serde::Serialize for Both<'_> {
        fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
            use serde::ser::SerializeMap;
            let mut map = s.serialize_map(Some(self.0.len() + 1))?;
            for (k, v) in self.0 {
                map.serialize_entry(k, v)?;
            }
            map.serialize_entry("members", self.1)?;
            map.end()
        }
    }
    let obj = doc
        .as_object()
        .ok_or_else(|| ScimError::internal("a group document is not an object"))?;
    serde_json::to_string(&Both(obj, members))
        .map_err(|e| ScimError::internal_because("cannot write the group", e))
}

/// PUT and PATCH differ only in the service call.
#[derive(Clone, Copy)]
enum Update {
    Replace,
    Patch,
}

struct UpdateRequest {
    rt: ResourceTypeDef,
    id: String,
    ctx: RequestCtx,
    headers: HeaderMap,
    body: Body,
}

async fn update(kind: Update, app: AppState, r: UpdateRequest) -> Reply {
    let if_match = if_match(&r.headers)?;
    let body = json_body(&app.svc, &r.headers, r.body).await?;
    let (rt, id, ctx) = (r.rt, r.id, r.ctx);
    let done = blocking(&app, move |s| match kind {
        Update::Replace => s.replace(&rt, &id, &body, if_match, &ctx),
        Update::Patch => s.patch(&rt, &id, &body, if_match, &ctx),
    })
    .await?;
    resource_reply(StatusCode::OK, &done)
}

async fn replace(
    State(app): State<AppState>,
    Endpoint(rt): Endpoint,
    Path((_, id)): Path<(String, String)>,
    Ctx(ctx): Ctx,
    headers: HeaderMap,
    body: Body,
) -> Reply {
    let r = UpdateRequest {
        rt,
        id,
        ctx,
        headers,
        body,
    };
    update(Update::Replace, app, r).await
}

async fn patch(
    State(app): State<AppState>,
    Endpoint(rt): Endpoint,
    Path((_, id)): Path<(String, String)>,
    Ctx(ctx): Ctx,
    headers: HeaderMap,
    body: Body,
) -> Reply {
    let r = UpdateRequest {
        rt,
        id,
        ctx,
        headers,
        body,
    };
    update(Update::Patch, app, r).await
}

async fn delete(
    State(app): State<AppState>,
    Endpoint(rt): Endpoint,
    Path((_, id)): Path<(String, String)>,
    Ctx(ctx): Ctx,
    headers: HeaderMap,
) -> Reply {
    let if_match = if_match(&headers)?;
    blocking(&app, move |s| s.delete(&rt, &id, if_match, &ctx)).await?;
    Ok(StatusCode::NO_CONTENT.into_response())
}

async fn list(
    State(app): State<AppState>,
    Endpoint(rt): Endpoint,
    Ctx(ctx): Ctx,
    Query(params): Params,
) -> Reply {
    let req = SearchRequest::from_query(&params)?;
    search_one(&app, &rt, &req, ctx).await
}

/// A SearchRequest body: its own `attributes` / `excludedAttributes` replace the
/// query string's.
async fn search_request(
    svc: &Service,
    headers: &HeaderMap,
    body: Body,
    ctx: &mut RequestCtx,
) -> ScimResult<SearchRequest> {
    let body = json_body(svc, headers, body).await?;
    let req = SearchRequest::from_body(&body)?;
    ctx.projection = Projection::parse(
        req.attributes.as_deref(),
        req.excluded_attributes.as_deref(),
    )?;
    Ok(req)
}

async fn search_post(
    State(app): State<AppState>,
    Endpoint(rt): Endpoint,
    Ctx(mut ctx): Ctx,
    headers: HeaderMap,
    body: Body,
) -> Reply {
    let req = search_request(&app.svc, &headers, body, &mut ctx).await?;
    search_one(&app, &rt, &req, ctx).await
}

async fn root_search(
    State(app): State<AppState>,
    Ctx(mut ctx): Ctx,
    headers: HeaderMap,
    body: Body,
) -> Reply {
    let req = search_request(&app.svc, &headers, body, &mut ctx).await?;
    let q = app.svc.prepare_root_search(&req, &ctx)?;
    let v = searching(&app, move |s| s.search_all(&q, &ctx)).await?;
    Ok(scim(StatusCode::OK, &v))
}

async fn bulk(
    State(app): State<AppState>,
    Ctx(ctx): Ctx,
    headers: HeaderMap,
    caller: Option<axum::Extension<scim_auth::Caller>>,
    body: Body,
) -> Reply {
    // Each operation needs the scope of its own endpoint too (scim-auth decides).
    let caller = match caller {
        Some(axum::Extension(c)) => c,
        None if app.svc.config.protection == Mode::Bypass => scim_auth::Caller::bypass(),
        None => return Err(ScimError::unauthorized("authentication required").into()),
    };
    let body = json_body_limited(&headers, body, app.svc.config.bulk_max_payload_bytes).await?;
    let v = blocking(&app, move |s| {
        let authorise = |method: &str, endpoint: &str| {
            caller.authorise(method, endpoint).map_err(|scope| {
                ScimError::forbidden(format!(
                    "insufficient_scope: this operation needs scope {scope}"
                ))
            })
        };
        s.bulk(&body, &ctx, &authorise)
    })
    .await?;
    Ok(scim(StatusCode::OK, &v))
}

/// The OpenAPI document of UpdatedUsers (JSON syntax, which is also YAML).
pub const RESOURCE_CHANGES_YAML: &str = include_str!("resource_changes.yaml");

/// `/metrics` on the main listener: a token with the `metrics` scope.
pub fn metrics_route(guard: scim_auth::Guard) -> Router {
    Router::new().route(
        "/metrics",
        get(crate::metrics::render)
            .fallback(method_not_allowed)
            .layer(axum::middleware::from_fn_with_state(
                guard,
                scim_auth::protect,
            )),
    )
}

/// `/metrics` without a token, for a listener of its own (`--metrics-listen`).
pub fn open_metrics_route() -> Router {
    Router::new()
        .route(
            "/metrics",
            get(crate::metrics::render).fallback(method_not_allowed),
        )
        .fallback(not_found)
}

/// `GET /admin/audit?resource=ID&client=ID&since=T&count=N`: who wrote what,
/// newest first (admin scope).
async fn list_audit(State(app): State<AppState>, Query(params): Params) -> Reply {
    let since = match param(&params, "since") {
        None => None,
        Some(t) => Some(
            chrono::DateTime::parse_from_rfc3339(t)
                .map(|t| t.with_timezone(&chrono::Utc))
                .map_err(|_| {
                    ScimError::invalid_value(format!("since must be an RFC 3339 time, not '{t}'"))
                })?,
        ),
    };
    let limit = int_param(&params, "count")?.map_or(100, |n| n.max(1) as usize);
    if limit > scim_store::MAX_AUDIT_ENTRIES {
        return Err(ScimError::too_many(format!(
            "count may be at most {}",
            scim_store::MAX_AUDIT_ENTRIES
        ))
        .into());
    }
    let q = scim_store::WriteQuery {
        resource: param(&params, "resource").map(str::to_string),
        principal: param(&params, "client").map(str::to_string),
        since,
        limit,
    };
    let entries = blocking(&app, move |s| {
        s.store.writes(&q).map_err(crate::service::store_error)
    })
    .await?;
    Ok(scim(
        StatusCode::OK,
        &serde_json::json!({"totalResults": entries.len(), "entries": entries}),
    ))
}

async fn resource_changes_yaml() -> Response {
    let mut resp = RESOURCE_CHANGES_YAML.into_response();
    resp.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/yaml"),
    );
    resp
}

async fn updated_users(State(app): State<AppState>, Query(params): Params) -> Reply {
    let since = param(&params, "timeStamp")
        .ok_or_else(|| ScimError::bad_request("Unparsable date: timeStamp is required"))
        .and_then(crate::feed::parse_timestamp)?;
    let bad = || ScimError::bad_request("No suitable value for 'start' or 'pageSize' params");
    let start = match param(&params, "start") {
        None => 0,
        Some(v) => v.trim().parse::<u64>().map_err(|_| bad())?,
    };
    let page_size = match param(&params, "pageSize") {
        None => app
            .svc
            .config
            .max_results
            .min(crate::feed::UPDATED_USERS_MAX_PAGE),
        Some(v) => v
            .trim()
            .parse::<u64>()
            .ok()
            .filter(|n| (1..=crate::feed::UPDATED_USERS_MAX_PAGE).contains(n))
            .ok_or_else(bad)?,
    };
    let v = searching(&app, move |s| s.updated_users(since, start, page_size)).await?;
    let mut resp = (StatusCode::OK, v.to_string()).into_response();
    resp.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json; charset=utf-8"),
    );
    Ok(resp)
}

async fn changes(State(app): State<AppState>, Ctx(ctx): Ctx, Query(params): Params) -> Reply {
    let cursor = param(&params, "cursor").map(str::to_string);
    let count = int_param(&params, "count")?;
    let v = searching(&app, move |s| s.changes(cursor.as_deref(), count, &ctx)).await?;
    Ok(scim(StatusCode::OK, &v))
}

/// Admin enrolment of a FIDO device (SCIM clients cannot create devices). The
/// device's location is shown under the canonical base.
async fn enrol_device(
    State(app): State<AppState>,
    Endpoint(rt): Endpoint,
    Ctx(ctx): Ctx,
    headers: HeaderMap,
    body: Body,
) -> Reply {
    let ctx = RequestCtx {
        base_url: crate::extract::base_url(&headers, API_PREFIXES[0]),
        projection: Projection::default(),
        ..ctx
    };
    let body = json_body(&app.svc, &headers, body).await?;
    let r = blocking(&app, move |s| s.enrol_device(&rt, &body, &ctx)).await?;
    resource_reply(StatusCode::CREATED, &r)
}

fn attributes_json(attrs: &[scim_proto::schema::custom::CustomAttribute]) -> Value {
    serde_json::json!({ "attributes": attrs })
}

async fn list_custom_attributes(State(app): State<AppState>) -> Reply {
    let attrs = blocking(&app, |s| s.custom_attributes()).await?;
    Ok(scim(StatusCode::OK, &attributes_json(&attrs)))
}

async fn add_custom_attribute(
    State(app): State<AppState>,
    headers: HeaderMap,
    body: Body,
) -> Reply {
    let body = json_body(&app.svc, &headers, body).await?;
    let attr = crate::admin::parse_custom_attribute(&body)?;
    let added = attr.clone();
    blocking(&app, move |s| s.add_custom_attribute(&attr)).await?;
    Ok(scim(
        StatusCode::CREATED,
        &serde_json::to_value(added).unwrap_or_default(),
    ))
}

async fn remove_custom_attribute(
    State(app): State<AppState>,
    Path(name): Path<String>,
    Query(params): Params,
) -> Reply {
    let force = param(&params, "force").is_some_and(|v| v != "false");
    let cleared = blocking(&app, move |s| s.remove_custom_attribute(&name, force)).await?;
    Ok(scim(
        StatusCode::OK,
        &serde_json::json!({ "clearedUsers": cleared }),
    ))
}

async fn list_scripts(State(app): State<AppState>) -> Reply {
    let all = blocking(&app, |s| s.list_scripts()).await?;
    let list: Vec<Value> = all.iter().map(crate::scripts::script_summary).collect();
    // `active`: whether this process runs an enabled script now (hot reload).
    let active = app.svc.hooks.active();
    Ok(scim(
        StatusCode::OK,
        &serde_json::json!({ "scripts": list, "active": active }),
    ))
}

/// The admin API's location of a script.
fn script_location(name: &str) -> Option<HeaderValue> {
    HeaderValue::from_str(&format!("/admin/scripts/{name}")).ok()
}

async fn add_script(State(app): State<AppState>, headers: HeaderMap, body: Body) -> Reply {
    let body = json_body(&app.svc, &headers, body).await?;
    let (name, change) = crate::scripts::parse_script_body(&body)?;
    let def = crate::scripts::new_script_def(name, change)?;
    let r = blocking(&app, move |s| s.add_script(def)).await?;
    let mut resp = scim(StatusCode::CREATED, &crate::scripts::script_json(&r));
    if let Some(l) = script_location(&r.name) {
        resp.headers_mut().insert(header::LOCATION, l);
    }
    Ok(resp)
}

async fn get_script(State(app): State<AppState>, Path(name): Path<String>) -> Reply {
    let r = blocking(&app, move |s| s.script(&name)).await?;
    Ok(scim(StatusCode::OK, &crate::scripts::script_json(&r)))
}

/// Replace what the body gives; absent fields keep their value.
async fn replace_script(
    State(app): State<AppState>,
    Path(name): Path<String>,
    headers: HeaderMap,
    body: Body,
) -> Reply {
    let body = json_body(&app.svc, &headers, body).await?;
    let (renamed, change) = crate::scripts::parse_script_body(&body)?;
    if let Some(other) = renamed.filter(|n| !n.eq_ignore_ascii_case(&name)) {
        return Err(ScimError::invalid_value(format!(
            "the body names script '{other}', the path '{name}'; a script cannot be renamed"
        ))
        .into());
    }
    let r = blocking(&app, move |s| s.update_script(&name, change)).await?;
    Ok(scim(StatusCode::OK, &crate::scripts::script_json(&r)))
}

async fn remove_script(State(app): State<AppState>, Path(name): Path<String>) -> Reply {
    blocking(&app, move |s| s.remove_script(&name)).await?;
    Ok(StatusCode::NO_CONTENT.into_response())
}
