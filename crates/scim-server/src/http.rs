//! Routes and the HTTP edge: content negotiation, body limits, ETags, and mapping
//! of `ScimError` to SCIM error responses.

use crate::config::Protection;
use crate::discovery;
use crate::service::{
    etag, parse_etag, MemberList, Rendered, RequestCtx, SearchCost, SearchParams, Service,
    SEARCH_REQUEST_SCHEMA,
};
use axum::body::{to_bytes, Body};
use axum::extract::{OriginalUri, Path, Query, State};
use axum::http::{header, HeaderMap, HeaderValue, Method, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{any, get, post};
use axum::Router;
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

type AppState = Arc<Service>;
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
        None => scim_auth::Guard::unconfigured(service.config.protection.auth_mode()),
    };
    let protect = axum::middleware::from_fn_with_state(guard, scim_auth::protect);
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
            "/{endpoint}/{id}",
            get(get_one)
                .put(replace)
                .patch(patch)
                .delete(delete)
                .post(search_post)
                .fallback(method_not_allowed),
        )
        .layer(protect.clone());
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
        );
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
        .layer(axum::middleware::from_fn_with_state(
            service.clone(),
            log_request,
        ))
        .with_state(service)
}

async fn log_request(
    State(svc): State<AppState>,
    req: axum::extract::Request,
    next: axum::middleware::Next,
) -> Response {
    let method = req.method().clone();
    let path = req.uri().path().to_string();
    let started = std::time::Instant::now();
    let resp = next.run(req).await;
    let status = resp.status().as_u16();
    let micros = started.elapsed().as_micros() as u64;
    if svc.config.protection == Protection::Bypass {
        tracing::info!(%method, %path, status, micros, protection = "bypass", "request (UNPROTECTED: bypass mode)");
    } else {
        tracing::info!(%method, %path, status, micros, "request");
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

pub fn error_response(e: &ScimError) -> Response {
    let status = StatusCode::from_u16(e.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    scim(status, &e.to_json())
}

struct Failure(ScimError);

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

type Reply = Result<Response, Failure>;

async fn not_found() -> Response {
    error_response(&ScimError::not_found("no such endpoint"))
}

async fn method_not_allowed(method: Method) -> Response {
    error_response(&ScimError::new(
        405,
        None,
        format!("method {method} is not allowed on this endpoint"),
    ))
}

/// `http(s)://host/prefix` as the client addressed us, for `meta.location` and `$ref`.
fn base_url(headers: &HeaderMap, uri: &OriginalUri) -> String {
    let host = headers
        .get(header::HOST)
        .and_then(|h| h.to_str().ok())
        .unwrap_or("localhost");
    let scheme = headers
        .get("x-forwarded-proto")
        .and_then(|h| h.to_str().ok())
        .unwrap_or("http");
    let path = uri.path();
    let prefix = API_PREFIXES
        .iter()
        .filter(|p| path.starts_with(*p))
        .max_by_key(|p| p.len())
        .copied()
        .unwrap_or(API_PREFIXES[0]);
    format!("{scheme}://{host}{prefix}")
}

fn param<'a>(params: &'a [(String, String)], name: &str) -> Option<&'a str> {
    params
        .iter()
        .find(|(k, _)| k.eq_ignore_ascii_case(name))
        .map(|(_, v)| v.as_str())
}

fn int_param(params: &[(String, String)], name: &str) -> ScimResult<Option<i64>> {
    param(params, name)
        .map(|v| {
            v.trim().parse::<i64>().map_err(|_| {
                ScimError::invalid_value(format!("{name} must be an integer, got '{v}'"))
            })
        })
        .transpose()
}

fn ctx(
    headers: &HeaderMap,
    uri: &OriginalUri,
    params: &[(String, String)],
) -> ScimResult<RequestCtx> {
    let projection = Projection::parse(
        param(params, "attributes"),
        param(params, "excludedAttributes"),
    )?;
    Ok(RequestCtx {
        base_url: base_url(headers, uri),
        projection,
        overhead_bypass: headers.contains_key("group-overhead-bypass")
            || param(params, "Group-Overhead-Bypass").is_some(),
    })
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
        return Err(ScimError::new(
            415,
            None,
            format!("unsupported media type '{mime}'; use {SCIM_CONTENT_TYPE} or application/json"),
        ));
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
    svc: &AppState,
    f: impl FnOnce(&Service) -> ScimResult<T> + Send + 'static,
) -> ScimResult<T> {
    let svc = svc.clone();
    tokio::task::spawn_blocking(move || f(&svc))
        .await
        .map_err(|_| ScimError::internal("request worker failed"))?
}

/// Searches and feed pages that may run at once. They can take seconds (a `co`
/// filter at 1M users) and wait for the store's few reader connections; past this
/// many they wait here, holding no blocking thread, so writes and lookups still
/// find one (with 32 slow searches in flight, POSTs waited 570 ms for a thread).
static SEARCH_SLOTS: tokio::sync::Semaphore = tokio::sync::Semaphore::const_new(8);

/// `blocking` for searches and feed pages: at most `SEARCH_SLOTS` at once.
async fn searching<T: Send + 'static>(
    svc: &AppState,
    f: impl FnOnce(&Service) -> ScimResult<T> + Send + 'static,
) -> ScimResult<T> {
    let _slot = SEARCH_SLOTS
        .acquire()
        .await
        .map_err(|_| ScimError::internal("search slots closed"))?;
    blocking(svc, f).await
}

