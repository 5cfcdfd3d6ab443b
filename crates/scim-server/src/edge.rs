//! The outermost layer of every request, whatever route serves it: a request id
//! (taken from `X-Request-Id` or made, and returned), limits on the URL and the
//! headers, one log line, the request metrics, and a SCIM error body for every
//! rejection that arrives without one (the router's own, axum's extractors').
//! Also the unauthenticated health probes.

use crate::extract::RequestId;
use crate::http::{error_response, SCIM_CONTENT_TYPE};
use crate::service::Service;
use axum::extract::{ConnectInfo, MatchedPath, Request, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;
use scim_auth::limits::{client_addr, ClientAddr, Limiter, Network, Rate};
use scim_proto::ScimError;
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Limits checked before any route runs, and whom to believe about addresses.
#[derive(Debug, Clone)]
pub struct EdgeLimits {
    /// Longest request target (path and query), bytes: 414 above.
    pub max_url_bytes: usize,
    /// Largest sum of header names and values, bytes: 431 above.
    pub max_header_bytes: usize,
    /// Requests per source address (None: no limit): 429 above.
    pub per_ip: Option<Rate>,
    /// Proxies whose `X-Forwarded-For` names the client (none by default).
    pub trusted_proxies: Vec<Network>,
}

impl Default for EdgeLimits {
    fn default() -> Self {
        EdgeLimits {
            max_url_bytes: 8 * 1024,
            max_header_bytes: 16 * 1024,
            per_ip: Rate::per_second(100_000),
            trusted_proxies: Vec::new(),
        }
    }
}

#[derive(Clone)]
struct EdgeState {
    svc: Arc<Service>,
    limits: EdgeLimits,
    per_ip: Option<Arc<Limiter<IpAddr>>>,
    bypass: bool,
}

/// `app` with the health probes and the edge layer around everything in it.
pub fn edge(app: Router, svc: Arc<Service>, limits: EdgeLimits) -> Router {
    let bypass = svc.config.protection == scim_auth::Mode::Bypass;
    let state = EdgeState {
        svc,
        per_ip: limits.per_ip.map(|r| Arc::new(Limiter::new(r))),
        limits,
        bypass,
    };
    app.merge(health_routes(state.clone()))
        .route_layer(axum::middleware::from_fn(mark_route))
        .layer(axum::middleware::from_fn_with_state(state, handle))
}

/// The route template that served a request, on its response (routing happens
/// inside the edge layer, so it cannot see the template on the request).
async fn mark_route(req: Request, next: Next) -> Response {
    let route = req.extensions().get::<MatchedPath>().cloned();
    let mut resp = next.run(req).await;
    if let Some(r) = route {
        resp.extensions_mut().insert(r);
    }
    resp
}

fn health_routes(state: EdgeState) -> Router {
    Router::new()
        .route("/health/live", get(live))
        .route("/health/ready", get(ready))
        .with_state(state)
}

/// The process is up and serving.
async fn live() -> Response {
    health(StatusCode::OK, "up", None)
}

/// Longest a readiness probe waits for the database.
const READY_TIMEOUT: Duration = Duration::from_secs(2);

/// The database answers and has this build's migrations.
async fn ready(State(state): State<EdgeState>) -> Response {
    let store = state.svc.store.clone();
    let probe = tokio::task::spawn_blocking(move || store.ready());
    match tokio::time::timeout(READY_TIMEOUT, probe).await {
        Ok(Ok(Ok(()))) => health(StatusCode::OK, "ready", None),
        Ok(Ok(Err(e))) => {
            tracing::warn!(error = %e, "readiness probe: database not ready");
            health(
                StatusCode::SERVICE_UNAVAILABLE,
                "unavailable",
                Some("database not ready"),
            )
        }
        Ok(Err(_)) | Err(_) => health(
            StatusCode::SERVICE_UNAVAILABLE,
            "unavailable",
            Some("database did not answer in time"),
        ),
    }
}

fn health(status: StatusCode, word: &str, detail: Option<&str>) -> Response {
    let mut body = serde_json::json!({ "status": word });
    if let Some(d) = detail {
        body["detail"] = d.into();
    }
    let mut resp = (status, body.to_string()).into_response();
    resp.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    resp.headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    resp
}

async fn handle(State(state): State<EdgeState>, mut req: Request, next: Next) -> Response {
    let id = request_id(req.headers());
    req.extensions_mut().insert(RequestId(id.clone()));
    if let Some(peer) = req
        .extensions()
        .get::<ConnectInfo<SocketAddr>>()
        .map(|c| c.0.ip())
    {
        let forwarded = req
            .headers()
            .get("x-forwarded-for")
            .and_then(|v| v.to_str().ok());
        let client = client_addr(peer, forwarded, &state.limits.trusted_proxies);
        req.extensions_mut().insert(ClientAddr(client));
    }
    let method = req.method().clone();
    let path = req.uri().path().to_string();
    let started = Instant::now();
    let mut resp = if let Some(e) = over_limits(&req, &state.limits) {
        error_response(&e)
    } else if let Some(r) = over_ip_rate(&state, &req) {
        r
    } else {
        scim_rejection(next.run(req).await).await
    };
    let status = resp.status().as_u16();
    let elapsed = started.elapsed();
    let client_id = resp
        .extensions()
        .get::<scim_auth::ClientId>()
        .map_or("-", |c| c.0.as_str())
        .to_string();
    if let Ok(v) = HeaderValue::from_str(&id) {
        resp.headers_mut().insert("x-request-id", v);
    }
    let route = resp.extensions().get::<MatchedPath>();
    crate::metrics::request(
        route.map_or("unmatched", |m| m.as_str()),
        method.as_str(),
        status,
        elapsed,
    );
    let micros = elapsed.as_micros() as u64;
    if state.bypass {
        tracing::info!(request_id = %id, %method, %path, status, micros, client_id, protection = "bypass", "request (UNPROTECTED: bypass mode)");
    } else {
        tracing::info!(request_id = %id, %method, %path, status, micros, client_id, "request");
    }
    resp
}

/// 414 for a request target longer than the limit, 431 for headers larger.
fn over_limits(req: &Request, limits: &EdgeLimits) -> Option<ScimError> {
    let target = req.uri().path_and_query().map_or(0, |p| p.as_str().len());
    if target > limits.max_url_bytes {
        return Some(ScimError::new(
            414,
            None,
            format!(
                "the request URL is longer than {} bytes",
                limits.max_url_bytes
            ),
        ));
    }
    if header_bytes(req.headers()) > limits.max_header_bytes {
        return Some(ScimError::new(
            431,
            None,
            format!(
                "the request headers are larger than {} bytes",
                limits.max_header_bytes
            ),
        ));
    }
    None
}

/// 429 when the request's source address is over its rate.
fn over_ip_rate(state: &EdgeState, req: &Request) -> Option<Response> {
    let limiter = state.per_ip.as_ref()?;
    let ip = req.extensions().get::<ClientAddr>()?.0;
    let wait = limiter.take(&ip, state.svc.clock.now()).err()?;
    metrics::counter!("scimd_rate_limited_total", "limit" => "ip").increment(1);
    Some(scim_auth::guard::rate_limited(
        wait,
        "too many requests from this address; slow down",
    ))
}

fn header_bytes(headers: &HeaderMap) -> usize {
    headers
        .iter()
        .map(|(k, v)| k.as_str().len() + v.len())
        .sum()
}

/// Largest plain-text rejection carried over into the SCIM error's detail.
const MAX_DETAIL: usize = 300;

/// A rejection without a JSON body (axum's extractors answer in plain text, e.g.
/// a path segment that is not UTF-8) as a SCIM error with the same status.
async fn scim_rejection(resp: Response) -> Response {
    let status = resp.status();
    // The console's pages answer errors in HTML, for a browser.
    if !(status.is_client_error() || status.is_server_error())
        || is_json(resp.headers())
        || is_html(resp.headers())
    {
        return resp;
    }
    let (parts, body) = resp.into_parts();
    let text = axum::body::to_bytes(body, 64 * 1024)
        .await
        .unwrap_or_default();
    let mut detail: String = String::from_utf8_lossy(&text)
        .chars()
        .filter(|c| !c.is_control())
        .take(MAX_DETAIL)
        .collect();
    if detail.trim().is_empty() {
        detail = status.canonical_reason().unwrap_or("rejected").to_string();
    }
    let mut out = error_response(&ScimError::new(status.as_u16(), None, detail));
    // Headers such as Retry-After or WWW-Authenticate stay.
    for (k, v) in parts.headers.iter() {
        if k != header::CONTENT_TYPE && k != header::CONTENT_LENGTH {
            out.headers_mut().insert(k.clone(), v.clone());
        }
    }
    *out.extensions_mut() = parts.extensions;
    out
}

fn is_html(headers: &HeaderMap) -> bool {
    headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|ct| {
            ct.trim_start()
                .to_ascii_lowercase()
                .starts_with("text/html")
        })
}

fn is_json(headers: &HeaderMap) -> bool {
    headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .map(|ct| {
            ct.split(';')
                .next()
                .unwrap_or("")
                .trim()
                .to_ascii_lowercase()
        })
        .is_some_and(|mime| {
            mime == SCIM_CONTENT_TYPE || mime == "application/json" || mime.ends_with("+json")
        })
}

/// A request id unique to this process and across restarts: a random prefix drawn
/// once and a counter (a random id per request would cost a syscall each).
pub(crate) fn new_request_id() -> String {
    use std::sync::atomic::{AtomicU64, Ordering};
    use std::sync::OnceLock;
    static PREFIX: OnceLock<String> = OnceLock::new();
    static NEXT: AtomicU64 = AtomicU64::new(1);
    let prefix = PREFIX.get_or_init(|| uuid::Uuid::new_v4().simple().to_string()[..16].to_string());
    format!("{prefix}-{:x}", NEXT.fetch_add(1, Ordering::Relaxed))
}

/// The caller's `X-Request-Id` when it is a plain token (letters, digits and
/// `-_.:`, at most 128): anything else could forge log lines, so it gets a new id.
fn request_id(headers: &HeaderMap) -> String {
    headers
        .get("x-request-id")
        .and_then(|v| v.to_str().ok())
        .filter(|v| {
            !v.is_empty()
                && v.len() <= 128
                && v.bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b"-_.:".contains(&b))
        })
        .map(str::to_string)
        .unwrap_or_else(new_request_id)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn request_ids_are_taken_only_when_plain() {
        let mut h = HeaderMap::new();
        h.insert("x-request-id", HeaderValue::from_static("abc-123.x:y_z"));
        assert_eq!(request_id(&h), "abc-123.x:y_z");
        h.insert(
            "x-request-id",
            HeaderValue::from_static("bad id\" level=ERROR"),
        );
        assert_ne!(request_id(&h), "bad id\" level=ERROR");
        assert_ne!(request_id(&HeaderMap::new()), request_id(&HeaderMap::new()));
    }

    #[test]
    fn json_types_are_recognised() {
        let mut h = HeaderMap::new();
        for (ct, json) in [
            ("application/scim+json", true),
            ("application/json; charset=utf-8", true),
            ("text/plain; charset=utf-8", false),
        ] {
            h.insert(header::CONTENT_TYPE, HeaderValue::from_static(ct));
            assert_eq!(is_json(&h), json, "{ct}");
        }
        assert!(!is_json(&HeaderMap::new()));
    }
}