/// A search of one resource type: a point read runs in place, equality lookups go
/// straight to a blocking thread, the rest wait for a search slot (lookups must
/// not queue behind `co`).
async fn search_one(
    svc: &AppState,
    rt: ResourceTypeDef,
    search: SearchParams,
    ctx: RequestCtx,
) -> ScimResult<Value> {
    match svc.search_cost(&rt, &search) {
        SearchCost::PointRead => svc.search(&rt, &search, &ctx),
        SearchCost::Lookup => blocking(svc, move |s| s.search(&rt, &search, &ctx)).await,
        SearchCost::Scan => searching(svc, move |s| s.search(&rt, &search, &ctx)).await,
    }
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

fn resource_type(svc: &Service, endpoint: &str) -> ScimResult<scim_proto::schema::ResourceTypeDef> {
    svc.resource_type(endpoint)
        .ok_or_else(|| ScimError::not_found(format!("no resource type at /{endpoint}")))
}

async fn spc(State(svc): State<AppState>, headers: HeaderMap, uri: OriginalUri) -> Response {
    scim(
        StatusCode::OK,
        &discovery::service_provider_config(&svc.config, &base_url(&headers, &uri)),
    )
}

async fn list_schemas(
    State(svc): State<AppState>,
    headers: HeaderMap,
    uri: OriginalUri,
) -> Response {
    scim(
        StatusCode::OK,
        &discovery::schemas(&svc.registry(), &base_url(&headers, &uri)),
    )
}

async fn get_schema(
    State(svc): State<AppState>,
    headers: HeaderMap,
    uri: OriginalUri,
    Path(id): Path<String>,
) -> Reply {
    discovery::schema(&svc.registry(), &base_url(&headers, &uri), &id)
        .map(|v| scim(StatusCode::OK, &v))
        .ok_or_else(|| ScimError::not_found(format!("schema '{id}' not found")).into())
}

async fn list_resource_types(
    State(svc): State<AppState>,
    headers: HeaderMap,
    uri: OriginalUri,
) -> Response {
    scim(
        StatusCode::OK,
        &discovery::resource_types(&svc.registry(), &base_url(&headers, &uri)),
    )
}

async fn get_resource_type(
    State(svc): State<AppState>,
    headers: HeaderMap,
    uri: OriginalUri,
    Path(id): Path<String>,
) -> Reply {
    discovery::resource_type(&svc.registry(), &base_url(&headers, &uri), &id)
        .map(|v| scim(StatusCode::OK, &v))
        .ok_or_else(|| ScimError::not_found(format!("resource type '{id}' not found")).into())
}

async fn create(
    State(svc): State<AppState>,
    Path(endpoint): Path<String>,
    headers: HeaderMap,
    uri: OriginalUri,
    Query(params): Params,
    body: Body,
) -> Reply {
    let rt = resource_type(&svc, &endpoint)?;
    let ctx = ctx(&headers, &uri, &params)?;
    let body = json_body(&svc, &headers, body).await?;
    let r = blocking(&svc, move |s| s.create(&rt, &body, &ctx)).await?;
    resource_reply(StatusCode::CREATED, &r)
}

async fn get_one(
    State(svc): State<AppState>,
    Path((endpoint, id)): Path<(String, String)>,
    headers: HeaderMap,
    uri: OriginalUri,
    Query(params): Params,
) -> Reply {
    let rt = resource_type(&svc, &endpoint)?;
    let ctx = ctx(&headers, &uri, &params)?;
    let if_none_match = headers
        .get(header::IF_NONE_MATCH)
        .and_then(|v| v.to_str().ok())
        .and_then(parse_etag);
    let r = if svc.get_is_cheap(&rt) {
        svc.get(&rt, &id, &ctx)?
    } else {
        blocking(&svc, move |s| s.get(&rt, &id, &ctx)).await?
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
        .map_err(|e| ScimError::internal(format!("cannot write the group: {e}")))
}

/// PUT and PATCH differ only in the service call.
#[derive(Clone, Copy)]
enum Update {
    Replace,
    Patch,
}

async fn update(
    kind: Update,
    svc: AppState,
    (endpoint, id): (String, String),
    headers: HeaderMap,
    uri: OriginalUri,
    params: Vec<(String, String)>,
    body: Body,
) -> Reply {
    let rt = resource_type(&svc, &endpoint)?;
    let ctx = ctx(&headers, &uri, &params)?;
    let if_match = if_match(&headers)?;
    let body = json_body(&svc, &headers, body).await?;
    let r = blocking(&svc, move |s| match kind {
        Update::Replace => s.replace(&rt, &id, &body, if_match, &ctx),
        Update::Patch => s.patch(&rt, &id, &body, if_match, &ctx),
    })
    .await?;
    resource_reply(StatusCode::OK, &r)
}

async fn replace(
    State(svc): State<AppState>,
    Path(target): Path<(String, String)>,
    headers: HeaderMap,
    uri: OriginalUri,
    Query(params): Params,
    body: Body,
) -> Reply {
    update(Update::Replace, svc, target, headers, uri, params, body).await
}

async fn patch(
    State(svc): State<AppState>,
    Path(target): Path<(String, String)>,
    headers: HeaderMap,
    uri: OriginalUri,
    Query(params): Params,
    body: Body,
) -> Reply {
    update(Update::Patch, svc, target, headers, uri, params, body).await
}

async fn delete(
    State(svc): State<AppState>,
    Path((endpoint, id)): Path<(String, String)>,
    headers: HeaderMap,
) -> Reply {
    let rt = resource_type(&svc, &endpoint)?;
    let if_match = if_match(&headers)?;
    blocking(&svc, move |s| s.delete(&rt, &id, if_match)).await?;
    Ok(StatusCode::NO_CONTENT.into_response())
}

async fn list(
    State(svc): State<AppState>,
    Path(endpoint): Path<String>,
    headers: HeaderMap,
    uri: OriginalUri,
    Query(params): Params,
) -> Reply {
    let rt = resource_type(&svc, &endpoint)?;
    let ctx = ctx(&headers, &uri, &params)?;
    let search = SearchParams {
        filter: param(&params, "filter").map(str::to_string),
        sort_by: param(&params, "sortBy").map(str::to_string),
        sort_order: param(&params, "sortOrder").map(str::to_string),
        start_index: int_param(&params, "startIndex")?,
        count: int_param(&params, "count")?,
        user_id: param(&params, "userId").map(str::to_string),
        cursor: param(&params, "cursor").map(str::to_string),
    };
    let v = search_one(&svc, rt, search, ctx).await?;
    Ok(scim(StatusCode::OK, &v))
}

/// A SearchRequest body (RFC 7644 §3.4.3) as search parameters plus projection.
fn search_request(body: &Value) -> ScimResult<(SearchParams, Option<String>, Option<String>)> {
    let obj = body
        .as_object()
        .ok_or_else(|| ScimError::invalid_syntax("SearchRequest must be a JSON object"))?;
    if let Some(schemas) = obj.get("schemas") {
        let ok = schemas
            .as_array()
            .is_some_and(|a| a.iter().any(|s| s.as_str() == Some(SEARCH_REQUEST_SCHEMA)));
        if !ok {
            return Err(ScimError::invalid_syntax(format!(
                "schemas must contain {SEARCH_REQUEST_SCHEMA}"
            )));
        }
    }
    let get = |k: &str| {
        obj.iter()
            .find(|(key, _)| key.eq_ignore_ascii_case(k))
            .map(|(_, v)| v)
    };
    let text = |k: &str| -> ScimResult<Option<String>> {
        match get(k) {
            None | Some(Value::Null) => Ok(None),
            Some(Value::String(s)) => Ok(Some(s.clone())),
            Some(Value::Array(a)) => Ok(Some(
                a.iter()
                    .filter_map(Value::as_str)
                    .collect::<Vec<_>>()
                    .join(","),
            )),
            Some(_) => Err(ScimError::invalid_value(format!("{k} must be a string"))),
        }
    };
    let int = |k: &str| -> ScimResult<Option<i64>> {
        match get(k) {
            None | Some(Value::Null) => Ok(None),
            Some(v) => v
                .as_i64()
                .map(Some)
                .ok_or_else(|| ScimError::invalid_value(format!("{k} must be an integer"))),
        }
    };
    Ok((
        SearchParams {
            filter: text("filter")?,
            sort_by: text("sortBy")?,
            sort_order: text("sortOrder")?,
            start_index: int("startIndex")?,
            count: int("count")?,
            user_id: text("userId")?,
            cursor: text("cursor")?,
        },
        text("attributes")?,
        text("excludedAttributes")?,
    ))
}

async fn search_post(
    State(svc): State<AppState>,
    Path((endpoint, id)): Path<(String, String)>,
    headers: HeaderMap,
    uri: OriginalUri,
    Query(params): Params,
    body: Body,
) -> Reply {
    if id != ".search" {
        return Ok(method_not_allowed(Method::POST).await);
    }
    let rt = resource_type(&svc, &endpoint)?;
    let body = json_body(&svc, &headers, body).await?;
    let (search, attributes, excluded) = search_request(&body)?;
    let mut ctx = ctx(&headers, &uri, &params)?;
    ctx.projection = Projection::parse(attributes.as_deref(), excluded.as_deref())?;
    let v = search_one(&svc, rt, search, ctx).await?;
    Ok(scim(StatusCode::OK, &v))
}

async fn root_search(
    State(svc): State<AppState>,
    headers: HeaderMap,
    uri: OriginalUri,
    Query(params): Params,
    body: Body,
) -> Reply {
    let body = json_body(&svc, &headers, body).await?;
    let (search, attributes, excluded) = search_request(&body)?;
    let mut ctx = ctx(&headers, &uri, &params)?;
    ctx.projection = Projection::parse(attributes.as_deref(), excluded.as_deref())?;
    let v = searching(&svc, move |s| s.search_all(&search, &ctx)).await?;
    Ok(scim(StatusCode::OK, &v))
}

async fn bulk(
    State(svc): State<AppState>,
    headers: HeaderMap,
    uri: OriginalUri,
    Query(params): Params,
    caller: Option<axum::Extension<scim_auth::Caller>>,
    body: Body,
) -> Reply {
    // Each operation needs the scope of its own endpoint too (scim-auth decides).
    let caller = match caller {
        Some(axum::Extension(c)) => c,
        None if svc.config.protection == Protection::Bypass => scim_auth::Caller::bypass(),
        None => return Err(ScimError::new(401, None, "authentication required").into()),
    };
    let ctx = ctx(&headers, &uri, &params)?;
    let body = json_body_limited(&headers, body, svc.config.bulk_max_payload_bytes).await?;
    let v = blocking(&svc, move |s| {
        let authorise = |method: &str, endpoint: &str| {
            caller.authorise(method, endpoint).map_err(|scope| {
                ScimError::new(
                    403,
                    None,
                    format!("insufficient_scope: this operation needs scope {scope}"),
                )
            })
        };
        s.bulk(&body, &ctx, &authorise)
    })
    .await?;
    Ok(scim(StatusCode::OK, &v))
}

/// The OpenAPI document of UpdatedUsers (JSON syntax, which is also YAML).
pub const RESOURCE_CHANGES_YAML: &str = include_str!("resource_changes.yaml");

async fn resource_changes_yaml() -> Response {
    let mut resp = RESOURCE_CHANGES_YAML.into_response();
    resp.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/yaml"),
    );
    resp
}

async fn updated_users(State(svc): State<AppState>, Query(params): Params) -> Reply {
    let since = param(&params, "timeStamp")
        .ok_or_else(|| ScimError::bad_request("Unparsable date: timeStamp is required"))
        .and_then(crate::feed::parse_timestamp)?;
    let bad = || ScimError::bad_request("No suitable value for 'start' or 'pageSize' params");
    let start = match param(&params, "start") {
        None => 0,
        Some(v) => v.trim().parse::<u64>().map_err(|_| bad())?,
    };
    let page_size = match param(&params, "pageSize") {
        None => svc
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
    let v = searching(&svc, move |s| s.updated_users(since, start, page_size)).await?;
    let mut resp = (StatusCode::OK, v.to_string()).into_response();
    resp.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json; charset=utf-8"),
    );
    Ok(resp)
}

async fn changes(
    State(svc): State<AppState>,
    headers: HeaderMap,
    uri: OriginalUri,
    Query(params): Params,
) -> Reply {
    let ctx = ctx(&headers, &uri, &params)?;
    let cursor = param(&params, "cursor").map(str::to_string);
    let count = int_param(&params, "count")?;
    let v = searching(&svc, move |s| s.changes(cursor.as_deref(), count, &ctx)).await?;
    Ok(scim(StatusCode::OK, &v))
}

/// Admin enrolment of a FIDO device (SCIM clients cannot create devices).
async fn enrol_device(
    State(svc): State<AppState>,
    Path(endpoint): Path<String>,
    headers: HeaderMap,
    Query(params): Params,
    body: Body,
) -> Reply {
    let rt = resource_type(&svc, &endpoint)?;
    let mut ctx = ctx(
        &headers,
        &OriginalUri(axum::http::Uri::from_static("/scim/v2")),
        &params,
    )?;
    ctx.projection = Projection::default();
    let body = json_body(&svc, &headers, body).await?;
    let r = blocking(&svc, move |s| s.enrol_device(&rt, &body, &ctx)).await?;
    resource_reply(StatusCode::CREATED, &r)
}

fn attributes_json(attrs: &[scim_proto::schema::custom::CustomAttribute]) -> Value {
    serde_json::json!({ "attributes": attrs })
}

async fn list_custom_attributes(State(svc): State<AppState>) -> Reply {
    let attrs = blocking(&svc, |s| s.custom_attributes()).await?;
    Ok(scim(StatusCode::OK, &attributes_json(&attrs)))
}

async fn add_custom_attribute(
    State(svc): State<AppState>,
    headers: HeaderMap,
    body: Body,
) -> Reply {
    let body = json_body(&svc, &headers, body).await?;
    let attr = crate::admin::parse_custom_attribute(&body)?;
    let added = attr.clone();
    blocking(&svc, move |s| s.add_custom_attribute(&attr)).await?;
    Ok(scim(
        StatusCode::CREATED,
        &serde_json::to_value(added).unwrap_or_default(),
    ))
}

async fn remove_custom_attribute(
    State(svc): State<AppState>,
    Path(name): Path<String>,
    Query(params): Params,
) -> Reply {
    let force = param(&params, "force").is_some_and(|v| v != "false");
    let cleared = blocking(&svc, move |s| s.remove_custom_attribute(&name, force)).await?;
    Ok(scim(
        StatusCode::OK,
        &serde_json::json!({ "clearedUsers": cleared }),
    ))
}
